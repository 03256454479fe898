-- spillover.placebo: randomization inference for a policy effect.  The
-- treatment is reassigned at random many times, the effect re-estimated under
-- each pseudo-treatment, and the true estimate compared with that
-- distribution (the placebo test of nearly every DID paper; Stata's ritest,
-- or the hand-written loops of the pilot-zone literature).
--
--   local pl = sp.placebo({data = d, formula = "y ~ x | id + year", cohort = "first_treat",
--                          method = "twfe"}, {reps = 500, assign = "units", seed = 1})
--   pl.estimate, pl.p_value, pl.draws, pl:plot("placebo.png")
--
-- Draw r uses the random stream rng:substream(r) of the seed, so a draw does
-- not depend on which draws ran before it: the same seed gives the same
-- draws in any order, on any number of workers.
local core = require "spillover.core"
local util = require "spillover.util"
local mpi = require "spillover.mpi"
local raise = util.raise

local M = {}

local ASSIGN = { units = true, timing = true, both = true }
local in_workers  -- defined below, after the draw loop it distributes
local SPEC_KEYS = { "data", "formula", "cohort", "method", "options", "estimate" }
local OPTS = { "reps", "assign", "seed", "min_ok", "workers" }

-- The unit of each row and the cohort of each unit (its first row's value;
-- did_common checks that it is constant when the true effect is estimated).
local function units_of(d, cohort)
  local info = util.panel_of(d)
  if info == nil then raise("placebo: the frame has no panel index: call d:panel{entity=, time=} first") end
  local ent, tim = d[info.entity], d[info.time]
  local g = d:column(cohort)
  if type(g) ~= "userdata" then raise("placebo: the cohort column '" .. cohort .. "' must be numeric") end
  local gv = g:totable()
  local index, units, unit_of = {}, {}, {}
  local times, seen = {}, {}
  for i = 1, d:nrow() do
    local k = util.key_of(type(ent) == "table" and ent[i] or ent:get(i, 1))
    local u = index[k]
    if u == nil then
      u = #units + 1
      index[k] = u
      units[u] = gv[i] == gv[i] and gv[i] or 0  -- missing = never treated
    end
    unit_of[i] = u
    local t = type(tim) == "table" and tim[i] or tim:get(i, 1)
    if not seen[t] then seen[t] = true; times[#times + 1] = t end
  end
  table.sort(times)
  return units, unit_of, times
end

-- A pseudo cohort per unit.  units: the observed cohorts shuffled across
-- units; timing: the treated units keep being treated, each from a random
-- period that leaves at least one period before it; both: as many treated
-- units as observed, drawn at random, each with a random period.
local function reassign(cohorts, times, assign, rng)
  local n, out = #cohorts, {}
  if assign == "units" or assign == "both" then
    for u = 1, n do out[u] = cohorts[u] end
    for u = n, 2, -1 do  -- Fisher-Yates
      local j = rng:integer(u)
      out[u], out[j] = out[j], out[u]
    end
  else
    for u = 1, n do out[u] = cohorts[u] end
  end
  if assign == "timing" or assign == "both" then
    for u = 1, n do
      if out[u] > 0 then out[u] = times[1 + rng:integer(#times - 1)] end
    end
  end
  return out
end

-- The default estimate: the overall ATT of sp.did with the spec's method.
local function did_estimate(spec)
  local did = require "spillover.did"
  return function(d, cohort)
    local o = {}
    for k, v in pairs(spec.options or {}) do o[k] = v end
    o.cohort, o.method = cohort, spec.method
    local fit = did.did(d, spec.formula, o)
    if not (fit.overall and type(fit.overall.att) == "number") then
      raise("placebo: the " .. tostring(spec.method or "did") .. " fit has no overall ATT (fit.overall.att)")
    end
    return fit.overall.att
  end
end

-- Draws first..last: the pseudo-treatment of draw r comes from the stream
-- rng(seed):substream(r) alone.  Returns {[r] = {ok =, value = | error =}}.
-- bar (spillover.progress) counts them, in the process that has the terminal.
local function run_draws(estimate, d, cohort, assign, seed, first, last, bar)
  local cohorts, unit_of, times = units_of(d, cohort)
  local work = d:copy()
  local pseudo = "__placebo_cohort"
  local root = core.rng(seed)
  local n = d:nrow()
  local out = {}
  for r = first, last do
    local g = reassign(cohorts, times, assign, root:substream(r))
    local col = {}
    for i = 1, n do col[i] = g[unit_of[i]] end
    work[pseudo] = col
    local ok, b = pcall(estimate, work, pseudo)
    if ok and type(b) == "number" and b == b then
      out[r] = { ok = true, value = b }
    else
      out[r] = { ok = false, error = ok and "not a number" or util.message(b) }
    end
    if bar then bar:tick() end
  end
  return out
end

-- The draws split over the ranks of an MPI job (sp.mpi): each rank draws its
-- block of r with the same substreams, so the draws are the one process's.
-- A failed draw's message stays with the rank that ran it.
local function in_ranks(estimate, est, d, cohort, assign, seed, reps, bar)
  mpi.same(est, "placebo: the estimate on the true assignment")
  local first, last = mpi.range(reps)
  local mine = run_draws(estimate, d, cohort, assign, seed, first, last, bar)
  local values = {}
  for r = first, last do values[#values + 1] = mine[r].ok and mine[r].value or 0 / 0 end
  local out = {}
  for r, v in ipairs(mpi.collect(values, reps)) do
    out[r] = v == v and { ok = true, value = v } or
      { ok = false, error = mine[r] and mine[r].error or ("draw " .. r .. " failed on another MPI process") }
  end
  return out
end

-- The spillover executable, which the worker processes run.
local function executable()
  local exe = arg and arg[-1]
  if type(exe) ~= "string" or not exe:find("spillover[^/]*$") then
    raise("placebo: workers > 1 need the spillover executable (run the script with `spillover script.lua`)")
  end
  return exe
end

-- The draws in `workers` processes, each a contiguous range of r: the frame
-- goes to them as CSV (numbers written so that they read back exactly), the
-- spec as JSON, and their draws come back as JSON; substreams make the merged
-- draws the same as one process's.
in_workers = function(d, spec, assign, seed, reps, workers, bar)
  local S = core.sys
  local json = require "spillover.json"
  local exe = executable()
  local info = util.panel_of(d)
  local dir = assert(S.mkdtemp("/tmp/spillover-placebo-"))
  local ok, res = pcall(function()
    d:write_csv(dir .. "/data.csv")
    local script = dir .. "/worker.lua"
    local f = assert(io.open(script, "w"))
    f:write('require("spillover.placebo").worker(arg[1], arg[2])\n')
    f:close()
    local pids, ranges = {}, {}
    for w = 1, workers do
      local first, last = util.block(reps, w, workers)
      local job = dir .. "/job" .. w .. ".json"
      local jf = assert(io.open(job, "w"))
      jf:write(json.encode { data = dir .. "/data.csv", entity = info.entity, time = info.time, formula = spec.formula,
        cohort = spec.cohort, method = spec.method, options = spec.options or {}, assign = assign, seed = seed,
        first = first, last = last })
      jf:close()
      local log = dir .. "/worker" .. w .. ".log"
      local pid, err = S.spawn({ exe, script, job, dir .. "/out" .. w .. ".json" }, { stdout = log, stderr = log })
      if not pid then raise("placebo: cannot start a worker: " .. tostring(err)) end
      pids[w], ranges[w] = pid, { first, last }
    end
    local out = {}
    for w = 1, workers do
      local code = S.wait(pids[w])
      if code ~= 0 then
        local lf = io.open(dir .. "/worker" .. w .. ".log")
        local text = lf and lf:read("a") or ""
        if lf then lf:close() end
        raise(string.format("placebo: worker %d (draws %d-%d) failed: %s", w, ranges[w][1], ranges[w][2],
          text:gsub("%s+$", "")))
      end
      local got = json.read(dir .. "/out" .. w .. ".json")
      for i, x in ipairs(got) do out[ranges[w][1] + i - 1] = x end
      bar:tick(#got)
    end
    return out
  end)
  S.remove_tree(dir)
  if not ok then error(res, 0) end
  return res
end

--- The body of a worker process (in_workers): draws job.first..job.last of
--- the job at jobpath, written to outpath as JSON.
function M.worker(jobpath, outpath)
  local json = require "spillover.json"
  local job = json.read(jobpath)
  local d = core.read_csv(job.data)
  d:panel { entity = job.entity, time = job.time }
  local spec = { formula = job.formula, method = job.method, options = job.options }
  local res = run_draws(did_estimate(spec), d, job.cohort, job.assign, job.seed, job.first, job.last)
  local list = {}
  for r = job.first, job.last do list[#list + 1] = res[r] end
  local f = assert(io.open(outpath, "w"))
  f:write(json.encode(list))
  f:close()
end

local Placebo = {}
Placebo.__index = Placebo

--- sp.placebo(spec, {reps = 500, assign = "units" | "timing" | "both", seed = 1, min_ok = 0.5})
--- spec: {data =, cohort = column of first treated periods (0/missing = never),
---        formula =, method = (an sp.did method, default "twfe"), options = (more sp.did options)}
---   or {data =, cohort =, estimate = function(d, cohort_column) return number end}.
function M.placebo(spec, opts)
  if type(spec) ~= "table" then raise("placebo: expected a spec table {data =, cohort =, formula = ...} as argument 1") end
  util.check_options(spec, SPEC_KEYS, "placebo: spec")
  opts = util.check_options(opts, OPTS, "placebo")
  local d, cohort = spec.data, spec.cohort
  if type(cohort) ~= "string" then raise("placebo: spec.cohort must name the column of first treated periods") end
  if type(d) ~= "userdata" or d.nrow == nil then raise("placebo: spec.data must be a frame") end
  local reps = opts.reps or 500
  if math.type(reps) ~= "integer" or reps < 1 then raise("placebo: reps must be a whole number >= 1, got " .. tostring(reps)) end
  local assign = opts.assign or "units"
  if not ASSIGN[assign] then
    raise("placebo: assign must be \"units\", \"timing\" or \"both\", got " .. tostring(assign))
  end
  local min_ok = opts.min_ok or 0.5
  local estimate = spec.estimate
  local custom = estimate ~= nil
  if estimate == nil then
    if type(spec.formula) ~= "string" then raise("placebo: spec.formula is required (or spec.estimate)") end
    spec = setmetatable({ method = spec.method or "twfe" }, { __index = spec })
    estimate = did_estimate(spec)
  elseif type(estimate) ~= "function" then
    raise("placebo: spec.estimate must be a function(d, cohort_column) returning the effect")
  end

  local est = estimate(d, cohort)
  if type(est) ~= "number" or est ~= est then raise("placebo: the estimate on the true assignment is not a number") end
  local cohorts, _, times = units_of(d, cohort)
  local treated = 0
  for _, g in ipairs(cohorts) do if g > 0 then treated = treated + 1 end end
  if treated == 0 then raise("placebo: no unit is treated in '" .. cohort .. "': nothing to reassign") end
  if treated == #cohorts and assign ~= "timing" then
    raise("placebo: every unit is treated in '" .. cohort .. "': reassigning units changes nothing (use assign = \"timing\")")
  end
  if #times < 2 then raise("placebo: the panel has one period: a pseudo-treatment needs a period before it") end

  local seed = opts.seed or 1
  local workers = opts.workers or 1
  if math.type(workers) ~= "integer" or workers < 1 then
    raise("placebo: workers must be a whole number >= 1, got " .. tostring(workers))
  end
  local results
  local bar <close> = require("spillover.progress").new("placebo", reps)
  if workers > 1 and reps > 1 then
    if custom then
      raise("placebo: workers > 1 re-estimate in other processes, which cannot run a Lua function: " ..
        "give spec.formula and spec.method instead of spec.estimate")
    end
    results = in_workers(d, spec, assign, seed, reps, math.min(workers, reps), bar)
  elseif mpi.size() > 1 and reps > 1 then
    results = in_ranks(estimate, est, d, cohort, assign, seed, reps, bar)
  else
    results = run_draws(estimate, d, cohort, assign, seed, 1, reps, bar)
  end
  bar:done()
  local draws, failed, first_error = {}, 0, nil
  for r = 1, reps do
    local x = results[r]
    if x.ok then draws[#draws + 1] = x.value
    else
      failed = failed + 1
      first_error = first_error or x.error
    end
  end
  if #draws < min_ok * reps then
    raise(string.format("placebo: %d of %d pseudo-treatments could not be estimated (first: %s)", failed, reps,
      tostring(first_error)))
  end
  local extreme, sum = 0, 0
  for _, b in ipairs(draws) do
    if math.abs(b) >= math.abs(est) then extreme = extreme + 1 end
    sum = sum + b
  end
  local mean = sum / #draws
  local ss = 0
  for _, b in ipairs(draws) do ss = ss + (b - mean) ^ 2 end
  local notes = {}
  if failed > 0 then
    notes[1] = string.format("%d of %d pseudo-treatments could not be estimated and are left out (first: %s)",
      failed, reps, first_error)
  end
  return setmetatable({
    estimate = est, draws = draws, reps = reps, failed = failed, assign = assign, seed = seed, workers = workers,
    -- two-sided: the share of placebo estimates at least as large in absolute value (ritest's convention)
    p_value = extreme / #draws, extreme = extreme, mean = mean, sd = #draws > 1 and math.sqrt(ss / (#draws - 1)) or 0 / 0,
    notes = notes,
  }, Placebo)
end

function Placebo:__tostring()
  local lines = {
    string.format("Randomization inference (%s reassigned, %d draws, seed %d)", self.assign, #self.draws, self.seed),
    string.format("  estimate %.6g   placebo mean %.6g, sd %.6g   two-sided p = %.4f (%d of %d at least as extreme)",
      self.estimate, self.mean, self.sd, self.p_value, self.extreme, #self.draws),
  }
  for _, n in ipairs(self.notes) do lines[#lines + 1] = "  Note: " .. n end
  return table.concat(lines, "\n")
end

--- The kernel density of the placebo estimates with the true estimate marked.
function Placebo:plot(path, spec)
  local dens = util.kde(self.draws)
  local s = { x = dens.x, series = { { y = dens.y, label = "placebo estimates" } }, vlines = { self.estimate },
    xlabel = "estimate", ylabel = "density", legend = false }
  for k, v in pairs(spec or {}) do s[k] = v end
  return require("spillover.plot").lines(path, s)
end

return M
