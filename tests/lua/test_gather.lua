-- test_gather: batches as Slurm job arrays without a cluster.  `batch --slurm
-- --dry-run` writes the task list and the sbatch script; the script is then
-- run by bash once per array task, as Slurm would, and every run's
-- results.json must be byte-identical to a local `batch -j 2` and a plain
-- `run`.  Then gather (long table, missing and failed runs, --resubmit),
-- skipping of unchanged runs, a stand-in sbatch for the submission, and the
-- errors of bad command lines.  test_batch_slurm does the same on a real
-- one-node cluster.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local S, json = sp.sys, sp.json
local read, write = T.read, T.write
local exe = S.realpath(arg[-1] or "build/spillover")
local dir = assert(S.mkdtemp("/tmp/sp-gather-"))

local sh = T.runner(dir, 120)
local function cli(...) return sh({ exe, ... }) end

-- Scenarios: two with parameter draws (their seed matters), one that fails.
local data = dir .. "/produc.csv"
write(data, read("scenarios/data/Produc.csv"))
local function scenario(name, seed)
  return string.format([[
name: %s
seed: %d
data: {file: %s, entity: state, time: year}
models:
  fe:
    estimator: ols
    formula: log_gsp ~ log_pcap + log_pc + unemp | state + year
experiments:
  south:
    model: fe
    shock: {variable: log_pcap, where: "region >= 5 and region <= 7", from: 1980, change: "+0.1"}
    groups: [region]
    draws: 20
report:
  formats: [md, csv]
]], name, seed, data)
end
local sc = dir .. "/scen"
S.mkdir(sc)
write(sc .. "/alpha.yaml", scenario("alpha", 11))
write(sc .. "/beta.yaml", scenario("beta", 12))
write(sc .. "/gamma.yaml", scenario("gamma", 13))
write(sc .. "/bad.yaml", (scenario("bad", 1):gsub("estimator: ols", "estimator: nope")))
local names = { "alpha", "beta", "gamma" }

-- ---- reference: a local batch, and one plain run ------------------------------
local code, out = cli("batch", sc, "-j", "2", "-o", dir .. "/local")
T.check(code == 1 and out:find("4 scenarios, 1 failed, 0 unchanged"), "local batch: three ok, bad fails", out)
code = cli("run", sc .. "/beta.yaml", "-o", dir .. "/plain_beta", "--quiet")
T.check(code == 0 and read(dir .. "/plain_beta/results.json") == read(dir .. "/local/beta/results.json"),
  "a plain run and a batch run write the same results.json")

-- ---- the array, written and not submitted --------------------------------------
local arr = dir .. "/arr"
code, out = cli("batch", sc, "--slurm", "--dry-run", "--array-size", "2", "--partition", "short", "--time", "0:10:00",
  "-o", arr)
local list, script = arr .. "/batch-logs/tasks.tsv", arr .. "/batch-logs/tasks.sbatch"
T.check(code == 0 and out:find("4 runs in 2 array tasks", 1, true) and out:find("sbatch " .. script, 1, true),
  "--dry-run writes the array and says how to submit it", out)
local lines = {}
for l in (read(list) or ""):gmatch("[^\n]+") do
  if not l:match("^#") then lines[#lines + 1] = l end
end
T.check(#lines == 4 and lines[1] == "0\t" .. sc .. "/alpha.yaml\talpha" and lines[2]:match("^0\t.*bad%.yaml\tbad$")
  and lines[3]:match("^1\t.*beta%.yaml\tbeta$") and lines[4]:match("^1\t.*gamma%.yaml\tgamma$"),
  "task list: one line per run, packed in order into two tasks", read(list))
local text = read(script) or ""
for _, want in ipairs({ "#SBATCH --array=0-1\n", "#SBATCH --partition=short\n", "#SBATCH --time=0:10:00\n",
  "#SBATCH --chdir=" .. S.realpath(".") .. "\n", "#SBATCH --output=" .. arr .. "/batch-logs/slurm-%A_%a.out\n",
  "exec '" .. exe .. "' batch --tasks - --task \"$SLURM_ARRAY_TASK_ID\" -o '" .. arr .. "' <<'SPILLOVER_TASKS'\n"
    .. read(list) .. "SPILLOVER_TASKS\n" }) do
  T.check(text:find(want, 1, true), "sbatch script has " .. want:gsub("\n.*", ""), text)
end

-- Task 0 only: gather finds task 1's runs missing and bad failed.
code, out = sh({ "/usr/bin/env", "SLURM_ARRAY_TASK_ID=0", "/bin/bash", script })
T.check(code == 1 and out:find("2 scenarios, 1 failed"), "array task 0 runs alpha and bad", out)
code, out = cli("gather", arr)
T.check(code == 1 and out:find("4 runs: 1 ok, 1 failed, 2 missing, 0 stale", 1, true), "gather counts what is there", out)
T.check(out:find("bad%s+failed%s+task 0%s+.*estimator 'nope'") and out:find("beta%s+missing%s+task 1")
  and out:find("gamma%s+missing%s+task 1"), "gather names the failed run (with its error) and the missing ones", out)
code, out = cli("gather", arr, "--resubmit", "--dry-run", "--array-size", "5")
local re = read(arr .. "/batch-logs/tasks-resubmit.tsv") or ""
T.check(out:find("3 runs in 3 array tasks", 1, true) and re:find("\n%-\t[^\n]*alpha%.yaml\talpha\n")
  and re:find("\n0\t[^\n]*bad%.yaml\tbad\n") and re:find("\n1\t[^\n]*beta%.yaml\tbeta\n")
  and re:find("\n2\t[^\n]*gamma%.yaml\tgamma\n") and (read(arr .. "/batch-logs/tasks-resubmit.sbatch") or ""):find(
    "<<'SPILLOVER_TASKS'\n" .. re .. "SPILLOVER_TASKS\n", 1, true),
  "gather --resubmit writes an array of just the runs that are not ok", out .. re)

-- A later batch into the same OUTROOT rewrites tasks.tsv; the array keeps its own list.
S.rename(list, list .. ".saved")
write(list, "0\t" .. sc .. "/gamma.yaml\tgamma\n1\t" .. sc .. "/alpha.yaml\talpha\n")
-- Task 1: now every run is there, byte for byte as the local batch wrote it.
code, out = sh({ "/usr/bin/env", "SLURM_ARRAY_TASK_ID=1", "/bin/bash", script })
T.check(code == 0 and out:find("beta%.yaml%s+ok") and out:find("gamma%.yaml%s+ok") and out:find("2 scenarios, 0 failed"),
  "array task 1 runs beta and gamma (its own list, whatever tasks.tsv says now)", out)
S.rename(list .. ".saved", list)
for _, name in ipairs(names) do
  local a, b = read(arr .. "/" .. name .. "/results.json"), read(dir .. "/local/" .. name .. "/results.json")
  T.check(a and a == b, name .. ": results.json of the array task = local batch -j 2, byte for byte")
end
-- Another packing (three tasks) gives the same bytes: nothing depends on the task.
local arr3 = dir .. "/arr3"
cli("batch", sc, "--slurm", "--dry-run", "--array-size", "3", "-o", arr3)
for t = 0, 2 do sh({ "/usr/bin/env", "SLURM_ARRAY_TASK_ID=" .. t, "/bin/bash", arr3 .. "/batch-logs/tasks.sbatch" }) end
for _, name in ipairs(names) do
  T.check(read(arr3 .. "/" .. name .. "/results.json") == read(dir .. "/local/" .. name .. "/results.json"),
    name .. ": same results.json from an array of 3 tasks")
end

-- A task list written by hand: one scenario at two --set values (as the points
-- of a sweep would be), resubmitted with --tasks --slurm, and each the same as a
-- plain run with those values.
local hand = write(dir .. "/hand.tsv", string.format("0\t%s/alpha.yaml\talpha30\texperiments.south.draws=30\n" ..
  "0\t%s/alpha.yaml\talpha40\texperiments.south.draws=40\tseed=5\n", sc, sc))
code, out = cli("batch", "--tasks", hand, "--slurm", "--dry-run", "-o", dir .. "/hand")
T.check(code == 0 and out:find("2 runs in 2 array tasks", 1, true), "a hand-written task list is repacked and written", out)
for t = 0, 1 do sh({ "/usr/bin/env", "SLURM_ARRAY_TASK_ID=" .. t, "/bin/bash", dir .. "/hand/batch-logs/tasks.sbatch" }) end
cli("run", sc .. "/alpha.yaml", "-o", dir .. "/plain40", "--set", "experiments.south.draws=40", "--set", "seed=5")
local r40 = json.read(dir .. "/hand/alpha40/results.json")
T.check(r40.experiments.south.draws == 40 and r40.seed == 5 and read(dir .. "/hand/alpha40/results.json")
  == read(dir .. "/plain40/results.json") and json.read(dir .. "/hand/alpha30/results.json").experiments.south.draws == 30,
  "each line's --set values reach its run; results.json = a plain run with them")

-- ---- gather: the long table and the merged results.json ------------------------
code, out = cli("gather", arr)
T.check(code == 1 and out:find("4 runs: 3 ok, 1 failed, 0 missing, 0 stale", 1, true), "gather after task 1", out)
local csv = read(arr .. "/results.csv") or ""
local merged = json.read(arr .. "/results.json")
local beta = json.read(dir .. "/local/beta/results.json")
T.check(csv:sub(1, 22) == "run,scenario,key,value", "long table header", csv:sub(1, 40))
local coef = beta.models.fe.coef.log_pcap
T.check(csv:find("\nbeta,beta,models.fe.coef.log_pcap," .. json.number(coef) .. "\n", 1, true),
  "long table: one row per number, keyed by its path in results.json")
local sum = beta.experiments.south.groups.all.total.sum
T.check(csv:find("\nbeta,beta,experiments.south.groups.all.total.sum," .. json.number(sum) .. "\n", 1, true),
  "long table: the experiment's effects too")
T.check(merged.runs.beta.results.models.fe.coef.log_pcap == coef and merged.runs.beta.status == "ok"
  and merged.runs.bad.status == "failed" and merged.runs.bad.results == nil and merged.runs.gamma.task == 1,
  "merged results.json: each run's results, status and task")
local nrows = select(2, csv:gsub("\nalpha,", ""))
T.check(nrows > 50 and not csv:find("\nbad,"), "the failed run has no rows; alpha has " .. nrows)
-- gather of a local batch (no task list): its output folders
code, out = cli("gather", dir .. "/local")
T.check(code == 0 and out:find("3 runs: 3 ok", 1, true), "gather of a local batch finds its output folders", out)

-- ---- unchanged runs are skipped --------------------------------------------------
local function mtime(p)
  local f = io.popen("stat -c %Y.%y '" .. p .. "'")
  local s = f:read("l")
  f:close()
  return s
end
local before = mtime(dir .. "/local/alpha/results.json")
code, out = cli("batch", sc .. "/alpha.yaml", sc .. "/beta.yaml", "-o", dir .. "/local")
T.check(code == 0 and out:find("alpha%.yaml%s+unchanged") and out:find("2 scenarios, 0 failed, 2 unchanged"),
  "a second batch skips runs whose inputs are unchanged", out)
T.check(mtime(dir .. "/local/alpha/results.json") == before, "and leaves their output alone")
code, out = cli("batch", sc .. "/alpha.yaml", "-o", dir .. "/local", "--force")
T.check(code == 0 and out:find("alpha%.yaml%s+ok"), "--force runs it again", out)
code, out = cli("batch", sc .. "/alpha.yaml", "-o", dir .. "/local", "--set", "experiments.south.draws=40")
T.check(code == 0 and out:find("alpha%.yaml%s+ok"), "other --set values: run again", out)
code, out = cli("batch", sc .. "/alpha.yaml", "-o", dir .. "/local", "--set", "experiments.south.draws=40")
T.check(code == 0 and out:find("alpha%.yaml%s+unchanged"), "the same --set values: unchanged", out)
write(sc .. "/alpha.yaml", scenario("alpha", 11) .. "# edited\n")
code, out = cli("batch", sc .. "/alpha.yaml", "-o", dir .. "/local", "--set", "experiments.south.draws=40")
T.check(code == 0 and out:find("alpha%.yaml%s+ok"), "an edited scenario: run again", out)
code, out = cli("batch", sc .. "/gamma.yaml", "--slurm", "--dry-run", "-o", dir .. "/local")
T.check(code == 0 and out:find("nothing to submit: the 1 runs are unchanged", 1, true), "an array of unchanged runs: nothing", out)
code, out = cli("batch", sc .. "/gamma.yaml", "--slurm", "--dry-run", "--force", "-o", dir .. "/local")
T.check(code == 0 and out:find("1 runs in 1 array tasks", 1, true)
  and (read(dir .. "/local/batch-logs/tasks.sbatch") or ""):find(" --force <<'SPILLOVER_TASKS'\n", 1, true), "--slurm --force: the tasks run it too", out)
write(data, read("scenarios/data/Produc.csv") .. "\n")
code, out = cli("batch", sc .. "/beta.yaml", "-o", dir .. "/local")
T.check(code == 0 and out:find("beta%.yaml%s+ok"), "changed data: run again", out)
-- The other conditions, through the module.
local batch = require "spillover.batch"
local run = { file = sc .. "/beta.yaml", name = "beta", set = {} }
T.check(batch.unchanged(run, dir .. "/local/beta") == true, "unchanged: beta as it was just run")
local m = json.read(dir .. "/local/beta/manifest.json")
local mtext = read(dir .. "/local/beta/manifest.json")
write(dir .. "/local/beta/manifest.json", (mtext:gsub('"spillover_version": "[^"]*"', '"spillover_version": "0.0.1"')))
local ok, why = batch.unchanged(run, dir .. "/local/beta")
T.check(ok == false and why:find("made by spillover 0.0.1"), "another spillover version: changed", why)
write(dir .. "/local/beta/manifest.json", mtext)
write(dir .. "/local/beta/results.json", "{}\n")
ok, why = batch.unchanged(run, dir .. "/local/beta")
T.check(ok == false and why == "results.json missing or changed", "a damaged results.json: changed", why)
T.check(m.inputs[2].role == "data" and m.inputs[2].path == data, "the manifest's inputs are what is compared")
-- Stale outputs show in gather.
code, out = cli("gather", dir .. "/local")
T.check(code == 1 and out:find("beta%s+stale%s+task %-%s+results.json missing or changed"), "gather: stale output", out)

-- ---- submitting: a stand-in sbatch records what it was given ----------------------
local bin = dir .. "/bin"
S.mkdir(bin)
write(bin .. "/sbatch", "#!/bin/sh\necho \"$@\" > " .. dir .. "/sbatch.args\necho '4242;cluster'\n")
S.chmod(bin .. "/sbatch", tonumber("755", 8))
code, out = sh({ "/usr/bin/env", "PATH=" .. bin .. ":/usr/bin:/bin", exe, "batch", sc, "--slurm", "-o", dir .. "/sub" })
T.check(code == 0 and out:find("submitted job 4242: 4 runs in 4 array tasks", 1, true), "batch --slurm prints the job id", out)
T.check(read(dir .. "/sbatch.args") == "--parsable " .. dir .. "/sub/batch-logs/tasks.sbatch\n", "sbatch got the script")
write(bin .. "/sbatch", "#!/bin/sh\necho 'sbatch: error: invalid partition specified: nope' >&2\nexit 1\n")
local err
code, _, err = sh({ "/usr/bin/env", "PATH=" .. bin .. ":/usr/bin:/bin", exe, "batch", sc, "--slurm", "-o", dir .. "/sub2" })
T.check(code == 1 and err:find("failed: sbatch: error: invalid partition specified: nope", 1, true), "sbatch's refusal is shown", err)

-- ---- bad command lines ---------------------------------------------------------------
local function refused(what, pattern, argv, env)
  local c, _, e = sh(env and { "/usr/bin/env", env, exe, table.unpack(argv) } or { exe, table.unpack(argv) })
  T.check(c == 1 and e:find(pattern, 1, true) and not e:find("%.lua:%d+:"), what, e)
end
refused("no sbatch on PATH", "spillover: sbatch is not on PATH", { "batch", sc, "--slurm", "-o", dir .. "/nosb" },
  "PATH=" .. dir .. "/empty")
T.check(not S.exists(dir .. "/nosb/batch-logs/tasks.sbatch"), "and nothing is written")
refused("gather without OUTROOT", "gather: give one OUTROOT (the -o folder of a batch)", { "gather" })
refused("gather of no folder", "gather: no folder '" .. dir .. "/nope'", { "gather", dir .. "/nope" })
refused("gather of an empty folder", "gather: no runs under", { "gather", bin })
refused("gather's unknown option", "unknown option '--bogus' for gather", { "gather", arr, "--bogus" })
refused("gather takes no --set", "unknown option '--set' for gather", { "gather", arr, "--set", "a=1" })
refused("--partition without --resubmit", "go with --resubmit", { "gather", arr, "--partition", "x" })
refused("--array-size 0", "--array-size needs a whole number >= 1, got '0'", { "batch", sc, "--slurm", "--array-size", "0" })
refused("--time without --slurm", "go with --slurm", { "batch", sc, "--time", "1:00" })
refused("--task without --tasks", "--task needs --tasks", { "batch", "--task", "0" })
refused("--task -1", "--task needs a whole number >= 0, got '-1'", { "batch", "--tasks", list, "--task", "-1" })
refused("a task with no runs", "has no runs for task 9", { "batch", "--tasks", list, "--task", "9", "-o", arr })
do
  local c, _, e = sh({ "/bin/sh", "-c", 'exec "$0" batch --tasks - --task 9 -o "$1" < "$2"', exe, arr, list })
  T.check(c == 1 and e:find("batch: the task list has no runs for task 9", 1, true), "a task with no runs (list on stdin)", e)
end
refused("--tasks with files", "give no files or --set with it", { "batch", "--tasks", list, sc })
refused("--task with --slurm", "--slurm submits the whole list", { "batch", "--tasks", list, "--task", "0", "--slurm" })
write(dir .. "/broken.tsv", "x\tfoo.yaml\n")
refused("a broken task list", dir .. "/broken.tsv:1: expected a task number or -, a scenario file and an output name",
  { "batch", "--tasks", dir .. "/broken.tsv" })

S.remove_tree(dir)
T.done()
