-- spillover.derive: evaluating expressions over a frame with the formula
-- language (`log(patents)`, `l(x, 1)`, `I(rd / gdp)`, `x1:x2`), so derived
-- variables in scripts and scenarios mean exactly what they mean in formulas.
local core = require "spillover.core"

local M = {}

local F = require "spillover.formula"
local util = require "spillover.util"
local raise = util.raise

--- Scatter the rows of a design column into a full-length vector (NaN elsewhere).
local function scatter(nrow, des, j)
  local out = core.matrix(nrow, 1, 0 / 0)
  local rows, X = des.rows, des.X
  for i = 1, #rows do out:set(rows[i], 1, X:get(i, j)) end
  return out
end

--- The design of a right-hand side alone (`x1 + log(x2) | fe`), for every
--- row where its terms exist: a formula without a response builds X alone.
function M.design_rhs(d, rhs, opts)
  return core.design(d, F.parse("~ " .. rhs), opts)
end

--- The formula object of an expression ("~ expr"), refusing what the formula
--- language would read as something other than arithmetic: "y - 1" drops the
--- intercept and "y - x" removes a term, so both would silently give y.
local function expression(expr)
  local ok, f = pcall(F.parse, "~ " .. expr)
  if not ok then raise("eval '" .. expr .. "': " .. util.message(f):gsub("~ " .. expr:gsub("%p", "%%%0"), expr)) end
  if f.nremoved > 0 or not f:has_intercept() then
    raise("eval '" .. expr .. "': '-', '+ 0' and '- 1' mean removing terms in the formula language; write " ..
      "arithmetic inside I(), as in I(" .. expr .. ")")
  end
  return f
end

--- The variables an expression reads; nil, message when it does not parse.
function M.inputs(expr)
  local ok, f = pcall(expression, expr)
  if not ok then return nil, (util.message(f):gsub("^eval '.-': ", "")) end
  return f:vars()
end

--- The value of one expression for every row of d: an nrow x 1 matrix, NaN
--- where it is undefined (missing inputs, a lag before the panel starts, the
--- log of a non-positive number).  Errors name the expression.
function M.eval(d, expr)
  if type(expr) ~= "string" or expr:match("^%s*$") then
    raise("eval: expected an expression string such as \"log(patents)\"")
  end
  if expr:find("[~|]") then raise("eval: '" .. expr .. "' is a formula, not an expression") end
  local f = expression(expr)
  local ok, des = pcall(core.design, d, f, { intercept = false })
  if not ok then raise("eval '" .. expr .. "': " .. util.message(des)) end
  if des.k == 0 then raise("eval '" .. expr .. "': the expression has no variable; a constant is I(0 * x + 1)") end
  if des.k ~= 1 then
    raise(string.format("eval: '%s' expands to %d columns (%s); derive one variable at a time", expr, des.k,
      table.concat(des.names, ", ")))
  end
  return scatter(d:nrow(), des, 1)
end

return M
