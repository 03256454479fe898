-- test_iv: 2SLS with absorbed fixed effects and its diagnostics (spillover.iv).
-- Simulations with known coefficients, closed-form identities between the
-- weak-instrument statistics, and every documented error.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local iv = require "spillover.iv"

-- ---- simulated data -------------------------------------------------------------

--- n rows: y = 1 + 2 x + 0.5 w + u, w endogenous (shares the shock v with u),
--- z1, z2 instruments of strength pi, optional entity effects a_g (G groups)
--- correlated with w, optional heteroskedasticity.
local function simulate(seed, n, pi, opts)
  opts = opts or {}
  local r = sp.rng(seed)
  local cols = { y = {}, x = {}, w = {}, w2 = {}, z1 = {}, z2 = {}, z3 = {}, g = {}, zdup = {} }
  local G = opts.groups or 1
  local alpha = {}
  for j = 1, G do alpha[j] = r:normal() end
  for i = 1, n do
    local g = (i - 1) % G + 1
    local x, z1, z2, z3 = r:normal(), r:normal(), r:normal(), r:normal()
    local v, v2, e = r:normal(), r:normal(), r:normal()
    local a = opts.groups and 2 * alpha[g] or 0
    if opts.zfe then z1 = z1 + a end   -- instrument correlated with the effects
    local w = pi * (z1 + z2) + 0.3 * x + v + a
    local w2 = pi * (z2 - z3) + 0.5 * v2 + a
    local scale = opts.hetero and math.sqrt(0.2 + z1 * z1) or 1
    local u = (0.8 * v + 0.6 * e) * scale
    cols.y[i] = 1 + 2 * x + 0.5 * w + (opts.two and -1 * w2 or 0) + u + a
    cols.x[i], cols.w[i], cols.w2[i], cols.z1[i], cols.z2[i], cols.z3[i] = x, w, w2, z1, z2, z3
    cols.g[i] = g
    cols.zdup[i] = 2 * x + 1
  end
  return sp.frame(cols)
end

-- ---- recovery of known coefficients ---------------------------------------------------

do
  local d = simulate(20240601, 5000, 1.0)
  local f = iv.ivreg(d, "y ~ x | w ~ z1 + z2")
  local b = f:coef()
  T.near(b.w, 0.5, 0.03, "strong instruments: 2SLS recovers the endogenous slope 0.5")
  T.near(b.x, 2, 0.02, "strong instruments: 2SLS recovers the exogenous slope 2")
  T.near(b["(Intercept)"], 1, 0.05, "strong instruments: 2SLS recovers the intercept 1")
  local ols = sp.ols(d, "y ~ x + w"):coef()
  T.check(ols.w - 0.5 > 5 * f:se().w, "OLS is biased upwards by the endogeneity (2SLS is not)",
    string.format("ols %.4f, se 2sls %.4f", ols.w, f:se().w))
  T.check(f.names[1] == "(Intercept)" and f.names[2] == "x" and f.names[3] == "w",
    "coefficients named as written: exogenous first, then endogenous")
  local dg = f.stats.diagnostics
  T.check(dg.weak_instruments_first_stage_F.statistic > 1000, "strong instruments: first-stage F is large")
  T.check(dg.wu_hausman.pvalue < 1e-6, "Wu-Hausman rejects exogeneity of w (it is endogenous)")
  T.check(dg.sargan.pvalue > 0.001, "Sargan does not reject valid instruments")
  T.check(dg.sargan.df1 == 1, "Sargan df = excluded instruments - endogenous")
  -- structural residuals use the actual w, not its fitted values
  local e, X = f.resid_values, sp.matrix(d, { "x", "w" }, { intercept = true })
  local r = d.y - X * sp.matrix(f.b)
  T.near((r - e):abs():max(), 0, 1e-12, "residuals are y - X b with the actual endogenous regressor")
  -- sp.ols dispatches to the same estimator
  local g = sp.ols(d, "y ~ x | w ~ z1 + z2")
  T.near(g:coef().w, b.w, 1e-14, "sp.ols with an IV part gives the 2SLS estimate")
  T.check(g.estimator == "iv", "sp.ols with an IV part is labelled iv")
end

do -- weak instruments
  local d = simulate(7, 400, 0.02)
  local f = iv.ivreg(d, "y ~ x | w ~ z1 + z2")
  local F = f.stats.diagnostics.weak_instruments_first_stage_F
  T.check(F.statistic < 10, "weak instruments: first-stage F below the rule-of-thumb 10",
    "F = " .. F.statistic)
  T.check(f.stats.diagnostics.cragg_donald_F.statistic < 10, "weak instruments: Cragg-Donald F is small")
  T.check(f.stats.first_stage[1].partial_r2 < 0.05, "weak instruments: partial R2 of the excluded instruments is small")
end

do -- fixed effects: 2SLS within groups recovers the slopes with effects correlated with w
  local d = simulate(99, 3000, 1.0, { groups = 60, zfe = true })
  local f = iv.ivreg(d, "y ~ x | g | w ~ z1 + z2")
  T.check(math.abs(f:coef().w - 0.5) < 3 * f:se().w, "fixed effects: 2SLS within recovers 0.5 (within 3 SE)",
    string.format("%.4f (se %.4f)", f:coef().w, f:se().w))
  T.check(math.abs(f:coef().x - 2) < 3 * f:se().x, "fixed effects: 2SLS within recovers 2 (within 3 SE)")
  T.check(f.stats.df_resid == 3000 - 2 - 60, "fixed effects: df = n - k - groups")
  -- the design, the demeaning and every least squares run on two threads: the same bits
  local f2 = iv.ivreg(d, "y ~ x | g | w ~ z1 + z2", { threads = 2, vcov = { cluster = "g" } })
  local f1 = iv.ivreg(d, "y ~ x | g | w ~ z1 + z2", { threads = 1, vcov = { cluster = "g" } })
  T.check(f2:coef().w == f1:coef().w and f2:coef().x == f1:coef().x and f2:se().w == f1:se().w and
    f2.stats.ssr == f1.stats.ssr and f2.stats.F.statistic == f1.stats.F.statistic, "2SLS: threads = 2 gives the bits of threads = 1")
  local pooled = iv.ivreg(d, "y ~ x | w ~ z1 + z2")
  T.check(math.abs(pooled:coef().w - 0.5) > 5 * pooled:se().w, "without the effects 2SLS is biased (they load on w)")
  -- fixed effects via dummies give the same 2SLS
  local dum = iv.ivreg(d, "y ~ x + i(g) | w ~ z1 + z2")
  T.near(dum:coef().w, f:coef().w, 1e-9, "absorbed effects equal dummy variables (coefficient)")
  T.near(dum:se().w, f:se().w, 1e-9, "absorbed effects equal dummy variables (iid SE)")
  T.near(dum.stats.diagnostics.cragg_donald_F.statistic, f.stats.diagnostics.cragg_donald_F.statistic, 1e-9,
    "Cragg-Donald F: absorbed effects equal dummies (sdofminus = absorbed dof)")
  T.near(dum.stats.diagnostics.sargan.statistic, f.stats.diagnostics.sargan.statistic, 1e-8,
    "Sargan: absorbed effects equal dummies")
  -- fitted values, fixed effects and prediction agree
  local fx = f:fixef()
  T.check(fx.g ~= nil, "fixef returns the group effects")
  local pr = f:predict(d)
  local fit = f.fitted_values
  T.check((pr - fit):abs():max() < 1e-9, "predict on the estimation data equals the fitted values")
end

-- ---- closed forms between the weak-instrument statistics ------------------------------

do
  local d = simulate(11, 800, 0.3, { hetero = true })
  local f = iv.ivreg(d, "y ~ x | w ~ z1 + z2")
  local dg, fs = f.stats.diagnostics, f.stats.first_stage[1]
  T.near(dg.cragg_donald_F.statistic, fs.excluded_instruments_F.statistic, 1e-10,
    "one endogenous, iid: Cragg-Donald F = first-stage F of the excluded instruments")
  T.check(dg.cragg_donald_F.df2 == 800 - 4, "Cragg-Donald df2 = n - all instruments (incl. the constant)")
  T.near(dg.kp_rk_wald_F.statistic, dg.cragg_donald_F.statistic, 1e-10,
    "iid vcov: the rk Wald F is the Cragg-Donald F")
  T.near(dg.kp_rk_LM.statistic, 800 * fs.partial_r2, 1e-10,
    "iid vcov, one endogenous: rk LM = Anderson's n times the squared canonical correlation")
  T.check(dg.kp_rk_LM.df1 == 2, "rk LM df = excluded - endogenous + 1")
  T.check(dg.hansen_J == nil, "iid vcov: no Hansen J (Sargan instead)")

  local h = iv.ivreg(d, "y ~ x | w ~ z1 + z2", { vcov = "hc1" })
  local hd, hfs = h.stats.diagnostics, h.stats.first_stage[1]
  T.near(hd.kp_rk_wald_F.statistic, hfs.excluded_instruments_F_robust.statistic, 1e-9,
    "one endogenous, HC1: rk Wald F = robust first-stage Wald F")
  T.check(math.abs(hd.kp_rk_wald_F.statistic - hd.cragg_donald_F.statistic) > 0.01 * hd.cragg_donald_F.statistic,
    "heteroskedastic data: rk Wald F differs from Cragg-Donald")
  T.check(hd.hansen_J ~= nil and hd.hansen_J.df1 == 1, "robust vcov: Hansen J reported with df 1")
  T.check(hd.sargan ~= nil, "robust vcov: Sargan still reported (AER reports it)")

end

do -- cluster: rk Wald F equals the Stata cluster-robust first-stage F (p = 1, no fixed effects)
  local d = simulate(5, 900, 0.3, { hetero = true, groups = 30 })
  local c = iv.ivreg(d, "y ~ x | w ~ z1 + z2", { vcov = { cluster = "g" } })
  local cd, cfs = c.stats.diagnostics, c.stats.first_stage[1]
  T.near(cd.kp_rk_wald_F.statistic, cfs.excluded_instruments_F_robust.statistic, 1e-9,
    "one endogenous, cluster: rk Wald F = cluster-robust first-stage F (Stata small-sample factors)")
  T.check(cd.kp_rk_wald_F.df2 == 29, "cluster: rk Wald F df2 = G - 1")
end

do -- two endogenous regressors, homoskedastic: KP approaches Cragg-Donald
  local d = simulate(3, 20000, 0.3, { two = true })
  local iid = iv.ivreg(d, "y ~ x | w + w2 ~ z1 + z2 + z3")
  local rob = iv.ivreg(d, "y ~ x | w + w2 ~ z1 + z2 + z3", { vcov = "hc0" })
  T.near(iid:coef().w2, -1, 0.05, "two endogenous: recovers -1")
  local cd = iid.stats.diagnostics.cragg_donald_F.statistic
  T.near(rob.stats.diagnostics.kp_rk_wald_F.statistic, cd, 0.05,
    "homoskedastic data, two endogenous: rk Wald F within 5% of Cragg-Donald F")
  -- The LM form estimates the covariance from the variables themselves (the
  -- residuals under the null), so it approaches Anderson's LM near the null only.
  local dw = simulate(4, 20000, 0.03, { two = true })
  local li = iv.ivreg(dw, "y ~ x | w + w2 ~ z1 + z2 + z3").stats.diagnostics.kp_rk_LM.statistic
  local lr = iv.ivreg(dw, "y ~ x | w + w2 ~ z1 + z2 + z3", { vcov = "hc0" }).stats.diagnostics.kp_rk_LM.statistic
  T.near(lr, li, 0.05, "homoskedastic data near the null, two endogenous: rk LM within 5% of Anderson's LM")
  T.check(cd < math.min(iid.stats.first_stage[1].excluded_instruments_F.statistic,
    iid.stats.first_stage[2].excluded_instruments_F.statistic) + 1e-9,
    "two endogenous: Cragg-Donald F is at most the smallest first-stage F")
  T.check(iid.stats.diagnostics.kp_rk_LM.df1 == 2, "two endogenous, three instruments: rk LM df 2")
  T.check(#iid.stats.diagnostics.weak_instruments_first_stage_F == 2
    and iid.stats.diagnostics.weak_instruments_first_stage_F[2].endog == "w2",
    "two endogenous: one first-stage F per endogenous regressor")
  T.check(rob.stats.diagnostics.hansen_J.pvalue > 0.001, "Hansen J does not reject valid instruments")
end

do -- Wu-Hausman equals the squared t of the control-function residual (one endogenous, iid)
  local d = simulate(17, 600, 0.5)
  local f = iv.ivreg(d, "y ~ x | w ~ z1 + z2")
  local fs = sp.ols(d, "w ~ x + z1 + z2")
  d.vhat = fs.resid_values
  local cf = sp.ols(d, "y ~ x + w + vhat")
  T.near(f.stats.diagnostics.wu_hausman.statistic, cf:tstat().vhat ^ 2, 1e-9,
    "Wu-Hausman F = t^2 of the first-stage residual in the control-function regression")
  T.near(f:coef().w, cf:coef().w, 1e-9, "control function reproduces the 2SLS coefficient")
end

-- ---- vcov options and compat presets --------------------------------------------------

do
  local d = simulate(21, 500, 0.5, { groups = 25, hetero = true })
  local ok = true
  for _, vc in ipairs { "iid", "hc0", "hc1", "hc2", "hc3", { cluster = "g" }, { cluster = "g", type = "hc1" } } do
    for _, compat in ipairs { "stata", "plm", "fixest", "sandwich", "statsmodels" } do
      local good, f = pcall(iv.ivreg, d, "y ~ x | w ~ z1 + z2", { vcov = vc, compat = compat })
      if not good or not (f:se().w > 0) then ok = false; print("  failed", compat, tostring(f)) end
    end
  end
  T.check(ok, "every vcov option runs under every compat preset")
  -- HC1 with sandwich compat is the textbook sandwich over [x, fitted w]
  local f = iv.ivreg(d, "y ~ x | w ~ z1 + z2", { vcov = "hc1", compat = "sandwich" })
  local fs = sp.ols(d, "w ~ x + z1 + z2")
  local Xh = sp.matrix.hcat(sp.matrix(d, { "x" }, { intercept = true }), d.w - fs.resid_values)
  local B = Xh:crossprod():inv()
  local e = f.resid_values
  local meat = Xh:t() * sp.matrix.diag(e:mul(e)) * Xh
  local V = B * meat * B * (500 / (500 - 3))
  T.near(math.sqrt(V:get(3, 3)), f:se().w, 1e-10, "HC1 sandwich uses [exog, fitted endog] and structural residuals")
  local p = iv.ivreg(d, "y ~ x | w ~ z1 + z2", { compat = "plm" })
  T.check(not p:uses_t() and p.stats.wald.kind == "Wald chi2", "compat plm: z statistics and a chi2 Wald test")
end

-- ---- errors --------------------------------------------------------------------------------

do
  local d = simulate(1, 200, 1.0)
  T.checkerr("2 endogenous regressors %(w, w2%) but only 1 excluded instrument %(z1%)",
    iv.ivreg, d, "y ~ x | w + w2 ~ z1")
  T.checkerr("excluded instrument 'zdup' is collinear with the exogenous regressors", iv.ivreg, d,
    "y ~ x | w ~ zdup")
  T.checkerr("'w' is listed both as an exogenous regressor", iv.ivreg, d, "y ~ x + w | w ~ z1")
  T.checkerr("instrument 'x' is also an exogenous regressor", iv.ivreg, d, "y ~ x | w ~ z1 + x")
  T.checkerr("'w' is both endogenous and one of its own excluded instruments", iv.ivreg, d, "y ~ x | w ~ z1 + w")
  T.checkerr("weights are not supported", iv.ivreg, d, "y ~ x | w ~ z1", { weights = "z3" })
  T.checkerr("the formula has no IV part", iv.ivreg, d, "y ~ x")
  T.checkerr("expected a formula string", iv.ivreg, d, 42)
  T.checkerr("vcov: unknown type 'hc9'", iv.ivreg, d, "y ~ x | w ~ z1", { vcov = "hc9" })
  T.checkerr("compat: unknown preset 'stat'", iv.ivreg, d, "y ~ x | w ~ z1", { compat = "stat" })
  T.checkerr("ivreg: unknown option 'instruments'", iv.ivreg, d, "y ~ x | w ~ z1", { instruments = "z2" })
  -- through sp.ols as well
  T.checkerr("but only 1 excluded instrument", sp.ols, d, "y ~ x | w + w2 ~ z1")
  local small = d:filter("z3 > 1.5")
  T.check(small:nrow() < 30, "small sample for the too-few-observations error")
  local tiny = sp.frame { y = { 1, 2, 3 }, x = { 1, 0, 2 }, w = { 3, 1, 2 }, z1 = { 0, 1, 1 }, z2 = { 2, 1, 0 } }
  T.checkerr("3 observations are too few for 3 instruments", iv.ivreg, tiny, "y ~ 1 | w ~ z1 + z2")
end

T.done()
