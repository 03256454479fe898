-- bench/spatial/run_spillover.lua N T [logdet]: generate a synthetic SDM panel
-- with k = 6 nearest-neighbour weights (seed 42), write it for R
-- (bench/data/spatial_<N>x<T>.csv and _coords.csv), and time sp.spatial
-- (SDM, two-way fixed effects) on it.  Run from the repository root:
--   build/spillover bench/spatial/run_spillover.lua 3000 20 eigen
local sp = require "spillover"
local SM = require "spillover.spatial_models"
local core = require "spillover.core"

local N, T = tonumber(arg[1] or 3000), tonumber(arg[2] or 20)
local method = arg[3] or (N <= 2000 and "eigen" or "mc")
local rng = sp.rng(42)
local xs, ys = {}, {}
for i = 1, N do xs[i], ys[i] = rng:uniform(), rng:uniform() end
local t0 = os.clock()
local W = core._weights.knn(xs, ys, 6):restyle("W")
local ids = {}
for i = 1, N do ids[i] = string.format("u%d", i) end
W:set_ids(ids)
local t_w = os.clock() - t0

-- y = (I - 0.4 W)^-1 (0.5 x1 - 0.3 x2 + 0.2 W x1 + a_i + g_t + e), stacked by period
local n = N * T
local unit, block = {}, {}
for t = 1, T do for i = 1, N do unit[#unit + 1] = i; block[#block + 1] = t end end
local S = core.spml_sample(W, unit, block, T, true)
local X = sp.matrix(n, 2)
local a, g = {}, {}
for i = 1, N do a[i] = rng:normal() end
for t = 1, T do g[t] = rng:normal() end
for r = 1, n do X:set(r, 1, rng:normal() + 0.3 * a[unit[r]]); X:set(r, 2, rng:normal()) end
local WX = S:lag(X)
local v = sp.matrix(n, 1)
for r = 1, n do
  v:set(r, 1, 0.5 * X:get(r, 1) - 0.3 * X:get(r, 2) + 0.2 * WX:get(r, 1) + a[unit[r]] + g[block[r]] + rng:normal())
end
local y = S:solve(0.4, v)
os.execute("mkdir -p bench/data")
local base = string.format("bench/data/spatial_%dx%d", N, T)
local f = io.open(base .. ".csv", "w")
f:write("id,time,y,x1,x2\n")
for r = 1, n do
  f:write(string.format("u%d,%d,%.17g,%.17g,%.17g\n", unit[r], block[r], y:get(r, 1), X:get(r, 1), X:get(r, 2)))
end
f:close()
f = io.open(base .. "_coords.csv", "w")
f:write("id,x,y\n")
for i = 1, N do f:write(string.format("u%d,%.17g,%.17g\n", i, xs[i], ys[i])) end
f:close()

local d = sp.read_csv(base .. ".csv")
d:panel { entity = "id", time = "time" }
local wall = os.time()
t0 = os.clock()
local fit = SM.spatial(d, "y ~ x1 + x2", { model = "sdm", weights = W, effect = "twoways", logdet = method })
local t_fit = os.clock() - t0
t0 = os.clock()
local im = fit:impacts()
local t_imp = os.clock() - t0
print(string.format("spillover N=%d T=%d logdet=%s: weights %.2fs, fit %.2fs (wall ~%ds), impacts %.3fs", N, T, method,
  t_w, t_fit, os.time() - wall, t_imp))
print(string.format("  rho %.6f (se %.6f)  x1 %.6f  W.x1 %.6f  loglik %.4f  direct x1 %.5f indirect x1 %.5f",
  fit:coef().rho, fit:se().rho, fit:coef().x1, fit:coef()["W.x1"], fit.stats.loglik, im.direct.x1, im.indirect.x1))
