-- test_malmquist: productivity indices against DataEnvelopmentAnalysis.jl's
-- printed results (test/malmquist.jl, test/malmluen.jl), the exact
-- decomposition index = EC x TC under every frontier, the global index as a
-- ratio of pooled-frontier distances, sequential frontiers, infeasible
-- mixed-period LPs reported per unit, window DEA and the errors.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local mq = require "spillover.malmquist"
local dea = require("spillover.dea").dea

local function panel(cols)
  local dmu, per = {}, {}
  for p = 1, 3 do
    for u = 1, 5 do dmu[#dmu + 1], per[#per + 1] = u, p end
  end
  cols.dmu, cols.period = dmu, per
  return sp.frame(cols)
end

local function column(res, name)
  return res.table[name]:tovector()
end

local function vec_near(got, want, tol, what)
  local worst = 0
  for i = 1, #want do worst = math.max(worst, math.abs(got[i] - want[i])) end
  T.check(#got == #want and worst <= tol, what, "worst absolute error " .. worst)
end

-- rows come by unit, then by pair of periods: (1, 1-2), (1, 2-3), (2, 1-2), ...
local function by_unit(a, b)
  local out = {}
  for u = 1, 5 do out[#out + 1], out[#out + 2] = a[u], b[u] end
  return out
end

-- ---- Malmquist (DEA.jl test/malmquist.jl, 3 periods) -------------------------------
local dm = panel { x = { 2, 3, 5, 4, 4, 1, 2, 4, 3, 4, 0.5, 1.5, 3, 2, 4 },
  y = { 1, 4, 6, 3, 5, 1, 4, 6, 3, 3, 2, 4, 6, 3, 1 } }
local m = mq { data = dm, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" } }
vec_near(column(m, "index"), by_unit({ 2, 1.5, 1.25, 4 / 3, 0.6 }, { 4, 4 / 3, 4 / 3, 1.5, 1 / 3 }), 1e-9,
  "Malmquist index (DEA.jl)")
vec_near(column(m, "ec"), by_unit({ 4 / 3, 1, 5 / 6, 8 / 9, 0.4 }, { 2, 2 / 3, 2 / 3, 0.75, 1 / 6 }), 1e-9,
  "Malmquist EC (DEA.jl)")
vec_near(column(m, "tc"), by_unit({ 1.5, 1.5, 1.5, 1.5, 1.5 }, { 2, 2, 2, 2, 2 }), 1e-9, "Malmquist TC (DEA.jl)")
T.near(column(m, "cumulative")[2], 2 * 4, 1e-12, "cumulative index = product over pairs")
local mo = mq { data = dm, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" },
  orientation = "output" }
vec_near(column(mo, "index"), column(m, "index"), 1e-9, "CRS: output orientation gives the same index")

-- ---- Malmquist-Luenberger (DEA.jl test/malmluen.jl, 3 periods; bads as in deaenv) ------
local db = panel { x = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 },
  y = { 7, 5, 1, 3, 4, 8, 5.5, 2, 2, 4, 8, 5.5, 2, 2, 4 },
  b = { 2, 5, 3, 3, 2, 1, 3, 2, 4, 1, 0.5, 2, 0.5, 3, 0.5 } }
local ml = mq { data = db, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" }, bad = { "b" },
  index = "ml", bad_disposability = "strong" }
vec_near(column(ml, "index"), by_unit({ 1.3702375781, 1.1, 1.1259778360, 0.91624569458, 1.2792042981 },
  { 1.22474, 1.0, 1.25245, 1.01484, 1.26491 }), 1e-5, "ML index (DEA.jl)")
vec_near(column(ml, "ec"), by_unit({ 1, 0.9625, 1.027173913, 119 / 144, 21 / 22 }, { 1, 1, 1.11111, 0.980392, 1 }),
  1e-5,
  "ML EC (DEA.jl)")
vec_near(column(ml, "tc"), by_unit({ 1.3702375781, 1.1428571429, 1.0961900625, 1.1087342859, 1.3401187885 },
  { 1.22474, 1.0, 1.1272, 1.03514, 1.264910 }), 1e-5, "ML TC (DEA.jl)")

-- ---- index = EC x TC exactly, every frontier and index -------------------------------
for _, f in ipairs({ "contemporaneous", "sequential", "global" }) do
  for _, spec in ipairs({ { index = "m", model = "ccr" }, { index = "m", model = "super_sbm" }, { index = "ml" } }) do
    local r = mq { data = db, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" },
      bad = spec.index == "ml" and { "b" } or nil, index = spec.index, model = spec.model, frontier = f }
    local idx, ec, tc = column(r, "index"), column(r, "ec"), column(r, "tc")
    local worst = 0
    for i = 1, #idx do worst = math.max(worst, math.abs(idx[i] - ec[i] * tc[i]) / idx[i]) end
    T.check(#idx == 10 and worst < 1e-14, string.format("%s %s (%s): index = EC x TC", f, spec.index,
      spec.model or "ddf"), "worst " .. worst)
  end
end

-- ---- global Malmquist: the ratio of efficiencies on the pooled frontier ---------------
do
  local g = mq { data = dm, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" }, frontier = "global" }
  -- pooled CRS frontier, one input and one output: the best y/x over all 15 is 3 (unit 1, period 3)
  local ratio = { 1 / 2, 4 / 3, 6 / 5, 3 / 4, 5 / 4, 1, 2, 1.5, 1, 0.75, 4, 8 / 3, 2, 1.5, 0.25 }
  local want = {}
  for u = 1, 5 do
    want[#want + 1] = ratio[5 + u] / ratio[u]
    want[#want + 1] = ratio[10 + u] / ratio[5 + u]
  end
  vec_near(column(g, "index"), want, 1e-9, "global Malmquist = ratio of pooled-frontier efficiencies")
  -- and its EC is the contemporaneous one
  vec_near(column(g, "ec"), column(m, "ec"), 1e-12, "global Malmquist: EC from the contemporaneous frontiers")
  -- GML on a pooled frontier: (1 + D_G(t)) / (1 + D_G(t+1)) from sp.dea on all 15 rows
  local gml = mq { data = db, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" }, bad = { "b" },
    index = "ml", frontier = "global" }
  local pooled = dea { data = db, inputs = { "x" }, outputs = { "y" }, bad = { "b" }, model = "ddf" }
  local D = pooled.efficiency
  T.near(column(gml, "index")[1], (1 + D[1]) / (1 + D[6]), 1e-9, "GML of unit 1, 1-2 from the pooled DDF")
  T.near(column(gml, "index")[4], (1 + D[7]) / (1 + D[12]), 1e-9, "GML of unit 2, 2-3 from the pooled DDF")
end

-- ---- sequential: period 1's frontier is period 1; period 2's pools 1 and 2 ------------
do
  local s = mq { data = dm, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" },
    frontier = "sequential" }
  -- best y/x: period 1 4/3, periods 1-2 2; unit 5 1-2: E_1(1) = (5/4)/(4/3), E_12(2) = 0.75/2
  T.near(column(s, "ec")[9], (0.75 / 2) / ((5 / 4) / (4 / 3)), 1e-9, "sequential EC of unit 5, 1-2")
end

-- ---- infeasible mixed-period LPs: NA and a note naming the unit ------------------------
do
  local r = mq { data = dm, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" }, model = "bcc",
    orientation = "output" }
  local idx = column(r, "index")
  local na = 0
  for _, v in ipairs(idx) do if v ~= v then na = na + 1 end end
  T.check(na > 0, "VRS output-oriented cross-period LPs are infeasible for some units (NA)")
  T.check(#r.notes == na and r.notes[1]:find("unit '", 1, true) and r.notes[1]:find("global", 1, true),
    "each NA has a note naming the unit and the remedy")
  local g = mq { data = dm, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" }, model = "bcc",
    orientation = "output", frontier = "global" }
  local ok = true
  for _, v in ipairs(column(g, "index")) do ok = ok and v == v end
  T.check(ok and #g.notes == 0, "the global frontier has no infeasible LPs")
end

-- ---- window DEA ----------------------------------------------------------------------------
do
  local w1 = mq.window { data = dm, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" }, width = 1 }
  local per1 = dea { inputs = { 2, 3, 5, 4, 4 }, outputs = { 1, 4, 6, 3, 5 } }
  local e = w1.scores.efficiency:tovector()
  vec_near({ e[1], e[2], e[3], e[4], e[5] }, per1.efficiency, 1e-12, "window of width 1 = DEA per period")
  local w2 = mq.window { data = dm, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" }, width = 2 }
  T.check(w2.scores:nrow() == 20 and w2.mean:nrow() == 15, "width 2 on 3 periods: 2 windows of 10 unit-periods")
  local mw = w2.mean.windows:tovector()
  T.check(mw[1] == 1 and mw[6] == 2 and mw[11] == 1, "the middle period is in both windows")
  -- unit 1, period 1 in window {1, 2}: y/x 0.5 against the best 2 -> 0.25
  T.near(w2.scores.efficiency:get(1, 1), 0.25, 1e-12, "window {1,2} score of unit 1, period 1")
end

-- ---- errors --------------------------------------------------------------------------------
T.checkerr("index \"ml\" uses the directional distance", mq, { data = db, entity = "dmu", time = "period",
  inputs = { "x" }, outputs = { "y" }, bad = { "b" }, index = "ml", model = "sbm" })
T.checkerr("frontier must be", mq, { data = dm, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" },
  frontier = "pooled" })
T.checkerr("unit '1' appears twice in period 1", mq, { data = sp.frame { dmu = { 1, 1, 2 }, period = { 1, 1, 2 },
  x = { 1, 2, 3 }, y = { 1, 2, 3 } }, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" } })
T.checkerr("need at least two periods", mq, { data = sp.frame { dmu = { 1, 2 }, period = { 1, 1 }, x = { 1, 2 },
  y = { 1, 2 } }, entity = "dmu", time = "period", inputs = { "x" }, outputs = { "y" } })
T.checkerr("input 'x' of unit '2 in 1' is negative", mq, { data = sp.frame { dmu = { 1, 2, 1, 2 },
  period = { 1, 1, 2, 2 }, x = { 1, -2, 3, 4 }, y = { 1, 2, 3, 4 } }, entity = "dmu", time = "period", inputs = { "x" },
  outputs = { "y" } })
T.checkerr("no column 'year'", mq, { data = dm, entity = "dmu", time = "year", inputs = { "x" }, outputs = { "y" } })
T.checkerr("width must be an integer in 1..3", mq.window, { data = dm, entity = "dmu", time = "period",
  inputs = { "x" }, outputs = { "y" }, width = 4 })

T.done()
