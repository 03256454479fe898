-- spillover.allocate: the split of a budget of an input across units that
-- maximises the predicted total effect on the fit's outcome.
--
-- The allocation a_u is added to the input of unit u in every period of the
-- horizon [from, to]; sum_u a_u = budget, lower <= a_u <= upper.  The total
-- effect f(a) is the sum over every row of the data (every unit, every
-- period) of fit:predict(shocked) - fit:predict(baseline), derived variables
-- recomputed: spatial spillovers into units outside the allocation count.
--
-- When f is linear in a (checked numerically on the fit: f(a) against the
-- sum of the per-unit responses at two allocations), the problem is the LP
-- max c'a s.t. sum a = B, lower <= a <= upper, solved by GLPK (core.lp_batch).
-- Otherwise a greedy method gives the budget in `steps` equal increments,
-- each to the unit with the largest gain; its optimality gap is the
-- Frank-Wolfe bound max_b g'(b - a) over feasible b (g the gradient at the
-- greedy allocation, by finite differences; the same LP): an upper bound on
-- f(best) - f(greedy) when f is concave in a, as with diminishing returns
-- such as log(input).
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local cf = require "spillover.counterfactual"
local mpi = require "spillover.mpi"

local M = {}

local key_of = util.key_of

local function at(col, i) return type(col) == "table" and col[i] or col:get(i, 1) end

-- max c'a s.t. sum a = B, lo <= a <= hi, through GLPK.
local function lp(c, B, lo, hi)
  local n = #c
  local ones = {}
  for j = 1, n do ones[j] = 1 end
  local res = core.lp_batch { A = core.matrix({ ones }), sense = "E", rhs = core.matrix({ B }), obj = core.matrix(c),
    lb = core.matrix(lo), ub = core.matrix(hi), maximize = true }
  if res.status[1] ~= "optimal" then raise("allocate: the solver reports the problem " .. res.status[1]) end
  local a = {}
  for j = 1, n do a[j] = res.x(1, j) end
  return a, res.value(1, 1)
end

--- Run an allocation experiment.  spec as spillover.counterfactual.run, with
--- spec.allocate = {variable =, budget =, where =, from =, to =, lower =,
--- upper =, steps =} (lower default 0, upper default the budget, steps of
--- the greedy method default 20).
function M.run(spec)
  local fit, d0 = spec.fit, spec.data
  local o = util.check_options(spec.allocate, { "variable", "budget", "where", "from", "to", "lower", "upper", "steps",
    "objective" },
    "allocate")
  if not (fit and fit.predict) then raise("allocate: 'fit' must satisfy the fit protocol") end
  if cf.is_dynamic(fit) then
    raise("allocate: the fit's outcome feeds its own lags; allocation over dynamic fits is not implemented")
  end
  if not spec.entity then raise("allocate: the budget is split across units: give the panel's entity (data.entity)") end
  local B = o.budget
  if type(B) ~= "number" or not (B > 0 and B < math.huge) then raise("allocate: 'budget' must be a positive number, got " .. tostring(B)) end
  local x0 = d0[o.variable]
  if type(x0) ~= "userdata" then raise("allocate: 'variable' must be a numeric column of the data, got " .. tostring(o.variable)) end
  local mask, _, msg = cf.shock_rows(d0, { where = o.where, from = o.from, to = o.to }, spec.time)
  if not mask then raise("allocate: the allocation touches no row: " .. msg) end
  local n = d0:nrow()
  local ent = d0[spec.entity]
  local units, rows_of = {}, {}
  for i = 1, n do
    if mask[i] then
      local k = key_of(at(ent, i))
      if not rows_of[k] then rows_of[k] = {}; units[#units + 1] = k end
      local r = rows_of[k]
      r[#r + 1] = i
    end
  end
  local nu = #units
  local lower, upper = o.lower or 0, o.upper or B
  local lo, hi = {}, {}
  for j = 1, nu do lo[j], hi[j] = lower, upper end
  if nu * lower > B + 1e-9 * B or nu * upper < B - 1e-9 * B then
    raise(string.format("allocate: a budget of %g cannot be split across %d units within [%g, %g] each", B, nu, lower, upper))
  end

  -- The frame with a[j] added to the input of unit j over the horizon.
  local function frame_of(a)
    local d1 = d0:copy()
    local x = x0:copy()
    for j, k in ipairs(units) do
      for _, i in ipairs(rows_of[k]) do x[i] = x[i] + a[j] end
    end
    d1[o.variable] = x
    if spec.derive then spec.derive(d1) end
    return d1
  end
  local base = fit:predict(d0)
  -- Rows the baseline cannot predict stay out; a row the allocation makes
  -- unpredictable (the log of a negative input) would silently leave the
  -- total, so it is refused.
  -- The objective on the outcome's data column (additional patents, not
  -- the sum of changes in ln patents) when the outcome is a transform of one:
  -- the experiment's own level change (spillover.counterfactual.summarise),
  -- a draw's effect applied to the baseline prediction as there.
  local none = {}
  for i = 1, n do none[i] = false end
  local level_spec = { data = d0, fit = fit, scale = spec.scale }
  local function level_change(p1, p0, d1)
    local shifted = {}
    for i = 1, n do shifted[i] = at(base, i) + at(p1, i) - at(p0, i) end
    return cf.summarise(level_spec, base, shifted, none, {}, 0, 0.95, "none", d1).groups.all.total.level_change
  end
  local objective = o.objective or (level_change(base, base) ~= nil and "level" or "model")
  if objective ~= "level" and objective ~= "model" then
    raise("allocate: 'objective' is \"level\" (the outcome's data column) or \"model\" (the model's scale), got " ..
      tostring(objective))
  end
  if objective == "level" and level_change(base, base) == nil then
    raise("allocate: objective \"level\" needs an outcome that is a transform of a data column (see scale:)")
  end
  local function total(p1, p0, d1)
    local s, lost = 0, 0
    for i = 1, n do
      local b, e = at(p0, i), at(p1, i) - at(p0, i)
      if e == e then s = s + e elseif b == b then lost = lost + 1 end
    end
    if lost > 0 then
      raise(string.format("allocate: an allocation within the bounds leaves %d predictions undefined (a log of a " ..
        "non-positive %s?); raise 'lower'", lost, o.variable))
    end
    if objective == "level" then return level_change(p1, p0, d1) end
    return s
  end
  local evals = 0
  local function f(a)
    evals = evals + 1
    local d1 = frame_of(a)
    return total(fit:predict(d1), base, d1)
  end
  local function unit_vec(j, h, a)
    local v = {}
    for q = 1, nu do v[q] = a and a[q] or 0 end
    v[j] = v[j] + h
    return v
  end

  -- Responses to a unit amount per unit, and the linearity check.
  local h = B / nu
  local c = {}
  for j = 1, nu do c[j] = f(unit_vec(j, h)) / h end
  local equal = {}
  for j = 1, nu do equal[j] = h end
  local f_eq = f(equal)
  local lin_eq = 0
  for j = 1, nu do lin_eq = lin_eq + c[j] * h end
  local best = 1
  for j = 2, nu do if c[j] > c[best] then best = j end end
  local f_twice = f(unit_vec(best, 2 * h))
  local scale = math.abs(f_eq) + math.abs(f_twice) + 1e-300
  local dev = math.max(math.abs(f_eq - lin_eq), math.abs(f_twice - 2 * h * c[best])) / scale
  local linear = dev < 1e-6

  local a, method, gap
  if linear then
    a = lp(c, B, lo, hi)
    method, gap = "linear programme (GLPK)", 0
  else
    local steps = o.steps or 20
    if math.type(steps) ~= "integer" or steps < 1 then raise("allocate: 'steps' must be a positive integer, got " .. tostring(steps)) end
    a = {}
    for j = 1, nu do a[j] = lower end
    local delta = (B - nu * lower) / steps
    local fa = f(a)
    for _ = 1, steps do
      local bj, bf = nil, -math.huge
      for j = 1, nu do
        if a[j] + delta <= upper + 1e-9 * math.abs(upper) then
          local v = f(unit_vec(j, delta, a))
          if v > bf then bj, bf = j, v end
        end
      end
      if not bj then break end -- every unit at its upper bound (rounding)
      a[bj] = a[bj] + delta
      fa = bf
    end
    -- Frank-Wolfe bound: the gradient by differences of half a step.
    local g, hd = {}, delta / 2
    for j = 1, nu do
      if a[j] + hd <= upper then g[j] = (f(unit_vec(j, hd, a)) - fa) / hd
      else g[j] = (fa - f(unit_vec(j, -hd, a))) / hd end
    end
    local _, gb = lp(g, B, lo, hi)
    local ga = 0
    for j = 1, nu do ga = ga + g[j] * a[j] end
    gap = math.max(0, gb - ga)
    method = string.format("greedy (%d steps of %g)", steps, delta)
  end

  -- The status quo: the budget split in proportion to the input's baseline
  -- level over the horizon.
  local sq, mass = {}, 0
  for j, k in ipairs(units) do
    local s = 0
    for _, i in ipairs(rows_of[k]) do s = s + at(x0, i) end
    sq[j] = s / #rows_of[k]
    mass = mass + sq[j]
  end
  for j = 1, nu do sq[j] = B * sq[j] / mass end

  local d_opt, d_eq, d_sq = frame_of(a), frame_of(equal), frame_of(sq)
  local p1 = fit:predict(d_opt)
  local f_opt = total(p1, base, d_opt)
  local f_sq = total(fit:predict(d_sq), base, d_sq)
  local level = spec.level or 0.95
  local ndraws = spec.draws or 0
  local draws, gains_eq, gains_sq = {}, {}, {}
  if ndraws > 0 then
    local rng = core.rng(spec.seed or 42)
    -- Under mpirun each process runs a block of the draws (four predictions
    -- each) and every process gets all of them: draw r is the same draw on
    -- any process, from rng:substream(r).
    local first, last = mpi.range(ndraws)
    mpi.same(f_opt, "allocate: the total effect of the allocation")
    for r = first, last do
      local coef = fit:draw(rng:substream(r))
      local q0 = fit:predict(d0, { coef = coef })
      local q1 = fit:predict(d_opt, { coef = coef })
      local t_opt = total(q1, q0, d_opt)
      gains_eq[r] = t_opt - total(fit:predict(d_eq, { coef = coef }), q0, d_eq)
      gains_sq[r] = t_opt - total(fit:predict(d_sq, { coef = coef }), q0, d_sq)
      local e = {}
      for i = 1, n do e[i] = at(q1, i) - at(q0, i) end
      draws[r] = e
      if spec.progress then spec.progress(r - first + 1, last - first + 1) end
    end
    if mpi.size() > 1 then
      local function block(v)
        local out = {}
        for r = first, last do out[#out + 1] = v[r] end
        return out
      end
      gains_eq, gains_sq = mpi.collect(block(gains_eq), ndraws), mpi.collect(block(gains_sq), ndraws)
      mpi.collect_vectors(draws, ndraws, n)
    end
  end
  local touched = {}
  for i = 1, n do touched[i] = false end
  for j, k in ipairs(units) do
    if a[j] > 0 then for _, i in ipairs(rows_of[k]) do touched[i] = true end end
  end
  local res = cf.summarise(spec, base, p1, touched, draws, ndraws, level, ndraws > 0 and "parameter draws" or "none")
  local function interval(v)
    if #v == 0 then return nil, nil end
    local s = {}
    for i, x in ipairs(v) do s[i] = x end
    table.sort(s)
    return util.quantile(s, (1 - level) / 2), util.quantile(s, 1 - (1 - level) / 2)
  end
  local alloc = { variable = o.variable, budget = B, objective = objective, lower = lower, upper = upper, method = method, linear = linear,
    linearity_deviation = dev, optimality_gap = gap, evaluations = evals,
    total = f_opt, equal_total = f_eq, status_quo_total = f_sq,
    gain_over_equal = f_opt - f_eq, gain_over_status_quo = f_opt - f_sq, table = {} }
  alloc.gain_over_equal_lo, alloc.gain_over_equal_hi = interval(gains_eq)
  alloc.gain_over_status_quo_lo, alloc.gain_over_status_quo_hi = interval(gains_sq)
  for j, k in ipairs(units) do
    alloc.table[j] = { unit = k, amount = a[j], equal = equal[j], status_quo = sq[j], response = c[j] }
  end
  res.allocation = alloc
  local periods = 0
  for _, k in ipairs(units) do periods = math.max(periods, #rows_of[k]) end
  res.input = { variable = o.variable, amount = B * periods }
  res.notes = { string.format("allocation of %g of %s per period over %d units by %s%s", B, o.variable, nu, method,
    linear and "" or string.format("; optimality gap at most %.4g if the response is concave", gap)) }
  res.record = { allocation = alloc }
  res.files = function(name, w) return M.files(name, res, w) end
  return res
end

local fmt = util.number

--- allocation_<name>.csv and .md: the split, the totals and the gains.
function M.files(name, r, w)
  local a = r.allocation
  w.write("allocation_" .. name .. ".csv", w.csv(a.table, { "unit", "amount", "equal", "status_quo", "response" }))
  local lines = {
    "# Allocation of experiment " .. name, "",
    string.format("Budget: %s of %s per period, each unit within [%s, %s]. Method: %s%s.", fmt(a.budget), a.variable,
      fmt(a.lower), fmt(a.upper), a.method, a.linear and "" or ("; optimality gap (concave bound) " .. fmt(a.optimality_gap))),
    "",
    a.objective == "level" and "Objective and totals: the change in the level of the outcome's data column, summed over " ..
      "units and periods (the back-transform of the experiment's effects)." or
      "Objective and totals: the effect on the model's outcome, summed over units and periods.",
    "",
    "| | total effect | gain of the optimum | interval |",
    "|---|---:|---:|---|",
    string.format("| optimum | %s | | |", fmt(a.total)),
    string.format("| equal split | %s | %s | %s |", fmt(a.equal_total), fmt(a.gain_over_equal),
      a.gain_over_equal_lo and string.format("[%s, %s]", fmt(a.gain_over_equal_lo), fmt(a.gain_over_equal_hi)) or ""),
    string.format("| status quo (in proportion to the baseline %s) | %s | %s | %s |", a.variable, fmt(a.status_quo_total),
      fmt(a.gain_over_status_quo), a.gain_over_status_quo_lo and
      string.format("[%s, %s]", fmt(a.gain_over_status_quo_lo), fmt(a.gain_over_status_quo_hi)) or ""),
    "", "| unit | amount | equal split | status quo | effect per unit of input alone |", "|---|---:|---:|---:|---:|",
  }
  for _, x in ipairs(a.table) do
    lines[#lines + 1] = string.format("| %s | %s | %s | %s | %s |", tostring(x.unit), fmt(x.amount), fmt(x.equal),
      fmt(x.status_quo), fmt(x.response))
  end
  w.write("allocation_" .. name .. ".md", table.concat(lines, "\n") .. "\n")
end

return M
