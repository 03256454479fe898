-- spillover.report: the output folder of a scenario run.
--
--   results.json    every number, full precision, deterministic (same
--                   scenario + seed -> byte-identical file)
--   tables.*        regression tables (etable: md, tex, csv, and html/xlsx on request)
--   effects_<e>.csv / effects_<e>_groups.csv / .md   counterfactual effects
--   <e>_paths.png|svg, <e>_units.png|svg             plots
--   what each fit's report sections add (fit.report_sections, written by
--   the estimator's module)
--   manifest.json   SHA-256 of every input, seed, versions, timings
--   run.log         what ran, how long it took, warnings
-- Everything is written into a temporary folder next to the target
-- (<name>.tmp-XXXXXX), every write and close checked, fsync'ed, and exchanged
-- with the target only when complete, under a lock (.<name>.lock beside it):
-- a failed or killed run leaves the previous output as it was, and a temporary
-- folder whose writer died is removed by the next run into the same place.
local core = require "spillover.core"
local json = require "spillover.json"
local util = require "spillover.util"
local raise = util.raise

local M = {}

local function sys()
  if not core.sys then raise("report: this build has no system services (sp.sys)") end
  return core.sys
end

-- Every write and the close are checked: a full disk or a file-size limit
-- shows at one of them (buffered data reaches the disk at close), and must
-- fail the run instead of leaving a truncated file to be swapped in.
local function write_file(path, text)
  local f, msg = io.open(path, "wb")
  if not f then raise("cannot write " .. path .. ": " .. tostring(msg)) end
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  if not ok or not cok then raise("cannot write " .. path .. ": " .. tostring(werr or cerr)) end
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
    out[i] = { entity = u.entity, period = u.period, level_baseline = u.level_baseline,
      level_scenario = u.level_scenario, level_change = u.level_change, level_lo = u.level_lo, level_hi = u.level_hi,
      pct = u.pct, pct_lo = u.pct_lo, pct_hi = u.pct_hi, baseline = u.baseline, scenario = u.scenario,
      effect = u.effect, lo = u.lo, hi = u.hi, shocked = u.shocked }
  end
  return json.array(out)
end

-- The columns of the effects files: the level first when there is one.
local UNIT_COLUMNS = { "entity", "period", "level_baseline", "level_scenario", "level_change", "level_lo", "level_hi",
  "pct", "pct_lo", "pct_hi", "baseline", "scenario", "effect", "lo", "hi", "shocked" }
local function unit_columns(r)
  if r.scale then return UNIT_COLUMNS end
  return { "entity", "period", "baseline", "scenario", "effect", "lo", "hi", "shocked" }
end
local function group_columns(r)
  local cols = { "group", "period", "n" }
  local sc = r.scale
  if sc then
    for _, c in ipairs { "level_change", "level_change_lo", "level_change_hi", "pct", "pct_lo", "pct_hi" } do
      cols[#cols + 1] = c
    end
    if sc.aggregate ~= "sum" then
      for _, c in ipairs { "", "_lo", "_hi" } do cols[#cols + 1] = sc.aggregate .. c end
    end
  end
  for _, c in ipairs { "sum", "sum_lo", "sum_hi", "mean", "mean_lo", "mean_hi" } do cols[#cols + 1] = c end
  return cols
end

--- What an experiment's numbers are, in words for headers and axes: the
--- level's aggregate (its key in a group's cell and its name), the model
--- scale's, and the periods'.
local function quantities(r, labels)
  local sc = r.scale
  local q = { model = "change in the model's outcome" }
  q.periods = sc and sc.cumulative and "cumulative to the period" or "per period"
  if not sc then return q end
  q.model = "change in " .. (labels[sc.response] or sc.response)
  local what = labels[sc.column] or sc.column
  q.what = what
  if sc.aggregate == "mean_pct" then
    q.key, q.name = "mean_pct", "mean % change of " .. what .. " (over units)"
    q.axis = "% change of " .. what .. " (mean)"
  elseif sc.aggregate == "weighted" then
    q.key, q.name = "weighted", (labels[sc.weight] or sc.weight) .. "-weighted mean % change of " .. what
    q.axis = "% change of " .. what .. " (" .. (labels[sc.weight] or sc.weight) .. "-weighted)"
  else
    q.key, q.name = "level_change", "additional " .. what .. " (sum over units)"
    q.axis = "Additional " .. what .. " (sum)"
  end
  return q
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
      local row = { group = g, period = p }
      for k, v in pairs(x) do row[k] = v end
      rows[#rows + 1] = row
    end
    local x = gr.total
    local row = { group = g, period = "total" }
    for k, v in pairs(x) do row[k] = v end
    rows[#rows + 1] = row
  end
  return rows
end

local fmt = util.number

local BACKTRANSFORM = { smearing = "Duan's smearing estimate", normal = "the normal correction e^(s^2/2)",
  naive = "no correction (the median under symmetric errors)" }

local function groups_markdown(name, r, labels)
  local q, sc = quantities(r, labels), r.scale
  local lines = {
    "# Effects of experiment " .. name,
    "",
    string.format("Model: %s. Intervals: %s (%d draws, %g%% level).", r.model, r.method, r.ndraws, 100 * r.level),
    "",
  }
  if sc then
    local level = sc.column .. (sc.denominator and " (" .. sc.response .. " x " .. sc.denominator .. ")" or "")
    local how = sc.transform == "identity" and "in its own units" or string.format(
      "back-transformed from %s with %s (%s, from %d residuals)", sc.response, BACKTRANSFORM[sc.backtransform],
      sc.transform == "asinh" and string.format("level = %s sinh(p) + %s cosh(p)", fmt(sc.factor), fmt(sc.shift or 0))
        or "factor " .. fmt(sc.factor), sc.residuals)
    lines[#lines + 1] = string.format("Levels: %s = %s, predicted by the model and %s. Rows: %s; " ..
      "'total' covers every period. n counts unit-periods.", q.what, level, how, q.periods)
    lines[#lines + 1] = ""
  end
  for _, n in ipairs(r.notes or {}) do lines[#lines + 1] = "Note: " .. n .. "\n" end
  local function ci(x, k) return x[k .. "_lo"] and string.format("[%s, %s]", fmt(x[k .. "_lo"]), fmt(x[k .. "_hi"])) or "" end
  -- the level's aggregate first, then the % of the level, then the model's scale
  local cols = {}
  if sc then
    cols[#cols + 1] = { "additional " .. q.what .. " (sum over units)", "level_change" }
    cols[#cols + 1] = { "% of " .. q.what, "pct" }
    if q.key ~= "level_change" then table.insert(cols, 1, { q.name, q.key }) end
  end
  cols[#cols + 1] = { q.model .. " (sum over units)", "sum" }
  local head, rule = { "group", "period", "n" }, { "---", "---", "---:" }
  for _, c in ipairs(cols) do
    head[#head + 1], head[#head + 2] = c[1], "interval"
    rule[#rule + 1], rule[#rule + 2] = "---:", "---"
  end
  lines[#lines + 1] = "| " .. table.concat(head, " | ") .. " |"
  lines[#lines + 1] = "|" .. table.concat(rule, "|") .. "|"
  for _, x in ipairs(group_rows(r)) do
    local cells = { x.group, x.period, string.format("%d", x.n) }
    for _, c in ipairs(cols) do cells[#cells + 1], cells[#cells + 2] = fmt(x[c[2]]), ci(x, c[2]) end
    lines[#lines + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  if r.disparity then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Disparity across units (baseline, scenario, change and its interval over the draws):"
    lines[#lines + 1] = ""
    lines[#lines + 1] = "| period | baseline | scenario | change | interval |"
    lines[#lines + 1] = "|---|---:|---:|---:|---|"
    for _, x in ipairs(r.disparity) do
      lines[#lines + 1] = string.format("| %s | %s | %s | %s | %s |", tostring(util.key_of(x.period)), fmt(x.baseline),
        fmt(x.scenario), fmt(x.change), x.lo and string.format("[%s, %s]", fmt(x.lo), fmt(x.hi)) or "")
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- What the figures by unit show (the units' bars and the maps): the level
-- change or its % when the outcome has a level, else the model's sum.
local function unit_quantity(q)
  if q.key == "level_change" then return "level_change", "Additional " .. q.what .. " (sum over periods)" end
  if q.key then return "pct", "% change of " .. q.what .. " over all periods" end
  return "sum", q.model .. " (sum over periods)"
end

local function plots(dir, name, r, formats, labels)
  if not r.groups then return {} end -- a sweep draws its dose-response plot
  local ok, plot = pcall(require, "spillover.plot")
  if not ok then return { "plots skipped: " .. util.message(plot) } end
  -- the axes say what they show: the level's aggregate when there is one
  local q = quantities(r, labels)
  local key = q.key or "sum"
  -- short enough for the axis: "Additional invention patents (sum)"
  local ylabel = (q.axis or q.model .. " (sum)") .. (q.periods == "per period" and "" or ", cumulative")
  local ukey, xlabel = unit_quantity(q)
  local series = {}
  for _, g in ipairs(sorted_keys(r.groups)) do
    local gr = r.groups[g]
    local shown = g == "all" and "All units" or g:gsub("^[^=]+=", "")
    local s = { label = labels[g] or labels[shown] or shown, x = {}, y = {}, lo = r.ndraws > 0 and {} or nil, hi = r.ndraws > 0 and {} or nil }
    for _, p in ipairs(sorted_keys(gr.periods)) do
      local x = gr.periods[p]
      s.x[#s.x + 1] = tonumber(p) or #s.x + 1
      s.y[#s.y + 1] = x[key]
      if s.lo then s.lo[#s.lo + 1] = x[key .. "_lo"]; s.hi[#s.hi + 1] = x[key .. "_hi"] end
    end
    series[#series + 1] = s
  end
  local written = {}
  for _, ext in ipairs(formats) do
    local p = dir .. "/" .. name .. "_paths." .. ext
    plot.paths(p, { series = series, xlabel = labels.period or "Period",
      ylabel = ylabel, title = labels[name] or name, zero_line = true })
    written[#written + 1] = p
  end
  if r.entities then
    local ents = {}
    for _, e in ipairs(sorted_keys(r.entities)) do ents[#ents + 1] = e end
    local vals, lo, hi = {}, {}, {}
    local bands = r.ndraws > 0
    for i, e in ipairs(ents) do
      local t = r.entities[e].total
      vals[i], lo[i], hi[i] = t[ukey], t[ukey .. "_lo"], t[ukey .. "_hi"]
      -- a unit whose every draw was undefined has no interval: draw no bars' bands
      if not (lo[i] == lo[i] and hi[i] == hi[i]) then bands = false end
    end
    for _, ext in ipairs(formats) do
      local p = dir .. "/" .. name .. "_units." .. ext
      plot.bars(p, { labels = ents, values = vals, lo = bands and lo or nil, hi = bands and hi or nil,
        xlabel = xlabel, title = (labels[name] or name) .. ": effect by unit",
        horizontal = true, sort = true })
      written[#written + 1] = p
    end
  end
  return written
end

-- <name>_map.png|svg: the effect by unit over all periods (as the units' bars)
-- on a tile-grid map; tile labels in Chinese when the report's labels for it are.
local function effect_map(dir, name, r, formats, labels, tiles)
  if not r.entities then raise("report.maps: experiment " .. name .. " has no effects by unit (give data.entity)") end
  local key, scale = unit_quantity(quantities(r, labels))
  local units, vals, lo, hi = {}, {}, {}, {}
  for i, e in ipairs(sorted_keys(r.entities)) do
    local t = r.entities[e].total
    units[i], vals[i], lo[i], hi[i] = e, t[key], t[key .. "_lo"] or 0 / 0, t[key .. "_hi"] or 0 / 0
  end
  local title = labels[name] or name
  local zh = false
  for _, c in utf8.codes(title .. scale) do if c >= 0x2E80 then zh = true end end
  local paths = {}
  for i, ext in ipairs(formats) do paths[i] = dir .. "/" .. name .. "_map." .. ext end
  require("spillover.plot").tilemap(paths, { tiles = tiles, units = units, values = vals,
    lo = r.ndraws > 0 and lo or nil, hi = r.ndraws > 0 and hi or nil, lang = zh and "zh" or "en",
    title = title, scale_label = scale, hatch_label = zh and "区间含 0" or nil, missing_label = zh and "无数据" or nil })
  return paths
end

--- What a report section's files(fit, out) writes through (docs/fit-protocol.md):
--- out:write(filename, text) and out:path(filename) (a path for writers such
--- as plots) inside the folder being written, out:log(fmt, ...) to run.log,
--- out.name (the model's name in the scenario), out.formats (the set of
--- requested formats), out.label(name) (the report's label of a name),
--- out.number(v) and out.csv(rows, header) (the report's own formatting).
local RESERVED = { ["results.json"] = true, ["manifest.json"] = true, ["run.log"] = true }

local function section_out(dir, name, want, labels, logf)
  -- A section (a plugin's too) adds files; it may not replace one: not the
  -- report's own (results.json, the manifest, tables, effects) nor another
  -- section's, so no fit can rewrite the results others report.
  local function inside(filename)
    local bad = require("spillover.scenario_check").unsafe_name(filename)
    if not bad and (RESERVED[filename] or filename:match("^tables%.") or filename:match("^effects_")) then
      bad = "'" .. filename .. "' is a file of the report itself"
    end
    if not bad and core.sys.exists(dir .. "/" .. filename) then bad = "'" .. filename .. "' was written already" end
    if bad then raise("report section of " .. name .. ": " .. bad) end
    return dir .. "/" .. filename
  end
  return {
    name = name, formats = want, number = fmt, csv = csv,
    label = function(k) return labels[k] or k end,
    write = function(_, filename, text) write_file(inside(filename), text) end,
    path = function(_, filename) return inside(filename) end,
    log = function(_, ...) logf(...) end,
  }
end

-- out/<name> (name made safe for a file name) unless the caller chose a folder.
function M.outdir(spec, outdir)
  if outdir then return outdir end
  return "out/" .. spec.name:gsub("[^%w%-_%.]", "_")
end

-- parent, base of an output folder path ("out/x/" -> "out", "x").
local function split(outdir)
  local path = outdir:gsub("(.)/+$", "%1")
  local parent, base = path:match("^(.*)/([^/]+)$")
  if not parent then parent, base = ".", path end
  if parent == "" then parent = "/" end
  if base == "." or base == ".." or base == "/" then
    raise("the output folder must be named (got '" .. outdir .. "')")
  end
  return parent, base
end

local function lock_file(parent, base) return parent .. "/." .. base .. ".lock" end

local function is_spillover_output(dir)
  local f = io.open(dir .. "/manifest.json", "rb")
  if not f then return false end
  local text = f:read("a")
  f:close()
  local ok, m = pcall(json.decode, text or "")
  return ok and type(m) == "table" and m.spillover_version ~= nil and m.scenario ~= nil
end

--- Refuse to replace what spillover did not write: an existing output folder
--- must be empty or hold a spillover manifest.json (every complete output
--- does).  Raises with a message naming the folder.
function M.check_target(outdir)
  local S = sys()
  split(outdir)
  if not S.exists(outdir) then return end
  if not S.isdir(outdir) then
    raise("refusing to write the results to " .. outdir .. ": it exists and is not a folder")
  end
  local names, lerr = S.listdir(outdir)
  if not names then raise("cannot write the results to " .. outdir .. ": " .. tostring(lerr)) end
  if #names > 0 and not is_spillover_output(outdir) then
    raise("refusing to write the results to " .. outdir .. ": the folder is not empty and has no spillover " ..
      "manifest.json, so spillover did not write it (choose another -o, or empty or remove the folder)")
  end
end

-- The temporary folders of runs into parent/base, finished or not.
local function temp_folders(S, parent, base)
  local pattern = "^" .. base:gsub("%p", "%%%0") .. "%.tmp%-%w%w%w%w%w%w"
  local paths = {}
  for _, name in ipairs(S.listdir(parent) or {}) do
    if name:find(pattern) then paths[#paths + 1] = parent .. "/" .. name end
  end
  return paths
end

-- Remove the temporary folders of runs that are gone: a live writer holds a
-- lock on its folder, and the kernel drops it when the writer dies.  The
-- caller holds the output folder's lock.
local function remove_stale(S, parent, base)
  for _, path in ipairs(temp_folders(S, parent, base)) do
    local held <close> = S.lock(path, { wait = false })
    if held then S.remove_tree(path) end
  end
end

--- Remove what runs into outdir that died (killed, timed out) left behind.
function M.clean(outdir)
  local S = sys()
  local parent, base = split(outdir)
  if #temp_folders(S, parent, base) == 0 then return end
  local lock <close> = S.lock(lock_file(parent, base))
  if lock then remove_stale(S, parent, base) end
end

-- The output folder gets the user's usual permissions (mkdtemp makes it
-- 0700), and every file and the folder itself are on disk before the swap.
local function seal(S, tmp)
  assert(S.chmod(tmp, 511 & ~S.umask()))  -- 0777 less the umask
  for _, name in ipairs(assert(S.listdir(tmp))) do assert(S.fsync(tmp .. "/" .. name)) end
  assert(S.fsync(tmp))
end

-- s with every plain occurrence of from replaced by to.
local function replace_plain(s, from, to)
  local out, i = {}, 1
  while true do
    local a, b = s:find(from, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1) .. to
    i = b + 1
  end
  return table.concat(out) .. s:sub(i)
end

-- Put the complete folder tmp in place of outdir.  The caller holds the lock.
-- RENAME_EXCHANGE swaps the two names in one step, so outdir is never missing;
-- where the file system cannot exchange, two renames leave a moment without it.
local function swap(S, tmp, outdir)
  if not S.exists(outdir) then return assert(S.rename(tmp, outdir)) end
  local swapped, xerr = S.exchange(tmp, outdir)
  if swapped == nil then error(xerr, 0) end
  if swapped then
    S.remove_tree(tmp)  -- now the previous output; if this fails, the next run removes it
    return true
  end
  local old = tmp .. ".old"
  assert(S.rename(outdir, old))
  local ok, err = S.rename(tmp, outdir)
  if not ok then
    S.rename(old, outdir)
    error(err, 0)
  end
  S.remove_tree(old)
  return true
end

--- The files a run reads, {path =, role =, sha256 =} each: the scenario
--- first, then its data, joined files, plugins and a map layout.
function M.inputs(s)
  local spec, S = s.spec, sys()
  local resolve = require("spillover.scenario").resolve
  local inputs = { { path = s.file, role = "scenario" }, { path = resolve(s, spec.data.file), role = "data" } }
  for _, j in ipairs(spec.data.join or {}) do inputs[#inputs + 1] = { path = resolve(s, j.file), role = "data (join)" } end
  for _, p in ipairs(spec.plugins or {}) do inputs[#inputs + 1] = { path = resolve(s, p), role = "plugin" } end
  local report = spec.report or {}
  if report.maps and report.tiles and not require("spillover.tiles").is_builtin(report.tiles) then
    inputs[#inputs + 1] = { path = resolve(s, report.tiles), role = "map layout" }
  end
  for _, inp in ipairs(inputs) do inp.sha256 = S.sha256_file(inp.path) end
  return inputs
end

--- Write the output folder for a run; returns its path.
function M.write(s, results, opts)
  opts = opts or {}
  local S = sys()
  local spec = s.spec
  local outdir = M.outdir(spec, opts.outdir)
  local parent, base = split(outdir)
  local okp, perr = S.mkdir(parent, { parents = true })
  if not okp then raise("cannot create " .. parent .. ": " .. tostring(perr)) end
  M.check_target(outdir)
  local existed = S.exists(outdir)
  local function not_written(err)
    raise(string.format("the results were not written to %s%s: %s", outdir,
      existed and " (the previous results there are unchanged)" or "", err))
  end
  local lockpath = lock_file(parent, base)
  local lock, lerr = S.lock(lockpath)
  if not lock then not_written(lerr) end
  remove_stale(S, parent, base)
  local tmp, terr = S.mkdtemp(outdir .. ".tmp-")
  if not tmp then
    lock:unlock()
    not_written(terr)
  end
  -- Held until the swap: it tells other runs this folder is being written.
  local mine <close>, merr = S.lock(tmp, { wait = false })
  lock:unlock()
  if not mine then
    S.remove_tree(tmp)
    not_written(merr)
  end
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
    -- What the fits' report sections add, under models.<name>.<section>.
    for _, name in ipairs(sorted_keys(results.fits)) do
      for _, sec in ipairs(results.fits[name].report_sections or {}) do
        if sec.json then
          local t1 = S.now()
          local ok, v = pcall(sec.json, results.fits[name])
          if not ok then raise("report section '" .. sec.name .. "' of model " .. name .. ": " .. util.message(v)) end
          if res.models[name][sec.name] ~= nil then
            raise("report section '" .. sec.name .. "' of model " .. name .. " would replace the model's '" ..
              sec.name .. "' in results.json; name the section differently")
          end
          res.models[name][sec.name] = plain(v)
          results.timings[sec.name .. " " .. name] = S.now() - t1
        end
      end
    end
    for name, idx in pairs(results.indices or {}) do
      -- index weights (entropy, topsis) or an efficiency's notes and productivity table
      res.indices[name] = { weights = idx.weights, entropy = idx.entropy, divergence = idx.divergence,
        indicators = plain(spec.derive[name].entropy or spec.derive[name].topsis),
        efficiency_notes = plain(idx.efficiency_notes), productivity = plain(idx.productivity) }
    end
    for name, r in pairs(results.experiments) do
      res.experiments[name] = { model = r.model, method = r.method, draws = r.ndraws, level = r.level,
        units = r.units and unit_records(r), groups = plain(r.groups), entities = plain(r.entities),
        notes = json.array(plain(r.notes) or {}), rollout = plain(r.rollout), disparity = plain(r.disparity),
        scale = plain(r.scale) }
      -- what a sweep or an allocation adds (its points, its split)
      for key, v in pairs(r.record or {}) do res.experiments[name][key] = plain(v) end
    end
    if spec.compare then res.compare = plain(results.compare) end
    if results.spec_curve then res.spec_curve = plain(results.spec_curve:record()) end
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
    -- the fits' report sections (sorted by model)
    for _, name in ipairs(sorted_keys(results.fits)) do
      for _, sec in ipairs(results.fits[name].report_sections or {}) do
        if sec.files then
          local ok, e = pcall(sec.files, results.fits[name], section_out(tmp, name, want, labels, logf))
          if not ok then raise("report section '" .. sec.name .. "' of model " .. name .. ": " .. util.message(e)) end
        end
      end
    end
    -- effects
    for _, name in ipairs(sorted_keys(results.experiments)) do
      local r = results.experiments[name]
      if r.units then -- a sweep has no single set of effects: its table and plot follow
        write_file(tmp .. "/effects_" .. name .. ".csv", csv(unit_records(r), unit_columns(r)))
        write_file(tmp .. "/effects_" .. name .. "_groups.csv", csv(group_rows(r), group_columns(r)))
        write_file(tmp .. "/effects_" .. name .. "_groups.md", groups_markdown(name, r, labels))
        logf("effects of %s written", name)
      end
    end
    local plot_exps = report.plots or sorted_keys(results.experiments)
    local pfmt = {}
    if want.png then pfmt[#pfmt + 1] = "png" end
    if want.svg then pfmt[#pfmt + 1] = "svg" end
    -- sweeps' long tables and dose-response plots, allocations' splits, the comparison
    local writer = { write = function(f, text) write_file(tmp .. "/" .. f, text) end,
      path = function(f) return tmp .. "/" .. f end, csv = csv, formats = pfmt, labels = labels }
    for _, name in ipairs(sorted_keys(results.experiments)) do
      local r = results.experiments[name]
      if r.files then r.files(name, writer); logf("tables of %s written", name) end
    end
    if results.compare then require("spillover.compare").files(results.compare, writer) end
    if results.spec_curve then results.spec_curve:files(writer); logf("specification curve written") end
    if #pfmt > 0 then
      for _, name in ipairs(plot_exps) do
        local written = plots(tmp, name, results.experiments[name], pfmt, labels)
        logf("plots of %s: %d files", name, #written)
      end
      local tiles = report.maps and require("spillover.tiles").get(report.tiles or "cn31", s.dir)
      for _, name in ipairs(report.maps or {}) do
        local written = effect_map(tmp, name, results.experiments[name], pfmt, labels, tiles)
        logf("map of %s: %d files", name, #written)
      end
    end
    -- manifest
    local inputs = M.inputs(s)
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
    seal(S, tmp)
  end)
  if ok then
    lock, lerr = S.lock(lockpath)
    ok, err = pcall(function()
      if not lock then error(lerr, 0) end
      M.check_target(outdir)
      swap(S, tmp, outdir)
    end)
  end
  if not ok then
    S.remove_tree(tmp)
    if lock then lock:unlock() end
    -- Name the files by where they were going.
    err = replace_plain(util.message(err), tmp, outdir)
    not_written(err)
  end
  local synced, serr = S.fsync(parent)
  lock:unlock()
  if not synced then
    raise("the results are in " .. outdir .. " but may not survive a crash: " .. tostring(serr))
  end
  return outdir
end

--- CSV text of rows (tables keyed by the header's names), as the report writes it (gather's long table too).
M.csv = csv

return M
