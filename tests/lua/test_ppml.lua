-- test_ppml: sp.ppml (lua/spillover/ppml.lua) against R's glm(family = poisson)
-- with dummies, on simulated data with known parameters, on separated data
-- whose MLE does not exist until the separated rows go, against the tutorial
-- plugin it grew from, and from YAML (scenarios/innovation_ppml.yaml).
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local ppml = require("spillover.ppml").ppml

-- (a) A deterministic 8 x 6 panel (the same formulas in R, below); entity 8
-- has only zero outcomes, so its rows are separated.
local cols = { id = {}, t = {}, x1 = {}, x2 = {}, w = {}, y = {} }
for id = 1, 8 do
  for t = 1, 6 do
    local x1, x2 = math.sin(1.3 * id + 0.7 * t), math.cos(0.9 * id * t) + 0.1 * t
    local mu = math.exp(1.2 + 0.8 * x1 - 0.5 * x2 + 0.3 * (id % 3) - 0.1 * t)
    local y = math.floor(mu * (1 + 0.6 * math.sin(3.1 * id * t)))
    local r = #cols.id + 1
    cols.id[r], cols.t[r], cols.x1[r], cols.x2[r] = id, t, x1, x2
    cols.w[r], cols.y[r] = 1 + (id * t) % 3, id == 8 and 0 or y
  end
end
local d = sp.frame(cols)
--[[ R 4 (sandwich 3), on the same data with entity 8 left out:
  g <- expand.grid(t = 1:6, id = 1:8); d <- data.frame(id = g$id, t = g$t)
  d$x1 <- sin(1.3 * d$id + 0.7 * d$t); d$x2 <- cos(0.9 * d$id * d$t) + 0.1 * d$t
  d$w <- 1 + (d$id * d$t) %% 3
  d$y <- floor(exp(1.2 + 0.8 * d$x1 - 0.5 * d$x2 + 0.3 * (d$id %% 3) - 0.1 * d$t) * (1 + 0.6 * sin(3.1 * d$id * d$t)))
  d$y[d$id == 8] <- 0; s <- subset(d, id != 8); n <- nrow(s)
  ctl <- glm.control(epsilon = 1e-14, maxit = 100)
  m <- glm(y ~ x1 + x2 + factor(id) + factor(t), family = poisson, data = s, control = ctl)
  coef(m); vcov(m); vcovHC(m, type = "HC0"); vcovHC(m, type = "HC1")
  vcovCL(m, cluster = ~id, type = "HC0") * (n - 1) / (n - 8)   # G/(G-1) (cadjust) times fixest's (n-1)/(n-K)
  deviance(m); deviance(glm(y ~ 1, family = poisson, data = s)); logLik(m); logLik(glm(y ~ 1, poisson, s))
  fitted(m)[c(1, 7, 42)]
  mw <- update(m, weights = w); coef(mw); vcov(mw); vcovCL(mw, cluster = ~id, type = "HC0") * (n - 1) / (n - 8)
]]
local R = {
  b = { x1 = 0.875121021667828, x2 = -0.526096218367376 },
  iid = { 0.0438292690056432, -0.0177221858954342, 0.0442407618816947 },   -- x1 x1, x1 x2, x2 x2
  hc0 = { 0.01035805870750373, -0.00504961352867437, 0.00827174495805185 },
  hc1 = { 0.01553708806125560, -0.00757442029301156, 0.01240761743707777 },
  cl = { 0.01319860359021307, -0.00660790799093931, 0.01193983117388270 },
  deviance = 12.7796060717340, null_deviance = 100.9643660738680,
  loglik = -51.6582644768391, loglik_null = -95.7506444779060,
  fitted = { [1] = 5.639804155890520, [7] = 4.654550766053815, [42] = 0.602023757810125 },
  wb = { x1 = 0.821113882568952, x2 = -0.548175255435659 },
  wiid = { 0.02593952029379366, -0.00938042506453833, 0.02583357002149905 },
  wcl = { 0.01701306756856944, -0.00936884057267443, 0.01320615128915181 },
}
local function same_vcov(fit, want, rtol, what)
  local V = fit:vcov()
  T.near(V.x1.x1, want[1], rtol, what .. ": var(x1)")
  T.near(V.x1.x2, want[2], rtol, what .. ": cov(x1, x2)")
  T.near(V.x2.x2, want[3], rtol, what .. ": var(x2)")
end

local FML = "y ~ x1 + x2 | id + t"
local fit = ppml(d, FML, { vcov = "iid", tol = 1e-14 })
T.near(fit:coef().x1, R.b.x1, 1e-8, "glm: x1")
T.near(fit:coef().x2, R.b.x2, 1e-8, "glm: x2")
T.check(fit.nobs == 42 and fit.stats.separated == 6 and fit.stats.separated_fe == 6,
  "the six rows of the all-zero entity are dropped", tostring(fit.nobs))
T.check(fit.notes[1]:find("6 observations dropped: separated %(their fixed%-effect level has only zero outcomes%)"),
  "and the notes say so", fit.notes[1])
same_vcov(fit, R.iid, 1e-6, "glm iid")
same_vcov(ppml(d, FML, { vcov = "hc0", tol = 1e-14 }), R.hc0, 1e-6, "sandwich HC0")
same_vcov(ppml(d, FML, { vcov = "hc1", tol = 1e-14 }), R.hc1, 1e-6, "sandwich HC1 (K = every dummy)")
local fcl = ppml(d, FML, { vcov = { cluster = "id" }, tol = 1e-14 })
same_vcov(fcl, R.cl, 1e-6, "clustered by id, fixest's small-sample factor")
T.check(fcl.stats.n_clusters == 7 and fcl.vcov_label == "clustered by id (7)", "seven clusters", fcl.vcov_label)
local f2 = ppml(d, FML, { vcov = { cluster = { "id", "t" } }, tol = 1e-14 })
T.check(f2.stats.n_clusters[1] == 7 and f2.stats.n_clusters[2] == 6 and f2:se().x1 > 0,
  "two-way clustering (Cameron, Gelbach & Miller)", f2.vcov_label)
local fdef = ppml(d, FML, { tol = 1e-14 })
T.near(fdef:se().x1, fcl:se().x1, 1e-12, "the default vcov clusters by the first fixed effect (fepois)")
T.near(fit.stats.deviance, R.deviance, 1e-8, "deviance")
T.near(fit.stats.null_deviance, R.null_deviance, 1e-8, "null deviance (the constant alone)")
T.near(fit.stats.loglik, R.loglik, 1e-9, "log likelihood")
T.near(fit.stats.loglik_null, R.loglik_null, 1e-9, "log likelihood of the constant alone")
T.near(fit.stats.pseudo_r2, 1 - R.loglik / R.loglik_null, 1e-9, "pseudo-R2")
local p = fit:predict(d)
for r, v in pairs(R.fitted) do T.near(p[r], v, 1e-8, "predict in levels: row " .. r) end
T.check(p[43] ~= p[43], "no prediction for a separated entity's row")
local fw = ppml(d, FML, { vcov = "iid", weights = "w", tol = 1e-14 })
T.near(fw:coef().x1, R.wb.x1, 1e-8, "weighted glm: x1")
T.near(fw:coef().x2, R.wb.x2, 1e-8, "weighted glm: x2")
same_vcov(fw, R.wiid, 1e-6, "weighted glm iid")
same_vcov(ppml(d, FML, { vcov = { cluster = "id" }, weights = "w", tol = 1e-14 }), R.wcl, 1e-6, "weighted, clustered")

-- (b) Simulation: 250 entities x 8 periods, two-way fixed effects and a
-- regressor correlated with the entity effect; known slopes 0.5 and -0.3.
local function rpois(rng, mu)   -- by inversion (sp.rng has no Poisson generator)
  local u, k, q = rng:uniform(), 0, math.exp(-mu)
  local c = q
  while u > c do
    k = k + 1
    q = q * mu / k
    c = c + q
  end
  return k
end
local rng = sp.rng(916)
local N, P = 250, 8
local sim = { id = {}, t = {}, x1 = {}, x2 = {}, y = {} }
local alpha, gamma = {}, {}
for i = 1, N do alpha[i] = 0.6 * rng:normal() end
for t = 1, P do gamma[t] = 0.3 * rng:normal() end
for i = 1, N do
  for t = 1, P do
    local r = #sim.id + 1
    local x1, x2 = rng:normal(), rng:normal() + alpha[i]
    sim.id[r], sim.t[r], sim.x1[r], sim.x2[r] = "e" .. i, t, x1, x2
    sim.y[r] = rpois(rng, math.exp(0.5 * x1 - 0.3 * x2 + alpha[i] + gamma[t]))
  end
end
local ds = sp.frame(sim)
local fs = ppml(ds, "y ~ x1 + x2 | id + t", { vcov = { cluster = "id" } })
local b, se = fs:coef(), fs:se()
T.check(math.abs(b.x1 - 0.5) < 3 * se.x1 and math.abs(b.x2 + 0.3) < 3 * se.x2 and se.x1 < 0.05 and se.x2 < 0.05,
  "simulation: both slopes within 3 standard errors of the truth",
  string.format("x1 %.4f (%.4f), x2 %.4f (%.4f)", b.x1, se.x1, b.x2, se.x2))
T.check(fs.stats.separated_relu == 0 and fs.nobs == ds:nrow() - fs.stats.separated_fe,
  "simulation: the ReLU test drops nothing beyond the all-zero entities", tostring(fs.stats.separated_relu))
-- every level's first-order condition: predictions add up to the outcome
local ps, sumy, sump = fs:predict(ds), 0, 0
for r = 1, ds:nrow() do if ps[r] == ps[r] then sumy, sump = sumy + sim.y[r], sump + ps[r] end end
T.near(sump, sumy, 1e-9, "simulation: predictions add up to the outcome")
-- under a parameter draw the fixed effects are re-centred: each period's sum still holds
local pd = fs:predict(ds, { coef = fs:draw(sp.rng(3)) })
local by = {}
for r = 1, ds:nrow() do
  if pd[r] == pd[r] then by[sim.t[r]] = (by[sim.t[r]] or 0) + sim.y[r] - pd[r] end
end
local worst = 0
for _, v in pairs(by) do worst = math.max(worst, math.abs(v)) end
T.check(worst < 1e-6, "draw: re-centred fixed effects keep each period's mean condition", tostring(worst))

-- A draw far from the estimate on a regressor around 60 (x'b moves by ~180
-- while the outcomes stay): the re-centred fixed effects still fit every
-- entity's sum.  IRLS alone from the baseline's needed more than 100 steps.
local far = { id = {}, t = {}, x1 = {}, y = {} }
local rf = sp.rng(1)
for i = 1, 30 do
  for t = 1, 6 do
    local r = #far.id + 1
    far.id[r], far.t[r], far.x1[r] = i, t, 60 + i / 3 + 0.3 * rf:normal()
    far.y[r] = math.floor(math.exp(0.1 * far.x1[r] + 0.1 * t) + rf:uniform() * 3)
  end
end
local dfar = sp.frame(far)
local ffar = ppml(dfar, "y ~ x1 | id + t")
local pfar = ffar:predict(dfar, { coef = { x1 = ffar:coef().x1 + 3 } })
local off1 = 0
for r = 1, dfar:nrow() do if far.id[r] == 1 then off1 = off1 + far.y[r] - pfar[r] end end
T.check(math.abs(off1) < 1e-6, "a far draw: re-centred (entity 1: outcomes minus predictions sum to 0)", tostring(off1))

-- (c) Separation by a combination of regressors: x1 + x2 = 0 wherever y > 0
-- and = 1 on five rows with y = 0, so the likelihood rises without bound (along
-- b_x1 = b_x2 -> -inf), and neither x1 nor x2 separates alone.
local sep = { y = {}, x1 = {}, x2 = {}, g = {} }
for i = 1, 40 do
  local a = math.sin(1.7 * i)
  sep.y[i] = i <= 25 and (i * 7) % 5 + 1 or 0
  sep.x1[i] = a
  sep.x2[i] = -a + ((i > 25 and i <= 30) and 1 or 0)
  sep.g[i] = i % 4 == 0 and "a" or "b"
end
local dsep = sp.frame(sep)
local fsep = ppml(dsep, "y ~ x1 + x2", { vcov = "hc1" })
T.check(fsep.nobs == 35 and fsep.stats.separated_relu == 5, "ReLU: the five separated rows are found",
  tostring(fsep.nobs) .. " " .. tostring(fsep.stats.separated_relu))
local notes = table.concat(fsep.notes, "\n")
T.check(notes:find("5 observations dropped: separated by the regressors %(ReLU test%)")
  and notes:find("x2 dropped %(collinear"), "the notes say what was dropped (and x2, collinear once they are gone)",
  notes)
local kept = dsep:filter("not (y == 0 and x1 + x2 > 0.5)")
local fhand = ppml(kept, "y ~ x1", { vcov = "hc1", separation = "none" })
T.near(fsep:coef().x1, fhand:coef().x1, 1e-10, "ReLU: the fit equals the fit without those rows")
T.near(fsep:se().x1, fhand:se().x1, 1e-8, "ReLU: and so does its standard error")
-- Without dropping them the MLE does not exist: IRLS either stops on a
-- diverging estimate or fails.
for _, how in ipairs { "none", "fe" } do
  local ok, fnone = pcall(ppml, dsep, "y ~ x1 + x2", { separation = how, vcov = "hc1" })
  local diverged = ok and math.abs(fnone:coef().x1 + fnone:coef().x2) > 10
    or not ok and tostring(fnone):find("IRLS did not converge in 100 iterations .*separation = \"both\" drops")
  T.check(diverged,
    "separation = \"" .. how .. "\": no finite estimate (b_x1 + b_x2 runs off)",
    ok and tostring(fnone:coef().x1 + fnone:coef().x2) or tostring(fnone))
end
-- With a fixed effect, one level all zero (the fe step) and the same regressor separation (ReLU).
local sep2 = { y = {}, x1 = {}, x2 = {}, g = {} }
for i = 1, 40 do sep2.y[i], sep2.x1[i], sep2.x2[i], sep2.g[i] = sep.y[i], sep.x1[i], sep.x2[i], sep.g[i] end
for i = 41, 44 do sep2.y[i], sep2.x1[i], sep2.x2[i], sep2.g[i] = 0, math.cos(i), math.sin(i), "c" end
local ffe = ppml(sp.frame(sep2), "y ~ x1 + x2 | g", { vcov = "hc1" })
T.check(ffe.stats.separated_fe == 4 and ffe.stats.separated_relu == 5 and ffe.nobs == 35
  and table.concat(ffe.notes, "\n"):find("5 observations dropped: separated by the regressors and fixed effects"),
  "fe then ReLU: 4 + 5 rows dropped",
  string.format("%d %d %d", ffe.stats.separated_fe, ffe.stats.separated_relu, ffe.nobs))
local onlyrelu = ppml(sp.frame(sep2), "y ~ x1 + x2 | g", { vcov = "hc1", separation = "relu" })
T.check(onlyrelu.stats.separated_relu == 9 and onlyrelu.nobs == 35, "the ReLU test alone finds the all-zero level too")
T.near(onlyrelu:coef().x1, ffe:coef().x1, 1e-9, "and gives the same estimate")

-- (d) The tutorial plugin (scenarios/plugins/ppml.lua) on Produc: the same
-- estimates.  Loaded trusted, since the sandbox refuses its name (a built-in's).
local entry
require("spillover.sandbox").load_plugin("scenarios/plugins/ppml.lua",
  { register = function(e) entry = e end, trust = true })
local produc = sp.read_csv("tests/reference/data/Produc.csv")
local PF = "gsp ~ log(pcap) + log(pc) + log(emp) + unemp | state + year"
-- (Poisson variances: under clustering the plugin counts one parameter fewer
-- in fixest's (n-1)/(n-K) than sp.ols and sp.ppml, which count the constant.)
local mine = ppml(produc, PF, { vcov = "iid", tol = 1e-12 })
local theirs = entry.fit(produc, { formula = PF, vcov = "iid" }, { tol = 1e-12 })
for _, name in ipairs(mine.names) do
  T.near(mine:coef()[name], theirs:coef()[name], 1e-8, "plugin: " .. name)
  T.near(mine:se()[name], theirs:se()[name], 1e-6, "plugin: se of " .. name)
end

-- (e) Refusals, naming what was expected.
T.checkerr("ppml: unknown option 'tolerance' %(expected one of", ppml, d, FML, { tolerance = 1 })
T.checkerr("separation must be \"both\" %(the default%), \"fe\", \"relu\" or \"none\", got simplex", ppml, d, FML,
  { separation = "simplex" })
T.checkerr("ppml: vcov must be \"iid\", \"hc0\", \"hc1\" or {cluster = ...}, got driscoll_kraay", ppml, d, FML,
  { vcov = { driscoll_kraay = 1 } })
local neg = d:copy()
local yneg = neg.y
yneg[5] = -1
neg.y = yneg
T.checkerr("ppml: y = %-1 in row 5 is negative %(expected counts or other values >= 0%)", ppml, neg, FML)
local w0 = d:copy()
local ww = w0.w
ww[3] = 0
w0.w = ww
T.checkerr("ppml: the weight w = 0 in row 3 is not positive", ppml, w0, FML, { weights = "w" })
T.checkerr("instrumental variables are not supported", ppml, d, "y ~ x1 | id | x2 ~ t")
T.checkerr("weights: unknown weight variable 'wt'", ppml, d, FML, { weights = "wt" })
local zero = d:copy()
local yz = zero.y
for r = 1, #yz do yz[r] = 0 end
zero.y = yz
T.checkerr("every observation is separated", ppml, zero, FML)

-- (f) From YAML: the default model with invention patents as a count outcome.
local s = sp.scenario.load("scenarios/innovation_ppml.yaml")
s.spec.experiments.west_digital.draws = 20
local res = sp.scenario.execute(s)
local f, e = res.fits.main, res.experiments.west_digital
T.check(f.estimator == "ppml" and f.nobs > 300 and f:coef().lndf == f:coef().lndf, "yaml: the PPML model is estimated")
T.check(e.method == "parameter draws" and e.ndraws == 20, "yaml: the experiment used 20 parameter draws")
local tot = e.groups.all.total
T.check(tot.sum_lo < tot.sum and tot.sum < tot.sum_hi, "yaml: an effect in patents (levels) with an interval",
  string.format("%g [%g, %g]", tot.sum, tot.sum_lo, tot.sum_hi))
T.done()
