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

-- The default scenario: effects only in the West, only from 2020.
local di = results("digital_infrastructure").experiments.west_digital
T.check(di.groups["region_nbs=East"].total.sum == 0 and di.groups["region_nbs=West"].total.sum ~= 0,
  "default scenario: the shock moves the West only")
T.check(di.groups.all.periods["2019"].sum == 0 and di.groups.all.periods["2020"].sum ~= 0, "from 2020 on")
T.check(di.draws == 1000 and di.groups.all.total.sum_lo < di.groups.all.total.sum_hi, "1000 draws give a band")
for _, file in ipairs({ "tables.md", "tables.tex", "tables.csv", "tables.xlsx", "west_digital_paths.png",
  "west_digital_paths.svg", "west_digital_units.png", "manifest.json", "run.log" }) do
  T.check(sp.sys.exists(tmp .. "/digital_infrastructure/" .. file), "default scenario writes " .. file)
end

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
