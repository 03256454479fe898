-- Poisson pseudo-maximum likelihood (PPML) with fixed effects, written on the
-- public primitives only (sp.design, sp.absorb, sp.lsfit, sp.vcov, sp.fit).
-- docs/extending.md explains every step; scenarios/ppml_example.yaml uses it:
--   plugins: [plugins/ppml.lua]
--   models: {m: {estimator: my_ppml, formula: "gsp ~ log(pcap) + unemp | state + year",
--                vcov: {cluster: state}, options: {tol: 1e-10}}}
-- The model is E[y | x, fe] = exp(x'b + a_fe1 + g_fe2 + ...), estimated by
-- iteratively reweighted least squares (IRLS): each iteration demeans the
-- working response and the regressors with weights mu (sp.absorb), then runs
-- weighted least squares (sp.lsfit); it stops when the deviance settles.

local OPTIONS = { tol = true, maxiter = true }

-- The key of one value of a fixed-effect variable: integers as "%d" (so 1990
-- and 1990.0 agree), other numbers at full precision, strings as they are;
-- nil (missing: NaN or an absent string) when the value is missing.
local function key_of(v)
  if type(v) == "number" then
    if v ~= v then return nil end
    return math.tointeger(v) and string.format("%d", v) or string.format("%.17g", v)
  end
  return v
end

-- The keys of fixed effect `name` (a variable, or a combination "a^b") at
-- the frame rows `rows`; false where a value is missing.  A column is read
-- once (frame[var] builds it afresh on every access).
local function fe_keys(frame, name, rows)
  local cols = {}
  for var in name:gmatch("[^%^]+") do cols[#cols + 1] = frame[var] end
  local keys = {}
  if #cols == 1 then
    local col = cols[1]
    for i, r in ipairs(rows) do keys[i] = key_of(col[r]) or false end
    return keys
  end
  for i, r in ipairs(rows) do
    local parts = {}
    for j, col in ipairs(cols) do parts[j] = key_of(col[r]) end
    keys[i] = #parts == #cols and table.concat(parts, "^")
  end
  return keys
end

-- Integer codes 1..L over the rows used (in order of first appearance), with
-- the map key -> code that predictions on other frames look levels up in.
local function level_codes(frame, name, rows)
  local codes, level, nlevels = {}, {}, 0
  for i, k in ipairs(fe_keys(frame, name, rows)) do
    if level[k] == nil then
      nlevels = nlevels + 1
      level[k] = nlevels
    end
    codes[i] = level[k]
  end
  return codes, level, nlevels
end

-- The rows of the matrix M as an array of arrays (the form sp.fit takes V in).
local function rows_of(M)
  local t = {}
  for i = 1, M:nrow() do
    t[i] = {}
    for j = 1, M:ncol() do t[i][j] = M:get(i, j) end
  end
  return t
end

-- sp.absorb:fixef's vectors (one n_levels x 1 matrix per fixed effect) as
-- Lua arrays, which the loops over rows below index faster.
local function arrays(vectors)
  local t = {}
  for j, v in ipairs(vectors) do t[j] = v:totable() end
  return t
end

-- The columns of X whose `keep` flag is set (sp.lsfit drops collinear ones).
local function kept(X, keep)
  local cols = {}
  for j, on in ipairs(keep) do if on then cols[#cols + 1] = X:col(j) end end
  return #cols == X:ncol() and X or sp.matrix.hcat(table.unpack(cols))
end

-- Fixed-effect levels whose outcomes are all zero have an estimate of minus
-- infinity (their rows are perfectly predicted); like ppmlhdfe, drop those
-- rows, repeatedly, since dropping some can empty another level.
local function zero_levels(des, codes, nfe)
  local n, y = des.n, des.y
  local keep, dropped = {}, 0
  for i = 1, n do keep[i] = true end
  repeat
    local more = false
    for j = 1, nfe do
      local sum = {}
      for i = 1, n do
        if keep[i] then sum[codes[j][i]] = (sum[codes[j][i]] or 0) + y[i] end
      end
      for i = 1, n do
        if keep[i] and sum[codes[j][i]] == 0 then keep[i], dropped, more = false, dropped + 1, true end
      end
    end
  until not more
  return keep, dropped
end

-- The cluster variables named by the model's vcov ({cluster = "x"} or
-- {cluster = {"a", "b"}}), or nil.
local function cluster_vars(vcov)
  if type(vcov) ~= "table" then return nil end
  local c = vcov.cluster
  if type(c) == "string" then return { c } end
  return c
end

local ppml

--- The fit of formula on data, with IRLS over sp.absorb.
ppml = function(data, model, options)
  options = options or {}
  for key in pairs(options) do
    if not OPTIONS[key] then error("ppml: unknown option '" .. tostring(key) .. "' (expected maxiter, tol)", 2) end
  end
  local tol, maxiter = options.tol or 1e-10, options.maxiter or 100
  local formula = tostring(model.formula)
  local clusters = cluster_vars(model.vcov)

  -- 1. The design; then drop the rows of all-zero fixed-effect levels.
  local des = sp.design(data, formula, { extra = clusters })
  local codes, levels, nfe = {}, {}, #des.fe
  for j, fe in ipairs(des.fe) do codes[j], levels[j] = level_codes(data, fe.name, des.rows) end
  local y = des.y
  if y:min() < 0 then error("ppml: the outcome " .. des.yname .. " has negative values (expected counts or levels >= 0)", 2) end
  local notes = {}
  for _, note in ipairs(des.notes) do notes[#notes + 1] = note end
  if nfe > 0 then
    local keep, dropped = zero_levels(des, codes, nfe)
    if dropped > 0 then
      local rows = {}
      for i, r in ipairs(des.rows) do if keep[i] then rows[#rows + 1] = r end end
      data = data:take(rows)
      des = sp.design(data, formula, { extra = clusters })
      for j, fe in ipairs(des.fe) do codes[j], levels[j] = level_codes(data, fe.name, des.rows) end
      y = des.y
      notes[#notes + 1] = string.format("%d observations dropped: their fixed-effect level has only zero outcomes", dropped)
    end
  end
  local X, n, k = des.X, des.n, des.k
  if k == 0 then error("ppml: the formula has no regressor to estimate", 2) end
  if des.endog then error("ppml: instrumental variables are not supported (the formula has an IV part)", 2) end

  -- 2. IRLS.  Deviance D = 2 sum(y log(y / mu) - (y - mu)), written with the
  -- constant sum(y log y) so that y = 0 needs no special case.
  local ysum = y:sum()
  local ylogy = y:map(function(v) return v > 0 and v * math.log(v) or 0 end):sum()
  local function deviance(eta, mu) return 2 * (ylogy - y:crossprod(eta):get(1, 1) - ysum + mu:sum()) end
  local mu = (y + ysum / n) / 2          -- the usual start: halfway to the mean
  local eta = mu:log()
  local dev, ls, converged, iter = deviance(eta, mu), nil, false, 0
  while iter < maxiter do
    iter = iter + 1
    local z = eta + (y - mu):div(mu)       -- working response
    local M = sp.matrix.hcat(z, X)         -- demeaned in place below: X itself stays raw
    if nfe > 0 then sp.absorb(codes, { weights = mu }):demean(M) end
    ls = sp.lsfit(M:view(1, 2, n, k), M:col(1), { weights = mu, names = des.names, yname = des.yname,
      scale = sp.matrix(sp.sumsq(X, { weights = mu })) })
    eta = z - ls.resid                     -- fitted x'b + fixed effects
    mu = eta:exp()
    local new = deviance(eta, mu)
    if new ~= new or new == math.huge then error("ppml: the deviance is not finite at iteration " .. iter, 2) end
    local change = math.abs(new - dev) / (0.1 + math.abs(new))
    dev = new
    if change < tol then converged = true; break end
  end
  if not converged then
    error(string.format("ppml: IRLS did not converge in %d iterations (raise options.maxiter or tol)", maxiter), 2)
  end

  -- 3. Coefficients (collinear columns dropped), and the covariance: the
  -- bread (X~' W X~)^-1 with X~ demeaned at the final weights W = mu; the
  -- scores (y - mu) x~ are sp.vcov's w * e * x with w = mu and e = (y - mu) / mu.
  local names, b = {}, {}
  for j, on in ipairs(ls.keep) do
    if on then names[#names + 1] = des.names[j]; b[#b + 1] = ls.b[j] else
      notes[#notes + 1] = des.names[j] .. " dropped (collinear with the other regressors or the fixed effects)"
    end
  end
  local Xk = kept(X, ls.keep)
  local Xt, absorb = Xk:copy(), nil
  if nfe > 0 then
    absorb = sp.absorb(codes, { weights = mu })
    absorb:demean(Xt)
  end
  local e = (y - mu):div(mu)
  local bread = sp.lsfit(Xt, e, { weights = mu }).bread
  local vcov, V, vcov_label, n_clusters = model.vcov, nil, nil, nil
  if vcov == nil then vcov = nfe > 0 and { cluster = { des.fe[1].name } } or "hc1" end
  if type(vcov) == "table" and vcov.cluster == nil then
    error("ppml: vcov must be \"iid\", \"hc0\" to \"hc3\" or {cluster = ...}", 2)
  end
  if vcov == "iid" then
    V, vcov_label = bread, "iid (Poisson variance)"
  else
    local k_df = #names
    if nfe > 0 then k_df = k_df + absorb:dof() end
    local opts = { weights = mu, compat = model.compat or "fixest" }
    if type(vcov) == "string" then
      opts.type, vcov_label = vcov, vcov
    else
      local cl = cluster_vars(vcov)
      opts.type, opts.cluster, opts.cluster_names = "cluster", {}, cl
      for j, name in ipairs(cl) do
        opts.cluster[j] = des:codes(name)
        -- fixest's rule: a fixed effect nested in a cluster costs no degree of freedom
        for q = 1, nfe do
          if absorb:nested(q, opts.cluster[j]) then k_df = k_df - des.fe[q].nlevels end
        end
      end
      vcov_label = "cluster: " .. table.concat(cl, ", ")
    end
    opts.k_df = math.max(k_df, #names)
    local info
    V, info = sp.vcov(Xt, e, bread, opts)
    if info.ngroups[1] then n_clusters = #info.ngroups == 1 and info.ngroups[1] or info.ngroups end
  end

  -- 4. The fixed effects of every level: x'b + fe = eta, so the fixed-effect
  -- part of eta, fe_obs = eta - X b, lies in their span and sp.absorb:fixef
  -- splits it by level exactly.
  local fe_obs = nfe > 0 and eta - Xk * sp.matrix(b) or nil
  local fe_info = {}
  for j, fe in ipairs(des.fe) do fe_info[j] = { name = fe.name, nlevels = fe.nlevels } end
  local private = { y = y, X = Xk, codes = codes, levels = levels, fe_obs = fe_obs,
    fixef = nfe > 0 and arrays(absorb:fixef(fe_obs)) or {}, names = names }

  local fit = sp.fit {
    names = names, b = b, V = rows_of(V), nobs = n, dist = "normal",
    estimator = "ppml", label = "PPML", formula = formula, vcov_label = vcov_label, fe = fe_info, notes = notes,
    stats = { deviance = dev, iterations = iter, n_clusters = n_clusters },
    private = private,
  }
  fit.fitted_values = mu
  fit.resid_values = y - mu

  -- 5. Predictions.  Under a parameter draw b* (opts.coef) the fixed effects
  -- of the baseline no longer fit: exp(x'b* + fe) drifts away from y in
  -- level.  Re-centre them: solve, with b* held, sum over every level of every
  -- fixed effect of (y - exp(x'b* + fe)) = 0, the condition the baseline fit
  -- satisfies.  That is a Poisson fit of the fixed effects alone with offset
  -- x'b*: IRLS again, from the baseline's fixed effects (a few iterations).
  local rhs = sp.formula(formula):without_response()
  local last_b, last_fixef          -- draws predict twice with the same b*: keep the last
  local function recentred(coef)
    local bs, same = {}, last_b ~= nil
    for j, name in ipairs(names) do
      bs[j] = coef[name] or b[j]
      same = same and bs[j] == last_b[j]
    end
    if same then return last_fixef end
    local off = Xk * sp.matrix(bs)
    local h = fe_obs
    for _ = 1, 100 do
      local m = (off + h):exp()
      local z = h + (y - m):div(m)
      local zt = z:copy()               -- demean a copy: z itself is needed below
      local a = sp.absorb(codes, { weights = m })
      a:demean(zt)
      local hn = z - zt                  -- the fixed-effect part of z
      local change = (hn - h):abs():max()
      h = hn
      if change < 1e-11 then
        last_b, last_fixef = bs, arrays(a:fixef(h))
        return last_fixef
      end
    end
    error("ppml: the fixed effects could not be re-centred for a parameter draw in 100 iterations", 3)
  end

  fit.predict_fn = function(self, frame, popts)
    local coef = popts and popts.coef
    local fx = self.private.fixef
    if coef and nfe > 0 then fx = recentred(coef) end
    -- The regressors on `frame`: the design of the right-hand side alone, so
    -- rows with a missing outcome are predicted too.
    local pd = sp.design(frame, rhs)
    local col = {}
    for j, name in ipairs(pd.names) do col[name] = j end
    local bs = {}
    local cols = {}
    for j, name in ipairs(names) do
      bs[j] = coef and coef[name] or b[j]
      cols[j] = pd.X:col(assert(col[name], "predict: the new data do not give the regressor " .. name))
    end
    local xb = (sp.matrix.hcat(table.unpack(cols)) * sp.matrix(bs)):totable()
    local keys = {}
    for j, fe in ipairs(des.fe) do keys[j] = fe_keys(frame, fe.name, pd.rows) end
    local out = sp.matrix(frame:nrow(), 1, 0 / 0)
    for i, r in ipairs(pd.rows) do
      local s = xb[i]
      for j = 1, nfe do
        local lv = levels[j][keys[j][i]]
        s = lv and s + fx[j][lv] or 0 / 0   -- a level not seen in estimation: no prediction
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
  -- The cluster bootstrap re-estimates the same model on resampled data.
  fit.refit = function(self, frame) return ppml(frame, model, options) end
  return fit
end

sp.register_estimator {
  name = "my_ppml",
  fit = ppml,
  -- For the estimator registry, so that `spillover check` validates the
  -- options and refuses experiments a fit cannot serve (docs/extending.md).
  options = { tol = { type = "number", min = 0 }, maxiter = { type = "integer", min = 1 } },
  model_keys = { "vcov", "compat" },
  capabilities = { predict = true, predict_matrix = false, refit = true, draw = true, spatial = false },
}

-- A script that runs this file itself (trusted) gets the estimator function.
return ppml
