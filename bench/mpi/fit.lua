-- bench/mpi/fit.lua DIR: each rank reads DIR/part_<size>_<rank>.csv (whole
-- entities), fits two-way FE with entity clusters by sp.mpi.ols; rank 0
-- prints the load and fit times.  With size 1 it also times sp.ols on the
-- same file, the one-process fit the distributed one must equal.
local sp = require "spillover"
local mpi = sp.mpi
local dir = assert(arg[1], "usage: fit.lua DIR")
local r, k = mpi.rank(), mpi.size()
local now = sp.sys.now
local t0 = now()
local d = sp.read_csv(string.format("%s/part_%d_%d.csv", dir, k, r))
d:panel { entity = "id", time = "time" }
local t1 = now()
local f = "y ~ x1 + x2 | id + time"
local fit = mpi.ols(d, f, { vcov = { cluster = "id" } })
local t2 = now()
local tload, tfit = mpi.max(t1 - t0), mpi.max(t2 - t1)
if r == 0 then
  local line = string.format("np=%d rows=%d load=%.3f s fit=%.3f s b(x1)=%.12f se(x1)=%.12f", k, fit.nobs, tload, tfit,
    fit:coef().x1, fit:se().x1)
  if k == 1 then
    local t3 = now()
    local one = sp.ols(d, f, { vcov = { cluster = "id" } })
    line = line .. string.format(" | sp.ols fit=%.3f s, |b diff|=%.2g", now() - t3, math.abs(one:coef().x1 - fit:coef().x1))
  end
  print(line)
end
