-- spillover.ols: least squares with absorbed fixed effects (sp.ols), and the
-- estimation pipeline the other linear estimators share: outcome checks,
-- collinearity drops, joint tests, fit assembly, option checks.  Covariance
-- options and presets are in spillover.vcov_rules, what a fit computes after
-- estimation (fitted values, fixed effects, predictions) in spillover.predict.
local core = require "spillover.core"
local fitmod = require "spillover.fit"
local suggest = require "spillover.suggest"
local util = require "spillover.util"
local raise = util.raise
local F = require "spillover.formula"
local rules = require "spillover.vcov_rules"
local predict = require "spillover.predict"
local dist = core.dist

local M = {}

-- ---- the shared pipeline ---------------------------------------------------------

--- Column sums of squares of X (the reference scale for collinearity tests).
local function colsumsq(X)
  return core.sumsq(X)
end

--- Sum of (weighted) squares of a vector about its mean (w: a weight vector or nil).
local function sum_sq_centered(y, w)
  return core.sumsq(y, { center = true, weights = w })[1]
end

-- An outcome left with a sum of squares below this fraction of its raw one
-- (about its mean, or after absorbing the fixed effects) is constant: a
-- rounding remainder, not something to explain.  Demeaning on several fixed
-- effects is iterative (tolerance 1e-10 on the root mean square), so its
-- remainder can reach 1e-9 of the outcome's size; one mean leaves about 1e-16.
local CONSTANT_REL = { mean = 1e-26, fe = 1e-18 }
M.CONSTANT_REL = CONSTANT_REL

--- Refuse a constant outcome, as fixest does ("the dependent variable is a
--- constant"): every coefficient would be rounding noise with p-values near 0.
--- left: its sum of squares about the mean, or after a transformation (fixed
--- effects absorbed, first differences); raw: its uncentred sum of squares;
--- within: nil, or what the transformation removed, for the message.
local function check_outcome(who, yname, left, raw, within)
  if not (raw < math.huge) then return end  -- its squares overflow: sp.lsfit says so, naming it
  if not (left > (within and CONSTANT_REL.fe or CONSTANT_REL.mean) * raw) then
    raise(string.format("%s: outcome '%s' is constant%s; nothing to estimate", who, yname,
      within and (" (within " .. within .. ")") or ""))
  end
end

--- A perfect fit (residual sum of squares 0 to rounding, the outcome not
--- constant) leaves no residual variance: the covariance becomes NaN (tables
--- print NA for standard errors, tests and p-values) and a note says why, the
--- way R's summary.lm warns of an "essentially perfect fit".
function M.perfect_fit(ssr, raw, fe)
  return not (ssr > (fe and CONSTANT_REL.fe or CONSTANT_REL.mean) * raw)
end
M.PERFECT_FIT_NOTE = "perfect fit: the residuals are zero, so standard errors, tests and p-values are undefined (NA)"

--- The k x k covariance of a perfect fit.
function M.nan_matrix(k)
  return core.matrix(k, k, 0 / 0)
end

M.check_outcome = check_outcome

--- Squared correlation of two n x 1 matrices (centred cross-products in C).
local cor2 = core.cor2
M.cor2 = cor2

--- The positions of the kept columns (flags in keep), shifted by offset, and
--- position 1 first when with_first (the y of a [y X] source).
local function kept_positions(keep, offset, with_first)
  local pos = with_first and { 1 } or {}
  for j, k in ipairs(keep) do
    if k then pos[#pos + 1] = j + offset end
  end
  return pos
end

--- Keep the columns flagged in keep (a new matrix when some are dropped).
local function kept_columns(X, keep)
  local cols, all = {}, true
  for j, k in ipairs(keep) do
    if k then cols[#cols + 1] = j else all = false end
  end
  if all then return X end
  local parts = {}
  for i, j in ipairs(cols) do parts[i] = X:col(j) end
  return core.matrix.hcat(table.unpack(parts))
end

--- Wald F / chi2 test that all listed coefficients are zero.
function M.joint_test(b, V, idx, df2, use_chi2)
  local q = #idx
  if q == 0 then return nil end
  local A, rhs = {}, {}
  for a = 1, q do
    A[a] = {}
    for c = 1, q do A[a][c] = V[idx[a]][idx[c]] end
    rhs[a] = b[idx[a]]
  end
  local ok, xm = pcall(function() return core.matrix(A):solve(core.matrix(rhs)) end)
  if not ok then return nil end  -- singular: no joint test
  local x = xm:totable()
  local chi2 = 0
  for a = 1, q do chi2 = chi2 + b[idx[a]] * x[a] end
  if use_chi2 then
    return { statistic = chi2, df1 = q, pvalue = dist.pchisq(chi2, q, true), kind = "Wald chi2" }
  end
  return { statistic = chi2 / q, df1 = q, df2 = df2, pvalue = dist.pf(chi2 / q, q, df2, true), kind = "F" }
end

local totable = util.rows
M.totable = totable

--- Build the public fit from the pieces: names (all, in formula order), the
--- lsfit result, V over the kept columns.
function M.assemble(spec)
  local names, keep = spec.names, spec.keep
  local b_all, kept_names, b = spec.b, {}, {}
  local idx = {}
  for j, k in ipairs(keep) do
    if k then
      kept_names[#kept_names + 1] = names[j]
      b[#b + 1] = b_all[j]
      idx[#idx + 1] = j
    end
  end
  local f = fitmod.new {
    names = kept_names, b = b, V = spec.V, nobs = spec.nobs, df_resid = spec.df_resid, dist = spec.dist,
    stats = spec.stats, estimator = spec.estimator, label = spec.label, formula = spec.formula,
    vcov_label = spec.vcov_label, vcov_type = spec.vcov_type, fe = spec.fe, notes = spec.notes,
    resid_values = spec.resid, fitted_values = spec.fitted, predict_fn = spec.predict,
    fixef_values = spec.fixef, dropped = spec.dropped, compat = spec.compat, extra = spec.extra,
    private = spec.private,
  }
  return f
end

-- ---- shared preparation ------------------------------------------------------------

--- Variables the estimator needs besides the formula's: clusters, DK time, weights.
local function extra_vars(d, vc, opts)
  local extra = {}
  local names = d.names and d:names() or nil
  local function known(name, what)
    if names == nil then return end
    for _, nm in ipairs(names) do if nm == name then return end end
    raise(string.format("%s: unknown %s variable '%s'%s", what == "weight" and "weights" or "vcov", what,
      tostring(name), suggest.did_you_mean(tostring(name), names)))
  end
  if vc.type == "cluster" then
    for _, name in ipairs(vc.cluster) do
      known(name, "cluster")
      extra[#extra + 1] = name
    end
  elseif vc.type == "driscoll_kraay" then
    local info = util.panel_of(d)
    if not info then
      raise("vcov: Driscoll-Kraay needs a panel index: call d:panel{entity=, time=} first")
    end
    extra[#extra + 1] = info.time
  elseif vc.type == "newey_west" and vc.time then
    known(vc.time, "time")
    extra[#extra + 1] = vc.time
  end
  if opts.weights then
    if type(opts.weights) ~= "string" then
      raise("weights: expected the name of a column, got a " .. type(opts.weights))
    end
    known(opts.weights, "weight")
    extra[#extra + 1] = opts.weights
  end
  return extra
end
M.extra_vars = extra_vars

--- Refuse options that are not a table or carry an unknown key: a typo such as
--- {vcv = "hc1"} would otherwise be ignored and print iid standard errors.
--- allowed: an array of the option names the estimator reads; the wording
--- of unknown keys is util.check_options' (with its did-you-mean).  Options
--- are argument 3 of every estimator that calls this.
local function check_options(opts, allowed, who)
  if opts ~= nil and type(opts) ~= "table" then
    raise(string.format("%s: expected an options table as argument 3, got %s", who, type(opts)))
  end
  local checked = util.check_options(opts, allowed, who)
  return checked  -- not a tail call: level counts this function
end
M.check_options = check_options

--- The options sp.ols (and 2SLS through it) reads.
M.ols_options = { "vcov", "compat", "weights", "tol", "maxiter", "threads", "singletons", "small" }

-- ---- OLS with absorbed fixed effects -------------------------------------------

--- sp.ols(d, "y ~ x1 + x2 | fe1 + fe2", {vcov=, compat=, weights=, tol=, maxiter=, threads=})
function M.ols(d, formula, opts)
  if F.is_formula(formula) then formula = formula:format() end
  if type(formula) ~= "string" then raise("ols: expected a formula string as argument 2") end
  opts = check_options(opts, M.ols_options, "ols")
  local compat = rules.check_compat(opts)
  local vc = rules.parse_vcov(opts.vcov, true)
  local extra = extra_vars(d, vc, opts)
  if opts.threads ~= nil and opts.threads ~= 1 and opts.threads ~= 2 then
    raise(string.format("ols: option 'threads' must be 1 or 2, got %s", tostring(opts.threads)))
  end
  local des = core.design_deferred(d, formula, { extra = extra, threads = opts.threads })
  if opts.singletons == "drop" and #des.fe > 0 then
    -- Drop observations alone in a level of some fixed effect (as reghdfe and
    -- fixest's fixef.rm = "singleton"): they are fitted perfectly and only
    -- bias the degrees of freedom.  Re-estimate on the remaining rows.
    local single = core.absorb(des):singletons()
    if #single > 0 then
      local drop, rows = {}, {}
      for _, i in ipairs(single) do drop[i] = true end
      for i, r in ipairs(des.rows) do if not drop[i] then rows[#rows + 1] = r end end
      local sub = {}
      for k, v in pairs(opts) do sub[k] = v end
      sub.singletons = nil
      local f = M.ols(d:take(rows), formula, sub)
      f.stats.singletons = #single
      f.notes[#f.notes + 1] = string.format("%d singleton observation%s dropped", #single, #single == 1 and "" or "s")
      return f
    end
  elseif opts.singletons ~= nil and opts.singletons ~= "keep" and opts.singletons ~= "drop" then
    raise("ols: singletons must be \"keep\" (default) or \"drop\"")
  end
  if des.endog_names and #des.endog_names > 0 then
    return M.ivreg(d, formula, opts, des)
  end
  if opts.small ~= nil then
    raise("ols: 'small' is an option of 2SLS fits (Stata's ivregress without small); OLS keeps the " ..
      "small-sample corrections of its compat preset")
  end
  return M.fit_design(d, des, formula, opts, compat, vc, extra, true)
end

--- Blocks [y X] of at least this many bytes are read from the frame instead
--- of stored (fit_design); internal, tests set it to 0.  Reading from the
--- frame is as fast as the stored block from about 1e5 rows and faster
--- from 1e6 (bench/fe/README.md); below 16 MB the block is small enough
--- that keeping it costs little memory.
M.ROWS_MIN_BYTES = 16e6

--- The OLS/within core on a built design (shared with user estimators and
--- refits).  With fixed effects, the block [y X] (des.yX) is demeaned in one
--- sweep; the fit keeps des (fit.private.design) as built, for fitted values,
--- the overall R2, fixed effects and predictions.  `extra` are the extra
--- variables the design was built with.  `owned`: des was built for this fit
--- alone (sp.ols, core.design_deferred).  Then, when its columns are plain
--- columns of d and the block would take at least M.ROWS_MIN_BYTES, it is
--- never stored: the demeaning solves for the
--- fixed effects from d's columns (absorb:solve), and the sums of squares,
--- least squares and the covariance read the rows minus the effects as they
--- go (core.design_rows, absorb:within), the same bits a demeaned block
--- would give; at 1e7 rows and two regressors, 240 MB neither allocated nor
--- faulted in, and des.y, des.X are filled only if something reads them.
--- Otherwise an owned block is demeaned in place and re-read from d once the
--- demeaned one is no longer needed (core.design_refill).  A caller's own
--- design is never modified.
function M.fit_design(d, des, formula, opts, compat, vc, extra, owned)
  local n, k = des.n, des.k
  local names = des.names
  local w = opts.weights and des:values(opts.weights) or nil
  local nfe = #des.fe
  local notes = {}
  for _, note in ipairs(des.notes or {}) do notes[#notes + 1] = note end

  -- Sums of squares of the untransformed outcome, before it is demeaned.
  local has_const = des.intercept and nfe == 0
  if w and w:sum() == 0 then
    raise(string.format("ols: the weights '%s' are all zero; nothing to estimate", opts.weights))
  end
  -- Reading the rows from the frame saves the block's memory; each pass
  -- reads the frame's columns and subtracts the effects as it goes, which
  -- costs no more time than reading a stored block.  The Conley covariance
  -- reads X as a matrix.
  local rows = owned and nfe > 0 and vc.type ~= "conley" and n * (k + 1) * 8 >= M.ROWS_MIN_BYTES
    and core.design_rows(des, d) or nil
  -- One sweep over the block [y X]: y's sums of squares about its mean and
  -- about 0, and X's about 0 (the reference scale of the collinearity test
  -- once the fixed effects are absorbed); then one over y about its mean.
  local ss, ss_raw = core.sumsq(rows or des.yX, { center = 1, weights = w, threads = opts.threads })
  local tss, yraw = ss[1], ss_raw[1]
  if has_const then check_outcome("ols", des.yname, tss, yraw, nil) end
  local tss0 = (not has_const and nfe == 0) and yraw or nil
  local y, X, absorb, fe_dof, scale = nil, nil, nil, 0, nil
  local demean_info, in_place, within
  if nfe > 0 then
    absorb = core.absorb(des, { weights = w, threads = opts.threads })
    fe_dof = absorb:dof()
    scale = { table.unpack(ss_raw, 2, k + 1) }
    local dopts = { tol = opts.tol, maxiter = opts.maxiter, threads = opts.threads, allow_nonconvergence = true }
    if rows then
      demean_info = absorb:solve(rows, dopts)
      within = absorb:within(rows)
    else
      in_place = owned and core.design_refill(des, d, true)
      local yX = in_place and des.yX or des.yX:copy()
      demean_info = absorb:demean(yX, dopts)
      y, X = yX:view(1, 1, n, 1), k > 0 and yX:view(1, 2, n, k) or nil
    end
    if demean_info.warning then notes[#notes + 1] = demean_info.warning end
  else
    y, X = des.y, des.X
  end
  if n <= k + fe_dof then
    raise(string.format("ols: %d observations are too few for %d coefficients and %d absorbed fixed-effect parameters",
      n, k, fe_dof))
  end
  local f
  local lsopts = { weights = w, scale = scale and core.matrix(scale) or nil, names = names, yname = des.yname,
    threads = opts.threads }
  if within then
    -- Column 1 is y.  The residuals are not stored: f.eX gives the rows
    -- [e Xk], which the covariance reads in its one pass, summing e'e there
    -- (the same bits as lsfit's own pass).
    lsopts.resid = false
    f = core.lsfit(within, lsopts)
    -- No regressor: the residuals are y, and its sum of squares is taken as
    -- the stored block's is below (the same bits either way).
    if k == 0 then f.yss = core.sumsq(within, { weights = w })[1]; f.ssr = f.yss end
  elseif k > 0 then
    f = core.lsfit(X, y, lsopts)
  else
    local yss = core.sumsq(y, { weights = w })[1]
    f = { b = core.matrix(0, 1), keep = {}, rank = 0, resid = y:copy(), bread = core.matrix(0, 0),
      ssr = yss, yss = yss }
  end
  -- the demeaned outcome's sum of squares, from the fit's own pass over it
  local tssw = nfe > 0 and f.yss or nil
  if nfe > 0 then check_outcome("ols", des.yname, tssw, yraw, "the fixed effects") end
  local dropped = {}
  for j, kept in ipairs(f.keep) do
    if not kept then
      dropped[#dropped + 1] = names[j]
      local absorbed = nfe > 0 and scale[j] > 0 and true
      notes[#notes + 1] = string.format("'%s' dropped: %s", names[j],
        absorbed and "collinear with other regressors or absorbed by the fixed effects" or "collinear with other regressors")
    end
  end
  if k > 0 and f.rank == 0 then
    raise("ols: every regressor is collinear or absorbed by the fixed effects (" .. table.concat(names, ", ") .. ")")
  end
  local rank = f.rank
  local df_resid = n - rank - fe_dof
  local ctx = rules.vcov_context(d, des, compat, vc, absorb, fe_dof, w)
  ctx.threads = opts.threads
  local V, vinfo, vlabel
  if rank > 0 and within then
    V, vinfo, vlabel = rules.covariance(f.eX, nil, f.bread, ctx)
    f.ssr = vinfo.ssr
  elseif rank > 0 then
    V, vinfo, vlabel = rules.covariance(kept_columns(X, f.keep), f.resid, f.bread, ctx)
  else
    V, vinfo, vlabel = core.matrix(0, 0), { df_t = df_resid, ngroups = {} }, "iid"
  end
  -- The demeaned y and X are not used past this point (f.resid is a copy):
  -- the design gets its own columns back.
  if in_place then core.design_refill(des, d) end
  local perfect = M.perfect_fit(f.ssr, yraw, nfe > 0)
  if perfect then
    V = M.nan_matrix(rank)
    notes[#notes + 1] = M.PERFECT_FIT_NOTE
  end

  -- Statistics.
  local ssr = f.ssr
  local stats = { nobs = n, ssr = ssr, df_resid = df_resid, rank = rank, sigma = math.sqrt(ssr / df_resid) }
  stats.r2 = (has_const or nfe > 0) and 1 - ssr / tss or nil
  if tss0 then stats.r2 = 1 - ssr / tss0 end  -- uncentered R2, as R reports without an intercept
  stats.adj_r2 = 1 - (1 - stats.r2) * (n - (has_const and 1 or (nfe > 0 and 1 or 0))) / df_resid
  if nfe > 0 then
    stats.tss_within = tssw
    stats.r2_within = 1 - ssr / tssw
    stats.adj_r2_within = 1 - (1 - stats.r2_within) * (n - 1) / df_resid
  end
  stats.loglik = -n / 2 * (math.log(2 * math.pi) + math.log(ssr / n) + 1)

  local b_kept = {}
  for j, kept in ipairs(f.keep) do if kept then b_kept[#b_kept + 1] = f.b:get(j, 1) end end
  local Vt = totable(V)
  local kept_names = {}
  for j, kept in ipairs(f.keep) do if kept then kept_names[#kept_names + 1] = names[j] end end
  -- Degrees of freedom for t tests: G - 1 (T - 1) where the preset says so
  -- (stata, fixest, statsmodels clusters), else the residual df.
  local df_t = rules.t_df(vc, compat, vinfo, df_resid)
  stats.df_t = df_t
  stats.vcov_dof_factor = vinfo.dof_factor
  -- Joint test of the slopes: classic F for sandwich (as summary.lm), else
  -- the Wald test with the covariance used, df2 = G - 1 under clusters.
  local slope_idx = {}
  for i, nm in ipairs(kept_names) do if nm ~= "(Intercept)" then slope_idx[#slope_idx + 1] = i end end
  if perfect then
    stats.F = nil
  elseif compat == "sandwich" or compat == "statsmodels" or vc.type == "iid" then
    local q = #slope_idx
    if q > 0 and has_const then
      local Fs = ((tss - ssr) / q) / (ssr / df_resid)
      stats.F = { statistic = Fs, df1 = q, df2 = df_resid, pvalue = dist.pf(Fs, q, df_resid, true), kind = "F" }
    else
      stats.F = M.joint_test(b_kept, Vt, slope_idx, df_resid)
    end
  else
    stats.F = M.joint_test(b_kept, Vt, slope_idx, rules.wald_df2(vc, vinfo, df_resid))
  end
  -- Stata xtreg, fe definitions of the overall and between R2 (one factor).
  if nfe == 1 and rank > 0 then
    -- x'b formed row by row in C (no n x 1 temporary at 1e7 rows), and the
    -- entity means of x'b as the entity means of X times b.  Unweighted,
    -- those entity means are the demeaning's one-factor coefficients, from
    -- its own pass over the rows; weighted, they are the plain means still.
    local bk = core.matrix(b_kept)
    local my, mX
    if not w then
      local m = absorb:coef(1)  -- levels x [y X]
      local L = m:nrow()
      my, mX = m:view(1, 1, L, 1), k > 0 and kept_columns(m:view(1, 2, L, k), f.keep) or nil
    end
    if rows then
      local raw = rows:select(kept_positions(f.keep, 1, true))  -- [y Xk] as read from d
      stats.r2_overall_corr = cor2(raw, bk, { threads = opts.threads })
      if w then
        local m = absorb:means(1, raw)
        local L = m:nrow()
        my, mX = m:view(1, 1, L, 1), m:view(1, 2, L, rank)
      end
    else
      local y0, Xk = des.y, kept_columns(des.X, f.keep)
      stats.r2_overall_corr = cor2(y0, Xk, bk)
      if w then my, mX = absorb:means(1, y0), absorb:means(1, Xk) end
    end
    stats.r2_between_corr = cor2(my, mX * bk)
  end

  local fe_info = {}
  for j, fe in ipairs(des.fe) do fe_info[j] = { name = fe.name, nlevels = fe.nlevels } end
  if nfe > 0 then
    stats.fe_dof = fe_dof
  end
  if vc.type == "cluster" then stats.n_clusters = rules.n_clusters(vinfo) end
  notes[#notes + 1] = rules.few_clusters_note(vc, vinfo)
  local pinfo = util.panel_of(d)
  if pinfo then stats.n_entities, stats.n_periods = pinfo.N, pinfo.T end

  local fit = M.assemble {
    names = names, keep = f.keep, b = f.b:totable(), V = V, nobs = n, df_resid = df_t,
    dist = (compat == "statsmodels" and vc.type ~= "iid") and "normal" or "t", stats = stats, estimator = nfe > 0 and "within" or "ols",
    label = nfe > 0 and "OLS with fixed effects" or "OLS", formula = formula, vcov_label = vlabel,
    vcov_type = vc.type, fe = fe_info, notes = notes, dropped = dropped, compat = compat,
    resid = f.resid, private = { design = des, design_extra = extra, data = d, absorb = absorb, weights = w },
  }
  -- From rows, the residuals are stored only if something reads them.
  if f.eX then fitmod.defer(fit, "resid_values", function() return f.eX:column(1) end) end
  -- fitted = y - e (levels, fixed effects included)
  fit.fitted_values = function(self) return self.private.design.y - self.resid_values end
  fit.fixef_values = function(self) return predict.fixef(self) end
  fit.predict_fn = predict.predict_linear
  fit.predict_matrix = predict.predict_matrix
  -- Refit on resampled data (bootstrap) with the same specification (and
  -- the wild bootstrap's cluster-robust V without its replications).
  local refit_opts = opts
  if vc.wild then
    refit_opts = {}
    for k, v in pairs(opts) do refit_opts[k] = v end
    refit_opts.vcov = { cluster = vc.cluster[1] }
  end
  fit.refit = function(_, newdata) return M.ols(newdata, formula, refit_opts) end
  if vc.wild then require("spillover.wildboot").attach(fit, vc.wild) end
  return fit
end

--- 2SLS lives in spillover.iv; sp.ols dispatches there for `| endog ~ z`.
function M.ivreg(...)
  return require("spillover.iv").fit(...)
end

M.kept_columns = kept_columns
M.colsumsq = colsumsq
M.sum_sq_centered = sum_sq_centered

return M
