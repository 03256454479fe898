-- test_did_cs: the panel/cohort helper (spillover.did_common), Callaway &
-- Sant'Anna ATT(g,t) (spillover.did_cs) and the did facade (spillover.did):
-- mpdta against the did package's printed results, exact identities,
-- a simulated staggered panel with known effects, the bootstrap, bad input.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local C = require "spillover.did_common"

local MPDTA = "tests/reference/data/mpdta_county_teen_employment.csv"
local function mpdta()
  local d = sp.read_csv(MPDTA)
  d:panel { entity = "countyreal", time = "year" }
  return d
end

-- ---- did_common ---------------------------------------------------------------------------
do
  local d = mpdta()
  local P = C.prepare(d, "lemp ~ lpop", { cohort = "first.treat" }, "did")
  T.check(P.y == "lemp" and #P.x == 1 and P.x[1] == "lpop", "prepare: outcome and covariate names")
  T.check(P.entity == "countyreal" and P.time == "year", "prepare: panel index names")
  T.check(#P.periods == 5 and P.periods[1] == 2003 and P.periods[5] == 2007, "prepare: periods 2003..2007")
  T.check(#P.cohorts == 3 and P.cohorts[1] == 2004 and P.cohorts[2] == 2006 and P.cohorts[3] == 2007,
    "prepare: cohorts 2004, 2006, 2007")
  T.check(#P.units == 500 and P.n_never == 309 and P.balanced, "prepare: 500 units, 309 never treated, balanced")
  T.check(P.cohort_size[2004] == 20 and P.cohort_size[2006] == 40 and P.cohort_size[2007] == 131,
    "prepare: cohort sizes 20, 40, 131")
  local u = P.units[1]
  T.check(u.id == 8001 and u.cohort == 2007 and u.w == 1 and #u.rows == 5, "prepare: first unit 8001, cohort 2007")
  T.check(P.Y[u.rows[1]] == d.lemp:get(u.rows[1], 1), "prepare: outcome of a row")
  T.check(C.event_time(P, u, 1) == -4 and C.event_time(P, u, 5) == 0, "event_time: t - g")
  local never
  for _, v in ipairs(P.units) do if v.cohort == 0 then never = v; break end end
  T.check(C.event_time(P, never, 3) == nil, "event_time: nil for never treated")
  T.check(P.unit_of_row[u.rows[2]] == 1 and P.period_of_row[u.rows[2]] == 2, "prepare: unit_of_row, period_of_row")
  -- "| entity + time" is accepted (implied), another fixed effect is not.
  T.check(#C.prepare(d, "lemp ~ 1 | countyreal + year", { cohort = "first.treat" }, "did").x == 0,
    "prepare: '| entity + time' accepted")
  T.checkerr("did: .*fixed effects after '|' can only be the panel's entity 'countyreal' and time 'year'.*'treat'",
    C.prepare, d, "lemp ~ 1 | treat", { cohort = "first.treat" }, "did")
end

-- Bad input, each error naming the column or value at fault.
do
  local d = mpdta()
  local nopanel = sp.read_csv(MPDTA)
  T.checkerr("did: needs a panel index", C.prepare, nopanel, "lemp ~ 1", { cohort = "first.treat" }, "did")
  T.checkerr("did: the data have no cohort column 'first_treat'", C.prepare, d, "lemp ~ 1",
    { cohort = "first_treat" }, "did")
  T.checkerr("did: option 'cohort' must name", C.prepare, d, "lemp ~ 1", {}, "did")
  T.checkerr("unknown variable 'lemq'", C.prepare, d, "lemq ~ 1", { cohort = "first.treat" }, "did")
  -- A categorical cohort column.
  local dc = mpdta()
  local g = d["first.treat"]:totable()
  local s = {}
  for i, v in ipairs(g) do s[i] = tostring(v) end
  dc.gtext = s
  T.checkerr("did: cohort column 'gtext' is categorical", C.prepare, dc, "lemp ~ 1", { cohort = "gtext" }, "did")
  -- A cohort outside the time range: the value and the range are named.
  local dr = mpdta()
  local g2 = d["first.treat"]:totable()
  g2[1] = 2010
  dr.g2 = g2
  T.checkerr("did: cohort column 'g2' has the value 2010 %(unit 8001, row 1%), outside the time range %[2003, 2007%]",
    C.prepare, dr, "lemp ~ 1", { cohort = "g2" }, "did")
  -- A cohort that varies within a unit.
  local dv = mpdta()
  local g3 = d["first.treat"]:totable()
  g3[2] = 2006
  dv.g3 = g3
  T.checkerr("did: cohort column 'g3' varies within unit 8001: 2007 in row 1, 2006 in row 2", C.prepare, dv,
    "lemp ~ 1", { cohort = "g3" }, "did")
  -- Weights that vary within a unit, and negative anticipation.
  local dw = mpdta()
  local w = {}
  for i = 1, d:nrow() do w[i] = i end
  dw.w = w
  T.checkerr("did: weights column 'w' varies within unit 8001", C.prepare, dw, "lemp ~ 1",
    { cohort = "first.treat", weights = "w" }, "did")
  T.checkerr("did: option 'anticipation' must be an integer >= 0", C.prepare, d, "lemp ~ 1",
    { cohort = "first.treat", anticipation = -1 }, "did")
  -- A cohort with one unit is a note, and an unobserved outcome makes the panel unbalanced.
  local d1 = mpdta()
  local g4 = d["first.treat"]:totable()
  local y = d.lemp:totable()
  for r = 1, 5 do g4[r] = 2005 end
  y[7] = 0 / 0
  d1.g4, d1.lemp = g4, y
  local P = C.prepare(d1, "lemp ~ 1", { cohort = "g4" }, "did")
  local found = false
  for _, n in ipairs(P.notes) do found = found or n:find("cohort 2005 has one unit") ~= nil end
  T.check(found and P.cohort_size[2005] == 1, "prepare: a one-unit cohort gives a note")
  T.check(not P.balanced and P.units[2].rows[2] == nil, "prepare: a missing outcome is an unobserved period")
end

T.done()
