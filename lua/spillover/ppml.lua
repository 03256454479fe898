-- spillover.ppml: Poisson pseudo-maximum likelihood with high-dimensional
-- fixed effects (docs/estimators/ppml.md).
--
--   sp.ppml(d, "y ~ x1 + x2 | fe1 + fe2", {vcov =, tol =, maxiter =, separation =, weights =})
--
-- E[y | x, fe] = exp(x'b + a_fe1 + g_fe2 + ...), for counts or any y >= 0
-- (Santos Silva & Tenreyro 2006).  Estimated as ppmlhdfe and fixest's fepois
-- do: iteratively reweighted least squares whose weighted regressions absorb
-- the fixed effects (sp.absorb) instead of estimating their dummies.  Before
-- that, observations for which the MLE would not exist are dropped
-- (separation; Correia, Guimaraes & Zylkin 2021): those in a fixed-effect
-- level whose outcomes are all zero, and those a combination of regressors
-- and fixed effects separates (the ReLU test).  The covariance follows
-- fixest's fepois conventions (the "fixest" preset of docs/api/vcov.md).
local core = require "spillover.core"
local util = require "spillover.util"
local fitmod = require "spillover.fit"
local F = require "spillover.formula"
local rules = require "spillover.vcov_rules"
local ols = require "spillover.ols"
local raise = util.raise
local matrix = core.matrix

local M = {}

local OPTIONS = { "vcov", "tol", "maxiter", "separation", "weights" }
local SEPARATION = { fe = true, relu = true, both = true, none = true }
-- The covariances a Poisson fit takes: hc2/hc3 would need GLM leverages and
-- Driscoll-Kraay has no fepois counterpart to check it against.
local VCOV_KINDS = { iid = true, hc0 = true, hc1 = true, cluster = true }

-- log Gamma(x) for x > 0, for the log y! of the Poisson log likelihood
-- (non-integer outcomes too): Stirling's series from x >= 15, where the first
-- omitted term is below 1e-13, and lgamma(x) = lgamma(x + m) - log(x (x + 1)
-- ... (x + m - 1)) below.
local HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
local function lgamma(x)
  local shift = 0
  while x < 15 do
    shift = shift + math.log(x)
    x = x + 1
  end
  local r2 = 1 / (x * x)
  local series = (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 / 1680))) / x
  return (x - 0.5) * math.log(x) - x + HALF_LOG_2PI + series - shift
end

-- The keys of fixed effect `name` (a variable, or a combination "a^b") at the
-- frame rows `rows`; false where a value is missing.  A column is read once
-- (frame[var] builds it afresh on every access).
local function fe_keys(frame, name, rows)
  local cols = {}
  for var in name:gmatch("[^%^]+") do cols[#cols + 1] = frame[var] end
  local keys = {}
  for i, r in ipairs(rows) do
    local parts = {}
    for j, col in ipairs(cols) do
      local v = col[r]
      parts[j] = not (type(v) == "number" and v ~= v) and util.key_of(v) or nil
    end
    keys[i] = #parts == #cols and table.concat(parts, "^")
  end
  return keys
end

-- Integer codes 1..L over the rows used, in order of first appearance, and
-- the map key -> code that predictions on other frames look levels up in
-- (sp.absorb numbers levels in sorted order of these codes, so its fixef
-- vectors are indexed by them).
local function level_codes(frame, name, rows)
  local codes, level, nlevels = {}, {}, 0
  for i, k in ipairs(fe_keys(frame, name, rows)) do
    if level[k] == nil then
      nlevels = nlevels + 1
      level[k] = nlevels
    end
    codes[i] = level[k]
  end
  return codes, level
end

-- sp.absorb:fixef's vectors as Lua arrays (the row loops index them).
local function arrays(vectors)
  local t = {}
  for j, v in ipairs(vectors) do t[j] = v:totable() end
  return t
end

-- The columns of X whose `keep` flag is set.
local function kept(X, keep)
  local cols = {}
  for j, on in ipairs(keep) do if on then cols[#cols + 1] = X:col(j) end end
  return #cols == X:ncol() and X or matrix.hcat(table.unpack(cols))
end

-- ---- separation --------------------------------------------------------------------

-- Rows (1-based, of the design) in a fixed-effect level whose outcomes are all
-- zero: that level's effect is minus infinity.  Repeated, as in ppmlhdfe,
-- since dropping rows for one fixed effect can empty a level of another.
local function zero_levels(y, codes, keep)
  local dropped = {}
  repeat
    local more = false
    for _, c in ipairs(codes) do
      local sum = {}
      for i, on in ipairs(keep) do
        if on then sum[c[i]] = (sum[c[i]] or 0) + y[i] end
      end
      for i, on in ipairs(keep) do
        if on and sum[c[i]] == 0 then keep[i], more = false, true; dropped[#dropped + 1] = i end
      end
    end
  until not more
  return dropped
end

-- The ReLU test of Correia, Guimaraes & Zylkin (2021, section 4.3): the rows
-- with y = 0 at which some z = X g + fixed effects is > 0, with z = 0 where
-- y > 0 and z >= 0 where y = 0, are separated (the likelihood rises without
-- bound along z).  Iterate: regress u on X and the fixed effects by least
-- squares with weight RELU_K on the rows with y > 0 (so the fit is 0 there)
-- and 1 elsewhere; when the fitted values are >= 0 on every row with y = 0
-- (values within RELU_TOL of 0 count as 0), those > 0 are the separated
-- rows; otherwise u = max(fit, 0) on those rows and repeat.  u starts at
-- 1(y = 0).  Returns the separated rows among `rows` (indices into y), or nil
-- when RELU_MAXITER iterations do not settle.
local RELU_K, RELU_TOL, RELU_MAXITER = 1e8, 1e-5, 1000
local function relu_separated(y, X, codes, rows)
  local n, k = #rows, X:ncol()
  local yr, w, u, nzero = {}, matrix(n, 1, 1), matrix(n, 1, 0), 0
  for i, r in ipairs(rows) do
    yr[i] = y[r]
    if yr[i] > 0 then w[i] = RELU_K else u[i], nzero = 1, nzero + 1 end
  end
  if nzero == 0 then return {} end
  local Xs = matrix(n, k, 0)
  for i, r in ipairs(rows) do for j = 1, k do Xs:set(i, j, X:get(r, j)) end end
  local sub = {}
  for j, c in ipairs(codes) do
    sub[j] = {}
    for i, r in ipairs(rows) do sub[j][i] = c[r] end
  end
  local absorb = #sub > 0 and core.absorb(sub, { weights = w }) or nil
  local scale = matrix(core.sumsq(Xs, { weights = w }))
  if absorb then absorb:demean(Xs) end      -- the weights never change: X once, u each time
  for _ = 1, RELU_MAXITER do
    local ut = u:copy()
    if absorb then absorb:demean(ut) end
    local fitted = u - core.lsfit(Xs, ut, { weights = w, scale = scale }).resid
    local negative = false
    for i = 1, n do
      local z = fitted[i]
      if yr[i] == 0 then
        if z < -RELU_TOL then negative = true end
        u[i] = math.max(z, 0)
      end
    end
    if not negative then
      local sep = {}
      for i = 1, n do if yr[i] == 0 and fitted[i] > RELU_TOL then sep[#sep + 1] = rows[i] end end
      return sep
    end
  end
  return nil
end

-- ---- the estimator -------------------------------------------------------------------

local ppml

-- The design of formula on d, with the fixed effects' codes and level maps,
-- the weights and the outcome checked.
local function build(d, formula, extra, opts)
  local des = core.design(d, formula, { extra = extra })
  if des.endog_names and #des.endog_names > 0 then
    raise("ppml: instrumental variables are not supported (the formula has an IV part)")
  end
  if des.k == 0 then raise("ppml: the formula has no regressor to estimate") end
  local y = des.y
  for i = 1, des.n do
    if y[i] < 0 then
      raise(string.format("ppml: %s = %g in row %d is negative (expected counts or other values >= 0)",
        des.yname, y[i], des.rows[i]))
    end
  end
  local w = opts.weights and des:values(opts.weights) or nil
  if w then
    for i = 1, des.n do
      if w[i] <= 0 then
        raise(string.format("ppml: the weight %s = %g in row %d is not positive", opts.weights, w[i], des.rows[i]))
      end
    end
  end
  local codes, levels = {}, {}
  for j, fe in ipairs(des.fe) do codes[j], levels[j] = level_codes(d, fe.name, des.rows) end
  return des, codes, levels, w
end

-- IRLS from the usual start (mu halfway between y and its mean).  Returns
-- eta, mu, the last least-squares fit, the deviance and the iterations.
-- Deviance D = 2 sum w (y log(y / mu) - (y - mu)), written with the constant
-- sum w y log y so that y = 0 needs no special case.
local function irls(des, codes, w, tol, maxiter, hint)
  local y, X, n, k = des.y, des.X, des.n, des.k
  local wy = w and y:mul(w) or y
  local ysum = wy:sum()
  local ylogy = 0
  for i = 1, n do if y[i] > 0 then ylogy = ylogy + (w and w[i] or 1) * y[i] * math.log(y[i]) end end
  local function deviance(eta, mu)
    return 2 * (ylogy - wy:crossprod(eta):get(1, 1) - ysum + (w and mu:mul(w) or mu):sum())
  end
  local mu = (y + ysum / (w and w:sum() or n)) / 2
  local eta = mu:log()
  local dev = deviance(eta, mu)
  for iter = 1, maxiter do
    local z = eta + (y - mu):div(mu)          -- the working response
    local ww = w and mu:mul(w) or mu
    local B = matrix.hcat(z, X)               -- X itself stays as built
    if #codes > 0 then core.absorb(codes, { weights = ww }):demean(B) end
    local ls = core.lsfit(B:view(1, 2, n, k), B:col(1), { weights = ww, names = des.names, yname = des.yname,
      scale = matrix(core.sumsq(X, { weights = ww })) })
    eta = z - ls.resid                        -- x'b + the fixed effects
    mu = eta:exp()
    local new = deviance(eta, mu)
    if new ~= new or new == math.huge then
      raise(string.format("ppml: the deviance is not finite at iteration %d (an outcome too large for exp, " ..
        "or separated observations kept with separation = \"none\" or \"fe\")", iter))
    end
    local change = math.abs(new - dev) / (0.1 + math.abs(new))
    dev = new
    if change < tol then return eta, mu, ls, dev, iter end
  end
  raise(string.format("ppml: IRLS did not converge in %d iterations (raise maxiter or tol%s)", maxiter, hint),
    { code = "did not converge" })
end

-- The Poisson log likelihood sum w (y log mu - mu - log y!).
local function loglik(y, mu, w)
  local ll = 0
  for i = 1, y:nrow() do
    local v = y[i]
    ll = ll + (w and w[i] or 1) * ((v > 0 and v * math.log(mu[i]) or 0) - mu[i] - lgamma(v + 1))
  end
  return ll
end

--- sp.ppml(d, formula, opts): the fit (docs/estimators/ppml.md).
ppml = function(d, formula, opts)
  if F.is_formula(formula) then formula = formula:format() end
  if type(formula) ~= "string" then raise("ppml: expected a formula string as argument 2") end
  opts = ols.check_options(opts, OPTIONS, "ppml")
  local tol, maxiter = opts.tol or 1e-10, opts.maxiter or 100
  if type(tol) ~= "number" or not (tol > 0 and tol < 1) then raise("ppml: tol must be a number in (0, 1)") end
  if math.type(maxiter) ~= "integer" or maxiter < 1 then raise("ppml: maxiter must be an integer >= 1") end
  local separation = opts.separation or "both"
  if not SEPARATION[separation] then
    raise("ppml: separation must be \"both\" (the default), \"fe\", \"relu\" or \"none\", got " .. tostring(separation))
  end
  local vcov_opt = opts.vcov
  local vc = rules.parse_vcov(vcov_opt)
  if vcov_opt == nil then vc = { type = "hc1" } end   -- replaced below by the first fixed effect when there is one
  if not VCOV_KINDS[vc.type] then
    raise("ppml: vcov must be \"iid\", \"hc0\", \"hc1\" or {cluster = ...}, got " .. tostring(rules.kind(vcov_opt)))
  end
  local extra = ols.extra_vars(d, vc, opts)
  local des, codes, levels, w = build(d, formula, extra, opts)
  if vcov_opt == nil and #des.fe > 0 then
    -- fixest's fepois default: clustered by the first fixed effect
    vc = { type = "cluster", cluster = { des.fe[1].name } }
  end
  local notes = {}
  for _, note in ipairs(des.notes) do notes[#notes + 1] = note end

  -- 1. Separation: find the rows to drop, then rebuild on the rest.
  local keep, drop_fe, drop_relu = {}, {}, {}
  for i = 1, des.n do keep[i] = true end
  if (separation == "fe" or separation == "both") and #codes > 0 then drop_fe = zero_levels(des.y, codes, keep) end
  if separation == "relu" or separation == "both" then
    local rows = {}
    for i, on in ipairs(keep) do if on then rows[#rows + 1] = i end end
    local sep = relu_separated(des.y, des.X, codes, rows)
    if sep == nil then
      notes[#notes + 1] = string.format("the ReLU separation test did not settle in %d iterations; " ..
        "no observation dropped by it", RELU_MAXITER)
    else
      drop_relu = sep
      for _, i in ipairs(sep) do keep[i] = false end
    end
  end
  local nsep = #drop_fe + #drop_relu
  if #drop_fe > 0 then
    notes[#notes + 1] = string.format("%d observation%s dropped: separated (their fixed-effect level has only " ..
      "zero outcomes)", #drop_fe, #drop_fe == 1 and "" or "s")
  end
  if #drop_relu > 0 then
    notes[#notes + 1] = string.format("%d observation%s dropped: separated by the regressors%s (ReLU test)",
      #drop_relu, #drop_relu == 1 and "" or "s", #codes > 0 and " and fixed effects" or "")
  end
  local data = d
  if nsep > 0 then
    local rows = {}
    for i, r in ipairs(des.rows) do if keep[i] then rows[#rows + 1] = r end end
    if #rows == 0 then raise("ppml: every observation is separated (all outcomes are zero?); nothing to estimate") end
    data = d:take(rows)
    des, codes, levels, w = build(data, formula, extra, opts)
  end

  -- 2. IRLS.
  local y, X, n = des.y, des.X, des.n
  local eta, mu, ls, dev, iter = irls(des, codes, w, tol, maxiter, (separation == "none" or separation == "fe")
    and "; or the estimates diverge: separation = \"both\" drops the separated observations" or "")
  local nfe = #codes

  -- 3. Coefficients (collinear columns dropped), and the covariance: the
  -- bread (X~' W X~)^-1 with X~ demeaned at the final weights W = w mu, and
  -- the scores w (y - mu) x~, which are sp.vcov's W e x with e = (y - mu) / mu.
  local names, b = {}, {}
  for j, on in ipairs(ls.keep) do
    if on then names[#names + 1] = des.names[j]; b[#b + 1] = ls.b[j] else
      notes[#notes + 1] = des.names[j] .. " dropped (collinear with the other regressors or the fixed effects)"
    end
  end
  local Xk = kept(X, ls.keep)
  local W = w and mu:mul(w) or mu
  local Xt, absorb, fe_dof = Xk:copy(), nil, 0
  if nfe > 0 then
    absorb = core.absorb(codes, { weights = W })
    absorb:demean(Xt)
    fe_dof = absorb:dof()
  end
  local e = (y - mu):div(mu)
  local bread = core.lsfit(Xt, e, { weights = W }).bread
  local V, vcov_label, n_clusters
  if vc.type == "iid" then
    -- the inverse Poisson information, as glm(family = poisson) and fepois' "iid"
    V, vcov_label = bread, "iid (Poisson variance)"
  else
    local ctx = rules.vcov_context(data, des, "fixest", vc, absorb, fe_dof, W)
    local vinfo
    V, vinfo, vcov_label = rules.covariance(Xt, e, bread, ctx)
    if vc.type == "cluster" then n_clusters = rules.n_clusters(vinfo) end
  end

  -- 4. Fit statistics.  The null model is the constant alone (no fixed
  -- effects), as ppmlhdfe's and fixest's pseudo-R2 take it.
  local wsum = w and w:sum() or n
  local ybar = (w and y:mul(w) or y):sum() / wsum
  local mu0 = matrix(n, 1, ybar)
  local ll, ll0 = loglik(y, mu, w), loglik(y, mu0, w)
  local dev0 = dev + 2 * (ll - ll0)   -- D0 - D = 2 (ll - ll0)
  local fe_info = {}
  for j, fe in ipairs(des.fe) do fe_info[j] = { name = fe.name, nlevels = fe.nlevels } end

  -- 5. The fixed effects of every level: eta - X b is their sum, which
  -- sp.absorb:fixef splits by level exactly.
  local fe_obs = nfe > 0 and eta - Xk * matrix(b) or nil
  local fixef = nfe > 0 and arrays(absorb:fixef(fe_obs)) or {}

  local fit = fitmod.new {
    names = names, b = b, V = V, nobs = n, dist = "normal",
    estimator = "ppml", label = "PPML", formula = formula, vcov_label = vcov_label, fe = fe_info, notes = notes,
    stats = { deviance = dev, null_deviance = dev0, loglik = ll, loglik_null = ll0, pseudo_r2 = 1 - ll / ll0,
      iterations = iter, n_clusters = n_clusters, separated = nsep, separated_fe = #drop_fe,
      separated_relu = #drop_relu, fe_dof = fe_dof },
    fitted_values = mu, resid_values = y - mu,
    private = { y = y, X = Xk, codes = codes, levels = levels, weights = w, fixef = fixef },
  }

  -- 6. Predictions in levels: exp(x'b + the fixed effects of the row's
  -- levels).  Under a parameter draw b* (opts.coef) the baseline fixed
  -- effects no longer satisfy the first-order conditions sum over a level of
  -- w (y - mu) = 0, and exp(x'b* + fe) drifts away from y in level; they are
  -- re-centred: a Poisson fit of the fixed effects alone with offset x'b*.
  -- IRLS from the baseline's moves log mu by at most about 1 per iteration
  -- when a draw puts it far off (a drawn slope times a regressor in the tens),
  -- so sweeps of the exact update of one fixed effect given the others
  -- (each level's log of sum w y / sum w mu) come first, until no level is
  -- off by more than 10%; IRLS then converges in a few iterations.
  local rhs = F.parse(formula):without_response()
  local yv, wv = y:totable(), w and w:totable()
  local function rescaled(eta_t)
    for _ = 1, 100 do
      local worst = 0
      for j = 1, nfe do
        local sy, sm, c = {}, {}, codes[j]
        for i = 1, n do
          local wi = wv and wv[i] or 1
          sy[c[i]] = (sy[c[i]] or 0) + wi * yv[i]
          sm[c[i]] = (sm[c[i]] or 0) + wi * math.exp(eta_t[i])
        end
        local adj = {}
        for lv, s in pairs(sy) do
          if s > 0 then
            adj[lv] = math.log(s / sm[lv])
            worst = math.max(worst, math.abs(adj[lv]))
          end
        end
        for i = 1, n do eta_t[i] = eta_t[i] + (adj[c[i]] or 0) end
      end
      if worst < 0.1 then break end
    end
    return matrix(eta_t)
  end
  local last_b, last_fixef             -- draws predict twice with the same b*: keep the last
  local function recentred(coef)
    local bs, same = {}, last_b ~= nil
    for j, name in ipairs(names) do
      bs[j] = coef[name] or b[j]
      same = same and bs[j] == last_b[j]
    end
    if same then return last_fixef end
    local off = Xk * matrix(bs)
    local h = rescaled((off + fe_obs):totable()) - off
    for _ = 1, 100 do
      local m = (off + h):exp()
      local z = h + (y - m):div(m)
      local zt = z:copy()
      local a = core.absorb(codes, { weights = w and m:mul(w) or m })
      a:demean(zt)
      local hn = z - zt                  -- the fixed-effect part of z
      local change = (hn - h):abs():max()
      h = hn
      if change < 1e-11 then
        last_b, last_fixef = bs, arrays(a:fixef(h))
        return last_fixef
      end
    end
    raise("ppml: the fixed effects could not be re-centred for a parameter draw in 100 iterations")
  end

  fit.predict_fn = function(self, frame, popts)
    local coef = popts and popts.coef
    local fx = self.private.fixef
    if coef and nfe > 0 then fx = recentred(coef) end
    -- the right-hand side alone, so rows with a missing outcome are predicted too
    local pd = core.design(frame, rhs)
    local col = {}
    for j, name in ipairs(pd.names) do col[name] = j end
    local bs, cols = {}, {}
    for j, name in ipairs(names) do
      bs[j] = coef and coef[name] or b[j]
      if not col[name] then raise("ppml: predict: the new data do not give the regressor " .. name) end
      cols[j] = pd.X:col(col[name])
    end
    local xb = (matrix.hcat(table.unpack(cols)) * matrix(bs)):totable()
    local keys = {}
    for j, fe in ipairs(des.fe) do keys[j] = fe_keys(frame, fe.name, pd.rows) end
    local out = matrix(frame:nrow(), 1, 0 / 0)
    for i, r in ipairs(pd.rows) do
      local s = xb[i]
      for j = 1, nfe do
        local lv = levels[j][keys[j][i]]
        s = lv and s + fx[j][lv] or 0 / 0   -- a level not seen in estimation (or separated): no prediction
      end
      out[r] = math.exp(s)
    end
    return out
  end
  fit.fixef_values = function(self)
    local t = {}
    for j, fe in ipairs(des.fe) do
      t[fe.name] = {}
      for key, lv in pairs(levels[j]) do t[fe.name][key] = self.private.fixef[j][lv] end
    end
    return t
  end
  -- the cluster bootstrap re-estimates the same model on resampled data
  fit.refit = function(_, frame) return ppml(frame, formula, opts) end
  return fit
end
M.ppml = ppml
M.lgamma = lgamma

local registry = require "spillover.registry"
local MODEL_KEYS = { "vcov", "weights" }
registry.register {
  name = "ppml",
  fit = function(d, model, options)
    return ppml(d, model.formula, registry.merged_options(model, options, MODEL_KEYS))
  end,
  model_keys = MODEL_KEYS, vcov = { "classic", "iid", "hc0", "hc1", "cluster" },
  options = {
    tol = { type = "number", min = 0, max = 1, open_range = true }, maxiter = { type = "integer", min = 1 },
    separation = { type = "string", enum = { "both", "fe", "relu", "none" } },
  },
  capabilities = { predict = true, predict_matrix = false, refit = true, draw = true, spatial = false },
}

return M
