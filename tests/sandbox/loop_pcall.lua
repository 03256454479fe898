-- Hostile: swallow the instruction-limit error with pcall and keep looping.
while true do
  pcall(function() while true do end end)
end
