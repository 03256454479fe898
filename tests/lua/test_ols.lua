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
T.checkerr("ols: option 'threads' must be 1 or 2, got 4", sp.ols, d, "y ~ x", { threads = 4 })
T.check(sp.ols(d, "y ~ x1 | id", { threads = 2.0 }).b[1] == sp.ols(d, "y ~ x1 | id", { threads = 1 }).b[1],
  "ols: threads = 2.0 is 2 (a YAML number may be a float)")
-- A misspelt option used to be ignored (iid standard errors printed for {vcv = "hc1"}).
T.checkerr("ols: unknown option 'vcv' %(expected one of compat, maxiter, singletons, small, threads, tol, vcov, weights%)",
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
-- ---- numerics and messages (issue: scale-blind collinearity, extreme values,
-- constant outcomes, Driscoll-Kraay lags, clusters, Wald printing) ----------------

--- Call f and return its error message (nil when it succeeds); not a tail
--- call, so the message's position is this file's line.
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  if ok then return nil end
  return tostring(e)
end

do
  -- y = 1 + 2 x + e with x = 1e6 + N(0,1): R's lm estimates it; it used to be
  -- dropped as collinear with the intercept.  Reference: centred sums.
  local r = sp.rng(20261201)
  local n = 200
  local cx, cy, cg = {}, {}, {}
  for i = 1, n do
    cx[i] = 1e6 + r:normal()
    cy[i] = 1 + 2 * cx[i] + r:normal()
    cg[i] = i % 10
  end
  local function slope(xs, ys, groups)
    -- centred (within groups when given) sums of cross-products, two passes
    local sx, sy, cnt = {}, {}, {}
    for i = 1, n do
      local g = groups and groups[i] or 0
      sx[g], sy[g], cnt[g] = (sx[g] or 0) + xs[i], (sy[g] or 0) + ys[i], (cnt[g] or 0) + 1
    end
    local sxx, sxy = 0, 0
    for i = 1, n do
      local g = groups and groups[i] or 0
      local dx, dy = xs[i] - sx[g] / cnt[g], ys[i] - sy[g] / cnt[g]
      sxx, sxy = sxx + dx * dx, sxy + dx * dy
    end
    return sxy / sxx, sxx
  end
  local dl = sp.frame { x = cx, y = cy, g = cg }
  local f = sp.ols(dl, "y ~ x")
  local want, sxx = slope(cx, cy)
  T.check(#f.dropped == 0 and f:coef().x ~= nil, "x = 1e6 + N(0,1) is not dropped", table.concat(f.notes, "; "))
  T.near(f:coef().x, want, 1e-6, "its slope matches the centred reference to 1e-6")
  T.near(f:se().x, f.stats.sigma / math.sqrt(sxx), 1e-6, "its standard error is sigma / sqrt(Sxx)")
  local ffe = sp.ols(dl, "y ~ x | g")
  local want_fe = slope(cx, cy, cg)
  T.check(#ffe.dropped == 0, "with fixed effects too, x = 1e6 + N(0,1) is kept", table.concat(ffe.notes, "; "))
  T.near(ffe:coef().x, want_fe, 1e-6, "its within slope matches the centred reference")
  -- True collinearity is still found.
  local c2, c3 = {}, {}
  for i = 1, n do c2[i], c3[i] = 2 * cx[i], cx[i] * (1 + 1e-14 * r:normal()) end
  local dc = sp.frame { x = cx, y = cy, x2 = c2, x3 = c3 }
  local fc = sp.ols(dc, "y ~ x + x2 + x3")
  T.check(fc.dropped[1] == "x2" and fc.dropped[2] == "x3", "x2 = 2 x and x3 = x (1 + 1e-14 e) are dropped",
    table.concat(fc.dropped, ", "))

  -- Values whose squares overflow or underflow: an error naming the variable.
  local big, small, huge_y = {}, {}, {}
  for i = 1, n do big[i], small[i], huge_y[i] = 1e300 * (cx[i] - 1e6), 1e-300 * (cx[i] - 1e6), 1e300 * cy[i] end
  local dx = sp.frame { y = cy, big = big, small = small, huge_y = huge_y, x = cx }
  local m = err_of(function() local fit = sp.ols(dx, "y ~ big"); return fit end)
  T.check(m and m:find("values of big are too large to estimate reliably %(|big| up to %d%.%d+e%+300%); rescale it"),
    "x at 1e300: an error naming it", m)
  T.check(m and m:find("^[%w/_]*tests/lua/test_ols%.lua:%d+: least squares"), "the error points at the caller's line", m)
  m = err_of(sp.ols, dx, "y ~ small")
  T.check(m and m:find("values of small are too small to estimate reliably"), "x at 1e-300: an error naming it", m)
  m = err_of(sp.ols, dx, "huge_y ~ x")
  T.check(m and m:find("values of huge_y are too large"), "y at 1e300: an error naming it", m)
end

do
  -- A constant outcome is refused (fixest: "the dependent variable is a constant").
  local r = sp.rng(5)
  local c = { x = {}, k = {}, g = {}, yg = {}, yp = {}, z = {} }
  for i = 1, 60 do
    c.x[i], c.z[i], c.k[i], c.g[i] = r:normal(), r:normal(), 3, i % 6
    c.yg[i] = 0.7 * c.g[i]
    c.yp[i] = 1 + 2 * c.x[i]
  end
  local dk = sp.frame(c)
  T.checkerr("ols: outcome 'k' is constant; nothing to estimate", sp.ols, dk, "k ~ x")
  T.checkerr("ols: outcome 'yg' is constant %(within the fixed effects%); nothing to estimate", sp.ols, dk, "yg ~ x | g")
  T.checkerr("ivreg: outcome 'k' is constant; nothing to estimate", sp.ols, dk, "k ~ 1 | x ~ z")
  T.checkerr("ivreg: outcome 'yg' is constant %(within the fixed effects%)", sp.ols, dk, "yg ~ 1 | g | x ~ z")
  -- 2SLS with fixed effects and no exogenous regressor (it crashed: "attempt to
  -- index a nil value (local 'Z')"): the within IV estimate z'y / z'x.
  local fiv = sp.ols(dk, "yp ~ 1 | g | z ~ x")
  local function within(v)
    local s, cnt, out = {}, {}, {}
    for i = 1, 60 do s[c.g[i]], cnt[c.g[i]] = (s[c.g[i]] or 0) + v[i], (cnt[c.g[i]] or 0) + 1 end
    for i = 1, 60 do out[i] = v[i] - s[c.g[i]] / cnt[c.g[i]] end
    return out
  end
  local wy, wz, wx = within(c.yp), within(c.z), within(c.x)
  local xy, xz = 0, 0
  for i = 1, 60 do xy, xz = xy + wx[i] * wy[i], xz + wx[i] * wz[i] end
  T.near(fiv:coef().z, xy / xz, 1e-10, "2SLS with fixed effects and only an endogenous regressor")
  -- A perfect fit: estimates, but no standard errors or p-values (R's lm
  -- warns "essentially perfect fit"; its p-values would be noise).
  local fp = sp.ols(dk, "yp ~ x")
  T.near(fp:coef().x, 2, 1e-12, "perfect fit: the coefficient is exact")
  T.check(fp:se().x ~= fp:se().x and fp:pvalue().x ~= fp:pvalue().x and fp.stats.F == nil,
    "perfect fit: standard errors and p-values are NaN, no F test")
  T.check(table.concat(fp.notes, ";"):find("perfect fit") ~= nil, "perfect fit: a note says why", table.concat(fp.notes, ";"))
  T.check(tostring(fp):find("x%s+2%.000000%s+NA%s+NA%s+NA") ~= nil, "perfect fit: the table prints NA", tostring(fp))
  -- All-zero weights are named as such (not "every regressor is collinear").
  local z = {}
  for i = 1, 60 do z[i] = 0 end
  dk.w0 = z
  T.checkerr("ols: the weights 'w0' are all zero; nothing to estimate", sp.ols, dk, "yp ~ x", { weights = "w0" })
  T.checkerr("weights: unknown weight variable 'w1' %(did you mean 'w0'%?%)", sp.ols, dk, "yp ~ x", { weights = "w1" })
end

do
  -- Driscoll-Kraay lags: integers 0 <= lag <= T - 1.
  local T_ = 8
  local r = sp.rng(11)
  local c = { id = {}, t = {}, x = {}, y = {} }
  for i = 1, 25 do
    for t = 1, T_ do
      local k = #c.id + 1
      c.id[k], c.t[k], c.x[k] = i, t, r:normal()
      c.y[k] = c.x[k] + r:normal()
    end
  end
  local dp = sp.frame(c)
  dp:panel { entity = "id", time = "t" }
  T.checkerr("driscoll_kraay lag %-3 is negative %(expected an integer 0 <= lag <= T %- 1", sp.ols, dp, "y ~ x",
    { vcov = { driscoll_kraay = -3 } })
  T.checkerr("Driscoll%-Kraay lag 8 is out of range: expected an integer 0 <= lag <= T %- 1 = 7 %(T = 8 periods of 't'%)",
    sp.ols, dp, "y ~ x", { vcov = { driscoll_kraay = 8 } })
  T.checkerr("lag 1000000000 is out of range", sp.ols, dp, "y ~ x", { vcov = { driscoll_kraay = 1e9 } })
  T.checkerr("driscoll_kraay must be true %(the default lag%) or an integer", sp.ols, dp, "y ~ x",
    { vcov = { driscoll_kraay = 1.5 } })
  local f7 = sp.ols(dp, "y ~ x", { vcov = { driscoll_kraay = 7 } })
  T.check(f7.vcov_label == "Driscoll-Kraay (lag 7)", "lag T - 1 is accepted", f7.vcov_label)
  T.checkerr("vcov: option 'lag' must be >= 0", sp.vcov, sp.matrix(3, 1, 1), sp.matrix(3, 1, 0), sp.matrix(1, 1, 1),
    { type = "driscoll_kraay", time = { 1, 2, 3 }, lag = -1 })

  -- n_clusters: a number for one-way clustering, one count per dimension for multiway.
  local f1 = sp.ols(dp, "y ~ x", { vcov = { cluster = "id" } })
  T.check(f1.stats.n_clusters == 25, "one-way: n_clusters is a number", tostring(f1.stats.n_clusters))
  local f2 = sp.ols(dp, "y ~ x", { vcov = { cluster = { "id", "t" } } })
  T.check(type(f2.stats.n_clusters) == "table" and f2.stats.n_clusters[1] == 25 and f2.stats.n_clusters[2] == T_,
    "two-way: n_clusters is {25, 8}")
  T.checkerr("vcov: unknown cluster variable 'idd' %(did you mean 'id'%?%)", sp.ols, dp, "y ~ x", { vcov = { cluster = "idd" } })
  T.checkerr("vcov: unknown cluster variable 'tt' %(did you mean 't'%?%)", sp.ols, dp, "y ~ x | id | x ~ y",
    { vcov = { cluster = "tt" } })

  -- fit:wald() prints as Stata's test does.
  local w = f1:wald({ "x" })
  local text = tostring(w)
  T.check(text:find("%(1%)  x = 0") and text:find("F%(  1,    24%) =%s+%d+%.%d%d") and text:find("Prob > F =%s+0%.%d%d%d%d"),
    "wald prints the restriction, F(df1, df2) and Prob > F", text)
  local wc = sp.ols(dp, "y ~ x", { compat = "statsmodels", vcov = "hc1" }):wald("x = 1")
  T.check(tostring(wc):find("chi2%(  1%) =") and tostring(wc):find("Prob > chi2 ="), "a normal-based wald prints chi2",
    tostring(wc))
  T.checkerr("wald: unknown coefficient 'xx' %(did you mean 'x'%?%)", f1.wald, f1, { "xx" })
end

-- fixest's K (ssc fixef.K = "nested"): a factor nested in the cluster keeps
-- one level (vars + 1 when every factor is nested, like xtreg's constant);
-- a factor not nested counts its levels less the one redundancy.
do
  local n = d:nrow()
  local one = sp.ols(d, "y ~ x1 + x2 | id", { vcov = { cluster = "id" }, compat = "fixest" })
  T.near(one.stats.vcov_dof_factor, (n - 1) / (n - 3), 1e-12,
    "fixest, FE id clustered by id: K = 2 slopes + 1")
  local two = sp.ols(d, "y ~ x1 + x2 | id + t", { vcov = { cluster = "id" }, compat = "fixest" })
  T.near(two.stats.vcov_dof_factor, (n - 1) / (n - (2 + 10)), 1e-12,
    "fixest, FE id + t clustered by id: K = 2 slopes + 10 periods (9 + the kept id level)")
end

T.done()
