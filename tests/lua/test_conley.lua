-- test_conley: sp.ols with vcov = {conley = {...}} against a brute-force
-- O(n^2) Lua implementation (every pair, haversine written out here) on a
-- simulated cross-section and on the provincial panel with entity fixed
-- effects and a serial lag; the cutoff -> 0 limit (HC0 and HC1 with the same
-- factor); the whole-globe limit (zero by the normal equations); and every
-- bad-input message.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

local R_KM, RAD = 6371.01, math.pi / 180

local function haversine(la1, lo1, la2, lo2)
  local a = math.sin((la2 - la1) * RAD / 2) ^ 2 + math.cos(la1 * RAD) * math.cos(la2 * RAD) *
    math.sin((lo2 - lo1) * RAD / 2) ^ 2
  return 2 * R_KM * math.atan(math.sqrt(a), math.sqrt(1 - a))
end

-- V = factor B M B from the definition: X rows (arrays), residuals, and
-- c = {lat, lon, cutoff, kernel, time, unit, lag}.
local function brute(X, e, c, factor)
  local n, k = #X, #X[1]
  local M = {}
  for a = 1, k do M[a] = {} for b = 1, k do M[a][b] = 0 end end
  for i = 1, n do
    for j = 1, n do
      local w = 0
      if c.time == nil or c.time[i] == c.time[j] then
        local d = i == j and 0 or haversine(c.lat[i], c.lon[i], c.lat[j], c.lon[j])
        if d <= c.cutoff then w = c.kernel == "bartlett" and 1 - d / c.cutoff or 1 end
      elseif (c.lag or 0) > 0 and c.unit[i] == c.unit[j] then
        local dt = math.abs(c.time[i] - c.time[j])
        if dt <= c.lag then w = 1 - dt / (c.lag + 1) end
      end
      if w ~= 0 then
        local s = w * e[i] * e[j]
        for a = 1, k do
          local xa = s * X[i][a]
          for b = 1, k do M[a][b] = M[a][b] + xa * X[j][b] end
        end
      end
    end
  end
  local Xm = sp.matrix(X)
  local B = (Xm:t() * Xm):inv()
  return (B * sp.matrix(M) * B) * (factor or 1)
end

-- OLS coefficients and residuals of y on the rows X, by the normal equations.
local function ols_resid(X, y)
  local Xm, ym = sp.matrix(X), sp.matrix(y)
  local b = (Xm:t() * Xm):inv() * (Xm:t() * ym)
  local r = (ym - Xm * b):totable()
  return r
end

local function max_rel(fitV, names, V)
  local worst, scale = 0, 0
  for a, na in ipairs(names) do
    for b, nb in ipairs(names) do
      worst = math.max(worst, math.abs(fitV[na][nb] - V:get(a, b)))
      scale = math.max(scale, math.abs(V:get(a, b)))
    end
  end
  return worst / scale
end

-- ---- a cross-section ---------------------------------------------------------------

local rng = sp.rng(1999)
local cols = { lat = {}, lon = {}, x1 = {}, x2 = {}, y = {}, w = {}, name = {} }
local n = 400
for i = 1, n do
  local lat, lon = 25 + 15 * rng:uniform(), 100 + 20 * rng:uniform()
  cols.lat[i], cols.lon[i] = lat, lon
  cols.x1[i] = rng:normal() + math.sin(lat / 3) + math.cos(lon / 4)   -- spatially smooth regressor
  cols.x2[i] = rng:normal()
  cols.y[i] = 1 + 0.5 * cols.x1[i] - 0.2 * cols.x2[i] + math.sin(lat / 2) + rng:normal()
  cols.w[i] = 0.5 + rng:uniform()
  cols.name[i] = "p" .. i
end
local d = sp.frame(cols)
local X, names = {}, { "(Intercept)", "x1", "x2" }
for i = 1, n do X[i] = { 1, cols.x1[i], cols.x2[i] } end
local e = ols_resid(X, cols.y)

for _, case in ipairs {
  { cutoff = 250, kernel = "uniform" },
  { cutoff = 250, kernel = "bartlett" },
  { cutoff = 900, kernel = "bartlett" },
} do
  local fit = sp.ols(d, "y ~ x1 + x2", { vcov = { conley = { lat = "lat", lon = "lon", cutoff = case.cutoff,
    kernel = case.kernel ~= "uniform" and case.kernel or nil } } })
  local V = brute(X, e, { lat = cols.lat, lon = cols.lon, cutoff = case.cutoff, kernel = case.kernel })
  local what = string.format("cross-section, %s, %g km = brute force", case.kernel, case.cutoff)
  T.check(max_rel(fit:vcov(), names, V) < 1e-12, what, string.format("relative difference %.3g",
    max_rel(fit:vcov(), names, V)))
  T.check(fit.vcov_label == string.format("Conley (%s, %g km)", case.kernel, case.cutoff), "label " .. fit.vcov_label)
end

-- The small-sample factor: dof = "(n-1)/(n-k)" scales V by (n-1)/(n-3).
local base = sp.ols(d, "y ~ x1 + x2", { vcov = { conley = { lat = "lat", lon = "lon", cutoff = 250 } } })
local scaled = sp.ols(d, "y ~ x1 + x2", { vcov = { conley = { lat = "lat", lon = "lon", cutoff = 250 },
  dof = "(n-1)/(n-k)" } })
T.near(scaled:vcov().x1.x1, base:vcov().x1.x1 * (n - 1) / (n - 3), 1e-13, "dof (n-1)/(n-k) scales V")
T.near(scaled.stats.vcov_dof_factor, (n - 1) / (n - 3), 1e-15, "the factor is reported")

-- The spatial correlation built into x1 and y shows: the SE of x1 grows with the cutoff.
local hc0 = sp.ols(d, "y ~ x1 + x2", { vcov = "hc0" })
T.check(base:se().x1 > 1.2 * hc0:se().x1, "Conley SE of the spatially smooth x1 exceeds HC0",
  string.format("%g vs %g", base:se().x1, hc0:se().x1))

-- cutoff -> 0: only i = j is left, the HC0 meat; with dof = "n/(n-k)" HC1.
local tiny = sp.ols(d, "y ~ x1 + x2", { vcov = { conley = { lat = "lat", lon = "lon", cutoff = 1e-6 } } })
T.near(tiny:se().x1, hc0:se().x1, 1e-13, "cutoff -> 0 = HC0 (x1)")
T.near(tiny:se()["(Intercept)"], hc0:se()["(Intercept)"], 1e-13, "cutoff -> 0 = HC0 (intercept)")
local hc1 = sp.ols(d, "y ~ x1 + x2", { vcov = "hc1" })
local tiny1 = sp.ols(d, "y ~ x1 + x2", { vcov = { conley = { lat = "lat", lon = "lon", cutoff = 1e-6,
  kernel = "bartlett" }, dof = "n/(n-k)" } })
T.near(tiny1:se().x2, hc1:se().x2, 1e-13, "cutoff -> 0 with dof n/(n-k) = HC1")
-- With weights: the scores are w e x on both sides.
local hc0w = sp.ols(d, "y ~ x1 + x2", { vcov = "hc0", weights = "w" })
local tinyw = sp.ols(d, "y ~ x1 + x2", { vcov = { conley = { lat = "lat", lon = "lon", cutoff = 1e-6 } },
  weights = "w" })
T.near(tinyw:se().x1, hc0w:se().x1, 1e-13, "cutoff -> 0 = HC0 under WLS weights")

-- A cutoff beyond half the circumference pairs everything: the uniform meat
-- is (sum g)(sum g)', zero by the normal equations (X'e = 0).
local globe = sp.ols(d, "y ~ x1 + x2", { vcov = { conley = { lat = "lat", lon = "lon", cutoff = 25000 } } })
T.check(math.abs(globe:vcov().x1.x1) < 1e-12 * hc0:vcov().x1.x1, "whole-globe uniform cutoff: V = 0 (X'e = 0)",
  string.format("var %g", globe:vcov().x1.x1))

-- ---- the provincial panel: entity fixed effects, spatial within year, serial lag ----------

local prov = sp.read_csv("scenarios/data/cn_province_panel.csv")
local coords = sp.read_csv("scenarios/data/cn_province_capital_coords.csv"):select { "adcode", "longitude", "latitude" }
prov = prov:join(coords, { on = "adcode", validate = "m:1" })
-- Tibet has no carbon intensity: keep the rows the fit uses, so the brute force sees the same sample
prov = prov:filter(function(row) return row.carbon_intensity == row.carbon_intensity end)
prov:panel { entity = "adcode", time = "year" }
local formula = "carbon_intensity ~ digital_finance + urbanization | adcode"
local pv = {}
for _, nm in ipairs { "adcode", "year", "latitude", "longitude", "carbon_intensity", "digital_finance",
  "urbanization" } do
  local c = prov:column(nm)
  pv[nm] = type(c) == "table" and c or c:totable()
end
-- the within transform by hand (one-way, so exact): deviations from the province means
local function within(v)
  local s, cnt, out = {}, {}, {}
  for r, code in ipairs(pv.adcode) do s[code] = (s[code] or 0) + v[r]; cnt[code] = (cnt[code] or 0) + 1 end
  for r, code in ipairs(pv.adcode) do out[r] = v[r] - s[code] / cnt[code] end
  return out
end
local yw, x1w, x2w = within(pv.carbon_intensity), within(pv.digital_finance), within(pv.urbanization)
local Xp = {}
for r = 1, #yw do Xp[r] = { x1w[r], x2w[r] } end
local ep = ols_resid(Xp, yw)
local np = #yw
local pnames = { "digital_finance", "urbanization" }
for _, case in ipairs {
  { cutoff = 600, kernel = "uniform", lag = 0 },
  { cutoff = 800, kernel = "bartlett", lag = 2 },
  { cutoff = 1e-6, kernel = "uniform", lag = 11 },
} do
  local conley = { lat = "latitude", lon = "longitude", cutoff = case.cutoff, kernel = case.kernel, lag = case.lag }
  local fit = sp.ols(prov, formula, { vcov = { conley = conley, dof = "(n-1)/(n-k)" } })
  -- k_df counts the slopes and the absorbed parameters (30 beyond the one
  -- standing for the intercept), as HC1's does
  local factor = (np - 1) / (np - 2 - fit.stats.fe_dof)
  local V = brute(Xp, ep, { lat = pv.latitude, lon = pv.longitude, cutoff = case.cutoff, kernel = case.kernel,
    time = pv.year, unit = pv.adcode, lag = case.lag }, factor)
  local what = string.format("panel with FE, %s %g km, lag %d = brute force", case.kernel, case.cutoff, case.lag)
  local rd = max_rel(fit:vcov(), pnames, V)
  T.check(rd < 1e-12, what, string.format("relative difference %.3g", rd))
end
local hc1p = sp.ols(prov, formula, { vcov = "hc1" })
local conley1 = sp.ols(prov, formula, { vcov = { conley = { lat = "latitude", lon = "longitude", cutoff = 1e-6 },
  dof = "n/(n-k)" } })
T.check(hc1p.stats.fe_dof == 30, "30 absorbed parameters")
T.near(conley1:se().digital_finance, hc1p:se().digital_finance, 1e-13, "panel with FE: cutoff -> 0, n/(n-k) = HC1")

-- Spatial pairs stay within a year: a panel without a lag differs from the
-- same rows pooled as a cross-section (which pairs a province with itself
-- in other years at distance 0).
local pooled = sp.frame { adcode = pv.adcode, latitude = pv.latitude, longitude = pv.longitude,
  carbon_intensity = pv.carbon_intensity, digital_finance = pv.digital_finance, urbanization = pv.urbanization }
local fit_panel = sp.ols(prov, formula, { vcov = { conley = { lat = "latitude", lon = "longitude", cutoff = 600 } } })
T.check(fit_panel.vcov_label == "Conley (uniform, 600 km)", "panel label", fit_panel.vcov_label)
local lagged = sp.ols(prov, formula, { vcov = { conley = { lat = "latitude", lon = "longitude", cutoff = 600,
  lag = 2 } } })
T.check(lagged.vcov_label == "Conley (uniform, 600 km, lag 2)", "label with the lag", lagged.vcov_label)
T.check(pooled:panel_info() == nil, "a copy has no panel index")
local fit_pooled = sp.ols(pooled, formula,
  { vcov = { conley = { lat = "latitude", lon = "longitude", cutoff = 600 } } })
local se_panel = fit_panel:se().digital_finance
T.check(math.abs(fit_pooled:se().digital_finance - se_panel) > 1e-6 * se_panel,
  "a cross-section pools the years; a panel pairs within year")

-- ---- 2SLS: the scores are the fitted first stage times the structural residual -------------

local ivc = { lat = {}, lon = {}, x = {}, z = {}, y = {} }
for i = 1, 250 do
  ivc.lat[i], ivc.lon[i] = 30 + 5 * rng:uniform(), 110 + 5 * rng:uniform()
  ivc.z[i] = rng:normal() + math.cos(ivc.lat[i])
  local u = rng:normal()
  ivc.x[i] = ivc.z[i] + 0.5 * u + rng:normal()
  ivc.y[i] = 1 + ivc.x[i] + u
end
local ivfit = sp.ols(sp.frame(ivc), "y ~ 1 | x ~ z", { vcov = { conley = { lat = "lat", lon = "lon", cutoff = 120,
  kernel = "bartlett" } } })
local Z, Xiv = {}, {}
for i = 1, 250 do Z[i], Xiv[i] = { 1, ivc.z[i] }, { 1, ivc.x[i] } end
local Zm, Xm, ym = sp.matrix(Z), sp.matrix(Xiv), sp.matrix(ivc.y)
local Xhat = Zm * ((Zm:t() * Zm):inv() * (Zm:t() * Xm))
local biv = (Xhat:t() * Xhat):inv() * (Xhat:t() * ym)
local eiv = (ym - Xm * biv):totable()
local Xhat_rows = {}
for i = 1, 250 do Xhat_rows[i] = { Xhat:get(i, 1), Xhat:get(i, 2) } end
local Vhat = brute(Xhat_rows, eiv, { lat = ivc.lat, lon = ivc.lon, cutoff = 120, kernel = "bartlett" })
local rd_iv = max_rel(ivfit:vcov(), { "(Intercept)", "x" }, Vhat)
T.check(rd_iv < 1e-12, "2SLS, Bartlett 120 km = brute force", string.format("relative difference %.3g", rd_iv))

-- Scenario files name the kind: `spillover check` lets an ols model take it.
local rules = require "spillover.vcov_rules"
T.check(rules.kind { conley = { lat = "lat", lon = "lon", cutoff = 1 } } == "conley", "vcov kind 'conley'")
local listed = false
for _, kind in ipairs(rules.KINDS) do listed = listed or kind == "conley" end
T.check(listed, "'conley' among the vcov kinds estimators declare")

-- ---- errors ----------------------------------------------------------------------

T.checkerr("vcov: conley standard errors are not available for this estimator", function()
  return sp.re(prov, "carbon_intensity ~ digital_finance", { vcov = { conley = { lat = "latitude",
    lon = "longitude", cutoff = 100 } } })
end)

local function conley_fit(c, extra)
  local v = { conley = c }
  for key, val in pairs(extra or {}) do v[key] = val end
  return function() return sp.ols(d, "y ~ x1 + x2", { vcov = v }) end
end
local ok_c = function(over)
  local c = { lat = "lat", lon = "lon", cutoff = 100 }
  for key, val in pairs(over) do c[key] = val end
  return c
end
T.checkerr("vcov: conley: unknown option 'cutof'.*did you mean 'cutoff'",
  conley_fit { lat = "lat", lon = "lon", cutof = 1 })
T.checkerr("vcov: conley.lat must name the column of latitudes in degrees, got nothing",
  conley_fit { lon = "lon", cutoff = 100 })
T.checkerr("vcov: conley.cutoff must be a distance in km > 0, got 0", conley_fit(ok_c { cutoff = 0 }))
T.checkerr("vcov: conley.cutoff must be a distance in km > 0, got nil", conley_fit { lat = "lat", lon = "lon" })
T.checkerr("vcov: conley.kernel must be \"uniform\" or \"bartlett\", got triangular",
  conley_fit(ok_c { kernel = "triangular" }))
T.checkerr("vcov: conley.lag must be an integer number of periods >= 0, got 1.5", conley_fit(ok_c { lag = 1.5 }))
T.checkerr("vcov: conley.lag must be an integer number of periods >= 0, got %-1", conley_fit(ok_c { lag = -1 }))
T.checkerr("vcov: conley must be a table", function() return sp.ols(d, "y ~ x1", { vcov = { conley = 100 } }) end)
T.checkerr("vcov: unknown conley latitude variable 'latt' %(did you mean 'lat'%?%)", conley_fit(ok_c { lat = "latt" }))
T.checkerr("vcov: the conley longitude variable 'name' is not numeric", conley_fit(ok_c { lon = "name" }))
T.checkerr("vcov: conley.lag needs a panel index", conley_fit(ok_c { lag = 1 }))
T.checkerr("vcov: conley takes dof = \"none\" %(the default%), \"n/%(n%-k%)\" or \"%(n%-1%)/%(n%-k%)\", got n",
  conley_fit(ok_c {}, { dof = "n" }))
local holes = d:copy()
local lat_hole = {}
for i = 1, n do lat_hole[i] = i == 17 and 0 / 0 or cols.lat[i] end
holes.lat = lat_hole
local msg = T.checkerr("vcov: the conley latitude variable 'lat' is missing at row 17", function()
  return sp.ols(holes, "y ~ x1 + x2", { vcov = { conley = ok_c {} } })
end)
T.check(not msg:find("conley%.lua") and not msg:find("vcov_rules"), "no internal path in the message", msg)
local far = d:copy()
local lat_far = {}
for i = 1, n do lat_far[i] = i == 5 and 95 or cols.lat[i] end
far.lat = lat_far
T.checkerr("row 5 has latitude 95, longitude [%d.]+; expected degrees with |latitude| <= 90", function()
  return sp.ols(far, "y ~ x1 + x2", { vcov = { conley = ok_c {} } })
end)

T.done()
