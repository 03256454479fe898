-- spillover.distribution: the scenario estimator "disparity" and its
-- `distribution` report section (issue 13).  A model
--
--   models:
--     dist:
--       estimator: disparity
--       formula: pat_pc ~ lndf         # the variable ~ controls of conditional beta convergence
--       weights: W                     # spatial Markov, spatial Gini, spatial beta
--       options: {groups: region_nbs, k: 4, spatial: sar}
--
-- estimates beta convergence of the variable (its fit is the regression, so
-- it appears in the report's tables) and describes the variable's
-- distribution over the periods: the Dagum decomposition by group per
-- period, Theil, the kernel densities (a ridgeline and a heat map), the
-- spatial Markov chain of relative values, sigma convergence, spatial beta
-- convergence and the Phillips & Sul log t test.  The section writes
-- distribution_<model>.md and its figures, and puts every number into
-- results.json under models.<model>.distribution.
local util = require "spillover.util"
local raise = util.raise

local M = {}

--- The values of var as an n x T array over the units in order of first
--- appearance (the order the scenario's weights are built in) and the
--- sorted periods; the panel must be balanced.
local function wide(d, var, entity, time)
  local x = d:column(var):totable()
  local e, t = d:column(entity), d:column(time)
  e = type(e) == "userdata" and e:totable() or e
  t = type(t) == "userdata" and t:totable() or t
  local units, uidx, periods, pidx = {}, {}, {}, {}
  for i = 1, #x do
    local ek, tk = util.key_of(e[i]), util.key_of(t[i])
    if not uidx[ek] then units[#units + 1] = e[i]; uidx[ek] = #units end
    if not pidx[tk] then periods[#periods + 1] = t[i]; pidx[tk] = true end
  end
  table.sort(periods, function(a, b) return a < b end)
  for j, p in ipairs(periods) do pidx[util.key_of(p)] = j end
  local rows = {}
  for u = 1, #units do rows[u] = {} end
  for i = 1, #x do
    rows[uidx[util.key_of(e[i])]][pidx[util.key_of(t[i])]] = x[i]
  end
  for u = 1, #units do
    for j = 1, #periods do
      local v = rows[u][j]
      if v == nil or v ~= v then
        raise(string.format("disparity: %s is missing for %s in %s; the Markov chains and the log t test need a balanced panel",
          var, tostring(units[u]), tostring(periods[j])))
      end
    end
  end
  return rows, units, periods
end

local function relative(rows)
  local out, n = {}, #rows
  for i = 1, n do out[i] = {} end
  for t = 1, #rows[1] do
    local s = 0
    for i = 1, n do s = s + rows[i][t] end
    for i = 1, n do out[i][t] = rows[i][t] / (s / n) end
  end
  return out
end

--- Everything the section reports, computed once when the model is fitted.
local function describe(d, var, controls, model, options)
  local dis = require "spillover.disparity"
  local markov = require "spillover.markov"
  local conv = require "spillover.convergence"
  local panel = util.panel_of(d)
  if not panel or not panel.entity or not panel.time then
    raise("disparity: the data need a panel index (data: entity: and time:)")
  end
  local entity, time = panel.entity, panel.time
  local W = model.weights_object
  local res = { variable = var, groups = options.groups }
  local rows, units, periods = wide(d, var, entity, time)
  res.periods = periods
  res.theil = dis.by_period(d, var, { groups = options.groups, measure = "theil", weights = options.population })
  res.gini = dis.by_period(d, var, { measure = "gini", weights = options.population })
  if options.groups then res.dagum = dis.by_period(d, var, { groups = options.groups, measure = "dagum" }) end
  -- One grid for every period, so the densities line up (ridgeline, heat map).
  local lo, hi = math.huge, -math.huge
  for _, r in ipairs(rows) do for _, v in ipairs(r) do lo, hi = math.min(lo, v), math.max(hi, v) end end
  local cols, pad = {}, 0
  for j = 1, #periods do
    local col = {}
    for i = 1, #rows do col[i] = rows[i][j] end
    cols[j] = col
    pad = math.max(pad, 3 * util.kde(col, { kernel = options.kernel, bw = options.bw, n = 2 }).bw)
  end
  local dens = {}
  for j = 1, #periods do
    local k = util.kde(cols[j], { kernel = options.kernel, bw = options.bw, n = 128, from = lo - pad, to = hi + pad })
    dens[j] = { period = periods[j], x = k.x, y = k.y, bw = k.bw }
  end
  res.kde = dens
  local rel = relative(rows)
  local k = options.k or 4
  res.markov = markov.markov(rel, { k = k })
  if W then
    if W:n() ~= #units then raise("disparity: the weights are over " .. W:n() .. " units, the data have " .. #units) end
    res.spatial_markov = markov.spatial_markov(rel, W, { k = k, m = options.m or k })
    local last = {}
    for i = 1, #rows do last[i] = rows[i][#periods] end
    res.spatial_gini = dis.spatial_gini(last, W, { permutations = options.permutations or 999, seed = model.seed })
    res.spatial_gini.period = periods[#periods]
  end
  res.sigma = conv.sigma(d, var, { groups = options.groups })
  local beta_opts = { controls = controls, fe = options.fe or "entity" }
  res.beta = conv.beta(d, var, beta_opts)
  if options.spatial then
    if not W then raise("disparity: spatial beta convergence needs the model's weights:") end
    res.spatial_beta = conv.beta(d, var, { controls = controls, fe = options.fe or "entity", spatial = options.spatial,
      weights = W })
  end
  local logs = {}
  for i = 1, #rows do
    logs[i] = {}
    for j = 1, #periods do
      if not (rows[i][j] > 0) then raise("disparity: the log t test needs values > 0 (" .. var .. ")") end
      logs[i][j] = math.log(rows[i][j])
    end
  end
  -- Phillips & Sul's h_it = x / mean needs x of one sign: logs of values
  -- above 1 (per-capita incomes, patents per 10,000) are; otherwise the
  -- levels are used.
  local ok_logs = true
  for i = 1, #logs do for j = 1, #periods do if logs[i][j] <= 0 then ok_logs = false end end end
  res.log_t = conv.log_t(ok_logs and logs or rows)
  res.log_t.on = ok_logs and "log" or "level"
  local cl = conv.clubs(ok_logs and logs or rows)
  res.clubs = { divergent = {}, clubs = {} }
  for i, c in ipairs(cl.clubs) do
    local names = {}
    for k, u in ipairs(c.units) do names[k] = units[u] end
    res.clubs.clubs[i] = { units = names, t = c.t, b = c.b }
  end
  for k, u in ipairs(cl.divergent) do res.clubs.divergent[k] = units[u] end
  return res
end

local function num(v, d) return v ~= v and "NA" or string.format("%." .. (d or 4) .. "f", v) end

local function beta_line(b, label)
  local se = b.fit:se().lag_log
  return string.format("| %s | %s | %s | %s | %s | %d |", label, num(b.b), num(se), num(b.speed), num(b.half_life, 2),
    b.nobs)
end

--- The Markdown report of a description.
local function markdown(r, name)
  local out = { "# Distribution of " .. r.variable .. " (model " .. name .. ")", "" }
  if r.dagum then
    local last = r.dagum[#r.dagum]
    out[#out + 1] = "## Dagum Gini decomposition by " .. r.groups .. ", " .. util.key_of(last.period)
    out[#out + 1] = ""
    out[#out + 1] = require("spillover.disparity").dagum_table(last.result)
    out[#out + 1] = "## Dagum decomposition by period"
    out[#out + 1] = ""
    out[#out + 1] = "| period | G | Gw | Gnb | Gt | Gw share | Gnb share | Gt share |"
    out[#out + 1] = "|---|---:|---:|---:|---:|---:|---:|---:|"
    for _, row in ipairs(r.dagum) do
      local g = row.result
      out[#out + 1] = string.format("| %s | %s | %s | %s | %s | %s | %s | %s |", util.key_of(row.period), num(g.G), num(g.Gw),
        num(g.Gnb), num(g.Gt), num(g.shares.Gw), num(g.shares.Gnb), num(g.shares.Gt))
    end
    out[#out + 1] = ""
  end
  out[#out + 1] = "## Theil index and sigma convergence"
  out[#out + 1] = ""
  out[#out + 1] = "| period | Gini | Theil T | T between | T within | Theil L | CV | sd of logs |"
  out[#out + 1] = "|---|---:|---:|---:|---:|---:|---:|---:|"
  for j, row in ipairs(r.theil) do
    local t = row.result
    out[#out + 1] = string.format("| %s | %s | %s | %s | %s | %s | %s | %s |", util.key_of(row.period), num(r.gini[j].result),
      num(t.T), t.between and num(t.between.T) or "", t.within and num(t.within.T) or "", num(t.L), num(r.sigma[j].cv),
      num(r.sigma[j].sd_log))
  end
  out[#out + 1] = ""
  local markov = require "spillover.markov"
  out[#out + 1] = "## Markov chain of values relative to each period's mean (" .. r.markov.k ..
    " pooled quantile classes)"
  out[#out + 1] = ""
  if not r.spatial_markov then
    out[#out + 1] = markov.table(r.markov)
  else
    -- The spatial chain's table starts with the classic chain.
    out[#out + 1] = markov.table(r.spatial_markov)
    local sg = r.spatial_gini
    out[#out + 1] = string.format("Spatial Gini (%s): G = %s, non-neighbour share %s, permutation p = %s (%d permutations)",
      util.key_of(sg.period), num(sg.gini), num(sg.wcg_share), num(sg.p_sim, 3), sg.permutations)
    out[#out + 1] = ""
  end
  out[#out + 1] = "## Beta convergence (growth on the lagged log level)"
  out[#out + 1] = ""
  out[#out + 1] = "| model | b | se | speed | half-life | N |"
  out[#out + 1] = "|---|---:|---:|---:|---:|---:|"
  out[#out + 1] = beta_line(r.beta, "fixed effects (" .. r.beta.fe .. ")")
  if r.spatial_beta then out[#out + 1] = beta_line(r.spatial_beta, "spatial") end
  out[#out + 1] = ""
  local lt = r.log_t
  out[#out + 1] = string.format("Phillips & Sul log t (%s values): b = %s, t = %s (%s at 5%%)", lt.on, num(lt.b), num(lt.t, 2),
    lt.converge and "convergence not rejected" or "convergence rejected")
  out[#out + 1] = ""
  out[#out + 1] = "Convergence clubs (Phillips & Sul clustering with merging, ordered by the last period):"
  out[#out + 1] = ""
  out[#out + 1] = "| club | units | b | t |"
  out[#out + 1] = "|---|---|---:|---:|"
  for i, c in ipairs(r.clubs.clubs) do
    local names = {}
    for k, u in ipairs(c.units) do names[k] = tostring(u) end
    out[#out + 1] = string.format("| %d | %s | %s | %s |", i, table.concat(names, ", "), num(c.b), num(c.t, 2))
  end
  if #r.clubs.divergent > 0 then
    local names = {}
    for k, u in ipairs(r.clubs.divergent) do names[k] = tostring(u) end
    out[#out + 1] = "| divergent | " .. table.concat(names, ", ") .. " | | |"
  end
  return table.concat(out, "\n") .. "\n"
end

local function json_of(r)
  local function beta(b)
    if not b then return nil end
    return { b = b.b, se = b.fit:se().lag_log, speed = b.speed, half_life = b.half_life, nobs = b.nobs, fe = b.fe,
      rho = b.fit:coef().rho }
  end
  local dagum
  if r.dagum then
    dagum = {}
    for i, row in ipairs(r.dagum) do
      local g = row.result
      dagum[i] = { period = row.period, G = g.G, Gw = g.Gw, Gnb = g.Gnb, Gt = g.Gt, shares = g.shares, within = g.within,
        between = g.between }
    end
  end
  local theil = {}
  for i, row in ipairs(r.theil) do
    local t = row.result
    theil[i] = { period = row.period, T = t.T, L = t.L, between = t.between, within = t.within, gini = r.gini[i].result }
  end
  local kde = {}
  for i, k in ipairs(r.kde) do kde[i] = { period = k.period, bw = k.bw, x = k.x, y = k.y } end
  local function chain(c)
    if not c then return nil end
    return { k = c.k, cutoffs = c.cutoffs, transitions = c.transitions, P = c.P, steady_state = c.steady_state,
      mfpt = c.mfpt, sojourn = c.sojourn, lag_cutoffs = c.lag_cutoffs, P_lag = c.P_lag, T_lag = c.T_lag, S = c.S,
      Q = c.Q, LR = c.LR }
  end
  local sg = r.spatial_gini
  return { variable = r.variable, dagum = dagum, theil = theil, kde = kde, sigma = r.sigma, markov = chain(r.markov),
    spatial_markov = chain(r.spatial_markov),
    spatial_gini = sg and { period = sg.period, gini = sg.gini, wg = sg.wg, wcg = sg.wcg, p_sim = sg.p_sim } or nil,
    beta = beta(r.beta), spatial_beta = beta(r.spatial_beta),
    log_t = { b = r.log_t.b, se = r.log_t.se, t = r.log_t.t, converge = r.log_t.converge, on = r.log_t.on },
    clubs = r.clubs }
end

local function figures(r, out)
  local plot = require "spillover.plot"
  local exts = {}
  for _, e in ipairs { "png", "svg" } do if out.formats[e] then exts[#exts + 1] = e end end
  if #exts == 0 then return end
  local function paths(stem)
    local p = {}
    for i, e in ipairs(exts) do p[i] = out:path(stem .. "_" .. out.name .. "." .. e) end
    return p
  end
  local label = out.label(r.variable)
  local series, xs, zs = {}, {}, {}
  for i, k in ipairs(r.kde) do
    series[i] = { label = util.key_of(k.period), x = k.x, y = k.y }
    xs[i], zs[i] = tonumber(k.period) or i, k.y
  end
  plot.ridgeline(paths("ridgeline"), { series = series, xlabel = label })
  plot.heatmap(paths("density"), { x = xs, y = r.kde[1].x, z = zs, ylabel = label })
  if r.dagum then require("spillover.disparity").dagum_plot(paths("dagum"), r.dagum) end
end

--- The fit of the scenario estimator: the beta convergence regression,
--- carrying the distribution section.
function M.fit(d, model, options)
  options = options or {}
  local f = require("spillover.formula").parse(model.formula)
  local var = f:response()
  local controls = {}
  for _, t in ipairs(f:terms()) do controls[#controls + 1] = t end
  local r = describe(d, var, controls, model, options)
  local fit = r.beta.fit
  fit.label = "beta convergence of " .. var
  fit.report_sections = { {
    name = "distribution",
    json = function() return json_of(r) end,
    files = function(_, out)
      out:write("distribution_" .. out.name .. ".md", markdown(r, out.name))
      figures(r, out)
      out:log("distribution report of %s written", out.name)
    end,
  } }
  return fit
end

M.describe = describe
M.markdown = markdown

return M
