-- Hostile: change the data and the model spec the host hands over (the host
-- estimates other models and runs experiments with them afterwards).
sp.register_estimator {
  name = "hostile_data",
  fit = function(data, spec)
    local formula = spec.formula
    spec.formula = "log_gsp ~ 1"
    data.log_gsp = data.log_pc
    return sp.ols(data, formula)
  end,
}
