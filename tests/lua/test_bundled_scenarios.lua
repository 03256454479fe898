-- test_bundled_scenarios: every scenario under scenarios/ runs (in parallel,
-- through `spillover batch`), and the results say what the scenarios claim.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local exe = arg[-1] or "build/spillover"
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-bundled-"))
local ok = os.execute(exe .. " batch scenarios -j 2 -o " .. tmp .. " > " .. tmp .. "/batch.out 2>&1")
local f = io.open(tmp .. "/batch.out")
local out = f:read("a")
f:close()
T.check(ok == true and out:find(" 0 failed"), "spillover batch scenarios/ -j 2 runs them all", out)

local function results(name) return sp.json.read(tmp .. "/" .. name .. "/results.json") end

-- The default scenario: digital infrastructure in an SDM; the shock to the
-- West from 2020 spills over into its neighbours, in invention patents.
local dinf = results("digital_infrastructure")
local di = dinf.experiments.west_infrastructure
local west, nb = di.groups["west_zone=West"], di.groups["west_zone=West neighbour"]
T.check(west.total.level_change ~= 0 and nb.total.level_change ~= 0 and di.scale.column == "patent_grants",
  "default scenario: additional invention patents in the West and its neighbours")
T.check(di.groups.all.periods["2019"].level_change == 0 and di.groups.all.periods["2020"].level_change ~= 0, "from 2020 on")
T.check(di.draws == 500 and west.total.level_change_lo < west.total.level_change_hi and west.total.pct_lo < west.total.pct_hi,
  "500 draws give bands on the level and its %")
T.check(dinf.indices.dii.weights.broadband_access_ports_10k > 0, "the infrastructure index's entropy weights are reported")
local groups_md = T.read(tmp .. "/digital_infrastructure/effects_west_infrastructure_groups.md")
T.check(groups_md:find("| additional invention patents (sum over units) | interval | % of invention patents |", 1, true),
  "the effects table leads with additional invention patents and their %")
for _, file in ipairs({ "tables.md", "tables.tex", "tables.csv", "tables.xlsx", "west_infrastructure_paths.png",
  "west_infrastructure_paths.svg", "west_infrastructure_units.png", "manifest.json", "run.log" }) do
  T.check(sp.sys.exists(tmp .. "/digital_infrastructure/" .. file), "default scenario writes " .. file)
end

-- The digital-finance scenario (the previous default): effects only in the West, only from 2020.
local df = results("digital_finance").experiments.west_digital
T.check(df.groups["region_nbs=East"].total.sum == 0 and df.groups["region_nbs=West"].total.sum ~= 0,
  "digital finance: the shock moves the West only")
T.check(df.groups.all.periods["2019"].sum == 0 and df.groups.all.periods["2020"].sum ~= 0, "from 2020 on")
T.check(df.draws == 1000 and df.groups.all.total.sum_lo < df.groups.all.total.sum_hi, "1000 draws give a band")

-- The entropy index: weights reported and summing to one.
local idx = results("innovation_capacity_index").indices.icap
local sum = 0
for _, w in pairs(idx.weights) do sum = sum + w end
T.near(sum, 1, 1e-12, "entropy weights reported and sum to 1")
T.near(idx.weights.patent_grants_invention, 0.40811169885276505, 1e-10, "entropy weight of patents (R: 0.408112)")

-- The spatial Durbin model: a shock to the West spills over into the unshocked Central provinces.
local sdm = results("digital_spillovers_sdm")
local central = sdm.experiments.west_digital.groups["region_nbs=Central"].total
T.check(central.sum ~= 0 and central.sum_lo ~= nil and central.sum_lo < central.sum_hi,
  "SDM: spillovers into the unshocked central provinces, with a band")
T.check(sdm.models.sdm.impacts.indirect.lndf ~= nil, "SDM: direct/indirect/total impacts reported")
T.check(sp.sys.exists(tmp .. "/digital_spillovers_sdm/impacts_sdm.md"), "SDM: impacts table written")

-- Threshold and mediation: thresholds with intervals and the LR plot; the mediation report.
local tm = results("digital_threshold_mediation")
local thr = tm.models.threshold.stats
T.check(#thr.thresholds == 1 and thr.ci[1][1] < thr.thresholds[1] and thr.thresholds[1] < thr.ci[1][2],
  "threshold estimated inside its LR interval")
T.check(sp.sys.exists(tmp .. "/digital_threshold_mediation/lr_threshold.png"), "LR(gamma) plot written")
local med = tm.models.mediation.mediation
T.near(med.c.estimate, med.direct.estimate + med.total_indirect.indirect, 1e-9, "mediation: c = c' + a*b")
T.check(sp.sys.exists(tmp .. "/digital_threshold_mediation/mediation_mediation.md"), "mediation report written")

-- The plugin estimator ran in the sandbox.
T.check(results("ridge_example").models.ridge.estimator == "ridge", "ridge plugin estimator used")
sp.sys.remove_tree(tmp)
T.done()
