-- spillover: the public Lua API.
--
-- The C part (spillover.core) provides the objects and hot loops; this file
-- assembles the one table users see.  Modules written in Lua add themselves
-- here, so a user estimator built on the same primitives is first-class.
local core = require "spillover.core"

local sp = {}
for k, v in pairs(core) do sp[k] = v end

return sp
