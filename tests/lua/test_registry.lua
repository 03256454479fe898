-- test_registry: the estimator registry (spillover.registry) and what
-- `spillover check` derives from it: each model's options checked against its
-- estimator's option schema and its keys against the estimator's model keys,
-- experiments refused when the model's capabilities cannot serve them, and
-- report sections written by the report without estimator-specific code.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local registry = require "spillover.registry"
local scenario = sp.scenario

local root = assert(sp.sys.realpath("."))
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-registry-"))
local panel = root .. "/scenarios/data/cn_province_panel.csv"

-- ---- the registry --------------------------------------------------------------------
local names = table.concat(registry.names(), " ")
for _, n in ipairs({ "ols", "fe", "iv", "ivreg", "re", "between", "fd", "threshold", "sar", "sem", "sdm", "sdem",
  "mediation" }) do
  T.check((" " .. names .. " "):find(" " .. n .. " ", 1, true), "built-in '" .. n .. "' registered by its module", names)
  T.check(registry.get(n).builtin, "'" .. n .. "' is reserved")
end
T.check(table.concat(sp.scenario.estimator_names(), " ") == names, "sp.scenario.estimator_names() lists the registry")
T.check(registry.get("sdm").capabilities.spatial and not registry.get("ols").capabilities.spatial,
  "spatial estimators say so in their capabilities")
T.check(registry.get("iv").capabilities.refit == false and registry.get("re").capabilities.refit == false,
  "2SLS and random effects declare that they cannot refit")
T.checkerr("register_estimator: 'ols' is a built%-in estimator", sp.register_estimator, { name = "ols", fit = print })
T.checkerr("register_estimator: 'mediation' is a built%-in estimator", sp.register_estimator,
  { name = "mediation", fit = print })
T.checkerr("register_estimator: capabilities: unknown capability 'bootstrap' %(expected one of draw, predict, " ..
  "predict_matrix, refit, rollout, spatial%)", sp.register_estimator, { name = "x1", fit = print, capabilities = { bootstrap = true } })
T.checkerr("register_estimator: capabilities.refit must be true or false", sp.register_estimator,
  { name = "x1", fit = print, capabilities = { refit = 1 } })
T.checkerr("register_estimator: options.lambda must be a schema", sp.register_estimator,
  { name = "x1", fit = print, options = { lambda = 1 } })
T.checkerr("register_estimator: model_keys: unknown key 'cluster'", sp.register_estimator,
  { name = "x1", fit = print, model_keys = { "cluster" } })
T.check(registry.get("x1") == nil, "a refused entry is not registered")
-- Registering the very same fit again is a no-op (a module loaded twice, or
-- mechanism.register(sp.scenario) after the module registered itself).
local mech = require "spillover.mechanism"
T.check(pcall(mech.register, sp.scenario), "re-registering the built-in mediation entry is a no-op")

-- An estimator declared with a schema, model keys and capabilities, and one
-- registered the old way ({name, fit} only).
local function ols_fit(d, model) return sp.ols(d, model.formula, { vcov = model.vcov }) end
sp.register_estimator {
  name = "reg_nodraw", fit = ols_fit, model_keys = { "vcov" },
  options = { lambda = { type = "number", min = 0 }, kind = { type = "string", enum = { "a", "b" }, required = true } },
  capabilities = { predict = true, refit = true, draw = false },
}
sp.register_estimator { name = "reg_nopredict", fit = ols_fit, options = {}, capabilities = { predict = false } }
local seen_options
sp.register_estimator { name = "reg_legacy", fit = function(d, model, options)
  seen_options = options
  return sp.ols(d, model.formula)
end }

-- ---- check: options, model keys, capabilities -----------------------------------------
local base = [[
name: reg
seed: 7
data:
  file: PANEL
  entity: province
  time: year
weights:
  W: {contiguity: ADJ, from: province_i, to: province_j}
derive:
  lnpat: log(patent_grants)
  lndf: log(digital_finance)
models:
  m:
    estimator: ols
    formula: lnpat ~ lndf + urbanization | province + year
experiments:
  west:
    model: m
    shock: {variable: digital_finance, where: "region_nbs == 'West'", from: 2020, change: "+20%"}
    draws: 20
]]
base = base:gsub("PANEL", panel):gsub("ADJ", root .. "/scenarios/data/cn_province_adjacency_31_edges.csv")
local function variant(name, from, to) return T.write(tmp .. "/" .. name .. ".yaml", T.edit(base, from, to)) end
local function model(name, text)
  return variant(name, "    estimator: ols\n    formula: lnpat ~ lndf + urbanization | province + year\n", text)
end
local function check_error(pattern, path)
  T.checkerr(pattern, function() scenario.check(scenario.load(path)) end)
end
local function checks(path, what)
  local ok, err = pcall(function() scenario.check(scenario.load(path)) end)
  T.check(ok, what, tostring(err))
end
checks(variant("ok"), "the base scenario checks")

-- options against the estimator's schema, at file:line:col, with did-you-mean
check_error("tol.yaml:16:20: models%.m%.options%.tol: must be 0 or more, got %-1",
  variant("tol", "| province + year\n", "| province + year\n    options: {tol: -1}\n"))
check_error("maxiter.yaml:16:15: models%.m%.options%.maxiterr: unknown key 'maxiterr' %(did you mean 'maxiter'%?%) " ..
  "%(expected one of: maxiter, singletons, threads, tol%)",
  variant("maxiter", "| province + year\n", "| province + year\n    options: {maxiterr: 10}\n"))
check_error("single.yaml:%d+:%d+: models%.m%.options%.singletons: unknown value \"dorp\" %(expected one of: keep, drop%)" ..
  " %(did you mean 'drop'%?%)", variant("single", "| province + year\n", "| province + year\n    options: {singletons: dorp}\n"))
check_error("thr_req.yaml:%d+:%d+: models%.m%.options: missing required key 'regime'", model("thr_req",
  "    estimator: threshold\n    formula: lnpat ~ urbanization\n    options: {threshold: lndf}\n"))
check_error("thr_n.yaml:%d+:%d+: models%.m%.options%.n: must be from 1 to 3, got 4", model("thr_n",
  "    estimator: threshold\n    formula: lnpat ~ urbanization\n    options: {threshold: lndf, regime: lndf, n: 4}\n"))
check_error("custom.yaml:%d+:%d+: models%.m%.options%.kind: unknown value \"c\"", model("custom",
  "    estimator: reg_nodraw\n    formula: lnpat ~ lndf\n    options: {kind: c}\n"))
checks(model("legacy", "    estimator: reg_legacy\n    formula: lnpat ~ lndf\n    options: {anything: 1}\n"),
  "an estimator registered with only {name, fit} gets its options unchecked")
-- model keys the estimator does not use (they were silently ignored)
check_error("sdm_compat.yaml:%d+:%d+: models%.m%.compat: estimator 'sdm' does not use 'compat' %(it uses: weights%)",
  model("sdm_compat", "    estimator: sdm\n    formula: lnpat ~ lndf | province + year\n    weights: W\n    compat: stata\n"))
check_error("sdm_vcov.yaml:%d+:%d+: models%.m%.vcov: estimator 'sdm' does not use 'vcov' %(it uses: weights%); it takes " ..
  "vcov as an option", model("sdm_vcov", "    estimator: sdm\n    formula: lnpat ~ lndf | province + year\n    weights: W\n" ..
  "    vcov: hessian\n"))
check_error("re_w.yaml:%d+:%d+: models%.m%.weights: estimator 're' does not use 'weights' %(it uses: vcov, compat%)",
  model("re_w", "    estimator: re\n    formula: lnpat ~ lndf\n    weights: urbanization\n"))
-- roll-outs need a fit with dynamic treatment effects, one kind of experiment at a time
local ro = "    rollout: {where: \"region_nbs == 'West'\", from: 2018}\n"
check_error("ro_ols.yaml:%d+:%d+: experiments%.west%.rollout: model 'm' %(estimator 'ols'%) has no dynamic treatment " ..
  "effects, so 'rollout' is not available", variant("ro_ols",
  "    shock: {variable: digital_finance, where: \"region_nbs == 'West'\", from: 2020, change: \"+20%\"}\n", ro))
check_error("ro_two.yaml:%d+:%d+: experiments%.west: give one of 'shock', 'shocks' and 'rollout'",
  variant("ro_two", "    draws: 20\n", "    draws: 20\n" .. ro))
check_error("ro_where.yaml:%d+:%d+: experiments%.west%.rollout%.where: the roll%-out selects no row", variant("ro_where",
  "    shock: {variable: digital_finance, where: \"region_nbs == 'West'\", from: 2020, change: \"+20%\"}\n",
  "    rollout: {where: \"region_nbs == 'Wst'\", from: 2018}\n"))
-- an experiment's disparity change: its groups must be a column, dagum needs them
check_error("disp_g.yaml:%d+:%d+: experiments%.west%.disparity%.groups: unknown column 'regoin'", variant("disp_g",
  "    draws: 20\n", "    draws: 20\n    disparity: {measure: gini, groups: regoin}\n"))
check_error("disp_d.yaml:%d+:%d+: experiments%.west%.disparity: measure 'dagum' decomposes by groups", variant("disp_d",
  "    draws: 20\n", "    draws: 20\n    disparity: {measure: dagum}\n"))
-- a vcov kind the estimator does not take (between has one row per entity)
check_error("be_cl.yaml:%d+:%d+: models%.m%.vcov: estimator 'between' does not take vcov 'cluster' %(it takes: " ..
  "classic, iid, hc0, hc1, hc2, hc3%)", model("be_cl", "    estimator: between\n    formula: lnpat ~ lndf\n" ..
  "    vcov: {cluster: province}\n"))
checks(model("be_hc1", "    estimator: between\n    formula: lnpat ~ lndf\n    vcov: HC1\n"),
  "between takes vcov hc1 (names fold case)")
T.checkerr("'vcov' must be an array of covariance kinds", registry.register,
  { name = "bad_vcov", fit = function() end, vcov = "hc1" })
-- weights: every constructor of sp.weights, one per entry
do
  local coords = root .. "/scenarios/data/cn_province_capital_coords.csv"
  local wyaml = "weights:\n  W: {contiguity: ADJ, from: province_i, to: province_j}\n" ..
    "  D: {distance: COORDS, x: longitude, y: latitude, great_circle: true, power: 2, cutoff: 1500}\n" ..
    "  E: {economic: gdp_per_capita, style: B}\n" ..
    "  N: {nested: [D, E], style: spectral}\n"
  wyaml = wyaml:gsub("ADJ", root .. "/scenarios/data/cn_province_adjacency_31_edges.csv"):gsub("COORDS", coords)
  local text = T.edit(T.read(variant("wk0")), "weights:\n  W: {contiguity: " .. root ..
    "/scenarios/data/cn_province_adjacency_31_edges.csv, from: province_i, to: province_j}\n", wyaml)
  local p = T.write(tmp .. "/wkinds.yaml", T.edit(text, "    estimator: ols\n    formula: lnpat ~ lndf + urbanization | province + year\n",
    "    estimator: sar\n    formula: lnpat ~ lndf + urbanization | province + year\n    weights: N\n"))
  checks(p, "distance, economic and nested (spectral) weights check")
  local res = scenario.execute(scenario.load(p))
  local f = res.fits.m
  T.check(f and f.coef and f:coef().lndf ~= nil, "a spatial model runs on nested, spectral-normalised weights")
  local sw = sp.weights
  local Dw = sw.distance(sp.read_csv(coords), { id = "province", x = "longitude", y = "latitude", great_circle = true,
    power = 2, cutoff = 1500 })
  T.check(Dw:n() == 31, "the distance weights have the 31 provinces")
  check_error("wtwo.yaml:%d+:%d+: weights%.E: give only one of contiguity, knn, distance, economic, nested",
    T.write(tmp .. "/wtwo.yaml", T.edit(text, "  E: {economic: gdp_per_capita, style: B}", "  E: {economic: gdp_per_capita, knn: x.csv}")))
  check_error("wecon.yaml:%d+:%d+: weights%.E%.economic: unknown column 'gdp_percapita'",
    T.write(tmp .. "/wecon.yaml", T.edit(text, "{economic: gdp_per_capita", "{economic: gdp_percapita")))
  check_error("wnest.yaml:%d+:%d+: weights%.N%.nested: unknown weights 'Q'",
    T.write(tmp .. "/wnest.yaml", T.edit(text, "nested: [D, E]", "nested: [D, Q]")))
end
-- spatial estimators need weights: naming a weights entry
check_error("sdm_now.yaml:%d+:%d+: models%.m: estimator 'sdm' needs 'weights' naming an entry of weights:",
  model("sdm_now", "    estimator: sdm\n    formula: lnpat ~ lndf | province + year\n"))
-- experiments the model cannot serve
local function boot(name, text)
  return T.write(tmp .. "/" .. name .. ".yaml", T.edit(T.read(model(name, text)), "draws: 20", "bootstrap: 20"))
end
check_error("iv_boot.yaml:%d+:%d+: experiments%.west%.bootstrap: model 'm' %(estimator 'iv'%) cannot be refitted on " ..
  "resampled data, so 'bootstrap' is not available; use 'draws'",
  boot("iv_boot", "    estimator: iv\n    formula: lnpat ~ urbanization | province + year | lndf ~ gdp_per_capita\n"))
local re_boot = boot("re_boot", "    estimator: re\n    formula: lnpat ~ lndf\n")
check_error("re_boot.yaml:%d+:%d+: experiments%.west%.bootstrap: model 'm' %(estimator 're'%) cannot be refitted", re_boot)
check_error("nodraw.yaml:%d+:%d+: experiments%.west%.draws: model 'm' %(estimator 'reg_nodraw'%) has no usable covariance " ..
  "to draw parameters from, so 'draws' is not available; use 'bootstrap'", model("nodraw",
  "    estimator: reg_nodraw\n    formula: lnpat ~ lndf\n    options: {kind: a}\n"))
check_error("nopredict.yaml:%d+:%d+: experiments%.west%.model: model 'm' %(estimator 'reg_nopredict'%) cannot predict",
  model("nopredict", "    estimator: reg_nopredict\n    formula: lnpat ~ lndf\n"))
local noentity = T.write(tmp .. "/noentity.yaml", T.edit(T.read(boot("noentity0", "    estimator: ols\n" ..
  "    formula: lnpat ~ lndf + urbanization | province + year\n")), "  entity: province\n", ""))
check_error("noentity.yaml:%d+:%d+: experiments%.west%.bootstrap: 'bootstrap' resamples the panel's entities; give data.entity",
  noentity)
-- the same experiments on an estimator that declares nothing are left to the run
local legacy_boot = boot("legacy_boot", "    estimator: reg_legacy\n    formula: lnpat ~ lndf\n")
checks(legacy_boot, "check cannot refuse bootstrap for an estimator that declares no capabilities")
-- What the estimator cannot know in advance, the fit says: sp.ols sends a
-- formula with an IV part to 2SLS, whose fits have no refit.  The run
-- refuses the experiment with check's words, at the same place.
local ols_iv = boot("ols_iv", "    estimator: ols\n    formula: lnpat ~ urbanization | province + year | lndf ~ gdp_per_capita\n")
checks(ols_iv, "ols declares refit: check lets bootstrap through")
T.checkerr("ols_iv.yaml:%d+:%d+: experiments%.west%.bootstrap: model 'm' cannot be refitted on resampled data, so " ..
  "'bootstrap' is not available; use 'draws'", function() scenario.execute(scenario.load(ols_iv)) end)

-- ---- the run: options reach the fit; report sections ----------------------------------
local r = scenario.execute(scenario.load(model("legacy_run", "    estimator: reg_legacy\n    formula: lnpat ~ lndf\n" ..
  "    options: {anything: 1}\n")))
T.check(seen_options and seen_options.anything == 1 and r.fits.m ~= nil, "the model's options reach the estimator's fit")

-- A section of a user estimator: its json under models.<name>.<section>, its
-- files through out (name, formats, labels, number formatting, log).
sp.register_estimator {
  name = "reg_sections", options = {}, capabilities = { predict = true, refit = true, draw = true },
  fit = function(d, m)
    local f = sp.ols(d, m.formula)
    f.report_sections = { {
      name = "extra",
      json = function(fit) return { nobs = fit.nobs, tag = "x" } end,
      files = function(fit, out)
        out:write("extra_" .. out.name .. ".md", out.label("lndf") .. " " .. out.number(fit.nobs) ..
          (out.formats.md and " md" or "") .. "\n")
        out:log("extra of %s written", out.name)
      end,
    } }
    return f
  end,
}
local sec = model("sections", "    estimator: reg_sections\n    formula: lnpat ~ lndf\n"):gsub("%.yaml$", "")
local text = T.read(sec .. ".yaml") .. "report:\n  formats: [md]\n  labels: {lndf: ln DF}\n"
T.write(sec .. ".yaml", text)
local outdir = scenario.run(scenario.load(sec .. ".yaml"), { outdir = tmp .. "/out_sections" })
local res = sp.json.read(outdir .. "/results.json")
T.check(res.models.m.extra and res.models.m.extra.tag == "x" and res.models.m.extra.nobs == res.models.m.nobs,
  "a section's json lands under models.<name>.<section>")
T.check(T.read(outdir .. "/extra_m.md") == "ln DF 372 md\n", "a section's files are written through out", T.read(outdir .. "/extra_m.md"))
T.check((T.read(outdir .. "/run.log") or ""):find("extra of m written", 1, true), "out:log writes to run.log")
-- A section may not write outside the folder, nor replace a field of the model's record.
sp.register_estimator {
  name = "reg_escape", options = {},
  fit = function(d, m)
    local f = sp.ols(d, m.formula)
    f.report_sections = { { name = "escape", files = function(_, out) out:write("../escaped.md", "x") end } }
    return f
  end,
}
sp.register_estimator {
  name = "reg_clash", options = {},
  fit = function(d, m)
    local f = sp.ols(d, m.formula)
    f.report_sections = { { name = "coef", json = function() return 1 end } }
    return f
  end,
}
for _, case in ipairs({ { "reg_escape", "report section 'escape' of model m: .*name '%.%./escaped%.md' contains '/'" },
  { "reg_clash", "report section 'coef' of model m would replace the model's 'coef' in results%.json" } }) do
  local p = model(case[1], "    estimator: " .. case[1] .. "\n    formula: lnpat ~ lndf\n")
  T.checkerr(case[2], scenario.run, scenario.load(p), { outdir = tmp .. "/out_" .. case[1] })
  T.check(not sp.sys.exists(tmp .. "/escaped.md") and not sp.sys.exists(tmp .. "/out_" .. case[1]),
    case[1] .. ": nothing written")
end

-- ---- the seam: the scenario modules, the report and the counterfactual engine
-- name no estimator in a string (each estimator's module registers itself
-- and writes its own report sections)
for _, file in ipairs({ "scenario", "scenario_check", "scenario_derive", "scenario_run", "report", "counterfactual",
  "cli" }) do
  local text = T.read(root .. "/lua/spillover/" .. file .. ".lua")
  local named = {}
  for _, n in ipairs(registry.names()) do
    if registry.get(n).builtin and (text:find('"' .. n .. '"', 1, true) or text:find("'" .. n .. "'", 1, true)) then
      named[#named + 1] = n
    end
  end
  T.check(text and #named == 0, file .. ".lua names no estimator", table.concat(named, ", "))
end

sp.sys.remove_tree(tmp)
T.done()
