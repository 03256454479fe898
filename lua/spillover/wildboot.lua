-- spillover.wildboot: the wild cluster bootstrap-t (Cameron, Gelbach & Miller
-- 2008) for one coefficient of an OLS fit, with or without absorbed fixed
-- effects, as Stata's boottest computes it (Roodman, MacKinnon, Nielsen &
-- Webb 2019): p-values and confidence sets that stay reliable with few
-- clusters, where the cluster-robust t test over-rejects.
--
--   fit:wildboot{param =, reps = 9999, weights = "rademacher" | "webb" | "mammen",
--                impose_null = true (WCR) | false (WCU), cluster =, seed =,
--                level = 0.95, h0 = 0}
--
-- The method works on the regression after the fixed effects are partialled
-- out (Frisch-Waugh-Lovell), as boottest does after reghdfe.  Every quantity
-- a replication needs is affine in the null value h0 (the restricted
-- residuals are M(y - h0 x)), so five numbers per replication give its t
-- statistic at any h0, and the confidence set (test inversion by root finding
-- on the p-value function) costs O(reps) per evaluation instead of a new
-- bootstrap.
local core = require "spillover.core"
local util = require "spillover.util"
local suggest = require "spillover.suggest"
local raise = util.raise

local M = {}

M.OPTIONS = { "param", "reps", "weights", "impose_null", "cluster", "seed", "level", "h0" }

-- ---- the auxiliary weights ----------------------------------------------------------

local SQ5 = math.sqrt(5)
local WEBB = { -math.sqrt(1.5), -1, -math.sqrt(0.5), math.sqrt(0.5), 1, math.sqrt(1.5) }

--- One draw v_g (mean 0, variance 1) from the named distribution.
local DRAW = {
  rademacher = function(r) return r:uniform() < 0.5 and -1 or 1 end,
  -- Webb (2014): six points, so that few clusters still give many distinct draws.
  webb = function(r) return WEBB[r:integer(6)] end,
  -- Mammen (1993): two points with third moment 1.
  mammen = function(r)
    return r:uniform() < (SQ5 + 1) / (2 * SQ5) and (1 - SQ5) / 2 or (1 + SQ5) / 2
  end,
}

--- The G x B weights, one array of G per replication.  Rademacher weights are
--- enumerated when 2^G <= reps (boottest's rule): all 2^G sign vectors, the
--- exact distribution, so the result does not depend on the seed or on reps;
--- replication b has v_g = -1 where bit g - 1 of b - 1 is set.  Otherwise
--- replication b draws from rng:substream(b), so results do not depend on the
--- order in which replications are computed.
local function weight_draws(kind, G, reps, seed)
  local v = {}
  if kind == "rademacher" and 2 ^ G <= reps then
    for b = 1, 2 ^ G do
      local row, bits = {}, b - 1
      for g = 1, G do
        row[g] = bits % 2 == 1 and -1 or 1
        bits = bits // 2
      end
      v[b] = row
    end
    return v, true
  end
  local rng, draw = core.rng(seed), DRAW[kind]
  for b = 1, reps do
    local r, row = rng:substream(b), {}
    for g = 1, G do row[g] = draw(r) end
    v[b] = row
  end
  return v, false
end

-- ---- the problem: the FWL regression and the clusters --------------------------------

--- Dense codes 1..G of the cluster variable over the fit's rows.
local function cluster_codes(d, des, name)
  local names = d:names()
  local known = false
  for _, nm in ipairs(names) do if nm == name then known = true end end
  if not known then
    raise(string.format("wildboot: unknown cluster variable '%s'%s", tostring(name),
      suggest.did_you_mean(tostring(name), names)))
  end
  local col = d:column(name)
  local values = type(col) == "table" and col or col:tovector()
  local codes, index, G = {}, {}, 0
  for i, row in ipairs(des.rows) do
    local v = values[row]
    if v == nil or v ~= v then
      raise(string.format("wildboot: cluster variable '%s' is missing in row %d of the estimation sample", name, row))
    end
    local key = util.key_of(v)
    if not index[key] then G = G + 1; index[key] = G end
    codes[i] = index[key]
  end
  return codes, G
end

--- The regression the bootstrap runs: y and the kept regressors with the
--- fixed effects partialled out, as Lua arrays (X as rows).
local function fwl_design(fit)
  local p = fit.private
  local des = p.design
  local y, X = des.y, des.X
  if p.absorb then
    local yX = des.yX:copy()
    p.absorb:demean(yX, { allow_nonconvergence = true })
    y, X = yX:col(1), yX:view(1, 2, des.n, des.k)
  end
  local col_of = {}
  for j, nm in ipairs(des.names) do col_of[nm] = j end
  local cols = {}
  for j, nm in ipairs(fit.names) do cols[j] = X:col(col_of[nm]) end
  return y:tovector(), util.rows(core.matrix.hcat(table.unpack(cols)))
end

-- ---- small dense algebra on Lua arrays (k is small) ------------------------------------

local function dotv(a, b)
  local s = 0
  for j = 1, #a do s = s + a[j] * b[j] end
  return s
end

local function matvec(A, x)
  local out = {}
  for i = 1, #A do out[i] = dotv(A[i], x) end
  return out
end

--- Per cluster g: X_g' u_g (k-vectors) for a residual array u.
local function scores(X, u, codes, G, k)
  local S = {}
  for g = 1, G do
    local s = {}
    for j = 1, k do s[j] = 0 end
    S[g] = s
  end
  for i, row in ipairs(X) do
    local s, ui = S[codes[i]], u[i]
    for j = 1, k do s[j] = s[j] + row[j] * ui end
  end
  return S
end

--- Residuals of y on the columns of X other than p (y itself when there are none).
local function restricted_resid(X, y, p, k)
  if k == 1 then return y end
  local rows = {}
  for i, row in ipairs(X) do
    local r = {}
    for j = 1, k do if j ~= p then r[#r + 1] = row[j] end end
    rows[i] = r
  end
  return core.lsfit(core.matrix(rows), core.matrix(y)).resid:tovector()
end

-- ---- the bootstrap ------------------------------------------------------------------

--- The cluster scores of a replication as linear maps of its weights v, for
--- bootstrap residuals built from r (an n-array): returns c and Q with
--- a'(b* - b)_p = sum_h v_h c_h and the replication's cluster score of
--- coefficient p w_g = sum_h Q[g][h] v_h.  a is row p of (X'X)^-1, S_h = X_h'r_h.
--- A replication's residuals are M_D (r . v) - X (X'X)^-1 X'(r . v), M_D the
--- fixed effects' annihilator: its outcome is demeaned again, as a refit of
--- the full model on it would, which matters when the fixed effects are not
--- nested in the clusters.  So Q[g][h] = K[g][h] - f_g'(X'X)^-1 S_h with
--- K[g][h] = sum over i in g of (X_i a) (M_D r 1_h)_i and f_g = X_g'X_g a.
local function linear_scores(r, lin)
  local G, k, codes = lin.G, lin.k, lin.codes
  local S = scores(lin.X, r, codes, G, k)
  local U = core.matrix(#r, G, 0)
  for i, ri in ipairs(r) do U:set(i, codes[i], ri) end
  if lin.absorb then lin.absorb:demean(U, { allow_nonconvergence = true }) end
  local K = util.rows(lin.Pxa:crossprod(U))
  local c, Q, AS = {}, {}, {}
  for h = 1, G do c[h], AS[h] = dotv(lin.a, S[h]), matvec(lin.Ainv, S[h]) end
  for g = 1, G do
    local row = {}
    for h = 1, G do row[h] = K[g][h] - dotv(lin.f[g], AS[h]) end
    Q[g] = row
  end
  return c, Q
end

--- The per-replication coefficients of t*(h0) = (N0 - h0 N1) / sqrt(c (A - 2 h0 B + h0^2 C)):
--- the bootstrap residuals are r0 - h0 r1, so the numerator is N0 - h0 N1
--- and the cluster scores w0 - h0 w1 (linear_scores of each).  Cost O(G^2)
--- per replication.
local function replication_terms(c0, Q0, c1, Q1, v, G)
  local terms = {}
  for b, vb in ipairs(v) do
    local N0, N1, A, B, C = 0, 0, 0, 0, 0
    for g = 1, G do
      N0, N1 = N0 + vb[g] * c0[g], N1 + vb[g] * c1[g]
      local q0, q1, w0, w1 = Q0[g], Q1[g], 0, 0
      for h = 1, G do w0, w1 = w0 + q0[h] * vb[h], w1 + q1[h] * vb[h] end
      A, B, C = A + w0 * w0, B + w0 * w1, C + w1 * w1
    end
    terms[b] = { N0, N1, A, B, C }
  end
  return terms
end

-- A bootstrap |t| equal to the actual one up to rounding (the identity draw
-- v = 1 under the null reproduces the data) is a tie, not an exceedance:
-- without this margin the enumerated p-value would move by 1/2^G with the
-- last bit of a sum.
local TIE = 1e-9

--- The symmetric bootstrap p-value at h0: the share of feasible replications
--- with |t*| > |t| (boottest's default ptype).
local function pvalue_at(terms, ctx, h0)
  local tabs = math.abs(ctx.bhat - h0) / ctx.se_raw
  local above, feasible = 0, 0
  for _, q in ipairs(terms) do
    local den = q[3] - 2 * h0 * q[4] + h0 * h0 * q[5]
    if den > 0 then
      feasible = feasible + 1
      if math.abs(q[1] - h0 * q[2]) / math.sqrt(den) > tabs * (1 + TIE) then above = above + 1 end
    end
  end
  return above / feasible
end

--- One end of the confidence set: from the estimate (p = 1) outwards by
--- doubling steps until the test rejects, then bisection to where the
--- p-value falls below 1 - level.  -inf / inf when it never does.
local function endpoint(terms, ctx, alpha, dir)
  local inside, step = ctx.bhat, 2 * ctx.se
  local outside
  for _ = 1, 60 do
    local h = ctx.bhat + dir * step
    if pvalue_at(terms, ctx, h) < alpha then outside = h; break end
    inside, step = h, step * 2
  end
  if not outside then return dir * math.huge end
  while math.abs(outside - inside) > 1e-10 * ctx.se do
    local mid = (inside + outside) / 2
    if pvalue_at(terms, ctx, mid) < alpha then outside = mid else inside = mid end
  end
  return (inside + outside) / 2
end

local Result = {}
Result.__index = Result

function Result.__tostring(r)
  local lines = {
    string.format("Wild cluster bootstrap-t (%s, %s weights, %s)", r.impose_null and "WCR, null imposed" or
      "WCU, null not imposed", r.weights, r.enumerated and string.format("all %d sign vectors", r.reps) or
      string.format("%d replications", r.reps)),
    string.format("clustered by %s (%d clusters)", r.cluster, r.n_clusters),
    string.format("  %s = %.6g:  t = %.4f   p = %.4f", r.param, r.h0, r.t, r.pvalue),
    string.format("  %g%% confidence set: [%.6g, %.6g]", 100 * r.level, r.confint[1], r.confint[2]),
  }
  return table.concat(lines, "\n")
end

--- The default cluster: the fit's, when it is clustered one way (its
--- design then carries that one extra variable; weighted fits are refused).
local function fit_cluster(fit)
  local extra = fit.private.design_extra
  if fit.vcov_type == "cluster" and extra and #extra == 1 then return extra[1] end
  return nil
end

local function check(opts, fit)
  opts = util.check_options(opts, M.OPTIONS, "wildboot")
  if type(opts.param) ~= "string" then
    raise("wildboot: 'param' must name a coefficient (one of " .. table.concat(fit.names, ", ") .. ")")
  end
  local reps = opts.reps or 9999
  if math.type(reps) ~= "integer" or reps < 1 then
    raise("wildboot: 'reps' must be a positive integer, got " .. tostring(opts.reps))
  end
  local weights = opts.weights or "rademacher"
  if not DRAW[weights] then
    raise(string.format("wildboot: unknown weights '%s' (expected rademacher, webb or mammen)%s", tostring(weights),
      suggest.did_you_mean(tostring(weights), { "rademacher", "webb", "mammen" })))
  end
  local level = opts.level or 0.95
  if type(level) ~= "number" or not (level > 0 and level < 1) then
    raise("wildboot: 'level' must be a number in (0, 1), got " .. tostring(opts.level))
  end
  local h0 = opts.h0 or 0
  if type(h0) ~= "number" or h0 ~= h0 or math.abs(h0) == math.huge then
    raise("wildboot: 'h0' must be a finite number, got " .. tostring(opts.h0))
  end
  if opts.impose_null ~= nil and type(opts.impose_null) ~= "boolean" then
    raise("wildboot: 'impose_null' must be true (WCR) or false (WCU), got " .. tostring(opts.impose_null))
  end
  if opts.cluster ~= nil and type(opts.cluster) ~= "string" then
    raise("wildboot: 'cluster' must name one variable (the bootstrap clusters one way)")
  end
  if opts.seed ~= nil and math.type(opts.seed) ~= "integer" then
    raise("wildboot: 'seed' must be an integer, got " .. tostring(opts.seed))
  end
  return { param = opts.param, reps = reps, weights = weights, level = level, h0 = h0,
    impose_null = opts.impose_null ~= false, cluster = opts.cluster, seed = opts.seed }
end

--- fit:wildboot(opts) for a fit of sp.ols (see the header).
function M.wildboot(fit, opts)
  local o = check(opts, fit)
  local p = fit.private
  if type(p) ~= "table" or not p.design or not (fit.estimator == "ols" or fit.estimator == "within") then
    raise(string.format("wildboot: needs a fit of sp.ols (with or without fixed effects); this is a '%s' fit%s",
      tostring(fit.estimator or "user"), fit.endog_names and " (2SLS: the WRE bootstrap is not implemented)" or ""))
  end
  if p.weights then raise("wildboot: weighted fits are not supported; refit without weights") end
  local pidx
  for j, nm in ipairs(fit.names) do if nm == o.param then pidx = j end end
  if not pidx then
    raise(string.format("wildboot: unknown coefficient '%s' (the fit has %s)%s", o.param,
      table.concat(fit.names, ", "), suggest.did_you_mean(o.param, fit.names)))
  end
  if not (fit.V[pidx][pidx] > 0) then
    raise(string.format("wildboot: the variance of '%s' is %s (a perfect fit?); nothing to bootstrap", o.param,
      tostring(fit.V[pidx][pidx])))
  end
  local des = p.design
  local cname = o.cluster or fit_cluster(fit)
  if not cname then
    raise("wildboot: the fit is not clustered one way; name the bootstrap clusters with 'cluster'")
  end
  local codes, G = cluster_codes(p.data, des, cname)
  if G < 2 then raise(string.format("wildboot: cluster variable '%s' has one cluster; need at least 2", cname)) end

  local y, X = fwl_design(fit)
  local n, k = #y, #fit.names
  local Ainv = util.rows(core.matrix(X):crossprod():inv())
  local a = Ainv[pidx]
  local bhat = fit.b[pidx]
  local uhat = {}
  for i = 1, n do uhat[i] = y[i] - dotv(X[i], fit.b) end
  -- f_g = X_g'X_g a, and X_i a in column g(i) of an n x G matrix (for K).
  local f, Pxa = {}, core.matrix(n, G, 0)
  for g = 1, G do f[g] = {} for j = 1, k do f[g][j] = 0 end end
  for i, row in ipairs(X) do
    local fg, xa = f[codes[i]], dotv(row, a)
    Pxa:set(i, codes[i], xa)
    for j = 1, k do fg[j] = fg[j] + row[j] * xa end
  end
  local lin = { X = X, codes = codes, G = G, k = k, a = a, Ainv = Ainv, f = f, Pxa = Pxa, absorb = p.absorb }
  -- The actual statistic's cluster scores a'X_g'u_g (unrestricted residuals).
  local Su = scores(X, uhat, codes, G, k)
  local meat = 0
  for g = 1, G do meat = meat + dotv(a, Su[g]) ^ 2 end
  -- The small-sample factor cancels in the p-value and the confidence set; it
  -- only scales the reported t.  Clustered as the fit, the fit's own standard
  -- error; else G/(G-1) (N-1)/df_resid, Stata's CRV1 factor.
  local se
  if cname == fit_cluster(fit) then
    se = math.sqrt(fit.V[pidx][pidx])
  else
    se = math.sqrt(G / (G - 1) * (n - 1) / fit.stats.df_resid * meat)
  end

  local c0, Q0, c1, Q1
  if o.impose_null then
    -- WCR: the restricted residuals M_{-p}(y - h0 x_p) = r0 - h0 r1.
    local xp = {}
    for i = 1, n do xp[i] = X[i][pidx] end
    c0, Q0 = linear_scores(restricted_resid(X, y, pidx, k), lin)
    c1, Q1 = linear_scores(restricted_resid(X, xp, pidx, k), lin)
  else
    -- WCU: the unrestricted residuals, the replications centred at the estimate.
    local zero = {}
    for i = 1, n do zero[i] = 0 end
    c0, Q0 = linear_scores(uhat, lin)
    c1, Q1 = linear_scores(zero, lin)
  end
  local v, enumerated = weight_draws(o.weights, G, o.reps, o.seed)
  local terms = replication_terms(c0, Q0, c1, Q1, v, G)
  local ctx = { bhat = bhat, se = se, se_raw = math.sqrt(meat) }
  local pval = pvalue_at(terms, ctx, o.h0)
  local tstar = {}
  for b, q in ipairs(terms) do
    local den = q[3] - 2 * o.h0 * q[4] + o.h0 * o.h0 * q[5]
    tstar[b] = (q[1] - o.h0 * q[2]) / math.sqrt(den) * ctx.se_raw / se
  end
  local alpha = 1 - o.level
  local res = {
    param = o.param, estimate = bhat, h0 = o.h0, t = (bhat - o.h0) / se, se = se, pvalue = pval,
    confint = { endpoint(terms, ctx, alpha, -1), endpoint(terms, ctx, alpha, 1) }, level = o.level,
    reps = #v, enumerated = enumerated, weights = o.weights, impose_null = o.impose_null,
    cluster = cname, n_clusters = G, tstar = tstar,
    pvalue_at = function(h) return pvalue_at(terms, ctx, h) end,
  }
  return setmetatable(res, Result)
end

return M
