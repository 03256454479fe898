-- spillover.wildboot: the wild cluster bootstrap-t (Cameron, Gelbach & Miller
-- 2008) for one coefficient of an OLS fit, with or without absorbed fixed
-- effects, and the wild restricted efficient bootstrap (WRE, Davidson &
-- MacKinnon 2010) for 2SLS, as Stata's boottest computes them (Roodman,
-- MacKinnon, Nielsen & Webb 2019): p-values and confidence sets that stay
-- reliable with few clusters, where the cluster-robust t test over-rejects.
--
--   fit:wildboot{param =, reps = 9999, weights = "rademacher" | "webb" | "mammen",
--                impose_null = true (WCR/WRE) | false (WCU/WRU), cluster =,
--                seed =, level = 0.95, h0 = 0}
--
-- Both work on the regression after the fixed effects are partialled out
-- (Frisch-Waugh-Lovell).  For OLS every quantity a replication needs is
-- affine in the null value h0 (the restricted residuals are M(y - h0 x)), so
-- five numbers per replication give its t statistic at any h0, and the
-- confidence set (test inversion by root finding on the p-value function)
-- costs O(reps) per trial value instead of a new bootstrap.  For 2SLS the
-- reduced form depends on h0, and each trial value reruns the replications.
--
-- Under mpirun (sp.mpi) each process runs a contiguous block of the
-- replications and every process gets all of them back in order (the five
-- numbers of an OLS replication once; a 2SLS replication's t* at each trial
-- value), so the p-value, the confidence set and t* are the one process's,
-- bit for bit: a replication's weights depend only on its number.
local core = require "spillover.core"
local util = require "spillover.util"
local suggest = require "spillover.suggest"
local mpi = require "spillover.mpi"
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

--- The weights of replications first..last: v[i], an array of G, for
--- replication first + i - 1.  Rademacher weights are enumerated when
--- 2^G <= reps (boottest's rule; enumerated): all 2^G sign vectors, the
--- exact distribution, so the result does not depend on the seed or on reps;
--- replication b has v_g = -1 where bit g - 1 of b - 1 is set.  Otherwise
--- replication b draws from rng:substream(b).  Either way a replication's
--- weights depend on its number only, not on which process computes it or
--- in what order.
local function weight_draws(kind, G, enumerated, seed, first, last)
  local rng, draw = core.rng(seed), DRAW[kind]
  local v = {}
  for b = first, last do
    local row = {}
    if enumerated then
      local bits = b - 1
      for g = 1, G do
        row[g] = bits % 2 == 1 and -1 or 1
        bits = bits // 2
      end
    else
      local r = rng:substream(b)
      for g = 1, G do row[g] = draw(r) end
    end
    v[#v + 1] = row
  end
  return v
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

local dotv = util.dot

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
--- per replication.  Five arrays (N0, N1, A, B, C) over the replications
--- of every process (v holds this process's block of total).
local function replication_terms(c0, Q0, c1, Q1, v, G, total)
  local terms = { {}, {}, {}, {}, {} }
  local bar <close> = require("spillover.progress").new("wild bootstrap", #v)
  for b, vb in ipairs(v) do
    local N0, N1, A, B, C = 0, 0, 0, 0, 0
    for g = 1, G do
      N0, N1 = N0 + vb[g] * c0[g], N1 + vb[g] * c1[g]
      local q0, q1, w0, w1 = Q0[g], Q1[g], 0, 0
      for h = 1, G do w0, w1 = w0 + q0[h] * vb[h], w1 + q1[h] * vb[h] end
      A, B, C = A + w0 * w0, B + w0 * w1, C + w1 * w1
    end
    terms[1][b], terms[2][b], terms[3][b], terms[4][b], terms[5][b] = N0, N1, A, B, C
    bar:tick()
  end
  for j = 1, 5 do terms[j] = mpi.collect(terms[j], total) end
  return terms
end

-- A bootstrap |t| equal to the actual one up to rounding (the identity draw
-- v = 1 under the null reproduces the data) is a tie, not an exceedance:
-- without this margin the enumerated p-value would move by 1/2^G with the
-- last bit of a sum.
local TIE = 1e-9

--- The symmetric bootstrap p-value: the share of feasible replications with
--- |t*| > |t| (boottest's default ptype).  tstar: the replications' t (NaN
--- when infeasible), t: the actual one, on the same scale.
local function symmetric_p(tstar, t)
  local tabs = math.abs(t) * (1 + TIE)
  local above, feasible = 0, 0
  for _, x in ipairs(tstar) do
    if x == x then
      feasible = feasible + 1
      if math.abs(x) > tabs then above = above + 1 end
    end
  end
  return above / feasible
end

--- The OLS replications' t at h0 (without the small-sample factor), from
--- their five numbers.
local function ols_tstar(terms, h0)
  local N0, N1, A, B, C = table.unpack(terms)
  local t = {}
  for b = 1, #N0 do
    local den = A[b] - 2 * h0 * B[b] + h0 * h0 * C[b]
    t[b] = den > 0 and (N0[b] - h0 * N1[b]) / math.sqrt(den) or 0 / 0
  end
  return t
end

--- One end of the confidence set: from the estimate (p = 1) outwards by
--- doubling steps until the test rejects, then bisection to where the
--- p-value falls below 1 - level (to tol standard errors).  -inf / inf when
--- it never does.
local function endpoint(pvalue, bhat, se, alpha, dir, tol)
  local inside, step = bhat, 2 * se
  local outside
  for _ = 1, 60 do
    local h = bhat + dir * step
    if pvalue(h) < alpha then outside = h; break end
    inside, step = h, step * 2
  end
  if not outside then return dir * math.huge end
  while math.abs(outside - inside) > tol * se do
    local mid = (inside + outside) / 2
    if pvalue(mid) < alpha then outside = mid else inside = mid end
  end
  return (inside + outside) / 2
end

local Result = {}
Result.__index = Result

function Result.__tostring(r)
  local lines = {
    string.format("Wild cluster bootstrap-t (%s, %s weights, %s)", r.impose_null and
      (r.method == "WRE" and "WRE for 2SLS, null imposed" or "WCR, null imposed") or
      (r.method == "WRE" and "WRU for 2SLS, null not imposed" or "WCU, null not imposed"), r.weights,
      r.enumerated and string.format("all %d sign vectors", r.reps) or string.format("%d replications", r.reps)),
    string.format("clustered by %s (%d clusters)", r.cluster, r.n_clusters),
    string.format("  %s = %.6g:  t = %.4f   p = %.4f", r.param, r.h0, r.t, r.pvalue),
    string.format("  %g%% confidence set: [%.6g, %.6g]", 100 * r.level, r.confint[1], r.confint[2]),
  }
  return table.concat(lines, "\n")
end

--- The default cluster: the fit's, when it is clustered one way (its
--- design then carries that one extra variable; weighted fits are refused).
local function fit_cluster(fit)
  local extra = fit.private.design.extra
  if fit.vcov_type == "cluster" and #extra == 1 then return extra[1].name end
  return nil
end

--- The bootstrap's settings (reps, weights, level, h0, impose_null, seed),
--- checked, with their defaults; who names the caller in messages
--- ("wildboot", or "vcov" for vcov = {wild = ...}).
function M.settings(opts, who)
  local reps = opts.reps or 9999
  if math.type(reps) ~= "integer" or reps < 1 then
    raise(who .. ": 'reps' must be a positive integer, got " .. tostring(opts.reps))
  end
  local weights = opts.weights or "rademacher"
  if not DRAW[weights] then
    raise(string.format(who .. ": unknown weights '%s' (expected rademacher, webb or mammen)%s", tostring(weights),
      suggest.did_you_mean(tostring(weights), { "rademacher", "webb", "mammen" })))
  end
  local level = opts.level or 0.95
  if type(level) ~= "number" or not (level > 0 and level < 1) then
    raise(who .. ": 'level' must be a number in (0, 1), got " .. tostring(opts.level))
  end
  local h0 = opts.h0 or 0
  if type(h0) ~= "number" or h0 ~= h0 or math.abs(h0) == math.huge then
    raise(who .. ": 'h0' must be a finite number, got " .. tostring(opts.h0))
  end
  if opts.impose_null ~= nil and type(opts.impose_null) ~= "boolean" then
    raise(who .. ": 'impose_null' must be true (WCR) or false (WCU), got " .. tostring(opts.impose_null))
  end
  if opts.seed ~= nil and math.type(opts.seed) ~= "integer" then
    raise(who .. ": 'seed' must be an integer, got " .. tostring(opts.seed))
  end
  return { reps = reps, weights = weights, level = level, h0 = h0, impose_null = opts.impose_null ~= false,
    seed = opts.seed }
end

local function check(opts, fit)
  opts = util.check_options(opts, M.OPTIONS, "wildboot")
  if type(opts.param) ~= "string" then
    raise("wildboot: 'param' must name a coefficient (one of " .. table.concat(fit.names, ", ") .. ")")
  end
  if opts.cluster ~= nil and type(opts.cluster) ~= "string" then
    raise("wildboot: 'cluster' must name one variable (the bootstrap clusters one way)")
  end
  local o = M.settings(opts, "wildboot")
  o.param, o.cluster = opts.param, opts.cluster
  return o
end

--- The WCR/WCU bootstrap of an OLS fit: the raw |t| scale (sqrt of the
--- actual meat) and the replications' raw t at any h0 (test inversion
--- reuses the replications: everything is affine in h0).  v: this
--- process's block of the total replications.
local function ols_boot(fit, pidx, codes, G, v, total, impose_null)
  local y, X = fwl_design(fit)
  local n, k = #y, #fit.names
  local Ainv = util.rows(core.matrix(X):crossprod():inv())
  local a = Ainv[pidx]
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
  local lin = { X = X, codes = codes, G = G, k = k, a = a, Ainv = Ainv, f = f, Pxa = Pxa,
    absorb = fit.private.absorb }
  -- The actual statistic's cluster scores a'X_g'u_g (unrestricted residuals).
  local Su = scores(X, uhat, codes, G, k)
  local meat = 0
  for g = 1, G do meat = meat + dotv(a, Su[g]) ^ 2 end
  local c0, Q0, c1, Q1
  if impose_null then
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
  local terms = replication_terms(c0, Q0, c1, Q1, v, G, total)
  return math.sqrt(meat), function(h0) return ols_tstar(terms, h0) end
end

-- ---- 2SLS: the wild restricted efficient bootstrap ----------------------------------------

--- Per cluster g, Z_g'R_g for R an array of rows with m entries: out[g][l][j].
local function zcross(Z, R, codes, G, L, m)
  local out = {}
  for g = 1, G do
    local t = {}
    for l = 1, L do t[l] = {} for j = 1, m do t[l][j] = 0 end end
    out[g] = t
  end
  for i, zi in ipairs(Z) do
    local t, mi = out[codes[i]], R[i]
    for l = 1, L do
      local zl, tl = zi[l], t[l]
      for j = 1, m do tl[j] = tl[j] + zl * mi[j] end
    end
  end
  return out
end

--- The inverse of a small k x k matrix (Gauss-Jordan with partial pivoting):
--- a 2SLS replication needs one, and a round trip through sp.matrix for
--- k = 3 costs more than the arithmetic.
local function inverse(A)
  local k, T = #A, {}
  for i = 1, k do
    local row = {}
    for j = 1, k do row[j], row[k + j] = A[i][j], i == j and 1 or 0 end
    T[i] = row
  end
  for c = 1, k do
    local piv = c
    for r = c + 1, k do if math.abs(T[r][c]) > math.abs(T[piv][c]) then piv = r end end
    T[c], T[piv] = T[piv], T[c]
    local mc = T[c]
    local d = mc[c]
    for j = 1, 2 * k do mc[j] = mc[j] / d end
    for r = 1, k do
      if r ~= c then
        local mr = T[r]
        local f = mr[c]
        if f ~= 0 then for j = 1, 2 * k do mr[j] = mr[j] - f * mc[j] end end
      end
    end
  end
  local B = {}
  for i = 1, k do B[i] = { table.unpack(T[i], k + 1, 2 * k) } end
  return B
end

--- 2SLS from the totals SW = Z'W and Sy = Z'y: the estimates b and the
--- weights c = Pi B_p with which coefficient p's cluster score is
--- c'Z_g'(y_g - W_g b) (Pi = (Z'Z)^-1 Z'W the first stage, B = (W'P_Z W)^-1).
local function tsls_solve(SW, Sy, ZZi, pidx, L, k)
  local Pi = {}
  for l = 1, L do
    local row, zl = {}, ZZi[l]
    for j = 1, k do
      local s = 0
      for m = 1, L do s = s + zl[m] * SW[m][j] end
      row[j] = s
    end
    Pi[l] = row
  end
  local A, Piy = {}, {}
  for i = 1, k do
    local row, s = {}, 0
    for l = 1, L do s = s + Pi[l][i] * Sy[l] end
    Piy[i] = s
    for j = 1, k do
      local t = 0
      for l = 1, L do t = t + SW[l][i] * Pi[l][j] end
      row[j] = t
    end
    A[i] = row
  end
  local B = inverse(A)
  local Bp, c = B[pidx], {}
  for l = 1, L do c[l] = dotv(Pi[l], Bp) end
  return matvec(B, Piy), c
end

--- 2SLS of coefficient p from the instruments' cross-products, cluster by
--- cluster (ZW[g] = Z_g'W_g, Zy[g] = Z_g'y_g): the estimate, its
--- cluster-robust standard error without the small-sample factor, and all
--- the estimates.
local function tsls_p(ZW, Zy, ZZi, pidx, G, L, k)
  local SW, Sy = {}, {}
  for l = 1, L do
    SW[l], Sy[l] = {}, 0
    for j = 1, k do SW[l][j] = 0 end
  end
  for g = 1, G do
    local wg, yg = ZW[g], Zy[g]
    for l = 1, L do
      Sy[l] = Sy[l] + yg[l]
      for j = 1, k do SW[l][j] = SW[l][j] + wg[l][j] end
    end
  end
  local b, c = tsls_solve(SW, Sy, ZZi, pidx, L, k)
  local var = 0
  for g = 1, G do
    local wg, yg, s = ZW[g], Zy[g], 0
    for l = 1, L do s = s + c[l] * (yg[l] - dotv(wg[l], b)) end
    var = var + s * s
  end
  return b[pidx], math.sqrt(var), b
end

--- The WRE bootstrap of a 2SLS fit (Davidson & MacKinnon 2010, boottest's
--- default after ivregress): the structural equation is estimated with the
--- null imposed (residuals u~), each endogenous regressor's reduced form on
--- the instruments and u~ (Pi~, efficient under the null), and a replication
--- draws y2* = Z Pi~ + v~ . v and y* = W* b~ + u~ . v with the same v per cluster.
--- impose_null = false: the same with the unrestricted estimates (WRU).  The
--- fixed effects are partialled out first; that is a refit of the full model
--- only when they are nested in the bootstrap clusters, so others are refused.
--- Nothing is affine in h0 here: each trial h0 reruns the replications:
--- returns se_raw and rerun(h0, v), the t* of the replications of weights v.
local function wre_boot(fit, pidx, codes, G, impose_null, cname)
  local p = fit.private
  local des = p.design
  local parts = { des.y }
  if des.k > 0 then parts[2] = des.X end
  parts[#parts + 1] = des.endog
  parts[#parts + 1] = des.inst
  local big = core.matrix.hcat(table.unpack(parts))
  if p.absorb then
    local handle = core.codes(codes)
    for j, fe in ipairs(des.fe) do
      if not p.absorb:nested(j, handle) then
        raise(string.format("wildboot: for 2SLS the fixed effects must be nested in the bootstrap clusters; " ..
          "'%s' is not nested in '%s'", fe.name, cname))
      end
    end
    p.absorb:demean(big, { allow_nonconvergence = true })
  end
  local col_of, is_endog = {}, {}
  for j, nm in ipairs(des.names) do col_of[nm] = 1 + j end
  for j, nm in ipairs(des.endog_names) do col_of[nm], is_endog[nm] = 1 + des.k + j, true end
  local Wc, Zc, endog = {}, {}, {}
  for j, nm in ipairs(fit.names) do
    Wc[j] = big:col(col_of[nm])
    if is_endog[nm] then endog[#endog + 1] = j else Zc[#Zc + 1] = Wc[j] end
  end
  for j = 1, #des.inst_names do Zc[#Zc + 1] = big:col(1 + des.k + #des.endog_names + j) end
  local Wm, Zm = core.matrix.hcat(table.unpack(Wc)), core.matrix.hcat(table.unpack(Zc))
  local W, Z, y = util.rows(Wm), util.rows(Zm), big:col(1):tovector()
  local n, k, L = #y, #Wc, #Zc
  local ZZi = util.rows(Zm:crossprod():inv())
  local yrows = {}
  for i = 1, n do yrows[i] = { y[i] } end
  local ZW = zcross(Z, W, codes, G, L, k)
  local Zy = zcross(Z, yrows, codes, G, L, 1)
  for g = 1, G do
    local t = {}
    for l = 1, L do t[l] = Zy[g][l][1] end
    Zy[g] = t
  end
  local bhat, se_raw = tsls_p(ZW, Zy, ZZi, pidx, G, L, k)

  local function tstar_at(h0, v)
    -- The structural estimates: restricted (b_p = h0) 2SLS, or the fit's.
    local theta = {}
    if impose_null and k > 1 then
      local rest = {}
      for j = 1, k do if j ~= pidx then rest[#rest + 1] = j end end
      local ZWr, Zyr = {}, {}
      for g = 1, G do
        ZWr[g], Zyr[g] = {}, {}
        for l = 1, L do
          local row = {}
          for a, j in ipairs(rest) do row[a] = ZW[g][l][j] end
          ZWr[g][l] = row
          Zyr[g][l] = Zy[g][l] - h0 * ZW[g][l][pidx]
        end
      end
      local _, _, br = tsls_p(ZWr, Zyr, ZZi, 1, G, L, k - 1)
      for a, j in ipairs(rest) do theta[j] = br[a] end
      theta[pidx] = h0
    elseif impose_null then
      theta[1] = h0
    else
      for j = 1, k do theta[j] = fit.b[j] end
    end
    local u = {}
    for i = 1, n do u[i] = y[i] - dotv(W[i], theta) end
    local Zu = core.matrix.hcat(Zm, core.matrix(u))
    -- Reduced forms: each endogenous regressor on [Z, u~]; v~ = y2 - Z Pi~.
    local Yhat, Vt = {}, {}
    for e, j in ipairs(endog) do
      local rf = core.lsfit(Zu, Wm:col(j):copy()).b:tovector()
      local yh, vv = {}, {}
      for i = 1, n do
        local s = 0
        for l = 1, L do s = s + Z[i][l] * rf[l] end
        yh[i], vv[i] = { s }, { W[i][j] - s }
      end
      Yhat[e], Vt[e] = zcross(Z, yh, codes, G, L, 1), zcross(Z, vv, codes, G, L, 1)
    end
    local urows = {}
    for i = 1, n do urows[i] = { u[i] } end
    local ZU = zcross(Z, urows, codes, G, L, 1)
    -- A replication's cross-products are affine in its cluster's weight:
    -- Z_g'W*_g = W0_g + v_g dW_g (only the endogenous columns move) and
    -- Z_g'y*_g = y0_g + v_g dy_g, y* = W* b~ + u~ . v.  Per cluster, flat
    -- E0[g] = [y0_g, W0_g] and E1[g] = [dy_g, dW_g] row by row (l = 1..L),
    -- so that a replication's residual moment c'Z_g'(y*_g - W*_g b*) is
    -- E0[g].gamma0 + v_g E1[g].gamma1 (gamma from c and b*): flat loops.
    local ne = #endog
    local w0, w1 = k + 1, ne + 1
    local E0, E1, SW0, Sy0 = {}, {}, {}, {}
    for l = 1, L do
      SW0[l], Sy0[l] = {}, 0
      for j = 1, k do SW0[l][j] = 0 end
    end
    for g = 1, G do
      local e0, e1 = {}, {}
      for l = 1, L do
        local row = {}
        for j = 1, k do row[j] = ZW[g][l][j] end
        local d = ZU[g][l][1]
        for e = 1, ne do
          local j = endog[e]
          row[j], e1[(l - 1) * w1 + 1 + e] = Yhat[e][g][l][1], Vt[e][g][l][1]
          d = d + Vt[e][g][l][1] * theta[j]
        end
        local y0 = dotv(row, theta)
        e0[(l - 1) * w0 + 1], e1[(l - 1) * w1 + 1] = y0, d
        for j = 1, k do e0[(l - 1) * w0 + 1 + j] = row[j] end
        Sy0[l] = Sy0[l] + y0
        for j = 1, k do SW0[l][j] = SW0[l][j] + row[j] end
      end
      E0[g], E1[g] = e0, e1
    end
    local m0, m1 = L * w0, L * w1
    local center = impose_null and h0 or bhat
    local out, SW, Sy, acc, gamma0, gamma1 = {}, {}, {}, {}, {}, {}
    for l = 1, L do SW[l] = {} end
    for b, vb in ipairs(v) do
      for i = 1, m1 do acc[i] = 0 end
      for g = 1, G do
        local vg, e1 = vb[g], E1[g]
        for i = 1, m1 do acc[i] = acc[i] + vg * e1[i] end
      end
      for l = 1, L do
        local o = (l - 1) * w1
        Sy[l] = Sy0[l] + acc[o + 1]
        local sl, s0 = SW[l], SW0[l]
        for j = 1, k do sl[j] = s0[j] end
        for e = 1, ne do sl[endog[e]] = s0[endog[e]] + acc[o + 1 + e] end
      end
      local bs, c = tsls_solve(SW, Sy, ZZi, pidx, L, k)
      for l = 1, L do
        local cl, o0, o1 = c[l], (l - 1) * w0, (l - 1) * w1
        gamma0[o0 + 1], gamma1[o1 + 1] = cl, cl
        for j = 1, k do gamma0[o0 + 1 + j] = -cl * bs[j] end
        for e = 1, ne do gamma1[o1 + 1 + e] = -cl * bs[endog[e]] end
      end
      local var = 0
      for g = 1, G do
        local e0, e1, s0, s1 = E0[g], E1[g], 0, 0
        for i = 1, m0 do s0 = s0 + e0[i] * gamma0[i] end
        for i = 1, m1 do s1 = s1 + e1[i] * gamma1[i] end
        local s = s0 + vb[g] * s1
        var = var + s * s
      end
      out[b] = var > 0 and (bs[pidx] - center) / math.sqrt(var) or 0 / 0
    end
    return out
  end
  return se_raw, tstar_at
end

--- fit:wildboot(opts) for a fit of sp.ols or a 2SLS fit (see the header).
function M.wildboot(fit, opts)
  local o = check(opts, fit)
  local p = fit.private
  local iv = fit.estimator == "iv" or fit.estimator == "iv_within"
  if type(p) ~= "table" or not p.design or not (iv or fit.estimator == "ols" or fit.estimator == "within") then
    raise(string.format("wildboot: needs a fit of sp.ols (OLS or 2SLS, with or without fixed effects); " ..
      "this is a '%s' fit", tostring(fit.estimator or "user")))
  end
  if p.weights then raise("wildboot: weighted fits are not supported; refit without weights") end
  local pidx
  for j, nm in ipairs(fit.names) do if nm == o.param then pidx = j end end
  if not pidx then
    raise(string.format("wildboot: unknown coefficient '%s' (the fit has %s)%s", o.param,
      table.concat(fit.names, ", "), suggest.did_you_mean(o.param, fit.names)))
  end
  if not (fit.V[pidx][pidx] > 0) then  -- NaN too (a perfect fit)
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

  -- A bootstrap split over the processes of an MPI job must be one
  -- computation: processes that fit different data refuse, on every process,
  -- before any replication is mixed into another's result.
  mpi.same(G, "wildboot: the number of clusters")
  mpi.same((fit.b[pidx] - o.h0) / math.sqrt(fit.V[pidx][pidx]), "wildboot: the t statistic of '" .. o.param .. "'")
  local enumerated = o.weights == "rademacher" and 2 ^ G <= o.reps
  local reps = enumerated and 1 << G or o.reps
  local first, last = mpi.range(reps)
  local v = weight_draws(o.weights, G, enumerated, o.seed, first, last)
  local se_raw, tstar_raw, tol
  -- 2SLS: the t*, the p-value and the confidence-set search below run on
  -- every process together, each rerunning its block.  A later call (the
  -- result's pvalue_at, or interval at another level) may come from one
  -- process alone, so it reruns every replication itself: the same numbers.
  local together, all = true, mpi.size() == 1 and v or nil
  if iv then
    local rerun
    se_raw, rerun = wre_boot(fit, pidx, codes, G, o.impose_null, cname)
    tstar_raw = function(h0)
      if together then return mpi.collect(rerun(h0, v), reps) end
      all = all or weight_draws(o.weights, G, enumerated, o.seed, 1, reps)
      return rerun(h0, all)
    end
    tol = 1e-4  -- each trial null value reruns the bootstrap: a coarser end
  else
    se_raw, tstar_raw = ols_boot(fit, pidx, codes, G, v, reps, o.impose_null)
    tol = 1e-10
  end
  -- The small-sample factor cancels in the p-value and the confidence set; it
  -- only scales the reported t.  Clustered as the fit, the fit's own standard
  -- error; else G/(G-1) (N-1)/df_resid, Stata's CRV1 factor.
  local se
  if cname == fit_cluster(fit) then
    se = math.sqrt(fit.V[pidx][pidx])
  else
    se = se_raw * math.sqrt(G / (G - 1) * (fit.nobs - 1) / fit.stats.df_resid)
  end
  local bhat = fit.b[pidx]
  local function pvalue(h) return symmetric_p(tstar_raw(h), (bhat - h) / se_raw) end
  local tstar = tstar_raw(o.h0)
  for b, t in ipairs(tstar) do tstar[b] = t * se_raw / se end
  -- the confidence set at any level, by inverting the same replications
  local function interval(level)
    return { endpoint(pvalue, bhat, se, 1 - level, -1, tol), endpoint(pvalue, bhat, se, 1 - level, 1, tol) }
  end
  local res = {
    param = o.param, estimate = bhat, h0 = o.h0, t = (bhat - o.h0) / se, se = se,
    pvalue = symmetric_p(tstar, (bhat - o.h0) / se), confint = interval(o.level), interval = interval,
    level = o.level, reps = reps, enumerated = enumerated, weights = o.weights, impose_null = o.impose_null,
    cluster = cname, n_clusters = G, tstar = tstar, pvalue_at = pvalue, method = iv and "WRE" or "WCB",
  }
  together = false
  return setmetatable(res, Result)
end

--- The method's words, as tables and notes say them: "WCR, Webb, 9999 reps".
local function describe(r)
  local kind = r.method == "WRE" and (r.impose_null and "WRE" or "WRU") or (r.impose_null and "WCR" or "WCU")
  local weights = r.weights:sub(1, 1):upper() .. r.weights:sub(2)
  return string.format("%s, %s, %s", kind, weights,
    r.enumerated and string.format("all %d sign vectors", r.reps) or string.format("%d reps", r.reps))
end

--- vcov = {wild = "g", reps =, weights =, seed =, impose_null =, level =} on
--- sp.ols or 2SLS: the fit keeps its cluster-robust V (clustered by g, the
--- standard errors shown; boottest reports none), and each coefficient's
--- bootstrap p-value (h0 = 0) and confidence set by test inversion go to
--- fit.inference, which fit:pvalue(), fit:confint(), summaries, tidy and
--- sp.etable report instead of the t-based ones.
function M.attach(fit, w)
  if #fit.names == 0 then return end
  local pv, res, last = {}, {}, nil
  for _, name in ipairs(fit.names) do
    last = M.wildboot(fit, { param = name, reps = w.reps, weights = w.weights, seed = w.seed,
      impose_null = w.impose_null, level = w.level })
    pv[name], res[name] = last.pvalue, last
  end
  local what = string.format("wild cluster bootstrap (%s)", describe(last))
  fit.inference = {
    pvalue = pv, level = w.level, label = what, cluster = last.cluster, n_clusters = last.n_clusters,
    confint = function(name, level)
      local r = res[name]
      return level == r.level and { r.confint[1], r.confint[2] } or r.interval(level)
    end,
  }
  fit.notes[#fit.notes + 1] = string.format("p-values and confidence sets: %s clustered by %s (%d clusters), by " ..
    "test inversion; standard errors: cluster-robust", what, last.cluster, last.n_clusters)
end

return M
