-- bench/gmm: two-step system GMM timings (see README.md).
--   spillover bench/gmm/bench_gmm.lua [csv_dir]
-- Times sp.gmm on EmplUK and on a synthetic panel of 10,000 firms x 10 years
-- with collapsed instruments; with csv_dir, also writes the synthetic panel
-- there (synthetic.csv) for bench_pgmm.R.
local sp = require "spillover"
local gmm = require("spillover.gmm").gmm
local now = sp.sys.now
local outdir = arg and arg[1]

-- wall-clock and CPU time (os.clock: this process's CPU, the one to read on a
-- machine shared with other jobs; run with OPENBLAS_NUM_THREADS=1)
local function best(label, reps, f)
  local wall, cpu = {}, {}
  local fit
  for r = 1, reps do
    local t0, c0 = now(), os.clock()
    fit = f()
    wall[r], cpu[r] = now() - t0, os.clock() - c0
  end
  local first = wall[1]
  table.sort(wall)
  table.sort(cpu)
  print(string.format("%-44s first %7.1f ms   best of %d: wall %7.1f ms, cpu %7.1f ms", label, first * 1000, reps,
    wall[1] * 1000, cpu[1] * 1000))
  return fit, wall[1]
end

local d = sp.read_csv("tests/reference/data/EmplUK.csv")
d:panel { entity = "firm", time = "year" }
local f1, t1 = best("EmplUK system GMM, two-step Windmeijer", 10, function()
  return gmm(d, "log_emp ~ l(log_emp, 1) + l(log_wage, 0:1) + l(log_capital, 0:1) | year",
    { gmm = { "log_emp 2 99", "log_wage 2 99", "log_capital 2 99" }, system = true, steps = 2 })
end)

-- y_it = 0.5 y_i,t-1 + 0.3 x_it + a_i + e_it, x predetermined (correlated with past e)
local N, T = 10000, 10
local rng = sp.rng(20261201)
local id, year, y, x = {}, {}, {}, {}
for i = 1, N do
  local a = rng:normal()
  local yp, ep = a / 0.5 + rng:normal(0, 1.15), 0
  for t = -5, T do
    local xt = 0.3 * a + 0.4 * ep + rng:normal()
    local e = rng:normal()
    local yt = 0.5 * yp + 0.3 * xt + a + e
    if t >= 1 then id[#id + 1], year[#year + 1], y[#y + 1], x[#x + 1] = i, 2000 + t, yt, xt end
    yp, ep = yt, e
  end
end
local s = sp.frame { id = id, year = year, y = y, x = x }
s:panel { entity = "id", time = "year" }
if outdir then s:write_csv(outdir .. "/synthetic.csv") end
local f2, t2 = best("synthetic 10,000 x 10 system GMM, collapsed", 3, function()
  return gmm(s, "y ~ l(y, 1) + x | year", { gmm = { "y 2 99", "x 1 99" }, system = true, steps = 2, collapse = true })
end)
print(string.format("EmplUK: rho %.6f, %d instruments; synthetic: rho %.4f (true 0.5), %d instruments",
  f1:coef()["l(log_emp, 1)"], f1.stats.n_instruments, f2:coef()["l(y, 1)"], f2.stats.n_instruments))
print(string.format("SPILLOVER_MS %.3f %.3f", t1 * 1000, t2 * 1000))
