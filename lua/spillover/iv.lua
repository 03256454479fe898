-- spillover.iv: two-stage least squares with absorbed fixed effects, and the
-- first-stage, weak-instrument, overidentification and endogeneity diagnostics.
--
--   iv.ivreg(d, "y ~ x1 + x2 | fe1 + fe2 | w ~ z1 + z2", {vcov=, compat=})
--   iv.fit(d, formula, opts, des)   the entry sp.ols dispatches to (des may be nil)
--
-- Built from the same primitives as sp.ols (sp.design, sp.absorb, sp.lsfit,
-- sp.vcov) and the shared pipeline of spillover.linear (covariance presets,
-- joint tests, fit assembly), so every vcov option and compat preset of sp.ols
-- works here with the same meaning.
--
-- Notation used below: y the outcome, X1 the exogenous regressors (k1 kept
-- columns), Y2 the p endogenous regressors, Z2 the m excluded instruments,
-- Z = [X1, Z2] all L = k1 + m instruments; after absorbing the fixed effects
-- every one of them is within-transformed by one workspace.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local linear = require "spillover.linear"
local dist = core.dist
local matrix = core.matrix

local M = {}

-- ---- small dense helpers ------------------------------------------------------

local function ones(n) return matrix(n, 1, 1) end

--- hcat over a list of matrices, skipping nils; nil when nothing is left.
local function hcat_list(list)
  -- list may have holes (no exogenous block: { nil, Z2 }), which ipairs would stop at
  local keys, parts = {}, {}
  for i in pairs(list) do keys[#keys + 1] = i end
  table.sort(keys)
  for _, i in ipairs(keys) do
    local m = list[i]
    if m:ncol() > 0 then parts[#parts + 1] = m end
  end
  if #parts == 0 then return nil end
  if #parts == 1 then return parts[1]:copy() end
  return matrix.hcat(table.unpack(parts))
end

--- Residuals of every column of A regressed on B (A itself when B is nil).
local function partial_out(A, B)
  if B == nil then return A:copy() end
  local parts = {}
  for j = 1, A:ncol() do parts[j] = core.lsfit(B, A:col(j):copy()).resid end
  return #parts == 1 and parts[1] or matrix.hcat(table.unpack(parts))
end

--- Symmetric square root of a symmetric positive semi-definite matrix.
local function sqrtm(A)
  local vals, vecs = A:eigen()
  local q = A:nrow()
  local D = matrix(q, q, 0)
  for i = 1, q do D:set(i, i, math.sqrt(math.max(vals:get(i, 1), 0))) end
  return vecs * D * vecs:t()
end

--- Kronecker product of two matrices.
local function kron(A, B)
  local ra, ca, rb, cb = A:nrow(), A:ncol(), B:nrow(), B:ncol()
  local K = matrix(ra * rb, ca * cb, 0)
  for i = 1, ra do
    for j = 1, ca do
      local a = A:get(i, j)
      if a ~= 0 then
        for r = 1, rb do
          for c = 1, cb do K:set((i - 1) * rb + r, (j - 1) * cb + c, a * B:get(r, c)) end
        end
      end
    end
  end
  return K
end

--- vec(A): the columns stacked.
local function vec(A)
  local r, c = A:nrow(), A:ncol()
  local v = matrix(r * c, 1, 0)
  for j = 1, c do for i = 1, r do v:set((j - 1) * r + i, 1, A:get(i, j)) end end
  return v
end

--- Sub-block rows i1..i2, columns j1..j2 (a copy; empty ranges give nil).
local function block(A, i1, i2, j1, j2)
  if i2 < i1 or j2 < j1 then return nil end
  return A:view(i1, j1, i2 - i1 + 1, j2 - j1 + 1):copy()
end

--- Full singular value decomposition of a tall m x p matrix T (m >= p):
--- U (m x m, orthogonal), s (descending, length p), V (p x p) with T = U S V'.
--- Built from the symmetric eigensystem of T'T; the last m - p columns of U
--- span the orthogonal complement of T's column space.  Returns nil when T
--- does not have full column rank (then no rank statistic exists).
local function svd_full(T)
  local m, p = T:nrow(), T:ncol()
  local vals, vecs = T:crossprod():eigen()        -- ascending
  local V = matrix(p, p, 0)
  local s = {}
  for k = 1, p do
    local src = p - k + 1
    s[k] = math.sqrt(math.max(vals:get(src, 1), 0))
    for i = 1, p do V:set(i, k, vecs:get(i, src)) end
  end
  if not (s[p] > 1e-14 * math.max(s[1], 1e-300)) then return nil end
  local Sinv = matrix(p, p, 0)
  for k = 1, p do Sinv:set(k, k, 1 / s[k]) end
  local U1 = T * V * Sinv
  local U = U1
  if m > p then
    local P = matrix.eye(m) - U1 * U1:t()
    local _, cvecs = P:eigen()                     -- eigenvalues 0 (p) then 1 (m - p)
    U = matrix.hcat(U1, cvecs:view(1, p + 1, m, m - p):copy())
  end
  return U, s, V
end

-- ---- meat of a sandwich under the fit's dependence structure ---------------------

--- Sum over the dependence units of the outer products of the score rows of W
--- (n x q): rows for HC, cluster sums for clusters, Driscoll-Kraay for DK; no
--- small-sample factor (ivreg2's S times N).  HC2/HC3 use the HC0 meat, as
--- ivreg2 and ranktest do.
local function meat(W, ctx)
  local vc = ctx.vcov
  local opts = { dof = "none", gadj = "none", multi0 = vc.multi0 }
  if vc.type == "cluster" then
    opts.type = "cluster"
    opts.cluster, opts.cluster_names = {}, {}
    for j, name in ipairs(vc.cluster) do
      opts.cluster[j] = ctx.codes(name)
      opts.cluster_names[j] = name
    end
  elseif vc.type == "driscoll_kraay" then
    opts.type = "driscoll_kraay"
    opts.time, opts.time_name, opts.lag = ctx.time_codes(), ctx.time_name, vc.lag
  else
    opts.type = "hc0"
  end
  local S, info = core.vcov(W, ones(W:nrow()), matrix.eye(W:ncol()), opts)
  return S, info
end

--- Scores e_k * z_l for every column k of E and l of Z, in vec order
--- (column (k-1) * ncol(Z) + l), as ranktest stacks them.
local function kron_scores(E, Z)
  local parts = {}
  for k = 1, E:ncol() do
    local ek = E:col(k)
    for l = 1, Z:ncol() do parts[#parts + 1] = Z:col(l):copy():mul(ek) end
  end
  return #parts == 1 and parts[1] or matrix.hcat(table.unpack(parts))
end

-- ---- Kleibergen-Paap rk statistic of full rank (ranktest's algorithm) ------------

--- rk statistic for H0: rank(Pi) = p - 1, where Pi (m x p) is the coefficient
--- matrix of Yp (n x p) on Zp (n x m), both with the exogenous regressors and
--- fixed effects partialled out (Kleibergen and Paap 2006, as -ranktest, full-).
--- kind = "wald" uses the unrestricted first-stage residuals in the covariance,
--- "lm" the variables themselves (the residuals under the null); iid = true uses
--- the homoskedastic covariance (then Wald is N times the Cragg-Donald
--- eigenvalue and LM is Anderson's N times the smallest squared canonical
--- correlation).  Also returns the canonical correlations.
local function rk_statistic(Yp, Zp, kind, iid, ctx)
  local n, p, m = Yp:nrow(), Yp:ncol(), Zp:ncol()
  local zz, yy = Zp:crossprod(), Yp:crossprod()
  local pihat = zz:solve(Zp:crossprod(Yp))
  local Rz, Ry = zz:chol(), yy:chol()                    -- upper: zz = Rz'Rz
  local iRy = Ry:inv()
  local that = Rz * pihat * iRy                          -- m x p (ranktest's 'that')
  local U, s, V = svd_full(that)
  if U == nil then return nil end
  local E = kind == "wald" and (Yp - Zp * pihat) or Yp
  -- vhat: covariance of vec(that), = (iRy' (x) iRz') Omega (...)'
  local A = kron(iRy:t(), Rz:inv():t())
  local vhat
  if iid then
    if kind == "wald" then
      vhat = A * kron(E:crossprod() / n, zz) * A:t()
    else
      vhat = matrix.eye(m * p) / n
    end
  else
    local Om = meat(kron_scores(E, Zp), ctx)
    vhat = A * Om * A:t()
  end
  -- the rank-(p-1) null: rotate onto the smallest singular direction
  local U2 = block(U, 1, m, p, m)
  local u22 = block(U, p, m, p, m)
  local aq = U2 * u22:inv() * sqrtm(u22 * u22:t())      -- m x (m - p + 1)
  local v22 = V:get(p, p)
  local bq = V:col(p):t() * (math.abs(v22) / v22)         -- 1 x p
  local B = kron(bq, aq:t())
  local lab = B * vec(that)
  local vlab = B * vhat * B:t()
  vlab = (vlab + vlab:t()) / 2
  local ok, x = pcall(vlab.solve, vlab, lab)
  if not ok then return nil, s end
  local rk = (lab:t() * x):get(1, 1)
  return rk, s
end

-- ---- checks ------------------------------------------------------------------

local function index_of(list)
  local t = {}
  for i, v in ipairs(list or {}) do t[v] = i end
  return t
end

local function check_lists(des)
  local exog = index_of(des.names)
  local endog, inst = des.endog_names, des.inst_names
  local inst_ix = index_of(inst)
  for _, name in ipairs(endog) do
    if exog[name] then
      raise(string.format("ivreg: '%s' is listed both as an exogenous regressor (before the first '|') and as " ..
        "endogenous (left of '~' in the IV part); list it only in the IV part", name))
    end
    if inst_ix[name] then
      raise(string.format("ivreg: '%s' is both endogenous and one of its own excluded instruments", name))
    end
  end
  for _, name in ipairs(inst) do
    if exog[name] then
      raise(string.format("ivreg: instrument '%s' is also an exogenous regressor; exogenous regressors are " ..
        "instruments already, so list only excluded instruments right of '~' in the IV part", name))
    end
  end
  if #inst < #endog then
    raise(string.format("ivreg: %d endogenous regressor%s (%s) but only %d excluded instrument%s (%s): the model " ..
      "is not identified; give at least as many excluded instruments as endogenous regressors",
      #endog, #endog == 1 and "" or "s", table.concat(endog, ", "), #inst, #inst == 1 and "" or "s",
      #inst == 0 and "none" or table.concat(inst, ", ")))
  end
end

-- ---- the estimator -------------------------------------------------------------

local function ftest(ssr_r, ssr_u, q, df2)
  local F = ((ssr_r - ssr_u) / q) / (ssr_u / df2)
  return { statistic = F, df1 = q, df2 = df2, pvalue = dist.pf(F, q, df2, true), kind = "F" }
end

local function chi2test(stat, df)
  return { statistic = stat, df1 = df, pvalue = df > 0 and dist.pchisq(stat, df, true) or 0 / 0, kind = "chi2" }
end

--- Number of distinct values of frame column name over the given rows.
local function count_distinct(d, name, rows)
  local col = d[name]
  local seen, count = {}, 0
  for _, r in ipairs(rows) do
    local v = type(col) == "table" and col[r] or col:get(r, 1)
    if not seen[v] then seen[v], count = true, count + 1 end
  end
  return count
end

--- The fit (the entry sp.ols dispatches to when the formula has an IV part).
function M.fit(d, formula, opts, des)
  if type(formula) ~= "string" then raise("ivreg: expected a formula string as argument 2") end
  opts = linear.check_options(opts, linear.ols_options, "ivreg")
  local compat = linear.check_compat(opts)
  local vc = linear.parse_vcov(opts.vcov, true)
  if opts.small ~= nil and type(opts.small) ~= "boolean" then
    raise("ivreg: small must be true or false, got " .. tostring(opts.small))
  end
  -- z tests and a chi2 Wald: plm, statsmodels' robust fits, ivregress without small
  local large = opts.small == false or compat == "plm" or (compat == "statsmodels" and vc.type ~= "iid")
  if opts.weights then
    raise("ivreg: weights are not supported for instrumental variables (yet); drop opts.weights")
  end
  if des == nil then des = core.design(d, formula, { extra = linear.extra_vars(d, vc, opts), threads = opts.threads }) end
  if not des.endog_names or #des.endog_names == 0 then
    raise("ivreg: the formula has no IV part; write 'y ~ exog | fe | endog ~ instruments' (or use sp.ols)")
  end
  check_lists(des)

  local n, k1_all = des.n, des.k
  local p, m = #des.endog_names, #des.inst_names
  local nfe = #des.fe
  local notes = {}
  for _, note in ipairs(des.notes or {}) do notes[#notes + 1] = note end

  -- Reference scales (raw column sums of squares) so that a variable absorbed
  -- by the fixed effects is recognised as collinear, as in sp.ols.
  local raw = hcat_list { des.X, des.endog, des.inst }
  local scale_all = linear.colsumsq(raw)

  local yraw = core.sumsq(des.y)[1]
  if des.intercept and nfe == 0 then
    linear.check_outcome("ivreg", des.yname, linear.sum_sq_centered(des.y), yraw, nil)
  end

  -- One workspace demeans y, X1, Y2 and Z2 together.
  local big = hcat_list { des.y, des.X, des.endog, des.inst }
  local absorb, fe_dof = nil, 0
  if nfe > 0 then
    absorb = core.absorb(des)
    fe_dof = absorb:dof()
    local info = absorb:demean(big, { tol = opts.tol, maxiter = opts.maxiter, threads = opts.threads,
      allow_nonconvergence = true })
    if info.warning then notes[#notes + 1] = info.warning end
  end
  local y = big:col(1):copy()
  if nfe > 0 then linear.check_outcome("ivreg", des.yname, core.sumsq(y)[1], yraw, "the fixed effects") end
  local X1 = k1_all > 0 and big:view(1, 2, n, k1_all):copy() or nil
  local Y2 = big:view(1, 2 + k1_all, n, p):copy()
  local Z2 = big:view(1, 2 + k1_all + p, n, m):copy()
  local scale_X1, scale_Y2, scale_Z2 = {}, {}, {}
  for j = 1, k1_all do scale_X1[j] = scale_all[j] end
  for j = 1, p do scale_Y2[j] = scale_all[k1_all + j] end
  for j = 1, m do scale_Z2[j] = scale_all[k1_all + p + j] end

  -- Exogenous regressors collinear among themselves (or absorbed) are dropped, as in sp.ols.
  local exog_names, dropped = {}, {}
  local X1k, scale_X1k = nil, {}
  if k1_all > 0 then
    local f1 = core.lsfit(X1, y, { scale = matrix(scale_X1), names = { table.unpack(des.names, 1, k1_all) },
      yname = des.yname, threads = opts.threads })
    for j, kept in ipairs(f1.keep) do
      if kept then
        exog_names[#exog_names + 1] = des.names[j]
        scale_X1k[#scale_X1k + 1] = scale_X1[j]
      else
        dropped[#dropped + 1] = des.names[j]
        notes[#notes + 1] = string.format("'%s' dropped: %s", des.names[j], (nfe > 0 and scale_X1[j] > 0)
          and "collinear with other regressors or absorbed by the fixed effects" or "collinear with other regressors")
      end
    end
    if f1.rank > 0 then X1k = linear.kept_columns(X1, f1.keep) end
  end
  local k1 = X1k and X1k:ncol() or 0

  -- Every excluded instrument must add something beyond the exogenous regressors.
  local Z = hcat_list { X1k, Z2 }
  local scale_Z = {}
  for _, s in ipairs(scale_X1k) do scale_Z[#scale_Z + 1] = s end
  for _, s in ipairs(scale_Z2) do scale_Z[#scale_Z + 1] = s end
  local L = Z:ncol()
  local zn = { table.unpack(exog_names) }
  for _, nm in ipairs(des.inst_names) do zn[#zn + 1] = nm end
  local fz = core.lsfit(Z, Y2:col(1):copy(), { scale = matrix(scale_Z), names = zn, yname = des.endog_names[1],
    threads = opts.threads })
  for j = k1 + 1, L do
    if not fz.keep[j] then
      local nm = des.inst_names[j - k1]
      raise(string.format("ivreg: excluded instrument '%s' is collinear with the exogenous regressors%s%s; " ..
        "it carries no information beyond them (exogenous: %s)", nm, m > 1 and " and the other instruments" or "",
        nfe > 0 and " (or absorbed by the fixed effects)" or "",
        #exog_names > 0 and table.concat(exog_names, ", ") or "none"))
    end
  end
  for j = 1, k1 do
    if not fz.keep[j] then raise("ivreg: internal error: exogenous column dropped in the first stage") end
  end
  if n <= L + fe_dof then
    raise(string.format("ivreg: %d observations are too few for %d instruments and %d absorbed fixed-effect parameters",
      n, L, fe_dof))
  end

  -- ---- first stage ----------------------------------------------------------------
  local ctx = linear.vcov_context(d, des, compat, vc, absorb, fe_dof, nil)
  local z_names = {}
  for _, nm in ipairs(exog_names) do z_names[#z_names + 1] = nm end
  for _, nm in ipairs(des.inst_names) do z_names[#z_names + 1] = nm end
  local df_fs = n - L - fe_dof
  local first_stage, fitted_cols, resid_cols = {}, {}, {}
  local raw_endog = des.endog
  for j = 1, p do
    local yj = Y2:col(j):copy()
    local fj = core.lsfit(Z, yj, { scale = matrix(scale_Z), threads = opts.threads })
    resid_cols[j] = fj.resid
    fitted_cols[j] = yj - fj.resid
    local ssr_u = fj.ssr
    local ssr_r
    if k1 > 0 then ssr_r = core.lsfit(X1k, yj).ssr else ssr_r = yj:crossprod():get(1, 1) end
    local sigma2 = ssr_u / df_fs
    local Vc = fj.bread * sigma2
    local Vfs, vinfo = Vc, nil
    if vc.type ~= "iid" then Vfs, vinfo = linear.covariance(Z, fj.resid, fj.bread, ctx) end
    local bt, Vt = fj.b:totable(), linear.totable(Vfs)
    local fs = { endog = des.endog_names[j], names = z_names, coef = {}, se = {}, tstat = {}, pvalue = {},
      vcov = {}, nobs = n, df_resid = df_fs, ssr = ssr_u, sigma = math.sqrt(sigma2) }
    local df_t = linear.t_df(vc, compat, vinfo, df_fs)
    local normal = compat == "plm" or (compat == "statsmodels" and vc.type ~= "iid")
    for a, nm in ipairs(z_names) do
      local se = math.sqrt(Vt[a][a])
      local t = bt[a] / se
      fs.coef[nm], fs.se[nm], fs.tstat[nm] = bt[a], se, t
      fs.pvalue[nm] = normal and 2 * dist.pnorm(math.abs(t), true) or 2 * dist.pt(math.abs(t), df_t, true)
      fs.vcov[nm] = {}
      for c, nm2 in ipairs(z_names) do fs.vcov[nm][nm2] = Vt[a][c] end
    end
    -- R2 against the raw endogenous variable (overall), within R2 under fixed effects
    local tss = linear.sum_sq_centered(raw_endog:col(j):copy())
    fs.r2 = 1 - ssr_u / tss
    fs.adj_r2 = 1 - (1 - fs.r2) * (n - 1) / df_fs
    if nfe > 0 then
      fs.r2_within = 1 - ssr_u / yj:crossprod():get(1, 1)
    end
    fs.partial_r2 = (ssr_r - ssr_u) / ssr_r
    fs.excluded_instruments_F = ftest(ssr_r, ssr_u, m, df_fs)
    if vc.type ~= "iid" then
      local idx = {}
      for a = k1 + 1, L do idx[#idx + 1] = a end
      local Vw, winfo, wcompat = Vt, vinfo, compat
      if vc.type == "cluster" and compat ~= "stata" then
        -- ivreg2's clustered first-stage F carries G/(G-1) (N-1)/(N-L) and
        -- F(m, G - 1) whatever the preset of the fit
        wcompat = "stata"
        local Vs
        Vs, winfo = linear.covariance(Z, fj.resid, fj.bread, setmetatable({ compat = wcompat }, { __index = ctx }))
        Vw = linear.totable(Vs)
      end
      local wt = linear.joint_test(bt, Vw, idx, linear.t_df(vc, wcompat, winfo, df_fs))
      if wt then wt.kind = "robust Wald F" end
      fs.excluded_instruments_F_robust = wt
    end
    first_stage[j] = fs
  end
  local Yhat = hcat_list(fitted_cols)
  local Vres = hcat_list(resid_cols)

  -- ---- second stage -------------------------------------------------------------------
  local Xhat = hcat_list { X1k, Yhat }
  local X = hcat_list { X1k, Y2 }
  local scale_X = {}
  for _, s in ipairs(scale_X1k) do scale_X[#scale_X + 1] = s end
  for _, s in ipairs(scale_Y2) do scale_X[#scale_X + 1] = s end
  local xn = { table.unpack(exog_names) }
  for _, nm in ipairs(des.endog_names) do xn[#xn + 1] = nm end
  local f2 = core.lsfit(Xhat, y, { scale = matrix(scale_X), names = xn, yname = des.yname, threads = opts.threads })
  for j = 1, k1 + p do
    if not f2.keep[j] then
      local nm = j <= k1 and exog_names[j] or des.endog_names[j - k1]
      raise(string.format("ivreg: '%s' is not identified: its first-stage fitted values are collinear with the " ..
        "other regressors (the excluded instruments do not move it)", nm))
    end
  end
  local K = k1 + p
  local b = f2.b
  local e = y - X * b
  local ssr = e:crossprod():get(1, 1)
  local df_resid = n - K - fe_dof
  if df_resid <= 0 then
    raise(string.format("ivreg: %d observations are too few for %d coefficients and %d absorbed fixed-effect parameters",
      n, K, fe_dof))
  end
  -- small = false: ivregress's large-sample V (the first stage keeps its F tests)
  ctx.small = opts.small
  local V, vinfo, vlabel = linear.covariance(Xhat, e, f2.bread, ctx)
  local names = {}
  for _, nm in ipairs(exog_names) do names[#names + 1] = nm end
  for _, nm in ipairs(des.endog_names) do names[#names + 1] = nm end
  local bt, Vt = b:totable(), linear.totable(V)

  -- ---- statistics ------------------------------------------------------------------------
  local has_const = des.intercept and nfe == 0
  local stats = { nobs = n, ssr = ssr, df_resid = df_resid, rank = K, sigma = math.sqrt(ssr / df_resid) }
  local tss = linear.sum_sq_centered(des.y)
  if has_const or nfe > 0 then
    stats.r2 = 1 - ssr / tss
  else
    stats.r2 = 1 - ssr / des.y:crossprod():get(1, 1)     -- uncentered without an intercept, as R
  end
  stats.adj_r2 = 1 - (1 - stats.r2) * (n - ((has_const or nfe > 0) and 1 or 0)) / df_resid
  if nfe > 0 then
    stats.tss_within = y:crossprod():get(1, 1)
    stats.r2_within = 1 - ssr / stats.tss_within
    stats.adj_r2_within = 1 - (1 - stats.r2_within) * (n - 1) / df_resid
    stats.fe_dof = fe_dof
  end
  -- plm's R2 for IV models: the squared correlation of y and X b (transformed);
  -- with compat = "plm" it is the headline R2 (within R2 under fixed effects).
  stats.r2_cor = linear.cor2(y, y - e)
  stats.adj_r2_cor = 1 - (1 - stats.r2_cor) * (n - 1) / df_resid
  if compat == "plm" then
    if nfe > 0 then
      stats.r2_within, stats.adj_r2_within = stats.r2_cor, stats.adj_r2_cor
    else
      stats.r2, stats.adj_r2 = stats.r2_cor, stats.adj_r2_cor
    end
  end
  local df_t = linear.t_df(vc, compat, vinfo, df_resid)
  stats.df_t = df_t
  stats.vcov_dof_factor = vinfo.dof_factor
  if vc.type == "cluster" then stats.n_clusters = linear.n_clusters(vinfo) end
  notes[#notes + 1] = linear.few_clusters_note(vc, vinfo)

  -- Joint test of the slopes: AER (sandwich) reports the classic Wald F whatever
  -- the vcov, plm a chi2 Wald with its vcov, the others an F with the vcov used.
  local slope_idx = {}
  for i, nm in ipairs(names) do if nm ~= "(Intercept)" then slope_idx[#slope_idx + 1] = i end end
  if compat == "plm" or opts.small == false then
    stats.wald = linear.joint_test(bt, Vt, slope_idx, df_resid, true)
  elseif compat == "sandwich" or vc.type == "iid" then
    local Vc = linear.totable(f2.bread * (ssr / df_resid))
    stats.wald = linear.joint_test(bt, Vc, slope_idx, df_resid)
  else
    stats.wald = linear.joint_test(bt, Vt, slope_idx, linear.wald_df2(vc, vinfo, df_resid))
  end
  stats.F = stats.wald
  stats.first_stage = first_stage

  -- ---- diagnostics ------------------------------------------------------------------------
  local diag = {}
  if p == 1 then
    diag.weak_instruments_first_stage_F = first_stage[1].excluded_instruments_F
  else
    diag.weak_instruments_first_stage_F = {}
    for j = 1, p do
      local t = {}
      for key, v in pairs(first_stage[j].excluded_instruments_F) do t[key] = v end
      t.endog = des.endog_names[j]
      diag.weak_instruments_first_stage_F[j] = t
    end
  end
  -- Cragg-Donald and Kleibergen-Paap on the partialled endogenous and excluded instruments.
  local Yp, Zp = partial_out(Y2, X1k), partial_out(Z2, X1k)
  -- ivreg2's N - iv1_ct - sdofminus; ivreghdfe counts the absorbed parameters
  -- in sdofminus, but only those not nested in a cluster (and at least 1).
  local sdof = fe_dof
  if nfe > 0 and vc.type == "cluster" then sdof = math.max(1, ctx.fe_dof_nonnested(vc.cluster)) end
  local n_df = n - L - sdof
  local cd_rk, cc = rk_statistic(Yp, Zp, "wald", true, ctx)
  if cc then
    local r2min = cc[p] ^ 2
    local cd = r2min / (1 - r2min)
    local F = cd * n_df / m
    diag.cragg_donald_F = { statistic = F, df1 = m, df2 = n_df, pvalue = dist.pf(F, m, n_df, true), kind = "F",
      eigenvalue = cd, canonical_correlations = cc }
    diag.anderson_LM = nil
  end
  local _ = cd_rk
  local iid = vc.type == "iid"
  local rkw = rk_statistic(Yp, Zp, "wald", iid, ctx)
  local rkl = rk_statistic(Yp, Zp, "lm", iid, ctx)
  local G
  if vc.type == "cluster" then
    G = math.huge
    for _, g in ipairs(vinfo.ngroups) do G = math.min(G, g) end
  end
  if rkw then
    local F
    if G then
      F = rkw / (n - 1) * n_df * (G - 1) / G / m
    else
      F = rkw / n * n_df / m
    end
    local df2 = G and (G - 1) or n_df
    diag.kp_rk_wald_F = { statistic = F, df1 = m, df2 = df2, pvalue = dist.pf(F, m, df2, true), kind = "F",
      chi2 = rkw }
  end
  if rkl then
    diag.kp_rk_LM = chi2test(rkl, m - p + 1)
  end
  -- Overidentification: Sargan (n R2 of the residuals on all instruments) always;
  -- Hansen's J from two-step efficient GMM when the vcov is not iid (ivreg2).
  if m > p then
    local ssr_aux = core.lsfit(Z, e:copy()).ssr
    diag.sargan = chi2test(n * (1 - ssr_aux / ssr), m - p)
    if not iid then
      local S = meat(kron_scores(e, Z), ctx)
      local ok, Sinv = pcall(S.inv, S)
      if ok then
        local ZX, Zy = Z:crossprod(X), Z:crossprod(y)
        local A = ZX:t() * Sinv
        local bg = (A * ZX):solve(A * Zy)
        local g = Z:crossprod(y - X * bg)
        local J = (g:t() * Sinv * g):get(1, 1)
        diag.hansen_J = chi2test(J, m - p)
      end
    end
  end
  -- Wu-Hausman (AER): F test of the first-stage fitted values added to OLS of y on X.
  do
    local fr = core.lsfit(X, y:copy())
    local fu = core.lsfit(hcat_list { X, Vres }, y:copy())
    diag.wu_hausman = ftest(fr.ssr, fu.ssr, p, n - K - p - fe_dof)
  end
  stats.diagnostics = diag

  -- ---- the fit ------------------------------------------------------------------------------
  local pinfo = util.panel_of(d)
  if pinfo then
    -- entities and periods present in the estimation sample (lags drop periods)
    stats.n_entities = count_distinct(d, pinfo.entity, des.rows)
    stats.n_periods = pinfo.time and count_distinct(d, pinfo.time, des.rows) or nil
  end
  local keep = {}
  for i = 1, K do keep[i] = true end
  local fe_info = {}
  for j, fe in ipairs(des.fe) do fe_info[j] = { name = fe.name, nlevels = fe.nlevels } end
  local fit = linear.assemble {
    names = names, keep = keep, b = bt, V = V, nobs = n, df_resid = df_t,
    dist = large and "normal" or "t",
    stats = stats, estimator = nfe > 0 and "iv_within" or "iv", label = nfe > 0 and "2SLS with fixed effects" or "2SLS",
    formula = formula, vcov_label = vlabel, vcov_type = vc.type, fe = fe_info, notes = notes, dropped = dropped,
    compat = compat, resid = e, private = { design = des, data = d, absorb = absorb },
  }
  fit.endog_names = des.endog_names
  fit.inst_names = des.inst_names
  -- fitted = y - e in levels (fixed effects included), e with the actual regressors
  fit.fitted_values = des.y - e
  fit.fixef_values = function(self) return M.fixef(self) end
  fit.predict_fn = M.predict
  if vc.wild then require("spillover.wildboot").attach(fit, vc.wild) end
  return fit
end

--- Fixed-effect coefficients {fe name -> {level -> value}} from y - X1 b1 - Y2 b2.
function M.fixef(fit)
  local p = fit.private
  if not p.absorb then raise("fixef: the model has no fixed effects") end
  local des = p.design
  local r = des.y - des.endog * linear.coef_vector(fit, des.endog_names)
  if des.k > 0 then r = r - des.X * linear.coef_vector(fit, des.names) end
  return linear.fixef_by_level(p.data, des, p.absorb:fixef(r))
end

--- Prediction on new data: the structural equation X1 b1 + Y2 b2 (+ fixed
--- effects) evaluated at the observed endogenous regressors, through the OLS
--- predictor (which reads the formula without its IV part).
function M.predict(fit, newdata, opts)
  local proxy = {
    formula = fit.formula, private = { design = fit.private.design }, names = fit.names, b = fit.b,
    fe = fit.fe,
    fixef = function() return fit:fixef() end,
  }
  return linear.predict_linear(proxy, newdata, opts)
end

--- iv.ivreg(d, formula [, opts]): 2SLS, for direct use.
function M.ivreg(d, formula, opts)
  return M.fit(d, formula, opts, nil)
end

-- ---- registration (spillover.registry) ----------------------------------------------------

local registry = require "spillover.registry"
local IV_MODEL_KEYS = { "vcov", "compat" }
-- Through sp.ols, which sends a formula with an IV part here.  2SLS fits have
-- no refit (bootstrap) and no prediction matrix.
local function scenario_iv(d, model, options)
  return linear.ols(d, model.formula, registry.merged_options(model, options, IV_MODEL_KEYS))
end
for _, name in ipairs({ "ivreg", "iv" }) do
  registry.register {
    name = name, fit = scenario_iv, model_keys = IV_MODEL_KEYS, vcov = linear.OLS_KINDS,
    options = { tol = { type = "number", min = 0 }, maxiter = { type = "integer", min = 1 },
      threads = { type = "integer", min = 1, max = 2 }, small = { type = "boolean" } },
    capabilities = { predict = true, predict_matrix = false, refit = false, draw = true, spatial = false },
  }
end

return M
