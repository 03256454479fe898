-- test_summary: the draws x rows summary of an experiment (core.summary,
-- engine/src/summary.c) gives the bits the Lua loops of
-- counterfactual.summarise gave, on random data with ties, NaN, zero
-- baselines, every back-transform and every aggregate; core.quantile is the
-- one type-7 quantile (util.quantile calls it).
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local core = require "spillover.core"
local util = require "spillover.util"
local cf = require "spillover.counterfactual"

-- ---- the quantile ---------------------------------------------------------------------

T.check(util.quantile == core.quantile or util.quantile({ 1, 2, 3, 4 }, 0.25) == core.quantile({ 1, 2, 3, 4 }, 0.25),
  "util.quantile is core.quantile")
T.check(core.quantile({ 1, 2, 3, 4 }, 0.25) == 1.75, "type 7: h = 3 * 0.25, 1 + 0.75 * (2 - 1)")
T.check(core.quantile({ 10, 20, 40 }, 0.75) == 30, "type 7: h = 1.5 between 20 and 40")
T.check(core.quantile({ 5, 7 }, 1) == 7 and core.quantile({ 5, 7 }, 1.5) == 7, "p >= 1 gives the last value")
T.check(core.quantile({ 5, 7 }, 0) == 5 and core.quantile({ 5, 7 }, -1) == 5, "p <= 0 gives the first value")
T.check(core.quantile({ 3 }, 0.3) == 3, "one value")
local e = core.quantile({}, 0.5)
T.check(e ~= e, "no value: NaN")
local q = core.quantile({ 1, 2 }, 0 / 0)
T.check(q ~= q, "a NaN p: NaN")
T.checkerr("quantile: sorted entry 2 is not a number", core.quantile, { 1, "x" }, 0.5)

-- ---- the reference: counterfactual.summarise's Lua loops ------------------------------
-- (as they were before the summary moved to C; the oracle of the bits)

local function ref_quantile(sorted, p)
  local n = #sorted
  if n == 0 then return 0 / 0 end
  if p <= 0 then return sorted[1] end
  if p >= 1 then return sorted[n] end
  local h = (n - 1) * p
  local lo = math.floor(h)
  local a, b = sorted[lo + 1], sorted[math.min(lo + 2, n)]
  return a + (h - lo) * (b - a)
end
local function bounds(sorted, level)
  local a = (1 - level) / 2
  return ref_quantile(sorted, a), ref_quantile(sorted, 1 - a)
end
local function sorted_numbers(values)
  local s = {}
  for _, v in ipairs(values) do if v == v then s[#s + 1] = v end end
  table.sort(s)
  return s
end
local function interval(values, level) return bounds(sorted_numbers(values), level) end
local function backtransform(fn, a, b)
  local c = fn == "log1p" and 1 or 0
  if fn == "identity" then return function(p, den) return den * p end end
  if fn == "asinh" then
    return function(p, den) local x = math.exp(p); return den * (a * (x - 1 / x) + b * (x + 1 / x)) / 2 end
  end
  return function(p, den) return den * (a * math.exp(p) - c) end
end

-- The per-row and per-cell numbers of the old summarise for rows with
-- entity ent[i], period per[i], group grp[i]; sc = {fn, factor, shift,
-- aggregate, cumulative} or nil; den0/den1/w arrays or nil.
local function reference(o)
  local n, ndraws, level, sc = #o.b0, #o.draws, o.level, o.sc
  local b0, b1, dr = o.b0, o.b1, o.draws
  local ones = setmetatable({}, { __index = function() return 1 end })
  local den0, den1 = o.den0 or ones, o.den1 or ones
  local G = sc and backtransform(sc.fn, sc.factor, sc.shift)
  local units = {}
  for i = 1, n do
    local u = { row = i, effect = b1[i] - b0[i], entity = o.ent[i], period_key = util.key_of(o.per[i]), groups = { "all", o.grp[i] } }
    if sc then
      u.level_baseline, u.level_scenario = G(b0[i], den0[i]), G(b1[i], den1[i])
      u.level_change = u.level_scenario - u.level_baseline
      u.pct = u.level_baseline ~= 0 and 100 * u.level_change / math.abs(u.level_baseline) or 0 / 0
      u.weight = o.w and o.w[i]
    end
    units[i] = u
  end
  local ldraws = {}
  for r = 1, ndraws do
    if sc then
      local l = {}
      for i = 1, n do l[i] = G(b0[i] + dr[r][i], den1[i]) - units[i].level_baseline end
      ldraws[r] = l
    end
  end
  if ndraws > 0 then
    local vals = {}
    for _, u in ipairs(units) do
      local i = u.row
      for r = 1, ndraws do vals[r] = dr[r][i] end
      local sorted = sorted_numbers(vals)
      u.lo, u.hi = bounds(sorted, level)
      if sc then
        local t, m = {}, #sorted
        for k = 1, m do t[k] = G(b0[i] + sorted[k], den1[i]) - u.level_baseline end
        if m > 1 and t[1] > t[m] then
          for k = 1, m // 2 do t[k], t[m + 1 - k] = t[m + 1 - k], t[k] end
        end
        u.level_lo, u.level_hi = bounds(t, level)
        local b = math.abs(u.level_baseline)
        if b ~= 0 then u.pct_lo, u.pct_hi = 100 * u.level_lo / b, 100 * u.level_hi / b end
      end
    end
  end
  local agg = { has_level = sc ~= nil, unit = sc and sc.aggregate ~= "sum" and sc.aggregate or nil,
    cumulative = sc and sc.cumulative }
  local unitwise = agg.unit == "mean_pct" or agg.unit == "weighted"
  local eff, change = {}, {}
  for i, u in ipairs(units) do eff[i], change[i] = u.effect, u.level_change end
  local function values(rows, ef, lev)
    local sum, ch = 0, 0
    local units_of, order = {}, {}
    for _, u in ipairs(rows) do
      sum = sum + ef[u.row]
      if agg.has_level then
        local dl = lev[u.row]
        ch = ch + dl
        if unitwise then
          local k = u.entity or u.row
          local x = units_of[k]
          if not x then x = { change = 0, base = 0, w = 0 }; units_of[k] = x; order[#order + 1] = k end
          x.change, x.base = x.change + dl, x.base + u.level_baseline
          x.w = x.w + (u.weight or 1)
        end
      end
    end
    local up
    if unitwise then
      local num, den = 0, 0
      for _, k in ipairs(order) do
        local x = units_of[k]
        local w = agg.unit == "weighted" and x.w or 1
        if x.base ~= 0 and w == w then num, den = num + w * 100 * x.change / math.abs(x.base), den + w end
      end
      up = den > 0 and num / den or 0 / 0
    end
    return sum, ch, up
  end
  local function summarise(rows)
    local base = 0
    if agg.has_level then for _, u in ipairs(rows) do base = base + u.level_baseline end end
    local sum, ch, up = values(rows, eff, change)
    local out = { n = #rows, sum = sum, mean = sum / #rows }
    if agg.has_level then
      out.level_change, out.level_baseline = ch, base
      out.pct = base ~= 0 and 100 * ch / math.abs(base) or 0 / 0
      if unitwise then out[agg.unit] = up end
    end
    if ndraws > 0 then
      local sums, changes, ups = {}, {}, {}
      for r = 1, ndraws do sums[r], changes[r], ups[r] = values(rows, dr[r], ldraws[r]) end
      out.sum_lo, out.sum_hi = interval(sums, level)
      out.mean_lo, out.mean_hi = out.sum_lo / #rows, out.sum_hi / #rows
      if agg.has_level then
        out.level_change_lo, out.level_change_hi = interval(changes, level)
        if base ~= 0 then
          out.pct_lo, out.pct_hi = 100 * out.level_change_lo / math.abs(base), 100 * out.level_change_hi / math.abs(base)
        end
        if unitwise then out[agg.unit .. "_lo"], out[agg.unit .. "_hi"] = interval(ups, level) end
      end
    end
    return out
  end
  local function aggregate(keys)
    local groups, pkeys, seen = {}, {}, {}
    for _, u in ipairs(units) do
      if not seen[u.period_key] then seen[u.period_key] = true; pkeys[#pkeys + 1] = u.period_key end
    end
    table.sort(pkeys, function(a, b) return tonumber(a) < tonumber(b) end)
    local rank = {}
    for k, p in ipairs(pkeys) do rank[p] = k end
    for _, u in ipairs(units) do
      if u.effect == u.effect then
        for _, gk in ipairs(keys(u)) do
          local g = groups[gk] or { periods = {}, total = { rows = {} } }
          groups[gk] = g
          local cells = { g.total }
          for k = rank[u.period_key], (agg.cumulative and #pkeys or rank[u.period_key]) do
            local p = g.periods[pkeys[k]] or { rows = {} }
            g.periods[pkeys[k]] = p
            cells[#cells + 1] = p
          end
          for _, c in ipairs(cells) do c.rows[#c.rows + 1] = u end
        end
      end
    end
    local result = {}
    for gk, g in pairs(groups) do
      local r = { periods = {}, total = summarise(g.total.rows) }
      for pk, p in pairs(g.periods) do r.periods[pk] = summarise(p.rows) end
      result[gk] = r
    end
    return result
  end
  return { units = units, groups = aggregate(function(u) return u.groups end),
    entities = aggregate(function(u) return { u.entity } end) }
end

-- ---- random panels ------------------------------------------------------------------------

-- The same bits, or the path of the first difference.
local function same(a, b, path)
  if type(a) == "number" and type(b) == "number" then
    if a == b or (a ~= a and b ~= b) then return nil end
    return string.format("%s: %.17g vs %.17g", path, a, b)
  end
  if type(a) ~= type(b) then return path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) ~= "table" then
    if a == b then return nil end
    return path .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  for k, v in pairs(a) do
    local d = same(v, b[k], path .. "." .. tostring(k))
    if d then return d end
  end
  for k in pairs(b) do if a[k] == nil then return path .. "." .. tostring(k) .. ": missing" end end
end

local rng = sp.rng(20261201)
local NE, NT = 7, 6
local function panel(opts)
  local n = NE * NT
  local ent, per, zone, y, b0, b1, den0, den1, w = {}, {}, {}, {}, {}, {}, {}, {}, {}
  for e = 1, NE do
    for t = 1, NT do
      local i = #ent + 1
      ent[i], per[i], zone[i] = "e" .. e, 2000 + t, ({ "West", "East", "North" })[e % 3 + 1]
      -- values on a grid of 0.25: ties among rows and among draws
      b0[i] = math.floor(rng:uniform() * 12) / 4 + (opts.fn == "identity" and -1 or 0)
      b1[i] = b0[i] + math.floor(rng:uniform() * 5 - 2) / 4
      y[i] = b0[i] + (rng:uniform() - 0.5) / 2
      -- a negative denominator makes the level decrease in the prediction
      den0[i] = (1 + math.floor(rng:uniform() * 4)) * (e == 2 and -1 or 1)
      den1[i] = den0[i] * (t > 3 and 1.25 or 1)
      w[i] = 1 + math.floor(rng:uniform() * 3)
    end
  end
  -- a missing prediction (the row is in no cell), a zero baseline level
  b1[5] = 0 / 0
  if opts.fn == "identity" then b0[9], den0[9] = 0, 1 end
  den0[12] = 0
  local draws = {}
  for r = 1, opts.ndraws do
    local d = {}
    for i = 1, n do d[i] = math.floor(rng:normal() * 8) / 16 end
    d[3] = r % 7 == 0 and 0 / 0 or d[3]  -- some draws missing on a row
    d[5] = 0 / 0
    draws[r] = opts.matrix and core.matrix(d) or d
  end
  return { n = n, ent = ent, per = per, zone = zone, y = y, b0 = b0, b1 = b1, den0 = den0, den1 = den1, w = w,
    draws = draws }
end

local function run_case(name, opts)
  local P = panel(opts)
  local d0 = sp.frame { ent = P.ent, year = P.per, zone = P.zone, y = P.y, den = P.den0, pop = P.w }
  local d1 = d0:copy()
  d1.den = P.den1
  local scale
  if opts.fn then
    scale = { fn = opts.fn, column = "pat", response = "y", backtransform = opts.backtransform or "smearing",
      aggregate = opts.aggregate or "sum", weight = opts.aggregate == "weighted" and "pop" or nil,
      cumulative = opts.cumulative, denominator = opts.den and "den" or nil }
  else
    scale = false
  end
  local spec = { data = d0, entity = "ent", time = "year", groups = { "zone" }, scale = scale }
  local touched = {}
  for i = 1, P.n do touched[i] = P.per[i] > 2003 end
  local res = cf.summarise(spec, opts.matrix and core.matrix(P.b0) or P.b0, P.b1, touched, P.draws, opts.ndraws,
    opts.level or 0.9, "parameter draws", d1)
  local draws = {}
  for r = 1, opts.ndraws do draws[r] = type(P.draws[r]) == "table" and P.draws[r] or P.draws[r]:tovector() end
  local sc = opts.fn and { fn = opts.fn, factor = res.scale.factor, shift = res.scale.shift or 0,
    aggregate = opts.aggregate or "sum", cumulative = opts.cumulative } or nil
  local grp = {}
  for i = 1, P.n do grp[i] = "zone=" .. P.zone[i] end
  local ref = reference { b0 = P.b0, b1 = P.b1, draws = draws, level = opts.level or 0.9, sc = sc,
    den0 = opts.den and P.den0 or nil, den1 = opts.den and P.den1 or nil,
    w = opts.aggregate == "weighted" and P.w or nil, ent = P.ent, per = P.per, grp = grp }
  local diff
  for i, u in ipairs(ref.units) do
    for _, k in ipairs { "effect", "level_baseline", "level_scenario", "level_change", "pct", "lo", "hi", "level_lo",
      "level_hi", "pct_lo", "pct_hi", "weight" } do
      diff = diff or same(u[k], res.units[i][k], "units[" .. i .. "]." .. k)
    end
  end
  diff = diff or same(ref.groups, res.groups, "groups") or same(ref.entities, res.entities, "entities")
  T.check(diff == nil, name .. ": the same bits as the Lua loops", diff)
  return res
end

run_case("model scale, no draws", { ndraws = 0 })
run_case("model scale, draws", { ndraws = 40 })
run_case("log, smearing, sum", { ndraws = 41, fn = "log" })
run_case("log, matrices as inputs", { ndraws = 41, fn = "log", matrix = true })
run_case("log1p, normal, cumulative", { ndraws = 30, fn = "log1p", backtransform = "normal", cumulative = true })
run_case("asinh, smearing, mean_pct", { ndraws = 33, fn = "asinh", aggregate = "mean_pct" })
run_case("identity ratio, weighted", { ndraws = 25, fn = "identity", den = true, aggregate = "weighted" })
run_case("log ratio, weighted, cumulative, level 0.5", { ndraws = 2, fn = "log", den = true, aggregate = "weighted",
  cumulative = true, level = 0.5 })
local r = run_case("log, one draw", { ndraws = 1, fn = "log", aggregate = "mean_pct" })
T.check(r.units[1].lo == r.units[1].hi, "one draw: the interval is that draw")
local none = run_case("naive log, no draws", { ndraws = 0, fn = "log", backtransform = "naive" })
T.check(none.units[1].lo == nil and none.groups.all.total.sum_lo == nil, "no draws: no intervals")

-- ---- the binding's checks ------------------------------------------------------------------
T.checkerr("summary: a draw has 2 entries %(expected 3%)", core.summary, { b0 = { 1, 2, 3 }, b1 = { 1, 2, 3 },
  draws = { { 1, 2 } } })
T.checkerr("summary: cell 1 entry 2 must be a row number from 1 to 2", core.summary, { b0 = { 1, 2 }, b1 = { 1, 2 },
  cells = { { 1, 3 } } })
T.checkerr("summary: unknown scale fn 'sqrt'", core.summary, { b0 = { 1 }, b1 = { 1 }, scale = { fn = "sqrt" } })
T.checkerr("summary: the level must lie between 0 and 1", core.summary, { b0 = { 1 }, b1 = { 1 }, draws = { { 1 } },
  level = 95 })
T.checkerr("summary: unknown option 'draw'", core.summary, { b0 = { 1 }, b1 = { 1 }, draw = {} })
T.checkerr("summary: b1 entry 1 is not a number", core.summary, { b0 = { 1 }, b1 = { "a" } })

T.done()
