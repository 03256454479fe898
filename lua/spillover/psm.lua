-- spillover.psm: propensity-score matching and PSM-DID.
--
--   psm(d, "treat ~ x1 + x2", {link = "logit" | "probit", method = "nearest" | "radius" | "kernel",
--       k = 1, replace = true, ties = false, caliper =, bandwidth = 0.06, kernel = "epanechnikov",
--       common = false, order = "ascending" | "descending", by = "year", outcome = "y",
--       did = {time = "year", post = "post" | first post period, vcov =}, maxiter = 100, tol = 1e-10})
--
-- The rules are psmatch2's (Leuven & Sianesi, version 4.0.12), read from its
-- source, so that a Stata user finds the numbers he knows: nearest neighbours
-- with replacement by default, a caliper that is a strict bound on the
-- propensity distance, radius and kernel matching with |d| <= bandwidth,
-- common support as the min/max of the controls' scores, every control
-- weighted by the sum of the shares it receives, the "approximate" ATT
-- standard error, and pstest's balance table (bias in % of the unmatched
-- standard deviations, t-tests from weighted regressions).  Differences are
-- documented in docs/estimators/psm_synth.md.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local F = require "spillover.formula"
local fitmod = require "spillover.fit"
local dist = core.dist

local M = {}

local function fail(msg) raise("psm: " .. msg) end

-- ---- the propensity model (maximum likelihood by Newton's method) ---------------------

local SQRT2PI = math.sqrt(2 * math.pi)

-- Per link: the probability F(eta), and for Newton the score weight s(eta, y)
-- with gradient X's and the curvature weight c(eta, y) with Hessian -X'cX.
-- Logit's is the exact Hessian; probit's is the exact one too (Greene 17.3),
-- which is negative definite for every eta, so Newton needs no fallback.
local LINKS = {
  logit = {
    prob = function(eta) return 1 / (1 + math.exp(-eta)) end,
    score = function(eta, y)
      local p = 1 / (1 + math.exp(-eta))
      return y - p, p * (1 - p)
    end,
  },
  probit = {
    prob = function(eta) return dist.pnorm(eta) end,
    score = function(eta, y)
      local q = 2 * y - 1
      local phi = math.exp(-eta * eta / 2) / SQRT2PI
      -- lambda = q phi(q eta) / Phi(q eta), from the upper tail where it is accurate
      local Phi = dist.pnorm(q * eta)
      local lambda = q * phi / Phi
      return lambda, lambda * (lambda + eta)
    end,
  },
}

local function loglik(link, X, y, b, n, k)
  local ll = 0
  for i = 1, n do
    local eta = 0
    local xi = X[i]
    for j = 1, k do eta = eta + xi[j] * b[j] end
    -- log F(q eta) computed from the tail that keeps its digits
    if link == "logit" then
      local q = y[i] == 1 and eta or -eta
      ll = ll + (q > 0 and -math.log(1 + math.exp(-q)) or (q - math.log(1 + math.exp(q))))
    else
      local q = y[i] == 1 and eta or -eta
      ll = ll + math.log(dist.pnorm(q))
    end
  end
  return ll
end

--- ML estimates of a binary model: {b, V, loglik, iterations}.  Raises on
--- perfect or quasi-complete separation (some fitted probability reaches 0 or
--- 1 while the likelihood keeps rising) and on non-convergence, naming what
--- the user can do about it.
local function binary_ml(link, X, y, names, opts, what)
  local n, k = #X, #names
  local L = LINKS[link]
  local b = {}
  for j = 1, k do b[j] = 0 end
  local ll = loglik(link, X, y, b, n, k)
  local maxiter, tol = opts.maxiter or 100, opts.tol or 1e-10
  local H
  for iter = 1, maxiter do
    local g, Hm = {}, {}
    for j = 1, k do g[j] = 0; Hm[j] = {}; for l = 1, k do Hm[j][l] = 0 end end
    for i = 1, n do
      local xi = X[i]
      local eta = 0
      for j = 1, k do eta = eta + xi[j] * b[j] end
      local s, c = L.score(eta, y[i])
      for j = 1, k do
        g[j] = g[j] + s * xi[j]
        local cx = c * xi[j]
        local row = Hm[j]
        for l = 1, j do row[l] = row[l] + cx * xi[l] end
      end
    end
    for j = 1, k do for l = j + 1, k do Hm[j][l] = Hm[l][j] end end
    H = core.matrix(Hm)
    local ok, step = pcall(function() return H:solve(core.matrix(g)) end)
    if not ok then
      fail(string.format("%s: the information matrix is singular at iteration %d (collinear covariates, or a " ..
        "covariate that is constant within the treated or the controls); drop one of %s", what, iter,
        table.concat(names, ", ")))
    end
    -- Newton step with halving until the log likelihood does not fall.
    local t, nb, nll = 1, {}, nil
    for _ = 1, 40 do
      for j = 1, k do nb[j] = b[j] + t * step:get(j, 1) end
      nll = loglik(link, X, y, nb, n, k)
      if nll >= ll - 1e-12 * math.abs(ll) then break end
      t = t / 2
    end
    local change = 0
    for j = 1, k do change = math.max(change, math.abs(nb[j] - b[j]) / math.max(1, math.abs(b[j]))); b[j] = nb[j] end
    local gain = nll - ll
    ll = nll
    -- Separation: the likelihood tends to its supremum 0 on some rows as |b|
    -- grows, so the fitted probabilities of those rows reach 0 or 1.
    local extreme = 0
    for i = 1, n do
      local eta = 0
      for j = 1, k do eta = eta + X[i][j] * b[j] end
      local p = L.prob(eta)
      if (y[i] == 1 and p > 1 - 1e-10) or (y[i] == 0 and p < 1e-10) then extreme = extreme + 1 end
    end
    if extreme > 0 and iter > 15 then
      fail(string.format("%s: the covariates separate treated and controls (perfect or quasi-complete separation): " ..
        "%d rows have a fitted probability of 0 or 1 and the %s estimates diverge; drop or coarsen the covariate " ..
        "that predicts treatment exactly, or restrict the sample", what, extreme, link))
    end
    if change < tol or (gain >= 0 and gain < tol * 1e-2 * (1 + math.abs(ll)) and change < 1e-6) then
      local V = H:inv()
      return { b = b, V = util.rows(V), loglik = ll, iterations = iter }
    end
  end
  fail(string.format("%s: the %s model did not converge in %d iterations (maxiter); rescale the covariates or " ..
    "raise maxiter", what, link, maxiter))
end

-- ---- matching ------------------------------------------------------------------------

--- Controls of a group sorted by (score, row), the order in which psmatch2
--- scans them; ties in distance go to the lower score, then the earlier row.
local function sorted_controls(list, p)
  table.sort(list, function(a, b)
    if p[a] ~= p[b] then return p[a] < p[b] end
    return a < b
  end)
  return list
end

-- First position in sorted controls C whose score is >= x (#C + 1 if none).
local function lower_bound(C, p, x)
  local lo, hi = 1, #C + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    if p[C[mid]] < x then lo = mid + 1 else hi = mid end
  end
  return lo
end

--- The nearest available controls of treated row t: the k closest (and,
--- with ties, every control as close as the k-th), those at distance below
--- the caliper.  used: controls taken (matching without replacement).
local function nearest(C, p, t, opts, used)
  local pt = p[t]
  local pos = lower_bound(C, p, pt)
  local lo, hi = pos - 1, pos
  local got = {}
  local kth
  while true do
    while lo >= 1 and used[C[lo]] do lo = lo - 1 end
    while hi <= #C and used[C[hi]] do hi = hi + 1 end
    local dl = lo >= 1 and pt - p[C[lo]] or math.huge
    local dh = hi <= #C and p[C[hi]] - pt or math.huge
    local d = math.min(dl, dh)
    if d == math.huge then break end
    if kth and (d > kth or not opts.ties) then break end
    if d >= opts.caliper then break end
    local j
    if dl <= dh then j = C[lo]; lo = lo - 1 else j = C[hi]; hi = hi + 1 end
    got[#got + 1] = { row = j, d = d }
    if #got == opts.k then kth = d end
  end
  -- Within equal distances: lower score first, then the earlier row.
  table.sort(got, function(a, b)
    if a.d ~= b.d then return a.d < b.d end
    if p[a.row] ~= p[b.row] then return p[a.row] < p[b.row] end
    return a.row < b.row
  end)
  return got
end

--- Controls within bandwidth h of treated row t (|d| <= h), with their
--- kernel weights (uniform for radius matching, as psmatch2 does).
local function within(C, p, t, h, kernel)
  local pt = p[t]
  local got = {}
  for pos = lower_bound(C, p, pt - h), #C do
    local j = C[pos]
    local d = p[j] - pt
    if d > h then break end
    if math.abs(d) <= h then
      local w = kernel == "epanechnikov" and (1 - (d / h) ^ 2) or 1
      if w > 0 or kernel ~= "epanechnikov" then got[#got + 1] = { row = j, d = math.abs(d), w = w } end
    end
  end
  return got
end

--- Match the treated rows T to the controls C of one group.  Fills
--- weight[row] (treated on support: 1; control: the sum of its shares),
--- support[row] and matches[treated row] = { {row =, w =}, ... }.
local function match_group(T, C, p, opts, weight, support, matches)
  sorted_controls(C, p)
  if #C == 0 then
    for _, t in ipairs(T) do support[t] = false end
    return
  end
  local pmin, pmax = p[C[1]], p[C[#C]]
  local order = {}
  for _, t in ipairs(T) do
    support[t] = not opts.common or (p[t] >= pmin and p[t] <= pmax)
    if support[t] then order[#order + 1] = t end
  end
  -- Without replacement the order matters: psmatch2 takes the treated by
  -- ascending score (descending with its option), ties by row.
  table.sort(order, function(a, b)
    if p[a] ~= p[b] then
      if opts.order == "descending" then return p[a] > p[b] end
      return p[a] < p[b]
    end
    return a < b
  end)
  local used = {}
  for _, t in ipairs(order) do
    local got
    if opts.method == "nearest" then
      got = nearest(C, p, t, opts, used)
      for _, g in ipairs(got) do g.w = 1 / #got end
      if not opts.replace then for _, g in ipairs(got) do used[g.row] = true end end
    else
      got = within(C, p, t, opts.method == "radius" and opts.caliper or opts.bandwidth,
        opts.method == "radius" and "uniform" or opts.kernel)
      local s = 0
      for _, g in ipairs(got) do s = s + g.w end
      for _, g in ipairs(got) do g.w = g.w / s end
    end
    if #got == 0 then
      support[t] = false
    else
      weight[t] = 1
      matches[t] = got
      for _, g in ipairs(got) do weight[g.row] = (weight[g.row] or 0) + g.w end
    end
  end
end

-- ---- balance (pstest) -------------------------------------------------------------------

-- Weighted mean and sum of squared deviations of v over rows with weight w[r] > 0
-- (every row with weight 1 when w is nil; a row without a weight has none).
local function wmoments(rows, v, w)
  local function wt(r)
    if not w then return 1 end
    return w[r] or 0
  end
  local sw, s = 0, 0
  for _, r in ipairs(rows) do
    local wr = wt(r)
    if wr > 0 then sw = sw + wr; s = s + wr * v[r] end
  end
  local m = s / sw
  local ss = 0
  for _, r in ipairs(rows) do
    local wr = wt(r)
    if wr > 0 then ss = ss + wr * (v[r] - m) ^ 2 end
  end
  return m, ss, sw
end

--- The t statistic of treated in a regression of v on treated with
--- importance weights (Stata's regress [iw=]; unweighted when w is nil):
--- the difference of weighted means over a pooled residual variance with
--- sum(w) - 2 degrees of freedom.
local function ttest(T, C, v, w)
  local m1, ss1, w1 = wmoments(T, v, w)
  local m0, ss0, w0 = wmoments(C, v, w)
  local df = w1 + w0 - 2
  local se = math.sqrt((ss1 + ss0) / df * (1 / w1 + 1 / w0))
  local t = (m1 - m0) / se
  return t, 2 * dist.pt(math.abs(t), df, true), m1, m0
end

local function variance(rows, v)
  local _, ss, n = wmoments(rows, v, nil)
  return ss / (n - 1)
end

--- pstest's table: per covariate, means before (all rows) and after (rows
--- on support, controls weighted), the standardised bias in % of
--- sqrt((V1 + V0) / 2) of the unmatched sample both times, the reduction in
--- |bias|, and t-tests before and after.
local function balance(names, cols, T, C, Tm, weight)
  local rows = {}
  for j, name in ipairs(names) do
    local v = cols[j]
    local sd = math.sqrt((variance(T, v) + variance(C, v)) / 2)
    local tb, pb, m1u, m0u = ttest(T, C, v, nil)
    local ta, pa, m1m, m0m = ttest(Tm, C, v, weight)
    local bb, ba = 100 * (m1u - m0u) / sd, 100 * (m1m - m0m) / sd
    rows[j] = { variable = name, treated_before = m1u, control_before = m0u, bias_before = bb, t_before = tb,
      p_before = pb, treated_after = m1m, control_after = m0m, bias_after = ba,
      reduction = -100 * (math.abs(ba) - math.abs(bb)) / math.abs(bb), t_after = ta, p_after = pa }
  end
  return rows
end

-- ---- PSM-DID ----------------------------------------------------------------------------

local DID_OPTIONS = { "time", "post", "vcov" }

--- The DID on the matched sample: outcome ~ psm_did + psm_treat (+ psm_post)
--- (| time), weighted by the matching weights, on the rows with a positive
--- weight.  Without a time column the post dummy enters as a regressor; with
--- one, the time fixed effects absorb it (it enters too when it varies within
--- a period, as in staggered designs).
local function run_did(d, rows, treat, weight, outcome, spec)
  util.check_options(spec, DID_OPTIONS, "psm: did")
  if spec.post == nil then fail("did: expected post = a 0/1 column or the first post-treatment period") end
  local post = {}
  local names = d:names()
  local has = {}
  for _, nm in ipairs(names) do has[nm] = true end
  if type(spec.post) == "string" then
    if not has[spec.post] then fail(string.format("did: no column '%s' for post", spec.post)) end
    local col = d[spec.post]
    if type(col) ~= "userdata" then fail(string.format("did: column '%s' (post) is categorical; expected 0/1", spec.post)) end
    for _, r in ipairs(rows) do
      local v = col:get(r, 1)
      if v ~= 0 and v ~= 1 then fail(string.format("did: post column '%s' has value %s at row %d; expected 0 or 1", spec.post, tostring(v), r)) end
      post[r] = v
    end
  elseif type(spec.post) == "number" then
    if not spec.time then fail("did: post = " .. tostring(spec.post) .. " (a period) needs did.time, the time column") end
  else
    fail("did: post must be a column name or the first post-treatment period, got a " .. type(spec.post))
  end
  local time
  if spec.time then
    if type(spec.time) ~= "string" or not has[spec.time] then fail(string.format("did: no column '%s' for time", tostring(spec.time))) end
    time = d[spec.time]
    if type(time) ~= "userdata" then fail(string.format("did: time column '%s' is categorical; expected numbers", spec.time)) end
    if type(spec.post) == "number" then
      for _, r in ipairs(rows) do post[r] = time:get(r, 1) >= spec.post and 1 or 0 end
    end
  end
  -- A post dummy that is a function of time is absorbed by the time effects.
  local post_in_time = false
  if time then
    post_in_time = true
    local seen = {}
    for _, r in ipairs(rows) do
      local key = util.key_of(time:get(r, 1))
      if seen[key] ~= nil and seen[key] ~= post[r] then post_in_time = false end
      seen[key] = post[r]
    end
  end
  local n = d:nrow()
  local ctreat, cpost, cdid, cw = {}, {}, {}, {}
  for r = 1, n do ctreat[r], cpost[r], cdid[r], cw[r] = 0 / 0, 0 / 0, 0 / 0, 0 end
  for _, r in ipairs(rows) do
    if (weight[r] or 0) > 0 then
      ctreat[r], cpost[r], cdid[r], cw[r] = treat[r], post[r], treat[r] * post[r], weight[r]
    end
  end
  local dd = d:copy()
  dd.psm_treat, dd.psm_post, dd.psm_did, dd.psm_weight = ctreat, cpost, cdid, cw
  dd = dd:filter(function(row) return row.psm_weight > 0 end)
  local terms = { "psm_did", "psm_treat" }
  if not post_in_time then terms[#terms + 1] = "psm_post" end
  local f = F.build { response = outcome, terms = terms, fe = time and { spec.time } or nil }
  local vcov = spec.vcov
  if vcov == nil then
    local panel = util.panel_of(d)
    vcov = panel and { cluster = panel.entity } or "hc1"
  end
  return require("spillover.linear").ols(dd, f, { weights = "psm_weight", vcov = vcov })
end

-- ---- the estimator --------------------------------------------------------------------------

local OPTIONS = { "link", "method", "k", "replace", "ties", "caliper", "bandwidth", "kernel", "common", "order",
  "by", "outcome", "did", "maxiter", "tol" }
local METHODS = { nearest = true, radius = true, kernel = true }

local function check(opts)
  opts = util.check_options(opts, OPTIONS, "psm")
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.link = o.link or "logit"
  if not LINKS[o.link] then fail("link must be \"logit\" or \"probit\", got " .. tostring(o.link)) end
  o.method = o.method or "nearest"
  if not METHODS[o.method] then fail("method must be \"nearest\", \"radius\" or \"kernel\", got " .. tostring(o.method)) end
  o.k = o.k or 1
  if math.type(o.k) ~= "integer" or o.k < 1 then fail("k must be an integer >= 1, got " .. tostring(o.k)) end
  if o.replace == nil then o.replace = true end
  if o.method ~= "nearest" and (opts.k or opts.replace == false or opts.ties) then
    fail("k, replace and ties apply to method = \"nearest\", not \"" .. o.method .. "\"")
  end
  if o.caliper ~= nil and not (type(o.caliper) == "number" and o.caliper > 0) then
    fail("caliper must be a positive number (a distance between propensity scores), got " .. tostring(o.caliper))
  end
  if o.method == "radius" and not o.caliper then fail("method = \"radius\" needs caliper, the radius") end
  o.caliper = o.caliper or math.huge
  if o.method == "kernel" then
    o.kernel = o.kernel or "epanechnikov"
    if o.kernel ~= "epanechnikov" then fail("kernel must be \"epanechnikov\", got " .. tostring(o.kernel)) end
    o.bandwidth = o.bandwidth or 0.06
    if not (type(o.bandwidth) == "number" and o.bandwidth > 0) then fail("bandwidth must be a positive number, got " .. tostring(o.bandwidth)) end
  elseif opts.kernel or opts.bandwidth then
    fail("kernel and bandwidth apply to method = \"kernel\"")
  end
  o.order = o.order or "ascending"
  if o.order ~= "ascending" and o.order ~= "descending" then fail("order must be \"ascending\" or \"descending\", got " .. tostring(o.order)) end
  if o.did ~= nil and (type(o.did) ~= "table") then fail("did must be a table {time =, post =}, got a " .. type(o.did)) end
  if o.did and not o.outcome then fail("did needs outcome, the column the DID explains") end
  return o
end

-- A numeric column as a Lua array (rows of the frame), naming it on failure.
local function numeric(d, name, what)
  local ok, col = pcall(function() return d[name] end)
  if not ok or col == nil then fail(string.format("no column '%s' (%s)", tostring(name), what)) end
  if type(col) ~= "userdata" then fail(string.format("column '%s' (%s) is categorical; expected numbers", name, what)) end
  return col:tovector()
end

--- psm(d, "treat ~ x1 + x2", opts): see the header.
function M.psm(d, formula, opts)
  local o = check(opts)
  local f = F.is_formula(formula) and formula or F.parse(formula)
  local tname = f:response()
  if not tname then fail("expected \"treat ~ covariates\", with the treatment indicator on the left") end
  if #f:fe() > 0 then fail("the propensity model takes no fixed effects (| part); add them as i(x) terms") end
  local extra = {}
  if o.by then extra[#extra + 1] = o.by end
  if o.outcome then extra[#extra + 1] = o.outcome end
  local des = core.design(d, f, #extra > 0 and { extra = extra } or nil)
  local Xm, ym, rows = des.X, des.y, des.rows
  local n, k = des.n, des.k
  if n == 0 then fail("no complete rows for " .. tostring(formula)) end
  local treat, X = {}, {}
  for i = 1, n do
    local v = ym:get(i, 1)
    if v ~= 0 and v ~= 1 then
      fail(string.format("treatment '%s' must be 0 or 1; row %d has %s", tname, rows[i], tostring(v)))
    end
    treat[rows[i]] = v
    local xi = {}
    for j = 1, k do xi[j] = Xm:get(i, j) end
    X[i] = xi
  end
  -- Groups: the whole sample, or one per value of `by` (period by period).
  local groups, gorder = {}, {}
  local bycol = o.by and d[o.by]
  for i = 1, n do
    local key = "all"
    if o.by then
      local v = type(bycol) == "userdata" and bycol:get(rows[i], 1) or bycol[rows[i]]
      key = util.key_of(v)
    end
    if not groups[key] then groups[key] = { idx = {} }; gorder[#gorder + 1] = key end
    local g = groups[key].idx
    g[#g + 1] = i
  end
  local p, models = {}, {}
  for _, key in ipairs(gorder) do
    local idx = groups[key].idx
    local Xg, yg, n1 = {}, {}, 0
    for m, i in ipairs(idx) do Xg[m] = X[i]; yg[m] = treat[rows[i]]; n1 = n1 + yg[m] end
    local what = o.by and string.format("%s = %s", o.by, key) or "propensity model"
    if n1 == 0 or n1 == #idx then
      fail(string.format("%s: %s", what, n1 == 0 and "no treated rows" or "no control rows"))
    end
    local ml = binary_ml(o.link, Xg, yg, des.names, o, what)
    models[#models + 1] = { group = o.by and key or nil, b = ml.b, V = ml.V, loglik = ml.loglik, iterations = ml.iterations }
    for m, i in ipairs(idx) do
      local eta = 0
      for j = 1, k do eta = eta + Xg[m][j] * ml.b[j] end
      p[rows[i]] = LINKS[o.link].prob(eta)
    end
  end
  -- Match within each group.
  local weight, support, matches = {}, {}, {}
  local T, C = {}, {}
  for _, key in ipairs(gorder) do
    local Tg, Cg = {}, {}
    for _, i in ipairs(groups[key].idx) do
      local r = rows[i]
      if treat[r] == 1 then Tg[#Tg + 1] = r; T[#T + 1] = r else Cg[#Cg + 1] = r; C[#C + 1] = r end
    end
    match_group(Tg, Cg, p, o, weight, support, matches)
  end
  local Tm = {}
  for _, t in ipairs(T) do if support[t] then Tm[#Tm + 1] = t end end
  if #Tm == 0 then
    fail(string.format("no treated row is on the common support or has a control within the %s " ..
      "(%d treated, %d controls): the propensity scores do not overlap", o.method == "kernel" and "bandwidth" or "caliper",
      #T, #C))
  end
  -- Balance of the covariates (the columns of X but the intercept).
  local bnames, bcols = {}, {}
  for j, name in ipairs(des.names) do
    if name ~= "(Intercept)" then
      local v = {}
      for i = 1, n do v[rows[i]] = X[i][j] end
      bnames[#bnames + 1], bcols[#bcols + 1] = name, v
    end
  end
  local bal = balance(bnames, bcols, T, C, Tm, weight)
  local absb, absa = {}, {}
  for j, r in ipairs(bal) do absb[j], absa[j] = math.abs(r.bias_before), math.abs(r.bias_after) end
  table.sort(absb); table.sort(absa)
  local function mean(t) local s = 0; for _, v in ipairs(t) do s = s + v end; return s / #t end
  local summary = #bal > 0 and { mean_bias_before = mean(absb), median_bias_before = util.quantile(absb, 0.5),
    mean_bias_after = mean(absa), median_bias_after = util.quantile(absa, 0.5) } or nil

  local n0m = 0
  for _, c in ipairs(C) do if (weight[c] or 0) > 0 then n0m = n0m + 1 end end
  local psm = {
    link = o.link, method = o.method, treatment = tname, models = models, pscore = p, weight = weight,
    support = support, matches = matches, rows = rows, balance = bal, balance_summary = summary,
    n_treated = #T, n_controls = #C, n_treated_matched = #Tm, n_controls_matched = n0m,
    n_off_support = #T - #Tm,
  }
  local names, b, V, nobs, extra_fields = {}, {}, {}, #Tm, {}
  if o.outcome then
    local y = numeric(d, o.outcome, "outcome")
    -- ATT over the treated on support; psmatch2's approximate standard error
    -- sqrt(Var(y | T) / N1 + Var(y | matched C) sum(w^2) / N1^2), which takes
    -- the weights and the scores as fixed.
    local s = 0
    for _, t in ipairs(Tm) do
      local y0 = 0
      for _, g in ipairs(matches[t]) do y0 = y0 + g.w * y[g.row] end
      s = s + y[t] - y0
    end
    local att = s / #Tm
    local Cm, w2 = {}, 0
    for _, c in ipairs(C) do
      local w = weight[c] or 0
      if w > 0 then Cm[#Cm + 1] = c; w2 = w2 + w * w end
    end
    local var1, var0 = variance(Tm, y), #Cm > 1 and variance(Cm, y) or 0
    local se = math.sqrt(var1 / #Tm + var0 * w2 / (#Tm * #Tm))
    local ybar1 = wmoments(Tm, y, nil)
    psm.att = { att = att, se = se, treated_mean = ybar1, control_mean = ybar1 - att,
      t = att / se, pvalue = 2 * dist.pnorm(math.abs(att / se), true) }
    if o.did then
      local did = run_did(d, rows, treat, weight, o.outcome, o.did)
      extra_fields.did = did
      names, b, V, nobs = did.names, did.b, did.V, did.nobs
      extra_fields.df_resid, extra_fields.stats, extra_fields.vcov_label = did.df_resid, did.stats, did.vcov_label
    else
      names, b, V = { "ATT" }, { att }, { { se * se } }
    end
  end
  local fit = fitmod.new {
    names = names, b = b, V = V, nobs = nobs, df_resid = extra_fields.df_resid, stats = extra_fields.stats,
    vcov_label = extra_fields.vcov_label or (o.outcome and "psmatch2 approximate (fixed weights)" or nil),
    estimator = o.did and "psm_did" or "psm",
    label = o.did and "PSM-DID" or "Propensity-score matching", formula = f,
    notes = { string.format("%s propensity, %s matching%s; %d of %d treated matched, %d controls used", o.link,
      o.method == "nearest" and string.format("%d-nearest-neighbour %s replacement", o.k, o.replace and "with" or "without")
      or o.method, o.by and (" by " .. o.by) or "", #Tm, #T, n0m) },
    psm = psm, did = extra_fields.did,
  }
  return fit
end

return M
