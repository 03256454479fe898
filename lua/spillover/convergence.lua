-- spillover.convergence: sigma and beta convergence, Phillips & Sul's log t
-- test (issue 13).
--
--   sigma(d, var, {time =, groups =})   CV and standard deviation of logs per period
--   beta(d, var, {controls =, fe =, vcov =, spatial =, weights =, ...})
--        growth on the initial log level: Delta ln y_it = a + b ln y_i,t-1 + ...
--   log_t(values, {trim =})            Phillips & Sul (2007) log t regression
--   clubs(values, {trim =, cstar =, ref =, merge =})   their club clustering and merging
--   merge_clubs(values, clubs, {trim =})                 the merging step alone
--
-- beta builds a frame of growth rates and lagged log levels and estimates it
-- with sp.ols (fixed effects from the panel index) or, with spatial =
-- "sar" | "sdm", sp.spatial; the speed of convergence and the half-life
-- follow from b.
local util = require "spillover.util"
local core = require "spillover.core"
local raise = util.raise

local M = {}

local function column(fname, d, col)
  local ok, c = pcall(d.column, d, col)
  if not ok then raise(fname .. ": unknown column '" .. tostring(col) .. "'") end
  if type(c) ~= "userdata" then raise(fname .. ": column '" .. col .. "' must be numeric") end
  return c:totable()
end

local function panel_names(fname, d, opts)
  local p = util.panel_of(d)
  if not p and type(d) ~= "userdata" then raise(fname .. ": expected a frame, got " .. type(d)) end
  local entity, time = opts.entity or (p and p.entity), opts.time or (p and p.time)
  if not time then raise(fname .. ": give 'time' (the frame has no panel index)") end
  return entity, time
end

--- sigma convergence: per period, the coefficient of variation of var and
--- the standard deviation of its logarithm (n - 1 denominators), over all
--- units and, with groups, within each group.  Returns an array of
--- {period =, cv =, sd_log =, n =, groups = {[g] = {cv =, sd_log =, n =}}}.
function M.sigma(d, var, opts)
  opts = util.check_options(opts, { "time", "groups" }, "sigma")
  local _, time = panel_names("sigma", d, opts)
  local x = column("sigma", d, var)
  local t = d:column(time)
  t = type(t) == "userdata" and t:totable() or t
  local g = opts.groups and d:column(opts.groups)
  if g and type(g) == "userdata" then g = g:totable() end
  local by, order = {}, {}
  for i = 1, #x do
    if x[i] == x[i] and t[i] ~= nil then
      if not (x[i] > 0) then raise(string.format("sigma: %s has a value <= 0 in row %d; the log is not defined", var, i)) end
      local k = util.key_of(t[i])
      if not by[k] then by[k] = { period = t[i], all = {}, groups = {} }; order[#order + 1] = by[k] end
      local r = by[k]
      r.all[#r.all + 1] = x[i]
      if g and g[i] ~= nil then
        local gk = util.key_of(g[i])
        r.groups[gk] = r.groups[gk] or {}
        table.insert(r.groups[gk], x[i])
      end
    end
  end
  table.sort(order, function(a, b) return a.period < b.period end)
  local function stats(v)
    local n = #v
    if n < 2 then return { n = n, cv = 0 / 0, sd_log = 0 / 0 } end
    local m, ml = 0, 0
    for _, y in ipairs(v) do m, ml = m + y, ml + math.log(y) end
    m, ml = m / n, ml / n
    local ss, ssl = 0, 0
    for _, y in ipairs(v) do ss, ssl = ss + (y - m) ^ 2, ssl + (math.log(y) - ml) ^ 2 end
    return { n = n, cv = math.sqrt(ss / (n - 1)) / m, sd_log = math.sqrt(ssl / (n - 1)) }
  end
  local out = {}
  for i, r in ipairs(order) do
    local s = stats(r.all)
    s.period = r.period
    if g then
      s.groups = {}
      for gk, v in pairs(r.groups) do s.groups[gk] = stats(v) end
    end
    out[i] = s
  end
  return out
end

local FE = { none = true, entity = true, time = true, twoways = true }

--- beta convergence on a panel frame (d:panel{entity =, time =}):
---   ln y_it - ln y_i,t-1 = a + b ln y_i,t-1 [+ controls at t-1... as given] + FE + e
--- opts: controls (a list of columns, at period t), fe = "none" | "entity" |
--- "time" | "twoways" (default "entity": conditional convergence; "none"
--- with no controls is absolute convergence), vcov (sp.ols's, default
--- clustered by entity), spatial = "sar" | "sdm" with weights (an
--- sp.weights over the entities) for spatial beta convergence through
--- sp.spatial (a balanced panel), step (periods per transition, 1).
--- Returns {fit =, b =, se =, speed = -ln(1 + b) / step, half_life = ln 2 / speed,
--- nobs =}.  speed is NaN when b <= -1 or b >= 0 (no convergence).
function M.beta(d, var, opts)
  opts = util.check_options(opts, { "entity", "time", "controls", "fe", "vcov", "spatial", "weights", "step" }, "beta")
  local entity, time = panel_names("beta", d, opts)
  if not entity then raise("beta: give 'entity' (the frame has no panel index)") end
  local fe = opts.fe or "entity"
  if not FE[fe] then raise("beta: fe must be none, entity, time or twoways, got '" .. tostring(fe) .. "'") end
  local step = opts.step or 1
  local x = column("beta", d, var)
  for i, v in ipairs(x) do
    if v == v and not (v > 0) then raise(string.format("beta: %s has a value <= 0 in row %d; the log is not defined", var, i)) end
  end
  local ly1 = d:lag(var, step):totable()
  local e, t = d:column(entity), d:column(time)
  e = type(e) == "userdata" and e:totable() or e
  t = type(t) == "userdata" and t:totable() or t
  local controls = opts.controls or {}
  local cvals = {}
  for j, c in ipairs(controls) do cvals[j] = column("beta", d, c) end
  local cols = { growth = {}, lag_log = {}, [entity] = {}, [time] = {} }
  for _, c in ipairs(controls) do cols[c] = {} end
  for i = 1, #x do
    local ok = x[i] == x[i] and ly1[i] == ly1[i] and ly1[i] > 0
    for j = 1, #controls do ok = ok and cvals[j][i] == cvals[j][i] end
    if ok then
      cols.growth[#cols.growth + 1] = math.log(x[i]) - math.log(ly1[i])
      cols.lag_log[#cols.lag_log + 1] = math.log(ly1[i])
      table.insert(cols[entity], e[i])
      table.insert(cols[time], t[i])
      for j, c in ipairs(controls) do table.insert(cols[c], cvals[j][i]) end
    end
  end
  if #cols.growth < 3 then raise("beta: fewer than 3 transitions to estimate from") end
  local f = core.frame(cols)
  f:panel { entity = entity, time = time }
  local rhs = { "lag_log" }
  for _, c in ipairs(controls) do rhs[#rhs + 1] = c end
  local formula = "growth ~ " .. table.concat(rhs, " + ")
  local fit
  if opts.spatial then
    if not opts.weights then raise("beta: spatial = '" .. tostring(opts.spatial) .. "' needs weights (an sp.weights)") end
    local effect = ({ none = "none", entity = "individual", time = "time", twoways = "twoways" })[fe]
    fit = require("spillover.spatial_models").spatial(f, formula,
      { model = opts.spatial, weights = opts.weights, effect = effect })
  else
    local fes = ({ none = "", entity = " | " .. entity, time = " | " .. time, twoways = " | " .. entity .. " + " .. time })[fe]
    fit = require("spillover.linear").ols(f, formula .. fes, { vcov = opts.vcov or { cluster = entity } })
  end
  local b, se = fit:coef().lag_log, fit:se().lag_log
  local speed = (b > -1 and b < 0) and -math.log(1 + b) / step or 0 / 0
  return { fit = fit, b = b, se = se, speed = speed, half_life = math.log(2) / speed, nobs = fit.nobs, fe = fe }
end

-- ---- Phillips & Sul -------------------------------------------------------------------

--- R's round(): halves to even.
local function round_even(x)
  local f = math.floor(x)
  local r = x - f
  if r > 0.5 or (r == 0.5 and f % 2 == 1) then return f + 1 end
  return f
end

--- The long-run variance of regression residuals u with the quadratic
--- spectral kernel and Andrews' (1991) AR(1) plug-in bandwidth, written as
--- ConvergenceClubs' andrs2 (the FQSB method) computes it: autocovariances
--- to lag T - 2 over the first T - 1 residuals, each divided by T - 1.
local function andrews_lrv(u)
  local T = #u
  local num, den = 0, 0
  for i = 1, T - 1 do num, den = num + u[i] * u[i + 1], den + u[i] * u[i] end
  local r = num / den
  local a2 = 4 * r * r / (1 - r) ^ 4
  local band = 1.3221 * (a2 * T) ^ (1 / 5)
  local tt = T - 1
  local lam = 0
  for j = 1, tt - 1 do
    local z = j / band
    local w = 1.2 * math.pi * z
    local k = ((math.sin(w) / w - math.cos(w)) / ((z * math.pi) ^ 2 * 12)) * 25
    local s = 0
    for i = 1, tt - j do s = s + u[i] * u[i + j] end
    lam = lam + 2 * s * k / tt
  end
  local ss = 0
  for i = 1, T do ss = ss + u[i] * u[i] end
  return ss / tt + lam
end

--- Phillips & Sul's (2007) log t test of convergence of an n x T array of
--- (filtered, log) values: h_it = x_it / mean_i x_it, H_t = mean_i (h_it - 1)^2,
--- and the regression log(H_1 / H_t) - 2 log(log t) = a + b log t over
--- t = round(trim T) + 1, ..., T (trim = 1/3, R's rounding), with the
--- quadratic spectral HAC variance of ConvergenceClubs' FQSB method.
--- Convergence is rejected at 5% when t < -1.65.  Returns {b =, se =, t =,
--- pvalue = P(Z < t), converge = t > -1.65, H =}.
function M.log_t(values, opts)
  opts = util.check_options(opts, { "trim" }, "log_t")
  local rows = type(values) == "userdata" and util.rows(values) or values
  if type(rows) ~= "table" or #rows < 2 then raise("log_t: expected an n x T array of values with n >= 2") end
  local n, T = #rows, #rows[1]
  local trim = opts.trim or 1 / 3
  if not (trim > 0 and trim < 1) then raise("log_t: trim must be in (0, 1), got " .. tostring(trim)) end
  local H = {}
  for t = 1, T do
    local m = 0
    for i = 1, n do
      local v = rows[i][t]
      if type(v) ~= "number" or v ~= v then raise(string.format("log_t: value [%d, %d] is missing", i, t)) end
      m = m + v
    end
    m = m / n
    local s = 0
    for i = 1, n do s = s + (rows[i][t] / m - 1) ^ 2 end
    H[t] = s / n
  end
  local t0 = round_even(T * trim) + 1
  if t0 < 2 then t0 = 2 end
  if T - t0 + 1 < 3 then raise("log_t: too few periods after trimming (" .. (T - t0 + 1) .. "); need at least 3") end
  local xs, ys = {}, {}
  for t = t0, T do
    xs[#xs + 1] = math.log(t)
    ys[#ys + 1] = math.log(H[1] / H[t]) - 2 * math.log(math.log(t))
  end
  local m = #xs
  local mx, my = 0, 0
  for i = 1, m do mx, my = mx + xs[i], my + ys[i] end
  mx, my = mx / m, my / m
  local sxx, sxy = 0, 0
  for i = 1, m do sxx, sxy = sxx + (xs[i] - mx) ^ 2, sxy + (xs[i] - mx) * (ys[i] - my) end
  local b = sxy / sxx
  local a = my - b * mx
  local u = {}
  for i = 1, m do u[i] = ys[i] - a - b * xs[i] end
  local lrv = andrews_lrv(u)
  -- diag((X'X)^-1)[2] = 1 / sxx for X = [1, log t].
  local se = math.sqrt(lrv / sxx)
  local tstat = b / se
  return { b = b, a = a, se = se, t = tstat, pvalue = core.dist.pnorm(tstat), converge = tstat > -1.65, H = H,
    first = t0 }
end

--- The log t statistic of the units idx (indices into rows).
local function t_of(rows, idx, trim)
  local sub = {}
  for k, i in ipairs(idx) do sub[k] = rows[i] end
  return M.log_t(sub, { trim = trim }).t
end

local function append(a, b)
  local out = {}
  for _, v in ipairs(a) do out[#out + 1] = v end
  for _, v in ipairs(b) do out[#out + 1] = v end
  return out
end

local function merge(rows, found, trim)
  if #found < 2 then return found end
  local merged, cur = {}, found[1]
  for i = 2, #found do
    local union = append(cur, found[i])
    if t_of(rows, union, trim) > -1.65 then cur = union
    else
      merged[#merged + 1] = cur
      cur = found[i]
    end
  end
  merged[#merged + 1] = cur
  return merged
end

--- Phillips & Sul's (2007, 2009) club clustering of an n x T array of
--- (filtered, log) values, with their club merging:
---   1. order the units by their value in period ref (default the last), decreasing;
---   2. if the remaining units converge together (t > -1.65) they are a club;
---      else the core group: from the first adjacent pair that converges, add
---      units in order while t > -1.65 and keep the group with the largest t
---      (Phillips & Sul's argmax; none converges: the rest diverge);
---   3. the club: the core and every other remaining unit whose addition to the
---      core gives t > cstar (default 0);
---   4. repeat on the units left; a single unit left diverges;
---   5. merge (merge ~= false): adjacent clubs whose union converges, in order
---      (Phillips & Sul 2009).
--- Returns {clubs = {{units = {row indices}, t =, b =}, ...}, divergent = {...},
--- initial = the clubs before merging}.
function M.clubs(values, opts)
  opts = util.check_options(opts, { "trim", "cstar", "ref", "merge" }, "clubs")
  local rows = type(values) == "userdata" and util.rows(values) or values
  if type(rows) ~= "table" or #rows < 2 then raise("clubs: expected an n x T array of values with n >= 2") end
  local trim, cstar = opts.trim or 1 / 3, opts.cstar or 0
  local T = #rows[1]
  local ref = opts.ref or T
  if math.type(ref) ~= "integer" or ref < 1 or ref > T then raise("clubs: ref must be a period 1.." .. T) end
  local order = {}
  for i = 1, #rows do order[i] = i end
  table.sort(order, function(a, b)
    if rows[a][ref] ~= rows[b][ref] then return rows[a][ref] > rows[b][ref] end
    return a < b
  end)
  local found, divergent = {}, {}
  local rest = order
  while #rest > 0 do
    if #rest == 1 then divergent[#divergent + 1] = rest[1]; break end
    if t_of(rows, rest, trim) > -1.65 then found[#found + 1] = rest; break end
    local start
    for i = 1, #rest - 1 do
      if t_of(rows, { rest[i], rest[i + 1] }, trim) > -1.65 then start = i; break end
    end
    if not start then
      for _, u in ipairs(rest) do divergent[#divergent + 1] = u end
      break
    end
    local group = { rest[start], rest[start + 1] }
    local best, best_t = { rest[start], rest[start + 1] }, t_of(rows, group, trim)
    for k = start + 2, #rest do
      group[#group + 1] = rest[k]
      local tk = t_of(rows, group, trim)
      if tk <= -1.65 then break end
      if tk > best_t then
        best, best_t = {}, tk
        for j, u in ipairs(group) do best[j] = u end
      end
    end
    local in_core = {}
    for _, u in ipairs(best) do in_core[u] = true end
    local club = {}
    for _, u in ipairs(best) do club[#club + 1] = u end
    for _, u in ipairs(rest) do
      if not in_core[u] and t_of(rows, append(best, { u }), trim) > cstar then club[#club + 1] = u end
    end
    local taken = {}
    for _, u in ipairs(club) do taken[u] = true end
    local left = {}
    for _, u in ipairs(rest) do if not taken[u] then left[#left + 1] = u end end
    -- Keep the clubs' units in the order of the ranking.
    table.sort(club, function(a, b)
      local pa, pb
      for i, u in ipairs(rest) do if u == a then pa = i end; if u == b then pb = i end end
      return pa < pb
    end)
    found[#found + 1] = club
    rest = left
  end
  local function described(list)
    local out = {}
    for i, units in ipairs(list) do
      local sub = {}
      for k, u in ipairs(units) do sub[k] = rows[u] end
      local r = #units >= 2 and M.log_t(sub, { trim = trim }) or { t = 0 / 0, b = 0 / 0 }
      out[i] = { units = units, t = r.t, b = r.b }
    end
    return out
  end
  local merged = opts.merge == false and found or merge(rows, found, trim)
  return { clubs = described(merged), initial = described(found), divergent = divergent }
end

--- Phillips & Sul's (2009) merging of clubs (arrays of row indices, in the
--- order found): add the next club while the union converges (t > -1.65),
--- else close the merged club and start again from the next one.
function M.merge_clubs(values, clubs, opts)
  opts = util.check_options(opts, { "trim" }, "merge_clubs")
  local rows = type(values) == "userdata" and util.rows(values) or values
  return merge(rows, clubs, opts.trim or 1 / 3)
end

return M
