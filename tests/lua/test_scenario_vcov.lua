-- test_scenario_vcov: the vcov forms and 2SLS's small in scenario files:
-- `spillover check` accepts what sp.ols / 2SLS run (the wild cluster
-- bootstrap, Newey-West, small: false) and refuses, at file:line:col, what
-- the run could not do.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local scenario = sp.scenario

local root = assert(sp.sys.realpath("."))
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-check-vcov-"))
local base = ([[
name: vc
seed: 7
data:
  file: PANEL
  entity: province
  time: year
derive:
  lnpat: log(patent_grants)
  lndf: log(digital_finance)
models:
  fe:
    estimator: ols
    formula: lnpat ~ lndf + urbanization | province + year
    vcov: {cluster: province}
]]):gsub("PANEL", root .. "/scenarios/data/cn_province_panel.csv")

local function variant(name, from, to) return T.write(tmp .. "/" .. name .. ".yaml", T.edit(base, from, to)) end
local function ok(name, from, to, what)
  local good, err = pcall(function() scenario.check(scenario.load(variant(name, from, to))) end)
  T.check(good, what, tostring(err))
end
local function refused(pattern, name, from, to)
  T.checkerr(pattern, function() scenario.check(scenario.load(variant(name, from, to))) end)
end
local V = "vcov: {cluster: province}"

ok("wild", V, "vcov: {wild: region_nbs, reps: 99, weights: webb, seed: 3}", "wild bootstrap vcov accepted on ols")
ok("nw", V, "vcov: {newey_west: 2, time: year}", "newey_west accepted on ols")
ok("small", "    estimator: ols\n    formula: lnpat ~ lndf + urbanization | province + year\n",
  "    estimator: iv\n    formula: lnpat ~ urbanization | lndf ~ government_intervention\n    options: {small: false}\n",
  "2SLS takes small: false")
refused("wild_var.yaml:%d+:%d+: models.fe.vcov.wild: unknown cluster variable 'regon_nbs'.*did you mean 'region_nbs'",
  "wild_var", V, "vcov: {wild: regon_nbs}")
refused("wild_weights.yaml:%d+:%d+: models.fe.vcov.weights: unknown value \"web\"", "wild_weights", V,
  "vcov: {wild: region_nbs, weights: web}")
refused("reps.yaml:%d+:%d+: models.fe.vcov.reps: 'reps' is a setting of vcov {wild: ...}", "reps", V,
  "vcov: {cluster: province, reps: 99}")
refused("two.yaml:%d+:%d+: models.fe.vcov: give one of cluster, wild, not 2", "two", V,
  "vcov: {cluster: province, wild: region_nbs}")
refused("nw_neg.yaml:%d+:%d+: models.fe.vcov.newey_west", "nw_neg", V, "vcov: {newey_west: -1}")
refused("nw_time.yaml:%d+:%d+: models.fe.vcov.time: unknown time variable 'yr'", "nw_time", V,
  "vcov: {newey_west: 1, time: yr}")
refused("re_wild.yaml:%d+:%d+: models.fe.vcov: estimator 're' does not take vcov 'wild'", "re_wild",
  "estimator: ols\n    formula: lnpat ~ lndf + urbanization | province + year\n    " .. V,
  "estimator: re\n    formula: lnpat ~ lndf + urbanization\n    vcov: {wild: region_nbs}")
refused("ols_small.yaml:%d+:%d+: models.fe.options.small", "ols_small", V, V .. "\n    options: {small: false}")

-- Spatial ML models take the robust vcov tables as an option.
do
  local sdm = T.read(root .. "/scenarios/digital_spillovers_sdm.yaml"):gsub("data/", root .. "/scenarios/data/")
  local function sdm_variant(name, opt)
    return T.write(tmp .. "/" .. name .. ".yaml", T.edit(sdm, "    label: SDM, two-way FE\n",
      "    label: SDM, two-way FE\n    options: " .. opt .. "\n"))
  end
  local good, err = pcall(function() scenario.check(scenario.load(sdm_variant("sdm_cl", "{vcov: {cluster: province}}"))) end)
  T.check(good, "sdm: options.vcov {cluster: province} accepted", tostring(err))
  good, err = pcall(function() scenario.check(scenario.load(sdm_variant("sdm_cy",
    "{vcov: {conley: {lat: latitude, lon: longitude, cutoff: 500}}}"))) end)
  T.check(good, "sdm: options.vcov {conley: ...} accepted", tostring(err))
  T.checkerr("sdm_typo.yaml:%d+:%d+: models.sdm.options.vcov.clustr: unknown", function()
    scenario.check(scenario.load(sdm_variant("sdm_typo", "{vcov: {clustr: province}}"))) end)
end

-- The run does what check let through: the registry's ols fit of a model
-- with the wild vcov carries the bootstrap.
do
  local d = sp.read_csv(root .. "/scenarios/data/cn_province_panel.csv")
  d:panel { entity = "province", time = "year" }
  local model = { formula = "log(patent_grants) ~ log(digital_finance) + urbanization | province + year",
    vcov = { wild = "region_nbs", reps = 99, weights = "webb", seed = 3 } }
  local f = require("spillover.registry").get("ols").fit(d, model, {})
  T.check(f.inference ~= nil and f.inference.label == "wild cluster bootstrap (WCR, Webb, 99 reps)",
    "run: the fit carries the bootstrap", f.inference and f.inference.label)
end

T.done()
