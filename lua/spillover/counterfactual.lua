-- spillover.counterfactual: policy experiments through the fit protocol.
--
-- A counterfactual applies shocks to the raw data, recomputes every derived
-- variable (with parameters such as index weights held at their baseline
-- values: the caller's `derive` function does that), predicts with the fitted
-- model and reports the difference from the baseline prediction per unit and
-- period and aggregated by group.  Everything model-specific goes through
-- fit:predict(frame, {coef = draw}); that is the hook through which spatial
-- multipliers, regime switches and dynamics enter.  Linear fits also
-- offer fit:predict_matrix(frame), which makes parameter draws one matrix
-- product.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local suggest = require "spillover.suggest"
local formula = require "spillover.formula"
local progress = require "spillover.progress"
local mpi = require "spillover.mpi"

local M = {}

-- ---- shocks --------------------------------------------------------------------

local key_of = util.key_of

--- "+20%" | "-5%" | "+0.5" | "-3" | "=10" | number (added) -> {kind, value}
function M.parse_change(change, where)
  where = where or "change"
  if type(change) == "number" then return { kind = "add", value = change } end
  if type(change) ~= "string" then
    raise(where .. ": expected a change like \"+20%\", \"+0.5\" or \"=10\", got a " .. type(change))
  end
  local s = change:gsub("%s", "")
  local pct = s:match("^([+-]%d*%.?%d+[eE]?[-+]?%d*)%%$")
  if pct and tonumber(pct) then return { kind = "pct", value = tonumber(pct) } end
  local set = s:match("^=(.+)$")
  if set and tonumber(set) then return { kind = "set", value = tonumber(set) } end
  local add = s:match("^([+-].+)$")
  if add and tonumber(add) then return { kind = "add", value = tonumber(add) } end
  raise(where .. ": cannot read \"" .. change .. "\": expected \"+20%\" (percent), \"+0.5\" (added) or \"=10\" (set)")
end

local function column_values(d, name)
  local col = d[name]
  if type(col) == "table" then raise("shock: variable '" .. name .. "' is categorical; only numbers can be shocked") end
  return col
end

-- Distinct values of the first n entries of a column, sorted (for messages).
local function levels(col, n)
  local seen, out = {}, {}
  for i = 1, n do
    local v = type(col) == "table" and col[i] or col:get(i, 1)
    if v ~= nil and v == v then
      local k = key_of(v)
      if not seen[k] then seen[k] = true; out[#out + 1] = k end
    end
  end
  table.sort(out, function(a, b)
    if type(a) == type(b) then return a < b end
    return tostring(a) < tostring(b)
  end)
  return out
end

--- Why a where-expression selects nothing.  The comparisons of a column
--- with a string literal are the usual cause ('west' for 'West'): name the
--- levels present and the closest one.
local function where_reason(d, expr)
  local reasons = {}
  local function compare(col, lit)
    local c = d[col]
    if type(c) ~= "table" then return end
    local present = levels(c, d:nrow())
    for _, v in ipairs(present) do if v == lit then return end end
    local shown = {}
    for i, v in ipairs(present) do
      if i > 12 then shown[#shown + 1] = "... (" .. #present .. " levels)"; break end
      shown[i] = "'" .. v .. "'"
    end
    reasons[#reasons + 1] = "no row has " .. col .. " == '" .. lit .. "'" .. suggest.did_you_mean(lit, present) ..
      "; levels of " .. col .. ": " .. table.concat(shown, ", ")
  end
  for col, lit in expr:gmatch("([%a_][%w_]*)%s*[=~]=%s*['\"]([^'\"]*)['\"]") do compare(col, lit) end
  for lit, col in expr:gmatch("['\"]([^'\"]*)['\"]%s*[=~]=%s*([%a_][%w_]*)") do compare(col, lit) end
  if #reasons == 0 then return "where \"" .. expr .. "\" selects no row" end
  return "where \"" .. expr .. "\" selects no row: " .. table.concat(reasons, "; ")
end

--- Rows a shock touches: the `where` expression, and the time window
--- [from, to] with an optional phase-in.  Returns mask (array of booleans)
--- and weight (fraction of the shock applied per row), or nil, field,
--- message when it touches no row: a shock that selects nothing would report
--- an effect of exactly zero as if it were a finding.
function M.shock_rows(d, shock, time)
  local n = d:nrow()
  local mask, weight = {}, {}
  for i = 1, n do mask[i], weight[i] = true, 1 end
  if shock.from and shock.to and shock.from > shock.to then
    return nil, "from", string.format("'from' (%s) is after 'to' (%s)", key_of(shock.from), key_of(shock.to))
  end
  if shock.phase_in and not (shock.phase_in >= 0) then
    return nil, "phase_in", "'phase_in' must be 0 or more periods, got " .. tostring(shock.phase_in)
  end
  if shock.where then
    -- Row numbers ride along in a temporary column (no copy of the frame).
    local ids = {}
    for i = 1, n do ids[i] = i end
    d.sp_row__ = ids
    local ok, sel = pcall(d.filter, d, shock.where)
    d.sp_row__ = nil
    if not ok then raise("shock where \"" .. shock.where .. "\": " .. util.message(sel)) end
    for i = 1, n do mask[i] = false end
    local picked = sel.sp_row__
    for i = 1, sel:nrow() do mask[math.tointeger(picked[i])] = true end
    if sel:nrow() == 0 then return nil, "where", where_reason(d, shock.where) end
  end
  if shock.from or shock.to then
    if not time then raise("shock: 'from'/'to' need a panel time variable") end
    if shock.phase_in and not shock.from then raise("shock: 'phase_in' counts periods from 'from'; give 'from'") end
    local t = d[time]
    local phase = shock.phase_in
    local inside, lo, hi = false, math.huge, -math.huge
    for i = 1, n do
      local ti = type(t) == "table" and tonumber(t[i]) or t[i]
      if ti == nil or ti ~= ti then mask[i] = false
      else
        if mask[i] then lo, hi = math.min(lo, ti), math.max(hi, ti) end
        if shock.from and ti < shock.from then mask[i] = false end
        if shock.to and ti > shock.to then mask[i] = false end
        if mask[i] and phase and phase > 1 then weight[i] = math.min(1, (ti - shock.from + 1) / phase) end
        inside = inside or mask[i]
      end
    end
    if not inside then
      local window = string.format("[%s, %s]", shock.from and key_of(shock.from) or "-inf", shock.to and key_of(shock.to) or "inf")
      local span = lo <= hi and string.format("%s runs from %s to %s", time, key_of(lo), key_of(hi)) or
        time .. " is missing in every selected row"
      return nil, shock.from and "from" or "to", "no period in " .. window .. (shock.where and " among the rows 'where' selects" or "") ..
        ": " .. span
    end
  end
  return mask, weight
end

--- As shock_rows, raising when the shock touches no row.
function M.select_rows(d, shock, time)
  local mask, weight, msg = M.shock_rows(d, shock, time)
  if not mask then raise("shock selects no row: " .. msg) end
  return mask, weight
end

--- A copy of d with the shocks applied; also returns the union mask.
function M.apply_shocks(d, shocks, time)
  local out = d:copy()
  local any = {}
  for i = 1, d:nrow() do any[i] = false end
  for s, shock in ipairs(shocks) do
    local vars = type(shock.variable) == "table" and shock.variable or { shock.variable }
    if #vars == 0 or vars[1] == nil then raise("shock " .. s .. ": 'variable' is missing") end
    local change = M.parse_change(shock.change, "shock " .. s .. " change")
    local mask, weight = M.select_rows(out, shock, time)
    for _, v in ipairs(vars) do
      local x = column_values(out, v)
      for i = 1, d:nrow() do
        if mask[i] then
          local xi, w = x[i], weight[i]
          local new
          if change.kind == "pct" then new = xi * (1 + w * change.value / 100)
          elseif change.kind == "add" then new = xi + w * change.value
          else new = xi + w * (change.value - xi) end
          x[i] = new
          any[i] = true
        end
      end
      out[v] = x
    end
  end
  return out, any
end

-- ---- prediction paths -------------------------------------------------------------

--- Does the outcome feed its own lags (fit:predict alone misses that)?  The
--- fit says so (fit.capabilities.dynamic: the lags of the outcome that sp.fit
--- found in the formula).
function M.is_dynamic(fit)
  local caps = fit.capabilities
  return caps ~= nil and caps.dynamic ~= nil
end

--- The rows in periods before an experiment's shocks are known (spec.timing):
--- "unannounced" (the default), the first shock's `from` (a shock without
--- `from` is known from the start); "anticipated", spec.announced (nil: from
--- the start of the data, so the leads of the model see every shock).  The
--- experiment's shocks are one programme, announced together.  An array of
--- row numbers, or nil when no row precedes the announcement.
function M.unknown_rows(d, spec)
  local known, first = nil, nil
  for _, s in ipairs(spec.shocks) do
    first = s.from and first ~= false and math.min(first or s.from, s.from) or false
  end
  if spec.timing == "anticipated" then
    known = spec.announced
    if known ~= nil and not (type(known) == "number" and first and known <= first) then
      raise("counterfactual: 'announced' (" .. tostring(known) .. ") must be a period on or before the first shock's " ..
        "'from' (" .. tostring(first or "none: a shock without 'from' is known from the start") .. ")")
    end
  elseif spec.timing == nil or spec.timing == "unannounced" then
    known = first or nil
  else
    raise("counterfactual: 'timing' must be \"unannounced\" or \"anticipated\", got \"" .. tostring(spec.timing) .. "\"")
  end
  if known == nil or not spec.time then return nil end
  local t, rows = d[spec.time], {}
  for i = 1, d:nrow() do
    local ti = tonumber(type(t) == "table" and t[i] or t:get(i, 1))
    if ti and ti < known then rows[#rows + 1] = i end
  end
  return #rows > 0 and rows or nil
end

--- Predictions on the shocked data; for models with lags of the outcome the
--- shocked outcome feeds its own lags, period after period.  The rows in
--- `unknown` (M.unknown_rows) keep the baseline: their only shocked inputs
--- are leads, which agents read as the baseline while the shock is unknown,
--- and so they feed nothing forward either.  path holds what every draw
--- shares: {fit, d0, d1, derive, T, unknown, dynamic = M.is_dynamic(fit)}
--- (asked once: the fit's capabilities are computed on every access).
local function predict_path(path, coef, X0, X1)
  local fit, d0, d1, unknown = path.fit, path.d0, path.d1, path.unknown
  local p0 = fit:predict(d0, { coef = coef, matrix = X0 })
  local function hold(p)
    for _, i in ipairs(unknown or {}) do p[i] = p0[i] end
    return p
  end
  local p1 = hold(fit:predict(d1, { coef = coef, matrix = X1 }))
  if not path.dynamic then return p0, p1 end
  -- The shocked predictions become the outcome's column, so the outcome must be one.
  local y = (formula.is_formula(fit.formula) and fit.formula or formula.parse(fit.formula)):response()
  local has = false
  for _, c in ipairs(d0:names()) do has = has or c == y end
  if not has then
    raise("counterfactual: the outcome " .. tostring(y) .. " feeds its own lags, so the shocked predictions replace " ..
      "its column; it is not a column of the data (derive it as a variable and use that in the formula)")
  end
  local ybase = d0[y]
  for _ = 1, path.T do
    local dd = d1:copy()
    local yv = ybase:copy()
    for i = 1, dd:nrow() do
      local e = p1[i] - p0[i]
      if e == e then yv[i] = ybase[i] + e end
    end
    dd[y] = yv
    if path.derive then
      path.derive(dd)
      -- a derived outcome (lnpat = log(patents)) would be derived again from
      -- the unshocked data: the fed-back outcome stays
      dd[y] = yv
    end
    p1 = hold(fit:predict(dd, { coef = coef }))
  end
  return p0, p1
end

-- ---- the outcome's scale --------------------------------------------------------------

-- The column and optional denominator a response node is (x, a / b, I(a / b)),
-- or nil.  A derived ratio ({ratio: [a, b]}) counts as a / b.
local function level_of(node, derive)
  while node.kind == "paren" or node.kind == "I" do node = node.args[1] end
  if node.kind == "var" then
    local dv = derive and derive[node.var]
    if type(dv) == "table" and dv.ratio then return { column = dv.ratio[1], denominator = dv.ratio[2] } end
    return { column = node.var }
  end
  local a, b = node.args and node.args[1], node.args and node.args[2]
  if node.kind == "op" and node.op == "/" and a and b and a.kind == "var" and b.kind == "var" then
    return { column = a.var, denominator = b.var }
  end
end

-- {fn = "log" | "log1p" | "asinh" | "identity", column, denominator} of a response node.
local function transform_of(node, derive, depth)
  while node.kind == "paren" do node = node.args[1] end
  if node.kind == "var" and derive and depth == 0 then
    local dv = derive[node.var]
    local expr = type(dv) == "string" and dv or (type(dv) == "table" and dv.expr)
    -- a derived outcome (lnpat: log(patents)) is read from its derivation
    if expr then return transform_of(formula.parse("~ " .. expr).rhs[1], derive, 1) end
  end
  if node.kind == "call" and node.fn == "log" then
    local arg = node.args[1]
    while arg.kind == "paren" do arg = arg.args[1] end
    if arg.kind == "op" and arg.op == "+" and #arg.args == 2 then
      for k = 1, 2 do
        local one, x = arg.args[k], arg.args[3 - k]
        if one.kind == "number" and one.value == 1 then
          local lv = level_of(x, derive)
          if lv then lv.fn = "log1p"; return lv end
        end
      end
    end
    local lv = level_of(arg, derive)
    if lv then lv.fn = "log"; return lv end
    return nil
  end
  if node.kind == "call" and node.fn == "asinh" then
    local lv = level_of(node.args[1], derive)
    if lv then lv.fn = "asinh" end
    return lv
  end
  local lv = level_of(node, derive)
  if lv then lv.fn = "identity" end
  return lv
end

--- The scale of a model's outcome: how its response relates to a data
--- column, read from the formula (an object or text) and the scenario's
--- derive: entries (lnpat: log(patent_grants)).  Returns {fn = "log" |
--- "log1p" | "asinh" | "identity", column =, denominator = (a ratio a / b: the level
--- is a), response = the response as text}, or nil and why.
function M.outcome_scale(f, derive)
  f = formula.is_formula(f) and f or formula.parse(f)
  if not f.lhs then return nil, "the formula has no response" end
  local t = transform_of(f.lhs, derive, 0)
  local shown = f.lhs.kind == "var" and derive and derive[f.lhs.var]
  shown = f:response() .. (type(shown) == "string" and " = " .. shown or "")
  if not t then
    return nil, "the outcome " .. shown .. " is not log(x), log(1 + x), asinh(x), a ratio x / z or a column, so its effects " ..
      "cannot be put in the units of a data column"
  end
  t.response = f:response()
  return t
end

--- The scale an experiment of a scenario reports on: opts is its scale:
--- entry ({transform = "auto" | "none", backtransform = "smearing" |
--- "normal" | "naive", aggregate = "sum" | "mean_pct" | "weighted", weight =
--- column, cumulative = bool}, nil for the defaults), derive the scenario's
--- derive: entries.  false (the model's scale only) for transform "none" or
--- an outcome that is not a transform of a column; with opts given, that
--- second case is an error instead (nil, why), since the scenario asked for
--- levels.
function M.experiment_scale(f, derive, opts)
  if opts and opts.transform == "none" then return false end
  local t, why = M.outcome_scale(f, derive)
  if not t then
    if opts then return nil, why end
    return false
  end
  for _, k in ipairs { "backtransform", "aggregate", "weight", "cumulative" } do t[k] = opts and opts[k] end
  return t
end

--- The back-transform's factor from the residuals y - p0 on the baseline
--- (rows where both exist): Duan's smearing mean(e^e), the normal
--- correction e^(s^2 / 2) (s^2 the residuals' sum of squares over the fit's
--- residual degrees of freedom, or over their number), or 1 (naive: the
--- median under symmetric errors).  An asinh outcome's smearing is two
--- numbers, mean(cosh e) and mean(sinh e) (the third value returned, the
--- shift); its normal correction is e^(s^2 / 2) on sinh p (E sinh(p + e) =
--- sinh p E cosh e when e is symmetric).
local function scale_factor(sc, y, p0, fit)
  if sc.fn == "identity" or sc.backtransform == "naive" then return 1, 0 end
  local asinh = sc.fn == "asinh"
  local m, se, sq, ch, sh = 0, 0, 0, 0, 0
  for i = 1, #y do
    local e = y[i] - p0[i]
    if e == e then
      m, se, sq = m + 1, se + math.exp(e), sq + e * e
      -- cosh and sinh (Lua 5.4's math has neither without its 5.2 compatibility)
      if asinh then local x = math.exp(e); ch, sh = ch + (x + 1 / x) / 2, sh + (x - 1 / x) / 2 end
    end
  end
  if m == 0 then raise("counterfactual: no row has both the outcome and its prediction; cannot back-transform") end
  if sc.backtransform == "normal" then
    local df = fit and fit.nobs == m and type(fit.df_resid) == "number" and fit.df_resid > 0 and fit.df_resid or m
    return math.exp(sq / df / 2), m
  end
  if asinh then return ch / m, m, sh / m end
  return se / m, m
end

-- ---- summaries ------------------------------------------------------------------------

local function period_order(a, b)
  local na, nb = tonumber(a), tonumber(b)
  if na and nb then return na < nb end
  return tostring(a) < tostring(b)
end

--- Group every row with an effect by (group value, period) and (group, all
--- periods); keys(u) lists the groups a row belongs to; cumulative: a
--- period's cell holds every period up to it.  Returns groups[gk] = {total =
--- cell, periods = {[pk] = cell}}, each cell {rows = row numbers in row
--- order}, and appends every new cell to list (core.summary sums its values
--- in that order).
local function cells_of(keys, units, cumulative, list)
  local groups = {}
  local pkeys, seenp = {}, {}
  for _, u in ipairs(units) do
    if not seenp[u.period_key] then seenp[u.period_key] = true; pkeys[#pkeys + 1] = u.period_key end
  end
  table.sort(pkeys, period_order)
  local rank = {}
  for k, p in ipairs(pkeys) do rank[p] = k end
  local function cell()
    local c = { rows = {} }
    list[#list + 1] = c
    return c
  end
  for _, u in ipairs(units) do
    if u.effect == u.effect then
      for _, gk in ipairs(keys(u)) do
        local g = groups[gk]
        if not g then g = { periods = {}, total = cell() }; groups[gk] = g end
        local rows = g.total.rows
        rows[#rows + 1] = u.row
        for k = rank[u.period_key], (cumulative and #pkeys or rank[u.period_key]) do
          local p = g.periods[pkeys[k]]
          if not p then p = cell(); g.periods[pkeys[k]] = p end
          p.rows[#p.rows + 1] = u.row
        end
      end
    end
  end
  return groups
end

--- A cell's entry of the result from its values (core.summary): the
--- model-scale effect (sum, mean), the level change (sum over rows) and the
--- % of the level, and with agg.unit = "mean_pct" or "weighted" the mean (or
--- weighted mean) over units of each unit's % change, summed over the cell's
--- periods first; with draws, each with its interval.
local function cell_result(rows, v, agg)
  local n, unitwise = #rows, agg.unit == "mean_pct" or agg.unit == "weighted"
  local out = { n = n, sum = v.sum, mean = v.sum / n }
  if agg.has_level then
    local base = v.base
    out.level_change, out.level_baseline = v.change, base
    out.pct = base ~= 0 and 100 * v.change / math.abs(base) or 0 / 0
    if unitwise then out[agg.unit] = v.up end
  end
  if agg.ndraws > 0 then
    -- the mean and the % of the level are linear in the sums: their
    -- quantiles are the sums' quantiles scaled
    out.sum_lo, out.sum_hi = v.sum_lo, v.sum_hi
    out.mean_lo, out.mean_hi = v.sum_lo / n, v.sum_hi / n
    if agg.has_level then
      out.level_change_lo, out.level_change_hi = v.change_lo, v.change_hi
      if v.base ~= 0 then
        out.pct_lo, out.pct_hi = 100 * v.change_lo / math.abs(v.base), 100 * v.change_hi / math.abs(v.base)
      end
      if unitwise then out[agg.unit .. "_lo"], out[agg.unit .. "_hi"] = v.up_lo, v.up_hi end
    end
  end
  return out
end

-- The result's groups from cells_of and the cells' values.
local function group_results(groups, values, agg)
  local result = {}
  for gk, g in pairs(groups) do
    local r = { periods = {}, total = cell_result(g.total.rows, values[g.total], agg) }
    for pk, p in pairs(g.periods) do r.periods[pk] = cell_result(p.rows, values[p], agg) end
    result[gk] = r
  end
  return result
end

-- ---- the experiment ------------------------------------------------------------------------

-- Refuse, on every process of an MPI job, an experiment whose rows or point
-- effects differ between the processes: the draws are split over them, and
-- draws of different experiments must not be mixed into one interval.
local function same_experiment(n, p0, p1)
  mpi.same(n, "counterfactual: the number of rows")
  local total = 0
  for i = 1, n do
    local e = p1[i] - p0[i]
    if e == e then total = total + e end
  end
  mpi.same(total, "counterfactual: the sum of the point effects")
end

-- Every process's draws (draws[first..last], n x 1 each) to every process,
-- in draw order.
local function gather_draws(draws, first, last, ndraws, n)
  local mine = {}
  for r = first, last do mine[r] = draws[r]:tovector() end
  local all = mpi.collect_vectors(mine, ndraws, n)
  for r = 1, ndraws do
    if not draws[r] then draws[r] = core.matrix(all[r]) end
  end
end

--- Run one counterfactual experiment.
--   spec.data      the baseline frame (derived variables already computed)
--   spec.derive    function(frame) recomputing derived variables in place with
--                  baseline-fixed parameters (may be nil)
--   spec.fit       a fit (the fit protocol)
--   spec.shocks    array of {variable=, where=, from=, to=, change=, phase_in=}
--   spec.timing    "unannounced" (default) | "anticipated", spec.announced: when
--                  the shocks become known (M.unknown_rows)
--   spec.entity, spec.time   panel index names (time needed for from/to)
--   spec.groups    array of grouping variables for the aggregates (an "all"
--                  group is always added)
--   spec.draws     parameter draws for intervals (0: none); spec.bootstrap
--                  refits on entity-resampled data instead; spec.seed; spec.level
--   spec.progress  function(done, total) called after each draw, false for
--                  nothing, or nil for a progress bar (spillover.progress: on a
--                  terminal only)
function M.run(spec)
  local fit, d0 = spec.fit, spec.data
  if not (fit and fit.predict) then raise("counterfactual: 'fit' must satisfy the fit protocol") end
  local level = spec.level or 0.95
  if type(level) ~= "number" or not (level > 0 and level < 1) then
    raise("counterfactual: 'level' must be a number between 0 and 1 (e.g. 0.95), got " .. tostring(level))
  end
  if type(spec.shocks) ~= "table" or #spec.shocks == 0 then
    raise("counterfactual: 'shocks' must be a non-empty array of {variable=, change=, ...}")
  end
  local columns = {}
  for _, c in ipairs(d0:names()) do columns[c] = true end
  for _, g in ipairs(spec.groups or {}) do
    if not columns[g] then
      raise("counterfactual: unknown group column '" .. tostring(g) .. "'" .. suggest.did_you_mean(tostring(g), d0:names()))
    end
  end
  local d1, shocked = M.apply_shocks(d0, spec.shocks, spec.time)
  if spec.derive then spec.derive(d1) end
  local T = 1
  if spec.time then
    local info = d0:panel_info()
    T = info and info.T or 1
  end
  -- Linear fits give their regressors on both frames: built once, for the
  -- point predictions and the draws alike.
  local path = { fit = fit, d0 = d0, d1 = d1, derive = spec.derive, T = T, unknown = M.unknown_rows(d0, spec),
    dynamic = M.is_dynamic(fit) }
  local fast = fit.predict_matrix ~= nil and not path.dynamic
  local X0, X1
  if fast then X0, X1 = fit:predict_matrix(d0), fit:predict_matrix(d1) end
  local unknown = path.unknown
  local p0, p1 = predict_path(path, nil, X0, X1)
  local n = d0:nrow()

  -- Draws of the effect per row: a table r -> n x 1 matrix.  Draw r comes
  -- from its own stream (rng:substream(r)), so it is the same draw whichever
  -- process of an MPI job computes it, and in whatever order.
  local ndraws = spec.bootstrap and spec.bootstrap > 0 and spec.bootstrap or (spec.draws or 0)
  local draws = {}
  if ndraws > 0 then
    local root = core.rng(spec.seed or 42)
    local D
    if fast then
      D = X1 - X0
      -- rows before the announcement: no change, where the row predicts at all
      for _, i in ipairs(unknown or {}) do
        for j = 1, D:ncol() do if D:get(i, j) == D:get(i, j) then D:set(i, j, 0) end end
      end
    end
    local entity_rows
    if spec.bootstrap and spec.bootstrap > 0 then
      if not (fit.refit and spec.entity) then
        raise("counterfactual: bootstrap needs a fit with refit() and a panel entity")
      end
      entity_rows = {}
      local ent = d0[spec.entity]
      local order = {}
      for i = 1, n do
        local k = key_of(type(ent) == "table" and ent[i] or ent:get(i, 1))
        if not entity_rows[k] then entity_rows[k] = {}; order[#order + 1] = k end
        local t = entity_rows[k]
        t[#t + 1] = i
      end
      entity_rows.order = order
    end
    -- Under mpirun each process runs a block of the draws that refit or
    -- predict through fit:predict, and every process gets all of them.  A
    -- linear fit's draw is one product with D, cheaper than sending its n
    -- numbers (measured: 20x): every process computes those itself.
    local split = mpi.size() > 1 and (entity_rows ~= nil or not fast)
    local first, last = 1, ndraws
    if split then
      first, last = mpi.range(ndraws)
      same_experiment(n, p0, p1)
    end
    -- a scenario run reports the draws to its own bars (spec.progress), or
    -- to none (false: spillover run --quiet); a process counts its own block
    local mine = last - first + 1
    local bar <close> = spec.progress == nil and progress.new("counterfactual draws", mine) or nil
    for r = first, last do
      local rng, coef = root:substream(r), nil
      if entity_rows then
        -- cluster bootstrap: resample entities with replacement, relabel copies
        local order = entity_rows.order
        local rows, labels = {}, {}
        for c = 1, #order do
          local k = order[rng:integer(#order)]
          for _, i in ipairs(entity_rows[k]) do rows[#rows + 1] = i; labels[#labels + 1] = k .. "#" .. c end
        end
        local bd = d0:take(rows)
        bd[spec.entity] = labels
        bd:panel { entity = spec.entity, time = spec.time }
        local bf = fit:refit(bd)
        coef = bf:coef()
      else
        coef = fit:draw(rng)
      end
      if fast then
        local b = {}
        for i, nm in ipairs(fit.names) do b[i] = coef[nm] end
        draws[r] = D * core.matrix(b)
      else
        local q0, q1 = predict_path(path, coef)
        draws[r] = q1 - q0
      end
      if bar then bar:tick() elseif spec.progress then spec.progress(r - first + 1, mine) end
    end
    if split then gather_draws(draws, first, last, ndraws, n) end
  end

  local method = spec.bootstrap and spec.bootstrap > 0 and "cluster bootstrap" or (ndraws > 0 and "parameter draws" or "none")
  return M.summarise(spec, p0, p1, shocked, draws, ndraws, level, method, d1)
end

--- The scale an experiment reports its levels on: spec.scale as the
--- scenario resolved it ({fn =, column =, ...}: outcome_scale and the
--- options below), false or transform = "none" for the model's scale only,
--- or options alone (backtransform, aggregate, weight, cumulative) with the
--- transform read from the fit's formula (an outcome derived in Lua is a
--- column to the formula: give fn and column then).
local function scale_of(spec)
  local sc = spec.scale
  if sc == false or (type(sc) == "table" and sc.transform == "none") then return nil end
  sc = sc or {}
  local t = sc
  if not sc.fn then
    local f = spec.fit and spec.fit.formula
    t = f and M.outcome_scale(f)
    if not t then return nil end
    for k, v in pairs(sc) do t[k] = v end
  end
  t.backtransform, t.aggregate = t.backtransform or "smearing", t.aggregate or "sum"
  if t.aggregate == "weighted" and not t.weight then raise("counterfactual: aggregate 'weighted' needs 'weight' (a column)") end
  return t
end

--- The result of an experiment from its per-row predictions: p0, p1 (n x 1
--- matrices or arrays: baseline and scenario), touched[i] (the rows the
--- experiment changes), draws[r] (the effect per row under draw r, n x 1
--- matrices or arrays), per unit and period and aggregated by spec.groups and
--- by entity, on the model's scale and, when the outcome is a transform of a
--- data column (spec.scale), on that column's scale: level change and % of
--- the level.  d1 is the scenario's data (a shocked denominator of a ratio
--- moves the level; nil: d0).  Shared by every kind of experiment (shocks,
--- roll-outs).
function M.summarise(spec, p0, p1, touched, draws, ndraws, level, method, d1)
  local d0 = spec.data
  local n = d0:nrow()
  local function at(v, i) return type(v) == "table" and v[i] or v:get(i, 1) end
  local function array(v)
    if type(v) == "table" then return v end
    return v:tovector()
  end
  local ent = spec.entity and d0[spec.entity]
  local tim = spec.time and d0[spec.time]
  local gcols = {}
  for _, g in ipairs(spec.groups or {}) do gcols[#gcols + 1] = { name = g, col = d0[g] } end
  local b0, b1 = array(p0), array(p1)
  local sc = scale_of(spec)
  local agg = { ndraws = ndraws, has_level = sc ~= nil,
    unit = sc and sc.aggregate ~= "sum" and sc.aggregate or nil, cumulative = sc and sc.cumulative }
  -- What core.summary computes from: the draws x rows work (levels, the
  -- draws' level changes, intervals per row and per cell) is C's.
  local opts = { b0 = b0, b1 = b1, draws = ndraws > 0 and draws or nil, level = level }
  local wcol
  if sc then
    local present = false
    for _, c in ipairs(d0:names()) do present = present or c == sc.response end
    local y = present and d0[sc.response] or require("spillover.derive").eval(d0, sc.response)
    local factor, m, shift = scale_factor(sc, array(y), b0, spec.fit)
    sc.factor, sc.residuals, sc.shift = factor, m, shift
    opts.scale = { fn = sc.fn, factor = factor, shift = shift }
    if sc.denominator then opts.den0, opts.den1 = d0[sc.denominator], (d1 or d0)[sc.denominator] end
    wcol = sc.aggregate == "weighted" and array(d0[sc.weight]) or nil
    opts.weights = wcol
  end
  local units = {}
  for i = 1, n do
    local u = {
      row = i, baseline = b0[i], scenario = b1[i], effect = b1[i] - b0[i], shocked = touched[i],
      entity = ent and key_of(at(ent, i)) or nil,
      period = tim and at(tim, i) or nil,
    }
    u.period_key = u.period and key_of(u.period) or "all"
    u.groups = { "all" }
    for _, g in ipairs(gcols) do
      u.groups[#u.groups + 1] = g.name .. "=" .. tostring(key_of(at(g.col, i)))
    end
    units[#units + 1] = u
  end
  local list = {}
  local groups = cells_of(function(u) return u.groups end, units, agg.cumulative, list)
  local entities = ent and cells_of(function(u) return { u.entity } end, units, agg.cumulative, list) or nil
  opts.cells = {}
  for c, cell in ipairs(list) do opts.cells[c] = cell.rows end
  if agg.unit == "mean_pct" or agg.unit == "weighted" then
    -- a unit is an entity (a row without one is its own unit)
    local id, count = {}, 0
    opts.unitwise, opts.units = agg.unit, {}
    for i, u in ipairs(units) do
      local k = u.entity or u.row
      if not id[k] then count = count + 1; id[k] = count end
      opts.units[i] = id[k]
    end
  end
  local rows, cells = core.summary(opts)
  for i, u in ipairs(units) do
    if sc then
      u.level_baseline, u.level_scenario = rows.level_baseline[i], rows.level_scenario[i]
      u.level_change = u.level_scenario - u.level_baseline
      u.pct = u.level_baseline ~= 0 and 100 * u.level_change / math.abs(u.level_baseline) or 0 / 0
      u.weight = wcol and wcol[i]
    end
    if ndraws > 0 then
      u.lo, u.hi = rows.lo[i], rows.hi[i]
      if sc then
        -- a draw's level change is its effect on the model's scale applied
        -- to the baseline prediction, the back-transform's factor held
        u.level_lo, u.level_hi = rows.level_lo[i], rows.level_hi[i]
        local b = math.abs(u.level_baseline)
        if b ~= 0 then u.pct_lo, u.pct_hi = 100 * u.level_lo / b, 100 * u.level_hi / b end
      end
    end
  end
  local values = {}
  for c, cell in ipairs(list) do values[cell] = cells[c] end
  groups = group_results(groups, values, agg)
  entities = entities and group_results(entities, values, agg) or nil
  local res = { units = units, groups = groups, entities = entities, ndraws = ndraws, level = level, method = method }
  if sc then
    res.scale = { transform = sc.fn, column = sc.column, denominator = sc.denominator, response = sc.response,
      backtransform = sc.fn ~= "identity" and sc.backtransform or nil, factor = sc.factor, residuals = sc.residuals,
      shift = sc.shift,
      aggregate = sc.aggregate, weight = sc.weight, cumulative = sc.cumulative == true }
  end
  if spec.disparity then res.disparity = M.disparity_change(spec, p0, p1, draws, ndraws, level) end
  return res
end

--- The change an experiment makes to the disparity of the outcome across
--- units, per period (spec.disparity = {measure =, groups = column, part =,
--- transform =}: spillover.disparity.change), over the rows where both the
--- baseline and the scenario are defined, with intervals over the draws.
function M.disparity_change(spec, p0, p1, draws, ndraws, level)
  local o = spec.disparity
  local function at(v, i) return type(v) == "table" and v[i] or v:get(i, 1) end
  local d0 = spec.data
  local tim = spec.time and d0[spec.time]
  local gcol = o.groups and d0[o.groups]
  local base, scen, per, grp, dr = {}, {}, {}, gcol and {} or nil, {}
  for i = 1, d0:nrow() do
    local a, b = at(p0, i), at(p1, i)
    if a == a and b == b then
      local k = #base + 1
      base[k], scen[k], per[k] = a, b, tim and at(tim, i) or "all"
      if grp then grp[k] = at(gcol, i) end
    end
  end
  for r = 1, ndraws do
    local t, k = {}, 0
    for i = 1, d0:nrow() do
      local a, b = at(p0, i), at(p1, i)
      if a == a and b == b then k = k + 1; t[k] = at(draws[r], i) end
    end
    dr[r] = t
  end
  return require("spillover.disparity").change { baseline = base, scenario = scen, periods = per, draws = dr,
    measure = o.measure, groups = grp, part = o.part, transform = o.transform, level = level }
end

return M
