-- test_spec_curve: specification curves (spillover.spec_curve): every cell
-- is the fit a user would make by hand, the summary counts what it says,
-- failed cells are kept and named, bad choices are refused before the first
-- fit, and the scenario section is checked at its line and writes its files.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

local d = sp.read_csv("tests/reference/data/Produc.csv")
d:panel { entity = "state", time = "year" }
local choices = {
  outcomes = { "log_gsp", "log(gsp)" },
  treatments = { "log_pcap" },
  controls = { none = {}, base = { "log_pc" } },
  fe = { twoway = { "state", "year" }, state = { "state" } },
  samples = { all = true, early = "year < 1980" },
  vcov = { cluster = { cluster = "state" }, hc1 = "hc1" },
}
local c = sp.spec_curve(d, choices)
T.check(#c.cells == 2 * 2 * 2 * 2 * 2 and c.summary.failed == 0, "one cell per combination (32)")

-- Every cell equals the fit made by hand from its choices.
local early = d:filter("year < 1980")
local worst = 0
for _, cell in ipairs(c.cells) do
  local ch = cell.choice
  local data = ch.samples.name == "early" and early or d
  local fit = sp.ols(data, cell.formula, { vcov = ch.vcov.value })
  local se, p = fit:se().log_pcap, fit:pvalue().log_pcap
  local ci = fit:confint(0.95).log_pcap
  for _, pair in ipairs { { fit:coef().log_pcap, cell.estimate }, { se, cell.std_error }, { p, cell.pvalue },
    { ci[1], cell.lo }, { ci[2], cell.hi } } do
    worst = math.max(worst, math.abs(pair[1] - pair[2]))
  end
end
T.check(worst == 0, "each cell's estimate, SE, p-value and interval are the hand-made fit's", "max diff " .. worst)
T.check(c.cells[1].formula == "log_gsp ~ log_pcap + log_pc | state", "cell 1: the first choice of each kind (sorted names)")
T.check(c.cells[#c.cells].formula == "log(gsp) ~ log_pcap | state + year", "the last cell: the last choices")

-- The summary, recounted.
local pos, sigpos, est = 0, 0, {}
for _, cell in ipairs(c.cells) do
  if cell.estimate > 0 then pos = pos + 1 end
  if cell.estimate > 0 and cell.pvalue < 0.05 then sigpos = sigpos + 1 end
  est[#est + 1] = cell.estimate
end
table.sort(est)
T.near(c.summary.share_positive, pos / 32, 1e-15, "share positive")
T.near(c.summary.share_significant_positive, sigpos / 32, 1e-15, "share positive and significant at 5%")
T.near(c.summary.median, (est[16] + est[17]) / 2, 1e-15, "median of the estimates")
T.check(c.summary.min == est[1] and c.summary.max == est[32], "range")
local ranked = c:ranked()
T.check(#ranked == 32 and ranked[1].estimate == est[1] and ranked[32].estimate == est[32], "ranked by estimate")
local f = c:frame()
T.check(f:nrow() == 32 and f.estimate[5] == c.cells[5].estimate and f.samples[5] == c.cells[5].choice.samples.name,
  "frame: one row per cell")

-- A failing cell is kept with its error and counted, not dropped.
sp.register_estimator { name = "fails_on_early", fit = function(data, model)
  if data:nrow() < 816 then error("too few rows for this test estimator") end
  return sp.ols(data, model.formula, { vcov = model.vcov })
end }
local c2 = sp.spec_curve(d, { outcomes = { "log_gsp" }, treatments = { "log_pcap" }, samples = choices.samples,
  estimators = { "fails_on_early" } })
T.check(c2.summary.cells == 2 and c2.summary.failed == 1 and c2.summary.estimated == 1, "a failed cell is counted")
local failed
for _, cell in ipairs(c2.cells) do if cell.error then failed = cell end end
T.check(failed and failed.error:find("too few rows") and failed.estimate == nil, "and keeps its error, no number")
T.check(tostring(c2):find("1 failed") and tostring(c2):find("too few rows"), "printing names the failure")
T.checkerr("every one of the 1 specifications failed", sp.spec_curve, d,
  { outcomes = { "log_gsp" }, treatments = { "log_pcap" }, samples = { early = "year < 1980" }, estimators = { "fails_on_early" } })

-- Bad choices: refused before any fit.
T.checkerr("unknown estimator 'olz'", sp.spec_curve, d, { outcomes = { "log_gsp" }, treatments = { "log_pcap" }, estimators = { "olz" } })
T.checkerr("outcomes and treatments are required", sp.spec_curve, d, { outcomes = { "log_gsp" } })
T.checkerr("unknown option 'control'", sp.spec_curve, d, { outcomes = { "log_gsp" }, treatments = { "x" }, control = {} })
T.checkerr("sample 'none' selects no rows", sp.spec_curve, d,
  { outcomes = { "log_gsp" }, treatments = { "log_pcap" }, samples = { none = "year > 3000" } })
T.checkerr("not spatial", sp.spec_curve, d, { outcomes = { "log_gsp" }, treatments = { "log_pcap" },
  weights = { W = sp.weights.knn(sp.frame { id = { "a", "b", "c" }, x = { 0, 1, 2 }, y = { 0, 0, 1 } }, 1, { id = "id", x = "x", y = "y" }) } })
T.checkerr("sample 'bad': filter: cannot compile", sp.spec_curve, d,
  { outcomes = { "log_gsp" }, treatments = { "log_pcap" }, samples = { bad = "year >" } })
T.checkerr("no choice varies", function()
  sp.spec_curve(d, { outcomes = { "log_gsp" }, treatments = { "log_pcap" } }):plot("/tmp/sp-speccurve-none.png")
end)
T.checkerr("level must be", sp.spec_curve, d, { outcomes = { "log_gsp" }, treatments = { "log_pcap" } }, { level = 95 })

-- The figure, in both formats.
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-speccurve-"))
c:plot(tmp .. "/curve.png")
c:plot(tmp .. "/curve.svg")
local svg = T.read(tmp .. "/curve.svg") or ""
T.check(sp.sys.exists(tmp .. "/curve.png") and svg:find("outcome: log%(gsp%)") and svg:find("sample: early"),
  "the figure marks each choice that varies")

-- In a scenario: checked at the choice's line, run, written.
local root = assert(sp.sys.realpath("."))
local text = ([[
name: small_curve
seed: 3
data:
  file: ROOT/tests/reference/data/Produc.csv
  entity: state
  time: year
models:
  fe:
    estimator: ols
    formula: log_gsp ~ log_pcap | state + year
spec_curve:
  outcomes: [log_gsp]
  treatments: [log_pcap]
  controls:
    none: []
    base: [log_pc]
  samples:
    all: true
    early: "year < 1980"
report:
  formats: [md, svg]
]]):gsub("ROOT", root)
T.write(tmp .. "/s.yaml", text)
local out = sp.scenario.run(sp.scenario.load(tmp .. "/s.yaml"), { outdir = tmp .. "/out" })
local res = sp.json.decode(T.read(out .. "/results.json"))
T.check(res.spec_curve and res.spec_curve.summary.cells == 4 and #res.spec_curve.cells == 4, "results.json: summary and cells")
local r1 = res.spec_curve.cells[1]
local by_hand = sp.ols(d, "log_gsp ~ log_pcap + log_pc"):coef().log_pcap
T.near(r1.estimate, by_hand, 1e-14, "scenario cell 1 = the hand-made fit")
T.check(r1.controls == "base" and r1.samples == "all", "results.json names each cell's choices")
T.check((T.read(out .. "/spec_curve.csv") or ""):find("^cell,controls,samples,estimate,"), "spec_curve.csv")
T.check(sp.sys.exists(out .. "/spec_curve.svg") and sp.sys.exists(out .. "/spec_curve.md"), "figure and summary")

-- check refuses the scenario with from replaced by to (the last argument of
-- each call says what the case is)
local function refused(pattern, from, to)
  T.write(tmp .. "/bad.yaml", T.edit(text, from, to))
  T.checkerr(pattern, function() sp.scenario.check(sp.scenario.load(tmp .. "/bad.yaml")) end)
end
refused("bad.yaml:%d+:%d+: spec_curve.controls.base%[1%]: unknown variable 'log_pz'", "base: [log_pc]", "base: [log_pz]",
  "an unknown control, at its line")
refused("spec_curve.samples.early: unknown column 'yeer'", '"year < 1980"', '"yeer < 1980"', "a sample naming an unknown column")
refused("spec_curve.estimators%[1%]: unknown estimator 'olz'", "  treatments: [log_pcap]",
  "  treatments: [log_pcap]\n  estimators: [olz]", "an unknown estimator")
refused("spec_curve.vcov.c.cluster: unknown cluster variable 'stat'", "  treatments: [log_pcap]",
  "  treatments: [log_pcap]\n  vcov: {c: {cluster: stat}}", "an unknown cluster variable")
refused("spec_curve.sample: unknown key 'sample'", "  samples:", "  sample:", "a misspelt key")
sp.sys.remove_tree(tmp)
T.done()
