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
-- convergence overall, as Phillips & Sul (2009) report (t far below -1.65).
local g = sp.read_csv("../shared/data/external/cc_countryGDP_filtered.csv")
local gr = {}
for i = 1, g:nrow() do gr[i] = {} end
for yr = 1970, 2003 do
  local c = g:column("Y" .. yr):totable()
  for i = 1, #c do gr[i][#gr[i] + 1] = c[i] end
end
local all = cv.log_t(gr)
T.check(all.b < 0 and all.t < -1.65 and not all.converge, "log t: the 152 countries do not converge")
T.checkerr("trim must be in %(0, 1%)", cv.log_t, rows, { trim = 1 })

T.done()
