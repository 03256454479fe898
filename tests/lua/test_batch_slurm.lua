-- test_batch_slurm: the bundled scenarios as a job array on a real Slurm
-- cluster (in CI, the one-node cluster of .ci/slurm-up.sh), gathered and
-- compared byte for byte with a local `batch -j 2`.  Without sbatch, or with
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
local out, ok = capture(string.format("'%s' batch scenarios --slurm --array-size 4 -o %s/arr", exe, dir))
local job = out:match("submitted job (%d+): ")
T.check(ok and job and out:find("runs in 4 array tasks"), "batch --slurm submits the bundled scenarios as 4 array tasks", out)
local local_out, local_ok = capture(string.format("'%s' batch scenarios -j 2 -o %s/local", exe, dir))
T.check(local_ok and local_out:find(" 0 failed"), "local batch -j 2", local_out)

-- Wait for the array to leave the queue (a hang guard, not a timing check).
local deadline, left = S.now() + 900, nil
repeat
  left = job and capture("squeue -h -j " .. job .. " -o %i"):find("%d")
  if left then sleep(2) end
until not left or S.now() > deadline
if left then capture("scancel " .. job) end
T.check(job and not left, "the array finished")

local logs = 0
for _, name in ipairs(S.listdir(dir .. "/arr/batch-logs") or {}) do
  if job and name:match("^slurm%-" .. job .. "_%d+%.out$") then logs = logs + 1 end
end
T.check(logs == 4, "each of the 4 array tasks wrote its Slurm log", tostring(logs))

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
