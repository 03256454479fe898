-- spillover.cli: the scenario commands of the executable.
--   spillover run FILE.yaml [-o DIR] [--set key.path=value ...] [--trust] [--quiet] [--timeout SECONDS] [-j N]
--   spillover run FILE.yaml --part K/N | --parts N [-o DIR] ...   (a run split over processes)
--   spillover check FILE.yaml [--set key.path=value ...] [--trust]
--   spillover batch DIR|FILES... [-j N] [-o OUTROOT] [--set ...] [--trust] [--timeout SECONDS] [--quiet] [--force]
--   spillover batch DIR|FILES... --slurm [--array-size N] [--partition P] [--time T] [--dry-run] [-o OUTROOT] ...
--   spillover batch --tasks LIST [--task I] [-o OUTROOT] ...   (what an array task runs)
--   spillover gather OUTROOT [--resubmit [--array-size N] [--partition P] [--time T] [--dry-run]]
-- main() returns the exit code; messages go to stderr, results to stdout.
local raise = require("spillover.util").raise
local batch = require "spillover.batch"
local M = {}

local function eprint(...)
  io.stderr:write(table.concat({ ... }, " "), "\n")
end

-- The options each command takes.
local SLURM = { array_size = true, partition = true, time = true, dry_run = true }
local OPTIONS = {
  check = { set = true, trust = true },
  -- run -j N: the sweeps' points and the curve's cells in N worker processes;
  -- --part K/N computes one share of them, --parts N puts the shares together
  run = { set = true, trust = true, out = true, quiet = true, timeout = true, jobs = true, part = true, parts = true },
  -- batch --quiet (accepted before the options were per command) leaves out
  -- the table rows of scenarios that ran ok; failures and the total stay.
  -- batch --split N: scenarios with sweeps or a specification curve run as N
  -- parts and an assembly (spillover.parts), locally or as array tasks
  batch = { set = true, trust = true, out = true, jobs = true, timeout = true, quiet = true, force = true,
    slurm = true, tasks = true, task = true, split = true },
  -- gather --resubmit writes (and submits) an array of the runs that are not ok.
  gather = { trust = true, timeout = true, resubmit = true },
}
for k in pairs(SLURM) do OPTIONS.batch[k], OPTIONS.gather[k] = true, true end

local MAX_PARTS = require("spillover.parts").MAX

local function parse(cmd, args)
  local allow = OPTIONS[cmd]
  local o = { files = {}, set = {}, jobs = 1 }
  local function value(i, what)
    local v = args[i + 1]
    if not v then raise(args[i] .. " needs " .. what) end
    return v
  end
  local function integer(name, v, least, most)
    local n = math.tointeger(tonumber(v))
    if not n or n < least or (most and n > most) then
      raise(string.format("%s needs a whole number >= %d%s, got '%s'", name, least, most and " and <= " .. most or "", v))
    end
    return n
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
    elseif a == "--set" and allow.set then
      o.set[#o.set + 1] = arg_value("key.path=value")
    elseif a == "--timeout" and allow.timeout then
      local v = arg_value("a number of seconds")
      o.timeout = tonumber(v)
      if not o.timeout or not (o.timeout > 0) or o.timeout == math.huge then
        raise("--timeout needs a number of seconds > 0, got '" .. v .. "'")
      end
    elseif a == "-j" and allow.jobs then
      o.jobs = integer(a, arg_value("a number of processes"), 1)
    elseif a:match("^%-j%d+$") and allow.jobs then
      o.jobs = integer("-j", a:sub(3), 1)
    elseif a == "--trust" and allow.trust then o.trust = true
    elseif (a == "--quiet" or a == "-q") and allow.quiet then o.quiet = true
    elseif a == "--force" and allow.force then o.force = true
    elseif a == "--slurm" and allow.slurm then o.slurm = true
    elseif a == "--resubmit" and allow.resubmit then o.resubmit = true
    elseif a == "--dry-run" and allow.dry_run then o.dry_run = true
    elseif a == "--array-size" and allow.array_size then
      o.array_size = integer(a, arg_value("a number of array tasks"), 1)
    elseif a == "--partition" and allow.partition then o.partition = arg_value("a partition name")
    elseif a == "--time" and allow.time then o.time = arg_value("a time limit (as sbatch --time takes it)")
    elseif a == "--tasks" and allow.tasks then o.tasks = arg_value("a task list file (- for standard input)")
    elseif a == "--task" and allow.task then o.task = integer(a, arg_value("an array task number"), 0)
    elseif a == "--part" and allow.part then o.part = { require("spillover.parts").parse(arg_value("K/N")) }
    elseif a == "--parts" and allow.parts then o.parts = integer(a, arg_value("the number of parts"), 1, MAX_PARTS)
    elseif a == "--split" and allow.split then o.split = integer(a, arg_value("a number of parts"), 1, MAX_PARTS)
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

-- argv of a child `spillover run` of file into outdir, with overrides set
-- and the caller's trust.
local function run_argv(o, file, set, outdir, quiet, extra)
  local argv = { exe(), "run", file, "-o", outdir }
  if quiet then argv[#argv + 1] = "--quiet" end
  table.move(extra or {}, 1, #(extra or {}), #argv + 1, argv)
  for _, s in ipairs(set) do argv[#argv + 1] = "--set"; argv[#argv + 1] = s end
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
-- folder of a run killed by a signal is removed.  busy, if given, runs in
-- this process once the first jobs have started (if it raises, the jobs are
-- killed and the error passed on).  Returns the signal that stopped the
-- pool, if one did.
local function run_pool(jobs, width, timeout, busy)
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
  if busy then
    while #queue > 0 and n < width do start(table.remove(queue, 1)) end
    local ok, err = pcall(busy)
    if not ok then
      kill_all(9)
      while n > 0 do
        local pid, code, sig = S.waitany()
        if not pid then break end
        reap(pid, code, sig)
      end
      error(err, 0)
    end
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
  if job.unchanged then return "unchanged", job.outdir .. "/" end
  if job.error then return "FAILED", job.error end
  if job.timed_out then return "TIMEOUT", string.format("timed out after %g s", timeout) end
  if not job.code then return "skipped", "not started: the batch was stopped by " .. signal_text(stopped) end
  if job.signal and stopped then return "STOPPED", "stopped by " .. signal_text(stopped) end
  if job.signal then return "KILLED", "killed by " .. signal_text(job.signal) end
  if job.code ~= 0 then return "FAILED", "exit status " .. job.code end
  return "ok", job.outdir .. "/"
end

-- The parts of a run (`run -j N`) into outdir's parts folder: parts 2..N
-- in worker processes (`spillover run FILE --part k/N`) and part 1 in this
-- one meanwhile, on the scenario s it has read and checked (with --timeout
-- every part runs in a worker, which the timeout can stop).  Raises with the
-- message of a part that failed, and leaves no part behind.
local function run_parts(o, s, file, outdir, n)
  local parts = require "spillover.parts"
  local S = require("spillover").sys
  local dir = parts.dir(outdir)
  local okd, derr = S.mkdir(dir, { parents = true })
  if not okd then raise("cannot create " .. dir .. ": " .. tostring(derr)) end
  local here = not o.timeout
  local jobs = {}
  for k = here and 2 or 1, n do
    jobs[#jobs + 1] = { part = k, outdir = outdir, log = string.format("%s/%d-of-%d.log", dir, k, n),
      argv = run_argv(o, file, o.set, outdir, true, { "--part", k .. "/" .. n }) }
  end
  local function part_one()
    require("spillover.scenario").run(s, { outdir = outdir, part = { 1, n }, overrides = o.set, trust = o.trust })
  end
  local ok, stopped = pcall(run_pool, jobs, n, o.timeout, here and part_one or nil)
  if not ok then
    S.remove_tree(dir)
    raise("part 1 of " .. n .. ": " .. require("spillover.util").message(stopped))
  end
  for _, job in ipairs(jobs) do
    local status, what = job_status(job, o.timeout, stopped)
    if status ~= "ok" then
      local f = io.open(job.log)
      local text = f and f:read("a"):gsub("%s+$", "") or ""
      if f then f:close() end
      S.remove_tree(dir)
      if stopped then return 128 + stopped end
      raise(string.format("part %d of %d: %s", job.part, n, text ~= "" and text:gsub("^spillover: ", "") or what))
    end
  end
end

local function cmd_run(o)
  local scenario = require "spillover.scenario"
  local report = require "spillover.report"
  if #o.files ~= 1 then raise("run: give exactly one scenario file (use batch for several)") end
  if (o.part and 1 or 0) + (o.parts and 1 or 0) + (o.jobs > 1 and 1 or 0) > 1 then
    raise("run: give one of -j N, --part K/N and --parts N")
  end
  local file = o.files[1]
  local s = scenario.load(file, o.set)
  local outdir = report.outdir(s.spec, o.out)
  if not o.part then report.check_target(outdir) end  -- before the work, not after it
  if o.timeout and o.jobs == 1 then
    -- Everything after reading the file (checks load plugins, which may
    -- hang) goes to a child that can be killed whole; its messages reach the
    -- terminal directly.
    local extra = o.part and { "--part", o.part[1] .. "/" .. o.part[2] } or o.parts and { "--parts", tostring(o.parts) }
    local job = { argv = run_argv(o, file, o.set, outdir, o.quiet, extra), outdir = outdir }
    local stopped = run_pool({ job }, 1, o.timeout)
    if job.error then error(job.error, 0) end
    if not (job.timed_out or job.signal) then return job.code end  -- the run said why
    local _, what = job_status(job, o.timeout, stopped)
    eprint(string.format("spillover: %s: %s; nothing was written to %s", file, what, outdir))
    if stopped then return 128 + stopped end
    return job.timed_out and 124 or job.code
  end
  scenario.check(s, { trust = o.trust })
  local opts = { outdir = outdir, progress = progress_fn(o.quiet), overrides = o.set, trust = o.trust,
    part = o.part, parts = o.parts }
  if o.jobs > 1 and scenario.splittable(s.spec) then
    -- (--timeout bounds each worker, and the run's own share after them)
    local code = run_parts(o, s, file, outdir, o.jobs)
    if code then return code end
    opts.parts = o.jobs
  end
  local out = scenario.run(s, opts)
  if not o.quiet then
    if o.part then
      print(string.format("%s: part %d of %d in %s", s.spec.name, o.part[1], o.part[2], out))
    else
      print(string.format("%s: results in %s/", s.spec.name, out))
    end
  end
  return 0
end

-- Write the task list and the sbatch scripts of the runs that have `todo`
-- set, as OUTROOT/batch-logs/<stem>.tsv, <stem>.sbatch and (when a run is
-- split) <stem>-assemble.sbatch, and submit them unless --dry-run: the
-- assemblies are a second array that starts when the first has ended.
-- Returns the exit code.
local function submit_array(o, runs, outroot, stem)
  local slurm = require "spillover.slurm"
  if not o.dry_run then slurm.sbatch() end  -- before writing anything
  -- the first array: whole runs, then the parts dealt by part number (so
  -- that the parts of one run land in different tasks); the second array:
  -- the assemblies
  local main, assembly, byk = {}, {}, {}
  for _, r in ipairs(runs) do
    if r.part then
      byk[r.part[1]] = byk[r.part[1]] or {}
      table.insert(byk[r.part[1]], r)
    else
      local list = r.parts and assembly or main
      list[#list + 1] = r
    end
  end
  for k = 1, #byk do
    for _, r in ipairs(byk[k]) do main[#main + 1] = r end
  end
  -- both arrays' task ids fit in one Slurm array's range
  local size, todo2 = o.array_size or slurm.MAX_ARRAY, 0
  for _, r in ipairs(assembly) do if r.todo then todo2 = todo2 + 1 end end
  local n1 = batch.pack(main, math.min(size, slurm.MAX_ARRAY - math.min(size, todo2)))
  local n2 = batch.pack(assembly, size, n1)
  local logdir = outroot .. "/" .. batch.LOGS
  local list = logdir .. "/" .. stem .. ".tsv"
  local text = batch.tasks_text(runs)
  batch.write_file(list, text)
  -- a split run counts once (its assembly), as in gather
  local total, submitted, split = 0, 0, 0
  for _, r in ipairs(runs) do
    if not r.part then
      total = total + 1
      if r.task then submitted = submitted + 1 end
      if r.task and r.parts then split = split + 1 end
    end
  end
  if n1 + n2 == 0 then
    print(string.format("nothing to submit: the %d runs are unchanged (--force runs them again)", total))
    return 0
  end
  local function script(name, first, last)
    local path = logdir .. "/" .. name .. ".sbatch"
    batch.write_file(path, slurm.script({ first = first, last = last, list = text, copy = list, outroot = outroot,
      partition = o.partition, time = o.time, trust = o.trust, timeout = o.timeout, force = o.force }))
    return path
  end
  local s1 = n1 > 0 and script(stem, 0, n1 - 1)
  local s2 = n2 > 0 and script(stem .. "-assemble", n1, n1 + n2 - 1)
  local what = string.format("%d runs in %d array tasks (%d unchanged, not submitted)", submitted, n1 + n2,
    total - submitted)
  if split > 0 then
    what = what .. string.format("; %d of them split into parts, put together by the last %d tasks (a second " ..
      "array, after the first)", split, n2)
  end
  if o.dry_run then
    local how = s1 and s2 and string.format("sbatch --dependency=afterany:$(sbatch --parsable %s) %s", s1, s2)
      or ("sbatch " .. (s1 or s2))
    print(string.format("%s: %s; task list %s (submit with: %s)", s1 or s2, what, list, how))
  else
    local id1 = s1 and slurm.submit(s1)
    local id2 = s2 and slurm.submit(s2, id1 or nil)
    print(string.format("submitted job %s: %s; script %s", id1 or id2, what, s1 or s2) ..
      (id1 and id2 and string.format("; the assemblies are job %s (%s), after job %s", id2, s2, id1) or ""))
  end
  return 0
end

local function cmd_batch(o)
  local sp = require "spillover"
  local runs
  if o.tasks then
    if #o.files > 0 or #o.set > 0 then
      raise("batch --tasks: the task list names the scenarios and their --set values; give no files or --set with it")
    end
    if o.task and o.slurm then raise("batch: --task is what an array task runs; --slurm submits the whole list") end
    runs = batch.read_tasks(o.tasks)
    if o.task then
      local mine = {}
      for _, r in ipairs(runs) do if r.task == o.task then mine[#mine + 1] = r end end
      if #mine == 0 then
        raise(string.format("batch: %s has no runs for task %d", o.tasks == "-" and "the task list" or o.tasks, o.task))
      end
      runs = mine
    end
  else
    if o.task then raise("--task needs --tasks (the task list of a Slurm batch)") end
    local files = batch.scenario_files(o.files)
    if #files == 0 then raise("batch: no scenario files (*.yaml) given") end
    runs = batch.split(batch.runs(files, o.set), o.split or 1)
  end
  if o.tasks and o.split then raise("batch --tasks: the task list says which runs are split; give no --split with it") end
  if not o.slurm and (o.array_size or o.partition or o.time or o.dry_run) then
    raise("batch: --array-size, --partition, --time and --dry-run go with --slurm")
  end
  local outroot = (o.out or "out"):gsub("(.)/$", "%1")
  local logdir = outroot .. "/" .. batch.LOGS
  local okd, derr = sp.sys.mkdir(logdir, { parents = true })
  if not okd then raise("batch: " .. tostring(derr)) end
  for _, r in ipairs(runs) do r.todo = o.force or not batch.unchanged(r, outroot .. "/" .. r.name) end
  if o.slurm then return submit_array(o, runs, outroot, "tasks") end
  local jobs, todo, assemble = {}, {}, {}
  for i, r in ipairs(runs) do
    local outdir = outroot .. "/" .. r.name
    jobs[i] = { file = r.file, outdir = outdir, log = logdir .. "/" .. batch.log_name(r),
      argv = run_argv(o, r.file, r.set, outdir, true, batch.split_args(r)), unchanged = not r.todo,
      shown = r.file .. (r.part and string.format(" (part %d/%d)", r.part[1], r.part[2]) or ""), part = r.part }
    if r.todo then
      local list = r.parts and assemble or todo
      list[#list + 1] = jobs[i]
    end
  end
  local t0 = sp.sys.now()
  -- the parts first, then what puts them together
  local stopped = run_pool(todo, o.jobs, o.timeout) or run_pool(assemble, o.jobs, o.timeout)
  table.sort(jobs, function(a, b) return a.shown < b.shown end)
  local failed, unchanged, nparts = 0, 0, 0
  if not o.quiet then print(string.format("%-48s %-9s %7s  %s", "scenario", "status", "seconds", "output")) end
  for _, job in ipairs(jobs) do
    local status, what = job_status(job, o.timeout, stopped)
    if job.part then
      nparts = nparts + 1
      if status == "ok" then what = require("spillover.parts").dir(job.outdir) .. "/" end
    end
    if status == "unchanged" then unchanged = unchanged + 1
    elseif status ~= "ok" then failed = failed + 1 end
    if (status ~= "ok" and status ~= "unchanged") or not o.quiet then
      print(string.format("%-48s %-9s %7.2f  %s", job.shown, status, job.seconds or 0, what))
    end
  end
  for _, job in ipairs(jobs) do
    local status, what = job_status(job, o.timeout, stopped)
    if status ~= "ok" and status ~= "unchanged" then
      local f = io.open(job.log)
      local text = f and f:read("a") or ""
      if f then f:close() end
      text = text:gsub("%s+$", "")
      eprint(job.shown .. ": " .. (text ~= "" and text or what))
    end
  end
  print(string.format("%d scenarios%s, %d failed, %d unchanged (not run again), %.2f s (logs in %s/)", #jobs - nparts,
    nparts > 0 and string.format(" (and %d parts of split ones)", nparts) or "", failed, unchanged, sp.sys.now() - t0,
    logdir))
  if stopped then
    eprint(string.format("spillover: batch stopped by %s; running scenarios were stopped, none left partial output",
      signal_text(stopped)))
    return 128 + stopped
  end
  return failed == 0 and 0 or 1
end

local function cmd_gather(o)
  local gather = require "spillover.gather"
  if #o.files ~= 1 then raise("gather: give one OUTROOT (the -o folder of a batch)") end
  if not o.resubmit and (o.array_size or o.partition or o.time or o.dry_run or o.trust or o.timeout) then
    raise("gather: --array-size, --partition, --time, --dry-run, --trust and --timeout go with --resubmit")
  end
  local outroot = o.files[1]:gsub("(.)/$", "%1")
  local runs = gather.status(outroot)
  if #runs == 0 then
    raise("gather: no runs under '" .. outroot .. "' (no " .. batch.LOGS .. "/tasks.tsv and no output folder with a manifest)")
  end
  local csv, json = gather.merge(outroot, runs)
  local count = { ok = 0, failed = 0, missing = 0, stale = 0 }
  for _, r in ipairs(runs) do
    count[r.status] = count[r.status] + 1
    if r.status ~= "ok" then
      print(string.format("%-32s %-8s task %-5s %s", r.name, r.status, r.task or "-", r.detail))
    end
    r.todo = r.status ~= "ok"
  end
  print(string.format("%d runs: %d ok, %d failed, %d missing, %d stale; results of the ok runs in %s and %s",
    #runs, count.ok, count.failed, count.missing, count.stale, csv, json))
  if o.resubmit and count.ok < #runs then
    -- a split run that is not ok: its parts without a file again (all of
    -- them when every file is there but the assembly failed: they may be
    -- stale), then its assembly
    local list = {}
    for _, r in ipairs(runs) do
      local again = 0
      for _, p in ipairs(r.part_runs or {}) do
        p.todo = r.todo and not p.done
        if p.todo then again = again + 1 end
      end
      for _, p in ipairs(r.part_runs or {}) do
        if r.todo and again == 0 and r.status == "failed" then p.todo = true end
        list[#list + 1] = p
      end
      list[#list + 1] = r
    end
    submit_array(o, list, outroot, "tasks-resubmit")
  end
  return count.ok == #runs and 0 or 1
end

function M.main(cmd, ...)
  local args = { ... }
  require "spillover"  -- the whole API, so modules that register estimators have done so
  local ok, res = pcall(function()
    if cmd == "check" then return cmd_check(parse(cmd, args)) end
    if cmd == "run" then return cmd_run(parse(cmd, args)) end
    if cmd == "batch" then return cmd_batch(parse(cmd, args)) end
    if cmd == "gather" then return cmd_gather(parse(cmd, args)) end
    raise("unknown command '" .. tostring(cmd) .. "'")
  end)
  if not ok then
    eprint("spillover: " .. tostring(res))
    return 1
  end
  return res
end

return M
