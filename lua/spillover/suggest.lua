-- spillover.suggest: "did you mean" for names a user typed (columns, keys,
-- levels, models).  One rule for the Lua layer, the same bound as the C
-- core's sp_frame_closest: a candidate within max(2, #name // 3) edits.
local M = {}

local function edit_distance(a, b)
  local la, lb = #a, #b
  local prev = {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    for j = 1, lb do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[lb]
end

--- The closest of candidates to name, or nil when none is close.  A match
--- that differs only in case wins over any other (the typical 'west' for
--- 'West').
function M.closest(name, candidates)
  local best, bestd = nil, math.huge
  local lower = name:lower()
  for _, c in ipairs(candidates) do
    c = tostring(c)
    local d = c:lower() == lower and 0 or edit_distance(name, c)
    if d < bestd then best, bestd = c, d end
  end
  if best and bestd <= math.max(2, #name // 3) then return best end
end

--- " (did you mean 'x'?)" or "".
function M.did_you_mean(name, candidates)
  local c = M.closest(name, candidates)
  return c and (" (did you mean '" .. c .. "'?)") or ""
end

return M
