-- test_threshold: sp.threshold (Hansen 1999) through the Lua API: the three
-- reference cases on Hansen's data (via the reference handler), the fit
-- protocol (names, predictions, counterfactual regime switches), thread
-- invariance, unbalanced panels, several regime regressors, the LR plot and
-- every documented error.
package.path = "tests/lua/?.lua;tests/reference/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local thr = require "spillover.threshold"
local cf = require "spillover.counterfactual"

local d = sp.read_csv("tests/reference/data/hansen_1999_invest_565firms.csv")
d:panel { entity = "id", time = "year" }
local F = "i ~ q1 + q2 + q3 + d1 + qd1"

-- ---- the reference cases (same checks as tests/reference/handlers/threshold.lua) ----
do
  local H = dofile("tests/reference/handlers/threshold.lua")
  local ctx = { dataset = function() return d end, NOT_COVERED = "NOT_COVERED: " }
  for _, name in ipairs({ "single", "double", "triple" }) do
    local case = sp.json.read("tests/reference/threshold_hansen1999_" .. name .. ".json")
    local checks = H.panel_threshold_fe(case, ctx)
    local bad = {}
    for _, c in ipairs(checks) do
      local label, got, want, rtol, atol = c[1], c[2], c[3], c[4] or 1e-9, c[5] or 0
      local ok
      if type(want) ~= "number" then ok = got == want
      else ok = type(got) == "number" and (math.abs(got - want) <= rtol * math.abs(want) or math.abs(got - want) <= atol) end
      if not ok then bad[#bad + 1] = string.format("%s: got %s want %s", label, tostring(got), tostring(want)) end
    end
    T.check(#bad == 0 and #checks > 40, string.format("reference %s: %d quantities match", name, #checks),
      table.concat(bad, "; "))
  end
end

-- ---- the fit ------------------------------------------------------------------------------
local fit = thr.threshold(d, F, { threshold = "d1", regime = "c1", bootstrap = 50, seed = 5 })
T.check(sp.is_fit(fit), "a fit object")
T.check(fit.names[6] == "c1:regime1" and fit.names[7] == "c1:regime2", "regime coefficients named c1:regime1, c1:regime2")
T.near(fit:coef()["c1:regime2"], 0.08626364910860822, 1e-8, "regime 2 coefficient")
T.check(#fit.stats.lr == 1 and #fit.stats.lr[1].gamma == 393 and #fit.stats.lr[1].lr == 393, "stats.lr: the LR curve")
T.check(fit.stats.F[1].statistic == fit.stats.tests[1].F and fit.stats.F[1].pvalue ~= nil, "stats.F: tests with bootstrap p")
T.check(#fit.stats.tests[1].Fboot == 50, "the bootstrap statistics are kept")
T.check(fit.stats.regime_nobs[1] + fit.stats.regime_nobs[2] == 7910, "regime sizes")
T.check(tostring(fit):find("threshold 1 %(d1%): 0.0157") ~= nil, "the summary reports the threshold")

-- Same bootstrap with 2 threads.
local fit2 = thr.threshold(d, F, { threshold = "d1", regime = "c1", bootstrap = 50, seed = 5, threads = 2 })
local same = true
for r = 1, 50 do same = same and fit2.stats.tests[1].Fboot[r] == fit.stats.tests[1].Fboot[r] end
T.check(same, "bootstrap identical with 1 and 2 threads")

-- Predictions: in-sample they reproduce the fitted values.
local p = fit:predict(d)
local fv = fit:fitted()
local worst = 0
for i = 1, d:nrow() do worst = math.max(worst, math.abs(p:get(i, 1) - fv:get(i, 1))) end
T.check(worst < 1e-10, "predict(d) = fitted values", string.format("max diff %g", worst))

-- Counterfactual: moving d1 above gamma switches the row to regime 2.
do
  local g = fit.stats.thresholds[1]
  local b = fit:coef()
  local res = cf.run { fit = fit, data = d, entity = "id", time = "year",
    shocks = { { variable = "d1", where = "id == 1", change = "=0.9" } } }
  local dd = d.d1
  local c1 = d.c1
  local ok, switched, n1 = true, 0, 0
  for i, u in ipairs(res.units) do
    if u.shocked then
      n1 = n1 + 1
      local old = dd:get(i, 1)
      local want = b.d1 * (0.9 - old)
      if old <= g then
        want = want + (b["c1:regime2"] - b["c1:regime1"]) * c1:get(i, 1)
        switched = switched + 1
      end
      if math.abs(u.effect - want) > 1e-10 then ok = false end
    elseif u.effect ~= 0 then
      ok = false
    end
  end
  T.check(n1 == 14 and ok, "counterfactual effect = d1 slope x change (+ regime switch) for the shocked firm")
  -- Firm 1's d1 values: some start below gamma?  Find a firm that does.
  local firm
  for i = 1, d:nrow() do if dd:get(i, 1) <= g then firm = d.id:get(i, 1); break end end
  local res2 = cf.run { fit = fit, data = d, entity = "id", time = "year",
    shocks = { { variable = "d1", where = "id == " .. math.tointeger(firm), change = "=0.9" } } }
  local sw = 0
  for i, u in ipairs(res2.units) do
    if u.shocked and dd:get(i, 1) <= g then
      sw = sw + 1
      local want = b.d1 * (0.9 - dd:get(i, 1)) + (b["c1:regime2"] - b["c1:regime1"]) * c1:get(i, 1)
      T.near(u.effect, want, 1e-9, "regime switch of firm " .. math.tointeger(firm) .. " row " .. i)
    end
  end
  T.check(sw > 0, "some shocked rows cross the threshold")
end

-- ---- beyond xthreg: unbalanced panels, several regime regressors -------------------
do
  local rows = {}
  for i = 1, d:nrow() do if not (d.id:get(i, 1) % 3 == 0 and d.year:get(i, 1) < 1978) then rows[#rows + 1] = i end end
  local du = d:take(rows)
  du:panel { entity = "id", time = "year" }
  local fu = thr.threshold(du, F, { threshold = "d1", regime = "c1", n = 2, bootstrap = 20, seed = 2 })
  local fn = thr.threshold(du, F, { threshold = "d1", regime = "c1", n = 2, bootstrap = false, naive = true })
  T.check(fu.stats.balanced == false and fu.nobs == #rows, "unbalanced panel accepted")
  T.check(fu.stats.thresholds[1] == fn.stats.thresholds[1] and fu.stats.thresholds[2] == fn.stats.thresholds[2],
    "unbalanced: incremental scan = refit per candidate")
  T.near(fu.stats.tests[2].F, fn.stats.tests[2].F, 1e-9, "unbalanced: same F2")
  T.check(fu.stats.tests[2].pvalue >= 0 and fu.stats.tests[2].pvalue <= 1, "unbalanced: bootstrap p-value")

  local f2 = thr.threshold(d, "i ~ q1 + q2 + q3 + qd1", { threshold = "d1", regime = { "c1", "d1" }, bootstrap = false })
  T.check(f2.index["c1:regime1"] and f2.index["d1:regime2"] and #f2.names == 8, "two regime regressors: four regime coefficients")
  local fn2 = thr.threshold(d, "i ~ q1 + q2 + q3 + qd1", { threshold = "d1", regime = { "c1", "d1" }, bootstrap = false,
    naive = true })
  T.check(f2.stats.thresholds[1] == fn2.stats.thresholds[1], "two regime regressors: same threshold as refits")
  T.near(f2.stats.ssr, fn2.stats.ssr, 1e-10, "two regime regressors: same SSR as refits")
  local fc = thr.threshold(d, F, { threshold = "d1", regime = "c1", bootstrap = false, vcov = { cluster = "id" } })
  T.check(fc.vcov_label:find("clustered") ~= nil and fc:se()["c1:regime1"] > 0, "clustered standard errors")
end

-- ---- the LR plot --------------------------------------------------------------------------
do
  local base = os.tmpname()
  local path = base .. ".svg"
  local f3 = thr.threshold(d, F, { threshold = "d1", regime = "c1", n = 2, bootstrap = false })
  thr.lr_plot(f3, path)
  local fh = io.open(path, "rb")
  local body = fh and fh:read("a") or ""
  if fh then fh:close() end
  os.remove(path)
  os.remove(base)
  T.check(#body > 1000 and body:find("<svg") ~= nil, "lr_plot writes the figure")
end

-- ---- errors -------------------------------------------------------------------------------
do
  local dc = d:copy()
  dc.k5 = 5
  T.checkerr("threshold: the threshold variable 'k5' is constant", thr.threshold, dc, F,
    { threshold = "k5", regime = "c1", bootstrap = false })
  local two = {}
  for i = 1, d:nrow() do two[i] = i % 2 end
  dc.two = two
  T.checkerr("'two' has 2 distinct values, too few for 2 thresholds", thr.threshold, dc, F,
    { threshold = "two", regime = "c1", n = 2, bootstrap = false })
  -- One observation above the only candidate, two regime coefficients.
  local one = {}
  for i = 1, d:nrow() do one[i] = i == 3 and 1 or 0 end
  dc.one = one
  T.checkerr("no candidate for the first threshold leaves every regime with at least 2 observations",
    thr.threshold, dc, F, { threshold = "one", regime = { "c1", "q" }, bootstrap = false })
  T.checkerr("option 'bootstrap' must be a number of replications >= 1", thr.threshold, d, F,
    { threshold = "d1", regime = "c1", bootstrap = 0 })
  T.checkerr("option 'bootstrap' must be a number of replications >= 1", thr.threshold, d, F,
    { threshold = "d1", regime = "c1", bootstrap = -5 })
  T.checkerr("option 'n' %(number of thresholds%) must be 1, 2 or 3, got 4", thr.threshold, d, F,
    { threshold = "d1", regime = "c1", n = 4 })
  T.checkerr("option 'threshold' must name", thr.threshold, d, F, { regime = "c1" })
  -- a misspelt option was ignored (here: 300 replications instead of 10)
  T.checkerr("threshold: unknown option 'bootstap'", thr.threshold, d, F, { threshold = "d1", regime = "c1", bootstap = 10 })
  T.checkerr("threshold: expected an options table as argument 3, got string", thr.threshold, d, F, "d1")
  T.checkerr("option 'regime' must name", thr.threshold, d, F, { threshold = "d1" })
  T.checkerr("regime regressor 'd1' is also in the formula", thr.threshold, d, F, { threshold = "d1", regime = "d1" })
  T.checkerr("the data have no column 'nosuch'", thr.threshold, d, F, { threshold = "nosuch", regime = "c1" })
  T.checkerr("leave out the '|' part", thr.threshold, d, F .. " | id", { threshold = "d1", regime = "c1" })
  T.checkerr("option 'trim': entry 1 must be a number in %[0, 0.5%)", thr.threshold, d, F,
    { threshold = "d1", regime = "c1", trim = { 0.6 } })
  T.checkerr("option 'grid' must be a number of points", thr.threshold, d, F,
    { threshold = "d1", regime = "c1", grid = "fine" })
  local np = sp.read_csv("tests/reference/data/hansen_1999_invest_565firms.csv")
  T.checkerr("needs a panel index", thr.threshold, np, F, { threshold = "d1", regime = "c1" })
  dc.idc = d.id
  T.checkerr("regressor 'idc' is collinear with the other regressors or constant within entities", thr.threshold, dc,
    "i ~ q1 + idc", { threshold = "d1", regime = "c1", bootstrap = false })
end

-- ---- formulas are read and rewritten as objects, not as text -----------------------------
do
  -- an entity column whose name needs backquotes: "i ~ ... | firm id" did not parse
  local dq = d:copy()
  dq["firm id"] = d.id
  dq:panel { entity = "firm id", time = "year" }
  local o = { threshold = "d1", regime = "c1", bootstrap = false }
  local a, b = thr.threshold(d, F, o), thr.threshold(dq, F, o)
  T.check(a.stats.thresholds[1] == b.stats.thresholds[1] and a:coef()["c1:regime2"] == b:coef()["c1:regime2"],
    "an entity named 'firm id' gives the same fit")
  -- the regime regressor written with backquotes or other spacing is still found in the formula
  T.checkerr("regime regressor 'q1' is also in the formula", thr.threshold, d, "i ~ `q1` + q2",
    { threshold = "d1", regime = "q1" })
  T.checkerr("leave out the '|' part", thr.threshold, d, "i ~ q1 | w ~ z", o)
  T.checkerr("has no response", thr.threshold, d, "~ q1", o)
  T.checkerr("expected '~' after the dependent variable", thr.threshold, d, "i q1", o)
end

T.done()
