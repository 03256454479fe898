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

--- The design of a right-hand side alone (`x1 + log(x2) | fe`), for every
--- row where its terms exist.  The formula language needs a response, so a
--- constant one is added to d for the duration of the call and removed again
--- (cheaper than copying the frame); errors are re-raised as they came.
function M.design_rhs(d, rhs, opts)
  d[ONE] = 1
  local ok, des = pcall(core.design, d, ONE .. " ~ " .. rhs, opts)
  d[ONE] = nil
  if not ok then error(des, 0) end
  return des
end

--- The value of one expression for every row of d: an nrow x 1 matrix, NaN
--- where it is undefined (missing inputs, a lag before the panel starts, the
--- log of a non-positive number).  Errors name the expression.
function M.eval(d, expr)
  if type(expr) ~= "string" or expr:match("^%s*$") then
    error("eval: expected an expression string such as \"log(patents)\"", 2)
  end
  if expr:find("[~|]") then error("eval: '" .. expr .. "' is a formula, not an expression", 2) end
  local ok, des = pcall(M.design_rhs, d, "0 + " .. expr)
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
