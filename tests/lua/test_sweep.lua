-- test_sweep: an experiment over a grid or a Latin hypercube of its settings
-- (spillover.sweep): the points, each point equal to the experiment run on
-- its own through the same fit, the long table, the dose-response plot, and
-- the scenario's checks.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local sweep = require "spillover.sweep"
local cf = require "spillover.counterfactual"

-- paths
local k = sweep.parse_path("shocks[2].where")
T.check(k[1] == "shocks" and k[2] == 2 and k[3] == "where" and #k == 3, "shocks[2].where -> shocks, 2, where")
T.checkerr("cannot read the path", sweep.parse_path, "shock.change]x")
T.checkerr("names a setting", sweep.parse_path, "2shock")
local e = { model = "m", shock = { variable = "x", change = "+10%" } }
local e2 = sweep.set(e, "shock.change", "+20%")
T.check(e2.shock.change == "+20%" and e.shock.change == "+10%", "set changes a copy, not the experiment")
T.checkerr("has no 'shocks%[3%]'", sweep.set, { shocks = { {}, {} } }, "shocks[3].change", "+1")
T.checkerr("the model is estimated once", sweep.set, e, "model", "other")

-- grid: every combination, the last path varying fastest
local paths, pts = sweep.points({ grid = { ["shock.change"] = { "+10%", "+20%", "+30%" }, ["shock.from"] = { 2002, 2004 } } })
T.check(#paths == 2 and paths[1] == "shock.change" and #pts == 6, "grid of 3 x 2 values: 6 points")
T.check(pts[1].values["shock.change"] == "+10%" and pts[1].values["shock.from"] == 2002 and
  pts[2].values["shock.from"] == 2004 and pts[6].values["shock.change"] == "+30%", "grid order")
T.checkerr("give 'grid' %(values per path%) or 'lhs'", sweep.points, {})
T.checkerr("non%-empty list", sweep.points, { grid = { ["shock.change"] = {} } })

-- Latin hypercube: one sample in each of n strata of every range
local n = 10
paths, pts = sweep.points({ lhs = { n = n, seed = 3, ranges = { ["shock.change"] = { "+5%", "+45%" }, ["shock.from"] = { 0, 1 } } } })
T.check(#pts == n, "lhs: n points")
local strata_c, strata_f = {}, {}
for _, p in ipairs(pts) do
  local c = cf.parse_change(p.values["shock.change"])
  T.check(c.kind == "pct", "lhs over changes keeps their kind")
  strata_c[math.floor((c.value - 5) / 4) + 1] = true
  strata_f[math.floor(p.values["shock.from"] * n) + 1] = true
end
local full = true
for i = 1, n do full = full and strata_c[i] and strata_f[i] end
T.check(full, "lhs: every stratum of every range holds a sample")
local _, again = sweep.points({ lhs = { n = n, seed = 3, ranges = { ["shock.change"] = { "+5%", "+45%" }, ["shock.from"] = { 0, 1 } } } })
T.check(again[4].values["shock.change"] == pts[4].values["shock.change"], "lhs: reproducible with its seed")
T.checkerr("two numbers or two changes of one kind", sweep.points, { lhs = { n = 3, ranges = { ["shock.change"] = { "+5%", "+4" } } } })

-- A sweep run through the same fit: each point as the experiment alone.
local ids, years, x, z, reg = {}, {}, {}, {}, {}
for u = 1, 4 do
  for t = 2001, 2005 do
    ids[#ids + 1], years[#years + 1] = "u" .. u, t
    x[#x + 1] = 1 + u + 0.5 * (t - 2000)
    z[#z + 1] = (u * 13 + t * 3) % 7
    reg[#reg + 1] = u <= 2 and "A" or "B"
  end
end
local d = sp.frame { id = ids, year = years, x = x, z = z, reg = reg }
d:panel { entity = "id", time = "year" }
local y = {}
for i = 1, #x do y[i] = 2 + 0.7 * math.log(x[i]) + 0.3 * z[i] + 0.05 * math.sin(i) end
d.y = y
local function derive(f) f.lx = sp.eval(f, "log(x)") end
derive(d)
local fit = sp.ols(d, "y ~ lx + z")
local function run_one(ep)
  return cf.run { data = d, derive = derive, fit = fit, entity = "id", time = "year", groups = { "reg" },
    shocks = { ep.shock }, draws = ep.draws, seed = 7 }
end
local exp = { model = "m", shock = { variable = "x", where = "reg == 'B'", from = 2003, change = "+10%" }, draws = 50,
  sweep = { grid = { ["shock.change"] = { "+30%", "+10%", "+20%" } } } }
local r = sweep.run(exp, run_one, { scenario = "s", experiment = "dose", outcome = "y", model = "m" })
T.check(#r.points == 3, "three points")
local alone = run_one(sweep.set(exp, "shock.change", "+20%"))
T.check(r.points[3].groups.all.total.sum == alone.groups.all.total.sum and
  r.points[3].groups.all.total.sum_lo == alone.groups.all.total.sum_lo, "a point equals its experiment run alone")
local b = fit:coef().lx
T.near(r.points[2].groups.all.total.sum, 6 * b * math.log(1.1), 1e-12, "the +10% point: 6 shocked cells x b log 1.1")
T.check(#r.sweep.rows == 3 * 2 * (#x + 3 * 6), "long table: per point, one row per unit x period and per group x " ..
  "period, on the model's scale and on the outcome's column", tostring(#r.sweep.rows))
local lrow = r.sweep.rows[2]
-- (a point keeps its group totals, not its units: its rows hold those)
local first_alone = run_one(sweep.set(exp, "shock.change", "+30%"))
T.check(lrow.variable == "level change|y" and lrow.unit == "u1" and lrow.value == first_alone.units[1].level_change
  and r.points[1].units == nil, "the level change's row follows each effect's")
local row = r.sweep.rows[1]
T.check(row.scenario == "s" and row.experiment == "dose" and row.point == 1 and row["shock.change"] == "+30%" and
  row.variable == "effect|y" and row.unit == "u1" and row.period == "2001" and row.value == 0, "long table columns")
local series, numeric = sweep.dose_response(r)
local all
for _, s in ipairs(series) do if s.label == "All units" then all = s end end
T.check(numeric and all.x[1] == 10 and all.x[2] == 20 and all.x[3] == 30, "dose-response: x is the change, sorted")
T.check(all.y[1] < all.y[2] and all.y[2] < all.y[3] and all.lo[1] <= all.y[1] and all.hi[3] >= all.y[3],
  "dose-response: the effect grows with the dose, inside its band")
T.checkerr("sweep point 2 %(shock.where = nosuch > 1%)", sweep.run,
  { model = "m", shock = { variable = "x", change = "+1" }, sweep = { grid = { ["shock.where"] = { "reg == 'A'", "nosuch > 1" } } } },
  run_one, { scenario = "s", experiment = "w" })

-- In a scenario: the files, and the checks.
local scenario = sp.scenario
local root = assert(sp.sys.realpath("."))
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-sweep-"))
local text = ([[
name: small_sweep
seed: 11
data:
  file: PRODUC
  entity: state
  time: year
derive:
  lpcap: log(pcap)
models:
  fe:
    estimator: ols
    formula: log_gsp ~ lpcap + log_pc + log_emp + unemp | state + year
experiments:
  dose:
    model: fe
    shock: {variable: pcap, where: "region >= 5 and region <= 7", from: 1980, change: "+10%"}
    sweep:
      grid: {shock.change: ["+10%", "+20%"]}
    draws: 20
  where:
    model: fe
    shock: {variable: pcap, where: "region == 1", change: "+10%"}
    sweep:
      grid: {shock.where: ["region == 1", "region == 2"]}
report:
  formats: [csv, svg]
]]):gsub("PRODUC", root .. "/tests/reference/data/Produc.csv")
T.write(tmp .. "/s.yaml", text)
local out = scenario.run(scenario.load(tmp .. "/s.yaml"), { outdir = tmp .. "/out" })
local csv = T.read(out .. "/sweep_dose.csv")
T.check(csv:find("^scenario,experiment,point,shock.change,variable,unit,period,value,lo,hi\n"), "sweep_<name>.csv header")
T.check(csv:find("\nsmall_sweep,dose,2,%+20%%,sum of effect|log_gsp,all,total,"), "the total of point 2")
T.check(sp.sys.exists(out .. "/dose_dose.svg") and sp.sys.exists(out .. "/where_dose.svg"),
  "dose-response plots (numeric and categorical sweeps)")
T.check(not sp.sys.exists(out .. "/effects_dose.csv"), "a sweep writes its long table, not one point's effects")
local json = sp.json.decode(T.read(out .. "/results.json"))
T.check(#json.experiments.dose.sweep.points == 2 and json.experiments.dose.sweep.rows[1].experiment == "dose",
  "results.json carries the sweep")

-- The model is estimated once for every point: an estimator that counts its fits.
local fits = 0
sp.register_estimator { name = "counting_ols", fit = function(data, model)
  fits = fits + 1
  return sp.ols(data, model.formula)
end }
T.write(tmp .. "/count.yaml", T.edit(text, "estimator: ols", "estimator: counting_ols"))
local counted = scenario.execute(scenario.load(tmp .. "/count.yaml"))
T.check(fits == 1 and #counted.experiments.dose.points == 2 and #counted.experiments.where.points == 2,
  "two sweeps of two points each: one estimation", tostring(fits))

local function check_error(pattern, from, to)
  T.write(tmp .. "/bad.yaml", T.edit(text, from, to))
  T.checkerr(pattern, function() scenario.check(scenario.load(tmp .. "/bad.yaml")) end)
end
check_error("bad.yaml:%d+:%d+: experiments%.dose%.sweep: point 2: cannot read \"%+20 percent\"", "\"+20%\"]", "\"+20 percent\"]")
check_error("experiments%.dose%.sweep: the experiment has no 'shocks', so it cannot vary \"shocks%[1%]%.change\"",
  "{shock.change:", "{\"shocks[1].change\":")
check_error("bad.yaml:%d+:%d+: experiments%.dose%.sweep%[point 1%]%.shock%.from: expected a number", "grid: {shock.change: [\"+10%\", \"+20%\"]}",
  "grid: {shock.from: [\"soon\"]}")
check_error("experiments%.dose%.sweep%.lhs: missing required key 'n'", "grid: {shock.change: [\"+10%\", \"+20%\"]}",
  "lhs: {ranges: {shock.change: [\"+5%\", \"+20%\"]}}")
sp.sys.remove_tree(tmp)

T.done()
