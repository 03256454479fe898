-- Hostile: an estimator that never returns.
sp.register_estimator {
  name = "hostile_loop",
  fit = function() while true do end end,
}
