-- test_stata_parity: the Stata conventions of issue 16, each against
-- published Stata output or an exact identity.
--
-- Stata numbers for the simulated panel come from linearmodels' Stata run
-- (bashtage/linearmodels, linearmodels/tests/panel/results/
-- stata-panel-simulated-results.txt, commit d6f3596b; Stata 13, the do-file
-- is execute-stata-simulated-data.py there), on the same data file
-- (tests/reference/data/external/lm_simulated_panel.dta, xtset firm time).  The
-- _light and _heavy variables have missing values, which makes the panel
-- unbalanced (2239 and 891 rows of 991 and 639 firms).
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local pm = require "spillover.panel_models"

local EXT = "tests/reference/data/external/"
local sim = sp.read(EXT .. "lm_simulated_panel.dta")
sim:panel { entity = "firm", time = "time" }
local function simf(sfx, fe)
  local v = {}
  for j = 1, 5 do v[j] = "x" .. j .. sfx end
  return "y" .. sfx .. " ~ " .. table.concat(v, " + ") .. (fe and " | firm" or "")
end

-- ---- xtreg, fe vce(cluster firm) ------------------------------------------------------
-- Stata: V = (N-1)/(N-K) G/(G-1) B M B with K = slopes + the constant (the
-- firm effects are nested in the cluster); compat = "stata" keeps one level
-- of the nested factor.  Published: var(x1), fixed_effect-cluster-*.
do
  local want = { [""] = 0.00114562662, _light = 0.00187371092, _heavy = 0.01017187366 }
  local b = { [""] = 0.28022361411, _light = 0.26776317358, _heavy = 0.38455903296 }
  for sfx, v in pairs(want) do
    local f = sp.ols(sim, simf(sfx, true), { vcov = { cluster = "firm" }, compat = "stata" })
    T.near(f:coef()["x1" .. sfx], b[sfx], 1e-9, "xtreg fe: b(x1" .. sfx .. ")")
    T.near(f:se()["x1" .. sfx] ^ 2, v, 1e-8, "xtreg fe vce(cluster): V(x1" .. sfx .. ") as Stata")
    local n = f.stats.nobs
    T.near(f.stats.vcov_dof_factor, (n - 1) / (n - 6), 1e-12, "xtreg fe vce(cluster): K = 5 slopes + 1" .. sfx)
  end
end

-- ---- xtreg, re on an unbalanced panel -------------------------------------------------
-- Stata's Swamy-Arora: s2_e from the within fit, s2_u = SSR_b/(G - k) - s2_e/Tbar,
-- SSR_b of the unweighted between regression, Tbar the harmonic mean of T_i.
-- plm weights the between regression by T_i and differs when the T_i vary.
-- Published: b(x1), V(x1) and sigma_u of random_effect-conventional-* and
-- V(x1) of random_effect-cluster-*.
do
  local cases = {
    [""] = { b = 0.2552899101, v = 0.00088814837, su = 1.0287240625, vc = 0.00092576178 },
    _light = { b = 0.23900680958, v = 0.00120991134, su = 1.0346638473, vc = 0.00129858561 },
    _heavy = { b = 0.26211215809, v = 0.00346365566, su = 1.0941833068, vc = 0.00365450569 },
  }
  for sfx, w in pairs(cases) do
    local f = pm.re(sim, simf(sfx), { compat = "stata" })
    T.near(f:coef()["x1" .. sfx], w.b, 1e-9, "xtreg re: b(x1" .. sfx .. ")")
    T.near(f:se()["x1" .. sfx] ^ 2, w.v, 1e-8, "xtreg re: V(x1" .. sfx .. ")")
    T.near(math.sqrt(f.stats.sigma2.id), w.su, 1e-9, "xtreg re: sigma_u" .. sfx)
    T.near(math.sqrt(f.stats.sigma2.idios), ({ [""] = 1.4255418371, _light = 1.4235837045,
      _heavy = 1.4094625798 })[sfx], 1e-9, "xtreg re: sigma_e" .. sfx)
    local fc = pm.re(sim, simf(sfx), { compat = "stata", vcov = { cluster = "firm" } })
    T.near(fc:se()["x1" .. sfx] ^ 2, w.vc, 1e-8, "xtreg re vce(cluster): V(x1" .. sfx .. ")")
  end
  -- plm's convention stays the default, and differs on the unbalanced panel
  local p = pm.re(sim, simf("_light"))
  T.check(math.abs(math.sqrt(p.stats.sigma2.id) - 1.0346638473) > 1e-3,
    "re: plm's Swamy-Arora (the default) differs from Stata's when T_i vary", math.sqrt(p.stats.sigma2.id))
end

-- ---- ivregress 2sls without small; Newey-West ---------------------------------------
-- Stata numbers: linearmodels' Stata 13 run on its simulated IV data
-- (bashtage/linearmodels, linearmodels/tests/iv/results/stata-iv-simulated-results.txt,
-- commit 3638b0c2; data tests/reference/data/external/lm_iv_simulated.dta, tsset time),
-- sections 2sls-num_endog_*-num_exog_*-num_instr_2-weighted_False-<vce>-[small].
local iv = sp.read(EXT .. "lm_iv_simulated.dta")
do
  -- vce(unadjusted): s2 = e'e/N (no small) against e'e/(N-K) (small), z and chi2
  local F = "y_unadjusted ~ x3 + x4 + x5 | x1 ~ z1 + z2"
  local f = sp.ols(iv, F, { small = false })
  T.near(f:coef().x1, 0.42116101194, 1e-9, "ivregress: b(x1)")
  T.near(f:se().x1 ^ 2, 0.05559442565, 1e-8, "ivregress, vce(unadjusted): V(x1) with s2 = RSS/N")
  T.near(f.stats.sigma ^ 2 * f.stats.df_resid / f.nobs, 1.1049747703 ^ 2, 1e-9, "ivregress: rmse^2 = RSS/N")
  T.near(f.stats.F.statistic, 2525.8735845, 1e-9, "ivregress: Wald chi2(4)")
  T.check(f.stats.F.kind == "Wald chi2" and not f:uses_t(), "ivregress without small: z tests and a chi2 Wald")
  local s = sp.ols(iv, F)
  T.near(s:se().x1 ^ 2 * (600 - 5) / 600, 0.05559442565, 1e-8, "small: the same V times N/(N-K)")
  T.check(s:uses_t() and s.stats.F.kind == "F", "small (the default): t tests and an F")
  -- vce(cluster cluster_id), 120 clusters: no G/(G-1), no (N-1)/(N-K) without small
  local Fc = "y_clustered ~ x3 + x4 + x5 | x1 + x2 ~ z1 + z2"
  local c = sp.ols(iv, Fc, { small = false, vcov = { cluster = "cluster_id" } })
  T.near(c:se().x1 ^ 2, 1.3842650988, 1e-8, "ivregress, vce(cluster): V(x1) without small")
  T.near(c.stats.F.statistic, 2686.3281824, 1e-8, "ivregress, vce(cluster): Wald chi2(5)")
  local cs = sp.ols(iv, Fc, { vcov = { cluster = "cluster_id" } })
  T.near(cs:se().x1 ^ 2, 1.4076475582, 1e-8, "ivregress, vce(cluster) small: V(x1)")
  -- vce(hac bartlett 12): Newey-West, Bartlett weights 1 - l/13
  local Fk = "y_kernel ~ 1 | x1 ~ z1"
  local k = sp.ols(iv, Fk, { small = false, vcov = { newey_west = 12 } })
  T.near(k:se().x1 ^ 2, 0.02553149514, 1e-8, "ivregress, vce(hac bartlett 12): V(x1)")
  T.near(k.stats.F.statistic, 362.80950935, 1e-8, "ivregress, vce(hac bartlett 12): chi2(1)")
  T.check(k.vcov_label == "Newey-West (Bartlett, lag 12)", "the Newey-West label", k.vcov_label)
  local ks = sp.ols(iv, Fk, { vcov = { newey_west = 12, time = "time" } })
  T.near(ks:se().x1 ^ 2, 0.02561688476, 1e-8, "ivregress, vce(hac bartlett 12) small: N/(N-K)")
  T.near(ks.stats.F.statistic, 361.60014432, 1e-8, "ivregress, hac small: F(1, 598)")
  T.check(ks.stats.df_t == 598, "hac small: t(N - K)", ks.stats.df_t)
  -- identity: lag 0 is HC1 under the stata preset (newey's N/(N-K)), HC0 under plm
  local a = sp.ols(iv, "y_kernel ~ x3 + x4", { vcov = { newey_west = 0 } })
  T.near(a:se().x3, sp.ols(iv, "y_kernel ~ x3 + x4", { vcov = "hc1" }):se().x3, 1e-12, "newey_west = 0 is HC1 (stata)")
  local a0 = sp.ols(iv, "y_kernel ~ x3 + x4", { vcov = { newey_west = 0 }, compat = "plm" })
  T.near(a0:se().x3, sp.ols(iv, "y_kernel ~ x3 + x4", { vcov = "hc0" }):se().x3, 1e-12, "newey_west = 0 is HC0 (plm)")
  -- the rows in time order: a shuffled frame with time = gives the same V
  local order = {}
  for i = 1, iv:nrow() do order[i] = ((i * 7) % iv:nrow()) + 1 end
  local shuffled = iv:take(order)
  local sh = sp.ols(shuffled, Fk, { vcov = { newey_west = 12, time = "time" } })
  T.near(sh:se().x1, ks:se().x1, 1e-10, "newey_west with time = sorts the periods")
  local p = sp.read_csv("tests/reference/data/Produc.csv")
  T.checkerr("vcov: newey_west: 'year' = 1970 on more than one row: Newey%-West is for a single time series " ..
    "%(use {driscoll_kraay = lag} on a panel%)", sp.ols, p, "log_gsp ~ unemp", { vcov = { newey_west = 2, time = "year" } })
  T.checkerr("vcov: unknown time variable 'yeer' %(did you mean 'year'%?%)", sp.ols, p, "log_gsp ~ unemp",
    { vcov = { newey_west = 2, time = "yeer" } })
  T.checkerr("vcov: newey_west must be an integer lag >= 0 %(Stata's newey, lag%(#%)%), got %-1", sp.ols, p,
    "log_gsp ~ unemp", { vcov = { newey_west = -1 } })
  T.checkerr("got 2$", sp.ols, p, "log_gsp ~ unemp", { vcov = { newey_west = "2" } })
  p:panel { entity = "state", time = "year" }
  T.checkerr("vcov: newey_west is for sp.ols and 2SLS fits of a single time series", pm.fd, p, "log_gsp ~ unemp",
    { vcov = { newey_west = 1 } })
  T.checkerr("ols: 'small' is an option of 2SLS fits", sp.ols, p, "log_gsp ~ unemp", { small = false })
  T.checkerr("ivreg: small must be true or false, got no", sp.ols, iv, F, { small = "no" })
end

-- ---- ivreg2's clustered first-stage F ---------------------------------------------------
-- ivreg2 y x1 (endo1 = z1 z2), cluster(cluster_id) dofminus(1) sdofminus(1) first:
-- F = 430.000937789152, F(2, 49) (restatr/ivreg2r, tests/stata-benchmarks/fixtures/
-- sim_cluster_dofminus_firststage_cl.csv, commit 9f807a3c, on the data of
-- tests/reference/data/external/ivreg2r_sim_cluster_data.csv).  Without sdofminus(1) the factor
-- is G/(G-1) (N-1)/(N-L), L = 4: the published F times (N-L)/(N-L-1) = 996/995.  The
-- 2e-8 gap is the precision of the data as exported then (the partial R2 agrees to 1e-10).
do
  local d = sp.read_csv(EXT .. "ivreg2r_sim_cluster_data.csv")
  local want = 430.000937789152 * 996 / 995
  for _, compat in ipairs { "stata", "plm", "sandwich", "fixest", "statsmodels" } do
    for _, small in ipairs { true, false } do
      local f = sp.ols(d, "y ~ x1 | endo1 ~ z1 + z2", { vcov = { cluster = "cluster_id" }, compat = compat, small = small })
      local w = f.stats.first_stage[1].excluded_instruments_F_robust
      T.near(w.statistic, want, 1e-7, "ivreg2 clustered first-stage F, compat = " .. compat .. ", small = " .. tostring(small))
      T.check(w.df1 == 2 and w.df2 == 49, "ivreg2 clustered first-stage F(2, G - 1), compat = " .. compat, w.df2)
    end
  end
  T.near(sp.ols(d, "y ~ x1 | endo1 ~ z1 + z2", { vcov = { cluster = "cluster_id" } }).stats.first_stage[1].partial_r2,
    0.4338592086900317, 1e-9, "ivreg2: first-stage partial R2")
end

-- ---- sp.between with effect = "time" ------------------------------------------------------
-- Exact identities: OLS on the period means (d:aggregate by year), and the entity between
-- model with the panel index swapped, which users wrote by hand before.
do
  local d = sp.read_csv("tests/reference/data/Produc.csv")
  d:panel { entity = "state", time = "year" }
  local F = "log_gsp ~ log_pcap + log_pc + log_emp + unemp"
  local bt = pm.between(d, F, { effect = "time", vcov = "hc1" })
  local m = d:aggregate { by = "year", mean = { "log_gsp", "log_pcap", "log_pc", "log_emp", "unemp" } }
  local o = sp.ols(m, "log_gsp_mean ~ log_pcap_mean + log_pc_mean + log_emp_mean + unemp_mean", { vcov = "hc1" })
  T.check(bt.nobs == 17 and bt.stats.effect == "time", "between, time: one row per year", bt.nobs)
  T.near(bt:coef().unemp, o:coef().unemp_mean, 1e-10, "between, time = OLS on the year means (coefficient)")
  T.near(bt:se().log_pc, o:se().log_pc_mean, 1e-10, "between, time = OLS on the year means (HC1 se)")
  local s = d:copy()
  s:panel { entity = "year", time = "state" }
  T.near(pm.between(s, F):coef().log_emp, pm.between(d, F, { effect = "time" }):coef().log_emp, 1e-12,
    "between, time = the entity between model with the index swapped")
  T.checkerr("between: unknown effect 'twoways' %(expected individual or time%)", pm.between, d, F, { effect = "twoways" })
  T.checkerr("between: vcov 'cluster' is not available: the between model has one row per period", pm.between, d, F,
    { effect = "time", vcov = { cluster = "state" } })
end

-- ---- sp.re amemiya with time-invariant regressors (Wages, Cornwell-Rupert) ----------------
-- The components come from the within residuals y - c - X b_w, the time-invariant
-- regressors (female, black, ed) being absent from the within fit, so their part stays in
-- the entity means: the components equal those of the model without them (exact), on the
-- balanced panel and on an unbalanced subset; the GLS step then estimates them.
do
  local w = sp.read_csv("tests/reference/data/Wages.csv")
  w:panel { entity = "id", time = "year" }
  local tv = "lwage ~ wks + south + smsa + married + exp + exp2 + bluecol + ind + union"
  local F = tv .. " + female + black + ed"
  local u = w:filter(function(r) return not (r.id % 7 == 0 and r.year >= 1980) end)
  u:panel { entity = "id", time = "year" }
  for name, data in pairs { balanced = w, unbalanced = u } do
    local a = pm.re(data, F, { method = "amemiya" })
    local b = pm.re(data, tv, { method = "amemiya" })
    T.near(a.stats.sigma2.idios, b.stats.sigma2.idios, 1e-12, "amemiya, " .. name .. ": s2_e without the time-invariant part")
    T.near(a.stats.sigma2.id, b.stats.sigma2.id, 1e-12, "amemiya, " .. name .. ": s2_u without the time-invariant part")
    T.check(a:coef().ed ~= nil and a:se().ed > 0 and a:se().female > 0, "amemiya, " .. name .. ": ed, female estimated")
  end
  -- the GLS step by hand: OLS on y - theta ybar_i with the components above
  local a = pm.re(w, F, { method = "amemiya" })
  local s2e, s2u = a.stats.sigma2.idios, a.stats.sigma2.id
  local theta = 1 - math.sqrt(s2e / (s2e + 7 * s2u))
  T.near(a.stats.theta, theta, 1e-12, "amemiya: theta = 1 - sqrt(s2_e / (s2_e + T s2_u))")
  local vars = { "lwage", "wks", "south", "smsa", "married", "exp", "exp2", "bluecol", "ind", "union", "female", "black", "ed" }
  local m = w:aggregate { by = "id", mean = vars }
  local g = w:join(m, { on = "id" })
  for _, v in ipairs(vars) do g["s_" .. v] = g[v] - g[v .. "_mean"] * theta end
  g.s_one = 1 - theta
  local o = sp.ols(g, "s_lwage ~ 0 + s_one + s_wks + s_south + s_smsa + s_married + s_exp + s_exp2 + s_bluecol + s_ind + " ..
    "s_union + s_female + s_black + s_ed")
  T.near(a:coef().ed, o:coef().s_ed, 1e-9, "amemiya: the GLS coefficient of ed by hand")
  T.near(a:coef().female, o:coef().s_female, 1e-9, "amemiya: the GLS coefficient of female by hand")
end

-- ---- Stata dates from .dta --------------------------------------------------------------
-- linearmodels' simulated panel stores its period as %tc (pandas' datetimes) at midnight of
-- 31 December 1999, 2000 and 2001: read as the years, so the panel steps by one and first
-- differences exist (as milliseconds no row had a previous period).  The formats one by one
-- are tested in tests/c/test_statfile.c.
do
  local d = sp.read(EXT .. "lm_simulated_panel.dta")
  local t = d.time
  T.check(t:get(1, 1) == 1999 and t:get(2, 1) == 2000 and t:get(3, 1) == 2001, "%tc year-end stamps read as years",
    t:get(1, 1))
  d:panel { entity = "firm", time = "time" }
  local fd = pm.fd(d, "y ~ x1 + x2")
  T.check(fd.nobs == 2000, "fd on the %tc panel: two differences per firm", fd.nobs)
  local lagged = d:lag("x1", 1)
  T.check(lagged:get(2, 1) == d.x1:get(1, 1), "l(x1) on the %tc panel is the previous year's value")
end

T.done()
