-- test_parts: a run split into parts (spillover.parts).  The points of a
-- sweep and the cells of a specification curve computed by other processes
-- (`run -j N`, `run --part K/N` then `run --parts N`, `batch --split N`,
-- array tasks) must give the output of one process byte for byte; records
-- must cross a part file exactly; parts of other inputs, missing parts and
-- damaged files are refused with the file named; gather says which parts
-- are missing and --resubmit sends only what is needed.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local parts = require "spillover.parts"
local S = sp.sys
local read, write = T.read, T.write
local exe = S.realpath(arg[-1] or "build/spillover")
local dir = assert(S.mkdtemp("/tmp/sp-parts-"))

local sh = T.runner(dir, 300)
local function cli(...) return sh({ exe, ... }) end

-- Every file of two output folders the same, byte for byte (the manifest
-- and the log hold timings).
local function same_output(a, b)
  local names = S.listdir(a) or {}
  local other = S.listdir(b) or {}
  if #names == 0 or #names ~= #other then return false, #names .. " files against " .. #other end
  for _, f in ipairs(names) do
    if f ~= "manifest.json" and f ~= "run.log" and read(a .. "/" .. f) ~= read(b .. "/" .. f) then
      return false, f .. " differs"
    end
  end
  return true
end

-- ---- records cross a part file exactly -------------------------------------------
local function bits(x) return math.type(x) .. string.pack("<d", x) end
local values = { 0.1, -0.0, 0.0, 1 / 3, 5e-324, 2.0, 2, math.maxinteger, math.huge, -math.huge, 1e308 }
local stamp = { inputs = { { path = "a.yaml", sha256 = "00ff" } }, overrides = { "seed=3" }, version = "x" }
local function record(i)
  return { value = values[i], nan = 0 / 0, label = "é \"q\"\n\t" .. i, flag = i % 2 == 0,
    nested = { [3] = "three", [10] = { 1.5, 2 }, name = "n" } }
end
local pdir = dir .. "/rec.parts"
for k = 1, 3 do
  local part = parts.part(k, 3, stamp)
  T.check(parts.map(part, "list", #values, record) == nil, "a part computes its block and returns nil")
  parts.write(part, pdir)
end
local got = parts.map(parts.assembly(pdir, 3, stamp), "list", #values, function() error("computed again") end)
local exact = #got == #values
for i, r in ipairs(got) do
  local want = record(i)
  exact = exact and bits(r.value) == bits(want.value) and r.nan ~= r.nan and r.label == want.label
    and r.flag == want.flag and r.nested[3] == "three" and bits(r.nested[10][1]) == bits(1.5)
    and math.type(r.nested[10][2]) == "integer" and r.nested.name == "n"
end
T.check(exact, "records come back from the part files exactly: -0, NaN, infinities, subnormals, 2.0 against 2, keys")
-- a list of flat records goes by column: floats, integers, gaps, mixed types
local function table_rows(i)
  local rows = {}
  for j = 1, 4 do
    rows[j] = { x = values[(i + j) % #values + 1] + 0.0, k = j, s = "r" .. j, gap = j ~= 2 and 0.5 or nil,
      mixed = ({ 1.5, 2, "a", 0 / 0 })[j] }
  end
  return rows
end
local tdir = dir .. "/tab.parts"
for k = 1, 2 do
  local part = parts.part(k, 2, stamp)
  parts.map(part, "t", 3, table_rows)
  parts.write(part, tdir)
end
T.check(read(parts.file(tdir, 1, 2)):find('"c":[4,', 1, true), "a list of flat records is written by column")
exact = true
for i, rows in ipairs(parts.map(parts.assembly(tdir, 2, stamp), "t", 3, table_rows)) do
  local want = table_rows(i)
  for j = 1, 4 do
    local r, w = rows[j], want[j]
    exact = exact and bits(r.x) == bits(w.x) and math.type(r.k) == "integer" and r.k == j and r.s == w.s
      and r.gap == w.gap and (j == 4 and r.mixed ~= r.mixed or r.mixed == w.mixed)
      and math.type(r.mixed) == math.type(w.mixed)
  end
end
T.check(exact, "records by column come back exactly, gaps and mixed columns too")

T.checkerr("computed from other inputs", parts.assembly, pdir, 3, { inputs = {}, overrides = {}, version = "x" })
T.checkerr("parts 4, 5 of 5 missing", function()
  for k = 1, 3 do
    local part = parts.part(k, 5, stamp)
    parts.map(part, "list", 2, record)
    parts.write(part, pdir)
  end
  parts.assembly(pdir, 5, stamp)
end)
T.checkerr("its items of list are not items 1%-1 of 3", function()
  parts.map(parts.assembly(pdir, 3, stamp), "list", 3, record)  -- parts of 11 items, asked for 3
end)
local text = read(parts.file(pdir, 2, 3))
write(parts.file(pdir, 2, 3), (text:gsub('{"f":"[^"]*"}', '{"f":"1"}', 1)))
T.checkerr("2%-of%-3%.json: not a spillover part file", parts.assembly, pdir, 3, stamp)
write(parts.file(pdir, 2, 3), "[1, 2")
T.checkerr("2%-of%-3%.json", parts.assembly, pdir, 3, stamp)
T.checkerr("%-%-part needs K/N with 1 <= K <= N", parts.parse, "3/2")
T.checkerr("%-%-part needs K/N", parts.parse, "0/2")
T.checkerr("N <= 10000", parts.parse, "1/1000000000")

-- ---- a scenario with a sweep and a specification curve -----------------------------
local data = dir .. "/produc.csv"
write(data, read("scenarios/data/Produc.csv"))
local function scenario(grid)
  return string.format([[
name: split
seed: 7
data: {file: %s, entity: state, time: year}
models:
  fe:
    estimator: ols
    formula: log_gsp ~ log_pcap + log_pc + unemp | state + year
    vcov: {cluster: state}
experiments:
  south:
    model: fe
    shock: {variable: log_pcap, where: "region >= 5 and region <= 7", from: 1980, change: "+0.1"}
    sweep:
      grid: %s
    groups: [region]
    draws: 20
  west:
    model: fe
    shock: {variable: log_pcap, where: "region == 9", from: 1980, change: "+0.1"}
    draws: 20
spec_curve:
  outcomes: [log_gsp]
  treatments: [log_pcap]
  controls: {none: [], private: [log_pc]}
  fe: {two-way: [state, year], state: [state]}
  vcov: {cluster: {cluster: state}, hc1: hc1}
report:
  formats: [md, csv, svg]
]], data, grid)
end
local yaml = dir .. "/split.yaml"
local GRID = '{shock.change: ["+0.05", "+0.1", "+0.2"], shock.from: [1975, 1980]}'
write(yaml, scenario(GRID))

local code, out, err = cli("run", yaml, "-o", dir .. "/whole", "-q")
T.check(code == 0, "the whole run", err)
code, out, err = cli("run", yaml, "-o", dir .. "/j3", "-q", "-j", "3")
local same, why = same_output(dir .. "/whole", dir .. "/j3")
T.check(code == 0 and same, "run -j 3 writes the output of one process, byte for byte", why or err)
T.check(not S.exists(dir .. "/j3.parts"), "run -j leaves no part files behind")

for k = 1, 4 do
  code, out, err = cli("run", yaml, "-o", dir .. "/byhand", "--part", k .. "/4")
  T.check(code == 0 and out:find("part " .. k .. " of 4 in " .. dir .. "/byhand.parts/" .. k .. "-of-4.json", 1, true),
    "--part " .. k .. "/4 writes its file", out .. err)
end
T.check(not S.exists(dir .. "/byhand"), "a part writes no output folder")
code, out, err = cli("run", yaml, "-o", dir .. "/byhand", "--parts", "4", "--set", "seed=8")
T.check(code == 1 and err:find("1%-of%-4%.json: computed from other inputs"), "parts of other --set values are refused",
  err)
T.check(not S.exists(dir .. "/byhand"), "a refused assembly writes nothing")
code, out, err = cli("run", yaml, "-o", dir .. "/byhand", "--parts", "5")
T.check(code == 1 and err:find("parts 1, 2, 3, 4, 5 of 5 missing in " .. dir .. "/byhand.parts/", 1, true),
  "an assembly names the parts it lacks", err)
code, out, err = cli("run", yaml, "-o", dir .. "/byhand", "--parts", "4")
same, why = same_output(dir .. "/whole", dir .. "/byhand")
T.check(code == 0 and same, "--part 1/4 .. 4/4 then --parts 4 = one process, byte for byte", why or err)
T.check(not S.exists(dir .. "/byhand.parts"), "the assembly removes the part files it used")

code, out, err = cli("run", yaml, "-o", dir .. "/x", "-j", "2", "--parts", "2")
T.check(code == 1 and err:find("give one of %-j N, %-%-part K/N and %-%-parts N"), "-j with --parts is refused", err)
code, out, err = cli("run", yaml, "-o", dir .. "/x", "--parts", "1000000000")
T.check(code == 1 and err:find("%-%-parts needs a whole number >= 1 and <= 10000, got '1000000000'"),
  "--parts beyond the limit is refused at once", err)
code, out, err = cli("run", yaml, "-o", dir .. "/x", "--part", "2/1")
T.check(code == 1 and err:find("%-%-part needs K/N"), "--part 2/1 is refused", err)

-- A point that fails in one of the workers: the run fails, saying which
-- part and why, and leaves neither an output nor part files.
local bad = dir .. "/bad.yaml"
write(bad, scenario('{shock.where: ["region == 9", "region == 99"]}'))
code, out, err = cli("run", bad, "-o", dir .. "/bad", "-j", "2", "-q")
T.check(code == 1 and err:find("part 2 of 2: ") and err:find("selects no row") and not S.exists(dir .. "/bad")
  and not S.exists(dir .. "/bad.parts"), "a failing worker fails the run, named", err)
-- (part 1 runs in the calling process while the workers run the others)
write(bad, scenario('{shock.where: ["region == 99", "region == 9"]}'))
code, out, err = cli("run", bad, "-o", dir .. "/bad", "-j", "2", "-q")
T.check(code == 1 and err:find("part 1 of 2: ") and err:find("sweep point 1") and not S.exists(dir .. "/bad")
  and not S.exists(dir .. "/bad.parts"), "a failing part in the calling process fails the run, named", err)

-- ---- batches: --split locally and as an array ----------------------------------------
local sc = dir .. "/scen"
S.mkdir(sc)
write(sc .. "/split.yaml", scenario(GRID))
write(sc .. "/plain.yaml", (scenario(GRID):gsub("name: split", "name: plain"):gsub("\nspec_curve:.*\nreport:",
  "\nreport:"):gsub("    sweep:\n      grid: [^\n]*\n", "")))
code, out, err = cli("batch", sc, "--split", "3", "-j", "2", "-o", dir .. "/lb")
T.check(code == 0 and out:find("2 scenarios (and 3 parts of split ones), 0 failed", 1, true), "batch --split 3 -j 2", out)
same, why = same_output(dir .. "/whole", dir .. "/lb/split")
T.check(same, "a split run in a local batch = one process", why)

local arr = dir .. "/arr"
code, out = cli("batch", sc, "--split", "2", "--slurm", "--dry-run", "-o", arr)
local list = arr .. "/batch-logs/tasks.tsv"
T.check(code == 0 and out:find("2 runs in 4 array tasks (0 unchanged, not submitted); 1 of them split into parts, " ..
  "put together by the last 1 tasks", 1, true) and out:find("sbatch --dependency=afterany:$(sbatch --parsable ", 1, true),
  "--split --slurm --dry-run: the parts, then the assembly after them", out)
local lines = {}
for l in (read(list) or ""):gmatch("[^\n]+") do
  if not l:match("^#") then lines[#lines + 1] = l end
end
T.check(#lines == 4 and lines[1]:match("^0\t.*plain%.yaml\tplain$") and lines[2]:match("^1\t.*\tsplit\t@part=1/2$")
  and lines[3]:match("^2\t.*\tsplit\t@part=2/2$") and lines[4]:match("^3\t.*\tsplit\t@parts=2$"),
  "task list: parts in tasks of their own, the assembly last", read(list))
local function task(script, id)
  return sh({ "/bin/bash", "-c", "SLURM_ARRAY_TASK_ID=" .. id .. " exec bash " .. script })
end
task(arr .. "/batch-logs/tasks.sbatch", 0)
task(arr .. "/batch-logs/tasks.sbatch", 1)
code, out = cli("gather", arr)
T.check(code == 1 and out:find("split%s+missing%s+task 3%s+parts 2 %(task 2%) of 2 not computed"),
  "gather: the part not yet computed, and its task", out)
cli("gather", arr, "--resubmit", "--dry-run")
T.check((read(arr .. "/batch-logs/tasks-resubmit.tsv") or ""):match("\n%-\t[^\n]*@part=1/2\n0\t[^\n]*@part=2/2\n1\t[^\n]*@parts=2\n"),
  "--resubmit: the missing part and the assembly, not the part that is there", read(arr .. "/batch-logs/tasks-resubmit.tsv"))
task(arr .. "/batch-logs/tasks.sbatch", 2)
code, out = cli("gather", arr)
T.check(code == 1 and out:find("its 2 parts are computed, their assembly %(task 3%) has not run"), "gather: only the assembly left", out)
task(arr .. "/batch-logs/tasks-assemble.sbatch", 3)
code, out = cli("gather", arr)
T.check(code == 0 and out:find("2 runs: 2 ok"), "gather: a split run counts once", out)
T.check(read(arr .. "/split/results.json") == read(dir .. "/whole/results.json"), "array tasks = one process, results.json")

-- A task list edited by hand: @ columns only last, and well formed.
for _, bad_line in ipairs { "@part=3/2", "@parts=0", "@bogus", "@parts=2\tseed=1" } do
  write(dir .. "/bad.tsv", "0\t" .. yaml .. "\tx\t" .. bad_line .. "\n")
  code, out, err = cli("batch", "--tasks", dir .. "/bad.tsv", "-o", dir .. "/bt")
  T.check(code == 1 and err:find("bad.tsv:1: a split run's last column is @part=K/N", 1, true), "refused: " .. bad_line, err)
end
code, out, err = cli("batch", "--tasks", list, "--split", "2", "-o", arr)
T.check(code == 1 and err:find("give no %-%-split with it"), "--split with --tasks is refused", err)

S.remove_tree(dir)
T.done()
