-- test_threads_vcov: core.sumsq and core.vcov take threads = 1 or 2 and give
-- the same bits either way (the rows are split into the same two fixed
-- halves, whose sums are added in order, whatever the thread count).  The
-- matrices have more rows than the size at which a second thread starts.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local core = require "spillover.core"

local n = 150001
local rng = sp.rng(2026)
local X6, w, e = sp.matrix(n, 6), sp.matrix(n, 1), sp.matrix(n, 1)
local id, time = {}, {}
for i = 1, n do
  for j = 1, 6 do X6:set(i, j, j == 1 and 1 or rng:normal() * j + j) end
  w:set(i, 1, 0.5 + rng:uniform())
  e:set(i, 1, rng:normal())
  id[i], time[i] = (i - 1) // 30, (i - 1) % 30
end
local X3 = X6:view(1, 1, n, 3):copy()

local function same(a, b)
  for j = 1, #a do if a[j] ~= b[j] then return false end end
  return #a == #b
end

-- core.sumsq: narrow (3 columns, the unrolled pass) and wide (6, column by column).
for _, M in ipairs { X3, X6 } do
  local p = M:ncol()
  for _, wt in ipairs { false, true } do
    local o1 = { center = true, weights = wt and w or nil }
    local o2 = { center = true, weights = wt and w or nil, threads = 2 }
    local ss1, raw1 = core.sumsq(M, o1)
    local ss2, raw2 = core.sumsq(M, o2)
    local what = string.format("sumsq, %d columns%s", p, wt and ", weighted" or "")
    T.check(same(ss1, ss2) and same(raw1, raw2), what .. ": threads = 2 gives the bits of threads = 1 (centred, raw)")
    T.check(same(core.sumsq(M, { weights = o1.weights }), core.sumsq(M, { weights = o1.weights, threads = 2.0 })),
      what .. ": uncentred only, threads = 2.0 is 2")
    -- against the definition, column 2
    local sw, s, q, raw = 0, 0, 0, 0
    for i = 1, n do
      local wi, v = wt and w:get(i, 1) or 1, M:get(i, 2)
      sw, s, raw = sw + wi, s + wi * v, raw + wi * v * v
    end
    for i = 1, n do
      local wi, v = wt and w:get(i, 1) or 1, M:get(i, 2) - s / sw
      q = q + wi * v * v
    end
    T.near(ss2[2], q, 1e-12, what .. ": the centred sum of squares")
    T.near(raw2[2], raw, 1e-12, what .. ": the raw sum of squares")
  end
end
T.checkerr("sumsq: option 'threads' must be 1 or 2, got 3", core.sumsq, X3, { threads = 3 })
T.checkerr("sumsq: option 'threads' must be 1 or 2, got 1.5", core.sumsq, X3, { threads = 1.5 })

-- core.vcov: HC1, one- and two-way clusters, Driscoll-Kraay, weighted or not.
local idc, timec = core.codes(id), core.codes(time)
for _, wt in ipairs { false, true } do
  local f = core.lsfit(X3, e, { weights = wt and w or nil })
  for _, o in ipairs {
    { type = "hc1" }, { cluster = { idc } }, { cluster = { idc, timec } }, { time = timec, lag = 2 },
  } do
    o.weights = wt and w or nil
    local V1 = core.vcov(X3, f.resid, f.bread, o)
    o.threads = 2
    local V2 = core.vcov(X3, f.resid, f.bread, o)
    local ok = true
    for a = 1, 3 do for b = 1, 3 do ok = ok and V1:get(a, b) == V2:get(a, b) end end
    T.check(ok, string.format("vcov %s%s: threads = 2 gives the bits of threads = 1",
      o.type or (o.time and "driscoll-kraay") or (#o.cluster .. "-way cluster"), wt and ", weighted" or ""))
  end
  T.checkerr("vcov: option 'threads' must be 1 or 2, got 3", core.vcov, X3, f.resid, f.bread, { type = "hc1", threads = 3 })
end

T.done()
