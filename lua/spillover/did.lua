-- spillover.did: the one entry point of the difference-in-differences
-- estimators, sp.did(d, "y ~ covariates | entity + time", {cohort =, method =, ...}).
--
-- It checks opts.method and hands the call to the module that owns the
-- method: "cs" (Callaway & Sant'Anna, spillover.did_cs, the default), "sa"
-- (Sun & Abraham), "imputation" (Borusyak, Jaravel & Spiess) and "twfe"
-- (spillover.did_event).  The facade requires a method's module when the
-- method is called (`require "spillover"` has loaded both already, since
-- did_event registers the scenario estimator "event_study").
local util = require "spillover.util"
local raise = util.raise

local M = {}

local function event(name)
  return function(d, formula, opts) return require("spillover.did_event")[name](d, formula, opts) end
end

local methods = {
  cs = function(d, formula, opts) return require("spillover.did_cs").cs(d, formula, opts) end,
  sa = event("sa"),
  imputation = event("imputation"),
  twfe = event("twfe"),
}
local ORDER = { "cs", "sa", "imputation", "twfe" }

--- sp.did(d, formula, opts): the DID fit of opts.method (default "cs").
function M.did(d, formula, opts)
  if opts ~= nil and type(opts) ~= "table" then
    raise("did: expected an options table as argument 3, got " .. type(opts))
  end
  local method = (opts or {}).method or "cs"
  local run = type(method) == "string" and methods[method]
  if not run then
    local near = type(method) == "string" and require("spillover.suggest").closest(method, ORDER) or nil
    raise(string.format("did: option 'method' must be one of \"%s\", got %s%s", table.concat(ORDER, "\", \""),
      type(method) == "string" and ("\"" .. method .. "\"") or tostring(method),
      near and ("; did you mean \"" .. near .. "\"?") or ""))
  end
  return run(d, formula, opts or {})
end

M.methods = ORDER

-- ---- registration (spillover.registry) -------------------------------------------------

local report = require "spillover.did_report"
local STR, INT, BOOL = { type = "string" }, { type = "integer" }, { type = "boolean" }
-- Every method's options; each method refuses at run time what it does not take.
require("spillover.registry").register {
  name = "did",
  fit = function(d, model, options) return report.scenario_fit(M.did, d, model.formula, options) end,
  model_keys = {},
  options = {
    method = { type = "string", enum = ORDER }, cohort = { type = "string", required = true },
    est = { type = "string", enum = { "dr", "ipw", "reg" } }, control = { type = "string", enum = { "never", "notyet", "last" } },
    base = { type = "string", enum = { "varying", "universal" } }, anticipation = { type = "integer", min = 0 },
    weights = STR, cluster = STR, bootstrap = { type = "integer", min = 0 }, seed = INT,
    level = { type = "number", min = 0, max = 1, open_range = true },
    unbalanced = { type = { "boolean", "string" }, enum = { "rc" } }, panel = BOOL, time = STR, dynamic = BOOL,
    compat = STR, window = { type = "list", items = INT, len = 2 }, bin = BOOL, ref = INT, fe = STR,
    placebo = report.placebo_schema, bacon = BOOL,
  },
  -- no predictions on new data; roll-outs instead (spillover.rollout)
  capabilities = { predict = false, predict_matrix = false, refit = false, draw = true, rollout = true, spatial = false },
}

return M
