-- spillover.heterogeneity: estimates by group (by) and tests that
-- coefficients differ across groups: the fully interacted Chow test, Fisher's
-- permutation test and the stacked SUR-style Wald test (group_diff runs them
-- together).  The regressions are sp.ols's; permutations refit point
-- estimates only.
local core = require "spillover.core"
local fitmod = require "spillover.fit"
local linear = require "spillover.linear"
local formula_object = require "spillover.formula"
local util = require "spillover.util"
local raise = util.raise
local common = require "spillover.mechanism_common"

local as_list, check_column, column_values, key_of = common.as_list, common.check_column, common.column_values,
  common.key_of
local message_of, read_formula = util.message, common.read_formula
local demeaned_design, solve_named = common.demeaned_design, common.solve_named
local rows_by_key = common.rows_by_key
local pad, panel_of = fitmod.pad, util.panel_of

local M = {}

-- ---- heterogeneity ----------------------------------------------------------------------

--- Rows by level of a grouping column: levels sorted (numbers numerically,
--- strings bytewise), rows in frame order; rows with a missing group are left out.
local function group_rows(d, group)
  local rows, levels = rows_by_key(d, group)
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
  check_column(F, d, group, "group")
  if type(fn) ~= "function" then raise(F .. ": argument 3 must be a function(sub, level) returning a fit") end
  local rows, levels = group_rows(d, group)
  if #levels == 0 then raise(F .. ": the group column '" .. group .. "' has no non-missing values") end
  local res = setmetatable({ group = group, levels = levels, fits = {}, nrows = {} }, By)
  for i, lv in ipairs(levels) do
    local sub = d:take(rows[lv])
    local ok, f = pcall(fn, sub, lv)
    if not ok then
      raise(string.format("%s: group %s = '%s' (%d rows): %s", F, group, lv, #rows[lv], message_of(f)))
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
  if t == nil then raise("the covariance of the tested differences is singular") end
  t.difference = dvec
  return t
end

--- Parse common options of the group tests.
local function group_setup(F, d, formula, opts)
  if type(opts) ~= "table" then raise(F .. ": expected an options table {group=, coef=, ...} as argument 3") end
  local f = read_formula(F, formula)
  check_column(F, d, opts.group, "group")
  local rows, levels = group_rows(d, opts.group)
  local sel = opts.groups
  if sel then
    if type(sel) ~= "table" or #sel < 2 then raise(F .. ": groups must list at least two levels of '" .. opts.group .. "'") end
    local keep = {}
    for i, lv in ipairs(sel) do
      local k = key_of(lv)
      if not rows[k] then
        raise(string.format("%s: groups[%d] = '%s' is not a level of '%s' (levels: %s)", F, i, tostring(lv), opts.group,
          table.concat(levels, ", ")))
      end
      keep[#keep + 1] = k
    end
    levels = keep
  end
  if #levels < 2 then
    raise(string.format("%s: the group column '%s' has %d level(s); a comparison needs at least 2", F, opts.group, #levels))
  end
  return f, rows, levels
end

local function coefs_to_test(F, names, coef)
  local out = {}
  if coef == nil then
    for _, nm in ipairs(names) do if nm ~= "(Intercept)" then out[#out + 1] = nm end end
  else
    for _, c in ipairs(as_list(coef)) do
      local found = false
      for _, nm in ipairs(names) do if nm == c then found = true end end
      if not found then
        raise(string.format("%s: coef '%s' is not a regressor of the formula (regressors: %s)", F, tostring(c),
          table.concat(names, ", ")))
      end
      out[#out + 1] = c
    end
  end
  if #out == 0 then raise(F .. ": no coefficient to compare") end
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
  local f, rows, levels = group_setup(F, d, formula, opts)
  local group = opts.group
  local all = subset_rows(rows, levels)
  local sub = d:take(all)
  local vc = linear.parse_vcov(opts.vcov)
  local compat = linear.check_compat(opts)
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
      raise(string.format("%s: group %s = '%s' has %d usable rows, too few for its %d coefficients", F, group, lv,
        count[gi] or 0, k))
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
  local tested = coefs_to_test(F, des.names, opts.coef)
  local R = {}
  local estimates = {}
  for _, c in ipairs(tested) do
    estimates[c] = {}
    local base = pos[group .. "::" .. levels[1] .. ":" .. c]
    for gi, lv in ipairs(levels) do
      local p = pos[group .. "::" .. lv .. ":" .. c]
      if p == nil then
        raise(string.format("%s: '%s' is collinear or absorbed in group %s = '%s'", F, c, group, lv))
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
    raise(string.format("%d usable rows are too few for %d coefficients and %d absorbed fixed-effect parameters",
      dd.n, dd.des.k, dd.fe_dof))
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
  local _, rows, levels = group_setup(F, d, formula, opts)
  if #levels ~= 2 then
    raise(string.format("%s: '%s' has %d levels (%s); choose two with groups = {\"a\", \"b\"}", F, opts.group, #levels,
      table.concat(levels, ", ")))
  end
  local reps = opts.reps or 1000
  if math.type(reps) ~= "integer" or reps < 1 then
    raise(F .. ": reps must be a whole number of permutations >= 1, got " .. tostring(reps))
  end
  local all, gl = subset_rows(rows, levels)
  local ref = core.design(d, formula, {})
  local coefs = coefs_to_test(F, ref.names, opts.coef)
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
        raise(string.format("%s: group %s = '%s' (%d rows): %s", F, opts.group, lv, #rows[lv], message_of(e2)))
      end
    end
    error(obs, 0)
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
  if done == 0 then raise(F .. ": every permutation failed to estimate (groups too small?)") end
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
  local _, rows, levels = group_setup(F, d, formula, opts)
  local vc = linear.parse_vcov(opts.vcov)
  local cl = opts.cluster or (vc.type == "cluster" and vc.cluster[1]) or nil
  if cl then check_column(F, d, cl, "cluster") end
  local pieces, K, N = {}, 0, 0
  local tested
  for gi, lv in ipairs(levels) do
    local sub = d:take(rows[lv])
    local ok, dd = pcall(demeaned_design, sub, formula, cl and { cl } or {})
    if not ok then
      raise(string.format("%s: group %s = '%s' (%d rows): %s", F, opts.group, lv, #rows[lv], message_of(dd)))
    end
    if dd.n <= dd.des.k + dd.fe_dof then
      raise(string.format("%s: group %s = '%s' has %d usable rows, too few for %d coefficients and %d absorbed fixed-effect parameters",
        F, opts.group, lv, dd.n, dd.des.k, dd.fe_dof))
    end
    tested = tested or coefs_to_test(F, dd.names, opts.coef)
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
      if p == nil then raise(string.format("%s: '%s' is collinear or absorbed in group %s = '%s'", F, c, opts.group, lv)) end
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
  if type(opts) ~= "table" then raise("group_diff: expected an options table {group=, coef=, ...}") end
  local tests = as_list(opts.tests or { "chow", "permutation", "sur" })
  local out = setmetatable({ group = opts.group, formula = formula }, GroupDiff)
  for _, t in ipairs(tests) do
    local f = ({ chow = M.chow, permutation = M.permutation, sur = M.sur })[t]
    if not f then raise("group_diff: unknown test '" .. tostring(t) .. "' (expected chow, permutation or sur)") end
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

return M
