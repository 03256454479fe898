-- test_counterfactual: shocks, recomputation of derived variables, effects
-- through the fit protocol (static and dynamic models), intervals.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local cf = require "spillover.counterfactual"

-- parse_change
local c = cf.parse_change("+20%")
T.check(c.kind == "pct" and c.value == 20, "+20% is a percent change")
c = cf.parse_change("-0.5")
T.check(c.kind == "add" and c.value == -0.5, "-0.5 is added")
c = cf.parse_change("=3")
T.check(c.kind == "set" and c.value == 3, "=3 sets")
c = cf.parse_change(2)
T.check(c.kind == "add" and c.value == 2, "a number is added")
T.checkerr("cannot read \"20 percent\"", cf.parse_change, "20 percent")
T.checkerr("expected a change", cf.parse_change, {})

-- A small panel: 3 units x 5 years.
local ids, years, x, z, reg = {}, {}, {}, {}, {}
for u = 1, 3 do
  for t = 2001, 2005 do
    ids[#ids + 1] = "u" .. u
    years[#years + 1] = t
    x[#x + 1] = 1 + u + 0.5 * (t - 2000) + 0.1 * ((u * 7 + t) % 5)
    z[#z + 1] = (u * 13 + t * 3) % 7
    reg[#reg + 1] = u == 1 and "A" or "B"
  end
end
local d = sp.frame({ id = ids, year = years, x = x, z = z, reg = reg })
d:panel { entity = "id", time = "year" }

-- apply_shocks: where, window, phase-in.
local s, mask = cf.apply_shocks(d, { { variable = "x", where = "reg == 'B'", from = 2003, change = "+10%", phase_in = 2 } },
  "year")
local sx = s.x
local ok = true
for i = 1, d:nrow() do
  local expect = x[i]
  if reg[i] == "B" and years[i] >= 2003 then
    local w = math.min(1, (years[i] - 2003 + 1) / 2)
    expect = x[i] * (1 + w * 0.10)
  end
  ok = ok and math.abs(sx[i] - expect) < 1e-12 and (mask[i] == (reg[i] == "B" and years[i] >= 2003))
end
T.check(ok, "shock applied to the selected rows and years, phased in over two periods")
T.checkerr("categorical", cf.apply_shocks, d, { { variable = "reg", change = "+1" } }, "year")
T.checkerr("shock where", cf.apply_shocks, d, { { variable = "x", where = "nosuch > 1", change = "+1" } }, "year")

-- Static model: y = 2 + 0.7 log(x) + 0.3 z + e; shock x by 10%: effect 0.7 log(1.1) exactly.
local y = {}
for i = 1, #x do y[i] = 2 + 0.7 * math.log(x[i]) + 0.3 * z[i] + 0.01 * math.sin(i) end
d.y = y
local function derive(f) f.lx = sp.eval(f, "log(x)") end
derive(d)
local fit = sp.ols(d, "y ~ lx + z")
local r = cf.run { data = d, derive = derive, fit = fit, entity = "id", time = "year", groups = { "reg" },
  shocks = { { variable = "x", where = "reg == 'B'", from = 2004, change = "+10%" } } }
local b = fit:coef().lx
local unit_ok = true
for _, u in ipairs(r.units) do
  local want = (u.shocked and b * math.log(1.1)) or 0
  unit_ok = unit_ok and math.abs(u.effect - want) < 1e-12
end
T.check(unit_ok, "per-unit effects are b * log(1.1) where shocked, 0 elsewhere")
T.near(r.groups["reg=B"].total.sum, 4 * b * math.log(1.1), 1e-12, "group total = 4 shocked cells")
T.near(r.groups.all.periods["2005"].sum, 2 * b * math.log(1.1), 1e-12, "period sum")
T.check(r.groups["reg=A"].total.sum == 0, "unshocked group has no effect")

-- Intervals from draws: reproducible, and they bracket the point estimate.
local r1 = cf.run { data = d, derive = derive, fit = fit, entity = "id", time = "year",
  shocks = { { variable = "x", from = 2004, change = "+10%" } }, draws = 300, seed = 5 }
local r2 = cf.run { data = d, derive = derive, fit = fit, entity = "id", time = "year",
  shocks = { { variable = "x", from = 2004, change = "+10%" } }, draws = 300, seed = 5 }
local t1, t2 = r1.groups.all.total, r2.groups.all.total
T.check(t1.sum_lo == t2.sum_lo and t1.sum_hi == t2.sum_hi, "same seed, same interval")
T.check(t1.sum_lo < t1.sum and t1.sum < t1.sum_hi, "the interval brackets the effect")
-- The draw interval matches the delta method: sd of 6 cells * log(1.1) * se(b).
local se = fit:se().lx
local half = (t1.sum_hi - t1.sum_lo) / 2
T.near(half, 1.96 * 6 * math.log(1.1) * se, 0.15, "draw interval close to the delta-method interval")

-- Dynamic model: y_t = a_i + rho y_{t-1} + beta x_t; a permanent +1 on x from
-- 2003 gives beta, beta (1 + rho), beta (1 + rho + rho^2).
local yd = {}
for i = 1, #x do
  local u = math.floor((i - 1) / 5)
  local prev = (i - 1) % 5 == 0 and 1.0 or yd[i - 1]
  yd[i] = 0.5 * u + 0.6 * prev + 0.4 * x[i] + 0.001 * math.cos(3 * i)
end
d.yd = yd
local dyn = sp.ols(d, "yd ~ l(yd, 1) + x | id")
local rho, beta = dyn:coef()["l(yd, 1)"], dyn:coef().x
local rd = cf.run { data = d, fit = dyn, entity = "id", time = "year",
  shocks = { { variable = "x", from = 2003, change = "+1" } } }
T.check(cf.is_dynamic(dyn), "a lag of the outcome makes the model dynamic")
T.near(rd.groups.all.periods["2003"].mean, beta, 1e-9, "dynamic: first period")
T.near(rd.groups.all.periods["2004"].mean, beta * (1 + rho), 1e-9, "dynamic: second period")
T.near(rd.groups.all.periods["2005"].mean, beta * (1 + rho + rho * rho), 1e-9, "dynamic: third period")
-- Dynamics come from the formula's structure, not its text: a backquoted
-- outcome (which a text match of "l(y, " missed, predicting as if static)
-- and a transformed outcome (whose lags have no column to feed: said so).
d["y d"] = yd
local dq = sp.ols(d, "`y d` ~ l(`y d`, 1) + x | id")
local rq = cf.run { data = d, fit = dq, entity = "id", time = "year",
  shocks = { { variable = "x", from = 2003, change = "+1" } } }
T.check(cf.is_dynamic(dq), "a lag of a backquoted outcome makes the model dynamic")
T.near(rq.groups.all.periods["2005"].mean, rd.groups.all.periods["2005"].mean, 1e-12,
  "backquoted outcome: the same path as the plain one")
d["y d"] = nil
local dlog = sp.ols(d, "log(yd) ~ l(log(yd), 1) + x | id")
T.check(cf.is_dynamic(dlog), "a lag of a transformed outcome makes the model dynamic")
T.checkerr("counterfactual: the outcome log%(yd%) feeds its own lags, so the shocked predictions replace its column; " ..
  "it is not a column of the data", cf.run, { data = d, fit = dlog, entity = "id", time = "year",
  shocks = { { variable = "x", from = 2003, change = "+1" } } })
T.check(not cf.is_dynamic(sp.ols(d, "yd ~ x | id")), "no lag of the outcome: static")

-- Cluster bootstrap (refits on entity-resampled data).
local rb = cf.run { data = d, derive = derive, fit = sp.ols(d, "y ~ lx + z | id"), entity = "id", time = "year",
  shocks = { { variable = "x", from = 2004, change = "+10%" } }, bootstrap = 40, seed = 9 }
T.check(rb.method == "cluster bootstrap" and rb.ndraws == 40 and rb.groups.all.total.sum_lo <= rb.groups.all.total.sum_hi,
  "cluster bootstrap gives an interval")
-- Draw r comes from its own stream, rng:substream(r) of the seed, not from
-- one stream in sequence: a draw does not depend on the draws before it, so
-- the draws can be split over the processes of an MPI job (test_mpi.lua).
local seen_coef, seen_first = {}, {}
local fb = sp.ols(d, "y ~ lx + z | id")
local watch = setmetatable({
  draw = function(self, rng)
    local c = fb:draw(rng)
    seen_coef[#seen_coef + 1] = c.lx
    return c
  end,
  refit = function(self, bd)
    seen_first[#seen_first + 1] = bd.id[1]
    return fb:refit(bd)
  end,
}, { __index = fb })
cf.run { data = d, derive = derive, fit = watch, entity = "id", time = "year",
  shocks = { { variable = "x", from = 2004, change = "+10%" } }, draws = 3, seed = 5, progress = false }
cf.run { data = d, derive = derive, fit = watch, entity = "id", time = "year",
  shocks = { { variable = "x", from = 2004, change = "+10%" } }, bootstrap = 3, seed = 9, progress = false }
local own_stream = #seen_coef == 3 and #seen_first == 3
for r = 1, 3 do
  own_stream = own_stream and seen_coef[r] == fb:draw(sp.rng(5):substream(r)).lx and
    seen_first[r] == ({ "u1", "u2", "u3" })[sp.rng(9):substream(r):integer(3)] .. "#1"
end
T.check(own_stream, "parameter draw r is fit:draw(rng:substream(r)); bootstrap draw r resamples with rng:substream(r)")
T.checkerr("fit protocol", cf.run, { data = d, fit = {}, shocks = {} })
-- No shocks at all is a mistake, not a zero effect (the report's plots once
-- failed on it); phase_in without from has no period to count from.
T.checkerr("'shocks' must be a non%-empty array", cf.run, { data = d, fit = fit, shocks = {} })
T.checkerr("'shocks' must be a non%-empty array", cf.run, { data = d, fit = fit })
T.checkerr("'level' must be a number between 0 and 1", cf.run, { data = d, fit = fit, draws = 10, level = 95,
  shocks = { { variable = "x", change = "+1" } } })
T.checkerr("'phase_in' counts periods from 'from'", cf.apply_shocks, d,
  { { variable = "x", to = 2004, phase_in = 2, change = "+1" } }, "year")
-- The disparity change of an experiment: per period, the measure of the
-- baseline and the scenario predictions (here the Gini of exp(prediction)),
-- with intervals over the draws.
do
  local disparity = require "spillover.disparity"
  local rd = cf.run { data = d, derive = derive, fit = fit, entity = "id", time = "year", draws = 50, seed = 3,
    shocks = { { variable = "x", where = "reg == 'B'", from = 2004, change = "+10%" } },
    disparity = { measure = "gini", transform = "exp" } }
  T.check(#rd.disparity == 5 and rd.disparity[1].period == 2001, "one row per period")
  local p0 = fit:predict(d)
  local v = {}
  for i = 1, d:nrow() do if years[i] == 2004 then v[#v + 1] = math.exp(p0:get(i, 1)) end end
  T.near(rd.disparity[4].baseline, disparity.gini(v), 1e-12, "baseline Gini of 2004 = the Gini of exp(prediction)")
  T.check(rd.disparity[1].change == 0 and rd.disparity[4].change ~= 0, "no change before the shock, a change after")
  T.check(rd.disparity[4].lo <= rd.disparity[4].change and rd.disparity[4].change <= rd.disparity[4].hi,
    "the interval over the draws covers the change")
end

-- Progress of the draws: a direct call draws a bar on a terminal (forced
-- here with SPILLOVER_PROGRESS=1 in a child, whose stderr is read back) and
-- nothing otherwise; a caller's spec.progress gets every draw instead.
do
  local exe = arg[-1] or "build/spillover"
  local tmp = assert(sp.sys.mkdtemp("/tmp/sp-cf-progress-"))
  local script = T.write(tmp .. "/child.lua", [[
local sp = require "spillover"
local cf = require "spillover.counterfactual"
local d = sp.frame { id = { "a", "a", "b", "b" }, year = { 1, 2, 1, 2 }, x = { 1, 2, 3, 5 }, y = { 2, 3.9, 6.2, 9.8 } }
d:panel { entity = "id", time = "year" }
cf.run { data = d, fit = sp.ols(d, "y ~ x"), entity = "id", time = "year", draws = 25,
  shocks = { { variable = "x", change = "+1" } } }
io.write("ok")
]])
  local function child(env)
    assert(os.execute(string.format("env -u SPILLOVER_PROGRESS %s %s %s > %s/out 2> %s/err", env, exe, script, tmp, tmp)))
    return T.read(tmp .. "/err"), T.read(tmp .. "/out")
  end
  local err, out = child("SPILLOVER_PROGRESS=1")
  T.check(out == "ok" and err:find("counterfactual draws", 1, true) and err:find("100%", 1, true) and
    err:find("25/25", 1, true), "draws: a bar on stderr when bars are drawn", err)
  err, out = child("")
  T.check(out == "ok" and err == "", "draws: nothing when stderr is not a terminal", err)
  -- spillover run --quiet: no bar, the experiment's nor the draws' own
  local root = assert(sp.sys.realpath("."))
  T.write(tmp .. "/s.yaml", ([[
name: quiet
data: {file: PANEL, entity: province, time: year}
models:
  fe: {estimator: ols, formula: patent_grants ~ digital_finance | province + year}
experiments:
  west:
    model: fe
    shock: {variable: digital_finance, where: "region_nbs == 'West'", from: 2020, change: "+20%"}
    draws: 20
report: {formats: [csv]}
]]):gsub("PANEL", root .. "/scenarios/data/cn_province_panel.csv"))
  assert(os.execute(string.format("env SPILLOVER_PROGRESS=1 %s run %s/s.yaml -q -o %s/res > %s/out 2> %s/err", exe, tmp,
    tmp, tmp, tmp)))
  err = T.read(tmp .. "/err")
  T.check(err == "", "run -q: no bar for the draws", err)
  local seen = {}
  cf.run { data = d, derive = derive, fit = fit, entity = "id", time = "year", draws = 7,
    shocks = { { variable = "x", change = "+1" } }, progress = function(i, n) seen[#seen + 1] = i .. "/" .. n end }
  T.check(table.concat(seen, " ") == "1/7 2/7 3/7 4/7 5/7 6/7 7/7", "spec.progress is told of every draw")
  os.execute("rm -rf " .. tmp)
end

T.done()
