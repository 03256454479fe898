-- Reference handlers for the panel specification tests (plm::pFtest,
-- plm::plmtest, plm::phtest): every field of stats.test is checked.
local pt = require "spillover.panel_tests"

local H = {}

--- Checks of an htest against a case's stats.test (statistic, df, p-value,
--- names and labels) and nobs.
local function test_checks(case, h)
  local want = case.stats.test
  local checks = {}
  local function add(...) checks[#checks + 1] = { ... } end
  add("statistic", h.statistic, want.statistic, 1e-9)
  add("statistic_name", h.statistic_name, want.statistic_name)
  if type(want.df) == "table" then
    for name, v in pairs(want.df) do add(name, h[name], v, 0) end
  elseif want.df ~= nil then
    add("df", h.df, want.df, 0)
  else
    add("no df", #h.parameter == 0, true)
  end
  -- p-values: 1e-6 relative; an underflowed 0 must be below 1e-300 here too.
  -- Below ~1e-250 R's pf (TOMS 708 pbeta) keeps only ~5 digits: for
  -- test_pftest_produc_twoways R has 1.5516249e-276 where mpmath at 40 digits
  -- gives 1.551620647952239e-276 (= spillover's), so that far tail gets 1e-5.
  local rtol = want.pvalue ~= 0 and want.pvalue < 1e-250 and 1e-5 or 1e-6
  add("pvalue", h.pvalue, want.pvalue, rtol, 1e-300)
  add("method", h.method, want.method)
  add("alternative", h.alternative, want.alternative)
  add("nobs", h.nobs, case.nobs, 0)
  return checks
end

H.test_F_effects = function(case, ctx)
  local d = ctx.dataset(case)
  return test_checks(case, pt.pftest(d, case.formula, { effect = case.options.effect }))
end

H.test_LM_effects = function(case, ctx)
  local d = ctx.dataset(case)
  return test_checks(case, pt.plmtest(d, case.formula, { effect = case.options.effect, type = case.options.type }))
end

H.test_hausman = function(case, ctx)
  local ok, pm = pcall(require, "spillover.panel_models")
  if not ok or type(pm) ~= "table" or type(pm.re) ~= "function" then
    error(ctx.NOT_COVERED .. "sp.re (spillover.panel_models) is not available yet")
  end
  local d = ctx.dataset(case)
  local method = (case.options.test or ""):match("random (%a+)%)") or "swar"
  return test_checks(case, pt.phtest(d, case.formula, { method = method }))
end

return H
