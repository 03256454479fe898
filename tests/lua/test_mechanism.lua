package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local mech = require "spillover.mechanism"

-- ---- simulated data with a known indirect effect ----------------------------------------

-- Cross-section: x ~ N(0,1), m = 0.5 x + u, y = 0.4 m + 0.2 x + v (indirect 0.2).
local function simulate(n, seed)
  local rng = sp.rng(seed)
  local x, m, y, z = {}, {}, {}, {}
  for i = 1, n do
    x[i] = rng:normal()
    z[i] = rng:normal()
    m[i] = 1 + 0.5 * x[i] + 0.3 * z[i] + rng:normal()
    y[i] = 2 + 0.4 * m[i] + 0.2 * x[i] + 0.5 * z[i] + rng:normal()
  end
  return sp.frame({ x = x, m = m, y = y, z = z }, { order = { "x", "m", "y", "z" } })
end

local sim = simulate(4000, 7)
local r = mech.mediation(sim, { x = "x", m = "m", y = "y", controls = "z", bootstrap = 300, seed = 11 })
local e = r.effects[1]
T.near(e.a, 0.5, 0.06, "simulation: a path recovered (0.5)")
T.near(e.b, 0.4, 0.06, "simulation: b path recovered (0.4)")
T.near(e.indirect, 0.2, 0.08, "simulation: indirect effect recovered (0.2)")
T.check(math.abs(e.indirect - 0.2) < 4 * e.sobel.se, "simulation: indirect within 4 Sobel SEs of 0.2")
T.check(e.boot.percentile[1] < 0.2 and 0.2 < e.boot.percentile[2], "simulation: percentile CI covers 0.2",
  string.format("[%g, %g]", e.boot.percentile[1], e.boot.percentile[2]))
T.check(e.boot.bc[1] < 0.2 and 0.2 < e.boot.bc[2], "simulation: bias-corrected CI covers 0.2")
T.check(e.boot.percentile[1] > 0.1 and e.boot.percentile[2] < 0.3, "simulation: the CI is informative (within 0.1..0.3)")
T.near(e.boot.se, e.sobel.se, 0.25, "simulation: bootstrap SE close to the Sobel SE")
T.check(r.bootstrap.method == "pairs bootstrap" and r.bootstrap.failed == 0, "simulation: pairs bootstrap without failures")
T.near(r.c.estimate, 0.4, 0.08, "simulation: total effect c = 0.2 + 0.5*0.4")

-- Panel with entity effects correlated with x: FE needed; cluster bootstrap by id.
local function simulate_panel(N, Tn, seed)
  local rng = sp.rng(seed)
  local id, t, x, m, y = {}, {}, {}, {}, {}
  for i = 1, N do
    local alpha = rng:normal()
    for s = 1, Tn do
      local r_ = #id + 1
      id[r_], t[r_] = "u" .. i, s
      x[r_] = alpha + rng:normal()
      m[r_] = 2 * alpha + 0.5 * x[r_] + 0.1 * s + rng:normal()
      y[r_] = -alpha + 0.4 * m[r_] + 0.3 * x[r_] + rng:normal()
    end
  end
  local d = sp.frame({ id = id, t = t, x = x, m = m, y = y }, { order = { "id", "t", "x", "m", "y" } })
  d:panel { entity = "id", time = "t" }
  return d
end
local pd = simulate_panel(150, 8, 3)
local pr = mech.mediation(pd, { x = "x", m = { "m" }, y = "y", fe = "id + t", vcov = { cluster = "id" },
  bootstrap = 200, seed = 5 })
local pe = pr.effects[1]
T.check(pr.bootstrap.cluster == "id" and pr.bootstrap.method == "cluster bootstrap by id", "panel: cluster bootstrap by id")
T.near(pe.indirect, 0.2, 0.15, "panel: indirect effect recovered with fixed effects")
T.check(pe.boot.percentile[1] < 0.2 and 0.2 < pe.boot.percentile[2], "panel: cluster-bootstrap CI covers 0.2")
T.check(pr.total.fe and #pr.total.fe == 2 and pr.outcome.vcov_label:find("clustered by id"), "panel: FE and clustered SEs")

-- ---- the real panel: closed forms, the decomposition, reproducibility -------------------------

local d = sp.read_csv("scenarios/data/cn_province_panel.csv")
d:panel { entity = "province", time = "year" }
d.dige = d.digital_finance / 100
d:log({ "patent_grants_invention", "gdp_per_capita" }, { prefix = "ln_" })
local opts = { x = "dige", m = { "rd_intensity_pct", "urbanization" }, y = "ln_patent_grants_invention",
  controls = "ln_gdp_per_capita + government_intervention", fe = "province + year", vcov = { cluster = "province" },
  bootstrap = 99, seed = 42 }
local res = mech.mediation(d, opts)

-- The stepwise regressions are sp.ols fits on the common sample.
local f_total = sp.ols(d, "ln_patent_grants_invention ~ dige + ln_gdp_per_capita + government_intervention | province + year",
  { vcov = { cluster = "province" } })
T.near(res.c.estimate, f_total:coef().dige, 1e-12, "c equals sp.ols total-effect coefficient")
T.near(res.c.se, f_total:se().dige, 1e-12, "se(c) equals sp.ols clustered SE")
local f_a = sp.ols(d, "rd_intensity_pct ~ dige + ln_gdp_per_capita + government_intervention | province + year",
  { vcov = { cluster = "province" } })
T.near(res.effects[1].a, f_a:coef().dige, 1e-12, "a1 equals the sp.ols a-path")
T.near(res.effects[1].se_a, f_a:se().dige, 1e-12, "se(a1) equals the sp.ols a-path SE")
T.check(#res.fits == 4 and res.fits[4] == res.outcome, "fits: total, two a-paths, outcome")

-- c = c' + sum a_j b_j exactly on a common sample (Frisch-Waugh-Lovell).
local s = res.direct.estimate
for _, ef in ipairs(res.effects) do s = s + ef.a * ef.b end
T.near(s, res.c.estimate, 1e-9, "decomposition c = c' + sum a*b")
T.near(res.total_indirect.proportion, (res.c.estimate - res.direct.estimate) / res.c.estimate, 1e-9,
  "proportion mediated = (c - c') / c")

-- Sobel, Aroian and Goodman against hand computations.
for j, ef in ipairs(res.effects) do
  local a, sa, b, sb = ef.a, ef.se_a, ef.b, ef.se_b
  local sob = math.sqrt(b * b * sa * sa + a * a * sb * sb)
  local aro = math.sqrt(b * b * sa * sa + a * a * sb * sb + sa * sa * sb * sb)
  local goo = math.sqrt(b * b * sa * sa + a * a * sb * sb - sa * sa * sb * sb)
  T.near(ef.sobel.se, sob, 1e-12, "Sobel SE by hand, mediator " .. j)
  T.near(ef.sobel.z, a * b / sob, 1e-12, "Sobel z by hand, mediator " .. j)
  T.near(ef.aroian.z, a * b / aro, 1e-12, "Aroian z by hand, mediator " .. j)
  T.near(ef.goodman.z, a * b / goo, 1e-12, "Goodman z by hand, mediator " .. j)
  T.near(ef.sobel.pvalue, 2 * sp.dist.pnorm(math.abs(a * b / sob), true), 1e-12, "Sobel p by hand, mediator " .. j)
  T.check(ef.aroian.se > ef.sobel.se and ef.goodman.se < ef.sobel.se, "Aroian > Sobel > Goodman SE, mediator " .. j)
end
-- Textbook numbers: a = 0.5 (0.1), b = 0.4 (0.1): Sobel z = 0.2 / sqrt(0.0016 + 0.0025) = 3.1235.
local tt = mech.indirect_tests(0.5, 0.1, 0.4, 0.1)
T.near(tt.sobel.z, 0.2 / math.sqrt(0.0041), 1e-12, "indirect_tests: Sobel z closed form")
T.near(tt.aroian.z, 0.2 / math.sqrt(0.0042), 1e-12, "indirect_tests: Aroian z closed form")
T.near(tt.goodman.z, 0.2 / math.sqrt(0.0040), 1e-12, "indirect_tests: Goodman z closed form")
local neg = mech.indirect_tests(0.01, 1, 0.01, 1)
T.check(neg.goodman.se ~= neg.goodman.se, "indirect_tests: a negative Goodman variance gives NaN")

-- Bootstrap intervals: reproducible with a seed, different with another.
local res2 = mech.mediation(d, opts)
T.check(res2.effects[1].boot.percentile[1] == res.effects[1].boot.percentile[1] and
  res2.effects[2].boot.bc[2] == res.effects[2].boot.bc[2], "bootstrap reproducible with the same seed")
local o3 = {}
for k, v in pairs(opts) do o3[k] = v end
o3.seed = 43
local res3 = mech.mediation(d, o3)
T.check(res3.effects[1].boot.percentile[1] ~= res.effects[1].boot.percentile[1], "another seed gives other draws")
T.check(res.bootstrap.cluster == "province" and #res.bootstrap.draws[1] == 99, "cluster bootstrap by province, 99 draws")
T.check(res.effects[1].boot.percentile[1] < res.effects[1].indirect and
  res.effects[1].indirect < res.effects[1].boot.percentile[2], "percentile CI contains the estimate here")

-- Percentile and bias-corrected intervals by hand on a known set of draws.
local draws = {}
for i = 1, 100 do draws[i] = i end
local ci = mech.boot_ci(draws, 50.5, 0.9)
T.near(ci.percentile[1], 5.95, 1e-12, "boot_ci: percentile lower (type 7)")
T.near(ci.percentile[2], 95.05, 1e-12, "boot_ci: percentile upper (type 7)")
T.near(ci.bc[1], 5.95, 1e-12, "boot_ci: no bias (z0 = 0) gives the percentile interval")
local ci2 = mech.boot_ci(draws, 60.5, 0.9)
local z0 = sp.dist.qnorm(0.6)
T.near(ci2.z0, z0, 1e-12, "boot_ci: z0 = qnorm(share below the estimate)")
T.near(ci2.bc[1], mech.quantile(draws, sp.dist.pnorm(2 * z0 + sp.dist.qnorm(0.05))), 1e-12, "boot_ci: BC lower")
T.check(ci2.bc[1] > ci2.percentile[1], "boot_ci: BC shifts towards the estimate's side")

-- BCa (jackknife over clusters) on request.
local ob = {}
for k, v in pairs(opts) do ob[k] = v end
ob.bca, ob.bootstrap, ob.m = true, 49, "rd_intensity_pct"
local rb = mech.mediation(d, ob)
T.check(rb.effects[1].boot.bca and rb.effects[1].boot.acceleration ~= nil, "BCa interval with an acceleration")

-- The report, tidy frame and the regression table.
local text = tostring(res)
T.check(text:find("Sobel z", 1, true) and text:find("bias%-corrected CI") and text:find("rd_intensity_pct", 1, true),
  "the report names the tests and the mediators")
local td = res:tidy()
T.check(td:nrow() == 3 and td.mediator[3] == "(total)", "tidy: one row per mediator plus the total")
local md = res:etable():markdown()
T.check(md:find("rd_intensity_pct", 1, true) and md:find("province FE", 1, true), "etable of the four regressions")

-- ---- moderation and margins ----------------------------------------------------------------

local pr_ = sp.read_csv("tests/reference/data/Produc.csv")
pr_:panel { entity = "state", time = "year" }
local fm = sp.ols(pr_, "log_gsp ~ log_pcap*unemp + log_emp | state + year")
local mg = fm:margins("log_pcap", { at = { unemp = { 4, 6, 8 } } })
-- R: lm(log_gsp ~ log_pcap*unemp + log_emp + factor(state) + factor(year), Produc);
--    g = c(1, 6); sum(g * b[nm]); sqrt(t(g) %*% vcov(m)[nm, nm] %*% g)
T.near(mg.rows[2].effect, -0.00626273598075508, 1e-9, "margins at unemp = 6 (R)")
T.near(mg.rows[2].se, 0.0273350924369728, 1e-8, "margins delta-method SE at unemp = 6 (R)")
local V = fm:vcov()
local b = fm:coef()
local want = b.log_pcap + 8 * b["log_pcap:unemp"]
local wse = math.sqrt(V.log_pcap.log_pcap + 64 * V["log_pcap:unemp"]["log_pcap:unemp"] + 16 * V.log_pcap["log_pcap:unemp"])
T.near(mg.rows[3].effect, want, 1e-12, "margins at unemp = 8 by hand")
T.near(mg.rows[3].se, wse, 1e-12, "margins SE at unemp = 8 by hand")
local q = sp.dist.qt(0.975, fm.df_resid)
T.near(mg.rows[3].upper, want + q * wse, 1e-12, "margins CI uses t(df_resid)")
-- Over a range: n points from the sample min to max.
local mo = mech.margins(fm, "log_pcap", { over = "unemp", n = 7 })
T.check(#mo.rows == 7 and mo.rows[1].at.unemp == 2.8 and math.abs(mo.rows[7].at.unemp - 18) < 1e-12,
  "margins over unemp: 7 points over [2.8, 18]")
T.check(mo:frame():nrow() == 7, "margins frame")
-- With no 'at', the moderator is held at its sample mean.
local mm = fm:margins("log_pcap")
local mean_u = 0
for i = 1, pr_:nrow() do mean_u = mean_u + pr_.unemp[i] end
mean_u = mean_u / pr_:nrow()
T.near(mm.rows[1].effect, b.log_pcap + mean_u * b["log_pcap:unemp"], 1e-10, "margins at the mean of the moderator")
-- Centred moderation: the same marginal effects in original units.
local mf = mech.moderation(pr_, { y = "log_gsp", x = "log_pcap", m = "unemp", controls = "log_emp", fe = "state + year",
  centre = true })
local mgc = mf:margins("log_pcap", { at = { unemp = { 4, 6, 8 } } })
T.near(mgc.rows[2].effect, mg.rows[2].effect, 1e-8, "centred moderation: same effect at unemp = 6")
T.near(mgc.rows[2].se, mg.rows[2].se, 1e-8, "centred moderation: same SE at unemp = 6")
T.near(mf:coef().c_log_pcap, mm.rows[1].effect, 1e-8, "centred main effect = effect at the mean")
local _, means = mech.center(pr_:copy(), { "unemp" })
T.near(means.unemp, mean_u, 1e-12, "center returns the means")
-- The plot.
local png = os.tmpname() .. ".png"
mech.margins_plot(png, mo, { xlabel = "Unemployment (%)" })
local fh = io.open(png, "rb")
T.check(fh and fh:read(4) == "\137PNG", "margins_plot writes a PNG")
if fh then fh:close() end
os.remove(png)

-- ---- heterogeneity ---------------------------------------------------------------------------

local byr = mech.by(pr_, "region", function(sub) return sp.ols(sub, "log_gsp ~ log_pcap + log_emp | state + year") end)
T.check(#byr == 9 and byr.levels[1] == "1" and byr.fits["9"] == byr[9], "by: nine regions in order")
local r1 = sp.ols(pr_:filter("region == 1"), "log_gsp ~ log_pcap + log_emp | state + year")
T.near(byr[1]:coef().log_pcap, r1:coef().log_pcap, 1e-12, "by: group fit equals the fit on the filtered frame")

local half = {}
for i = 1, pr_:nrow() do half[i] = pr_.region[i] <= 4 and "NE" or "SW" end
pr_.half = half
local f3 = "log_gsp ~ log_pcap + log_emp + unemp | state + year"
local ch = mech.chow(pr_, f3, { group = "half", coef = "log_pcap" })
-- R: anova(lm(log_gsp ~ log_pcap + half:(log_emp + unemp) + factor(state) + factor(year):half),
--          lm(log_gsp ~ half:(log_pcap + log_emp + unemp) + factor(state) + factor(year):half))
T.near(ch.statistic, 0.0310021047104721, 1e-8, "chow: F equals R's nested-model F (iid)")
T.near(ch.pvalue, 0.860284524451066, 1e-7, "chow: p-value (R)")
T.check(ch.df1 == 1 and ch.df2 == 730, "chow: df (1, 730)")
local sNE = sp.ols(pr_:filter("region <= 4"), f3)
T.near(ch.estimates.log_pcap.NE.estimate, sNE:coef().log_pcap, 1e-10, "chow: group coefficient = separate regression")
local chall = mech.chow(pr_, f3, { group = "half", vcov = { cluster = "state" } })
T.check(chall.df1 == 3 and chall.df2 == 47, "chow: all slopes, clustered: F(3, G - 1)")

-- formulas are built and rewritten as objects: column names that need backquotes work
do
  local q = pr_:copy()
  q["US state"], q["my half"], q["ln cap"] = pr_.state, pr_.half, pr_.log_pcap
  local chq = mech.chow(q, "log_gsp ~ `ln cap` + log_emp + unemp | `US state` + year", { group = "my half", coef = "ln cap" })
  T.near(chq.statistic, ch.statistic, 1e-10, "chow: a group and fixed effects named with spaces")
  local rq = mech.mediation(sim:copy(), { x = "x", m = "m", y = "y", controls = "z" })
  local sq = sim:copy()
  sq["my x"], sq["my m"] = sim.x, sim.m
  local rs = mech.mediation(sq, { x = "my x", m = "my m", y = "y", controls = "z" })
  T.near(rs.effects[1].indirect, rq.effects[1].indirect, 1e-12, "mediation: x and m named with spaces")
  local mq = mech.moderation(sq, { y = "y", x = "my x", m = "my m", controls = "z" })
  T.check(mq.index["my x:my m"] ~= nil, "moderation: the interaction of names with spaces", table.concat(mq.names, ","))
  T.checkerr("chow: instrumental%-variable formulas are not supported", mech.chow, pr_, "log_gsp ~ unemp | log_emp ~ log_pc",
    { group = "half" })
  T.checkerr("chow: 'log_gsp log_pcap' is not a formula", mech.chow, pr_, "log_gsp log_pcap", { group = "half" })
end

local su = mech.sur(pr_, f3, { group = "half", coef = "log_pcap", vcov = { cluster = "state" } })
-- R: per group lm(... + factor(state) + factor(year)); vcovCL(type = "HC0", cadjust = FALSE) * 48/47
T.near(su.estimates.log_pcap.NE.se, 0.0722594556441597, 1e-8, "sur: group SE (R sandwich, G/(G-1) over 48 states)")
T.near(su.estimates.log_pcap.SW.se, 0.0939229128767244, 1e-8, "sur: second group SE (R)")
T.near(su.statistic, 0.00722667359866673, 1e-7, "sur: chi2 of the difference (R)")
T.near(su.covariance, 0, 1e-12, "sur: disjoint clusters give zero covariance")
-- Groups that share clusters: the covariance enters the variance of the difference.
local early = {}
for i = 1, pr_:nrow() do early[i] = pr_.year[i] <= 1978 and "early" or "late" end
pr_.period = early
local su2 = mech.sur(pr_, "log_gsp ~ log_pcap + log_emp + unemp", { group = "period", coef = "log_pcap", cluster = "state" })
local v1 = su2.estimates.log_pcap.early.se ^ 2
local v2 = su2.estimates.log_pcap.late.se ^ 2
T.check(su2.covariance > 0, "sur: shared clusters give a positive covariance")
T.near(su2.statistic, su2.difference[1] ^ 2 / (v1 + v2 - 2 * su2.covariance), 1e-10,
  "sur: chi2 = d^2 / (V1 + V2 - 2 C)")

local pm = mech.permutation(pr_, f3, { group = "half", coef = "log_pcap", reps = 60, seed = 9 })
T.near(pm.difference, sNE:coef().log_pcap - sp.ols(pr_:filter("region > 4"), f3):coef().log_pcap, 1e-10,
  "permutation: observed difference of separate regressions")
T.check(pm.method:find("across state") ~= nil, "permutation: labels permuted across states (group constant within state)")
T.check(pm.pvalue >= 0 and pm.pvalue <= 1 and pm.done == 60, "permutation: 60 permutations, p in [0, 1]")
local pm2 = mech.permutation(pr_, f3, { group = "half", coef = "log_pcap", reps = 60, seed = 9 })
T.check(pm2.pvalue == pm.pvalue and pm2.draws[1][7] == pm.draws[1][7], "permutation: reproducible with a seed")
-- A real difference is detected: y depends on x with slope 1 in group A and 3 in B.
do
  local rng = sp.rng(2)
  local g, xx, yy, id = {}, {}, {}, {}
  for i = 1, 200 do
    g[i] = i <= 100 and "A" or "B"
    xx[i] = rng:normal()
    yy[i] = (i <= 100 and 1 or 3) * xx[i] + rng:normal()
    id[i] = i
  end
  local sd = sp.frame({ g = g, x = xx, y = yy, id = id })
  local p = mech.permutation(sd, "y ~ x", { group = "g", coef = "x", reps = 200, seed = 1 })
  T.check(p.pvalue < 0.01 and p.method:find("across rows"), "permutation: a true difference gets p < 0.01",
    "p = " .. p.pvalue)
  local gd = mech.group_diff(sd, "y ~ x", { group = "g", coef = "x", reps = 50 })
  T.check(gd.chow.pvalue < 1e-6 and gd.sur.pvalue < 1e-6, "group_diff: chow and sur reject equal slopes")
  T.check(tostring(gd):find("Fisher permutation", 1, true) ~= nil, "group_diff prints every test")
end

-- ---- bad input ---------------------------------------------------------------------------------

local base = { x = "dige", m = "rd_intensity_pct", y = "ln_patent_grants_invention", fe = "province + year" }
local function with(k, v)
  local o = {}
  for a, w in pairs(base) do o[a] = w end
  o[k] = v
  return o
end
T.checkerr("mediation: mediator 'ln_patent_grants_invention' is the outcome y", mech.mediation, d,
  with("m", { "ln_patent_grants_invention" }))
T.checkerr("mediation: mediator 'dige' is the treatment x", mech.mediation, d, with("m", "dige"))
T.checkerr("mediation: m%[1%]: unknown column 'rd_intensity' %(did you mean 'rd_intensity_pct'%?%)",
  mech.mediation, d, with("m", "rd_intensity"))
T.checkerr("mediation: x: unknown column 'dig'", mech.mediation, d, with("x", "dig"))
T.checkerr("mediation: y: unknown column", mech.mediation, d, with("y", "lnpat"))
T.checkerr("mediation: bootstrap must be a whole number of replications >= 1, got 0", mech.mediation, d, with("bootstrap", 0))
T.checkerr("mediation: bootstrap must be a whole number of replications >= 1, got 2.5", mech.mediation, d,
  with("bootstrap", 2.5))
T.checkerr("mediation: 'm' must name at least one mediator", mech.mediation, d, with("m", {}))
T.checkerr("mediation: x 'province' is categorical", mech.mediation, d, with("x", "province"))
T.checkerr("mediation: unknown option 'mediator'", mech.mediation, d, with("mediator", "x"))
T.checkerr("mediation: level must be a number in %(0, 1%)", mech.mediation, d, with("level", 95))
T.checkerr("mediation: mediator 'urbanization' is listed twice", mech.mediation, d,
  with("m", { "urbanization", "urbanization" }))
T.checkerr("mediation: controls must be regressors", mech.mediation, d, with("controls", "y ~ x"))
T.checkerr("mediation: bootstrap cluster: unknown column 'provnce'", mech.mediation, d,
  with("cluster", "provnce"))
T.checkerr("unknown variable 'lngpd'", mech.mediation, d, with("controls", "lngpd"))

T.checkerr("margins: 'lnx' is not a coefficient of the fit", mech.margins, fm, "lnx")
T.checkerr("margins: 'emp' in 'at' is not a moderator of 'log_pcap' %(moderators: unemp%)", mech.margins, fm,
  "log_pcap", { at = { emp = { 1 } } })
T.checkerr("margins: n must be a whole number >= 2", mech.margins, fm, "log_pcap", { over = "unemp", n = 1 })
T.checkerr("margins_plot: argument 2 must be the result of margins", mech.margins_plot, "/tmp/x.png", mg)
T.checkerr("center: column: unknown column 'unmp'", mech.center, pr_, "unmp")
T.checkerr("moderation: the moderator m is the same column as x", mech.moderation, pr_,
  { y = "log_gsp", x = "unemp", m = "unemp" })

-- A group too small for its regression.
local tiny = pr_:filter("region == 1 or (region == 2 and year <= 1970)")
T.checkerr("by: group region = '2' %(3 rows%): ols: 3 observations are too few", mech.by, tiny, "region",
  function(sub) return sp.ols(sub, "log_gsp ~ log_pcap + log_emp | state + year") end)
T.checkerr("chow: group region = '2' has 3 usable rows, too few for its 4 coefficients", mech.chow, tiny,
  "log_gsp ~ log_pcap + log_emp + unemp", { group = "region" })
T.checkerr("sur: group region = '2' has 3 usable rows, too few for 3 coefficients and 3 absorbed",
  mech.sur, tiny, "log_gsp ~ log_pcap + log_emp + unemp | state + year", { group = "region" })
T.checkerr("permutation: group region = '2' %(3 rows%): 3 usable rows are too few", mech.permutation, tiny,
  "log_gsp ~ log_pcap + log_emp + unemp | state + year", { group = "region", reps = 5 })
T.checkerr("permutation: 'region' has 9 levels %(1, 2, 3", mech.permutation, pr_, f3, { group = "region" })
T.checkerr("permutation: reps must be a whole number of permutations >= 1, got 0", mech.permutation, pr_, f3,
  { group = "half", reps = 0 })
T.checkerr("chow: coef 'log_pc' is not a regressor", mech.chow, pr_, f3, { group = "half", coef = "log_pc" })
T.checkerr("chow: groups%[2%] = 'XX' is not a level of 'half' %(levels: NE, SW%)", mech.chow, pr_, f3,
  { group = "half", groups = { "NE", "XX" } })
T.checkerr("sur: the group column 'region' has 1 level%(s%); a comparison needs at least 2", mech.sur,
  pr_:filter("region == 1"), f3, { group = "region" })
T.checkerr("group_diff: unknown test 'wald'", mech.group_diff, pr_, f3, { group = "half", tests = { "wald" } })

-- ---- scenarios -------------------------------------------------------------------------------

local reg = {}
mech.register({ register_estimator = function(e) reg[e.name] = e end })
T.check(reg.mediation ~= nil, "register: 'mediation' registered")
local sf = reg.mediation.fit(d, { formula = "ln_patent_grants_invention ~ dige + ln_gdp_per_capita | province + year",
  vcov = { cluster = "province" }, options = { m = { "rd_intensity_pct" } } }, { m = { "rd_intensity_pct" } })
T.check(sp.is_fit(sf) and sf.mediation and sf.index.rd_intensity_pct ~= nil, "scenario fit: the outcome equation with the mediation")
T.near(sf.stats.indirect_rd_intensity_pct, sf.mediation.effects[1].indirect, 0, "scenario fit: indirect effect in stats")
-- Predictions carry the total effect c of x: a shock dx moves y by c dx.
local d1 = d:copy()
d1.dige = d1.dige + 0.1
local dp = sf:predict(d1) - sf:predict(d)
T.near(dp:get(1, 1), 0.1 * sf.mediation.c.estimate, 1e-9, "scenario fit: a shock to x moves y by c dx")
local coef = sf:coef()
coef.rd_intensity_pct = 2 * coef.rd_intensity_pct
local dq = sf:predict(d1, { coef = coef }) - sf:predict(d, { coef = coef })
T.near(dq:get(1, 1), 0.1 * (sf.mediation.c.estimate + sf.mediation.effects[1].indirect), 1e-9,
  "scenario fit: a draw of b changes the indirect part")

-- Through the real registry and the counterfactual engine (draws and a cluster-bootstrap refit).
mech.register(sp.scenario)
local est_ok = false
for _, nm in ipairs(sp.scenario.estimator_names()) do if nm == "mediation" then est_ok = true end end
T.check(est_ok, "register: sp.scenario lists 'mediation'")
local cf = sp.counterfactual { data = d, fit = sf, entity = "province", time = "year",
  shocks = { { variable = "dige", where = "region_nbs == 'West'", from = 2020, change = "+0.5" } },
  groups = { "region_nbs" }, draws = 50, seed = 3 }
local west = cf.groups["region_nbs=West"].total
local nwest = 0
for i = 1, d:nrow() do if d.region_nbs[i] == "West" and d.year[i] >= 2020 then nwest = nwest + 1 end end
T.near(west.sum, 0.5 * sf.mediation.c.estimate * nwest, 1e-9, "counterfactual: West effect = c * 0.5 per shocked row")
T.check(west.sum_lo < west.sum and west.sum < west.sum_hi, "counterfactual: draws give an interval around it")
local cfb = sp.counterfactual { data = d, fit = sf, entity = "province", time = "year",
  shocks = { { variable = "dige", change = "+0.1" } }, bootstrap = 5, seed = 3 }
T.check(cfb.method == "cluster bootstrap" and cfb.groups.all.total.sum_lo ~= nil, "counterfactual: bootstrap refits run")

-- ---- layout: one module per concern behind the facade -------------------------------------
do
  local med, mar, het = require "spillover.mediation", require "spillover.margins", require "spillover.heterogeneity"
  T.check(mech.mediation == med.mediation and mech.as_fit == med.as_fit and mech.boot_ci == med.boot_ci
    and mech.moderation == mar.moderation and mech.margins == mar.margins and mech.centre == mar.center
    and mech.chow == het.chow and mech.group_diff == het.group_diff and mech.by == het.by,
    "spillover.mechanism gathers mediation, margins and heterogeneity under the old names")
  -- fit:margins is a method fit.lua defines, not one another module attaches to the class
  local src = debug.getinfo(require("spillover.fit").class.margins, "S").source
  T.check(src:find("fit%.lua$") ~= nil, "fit:margins is defined in fit.lua", src)
end

T.done()
