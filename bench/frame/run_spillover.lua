-- spillover side of the frame-operations benchmark (bench/frame/compare.sh).
--   spillover bench/frame/run_spillover.lua bench/data/frame_10000000.csv bench/data/frame_lookup.csv
-- Reads both files (not timed), then runs each operation three times and prints
-- one line per operation: the first run in this process, the best of the other
-- two (wall clock, then the same in CPU seconds of this process: on a shared
-- machine the wall clock counts other jobs' time), and a checksum that
-- compare.sh matches against data.table's.
local sp = require "spillover"
local now = sp.sys.now
local d = sp.read_csv(arg[1])
local lk = sp.read_csv(arg[2])
local n = d:nrow()

local ops = {
  { "sort_int", function() return d:sort("id") end,
    function(r) return r.id[1] + r.id[n] + r.x[1] + r.x[n] end },
  { "sort_dbl", function() return d:sort("x") end,
    function(r) return r.id[1] + r.id[n] + r.x[1] + r.x[n] end },
  { "sort_2key", function() return d:sort{"g", "id"} end,
    function(r) return r.id[1] + r.id[n] + r.x[1] + r.x[n] end },
  { "sort_2key_dbl", function() return d:sort{"g", {"x", desc = true}} end,
    function(r) return r.id[1] + r.id[n] + r.x[1] + r.x[n] end },
  { "group_int", function() return d:aggregate{by = "id", sum = "x", mean = "y"} end,
    function(r) local s, m = r.x_sum, r.y_mean; return s[1] + s[#s] + m[1] + m[#m] + #s end },
  { "group_str", function() return d:aggregate{by = "g", sum = "x", mean = "y"} end,
    function(r) local s, m = r.x_sum, r.y_mean; return s[1] + s[#s] + m[1] + m[#m] + #s end },
  { "join_m1", function() return d:join(lk, { on = "id", validate = "m:1" }) end,
    function(r) return r.w[1] + r.w[n] + r:nrow() end },
}

for _, op in ipairs(ops) do
  local name, run, check = op[1], op[2], op[3]
  local times, cpu, res = {}, {}, nil
  for k = 1, 3 do
    res = nil
    collectgarbage()
    local t, c = now(), os.clock()
    res = run()
    times[k], cpu[k] = now() - t, os.clock() - c
  end
  print(string.format("%s first=%.4f warm=%.4f cpu_first=%.4f cpu_warm=%.4f check=%.10g", name, times[1],
                      math.min(times[2], times[3]), cpu[1], math.min(cpu[2], cpu[3]), check(res)))
end
