-- testlib: the few helpers every Lua test uses.
--   local T = require "testlib"   (tests set package.path to tests/lua/)
--   T.check(cond, "what")            one PASS/FAIL line; failures counted
--   T.near(got, want, rtol, "what")  relative comparison (absolute near 0)
--   T.checkerr("pattern", f, ...)    f(...) must raise an error matching pattern
--   T.read(path)                     a file's bytes, or nil when it cannot be opened
--   T.write(path, text)              writes (checked) and returns path
--   T.edit(text, from, to)           text with the first 'from' (plain) replaced by 'to'
--   T.runner(dir, seconds)           sh(argv) -> code, stdout, stderr of a child run to the end
--   T.done()                         prints the tally; exits non-zero on failure
local T = { passed = 0, failed = 0 }

local function report(ok, what, detail)
  if ok then
    T.passed = T.passed + 1
    print("PASS " .. what)
  else
    T.failed = T.failed + 1
    print("FAIL " .. what .. (detail and (": " .. detail) or ""))
  end
end

function T.check(cond, what, detail) report(not not cond, what, detail) end

function T.near(got, want, rtol, what)
  rtol = rtol or 1e-10
  local ok
  if type(got) ~= "number" then
    ok = false
  elseif want ~= want then
    ok = got ~= got
  else
    local scale = math.max(math.abs(want), 1e-300)
    ok = math.abs(got - want) <= rtol * scale or math.abs(got - want) <= rtol * 1e-12
  end
  report(ok, what, string.format("got %.17g want %.17g (rtol %g)", tonumber(got) or 0/0, want, rtol))
end

function T.checkerr(pattern, f, ...)
  local ok, err = pcall(f, ...)
  local msg = tostring(err)
  if ok then
    report(false, "error '" .. pattern .. "'", "no error raised")
  else
    report(msg:find(pattern) ~= nil, "error '" .. pattern .. "'", "message was: " .. msg)
  end
  return msg
end

function T.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function T.write(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
  return path
end

function T.edit(text, from, to)
  if not from then return text end
  local i, j = text:find(from, 1, true)
  assert(i, "test setup: '" .. from .. "' not in the text")
  return text:sub(1, i - 1) .. to .. text:sub(j + 1)
end

--- A runner of child processes, their output in files under dir: sh(argv)
--- runs argv to the end (SIGKILL after `seconds`, then code is false) and
--- returns its exit code, standard output and standard error.
function T.runner(dir, seconds)
  local S = require("spillover").sys
  local n = 0
  return function(argv)
    n = n + 1
    local out, err = dir .. "/c" .. n .. ".out", dir .. "/c" .. n .. ".err"
    local pid = assert(S.spawn(argv, { stdout = out, stderr = err }))
    local code = S.wait(pid, seconds)
    if code == false then S.kill(pid, 9); S.wait(pid) end
    return code, T.read(out) or "", T.read(err) or ""
  end
end

function T.done()
  print(string.format("%d passed, %d failed", T.passed, T.failed))
  if T.failed > 0 then os.exit(1) end
end

return T
