-- spillover.scenario_check: a scenario file loaded (YAML, with the position of
-- every node) and validated before anything runs: the schema, references
-- between its parts and to the data's columns, each model's options against
-- its estimator's option schema and the experiments against what the model
-- can do (spillover.registry).  Errors cite file:line:column and the path of
-- the offending node (experiments.west.shock.change) and say what was
-- expected.  spillover.scenario is the public facade.
local core = require "spillover.core"
local registry = require "spillover.registry"

local M = {}

-- ---- errors with positions ---------------------------------------------------------

local suggest = require "spillover.suggest"
local util = require "spillover.util"
local vcov_rules = require "spillover.vcov_rules"
local raise = util.raise
local did_you_mean = suggest.did_you_mean

--- Position of a path (or of its nearest ancestor) in the file.
local function position(s, path, key)
  local pos = s.positions or {}
  local p = path
  while p do
    local hit = (key and pos[p .. "#key"]) or pos[p]
    if hit then return hit end
    if p == "" then break end
    p = p:match("^(.*)[%.%[][^%.%[]*$") or ""
  end
  return { line = 0, col = 0 }
end

--- A message without the positions of spillover's own Lua files
--- ("/usr/share/.../spillover/scenario.lua:830: "): the user's position is
--- the scenario's file:line:col, and ours means nothing to them.

local function located(s, path, msg, key)
  msg = util.message(msg)
  local pos = position(s, path, key)
  local where = s.file or "scenario"
  if pos.line and pos.line > 0 then where = string.format("%s:%d:%d", where, pos.line, pos.col) end
  return string.format("%s: %s: %s", where, path ~= "" and path or "(top level)", msg)
end

local function fail(s, path, msg, key) raise(located(s, path, msg, key)) end
-- The constructors a weights: entry can name, one per entry.
local WEIGHTS_KINDS = { "contiguity", "knn", "distance", "economic", "nested" }
M.WEIGHTS_KINDS = WEIGHTS_KINDS
M.position, M.located, M.fail = position, located, fail

-- ---- the schema ------------------------------------------------------------------------

local STR, NUM, INT, BOOL = { type = "string" }, { type = "number" }, { type = "integer" }, { type = "boolean" }
local STR_OR_LIST = { type = { "string", "list" }, items = STR }
-- Names that become file or folder names of the output (the scenario's name,
-- models and experiments): checked by safe_name().
local NAME = { type = "string", filename = true }
-- Upper bounds that keep a run within memory: each draw holds one value per
-- row, each bootstrap replication a refit.
local MAX_DRAWS, MAX_BOOTSTRAP = 100000, 10000

local shock_schema = { type = "map", fields = {
  variable = { type = { "string", "list" }, items = STR, required = true },
  where = STR, from = NUM, to = NUM, phase_in = { type = "integer", min = 0 },
  change = { type = { "string", "number" }, required = true },
} }

local schema = { type = "map", fields = {
  name = { type = "string", required = true, filename = true },
  description = STR,
  seed = INT,
  data = { type = "map", required = true, fields = {
    file = { type = "string", required = true },
    entity = STR, time = STR, filter = STR,
    join = { type = "list", items = { type = "map", fields = {
      file = { type = "string", required = true },
      on = { type = { "string", "list" }, items = STR, required = true },
      how = { type = "string", enum = { "left", "inner" } },
    } } },
  } },
  -- one constructor of sp.weights each: contiguity (an edge list), knn or distance (a coordinates
  -- file), economic (a data column), nested (two other entries)
  weights = { type = "dict", values = { type = "map", fields = {
    contiguity = STR, from = STR, to = STR, id = STR,
    style = { type = "string", enum = { "W", "B", "row", "binary", "spectral" } },
    knn = STR, k = INT, x = STR, y = STR, great_circle = BOOL,
    distance = STR, power = { type = "number", min = 0, open_range = true }, cutoff = { type = "number", min = 0 },
    economic = STR, nested = { type = "list", items = STR, len = 2 }, phi = { type = "number", min = 0, max = 1 },
  } } },
  derive = { type = "dict", values = { type = { "string", "map" }, fields = {
    expr = STR, entropy = { type = "list", items = STR }, topsis = { type = "list", items = STR },
    direction = { type = "dict", values = { type = "string", enum = { "+", "-" } } },
    by = STR, scale = NUM, shift = NUM, normalise = { type = "string", enum = { "minmax", "ratio" } },
    winsorize = STR, p = { type = "number", min = 0, below = 0.5 }, standardize = STR, group_mean = STR,
    ratio = { type = "list", items = STR, len = 2 },
    efficiency = { type = "map", fields = {
      inputs = { type = "list", items = STR, required = true }, outputs = { type = "list", items = STR },
      bad = { type = "list", items = STR },
      model = { type = "string", enum = { "ccr", "bcc", "sbm", "super_sbm", "ddf" } },
      rts = { type = "string", enum = { "crs", "vrs" } },
      orientation = { type = "string", enum = { "input", "output", "none" } },
      bad_disposability = { type = "string", enum = { "weak", "strong" } },
      frontier = { type = "string", enum = { "global", "period" } },
      hold = { type = "string", enum = { "baseline", "reestimate" } },
      productivity = { type = "map", fields = { index = { type = "string", enum = { "m", "ml" } },
        frontier = { type = "string", enum = { "contemporaneous", "sequential", "global" } } } },
    } },
  } } },
  models = { type = "dict", required = true, keys = NAME, values = { type = "map", fields = {
    estimator = { type = "string", required = true },
    formula = { type = "string", required = true },
    -- The covariance names any built-in takes (linear: classic/iid/hc*; spatial
    -- ML: analytic/hessian/splm); a typo such as "hc9" is refused here, and
    -- a kind the model's estimator does not take (its registry entry's vcov)
    -- below.
    vcov = { type = { "string", "map" }, fold = true, enum = { "classic", "iid", "hc0", "hc1", "hc2", "hc3", "analytic",
      "hessian", "splm" }, fields = {
      cluster = STR_OR_LIST, driscoll_kraay = { type = "integer", min = 0 },
      type = { type = "string", fold = true, enum = { "hc0", "hc1", "sss" } },
      newey_west = { type = "integer", min = 0 }, time = STR,
      -- the wild cluster bootstrap (vcov_rules, wildboot.settings)
      wild = STR, reps = { type = "integer", min = 1 }, seed = { type = "integer" }, impose_null = { type = "boolean" },
      level = { type = "number", min = 0, below = 1 },
      weights = { type = "string", enum = { "rademacher", "webb", "mammen" } },
    } },
    compat = { type = "string", enum = { "stata", "plm", "fixest", "sandwich", "statsmodels" } },
    weights = STR,
    label = STR,
    by = STR,
    options = { type = "map", open = true },
  } } },
  experiments = { type = "dict", keys = NAME, values = { type = "map", fields = {
    model = { type = "string", required = true },
    shock = shock_schema,
    shocks = { type = "list", items = shock_schema },
    -- a policy-evaluation fit's treatment extended to more units (spillover.rollout)
    rollout = { type = "map", fields = { where = STR, from = { type = "number", required = true } } },
    -- the experiment's change to the outcome's disparity across units (spillover.disparity.change)
    disparity = { type = "map", fields = {
      measure = { type = "string", enum = { "gini", "theil", "cv", "dagum" } }, groups = STR,
      part = { type = "string", enum = { "G", "Gw", "Gnb", "Gt" } }, transform = { type = "string", enum = { "exp" } },
    } },
    -- the experiment over a grid or a Latin hypercube of its settings (spillover.sweep)
    sweep = { type = "map", fields = {
      grid = { type = "dict", values = { type = "list", items = { type = { "string", "number" } } } },
      lhs = { type = "map", fields = { n = { type = "integer", min = 2, required = true }, seed = INT,
        ranges = { type = "dict", required = true,
          values = { type = "list", len = 2, items = { type = { "string", "number" } } } } } },
    } },
    -- a budget of an input split across units to maximise the effect (spillover.allocate)
    allocate = { type = "map", fields = { variable = { type = "string", required = true },
      budget = { type = "number", required = true },
      where = STR, from = NUM, to = NUM, lower = NUM, upper = NUM, steps = { type = "integer", min = 1 },
      objective = { type = "string", enum = { "level", "model" } } } },
    -- when the shocks become known (spillover.counterfactual.unknown_rows)
    timing = { type = "string", enum = { "unannounced", "anticipated" } }, announced = NUM,
    draws = { type = "integer", min = 0, max = MAX_DRAWS }, bootstrap = { type = "integer", min = 1, max = MAX_BOOTSTRAP },
    seed = INT, level = { type = "number", min = 0, max = 1, open_range = true },
    groups = STR_OR_LIST,
    label = STR,
    -- effects in the units of a data column (spillover.counterfactual.experiment_scale)
    scale = { type = "map", fields = { transform = { type = "string", enum = { "auto", "none" } },
      backtransform = { type = "string", enum = { "smearing", "normal", "naive" } },
      aggregate = { type = "string", enum = { "sum", "mean_pct", "weighted" } }, weight = STR, cumulative = BOOL } },
  } } },
  report = { type = "map", fields = {
    tables = { type = "list", items = STR },
    plots = { type = "list", items = STR },
    -- experiments drawn as tile-grid maps of their effect by unit, on the layout tiles (spillover.tiles)
    maps = { type = "list", items = STR }, tiles = STR,
    formats = { type = "list", items = { type = "string", enum = { "md", "tex", "csv", "html", "xlsx", "json", "png", "svg" } } },
    labels = { type = "dict", values = STR },
    title = STR,
  } },
  plugins = { type = "list", items = STR },
  -- the experiments set side by side (spillover.compare): a list of names, or all
  compare = { type = { "string", "list" }, items = STR },
  -- every combination of the listed choices estimated once (spillover.spec_curve)
  spec_curve = { type = "map", fields = {
    outcomes = { type = "list", items = STR, required = true },
    treatments = { type = "list", items = STR, required = true },
    controls = { type = "dict", values = { type = "list", items = STR } },
    fe = { type = "dict", values = { type = "list", items = STR } },
    samples = { type = "dict", values = { type = { "string", "boolean" } } },
    estimators = { type = "list", items = STR },
    weights = { type = "list", items = STR },
    vcov = { type = "dict" },
    level = { type = "number", min = 0, max = 1, open_range = true },
  } },
} }
-- A specification curve's covariance choices are models' vcov entries.
schema.fields.spec_curve.fields.vcov.values = schema.fields.models.values.fields.vcov
M.schema = schema

local function is_seq(v)
  return type(v) == "table" and core.yaml and core.yaml.is_seq(v)
end

local function is_list(v)
  if type(v) ~= "table" then return false end
  if core.yaml and getmetatable(v) ~= nil then return is_seq(v) end
  return #v > 0 or next(v) == nil
end

local function type_ok(v, t, s, path)
  if t == "string" then return type(v) == "string"
  elseif t == "number" then return type(v) == "number" and v == v and v > -math.huge and v < math.huge
  elseif t == "integer" then
    return math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v) and math.abs(v) < 2 ^ 53)
  elseif t == "boolean" then return type(v) == "boolean"
  elseif t == "list" then return is_list(v)
  elseif t == "map" or t == "dict" then return type(v) == "table" and not is_list(v) or (type(v) == "table" and
      next(v) == nil and not is_seq(v))
  end
  return false
end

local function describe_type(t)
  if type(t) == "table" then return table.concat(t, " or ") end
  return ({ map = "a mapping", dict = "a mapping", list = "a list", string = "a string", number = "a number",
    integer = "an integer", boolean = "true or false" })[t] or t
end

local function got_type(v)
  if core.yaml and v == core.yaml.null then return "nothing (an empty value)" end
  if type(v) == "table" then return is_list(v) and "a list" or "a mapping" end
  if type(v) == "number" then
    if v ~= v then return "not-a-number (.nan)" end
    if v == math.huge or v == -math.huge then return "an infinite number (" .. (v > 0 and ".inf" or "-.inf") .. ")" end
    if math.type(v) == "float" and v == math.floor(v) then return "the number " .. tostring(v) .. " (too large for an integer)" end
    return "the number " .. tostring(v)
  end
  if type(v) == "string" then return "the string \"" .. v .. "\"" end
  return "a " .. type(v)
end

--- Why a name cannot be a file name of the output, or nil: names become
--- out/<name>/ and effects_<name>.csv, so '..', '/' or a control character
--- would write outside the output folder or make names that collide.
function M.unsafe_name(v)
  if type(v) ~= "string" or v == "" then return "a name must not be empty" end
  if v == "." or v == ".." then return "'" .. v .. "' is not a usable name" end
  if v:find("[/\\%z%c]") then return "name '" .. v .. "' contains '/', '\\' or a control character; use letters, digits, '_' and '-'" end
  if v:sub(1, 1) == "." then return "name '" .. v .. "' starts with '.' (hidden file names are not used)" end
  if #v > 120 then return "name '" .. v:sub(1, 20) .. "...' is longer than 120 bytes" end
end

local function validate(s, v, sch, path, errs)
  local types = type(sch.type) == "table" and sch.type or { sch.type }
  local matched
  for _, t in ipairs(types) do
    if type_ok(v, t, s, path) then matched = t; break end
  end
  if not matched then
    local want = {}
    for i, t in ipairs(types) do want[i] = describe_type(t) end
    errs[#errs + 1] = located(s, path, "expected " .. table.concat(want, " or ") .. ", got " .. got_type(v))
    return
  end
  if (matched == "number" or matched == "integer") and (sch.min or sch.max or sch.below) then
    local lo_ok = not sch.min or (sch.open_range and v > sch.min or not sch.open_range and v >= sch.min)
    local hi_ok = (not sch.max or (sch.open_range and v < sch.max or not sch.open_range and v <= sch.max)) and
      (not sch.below or v < sch.below)
    if not (lo_ok and hi_ok) then
      local range
      if sch.open_range then range = "between " .. sch.min .. " and " .. sch.max .. " (exclusive)"
      elseif sch.below then range = "at least " .. sch.min .. " and below " .. sch.below
      elseif sch.min and sch.max then range = "from " .. sch.min .. " to " .. sch.max
      elseif sch.min then range = sch.min .. " or more"
      else range = sch.max .. " or less" end
      errs[#errs + 1] = located(s, path, "must be " .. range .. ", got " .. tostring(v))
    end
  elseif matched == "string" and sch.filename then
    local msg = M.unsafe_name(v)
    if msg then errs[#errs + 1] = located(s, path, msg) end
  elseif matched == "string" and sch.enum then
    local ok = false
    for _, e in ipairs(sch.enum) do if e == v or (sch.fold and e == v:lower()) then ok = true end end
    if not ok then
      errs[#errs + 1] = located(s, path, "unknown value \"" .. v .. "\" (expected one of: " ..
        table.concat(sch.enum, ", ") .. ")" .. did_you_mean(v, sch.enum))
    end
  elseif matched == "list" and sch.items then
    if sch.len and #v ~= sch.len then
      errs[#errs + 1] = located(s, path, "expected a list of " .. sch.len .. " items, got " .. #v)
    end
    for i, item in ipairs(v) do validate(s, item, sch.items, path .. "[" .. i .. "]", errs) end
  elseif matched == "map" and sch.fields and not sch.open then
    local names = {}
    for k in pairs(sch.fields) do names[#names + 1] = k end
    table.sort(names)
    for k, val in pairs(v) do
      local sub = path == "" and k or (path .. "." .. k)
      local f = sch.fields[k]
      if f == nil then
        errs[#errs + 1] = located(s, sub, "unknown key '" .. tostring(k) .. "'" .. did_you_mean(tostring(k), names) ..
          " (expected one of: " .. table.concat(names, ", ") .. ")", true)
      else
        validate(s, val, f, sub, errs)
      end
    end
    for _, k in ipairs(names) do
      if sch.fields[k].required and v[k] == nil then
        errs[#errs + 1] = located(s, path, "missing required key '" .. k .. "'")
      end
    end
  elseif matched == "dict" and sch.values then
    for k, val in pairs(v) do
      local sub = path == "" and k or (path .. "." .. k)
      if sch.keys then validate(s, k, sch.keys, sub, errs) end
      validate(s, val, sch.values, sub, errs)
    end
  end
end

-- ---- loading -------------------------------------------------------------------------------

local function dirname(path) return path:match("^(.*)/[^/]*$") or "." end

--- A path named in the scenario, relative to the scenario file unless absolute.
local function resolve(s, file)
  if file:sub(1, 1) == "/" then return file end
  return s.dir .. "/" .. file
end
M.resolve = resolve

--- Load a scenario file (YAML), without validating it.
function M.load(path, overrides)
  local yaml = core.yaml
  if not yaml then raise("scenario: this build has no YAML support") end
  local value, positions = yaml.load_file(path)
  if value == nil then raise(tostring(positions)) end
  -- A YAML null (`key:` or `~`) under a known key of a mapping means "not
  -- given".  Elsewhere (an entry of models:/experiments:, a list item) it is
  -- left for check() to report: dropping it would silently lose `west:` with
  -- nothing under it.  Tables the schema does not describe (options) are
  -- stripped throughout.
  local function strip(t, sch)
    for k, v in pairs(t) do
      local sub
      if sch then sub = sch.fields and sch.fields[k] or sch.values or sch.items end
      if v == yaml.null then
        if not sch or (sch.fields and (sub or sch.open)) then t[k] = nil end
      elseif type(v) == "table" then
        strip(v, sub)
      end
    end
  end
  if type(value) == "table" then strip(value, schema) end
  if type(value) ~= "table" or is_seq(value) then
    raise(path .. ":1:1: (top level): expected a mapping of scenario keys (name, data, models, ...)")
  end
  local s = { spec = value, positions = positions or {}, file = path, dir = dirname(path) }
  for _, o in ipairs(overrides or {}) do M.set(s, o) end
  return s
end

--- Apply an override "key.path=value" (value read as a YAML scalar).
function M.set(s, assignment)
  local path, text = assignment:match("^([%w_%.%[%]]+)=(.*)$")
  if not path then raise("--set: expected key.path=value, got '" .. assignment .. "'") end
  local value
  if text == "true" then value = true elseif text == "false" then value = false
  elseif math.tointeger(tonumber(text)) then value = math.tointeger(tonumber(text))
  elseif tonumber(text) then value = tonumber(text)
  else value = text:match('^"(.*)"$') or text end
  local t = s.spec
  local keys = {}
  for k in path:gmatch("[^%.]+") do keys[#keys + 1] = k end
  for i = 1, #keys - 1 do
    local k = keys[i]
    if type(t[k]) ~= "table" then t[k] = {} end
    t = t[k]
  end
  t[keys[#keys]] = value
  s.positions[path] = s.positions[path] or { line = 0, col = 0 }
end

-- ---- plugins ------------------------------------------------------------------------------------

--- Run the plugin file p of scenario s in spillover.sandbox (docs/scenarios.md
--- "Plugins and the sandbox"); its estimators are registered as its own.
--- Trust comes only from the host's opts.trust (the command line's --trust).
local function load_plugin(s, p, opts)
  local path = resolve(s, p)
  require("spillover.sandbox").load_plugin(path, {
    sp = opts.sp or require("spillover"), trust = opts.trust, root = s.dir,
    register = function(e) registry.register(e, "plugin " .. path) end,
  })
end

-- ---- validation ---------------------------------------------------------------------------------

local function as_list(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end
M.as_list = as_list

local WHERE_WORDS = { ["and"] = true, ["or"] = true, ["not"] = true, ["true"] = true, ["false"] = true, ["nil"] = true,
  math = true, string = true, tostring = true, tonumber = true, type = true }

--- What is wrong with a shock's where-expression, or nil: it must be an
--- expression only (no statements, as frame:filter requires), compile as one
--- and name only known columns.  Names are read from the text without its
--- string literals, so a branch the data never reaches is checked too.
local function where_problem(expr, known_var, known)
  local bad = core.sandbox.expression_problem(expr)
  if bad then return bad .. " is not allowed in an expression: \"" .. expr .. "\"" end
  local chunk, msg = load("return (" .. expr .. "\n)", "=where", "t", {})
  if not chunk then return "cannot compile \"" .. expr .. "\": " .. tostring(msg):gsub("^where:%d+: ", "") end
  local code = " " .. expr:gsub("%b''", "''"):gsub('%b""', '""')
  for pos, tok in code:gmatch("()([%w_]+)") do
    local before = code:sub(1, pos - 1):match("(%S)%s*$")
    if tok:match("^[%a_]") and before ~= "." and before ~= ":" and not WHERE_WORDS[tok] and not known_var(tok) then
      return "unknown column '" .. tok .. "' in \"" .. expr .. "\"" .. did_you_mean(tok, known)
    end
  end
end

--- The choices of a spec_curve: section, each checked where it is written
--- (a cell is a model made of them, so what a model would be refused for
--- is refused here, once per choice rather than once per cell).
local function check_spec_curve(s, spec, known_var, known, errs)
  local sc = spec.spec_curve
  local function vars_problem(text, lhs)
    local ok, f = pcall(core.formula, lhs and (text .. " ~ 1") or ("~ " .. text), { optional_response = not lhs })
    if not ok then return (util.message(f):gsub("\n.*", "")) end
    for _, v in ipairs(f.vars) do
      if not known_var(v) then return "unknown variable '" .. v .. "'" .. did_you_mean(v, known) end
    end
  end
  local function each(key, list, problem)
    for i, v in ipairs(list or {}) do
      local msg = problem(v)
      if msg then errs[#errs + 1] = located(s, string.format("spec_curve.%s[%d]", key, i), msg) end
    end
  end
  each("outcomes", sc.outcomes, function(v) return vars_problem(v, true) end)
  each("treatments", sc.treatments, function(v) return vars_problem(v, false) end)
  -- the kinds of choice that are sets of terms (control sets, fixed effects)
  for key in pairs { controls = true, fe = true } do
    for name, list in pairs(sc[key] or {}) do each(key .. "." .. name, list, function(v) return vars_problem(v, false) end) end
  end
  for name, expr in pairs(sc.samples or {}) do
    local msg = type(expr) == "string" and where_problem(expr, known_var, known) or
      (expr == false and "a sample is true (all rows) or a filter expression, not false") or nil
    if msg then errs[#errs + 1] = located(s, "spec_curve.samples." .. name, msg) end
  end
  for i, w in ipairs(sc.weights or {}) do
    if not (spec.weights and spec.weights[w]) then
      local wn = {}
      for k in pairs(spec.weights or {}) do wn[#wn + 1] = k end
      errs[#errs + 1] = located(s, string.format("spec_curve.weights[%d]", i), "unknown weights '" .. w .. "'" .. did_you_mean(w, wn))
    end
  end
  for i, name in ipairs(sc.estimators or require("spillover.spec_curve").DEFAULT_ESTIMATORS) do
    local path = string.format("spec_curve.estimators[%d]", i)
    local est = registry.get(name)
    if not est then
      local names = registry.names()
      errs[#errs + 1] = located(s, path, "unknown estimator '" .. name .. "'" .. did_you_mean(name, names))
    else
      local spatial = est.capabilities and est.capabilities.spatial
      if spatial and not sc.weights then
        errs[#errs + 1] = located(s, path, "estimator '" .. name .. "' is spatial: list weights: entries under spec_curve.weights")
      elseif sc.weights and not spatial then
        errs[#errs + 1] = located(s, path, "estimator '" .. name .. "' is not spatial, but spec_curve.weights is given")
      end
      for vname, v in pairs(sc.vcov or {}) do
        local kind = est.vcov and vcov_rules.kind(v)
        local takes = not kind
        for _, k in ipairs(est.vcov or {}) do takes = takes or k == kind end
        if not takes then
          errs[#errs + 1] = located(s, "spec_curve.vcov." .. vname, "estimator '" .. name .. "' does not take vcov '" ..
            kind .. "' (it takes: " .. table.concat(est.vcov, ", ") .. ")")
        end
      end
    end
  end
  for vname, v in pairs(sc.vcov or {}) do
    for _, c in ipairs(type(v) == "table" and as_list(v.cluster or {}) or {}) do
      if not known_var(c) then
        errs[#errs + 1] = located(s, "spec_curve.vcov." .. vname .. ".cluster", "unknown cluster variable '" .. c .. "'" ..
          did_you_mean(c, known))
      end
    end
  end
end

--- Why a file the scenario names cannot be read, or nil.  Probed before it
--- is opened: opening a FIFO would block check, and a device or a folder
--- would be read without end.
local function file_problem(path, what)
  local sys = core.sys
  if not sys.isfile(path) then
    if sys.exists(path) then return what .. " '" .. path .. "' is not a regular file" end
    return "cannot open " .. what .. " '" .. path .. "': no such file"
  end
  local f, msg = io.open(path, "rb")
  if not f then return "cannot open " .. what .. " '" .. path .. "': " .. tostring(msg):gsub("^[^:]*: ", "") end
  f:close()
end

--- Why a model (who: "model 'm' ...") with capabilities caps cannot serve
--- experiment e, and the experiment's key to blame; nil when nothing in caps
--- is against it (a capability left out is not held against the model).
--- check asks the estimator's declared capabilities; the run asks the fit's,
--- so what an estimator that declares nothing cannot do is refused as clearly.
function M.serve_problem(who, caps, e)
  if caps.predict == false and not e.rollout then
    return who .. " cannot predict, so it cannot run shock experiments" ..
      (caps.rollout and " (it serves 'rollout' experiments)" or ""), "model"
  end
  if e.bootstrap and caps.refit == false then
    return who .. " cannot be refitted on resampled data, so 'bootstrap' is not available" ..
      (caps.draw ~= false and "; use 'draws' (parameter draws) for intervals" or ""), "bootstrap"
  end
  if e.rollout and caps.rollout ~= true then
    return who .. " has no dynamic treatment effects, so 'rollout' is not available (it needs a " ..
      "difference-in-differences or event-study fit)", "rollout"
  end
  if e.draws and e.draws > 0 and caps.draw == false then
    return who .. " has no usable covariance to draw parameters from, so 'draws' is not available" ..
      (caps.refit ~= false and "; use 'bootstrap'" or ""), "draws"
  end
end

--- The settings of an allocation: its input is a numeric column of the
--- data (not derived: derived variables are recomputed from it), its rows
--- selectable, its budget splittable within the bounds.
local function check_allocate(s, spec, a, path, d, columns, known_var, known, errs)
  local v = a.variable
  if spec.derive and spec.derive[v] ~= nil then
    errs[#errs + 1] = located(s, path .. ".variable", "'" .. v .. "' is derived; allocate the data it is derived from")
  elseif not columns[v] then
    errs[#errs + 1] = located(s, path .. ".variable", "unknown column '" .. v .. "'" .. did_you_mean(v, d:names()))
  elseif type(d[v]) == "table" then
    errs[#errs + 1] = located(s, path .. ".variable", "'" .. v .. "' is categorical; only numbers can be allocated")
  end
  if not spec.data.entity then
    errs[#errs + 1] = located(s, path, "a budget is split across units: give data.entity")
  end
  if (a.from or a.to) and not spec.data.time then errs[#errs + 1] = located(s, path, "'from'/'to' need data.time") end
  if not (a.budget > 0) then
    errs[#errs + 1] = located(s, path .. ".budget", "the budget must be a positive amount, got " .. tostring(a.budget))
  end
  local lower, upper = a.lower or 0, a.upper or a.budget
  if lower > upper then
    errs[#errs + 1] = located(s, path .. ".lower", "'lower' (" .. lower .. ") is above 'upper' (" .. upper .. ")")
  end
  local where_msg = a.where and where_problem(a.where, known_var, known)
  if where_msg then
    errs[#errs + 1] = located(s, path .. ".where", where_msg)
  elseif spec.data.time or not (a.from or a.to) then
    local ok, mask, field, msg = pcall(require("spillover.counterfactual").shock_rows, d,
      { where = a.where, from = a.from, to = a.to }, spec.data.time)
    if ok and not mask then errs[#errs + 1] = located(s, path .. "." .. field, "the allocation selects no row: " .. msg) end
  end
end

--- Why an experiment's timing: cannot be had, and the key to blame.
--- Anticipation acts through the model's leads (f(x), l(x, -1)) of a shocked
--- variable or of one derived from it: without one, the response before the
--- shock is not identified.  The announcement is not after the first shock.
local function timing_problem(spec, e)
  if e.announced ~= nil and e.timing ~= "anticipated" then
    return "'announced' is read only by timing: anticipated", "announced"
  end
  if e.timing ~= "anticipated" then return nil end
  if e.rollout or e.allocate then
    return "anticipation applies to shocks; a roll-out or an allocation starts when it starts", "timing"
  end
  local shocks, moved, first = e.shocks or { e.shock }, {}, nil
  if #shocks == 0 then return nil end -- no shock: reported as such
  for _, sh in ipairs(shocks) do
    for _, v in ipairs(as_list(sh.variable)) do moved[v] = true end
    if not sh.from then return "anticipation needs shocks that start later: give each shock 'from'", "timing" end
    first = math.min(first or sh.from, sh.from)
  end
  if e.announced and e.announced > first then
    return string.format("'announced' (%s) is after the shock's 'from' (%s)", util.key_of(e.announced),
      util.key_of(first)), "announced"
  end
  -- the derived variables a shock moves, through derive: entries that read them
  local F = require "spillover.formula"
  local function reads(entry, out)
    if type(entry) == "table" then for _, v in pairs(entry) do reads(v, out) end
    elseif type(entry) == "string" then
      local ok, f = pcall(F.parse, "~ " .. entry)
      if ok then for _, v in ipairs(f.vars) do out[v] = true end end
    end
    return out
  end
  local changed = true
  while changed do
    changed = false
    for name, entry in pairs(spec.derive or {}) do
      if not moved[name] then
        for v in pairs(reads(entry, {})) do if moved[v] then moved[name], changed = true, true; break end end
      end
    end
  end
  local m = spec.models[e.model]
  local ok, f = pcall(F.parse, m and m.formula or "")
  if not ok then return nil end -- the model's own check reports its formula
  local function moves(n)
    if n.kind == "var" then return moved[n.var] end
    for _, x in ipairs(n.args or {}) do if moves(x) then return true end end
    return false
  end
  local function has_lead(n)
    if (n.kind == "lead" and n.k >= 1 or n.kind == "lag" and n.k <= -1) and moves(n) then return true end
    for _, x in ipairs(n.args or {}) do if has_lead(x) then return true end end
    return false
  end
  for _, list in ipairs { f.rhs, f.endog, f.inst } do
    for _, t in ipairs(list) do if has_lead(t) then return nil end end
  end
  local v = as_list(shocks[1].variable)[1]
  return string.format("model '%s' has no lead of a shocked variable (f(%s) of %s or of a variable derived from it), " ..
    "so agents' response before the shock is not identified; add the lead to the formula or drop timing: anticipated",
    e.model, v, v), "timing"
end

--- Every point of a sweep is an experiment of the schema: each is checked
--- as one (a change that cannot be read, a key the experiment does not have).
local function check_sweep(s, spec, e, path, errs)
  local sweep = require "spillover.sweep"
  local ok, paths, points = pcall(sweep.points, e.sweep, spec.seed)
  if not ok then errs[#errs + 1] = located(s, path .. ".sweep", (util.message(paths):gsub("^sweep: ", ""))); return end
  for i, pt in ipairs(points) do
    local ep = e
    for _, p in ipairs(paths) do
      local ok2, r = pcall(sweep.set, ep, p, pt.values[p])
      if not ok2 then errs[#errs + 1] = located(s, path .. ".sweep", (util.message(r):gsub("^sweep: ", ""))); return end
      ep = r
    end
    ep.sweep = nil
    local before = #errs
    validate(s, ep, schema.fields.experiments.values, path .. ".sweep[point " .. i .. "]", errs)
    local tmsg = timing_problem(spec, ep)
    if tmsg then errs[#errs + 1] = located(s, path .. ".sweep", "point " .. i .. ": " .. tmsg) end
    for _, sh in ipairs(ep.shocks or { ep.shock }) do
      local ok3, msg = pcall(require("spillover.counterfactual").parse_change, sh.change, "change")
      if not ok3 then
        errs[#errs + 1] = located(s, path .. ".sweep", "point " .. i .. ": " .. (util.message(msg):gsub("^change: ", "")))
      end
    end
    if #errs > before then return end -- one point's problems stand for the rest
  end
end

--- An experiment's scale: levels of a transform the outcome is, weights
--- that exist and are asked for.
local function check_scale(s, spec, e, path, known_var, known, errs)
  local sc, m = e.scale, spec.models[e.model]
  if sc.aggregate == "weighted" and not sc.weight then
    errs[#errs + 1] = located(s, path .. ".aggregate", "'weighted' needs 'weight' (a column, e.g. population)")
  elseif sc.weight and sc.aggregate ~= "weighted" then
    errs[#errs + 1] = located(s, path .. ".weight", "'weight' is read only by aggregate: weighted", true)
  end
  if sc.weight and not known_var(sc.weight) then
    errs[#errs + 1] = located(s, path .. ".weight", "unknown column '" .. sc.weight .. "'" .. did_you_mean(sc.weight, known))
  end
  if m and sc.transform ~= "none" then
    local ok, t, why = pcall(require("spillover.counterfactual").experiment_scale, m.formula, spec.derive, sc)
    if ok and t == nil then
      errs[#errs + 1] = located(s, path, why .. "; give transform: none for effects on the model's scale")
    end
  end
end

--- Validate a loaded scenario: the schema, then references between its parts
--- and to the data's columns.  Raises one message listing every problem.
function M.check(s, opts)
  opts = opts or {}
  local errs = {}
  validate(s, s.spec, schema, "", errs)
  if #errs > 0 then raise(table.concat(errs, "\n")) end
  local spec = s.spec
  local derive = require "spillover.scenario_derive"
  s.derive_order = derive.order(s, errs)

  -- data file and its columns
  local datafile = resolve(s, spec.data.file)
  local data_msg = file_problem(datafile, "data file")
  if data_msg then
    errs[#errs + 1] = located(s, "data.file", data_msg)
    raise(table.concat(errs, "\n"))
  end
  local d = s.data or M.load_data(s)
  local columns = {}
  for _, c in ipairs(d:names()) do columns[c] = true end
  local known = {}
  for c in pairs(columns) do known[#known + 1] = c end
  for k in pairs(spec.derive or {}) do known[#known + 1] = k end
  table.sort(known)
  local function known_var(v) return columns[v] or (spec.derive and spec.derive[v] ~= nil) end
  local function check_col(path, name)
    if not columns[name] then
      errs[#errs + 1] = located(s, path, "unknown column '" .. name .. "' in " .. spec.data.file ..
        did_you_mean(name, d:names()))
    end
  end
  if spec.data.entity then check_col("data.entity", spec.data.entity) end
  if spec.data.time then check_col("data.time", spec.data.time) end
  for k, dv in pairs(spec.derive or {}) do
    local inputs = derive.inputs(dv) or {}
    for i, v in ipairs(inputs) do
      if not known_var(v) then
        errs[#errs + 1] = located(s, "derive." .. k .. (type(dv) == "table" and dv.entropy and ".entropy[" .. i .. "]" or ""),
          "unknown variable '" .. v .. "'" .. did_you_mean(v, known))
      end
    end
    if columns[k] then
      errs[#errs + 1] = located(s, "derive." .. k, "'" .. k .. "' is already a column of the data; derive a new name", true)
    end
    local by_msg = derive.by_problem(dv)
    if by_msg then errs[#errs + 1] = located(s, "derive." .. k .. ".by", by_msg, true) end
    -- Indices, winsorising, standardising and group means need numbers (a
    -- group_mean's 'by' may be categorical).
    if type(dv) == "table" and not dv.expr then
      for _, v in ipairs(inputs) do
        if columns[v] and type(d[v]) == "table" and v ~= dv.by then
          errs[#errs + 1] = located(s, "derive." .. k, "'" .. v .. "' is categorical (text); this derivation needs numbers")
        end
      end
    end
  end
  for name, w in pairs(spec.weights or {}) do
    local kinds = {}
    for _, k in ipairs(WEIGHTS_KINDS) do if w[k] ~= nil then kinds[#kinds + 1] = k end end
    if #kinds ~= 1 then
      errs[#errs + 1] = located(s, "weights." .. name, (#kinds == 0 and "give one of " or "give only one of ") ..
        table.concat(WEIGHTS_KINDS, ", ") .. " (an edge list; a coordinates file twice; a data column; two other entries)")
    end
    local kind = kinds[1]
    if kind == "contiguity" or kind == "knn" or kind == "distance" then
      local msg = file_problem(resolve(s, w[kind]), kind == "contiguity" and "edge list" or "coordinates file")
      if msg then errs[#errs + 1] = located(s, "weights." .. name .. "." .. kind, msg) end
    elseif kind == "economic" and not (columns[w.economic] and type(d[w.economic]) ~= "table") then
      errs[#errs + 1] = located(s, "weights." .. name .. ".economic", (columns[w.economic] and "'" .. w.economic ..
        "' is categorical; economic distance needs a number" or "unknown column '" .. w.economic .. "'" ..
        did_you_mean(w.economic, d:names())))
    elseif kind == "nested" then
      for _, part in ipairs(w.nested) do
        local pw = spec.weights[part]
        if pw == nil or pw.nested ~= nil then
          errs[#errs + 1] = located(s, "weights." .. name .. ".nested", pw and ("'" .. part .. "' is nested itself; " ..
            "nest two plain entries") or ("unknown weights '" .. part .. "'"))
        end
      end
    end
    if w.id and not columns[w.id] then
      errs[#errs + 1] = located(s, "weights." .. name .. ".id", "unknown column '" .. w.id .. "'" .. did_you_mean(w.id, d:names()))
    end
  end
  for _, p in ipairs(spec.plugins or {}) do
    local msg = file_problem(resolve(s, p), "plugin")
    if msg then errs[#errs + 1] = located(s, "plugins", msg) end
  end
  -- The estimators: built-ins register when the API is loaded (and so
  -- before any plugin could take their names), plugins here.
  require "spillover"
  if not opts.skip_plugins and #errs == 0 then
    for _, p in ipairs(spec.plugins or {}) do load_plugin(s, p, opts) end
  end
  local model_names = {}
  for name, m in pairs(spec.models or {}) do
    model_names[#model_names + 1] = name
    local path = "models." .. name
    local est = registry.get(m.estimator)
    if not est then
      local names = registry.names()
      errs[#errs + 1] = located(s, path .. ".estimator", "unknown estimator '" .. m.estimator .. "'" ..
        did_you_mean(m.estimator, names) .. " (known: " .. table.concat(names, ", ") .. "; plugins can register more)")
    end
    local ok, fm = pcall(core.formula, m.formula)
    if not ok then
      errs[#errs + 1] = located(s, path .. ".formula", (util.message(fm):gsub("\n", " ")))
    else
      for _, v in ipairs(fm.vars) do
        if not known_var(v) then
          errs[#errs + 1] = located(s, path .. ".formula", "unknown variable '" .. v .. "'" .. did_you_mean(v, known))
        end
      end
    end
    local caps = est and est.capabilities or {}
    if caps.spatial then
      if not m.weights then
        errs[#errs + 1] = located(s, path, "estimator '" .. m.estimator .. "' needs 'weights' naming an entry of weights:")
      elseif not (spec.weights and spec.weights[m.weights]) then
        local wn = {}
        for k in pairs(spec.weights or {}) do wn[#wn + 1] = k end
        errs[#errs + 1] = located(s, path .. ".weights", "unknown weights '" .. m.weights .. "'" .. did_you_mean(m.weights, wn))
      end
    elseif m.weights and not known_var(m.weights) then
      errs[#errs + 1] = located(s, path .. ".weights", "unknown weight column '" .. m.weights .. "'" .. did_you_mean(m.weights, known))
    end
    if est and est.model_keys then
      local uses = {}
      for _, k in ipairs(est.model_keys) do uses[k] = true end
      for _, k in ipairs({ "compat", "vcov", "weights" }) do
        if m[k] ~= nil and not uses[k] then
          local opt = est.options and est.options[k] and "; it takes " .. k .. " as an option (options: {" .. k .. ": ...})" or ""
          errs[#errs + 1] = located(s, path .. "." .. k, "estimator '" .. m.estimator .. "' does not use '" .. k .. "'" ..
            (#est.model_keys > 0 and " (it uses: " .. table.concat(est.model_keys, ", ") .. ")" or "") .. opt, true)
        end
      end
    end
    local kind = est and est.vcov and m.vcov ~= nil and vcov_rules.kind(m.vcov)
    if kind then
      local takes = false
      for _, k in ipairs(est.vcov) do takes = takes or k == kind end
      if not takes then
        errs[#errs + 1] = located(s, path .. ".vcov", "estimator '" .. m.estimator .. "' does not take vcov '" .. kind ..
          "' (it takes: " .. table.concat(est.vcov, ", ") .. ")")
      end
    end
    if est and est.options then
      -- The estimator's option schema, checked as the rest of the file is.
      validate(s, m.options or {}, { type = "map", fields = est.options }, path .. ".options", errs)
    end
    if type(m.vcov) == "table" and m.vcov.cluster then
      for _, c in ipairs(as_list(m.vcov.cluster)) do
        if not known_var(c) then
          errs[#errs + 1] = located(s, path .. ".vcov.cluster", "unknown cluster variable '" .. c .. "'" .. did_you_mean(c, known))
        end
      end
    end
    -- the other variables a vcov names, and settings that belong to another kind
    if type(m.vcov) == "table" then
      for _, key in ipairs({ "wild", "time" }) do
        local c = m.vcov[key]
        if type(c) == "string" and not known_var(c) then
          errs[#errs + 1] = located(s, path .. ".vcov." .. key, "unknown " .. (key == "wild" and "cluster" or "time") ..
            " variable '" .. c .. "'" .. did_you_mean(c, known))
        end
      end
      for _, ko in ipairs({ { "reps", "wild" }, { "weights", "wild" }, { "seed", "wild" }, { "impose_null", "wild" },
        { "level", "wild" }, { "time", "newey_west" } }) do
        local key, kind = ko[1], ko[2]
        if m.vcov[key] ~= nil and m.vcov[kind] == nil then
          errs[#errs + 1] = located(s, path .. ".vcov." .. key, "'" .. key .. "' is a setting of vcov {" .. kind ..
            ": ...}, which this vcov does not have")
        end
      end
      local kinds = {}
      for _, k in ipairs({ "cluster", "driscoll_kraay", "newey_west", "wild" }) do
        if m.vcov[k] ~= nil then kinds[#kinds + 1] = k end
      end
      if #kinds > 1 then
        errs[#errs + 1] = located(s, path .. ".vcov", "give one of " .. table.concat(kinds, ", ") .. ", not " .. #kinds)
      end
    end
  end
  for name, m in pairs(spec.models or {}) do
    if m.by and not known_var(m.by) then
      errs[#errs + 1] = located(s, "models." .. name .. ".by", "unknown column '" .. m.by .. "'" .. did_you_mean(m.by, known))
    end
  end
  table.sort(model_names)
  local cf = require "spillover.counterfactual"
  for name, e in pairs(spec.experiments or {}) do
    local path = "experiments." .. name
    if spec.models[e.model] == nil then
      errs[#errs + 1] = located(s, path .. ".model", "unknown model '" .. e.model .. "'" ..
        did_you_mean(e.model, model_names) .. " (models: " .. table.concat(model_names, ", ") .. ")")
    end
    if spec.models[e.model] and spec.models[e.model].by then
      errs[#errs + 1] = located(s, path .. ".model", "model '" .. e.model .. "' is estimated by group ('by'); " ..
        "experiments need a single model")
    end
    local kinds = (e.shock ~= nil and 1 or 0) + (e.shocks ~= nil and 1 or 0) + (e.rollout ~= nil and 1 or 0)
    if e.allocate then
      if kinds > 0 then
        errs[#errs + 1] = located(s, path, "'allocate' splits a budget of its own input; give it without 'shock', " ..
          "'shocks' or 'rollout'")
      end
      check_allocate(s, spec, e.allocate, path .. ".allocate", d, columns, known_var, known, errs)
    elseif kinds == 0 then
      errs[#errs + 1] = located(s, path, "an experiment needs 'shock' (one), 'shocks' (a list), 'rollout' or 'allocate'")
    elseif kinds > 1 then
      errs[#errs + 1] = located(s, path, "give one of 'shock', 'shocks' and 'rollout'")
    end
    if e.disparity then
      local dg = e.disparity.groups
      if dg and not known_var(dg) then
        errs[#errs + 1] = located(s, path .. ".disparity.groups", "unknown column '" .. dg .. "'" .. did_you_mean(dg, known))
      end
      if e.disparity.measure == "dagum" and not dg then
        errs[#errs + 1] = located(s, path .. ".disparity", "measure 'dagum' decomposes by groups: give groups")
      end
    end
    if e.rollout then
      local rpath = path .. ".rollout"
      if not (spec.data.entity and spec.data.time) then
        errs[#errs + 1] = located(s, rpath, "a roll-out treats units from a period: give data.entity and data.time")
      end
      if e.bootstrap then
        errs[#errs + 1] = located(s, path .. ".bootstrap", "a roll-out's intervals come from parameter draws; use 'draws'")
      end
      local where_msg = e.rollout.where and where_problem(e.rollout.where, known_var, known)
      if where_msg then
        errs[#errs + 1] = located(s, rpath .. ".where", where_msg)
      elseif e.rollout.where then
        local ok, mask, _, why = pcall(cf.shock_rows, d, { where = e.rollout.where }, spec.data.time)
        if ok and not mask then errs[#errs + 1] = located(s, rpath .. ".where", "the roll-out selects no row: " .. why) end
      end
    end
    if e.draws and e.bootstrap then
      errs[#errs + 1] = located(s, path, "give 'draws' or 'bootstrap', not both")
    end
    local m = spec.models[e.model]
    local est = m and registry.get(m.estimator)
    local msg, key
    if est and est.capabilities then
      msg, key = M.serve_problem("model '" .. e.model .. "' (estimator '" .. m.estimator .. "')", est.capabilities, e)
    end
    if not msg and e.bootstrap and not spec.data.entity then
      msg, key = "'bootstrap' resamples the panel's entities; give data.entity", "bootstrap"
    end
    if msg then errs[#errs + 1] = located(s, path .. "." .. key, msg, true) end
    if e.shocks and #e.shocks == 0 then
      errs[#errs + 1] = located(s, path .. ".shocks", "the list is empty; give at least one shock")
    end
    local shocks = e.shocks or { e.shock }
    if e.rollout then shocks = {} end
    for i, sh in ipairs(shocks) do
      local spath = e.shocks and (path .. ".shocks[" .. i .. "]") or (path .. ".shock")
      for _, v in ipairs(as_list(sh.variable)) do
        if spec.derive and spec.derive[v] ~= nil then
          errs[#errs + 1] = located(s, spath .. ".variable", "'" .. v .. "' is derived; shock the data it is derived from")
        elseif not columns[v] then
          errs[#errs + 1] = located(s, spath .. ".variable", "unknown column '" .. v .. "'" .. did_you_mean(v, d:names()))
        elseif type(d[v]) == "table" then
          errs[#errs + 1] = located(s, spath .. ".variable", "'" .. v .. "' is categorical; only numbers can be shocked")
        end
      end
      local ok, msg = pcall(cf.parse_change, sh.change, "change")
      if not ok then errs[#errs + 1] = located(s, spath .. ".change", (util.message(msg):gsub("^change: ", ""))) end
      if (sh.from or sh.to) and not spec.data.time then
        errs[#errs + 1] = located(s, spath, "'from'/'to' need data.time")
      end
      if sh.phase_in and not sh.from then
        errs[#errs + 1] = located(s, spath .. ".phase_in", "'phase_in' counts periods from 'from'; give 'from'")
      end
      local where_msg = sh.where and where_problem(sh.where, known_var, known)
      if where_msg then errs[#errs + 1] = located(s, spath .. ".where", where_msg) end
      if sh.from and sh.to and sh.from > sh.to then
        errs[#errs + 1] = located(s, spath .. ".from", "'from' (" .. sh.from .. ") is after 'to' (" .. sh.to .. ")")
      elseif not where_msg and (sh.where or sh.from or sh.to) and (spec.data.time or not (sh.from or sh.to)) then
        -- A shock that touches no row reports an effect of exactly zero: refuse
        -- it here, on the data as read.  A where-expression over derived
        -- variables cannot be evaluated yet; the run checks it again.
        local ok, mask, field, msg = pcall(cf.shock_rows, d, sh, spec.data.time)
        if ok and not mask then
          errs[#errs + 1] = located(s, spath .. "." .. field, "the shock selects no row: " .. msg)
        end
      end
    end
    if e.sweep then check_sweep(s, spec, e, path, errs) end
    local tmsg, tkey = timing_problem(spec, e)
    if tmsg then errs[#errs + 1] = located(s, path .. "." .. tkey, tmsg) end
    for _, g in ipairs(as_list(e.groups)) do
      if not known_var(g) then
        errs[#errs + 1] = located(s, path .. ".groups", "unknown column '" .. g .. "'" .. did_you_mean(g, known))
      end
    end
    if e.scale then check_scale(s, spec, e, path .. ".scale", known_var, known, errs) end
  end
  if type(spec.compare) == "string" and spec.compare ~= "all" then
    errs[#errs + 1] = located(s, "compare", "expected a list of experiments or \"all\", got \"" .. spec.compare .. "\"")
  end
  for i, p in ipairs(type(spec.compare) == "table" and spec.compare or {}) do
    if not (spec.experiments and spec.experiments[p]) then
      local names = {}
      for k in pairs(spec.experiments or {}) do names[#names + 1] = k end
      table.sort(names)
      errs[#errs + 1] = located(s, "compare[" .. i .. "]", "unknown experiment '" .. p .. "'" .. did_you_mean(p, names))
    end
  end
  if spec.spec_curve then check_spec_curve(s, spec, known_var, known, errs) end
  local report = spec.report or {}
  for i, t in ipairs(report.tables or {}) do
    if spec.models[t] == nil then
      errs[#errs + 1] = located(s, "report.tables[" .. i .. "]", "unknown model '" .. t .. "'" .. did_you_mean(t, model_names))
    end
  end
  for _, key in ipairs { "plots", "maps" } do
    for i, p in ipairs(report[key] or {}) do
      if not (spec.experiments and spec.experiments[p]) then
        local names = {}
        for k in pairs(spec.experiments or {}) do names[#names + 1] = k end
        errs[#errs + 1] = located(s, "report." .. key .. "[" .. i .. "]", "unknown experiment '" .. p .. "'" .. did_you_mean(p, names))
      end
    end
  end
  if report.maps then
    -- Every unit of the data needs a tile: a map missing a province is found now, not after the run.
    local tiles = require "spillover.tiles"
    local ok, layout = pcall(tiles.get, report.tiles or "cn31", s.dir)
    if ok and not spec.data.entity then
      errs[#errs + 1] = located(s, "report.maps", "maps draw the effect by unit; give data.entity")
    elseif ok then
      local units, seen = {}, {}
      local col = d:column(spec.data.entity)
      for r = 1, d:nrow() do
        local u = col[r]
        if not seen[u] then seen[u] = true; units[#units + 1] = u end
      end
      ok, layout = pcall(tiles.match, layout, units)
    end
    if not ok then errs[#errs + 1] = located(s, "report.tiles", (util.message(layout):gsub("^tiles: ", ""))) end
  end
  if #errs > 0 then
    table.sort(errs)
    raise(table.concat(errs, "\n"))
  end
  s.checked = true
  return s
end

-- ---- running -------------------------------------------------------------------------------------

--- Read the data (and joins) of a scenario, with its panel index.
function M.load_data(s)
  local spec = s.spec
  local d = core.read_csv(resolve(s, spec.data.file))
  for _, j in ipairs(spec.data.join or {}) do
    local other = core.read_csv(resolve(s, j.file))
    d = d:join(other, { on = j.on, how = j.how or "left" })
  end
  if spec.data.filter then
    local n = d:nrow()
    local ok, kept = pcall(d.filter, d, spec.data.filter)
    if not ok then fail(s, "data.filter", util.message(kept)) end
    if kept:nrow() == 0 then
      fail(s, "data.filter", "the filter \"" .. spec.data.filter .. "\" keeps none of the " .. n .. " rows")
    end
    d = kept
  end
  local names = d:names()
  local have = {}
  for _, c in ipairs(names) do have[c] = true end
  for _, key in ipairs({ "entity", "time" }) do
    local col = spec.data[key]
    if col and not have[col] then
      fail(s, "data." .. key, "unknown column '" .. col .. "' in " .. spec.data.file .. did_you_mean(col, names))
    end
  end
  if spec.data.entity and spec.data.time then
    local ok, err = pcall(d.panel, d, { entity = spec.data.entity, time = spec.data.time })
    if not ok then fail(s, "data", err) end
  end
  s.data = d
  return d
end

--- Build the derive step: a function(frame) recomputing every derived
--- variable in dependency order with the baseline's parameters (index weights

return M
