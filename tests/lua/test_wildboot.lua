-- test_wildboot: fit:wildboot (spillover.wildboot), the wild cluster bootstrap-t,
-- and the few-clusters note of clustered OLS fits.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

-- A small unbalanced panel: 6 clusters of 5..10 rows, a period factor that
-- crosses the clusters (not nested), x1 shifted in cluster 1.
local function small_panel(seed)
  local r = sp.rng(seed)
  local cols = { y = {}, x1 = {}, x2 = {}, g = {}, t = {} }
  local i = 0
  for g = 1, 6 do
    local ug = r:normal()
    for t = 1, 4 + g do
      i = i + 1
      cols.g[i], cols.t[i] = "c" .. g, t % 4
      cols.x1[i] = r:normal() + (g == 1 and 2 or 0)
      cols.x2[i] = r:normal()
      cols.y[i] = 0.5 * cols.x2[i] + ug + r:normal()
    end
  end
  return cols, i
end

local cols, n = small_panel(7)
local d = sp.frame(cols)

-- ---- every enumerated replication equals a refit of the full model ---------------------
-- Replication b (v_g = -1 where bit g - 1 of b - 1 is set) re-estimated by sp.ols on
-- y* = y - u + u . v, u the (restricted) residuals, fixed effects absorbed again.
local function brute_force(formula, null, h0)
  local fit = sp.ols(d, formula, { vcov = { cluster = "g" } })
  local wb = fit:wildboot { param = "x1", h0 = h0, reps = 100, impose_null = null }
  local base = {}
  for k, v in pairs(cols) do base[k] = v end
  local u
  if null then
    base.yr = {}
    for j = 1, n do base.yr[j] = cols.y[j] - h0 * cols.x1[j] end
    u = sp.ols(sp.frame(base), (formula:gsub("^y ~ x1 %+ ", "yr ~ "))):resid():tovector()
  else
    u = fit:resid():tovector()
  end
  local worst = 0
  for b = 1, 64 do
    local bits, v = b - 1, {}
    for g = 1, 6 do v[g] = bits % 2 == 1 and -1 or 1; bits = bits // 2 end
    base.ys = {}
    for j = 1, n do base.ys[j] = cols.y[j] - u[j] + u[j] * v[tonumber(cols.g[j]:sub(2))] end
    local fb = sp.ols(sp.frame(base), (formula:gsub("^y ", "ys ")), { vcov = { cluster = "g" } })
    local tb = (fb:coef().x1 - (null and h0 or fit:coef().x1)) / fb:se().x1
    worst = math.max(worst, math.abs(tb - wb.tstar[b]))
  end
  return worst, wb, fit
end
for _, formula in ipairs { "y ~ x1 + x2", "y ~ x1 + x2 | t" } do
  for _, null in ipairs { true, false } do
    local worst, wb = brute_force(formula, null, 0.3)
    T.check(wb.enumerated and wb.reps == 64, "enumeration: 2^6 sign vectors when reps >= 64")
    T.check(worst < 1e-10, string.format("%s, %s: 64 bootstrap t equal refits", formula, null and "WCR" or "WCU"),
      "worst difference " .. worst)
  end
end

-- ---- the statistic is the fit's t; (a) enumeration is exact and seed-free -----------------
local fit = sp.ols(d, "y ~ x1 + x2 | t", { vcov = { cluster = "g" } })
local wb = fit:wildboot { param = "x1", reps = 64 }
T.near(wb.t, fit:tstat().x1, 1e-12, "t at h0 = 0 is the fit's cluster-robust t")
T.near(fit:wildboot { param = "x1", h0 = 0.3, reps = 64 }.t, (fit:coef().x1 - 0.3) / fit:se().x1, 1e-12,
  "t at h0 = 0.3")
T.check(wb.pvalue * 64 == math.floor(wb.pvalue * 64 + 0.5), "enumerated p-value is a multiple of 1/64")
local wb2 = fit:wildboot { param = "x1", reps = 9999, seed = 5 }
T.check(wb2.pvalue == wb.pvalue and wb2.confint[1] == wb.confint[1] and wb2.confint[2] == wb.confint[2],
  "enumerated p-value and confidence set do not depend on reps beyond 2^G or on the seed")
local wb3 = fit:wildboot { param = "x1", reps = 63 }
T.check(not wb3.enumerated and wb3.reps == 63, "reps < 2^G: random draws")

-- Clustering named in wildboot gives what the clustered fit gives (CRV1 factor).
local fit_hc = sp.ols(d, "y ~ x1 + x2 | t", { vcov = "hc1" })
local wbc = fit_hc:wildboot { param = "x1", cluster = "g", reps = 64 }
T.near(wbc.t, wb.t, 1e-10, "cluster = 'g' on an HC1 fit: t as the fit clustered by g")
T.check(wbc.pvalue == wb.pvalue, "cluster = 'g' on an HC1 fit: the same p-value")

-- ---- (c) the confidence set's ends are where the p-value crosses 1 - level -----------------
for _, spec in ipairs { { weights = "rademacher", reps = 64 }, { weights = "webb", reps = 499 },
  { weights = "mammen", reps = 499, impose_null = false } } do
  local w = fit:wildboot { param = "x1", weights = spec.weights, reps = spec.reps, impose_null = spec.impose_null,
    level = 0.9, seed = 3 }
  local lo, hi, delta = w.confint[1], w.confint[2], 1e-6 * w.se
  T.check(lo < w.estimate and w.estimate < hi, spec.weights .. ": the set contains the estimate")
  T.check(w.pvalue_at(lo + delta) >= 0.1 and w.pvalue_at(lo - delta) < 0.1,
    spec.weights .. ": p-value crosses 0.1 at the lower end")
  T.check(w.pvalue_at(hi - delta) >= 0.1 and w.pvalue_at(hi + delta) < 0.1,
    spec.weights .. ": p-value crosses 0.1 at the upper end")
end

-- ---- (d) seeded: the same seed gives the same draws ---------------------------------------
local a1 = fit:wildboot { param = "x2", weights = "webb", reps = 199, seed = 11 }
local a2 = fit:wildboot { param = "x2", weights = "webb", reps = 199, seed = 11 }
local a3 = fit:wildboot { param = "x2", weights = "webb", reps = 199, seed = 12 }
local same, differ = true, false
for b = 1, 199 do
  same = same and a1.tstar[b] == a2.tstar[b]
  differ = differ or a1.tstar[b] ~= a3.tstar[b]
end
T.check(same and a1.pvalue == a2.pvalue and a1.confint[1] == a2.confint[1], "same seed: identical results")
T.check(differ, "another seed: other draws")

-- ---- (b) size with 6 unbalanced clusters ------------------------------------------------
-- Under the null (y unrelated to x, both with cluster effects), the cluster-robust
-- t test rejects far more often than 5%; the WCR bootstrap with Webb weights
-- near 5%.  Fixed seeds: the counts are deterministic.
do
  local sizes, S = { 4, 6, 10, 16, 30, 60 }, 300
  local rej_boot, rej_crve = 0, 0
  for s = 1, S do
    local r = sp.rng(1000):substream(s)
    local c = { y = {}, x = {}, g = {} }
    local i = 0
    for g, m in ipairs(sizes) do
      local ex, eu = r:normal(), r:normal()
      for _ = 1, m do
        i = i + 1
        c.g[i], c.x[i], c.y[i] = g, ex + 0.5 * r:normal(), eu + r:normal()
      end
    end
    local f = sp.ols(sp.frame(c), "y ~ x", { vcov = { cluster = "g" } })
    if f:wildboot { param = "x", reps = 399, weights = "webb" }.pvalue < 0.05 then rej_boot = rej_boot + 1 end
    if f:pvalue().x < 0.05 then rej_crve = rej_crve + 1 end
  end
  T.check(rej_boot / S > 0.02 and rej_boot / S < 0.09, "size: WCR (Webb) rejects near 5% with 6 clusters",
    "rate " .. rej_boot / S)
  T.check(rej_crve / S > 0.12, "size: the cluster-robust t test over-rejects there", "rate " .. rej_crve / S)
end

-- ---- 2SLS: every enumerated WRE / WRU replication equals a refit -------------------------
-- Replication b: y2* = y2 - v~ + v~ . v, y* = y - u~ - b~ y2 + b~ y2* + u~ . v, with u~ the
-- (restricted) structural residuals and v~ = y2 - Z Pi~ from the reduced form of y2 on the
-- instruments and u~ (its residuals plus the coefficient of u~ times u~).
do
  local full = sp.read_csv("tests/reference/data/external/ivreg2r_sim_cluster_data.csv")
  local di = full:filter(function(r) return r.cluster_id <= 6 end)
  local ni = di:nrow()
  local y, e, cl = di.y:tovector(), di.endo1:tovector(), di.cluster_id:tovector()
  for _, fe in ipairs { "", " | cluster_id" } do
    local fiv = sp.ols(di, "y ~ x1" .. fe .. " | endo1 ~ z1 + z2", { vcov = { cluster = "cluster_id" } })
    for _, null in ipairs { true, false } do
      local h0 = 1.5
      local wbi = fiv:wildboot { param = "endo1", reps = 64, h0 = h0, impose_null = null }
      local dd = di:copy()
      local beta = null and h0 or fiv:coef().endo1
      local yr = {}
      for i = 1, ni do yr[i] = y[i] - beta * e[i] end
      dd.yr = yr
      -- restricted: OLS of y - h0 y2 on x1 (x1 is its own instrument); else the 2SLS residuals
      local u = null and sp.ols(dd, "yr ~ x1" .. fe):resid():tovector() or fiv:resid():tovector()
      dd.u = u
      local rf = sp.ols(dd, "endo1 ~ x1 + z1 + z2 + u" .. fe)
      local rres, delta = rf:resid():tovector(), rf:coef().u
      local worst = 0
      for b = 1, 64 do
        local bits, v = b - 1, {}
        for g = 1, 6 do v[g] = bits % 2 == 1 and -1 or 1; bits = bits // 2 end
        local es, ys = {}, {}
        for i = 1, ni do
          local vt, vg = rres[i] + delta * u[i], v[cl[i]]
          es[i] = e[i] - vt + vt * vg
          ys[i] = y[i] - u[i] - beta * e[i] + beta * es[i] + u[i] * vg
        end
        dd.es, dd.ys = es, ys
        local fb = sp.ols(dd, "ys ~ x1" .. fe .. " | es ~ z1 + z2", { vcov = { cluster = "cluster_id" } })
        worst = math.max(worst, math.abs((fb:coef().es - beta) / fb:se().es - wbi.tstar[b]))
      end
      T.check(worst < 1e-9, string.format("2SLS%s, %s: 64 bootstrap t equal refits", fe, null and "WRE" or "WRU"),
        "worst difference " .. worst)
      T.near(wbi.t, (fiv:coef().endo1 - h0) / fiv:se().endo1, 1e-12, "2SLS: t is the fit's")
      local lo, hi, delta_h = wbi.confint[1], wbi.confint[2], 1e-3 * wbi.se
      T.check(wbi.pvalue_at(lo + delta_h) >= 0.05 and wbi.pvalue_at(lo - delta_h) < 0.05 and
        wbi.pvalue_at(hi - delta_h) >= 0.05 and wbi.pvalue_at(hi + delta_h) < 0.05,
        "2SLS: the p-value crosses 0.05 at the ends of the confidence set")
    end
  end
end

-- ---- the few-clusters note ------------------------------------------------------------------
local function has_note(f)
  for _, note in ipairs(f.notes) do if note:find("wildboot", 1, true) then return note end end
end
local note = has_note(fit)
T.check(note and note:find("only 6 clusters in 'g'", 1, true), "6 clusters: the note recommends fit:wildboot", note)
local P = sp.read_csv("tests/reference/data/Produc.csv")
T.check(not has_note(sp.ols(P, "log_gsp ~ log_pcap", { vcov = { cluster = "state" } })), "48 clusters: no note")
T.check(not has_note(fit_hc), "not clustered: no note")
local note_iv = has_note(sp.ols(sp.read_csv("tests/reference/data/external/ivreg2r_sim_cluster_data.csv"):filter(function(r)
  return r.cluster_id <= 6 end), "y ~ x1 | endo1 ~ z1 + z2", { vcov = { cluster = "cluster_id" } }))
T.check(note_iv and note_iv:find("only 6 clusters in 'cluster_id'", 1, true), "2SLS with 6 clusters: the note", note_iv)

-- ---- errors -----------------------------------------------------------------------------------
T.checkerr("'param' must name a coefficient %(one of x1, x2%)", function() return fit:wildboot {} end)
T.checkerr("unknown coefficient 'x3'.*did you mean 'x1'", function() return fit:wildboot { param = "x3" } end)
T.checkerr("unknown weights 'webs'.*did you mean 'webb'", function()
  return fit:wildboot { param = "x1", weights = "webs" }
end)
T.checkerr("unknown option 'rep'.*did you mean 'reps'", function() return fit:wildboot { param = "x1", rep = 9 } end)
T.checkerr("'reps' must be a positive integer", function() return fit:wildboot { param = "x1", reps = 0 } end)
T.checkerr("not clustered one way; name the bootstrap clusters", function() return fit_hc:wildboot { param = "x1" } end)
T.checkerr("unknown cluster variable 'gg'", function() return fit:wildboot { param = "x1", cluster = "gg" } end)
T.checkerr("not clustered one way", function()
  return sp.ols(d, "y ~ x1 + x2", { vcov = { cluster = { "g", "t" } } }):wildboot { param = "x1" }
end)
local dw = sp.frame(cols)
dw.w = 1
T.checkerr("weighted fits are not supported", function()
  return sp.ols(dw, "y ~ x1 + x2", { weights = "w", vcov = { cluster = "g" } }):wildboot { param = "x1" }
end)
T.checkerr("for 2SLS the fixed effects must be nested in the bootstrap clusters; 't' is not nested in 'g'", function()
  cols.z = {}
  for j = 1, n do cols.z[j] = cols.x1[j] + math.sin(j) end
  return sp.ols(sp.frame(cols), "y ~ x2 | t | x1 ~ z", { vcov = { cluster = "g" } }):wildboot { param = "x1" }
end)
local err = T.checkerr("needs a fit of sp.ols", function()
  return sp.fit { names = { "x" }, b = { 1 }, V = { { 1 } }, nobs = 3 }:wildboot { param = "x" }
end)
T.check(not err:find("wildboot.lua", 1, true), "errors do not name spillover's files", err)

T.done()
