-- bench/spatial/weights.lua N k cutoff: time sp.weights.knn (k nearest) and
-- sp.weights.distance (band of radius cutoff) on N uniform random points in
-- the unit square (seed 42), from the coordinate frame to the finished,
-- row-standardised weights.  Writes the points to bench/data/points_<N>.csv
-- for R, and prints one line of times (CPU seconds, os.clock).
local sp = require "spillover"

local N, k, cutoff = tonumber(arg[1] or 30000), tonumber(arg[2] or 6), tonumber(arg[3] or 0.01)
k = math.tointeger(k)
local rng = sp.rng(42)
local id, x, y = {}, {}, {}
for i = 1, N do id[i], x[i], y[i] = "u" .. i, rng:uniform(), rng:uniform() end
os.execute("mkdir -p bench/data")
local f = assert(io.open(string.format("bench/data/points_%d.csv", N), "w"))
f:write("id,x,y\n")
for i = 1, N do f:write(string.format("%s,%.17g,%.17g\n", id[i], x[i], y[i])) end
f:close()
local coords = sp.frame { id = id, x = x, y = y }

local t0 = os.clock()
local W = sp.weights.knn(coords, k, { style = "W" })
local t_knn = os.clock() - t0
t0 = os.clock()
local D = sp.weights.distance(coords, { cutoff = cutoff, style = "W", zero_policy = true })
local t_band = os.clock() - t0
local links = 0
for i = 1, D:n() do links = links + #D:neighbours(i) end
print(string.format("spillover weights N=%d: knn(k=%d) %.3fs, distance(cutoff=%g, %d links) %.3fs", N, k, t_knn,
  cutoff, links, t_band))
