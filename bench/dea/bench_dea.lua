-- bench/dea: super-SBM with an undesirable output on a global frontier.
--   spillover bench/dea/bench_dea.lua
-- Synthetic panel (2 inputs, 1 good and 1 bad output, Cobb-Douglas with
-- noise).  Compares sp.dea's batched LPs (one problem object per block of 64
-- units, warm-started; reference set reduced to its non-dominated units)
-- with the same batch on the full reference set and with a plain loop that
-- builds and solves one LP per unit, and prints the ratios.  Also times the
-- global Malmquist-Luenberger-type index (super-SBM, global frontier) on
-- 300 units x 15 years, the issue's target (under 5 s on one thread).
local sp = require "spillover"
local dea = require "spillover.dea"
local mq = require "spillover.malmquist"
local now = sp.sys.now

local function panel(N, T, seed)
  local rng = sp.rng(seed)
  local X, Y, B = {}, {}, {}
  local cols = { id = {}, year = {}, x1 = {}, x2 = {}, y = {}, b = {} }
  for i = 1, N * T do
    local a, b = 1 + 9 * rng:uniform(), 1 + 9 * rng:uniform()
    local t = (i - 1) % T
    local y = (a ^ 0.4 * b ^ 0.4) * math.exp(0.3 * rng:normal() + 0.02 * t)
    local bad = y * (0.5 + rng:uniform())
    X[i], Y[i], B[i] = { a, b }, { y }, { bad }
    cols.id[i], cols.year[i], cols.x1[i], cols.x2[i], cols.y[i], cols.b[i] = (i - 1) // T + 1, 2000 + t, a, b, y, bad
  end
  return X, Y, B, sp.frame(cols)
end

local function timed(label, f)
  local t0 = now()
  local r = f()
  local dt = now() - t0
  print(string.format("%-62s %9.3f s", label, dt))
  return r, dt
end

-- the plain loop: for each unit, build its LP on the full reference set and solve it alone
local function plain_loop(X, Y, B)
  local o = dea.options({ model = "super_sbm" }, "bench")
  o.nondisc, o.slacks, o.lambda, o.reduce = {}, false, false, false
  local d = dea.prepare({ inputs = X, outputs = Y, bad = B, model = "super_sbm" }, "bench")
  o.scales = dea.scale_all(d, { X = { d.X.rows }, Y = { d.Y.rows }, B = { d.B.rows } })
  local idx = {}
  for i = 1, #X do idx[i] = i end
  local ref = dea.scaled_set(d, o.scales, idx)
  local out = {}
  for k = 1, #X do
    local ev = dea.scaled_set(d, o.scales, { k })
    out[k] = dea.evaluate(ref, ev, o, { k }).score[1]
  end
  return out
end

local X, Y, B = panel(100, 10, 1)
local n = #X
print(string.format("super-SBM with a bad output, %d units, global frontier (one thread):", n))
local fast, t_fast = timed("  sp.dea (batched, non-dominated reference set)", function()
  return dea.dea { inputs = X, outputs = Y, bad = B, model = "super_sbm", lambda = false }
end)
local full, t_full = timed("  sp.dea (batched, full reference set)", function()
  return dea.dea { inputs = X, outputs = Y, bad = B, model = "super_sbm", lambda = false, reduce = false }
end)
local loop, t_loop = timed("  plain loop, one LP per unit", function() return plain_loop(X, Y, B) end)
local worst = 0
for k = 1, n do
  worst = math.max(worst, math.abs(fast.efficiency[k] - loop[k]), math.abs(full.efficiency[k] - loop[k]))
end
print(string.format("  largest difference in scores: %.2g", worst))
print(string.format("  ratio plain loop / batched: %.1fx (full reference set), %.1fx (non-dominated)",
  t_loop / t_full, t_loop / t_fast))

X, Y, B = panel(300, 15, 2)
local d = select(4, panel(300, 15, 2))
print(string.format("super-SBM with a bad output, %d units (300 x 15), global frontier:", #X))
local _, t1 = timed("  sp.dea, 1 thread", function()
  return dea.dea { inputs = X, outputs = Y, bad = B, model = "super_sbm", lambda = false }
end)
local _, t2 = timed("  sp.dea, 2 threads", function()
  return dea.dea { inputs = X, outputs = Y, bad = B, model = "super_sbm", lambda = false, threads = 2 }
end)
print(string.format("  thread speed-up: %.2fx", t1 / t2))
timed("  global index (super-SBM; EC on contemporaneous frontiers)", function()
  return mq.malmquist { data = d, entity = "id", time = "year", inputs = { "x1", "x2" }, outputs = { "y" },
    bad = { "b" }, model = "super_sbm", frontier = "global" }
end)
timed("  global ML (DDF, g = (0, y, b))", function()
  return mq.malmquist { data = d, entity = "id", time = "year", inputs = { "x1", "x2" }, outputs = { "y" },
    bad = { "b" }, index = "ml", frontier = "global" }
end)
