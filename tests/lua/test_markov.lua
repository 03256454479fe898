-- spillover.markov: giddy's Markov and spatial Markov matrices on US state
-- incomes 1929-2009 (libpysal usjoin.csv, states48.gal), the Land of Oz.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local mk = require "spillover.markov"

local d = sp.read_csv("tests/reference/data/external/pysal_usjoin.csv")
local n = d:nrow()
local pci = {}
for i = 1, n do pci[i] = {} end
for y = 1929, 2009 do
  local c = d:column(tostring(y)):totable()
  for i = 1, n do pci[i][#pci[i] + 1] = c[i] end
end
local nT = #pci[1]
local rpci = {}
for i = 1, n do rpci[i] = {} end
for t = 1, nT do
  local s = 0
  for i = 1, n do s = s + pci[i][t] end
  for i = 1, n do rpci[i][t] = pci[i][t] / (s / n) end
end

local function near_matrix(got, want, rtol, what)
  local worst, ok = 0, true
  for i = 1, #want do
    for j = 1, #want[i] do
      local g, w = got[i][j], want[i][j]
      local e = math.abs(g - w) / math.max(math.abs(w), 1)
      if e > worst then worst = e end
      if not (e <= rtol) then ok = false end
    end
  end
  T.check(ok, what, "largest error " .. worst)
end

-- giddy's Markov(q5): quintiles of each year.
local m = mk.markov(pci, { k = 5, pooled = false })
near_matrix(m.transitions, { { 729, 71, 1, 0, 0 }, { 72, 567, 80, 3, 0 }, { 0, 81, 631, 86, 2 }, { 0, 3, 86, 573, 56 },
  { 0, 0, 1, 57, 741 } }, 0, "markov: giddy's transition counts (yearly quintiles)")
near_matrix(m.P, { { 0.91011236, 0.0886392, 0.00124844, 0., 0. }, { 0.09972299, 0.78531856, 0.11080332, 0.00415512, 0. },
  { 0., 0.10125, 0.78875, 0.1075, 0.0025 }, { 0., 0.00417827, 0.11977716, 0.79805014, 0.07799443 },
  { 0., 0., 0.00125156, 0.07133917, 0.92740926 } }, 5e-8, "markov: giddy's P")
near_matrix({ m.steady_state }, { { 0.20774716, 0.18725774, 0.20740537, 0.18821787, 0.20937187 } }, 5e-8,
  "markov: giddy's steady state")
near_matrix(m.mfpt, { { 4.81354357, 11.50292712, 29.60921231, 53.38594954, 103.59816743 },
  { 42.04774505, 5.34023324, 18.74455332, 42.50023268, 92.71316899 },
  { 69.25849753, 27.21075248, 4.82147603, 25.27184624, 75.43305672 },
  { 84.90689329, 42.85914824, 17.18082642, 5.31299186, 51.60953369 },
  { 98.41295543, 56.36521038, 30.66046735, 14.21158356, 4.77619083 } }, 5e-9, "markov: giddy's mean first passage times")
near_matrix({ m.sojourn }, { { 11.125, 4.65806452, 4.73372781, 4.95172414, 13.77586207 } }, 5e-9, "markov: giddy's sojourn times")
-- pi P = pi.
local worst = 0
for j = 1, 5 do
  local s = 0
  for i = 1, 5 do s = s + m.steady_state[i] * m.P[i][j] end
  worst = math.max(worst, math.abs(s - m.steady_state[j]))
end
T.check(worst < 1e-14, "markov: pi P = pi", "error " .. worst)

-- Relative incomes, pooled quintiles (giddy's mq).
local mq = mk.markov(rpci, { k = 5 })
near_matrix(mq.transitions, { { 707, 58, 7, 1, 0 }, { 50, 629, 80, 1, 1 }, { 4, 79, 610, 73, 2 }, { 0, 7, 72, 650, 37 },
  { 0, 0, 0, 48, 724 } }, 0, "markov: giddy's pooled relative-income counts")
near_matrix({ mq.steady_state }, { { 0.17957376, 0.21631443, 0.21499942, 0.21134662, 0.17776576 } }, 5e-8,
  "markov: giddy's pooled steady state")

-- Two periods only: a reducible chain (giddy's Markov(q5[:, :2])).
local two = {}
for i = 1, n do two[i] = { pci[i][1], pci[i][2] } end
local m2 = mk.markov(two, { k = 5, pooled = false })
T.check(not m2.ergodic and m2.mfpt == nil, "markov: reducible chain has no mean first passage matrix")
T.check(#m2.steady_state == 2 and m2.steady_state[1][1] == 1 and m2.steady_state[2][4] == 1,
  "markov: one steady state per recurrent class (giddy: [1,0,0,0,0], [0,0,0,1,0])")
T.check(m2.sojourn[1] == math.huge and math.abs(m2.sojourn[2] - 9) < 1e-12 and math.abs(m2.sojourn[3] - 5.5) < 1e-12,
  "markov: sojourn inf for an absorbing class, 9 and 5.5 (giddy)")

-- Spatial Markov, k = m = 5, pooled quintiles, row-standardised states48.gal.
local e = sp.read_csv("tests/reference/data/external/pysal_states48_gal_edges.csv")
local ids = {}
for i = 0, 47 do ids[#ids + 1] = tostring(i) end
local W = sp.weights.contiguity(e, { ids = ids, style = "W" })
local sm = mk.spatial_markov(rpci, W, { k = 5, m = 5 })
near_matrix({ sm.cutoffs, sm.lag_cutoffs }, { { 0.83999133, 0.94707545, 1.03242697, 1.14911154 },
  { 0.88973386, 0.95891917, 1.01469758, 1.1183566 } }, 5e-8, "spatial markov: giddy's cut-offs")
near_matrix(sm.P_lag[1], { { 0.96341463, 0.0304878, 0.00609756, 0, 0 }, { 0.06040268, 0.83221477, 0.10738255, 0, 0 },
  { 0, 0.14, 0.74, 0.12, 0 }, { 0, 0.03571429, 0.32142857, 0.57142857, 0.07142857 }, { 0, 0, 0, 0.16666667, 0.83333333 } },
  5e-8, "spatial markov: giddy's P given a lag in class 1")
near_matrix(sm.P_lag[5], { { 0.33333333, 0.66666667, 0, 0, 0 }, { 0.0483871, 0.77419355, 0.16129032, 0.01612903, 0 },
  { 0.01149425, 0.16091954, 0.74712644, 0.08045977, 0 }, { 0, 0.01036269, 0.06217617, 0.89637306, 0.03108808 },
  { 0, 0, 0, 0.02352941, 0.97647059 } }, 5e-8, "spatial markov: giddy's P given a lag in class 5")
near_matrix(sm.P, { { 0.91461837, 0.07503234, 0.00905563, 0.00129366, 0 }, { 0.06570302, 0.82654402, 0.10512484, 0.00131406, 0.00131406 },
  { 0.00520833, 0.10286458, 0.79427083, 0.09505208, 0.00260417 }, { 0, 0.00913838, 0.09399478, 0.84856397, 0.04830287 },
  { 0, 0, 0, 0.06217617, 0.93782383 } }, 5e-8, "spatial markov: giddy's pooled P")
near_matrix(sm.S, { { 0.43509425, 0.2635327, 0.20363044, 0.06841983, 0.02932278 },
  { 0.13391287, 0.33993305, 0.25153036, 0.23343016, 0.04119356 }, { 0.12124869, 0.21137444, 0.2635101, 0.29013417, 0.1137326 },
  { 0.0776413, 0.19748806, 0.25352636, 0.22480415, 0.24654013 }, { 0.01776781, 0.19964349, 0.19009833, 0.25524697, 0.3372434 } },
  5e-8, "spatial markov: giddy's conditional steady states S")
near_matrix(sm.F[1], { { 2.29835259, 28.95614035, 46.14285714, 80.80952381, 279.42857143 },
  { 33.86549708, 3.79459555, 22.57142857, 57.23809524, 255.85714286 },
  { 43.60233918, 9.73684211, 4.91085714, 34.66666667, 233.28571429 },
  { 46.62865497, 12.76315789, 6.25714286, 14.61564626, 198.61904762 },
  { 52.62865497, 18.76315789, 12.25714286, 6., 34.1031746 } }, 5e-9, "spatial markov: giddy's F[0]")
T.near(sm.LR.statistic, 170.659, 3e-6, "spatial markov: LR = 170.659 (giddy)")
T.near(sm.Q.statistic, 200.624, 3e-6, "spatial markov: Q = 200.624 (giddy)")
T.check(sm.Q.df == 60 and sm.LR.df == 60, "spatial markov: dof_hom = 60 (giddy)")
local chi = { { 40.5598541, 6.44644317e-04 }, { 55.4751974, 2.97033748e-06 }, { 17.7528996, 0.338563882 },
  { 40.0390961, 7.68422046e-04 }, { 46.7966803, 7.32512065e-05 } }
for c = 1, 5 do
  T.near(sm.chi2[c].statistic, chi[c][1], 1e-8, "spatial markov: chi2 of lag class " .. c .. " (giddy)")
  T.near(sm.chi2[c].pvalue, chi[c][2], 1e-7, "spatial markov: its p-value (giddy)")
  T.check(sm.chi2[c].df == 16, "spatial markov: its 16 df (giddy)")
end
-- m = 4 lag classes (giddy's case 2): LR 172.105, Q 321.128, 45 df.
local sm4 = mk.spatial_markov(rpci, W, { k = 5, m = 4 })
T.near(sm4.LR.statistic, 172.105, 3e-6, "spatial markov m = 4: LR (giddy)")
T.near(sm4.Q.statistic, 321.128, 2e-6, "spatial markov m = 4: Q (giddy)")
T.check(sm4.Q.df == 45, "spatial markov m = 4: 45 df (giddy)")
-- Given cut-offs (giddy's case 3): an empty lag class keeps zero rows.
local cc = { 0.8, 0.9, 1, 1.2 }
local smc = mk.spatial_markov(rpci, W, { cutoffs = cc, lag_cutoffs = cc })
near_matrix(smc.P_lag[4], { { 0.82692308, 0.15384615, 0., 0.01923077, 0. }, { 0.0703125, 0.7890625, 0.125, 0.015625, 0. },
  { 0.00295858, 0.06213018, 0.82248521, 0.10946746, 0.00295858 }, { 0., 0.00185529, 0.07606679, 0.88497217, 0.03710575 },
  { 0., 0., 0., 0.07803468, 0.92196532 } }, 5e-8, "spatial markov with cut-offs: giddy's P[3]")
T.check(smc.P_lag[1][5][5] == 0, "spatial markov with cut-offs: a class never left stays a zero row")
local smf = mk.spatial_markov(rpci, W, { cutoffs = cc, lag_cutoffs = cc, fill_empty = true })
T.check(smf.P_lag[1][5][5] == 1, "spatial markov: fill_empty puts 1 on the diagonal")
T.check(#smf.S[1] == 2, "spatial markov: a reducible conditional chain has one steady state per recurrent class")
local md = mk.table(sm)
T.check(md:find("| 1 | 0.963 | 0.030 | 0.006 | 0.000 | 0.000 | 492 |", 1, true) and md:find("Q = 200.624", 1, true),
  "table: Markdown matrices and the homogeneity line")

-- LISA Markov: giddy's quadrant transitions and steady state.
local lm = mk.lisa_markov(pci, W)
near_matrix(lm.transitions, { { 1087, 44, 4, 34 }, { 41, 470, 36, 1 }, { 5, 34, 1422, 39 }, { 30, 1, 40, 552 } }, 0,
  "lisa markov: giddy's transitions")
near_matrix({ lm.steady_state }, { { 0.28561505, 0.14190226, 0.40493672, 0.16754598 } }, 5e-8, "lisa markov: giddy's steady state")
local rs = 0
for b = 1, 4 do rs = rs + lm.expected[1][b] end
T.near(rs, 1087 + 44 + 4 + 34, 1e-12, "lisa markov: expected counts keep each row's total")
T.check(lm.chi2.df == 9, "lisa markov: independence test with 9 df")

-- Kemeny & Snell's Land of Oz (rain, nice, snow).
local oz = mk.chain { { 0.5, 0.25, 0.25 }, { 0.5, 0, 0.5 }, { 0.25, 0.25, 0.5 } }
near_matrix({ oz.steady_state }, { { 0.4, 0.2, 0.4 } }, 1e-14, "land of Oz: steady state (2/5, 1/5, 2/5)")
near_matrix(oz.mfpt, { { 2.5, 4, 10 / 3 }, { 8 / 3, 5, 8 / 3 }, { 10 / 3, 4, 2.5 } }, 1e-13,
  "land of Oz: mean first passage times (recurrence times on the diagonal)")
near_matrix({ oz.sojourn }, { { 2, 1, 2 } }, 1e-15, "land of Oz: sojourn times (giddy's example)")

-- Bickenbach & Bode / Kullback example (giddy's kullback: 160.961, 30 df is
-- a different statistic; here the LR of two regimes by hand).
local h = mk.homogeneity { { { 10, 0 }, { 5, 5 } }, { { 5, 5 }, { 5, 5 } } }
-- Pooled rows: (15, 5) -> (.75, .25); (10, 10) -> (.5, .5).  Regime 1 row 1
-- (1, 0), regime 2 row 1 (.5, .5); rows 2 equal the pooled row.
-- LR = 2 [10 ln(1/.75) + 5 ln(.5/.75) + 5 ln(.5/.25)]; df = (2-1)(2-1) + (2-1)(2-1) = 2.
T.near(h.LR.statistic, 2 * (10 * math.log(1 / 0.75) + 5 * math.log(0.5 / 0.75) + 5 * math.log(0.5 / 0.25)), 1e-14,
  "homogeneity: LR by hand")
-- Q = 10 [(1-.75)^2/.75 + (0-.25)^2/.25] + 10 [(.5-.75)^2/.75 + (.5-.25)^2/.25]
T.near(h.Q.statistic, 10 * (0.0625 / 0.75 + 0.0625 / 0.25) * 2, 1e-14, "homogeneity: Q by hand")
T.check(h.df == 2, "homogeneity: df by hand")

-- Bad input.
T.checkerr("row 2 has 1 values; every unit needs 2", mk.markov, { { 1, 2 }, { 3 } })
T.checkerr("need at least 2 periods", mk.markov, { { 1 }, { 2 } })
T.checkerr("k must be an integer >= 2", mk.markov, pci, { k = 1 })
T.checkerr("cutoffs must be increasing", mk.markov, pci, { cutoffs = { 2, 1 } })
T.checkerr("W is over 48 units but values has 2 rows", mk.spatial_markov, { { 1, 2 }, { 3, 4 } }, W)
T.checkerr("row 1 sums to", mk.chain, { { 0.5, 0.4 }, { 0.5, 0.5 } })

T.done()
