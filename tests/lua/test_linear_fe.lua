-- test_linear_fe: the fast paths of fixed-effects OLS.  The between R2 of a
-- one-way fit comes from group means computed in C (absorb:means, core.cor2)
-- and equals the definition computed by hand; fixed-effect codes are borrowed
-- from the design, so a design closed early raises instead of leaving dangling
-- codes; and fits are bit-identical with 1 and 2 threads.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local core = require "spillover.core"

-- An unbalanced panel with a third factor and positive weights.
local rng = sp.rng(77)
local cols = { id = {}, t = {}, k = {}, x1 = {}, x2 = {}, y = {}, w = {} }
for i = 1, 60 do
  local a = rng:normal()
  for t = 1, 8 do
    if rng:uniform() > 0.15 then
      local n = #cols.id + 1
      local x1, x2 = rng:normal() + 0.5 * a, rng:normal() + 0.1 * t
      cols.id[n], cols.t[n], cols.k[n], cols.x1[n], cols.x2[n] = i, t, rng:integer(7), x1, x2
      cols.y[n] = 0.5 * x1 - 0.3 * x2 + a + 0.2 * t + rng:normal()
      cols.w[n] = 0.5 + rng:uniform()
    end
  end
end
local d = sp.frame(cols)
local n = #cols.id

-- core.cor2 against the textbook formula.
do
  local a, b = {}, {}
  for i = 1, 50 do a[i], b[i] = rng:normal(), rng:normal() end
  for i = 1, 50 do b[i] = b[i] + 0.7 * a[i] end
  local ma, mb = 0, 0
  for i = 1, 50 do ma, mb = ma + a[i] / 50, mb + b[i] / 50 end
  local sab, saa, sbb = 0, 0, 0
  for i = 1, 50 do
    sab, saa, sbb = sab + (a[i] - ma) * (b[i] - mb), saa + (a[i] - ma) ^ 2, sbb + (b[i] - mb) ^ 2
  end
  T.near(core.cor2(core.matrix(a), core.matrix(b)), sab * sab / (saa * sbb), 1e-13, "cor2: squared correlation")
  T.checkerr("two vectors of the same length", core.cor2, core.matrix(a), core.matrix({ 1, 2 }))
end

-- core.cor2 on 3e5 rows far from zero (1e8 + noise, where raw sums of
-- squares would cancel) matches the two-pass formula computed here (a
-- one-pass version that merged blocks centred on their own means missed it
-- by 3e-10); rows read from the frame's arrays (a selection of complete
-- columns) give what the same values as matrices give; two threads give
-- the same bits as one.
do
  local N = 300000
  local big = { y = {}, x1 = {}, x2 = {} }
  for i = 1, N do
    local x1, x2 = rng:normal(), rng:normal()
    big.x1[i], big.x2[i] = 1e8 + x1, x2
    big.y[i] = 1e8 + 0.4 * x1 - 0.2 * x2 + rng:normal()
  end
  local g = { 0.4, -0.2 }
  local my, mv = 0, 0
  for i = 1, N do my, mv = my + big.y[i], mv + g[1] * big.x1[i] + g[2] * big.x2[i] end
  my, mv = my / N, mv / N
  local suu, svv, suv = 0, 0, 0
  for i = 1, N do
    local du, dv = big.y[i] - my, g[1] * big.x1[i] + g[2] * big.x2[i] - mv
    suu, svv, suv = suu + du * du, svv + dv * dv, suv + du * dv
  end
  local want = suv * suv / (suu * svv)
  local db = sp.frame(big)
  local desb = core.design_deferred(db, "y ~ x1 + x2 - 1")
  local yx = core.design_rows(desb, db):select({ 1, 2, 3 })
  local one, two = core.cor2(yx, core.matrix(g)), core.cor2(yx, core.matrix(g), { threads = 2 })
  T.near(one, want, 1e-10, "cor2 of rows 1e8 from zero: the two-pass value")
  T.check(one == two, "cor2: the same bits on one thread and two")
  T.near(core.cor2(core.matrix(big.y), desb.X, core.matrix(g)), one, 1e-13, "cor2: rows and matrices alike")
  T.checkerr("unknown option", core.cor2, yx, core.matrix(g), { thread = 2 })
  -- A selection that skips and reorders columns reads the ones it names.
  local rows = core.design_rows(desb, db)
  T.near(core.cor2(rows:select({ 1, 3 }), core.matrix { -0.2 }), core.cor2(core.matrix(big.y), core.matrix(big.x2)),
    1e-13, "cor2 of a selection that skips a column")
  local ss = core.sumsq(rows:select({ 3, 1 }))
  local s3, s1 = core.sumsq(core.matrix(big.x2))[1], core.sumsq(core.matrix(big.y))[1]
  T.check(ss[1] == s3 and ss[2] == s1, "sumsq of a selection that reorders columns: each its own column's")
end

-- absorb:means: plain means per level, on a strided view, NaN for an empty level.
do
  local ab = core.absorb({ core.matrix({ 1, 3, 1, 3 }) })  -- codes: values 1, 3 -> levels 1, 2
  local m = ab:means(1, core.matrix({ { 1, 10 }, { 2, 20 }, { 4, 40 }, { 8, 80 } }):view(1, 2, 4, 1))
  T.check(m:nrow() == 2 and m:ncol() == 1, "means: one row per level, one column")
  T.near(m:get(1, 1), 25, 1e-15, "means: level 1 (rows 1 and 3 of column 2)")
  T.near(m:get(2, 1), 50, 1e-15, "means: level 2")
  T.checkerr("no such fixed effect", ab.means, ab, 2, core.matrix(4, 1))
  T.checkerr("the matrix has 3 rows", ab.means, ab, 1, core.matrix(3, 1))
end

-- The one-way between R2 equals cor(ybar_i, mean_i(x b))^2 computed by hand.
do
  local f = sp.ols(d, "y ~ x1 + x2 | id")
  local b = f:coef()
  local sy, sx, cnt = {}, {}, {}
  for r = 1, n do
    local i = cols.id[r]
    sy[i] = (sy[i] or 0) + cols.y[r]
    sx[i] = (sx[i] or 0) + b.x1 * cols.x1[r] + b.x2 * cols.x2[r]
    cnt[i] = (cnt[i] or 0) + 1
  end
  local my, mx = {}, {}
  for i = 1, 60 do
    if cnt[i] then my[#my + 1], mx[#mx + 1] = sy[i] / cnt[i], sx[i] / cnt[i] end
  end
  local a, c = 0, 0
  for i = 1, #my do a, c = a + my[i] / #my, c + mx[i] / #mx end
  local sab, saa, sbb = 0, 0, 0
  for i = 1, #my do
    sab, saa, sbb = sab + (my[i] - a) * (mx[i] - c), saa + (my[i] - a) ^ 2, sbb + (mx[i] - c) ^ 2
  end
  T.near(f.stats.r2_between_corr, sab * sab / (saa * sbb), 1e-10, "one-way: between R2 by hand")
  local yv, xb = {}, {}
  for r = 1, n do yv[r], xb[r] = cols.y[r], b.x1 * cols.x1[r] + b.x2 * cols.x2[r] end
  T.near(f.stats.r2_overall_corr, core.cor2(core.matrix(yv), core.matrix(xb)), 1e-12, "one-way: overall R2")
  T.near(core.cor2(core.matrix(yv), f.private.design.X, core.matrix { b.x1, b.x2 }),
    core.cor2(core.matrix(yv), core.matrix(xb)), 1e-12, "cor2(y, X, b) is cor2(y, Xb)")
  T.checkerr("cor2: expected two vectors", core.cor2, core.matrix(yv), f.private.design.X, core.matrix { 1, 2, 3 })
end

-- Borrowed codes: the workspace and code vectors pin the design; closing it early raises.
do
  local des = sp.design(d, "y ~ x1 | id + t")
  local ab = core.absorb(des)
  local codes = core.codes(des, "id")
  local M = des.yX:copy()
  ab:demean(M)
  T.check(M:get(1, 1) == M:get(1, 1), "borrowed codes: demeaning works while the design is open")
  getmetatable(des).__close(des)
  T.checkerr("closed spillover.design", ab.demean, ab, M)
  T.checkerr("closed spillover.design", core.absorb, { codes })
  des, ab, codes = nil, nil, nil
  collectgarbage()
  collectgarbage()
  T.check(true, "borrowed codes: collecting design, workspace and codes together is safe")
end

-- Thread-count invariance: the whole fit (slopes, covariance, SEs, residuals)
-- is bit-identical with 1 and 2 threads, for 2 and 3 factors, weighted or
-- not, under clustered and HC1 covariances; the large panel has more rows
-- than the size at which the second thread starts in every pass (the
-- covariance's and the sums of squares' included).
local big = { id = {}, t = {}, k = {}, x1 = {}, x2 = {}, y = {}, w = {} }
for i = 1, 2000 do
  local a = rng:normal()
  for t = 1, 60 do
    local m = #big.id + 1
    local x1, x2 = rng:normal() + 0.5 * a, rng:normal() + 0.1 * t
    big.id[m], big.t[m], big.k[m], big.x1[m], big.x2[m] = i, t, rng:integer(7), x1, x2
    big.y[m] = 0.5 * x1 - 0.3 * x2 + a + 0.2 * t + rng:normal()
    big.w[m] = 0.5 + rng:uniform()
  end
end
local dbig = sp.frame(big)
for _, spec in ipairs {
  { d, "y ~ x1 + x2 | id + t", nil, { cluster = "id" } }, { d, "y ~ x1 + x2 | id + t + k", nil, { cluster = "id" } },
  { d, "y ~ x1 + x2 | id + t + k", "w", { cluster = "id" } }, { d, "y ~ x1 + x2 | id", "w", { cluster = "id" } },
  { d, "y ~ x1 + x2 | id + t", "w", "HC1" }, { d, "y ~ x1 + x2 | id + t", nil, { cluster = { "id", "t" } } },
  { dbig, "y ~ x1 + x2 | id + t", nil, { cluster = "id" } }, { dbig, "y ~ x1 + x2 | id + t", "w", { cluster = "id" } },
  { dbig, "y ~ x1 + x2 | id + t", nil, "HC1" }, { dbig, "y ~ x1 + x2 | id + t", "w", { cluster = { "id", "t" } } },
} do
  local data, formula, weights, vcov = spec[1], spec[2], spec[3], spec[4]
  local fits = {}
  for thr = 1, 2 do
    fits[thr] = sp.ols(data, formula, { threads = thr, weights = weights, vcov = vcov, tol = 1e-13 })
  end
  local same = true
  local se1, se2 = fits[1]:se(), fits[2]:se()
  for j = 1, #fits[1].b do
    if fits[1].b[j] ~= fits[2].b[j] then same = false end
    for l = 1, #fits[1].b do
      if fits[1].V[j][l] ~= fits[2].V[j][l] then same = false end
    end
  end
  for name, s in pairs(se1) do if se2[name] ~= s then same = false end end
  local e1, e2 = fits[1].resid_values, fits[2].resid_values
  for r = 1, data:nrow() do if e1:get(r, 1) ~= e2:get(r, 1) then same = false end end
  local vname = type(vcov) == "string" and vcov or ("cluster " .. table.concat(type(vcov.cluster) == "table" and
    vcov.cluster or { vcov.cluster }, " + "))
  T.check(same, string.format("threads: %s%s, %s, %d rows: bit-identical with 1 and 2 threads", formula,
    weights and " (weighted)" or "", vname, data:nrow()))
end

T.done()
