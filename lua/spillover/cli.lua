-- spillover.cli: the scenario commands of the executable.
--   spillover run FILE.yaml [-o DIR] [--set key.path=value ...] [--trust] [--quiet] [--timeout SECONDS]
--   spillover check FILE.yaml [--set key.path=value ...] [--trust]
--   spillover batch DIR|FILES... [-j N] [-o OUTROOT] [--set ...] [--trust] [--timeout SECONDS] [--quiet]
-- main() returns the exit code; messages go to stderr, results to stdout.
local raise = require("spillover.util").raise
local M = {}

local function eprint(...)
  io.stderr:write(table.concat({ ... }, " "), "\n")
end

-- The options each command takes besides --set and --trust.
local OPTIONS = {
  check = {},
  run = { out = true, quiet = true, timeout = true },
  -- batch --quiet (accepted before the options were per command) leaves out
  -- the table rows of scenarios that ran ok; failures and the total stay.
  batch = { out = true, jobs = true, timeout = true, quiet = true },
}

local function parse(cmd, args)
  local allow = OPTIONS[cmd]
  local o = { files = {}, set = {}, jobs = 1 }
  local function value(i, what)
    local v = args[i + 1]
    if not v then raise(args[i] .. " needs " .. what) end
    return v
  end
  local i = 1
  while i <= #args do
    local a = args[i]
    local key, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    if key then a = key end
    local function arg_value(what)
      if inline then return inline end
      local v = value(i, what)
      i = i + 1
      return v
    end
    if (a == "-o" or a == "--out") and allow.out then
      o.out = arg_value(cmd == "batch" and "an output root folder" or "a directory")
    elseif a == "--set" then
      o.set[#o.set + 1] = arg_value("key.path=value")
    elseif a == "--timeout" and allow.timeout then
      local v = arg_value("a number of seconds")
      o.timeout = tonumber(v)
      if not o.timeout or not (o.timeout > 0) or o.timeout == math.huge then
        raise("--timeout needs a number of seconds > 0, got '" .. v .. "'")
      end
    elseif a == "-j" and allow.jobs then
      o.jobs = tonumber(arg_value("a positive number"))
      if not o.jobs or o.jobs < 1 then raise("-j needs a positive number") end
    elseif a:match("^%-j%d+$") and allow.jobs then
      o.jobs = tonumber(a:sub(3))
    elseif a == "--trust" then o.trust = true
    elseif (a == "--quiet" or a == "-q") and allow.quiet then o.quiet = true
    elseif a:sub(1, 1) == "-" then raise("unknown option '" .. a .. "' for " .. cmd .. " (see spillover --help)")
    else o.files[#o.files + 1] = a end
    i = i + 1
  end
  return o
end

-- The experiments' draws as bars (spillover.progress: on a terminal, or SPILLOVER_PROGRESS=1).
local function progress_fn(quiet)
  local progress = require "spillover.progress"
  if quiet or not progress.enabled() then return nil end
  return progress.reporter()
end

local function cmd_check(o)
  local scenario = require "spillover.scenario"
  if #o.files == 0 then raise("check: give a scenario file") end
  local bad = 0
  for _, f in ipairs(o.files) do
    local ok, err = pcall(function()
      local s = scenario.load(f, o.set)
      scenario.check(s, { trust = o.trust })
      local nm, ne = 0, 0
      for _ in pairs(s.spec.models) do nm = nm + 1 end
      for _ in pairs(s.spec.experiments or {}) do ne = ne + 1 end
      print(string.format("%s: ok (%d models, %d experiments)", f, nm, ne))
    end)
    if not ok then eprint(tostring(err)); bad = bad + 1 end
  end
  return bad == 0 and 0 or 1
end

-- The executable itself, to run scenarios in child processes.
local function exe() return arg and arg[0] or "spillover" end

-- argv of a child `spillover run` of file into outdir, with the caller's
-- overrides and trust.
local function run_argv(o, file, outdir, quiet)
  local argv = { exe(), "run", file, "-o", outdir }
  if quiet then argv[#argv + 1] = "--quiet" end
  for _, s in ipairs(o.set) do argv[#argv + 1] = "--set"; argv[#argv + 1] = s end
  if o.trust then argv[#argv + 1] = "--trust" end
  return argv
end

-- Seconds a stopped child has to exit before its process group gets SIGKILL.
local GRACE = 2

-- Run jobs ({argv =, outdir =, log =}) as children, at most `width` at a
-- time, each in a process group of its own so that everything a run started
-- can be stopped with it.  A job that runs past `timeout` seconds gets SIGKILL.
-- SIGINT, SIGTERM and SIGHUP to this process are passed on to the running
-- jobs (SIGKILL after GRACE seconds or a second signal) and stop the pool.
-- Each job gets code (and signal when killed), seconds, timed_out, or error
-- when it could not start; jobs never started get neither.  The temporary
-- folder of a run killed by a signal is removed.  Returns the signal that
-- stopped the pool, if one did.
local function run_pool(jobs, width, timeout)
  local S = require("spillover").sys
  local report = require "spillover.report"
  assert(S.trap_signals())
  local queue, running, n, stopped = {}, {}, 0, nil
  for i, job in ipairs(jobs) do queue[i] = job end
  local function start(job)
    job.t = S.now()
    local pid, err = S.spawn(job.argv, { stdout = job.log, stderr = job.log, group = true })
    if not pid then job.error = tostring(err); return end
    job.deadline = timeout and job.t + timeout
    running[pid] = job
    n = n + 1
  end
  local function reap(pid, code, sig)
    local job = running[pid]
    if not job then return end
    running[pid], n = nil, n - 1
    job.code, job.signal, job.seconds = code, sig, S.now() - job.t
    if sig then
      S.kill(pid, 9, { group = true })  -- what the run started, if it outlived it
      report.clean(job.outdir)
    end
  end
  local function kill_all(sig)
    for pid in pairs(running) do S.kill(pid, sig, { group = true }) end
  end
  while not stopped and (#queue > 0 or n > 0) do
    while #queue > 0 and n < width do start(table.remove(queue, 1)) end
    if n > 0 then
      local wait
      for _, job in pairs(running) do
        if job.deadline and not job.timed_out then
          local left = math.max(0, job.deadline - S.now())
          wait = math.min(wait or left, left)
        end
      end
      local pid, code, sig = S.waitany(wait)
      if pid == nil then error(code, 0) end
      if pid then
        reap(pid, code, sig)
      elseif code then
        stopped = code
      else
        for p, job in pairs(running) do
          if job.deadline and not job.timed_out and S.now() >= job.deadline then
            job.timed_out = true
            S.kill(p, 9, { group = true })
          end
        end
      end
    end
  end
  if stopped then
    kill_all(stopped)
    local deadline, killed = S.now() + GRACE, false
    while n > 0 do
      local pid, code, sig = S.waitany(not killed and math.max(0, deadline - S.now()) or nil)
      if pid == nil then error(code, 0) end
      if pid then
        reap(pid, code, sig)
      else
        killed = true
        kill_all(9)
      end
    end
  end
  return stopped
end

local function signal_text(sig)
  local name = require("spillover").sys.signame(sig)
  return string.format("signal %d%s", sig, name and " (" .. name .. ")" or "")
end

-- What became of a job, in a few words.
local function job_status(job, timeout, stopped)
  if job.error then return "FAILED", job.error end
  if job.timed_out then return "TIMEOUT", string.format("timed out after %g s", timeout) end
  if not job.code then return "skipped", "not started: the batch was stopped by " .. signal_text(stopped) end
  if job.signal and stopped then return "STOPPED", "stopped by " .. signal_text(stopped) end
  if job.signal then return "KILLED", "killed by " .. signal_text(job.signal) end
  if job.code ~= 0 then return "FAILED", "exit status " .. job.code end
  return "ok", job.outdir .. "/"
end

local function cmd_run(o)
  local scenario = require "spillover.scenario"
  local report = require "spillover.report"
  if #o.files ~= 1 then raise("run: give exactly one scenario file (use batch for several)") end
  local file = o.files[1]
  local s = scenario.load(file, o.set)
  local outdir = report.outdir(s.spec, o.out)
  report.check_target(outdir)  -- before the work, not after it
  if o.timeout then
    -- Everything after reading the file (checks load plugins, which may
    -- hang) goes to a child that can be killed whole; its messages reach the
    -- terminal directly.
    local job = { argv = run_argv(o, file, outdir, o.quiet), outdir = outdir }
    local stopped = run_pool({ job }, 1, o.timeout)
    if job.error then error(job.error, 0) end
    if not (job.timed_out or job.signal) then return job.code end  -- the run said why
    local _, what = job_status(job, o.timeout, stopped)
    eprint(string.format("spillover: %s: %s; nothing was written to %s", file, what, outdir))
    if stopped then return 128 + stopped end
    return job.timed_out and 124 or job.code
  end
  scenario.check(s, { trust = o.trust })
  local out = scenario.run(s, { outdir = outdir, progress = progress_fn(o.quiet), overrides = o.set, trust = o.trust })
  if not o.quiet then
    print(string.format("%s: results in %s/", s.spec.name, out))
  end
  return 0
end

local function scenario_files(paths)
  local sp = require "spillover"
  local files = {}
  for _, p in ipairs(paths) do
    if sp.sys.isdir(p) then
      for _, name in ipairs(sp.sys.listdir(p)) do
        if name:match("%.ya?ml$") then files[#files + 1] = p:gsub("/$", "") .. "/" .. name end
      end
    else
      files[#files + 1] = p
    end
  end
  return files
end

-- The batch's own folder under OUTROOT, never a scenario's output.
local LOGS = "batch-logs"

-- One output name per file: its stem, or stem-2, stem-3, ... when the stem
-- is taken by an earlier file or is the logs folder (a/x.yaml and b/x.yaml
-- must not overwrite each other).  Unique stems are never renamed.
local function output_names(files)
  local count, taken, names = {}, { [LOGS] = true }, {}
  for i, f in ipairs(files) do
    names[i] = f:match("([^/]+)%.ya?ml$") or f:match("([^/]+)$")
    count[names[i]] = (count[names[i]] or 0) + 1
  end
  for _, stem in ipairs(names) do
    if count[stem] == 1 then taken[stem] = true end
  end
  for i, stem in ipairs(names) do
    if count[stem] > 1 or stem == LOGS then
      local name, k = stem, 1
      while taken[name] do k = k + 1; name = stem .. "-" .. k end
      taken[name] = true
      names[i] = name
    end
  end
  return names
end

local function cmd_batch(o)
  local sp = require "spillover"
  local files = scenario_files(o.files)
  if #files == 0 then raise("batch: no scenario files (*.yaml) given") end
  local outroot = o.out or "out"
  local logdir = outroot .. "/" .. LOGS
  local okd, derr = sp.sys.mkdir(logdir, { parents = true })
  if not okd then raise("batch: " .. tostring(derr)) end
  local jobs = {}
  for i, name in ipairs(output_names(files)) do
    local outdir = outroot .. "/" .. name
    jobs[i] = { file = files[i], outdir = outdir, log = logdir .. "/" .. name .. ".log",
      argv = run_argv(o, files[i], outdir, true) }
  end
  local t0 = sp.sys.now()
  local stopped = run_pool(jobs, o.jobs, o.timeout)
  table.sort(jobs, function(a, b) return a.file < b.file end)
  local failed = 0
  if not o.quiet then print(string.format("%-48s %-8s %8s  %s", "scenario", "status", "seconds", "output")) end
  for _, job in ipairs(jobs) do
    local status, what = job_status(job, o.timeout, stopped)
    if status ~= "ok" then failed = failed + 1 end
    if status ~= "ok" or not o.quiet then
      print(string.format("%-48s %-8s %8.2f  %s", job.file, status, job.seconds or 0, what))
    end
  end
  for _, job in ipairs(jobs) do
    local status, what = job_status(job, o.timeout, stopped)
    if status ~= "ok" then
      local f = io.open(job.log)
      local text = f and f:read("a") or ""
      if f then f:close() end
      text = text:gsub("%s+$", "")
      eprint(job.file .. ": " .. (text ~= "" and text or what))
    end
  end
  print(string.format("%d scenarios, %d failed, %.2f s (logs in %s/)", #jobs, failed, sp.sys.now() - t0, logdir))
  if stopped then
    eprint(string.format("spillover: batch stopped by %s; running scenarios were stopped, none left partial output",
      signal_text(stopped)))
    return 128 + stopped
  end
  return failed == 0 and 0 or 1
end

function M.main(cmd, ...)
  local args = { ... }
  require "spillover"  -- the whole API, so modules that register estimators have done so
  local ok, res = pcall(function()
    if cmd == "check" then return cmd_check(parse(cmd, args)) end
    if cmd == "run" then return cmd_run(parse(cmd, args)) end
    if cmd == "batch" then return cmd_batch(parse(cmd, args)) end
    raise("unknown command '" .. tostring(cmd) .. "'")
  end)
  if not ok then
    eprint("spillover: " .. tostring(res))
    return 1
  end
  return res
end

return M
