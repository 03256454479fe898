-- spillover.compare: the experiments of a scenario side by side: the total
-- effect (sum over units and periods) with its interval, the amount of input
-- the experiment adds, and the effect per unit of that input.  A sweep
-- contributes one row per point.
--
-- The input of a shock experiment is the sum over rows of the change the
-- shocks make to their variable (recomputed here from the experiment's
-- shocks); an allocation's is its budget times the horizon's periods; a
-- roll-out's is its number of treated unit-periods.  Shocks to several
-- variables have no single input: their per-input effect is left empty.
local util = require "spillover.util"
local raise = util.raise
local cf = require "spillover.counterfactual"

local M = {}

--- The input an experiment e adds to the data d: {variable =, amount =}.
function M.input(e, d, time)
  if e.allocate then return nil end -- the allocation's result carries its own
  if e.rollout then return nil end
  local shocks = e.shocks or { e.shock }
  local vars, seen = {}, {}
  for _, sh in ipairs(shocks) do
    for _, v in ipairs(type(sh.variable) == "table" and sh.variable or { sh.variable }) do
      if not seen[v] then seen[v] = true; vars[#vars + 1] = v end
    end
  end
  if #vars ~= 1 then return { variable = table.concat(vars, " + ") } end
  local d1 = cf.apply_shocks(d, shocks, time)
  local x0, x1 = d[vars[1]], d1[vars[1]]
  local s = 0
  for i = 1, d:nrow() do
    local c = x1[i] - x0[i]
    if c == c then s = s + c end
  end
  return { variable = vars[1], amount = s }
end

local function row(name, r, input)
  local t = r.groups.all.total
  local x = { experiment = name, model = r.model, total = t.sum, lo = t.sum_lo, hi = t.sum_hi,
    level_total = t.level_change, level_lo = t.level_change_lo, level_hi = t.level_change_hi }
  if r.rollout then
    -- (a sweep's point has counted them: spillover.sweep keeps no units)
    local k = r.treated or 0
    if not r.treated then
      for _, u in ipairs(r.units) do if u.shocked then k = k + 1 end end
    end
    input = { variable = "treated unit-periods", amount = k }
  end
  input = r.input or input
  if input then
    x.input, x.amount = input.variable, input.amount
    if input.amount and input.amount ~= 0 then
      -- the bounds divided by the input (swapped when it is negative)
      local function per(v, lo, hi, key)
        if v == nil then return end
        x[key] = v / input.amount
        if lo then
          local a, b = lo / input.amount, hi / input.amount
          x[key .. "_lo"], x[key .. "_hi"] = math.min(a, b), math.max(a, b)
        end
      end
      per(t.sum, t.sum_lo, t.sum_hi, "per_input")
      per(t.level_change, t.level_change_lo, t.level_change_hi, "level_per_input")
    end
  end
  return x
end

--- The comparison table of a scenario's results: names = the experiments
--- to compare (nil: all, sorted).  Returns an array of rows.
function M.table(spec, results, d, names)
  if not names then
    names = {}
    for k in pairs(results.experiments) do names[#names + 1] = k end
    table.sort(names)
  end
  local time = spec.data and spec.data.time
  local rows = {}
  for _, name in ipairs(names) do
    local r = results.experiments[name]
    if not r then raise("compare: unknown experiment '" .. tostring(name) .. "'") end
    local e = spec.experiments[name]
    if r.points then
      local sweep = require "spillover.sweep"
      for i, pr in ipairs(r.points) do
        local ep = e
        for _, p in ipairs(r.sweep.paths) do ep = sweep.set(ep, p, r.sweep.points[i].values[p]) end
        ep.sweep = nil
        pr.model = pr.model or r.model
        local shown = {}
        for _, p in ipairs(r.sweep.paths) do shown[#shown + 1] = p .. "=" .. tostring(r.sweep.points[i].values[p]) end
        rows[#rows + 1] = row(name .. "[" .. table.concat(shown, ",") .. "]", pr, M.input(ep, d, time))
      end
    else
      rows[#rows + 1] = row(name, r, M.input(e, d, time))
    end
  end
  return rows
end

local fmt = util.number

local function ci(lo, hi) return lo and string.format("[%s, %s]", fmt(lo), fmt(hi)) or "" end

--- compare.csv, compare.md and the plots compare_total.<ext> and
--- compare_per_input.<ext> (w: the report's writer, as spillover.sweep.files).
function M.files(rows, w)
  w.write("compare.csv", w.csv(rows, { "experiment", "model", "total", "lo", "hi", "input", "amount", "per_input",
    "per_input_lo", "per_input_hi", "level_total", "level_lo", "level_hi", "level_per_input", "level_per_input_lo",
    "level_per_input_hi" }))
  local lines = { "# Experiments compared", "",
    "Total effect: sum over units and periods of the effect on the model's outcome, with the interval of each " ..
      "experiment (empty without draws); in levels: the change in the outcome's data column when the outcome is a " ..
      "transform of one (as the experiment's effects report it). Per unit of input: the total divided by the input the " ..
      "experiment adds.", "",
    "| experiment | model | total effect | interval | in levels | interval | input | amount | per unit of input | " ..
      "interval | in levels | interval |",
    "|---|---|---:|---|---:|---|---|---:|---:|---|---:|---|" }
  for _, x in ipairs(rows) do
    lines[#lines + 1] = string.format("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", x.experiment,
      x.model, fmt(x.total), ci(x.lo, x.hi), fmt(x.level_total), ci(x.level_lo, x.level_hi), x.input or "", fmt(x.amount),
      fmt(x.per_input), ci(x.per_input_lo, x.per_input_hi), fmt(x.level_per_input),
      ci(x.level_per_input_lo, x.level_per_input_hi))
  end
  w.write("compare.md", table.concat(lines, "\n") .. "\n")
  if #w.formats == 0 then return end
  local plot = require "spillover.plot"
  local labels = w.labels
  -- In levels when every row has them: experiments on different models
  -- (ln patents, patents) compare in patents, not in their own scales.
  local levels = true
  for _, x in ipairs(rows) do levels = levels and x.level_total ~= nil end
  local function bars(file, key, lokey, hikey, xlabel)
    local names, v, lo, hi = {}, {}, {}, {}
    local bands = true
    for _, x in ipairs(rows) do
      if x[key] then
        names[#names + 1] = labels[x.experiment] or x.experiment
        local k = #names
        v[k], lo[k], hi[k] = x[key], x[lokey], x[hikey]
        bands = bands and lo[k] ~= nil
      end
    end
    if #names == 0 then return end
    for _, ext in ipairs(w.formats) do
      plot.bars(w.path(file .. "." .. ext), { labels = names, values = v, lo = bands and lo or nil, hi = bands and hi or nil,
        horizontal = true, xlabel = xlabel, title = "Experiments compared" })
    end
  end
  if levels then
    bars("compare_total", "level_total", "level_lo", "level_hi", "Total change in the outcome's level (sum over units and periods)")
    bars("compare_per_input", "level_per_input", "level_per_input_lo", "level_per_input_hi",
      "Change in the outcome's level per unit of input")
  else
    bars("compare_total", "total", "lo", "hi", labels.effect or "Total effect (sum over units and periods)")
    bars("compare_per_input", "per_input", "per_input_lo", "per_input_hi", "Effect per unit of input")
  end
end

return M
