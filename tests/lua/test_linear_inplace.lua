-- test_linear_inplace: sp.ols demeans its own design's block [y X] in place
-- when every column is a plain column of the frame, and then re-reads the
-- columns from the frame (core.design_refill) instead of demeaning a copy.
-- The fit must be bit-identical to the copy path, its design must hold the
-- data again afterwards, and a design that cannot be re-read (derived terms,
-- dummies, a changed or another frame) is left alone.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local core = require "spillover.core"
local ols = require "spillover.ols"
local rules = require "spillover.vcov_rules"

local rng = sp.rng(2026)
local cols = { id = {}, t = {}, x1 = {}, x2 = {}, y = {}, g = {} }
for i = 1, 40 do
  local a = rng:normal()
  for t = 1, 6 do
    if rng:uniform() > 0.1 then
      local n = #cols.id + 1
      local x1, x2 = rng:normal() + 0.5 * a, rng:uniform() + 0.1 * t
      cols.id[n], cols.t[n], cols.x1[n], cols.x2[n] = i, t, x1, x2
      cols.y[n] = 0.5 * x1 - 0.3 * x2 + a + 0.2 * t + rng:normal()
      cols.g[n] = ({ "a", "b", "c" })[rng:integer(3)]
    end
  end
end
local d = sp.frame(cols)
local n = #cols.id

-- Overwrite every entry of M (in place) with f(value).
local function overwrite(M, f)
  for i = 1, M:nrow() do
    for j = 1, M:ncol() do M:set(i, j, f(M:get(i, j))) end
  end
end

local function same_matrix(A, B)
  if A:nrow() ~= B:nrow() or A:ncol() ~= B:ncol() then return false end
  for i = 1, A:nrow() do
    for j = 1, A:ncol() do
      if A:get(i, j) ~= B:get(i, j) then return false end
    end
  end
  return true
end

-- core.design_refill puts back the frame's columns after an in-place demeaning.
do
  local des = sp.design(d, "y ~ x1 + x2 | id + t")
  local saved = des.yX:copy()
  T.check(core.design_refill(des, d, true), "refill: plain columns can be re-read")
  core.absorb(des):demean(des.yX)
  T.check(not same_matrix(des.yX, saved), "refill: the block was demeaned in place")
  T.check(core.design_refill(des, d), "refill: re-read")
  T.check(same_matrix(des.yX, saved), "refill: the block holds the data again, bit for bit")
  T.check(same_matrix(des.y, saved:view(1, 1, n, 1)), "refill: des.y is the frame's y")
end

-- With an explicit intercept column, it is refilled with ones.
do
  local des = sp.design(d, "y ~ x1 | id", { intercept = true })
  local saved = des.yX:copy()
  overwrite(des.yX, function() return 0 end)
  T.check(core.design_refill(des, d), "refill: intercept and plain columns")
  T.check(same_matrix(des.yX, saved), "refill: the intercept column is ones again")
end

-- Columns that are not plain columns of the frame are not re-read, and the
-- block is left as it is.
for _, f in ipairs { "y ~ x1 + log(x2) | id", "log(y) ~ x1 | id", "y ~ x1 + i(g) | id", "y ~ x1:x2 | id" } do
  local des = sp.design(d, f)
  overwrite(des.yX, function(v) return 2 * v end)
  local before = des.yX:copy()
  T.check(not core.design_refill(des, d, true), "refill: not offered for " .. f)
  T.check(not core.design_refill(des, d) and same_matrix(des.yX, before), "refill: refused and untouched for " .. f)
end

-- A frame changed since the design was built, or another frame, is refused.
do
  local d2 = d:copy()
  local des = sp.design(d2, "y ~ x1 + x2 | id")
  T.check(not core.design_refill(des, d), "refill: another frame (same columns) is refused")
  local x1 = {}
  for r = 1, n do x1[r] = cols.x1[r] + 1 end
  d2.x1 = x1
  overwrite(des.yX, function() return 0 end)
  T.check(not core.design_refill(des, d2), "refill: a frame changed since the design is refused")
  T.check(des.yX:get(1, 2) == 0, "refill: nothing copied from a changed frame")
end

-- sp.ols (in place) against fit_design on a caller's design (a copy is
-- demeaned): bit-identical slopes, covariance and residuals; the fit's design
-- holds the data; the caller's design is not modified.
for _, spec in ipairs {
  { "y ~ x1 + x2 | id + t", { vcov = { cluster = "id" } } },
  { "y ~ x1 + x2 | id", { vcov = "hc1" } },
  { "y ~ x1 + x2 | id + t", { vcov = { cluster = "id" }, weights = "x2" } },
} do
  local formula, opts = spec[1], spec[2]
  local f1 = sp.ols(d, formula, opts)
  local vc = rules.parse_vcov(opts.vcov, true)
  local extra = ols.extra_vars(d, vc, opts)
  local des = sp.design(d, formula, { extra = extra })
  local saved = des.yX:copy()
  local f2 = ols.fit_design(d, des, formula, opts, rules.check_compat(opts), vc, extra)
  local same = #f1.b == #f2.b and same_matrix(f1.resid_values, f2.resid_values)
  for j = 1, #f1.b do
    if f1.b[j] ~= f2.b[j] then same = false end
    for l = 1, #f1.b do if f1.V[j][l] ~= f2.V[j][l] then same = false end end
  end
  for _, key in ipairs { "r2", "r2_within", "tss_within", "ssr" } do
    if f1.stats[key] ~= f2.stats[key] then same = false end
  end
  T.check(same, "in place: " .. formula .. " bit-identical to demeaning a copy")
  T.check(same_matrix(des.yX, saved), "in place: a caller's design is not modified (" .. formula .. ")")
  T.check(same_matrix(f1.private.design.yX, saved), "in place: the fit's design holds the data again (" .. formula .. ")")
  local fitted, e = f1:fitted(), f1.resid_values
  local ok = true
  for r = 1, n do
    if math.abs(fitted:get(r, 1) + e:get(r, 1) - cols.y[r]) > 1e-12 then ok = false end
  end
  T.check(ok, "in place: fitted + residual = y (" .. formula .. ")")
end

-- A fit with a derived term demeans a copy: its design still holds the data.
do
  local f = sp.ols(d, "y ~ x1 + log(x2) | id + t")
  local fresh = sp.design(d, "y ~ x1 + log(x2) | id + t")
  T.check(same_matrix(f.private.design.yX, fresh.yX), "copy path: log(x2) fit keeps its design as built")
end

-- Cluster codes already numbered in order of first appearance (a sorted
-- panel's entities) are used as they are; relabelled in reverse order they
-- are recoded first.  Both give the same covariance, bit for bit.
do
  local rev = {}
  for r = 1, n do rev[r] = 1000 - cols.id[r] end
  local d2 = d:copy()
  d2.rev = rev
  local f1 = sp.ols(d2, "y ~ x1 + x2 | t", { vcov = { cluster = "id" } })
  local f2 = sp.ols(d2, "y ~ x1 + x2 | t", { vcov = { cluster = "rev" } })
  local same = true
  for j = 1, 2 do for l = 1, 2 do if f1.V[j][l] ~= f2.V[j][l] then same = false end end end
  T.check(same and f1.stats.n_clusters == 40, "cluster codes in first-appearance order or recoded: same V")
  local f3 = sp.ols(d2, "y ~ x1 + x2 | t", { vcov = { cluster = { "id", "t" } } })
  local f4 = sp.ols(d2, "y ~ x1 + x2 | t", { vcov = { cluster = { "rev", "t" } } })
  same = true
  for j = 1, 2 do for l = 1, 2 do if f3.V[j][l] ~= f4.V[j][l] then same = false end end end
  T.check(same, "two-way clusters: same V with the entity codes as they are or recoded")
end

T.done()
