-- test_examples: every script in examples/ runs to completion (they check
-- their own numbers and raise when something is off).
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local exe = arg[-1] or "spillover"
local list = io.popen("ls examples/*.lua")
for path in list:lines() do
  local ok, how, code = os.execute(exe .. " " .. path .. " > /dev/null")
  T.check(ok == true, path .. " runs", string.format("%s %s", tostring(how), tostring(code)))
end
list:close()
T.done()
