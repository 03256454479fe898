-- test_timing: anticipated and unannounced shocks in a dynamic model with a
-- lead of the shocked regressor, y_t = rho y_{t-1} + b x_t + g x_{t+1}, by
-- hand: unannounced (the default), nobody responds before the shock's
-- `from`; anticipated, agents respond through the lead from `announced`
-- (or as early as the lead reaches).  check refuses anticipation that the
-- model cannot express (no lead of a shocked variable) and announcement
-- dates after the shock.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local cf = require "spillover.counterfactual"

local r = sp.rng(5)
local ids, years, x, y = {}, {}, {}, {}
for u = 1, 5 do
  local prev = u
  for t = 2000, 2011 do
    local xt = math.sin(u * 3 + t) + 0.2 * r:normal()
    ids[#ids + 1], years[#years + 1], x[#x + 1] = "u" .. u, t, xt
  end
  for k = #x - 11, #x do
    local lead = k < #x and x[k + 1] or 0
    prev = 0.5 * prev + 0.8 * x[k] + 0.4 * lead + 0.1 * r:normal()
    y[k] = prev
  end
end
local d = sp.frame { id = ids, year = years, x = x, y = y }
d:panel { entity = "id", time = "year" }
local fit = sp.ols(d, "y ~ l(y, 1) + x + f(x, 1)")
local c = fit:coef()
local rho, b, g = c["l(y, 1)"], c.x, c["f(x, 1)"]
T.check(math.abs(g) > 0.1, "the lead's coefficient is not zero (" .. g .. ")")

local shock = { { variable = "x", where = "id == 'u2'", from = 2005, change = "+1" } }
local function run(extra)
  local spec = { data = d, fit = fit, entity = "id", time = "year", shocks = shock, scale = false }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return cf.run(spec)
end
-- u2's effect per year, by hand: dy_t = rho dy_{t-1} + b dx_t + g dx_{t+1}
-- from the year the shock is known, 0 before; dx = 1 from 2005.  The first
-- year has no lag and the last no lead: no prediction there.
local function by_hand(known)
  local out, prev = {}, 0
  for t = 2001, 2010 do
    local dx, dlead = t >= 2005 and 1 or 0, t + 1 >= 2005 and 1 or 0
    local e = t >= known and rho * prev + b * dx + g * dlead or 0
    out[t], prev = e, e
  end
  return out
end
local function path(res)
  local out = {}
  for _, u in ipairs(res.units) do
    if u.entity == "u2" and u.effect == u.effect then out[u.period] = u.effect end
  end
  return out
end
local function same(got, want, what)
  local worst, n = 0, 0
  for t = 2001, 2010 do
    n = n + 1
    worst = math.max(worst, math.abs((got[t] or 0 / 0) - want[t]))
  end
  T.check(n == 10 and worst < 1e-12, what, "worst " .. tostring(worst))
end
local un = path(run())
same(un, by_hand(2005), "unannounced (default): nothing before 2005, then b + g, ... by hand")
T.check(un[2004] == 0 and un[2005] ~= 0, "unannounced: the lead does not leak the shock into 2004")
same(path(run { timing = "unannounced" }), by_hand(2005), "timing = unannounced is the default")
local an = path(run { timing = "anticipated", announced = 2003 })
same(an, by_hand(2003), "anticipated, announced 2003: g in 2004 through the lead, then the recursion")
T.near(an[2004], g, 1e-12, "anticipated: the year before the shock moves by the lead's coefficient")
same(path(run { timing = "anticipated" }), by_hand(2000), "anticipated without a date: the lead sees it")
-- the other units do not move, whatever the timing
local others = 0
for _, u in ipairs(run({ timing = "anticipated" }).units) do
  if u.entity ~= "u2" and u.effect == u.effect then others = math.max(others, math.abs(u.effect)) end
end
T.check(others == 0, "other units: no effect")
-- draws follow the same timing: no interval away from zero before the announcement
local dr = run { timing = "unannounced", draws = 30, seed = 2 }
local ok = true
for _, u in ipairs(dr.units) do
  if u.entity == "u2" and u.period < 2005 and u.effect == u.effect then ok = ok and u.lo == 0 and u.hi == 0 end
end
T.check(ok, "draws: zero before the shock is known")
T.checkerr("'announced' %(2006%) must be a period on or before the first shock's 'from' %(2005%)", run,
  { timing = "anticipated", announced = 2006 })
T.checkerr("'timing' must be \"unannounced\" or \"anticipated\", got \"soon\"", run, { timing = "soon" })

-- ---- scenarios: the key, check's refusals ------------------------------------------------
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-timing-"))
d:write_csv(tmp .. "/panel.csv")
local base = [[
name: timing
data: {file: panel.csv, entity: id, time: year}
derive: {lx: log(exp(x))}
models:
  lead: {estimator: ols, formula: "y ~ l(y, 1) + x + f(x, 1)"}
  derived: {estimator: ols, formula: "y ~ l(y, 1) + x + f(lx, 1)"}
  nolead: {estimator: ols, formula: "y ~ l(y, 1) + x"}
experiments:
  e:
    model: MODEL
    shock: {variable: x, where: "id == 'u2'", from: 2005, change: "+1"}
TIMING
]]
local function scenario(model, timing)
  local text = base:gsub("MODEL", model):gsub("TIMING", timing)
  return sp.scenario.load(T.write(tmp .. "/s.yaml", text))
end
local s = scenario("lead", "    timing: anticipated\n    announced: 2003")
sp.scenario.check(s)
local res = sp.scenario.execute(s)
same(path(res.experiments.e), by_hand(2003), "scenario: timing: anticipated, announced: 2003, by hand")
T.check(pcall(sp.scenario.check, scenario("derived", "    timing: anticipated")),
  "a lead of a variable derived from the shocked one identifies anticipation")
T.checkerr("s.yaml:12:13: experiments.e.timing: model 'nolead' has no lead of a shocked variable %(f%(x%) of x or " ..
  "of a variable derived from it%), so agents' response before the shock is not identified",
  function() sp.scenario.check(scenario("nolead", "    timing: anticipated")) end)
T.check(pcall(sp.scenario.check, scenario("nolead", "    timing: unannounced")), "unannounced needs no lead")
T.checkerr("s.yaml:13:16: experiments.e.announced: 'announced' %(2006%) is after the shock's 'from' %(2005%)",
  function() sp.scenario.check(scenario("lead", "    timing: anticipated\n    announced: 2006")) end)
T.checkerr("experiments.e.announced: 'announced' is read only by timing: anticipated",
  function() sp.scenario.check(scenario("lead", "    announced: 2003")) end)
T.checkerr("unknown value \"soon\"", function() sp.scenario.check(scenario("lead", "    timing: soon")) end)
sp.sys.remove_tree(tmp)
T.done()
