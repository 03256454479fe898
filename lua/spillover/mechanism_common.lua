-- spillover.mechanism_common: what the mechanism modules (mediation, margins,
-- heterogeneity) share: checks of the columns and formula parts users name,
-- their regressions built as formula objects, the regressions themselves
-- (sp.ols's pipeline on rows held fixed, or point estimates only for
-- bootstraps and permutations) and the number formats of the printed reports.
local core = require "spillover.core"
local linear = require "spillover.linear"
local formula_object = require "spillover.formula"
local util = require "spillover.util"
local raise = util.raise

local function as_list(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end


--- Key of a cell for grouping (util.key_of); nil for a missing number, so
--- rows with a missing group or unit are left out.
local function key_of(v)
  if v ~= v then return nil end
  return util.key_of(v)
end

--- All values of a column as a Lua array (numbers, or strings / nil).
local function column_values(d, name)
  local c = d:column(name)
  if type(c) == "table" then return c end
  return c:tovector()
end

--- Rows by the key of a column's cells: {key -> rows in frame order} and the
--- keys in order of first appearance; rows with a missing cell are left out.
local function rows_by_key(d, name)
  local vals = column_values(d, name)
  local rows, order = {}, {}
  for i = 1, d:nrow() do
    local k = key_of(vals[i])
    if k ~= nil then
      if not rows[k] then rows[k] = {}; order[#order + 1] = k end
      local t = rows[k]
      t[#t + 1] = i
    end
  end
  return rows, order
end

--- Does the frame have column `name`?  A wrong name raises with the frame's
--- own did-you-mean suggestion, prefixed by what the name was for.
local function check_column(fname, d, name, what)
  if type(name) ~= "string" or name == "" then
    raise(string.format("%s: %s must be a column name (a string), got %s", fname, what, type(name)))
  end
  local ok, err = pcall(d.column, d, name)
  if not ok then
    raise(string.format("%s: %s: %s", fname, what, util.message(err)))
  end
end


local function numeric_column(fname, d, name, what)
  check_column(fname, d, name, what)
  if type(d:column(name)) == "table" then
    raise(string.format("%s: %s '%s' is categorical; expected a numeric column", fname, what, name))
  end
end

--- Controls as formula text: "a + b", {"a", "b"} or nil.
local function controls_text(fname, c)
  if c == nil then return nil end
  if type(c) == "string" then
    if c:match("^%s*$") then return nil end
    if c:find("[~|]") then
      raise(fname .. ": controls must be regressors such as \"lngdp + urban\", not a formula ('" .. c .. "')")
    end
    return c
  end
  if type(c) == "table" then
    for i, v in ipairs(c) do
      if type(v) ~= "string" then raise(string.format("%s: controls[%d] must be a string", fname, i)) end
    end
    return #c > 0 and table.concat(c, " + ") or nil
  end
  raise(fname .. ": controls must be a string like \"lngdp + urban\" or a list of names")
end

local function fe_text(fname, fe)
  if fe == nil then return nil end
  if type(fe) == "table" then fe = table.concat(fe, " + ") end
  if type(fe) ~= "string" then raise(fname .. ": fe must be a string like \"province + year\" or a list") end
  if fe:match("^%s*$") or fe:match("^%s*0%s*$") then return nil end
  return fe
end

--- The formula object "y ~ terms | fe": y a column name, terms and fe
--- formula text (absent controls are a nil at the end of terms).
local function formula_of(y, terms, fe)
  return formula_object.build { response = formula_object.quote(y), terms = terms, fe = fe and { fe } or nil }
end

--- The formula object of a user's formula "y ~ x + ... | fe" (IV parts refused).
local function read_formula(fname, formula)
  if type(formula) ~= "string" and not formula_object.is_formula(formula) then
    raise(fname .. ": expected a formula string")
  end
  local ok, f = pcall(formula_object.parse, formula)
  if not ok or not f:response() then
    raise(fname .. ": '" .. tostring(formula) .. "' is not a formula \"y ~ x + ... | fe\"" ..
      (ok and "" or " (" .. util.message(f):match("^[^\n]*") .. ")"))
  end
  if f:iv() then raise(fname .. ": instrumental-variable formulas are not supported here") end
  return f
end

local function sorted_finite(t)
  local s = {}
  for _, v in ipairs(t) do if v == v and v ~= math.huge and v ~= -math.huge then s[#s + 1] = v end end
  table.sort(s)
  return s
end

local function mean_sd(t)
  local n, s = 0, 0
  for _, v in ipairs(t) do if v == v then n, s = n + 1, s + v end end
  if n == 0 then return 0 / 0, 0 / 0 end
  local m = s / n
  local ss = 0
  for _, v in ipairs(t) do if v == v then ss = ss + (v - m) ^ 2 end end
  return m, n > 1 and math.sqrt(ss / (n - 1)) or 0 / 0
end

--- sp.ols on a formula with extra variables in the listwise deletion (so every
--- equation of a mediation model uses the same rows).
local function ols_extra(d, formula, opts, extra)
  local compat = linear.check_compat(opts)
  local vc = linear.parse_vcov(opts.vcov)
  local ex, seen = {}, {}
  for _, list in ipairs { linear.extra_vars(d, vc, opts), extra or {} } do
    for _, v in ipairs(list) do
      if not seen[v] then seen[v] = true; ex[#ex + 1] = v end
    end
  end
  local des = core.design(d, formula, { extra = ex })
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local fit = linear.fit_design(d, des, tostring(formula), o, compat, vc, ex)
  fit.depvar = formula:response()
  return fit
end

--- Least squares for point estimates only: demean [y X] once, then solve.
--- Returns {des, y, X (demeaned), names, fe_dof} so callers can solve several
--- equations over subsets of the columns.
local function demeaned_design(d, formula, extra)
  local des = core.design(d, formula, { extra = extra })
  local n, k = des.n, des.k
  local y, X, fe_dof, scale = des.y, des.X, 0, linear.colsumsq(des.X)
  if #des.fe > 0 then
    local absorb = core.absorb(des)
    fe_dof = absorb:dof()
    local Mx = core.matrix.hcat(y, X)
    absorb:demean(Mx, { allow_nonconvergence = true })
    y = Mx:col(1)
    X = k > 0 and Mx:view(1, 2, n, k) or nil
  end
  local col = {}
  for j, nm in ipairs(des.names) do col[nm] = j end
  return { des = des, y = y, X = X, names = des.names, col = col, n = n, fe_dof = fe_dof, scale = scale }
end

--- Solve y on the named columns of a demeaned design: b by name (NaN when a
--- column was dropped as collinear).
local function solve_named(dd, y, names)
  local parts, sc = {}, {}
  for i, nm in ipairs(names) do
    local j = dd.col[nm]
    parts[i] = dd.X:col(j)
    sc[i] = dd.scale[j]
  end
  local X = #parts == 1 and parts[1]:copy() or core.matrix.hcat(table.unpack(parts))
  local f = core.lsfit(X, y, { scale = core.matrix(sc) })
  local b = {}
  for i, nm in ipairs(names) do b[nm] = f.keep[i] and f.b:get(i, 1) or 0 / 0 end
  return b, f
end


local function fmt(v, w)
  w = w or 10
  if v == nil then return string.rep(" ", w) end
  if v ~= v then return string.format("%" .. w .. "s", "NA") end
  local a = math.abs(v)
  if a ~= 0 and (a >= 1e5 or a < 1e-3) then return string.format("%" .. w .. ".3e", v) end
  return string.format("%" .. w .. ".4f", v)
end

local function fmtp(p)
  if p == nil or p ~= p then return "        NA" end
  if p < 1e-4 then return string.format("%10.2e", p) end
  return string.format("%10.4f", p)
end


return {
  as_list = as_list, key_of = key_of, column_values = column_values, rows_by_key = rows_by_key,
  check_column = check_column, numeric_column = numeric_column,
  controls_text = controls_text, fe_text = fe_text, formula_of = formula_of, read_formula = read_formula,
  sorted_finite = sorted_finite, mean_sd = mean_sd, ols_extra = ols_extra, demeaned_design = demeaned_design,
  solve_named = solve_named, fmt = fmt, fmtp = fmtp,
}
