-- test_threshold_hansen1999: sp.threshold(..., {compat = "hansen1999"}) reproduces
-- Hansen's own program on his 565 firms: thresholds 0.0157 and 0.53616 (the
-- paper prints 0.0157 and 0.5361), the SSRs and F statistics, and the
-- program's coefficients with its homoskedastic and White standard errors,
-- all as recorded under stats.hansen_program in
-- tests/reference/threshold_hansen1999_*.json (the program run in Octave).
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

local d = sp.read_csv("tests/reference/data/hansen_1999_invest_565firms.csv")
d:panel { entity = "id", time = "year" }
local F = "i ~ q1 + q2 + q3 + d1 + qd1"

for n, name in ipairs({ "single", "double", "triple" }) do
  local ref = sp.json.read("tests/reference/threshold_hansen1999_" .. name .. ".json").stats.hansen_program
  local fits = {}
  for _, vc in ipairs({ "iid", "hc0" }) do
    fits[vc] = sp.threshold(d, F, { threshold = "d1", regime = "c1", n = n, bootstrap = false,
      compat = "hansen1999", vcov = vc })
  end
  local st = fits.iid.stats
  for j = 1, n do
    T.check(st.thresholds[j] == ref.threshold[j], string.format("%s: threshold %d = %s (a value of d1)", name, j,
      ref.threshold[j]), tostring(st.thresholds[j]))
    T.check(st.ci[j][1] == ref.threshold_ci95[j][1] and st.ci[j][2] == ref.threshold_ci95[j][2],
      string.format("%s: LR interval %d", name, j))
  end
  T.near(st.ssr, ref.ssr, 1e-11, name .. ": SSR")
  T.near(st.ssr_linear, ref.sequence.ssr_linear, 1e-11, name .. ": SSR without threshold")
  T.near(st.tests[n].F, ref.F, 1e-9, name .. ": F" .. n)
  T.check(st.nobs_used == ref.nobs_used and st.compat == "hansen1999", name .. ": 7345 rows in the regression")
  for key, want in pairs(ref.coef) do
    local nm = key:gsub("_regime", ":regime")
    T.near(fits.iid:coef()[nm], want, 1e-9, name .. ": coefficient " .. nm)
    T.near(fits.iid:se()[nm], ref.se_homo[key], 1e-9, name .. ": homoskedastic SE " .. nm)
    T.near(fits.hc0:se()[nm], ref.se_het[key], 1e-9, name .. ": White SE " .. nm)
  end
end

-- The paper's rounding: 0.0157 and 0.5361 (Table 2).
local fit = sp.threshold(d, F, { threshold = "d1", regime = "c1", n = 2, bootstrap = false, compat = "hansen1999" })
T.check(string.format("%.4f %.4f", fit.stats.thresholds[1], math.floor(fit.stats.thresholds[2] * 1e4) / 1e4) ==
  "0.0157 0.5361", "the paper's thresholds 0.0157 and 0.5361")
-- The default stays xthreg-style.
local def = sp.threshold(d, F, { threshold = "d1", regime = "c1", n = 2, bootstrap = false })
T.check(def.stats.thresholds[2] == 0.54072 and def.stats.compat == nil, "the default is not Hansen's program")
-- Regimes are q < g: a row with d1 equal to a threshold is in the upper regime.
local thr = require "spillover.threshold"
local cols = thr.regime_columns(d, { threshold = "d1", regime = { "c1" }, thresholds = { 0.0157 }, strict = true })
local q, c1 = d.d1:totable(), d.c1:totable()
local at
for i = 1, #q do if q[i] == 0.0157 then at = i break end end
T.check(at and cols[1].values[at] == 0 and cols[2].values[at] == c1[at], "hansen1999: d1 = g falls in the upper regime")

T.checkerr("vcov = \"iid\" %(its homoskedastic ones%) or \"hc0\"", sp.threshold, d, F,
  { threshold = "d1", regime = "c1", bootstrap = false, compat = "hansen1999", vcov = { cluster = "id" } })
T.done()
