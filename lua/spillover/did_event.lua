-- spillover.did_event: the regression-based DID estimators of issue 11 and
-- the diagnostics around them (docs/estimators/did_event.md):
--   twfe(d, formula, opts)        static TWFE DID, or dynamic (opts.dynamic)
--   event_study(d, formula, opts) dynamic TWFE with a window, endpoint bins,
--                                 a joint pre-trend Wald test, uniform bands
--   sa(d, formula, opts)          Sun & Abraham (2021) interaction-weighted
--   imputation(d, formula, opts)  Borusyak, Jaravel & Spiess (2024), with
--                                 Gardner's two-stage (did2s) standard errors
--   bacon(d, formula, opts)       Goodman-Bacon (2021) decomposition
-- Every function returns an sp.fit.  The panel and its cohorts come from
-- spillover.did_common, so all DID estimators agree on who is treated when.
local core = require "spillover.core"
local util = require "spillover.util"
local F = require "spillover.formula"
local C = require "spillover.did_common"
local fitmod = require "spillover.fit"
local ols = require "spillover.ols"
local plot = require "spillover.plot"
local raise = util.raise
local matrix = core.matrix
local fmt = C.format_value

local M = {}

-- The columns the estimators add to (a copy of) the data, and the prefix of
-- the event-time coefficients ("event::-2", as i(event) names them).
local EVENT, TREAT, CELL = "event", "D", "sa_cell"
local function ename(e) return EVENT .. "::" .. fmt(e) end

-- ---- shared pieces -------------------------------------------------------------------

local function no_treated(P, who)
  raise(who .. ": no treated unit: cohort column '" .. P.cohort .. "' is 0 or missing everywhere")
end

local function check_level(level, who)
  level = level or 0.95
  if type(level) ~= "number" or not (level > 0 and level < 1) then
    raise(who .. ": option 'level' must be a number in (0, 1), got " .. tostring(level))
  end
  return level
end

--- The formula with `terms` added and the panel's entity and time as fixed
--- effects (did_common has checked that the | part names nothing else).
local function with_panel_fe(formula, P, terms)
  local f = F.parse(formula):without_fe():with_terms(terms)
  return f:with_fe({ F.quote(P.entity), F.quote(P.time) })
end

--- A copy of the frame rows `rows` (all when nil) with the columns `cols`
--- ({name = values}) added.  A formula variable with one of those names would
--- be overwritten, so it is refused.
local function work_frame(d, formula, rows, cols, who)
  local used = {}
  for _, v in ipairs(F.parse(formula):vars()) do used[v] = true end
  for name in pairs(cols) do
    if used[name] then
      raise(string.format("%s: the formula uses a variable '%s', the name of the column this estimator adds; " ..
        "rename it", who, name))
    end
  end
  local dd = rows and d:take(rows) or d:copy()
  for name, v in pairs(cols) do dd[name] = v end
  return dd
end

--- The default covariance: clustered by the panel entity, with fixest's
--- small-sample rules (compat = "fixest"), as feols(..., cluster = ~id).
--- opts.cluster (a column name, as sp.did's other methods take it) is short
--- for vcov = {cluster = name}.
local function ols_options(opts, P, who)
  if opts.cluster ~= nil and opts.vcov ~= nil then
    raise(who .. ": give either 'cluster' or 'vcov', not both")
  end
  local vcov = opts.vcov or { cluster = opts.cluster or P.entity }
  return { vcov = vcov, compat = opts.compat or "fixest", weights = opts.weights }
end

--- Sup-t critical value for the coefficients idx of V: the level quantile of
--- max_j |Z_j| / sd_j over draws Z ~ N(0, V) (Montiel Olea & Plagborg-Moller
--- 2019; as did's uniform bands, but drawn from V rather than bootstrapped).
--- The eigen square root takes a semidefinite V.  Same seed, same value.
local function sup_t(V, idx, level, seed)
  local k = #idx
  if k == 0 then return nil end
  local sd, keep = {}, {}
  for _, i in ipairs(idx) do
    local s = math.sqrt(V[i][i])
    if s > 0 and s < math.huge then keep[#keep + 1] = i; sd[#keep] = s end
  end
  k = #keep
  if k == 0 then return nil end
  local R = {}
  for a = 1, k do
    R[a] = {}
    for b = 1, k do R[a][b] = V[keep[a]][keep[b]] / (sd[a] * sd[b]) end
  end
  local vals, vecs = matrix(R):eigen()
  local root = matrix(k, k)
  for a = 1, k do
    for b = 1, k do root:set(a, b, vecs:get(a, b) * math.sqrt(math.max(vals:get(b, 1), 0))) end
  end
  local draws = 4000
  local Z = root * core.rng(seed or 1):normals(k, draws)
  local maxes = {}
  for j = 1, draws do
    local m = 0
    for a = 1, k do
      local v = math.abs(Z:get(a, j))
      if v > m then m = v end
    end
    maxes[j] = m
  end
  table.sort(maxes)
  return util.quantile(maxes, level)
end

--- The joint Wald test that the coefficients idx are 0: F(q, df) when the
--- fit has t inference, chi2(q) otherwise (ols.joint_test's forms).
local function joint_zero(fit, idx)
  if #idx == 0 then return nil end
  local t = ols.joint_test(fit.b, fit.V, idx, fit.df_resid, not fit:uses_t())
  if t then t.coefficients = #idx end
  return t
end

--- Event-time rows {e=, att=, se=, lo=, hi=, ulo=, uhi=} of the coefficients
--- named ename(e), the reference period (att 0, no interval) included; the
--- uniform critical value; and the pre-trend test on the leads e < -k.
local function event_rows(fit, events, ref, level, seed, lead_below)
  local ci = fit:confint(level)
  local idx, leads = {}, {}
  for _, e in ipairs(events) do
    local i = fit.index[ename(e)]
    if i then
      idx[#idx + 1] = i
      if e < lead_below then leads[#leads + 1] = i end
    end
  end
  local crit = sup_t(fit.V, idx, level, seed)
  local rows = {}
  for _, e in ipairs(events) do
    local i = fit.index[ename(e)]
    if i then
      local b, se = fit.b[i], math.sqrt(fit.V[i][i])
      local c = ci[ename(e)]
      rows[#rows + 1] = { e = e, att = b, se = se, lo = c[1], hi = c[2],
        ulo = crit and b - crit * se or nil, uhi = crit and b + crit * se or nil }
    elseif e == ref then
      rows[#rows + 1] = { e = e, att = 0, se = 0, lo = 0, hi = 0, ulo = 0, uhi = 0, ref = true }
    end
  end
  return rows, crit, joint_zero(fit, leads)
end

--- The overall {att, se, lo, hi} of coefficient `name`.
local function overall_of(fit, name, level)
  local i = fit.index[name]
  if not i then return nil end
  local c = fit:confint(level)[name]
  return { att = fit.b[i], se = math.sqrt(fit.V[i][i]), lo = c[1], hi = c[2] }
end

--- fit:plot(path [, opts]): the event-time coefficients with pointwise
--- intervals and the uniform band, the reference period marked (the one
--- event-study figure of every DID method: did_common.plot_events).
local function plot_events(self, path, opts)
  return C.plot_events(self.event_study, path, opts, self.level)
end

--- The event-time effects {[e] = effect} for e >= 0 from the coefficients
--- (the estimates, or a draw: coef = fit:draw(rng)): the effect path of a
--- roll-out experiment (spillover.rollout).  A binned end point stands for
--- its own event time only.
local function dynamic_effects(self, coef)
  local out = {}
  for _, r in ipairs(self.event_study) do
    local i = self.index[ename(r.e)]
    if r.e >= 0 and i then out[r.e] = coef and coef[ename(r.e)] or self.b[i] end
  end
  return out
end

--- fit:aggregate(type, {min_e=, max_e=}) for the dynamic fits: "dynamic"
--- gives the event-time rows in [min_e, max_e], "simple" the overall effect.
local function aggregate(self, kind, o)
  o = util.check_options(o, { "min_e", "max_e", "balance_e" }, "aggregate")
  if o.balance_e ~= nil then
    raise("aggregate: balance_e needs per-cohort effects by event time; " .. tostring(self.method) ..
      " does not keep them (use method = \"cs\")")
  end
  if kind == "simple" then
    if not self.overall then raise("aggregate: this fit has no overall effect (fit it with dynamic = false)") end
    return { type = "simple", overall = self.overall, rows = {} }
  end
  if kind ~= "dynamic" then
    raise("aggregate: " .. tostring(self.method) .. " gives \"simple\" and \"dynamic\" aggregations, not '" ..
      tostring(kind) .. "'")
  end
  if not self.event_study then raise("aggregate: this fit has no event-time effects (fit it with dynamic = true)") end
  local rows = {}
  for _, r in ipairs(self.event_study) do
    if (o.min_e == nil or r.e >= o.min_e) and (o.max_e == nil or r.e <= o.max_e) then rows[#rows + 1] = r end
  end
  return { type = "dynamic", overall = self.overall, rows = rows, crit = self.crit }
end

--- Attach the dynamic results and methods to a fit.
local function dynamic_fit(fit, rows, crit, pretrend, level, cohort)
  fit.event_study, fit.crit, fit.pretrend, fit.level = rows, crit, pretrend, level
  fit.plot = plot_events
  fit.aggregate = aggregate
  fit.dynamic_effects, fit.cohort = dynamic_effects, cohort
  return fit
end

-- ---- TWFE: static and dynamic (event study) -----------------------------------------

local TWFE_OPTIONS = { "cohort", "anticipation", "dynamic", "weights", "vcov", "cluster", "compat", "level", "seed",
  "window", "bin", "ref", "method" }

--- The dynamic TWFE regression shared by twfe{dynamic = true} and
--- event_study: relative-period dummies i(event, ref = ref) over the window,
--- never-treated units in the reference period (all dummies 0).
local function dynamic_twfe(d, formula, opts, who)
  local P = C.prepare(d, formula, opts, who)
  local level = check_level(opts.level, who)
  local ref = opts.ref == nil and -1 or opts.ref
  if math.type(ref) ~= "integer" then
    raise(who .. ": option 'ref' must be an integer event time, got " .. tostring(ref))
  end
  local emin, emax
  for _, u in ipairs(P.units) do
    if u.cohort ~= 0 then
      for p in pairs(u.rows) do
        local e = C.event_time(P, u, p)
        emin, emax = math.min(emin or e, e), math.max(emax or e, e)
      end
    end
  end
  if emin == nil then no_treated(P, who) end
  local notes = {}
  for _, n in ipairs(P.notes) do notes[#notes + 1] = n end
  local lo, hi = emin, emax
  local bin = opts.bin ~= false
  if opts.window ~= nil then
    local w = opts.window
    if type(w) ~= "table" or math.type(w[1]) ~= "integer" or math.type(w[2]) ~= "integer" or w[1] >= w[2] then
      raise(who .. ": option 'window' must be {first, last}, two integer event times with first < last")
    end
    lo, hi = w[1], w[2]
    if lo < emin or hi > emax then
      notes[#notes + 1] = string.format("the window [%d, %d] reaches beyond the event times in the data " ..
        "[%s, %s]; it is cut to [%s, %s]", lo, hi, fmt(emin), fmt(emax), fmt(math.max(lo, emin)),
        fmt(math.min(hi, emax)))
      lo, hi = math.max(lo, emin), math.min(hi, emax)
    end
  end
  if ref < lo or ref > hi then
    raise(string.format("%s: the reference period ref = %d is outside the window [%s, %s]", who, ref, fmt(lo), fmt(hi)))
  end
  -- Event time per row; rows beyond the window are binned or dropped.
  local ev, keep, below, above = {}, {}, 0, 0
  local n = d:nrow()
  for r = 1, n do
    local u = P.units[P.unit_of_row[r]]
    local e = C.event_time(P, u, P.period_of_row[r])
    if e == nil then ev[r] = ref
    elseif e < lo then below = below + 1; ev[r] = lo
    elseif e > hi then above = above + 1; ev[r] = hi
    else ev[r] = e end
    if bin or e == nil or (e >= lo and e <= hi) then keep[#keep + 1] = r end
  end
  local rows = nil
  if below + above > 0 then
    if bin then
      notes[#notes + 1] = string.format("endpoint bins: %d rows before event time %s pooled into %s, " ..
        "%d rows after %s pooled into %s", below, fmt(lo), fmt(lo), above, fmt(hi), fmt(hi))
    else
      notes[#notes + 1] = string.format("%d rows of treated units outside the window [%s, %s] dropped (bin = false)",
        below + above, fmt(lo), fmt(hi))
      rows = keep
      local sub = {}
      for i, r in ipairs(keep) do sub[i] = ev[r] end
      ev = sub
    end
  end
  local dd = work_frame(d, formula, rows, { [EVENT] = ev }, who)
  local f = with_panel_fe(formula, P, { string.format("i(%s, ref = %d)", EVENT, ref) })
  local ok, fit = pcall(ols.ols, dd, f:format(), ols_options(opts, P, who))
  if not ok then raise(who .. ": " .. util.message(fit)) end
  for _, note in ipairs(notes) do fit.notes[#fit.notes + 1] = note end
  local events = {}
  for e = lo, hi do events[#events + 1] = e end
  local erows, crit, pretrend = event_rows(fit, events, ref, level, opts.seed, -(P.anticipation or 0))
  for _, r in ipairs(erows) do
    if bin and r.e == lo and below > 0 then r.binned = "<=" end
    if bin and r.e == hi and above > 0 then r.binned = ">=" end
  end
  fit.method, fit.window, fit.ref = "twfe", { lo, hi }, ref
  return dynamic_fit(fit, erows, crit, pretrend, level, opts.cohort), P
end

--- sp.event_study(d, formula, {cohort =, window = {-5, 5}, bin = true, ref = -1, ...})
function M.event_study(d, formula, opts)
  opts = util.check_options(opts, { "cohort", "window", "bin", "ref", "weights", "vcov", "cluster", "compat", "level",
    "seed" }, "event_study")
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if o.window == nil then o.window = { -5, 5 } end
  local fit = dynamic_twfe(d, formula, o, "event_study")
  fit.label = "Event study (dynamic TWFE)"
  return fit
end

--- twfe(d, formula, {cohort =, dynamic = false, ...}): static TWFE with
--- D = 1{t >= g - anticipation}, or dynamic TWFE over every event time.
function M.twfe(d, formula, opts)
  opts = util.check_options(opts, TWFE_OPTIONS, "twfe")
  if opts.dynamic then
    local fit = dynamic_twfe(d, formula, opts, "twfe")
    fit.label = "Dynamic TWFE"
    return fit
  end
  for _, k in ipairs({ "window", "bin", "ref" }) do
    if opts[k] ~= nil then raise("twfe: option '" .. k .. "' applies to dynamic = true") end
  end
  local P = C.prepare(d, formula, opts, "twfe")
  local level = check_level(opts.level, "twfe")
  local D = {}
  for r = 1, d:nrow() do
    local u = P.units[P.unit_of_row[r]]
    local e = C.event_time(P, u, P.period_of_row[r])
    D[r] = (e ~= nil and e >= -P.anticipation) and 1 or 0
  end
  local dd = work_frame(d, formula, nil, { [TREAT] = D }, "twfe")
  local ok, fit = pcall(ols.ols, dd, with_panel_fe(formula, P, { TREAT }):format(), ols_options(opts, P, "twfe"))
  if not ok then raise("twfe: " .. util.message(fit)) end
  for _, note in ipairs(P.notes) do fit.notes[#fit.notes + 1] = note end
  fit.method, fit.label = "twfe", "Static TWFE DID"
  fit.overall = overall_of(fit, TREAT, level)
  if not fit.overall then
    raise("twfe: the treatment dummy is collinear with the fixed effects (no variation in timing)")
  end
  return fit
end

-- ---- Sun & Abraham (2021) -------------------------------------------------------------

--- sa(d, formula, {cohort =, control = "never" | "last", anticipation =, ...})
--- Cohort x relative-period dummies (reference -1 - anticipation) in a TWFE
--- regression with only the control cohort left out, aggregated to event
--- time with the cells' shares of observations as weights (fixest sunab,
--- eventstudyinteract), standard errors by the delta method.
function M.sa(d, formula, opts)
  opts = util.check_options(opts, { "cohort", "control", "anticipation", "weights", "vcov", "cluster", "compat",
    "level", "seed", "method" }, "sa")
  local P = C.prepare(d, formula, opts, "sa")
  local level = check_level(opts.level, "sa")
  local control = opts.control or "never"
  local notes = {}
  for _, n in ipairs(P.notes) do notes[#notes + 1] = n end
  if #P.cohorts == 0 then no_treated(P, "sa") end
  local last
  if control == "never" then
    if P.n_never == 0 then
      raise(string.format("sa: control = \"never\" needs never-treated units, but cohort column '%s' has none " ..
        "(0 or missing); use control = \"last\" to compare with the last-treated cohort", P.cohort))
    end
  elseif control == "last" then
    last = P.cohorts[#P.cohorts]
    if #P.cohorts < 2 and P.n_never == 0 then raise("sa: control = \"last\" needs at least two treated cohorts") end
  else
    raise("sa: option 'control' must be \"never\" or \"last\", got " .. tostring(control))
  end
  local k = P.anticipation
  local ref = -1 - k
  local tmin = P.periods[1]
  local rows, cell, cells, levels = {}, {}, {}, {}
  local dropped_always = {}
  for r = 1, d:nrow() do
    local u = P.units[P.unit_of_row[r]]
    local g, t = u.cohort, P.periods[P.period_of_row[r]]
    local take = true
    local c = "ref"
    if g ~= 0 and g - k <= tmin then
      take = false
      dropped_always[g] = true
    elseif last and t >= last - k then
      take = false  -- every unit is treated from here on: no control left
    elseif g ~= 0 and g ~= last then
      local e = t - g
      if e ~= ref then
        c = string.format("g%se%s", fmt(g), fmt(e))
        if not levels[c] then levels[c] = { g = g, e = e, n = 0 }; cells[#cells + 1] = c end
        levels[c].n = levels[c].n + (P.Y[r] ~= nil and u.w or 0)
      end
    end
    if take then rows[#rows + 1] = r; cell[#rows] = c end
  end
  for g in pairs(dropped_always) do
    notes[#notes + 1] = "cohort " .. fmt(g) ..
      " is treated in every period (no pre-treatment period): left out, as fixest sunab does"
  end
  if #cells == 0 then raise("sa: no treated cohort left to estimate") end
  local dd = work_frame(d, formula, rows, { [CELL] = cell }, "sa")
  local f = with_panel_fe(formula, P, { string.format("i(%s, ref = \"ref\")", CELL) })
  local ok, reg = pcall(ols.ols, dd, f:format(), ols_options(opts, P, "sa"))
  if not ok then raise("sa: " .. util.message(reg)) end

  -- Aggregation: one row of weights per event time, and the ATT over e >= 0
  -- (the anticipation periods have their own event-time effects).
  local by_e, es = {}, {}
  local att_w = {}
  for _, c in ipairs(cells) do
    local cl = levels[c]
    local i = reg.index[CELL .. "::" .. c]
    if i then
      if not by_e[cl.e] then by_e[cl.e] = {}; es[#es + 1] = cl.e end
      table.insert(by_e[cl.e], { i = i, n = cl.n })
      if cl.e >= 0 then att_w[#att_w + 1] = { i = i, n = cl.n } end
    else
      notes[#notes + 1] = string.format("cohort %s at event time %s dropped (collinear)", fmt(cl.g), fmt(cl.e))
    end
  end
  table.sort(es)
  local W, names = {}, { "ATT" }
  local function weights_row(list)
    local tot, row = 0, {}
    for _, c in ipairs(list) do tot = tot + c.n end
    for _, c in ipairs(list) do row[c.i] = c.n / tot end
    return row
  end
  W[1] = weights_row(att_w)
  for _, e in ipairs(es) do names[#names + 1] = ename(e); W[#W + 1] = weights_row(by_e[e]) end
  local b, V = {}, {}
  for a, wa in ipairs(W) do
    local s = 0
    for i, w in pairs(wa) do s = s + w * reg.b[i] end
    b[a] = s
    V[a] = {}
    for c, wc in ipairs(W) do
      local v = 0
      for i, w1 in pairs(wa) do
        for j, w2 in pairs(wc) do v = v + w1 * w2 * reg.V[i][j] end
      end
      V[a][c] = v
    end
  end
  local att_gt = {}
  for _, c in ipairs(cells) do
    local cl = levels[c]
    local i = reg.index[CELL .. "::" .. c]
    if i then
      att_gt[#att_gt + 1] = { group = cl.g, time = cl.g + cl.e, e = cl.e, att = reg.b[i], se = math.sqrt(reg.V[i][i]) }
    end
  end
  local fit = fitmod.new {
    names = names, b = b, V = V, nobs = reg.nobs, df_resid = reg.df_resid, stats = { n_clusters = reg.stats.n_clusters,
      n_cohorts = #P.cohorts }, estimator = "sa", label = "Sun & Abraham (2021)", formula = formula,
    vcov_label = reg.vcov_label, notes = notes, private = { regression = reg },
  }
  fit.method, fit.control, fit.att_gt = "sa", control, att_gt
  fit.overall = overall_of(fit, "ATT", level)
  local events = { ref }
  for _, e in ipairs(es) do events[#events + 1] = e end
  table.sort(events)
  local erows, crit, pretrend = event_rows(fit, events, ref, level, opts.seed, -k)
  return dynamic_fit(fit, erows, crit, pretrend, level, opts.cohort)
end

-- ---- Imputation (Borusyak, Jaravel & Spiess 2024) and the two-stage SEs -----------------

--- The normal equations of the untreated-outcome model y = a_i + b_t + x'beta
--- on the untreated rows, with the unit effects eliminated (Schur complement):
--- solving for any right-hand side costs a q x q solve (q = periods - 1 +
--- covariates), never a dense matrix with a column per unit.
--- rows0: untreated rows; w: weight of a row.  Returns the system, or raises
--- when the untreated rows do not identify the covariates' coefficients.
local function untreated_system(P, rows0, w, grp)
  local kx = #P.x
  local pcount = {}
  for _, r in ipairs(rows0) do
    local p = P.period_of_row[r]
    pcount[p] = (pcount[p] or 0) + w(r)
  end
  local zcol, q, base = {}, 0, nil
  for p = 1, #P.periods do
    if pcount[p] then
      if base == nil then base = p else q = q + 1; zcol[p] = q end
    end
  end
  local qp = q
  q = q + kx
  -- z of a row: the period dummy (none for the base period) and x.
  local function z_of(r)
    return zcol[P.period_of_row[r]], P.X[r]
  end
  local G = {}
  for a = 1, q do G[a] = {}; for b = 1, q do G[a][b] = 0 end end
  local nu, Bu = {}, {}
  for _, r in ipairs(rows0) do
    local wr, i = w(r), grp(r)
    local pc, x = z_of(r)
    nu[i] = (nu[i] or 0) + wr
    local B = Bu[i]
    if not B then B = {}; Bu[i] = B end
    if pc then
      G[pc][pc] = G[pc][pc] + wr
      B[pc] = (B[pc] or 0) + wr
    end
    for a = 1, kx do
      local xa = x[a] * wr
      B[qp + a] = (B[qp + a] or 0) + xa
      if pc then G[pc][qp + a] = G[pc][qp + a] + xa; G[qp + a][pc] = G[qp + a][pc] + xa end
      for b = 1, kx do G[qp + a][qp + b] = G[qp + a][qp + b] + xa * x[b] end
    end
  end
  for i, B in pairs(Bu) do
    local n = nu[i]
    for a, va in pairs(B) do
      local row = G[a]
      for b, vb in pairs(B) do row[b] = row[b] - va * vb / n end
    end
  end
  local Minv
  if q > 0 then
    local ok, inv = pcall(function() return matrix(G):inv() end)
    if not ok then
      raise("imputation: the untreated rows do not identify the model of Y(0) (period effects and covariates " ..
        "are collinear there)")
    end
    Minv = util.rows(inv)
  end
  return { zcol = zcol, q = q, qp = qp, base = base, nu = nu, Bu = Bu, Minv = Minv, z_of = z_of, grp = grp }
end

--- Solve the system for right-hand sides c = {unit = {[i] = v}, z = {q values}}
--- and return coef(r): the fitted value a_i + b_t + x'beta at row r.
local function solve_system(S, c)
  local rhs = {}
  for a = 1, S.q do rhs[a] = c.z[a] end
  for i, B in pairs(S.Bu) do
    local ci = c.unit[i]
    if ci and ci ~= 0 then
      local f = ci / S.nu[i]
      for a, v in pairs(B) do rhs[a] = rhs[a] - v * f end
    end
  end
  local phi = {}
  for a = 1, S.q do
    local s = 0
    local row = S.Minv[a]
    for b = 1, S.q do s = s + row[b] * rhs[b] end
    phi[a] = s
  end
  local alpha = {}
  for i, B in pairs(S.Bu) do
    local s = c.unit[i] or 0
    for a, v in pairs(B) do s = s - v * phi[a] end
    alpha[i] = s / S.nu[i]
  end
  return function(r)
    local pc, x = S.z_of(r)
    local v = alpha[S.grp(r)] + (pc and phi[pc] or 0)
    for a = 1, #x do v = v + x[a] * phi[S.qp + a] end
    return v
  end
end

--- The right-hand side X1' W v over `rows` (v: value per row).
local function cross_rhs(S, rows, w, v)
  local c = { unit = {}, z = {} }
  for a = 1, S.q do c.z[a] = 0 end
  for _, r in ipairs(rows) do
    local val = v(r)
    if val ~= 0 then
      local wv = w(r) * val
      local i = S.grp(r)
      c.unit[i] = (c.unit[i] or 0) + wv
      local pc, x = S.z_of(r)
      if pc then c.z[pc] = c.z[pc] + wv end
      for a = 1, #x do c.z[S.qp + a] = c.z[S.qp + a] + x[a] * wv end
    end
  end
  return c
end

--- The group of a row: the value of column `name`, or the unit when nil.
local function column_key(d, name, unit_of_row, what)
  if name == nil then return function(r) return unit_of_row[r] end end
  if type(name) ~= "string" then raise("imputation: option '" .. what .. "' must name a column") end
  local ok, col = pcall(function() return d:column(name) end)
  if not ok then raise("imputation: option '" .. what .. "': " .. util.message(col)) end
  if type(col) == "userdata" then col = col:totable() end
  -- Integer codes computed once: the hot loops call this per row and column.
  local codes, out, n = {}, {}, 0
  for r = 1, d:nrow() do
    local v = col[r]
    if v == nil or v ~= v then
      raise(string.format("imputation: option '%s': column '%s' is missing in row %d", what, name, r))
    end
    local key = util.key_of(v)
    local c = codes[key]
    if not c then n = n + 1; c = n; codes[key] = c end
    out[r] = c
  end
  return function(r) return out[r] end
end

--- imputation(d, formula, {cohort =, anticipation =, weights =, cluster =, window =, ...})
--- Y(0) = a_i + b_t + x'beta fitted on the untreated rows (never treated, and
--- t < g - anticipation), imputed for the treated; tau_it = Y - Y0hat is
--- averaged overall ("ATT") and by event time (leads are the mean first-stage
--- residuals of treated units before treatment, did2s's pre-trend check;
--- with anticipation k, the periods g - k .. g - 1 are left out of the first
--- stage and have their own event-time effects, outside the ATT).
--- The point estimates are those of Gardner's two-stage regression; the
--- covariance is did2s's: the GMM correction for the estimated first stage,
--- clustered by unit (or opts.cluster), without a small-sample factor.
function M.imputation(d, formula, opts)
  opts = util.check_options(opts, { "cohort", "anticipation", "weights", "cluster", "fe", "window", "level", "seed",
    "method" }, "imputation")
  local P = C.prepare(d, formula, opts, "imputation")
  local level = check_level(opts.level, "imputation")
  local k = P.anticipation
  local notes = {}
  for _, n in ipairs(P.notes) do notes[#notes + 1] = n end
  local function w(r) return P.units[P.unit_of_row[r]].w end
  local cl_of = column_key(d, opts.cluster, P.unit_of_row, "cluster")
  local window = opts.window
  if window ~= nil and (type(window) ~= "table" or math.type(window[1]) ~= "integer" or
      math.type(window[2]) ~= "integer" or window[1] > window[2]) then
    raise("imputation: option 'window' must be {first, last}, two integer event times with first <= last")
  end

  -- Untreated rows, and the treated rows whose Y(0) the untreated identify.
  local rows0, rows1, ev = {}, {}, {}
  for _, u in ipairs(P.units) do
    for p, r in pairs(u.rows) do
      local e = C.event_time(P, u, p)
      ev[r] = e
      if e == nil or e < -k then rows0[#rows0 + 1] = r else rows1[#rows1 + 1] = r end
    end
  end
  table.sort(rows0)
  table.sort(rows1)
  if #rows1 == 0 then no_treated(P, "imputation") end
  local S = untreated_system(P, rows0, w, column_key(d, opts.fe, P.unit_of_row, "fe"))
  local imputable, lost = {}, 0
  for _, r in ipairs(rows1) do
    local p = P.period_of_row[r]
    if S.nu[S.grp(r)] and (S.zcol[p] or S.base == p) then imputable[#imputable + 1] = r else lost = lost + 1 end
  end
  if lost > 0 then
    notes[#notes + 1] = string.format("%d treated observations dropped: their unit has no untreated period or no " ..
      "unit is untreated in their period, so Y(0) is not identified", lost)
  end
  if #imputable == 0 then raise("imputation: no treated observation has an identified Y(0)") end
  local Y = P.Y
  local stage1 = solve_system(S, cross_rhs(S, rows0, w, function(r) return Y[r] end))
  local ytil = {}
  for _, r in ipairs(rows0) do ytil[r] = Y[r] - stage1(r) end
  for _, r in ipairs(imputable) do ytil[r] = Y[r] - stage1(r) end
  local sample = {}
  for _, r in ipairs(rows0) do sample[#sample + 1] = r end
  for _, r in ipairs(imputable) do sample[#sample + 1] = r end

  -- Second-stage columns: the ATT (treated rows with e >= 0), then one per
  -- event time; colrows[j] are the rows where column j is 1.
  local names, colrows, col_of_e = { "ATT" }, { {} }, {}
  local es = {}
  for _, r in ipairs(sample) do
    local e = ev[r]
    if e ~= nil and not col_of_e[e] and (window == nil or (e >= window[1] and e <= window[2])) then
      col_of_e[e] = true; es[#es + 1] = e
    end
  end
  table.sort(es)
  for j, e in ipairs(es) do
    names[j + 1], colrows[j + 1], col_of_e[e] = ename(e), {}, j + 1
  end
  for _, r in ipairs(sample) do
    local e = ev[r]
    if e ~= nil then
      if e >= 0 then table.insert(colrows[1], r) end
      local j = col_of_e[e]
      if j then table.insert(colrows[j], r) end
    end
  end
  local K = #names
  local b, Sw = {}, {}
  for j = 1, K do
    local s, sw = 0, 0
    for _, r in ipairs(colrows[j]) do s = s + w(r) * ytil[r]; sw = sw + w(r) end
    b[j], Sw[j] = s / sw, sw
  end
  -- Influence of each cluster: its second-stage scores minus the first-stage
  -- correction X2'X1 (X10'X10)^-1 x1_i e1_i over its untreated rows.
  -- The cluster of each sample row is looked up once (its key is text).
  local psi, order, vec = {}, {}, {}
  for _, r in ipairs(sample) do
    local key = cl_of(r)
    local v = psi[key]
    if not v then
      v = {}
      for j = 1, K do v[j] = 0 end
      psi[key] = v
      order[#order + 1] = key
    end
    vec[r] = v
  end
  local wy0 = {}
  for _, r in ipairs(rows0) do wy0[r] = w(r) * ytil[r] end
  for j = 1, K do
    for _, r in ipairs(colrows[j]) do
      local v = vec[r]
      v[j] = v[j] + w(r) * (ytil[r] - b[j])
    end
    local gamma = solve_system(S, cross_rhs(S, colrows[j], w, function() return 1 end))
    for _, r in ipairs(rows0) do
      local v = vec[r]
      v[j] = v[j] - gamma(r) * wy0[r]
    end
  end
  local V = {}
  for a = 1, K do
    V[a] = {}
    for c = 1, K do
      local s = 0
      for _, key in ipairs(order) do s = s + psi[key][a] * psi[key][c] end
      V[a][c] = s / (Sw[a] * Sw[c])
    end
  end
  local fit = fitmod.new {
    names = names, b = b, V = V, nobs = #sample, dist = "normal",
    stats = { n_clusters = #order, n_treated = #imputable, n_untreated = #rows0 },
    estimator = "imputation", label = "Imputation (Borusyak, Jaravel & Spiess 2024)", formula = formula,
    vcov_label = "two-stage GMM, clustered by " .. (opts.cluster or P.entity), notes = notes,
  }
  fit.method = "imputation"
  fit.overall = overall_of(fit, "ATT", level)
  fit.tau = {}
  for _, r in ipairs(imputable) do fit.tau[#fit.tau + 1] = { row = r, e = ev[r], tau = ytil[r] } end
  local erows, crit, pretrend = event_rows(fit, es, nil, level, opts.seed, -k)
  return dynamic_fit(fit, erows, crit, pretrend, level, opts.cohort)
end

-- ---- Goodman-Bacon (2021) decomposition -------------------------------------------------

--- The scatter of the 2x2 estimates against their weights, one marker shape
--- and colour per comparison type.  Each point is its own segment (a NaN
--- after it breaks the line), so plot.paths draws markers only.
local function plot_bacon(self, path, opts)
  local series, by = {}, {}
  for _, c in ipairs(self.two_by_twos) do
    local s = by[c.type]
    if not s then
      s = { label = c.type, x = {}, y = {} }
      by[c.type] = s
      series[#series + 1] = s
    end
    s.x[#s.x + 1], s.y[#s.y + 1] = c.weight, c.estimate
    s.x[#s.x + 1], s.y[#s.y + 1] = c.weight, 0 / 0
  end
  local spec = { series = series, markers = true, zero_line = true, xlabel = "Weight", ylabel = "2x2 DID estimate" }
  for k, v in pairs(opts or {}) do spec[k] = v end
  return plot.paths(path, spec)
end

--- bacon(d, "y ~ 1 | entity + time", {cohort =}): the static TWFE coefficient
--- as the weighted sum of every 2x2 DID between timing groups and the
--- never-treated (Goodman-Bacon 2021, Theorem 1).  A balanced panel without
--- covariates, as the theorem needs; always-treated units are a timing group
--- treated throughout.
function M.bacon(d, formula, opts)
  opts = util.check_options(opts, { "cohort" }, "bacon")
  local P = C.prepare(d, formula, opts, "bacon")
  if #P.x > 0 then
    raise("bacon: the decomposition is of the TWFE coefficient without covariates; remove " ..
      table.concat(P.x, ", ") .. " from the formula")
  end
  if not P.balanced then
    raise("bacon: the decomposition needs a balanced panel (every unit observed in every period)")
  end
  local T = #P.periods
  -- Groups: never treated (key 0) and each cohort; shares n_k, treated share Dbar_k.
  local groups, order = {}, {}
  local function group(g)
    if not groups[g] then
      local p0 = 1
      if g ~= 0 then while P.periods[p0] < g do p0 = p0 + 1 end end
      groups[g] = { g = g, n = 0, start = g ~= 0 and p0 or T + 1, sum = {} }
      for p = 1, T do groups[g].sum[p] = 0 end
      order[#order + 1] = g
    end
    return groups[g]
  end
  local N = #P.units
  for _, u in ipairs(P.units) do
    local G = group(u.cohort)
    G.n = G.n + 1
    for p = 1, T do G.sum[p] = G.sum[p] + P.Y[u.rows[p]] end
  end
  local function mean(G, p1, p2)  -- mean outcome of group G over periods p1..p2
    local s = 0
    for p = p1, p2 do s = s + G.sum[p] end
    return s / (G.n * (p2 - p1 + 1))
  end
  for _, g in ipairs(order) do
    local G = groups[g]
    G.share = G.n / N
    G.dbar = (T - G.start + 1) / T
  end
  local timing = {}
  for _, g in ipairs(order) do if g ~= 0 and groups[g].start <= T then timing[#timing + 1] = groups[g] end end
  table.sort(timing, function(a, b) return a.start < b.start end)
  if #timing == 0 then no_treated(P, "bacon") end

  local list = {}
  local function add(kind, treated, control, est, s)
    list[#list + 1] = { type = kind, treated = treated.g, control = control.g, estimate = est, weight = s }
  end
  local U = groups[0]
  for _, G in ipairs(timing) do
    if U and G.start > 1 then
      local est = (mean(G, G.start, T) - mean(G, 1, G.start - 1)) - (mean(U, G.start, T) - mean(U, 1, G.start - 1))
      local nk = G.share / (G.share + U.share)
      add("Treated vs Untreated", G, U, est, (G.share + U.share) ^ 2 * nk * (1 - nk) * G.dbar * (1 - G.dbar))
    end
  end
  for a = 1, #timing do
    for b = a + 1, #timing do
      local E, L = timing[a], timing[b]  -- E treated earlier than L
      if E.start < L.start then
        local nkl = E.share / (E.share + L.share)
        local scale = nkl * (1 - nkl)
        if E.start > 1 then
          -- Earlier vs later: the later group (untreated until L.start) as control.
          local est = (mean(E, E.start, L.start - 1) - mean(E, 1, E.start - 1)) -
              (mean(L, E.start, L.start - 1) - mean(L, 1, E.start - 1))
          local s = ((E.share + L.share) * (1 - L.dbar)) ^ 2 * scale *
              ((E.dbar - L.dbar) / (1 - L.dbar)) * ((1 - E.dbar) / (1 - L.dbar))
          add("Earlier vs Later Treated", E, L, est, s)
        end
        -- Later vs earlier: the earlier group, already treated, as control.
        local est = (mean(L, L.start, T) - mean(L, E.start, L.start - 1)) -
            (mean(E, L.start, T) - mean(E, E.start, L.start - 1))
        local s = ((E.share + L.share) * E.dbar) ^ 2 * scale * (L.dbar / E.dbar) * ((E.dbar - L.dbar) / E.dbar)
        add(E.start == 1 and "Later vs Always Treated" or "Later vs Earlier Treated", L, E, est, s)
      end
    end
  end
  local total = 0
  for _, c in ipairs(list) do total = total + c.weight end
  local by_type, types = {}, {}
  local beta = 0
  for _, c in ipairs(list) do
    c.weight = c.weight / total
    beta = beta + c.weight * c.estimate
    local t = by_type[c.type]
    if not t then t = { type = c.type, weight = 0, sum = 0 }; by_type[c.type] = t; types[#types + 1] = t end
    t.weight = t.weight + c.weight
    t.sum = t.sum + c.weight * c.estimate
  end
  table.sort(types, function(a, b) return a.type < b.type end)
  for _, t in ipairs(types) do t.avg_est = t.sum / t.weight; t.sum = nil end
  local tw = M.twfe(d, formula, { cohort = opts.cohort })
  local i = tw.index[TREAT]
  local fit = fitmod.new {
    names = { TREAT }, b = { beta }, V = { { tw.V[i][i] } }, nobs = tw.nobs, df_resid = tw.df_resid,
    stats = { twfe = tw.b[i], n_comparisons = #list }, estimator = "bacon", label = "Goodman-Bacon decomposition",
    formula = formula, vcov_label = tw.vcov_label, notes = P.notes, private = { twfe = tw },
  }
  fit.method, fit.two_by_twos, fit.by_type = "bacon", list, types
  fit.plot = plot_bacon
  return fit
end

-- ---- registration (spillover.registry) -------------------------------------------------

local report = require "spillover.did_report"
require("spillover.registry").register {
  name = "event_study",
  fit = function(d, model, options) return report.scenario_fit(M.event_study, d, model.formula, options) end,
  model_keys = {},
  options = {
    cohort = { type = "string", required = true }, window = { type = "list", items = { type = "integer" }, len = 2 },
    bin = { type = "boolean" }, ref = { type = "integer" }, weights = { type = "string" }, cluster = { type = "string" },
    compat = { type = "string" }, level = { type = "number", min = 0, max = 1, open_range = true },
    seed = { type = "integer" }, placebo = report.placebo_schema, bacon = { type = "boolean" },
  },
  capabilities = { predict = false, predict_matrix = false, refit = false, draw = true, rollout = true, spatial = false },
}

return M
