-- spillover.disparity: Gini, Dagum, Theil, Atkinson, CV, spatial Gini, by_period,
-- and util.kde's kernels and bandwidths.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local dis = require "spillover.disparity"
local util = require "spillover.util"

-- PySAL inequality on the 32 Mexican states (libpysal mexico.csv), regimes
-- hanson98: Theil by decade (TheilD's bg and wg) and the 1940 Gini
-- (inequality's test_theil.py, test_gini.py).
local mx = sp.read_csv("tests/reference/data/external/pysal_mexico.csv")
local regimes = mx.hanson98:totable()
local want_T = { 0.20894344, 0.15222451, 0.10472941, 0.10194725, 0.09560113, 0.10511256, 0.10660832 }
local want_bg = { 0.0345889, 0.02816853, 0.05260921, 0.05931219, 0.03205257, 0.02963731, 0.03635872 }
local want_wg = { 0.17435454, 0.12405598, 0.0521202, 0.04263506, 0.06354856, 0.07547525, 0.0702496 }
for i, dec in ipairs { 1940, 1950, 1960, 1970, 1980, 1990, 2000 } do
  local th = dis.theil(mx:column("pcgdp" .. dec), { groups = regimes })
  T.near(th.T, want_T[i], 5e-8, "theil T " .. dec .. " (PySAL)")
  T.near(th.between.T, want_bg[i], 5e-7, "theil between " .. dec .. " (PySAL TheilD.bg)")
  T.near(th.within.T, want_wg[i], 5e-7, "theil within " .. dec .. " (PySAL TheilD.wg)")
  T.near(th.between.T + th.within.T, th.T, 1e-13, "theil T = between + within " .. dec)
  T.near(th.between.L + th.within.L, th.L, 1e-13, "theil L = between + within " .. dec)
end
local y40 = mx.pcgdp1940
T.near(dis.gini(y40), 0.35372371173452849, 1e-13, "gini 1940 (PySAL Gini.g)")

-- Spatial Gini with block weights (same hanson98 regime = neighbours):
-- PySAL's wg = 884130 and wcg = 4353856 (test_gini.py).
do
  local from, to = {}, {}
  local names = mx.State
  for i = 1, 32 do
    for j = 1, 32 do
      if i ~= j and regimes[i] == regimes[j] then from[#from + 1], to[#to + 1] = names[i], names[j] end
    end
  end
  local edges = sp.frame { from = from, to = to }
  local W = sp.weights.contiguity(edges, { ids = names, style = "B" })
  local sg = dis.spatial_gini(y40, W, { permutations = 99, seed = 1 })
  T.near(sg.gini, 0.35372371173452849, 1e-13, "spatial gini: G")
  T.near(sg.wg, 884130, 1e-13, "spatial gini: neighbour sum wg (PySAL)")
  T.near(sg.wcg, 4353856, 1e-13, "spatial gini: non-neighbour sum wcg (PySAL)")
  T.check(sg.p_sim > 0 and sg.p_sim <= 0.5, "spatial gini: folded permutation p-value in (0, 0.5]")
  local again = dis.spatial_gini(y40, W, { permutations = 99, seed = 1 })
  T.check(again.p_sim == sg.p_sim and again.e_wcg == sg.e_wcg, "spatial gini: seeded permutations repeat")
end

-- The naive pairwise forms are the oracle of the sorted O(n log n) sums.
local function naive_gini(v)
  local s, n, tot = 0, #v, 0
  for i = 1, n do tot = tot + v[i]; for j = 1, n do s = s + math.abs(v[i] - v[j]) end end
  return s / (2 * n * tot)
end
local r = sp.rng(5)
local v, g = {}, {}
for i = 1, 120 do v[i] = math.exp(r:normal()) * (1 + (i % 4)); g[i] = ({ "East", "West", "Central", "Northeast" })[i % 4 + 1] end
v[7], v[8] = v[9], v[9]   -- ties
T.near(dis.gini(v), naive_gini(v), 1e-12, "gini: sorted sums = pairwise oracle")

-- Dagum (1997) against its pairwise definition.
local function naive_dagum(x, lab)
  local groups, order = {}, {}
  for i, k in ipairs(lab) do
    if not groups[k] then groups[k] = {}; order[#order + 1] = k end
    table.insert(groups[k], x[i])
  end
  local n, tot = #x, 0
  for _, y in ipairs(x) do tot = tot + y end
  local function mean(a) local s = 0; for _, y in ipairs(a) do s = s + y end; return s / #a end
  table.sort(order, function(a, b) return mean(groups[a]) < mean(groups[b]) end)
  local Gw, Gnb, Gt = 0, 0, 0
  for _, k in ipairs(order) do
    local a, s = groups[k], 0
    for i = 1, #a do for j = 1, #a do s = s + math.abs(a[i] - a[j]) end end
    local pj, sj = #a / n, #a * mean(a) / tot
    Gw = Gw + s / (2 * #a * #a * mean(a)) * pj * sj
  end
  for j = 2, #order do
    for h = 1, j - 1 do
      local a, b = groups[order[j]], groups[order[h]]
      local d, p = 0, 0
      for _, y in ipairs(a) do for _, z in ipairs(b) do
        if y > z then d = d + (y - z) else p = p + (z - y) end
      end end
      local gjh = (d + p) / (#a * #b * (mean(a) + mean(b)))
      local D = (d - p) / (d + p)
      local wgt = #a / n * (#b * mean(b) / tot) + #b / n * (#a * mean(a) / tot)
      Gnb, Gt = Gnb + gjh * wgt * D, Gt + gjh * wgt * (1 - D)
    end
  end
  return Gw, Gnb, Gt
end
local dg = dis.dagum(v, g)
local nw, nnb, nt = naive_dagum(v, g)
T.near(dg.Gw, nw, 1e-12, "dagum Gw = pairwise oracle")
T.near(dg.Gnb, nnb, 1e-12, "dagum Gnb = pairwise oracle")
T.near(dg.Gt, nt, 1e-12, "dagum Gt = pairwise oracle")
T.near(dg.Gw + dg.Gnb + dg.Gt, dg.G, 1e-12, "dagum: G = Gw + Gnb + Gt")
T.near(dg.G, dis.gini(v), 1e-12, "dagum: G is the Gini")
T.check(#dg.within == 4 and #dg.between == 6, "dagum: 4 within-group Ginis, 6 pairs")

-- A small example by hand.  x = {1, 3 | 2, 6}, groups A = {1, 3}, B = {2, 6}.
-- n = 4, mu = 3, all ordered |differences|: pairs {1,3} 2, {1,2} 1, {1,6} 5,
-- {3,2} 1, {3,6} 3, {2,6} 4: sum 16, twice = 32, G = 32 / (2 * 16 * 3) = 1/3.
-- G_AA = 2*2 / (2 * 4 * 2) = 1/4; G_BB = 2*4 / (2 * 4 * 4) = 1/4.
-- p_A = p_B = 1/2, s_A = 4/12 = 1/3, s_B = 8/12 = 2/3.
-- Gw = 1/4 * 1/2 * 1/3 + 1/4 * 1/2 * 2/3 = 1/8.
-- Between (B richer): |B - A| over the 4 pairs: 2-1, 2-3, 6-1, 6-3 = 1, 1, 5, 3:
-- sum 10, G_BA = 10 / (2 * 2 * (2 + 4)) = 5/12.  d = 1 + 5 + 3 = 9, p = 1,
-- D = 8/10.  weight p_B s_A + p_A s_B = 1/6 + 1/3 = 1/2.
-- Gnb = 5/12 * 1/2 * 4/5 = 1/6; Gt = 5/12 * 1/2 * 1/5 = 1/24.
-- Check: 1/8 + 1/6 + 1/24 = 3/24 + 4/24 + 1/24 = 1/3 = G.
local hand = dis.dagum({ 1, 3, 2, 6 }, { "A", "A", "B", "B" })
T.near(hand.G, 1 / 3, 1e-15, "dagum by hand: G = 1/3")
T.near(hand.Gw, 1 / 8, 1e-15, "dagum by hand: Gw = 1/8")
T.near(hand.Gnb, 1 / 6, 1e-15, "dagum by hand: Gnb = 1/6")
T.near(hand.Gt, 1 / 24, 1e-15, "dagum by hand: Gt = 1/24")
T.near(hand.between[1].gini, 5 / 12, 1e-15, "dagum by hand: G_BA = 5/12")
T.near(hand.between[1].D, 0.8, 1e-15, "dagum by hand: D_BA = 0.8")
T.check(hand.within[1].group == "A" and hand.within[2].group == "B", "dagum: groups in ascending mean order")
-- Two groups of one unit each: the decomposition is the pairwise Gini.
local two = dis.dagum({ 2, 5 }, { "a", "b" })
T.near(two.between[1].gini, 3 / 7, 1e-15, "dagum, one unit per group: G_ab = |a - b| / (a + b)")
T.near(two.Gnb, two.G, 1e-15, "dagum, one unit per group: all net between")
T.near(two.Gw + two.Gt, 0, 1e-15, "dagum, one unit per group: no within, no transvariation")
T.check(dis.dagum_table(hand):find("| Gnb (net between) | 0.1667 |", 1, true), "dagum_table: Markdown rows")

-- Theil and friends by hand.  x = {1, 2, 3, 6}: mu = 3,
-- T = 1/4 sum (x/3) ln(x/3), L = 1/4 sum ln(3/x).
local x4 = { 1, 2, 3, 6 }
local Th, Lh = 0, 0
for _, y in ipairs(x4) do Th, Lh = Th + y / 3 * math.log(y / 3) / 4, Lh + math.log(3 / y) / 4 end
local th = dis.theil(x4)
T.near(th.T, Th, 1e-14, "theil T by hand")
T.near(th.L, Lh, 1e-14, "theil L by hand")
-- Population weights: weight 2 on a value is the value twice.
local tw = dis.theil({ 1, 2, 6 }, { weights = { 1, 2, 1 } })
local tr = dis.theil({ 1, 2, 2, 6 })
T.near(tw.T, tr.T, 1e-14, "theil: integer weights = repeated values (T)")
T.near(tw.L, tr.L, 1e-14, "theil: integer weights = repeated values (L)")
T.near(dis.gini({ 1, 2, 6 }, { weights = { 1, 2, 1 } }), dis.gini({ 1, 2, 2, 6 }), 1e-14, "gini: weights = repeated values")
-- Atkinson: e = 0 is 0; e = 1 is 1 - geometric mean / mean; e = 2 is 1 - harmonic / arithmetic.
T.near(dis.atkinson(x4, 0), 0, 1e-15, "atkinson e = 0")
T.near(dis.atkinson(x4, 1), 1 - 36 ^ 0.25 / 3, 1e-14, "atkinson e = 1: 1 - geomean / mean")
T.near(dis.atkinson(x4, 2), 1 - (4 / (1 + 1 / 2 + 1 / 3 + 1 / 6)) / 3, 1e-14, "atkinson e = 2: 1 - harmonic / mean")
-- CV: sd (n - 1) / mean: sd of {1, 2, 3, 6} = sqrt((4 + 1 + 0 + 9) / 3).
T.near(dis.cv(x4), math.sqrt(14 / 3) / 3, 1e-14, "cv by hand")

-- Bad input.
T.checkerr("x%[2%] = %-1 is negative", dis.gini, { 1, -1 })
T.checkerr("x%[2%] is %-?nan; expected a finite number", dis.gini, { 1, 0 / 0 })
T.checkerr("groups has 2 labels for 3 values", dis.dagum, { 1, 2, 3 }, { "a", "b" })
T.checkerr("unknown option 'group'", dis.theil, { 1, 2 }, { group = { "a", "b" } })
T.checkerr("e %(inequality aversion%) must be a number >= 0", dis.atkinson, { 1, 2 }, -1)
T.checkerr("all values are 0", dis.theil, { 0, 0 })

-- by_period on the provincial panel: one Dagum decomposition per year.
local d = sp.read_csv("scenarios/data/cn_province_panel.csv")
d:panel { entity = "province_en", time = "year" }
local rows = dis.by_period(d, "patent_grants_invention", { groups = "region_nbs", measure = "dagum" })
T.check(#rows == 12 and rows[1].period == 2011 and rows[12].period == 2022, "by_period: 12 years in order")
for _, row in ipairs(rows) do
  local rr = row.result
  if math.abs(rr.G - (rr.Gw + rr.Gnb + rr.Gt)) > 1e-12 then T.check(false, "by_period: identity " .. row.period) end
end
T.check(#rows[1].result.within == 4, "by_period: four NBS regions")
T.checkerr("unknown measure 'gin'", dis.by_period, d, "patent_grants_invention", { measure = "gin" })
T.checkerr("measure 'dagum' needs groups", dis.by_period, d, "patent_grants_invention", { measure = "dagum" })
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-disparity-"))
dis.dagum_plot(tmp .. "/dagum.png", rows)
T.check((T.read(tmp .. "/dagum.png") or ""):sub(2, 4) == "PNG", "dagum_plot: a PNG")

-- util.kde: kernels and bandwidths.  R: density(c(1,2,3,4,10), bw = "nrd")$bw = 1.06 * min(sd, IQR/1.34) * 5^-0.2
local vals = { 1, 2, 3, 4, 10 }
local sd = math.sqrt(((1 - 4) ^ 2 + (2 - 4) ^ 2 + (3 - 4) ^ 2 + 0 + 36) / 4)
local lo = math.min(sd, 2 / 1.34)
T.near(util.kde(vals, { bw = "scott" }).bw, 1.06 * lo * 5 ^ -0.2, 1e-14, "kde: Scott (bw.nrd)")
T.near(util.kde(vals).bw, 0.9 * lo * 5 ^ -0.2, 1e-14, "kde: Silverman (bw.nrd0), the default")
local ep = util.kde(vals, { kernel = "epanechnikov", bw = 1, n = 2001, from = -5, to = 16 })
local area = 0
for k = 2, #ep.x do area = area + (ep.x[k] - ep.x[k - 1]) * (ep.y[k] + ep.y[k - 1]) / 2 end
T.near(area, 1, 1e-4, "kde: Epanechnikov integrates to 1")
-- At a data point far from the others (10), only its own kernel counts:
-- 3 / (4 sqrt 5 m bw) = 3 / (4 sqrt 5 * 5).
local at10 = util.kde(vals, { kernel = "epanechnikov", bw = 1, n = 2, from = 10, to = 11 })
T.near(at10.y[1], 3 / (4 * math.sqrt(5) * 5), 1e-14, "kde: Epanechnikov height with bw = sd of the kernel")
T.checkerr("unknown kernel 'box'", util.kde, vals, { kernel = "box" })
T.checkerr("bw must be", util.kde, vals, { bw = -1 })

-- disparity.change: the Gini change of an experiment, per period, with an
-- interval over draws.  Period 1: baseline {1, 3}, scenario {2, 3}: Gini
-- |1 - 3| * 2 / (2 * 4 * 2) = 1/4 -> 1 * 2 / (2 * 4 * 2.5) = 1/10.
local chg = dis.change { baseline = { 1, 3, 1, 1 }, scenario = { 2, 3, 1, 1 }, periods = { 1, 1, 2, 2 },
  draws = { { 1, 0, 0, 0 }, { 0, 0, 0, 0 }, { 2, 0, 0, 0 } } }
T.near(chg[1].baseline, 1 / 4, 1e-15, "change: baseline Gini")
T.near(chg[1].change, 1 / 10 - 1 / 4, 1e-15, "change: scenario minus baseline")
-- draws: effects 1, 0, 2 on unit 1 give Ginis 1/10, 1/4, 0: changes -0.15, 0, -0.25.
T.near(chg[1].lo, util.quantile({ -0.25, -0.15, 0 }, 0.025), 1e-15, "change: interval over the draws (lo)")
T.near(chg[1].hi, util.quantile({ -0.25, -0.15, 0 }, 0.975), 1e-15, "change: interval over the draws (hi)")
T.check(chg[2].change == 0 and chg[2].period == 2, "change: an untouched period does not change")
local lg = dis.change { baseline = { 0, math.log(3) }, scenario = { 0, math.log(3) }, periods = { 1, 1 }, transform = "exp" }
T.near(lg[1].baseline, 1 / 4, 1e-15, "change: transform = exp measures the levels of a log outcome")
T.checkerr("unknown measure 'gin'", dis.change, { baseline = { 1, 2 }, scenario = { 1, 2 }, periods = { 1, 1 }, measure = "gin" })

-- plot.ridgeline and plot.heatmap (new in plot.lua for the distribution section).
local plot = require "spillover.plot"
local ser, xs, zs = {}, {}, {}
for t = 1, 3 do
  local k = util.kde({ t, t + 1, t + 3, 2 * t }, { n = 32, from = -2, to = 12 })
  ser[t], xs[t], zs[t] = { label = tostring(2000 + t), x = k.x, y = k.y }, 2000 + t, k.y
end
plot.ridgeline(tmp .. "/ridge.svg", { series = ser })
T.check((T.read(tmp .. "/ridge.svg") or ""):find("2003", 1, true), "ridgeline: an SVG labelled by period")
plot.heatmap(tmp .. "/heat.png", { x = xs, y = ser[1].x, z = zs })
T.check((T.read(tmp .. "/heat.png") or ""):sub(2, 4) == "PNG", "heatmap: a PNG")
T.checkerr("z%[2%] has 1 values for 32 y values", plot.heatmap, tmp .. "/h.png", { x = xs, y = ser[1].x, z = { zs[1], { 1 }, zs[3] } })
T.checkerr("overlap must be a positive number", plot.ridgeline, tmp .. "/r.png", { series = ser, overlap = 0 })

-- The scenario estimator "disparity" and its distribution report section:
-- scenarios/innovation_disparity.yaml runs and reports what it claims.
local exe = arg[-1] or "build/spillover"
local out = tmp .. "/innovation_disparity"
local ok = os.execute(exe .. " run scenarios/innovation_disparity.yaml -q -o " .. out .. " > " .. tmp .. "/run.out 2>&1")
T.check(ok == true, "innovation_disparity runs", T.read(tmp .. "/run.out"))
local res = sp.json.read(out .. "/results.json")
local dist = res.models.disparity.distribution
T.check(#dist.dagum == 12 and #dist.kde == 12 and #dist.theil == 12, "distribution: Dagum, densities and Theil for 2011-2022")
local g22 = dist.dagum[12]
T.near(g22.Gw + g22.Gnb + g22.Gt, g22.G, 1e-12, "distribution: G = Gw + Gnb + Gt in results.json")
-- The same numbers from the API on the same derived variable.
local pc = sp.read_csv("scenarios/data/cn_province_panel.csv")
local pat, pop, reg, yr = pc.patent_grants_invention:totable(), pc.population:totable(), pc.region_nbs, pc.year:totable()
local x22, g22l = {}, {}
for i = 1, #pat do if yr[i] == 2022 then x22[#x22 + 1] = pat[i] / pop[i]; g22l[#g22l + 1] = reg[i] end end
T.near(g22.G, dis.dagum(x22, g22l).G, 1e-12, "distribution: the 2022 Gini is the API's")
T.check(dist.spatial_markov.Q.df > 0 and #dist.spatial_markov.P_lag == 4, "distribution: spatial Markov with 4 lag classes")
T.check(dist.beta.b < 0 and dist.beta.half_life > 0 and dist.spatial_beta.rho ~= nil, "distribution: beta and spatial beta convergence")
T.check(res.models.disparity.coef.lag_log == dist.beta.b, "distribution: the model's fit is the beta regression")
local md = T.read(out .. "/distribution_disparity.md") or ""
T.check(md:find("| Gnb (net between) |", 1, true) and md:find("Spatial lag in class 4", 1, true) and
  md:find("Phillips & Sul log t", 1, true), "distribution_disparity.md: Dagum, spatial Markov and convergence")
for _, f in ipairs { "ridgeline_disparity.png", "density_disparity.png", "dagum_disparity.png" } do
  T.check(sp.sys.exists(out .. "/" .. f), "distribution: writes " .. f)
end

T.done()
