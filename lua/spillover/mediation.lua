-- spillover.mediation: mediation analysis (Baron-Kenny paths with Sobel,
-- Aroian and Goodman tests; pairs or cluster bootstrap with percentile,
-- bias-corrected and BCa intervals) and the mediation result as a fit.
--
-- The regressions are the ones sp.ols runs (linear.fit_design), on the same
-- rows for every equation; the bootstrap refits only point estimates (one
-- design, one demeaning, a few least-squares solves per replication).
local core = require "spillover.core"
local fitmod = require "spillover.fit"
local linear = require "spillover.linear"
local formula_object = require "spillover.formula"
local util = require "spillover.util"
local raise = util.raise
local common = require "spillover.mechanism_common"
local dist = core.dist

local as_list, check_column, numeric_column = common.as_list, common.check_column, common.numeric_column
local controls_text, fe_text, formula_of = common.controls_text, common.fe_text, common.formula_of
local column_values, key_of, sorted_finite, mean_sd = common.column_values, common.key_of, common.sorted_finite,
  common.mean_sd
local ols_extra, demeaned_design, solve_named = common.ols_extra, common.demeaned_design, common.solve_named
local rows_by_key = common.rows_by_key
local fmt, fmtp, pad = common.fmt, common.fmtp, fitmod.pad
local quantile, panel_of = util.quantile, util.panel_of

local M = {}

-- ---- closed-form tests of an indirect effect ---------------------------------------

--- Sobel (1982), Aroian (1947) and Goodman (1960) tests of a*b = 0 from the
--- two path estimates and their standard errors.  The Goodman variance can be
--- negative (then se, z and p are NaN).
function M.indirect_tests(a, sa, b, sb)
  local base = b * b * sa * sa + a * a * sb * sb
  local extra = sa * sa * sb * sb
  local ab = a * b
  local function test(v)
    if not (v > 0) then return { se = 0 / 0, z = 0 / 0, pvalue = 0 / 0 } end
    local se = math.sqrt(v)
    local z = ab / se
    return { se = se, z = z, pvalue = 2 * dist.pnorm(math.abs(z), true) }
  end
  return { sobel = test(base), aroian = test(base + extra), goodman = test(base - extra) }
end

--- Bootstrap intervals of one statistic: percentile, bias-corrected (Efron
--- 1987) and, given the jackknife values, BCa.
function M.boot_ci(draws, est, level, jack)
  local s = sorted_finite(draws)
  local B = #s
  local alpha = 1 - level
  local out = { reps = B }
  if B == 0 then
    out.se = 0 / 0
    out.percentile = { 0 / 0, 0 / 0 }
    out.bc = { 0 / 0, 0 / 0 }
    return out
  end
  local _, sd = mean_sd(s)
  out.se = sd
  out.percentile = { quantile(s, alpha / 2), quantile(s, 1 - alpha / 2) }
  local below, equal = 0, 0
  for _, v in ipairs(s) do
    if v < est then below = below + 1 elseif v == est then equal = equal + 1 end
  end
  -- Clamp the share so z0 stays finite when every draw is on one side.
  local p0 = math.min(math.max((below + 0.5 * equal) / B, 0.5 / B), 1 - 0.5 / B)
  local z0 = dist.qnorm(p0)
  local zl, zu = dist.qnorm(alpha / 2), dist.qnorm(1 - alpha / 2)
  out.z0 = z0
  out.bc = { quantile(s, dist.pnorm(2 * z0 + zl)), quantile(s, dist.pnorm(2 * z0 + zu)) }
  if jack and #jack > 1 then
    local jm = 0
    for _, v in ipairs(jack) do jm = jm + v end
    jm = jm / #jack
    local num, den = 0, 0
    for _, v in ipairs(jack) do
      num = num + (jm - v) ^ 3
      den = den + (jm - v) ^ 2
    end
    local acc = den > 0 and num / (6 * den ^ 1.5) or 0
    out.acceleration = acc
    local function adj(z) return dist.pnorm(z0 + (z0 + z) / (1 - acc * (z0 + z))) end
    out.bca = { quantile(s, adj(zl)), quantile(s, adj(zu)) }
  end
  return out
end

--- duplicated units are distinct clusters and fixed-effect levels.
local function resample(d, unit, units, order, rng, pinfo)
  local rows, labels, elabels = {}, {}, nil
  local relabel_entity = pinfo and pinfo.entity ~= unit
  local evals = relabel_entity and column_values(d, pinfo.entity) or nil
  if relabel_entity then elabels = {} end
  for c = 1, #order do
    local k = order[rng:integer(#order)]
    for _, i in ipairs(units[k]) do
      rows[#rows + 1] = i
      labels[#labels + 1] = k .. "#" .. c
      if elabels then elabels[#elabels + 1] = tostring(key_of(evals[i])) .. "#" .. c end
    end
  end
  local bd = d:take(rows)
  bd[unit] = labels
  if elabels then bd[pinfo.entity] = elabels end
  if pinfo then bd:panel { entity = pinfo.entity, time = pinfo.time } end
  return bd
end

-- ---- mediation ---------------------------------------------------------------------------

local Mediation = {}
Mediation.__index = Mediation
Mediation.__name = "spillover.mediation"

local MED_OPTS = { x = true, m = true, y = true, controls = true, fe = true, vcov = true, compat = true,
  bootstrap = true, seed = true, level = true, cluster = true, bca = true }

--- sp.mediation(d, {x=, m=, y=, controls=, fe=, vcov=, compat=, bootstrap=, seed=, level=, cluster=, bca=})
function M.mediation(d, opts)
  local F = "mediation"
  if type(opts) ~= "table" then raise(F .. ": expected an options table {x=, m=, y=, ...} as argument 2") end
  util.check_options(opts, MED_OPTS, F)
  local x, y = opts.x, opts.y
  local ms = as_list(opts.m)
  if #ms == 0 then raise(F .. ": 'm' must name at least one mediator") end
  numeric_column(F, d, x, "x")
  numeric_column(F, d, y, "y")
  local seen = {}
  for j, m in ipairs(ms) do
    numeric_column(F, d, m, string.format("m[%d]", j))
    if m == y then raise(string.format("%s: mediator '%s' is the outcome y; a mediator must differ from x and y", F, m)) end
    if m == x then raise(string.format("%s: mediator '%s' is the treatment x; a mediator must differ from x and y", F, m)) end
    if seen[m] then raise(string.format("%s: mediator '%s' is listed twice", F, m)) end
    seen[m] = true
  end
  if x == y then raise(string.format("%s: x and y are the same column '%s'", F, x)) end
  local level = opts.level or 0.95
  if type(level) ~= "number" or not (level > 0 and level < 1) then
    raise(F .. ": level must be a number in (0, 1), got " .. tostring(level))
  end
  local reps = opts.bootstrap
  if reps ~= nil and (math.type(reps) ~= "integer" or reps < 1) then
    raise(F .. ": bootstrap must be a whole number of replications >= 1, got " .. tostring(reps))
  end
  if opts.cluster ~= nil then check_column(F, d, opts.cluster, "bootstrap cluster") end
  local controls = controls_text(F, opts.controls)
  local fe = fe_text(F, opts.fe)
  local fopts = { vcov = opts.vcov, compat = opts.compat }
  local vc = linear.parse_vcov(opts.vcov)

  -- Every equation uses the rows where all of x, y, the mediators, the
  -- controls, the fixed effects and the clusters are present, so that the
  -- decomposition c = c' + sum a_j b_j holds exactly.
  local every = { x, y }
  for _, m in ipairs(ms) do every[#every + 1] = m end
  local rhs_c = { formula_object.quote(x), controls }
  local f_total = formula_of(y, rhs_c, fe)
  local f_out_rhs = { formula_object.quote(x) }
  for _, m in ipairs(ms) do f_out_rhs[#f_out_rhs + 1] = formula_object.quote(m) end
  f_out_rhs[#f_out_rhs + 1] = controls
  local f_out = formula_of(y, f_out_rhs, fe)

  local total = ols_extra(d, f_total, fopts, every)
  local afits = {}
  for j, m in ipairs(ms) do afits[j] = ols_extra(d, formula_of(m, rhs_c, fe), fopts, every) end
  local outcome = ols_extra(d, f_out, fopts, every)
  local function coef_se(fit, name, what)
    local i = fit.index[name]
    if i == nil then
      raise(string.format("%s: '%s' was dropped from the %s equation (collinear with the controls or absorbed by the fixed effects)",
        F, name, what))
    end
    return fit.b[i], math.sqrt(fit.V[i][i])
  end
  local c, c_se = coef_se(total, x, "total-effect")
  local cp, cp_se = coef_se(outcome, x, "outcome")
  local res = {
    x = x, y = y, m = ms, controls = controls, fe = fe, level = level, nobs = outcome.nobs,
    vcov_label = outcome.vcov_label,
    total = total, paths = afits, outcome = outcome,
    c = { estimate = c, se = c_se, pvalue = total:pvalue()[x] },
    direct = { estimate = cp, se = cp_se, pvalue = outcome:pvalue()[x] },
    effects = {},
  }
  local sum_ab = 0
  for j, m in ipairs(ms) do
    local a, sa = coef_se(afits[j], x, "'" .. m .. "'")
    local b, sb = coef_se(outcome, m, "outcome")
    local e = { mediator = m, a = a, se_a = sa, p_a = afits[j]:pvalue()[x], b = b, se_b = sb,
      p_b = outcome:pvalue()[m], indirect = a * b, proportion = a * b / c }
    local t = M.indirect_tests(a, sa, b, sb)
    e.sobel, e.aroian, e.goodman = t.sobel, t.aroian, t.goodman
    res.effects[j] = e
    sum_ab = sum_ab + a * b
  end
  res.total_indirect = { indirect = sum_ab, proportion = sum_ab / c }
  res.fits = { total }
  for j = 1, #ms do res.fits[#res.fits + 1] = afits[j] end
  res.fits[#res.fits + 1] = outcome

  if reps then
    local pinfo = panel_of(d)
    local unit = opts.cluster or (vc.type == "cluster" and vc.cluster[1]) or (pinfo and pinfo.entity)
    local seed = opts.seed or 42
    local rng = core.rng(seed)
    local units, order
    if unit then
      units, order = rows_by_key(d, unit)
    else
      units, order = {}, {}
      for i = 1, d:nrow() do units[i] = { i }; order[i] = i end
    end
    -- Restrict resampling to rows in the estimation sample (other rows would
    -- only be dropped again, and would make the units' sizes uneven).
    local used = {}
    for _, r in ipairs(outcome.design.rows) do used[r] = true end
    local keep_order = {}
    for _, k in ipairs(order) do
      local rr = {}
      for _, i in ipairs(units[k]) do if used[i] then rr[#rr + 1] = i end end
      if #rr > 0 then units[k] = rr; keep_order[#keep_order + 1] = k end
    end
    order = keep_order
    if unit and #order < 2 then
      raise(string.format("%s: the bootstrap cluster '%s' has %d level(s) in the sample; a cluster bootstrap needs at least 2",
        F, unit, #order))
    end
    -- The design of the outcome equation carries every column the other
    -- equations need; the a-paths use x and the controls.
    local ref = core.design(d, f_out, {})
    local idx_x = {}
    for _, nm in ipairs(ref.names) do
      local is_m = false
      for _, m in ipairs(ms) do if nm == m then is_m = true end end
      if not is_m then idx_x[#idx_x + 1] = nm end
    end
    local rhs_a = idx_x
    local function estimate(sample)
      local dd = demeaned_design(sample, f_out, {})
      local bo = solve_named(dd, dd.y, dd.names)
      local out = { c = 0 }
      local s = 0
      for j, m in ipairs(ms) do
        local ba = solve_named(dd, dd.X:col(dd.col[m]), rhs_a)
        out[j] = ba[x] * bo[m]
        s = s + out[j]
      end
      out.total = s
      out.c = bo[x] + s
      out.prop = s / out.c
      return out
    end
    local boot = { }
    for j = 1, #ms + 2 do boot[j] = {} end
    local failed = 0
    for r = 1, reps do
      local bd
      if unit then
        bd = resample(d, unit, units, order, rng, pinfo)
      else
        local rows = {}
        for i = 1, #order do rows[i] = order[rng:integer(#order)] end
        bd = d:take(rows)
      end
      local ok, est = pcall(estimate, bd)
      if not ok then
        failed = failed + 1
        est = { total = 0 / 0, prop = 0 / 0 }
        for j = 1, #ms do est[j] = 0 / 0 end
      end
      for j = 1, #ms do boot[j][r] = est[j] end
      boot[#ms + 1][r] = est.total
      boot[#ms + 2][r] = est.prop
    end
    -- Jackknife (leave one unit out) for the BCa acceleration, on request.
    local jack
    if opts.bca then
      jack = {}
      for j = 1, #ms + 2 do jack[j] = {} end
      for u = 1, #order do
        local rows = {}
        for v = 1, #order do
          if v ~= u then for _, i in ipairs(units[order[v]]) do rows[#rows + 1] = i end end
        end
        local ok, est = pcall(estimate, d:take(rows))
        if ok then
          for j = 1, #ms do jack[j][#jack[j] + 1] = est[j] end
          jack[#ms + 1][#jack[#ms + 1] + 1] = est.total
          jack[#ms + 2][#jack[#ms + 2] + 1] = est.prop
        end
      end
    end
    for j, e in ipairs(res.effects) do e.boot = M.boot_ci(boot[j], e.indirect, level, jack and jack[j]) end
    res.total_indirect.boot = M.boot_ci(boot[#ms + 1], sum_ab, level, jack and jack[#ms + 1])
    res.total_indirect.boot_proportion = M.boot_ci(boot[#ms + 2], sum_ab / c, level, jack and jack[#ms + 2])
    res.bootstrap = { reps = reps, seed = seed, cluster = unit, failed = failed, draws = boot,
      method = unit and ("cluster bootstrap by " .. unit) or "pairs bootstrap" }
  end
  return setmetatable(res, Mediation)
end


--- The readable report.
function Mediation:report()
  local out = {}
  local function add(s) out[#out + 1] = s end
  add(string.format("Mediation analysis: %s -> {%s} -> %s", self.x, table.concat(self.m, ", "), self.y))
  add(string.format("Observations: %d   Controls: %s   Fixed effects: %s", self.nobs, self.controls or "none",
    self.fe or "none"))
  add("Standard errors: " .. (self.vcov_label or "iid"))
  if self.bootstrap then
    local b = self.bootstrap
    add(string.format("Bootstrap: %d replications, %s, seed %s%s", b.reps, b.method, tostring(b.seed),
      b.failed > 0 and string.format(" (%d failed and left out)", b.failed) or ""))
  end
  add("")
  local w = 16
  for _, m in ipairs(self.m) do
    w = math.max(w, fitmod.width(m) + fitmod.width(self.y) + 6, fitmod.width(m) + fitmod.width(self.x) + 6)
  end
  w = math.max(w, fitmod.width(self.x) + fitmod.width(self.y) + 6)
  add(pad("Path", 28 + w) .. pad("Estimate", 10, true) .. pad("Std. Error", 11, true) .. pad("p-value", 10, true))
  local function row(label, what, e, se, p)
    add(pad(label, 28) .. pad(what, w) .. fmt(e) .. " " .. fmt(se) .. fmtp(p))
  end
  row("c   total effect", self.x .. " -> " .. self.y, self.c.estimate, self.c.se, self.c.pvalue)
  row("c'  direct effect", self.x .. " -> " .. self.y, self.direct.estimate, self.direct.se, self.direct.pvalue)
  for j, e in ipairs(self.effects) do
    local tag = #self.effects > 1 and tostring(j) or ""
    row(string.format("%-4sx -> mediator", "a" .. tag), self.x .. " -> " .. e.mediator, e.a, e.se_a, e.p_a)
    row(string.format("%-4smediator -> y", "b" .. tag), e.mediator .. " -> " .. self.y, e.b, e.se_b, e.p_b)
  end
  add("")
  local lv = string.format("%g%%", self.level * 100)
  add(pad("Indirect effect", w) .. pad("a*b", 10, true) .. pad("Sobel z", 10, true) .. pad("p", 10, true) ..
    pad("Aroian z", 10, true) .. pad("p", 10, true) .. pad("Goodman z", 10, true) .. pad("p", 10, true) ..
    pad("Share", 9, true))
  for _, e in ipairs(self.effects) do
    add(pad(e.mediator, w) .. fmt(e.indirect) .. fmt(e.sobel.z) .. fmtp(e.sobel.pvalue) .. fmt(e.aroian.z) ..
      fmtp(e.aroian.pvalue) .. fmt(e.goodman.z) .. fmtp(e.goodman.pvalue) .. string.format("%8.1f%%", 100 * e.proportion))
  end
  if #self.effects > 1 then
    add(pad("total indirect", w) .. fmt(self.total_indirect.indirect) .. string.rep(" ", 60) ..
      string.format("%8.1f%%", 100 * self.total_indirect.proportion))
  end
  if self.bootstrap then
    add("")
    local hasbca = self.effects[1].boot.bca ~= nil
    add(pad("Bootstrap", w) .. pad("Boot SE", 10, true) .. pad(lv .. " percentile CI", 24, true) ..
      pad(lv .. " bias-corrected CI", 26, true) .. (hasbca and pad(lv .. " BCa CI", 24, true) or ""))
    local function brow(name, bt)
      local ci = function(t) return t and string.format("[%s, %s]", fmt(t[1], 9):match("^%s*(.-)$"),
          fmt(t[2], 9):match("^%s*(.-)$")) or "" end
      add(pad(name, w) .. fmt(bt.se) .. pad(ci(bt.percentile), 24, true) .. pad(ci(bt.bc), 26, true) ..
        (hasbca and pad(ci(bt.bca), 24, true) or ""))
    end
    for _, e in ipairs(self.effects) do brow(e.mediator, e.boot) end
    if #self.effects > 1 then brow("total indirect", self.total_indirect.boot) end
    brow("share mediated", self.total_indirect.boot_proportion)
  end
  add("")
  add("Share = indirect effect / total effect c (the same sample in every equation, so c = c' + sum a*b).")
  return table.concat(out, "\n")
end

Mediation.__tostring = Mediation.report

--- The regressions side by side (sp.etable): total effect, the a-paths, the
--- outcome equation; headers are the dependent variables unless opts say otherwise.
function Mediation:etable(opts)
  local spec = {}
  for k, v in pairs(opts or {}) do spec[k] = v end
  for i, f in ipairs(self.fits) do spec[i] = f end
  if spec.headers == nil then spec.headers = "depvar" end
  return require("spillover.etable").etable(spec)
end

--- A frame of the indirect effects (one row per mediator, then the total).
function Mediation:tidy()
  local cols = { mediator = {}, a = {}, se_a = {}, b = {}, se_b = {}, indirect = {}, sobel_z = {}, sobel_p = {},
    aroian_p = {}, goodman_p = {}, proportion = {}, boot_se = {}, pct_low = {}, pct_high = {}, bc_low = {}, bc_high = {} }
  local n = 0
  local function add(name, e, bt)
    n = n + 1
    cols.mediator[n] = name
    cols.a[n], cols.se_a[n], cols.b[n], cols.se_b[n] = e.a or 0 / 0, e.se_a or 0 / 0, e.b or 0 / 0, e.se_b or 0 / 0
    cols.indirect[n] = e.indirect
    cols.sobel_z[n] = e.sobel and e.sobel.z or 0 / 0
    cols.sobel_p[n] = e.sobel and e.sobel.pvalue or 0 / 0
    cols.aroian_p[n] = e.aroian and e.aroian.pvalue or 0 / 0
    cols.goodman_p[n] = e.goodman and e.goodman.pvalue or 0 / 0
    cols.proportion[n] = e.proportion
    cols.boot_se[n] = bt and bt.se or 0 / 0
    cols.pct_low[n], cols.pct_high[n] = bt and bt.percentile[1] or 0 / 0, bt and bt.percentile[2] or 0 / 0
    cols.bc_low[n], cols.bc_high[n] = bt and bt.bc[1] or 0 / 0, bt and bt.bc[2] or 0 / 0
  end
  for _, e in ipairs(self.effects) do add(e.mediator, e, e.boot) end
  add("(total)", self.total_indirect, self.total_indirect.boot)
  return core.frame(cols, { order = { "mediator", "a", "se_a", "b", "se_b", "indirect", "sobel_z", "sobel_p",
    "aroian_p", "goodman_p", "proportion", "boot_se", "pct_low", "pct_high", "bc_low", "bc_high" } })
end

-- ---- scenarios ----------------------------------------------------------------------------

--- The mediation result as one fit for scenarios and tables: the outcome
--- equation (x, mediators, controls), with the mediation result attached and
--- the indirect effects in stats.  Predictions go through the reduced form:
--- a change in x moves y by c = c' + sum a_j b_j (the mediators respond), and
--- with parameter draws (opts.coef, keyed by the outcome equation's names)
--- the effect of x is coef[x] + sum a_j coef[m_j].
function M.as_fit(res)
  local f = res.outcome
  local out = {}
  for k, v in pairs(f) do out[k] = v end
  out = setmetatable(out, getmetatable(f))
  out.mediation = res
  out.estimator = "mediation"
  out.label = "Mediation (outcome equation)"
  local stats = {}
  for k, v in pairs(f.stats) do stats[k] = v end
  for _, e in ipairs(res.effects) do
    stats["indirect_" .. e.mediator] = e.indirect
    stats["sobel_p_" .. e.mediator] = e.sobel.pvalue
  end
  stats.total_effect = res.c.estimate
  stats.proportion_mediated = res.total_indirect.proportion
  out.stats = stats
  local total = res.total
  -- The outcome equation's own refit would drop the mediation; callers that
  -- can re-run it (M.register) set refit themselves.
  out.refit = nil
  out.predict_matrix = nil
  out.predict_fn = function(_, frame, popts)
    local p = total:predict(frame)
    if popts and popts.coef then
      local c = popts.coef[res.x] or res.direct.estimate
      for _, e in ipairs(res.effects) do c = c + e.a * (popts.coef[e.mediator] or e.b) end
      local shift = c - res.c.estimate
      if shift ~= 0 then
        local xv = frame:column(res.x)
        for i = 1, frame:nrow() do p:set(i, 1, p:get(i, 1) + shift * xv:get(i, 1)) end
      end
    end
    return p
  end
  return out
end

return M
