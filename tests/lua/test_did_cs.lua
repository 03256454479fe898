-- test_did_cs: the panel/cohort helper (spillover.did_common), Callaway &
-- Sant'Anna ATT(g,t) (spillover.did_cs) and the did facade (spillover.did):
-- mpdta against the did package's printed results, exact identities,
-- a simulated staggered panel with known effects, the bootstrap, bad input.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local C = require "spillover.did_common"

local MPDTA = "tests/reference/data/mpdta_county_teen_employment.csv"
-- Whether one of the notes matches the pattern.
local function has_note(notes, pattern)
  for _, n in ipairs(notes) do if n:find(pattern) then return true end end
  return false
end

local function mpdta()
  local d = sp.read_csv(MPDTA)
  d:panel { entity = "countyreal", time = "year" }
  return d
end

-- ---- did_common ---------------------------------------------------------------------------
do
  local d = mpdta()
  local P = C.prepare(d, "lemp ~ lpop", { cohort = "first.treat" }, "did")
  T.check(P.y == "lemp" and #P.x == 1 and P.x[1] == "lpop", "prepare: outcome and covariate names")
  T.check(P.entity == "countyreal" and P.time == "year", "prepare: panel index names")
  T.check(#P.periods == 5 and P.periods[1] == 2003 and P.periods[5] == 2007, "prepare: periods 2003..2007")
  T.check(#P.cohorts == 3 and P.cohorts[1] == 2004 and P.cohorts[2] == 2006 and P.cohorts[3] == 2007,
    "prepare: cohorts 2004, 2006, 2007")
  T.check(#P.units == 500 and P.n_never == 309 and P.balanced, "prepare: 500 units, 309 never treated, balanced")
  T.check(P.cohort_size[2004] == 20 and P.cohort_size[2006] == 40 and P.cohort_size[2007] == 131,
    "prepare: cohort sizes 20, 40, 131")
  local u = P.units[1]
  T.check(u.id == 8001 and u.cohort == 2007 and u.w == 1 and #u.rows == 5, "prepare: first unit 8001, cohort 2007")
  T.check(P.Y[u.rows[1]] == d.lemp:get(u.rows[1], 1), "prepare: outcome of a row")
  T.check(C.event_time(P, u, 1) == -4 and C.event_time(P, u, 5) == 0, "event_time: t - g")
  local never
  for _, v in ipairs(P.units) do if v.cohort == 0 then never = v; break end end
  T.check(C.event_time(P, never, 3) == nil, "event_time: nil for never treated")
  T.check(P.unit_of_row[u.rows[2]] == 1 and P.period_of_row[u.rows[2]] == 2, "prepare: unit_of_row, period_of_row")
  -- "| entity + time" is accepted (implied), another fixed effect is not.
  T.check(#C.prepare(d, "lemp ~ 1 | countyreal + year", { cohort = "first.treat" }, "did").x == 0,
    "prepare: '| entity + time' accepted")
  T.checkerr("did: .*fixed effects after '|' can only be the panel's entity 'countyreal' and time 'year'.*'treat'",
    C.prepare, d, "lemp ~ 1 | treat", { cohort = "first.treat" }, "did")
end

-- Bad input, each error naming the column or value at fault.
do
  local d = mpdta()
  local nopanel = sp.read_csv(MPDTA)
  T.checkerr("did: needs a panel index", C.prepare, nopanel, "lemp ~ 1", { cohort = "first.treat" }, "did")
  T.checkerr("did: the data have no cohort column 'first_treat'", C.prepare, d, "lemp ~ 1",
    { cohort = "first_treat" }, "did")
  T.checkerr("did: option 'cohort' must name", C.prepare, d, "lemp ~ 1", {}, "did")
  T.checkerr("unknown variable 'lemq'", C.prepare, d, "lemq ~ 1", { cohort = "first.treat" }, "did")
  -- A categorical cohort column.
  local dc = mpdta()
  local g = d["first.treat"]:totable()
  local s = {}
  for i, v in ipairs(g) do s[i] = tostring(v) end
  dc.gtext = s
  T.checkerr("did: cohort column 'gtext' is categorical", C.prepare, dc, "lemp ~ 1", { cohort = "gtext" }, "did")
  -- A cohort outside the time range: the value and the range are named.
  local dr = mpdta()
  local g2 = d["first.treat"]:totable()
  g2[1] = 2010
  dr.g2 = g2
  T.checkerr("did: cohort column 'g2' has the value 2010 %(unit 8001, row 1%), outside the time range %[2003, 2007%]",
    C.prepare, dr, "lemp ~ 1", { cohort = "g2" }, "did")
  -- A cohort that varies within a unit.
  local dv = mpdta()
  local g3 = d["first.treat"]:totable()
  g3[2] = 2006
  dv.g3 = g3
  T.checkerr("did: cohort column 'g3' varies within unit 8001: 2007 in row 1, 2006 in row 2", C.prepare, dv,
    "lemp ~ 1", { cohort = "g3" }, "did")
  -- Weights that vary within a unit, and negative anticipation.
  local dw = mpdta()
  local w = {}
  for i = 1, d:nrow() do w[i] = i end
  dw.w = w
  T.checkerr("did: weights column 'w' varies within unit 8001", C.prepare, dw, "lemp ~ 1",
    { cohort = "first.treat", weights = "w" }, "did")
  T.checkerr("did: option 'anticipation' must be an integer >= 0", C.prepare, d, "lemp ~ 1",
    { cohort = "first.treat", anticipation = -1 }, "did")
  -- A cohort with one unit is a note, and an unobserved outcome makes the panel unbalanced.
  local d1 = mpdta()
  local g4 = d["first.treat"]:totable()
  local y = d.lemp:totable()
  for r = 1, 5 do g4[r] = 2005 end
  y[7] = 0 / 0
  d1.g4, d1.lemp = g4, y
  local P = C.prepare(d1, "lemp ~ 1", { cohort = "g4" }, "did")
  local found = has_note(P.notes, "cohort 2005 has one unit")
  T.check(found and P.cohort_size[2005] == 1, "prepare: a one-unit cohort gives a note")
  T.check(not P.balanced and P.units[2].rows[2] == nil, "prepare: a missing outcome is an unobserved period")
end


-- ---- Callaway & Sant'Anna on mpdta ---------------------------------------------------------
local cs = require "spillover.did_cs"
local did = require "spillover.did"

local function atts(fit)
  local out = {}
  for k, r in ipairs(fit.att_gt) do out[k] = r.att end
  return out
end

local function near4(got, want, what)
  -- Printed digits: equal after rounding to 4 decimals.
  local ok = math.abs(got - want) <= 0.00005 + 1e-12
  T.check(ok, what, string.format("got %.6f want %.4f", got, want))
end

-- Unconditional ATT(g,t) (never-treated controls, varying base): the did README digits,
-- tests/reference/data/SOURCES-extra.md (mpdta): g2004, g2006, g2007 at t = 2004..2007.
local README_ATT = { -0.0105, -0.0704, -0.1373, -0.1008, 0.0065, -0.0028, -0.0046, -0.0412,
  0.0305, -0.0027, -0.0311, -0.0261 }
local d = mpdta()
local fits = {}
for _, est in ipairs({ "dr", "ipw", "reg" }) do
  fits[est] = cs.cs(d, "lemp ~ 1", { cohort = "first.treat", est = est })
  local a = atts(fits[est])
  T.check(#a == 12, "cs " .. est .. ": 12 ATT(g,t)")
  for k = 1, 12 do
    local r = fits[est].att_gt[k]
    near4(a[k], README_ATT[k], string.format("cs %s unconditional ATT(%d,%d) = README", est, r.group, r.time))
  end
end
local r5 = fits.dr.att_gt[5]
T.check(r5.group == 2006 and r5.time == 2004 and math.type(r5.time) == "integer",
  "att_gt rows in did's order, integer group and time")

-- Identity: without covariates dr = ipw = reg = the 2x2 DID of means, to 1e-12.
do
  local y, g, yr = d.lemp:totable(), d["first.treat"]:totable(), d.year:totable()
  local id = d.countyreal:totable()
  local Y = {}
  for r = 1, #y do Y[id[r]] = Y[id[r]] or {}; Y[id[r]][yr[r]] = y[r]; Y[id[r]].g = g[r] end
  local function did22(gg, t, b)
    local st, nt, sc, nc = 0, 0, 0, 0
    for _, u in pairs(Y) do
      if u.g == gg then st, nt = st + u[t] - u[b], nt + 1
      elseif u.g == 0 then sc, nc = sc + u[t] - u[b], nc + 1 end
    end
    return st / nt - sc / nc
  end
  local worst = 0
  for k, r in ipairs(fits.dr.att_gt) do
    local base = r.time >= r.group and r.group - 1 or r.time - 1
    local want = did22(r.group, r.time, base)
    for _, est in ipairs({ "dr", "ipw", "reg" }) do
      worst = math.max(worst, math.abs(fits[est].att_gt[k].att - want))
    end
  end
  T.check(worst < 1e-12, "no covariates: dr = ipw = reg = 2x2 DID of means", string.format("max diff %g", worst))
  local ws = 0
  for k = 1, 12 do ws = math.max(ws, math.abs(fits.dr.att_gt[k].se - fits.reg.att_gt[k].se)) end
  T.check(ws < 1e-12, "no covariates: the same influence functions (equal SEs)", string.format("max diff %g", ws))
end

-- Conditional on lpop (est = "dr" by default): did's reference manual, att_gt(xformla = ~lpop)
-- (did 2.x "Using covariates" example), to the printed 4 decimals.
do
  local want = { -0.0145, -0.0764, -0.1404, -0.1069, -0.0005, -0.0062, 0.0010, -0.0413,
    0.0267, -0.0046, -0.0284, -0.0288 }
  local fit = cs.cs(d, "lemp ~ lpop", { cohort = "first.treat" })
  for k, r in ipairs(fit.att_gt) do
    near4(r.att, want[k], string.format("cs dr | lpop ATT(%d,%d) = did manual", r.group, r.time))
  end
  -- Analytic (bstrap = FALSE) digits of ATT(2004,2006) as printed by a test of the
  -- dml.sensemakr package against att_gt(): theta = -0.1404483, se = 0.03537815.
  T.near(fit.att_gt[3].att, -0.1404483, 5e-7, "cs dr | lpop ATT(2004,2006) to 7 digits")
  T.near(fit.att_gt[3].se, 0.03537815, 5e-7, "cs dr | lpop analytic se of ATT(2004,2006)")
  -- Not-yet-treated controls (same manual, control_group = "notyettreated").
  local ny = { -0.0212, -0.0816, -0.1382, -0.1069, -0.0075, -0.0046, 0.0087, -0.0413,
    0.0269, -0.0042, -0.0284, -0.0288 }
  local fny = cs.cs(d, "lemp ~ lpop", { cohort = "first.treat", control = "notyet" })
  for k, r in ipairs(fny.att_gt) do
    near4(r.att, ny[k], string.format("cs dr | lpop, not yet treated ATT(%d,%d) = did manual", r.group, r.time))
  end
  -- did's pre-test of parallel trends (Wald, analytic covariance) as printed by summary():
  -- 0.16812 unconditional (README), 0.23267 | lpop and 0.23326 | lpop not yet treated (manual).
  T.near(fits.dr.pretest.pvalue, 0.16812, 3e-5, "pre-test p-value, unconditional = did's 0.16812")
  T.check(fits.dr.pretest.df == 5, "pre-test: 5 pre-treatment cells")
  T.near(fit.pretest.pvalue, 0.23267, 3e-5, "pre-test p-value | lpop = did's 0.23267")
  T.near(fny.pretest.pvalue, 0.23326, 3e-5, "pre-test p-value | lpop, not yet treated = did's 0.23326")
  local pre = {}
  for _, r in ipairs(fits.dr.att_gt) do
    if not r.post then pre[#pre + 1] = string.format("ATT(%d,%d)", r.group, r.time) end
  end
  T.near(fits.dr:wald(pre).chi2, fits.dr.pretest.statistic, 1e-9, "fit:wald on the pre-treatment cells = the pre-test")
  -- ipw and reg differ from dr with a covariate, but only a little here.
  local fi = cs.cs(d, "lemp ~ lpop", { cohort = "first.treat", est = "ipw" })
  local fr = cs.cs(d, "lemp ~ lpop", { cohort = "first.treat", est = "reg" })
  T.check(fi.att_gt[5].att ~= fit.att_gt[5].att and fr.att_gt[5].att ~= fit.att_gt[5].att
    and math.abs(fi.att_gt[5].att - fit.att_gt[5].att) < 0.005, "ipw and reg differ from dr with lpop, slightly")
end

-- Aggregations (did::aggte) of the unconditional fit, the did README digits
-- (aggte(out, type = "dynamic" / "group"), est_method = "reg", which equals dr here).
do
  local fit = fits.dr
  local dyn = fit:aggregate("dynamic")
  near4(dyn.overall.att, -0.0772, "aggte dynamic: overall -0.0772")
  local e_want = { [-3] = 0.0305, [-2] = -0.0006, [-1] = -0.0245, [0] = -0.0199, [1] = -0.0510, [2] = -0.1373,
    [3] = -0.1008 }
  T.check(#dyn.rows == 7 and dyn.rows[1].e == -3 and dyn.rows[7].e == 3, "aggte dynamic: event times -3..3")
  for _, r in ipairs(dyn.rows) do near4(r.att, e_want[r.e], "aggte dynamic: e = " .. r.e) end
  -- README bootstrap SEs (0.0153 0.0136 0.0138 0.0115 0.0174 0.0356 0.0354; overall 0.0196): the analytic
  -- ones agree to within bootstrap noise.
  local boot_se = { 0.0153, 0.0136, 0.0138, 0.0115, 0.0174, 0.0356, 0.0354 }
  local worst = 0
  for k, r in ipairs(dyn.rows) do worst = math.max(worst, math.abs(r.se / boot_se[k] - 1)) end
  T.check(worst < 0.06 and math.abs(dyn.overall.se / 0.0196 - 1) < 0.06,
    "aggte dynamic: analytic SEs within 6% of the README's bootstrap SEs", string.format("worst %.3f", worst))
  local grp = fit:aggregate("group")
  near4(grp.overall.att, -0.0310, "aggte group: overall -0.031")
  near4(grp.rows[1].att, -0.0797, "aggte group: 2004")
  near4(grp.rows[2].att, -0.0229, "aggte group: 2006")
  near4(grp.rows[3].att, -0.0261, "aggte group: 2007")
  T.check(grp.rows[1].group == 2004 and math.abs(grp.overall.se / 0.0123 - 1) < 0.05,
    "aggte group: overall SE near the README's 0.0123")
  -- Balanced in event time (did's vignette, aggte(type = "dynamic", balance_e = 1)).
  local bal = fit:aggregate("dynamic", { balance_e = 1 })
  near4(bal.overall.att, -0.0288, "aggte dynamic balance_e = 1: overall -0.0288")
  local bw = { [-2] = 0.0065, [-1] = -0.0028, [0] = -0.0066, [1] = -0.0510 }
  T.check(#bal.rows == 4, "balance_e = 1: event times -2..1")
  for _, r in ipairs(bal.rows) do near4(r.att, bw[r.e], "aggte dynamic balance_e = 1: e = " .. r.e) end
  -- min_e / max_e trim the event times.
  local win = fit:aggregate("dynamic", { min_e = -1, max_e = 1 })
  T.check(#win.rows == 3 and win.rows[1].e == -1 and win.rows[3].e == 1, "aggte dynamic min_e/max_e window")
  near4(win.overall.att, (-0.0199 - 0.0510) / 2, "aggte dynamic window: overall = mean of e = 0, 1")

  -- Identity: simple = the post ATT(g,t) weighted by cohort size (20, 40, 131 counties).
  local simple = fit:aggregate("simple")
  local size = { [2004] = 20, [2006] = 40, [2007] = 131 }
  local num, den = 0, 0
  for _, r in ipairs(fit.att_gt) do
    if r.time >= r.group then num, den = num + size[r.group] * r.att, den + size[r.group] end
  end
  T.near(simple.overall.att, num / den, 1e-12, "aggte simple = cohort-size-weighted mean of post ATT(g,t)")
  T.near(fit.overall.att, simple.overall.att, 1e-15, "fit.overall is the simple aggregation")
  T.check(simple.overall.se > 0 and simple.overall.lo < simple.overall.att, "simple: se and interval")
  -- Calendar: each period's post cells, cohort-size weighted; overall = their mean.
  local cal = fit:aggregate("calendar")
  T.check(#cal.rows == 4 and cal.rows[1].time == 2004, "aggte calendar: 2004..2007")
  near4(cal.rows[1].att, -0.0105, "aggte calendar 2004 = ATT(2004,2004)")
  T.near(cal.rows[3].att, (20 * fit.att_gt[3].att + 40 * fit.att_gt[7].att) / 60, 1e-12,
    "aggte calendar 2006 = size-weighted ATT(2004,2006), ATT(2006,2006)")
  local m = 0
  for _, r in ipairs(cal.rows) do m = m + r.att / 4 end
  T.near(cal.overall.att, m, 1e-12, "aggte calendar overall = mean over periods")
  T.checkerr("did: aggregate: type must be", fit.aggregate, fit, "event")
  T.checkerr("unknown option 'maxe'", fit.aggregate, fit, "dynamic", { maxe = 2 })
end

-- Universal base period: the reference cell is 0, post-treatment cells are the varying ones.
do
  local fu = cs.cs(d, "lemp ~ 1", { cohort = "first.treat", base = "universal" })
  T.check(#fu.att_gt == 15, "universal base: 3 cohorts x 5 periods")
  local ref, same = 0, true
  local v = {}
  for _, r in ipairs(fits.dr.att_gt) do v[r.group .. "/" .. r.time] = r.att end
  for _, r in ipairs(fu.att_gt) do
    if r.time == r.group - 1 then ref = ref + 1; same = same and r.att == 0 and r.se ~= r.se end
    if r.time >= r.group then same = same and math.abs(r.att - v[r.group .. "/" .. r.time]) < 1e-12 end
  end
  T.check(ref == 3 and same, "universal base: ATT(g, g-1) = 0 (no se); post cells as with a varying base")
  T.near(fu.pretest.pvalue, fits.dr.pretest.pvalue, 1e-9, "universal base: the same pre-test")
  -- Pre-period cells compare t with g - 1: ATT(2006,2004) = DID of 2004 vs 2005.
  T.near(fu.att_gt[7].att, -fits.dr.att_gt[6].att, 1e-12, "universal base: ATT(2006,2004) = -(varying ATT(2006,2005))")
end

-- Anticipation: the base period moves back; a cohort without a period before g - k is dropped with a note.
do
  local fa = cs.cs(d, "lemp ~ 1", { cohort = "first.treat", anticipation = 1 })
  local found = has_note(fa.notes, "cohort 2004 %(20 units%) was dropped")
  T.check(found and fa.att_gt[1].group == 2006, "anticipation = 1: cohort 2004 dropped with a note")
  -- Post-period ATT(2006,2006) compares 2006 with 2004 (= g - 1 - 1).
  local base = nil
  for _, r in ipairs(fa.att_gt) do if r.group == 2006 and r.time == 2006 then base = r.base end end
  T.check(base == 2004, "anticipation = 1: ATT(2006,2006) has base period 2004")
end

-- ---- a simulated staggered panel with known heterogeneous effects ---------------------------
-- 900 units, periods 1..8, cohorts 4 (250 units), 6 (250) and never (400).  Outcome:
-- unit effect + period effect + a covariate-driven trend + effect + noise, where the
-- effect is delta_g (t - g + 1) for t >= g (delta_4 = 1, delta_6 = 0.5) and cohort
-- membership depends on the covariate: parallel trends hold only given x.
local function simulate(seed)
  local r = sp.rng(seed)
  local id, t, y, g, x, w = {}, {}, {}, {}, {}, {}
  for i = 1, 900 do
    local xi = r:normal()
    local gi = 0
    local u = r:uniform()
    local p4 = 0.6 / (1 + math.exp(1 - 1.5 * xi))
    if u < p4 then gi = 4 elseif u < p4 + 0.28 then gi = 6 end
    local ai = r:normal()
    local wi = 1 + r:integer(3)
    for tt = 1, 8 do
      local k = #id + 1
      id[k], t[k], g[k], x[k], w[k] = i, tt, gi, xi, wi
      local eff = 0
      if gi > 0 and tt >= gi then eff = (gi == 4 and 1 or 0.5) * (tt - gi + 1) end
      y[k] = ai + 0.3 * tt + 0.5 * xi * tt + eff + r:normal() * 0.5
    end
  end
  local sd = sp.frame({ id = id, t = t, y = y, g = g, x = x, w = w })
  sd:panel { entity = "id", time = "t" }
  return sd
end
local sim = simulate(2024)
local function truth(gg, tt) return tt >= gg and (gg == 4 and 1 or 0.5) * (tt - gg + 1) or 0 end
do
  for _, est in ipairs({ "dr", "ipw", "reg" }) do
    local fit = cs.cs(sim, "y ~ x", { cohort = "g", est = est })
    local worst = 0
    for _, r in ipairs(fit.att_gt) do worst = math.max(worst, math.abs(r.att - truth(r.group, r.time)) / r.se) end
    T.check(#fit.att_gt == 14 and worst < 3,
      "simulated panel, " .. est .. " | x: every ATT(g,t) within 3 SE of the truth",
      string.format("worst |z| = %.2f", worst))
  end
  -- Without the covariate the trends differ by cohort: the pre-period cells reject.
  local naive = cs.cs(sim, "y ~ 1", { cohort = "g" })
  local worst = 0
  for _, r in ipairs(naive.att_gt) do
    if r.time < r.group then worst = math.max(worst, math.abs(r.att) / r.se) end
  end
  T.check(worst > 3, "simulated panel without x: pre-treatment cells far from 0", string.format("max |z| %.2f", worst))
  -- Dynamic aggregation: e >= 0 averages the cohorts' effects e + 1 (cohort 4) and (e + 1)/2 (cohort 6).
  local fit = cs.cs(sim, "y ~ x", { cohort = "g", control = "notyet" })
  local dyn = fit:aggregate("dynamic", { min_e = 0, max_e = 2 })
  local ok = true
  for _, r in ipairs(dyn.rows) do
    local lo, hi = 0.5 * (r.e + 1), r.e + 1
    ok = ok and r.att > lo - 3 * r.se and r.att < hi + 3 * r.se
  end
  T.check(#dyn.rows == 3 and ok, "simulated panel, not yet treated: dynamic effects between the cohorts' truths")
  -- Sampling weights: integer weights equal duplicating units (point estimates).
  local fw = cs.cs(sim, "y ~ x", { cohort = "g", weights = "w" })
  local dup = {}
  for _, name in ipairs({ "id", "t", "y", "g", "x", "w" }) do dup[name] = {} end
  local cols = {}
  for _, name in ipairs({ "id", "t", "y", "g", "x", "w" }) do cols[name] = sim[name]:totable() end
  for r = 1, sim:nrow() do
    for c = 1, cols.w[r] do
      for _, name in ipairs({ "t", "y", "g", "x" }) do dup[name][#dup[name] + 1] = cols[name][r] end
      dup.id[#dup.id + 1] = cols.id[r] * 10 + c
    end
  end
  dup.w = nil
  local dd = sp.frame(dup)
  dd:panel { entity = "id", time = "t" }
  local fd = cs.cs(dd, "y ~ x", { cohort = "g" })
  local diff = 0
  for k, r in ipairs(fw.att_gt) do diff = math.max(diff, math.abs(r.att - fd.att_gt[k].att)) end
  T.check(diff < 1e-10, "weights = w gives the estimates of the panel with each unit repeated w times",
    string.format("max diff %g", diff))
  -- Constant weights change nothing (they are normalised to mean 1).
  local c3 = sim:copy()
  c3.w3 = 3
  local f3, f1 = cs.cs(c3, "y ~ x", { cohort = "g", weights = "w3" }), cs.cs(sim, "y ~ x", { cohort = "g" })
  T.near(f3.att_gt[4].se, f1.att_gt[4].se, 1e-12, "constant weights: same estimates and SEs")
end

-- ---- inference: clusters and the multiplier bootstrap ----------------------------------------
do
  local dc = mpdta()
  local id = dc.countyreal:totable()
  local st = {}
  for r = 1, #id do st[r] = id[r] // 1000 end   -- the state FIPS code of the county
  dc.state = st
  local f0 = cs.cs(dc, "lemp ~ 1", { cohort = "first.treat" })
  local fe = cs.cs(dc, "lemp ~ 1", { cohort = "first.treat", cluster = "countyreal" })
  T.check(fe.att_gt[2].se == f0.att_gt[2].se, "cluster = the entity is the default")
  local fc = cs.cs(dc, "lemp ~ 1", { cohort = "first.treat", cluster = "state" })
  T.check(fc.att_gt[2].att == f0.att_gt[2].att and fc.att_gt[2].se ~= f0.att_gt[2].se
    and fc.stats.n_clusters == 29, "cluster = state: same estimates, other SEs, 29 clusters",
    tostring(fc.stats.n_clusters))
  -- The analytic clustered variance is sum_c (sum of the influence function in c)^2 / n^2;
  -- a cluster per unit gives the unclustered one.
  local du = mpdta()
  du.cl = du.countyreal:totable()
  local fu = cs.cs(du, "lemp ~ 1", { cohort = "first.treat", cluster = "cl" })
  T.near(fu.att_gt[2].se, f0.att_gt[2].se, 1e-12, "one cluster per unit = unclustered")
  T.checkerr("did: cluster column 'lemp' varies within unit 8001", cs.cs, dc, "lemp ~ 1",
    { cohort = "first.treat", cluster = "lemp" })

  -- Bootstrap: reproducible with a seed, SEs close to the analytic ones.
  local b1 = cs.cs(dc, "lemp ~ 1", { cohort = "first.treat", bootstrap = 999, seed = 7 })
  local b2 = cs.cs(dc, "lemp ~ 1", { cohort = "first.treat", bootstrap = 999, seed = 7 })
  local b3 = cs.cs(dc, "lemp ~ 1", { cohort = "first.treat", bootstrap = 999, seed = 8 })
  local same, differ, worst, avg = true, false, 0, 0
  for k, r in ipairs(b1.att_gt) do
    same = same and r.se == b2.att_gt[k].se and r.ulo == b2.att_gt[k].ulo
    differ = differ or r.se ~= b3.att_gt[k].se
    worst = math.max(worst, math.abs(r.se / f0.att_gt[k].se - 1))
    avg = avg + (r.se / f0.att_gt[k].se) / #b1.att_gt
  end
  T.check(same and b1.crit == b2.crit, "bootstrap: same seed, identical SEs and critical value")
  T.check(differ, "bootstrap: another seed, other draws")
  -- did's bootstrap SE is an interquartile range / 1.349: with 999 draws it is within about
  -- 4% of the analytic SE per cell, and the 20-unit cohort 2004 (a non-normal sum) runs
  -- a few percent above it, in did's README too (0.0380 vs analytic 0.0364 for ATT(2004,2006)).
  T.check(math.abs(avg - 1) < 0.05 and worst < 0.15, "bootstrap SEs near the analytic ones (mean ratio within 5%)",
    string.format("mean ratio %.3f, worst %.3f", avg, worst))
  T.check(b1.crit > 2.3 and b1.crit < 3.2 and b1.att_gt[1].uhi - b1.att_gt[1].ulo > b1.att_gt[1].hi - b1.att_gt[1].lo,
    "bootstrap: a sup-t critical value above 1.96 widens the uniform band", tostring(b1.crit))
  T.check(f0.crit == nil and f0.att_gt[1].ulo == nil, "analytic SEs: no uniform band")
  T.check(b1.pretest.pvalue == f0.pretest.pvalue, "the pre-test uses the analytic covariance, as did's")
  local dyn1, dyn2 = b1:aggregate("dynamic"), b2:aggregate("dynamic")
  T.check(dyn1.crit == dyn2.crit and dyn1.rows[3].se == dyn2.rows[3].se and dyn1.rows[3].ulo ~= nil,
    "bootstrap aggregation: reproducible, with uniform bands")
  local adyn = f0:aggregate("dynamic")
  local w2 = 0
  for k, r in ipairs(dyn1.rows) do w2 = math.max(w2, math.abs(r.se / adyn.rows[k].se - 1)) end
  T.check(w2 < 0.15, "bootstrap dynamic SEs near the analytic ones", string.format("worst %.3f", w2))
  local bc = cs.cs(dc, "lemp ~ 1", { cohort = "first.treat", bootstrap = 499, seed = 7, cluster = "state" })
  local w3 = 0
  for k, r in ipairs(bc.att_gt) do w3 = math.max(w3, math.abs(r.se / fc.att_gt[k].se - 1)) end
  T.check(w3 < 0.25, "clustered bootstrap SEs near the clustered analytic ones", string.format("worst %.3f", w3))
  -- The covariance of the ATT(g,t) holds the bootstrap variances on its diagonal.
  T.near(math.sqrt(b1.V[3][3]), b1.att_gt[3].se, 1e-12, "fit.V diagonal = bootstrap se^2")
  T.near(f0:se()["ATT(2004,2006)"], f0.att_gt[3].se, 1e-12, "fit:se() names cells ATT(g,t)")
end

-- ---- the plot ---------------------------------------------------------------------------------
do
  local path = os.tmpname() .. ".svg"
  local fit = cs.cs(mpdta(), "lemp ~ 1", { cohort = "first.treat", bootstrap = 199, seed = 1 })
  fit:plot(path)
  local svg = T.read(path) or ""
  T.check(svg:find("<svg") and svg:find("95% uniform band", 1, true) and svg:find("95% pointwise", 1, true),
    "fit:plot with the bootstrap: estimates, pointwise intervals and the uniform band")
  os.remove(path)
  local p2 = os.tmpname() .. ".svg"
  local universal = cs.cs(mpdta(), "lemp ~ 1", { cohort = "first.treat", base = "universal" }):aggregate("dynamic")
  universal:plot(p2)
  local svg2 = T.read(p2) or ""
  T.check(svg2:find("95% pointwise", 1, true) and not svg2:find("uniform band", 1, true),
    "aggregate('dynamic'):plot without the bootstrap: pointwise intervals only")
  local refs = 0
  for _, r in ipairs(universal.rows) do
    if r.ref then refs = refs + 1; T.check(r.e == -1, "reference row at e = -1") end
  end
  T.check(refs == 1, "universal base: one reference period marked")
  os.remove(p2)
end

-- ---- bad input ----------------------------------------------------------------------------------
do
  local d0 = mpdta()
  -- No never-treated units.
  local dn = d0:filter(function(row) return row["first.treat"] ~= 0 end)
  T.checkerr("did: there are no never%-treated units .*use control = \"notyet\"", cs.cs, dn, "lemp ~ 1",
    { cohort = "first.treat" })
  -- With not-yet-treated controls, did's rule: the last cohort is the comparison group, later periods go.
  local fny = cs.cs(dn, "lemp ~ 1", { cohort = "first.treat", control = "notyet" })
  local note = has_note(fny.notes, "the last cohort 2007 serves as the comparison group")
  T.check(note and #fny.att_gt == 6 and fny.att_gt[6].time == 2006,
    "no never-treated, not yet treated: cohort 2007 compares, periods from 2007 on dropped")
  -- A cohort treated in the first period is dropped with a note.
  local df = mpdta()
  local g = df["first.treat"]:totable()
  for r = 1, 10 do g[r] = 2003 end
  df.g = g
  local ff = cs.cs(df, "lemp ~ 1", { cohort = "g" })
  local dropped = has_note(ff.notes, "cohort 2003 %(2 units%) was dropped: it is treated in the first period 2003")
  T.check(dropped and ff.att_gt[1].group == 2004, "a cohort treated in the first period: dropped with a note")
  -- A cohort with one unit: estimated, with a note.
  local d1 = mpdta()
  local g1 = d1["first.treat"]:totable()
  for r = 1, 5 do g1[r] = 2005 end
  d1.g1 = g1
  local f1 = cs.cs(d1, "lemp ~ 1", { cohort = "g1" })
  local one = has_note(f1.notes, "cohort 2005 has one unit")
  T.check(one and f1.att_gt[5].group == 2005, "a one-unit cohort: estimated, with a note")
  T.check(f1.pretest.note and f1.pretest.note:find("cohort 2005 has one unit") and
    has_note(f1.notes, "pre%-test: cohort 2005"), "and the pre-test says its statistic is not reliable")
  -- Unbalanced panels: units missing a period are dropped with a note; unbalanced = true is refused.
  local du = d0:filter(function(row) return not (row.countyreal == 8001 and row.year == 2005) end)
  du:panel { entity = "countyreal", time = "year" }
  local fu = cs.cs(du, "lemp ~ 1", { cohort = "first.treat" })
  local unb = has_note(fu.notes, "1 units not observed in every period")
  T.check(unb and fu.stats.n_units == 499, "unbalanced panel: the incomplete unit is dropped with a note")
  -- unbalanced = true keeps every unit; each ATT(g,t) uses the units observed in both of its periods.
  local fb = cs.cs(d0, "lemp ~ lpop", { cohort = "first.treat", unbalanced = true })
  local fl = cs.cs(d0, "lemp ~ lpop", { cohort = "first.treat" })
  local same = true
  for k, r in ipairs(fb.att_gt) do same = same and r.att == fl.att_gt[k].att and r.se == fl.att_gt[k].se end
  T.check(same, "unbalanced = true on a balanced panel: the balanced estimates")
  local fk = cs.cs(du, "lemp ~ 1", { cohort = "first.treat", unbalanced = true })
  T.check(fk.stats.n_units == 500 and has_note(fk.notes, "each ATT%(g,t%) uses the units observed in both"),
    "unbalanced = true: all 500 units kept, with a note")
  -- ATT(2007,2006) compares 2006 with 2005, which county 8001 (cohort 2007) lacks: the DID of means without it.
  local y, gu, yr, id = du.lemp:totable(), du["first.treat"]:totable(), du.year:totable(), du.countyreal:totable()
  local Y = {}
  for r = 1, #y do Y[id[r]] = Y[id[r]] or { g = gu[r] }; Y[id[r]][yr[r]] = y[r] end
  local function did_means(gg, t, b)
    local st, nt, sc, nc = 0, 0, 0, 0
    for _, u in pairs(Y) do
      if u[t] and u[b] then
        if u.g == gg then st, nt = st + u[t] - u[b], nt + 1
        elseif u.g == 0 then sc, nc = sc + u[t] - u[b], nc + 1 end
      end
    end
    return st / nt - sc / nc, nt
  end
  local a11, n11 = did_means(2007, 2006, 2005)
  local a12, n12 = did_means(2007, 2007, 2006)
  T.check(n11 == 130 and n12 == 131, "test setup: cohort 2007 has 130 units observed in 2005-2006, 131 in 2006-2007")
  T.near(fk.att_gt[11].att, a11, 1e-12, "unbalanced = true: ATT(2007,2006) over the units observed in 2005 and 2006")
  T.near(fk.att_gt[12].att, a12, 1e-12, "unbalanced = true: ATT(2007,2007) keeps county 8001 (observed in 2006, 2007)")
  T.check(fk.att_gt[12].att ~= fu.att_gt[12].att, "unbalanced = true differs from dropping the unit")
  T.checkerr("did: option 'unbalanced' must be true or false", cs.cs, du, "lemp ~ 1",
    { cohort = "first.treat", unbalanced = 1 })
  -- A covariate collinear with the intercept: no cell can be estimated, and the error says why.
  local dk = mpdta()
  dk.one = 1
  T.checkerr("did: no post%-treatment ATT%(g,t%) could be estimated: ATT%(2004,2004%) cannot be estimated: .*"
    .. "singular %(collinear or constant covariates%?%)", cs.cs, dk, "lemp ~ one", { cohort = "first.treat" })
  -- Options.
  T.checkerr("did: option 'est' must be one of \"dr\", \"ipw\", \"reg\", got \"or\"", cs.cs, d0, "lemp ~ 1",
    { cohort = "first.treat", est = "or" })
  T.checkerr("did: option 'control' must be one of", cs.cs, d0, "lemp ~ 1",
    { cohort = "first.treat", control = "nevertreated" })
  T.checkerr("did: option 'base' must be one of", cs.cs, d0, "lemp ~ 1", { cohort = "first.treat", base = "fixed" })
  T.checkerr("did: option 'bootstrap' must be 0", cs.cs, d0, "lemp ~ 1", { cohort = "first.treat", bootstrap = 5 })
  T.checkerr("did: unknown option 'cohrt'.*did you mean 'cohort'", cs.cs, d0, "lemp ~ 1", { cohrt = "first.treat" })
end

-- ---- the facade ---------------------------------------------------------------------------------
do
  local d0 = mpdta()
  local f = did.did(d0, "lemp ~ 1 | countyreal + year", { cohort = "first.treat" })
  T.check(f.method == "cs" and #f.att_gt == 12 and f.overall.att == fits.dr.overall.att, "did.did: cs is the default")
  T.checkerr("did: option 'method' must be one of \"cs\", \"sa\", \"imputation\", \"twfe\", got \"cx\"; "
    .. "did you mean \"cs\"",
    did.did, d0, "lemp ~ 1", { cohort = "first.treat", method = "cx" })
  T.checkerr("did: expected an options table", did.did, d0, "lemp ~ 1", "first.treat")
  -- sa, imputation and twfe go to spillover.did_event's function of that name, with the call's arguments
  -- (a stand-in module here, so this test does not depend on did_event's state).
  local calls = {}
  local stub = {}
  for _, m in ipairs({ "sa", "imputation", "twfe" }) do
    stub[m] = function(dd, fo, o) calls[#calls + 1] = { m, dd, fo, o.cohort }; return m end
  end
  local real = package.loaded["spillover.did_event"]
  package.loaded["spillover.did_event"] = stub
  local got = {}
  for _, m in ipairs({ "sa", "imputation", "twfe" }) do
    got[#got + 1] = did.did(d0, "lemp ~ 1", { cohort = "first.treat", method = m })
  end
  package.loaded["spillover.did_event"] = real
  T.check(table.concat(got, ",") == "sa,imputation,twfe" and calls[2][2] == d0 and calls[2][3] == "lemp ~ 1"
    and calls[3][4] == "first.treat", "did.did dispatches sa, imputation, twfe to spillover.did_event")
end

T.done()
