-- spillover.scenario_derive: the derive step of a scenario.  Derived variables
-- are put in dependency order at check time (cycles refused), and computed by
-- one function that runs on the baseline data first and then on every shocked
-- copy with the baseline's parameters held fixed (index weights and
-- normalisation bounds, winsorising bounds, standardising moments), so an
-- experiment moves a derived variable only through the data it is derived
-- from.
local core = require "spillover.core"
local check = require "spillover.scenario_check"

local M = {}

-- ---- derived variables: order and cycles ---------------------------------------------------

local expr_vars = require("spillover.derive").inputs
local util = require "spillover.util"
local raise = util.raise

--- The variables a derivation reads (nil, message when it names no known kind).
function M.inputs(spec)
  if type(spec) == "string" then return expr_vars(spec) end
  if spec.expr then return expr_vars(spec.expr) end
  if spec.entropy then return spec.entropy end
  if spec.topsis then return spec.topsis end
  if spec.winsorize then return { spec.winsorize, spec.by } end
  if spec.standardize then return { spec.standardize } end
  if spec.group_mean then return { spec.group_mean, spec.by } end
  if spec.ratio then return spec.ratio end
  if spec.efficiency then return require("spillover.dea").derived_inputs(spec.efficiency) end
  return nil, "expected an expression or one of: expr, entropy, topsis, winsorize, standardize, group_mean, ratio, "
    .. "efficiency"
end

--- Derived names in dependency order (file order among independent ones).
function M.order(s, errs)
  local derive = s.spec.derive or {}
  local names = {}
  for k in pairs(derive) do names[#names + 1] = k end
  table.sort(names, function(a, b)
    local pa, pb = check.position(s, "derive." .. a), check.position(s, "derive." .. b)
    if pa.line ~= pb.line then return pa.line < pb.line end
    return a < b
  end)
  local deps = {}
  for _, k in ipairs(names) do
    local inputs, msg = M.inputs(derive[k])
    if not inputs then
      errs[#errs + 1] = check.located(s, "derive." .. k, msg)
      inputs = {}
    end
    deps[k] = {}
    for _, v in ipairs(inputs) do if derive[v] ~= nil and v ~= k then deps[k][#deps[k] + 1] = v end end
    for _, v in ipairs(inputs) do
      if v == k and type(derive[k]) == "string" then
        errs[#errs + 1] = check.located(s, "derive." .. k, "'" .. k .. "' is defined in terms of itself")
      end
    end
  end
  local order, state = {}, {}
  local function visit(k, stack)
    if state[k] == "done" then return end
    if state[k] == "active" then
      local cycle = {}
      local on = false
      for _, x in ipairs(stack) do
        if x == k then on = true end
        if on then cycle[#cycle + 1] = x end
      end
      cycle[#cycle + 1] = k
      errs[#errs + 1] = check.located(s, "derive." .. k, "cyclic derivation: " .. table.concat(cycle, " -> "))
      return
    end
    state[k] = "active"
    stack[#stack + 1] = k
    for _, dep in ipairs(deps[k]) do visit(dep, stack) end
    stack[#stack] = nil
    state[k] = "done"
    order[#order + 1] = k
  end
  for _, k in ipairs(names) do visit(k, {}) end
  return order
end

-- Derivations that read `by` (groups); any other would silently ignore it.
local BY_KINDS = { "entropy", "topsis", "winsorize", "group_mean" }

--- Why a derivation's `by` cannot be honoured, or nil.
function M.by_problem(dv)
  if type(dv) ~= "table" then return nil end
  local uses = false
  for _, k in ipairs(BY_KINDS) do if dv[k] ~= nil then uses = true end end
  if dv.group_mean ~= nil and dv.by == nil then return "group_mean needs 'by' (the grouping column)" end
  if dv.by ~= nil and not uses then
    return "'by' is used only by " .. table.concat(BY_KINDS, ", ") .. "; this derivation takes the whole sample"
  end
end

--- Baseline winsorising bounds of column src (p in each tail, within the
--- groups of column `by` when given): the C winsorizer computes them on d's
--- values, written to column name; the bounds are the smallest and largest
--- winsorized value of each group (a type-7 quantile always has a data value
--- at or beyond it, which is clamped onto it).
local function winsor_bounds(d, src, name, p, by)
  local x = d[src]
  local n = 0
  for i = 1, #x do if x[i] == x[i] then n = n + 1 end end
  if n < 2 then raise("'" .. src .. "' has " .. n .. " non-missing value(s); at least 2 are needed") end
  d[name] = x:copy()
  d:winsorize(name, { p = p, by = by })
  local w, g = d[name], by and d[by]
  local lo, hi = {}, {}
  local all_lo, all_hi = math.huge, -math.huge
  for i = 1, #w do
    local v, key = w[i], true
    if g then key = g[i] end
    if v == v and key ~= nil and key == key then
      lo[key], hi[key] = math.min(lo[key] or v, v), math.max(hi[key] or v, v)
      all_lo, all_hi = math.min(all_lo, v), math.max(all_hi, v)
    end
  end
  if all_lo == all_hi then raise("winsorizing '" .. src .. "' at p = " .. p .. " makes it constant (" .. all_lo .. ")") end
  return { lo = lo, hi = hi }
end

--- src clamped to the baseline bounds b of each row's group (rows whose
--- group is missing or unseen at baseline are left as they are, as the C
--- winsorizer leaves rows without a group).
local function winsorized(d, src, b, by)
  local x, g = d[src]:copy(), by and d[by]
  for i = 1, #x do
    local v, key = x[i], true
    if g then key = g[i] end
    if v == v and key ~= nil and key == key and b.lo[key] then
      x[i] = math.min(math.max(v, b.lo[key]), b.hi[key])
    end
  end
  return x
end

--- Baseline moments of column src (C describe: corrected two-pass mean, sd on n - 1).
local function moments(d, src)
  local st = d:describe { src }
  local n, mean, sd = st.N[1], st.mean[1], st.sd[1]
  if n < 2 then raise("'" .. src .. "' has " .. math.tointeger(n) .. " non-missing value(s); at least 2 are needed") end
  if not (sd > 0 and sd < math.huge) then
    raise("cannot standardize '" .. src .. "': its standard deviation is " .. sd)
  end
  return { mean = mean, sd = sd }
end

--- Build the derive step: a function(frame, first) recomputing every derived
--- variable in dependency order; first = true on the baseline data, which
--- sets the parameters every later call holds (index weights and
--- normalisation bounds, winsorising bounds, standardising moments).  The
--- baseline's index results are kept in s.indices.
function M.step(s)
  local derive, order = s.spec.derive or {}, s.derive_order or {}
  local eval = require("spillover.derive").eval
  local baseline = {}
  s.indices = {}
  local function compute(d, name, dv, first)
    if type(dv) == "string" or dv.expr then
      d[name] = eval(d, type(dv) == "string" and dv or dv.expr)
    elseif dv.ratio then
      d[name] = eval(d, "I(" .. dv.ratio[1] .. " / " .. dv.ratio[2] .. ")")
    elseif dv.entropy or dv.topsis then
      local index = require "spillover.index"
      if first then
        local opts = { direction = dv.direction, by = dv.by, scale = dv.scale, shift = dv.shift, normalise = dv.normalise }
        local res = dv.entropy and index.entropy(d, dv.entropy, opts) or index.topsis(d, dv.topsis, opts)
        baseline[name] = res
        s.indices[name] = res
        d[name] = res.score
      else
        d[name] = index.apply(d, baseline[name])
      end
    elseif dv.winsorize then
      if first then baseline[name] = winsor_bounds(d, dv.winsorize, name, dv.p or 0.01, dv.by)
      else d[name] = winsorized(d, dv.winsorize, baseline[name], dv.by) end
    elseif dv.standardize then
      if first then baseline[name] = moments(d, dv.standardize) end
      local b = baseline[name]
      d[name] = (d[dv.standardize] - b.mean) / b.sd
    elseif dv.efficiency then
      -- the frontier is estimated on the baseline, then held or re-estimated as `hold` says
      local ctx = { time = s.spec.data.time, entity = s.spec.data.entity }
      local col, st = require("spillover.dea").derived(d, dv.efficiency, (not first) and baseline[name] or nil, ctx)
      if first then
        baseline[name] = st
        s.indices[name] = { efficiency_notes = st.notes, productivity = st.productivity and st.productivity.rows }
      end
      d[name] = col
    elseif dv.group_mean then
      local by = dv.by
      local agg = d:aggregate { by = by, mean = { dv.group_mean } }
      local key = {}
      local bycol, mcol = agg[by], agg[dv.group_mean .. "_mean"]
      for i = 1, agg:nrow() do key[tostring(bycol[i])] = mcol[i] end
      local src = d[by]
      local out = core.matrix(d:nrow(), 1, 0 / 0)
      for i = 1, d:nrow() do out:set(i, 1, key[tostring(src[i])] or 0 / 0) end
      d[name] = out
    end
  end
  -- Each variable under pcall, so a failure is reported at its derive.<name>
  -- entry instead of at a line of this file.
  return function(d, first)
    for _, name in ipairs(order) do
      local ok, err = pcall(compute, d, name, derive[name], first)
      if not ok then check.fail(s, "derive." .. name, err) end
    end
  end
end

return M
