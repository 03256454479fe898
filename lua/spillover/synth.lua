-- spillover.synth: the synthetic control method (Abadie, Diamond & Hainmueller 2010).
--
--   synth(d, {outcome = "cigsale", unit = "state", time = "year", treated = "California", period = 1989,
--             predictors = {"lnincome", "retprice", "age15to24"}, window = {1980, 1988},
--             special = { {"beer", 1984, 1988}, {"cigsale", 1975}, ... },
--             pre = {1970, 1988}, donors = {...}, placebo = true, starts = "all", v = {...}})
--
-- Predictors (X) are unit means over `window` (default: the pre-period) of
-- each `predictors` variable, and of each `special` variable over its own
-- periods, missing values skipped, as Synth's dataprep does.  Each predictor
-- is divided by its standard deviation across the treated unit and the
-- donors (Synth's normalisation).  For a diagonal V the unit weights W
-- minimise (X1 - X0 W)' V (X1 - X0 W) on the simplex: this is the point of
-- minimum norm in the convex hull of the points V^(1/2) (x0_j - x1), which
-- Wolfe's (1976) active-set algorithm finds exactly (core.qp_simplex,
-- engine/src/qp.c; no interior-point tolerance as in Synth's ipop).  V
-- (normalised to sum 1) minimises the outcome's mean squared prediction
-- error over `pre`: Nelder-Mead over
-- log V from several deterministic starts (equal weights, Synth's
-- regression start, and with starts = "all" each predictor in turn weighted
-- up), each restarted until it no longer improves.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local fitmod = require "spillover.fit"

local M = {}

local function fail(msg) raise("synth: " .. msg) end

-- ---- Nelder-Mead (deterministic; Lagarias et al. 1998 coefficients) --------------------

local function nelder_mead(f, x0, step, maxeval, ftol)
  local n = #x0
  local pts, vals = {}, {}
  local evals = 0
  local function eval(x) evals = evals + 1; return f(x) end
  pts[1] = { table.unpack(x0) }
  vals[1] = eval(pts[1])
  for i = 1, n do
    local p = { table.unpack(x0) }
    p[i] = p[i] + step
    pts[i + 1], vals[i + 1] = p, eval(p)
  end
  local function order()
    local idx = {}
    for i = 1, n + 1 do idx[i] = i end
    table.sort(idx, function(a, b) if vals[a] ~= vals[b] then return vals[a] < vals[b] end return a < b end)
    local p2, v2 = {}, {}
    for i, j in ipairs(idx) do p2[i], v2[i] = pts[j], vals[j] end
    pts, vals = p2, v2
  end
  while evals < maxeval do
    order()
    if vals[n + 1] - vals[1] <= ftol * (math.abs(vals[1]) + 1e-300) then
      local size = 0
      for i = 2, n + 1 do for k = 1, n do size = math.max(size, math.abs(pts[i][k] - pts[1][k])) end end
      if size < 1e-6 then break end
    end
    local c = {}
    for k = 1, n do
      local s = 0
      for i = 1, n do s = s + pts[i][k] end
      c[k] = s / n
    end
    local function along(t)
      local p = {}
      for k = 1, n do p[k] = c[k] + t * (pts[n + 1][k] - c[k]) end
      return p
    end
    local xr = along(-1)
    local fr = eval(xr)
    if fr < vals[1] then
      local xe = along(-2)
      local fe = eval(xe)
      if fe < fr then pts[n + 1], vals[n + 1] = xe, fe else pts[n + 1], vals[n + 1] = xr, fr end
    elseif fr < vals[n] then
      pts[n + 1], vals[n + 1] = xr, fr
    else
      local xc, fc
      if fr < vals[n + 1] then xc = along(-0.5) else xc = along(0.5) end
      fc = eval(xc)
      if fc < math.min(fr, vals[n + 1]) then
        pts[n + 1], vals[n + 1] = xc, fc
      else
        for i = 2, n + 1 do
          for k = 1, n do pts[i][k] = pts[1][k] + 0.5 * (pts[i][k] - pts[1][k]) end
          vals[i] = eval(pts[i])
        end
      end
    end
  end
  order()
  return pts[1], vals[1], evals
end

-- ---- data preparation (Synth's dataprep) ---------------------------------------------------

local OPTIONS = { "outcome", "unit", "time", "treated", "period", "predictors", "window", "special", "pre",
  "donors", "placebo", "starts", "maxeval", "v" }

-- A column as an array over rows, numbers or strings.
local function column(d, name, what)
  if type(name) ~= "string" then fail(string.format("%s must be a column name, got %s", what, type(name))) end
  local ok, col = pcall(function() return d[name] end)
  if not ok or col == nil then fail(string.format("no column '%s' (%s)", name, what)) end
  if type(col) == "userdata" then return col:tovector(), true end
  return col, false
end

local function range_of(spec, what)
  if type(spec) ~= "table" or type(spec[1]) ~= "number" or (spec[2] ~= nil and type(spec[2]) ~= "number") then
    fail(string.format("%s must be {from, to} (periods), got %s", what, type(spec) == "table" and "a malformed table" or type(spec)))
  end
  local from, to = spec[1], spec[2] or spec[1]
  if to < from then fail(string.format("%s = {%s, %s} ends before it starts", what, tostring(from), tostring(to))) end
  return from, to
end

--- The panel as cells: units (in order of first appearance), periods
--- (sorted), value(var, unit, time) with NaN for missing.
local function panel(d, o)
  local ucol = column(d, o.unit, "unit")
  local tcol, tnum = column(d, o.time, "time")
  if not tnum then fail(string.format("time column '%s' is categorical; expected numbers", o.time)) end
  local units, uindex, periods, seen_t = {}, {}, {}, {}
  local cell = {}
  for r = 1, d:nrow() do
    local u, t = ucol[r], tcol[r]
    if u ~= nil and t == t then
      local key = util.key_of(u)
      if not uindex[key] then units[#units + 1] = u; uindex[key] = #units; cell[#units] = {} end
      if not seen_t[t] then seen_t[t] = true; periods[#periods + 1] = t end
      local ui = uindex[key]
      if cell[ui][t] then fail(string.format("unit %s has two rows for %s = %s", tostring(u), o.time, tostring(t))) end
      cell[ui][t] = r
    end
  end
  table.sort(periods)
  local cache = {}
  local function values(var)
    if not cache[var] then
      local v, num = column(d, var, "variable")
      if not num then fail(string.format("column '%s' is categorical; expected numbers", var)) end
      cache[var] = v
    end
    return cache[var]
  end
  local function value(var, ui, t)
    local r = cell[ui][t]
    if not r then return 0 / 0 end
    return values(var)[r]
  end
  return { units = units, uindex = uindex, periods = periods, value = value }
end

-- Mean of var for unit ui over periods in [from, to], missing values
-- skipped; nil when every value is missing.
local function unit_mean(Pn, var, ui, from, to)
  local s, n = 0, 0
  for _, t in ipairs(Pn.periods) do
    if t >= from and t <= to then
      local v = Pn.value(var, ui, t)
      if v == v then s, n = s + v, n + 1 end
    end
  end
  if n == 0 then return nil end
  return s / n
end

--- The predictor specifications {name=, var=, from=, to=} of the options.
local function predictor_specs(o, wfrom, wto)
  local specs = {}
  if o.predictors ~= nil and type(o.predictors) ~= "table" then fail("predictors must be an array of column names") end
  for _, v in ipairs(o.predictors or {}) do
    if type(v) ~= "string" then fail("predictors must be column names; got a " .. type(v)) end
    specs[#specs + 1] = { name = v, var = v, from = wfrom, to = wto }
  end
  if o.special ~= nil and type(o.special) ~= "table" then fail("special must be an array of {variable, from [, to]}") end
  for i, s in ipairs(o.special or {}) do
    local var, from, to
    if type(s) == "table" then var, from, to = s[1] or s.var, s[2] or s.from, s[3] or s.to end
    if type(var) ~= "string" or type(from) ~= "number" or (to ~= nil and type(to) ~= "number") then
      fail(string.format("special[%d] must be {variable, from [, to]} such as {\"beer\", 1984, 1988}", i))
    end
    to = to or from
    local name = from == to and string.format("%s(%s)", var, util.key_of(from))
      or string.format("%s(%s-%s)", var, util.key_of(from), util.key_of(to))
    specs[#specs + 1] = { name = name, var = var, from = from, to = to }
  end
  if #specs == 0 then fail("no predictors: give predictors = {...} and/or special = {...}") end
  return specs
end

-- ---- one synthetic control -----------------------------------------------------------

--- Solve for treated unit `tu` with donors `dn` (unit positions): returns
--- {w, v, loss_v, loss_w}.  X: predictors by unit (normalised), Z: pre-period
--- outcomes by unit.
local function solve(X, Z, tu, dn, K, opts)
  local x1, z1 = X[tu], Z[tu]
  local diffs = {}
  for j, u in ipairs(dn) do
    local dj = {}
    for k = 1, K do dj[k] = X[u][k] - x1[k] end
    diffs[j] = dj
  end
  local D = core.matrix(diffs)
  -- The W step in C (engine/src/qp.c, Wolfe's algorithm), always from a
  -- cold start: W must be a function of V alone, whatever the optimiser
  -- evaluated before (near a V that ignores most predictors the problem is
  -- ill-conditioned and a warm start lands elsewhere).
  local function weights_for(v) return core.qp_simplex(D, v) end
  local T0 = #z1
  local function mspe(w)
    local s = 0
    for t = 1, T0 do
      local syn = 0
      for j, u in ipairs(dn) do if w[j] ~= 0 then syn = syn + w[j] * Z[u][t] end end
      s = s + (z1[t] - syn) ^ 2
    end
    return s / T0
  end
  local function v_of(theta)
    local m = -math.huge
    for k = 1, K do m = math.max(m, theta[k]) end
    local v, s = {}, 0
    for k = 1, K do v[k] = math.exp(theta[k] - m); s = s + v[k] end
    for k = 1, K do v[k] = v[k] / s end
    return v
  end
  local function loss(theta) return mspe((weights_for(v_of(theta)))) end
  if K == 1 or opts.v then
    local v = opts.v or { 1 }
    local w, lw = weights_for(v)
    return { w = w, v = v, loss_v = mspe(w), loss_w = lw, evals = 1 }
  end
  -- Starts (log V): equal weights; Synth's regression start, diag(B B') of
  -- the regression of the pre-period outcomes on the predictors across units
  -- (normalised), when it is defined; with starts = "all", each predictor
  -- weighted 10 times the others.
  local starts = { {} }
  for k = 1, K do starts[1][k] = 0 end
  local units = { tu }
  for _, u in ipairs(dn) do units[#units + 1] = u end
  if #units > K + 1 then
    local A, B = {}, {}
    for i, u in ipairs(units) do
      A[i] = { 1 }
      for k = 1, K do A[i][k + 1] = X[u][k] end
      B[i] = {}
      for t = 1, T0 do B[i][t] = Z[u][t] end
    end
    local ok, beta = pcall(function()
      local Am = core.matrix(A)
      return Am:crossprod():solve(Am:crossprod(core.matrix(B)))
    end)
    if ok then
      local th, good = {}, true
      for k = 1, K do
        local s = 0
        for t = 1, T0 do s = s + beta:get(k + 1, t) ^ 2 end
        if not (s > 0 and s < math.huge) then good = false end
        th[k] = math.log(s)
      end
      if good then starts[#starts + 1] = th end
    end
  end
  if opts.starts == "all" then
    for k = 1, K do
      local th = {}
      for l = 1, K do th[l] = l == k and math.log(10) or 0 end
      starts[#starts + 1] = th
    end
  end
  local best, bestf, evals = nil, math.huge, 0
  for _, th in ipairs(starts) do
    local x, fx = th, loss(th)
    -- restart from the best point until a restart gains nothing
    for _ = 1, 20 do
      local x2, f2, e = nelder_mead(loss, x, 1, opts.maxeval, 1e-10)
      evals = evals + e
      local gained = fx - f2
      x, fx = x2, math.min(fx, f2)
      if not (gained > 1e-10 * (math.abs(fx) + 1e-300)) then break end
    end
    if fx < bestf then best, bestf = x, fx end
  end
  local v = v_of(best)
  local w, lw = weights_for(v)
  return { w = w, v = v, loss_v = mspe(w), loss_w = lw, evals = evals }
end

-- The outcome path of unit u and its synthetic control over all periods.
local function paths(Pn, outcome, u, dn, w)
  local rows = {}
  for i, t in ipairs(Pn.periods) do
    local y = Pn.value(outcome, u, t)
    local syn = 0
    for j, v in ipairs(dn) do if w[j] ~= 0 then syn = syn + w[j] * Pn.value(outcome, v, t) end end
    rows[i] = { time = t, treated = y, synthetic = syn, gap = y - syn }
  end
  return rows
end

-- Mean squared gap before and from the treatment period.
local function mspes(path, period)
  local s0, n0, s1, n1 = 0, 0, 0, 0
  for _, r in ipairs(path) do
    if r.gap == r.gap then
      if r.time < period then s0, n0 = s0 + r.gap ^ 2, n0 + 1 else s1, n1 = s1 + r.gap ^ 2, n1 + 1 end
    end
  end
  return s0 / n0, n1 > 0 and s1 / n1 or 0 / 0
end

-- ---- the estimator ------------------------------------------------------------------------

--- synth(d, opts): see the header.  Returns a fit whose one coefficient is
--- the mean post-treatment gap (no standard error: inference is the placebo
--- rank), with weights, V, predictors, path, rmspe and placebos.
function M.synth(d, opts)
  local o = util.check_options(opts, OPTIONS, "synth")
  for _, k in ipairs({ "outcome", "unit", "time", "period" }) do
    if o[k] == nil then fail(string.format("option '%s' is required", k)) end
  end
  if o.treated == nil then fail("option 'treated' (the treated unit) is required") end
  if type(o.period) ~= "number" then fail("period must be the first treated period (a number), got a " .. type(o.period)) end
  if o.starts ~= nil and o.starts ~= "all" and o.starts ~= "default" then
    fail("starts must be \"default\" or \"all\", got " .. tostring(o.starts))
  end
  local Pn = panel(d, o)
  local tu = Pn.uindex[util.key_of(o.treated)]
  if not tu then
    fail(string.format("treated unit %s is not in column '%s'", tostring(o.treated), o.unit))
  end
  local first = Pn.periods[1]
  if not first or first >= o.period then
    fail(string.format("no pre-treatment period: the data start at %s = %s, the treatment at %s", o.time,
      tostring(first and util.key_of(first)), util.key_of(o.period)))
  end
  local pfrom, pto = first, o.period - 1
  if o.pre ~= nil then pfrom, pto = range_of(o.pre, "pre") end
  if pto >= o.period then fail(string.format("pre = {%s, %s} reaches the treatment period %s", util.key_of(pfrom), util.key_of(pto), util.key_of(o.period))) end
  local wfrom, wto = pfrom, pto
  if o.window ~= nil then wfrom, wto = range_of(o.window, "window") end
  local pre_periods = {}
  for _, t in ipairs(Pn.periods) do if t >= pfrom and t <= pto then pre_periods[#pre_periods + 1] = t end end
  if #pre_periods == 0 then fail(string.format("no periods in pre = {%s, %s}", util.key_of(pfrom), util.key_of(pto))) end
  -- Donors: every other unit, or the list given.
  local dn = {}
  if o.donors ~= nil then
    if type(o.donors) ~= "table" then fail("donors must be an array of units") end
    for _, u in ipairs(o.donors) do
      local ui = Pn.uindex[util.key_of(u)]
      if not ui then fail(string.format("donor %s is not in column '%s'", tostring(u), o.unit)) end
      if ui == tu then fail(string.format("donor %s is the treated unit", tostring(u))) end
      dn[#dn + 1] = ui
    end
  else
    for ui = 1, #Pn.units do if ui ~= tu then dn[#dn + 1] = ui end end
  end
  if #dn < 2 then fail(string.format("%d donor unit(s); a synthetic control needs at least 2", #dn)) end
  -- Predictors by unit, then normalised by their SD over the treated and the donors.
  local specs = predictor_specs(o, wfrom, wto)
  local K = #specs
  local all = { tu }
  for _, u in ipairs(dn) do all[#all + 1] = u end
  local raw = {}
  for _, u in ipairs(all) do
    raw[u] = {}
    for k, s in ipairs(specs) do
      local m = unit_mean(Pn, s.var, u, s.from, s.to)
      if not m then
        fail(string.format("predictor %s is missing for unit %s in every period from %s to %s", s.name,
          tostring(Pn.units[u]), util.key_of(s.from), util.key_of(s.to)))
      end
      raw[u][k] = m
    end
  end
  local sd = {}
  for k = 1, K do
    local m = 0
    for _, u in ipairs(all) do m = m + raw[u][k] end
    m = m / #all
    local ss = 0
    for _, u in ipairs(all) do ss = ss + (raw[u][k] - m) ^ 2 end
    sd[k] = math.sqrt(ss / (#all - 1))
    if not (sd[k] > 0) then fail(string.format("predictor %s is the same for every unit; it cannot be weighted", specs[k].name)) end
  end
  local X, Z = {}, {}
  for _, u in ipairs(all) do
    X[u] = {}
    for k = 1, K do X[u][k] = raw[u][k] / sd[k] end
    Z[u] = {}
    for t, p in ipairs(pre_periods) do
      local y = Pn.value(o.outcome, u, p)
      if y ~= y then
        fail(string.format("outcome %s is missing for unit %s in %s (a pre-treatment period)", o.outcome,
          tostring(Pn.units[u]), util.key_of(p)))
      end
      Z[u][t] = y
    end
  end
  -- A given V (Synth's custom.v, Stata's customV): normalised, no search.
  local vfixed
  if o.v ~= nil then
    if type(o.v) ~= "table" or #o.v ~= K then
      fail(string.format("v must be an array of %d predictor weights (one per predictor, in the order predictors then special)", K))
    end
    local tot = 0
    for k = 1, K do
      if type(o.v[k]) ~= "number" or not (o.v[k] >= 0) or o.v[k] == math.huge then
        fail(string.format("v[%d] must be a finite number >= 0, got %s", k, tostring(o.v[k])))
      end
      tot = tot + o.v[k]
    end
    if not (tot > 0) then fail("v must have a positive entry") end
    vfixed = {}
    for k = 1, K do vfixed[k] = o.v[k] / tot end
  end
  local sopts = { starts = o.starts, maxeval = o.maxeval or 4000, v = vfixed }
  local sol = solve(X, Z, tu, dn, K, sopts)
  local path = paths(Pn, o.outcome, tu, dn, sol.w)
  local pre_mspe, post_mspe = mspes(path, o.period)
  local weights, W = {}, {}
  for j, u in ipairs(dn) do
    weights[j] = { unit = Pn.units[u], weight = sol.w[j] }
    W[util.key_of(Pn.units[u])] = sol.w[j]
  end
  local V, predictors = {}, {}
  for k, s in ipairs(specs) do
    V[k] = { predictor = s.name, weight = sol.v[k] }
    local syn, mean = 0, 0
    for j, u in ipairs(dn) do syn = syn + sol.w[j] * raw[u][k]; mean = mean + raw[u][k] end
    predictors[k] = { predictor = s.name, treated = raw[tu][k], synthetic = syn, donor_mean = mean / #dn }
  end
  local post_gap, npost = 0, 0
  for _, r in ipairs(path) do if r.time >= o.period and r.gap == r.gap then post_gap, npost = post_gap + r.gap, npost + 1 end end
  post_gap = npost > 0 and post_gap / npost or 0 / 0
  local result = {
    weights = weights, W = W, V = V, predictors = predictors, path = path,
    loss_v = sol.loss_v, loss_w = sol.loss_w, pre_mspe = pre_mspe, post_mspe = post_mspe,
    rmspe_pre = math.sqrt(pre_mspe), rmspe_post = math.sqrt(post_mspe), ratio = post_mspe / pre_mspe,
    rmspe_ratio = math.sqrt(post_mspe / pre_mspe),
    treated = o.treated, period = o.period, outcome = o.outcome, evals = sol.evals,
  }
  -- Placebos in space: each donor in turn treated, the other donors its pool.
  if o.placebo then
    local list = { { unit = o.treated, pre_mspe = pre_mspe, post_mspe = post_mspe, ratio = result.ratio,
      rmspe_ratio = result.rmspe_ratio, path = path, treated = true } }
    for j, u in ipairs(dn) do
      local pool = {}
      for i, v in ipairs(dn) do if i ~= j then pool[#pool + 1] = v end end
      local ps = solve(X, Z, u, pool, K, sopts)
      local pp = paths(Pn, o.outcome, u, pool, ps.w)
      local a, b = mspes(pp, o.period)
      list[#list + 1] = { unit = Pn.units[u], pre_mspe = a, post_mspe = b, ratio = b / a, rmspe_ratio = math.sqrt(b / a),
        path = pp, treated = false }
    end
    local order = {}
    for i = 1, #list do order[i] = i end
    table.sort(order, function(a, b)
      if list[a].ratio ~= list[b].ratio then return list[a].ratio > list[b].ratio end
      return a < b
    end)
    for rank, i in ipairs(order) do list[i].rank = rank; list[i].pvalue = rank / #list end
    result.placebos = list
    result.rank, result.pvalue = list[1].rank, list[1].pvalue
  end
  local fit = fitmod.new {
    names = { "post_gap" }, b = { post_gap }, V = { { 0 / 0 } }, nobs = #all,
    estimator = "synth", label = "Synthetic control",
    vcov_label = "none (inference by placebos in space)",
    notes = { string.format("treated %s from %s = %s; %d donors, %d predictors; pre-period RMSPE %.4g%s",
      tostring(o.treated), o.time, util.key_of(o.period), #dn, K, result.rmspe_pre,
      result.pvalue and string.format("; placebo rank %d of %d (p = %.4f)", result.rank, #result.placebos, result.pvalue) or "") },
    synth = result, plot = M.plot,
  }
  return fit
end

-- ---- plots --------------------------------------------------------------------------------

--- fit:plot(path, {type = "path" | "gap" | "placebo", ...plot options}):
--- the treated and synthetic outcome paths, the gap, or the gap with every
--- placebo's gap behind it; a dashed vertical line at the treatment period.
function M.plot(fit, path, opts)
  local plot = require "spillover.plot"
  local s = fit.synth
  opts = opts or {}
  local kind = opts.type or "path"
  local spec = {}
  for k, v in pairs(opts) do if k ~= "type" then spec[k] = v end end
  local x, yt, ys, gap = {}, {}, {}, {}
  for i, r in ipairs(s.path) do x[i], yt[i], ys[i], gap[i] = r.time, r.treated, r.synthetic, r.gap end
  spec.x = x
  spec.vlines = { s.period - 0.5 }
  spec.xlabel = spec.xlabel or "time"
  if kind == "path" then
    spec.ylabel = spec.ylabel or s.outcome
    spec.series = { { label = tostring(s.treated), y = yt, color = plot.palette[1] },
      { label = "synthetic " .. tostring(s.treated), y = ys, color = plot.palette[2], dash = { 4, 2 } } }
  elseif kind == "gap" then
    spec.ylabel = spec.ylabel or ("gap in " .. s.outcome)
    spec.zero_line = true
    spec.series = { { label = tostring(s.treated), y = gap, color = plot.palette[1] } }
    spec.legend = spec.legend or false
  elseif kind == "placebo" then
    if not s.placebos then raise("synth plot: type = \"placebo\" needs a fit estimated with placebo = true") end
    spec.ylabel = spec.ylabel or ("gap in " .. s.outcome)
    spec.zero_line = true
    local series = {}
    for _, p in ipairs(s.placebos) do
      if not p.treated then
        local g = {}
        for i, r in ipairs(p.path) do g[i] = r.gap end
        series[#series + 1] = { y = g, color = "#BBBBBB" }
      end
    end
    -- no legend (39 entries would not fit): the treated unit in colour, placebos grey
    series[#series + 1] = { y = gap, color = plot.palette[1] }
    spec.series = series
  else
    raise("synth plot: type must be \"path\", \"gap\" or \"placebo\", got " .. tostring(kind))
  end
  return plot.lines(path, spec)
end

return M
