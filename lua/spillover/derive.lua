-- spillover.derive: evaluating expressions over a frame with the formula
-- language (`log(patents)`, `l(x, 1)`, `I(rd / gdp)`, `x1:x2`), so derived
-- variables in scripts and scenarios mean exactly what they mean in formulas.
local core = require "spillover.core"

local M = {}

local ONE = "sp_one__"

--- Scatter the rows of a design column into a full-length vector (NaN elsewhere).
local function scatter(nrow, des, j)
  local out = core.matrix(nrow, 1, 0 / 0)
  local rows, X = des.rows, des.X
  for i = 1, #rows do out:set(rows[i], 1, X:get(i, j)) end
  return out
end

--- The value of one expression for every row of d: an nrow x 1 matrix, NaN
--- where it is undefined (missing inputs, a lag before the panel starts, the
--- log of a non-positive number).  Errors name the expression.
function M.eval(d, expr)
  if type(expr) ~= "string" or expr:match("^%s*$") then
    error("eval: expected an expression string such as \"log(patents)\"", 2)
  end
  if expr:find("[~|]") then error("eval: '" .. expr .. "' is a formula, not an expression", 2) end
  local nd = d:copy()
  nd[ONE] = 1
  local ok, des = pcall(core.design, nd, ONE .. " ~ 0 + " .. expr)
  if not ok then
    local msg = tostring(des):gsub(ONE .. " ~ 0 %+ ", "")
    error("eval '" .. expr .. "': " .. msg, 2)
  end
  if des.k ~= 1 then
    error(string.format("eval: '%s' expands to %d columns (%s); derive one variable at a time", expr, des.k,
      table.concat(des.names, ", ")), 2)
  end
  return scatter(d:nrow(), des, 1)
end

return M
