-- spillover.mpi: work split over the processes of an MPI job
-- (`mpirun -np K spillover script.lua`), as sp.mpi.
--
-- Two things are distributed, and nothing else:
--   * fixed-effects OLS on an entity-partitioned panel (mpi.ols): each rank
--     holds whole entities; the entity step of the demeaning is local, the
--     period step and the cross-products are summed over the ranks (objects of
--     the size of the periods and of k x k, never rows), and the clustered meat
--     of entity clusters is local;
--   * loops of independent replications (mpi.range, mpi.collect): each rank
--     runs a contiguous block of replication numbers, each replication seeded
--     from its own number (rng:substream(r)), and the blocks are put back in
--     order, so the result is the one process's.
-- Without MPI (or without a launcher) there is one rank and every function
-- works unchanged: a script written for mpirun runs as is on a laptop.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local F = require "spillover.formula"

local D = core.mpi
local M = {
  rank = D.rank, size = D.size, sum = D.sum, max = D.max, allgather = D.allgather,
  built = D.built,
}

--- The replications first..last (inclusive; first > last when none) of
--- this rank, of reps split into contiguous blocks as even as they go.
function M.range(reps)
  if math.type(reps) ~= "integer" or reps < 0 then raise("mpi.range: reps must be a whole number >= 0, got " .. tostring(reps)) end
  return util.block(reps, D.rank() + 1, D.size())
end

--- Raise on every rank unless x (a number) is the same on every rank: a
--- loop split over the ranks must be one computation, not each rank's own
--- (a script that fits different data on each rank would otherwise get
--- replications of several models mixed into one result).  what names it.
function M.same(x, what)
  if D.size() > 1 and D.max(x) ~= -D.max(-x) then
    raise(string.format("%s differs between the processes of the MPI job: a split loop needs the same data and " ..
      "settings on every process (run a different model per process without splitting, or with one process)", what))
  end
end

--- Every rank's values of its block (values[i] for replication first + i - 1,
--- numbers, NaN for a failed one) put together in replication order on every
--- rank: an array of reps numbers.
function M.collect(values, reps)
  local first, last = M.range(reps)
  if #values ~= last - first + 1 then
    raise(string.format("mpi.collect: this rank ran replications %d..%d, so expected %d values, got %d",
      first, last, last - first + 1, #values))
  end
  local all = D.allgather(values)
  if #all ~= reps then raise(string.format("mpi.collect: gathered %d values for %d replications", #all, reps)) end
  return all
end

--- Every rank's vectors of its block (vectors[r] for the replications r of
--- this rank, each an array of n numbers) on every rank: vectors[r] for r =
--- 1..reps, in replication order, by one allgather of reps x n numbers.
function M.collect_vectors(vectors, reps, n)
  local first, last = M.range(reps)
  local flat = {}
  for r = first, last do
    if type(vectors[r]) ~= "table" or #vectors[r] ~= n then
      raise(string.format("mpi.collect_vectors: replication %d of this rank is not an array of %d numbers", r, n))
    end
    table.move(vectors[r], 1, n, #flat + 1, flat)
  end
  local all = D.allgather(flat)
  if #all ~= reps * n then
    raise(string.format("mpi.collect_vectors: gathered %d numbers for %d replications of %d", #all, reps, n))
  end
  for r = 1, reps do
    if r < first or r > last then vectors[r] = table.move(all, (r - 1) * n + 1, r * n, 1, {}) end
  end
  return vectors
end

-- ---- fixed-effects OLS on an entity-partitioned panel -------------------------------

-- 52 bits of FNV-1a: a number that stands for a string label when the labels
-- of every rank are compared (a collision can only refuse a good partition).
local function label_key(s)
  local h = 0xcbf29ce484222325
  for i = 1, #s do h = ((h ~ s:byte(i)) * 0x100000001b3) & 0xffffffffffffffff end
  return ((h >> 12) & 0xfffffffffffff) + 0.0
end

-- Refuse a panel whose entities are not each on one rank: the entity step
-- of the demeaning is local, so a split entity would be demeaned wrongly.
local function check_partition(d, des, entity)
  local keys
  local col = d[entity]
  if type(col) == "table" then
    local seen = {}
    keys = {}
    for _, r in ipairs(des.rows) do
      local v = col[r]
      if not seen[v] then seen[v] = true; keys[#keys + 1] = label_key(tostring(v)) end
    end
  else
    keys = D.levels(des, entity)
  end
  local all = D.allgather(keys)
  table.sort(all)
  for i = 2, #all do
    if all[i] == all[i - 1] then
      raise(string.format("mpi.ols: an entity of '%s' has rows on more than one process; split the panel by entity " ..
        "(each process reads whole entities)", entity))
    end
  end
  return #all
end

-- The connected components of the entity-period graph from every rank's
-- forest over the periods (mpi.links).
local function components(parents, nper, ranks)
  local root = {}
  for t = 1, nper do root[t] = t end
  local function find(t)
    while root[t] ~= t do root[t] = root[root[t]]; t = root[t] end
    return t
  end
  for r = 0, ranks - 1 do
    for t = 1, nper do
      local a, b = find(t), find(math.tointeger(parents[r * nper + t]) + 1)
      if a ~= b then root[math.max(a, b)] = math.min(a, b) end
    end
  end
  local n = 0
  for t = 1, nper do if find(t) == t then n = n + 1 end end
  return n
end

local VCOV_KINDS = { iid = true, hc1 = true }
local OLS_OPTS = { "vcov", "tol", "maxiter" }

--- mpi.ols(d, formula, {vcov = "iid" | "hc1" | {cluster = <entity>}, tol =, maxiter =})
--- d: this rank's part of a panel (d:panel{entity =, time =}) holding whole
--- entities; formula: y ~ x1 + ... | entity [+ time].  Every rank returns
--- the same fit, equal to sp.ols on the whole panel (Stata's conventions,
--- the default preset) up to the demeaning's tolerance.
function M.ols(d, formula, opts)
  opts = util.check_options(opts, OLS_OPTS, "mpi.ols")
  local info = type(d) == "userdata" and d.panel_info and d:panel_info()
  if not info then raise("mpi.ols: argument 1 must be a frame with a panel index (d:panel{entity =, time =})") end
  local f = type(formula) == "string" and F.parse(formula) or formula
  if not F.is_formula(f) then raise("mpi.ols: argument 2 must be a formula") end
  local fe = f:fe()
  local has_time = false
  for _, name in ipairs(fe) do
    if name == info.time then has_time = true
    elseif name ~= info.entity then
      raise(string.format("mpi.ols: the fixed effects must be the panel's entity '%s' and optionally its period '%s', got '%s'",
        info.entity, info.time, name))
    end
  end
  if #fe == 0 or (has_time and #fe == 1) then
    raise("mpi.ols: the formula must absorb the panel's entity ('| " .. info.entity .. "' or '| " .. info.entity ..
      " + " .. info.time .. "'): rows of one entity never leave their process")
  end
  if f:iv() then raise("mpi.ols: instrumental variables are not distributed") end
  for _, key in ipairs { "tol", "maxiter" } do
    local v = opts[key]
    if v ~= nil and not (type(v) == "number" and v > 0 and (key == "tol" or math.type(v) == "integer")) then
      raise(string.format("mpi.ols: %s must be a %s, got %s", key, key == "tol" and "number > 0" or "whole number >= 1",
        tostring(v)))
    end
  end
  local vc = opts.vcov or "iid"
  local cluster = type(vc) == "table" and vc.cluster
  if type(vc) == "table" then
    if cluster ~= info.entity or next(vc, next(vc)) ~= nil then
      raise(string.format("mpi.ols: vcov {cluster = ...} must cluster by the panel's entity '%s' (clusters that span " ..
        "processes are not distributed)", info.entity))
    end
  elseif not VCOV_KINDS[vc] then
    raise("mpi.ols: vcov must be \"iid\", \"hc1\" or {cluster = \"" .. info.entity .. "\"}, got " .. tostring(vc))
  end

  local extra = { info.entity }
  if has_time then extra[2] = info.time end
  local des = core.design(d, f, { extra = extra })
  local ne = check_partition(d, des, info.entity)
  local k = des.k
  if k == 0 then raise("mpi.ols: no regressors left after absorbing the fixed effects") end
  local N = math.tointeger(D.sum(des.n))
  local periods, fe_dof = nil, ne
  if has_time then
    local all = D.allgather(D.levels(des, info.time))
    table.sort(all)
    periods = {}
    for i, v in ipairs(all) do if i == 1 or v ~= all[i - 1] then periods[#periods + 1] = v end end
    local parent = D.links(des, info.entity, info.time, periods)
    fe_dof = ne + #periods - components(D.allgather(parent), #periods, D.size())
  end
  if N <= k + fe_dof then
    raise(string.format("mpi.ols: %d observations are too few for %d coefficients and %d absorbed fixed-effect parameters",
      N, k, fe_dof))
  end
  local yX = des.yX:copy()
  local sweeps = D.demean(des, yX, info.entity, has_time and info.time or nil, periods,
    { tol = opts.tol or 1e-10, maxiter = opts.maxiter or 10000 })
  local y, X = yX:view(1, 1, des.n, 1), yX:view(1, 2, des.n, k)
  local XtX = D.sum(X:crossprod())
  local ok, bread = pcall(function() return XtX:inv() end)
  if not ok then
    raise("mpi.ols: the regressors are collinear after absorbing the fixed effects (the distributed fit drops no column)")
  end
  local b = bread * D.sum(X:t() * y)
  local e = y - X * b
  local ssr = D.sum(e:crossprod():get(1, 1))
  local tssw = D.sum(y:crossprod():get(1, 1))
  local I = core.matrix(k, k, 0)
  for j = 1, k do I:set(j, j, 1) end
  local V, df_t, kdf, G
  if vc == "iid" then
    kdf = k + fe_dof
    V = bread * (ssr / (N - kdf))
    df_t = N - kdf
  elseif vc == "hc1" then
    kdf = k + fe_dof
    local meat = D.sum(core.vcov(X, e, I, { type = "hc0" }))
    V = bread * meat * bread * (N / (N - kdf))
    df_t = N - kdf
  else
    -- the entity effects are nested in the entity clusters: Stata's K
    -- counts them once, as the constant (vcov_rules, fixest's fixef.K = "nested")
    G = ne
    kdf = k + fe_dof - (ne - 1)
    local meat = D.sum(core.vcov(X, e, I, { type = "cluster", cluster = { core.codes(des, info.entity) },
      dof = "none", gadj = "none" }))
    V = bread * meat * bread * ((G / (G - 1)) * ((N - 1) / (N - kdf)))
    df_t = G - 1
  end
  local df_resid = N - k - fe_dof
  local stats = { nobs = N, ssr = ssr, df_resid = df_resid, df_t = df_t, sigma = math.sqrt(ssr / df_resid),
    r2_within = 1 - ssr / tssw, tss_within = tssw, fe_dof = fe_dof, n_entities = ne, n_periods = periods and #periods or nil,
    n_clusters = G, processes = D.size(), sweeps = sweeps }
  local fe_info = { { name = info.entity, nlevels = ne } }
  if has_time then fe_info[2] = { name = info.time, nlevels = #periods } end
  return require("spillover.fit").new {
    names = des.names, b = b, V = V, nobs = N, df_resid = df_t, stats = stats, estimator = "within",
    label = D.size() == 1 and "OLS with fixed effects" or string.format("OLS with fixed effects (%d processes)", D.size()), formula = tostring(f),
    vcov_label = vc == "iid" and "iid" or vc == "hc1" and "HC1" or ("cluster: " .. info.entity), fe = fe_info,
  }
end

return M
