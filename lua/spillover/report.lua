-- spillover.report: the output folder of a scenario run.
--
--   results.json    every number, full precision, deterministic (same
--                   scenario + seed -> byte-identical file)
--   tables.*        regression tables (etable: md, tex, csv, and html/xlsx on request)
--   effects_<e>.csv / effects_<e>_groups.csv / .md   counterfactual effects
--   <e>_paths.png|svg, <e>_units.png|svg             plots
--   manifest.json   SHA-256 of every input, seed, versions, timings
--   run.log         what ran, how long it took, warnings
-- Everything is written into a temporary folder next to the target, which
-- replaces the target only when complete: a failed run leaves no folder that
-- looks complete.
local core = require "spillover.core"
local json = require "spillover.json"

local M = {}

local function sys()
  if not core.sys then error("report: this build has no system services (sp.sys)", 3) end
  return core.sys
end

local function write_file(path, text)
  local f, msg = io.open(path, "wb")
  if not f then error("cannot write " .. path .. ": " .. tostring(msg), 0) end
  f:write(text)
  f:close()
end

--- Plain data only (numbers, strings, booleans, tables of those).
local function plain(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "number" or t == "string" or t == "boolean" then return v end
  if t == "table" and depth < 12 and (getmetatable(v) == nil or (core.yaml and core.yaml.is_seq(v))) then
    local out = {}
    for k, x in pairs(v) do
      local p = plain(x, depth + 1)
      if p ~= nil and (type(k) == "string" or type(k) == "number") then out[k] = p end
    end
    return out
  end
  if t == "userdata" and v.totable then return plain(v:totable(), depth + 1) end
  return nil
end

local function fit_record(f, spec)
  local fe = {}
  for i, e in ipairs(f.fe or {}) do fe[i] = { name = e.name, nlevels = e.nlevels } end
  return {
    estimator = spec.estimator, formula = spec.formula, label = f.label, nobs = f.nobs, df_resid = f.df_resid,
    names = json.array(f.names), coef = f:coef(), se = f:se(), pvalue = f:pvalue(), vcov = f:vcov(),
    stats = plain(f.stats), fixed_effects = json.array(fe), vcov_label = f.vcov_label,
    notes = json.array(plain(f.notes) or {}),
  }
end

local function unit_records(r)
  local out = {}
  for i, u in ipairs(r.units) do
    out[i] = { entity = u.entity, period = u.period, baseline = u.baseline, scenario = u.scenario,
      effect = u.effect, pct = u.pct, lo = u.lo, hi = u.hi, shocked = u.shocked }
  end
  return json.array(out)
end

local function csv_cell(v)
  if v == nil then return "" end
  if type(v) == "number" then return (v ~= v) and "" or json.number(v) end
  if type(v) == "boolean" then return v and "1" or "0" end
  local s = tostring(v)
  if s:find('[,"\n\r]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local function csv(rows, header)
  local lines = { table.concat(header, ",") }
  for _, r in ipairs(rows) do
    local cells = {}
    for j, h in ipairs(header) do cells[j] = csv_cell(r[h]) end
    lines[#lines + 1] = table.concat(cells, ",")
  end
  return table.concat(lines, "\n") .. "\n"
end

local function sorted_keys(t)
  local k = {}
  for key in pairs(t) do k[#k + 1] = key end
  table.sort(k, function(a, b)
    local na, nb = tonumber(a), tonumber(b)
    if na and nb then return na < nb end
    return tostring(a) < tostring(b)
  end)
  return k
end

local function group_rows(r)
  local rows = {}
  for _, g in ipairs(sorted_keys(r.groups)) do
    local gr = r.groups[g]
    for _, p in ipairs(sorted_keys(gr.periods)) do
      local x = gr.periods[p]
      rows[#rows + 1] = { group = g, period = p, n = x.n, sum = x.sum, sum_lo = x.sum_lo, sum_hi = x.sum_hi,
        mean = x.mean, mean_lo = x.mean_lo, mean_hi = x.mean_hi, pct = x.pct, pct_lo = x.pct_lo, pct_hi = x.pct_hi }
    end
    local x = gr.total
    rows[#rows + 1] = { group = g, period = "total", n = x.n, sum = x.sum, sum_lo = x.sum_lo, sum_hi = x.sum_hi,
      mean = x.mean, mean_lo = x.mean_lo, mean_hi = x.mean_hi, pct = x.pct, pct_lo = x.pct_lo, pct_hi = x.pct_hi }
  end
  return rows
end

local function fmt(v)
  if v == nil or v ~= v then return "" end
  return string.format("%.4g", v)
end

local function groups_markdown(name, r)
  local lines = {
    "# Effects of experiment " .. name,
    "",
    string.format("Model: %s. Intervals: %s (%d draws, %g%% level).", r.model, r.method, r.ndraws, 100 * r.level),
    "",
    "| group | period | n | sum | interval | mean | % of baseline |",
    "|---|---|---:|---:|---|---:|---:|",
  }
  for _, x in ipairs(group_rows(r)) do
    local ci = x.sum_lo and string.format("[%s, %s]", fmt(x.sum_lo), fmt(x.sum_hi)) or ""
    lines[#lines + 1] = string.format("| %s | %s | %d | %s | %s | %s | %s |", x.group, x.period, x.n, fmt(x.sum), ci,
      fmt(x.mean), fmt(x.pct))
  end
  return table.concat(lines, "\n") .. "\n"
end

local function plots(dir, name, r, formats, labels)
  local ok, plot = pcall(require, "spillover.plot")
  if not ok then return { "plots skipped: " .. tostring(plot) } end
  local series = {}
  for _, g in ipairs(sorted_keys(r.groups)) do
    local gr = r.groups[g]
    local shown = g == "all" and "All units" or g:gsub("^[^=]+=", "")
    local s = { label = labels[g] or labels[shown] or shown, x = {}, y = {}, lo = r.ndraws > 0 and {} or nil, hi = r.ndraws > 0 and {} or nil }
    for _, p in ipairs(sorted_keys(gr.periods)) do
      local x = gr.periods[p]
      s.x[#s.x + 1] = tonumber(p) or #s.x + 1
      s.y[#s.y + 1] = x.sum
      if s.lo then s.lo[#s.lo + 1] = x.sum_lo; s.hi[#s.hi + 1] = x.sum_hi end
    end
    series[#series + 1] = s
  end
  local written = {}
  for _, ext in ipairs(formats) do
    local p = dir .. "/" .. name .. "_paths." .. ext
    plot.paths(p, { series = series, xlabel = labels.period or "Period",
      ylabel = labels.effect or "Effect (sum over units)", title = labels[name] or name, zero_line = true })
    written[#written + 1] = p
  end
  if r.entities then
    local ents = {}
    for _, e in ipairs(sorted_keys(r.entities)) do ents[#ents + 1] = e end
    local vals, lo, hi = {}, {}, {}
    local bands = r.ndraws > 0
    for i, e in ipairs(ents) do
      local t = r.entities[e].total
      vals[i], lo[i], hi[i] = t.sum, t.sum_lo, t.sum_hi
      -- a unit whose every draw was undefined has no interval: draw no bars' bands
      if not (lo[i] == lo[i] and hi[i] == hi[i]) then bands = false end
    end
    for _, ext in ipairs(formats) do
      local p = dir .. "/" .. name .. "_units." .. ext
      plot.bars(p, { labels = ents, values = vals, lo = bands and lo or nil, hi = bands and hi or nil,
        xlabel = labels.effect or "Effect (sum over periods)", title = (labels[name] or name) .. ": effect by unit",
        horizontal = true, sort = true })
      written[#written + 1] = p
    end
  end
  return written
end

--- Write the output folder for a run; returns its path.
function M.write(s, results, opts)
  opts = opts or {}
  local S = sys()
  local spec = s.spec
  local outdir = opts.outdir or ("out/" .. spec.name:gsub("[^%w%-_%.]", "_"))
  local parent = outdir:match("^(.*)/[^/]+$") or "."
  local okp, perr = S.mkdir(parent, { parents = true })
  if not okp then error("cannot create " .. parent .. ": " .. tostring(perr), 0) end
  local tmp, terr = S.mkdtemp(outdir .. ".tmp-")
  if not tmp then error("cannot create a temporary output folder: " .. tostring(terr), 0) end
  local log = {}
  local function logf(...) log[#log + 1] = string.format(...) end
  local ok, err = pcall(function()
    local report = spec.report or {}
    local formats = report.formats or { "md", "tex", "csv", "json", "png", "svg" }
    local want = {}
    for _, f in ipairs(formats) do want[f] = true end
    local labels = report.labels or {}
    -- results.json: deterministic content only (no timings, no paths).
    local res = { scenario = spec.name, seed = spec.seed, spillover_version = core.version,
      models = {}, experiments = {}, indices = {} }
    for name, f in pairs(results.fits) do res.models[name] = fit_record(f, results.model_spec[name]) end
    for name, im in pairs(results.impacts or {}) do res.models[name].impacts = plain(im) end
    for name, f in pairs(results.fits) do
      if f.mediation then
        local med = f.mediation
        res.models[name].mediation = plain({ c = med.c, direct = med.direct, effects = med.effects,
          total_indirect = med.total_indirect })
      end
    end
    for name, idx in pairs(results.indices or {}) do
      res.indices[name] = { weights = idx.weights, entropy = idx.entropy, divergence = idx.divergence,
        indicators = plain(spec.derive[name].entropy or spec.derive[name].topsis) }
    end
    for name, r in pairs(results.experiments) do
      res.experiments[name] = { model = r.model, method = r.method, draws = r.ndraws, level = r.level,
        units = unit_records(r), groups = plain(r.groups), entities = plain(r.entities) }
    end
    write_file(tmp .. "/results.json", json.encode(res, { indent = "  " }) .. "\n")
    logf("results.json written")
    -- regression tables
    local table_models = {}
    local listed = report.tables
    if not listed then
      listed = {}
      for k in pairs(spec.models) do listed[#listed + 1] = k end
      table.sort(listed)
    end
    for _, k in ipairs(listed) do
      -- a model estimated by group contributes one column per group
      for _, key in ipairs(results.by_fits[k] or { k }) do table_models[#table_models + 1] = key end
    end
    if #table_models > 0 then
      local fits = {}
      for i, k in ipairs(table_models) do fits[i] = results.fits[k] end
      fits.labels = labels
      fits.headers = table_models
      fits.title = report.title or spec.name
      local tab = core.etable and core.etable(fits) or require("spillover.etable").etable(fits)
      for _, ext in ipairs({ "md", "tex", "csv", "html", "xlsx" }) do
        if want[ext] or ext == "md" then tab:write(tmp .. "/tables." .. ext) end
      end
      logf("tables written for %s", table.concat(table_models, ", "))
    end
    -- threshold models: the thresholds, their tests and the LR(gamma) plot
    for _, name in ipairs(sorted_keys(results.fits)) do
      local f = results.fits[name]
      local st = f.stats
      if st.thresholds and st.lr then
        local md = { "# Thresholds: " .. name, "",
          "| threshold | estimate | 95% LR interval | F | bootstrap p | crit 10% | crit 5% | crit 1% |",
          "|---|---:|---|---:|---:|---:|---:|---:|" }
        for i, g in ipairs(st.thresholds) do
          local ci = st.ci and st.ci[i] or {}
          local t = st.tests and st.tests[i] or {}
          md[#md + 1] = string.format("| %d | %s | [%s, %s] | %s | %s | %s | %s | %s |", i, fmt(g), fmt(ci[1]), fmt(ci[2]),
            fmt(t.F), fmt(t.pvalue), fmt(t.crit10), fmt(t.crit5), fmt(t.crit1))
        end
        write_file(tmp .. "/threshold_" .. name .. ".md", table.concat(md, "\n") .. "\n")
        local okp, thr = pcall(require, "spillover.threshold")
        if okp then
          for _, ext in ipairs({ "png", "svg" }) do
            if want[ext] then thr.lr_plot(f, tmp .. "/lr_" .. name .. "." .. ext) end
          end
        end
        logf("threshold tables and LR plot of %s written", name)
      end
      if f.mediation then
        write_file(tmp .. "/mediation_" .. name .. ".md", "```text\n" .. tostring(f.mediation) .. "\n```\n")
        logf("mediation report of %s written", name)
      end
    end
    -- spatial impacts
    for _, name in ipairs(sorted_keys(results.impacts or {})) do
      local im = results.impacts[name]
      local rows = {}
      for _, v in ipairs(im.names) do
        for _, kind in ipairs({ "direct", "indirect", "total" }) do
          rows[#rows + 1] = { variable = v, effect = kind, estimate = im[kind][v], se = im.se and im.se[kind][v],
            lower = im.lower and im.lower[kind][v], upper = im.upper and im.upper[kind][v],
            pvalue = im.pvalue and im.pvalue[kind][v] }
        end
      end
      write_file(tmp .. "/impacts_" .. name .. ".csv", csv(rows, { "variable", "effect", "estimate", "se", "lower",
        "upper", "pvalue" }))
      local md = { "# Direct, indirect and total effects: " .. name, "",
        string.format("Simulated inference: %d draws, %g%% intervals (LeSage & Pace 2009).", im.draws or 0,
          100 * (im.level or 0.95)), "",
        "| variable | effect | estimate | se | interval | p |", "|---|---|---:|---:|---|---:|" }
      for _, r in ipairs(rows) do
        md[#md + 1] = string.format("| %s | %s | %s | %s | [%s, %s] | %s |", labels[r.variable] or r.variable, r.effect,
          fmt(r.estimate), fmt(r.se), fmt(r.lower), fmt(r.upper), fmt(r.pvalue))
      end
      write_file(tmp .. "/impacts_" .. name .. ".md", table.concat(md, "\n") .. "\n")
      logf("impacts of %s written", name)
    end
    -- effects
    for _, name in ipairs(sorted_keys(results.experiments)) do
      local r = results.experiments[name]
      write_file(tmp .. "/effects_" .. name .. ".csv", csv(unit_records(r),
        { "entity", "period", "baseline", "scenario", "effect", "pct", "lo", "hi", "shocked" }))
      write_file(tmp .. "/effects_" .. name .. "_groups.csv", csv(group_rows(r),
        { "group", "period", "n", "sum", "sum_lo", "sum_hi", "mean", "mean_lo", "mean_hi", "pct", "pct_lo", "pct_hi" }))
      write_file(tmp .. "/effects_" .. name .. "_groups.md", groups_markdown(name, r))
      logf("effects of %s written", name)
    end
    local plot_exps = report.plots or sorted_keys(results.experiments)
    local pfmt = {}
    if want.png then pfmt[#pfmt + 1] = "png" end
    if want.svg then pfmt[#pfmt + 1] = "svg" end
    if #pfmt > 0 then
      for _, name in ipairs(plot_exps) do
        local written = plots(tmp, name, results.experiments[name], pfmt, labels)
        logf("plots of %s: %d files", name, #written)
      end
    end
    -- manifest
    local resolve = require("spillover.scenario").resolve
    local inputs = { { path = s.file, role = "scenario" }, { path = resolve(s, spec.data.file), role = "data" } }
    for _, j in ipairs(spec.data.join or {}) do inputs[#inputs + 1] = { path = resolve(s, j.file), role = "data (join)" } end
    for _, p in ipairs(spec.plugins or {}) do inputs[#inputs + 1] = { path = resolve(s, p), role = "plugin" } end
    for _, inp in ipairs(inputs) do inp.sha256 = S.sha256_file(inp.path) end
    local manifest = { scenario = spec.name, seed = spec.seed, spillover_version = core.version,
      lua_version = _VERSION, inputs = json.array(inputs), timings_seconds = results.timings,
      finished = S.time_iso and S.time_iso() or os.date("!%Y-%m-%dT%H:%M:%SZ"),
      overrides = json.array(opts.overrides or {}), results_sha256 = S.sha256_file(tmp .. "/results.json") }
    write_file(tmp .. "/manifest.json", json.encode(manifest, { indent = "  " }) .. "\n")
    for name, f in pairs(results.fits) do
      for _, n in ipairs(f.notes or {}) do logf("model %s: %s", name, n) end
    end
    for k, v in pairs(results.timings) do logf("time %s: %.3f s", k, v) end
    write_file(tmp .. "/run.log", table.concat(log, "\n") .. "\n")
  end)
  if not ok then
    S.remove_tree(tmp)
    error(err, 0)
  end
  -- Swap the complete folder into place.
  local old
  if S.exists(outdir) then
    old = tmp .. ".old"
    local r1, e1 = S.rename(outdir, old)
    if not r1 then S.remove_tree(tmp); error("cannot replace " .. outdir .. ": " .. tostring(e1), 0) end
  end
  local r2, e2 = S.rename(tmp, outdir)
  if not r2 then
    if old then S.rename(old, outdir) end
    S.remove_tree(tmp)
    error("cannot move the results into " .. outdir .. ": " .. tostring(e2), 0)
  end
  if old then S.remove_tree(old) end
  return outdir
end

return M
