-- test_dea: sp.dea (radial CCR/BCC with two-phase slacks and dual weights,
-- FDH, SBM, super-SBM, DDF with bad outputs) against the printed results of
-- DataEnvelopmentAnalysis.jl's tests (test/dea.jl, deaerg.jl, deaenv.jl at
-- javierbarbero/DataEnvelopmentAnalysis.jl@338c0d23), identities (CCR <= BCC,
-- super-SBM = SBM for inefficient units, LP duality, invariances), thread
-- invariance, infeasibility reported per unit, and the documented errors.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local dea = require("spillover.dea").dea

local function vec_near(got, want, rtol, what)
  local worst, at = 0, 0
  for i = 1, #want do
    local e = math.abs(got[i] - want[i]) / math.max(1, math.abs(want[i]))
    if e ~= e or e > worst then worst, at = e, i end  -- a NaN counts as the worst
  end
  T.check(#got == #want and worst <= rtol, what, string.format("worst relative error %g at %d", worst, at))
end

local function col(rows, j)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r[j] end
  return out
end

-- ---- FLS book data (DataEnvelopmentAnalysis.jl test/dea.jl) ------------------------
local X = { { 5, 13 }, { 16, 12 }, { 16, 26 }, { 17, 15 }, { 18, 14 }, { 23, 6 }, { 25, 10 }, { 27, 22 },
  { 37, 14 }, { 42, 25 }, { 5, 17 } }
local Y = { 12, 14, 25, 26, 8, 9, 27, 30, 31, 26, 12 }

local ccr_i = dea { inputs = X, outputs = Y, model = "ccr", orientation = "input" }
vec_near(ccr_i.efficiency, { 1, 0.6222896791, 0.8198562444, 1, 0.3103709311, 0.5555555556, 1, 0.7576690896,
  0.8201058201, 0.4905660377, 1 }, 1e-9, "CCR input efficiency (DEA.jl)")
T.near(ccr_i.lambda(3, 1), 1.134321653, 1e-8, "CCR input lambda[3,1]")
T.near(ccr_i.lambda(3, 4), 0.4380053908, 1e-8, "CCR input lambda[3,4]")
T.near(ccr_i.lambda(10, 7), 0.49056603774, 1e-8, "CCR input lambda[10,7]")
vec_near(col(ccr_i.slacks.x, 1), { 0, 0, 0, 0, 0, 4.444444444, 0, 0, 1.640211640, 0, 0 }, 1e-8, "CCR input slacks x1")
vec_near(col(ccr_i.slacks.x, 2), { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4 }, 1e-8,
  "CCR input slacks x2 (efficient unit 11 has slack 4)")
T.check(table.concat(ccr_i.peers[3], ",") == "1,4", "peers of unit 3 are units 1 and 4")

local ccr_o = dea { inputs = X, outputs = Y, model = "ccr", orientation = "output" }
vec_near(ccr_o.efficiency, { 1, 1.606968641, 1.219726027, 1, 3.221951220, 1.8, 1, 1.319837398, 1.219354839,
  2.038461538, 1 }, 1e-9, "CCR output efficiency (DEA.jl)")
vec_near(col(ccr_o.slacks.x, 1), { 0, 0, 0, 0, 0, 8, 0, 0, 2, 0, 0 }, 1e-8, "CCR output slacks x1")

local bcc_i = dea { inputs = X, outputs = Y, model = "bcc", orientation = "input" }
vec_near(bcc_i.efficiency, { 1, 0.8699861687, 1, 1, 0.7116402116, 1, 1, 1, 1, 0.4931209269, 1 }, 1e-9,
  "BCC input efficiency (DEA.jl)")
vec_near(col(bcc_i.slacks.y, 1), { 0, 0, 0, 0, 2.698412698, 0, 0, 0, 0, 0, 0 }, 1e-8, "BCC input output slacks")
T.near(bcc_i.lambda(10, 7), 0.5195510500, 1e-8, "BCC input lambda[10,7]")

local bcc_o = dea { inputs = X, outputs = Y, model = "bcc", orientation = "output" }
vec_near(bcc_o.efficiency, { 1, 1.507518797, 1, 1, 3.203947368, 1, 1, 1, 1, 1.192307692, 1 }, 1e-9,
  "BCC output efficiency (DEA.jl)")
T.check(bcc_o.slacks.x[10][1] == 5 or math.abs(bcc_o.slacks.x[10][1] - 5) < 1e-8, "BCC output slack x1 of unit 10 = 5")
T.near(bcc_o.slacks.x[10][2], 11, 1e-8, "BCC output slack x2 of unit 10 = 11")

-- identities
do
  local ok = true
  for k = 1, #X do ok = ok and ccr_i.efficiency[k] <= bcc_i.efficiency[k] + 1e-12 end
  T.check(ok, "CCR <= BCC for every unit")
  local inv = true
  for k = 1, #X do inv = inv and math.abs(ccr_i.efficiency[k] * ccr_o.efficiency[k] - 1) < 1e-9 end
  T.check(inv, "CRS: input efficiency = 1 / output efficiency")
  -- LP duality: the multiplier form u'y_o = theta with v'x_o = 1.
  local dual = true
  for k = 1, #X do
    local v, u = ccr_i.weights.v[k], ccr_i.weights.u[k]
    local vx = v[1] * X[k][1] + v[2] * X[k][2]
    dual = dual and math.abs(vx - 1) < 1e-8 and math.abs(u[1] * Y[k] - ccr_i.efficiency[k]) < 1e-8
  end
  T.check(dual, "CCR duality: v'x_o = 1 and u'y_o = theta (primal = dual objective)")
  -- units of measurement, and scaling all inputs under CRS
  local X2 = {}
  for k, r in ipairs(X) do X2[k] = { r[1] * 1000, r[2] * 3 } end
  local r2 = dea { inputs = X2, outputs = Y, model = "bcc", orientation = "input" }
  vec_near(r2.efficiency, bcc_i.efficiency, 1e-9, "BCC scores do not depend on units of measurement")
  vec_near(col(r2.slacks.y, 1), col(bcc_i.slacks.y, 1), 1e-8, "slacks are reported in the data's units")
  local X3 = {}
  for k, r in ipairs(X) do X3[k] = { r[1] * 2, r[2] * 2 } end
  X3[3] = { 16, 26 }  -- one unit keeps its inputs: it gains relative to the others
  local r3 = dea { inputs = X3, outputs = Y, model = "ccr" }
  local X4 = {}
  for k, r in ipairs(X) do X4[k] = { r[1] * 2, r[2] * 2 } end
  local r4 = dea { inputs = X4, outputs = Y, model = "ccr" }
  vec_near(r4.efficiency, ccr_i.efficiency, 1e-9, "CRS: scaling all inputs of all units leaves the scores")
  T.check(r3.efficiency[3] > ccr_i.efficiency[3],
    "CRS: halving one unit's inputs relative to the others raises its score")
end

-- frame input with names, and res:frame()
do
  local x1, x2 = {}, {}
  for k, r in ipairs(X) do x1[k], x2[k] = r[1], r[2] end
  local names = {}
  for k = 1, #X do names[k] = "dmu" .. k end
  local d = sp.frame { x1 = x1, x2 = x2, y = Y, id = names }
  local r = dea { data = d, inputs = { "x1", "x2" }, outputs = { "y" }, id = "id" }
  vec_near(r.efficiency, ccr_i.efficiency, 1e-12, "frame columns give the same scores as matrices")
  local f = r:frame()
  T.check(f:nrow() == 11 and f.unit[6] == "dmu6" and math.abs(f.slack_x1:get(6, 1) - 4.444444444) < 1e-8,
    "res:frame() has one row per unit with its slacks")
  local m = dea { inputs = sp.matrix(X), outputs = sp.matrix(Y) }
  vec_near(m.efficiency, ccr_i.efficiency, 1e-12, "sp.matrix input")
end

-- ---- SBM (= ERG; DataEnvelopmentAnalysis.jl test/deaerg.jl) ------------------------
local EX = { 2, 4, 8, 12, 6, 14, 14, 9.412 }
local EY = { 1, 5, 8, 9, 3, 7, 9, 2.353 }
local sbm_c = dea { inputs = EX, outputs = EY, model = "sbm" }
vec_near(sbm_c.efficiency, { 0.4, 1, 0.8, 0.6, 0.4, 0.4, 0.514285714285650175, 0.2 }, 1e-8, "SBM CRS (DEA.jl ERG)")
-- Unit 3 has two optimal projections (DEA.jl: s- = 1.6, s+ = 0; also s- = 0,
-- s+ = 2): compare the slacks of the others, and unit 3's score from its own.
do
  local sx, sy = col(sbm_c.slacks.x, 1), col(sbm_c.slacks.y, 1)
  sx[3], sy[3] = 1.6, 0
  local x3, y3 = sbm_c.slacks.x[3][1], sbm_c.slacks.y[3][1]
  vec_near(sx, { 0, 0, 1.6, 0, 0, 0, 0, 0 }, 1e-7, "SBM CRS input slacks")
  vec_near(sy, { 1.5, 0, 0, 6, 4.5, 10.5, 8.5, 9.412 }, 1e-7, "SBM CRS output slacks")
  T.near((1 - x3 / 8) / (1 + y3 / 8), 0.8, 1e-9, "SBM: unit 3's score follows from its slacks")
end
T.near(sbm_c.lambda(8, 2), 2.353, 1e-7, "SBM CRS lambda[8,2]")
local sbm_v = dea { inputs = EX, outputs = EY, model = "sbm", rts = "vrs" }
vec_near(sbm_v.efficiency, { 1, 1, 1, 1, 0.4, 0.4761904761904763, 0.8571428571428572, 0.2 }, 1e-8,
  "SBM VRS (DEA.jl ERG)")

-- super-SBM: equal to SBM for inefficient units, > 1 for efficient ones
local ssbm = dea { inputs = EX, outputs = EY, model = "super_sbm", rts = "vrs" }
do
  local same, above = true, true
  for k = 1, #EX do
    if sbm_v.efficiency[k] < 1 - 1e-9 then
      same = same and math.abs(ssbm.efficiency[k] - sbm_v.efficiency[k]) < 1e-10 and not ssbm.super[k]
    else
      above = above and ssbm.efficiency[k] >= 1 and ssbm.super[k]
    end
  end
  T.check(same, "super-SBM = SBM for SBM-inefficient units")
  T.check(above, "super-SBM >= 1 for SBM-efficient units")
  -- one input, one output, CRS: super-SBM of the best unit = its productivity over the second best
  local sc = dea { inputs = EX, outputs = EY, model = "super_sbm" }
  T.near(sc.efficiency[2], (5 / 4) / (8 / 8), 1e-9, "super-SBM CRS, 1 input 1 output: ratio to the runner-up")
end

-- SBM with an undesirable output, hand-solvable: one input fixed at 1,
-- units differ in good (y) and bad (b) outputs.
do
  local Xb, Yg, B = { 1, 1, 1 }, { 2, 1, 2 }, { 1, 1, 2 }
  local r = dea { inputs = Xb, outputs = Yg, bad = B, model = "sbm", rts = "vrs" }
  -- unit 2 projects to unit 1: s+ = 1 (y = 1 -> 2), rho = 1 / (1 + (1/2)(1/1)) = 2/3
  T.near(r.efficiency[2], 2 / 3, 1e-9, "SBM with a bad output: good-output shortfall")
  -- unit 3: bad 2 -> 1, rho = 1 / (1 + (1/2)(1/2)) = 0.8
  T.near(r.efficiency[3], 0.8, 1e-9, "SBM with a bad output: excess bad output")
  T.near(r.slacks.b[3][1], 1, 1e-9, "bad-output slack")
  local s = dea { inputs = Xb, outputs = Yg, bad = B, model = "super_sbm", rts = "vrs" }
  -- unit 1 without itself: nearest is unit 2 (needs y 2 -> 1) or 3 (b 1 -> 2): both give 1 / (1 - 1/4)
  T.near(s.efficiency[1], 4 / 3, 1e-9, "super-SBM with a bad output for the efficient unit")
  T.near(s.efficiency[2], r.efficiency[2], 1e-12, "super-SBM with bad outputs = SBM for an inefficient unit")
  local io = dea { inputs = Xb, outputs = Yg, bad = B, model = "sbm", rts = "vrs", orientation = "input" }
  local crs = dea { inputs = Xb, outputs = Yg, bad = B, model = "sbm" }
  -- CRS: unit 2 scales unit 1 by 1/2: s- = 1/2, s^b = 1/2, rho = (1/2) / (1 + 1/4)
  T.near(crs.efficiency[2], 0.4, 1e-9, "SBM CRS with a bad output")
  T.near(io.efficiency[2], 1, 1e-9, "input-oriented SBM ignores output slacks")
end

-- ---- DDF with bad outputs (DataEnvelopmentAnalysis.jl test/deaenv.jl) ---------------
do
  local one, Yv, Bv = { 1, 1, 1, 1, 1 }, { 7, 5, 1, 3, 4 }, { 2, 5, 3, 3, 2 }
  local r = dea { inputs = one, outputs = Yv, bad = Bv, model = "ddf", bad_disposability = "strong" }
  vec_near(r.efficiency, { 0, 0.4, 0.8260869565217392, 0.5555555555555556, 0.27272727272727276 }, 1e-9,
    "DDF g = (0, y, b), bads as inputs (DEA.jl deaenv)")
  vec_near(col(r.slacks.x, 1), { 0, 0, 0.7391304347826089, 1 / 3, 3 / 11 }, 1e-8, "DDF input slacks")
  vec_near(col(r.slacks.b, 1), { 0, 1, 0, 0, 0 }, 1e-8, "DDF bad-output slacks")
  local want = { ones = { 0, 1 / 4, 3 / 4, 0.5, 3 / 8 }, observed = { 0, 1 / 6, 3 / 4, 2 / 5, 3 / 11 },
    mean = { 0, 2 / 11, 6 / 11, 4 / 11, 0.20689655172413798 } }
  for _, g in ipairs({ "ones", "observed", "mean" }) do
    local rg = dea { inputs = one, outputs = Yv, bad = Bv, model = "ddf", bad_disposability = "strong",
      direction = { x = g, y = g, b = g } }
    vec_near(rg.efficiency, want[g], 1e-9, "DDF direction " .. g .. " (DEA.jl)")
  end
  -- weak disposability (equality): unit 2 cannot reach unit 1 by cutting its bad alone
  local w = dea { inputs = one, outputs = Yv, bad = Bv, model = "ddf" }
  T.near(w.efficiency[2], 0, 1e-9, "DDF under weak disposability of bads")
  T.check(w.efficiency[3] <= r.efficiency[3] + 1e-12, "weak disposability never gives more inefficiency than strong")
end

-- ---- FDH (hand-solvable) --------------------------------------------------------------
do
  local r = dea { inputs = { 1, 2, 3, 2, 4 }, outputs = { 2, 3, 4, 1, 3 }, model = "fdh" }
  vec_near(r.efficiency, { 1, 1, 1, 0.5, 0.5 }, 1e-12, "FDH input efficiency by dominance")
  T.check(r.lambda(4, 1) == 1 and r.peers[5][1] == 2, "FDH peers are the dominating units")
end


-- ---- pyDEA's tests (araith/pyDEA@eac02bac tests/test_CRS_env_input_oriented_model.py,
-- test_VRS_env_output_oriented_model.py; pyDEA reports 1 / phi for output orientation) ---------
do
  local PX = { { 2, 5 }, { 2, 4 }, { 6, 6 }, { 3, 2 }, { 6, 2 } }
  local PQ = { 1, 2, 3, 1, 2 }
  local r = dea { inputs = PX, outputs = PQ }
  vec_near(r.efficiency, { 0.5, 1, 0.83333333, 0.71428571, 1 }, 1e-8, "pyDEA small CRS input")
  T.near(r.lambda(4, 2), 0.21428571, 1e-7, "pyDEA lambda D,B")
  T.near(r.lambda(4, 5), 0.28571429, 1e-7, "pyDEA lambda D,E")
  T.near(r.lambda(3, 5), 0.5, 1e-9, "pyDEA lambda C,E")
  vec_near({ r.weights.v[4][1], r.weights.v[4][2], r.weights.u[4][1] }, { 0.14285714, 0.28571429, 0.71428571 }, 1e-7,
    "pyDEA multipliers of D")
  local o = dea { inputs = PX, outputs = PQ, model = "bcc", orientation = "output" }
  local inv = {}
  for k = 1, 5 do inv[k] = 1 / o.efficiency[k] end
  vec_near(inv, { 0.5, 1, 1, 1, 1 }, 1e-9, "pyDEA small VRS output (1 / phi)")
  -- DEA_example2_data: 3 inputs, 2 outputs
  local E2 = { { 5, 13, 1, 12, 34 }, { 16, 12, 2, 14, 13 }, { 16, 26, 2, 25, 56 }, { 17, 15, 3, 26, 23 },
    { 18, 14, 1, 8, 18 }, { 23, 6, 2, 9, 39 }, { 25, 10, 2, 27, 21 }, { 27, 22, 3, 30, 10 }, { 37, 14, 1, 31, 25 },
    { 42, 25, 2, 26.5, 17 }, { 5, 17, 3, 12, 37 } }
  local ex, ey = {}, {}
  for k, r0 in ipairs(E2) do ex[k], ey[k] = { r0[1], r0[2], r0[3] }, { r0[4], r0[5] } end
  vec_near(dea { inputs = ex, outputs = ey }.efficiency, { 1, 0.64858757, 0.90924776, 1, 0.54907162, 1, 1, 0.8241206,
    1, 0.62673338, 1 }, 1e-7, "pyDEA example 2 CRS input")
  -- DEA_example_data with ND1 a non-discretionary input
  local ND = { 3, 6, 4, 5, 2, 2, 8, 5, 3, 5, 1 }
  local nx = {}
  for k, r0 in ipairs(E2) do nx[k] = { r0[1], r0[2], ND[k] } end
  vec_near(dea { inputs = nx, outputs = ey, nondiscretionary = { 3 } }.efficiency, { 1, 0.62939304, 0.95095971, 1,
    0.42525889, 1, 1, 0.82672274, 1, 0.53385106, 1 }, 1e-7, "pyDEA non-discretionary input ND1")
end

-- ---- non-discretionary inputs -------------------------------------------------------------
do
  local r = dea { inputs = X, outputs = Y, nondiscretionary = { 2 } }
  local ok = true
  -- Only x1 is contracted, so the feasible set is larger: the score is lower or equal.
  for k = 1, #X do ok = ok and r.efficiency[k] <= ccr_i.efficiency[k] + 1e-12 end
  T.check(ok, "a non-discretionary input never raises the radial score")
  -- unit 6 (23, 6; 9) by hand: peers 1 and 4 with 12a + 26b = 9, 13a + 15b = 6, theta = (5a + 17b) / 23
  local b = 45 / 158
  local a = (9 - 26 * b) / 12
  T.near(r.efficiency[6], (5 * a + 17 * b) / 23, 1e-9, "non-discretionary x2: unit 6 by hand")
end

-- ---- super-efficiency infeasible under VRS: NA with the unit named ---------------------------
do
  local r = dea { inputs = X, outputs = Y, model = "bcc", orientation = "output", super = true }
  T.check(r.efficiency[1] ~= r.efficiency[1], "super-efficiency BCC-O of unit 1 is NA (infeasible)")
  local joined = table.concat(r.notes, "\n")
  T.check(joined:find("unit '1'", 1, true) and joined:find("infeasible", 1, true),
    "the note names unit 1 and says infeasible")
  T.near(r.efficiency[2], bcc_o.efficiency[2], 1e-9, "super-efficiency = BCC for an inefficient unit")
end

-- an unbounded LP (a DDF direction of zeros leaves beta free): NA and a note
do
  local r = dea { inputs = { 1, 1 }, outputs = { 1, 2 }, model = "ddf",
    direction = { x = "zeros", y = "zeros", b = "zeros" } }
  T.check(r.efficiency[1] ~= r.efficiency[1] and r.status[1] == "unbounded", "zero direction: unbounded, NA")
  T.check(r.notes[1] and r.notes[1]:find("unit '1': the LP is unbounded", 1, true), "the note names the unit")
end

-- ---- thread-count invariance on a larger problem --------------------------------------------
do
  local rng = sp.rng(11)
  local u = {}
  for i = 1, 600 do u[i] = rng:uniform() end
  local Xr, Yr, Br = {}, {}, {}
  for k = 1, 200 do
    Xr[k] = { 1 + 9 * u[k], 1 + 9 * u[200 + k] }
    Yr[k], Br[k] = 1 + 9 * u[400 + k], 1 + u[k] * u[400 + k]
  end
  for _, model in ipairs({ "ccr", "super_sbm" }) do
    local a = dea { inputs = Xr, outputs = Yr, bad = model ~= "ccr" and Br or nil, model = model, threads = 1 }
    local b = dea { inputs = Xr, outputs = Yr, bad = model ~= "ccr" and Br or nil, model = model, threads = 3 }
    local same = true
    for k = 1, 200 do same = same and a.efficiency[k] == b.efficiency[k] end
    for k = 1, 200 do
      for j = 1, 200 do same = same and (a.lambda(k, j) == b.lambda(k, j)) end
    end
    T.check(same, model .. ": identical results with 1 and 3 threads")
  end
end


-- ---- efficiency as a derived variable (the scenario derive step) ---------------------------
do
  local dea_mod = require "spillover.dea"
  local d = sp.read_csv("scenarios/data/cn_province_panel.csv")
  local ctx = { time = "year", entity = "province" }
  local spec = { inputs = { "rd_exp_total_10k_yuan", "rd_fte_total_person_years" },
    outputs = { "patent_grants_invention" }, bad = { "carbon_emissions_mt" }, model = "super_sbm", rts = "vrs",
    productivity = { index = "ml", frontier = "global" } }
  local base, state = dea_mod.derived(d, spec, nil, ctx)
  local v = base:tovector()
  local direct = dea { data = d:filter("rd_exp_total_10k_yuan == rd_exp_total_10k_yuan and "
    .. "rd_fte_total_person_years == rd_fte_total_person_years and carbon_emissions_mt == carbon_emissions_mt"),
    inputs = spec.inputs, outputs = spec.outputs, bad = spec.bad, model = "super_sbm", rts = "vrs", lambda = false }
  local vv = {}
  for _, x in ipairs(v) do if x == x then vv[#vv + 1] = x end end
  vec_near(vv, direct.efficiency, 1e-12, "derived efficiency on the baseline = sp.dea on the complete rows")
  local again = dea_mod.derived(d, spec, state, ctx):tovector()
  local same = true
  for i = 1, #v do same = same and (again[i] == v[i] or (again[i] ~= again[i] and v[i] ~= v[i])) end
  T.check(same, "unshocked data against the held baseline frontier: the baseline scores")
  T.check(state.productivity and state.productivity.table:nrow() > 300, "the baseline GML table is kept")
  -- every unit's R&D spending up 20%: lower scores against the held frontier,
  -- the same scores when the frontier is re-estimated (units invariance)
  local d2 = sp.read_csv("scenarios/data/cn_province_panel.csv")
  d2.rd_exp_total_10k_yuan = d2.rd_exp_total_10k_yuan * 1.2
  local held = dea_mod.derived(d2, spec, state, ctx):tovector()
  local spec2 = {}
  for k, x in pairs(spec) do spec2[k] = x end
  spec2.hold = "reestimate"
  local re = dea_mod.derived(d2, spec2, state, ctx):tovector()
  local lower, equal, n = true, true, 0
  for i = 1, #v do
    if v[i] == v[i] then
      n = n + 1
      lower = lower and held[i] <= v[i] + 1e-12
      equal = equal and math.abs(re[i] - v[i]) < 1e-9
    end
  end
  T.check(n > 300 and lower, "a shocked input lowers efficiency against the held frontier")
  T.check(equal, "re-estimating the frontier after a proportional shock to everyone gives the baseline")
  -- per-period frontiers, and a row pushed beyond a held SBM frontier: its super-SBM score, not NA
  local pspec = { inputs = spec.inputs, outputs = spec.outputs, bad = spec.bad, model = "sbm", rts = "vrs",
    frontier = "period" }
  local pb, pst = dea_mod.derived(d, pspec, nil, ctx)
  local pv = pb:tovector()
  local y2011 = dea { data = d:filter("year == 2011 and rd_exp_total_10k_yuan == rd_exp_total_10k_yuan and "
    .. "rd_fte_total_person_years == rd_fte_total_person_years and carbon_emissions_mt == carbon_emissions_mt"),
    inputs = spec.inputs, outputs = spec.outputs, bad = spec.bad, model = "sbm", rts = "vrs" }
  local first2011, yr = {}, d.year:tovector()
  for i, x in ipairs(pv) do if yr[i] == 2011 and x == x then first2011[#first2011 + 1] = x end end
  vec_near(first2011, y2011.efficiency, 1e-12, "frontier = \"period\": 2011 scores = sp.dea on 2011")
  local star
  for i, x in ipairs(pv) do if yr[i] == 2011 and x == x and x > 1 - 1e-9 then star = i; break end end
  local d3 = sp.read_csv("scenarios/data/cn_province_panel.csv")
  local rd3 = d3.rd_exp_total_10k_yuan
  rd3[star] = rd3[star] * 0.5
  d3.rd_exp_total_10k_yuan = rd3
  local moved = dea_mod.derived(d3, pspec, pst, ctx):tovector()
  T.check(moved[star] > 1, "an efficient row with half its R&D spending lies beyond the held frontier: score > 1",
    tostring(moved[star]))
  T.checkerr("hold must be", dea_mod.derived, d, { inputs = spec.inputs, outputs = spec.outputs, hold = "fixed" },
    nil, ctx)
end

-- ---- the reduced reference set (non-dominated units) gives the same scores ----------------
do
  local rng = sp.rng(5)
  local Xr, Yr, Br = {}, {}, {}
  for k = 1, 150 do
    local a, b = 1 + 9 * rng:uniform(), 1 + 9 * rng:uniform()
    Xr[k], Yr[k], Br[k] = { a, b }, { a ^ 0.4 * b ^ 0.5 * (0.5 + rng:uniform()) }, { 1 + rng:uniform() }
  end
  Xr[150] = { Xr[1][1], Xr[1][2] }  -- a duplicate of unit 1: never pruned
  Yr[150], Br[150] = { Yr[1][1] }, { Br[1][1] }
  for _, c in ipairs({ { "ccr", "input" }, { "bcc", "output" }, { "sbm", "none" }, { "super_sbm", "none" },
    { "ddf", "none" } }) do
    local spec = { inputs = Xr, outputs = Yr, bad = (c[1] ~= "ccr" and c[1] ~= "bcc") and Br or nil, model = c[1],
      orientation = c[2], bad_disposability = "strong" }
    local a = dea(spec)
    spec.reduce = false
    local b = dea(spec)
    local worst, lam = 0, 0
    for k = 1, 150 do
      worst = math.max(worst, math.abs(a.efficiency[k] - b.efficiency[k]))
      for j = 1, 150 do lam = math.max(lam, math.abs(a.lambda(k, j) - b.lambda(k, j))) end
    end
    T.check(worst < 1e-9, c[1] .. ": the non-dominated reference set gives the full set's scores", "worst " .. worst)
    T.check(lam < 1e-6 or c[1] == "ddf", c[1] .. ": and the same intensities", "worst " .. lam)
  end
end

-- ---- errors ---------------------------------------------------------------------------------------
T.checkerr("input 'x1' of unit '2' is negative", dea, { inputs = { { 1, 1 }, { -1, 2 } }, outputs = { 1, 1 },
  names = { "a", "2" } })
T.checkerr("input 'x2' of unit 'b' is NaN", dea, { inputs = { { 1, 1 }, { 1, 0 / 0 } }, outputs = { 1, 1 },
  names = { "a", "b" } })
T.checkerr("model must be one of", dea, { inputs = X, outputs = Y, model = "ccrr" })
T.checkerr("\"ccr\" is constant returns", dea, { inputs = X, outputs = Y, model = "ccr", rts = "vrs" })
T.checkerr("has no bad outputs", dea, { inputs = X, outputs = Y, bad = Y, model = "bcc" })
T.checkerr("no column 'x9'", dea, { data = sp.frame { x = { 1, 2 }, y = { 1, 2 } }, inputs = { "x9" },
  outputs = { "y" } })
T.checkerr("unknown option 'orient'", dea, { inputs = X, outputs = Y, orient = "input" })
T.checkerr("inputs have 11 units but another block has 3", dea, { inputs = X, outputs = { 1, 2, 3 } })
T.checkerr("needs orientation", dea, { inputs = X, outputs = Y, model = "bcc", orientation = "none" })
T.checkerr("nondiscretionary 'z' is not an input", dea, { inputs = X, outputs = Y, nondiscretionary = { "z" } })
-- the LP binding's own checks
do
  local core = require "spillover.core"
  local A = sp.matrix { { 1, 2 }, { 3, 1 } }
  T.checkerr("'sense' has 1 characters %(expected 2", core.lp_batch, { A = A, sense = "L" })
  T.checkerr("sense of row 2 is 'Q'", core.lp_batch, { A = A, sense = "LQ" })
  T.checkerr("keep%[1%] must be a column index in 1..2", core.lp_batch, { A = A, sense = "LL", keep = { 3 } })
  T.checkerr("'rhs' has 3 entries %(expected 2%)", core.lp_batch, { A = A, sense = "LL", rhs = sp.matrix { 1, 2, 3 } })
  T.checkerr("unknown option 'rsh'", core.lp_batch, { A = A, sense = "LL", rsh = 1 })
  local r = core.lp_batch { A = A, sense = "LL", rhs = sp.matrix { 4, 6 }, obj = sp.matrix { 1, 1 }, maximize = true,
    keep = { 2 } }
  T.check(r.status[1] == "optimal" and math.abs(r.x(1, 1) - 1.2) < 1e-12 and r.x:ncol() == 1,
    "keep returns the kept column")
end
do
  local ok, err = pcall(dea, { inputs = X, outputs = Y, model = "x" })
  T.check(not ok and not tostring(err):find("spillover/dea.lua", 1, true),
    "errors do not leak spillover's internal paths")
end

T.done()
