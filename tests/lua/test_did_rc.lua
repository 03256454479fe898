-- test_did_rc: Callaway & Sant'Anna on repeated cross-sections (panel = false) and
-- unbalanced panels with did's repeated cross-section estimators (unbalanced = "rc"):
-- R's did on a published fixture, exact identities, simulated data with known effects,
-- the bootstrap, clustering, aggregation and bad input.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local cs = require "spillover.did_cs"
local did = require "spillover.did"

local MPDTA = "tests/reference/data/mpdta_county_teen_employment.csv"
-- The input of the PY012 parity fixture of pedrohcgs/csdid-stata
-- (tests/fixtures/parity/py012/inputs/inference-data.csv): 360 ids in 4 periods,
-- cohorts 2, 3, 4 and never; its R oracle (expected/r/attgt.csv) ran
-- att_gt(yname = "y", tname = "period", gname = "g", xformla = ~x, est_method = m,
-- panel = FALSE, bstrap = FALSE, cband = FALSE), and the same with idname = "id".
local PARITY = "tests/reference/data/did_rc_parity_inference.csv"

local function has_note(notes, pattern)
  for _, n in ipairs(notes) do if n:find(pattern) then return true end end
  return false
end

-- ---- R's did on the parity fixture --------------------------------------------------------
do
  local R = {
    rcs = {
      dr = { { 1.25700397778438, 0.214549292149983 }, { 0.927299046342897, 0.22257747886458 },
        { 0.731372003686494, 0.218267985363349 }, { 0.0827119575080144, 0.21039168942754 },
        { 0.684987846697863, 0.207773262617853 }, { 0.660412887800762, 0.202362360738775 },
        { 0.132378870166749, 0.209197914041105 }, { -0.251858300465418, 0.205412832143422 },
        { 0.66277045271543, 0.215157722843733 } },
      reg = { { 1.25975590844388, 0.218206017934191 }, { 0.923550538683036, 0.224686211962229 },
        { 0.726059716204897, 0.223923609808774 }, { 0.0848803765721135, 0.218336686998564 },
        { 0.68041739655559, 0.217482278809675 }, { 0.654719800067582, 0.21071688923416 },
        { 0.132379755552285, 0.215719237456563 }, { -0.251859375130811, 0.209634748098948 },
        { 0.662770136539338, 0.217849410657907 } },
      ipw = { { 1.25956730497039, 0.221463519620084 }, { 0.926487513213588, 0.22761838302711 },
        { 0.73344197753578, 0.229241159135538 }, { 0.0824609362443244, 0.221337719987904 },
        { 0.685318339701545, 0.221761055723055 }, { 0.660461200859936, 0.218852399976231 },
        { 0.132447536283785, 0.217923419325714 }, { -0.251948705839596, 0.211463208527028 },
        { 0.662847642196545, 0.219298564937188 } },
    },
    panel = {
      dr = { { 1.25700397778438, 0.18960967080815 }, { 0.927299046342898, 0.209368285563107 },
        { 0.731372003686494, 0.192130829797428 }, { 0.0827119575080146, 0.184051838864249 },
        { 0.684987846697864, 0.206449334186931 }, { 0.660412887800763, 0.19133094634037 },
        { 0.132378870166749, 0.201441303966847 }, { -0.251858300465418, 0.190769298729697 },
        { 0.662770452715429, 0.188672413326839 } },
    },
  }
  local d = sp.read_csv(PARITY)
  local cells = { { 2, 2 }, { 2, 3 }, { 2, 4 }, { 3, 2 }, { 3, 3 }, { 3, 4 }, { 4, 2 }, { 4, 3 }, { 4, 4 } }
  for _, est in ipairs({ "dr", "reg", "ipw" }) do
    local f = cs.cs(d, "Y ~ X", { cohort = "G", panel = false, time = "period", est = est })
    T.check(#f.att_gt == 9 and f.stats.n_units == 1440 and f.nobs == 1440 and not f.stats.panel,
      "parity rcs " .. est .. ": 9 cells, every row a unit")
    for k, want in ipairs(R.rcs[est]) do
      local r = f.att_gt[k]
      T.check(r.group == cells[k][1] and r.time == cells[k][2], "parity rcs " .. est .. ": cell order " .. k)
      T.near(r.att, want[1], 1e-9, string.format("parity rcs %s ATT(%d,%d) = R's did", est, r.group, r.time))
      T.near(r.se, want[2], 1e-9, string.format("parity rcs %s se(%d,%d) = R's did", est, r.group, r.time))
    end
  end
  -- The same data as a panel: the panel estimators, R's panel numbers.
  local dp = sp.read_csv(PARITY)
  dp:panel { entity = "id", time = "period" }
  local fp = cs.cs(dp, "Y ~ X", { cohort = "G" })
  for k, want in ipairs(R.panel.dr) do
    T.near(fp.att_gt[k].att, want[1], 1e-9, "parity panel dr ATT " .. k .. " = R's did")
    T.near(fp.att_gt[k].se, want[2], 1e-9, "parity panel dr se " .. k .. " = R's did")
  end
  -- X is constant within an id, so the cross-section and panel ATT coincide; the se do not.
  local fr = cs.cs(d, "Y ~ X", { cohort = "G", panel = false, time = "period" })
  T.near(fr.att_gt[1].att, fp.att_gt[1].att, 1e-12, "parity: rcs ATT = panel ATT (time-invariant X)")
  T.check(fr.att_gt[1].se > fp.att_gt[1].se * 1.05, "parity: rcs se > panel se (levels, not changes)")
  -- Clustering: the fixture's cluster column (10 clusters), analytic se from cluster sums.
  local fc = cs.cs(d, "Y ~ X", { cohort = "G", panel = false, time = "period", cluster = "cluster" })
  T.check(fc.stats.n_clusters == 10 and fc.att_gt[1].att == fr.att_gt[1].att and fc.att_gt[1].se > 0 and
    fc.att_gt[1].se ~= fr.att_gt[1].se, "parity rcs: clustered se (10 clusters), same ATT")
end

-- ---- identities on mpdta ------------------------------------------------------------------
-- Mean of y over rows of cohort g (0 = never) in year t.
local function cell_mean(d, y, g, t)
  local yy, gg, tt = d:column(y):totable(), d:column("first.treat"):totable(), d:column("year"):totable()
  local s, n = 0, 0
  for r = 1, #yy do
    if gg[r] == g and tt[r] == t then s = s + yy[r]; n = n + 1 end
  end
  return s / n
end
do
  local d = sp.read_csv(MPDTA)
  local f = cs.cs(d, "lemp ~ 1", { cohort = "first.treat", panel = false, time = "year" })
  T.check(#f.att_gt == 12 and f.nobs == 2500 and f.stats.n_units == 2500, "mpdta as rcs: 12 cells over 2500 rows")
  -- Without covariates each ATT(g,t) is the 2x2 difference of the four cell means.
  local worst = 0
  for _, r in ipairs(f.att_gt) do
    local dd = (cell_mean(d, "lemp", r.group, r.time) - cell_mean(d, "lemp", r.group, r.base)) -
      (cell_mean(d, "lemp", 0, r.time) - cell_mean(d, "lemp", 0, r.base))
    worst = math.max(worst, math.abs(r.att - dd))
  end
  T.check(worst < 1e-12, "rcs without covariates: ATT(g,t) = the 2x2 difference of means",
    string.format("max diff %.3g", worst))
  for _, est in ipairs({ "reg", "ipw" }) do
    local fe = cs.cs(d, "lemp ~ 1", { cohort = "first.treat", panel = false, time = "year", est = est })
    local same = true
    for k, r in ipairs(fe.att_gt) do same = same and math.abs(r.att - f.att_gt[k].att) < 1e-12 end
    T.check(same, "rcs without covariates: " .. est .. " = dr")
  end
  -- On a balanced panel the cross-section means are the panel's: same ATT as the panel estimator.
  local dp = sp.read_csv(MPDTA)
  dp:panel { entity = "countyreal", time = "year" }
  local fp = cs.cs(dp, "lemp ~ 1", { cohort = "first.treat" })
  local eq = true
  for k, r in ipairs(fp.att_gt) do eq = eq and math.abs(r.att - f.att_gt[k].att) < 1e-12 end
  T.check(eq, "balanced panel treated as rcs, no covariates: ATT = the panel ATT")
  -- Also with a universal base period (pre-treatment cells compare t with a later base).
  local fpu = cs.cs(dp, "lemp ~ 1", { cohort = "first.treat", base = "universal" })
  local fu = cs.cs(d, "lemp ~ 1", { cohort = "first.treat", panel = false, time = "year", base = "universal" })
  local equ = #fu.att_gt == 15
  for k, r in ipairs(fpu.att_gt) do equ = equ and math.abs(r.att - fu.att_gt[k].att) < 1e-12 end
  T.check(equ and fu.att_gt[1].att == 0 and fu.att_gt[1].se ~= fu.att_gt[1].se and fu.att_gt[6].base == 2005,
    "universal base period: rcs ATT = the panel ATT (ATT(2006,2003) against 2005), reference cells 0")
  -- A frame with a panel index and panel = false takes its time from the index.
  local fi = cs.cs(dp, "lemp ~ 1", { cohort = "first.treat", panel = false })
  T.check(fi.nobs == 2500 and fi.att_gt[3].att == f.att_gt[3].att and fi.att_gt[3].se == f.att_gt[3].se,
    "panel = false on an indexed frame: the index's time, every row a unit")
  -- Aggregation weights count rows: simple = row-count-weighted mean of post cells.
  local n = { [2004] = 0, [2006] = 0, [2007] = 0 }
  for _, g in ipairs(d:column("first.treat"):totable()) do if n[g] then n[g] = n[g] + 1 end end
  local num, den = 0, 0
  for _, r in ipairs(f.att_gt) do
    if r.post then num = num + n[r.group] * r.att; den = den + n[r.group] end
  end
  T.near(f.overall.att, num / den, 1e-12, "rcs: simple aggregation weights cohorts by their rows")
  for _, kind in ipairs({ "dynamic", "group", "calendar" }) do
    local a = f:aggregate(kind)
    T.check(#a.rows > 0 and a.overall.se > 0, "rcs: aggregate " .. kind .. " with standard errors")
  end
  -- The facade hands panel = false to cs.
  local fd = did.did(d, "lemp ~ 1", { cohort = "first.treat", panel = false, time = "year" })
  T.check(fd.method == "cs" and fd.att_gt[5].att == f.att_gt[5].att, "sp.did: panel = false reaches cs")
end

-- ---- unbalanced = "rc" ----------------------------------------------------------------------
do
  local d = sp.read_csv(MPDTA)
  d:panel { entity = "countyreal", time = "year" }
  local rc = cs.cs(sp.read_csv(MPDTA), "lemp ~ lpop", { cohort = "first.treat", panel = false, time = "year" })
  local fu = cs.cs(d, "lemp ~ lpop", { cohort = "first.treat", unbalanced = "rc" })
  local fp = cs.cs(d, "lemp ~ lpop", { cohort = "first.treat" })
  T.check(fu.stats.n_units == 500 and fu.nobs == 2500 and fu.stats.rc and fu.stats.panel,
    "unbalanced = \"rc\": 500 units, 2500 rows, the rcs estimators")
  local same_att, se_between = true, true
  for k, r in ipairs(fu.att_gt) do
    same_att = same_att and math.abs(r.att - rc.att_gt[k].att) < 1e-12
    -- Summing each county's two rows keeps its serial correlation: far below the rcs se.
    se_between = se_between and r.se < 0.5 * rc.att_gt[k].se and r.se > 0.5 * fp.att_gt[k].se
  end
  T.check(same_att, "unbalanced = \"rc\" on a balanced panel: the rcs point estimates")
  T.check(se_between, "unbalanced = \"rc\": influence functions summed by county (se near the panel's)")
  -- An unbalanced panel: county 8001 loses 2005.  Its other rows stay in every cell.
  local du = d:filter(function(row) return not (row.countyreal == 8001 and row.year == 2005) end)
  du:panel { entity = "countyreal", time = "year" }
  local fk = cs.cs(du, "lemp ~ 1", { cohort = "first.treat", unbalanced = "rc" })
  T.check(fk.stats.n_units == 500 and fk.nobs == 2499 and has_note(fk.notes, "repeated cross%-section estimator"),
    "unbalanced = \"rc\": every county kept, with a note")
  -- ATT(2007,2006) compares 2006 with 2005: county 8001 (never treated) is in 2006 only.
  local dd = du:filter(function(row) return row.year == 2005 or row.year == 2006 end)
  local function m(g, t)
    local s, c = 0, 0
    local yy, gg, tt = dd:column("lemp"):totable(), dd:column("first.treat"):totable(), dd:column("year"):totable()
    for r = 1, #yy do if gg[r] == g and tt[r] == t then s = s + yy[r]; c = c + 1 end end
    return s / c
  end
  local want = (m(2007, 2006) - m(2007, 2005)) - (m(0, 2006) - m(0, 2005))
  T.near(fk.att_gt[11].att, want, 1e-12, "unbalanced = \"rc\": ATT(2007,2006) from every row of 2005 and 2006")
  local ft = cs.cs(du, "lemp ~ 1", { cohort = "first.treat", unbalanced = true })
  T.check(math.abs(ft.att_gt[11].att - want) > 1e-6, "unbalanced = true (pairs) differs: it drops 8001 from the cell")
end

-- ---- simulated repeated cross-sections with known effects ---------------------------------
-- 6 periods, 700 fresh individuals per period.  Cohorts 3, 5 and never, with probabilities
-- a multinomial logit in x; outcome = cohort level + period effect + an x-driven trend +
-- effect + noise, the effect delta_g (t - g + 1) from g on (delta_3 = 1, delta_5 = 0.5).
-- Parallel trends hold only given x.
local function simulate(seed)
  local r = sp.rng(seed)
  local t, y, g, x = {}, {}, {}, {}
  for tt = 1, 6 do
    for _ = 1, 700 do
      local xi = r:normal()
      local s3, s5 = math.exp(-0.3 + 0.8 * xi), math.exp(-0.5 + 0.4 * xi)
      local u = r:uniform() * (1 + s3 + s5)
      local gi = u < s3 and 3 or (u < s3 + s5 and 5 or 0)
      local eff = (gi > 0 and tt >= gi) and (gi == 3 and 1 or 0.5) * (tt - gi + 1) or 0
      local k = #t + 1
      t[k], g[k], x[k] = tt, gi, xi
      y[k] = 0.4 * gi + 0.3 * tt + xi * tt + eff + r:normal()
    end
  end
  return sp.frame({ t = t, y = y, g = g, x = x })
end
local function truth(gg, tt) return tt >= gg and (gg == 3 and 1 or 0.5) * (tt - gg + 1) or 0 end
do
  local sim = simulate(11)
  for _, est in ipairs({ "dr", "reg", "ipw" }) do
    local f = cs.cs(sim, "y ~ x", { cohort = "g", panel = false, time = "t", est = est })
    local worst = 0
    for _, r in ipairs(f.att_gt) do worst = math.max(worst, math.abs(r.att - truth(r.group, r.time)) / r.se) end
    T.check(#f.att_gt == 10 and worst < 3, "simulated rcs, " .. est .. " | x: every ATT(g,t) within 3 SE of the truth",
      string.format("worst |z| = %.2f", worst))
  end
  -- Without x the trends differ by cohort: the pre-treatment cells reject.
  local naive = cs.cs(sim, "y ~ 1", { cohort = "g", panel = false, time = "t" })
  T.check(naive.pretest and naive.pretest.pvalue < 0.05, "simulated rcs without x: the pre-test rejects at 5%",
    string.format("p = %.3g", naive.pretest and naive.pretest.pvalue or 0 / 0))
  -- Not-yet-treated controls and the dynamic aggregation with bootstrap bands.
  local f = cs.cs(sim, "y ~ x", { cohort = "g", panel = false, time = "t", control = "notyet", bootstrap = 499,
    seed = 3 })
  local dyn = f:aggregate("dynamic")
  -- At e = 0 both cohorts contribute, weighted by their rows.
  local n3, n5 = 0, 0
  for _, gi in ipairs(sim:column("g"):totable()) do
    if gi == 3 then n3 = n3 + 1 elseif gi == 5 then n5 = n5 + 1 end
  end
  local ok = dyn.crit > 1.96 and #dyn.rows == 7
  for _, r in ipairs(dyn.rows) do
    ok = ok and r.ulo < r.lo and r.uhi > r.hi
    if r.e == 0 then ok = ok and math.abs(r.att - (n3 + 0.5 * n5) / (n3 + n5)) < 3 * r.se end
  end
  T.check(ok, "simulated rcs, not yet treated, bootstrap: dynamic rows (e = -3..3) with uniform bands, e = 0 " ..
    "within 3 SE of the row-weighted truth")
  local again = cs.cs(sim, "y ~ x", { cohort = "g", panel = false, time = "t", control = "notyet", bootstrap = 499,
    seed = 3 })
  T.check(again.att_gt[4].se == f.att_gt[4].se, "rcs bootstrap: the same seed gives the same standard errors")
  -- A cohort with no row in a period: the cell says which group is empty.
  local gap = sim:filter(function(row) return not (row.g == 5 and row.t == 2) end)
  local fg = cs.cs(gap, "y ~ 1", { cohort = "g", panel = false, time = "t" })
  T.check(has_note(fg.notes, "ATT%(5,3%) cannot be estimated: no observations of the cohort in 2") and
    fg.att_gt[7].att ~= fg.att_gt[7].att and fg.overall.att == fg.overall.att,
    "rcs: a cell without cohort rows in its base period is NA with a note")
end

-- ---- bad input --------------------------------------------------------------------------
do
  local d = sp.read_csv(MPDTA)
  T.checkerr("did: needs a panel index: .*panel = false, time = ", cs.cs, d, "lemp ~ 1", { cohort = "first.treat" })
  T.checkerr("did: option 'time' must name the time column of the repeated cross%-sections", cs.cs, d, "lemp ~ 1",
    { cohort = "first.treat", panel = false })
  T.checkerr("did: the data have no time column 'yr'", cs.cs, d, "lemp ~ 1",
    { cohort = "first.treat", panel = false, time = "yr" })
  T.checkerr("did: option 'panel' must be true or false, got no", cs.cs, d, "lemp ~ 1",
    { cohort = "first.treat", panel = "no", time = "year" })
  T.checkerr("did: option 'unbalanced' applies to panels", cs.cs, d, "lemp ~ 1",
    { cohort = "first.treat", panel = false, time = "year", unbalanced = "rc" })
  d:panel { entity = "countyreal", time = "year" }
  T.checkerr("did: option 'time' names the time column of repeated cross%-sections %(panel = false%)", cs.cs, d,
    "lemp ~ 1", { cohort = "first.treat", time = "year" })
  T.checkerr("did: option 'unbalanced' must be true or false, or \"rc\".*got \"RC\"", cs.cs, d, "lemp ~ 1",
    { cohort = "first.treat", unbalanced = "RC" })
  -- The scenario schema takes the new options.
  local entry = require("spillover.registry").get("did")
  T.check(entry.options.panel and entry.options.time and entry.options.unbalanced.enum[1] == "rc",
    "registry: did takes panel, time and unbalanced = \"rc\"")
end

T.done()
