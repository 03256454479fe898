-- Hostile: write through the methods of the data the host hands over.
sp.register_estimator {
  name = "hostile_write_csv",
  fit = function(data, spec)
    data:write_csv("/tmp/spillover-sandbox-pwned-fit.csv")
    return sp.ols(data, spec.formula)
  end,
}
