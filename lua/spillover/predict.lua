-- spillover.predict: what the linear estimators compute from their
-- coefficients after the fit: fitted values, fixed effects and predictions on
-- new data.  The fit's own design (fit.private.design) is the one built for
-- the estimation and never transformed (the within transformation works on a
-- copy), so none of these rebuilds it.
local core = require "spillover.core"
local F = require "spillover.formula"
local util = require "spillover.util"
local raise = util.raise

local M = {}

--- Level names of a design factor, by code (1-based), from the frame column.
function M.factor_levels(d, des, name)
  local col = d[name]
  local codes = des:codes(name)
  local rows = des.rows
  local levels = {}
  for i = 1, #rows do
    local v = type(col) == "table" and col[rows[i]] or col:get(rows[i], 1)
    levels[codes[i]] = util.key_of(v)
  end
  return levels
end

--- The design of a fit as built from its data (y and X before any fixed
--- effects were absorbed): the one the estimation built.
function M.original_design(fit)
  return fit.private.design
end

--- Fixed-effect coefficients: {fe name -> {level -> value}}.
function M.fixef(fit)
  local p = fit.private
  if not p.absorb then raise("fixef: the model has no fixed effects") end
  local des = p.design
  -- Residuals deferred until read come from the workspace's current solve,
  -- which fixef replaces: store them first.
  local _ = fit.resid_values
  -- y - X b before absorbing the fixed effects (dropped columns count 0)
  local r = des.k > 0 and des.y - des.X * M.coef_vector(fit, des.names) or des.y:copy()
  return M.fixef_by_level(p.data, des, p.absorb:fixef(r))
end

--- The fit's coefficients as a column over `names` (0 for a name the fit
--- dropped): one product X * b then replaces a copy of y per column.
function M.coef_vector(fit, names)
  local b = {}
  for j, nm in ipairs(names) do
    local i = fit.index[nm]
    b[j] = i and fit.b[i] or 0
  end
  return core.matrix(b)
end

--- Fixed-effect coefficients (one vector per factor of des, by code) keyed by
--- the levels' names: {fe name -> {level -> value}}.
function M.fixef_by_level(d, des, coefs)
  local out = {}
  for j, fe in ipairs(des.fe) do
    local levels = M.factor_levels(d, des, fe.name)
    local t = {}
    for code = 1, coefs[j]:nrow() do t[levels[code] or code] = coefs[j]:get(code, 1) end
    out[fe.name] = t
  end
  return out
end

--- The fit's own regressor matrix when newdata is the frame it was fitted on,
--- unchanged since (core.frame_version), and the fit used every row: then
--- the design built for the estimation is the prediction design too, and a
--- counterfactual's baseline needs no design of its own.  nil otherwise.
function M.own_matrix(fit, newdata)
  local p = fit.private
  local des = p and p.design
  if not (des and p.data == newdata and des.frame_version == core.frame_version(newdata)) then return nil end
  local n = newdata:nrow()
  if des.n ~= n then return nil end  -- rows are increasing: n of n rows means every row
  local col = {}
  for j, nm in ipairs(des.names) do col[nm] = j end
  local cols = {}
  for q, nm in ipairs(fit.names) do
    if col[nm] == nil then return nil end
    cols[q] = des.X:col(col[nm])
  end
  if #cols == 0 then return nil end
  return #cols == 1 and cols[1]:copy() or core.matrix.hcat(table.unpack(cols))
end

--- The regressors of a fit evaluated on new data: a (nrow x k) matrix over
--- the fit's kept coefficients, in fit.names order, NaN rows where a term
--- cannot be computed; plus the fixed-effect codes table (name -> level by row).
--- Linear predictions are predict_matrix * b (+ fixed effects): counterfactual
--- draws use it to avoid rebuilding the design per draw.
function M.predict_matrix(fit, newdata)
  local own = M.own_matrix(fit, newdata)
  if own then return own end
  -- the regressors alone: no response (rows need only what X needs), no
  -- fixed effects (added by predict_linear), endogenous regressors as
  -- ordinary ones (2SLS predicts from the structural equation)
  local f = F.parse(fit.formula):without_iv():without_response():without_fe()
  local des = core.design(newdata, f, { intercept = fit.private.design.intercept })
  local n, k = newdata:nrow(), #fit.names
  local col = {}
  for j, nm in ipairs(des.names) do col[nm] = j end
  local cols = {}
  for q, nm in ipairs(fit.names) do
    local j = col[nm]
    if j == nil then raise("predict: the new data do not give the regressor '" .. nm .. "'") end
    cols[q] = des.X:col(j)
  end
  local rows = des.rows
  local complete = #rows == n
  for i = 1, #rows do
    if rows[i] ~= i then complete = false; break end
  end
  if complete and k > 0 then
    -- every row has all its regressors: the columns in fit order, copied in C
    return k == 1 and cols[1]:copy() or core.matrix.hcat(table.unpack(cols))
  end
  local X = core.matrix(n, k, 0 / 0)
  for q = 1, k do
    local src = cols[q]
    for i, r in ipairs(rows) do X:set(r, q, src:get(i, 1)) end
  end
  return X
end

--- Prediction on new data: X b plus the fixed effects of the levels seen in
--- estimation (NaN for unseen levels or where a regressor is missing).
--- opts.coef: a table name -> value replacing the estimates (parameter draws);
--- opts.matrix: predict_matrix(fit, newdata), when the caller has built it
--- already (a counterfactual needs it for its draws too: one design per frame).
function M.predict_linear(fit, newdata, opts)
  local X = opts and opts.matrix
  if X == nil then
    X = M.predict_matrix(fit, newdata)
  elseif not (type(X) == "userdata" and X.shape and X:nrow() == newdata:nrow() and X:ncol() == #fit.names) then
    raise(string.format("predict: 'matrix' must be predict_matrix(fit, frame): a %d x %d matrix",
      newdata:nrow(), #fit.names))
  end
  local b = {}
  local coef = opts and opts.coef
  for i, nm in ipairs(fit.names) do b[i] = coef and coef[nm] or fit.b[i] end
  local out = #fit.names > 0 and X * core.matrix(b) or core.matrix(newdata:nrow(), 1, 0)
  if fit.fe and #fit.fe > 0 then
    local fx = fit:fixef()
    for _, fe in ipairs(fit.fe) do
      local col = newdata[fe.name]
      local eff = fx[fe.name]
      for i = 1, newdata:nrow() do
        local v = type(col) == "table" and col[i] or col:get(i, 1)
        out:set(i, 1, out:get(i, 1) + (eff[util.key_of(v)] or 0 / 0))
      end
    end
  end
  return out
end

return M
