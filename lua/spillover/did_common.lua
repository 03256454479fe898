-- spillover.did_common: the panel and its treatment cohorts, as every DID
-- estimator (cs, sa, imputation, twfe, bacon) reads them.
--
--   local C = require "spillover.did_common"
--   local P = C.prepare(d, "y ~ x1 + x2 | entity + time", {cohort = "g", anticipation = 0, weights = "w"}, "did")
--   C.event_time(P, P.units[1], 3)      -- t - g, nil for a never-treated unit
--
-- One place checks the cohort column (numeric, constant within a unit, 0 or
-- missing for never treated, otherwise a value in the panel's time range),
-- so the estimators agree on which units are treated when, and each error
-- names the column and the value at fault.  Rows where the outcome or a
-- covariate is missing count as absent periods, as in R's did, which drops
-- incomplete rows before it balances the panel.  With opts.panel = false
-- (repeated cross-sections, which only cs estimates) the frame needs no panel
-- index: opts.time names the time column and every row is a unit of its own.
local core = require "spillover.core"
local util = require "spillover.util"
local F = require "spillover.formula"
local raise = util.raise
local key_of = util.key_of

local M = {}

-- The values of column `name` as a Lua array; nil and the kind when it is
-- missing ("missing") or categorical ("categorical").
local function numeric_column(d, name)
  local names = {}
  for _, v in ipairs(d:names()) do names[v] = true end
  if not names[name] then return nil, "missing" end
  local col = d:column(name)
  if type(col) ~= "userdata" then return nil, "categorical" end
  return col:totable()
end

local function fmt(v)
  local i = math.tointeger(v)
  return i and string.format("%d", i) or string.format("%.10g", v)
end

-- The covariates of the formula: the response, the design names of the
-- right-hand side without the intercept, and per frame row the response and
-- covariate values (nil for rows the design dropped as incomplete).
local function outcome_and_covariates(d, f, who)
  local ok, des = pcall(core.design, d, f, { intercept = true })
  if not ok then raise(who .. ": " .. util.message(des)) end
  local x = {}
  for j, name in ipairs(des.names) do
    if j > 1 or not des.intercept then x[#x + 1] = name end
  end
  local first = des.intercept and 2 or 1
  local yv, X, Y = des.y:totable(), des.X, {}
  local XR = {}
  for i, r in ipairs(des.rows) do
    Y[r] = yv[i]
    local row = {}
    for j = first, des.k do row[#row + 1] = X:get(i, j) end
    XR[r] = row
  end
  return des.yname, x, Y, XR
end

--- The panel, the cohorts and the units of a DID call (see the header and
--- docs/estimators/did.md).  who starts every error message ("did").
function M.prepare(d, formula, opts, who)
  opts = opts or {}
  who = who or "did"
  local function fail(msg) raise(who .. ": " .. msg) end
  local info = util.panel_of(d)
  local entity, time
  if opts.panel == false then
    -- Repeated cross-sections: no entity, every row is an observation of its own.
    time = opts.time or (info and info.time)
    if type(time) ~= "string" then
      fail("option 'time' must name the time column of the repeated cross-sections (panel = false)")
    end
  elseif info == nil then
    -- Only cs (who "did") estimates repeated cross-sections.
    fail("needs a panel index: call d:panel{entity = ..., time = ...} first" ..
      (who == "did" and " (or give panel = false, time = \"...\" for repeated cross-sections)" or ""))
  else
    entity, time = info.entity, info.time
  end
  local f = F.parse(formula)
  if not f:response() then fail("formula '" .. tostring(formula) .. "' has no outcome (y ~ ...)") end
  if f:iv() then fail("formula '" .. tostring(formula) .. "': DID takes no IV part") end
  local fe = f:fe()
  if #fe > 0 then
    for _, v in ipairs(fe) do
      if v ~= entity and v ~= time then
        fail("formula '" .. tostring(formula) .. "': the fixed effects after '|' can only be the panel's entity '"
          .. entity .. "' and time '" .. time .. "' (they are implied); got '" .. v .. "'")
      end
    end
  end
  local y, x, Y, XR = outcome_and_covariates(d, f:without_fe(), who)

  -- The cohort column.
  if type(opts.cohort) ~= "string" then
    fail("option 'cohort' must name the column with each unit's first treated period (0 or missing = never treated)")
  end
  local gcol, why = numeric_column(d, opts.cohort)
  if why == "missing" then fail("the data have no cohort column '" .. opts.cohort .. "'") end
  if why == "categorical" then
    fail("cohort column '" .. opts.cohort .. "' is categorical; expected the first treated period as a number " ..
      "(0 or missing = never treated)")
  end
  local anticipation = opts.anticipation or 0
  if math.type(anticipation) ~= "integer" or anticipation < 0 then
    fail("option 'anticipation' must be an integer >= 0, got " .. tostring(anticipation))
  end
  local wcol
  if opts.weights ~= nil then
    if type(opts.weights) ~= "string" then fail("option 'weights' must name a column") end
    wcol, why = numeric_column(d, opts.weights)
    if why == "missing" then fail("the data have no weights column '" .. opts.weights .. "'") end
    if why == "categorical" then fail("weights column '" .. opts.weights .. "' is categorical; expected numbers") end
  end

  -- Periods.
  local tcol, twhy = numeric_column(d, time)
  if twhy == "missing" then fail("the data have no time column '" .. time .. "'") end
  if twhy then fail("time column '" .. time .. "' must be numeric") end
  local n = #tcol
  -- Integer-valued periods and cohorts are kept as Lua integers, so they
  -- print as 2004 and compare as table keys whatever file they came from.
  for r = 1, n do tcol[r] = math.tointeger(tcol[r]) or tcol[r] end
  for r = 1, n do gcol[r] = math.tointeger(gcol[r]) or gcol[r] end
  local pos, periods = {}, {}
  for r = 1, n do
    local k = tcol[r]
    if pos[k] == nil then pos[k] = true; periods[#periods + 1] = k end
  end
  table.sort(periods)
  for p, t in ipairs(periods) do pos[t] = p end
  local tmin, tmax = periods[1], periods[#periods]

  -- Units, in increasing order of their id.
  local ecol
  if entity then
    ecol = d:column(entity)
    if type(ecol) == "userdata" then ecol = ecol:totable() end
  else
    ecol = {}
    for r = 1, n do ecol[r] = r end
  end
  local unit_index, ids = {}, {}
  for r = 1, n do
    local k = key_of(ecol[r])
    if unit_index[k] == nil then unit_index[k] = true; ids[#ids + 1] = ecol[r] end
  end
  table.sort(ids)
  local units = {}
  for i, id in ipairs(ids) do
    unit_index[key_of(id)] = i
    units[i] = { id = id, rows = {} }
  end

  local unit_of_row, period_of_row, notes = {}, {}, {}
  local incomplete = 0
  for r = 1, n do
    local i, p = unit_index[key_of(ecol[r])], pos[tcol[r]]
    local u = units[i]
    unit_of_row[r], period_of_row[r] = i, p
    local g = gcol[r]
    if g ~= g then g = 0 end
    if g ~= 0 and (g < tmin or g > tmax) then
      fail(string.format("cohort column '%s' has the value %s (unit %s, row %d), outside the time range [%s, %s] of " ..
        "'%s'; use 0 or missing for units never treated in the sample", opts.cohort, fmt(g), key_of(u.id), r,
        fmt(tmin), fmt(tmax), time))
    end
    if u.cohort == nil then u.cohort, u.cohort_row = g, r
    elseif u.cohort ~= g then
      fail(string.format("cohort column '%s' varies within unit %s: %s in row %d, %s in row %d; it must be the " ..
        "unit's first treated period in every row", opts.cohort, key_of(u.id), fmt(u.cohort), u.cohort_row, fmt(g), r))
    end
    if wcol then
      local w = wcol[r]
      if w ~= w or w < 0 or w == math.huge then
        fail(string.format("weights column '%s' has the value %s in row %d; expected a finite number >= 0",
          opts.weights, tostring(w), r))
      end
      if u.w == nil then u.w, u.w_row = w, r
      elseif u.w ~= w then
        fail(string.format("weights column '%s' varies within unit %s (%s in row %d, %s in row %d); sampling " ..
          "weights must be constant within a unit", opts.weights, key_of(u.id), fmt(u.w), u.w_row, fmt(w), r))
      end
    else
      u.w = 1
    end
    if Y[r] ~= nil then u.rows[p] = r else incomplete = incomplete + 1 end
  end
  if incomplete > 0 then
    notes[#notes + 1] = string.format("%d rows with a missing outcome or covariate count as unobserved periods",
      incomplete)
  end

  local cohort_size, cohorts, n_never = {}, {}, 0
  local balanced = true
  for _, u in ipairs(units) do
    u.cohort_row, u.w_row = nil, nil
    local g = u.cohort
    if g == 0 then n_never = n_never + 1
    else
      if cohort_size[g] == nil then cohort_size[g] = 0; cohorts[#cohorts + 1] = g end
      cohort_size[g] = cohort_size[g] + 1
    end
    for p = 1, #periods do
      if u.rows[p] == nil then balanced = false; break end
    end
  end
  table.sort(cohorts)
  for _, g in ipairs(cohorts) do
    if cohort_size[g] == 1 then
      notes[#notes + 1] = "cohort " .. fmt(g) .. " has one unit; its estimates rest on a single unit"
    end
  end

  return {
    y = y, x = x, entity = entity, time = time, cohort = opts.cohort, weights = opts.weights,
    anticipation = anticipation,
    periods = periods, cohorts = cohorts, units = units,
    unit_of_row = unit_of_row, period_of_row = period_of_row,
    balanced = balanced, n_never = n_never, cohort_size = cohort_size, notes = notes,
    -- Per frame row: the outcome and the covariate values (nil when incomplete).
    Y = Y, X = XR,
  }
end

--- Event time t - g of `unit` at period position p; nil for a never-treated unit.
function M.event_time(P, unit, p)
  if unit.cohort == 0 then return nil end
  return P.periods[p] - unit.cohort
end

--- The cohort and period values as text, as messages print them (2004, not 2004.0).
M.format_value = fmt

--- The event-study figure of every DID method's fit:plot: event-time rows
--- {e=, att=, lo=, hi=, ulo=, uhi=, ref=} as estimates with the pointwise
--- intervals and, when the rows have them, the wider uniform band (both
--- shaded), and a dashed vertical line at the reference period (the row
--- with ref = true, if any).  level (default 0.95) labels the bands; opts go
--- to plot.lines (title, xlabel, ylabel, width, height, ...).
function M.plot_events(rows, path, opts, level)
  local plot = require "spillover.plot"
  local x, y, lo, hi, ulo, uhi = {}, {}, {}, {}, {}, {}
  local ref, uniform
  for i, r in ipairs(rows) do
    x[i], y[i] = r.e, r.att
    lo[i], hi[i] = r.lo or (0 / 0), r.hi or (0 / 0)
    ulo[i], uhi[i] = r.ulo or (0 / 0), r.uhi or (0 / 0)
    uniform = uniform or r.ulo ~= nil
    if r.ref then ref = r.e end
  end
  local pct = string.format("%g%%", 100 * (level or 0.95))
  local series = { { label = pct .. " pointwise", y = y, lo = lo, hi = hi, color = plot.palette[1] } }
  if uniform then
    table.insert(series, 1, { label = pct .. " uniform band", y = y, lo = ulo, hi = uhi, color = plot.palette[5] })
  end
  local spec = { x = x, markers = true, zero_line = true, vlines = ref and { ref } or nil,
    xlabel = "Periods relative to treatment", ylabel = "Estimate", series = series }
  for k, v in pairs(opts or {}) do spec[k] = v end
  return plot.lines(path, spec)
end

return M
