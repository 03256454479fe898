-- test_compare: the experiments of a scenario side by side (spillover.compare):
-- total effect, the input each adds, effect per unit of input, intervals;
-- the compare: key, its checks and its files.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local compare = require "spillover.compare"

-- A roll-out's input is its treated unit-periods.
local rows = compare.table({ experiments = { ro = { rollout = { from = 2 } } }, data = {} },
  { experiments = { ro = { model = "m", rollout = { from = 2 }, units = { { shocked = true }, { shocked = false }, { shocked = true } },
    groups = { all = { total = { sum = 4, sum_lo = 2, sum_hi = 6 } } } } } }, nil)
T.check(rows[1].input == "treated unit-periods" and rows[1].amount == 2 and rows[1].per_input == 2 and
  rows[1].per_input_lo == 1 and rows[1].per_input_hi == 3, "roll-out: effect per treated unit-period, with its interval")

local scenario = sp.scenario
local root = assert(sp.sys.realpath("."))
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-compare-"))
local text = ([[
name: small_compare
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
  south:
    model: fe
    shock: {variable: pcap, where: "region >= 5 and region <= 7", from: 1980, change: "+10%"}
    draws: 50
  two:
    model: fe
    shocks: [{variable: pcap, where: "region == 1", change: "+5%"}, {variable: pc, where: "region == 1", change: "+5%"}]
  budget:
    model: fe
    allocate: {variable: pcap, budget: 1000, where: "region == 1", from: 1985, upper: 400}
    draws: 50
  dose:
    model: fe
    shock: {variable: pcap, where: "region == 1", change: "+10%"}
    sweep:
      grid: {shock.change: ["+10%", "+20%"]}
compare: [south, two, budget, dose]
report:
  formats: [csv, svg]
]]):gsub("PRODUC", root .. "/tests/reference/data/Produc.csv")
T.write(tmp .. "/s.yaml", text)
local s = scenario.load(tmp .. "/s.yaml")
local res = scenario.execute(s)
local by = {}
for _, r in ipairs(res.compare) do by[r.experiment] = r end
T.check(#res.compare == 5, "one row per experiment, one per sweep point", tostring(#res.compare))
-- the input of the shock by hand: 10% of pcap in the southern states from 1980
local d = res.data
local pcap, region, year = d.pcap, d.region, d.year
local want = 0
for i = 1, d:nrow() do
  if region[i] >= 5 and region[i] <= 7 and year[i] >= 1980 then want = want + 0.1 * pcap[i] end
end
local south = by.south
T.near(south.amount, want, 1e-12, "shock: the input is the sum of the change to its variable")
T.check(south.input == "pcap", "shock: the input's name")
local tot = res.experiments.south.groups.all.total
T.check(south.total == tot.sum and south.lo == tot.sum_lo and south.hi == tot.sum_hi, "total effect and its interval")
T.near(south.per_input, tot.sum / want, 1e-12, "effect per unit of input")
T.near(south.per_input_lo, tot.sum_lo / want, 1e-12, "its interval")
T.check(south.level_total == tot.level_change and south.level_lo == tot.level_change_lo and south.level_total ~= nil,
  "the total in the outcome's levels, as the experiment reports it")
T.near(south.level_per_input, tot.level_change / want, 1e-12, "levels per unit of input")
T.check(by.two.input == "pcap + pc" and by.two.per_input == nil, "shocks to two variables: no single input")
T.near(by.budget.amount, 1000 * 2, 1e-12, "allocation: the budget per period times the horizon's periods (1985, 1986)")
T.near(by["dose[shock.change=+20%]"].amount, 2 * by["dose[shock.change=+10%]"].amount, 1e-12,
  "sweep points: each its own input")

local out = require("spillover.report").write(s, res, { outdir = tmp .. "/out" })
local csv = T.read(out .. "/compare.csv")
T.check(csv:find("^experiment,model,total,lo,hi,input,amount,per_input,per_input_lo,per_input_hi,level_total,level_lo," ..
  "level_hi,level_per_input,level_per_input_lo,level_per_input_hi\n"), "compare.csv header")
T.check(sp.sys.exists(out .. "/compare.md") and sp.sys.exists(out .. "/compare_total.svg") and
  sp.sys.exists(out .. "/compare_per_input.svg"), "compare.md and its plots")
local json = sp.json.decode(T.read(out .. "/results.json"))
T.check(json.compare and #json.compare == 5, "results.json carries the comparison compare: asks for")

-- Without compare:, every experiment, and nothing added to results.json.
T.write(tmp .. "/all.yaml", T.edit(T.edit(text, "compare: [south, two, budget, dose]\n", ""), "draws: 50", "draws: 0"))
out = scenario.run(scenario.load(tmp .. "/all.yaml"), { outdir = tmp .. "/out_all" })
csv = T.read(out .. "/compare.csv")
local n = 0
for _ in csv:gmatch("\n") do n = n + 1 end
T.check(n == 6, "without compare:, all experiments (header + 5 rows)", tostring(n))
json = sp.json.decode(T.read(out .. "/results.json"))
T.check(json.compare == nil, "without compare:, results.json is unchanged")

local function check_error(pattern, from, to)
  T.write(tmp .. "/bad.yaml", T.edit(text, from, to))
  T.checkerr(pattern, function() scenario.check(scenario.load(tmp .. "/bad.yaml")) end)
end
check_error("bad.yaml:%d+:%d+: compare%[2%]: unknown experiment 'tow' %(did you mean 'two'%?%)",
  "compare: [south, two", "compare: [south, tow")
check_error("bad.yaml:%d+:%d+: compare: expected a list of experiments or \"all\"", "compare: [south, two, budget, dose]",
  "compare: every")
sp.sys.remove_tree(tmp)

T.done()
