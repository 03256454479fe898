-- spillover.malmquist: productivity change between periods from frontier
-- distances (docs/estimators/dea.md), and window DEA.
--
--   sp.malmquist{data =, entity =, time =, inputs =, outputs =, bad =,
--                index = "m" | "ml", frontier = "contemporaneous" | "sequential" | "global", ...}
--
-- index "m" (Faere et al. 1994) uses a ratio efficiency E (<= 1 on and
-- inside the frontier: radial input theta, 1/phi, SBM rho, super-SBM rho);
-- index "ml" (Chung, Faere & Grosskopf 1997) the directional distance D
-- (0 on the frontier) through 1 + D.  Both are written here with the
-- "distance" d = 1/E for "m" and d = 1 + D for "ml", so that
--   index = sqrt(d_t(t) / d_t(t+1) * d_t1(t) / d_t1(t+1))   (contemporaneous, sequential)
--   EC    = d_t(t) / d_t1(t+1)
--   index = d_G(t) / d_G(t+1)                               (global: Pastor & Lovell 2005, Oh 2010)
--   TC    = index / EC
-- so index = EC x TC holds exactly in every case.
local core = require "spillover.core"
local util = require "spillover.util"
local dea = require "spillover.dea"
local raise = util.raise

local M = {}

local OPTIONS = { "data", "entity", "time", "inputs", "outputs", "bad", "index", "frontier", "model", "rts",
  "orientation", "direction", "bad_disposability", "threads" }

-- The panel: rows of the data grouped by period, entity labels and sorted periods.
local function panel(opts, who)
  local d = opts.data
  if type(d) ~= "userdata" or not d.names then raise(who .. ": 'data' must be a frame") end
  for _, k in ipairs({ "entity", "time" }) do
    if type(opts[k]) ~= "string" then raise(who .. ": '" .. k .. "' must be a column name") end
  end
  local have = {}
  for _, nm in ipairs(d:names()) do have[nm] = true end
  for _, k in ipairs({ "entity", "time" }) do
    if not have[opts[k]] then raise(who .. ": no column '" .. opts[k] .. "' in data", { var = opts[k] }) end
  end
  local ent, tim = d[opts.entity], d[opts.time]
  local n = d:nrow()
  local units, periods, by_period, seen = {}, {}, {}, {}
  local ekey, tval = {}, {}
  for i = 1, n do
    local e, t = ent[i], tim[i]
    if e == nil or t == nil or t ~= t then
      raise(string.format("%s: row %d has no %s or %s", who, i, opts.entity, opts.time))
    end
    e = util.key_of(e)
    if type(t) ~= "number" then
      raise(who .. ": '" .. opts.time .. "' must be numeric (periods in order)", { var = opts.time })
    end
    local key = e .. "\0" .. t
    if seen[key] then
      raise(string.format("%s: unit '%s' appears twice in period %s", who, e, util.key_of(t)), { var = opts.entity })
    end
    seen[key] = i
    ekey[i], tval[i] = e, t
    if not by_period[t] then by_period[t] = {}; periods[#periods + 1] = t end
    by_period[t][#by_period[t] + 1] = i
    if not units[e] then units[e] = true; units[#units + 1] = e end
  end
  table.sort(periods)
  if #periods < 2 then raise(who .. ": need at least two periods, got " .. #periods) end
  return { n = n, entity = ekey, time = tval, periods = periods, by_period = by_period, units = units, row = seen }
end

-- The distance of every row in `rows` to the frontier spanned by `ref`
-- (row indices of the data).  Rows that are in ref are excluded from their
-- own reference set only for the super-efficiency models.
local function distances(d, sc, o, ref, rows, index)
  local rset = dea.scaled_set(d, sc, ref)
  local eset = dea.scaled_set(d, sc, rows)
  local pos = {}
  for a, i in ipairs(ref) do pos[i] = a end
  local exclude = {}
  for k, i in ipairs(rows) do exclude[k] = pos[i] end
  local r = dea.evaluate(rset, eset, o, exclude)
  local out = {}
  for k, i in ipairs(rows) do
    local v = r.status[k] == "optimal" and r.score[k] or 0 / 0
    if index == "ml" then
      out[i] = 1 + v
    elseif o.model == "radial" and o.orientation == "output" then
      out[i] = v
    else
      out[i] = 1 / v
    end
  end
  return out
end

local function union(a, b)
  local out, seen = {}, {}
  for _, l in ipairs({ a, b }) do
    for _, i in ipairs(l) do
      if not seen[i] then seen[i] = true; out[#out + 1] = i end
    end
  end
  return out
end

local function setup(opts, who, allowed)
  if type(opts) ~= "table" then raise(who .. ": expected a table of options") end
  util.check_options(opts, allowed, who)
  local p = panel(opts, who)
  local index = opts.index or "m"
  if index ~= "m" and index ~= "ml" then raise(who .. ": index must be \"m\" or \"ml\", got " .. tostring(index)) end
  local mopts = {}
  for k, v in pairs(opts) do mopts[k] = v end
  mopts.model = opts.model or (index == "ml" and "ddf" or "ccr")
  if index == "ml" and mopts.model ~= "ddf" then
    raise(who .. ": index \"ml\" uses the directional distance function (model \"ddf\"), not \"" .. mopts.model .. "\"")
  end
  if index == "m" and mopts.model == "ddf" then
    raise(who .. ": index \"m\" needs a ratio efficiency (ccr, bcc, sbm, super_sbm); use index = \"ml\" for ddf")
  end
  if mopts.model == "fdh" then raise(who .. ": model \"fdh\" is not available for productivity indices") end
  local o = dea.options(mopts, who)
  local labels = {}
  for i = 1, p.n do labels[i] = p.entity[i] .. " in " .. util.key_of(p.time[i]) end
  local d = dea.prepare(mopts, who, labels)
  o.nondisc = {}
  o.slacks, o.lambda = false, false
  o.scales = dea.scale_all(d, { X = { d.X.rows }, Y = { d.Y.rows }, B = d.B and { d.B.rows } })
  return p, d, o, index
end

function M.malmquist(opts)
  local who = "malmquist"
  local p, d, o, index = setup(opts, who, OPTIONS)
  local frontier = opts.frontier or "contemporaneous"
  if frontier ~= "contemporaneous" and frontier ~= "sequential" and frontier ~= "global" then
    raise(who .. ": frontier must be \"contemporaneous\", \"sequential\" or \"global\", got " .. tostring(frontier))
  end
  local sc, T = o.scales, #p.periods
  local refs = {}
  local all = {}
  for i = 1, p.n do all[i] = i end
  local acc = {}
  for t = 1, T do
    local rows = p.by_period[p.periods[t]]
    if frontier == "sequential" then acc = union(acc, rows) end
    refs[t] = frontier == "sequential" and acc or rows
  end
  -- dist[t][i]: distance of row i to frontier t (contemporaneous or
  -- sequential); global[i]: to the pooled frontier.
  local dist, glob = {}, nil
  for t = 1, T do
    local rows = p.by_period[p.periods[t]]
    local eval = rows
    if frontier ~= "global" then
      if t > 1 then eval = union(eval, p.by_period[p.periods[t - 1]]) end
      if t < T then eval = union(eval, p.by_period[p.periods[t + 1]]) end
    end
    dist[t] = distances(d, sc, o, refs[t], eval, index)
  end
  if frontier == "global" then glob = distances(d, sc, o, all, all, index) end
  local out = { entity = {}, from = {}, to = {}, index = {}, ec = {}, tc = {}, cumulative = {} }
  local notes = {}
  for _, e in ipairs(p.units) do
    local cum = 1
    for t = 1, T - 1 do
      local a, b = p.row[e .. "\0" .. p.periods[t]], p.row[e .. "\0" .. p.periods[t + 1]]
      if a and b then
        local ec = dist[t][a] / dist[t + 1][b]
        local idx
        if frontier == "global" then
          idx = glob[a] / glob[b]
        else
          idx = math.sqrt(dist[t][a] / dist[t][b] * dist[t + 1][a] / dist[t + 1][b])
        end
        if idx ~= idx then
          notes[#notes + 1] = string.format("unit '%s', %s-%s: a distance LP has no solution "
            .. "(a mixed-period LP can be infeasible; frontier = \"global\" avoids it)", e,
            util.key_of(p.periods[t]), util.key_of(p.periods[t + 1]))
        end
        cum = cum * idx
        local k = #out.entity + 1
        out.entity[k], out.from[k], out.to[k] = e, p.periods[t], p.periods[t + 1]
        out.index[k], out.ec[k], out.tc[k], out.cumulative[k] = idx, ec, idx / ec, cum
      end
    end
  end
  out.n = #out.entity
  local frame = core.frame({ entity = out.entity, from = out.from, to = out.to, index = out.index, ec = out.ec,
    tc = out.tc, cumulative = out.cumulative },
    { order = { "entity", "from", "to", "index", "ec", "tc", "cumulative" } })
  return { index = index, frontier = frontier, model = o.name, rts = o.rts, table = frame, rows = out,
    notes = notes }
end

--- sp.malmquist.window{data =, entity =, time =, inputs =, outputs =, bad =, width = 3, model = ...}:
--- window DEA (Charnes et al. 1985).  Each window of `width` consecutive
--- periods pools its unit-periods as separate units; a unit-period gets one
--- score in each window that contains it, and `mean` averages them.
function M.window(opts)
  local who = "window"
  local allowed = { "width" }
  for _, k in ipairs(OPTIONS) do if k ~= "index" and k ~= "frontier" then allowed[#allowed + 1] = k end end
  local width = opts and opts.width or 3
  local p, d, o = setup(opts, who, allowed)
  if math.type(width) ~= "integer" or width < 1 or width > #p.periods then
    raise(string.format("%s: width must be an integer in 1..%d (the number of periods), got %s", who, #p.periods,
      tostring(width)))
  end
  local res = { entity = {}, time = {}, window = {}, efficiency = {} }
  local sum, cnt = {}, {}
  for w = 1, #p.periods - width + 1 do
    local rows = {}
    for t = w, w + width - 1 do rows = union(rows, p.by_period[p.periods[t]]) end
    local set = dea.scaled_set(d, o.scales, rows)
    local ex = {}
    for a = 1, #rows do ex[a] = a end
    local r = dea.evaluate(set, set, o, ex)
    for a, i in ipairs(rows) do
      local k = #res.entity + 1
      local v = r.status[a] == "optimal" and r.score[a] or 0 / 0
      res.entity[k], res.time[k], res.window[k], res.efficiency[k] = p.entity[i], p.time[i], p.periods[w], v
      sum[i], cnt[i] = (sum[i] or 0) + v, (cnt[i] or 0) + 1
    end
  end
  local mean = { entity = {}, time = {}, efficiency = {}, windows = {} }
  for i = 1, p.n do
    mean.entity[i], mean.time[i], mean.efficiency[i], mean.windows[i] = p.entity[i], p.time[i], sum[i] / cnt[i], cnt[i]
  end
  return {
    scores = core.frame(res, { order = { "entity", "time", "window", "efficiency" } }),
    mean = core.frame(mean, { order = { "entity", "time", "efficiency", "windows" } }),
    width = width, model = o.name,
  }
end

return setmetatable(M, { __call = function(_, opts) return M.malmquist(opts) end })
