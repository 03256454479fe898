-- spillover.slurm: a batch's task list as a Slurm job array.
-- The sbatch script runs `spillover batch --tasks - --task $SLURM_ARRAY_TASK_ID`
-- with the task list inline, so an array task runs its runs exactly as a
-- local batch would (same `spillover run` children, same output folders, same
-- skipping of unchanged runs); nothing in a run depends on the task that ran
-- it.  sbatch keeps the script as it was submitted, so a later batch into the
-- same OUTROOT, which rewrites tasks.tsv, cannot change what a queued array runs.
local core = require "spillover.core"
local raise = require("spillover.util").raise

local M = {}

-- Slurm's default MaxArraySize is 1001 (task ids 0..1000).
M.MAX_ARRAY = 1000

local function quote(s) return "'" .. s:gsub("'", [['\'']]) .. "'" end

local function absolute(path)
  local real, err = core.sys.realpath(path)
  if not real then raise("batch: " .. tostring(err)) end
  return real
end

--- The sbatch script of an array of the tasks o.first..o.last of the task
--- list o.list (its text; o.copy is where it was written too), writing under
--- o.outroot.
--- o.partition, o.time (sbatch --time), o.trust, o.timeout (seconds per run)
--- and o.force (run unchanged runs too) are passed on.  Paths are made
--- absolute, and the array runs in the folder this process runs in, so
--- relative scenario paths mean the same there (on a cluster, that folder
--- must be shared).
function M.script(o)
  local outroot = absolute(o.outroot)
  local lines = {
    "#!/bin/bash",
    "# Written by spillover: array task i runs the lines of the task list at the end whose first",
    "# column is i (a copy is " .. absolute(o.copy) .. ").",
    "#SBATCH --job-name=spillover",
    string.format("#SBATCH --array=%d-%d", o.first, o.last),
    "#SBATCH --ntasks=1",
    "#SBATCH --cpus-per-task=1",
    "#SBATCH --chdir=" .. absolute("."),
    "#SBATCH --output=" .. outroot .. "/batch-logs/slurm-%A_%a.out",
  }
  if o.partition then lines[#lines + 1] = "#SBATCH --partition=" .. o.partition end
  if o.time then lines[#lines + 1] = "#SBATCH --time=" .. o.time end
  local cmd = { quote(absolute("/proc/self/exe")), "batch", "--tasks", "-",
    "--task", '"$SLURM_ARRAY_TASK_ID"', "-o", quote(outroot) }
  if o.trust then cmd[#cmd + 1] = "--trust" end
  if o.force then cmd[#cmd + 1] = "--force" end
  if o.timeout then cmd[#cmd + 1] = "--timeout " .. string.format("%.17g", o.timeout) end
  -- Every line of the list has a tab (and none has a line break), so none
  -- ends the here-document early.
  lines[#lines + 1] = "exec " .. table.concat(cmd, " ") .. " <<'SPILLOVER_TASKS'"
  for _, l in ipairs(lines) do
    if l:find("\n") then raise("batch: a line break in '" .. l .. "' cannot go into an sbatch script") end
  end
  return table.concat(lines, "\n") .. "\n" .. o.list .. "SPILLOVER_TASKS\n"
end

--- The path of sbatch on PATH; raises when there is none.
function M.sbatch()
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local p = dir .. "/sbatch"
    if core.sys.isfile(p) then return p end
  end
  raise("sbatch is not on PATH: Slurm's commands are needed to submit (--dry-run only writes the script)")
end

--- Submit an sbatch script, to start when the job `after` has ended (its
--- tasks ok or not: afterany) if given; returns the job id.
function M.submit(script, after)
  local sbatch = M.sbatch()
  local dep = after and " --dependency=afterany:" .. after or ""
  local p = assert(io.popen(quote(sbatch) .. " --parsable" .. dep .. " " .. quote(script) .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  -- --parsable prints "jobid" or "jobid;cluster"
  local id = out:match("^(%d+)[;\n]")
  if not ok or not id then raise("sbatch " .. script .. " failed: " .. out:gsub("%s+$", "")) end
  return id
end

return M
