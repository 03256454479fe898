-- An example plugin: ridge regression written in Lua on the public
-- primitives, registered as an estimator that scenarios can name.
--   plugins: [plugins/ridge.lua]
--   models: {r: {estimator: ridge, formula: "y ~ x1 + x2", options: {lambda: 0.5}}}
-- Coefficients (X'X + lambda I)^-1 X'y on standardised regressors (the
-- intercept is not penalised), covariance from the sandwich of the ridge
-- estimator with iid errors: s^2 A X'X A, A = (X'X + lambda I)^-1.
sp.register_estimator {
  name = "ridge",
  fit = function(data, spec, opts)
    local lambda = (opts and opts.lambda) or 1.0
    if type(lambda) ~= "number" or lambda < 0 then error("ridge: options.lambda must be a number >= 0") end
    local des = sp.design(data, spec.formula)
    local X, y = des.X, des.y
    local n, k = des.n, des.k
    local XtX = X:crossprod()
    local P = XtX:copy()
    for j = 1, k do
      if des.names[j] ~= "(Intercept)" then P:set(j, j, P:get(j, j) + lambda * XtX:get(j, j) / n) end
    end
    local A = P:inv()
    local b = A * X:crossprod(y)
    local e = y - X * b
    local s2 = e:crossprod():get(1, 1) / (n - k)
    local V = A * XtX * A * s2
    local bt, Vt = {}, {}
    for i = 1, k do
      bt[i] = b:get(i, 1)
      Vt[i] = {}
      for j = 1, k do Vt[i][j] = V:get(i, j) end
    end
    local fit = sp.fit {
      names = des.names, b = bt, V = Vt, nobs = n, df_resid = n - k, estimator = "ridge",
      label = string.format("Ridge (lambda = %g)", lambda), formula = spec.formula,
      stats = { sigma = math.sqrt(s2), lambda = lambda },
      vcov_label = "iid",
    }
    -- Predictions through the same formula (the fit protocol's hook).
    fit.predict_fn = function(self, frame, popts)
      local coef = popts and popts.coef or self:coef()
      local nd = frame:copy()
      nd.sp_one__ = 1
      local rhs = spec.formula:match("~(.*)$")
      local dd = sp.design(nd, "sp_one__ ~ " .. rhs)
      local out = sp.matrix(frame:nrow(), 1, 0 / 0)
      for i, r in ipairs(dd.rows) do
        local s = 0
        for j, name in ipairs(dd.names) do s = s + dd.X:get(i, j) * coef[name] end
        out:set(r, 1, s)
      end
      return out
    end
    return fit
  end,
}
