package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local spatial = require "spillover.spatial"
local weights = spatial.weights

-- Global Moran on the bundled provincial panel, checked against spdep 1.2-7:
--   ids <- sort(unique(edges$adcode_i)); lw <- nb2listw(<contiguity>, style = "W")
--   p22 <- p[p$year == 2022, ]; x <- p22$digital_finance[match(ids, p22$adcode)]
--   moran.test(x, lw)  # I 0.59426415337797034, var 0.014054600250330731, p 5.9882582445364074e-08
local cn = weights.contiguity("scenarios/data/cn_province_adjacency_31_edges.csv", { from = "adcode_i", to = "adcode_j" })
local prov = sp.read_csv("scenarios/data/cn_province_panel.csv")
prov:panel { entity = "adcode", time = "year" }
local p22 = prov:filter("year == 2022")
local idx = cn:index_of(p22.adcode)
local x = {}
for k, i in ipairs(idx) do x[i] = p22.digital_finance:get(k, 1) end
local m = spatial.moran(x, cn)
T.near(m.I, 0.59426415337797034, 1e-12, "provinces 2022: I (spdep)")
T.near(m.variance, 0.014054600250330731, 1e-10, "provinces 2022: variance under randomisation (spdep)")
T.near(m.pvalue, 5.9882582445364074e-08, 1e-7, "provinces 2022: p-value (spdep)")
T.near(m.expectation, -1 / 30, 1e-15, "E(I) = -1/(n-1)")
T.check(m.method == "Moran I test under randomisation", "method label")
T.check(tostring(m):find("I = 0.594264", 1, true) ~= nil, "prints")
local mn = spatial.moran(x, cn, { randomisation = false })
T.check(mn.variance ~= m.variance and mn.method:find("normality"), "normality variance differs")

-- Permutation test: seeded, reproducible, and a sensible p-value
local a = spatial.moran(x, cn, { permutations = 499, seed = 7 })
local b = spatial.moran(x, cn, { permutations = 499, seed = 7 })
local c = spatial.moran(x, cn, { permutations = 499, seed = 8 })
T.check(a.permutation_pvalue == b.permutation_pvalue, "same seed, same permutation p-value")
T.check(a.permutation_I:get(17, 1) == b.permutation_I:get(17, 1), "same seed, same draws")
T.check(a.permutation_I:get(17, 1) ~= c.permutation_I:get(17, 1), "another seed, other draws")
T.check(a.permutation_pvalue == 1 / 500, "strong clustering: no permutation reaches the observed I")
local mean = 0
for i = 1, 499 do mean = mean + a.permutation_I:get(i, 1) end
mean = mean / 499
T.check(math.abs(mean - (-1 / 30)) < 0.02, "permutation mean near E(I)")
-- no spatial pattern: a random x gives a large permutation p-value most of the time
local rng = sp.rng(11)
local noise = {}
for i = 1, 31 do noise[i] = rng:normal() end
local mr = spatial.moran(noise, cn, { permutations = 999, seed = 1 })
T.check(math.abs(mr.permutation_pvalue - mr.pvalue) < 0.1, "permutation p close to the analytical p for noise")

-- Year by year (the table papers report): the 2022 row equals the single-year test
local by = spatial.moran_by(prov, "digital_finance", cn, "year")
T.check(by:nrow() == 12 and by.year:get(1, 1) == 2011 and by.year:get(12, 1) == 2022, "one row per year, sorted")
T.near(by.I:get(12, 1), 0.59426415337797034, 1e-12, "moran_by 2022 row = spdep")
T.check(by.n:get(1, 1) == 31, "moran_by: units per year")
local byp = spatial.moran_by(prov, "digital_finance", cn, "year", { permutations = 99, seed = 3 })
T.check(byp.permutation_pvalue ~= nil and byp.permutation_pvalue:get(1, 1) > 0, "moran_by with permutations")
-- Produc unemp 1986 (the reference case), via moran_by on the US-48 weights
local produc = sp.read_csv("tests/reference/data/Produc.csv")
local us = weights.contiguity("scenarios/data/us48_queen_edges.csv",
  { ids = produc:filter("year == 1986").state })
local pby = spatial.moran_by(produc, "unemp", us, "year", { entity = "state", randomisation = false })
local r86
for i = 1, pby:nrow() do if pby.year:get(i, 1) == 1986 then r86 = i end end
T.near(pby.I:get(r86, 1), 0.4752306237678182, 1e-12, "moran_by Produc 1986: I (reference case)")
T.near(pby.variance:get(r86, 1), 0.009461873997588873, 1e-10, "moran_by Produc 1986: variance (reference case)")
-- an unbalanced year: error naming the missing units, or subset = true
local short = prov:filter("not (year == 2015 and adcode == 110000)")
T.checkerr("moran_by: year 2015 has no row for 1 unit of the weights: '110000' %(pass subset = true",
  function() spatial.moran_by(short, "digital_finance", cn, "year", { entity = "adcode" }) end)
local bys = spatial.moran_by(short, "digital_finance", cn, "year", { entity = "adcode", subset = true })
T.check(bys.n:get(5, 1) == 30 and bys.I:get(5, 1) == bys.I:get(5, 1), "subset = true: 30 units in 2015")

-- Local Moran: reference values are in tests/reference (localmoran_columbus); here the
-- structure, clusters and permutations.
local d = sp.read_csv("tests/reference/data/columbus.csv")
local W = weights.contiguity("tests/reference/data/columbus_edges.csv", { ids = d.POLYID })
local lm = spatial.local_moran(d.CRIME, W)
T.check(lm:nrow() == 49 and lm.id[1] == "1", "local_moran: a frame with one row per unit")
local sumI = 0
for i = 1, 49 do sumI = sumI + lm.Ii:get(i, 1) end
T.near(sumI / 49, spatial.moran(d.CRIME, W).I, 1e-12, "sum of Ii / n = global I (style W)")
local counts = {}
for i = 1, 49 do counts[lm.cluster[i]] = (counts[lm.cluster[i]] or 0) + 1 end
T.check((counts.HH or 0) > 0 and (counts.LL or 0) > 0, "significant HH and LL clusters in columbus crime")
-- labels follow the quadrant of (x - mean, lag of x - mean)
local xm = 0
for i = 1, 49 do xm = xm + d.CRIME:get(i, 1) end
xm = xm / 49
local consistent = true
for i = 1, 49 do
  local lab = lm.cluster[i]
  if lab ~= "ns" then
    local want = (d.CRIME:get(i, 1) > xm and "H" or "L") .. (lm.Wx:get(i, 1) > xm and "H" or "L")
    consistent = consistent and lab == want and lm.p:get(i, 1) < 0.05
  else
    consistent = consistent and lm.p:get(i, 1) >= 0.05
  end
end
T.check(consistent, "cluster labels: quadrant when p < alpha, else ns")
local lp1 = spatial.local_moran(d.CRIME, W, { permutations = 199, seed = 5 })
local lp2 = spatial.local_moran(d.CRIME, W, { permutations = 199, seed = 5 })
T.check(lp1.p_perm:get(4, 1) == lp2.p_perm:get(4, 1), "local permutations reproducible with a seed")
local pmin = 1
for i = 1, 49 do pmin = math.min(pmin, lp1.p_perm:get(i, 1)) end
T.check(pmin >= 1 / 200 and pmin < 0.05, "folded pseudo p-values in [1/(R+1), 1]")
local agree = 0
for i = 1, 49 do
  if (lp1.p_perm:get(i, 1) < 0.05) == (lm.p:get(i, 1) < 0.05) then agree = agree + 1 end
end
T.check(agree >= 40, "permutation and analytical significance mostly agree")
local la = spatial.local_moran(d.CRIME, W, { alpha = 0.5 })
local nsig = 0
for i = 1, 49 do if la.cluster[i] ~= "ns" then nsig = nsig + 1 end end
T.check(nsig > (counts.HH or 0) + (counts.LL or 0), "alpha widens the clusters")

-- Residual diagnostics (reference case lmtests_columbus covers the numbers)
local fit = sp.ols(d, "CRIME ~ INC + HOVAL")
local mrz = spatial.moran_residuals(fit, W)
T.near(mrz.I, 0.21237415252309966, 1e-10, "lm.morantest I")
local lt = spatial.lm_tests(fit, W)
T.near(lt.SARMA.statistic, lt.RLMlag.statistic + lt.LMerr.statistic, 1e-12, "SARMA = RLMlag + LMerr")
T.check(tostring(lt):find("LMlag", 1, true) ~= nil, "lm_tests prints")

-- Errors
T.checkerr("moran: x has 3 values for weights over 49 units", function() spatial.moran({ 1, 2, 3 }, W) end)
T.checkerr("element 2 of x is a string; expected a number", function() spatial.moran({ 1, "a" }, W) end)
T.checkerr("moran: x is a 49 x 2 matrix", function() spatial.moran(sp.matrix.hcat(d.CRIME, d.INC), W) end)
T.checkerr("argument 2 must be a spillover.weights", function() spatial.moran(d.CRIME, {}) end)
T.checkerr("test_moran%.lua:%d+: local_moran: x is a number; expected a spillover.matrix",
  function() spatial.local_moran(5, W) end)
T.checkerr("x is constant", function()
  local t = {}
  for i = 1, 49 do t[i] = 1 end
  spatial.moran(t, W)
end)
T.checkerr("the value of 7 is missing", function()
  local t = {}
  for i = 1, 49 do t[i] = d.CRIME:get(i, 1) end
  t[7] = 0 / 0
  spatial.moran(t, W)
end)
T.checkerr("unknown option 'permutation'", function() spatial.moran(d.CRIME, W, { permutation = 9 }) end)
T.checkerr("permutations must be a positive integer", function() spatial.moran(d.CRIME, W, { permutations = 0 }) end)
T.checkerr("column 'province' must be numeric", function() spatial.moran_by(prov, "province", cn, "year") end)
T.checkerr("the fit uses 49 observations but the weights have 31 units", function() spatial.lm_tests(fit, cn) end)
T.checkerr("absorbed fixed effects", function()
  local pf = sp.ols(prov, "patent_grants ~ digital_finance | adcode")
  spatial.moran_residuals(pf, cn)
end)
T.checkerr("expected a fit from sp.ols", function() spatial.lm_tests({}, W) end)

-- The Moran scatterplot: its slope is Moran's I for row-standardised W.
do
  local dc = sp.read_csv("tests/reference/data/columbus.csv")
  local Wc = weights.contiguity("tests/reference/data/columbus_edges.csv", { ids = dc.POLYID })
  local dir = assert(sp.sys.mkdtemp("/tmp/sp-moranplot-"))
  local path, slope = sp.moran_plot(dir .. "/moran.png", dc.CRIME, Wc, { title = "Crime" })
  T.near(slope, sp.moran(dc.CRIME, Wc).I, 1e-12, "moran_plot: the slope is Moran's I")
  local png = T.read(path)
  T.check(png and png:sub(2, 4) == "PNG" and #png > 2000, "moran_plot writes a PNG")
  local svg = T.read(sp.moran_plot(dir .. "/moran.svg", dc.CRIME, Wc))
  T.check(svg and svg:find("<svg", 1, true) ~= nil, "and an SVG")
  T.checkerr("x is constant", sp.moran_plot, dir .. "/c.png", sp.matrix(Wc:n(), 1, 3), Wc)
  T.checkerr("fit must be", sp.plot.scatter, dir .. "/s.png", { series = { { x = { 1, 2 }, y = { 1, 2 } } }, fit = { 1 } })
  T.check(sp.coefplot == sp.plot.coef, "sp.coefplot is plot.coef")
  sp.sys.remove_tree(dir)
end

T.done()
