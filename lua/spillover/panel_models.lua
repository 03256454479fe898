-- spillover.panel_models: random effects (GLS by quasi-demeaning), between and
-- first-difference estimators, computed the way plm 2.6 computes them, so that
-- numbers from R papers can be reproduced exactly (balanced and unbalanced).
--
--   sp.re(d, formula, {method =, effect =, vcov =, compat =})
--   sp.between(d, formula, {vcov =, compat =})
--   sp.fd(d, formula, {vcov =, compat =})
--
-- Everything is built from the public primitives (sp.design, sp.lsfit) and the
-- shared pipeline of spillover.linear (covariance, joint_test, assemble), so
-- the fits satisfy the fit protocol and take every vcov option of sp.ols.
--
-- References: Swamy & Arora (1972), Amemiya (1971), Wallace & Hussain (1969),
-- Nerlove (1971); Baltagi (2021), Econometric Analysis of Panel Data, ch. 2-3
-- and 9; plm's ercomp() (Croissant & Millo 2008, 2018).
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local linear = require "spillover.linear"

local M = {}

-- ---- column arrays ---------------------------------------------------------------
-- The transformations work on plain Lua arrays (one per column): they are
-- group sums and scalings over n rows, cheap next to the least-squares fits,
-- which run in C through sp.lsfit.

local function column(m, j)
  local t = {}
  for i = 1, m:nrow() do t[i] = m:get(i, j) end
  return t
end

local function tomatrix(cols, n)
  local m = core.matrix(n, #cols)
  for j, c in ipairs(cols) do
    for i = 1, n do m:set(i, j, c[i]) end
  end
  return m
end

local function vector(t, n)
  local m = core.matrix(n, 1)
  for i = 1, n do m:set(i, 1, t[i]) end
  return m
end

--- Per-group means of v (codes g in 1..G, counts cnt).
local function group_means(v, g, G, cnt)
  local s = {}
  for c = 1, G do s[c] = 0 end
  for i = 1, #g do s[g[i]] = s[g[i]] + v[i] end
  for c = 1, G do s[c] = s[c] / cnt[c] end
  return s
end

local function mean(v)
  local s = 0
  for i = 1, #v do s = s + v[i] end
  return s / #v
end

local function sumsq(v)
  local s = 0
  for i = 1, #v do s = s + v[i] * v[i] end
  return s
end

local function trace_prod(A, B)
  -- tr(A B) for square matrices
  local s = 0
  for i = 1, A:nrow() do
    for j = 1, A:ncol() do s = s + A:get(i, j) * B:get(j, i) end
  end
  return s
end

-- ---- preparation -----------------------------------------------------------------

local function dedupe(list)
  local seen, out = {}, {}
  for _, v in ipairs(list) do
    if not seen[v] then seen[v], out[#out + 1] = true, v end
  end
  return out
end

-- The options each estimator reads (weights only to refuse them clearly).
local option_names = {
  re = { "method", "effect", "vcov", "compat", "weights" },
  between = { "effect", "vcov", "compat", "weights" },
  fd = { "vcov", "compat", "weights", "across_gaps" },
}

--- Build the design and the panel structure of the rows used.
--  Returns P = {des, n, k, names, y, X (columns), ic (intercept column or nil),
--  id = {g, G, cnt}, ts = {g, G, cnt}, balanced, entity, time, compat, vc}.
local function prepare(d, formula, opts, who)
  if type(formula) ~= "string" then raise(who .. ": expected a formula string as argument 2") end
  opts = linear.check_options(opts, option_names[who], who)
  local info = util.panel_of(d)
  if info == nil then
    raise(who .. ": the frame has no panel index: call d:panel{entity=, time=} first")
  end
  if opts.weights ~= nil then raise(who .. ": weights are not supported by this estimator") end
  local compat = linear.check_compat({ compat = opts.compat or "plm" })
  local vc = linear.parse_vcov(opts.vcov)
  local extra = { info.entity, info.time }
  for _, v in ipairs(linear.extra_vars(d, vc, opts)) do extra[#extra + 1] = v end
  local des = core.design(d, formula, { extra = dedupe(extra) })
  if #des.fe > 0 then
    raise(string.format("%s: the formula has a fixed-effects part ('| %s'); %s", who, des.fe[1].name,
      who == "re" and "random effects are chosen with opts.effect" or "this estimator does not absorb fixed effects"))
  end
  if des.endog_names and #des.endog_names > 0 then
    raise(who .. ": instrumental variables are not supported by this estimator")
  end
  local P = { des = des, n = des.n, k = des.k, names = des.names, compat = compat, vc = vc,
    entity = info.entity, time = info.time, data = d, formula = formula }
  P.y = column(des.y, 1)
  P.X = {}
  for j = 1, des.k do
    P.X[j] = column(des.X, j)
    if des.names[j] == "(Intercept)" then P.ic = j end
  end
  if P.ic then
    local my = mean(P.y)
    local left = 0
    for i = 1, #P.y do left = left + (P.y[i] - my) ^ 2 end
    linear.check_outcome(who, des.yname, left, sumsq(P.y), nil)
  end
  local function dim(name)
    local g, G = des:codes(name)
    local cnt = {}
    for c = 1, G do cnt[c] = 0 end
    for i = 1, #g do cnt[g[i]] = cnt[g[i]] + 1 end
    return { g = g, G = G, cnt = cnt, name = name }
  end
  P.id, P.ts = dim(info.entity), dim(info.time)
  P.balanced = P.n == P.id.G * P.ts.G
  local tmin, tmax = math.huge, 0
  for c = 1, P.id.G do tmin, tmax = math.min(tmin, P.id.cnt[c]), math.max(tmax, P.id.cnt[c]) end
  P.Tmin, P.Tmax = tmin, tmax
  return P, opts
end

-- ---- the shared OLS step ------------------------------------------------------------

--- Least squares of y on X (column arrays, names) over the rows of the
--  estimation sample, with the covariance of opts.vcov; codes(name) gives the
--  group codes of a variable over those rows (for clusters), tcodes() the
--  periods (Driscoll-Kraay).
local function ols_step(P, who, X, y, names, scale, codes, tcodes)
  local n = #y
  local k = #X
  if k == 0 then raise(who .. ": the model has no regressors") end
  local Xm, ym = tomatrix(X, n), vector(y, n)
  local f = core.lsfit(Xm, ym, { scale = scale and core.matrix(scale) or nil, names = names, yname = P.des.yname })
  if f.rank == 0 then
    raise(who .. ": every regressor is collinear (" .. table.concat(names, ", ") .. ")")
  end
  if n <= f.rank then
    raise(string.format("%s: %d observations are too few for %d coefficients", who, n, f.rank))
  end
  local Xk = linear.kept_columns(Xm, f.keep)
  local ctx = { compat = P.compat, vcov = P.vc, fe_dof = 0, codes = codes, time_codes = tcodes, time_name = P.time }
  local V, vinfo, vlabel = linear.covariance(Xk, f.resid, f.bread, ctx)
  local b, kept_names, fitted = {}, {}, {}
  local notes, dropped = {}, {}
  -- the transformed outcome fitted exactly: no residual variance to test with
  local perfect = linear.perfect_fit(f.ssr, sumsq(y), true)
  if perfect then
    V = linear.nan_matrix(f.rank)
    notes[#notes + 1] = linear.PERFECT_FIT_NOTE
  end
  for j, kept in ipairs(f.keep) do
    if kept then
      b[#b + 1] = f.b:get(j, 1)
      kept_names[#kept_names + 1] = names[j]
    else
      dropped[#dropped + 1] = names[j]
      notes[#notes + 1] = string.format("'%s' dropped: collinear with other regressors after the %s transformation",
        names[j], who)
    end
  end
  for i = 1, n do fitted[i] = y[i] - f.resid:get(i, 1) end
  return { f = f, b = b, names = kept_names, V = V, vinfo = vinfo, vlabel = vlabel, n = n, fitted = fitted,
    notes = notes, dropped = dropped, perfect = perfect }
end

--- Statistics and the fit object shared by the three estimators.
local function finish(P, o, spec)
  local n, f = o.n, o.f
  local df_resid = n - f.rank
  local stats = spec.stats or {}
  stats.nobs, stats.ssr, stats.df_resid, stats.rank = n, f.ssr, df_resid, f.rank
  stats.sigma = math.sqrt(f.ssr / df_resid)
  -- plm's default R2 "cor": cor(y, fitted)^2
  stats.r2 = linear.cor2(core.matrix(spec.y), core.matrix(o.fitted))
  stats.adj_r2 = 1 - (1 - stats.r2) * (n - 1) / df_resid
  stats.n_entities, stats.n_periods = P.id.G, P.ts.G
  stats.balanced, stats.Ti_min, stats.Ti_max = P.balanced, P.Tmin, P.Tmax
  local Vt = linear.totable(o.V)
  local slopes = {}
  for i, nm in ipairs(o.names) do if nm ~= "(Intercept)" then slopes[#slopes + 1] = i end end
  if o.perfect then
    stats.F = nil
  elseif spec.chi2 then
    stats.F = linear.joint_test(o.b, Vt, slopes, nil, true)
  else
    -- plm's pwaldtest: F(q, df_resid), or F(q, G - 1) with a clustered covariance
    local df2 = df_resid
    if P.vc.type == "cluster" then
      df2 = math.huge
      for _, g in ipairs(o.vinfo.ngroups) do df2 = math.min(df2, g - 1) end
    end
    stats.F = linear.joint_test(o.b, Vt, slopes, df2)
  end
  if P.vc.type == "cluster" then stats.n_clusters = linear.n_clusters(o.vinfo) end
  local notes = {}
  for _, s in ipairs(P.des.notes or {}) do notes[#notes + 1] = s end
  for _, s in ipairs(o.notes) do notes[#notes + 1] = s end
  for _, s in ipairs(spec.notes or {}) do notes[#notes + 1] = s end
  local bt = {}
  for j = 1, #f.keep do bt[j] = f.b:get(j, 1) end
  local fit = linear.assemble {
    names = spec.names, keep = f.keep, b = bt, V = o.V, nobs = n, df_resid = df_resid,
    dist = spec.chi2 and "normal" or "t", stats = stats, estimator = spec.estimator, label = spec.label,
    formula = P.formula, vcov_label = o.vlabel, vcov_type = P.vc.type, fe = {}, notes = notes,
    dropped = o.dropped, compat = P.compat, resid = f.resid, fitted = vector(o.fitted, n),
    private = { design = P.des, data = P.data },
  }
  return fit
end

--- Group codes of a design variable over the rows listed in rows (nil = all).
local function codes_fn(P, rows)
  return function(name)
    if rows == nil then return core.codes(P.des, name) end
    local g = P.des:codes(name)
    local sub = {}
    for i, r in ipairs(rows) do sub[i] = g[r] end
    return core.codes(sub)
  end
end

-- ---- random effects: variance components (plm::ercomp) ---------------------------------

local methods = { swar = true, amemiya = true, walhus = true, nerlove = true }
local effects = { individual = true, time = true, twoways = true }

--- The within transformation for the effect (one-way: group demeaning; two-way
--  balanced: v - mean_i - mean_t + mean).
local function within(P, dims, v)
  local d1 = dims[1]
  local m1 = group_means(v, d1.g, d1.G, d1.cnt)
  local out = {}
  if #dims == 1 then
    for i = 1, #v do out[i] = v[i] - m1[d1.g[i]] end
    return out
  end
  local d2 = dims[2]
  local m2 = group_means(v, d2.g, d2.G, d2.cnt)
  local m = mean(v)
  for i = 1, #v do out[i] = v[i] - m1[d1.g[i]] - m2[d2.g[i]] + m end
  return out
end

--- Slope columns (all but the intercept) and their names.
local function slopes_of(P)
  local cols, names = {}, {}
  for j = 1, P.k do
    if j ~= P.ic then cols[#cols + 1], names[#names + 1] = P.X[j], P.names[j] end
  end
  return cols, names
end

--- Within fit: b over the slopes, kept flags, rank, ssr and the residuals at
--  the pooling level y - c - X b with c = mean(y - X b) (plm's within intercept).
local function within_fit(P, dims)
  local cols, names = slopes_of(P)
  local n = P.n
  local wy = within(P, dims, P.y)
  local res = { names = names, cols = cols, keep = {}, b = {}, rank = 0 }
  local wcols = {}
  for j, c in ipairs(cols) do wcols[j] = within(P, dims, c) end
  res.wcols = wcols
  if #cols == 0 then
    res.ssr = sumsq(wy)
  else
    local scale = {}
    for j, c in ipairs(cols) do scale[j] = sumsq(c) end
    local f = core.lsfit(tomatrix(wcols, n), vector(wy, n), { scale = core.matrix(scale) })
    res.ssr, res.rank = f.ssr, f.rank
    for j = 1, #cols do
      res.keep[j] = f.keep[j]
      res.b[j] = f.keep[j] and f.b:get(j, 1) or 0
    end
  end
  local e = {}
  for i = 1, n do
    local s = P.y[i]
    for j, c in ipairs(cols) do s = s - c[i] * res.b[j] end
    e[i] = s
  end
  local c = mean(e)
  for i = 1, n do e[i] = e[i] - c end
  res.e = e
  return res
end

--- plm's "Between" model for one dimension: OLS of the group means, each
--  group weighted by its number of rows (the means repeated on every row).
--  Returns the quadratic form sum_i T_i (ybar_i - zbar_i b)^2 and the slope count.
--  unweighted: Stata's xtreg, be instead (one row per group, each weighing
--  1), returning sum_i (ybar_i - zbar_i b)^2; the same fit on a balanced panel.
local function between_fit(P, dim, unweighted)
  local G, g, cnt = dim.G, dim.g, dim.cnt
  local cols, ymean = {}, group_means(P.y, g, G, cnt)
  for j = 1, P.k do cols[j] = group_means(P.X[j], g, G, cnt) end
  local w = {}
  for c = 1, G do w[c] = unweighted and 1 or cnt[c] end
  local f = core.lsfit(tomatrix(cols, G), vector(ymean, G), { weights = vector(w, G) })
  local q = 0
  for c = 1, G do
    local r = ymean[c]
    for j = 1, P.k do if f.keep[j] then r = r - cols[j][c] * f.b:get(j, 1) end end
    q = q + w[c] * r * r
  end
  local ks = f.rank - ((P.ic and f.keep[P.ic]) and 1 or 0)
  return q, ks, f
end

--- Quadratic form of Between(e) for one dimension: sum_i T_i ebar_i^2.
local function between_quad(e, dim)
  local m = group_means(e, dim.g, dim.G, dim.cnt)
  local q = 0
  for c = 1, dim.G do q = q + dim.cnt[c] * m[c] * m[c] end
  return q
end

--- Group sums of the columns of X as a G x k matrix.
local function group_sum_matrix(X, dim, scale_by)
  local S = core.matrix(dim.G, #X)
  for j, c in ipairs(X) do
    local s = {}
    for a = 1, dim.G do s[a] = 0 end
    for i = 1, #c do s[dim.g[i]] = s[dim.g[i]] + c[i] end
    for a = 1, dim.G do
      S:set(a, j, scale_by and s[a] / math.sqrt(dim.cnt[a]) or s[a])
    end
  end
  return S
end

--- sigma2 = {idios, id, time} and the theta of each row, as plm::ercomp.
local function ercomp(P, method, effect)
  local n = P.n
  local twoways = effect == "twoways"
  local dims = twoways and { P.id, P.ts } or { effect == "time" and P.ts or P.id }
  local one = dims[1]
  local K = P.k - 1
  local NTS = twoways and (P.id.G + P.ts.G - 1) or one.G
  local s2 = {}
  local notes = {}
  if method == "nerlove" then
    local wf = within_fit(P, dims)
    s2.idios = wf.ssr / n
    -- fixed effects demeaned (plm's fixef type "dmean"), from e = y - c - X b
    local function fe_var(dim)
      local m = group_means(wf.e, dim.g, dim.G, dim.cnt)
      local wm = 0
      for a = 1, dim.G do wm = wm + m[a] * dim.cnt[a] end
      wm = wm / n
      local s = 0
      if P.balanced then
        for a = 1, dim.G do s = s + (m[a] - wm) ^ 2 end
        return s / (dim.G - 1)
      end
      for a = 1, dim.G do s = s + (m[a] - wm) ^ 2 * dim.cnt[a] / n end
      return s * dim.G / (dim.G - 1)
    end
    if effect ~= "time" then s2.id = fe_var(P.id) end
    if effect ~= "individual" then s2.time = fe_var(P.ts) end
  else
    -- The quadratic forms q and the matrix Mq of their expectations:
    -- q = Mq (sigma2_nu, sigma2_eta, sigma2_mu)'.
    local q, Mq = { 0, 0, 0 }, { { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 } }
    local rows = twoways and { 1, 2, 3 } or (effect == "time" and { 1, 3 } or { 1, 2 })
    local bydim = { [2] = P.id, [3] = P.ts }
    local general = not P.balanced    -- plm's dfcor = 3 (unbiased, trace formulas)
    -- compat = "stata": xtreg, re's Swamy-Arora for one-way effects (Stata
    -- has no two-way random effects); it equals plm's on a balanced panel
    local stata_sa = P.compat == "stata" and not twoways
    if method == "swar" then
      local wf = within_fit(P, dims)
      q[1] = wf.ssr
      local KW = wf.rank
      Mq[1][1] = n - NTS - KW
      for _, r in ipairs(rows) do
        if r > 1 then
          local dim = bydim[r]
          if P.k >= dim.G then
            raise(string.format("re: Swamy-Arora is not estimable: %d coefficients (incl. intercept) but only %d %s in the " ..
              "between regression; use method = \"amemiya\" or \"walhus\"", P.k, dim.G,
              r == 2 and "entities" or "periods"))
          end
          local qb, ks, bf = between_fit(P, dim, stata_sa)
          q[r] = qb
          if stata_sa then
            -- xtreg, re: s2_u = SSR_b/(G - k) - s2_e/Tbar, Tbar the harmonic
            -- mean of the T_i, i.e. q = (G - k) s2_u + (G - k)/Tbar s2_e
            local inv = 0
            for a = 1, dim.G do inv = inv + 1 / dim.cnt[a] end
            Mq[r][r] = dim.G - ks - 1
            Mq[r][1] = Mq[r][r] * inv / dim.G
          elseif general then
            -- M[id,nu] = N - K - 1, M[id,eta] = O - tr((ZB'ZB)^-1 ZS'Z)
            local Zk = {}
            for j = 1, P.k do if bf.keep[j] then Zk[#Zk + 1] = P.X[j] end end
            local SS = group_sum_matrix(Zk, dim):crossprod()
            local SB = group_sum_matrix(Zk, dim, true):crossprod()
            Mq[r][1] = dim.G - K - 1
            Mq[r][r] = n - trace_prod(SB:inv(), SS)
          else
            Mq[r][1] = dim.G - ks - 1
            Mq[r][r] = (r == 2 and P.ts.G or P.id.G) * Mq[r][1]
          end
        end
      end
    elseif method == "amemiya" then
      -- A regressor without within variation (time-invariant) is dropped
      -- from the within fit: its part stays in the residuals' entity means,
      -- which the individual component absorbs (plm does the same).
      local wf = within_fit(P, dims)
      local kcols, kw = {}, {}
      for j = 1, #wf.cols do
        if wf.keep[j] then kcols[#kcols + 1], kw[#kw + 1] = wf.cols[j], wf.wcols[j] end
      end
      q[1] = wf.ssr
      for _, r in ipairs(rows) do if r > 1 then q[r] = between_quad(wf.e, bydim[r]) end end
      if general then
        Mq[1][1] = n - NTS - wf.rank
        local CPXM = #kw > 0 and tomatrix(kw, n):crossprod():inv() or nil
        for _, r in ipairs(rows) do
          if r > 1 then
            local dim = bydim[r]
            local tr = 0
            if CPXM then
              -- centred group means repeated on every row
              local Bc = {}
              for j, c in ipairs(kcols) do
                local m = group_means(c, dim.g, dim.G, dim.cnt)
                local mu = mean(c)
                local v = {}
                for i = 1, n do v[i] = m[dim.g[i]] - mu end
                Bc[j] = v
              end
              tr = trace_prod(CPXM, tomatrix(Bc, n):crossprod())
            end
            local s2c = 0
            for a = 1, dim.G do s2c = s2c + dim.cnt[a] ^ 2 end
            Mq[r][1] = dim.G - 1 + tr
            Mq[r][r] = n - s2c / n
          end
        end
      else
        Mq[1][1] = n - NTS
        for _, r in ipairs(rows) do
          if r > 1 then
            Mq[r][1] = bydim[r].G
            Mq[r][r] = (r == 2 and P.ts.G or P.id.G) * bydim[r].G
          end
        end
      end
    else -- walhus: pooled OLS residuals
      local pf = core.lsfit(tomatrix(P.X, n), vector(P.y, n))
      local e = column(pf.resid, 1)
      q[1] = sumsq(within(P, dims, e))
      for _, r in ipairs(rows) do if r > 1 then q[r] = between_quad(e, bydim[r]) end end
      if general then
        local Z = {}
        for j = 1, P.k do if pf.keep[j] then Z[#Z + 1] = P.X[j] end end
        local CPZM = tomatrix(Z, n):crossprod():inv()
        local ZW = {}
        for j, c in ipairs(Z) do ZW[j] = within(P, dims, c) end
        local CPZW = tomatrix(ZW, n):crossprod()
        local A = CPZM * CPZW
        Mq[1][1] = n - NTS - trace_prod(CPZM, CPZW)
        local dim = one
        local r = effect == "time" and 3 or 2
        local CPZS = group_sum_matrix(Z, dim):crossprod()
        local CPZB = group_sum_matrix(Z, dim, true):crossprod()
        local B = CPZM * CPZS
        Mq[1][r] = trace_prod(A, B)
        Mq[r][1] = dim.G - trace_prod(CPZM, CPZB)
        Mq[r][r] = n - 2 * trace_prod(CPZM, CPZS) + trace_prod(CPZM * CPZB, B)
      else
        Mq[1][1] = n - NTS
        for _, r in ipairs(rows) do
          if r > 1 then
            Mq[r][1] = bydim[r].G
            Mq[r][r] = (r == 2 and P.ts.G or P.id.G) * bydim[r].G
          end
        end
      end
    end
    -- Solve the (2 x 2 or 3 x 3) system over the rows of this effect.
    local A, rhs = {}, {}
    for a, r in ipairs(rows) do
      A[a] = {}
      for c, s in ipairs(rows) do A[a][c] = Mq[r][s] end
      rhs[a] = q[r]
    end
    local sol = core.matrix(A):solve(core.matrix(rhs))
    local keys = { "idios", "id", "time" }
    for a, r in ipairs(rows) do
      local v = sol:get(a, 1)
      if v < 0 then
        notes[#notes + 1] = string.format("variance component '%s' estimated negative (%.6g), set to 0", keys[r], v)
        v = 0
      end
      s2[keys[r]] = v
    end
  end
  if not (s2.idios > 0) then raise("re: the idiosyncratic variance is zero: the model fits the data exactly") end
  -- theta of each row
  local th = { id = {}, time = {}, total = {} }
  for i = 1, n do
    local Ti = P.balanced and P.ts.G or P.id.cnt[P.id.g[i]]
    local Nt = P.balanced and P.id.G or P.ts.cnt[P.ts.g[i]]
    if effect ~= "time" then th.id[i] = 1 - (1 + Ti * s2.id / s2.idios) ^ -0.5 end
    if effect ~= "individual" then th.time[i] = 1 - (1 + Nt * s2.time / s2.idios) ^ -0.5 end
    if twoways then
      th.total[i] = th.id[i] + th.time[i] - 1 + (1 + Nt * s2.time / s2.idios + Ti * s2.id / s2.idios) ^ -0.5
      if s2.time == 0 or s2.id == 0 then th.total[i] = 0 end
    end
  end
  return s2, th, notes
end

--- Random effects: sp.re(d, formula, {method =, effect =, vcov =, compat =}).
function M.re(d, formula, opts)
  local P
  P, opts = prepare(d, formula, opts, "re")
  local method = opts.method or "swar"
  local effect = opts.effect or "individual"
  if not methods[method] then
    raise("re: unknown method '" .. tostring(method) .. "' (expected swar, amemiya, walhus or nerlove)")
  end
  if not effects[effect] then
    raise("re: unknown effect '" .. tostring(effect) .. "' (expected individual, time or twoways)")
  end
  if not P.ic then raise("re: the model needs an intercept (remove '- 1' or '0 +' from the formula)") end
  if effect == "twoways" and not P.balanced then
    raise(string.format("re: two-way random effects on an unbalanced panel are not supported yet " ..
      "(%d rows for %d entities x %d periods)", P.n, P.id.G, P.ts.G))
  end
  local one = effect == "time" and P.ts or P.id
  if one.G < 2 or (effect == "twoways" and P.ts.G < 2) then
    raise(string.format("re: too few groups: %d %s (at least 2 are needed to estimate a variance component)",
      one.G, effect == "time" and "periods" or "entities"))
  end
  if P.n <= one.G then
    raise(string.format("re: %d observations for %d groups: no within variation to estimate the idiosyncratic variance",
      P.n, one.G))
  end
  local s2, th, notes = ercomp(P, method, effect)
  -- Quasi-demeaning, then OLS: z* = z - theta_i zbar_i (one-way), or
  -- z - theta_id zbar_i - theta_t zbar_t + theta_total zbar (two-way, balanced).
  local n = P.n
  local function transform(v)
    local out = {}
    if effect == "twoways" then
      local mi = group_means(v, P.id.g, P.id.G, P.id.cnt)
      local mt = group_means(v, P.ts.g, P.ts.G, P.ts.cnt)
      local m = mean(v)
      for i = 1, n do
        out[i] = v[i] - th.id[i] * mi[P.id.g[i]] - th.time[i] * mt[P.ts.g[i]] + th.total[i] * m
      end
    else
      local t = effect == "time" and th.time or th.id
      local mg = group_means(v, one.g, one.G, one.cnt)
      for i = 1, n do out[i] = v[i] - t[i] * mg[one.g[i]] end
    end
    return out
  end
  local ys, Xs, scale = transform(P.y), {}, {}
  for j = 1, P.k do
    Xs[j] = transform(P.X[j])
    scale[j] = sumsq(P.X[j])
  end
  local o = ols_step(P, "re", Xs, ys, P.names, scale, codes_fn(P), function() return core.codes(P.des, P.time) end)
  local stats = { model = "random", effect = effect, ercomp_method = method, sigma2 = s2 }
  if effect == "twoways" then
    stats.theta = { id = th.id[1], time = th.time[1], total = th.total[1] }
  else
    local t = effect == "time" and th.time or th.id
    if P.balanced then
      stats.theta = t[1]
    else
      local levels = linear.factor_levels(d, P.des, one.name)
      local by = {}
      for i = 1, n do by[levels[one.g[i]]] = t[i] end
      if effect == "time" then stats.theta_by_period = by else stats.theta_by_entity = by end
    end
  end
  local labels = { swar = "Swamy-Arora", amemiya = "Amemiya", walhus = "Wallace-Hussain", nerlove = "Nerlove" }
  local fit = finish(P, o, {
    names = P.names, y = ys, stats = stats, chi2 = true, estimator = "re", notes = notes,
    label = string.format("Random effects (%s, %s)", labels[method], effect),
  })
  fit.predict_fn = linear.predict_linear
  return fit
end

-- ---- between -----------------------------------------------------------------------

--- Between: sp.between(d, formula, {effect =, vcov =, compat =}): OLS on the
--- entity means, or on the period means with effect = "time" (plm's
--- effect = "time").
function M.between(d, formula, opts)
  local P
  P, opts = prepare(d, formula, opts, "between")
  local effect = opts.effect or "individual"
  if effect ~= "individual" and effect ~= "time" then
    raise("between: unknown effect '" .. tostring(effect) .. "' (expected individual or time)")
  end
  local unit = effect == "time" and "period" or "entity"
  local t = P.vc.type
  if t == "cluster" or t == "driscoll_kraay" then
    raise("between: vcov '" .. t .. "' is not available: the between model has one row per " .. unit ..
      " (use iid, hc0, hc1, hc2 or hc3)")
  end
  local dim = effect == "time" and P.ts or P.id
  local units = effect == "time" and "periods" or "entities"
  if dim.G < 2 then raise(string.format("between: too few %s: %d (need more %s than coefficients)", units, dim.G, units)) end
  local ym, Xm, scale = group_means(P.y, dim.g, dim.G, dim.cnt), {}, {}
  for j = 1, P.k do
    Xm[j] = group_means(P.X[j], dim.g, dim.G, dim.cnt)
    scale[j] = sumsq(Xm[j])
  end
  if dim.G <= P.k then
    raise(string.format("between: %d %s are too few for %d coefficients", dim.G, units, P.k))
  end
  local o = ols_step(P, "between", Xm, ym, P.names, scale, nil, nil)
  local fit = finish(P, o, {
    names = P.names, y = ym, stats = { model = "between", effect = effect }, estimator = "between",
    label = "Between (" .. unit .. " means)",
  })
  fit.predict_fn = linear.predict_linear
  return fit
end

-- ---- first differences ----------------------------------------------------------------

--- First differences: sp.fd(d, formula, {vcov =, compat =, across_gaps =}).
--  Each row is differenced with the row of the same entity one period
--  earlier; a row whose previous period is absent (a gap, the first period,
--  or a row dropped for missing values) has no difference.  across_gaps =
--  true differences with the previous observed row instead, as plm does.  The intercept stays a column of
--  ones, as in plm (it estimates a linear trend in levels).
function M.fd(d, formula, opts)
  local P
  P, opts = prepare(d, formula, opts, "fd")
  local n = P.n
  -- period positions: integer time values are steps of one unit, other
  -- time columns step through their sorted distinct values (the panel's rule)
  local tval
  local col = d[P.time]
  if type(col) ~= "table" then
    tval = {}
    local integer = true
    for i, r in ipairs(P.des.rows) do
      local v = col:get(r, 1)
      tval[i] = v
      if v ~= math.floor(v) then integer = false end
    end
    if not integer then tval = nil end
  end
  if tval == nil then tval = P.ts.g end
  local rows, prev = {}, {}
  if opts.across_gaps then
    -- plm's pdiff: the previous observed row of the entity, whatever its period
    local order = {}
    for i = 1, n do order[i] = i end
    table.sort(order, function(a, b)
      local ga, gb = P.id.g[a], P.id.g[b]
      if ga ~= gb then return ga < gb end
      return tval[a] < tval[b]
    end)
    for a = 2, n do
      local i, p = order[a], order[a - 1]
      if P.id.g[i] == P.id.g[p] then rows[#rows + 1], prev[#prev + 1] = i, p end
    end
  else
    local at = {}
    for i = 1, n do
      local g = P.id.g[i]
      at[g] = at[g] or {}
      at[g][tval[i]] = i
    end
    for i = 1, n do
      local p = at[P.id.g[i]][tval[i] - 1]
      if p then rows[#rows + 1], prev[#prev + 1] = i, p end
    end
  end
  local m = #rows
  if m == 0 then raise("fd: no row has an observed previous period: nothing to difference") end
  local function diff(v)
    local out = {}
    for a = 1, m do out[a] = v[rows[a]] - v[prev[a]] end
    return out
  end
  local dy, dX, scale = diff(P.y), {}, {}
  linear.check_outcome("fd", P.des.yname, sumsq(dy), sumsq(P.y), "entities: its first differences are all zero")
  for j = 1, P.k do
    if j == P.ic then
      local ones = {}
      for a = 1, m do ones[a] = 1 end
      dX[j] = ones
    else
      dX[j] = diff(P.X[j])
    end
    scale[j] = sumsq(P.X[j])
  end
  local tcodes = function()
    local sub = {}
    for a = 1, m do sub[a] = P.ts.g[rows[a]] end
    return core.codes(sub)
  end
  local o = ols_step(P, "fd", dX, dy, P.names, scale, codes_fn(P, rows), tcodes)
  return finish(P, o, {
    names = P.names, y = dy, stats = { model = "fd", effect = "individual" }, estimator = "fd",
    label = "First differences",
  })
end

-- ---- registration (spillover.registry) ----------------------------------------------------

local registry = require "spillover.registry"
local PANEL_MODEL_KEYS = { "vcov", "compat" }
local PANEL_OPTIONS = {
  re = { method = { type = "string", enum = { "swar", "amemiya", "walhus", "nerlove" } },
    effect = { type = "string", enum = { "individual", "time", "twoways" } } },
  between = { effect = { type = "string", enum = { "individual", "time" } } },
  fd = { across_gaps = { type = "boolean" } },
}
-- The between model has one row per entity: no clustering by entity or time.
local VCOV_KINDS = { re = linear.KINDS, fd = linear.KINDS, between = { "classic", "iid", "hc0", "hc1", "hc2", "hc3" } }
-- Random effects, between and first differences: predictions, but no refit
-- (bootstrap) and no prediction matrix.
for _, name in ipairs({ "re", "between", "fd" }) do
  registry.register {
    name = name, options = PANEL_OPTIONS[name], model_keys = PANEL_MODEL_KEYS, vcov = VCOV_KINDS[name],
    fit = function(d, model, options)
      return M[name](d, model.formula, registry.merged_options(model, options, PANEL_MODEL_KEYS))
    end,
    capabilities = { predict = true, predict_matrix = false, refit = false, draw = true, spatial = false },
  }
end

return M
