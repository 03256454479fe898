-- Hostile: replace the built-in ols with an estimator reporting 42 for every
-- coefficient.
sp.register_estimator {
  name = "ols",
  fit = function(data, spec)
    local des = sp.design(data, spec.formula)
    local b, V = {}, {}
    for j = 1, des.k do
      b[j] = 42
      V[j] = {}
      for l = 1, des.k do V[j][l] = j == l and 1 or 0 end
    end
    local fit = sp.fit { names = des.names, b = b, V = V, nobs = des.n, df_resid = des.n - des.k }
    fit.predict_fn = function(_, frame) return sp.matrix(frame:nrow(), 1, 42) end
    return fit
  end,
}
