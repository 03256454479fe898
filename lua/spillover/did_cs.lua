-- spillover.did_cs: Callaway & Sant'Anna (2021) group-time average treatment
-- effects ATT(g,t) and their aggregations, following R's did package
-- (att_gt, aggte) and the 2x2 estimators of DRDID (Sant'Anna & Zhao 2020).
--
--   local cs = require "spillover.did_cs"
--   local fit = cs.cs(d, "lemp ~ lpop", {cohort = "first.treat", est = "dr", control = "never",
--                     base = "varying", anticipation = 0, weights = "w", cluster = "state",
--                     bootstrap = 999, seed = 1, level = 0.95, unbalanced = false})
--   cs.cs(d, "y ~ x", {cohort = "g", panel = false, time = "year"})   -- repeated cross-sections
--   fit.att_gt                      -- { {group=, time=, att=, se=, ...}, ... }
--   fit:aggregate("dynamic", {min_e = -3, max_e = 3, balance_e = 1})
--
-- Each ATT(g,t) is a 2x2 DID on the units of cohort g and the comparison
-- units (never treated, or not yet treated), between period t and its base
-- period: DRDID's panel estimators on the change in the outcome, or its
-- repeated cross-section estimators on the rows of the two periods (for
-- panel = false, and unbalanced = "rc" as did's allow_unbalanced_panel).
-- Every estimate carries its influence function over the units of
-- the panel (the rows of repeated cross-sections); standard errors, the multiplier bootstrap and the aggregations
-- (with the influence function of their estimated weights) all come from
-- these functions, as in did.
local core = require "spillover.core"
local util = require "spillover.util"
local C = require "spillover.did_common"
local fitmod = require "spillover.fit"
local raise = util.raise
local fmt = C.format_value

local M = {}

local OPTIONS = { "method", "cohort", "est", "control", "base", "anticipation", "weights", "cluster",
  "bootstrap", "seed", "level", "unbalanced", "panel", "time" }

local function fail(msg) raise("did: " .. msg) end

-- ---- small linear algebra ----------------------------------------------------------------

-- The inverse of the k x k matrix of rows A (an array of arrays), or nil when
-- it is singular (reciprocal condition number below machine epsilon, the
-- test DRDID applies before inverting).
local function inverse(A)
  local k = #A
  local m = core.matrix(A)
  local ok, inv = pcall(function() return m:inv() end)
  if not ok then return nil end
  local out, big, ibig = {}, 0, 0
  for i = 1, k do
    out[i] = {}
    for j = 1, k do
      out[i][j] = inv:get(i, j)
      big = math.max(big, math.abs(A[i][j]))
      ibig = math.max(ibig, math.abs(out[i][j]))
    end
  end
  local cond = big * ibig   -- NaN when the inverse is
  if cond ~= cond or cond >= 1 / 2.220446049250313e-16 then return nil end
  return out
end

-- sum_i f_i x_i x_i' / n and its inverse; nil when singular.
local function weighted_crossprod_inverse(X, f, n)
  local k = #X[1]
  local A = {}
  for a = 1, k do A[a] = {} for b = 1, k do A[a][b] = 0 end end
  for i = 1, #X do
    local fi, xi = f[i], X[i]
    if fi ~= 0 then
      for a = 1, k do
        local v = fi * xi[a]
        local row = A[a]
        for b = a, k do row[b] = row[b] + v * xi[b] end
      end
    end
  end
  for a = 1, k do
    for b = a, k do A[a][b] = A[a][b] / n; A[b][a] = A[a][b] end
  end
  return inverse(A)
end

-- Row i of the asymptotic linear representation s_i x_i' Ainv, dotted with m: s_i x_i' Ainv m.
local function projector(Ainv, m)
  local k, v = #m, {}
  for a = 1, k do
    local s = 0
    for b = 1, k do s = s + Ainv[a][b] * m[b] end
    v[a] = s
  end
  return v
end

local dot = util.dot

-- Weighted least squares of y on X over the rows where sel is true:
-- coefficients, or nil when X'WX is singular.
local function wls(X, y, w, sel)
  local k = #X[1]
  local f = {}
  for i = 1, #X do f[i] = sel[i] and w[i] or 0 end
  local Ainv = weighted_crossprod_inverse(X, f, 1)
  if not Ainv then return nil end
  local Xty = {}
  for a = 1, k do Xty[a] = 0 end
  for i = 1, #X do
    if f[i] ~= 0 then
      local v = f[i] * y[i]
      for a = 1, k do Xty[a] = Xty[a] + v * X[i][a] end
    end
  end
  return projector(Ainv, Xty)
end

-- Weighted logit of D on X by Newton-Raphson: the fitted probabilities, or
-- nil when the information matrix is singular.
local function logit(X, D, w)
  local n, k = #X, #X[1]
  local beta = {}
  for a = 1, k do beta[a] = 0 end
  local p = {}
  for _ = 1, 100 do
    local f, score = {}, {}
    for a = 1, k do score[a] = 0 end
    for i = 1, n do
      local pi = 1 / (1 + math.exp(-dot(X[i], beta)))
      p[i] = pi
      f[i] = w[i] * pi * (1 - pi)
      local r = w[i] * (D[i] - pi)
      for a = 1, k do score[a] = score[a] + r * X[i][a] end
    end
    local Hinv = weighted_crossprod_inverse(X, f, 1)
    if not Hinv then return nil end
    local step, size = projector(Hinv, score), 0
    for a = 1, k do
      beta[a] = beta[a] + step[a]
      size = math.max(size, math.abs(step[a]) / (1 + math.abs(beta[a])))
    end
    if size < 1e-12 then break end
  end
  for i = 1, n do p[i] = 1 / (1 + math.exp(-dot(X[i], beta))) end
  return p
end

-- ---- the 2x2 estimators (DRDID's panel estimators) -----------------------------------------
--
-- Each takes the change dy of the outcome, the treatment indicator D (1 for
-- cohort g, 0 for comparison units), the covariates X (rows with a leading 1)
-- and the sampling weights w (normalised to mean 1 here, as DRDID does), and
-- returns the ATT and its influence function over these n1 units, or nil and
-- a reason.

local TRIM = 0.995   -- DRDID's trim.level: comparison units with a propensity above it get no weight

local function mean(v)
  local s = 0
  for i = 1, #v do s = s + v[i] end
  return s / #v
end

local function col_means(X, f)
  local n, k = #X, #X[1]
  local m = {}
  for a = 1, k do m[a] = 0 end
  for i = 1, n do
    local fi = f[i]
    if fi ~= 0 then
      for a = 1, k do m[a] = m[a] + fi * X[i][a] end
    end
  end
  for a = 1, k do m[a] = m[a] / n end
  return m
end

-- The propensity score part shared by ipw and dr: trimmed fitted values and
-- the treated and comparison weights.
local function propensity(X, D, w)
  local p = logit(X, D, w)
  if not p then return nil end
  local n = #X
  local wt, wc, W = {}, {}, {}
  for i = 1, n do
    local pi = math.min(p[i], 1 - 1e-6)
    p[i] = pi
    W[i] = pi * (1 - pi) * w[i]
    local keep = D[i] == 1 or pi < TRIM
    wt[i] = keep and w[i] * D[i] or 0
    wc[i] = keep and w[i] * pi * (1 - D[i]) / (1 - pi) or 0
  end
  return p, wt, wc, W
end

-- The weighted regression of y on X over the rows where sel is true:
-- fitted values on every row, the inverse of the scaled X'WX (for its
-- influence function) and the regression weights (0 outside sel); nil when
-- singular.
local function regression(X, y, w, sel)
  local n = #X
  local f = {}
  for i = 1, n do f[i] = sel[i] and w[i] or 0 end
  local beta = wls(X, y, w, sel)
  if not beta then return nil end
  local fit = {}
  for i = 1, n do fit[i] = dot(X[i], beta) end
  return fit, weighted_crossprod_inverse(X, f, n), f
end

-- The comparison-unit regression of dy on X shared by reg and dr.
local function outcome_regression(X, dy, D, w)
  local sel = {}
  for i = 1, #X do sel[i] = D[i] == 0 end
  return regression(X, dy, w, sel)
end

local estimators = {}

function estimators.reg(dy, D, X, w)
  local n = #dy
  local out, XpXinv, f0 = outcome_regression(X, dy, D, w)
  if not out then return nil, "the comparison units' regression is singular (collinear or constant covariates?)" end
  local wt = {}
  for i = 1, n do wt[i] = w[i] * D[i] end
  local mwt = mean(wt)
  local st, sc = 0, 0
  for i = 1, n do st = st + wt[i] * dy[i]; sc = sc + wt[i] * out[i] end
  local eta_t, eta_c = st / n / mwt, sc / n / mwt
  local v1 = projector(XpXinv, col_means(X, wt))
  local inf = {}
  for i = 1, n do
    local lin = f0[i] * (dy[i] - out[i]) * dot(X[i], v1)
    local treat = wt[i] * (dy[i] - eta_t) / mwt
    local control = (wt[i] * (out[i] - eta_c) + lin) / mwt
    inf[i] = treat - control
  end
  return eta_t - eta_c, inf
end

function estimators.ipw(dy, D, X, w)
  local n = #dy
  local p, wt, wc, W = propensity(X, D, w)
  if not p then return nil, "the propensity score logit is singular (collinear or constant covariates?)" end
  local mwt, mwc = mean(wt), mean(wc)
  local st, sc = 0, 0
  for i = 1, n do st = st + wt[i] * dy[i]; sc = sc + wc[i] * dy[i] end
  local eta_t, eta_c = st / n / mwt, sc / n / mwc
  local Hinv = weighted_crossprod_inverse(X, W, n)
  if not Hinv then return nil, "the propensity score design is singular (collinear or constant covariates?)" end
  local f2 = {}
  for i = 1, n do f2[i] = wc[i] * (dy[i] - eta_c) end
  local v2 = projector(Hinv, col_means(X, f2))
  local inf = {}
  for i = 1, n do
    local ps_lin = w[i] * (D[i] - p[i]) * dot(X[i], v2)
    inf[i] = wt[i] * (dy[i] - eta_t) / mwt - (wc[i] * (dy[i] - eta_c) + ps_lin) / mwc
  end
  return eta_t - eta_c, inf
end

function estimators.dr(dy, D, X, w)
  local n = #dy
  local p, wt, wc, W = propensity(X, D, w)
  if not p then return nil, "the propensity score logit is singular (collinear or constant covariates?)" end
  local out, XpXinv, f0 = outcome_regression(X, dy, D, w)
  if not out then return nil, "the comparison units' regression is singular (collinear or constant covariates?)" end
  local Hinv = weighted_crossprod_inverse(X, W, n)
  if not Hinv then return nil, "the propensity score design is singular (collinear or constant covariates?)" end
  local mwt, mwc = mean(wt), mean(wc)
  local st, sc = 0, 0
  for i = 1, n do
    local r = dy[i] - out[i]
    st = st + wt[i] * r
    sc = sc + wc[i] * r
  end
  local eta_t, eta_c = st / n / mwt, sc / n / mwc
  local f2 = {}
  for i = 1, n do f2[i] = wc[i] * (dy[i] - out[i] - eta_c) end
  local v1 = projector(XpXinv, col_means(X, wt))
  local v2 = projector(Hinv, col_means(X, f2))
  local v3 = projector(XpXinv, col_means(X, wc))
  local inf = {}
  for i = 1, n do
    local r = dy[i] - out[i]
    local ols = f0[i] * r
    local treat = (wt[i] * (r - eta_t) - ols * dot(X[i], v1)) / mwt
    local control = (wc[i] * (r - eta_c) + w[i] * (D[i] - p[i]) * dot(X[i], v2) - ols * dot(X[i], v3)) / mwc
    inf[i] = treat - control
  end
  return eta_t - eta_c, inf
end

-- ---- the 2x2 estimators for repeated cross-sections (DRDID's *_rc) -----------------------
--
-- Each takes the outcome y of every row of the two periods, post (1 for a
-- row of the later-compared period t, 0 for the base period), the treatment
-- indicator D, the covariates X of the row's own period (with a leading 1)
-- and the weights w (mean 1), and returns the ATT and its influence function
-- over these rows, or nil and a reason.  Without covariates all three are the
-- difference of the four cell means.

local SINGULAR_OR = "the comparison units' regression in one of the two periods is singular " ..
  "(collinear or constant covariates?)"
local SINGULAR_PS = "the propensity score logit is singular (collinear or constant covariates?)"

-- The Hajek mean sum(v r) / sum(v) and the leading term of its influence
-- function, v_i (r_i - a) / mean(v), with mean(v).
local function hajek(v, r)
  local n, s, sv = #v, 0, 0
  for i = 1, n do s = s + v[i] * r[i]; sv = sv + v[i] end
  local a, mv = s / sv, sv / n
  local lead = {}
  for i = 1, n do lead[i] = v[i] * (r[i] - a) / mv end
  return a, lead, mv
end

-- The rows' regression of y on X over sel: {fit =, Ainv =, f =}, or nil.
local function rows_regression(X, y, w, sel)
  local fit, Ainv, f = regression(X, y, w, sel)
  if not fit or not Ainv then return nil end
  return { fit = fit, Ainv = Ainv, f = f }
end

-- The effect of estimating regression R on a statistic whose derivative in
-- its coefficients is m: f_i (y_i - fit_i) x_i' Ainv m for every row.
local function regression_effect(R, X, y, m)
  local v, e = projector(R.Ainv, m), {}
  for i = 1, #X do
    local f = R.f[i]
    e[i] = f ~= 0 and f * (y[i] - R.fit[i]) * dot(X[i], v) or 0
  end
  return e
end

-- The comparison (d = 0) or treated (d = 1) regression of y in period post = p.
local function cell_regression(X, y, w, D, post, d, p)
  local sel = {}
  for i = 1, #X do sel[i] = D[i] == d and post[i] == p end
  return rows_regression(X, y, w, sel)
end

-- v_i * post_i (p = 1) or v_i * (1 - post_i) (p = 0).
local function in_period(v, post, p)
  local out = {}
  for i = 1, #v do out[i] = post[i] == p and v[i] or 0 end
  return out
end

-- col_means(X, a / ma - b / mb).
local function col_means_diff(X, a, ma, b, mb)
  local f = {}
  for i = 1, #X do f[i] = a[i] / ma - b[i] / mb end
  return col_means(X, f)
end

local function scaled(v, c)
  local out = {}
  for a = 1, #v do out[a] = v[a] * c end
  return out
end

local rc_estimators = {}

-- reg_did_rc: comparison-unit regressions in each period, the treated
-- cohort's own means.
function rc_estimators.reg(y, post, D, X, w)
  local n = #y
  local C0 = cell_regression(X, y, w, D, post, 0, 0)
  local C1 = cell_regression(X, y, w, D, post, 0, 1)
  if not C0 or not C1 then return nil, SINGULAR_OR end
  local wd, gap = {}, {}
  for i = 1, n do wd[i] = w[i] * D[i]; gap[i] = C1.fit[i] - C0.fit[i] end
  local a1, l1 = hajek(in_period(wd, post, 1), y)
  local a0, l0 = hajek(in_period(wd, post, 0), y)
  local ac, lc, md = hajek(wd, gap)
  local m = col_means(X, wd)
  local e1, e0 = regression_effect(C1, X, y, m), regression_effect(C0, X, y, m)
  local inf = {}
  for i = 1, n do inf[i] = l1[i] - l0[i] - (lc[i] + (e1[i] - e0[i]) / md) end
  return (a1 - a0) - ac, inf
end

-- std_ipw_did_rc: Hajek-weighted means of the four cells, the comparison
-- rows weighted by p / (1 - p).
function rc_estimators.ipw(y, post, D, X, w)
  local n = #y
  local p, wt, wc, W = propensity(X, D, w)
  if not p then return nil, SINGULAR_PS end
  local Hinv = weighted_crossprod_inverse(X, W, n)
  if not Hinv then return nil, SINGULAR_PS end
  local wt1, wt0, wc1, wc0 = in_period(wt, post, 1), in_period(wt, post, 0), in_period(wc, post, 1),
    in_period(wc, post, 0)
  local at1, lt1 = hajek(wt1, y)
  local at0, lt0 = hajek(wt0, y)
  local ac1, lc1 = hajek(wc1, y)
  local ac0, lc0 = hajek(wc0, y)
  -- The propensity score's estimation effect on ac1 - ac0.
  local v = projector(Hinv, col_means_diff(X, lc1, 1, lc0, 1))
  local inf = {}
  for i = 1, n do
    inf[i] = (lt1[i] - lt0[i]) - (lc1[i] - lc0[i] + w[i] * (D[i] - p[i]) * dot(X[i], v))
  end
  return (at1 - at0) - (ac1 - ac0), inf
end

-- drdid_rc, the locally efficient doubly robust estimator: the propensity
-- score, regressions of both groups in both periods, and the efficiency
-- terms of Sant'Anna & Zhao's equation (3.4).
function rc_estimators.dr(y, post, D, X, w)
  local n = #y
  local p, wt, wc, W = propensity(X, D, w)
  if not p then return nil, SINGULAR_PS end
  local Hinv = weighted_crossprod_inverse(X, W, n)
  if not Hinv then return nil, SINGULAR_PS end
  local C0 = cell_regression(X, y, w, D, post, 0, 0)
  local C1 = cell_regression(X, y, w, D, post, 0, 1)
  if not C0 or not C1 then return nil, SINGULAR_OR end
  local T0 = cell_regression(X, y, w, D, post, 1, 0)
  local T1 = cell_regression(X, y, w, D, post, 1, 1)
  if not T0 or not T1 then
    return nil, "the cohort's regression in one of the two periods is singular (collinear or constant covariates?)"
  end
  local r, g1, g0 = {}, {}, {}
  for i = 1, n do
    r[i] = y[i] - (post[i] == 1 and C1.fit[i] or C0.fit[i])
    g1[i] = T1.fit[i] - C1.fit[i]
    g0[i] = T0.fit[i] - C0.fit[i]
  end
  local wt1, wt0, wc1, wc0 = in_period(wt, post, 1), in_period(wt, post, 0), in_period(wc, post, 1),
    in_period(wc, post, 0)
  local at1, lt1, mt1 = hajek(wt1, r)
  local at0, lt0, mt0 = hajek(wt0, r)
  local ac1, lc1, mc1 = hajek(wc1, r)
  local ac0, lc0, mc0 = hajek(wc0, r)
  local ad1, ld1, md = hajek(wt, g1)
  local adt1, ldt1 = hajek(wt1, g1)
  local ad0, ld0 = hajek(wt, g0)
  local adt0, ldt0 = hajek(wt0, g0)
  local att = (at1 - at0) - (ac1 - ac0) + (ad1 - adt1) - (ad0 - adt0)
  -- Estimation effects: the comparison regressions on the treated and
  -- comparison means, the propensity score on the comparison means, and the
  -- treated-minus-comparison regressions on the efficiency terms.
  local treat_or1 = regression_effect(C1, X, y, scaled(col_means(X, wt1), -1 / mt1))
  local treat_or0 = regression_effect(C0, X, y, scaled(col_means(X, wt0), -1 / mt0))
  local cont_or1 = regression_effect(C1, X, y, scaled(col_means(X, wc1), -1 / mc1))
  local cont_or0 = regression_effect(C0, X, y, scaled(col_means(X, wc0), -1 / mc0))
  local v = projector(Hinv, col_means_diff(X, lc1, 1, lc0, 1))
  local mom1 = col_means_diff(X, wt, md, wt1, mt1)
  local mom0 = col_means_diff(X, wt, md, wt0, mt0)
  local t1, c1 = regression_effect(T1, X, y, mom1), regression_effect(C1, X, y, mom1)
  local t0, c0 = regression_effect(T0, X, y, mom0), regression_effect(C0, X, y, mom0)
  local inf = {}
  for i = 1, n do
    local treat = lt1[i] - lt0[i] + treat_or1[i] + treat_or0[i]
    local control = lc1[i] - lc0[i] + w[i] * (D[i] - p[i]) * dot(X[i], v) + cont_or1[i] + cont_or0[i]
    local eff = (ld1[i] - ldt1[i]) - (ld0[i] - ldt0[i])
    local ore = (t1[i] - c1[i]) - (t0[i] - c0[i])
    inf[i] = treat - control + eff + ore
  end
  return att, inf
end

-- ---- options -----------------------------------------------------------------------------

local function choice(opts, key, allowed, default)
  local v = opts[key]
  if v == nil then return default end
  for _, a in ipairs(allowed) do
    if v == a then return v end
  end
  fail(string.format("option '%s' must be one of \"%s\", got %s", key, table.concat(allowed, "\", \""),
    type(v) == "string" and ("\"" .. v .. "\"") or tostring(v)))
end

local function parse_options(opts)
  opts = util.check_options(opts, OPTIONS, "did")
  local o = {
    est = choice(opts, "est", { "dr", "ipw", "reg" }, "dr"),
    control = choice(opts, "control", { "never", "notyet" }, "never"),
    base = choice(opts, "base", { "varying", "universal" }, "varying"),
  }
  local unb = opts.unbalanced
  if unb ~= nil and type(unb) ~= "boolean" and unb ~= "rc" then
    fail("option 'unbalanced' must be true or false, or \"rc\" for the repeated cross-section estimators, got " ..
      (type(unb) == "string" and ("\"" .. unb .. "\"") or tostring(unb)))
  end
  if opts.panel ~= nil and type(opts.panel) ~= "boolean" then
    fail("option 'panel' must be true or false, got " .. tostring(opts.panel))
  end
  o.panel = opts.panel ~= false
  if not o.panel and unb ~= nil then
    fail("option 'unbalanced' applies to panels; repeated cross-sections (panel = false) use every row")
  end
  if o.panel and opts.time ~= nil then
    fail("option 'time' names the time column of repeated cross-sections (panel = false); " ..
      "a panel takes its time from d:panel{}")
  end
  -- Every unit stays with repeated cross-sections and unbalanced panels;
  -- the repeated cross-section estimators serve panel = false and
  -- unbalanced = "rc" (did's allow_unbalanced_panel = TRUE).
  o.keep_all = not o.panel or (unb ~= nil and unb ~= false)
  o.rc = not o.panel or unb == "rc"
  o.unbalanced = unb
  local B = opts.bootstrap or 0
  if math.type(B) ~= "integer" or B < 0 or (B > 0 and B < 10) then
    fail("option 'bootstrap' must be 0 (analytic standard errors) or a number of draws >= 10, got " .. tostring(B))
  end
  o.bootstrap = B
  local seed = opts.seed or 42
  if math.type(seed) ~= "integer" then fail("option 'seed' must be an integer, got " .. tostring(seed)) end
  o.seed = seed
  local level = opts.level or 0.95
  if type(level) ~= "number" or level <= 0 or level >= 1 then
    fail("option 'level' must be a number in (0, 1), got " .. tostring(level))
  end
  o.level = level
  if opts.cluster ~= nil and type(opts.cluster) ~= "string" then
    fail("option 'cluster' must name a column (constant within each unit)")
  end
  o.cluster = opts.cluster
  return o
end

-- ---- the sample --------------------------------------------------------------------------

-- The units that enter the estimation, with the cohorts did can estimate.
-- Units missing a period are dropped (a balanced panel; with unbalanced =
-- true or "rc", and with repeated cross-sections, whose units are the rows,
-- they stay, and each ATT(g,t) uses those observed in its periods).
-- Cohorts treated in the first period (or without a period
-- before g - anticipation) are dropped.  With not-yet-treated controls and
-- no never-treated units, the periods from the last cohort's start on are
-- dropped and that cohort becomes the comparison group, as did does.  Notes
-- say what was dropped.
local function sample(P, o, d)
  local notes = {}
  for _, n in ipairs(P.notes) do notes[#notes + 1] = n end
  local periods = P.periods
  local T = #periods
  local units, dropped = {}, 0
  for _, u in ipairs(P.units) do
    local full = true
    for p = 1, T do if u.rows[p] == nil then full = false; break end end
    if full or o.keep_all then units[#units + 1] = u else dropped = dropped + 1 end
  end
  if dropped > 0 then
    notes[#notes + 1] = string.format("%d units not observed in every period (with a complete outcome and " ..
      "covariates) were dropped: cs uses a balanced panel unless unbalanced = true", dropped)
  end
  if o.panel and o.keep_all and not P.balanced then
    notes[#notes + 1] = o.rc and "unbalanced panel: each ATT(g,t) is the repeated cross-section estimator on " ..
      "the rows of its two periods (unbalanced = \"rc\", did's allow_unbalanced_panel = TRUE)" or
      "unbalanced panel: each ATT(g,t) uses the units observed in both of its periods"
  end
  local antic = P.anticipation
  local cohort = {}
  for i, u in ipairs(units) do cohort[i] = u.cohort end
  local keep = {}
  for i = 1, #units do
    local g = cohort[i]
    if g ~= 0 and g - antic <= periods[1] then
      keep[i] = false
    else
      keep[i] = true
    end
  end
  local gone = {}
  for i = 1, #units do
    if not keep[i] then gone[cohort[i]] = (gone[cohort[i]] or 0) + 1 end
  end
  for _, g in ipairs(P.cohorts) do
    if gone[g] then
      notes[#notes + 1] = string.format("cohort %s (%d units) was dropped: it is treated in the first period %s " ..
        "(less anticipation), so it has no pre-treatment period to compare with", fmt(g), gone[g], fmt(periods[1]))
    end
  end
  local kept = {}
  for i = 1, #units do if keep[i] then kept[#kept + 1] = units[i] end end
  units = kept
  local n_never = 0
  for _, u in ipairs(units) do if u.cohort == 0 then n_never = n_never + 1 end end
  local T_used = T
  local recode
  if n_never == 0 then
    if o.control == "never" then
      fail("there are no never-treated units (cohort 0 or missing in '" .. P.cohort .. "'); " ..
        "use control = \"notyet\" to compare with units not yet treated")
    end
    local gmax = 0
    for _, u in ipairs(units) do gmax = math.max(gmax, u.cohort) end
    while T_used > 0 and periods[T_used] >= gmax - antic do T_used = T_used - 1 end
    recode = gmax
    notes[#notes + 1] = string.format("no never-treated units: the last cohort %s serves as the comparison " ..
      "group and the periods from %s on are dropped (as R's did does)", fmt(gmax), fmt(gmax - antic))
  end
  -- A unit seen only in dropped periods has nothing left to contribute.
  local seen_units = {}
  for _, u in ipairs(units) do
    local any = false
    for p = 1, T_used do if u.rows[p] then any = true; break end end
    if any then seen_units[#seen_units + 1] = u end
  end
  units = seen_units
  if #units == 0 then fail("no units left to estimate with") end
  -- Per unit: cohort, weight, outcome and covariates by period position.
  local n = #units
  local used = {}
  for p = 1, T_used do used[p] = periods[p] end
  local U = { n = n, periods = used, g = {}, w = {}, Y = {}, X = {}, id = {}, nobs = 0 }
  local wsum = 0
  for i, u in ipairs(units) do
    U.id[i] = u.id
    U.g[i] = (recode and u.cohort == recode) and 0 or u.cohort
    U.w[i] = u.w
    wsum = wsum + u.w
    local Yi, Xi = {}, {}
    for p = 1, T_used do
      local r = u.rows[p]
      if r then
        U.nobs = U.nobs + 1
        Yi[p] = P.Y[r]
        local x = { 1 }
        for j, v in ipairs(P.X[r]) do x[j + 1] = v end
        Xi[p] = x
      end
    end
    U.Y[i], U.X[i] = Yi, Xi
  end
  if wsum <= 0 then fail("the sampling weights sum to zero") end
  -- did's weightsname convention: weights normalised to mean 1.
  for i = 1, n do U.w[i] = U.w[i] * n / wsum end
  local seen, cohorts = {}, {}
  for i = 1, n do
    local g = U.g[i]
    if g ~= 0 and not seen[g] then seen[g] = true; cohorts[#cohorts + 1] = g end
  end
  table.sort(cohorts)
  U.cohorts = cohorts
  if #cohorts == 0 then
    fail("no treated cohort left to estimate (see the notes: " .. table.concat(notes, "; ") .. ")")
  end
  -- The cluster of each unit (did's clustervars): constant within a unit.
  if o.cluster and o.cluster ~= P.entity then
    local names = {}
    for _, v in ipairs(d:names()) do names[v] = true end
    if not names[o.cluster] then fail("the data have no cluster column '" .. o.cluster .. "'") end
    local col = d:column(o.cluster)
    if type(col) == "userdata" then col = col:totable() end
    local code, ncl = {}, 0
    U.cluster = {}
    for i, u in ipairs(units) do
      local k
      for p = 1, T do
        local r = u.rows[p]
        if r then
          local v = col[r]
          if v == nil or v ~= v then fail(string.format("cluster column '%s' is missing in row %d", o.cluster, r)) end
          local key = util.key_of(v)
          if k == nil then k = key
          elseif k ~= key then
            fail(string.format("cluster column '%s' varies within unit %s; clusters must contain whole units",
              o.cluster, util.key_of(u.id)))
          end
        end
      end
      if code[k] == nil then ncl = ncl + 1; code[k] = ncl end
      U.cluster[i] = code[k]
    end
    U.n_clusters = ncl
  end
  return U, notes
end

-- ---- ATT(g,t) ----------------------------------------------------------------------------

-- Position of the last period before g - anticipation, or nil.
local function last_pre(periods, g, antic)
  local b
  for p, t in ipairs(periods) do if t + antic < g then b = p end end
  return b
end

-- The rows of one panel 2x2 comparison between period positions c and base:
-- per unit of the cohort (member(i) == 1) or the comparison group
-- (member(i) == 0) observed in both periods (all of them in a balanced
-- panel), the change in the outcome with the covariates of the earlier
-- period.  Returns the estimator's arguments and the unit of each row, or
-- nil and why the comparison is impossible.
local function panel_rows(U, c, base, member)
  local idx, dy, D, X, w = {}, {}, {}, {}, {}
  local early = math.min(base, c)
  local nt = 0
  for i = 1, U.n do
    local m = member(i)
    if m and U.Y[i][c] and U.Y[i][base] then
      local k = #idx + 1
      idx[k], dy[k], D[k], X[k], w[k] = i, U.Y[i][c] - U.Y[i][base], m, U.X[i][early], U.w[i]
      nt = nt + m
    end
  end
  if nt == 0 then return nil, "no units of the cohort" end
  if nt == #idx then return nil, "no comparison units" end
  return idx, { dy, D, X, w }
end

-- The rows of one repeated cross-section comparison: every observation of
-- the cohort or the comparison group in period c (post = 1) or base (post =
-- 0), with the covariates of its own period; did's att_gt refuses a cell
-- with an empty one of the four groups.
local function rc_rows(U, c, base, member)
  local idx, y, post, D, X, w = {}, {}, {}, {}, {}, {}
  local count = { [0] = { [0] = 0, [1] = 0 }, [1] = { [0] = 0, [1] = 0 } }
  for i = 1, U.n do
    local m = member(i)
    if m then
      for _, p in ipairs { base, c } do
        if U.Y[i][p] then
          local k = #idx + 1
          local q = p == c and 1 or 0
          idx[k], y[k], post[k], D[k], X[k], w[k] = i, U.Y[i][p], q, m, U.X[i][p], U.w[i]
          count[m][q] = count[m][q] + 1
        end
      end
    end
  end
  local t, b = fmt(U.periods[c]), fmt(U.periods[base])
  if count[1][1] == 0 then return nil, "no observations of the cohort in " .. t end
  if count[1][0] == 0 then return nil, "no observations of the cohort in " .. b end
  if count[0][1] == 0 then return nil, "no comparison observations in " .. t end
  if count[0][0] == 0 then return nil, "no comparison observations in " .. b end
  return idx, { y, post, D, X, w }
end

-- Every ATT(g,t), in did's order (cohort, then period), with its influence
-- function over the n units.
local function att_gt(U, o, antic, notes)
  local periods, n = U.periods, U.n
  local T = #periods
  local cells = {}
  local estimate = (o.rc and rc_estimators or estimators)[o.est]
  local rows_of = o.rc and rc_rows or panel_rows
  for _, g in ipairs(U.cohorts) do
    local pre = last_pre(periods, g, antic)
    local first = o.base == "varying" and 2 or 1
    for c = first, T do
      local base = o.base == "varying" and c - 1 or pre
      -- Not-yet-treated comparison units are untreated (anticipation
      -- included) in both periods of the comparison.
      local tc = periods[math.max(c, base)]
      local post = g <= periods[c]
      if post then base = pre end
      local cell = { group = g, time = periods[c], e = periods[c] - g, post = post, base = periods[base] }
      cells[#cells + 1] = cell
      if base == c then
        -- The universal base period itself: normalised to 0, as did reports it.
        cell.att, cell.inf, cell.reference = 0, nil, true
      else
        -- 1 for the cohort, 0 for the comparison group, nil otherwise.
        local function member(i)
          local gi = U.g[i]
          if gi == g then return 1 end
          if gi == 0 or (o.control == "notyet" and gi > tc + antic) then return 0 end
        end
        local idx, args = rows_of(U, c, base, member)
        local att, inf, why
        if not idx then
          why = args
        else
          -- The sampling weights of the cell's rows, normalised to mean 1 (as DRDID does).
          local w, n1, ws = args[#args], #idx, 0
          for k = 1, n1 do ws = ws + w[k] end
          for k = 1, n1 do w[k] = w[k] * n1 / ws end
          att, inf = estimate(table.unpack(args))
          if att == nil then why = inf
          elseif att ~= att then why = "the estimate is not a number (every comparison row trimmed?)" end
        end
        if why then
          cell.att = 0 / 0
          notes[#notes + 1] = string.format("ATT(%s,%s) cannot be estimated: %s", fmt(g), fmt(periods[c]), why)
        else
          -- Scale to all n units (the cell used n1 rows, as did does) and sum
          -- each unit's rows: a panel unit observed in both periods of a
          -- repeated cross-section comparison has two.
          local full, n1 = {}, #idx
          for i = 1, n do full[i] = 0 end
          for k = 1, n1 do full[idx[k]] = full[idx[k]] + inf[k] * n / n1 end
          cell.att, cell.inf = att, full
        end
      end
    end
  end
  return cells
end

-- ---- inference ---------------------------------------------------------------------------

local TINY = math.sqrt(2.220446049250313e-16) * 10   -- did: a standard error below this is NA

-- Sums of an influence function by cluster (by unit without clusters).
local function by_cluster(U, inf)
  if not U.cluster then return inf end
  local s = {}
  for c = 1, U.n_clusters do s[c] = 0 end
  for i = 1, U.n do s[U.cluster[i]] = s[U.cluster[i]] + inf[i] end
  return s
end

-- Analytic standard error: sqrt(sum_c S_c^2) / n with S_c the influence
-- function summed over cluster c (a unit without clusters): did's
-- sqrt(mean(IF^2) / n) without clusters.
local function analytic_se(U, inf)
  if not inf then return 0 / 0 end
  local s, v = by_cluster(U, inf), 0
  for c = 1, #s do v = v + s[c] * s[c] end
  local se = math.sqrt(v) / U.n
  if se <= TINY then return 0 / 0 end
  return se
end

-- Type-1 quantile (R's quantile(type = 1), as did's mboot uses): the
-- smallest value with an empirical CDF >= p.
local function quantile1(sorted, p)
  local k = math.ceil(#sorted * p - 1e-12)
  return sorted[math.max(1, math.min(#sorted, k))]
end

local IQR_NORMAL = 1.3489795003921634   -- qnorm(0.75) - qnorm(0.25)

--- The multiplier bootstrap of did's mboot over the influence functions
--- infs (an array of n-vectors; nil entries are degenerate): Rademacher
--- multipliers, one per cluster (per unit without clusters), from sp.rng(seed).
--- Returns the bootstrap standard errors (interquartile range / 1.349) and
--- the critical value of the sup-t statistic at `level`.  The same seed
--- gives the same multipliers, so the aggregations of a fit share them.
local function multiplier_bootstrap(U, infs, B, seed, level)
  local K = #infs
  local sums, live = {}, {}
  for k = 1, K do
    if infs[k] then sums[k] = by_cluster(U, infs[k]); live[#live + 1] = k end
  end
  local G = U.cluster and U.n_clusters or U.n
  local n = U.n
  local rng = core.rng(seed)
  local draws = {}
  for k = 1, K do draws[k] = {} end
  local v = {}
  for b = 1, B do
    for c = 1, G do v[c] = rng:uniform() < 0.5 and -1 or 1 end
    for _, k in ipairs(live) do
      local s, S = 0, sums[k]
      for c = 1, G do s = s + v[c] * S[c] end
      draws[k][b] = s / n
    end
  end
  local se, tstats = {}, {}
  for _, k in ipairs(live) do
    local sorted = table.move(draws[k], 1, B, 1, {})
    table.sort(sorted)
    local s = (quantile1(sorted, 0.75) - quantile1(sorted, 0.25)) / IQR_NORMAL
    if s > TINY then se[k] = s end
  end
  for b = 1, B do
    local m = 0
    for _, k in ipairs(live) do
      if se[k] then m = math.max(m, math.abs(draws[k][b] / se[k])) end
    end
    tstats[b] = m
  end
  table.sort(tstats)
  for k = 1, K do if se[k] == nil then se[k] = 0 / 0 end end
  return se, quantile1(tstats, level)
end

-- Standard errors and the uniform critical value for the influence
-- functions infs: bootstrap ones when the fit has draws, analytic ones and
-- no uniform critical value otherwise.  Pointwise and uniform intervals are
-- set on rows (parallel to infs).
local function inference(S, infs, rows)
  local z = core.dist.qnorm(1 - (1 - S.level) / 2)
  local se, crit
  if S.bootstrap > 0 then
    se, crit = multiplier_bootstrap(S.U, infs, S.bootstrap, S.seed, S.level)
    -- did falls back to pointwise bands when the sup-t value is below the normal one.
    if crit ~= crit or crit < z then crit = z end
  else
    se = {}
    for k = 1, #infs do se[k] = analytic_se(S.U, infs[k]) end
  end
  for k, r in ipairs(rows) do
    r.se = se[k]
    if r.att == r.att and se[k] == se[k] then
      r.lo, r.hi = r.att - z * se[k], r.att + z * se[k]
      if crit then r.ulo, r.uhi = r.att - crit * se[k], r.att + crit * se[k] end
    end
  end
  return crit
end

-- ---- aggregation (did's aggte) -----------------------------------------------------------

-- The influence function of sum_k a_k att_k with weights a_k = pg_k / sum(pg)
-- estimated from the cohort shares: sum_k a_k IF_k plus the effect of
-- estimating the weights (did's wif).
local function combined(S, cells, keep)
  local U, n = S.U, S.U.n
  local total = 0
  for _, k in ipairs(keep) do total = total + S.pg[cells[k].group] end
  local att = 0
  for _, k in ipairs(keep) do att = att + cells[k].att * S.pg[cells[k].group] / total end
  local inf = {}
  -- Weights: d a_k = (w_i 1{G_i = g_k} - pg_k) / total - a_k * sum_j (w_i 1{G_i = g_j} - pg_j) / total.
  for i = 1, n do
    local gi, wi = U.g[i], U.w[i]
    local s = 0
    for _, k in ipairs(keep) do
      local c = cells[k]
      s = s + ((gi == c.group) and wi or 0) - S.pg[c.group]
    end
    local acc = 0
    for _, k in ipairs(keep) do
      local c = cells[k]
      local a = S.pg[c.group] / total
      local ind = ((gi == c.group) and wi or 0) - S.pg[c.group]
      acc = acc + c.att * (ind / total - a * s / total)
      if c.inf then acc = acc + a * c.inf[i] end
    end
    inf[i] = acc
  end
  return att, inf
end

-- The plain average of n-unit estimates with influence functions (no
-- estimated weights); a part without one (a reference cell) adds zeros.
local function average(parts, n)
  local m = #parts
  local att, inf = 0, {}
  for _, p in ipairs(parts) do att = att + p.att / m end
  for i = 1, n do
    local s = 0
    for _, p in ipairs(parts) do if p.inf then s = s + p.inf[i] end end
    inf[i] = s / m
  end
  return att, inf
end

local AGG_OPTIONS = { "min_e", "max_e", "balance_e" }

local function aggregate(self, kind, aopts)
  local S = self.private
  local cells = S.cells
  if kind ~= "simple" and kind ~= "dynamic" and kind ~= "group" and kind ~= "calendar" then
    raise("did: aggregate: type must be \"simple\", \"dynamic\", \"group\" or \"calendar\", got " ..
      (type(kind) == "string" and ("\"" .. kind .. "\"") or tostring(kind)))
  end
  aopts = util.check_options(aopts, AGG_OPTIONS, "did: aggregate")
  for _, key in ipairs(AGG_OPTIONS) do
    local v = aopts[key]
    if v ~= nil and math.type(v) ~= "integer" then
      raise("did: aggregate: option '" .. key .. "' must be an integer event time, got " .. tostring(v))
    end
  end
  local min_e, max_e, balance_e = aopts.min_e or -math.huge, aopts.max_e or math.huge, aopts.balance_e
  -- Cells that could not be estimated are left out (did's na.rm = TRUE).
  local ok = {}
  for k, c in ipairs(cells) do ok[k] = c.att == c.att end
  local periods = S.U.periods
  local rows, parts, overall_att, overall_inf = {}, {}

  if kind == "simple" then
    local keep = {}
    for k, c in ipairs(cells) do
      if ok[k] and c.post and c.time <= c.group + max_e then keep[#keep + 1] = k end
    end
    if #keep == 0 then raise("did: aggregate: no post-treatment ATT(g,t) to aggregate") end
    overall_att, overall_inf = combined(S, cells, keep)
  elseif kind == "group" then
    for _, g in ipairs(S.U.cohorts) do
      local keep = {}
      for k, c in ipairs(cells) do
        if ok[k] and c.group == g and c.post and c.time <= g + max_e then keep[#keep + 1] = k end
      end
      if #keep > 0 then
        -- Within a cohort the weights are equal and known: a plain average.
        local sub = {}
        for j, k in ipairs(keep) do sub[j] = cells[k] end
        local att, inf = average(sub, S.U.n)
        rows[#rows + 1] = { group = g, att = att }
        parts[#parts + 1] = { att = att, inf = inf, group = g }
      end
    end
    if #parts == 0 then raise("did: aggregate: no post-treatment ATT(g,t) to aggregate") end
    -- Overall: cohort effects weighted by cohort size, with the weights' term.
    local all = {}
    for k = 1, #parts do all[k] = k end
    overall_att, overall_inf = combined(S, parts, all)
  elseif kind == "dynamic" then
    local tmin, tmax = periods[1], periods[#periods]
    local include = {}
    for k, c in ipairs(cells) do
      include[k] = ok[k] and (balance_e == nil or tmax - c.group >= balance_e)
    end
    local es, seen = {}, {}
    for _, c in ipairs(cells) do
      if not seen[c.e] then seen[c.e] = true; es[#es + 1] = c.e end
    end
    table.sort(es)
    for _, e in ipairs(es) do
      local inside = e >= min_e and e <= max_e
      if balance_e ~= nil then inside = inside and e <= balance_e and e >= balance_e - (tmax - tmin) end
      if inside then
        local keep = {}
        for k, c in ipairs(cells) do if include[k] and c.e == e then keep[#keep + 1] = k end end
        if #keep > 0 then
          local att, inf = combined(S, cells, keep)
          rows[#rows + 1] = { e = e, att = att }
          parts[#parts + 1] = { att = att, inf = inf, e = e }
        end
      end
    end
    local post = {}
    for _, p in ipairs(parts) do if p.e >= 0 then post[#post + 1] = p end end
    if #post == 0 then raise("did: aggregate: no event time >= 0 in the window") end
    overall_att, overall_inf = average(post, S.U.n)
  else -- calendar
    local gmin = math.huge
    for k, c in ipairs(cells) do if ok[k] then gmin = math.min(gmin, c.group) end end
    for _, t in ipairs(periods) do
      if t >= gmin then
        local keep = {}
        for k, c in ipairs(cells) do if ok[k] and c.time == t and c.post then keep[#keep + 1] = k end end
        if #keep > 0 then
          local att, inf = combined(S, cells, keep)
          rows[#rows + 1] = { time = t, att = att }
          parts[#parts + 1] = { att = att, inf = inf }
        end
      end
    end
    if #parts == 0 then raise("did: aggregate: no post-treatment ATT(g,t) to aggregate") end
    overall_att, overall_inf = average(parts, S.U.n)
  end

  local infs = {}
  for k, p in ipairs(parts) do infs[k] = p.inf end
  local crit = #rows > 0 and inference(S, infs, rows) or nil
  local overall = { att = overall_att }
  inference(S, { overall_inf }, { overall })
  overall.ulo, overall.uhi = nil, nil
  local result = { type = kind, overall = overall, rows = rows, crit = crit, level = S.level,
    min_e = aopts.min_e, max_e = aopts.max_e, balance_e = balance_e, notes = S.notes }
  if kind == "dynamic" then
    -- With a universal base period, e = -1 - anticipation is the reference (0 by construction).
    for _, r in ipairs(rows) do r.ref = S.base == "universal" and r.e == -1 - S.anticipation or nil end
    result.plot = function(res, path, popts) return C.plot_events(res.rows, path, popts, S.level) end
  end
  return result
end

-- ---- the fit -----------------------------------------------------------------------------

--- did's pre-test of parallel trends: the Wald statistic of "every
--- pre-treatment ATT(g,t) is 0" with the analytic covariance V (also when
--- the fit has bootstrap draws, as did does), chi2 with one degree of
--- freedom per cell.  Reference cells of a universal base period (0 by
--- construction) are left out; nil without pre-treatment cells.
local function pre_trend_test(cells, V)
  local pre = {}
  for k, c in ipairs(cells) do
    if not c.post and not c.reference and c.att == c.att then pre[#pre + 1] = k end
  end
  if #pre == 0 then return nil end
  local rows, a = {}, {}
  for i, k in ipairs(pre) do
    rows[i], a[i] = {}, { cells[k].att }
    for j, l in ipairs(pre) do rows[i][j] = V[k][l] end
  end
  local ok, x = pcall(function() return core.matrix(rows):solve(core.matrix(a)) end)
  if not ok then return nil end
  local W = 0
  for i = 1, #pre do W = W + a[i][1] * x:get(i, 1) end
  return { statistic = W, df = #pre, pvalue = core.dist.pchisq(W, #pre, true) }
end

local function cell_name(c) return string.format("ATT(%s,%s)", fmt(c.group), fmt(c.time)) end

--- The dynamic aggregation's point estimates {[e] = effect} for event times
--- e >= 0, from coefficients coef (cell name -> ATT(g,t), as fit:draw gives;
--- the estimates when nil), the weights held at the estimated cohort shares:
--- the effect path a roll-out experiment (spillover.rollout) draws from.
local function dynamic_effects(self, coef)
  local S = self.private
  local num, den = {}, {}
  for _, c in ipairs(S.cells) do
    local v = c.att
    if coef then v = coef[cell_name(c)] end
    if c.e >= 0 and c.att == c.att and v == v then
      num[c.e] = (num[c.e] or 0) + S.pg[c.group] * v
      den[c.e] = (den[c.e] or 0) + S.pg[c.group]
    end
  end
  local out = {}
  for e, s in pairs(num) do out[e] = s / den[e] end
  return out
end

--- Callaway & Sant'Anna ATT(g,t) (see the header and docs/estimators/did.md).
function M.cs(d, formula, opts)
  local o = parse_options(opts)
  local P = C.prepare(d, formula, opts, "did")
  local U, notes = sample(P, o, d)
  local antic = P.anticipation
  local cells = att_gt(U, o, antic, notes)
  -- Cohort shares (did's pg): the weighted share of units in each cohort.
  local pg = {}
  for _, g in ipairs(U.cohorts) do pg[g] = 0 end
  for i = 1, U.n do
    local g = U.g[i]
    if g ~= 0 then pg[g] = pg[g] + U.w[i] / U.n end
  end
  local S = { U = U, cells = cells, pg = pg, bootstrap = o.bootstrap, seed = o.seed, level = o.level,
    notes = notes, base = o.base, anticipation = antic }
  local infs = {}
  for k, c in ipairs(cells) do infs[k] = c.inf end
  local crit = inference(S, infs, cells)
  -- The covariance of the ATT(g,t): sum_c S_c S_c' / n^2 over clusters.
  local K, n = #cells, U.n
  local sums = {}
  for k, c in ipairs(cells) do sums[k] = c.inf and by_cluster(U, c.inf) or false end
  local V = {}
  for a = 1, K do
    V[a] = {}
    for b = 1, K do
      if a > b then V[a][b] = V[b][a]
      elseif not sums[a] or not sums[b] then V[a][b] = (a == b and cells[a].att ~= cells[a].att) and 0 / 0 or 0
      else
        local s, sa, sb = 0, sums[a], sums[b]
        for c = 1, #sa do s = s + sa[c] * sb[c] end
        V[a][b] = s / (n * n)
      end
    end
  end
  local pretest = pre_trend_test(cells, V)
  -- A one-unit cohort's pre-treatment cells all move with that one unit:
  -- their covariance is nearly singular and the Wald statistic explodes.
  if pretest then
    local size = {}
    for i = 1, U.n do size[U.g[i]] = (size[U.g[i]] or 0) + 1 end
    local single = {}
    for _, c in ipairs(cells) do
      if not c.post and size[c.group] == 1 and not single[c.group] then
        single[c.group] = true
        single[#single + 1] = fmt(c.group)
      end
    end
    if #single > 0 then
      pretest.note = "cohort " .. table.concat(single, ", ") .. " has one unit: the pre-test's covariance is " ..
        "close to singular and its statistic is not reliable"
      notes[#notes + 1] = "pre-test: " .. pretest.note
    end
  end
  -- Bootstrap standard errors replace the analytic diagonal.
  if o.bootstrap > 0 then
    for k, c in ipairs(cells) do
      if c.se == c.se and V[k][k] > 0 then
        local r = c.se / math.sqrt(V[k][k])
        for j = 1, K do V[k][j] = V[k][j] * r; V[j][k] = V[j][k] * r end
        V[k][k] = c.se * c.se
      end
    end
  end
  local names, b, att_rows = {}, {}, {}
  for k, c in ipairs(cells) do
    names[k], b[k] = cell_name(c), c.att
    att_rows[k] = { group = c.group, time = c.time, e = c.e, post = c.post, att = c.att, se = c.se,
      lo = c.lo, hi = c.hi, ulo = c.ulo, uhi = c.uhi, base = c.base }
  end
  local fit = fitmod.new {
    names = names, b = b, V = V, nobs = U.nobs, dist = "normal",
    estimator = "did", method = "cs",
    label = "Callaway & Sant'Anna (" .. o.est .. (o.panel and "" or ", repeated cross-sections") .. ")",
    formula = formula, notes = notes, att_gt = att_rows, crit = crit, pretest = pretest,
    stats = { n_units = U.n, n_obs = U.nobs, panel = o.panel, rc = o.rc, n_periods = #U.periods,
      n_clusters = U.n_clusters or U.n, est = o.est,
      control = o.control, base = o.base, anticipation = antic, bootstrap = o.bootstrap, seed = o.seed },
    private = S,
    aggregate = aggregate, dynamic_effects = dynamic_effects, cohort = opts.cohort,
    plot = function(self, path, popts) return aggregate(self, "dynamic"):plot(path, popts) end,
  }
  local estimated = false
  for _, c in ipairs(cells) do estimated = estimated or (c.post and c.att == c.att) end
  if not estimated then
    local why = {}
    for _, note in ipairs(notes) do if note:find("cannot be estimated", 1, true) then why[#why + 1] = note end end
    fail("no post-treatment ATT(g,t) could be estimated: " ..
      (why[1] or "no treated cohort has a post-treatment period"))
  end
  fit.overall = aggregate(fit, "simple").overall
  return fit
end

return M
