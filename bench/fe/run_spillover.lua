-- spillover side of the fixed-effects benchmark: estimation only (the CSV is
-- read first), two-way and three-way FE, iid and clustered, 1 and 2 threads;
-- the first run is "cold" (fresh memory), then the best of 3 "warm" runs.
--   build/spillover bench/fe/run_spillover.lua bench/data/panel_1000000.csv
local sp = require "spillover"
local path = arg[1] or "bench/data/panel_100000.csv"
local t0 = sp.sys and sp.sys.now or os.clock
local d = sp.read_csv(path)
local n = d:nrow()

local function rss_peak_mb()
  local f = io.open("/proc/self/status")
  if not f then return 0 / 0 end
  local s = f:read("a")
  f:close()
  return (tonumber(s:match("VmHWM:%s*(%d+)")) or 0) / 1024
end

local function bench(label, formula, opts)
  local times = {}
  local fit
  for r = 1, 4 do
    collectgarbage()
    local t = t0()
    fit = sp.ols(d, formula, opts)
    times[r] = t0() - t
  end
  local warm = math.min(times[2], times[3], times[4])
  print(string.format("spillover %-26s rows=%d cold=%.3f warm=%.3f b=%.6f,%.6f peak_rss_MB=%.0f", label, n,
    times[1], warm, fit.b[1], fit.b[2], rss_peak_mb()))
end

bench("2fe iid 1thr", "y ~ x1 + x2 | id + time", { threads = 1 })
bench("2fe iid 2thr", "y ~ x1 + x2 | id + time", { threads = 2 })
bench("2fe cluster(id) 1thr", "y ~ x1 + x2 | id + time", { vcov = { cluster = "id" }, threads = 1 })
bench("3fe iid 1thr", "y ~ x1 + x2 | id + time + k", { threads = 1 })
bench("3fe iid 2thr", "y ~ x1 + x2 | id + time + k", { threads = 2 })
