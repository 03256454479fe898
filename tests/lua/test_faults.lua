-- test_faults: what `spillover run` and `batch` leave behind when things go
-- wrong.  Each fault is provoked for real: kill -9 at random moments, a full
-- disk (a small tmpfs, when mount is permitted) and a file-size limit, a
-- read-only output folder, concurrent runs into one folder, SIGINT and SIGTERM
-- to a batch, a scenario that hangs (a trusted plugin looping forever) under
-- --timeout, a batch child killed from outside.  In every case the previous
-- complete output stays as it was, no half-written folder is left, and the exit
-- status and message say what happened.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local json = require "spillover.json"
local S = sp.sys

local exe = arg[-1] or "build/spillover"
local produc = assert(S.realpath("tests/reference/data/Produc.csv"))
local dir = assert(S.mkdtemp("/tmp/sp-faults-"))
local mounts = {}

local read, write = T.read, T.write

local function sleep(t) S.wait(S.spawn({ "/bin/sleep", string.format("%.3f", t) })) end

-- Scenarios: small (a model, an experiment with draws; about 0.7 MB of
-- output), tiny (one model; a few kB), hang (a trusted plugin estimator that
-- never returns).
local small = string.format([[
name: small
seed: 11
data: {file: %s, entity: state, time: year}
derive:
  lpcap: log(pcap)
models:
  fe:
    estimator: ols
    formula: log_gsp ~ lpcap + log_pc + log_emp + unemp | state + year
experiments:
  south:
    model: fe
    shock: {variable: pcap, where: "region >= 5 and region <= 7", from: 1980, change: "+10%%"}
    groups: [region]
    draws: 100
report:
  formats: [md, csv]
]], produc)
local tiny = string.format([[
name: tiny
seed: 3
data: {file: %s, entity: state, time: year}
models:
  m:
    estimator: ols
    formula: log_gsp ~ log_pcap + log_pc
report:
  formats: [md]
]], produc)
S.mkdir(dir .. "/plugins")
write(dir .. "/plugins/hang.lua", 'sp.register_estimator { name = "hang", fit = function() while true do end end }\n')
local hang = string.format([[
name: hang
data: {file: %s, entity: state, time: year}
plugins: [%s/plugins/hang.lua]
models:
  m: {estimator: hang, formula: log_gsp ~ log_pcap}
]], produc, dir)
local small_yaml = write(dir .. "/small.yaml", small)
local tiny_yaml = write(dir .. "/tiny.yaml", tiny)
local hang_yaml = write(dir .. "/hang.yaml", hang)

-- Start the executable with args (a shell prefix such as "umask 022" first
-- when given); returns its pid and the paths of its stdout and stderr.
local nstarted = 0
local function start(args, shell)
  nstarted = nstarted + 1
  local out, err = dir .. "/p" .. nstarted .. ".out", dir .. "/p" .. nstarted .. ".err"
  local argv = shell and { "/bin/sh", "-c", shell .. '; exec "$0" "$@"', exe } or { exe }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return assert(S.spawn(argv, { stdout = out, stderr = err })), out, err
end

-- Run to the end (at most `limit` seconds); returns code, stdout, stderr.
local function cli(args, shell, limit)
  local pid, out, err = start(args, shell)
  local code, sig = S.wait(pid, limit or 60)
  if code == false then
    S.kill(pid, 9)
    S.wait(pid)
    return nil, read(out), (read(err) or "") .. "\n(test: killed after " .. (limit or 60) .. " s)"
  end
  return code, read(out) or "", read(err) or "", sig
end

-- A complete output: a spillover manifest whose results hash matches, and the
-- run log (written last).
local function complete(out)
  local text = read(out .. "/manifest.json")
  if not text then return false end
  local ok, m = pcall(json.decode, text)
  return ok and m.results_sha256 == S.sha256_file(out .. "/results.json") and S.exists(out .. "/run.log")
end

-- Every file of a folder with its hash.
local function snapshot(d)
  local t = {}
  for _, n in ipairs(S.listdir(d) or {}) do t[#t + 1] = n .. "=" .. tostring(S.sha256_file(d .. "/" .. n)) end
  return table.concat(t, "\n")
end

-- Temporary folders left in parent.
local function temps(parent)
  local t = {}
  for _, n in ipairs(S.listdir(parent) or {}) do
    if n:find("%.tmp%-") then t[#t + 1] = n end
  end
  return table.concat(t, ", ")
end

-- State of a process: nil when gone or a zombie.
local function alive(pid)
  local st = read("/proc/" .. pid .. "/stat")
  local state = st and st:match("%) (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- Live children of ppid.
local function children(ppid)
  local kids = {}
  for _, name in ipairs(S.listdir("/proc")) do
    local st = name:match("^%d+$") and read("/proc/" .. name .. "/stat")
    local state, pp = (st or ""):match("%) (%a) (%d+)")
    if tonumber(pp) == ppid and state ~= "Z" then kids[#kids + 1] = tonumber(name) end
  end
  return kids
end

-- Processes whose command line mentions text.
local function processes_with(text)
  local found = {}
  for _, name in ipairs(S.listdir("/proc")) do
    local cmd = name:match("^%d+$") and read("/proc/" .. name .. "/cmdline")
    if cmd and cmd:find(text, 1, true) and alive(tonumber(name)) then found[#found + 1] = tonumber(name) end
  end
  return found
end

local function mount_tmpfs(path, size)
  S.mkdir(path, { parents = true })
  if os.execute("mount -t tmpfs -o size=" .. size .. " tmpfs " .. path .. " 2>/dev/null") then
    mounts[#mounts + 1] = path
    return true
  end
  return false
end

-- ---- command line ------------------------------------------------------------------------
do
  local code, out = cli({ "--help" })
  for _, want in ipairs({ "run FILE.yaml [-o DIR] [--set key.path=value ...] [--trust] [--quiet]",
    "check FILE.yaml [--set key.path=value ...] [--trust]", "batch DIR|FILES... [-j N] [-o OUTROOT]",
    "--timeout SECONDS", "--trust", "--quiet", "--set K=V", "-j N", "-o DIR" }) do
    T.check(code == 0 and out:find(want, 1, true), "--help lists " .. want)
  end
  local c2, _, e2 = cli({ "check", tiny_yaml, "--timeout", "3" })
  T.check(c2 == 1 and e2:find("unknown option '--timeout' for check", 1, true), "check refuses run's options", e2)
  local c3, _, e3 = cli({ "run", tiny_yaml, "--timeout", "soon" })
  T.check(c3 == 1 and e3:find("--timeout needs a number of seconds > 0, got 'soon'", 1, true), "--timeout needs seconds", e3)
end

-- ---- permissions follow the umask (mkdtemp made output folders 0700) ------------------
local function mode(path)
  local p = io.popen("stat -c %a '" .. path .. "'")
  local m = p:read("l")
  p:close()
  return m
end
for _, case in ipairs({ { "022", "755", "644" }, { "027", "750", "640" } }) do
  local out = dir .. "/perm" .. case[1]
  local code, _, err = cli({ "run", tiny_yaml, "-o", out, "--quiet" }, "umask " .. case[1])
  T.check(code == 0 and mode(out) == case[2] and mode(out .. "/results.json") == case[3],
    "umask " .. case[1] .. ": output folder " .. case[2] .. ", files " .. case[3],
    tostring(mode(out)) .. " " .. tostring(mode(out .. "/results.json")) .. " " .. tostring(err))
end

-- ---- -o never replaces a folder spillover did not write --------------------------------
do
  local mine = dir .. "/mine"
  S.mkdir(mine)
  write(mine .. "/notes.txt", "precious\n")
  local code, _, err = cli({ "run", tiny_yaml, "-o", mine })
  T.check(code == 1 and err:find("refusing to write the results to " .. mine .. ": the folder is not empty and " ..
    "has no spillover manifest.json", 1, true), "-o refuses a non-empty folder without a manifest", err)
  T.check(read(mine .. "/notes.txt") == "precious\n" and #S.listdir(mine) == 1, "and leaves it as it was")
  write(dir .. "/afile", "x")
  code, _, err = cli({ "run", tiny_yaml, "-o", dir .. "/afile" })
  T.check(code == 1 and err:find(dir .. "/afile: it exists and is not a folder", 1, true), "-o refuses a file", err)
  S.mkdir(dir .. "/empty")
  code = cli({ "run", tiny_yaml, "-o", dir .. "/empty", "--quiet" })
  T.check(code == 0 and complete(dir .. "/empty"), "-o accepts an empty folder")
  code = cli({ "run", tiny_yaml, "-o", dir .. "/empty", "--quiet" })
  T.check(code == 0 and complete(dir .. "/empty"), "-o replaces spillover's own output")
  T.check(temps(dir) == "", "no temporary folders left", temps(dir))
end

-- ---- stale temporary folders are removed by the next run; live ones are not ----------
do
  local parent = dir .. "/stale"
  S.mkdir(parent .. "/x.tmp-AAAAAA", { parents = true })
  write(parent .. "/x.tmp-AAAAAA/results.json", "{half")
  S.mkdir(parent .. "/x.tmp-BBBBBB")
  local held = assert(S.lock(parent .. "/x.tmp-BBBBBB"))  -- a writer that is still alive
  local code, _, err = cli({ "run", tiny_yaml, "-o", parent .. "/x", "--quiet" })
  T.check(code == 0 and complete(parent .. "/x"), "a run next to stale temporary folders", err)
  T.check(not S.exists(parent .. "/x.tmp-AAAAAA"), "the dead writer's temporary folder is removed")
  T.check(S.isdir(parent .. "/x.tmp-BBBBBB"), "a live writer's temporary folder is kept")
  held:unlock()
end

-- ---- kill -9 at random moments ----------------------------------------------------------
do
  local out = dir .. "/killed/small"
  -- the shorter of two runs: a slow first run would put most kills after the end
  local t_run = math.huge
  for _ = 1, 2 do
    local t0 = S.now()
    local code, _, err = cli({ "run", small_yaml, "-o", out, "--quiet" })
    t_run = math.min(t_run, S.now() - t0)
    T.check(code == 0 and complete(out), "a complete output to begin with", err)
  end
  math.randomseed(20240501)
  local intact, kills, partial, n, t_start = 0, 0, 0, 0, S.now()
  -- 20 runs, fewer on a slow machine: the whole test stays well under a minute.
  while n < 20 and S.now() - t_start < 15 do
    n = n + 1
    local pid = start({ "run", small_yaml, "-o", out, "--quiet" })
    local done = S.wait(pid, math.random() * t_run * 1.1)
    if done == false then
      if temps(dir .. "/killed") ~= "" then partial = partial + 1 end
      S.kill(pid, 9)
      S.wait(pid)
      kills = kills + 1
    end
    if complete(out) then intact = intact + 1 end
  end
  print(string.format("INFO kill -9 loop: %d runs of %.2f s, %d killed (%d while writing the folder)", n, t_run,
    kills, partial))
  T.check(intact == n, "after every kill -9 the output is complete (previous or new)",
    string.format("%d of %d", intact, n))
  T.check(kills > 0, "some runs were killed", tostring(kills))
  local code, _, err = cli({ "run", small_yaml, "-o", out, "--quiet" })
  T.check(code == 0 and complete(out), "a run after the kills", err)
  T.check(temps(dir .. "/killed") == "", "no temporary folder of a killed run survives the next run",
    temps(dir .. "/killed"))
end

-- ---- a file-size limit (RLIMIT_FSIZE): writes fail with EFBIG ---------------------------
do
  local out = dir .. "/fsize/x"
  local code, _, err = cli({ "run", tiny_yaml, "-o", out, "--quiet" })
  T.check(code == 0, "fsize: a previous output", err)
  local before = snapshot(out)
  -- 100 blocks of 512 bytes: tiny's files fit, small's results.json does not.
  code, _, err = cli({ "run", small_yaml, "-o", out, "--quiet" }, "trap '' XFSZ; ulimit -f 100")
  T.check(code == 1 and err:find("the results were not written to " .. out .. " (the previous results there are " ..
    "unchanged): cannot write " .. out .. "/results.json: File too large", 1, true),
    "a write past the file-size limit fails the run and says which file", err)
  T.check(snapshot(out) == before and complete(out), "the previous output is unchanged")
  T.check(temps(dir .. "/fsize") == "", "no temporary folder is left", temps(dir .. "/fsize"))
end

-- ---- a full disk and a read-only file system (tmpfs; needs mount) ------------------------
if mount_tmpfs(dir .. "/full", "200k") then
  local out = dir .. "/full/out/x"
  local code, _, err = cli({ "run", tiny_yaml, "-o", out, "--quiet" })
  T.check(code == 0 and complete(out), "full disk: a previous output fits", err)
  local before = snapshot(out)
  code, _, err = cli({ "run", small_yaml, "-o", out, "--quiet" })
  T.check(code == 1 and err:find("the results were not written to " .. out .. " (the previous results there are " ..
    "unchanged): cannot write " .. out .. "/", 1, true) and err:find("No space left on device", 1, true),
    "a full disk fails the run and says so", err)
  T.check(snapshot(out) == before, "the previous output is unchanged")
  T.check(temps(dir .. "/full/out") == "", "no temporary folder is left", temps(dir .. "/full/out"))
  code, _, err = cli({ "run", tiny_yaml, "-o", out, "--quiet" })
  T.check(code == 0 and complete(out), "a run that fits succeeds afterwards", err)
else
  print("SKIP full disk on a 200k tmpfs: mount is not permitted here (the file-size limit test covers failing writes)")
end
if mount_tmpfs(dir .. "/ro", "4m") then
  local out = dir .. "/ro/out/x"
  local code, _, err = cli({ "run", tiny_yaml, "-o", out, "--quiet" })
  T.check(code == 0, "read-only: a previous output", err)
  local before = snapshot(out)
  T.check(os.execute("mount -o remount,ro " .. dir .. "/ro"), "remount read-only")
  code, _, err = cli({ "run", tiny_yaml, "-o", out, "--quiet" })
  T.check(code == 1 and err:find("the results were not written to " .. out, 1, true) and
    err:find("Read-only file system", 1, true), "a read-only output folder fails the run and says so", err)
  T.check(snapshot(out) == before, "the previous output is unchanged")
else
  print("SKIP read-only file system: mount is not permitted here")
end

-- ---- concurrent runs into one folder ------------------------------------------------------
do
  local out = dir .. "/conc/small"
  local bad = {}
  for round = 1, 2 do
    local pids = {}
    for i = 1, 3 do pids[i] = { start({ "run", small_yaml, "-o", out, "--quiet" }) } end
    for i = 1, 3 do
      local code = S.wait(pids[i][1], 60)
      if code ~= 0 then bad[#bad + 1] = string.format("round %d run %d: %s %s", round, i, tostring(code), read(pids[i][3])) end
    end
  end
  T.check(#bad == 0, "three concurrent runs into one folder all succeed (twice)", table.concat(bad, "; "))
  T.check(complete(out) and temps(dir .. "/conc") == "", "one complete output, no temporary folders",
    temps(dir .. "/conc"))
end

-- ---- --timeout: a hung scenario is stopped; nothing is written ---------------------------
do
  local out = dir .. "/timed/x"
  local code, _, err = cli({ "run", tiny_yaml, "-o", out, "--quiet", "--timeout", "30" })
  T.check(code == 0 and complete(out), "run --timeout: a run within the limit", err)
  local before = snapshot(out)
  local t0 = S.now()
  code, _, err = cli({ "run", hang_yaml, "--trust", "-o", out, "--timeout", "1" }, nil, 30)
  T.check(code == 124 and err:find(hang_yaml .. ": timed out after 1 s; nothing was written to " .. out, 1, true),
    "run --timeout stops a hung scenario: exit 124 and a message", tostring(code) .. " " .. err)
  T.check(S.now() - t0 < 15, "and returns")
  T.check(snapshot(out) == before and temps(dir .. "/timed") == "", "the previous output is unchanged")
  T.check(#processes_with(out) == 0, "no process of the run is left", table.concat(processes_with(out), " "))
  -- Ctrl-C to run --timeout reaches the run too.
  local pid, _, errp = start({ "run", hang_yaml, "--trust", "-o", out, "--timeout", "60" })
  local kids, t1 = {}, S.now()
  while #kids == 0 and S.now() - t1 < 20 do sleep(0.05); kids = children(pid) end
  sleep(0.1)
  S.kill(pid, 2)
  code = S.wait(pid, 20)
  if code == false then S.kill(pid, 9); S.wait(pid) end
  err = read(errp) or ""
  T.check(code == 130 and err:find("interrupted", 1, true) == nil and
    err:find(hang_yaml .. ": stopped by signal 2 (SIGINT); nothing was written to " .. out, 1, true),
    "SIGINT to run --timeout: exit 130 and a message", tostring(code) .. " " .. err)
  T.check(#kids == 1 and not alive(kids[1]) and #processes_with(out) == 0, "and the run is stopped")
  T.check(snapshot(out) == before and temps(dir .. "/timed") == "", "the previous output is unchanged")
end

-- ---- batch ------------------------------------------------------------------------------
local function batch_dir(name, files)
  local d = dir .. "/" .. name
  for rel, text in pairs(files) do
    S.mkdir((d .. "/" .. rel):match("^(.*)/"), { parents = true })
    write(d .. "/" .. rel, text)
  end
  return d
end

-- A hung scenario under --timeout: reported, the others finish, no folder.
do
  -- tiny takes a tenth of a second: 3 s leaves room on a loaded machine
  local b = batch_dir("btime", { ["hang.yaml"] = hang, ["tiny.yaml"] = tiny,
    ["tiny2.yaml"] = (tiny:gsub("name: tiny", "name: tiny2")) })
  local outroot = dir .. "/btime_out"
  local code, out, err = cli({ "batch", b, "-j", "2", "-o", outroot, "--trust", "--timeout", "3" }, nil, 40)
  T.check(code == 1, "batch with a timed-out scenario exits 1", tostring(code) .. " " .. err)
  T.check(out:find("hang.yaml%s+TIMEOUT%s+[%d.]+%s+timed out after 3 s"), "the summary says it timed out", out)
  T.check(out:find("tiny.yaml%s+ok") and out:find("tiny2.yaml%s+ok"), "the others finish", out)
  T.check(err:find("hang.yaml: timed out after 3 s", 1, true), "and the message names it", err)
  T.check(not S.exists(outroot .. "/hang") and complete(outroot .. "/tiny") and complete(outroot .. "/tiny2"),
    "no output folder for the hung scenario")
  T.check(temps(outroot) == "", "no temporary folders", temps(outroot))
end

-- Same stems and a scenario named like the logs folder: distinct outputs.
do
  local tx = function(nm) return (tiny:gsub("name: tiny", "name: " .. nm)) end
  local b = batch_dir("bcol", { ["a/x.yaml"] = tx("from_a"), ["b/x.yaml"] = tx("from_b"),
    ["c/batch-logs.yaml"] = tx("logs_named") })
  local outroot = dir .. "/bcol_out"
  local code, out, err = cli({ "batch", b .. "/a", b .. "/b", b .. "/c", "-o", outroot }, nil, 40)
  T.check(code == 0, "batch of colliding names succeeds", err)
  local function scen(o)
    local m = read(outroot .. "/" .. o .. "/manifest.json")
    return m and json.decode(m).scenario
  end
  T.check(scen("x") == "from_a" and scen("x-2") == "from_b", "a/x.yaml and b/x.yaml get x and x-2",
    tostring(scen("x")) .. " " .. tostring(scen("x-2")))
  T.check(scen("batch-logs-2") == "logs_named" and S.isdir(outroot .. "/batch-logs")
    and S.exists(outroot .. "/batch-logs/x.log") and S.exists(outroot .. "/batch-logs/batch-logs-2.log"),
    "batch-logs.yaml does not replace the logs", table.concat(S.listdir(outroot), ","))
  T.check(out:find(outroot .. "/x-2/", 1, true), "the summary names each output folder", out)
end

-- A child killed from outside is reported as killed.
do
  local b = batch_dir("bkill", { ["hang.yaml"] = hang })
  local pid, outp, errp = start({ "batch", b, "-o", dir .. "/bkill_out", "--trust" })
  local kids, t0 = {}, S.now()
  while #kids == 0 and S.now() - t0 < 20 do sleep(0.05); kids = children(pid) end
  for _, k in ipairs(kids) do S.kill(k, 9) end
  local code = S.wait(pid, 20)
  if code == false then S.kill(pid, 9); S.wait(pid) end
  local out, err = read(outp), read(errp)
  T.check(code == 1 and out:find("hang.yaml%s+KILLED%s+[%d.]+%s+killed by signal 9 %(SIGKILL%)"),
    "a child killed by SIGKILL: 'killed by signal 9 (SIGKILL)' in the summary", tostring(code) .. " " .. out)
  T.check(err:find("hang.yaml: killed by signal 9 (SIGKILL)", 1, true), "and in the messages", err)
end

-- SIGINT and SIGTERM to the batch: children stopped, none orphaned, no half
-- folders, 128 + signal.
for _, case in ipairs({ { 2, "SIGINT" }, { 15, "SIGTERM" } }) do
  local sig, name = case[1], case[2]
  local b = batch_dir("bsig" .. sig, { ["hang.yaml"] = hang, ["hang2.yaml"] = hang, ["small.yaml"] = small })
  local outroot = dir .. "/bsig_out" .. sig
  local pid, outp, errp = start({ "batch", b, "-j", "3", "-o", outroot, "--trust" })
  local kids, t0 = {}, S.now()
  while #kids < 3 and S.now() - t0 < 20 do sleep(0.05); kids = children(pid) end
  sleep(0.15)
  S.kill(pid, sig)
  local code = S.wait(pid, 20)
  if code == false then S.kill(pid, 9); S.wait(pid) end
  sleep(0.1)
  local left = {}
  for _, k in ipairs(kids) do
    if alive(k) then left[#left + 1] = k; S.kill(k, 9) end
  end
  local err = read(errp) or ""
  T.check(#kids == 3 and #left == 0, name .. " to a batch stops its children (no orphans)",
    #kids .. " children, alive after: " .. table.concat(left, " "))
  T.check(code == 128 + sig and err:find("batch stopped by signal " .. sig .. " (" .. name .. ")", 1, true),
    name .. ": exit " .. (128 + sig) .. " and a message", tostring(code) .. " " .. err)
  T.check((read(outp) or ""):find("hang.yaml%s+STOPPED"), name .. ": the summary says which were stopped", read(outp))
  T.check(not S.exists(outroot .. "/hang") and not S.exists(outroot .. "/hang2")
    and (not S.exists(outroot .. "/small") or complete(outroot .. "/small")) and temps(outroot) == "",
    name .. ": no half-written folders", table.concat(S.listdir(outroot) or {}, ","))
end

for _, m in ipairs(mounts) do os.execute("umount " .. m) end
T.check(S.remove_tree(dir), "cleanup")
T.done()
