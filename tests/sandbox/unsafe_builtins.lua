-- Hostile: the escape hatches of the base library.  Each must be refused;
-- the plugin reports what it could do through the error it raises last.
local got = {}
local function try(what, f)
  local ok = pcall(f)
  if ok then got[#got + 1] = what end
end
try("load binary", function() assert(load("\27Lua\84\0", "x", "b")) end)
try("load binary mode t", function() assert(load("\27Lua\84\0")) end)
try("string.dump", function() return string.dump(function() end) end)
try("(''):dump", function() return (""):dump(function() end) end)
try("collectgarbage collect", function() collectgarbage("collect") end)
try("__gc", function() setmetatable({}, { __gc = function() end }) end)
try("io", function() return io.open end)
try("io through load", function() return load("return io")() end)
try("debug", function() return debug.getinfo end)
try("package", function() return package.loaded end)
try("os.execute", function() return os.execute end)
try("string metatable", function() getmetatable("").__index.rep = nil end)
try("sp.sys", function() return sp.sys.spawn end)
try("sp.plot", function() return sp.plot.lines end)
try("sp.json", function() return sp.json.read end)
try("sp.yaml", function() return sp.yaml.load_file end)
try("replace sp.ols", function() sp.ols = nil end)
try("frame methods", function() getmetatable(sp.frame { x = { 1 } }).__index.copy = nil end)
assert(collectgarbage("count") > 0, "collectgarbage('count') is allowed")
assert(load("return 1 + 1")() == 2, "text chunks load")
error("escaped: [" .. table.concat(got, ", ") .. "]")
