-- spillover.markov: Markov chains of distribution dynamics (issue 13), in
-- PySAL giddy's conventions so that its published matrices are reproduced:
--
--   classify(values, {k =, cutoffs =, pooled =})   class of each unit and period
--   chain(P)                      steady state, mean first passage, sojourn times
--   markov(values, {k =, cutoffs =, pooled =, discrete =})   the classic chain
--   spatial_markov(values, W, {k =, m =, ...})   conditioned on the spatial lag's class
--   lisa_markov(values, W)        transitions between Moran scatterplot quadrants
--   homogeneity(Ts)               Bickenbach & Bode's Q and LR tests
--   chi2(T1, T2)                  giddy's chi-square test of T1 against T2's probabilities
--   table(res [, {digits =}])     the matrix (or matrices) as a Markdown table
--
-- values is an n x T matrix (units x periods) or a Lua array of n rows of T
-- numbers.  Classes are 1..k.  Quantile classes follow mapclassify: the
-- cut-offs are the type-7 quantiles at 1/k, ..., (k-1)/k (duplicates
-- dropped), and a value equal to a cut-off belongs to the class below it.
local util = require "spillover.util"
local core = require "spillover.core"
local raise = util.raise

local M = {}

-- ---- input -----------------------------------------------------------------------

--- The values as an array of n rows of T finite numbers.
local function rows_of(fname, values)
  local rows
  if type(values) == "userdata" and values.nrow then
    rows = util.rows(values)
  elseif type(values) == "table" then
    rows = values
  else
    raise(fname .. ": expected an n x T matrix or an array of rows of numbers, got " .. type(values))
  end
  local n = #rows
  if n == 0 then raise(fname .. ": no units (the matrix has no rows)") end
  local T = type(rows[1]) == "table" and #rows[1] or 0
  if T < 2 then raise(fname .. ": need at least 2 periods (columns), got " .. T) end
  for i, r in ipairs(rows) do
    if type(r) ~= "table" or #r ~= T then
      raise(string.format("%s: row %d has %s values; every unit needs %d (one per period)", fname, i,
        type(r) == "table" and #r or "no", T))
    end
    for t = 1, T do
      local v = r[t]
      if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
        raise(string.format("%s: value [%d, %d] is %s; expected a finite number (a balanced panel without gaps)",
          fname, i, t, tostring(v)))
      end
    end
  end
  return rows, n, T
end

-- ---- classes -----------------------------------------------------------------------

--- The type-7 quantile cut-offs of k classes (mapclassify.Quantiles): the
--- quantiles at 1/k, ..., (k-1)/k of the values, duplicates dropped.
local function quantile_cuts(vals, k)
  local s = {}
  for i, v in ipairs(vals) do s[i] = v end
  table.sort(s)
  local cuts = {}
  for j = 1, k - 1 do
    local q = util.quantile(s, j / k)
    if #cuts == 0 or q > cuts[#cuts] then cuts[#cuts + 1] = q end
  end
  -- The last class must not be empty: a cut at the maximum closes it.
  while #cuts > 0 and cuts[#cuts] >= s[#s] do cuts[#cuts] = nil end
  return cuts
end

--- The class (1-based) of v: one plus the number of cut-offs below it.
local function class_of(v, cuts)
  local c = 1
  for _, q in ipairs(cuts) do
    if v > q then c = c + 1 else break end
  end
  return c
end

local function check_k(fname, k, what)
  if math.type(k) ~= "integer" or k < 2 then raise(string.format("%s: %s must be an integer >= 2, got %s", fname, what,
    tostring(k))) end
end

local function check_cuts(fname, cuts, what)
  if type(cuts) ~= "table" or #cuts == 0 then raise(fname .. ": " .. what .. " must be a non-empty list of increasing numbers") end
  for i = 2, #cuts do
    if not (cuts[i] > cuts[i - 1]) then raise(fname .. ": " .. what .. " must be increasing (entry " .. i .. ")") end
  end
end

--- Classes of an n x T array of values: given cut-offs, or k quantile
--- classes over all values (pooled, the default) or within each period.
--- Returns ids (n rows of T classes in 1..k), k, and the cut-offs (pooled
--- or given) or one list of cut-offs per period.
local function classify_rows(fname, rows, n, T, opts, kname, cname)
  local cuts = opts[cname]
  if cuts then
    check_cuts(fname, cuts, cname)
    local ids = {}
    for i = 1, n do
      ids[i] = {}
      for t = 1, T do ids[i][t] = class_of(rows[i][t], cuts) end
    end
    return ids, #cuts + 1, cuts
  end
  local k = opts[kname] or 5
  check_k(fname, k, kname)
  local ids = {}
  for i = 1, n do ids[i] = {} end
  if opts.pooled == false then
    local per = {}
    for t = 1, T do
      local col = {}
      for i = 1, n do col[i] = rows[i][t] end
      per[t] = quantile_cuts(col, k)
      for i = 1, n do ids[i][t] = class_of(rows[i][t], per[t]) end
    end
    return ids, k, per
  end
  local all = {}
  for i = 1, n do for t = 1, T do all[#all + 1] = rows[i][t] end end
  local q = quantile_cuts(all, k)
  for i = 1, n do for t = 1, T do ids[i][t] = class_of(rows[i][t], q) end end
  return ids, #q + 1, q
end

--- classify(values, {k = 5, cutoffs =, pooled = true}) -> {ids =, k =, cutoffs =}
function M.classify(values, opts)
  opts = util.check_options(opts, { "k", "cutoffs", "pooled" }, "classify")
  local rows, n, T = rows_of("classify", values)
  local ids, k, cuts = classify_rows("classify", rows, n, T, opts, "k", "cutoffs")
  return { ids = ids, k = k, cutoffs = cuts }
end

-- ---- chains ------------------------------------------------------------------------

local function zeros(k, l)
  local m = {}
  for i = 1, k do
    m[i] = {}
    for j = 1, l or k do m[i][j] = 0 end
  end
  return m
end

--- Row-normalised probabilities of a count matrix; a row without
--- transitions stays 0 (giddy), or gets 1 on its diagonal when fill.
local function probabilities(counts, fill)
  local k = #counts
  local P = zeros(k)
  for i = 1, k do
    local s = 0
    for j = 1, k do s = s + counts[i][j] end
    for j = 1, k do P[i][j] = s > 0 and counts[i][j] / s or 0 end
    if s == 0 and fill then P[i][i] = 1 end
  end
  return P
end

--- The communicating classes of P that are closed (the recurrent classes),
--- from the reachability closure (k is small: a class count, not units).
local function recurrent_classes(P)
  local k = #P
  local R = zeros(k)
  for i = 1, k do
    R[i][i] = 1
    for j = 1, k do if P[i][j] > 0 then R[i][j] = 1 end end
  end
  for m = 1, k do
    for i = 1, k do
      if R[i][m] == 1 then
        for j = 1, k do if R[m][j] == 1 then R[i][j] = 1 end end
      end
    end
  end
  local seen, classes = {}, {}
  for i = 1, k do
    if not seen[i] then
      local cls, closed = {}, true
      for j = 1, k do
        if R[i][j] == 1 and R[j][i] == 1 then cls[#cls + 1] = j; seen[j] = true end
      end
      for _, a in ipairs(cls) do
        for j = 1, k do
          if R[a][j] == 1 and not (R[j][a] == 1) then closed = false end
        end
      end
      if closed then classes[#classes + 1] = cls end
    end
  end
  return classes
end

--- The steady state of P restricted to the states idx (an irreducible,
--- closed class): pi (P - I) = 0 with sum pi = 1, one equation replaced by
--- the sum.
local function stationary(P, idx)
  local m = #idx
  local A = core.matrix(m, m)
  local b = core.matrix(m, 1)
  for r = 1, m do
    for c = 1, m do
      -- row r of A is column r of (P - I)' restricted, i.e. equation for state r
      A:set(r, c, P[idx[c]][idx[r]] - (r == c and 1 or 0))
    end
  end
  for c = 1, m do A:set(m, c, 1) end
  b:set(m, 1, 1)
  local x = A:solve(b)
  local out = {}
  for r = 1, m do out[r] = x:get(r, 1) end
  return out
end

--- Mean first passage times of an irreducible chain (Kemeny & Snell):
--- Z = (I - P + 1 pi')^-1, m_ij = (z_jj - z_ij) / pi_j for i ~= j, and
--- m_jj = 1 / pi_j, the mean recurrence time (giddy's convention).
local function mfpt(P, pi)
  local k = #P
  local A = core.matrix(k, k)
  for i = 1, k do
    for j = 1, k do A:set(i, j, (i == j and 1 or 0) - P[i][j] + pi[j]) end
  end
  local Z = A:inv()
  local Mt = zeros(k)
  for i = 1, k do
    for j = 1, k do
      Mt[i][j] = i == j and 1 / pi[j] or (Z:get(j, j) - Z:get(i, j)) / pi[j]
    end
  end
  return Mt
end

--- What a transition matrix implies: steady_state (an array of k
--- probabilities when the chain has one recurrent class, else an array of
--- one distribution per recurrent class), mfpt (k x k, only when the chain
--- is irreducible), sojourn (1 / (1 - p_ii), inf for an absorbing state),
--- recurrent (the recurrent classes) and ergodic.  A row without
--- transitions is treated as staying put.
function M.chain(P)
  if type(P) == "userdata" and P.nrow then P = util.rows(P) end
  if type(P) ~= "table" or #P == 0 then raise("chain: expected a k x k transition matrix") end
  local k = #P
  local Q = zeros(k)
  for i = 1, k do
    if type(P[i]) ~= "table" or #P[i] ~= k then raise("chain: row " .. i .. " must have " .. k .. " entries") end
    local s = 0
    for j = 1, k do
      local v = P[i][j]
      if type(v) ~= "number" or not (v >= 0 and v <= 1) then
        raise(string.format("chain: entry [%d, %d] = %s is not a probability", i, j, tostring(v)))
      end
      Q[i][j], s = v, s + v
    end
    if s == 0 then Q[i][i] = 1
    elseif math.abs(s - 1) > 1e-9 then raise(string.format("chain: row %d sums to %.17g, not 1", i, s)) end
  end
  local classes = recurrent_classes(Q)
  local dists = {}
  for c, cls in ipairs(classes) do
    local pi = stationary(Q, cls)
    local full = {}
    for j = 1, k do full[j] = 0 end
    for r, j in ipairs(cls) do full[j] = pi[r] end
    dists[c] = full
  end
  local res = { recurrent = classes, ergodic = #classes == 1 and #classes[1] == k }
  res.steady_state = #dists == 1 and dists[1] or dists
  if res.ergodic then res.mfpt = mfpt(Q, dists[1]) end
  local soj = {}
  for i = 1, k do soj[i] = Q[i][i] >= 1 and math.huge or 1 / (1 - Q[i][i]) end
  res.sojourn = soj
  return res
end

--- Transition counts of class ids (n rows of T classes in 1..k) between
--- consecutive periods, optionally into one matrix per lag class.
local function count(ids, k, n, T, lag_ids, m)
  local Ts = {}
  for c = 1, m or 1 do Ts[c] = zeros(k) end
  for i = 1, n do
    for t = 1, T - 1 do
      local c = lag_ids and lag_ids[i][t] or 1
      local a, b = ids[i][t], ids[i][t + 1]
      Ts[c][a][b] = Ts[c][a][b] + 1
    end
  end
  return Ts
end

local function attach(res, P)
  local ch = M.chain(P)
  res.steady_state, res.mfpt, res.sojourn, res.ergodic, res.recurrent = ch.steady_state, ch.mfpt, ch.sojourn,
    ch.ergodic, ch.recurrent
  return res
end

--- The classic chain of an n x T array of values.  opts: k (5), cutoffs,
--- pooled (true: quantiles of all values; false: within each period),
--- discrete (the values are already classes 1..k), fill_empty (a class
--- never left gets 1 on its diagonal in P).  Returns {ids, k, cutoffs,
--- transitions, P, steady_state, mfpt, sojourn, ergodic, n, T}.
function M.markov(values, opts)
  opts = util.check_options(opts, { "k", "cutoffs", "pooled", "discrete", "fill_empty" }, "markov")
  local rows, n, T = rows_of("markov", values)
  local ids, k, cuts
  if opts.discrete then
    k = 0
    for i = 1, n do
      for t = 1, T do
        local c = rows[i][t]
        if math.type(c) ~= "integer" and c ~= math.floor(c) or c < 1 then
          raise(string.format("markov: with discrete = true, value [%d, %d] = %s must be a class 1, 2, ...", i, t, tostring(c)))
        end
        k = math.max(k, math.floor(c))
      end
    end
    ids = rows
    k = opts.k or k
  else
    ids, k, cuts = classify_rows("markov", rows, n, T, opts, "k", "cutoffs")
  end
  local counts = count(ids, k, n, T)[1]
  local res = { ids = ids, k = k, cutoffs = cuts, transitions = counts, P = probabilities(counts, opts.fill_empty),
    n = n, T = T }
  return attach(res, res.P)
end

-- ---- tests ---------------------------------------------------------------------------

local function pchisq_upper(x, df)
  if df <= 0 then return 0 / 0 end
  return core.dist.pchisq(x, df, true)
end

--- giddy's chi2(T1, T2): the counts T1 against the probabilities of T2's
--- rows, E_ij = (sum_j T1_ij) T2_ij / sum_j T2_ij; df = (r1 - 1)(r2 - 1)
--- with r the rows that have transitions.  Returns {statistic, df, pvalue}.
function M.chi2(T1, T2)
  local k = #T1
  local r1, r2 = 0, 0
  local stat = 0
  for i = 1, k do
    local s1, s2 = 0, 0
    for j = 1, k do s1, s2 = s1 + T1[i][j], s2 + T2[i][j] end
    if s1 > 0 then r1 = r1 + 1 end
    if s2 > 0 then r2 = r2 + 1 end
    local d2 = s2 > 0 and s2 or 1
    for j = 1, k do
      local e = s1 * T2[i][j] / d2
      local num = (T1[i][j] - e) ^ 2
      stat = stat + num / (e == 0 and 1 or e)
    end
  end
  local df = (r1 - 1) * (r2 - 1)
  return { statistic = stat, df = df, pvalue = pchisq_upper(stat, df) }
end

--- Bickenbach & Bode's (2003) tests that the transition probabilities are
--- the same in every regime (lag class): Q (Pearson) and LR, df =
--- sum_i (b_i - 1)(a_i - 1), with b_i the regimes with transitions from
--- class i and a_i the nonzero entries of row i of the pooled matrix.
--- Ts: an array of m count matrices (k x k).
function M.homogeneity(Ts)
  if type(Ts) ~= "table" or #Ts < 2 then raise("homogeneity: expected an array of at least 2 count matrices") end
  local k = #Ts[1]
  local pooled = zeros(k)
  for _, Tm in ipairs(Ts) do
    if #Tm ~= k then raise("homogeneity: the matrices must all be " .. k .. " x " .. k) end
    for i = 1, k do for j = 1, k do pooled[i][j] = pooled[i][j] + Tm[i][j] end end
  end
  local p0 = probabilities(pooled)
  local Q, LR = 0, 0
  local b = {}
  for i = 1, k do b[i] = 0 end
  for _, Tm in ipairs(Ts) do
    local pm = probabilities(Tm)
    for i = 1, k do
      local ni = 0
      for j = 1, k do ni = ni + Tm[i][j] end
      if ni > 0 then b[i] = b[i] + 1 end
      for j = 1, k do
        local den = p0[i][j] == 0 and 1 or p0[i][j]
        Q = Q + ni * (pm[i][j] - p0[i][j]) ^ 2 / den
        if Tm[i][j] > 0 and p0[i][j] > 0 then LR = LR + Tm[i][j] * math.log(pm[i][j] / p0[i][j]) end
      end
    end
  end
  local df = 0
  for i = 1, k do
    local a = 0
    for j = 1, k do if pooled[i][j] > 0 then a = a + 1 end end
    df = df + (b[i] - 1) * (a - 1)
  end
  LR = 2 * LR
  return { Q = { statistic = Q, df = df, pvalue = pchisq_upper(Q, df) },
    LR = { statistic = LR, df = df, pvalue = pchisq_upper(LR, df) }, df = df }
end

-- ---- spatial chains -------------------------------------------------------------------

local function check_weights(fname, W, n)
  if type(W) ~= "userdata" or not W.lag then raise(fname .. ": W must be an sp.weights") end
  if W:n() ~= n then raise(string.format("%s: W is over %d units but values has %d rows", fname, W:n(), n)) end
end

--- The spatial lag of each period's values (W as given: row-standardise it
--- for neighbours' means, as giddy's examples do).
local function lags(W, rows, n, T)
  local X = core.matrix(n, T)
  for i = 1, n do for t = 1, T do X:set(i, t, rows[i][t]) end end
  return util.rows(W:lag(X))
end

--- Spatial Markov (Rey 2001): transitions of each unit's class conditioned
--- on the class of its spatial lag at the start of the transition.
--- opts: k, m (5 each), cutoffs, lag_cutoffs, pooled (true), fill_empty.
--- Returns the classic chain (P, transitions, steady_state) plus T (m count
--- matrices), P_lag (m probability matrices), S (steady state of each),
--- F (mean first passage of each, when irreducible), chi2 (each lag
--- class's matrix against the pooled one), Q, LR (homogeneity).
function M.spatial_markov(values, W, opts)
  opts = util.check_options(opts, { "k", "m", "cutoffs", "lag_cutoffs", "pooled", "fill_empty" }, "spatial_markov")
  local rows, n, T = rows_of("spatial_markov", values)
  check_weights("spatial_markov", W, n)
  local ids, k, cuts = classify_rows("spatial_markov", rows, n, T, opts, "k", "cutoffs")
  local lrows = lags(W, rows, n, T)
  local lids, m, lcuts = classify_rows("spatial_markov", lrows, n, T,
    { m = opts.m, lag_cutoffs = opts.lag_cutoffs, pooled = opts.pooled }, "m", "lag_cutoffs")
  local pooled = count(ids, k, n, T)[1]
  local res = { ids = ids, lag_ids = lids, k = k, m = m, cutoffs = cuts, lag_cutoffs = lcuts, transitions = pooled,
    P = probabilities(pooled, opts.fill_empty), n = n, T = T }
  attach(res, res.P)
  res.T_lag = count(ids, k, n, T, lids, m)
  res.P_lag, res.S, res.F, res.chi2 = {}, {}, {}, {}
  for c = 1, m do
    res.P_lag[c] = probabilities(res.T_lag[c], opts.fill_empty)
    local ch = M.chain(res.P_lag[c])
    res.S[c], res.F[c] = ch.steady_state, ch.mfpt
    res.chi2[c] = M.chi2(res.T_lag[c], pooled)
  end
  local h = M.homogeneity(res.T_lag)
  res.Q, res.LR = h.Q, h.LR
  return res
end

--- LISA Markov (Rey 2001): each unit's Moran scatterplot quadrant per
--- period (z = y - mean, lag = W z with W row-standardised; 1 = HH, 2 = LH,
--- 3 = LL, 4 = HL, PySAL's numbering, a value at the mean counts as low)
--- and the chain of quadrant transitions, with giddy's chi-square test that
--- the moves of y and of its lag are independent (expected counts from the
--- Kronecker product of the two high/low chains).
function M.lisa_markov(values, W)
  local rows, n, T = rows_of("lisa_markov", values)
  check_weights("lisa_markov", W, n)
  local Wr = W:style() == "W" and W or W:restyle("W")
  local q, hi_y, hi_l = {}, {}, {}
  for i = 1, n do q[i], hi_y[i], hi_l[i] = {}, {}, {} end
  local X = core.matrix(n, T)
  local means = {}
  for t = 1, T do
    local s = 0
    for i = 1, n do s = s + rows[i][t] end
    means[t] = s / n
    for i = 1, n do X:set(i, t, rows[i][t] - means[t]) end
  end
  local L = util.rows(Wr:lag(X))
  local raw = util.rows(Wr:lag(core.matrix(rows)))
  for i = 1, n do
    for t = 1, T do
      local z, l = X:get(i, t), L[i][t]
      q[i][t] = z > 0 and (l > 0 and 1 or 4) or (l > 0 and 2 or 3)
      -- giddy's independence test classes y and its lag by y / mean < 1.
      hi_y[i][t] = rows[i][t] / means[t] < 1 and 2 or 1
      hi_l[i][t] = raw[i][t] / means[t] < 1 and 2 or 1
    end
  end
  local counts = count(q, 4, n, T)[1]
  local res = { quadrants = q, k = 4, transitions = counts, P = probabilities(counts), n = n, T = T }
  attach(res, res.P)
  local py = probabilities(count(hi_y, 2, n, T)[1])
  local pl = probabilities(count(hi_l, 2, n, T)[1])
  -- Quadrant q = (own, lag): HH = (1, 1), LH = (2, 1), LL = (2, 2), HL = (1, 2).
  local own, lag = { 1, 2, 2, 1 }, { 1, 1, 2, 2 }
  local expected = zeros(4)
  for a = 1, 4 do
    local na = 0
    for b = 1, 4 do na = na + counts[a][b] end
    for b = 1, 4 do expected[a][b] = na * py[own[a]][own[b]] * pl[lag[a]][lag[b]] end
  end
  res.expected = expected
  res.chi2 = M.chi2(counts, expected)
  return res
end

-- ---- tables ----------------------------------------------------------------------------

local function matrix_md(P, counts, labels, fmt)
  local k = #P
  local head = { "| from \\ to |" }
  local rule = { "|---|" }
  for j = 1, k do head[#head + 1] = " " .. labels[j] .. " |"; rule[#rule + 1] = "---:|" end
  head[#head + 1] = " n |"
  rule[#rule + 1] = "---:|"
  local out = { table.concat(head), table.concat(rule) }
  for i = 1, k do
    local cells, ni = { "| " .. labels[i] .. " |" }, 0
    for j = 1, k do
      cells[#cells + 1] = " " .. string.format(fmt, P[i][j]) .. " |"
      ni = ni + counts[i][j]
    end
    cells[#cells + 1] = string.format(" %d |", ni)
    out[#out + 1] = table.concat(cells)
  end
  return table.concat(out, "\n")
end

--- A Markov result as Markdown: the transition probabilities with the
--- number of transitions from each class, the steady state, and for a
--- spatial chain one matrix per lag class and the homogeneity tests.
function M.table(res, opts)
  opts = util.check_options(opts, { "digits", "labels" }, "markov.table")
  local fmt = "%." .. (opts.digits or 3) .. "f"
  local labels = opts.labels
  if not labels then
    labels = {}
    for j = 1, res.k do labels[j] = res.quadrants and ({ "HH", "LH", "LL", "HL" })[j] or tostring(j) end
  end
  local out = { matrix_md(res.P, res.transitions, labels, fmt), "" }
  local ss = res.steady_state
  if type(ss[1]) == "number" then
    local cells = { "| steady state |" }
    for j = 1, res.k do cells[#cells + 1] = " " .. string.format(fmt, ss[j]) .. " |" end
    out[#out + 1] = table.concat(cells)
    out[#out + 1] = ""
  end
  if res.P_lag then
    for c = 1, res.m do
      out[#out + 1] = "Spatial lag in class " .. c .. ":"
      out[#out + 1] = ""
      out[#out + 1] = matrix_md(res.P_lag[c], res.T_lag[c], labels, fmt)
      out[#out + 1] = ""
    end
    out[#out + 1] = string.format("Homogeneity (Bickenbach & Bode): Q = %.3f, LR = %.3f, df = %d, p(Q) = %.4f, p(LR) = %.4f",
      res.Q.statistic, res.LR.statistic, res.Q.df, res.Q.pvalue, res.LR.pvalue)
  end
  return table.concat(out, "\n") .. "\n"
end

return M
