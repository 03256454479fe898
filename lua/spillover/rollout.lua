-- spillover.rollout: roll-out experiments for policy-evaluation fits.  "The
-- pilot extended to every western province from 2018": the units a
-- where-expression selects that are not yet treated by `from` become treated
-- from `from`, and the fit's estimated dynamic effects are the effect path
-- (effect at event time e = t - from).  Intervals come from the fit's
-- uncertainty: parameter draws of the fit, pushed through its dynamic effects.
--
-- A fit serves roll-outs when it has (capability `rollout`):
--   fit.cohort                      the column of first treated periods (0 or missing = never)
--   fit:dynamic_effects(coef)       {[e] = effect} for event times e >= 0, from the estimates
--                                   (coef nil) or from a parameter draw (coef = fit:draw(rng))
-- A unit already treated later than `from` is moved earlier: its effect is
-- the difference between the effect paths from `from` and from its cohort.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local cf = require "spillover.counterfactual"
local F = require "spillover.formula"

local M = {}

local key_of = util.key_of

local function at(col, i) return type(col) == "table" and col[i] or col:get(i, 1) end

-- The effect at event time e of a path, NaN beyond the estimated horizon.
local function effect_at(path, e)
  local v = path[e]
  return type(v) == "number" and v or 0 / 0
end

-- The change the roll-out makes in row i: the path from `from` minus the
-- path the unit follows anyway (from its own cohort, if it has one).
local function change(path, t, from, g)
  if t < from then return 0 end
  local new = effect_at(path, t - from)
  if g > 0 and t >= g then return new - effect_at(path, t - g) end
  return new
end

--- Run one roll-out.
--   spec.data, spec.fit, spec.entity, spec.time (required), spec.where (expression
--   selecting the units), spec.from (first treated period), spec.groups, spec.draws,
--   spec.seed, spec.level, spec.progress: as sp.counterfactual.
function M.run(spec)
  local fit, d = spec.fit, spec.data
  if not (fit and type(fit.dynamic_effects) == "function" and type(fit.cohort) == "string") then
    raise("rollout: the fit has no dynamic treatment effects (fit:dynamic_effects and fit.cohort): " ..
      "a roll-out needs a difference-in-differences or event-study fit")
  end
  if not (spec.entity and spec.time) then raise("rollout: needs the panel's entity and time (data.entity, data.time)") end
  local from = spec.from
  if type(from) ~= "number" then raise("rollout: 'from' must be the first treated period, got " .. tostring(from)) end
  local level = spec.level or 0.95
  local n = d:nrow()
  local ent, tim, coh = d[spec.entity], d[spec.time], d:column(fit.cohort)
  if type(coh) ~= "userdata" then raise("rollout: the cohort column '" .. fit.cohort .. "' must be numeric") end
  local lo, hi = math.huge, -math.huge
  for i = 1, n do
    local t = at(tim, i)
    if t == t then lo, hi = math.min(lo, t), math.max(hi, t) end
  end
  if from < lo or from > hi then
    raise(string.format("rollout: 'from' = %s is outside the panel's periods (%s to %s)", key_of(from), key_of(lo), key_of(hi)))
  end
  -- The units the expression selects (a unit is selected by any of its rows).
  local mask, _, msg = cf.shock_rows(d, { where = spec.where }, spec.time)
  if not mask then raise("rollout: the where-expression selects no row: " .. msg) end
  local picked, cohort_of = {}, {}
  for i = 1, n do
    local k = key_of(at(ent, i))
    local g = at(coh, i)
    cohort_of[k] = g == g and g or 0
    if mask[i] then picked[k] = true end
  end
  local newly, kept = {}, {}
  for k in pairs(picked) do
    local g = cohort_of[k]
    if g > 0 and g <= from then kept[#kept + 1] = k else newly[#newly + 1] = k end
  end
  table.sort(newly)
  table.sort(kept)
  if #newly == 0 then
    raise(string.format("rollout: every unit the where-expression selects (%d) is already treated by %s: " ..
      "nothing to roll out", #kept, key_of(from)))
  end
  local rolled = {}
  for _, k in ipairs(newly) do rolled[k] = true end

  local y = F.parse(fit.formula):response()
  local ycol = y and d:column(y)
  if type(ycol) ~= "userdata" then raise("rollout: the fit's outcome '" .. tostring(y) .. "' is not a numeric column of the data") end
  local rows = {}
  for i = 1, n do
    if rolled[key_of(at(ent, i))] then rows[#rows + 1] = i end
  end
  -- each rolled-out row's period and own cohort, read once for every draw
  local row_t, row_g = {}, {}
  for j, i in ipairs(rows) do row_t[j], row_g[j] = at(tim, i), cohort_of[key_of(at(ent, i))] end
  local function effects(path)
    local out = {}
    for i = 1, n do out[i] = 0 end
    for j, i in ipairs(rows) do out[i] = change(path, row_t[j], from, row_g[j]) end
    return out
  end
  local path = fit:dynamic_effects(nil)
  local eff = effects(path)
  local p0, p1, touched = {}, {}, {}
  local beyond = 0
  for i = 1, n do
    p0[i] = at(ycol, i)
    p1[i] = p0[i] + eff[i]
    touched[i] = rolled[key_of(at(ent, i))] and at(tim, i) >= from or false
    if touched[i] and eff[i] ~= eff[i] then beyond = beyond + 1 end
  end
  local ndraws = spec.draws or 0
  local draws = {}
  if ndraws > 0 then
    local root = core.rng(spec.seed or 42)
    for r = 1, ndraws do
      draws[r] = effects(fit:dynamic_effects(fit:draw(root:substream(r))))
      if spec.progress then spec.progress(r, ndraws) end
    end
  end
  local res = cf.summarise(spec, p0, p1, touched, draws, ndraws, level, ndraws > 0 and "parameter draws" or "none")
  local notes = { string.format("treated from %s: %s", key_of(from), table.concat(newly, ", ")) }
  if #kept > 0 then
    notes[#notes + 1] = string.format("already treated by %s, unchanged: %s", key_of(from), table.concat(kept, ", "))
  end
  if beyond > 0 then
    local maxe = -1
    for e in pairs(path) do if type(e) == "number" and e > maxe then maxe = e end end
    notes[#notes + 1] = string.format("%d unit-periods lie beyond the estimated effects (event time > %d): " ..
      "their effect is missing (NaN), not extrapolated", beyond, maxe)
  end
  res.rollout = { from = from, units = newly, unchanged = kept }
  res.notes = notes
  return res
end

return M
