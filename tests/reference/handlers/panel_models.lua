-- Reference handlers for plm's random-effects, between and first-difference
-- models (plm 2.6): every quantity of each case file is compared.
local pm = require "spillover.panel_models"

local H = {}

local function add(checks, name, got, want, rtol, atol)
  checks[#checks + 1] = { name, got, want, rtol, atol }
end

--- The joint test: Wald chi2 (random) or F (between, fd), statistic, df, p-value.
local function joint_checks(checks, fit, jt)
  local F = fit.stats.F or {}
  add(checks, "joint test statistic", F.statistic, jt.statistic, 1e-8)
  local want_kind = jt.statistic_name == "Chisq" and "Wald chi2" or "F"
  add(checks, "joint test kind", F.kind, want_kind)
  if type(jt.df) == "table" then
    add(checks, "joint test df1", F.df1, jt.df.df1, 0)
    add(checks, "joint test df2", F.df2, jt.df.df2, 0)
  else
    add(checks, "joint test df", F.df1, jt.df, 0)
  end
  add(checks, "joint test pvalue", F.pvalue, jt.pvalue, 1e-6, 1e-300)
end

--- The statistics every plm case carries.
local function common_checks(checks, fit, s)
  local fs = fit.stats
  add(checks, "model", fs.model, s.model)
  add(checks, "effect", fs.effect, s.effect)
  add(checks, "n_entities", fs.n_entities, s.n_entities, 0)
  add(checks, "n_periods", fs.n_periods, s.n_periods, 0)
  add(checks, "balanced", fs.balanced, s.balanced)
  add(checks, "Ti_min", fs.Ti_min, s.Ti_min, 0)
  add(checks, "Ti_max", fs.Ti_max, s.Ti_max, 0)
  add(checks, "df_resid", fs.df_resid, s.df_resid, 0)
  add(checks, "ssr", fs.ssr, s.ssr, 1e-9)
  add(checks, "r2", fs.r2, s.r2, 1e-9)
  add(checks, "adj_r2", fs.adj_r2, s.adj_r2, 1e-9)
  joint_checks(checks, fit, s.joint_test)
end

H.plm_random = function(case, ctx)
  local d = ctx.dataset(case)
  local o = case.options
  local fit = pm.re(d, case.formula, { method = o["random.method"], effect = o.effect, compat = "plm" })
  local checks = ctx.fit_checks(case, fit)
  local s, fs = case.stats, fit.stats
  common_checks(checks, fit, s)
  add(checks, "normal inference (z)", fit:uses_t(), false)
  add(checks, "ercomp_method", fs.ercomp_method, s.ercomp_method)
  for k, want in pairs(s.sigma2) do add(checks, "sigma2 " .. k, fs.sigma2[k], want, 1e-9) end
  for k in pairs(fs.sigma2) do add(checks, "sigma2 " .. k .. " is reported", s.sigma2[k] ~= nil, true) end
  if type(s.theta) == "table" then
    for k, want in pairs(s.theta) do add(checks, "theta " .. k, type(fs.theta) == "table" and fs.theta[k], want, 1e-9) end
  elseif s.theta then
    add(checks, "theta", fs.theta, s.theta, 1e-9)
  end
  if s.theta_by_entity then
    local by = fs.theta_by_entity or {}
    for lv, want in pairs(s.theta_by_entity) do add(checks, "theta " .. case.entity .. "=" .. lv, by[lv], want, 1e-9) end
  end
  return checks
end

H.plm_between = function(case, ctx)
  local d = ctx.dataset(case)
  local fit = pm.between(d, case.formula, { compat = "plm" })
  local checks = ctx.fit_checks(case, fit)
  common_checks(checks, fit, case.stats)
  add(checks, "t inference", fit:uses_t(), true)
  return checks
end

H.plm_fd = function(case, ctx)
  local d = ctx.dataset(case)
  local fit = pm.fd(d, case.formula, { compat = "plm" })
  local checks = ctx.fit_checks(case, fit)
  common_checks(checks, fit, case.stats)
  add(checks, "t inference", fit:uses_t(), true)
  return checks
end

return H
