-- test_progress: progress bars go to stderr on a terminal only
-- (SPILLOVER_PROGRESS=1 forces them, 0 silences them), are redrawn at most
-- ten times a second, and only the outermost loop draws one.  The loops
-- that use them (placebo, sweeps, the wild bootstrap, scenario draws) are
-- run in child processes whose stderr is read back.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local progress = require "spillover.progress"

local exe = arg[-1] or "build/spillover"
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-progress-"))

-- Run a Lua chunk in a child with the environment prefix env; its stderr and stdout.
local function child(what, env, code)
  local script = T.write(tmp .. "/child.lua", "package.path = 'tests/lua/?.lua;' .. package.path\n" .. code)
  local ok = os.execute(string.format("env -u SPILLOVER_PROGRESS %s %s %s > %s/out 2> %s/err", env, exe, script, tmp, tmp))
  T.check(ok, what .. ": the child ran")
  return T.read(tmp .. "/err"), T.read(tmp .. "/out")
end

local loop = [[
local progress = require "spillover.progress"
local bar <close> = progress.new("my loop", 50)
for _ = 1, 50 do bar:tick() end
io.write("ok")
]]
local err, out = child("forced", "SPILLOVER_PROGRESS=1", loop)
T.check(out == "ok" and err:find("my loop", 1, true) and err:find("100%", 1, true) and err:find("50/50", 1, true)
  and err:sub(-1) == "\n", "forced on: the label, 100% and the count on stderr, ended by a newline", err)
err, out = child("not a terminal", "", loop)
T.check(out == "ok" and err == "", "stderr not a terminal: nothing", err)
err = child("silenced", "SPILLOVER_PROGRESS=0", loop)
T.check(err == "", "SPILLOVER_PROGRESS=0: nothing", err)

-- A real terminal (script(1) gives the child a pseudo-terminal): drawn
-- without the variable.
if os.execute("command -v script > /dev/null") then
  local script = T.write(tmp .. "/tty.lua", loop)
  os.execute(string.format("env -u SPILLOVER_PROGRESS script -qec '%s %s' /dev/null > %s/tty 2>&1", exe, script, tmp))
  local seen = T.read(tmp .. "/tty")
  T.check(seen:find("my loop", 1, true) and seen:find("100%", 1, true), "on a terminal: drawn", seen)
end

-- Throttled: 300000 cheap steps are drawn a handful of times (at most
-- ten a second of the loop, plus the first and the last).
err, out = child("throttle", "SPILLOVER_PROGRESS=1", [[
local progress = require "spillover.progress"
local t0 = require("spillover").sys.now()
local bar = progress.new("fast", 300000)
for _ = 1, 300000 do bar:tick() end
io.write(require("spillover").sys.now() - t0)
]])
local draws = select(2, err:gsub("\r", ""))
T.check(draws >= 2 and draws <= 2 + 10 * tonumber(out) + 1, "throttled: " .. draws .. " draws in " .. out .. " s", err:sub(1, 200))

-- Nested loops: only the outer one draws; a bar left by an error (<close>) frees the line.
err = child("nested", "SPILLOVER_PROGRESS=1", [[
local progress = require "spillover.progress"
local outer <close> = progress.new("outer", 3)
for _ = 1, 3 do
  local inner <close> = progress.new("inner", 4)
  for _ = 1, 4 do inner:tick() end
  outer:tick()
end
pcall(function()
  local b <close> = progress.new("broken", 10)
  b:tick()
  error("stop")
end)
local after <close> = progress.new("after", 1)
after:tick()
]])
T.check(err:find("outer", 1, true) and not err:find("inner", 1, true), "nested: the outer loop alone draws", err)
T.check(err:find("broken[^\n]*1/10\n") and err:find("after[^\n]*100%%"), "a loop left by an error ends its line; " ..
  "the next bar draws", err)

-- The loops that use it.
err = child("placebo and wild bootstrap", "SPILLOVER_PROGRESS=1", [[
local sp = require "spillover"
local r = sp.rng(11)
local id, year, g, y = {}, {}, {}, {}
for u = 1, 12 do
  local gu = u <= 4 and 2004 or 0
  for t = 2001, 2006 do
    id[#id + 1], year[#year + 1], g[#g + 1] = u, t, gu
    y[#y + 1] = 0.3 * u + 0.1 * (t - 2000) + ((gu > 0 and t >= gu) and 1 or 0) + r:normal()
  end
end
local d = sp.frame { id = id, year = year, g = g, y = y }
d:panel { entity = "id", time = "year" }
require("spillover.placebo").placebo({ data = d, cohort = "g", formula = "y ~ 1 | id + year", method = "twfe" },
  { reps = 20 })
local x = {}
for i = 1, #y do x[i] = r:normal() end
d.x = x
local fit = sp.ols(d, "y ~ x", { vcov = { cluster = "id" } })
fit:wildboot { param = "x", reps = 99, weights = "webb" }
]])
T.check(err:find("placebo[^\n]*100%% 20/20\n"), "placebo draws", err)
T.check(err:find("wild bootstrap[^\n]*100%% 99/99\n"), "wild bootstrap replications", err)

-- A scenario run from the command line: the experiment's draws; a sweep's points.
local root = assert(sp.sys.realpath("."))
T.write(tmp .. "/s.yaml", ([[
name: bars
data: {file: PANEL, entity: province, time: year}
derive: {lnpat: log(patent_grants)}
models:
  fe: {estimator: ols, formula: lnpat ~ digital_finance | province + year}
experiments:
  west:
    model: fe
    shock: {variable: digital_finance, where: "region_nbs == 'West'", from: 2020, change: "+20%"}
    draws: 30
  dose:
    model: fe
    shock: {variable: digital_finance, where: "region_nbs == 'West'", from: 2020, change: "+20%"}
    draws: 10
    sweep: {grid: {shock.change: ["+10%", "+20%", "+30%"]}}
]]):gsub("PANEL", root .. "/scenarios/data/cn_province_panel.csv"))
os.execute(string.format("env SPILLOVER_PROGRESS=1 %s run %s/s.yaml -o %s/res > %s/log 2> %s/err", exe, tmp, tmp, tmp, tmp))
err = T.read(tmp .. "/err")
T.check(err:find("west[^\n]*100%% 30/30\n"), "run: the experiment's draws", err)
T.check(err:find("sweep dose[^\n]*100%% 3/3\n") and not err:find("\rdose"), "run: a sweep's points, not its draws", err)
os.execute(string.format("env SPILLOVER_PROGRESS=1 %s run %s/s.yaml -q -o %s/res2 > %s/log 2> %s/err", exe, tmp, tmp, tmp, tmp))
T.check(not T.read(tmp .. "/err"):find("west", 1, true), "run -q: no bar", T.read(tmp .. "/err"))

T.checkerr("progress.new: 'total' must be a whole number of steps >= 0, got 1.5", progress.new, "x", 1.5)
T.checkerr("progress.new: 'label' must be a string", progress.new, nil, 3)
sp.sys.remove_tree(tmp)
T.done()
