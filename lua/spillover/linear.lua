-- spillover.linear: the linear estimators (OLS with absorbed fixed effects,
-- 2SLS, random effects, between, first differences) assembled from the public
-- primitives (sp.design, sp.absorb, sp.lsfit, sp.vcov, sp.fit), so that a
-- user's estimator written the same way is as fast and as well-behaved.
--
-- This module is the public face of three modules split by concern:
--   spillover.ols         estimation: sp.ols and the pipeline shared by the
--                         linear estimators (outcome checks, drops, joint
--                         tests, fit assembly, option checks)
--   spillover.predict     after the fit: fitted values, fixed effects,
--                         predictions on new data
--   spillover.vcov_rules  the vcov option and the compat presets (the C table)
-- `require "spillover.linear"` gives every function of the three.
local M = {}
for _, name in ipairs { "spillover.vcov_rules", "spillover.ols", "spillover.predict" } do
  for k, v in pairs(require(name)) do M[k] = v end
end

-- ---- registration (spillover.registry) ----------------------------------------------------

local registry = require "spillover.registry"
local OLS_MODEL_KEYS = { "vcov", "compat", "weights" }
local function scenario_ols(d, model, options)
  return M.ols(d, model.formula, registry.merged_options(model, options, OLS_MODEL_KEYS))
end
local OLS_OPTIONS = {
  tol = { type = "number", min = 0 }, maxiter = { type = "integer", min = 1 },
  threads = { type = "integer", min = 1, max = 2 }, singletons = { type = "string", enum = { "keep", "drop" } },
}
-- fe: the same estimator under the name panel users look for.
for _, name in ipairs({ "ols", "fe" }) do
  registry.register {
    name = name, fit = scenario_ols, options = OLS_OPTIONS, model_keys = OLS_MODEL_KEYS, vcov = M.OLS_KINDS,
    capabilities = { predict = true, predict_matrix = true, refit = true, draw = true, spatial = false },
  }
end

return M
