-- bench/spatial/sdm.lua gen N | fit N [reps]: the cross-sectional spatial
-- Durbin model with the exact (eigenvalue) log-determinant, side by side with
-- spatialreg::lagsarlm(..., Durbin = TRUE, method = "eigen") (sdm.R).
--   gen: N units at uniform random points (seed 42), W the 6 nearest
--        neighbours made symmetric (the union, as spdep's knn2nb(sym = TRUE))
--        and row-standardised, so W is similar to a symmetric matrix;
--        y = (I - 0.4 W)^-1 (1 + 0.5 x1 - 0.3 x2 + 0.2 W x1 - 0.1 W x2 + e),
--        written to bench/data/sdm_<N>.csv (id, px, py, y, x1, x2).
--   fit: read that file, build W from the coordinates, and time
--        sp.spatial(model = "sdm", logdet = "eigen") with its analytic
--        covariance, reps times in this process (the first is a first fit);
--        prints the times and the estimates as "coef <name> <value> <se>".
local sp = require "spillover"
local core = require "spillover.core"

local mode, N, reps = arg[1], tonumber(arg[2] or 3000), tonumber(arg[3] or 2)
local base = string.format("bench/data/sdm_%d.csv", N)

if mode == "gen" then
  local rng = sp.rng(42)
  local id, px, py = {}, {}, {}
  for i = 1, N do id[i], px[i], py[i] = "u" .. i, rng:uniform(), rng:uniform() end
  local W = sp.weights.knn(sp.frame { id = id, x = px, y = py }, 6, { symmetric = true, style = "W" })
  local unit, block = {}, {}
  for i = 1, N do unit[i], block[i] = i, 1 end
  local S = core.spml_sample(W, unit, block, 1, true)
  local X = sp.matrix(N, 2)
  for i = 1, N do X:set(i, 1, rng:normal()); X:set(i, 2, rng:normal()) end
  local WX = S:lag(X)
  local v = sp.matrix(N, 1)
  for i = 1, N do
    v:set(i, 1, 1 + 0.5 * X:get(i, 1) - 0.3 * X:get(i, 2) + 0.2 * WX:get(i, 1) - 0.1 * WX:get(i, 2) + rng:normal())
  end
  local y = S:solve(0.4, v)
  os.execute("mkdir -p bench/data")
  local f = assert(io.open(base, "w"))
  f:write("id,px,py,y,x1,x2\n")
  for i = 1, N do
    f:write(string.format("%s,%.17g,%.17g,%.17g,%.17g,%.17g\n", id[i], px[i], py[i], y:get(i, 1), X:get(i, 1),
      X:get(i, 2)))
  end
  f:close()
  return
end

assert(mode == "fit", "usage: sdm.lua gen N | fit N [reps]")
local d = sp.read_csv(base)
local t0 = os.clock()
local W = sp.weights.knn(d, 6, { x = "px", y = "py", symmetric = true, style = "W" })
local t_w = os.clock() - t0
local fit
local times = {}
for r = 1, reps do
  t0 = os.clock()
  fit = sp.spatial(d, "y ~ x1 + x2", { model = "sdm", weights = W, id = "id", logdet = "eigen" })
  times[r] = string.format("%.3f", os.clock() - t0)
end
print(string.format("spillover sdm N=%d: weights %.3f fits %s", N, t_w, table.concat(times, " ")))
local b, se = fit:coef(), fit:se()
for _, name in ipairs(fit.names) do print(string.format("coef %s %.15g %.15g", name, b[name], se[name])) end
