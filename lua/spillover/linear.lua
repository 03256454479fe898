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

return M
