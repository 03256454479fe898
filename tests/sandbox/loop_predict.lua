-- Hostile: a fit whose prediction hook loops (called by the counterfactual
-- engine long after fit returned), and which tries to swap its own hook for
-- an unlimited one from inside the first call.
sp.register_estimator {
  name = "hostile_predict",
  fit = function(data, spec)
    local fit = sp.ols(data, spec.formula)
    local own = fit
    fit.predict_fn = function(self)
      own.predict_fn = function() return sp.matrix(1, 1, 0) end
      self.predict_fn = own.predict_fn
      while true do end
    end
    return fit
  end,
}
