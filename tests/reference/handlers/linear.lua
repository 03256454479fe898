-- Reference handlers for pooled OLS, plm within/pooling and statsmodels LSDV.
local sp = require "spillover"

local H = {}

--- Map a case's vcov description onto spillover's vcov option.
local function vcov_of(case)
  local v = case.options and case.options.vcov or "classic"
  local cl = case.options and case.options.cluster
  if v == "classic" or v == "nonrobust" then return "iid" end
  local hc = v:match('sandwich::vcovHC (HC%d)') or v:match("^(HC%d)$")
  if hc then return hc:lower() end
  if v:match("vcovCL") or v:match("^cluster") then return { cluster = cl } end
  local t = v:match('arellano" type="(%w+)"')
  if t then return { cluster = case.entity, type = t:lower() } end
  if v:match("vcovDC") then return { cluster = { case.entity, case.time }, gadj = "none", dof = "none", multi0 = true } end
  error("NOT_COVERED: vcov '" .. v .. "' is not mapped")
end

local function stat_checks(checks, list)
  for _, c in ipairs(list) do checks[#checks + 1] = c end
  return checks
end

local function joint_checks(fit, case, checks)
  local jt = case.stats.joint_test or case.stats.fstat
  if not jt then return end
  local F = fit.stats.F
  checks[#checks + 1] = { "F statistic", F and F.statistic, jt.statistic, 1e-8 }
  local df1 = type(jt.df) == "table" and jt.df.df1 or jt.df1 or jt.df
  local df2 = type(jt.df) == "table" and jt.df.df2 or jt.df2
  checks[#checks + 1] = { "F df1", F and F.df1, df1, 0 }
  if df2 then checks[#checks + 1] = { "F df2", F and F.df2, df2, 0 } end
  checks[#checks + 1] = { "F pvalue", F and F.pvalue, jt.pvalue, 1e-6, 1e-300 }
end

H.ols = function(case, ctx)
  local d = ctx.dataset(case)
  local compat = case.case:match("^sm_") and "statsmodels" or "sandwich"
  local fit = sp.ols(d, case.formula, { vcov = vcov_of(case), compat = compat })
  local checks = ctx.fit_checks(case, fit)
  local s = case.stats
  stat_checks(checks, {
    { "r2", fit.stats.r2, s.r2, 1e-10 },
    { "ssr", fit.stats.ssr, s.ssr, 1e-10 },
    { "df_resid", fit.stats.df_resid, s.df_resid, 0 },
  })
  if s.adj_r2 then checks[#checks + 1] = { "adj_r2", fit.stats.adj_r2, s.adj_r2, 1e-10 } end
  if s.sigma then checks[#checks + 1] = { "sigma", fit.stats.sigma, s.sigma, 1e-10 } end
  if s.loglik then checks[#checks + 1] = { "loglik", fit.stats.loglik, s.loglik, 1e-10 } end
  if s.use_t == false then
    checks[#checks + 1] = { "normal inference (use_t false)", fit:uses_t(), false }
  elseif s.df_resid_inference then
    checks[#checks + 1] = { "df for inference", fit.df_resid, s.df_resid_inference, 0 }
  end
  if compat ~= "statsmodels" then joint_checks(fit, case, checks) end
  return checks
end

H.plm_pooling = function(case, ctx)
  local d = ctx.dataset(case)
  local fit = sp.ols(d, case.formula, { vcov = vcov_of(case), compat = "plm" })
  local checks = ctx.fit_checks(case, fit)
  local s = case.stats
  stat_checks(checks, {
    { "r2", fit.stats.r2, s.r2, 1e-10 }, { "adj_r2", fit.stats.adj_r2, s.adj_r2, 1e-10 },
    { "ssr", fit.stats.ssr, s.ssr, 1e-10 }, { "df_resid", fit.stats.df_resid, s.df_resid, 0 },
    { "n_entities", fit.stats.n_entities, s.n_entities, 0 }, { "n_periods", fit.stats.n_periods, s.n_periods, 0 },
  })
  joint_checks(fit, case, checks)
  return checks
end

local function fe_formula(case)
  local fe = case.options.effect == "twoways" and (case.entity .. " + " .. case.time) or case.entity
  return case.formula .. " | " .. fe
end

H.plm_within = function(case, ctx)
  local d = ctx.dataset(case)
  local fit = sp.ols(d, fe_formula(case), { vcov = vcov_of(case), compat = "plm" })
  local checks = ctx.fit_checks(case, fit)
  local s = case.stats
  stat_checks(checks, {
    { "r2 (within)", fit.stats.r2_within, s.r2, 1e-10 }, { "adj_r2 (within)", fit.stats.adj_r2_within, s.adj_r2, 1e-10 },
    { "ssr", fit.stats.ssr, s.ssr, 1e-10 }, { "df_resid", fit.stats.df_resid, s.df_resid, 0 },
    { "sigma2_idios", fit.stats.sigma ^ 2, s.sigma2_idios, 1e-10 },
    { "n_entities", fit.stats.n_entities, s.n_entities, 0 }, { "n_periods", fit.stats.n_periods, s.n_periods, 0 },
  })
  if s.r2_overall_corr then checks[#checks + 1] = { "r2_overall_corr", fit.stats.r2_overall_corr, s.r2_overall_corr, 1e-9 } end
  if s.r2_between_corr then checks[#checks + 1] = { "r2_between_corr", fit.stats.r2_between_corr, s.r2_between_corr, 1e-9 } end
  joint_checks(fit, case, checks)
  local fx = fit:fixef()
  local tol = 1e-8
  for lv, want in pairs(s.fixef_individual_level or {}) do
    checks[#checks + 1] = { "fixef " .. case.entity .. "=" .. lv, fx[case.entity][lv], want, tol, 1e-9 }
  end
  local e1 = fx[case.entity]
  local t1 = case.options.effect == "twoways" and fx[case.time] or nil
  if s.fixef_time_level then
    -- alpha_<first unit> + lambda_t
    local first
    for lv in pairs(e1) do if first == nil or lv < first then first = lv end end
    local keys = {}
    for lv in pairs(e1) do keys[#keys + 1] = lv end
    table.sort(keys, function(a, b)
      local na, nb = tonumber(a), tonumber(b)
      if na and nb then return na < nb end
      return a < b
    end)
    for lv, want in pairs(s.fixef_time_level) do
      checks[#checks + 1] = { "fixef " .. case.time .. "=" .. lv, e1[keys[1]] + t1[lv], want, tol, 1e-9 }
    end
  end
  for key, want in pairs(s.fixef_twoways_sum or {}) do
    local i, t = key:match("^(.*)-([^-]+)$")
    checks[#checks + 1] = { "fixef sum " .. key, (e1[i] or 0 / 0) + (t1[t] or 0 / 0), want, tol, 1e-9 }
  end
  return checks
end

H.ols_lsdv = function(case, ctx)
  -- statsmodels LSDV = within estimator with K counting every dummy.
  local d = ctx.dataset(case)
  local twoway = case.case:match("twoways")
  local fe = twoway and (case.entity .. " + " .. case.time) or case.entity
  local v = case.options.vcov
  local vcov = "iid"
  if v:match("^cluster") then
    vcov = { cluster = case.options.cluster, gadj = v:match("use_correction=False") and "none" or "each",
      dof = v:match("use_correction=False") and "none" or "(n-1)/(n-k)", tdf = "clusters" }
  end
  local formula = case.formula:gsub("%s*%+%s*C%b()", "")
  local fit = sp.ols(d, formula .. " | " .. fe, { vcov = vcov, compat = "statsmodels" })
  local checks = ctx.fit_checks(case, fit)
  local s = case.stats
  stat_checks(checks, {
    { "r2", fit.stats.r2, s.r2, 1e-10 }, { "ssr", fit.stats.ssr, s.ssr, 1e-10 },
    { "df_resid", fit.stats.df_resid, s.df_resid, 0 },
  })
  if s.use_t == false then
    checks[#checks + 1] = { "normal inference (use_t false)", fit:uses_t(), false }
  else
    checks[#checks + 1] = { "df for inference", fit.df_resid, s.df_resid_inference, 0 }
  end
  return checks
end

return H
