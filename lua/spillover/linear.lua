-- spillover.linear: the linear estimators (OLS with absorbed fixed effects,
-- 2SLS, random effects, between, first differences) assembled from the public
-- primitives (sp.design, sp.absorb, sp.lsfit, sp.vcov, sp.fit), so that a
-- user's estimator written the same way is as fast and as well-behaved.
local core = require "spillover.core"
local fitmod = require "spillover.fit"
local dist = core.dist

local M = {}

-- ---- options -----------------------------------------------------------------

local compat_names = { stata = true, plm = true, fixest = true, sandwich = true, statsmodels = true }

--- Normalise opts.vcov into {type=, cluster={names}, lag=, dof=, gadj=, tdf=}.
local function parse_vcov(v, level)
  level = (level or 1) + 1
  if v == nil then return { type = "iid" } end
  if type(v) == "string" then
    local t = v:lower()
    if t == "classic" or t == "iid" or t == "hc0" or t == "hc1" or t == "hc2" or t == "hc3" then
      return { type = t == "classic" and "iid" or t }
    end
    error("vcov: unknown type '" .. v .. "' (expected iid, hc0, hc1, hc2, hc3, {cluster = ...} or {driscoll_kraay = lag})", level)
  end
  if type(v) ~= "table" then error("vcov: expected a string or a table", level) end
  local out = { dof = v.dof, gadj = v.gadj, tdf = v.tdf, fix_psd = v.fix_psd, multi0 = v.multi0 }
  if v.cluster then
    out.type = "cluster"
    out.cluster = type(v.cluster) == "string" and { v.cluster } or v.cluster
    if #out.cluster == 0 then error("vcov: 'cluster' needs at least one variable", level) end
    out.hc = v.type  -- e.g. {cluster = "firm", type = "hc1"}: plm arellano HC1
  elseif v.driscoll_kraay ~= nil then
    out.type = "driscoll_kraay"
    out.lag = v.driscoll_kraay == true and -1 or v.driscoll_kraay
  elseif v.type then
    out = parse_vcov(v.type, level)
    out.dof, out.gadj, out.tdf = v.dof, v.gadj, v.tdf
  else
    error("vcov: a table must have 'cluster', 'driscoll_kraay' or 'type'", level)
  end
  return out
end
M.parse_vcov = parse_vcov

local function describe_vcov(vc, info)
  if vc.type == "cluster" then
    local parts = {}
    for j, name in ipairs(vc.cluster) do
      parts[j] = string.format("%s (%d)", name, info.ngroups[j] or 0)
    end
    return "clustered by " .. table.concat(parts, " & ")
  elseif vc.type == "driscoll_kraay" then
    return string.format("Driscoll-Kraay (lag %d)", info.lag)
  elseif vc.type == "iid" then
    return "iid"
  end
  return vc.type:upper()
end

-- ---- the shared pipeline ---------------------------------------------------------

--- Column sums of squares of X (the reference scale for collinearity tests).
local function colsumsq(X)
  local XtX = X:crossprod()
  local s = {}
  for j = 1, X:ncol() do s[j] = XtX:get(j, j) end
  return s
end

local function sum_sq_centered(y, w)
  local n = y:nrow()
  local sw, sy = 0, 0
  for i = 1, n do
    local wi = w and w[i] or 1
    sw, sy = sw + wi, sy + wi * y[i]
  end
  local mean, ss = sy / sw, 0
  for i = 1, n do
    local wi = w and w[i] or 1
    local d = y[i] - mean
    ss = ss + wi * d * d
  end
  return ss, mean
end

--- Keep the columns flagged in keep (a new matrix when some are dropped).
local function kept_columns(X, keep)
  local cols, all = {}, true
  for j, k in ipairs(keep) do
    if k then cols[#cols + 1] = j else all = false end
  end
  if all then return X end
  local parts = {}
  for i, j in ipairs(cols) do parts[i] = X:col(j) end
  return core.matrix.hcat(table.unpack(parts))
end

--- k_df for the vcov: which parameters each compat preset counts.
local function vcov_kdf(compat, vc, rank, fe_dof, fe_dof_nonnested)
  if vc.type == "iid" then return rank + fe_dof end
  if compat == "plm" or compat == "sandwich" or compat == "statsmodels" then return rank end
  if vc.type == "cluster" then return rank + fe_dof_nonnested end
  return rank + fe_dof
end

--- Compute the covariance for a fitted linear model.
--   X: the (transformed) regressors actually used (kept columns), e: residuals,
--   bread: (X'X)^-1; ctx: {compat, vcov (parsed), codes = function(name), time_codes,
--   fe_dof, fe_nested(name) -> dof of FE not nested in that cluster, weights}
function M.covariance(X, e, bread, ctx)
  local vc = ctx.vcov
  local rank = X:ncol()
  local fe_dof = ctx.fe_dof or 0
  local opts = { type = vc.type, compat = ctx.compat, weights = ctx.weights }
  local nonnested = fe_dof
  if vc.type == "cluster" then
    opts.cluster, opts.cluster_names = {}, {}
    for j, name in ipairs(vc.cluster) do
      opts.cluster[j] = ctx.codes(name)
      opts.cluster_names[j] = name
    end
    if ctx.fe_dof_nonnested then nonnested = ctx.fe_dof_nonnested(vc.cluster) end
  elseif vc.type == "driscoll_kraay" then
    opts.time = ctx.time_codes()
    opts.lag = vc.lag
  end
  opts.k_df = vcov_kdf(ctx.compat, vc, rank, fe_dof, nonnested)
  if vc.type == "cluster" and vc.hc then
    -- plm's arellano with an HC type: HC0 none, HC1 n/(n-k), sss (n-1)/(n-k) G/(G-1)
    local h = vc.hc:lower()
    if h == "hc0" then opts.dof, opts.gadj = "none", "none"
    elseif h == "hc1" then opts.dof, opts.gadj = "n/(n-k)", "none"
    elseif h == "sss" then opts.dof, opts.gadj = "(n-1)/(n-k)", "each"
    else error("vcov: cluster type must be hc0, hc1 or sss, got '" .. vc.hc .. "'", 3) end
  end
  opts.dof = vc.dof or opts.dof
  opts.gadj = vc.gadj or opts.gadj
  opts.tdf = vc.tdf or opts.tdf
  opts.fix_psd, opts.multi0 = vc.fix_psd, vc.multi0
  local V, info = core.vcov(X, e, bread, opts)
  return V, info, describe_vcov(vc, info)
end

--- Expand a reduced (rank) covariance into names order, NaN rows for dropped.
local function expand(b, V, keep)
  local names_idx = {}
  for j, k in ipairs(keep) do if k then names_idx[#names_idx + 1] = j end end
  return names_idx
end
M.expand = expand

--- Wald F / chi2 test that all listed coefficients are zero.
function M.joint_test(b, V, idx, df2, use_chi2)
  local q = #idx
  if q == 0 then return nil end
  -- Solve V_sub x = b_sub by Cholesky (V is PSD; tiny problems).
  local A, rhs = {}, {}
  for a = 1, q do
    A[a] = {}
    for c = 1, q do A[a][c] = V[idx[a]][idx[c]] end
    rhs[a] = b[idx[a]]
  end
  for col = 1, q do
    local piv, best = col, math.abs(A[col][col])
    for r = col + 1, q do if math.abs(A[r][col]) > best then piv, best = r, math.abs(A[r][col]) end end
    if best == 0 then return nil end
    A[col], A[piv] = A[piv], A[col]
    rhs[col], rhs[piv] = rhs[piv], rhs[col]
    for r = col + 1, q do
      local f = A[r][col] / A[col][col]
      for c = col, q do A[r][c] = A[r][c] - f * A[col][c] end
      rhs[r] = rhs[r] - f * rhs[col]
    end
  end
  local x = {}
  for r = q, 1, -1 do
    local s = rhs[r]
    for c = r + 1, q do s = s - A[r][c] * x[c] end
    x[r] = s / A[r][r]
  end
  local chi2 = 0
  for a = 1, q do chi2 = chi2 + b[idx[a]] * x[a] end
  if use_chi2 then
    return { statistic = chi2, df1 = q, pvalue = dist.pchisq(chi2, q, true), kind = "Wald chi2" }
  end
  return { statistic = chi2 / q, df1 = q, df2 = df2, pvalue = dist.pf(chi2 / q, q, df2, true), kind = "F" }
end

local function totable(m)
  local t = {}
  for i = 1, m:nrow() do
    t[i] = {}
    for j = 1, m:ncol() do t[i][j] = m:get(i, j) end
  end
  return t
end
M.totable = totable

--- Build the public fit from the pieces: names (all, in formula order), the
--- lsfit result, V over the kept columns.
function M.assemble(spec)
  local names, keep = spec.names, spec.keep
  local b_all, kept_names, b, V = spec.b, {}, {}, {}
  local idx = {}
  for j, k in ipairs(keep) do
    if k then
      kept_names[#kept_names + 1] = names[j]
      b[#b + 1] = b_all[j]
      idx[#idx + 1] = j
    end
  end
  V = totable(spec.V)
  local f = fitmod.new {
    names = kept_names, b = b, V = V, nobs = spec.nobs, df_resid = spec.df_resid, dist = spec.dist,
    stats = spec.stats, estimator = spec.estimator, label = spec.label, formula = spec.formula,
    vcov_label = spec.vcov_label, vcov_type = spec.vcov_type, fe = spec.fe, notes = spec.notes,
    resid_values = spec.resid, fitted_values = spec.fitted, predict_fn = spec.predict,
    fixef_values = spec.fixef, dropped = spec.dropped, compat = spec.compat, extra = spec.extra,
  }
  return f
end

M.kept_columns = kept_columns
M.colsumsq = colsumsq
M.sum_sq_centered = sum_sq_centered
M.compat_names = compat_names

return M
