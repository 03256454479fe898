-- spillover.mechanism: mediation, moderation and heterogeneity.
--
-- Everything here is orchestration over the linear estimators (sp.design,
-- sp.absorb, sp.lsfit, sp.vcov and linear.fit_design): the regressions are the
-- ones sp.ols runs, so their estimates, standard errors and fixed-effect
-- handling are the same.  Bootstraps and permutations refit only what they
-- need (one design, one demeaning, a few least-squares solves per replication)
-- instead of calling sp.ols, because they need point estimates only.
local core = require "spillover.core"
local linear = require "spillover.linear"
local fitmod = require "spillover.fit"
local formula_object = require "spillover.formula"
local dist = core.dist

local M = {}

-- ---- small helpers --------------------------------------------------------------------

local function as_list(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end

--- Key of a cell for grouping: integral numbers print without ".0".
local function key_of(v)
  if type(v) == "number" then
    if v ~= v then return nil end
    return v == math.floor(v) and math.abs(v) < 2 ^ 53 and string.format("%d", v) or tostring(v)
  end
  return v
end

--- All values of a column as a Lua array (numbers, or strings / nil).
local function column_values(d, name)
  local c = d:column(name)
  if type(c) == "table" then return c end
  local t = {}
  for i = 1, c:nrow() do t[i] = c:get(i, 1) end
  return t
end

--- Does the frame have column `name`?  A wrong name raises with the frame's
--- own did-you-mean suggestion, prefixed by what the name was for.
local function check_column(fname, d, name, what, level)
  if type(name) ~= "string" or name == "" then
    error(string.format("%s: %s must be a column name (a string), got %s", fname, what, type(name)), level + 1)
  end
  local ok, err = pcall(d.column, d, name)
  if not ok then
    local msg = type(err) == "table" and err.msg or tostring(err)
    error(string.format("%s: %s: %s", fname, what, msg), level + 1)
  end
end

--- The text of an error value without the position Lua prepends
--- ("file.lua:12: "), so a wrapped message reads as one sentence.
local function message_of(err)
  if type(err) == "table" and err.msg then return err.msg end
  return (tostring(err):gsub("^[^%s:]+:%d+: ", ""))
end

local function numeric_column(fname, d, name, what, level)
  check_column(fname, d, name, what, level + 1)
  if type(d:column(name)) == "table" then
    error(string.format("%s: %s '%s' is categorical; expected a numeric column", fname, what, name), level + 1)
  end
end

--- Controls as formula text: "a + b", {"a", "b"} or nil.
local function controls_text(fname, c, level)
  if c == nil then return nil end
  if type(c) == "string" then
    if c:match("^%s*$") then return nil end
    if c:find("[~|]") then
      error(fname .. ": controls must be regressors such as \"lngdp + urban\", not a formula ('" .. c .. "')", level + 1)
    end
    return c
  end
  if type(c) == "table" then
    for i, v in ipairs(c) do
      if type(v) ~= "string" then error(string.format("%s: controls[%d] must be a string", fname, i), level + 1) end
    end
    return #c > 0 and table.concat(c, " + ") or nil
  end
  error(fname .. ": controls must be a string like \"lngdp + urban\" or a list of names", level + 1)
end

local function fe_text(fname, fe, level)
  if fe == nil then return nil end
  if type(fe) == "table" then fe = table.concat(fe, " + ") end
  if type(fe) ~= "string" then error(fname .. ": fe must be a string like \"province + year\" or a list", level + 1) end
  if fe:match("^%s*$") or fe:match("^%s*0%s*$") then return nil end
  return fe
end

--- The formula object "y ~ terms | fe": y a column name, terms and fe
--- formula text (absent controls are a nil at the end of terms).
local function formula_of(y, terms, fe)
  return formula_object.build { response = formula_object.quote(y), terms = terms, fe = fe and { fe } or nil }
end

--- The formula object of a user's formula "y ~ x + ... | fe" (IV parts refused).
local function read_formula(fname, formula, level)
  if type(formula) ~= "string" and not formula_object.is_formula(formula) then
    error(fname .. ": expected a formula string", level + 1)
  end
  local ok, f = pcall(formula_object.parse, formula)
  if not ok or not f:response() then
    error(fname .. ": '" .. tostring(formula) .. "' is not a formula \"y ~ x + ... | fe\"" ..
      (ok and "" or " (" .. message_of(f):match("^[^\n]*") .. ")"), level + 1)
  end
  if f:iv() then error(fname .. ": instrumental-variable formulas are not supported here", level + 1) end
  return f
end

--- Type-7 quantile of a sorted array.
local function quantile(s, p)
  local n = #s
  if n == 0 then return 0 / 0 end
  if p <= 0 then return s[1] end
  if p >= 1 then return s[n] end
  local h = (n - 1) * p
  local lo = math.floor(h)
  local frac = h - lo
  local a = s[lo + 1]
  local b = s[math.min(lo + 2, n)]
  return a + frac * (b - a)
end

local function sorted_finite(t)
  local s = {}
  for _, v in ipairs(t) do if v == v and v ~= math.huge and v ~= -math.huge then s[#s + 1] = v end end
  table.sort(s)
  return s
end

local function mean_sd(t)
  local n, s = 0, 0
  for _, v in ipairs(t) do if v == v then n, s = n + 1, s + v end end
  if n == 0 then return 0 / 0, 0 / 0 end
  local m = s / n
  local ss = 0
  for _, v in ipairs(t) do if v == v then ss = ss + (v - m) ^ 2 end end
  return m, n > 1 and math.sqrt(ss / (n - 1)) or 0 / 0
end

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

-- ---- fitting helpers ---------------------------------------------------------------------

--- sp.ols on a formula with extra variables in the listwise deletion (so every
--- equation of a mediation model uses the same rows).
local function ols_extra(d, formula, opts, extra, level)
  local compat = linear.check_compat(opts, level + 1)
  local vc = linear.parse_vcov(opts.vcov, level + 1)
  local ex, seen = {}, {}
  for _, list in ipairs { linear.extra_vars(d, vc, opts), extra or {} } do
    for _, v in ipairs(list) do
      if not seen[v] then seen[v] = true; ex[#ex + 1] = v end
    end
  end
  local des = core.design(d, formula, { extra = ex })
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local fit = linear.fit_design(d, des, tostring(formula), o, compat, vc, ex)
  fit.depvar = formula:response()
  return fit
end

--- Least squares for point estimates only: demean [y X] once, then solve.
--- Returns {des, y, X (demeaned), names, fe_dof} so callers can solve several
--- equations over subsets of the columns.
local function demeaned_design(d, formula, extra)
  local des = core.design(d, formula, { extra = extra })
  local n, k = des.n, des.k
  local y, X, fe_dof, scale = des.y, des.X, 0, linear.colsumsq(des.X)
  if #des.fe > 0 then
    local absorb = core.absorb(des)
    fe_dof = absorb:dof()
    local Mx = core.matrix.hcat(y, X)
    absorb:demean(Mx, { allow_nonconvergence = true })
    y = Mx:col(1)
    X = k > 0 and Mx:view(1, 2, n, k) or nil
  end
  local col = {}
  for j, nm in ipairs(des.names) do col[nm] = j end
  return { des = des, y = y, X = X, names = des.names, col = col, n = n, fe_dof = fe_dof, scale = scale }
end

--- Solve y on the named columns of a demeaned design: b by name (NaN when a
--- column was dropped as collinear).
local function solve_named(dd, y, names)
  local parts, sc = {}, {}
  for i, nm in ipairs(names) do
    local j = dd.col[nm]
    parts[i] = dd.X:col(j)
    sc[i] = dd.scale[j]
  end
  local X = #parts == 1 and parts[1]:copy() or core.matrix.hcat(table.unpack(parts))
  local f = core.lsfit(X, y, { scale = core.matrix(sc) })
  local b = {}
  for i, nm in ipairs(names) do b[nm] = f.keep[i] and f.b:get(i, 1) or 0 / 0 end
  return b, f
end

--- Resampling units: rows by unit key, in first-appearance order.
local function unit_rows(d, unit)
  local vals = column_values(d, unit)
  local rows, order = {}, {}
  for i = 1, d:nrow() do
    local k = key_of(vals[i])
    if k ~= nil then
      if not rows[k] then rows[k] = {}; order[#order + 1] = k end
      local t = rows[k]
      t[#t + 1] = i
    end
  end
  return rows, order
end

local function panel_of(d)
  local ok, info = pcall(d.panel_info, d)
  if ok and type(info) == "table" and info.entity then return info end
  return nil
end

--- A cluster-bootstrap sample: units drawn with replacement; each copy gets its
--- own label in the unit column (and in the panel entity, if that differs), so
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
  if type(opts) ~= "table" then error(F .. ": expected an options table {x=, m=, y=, ...} as argument 2", 2) end
  for k in pairs(opts) do
    if not MED_OPTS[k] then
      error(string.format("%s: unknown option '%s' (expected x, m, y, controls, fe, vcov, compat, bootstrap, seed, level, cluster, bca)",
        F, tostring(k)), 2)
    end
  end
  local x, y = opts.x, opts.y
  local ms = as_list(opts.m)
  if #ms == 0 then error(F .. ": 'm' must name at least one mediator", 2) end
  numeric_column(F, d, x, "x", 2)
  numeric_column(F, d, y, "y", 2)
  local seen = {}
  for j, m in ipairs(ms) do
    numeric_column(F, d, m, string.format("m[%d]", j), 2)
    if m == y then error(string.format("%s: mediator '%s' is the outcome y; a mediator must differ from x and y", F, m), 2) end
    if m == x then error(string.format("%s: mediator '%s' is the treatment x; a mediator must differ from x and y", F, m), 2) end
    if seen[m] then error(string.format("%s: mediator '%s' is listed twice", F, m), 2) end
    seen[m] = true
  end
  if x == y then error(string.format("%s: x and y are the same column '%s'", F, x), 2) end
  local level = opts.level or 0.95
  if type(level) ~= "number" or not (level > 0 and level < 1) then
    error(F .. ": level must be a number in (0, 1), got " .. tostring(level), 2)
  end
  local reps = opts.bootstrap
  if reps ~= nil and (math.type(reps) ~= "integer" or reps < 1) then
    error(F .. ": bootstrap must be a whole number of replications >= 1, got " .. tostring(reps), 2)
  end
  if opts.cluster ~= nil then check_column(F, d, opts.cluster, "bootstrap cluster", 2) end
  local controls = controls_text(F, opts.controls, 2)
  local fe = fe_text(F, opts.fe, 2)
  local fopts = { vcov = opts.vcov, compat = opts.compat }
  local vc = linear.parse_vcov(opts.vcov, 2)

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

  local total = ols_extra(d, f_total, fopts, every, 2)
  local afits = {}
  for j, m in ipairs(ms) do afits[j] = ols_extra(d, formula_of(m, rhs_c, fe), fopts, every, 2) end
  local outcome = ols_extra(d, f_out, fopts, every, 2)
  local function coef_se(fit, name, what)
    local i = fit.index[name]
    if i == nil then
      error(string.format("%s: '%s' was dropped from the %s equation (collinear with the controls or absorbed by the fixed effects)",
        F, name, what), 3)
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
      units, order = unit_rows(d, unit)
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
      error(string.format("%s: the bootstrap cluster '%s' has %d level(s) in the sample; a cluster bootstrap needs at least 2",
        F, unit, #order), 2)
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

local function fmt(v, w)
  w = w or 10
  if v == nil then return string.rep(" ", w) end
  if v ~= v then return string.format("%" .. w .. "s", "NA") end
  local a = math.abs(v)
  if a ~= 0 and (a >= 1e5 or a < 1e-3) then return string.format("%" .. w .. ".3e", v) end
  return string.format("%" .. w .. ".4f", v)
end

local function fmtp(p)
  if p == nil or p ~= p then return "        NA" end
  if p < 1e-4 then return string.format("%10.2e", p) end
  return string.format("%10.4f", p)
end

local pad = fitmod.pad

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

-- ---- moderation ------------------------------------------------------------------------

--- Centre numeric columns at their means (over non-missing rows), in place.
--- Writes prefix .. name .. suffix (default prefix "c_"); returns d and the means.
function M.center(d, cols, opts)
  local F = "center"
  opts = opts or {}
  cols = as_list(cols)
  if #cols == 0 then error(F .. ": expected a column name or a list of names", 2) end
  local prefix = opts.prefix
  local suffix = opts.suffix or ""
  if prefix == nil then prefix = (opts.suffix == nil) and "c_" or "" end
  if prefix == "" and suffix == "" then
    error(F .. ": prefix and suffix are both empty: the centred column would overwrite '" .. cols[1] .. "'", 2)
  end
  local means = {}
  for _, name in ipairs(cols) do
    numeric_column(F, d, name, "column", 2)
    local v = d:column(name)
    local s, n = 0, 0
    for i = 1, v:nrow() do
      local x = v:get(i, 1)
      if x == x then s, n = s + x, n + 1 end
    end
    if n == 0 then error(F .. ": column '" .. name .. "' has no non-missing values", 2) end
    local m = s / n
    means[name] = m
    local out = core.matrix(v:nrow(), 1)
    for i = 1, v:nrow() do out:set(i, 1, v:get(i, 1) - m) end
    d[prefix .. name .. suffix] = out
  end
  return d, means
end
M.centre = M.center

--- sp.moderation(d, {y=, x=, m=, controls=, fe=, vcov=, centre=true}): y ~ x*m + controls | fe.
--- With centre, x and m enter centred (columns c_x, c_m); margins on the fit
--- then take x and m in their original units.
function M.moderation(d, opts)
  local F = "moderation"
  if type(opts) ~= "table" then error(F .. ": expected an options table {y=, x=, m=, ...}", 2) end
  numeric_column(F, d, opts.x, "x", 2)
  numeric_column(F, d, opts.m, "m", 2)
  numeric_column(F, d, opts.y, "y", 2)
  if opts.m == opts.x then error(F .. ": the moderator m is the same column as x ('" .. opts.x .. "')", 2) end
  if opts.m == opts.y or opts.x == opts.y then error(F .. ": y must differ from x and m", 2) end
  local centre = opts.centre
  if centre == nil then centre = opts.center end
  local xn, mn = opts.x, opts.m
  local means
  if centre then
    local prefix = type(centre) == "string" and centre or "c_"
    local _
    _, means = M.center(d, { xn, mn }, { prefix = prefix })
    xn, mn = prefix .. xn, prefix .. mn
  end
  local qx, qm = formula_object.quote(xn), formula_object.quote(mn)
  local rhs = { qx, qm, qx .. ":" .. qm, controls_text(F, opts.controls, 2) }
  local formula = formula_of(opts.y, rhs, fe_text(F, opts.fe, 2))
  local fit = linear.ols(d, tostring(formula), { vcov = opts.vcov, compat = opts.compat })
  fit.depvar = opts.y
  if centre then
    fit.centering = { [opts.x] = { name = xn, mean = means[opts.x] }, [opts.m] = { name = mn, mean = means[opts.m] } }
  end
  return fit
end

--- Split an interaction name at top-level ':' (not '::', not inside parentheses).
local function split_interaction(name)
  local parts, depth, start, i = {}, 0, 1, 1
  while i <= #name do
    local c = name:sub(i, i)
    if c == "(" then depth = depth + 1
    elseif c == ")" then depth = depth - 1
    elseif c == ":" and depth == 0 then
      if name:sub(i + 1, i + 1) == ":" then
        i = i + 1
      else
        parts[#parts + 1] = name:sub(start, i - 1)
        start = i + 1
      end
    end
    i = i + 1
  end
  parts[#parts + 1] = name:sub(start)
  return parts
end

local Margins = {}
Margins.__index = Margins
Margins.__name = "spillover.margins"

--- Mean of a design column over the estimation sample (nil if unavailable).
local function sample_values(fit, name)
  local des = fit.design
  if not des then return nil end
  if #des.fe > 0 and fit.data and fit.formula then
    -- sp.ols demeans its design in place: rebuild the original values.
    fit.original_design_cache = fit.original_design_cache or
      (linear.original_design and linear.original_design(fit) or
        core.design(fit.data, fit.formula, { extra = fit.design_extra }))
    des = fit.original_design_cache
  end
  for j, nm in ipairs(des.names) do
    if nm == name then
      local X = des.X
      local t = {}
      for i = 1, des.n do t[i] = X:get(i, j) end
      return t
    end
  end
  return nil
end

--- margins(fit, "x", {at = {m = {...}}, over = "m", n = 20, range = {lo, hi}, level = 0.95})
function M.margins(fit, x, opts)
  local F = "margins"
  if type(fit) ~= "table" or type(fit.names) ~= "table" or type(fit.V) ~= "table" then
    error(F .. ": argument 1 must be a fit", 2)
  end
  if type(x) ~= "string" then error(F .. ": argument 2 must be the name of the variable whose effect is wanted", 2) end
  opts = opts or {}
  local level = opts.level or 0.95
  if type(level) ~= "number" or not (level > 0 and level < 1) then error(F .. ": level must be in (0, 1)", 2) end
  local cen = fit.centering or {}
  local xname = cen[x] and cen[x].name or x
  local ix = fit.index[xname]
  -- Terms: the main effect and every interaction with x.
  local terms = {}
  local moderators, modset = {}, {}
  for i, nm in ipairs(fit.names) do
    if nm ~= xname then
      local parts = split_interaction(nm)
      if #parts > 1 then
        local hasx, others = false, {}
        for _, p in ipairs(parts) do
          if p == xname and not hasx then hasx = true else others[#others + 1] = p end
        end
        if hasx then
          terms[#terms + 1] = { index = i, others = others }
          for _, o in ipairs(others) do
            if not modset[o] then modset[o] = true; moderators[#moderators + 1] = o end
          end
        end
      end
    end
  end
  if ix == nil and #terms == 0 then
    error(string.format("%s: '%s' is not a coefficient of the fit (coefficients: %s)", F, x, table.concat(fit.names, ", ")), 2)
  end
  -- Original-unit names of centred moderators.
  local orig_of = {}
  for o, c in pairs(cen) do orig_of[c.name] = o end
  local function user_name(mod) return orig_of[mod] or mod end
  local function to_model(mod, v) local o = orig_of[mod]; return o and (v - cen[o].mean) or v end

  local at = opts.at or {}
  if type(at) ~= "table" then error(F .. ": 'at' must be a table {moderator = {values}}", 2) end
  local known = {}
  for _, mod in ipairs(moderators) do known[user_name(mod)] = mod end
  for k in pairs(at) do
    if not known[k] then
      error(string.format("%s: '%s' in 'at' is not a moderator of '%s' (moderators: %s)", F, tostring(k), x,
        #moderators > 0 and table.concat((function() local t = {} for i, m in ipairs(moderators) do t[i] = user_name(m) end return t end)(), ", ") or "none"), 2)
    end
  end
  local over = opts.over
  if over ~= nil then
    if not known[over] then
      error(string.format("%s: over = '%s' is not a moderator of '%s'", F, tostring(over), x), 2)
    end
    local n = opts.n or 20
    if math.type(n) ~= "integer" or n < 2 then error(F .. ": n must be a whole number >= 2", 2) end
    local lo, hi
    if opts.range then
      lo, hi = opts.range[1], opts.range[2]
      if type(lo) ~= "number" or type(hi) ~= "number" or not (hi > lo) then
        error(F .. ": range must be {low, high} with low < high", 2)
      end
    else
      local vals = sample_values(fit, known[over])
      if not vals then error(F .. ": the fit does not carry its data; give range = {low, high} for '" .. over .. "'", 2) end
      lo, hi = math.huge, -math.huge
      for _, v in ipairs(vals) do if v == v then lo, hi = math.min(lo, v), math.max(hi, v) end end
      -- The sample values are in model units; report original units.
      local o = orig_of[known[over]]
      if o then lo, hi = lo + cen[o].mean, hi + cen[o].mean end
    end
    local grid = {}
    for i = 1, n do grid[i] = lo + (hi - lo) * (i - 1) / (n - 1) end
    local a2 = {}
    for k, v in pairs(at) do a2[k] = v end
    a2[over] = grid
    at = a2
  end
  -- Moderators not given are held at their sample means.
  local fixed, varying = {}, {}
  for _, mod in ipairs(moderators) do
    local un = user_name(mod)
    if at[un] ~= nil then
      local vals = type(at[un]) == "table" and at[un] or { at[un] }
      for i, v in ipairs(vals) do
        if type(v) ~= "number" then error(string.format("%s: at.%s[%d] must be a number", F, un, i), 2) end
      end
      varying[#varying + 1] = { mod = mod, name = un, values = vals }
    else
      local vals = sample_values(fit, mod)
      if not vals then
        error(string.format("%s: give a value for the moderator '%s' in 'at' (the fit does not carry its data)", F, un), 2)
      end
      local m = mean_sd(vals)
      fixed[mod] = m
    end
  end
  -- Cartesian product of the 'at' values (first moderator varies slowest).
  local combos = { {} }
  for _, v in ipairs(varying) do
    local nxt = {}
    for _, c in ipairs(combos) do
      for _, val in ipairs(v.values) do
        local t = {}
        for k, w in pairs(c) do t[k] = w end
        t[v.mod] = val
        nxt[#nxt + 1] = t
      end
    end
    combos = nxt
  end
  local q = fit:uses_t() and dist.qt(1 - (1 - level) / 2, fit.df_resid) or dist.qnorm(1 - (1 - level) / 2)
  local rows = {}
  for r, c in ipairs(combos) do
    local g = {}
    if ix then g[ix] = 1 end
    local values = {}
    for _, t in ipairs(terms) do
      local prod = 1
      for _, o in ipairs(t.others) do
        local v
        if c[o] ~= nil then v = to_model(o, c[o]) else v = fixed[o] end
        prod = prod * v
      end
      g[t.index] = (g[t.index] or 0) + prod
    end
    for _, v in ipairs(varying) do values[v.name] = c[v.mod] end
    local est, var = 0, 0
    for i, gi in pairs(g) do
      est = est + gi * fit.b[i]
      for j, gj in pairs(g) do var = var + gi * fit.V[i][j] * gj end
    end
    local se = math.sqrt(math.max(var, 0))
    local stat = est / se
    local p = fit:uses_t() and 2 * dist.pt(math.abs(stat), fit.df_resid, true) or 2 * dist.pnorm(math.abs(stat), true)
    rows[r] = { at = values, effect = est, se = se, statistic = stat, pvalue = p, lower = est - q * se, upper = est + q * se,
      gradient = g }
  end
  local held = {}
  for mod, v in pairs(fixed) do held[user_name(mod)] = orig_of[mod] and v + cen[orig_of[mod]].mean or v end
  return setmetatable({ x = x, over = over, level = level, rows = rows, moderators = varying, held = held,
    dist = fit:uses_t() and "t" or "normal", df = fit.df_resid }, Margins)
end

function Margins:__tostring()
  local out = {}
  local lv = string.format("%g%%", self.level * 100)
  out[1] = string.format("Marginal effect of %s (delta-method standard errors, %s intervals)", self.x, lv)
  local held = {}
  for k, v in pairs(self.held) do held[#held + 1] = string.format("%s = %.4g", k, v) end
  table.sort(held)
  if #held > 0 then out[#out + 1] = "Held at sample means: " .. table.concat(held, ", ") end
  local head = ""
  for _, v in ipairs(self.moderators) do head = head .. pad(v.name, 12, true) end
  out[#out + 1] = head .. pad("dy/dx", 11, true) .. pad("Std. Error", 11, true) .. pad(self.dist == "t" and "t" or "z", 9, true) ..
    pad("p-value", 10, true) .. pad("lower", 11, true) .. pad("upper", 11, true)
  for _, r in ipairs(self.rows) do
    local line = ""
    for _, v in ipairs(self.moderators) do line = line .. pad(string.format("%.4g", r.at[v.name]), 12, true) end
    out[#out + 1] = line .. " " .. fmt(r.effect) .. " " .. fmt(r.se) .. string.format("%9.3f", r.statistic) .. fmtp(r.pvalue) ..
      " " .. fmt(r.lower) .. " " .. fmt(r.upper)
  end
  return table.concat(out, "\n")
end

--- The rows as a frame (one column per moderator, then effect, se, ...).
function Margins:frame()
  local cols, order = {}, {}
  for _, v in ipairs(self.moderators) do cols[v.name] = {}; order[#order + 1] = v.name end
  for _, k in ipairs { "effect", "se", "statistic", "pvalue", "lower", "upper" } do cols[k] = {}; order[#order + 1] = k end
  for i, r in ipairs(self.rows) do
    for _, v in ipairs(self.moderators) do cols[v.name][i] = r.at[v.name] end
    cols.effect[i], cols.se[i], cols.statistic[i] = r.effect, r.se, r.statistic
    cols.pvalue[i], cols.lower[i], cols.upper[i] = r.pvalue, r.lower, r.upper
  end
  return core.frame(cols, { order = order })
end

--- Marginal-effect plot of a margins(..., {over = m}) result: the effect with
--- its confidence band over the moderator, and a zero line.
function M.margins_plot(path, result, opts)
  if getmetatable(result) ~= Margins or not result.over then
    error("margins_plot: argument 2 must be the result of margins(fit, x, {over = moderator})", 2)
  end
  opts = opts or {}
  local xs, ys, lo, hi = {}, {}, {}, {}
  for i, r in ipairs(result.rows) do
    xs[i], ys[i], lo[i], hi[i] = r.at[result.over], r.effect, r.lower, r.upper
  end
  local spec = {}
  for k, v in pairs(opts) do spec[k] = v end
  spec.x = xs
  spec.series = { { y = ys, lo = lo, hi = hi, label = opts.label or
    string.format("∂y/∂%s (%g%% CI)", result.x, result.level * 100) } }
  spec.label = nil
  spec.zero_line = opts.zero_line ~= false
  spec.xlabel = opts.xlabel or result.over
  spec.ylabel = opts.ylabel or ("Marginal effect of " .. result.x)
  return require("spillover.plot").lines(path, spec)
end

fitmod.class.margins = function(self, x, opts) return M.margins(self, x, opts) end

-- ---- heterogeneity ----------------------------------------------------------------------

--- Rows by level of a grouping column: levels sorted (numbers numerically,
--- strings bytewise), rows in frame order; rows with a missing group are left out.
local function group_rows(d, group)
  local vals = column_values(d, group)
  local rows, levels = {}, {}
  for i = 1, d:nrow() do
    local k = key_of(vals[i])
    if k ~= nil then
      if not rows[k] then rows[k] = {}; levels[#levels + 1] = k end
      local t = rows[k]
      t[#t + 1] = i
    end
  end
  local numeric = type(d:column(group)) ~= "table"
  table.sort(levels, function(a, b)
    if numeric then return tonumber(a) < tonumber(b) end
    return a < b
  end)
  return rows, levels
end

local By = {}
By.__index = By
By.__name = "spillover.by"

--- sp.by(d, "region", function(sub, level) return sp.ols(sub, ...) end)
--- -> {levels = {...}, fits = {level -> fit}, nobs = {level -> rows}}; by[i] is the i-th fit.
function M.by(d, group, fn)
  local F = "by"
  check_column(F, d, group, "group", 2)
  if type(fn) ~= "function" then error(F .. ": argument 3 must be a function(sub, level) returning a fit", 2) end
  local rows, levels = group_rows(d, group)
  if #levels == 0 then error(F .. ": the group column '" .. group .. "' has no non-missing values", 2) end
  local res = setmetatable({ group = group, levels = levels, fits = {}, nrows = {} }, By)
  for i, lv in ipairs(levels) do
    local sub = d:take(rows[lv])
    local ok, f = pcall(fn, sub, lv)
    if not ok then
      error(string.format("%s: group %s = '%s' (%d rows): %s", F, group, lv, #rows[lv], message_of(f)), 2)
    end
    if type(f) == "table" and f.label == nil then f.label = lv end
    res.fits[lv] = f
    res.nrows[lv] = #rows[lv]
    res[i] = f
  end
  return res
end

function By:__tostring()
  local out = { string.format("Estimates by %s (%d groups)", self.group, #self.levels) }
  for _, lv in ipairs(self.levels) do
    local f = self.fits[lv]
    out[#out + 1] = ""
    out[#out + 1] = string.format("== %s = %s (%d rows) ==", self.group, lv, self.nrows[lv])
    out[#out + 1] = tostring(f)
  end
  return table.concat(out, "\n")
end

--- Wald test of R b = 0 given rows of R (tables index -> weight).
local function wald_rows(b, V, R, df2)
  local q = #R
  local dvec, Mm = {}, {}
  for a = 1, q do
    local s = 0
    for i, w in pairs(R[a]) do s = s + w * b[i] end
    dvec[a] = s
    Mm[a] = {}
    for c = 1, q do
      local m = 0
      for i, wi in pairs(R[a]) do for j, wj in pairs(R[c]) do m = m + wi * V[i][j] * wj end end
      Mm[a][c] = m
    end
  end
  local idx = {}
  for a = 1, q do idx[a] = a end
  local t = linear.joint_test(dvec, Mm, idx, df2, df2 == nil)
  if t == nil then error("the covariance of the tested differences is singular", 3) end
  t.difference = dvec
  return t
end

--- Parse common options of the group tests.
local function group_setup(F, d, formula, opts, level)
  if type(opts) ~= "table" then error(F .. ": expected an options table {group=, coef=, ...} as argument 3", level + 1) end
  local f = read_formula(F, formula, level + 1)
  check_column(F, d, opts.group, "group", level + 1)
  local rows, levels = group_rows(d, opts.group)
  local sel = opts.groups
  if sel then
    if type(sel) ~= "table" or #sel < 2 then error(F .. ": groups must list at least two levels of '" .. opts.group .. "'", level + 1) end
    local keep = {}
    for i, lv in ipairs(sel) do
      local k = key_of(lv)
      if not rows[k] then
        error(string.format("%s: groups[%d] = '%s' is not a level of '%s' (levels: %s)", F, i, tostring(lv), opts.group,
          table.concat(levels, ", ")), level + 1)
      end
      keep[#keep + 1] = k
    end
    levels = keep
  end
  if #levels < 2 then
    error(string.format("%s: the group column '%s' has %d level(s); a comparison needs at least 2", F, opts.group, #levels), level + 1)
  end
  return f, rows, levels
end

local function coefs_to_test(F, names, coef, level)
  local out = {}
  if coef == nil then
    for _, nm in ipairs(names) do if nm ~= "(Intercept)" then out[#out + 1] = nm end end
  else
    for _, c in ipairs(as_list(coef)) do
      local found = false
      for _, nm in ipairs(names) do if nm == c then found = true end end
      if not found then
        error(string.format("%s: coef '%s' is not a regressor of the formula (regressors: %s)", F, tostring(c),
          table.concat(names, ", ")), level + 1)
      end
      out[#out + 1] = c
    end
  end
  if #out == 0 then error(F .. ": no coefficient to compare", level + 1) end
  return out
end

--- Rows of the groups compared, with the group's level per row.
local function subset_rows(rows, levels)
  local all, gl = {}, {}
  for _, lv in ipairs(levels) do for _, r in ipairs(rows[lv]) do all[#all + 1] = r; gl[#gl + 1] = lv end end
  return all, gl
end

--- Fully interacted (Chow 1960) Wald test: y on X interacted with every group
--- dummy, fixed effects interacted with the group; H0: the tested
--- coefficients are equal across the groups.
function M.chow(d, formula, opts)
  local F = "chow"
  local f, rows, levels = group_setup(F, d, formula, opts, 2)
  local group = opts.group
  local all = subset_rows(rows, levels)
  local sub = d:take(all)
  local vc = linear.parse_vcov(opts.vcov, 2)
  local compat = linear.check_compat(opts, 2)
  -- Each fixed effect is interacted with the group: fe^group.
  local fe_i = {}
  for j, node in ipairs(f.fe) do fe_i[j] = formula_object.format_term(node) .. "^" .. formula_object.quote(group) end
  local extra = linear.extra_vars(sub, vc, opts)
  extra[#extra + 1] = group
  local ftxt = tostring(f:without_fe():with_fe(fe_i))
  local des = core.design(sub, ftxt, { extra = extra })
  local n, k = des.n, des.k
  local gcol = column_values(sub, group)
  local gidx = {}
  for gi, lv in ipairs(levels) do gidx[lv] = gi end
  local G = #levels
  local codes = {}
  for i, r in ipairs(des.rows) do codes[i] = gidx[key_of(gcol[r])] end
  -- Too few rows in a group for its own coefficients: say which group.
  local count = {}
  for i = 1, n do count[codes[i]] = (count[codes[i]] or 0) + 1 end
  for gi, lv in ipairs(levels) do
    if (count[gi] or 0) <= k then
      error(string.format("%s: group %s = '%s' has %d usable rows, too few for its %d coefficients", F, group, lv,
        count[gi] or 0, k), 2)
    end
  end
  -- Interacted X: block g holds X on the rows of group g, 0 elsewhere.
  local Xi = core.matrix(n, k * G, 0)
  local names = {}
  for gi, lv in ipairs(levels) do
    for j, nm in ipairs(des.names) do names[(gi - 1) * k + j] = group .. "::" .. lv .. ":" .. nm end
  end
  local X0 = des.X
  for i = 1, n do
    local off = (codes[i] - 1) * k
    for j = 1, k do Xi:set(i, off + j, X0:get(i, j)) end
  end
  local y, X, absorb, fe_dof = des.y, Xi, nil, 0
  local scale = linear.colsumsq(Xi)
  if #des.fe > 0 then
    absorb = core.absorb(des)
    fe_dof = absorb:dof()
    local Mx = core.matrix.hcat(des.y, Xi)
    absorb:demean(Mx, { allow_nonconvergence = true })
    y, X = Mx:col(1), Mx:view(1, 2, n, k * G)
  end
  local f = core.lsfit(X, y, { scale = core.matrix(scale) })
  local Xk = linear.kept_columns(X, f.keep)
  local ctx = linear.vcov_context(sub, des, compat, vc, absorb, fe_dof, nil)
  local V, vinfo, vlabel = linear.covariance(Xk, f.resid, f.bread, ctx)
  local df_resid = n - f.rank - fe_dof
  local kept_names, b, pos = {}, {}, {}
  for j, keep in ipairs(f.keep) do
    if keep then
      kept_names[#kept_names + 1] = names[j]
      b[#b + 1] = f.b:get(j, 1)
      pos[names[j]] = #b
    end
  end
  local Vt = linear.totable(V)
  local tested = coefs_to_test(F, des.names, opts.coef, 2)
  local R = {}
  local estimates = {}
  for _, c in ipairs(tested) do
    estimates[c] = {}
    local base = pos[group .. "::" .. levels[1] .. ":" .. c]
    for gi, lv in ipairs(levels) do
      local p = pos[group .. "::" .. lv .. ":" .. c]
      if p == nil then
        error(string.format("%s: '%s' is collinear or absorbed in group %s = '%s'", F, c, group, lv), 2)
      end
      estimates[c][lv] = { estimate = b[p], se = math.sqrt(Vt[p][p]) }
      if gi > 1 then R[#R + 1] = { [p] = 1, [base] = -1 } end
    end
  end
  local df2 = vc.type == "iid" and df_resid or linear.wald_df2(vc, vinfo, df_resid)
  local t = wald_rows(b, Vt, R, df2)
  local fit = fitmod.new { names = kept_names, b = b, V = Vt, nobs = n, df_resid = linear.t_df(vc, compat, vinfo, df_resid),
    estimator = "chow", label = "Fully interacted by " .. group, formula = ftxt, vcov_label = vlabel,
    stats = { df_resid = df_resid, ssr = f.ssr } }
  return { test = "chow", method = "fully interacted Wald test", group = group, levels = levels, coef = tested,
    statistic = t.statistic, df1 = t.df1, df2 = t.df2, pvalue = t.pvalue, kind = t.kind, difference = t.difference,
    estimates = estimates, vcov_label = vlabel, fit = fit, nobs = n }
end

--- Point estimates of a formula on a frame (no covariance).
local function quick_coef(frame, formula)
  local dd = demeaned_design(frame, formula, {})
  if dd.n <= dd.des.k + dd.fe_dof then
    error(string.format("%d usable rows are too few for %d coefficients and %d absorbed fixed-effect parameters",
      dd.n, dd.des.k, dd.fe_dof), 0)
  end
  return (solve_named(dd, dd.y, dd.names))
end

--- Is the group constant within each entity?  Then labels are permuted across
--- entities (bdiff's practice for firm-level groups), else across rows.
local function permutation_units(d, all, gl, entity)
  if not entity then return nil end
  local ev = column_values(d, entity)
  local unit_of, units, order = {}, {}, {}
  for i, r in ipairs(all) do
    local e = key_of(ev[r])
    if e == nil then return nil end
    if unit_of[e] == nil then
      unit_of[e] = gl[i]
      units[e] = {}
      order[#order + 1] = e
    elseif unit_of[e] ~= gl[i] then
      return nil
    end
    local t = units[e]
    t[#t + 1] = i
  end
  return { order = order, units = units, label = unit_of }
end

--- Fisher permutation test of the difference of one coefficient between two
--- groups (Cleary 1999; Lian Yujun's bdiff): labels are reshuffled, keeping the
--- group sizes, and the difference recomputed.
function M.permutation(d, formula, opts)
  local F = "permutation"
  local _, rows, levels = group_setup(F, d, formula, opts, 2)
  if #levels ~= 2 then
    error(string.format("%s: '%s' has %d levels (%s); choose two with groups = {\"a\", \"b\"}", F, opts.group, #levels,
      table.concat(levels, ", ")), 2)
  end
  local reps = opts.reps or 1000
  if math.type(reps) ~= "integer" or reps < 1 then
    error(F .. ": reps must be a whole number of permutations >= 1, got " .. tostring(reps), 2)
  end
  local all, gl = subset_rows(rows, levels)
  local ref = core.design(d, formula, {})
  local coefs = coefs_to_test(F, ref.names, opts.coef, 2)
  local function diffs(labels)
    local r1, r2 = {}, {}
    for i, r in ipairs(all) do
      if labels[i] == levels[1] then r1[#r1 + 1] = r else r2[#r2 + 1] = r end
    end
    local b1 = quick_coef(d:take(r1), formula)
    local b2 = quick_coef(d:take(r2), formula)
    local out = {}
    for j, c in ipairs(coefs) do out[j] = b1[c] - b2[c] end
    return out, b1, b2
  end
  local ok, obs, b1, b2 = pcall(diffs, gl)
  if not ok then
    -- Name the group that failed.
    for _, lv in ipairs(levels) do
      local ok2, e2 = pcall(quick_coef, d:take(rows[lv]), formula)
      if not ok2 then
        error(string.format("%s: group %s = '%s' (%d rows): %s", F, opts.group, lv, #rows[lv], message_of(e2)), 2)
      end
    end
    error(obs, 2)
  end
  local pinfo = panel_of(d)
  local entity = opts.entity or (pinfo and pinfo.entity)
  local pu = permutation_units(d, all, gl, entity)
  local rng = core.rng(opts.seed or 42)
  local ge, ge_abs, done = {}, {}, 0
  for j = 1, #coefs do ge[j], ge_abs[j] = 0, 0 end
  local draws = {}
  for j = 1, #coefs do draws[j] = {} end
  local labels = {}
  for r = 1, reps do
    -- Fisher-Yates on the unit labels.
    local lab
    if pu then
      local perm = {}
      for i, e in ipairs(pu.order) do perm[i] = pu.label[e] end
      for i = #perm, 2, -1 do
        local j = rng:integer(i)
        perm[i], perm[j] = perm[j], perm[i]
      end
      lab = labels
      for i, e in ipairs(pu.order) do for _, row in ipairs(pu.units[e]) do lab[row] = perm[i] end end
    else
      lab = {}
      for i = 1, #gl do lab[i] = gl[i] end
      for i = #lab, 2, -1 do
        local j = rng:integer(i)
        lab[i], lab[j] = lab[j], lab[i]
      end
    end
    local okr, dd = pcall(diffs, lab)
    if okr then
      done = done + 1
      for j = 1, #coefs do
        local v = dd[j]
        draws[j][#draws[j] + 1] = v
        if (obs[j] >= 0 and v >= obs[j]) or (obs[j] < 0 and v <= obs[j]) then ge[j] = ge[j] + 1 end
        if math.abs(v) >= math.abs(obs[j]) then ge_abs[j] = ge_abs[j] + 1 end
      end
    end
  end
  if done == 0 then error(F .. ": every permutation failed to estimate (groups too small?)", 2) end
  local results = {}
  for j, c in ipairs(coefs) do
    results[j] = { coef = c, [levels[1]] = b1[c], [levels[2]] = b2[c], difference = obs[j],
      pvalue = ge[j] / done, pvalue_two_sided = ge_abs[j] / done }
  end
  return { test = "permutation", method = "Fisher permutation test (" .. (pu and ("labels permuted across " .. entity) or "labels permuted across rows") .. ")",
    group = opts.group, levels = levels, coef = coefs, reps = reps, done = done, seed = opts.seed or 42,
    results = results, difference = obs[1], pvalue = results[1].pvalue, pvalue_two_sided = results[1].pvalue_two_sided,
    draws = draws }
end

--- SUR-style test (Stata's suest): each group's regression separately; their
--- scores stacked in one cluster-robust sandwich, so the covariance between
--- the groups' estimates enters the variance of the difference.
function M.sur(d, formula, opts)
  local F = "sur"
  local _, rows, levels = group_setup(F, d, formula, opts, 2)
  local vc = linear.parse_vcov(opts.vcov, 2)
  local cl = opts.cluster or (vc.type == "cluster" and vc.cluster[1]) or nil
  if cl then check_column(F, d, cl, "cluster", 2) end
  local pieces, K, N = {}, 0, 0
  local tested
  for gi, lv in ipairs(levels) do
    local sub = d:take(rows[lv])
    local ok, dd = pcall(demeaned_design, sub, formula, cl and { cl } or {})
    if not ok then
      error(string.format("%s: group %s = '%s' (%d rows): %s", F, opts.group, lv, #rows[lv], message_of(dd)), 2)
    end
    if dd.n <= dd.des.k + dd.fe_dof then
      error(string.format("%s: group %s = '%s' has %d usable rows, too few for %d coefficients and %d absorbed fixed-effect parameters",
        F, opts.group, lv, dd.n, dd.des.k, dd.fe_dof), 2)
    end
    tested = tested or coefs_to_test(F, dd.names, opts.coef, 2)
    local f = core.lsfit(dd.X:copy(), dd.y, { scale = core.matrix(dd.scale) })
    local kn = {}
    for j, keep in ipairs(f.keep) do if keep then kn[#kn + 1] = dd.names[j] end end
    local cvals = cl and column_values(sub, cl) or nil
    local ckeys = {}
    if cvals then for i, r in ipairs(dd.des.rows) do ckeys[i] = key_of(cvals[r]) end end
    pieces[gi] = { X = linear.kept_columns(dd.X, f.keep), e = f.resid, bread = f.bread, names = kn, n = dd.n,
      off = K, rowoff = N, ckeys = ckeys, b = f.b, keep = f.keep, allnames = dd.names }
    K = K + #kn
    N = N + dd.n
  end
  local Xs = core.matrix(N, K, 0)
  local es = core.matrix(N, 1, 0)
  local Bs = core.matrix(K, K, 0)
  local codes, cmap, ncl = {}, {}, 0
  local names, b = {}, {}
  for gi, p in ipairs(pieces) do
    local kk = #p.names
    for i = 1, p.n do
      for j = 1, kk do Xs:set(p.rowoff + i, p.off + j, p.X:get(i, j)) end
      es:set(p.rowoff + i, 1, p.e:get(i, 1))
      if cl then
        local key = p.ckeys[i]
        if not cmap[key] then ncl = ncl + 1; cmap[key] = ncl end
        codes[p.rowoff + i] = cmap[key]
      else
        codes[p.rowoff + i] = p.rowoff + i
      end
    end
    for a = 1, kk do for c = 1, kk do Bs:set(p.off + a, p.off + c, p.bread:get(a, c)) end end
    local q = 0
    for j, keep in ipairs(p.keep) do
      if keep then
        q = q + 1
        names[p.off + q] = levels[gi] .. ":" .. p.allnames[j]
        b[p.off + q] = p.b:get(j, 1)
      end
    end
  end
  -- Stata's suest: the sandwich with the G/(G-1) cluster factor (clusters are
  -- single observations without a cluster variable: N/(N-1)), no n-k factor.
  local V, vinfo = core.vcov(Xs, es, Bs, { type = "cluster", cluster = { codes }, dof = "none", gadj = "each", k_df = 1 })
  local Vt = linear.totable(V)
  local pos = {}
  for i, nm in ipairs(names) do pos[nm] = i end
  local R, estimates = {}, {}
  for _, c in ipairs(tested) do
    estimates[c] = {}
    local base = pos[levels[1] .. ":" .. c]
    for gi, lv in ipairs(levels) do
      local p = pos[lv .. ":" .. c]
      if p == nil then error(string.format("%s: '%s' is collinear or absorbed in group %s = '%s'", F, c, opts.group, lv), 2) end
      estimates[c][lv] = { estimate = b[p], se = math.sqrt(Vt[p][p]) }
      if gi > 1 then R[#R + 1] = { [p] = 1, [base] = -1 } end
    end
  end
  local t = wald_rows(b, Vt, R, nil)
  local cov12
  if #levels == 2 and #tested == 1 then
    cov12 = Vt[pos[levels[1] .. ":" .. tested[1]]][pos[levels[2] .. ":" .. tested[1]]]
  end
  local fit = fitmod.new { names = names, b = b, V = Vt, nobs = N, estimator = "sur", dist = "normal",
    label = "Stacked by " .. opts.group, formula = formula,
    vcov_label = cl and string.format("clustered by %s (%d)", cl, vinfo.ngroups[1]) or "robust (HC0, N/(N-1))" }
  return { test = "sur", method = "stacked (SUR-style) Wald test" .. (cl and (", clustered by " .. cl) or ", robust"),
    group = opts.group, levels = levels, coef = tested, statistic = t.statistic, df1 = t.df1, pvalue = t.pvalue,
    kind = t.kind, difference = t.difference, covariance = cov12, estimates = estimates, fit = fit, nobs = N,
    nclusters = vinfo.ngroups[1] }
end

local GroupDiff = {}
GroupDiff.__index = GroupDiff
GroupDiff.__name = "spillover.group_diff"

--- All three tests (or those in opts.tests) with one call.
function M.group_diff(d, formula, opts)
  if type(opts) ~= "table" then error("group_diff: expected an options table {group=, coef=, ...}", 2) end
  local tests = as_list(opts.tests or { "chow", "permutation", "sur" })
  local out = setmetatable({ group = opts.group, formula = formula }, GroupDiff)
  for _, t in ipairs(tests) do
    local f = ({ chow = M.chow, permutation = M.permutation, sur = M.sur })[t]
    if not f then error("group_diff: unknown test '" .. tostring(t) .. "' (expected chow, permutation or sur)", 2) end
    out[t] = f(d, formula, opts)
    out[#out + 1] = out[t]
  end
  return out
end

function GroupDiff:__tostring()
  local lines = { string.format("Coefficient differences across %s: %s", self.group, self.formula) }
  local names = { chow = "Chow (fully interacted Wald)", permutation = "Fisher permutation", sur = "SUR (stacked Wald)" }
  for _, r in ipairs(self) do
    local name = pad(names[r.test], 30)
    if r.test == "permutation" then
      for _, x in ipairs(r.results) do
        lines[#lines + 1] = string.format("  %s %s: %s - %s = %.5g; empirical p = %.4f (two-sided %.4f), %d permutations",
          name, x.coef, r.levels[1], r.levels[2], x.difference, x.pvalue, x.pvalue_two_sided, r.done)
      end
    else
      local stat = r.df2 and string.format("F(%d, %s) = %.4f", r.df1, tostring(math.tointeger(r.df2) or r.df2), r.statistic)
        or string.format("chi2(%d) = %.4f", r.df1, r.statistic)
      lines[#lines + 1] = string.format("  %s %s: %s, p = %.4f", name, table.concat(r.coef, ", "), stat, r.pvalue)
    end
  end
  return table.concat(lines, "\n")
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

--- Register "mediation" with the scenario layer.  A model
---   {estimator: mediation, formula: "y ~ x + controls | fe", vcov: ...,
---    options: {m: [m1, m2], x: x (default: the first regressor), bootstrap:, seed:, level:}}
--- returns M.as_fit of the mediation result.
function M.register(scenario)
  scenario = scenario or require "spillover.scenario"
  scenario.register_estimator {
    name = "mediation",
    fit = function(d, spec, options)
      options = options or spec.options or {}
      local f = read_formula("mediation", spec.formula, 2)
      local y, x = f:response(), options.x or f:terms()[1]
      local controls, fe = {}, {}
      for _, t in ipairs(f.rhs) do if t.name ~= x then controls[#controls + 1] = formula_object.format_term(t) end end
      for j, t in ipairs(f.fe) do fe[j] = formula_object.format_term(t) end
      fe = #fe > 0 and fe or nil
      local res = M.mediation(d, { x = x, m = options.m, y = y, controls = controls, fe = fe, vcov = spec.vcov,
        compat = spec.compat, bootstrap = options.bootstrap, seed = options.seed, level = options.level,
        cluster = options.cluster })
      local fit = M.as_fit(res)
      fit.refit = function(_, newdata)
        local o = { x = x, m = options.m, y = y, controls = controls, fe = fe, vcov = spec.vcov, compat = spec.compat }
        return M.as_fit(M.mediation(newdata, o))
      end
      return fit
    end,
  }
end

M.quantile = quantile
return M
