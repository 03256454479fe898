-- spillover.rollout: a treatment extended to more units, effects from the
-- fit's dynamic effects, intervals from its parameter draws.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local rollout = require "spillover.rollout"

-- 6 units x 2003..2008; unit 1 treated from 2004, unit 2 from 2007, the rest never.
local id, year, g, y, region = {}, {}, {}, {}, {}
for u = 1, 6 do
  for t = 2003, 2008 do
    id[#id + 1], year[#year + 1] = "u" .. u, t
    g[#g + 1] = u == 1 and 2004 or (u == 2 and 2007 or 0)
    region[#region + 1] = u <= 4 and "West" or "East"
    y[#y + 1] = 10 * u + t - 2000
  end
end
local d = sp.frame { id = id, year = year, g = g, y = y, region = region }
d:panel { entity = "id", time = "year" }

-- A fit with three dynamic effects (event times 0, 1, 2) and their covariance.
local fit = sp.fit { names = { "e0", "e1", "e2" }, b = { 1, 2, 4 },
  V = { { 0.04, 0.01, 0 }, { 0.01, 0.09, 0 }, { 0, 0, 0.16 } }, nobs = 36, formula = "y ~ D" }
fit.cohort = "g"
fit.dynamic_effects = function(self, coef)
  coef = coef or self:coef()
  return { [0] = coef.e0, [1] = coef.e1, [2] = coef.e2 }
end
T.check(fit.capabilities.rollout == true, "a fit with cohort and dynamic_effects can serve roll-outs")
T.check(sp.fit { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 3 }.capabilities.rollout == false,
  "an ordinary fit cannot")

local r = rollout.run { data = d, fit = fit, where = "region == 'West'", from = 2005, entity = "id", time = "year",
  draws = 400, seed = 5 }
local eff = {}
for _, u in ipairs(r.units) do eff[u.entity .. ":" .. u.period_key] = u.effect end
T.check(eff["u3:2004"] == 0 and eff["u3:2005"] == 1 and eff["u3:2006"] == 2 and eff["u3:2007"] == 4,
  "a never-treated unit: effects at event times 0, 1, 2 from 'from'")
T.check(eff["u3:2008"] ~= eff["u3:2008"], "beyond the estimated horizon: missing, not extrapolated")
T.check(eff["u2:2005"] == 1 and eff["u2:2006"] == 2 and eff["u2:2007"] == 4 - 1,
  "a unit treated later (2007) is moved earlier: the difference of the two paths")
T.check(eff["u1:2006"] == 0 and eff["u5:2006"] == 0, "already treated and unselected units are unchanged")
T.check(r.rollout.from == 2005 and #r.rollout.units == 3 and r.rollout.unchanged[1] == "u1",
  "the units treated from 2005 and the one already treated are listed")
T.check(r.notes[2]:find("u1") and r.notes[3]:find("beyond the estimated effects"), "and noted", table.concat(r.notes, " | "))
local all = r.groups.all.total
T.near(all.sum, 3 * 1 + 3 * 2 + 2 * 4 + 3, 1e-12, "the total over the touched unit-periods (NaN left out)")
T.check(all.sum_lo < all.sum and all.sum < all.sum_hi, "the draws give an interval around it")
-- the sd of one unit's effect at e = 0 is sqrt(V[1][1]) = 0.2: the 95% interval is about 1 +- 0.39
for _, u in ipairs(r.units) do
  if u.entity == "u3" and u.period == 2005 then
    T.check(math.abs(u.lo - (1 - 1.96 * 0.2)) < 0.08 and math.abs(u.hi - (1 + 1.96 * 0.2)) < 0.08,
      "the unit interval reflects V", u.lo .. " " .. u.hi)
  end
end
local r2 = rollout.run { data = d, fit = fit, where = "region == 'West'", from = 2005, entity = "id", time = "year",
  draws = 400, seed = 5 }
T.check(r2.groups.all.total.sum_lo == all.sum_lo, "same seed, same interval")

-- bad input
local base = { data = d, fit = fit, entity = "id", time = "year" }
local function with(t)
  local s = {}
  for k, v in pairs(base) do s[k] = v end
  for k, v in pairs(t) do s[k] = v end
  return s
end
T.checkerr("outside the panel's periods %(2003 to 2008%)", rollout.run, with { where = "region == 'West'", from = 2012 })
T.checkerr("selects no row", rollout.run, with { where = "region == 'North'", from = 2005 })
T.checkerr("already treated by 2005: nothing to roll out", rollout.run, with { where = "id == 'u1'", from = 2005 })
T.checkerr("no dynamic treatment effects", rollout.run,
  with { fit = sp.fit { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 3 }, from = 2005 })

-- A Callaway-Sant'Anna fit serves roll-outs: its effect path is the dynamic
-- aggregation (weights at the estimated cohort shares).
do
  local m = sp.read_csv("tests/reference/data/mpdta_county_teen_employment.csv")
  m:panel { entity = "countyreal", time = "year" }
  local did = require "spillover.did"
  local cs = did.did(m, "lemp ~ 1", { cohort = "first.treat", method = "cs" })
  T.check(cs.capabilities.rollout == true and cs.cohort == "first.treat", "a cs fit has the rollout capability")
  local path, agg = cs:dynamic_effects(), cs:aggregate("dynamic")
  local same = true
  for _, row in ipairs(agg.rows) do
    if row.e >= 0 then same = same and math.abs(path[row.e] - row.att) < 1e-12 end
  end
  T.check(same and path[3] ~= nil and path[-1] == nil, "dynamic_effects = aggte dynamic for e >= 0")
  local ft, never = m["first.treat"]:totable(), {}
  for i = 1, #ft do never[i] = ft[i] == 0 and 1 or 0 end
  m.never = never
  local r = rollout.run { data = m, fit = cs, where = "never == 1 and countyreal < 30000", from = 2005,
    entity = "countyreal", time = "year", draws = 100, seed = 1 }
  local e0
  for _, u in ipairs(r.units) do if u.shocked and u.period == 2005 then e0 = u.effect; break end end
  T.near(e0, path[0], 1e-12, "a county treated from 2005 gets the e = 0 effect in 2005")
  T.check(r.groups.all.total.sum_lo ~= nil, "with an interval from the fit's draws")
end

T.done()
