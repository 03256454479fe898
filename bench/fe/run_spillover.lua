-- spillover side of bench/fe/compare.sh: one model per process, so the first
-- fit is a first fit in a fresh process.  Reads the CSV, then fits `reps`
-- times; prints the load time, the first fit, the best of the later (warm)
-- fits, the frame's size and the first slope.  CPU seconds (user + system, all
-- threads) are printed too: on a shared machine they vary less than wall time.
--   build/spillover bench/fe/run_spillover.lua FILE.csv "y ~ x1 + x2 | id + time" [cluster] [threads] [reps]
local sp = require "spillover"
local path, formula = arg[1], arg[2]
local cluster, threads, reps = arg[3] or "", tonumber(arg[4] or 1), tonumber(arg[5] or 3)
local now = sp.sys.now

local t = now()
local d = sp.read_csv(path)
local load = now() - t
local opts = { threads = threads }
if cluster ~= "" then opts.vcov = { cluster = cluster } end
local first, warm, cpu_first, cpu_warm, fit = nil, math.huge, nil, math.huge, nil
for r = 1, reps do
  -- Release the previous fit before this one.  Two full cycles: the first
  -- runs the finalizers of its matrices and design, and only the second frees
  -- the userdata they live in (Lua 5.4 keeps a finalized object until the next
  -- cycle); with one, 540 MB of the previous fit at 1e7 were still resident
  -- when the next fit started, and the peak RSS measured two fits at once.
  fit = nil
  collectgarbage()
  collectgarbage()
  local t0, c0 = now(), os.clock()
  fit = sp.ols(d, formula, opts)
  local el, cpu = now() - t0, os.clock() - c0
  if r == 1 then
    first, cpu_first = el, cpu
  else
    warm, cpu_warm = math.min(warm, el), math.min(cpu_warm, cpu)
  end
end
print(string.format("spillover load=%.3f first=%.3f first_cpu=%.3f warm=%.3f warm_cpu=%.3f frame_MB=%.1f rows=%d b1=%.6f",
  load, first, cpu_first, warm, cpu_warm, d:nrow() * d:ncol() * 8 / 1e6, d:nrow(), fit.b[1]))
