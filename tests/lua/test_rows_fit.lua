-- test_rows_fit: sp.ols with fixed effects reads its rows from the frame and
-- never stores the demeaned block [y X] (core.design_rows, absorb:solve,
-- absorb:within).  Every statistic must have the bits of the same fit on a
-- materialised, demeaned copy (ols.fit_design on a caller's design), and the
-- fit's design fills y and X only when something reads them, from a frame
-- that still holds those columns.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local core = require "spillover.core"
local ols = require "spillover.ols"
local rules = require "spillover.vcov_rules"

-- Small fits store their block (below ols.ROWS_MIN_BYTES); these read rows.
local rows_min = ols.ROWS_MIN_BYTES
ols.ROWS_MIN_BYTES = 0

-- An unbalanced panel: entities with 3..9 periods, a third factor, weights,
-- a regressor the entity effects absorb (z), and missing values so that the
-- design uses a subset of the rows.
local rng = sp.rng(20261202)
local cols = { id = {}, t = {}, k = {}, x1 = {}, x2 = {}, z = {}, y = {}, w = {} }
for i = 1, 400 do
  local a, zi = rng:normal(), rng:normal()
  for t = 1, 3 + rng:integer(7) do
    local m = #cols.id + 1
    local x1, x2 = rng:normal() + 0.5 * a, rng:normal() + 0.1 * t
    cols.id[m], cols.t[m], cols.k[m], cols.x1[m], cols.x2[m], cols.z[m] = i, t, rng:integer(5), x1, x2, zi
    cols.y[m] = 0.5 * x1 - 0.3 * x2 + a + 0.2 * t + rng:normal()
    cols.w[m] = 0.5 + rng:uniform()
  end
end
cols.x2[17], cols.y[300] = 0 / 0, 0 / 0
local d = sp.frame(cols)

local function same(a, b)
  if type(a) == "number" and type(b) == "number" then return a == b or (a ~= a and b ~= b) end
  if type(a) == "userdata" and type(b) == "userdata" then return same(a:totable(), b:totable()) end
  if a == nil or b == nil then return a == b end
  if type(a) == "table" and type(b) == "table" then
    for k, v in pairs(a) do if not same(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end
  return a == b
end

--- The same fit on a materialised design, demeaned as a copy.
local function materialised(formula, opts)
  local vc = rules.parse_vcov(opts.vcov, true)
  local extra = ols.extra_vars(d, vc, opts)
  local des = core.design(d, formula, { extra = extra, threads = opts.threads })
  return ols.fit_design(d, des, formula, opts, rules.check_compat(opts), vc, extra, false)
end

local specs = {
  { "y ~ x1 + x2 | id + t", { vcov = { cluster = "id" } } },
  { "y ~ x1 + x2 | id + t", { vcov = { cluster = "id" }, threads = 2 } },
  { "y ~ x1 + x2 + z | id + t", { vcov = "hc1", weights = "w" } },
  { "y ~ x1 + x2 | id + t + k", { vcov = { cluster = { "id", "t" } }, weights = "w" } },
  { "y ~ x1 + x2 | id", { vcov = "iid" } },
  { "y ~ x1 + x2 | id", { vcov = { cluster = "id" }, weights = "w", threads = 2 } },
  { "y ~ x1 | t", { vcov = "hc3" } },
  -- no regressor: the residuals are y (its within R2 exactly 0, not -2e-16)
  { "y ~ 1 | id + t", { vcov = "iid", weights = "w" } },
}
for _, spec in ipairs(specs) do
  local formula, opts = spec[1], spec[2]
  local f, g = sp.ols(d, formula, opts), materialised(formula, opts)
  local label = formula .. " " .. (type(opts.vcov) == "table" and "cluster" or opts.vcov) ..
    (opts.weights and " weighted" or "") .. (opts.threads and " 2 threads" or "")
  T.check(not f.private.design.filled, "rows: " .. label .. ": the fit stored no block [y X]")
  T.check(same(f.b, g.b) and same(f:se(), g:se()) and same(f.V, g.V), "rows: " .. label .. ": b, V and SEs bit-identical")
  T.check(same(f.stats, g.stats), "rows: " .. label .. ": every statistic bit-identical")
  T.check(same(f.notes, g.notes) and same(f.dropped, g.dropped), "rows: " .. label .. ": the same notes and drops")
  T.check(rawget(f, "resid_values") == nil, "rows: " .. label .. ": no residuals stored until read")
  T.check(same(f.resid_values, g.resid_values) and same(f:resid(), g:resid()),
    "rows: " .. label .. ": residuals bit-identical when read")
  -- y and X are filled when read: fitted values and fixed effects as before
  T.check(same(f:fitted(), g:fitted()) and f.private.design.filled,
    "rows: " .. label .. ": fitted values fill the design, same bits")
  T.check(same(f:fixef(), g:fixef()), "rows: " .. label .. ": fixed effects the same")
  if #f.b == 0 then
    T.check(f.stats.r2_within == 0 and f.stats.ssr == f.stats.tss_within, "rows: " .. label .. ": within R2 exactly 0")
  end
end

-- The fixed effects re-solve the fit's workspace, whose solve the deferred
-- residuals read: asked for first, they leave the residuals as they were.
do
  local opts = { vcov = { cluster = "id" }, weights = "w" }
  local f, g = sp.ols(d, "y ~ x1 + x2 | id + t", opts), materialised("y ~ x1 + x2 | id + t", opts)
  T.check(same(f:fixef(), g:fixef()) and same(f:resid(), g:resid()),
    "rows: fixed effects read before the residuals: both as on the stored block")
end

-- A formula with a derived term, or no fixed effects, fits the block as before.
local fl = sp.ols(d, "y ~ x1 + log(w) | id + t", { vcov = { cluster = "id" } })
T.check(fl.private.design.filled, "rows: a derived term (log) takes the materialised block")
T.check(sp.ols(d, "y ~ x1 + x2", {}).private.design.filled, "rows: without fixed effects the block is filled")
ols.ROWS_MIN_BYTES = rows_min
T.check(sp.ols(d, "y ~ x1 + x2 | id + t", {}).private.design.filled and rows_min == 16e6,
  "rows: a block below 16 MB is stored (the default threshold)")
ols.ROWS_MIN_BYTES = 0

-- The frame changes after the fit: another column added or replaced leaves
-- the fit's columns readable; replacing one it reads makes filling say so.
local e = sp.frame(cols)
local f1 = sp.ols(e, "y ~ x1 + x2 | id + t", {})
e.extra = cols.w
e.w = cols.y
T.check(same(f1:fitted(), sp.ols(d, "y ~ x1 + x2 | id + t", {}):fitted()),
  "rows: columns added or replaced elsewhere in the frame: fitted values as before")
local f2 = sp.ols(e, "y ~ x1 + x2 | id + t", {})
e.x1 = cols.x2
T.checkerr("the data this design %(or fit%) of y was built on changed: a column it reads was replaced or dropped",
  function() return f2:fitted() end)

-- Sources check what they read: a stale within (solved again), a replaced column.
local des = core.design_deferred(d, "y ~ x1 + x2 | id + t")
local rows = core.design_rows(des, d)
local a = core.absorb(des)
a:solve(rows)
local within = a:within(rows)
T.check(within:nrow() == des.n and within:ncol() == 3, "rows: within has the design's shape")
-- A selection of within rows reads and subtracts only its columns: the same
-- sums as the selected columns of the demeaned block, in that order.
local yX = des.yX:copy()
core.absorb(des):demean(yX)
local sub = within:select({ 3, 2 })
local ss_sel, ss_blk = core.sumsq(sub)[1], core.sumsq(yX:view(1, 3, des.n, 1))[1]
T.check(sub:ncol() == 2 and ss_sel == ss_blk and core.sumsq(sub)[2] == core.sumsq(yX:view(1, 2, des.n, 1))[1],
  "rows: within:select({3, 2}) gives the demeaned block's columns 3 and 2, bit for bit")
T.check(core.sumsq(sub:select({ 2 }))[1] == core.sumsq(yX:view(1, 2, des.n, 1))[1],
  "rows: a selection of a selection of within rows composes the columns")
-- A fit's residual rows: lsfit with resid = false stores no residuals but
-- gives eX = [e Xk], which vcov reads (e nil) and whose first column is the
-- residual vector lsfit would have stored, bit for bit.
do
  local f0 = core.lsfit(yX:view(1, 2, des.n, 2), yX:view(1, 1, des.n, 1))
  local fr = core.lsfit(within, { resid = false })
  T.check(fr.resid == nil and fr.ssr == nil and fr.eX:ncol() == 3 and fr.eX:nrow() == des.n,
    "rows: lsfit resid = false: no resid, no ssr, rows [e X]")
  T.check(same(fr.eX:column(1), f0.resid) and same(fr.eX:column(3), yX:view(1, 3, des.n, 1):copy()),
    "rows: eX holds the residuals and the regressors, bit for bit")
  local V0, i0 = core.vcov(yX:view(1, 2, des.n, 2), f0.resid, f0.bread, { type = "hc1" })
  local V1, i1 = core.vcov(fr.eX, nil, fr.bread, { type = "hc1" })
  T.check(same(V0, V1) and i1.ssr == f0.ssr and i0.ssr == f0.ssr, "rows: vcov from eX: the same V, info.ssr the fit's ssr")
  T.checkerr("lsfit: resid = false needs a row source", core.lsfit, yX:view(1, 2, des.n, 2), yX:view(1, 1, des.n, 1),
    { resid = false })
  T.checkerr("lsfit: option 'resid' must be a boolean", core.lsfit, within, { resid = 0 })
  T.checkerr("rows: column 4 is not in 1..3", function() return fr.eX:column(4) end)
  T.checkerr("vcov: bread must be 2 x 2", core.vcov, fr.eX, nil, core.matrix(3, 3), { type = "hc1" })
  a:solve(rows)
  T.checkerr("the fixed effects were solved again since these rows were made", function() return fr.eX:column(1) end)
end
T.checkerr("the fixed effects were solved again since these rows were made", core.lsfit, within)
T.checkerr("the fixed effects were solved again since these rows were made", core.sumsq, sub)
T.checkerr("within: solve these rows first", function() return a:within(core.design_rows(des, d)) end)
T.check(core.design_rows(core.design(d, "y ~ log(w) | id"), d) == nil, "rows: a derived term has no row source")

-- sumsq centring only the leading columns: the same sums as centring all,
-- from rows with dropped rows, from rows read straight from complete columns
-- (the frame's arrays), from a matrix, weighted or not.
local full_cols = {}
for name, v in pairs(cols) do
  full_cols[name] = {}
  for i, x in ipairs(v) do full_cols[name][i] = x == x and x or 0.25 end
end
local dc = sp.frame(full_cols)
local desc = core.design_deferred(dc, "y ~ x1 + x2 | id + t")
local wm = core.matrix(desc.n, 1)
for i = 1, desc.n do wm:set(i, 1, full_cols.w[i]) end
local sources = { { rows, nil, "rows with dropped rows" }, { core.design_rows(desc, dc), nil, "rows of complete columns" },
  { core.design_rows(desc, dc), wm, "rows of complete columns, weighted" }, { desc.yX, nil, "a matrix" },
  { desc.yX, wm, "a matrix, weighted" } }
for _, sc in ipairs(sources) do
  local src, wt, what = sc[1], sc[2], sc[3]
  local all, raw_all = core.sumsq(src, { center = true, weights = wt })
  local lead, raw_lead = core.sumsq(src, { center = 2, weights = wt })
  T.check(#lead == 2 and lead[1] == all[1] and lead[2] == all[2] and same(raw_lead, raw_all),
    "sumsq center = 2: the first two centred sums and all uncentred ones, bit for bit: " .. what)
end
T.checkerr("sumsq: option 'center' must be a boolean or a column count in 1..3", core.sumsq, rows, { center = 4 })
T.checkerr("sumsq: option 'center' must be a boolean or a column count in 1..3", core.sumsq, rows, { center = 1.5 })

T.done()
