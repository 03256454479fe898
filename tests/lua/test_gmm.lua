-- test_gmm: spillover.gmm (difference and system GMM) through the Lua API:
-- the six pgmm reference cases (via the reference handler), collapsed
-- instruments and the individual effect against plm::pgmm, a simulation
-- where within-FE is biased (Nickell) and GMM is not, orthogonal
-- deviations, the xtabond2 preset, long-run effects, the dynamic
-- counterfactual, etable rows, the registry and scenario, and every
-- documented error.
package.path = "tests/lua/?.lua;tests/reference/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local gmm = require "spillover.gmm"
local registry = require "spillover.registry"

local d = sp.read_csv("tests/reference/data/EmplUK.csv")
d:panel { entity = "firm", time = "year" }
local AB = "log_emp ~ l(log_emp, 1:2) + l(log_wage, 0:1) + log_capital + l(log_output, 0:1) | year"
local BB = "log_emp ~ l(log_emp, 1) + l(log_wage, 0:1) + l(log_capital, 0:1) | year"

-- ---- the reference cases (same checks as the reference runner) ----------------------------
do
  local H = dofile("tests/reference/handlers/gmm.lua")
  local ctx = { dataset = function() return d end }
  for _, name in ipairs({ "ab_b_onestep", "ab_b_onestep_robust", "ab_b_twostep", "ab_b_twostep_windmeijer",
    "sys_onestep_robust", "sys_twostep_windmeijer" }) do
    local case = sp.json.read("tests/reference/gmm_empluk_" .. name .. ".json")
    local bad, n = {}, 0
    for _, c in ipairs(H.plm_pgmm(case, ctx)) do
      local label, got, want, rtol, atol = c[1], c[2], c[3], c[4] or 1e-9, c[5] or 0
      local ok
      if type(want) ~= "number" then ok = got == want
      else
        ok = type(got) == "number" and (math.abs(got - want) <= rtol * math.abs(want) or math.abs(got - want) <= atol)
      end
      if not ok then bad[#bad + 1] = string.format("%s: got %s want %s", label, tostring(got), tostring(want)) end
      n = n + 1
    end
    T.check(#bad == 0 and n > 100, "pgmm reference " .. name .. " (" .. n .. " quantities)", table.concat(bad, "; "))
  end
end

-- ---- more pgmm calls (R 4.2.2, plm 2.6-2; the calls are in the comments) -------------------
do
  -- pgmm(log_emp ~ lag(log_emp, 1:2) + lag(log_wage, 0:1) + log_capital + lag(log_output, 0:1) |
  --      lag(log_emp, 2:99), pd, effect = "twoways", model = "twosteps", collapse = TRUE)
  local f = gmm.gmm(d, AB, { gmm = { "log_emp 2 99" }, collapse = true })
  T.near(f:coef()["l(log_emp, 1)"], 0.8538954765371742361, 1e-8, "collapsed difference GMM: coefficient (pgmm)")
  T.near(f:coef()["year::1984"], -0.0102013373332696666, 1e-8, "collapsed: a time dummy (pgmm)")
  T.near(f:se()["l(log_emp, 1)"], 0.562348169123055297, 1e-6, "collapsed: Windmeijer SE (pgmm vcovHC)")
  T.near(f.stats.hansen.statistic, 11.626811698065202, 1e-6, "collapsed: Hansen (pgmm sargan)")
  T.near(f.stats.ar2.statistic, 0.44825769632865931, 1e-6, "collapsed: AR(2) (pgmm mtest)")
  T.check(f.stats.n_instruments == 18, "collapsed: 18 instruments (pgmm: 18)", f.stats.n_instruments)

  -- ... | lag(log_emp, 2:99) + lag(log_wage, 2:3) + lag(log_capital, 2:3), transformation = "ld", collapse = TRUE
  local s = gmm.gmm(d, BB, { gmm = { "log_emp 2 99", "log_wage 2 3", "log_capital 2 3" }, system = true,
    collapse = true })
  T.near(s:coef()["l(log_emp, 1)"], 0.9114783494753802007, 1e-8, "collapsed system GMM with lag limits (pgmm)")
  T.near(s:coef()["(Intercept)"], 1.1616202248993892088, 1e-8, "collapsed system GMM: intercept (pgmm)")
  T.near(s:se()["l(log_capital, 1)"], 0.514569711744394032, 1e-6, "collapsed system GMM: Windmeijer SE (pgmm)")
  T.near(s.stats.ar1.statistic, -4.2365207673434382, 1e-6, "collapsed system GMM: AR(1) (pgmm)")
  T.check(s.stats.n_instruments == 22, "collapsed system GMM: 22 instruments (pgmm: 22)", s.stats.n_instruments)

  -- effect = "individual", model = "onestep", all three variables instrumented by lags 2:99
  local i = gmm.gmm(d, "log_emp ~ l(log_emp, 1) + l(log_wage, 0:1) + l(log_capital, 0:1)",
    { gmm = { "log_emp 2 99", "log_wage 2 99", "log_capital 2 99" }, steps = 1 })
  T.near(i:coef()["l(log_wage, 0)"], -0.71784391173801687, 1e-8, "no time dummies, one-step (pgmm individual)")
  T.near(i:se()["l(log_wage, 0)"], 0.102513484001775110, 1e-6, "one-step robust SE (pgmm individual)")
  T.near(i.stats.hansen.statistic, 87.655780158567723, 1e-6, "one-step: Hansen (pgmm individual)")
  T.check(#i.names == 5 and i.stats.n_instruments == 84, "no time dummies: 5 coefficients, 84 instruments")
end

-- ---- difference-in-Hansen, notes, the fit protocol ---------------------------------------
local sys = gmm.gmm(d, BB, { gmm = { "log_emp 2 99", "log_wage 2 99", "log_capital 2 99" }, system = true })
do
  local groups = {}
  for _, c in ipairs(sys.stats.diff_hansen) do
    groups[c.group] = c
    T.check(c.statistic >= 0 and c.df > 0 and c.excluded.df == sys.stats.n_instruments - c.df - #sys.names,
      "difference-in-Hansen " .. c.group .. ": C >= 0 with the df of the group", c.statistic)
  end
  T.check(groups["gmm(log_emp, 2:99)"] and groups["gmm(log_emp, 2:99) levels"] and groups["levels equation (GMM)"]
    and groups["time dummies"], "difference-in-Hansen for each gmm() group, its levels part and all levels")
  local lv = groups["levels equation (GMM)"]
  T.near(lv.statistic + lv.excluded.statistic, sys.stats.hansen.statistic, 1e-12, "C = J - J without the group")
  T.check(sys.capabilities.dynamic and sys.capabilities.dynamic[1] == 1 and sys.capabilities.predict
    and sys.capabilities.draw and not sys.capabilities.refit, "dynamic {1}, predict, draw; no refit")
  T.check(sys:uses_t() == false, "z and chi2 inference")
  local ab = gmm.gmm(d, AB, { gmm = { "log_emp 2 99" } })
  T.check(ab.capabilities.dynamic[1] == 1 and ab.capabilities.dynamic[2] == 2, "dynamic {1, 2} from l(log_emp, 1:2)")
end

-- ---- instruments beyond the number of entities: a note --------------------------------
do
  local small = d:filter("firm <= 20")
  local f = gmm.gmm(small, BB, { gmm = { "log_emp 2 99", "log_wage 2 99" }, system = true })
  local found = false
  for _, n in ipairs(f.notes) do found = found or (n:find("exceed the 20 entities") ~= nil) end
  T.check(found and f.stats.n_instruments > 20, "more instruments than entities: a note", table.concat(f.notes, " | "))
end

-- ---- simulation: AR(1) with fixed effects (Nickell bias in within-FE) -------------------
local function simulate(N, Tn, rho, beta, seed)
  local rng = sp.rng(seed)
  local id, year, y, x = {}, {}, {}, {}
  for i = 1, N do
    local a = rng:normal()
    local yprev = a / (1 - rho) + rng:normal(0, 1 / math.sqrt(1 - rho * rho))
    for t = -10, Tn do  -- 10 burn-in periods
      local xt = rng:normal()  -- strictly exogenous and unrelated to a: valid in levels too
      local yt = rho * yprev + beta * xt + a + rng:normal()
      if t >= 1 then
        id[#id + 1], year[#year + 1], y[#y + 1], x[#x + 1] = i, 2000 + t, yt, xt
      end
      yprev = yt
    end
  end
  local f = sp.frame { id = id, year = year, y = y, x = x }
  return f:panel { entity = "id", time = "year" }
end
do
  local s = simulate(500, 7, 0.5, 0.3, 11)
  local fe = sp.ols(s, "y ~ l(y, 1) + x | id")
  local dg = gmm.gmm(s, "y ~ l(y, 1) + x", { gmm = { "y 2 99" }, iv = { "x" } })
  local sg = gmm.gmm(s, "y ~ l(y, 1) + x", { gmm = { "y 2 99" }, iv = { "x" }, system = true })
  local fo = gmm.gmm(s, "y ~ l(y, 1) + x", { gmm = { "y 2 99" }, iv = { "x" }, transformation = "fod" })
  local bfe = fe:coef()["l(y, 1)"]
  T.check(bfe < 0.5 - 0.1, "within-FE is biased down (Nickell): " .. bfe)
  for name, f in pairs({ difference = dg, system = sg, ["orthogonal deviations"] = fo }) do
    local b, se = f:coef()["l(y, 1)"], f:se()["l(y, 1)"]
    T.check(math.abs(b - 0.5) < 3 * se and se < 0.06, name .. " GMM recovers rho = 0.5: " .. b .. " (" .. se .. ")")
    T.check(f.stats.ar2.pvalue > 0.01 and f.stats.ar1.pvalue < 0.01, name .. ": AR(1) rejects, AR(2) does not")
  end
  -- balanced: both transformations keep T - 2 periods with l(y, 1); a gap (id 3 without 2004) costs
  -- differences three rows (2004, 2005 without its lag, 2006 without 2005) and deviations two
  local gapped = s:filter("not (id == 3 and year == 2004)")
  local dgg = gmm.gmm(gapped, "y ~ l(y, 1) + x", { gmm = { "y 2 99" }, iv = { "x" } })
  local fog = gmm.gmm(gapped, "y ~ l(y, 1) + x", { gmm = { "y 2 99" }, iv = { "x" }, transformation = "fod" })
  T.check(fo.stats.nobs_transformed == 2500 and dg.stats.nobs_transformed == 2500 and
    dgg.stats.nobs_transformed == 2497 and fog.stats.nobs_transformed == 2498,
    "a gap: differences lose 3 rows, orthogonal deviations 2",
    dgg.stats.nobs_transformed .. ", " .. fog.stats.nobs_transformed)
  T.check(math.abs(dgg:coef()["l(y, 1)"] - dg:coef()["l(y, 1)"]) < 0.02, "a gap: the estimate stays close")
  -- long run: b / (1 - rho) with its delta-method SE
  local lr = dg.stats.long_run.x
  local b, r = dg:coef().x, dg:coef()["l(y, 1)"]
  local V = dg:vcov()
  local g1, g2 = 1 / (1 - r), b / (1 - r) ^ 2
  local var = g1 * g1 * V.x.x + 2 * g1 * g2 * V.x["l(y, 1)"] + g2 * g2 * V["l(y, 1)"]["l(y, 1)"]
  T.near(lr.estimate, b / (1 - r), 1e-12, "long-run effect b / (1 - rho)")
  T.near(lr.se, math.sqrt(var), 1e-10, "long-run delta-method SE")
  T.check(math.abs(lr.estimate - 0.6) < 3 * lr.se, "long-run effect near 0.3 / 0.5 = 0.6: " .. lr.estimate)
end

-- ---- the xtabond2 preset: iv() columns stacked, levels instruments dated t - a + 1 -------
do
  local spec = "log_emp ~ l(log_emp, 1) + log_wage"
  local p = gmm.gmm(d, spec, { gmm = { "log_emp 3 4" }, iv = { "log_wage" }, system = true, collapse = true })
  local x = gmm.gmm(d, spec, { gmm = { "log_emp 3 4" }, iv = { "log_wage" }, system = true, collapse = true,
    compat = "xtabond2" })
  -- pgmm: 2 collapsed lags + 1 levels column + iv in each equation (2), no constant without time dummies;
  -- xtabond2: the same gmm columns, iv stacked (1) and the constant (1)
  T.check(p.stats.n_instruments == 5 and x.stats.n_instruments == 5, "instrument counts: pgmm 5, xtabond2 5",
    p.stats.n_instruments .. ", " .. x.stats.n_instruments)
  T.check(p.index["(Intercept)"] == nil and x.index["(Intercept)"] ~= nil, "system GMM constant: xtabond2 only")
  T.check(math.abs(p:coef()["l(log_emp, 1)"] - x:coef()["l(log_emp, 1)"]) > 1e-6,
    "the presets give different estimates")
end

-- ---- dynamic counterfactuals: the shocked outcome feeds its lags -------------------------
do
  local ab = gmm.gmm(d, AB, { gmm = { "log_emp 2 99" } })
  local c = ab:coef()
  local r = sp.counterfactual { fit = ab, data = d, entity = "firm", time = "year",
    shocks = { { variable = "log_wage", from = 1980, change = "+0.1" } } }
  local e = {}
  for _, u in ipairs(r.units) do if u.entity == "1" or u.entity == 1 then e[u.period_key] = u.effect end end
  local w0, w1, r1, r2 = c["l(log_wage, 0)"], c["l(log_wage, 1)"], c["l(log_emp, 1)"], c["l(log_emp, 2)"]
  T.near(e["1980"], 0.1 * w0, 1e-9, "impact effect b0 * shock")
  T.near(e["1981"], 0.1 * (w0 + w1) + r1 * e["1980"], 1e-9, "second period: b0 + b1 and rho1 times the first effect")
  T.near(e["1982"], 0.1 * (w0 + w1) + r1 * e["1981"] + r2 * e["1980"], 1e-9, "third period: both outcome lags")
  -- predictions in levels: the fitted entity and period effects reproduce the data on average
  local p = ab:predict(d)
  local s, n = 0, 0
  for i = 1, d:nrow() do
    if p[i] == p[i] then s, n = s + d.log_emp[i] - p[i], n + 1 end
  end
  T.check(n > 600 and math.abs(s / n) < 1e-10, "level predictions: residuals average zero per entity", s / n)
end

-- ---- etable rows ------------------------------------------------------------------------
do
  local tab = sp.etable { sys }:markdown()
  T.check(tab:find("Instruments") and tab:find("AR%(2%) p") and tab:find("Hansen p") and tab:find("| *113 *|"),
    "etable: instruments, AR(2) and Hansen rows", tab)
end

-- ---- registry and scenario ---------------------------------------------------------------
do
  local e = registry.get("gmm")
  T.check(e and e.options.gmm.required and e.capabilities.predict and not e.capabilities.refit, "registry entry gmm")
  local out = assert(sp.sys.mkdtemp("/tmp/sp-gmm-"))
  local s = sp.scenario.load("scenarios/innovation_dynamic_gmm.yaml")
  local dir = sp.scenario.run(s, { outdir = out .. "/run" })
  local res = sp.json.read(dir .. "/results.json")
  local west = res.experiments.west_digital.groups["region_nbs=West"].periods
  T.check(west["2019"].mean == 0 and west["2020"].mean ~= 0, "scenario: the shock starts in 2020")
  T.check(math.abs(west["2022"].mean) > 1.5 * math.abs(west["2020"].mean),
    "scenario: the lagged outcome carries the effect forward (2022 beyond the impact)",
    west["2020"].mean .. " -> " .. west["2022"].mean)
  local m = res.models.main.gmm
  T.check(m and m.ar2 and m.hansen and m.long_run and m.long_run.lndf,
    "scenario: AR(2), Hansen and long-run in results.json")
  local md = T.read(dir .. "/gmm_main.md")
  T.check(md:find("AR%(2%)") and md:find("Hansen") and md:find("Long%-run"), "scenario: gmm_main.md written")
  os.execute("rm -rf " .. out)
end

-- ---- errors ----------------------------------------------------------------------------
T.checkerr("option 'gmm' is required", gmm.gmm, d, AB, {})
T.checkerr("unknown option 'colapse'.*did you mean 'collapse'", gmm.gmm, d, AB,
  { gmm = { "log_emp 2 99" }, colapse = true })
T.checkerr("transformation' must be \"fd\"", gmm.gmm, d, AB, { gmm = { "log_emp 2 99" }, transformation = "d" })
T.checkerr("'steps' must be 1 or 2", gmm.gmm, d, AB, { gmm = { "log_emp 2 99" }, steps = 3 })
T.checkerr("first <= last", gmm.gmm, d, AB, { gmm = { "log_emp 4 2" } })
T.checkerr("gmm%[1%] = 'log_emp 2 99 1'", gmm.gmm, d, AB, { gmm = { "log_emp 2 99 1" } })
T.checkerr("9 periods are too few: the lags leave no period", gmm.gmm, d, AB, { gmm = { "log_emp 12 99" } })
T.checkerr("gmm%(log_wage, 9:%.%): no period of the 9 has lag 9 of log_wage", gmm.gmm, d, AB,
  { gmm = { "log_emp 2 99", "log_wage 9 ." } })
T.checkerr("only term after '|' can be the panel time 'year'", gmm.gmm, d, "log_emp ~ l(log_emp, 1) | firm",
  { gmm = { "log_emp 2 99" } })
T.checkerr("no IV part", gmm.gmm, d, "log_emp ~ l(log_emp, 1) | year | log_wage ~ log_capital",
  { gmm = { "log_emp 2 99" } })
T.checkerr("need a panel index", gmm.gmm, sp.read_csv("tests/reference/data/EmplUK.csv"), AB,
  { gmm = { "log_emp 2 99" } })
T.checkerr("instrument 'nosuch'", gmm.gmm, d, AB, { gmm = { "nosuch 2 99" } })
T.checkerr("not identified", gmm.gmm, d, AB, { gmm = { "log_emp 2 2" }, iv = {}, collapse = true })
do
  -- T = 3: one differenced period with l(y, 1), no AR(2)
  local t3 = d:filter("year >= 1980 and year <= 1982")
  local f = gmm.gmm(t3, "log_emp ~ l(log_emp, 1) + log_wage", { gmm = { "log_emp 2 99" } })
  local noted = false
  for _, n in ipairs(f.notes) do noted = noted or n:find("AR%(2%) is not computed") ~= nil end
  T.check(f.stats.ar2 == nil and noted and f.stats.n_periods == 3, "T = 3: estimates, AR(2) not computed (a note)")
  T.checkerr("3 periods are too few", gmm.gmm, t3, "log_emp ~ l(log_emp, 1:2)", { gmm = { "log_emp 2 99" } })
end

T.done()
