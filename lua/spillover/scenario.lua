-- spillover.scenario: YAML scenario files, validated before anything runs,
-- executed with the public Lua API only (anything a scenario does, a script
-- can do: sp.scenario.load(path), sp.scenario.check(s), sp.scenario.run(s)).
--
-- A scenario names its data, derived variables, models, experiments and
-- report (docs/scenarios.md has the schema and an annotated example).  Errors
-- cite file:line:column and the path of the offending node
-- (experiments.west.shock.change) and say what was expected.
local core = require "spillover.core"
local json = require "spillover.json"

local M = {}

-- ---- errors with positions ---------------------------------------------------------

local suggest = require "spillover.suggest"
local closest, did_you_mean = suggest.closest, suggest.did_you_mean
M.closest = closest

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
local function user_message(msg)
  return (tostring(msg):gsub("[^%s:]*spillover/[%w_]+%.lua:%d+: ", ""))
end
M.user_message = user_message

local function located(s, path, msg, key)
  msg = user_message(msg)
  local pos = position(s, path, key)
  local where = s.file or "scenario"
  if pos.line and pos.line > 0 then where = string.format("%s:%d:%d", where, pos.line, pos.col) end
  return string.format("%s: %s: %s", where, path ~= "" and path or "(top level)", msg)
end

local function fail(s, path, msg, key) error(located(s, path, msg, key), 0) end

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
  weights = { type = "dict", values = { type = "map", fields = {
    contiguity = STR, from = STR, to = STR, id = STR, style = { type = "string", enum = { "W", "B", "row", "binary" } },
    knn = STR, k = INT, x = STR, y = STR, great_circle = BOOL,
  } } },
  derive = { type = "dict", values = { type = { "string", "map" }, fields = {
    expr = STR, entropy = { type = "list", items = STR }, topsis = { type = "list", items = STR },
    direction = { type = "dict", values = { type = "string", enum = { "+", "-" } } },
    by = STR, scale = NUM, shift = NUM, normalise = { type = "string", enum = { "minmax", "ratio" } },
    winsorize = STR, p = { type = "number", min = 0, below = 0.5 }, standardize = STR, group_mean = STR,
    ratio = { type = "list", items = STR, len = 2 },
  } } },
  models = { type = "dict", required = true, keys = NAME, values = { type = "map", fields = {
    estimator = { type = "string", required = true },
    formula = { type = "string", required = true },
    vcov = { type = { "string", "map" }, fields = {
      cluster = STR_OR_LIST, driscoll_kraay = { type = "integer", min = 0 }, type = STR,
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
    draws = { type = "integer", min = 0, max = MAX_DRAWS }, bootstrap = { type = "integer", min = 1, max = MAX_BOOTSTRAP },
    seed = INT, level = { type = "number", min = 0, max = 1, open_range = true },
    groups = STR_OR_LIST,
    label = STR,
  } } },
  report = { type = "map", fields = {
    tables = { type = "list", items = STR },
    plots = { type = "list", items = STR },
    formats = { type = "list", items = { type = "string", enum = { "md", "tex", "csv", "html", "xlsx", "json", "png", "svg" } } },
    labels = { type = "dict", values = STR },
    title = STR,
  } },
  plugins = { type = "list", items = STR },
} }
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
    for _, e in ipairs(sch.enum) do if e == v then ok = true end end
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
  if not yaml then error("scenario: this build has no YAML support", 2) end
  local value, positions = yaml.load_file(path)
  if value == nil then error(tostring(positions), 0) end
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
    error(path .. ":1:1: (top level): expected a mapping of scenario keys (name, data, models, ...)", 0)
  end
  local s = { spec = value, positions = positions or {}, file = path, dir = dirname(path) }
  for _, o in ipairs(overrides or {}) do M.set(s, o) end
  return s
end

--- Apply an override "key.path=value" (value read as a YAML scalar).
function M.set(s, assignment)
  local path, text = assignment:match("^([%w_%.%[%]]+)=(.*)$")
  if not path then error("--set: expected key.path=value, got '" .. assignment .. "'", 0) end
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

-- ---- derived variables: order and cycles ---------------------------------------------------

--- The variables an expression references (via the formula parser).
local function expr_vars(expr)
  local ok, f = pcall(core.formula, "sp_one__ ~ 0 + " .. expr)
  if not ok then return nil, tostring(f):gsub("sp_one__ ~ 0 %+ ", "") end
  local vars = {}
  for _, v in ipairs(f.vars) do if v ~= "sp_one__" then vars[#vars + 1] = v end end
  return vars
end

local function derive_inputs(spec)
  if type(spec) == "string" then return expr_vars(spec) end
  if spec.expr then return expr_vars(spec.expr) end
  if spec.entropy then return spec.entropy end
  if spec.topsis then return spec.topsis end
  if spec.winsorize then return { spec.winsorize } end
  if spec.standardize then return { spec.standardize } end
  if spec.group_mean then return { spec.group_mean, spec.by } end
  if spec.ratio then return spec.ratio end
  return nil, "expected an expression or one of: expr, entropy, topsis, winsorize, standardize, group_mean, ratio"
end

--- Derived names in dependency order (file order among independent ones).
local function derive_order(s, errs)
  local derive = s.spec.derive or {}
  local names = {}
  for k in pairs(derive) do names[#names + 1] = k end
  table.sort(names, function(a, b)
    local pa, pb = position(s, "derive." .. a), position(s, "derive." .. b)
    if pa.line ~= pb.line then return pa.line < pb.line end
    return a < b
  end)
  local deps = {}
  for _, k in ipairs(names) do
    local inputs, msg = derive_inputs(derive[k])
    if not inputs then
      errs[#errs + 1] = located(s, "derive." .. k, msg)
      inputs = {}
    end
    deps[k] = {}
    for _, v in ipairs(inputs) do if derive[v] ~= nil and v ~= k then deps[k][#deps[k] + 1] = v end end
    for _, v in ipairs(inputs) do
      if v == k and type(derive[k]) == "string" then
        errs[#errs + 1] = located(s, "derive." .. k, "'" .. k .. "' is defined in terms of itself")
      end
    end
  end
  local order, state = {}, {}
  local function visit(k, stack)
    if state[k] == "done" then return end
    if state[k] == "active" then
      local cycle = {}
      local on = false
      for _, x in ipairs(stack) do
        if x == k then on = true end
        if on then cycle[#cycle + 1] = x end
      end
      cycle[#cycle + 1] = k
      errs[#errs + 1] = located(s, "derive." .. k, "cyclic derivation: " .. table.concat(cycle, " -> "))
      return
    end
    state[k] = "active"
    stack[#stack + 1] = k
    for _, dep in ipairs(deps[k]) do visit(dep, stack) end
    stack[#stack] = nil
    state[k] = "done"
    order[#order + 1] = k
  end
  for _, k in ipairs(names) do visit(k, {}) end
  return order
end

-- ---- estimators --------------------------------------------------------------------------------

local estimators = {}

--- Add {name, fit, spatial} for origin ("a script", "plugin <file>").  The
--- names of built-in estimators are reserved, and a name belongs to the
--- origin that registered it first, so a plugin can neither replace ols nor
--- another plugin's estimator.  Raises at level 0 (callers add positions).
local function register(e, origin)
  if type(e) ~= "table" or type(e.name) ~= "string" or type(e.fit) ~= "function" then
    error("register_estimator: expected {name = \"...\", fit = function(data, spec, opts) ... end}", 0)
  end
  local old = estimators[e.name]
  if old and old.builtin then
    error("register_estimator: '" .. e.name .. "' is a built-in estimator; choose another name", 0)
  end
  if old and old.origin ~= origin then
    error("register_estimator: '" .. e.name .. "' is already registered by " .. old.origin .. "; choose another name", 0)
  end
  estimators[e.name] = { name = e.name, fit = e.fit, spatial = e.spatial == true, origin = origin }
end

--- Register an estimator usable from scenarios and sp.estimate:
--- {name = "ridge", fit = function(data, spec, opts) return fit end}, where spec
--- has formula and the model's keys, and the result satisfies the fit protocol.
function M.register_estimator(e)
  local ok, err = pcall(register, e, "the host (spillover or a script)")
  if not ok then error(err, 2) end
end

local function builtin(name, fn)
  estimators[name] = { name = name, builtin = true, fit = fn }
end

local function linear_opts(spec)
  local opts = {}
  for k, v in pairs(spec.options or {}) do opts[k] = v end
  opts.vcov, opts.compat, opts.weights = spec.vcov, spec.compat, spec.weights
  return opts
end

builtin("ols", function(d, spec) return require("spillover.linear").ols(d, spec.formula, linear_opts(spec)) end)
builtin("fe", estimators.ols.fit)
builtin("iv", estimators.ols.fit)
for _, name in ipairs({ "re", "between", "fd" }) do
  builtin(name, function(d, spec)
    local ok, mod = pcall(require, "spillover.panel_models")
    if not ok or not mod[name] then error("estimator '" .. name .. "' is not available in this build", 0) end
    return mod[name](d, spec.formula, linear_opts(spec))
  end)
end

builtin("threshold", function(d, spec)
  local opts = {}
  for k, v in pairs(spec.options or {}) do opts[k] = v end
  opts.vcov, opts.compat = spec.vcov, spec.compat
  return require("spillover.threshold").threshold(d, spec.formula, opts)
end)

for _, name in ipairs({ "sar", "sem", "sdm", "sdem" }) do
  estimators[name] = { name = name, builtin = true, spatial = true, fit = function(d, spec, opts)
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    o.model, o.weights = name, spec.weights_object
    return require("spillover.spatial_models").spatial(d, spec.formula, o)
  end }
end

function M.estimator_names()
  local t = {}
  for k in pairs(estimators) do t[#t + 1] = k end
  table.sort(t)
  return t
end

-- ---- plugins ------------------------------------------------------------------------------------

--- Run the plugin file p of scenario s in spillover.sandbox (docs/scenarios.md
--- "Plugins and the sandbox"); its estimators are registered as its own.
--- Trust comes only from the host's opts.trust (the command line's --trust).
local function load_plugin(s, p, opts)
  local path = resolve(s, p)
  require("spillover.sandbox").load_plugin(path, {
    sp = opts.sp or require("spillover"), trust = opts.trust, root = s.dir,
    register = function(e) register(e, "plugin " .. path) end,
  })
end

-- ---- validation ---------------------------------------------------------------------------------

local function as_list(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end

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

--- Validate a loaded scenario: the schema, then references between its parts
--- and to the data's columns.  Raises one message listing every problem.
function M.check(s, opts)
  opts = opts or {}
  local errs = {}
  validate(s, s.spec, schema, "", errs)
  if #errs > 0 then error(table.concat(errs, "\n"), 0) end
  local spec = s.spec
  s.derive_order = derive_order(s, errs)

  -- data file and its columns
  local datafile = resolve(s, spec.data.file)
  local data_msg = file_problem(datafile, "data file")
  if data_msg then
    errs[#errs + 1] = located(s, "data.file", data_msg)
    error(table.concat(errs, "\n"), 0)
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
    local inputs = derive_inputs(dv) or {}
    for i, v in ipairs(inputs) do
      if not known_var(v) then
        errs[#errs + 1] = located(s, "derive." .. k .. (type(dv) == "table" and dv.entropy and ".entropy[" .. i .. "]" or ""),
          "unknown variable '" .. v .. "'" .. did_you_mean(v, known))
      end
    end
    if columns[k] then
      errs[#errs + 1] = located(s, "derive." .. k, "'" .. k .. "' is already a column of the data; derive a new name", true)
    end
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
    local src = w.contiguity or w.knn
    if not src then
      errs[#errs + 1] = located(s, "weights." .. name, "give 'contiguity' (an edge list) or 'knn' (coordinates)")
    else
      local msg = file_problem(resolve(s, src), w.contiguity and "edge list" or "coordinates file")
      if msg then errs[#errs + 1] = located(s, "weights." .. name .. (w.contiguity and ".contiguity" or ".knn"), msg) end
    end
    if w.id and not columns[w.id] then
      errs[#errs + 1] = located(s, "weights." .. name .. ".id", "unknown column '" .. w.id .. "'" .. did_you_mean(w.id, d:names()))
    end
  end
  for _, p in ipairs(spec.plugins or {}) do
    local msg = file_problem(resolve(s, p), "plugin")
    if msg then errs[#errs + 1] = located(s, "plugins", msg) end
  end
  if not opts.skip_plugins and #errs == 0 then
    for _, p in ipairs(spec.plugins or {}) do load_plugin(s, p, opts) end
  end
  local model_names = {}
  for name, m in pairs(spec.models or {}) do
    model_names[#model_names + 1] = name
    local path = "models." .. name
    if not estimators[m.estimator] then
      errs[#errs + 1] = located(s, path .. ".estimator", "unknown estimator '" .. m.estimator .. "'" ..
        did_you_mean(m.estimator, M.estimator_names()) .. " (known: " .. table.concat(M.estimator_names(), ", ") ..
        "; plugins can register more)")
    end
    local ok, fm = pcall(core.formula, m.formula)
    if not ok then
      errs[#errs + 1] = located(s, path .. ".formula", (tostring(fm):gsub("\n", " ")))
    else
      for _, v in ipairs(fm.vars) do
        if not known_var(v) then
          errs[#errs + 1] = located(s, path .. ".formula", "unknown variable '" .. v .. "'" .. did_you_mean(v, known))
        end
      end
    end
    if estimators[m.estimator] and estimators[m.estimator].spatial then
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
    if type(m.vcov) == "table" and m.vcov.cluster then
      for _, c in ipairs(as_list(m.vcov.cluster)) do
        if not known_var(c) then
          errs[#errs + 1] = located(s, path .. ".vcov.cluster", "unknown cluster variable '" .. c .. "'" .. did_you_mean(c, known))
        end
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
    if e.shock == nil and e.shocks == nil then
      errs[#errs + 1] = located(s, path, "an experiment needs 'shock' (one) or 'shocks' (a list)")
    end
    if e.draws and e.bootstrap then
      errs[#errs + 1] = located(s, path, "give 'draws' or 'bootstrap', not both")
    end
    if e.shocks and #e.shocks == 0 then
      errs[#errs + 1] = located(s, path .. ".shocks", "the list is empty; give at least one shock")
    end
    local shocks = e.shocks or { e.shock }
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
      if not ok then errs[#errs + 1] = located(s, spath .. ".change", (tostring(msg):gsub("^change: ", ""))) end
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
    for _, g in ipairs(as_list(e.groups)) do
      if not known_var(g) then
        errs[#errs + 1] = located(s, path .. ".groups", "unknown column '" .. g .. "'" .. did_you_mean(g, known))
      end
    end
  end
  local report = spec.report or {}
  for i, t in ipairs(report.tables or {}) do
    if spec.models[t] == nil then
      errs[#errs + 1] = located(s, "report.tables[" .. i .. "]", "unknown model '" .. t .. "'" .. did_you_mean(t, model_names))
    end
  end
  for i, p in ipairs(report.plots or {}) do
    if not (spec.experiments and spec.experiments[p]) then
      local names = {}
      for k in pairs(spec.experiments or {}) do names[#names + 1] = k end
      errs[#errs + 1] = located(s, "report.plots[" .. i .. "]", "unknown experiment '" .. p .. "'" .. did_you_mean(p, names))
    end
  end
  if #errs > 0 then
    table.sort(errs)
    error(table.concat(errs, "\n"), 0)
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
    if not ok then fail(s, "data.filter", tostring(kept)) end
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
    if not ok then fail(s, "data", tostring(err)) end
  end
  s.data = d
  return d
end

--- Build the derive step: a function(frame) recomputing every derived
--- variable in dependency order with the baseline's parameters (index weights
--- and normalisation bounds, winsorising bounds, standardising moments).
local function make_derive(s)
  local derive, order = s.spec.derive or {}, s.derive_order or {}
  local eval = require("spillover.derive").eval
  local baseline = {}
  s.indices = {}
  local function compute(d, name, dv, first)
    if type(dv) == "string" or dv.expr then
      d[name] = eval(d, type(dv) == "string" and dv or dv.expr)
    elseif dv.ratio then
      d[name] = eval(d, "I(" .. dv.ratio[1] .. " / " .. dv.ratio[2] .. ")")
    elseif dv.entropy or dv.topsis then
      local index = require "spillover.index"
      if first then
        local opts = { direction = dv.direction, by = dv.by, scale = dv.scale, shift = dv.shift, normalise = dv.normalise }
        local res = dv.entropy and index.entropy(d, dv.entropy, opts) or index.topsis(d, dv.topsis, opts)
        baseline[name] = res
        s.indices[name] = res
        d[name] = res.score
      else
        d[name] = index.apply(d, baseline[name])
      end
    elseif dv.winsorize or dv.standardize then
      local src = dv.winsorize or dv.standardize
      local x = d[src]:copy()
      if first then
        local vals = {}
        for i = 1, #x do if x[i] == x[i] then vals[#vals + 1] = x[i] end end
        table.sort(vals)
        if #vals < 2 then error("'" .. src .. "' has " .. #vals .. " non-missing value(s); at least 2 are needed", 0) end
        local function q(p)
          local h = (#vals - 1) * p + 1
          local lo = math.floor(h)
          return vals[lo] + (h - lo) * (vals[math.min(lo + 1, #vals)] - vals[lo])
        end
        if dv.winsorize then
          local p = dv.p or 0.01
          baseline[name] = { lo = q(p), hi = q(1 - p) }
          if baseline[name].lo == baseline[name].hi then
            error("winsorizing '" .. src .. "' at p = " .. p .. " makes it constant (" .. baseline[name].lo .. ")", 0)
          end
        else
          local sum, ss = 0, 0
          for _, v in ipairs(vals) do sum = sum + v end
          local mean = sum / #vals
          for _, v in ipairs(vals) do ss = ss + (v - mean) ^ 2 end
          baseline[name] = { mean = mean, sd = math.sqrt(ss / (#vals - 1)) }
          if not (baseline[name].sd > 0 and baseline[name].sd < math.huge) then
            error("cannot standardize '" .. src .. "': its standard deviation is " .. baseline[name].sd, 0)
          end
        end
      end
      local b = baseline[name]
      for i = 1, #x do
        local v = x[i]
        if v == v then
          if dv.winsorize then x[i] = math.min(math.max(v, b.lo), b.hi) else x[i] = (v - b.mean) / b.sd end
        end
      end
      d[name] = x
    elseif dv.group_mean then
      local by = dv.by
      local agg = d:aggregate { by = by, mean = { dv.group_mean } }
      local key = {}
      local bycol, mcol = agg[by], agg[dv.group_mean .. "_mean"]
      for i = 1, agg:nrow() do key[tostring(bycol[i])] = mcol[i] end
      local src = d[by]
      local out = core.matrix(d:nrow(), 1, 0 / 0)
      for i = 1, d:nrow() do out:set(i, 1, key[tostring(src[i])] or 0 / 0) end
      d[name] = out
    end
end
  -- Each variable under pcall, so a failure is reported at its derive.<name>
  -- entry instead of at a line of this file.
  local function step(d, first)
    for _, name in ipairs(order) do
      local ok, err = pcall(compute, d, name, derive[name], first)
      if not ok then fail(s, "derive." .. name, tostring(err)) end
    end
  end
  return step
end

local function now()
  local sys = core.sys
  return sys and sys.now and sys.now() or os.clock()
end

--- Estimate the models, run the experiments; returns the results table.
--- opts.progress: function(label, done, total).
function M.execute(s, opts)
  opts = opts or {}
  if not s.checked then M.check(s, opts) end
  local spec = s.spec
  local timings = {}
  local t0 = now()
  local d = s.data or M.load_data(s)
  timings.data = now() - t0
  local derive = make_derive(s)
  t0 = now()
  derive(d, true)
  timings.derive = now() - t0
  local fits = {}
  local model_spec, by_fits = {}, {}
  local built_weights = {}
  --- The weights of a model over the data's units (in order of first appearance).
  local function weights_of(m)
    local wname = m.weights
    if built_weights[wname] then return built_weights[wname] end
    local w = spec.weights[wname]
    local idcol = w.id or spec.data.entity
    local col = d[idcol]
    local ids, seen = {}, {}
    for i = 1, d:nrow() do
      local v = type(col) == "table" and col[i] or col:get(i, 1)
      if not seen[v] then seen[v] = true; ids[#ids + 1] = v end
    end
    local sw = require("spillover.spatial").weights
    local style = (w.style == "B" or w.style == "binary") and "B" or "W"
    local W
    if w.contiguity then
      W = sw.contiguity(resolve(s, w.contiguity), { from = w.from, to = w.to, ids = ids, style = style })
    else
      local coords = core.read_csv(resolve(s, w.knn))
      W = sw.knn(coords, w.k or 4, { id = w.id or spec.data.entity, x = w.x, y = w.y, great_circle = w.great_circle,
        style = style })
      W = W:align(ids)
    end
    built_weights[wname] = W
    return W
  end
  local function estimate(name, m, data)
    local est = estimators[m.estimator]
    if est.spatial then
      local ok, W = pcall(weights_of, m)
      if not ok then fail(s, "weights." .. m.weights, tostring(W)) end
      m = setmetatable({ weights_object = W }, { __index = m })
    end
    local ok, f = pcall(est.fit, data, m, m.options or {})
    if not ok then fail(s, "models." .. name, "estimation failed: " .. tostring(f)) end
    if type(f) ~= "table" or not f.coef then
      fail(s, "models." .. name, "estimator '" .. m.estimator .. "' did not return a fit (see the fit protocol)")
    end
    return f
  end
  local function fit_of(name)
    if fits[name] then return fits[name] end
    local m = spec.models[name]
    local t1 = now()
    if m.by then
      -- Heterogeneity: the model by group (as sp.by), one fit per value.
      local col = d[m.by]
      local values, seen = {}, {}
      for i = 1, d:nrow() do
        local v = col[i]
        if v ~= nil and v == v and not seen[v] then seen[v] = true; values[#values + 1] = v end
      end
      table.sort(values, function(a, b) return tostring(a) < tostring(b) end)
      by_fits[name] = {}
      for _, v in ipairs(values) do
        local sub = d:filter(function(row) return row[m.by] == v end)
        local shown = math.tointeger(v) and string.format("%d", v) or tostring(v)
        local key = string.format("%s[%s=%s]", name, m.by, shown)
        local f = estimate(key, m, sub)
        f.label = (m.label or name) .. ": " .. shown
        fits[key], model_spec[key] = f, m
        by_fits[name][#by_fits[name] + 1] = key
      end
    else
      local f = estimate(name, m, d)
      f.label = m.label or f.label
      fits[name], model_spec[name] = f, m
    end
    timings["model " .. name] = now() - t1
    return fits[name]
  end
  local names = {}
  for k in pairs(spec.models) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do fit_of(k) end

  -- Direct, indirect and total effects of spatial models (LeSage-Pace), with
  -- simulated inference.
  local impacts = {}
  for _, k in ipairs(names) do
    local f = fits[k]
    if f and f.impacts then
      local t1 = now()
      local ok, im = pcall(f.impacts, f, { draws = 1000, seed = spec.seed or 42 })
      if not ok then fail(s, "models." .. k, "impacts failed: " .. tostring(im)) end
      impacts[k] = im
      timings["impacts " .. k] = now() - t1
    end
  end

  local cf = require "spillover.counterfactual"
  local results = { experiments = {}, impacts = impacts }
  local exp_names = {}
  for k in pairs(spec.experiments or {}) do exp_names[#exp_names + 1] = k end
  table.sort(exp_names)
  for _, k in ipairs(exp_names) do
    local e = spec.experiments[k]
    local t1 = now()
    local ok, r = pcall(cf.run, {
      data = d, fit = fit_of(e.model), shocks = e.shocks or { e.shock },
      derive = function(frame) derive(frame, false) end,
      entity = spec.data.entity, time = spec.data.time, groups = as_list(e.groups),
      draws = e.draws, bootstrap = e.bootstrap, seed = e.seed or spec.seed or 42, level = e.level,
      progress = opts.progress and function(i, n) opts.progress(k, i, n) end,
    })
    if not ok then fail(s, "experiments." .. k, tostring(r)) end
    r.model = e.model
    results.experiments[k] = r
    timings["experiment " .. k] = now() - t1
  end
  results.fits = fits
  results.model_spec = model_spec
  results.by_fits = by_fits
  results.data = d
  results.indices = s.indices
  results.timings = timings
  return results
end

M.run = function(s, opts)
  local out = require("spillover.report")
  local results = M.execute(s, opts)
  return out.write(s, results, opts)
end

return M
