-- spillover.scenario_run: estimating a checked scenario's models and running
-- its experiments (spillover.counterfactual), with the public Lua API only.
-- Estimators come from spillover.registry; the report (spillover.report)
-- writes the results.
local core = require "spillover.core"
local registry = require "spillover.registry"
local check = require "spillover.scenario_check"
local derive_step = require("spillover.scenario_derive").step
local util = require "spillover.util"
local fail, resolve, as_list = check.fail, check.resolve, check.as_list

local M = {}

local function now()
  local sys = core.sys
  return sys and sys.now and sys.now() or os.clock()
end

--- Whether a checked spec has work a split run shares out (spillover.parts):
--- a sweep, or a specification curve.
function M.splittable(spec)
  if spec.spec_curve then return true end
  for _, e in pairs(spec.experiments or {}) do
    if e.sweep then return true end
  end
  return false
end

--- Estimate the models, run the experiments; returns the results table.
--- opts.progress: function(label, done, total); opts.split: a part of a split
--- run (spillover.parts), which computes only its share of the sweeps' points
--- and the curve's cells (and the models they need), or an assembly of the
--- parts, which takes those from the part files.
function M.execute(s, opts)
  opts = opts or {}
  local split = opts.split
  local part = split and split.k ~= nil
  if not s.checked then check.check(s, opts) end
  local spec = s.spec
  local timings = {}
  local t0 = now()
  local d = s.data or check.load_data(s)
  timings.data = now() - t0
  local derive = derive_step(s)
  t0 = now()
  derive(d, true)
  timings.derive = now() - t0
  local fits = {}
  local model_spec, by_fits = {}, {}
  local built_weights = {}
  --- The weights of a model over the data's units (in order of first appearance).
  local function weights_of(m)
    local wname = type(m) == "string" and m or m.weights
    if built_weights[wname] then return built_weights[wname] end
    local w = spec.weights[wname]
    local idcol = w.id or spec.data.entity
    local col = d[idcol]
    local ids, seen = {}, {}
    for i = 1, d:nrow() do
      local v = type(col) == "table" and col[i] or col:get(i, 1)
      if not seen[v] then seen[v] = true; ids[#ids + 1] = v end
    end
    local sw = require("spillover.spatial").weights
    -- spectral: the raw weights divided by their spectral radius (largest |eigenvalue|)
    local style = (w.style == "B" or w.style == "binary" or w.style == "spectral") and "B" or "W"
    local W
    if w.contiguity then
      W = sw.contiguity(resolve(s, w.contiguity), { from = w.from, to = w.to, ids = ids, style = style })
    elseif w.knn or w.distance then
      local coords = core.read_csv(resolve(s, w.knn or w.distance))
      local o = { id = w.id or spec.data.entity, x = w.x, y = w.y, great_circle = w.great_circle, style = style }
      if w.knn then
        W = sw.knn(coords, w.k or 4, o)
      else
        o.power, o.cutoff = w.power, w.cutoff
        W = sw.distance(coords, o)
      end
      W = W:align(ids)
    elseif w.economic then
      W = sw.economic(d, w.economic, { ids = idcol, style = style }):align(ids)
    else
      W = sw.nested(weights_of(w.nested[1]), weights_of(w.nested[2]), { phi = w.phi, style = style })
    end
    if w.style == "spectral" then W = sw.spectral(W) end
    built_weights[wname] = W
    return W
  end
  --- What an estimator's fit gets as its model: the scenario's entry, the
  --- run's seed (for simulations that are not the estimator's options, such
  --- as the draws of a report section) and, for spatial estimators, the built
  --- weights.
  local function model_view(m, est)
    local view = {}
    for k, v in pairs(m) do view[k] = v end
    view.seed = spec.seed or 42
    if est.capabilities and est.capabilities.spatial then
      local ok, W = pcall(weights_of, m)
      if not ok then fail(s, "weights." .. m.weights, util.message(W)) end
      view.weights_object = W
    end
    return view
  end
  local function estimate(name, m, data)
    local est = registry.get(m.estimator)
    local ok, f = pcall(est.fit, data, model_view(m, est), m.options or {})
    if not ok then fail(s, "models." .. name, "estimation failed: " .. util.message(f)) end
    if type(f) ~= "table" or not f.coef then
      fail(s, "models." .. name, "estimator '" .. m.estimator .. "' did not return a fit (see the fit protocol)")
    end
    return f
  end
  local function fit_of(name)
    if fits[name] then return fits[name] end
    local m = spec.models[name]
    local t1 = now()
    if m.by then
      -- Heterogeneity: the model by group (as sp.by), one fit per value.
      local col = d[m.by]
      local values, seen = {}, {}
      for i = 1, d:nrow() do
        local v = col[i]
        if v ~= nil and v == v and not seen[v] then seen[v] = true; values[#values + 1] = v end
      end
      table.sort(values, function(a, b) return tostring(a) < tostring(b) end)
      by_fits[name] = {}
      for _, v in ipairs(values) do
        local sub = d:filter(function(row) return row[m.by] == v end)
        local shown = math.tointeger(v) and string.format("%d", v) or tostring(v)
        local key = string.format("%s[%s=%s]", name, m.by, shown)
        local f = estimate(key, m, sub)
        f.label = (m.label or name) .. ": " .. shown
        fits[key], model_spec[key] = f, m
        by_fits[name][#by_fits[name] + 1] = key
      end
    else
      local f = estimate(name, m, d)
      f.label = m.label or f.label
      fits[name], model_spec[name] = f, m
    end
    timings["model " .. name] = now() - t1
    return fits[name]
  end
  local names = {}
  for k in pairs(spec.models) do names[#names + 1] = k end
  table.sort(names)
  -- (a part fits only the models of its sweeps, when it reaches them)
  if not part then
    for _, k in ipairs(names) do fit_of(k) end
  end

  local cf = require "spillover.counterfactual"
  local results = { experiments = {} }
  local exp_names = {}
  for k, e in pairs(spec.experiments or {}) do
    if e.sweep or not part then exp_names[#exp_names + 1] = k end
  end
  table.sort(exp_names)
  for _, k in ipairs(exp_names) do
    local e = spec.experiments[k]
    local t1 = now()
    -- What the fit itself says it cannot do (check knew only what its
    -- estimator declared: sp.ols of a formula with an IV part has no refit).
    local f = fit_of(e.model)
    local msg, key = check.serve_problem("model '" .. e.model .. "'", f.capabilities or {}, e)
    if msg then fail(s, "experiments." .. k .. "." .. key, msg, true) end
    -- One run of the experiment e (a sweep runs it once per point).
    local function run_one(e)
      local run_spec = {
        data = d, fit = f, shocks = e.shocks or { e.shock },
        derive = function(frame) derive(frame, false) end,
        entity = spec.data.entity, time = spec.data.time, groups = as_list(e.groups),
        draws = e.draws, bootstrap = e.bootstrap, seed = e.seed or spec.seed or 42, level = e.level,
        disparity = e.disparity, allocate = e.allocate, timing = e.timing, announced = e.announced,
        scale = cf.experiment_scale(spec.models[e.model].formula, spec.derive, e.scale) or false,
        progress = opts.progress and function(i, n) opts.progress(k, i, n) end or false,
      }
      local run = cf.run
      if e.rollout then
        run_spec.where, run_spec.from = e.rollout.where, e.rollout.from
        run = require("spillover.rollout").run
      elseif e.allocate then
        run = require("spillover.allocate").run
      end
      return run(run_spec)
    end
    local ok, r
    if e.sweep then
      local outcome = require("spillover.formula").parse(f.formula):response()
      ok, r = pcall(require("spillover.sweep").run, e, run_one,
        { scenario = spec.name, experiment = k, outcome = outcome, model = e.model, seed = spec.seed }, split)
    else
      ok, r = pcall(run_one, e)
    end
    if not ok then fail(s, "experiments." .. k, util.message(r)) end
    if r then
      r.model = e.model
      results.experiments[k] = r
    end
    timings["experiment " .. k] = now() - t1
  end
  if (spec.compare or #exp_names > 1) and not part then
    -- listed by compare:, or else every experiment
    local names = type(spec.compare) == "table" and spec.compare or nil
    local ok, rows = pcall(require("spillover.compare").table, spec, results, d, names)
    if not ok then fail(s, "compare", util.message(rows)) end
    results.compare = rows
  end
  if spec.spec_curve then
    local t1 = now()
    local ok, curve = pcall(require("spillover.spec_curve").from_scenario, spec.spec_curve, d, weights_of,
      spec.seed or 42, split)
    if not ok then fail(s, "spec_curve", util.message(curve)) end
    results.spec_curve = curve
    timings.spec_curve = now() - t1
  end
  results.fits = fits
  results.model_spec = model_spec
  results.by_fits = by_fits
  results.data = d
  results.indices = s.indices
  results.timings = timings
  return results
end

return M
