-- Reference handlers for instrumental variables: plm within-2SLS (plm_within_iv)
-- and AER::ivreg (ivreg_2sls), every quantity of the case files checked.
local iv = require "spillover.iv"

local H = {}

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

--- Split an R term list "a + b + lag(x, 1)" into terms (commas inside calls kept).
local function terms(s)
  local out, depth, cur = {}, 0, {}
  for ch in s:gmatch(".") do
    if ch == "(" then depth = depth + 1 elseif ch == ")" then depth = depth - 1 end
    if ch == "+" and depth == 0 then
      out[#out + 1] = trim(table.concat(cur)); cur = {}
    else
      cur[#cur + 1] = ch
    end
  end
  out[#out + 1] = trim(table.concat(cur))
  return out
end

--- R's two-part IV formula "y ~ regressors | instruments" in spillover's
--- syntax "y ~ exog | fe | endog ~ excluded" (lag(x, k) -> l(x, k)).
local function iv_formula(rformula, fe)
  local lhs, rhs, inst = rformula:match("^(.-)~(.-)|(.*)$")
  local function norm(t) return (t:gsub("^lag%(", "l(")) end
  local R, I = terms(rhs), terms(inst)
  local inR, inI = {}, {}
  for _, t in ipairs(R) do inR[norm(t)] = true end
  for _, t in ipairs(I) do inI[norm(t)] = true end
  local exog, endog, excl = {}, {}, {}
  for _, t in ipairs(R) do
    local n = norm(t)
    if inI[n] then exog[#exog + 1] = n else endog[#endog + 1] = n end
  end
  for _, t in ipairs(I) do
    local n = norm(t)
    if not inR[n] then excl[#excl + 1] = n end
  end
  return string.format("%s ~ %s | %s | %s ~ %s", trim(lhs), #exog > 0 and table.concat(exog, " + ") or "1",
    fe or "0", table.concat(endog, " + "), table.concat(excl, " + "))
end
H._iv_formula = iv_formula

local function test_checks(checks, label, got, want, tol)
  tol = tol or 1e-9
  checks[#checks + 1] = { label .. " statistic", got and got.statistic, want.statistic, tol }
  local df1 = type(want.df) == "table" and want.df.df1 or want.df1 or want.df
  local df2 = type(want.df) == "table" and want.df.df2 or want.df2
  if df1 then checks[#checks + 1] = { label .. " df1", got and got.df1, df1, 0 } end
  if df2 then checks[#checks + 1] = { label .. " df2", got and got.df2, df2, 0 } end
  checks[#checks + 1] = { label .. " pvalue", got and got.pvalue, want.pvalue, 1e-6, 1e-300 }
end

H.plm_within_iv = function(case, ctx)
  local d = ctx.dataset(case)
  if case.options.effect ~= "individual" then error(ctx.NOT_COVERED .. "only individual effects are mapped") end
  local fit = iv.ivreg(d, iv_formula(case.formula, case.entity), { compat = "plm" })
  local checks = ctx.fit_checks(case, fit)
  local s = case.stats
  local function add(...) checks[#checks + 1] = { ... } end
  add("normal inference (zstat)", fit:uses_t(), case.zstat == nil)
  add("r2 (within)", fit.stats.r2_within, s.r2, 1e-10)
  add("adj_r2 (within)", fit.stats.adj_r2_within, s.adj_r2, 1e-10)
  add("ssr", fit.stats.ssr, s.ssr, 1e-10)
  add("df_resid", fit.stats.df_resid, s.df_resid, 0)
  add("sigma2_idios", fit.stats.sigma ^ 2, s.sigma2_idios, 1e-10)
  add("n_entities", fit.stats.n_entities, s.n_entities, 0)
  add("n_periods", fit.stats.n_periods, s.n_periods, 0)
  -- rows per entity in the estimation sample
  local codes, nlev = fit.design:codes(case.entity)
  local cnt = {}
  for i = 1, nlev do cnt[i] = 0 end
  for _, c in ipairs(codes) do cnt[c] = cnt[c] + 1 end
  local tmin, tmax = math.huge, 0
  for _, c in ipairs(cnt) do tmin, tmax = math.min(tmin, c), math.max(tmax, c) end
  add("Ti_min", tmin, s.Ti_min, 0)
  add("Ti_max", tmax, s.Ti_max, 0)
  add("balanced (estimation sample)", tmin == tmax, s.balanced)
  add("model", fit.absorb ~= nil and "within" or "pooling", s.model)
  add("effect", #fit.fe == 1 and fit.fe[1].name == case.entity and "individual" or "other", s.effect)
  local jt = s.joint_test
  test_checks(checks, "joint Wald chi2", fit.stats.wald, jt, 1e-8)
  add("joint test is chi2", fit.stats.wald and fit.stats.wald.kind, jt.statistic_name == "Chisq" and "Wald chi2" or "F")
  return checks
end

H.ivreg_2sls = function(case, ctx)
  local d = ctx.dataset(case)
  local subset = case.options.subset
  if subset then d = d:filter(subset) end
  local v = case.options.vcov
  local vcov = v == "classic" and "iid" or v:match("vcovHC (HC%d)")
  if not vcov then error(ctx.NOT_COVERED .. "vcov '" .. v .. "' is not mapped") end
  local fit = iv.ivreg(d, iv_formula(case.formula), { vcov = vcov:lower(), compat = "sandwich" })
  local checks = ctx.fit_checks(case, fit)
  local s = case.stats
  local function add(...) checks[#checks + 1] = { ... } end
  add("t inference", fit:uses_t(), case.tstat ~= nil)
  add("r2", fit.stats.r2, s.r2, 1e-10)
  add("adj_r2", fit.stats.adj_r2, s.adj_r2, 1e-10)
  add("sigma", fit.stats.sigma, s.sigma, 1e-10)
  add("ssr", fit.stats.ssr, s.ssr, 1e-10)
  add("df_resid", fit.stats.df_resid, s.df_resid, 0)
  test_checks(checks, "wald", fit.stats.wald, s.wald, 1e-9)
  local dg = fit.stats.diagnostics
  for name, want in pairs(s.diagnostics or {}) do
    test_checks(checks, "diagnostics " .. name, dg[name], want, 1e-9)
  end
  local fsw = s.first_stage
  if fsw then
    local fs = fit.stats.first_stage[1]
    for _, q in ipairs { "coef", "se", "tstat", "pvalue" } do
      for nm, want in pairs(fsw[q]) do
        add("first_stage " .. q .. " " .. nm, fs[q][nm], want, q == "pvalue" and 1e-6 or 1e-9, q == "pvalue" and 1e-300 or nil)
      end
    end
    add("first_stage r2", fs.r2, fsw.r2, 1e-10)
    add("first_stage sigma", fs.sigma, fsw.sigma, 1e-10)
    test_checks(checks, "first_stage excluded_instruments_F", fs.excluded_instruments_F, fsw.excluded_instruments_F, 1e-9)
  end
  return checks
end

return H
