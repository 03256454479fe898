package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local pt = require "spillover.panel_tests"

-- Expected values: R 4.2.2, plm 2.6-2, run from tests/reference/data with
--   library(plm); d <- read.csv("Produc.csv"); pd <- pdata.frame(d, index = c("state", "year"))
--   fm <- log_gsp ~ log_pcap + log_pc + log_emp + unemp
--   e <- read.csv("EmplUK.csv"); pe <- pdata.frame(e, index = c("firm", "year"))
--   fe2 <- log_emp ~ log_wage + log_capital + log_output; po <- plm(fe2, data = pe, model = "pooling")
--   g <- read.csv("Grunfeld.csv"); pg <- pdata.frame(g, index = c("firm", "year"))
-- and printed with sprintf("%.17g").

local d = sp.read_csv("tests/reference/data/Produc.csv")
d:panel { entity = "state", time = "year" }
local fm = "log_gsp ~ log_pcap + log_pc + log_emp + unemp"
local e = sp.read_csv("tests/reference/data/EmplUK.csv")
e:panel { entity = "firm", time = "year" }
local fe2 = "log_emp ~ log_wage + log_capital + log_output"
local g = sp.read_csv("tests/reference/data/Grunfeld.csv")
g:panel { entity = "firm", time = "year" }

local function check_test(h, what, stat, pv, params, method)
  T.near(h.statistic, stat, 1e-9, what .. ": statistic")
  if pv == nil then
    T.check(h.pvalue == nil, what .. ": no p-value")
  elseif pv == 0 then
    T.check(h.pvalue < 1e-300, what .. ": p-value underflows", tostring(h.pvalue))
  else
    T.near(h.pvalue, pv, 1e-7, what .. ": p-value")
  end
  for name, v in pairs(params or {}) do T.check(h[name] == v, what .. ": " .. name .. " = " .. v, tostring(h[name])) end
  if method then T.check(h.method == method, what .. ": method", h.method) end
end

-- ---- pcdtest ----------------------------------------------------------------------
-- pcdtest(fm, data = pd, test = t): residuals of unit-by-unit OLS
local cdm = " cross-sectional dependence in panels"
check_test(pt.pcdtest(d, fm), "pcdtest cd produc", 40.197656479622935, 0, nil, "Pesaran CD test for " .. cdm)
check_test(pt.pcdtest(d, fm, { test = "lm" }), "pcdtest lm produc", 4218.2919513355737, 0, { df = 1128 },
  "Breusch-Pagan LM test for " .. cdm)
check_test(pt.pcdtest(d, fm, { test = "sclm" }), "pcdtest sclm produc", 65.062382586841366, 0, nil,
  "Scaled LM test for " .. cdm)
check_test(pt.pcdtest(d, fm, { test = "rho" }), "pcdtest rho produc", 0.29028308102329659, nil)
check_test(pt.pcdtest(d, fm, { test = "absrho" }), "pcdtest absrho produc", 0.40391109678625792, nil)
-- pcdtest(fm, data = pd, model = "pooling", test = "cd")
check_test(pt.pcdtest(d, fm, { model = "pooling" }), "pcdtest cd pooling", 30.636673650143852, 3.9772525533444263e-206)
-- pcdtest(fm, data = pd, model = "within", effect = "twoways", test = "cd")
check_test(pt.pcdtest(d, fm, { model = "within", effect = "twoways" }), "pcdtest cd within twoways",
  -1.5578525583873473, 0.11926820355055459)
-- pcdtest(fm, data = pd, model = "within", test = "bcsclm")
check_test(pt.pcdtest(d, fm, { model = "within", test = "bcsclm" }), "pcdtest bcsclm within", 81.689665087165011, 0)
-- fe <- plm(fm, data = pd, model = "within"); pcdtest(fe, test = "lm")
local fit_within = sp.ols(d, fm .. " | state", { compat = "plm" })
check_test(pt.pcdtest(d, fit_within, { test = "lm" }), "pcdtest lm on a within fit", 5079.2901654044499, 0, { df = 1128 })
check_test(pt.pcdtest(d, fit_within, { test = "bcsclm" }), "pcdtest bcsclm on a within fit", 81.689665087165011, 0)
-- a user fit without a design: one residual per frame row
do
  local po = sp.ols(d, fm, { compat = "plm" })
  local mine = sp.fit { names = { "x" }, b = { 1 }, V = { { 1 } }, nobs = 816, resid_values = po:resid(), formula = fm }
  check_test(pt.pcdtest(d, mine), "pcdtest on a user fit without design", 30.636673650143852, 3.9772525533444263e-206)
  local short = sp.fit { names = { "x" }, b = { 1 }, V = { { 1 } }, nobs = 3, resid_values = { 1, 2, 3 } }
  T.checkerr("pcdtest: the fit has 3 residuals but the frame 816 rows", pt.pcdtest, d, short)
end
-- w <- matrix(0, 48, 48); for (i in 2:48) w[i, i-1] <- 1; pcdtest(fm, data = pd, test = "cd", w = w)
local w = sp.matrix(48, 48)
for i = 2, 48 do w:set(i, i - 1, 1) end
check_test(pt.pcdtest(d, fm, { w = w }), "pcdtest local cd", 7.6112401316300753, 2.7147829839062438e-14, nil,
  "Pesaran CD test for local" .. cdm)
local wt = w:totable()
for i = 1, 47 do wt[i][i + 1] = 1 end  -- symmetric: the same neighbours
check_test(pt.pcdtest(d, fm, { w = wt }), "pcdtest local cd, symmetric table w", 7.6112401316300753, 2.7147829839062438e-14)
-- unbalanced (EmplUK: pairs over their common years, 9730 pairs with >= 2)
check_test(pt.pcdtest(e, fe2), "pcdtest cd empluk", 8.0762875406424488, 6.6768335522958428e-16)
check_test(pt.pcdtest(e, fe2, { test = "lm" }), "pcdtest lm empluk", 12853.381499966164, 1.6470601585130054e-92, { df = 9730 })
check_test(pt.pcdtest(e, fe2, { test = "sclm" }), "pcdtest sclm empluk", 22.38997536008986, 4.9286120075888243e-111)
check_test(pt.pcdtest(e, fe2, { model = "pooling" }), "pcdtest cd empluk pooling", 10.810906718336874, 3.0563403876443453e-27)

-- ---- plmtest (unbalanced EmplUK: every type and effect) ----------------------------
-- plmtest(po, effect = ef, type = ty)
local lm = "Lagrange Multiplier Test - "
local lm_cases = {
  { "individual", "honda", 55.177328792964211, 0, nil, lm .. " (Honda)" },
  { "individual", "bp", 3044.5376127268773, 0, { df = 1 }, lm .. " (Breusch-Pagan)" },
  { "individual", "kw", 55.177328792964211, 0, nil, lm .. " (King and Wu)" },
  { "time", "honda", -1.1860575968144624, 0.88220022271996301, nil, lm .. "time effects (Honda)" },
  { "time", "bp", 1.406732622961298, 0.23559955456007398, { df = 1 }, lm .. "time effects (Breusch-Pagan)" },
  { "time", "kw", -1.1860575968144624, 0.88220022271996301, nil, lm .. "time effects (King and Wu)" },
  { "twoways", "honda", 38.177593987679401, 0, nil, lm .. "two-ways effects (Honda)" },
  { "twoways", "bp", 3045.9443453498388, 0, { df = 2 }, lm .. "two-ways effects (Breusch-Pagan)" },
  { "twoways", "kw", 11.003206049668975, 1.8439131675397409e-28, nil, lm .. "two-ways effects (King and Wu)" },
  { "twoways", "ghm", 3044.5376127268773, 0, { df0 = 0, df1 = 1, df2 = 2, w0 = 0.25, w1 = 0.5, w2 = 0.25 },
    lm .. "two-ways effects (Gourieroux, Holly and Monfort)" },
}
for _, c in ipairs(lm_cases) do
  local h = pt.plmtest(e, fe2, { effect = c[1], type = c[2] })
  check_test(h, "plmtest empluk " .. c[1] .. " " .. c[2], c[3], c[4], c[5], c[6])
end
-- plmtest(inv ~ value + capital, data = pg, effect = "twoways", type = "kw")
check_test(pt.plmtest(g, "inv ~ value + capital", { effect = "twoways", type = "kw" }), "plmtest grunfeld twoways kw",
  21.832208607849257, 5.737029301658664e-106)
-- the default type is honda, as plm's; a pooled fit gives the same as its formula
local pooled = sp.ols(e, fe2, { compat = "plm" })
T.near(pt.plmtest(e, pooled).statistic, 55.177328792964211, 1e-9, "plmtest on a pooled fit, default honda")
T.check(pt.plmtest(e, pooled).nobs == 1031, "plmtest nobs")
-- a within fit is refitted as pooled OLS, as plm's update(x, model = "pooling")
T.near(pt.plmtest(e, sp.ols(e, fe2 .. " | firm", { compat = "plm" })).statistic,
  55.177328792964211, 1e-9, "plmtest on a within fit uses pooled OLS residuals")
T.checkerr("plmtest: the fit is not pooled OLS and has no formula", pt.plmtest, e,
  sp.fit { names = { "x" }, b = { 1 }, V = { { 1 } }, nobs = 1031, estimator = "mine" })
-- chi-bar-square p-value where it is not 0: weights 1/4, 1/2, 1/4 on chi2(0, 1, 2)
local h = pt.plmtest(e, fe2, { effect = "time", type = "honda" })
T.check(h.pvalue > 0.5, "plmtest: a negative Honda statistic has a one-sided p-value above 1/2")

-- ---- pFtest ------------------------------------------------------------------------
-- pFtest(fe2, data = pe, effect = ef)
check_test(pt.pftest(e, fe2), "pftest empluk individual", 123.02277555291863, 0, { df1 = 139, df2 = 888 },
  "F test for individual effects")
check_test(pt.pftest(e, fe2, { effect = "time" }), "pftest empluk time", 0.81142725152932671, 0.59253327079783813,
  { df1 = 8, df2 = 1019 }, "F test for time effects")
check_test(pt.pftest(e, fe2, { effect = "twoways" }), "pftest empluk twoways", 121.15486713455083, 0,
  { df1 = 147, df2 = 880 }, "F test for twoways effects")
-- two-fit form: pFtest(within, pooling)
local within_tw = sp.ols(e, fe2 .. " | firm + year", { compat = "plm" })
check_test(pt.pftest(within_tw, pooled), "pftest from two fits", 121.15486713455083, 0, { df1 = 147, df2 = 880 },
  "F test for twoways effects")

-- ---- printing like R's print.htest --------------------------------------------------
-- print(pFtest(fm, data = pd)) with the default digits = 7
local want = [[

	F test for individual effects

data:  log_gsp ~ log_pcap + log_pc + log_emp + unemp
F = 75.82, df1 = 47, df2 = 764, p-value < 2.2e-16
alternative hypothesis: significant effects
]]
T.check(tostring(pt.pftest(d, fm)) == want, "htest prints like R", tostring(pt.pftest(d, fm)))
local s = tostring(pt.plmtest(e, fe2, { effect = "time", type = "bp" }))
T.check(s:find("\tLagrange Multiplier Test - time effects (Breusch-Pagan)\n", 1, true) ~= nil, "htest method line", s)
T.check(s:find("chisq = 1.4067, df = 1, p-value = 0.2356\n", 1, true) ~= nil, "htest statistic line", s)
s = tostring(pt.plmtest(e, fe2, { type = "honda" }))
T.check(s:find("\tLagrange Multiplier Test - (Honda)\n", 1, true) ~= nil, "htest collapses spaces like strwrap", s)
s = tostring(pt.plmtest(e, fe2, { effect = "twoways", type = "ghm" }))
T.check(s:find("\tLagrange Multiplier Test - two-ways effects (Gourieroux, Holly and\n\tMonfort)\n", 1, true) ~= nil,
  "htest wraps the method at 72 columns like strwrap", s)

-- ---- Hausman on two fits (the random-effects fit is any fit; here a stand-in) ------
do
  local fe = sp.ols(g, "inv ~ value + capital | firm", { compat = "plm" })
  local fake = sp.fit { names = { "(Intercept)", "value", "capital" }, b = { -50, 0.1, 0.3 },
    V = { { 100, 0, 0 }, { 0, 1e-5, 0 }, { 0, 0, 1e-4 } }, nobs = 200, formula = "inv ~ value + capital" }
  local hh = pt.hausman(fe, fake)
  local c, V = fe:coef(), fe:vcov()
  local d1, d2 = c.value - 0.1, c.capital - 0.3
  local a, b, cc = V.value.value - 1e-5, V.value.capital, V.capital.capital - 1e-4
  local det = a * cc - b * b
  local want_stat = math.abs((cc * d1 * d1 - 2 * b * d1 * d2 + a * d2 * d2) / det)
  T.near(hh.statistic, want_stat, 1e-10, "hausman: |d' (V1 - V2)^-1 d| over the common slopes")
  T.check(hh.df == 2, "hausman: df = number of common slopes (intercept excluded)")
  T.near(hh.pvalue, sp.dist.pchisq(want_stat, 2, true), 1e-12, "hausman: chi2 p-value")
  T.check(hh.method == "Hausman Test" and hh.alternative == "one model is inconsistent", "hausman: labels")
  T.checkerr("no common coefficients", pt.hausman, fe,
    sp.fit { names = { "(Intercept)" }, b = { 1 }, V = { { 1 } }, nobs = 200 })
  T.checkerr("is singular", pt.hausman, fe, fe)
  T.checkerr("expected two fits", pt.hausman, fe, {})
end

-- ---- phtest: within against sp.re ---------------------------------------------------
-- phtest(inv ~ value + capital, data = pg, effect = "twoways")
check_test(pt.phtest(g, "inv ~ value + capital", { effect = "twoways" }), "phtest grunfeld twoways",
  13.460061213455592, 0.001194496397955579, { df = 2 }, "Hausman Test")
-- phtest(inv ~ value + capital, data = pg, random.method = "amemiya")
check_test(pt.phtest(g, "inv ~ value + capital", { method = "amemiya" }), "phtest grunfeld amemiya",
  4.8526520317679873, 0.0883608734028212, { df = 2 })
-- phtest(fm, data = pd) (the reference case test_phtest_produc), through hausman() on two fits
local re = require("spillover.panel_models").re(d, fm, { method = "swar" })
check_test(pt.hausman(sp.ols(d, fm .. " | state", { compat = "plm" }), re), "hausman(fe, re) produc",
  9.525415634993387, 0.049227624176258075, { df = 4 })
T.checkerr("phtest: unknown effect 'both'", pt.phtest, g, "inv ~ value + capital", { effect = "both" })

-- ---- errors --------------------------------------------------------------------------
local flat = sp.read_csv("tests/reference/data/Produc.csv")
T.checkerr("pftest: the frame has no panel index: call d:panel{entity=, time=} first", pt.pftest, flat, fm)
T.checkerr("plmtest: the frame has no panel index", pt.plmtest, flat, fm)
T.checkerr("pcdtest: the frame has no panel index", pt.pcdtest, flat, fm)
T.checkerr("phtest: the frame has no panel index", pt.phtest, flat, fm)
T.checkerr("pftest: expected a frame as argument 1, got string", pt.pftest, "x", fm)
T.checkerr("plmtest: expected a formula string as argument 2, got number", pt.plmtest, d, 3)
T.checkerr("pftest: the formula must not have a '|' part", pt.pftest, d, fm .. " | state")
T.checkerr("pftest: unknown effect 'indiv' %(expected individual, time, twoways%)", pt.pftest, d, fm, { effect = "indiv" })
T.checkerr("plmtest: unknown type 'lm' %(expected honda, bp, ghm, kw%)", pt.plmtest, d, fm, { type = "lm" })
T.checkerr('plmtest: type must be one of "honda", "bp" or "kw" for a one way model', pt.plmtest, d, fm, { type = "ghm" })
T.checkerr("pcdtest: unknown test 'CD' %(expected cd, sclm, bcsclm, lm, rho, absrho%)", pt.pcdtest, d, fm, { test = "CD" })
T.checkerr("pcdtest: unknown model 'random'", pt.pcdtest, d, fm, { model = "random" })
T.checkerr("pcdtest: for test = 'bcsclm', set model = 'within'", pt.pcdtest, d, fm, { test = "bcsclm" })
T.checkerr("pcdtest: for test = 'bcsclm', the fit must be a within fit", pt.pcdtest, d,
  sp.ols(d, fm, { compat = "plm" }), { test = "bcsclm" })
T.checkerr("pcdtest: options must be a table, got string", pt.pcdtest, d, fm, "cd")
T.checkerr("should be 48 x 48 %(no. of individuals%) but is 3 x 3", pt.pcdtest, d, fm, { w = sp.matrix(3, 3) })
T.checkerr("no neighbouring individuals defined in proximity matrix 'w'", pt.pcdtest, d, fm, { w = sp.matrix(48, 48) })
do
  local amb = sp.matrix(48, 48)
  amb:set(2, 1, 1)
  amb:set(3, 1, 1)
  amb:set(1, 2, 1)
  amb:set(1, 4, 1)
  T.checkerr("proximity matrix 'w' is ambiguous", pt.pcdtest, d, fm, { w = amb })
end
T.checkerr("pftest: with a within fit as argument 1, argument 2 must be the pooled fit", pt.pftest, within_tw, fm)
T.checkerr("pftest: argument 1 must be a within fit", pt.pftest, pooled, within_tw)
T.checkerr("pftest: the within model has no fewer residual degrees of freedom", pt.pftest,
  sp.ols(e, fe2 .. " | firm", { compat = "plm" }), within_tw)
T.checkerr("pftest: the fits use different observations %(1031 and 816%)", pt.pftest, within_tw,
  sp.ols(d, fm, { compat = "plm" }))
do
  -- one period per entity: no within-entity variation to test
  local one = d:filter(function(r) return r.year == 1970 end)
  local ok = pcall(one.panel, one, { entity = "state", time = "year" })
  if ok then
    T.checkerr("plmtest: every entity has one period", pt.plmtest, one, fm)
    T.checkerr("pcdtest: no pair of individuals has two or more periods in common", pt.pcdtest, one, fm, { model = "pooling" })
  else
    T.check(false, "building a one-period panel for the error tests")
  end
end
-- a pair of units with a single common period is omitted, and said so
do
  local sub = d:filter(function(r) return not (r.state == "ALABAMA" and r.year > 1970) end)
  sub:panel { entity = "state", time = "year" }
  local hc = pt.pcdtest(sub, fm, { model = "pooling" })
  T.check(hc.npairs == 47 * 46 / 2, "pcdtest: pairs with one common period are dropped", tostring(hc.npairs))
  T.check(hc.notes and hc.notes[1]:find("do not have any or just one time period in common", 1, true) ~= nil,
    "pcdtest: the note says pairs were omitted")
  T.check(tostring(hc):find("note: some pairs", 1, true) ~= nil, "pcdtest: the note is printed")
end

T.done()
