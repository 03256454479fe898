-- test_mpi: sp.mpi.  The suite runs it as one process; with -DSPILLOVER_MPI=ON
-- tests/mpi/run.sh also runs it under `mpirun -np 2`, where every rank checks
-- that the distributed fit on its whole states equals sp.ols on the whole
-- panel and that split replication loops give the one process's results:
-- `test_mpi.lua REF` writes those results to REF as one process, and under
-- mpirun compares with REF.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local mpi = sp.mpi

local r, k = mpi.rank(), mpi.size()
T.check(r >= 0 and r < k, "rank within the job")
T.check(mpi.sum(2) == 2 * k and mpi.max(r) == k - 1, "sum and max of a number over the ranks")
local s = mpi.sum { 1, r }
T.check(s[1] == k and s[2] == k * (k - 1) / 2, "sum of an array")
local m = mpi.sum(sp.matrix { { 1, 2 }, { 3, 4 } })
T.check(m:get(2, 1) == 3 * k, "sum of a matrix keeps its shape")
local g = mpi.allgather { r, r + 0.5 }
T.check(#g == 2 * k and g[2 * k] == k - 1 + 0.5, "allgather: every rank's values in rank order")

-- Replications split into blocks and put back in order.
local reps = 11
local first, last = mpi.range(reps)
local counts = mpi.sum(last - first + 1)
T.check(counts == reps, "the blocks cover the replications once")
local function replication(i) return sp.rng(7):substream(i):normal() end
local mine = {}
for i = first, last do mine[#mine + 1] = replication(i) end
local all = mpi.collect(mine, reps)
local same = #all == reps
for i = 1, reps do same = same and all[i] == replication(i) end
T.check(same, "collect: the replications of every rank, in order, as one process draws them")
T.checkerr("expected", mpi.collect, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, reps)

-- Placebo draws split over the ranks: the same draws as one process.
local function twfe(data, cohort)
  local gv, t = data[cohort]:totable(), data.year:totable()
  local D = {}
  for i = 1, #gv do D[i] = (gv[i] > 0 and t[i] >= gv[i]) and 1 or 0 end
  data.D = D
  return sp.ols(data, "y ~ D | id + year"):coef().D
end
local rng = sp.rng(5)
local id, year, coh, y = {}, {}, {}, {}
for u = 1, 12 do
  for t = 2001, 2006 do
    id[#id + 1], year[#year + 1], coh[#coh + 1] = u, t, u <= 4 and 2004 or 0
    y[#y + 1] = 0.2 * u + 0.1 * t + (u <= 4 and t >= 2004 and 0.5 or 0) + rng:normal()
  end
end
local pd = sp.frame { id = id, year = year, g = coh, y = y }
pd:panel { entity = "id", time = "year" }
local pl = sp.placebo({ data = pd, cohort = "g", estimate = twfe }, { reps = 9, seed = 2 })
T.check(#pl.draws == 9, "placebo: every draw, on " .. k .. " process(es)")
-- The threshold bootstrap split over the ranks: rank i runs replications
-- i, i + size, ... and all get every F* back, as one process draws them.
local hr = sp.rng(9)
local hid, ht, hq, hx, hy = {}, {}, {}, {}, {}
for u = 1, 40 do
  for t = 1, 6 do
    local q, x = hr:uniform(), hr:normal()
    hid[#hid + 1], ht[#ht + 1], hq[#hq + 1], hx[#hx + 1] = u, t, q, x
    hy[#hy + 1] = 0.1 * u + (q < 0.5 and 1 or 2) * x + 0.5 * hr:normal()
  end
end
local hd = sp.frame { id = hid, t = ht, q = hq, x = hx, y = hy }
hd:panel { entity = "id", time = "t" }
local th = sp.threshold(hd, "y ~ 1", { threshold = "q", regime = { "x" }, n = 2, bootstrap = 25, seed = 4, grid = 50 })
local fstar = {}
for j, test in ipairs(th.stats.tests) do
  for _, v in ipairs(test.Fboot) do fstar[#fstar + 1] = v end
  fstar[#fstar + 1] = test.pvalue
  T.check(#test.Fboot == 25, "threshold test " .. j .. ": every replication on " .. k .. " process(es)")
end

local ref_path = arg and arg[1]
if ref_path and k == 1 then
  T.write(ref_path, sp.json.encode { placebo = pl.draws, p_value = pl.p_value, threshold = fstar })
elseif ref_path then
  local ref = sp.json.decode(T.read(ref_path))
  local same_draws = #ref.placebo == #pl.draws and ref.p_value == pl.p_value
  for i, v in ipairs(ref.placebo) do same_draws = same_draws and v == pl.draws[i] end
  T.check(same_draws, "placebo on " .. k .. " processes: the one process's draws, bit for bit")
  local same_fstar = #ref.threshold == #fstar
  for i, v in ipairs(ref.threshold) do same_fstar = same_fstar and v == fstar[i] end
  T.check(same_fstar, "threshold bootstrap on " .. k .. " processes: the one process's F* and p-values, bit for bit")
end

-- A specification curve's cells split over the ranks: every rank ends with
-- every cell, as one process estimates them.
local curve = sp.spec_curve(pd, { outcomes = { "y" }, treatments = { "g" }, controls = { none = {}, t = { "year" } },
  samples = { all = true, late = "year > 2001", few = "id < 2" } })
local cells = {}
for i, c in ipairs(curve.cells) do cells[i] = { c.estimate or "failed", c.std_error or "", c.formula } end
T.check(#curve.cells == 6 and curve.summary.failed == 2, "spec_curve on " .. k .. " process(es): 6 cells, 2 fail (one unit)")
if ref_path and k == 1 then
  local f = assert(io.open(ref_path .. ".curve", "w"))
  f:write(sp.json.encode(cells))
  f:close()
elseif ref_path then
  local f = assert(io.open(ref_path .. ".curve"))
  local ref = sp.json.decode(f:read("a"))
  f:close()
  local same_cells = #ref == #cells
  for i, c in ipairs(ref) do same_cells = same_cells and c[1] == cells[i][1] and c[2] == cells[i][2] and c[3] == cells[i][3] end
  T.check(same_cells, "spec_curve on " .. k .. " processes: the one process's cells")
end

-- The wild bootstrap and the counterfactual's draws split over the ranks:
-- every rank gets the one process's p-value, confidence set, t* and
-- intervals, bit for bit.  Each loop's progress counts its own block, so the
-- blocks show that the work was split (and that it covers every replication).
local P = sp.read_csv("tests/reference/data/Produc.csv")
P:panel { entity = "state", time = "year" }
local progress = require "spillover.progress"
local new_bar, block = progress.new, nil
progress.new = function(label, total)
  if label == "wild bootstrap" then block = total end
  return new_bar(label, total)
end
local boot = {}
local function split(what, reps)
  T.check(block and mpi.sum(block) == reps and (k == 1 or block < reps),
    what .. ": the replications split over " .. k .. " process(es)", tostring(block))
end
local function record(what, wb)
  boot[what] = { pvalue = wb.pvalue, t = wb.t, confint = wb.confint, tstar = wb.tstar, reps = wb.reps }
end
local fp = sp.ols(P, "log_gsp ~ log_pcap + log_pc + unemp | year", { vcov = { cluster = "state" } })
record("wcr_webb", fp:wildboot { param = "log_pcap", reps = 199, weights = "webb", seed = 3 })
split("WCR, Webb weights", 199)
-- 9 regions: all 2^9 sign vectors
local wr = fp:wildboot { param = "unemp", reps = 999, cluster = "region", impose_null = false }
T.check(wr.enumerated and wr.reps == 512, "WCU by region: the 512 sign vectors enumerated")
record("wcu_enum", wr)
split("WCU, enumerated", 512)
local ivd = sp.read_csv("tests/reference/data/external/ivreg2r_sim_cluster_data.csv")
local fiv = sp.ols(ivd, "y ~ x1 | endo1 ~ z1 + z2", { vcov = { cluster = "cluster_id" } })
local wre = fiv:wildboot { param = "endo1", reps = 99, seed = 8 }
record("wre", wre)
progress.new = new_bar
-- a 2SLS result used by one process alone (after the call, which all made):
-- its p-value function and another level's confidence set, without the others
local wre_later = r == 0 and { wre.pvalue_at(wre.estimate + wre.se), table.unpack(wre.interval(0.9)) } or nil

-- Counterfactual intervals from parameter draws of a dynamic model (each
-- draw predicts period by period through fit:predict) and from the cluster
-- bootstrap (each draw a refit): split, spec.progress counting this rank's
-- draws.  A linear fit's draws are one matrix product each: every rank
-- computes all of them.
local cf_sum = {}
local cf_cases = {
  { "dynamic draws", "log_gsp ~ l(log_gsp, 1) + unemp | state", "draws", 12, true },
  { "bootstrap", "log_gsp ~ log_pcap + unemp | state", "bootstrap", 6, true },
  { "linear draws", "log_gsp ~ log_pcap + unemp | state", "draws", 40, false },
}
for _, case in ipairs(cf_cases) do
  local what, fml, how, n_draws, splits = table.unpack(case)
  local seen = 0
  local res = sp.counterfactual { data = P, fit = sp.ols(P, fml, { vcov = { cluster = "state" } }),
    entity = "state", time = "year", groups = { "region" }, shocks = { { variable = "unemp", from = 1980, change = "+1" } },
    [how] = n_draws, seed = 3, progress = function(i) seen = math.max(seen, i) end }
  if splits then
    T.check(res.ndraws == n_draws and mpi.sum(seen) == n_draws and (k == 1 or seen < n_draws),
      "counterfactual, " .. what .. ": the draws split over " .. k .. " process(es)", tostring(seen))
  else
    T.check(res.ndraws == n_draws and seen == n_draws, "counterfactual, " .. what .. ": every draw on every process")
  end
  local lo = {}
  for i, u in ipairs(res.units) do lo[i] = { u.lo, u.hi } end
  cf_sum[what] = sp.json.encode { groups = res.groups, units = lo }
end
-- An allocation's draws (four predictions each) split over the ranks.
local allocate = require "spillover.allocate"
local seen = 0
local al = allocate.run { data = P, fit = sp.ols(P, "log_gsp ~ log_pcap + unemp | state"), derive = function() end,
  entity = "state", time = "year", allocate = { variable = "log_pcap", budget = 2, from = 1984, upper = 0.5 },
  draws = 10, seed = 4, progress = function(i) seen = math.max(seen, i) end }
T.check(mpi.sum(seen) == 10 and (k == 1 or seen < 10), "allocate: the draws split over " .. k .. " process(es)",
  tostring(seen))
cf_sum.allocation = sp.json.encode { groups = al.groups, lo = al.allocation.gain_over_equal_lo,
  hi = al.allocation.gain_over_status_quo_hi }
if ref_path and k == 1 then
  T.write(ref_path .. ".boot", sp.json.encode { boot = boot, cf = cf_sum, wre_later = wre_later })
elseif ref_path then
  local ref = sp.json.decode(T.read(ref_path .. ".boot"))
  for what, r in pairs(ref.boot) do
    local b = boot[what]
    local same_boot = b.pvalue == r.pvalue and b.t == r.t and b.reps == r.reps and b.confint[1] == r.confint[1] and
      b.confint[2] == r.confint[2] and #b.tstar == #r.tstar
    for i, v in ipairs(r.tstar) do same_boot = same_boot and (v == b.tstar[i] or (v ~= v and b.tstar[i] ~= b.tstar[i])) end
    T.check(same_boot, "wild bootstrap " .. what .. " on " .. k .. " processes: the one process's p-value, " ..
      "confidence set and t*, bit for bit")
  end
  if r == 0 then
    T.check(wre_later[1] == ref.wre_later[1] and wre_later[2] == ref.wre_later[2] and wre_later[3] == ref.wre_later[3],
      "2SLS on " .. k .. " processes: pvalue_at and interval(0.9) on one process alone, the one process's")
  end
  for how, text in pairs(ref.cf) do
    T.check(cf_sum[how] == text, "counterfactual, " .. how .. ", on " .. k .. " processes: the one process's intervals")
  end
end

-- The distributed fit: whole states on each rank, an unbalanced panel.
local d = sp.read_csv("tests/reference/data/Produc.csv")
local idx, n = {}, 0
for _, st in ipairs(d.state) do if not idx[st] then n = n + 1; idx[st] = n end end
local function kept(row) return not (idx[row.state] % 5 == 0 and row.year < 1975) end
local part = d:filter(function(row) return idx[row.state] % k == r and kept(row) end)
part:panel { entity = "state", time = "year" }
local whole = d:filter(kept)
whole:panel { entity = "state", time = "year" }
for _, fml in ipairs { "log_gsp ~ log_pcap + log_pc + log_emp + unemp | state + year",
  "log_gsp ~ log_pcap + log_pc + log_emp + unemp | state" } do
  for _, vc in ipairs { "iid", "hc1", { cluster = "state" } } do
    local a = sp.ols(whole, fml, { vcov = vc, tol = 1e-14 })
    local b = mpi.ols(part, fml, { vcov = vc, tol = 1e-14 })
    local wb, wse, wp = 0, 0, 0
    for _, nm in ipairs(a.names) do
      wb = math.max(wb, math.abs(a:coef()[nm] / b:coef()[nm] - 1))
      wse = math.max(wse, math.abs(a:se()[nm] / b:se()[nm] - 1))
      wp = math.max(wp, math.abs(a:pvalue()[nm] - b:pvalue()[nm]))
    end
    local what = string.format("%s, vcov %s, %d process(es)", fml:match("|.*$"), type(vc) == "table" and "cluster" or vc, k)
    T.check(wb < 1e-10 and wse < 1e-10 and wp < 1e-10, "equals sp.ols on the whole panel: " .. what,
      string.format("b %.3g, se %.3g, p %.3g", wb, wse, wp))
    T.check(b.nobs == a.nobs and b.stats.fe_dof == a.stats.fe_dof and b.df_resid == a.df_resid, "nobs, absorbed parameters, t df: " .. what)
  end
end

-- What the distributed fit refuses.
T.checkerr("must absorb the panel's entity", mpi.ols, part, "log_gsp ~ log_pcap | year")
T.checkerr("must be the panel's entity", mpi.ols, part, "log_gsp ~ log_pcap | state + region")
T.checkerr("must cluster by the panel's entity", mpi.ols, part, "log_gsp ~ log_pcap | state", { vcov = { cluster = "region" } })
T.checkerr("tol must be a number > 0", mpi.ols, part, "log_gsp ~ log_pcap | state", { tol = -1 })
T.checkerr("maxiter must be a whole number", mpi.ols, part, "log_gsp ~ log_pcap | state", { maxiter = 0.5 })
T.checkerr("unknown option 'vcv'", mpi.ols, part, "log_gsp ~ log_pcap | state", { vcv = "hc1" })
T.checkerr("panel index", mpi.ols, d, "log_gsp ~ log_pcap | state")
T.checkerr("collinear", mpi.ols, part, "log_gsp ~ log_pcap + I(2 * log_pcap) | state")
if k > 1 then
  -- the same state on two ranks: refused on every rank, never a number
  local split = d:filter(function(row) return idx[row.state] % k == r or row.state == "ALABAMA" end)
  split:panel { entity = "state", time = "year" }
  T.checkerr("has rows on more than one process", mpi.ols, split, "log_gsp ~ log_pcap | state + year")
  -- each process with its own data: a split loop refuses on every rank, never a mixed result
  local own = hd:filter(function(row) return row.id ~= r + 1 end)
  own:panel { entity = "id", time = "t" }
  T.checkerr("differs between the processes", sp.threshold, own, "y ~ 1",
    { threshold = "q", regime = { "x" }, bootstrap = 5, seed = 4, grid = 20 })
  local pown = pd:filter(function(row) return row.id ~= 12 - r end)
  pown:panel { entity = "id", time = "year" }
  T.checkerr("differs between the processes", sp.placebo, { data = pown, cohort = "g", estimate = twfe }, { reps = 4 })
  T.checkerr("differs between the processes", sp.spec_curve, pown, { outcomes = { "y" }, treatments = { "g" } })
  local Pown = P:filter(function(row) return not (r == 1 and row.state == "ALABAMA") end)
  T.checkerr("differs between the processes", function()
    return sp.ols(Pown, "log_gsp ~ log_pcap + unemp | year", { vcov = { cluster = "state" } }):wildboot { param = "unemp", reps = 9 }
  end)
  T.checkerr("differs between the processes", sp.counterfactual, { data = Pown, fit = sp.ols(Pown, "log_gsp ~ log_pcap + unemp | state"),
    entity = "state", time = "year", shocks = { { variable = "unemp", change = "+1" } }, bootstrap = 4, progress = false })
end
T.done()
