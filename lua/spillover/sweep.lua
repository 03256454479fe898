-- spillover.sweep: one experiment run over a grid of values of its scalar
-- settings ("shock.change" over "+10%", "+20%", "+30%"; "shock.where" over
-- regions; "shock.phase_in"; "allocate.budget") or over a Latin hypercube
-- sample of ranges.  The models are estimated once by the caller: every
-- point is the same experiment with other settings, run through the same
-- fit, so the points differ only by what the sweep changes.
--
-- The result is one long table (IAMC-like: scenario, experiment, point, the
-- swept values, variable, unit, period, value, lo, hi) and a dose-response
-- plot: the total effect against the swept value, with its interval.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local cf = require "spillover.counterfactual"
local parts = require "spillover.parts"

local M = {}

local key_of = util.key_of

--- "shocks[2].change" -> {"shocks", 2, "change"}; raises on anything else.
function M.parse_path(path)
  if type(path) ~= "string" or not path:match("^[%a_][%w_]*[%w_%.%[%]]*$") then
    raise("sweep: a path names a setting of the experiment like \"shock.change\" or \"shocks[2].where\", got " ..
      tostring(path))
  end
  local keys = {}
  for part in path:gmatch("[^%.]+") do
    local name, rest = part:match("^([%a_][%w_]*)(.*)$")
    if not name then raise("sweep: cannot read the path \"" .. path .. "\"") end
    keys[#keys + 1] = name
    for idx in rest:gmatch("%[(%d+)%]") do keys[#keys + 1] = tonumber(idx) end
    if rest:gsub("%[%d+%]", "") ~= "" then raise("sweep: cannot read the path \"" .. path .. "\"") end
  end
  return keys
end

local function copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = copy(v) end
  return c
end

--- The experiment e with the setting at path replaced by v (a copy).  The
--- setting's parent must exist: a sweep varies a setting of the experiment,
--- it does not invent the shock it varies.
function M.set(e, path, v)
  local keys = M.parse_path(path)
  local out = copy(e)
  local t = out
  for i = 1, #keys - 1 do
    t = t[keys[i]]
    if type(t) ~= "table" then
      raise("sweep: the experiment has no '" .. table.concat(keys, ".", 1, i):gsub("%.(%d+)", "[%1]") ..
        "', so it cannot vary \"" .. path .. "\"")
    end
  end
  if keys[#keys] == "sweep" or keys[1] == "sweep" or keys[1] == "model" then
    raise("sweep: \"" .. path .. "\" is not a setting a sweep can vary (the model is estimated once)")
  end
  t[keys[#keys]] = v
  return out
end

-- The numeric value of a swept setting (the x of the dose-response plot):
-- a number, or the size of a change ("+20%" -> 20), or nil (a where-expression).
local function dose(v)
  if type(v) == "number" then return v end
  if type(v) == "string" then
    local ok, c = pcall(cf.parse_change, v)
    if ok then return c.value end
  end
end

-- A sampled value in the form of the range's ends: changes keep their kind.
local function range_value(lo, hi, u, path)
  if type(lo) == "number" and type(hi) == "number" then return lo + (hi - lo) * u end
  local ok1, a = pcall(cf.parse_change, lo)
  local ok2, b = pcall(cf.parse_change, hi)
  if not (ok1 and ok2) or a.kind ~= b.kind then
    raise("sweep: the range of " .. path .. " must be two numbers or two changes of one kind (\"+5%\", \"+40%\")")
  end
  local v = a.value + (b.value - a.value) * u
  if a.kind == "pct" then return string.format("%+.6g%%", v) end
  if a.kind == "set" then return string.format("=%.6g", v) end
  return string.format("%+.6g", v)
end

--- The points of a sweep: sw.grid = {path = {values...}} (every combination,
--- paths in sorted order, the last varying fastest) or sw.lhs = {n =, ranges =
--- {path = {lo, hi}}, seed =} (a Latin hypercube: each range cut into n equal
--- strata, one draw in each, strata shuffled independently per path).
--- Returns the paths and an array of {values = {[path] = v}}.
function M.points(sw, seed)
  util.check_options(sw, { "grid", "lhs" }, "sweep")
  if (sw.grid == nil) == (sw.lhs == nil) then raise("sweep: give 'grid' (values per path) or 'lhs' (ranges), one of them") end
  local paths, points = {}, {}
  if sw.grid then
    for p in pairs(sw.grid) do paths[#paths + 1] = p end
    table.sort(paths)
    if #paths == 0 then raise("sweep: 'grid' names no path") end
    points[1] = { values = {} }
    for _, p in ipairs(paths) do
      M.parse_path(p)
      local vals = sw.grid[p]
      if type(vals) ~= "table" or #vals == 0 then raise("sweep: grid." .. p .. " must be a non-empty list of values") end
      local next_points = {}
      for _, pt in ipairs(points) do
        for _, v in ipairs(vals) do
          local values = copy(pt.values)
          values[p] = v
          next_points[#next_points + 1] = { values = values }
        end
      end
      points = next_points
    end
  else
    local l = sw.lhs
    util.check_options(l, { "n", "ranges", "seed" }, "sweep.lhs")
    local n = l.n
    if math.type(n) ~= "integer" or n < 2 then raise("sweep: lhs.n must be an integer of 2 or more, got " .. tostring(n)) end
    for p in pairs(l.ranges or {}) do paths[#paths + 1] = p end
    table.sort(paths)
    if #paths == 0 then raise("sweep: lhs.ranges names no path") end
    local rng = core.rng(l.seed or seed or 42)
    for i = 1, n do points[i] = { values = {} } end
    for _, p in ipairs(paths) do
      M.parse_path(p)
      local r = l.ranges[p]
      if type(r) ~= "table" or #r ~= 2 then raise("sweep: lhs.ranges." .. p .. " must be a list {lo, hi}") end
      local perm = {}
      for i = 1, n do perm[i] = i end
      for i = n, 2, -1 do
        local j = rng:integer(i)
        perm[i], perm[j] = perm[j], perm[i]
      end
      for i = 1, n do points[i].values[p] = range_value(r[1], r[2], (perm[i] - 1 + rng:uniform()) / n, p) end
    end
  end
  return paths, points
end

-- What a sweep keeps of a point's result: what the comparison and the
-- dose-response plot read (the group totals, the scale, the input, a
-- roll-out's treated count), not every row's effect, so that a part file
-- (spillover.parts) carries kilobytes per point rather than megabytes.  A
-- whole run keeps the same, so both give the same output by construction.
local function summary(r)
  local groups = {}
  for g, gr in pairs(r.groups) do groups[g] = { total = gr.total } end
  local treated
  if r.rollout then
    treated = 0
    for _, u in ipairs(r.units) do if u.shocked then treated = treated + 1 end end
  end
  return { method = r.method, ndraws = r.ndraws, level = r.level, scale = r.scale, input = r.input,
    rollout = r.rollout, treated = treated, groups = groups }
end

--- Run a sweep.  e: the experiment (with e.sweep); run_one(e_point) runs one
--- point and returns its result (spillover.counterfactual's form);
--- info = {scenario =, experiment =, outcome =, seed =}; split: a split
--- run's part or assembly (spillover.parts; a part returns nil).
function M.run(e, run_one, info, split)
  local paths, points = M.points(e.sweep, info.seed)
  local base = copy(e)
  base.sweep = nil
  local variable = "effect|" .. tostring(info.outcome)
  local bar <close> = require("spillover.progress").new("sweep " .. tostring(info.experiment), #points)
  -- One point: its result and its rows of the long table.
  local function point(i)
    local pt = points[i]
    local ep = base
    for _, p in ipairs(paths) do ep = M.set(ep, p, pt.values[p]) end
    local ok, r = pcall(run_one, ep)
    if not ok then
      local shown = {}
      for _, p in ipairs(paths) do shown[#shown + 1] = p .. " = " .. tostring(pt.values[p]) end
      raise("sweep point " .. i .. " (" .. table.concat(shown, ", ") .. "): " .. util.message(r))
    end
    local rows = {}
    local function row(var, unit, period, value, lo, hi)
      local x = { scenario = info.scenario, experiment = info.experiment, point = i, variable = var, unit = unit,
        period = period, value = value, lo = lo, hi = hi }
      for _, p in ipairs(paths) do x[p] = pt.values[p] end
      rows[#rows + 1] = x
    end
    -- on the outcome's data column too when the outcome is a transform of one
    local lvar = r.scale and r.scale.column and ("level change|" .. r.scale.column)
    for _, u in ipairs(r.units) do
      row(variable, u.entity or "all", u.period_key, u.effect, u.lo, u.hi)
      if lvar then row(lvar, u.entity or "all", u.period_key, u.level_change, u.level_lo, u.level_hi) end
    end
    local gkeys = {}
    for g in pairs(r.groups) do gkeys[#gkeys + 1] = g end
    table.sort(gkeys)
    for _, g in ipairs(gkeys) do
      local gr = r.groups[g]
      local pkeys = {}
      for p in pairs(gr.periods) do pkeys[#pkeys + 1] = p end
      table.sort(pkeys, function(a, b) return tostring(a) < tostring(b) end)
      for _, p in ipairs(pkeys) do
        local x = gr.periods[p]
        row("sum of " .. variable, g, p, x.sum, x.sum_lo, x.sum_hi)
        if lvar then row("sum of " .. lvar, g, p, x.level_change, x.level_change_lo, x.level_change_hi) end
      end
      row("sum of " .. variable, g, "total", gr.total.sum, gr.total.sum_lo, gr.total.sum_hi)
      if lvar then
        row("sum of " .. lvar, g, "total", gr.total.level_change, gr.total.level_change_lo, gr.total.level_change_hi)
      end
    end
    bar:tick()
    return { result = summary(r), rows = rows }
  end
  local done = parts.map(split, "experiments." .. tostring(info.experiment), #points, point)
  if not done then return nil end
  local rows, results = {}, {}
  for i, pr in ipairs(done) do
    results[i] = pr.result
    table.move(pr.rows, 1, #pr.rows, #rows + 1, rows)
  end
  local first = results[1]
  local out = { model = info.model, method = first.method, ndraws = first.ndraws, level = first.level,
    sweep = { paths = paths, points = points, rows = rows }, points = results }
  out.notes = { string.format("sweep of %d points over %s; the model is estimated once", #points, table.concat(paths, ", ")) }
  out.record = { sweep = { paths = paths, points = points, rows = rows } }
  out.files = function(name, w) return M.files(name, out, w) end
  return out
end

local function csv_header(paths)
  local h = { "scenario", "experiment", "point" }
  for _, p in ipairs(paths) do h[#h + 1] = p end
  for _, k in ipairs({ "variable", "unit", "period", "value", "lo", "hi" }) do h[#h + 1] = k end
  return h
end

--- The dose-response series: the total effect per group (in the outcome's
--- data column when the outcome is a transform of one) against the first
--- swept path's numeric value (or the point's number when it has none).
function M.dose_response(r)
  local sw = r.sweep
  local p1 = sw.paths[1]
  local numeric = true
  for _, pt in ipairs(sw.points) do numeric = numeric and dose(pt.values[p1]) ~= nil end
  local order = {}
  for i = 1, #sw.points do order[i] = i end
  local function x_of(i) return numeric and dose(sw.points[i].values[p1]) or i end
  table.sort(order, function(a, b) return x_of(a) < x_of(b) end)
  local groups = {}
  for g in pairs(r.points[1].groups) do groups[#groups + 1] = g end
  table.sort(groups)
  local lv = r.points[1].groups.all.total.level_change ~= nil
  local key = lv and "level_change" or "sum"
  local series = {}
  for _, g in ipairs(groups) do
    local s = { label = g == "all" and "All units" or g:gsub("^[^=]+=", ""), x = {}, y = {} }
    local bands = r.ndraws > 0
    if bands then s.lo, s.hi = {}, {} end
    for _, i in ipairs(order) do
      local t = r.points[i].groups[g] and r.points[i].groups[g].total
      if t then
        s.x[#s.x + 1], s.y[#s.y + 1] = x_of(i), t[key]
        if bands then s.lo[#s.lo + 1], s.hi[#s.hi + 1] = t[key .. "_lo"], t[key .. "_hi"] end
      end
    end
    series[#series + 1] = s
  end
  return series, numeric, p1, order, lv and r.points[1].scale.column
end

--- Write sweep_<name>.csv (the long table) and the dose-response plot.
--- w: the report's writer (write(filename, text), path(filename), csv(rows,
--- header), formats, labels).
function M.files(name, r, w)
  w.write("sweep_" .. name .. ".csv", w.csv(r.sweep.rows, csv_header(r.sweep.paths)))
  if #w.formats == 0 then return end
  local plot = require "spillover.plot"
  local series, numeric, p1, order, column = M.dose_response(r)
  local labels = w.labels
  local ylabel = column and ("Change in " .. (labels[column] or column) .. " (sum)") or labels.effect or "Effect (sum)"
  local title = (labels[name] or name) .. (numeric and ": dose-response" or ": by " .. p1)
  for _, ext in ipairs(w.formats) do
    local file = w.path(name .. "_dose." .. ext)
    if numeric then
      plot.paths(file, { series = series, xlabel = labels[p1] or p1, ylabel = ylabel,
        title = title, zero_line = true })
    else
      -- categorical settings (where-expressions): one bar per point
      local s, names = series[1], {}
      for k, i in ipairs(order) do names[k] = tostring(key_of(r.sweep.points[i].values[p1])) end
      plot.bars(file, { labels = names, values = s.y, lo = s.lo, hi = s.hi, horizontal = true,
        xlabel = ylabel, title = title })
    end
  end
end

return M
