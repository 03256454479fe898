-- spillover.sandbox: plugins (Lua files named by a scenario's `plugins:`) run
-- as untrusted code.  docs/scenarios.md "Plugins and the sandbox" states the
-- threat model; this file is its implementation on top of core.sandbox
-- (engine/lua/lsandbox.c: the instruction budget, the memory cap, the
-- string methods and the refusal of writers while plugin code runs).
--
-- Only the host decides trust: load_plugin is reached from the scenario
-- runner with the command line's --trust, and neither this module nor the
-- runner is reachable from plugin code (its `sp` is a curated read-only view
-- of the API and its `require` knows only "spillover").
--
-- Values crossing between host and plugin are copied at the boundary, so
-- that neither side holds a table the other can change later:
--   host -> plugin (arguments of plugin functions): tables are deep-copied
--     (host metatables kept), data frames are copied (the host's data stays
--     as it was);
--   plugin -> host (the registered estimator, results of plugin functions):
--     tables are deep-copied with their plugin-made metatables, and every
--     function is wrapped so that calling it runs under the limits again.
-- So every call the host makes into plugin code (fit, predict_fn, refit,
-- fitted_values, metamethods...) goes through core.sandbox.call.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise

local box = core.sandbox
local M = {}

--- Limits of one call into plugin code (loading the file, one fit, one
--- predict...).  Instructions are Lua VM instructions (C code called by the
--- plugin, such as a least-squares solve, is not counted); memory is net
--- growth of what Lua's allocator holds (matrix storage included; the
--- columns of frames and what GSL allocates live outside it).
M.limits = { instructions = 200000000, memory = 1 << 30 }

local function fail(msg) raise("sandbox: " .. msg .. " (--trust lifts the sandbox)") end

local function dirname(path) return path:match("^(.*)/[^/]*$") or "." end

-- The API a plugin sees: estimation and data functions; not the scenario
-- runner, sys, writers (etable, plot, json, yaml), register (replaced) or
-- readers of paths (read_csv/read are replaced by checked ones).
local API = { "absorb", "between", "by", "center", "chow", "codes", "counterfactual", "demean", "design", "dist",
  "eval", "fd", "fit", "formula", "frame", "group_diff", "hausman", "index", "is_fit", "ivreg", "lm_tests",
  "local_moran", "lsfit", "margins", "matrix", "mediation", "moderation", "moran", "moran_by", "moran_residuals",
  "ols", "pcdtest", "permutation_test", "pftest", "phtest", "plmtest", "re", "rng", "spatial",
  "sumsq", "sur_test", "threshold", "vcov", "version" }

local SAFE_GLOBALS = { "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "print", "rawequal", "rawget",
  "rawlen", "rawset", "select", "tonumber", "tostring", "type", "_VERSION" }

local function is_frame(v)
  local mt = debug.getmetatable(v)
  return type(v) == "userdata" and type(mt) == "table" and rawget(mt, "__name") == "spillover.frame"
end

-- ---- read-only views --------------------------------------------------------------

--- A read-only view of the host table t, its tables viewed the same way.
--- Views are per plugin: rawset on one changes only that plugin's view.
--- strict: the view's name; reading a key t lacks is then an error.
local function readonly(p, t, strict)
  if type(t) ~= "table" then return t end
  local view = p.views[t]
  if view then return view end
  view = setmetatable({}, {
    __index = function(_, k)
      local v = t[k]
      if v == nil and strict then
        fail(strict .. "." .. tostring(k) .. " is not available in plugins")
      end
      return readonly(p, v)
    end,
    __newindex = function(_, k) fail("'" .. tostring(k) .. "' is read-only in plugins") end,
    __call = function(_, ...) return t(...) end,
    __len = function() return #t end,
    __pairs = function()
      return function(_, k)
        local nk, nv = next(t, k)
        return nk, readonly(p, nv)
      end, view, nil
    end,
    __metatable = false,
  })
  p.views[t] = view
  return view
end

-- ---- the boundary --------------------------------------------------------------------

local wrap

--- A plugin value as the host keeps it (see the header).
local function from_plugin(p, v, seen)
  local t = type(v)
  if t == "function" then return wrap(p, v) end
  if t ~= "table" then return v end
  if seen[v] then return seen[v] end
  local copy = {}
  seen[v] = copy
  for k, x in next, v do copy[from_plugin(p, k, seen)] = from_plugin(p, x, seen) end
  local mt = debug.getmetatable(v)
  if mt ~= nil and p.mts[mt] then mt = from_plugin(p, mt, seen) end
  return debug.setmetatable(copy, mt)
end

--- values (a table.pack) as the host keeps them, in place.  A value nested
--- deeper than Lua's stack cannot be copied; say so rather than show where
--- the copy failed.  prefix: what to put before the message.
local function copy_back(p, values, prefix)
  local seen = {}
  local ok, err = pcall(function()
    for i = 1, values.n do values[i] = from_plugin(p, values[i], seen) end
  end)
  if not ok then
    raise(prefix .. "a value it returned cannot be copied (" .. util.message(err):gsub("^.-:%d+: ", "") .. ")")
  end
  return values
end

--- A host value as plugin code receives it (see the header).
local function to_plugin(v, seen)
  if is_frame(v) then return v:copy() end
  if type(v) ~= "table" then return v end
  if seen[v] then return seen[v] end
  local copy = {}
  seen[v] = copy
  for k, x in next, v do copy[to_plugin(k, seen)] = to_plugin(x, seen) end
  return debug.setmetatable(copy, debug.getmetatable(v))
end

--- f (plugin code) as the host may call it: under the limits, arguments
--- and results copied.  Called while plugin code runs (the plugin calling
--- its own function through the API), f runs directly in the running call.
function wrap(p, f)
  local w = p.wrapped[f]
  if w then return w end
  w = function(...)
    if box.active() then return f(...) end
    local args, seen = table.pack(...), {}
    for i = 1, args.n do args[i] = to_plugin(args[i], seen) end
    local r = table.pack(box.call(p.file, M.limits.instructions, M.limits.memory, f, table.unpack(args, 1, args.n)))
    copy_back(p, r, "plugin " .. p.file .. ": ")
    return table.unpack(r, 1, r.n)
  end
  p.wrapped[f], p.wrapped[w] = w, w
  return w
end

-- ---- the environment ---------------------------------------------------------------------

--- path (relative to the scenario's folder) resolved through symlinks; an
--- error unless it lies inside the scenario's folder.
local function readable(p, fname, path)
  if type(path) ~= "string" then raise(fname .. ": expected a file path, got " .. type(path)) end
  local full = path:sub(1, 1) == "/" and path or (p.dir .. "/" .. path)
  local real = core.sys.realpath(full)
  if not real then raise(fname .. ": cannot open '" .. path .. "'") end
  if real:sub(1, #p.root + 1) ~= p.root .. "/" then
    fail(fname .. " of '" .. path .. "': plugins read files only inside the scenario's folder " .. p.root)
  end
  return real
end

local function copy_table(t, except)
  local c = {}
  for k, v in pairs(t) do if k ~= except then c[k] = v end end
  return c
end

local function make_api(p, sp, register)
  local api = {}
  for _, k in ipairs(API) do api[k] = sp[k] end
  api.read_csv = function(path, opts) return sp.read_csv(readable(p, "read_csv", path), opts) end
  api.read = function(path, opts) return sp.read(readable(p, "read", path), opts) end
  local weights = copy_table(sp.weights)
  weights.contiguity = function(edges, opts)
    if type(edges) == "string" then edges = readable(p, "weights.contiguity", edges) end
    return sp.weights.contiguity(edges, opts)
  end
  api.weights = weights
  api.register_estimator = function(e)
    if type(e) ~= "table" or type(e.name) ~= "string" or type(e.fit) ~= "function" then
      raise("register_estimator: expected {name = \"...\", fit = function(data, spec, opts) ... end}")
    end
    -- A built-in name is refused before anything of the plugin's is copied.
    local reserved = require("spillover.registry").reserved(e.name)
    if reserved then raise(reserved) end
    local ok, err = pcall(register, copy_back(p, table.pack(e), "register_estimator: ")[1])
    if not ok then error(err, 0) end
  end
  return readonly(p, api, "sp")
end

local function make_env(p, sp, register)
  local env = {}
  for _, k in ipairs(SAFE_GLOBALS) do env[k] = _G[k] end
  env.string = copy_table(string, "dump")
  env.table, env.math, env.utf8 = copy_table(table), copy_table(math), copy_table(utf8)
  env.coroutine = copy_table(coroutine)
  -- Hooks are per coroutine: the plugin's coroutines get the budget's hook.
  env.coroutine.create = box.coroutine
  env.coroutine.wrap = function(f)
    local co = box.coroutine(f)
    return function(...)
      local r = table.pack(coroutine.resume(co, ...))
      if not r[1] then
        coroutine.close(co)
        error(r[2], 0)
      end
      return table.unpack(r, 2, r.n)
    end
  end
  env.os = setmetatable({ time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }, {
    __index = function(_, k)
      fail("os." .. tostring(k) .. " is not available in plugins (only os.time, os.clock, os.date, os.difftime)")
    end,
  })
  -- The string metatable a plugin sees is a read-only view of its own string
  -- library; the methods strings really use are core.sandbox's copy.
  local string_mt = readonly(p, { __index = env.string })
  env.getmetatable = function(v)
    if type(v) == "string" then return string_mt end
    local mt = debug.getmetatable(v)
    if type(v) == "table" and p.mts[mt] then return getmetatable(v) end
    return readonly(p, getmetatable(v))
  end
  env.setmetatable = function(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      fail("__gc metamethods are not allowed in plugins (a finalizer runs outside the plugin's limits)")
    end
    local r = setmetatable(t, mt)
    if mt ~= nil then p.mts[mt] = true end
    return r
  end
  env.load = function(chunk, name, mode, e)
    if mode ~= nil and mode ~= "t" then fail("load: only text chunks (mode \"t\") are allowed in plugins") end
    if e == nil then e = env end
    return load(chunk, name, "t", e)
  end
  env.collectgarbage = function(opt)
    if opt ~= "count" then fail("collectgarbage is limited to collectgarbage(\"count\") in plugins") end
    return collectgarbage("count")
  end
  env.sp = make_api(p, sp, register)
  env.require = function(name)
    if name == "spillover" then return env.sp end
    fail("require('" .. tostring(name) .. "') is not allowed in plugins (use sp.*)")
  end
  env._G = env
  return setmetatable(env, {
    __index = function(_, k)
      fail("'" .. tostring(k) .. "' is not available in plugins (allowed: the spillover API and the " ..
        "string, table, math, utf8, coroutine libraries)")
    end,
  })
end

--- Run the plugin file `path` (text only).  opts: sp (the API), register
--- (function(estimator) adding a checked {name, fit, ...} table, called by the
--- plugin's sp.register_estimator), root (the scenario's folder: the only
--- place the plugin may read), trust (the command line's --trust: run with
--- the full globals and API, no limits).
function M.load_plugin(path, opts)
  local sp = opts.sp or require "spillover"
  if opts.trust then
    local api = setmetatable({ register_estimator = opts.register }, { __index = sp })
    local chunk, msg = loadfile(path, "t", setmetatable({ sp = api }, { __index = _G }))
    if not chunk then raise("plugin " .. msg) end
    local ok, err = pcall(chunk)
    if not ok then raise("plugin " .. path .. ": " .. util.message(err)) end
    return
  end
  local dir = opts.root or dirname(path)
  local root = core.sys.realpath(dir)
  if not root then raise("plugin " .. path .. ": cannot resolve the folder '" .. dir .. "'") end
  local weak = { __mode = "k" }
  local p = { file = path, dir = dir, root = root, views = setmetatable({}, weak), wrapped = setmetatable({}, weak),
    mts = setmetatable({}, weak) }
  p.env = make_env(p, sp, opts.register or function()
    raise("register_estimator: this host takes no estimators from plugins")
  end)
  local chunk, msg = loadfile(path, "t", p.env)
  if not chunk then raise("plugin " .. msg) end
  wrap(p, chunk)()
end

return M
