-- spillover.spatial_models: ML spatial models (SAR, SEM, SDM, SDEM) for
-- cross-sections and panels with unit, time or two-way fixed effects.
--
-- The likelihood is concentrated in the spatial parameter; the C core
-- (engine/src/spml.c, core.spml_sample) holds the weights of the sample
-- (block-diagonal per period, restricted to the units present), the
-- log-determinant, the traces and the optimiser.  This file builds the design
-- with the public primitives (sp.design, sp.absorb, sp.lsfit), assembles the
-- information matrix (Anselin 1988; Elhorst 2014 for panels), the fit
-- (docs/fit-protocol.md), the LeSage-Pace impacts and the predictions through
-- (I - rho W)^-1 that counterfactuals use.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local fitmod = require "spillover.fit"
local formula_object = require "spillover.formula"
local matrix = core.matrix
local dist = core.dist

local M = {}

local MODELS = { sar = "lag", sdm = "lag", sem = "error", sdem = "error" }
local LABELS = {
  sar = "spatial autoregressive (lag) model", sdm = "spatial Durbin model",
  sem = "spatial error model", sdem = "spatial Durbin error model",
}
local EFFECTS = { none = true, individual = true, time = true, twoways = true }
local LOGDETS = { eigen = true, lu = true, mc = true, chebyshev = true }
local KNOWN_OPTS = {
  model = true, weights = true, effect = true, lee_yu = true, logdet = true, vcov = true, ids = true,
  id = true, transform = true, interval = true, order = true, nvec = true, seed = true, dense_max = true,
  durbin = true, tol = true,
}

-- util.key_of as a string always: a missing unit keys as "nil", so it is
-- reported among the ids not in the weights instead of vanishing
local function key_of(v) return tostring(util.key_of(v)) end

local function is_weights(W)
  return type(W) == "userdata" and core._weights ~= nil and core._weights.is(W)
end

local dot = util.dot

local function column_value(col, i)
  if type(col) == "table" then return col[i] end
  return col[i]
end

-- ---- weights helpers ---------------------------------------------------------------

--- Weights from an edge list: sp.weights.contiguity (kept for scripts that
--- use spatial_models alone).
function M.contiguity(edges, opts)
  return require("spillover.spatial").weights.contiguity(edges, opts)
end

-- ---- options ------------------------------------------------------------------------

local function check_opts(opts)
  if opts == nil then raise("spatial: expected options {model =, weights =, ...} as argument 3") end
  if type(opts) ~= "table" then raise("spatial: argument 3 must be a table of options") end
  for k in pairs(opts) do
    if not KNOWN_OPTS[k] then
      local names = {}
      for n in pairs(KNOWN_OPTS) do names[#names + 1] = n end
      table.sort(names)
      raise("spatial: unknown option '" .. tostring(k) .. "' (expected one of " .. table.concat(names, ", ") .. ")")
    end
  end
  local o = {}
  o.model = opts.model or "sar"
  if o.model == "sac" then
    raise("spatial: model 'sac' is not implemented (expected sar, sem, sdm or sdem)")
  end
  if not MODELS[o.model] then
    raise("spatial: unknown model '" .. tostring(o.model) .. "' (expected sar, sem, sdm or sdem)")
  end
  o.kind = MODELS[o.model]
  o.effect = opts.effect or "none"
  if not EFFECTS[o.effect] then
    raise("spatial: unknown effect '" .. tostring(o.effect) .. "' (expected none, individual, time or twoways)")
  end
  if opts.weights == nil then raise("spatial: option 'weights' is required (sp.weights object or an N x N sp.matrix)") end
  o.W = opts.weights
  if o.W ~= nil and not is_weights(o.W) and not (type(o.W) == "userdata" and o.W.nrow) and
     not (type(o.W) == "table" and o.W.n and o.W.i) then
    raise("spatial: 'weights' must be an sp.weights object, an N x N sp.matrix or triplets {n=, i=, j=, x=}")
  end
  o.logdet = opts.logdet
  if o.logdet ~= nil and not LOGDETS[o.logdet] then
    raise("spatial: unknown logdet '" .. tostring(o.logdet) .. "' (expected eigen, lu, mc or chebyshev)")
  end
  o.vcov = opts.vcov or "analytic"
  -- {cluster =} / {conley =}: a sandwich on the analytic information (spillover.spatial_vcov)
  o.robust = require("spillover.spatial_vcov").parse(o.vcov)
  if o.robust then o.vcov = "analytic" end
  if o.vcov ~= "analytic" and o.vcov ~= "hessian" and o.vcov ~= "splm" then
    raise("spatial: unknown vcov '" .. tostring(o.vcov) .. "' (expected analytic, hessian or splm)")
  end
  o.transform = opts.transform or "lsdv"
  if o.transform ~= "lsdv" and o.transform ~= "splm" then
    raise("spatial: unknown transform '" .. tostring(o.transform) .. "' (expected lsdv or splm)")
  end
  o.lee_yu = opts.lee_yu and true or false
  if o.robust and o.lee_yu then raise("spatial: vcov {" .. o.robust.type .. " = ...} is not available with lee_yu") end
  o.ids, o.id = opts.ids, opts.id
  o.interval, o.order, o.nvec, o.seed = opts.interval, opts.order, opts.nvec, opts.seed
  o.dense_max = opts.dense_max or 3000
  o.durbin = opts.durbin
  o.tol = opts.tol or 1e-13
  return o
end

-- ---- the sample: rows -> (unit, period) ------------------------------------------------

--- Map the used rows of a design to units of W and periods.  Returns unit,
--- block (1-based arrays), nblock, and the W units' ids.
local function sample_layout(d, des, o, pinfo)
  local rows = des.rows
  local n = #rows
  local W = o.W
  local N
  if is_weights(W) then N = W:n()
  elseif type(W) == "table" then N = W.n
  else N = W:nrow() end
  local wids = is_weights(W) and W:ids() or o.ids
  if wids ~= nil then
    local t = {}
    for i = 1, #wids do t[i] = key_of(wids[i]) end
    wids = t
    if #wids ~= N then
      raise(string.format("spatial: %d ids for weights over %d units", #wids, N))
    end
  end
  local unit, block = {}, {}
  local nblock = 1
  local idcol = o.id or (pinfo and pinfo.entity)
  if idcol then
    local col = d[idcol]
    if col == nil then raise("spatial: no column '" .. idcol .. "' to match the weights' units") end
    local index = {}
    if wids then
      for i, k in ipairs(wids) do index[k] = i end
    else
      -- no ids: the units are the sorted distinct values of the id column
      local seen, keys = {}, {}
      for i = 1, d:nrow() do
        local k = column_value(col, i)
        if k ~= nil and not seen[key_of(k)] then seen[key_of(k)] = true; keys[#keys + 1] = k end
      end
      table.sort(keys, function(a, b)
        if type(a) == "number" and type(b) == "number" then return a < b end
        return key_of(a) < key_of(b)
      end)
      if #keys ~= N then
        raise(string.format("spatial: '%s' has %d distinct units but the weights have %d (give the weights ids)",
          idcol, #keys, N))
      end
      for i, k in ipairs(keys) do index[key_of(k)] = i end
    end
    local missing = {}
    for r = 1, n do
      local k = key_of(column_value(col, rows[r]))
      local u = index[k]
      if u == nil then missing[#missing + 1] = k; u = 1 end
      unit[r] = u
    end
    if #missing > 0 then
      local seen, list = {}, {}
      for _, k in ipairs(missing) do if not seen[k] then seen[k] = true; list[#list + 1] = "'" .. k .. "'" end end
      raise(string.format("spatial: %s of '%s' %s not among the weights' ids", table.concat(list, ", ", 1, math.min(#list, 8)),
        idcol, #list == 1 and "is" or "are"))
    end
  else
    if d:nrow() ~= N then
      raise(string.format("spatial: the data have %d rows but the weights %d units (give 'id' = the column of unit ids)",
        d:nrow(), N))
    end
    for r = 1, n do unit[r] = rows[r] end
  end
  if pinfo and pinfo.time then
    local codes, T = des:codes(pinfo.time)
    for r = 1, n do block[r] = codes[r] end
    nblock = T
  else
    for r = 1, n do block[r] = 1 end
  end
  return unit, block, nblock, N
end

local function source_weights(W)
  return W
end

local function row_standardised(W)
  if is_weights(W) then return W:style() == "W" end
  if type(W) == "table" then return false end
  for i = 1, W:nrow() do
    local s = 0
    for j = 1, W:ncol() do s = s + W:get(i, j) end
    if s ~= 0 and math.abs(s - 1) > 1e-12 then return false end
  end
  return true
end

-- ---- the estimator -----------------------------------------------------------------------

--- A formula "y ~ x | entity + time" sets the effect from its fixed-effect
--- part (the panel's entity and/or time only); returns the formula without it.
local function split_fe(formula, o, pinfo)
  local f = formula_object.parse(formula)
  if not f:response() then raise("spatial: the formula needs a response (y ~ x)") end
  if f:iv() then raise("spatial: instruments are not supported") end
  local fe = f:fe()
  if #fe == 0 then return formula end
  local names = {}
  for _, nm in ipairs(fe) do names[nm] = true end
  if not pinfo then raise("spatial: fixed effects in the formula need a panel index: call d:panel{entity=, time=} first") end
  local ent, tim = names[pinfo.entity], names[pinfo.time]
  local count = 0
  for _ in pairs(names) do count = count + 1 end
  if count ~= (ent and 1 or 0) + (tim and 1 or 0) or count == 0 then
    raise("spatial: the fixed effects after '|' must be the panel's entity ('" .. pinfo.entity .. "') and/or time ('" ..
      pinfo.time .. "'), got '" .. table.concat(fe, " + ") .. "'")
  end
  local effect = (ent and tim) and "twoways" or (ent and "individual" or "time")
  if o.effect ~= "none" and o.effect ~= effect then
    raise("spatial: effect = '" .. o.effect .. "' contradicts the formula's fixed effects ('" .. effect .. "')")
  end
  o.effect = effect
  return tostring(f:without_fe())
end

local function fe_formula(formula, o, pinfo)
  if o.effect == "none" then return formula end
  if not pinfo then
    raise("spatial: effect = '" .. o.effect .. "' needs a panel index: call d:panel{entity=, time=} first")
  end
  local fe = { individual = { pinfo.entity }, time = { pinfo.time }, twoways = { pinfo.entity, pinfo.time } }
  local names = {}
  for i, nm in ipairs(fe[o.effect]) do names[i] = formula_object.quote(nm) end
  return formula_object.parse(formula):with_fe(names)
end

local panel_of = util.panel_of

--- The columns of X that get a spatial lag (SDM/SDEM): every regressor but
--- the intercept, or the names in o.durbin.
local function durbin_columns(names, o)
  local cols = {}
  if o.model ~= "sdm" and o.model ~= "sdem" then return cols end
  local want
  if o.durbin then
    want = {}
    for _, n in ipairs(o.durbin) do want[n] = true end
  end
  for j, n in ipairs(names) do
    if n ~= "(Intercept)" and (want == nil or want[n]) then cols[#cols + 1] = j end
  end
  if want then
    for n in pairs(want) do
      local found = false
      for _, j in ipairs(cols) do if names[j] == n then found = true end end
      if not found then raise("spatial: durbin names '" .. n .. "', which is not a regressor") end
    end
  end
  return cols
end

local function select_cols(X, cols)
  if #cols == 0 then return nil end
  local parts = {}
  for i, j in ipairs(cols) do parts[i] = X:col(j) end
  return matrix.hcat(table.unpack(parts))
end

local function hcat_nonnil(...)
  local parts = {}
  for _, m in ipairs({ ... }) do if m ~= nil and m ~= false then parts[#parts + 1] = m end end
  return matrix.hcat(table.unpack(parts))
end

local function symmetric_inverse(A)
  return A:inv()
end

--- Everything both estimation and prediction need about a frame: the
--- design, the spatial sample and the regressor blocks.
local function prepare(d, formula, o, pinfo)
  local f = fe_formula(formula, o, pinfo)
  local extra = {}
  if pinfo then extra = { pinfo.entity, pinfo.time } end
  if o.id and not (pinfo and pinfo.entity == o.id) then extra[#extra + 1] = o.id end
  local des = core.design(d, f, { extra = extra })
  local unit, block, nblock = sample_layout(d, des, o, pinfo)
  local S = core.spml_sample(source_weights(o.W), unit, block, nblock, o.restandardise)
  return des, S, f
end

local function fixed_effect_codes(des)
  local out = {}
  for j, fe in ipairs(des.fe) do
    local codes = des:codes(fe.name)
    out[j] = { name = fe.name, codes = codes }
  end
  return out
end

--- sp.spatial(d, formula, opts): see docs/estimators/spatial.md.
function M.spatial(d, formula, opts)
  if type(formula) ~= "string" then raise("spatial: expected a formula string as argument 2") end
  local o = check_opts(opts)
  local pinfo = panel_of(d)
  formula = split_fe(formula, o, pinfo)
  if o.lee_yu and o.effect == "none" then
    raise("spatial: lee_yu needs fixed effects (effect = individual, time or twoways)")
  end
  o.restandardise = row_standardised(o.W)
  local des, S, f = prepare(d, formula, o, pinfo)
  local n, names = des.n, des.names
  local info = S:info()

  -- log-determinant and the interval of rho
  local method = o.logdet
  if method == nil then
    local N = 0
    if is_weights(o.W) then N = o.W:n() elseif type(o.W) == "table" then N = o.W.n else N = o.W:nrow() end
    method = N <= 2000 and "eigen" or "mc"
  end
  local lower, upper = S:setup_logdet { method = method, order = o.order, nvec = o.nvec, seed = o.seed }
  if o.interval then lower, upper = o.interval[1], o.interval[2] end

  -- regressors and their lags
  local y, X = des.y:copy(), des.X:copy()
  local dcols = durbin_columns(names, o)
  local Xd = select_cols(X, dcols)
  local nfe = #des.fe
  local absorb = nfe > 0 and core.absorb(des) or nil
  local function demean(Mx)
    if absorb then absorb:demean(Mx, { tol = o.tol, maxiter = 100000 }) end
    return Mx
  end
  if nfe > 0 and des.intercept then raise("spatial: internal: intercept with fixed effects") end

  local Wy, WXd, Xa, WXa
  local yr = y:copy()               -- raw (undemeaned) y for the fixed effects
  local Xar                         -- raw regressors
  if o.transform == "splm" then
    -- splm: lag the demeaned data (W Q y); differs from LSDV for two-way effects
    demean(y)
    demean(X)
    Xd = select_cols(X, dcols)
    Wy = S:lag(y)
    WXd = Xd and S:lag(Xd) or nil
    Xa = hcat_nonnil(X, WXd)
    if o.kind == "error" then WXa = S:lag(Xa) end
    Xar = hcat_nonnil(des.X, Xd and S:lag(select_cols(des.X, dcols)) or nil)
  else
    Wy = S:lag(y)
    WXd = Xd and S:lag(Xd) or nil
    Xa = hcat_nonnil(X, WXd)
    Xar = Xa:copy()
    if o.kind == "error" then WXa = S:lag(Xa) end
    local block = hcat_nonnil(y, Wy, Xa, WXa)
    demean(block)
    local p = Xa:ncol()
    y = block:col(1):copy()
    Wy = block:col(2):copy()
    Xa = block:view(1, 3, n, p):copy()
    if WXa then WXa = block:view(1, 3 + p, n, p):copy() end
  end
  local anames = {}
  for j, nm in ipairs(names) do anames[j] = nm end
  for _, j in ipairs(dcols) do anames[#anames + 1] = "W." .. names[j] end
  local p = Xa:ncol()
  if p == 0 then raise("spatial: the model has no regressors") end

  -- Lee-Yu (2010) transformation approach for balanced panels
  local T = pinfo and select(2, des:codes(pinfo.time)) or 1
  local Nn = math.floor(n / T + 0.5)
  local n_eff, ld_factor, log1m = n, 1, 0
  if o.lee_yu then
    if n ~= Nn * T or info.ndistinct ~= 1 then
      raise("spatial: lee_yu needs a balanced panel (every unit in every period)")
    end
    if o.effect == "individual" then n_eff, ld_factor = Nn * (T - 1), (T - 1) / T
    elseif o.effect == "time" then n_eff, log1m = (Nn - 1) * T, T
    else n_eff, ld_factor, log1m = (Nn - 1) * (T - 1), (T - 1) / T, T - 1 end
  end

  local problem = { kind = o.kind, n_eff = n_eff, ld_factor = ld_factor, log1m = log1m, lower = lower, upper = upper }
  local b, res, fit0, e
  if o.kind == "lag" then
    local f0 = core.lsfit(Xa, y)
    local fL = core.lsfit(Xa, Wy)
    for j, k in ipairs(f0.keep) do
      if not k then raise("spatial: regressor '" .. anames[j] .. "' is collinear with the others") end
    end
    problem.ee = { dot(f0.resid, f0.resid), dot(f0.resid, fL.resid), dot(fL.resid, fL.resid) }
    res = S:maximise(problem)
    local rho = res.rho
    b = {}
    for j = 1, p do b[j] = f0.b:get(j, 1) - rho * fL.b:get(j, 1) end
    e = f0.resid - fL.resid * rho
    fit0 = f0
  else
    problem.y, problem.Wy, problem.X, problem.WX = y, Wy, Xa, WXa
    res = S:maximise(problem)
    local lam = res.rho
    local fs = core.lsfit(Xa - WXa * lam, y - Wy * lam)
    b = {}
    for j = 1, p do b[j] = fs.b:get(j, 1) end
    e = fs.resid
    fit0 = fs
  end
  local rho, sigma2 = res.rho, res.sigma2

  -- the information matrix (Anselin 1988, ch. 6; Elhorst 2014 for the FE panel)
  local pname = o.kind == "lag" and "rho" or "lambda"
  local ntr = n_eff
  local trA, trG, trG2, trGtG = S:traces(rho, o.dense_max, o.vcov ~= "hessian")
  local V
  local Xs = o.kind == "lag" and Xa or (Xa - WXa * rho)
  if o.vcov == "analytic" or o.vcov == "splm" then
    local I = matrix(p + 2, p + 2)
    local XX = Xs:crossprod()
    for i = 1, p do for j = 1, p do I:set(i, j, XX:get(i, j) / sigma2) end end
    local sig4 = sigma2 * sigma2
    I:set(p + 2, p + 2, ntr / (2 * sig4))
    I:set(p + 1, p + 2, ld_factor * trG / sigma2)
    I:set(p + 2, p + 1, ld_factor * trG / sigma2)
    if o.kind == "lag" then
      -- G mu with mu the full mean (fixed effects included), then Q
      local bvec = matrix(b)
      local mu
      if nfe > 0 and o.transform == "lsdv" then mu = (yr - S:lag(yr) * rho) - e
      elseif nfe > 0 then mu = Xa * bvec  -- splm: the transformed mean, not demeaned again
      else mu = Xar * bvec end
      local Gmu = S:lag(S:solve(rho, mu))
      if o.transform == "lsdv" then demean(Gmu) end
      local XG = Xa:crossprod(Gmu)
      for i = 1, p do
        I:set(i, p + 1, XG:get(i, 1) / sigma2)
        I:set(p + 1, i, XG:get(i, 1) / sigma2)
      end
      I:set(p + 1, p + 1, ld_factor * (trG2 + trGtG) + dot(Gmu, Gmu) / sigma2)
    else
      I:set(p + 1, p + 1, ld_factor * (trG2 + trGtG))
    end
    local Vf = symmetric_inverse(I)
    V = Vf:view(1, 1, p + 1, p + 1):copy()
    if o.robust then
      local sv = require "spillover.spatial_vcov"
      local r = o.kind == "lag" and Wy or (Wy - WXa * matrix(b))
      local gdiag = sv.diag_G(S, rho, n, pinfo and des:codes(pinfo.time) or nil)
      local robust_V, _, label = sv.sandwich(o.robust, Vf, sv.scores(Xs, e, r, sigma2, gdiag), d, des.rows)
      V, o.robust.label = robust_V, label
    end
    if o.vcov == "splm" then
      -- splm reports the same inverse with the rho-beta covariances set to zero
      for i = 1, p do V:set(i, p + 1, 0); V:set(p + 1, i, 0) end
    end
  else
    V = M.numerical_hessian_vcov(S, o, y, Wy, Xa, WXa, b, rho, sigma2, n_eff, ld_factor, log1m)
  end

  -- put rho / lambda first, as splm does, so tables show it at the top
  local fnames, fb, FV = { pname }, { rho }, {}
  for j = 1, p do fnames[j + 1], fb[j + 1] = anames[j], b[j] end
  local perm = { p + 1 }
  for j = 1, p do perm[j + 1] = j end
  for i = 1, p + 1 do
    FV[i] = {}
    for j = 1, p + 1 do FV[i][j] = V:get(perm[i], perm[j]) end
  end

  -- statistics
  local ll0 = S:loglik(problem, 0)
  local stats = {
    loglik = res.loglik, sigma2 = sigma2, ssr = res.ssr, loglik_ols = ll0,
    lr = { statistic = 2 * (res.loglik - ll0), df = 1, pvalue = dist.pchisq(2 * (res.loglik - ll0), 1, true) },
    wald_spatial = { statistic = rho * rho / FV[1][1], df = 1, pvalue = dist.pchisq(rho * rho / FV[1][1], 1, true) },
    interval = { lower, upper }, logdet = method, score = res.score, boundary = res.boundary,
    AIC = -2 * res.loglik + 2 * (p + 2 + (des.intercept and 0 or 0)),
    n_periods = pinfo and T or nil, n_entities = pinfo and Nn or nil, model = o.model, effect = o.effect,
    transform = o.transform, lee_yu = o.lee_yu,
  }
  stats[pname] = rho
  stats[pname .. "_se"] = math.sqrt(FV[1][1])
  local notes = {}
  if res.boundary then notes[#notes + 1] = string.format("%s is at the end of its interval (%g, %g)", pname, lower, upper) end
  if info.nempty > 0 then notes[#notes + 1] = string.format("%d observations have no neighbours in the sample", info.nempty) end

  -- fixed effects for predictions: from the raw data at the estimates
  local fevals = {}
  if nfe > 0 then
    local bvec = matrix(b)
    local r = (o.kind == "lag") and (yr - S:lag(yr) * rho - Xar * bvec) or (yr - Xar * bvec)
    local coefs = absorb:fixef(r:copy(), { tol = o.tol, maxiter = 100000 })
    local fc = fixed_effect_codes(des)
    for j, fe in ipairs(fc) do
      local lv = {}
      local col = d[fe.name]
      for i, row in ipairs(des.rows) do
        lv[key_of(column_value(col, row))] = coefs[j]:get(fe.codes[i], 1)
      end
      fevals[j] = { name = fe.name, values = lv }
    end
  end

  local fit
  local spec = {
    names = fnames, b = fb, V = FV, nobs = n, dist = "normal", stats = stats,
    estimator = "spatial_" .. o.model, label = LABELS[o.model] .. (o.effect ~= "none" and (" (" .. o.effect .. " FE)") or ""),
    formula = formula, vcov_label = o.robust and o.robust.label or o.vcov == "analytic" and "ML, analytic information matrix" or
      (o.vcov == "splm" and "ML, block-diagonal (splm)" or "ML, numerical Hessian"),
    fe = (function()
      local t = {}
      for j, fe in ipairs(des.fe) do t[j] = { name = fe.name, nlevels = fe.nlevels } end
      return t
    end)(),
    notes = notes,
    -- the design as built from the data: counterfactuals read its outcome
    -- name to see that a lag of y on the right makes the model dynamic
    design = des,
    resid_values = e,
    spatial = {
      model = o.model, kind = o.kind, opts = o, pinfo = pinfo, regressors = names, durbin = dcols,
      anames = anames, S = S, fe = fevals, formula = formula, n = n, intercept = des.intercept,
    },
  }
  spec.predict_fn = M.predict
  spec.impacts = M.impacts
  spec.refit = function(_, frame) return M.spatial(frame, formula, opts) end
  fit = fitmod.new(spec)
  return fit
end

--- Numerical Hessian of the full log-likelihood in (b, rho, sigma2).
function M.numerical_hessian_vcov(S, o, y, Wy, Xa, WXa, b, rho, sigma2, n_eff, ld_factor, log1m)
  local p = #b
  local n = y:nrow()
  local theta = {}
  for j = 1, p do theta[j] = b[j] end
  theta[p + 1], theta[p + 2] = rho, sigma2
  local function ll(t)
    local bv = matrix(p, 1)
    for j = 1, p do bv:set(j, 1, t[j]) end
    local r, s2 = t[p + 1], t[p + 2]
    local e
    if o.kind == "lag" then e = y - Wy * r - Xa * bv
    else e = (y - Wy * r) - (Xa - WXa * r) * bv end
    local ldv = S:logdet(r)
    return -n_eff / 2 * math.log(2 * math.pi * s2) - dot(e, e) / (2 * s2) * (n_eff / n) + ld_factor * ldv - log1m * math.log(1 - r)
  end
  local q = p + 2
  local H = matrix(q, q)
  local h = {}
  for i = 1, q do h[i] = 1e-4 * math.max(math.abs(theta[i]), 1e-2) end
  for i = 1, q do
    for j = i, q do
      local function at(di, dj)
        local t = {}
        for k = 1, q do t[k] = theta[k] end
        t[i] = t[i] + di * h[i]
        t[j] = t[j] + dj * h[j]
        return ll(t)
      end
      local v = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h[i] * h[j])
      H:set(i, j, -v)
      H:set(j, i, -v)
    end
  end
  local Vf = H:inv()
  return Vf:view(1, 1, p + 1, p + 1):copy()
end

-- ---- predictions ---------------------------------------------------------------------------

--- fit:predict(frame, {coef =}): E[y] = (I - rho W)^-1 (X b + W X theta + FE)
--- per period for lag models, X b + W X theta + FE for error models.  Rows
--- the design drops (missing values) get NaN.
-- What predict needs of a frame that does not depend on the coefficients:
-- the design's rows, the spatial sample, the regressors and their lags, and
-- the fixed-effect offsets.  Cached per frame while the frame is unchanged
-- (core.frame_version), so the draws of a counterfactual build each frame's
-- design once instead of once per draw.
local function prediction_parts(fit, frame)
  local sp_ = fit.spatial
  local private = rawget(fit, "private")
  local cache = private and private.predict_cache
  if private and not cache then
    cache = setmetatable({}, { __mode = "k" })  -- a frame collected takes its entry with it
    private.predict_cache = cache
  end
  local version = core.frame_version(frame)
  local hit = cache and cache[frame]
  if hit and hit.version == version then return hit end
  local pinfo = sp_.pinfo and panel_of(frame) or nil
  if sp_.pinfo and not pinfo then raise("predict: the frame needs the panel index of the fit") end
  local des, S = prepare(frame, sp_.formula, sp_.opts, pinfo)
  local X = des.X
  local Xd = select_cols(X, sp_.durbin)
  local parts = { version = version, rows = des.rows, S = S, Xa = hcat_nonnil(X, Xd and S:lag(Xd) or nil) }
  -- every row of the frame in its own order: predictions need no scatter
  parts.whole = #des.rows == frame:nrow()
  for i, row in ipairs(des.rows) do parts.whole = parts.whole and row == i end
  -- one offset vector per factor, added in turn as the estimation did
  parts.fe = {}
  for j, f in ipairs(sp_.fe) do
    local col, fe = frame[f.name], matrix(#parts.rows, 1, 0)
    for i, row in ipairs(parts.rows) do fe:set(i, 1, f.values[key_of(column_value(col, row))] or 0 / 0) end
    parts.fe[j] = fe
  end
  if cache then cache[frame] = parts end
  return parts
end

function M.predict(fit, frame, opts)
  opts = opts or {}
  local sp_ = fit.spatial
  local coef = opts.coef or fit:coef()
  local P = prediction_parts(fit, frame)
  local p = P.Xa:ncol()
  local bv = matrix(p, 1)
  for j = 1, p do
    local v = coef[sp_.anames[j]]
    if v == nil then raise("predict: coef has no value for '" .. sp_.anames[j] .. "'") end
    bv:set(j, 1, v)
  end
  local v = P.Xa * bv
  for _, fe in ipairs(P.fe) do v = v + fe end
  local rho = coef[sp_.kind == "lag" and "rho" or "lambda"]
  local yhat = sp_.kind == "lag" and P.S:solve(rho, v) or v
  if P.whole then return yhat end
  local out = matrix(frame:nrow(), 1, 0 / 0)
  for i, row in ipairs(P.rows) do out:set(row, 1, yhat:get(i, 1)) end
  return out
end

-- ---- impacts (LeSage & Pace 2009) -----------------------------------------------------------

local function impacts_at(fit, coef, S, n, want_rowsums)
  local sp_ = fit.spatial
  local out = { direct = {}, indirect = {}, total = {} }
  local names = {}
  local theta_of = {}
  for i, j in ipairs(sp_.durbin) do theta_of[sp_.regressors[j]] = "W." .. sp_.regressors[j] end
  local trA, trG, rs_A, rs_G
  local rho = sp_.kind == "lag" and coef.rho or 0
  if sp_.kind == "lag" then
    trA, trG = S:traces(rho, 0, false)
    local info = S:info()
    if info.row_stochastic and info.nempty == 0 then
      rs_A, rs_G = 1 / (1 - rho), 1 / (1 - rho)
    else
      local ones = matrix(n, 1, 1)
      local a = S:solve(rho, ones)
      local g = S:lag(a)
      rs_A, rs_G = 0, 0
      for i = 1, n do rs_A, rs_G = rs_A + a:get(i, 1), rs_G + g:get(i, 1) end
      rs_A, rs_G = rs_A / n, rs_G / n
    end
  end
  for _, x in ipairs(sp_.regressors) do
    if x ~= "(Intercept)" then
      names[#names + 1] = x
      local beta, theta = coef[x], theta_of[x] and coef[theta_of[x]] or 0
      if sp_.kind == "lag" then
        out.direct[x] = (beta * trA + theta * trG) / n
        out.total[x] = beta * rs_A + theta * rs_G
      else
        out.direct[x] = beta
        out.total[x] = beta + theta
      end
      out.indirect[x] = out.total[x] - out.direct[x]
    end
  end
  return out, names
end

--- fit:impacts{draws = 0, seed = 42, level = 0.95}: direct, indirect and total
--- effects per regressor; with draws, simulated standard errors, z, p-values
--- and intervals from draws of the coefficients from N(b, V).
function M.impacts(fit, opts)
  opts = opts or {}
  local sp_ = fit.spatial
  local S, n = sp_.S, sp_.n
  local res, names = impacts_at(fit, fit:coef(), S, n)
  res.names = names
  local R = opts.draws or 0
  if R > 0 then
    local rng = core.rng(opts.seed or 42)
    local level = opts.level or 0.95
    local sims = { direct = {}, indirect = {}, total = {} }
    for _, kind in ipairs { "direct", "indirect", "total" } do
      for _, x in ipairs(names) do sims[kind][x] = {} end
    end
    local pname = sp_.kind == "lag" and "rho" or "lambda"
    local lo, hi = fit.stats.interval[1], fit.stats.interval[2]
    local r = 0
    local tries = 0
    while r < R do
      tries = tries + 1
      if tries > 100 * R then raise("impacts: the draws of " .. pname .. " fall outside its interval") end
      local c = fit:draw(rng)
      if c[pname] > lo and c[pname] < hi then
        r = r + 1
        local im = impacts_at(fit, c, S, n)
        for _, kind in ipairs { "direct", "indirect", "total" } do
          for _, x in ipairs(names) do sims[kind][x][r] = im[kind][x] end
        end
      end
    end
    res.draws, res.seed, res.level = R, opts.seed or 42, level
    res.mean, res.se, res.z, res.pvalue, res.lower, res.upper = {}, {}, {}, {}, {}, {}
    for _, kind in ipairs { "direct", "indirect", "total" } do
      res.mean[kind], res.se[kind], res.z[kind], res.pvalue[kind] = {}, {}, {}, {}
      res.lower[kind], res.upper[kind] = {}, {}
      for _, x in ipairs(names) do
        local v = sims[kind][x]
        local m, s = 0, 0
        for i = 1, R do m = m + v[i] end
        m = m / R
        for i = 1, R do s = s + (v[i] - m) ^ 2 end
        s = math.sqrt(s / (R - 1))
        res.mean[kind][x], res.se[kind][x] = m, s
        res.z[kind][x] = res[kind][x] / s
        res.pvalue[kind][x] = 2 * dist.pnorm(-math.abs(res[kind][x] / s))
        table.sort(v)
        local function q(pr)
          local h = (R - 1) * pr + 1
          local l = math.floor(h)
          local u = math.min(l + 1, R)
          return v[l] + (h - l) * (v[u] - v[l])
        end
        res.lower[kind][x], res.upper[kind][x] = q((1 - level) / 2), q(1 - (1 - level) / 2)
      end
    end
  end
  return res
end

-- ---- report section and registration (spillover.registry, spillover.report) --------------

--- The report section of a spatial fit: the direct, indirect and total
--- effects (LeSage-Pace) with simulated inference (1000 draws seeded with
--- `seed`), in results.json (models.<model>.impacts) and as
--- impacts_<model>.csv / .md.  The impacts are computed once, on first use.
function M.impacts_section(seed)
  local done
  local function impacts(fit)
    done = done or fit:impacts { draws = 1000, seed = seed }
    return done
  end
  local function files(fit, out)
    local im = impacts(fit)
    local rows = {}
    for _, v in ipairs(im.names) do
      for _, kind in ipairs({ "direct", "indirect", "total" }) do
        rows[#rows + 1] = { variable = v, effect = kind, estimate = im[kind][v], se = im.se and im.se[kind][v],
          lower = im.lower and im.lower[kind][v], upper = im.upper and im.upper[kind][v],
          pvalue = im.pvalue and im.pvalue[kind][v] }
      end
    end
    out:write("impacts_" .. out.name .. ".csv", out.csv(rows, { "variable", "effect", "estimate", "se", "lower",
      "upper", "pvalue" }))
    local num = out.number
    local md = { "# Direct, indirect and total effects: " .. out.name, "",
      string.format("Simulated inference: %d draws, %g%% intervals (LeSage & Pace 2009).", im.draws or 0,
        100 * (im.level or 0.95)), "",
      "| variable | effect | estimate | se | interval | p |", "|---|---|---:|---:|---|---:|" }
    for _, r in ipairs(rows) do
      md[#md + 1] = string.format("| %s | %s | %s | %s | [%s, %s] | %s |", out.label(r.variable), r.effect,
        num(r.estimate), num(r.se), num(r.lower), num(r.upper), num(r.pvalue))
    end
    out:write("impacts_" .. out.name .. ".md", table.concat(md, "\n") .. "\n")
    out:log("impacts of %s written", out.name)
  end
  return { name = "impacts", json = impacts, files = files }
end

local registry = require "spillover.registry"
local SPATIAL_OPTIONS = {
  effect = { type = "string", enum = { "none", "individual", "time", "twoways" } }, lee_yu = { type = "boolean" },
  logdet = { type = "string", enum = { "eigen", "lu", "mc", "chebyshev" } },
  vcov = { type = { "string", "map" }, enum = { "analytic", "hessian", "splm" },
    fields = { cluster = { type = "string" }, conley = { type = "map", open = true } } },
  transform = { type = "string", enum = { "lsdv", "splm" } },
  ids = { type = "list" }, id = { type = "string" },
  interval = { type = "list", items = { type = "number" }, len = 2 },
  order = { type = "integer", min = 1 }, nvec = { type = "integer", min = 1 }, seed = { type = "integer" },
  dense_max = { type = "integer", min = 0 }, durbin = { type = "list", items = { type = "string" } },
  tol = { type = "number", min = 0 },
}
-- The model's weights: entry arrives built, as model.weights_object.
for _, name in ipairs({ "sar", "sem", "sdm", "sdem" }) do
  registry.register {
    name = name, options = SPATIAL_OPTIONS, model_keys = { "weights" },
    fit = function(d, model, options)
      local o = {}
      for k, v in pairs(options or {}) do o[k] = v end
      o.model, o.weights = name, model.weights_object
      local f = M.spatial(d, model.formula, o)
      f.report_sections = { M.impacts_section(model.seed or 42) }
      return f
    end,
    capabilities = { predict = true, predict_matrix = false, refit = true, draw = true, spatial = true },
  }
end

return M
