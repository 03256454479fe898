-- spillover.cli: the scenario commands of the executable.
--   spillover run FILE.yaml [-o DIR] [--set key.path=value ...] [--trust] [--quiet]
--   spillover check FILE.yaml [--set ...] [--trust]
--   spillover batch DIR|FILES... [-j N] [-o OUTROOT] [--trust]
-- main() returns the exit code; messages go to stderr, results to stdout.
local M = {}

local function eprint(...)
  io.stderr:write(table.concat({ ... }, " "), "\n")
end

local function parse(args, allow)
  local o = { files = {}, set = {}, jobs = 1 }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-o" or a == "--out" then
      o.out = args[i + 1]; i = i + 1
      if not o.out then error("-o needs a directory", 0) end
    elseif a == "--set" then
      o.set[#o.set + 1] = args[i + 1]; i = i + 1
      if not o.set[#o.set] then error("--set needs key.path=value", 0) end
    elseif a:match("^%-%-set=") then
      o.set[#o.set + 1] = a:sub(7)
    elseif a == "-j" and allow.jobs then
      o.jobs = tonumber(args[i + 1]); i = i + 1
      if not o.jobs or o.jobs < 1 then error("-j needs a positive number", 0) end
    elseif a:match("^%-j%d+$") and allow.jobs then
      o.jobs = tonumber(a:sub(3))
    elseif a == "--trust" then o.trust = true
    elseif a == "--quiet" or a == "-q" then o.quiet = true
    elseif a:sub(1, 1) == "-" then error("unknown option '" .. a .. "'", 0)
    else o.files[#o.files + 1] = a end
    i = i + 1
  end
  return o
end

local function progress_fn(quiet)
  local sp = require "spillover"
  if quiet or not (sp.sys and sp.sys.isatty and sp.sys.isatty(2)) then return nil end
  local last = -1
  return function(label, i, n)
    local pct = math.floor(100 * i / n)
    if pct ~= last or i == n then
      last = pct
      local width = 30
      local filled = math.floor(width * i / n)
      io.stderr:write(string.format("\r%-24s [%s%s] %d/%d", label:sub(1, 24), string.rep("#", filled),
        string.rep(".", width - filled), i, n))
      if i == n then io.stderr:write("\n") end
    end
  end
end

local function cmd_check(o)
  local scenario = require "spillover.scenario"
  if #o.files == 0 then error("check: give a scenario file", 0) end
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

local function cmd_run(o)
  local scenario = require "spillover.scenario"
  if #o.files ~= 1 then error("run: give exactly one scenario file (use batch for several)", 0) end
  local s = scenario.load(o.files[1], o.set)
  scenario.check(s, { trust = o.trust })
  local out = scenario.run(s, { outdir = o.out, progress = progress_fn(o.quiet), overrides = o.set, trust = o.trust })
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

local function cmd_batch(o)
  local sp = require "spillover"
  local files = scenario_files(o.files)
  if #files == 0 then error("batch: no scenario files (*.yaml) given", 0) end
  local exe = arg and arg[0] or "spillover"
  local outroot = o.out or "out"
  local logdir = outroot .. "/batch-logs"
  sp.sys.mkdir(logdir, { parents = true })
  local queue, running, results = {}, {}, {}
  for i, f in ipairs(files) do queue[i] = f end
  local t0 = sp.sys.now()
  local function start(f)
    local stem = f:match("([^/]+)%.ya?ml$")
    local argv = { exe, "run", f, "-o", outroot .. "/" .. stem, "--quiet" }
    for _, s in ipairs(o.set) do argv[#argv + 1] = "--set"; argv[#argv + 1] = s end
    if o.trust then argv[#argv + 1] = "--trust" end
    local log = logdir .. "/" .. stem .. ".log"
    local pid, err = sp.sys.spawn(argv, { stdout = log, stderr = log })
    if not pid then
      results[#results + 1] = { file = f, code = -1, seconds = 0, log = tostring(err) }
      return
    end
    running[pid] = { file = f, t = sp.sys.now(), log = log }
  end
  local function nrunning() local n = 0; for _ in pairs(running) do n = n + 1 end; return n end
  while #queue > 0 or nrunning() > 0 do
    while #queue > 0 and nrunning() < o.jobs do start(table.remove(queue, 1)) end
    if nrunning() > 0 then
      local pid, code = sp.sys.waitany()
      local job = running[pid]
      if job then
        running[pid] = nil
        results[#results + 1] = { file = job.file, code = code, seconds = sp.sys.now() - job.t, log = job.log }
      end
    end
  end
  table.sort(results, function(a, b) return a.file < b.file end)
  local failed = 0
  print(string.format("%-48s %-8s %8s", "scenario", "status", "seconds"))
  for _, r in ipairs(results) do
    local status = r.code == 0 and "ok" or ("FAILED")
    if r.code ~= 0 then failed = failed + 1 end
    print(string.format("%-48s %-8s %8.2f", r.file, status, r.seconds))
  end
  for _, r in ipairs(results) do
    if r.code ~= 0 then
      local f = io.open(r.log)
      local text = f and f:read("a") or r.log
      if f then f:close() end
      eprint(r.file .. ": " .. (text:gsub("%s+$", "")))
    end
  end
  print(string.format("%d scenarios, %d failed, %.2f s", #results, failed, sp.sys.now() - t0))
  return failed == 0 and 0 or 1
end

function M.main(cmd, ...)
  local args = { ... }
  require "spillover"  -- the whole API, so modules that register estimators have done so
  local ok, res = pcall(function()
    if cmd == "check" then return cmd_check(parse(args, {})) end
    if cmd == "run" then return cmd_run(parse(args, {})) end
    if cmd == "batch" then return cmd_batch(parse(args, { jobs = true })) end
    error("unknown command '" .. tostring(cmd) .. "'", 0)
  end)
  if not ok then
    eprint("spillover: " .. tostring(res))
    return 1
  end
  return res
end

return M
