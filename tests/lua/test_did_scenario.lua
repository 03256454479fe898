-- The bundled pilot-zone DID scenario end to end: the registry entries did
-- and event_study, their report section (tables, event-study, placebo and
-- Bacon figures), and the roll-out experiment.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local scenario = sp.scenario

local tmp = assert(sp.sys.mkdtemp("/tmp/sp-did-scenario-"))
local s = scenario.load("scenarios/bigdata_pilot_did.yaml")
local out = tmp .. "/out"
scenario.run(s, { outdir = out })
for _, f in ipairs { "did_cs.md", "did_cs.csv", "event_cs.png", "event_event.png", "did_twfe.md", "placebo_twfe.png",
  "bacon_twfe.png", "effects_pilot_west.csv", "results.json" } do
  T.check(sp.sys.exists(out .. "/" .. f), "the report writes " .. f)
end
T.checkerr("scenario.run: unknown option 'out' %(expected one of .*outdir.*%)",
  scenario.run, s, { out = tmp .. "/elsewhere" })
local res = sp.json.read(out .. "/results.json")
local cs = res.models.cs.did
T.check(cs.method == "cs" and #cs.att_gt > 0 and cs.overall.se > 0, "results.json: the ATT(g,t) and the overall ATT")
-- the same fit through the Lua API gives the reported ATT
local d = sp.read_csv("scenarios/data/cn_province_panel.csv")
d:panel { entity = "province_en", time = "year" }
d.lnpat = sp.eval(d, "log(patent_grants_invention)")
local direct = sp.did(d, "lnpat ~ 1 | province_en + year", { method = "cs", cohort = "first_treat", bootstrap = 999, seed = 11 })
T.near(cs.overall.att, direct.overall.att, 1e-12, "the scenario's ATT is sp.did's")
T.check(cs.pretrend.note ~= nil, "the one-unit cohort (Guizhou 2016) is flagged in the pre-test")
local pl = res.models.twfe.did.placebo
T.check(pl.reps == 500 and pl.p_value >= 0 and pl.p_value <= 1 and pl.assign == "units", "the 500-draw placebo")
local bacon = res.models.twfe.did.bacon
local wsum, est = 0, 0
for _, t in ipairs(bacon.by_type) do wsum, est = wsum + t.weight, est + t.weight * t.avg_est end
T.near(wsum, 1, 1e-12, "Bacon weights sum to 1")
T.near(est, res.models.twfe.did.overall.att, 1e-10, "and the weighted 2x2s give the TWFE estimate")
local ro = res.experiments.pilot_west
T.check(ro.rollout.from == 2018 and #ro.rollout.units == 9 and ro.rollout.unchanged[1] == "Chongqing",
  "the roll-out treats the 9 western provinces not yet in a pilot zone")
-- effect of a newly treated province in 2018 = the dynamic aggregation at e = 0
local path = direct:dynamic_effects()
local e0
for _, u in ipairs(ro.units) do
  if u.entity == "Gansu" and u.period == 2018 then e0 = u.effect end
end
T.near(e0, path[0], 1e-12, "Gansu 2018 gets the e = 0 effect")
T.check(ro.groups.all.total.sum_lo < ro.groups.all.total.sum_hi, "intervals from 1000 parameter draws")

-- check refuses what a DID model cannot do
local root = io.popen("pwd"):read("l")
local function variant(name, from, to)
  local text = T.edit(T.read("scenarios/bigdata_pilot_did.yaml"), "file: data/", "file: " .. root .. "/scenarios/data/")
  return T.write(tmp .. "/" .. name .. ".yaml", T.edit(text, from, to))
end
local function refused(pattern, path)
  T.checkerr(pattern, function() scenario.check(scenario.load(path)) end)
end
refused("experiments%.pilot_west%.bootstrap: model 'cs' %(estimator 'did'%) cannot be refitted", variant("boot",
  "    draws: 1000\n", "    bootstrap: 100\n"))
refused("experiments%.pilot_west%.model: model 'cs' %(estimator 'did'%) cannot predict, so it cannot run shock " ..
  "experiments %(it serves 'rollout' experiments%)", variant("shock",
  "    rollout: {where: \"region_nbs == 'West'\", from: 2018}\n",
  "    shock: {variable: digital_finance, change: \"+10%\"}\n"))
refused("models%.cs%.options: missing required key 'cohort'",
  variant("nocohort", "{method: cs, cohort: first_treat, bootstrap: 999, seed: 11}", "{method: cs}"))
refused("models%.cs%.options%.method: unknown value \"cx\"", variant("method",
  "{method: cs, cohort: first_treat, bootstrap: 999, seed: 11}", "{method: cx, cohort: first_treat}"))

sp.sys.remove_tree(tmp)
T.done()
