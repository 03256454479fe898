-- spillover.convergence: sigma, beta (absolute, conditional, spatial), log t.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local cv = require "spillover.convergence"

-- A panel built so that ln y_it - ln y_i,t-1 = 0.2 - 0.1 ln y_i,t-1 + unit
-- effect exactly (no noise): OLS with unit effects recovers b = -0.1, so the
-- speed is -ln(0.9) and the half-life ln 2 / -ln(0.9).
local id, year, y = {}, {}, {}
for u = 1, 6 do
  local ly = 0.5 * u
  for t = 2001, 2010 do
    id[#id + 1], year[#year + 1], y[#y + 1] = u, t, math.exp(ly)
    ly = ly + 0.2 + 0.01 * u - 0.1 * ly
  end
end
local d = sp.frame { id = id, year = year, y = y, x = year }
d:panel { entity = "id", time = "year" }
local b = cv.beta(d, "y", { fe = "entity" })
T.near(b.b, -0.1, 1e-9, "beta: b with unit effects")
T.near(b.speed, -math.log(0.9), 1e-8, "beta: speed = -ln(1 + b)")
T.near(b.half_life, math.log(2) / -math.log(0.9), 1e-8, "beta: half-life = ln 2 / speed")
T.check(b.nobs == 54, "beta: 9 transitions per unit")
local a = cv.beta(d, "y", { fe = "none" })
T.check(a.fit:coef()["(Intercept)"] ~= nil, "beta: absolute convergence has an intercept and no effects")
T.checkerr("fe must be none, entity, time or twoways", cv.beta, d, "y", { fe = "unit" })
T.checkerr("unknown column 'yy'", cv.beta, d, "yy")

-- sigma: per year CV and sd of logs (n - 1) by hand for 2001: y = e^(0.5 u).
local s = cv.sigma(d, "y")
local v = {}
for u = 1, 6 do v[u] = math.exp(0.5 * u) end
local m = 0
for _, x in ipairs(v) do m = m + x / 6 end
local ss = 0
for _, x in ipairs(v) do ss = ss + (x - m) ^ 2 end
T.near(s[1].cv, math.sqrt(ss / 5) / m, 1e-14, "sigma: CV by hand")
-- logs 0.5 .. 3: sd = 0.5 * sd(1..6) = 0.5 * sqrt(3.5)
T.near(s[1].sd_log, 0.5 * math.sqrt(3.5), 1e-14, "sigma: sd of logs by hand")
T.check(#s == 10 and s[10].period == 2010, "sigma: one row per year")
T.check(s[10].sd_log < s[1].sd_log, "sigma: dispersion falls in a converging panel")

-- Spatial beta convergence through sp.spatial (SAR with unit effects) on the
-- provincial panel: it runs and reports rho.
local cn = sp.read_csv("scenarios/data/cn_province_panel.csv")
cn:panel { entity = "province", time = "year" }
local W = sp.weights.contiguity("scenarios/data/cn_province_adjacency_31_edges.csv",
  { from = "province_i", to = "province_j", style = "W" })
local sb = cv.beta(cn, "gdp_per_capita", { spatial = "sar", weights = W, fe = "entity" })
T.check(sb.fit:coef().rho ~= nil and sb.b == sb.b, "beta: spatial (SAR) fit with rho")
T.checkerr("needs weights", cv.beta, cn, "gdp_per_capita", { spatial = "sar" })

-- Phillips & Sul log t: a panel whose H_t is exactly
-- H_1 exp(-(a + b log t)) / (log t)^2 for t >= 2 gives b back.
local Tn, n = 30, 4
local H = {}
for t = 1, Tn do H[t] = t == 1 and 1 or math.exp(-(0.3 + 0.4 * math.log(t))) / math.log(t) ^ 2 end
-- Two pairs of units at 1 +- sqrt(H_t): h = x / mean, mean 1, H = mean (h - 1)^2.
local rows = {}
for i = 1, n do rows[i] = {} end
for t = 1, Tn do
  local e = math.sqrt(H[t])
  rows[1][t], rows[2][t], rows[3][t], rows[4][t] = 1 + e, 1 - e, 1 + e, 1 - e
end
local lt = cv.log_t(rows)
T.near(lt.b, 0.4, 1e-10, "log t: b recovered")
T.check(lt.first == 11, "log t: round(30 / 3) + 1 = 11 is the first period")
-- The filtered log GDP of 152 countries 1970-2003 (ConvergenceClubs): no
-- convergence overall (t far below -1.65).
local g = sp.read_csv("tests/reference/data/external/cc_countryGDP_filtered.csv")
local gr = {}
for i = 1, g:nrow() do gr[i] = {} end
for yr = 1970, 2003 do
  local c = g:column("Y" .. yr):totable()
  for i = 1, #c do gr[i][#gr[i] + 1] = c[i] end
end
local all = cv.log_t(gr)
T.check(all.b < 0 and all.t < -1.65 and not all.converge, "log t: the 152 countries do not converge")
T.checkerr("trim must be in %(0, 1%)", cv.log_t, rows, { trim = 1 })

-- Club clustering on a panel with a known structure: units 1-5 converge to
-- delta = 2, units 6-10 to delta = 1 (x_it = (delta + c_i / sqrt t) g_t), and
-- unit 11 runs away ((3 + t / 10) g_t).  The whole panel does not converge;
-- the clustering finds the two clubs, the runaway unit diverges, and merging
-- keeps the two clubs apart (their union does not converge).
local cr = {}
for i = 1, 10 do
  cr[i] = {}
  local delta, c = i <= 5 and 2 or 1, ((i - 1) % 5 - 2) * 0.2
  for t = 1, 40 do cr[i][t] = (delta + c * t ^ -0.5) * (1 + 0.02 * t) end
end
cr[11] = {}
for t = 1, 40 do cr[11][t] = (3 + t / 10) * (1 + 0.02 * t) end
T.check(not cv.log_t(cr).converge, "clubs: the whole panel does not converge")
local cl = cv.clubs(cr)
local function set(units) local k = {} for _, u in ipairs(units) do k[#k + 1] = u end table.sort(k) return table.concat(k, ",") end
T.check(#cl.clubs == 2 and set(cl.clubs[1].units) == "1,2,3,4,5" and set(cl.clubs[2].units) == "6,7,8,9,10",
  "clubs: the two clubs, the higher first", #cl.clubs .. " clubs")
T.check(#cl.divergent == 1 and cl.divergent[1] == 11, "clubs: the runaway unit diverges")
T.check(cl.clubs[1].t > -1.65 and cl.clubs[2].t > -1.65, "clubs: each club converges")
local m1 = cv.clubs({ cr[1], cr[2], cr[3], cr[4], cr[5] }, { merge = false })
T.check(#m1.clubs == 1 and #m1.clubs[1].units == 5, "clubs: one converging group is one club")
-- Merging (Phillips & Sul 2009): club A found in two pieces is one club
-- again; club B stays apart because A + B does not converge.
local mg = cv.merge_clubs(cr, { { 1, 2, 3 }, { 4, 5 }, { 6, 7, 8, 9, 10 } })
T.check(#mg == 2 and set(mg[1]) == "1,2,3,4,5" and set(mg[2]) == "6,7,8,9,10", "merge_clubs: the halves of a club merge")
T.checkerr("ref must be a period 1..40", cv.clubs, cr, { ref = 41 })

T.done()
