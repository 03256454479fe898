-- spillover.gather: a batch's outputs in one long table, and the runs that
-- are not there.  The runs are those of OUTROOT/batch-logs/tasks.tsv (the
-- last Slurm batch into OUTROOT), and every other output folder under OUTROOT.
local core = require "spillover.core"
local json = require "spillover.json"
local batch = require "spillover.batch"
local parts = require "spillover.parts"
local util = require "spillover.util"
local raise = util.raise

local M = {}

-- Add to runs those whose output folders are under outroot and not listed
-- yet, as their manifests name them.
local function add_found(outroot, runs)
  local S = core.sys
  local listed = {}
  for _, r in ipairs(runs) do listed[r.name] = true end
  for _, name in ipairs(S.listdir(outroot) or {}) do
    local dir = outroot .. "/" .. name
    if name ~= batch.LOGS and not listed[name] and S.isfile(dir .. "/manifest.json") then
      local ok, m = pcall(json.read, dir .. "/manifest.json")
      local first = ok and type(m) == "table" and type(m.inputs) == "table" and m.inputs[1]
      if type(first) == "table" and type(first.path) == "string" then
        local set = {}
        for i, s in ipairs(type(m.overrides) == "table" and m.overrides or {}) do set[i] = tostring(s) end
        runs[#runs + 1] = { file = first.path, name = name, set = set }
      end
    end
  end
  return runs
end

-- The last non-blank line of a run's log: what a failed run said.
local function last_words(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local last
  for line in f:lines() do
    if line:find("%S") then last = line end
  end
  f:close()
  return last
end

-- The runs of a task list, the parts of a split run (@part=K/N lines) as
-- run.part_runs of the run that assembles them.
local function with_parts(list)
  local runs, assembly = {}, {}
  for _, r in ipairs(list) do
    if not r.part then
      runs[#runs + 1] = r
      if r.parts then r.part_runs, assembly[r.name] = {}, r end
    end
  end
  for _, r in ipairs(list) do
    local a = r.part and assembly[r.name]
    if a then a.part_runs[#a.part_runs + 1] = r end
  end
  return runs
end

--- Where each run of outroot stands: run.status is "ok" (its output is
--- complete and its inputs unchanged), "stale" (an output made from other
--- inputs), "failed" (no output, and its log says why) or "missing" (no
--- output, no log: not run yet, or its array task never started); run.detail
--- says more.  A split run is one run; run.part_runs are its parts, each
--- with .done when its part file is there.  Returns the runs.
function M.status(outroot)
  local S = core.sys
  if not S.isdir(outroot) then raise("gather: no folder '" .. outroot .. "' (give the OUTROOT of a batch)") end
  local list = outroot .. "/" .. batch.LOGS .. "/tasks.tsv"
  local runs = add_found(outroot, with_parts(S.isfile(list) and batch.read_tasks(list) or {}))
  for _, r in ipairs(runs) do
    local outdir = outroot .. "/" .. r.name
    local ok, why = batch.unchanged(r, outdir)
    if ok then
      r.status, r.detail = "ok", outdir .. "/"
    elseif S.isfile(outdir .. "/manifest.json") then
      r.status, r.detail = "stale", why
    else
      local said = last_words(outroot .. "/" .. batch.LOGS .. "/" .. batch.log_name(r))
      local waiting = {}
      for _, p in ipairs(r.part_runs or {}) do
        p.done = S.isfile(parts.file(parts.dir(outdir), p.part[1], p.part[2]))
        if not p.done then waiting[#waiting + 1] = string.format("%d (task %s)", p.part[1], p.task or "-") end
      end
      if said then
        r.status, r.detail = "failed", said
      elseif #waiting > 0 then
        r.status, r.detail = "missing", string.format("parts %s of %d not computed (see their logs in %s/)",
          table.concat(waiting, ", "), r.parts, batch.LOGS)
      elseif r.part_runs then
        r.status, r.detail = "missing", string.format("its %d parts are computed, their assembly (task %s) has not run",
          r.parts, r.task or "-")
      else
        r.status, r.detail = "missing", "no output and no log"
      end
    end
  end
  return runs
end

-- Rows {key =, value =} of every scalar under v, keyed by its path
-- (experiments.x.groups.all.total.sum; list items by their 1-based index).
local function flatten(v, key, rows)
  if type(v) == "table" and v ~= json.null then
    for _, k in ipairs(util.sorted_keys(v)) do flatten(v[k], key == "" and tostring(k) or key .. "." .. tostring(k), rows) end
  elseif v ~= json.null then
    rows[#rows + 1] = { key = key, value = v }
  end
end

--- Merge the results.json of the runs that are ok into one long table (run,
--- scenario, key, value: one row per number or label) and one results.json
--- ({runs = {name = {scenario, status, detail, task, set, results}}}), written
--- to outroot/results.csv and outroot/results.json.  Returns their paths.
function M.merge(outroot, runs)
  local report = require "spillover.report"
  local rows, merged = {}, {}
  for _, r in ipairs(runs) do
    local entry = { scenario = r.file, status = r.status, detail = r.detail, task = r.task,
      set = json.array({ table.unpack(r.set) }) }
    if r.status == "ok" then
      entry.results = json.read(outroot .. "/" .. r.name .. "/results.json")
      local flat = {}
      flatten(entry.results, "", flat)
      for _, row in ipairs(flat) do
        row.run, row.scenario = r.name, entry.results.scenario
        rows[#rows + 1] = row
      end
    end
    merged[r.name] = entry
  end
  local csv_path, json_path = outroot .. "/results.csv", outroot .. "/results.json"
  local write = batch.write_file
  write(csv_path, report.csv(rows, { "run", "scenario", "key", "value" }))
  write(json_path, json.encode({ runs = merged }, { indent = "  " }) .. "\n")
  return csv_path, json_path
end

return M
