-- test_stata_parity: the Stata conventions of issue 16, each against
-- published Stata output or an exact identity.
--
-- Stata numbers for the simulated panel come from linearmodels' Stata run
-- (bashtage/linearmodels, linearmodels/tests/panel/results/
-- stata-panel-simulated-results.txt, commit d6f3596b; Stata 13, the do-file
-- is execute-stata-simulated-data.py there), on the same data file
-- (../shared/data/external/lm_simulated_panel.dta, xtset firm time).  The
-- _light and _heavy variables have missing values, which makes the panel
-- unbalanced (2239 and 891 rows of 991 and 639 firms).
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local pm = require "spillover.panel_models"

local EXT = "../shared/data/external/"
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

T.done()
