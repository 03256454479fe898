-- spillover.registry: the estimators that scenarios (and sp.estimate-style
-- callers) can name.  Built-ins and plugins register the same way:
--
--   registry.register{
--     name = "ols", fit = function(data, model, options) return fit end,
--     options = { tol = {type = "number", min = 0} },   -- schema nodes (scenario_check's)
--     model_keys = { "vcov", "compat", "weights" },      -- model keys besides formula/label/by/options
--     vcov = { "iid", "hc1", "cluster" },                -- the vcov kinds it takes (vcov_rules.KINDS)
--     capabilities = { predict = true, refit = true, draw = true, spatial = false, ... },
--   }
--
-- `spillover check` validates a model's options against `options` and its
-- keys against `model_keys`, and refuses experiments the capabilities rule
-- out (bootstrap needs refit, draws need draw, spatial needs weights:).  An
-- entry that leaves `options` (or `model_keys`, `capabilities`) out declares
-- nothing: its options pass unchecked and check cannot refuse experiments for
-- it (old plugins that register only {name, fit}); `options = {}` means "takes
-- no options".
--
-- Estimator modules register their built-ins when they are loaded (so the
-- names exist once `require "spillover"` has run).  A built-in name is
-- reserved, and any other name belongs to the origin (a plugin file, the
-- host) that registered it first.  Registering the very same fit under its
-- name again is a no-op.
local raise = require("spillover.util").raise
local M = {}

local entries = {}
local BUILTIN = "spillover"

local CAPABILITIES = { predict = true, predict_matrix = true, refit = true, draw = true, spatial = true, rollout = true }
local MODEL_KEYS = { vcov = true, compat = true, weights = true }

local function sorted(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

--- Why e is not a usable entry, or nil.
local function problem(e)
  if type(e) ~= "table" or type(e.name) ~= "string" or e.name == "" or type(e.fit) ~= "function" then
    return "expected {name = \"...\", fit = function(data, spec, opts) ... end}"
  end
  if e.options ~= nil then
    if type(e.options) ~= "table" then return "'options' must be a table of option schemas ({lambda = {type = \"number\"}})" end
    for k, node in pairs(e.options) do
      if type(k) ~= "string" or type(node) ~= "table" or node.type == nil then
        return "options." .. tostring(k) .. " must be a schema such as {type = \"number\", min = 0}"
      end
    end
  end
  if e.vcov ~= nil then
    if type(e.vcov) ~= "table" or #e.vcov == 0 then return "'vcov' must be an array of covariance kinds such as {\"iid\", \"hc1\"}" end
    for _, k in ipairs(e.vcov) do
      if type(k) ~= "string" then return "vcov: the kinds must be strings, got a " .. type(k) end
    end
  end
  if e.model_keys ~= nil then
    if type(e.model_keys) ~= "table" then return "'model_keys' must be an array such as {\"vcov\", \"compat\"}" end
    for _, k in ipairs(e.model_keys) do
      if not MODEL_KEYS[k] then
        return "model_keys: unknown key '" .. tostring(k) .. "' (expected some of " .. table.concat(sorted(MODEL_KEYS), ", ") .. ")"
      end
    end
  end
  if e.capabilities ~= nil then
    if type(e.capabilities) ~= "table" then return "'capabilities' must be a table such as {refit = true}" end
    for k, v in pairs(e.capabilities) do
      if not CAPABILITIES[k] then
        return "capabilities: unknown capability '" .. tostring(k) .. "' (expected one of " ..
          table.concat(sorted(CAPABILITIES), ", ") .. ")"
      end
      if type(v) ~= "boolean" then return "capabilities." .. k .. " must be true or false" end
    end
  end
end

--- The refusal of a registration under name when a built-in has it, or nil.
function M.reserved(name)
  local old = entries[name]
  if old and old.origin == BUILTIN then
    return "register_estimator: '" .. tostring(name) .. "' is a built-in estimator; choose another name " ..
      "(or use the built-in: estimator: " .. tostring(name) .. ")"
  end
end

--- Add an estimator.  origin names who registers it ("plugin <file>", "the
--- host (spillover or a script)"); nil registers a built-in.  Raises at level
--- 0 (callers add positions).
function M.register(e, origin)
  local msg = problem(e)
  if msg then raise("register_estimator: " .. msg) end
  origin = origin or BUILTIN
  local old = entries[e.name]
  if old and old.fit == e.fit then return end
  if old and old.origin == BUILTIN then raise(M.reserved(e.name)) end
  if old and old.origin ~= origin then
    raise("register_estimator: '" .. e.name .. "' is already registered by " .. old.origin .. "; choose another name")
  end
  entries[e.name] = { name = e.name, fit = e.fit, options = e.options, model_keys = e.model_keys, vcov = e.vcov,
    capabilities = e.capabilities, origin = origin, builtin = origin == BUILTIN }
end

--- The options table of an estimator function that takes the model keys
--- (vcov, compat, weights) among its options, as sp.ols does: the model's
--- options plus model[k] for each of keys.
function M.merged_options(model, options, keys)
  local opts = {}
  for k, v in pairs(options or {}) do opts[k] = v end
  for _, k in ipairs(keys) do opts[k] = model[k] end
  return opts
end

--- The entry of an estimator, or nil.
function M.get(name) return entries[name] end

--- The registered names, sorted.
function M.names() return sorted(entries) end

return M
