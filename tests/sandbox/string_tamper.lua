-- Hostile: patch the host's string library through the string metatable so
-- every number the report formats comes out as 42.
getmetatable("").__index.format = function() return "42" end
