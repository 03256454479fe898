-- test_allocate: a budget split across units (spillover.allocate): the LP
-- when the response is linear, the greedy method with its optimality gap
-- otherwise, gains over the equal split and the status quo with intervals,
-- spillovers of a spatial model, and the scenario's checks.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local allocate = require "spillover.allocate"

-- 6 units x 3 years; z differs by unit, so the effect of x differs by unit.
local ids, years, x, z = {}, {}, {}, {}
for u = 1, 6 do
  for t = 2001, 2003 do
    ids[#ids + 1], years[#years + 1] = "u" .. u, t
    x[#x + 1] = u + 0.5 * (t - 2000) + 0.2 * ((u * 7 + t) % 3)
    z[#z + 1] = u
  end
end
local d = sp.frame { id = ids, year = years, x = x, z = z }
d:panel { entity = "id", time = "year" }
local y = {}
for i = 1, #x do y[i] = 1 + 0.8 * math.log(x[i]) + 0.05 * x[i] * z[i] + 0.01 * math.sin(i) end
d.y = y
local function derive(f)
  f.lx = sp.eval(f, "log(x)")
  f.xz = sp.eval(f, "x:z")
end
derive(d)

local function sum(t) local s = 0 for _, v in ipairs(t) do s = s + v end return s end

-- Linear in the allocation: y ~ x + xz.  The response per unit of input over
-- the two horizon periods is 2 (b_x + b_xz z_u): the LP fills the units with
-- the largest z up to the bound.
local lin = sp.ols(d, "y ~ x + xz")
local r = allocate.run { data = d, fit = lin, derive = derive, entity = "id", time = "year",
  allocate = { variable = "x", budget = 5, from = 2002, upper = 2 }, draws = 200, seed = 3 }
local a = r.allocation
T.check(a.linear and a.method:find("linear programme"), "a linear response is solved as an LP", a.method)
local amount = {}
for _, row in ipairs(a.table) do amount[row.unit] = row.amount end
T.near(amount.u6, 2, 1e-9, "LP: the unit with the largest response gets its upper bound")
T.near(amount.u5, 2, 1e-9, "LP: and the next")
T.near(amount.u4, 1, 1e-9, "LP: the remainder goes to the third")
T.near(amount.u1 + amount.u2 + amount.u3, 0, 1e-9, "LP: nothing to the others")
local b = lin:coef()
local want = 0
for u = 4, 6 do want = want + 2 * amount["u" .. u] * (b.x + b.xz * u) end
T.near(a.total, want, 1e-9, "LP: the total effect is sum over units and horizon periods of the response")
T.near(sum((function() local t = {} for i, row in ipairs(a.table) do t[i] = row.amount end return t end)()), 5, 1e-9,
  "LP: the allocation spends the budget")
T.check(a.gain_over_equal > 0 and a.gain_over_status_quo > 0, "the optimum beats the equal split and the status quo")
T.check(a.gain_over_equal_lo <= a.gain_over_equal and a.gain_over_equal <= a.gain_over_equal_hi,
  "the interval of the gain over the draws brackets the gain")
T.check(r.groups.all.total.sum_lo ~= nil and r.groups.all.total.sum == r.groups.all.total.sum,
  "the allocation's effects are summarised as any experiment's, with intervals")
local r2 = allocate.run { data = d, fit = lin, derive = derive, entity = "id", time = "year",
  allocate = { variable = "x", budget = 5, from = 2002, upper = 2 }, draws = 200, seed = 3 }
T.check(r2.allocation.gain_over_equal_lo == a.gain_over_equal_lo, "draws are reproducible with the seed")

-- Concave in the allocation: y ~ log(x) + z.  Separable and concave, so a
-- greedy with tiny steps on the exact response is optimal to the step size;
-- the module's 20 steps must be within its reported gap of that.
local conc = sp.ols(d, "y ~ lx + z")
local bl = conc:coef().lx
local function f(alloc) -- the exact total effect
  local s = 0
  for i = 1, #x do
    local add = years[i] >= 2002 and alloc[ids[i]] or 0
    s = s + bl * math.log((x[i] + add) / x[i])
  end
  return s
end
local fine = {}
for u = 1, 6 do fine["u" .. u] = 0 end
for _ = 1, 3000 do
  local best, bv
  for u = 1, 6 do
    local k = "u" .. u
    fine[k] = fine[k] + 4 / 3000
    local v = f(fine)
    fine[k] = fine[k] - 4 / 3000
    if not bv or v > bv then best, bv = k, v end
  end
  fine[best] = fine[best] + 4 / 3000
end
local best_total = f(fine)
r = allocate.run { data = d, fit = conc, derive = derive, entity = "id", time = "year",
  allocate = { variable = "x", budget = 4, from = 2002, steps = 20 } }
a = r.allocation
T.check(not a.linear and a.method:find("greedy"), "a log response is not linear: greedy", a.method)
local got = {}
for _, row in ipairs(a.table) do got[row.unit] = row.amount end
T.near(a.total, f(got), 1e-9, "greedy: the total effect is the fit's prediction of the allocation")
T.check(a.total <= best_total + 1e-12 and best_total - a.total <= a.optimality_gap + 1e-12,
  "greedy: within its optimality gap of the optimum", string.format("best %.10g got %.10g gap %.3g", best_total, a.total,
    a.optimality_gap))
T.check(a.optimality_gap < 5e-2 * math.abs(a.total), "greedy: the gap is at most 5% of the effect with 20 steps",
  string.format("gap %.4g total %.4g best %.6g", a.optimality_gap, a.total, best_total))
T.near(a.equal_total, f({ u1 = 4 / 6, u2 = 4 / 6, u3 = 4 / 6, u4 = 4 / 6, u5 = 4 / 6, u6 = 4 / 6 }), 1e-9,
  "the equal split's total")
T.check(got.u1 > got.u6, "diminishing returns: more to the unit with the least input")

-- The objective: levels of the outcome's data column (patents), not the
-- sum of changes in the log, unless asked.  log(w) = 1 + 0.8 log(x) + 0.6 z
-- + e: the units with a large z have much larger w, so in levels they gain
-- most; in logs the unit with the least x does.
local w = {}
for i = 1, #x do w[i] = math.exp(1 + 0.8 * math.log(x[i]) + 0.6 * z[i] + 0.3 * math.sin(3 * i)) end
d.w = w
local function derive_w(f) derive(f); f.lw = sp.eval(f, "log(w)") end
derive_w(d)
local logfit = sp.ols(d, "log(w) ~ lx + z")
local run = function(objective)
  return allocate.run { data = d, fit = logfit, derive = derive_w, entity = "id", time = "year",
    allocate = { variable = "x", budget = 4, from = 2002, objective = objective } }
end
local lv, md = run(nil), run("model")
T.check(lv.allocation.objective == "level" and md.allocation.objective == "model", "objective: level by default, model when asked")
T.near(lv.allocation.total, lv.groups.all.total.level_change, 1e-9, "level objective: the optimum's level change (smearing)")
T.near(md.allocation.total, md.groups.all.total.sum, 1e-9, "model objective: the optimum's sum of effects in logs")
local lvu, mdu = {}, {}
for _, row in ipairs(lv.allocation.table) do lvu[row.unit] = row.amount end
for _, row in ipairs(md.allocation.table) do mdu[row.unit] = row.amount end
T.check(lvu.u6 > mdu.u6 and lvu.u1 < mdu.u1, "in levels more goes to the unit with the largest outcome than in logs",
  string.format("u6: level %g, model %g; u1: level %g, model %g", lvu.u6, mdu.u6, lvu.u1, mdu.u1))
T.checkerr("'objective' is \"level\"", run, "patents")

-- Errors.
T.checkerr("cannot be split across 6 units within %[0, 0.5%]", allocate.run, { data = d, fit = lin, derive = derive,
  entity = "id", time = "year", allocate = { variable = "x", budget = 5, upper = 0.5 } })
T.checkerr("unknown option 'budjet'", allocate.run, { data = d, fit = lin, entity = "id",
  allocate = { variable = "x", budjet = 5 } })
T.checkerr("positive number", allocate.run, { data = d, fit = lin, entity = "id", allocate = { variable = "x", budget = 0 } })
local dyn = setmetatable({ capabilities = { dynamic = { 1 } } }, { __index = lin })
T.checkerr("dynamic fits is not implemented", allocate.run, { data = d, fit = dyn, entity = "id",
  allocate = { variable = "x", budget = 1 } })
T.checkerr("leaves 12 predictions undefined %(a log of a non%-positive x%?%); raise 'lower'", allocate.run, { data = d,
  fit = conc, derive = derive, entity = "id", time = "year", allocate = { variable = "x", budget = 1, lower = -20, from = 2002 } })
T.checkerr("touches no row", allocate.run, { data = d, fit = lin, entity = "id", time = "year",
  allocate = { variable = "x", budget = 1, from = 2010 } })

-- The bundled scenario: spillovers of the SDM reach provinces outside the West.
local scenario = sp.scenario
local s = scenario.load("scenarios/infrastructure_budget.yaml", { "experiments.budget_log.draws=50",
  "experiments.budget_level.draws=50", "experiments.dose.draws=0", "experiments.regions.draws=0" })
local res = scenario.execute(s)
for _, name in ipairs({ "budget_log", "budget_level" }) do
  local e = res.experiments[name]
  local spent = 0
  for _, row in ipairs(e.allocation.table) do spent = spent + row.amount end
  T.near(spent, 50, 1e-9, name .. ": the allocation satisfies the budget")
  T.check(e.allocation.gain_over_equal >= 0, name .. ": the allocation beats the equal split",
    tostring(e.allocation.gain_over_equal))
  T.check(e.groups["region_nbs=Central"].total.sum ~= 0,
    name .. ": spillovers into central provinces (no allocation there) are counted")
  T.near(e.allocation.total, e.groups.all.total.level_change, 1e-9,
    name .. ": the objective is the optimum's change in invention patents (levels), as its effects report")
  T.check(e.allocation.objective == "level", name .. ": objective level by default")
end
T.check(res.experiments.budget_level.allocation.linear, "spending in levels: linear, LP")
T.check(not res.experiments.budget_log.allocation.linear, "ln spending: greedy")

-- Checks of the scenario.
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-allocate-"))
local text = T.read("scenarios/infrastructure_budget.yaml"):gsub("data/", sp.sys.realpath("scenarios") .. "/data/")
local function check_error(pattern, from, to)
  T.write(tmp .. "/bad.yaml", T.edit(text, from, to))
  T.checkerr(pattern, function() scenario.check(scenario.load(tmp .. "/bad.yaml")) end)
end
check_error("bad.yaml:%d+:%d+: experiments%.budget_log%.allocate%.variable: unknown column 'gov_exp_scitch_100m_yuan'",
  "allocate: {variable: gov_exp_scitech_100m_yuan", "allocate: {variable: gov_exp_scitch_100m_yuan")
check_error("experiments%.budget_log%.allocate%.variable: 'lnst' is derived",
  "allocate: {variable: gov_exp_scitech_100m_yuan", "allocate: {variable: lnst")
check_error("experiments%.budget_log%.allocate%.budget: the budget must be a positive amount, got %-5", "budget: 50, where: region_nbs == 'West', from: 2019,\n      lower: 0, upper: 15}\n    groups: [region_nbs]\n    draws: 100\n  budget_level",
  "budget: -5, where: region_nbs == 'West', from: 2019,\n      lower: 0, upper: 15}\n    groups: [region_nbs]\n    draws: 100\n  budget_level")
check_error("experiments%.budget_log: 'allocate' splits a budget of its own input; give it without 'shock'",
  "    model: sdm_log\n    allocate:", "    model: sdm_log\n    shock: {variable: x, change: \"+1\"}\n    allocate:")
check_error("experiments%.budget_log%.allocate%.from: the allocation selects no row", "where: region_nbs == 'West', from: 2019,\n      lower: 0, upper: 15}\n    groups: [region_nbs]\n    draws: 100\n  budget_level",
  "where: region_nbs == 'West', from: 2030,\n      lower: 0, upper: 15}\n    groups: [region_nbs]\n    draws: 100\n  budget_level")
sp.sys.remove_tree(tmp)

T.done()
