-- spillover.scenario: YAML scenario files, validated before anything runs,
-- executed with the public Lua API only (anything a scenario does, a script
-- can do: sp.scenario.load(path), sp.scenario.check(s), sp.scenario.run(s)).
--
-- A scenario names its data, derived variables, models, experiments and
-- report (docs/scenarios.md has the schema and an annotated example).  This
-- module is the facade over the modules that do the work:
--   spillover.scenario_check    loading, the schema, check (file:line:col errors)
--   spillover.scenario_derive   the derive step (order, baseline parameters held)
--   spillover.scenario_run      estimation through spillover.registry, experiments
--   spillover.report            the output folder
local check = require "spillover.scenario_check"
local registry = require "spillover.registry"
local util = require "spillover.util"

local M = {}

M.schema = check.schema
M.load, M.set, M.check, M.resolve = check.load, check.set, check.check, check.resolve
M.load_data = check.load_data
M.unsafe_name, M.user_message = check.unsafe_name, util.message
M.closest = require("spillover.suggest").closest
M.execute = require("spillover.scenario_run").execute
M.splittable = require("spillover.scenario_run").splittable

--- Estimate, run the experiments and write the output folder; returns its path.
--- opts: outdir (default out/<name>), progress (function(label, done, total)),
--- trust (plugins run unsandboxed), overrides (recorded in the manifest),
--- part = {k, n} (compute part k of n of the sweeps' points and the curve's
--- cells into <outdir>.parts/ and return that file's path: spillover.parts),
--- parts = n (take them from the n part files there, then remove them).
function M.run(s, opts)
  opts = util.check_options(opts, { "outdir", "progress", "trust", "overrides", "skip_plugins", "sp", "part", "parts" },
    "scenario.run")
  local report = require "spillover.report"
  if not (opts.part or opts.parts) then return report.write(s, M.execute(s, opts), opts) end
  local parts = require "spillover.parts"
  local dir = parts.dir(report.outdir(s.spec, opts.outdir))
  -- what every part of this run shares, and a part of another run does not
  local core = require "spillover.core"
  local stamp = { inputs = report.inputs(s), overrides = opts.overrides or {}, version = core.version }
  local run = setmetatable({}, { __index = opts })
  if opts.part then
    run.split = parts.part(opts.part[1], opts.part[2], stamp)
    M.execute(s, run)
    return parts.write(run.split, dir)
  end
  run.split = parts.assembly(dir, opts.parts, stamp)
  local out = report.write(s, M.execute(s, run), opts)
  core.sys.remove_tree(dir)
  return out
end

--- Register an estimator usable from scenarios: {name = "ridge", fit =
--- function(data, model, options) return fit end} plus, optionally, its
--- option schema, model keys and capabilities (spillover.registry).  The
--- names of built-in estimators are reserved; a name belongs to whoever
--- registered it first.
function M.register_estimator(e)
  local ok, err = pcall(registry.register, e, "the host (spillover or a script)")
  if not ok then error(err, 0) end
end

--- The names scenarios can give as `estimator:` (built-ins once the API is loaded).
function M.estimator_names() return registry.names() end

return M
