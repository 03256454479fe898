-- spillover.disparity: measures of regional disparity (issue 13).
--
--   gini(x [, {weights =}])            Gini coefficient (mean absolute difference / 2 mean)
--   dagum(x, groups)                   Dagum (1997) decomposition G = Gw + Gnb + Gt
--   theil(x [, {groups =, weights =}]) Theil T and L with between/within parts
--   atkinson(x, e [, {weights =}])     Atkinson index
--   cv(x [, {weights =}])              coefficient of variation
--   spatial_gini(x, W [, {permutations =, seed =}])  Rey & Smith (2013)
--   kde(x [, {kernel =, bw =, n =, from =, to =}])   util.kde
--   by_period(d, var, {time =, groups =, measure =, ...})  one result per period
--   dagum_table(r), dagum_plot(path, rows)   the Dagum table and its series
--
-- Every function takes plain vectors: a Lua list of numbers or an n x 1
-- matrix (a frame column); groups are a list of labels of the same length.
-- Pairwise sums of absolute differences, the heart of Gini and Dagum, are
-- computed from sorted values and prefix sums (O(n log n)), never over pairs:
-- a 300-city, 30-year decomposition would otherwise take 30 x 90,000 pairs
-- per group pair.  docs/estimators/disparity.md gives the formulas.
local util = require "spillover.util"
local raise = util.raise

local M = {}

-- ---- input ----------------------------------------------------------------------

--- The numbers of x (a list or an n x 1 / 1 x n matrix) as a Lua array,
--- each finite; what names x in errors.
local function numbers(fname, x, what)
  local v
  if type(x) == "userdata" and x.totable then
    if x:ncol() ~= 1 and x:nrow() ~= 1 then
      raise(string.format("%s: %s must be a vector (n x 1), got a %d x %d matrix", fname, what, x:nrow(), x:ncol()))
    end
    v = x:totable()
  elseif type(x) == "table" then
    v = x
  else
    raise(string.format("%s: %s must be a list of numbers or an n x 1 matrix, got %s", fname, what, type(x)))
  end
  local out, n = {}, v.n or #v
  for i = 1, n do
    local y = v[i]
    if type(y) ~= "number" or y ~= y or y == math.huge or y == -math.huge then
      raise(string.format("%s: %s[%d] is %s; expected a finite number (drop missing values first)", fname, what, i,
        tostring(y)))
    end
    out[i] = y
  end
  if n == 0 then raise(fname .. ": " .. what .. " is empty") end
  return out
end

--- The values of x as numbers >= 0 with a positive total: shares and
--- means of incomes, patents or GDP (the measures are not defined otherwise).
local function incomes(fname, x, what)
  local v = numbers(fname, x, what or "x")
  local total = 0
  for i, y in ipairs(v) do
    if y < 0 then raise(string.format("%s: %s[%d] = %s is negative; the measure needs values >= 0", fname,
      what or "x", i, tostring(y))) end
    total = total + y
  end
  if not (total > 0) then raise(fname .. ": all values are 0; the measure needs a positive mean") end
  return v
end

local function weights_of(fname, w, n)
  if w == nil then return nil end
  local v = numbers(fname, w, "weights")
  if #v ~= n then raise(string.format("%s: weights has %d values for %d values of x", fname, #v, n)) end
  for i, y in ipairs(v) do
    if not (y > 0) then raise(string.format("%s: weights[%d] = %s; weights must be positive", fname, i, tostring(y))) end
  end
  return v
end

--- Group labels (a list, or a frame's categorical column with n =) as keys,
--- and the sorted distinct keys.
local function groups_of(fname, g, n)
  if type(g) ~= "table" then raise(fname .. ": groups must be a list of labels, got " .. type(g)) end
  local m = g.n or #g
  if m ~= n then raise(string.format("%s: groups has %d labels for %d values", fname, m, n)) end
  local keys, seen, levels = {}, {}, {}
  for i = 1, n do
    local k = g[i]
    if k == nil or k ~= k then raise(string.format("%s: groups[%d] is missing", fname, i)) end
    k = util.key_of(k)
    keys[i] = k
    if not seen[k] then seen[k] = true; levels[#levels + 1] = k end
  end
  table.sort(levels, function(a, b)
    local na, nb = tonumber(a), tonumber(b)
    if na and nb then return na < nb end
    return tostring(a) < tostring(b)
  end)
  return keys, levels
end

-- ---- sums of absolute differences -------------------------------------------------

local function sorted_copy(v)
  local s = {}
  for i, y in ipairs(v) do s[i] = y end
  table.sort(s)
  return s
end

--- sum over i, j of |a_i - b_j| for two sorted arrays (ordered pairs, so a
--- with itself counts each pair twice), by merging: each a_i is above the
--- b's before it and below the rest.  O(#a + #b).
local function cross_sad(a, b)
  local nb, total_b = #b, 0
  for _, y in ipairs(b) do total_b = total_b + y end
  local j, below, sum_below = 1, 0, 0
  local s = 0
  for _, x in ipairs(a) do
    while j <= nb and b[j] <= x do
      sum_below = sum_below + b[j]
      below, j = below + 1, j + 1
    end
    s = s + (x * below - sum_below) + ((total_b - sum_below) - x * (nb - below))
  end
  return s
end

local function sum(v)
  local s = 0
  for _, y in ipairs(v) do s = s + y end
  return s
end

--- Weighted sum over ordered pairs of w_i w_j |x_i - x_j| (sorted by x).
local function weighted_sad(x, w)
  local idx = {}
  for i = 1, #x do idx[i] = i end
  table.sort(idx, function(a, b) return x[a] < x[b] end)
  local cw, cwx, s = 0, 0, 0
  for _, i in ipairs(idx) do
    s = s + w[i] * (x[i] * cw - cwx)
    cw, cwx = cw + w[i], cwx + w[i] * x[i]
  end
  return 2 * s
end

-- ---- Gini, Theil, Atkinson, CV ------------------------------------------------------

--- Gini coefficient: sum_i sum_j w_i w_j |x_i - x_j| / (2 W^2 mu), with
--- W = sum w and mu the (weighted) mean; unweighted, w = 1.
function M.gini(x, opts)
  opts = util.check_options(opts, { "weights" }, "gini")
  local v = incomes("gini", x)
  local w = weights_of("gini", opts.weights, #v)
  if not w then
    local s = sorted_copy(v)
    return cross_sad(s, s) / (2 * #v * sum(v))
  end
  local W, Wx = 0, 0
  for i = 1, #v do W, Wx = W + w[i], Wx + w[i] * v[i] end
  return weighted_sad(v, w) / (2 * W * Wx)
end

--- Theil T and L of values with population shares p (summing to 1) and
--- value shares s: T = sum s ln(s/p), L = sum p ln(p/s).
local function theil_tl(s, p)
  local T, L = 0, 0
  for i = 1, #s do
    if s[i] > 0 then T = T + s[i] * math.log(s[i] / p[i]) end
    L = L + p[i] * math.log(p[i] / s[i])
  end
  return T, L
end

--- Theil's T (GE(1)) and L (GE(0), the mean log deviation), with their
--- between/within decomposition when groups are given.  With weights
--- (population), each unit counts in proportion to its weight.  A zero
--- value makes L infinite (it is reported as inf); T takes 0 ln 0 = 0.
function M.theil(x, opts)
  opts = util.check_options(opts, { "groups", "weights" }, "theil")
  local v = incomes("theil", x)
  local n = #v
  local w = weights_of("theil", opts.weights, n)
  local W, Wx = 0, 0
  for i = 1, n do
    local wi = w and w[i] or 1
    W, Wx = W + wi, Wx + wi * v[i]
  end
  local s, p = {}, {}
  for i = 1, n do
    local wi = w and w[i] or 1
    s[i], p[i] = wi * v[i] / Wx, wi / W
  end
  local T, L = theil_tl(s, p)
  local res = { T = T, L = L, n = n }
  if opts.groups == nil then return res end
  local keys, levels = groups_of("theil", opts.groups, n)
  local gs, gp, members = {}, {}, {}
  for _, k in ipairs(levels) do gs[k], gp[k], members[k] = 0, 0, {} end
  for i = 1, n do
    local k = keys[i]
    gs[k], gp[k] = gs[k] + s[i], gp[k] + p[i]
    members[k][#members[k] + 1] = i
  end
  local bs, bp = {}, {}
  for j, k in ipairs(levels) do bs[j], bp[j] = gs[k], gp[k] end
  local bT, bL = theil_tl(bs, bp)
  local groups = {}
  local wT, wL = 0, 0
  for _, k in ipairs(levels) do
    local ss, pp = {}, {}
    for j, i in ipairs(members[k]) do ss[j], pp[j] = s[i] / gs[k], p[i] / gp[k] end
    local tg, lg = theil_tl(ss, pp)
    if gs[k] == 0 then tg = 0 end
    groups[#groups + 1] = { group = k, n = #members[k], T = tg, L = lg, value_share = gs[k], pop_share = gp[k],
      T_contribution = gs[k] * tg, L_contribution = gp[k] * lg }
    if gs[k] > 0 then wT = wT + gs[k] * tg end
    wL = wL + gp[k] * lg
  end
  res.between = { T = bT, L = bL }
  res.within = { T = wT, L = wL }
  res.share_between = { T = T > 0 and bT / T or 0 / 0, L = L > 0 and bL / L or 0 / 0 }
  res.groups = groups
  return res
end

--- Atkinson's index with inequality aversion e >= 0:
--- 1 - (mean (x/mu)^(1-e))^(1/(1-e)), and 1 - geometric mean / mu at e = 1.
function M.atkinson(x, e, opts)
  opts = util.check_options(opts, { "weights" }, "atkinson")
  if type(e) ~= "number" or not (e >= 0) or e == math.huge then
    raise("atkinson: e (inequality aversion) must be a number >= 0, got " .. tostring(e))
  end
  local v = incomes("atkinson", x)
  local w = weights_of("atkinson", opts.weights, #v)
  local W, mu = 0, 0
  for i = 1, #v do
    local wi = w and w[i] or 1
    W, mu = W + wi, mu + wi * v[i]
  end
  mu = mu / W
  local acc = 0
  for i = 1, #v do
    local wi = (w and w[i] or 1) / W
    if e == 1 then
      if v[i] == 0 then return 1 end
      acc = acc + wi * math.log(v[i] / mu)
    else
      acc = acc + wi * (v[i] / mu) ^ (1 - e)
    end
  end
  if e == 1 then return 1 - math.exp(acc) end
  return 1 - acc ^ (1 / (1 - e))
end

--- Coefficient of variation: the standard deviation (n - 1 denominator;
--- with weights, the weighted variance sum w (x - mu)^2 / sum w) over the mean.
function M.cv(x, opts)
  opts = util.check_options(opts, { "weights" }, "cv")
  local v = numbers("cv", x, "x")
  local w = weights_of("cv", opts.weights, #v)
  local n = #v
  if not w and n < 2 then raise("cv: need at least 2 values, got 1") end
  local W, mu = 0, 0
  for i = 1, n do
    local wi = w and w[i] or 1
    W, mu = W + wi, mu + wi * v[i]
  end
  mu = mu / W
  if mu == 0 then raise("cv: the mean is 0; the coefficient of variation is not defined") end
  local ss = 0
  for i = 1, n do ss = ss + (w and w[i] or 1) * (v[i] - mu) ^ 2 end
  local var = w and ss / W or ss / (n - 1)
  return math.sqrt(var) / mu
end

-- ---- Dagum -----------------------------------------------------------------------------

--- Dagum's (1997) decomposition of the Gini coefficient by groups:
---   G = Gw + Gnb + Gt  (within, net between, transvariation),
--- with the within-group Gini of each group and the between-group Gini of
--- each pair.  Groups are ordered by their means (ascending) in `groups`.
--- Unweighted: every unit counts once (docs/estimators/disparity.md).
function M.dagum(x, g)
  local v = incomes("dagum", x)
  local n = #v
  local keys, levels = groups_of("dagum", g, n)
  local members = {}
  for _, k in ipairs(levels) do members[k] = {} end
  for i = 1, n do local m = members[keys[i]]; m[#m + 1] = v[i] end
  local total = sum(v)
  local mu = total / n
  local grp = {}
  for _, k in ipairs(levels) do
    local s = sorted_copy(members[k])
    local nk, tk = #s, sum(s)
    grp[#grp + 1] = { group = k, n = nk, mean = tk / nk, sorted = s, total = tk, p = nk / n, s = tk / total }
  end
  -- Ascending means, so that in each pair (j, h) with h < j group j is the richer.
  table.sort(grp, function(a, b)
    if a.mean ~= b.mean then return a.mean < b.mean end
    return tostring(a.group) < tostring(b.group)
  end)
  local all = sorted_copy(v)
  local G = cross_sad(all, all) / (2 * n * n * mu)
  local Gw, Gnb, Gt = 0, 0, 0
  local within, between = {}, {}
  for _, a in ipairs(grp) do
    local gjj = a.mean > 0 and cross_sad(a.sorted, a.sorted) / (2 * a.n * a.n * a.mean) or 0
    a.gini = gjj
    within[#within + 1] = { group = a.group, n = a.n, mean = a.mean, gini = gjj, contribution = gjj * a.p * a.s }
    Gw = Gw + gjj * a.p * a.s
  end
  for j = 2, #grp do
    for h = 1, j - 1 do
      local a, b = grp[j], grp[h]
      local sad = cross_sad(a.sorted, b.sorted)
      local gjh = sad / (a.n * b.n * (a.mean + b.mean))
      -- d_jh and p_jh (Dagum's gross and transvariation differences) per
      -- pair: their sum is the absolute difference, their difference the
      -- difference of totals; D_jh = (d - p) / (d + p).
      local diff = b.n * a.total - a.n * b.total
      local D = sad > 0 and diff / sad or 0
      local wgt = a.p * b.s + b.p * a.s
      Gnb = Gnb + gjh * wgt * D
      Gt = Gt + gjh * wgt * (1 - D)
      between[#between + 1] = { groups = { a.group, b.group }, gini = gjh, D = D,
        net = gjh * wgt * D, transvariation = gjh * wgt * (1 - D) }
    end
  end
  local function share(c) return G > 0 and c / G or 0 / 0 end
  return { G = G, Gw = Gw, Gnb = Gnb, Gt = Gt, Gb = Gnb + Gt, n = n,
    shares = { Gw = share(Gw), Gnb = share(Gnb), Gt = share(Gt) },
    within = within, between = between }
end

--- The Dagum decomposition as a Markdown table (within-group Gini per
--- group, between-group Gini per pair, contributions and shares).
function M.dagum_table(r, opts)
  opts = util.check_options(opts, { "digits" }, "dagum_table")
  local fmt = "%." .. (opts.digits or 4) .. "f"
  local function f(v) return string.format(fmt, v) end
  local out = { "| component | value | share |", "|---|---:|---:|",
    "| G (overall) | " .. f(r.G) .. " | 1 |",
    "| Gw (within) | " .. f(r.Gw) .. " | " .. f(r.shares.Gw) .. " |",
    "| Gnb (net between) | " .. f(r.Gnb) .. " | " .. f(r.shares.Gnb) .. " |",
    "| Gt (transvariation) | " .. f(r.Gt) .. " | " .. f(r.shares.Gt) .. " |", "",
    "| group | n | mean | within-group Gini |", "|---|---:|---:|---:|" }
  for _, w in ipairs(r.within) do
    out[#out + 1] = string.format("| %s | %d | %s | %s |", tostring(w.group), w.n, f(w.mean), f(w.gini))
  end
  out[#out + 1] = ""
  out[#out + 1] = "| pair | between-group Gini | D |"
  out[#out + 1] = "|---|---:|---:|"
  for _, b in ipairs(r.between) do
    out[#out + 1] = string.format("| %s - %s | %s | %s |", tostring(b.groups[1]), tostring(b.groups[2]), f(b.gini), f(b.D))
  end
  return table.concat(out, "\n") .. "\n"
end

-- ---- spatial Gini -----------------------------------------------------------------------

--- The sum over ordered neighbour pairs of |x_i - x_j| (W's links, any weight).
local function neighbour_sad(v, W, perm)
  local s = 0
  for i = 1, #v do
    local xi = v[perm and perm[i] or i]
    local nb = W:neighbours(i)
    for _, j in ipairs(nb) do s = s + math.abs(xi - v[perm and perm[j] or j]) end
  end
  return s
end

--- Rey & Smith's (2013) spatial decomposition of the Gini: the sum of
--- absolute differences over neighbour pairs (wg) and over the others
--- (wcg = total - wg), with a permutation p-value for wcg (values
--- reassigned to locations at random, seeded).  W: an sp.weights whose
--- links define the neighbours (their weights are ignored).
function M.spatial_gini(x, W, opts)
  opts = util.check_options(opts, { "permutations", "seed" }, "spatial_gini")
  local v = incomes("spatial_gini", x)
  local n = #v
  if type(W) ~= "userdata" or not W.neighbours then raise("spatial_gini: W must be an sp.weights") end
  if W:n() ~= n then raise(string.format("spatial_gini: W is over %d units but x has %d values", W:n(), n)) end
  local s = sorted_copy(v)
  local total = cross_sad(s, s)
  local g = total / (2 * n * sum(v))
  local wg = neighbour_sad(v, W)
  local res = { gini = g, wg = wg, wcg = total - wg, total = total, wcg_share = (total - wg) / (2 * n * sum(v)) }
  local perms = opts.permutations or 99
  if math.type(perms) ~= "integer" or perms < 0 then
    raise("spatial_gini: permutations must be an integer >= 0, got " .. tostring(perms))
  end
  if perms > 0 then
    local rng = require("spillover.core").rng(opts.seed or 42)
    local above, sumw, sumw2 = 0, 0, 0
    local perm = {}
    for i = 1, n do perm[i] = i end
    for _ = 1, perms do
      for i = n, 2, -1 do
        local j = rng:integer(i)
        perm[i], perm[j] = perm[j], perm[i]
      end
      local wcgp = total - neighbour_sad(v, W, perm)
      if wcgp >= res.wcg then above = above + 1 end
      sumw, sumw2 = sumw + wcgp, sumw2 + wcgp * wcgp
    end
    -- PySAL's folded pseudo p-value: the smaller tail.
    local larger = math.min(above, perms - above)
    res.p_sim = (larger + 1) / (perms + 1)
    res.e_wcg = sumw / perms
    res.permutations = perms
  end
  return res
end

-- ---- kernel density, per period --------------------------------------------------------

M.kde = util.kde

-- ---- panels: one result per period --------------------------------------------------------

local MEASURES = {
  gini = function(v, o) return M.gini(v, { weights = o.weights }) end,
  theil = function(v, o) return M.theil(v, { groups = o.groups, weights = o.weights }) end,
  dagum = function(v, o)
    if not o.groups then raise("by_period: measure 'dagum' needs groups") end
    return M.dagum(v, o.groups)
  end,
  atkinson = function(v, o) return M.atkinson(v, o.e or 0.5, { weights = o.weights }) end,
  cv = function(v, o) return M.cv(v, { weights = o.weights }) end,
  kde = function(v, o) return util.kde(v, o.kde) end,
}
M.MEASURES = MEASURES

--- The values of column col of frame d as a Lua array (numbers, or the
--- strings of a categorical column), with n.
local function column(d, col, what)
  local ok, c = pcall(d.column, d, col)
  if not ok then raise("by_period: unknown " .. what .. " column '" .. tostring(col) .. "'") end
  if type(c) == "userdata" then return c:totable() end
  return c
end

--- One result per period of a panel frame: measure (gini, theil, dagum,
--- atkinson, cv, kde) of column var over the rows of each period, in
--- increasing period order.  opts: time (default the frame's panel time),
--- groups (a column of labels), weights (a column), e (atkinson), kde
--- (util.kde's options).  Rows with a missing value are left out.
--- Returns an array of {period =, result =}.
function M.by_period(d, var, opts)
  opts = util.check_options(opts, { "time", "groups", "measure", "weights", "e", "kde" }, "by_period")
  local measure = opts.measure or "gini"
  local f = MEASURES[measure]
  if not f then
    local names = {}
    for k in pairs(MEASURES) do names[#names + 1] = k end
    table.sort(names)
    raise("by_period: unknown measure '" .. tostring(measure) .. "' (expected one of " .. table.concat(names, ", ") .. ")")
  end
  local panel = util.panel_of(d)
  if not panel and type(d) ~= "userdata" then raise("by_period: expected a frame, got " .. type(d)) end
  local time = opts.time or (panel and panel.time)
  if not time then raise("by_period: give 'time' (the frame has no panel index)") end
  local x = column(d, var, "value")
  local t = column(d, time, "time")
  local g = opts.groups and column(d, opts.groups, "group")
  local w = opts.weights and column(d, opts.weights, "weight")
  local rows, order = {}, {}
  for i = 1, d:nrow() do
    local xi, ti = x[i], t[i]
    if type(xi) ~= "number" then raise("by_period: column '" .. var .. "' must be numeric") end
    local ok = xi == xi and ti ~= nil and ti == ti and (not g or g[i] ~= nil) and (not w or w[i] == w[i])
    if ok then
      local k = util.key_of(ti)
      local r = rows[k]
      if not r then
        r = { period = ti, x = {}, g = g and {} or nil, w = w and {} or nil }
        rows[k] = r
        order[#order + 1] = r
      end
      r.x[#r.x + 1] = xi
      if g then r.g[#r.g + 1] = g[i] end
      if w then r.w[#r.w + 1] = w[i] end
    end
  end
  table.sort(order, function(a, b)
    if type(a.period) == type(b.period) then return a.period < b.period end
    return tostring(a.period) < tostring(b.period)
  end)
  local out = {}
  for i, r in ipairs(order) do
    local ok, res = pcall(f, r.x, { groups = r.g, weights = r.w, e = opts.e, kde = opts.kde })
    if not ok then raise(string.format("by_period: period %s: %s", tostring(r.period), util.message(res))) end
    out[i] = { period = r.period, result = res }
  end
  return out
end

--- The Dagum series of by_period(..., {measure = "dagum"}) as a line chart
--- (G, Gw, Gnb, Gt over the periods), through sp.plot.lines.
function M.dagum_plot(path, rows, spec)
  spec = spec or {}
  local x, G, Gw, Gnb, Gt = {}, {}, {}, {}, {}
  for i, r in ipairs(rows) do
    x[i] = tonumber(r.period) or i
    G[i], Gw[i], Gnb[i], Gt[i] = r.result.G, r.result.Gw, r.result.Gnb, r.result.Gt
  end
  local plot = require "spillover.plot"
  return plot.lines(path, { x = x, title = spec.title, xlabel = spec.xlabel, ylabel = spec.ylabel or "Gini",
    width = spec.width, height = spec.height,
    series = { { label = "G", y = G }, { label = "Gw (within)", y = Gw }, { label = "Gnb (net between)", y = Gnb },
      { label = "Gt (transvariation)", y = Gt } } })
end


-- ---- the disparity change of an experiment ------------------------------------------------

--- The disparity of an experiment's outcome, per period: the measure of
--- the baseline, of the scenario and their difference, with an interval
--- over draws.  spec:
---   baseline, scenario  arrays of the outcome per row (p0, p1)
---   periods             an array of period keys per row
---   draws               optional: an array of arrays, the effect per row under
---                       each draw (the scenario of draw r is baseline + draws[r])
---   measure             "gini" (default), "theil" (T), "cv" or "dagum" (its G,
---                       Gnb with part = "Gnb", ...), with groups (labels per row)
---   transform           "exp" for an outcome in logs (the measure of the levels)
---   level               of the interval (0.95)
--- Returns an array, in period order, of {period, baseline, scenario, change,
--- lo, hi} (lo, hi: type-7 quantiles of the change over the draws).  This is
--- what an experiment needs to report "the Gini change, with intervals".
function M.change(spec)
  util.check_options(spec, { "baseline", "scenario", "periods", "draws", "measure", "groups", "transform", "level",
    "part" }, "disparity.change")
  local measure = spec.measure or "gini"
  local tf = spec.transform
  if tf ~= nil and tf ~= "exp" then raise("disparity.change: transform must be \"exp\" or absent") end
  local function value(v, g)
    if measure == "gini" then return M.gini(v)
    elseif measure == "theil" then return M.theil(v).T
    elseif measure == "cv" then return M.cv(v)
    elseif measure == "dagum" then
      if not g then raise("disparity.change: measure 'dagum' needs groups") end
      return M.dagum(v, g)[spec.part or "G"]
    end
    raise("disparity.change: unknown measure '" .. tostring(measure) .. "' (expected gini, theil, cv or dagum)")
  end
  local p0, p1, per = spec.baseline, spec.scenario, spec.periods
  if type(p0) ~= "table" or type(p1) ~= "table" or type(per) ~= "table" or #p0 ~= #p1 or #p0 ~= #per then
    raise("disparity.change: baseline, scenario and periods must be arrays of the same length")
  end
  local rows, order = {}, {}
  for i = 1, #p0 do
    local k = util.key_of(per[i])
    if not rows[k] then rows[k] = { period = per[i], idx = {} }; order[#order + 1] = rows[k] end
    table.insert(rows[k].idx, i)
  end
  table.sort(order, function(a, b)
    if type(a.period) == type(b.period) then return a.period < b.period end
    return tostring(a.period) < tostring(b.period)
  end)
  local function f(x) return tf == "exp" and math.exp(x) or x end
  local level = spec.level or 0.95
  local out = {}
  for j, r in ipairs(order) do
    local v0, v1, g = {}, {}, spec.groups and {} or nil
    for k, i in ipairs(r.idx) do
      v0[k], v1[k] = f(p0[i]), f(p1[i])
      if g then g[k] = spec.groups[i] end
    end
    local b, sc = value(v0, g), value(v1, g)
    local res = { period = r.period, baseline = b, scenario = sc, change = sc - b }
    if spec.draws and #spec.draws > 0 then
      local ch = {}
      for d, eff in ipairs(spec.draws) do
        local vd = {}
        for k, i in ipairs(r.idx) do vd[k] = f(p0[i] + eff[i]) end
        ch[d] = value(vd, g) - b
      end
      table.sort(ch)
      res.lo, res.hi = util.quantile(ch, (1 - level) / 2), util.quantile(ch, 1 - (1 - level) / 2)
    end
    out[j] = res
  end
  return out
end

M.cross_sad = cross_sad

-- ---- the scenario estimator -------------------------------------------------------------

--- "disparity": beta convergence of the formula's response with the
--- `distribution` report section (spillover.distribution, loaded when a
--- scenario fits the model, so this module does not depend on it).
require("spillover.registry").register {
  name = "disparity",
  fit = function(d, model, options) return require("spillover.distribution").fit(d, model, options) end,
  model_keys = { "weights" },
  options = {
    groups = { type = "string" }, population = { type = "string" },
    k = { type = "integer", min = 2 }, m = { type = "integer", min = 2 },
    kernel = { type = "string", enum = { "gaussian", "epanechnikov" } },
    bw = { type = { "string", "number" } },
    fe = { type = "string", enum = { "none", "entity", "time", "twoways" } },
    spatial = { type = "string", enum = { "sar", "sdm" } },
    permutations = { type = "integer", min = 0 },
  },
  capabilities = { predict = false, predict_matrix = false, refit = false, draw = true, spatial = true },
}

return M
