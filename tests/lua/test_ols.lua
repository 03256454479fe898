-- test_ols: sp.ols beyond the reference cases: three-way fixed effects
-- recovered on simulated data and equal to the dummy-variable regression,
-- singletons, weights, and every bad-input message.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

-- Simulated panel: y = 0.5 x1 - 0.3 x2 + a_id + g_t + h_k + e, unbalanced (10% of rows dropped).
local rng = sp.rng(2024)
local cols = { id = {}, t = {}, k = {}, x1 = {}, x2 = {}, y = {} }
local a, g, h = {}, {}, {}
for i = 1, 200 do a[i] = rng:normal() end
for t = 1, 10 do g[t] = 0.3 * rng:normal() end
for k = 1, 20 do h[k] = 0.5 * rng:normal() end
for i = 1, 200 do
  for t = 1, 10 do
    if rng:uniform() > 0.1 then
      local k = rng:integer(20)
      local x1 = rng:normal() + 0.5 * a[i]
      local x2 = rng:normal() + g[t]
      local n = #cols.id + 1
      cols.id[n], cols.t[n], cols.k[n], cols.x1[n], cols.x2[n] = i, 2000 + t, k, x1, x2
      cols.y[n] = 0.5 * x1 - 0.3 * x2 + a[i] + g[t] + h[k] + 0.1 * rng:normal()
    end
  end
end
local d = sp.frame(cols)
d:panel { entity = "id", time = "t" }
local fit = sp.ols(d, "y ~ x1 + x2 | id + t + k")
T.near(fit:coef().x1, 0.5, 0.02, "three-way FE: x1 recovered")
T.near(fit:coef().x2, -0.3, 0.05, "three-way FE: x2 recovered")

-- The same by least squares on explicit dummies.
local n = d:nrow()
local ncol = 2 + 199 + 9 + 19 + 1
local X = sp.matrix(n, ncol, 0)
local y = sp.matrix(n, 1)
for r = 1, n do
  X:set(r, 1, cols.x1[r]); X:set(r, 2, cols.x2[r]); y:set(r, 1, cols.y[r])
  X:set(r, ncol, 1)
  if cols.id[r] > 1 then X:set(r, 2 + cols.id[r] - 1, 1) end
  if cols.t[r] > 2001 then X:set(r, 2 + 199 + cols.t[r] - 2001, 1) end
  if cols.k[r] > 1 then X:set(r, 2 + 199 + 9 + cols.k[r] - 1, 1) end
end
local lsdv = sp.lsfit(X, y)
T.near(fit:coef().x1, lsdv.b:get(1, 1), 1e-8, "three-way FE equals LSDV: x1")
T.near(fit:coef().x2, lsdv.b:get(2, 1), 1e-8, "three-way FE equals LSDV: x2")
T.check(fit.stats.df_resid == n - lsdv.rank, "absorbed degrees of freedom equal the dummies' rank",
  string.format("%d vs %d", fit.stats.df_resid, n - lsdv.rank))
local s2 = lsdv.ssr / (n - lsdv.rank)
T.near(fit:se().x1, math.sqrt(s2 * lsdv.bread:get(1, 1)), 1e-7, "three-way FE iid SE equals LSDV")
T.near(fit.stats.ssr, lsdv.ssr, 1e-8, "same SSR")

-- Fitted values and fixed effects reproduce y - e.
local fx = fit:fitted()
local e = fit:resid()
local worst = 0
for r = 1, n do worst = math.max(worst, math.abs(fx[r] + e[r] - cols.y[r])) end
T.check(worst < 1e-8, "fitted + resid = y", tostring(worst))
local p = fit:predict(d)
worst = 0
for r = 1, n do worst = math.max(worst, math.abs(p[r] - fx[r])) end
T.check(worst < 1e-7, "predict(data) = fitted", tostring(worst))
-- A row whose regressor is missing predicts NaN; the other rows are unchanged.
do
  local nd = d:head(5):copy()
  local x1 = {}
  for r = 1, 5 do x1[r] = nd.x1[r] end
  x1[3] = 0 / 0
  nd.x1 = x1
  local pn = fit:predict(nd)
  T.check(pn[3] ~= pn[3], "predict: a missing regressor gives NaN")
  local ok = true
  for r = 1, 5 do if r ~= 3 and math.abs(pn[r] - p[r]) > 1e-12 then ok = false end end
  T.check(ok, "predict: rows with every regressor keep their prediction")
end

-- Weights: equal weights change nothing; doubled weights neither.
d.w1 = 2
local fw = sp.ols(d, "y ~ x1 + x2 | id + t", { weights = "w1" })
local fu = sp.ols(d, "y ~ x1 + x2 | id + t")
T.near(fw:coef().x1, fu:coef().x1, 1e-10, "constant weights give the unweighted estimate")

-- Singletons: add a lone entity.
local c2 = {}
for k, v in pairs(cols) do c2[k] = { table.unpack(v) } end
local m = #c2.id + 1
c2.id[m], c2.t[m], c2.k[m], c2.x1[m], c2.x2[m], c2.y[m] = 999, 2005, 3, 0.1, 0.2, 0.3
local ds = sp.frame(c2)
ds:panel { entity = "id", time = "t" }
local fs = sp.ols(ds, "y ~ x1 + x2 | id + t", { singletons = "drop" })
T.check(fs.stats.singletons == 1 and fs.nobs == n, "one singleton dropped and reported", tostring(fs.stats.singletons))
T.near(fs:coef().x1, fu:coef().x1, 1e-10, "dropping the singleton leaves the estimate unchanged")
T.checkerr("singletons must be", sp.ols, ds, "y ~ x1 | id", { singletons = "yes" })

-- Collinear and absorbed regressors are dropped with a note naming them.
d.x3 = sp.eval(d, "I(2 * x1 - x2)")
local fc = sp.ols(d, "y ~ x1 + x2 + x3 | id")
T.check(fc:coef().x3 == nil and table.concat(fc.notes, ";"):find("'x3' dropped") ~= nil, "collinear x3 dropped, named")
local zc = {}
for r = 1, n do zc[r] = cols.id[r] * 0.01 end
d.z = zc
local fz = sp.ols(d, "y ~ x1 + z | id")
T.check(fz:coef().z == nil and table.concat(fz.notes, ";"):find("'z' dropped: collinear with other regressors or absorbed") ~= nil,
  "a regressor constant within entities is absorbed by the fixed effects")
T.checkerr("every regressor is collinear or absorbed", sp.ols, d, "y ~ z | id")

-- Bad input.
d.one = 1
T.checkerr("cluster variable 'one' has a single level", sp.ols, d, "y ~ x1", { vcov = { cluster = "one" } })
local small = d:head(3)
T.checkerr("too few", sp.ols, small, "y ~ x1 + x2 | id")
T.checkerr("unknown variable 'x9'", sp.ols, d, "y ~ x9")
T.checkerr("vcov: unknown type 'hc5'", sp.ols, d, "y ~ x1", { vcov = "hc5" })
T.checkerr("compat: unknown preset 'stataa'", sp.ols, d, "y ~ x1", { compat = "stataa" })
T.checkerr("expected a formula string", sp.ols, d, 42)
-- A misspelt option used to be ignored (iid standard errors printed for {vcv = "hc1"}).
T.checkerr("ols: unknown option 'vcv' %(expected one of compat, maxiter, singletons, threads, tol, vcov, weights%)",
  sp.ols, d, "y ~ x1", { vcv = "hc1" })
T.checkerr("ols: expected an options table as argument 3, got string", sp.ols, d, "y ~ x1", "hc1")

-- Non-convergence of the demeaning is reported, not hidden.
local fn = sp.ols(d, "y ~ x1 + x2 | id + t + k", { maxiter = 1 })
T.check(table.concat(fn.notes, ";"):find("not absorbed after 1 iterations") ~= nil, "non-convergence noted", table.concat(fn.notes, ";"))
-- The fit protocol's tests and draws on pooled Produc (R: summary(lm) F = 27171.658180622584).
local pr = sp.read_csv("tests/reference/data/Produc.csv")
local po = sp.ols(pr, "log_gsp ~ log_pcap + log_pc + log_emp + unemp")
local b, V, t = po:coef(), po:vcov(), po:tstat()
T.near(po:wald("log_pcap = 0").statistic, t.log_pcap ^ 2, 1e-10, "wald of one zero restriction = t^2")
T.near(po:wald({ "log_pcap", "log_pc", "log_emp", "unemp" }).statistic, 27171.658180622584, 1e-9,
  "wald of all slopes = the model F of R's lm")
local diff = b.log_pcap - b.log_pc
T.near(po:wald("log_pcap = log_pc").statistic,
  diff ^ 2 / (V.log_pcap.log_pcap + V.log_pc.log_pc - 2 * V.log_pcap.log_pc), 1e-10, "wald of an equality")
T.near(po:wald("2*log_pcap + log_pc = 1").statistic,
  (2 * b.log_pcap + b.log_pc - 1) ^ 2 / (4 * V.log_pcap.log_pcap + V.log_pc.log_pc + 4 * V.log_pcap.log_pc), 1e-10,
  "wald of a linear combination with a constant")
T.checkerr("linearly dependent", po.wald, po, "log_pcap = 0, 2*log_pcap = 0")
T.checkerr("cannot read 'log_pcapp", po.wald, po, "log_pcapp = 0")
T.checkerr("unknown coefficient 'zz'", po.wald, po, { "zz" })
local ci = po:confint(0.95).log_pcap
T.near(ci[2] - ci[1], 2 * sp.dist.qt(0.975, 811) * po:se().log_pcap, 1e-12, "confint uses t(df_resid)")
T.checkerr("level must be in", po.confint, po, 1.5)
local rng, sum, sumsq, R = sp.rng(7), 0, 0, 4000
for _ = 1, R do
  local x = po:draw(rng).log_emp
  sum, sumsq = sum + x, sumsq + x * x
end
local mean = sum / R
T.near(mean, b.log_emp, 3 * po:se().log_emp / math.sqrt(R) / math.abs(b.log_emp), "draws centred on b")
T.near(math.sqrt(sumsq / R - mean * mean), po:se().log_emp, 0.05, "draws spread by se")
T.done()
