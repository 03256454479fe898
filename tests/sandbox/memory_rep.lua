-- Hostile: huge strings through the method table of strings.  2^34 bytes is
-- more than Lua's string functions make (they stop at 2^31); 2^30 is not,
-- and the memory cap refuses it.
assert(not pcall(string.rep, "x", 2 ^ 34), "a 16 GiB string")
local s = ("x"):rep(2 ^ 30)
return #s
