-- spillover.did: the one entry point of the difference-in-differences
-- estimators, sp.did(d, "y ~ covariates | entity + time", {cohort =, method =, ...}).
--
-- It checks opts.method and hands the call to the module that owns the
-- method: "cs" (Callaway & Sant'Anna, spillover.did_cs, the default), "sa"
-- (Sun & Abraham), "imputation" (Borusyak, Jaravel & Spiess) and "twfe"
-- (spillover.did_event).  The modules are required when a method is first
-- used, so a script that needs only one method loads only its module.
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

return M
