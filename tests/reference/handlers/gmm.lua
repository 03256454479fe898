-- Reference handler for plm::pgmm (plm 2.6): difference and system GMM on
-- EmplUK.  The case's R call is translated to sp.gmm's options (the mapping
-- docs/estimators/gmm.md documents) and every quantity is compared:
-- coefficients at 1e-8 relative, standard errors, z, p-values, the
-- covariance and the tests at 1e-6.
local gmm = require "spillover.gmm"

local H = {}

local function add(checks, name, got, want, rtol, atol)
  checks[#checks + 1] = { name, got, want, rtol, atol }
end

--- plm's coefficient name -> sp.gmm's: lag(x, 0:1)1 -> l(x, 1), 1979 -> year::1979.
local function our_name(name, time)
  local v, lag = name:match("^lag%(([%w_.]+), [%d:]+%)(%d+)$")
  if v then return "l(" .. v .. ", " .. lag .. ")" end
  v, lag = name:match("^lag%(([%w_.]+), (%d+)%)$")
  if v then return "l(" .. v .. ", " .. lag .. ")" end
  if name:match("^%d+$") then return time .. "::" .. name end
  return name
end

--- The model part of plm's formula with l() for lag() (lag(x, 0:1) is l(x, 0:1)),
--- and the gmm() specs from its second part.
local function translate(formula)
  local main, inst = formula:match("^(.-)%s*|%s*(.+)$")
  local f = main:gsub("lag%(", "l(")
  local specs = {}
  for v, a, b in inst:gmatch("lag%(([%w_.]+), (%d+):(%d+)%)") do specs[#specs + 1] = v .. " " .. a .. " " .. b end
  return f, specs
end

local function test_checks(checks, label, got, want)
  got = got or {}
  add(checks, label .. " statistic", got.statistic, want.statistic, 1e-6)
  if want.df then add(checks, label .. " df", got.df, want.df, 0) end
  add(checks, label .. " pvalue", got.pvalue, want.pvalue, 1e-6, 1e-300)
end

H.plm_pgmm = function(case, ctx)
  local d = ctx.dataset(case)
  local o, s = case.options, case.stats
  local formula, specs = translate(case.formula)
  local fit = gmm.gmm(d, formula, {
    gmm = specs, system = o.transformation == "ld", steps = o.model == "onestep" and 1 or 2,
    robust = s.robust, time_dummies = o.effect == "twoways", collapse = o.collapse, compat = "pgmm",
  })
  local checks = {}
  local coef, se, z, p, V = fit:coef(), fit:se(), fit:tstat(), fit:pvalue(), fit:vcov()
  for name, want in pairs(case.coef) do add(checks, "coef " .. name, coef[our_name(name, case.time)], want, 1e-8) end
  for name, want in pairs(case.se) do add(checks, "se " .. name, se[our_name(name, case.time)], want, 1e-6) end
  for name, want in pairs(case.zstat) do add(checks, "z " .. name, z[our_name(name, case.time)], want, 1e-6) end
  for name, want in pairs(case.pvalue) do
    add(checks, "pvalue " .. name, p[our_name(name, case.time)], want, 1e-6, 1e-300)
  end
  for r, row in pairs(case.vcov) do
    local gr = V[our_name(r, case.time)]
    for c, want in pairs(row) do
      local scale = math.sqrt(math.abs(case.vcov[r][r] * case.vcov[c][c]))
      add(checks, "vcov " .. r .. "," .. c, gr and gr[our_name(c, case.time)], want, 1e-6, 1e-6 * scale)
    end
  end
  local ncoef = 0
  for _ in pairs(case.coef) do ncoef = ncoef + 1 end
  add(checks, "coefficients (count)", #fit.names, ncoef, 0)
  add(checks, "nobs", fit.nobs, case.nobs, 0)
  add(checks, "normal inference (z)", fit:uses_t(), false)
  local fs = fit.stats
  add(checks, "n_entities", fs.n_entities, s.n_entities, 0)
  add(checks, "n_periods", fs.n_periods, s.n_periods, 0)
  add(checks, "n_instruments", fs.n_instruments, s.n_instruments, 0)
  test_checks(checks, "Hansen (pgmm's sargan, two-step weights)", fs.hansen, s.sargan_hansen)
  test_checks(checks, "Sargan (pgmm's sargan, one-step weights)", fs.sargan, s.sargan_onestep_weights)
  test_checks(checks, "AR(1)", fs.ar1, s.ar1)
  test_checks(checks, "AR(2)", fs.ar2, s.ar2)
  test_checks(checks, "Wald (coefficients)", fs.wald, s.wald_coef)
  test_checks(checks, "Wald (time dummies)", fs.wald_time, s.wald_time_dummies)
  return checks
end

return H
