-- test_sandbox: the hostile plugins of tests/sandbox/ through the Lua API
-- (spillover.sandbox) and through `spillover run`, the boundary between host
-- and plugin, and expressions (frame:filter, data.filter, where:) that try to
-- be code.  docs/scenarios.md "Plugins and the sandbox" is the threat model.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local sandbox = require "spillover.sandbox"
local core = require "spillover.core"
local scenario = sp.scenario

local exe = arg[-1] or "build/spillover"
local root = assert(sp.sys.realpath("."))
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-sandbox-"))
local produc = root .. "/tests/reference/data/Produc.csv"

local function write(name, text) return T.write(tmp .. "/" .. name, text) end
local slurp = T.read

-- The hostile plugins, copied with the files they try to write moved from
-- /tmp/spillover-sandbox-pwned* into this run's folder (runs of the suite in
-- several build folders at once must not see each other's files).
local PWNED = tmp .. "/pwned"
local function fixture(name)
  local text = slurp(root .. "/tests/sandbox/" .. name .. ".lua"):gsub("/tmp/spillover%-sandbox%-pwned", PWNED)
  return write(name .. ".lua", text)
end
local MARKERS = { PWNED .. "-trust", PWNED .. "-fit.csv", PWNED .. ".md", PWNED .. ".lua" }
local function no_markers(what)
  local found = {}
  for _, m in ipairs(MARKERS) do if sp.sys.exists(m) then found[#found + 1] = m end end
  T.check(#found == 0, what .. ": no file written outside the output folder", table.concat(found, ", "))
end

-- The passwd.csv of read_outside.lua: a symlink out of the scenario's folder.
assert(os.execute("ln -s /etc/passwd " .. tmp .. "/passwd.csv"))
write("inside.csv", "a,b\n1,2\n")

local d = sp.read_csv(produc)
d:panel { entity = "state", time = "year" }
local FORMULA = "log_gsp ~ log_pcap + log_pc + log_emp + unemp"
local ols_b = sp.ols(d, FORMULA):coef().log_pcap

-- ---- through the Lua API ----------------------------------------------------------
-- Small limits keep the runaway cases short; the defaults are tested below
-- through `spillover run`.
local limits = { instructions = sandbox.limits.instructions, memory = sandbox.limits.memory }
sandbox.limits.instructions = 10000000
sandbox.limits.memory = 64 << 20

local registered = {}
local function load(name)
  return pcall(sandbox.load_plugin, fixture(name),
    { root = tmp, register = function(e) registered[e.name] = e end })
end
local function refused(name, pattern)
  local ok, err = load(name)
  T.check(not ok and tostring(err):find(pattern) ~= nil, name .. ": " .. pattern, tostring(err))
  return tostring(err)
end

-- Escapes to the runner (the trust flag used to be reachable from plugins).
refused("scenario_trust", "^plugin .-scenario_trust%.lua:2: sandbox: sp%.scenario is not available in plugins")
refused("require_runner", "require%('spillover%.scenario'%) is not allowed in plugins")
T.check(sandbox.load_plugin ~= nil and scenario.load_plugin == nil and scenario.sandbox_env == nil,
  "the runner exposes no plugin loader taking a trust flag")
-- The API's writers are not part of a plugin's API.
refused("write_api", "sp%.etable is not available in plugins")
-- Base-library escape hatches: the fixture raises the list of what worked.
refused("unsafe_builtins", "escaped: %[%]$")
-- The string metatable a plugin sees is a read-only view of its own copy.
refused("string_tamper", "string_tamper%.lua:3: sandbox: 'format' is read%-only in plugins")
T.check(string.format("%.1f", 4.25) == "4.2" and getmetatable("").__index == string, "the host's string library is intact")
-- Reads stay inside the scenario's folder, symlinks resolved.
refused("read_outside", "read_csv of 'passwd%.csv': plugins read files only inside the scenario's folder")
local inside = write("inside.lua", "local f = sp.read_csv('inside.csv')\nassert(f.b[1] == 2)\n" ..
  "assert(not pcall(sp.read_csv, '../" .. tmp:match("[^/]+$") .. "/passwd.csv'))\n")
T.check(pcall(sandbox.load_plugin, inside, { root = tmp, register = function() end }),
  "a plugin reads a file inside the scenario's folder")

-- Runaway code: the budget covers loading, coroutines, and pcall cannot swallow it.
refused("loop_coroutine", "^plugin .-loop_coroutine%.lua: instruction limit exceeded %(10000000 instructions")
refused("loop_pcall", "loop_pcall%.lua: instruction limit exceeded")
-- Memory: a huge string (through the string methods) and a growing table.
refused("memory_rep", "^plugin .-memory_rep%.lua: memory limit exceeded %(more than 64 MiB in one call")
refused("memory_table", "memory_table%.lua: memory limit exceeded")
T.near(sp.ols(d, FORMULA):coef().log_pcap, ols_b, 1e-12, "after the memory error the same state still fits sp.ols")

-- Every call into plugin code is bounded, not only loading.
for _, name in ipairs({ "write_csv", "loop_fit", "loop_predict", "tamper_data", "loop_metamethod" }) do
  T.check(load(name), name .. " loads")
end
local spec = { formula = FORMULA }
T.checkerr("^plugin .-write_csv%.lua:5: frame:write_csv: writing files is not allowed in a sandboxed plugin",
  registered.hostile_write_csv.fit, d, spec, {})
T.checkerr("^plugin .-loop_fit%.lua: instruction limit exceeded", registered.hostile_loop.fit, d, spec, {})
local pfit = registered.hostile_predict.fit(d, spec, {})
T.checkerr("loop_predict%.lua: instruction limit exceeded", pfit.predict, pfit, d)
-- The first call tried to swap its hook for one without a loop; the host's
-- copy of the fit is not the plugin's table, so the swap did not reach it.
T.checkerr("loop_predict%.lua: instruction limit exceeded", pfit.predict, pfit, d)
local mfit = registered.hostile_metamethod.fit(d, spec, {})
T.checkerr("loop_metamethod%.lua: instruction limit exceeded", function() return mfit.coef end)
-- A plugin gets a copy of the host's data.
-- What cannot be copied back (nested deeper than Lua's stack) is an error
-- naming the plugin, not a position inside spillover.
local deep = write("deep.lua", "sp.register_estimator{name = 'hostile_deep', fit = function()\n" ..
  "  local t = {}\n  for i = 1, 300000 do t = { t } end\n  return t\nend}\n")
T.check(pcall(sandbox.load_plugin, deep, { root = tmp, register = function(e) registered[e.name] = e end }), "deep.lua loads")
T.checkerr(": plugin [^:]-deep%.lua: a value it returned cannot be copied %(stack overflow%)$", registered.hostile_deep.fit)
-- A plugin gets copies of the host's data and spec.
local tfit = registered.hostile_data.fit(d, spec, {})
T.check(tfit.nobs == d:nrow() and d.log_gsp[1] ~= d.log_pc[1] and spec.formula == FORMULA,
  "the plugin changed its copies of the data and the spec, not the host's")
-- Matrix storage counts against the memory cap; time and memory in C
-- functions do not count against the instruction budget.
local big = write("big.lua", "local m = sp.matrix(4000, 4000, 0)\n")
T.checkerr("big%.lua: memory limit exceeded", sandbox.load_plugin, big, { root = tmp })
local c_work = write("c_work.lua", "local s = ('x'):rep(20000000)\nlocal t = {}\nfor i = 1, 100 do t[i] = -i end\n" ..
  "table.sort(t)\nassert(#s == 20000000 and t[1] == -100)\n")
sandbox.limits.instructions = 20000
T.check(pcall(sandbox.load_plugin, c_work, { root = tmp }), "C work (a 20 MB string.rep) is not counted as instructions")
sandbox.limits.instructions = 10000000
-- Frame columns live outside Lua's allocator: twenty copies of a 320 kB
-- frame pass a 1 MiB cap (the limit docs/scenarios.md states).
local rows = { "x,y" }
for i = 1, 20000 do rows[#rows + 1] = i .. "," .. 2 * i end
write("frames.csv", table.concat(rows, "\n") .. "\n")
local frames = write("frames.lua", "local d = sp.read_csv('frames.csv')\nlocal keep = {}\n" ..
  "for i = 1, 20 do keep[i] = d:copy() end\nassert(keep[20]:nrow() == 20000)\n")
sandbox.limits.memory = 1 << 20
T.check(pcall(sandbox.load_plugin, frames, { root = tmp }), "frame storage is not counted against the memory cap")
sandbox.limits.memory = 64 << 20
-- Paths of the other readers.
local readers = write("readers.lua", "for _, f in ipairs({ sp.read, sp.weights.contiguity }) do\n" ..
  "  local ok, e = pcall(f, '/etc/passwd')\n  assert(not ok and e:find('only inside the scenario', 1, true), e)\nend\n")
T.check(pcall(sandbox.load_plugin, readers, { root = tmp }), "sp.read and sp.weights.contiguity read only inside too")

-- The writers' own guard, whatever reaches them: refused while plugin code
-- runs, allowed again afterwards.
T.checkerr("frame:write_csv: writing files is not allowed in a sandboxed plugin", core.sandbox.call, "guard.lua",
  1000000, 1 << 26, function() d:head(2):write_csv(tmp .. "/guard.csv") end)
T.check(not sp.sys.exists(tmp .. "/guard.csv") and not core.sandbox.active(), "nothing written; the sandbox is left")
d:head(2):write_csv(tmp .. "/guard.csv")
T.check(sp.sys.exists(tmp .. "/guard.csv"), "the host writes as before")
sandbox.limits.instructions, sandbox.limits.memory = limits.instructions, limits.memory
no_markers("the Lua API")

-- ---- registration --------------------------------------------------------------------
local base = slurp(root .. "/tests/sandbox/hostile.yaml"):gsub("%.%./reference/data/Produc%.csv", produc)
local function yaml(name, plugins, estimator)
  local text = base:gsub("PLUGIN", table.concat(plugins, ", ")):gsub("ESTIMATOR", estimator)
  return write(name .. ".yaml", text)
end
local function check_error(pattern, path, opts)
  T.checkerr(pattern, function() scenario.check(scenario.load(path), opts) end)
end
T.checkerr("register_estimator: 'ols' is a built%-in estimator", sp.register_estimator, { name = "ols", fit = print })
local med = write("med.lua", "sp.register_estimator{name = 'mediation', fit = function() end}\n")
check_error("med%.lua:1: register_estimator: 'mediation' is a built%-in estimator", yaml("med", { med }, "ols"))
local a = write("a.lua", "sp.register_estimator{name = 'shared_name', fit = function(d, s) return sp.ols(d, s.formula) end}\n")
local b = write("b.lua", "sp.register_estimator{name = 'shared_name', fit = function(d, s) return sp.ols(d, s.formula) end}\n")
check_error("b%.lua:1: register_estimator: 'shared_name' is already registered by plugin .-a%.lua",
  yaml("ab", { a, b }, "shared_name"))
T.check(pcall(function() scenario.check(scenario.load(yaml("aa", { a }, "shared_name"))) end),
  "a plugin loaded again re-registers its own estimator")

-- ---- through `spillover run` ----------------------------------------------------------
local function run(name, plugin, estimator, extra)
  local out = tmp .. "/out_" .. name
  local path = yaml(name, { fixture(plugin) }, estimator)
  local ok = os.execute(exe .. " run " .. path .. " -o " .. out .. " --quiet " .. (extra or "") .. " > " .. tmp ..
    "/cli.out 2> " .. tmp .. "/cli.err")
  return ok == true, slurp(tmp .. "/cli.err"), out
end

-- A report section may add files to the output, never replace the report's
-- own: results.json rewritten by a plugin's fit would be a forged result.
do
  local ok, err, out = run("report_tamper", "report_tamper", "hostile_report")
  T.check(not ok and err:find("report section of m: 'results%.json' is a file of the report itself") ~= nil,
    "a plugin's report section cannot rewrite results.json", err)
  T.check(not sp.sys.exists(out), "and nothing is written")
end
local function run_refused(name, plugin, estimator, pattern)
  local ok, err, out = run(name, plugin, estimator)
  T.check(not ok and err:find(pattern) ~= nil, "spillover run " .. name .. ": " .. pattern, err)
  T.check(not sp.sys.exists(out), "spillover run " .. name .. ": no output folder")
  T.check(not err:find("spillover/[%w_]+%.lua:%d") and not err:find("stack traceback"),
    "spillover run " .. name .. ": no internal paths in the message", err)
end
-- The two tampering routes that used to give exit 0 and every coefficient 42.
run_refused("ols42", "ols_42", "ols", "ols_42%.lua:3: register_estimator: 'ols' is a built%-in estimator")
run_refused("tamper", "string_tamper", "ols", "string_tamper%.lua:3: sandbox: 'format' is read%-only in plugins")
-- Writing, reading outside, memory and runaway fits at the default limits.
run_refused("write_csv", "write_csv", "hostile_write_csv",
  "models%.m: estimation failed: plugin .-write_csv%.lua:5: frame:write_csv: writing files is not allowed")
run_refused("trust", "scenario_trust", "ols", "sp%.scenario is not available in plugins")
run_refused("passwd", "read_outside", "ols", "plugins read files only inside the scenario's folder")
run_refused("memory", "memory_rep", "ols", "memory_rep%.lua: memory limit exceeded %(more than 1024 MiB in one call")
run_refused("loop", "loop_fit", "hostile_loop",
  "models%.m: estimation failed: plugin .-loop_fit%.lua: instruction limit exceeded %(200000000 instructions")
no_markers("spillover run")
-- --trust lifts the sandbox: the same plugin writes.
local okt = run("trusted", "write_csv", "hostile_write_csv", "--trust")
T.check(okt and sp.sys.exists(PWNED .. "-fit.csv"), "--trust lifts the refusal to write")
os.remove(PWNED .. "-fit.csv")
local okr, errr = run("trusted42", "ols_42", "ols", "--trust")
T.check(not okr and errr:find("'ols' is a built%-in estimator"), "reserved names stay reserved under --trust", errr)

-- ---- expressions ------------------------------------------------------------------------
local function not_expression(expr, what)
  T.checkerr("filter: " .. what:gsub("[%(%)%.%[%]%-%*%+%?%^%$]", "%%%0") .. " is not allowed in an expression: \"" ..
    expr:gsub("[%(%)%.%[%]%-%*%+%?%^%$]", "%%%0") .. "\"", d.filter, d, expr)
end
not_expression("(function() while true do end end)()", "the keyword 'function'")
not_expression("year > 1980 and (function() string.format = nil end)()", "the keyword 'function'")
not_expression("year > 1980; while true do end", "';'")
not_expression("state:rep(1e9) ~= ''", "a method call with ':'")
not_expression("::top:: year > 1980", "a label '::'")
not_expression("state == [[OHIO]]", "a long bracket '['")
not_expression("year > 1980 --[[ comment ]]", "a comment '--'")
not_expression("select('#', ...) > 0", "'...'")
for _, kw in ipairs({ "return", "local", "goto", "repeat", "until", "for", "if", "do", "end" }) do
  not_expression("year > 1980 or " .. kw, "the keyword '" .. kw .. "'")
end
-- Keywords inside string literals are text.
T.check(d:filter("state ~= 'while; function ::'"):nrow() == d:nrow(), "keywords in string literals are text")
-- A column's value reaches string methods through indexing; inside an
-- expression they are the pure whitelist, and the real ones are back after.
T.checkerr("attempt to call a nil value %(field 'rep'%)", d.filter, d, "state.rep(state, 1000000000) ~= ''")
T.checkerr("attempt to call a nil value %(field 'rep'%)", d.filter, d, "string.rep('x', 1000000000) ~= ''")
T.checkerr("attempt to call a nil value %(field 'random'%)", d.filter, d, "math.random() < 0.5")
T.check(("ab"):rep(2) == "abab" and ("x").format == string.format, "string methods are restored after an expression")
T.check(d:filter("string.format('%d', year) == '1980' and math.abs(unemp) >= 0 and state.lower(state) == 'ohio'")
  :nrow() == 1, "expressions keep math, string.format and the string whitelist")
string.sandbox_probe = true
T.check(d:filter("string.sandbox_probe == nil"):nrow() == d:nrow(), "an expression's string table is private")
string.sandbox_probe = nil

-- The same refusals in a scenario, before anything runs.
local noplug = base:gsub("plugins: %[PLUGIN%]\n", ""):gsub("ESTIMATOR", "ols")
write("filter.yaml", (noplug:gsub("  time: year\n", "  time: year\n  filter: \"(function() while true do end end)()\"\n")))
check_error("filter: the keyword 'function' is not allowed in an expression", tmp .. "/filter.yaml")
write("where.yaml", (noplug:gsub("change: \"%+10%%\"", "change: \"+10%%\", where: \"year > 1980 or repeat\"")))
check_error("where%.yaml:%d+:%d+: experiments%.e%.shock%.where: the keyword 'repeat' is not allowed in an expression: " ..
  "\"year > 1980 or repeat\"", tmp .. "/where.yaml")

os.execute("rm -rf " .. tmp)
T.done()
