-- spillover.mechanism: mediation, moderation and heterogeneity, one table.
--
-- The tools live in three modules by concern: spillover.mediation (mediation,
-- its tests and bootstrap, the mediation fit), spillover.margins (center,
-- moderation, margins, margins_plot) and spillover.heterogeneity (by, chow,
-- permutation, sur, group_diff); spillover.mechanism_common holds what they
-- share.  This module gathers them under the names scripts have used, and
-- registers the scenario estimator "mediation".
local formula_object = require "spillover.formula"
local util = require "spillover.util"
local common = require "spillover.mechanism_common"
local mediation = require "spillover.mediation"
local margins = require "spillover.margins"
local heterogeneity = require "spillover.heterogeneity"

local read_formula = common.read_formula

local M = {
  mediation = mediation.mediation, indirect_tests = mediation.indirect_tests, boot_ci = mediation.boot_ci,
  as_fit = mediation.as_fit,
  center = margins.center, centre = margins.center, moderation = margins.moderation, margins = margins.margins,
  margins_plot = margins.margins_plot,
  by = heterogeneity.by, chow = heterogeneity.chow, permutation = heterogeneity.permutation, sur = heterogeneity.sur,
  group_diff = heterogeneity.group_diff,
  quantile = util.quantile,
}

-- ---- report section and registration (spillover.registry, spillover.report) --------------

--- The report section of a scenario's mediation fit: the effects in
--- results.json (models.<model>.mediation) and the printed analysis
--- (mediation_<model>.md).
M.report_sections = { {
  name = "mediation",
  json = function(fit)
    local med = fit.mediation
    return { c = med.c, direct = med.direct, effects = med.effects, total_indirect = med.total_indirect }
  end,
  files = function(fit, out)
    out:write("mediation_" .. out.name .. ".md", "```text\n" .. tostring(fit.mediation) .. "\n```\n")
    out:log("mediation report of %s written", out.name)
  end,
} }

--- The scenario estimator "mediation".  A model
---   {estimator: mediation, formula: "y ~ x + controls | fe", vcov: ...,
---    options: {m: [m1, m2], x: x (default: the first regressor), bootstrap:, seed:, level:}}
--- gives M.as_fit of the mediation result, which can refit (bootstrap).
local scenario_estimator = {
  name = "mediation",
  fit = function(d, spec, options)
    options = options or spec.options or {}
    local f = read_formula("mediation", spec.formula)
    local y, x = f:response(), options.x or f:terms()[1]
    local controls, fe = {}, {}
    for _, t in ipairs(f.rhs) do if t.name ~= x then controls[#controls + 1] = formula_object.format_term(t) end end
    for j, t in ipairs(f.fe) do fe[j] = formula_object.format_term(t) end
    fe = #fe > 0 and fe or nil
    local res = M.mediation(d, { x = x, m = options.m, y = y, controls = controls, fe = fe, vcov = spec.vcov,
      compat = spec.compat, bootstrap = options.bootstrap, seed = options.seed, level = options.level,
      cluster = options.cluster })
    local fit = M.as_fit(res)
    fit.refit = function(_, newdata)
      local o = { x = x, m = options.m, y = y, controls = controls, fe = fe, vcov = spec.vcov, compat = spec.compat }
      return M.as_fit(M.mediation(newdata, o))
    end
    fit.report_sections = M.report_sections
    return fit
  end,
  model_keys = { "vcov", "compat" }, vcov = require("spillover.vcov_rules").KINDS,
  options = {
    x = { type = "string" }, m = { type = { "string", "list" }, items = { type = "string" }, required = true },
    bootstrap = { type = "integer", min = 1 }, seed = { type = "integer" },
    level = { type = "number", min = 0, max = 1, open_range = true },
    cluster = { type = "string" },
  },
  capabilities = { predict = true, predict_matrix = false, refit = true, draw = true, spatial = false },
}

--- Register "mediation" with spillover.registry, or with target (a table
--- with register_estimator) when given.  Registering it again is a no-op.
function M.register(target)
  if target then return target.register_estimator(scenario_estimator) end
  require("spillover.registry").register(scenario_estimator)
end
M.register()

return M
