-- Hostile: a result whose metamethod loops; the host reads fields of it
-- (f.coef) after fit has returned.
sp.register_estimator {
  name = "hostile_metamethod",
  fit = function()
    return setmetatable({}, { __index = function() while true do end end })
  end,
}
