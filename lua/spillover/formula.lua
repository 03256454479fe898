-- spillover.formula: a formula as an object over the C parser's tree.
--
--   local F = require "spillover.formula"      -- sp.formula(text) is F.parse
--   local f = F.parse("y ~ x1 + l(y, 1) + log(x2) | fe1 + fe2 | d ~ z1 + z2")
--   f:response()  f:terms()  f:fe()  f:iv()  f:response_lags()  ...
--   f:without_iv():with_terms({"x3"})          -- rewrites return new objects
--
-- Modules never cut formula text apart: they ask this object, and build new
-- formulas with its rewrites, which print the parts back in canonical form
-- and parse the result again.  So a rewritten formula is always one the C
-- parser accepted, its tree and text agree, and a name that needs
-- backquotes (`gdp growth`) keeps them.
--
-- The object keeps the fields of the parse table (text, lhs, rhs, fe, endog,
-- inst, intercept, nparts, vars) for scripts written against sp.formula's
-- table.  Two of them share a name with a method, so those two lists are
-- callable: f.fe[1].name and #f.fe read the list, f:fe() gives the names.
local core = require "spillover.core"
local raise = require("spillover.util").raise

local M = {}
local Formula = {}
local meta = { __index = Formula, __name = "spillover.formula" }

-- ---- printing ------------------------------------------------------------------------

--- The name as formula text: backquoted unless the tokenizer reads it as
--- one name (letters, digits, _ and . and non-ASCII bytes, not starting
--- with a digit or with '.' and a digit, which start a number).
function M.quote(name)
  if type(name) ~= "string" or name == "" then
    raise("formula.quote: expected a variable name (a non-empty string)")
  end
  if name:find("^[%a_.\128-\255][%w_.\128-\255]*$") and not name:find("^%.%d") then return name end
  if name:find("`", 1, true) then
    raise("formula.quote: the name '" .. name .. "' contains a backquote and cannot be written in a formula")
  end
  return "`" .. name .. "`"
end

local function quote_level(ref)
  if not ref:find('"', 1, true) then return '"' .. ref .. '"' end
  if not ref:find("'", 1, true) then return "'" .. ref .. "'" end
  return "`" .. ref .. "`"
end

--- A node as text that parses back to the same node.  It follows the C
--- labels (R's deparse spacing) but quotes names, which labels do not.
local function fmt(n)
  local kind, a = n.kind, n.args
  if kind == "var" then return M.quote(n.var) end
  if kind == "number" then return n.name end
  if kind == "op" then
    if #a == 1 then return "-" .. fmt(a[1]) end
    if n.op == "/" or n.op == "^" then return fmt(a[1]) .. n.op .. fmt(a[2]) end
    return fmt(a[1]) .. " " .. n.op .. " " .. fmt(a[2])
  end
  if kind == "paren" then return "(" .. fmt(a[1]) .. ")" end
  if kind == "call" then return n.fn .. "(" .. fmt(a[1]) .. ")" end
  if kind == "I" then return "I(" .. fmt(a[1]) .. ")" end
  if kind == "lag" or kind == "lead" then return string.format("%s(%s, %d)", n.fn, fmt(a[1]), n.k) end
  if kind == "diff" then
    return n.k == 1 and "d(" .. fmt(a[1]) .. ")" or string.format("d(%s, %d)", fmt(a[1]), n.k)
  end
  if kind == "factor" then
    local s = "i(" .. fmt(a[1])
    if a[2] then s = s .. ", " .. fmt(a[2]) end
    if n.ref then s = s .. ", ref = " .. quote_level(n.ref) end
    return s .. ")"
  end
  local parts = {}  -- interaction a:b, combination a^b
  for i, x in ipairs(a) do parts[i] = fmt(x) end
  return table.concat(parts, kind == "interaction" and ":" or "^")
end

--- A term of a formula (one of f.rhs, f.fe, ...) as formula text:
--- `gdp growth`:x for the term labelled "gdp growth:x".
function M.format_term(node)
  if type(node) ~= "table" or type(node.kind) ~= "string" then
    raise("formula.format_term: expected a term of a formula (such as f.rhs[1])")
  end
  return fmt(node)
end

local function join(nodes)
  local out = {}
  for i, t in ipairs(nodes) do out[i] = fmt(t) end
  return table.concat(out, " + ")
end

--- Canonical text of the parts {lhs, rhs, intercept, fe, endog, inst}.
local function compose(p)
  local rhs
  if #p.rhs == 0 then rhs = p.intercept and "1" or "0"
  else rhs = join(p.rhs) .. (p.intercept and "" or " - 1") end
  local s = (p.lhs and fmt(p.lhs) .. " " or "") .. "~ " .. rhs
  if #p.fe > 0 then s = s .. " | " .. join(p.fe) end
  if #p.endog > 0 then s = s .. " | " .. join(p.endog) .. " ~ " .. join(p.inst) end
  return s
end

-- ---- parsing -------------------------------------------------------------------------

local function labels(nodes)
  local out = {}
  for i, t in ipairs(nodes) do out[i] = t.name end
  return out
end

local fe_list = { __call = function(list) return labels(list) end }
local vars_list = { __call = function(list) return table.move(list, 1, #list, 1, {}) end }

--- The formula object of a text (or the object itself).  "~ x" (no
--- response) is accepted; estimators that need a response say so.
function M.parse(text)
  if getmetatable(text) == meta then return text end
  if type(text) ~= "string" then
    raise("formula: expected a formula string such as \"y ~ x1 + x2\", got " .. type(text))
  end
  local f = core.formula(text, { optional_response = true })
  f.endog = f.endog or {}
  f.inst = f.inst or {}
  setmetatable(f.fe, fe_list)
  setmetatable(f.vars, vars_list)
  return setmetatable(f, meta)
end

function M.is_formula(x) return getmetatable(x) == meta end

-- ---- reading -------------------------------------------------------------------------

function Formula:format() return compose(self) end
meta.__tostring = Formula.format

--- Two nodes are the same term (positions aside).
local function same(a, b)
  if a == nil or b == nil then return a == b end
  if a.kind ~= b.kind or a.var ~= b.var or a.fn ~= b.fn or a.k ~= b.k or a.ref ~= b.ref or a.op ~= b.op
     or a.value ~= b.value or #a.args ~= #b.args then
    return false
  end
  for i = 1, #a.args do
    if not same(a.args[i], b.args[i]) then return false end
  end
  return true
end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if not same(a[i], b[i]) then return false end
  end
  return true
end

--- Equal formulas have the same response, terms in the same order,
--- intercept, fixed effects and IV part, however they were written.
meta.__eq = function(a, b)
  return same(a.lhs, b.lhs) and a.intercept == b.intercept and same_list(a.rhs, b.rhs)
    and same_list(a.fe, b.fe) and same_list(a.endog, b.endog) and same_list(a.inst, b.inst)
end

--- The response as the design names it ("log(gsp)"), or nil for "~ x".
function Formula:response() return self.lhs and self.lhs.name end

local function collect_vars(n, out, seen)
  if n.kind == "var" then
    if not seen[n.var] then seen[n.var] = true; out[#out + 1] = n.var end
    return
  end
  for _, x in ipairs(n.args) do collect_vars(x, out, seen) end
end

--- The variables the response uses ({"gsp"} for log(gsp)); {} without one.
function Formula:response_vars()
  local out = {}
  if self.lhs then collect_vars(self.lhs, out, {}) end
  return out
end

--- Right-hand-side term labels, in order ("x1", "l(y, 1)", "a:b",
--- "i(region)"); each is the design's column name except i(), which makes
--- one column per level.
function Formula:terms() return labels(self.rhs) end

function Formula:iv()
  if #self.endog == 0 then return nil end
  return { endogenous = labels(self.endog), instruments = labels(self.inst) }
end

function Formula:has_intercept() return self.intercept end

--- Sorted lags k >= 1 of the response used anywhere on the right-hand side
--- or in the IV part: l(y, k), f(y, -k) and d(y, k) (= y - l(y, k)), also
--- inside interactions and functions.  {} when there are none.
function Formula:response_lags()
  local lhs, found, out = self.lhs, {}, {}
  if lhs == nil then return out end
  local function walk(n)
    if (n.kind == "lag" or n.kind == "lead" or n.kind == "diff") and same(n.args[1], lhs) then
      local k = n.kind == "lead" and -n.k or n.k
      if k >= 1 and not found[k] then found[k] = true; out[#out + 1] = k end
    end
    for _, x in ipairs(n.args) do walk(x) end
  end
  for _, list in ipairs { self.rhs, self.endog, self.inst } do
    for _, t in ipairs(list) do walk(t) end
  end
  table.sort(out)
  return out
end

-- ---- rewrites --------------------------------------------------------------------------

--- The first line of a parse error (its message, without the caret lines).
local function reason(err)
  return ((type(err) == "table" and err.msg or tostring(err)):match("^[^\n]*"))
end

local function parts(f)
  return { lhs = f.lhs, rhs = table.move(f.rhs, 1, #f.rhs, 1, {}), intercept = f.intercept,
           fe = table.move(f.fe, 1, #f.fe, 1, {}), endog = f.endog, inst = f.inst }
end

local function rebuild(p) return M.parse(compose(p)) end

--- f with nodes appended to one of its parts ("rhs" or "fe").
local function extended(f, part, nodes)
  local p = parts(f)
  table.move(nodes, 1, #nodes, #p[part] + 1, p[part])
  return rebuild(p)
end

--- The term nodes of a list of term texts ("x3", "l(y, 1:2)", "a*b") or
--- nodes of another formula.  what names the method in errors.
local function term_nodes(list, what)
  if type(list) ~= "table" then
    raise(what .. ": expected a list of terms such as {\"x3\", \"log(x4)\"}")
  end
  local out = {}
  for i, t in ipairs(list) do
    if type(t) == "table" and t.kind then
      out[#out + 1] = t
    elseif type(t) == "string" then
      local ok, g = pcall(core.formula, "~ " .. t, { optional_response = true })
      if not ok then
        raise(what .. ": '" .. t .. "' is not a formula term (" .. reason(g) .. ")")
      end
      if g.nparts ~= 1 or not g.intercept or #g.rhs == 0 then
        raise(what .. ": '" .. t .. "' is not a term (no '|', '0', '1' or '- 1' here)")
      end
      table.move(g.rhs, 1, #g.rhs, #out + 1, out)
    else
      raise(string.format("%s: item %d must be a term string, found %s", what, i, type(t)))
    end
  end
  return out
end

--- The node of a response text ("y", "log(y)").
local function response_node(text, what)
  local ok, g = type(text) == "string", "found " .. type(text)
  if ok then ok, g = pcall(core.formula, text .. " ~ 1") end
  if not ok then
    raise(what .. ": expected a response such as \"y\" or \"log(y)\" (" .. reason(g) .. ")")
  end
  return g.lhs
end

--- The nodes of a list of fixed-effect texts ("g", "a^b", or several: "a + b").
local function fe_nodes(list, what)
  if type(list) ~= "table" then
    raise(what .. ": expected a list of fixed effects such as {\"g\", \"a^b\"}")
  end
  if #list == 0 then return {} end
  for i, t in ipairs(list) do
    if type(t) ~= "string" then
      raise(string.format("%s: fixed effect %d must be a string, found %s", what, i, type(t)))
    end
  end
  local ok, g = pcall(core.formula, "~ 1 | " .. table.concat(list, " + "), { optional_response = true })
  if not ok or #g.fe == 0 or (g.endog and #g.endog > 0) then
    raise(what .. ": expected variable names or combinations a^b, found {" .. table.concat(list, ", ") .. "}" ..
      (ok and "" or " (" .. reason(g) .. ")"))
  end
  return g.fe
end

--- A formula from parts given as formula text:
--- build{response = "y", terms = {"x", "a*b"}, fe = {"g"}, intercept = true}
--- (response, fe and intercept optional).  Column names that may need
--- backquotes go through F.quote.
function M.build(spec)
  if type(spec) ~= "table" then
    raise("formula.build: expected {response =, terms =, fe =, intercept =}")
  end
  local p = { rhs = term_nodes(spec.terms or {}, "formula.build"), fe = fe_nodes(spec.fe or {}, "formula.build"),
    intercept = spec.intercept ~= false, endog = {}, inst = {} }
  if spec.response ~= nil then p.lhs = response_node(spec.response, "formula.build") end
  return rebuild(p)
end

function Formula:without_response()
  local p = parts(self)
  p.lhs = nil
  return rebuild(p)
end

--- With the response set to an expression ("z", "log(z)").
function Formula:with_response(text)
  local p = parts(self)
  p.lhs = response_node(text, "with_response")
  return rebuild(p)
end

function Formula:without_fe()
  local p = parts(self)
  p.fe = {}
  return rebuild(p)
end

--- With fixed effects added (texts such as "g", "a^b" or "a + b"; write a
--- column name through F.quote when it may need backquotes).
function Formula:with_fe(list) return extended(self, "fe", fe_nodes(list, "with_fe")) end

--- Without the IV part: the endogenous regressors become ordinary ones.
function Formula:without_iv()
  local p = parts(self)
  table.move(p.endog, 1, #p.endog, #p.rhs + 1, p.rhs)
  p.endog, p.inst = {}, {}
  return rebuild(p)
end

--- With terms added at the end of the regressors (duplicates are dropped,
--- as the parser drops them).
function Formula:with_terms(list) return extended(self, "rhs", term_nodes(list, "with_terms")) end

--- Without the given terms; each must be a term of the formula.
function Formula:without_terms(list)
  local drop = {}
  for _, t in ipairs(term_nodes(list, "without_terms")) do drop[t.name] = true end
  local have = {}
  for _, t in ipairs(self.rhs) do have[t.name] = true end
  for name in pairs(drop) do
    if not have[name] then
      raise("without_terms: '" .. name .. "' is not a term of '" .. compose(self) .. "'")
    end
  end
  local p = parts(self)
  p.rhs = {}
  for _, t in ipairs(self.rhs) do
    if not drop[t.name] then p.rhs[#p.rhs + 1] = t end
  end
  return rebuild(p)
end

return M
