-- test_scenario: validation errors (each with file:line:col and path), the
-- sandbox, the run's outputs (atomic, byte-identical on rerun), agreement with
-- the same steps through the Lua API, overrides, and batch runs.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local scenario = sp.scenario

local exe = arg[-1] or "build/spillover"
local root = assert(sp.sys.realpath("."))
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-scenario-"))
local produc = root .. "/tests/reference/data/Produc.csv"

local function write(name, text) return T.write(tmp .. "/" .. name, text) end

local base = [[
name: small
seed: 11
data:
  file: PRODUC
  entity: state
  time: year
derive:
  lpcap: log(pcap)
models:
  fe:
    estimator: ols
    formula: log_gsp ~ lpcap + log_pc + log_emp + unemp | state + year
    vcov: {cluster: state}
experiments:
  south:
    model: fe
    shock: {variable: pcap, where: "region >= 5 and region <= 7", from: 1980, change: "+10%"}
    groups: [region]
    draws: 50
report:
  formats: [md, csv, json]
]]
base = base:gsub("PRODUC", produc)

local function variant(name, from, to) return write(name .. ".yaml", T.edit(base, from, to)) end

local function check_error(pattern, path, overrides)
  T.checkerr(pattern, function()
    local s = scenario.load(path, overrides)
    scenario.check(s)
  end)
end

-- ---- validation -----------------------------------------------------------------
local ok_path = variant("ok")
T.check(pcall(function() scenario.check(scenario.load(ok_path)) end), "a valid scenario checks")

check_error("modles.yaml:%d+:%d+: modles: unknown key 'modles' %(did you mean 'models'%?%)",
  variant("modles", "models:", "modles:"))
check_error("draws.yaml:%d+:%d+: experiments.south.draws: expected an integer, got the string \"many\"",
  variant("draws", "draws: 50", "draws: many"))
check_error("models.fe.formula: unknown variable 'log_pcc' %(did you mean 'log_pc'%?%)",
  variant("formula", "+ log_pc +", "+ log_pcc +"))
check_error("models.fe.estimator: unknown estimator 'olss' %(did you mean 'ols'%?%)",
  variant("estimator", "estimator: ols", "estimator: olss"))
check_error("derive.%a: cyclic derivation: a %-> b %-> a",
  variant("cycle", "  lpcap: log(pcap)", "  lpcap: log(pcap)\n  a: log(b)\n  b: exp(a)"))
check_error("experiments.south.shock.change: cannot read \"%+10 percent\"",
  variant("change", "change: \"+10%\"", "change: \"+10 percent\""))
check_error("experiments.south.model: unknown model 'fee' %(did you mean 'fe'%?%)",
  variant("model", "model: fe", "model: fee"))
check_error("experiments.south.shock.variable: 'lpcap' is derived; shock the data it is derived from",
  variant("derived", "variable: pcap", "variable: lpcap"))
check_error("models.fe: missing required key 'formula'",
  variant("required", "    formula: log_gsp ~ lpcap + log_pc + log_emp + unemp | state + year\n", ""))
check_error("data.entity: unknown column 'sate'", variant("entity", "entity: state", "entity: sate"))
check_error("experiments.south.groups: unknown column 'regio'", variant("groups", "groups: [region]", "groups: [regio]"))
check_error("report.formats%[3%]: unknown value \"jsn\"", variant("format", "[md, csv, json]", "[md, csv, jsn]"))
check_error("data.file: cannot open data file", variant("nodata", produc, "/nonexistent/data.csv"))
check_error("syntax.yaml:%d+:%d+", variant("syntax", "  fe:\n", "  fe:\n   - oops: [\n"))
check_error("experiments.south.draws: expected an integer", ok_path, { "experiments.south.draws=abc" })
check_error("experiments.south.shocks: the list is empty", variant("noshocks",
  "    shock: {variable: pcap, where: \"region >= 5 and region <= 7\", from: 1980, change: \"+10%\"}\n", "    shocks: []\n"))
check_error("experiments.south.shock.phase_in: 'phase_in' counts periods from 'from'",
  variant("phase", "from: 1980,", "to: 1980, phase_in: 2,"))
check_error("experiments.south.level: must be between 0 and 1", variant("level", "draws: 50", "draws: 50\n    level: 95"))
check_error("experiments.south.draws: must be from 0 to 100000, got %-5", variant("negdraws", "draws: 50", "draws: -5"))
-- sp.read_csv reads Produc's 'state' as text
check_error("experiments.south.shock.variable: 'state' is categorical", variant("catshock", "variable: pcap", "variable: state"))
-- A where-expression is checked before anything runs: it compiles, and every
-- name it reads (on any branch) is a column or a derived variable.
check_error("experiments.south.shock.where: unknown column 'regoin' in \"regoin >= 5 and region <= 7\" %(did you mean 'region'%?%)",
  variant("where", "\"region >= 5 and", "\"regoin >= 5 and"))
check_error("experiments.south.shock.where: cannot compile \"region >== 5\"",
  variant("where2", "\"region >= 5 and region <= 7\"", "\"region >== 5\""))
check_error("experiments.south.shock.where: unknown column 'nosuch'",
  variant("where3", "\"region >= 5 and region <= 7\"", "\"region < 0 and nosuch == 'x' or lpcap > math.log(2)\""))
-- An entry with nothing under it is reported, not silently dropped.
check_error("experiments.west: expected a mapping, got nothing", variant("nullexp", "experiments:\n", "experiments:\n  west:\n"))
check_error("models.fe.vcov.cluster%[2%]: expected a string, got nothing",
  variant("nullitem", "{cluster: state}", "{cluster: [state, ~]}"))

-- ---- sandbox ----------------------------------------------------------------------
local evil = write("evil.lua", 'os.execute("touch ' .. tmp .. '/pwned")\n')
local evil_yaml = variant("evil", "models:", "plugins: [" .. evil .. "]\nmodels:")
check_error("sandbox: os.execute is not available in plugins", evil_yaml)
T.check(not sp.sys.exists(tmp .. "/pwned"), "the sandboxed plugin did not run os.execute")
local loop = write("loop.lua", "local x = 0\nwhile true do x = x + 1 end\n")
check_error("instruction limit exceeded", variant("loop", "models:", "plugins: [" .. loop .. "]\nmodels:"))
local io_plugin = write("io.lua", "io.open('/etc/passwd')\n")
check_error("sandbox: 'io' is not available in plugins", variant("io", "models:", "plugins: [" .. io_plugin .. "]\nmodels:"))
local trusted = write("trusted.lua", "assert(os.getenv('HOME') ~= nil or true)\nsp.register_estimator{name = 'trusted_ols', " ..
  "fit = function(d, spec) return sp.ols(d, spec.formula) end}\n")
local tr_yaml = variant("trusted", "models:", "plugins: [" .. trusted .. "]\nmodels:")
check_error("sandbox: os.getenv is not available", tr_yaml)
T.check(pcall(function() scenario.check(scenario.load(tr_yaml), { trust = true }) end), "--trust lifts the sandbox")

-- ---- running ------------------------------------------------------------------------
local function run_cli(args)
  local ok = os.execute(exe .. " " .. args .. " > " .. tmp .. "/cli.out 2> " .. tmp .. "/cli.err")
  local f = io.open(tmp .. "/cli.err")
  local err = f and f:read("a") or ""
  if f then f:close() end
  return ok == true, err
end

local out1, out2 = tmp .. "/out1", tmp .. "/out2"
T.check(run_cli("run " .. ok_path .. " -o " .. out1 .. " --quiet"), "spillover run writes the folder")
for _, f in ipairs({ "results.json", "manifest.json", "run.log", "tables.md", "tables.csv", "effects_south.csv",
  "effects_south_groups.csv", "effects_south_groups.md" }) do
  T.check(sp.sys.exists(out1 .. "/" .. f), "output " .. f)
end
T.check(run_cli("run " .. ok_path .. " -o " .. out2 .. " --quiet"), "a second run")
local slurp = T.read
T.check(slurp(out1 .. "/results.json") == slurp(out2 .. "/results.json"), "reruns give a byte-identical results.json")
local manifest = sp.json.read(out1 .. "/manifest.json")
T.check(manifest.inputs[2].sha256 == sp.sys.sha256_file(produc), "manifest has the data's SHA-256")

-- The same steps through the Lua API give the same effects.
local res = sp.json.read(out1 .. "/results.json")
local d = sp.read_csv(produc)
d:panel { entity = "state", time = "year" }
local function derive(x) x.lpcap = sp.eval(x, "log(pcap)") end
derive(d)
local fit = sp.ols(d, "log_gsp ~ lpcap + log_pc + log_emp + unemp | state + year", { vcov = { cluster = "state" } })
local r = sp.counterfactual {
  data = d, derive = derive, fit = fit, entity = "state", time = "year", groups = { "region" },
  shocks = { { variable = "pcap", where = "region >= 5 and region <= 7", from = 1980, change = "+10%" } },
  draws = 50, seed = 11,
}
local g = res.experiments.south.groups
T.near(g.all.total.sum, r.groups.all.total.sum, 1e-12, "scenario effect = API effect (all, total)")
T.near(g["region=5"].total.sum_hi, r.groups["region=5"].total.sum_hi, 1e-12, "scenario interval = API interval")
T.near(res.models.fe.coef.lpcap, fit:coef().lpcap, 1e-14, "scenario model = API model")

-- Overrides and a failing run that leaves nothing behind.
local out3 = tmp .. "/out3"
T.check(run_cli("run " .. ok_path .. " -o " .. out3 .. " --quiet --set experiments.south.draws=0"), "--set override")
local r3 = sp.json.read(out3 .. "/results.json")
T.check(r3.experiments.south.draws == 0, "override took effect")
local boom = write("boom.lua", "sp.register_estimator{name = 'boom', fit = function() error('no convergence here') end}\n")
local boom_yaml = variant("boom", "models:", "plugins: [" .. boom .. "]\nmodels:"):gsub("", "")
local text = slurp(boom_yaml):gsub("estimator: ols", "estimator: boom")
write("boom.yaml", text)
local out4 = tmp .. "/out4"
local okb, errb = run_cli("run " .. tmp .. "/boom.yaml -o " .. out4)
T.check(not okb and errb:find("models.fe: estimation failed: .*no convergence here") ~= nil, "a failing run reports why",
  errb)
T.check(not sp.sys.exists(out4), "a failing run leaves no output folder")
local leftovers = 0
for _, name in ipairs(sp.sys.listdir(tmp)) do if name:find("out4.tmp", 1, true) then leftovers = leftovers + 1 end end
T.check(leftovers == 0, "and no temporary folder")

-- Batch: one good and one bad scenario, two at a time.
local bdir = tmp .. "/batch"
sp.sys.mkdir(bdir)
write("batch/good.yaml", base)
write("batch/bad.yaml", (base:gsub("estimator: ols", "estimator: nope")))
local okbatch, _ = run_cli("batch " .. bdir .. " -j 2 -o " .. tmp .. "/bout")
local summary = slurp(tmp .. "/cli.out")
T.check(not okbatch, "batch exits non-zero when a scenario fails")
T.check(summary:find("good%.yaml%s+ok") and summary:find("bad%.yaml%s+FAILED") and summary:find("2 scenarios, 1 failed"),
  "batch summary lists both", summary)
T.check(sp.sys.exists(tmp .. "/bout/good/results.json"), "the good scenario ran despite the bad one")
-- batch --quiet (accepted before options were per command) lists only what did not end ok.
local okq = run_cli("batch " .. bdir .. " -j 2 -o " .. tmp .. "/bout_q --quiet")
local quiet = slurp(tmp .. "/cli.out")
T.check(not okq and not quiet:find("good%.yaml") and quiet:find("bad%.yaml%s+FAILED") and quiet:find("2 scenarios, 1 failed"),
  "batch --quiet lists the failure and the count only", quiet)

-- A model estimated by group ("by"): one fit and one table column per group.
local by_yaml = variant("by", "    vcov: {cluster: state}\n", "    vcov: {cluster: state}\n    by: region\n")
check_error("model 'fe' is estimated by group", by_yaml)
local by_only = slurp(by_yaml):gsub("experiments:.*report:", "report:")
write("by_only.yaml", by_only)
T.check(run_cli("run " .. tmp .. "/by_only.yaml -o " .. tmp .. "/byout --quiet"), "a by-group model runs")
local rb2 = sp.json.read(tmp .. "/byout/results.json")
T.check(rb2.models["fe[region=5]"] ~= nil and rb2.models["fe[region=9]"] ~= nil, "one fit per group in results.json")
T.check(slurp(tmp .. "/byout/tables.md"):find("fe%[region=1%]") ~= nil, "one table column per group")
check_error("models.fe.by: unknown column 'regio'", variant("byx", "    vcov: {cluster: state}\n",
  "    vcov: {cluster: state}\n    by: regio\n"))

-- check command
T.check(run_cli("check " .. ok_path), "spillover check on a valid file")
local okc, errc = run_cli("check " .. variant("modles2", "models:", "modles:"))
T.check(not okc and errc:find("unknown key 'modles'"), "spillover check reports errors", errc)
-- A YAML syntax error names the scenario file first, not a line of spillover's own Lua.
local syn = variant("syntax_cli", "  fe:\n", "  fe:\n   - oops: [\n")
local oks, errs = run_cli("check " .. syn)
T.check(not oks and errs:sub(1, #syn + 1) == syn .. ":" and not errs:find("lua/spillover"),
  "spillover check: a YAML syntax error starts with file:line:col", errs)

sp.sys.remove_tree(tmp)
T.done()
