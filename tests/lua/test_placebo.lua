-- spillover.placebo: randomization inference by reassigning the treatment.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local placebo = require "spillover.placebo"
local util = require "spillover.util"

local tmp = assert(sp.sys.mkdtemp("/tmp/sp-placebo-"))

-- A staggered panel: 30 units x 8 periods, cohorts 4 and 6 (8 units each),
-- 14 never treated; y = unit + period effects + effect * D + noise.
local function panel(effect)
  local r = sp.rng(11)
  local id, year, g, y = {}, {}, {}, {}
  for u = 1, 30 do
    local gu = u <= 8 and 2004 or (u <= 16 and 2006 or 0)
    for t = 2001, 2008 do
      id[#id + 1], year[#year + 1], g[#g + 1] = u, t, gu
      local D = (gu > 0 and t >= gu) and 1 or 0
      y[#y + 1] = 0.3 * u + 0.1 * (t - 2000) + effect * D + r:normal()
    end
  end
  local d = sp.frame { id = id, year = year, g = g, y = y }
  d:panel { entity = "id", time = "year" }
  return d
end

-- TWFE by hand: the estimate a spec may bring instead of sp.did.
local seen
local function twfe(d, cohort)
  local g, t = d[cohort]:totable(), d.year:totable()
  local D = {}
  for i = 1, #g do D[i] = (g[i] > 0 and t[i] >= g[i]) and 1 or 0 end
  d.D = D
  seen = g
  return sp.ols(d, "y ~ D | id + year"):coef().D
end

local d0 = panel(0)
local p0 = placebo.placebo({ data = d0, cohort = "g", estimate = twfe }, { reps = 200, seed = 3 })
T.check(#p0.draws == 200 and p0.failed == 0, "200 draws, none failed")
T.check(p0.p_value > 0.05, "no effect: the true estimate is not extreme among placebos", tostring(p0.p_value))
local d1 = panel(3)
local p1 = placebo.placebo({ data = d1, cohort = "g", estimate = twfe }, { reps = 200, seed = 3 })
T.check(p1.p_value == 0 and p1.extreme == 0, "an effect of 3 (noise sd 1): no placebo is as extreme", tostring(p1.p_value))
T.check(math.abs(p1.mean) < 0.3, "placebo estimates centre near zero", tostring(p1.mean))
local n_extreme = 0
for _, b in ipairs(p0.draws) do if math.abs(b) >= math.abs(p0.estimate) then n_extreme = n_extreme + 1 end end
T.check(p0.p_value == n_extreme / 200, "p is the share of draws at least as extreme in absolute value")

-- draw r uses substream r: the first 50 draws of 200 are the 50 draws of reps = 50
local p50 = placebo.placebo({ data = d0, cohort = "g", estimate = twfe }, { reps = 50, seed = 3 })
local same = true
for r = 1, 50 do same = same and p50.draws[r] == p0.draws[r] end
T.check(same, "draws do not depend on how many ran before (substreams)")
local again = placebo.placebo({ data = d0, cohort = "g", estimate = twfe }, { reps = 50, seed = 3 })
T.check(again.draws[37] == p50.draws[37], "same seed, same draws")
local other = placebo.placebo({ data = d0, cohort = "g", estimate = twfe }, { reps = 50, seed = 4 })
T.check(other.draws[1] ~= p50.draws[1], "another seed, other draws")

-- what each assignment keeps
local function cohorts_by_unit(g)
  local t = {}
  for u = 1, 30 do t[u] = g[(u - 1) * 8 + 1] end
  return t
end
local function count(t, f) local c = 0; for _, v in ipairs(t) do if f(v) then c = c + 1 end end; return c end
local checks = { units = true, timing = true, both = true }
for assign in pairs(checks) do
  local keeps = true
  placebo.placebo({ data = d0, cohort = "g", estimate = function(d, c)
    local b = twfe(d, c)
    local cu = cohorts_by_unit(seen)
    if c ~= "g" then
      local treated = count(cu, function(v) return v > 0 end)
      keeps = keeps and treated == 16
      if assign == "units" then
        keeps = keeps and count(cu, function(v) return v == 2004 end) == 8 and count(cu, function(v) return v == 2006 end) == 8
      else
        keeps = keeps and count(cu, function(v) return v > 0 and (v < 2002 or v > 2008) end) == 0
      end
      if assign == "timing" then
        for u = 1, 16 do keeps = keeps and cu[u] > 0 end
      end
    end
    return b
  end }, { reps = 20, assign = assign, seed = 9 })
  T.check(keeps, "assign = " .. assign .. ": keeps the number of treated units (units: the cohorts; timing: which units)")
end

-- failures are counted and named; too many is an error
local k = 0
local pf = placebo.placebo({ data = d0, cohort = "g", estimate = function(d, c)
  k = k + 1
  if k % 4 == 0 then error("singular") end
  return twfe(d, c)
end }, { reps = 20, seed = 1 })
T.check(pf.failed == 5 and #pf.draws == 15 and pf.notes[1]:find("5 of 20") ~= nil, "failed draws are counted and noted")
T.checkerr("20 of 20 pseudo%-treatments could not be estimated %(first: .*boom", placebo.placebo,
  { data = d0, cohort = "g", estimate = function(d, c) if c ~= "g" then error("boom") end return 1 end }, { reps = 20 })

-- bad input
T.checkerr("assign must be", placebo.placebo, { data = d0, cohort = "g", estimate = twfe }, { assign = "time" })
T.checkerr("reps must be a whole number", placebo.placebo, { data = d0, cohort = "g", estimate = twfe }, { reps = 0 })
T.checkerr("unknown option 'rep'", placebo.placebo, { data = d0, cohort = "g", estimate = twfe }, { rep = 10 })
local dn = d0:copy()
dn.none = 0
T.checkerr("no unit is treated in 'none'", placebo.placebo, { data = dn, cohort = "none", estimate = function() return 0 end })
T.checkerr("no panel index", placebo.placebo,
  { data = sp.frame { g = { 1, 0 }, y = { 1, 2 } }, cohort = "g", estimate = function() return 0 end })
T.checkerr("spec.formula is required", placebo.placebo, { data = d0, cohort = "g" })

-- the density plot and the printout
local path = p0:plot(tmp .. "/placebo.png")
T.check(T.read(path) ~= nil and #T.read(path) > 1000, "the density plot is written")
T.check(tostring(p0):find("two%-sided p = ") ~= nil, "tostring reports the p-value")

-- util.kde: R's density() defaults (bw.nrd0, 512 points, cut = 3)
local v = { 1, 2, 3, 4, 10 }
local dens = util.kde(v)
-- bw.nrd0: sd = 3.5355, IQR/1.34 = 2/1.34 = 1.4925 -> 0.9 * 1.4925 * 5^-0.2
T.near(dens.bw, 0.9 * (2 / 1.34) * 5 ^ -0.2, 1e-14, "kde: bandwidth bw.nrd0")
T.check(#dens.x == 512 and dens.x[1] == 1 - 3 * dens.bw and math.abs(dens.x[512] - (10 + 3 * dens.bw)) < 1e-12,
  "kde: 512 points from min - 3 bw to max + 3 bw")
local area = 0
for i = 2, 512 do area = area + (dens.x[i] - dens.x[i - 1]) * (dens.y[i] + dens.y[i - 1]) / 2 end
T.near(area, 1, 2e-3, "kde: integrates to 1")
T.checkerr("at least 2 values", util.kde, { 1 })

-- Worker processes: draw r comes from substream r in whichever process runs
-- it, so 3 workers give exactly the draws of one process.
do
  local d = panel(0.5)
  local spec = { data = d, formula = "y ~ 1 | id + year", cohort = "g", method = "twfe" }
  local one = placebo.placebo(spec, { reps = 40, seed = 5 })
  local three = placebo.placebo(spec, { reps = 40, seed = 5, workers = 3 })
  local same = #one.draws == 40 and #three.draws == 40
  for r = 1, 40 do same = same and one.draws[r] == three.draws[r] end
  T.check(same and one.p_value == three.p_value and three.workers == 3, "3 workers give the draws of 1, bit for bit")
  T.checkerr("cannot run a Lua function", placebo.placebo, { data = d, cohort = "g", estimate = twfe }, { workers = 2 })
  T.checkerr("workers must be a whole number", placebo.placebo, spec, { workers = 0 })
end

sp.sys.remove_tree(tmp)
T.done()
