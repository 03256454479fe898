-- spillover.suggest: "did you mean" for names a user typed (columns, keys,
-- levels, models).  The rule is the C core's (sp_closest, reached as
-- core.closest), so a message from Lua and one from C suggest the same name:
-- about a third of the name may be wrong, a swap of two adjacent characters
-- is one edit, and a name that differs only in case wins.
local core = require "spillover.core"

local M = {}

--- The closest of candidates to name, or nil when none is close.
--- Candidates that are not strings (levels, numbers) are compared as text.
function M.closest(name, candidates)
  local text = {}
  for i, c in ipairs(candidates) do text[i] = tostring(c) end
  return core.closest(tostring(name), text)
end

--- " (did you mean 'x'?)" or "".
function M.did_you_mean(name, candidates)
  local c = M.closest(name, candidates)
  return c and (" (did you mean '" .. c .. "'?)") or ""
end

return M
