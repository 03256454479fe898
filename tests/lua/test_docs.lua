-- test_docs: every ```lua block in docs/ runs, so examples cannot rot.
-- Each block is a standalone chunk run from the repository root; its output
-- is captured (print is redirected) and discarded.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"

local list = io.popen("find docs README.md -name '*.md' | sort")
local files = {}
for f in list:lines() do files[#files + 1] = f end
list:close()
T.check(#files > 0, "docs found")

local real_print = print
for _, path in ipairs(files) do
  local fh = assert(io.open(path))
  local text = fh:read("a")
  fh:close()
  local line_no, n = 0, 0
  local in_block, block, start = false, nil, 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    line_no = line_no + 1
    if not in_block and line:match("^```lua%s*$") then
      in_block, block, start = true, {}, line_no + 1
    elseif in_block and line:match("^```%s*$") then
      in_block = false
      n = n + 1
      local code = table.concat(block, "\n")
      local chunk, err = load(code, "=" .. path .. ":" .. start, "t")
      local ok = chunk ~= nil
      if ok then
        print = function() end
        ok, err = pcall(chunk)
        print = real_print
      end
      T.check(ok, string.format("%s:%d example %d runs", path, start, n), tostring(err))
    elseif in_block then
      block[#block + 1] = line
    end
  end
end
T.done()
