-- spillover.batch: the runs of a batch, and which of them need running.
-- A run is a scenario file, the name of its output folder under OUTROOT and
-- its overrides (--set values).  The same list is what `batch` runs here, what
-- a Slurm array runs task by task (the task list, one line per run) and what
-- `gather` expects to find, so a run writes the same folder wherever it ran.
local core = require "spillover.core"
local json = require "spillover.json"
local raise = require("spillover.util").raise

local M = {}

-- The batch's own folder under OUTROOT, never a scenario's output.
M.LOGS = "batch-logs"

--- The scenario files (*.yaml, *.yml) of folders and files, in the order given.
function M.scenario_files(paths)
  local S = core.sys
  local files = {}
  for _, p in ipairs(paths) do
    if S.isdir(p) then
      for _, name in ipairs(S.listdir(p)) do
        if name:match("%.ya?ml$") then files[#files + 1] = p:gsub("/$", "") .. "/" .. name end
      end
    else
      files[#files + 1] = p
    end
  end
  return files
end

-- One output name per file: its stem, or stem-2, stem-3, ... when the stem
-- is taken by an earlier file or is the logs folder (a/x.yaml and b/x.yaml
-- must not overwrite each other).  Unique stems are never renamed.
local function output_names(files)
  local count, taken, names = {}, { [M.LOGS] = true }, {}
  for i, f in ipairs(files) do
    names[i] = f:match("([^/]+)%.ya?ml$") or f:match("([^/]+)$")
    count[names[i]] = (count[names[i]] or 0) + 1
  end
  for _, stem in ipairs(names) do
    if count[stem] == 1 then taken[stem] = true end
  end
  for i, stem in ipairs(names) do
    if count[stem] > 1 or stem == M.LOGS then
      local name, k = stem, 1
      while taken[name] do k = k + 1; name = stem .. "-" .. k end
      taken[name] = true
      names[i] = name
    end
  end
  return names
end

--- The runs ({file =, name =, set =}) of scenario files with the same overrides.
function M.runs(files, set)
  local runs = {}
  for i, name in ipairs(output_names(files)) do runs[i] = { file = files[i], name = name, set = set } end
  return runs
end

--- Each run whose scenario has work to share out (sweeps, a specification
--- curve: spillover.parts) as n part runs ({part = {k, n}}) and the run that
--- assembles them ({parts = n}, its output the run's); other runs as they
--- are.  A scenario that does not load stays one run (which then says why).
function M.split(runs, n)
  local scenario = require "spillover.scenario"
  local out = {}
  for _, r in ipairs(runs) do
    local ok, s = pcall(scenario.load, r.file, r.set)
    if n > 1 and ok and scenario.splittable(s.spec) then
      for k = 1, n do out[#out + 1] = { file = r.file, name = r.name, set = r.set, part = { k, n } } end
      out[#out + 1] = { file = r.file, name = r.name, set = r.set, parts = n }
    else
      out[#out + 1] = r
    end
  end
  return out
end

--- The extra arguments of `spillover run` for a run: a part's --part K/N, an
--- assembly's --parts N.
function M.split_args(r)
  if r.part then return { "--part", r.part[1] .. "/" .. r.part[2] } end
  if r.parts then return { "--parts", tostring(r.parts) } end
  return {}
end

--- The name of a run's log in the logs folder.
function M.log_name(r)
  if r.part then return string.format("%s.part-%d-of-%d.log", r.name, r.part[1], r.part[2]) end
  return r.name .. ".log"
end

--- Write text to path (the task list, the sbatch script, gather's tables); errors name the file.
function M.write_file(path, text)
  local f, err = io.open(path, "wb")
  if not f then raise(err) end
  local ok, werr = f:write(text)
  if ok then ok, werr = f:close() else f:close() end
  if not ok then raise(path .. ": " .. tostring(werr)) end
end

-- ---- the task list -----------------------------------------------------------
-- One line per run: the array task that runs it ("-" when it was unchanged and
-- not submitted), the scenario file, the output name, then its --set values,
-- separated by tabs.  Paths are as given, relative to the folder the batch
-- was started in (the array's working folder).  The runs of a split scenario
-- end with @part=K/N (a part) or @parts=N (the assembly): --set values never
-- start with @.

local HEADER = "# spillover task list: task, scenario, output, --set values (tab-separated; task - = unchanged, not submitted)"

--- Deal the runs that have `todo` set into at most `size` array tasks,
--- contiguous and as even as can be (task ids from base, default 0);
--- returns the task count.
function M.pack(runs, size, base)
  local todo = {}
  for _, r in ipairs(runs) do
    r.task = nil
    if r.todo then todo[#todo + 1] = r end
  end
  local n = math.min(size, #todo)
  for i, r in ipairs(todo) do r.task = (base or 0) + (i - 1) * n // #todo end
  return n
end

--- The task list of runs, as text.
function M.tasks_text(runs)
  local lines = { HEADER }
  for _, r in ipairs(runs) do
    local cells = { r.task and tostring(r.task) or "-", r.file, r.name }
    for _, s in ipairs(r.set) do cells[#cells + 1] = s end
    if r.part then cells[#cells + 1] = string.format("@part=%d/%d", r.part[1], r.part[2]) end
    if r.parts then cells[#cells + 1] = "@parts=" .. r.parts end
    for _, c in ipairs(cells) do
      if c:find("[\t\n\r]") then raise("batch: a tab or line break in '" .. c .. "' cannot go into a task list") end
    end
    lines[#lines + 1] = table.concat(cells, "\t")
  end
  return table.concat(lines, "\n") .. "\n"
end

--- The runs of a task list (path "-": standard input); errors name the file and line.
function M.read_tasks(path)
  local f, err
  if path == "-" then f = io.stdin else f, err = io.open(path, "rb") end
  if not f then raise(err) end
  local runs, n = {}, 0
  for line in f:lines() do
    n = n + 1
    if line ~= "" and not line:match("^#") then
      local cells = {}
      for c in (line .. "\t"):gmatch("([^\t]*)\t") do cells[#cells + 1] = c end
      local task = cells[1] ~= "-" and math.tointeger(tonumber(cells[1]))
      if (not task and cells[1] ~= "-") or (task and task < 0) or #cells < 3 or cells[2] == "" or cells[3] == "" then
        if f ~= io.stdin then f:close() end
        raise(string.format("%s:%d: expected a task number or -, a scenario file and an output name, separated by tabs", path, n))
      end
      local set = { table.unpack(cells, 4) }
      local r, bad = { task = task or nil, file = cells[2], name = cells[3], set = set }, false
      local last = set[#set]
      if last and last:sub(1, 1) == "@" then
        set[#set] = nil
        local k, of = last:match("^@part=(%d+)/(%d+)$")
        k, of = math.tointeger(tonumber(k)), math.tointeger(tonumber(of))
        local parts = math.tointeger(tonumber(last:match("^@parts=(%d+)$")))
        if k and k >= 1 and k <= of then r.part = { k, of }
        elseif parts and parts >= 1 then r.parts = parts
        else bad = true end
      end
      for _, c in ipairs(set) do bad = bad or c:sub(1, 1) == "@" end
      if bad then
        if f ~= io.stdin then f:close() end
        raise(string.format("%s:%d: a split run's last column is @part=K/N (1 <= K <= N) or @parts=N, and only " ..
          "the last column starts with @", path, n))
      end
      runs[#runs + 1] = r
    end
  end
  if f ~= io.stdin then f:close() end
  return runs
end

-- ---- skipping unchanged runs ---------------------------------------------------

local function same_list(a, b)
  if type(a) ~= "table" or #a ~= #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] then return false end
  end
  return true
end

--- Whether the run's output in outdir is complete and was made from what the
--- run would read now: the same scenario file, every input (scenario, data,
--- plugins, map layout) with the SHA-256 its manifest records, the same
--- overrides and the same spillover version.  Returns true, or false and why.
function M.unchanged(run, outdir)
  local S = core.sys
  local ok, m = pcall(json.read, outdir .. "/manifest.json")
  if not ok or type(m) ~= "table" or type(m.inputs) ~= "table" then return false, "no output yet" end
  if m.spillover_version ~= core.version then
    return false, "made by spillover " .. tostring(m.spillover_version) .. ", this is " .. core.version
  end
  if not same_list(m.overrides, run.set) then return false, "made with other --set values" end
  if S.sha256_file(outdir .. "/results.json") ~= m.results_sha256 then return false, "results.json missing or changed" end
  local first = m.inputs[1]
  if type(first) ~= "table" or first.role ~= "scenario" or first.path ~= run.file then
    return false, "made from another scenario file"
  end
  for _, inp in ipairs(m.inputs) do
    if type(inp.path) ~= "string" or S.sha256_file(inp.path) ~= inp.sha256 then
      return false, tostring(inp.path) .. " changed"
    end
  end
  return true
end

return M
