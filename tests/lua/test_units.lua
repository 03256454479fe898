-- test_units: effects in the units of the question.  The outcome's transform
-- is read from the formula and derive: (log(x), log(1 + x), a ratio); levels
-- are back-transformed with Duan's smearing, the normal correction or none;
-- aggregates over units (sum of level changes, mean of % changes, weighted
-- mean) and over periods (per period, cumulative) carry intervals; the
-- default scenario reports additional invention patents, checked by hand
-- through its fit.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local cf = require "spillover.counterfactual"
local F = require "spillover.formula"

-- ---- the transform, from the formula object and derive: ----------------------------
local t = cf.outcome_scale("lnpat ~ x", { lnpat = "log(patent_grants)" })
T.check(t.fn == "log" and t.column == "patent_grants" and t.response == "lnpat", "derived log(x) outcome")
t = cf.outcome_scale(F.parse("log(1 + patents) ~ x"))
T.check(t.fn == "log1p" and t.column == "patents" and t.response == "log(1 + patents)", "log(1 + x) in the formula")
t = cf.outcome_scale("y ~ x", { y = "log(patents + 1)" })
T.check(t.fn == "log1p" and t.column == "patents", "log(x + 1) in derive:")
t = cf.outcome_scale("pp ~ x", { pp = { ratio = { "patents", "population" } } })
T.check(t.fn == "identity" and t.column == "patents" and t.denominator == "population", "a derived ratio")
t = cf.outcome_scale("lpp ~ x", { lpp = "log(I(patents / population))" })
T.check(t.fn == "log" and t.column == "patents" and t.denominator == "population", "the log of a ratio")
t = cf.outcome_scale("patents ~ x")
T.check(t.fn == "identity" and t.column == "patents" and not t.denominator, "a column in its own units")
local none, why = cf.outcome_scale("sq ~ x", { sq = "sqrt(patents)" })
T.check(none == nil and why:find("sq = sqrt%(patents%) is not log%(x%)"), "sqrt(x) is not back-transformed", why)
T.check(cf.experiment_scale("lnpat ~ x", { lnpat = "log(p)" }, { transform = "none" }) == false, "transform: none")
T.check(cf.experiment_scale("sq ~ x", { sq = "sqrt(p)" }) == false, "auto: model scale when not a transform")
T.check(cf.experiment_scale("sq ~ x", { sq = "sqrt(p)" }, { aggregate = "sum" }) == nil,
  "asked for levels of what has none: an error for check")

-- ---- the issue's Ningxia 2021 example ---------------------------------------------------
-- ln(patents) predicted 6.8794, the experiment adds 0.0351 log points: the old
-- report printed 100 * 0.0351 / 6.8794 = 0.51 (% of the log); patents rise by
-- e^0.0351 - 1 = 3.57%.
local nx = sp.frame { province = { "Ningxia" }, year = { 2021 }, lnpat = { 6.8794 } }
local r = cf.summarise({ data = nx, entity = "province", time = "year",
  scale = { fn = "log", column = "patent_grants", response = "lnpat" } }, { 6.8794 }, { 6.8794 + 0.0351 }, { true }, {}, 0,
  0.95, "none")
local u = r.units[1]
T.near(u.pct, 100 * (math.exp(0.0351) - 1), 1e-12, "Ningxia 2021: % of patents = 100 (e^0.0351 - 1)")
T.check(u.pct > 3.5 and u.pct < 3.6 and math.abs(u.pct - 0.51) > 3, "3.57% of patents, not 0.51% of the log")
T.near(u.level_change, math.exp(6.8794 + 0.0351) - math.exp(6.8794), 1e-12, "level change (no residual: factor 1)")
T.near(r.groups.all.total.pct, u.pct, 1e-12, "the group's % is of patents too")

-- ---- smearing, normal, naive: by hand through a fit ---------------------------------------
local ids, years, x, z, pop = {}, {}, {}, {}, {}
for unit = 1, 4 do
  for year = 2001, 2006 do
    ids[#ids + 1], years[#years + 1] = "u" .. unit, year
    z[#z + 1] = unit + 0.3 * (year - 2000) + 0.2 * ((unit * 5 + year) % 3)
    x[#x + 1] = math.exp(1 + 0.5 * z[#z] + 0.3 * math.sin(unit * 7 + year))  -- the level, e.g. patents
    pop[#pop + 1] = 10 * unit + year - 2000
  end
end
local d = sp.frame { id = ids, year = years, x = x, z = z, pop = pop }
d:panel { entity = "id", time = "year" }
local function derive(f) f.lx = sp.eval(f, "log(x)") end
derive(d)
local fit = sp.ols(d, "lx ~ z")
local b = fit:coef().z
local e = fit:resid():tovector()
local smear, ss = 0, 0
for i = 1, #e do smear, ss = smear + math.exp(e[i]), ss + e[i] ^ 2 end
smear = smear / #e
local shock = { { variable = "z", where = "id == 'u2' or id == 'u3'", from = 2004, change = "+0.5" } }
local function run(scale, extra)
  local spec = { data = d, derive = derive, fit = fit, entity = "id", time = "year", shocks = shock, scale = scale }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return cf.run(spec)
end
local base_scale = { fn = "log", column = "x", response = "lx" }
local function with(opts)
  local s = {}
  for k, v in pairs(base_scale) do s[k] = v end
  for k, v in pairs(opts) do s[k] = v end
  return s
end
local p0 = fit:predict(d):tovector()
for _, case in ipairs { { "smearing", smear }, { "normal", math.exp(ss / fit.df_resid / 2) }, { "naive", 1 } } do
  local res = run(with { backtransform = case[1] })
  T.near(res.scale.factor, case[2], 1e-12, case[1] .. ": the factor by hand")
  local ok = true
  for i, uu in ipairs(res.units) do
    local want0 = case[2] * math.exp(p0[i])
    local dz = (uu.shocked and 0.5 or 0)
    ok = ok and math.abs(uu.level_baseline - want0) < 1e-9 * want0 and
      math.abs(uu.level_change - want0 * (math.exp(b * dz) - 1)) < 1e-9 * want0
  end
  T.check(ok, case[1] .. ": every unit's level and level change by hand")
end
-- The % of the level does not depend on the factor for a log outcome.
local sm, nv = run(with { backtransform = "smearing" }), run(with { backtransform = "naive" })
T.near(sm.groups.all.total.pct / nv.groups.all.total.pct, 1, 1e-12, "log: the % of a unit is e^effect - 1 whatever the factor")
T.near(sm.units[12].pct, 100 * (math.exp(b * 0.5) - 1), 1e-12, "a shocked unit's %")

-- log(1 + x): the level is factor * e^p - 1.
d.x1 = d.x - 1
local function derive1(f) f.l1x = sp.eval(f, "log(1 + x1)") end
derive1(d)
local fit1 = sp.ols(d, "l1x ~ z")
local r1 = cf.run { data = d, derive = derive1, fit = fit1, entity = "id", time = "year", shocks = shock,
  scale = { fn = "log1p", column = "x1", response = "l1x", backtransform = "naive" } }
local q0 = fit1:predict(d):tovector()
T.near(r1.units[1].level_baseline, math.exp(q0[1]) - 1, 1e-12, "log(1 + x): naive level e^p - 1")

-- A ratio: y = x / pop modelled in levels, the denominator shocked: the level
-- of x moves with both.
local function derive_r(f) f.xp = sp.eval(f, "I(x / pop)") end
derive_r(d)
local fitr = sp.ols(d, "xp ~ z")
local rr = cf.run { data = d, derive = derive_r, fit = fitr, entity = "id", time = "year",
  shocks = { { variable = "pop", where = "id == 'u1'", from = 2006, change = "+10%" } } ,
  scale = { fn = "identity", column = "x", denominator = "pop", response = "xp" } }
local last = rr.units[6]  -- u1, 2006
local pr = fitr:predict(d):tovector()
T.near(last.level_change, pr[6] * pop[6] * 0.1, 1e-10, "ratio: the level x = prediction x denominator, shocked denominator")

-- ---- aggregates over units and periods, with intervals ------------------------------------
d.grp = { "a", "a", "a", "a", "a", "a", "b", "b", "b", "b", "b", "b", "b", "b", "b", "b", "b", "b", "a", "a", "a",
  "a", "a", "a" }
local agg = run(with { aggregate = "mean_pct" }, { groups = { "grp" }, draws = 200, seed = 3 })
-- group b = u2 and u3, both shocked from 2004: over every period each unit's %
-- is its summed change over its summed baseline level.
local function unit_pct(res, id, upto)
  local c, l = 0, 0
  for _, uu in ipairs(res.units) do
    if uu.entity == id and (not upto or uu.period <= upto) then c, l = c + uu.level_change, l + uu.level_baseline end
  end
  return 100 * c / l
end
local gb = agg.groups["grp=b"]
T.near(gb.total.mean_pct, (unit_pct(agg, "u2") + unit_pct(agg, "u3")) / 2, 1e-12, "mean_pct: the mean of units' %")
T.check(gb.total.mean_pct_lo < gb.total.mean_pct and gb.total.mean_pct < gb.total.mean_pct_hi, "mean_pct has an interval")
T.check(gb.total.level_change_lo < gb.total.level_change and gb.total.level_change < gb.total.level_change_hi,
  "the sum of level changes has an interval")
T.near(agg.groups["grp=a"].total.mean_pct, 0, 0, "unshocked units: 0%")
local w = run(with { aggregate = "weighted", weight = "pop" }, { groups = { "grp" } })
local wp = {}
for _, uu in ipairs(w.units) do wp[uu.entity] = (wp[uu.entity] or 0) + d.pop[uu.row] end
local all = w.groups.all.total
local want = 0
for _, id in ipairs { "u2", "u3" } do want = want + wp[id] * unit_pct(w, id) end
T.near(all.weighted, want / (wp.u1 + wp.u2 + wp.u3 + wp.u4), 1e-12, "weighted: population-years weight the units' %")
T.checkerr("needs 'weight'", run, with { aggregate = "weighted" })
local cum = run(with { cumulative = true }, { draws = 100, seed = 3 })
local per = run(with {}, { draws = 100, seed = 3 })
T.near(cum.groups.all.periods["2005"].level_change,
  per.groups.all.periods["2004"].level_change + per.groups.all.periods["2005"].level_change, 1e-12,
  "cumulative: 2005 holds 2001-2005")
T.near(cum.groups.all.periods["2006"].level_change, per.groups.all.total.level_change, 1e-12, "cumulative to the last = total")
T.check(cum.groups.all.periods["2005"].level_change_lo < cum.groups.all.periods["2005"].level_change, "with its interval")
T.check(cum.scale.cumulative == true and per.scale.cumulative == false, "the result says which")

-- ---- scenario check ------------------------------------------------------------------------
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-units-"))
local root = assert(sp.sys.realpath("."))
local base = ([[
name: units
data: {file: PANEL, entity: province, time: year}
derive: {lnpat: log(patent_grants), sq: sqrt(patent_grants)}
models:
  fe: {estimator: ols, formula: lnpat ~ digital_finance | province + year}
  sq: {estimator: ols, formula: sq ~ digital_finance | province + year}
experiments:
  west:
    model: fe
    shock: {variable: digital_finance, where: "region_nbs == 'West'", from: 2020, change: "+20%"}
    scale: SCALE
]]):gsub("PANEL", root .. "/scenarios/data/cn_province_panel.csv")
local function check(scale, model)
  local text = base:gsub("SCALE", scale):gsub("model: fe", "model: " .. (model or "fe"))
  local path = T.write(tmp .. "/s.yaml", text)
  return sp.scenario.check(sp.scenario.load(path))
end
T.check(pcall(check, "{aggregate: weighted, weight: population, cumulative: true}"), "a weighted, cumulative scale checks")
T.checkerr("s.yaml:11:%d+: experiments.west.scale.aggregate: 'weighted' needs 'weight'", check, "{aggregate: weighted}")
T.checkerr("experiments.west.scale.weight: unknown column 'popu'", check,
  "{aggregate: weighted, weight: popu}")
T.checkerr("experiments.west.scale: the outcome sq = sqrt%(patent_grants%) is not log%(x%).*give transform: none",
  check, "{aggregate: sum}", "sq")
T.check(pcall(check, "{transform: none}", "sq"), "transform: none on any outcome")
T.checkerr("unknown value \"mean\"", check, "{aggregate: mean}")
sp.sys.remove_tree(tmp)

-- ---- the default scenario: additional invention patents, by hand through the fit ------------
local s = sp.scenario.load("scenarios/digital_infrastructure.yaml", { "experiments.west_infrastructure.draws=40" })
local res = sp.scenario.execute(s)
local ex = res.experiments.west_infrastructure
local sdm = res.fits.sdm
local dd = res.data
local y0 = sdm:predict(dd):tovector()
local lnpat = dd.lnpat
local S = 0
for i = 1, #y0 do S = S + math.exp(lnpat[i] - y0[i]) end
S = S / #y0
T.near(ex.scale.factor, S, 1e-12, "default: Duan's factor = mean exp(ln patents - prediction)")
T.check(ex.scale.column == "patent_grants" and ex.scale.transform == "log", "default: levels of invention patents")
-- the scenario's predictions, through the fit on the shocked and re-derived data
local shocked = cf.apply_shocks(dd, { s.spec.experiments.west_infrastructure.shock }, "year")
local derive_step = require("spillover.scenario_derive").step(s)
derive_step(dd, true)
derive_step(shocked, false)
local y1 = sdm:predict(shocked):tovector()
local west, west_base, zone = 0, 0, dd.west_zone
local neighbours = 0
for i = 1, #y0 do
  local dl = S * (math.exp(y1[i]) - math.exp(y0[i]))
  if zone[i] == "West" then west, west_base = west + dl, west_base + S * math.exp(y0[i]) end
  if zone[i] == "West neighbour" then neighbours = neighbours + dl end
end
local gw = ex.groups["west_zone=West"].total
T.near(gw.level_change, west, 1e-9, "default: additional patents in the West, by hand")
T.near(gw.pct, 100 * west / west_base, 1e-9, "default: % of the West's patents, by hand")
T.near(ex.groups["west_zone=West neighbour"].total.level_change, neighbours, 1e-9, "default: in the West's neighbours")
T.check(gw.level_change_lo < gw.level_change and gw.level_change < gw.level_change_hi and gw.pct_lo < gw.pct_hi,
  "default: intervals on both")
T.done()
