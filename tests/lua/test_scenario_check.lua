-- test_scenario_check: what `spillover check` must refuse because `run` could
-- not do it, or would print a number as if all were well: shocks that select
-- no row, infinite or huge counts, bad winsorising shares, names that are not
-- file names, reversed windows.  Each case is a YAML file (not --set, whose
-- scalars are not YAML), checked for file:line:col, path and message.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local scenario = sp.scenario

local root = assert(sp.sys.realpath("."))
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-check-"))
local panel = root .. "/scenarios/data/cn_province_panel.csv"

local base = [[
name: west
seed: 7
data:
  file: PANEL
  entity: province
  time: year
derive:
  lnpat: log(patent_grants)
  lndf: log(digital_finance)
  dfw: {winsorize: digital_finance, p: 0.05}
models:
  fe:
    estimator: ols
    formula: lnpat ~ lndf + urbanization | province + year
experiments:
  west:
    model: fe
    shock: {variable: digital_finance, where: "region_nbs == 'West'", from: 2020, change: "+20%"}
    draws: 20
]]
base = base:gsub("PANEL", panel)

local function variant(name, from, to) return T.write(tmp .. "/" .. name .. ".yaml", T.edit(base, from, to)) end

local function check_error(pattern, path)
  T.checkerr(pattern, function() scenario.check(scenario.load(path)) end)
end

T.check(pcall(function() scenario.check(scenario.load(variant("ok"))) end), "the base scenario checks")

-- ---- shocks that select nothing -------------------------------------------------
check_error("west_lower.yaml:%d+:%d+: experiments.west.shock.where: the shock selects no row: .*no row has " ..
  "region_nbs == 'west' %(did you mean 'West'%?%); levels of region_nbs: 'Central', 'East', 'Northeast', 'West'",
  variant("west_lower", "'West'", "'west'"))
check_error("from2030.yaml:%d+:%d+: experiments.west.shock.from: the shock selects no row: no period in %[2030, inf%]" ..
  ".*year runs from 2011 to 2022", variant("from2030", "from: 2020", "from: 2030"))
check_error("to_before.yaml:%d+:%d+: experiments.west.shock.to: the shock selects no row: no period in %[%-inf, 2000%]",
  variant("to_before", "from: 2020", "to: 2000"))
check_error("reversed.yaml:%d+:%d+: experiments.west.shock.from: 'from' %(2020%) is after 'to' %(2015%)",
  variant("reversed", "from: 2020", "from: 2020, to: 2015"))
check_error("phase.yaml:%d+:%d+: experiments.west.shock.phase_in: must be 0 or more, got %-3",
  variant("phase", "from: 2020", "from: 2020, phase_in: -3"))
-- A where-expression over a derived variable cannot be evaluated at check
-- time; the run refuses it instead (below, through sp.counterfactual).
T.check(pcall(function() scenario.check(scenario.load(variant("derived_where", "region_nbs == 'West'", "lndf > 100"))) end),
  "a where over a derived variable is left to the run")

check_error("filter_none.yaml:%d+:%d+: data.filter: the filter \"year > 3000\" keeps none of the 372 rows",
  variant("filter_none", "  time: year\n", "  time: year\n  filter: year > 3000\n"))

-- ---- counts and numbers run could not honour ------------------------------------
check_error("draws_inf.yaml:%d+:%d+: experiments.west.draws: expected an integer, got an infinite number %(%.inf%)",
  variant("draws_inf", "draws: 20", "draws: .inf"))
check_error("draws_huge.yaml:%d+:%d+: experiments.west.draws: expected an integer, got the number 1e%+308 %(too large",
  variant("draws_huge", "draws: 20", "draws: 1e308"))
check_error("draws_big.yaml:%d+:%d+: experiments.west.draws: must be from 0 to 100000, got 10000000",
  variant("draws_big", "draws: 20", "draws: 10000000"))
check_error("boot.yaml:%d+:%d+: experiments.west.bootstrap: must be from 1 to 10000, got 0",
  variant("boot", "draws: 20", "bootstrap: 0"))
check_error("seed_inf.yaml:%d+:%d+: seed: expected an integer, got an infinite number %(%.inf%)",
  variant("seed_inf", "seed: 7", "seed: .inf"))
check_error("seed_nan.yaml:%d+:%d+: seed: expected an integer, got not%-a%-number",
  variant("seed_nan", "seed: 7", "seed: .nan"))
check_error("level.yaml:%d+:%d+: experiments.west.level: must be between 0 and 1 %(exclusive%), got 95",
  variant("level", "draws: 20", "draws: 20\n    level: 95"))
check_error("from_inf.yaml:%d+:%d+: experiments.west.shock.from: expected a number, got an infinite number",
  variant("from_inf", "from: 2020", "from: -.inf"))
check_error("wins_half.yaml:%d+:%d+: derive.dfw.p: must be at least 0 and below 0.5, got 0.5",
  variant("wins_half", "p: 0.05", "p: 0.5"))
check_error("wins_neg.yaml:%d+:%d+: derive.dfw.p: must be at least 0 and below 0.5, got %-0.1",
  variant("wins_neg", "p: 0.05", "p: -0.1"))
check_error("ratio_empty.yaml:%d+:%d+: derive.r.ratio: expected a list of 2 items, got 0",
  variant("ratio_empty", "  dfw:", "  r: {ratio: []}\n  dfw:"))
check_error("ratio_three.yaml:%d+:%d+: derive.r.ratio: expected a list of 2 items, got 3",
  variant("ratio_three", "  dfw:", "  r: {ratio: [a, b, c]}\n  dfw:"))

-- sp.ols and 2SLS run on 1 or 2 threads: more is refused by the run, so by the check
check_error("ols_threads.yaml:%d+:%d+: models.fe.options.threads: must be from 1 to 2, got 3",
  variant("ols_threads", "| province + year\n", "| province + year\n    options: {threads: 3}\n"))
T.check(pcall(function()
  scenario.check(scenario.load(variant("ols_threads2", "| province + year\n", "| province + year\n    options: {threads: 2}\n")))
end), "threads: 2 checks")

-- ---- derivations that run cannot do: reported at derive.<name>, never at a
-- line of spillover's own files
check_error("cat.yaml:%d+:%d+: derive.dfw: 'region_nbs' is categorical %(text%); this derivation needs numbers",
  variant("cat", "winsorize: digital_finance", "winsorize: region_nbs"))
local function run_error(pattern, path)
  T.checkerr(pattern, function() scenario.execute(scenario.load(path)) end)
  local ok, err = pcall(function() scenario.execute(scenario.load(path)) end)
  T.check(not ok and not tostring(err):find("spillover/[%w_]+%.lua:%d+:"), "no internal position in: " .. tostring(err))
end
run_error("logneg.yaml:%d+:%d+: derive.lnpat: eval .log%(patent_grants %- 1e12%).: .-no complete rows",
  variant("logneg", "log(patent_grants)", "log(patent_grants - 1e12)"))
run_error("const.yaml:%d+:%d+: derive.dfw: winsorizing 'one' at p = 0.05 makes it constant",
  variant("const", "  dfw: {winsorize: digital_finance, p: 0.05}", "  one: I(year / year)\n  dfw: {winsorize: one, p: 0.05}"))
run_error("std0.yaml:%d+:%d+: derive.dfw: cannot standardize 'one': its standard deviation is 0",
  variant("std0", "  dfw: {winsorize: digital_finance, p: 0.05}", "  one: I(year / year)\n  dfw: {standardize: one}"))

-- ---- the derive step: baseline parameters held, by-group winsorizing ------------
-- `by` was accepted on winsorize and silently ignored: now the bounds are the
-- C winsorizer's, per group, and shocked data are clamped to them.
local dv_text = T.edit(base, "  dfw: {winsorize: digital_finance, p: 0.05}\n",
  "  dfw: {winsorize: digital_finance, p: 0.1, by: region_nbs}\n  dfa: {winsorize: digital_finance, p: 0.1}\n" ..
  "  z: {standardize: urbanization}\n")
local dv_path = T.write(tmp .. "/derive_by.yaml", dv_text)
local ds = scenario.check(scenario.load(dv_path))
local dd = ds.data
local step = require("spillover.scenario_derive").step(ds)
step(dd, true)
local ref = sp.read_csv(panel)
ref:winsorize("digital_finance", { p = 0.1, by = "region_nbs", suffix = "_g" })
ref:winsorize("digital_finance", { p = 0.1, suffix = "_a" })
local same_g, same_a, differ = true, true, false
for i = 1, dd:nrow() do
  same_g = same_g and dd.dfw[i] == ref.digital_finance_g[i]
  same_a = same_a and dd.dfa[i] == ref.digital_finance_a[i]
  differ = differ or dd.dfw[i] ~= dd.dfa[i]
end
T.check(same_g and differ, "winsorize with by: the bounds of each region (as d:winsorize{by =}), not the pooled ones")
T.check(same_a, "winsorize without by: as d:winsorize")
-- A shocked copy: every value + 1e6 lands on its group's baseline upper bound.
local hi = {}
for i = 1, dd:nrow() do
  local g = dd.region_nbs[i]
  hi[g] = math.max(hi[g] or -math.huge, dd.dfw[i])
end
local z0, sd = dd.z:copy(), dd:describe({ "urbanization" }).sd[1]
local shocked = dd:copy()
shocked.digital_finance = shocked.digital_finance + 1e6
shocked.urbanization = shocked.urbanization + 1
step(shocked, false)
local held, moved = true, true
for i = 1, dd:nrow() do
  held = held and shocked.dfw[i] == hi[dd.region_nbs[i]]
  moved = moved and math.abs(shocked.z[i] - (z0[i] + 1 / sd)) < 1e-12
end
T.check(held, "shocked data are clamped to the baseline bounds of their group")
T.check(moved, "standardize keeps the baseline mean and sd (+1 moves z by 1/sd)")
check_error("std_by.yaml:%d+:%d+: derive%.z%.by: 'by' is used only by entropy, topsis, winsorize, group_mean; " ..
  "this derivation takes the whole sample", T.write(tmp .. "/std_by.yaml",
  T.edit(dv_text, "{standardize: urbanization}", "{standardize: urbanization, by: region_nbs}")))
check_error("gm_noby.yaml:%d+:%d+: derive%.g%.by: group_mean needs 'by'", T.write(tmp .. "/gm_noby.yaml",
  T.edit(dv_text, "  z: {standardize: urbanization}", "  g: {group_mean: urbanization}")))
check_error("wins_by.yaml:%d+:%d+: derive%.dfw: unknown variable 'region_nb' %(did you mean 'region_nbs'%?%)",
  T.write(tmp .. "/wins_by.yaml", T.edit(dv_text, "by: region_nbs}", "by: region_nb}")))

-- ---- files that are not regular files: refused by check without opening
-- them (a FIFO would block check; /dev/zero would be read without end)
os.execute("mkfifo " .. tmp .. "/fifo.csv")
check_error("fifo.yaml:%d+:%d+: data.file: data file '[^']*fifo%.csv' is not a regular file",
  variant("fifo", panel, tmp .. "/fifo.csv"))
check_error("devzero.yaml:%d+:%d+: data.file: data file '/dev/zero' is not a regular file",
  variant("devzero", panel, "/dev/zero"))
check_error("folder.yaml:%d+:%d+: data.file: data file '[^']*' is not a regular file", variant("folder", panel, tmp))
check_error("nofile.yaml:%d+:%d+: data.file: cannot open data file '/nonexistent/x.csv': no such file",
  variant("nofile", panel, "/nonexistent/x.csv"))
check_error("fifo_plugin.yaml:%d+:%d+: plugins: plugin '[^']*fifo%.csv' is not a regular file",
  variant("fifo_plugin", "models:", "plugins: [" .. tmp .. "/fifo.csv]\nmodels:"))

-- "y - 1" and "y - x" are removals in the formula language: as derived
-- variables they silently gave y.
check_error("minus.yaml:%d+:%d+: derive.lnpat: '%-', '%+ 0' and '%- 1' mean removing terms .*I%(patent_grants %- 1%)",
  variant("minus", "log(patent_grants)", "patent_grants - 1"))
T.checkerr("eval 'patent_grants %- year': .*write arithmetic inside I%(%)", sp.eval, sp.read_csv(panel), "patent_grants - year")
T.near(sp.eval(sp.read_csv(panel), "I(year - 1)")[1], 2010, 0, "I(year - 1) is arithmetic")
T.checkerr("eval '1': the expression has no variable", sp.eval, sp.read_csv(panel), "1")

-- A covariance name no estimator knows is refused at check ("HC1" in any case
-- is a name the linear estimators take).
local fe_model = "    formula: lnpat ~ lndf + urbanization | province + year\n"
check_error("vcov_typo.yaml:%d+:%d+: models.fe.vcov: unknown value \"hc9\" .*did you mean",
  variant("vcov_typo", fe_model, fe_model .. "    vcov: hc9\n"))
T.check(pcall(function() scenario.check(scenario.load(variant("vcov_upper", fe_model, fe_model .. "    vcov: HC1\n"))) end),
  "vcov: HC1 is accepted as the estimators accept it")
check_error("vcov_cltype.yaml:%d+:%d+: models.fe.vcov.type: unknown value \"hc3\"",
  variant("vcov_cltype", fe_model, fe_model .. "    vcov: {cluster: province, type: hc3}\n"))

-- ---- names that become file names -----------------------------------------------
check_error("name_dotdot.yaml:%d+:%d+: name: '%.%.' is not a usable name", variant("name_dotdot", "name: west", "name: '..'"))
check_error("name_dot.yaml:%d+:%d+: name: '%.' is not a usable name", variant("name_dot", "name: west", "name: '.'"))
check_error("name_empty.yaml:%d+:%d+: name: a name must not be empty", variant("name_empty", "name: west", "name: ''"))
check_error("name_slash.yaml:%d+:%d+: name: name 'a/b' contains '/'", variant("name_slash", "name: west", "name: a/b"))
check_error("exp_slash.yaml:%d+:%d+: experiments%.%.%./x: name '%.%./x' contains '/'",
  variant("exp_slash", "  west:\n    model", "  ../x:\n    model"))
check_error("model_dot.yaml:%d+:%d+: models%.%.hidden: name '%.hidden' starts with '%.'",
  variant("model_dot", "  fe:\n", "  .hidden:\n"):gsub("model: fe", "model: .hidden"))

-- A name in Chinese is a file name like any other.
T.check(pcall(function() scenario.check(scenario.load(variant("cjk", "name: west", "name: 西部数字金融"))) end),
  "a non-ASCII scenario name is accepted")

-- ---- the same refusals through the Lua API --------------------------------------
local d = sp.read_csv(panel)
d:panel { entity = "province", time = "year" }
d.lndf = sp.eval(d, "log(digital_finance)")
d.lnpat = sp.eval(d, "log(patent_grants)")
local fit = sp.ols(d, "lnpat ~ lndf + urbanization | province + year")
T.checkerr("shock selects no row: where \"region_nbs == 'west'\" selects no row: no row has region_nbs == 'west' " ..
  "%(did you mean 'West'%?%)", sp.counterfactual,
  { data = d, fit = fit, time = "year", shocks = { { variable = "digital_finance", where = "region_nbs == 'west'", change = "+20%" } } })
T.checkerr("shock selects no row: no period in %[2030, inf%]: year runs from 2011 to 2022", sp.counterfactual,
  { data = d, fit = fit, time = "year", shocks = { { variable = "digital_finance", from = 2030, change = "+20%" } } })
T.checkerr("shock selects no row: where \"lndf > 100\" selects no row", sp.counterfactual,
  { data = d, fit = fit, time = "year", shocks = { { variable = "digital_finance", where = "lndf > 100", change = "+20%" } } })
T.checkerr("unknown group column 'region_nb' %(did you mean 'region_nbs'%?%)", sp.counterfactual,
  { data = d, fit = fit, time = "year", groups = { "region_nb" },
    shocks = { { variable = "digital_finance", where = "region_nbs == 'West'", change = "+20%" } } })
T.checkerr("the data has no rows %(did a filter or subset remove them all%?%)", sp.ols,
  d:filter("year > 3000"), "lnpat ~ lndf")
local ok, r = pcall(sp.counterfactual, { data = d, fit = fit, time = "year",
  shocks = { { variable = "digital_finance", where = "region_nbs == 'West'", from = 2020, change = "+20%" } } })
T.check(ok and r.groups.all.total.effect ~= 0, "a shock that selects rows still runs", tostring(r))

sp.sys.remove_tree(tmp)
T.done()
