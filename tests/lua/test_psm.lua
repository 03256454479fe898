-- test_psm: propensity-score matching (spillover.psm): the propensity model
-- against closed forms, every matching rule against a brute-force
-- re-implementation on the fitted scores, the identities (all controls as
-- neighbours = difference in means; the raw balance table = direct means),
-- psmatch2's standard error by hand, a simulated ATT, PSM-DID as a weighted
-- 2x2 DID, matching by period, and the errors.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local psm = require "spillover.psm"

-- Confounded data: treatment more likely with x1, less with x2; effect 1.5.
local function simulate(n, seed)
  local r = sp.rng(seed)
  local x1, x2, t, y, g = {}, {}, {}, {}, {}
  for i = 1, n do
    x1[i], x2[i] = r:normal(), r:normal()
    local p = 1 / (1 + math.exp(-(-0.5 + 0.8 * x1[i] - 0.5 * x2[i])))
    t[i] = r:uniform() < p and 1 or 0
    y[i] = 1 + 2 * x1[i] + x2[i] + 1.5 * t[i] + r:normal()
    g[i] = 2000 + i % 2
  end
  return sp.frame { x1 = x1, x2 = x2, t = t, y = y, g = g }, t, y
end

local d, treat, y = simulate(1500, 11)
local n = d:nrow()

-- ---- the propensity model -------------------------------------------------------------------

do
  -- One binary covariate: the ML estimates are the cell log odds (probit: quantiles).
  local x, t = {}, {}
  local cells = { { 0, 0, 30 }, { 0, 1, 10 }, { 1, 0, 15 }, { 1, 1, 25 } }
  for _, c in ipairs(cells) do for _ = 1, c[3] do x[#x + 1], t[#t + 1] = c[1], c[2] end end
  local dd = sp.frame { x = x, t = t }
  local lg = psm.psm(dd, "t ~ x", { common = false }).psm.models[1].b
  T.near(lg[1], math.log(10 / 30), 1e-9, "logit intercept = log odds at x = 0")
  T.near(lg[2], math.log(25 / 15) - math.log(10 / 30), 1e-9, "logit slope = log odds ratio")
  local pb = psm.psm(dd, "t ~ x", { link = "probit" }).psm.models[1].b
  T.near(pb[1], sp.dist.qnorm(10 / 40), 1e-9, "probit intercept = qnorm(P(t | x = 0))")
  T.near(pb[2], sp.dist.qnorm(25 / 40) - sp.dist.qnorm(10 / 40), 1e-9, "probit slope")
end

local fit = psm.psm(d, "t ~ x1 + x2", { outcome = "y" })
local P = fit.psm
do
  -- The score of the logit likelihood vanishes at the estimates.
  local g = { 0, 0, 0 }
  local x1, x2 = d.x1:tovector(), d.x2:tovector()
  for i = 1, n do
    local e = treat[i] - P.pscore[i]
    g[1], g[2], g[3] = g[1] + e, g[2] + e * x1[i], g[3] + e * x2[i]
  end
  T.check(math.abs(g[1]) + math.abs(g[2]) + math.abs(g[3]) < 1e-8, "logit: X'(t - p) = 0 at the estimates")
  T.check(#P.models == 1 and P.models[1].iterations < 15, "one propensity model, converged")
end

-- ---- matching rules against brute force ----------------------------------------------------

local function controls_by_distance(p, t, used)
  local c = {}
  for r = 1, n do if treat[r] == 0 and not (used and used[r]) then c[#c + 1] = r end end
  table.sort(c, function(a, b)
    local da, db = math.abs(p[a] - p[t]), math.abs(p[b] - p[t])
    if da ~= db then return da < db end
    if p[a] ~= p[b] then return p[a] < p[b] end
    return a < b
  end)
  return c
end

local function treated_rows(p, descending)
  local tr = {}
  for r = 1, n do if treat[r] == 1 then tr[#tr + 1] = r end end
  table.sort(tr, function(a, b)
    if p[a] ~= p[b] then if descending then return p[a] > p[b] end return p[a] < p[b] end
    return a < b
  end)
  return tr
end

-- Expected {treated row -> {control rows}} by brute force.
local function brute_nearest(p, k, caliper, replace, descending)
  local out, used = {}, {}
  for _, t in ipairs(treated_rows(p, descending)) do
    local c = controls_by_distance(p, t, not replace and used or nil)
    local m = {}
    for i = 1, math.min(k, #c) do
      if math.abs(p[c[i]] - p[t]) < caliper then m[#m + 1] = c[i] end
    end
    if #m > 0 then out[t] = m end
    if not replace then for _, r in ipairs(m) do used[r] = true end end
  end
  return out
end

local function same_matches(f, want, what)
  local bad = 0
  for r = 1, n do
    if treat[r] == 1 then
      local got = f.psm.matches[r]
      local w = want[r]
      if (got == nil) ~= (w == nil) then bad = bad + 1
      elseif got then
        if #got ~= #w then bad = bad + 1 else
          for i = 1, #w do if got[i].row ~= w[i] then bad = bad + 1 end end
        end
      end
    end
  end
  T.check(bad == 0, what, bad .. " differences")
end

same_matches(fit, brute_nearest(P.pscore, 1, math.huge, true), "1-NN with replacement = brute force")
for _, case in ipairs({ { k = 3 }, { k = 2, caliper = 0.002 }, { k = 1, replace = false }, { k = 3, replace = false },
  { k = 1, replace = false, order = "descending" }, { k = 2, replace = false, caliper = 0.01 } }) do
  local f = psm.psm(d, "t ~ x1 + x2", case)
  local label = string.format("k = %d%s%s%s = brute force", case.k, case.caliper and (", caliper " .. case.caliper) or "",
    case.replace == false and ", without replacement" or "", case.order and (", " .. case.order) or "")
  same_matches(f, brute_nearest(f.psm.pscore, case.k, case.caliper or math.huge, case.replace ~= false,
    case.order == "descending"), label)
  -- weights: each match 1/m; a control's weight the sum of its shares
  local w = {}
  for _, m in pairs(f.psm.matches) do for _, g in ipairs(m) do w[g.row] = (w[g.row] or 0) + 1 / #m end end
  local ok = true
  for r = 1, n do if treat[r] == 0 and math.abs((w[r] or 0) - (f.psm.weight[r] or 0)) > 1e-12 then ok = false end end
  T.check(ok, label:gsub(" = brute force", "") .. ": control weights = summed shares")
end

do
  -- Ties: two controls at the same distance; with ties both are matched, 1/2 each.
  local dd = sp.frame { t = { 1, 0, 0, 0, 1, 0, 0 }, x = { 0, 0, 0, 1, 2, 3, 1.5 } }
  local f = psm.psm(dd, "t ~ x", { ties = true })
  T.check(#f.psm.matches[1] == 2 and f.psm.matches[1][1].row == 2 and f.psm.matches[1][2].row == 3,
    "ties: both controls at the minimal distance")
  T.near(f.psm.weight[2], 0.5, 1e-15, "ties: each gets half")
  local g = psm.psm(dd, "t ~ x")
  T.check(#g.psm.matches[1] == 1 and g.psm.matches[1][1].row == 2, "no ties: the earlier row of two identical scores")
end

-- Radius and kernel weights against brute force.
for _, case in ipairs({ { method = "radius", caliper = 0.01 }, { method = "kernel" }, { method = "kernel", bandwidth = 0.02 } }) do
  local f = psm.psm(d, "t ~ x1 + x2", case)
  local p = f.psm.pscore
  local h = case.caliper or case.bandwidth or 0.06
  local w, on = {}, 0
  for t = 1, n do
    if treat[t] == 1 then
      local k, s = {}, 0
      for c = 1, n do
        local dif = p[c] - p[t]
        if treat[c] == 0 and math.abs(dif) <= h then
          k[c] = case.method == "radius" and 1 or (1 - (dif / h) ^ 2)
          s = s + k[c]
        end
      end
      if s > 0 then on = on + 1; for c, v in pairs(k) do w[c] = (w[c] or 0) + v / s end end
    end
  end
  local worst = 0
  for r = 1, n do if treat[r] == 0 then worst = math.max(worst, math.abs((w[r] or 0) - (f.psm.weight[r] or 0))) end end
  local label = case.method .. (case.caliper and (" " .. case.caliper) or "") .. (case.bandwidth and (" bw " .. case.bandwidth) or "")
  T.check(worst < 1e-12 and on == f.psm.n_treated_matched, label .. ": weights = brute force", tostring(worst))
end

-- Common support: treated outside [min, max] of the controls' scores are dropped.
do
  local f = psm.psm(d, "t ~ x1 + x2", { common = true })
  local p = f.psm.pscore
  local lo, hi, off = math.huge, -math.huge, 0
  for r = 1, n do if treat[r] == 0 then lo, hi = math.min(lo, p[r]), math.max(hi, p[r]) end end
  for r = 1, n do if treat[r] == 1 and (p[r] < lo or p[r] > hi) then off = off + 1 end end
  T.check(off > 0 and f.psm.n_off_support == off, "common: treated outside the controls' range off support",
    string.format("%d vs %d", off, f.psm.n_off_support))
end

-- ---- identities ---------------------------------------------------------------------------

do
  local n1, n0, s1, s0 = 0, 0, 0, 0
  for r = 1, n do
    if treat[r] == 1 then n1, s1 = n1 + 1, s1 + y[r] else n0, s0 = n0 + 1, s0 + y[r] end
  end
  local all = psm.psm(d, "t ~ x1 + x2", { outcome = "y", k = n0 })
  T.near(all:coef().ATT, s1 / n1 - s0 / n0, 1e-10, "k = all controls: ATT = difference in means")
  local ok = true
  for r = 1, n do if treat[r] == 0 and math.abs(all.psm.weight[r] - n1 / n0) > 1e-9 then ok = false end end
  T.check(ok, "k = all controls: every control weighs N1 / N0")
  -- The balance table of the raw sample is the direct means, variances and t.
  local x1 = d.x1:tovector()
  local m1, m0, c1, c0 = 0, 0, 0, 0
  for r = 1, n do if treat[r] == 1 then m1 = m1 + x1[r] else m0 = m0 + x1[r] end end
  m1, m0 = m1 / n1, m0 / n0
  for r = 1, n do if treat[r] == 1 then c1 = c1 + (x1[r] - m1) ^ 2 else c0 = c0 + (x1[r] - m0) ^ 2 end end
  local b = fit.psm.balance[1]
  T.check(b.variable == "x1", "balance row 1 is x1")
  T.near(b.treated_before, m1, 1e-12, "balance: treated mean before")
  T.near(b.control_before, m0, 1e-12, "balance: control mean before")
  T.near(b.bias_before, 100 * (m1 - m0) / math.sqrt((c1 / (n1 - 1) + c0 / (n0 - 1)) / 2), 1e-12, "balance: standardised bias before")
  local sp2 = (c1 + c0) / (n1 + n0 - 2)
  T.near(b.t_before, (m1 - m0) / math.sqrt(sp2 * (1 / n1 + 1 / n0)), 1e-12, "balance: t before = two-sample t")
  -- After: treated mean over the matched, controls weighted, bias over the raw SDs.
  local a1, a0, w0 = 0, 0, 0
  for r = 1, n do
    if treat[r] == 1 and P.support[r] then a1 = a1 + x1[r] elseif treat[r] == 0 and (P.weight[r] or 0) > 0 then
      a0, w0 = a0 + P.weight[r] * x1[r], w0 + P.weight[r] end
  end
  T.near(b.control_after, a0 / w0, 1e-12, "balance: weighted control mean after")
  T.near(b.bias_after, 100 * (a1 / P.n_treated_matched - a0 / w0) / math.sqrt((c1 / (n1 - 1) + c0 / (n0 - 1)) / 2), 1e-12,
    "balance: bias after over the unmatched SDs (pstest)")
  T.check(math.abs(b.bias_after) < math.abs(b.bias_before) / 5, "matching reduces the bias of x1",
    string.format("%g -> %g", b.bias_before, b.bias_after))
end

-- psmatch2's standard error, by hand.
do
  local N1, ys = 0, {}
  local m1 = 0
  for r = 1, n do if treat[r] == 1 and P.support[r] then N1 = N1 + 1; m1 = m1 + y[r]; ys[#ys + 1] = y[r] end end
  m1 = m1 / N1
  local v1 = 0
  for _, v in ipairs(ys) do v1 = v1 + (v - m1) ^ 2 end
  v1 = v1 / (N1 - 1)
  local c, m0, w2 = {}, 0, 0
  for r = 1, n do if treat[r] == 0 and (P.weight[r] or 0) > 0 then c[#c + 1] = y[r]; m0 = m0 + y[r]; w2 = w2 + P.weight[r] ^ 2 end end
  m0 = m0 / #c
  local v0 = 0
  for _, v in ipairs(c) do v0 = v0 + (v - m0) ^ 2 end
  v0 = v0 / (#c - 1)
  T.near(fit:se().ATT, math.sqrt(v1 / N1 + v0 * w2 / N1 ^ 2), 1e-12, "ATT standard error = psmatch2's formula")
  -- The simulated effect is 1.5; the raw difference is far from it.
  local att = fit:coef().ATT
  T.check(math.abs(att - 1.5) < 3 * fit:se().ATT, "simulated ATT 1.5 within 3 SE", string.format("%g (se %g)", att, fit:se().ATT))
  local raw = psm.psm(d, "t ~ x1 + x2", { outcome = "y", k = P.n_controls })
  T.check(raw:coef().ATT - 1.5 > 0.5, "the raw difference is biased upwards", tostring(raw:coef().ATT))
end

-- ---- by period and PSM-DID ----------------------------------------------------------------------

do
  local f = psm.psm(d, "t ~ x1 + x2", { by = "g", outcome = "y" })
  local g = d.g:tovector()
  local cross = 0
  for t, m in pairs(f.psm.matches) do for _, c in ipairs(m) do if g[c.row] ~= g[t] then cross = cross + 1 end end end
  T.check(#f.psm.models == 2 and f.psm.models[1].group == "2001" and cross == 0, "by = g: one model per period, matches within it")
end

do
  -- A two-period panel: units matched on baseline covariates; the DID on
  -- the matched sample equals the weighted 2x2 difference of cell means.
  local r = sp.rng(5)
  local id, year, x, t, yy, post = {}, {}, {}, {}, {}, {}
  for i = 1, 400 do
    local xi = r:normal()
    local ti = r:uniform() < 1 / (1 + math.exp(-xi)) and 1 or 0
    for p = 0, 1 do
      id[#id + 1], year[#year + 1], x[#x + 1], t[#t + 1], post[#post + 1] = i, 2010 + p, xi, ti, p
      yy[#yy + 1] = xi + 0.5 * p + ti * 0.3 + 2 * ti * p + r:normal()
    end
  end
  local pd = sp.frame { id = id, year = year, x = x, t = t, y = yy, post = post }
  pd:panel { entity = "id", time = "year" }
  local f = psm.psm(pd, "t ~ x", { outcome = "y", by = "year", did = { time = "year", post = 2011 } })
  T.check(f.names[1] == "psm_did" and f.did ~= nil, "PSM-DID: the did coefficient first")
  local w = f.psm.weight
  local s, c = {}, {}
  for i = 1, pd:nrow() do
    local wi = w[i] or 0
    if wi > 0 then
      local key = t[i] .. post[i]
      s[key], c[key] = (s[key] or 0) + wi * yy[i], (c[key] or 0) + wi
    end
  end
  local function m(k) return s[k] / c[k] end
  T.near(f:coef().psm_did, (m("11") - m("10")) - (m("01") - m("00")), 1e-9, "PSM-DID = weighted 2x2 DID of cell means")
  T.check(math.abs(f:coef().psm_did - 2) < 4 * f:se().psm_did, "PSM-DID near the simulated 2",
    string.format("%g (%g)", f:coef().psm_did, f:se().psm_did))
  T.check(f.did.vcov_label and f.did.vcov_label:find("id") ~= nil, "PSM-DID clusters by the panel entity", tostring(f.did.vcov_label))
  local f2 = psm.psm(pd, "t ~ x", { outcome = "y", by = "year", did = { post = "post" } })
  T.near(f2:coef().psm_did, f:coef().psm_did, 1e-9, "post as a column without time effects: same DID")
end

-- ---- errors --------------------------------------------------------------------------------------

T.checkerr("psm: treatment 'y' must be 0 or 1; row 1 has", psm.psm, d, "y ~ x1")
T.checkerr("psm: unknown option 'kk'", psm.psm, d, "t ~ x1", { kk = 2 })
T.checkerr("psm: no treated row is on the common support or has a control within the caliper", psm.psm, d, "t ~ x1 + x2",
  { caliper = 1e-12 })
T.checkerr("psm: method = \"radius\" needs caliper", psm.psm, d, "t ~ x1", { method = "radius" })
T.checkerr("psm: k, replace and ties apply to method = \"nearest\"", psm.psm, d, "t ~ x1", { method = "kernel", k = 2 })
T.checkerr("psm: did needs outcome", psm.psm, d, "t ~ x1", { did = { post = "g" } })
T.checkerr("psm: link must be \"logit\" or \"probit\"", psm.psm, d, "t ~ x1", { link = "cloglog" })
do
  -- Perfect separation: x > 0 exactly when treated.
  local x, t = {}, {}
  for i = 1, 40 do x[i] = i - 20.5; t[i] = x[i] > 0 and 1 or 0 end
  T.checkerr("separate treated and controls %(perfect or quasi%-complete separation%)", psm.psm, sp.frame { x = x, t = t }, "t ~ x")
  -- Non-convergence: one iteration allowed.
  T.checkerr("did not converge in 1 iterations", psm.psm, d, "t ~ x1 + x2", { maxiter = 1 })
  -- A period without controls.
  local gg = d.g:tovector()
  local tt = {}
  for i = 1, n do tt[i] = gg[i] == 2001 and 1 or treat[i] end
  local d2 = d:copy()
  d2.t = tt
  T.checkerr("psm: g = 2001: no control rows", psm.psm, d2, "t ~ x1", { by = "g" })
end

T.done()
