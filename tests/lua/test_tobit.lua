-- test_tobit: sp.tobit against Wooldridge's Example 17.2 (Mroz's women's
-- hours, Introductory Econometrics Table 17.1; the same numbers as Stata's
-- tobit and R's AER::tobit on PSID1976), the score at the optimum, a
-- simulation recovering known parameters of the random-effects model with
-- censoring on both sides, marginal effects, predictions and the errors.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local tobit = require "spillover.tobit"

-- ---- Wooldridge Example 17.2 ----------------------------------------------------------
local d = sp.read_csv("tests/reference/data/PSID1976.csv")
do
  local h, w, f = d.hours:tovector(), d.wage:tovector(), d.fincome:tovector()
  local nw = {}
  for i = 1, #h do nw[i] = (f[i] - h[i] * w[i]) / 1000 end
  d.nwifeinc = sp.matrix(nw)
end
local F = "hours ~ nwifeinc + education + experience + experience2 + age + youngkids + oldkids"
local fit = tobit(d, F, { left = 0 })
local b, se = fit:coef(), fit:se()
local want = {
  { "(Intercept)", 965.31, 446.44 }, { "nwifeinc", -8.81, 4.46 }, { "education", 80.65, 21.58 },
  { "experience", 131.56, 17.28 }, { "experience2", -1.864, 0.538 }, { "age", -54.41, 7.42 },
  { "youngkids", -894.02, 111.88 }, { "oldkids", -16.22, 38.64 }, { "sigma", 1122.02, 41.58 } }
for _, w in ipairs(want) do
  local digits = 10 ^ -(#tostring(w[2]):match("%.(%d+)$"))
  T.check(math.abs(b[w[1]] - w[2]) <= 0.5 * digits, "Example 17.2 coefficient " .. w[1],
    string.format("got %.6f want %s", b[w[1]], w[2]))
  local sd = 10 ^ -(#tostring(w[3]):match("%.(%d+)$"))
  T.check(math.abs(se[w[1]] - w[3]) <= 0.5 * sd, "Example 17.2 standard error " .. w[1],
    string.format("got %.6f want %s", se[w[1]], w[3]))
end
T.check(math.abs(fit.stats.ll - (-3819.09)) < 0.005, "Example 17.2 log likelihood -3819.09", tostring(fit.stats.ll))
T.check(fit.stats.n_left == 325 and fit.stats.n_uncensored == 428, "325 censored, 428 uncensored")

-- the score at the optimum is zero (analytic score, independent of the Hessian)
do
  local g = tobit.score(fit.private.theta, fit.private.X, fit.private.y, 0, nil)
  local worst = 0
  for _, v in ipairs(g) do worst = math.max(worst, math.abs(v)) end
  T.check(worst < 1e-6, "the censored likelihood's score is 0 at the estimate", "max |score| " .. worst)
  -- and not elsewhere: moving one coefficient moves the score
  local th = {}
  for i, v in ipairs(fit.private.theta) do th[i] = v end
  th[2] = th[2] + 1
  local g2 = tobit.score(th, fit.private.X, fit.private.y, 0, nil)
  T.check(math.abs(g2[2]) > 1e-3, "the score is not 0 away from the estimate")
end

-- marginal effects on E[y|x]: b times the average probability of being uncensored
do
  local me = fit.marginal_effects
  local terms = me.term
  local share = fit.stats.uncensored_share
  T.check(terms[1] == "nwifeinc" and me:nrow() == 7, "one marginal effect per regressor")
  T.near(me.dydx:get(6, 1), b.youngkids * share, 1e-12, "dydx = b x P(uncensored) averaged")
  T.check(share > 0.5 and share < 0.7, "the average uncensored probability is near the 57% observed share")
end

-- predictions: the censored mean, never below the limit
do
  local p = fit:predict(d):tovector()
  local ok, mean = true, 0
  for _, v in ipairs(p) do ok = ok and v >= 0; mean = mean + v end
  T.check(ok, "censored-mean predictions are >= the left limit")
  mean = mean / #p
  local hm = 0
  for _, v in ipairs(d.hours:tovector()) do hm = hm + v end
  hm = hm / #p
  T.check(math.abs(mean - hm) / hm < 0.05, "the average prediction is close to the average outcome")
end

-- ---- random effects, censored at 0 and 1: a simulation with known parameters -------------
do
  local rng = sp.rng(7)
  local N, TT = 200, 6
  local id, x, y = {}, {}, {}
  local z = rng:normals(N * TT + N, 1):tovector()
  local e = rng:normals(N * TT, 1):tovector()
  for i = 1, N do
    local u = 0.5 * z[N * TT + i]
    for t = 1, TT do
      local r = (i - 1) * TT + t
      id[r], x[r] = i, z[r]
      y[r] = math.min(1, math.max(0, 0.2 + 0.5 * x[r] + u + 0.4 * e[r]))
    end
  end
  local sim = sp.frame { id = id, x = x, y = y }
  local re = tobit(sim, "y ~ x", { left = 0, right = 1, model = "re", entity = "id" })
  local c, s = re:coef(), re:se()
  for nm, v in pairs({ ["(Intercept)"] = 0.2, x = 0.5, sigma_u = 0.5, sigma_e = 0.4 }) do
    T.check(math.abs(c[nm] - v) < 3 * s[nm], "random-effects Tobit recovers " .. nm,
      string.format("got %.4f (se %.4f) want %g", c[nm], s[nm], v))
  end
  T.check(re.stats.n_left > 0 and re.stats.n_right > 0 and re.stats.n_entities == N, "both limits bind")
  -- the pooled model on the same data mixes u into sigma: sigma near sqrt(0.5^2 + 0.4^2)
  local po = tobit(sim, "y ~ x", { left = 0, right = 1 })
  T.check(math.abs(po:coef().sigma - math.sqrt(0.41)) < 0.05, "pooled sigma absorbs the entity effect")
  -- adaptive quadrature: 12 (the default) and 24 points agree closely
  local re12 = re
  local re24 = tobit(sim, "y ~ x", { left = 0, right = 1, model = "re", entity = "id", quadrature = 24 })
  T.check(math.abs(re24:coef().x - c.x) < 1e-5 and math.abs(re24:coef().sigma_u - c.sigma_u) < 1e-5,
    "adaptive quadrature: 12 and 24 points agree", re24:coef().x .. " vs " .. c.x)
  T.check(math.abs(re24.stats.ll - re.stats.ll) < 1e-3, "and so do the log likelihoods")
  -- Gauss-Hermite rule integrates z^2 exp(-z^2) exactly: sqrt(pi) / 2
  local gx, gw = tobit.hermite(8)
  local s2 = 0
  for i = 1, 8 do s2 = s2 + gw[i] * gx[i] ^ 2 end
  T.near(s2, math.sqrt(math.pi) / 2, 1e-12, "Gauss-Hermite nodes and weights")
  -- the panel index of the frame stands in for 'entity'
  sim:panel { entity = "id", time = "x" }
  T.check(math.abs(tobit(sim, "y ~ x", { left = 0, right = 1, model = "re" }):coef().x
    - re12:coef().x) < 1e-9, "entity from the frame's panel index")
end

-- ---- errors --------------------------------------------------------------------------------
local small = sp.frame { y = { 0, 0.5, 1, 0.2, 0.7 }, x = { 1, 2, 3, 4, 5 } }
T.checkerr("y = 1 in row 3 lies outside the censoring limits", tobit, small, "y ~ x", { left = 0, right = 0.9 })
T.checkerr("every observation is censored", tobit, sp.frame { y = { 0, 0, 0, 0 }, x = { 1, 2, 3, 4 } }, "y ~ x")
T.checkerr("model must be \"pooled\" or \"re\"", tobit, small, "y ~ x", { model = "fe" })
T.checkerr("model \"re\" needs 'entity'", tobit, small, "y ~ x", { model = "re" })
T.checkerr("'left' must be below 'right'", tobit, small, "y ~ x", { left = 1, right = 0 })
T.checkerr("unknown option 'lower'", tobit, small, "y ~ x", { lower = 0 })

T.done()
