package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local pm = require "spillover.panel_models"

-- Paths the reference cases do not cover, against plm 2.6.2 (R 4.2.2) on the
-- same CSVs.  The R code is quoted next to each block; e, p are
-- pdata.frame(read.csv("EmplUK.csv"), c("firm","year")) and Produc by state, year.
local fe = "log_emp ~ log_wage + log_capital + log_output"
local fp = "log_gsp ~ log_pcap + log_pc + log_emp + unemp"
local names_e = { "(Intercept)", "log_wage", "log_capital", "log_output" }
local names_p = { "(Intercept)", "log_pcap", "log_pc", "log_emp", "unemp" }

local e = sp.read_csv("tests/reference/data/EmplUK.csv")
e:panel { entity = "firm", time = "year" }
local p = sp.read_csv("tests/reference/data/Produc.csv")
p:panel { entity = "state", time = "year" }

local function near_all(got, names, want, rtol, what)
  for i, nm in ipairs(names) do T.near(got[nm], want[i], rtol, what .. " " .. nm) end
end

local function range(t)
  local lo, hi = math.huge, -math.huge
  for _, v in pairs(t) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return lo, hi
end

-- ---- random effects on an unbalanced panel: walhus and nerlove (trace formulas) ------
-- plm(fe, e, model = "random", random.method = "walhus")
local f = pm.re(e, fe, { method = "walhus" })
near_all(f:coef(), names_e, { 0.26254692828358195, -0.28876324534281966, 0.64717705053847829, 0.43154379133476634 },
  1e-9, "walhus unbalanced coef")
near_all(f:se(), names_e, { 0.31450501923196483, 0.049524167485518328, 0.017408124340015773, 0.053378137196771758 },
  1e-9, "walhus unbalanced se")
T.near(f.stats.sigma2.idios, 0.019845511343130492, 1e-9, "walhus unbalanced sigma2 idios")
T.near(f.stats.sigma2.id, 0.28205901647565695, 1e-9, "walhus unbalanced sigma2 id")
local lo, hi = range(f.stats.theta_by_entity)
T.near(lo, 0.90024368290069934, 1e-9, "walhus unbalanced min theta_i")
T.near(hi, 0.91192575994038583, 1e-9, "walhus unbalanced max theta_i")
T.check(f.stats.theta == nil, "unbalanced: theta_by_entity, no single theta")
T.check(f:uses_t() == false and f.stats.F.kind == "Wald chi2", "RE: z statistics and a Wald chi2 joint test")

-- plm(fe, e, model = "random", random.method = "nerlove")
f = pm.re(e, fe, { method = "nerlove" })
near_all(f:coef(), names_e, { 0.069032779474917844, -0.29629671861149293, 0.6068971881091153, 0.47479095944291561 },
  1e-9, "nerlove unbalanced coef")
T.near(f.stats.sigma2.idios, 0.014590317358744524, 1e-9, "nerlove unbalanced sigma2 idios")
T.near(f.stats.sigma2.id, 0.43826539843061602, 1e-9, "nerlove unbalanced sigma2 id")
lo, hi = range(f.stats.theta_by_entity)
T.near(lo, 0.93120062668942138, 1e-9, "nerlove unbalanced min theta_i")
T.near(hi, 0.93929271988377983, 1e-9, "nerlove unbalanced max theta_i")
T.near(f.stats.r2, 0.64372576345344446, 1e-9, "nerlove unbalanced r2 (cor^2 of the transformed model)")
T.near(f.stats.adj_r2, 0.64268504026976414, 1e-9, "nerlove unbalanced adj_r2")

-- ---- time effects; a component estimated negative is set to zero -----------------------
-- plm(fp, p, model = "random", effect = "time", random.method = "swar")
f = pm.re(p, fp, { effect = "time" })
near_all(f:coef(), names_p, { 1.6433022630088197, 0.15500700516658994, 0.30919016739331318, 0.59393489757799556,
  -0.0067329755778420871 }, 1e-9, "time swar coef")
near_all(f:se(), names_p, { 0.05758725227717372, 0.017153768455749095, 0.010271986879122645, 0.013747462070053756,
  0.0014163761104361509 }, 1e-9, "time swar se")
T.near(f.stats.sigma2.idios, 0.0076262349868890756, 1e-9, "time swar sigma2 idios")
T.check(f.stats.sigma2.time == 0 and f.stats.theta == 0, "time swar: negative sigma2 time set to 0, theta 0")
local noted = false
for _, n in ipairs(f.notes) do if n:find("'time' estimated negative", 1, true) then noted = true end end
T.check(noted, "a note says the time component was negative")
-- plm(fe, e, model = "random", effect = "time", random.method = "amemiya") (unbalanced)
f = pm.re(e, fe, { effect = "time", method = "amemiya" })
near_all(f:coef(), names_e, { 0.34442434823869567, -0.3669497961412605, 0.80901772205841227, 0.47911462794118187 },
  1e-9, "time amemiya unbalanced coef")
T.near(f.stats.sigma2.idios, 0.2971428535177833, 1e-9, "time amemiya sigma2 idios")

-- plm(fe, e, model = "random", effect = "time", random.method = m)$coef["log_wage"] (unbalanced by period)
T.near(pm.re(e, fe, { effect = "time" }):coef().log_wage, -0.36694979614126, 1e-12, "time swar unbalanced")
T.near(pm.re(e, fe, { effect = "time", method = "nerlove" }):coef().log_wage, -0.373374689783385, 1e-12,
  "time nerlove unbalanced")
-- plm(log_emp ~ log_wage + lag(log_capital) + factor(sector), e, model = "random"): lags and factors
T.near(pm.re(e, "log_emp ~ log_wage + l(log_capital, 1) + i(sector)"):coef().log_wage, -0.766356853124098, 1e-12,
  "RE with a lag and factor dummies")
-- vcovSCC(plm(fe, e, model = "random"), maxlag = 2, type = "HC0")
T.near(pm.re(e, fe, { vcov = { driscoll_kraay = 2 } }):se().log_wage, 0.12878199932484, 1e-12, "RE Driscoll-Kraay se")

-- ---- two-way walhus and nerlove (balanced) -------------------------------------------
f = pm.re(p, fp, { effect = "twoways", method = "walhus" })
near_all(f:coef(), names_p, { 2.3556019672237154, 0.028489238973648506, 0.26150825936225386, 0.73751331915683216,
  -0.0046389218991145292 }, 1e-9, "twoways walhus coef")
T.near(f.stats.sigma2.idios, 0.0013069777124656995, 1e-9, "twoways walhus sigma2 idios")
T.near(f.stats.sigma2.id, 0.0061546685687688179, 1e-9, "twoways walhus sigma2 id")
T.near(f.stats.sigma2.time, 0.00025017649602109319, 1e-9, "twoways walhus sigma2 time")
f = pm.re(p, fp, { effect = "twoways", method = "nerlove" })
near_all(f:coef(), names_p, { 2.8987695115525276, 0.00047894085501217349, 0.21319126346005143, 0.77101084533717523,
  -0.0039741512599835794 }, 1e-9, "twoways nerlove coef")
T.near(f.stats.sigma2.idios, 0.0010777450936294394, 1e-9, "twoways nerlove sigma2 idios")
T.near(f.stats.sigma2.id, 0.024441456905594624, 1e-9, "twoways nerlove sigma2 id")
T.near(f.stats.sigma2.time, 0.00072010181738317103, 1e-9, "twoways nerlove sigma2 time")

-- ---- robust covariances --------------------------------------------------------------
-- vcovHC(plm(fe, e, model = "random"), method = "arellano", type = "HC1"); pwaldtest(m, vcov = ...)
f = pm.re(e, fe, { vcov = { cluster = "firm", type = "hc1" } })
near_all(f:se(), names_e, { 0.59996340557619388, 0.10916054773938788, 0.03421736484228869, 0.095169104394291659 },
  1e-9, "RE arellano HC1 se")
T.near(f.stats.F.statistic, 744.20058755531488, 1e-8, "RE robust Wald chi2")
-- vcovHC(plm(fp, p, model = "random"), method = "arellano", type = "sss")
f = pm.re(p, fp, { vcov = { cluster = "state", type = "sss" } })
near_all(f:se(), names_p, { 0.24178727821013907, 0.055310705156037643, 0.04416204943530553, 0.070882574650905084,
  0.0023631174979263088 }, 1e-9, "RE arellano sss se")
-- vcovHC(plm(fe, e, model = "fd"), method = "arellano", type = "HC0"); pwaldtest(test = "F", vcov = ...)
-- (plm's HC1 on an FD model scales by n_fd / (n_levels - k), a plm quirk not reproduced: see the docs)
f = pm.fd(e, fe, { vcov = { cluster = "firm", type = "hc0" } })
near_all(f:se(), names_e, { 0.0043368353510381636, 0.13613317681268208, 0.048787003283464116, 0.11165319505030308 },
  1e-9, "FD arellano HC0 se")
T.near(f.stats.F.statistic, 55.95202498209526, 1e-8, "FD robust F")
T.check(f.stats.F.df1 == 3 and f.stats.F.df2 == 139, "FD robust F has df (3, G - 1 = 139)")
T.check(f:uses_t() and f.df_resid == 887, "FD: t inference on n - k = 887 df")
-- sandwich::vcovHC(lm(fp, <state means>), type = "HC1")
f = pm.between(p, fp, { vcov = "hc1" })
near_all(f:se(), names_p, { 0.25885543477285505, 0.070061743374614752, 0.052615426274971351, 0.073500925124088762,
  0.0094410843494500459 }, 1e-9, "between HC1 se")
T.check(f.nobs == 48 and f.stats.n_periods == 17, "between: one row per entity")

-- ---- first differences across a gap -----------------------------------------------
-- Produc without 1980: plm's pdiff differences across the gap (720 rows);
-- by default spillover does not (672 rows = lm on consecutive-year differences).
local g = p:filter("year ~= 1980")
g:panel { entity = "state", time = "year" }
f = pm.fd(g, fp)
T.check(f.nobs == 672, "fd respects the gap: 672 differences")
near_all(f:coef(), names_p, { 0.010141884889772624, -0.017585057942955264, -0.02658172096342978, 0.84794182097768356,
  -0.0056755750618767663 }, 1e-9, "fd with a gap coef")
f = pm.fd(g, fp, { across_gaps = true })
T.check(f.nobs == 720, "fd across_gaps = true: 720 differences, as plm")
near_all(f:coef(), names_p, { 0.0098792172360128074, 0.00094060609668690314, 0.0025088270277153638,
  0.83488204423472656, -0.0052333760833082957 }, 1e-9, "fd across_gaps coef (plm)")

-- ---- the fit protocol ------------------------------------------------------------
f = pm.re(p, fp)
T.check(sp.is_fit(f), "sp.re returns a fit")
T.check(f:summary():find("Random effects (Swamy-Arora, individual)", 1, true) ~= nil, "summary names the method")
local pr = f:predict(p)
local c = f:coef()
T.near(pr[1], c["(Intercept)"] + c.log_pcap * p.log_pcap[1] + c.log_pc * p.log_pc[1] + c.log_emp * p.log_emp[1] +
  c.unemp * p.unemp[1], 1e-12, "predict = X b")
T.check(f:resid():nrow() == 816 and f:fitted():nrow() == 816, "resid and fitted of the transformed model")

-- ---- errors ----------------------------------------------------------------------
local raw = sp.read_csv("tests/reference/data/Produc.csv")
T.checkerr("re: the frame has no panel index: call d:panel{entity=, time=} first", pm.re, raw, fp)
T.checkerr("between: the frame has no panel index", pm.between, raw, fp)
T.checkerr("fd: the frame has no panel index", pm.fd, raw, fp)
T.checkerr("re: expected a formula string as argument 2", pm.re, p, 42)
T.checkerr("re: unknown method 'swamy' %(expected swar, amemiya, walhus or nerlove%)", pm.re, p, fp, { method = "swamy" })
T.checkerr("re: unknown effect 'nested' %(expected individual, time or twoways%)", pm.re, p, fp, { effect = "nested" })
T.checkerr("re: the formula has a fixed%-effects part %('| state'%); random effects are chosen with opts.effect",
  pm.re, p, fp .. " | state")
T.checkerr("fd: the formula has a fixed%-effects part %('| state'%); this estimator does not absorb fixed effects",
  pm.fd, p, fp .. " | state")
T.checkerr("re: the model needs an intercept", pm.re, p, fp .. " - 1")
T.checkerr("re: weights are not supported", pm.re, p, fp, { weights = "emp" })
T.checkerr("re: unknown option 'methd' %(expected one of compat, effect, method, vcov, weights%)", pm.re, p, fp,
  { methd = "amemiya" })
T.checkerr("between: unknown option 'method'", pm.between, p, fp, { method = "swar" })
T.checkerr("fd: expected an options table as argument 3, got string", pm.fd, p, fp, "hc1")
T.checkerr("re: two%-way random effects on an unbalanced panel are not supported yet %(1031 rows for 140 entities x 9 periods%)",
  pm.re, e, fe, { effect = "twoways" })
T.checkerr("between: vcov 'driscoll_kraay' is not available", pm.between, p, fp, { vcov = { driscoll_kraay = 2 } })
T.checkerr("between: vcov 'cluster' is not available: the between model has one row per entity", pm.between, p, fp,
  { vcov = { cluster = "state" } })
-- a regressor constant within entities: amemiya's components come from the
-- within fit without it (test_stata_parity.lua), swar and between keep it too
p.region_x = p.region * 1.0
f = pm.re(p, fp .. " + region_x")
T.check(f:coef().region_x ~= nil, "swar keeps a time-invariant regressor")
-- too few entities: 4 states, 5 coefficients
local small = p:filter("state == 'ALABAMA' or state == 'ARIZONA' or state == 'ARKANSAS' or state == 'CALIFORNIA'")
small:panel { entity = "state", time = "year" }
T.checkerr("re: Swamy%-Arora is not estimable: 5 coefficients %(incl. intercept%) but only 4 entities", pm.re, small, fp)
T.checkerr("between: 4 entities are too few for 5 coefficients", pm.between, small, fp)
local one = p:filter("state == 'ALABAMA'")
one:panel { entity = "state", time = "year" }
T.checkerr("re: too few groups: 1 entities", pm.re, one, fp)
local first = p:filter("year == 1970")
first:panel { entity = "state", time = "year" }
T.checkerr("fd: no row has an observed previous period: nothing to difference", pm.fd, first, fp)

-- ---- simulation: RE recovers known coefficients and variance components ----------------
-- y = 1 + 2 x1 - 0.5 x2 + u_i + e_it, u ~ N(0, 1), e ~ N(0, 0.25), N = 400, T = 5,
-- with one period in four dropped at random for the unbalanced version.
local rng = sp.rng(20240611)
local cols = { id = {}, t = {}, y = {}, x1 = {}, x2 = {} }
local unb = { id = {}, t = {}, y = {}, x1 = {}, x2 = {} }
for i = 1, 400 do
  local u = rng:normal()
  for t = 1, 5 do
    local x1, x2 = rng:normal() + 0.3 * t, rng:normal() * 2
    local y = 1 + 2 * x1 - 0.5 * x2 + u + 0.5 * rng:normal()
    local r = #cols.id + 1
    cols.id[r], cols.t[r], cols.y[r], cols.x1[r], cols.x2[r] = i, t, y, x1, x2
    if rng:uniform() > 0.25 then
      local s = #unb.id + 1
      unb.id[s], unb.t[s], unb.y[s], unb.x1[s], unb.x2[s] = i, t, y, x1, x2
    end
  end
end
for _, spec in ipairs { { cols, "balanced" }, { unb, "unbalanced" } } do
  local sim = sp.frame(spec[1])
  sim:panel { entity = "id", time = "t" }
  for _, method in ipairs { "swar", "amemiya", "walhus", "nerlove" } do
    local r = pm.re(sim, "y ~ x1 + x2", { method = method })
    local b, se = r:coef(), r:se()
    local label = string.format("simulation (%s, %s)", spec[2], method)
    T.check(math.abs(b.x1 - 2) < 4 * se.x1 and math.abs(b.x2 + 0.5) < 4 * se.x2 and
      math.abs(b["(Intercept)"] - 1) < 4 * se["(Intercept)"], label .. ": coefficients within 4 SE of the truth",
      string.format("x1 %.4f (%.4f) x2 %.4f (%.4f)", b.x1, se.x1, b.x2, se.x2))
    -- Nerlove divides the within SSR by n (not n - N - K): expect 0.25 (n - N - K) / n
    local n = r.nobs
    local want_idios = method == "nerlove" and 0.25 * (n - 400 - 2) / n or 0.25
    T.check(math.abs(r.stats.sigma2.idios - want_idios) < 0.03 and math.abs(r.stats.sigma2.id - 1) < 0.25,
      label .. ": variance components near (0.25, 1)",
      string.format("idios %.4f id %.4f", r.stats.sigma2.idios, r.stats.sigma2.id))
  end
end

-- ---- constant outcomes, perfect fits, cluster counts ---------------------------------
do
  local r = sp.rng(42)
  local c = { id = {}, t = {}, x = {}, k = {}, yi = {}, y = {}, yt = {} }
  for i = 1, 30 do
    for t = 1, 5 do
      local n = #c.id + 1
      c.id[n], c.t[n], c.x[n] = i, t, r:normal()
      c.k[n], c.yi[n] = 2, 0.3 * i
      c.y[n] = 0.5 * c.x[n] + 0.1 * i + r:normal()
      c.yt[n] = 1 + 2 * c.x[n]
    end
  end
  local d = sp.frame(c)
  d:panel { entity = "id", time = "t" }
  -- A constant outcome gave coefficients of 1e-32 with p-values near 0.
  for _, who in ipairs { "re", "between", "fd" } do
    T.checkerr(who .. ": outcome 'k' is constant; nothing to estimate", pm[who], d, "k ~ x")
  end
  T.checkerr("fd: outcome 'yi' is constant %(within entities: its first differences are all zero%)", pm.fd, d, "yi ~ x")
  -- Between on an exact fit of the entity means: no standard errors.
  local fb = pm.between(d, "yt ~ x")
  T.near(fb:coef().x, 2, 1e-10, "between perfect fit: exact coefficient")
  T.check(fb:se().x ~= fb:se().x and fb.stats.F == nil and table.concat(fb.notes, ";"):find("perfect fit"),
    "between perfect fit: NaN standard error, no F, a note")
  -- One-way clustering: n_clusters is a number.
  local fr = pm.re(d, "y ~ x", { vcov = { cluster = "id" } })
  T.check(fr.stats.n_clusters == 30, "re: one-way n_clusters is a number", tostring(fr.stats.n_clusters))
  T.checkerr("vcov: unknown cluster variable 'idd' %(did you mean 'id'%?%)", pm.re, d, "y ~ x", { vcov = { cluster = "idd" } })
end

T.done()
