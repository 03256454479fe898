-- test_did_event: TWFE (static, dynamic), the event study (window, bins,
-- pre-trend test, uniform bands, plot), Sun & Abraham, imputation / two-stage
-- and the Bacon decomposition: published digits (fixest sunab on base_stagg,
-- did2s on df_het, bacondecomp on castle), exact identities, a simulated
-- staggered panel with heterogeneous effects, and bad input.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local E = require "spillover.did_event"
local CS = require "spillover.did_cs"

local EXT = "tests/reference/data/external/"

-- ---- simulated panels ---------------------------------------------------------------

-- A balanced panel: units 1..N, periods 1..TT, cohorts[i] (0 = never), y =
-- unit effect + period effect + effect(g, e) + noise(sd); x uncorrelated noise.
-- pre_trend: a linear trend of the treated units; first_e: the first event
-- time with an effect (default 0; -1 for anticipation).
local function panel(N, TT, cohort_of, effect, sd, seed, pre_trend, first_e)
  local r = sp.rng(seed)
  local id, t, g, y, x, tau = {}, {}, {}, {}, {}, {}
  local ufe = {}
  for i = 1, N do ufe[i] = r:normal() end
  for i = 1, N do
    local gi = cohort_of(i)
    for s = 1, TT do
      local e = gi ~= 0 and s - gi or nil
      local te = (e and e >= (first_e or 0)) and effect(gi, e) or 0
      local trend = (pre_trend and gi ~= 0) and pre_trend * s or 0
      id[#id + 1], t[#t + 1], g[#g + 1] = i, s, gi
      x[#x + 1] = r:normal()
      tau[#tau + 1] = te
      y[#y + 1] = ufe[i] + 0.3 * s + te + trend + sd * r:normal()
    end
  end
  local d = sp.frame({ id = id, t = t, g = g, y = y, x = x, tau = tau })
  d:panel { entity = "id", time = "t" }
  return d
end

local function mean_tau_treated(d)
  local g, t, tau = d.g:totable(), d.t:totable(), d.tau:totable()
  local s, n = 0, 0
  for i = 1, #g do if g[i] ~= 0 and t[i] >= g[i] then s, n = s + tau[i], n + 1 end end
  return s / n
end

-- ---- fixest: sunab on base_stagg ------------------------------------------------------

local stagg = sp.read_csv(EXT .. "fixest_base_stagg.csv")
do
  local g = stagg.year_treated:totable()
  for i = 1, #g do if g[i] == 10000 then g[i] = 0 end end  -- fixest's never-treated code
  stagg.cohort = g
  stagg:panel { entity = "id", time = "year" }
end

do
  -- feols(y ~ sunab(year_treated, year) | id + year, base_stagg), printed in
  -- lrberge/fixest issue #287 (clustered by id).
  local sa = E.sa(stagg, "y ~ 1", { cohort = "cohort" })
  local want = {
    { -9, 2.343297, 1.122482 }, { -8, -0.866391, 1.186767 }, { -7, -0.345837, 0.713641 },
    { -6, -0.471113, 0.731894 }, { -5, -0.796544, 0.527162 }, { -4, -0.280033, 0.429222 },
    { -3, -0.315766, 0.528401 }, { -2, 0.241325, 0.457825 },
  }
  for _, w in ipairs(want) do
    local name = "event::" .. w[1]
    T.check(string.format("%.6f", sa:coef()[name]) == string.format("%.6f", w[2]),
      "sa base_stagg " .. name .. " = fixest sunab to the printed digits", tostring(sa:coef()[name]))
    -- (fixest's K keeps one level of the id factor nested in the cluster:
    -- with K one smaller these SEs were 6e-4 off the printed digits)
    T.check(string.format("%.6f", sa:se()[name]) == string.format("%.6f", w[3]),
      "sa base_stagg se " .. name .. " = fixest sunab to the printed digits", tostring(sa:se()[name]))
  end
  T.check(sa.event_study[9].ref and sa.event_study[9].e == -1 and sa.event_study[9].att == 0,
    "sa: the reference period -1 is a row at 0")
  T.check(#sa.att_gt > 0 and sa.att_gt[1].group and sa.att_gt[1].se, "sa: per-cohort cells in att_gt")
  T.check(sa.pretrend and sa.pretrend.df1 == 8, "sa: pre-trend test on the 8 leads")
  local p = sa:plot("/tmp/spillover_test_sa.png")
  T.check(p and (T.read("/tmp/spillover_test_sa.png") or ""):sub(2, 4) == "PNG", "sa: fit:plot writes a PNG")
end

-- ---- did2s: df_het (static) -----------------------------------------------------------

do
  -- did2s(df_het, yname = "dep_var", first_stage = ~ 0 | state + year,
  --       second_stage = ~ i(treat, ref = FALSE), treatment = "treat", cluster_var = "state")
  -- prints 2.152*** (0.0476) in the did2s README.
  local het = sp.read_csv(EXT .. "did2s_df_het.csv")
  het:panel { entity = "unit", time = "year" }
  local im = E.imputation(het, "dep_var ~ 1", { cohort = "g", fe = "state", cluster = "state" })
  T.check(string.format("%.3f", im.overall.att) == "2.152", "imputation df_het ATT 2.152 (did2s README)",
    tostring(im.overall.att))
  T.check(string.format("%.4f", im.overall.se) == "0.0476", "imputation df_het se 0.0476 (did2s README)",
    tostring(im.overall.se))
  T.check(im.stats.n_clusters == 40, "imputation df_het: 40 state clusters")
end

-- ---- imputation = two-stage regression (did2s) on base_stagg ----------------------------

do
  local im = E.imputation(stagg, "y ~ x1", { cohort = "cohort" })
  -- did2s(base_stagg, first_stage = ~ x1 | id + year, second_stage = ~ i(treat), cluster_var = "id")
  -- as printed at kevinli03.github.io/did/did2s.html: -1.091429 (0.4763818).
  T.near(im.overall.att, -1.091429, 1e-6, "imputation base_stagg ATT = did2s")
  T.near(im.overall.se, 0.4763818, 1e-6, "imputation base_stagg se = did2s (two-stage GMM, no dof factor)")
  -- The two stages by hand: OLS with FE on the untreated rows, predictions
  -- for the treated rows, mean residual.
  local g, yr = stagg.cohort:totable(), stagg.year:totable()
  local untreated, treated = {}, {}
  for i = 1, #g do
    if g[i] == 0 or yr[i] < g[i] then untreated[#untreated + 1] = i else treated[#treated + 1] = i end
  end
  local first = sp.ols(stagg:take(untreated), "y ~ x1 | id + year")
  local sub = stagg:take(treated)
  local yhat, yv = first:predict(sub), sub.y
  local s = 0
  for i = 1, #treated do s = s + yv[i] - yhat:get(i, 1) end
  T.near(im.overall.att, s / #treated, 1e-10, "imputation ATT = two-stage regression by hand")
  local e0 = 0
  local n0 = 0
  local tt = sub.time_to_treatment:totable()
  for i = 1, #treated do if tt[i] == 0 then e0, n0 = e0 + yv[i] - yhat:get(i, 1), n0 + 1 end end
  T.near(im:coef()["event::0"], e0 / n0, 1e-10, "imputation event::0 = mean two-stage residual at e = 0")

  -- Unbalanced: drop some rows, the identity still holds.
  local keep = {}
  for i = 1, stagg:nrow() do if i % 7 ~= 3 then keep[#keep + 1] = i end end
  local ub = stagg:take(keep)
  local imu = E.imputation(ub, "y ~ x1", { cohort = "cohort" })
  local gu, yu = ub.cohort:totable(), ub.year:totable()
  local un, tr = {}, {}
  for i = 1, #gu do if gu[i] == 0 or yu[i] < gu[i] then un[#un + 1] = i else tr[#tr + 1] = i end end
  local f1 = sp.ols(ub:take(un), "y ~ x1 | id + year")
  local subu = ub:take(tr)
  local yh, yy = f1:predict(subu), subu.y
  local su, nu = 0, 0
  for i = 1, #tr do
    local v = yy[i] - yh:get(i, 1)
    if v == v then su, nu = su + v, nu + 1 end
  end
  T.check(nu < #tr or nu == imu.stats.n_treated, "imputation unbalanced: treated rows counted")
  T.near(imu.overall.att, su / nu, 1e-10, "imputation unbalanced = two-stage regression by hand")
  local sau, esu = E.sa(ub, "y ~ x1", { cohort = "cohort" }), E.event_study(ub, "y ~ x1", { cohort = "cohort" })
  T.check(sau.nobs == ub:nrow() and esu.nobs == ub:nrow() and sau.overall.att == sau.overall.att, "unbalanced: sa and event study run",
    string.format("%d, %d of %d rows", sau.nobs, esu.nobs, ub:nrow()))
end

-- ---- bacondecomp: castle ----------------------------------------------------------------

do
  local castle = sp.read_csv(EXT .. "bacondecomp_castle.csv")
  -- The cohort is the first year with post = 1 (post is absorbing in these data).
  local post, st, yr = castle.post:totable(), castle.state, castle.year:totable()
  local first = {}
  for i = 1, #post do if post[i] == 1 then first[st[i]] = math.min(first[st[i]] or math.huge, yr[i]) end end
  local g = {}
  for i = 1, #post do g[i] = first[st[i]] or 0 end
  castle.cohort = g
  castle:panel { entity = "state", time = "year" }
  local b = E.bacon(castle, "l_homicide ~ 1", { cohort = "cohort" })
  -- bacon(l_homicide ~ post, data = bacondecomp::castle, id_var = "state", time_var = "year")
  local want = {
    ["Earlier vs Later Treated"] = { "0.05976", "-0.00554" },
    ["Later vs Earlier Treated"] = { "0.03190", "0.07032" },
    ["Treated vs Untreated"] = { "0.90834", "0.08796" },
  }
  local seen = 0
  for _, t in ipairs(b.by_type) do
    local w = want[t.type]
    if w then
      seen = seen + 1
      T.check(string.format("%.5f", t.weight) == w[1], "bacon castle weight " .. t.type, tostring(t.weight))
      T.check(string.format("%.5f", t.avg_est) == w[2], "bacon castle avg_est " .. t.type, tostring(t.avg_est))
    end
  end
  T.check(seen == 3 and #b.by_type == 3, "bacon castle: the three comparison types")
  local sw, sum = 0, 0
  for _, c in ipairs(b.two_by_twos) do sw, sum = sw + c.weight, sum + c.weight * c.estimate end
  T.near(sw, 1, 1e-12, "bacon: weights sum to 1")
  local tw = E.twfe(castle, "l_homicide ~ 1", { cohort = "cohort" })
  T.near(sum, tw.overall.att, 1e-10, "bacon: weighted 2x2 sum = TWFE coefficient")
  T.check(string.format("%.4f", tw.overall.att) == "0.0818", "bacon castle: TWFE 0.0818 (bacondecomp vignette)")
  T.check(b:plot("/tmp/spillover_test_bacon.png") and T.read("/tmp/spillover_test_bacon.png"), "bacon: scatter plot")
  local all_but_one = {}
  for i = 2, castle:nrow() do all_but_one[#all_but_one + 1] = i end
  T.checkerr("remove post from the formula", E.bacon, castle, "l_homicide ~ post", { cohort = "cohort" })
  T.checkerr("balanced panel", E.bacon, castle:take(all_but_one), "l_homicide ~ 1", { cohort = "cohort" })
end

do
  -- Always-treated units are a timing group treated throughout; the identity holds.
  local d = panel(40, 6, function(i) return i <= 8 and 1 or (i <= 20 and 3 or (i <= 30 and 5 or 0)) end,
    function(g, e) return 1 + 0.5 * e + 0.2 * g end, 0.5, 11)
  local b = E.bacon(d, "y ~ 1", { cohort = "g" })
  local s, always = 0, false
  for _, c in ipairs(b.two_by_twos) do
    s = s + c.weight * c.estimate
    if c.type == "Later vs Always Treated" then always = true end
  end
  T.check(always, "bacon: always-treated comparisons typed")
  T.near(s, E.twfe(d, "y ~ 1", { cohort = "g" }).overall.att, 1e-10, "bacon with always-treated = TWFE")
end

-- ---- identity: two periods, one cohort ----------------------------------------------------

do
  local d = panel(60, 2, function(i) return i <= 25 and 2 or 0 end, function() return 1.5 end, 1, 3)
  local g, t, y = d.g:totable(), d.t:totable(), d.y:totable()
  local m = { [0] = { 0, 0 }, [2] = { 0, 0 } }
  local n = { [0] = 0, [2] = 0 }
  for i = 1, #g do m[g[i]][t[i]] = m[g[i]][t[i]] + y[i]; if t[i] == 1 then n[g[i]] = n[g[i]] + 1 end end
  local did = (m[2][2] - m[2][1]) / n[2] - (m[0][2] - m[0][1]) / n[0]
  local tw = E.twfe(d, "y ~ 1", { cohort = "g" })
  local sa = E.sa(d, "y ~ 1", { cohort = "g" })
  local im = E.imputation(d, "y ~ 1", { cohort = "g" })
  local cs = CS.cs(d, "y ~ 1", { cohort = "g", control = "never" })
  T.near(tw.overall.att, did, 1e-10, "2x2: twfe = DID of means")
  T.near(sa.overall.att, did, 1e-10, "2x2: sa = DID of means")
  T.near(im.overall.att, did, 1e-10, "2x2: imputation = DID of means")
  T.near(cs.overall.att, did, 1e-10, "2x2: cs = DID of means")
end

-- ---- sa = cs dynamic aggregation (never-treated controls, no covariates) -----------------

do
  local d = panel(90, 8, function(i) return i <= 20 and 3 or (i <= 45 and 5 or (i <= 60 and 6 or 0)) end,
    function(g, e) return 0.5 + 0.4 * e * (g == 3 and 2 or 1) end, 1, 5)
  local sa = E.sa(d, "y ~ 1", { cohort = "g" })
  local cs = CS.cs(d, "y ~ 1", { cohort = "g", control = "never", base = "universal" })
  local agg = cs:aggregate("dynamic")
  local n = 0
  for _, r in ipairs(agg.rows) do
    local b = sa:coef()["event::" .. r.e]
    if b then
      n = n + 1
      if math.abs(b - r.att) > 1e-10 * math.max(1, math.abs(r.att)) then
        T.check(false, "sa = cs dynamic at e = " .. r.e, string.format("%.15g vs %.15g", b, r.att))
      end
    end
  end
  T.check(n == #sa.event_study - 1 and n >= 10, "sa = cs dynamic (universal base) at every event time", n .. " compared")
  -- and directly from cohort means: e = 1
  local g, t, y = d.g:totable(), d.t:totable(), d.y:totable()
  local sum, cnt = {}, {}
  for i = 1, #g do
    local k = string.format("%d:%d", g[i], t[i])
    sum[k], cnt[k] = (sum[k] or 0) + y[i], (cnt[k] or 0) + 1
  end
  local function key(gg, tt) return string.format("%d:%d", gg, tt) end
  local function mu(gg, tt) return sum[key(gg, tt)] / cnt[key(gg, tt)] end
  local num, den = 0, 0
  for _, gg in ipairs({ 3, 5, 6 }) do
    local att = (mu(gg, gg + 1) - mu(gg, gg - 1)) - (mu(0, gg + 1) - mu(0, gg - 1))
    local ng = cnt[key(gg, 1)]
    num, den = num + ng * att, den + ng
  end
  T.near(sa:coef()["event::1"], num / den, 1e-10, "sa event::1 = cohort-share average of cohort-mean DIDs")
end

-- ---- simulated staggered panel with heterogeneous effects --------------------------------

do
  local d = panel(300, 10, function(i) return i <= 100 and 3 or (i <= 200 and 6 or (i <= 240 and 8 or 0)) end,
    function(g, e) return (g == 3 and 3 or 1) * (1 + 0.6 * e) end, 1, 7)
  local truth = mean_tau_treated(d)
  local tw = E.twfe(d, "y ~ x", { cohort = "g" })
  local sa = E.sa(d, "y ~ x", { cohort = "g" })
  local im = E.imputation(d, "y ~ x", { cohort = "g" })
  T.check(math.abs(tw.overall.att - truth) > 5 * tw.overall.se, "simulated: TWFE is biased (> 5 se from the truth)",
    string.format("twfe %.3f truth %.3f se %.3f", tw.overall.att, truth, tw.overall.se))
  T.check(math.abs(sa.overall.att - truth) < 3 * sa.overall.se, "simulated: sa ATT within 3 se of the truth",
    string.format("sa %.3f truth %.3f se %.3f", sa.overall.att, truth, sa.overall.se))
  T.check(math.abs(im.overall.att - truth) < 3 * im.overall.se, "simulated: imputation ATT within 3 se of the truth",
    string.format("imputation %.3f truth %.3f se %.3f", im.overall.att, truth, im.overall.se))
  -- Event time 2: the truth is the mean effect at e = 2.
  local g, t, tau = d.g:totable(), d.t:totable(), d.tau:totable()
  local s, n = 0, 0
  for i = 1, #g do if g[i] ~= 0 and t[i] - g[i] == 2 then s, n = s + tau[i], n + 1 end end
  for _, f in ipairs({ sa, im }) do
    local b, se = f:coef()["event::2"], f:se()["event::2"]
    T.check(math.abs(b - s / n) < 3 * se, f.method .. ": event::2 within 3 se of the truth",
      string.format("%.3f vs %.3f (se %.3f)", b, s / n, se))
  end
  -- control = "last": no never-treated rows needed; periods from the last cohort on are dropped.
  local last = E.sa(d, "y ~ x", { cohort = "g", control = "last" })
  T.check(last.nobs < sa.nobs and math.abs(last.overall.att - sa.overall.att) < 1, "sa control = last runs",
    string.format("%d rows, att %.3f", last.nobs, last.overall.att))
end

-- ---- anticipation: effects from e = -1 ------------------------------------------------------

do
  local d = panel(200, 8, function(i) return i <= 70 and 4 or (i <= 140 and 6 or 0) end,
    function(_, e) return 1 + 0.5 * e end, 1, 21, nil, -1)
  local g, t, tau = d.g:totable(), d.t:totable(), d.tau:totable()
  local s, n, cnt = 0, 0, {}
  for i = 1, #g do
    local e = g[i] ~= 0 and math.tointeger(t[i] - g[i]) or nil
    if e and e >= 0 then s, n = s + tau[i], n + 1 end
    if e then cnt[e] = (cnt[e] or 0) + 1 end
  end
  local im = E.imputation(d, "y ~ 1", { cohort = "g", anticipation = 1 })
  local sa = E.sa(d, "y ~ 1", { cohort = "g", anticipation = 1 })
  local num, den = 0, 0
  for e, c in pairs(cnt) do
    if e >= 0 then num, den = num + c * im:coef()["event::" .. e], den + c end
  end
  T.near(im.overall.att, num / den, 1e-10, "imputation anticipation: ATT = average of the effects at e >= 0")
  for _, f in ipairs({ im, sa }) do
    T.check(math.abs(f.overall.att - s / n) < 3 * f.overall.se, f.method .. " anticipation = 1: ATT within 3 se",
      string.format("%.3f vs %.3f", f.overall.att, s / n))
    T.check(math.abs(f:coef()["event::-1"] - 0.5) < 3 * f:se()["event::-1"], f.method .. ": the anticipation effect at e = -1")
  end
  local ref
  for _, r in ipairs(sa.event_study) do if r.ref then ref = r.e end end
  T.check(ref == -2, "sa anticipation = 1: reference period -2")
end

-- ---- event study: window, bins, pre-trend test, bands, plot ------------------------------

do
  local flat = panel(120, 10, function(i) return i <= 40 and 4 or (i <= 80 and 7 or 0) end,
    function(_, e) return 1 + 0.2 * e end, 1, 9)
  local es = E.event_study(flat, "y ~ x", { cohort = "g", window = { -3, 2 } })
  T.check(es.window[1] == -3 and es.window[2] == 2 and #es.event_study == 6, "event study: one row per event time in the window")
  local binned = false
  for _, n in ipairs(es.notes) do if n:find("endpoint bins", 1, true) then binned = true end end
  T.check(binned and es.event_study[1].binned == "<=" and es.event_study[6].binned == ">=",
    "event study: end bins pooled and noted")
  T.check(es.nobs == 1200, "event study: binning keeps every row")
  local dropped = E.event_study(flat, "y ~ x", { cohort = "g", window = { -3, 2 }, bin = false })
  local n_out = 0
  for i, gi in ipairs(flat.g:totable()) do
    local e = gi ~= 0 and flat.t[i] - gi or nil
    if e and (e < -3 or e > 2) then n_out = n_out + 1 end
  end
  T.check(dropped.nobs == 1200 - n_out and n_out > 0, "event study bin = false: rows outside the window dropped",
    dropped.nobs .. " rows")
  -- Parallel trends: the pre-trend test does not reject; a pre-trend makes it reject.
  T.check(es.pretrend.df1 == 2 and es.pretrend.pvalue > 0.01, "pre-trend test: 2 leads, no rejection under parallel trends",
    tostring(es.pretrend.pvalue))
  local trending = panel(120, 10, function(i) return i <= 40 and 4 or (i <= 80 and 7 or 0) end,
    function(_, e) return 1 + 0.2 * e end, 1, 9, 0.4)
  local es2 = E.event_study(trending, "y ~ x", { cohort = "g", window = { -3, 2 } })
  T.check(es2.pretrend.pvalue < 1e-4, "pre-trend test rejects a pre-trend", tostring(es2.pretrend.pvalue))
  -- Uniform band: wider than pointwise, narrower than Bonferroni; the same seed gives the same value.
  local k = #es.event_study - 1
  local z = sp.dist.qt(0.975, es.df_resid)
  T.check(es.crit > z and es.crit < sp.dist.qnorm(1 - 0.025 / k) + 0.05, "uniform critical value between pointwise and Bonferroni",
    tostring(es.crit))
  local again = E.event_study(flat, "y ~ x", { cohort = "g", window = { -3, 2 } })
  T.check(again.crit == es.crit, "uniform band: same seed, same critical value")
  local other = E.event_study(flat, "y ~ x", { cohort = "g", window = { -3, 2 }, seed = 99 })
  T.check(other.crit ~= es.crit and math.abs(other.crit - es.crit) < 0.1, "uniform band: another seed, a close value")
  local r = es.event_study[5]
  T.check(r.ulo < r.lo and r.uhi > r.hi, "uniform band wider than the pointwise interval")
  T.check(es.event_study[3].ref and es.event_study[3].e == -1 and es.event_study[3].att == 0, "reference row at 0")
  local agg = es:aggregate("dynamic", { min_e = 0 })
  T.check(#agg.rows == 3 and agg.rows[1].e == 0, "aggregate(dynamic, min_e = 0)")
  T.check(es:plot({ "/tmp/spillover_test_es.png", "/tmp/spillover_test_es.svg" }) ~= nil and
    (T.read("/tmp/spillover_test_es.svg") or ""):find("uniform band", 1, true), "event study plot (PNG and SVG, bands labelled)")
  -- Dynamic TWFE = event study over the full window.
  local dyn = E.twfe(flat, "y ~ x", { cohort = "g", dynamic = true })
  local full = E.event_study(flat, "y ~ x", { cohort = "g", window = { -6, 6 } })
  T.near(dyn:coef()["event::3"], full:coef()["event::3"], 1e-12, "twfe dynamic = event study over every event time")
  -- A window wider than the panel: a note, not a silent drop.
  local wide = E.event_study(flat, "y ~ x", { cohort = "g", window = { -12, 12 } })
  local noted = false
  for _, n in ipairs(wide.notes) do if n:find("reaches beyond the event times in the data [-6, 6]", 1, true) then noted = true end end
  T.check(noted and wide.window[1] == -6 and wide.window[2] == 6, "window wider than the panel: cut, with a note")
  T.near(wide:coef()["event::5"], full:coef()["event::5"], 1e-12, "wide window = the full window")
  local im = E.imputation(flat, "y ~ x", { cohort = "g" })
  T.check(im:plot("/tmp/spillover_test_im.png") and im:aggregate("simple").overall.att == im.overall.att,
    "imputation: plot and aggregate(simple)")
end

-- ---- bad input ------------------------------------------------------------------------------

do
  local nonever = panel(30, 6, function(i) return i <= 15 and 3 or 5 end, function() return 1 end, 1, 13)
  T.checkerr("sa: control = \"never\" needs never%-treated units, but cohort column 'g' has none",
    E.sa, nonever, "y ~ 1", { cohort = "g" })
  T.checkerr("'control' must be \"never\" or \"last\"", E.sa, nonever, "y ~ 1", { cohort = "g", control = "notyet" })
  -- A cohort with one unit: estimated, with did_common's note.
  local one = panel(30, 6, function(i) return i == 1 and 3 or (i <= 15 and 5 or 0) end, function() return 1 end, 1, 17)
  for _, f in ipairs({ E.sa(one, "y ~ 1", { cohort = "g" }), E.imputation(one, "y ~ 1", { cohort = "g" }),
    E.twfe(one, "y ~ 1", { cohort = "g" }) }) do
    local noted = false
    for _, n in ipairs(f.notes) do if n:find("cohort 3 has one unit", 1, true) then noted = true end end
    T.check(noted and f.overall.att == f.overall.att, f.method .. ": a one-unit cohort is estimated, with a note")
  end
  T.checkerr("ref = 3 is outside the window", E.event_study, one, "y ~ 1", { cohort = "g", ref = 3, window = { -2, 2 } })
  T.checkerr("'window' must be {first, last}", E.event_study, one, "y ~ 1", { cohort = "g", window = { 2, -2 } })
  T.checkerr("unknown option 'windw'", E.event_study, one, "y ~ 1", { cohort = "g", windw = { -2, 2 } })
  T.checkerr("option 'window' applies to dynamic = true", E.twfe, one, "y ~ 1", { cohort = "g", window = { -2, 2 } })
  T.checkerr("either 'cluster' or 'vcov'", E.twfe, one, "y ~ 1", { cohort = "g", cluster = "id", vcov = "hc1" })
  local withD = one:copy()
  withD.D = withD.x
  T.checkerr("the formula uses a variable 'D', the name of the column this estimator adds", E.twfe, withD, "y ~ D",
    { cohort = "g" })
  local outside = sp.frame({ id = { 1, 1, 2, 2 }, t = { 1, 2, 1, 2 }, y = { 1, 2, 3, 4 }, g = { 99, 99, 0, 0 } })
  outside:panel { entity = "id", time = "t" }
  T.checkerr("cohort column 'g' has the value 99", E.sa, outside, "y ~ 1", { cohort = "g" })
  local never = panel(20, 4, function() return 0 end, function() return 1 end, 1, 19)
  for _, f in ipairs({ "sa", "imputation", "event_study", "bacon" }) do
    T.checkerr(f .. ": no treated unit: cohort column 'g' is 0 or missing everywhere", E[f], never, "y ~ 1",
      { cohort = "g" })
  end
  T.checkerr("imputation: option 'fe'", E.imputation, one, "y ~ 1", { cohort = "g", fe = "nope" })
  local holes = one:copy()
  local cl = holes.x:totable()
  cl[7] = 0 / 0
  holes.cl = cl
  T.checkerr("option 'cluster': column 'cl' is missing in row 7", E.imputation, holes, "y ~ 1", { cohort = "g", cluster = "cl" })
end

T.done()
