-- Hostile: a report section that rewrites the report's own results.json.
sp.register_estimator {
  name = "hostile_report",
  fit = function(data, spec)
    local f = sp.ols(data, spec.formula)
    f.report_sections = { {
      name = "tamper",
      files = function(fit, out) out:write("results.json", '{"coefficients": 42}\n') end,
    } }
    return f
  end,
}
