-- test_batch_slurm: the bundled scenarios as a job array on a real Slurm
-- cluster (in CI, the one-node cluster of .ci/slurm-up.sh), those with a
-- sweep or a specification curve split in two parts and put together by a
-- second array that waits for the first (--split 2), gathered and compared
-- byte for byte with a local `batch -j 2`.  Without sbatch, or with
-- no node up, it exits 77, which ctest reports as skipped.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local S = sp.sys
local read = T.read
local exe = S.realpath(arg[-1] or "build/spillover")

local function capture(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  return out, p:close()
end
local function skip(why)
  print("SKIP test_batch_slurm: " .. why .. " (CI starts a one-node cluster with .ci/slurm-up.sh)")
  os.exit(77)
end
if not capture("command -v sbatch"):find("sbatch") then skip("sbatch is not on PATH") end
local states, up = capture("sinfo -h -o %T")
if not up or not (states:find("idle") or states:find("mixed") or states:find("allocated")) then
  skip("no Slurm node is up (sinfo says: " .. states:gsub("%s+$", "") .. ")")
end

local dir = assert(S.mkdtemp("/tmp/sp-slurm-"))
local function sleep(t) S.wait(S.spawn({ "/bin/sleep", tostring(t) })) end

-- Submit first, then run the local batch while the array runs.
local out, ok = capture(string.format("'%s' batch scenarios --slurm --split 2 --array-size 4 -o %s/arr", exe, dir))
local job, job2 = out:match("submitted job (%d+): "), out:match("the assemblies are job (%d+) ")
local nsplit = tonumber(out:match("; (%d+) of them split into parts"))
T.check(ok and job and job2 and nsplit and nsplit >= 2 and out:find(string.format("runs in %d array tasks", 4 + nsplit), 1, true),
  "batch --slurm --split 2 submits the runs and parts as 4 array tasks and the assemblies as a second array", out)
local local_out, local_ok = capture(string.format("'%s' batch scenarios -j 2 -o %s/local", exe, dir))
T.check(local_ok and local_out:find(" 0 failed"), "local batch -j 2", local_out)

-- Wait for the array to leave the queue (a hang guard, not a timing check).
local deadline, left = S.now() + 900, nil
repeat
  left = job and job2 and capture("squeue -h -j " .. job .. "," .. job2 .. " -o %i"):find("%d")
  if left then sleep(2) end
until not left or S.now() > deadline
if left then capture("scancel " .. job .. " " .. job2) end
T.check(job and not left, "both arrays finished")

local logs, logs2 = 0, 0
for _, name in ipairs(S.listdir(dir .. "/arr/batch-logs") or {}) do
  if job and name:match("^slurm%-" .. job .. "_%d+%.out$") then logs = logs + 1 end
  if job2 and name:match("^slurm%-" .. job2 .. "_%d+%.out$") then logs2 = logs2 + 1 end
end
T.check(logs == 4 and logs2 == nsplit, "each array task wrote its Slurm log", logs .. " and " .. logs2)

local gout, gok = capture(string.format("'%s' gather %s/arr", exe, dir))
local nscen = 0
for _, name in ipairs(S.listdir("scenarios")) do
  if name:match("%.yaml$") then nscen = nscen + 1 end
end
T.check(gok and gout:find(string.format("%d runs: %d ok, 0 failed, 0 missing, 0 stale", nscen, nscen), 1, true),
  "gather: every bundled scenario ran", gout)
for _, name in ipairs(S.listdir("scenarios")) do
  local stem = name:match("^(.*)%.yaml$")
  if stem then
    local a, b = read(dir .. "/arr/" .. stem .. "/results.json"), read(dir .. "/local/" .. stem .. "/results.json")
    T.check(a and a == b, stem .. ": results.json from the array = local batch, byte for byte")
  end
end
S.remove_tree(dir)
T.done()
