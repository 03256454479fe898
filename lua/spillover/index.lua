-- spillover.index: composite indices built from regional indicators (the
-- "measure" job of spillover): the entropy-weight method, TOPSIS, a principal-
-- component index and the coupling coordination degree.
--
-- Everything here is plain Lua over copies of frame columns: the work is
-- O(rows x indicators) with a handful of passes, far from any hot loop, so no
-- C is needed.  docs/api/index.md states every formula and convention.
--
-- Each estimating function returns a result table (metatable spillover.index)
-- that records what `apply` needs to score new (for example shocked) data with
-- the baseline weights AND the baseline normalisation, so that a counterfactual
-- moves the index without re-estimating it.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local did_you_mean = require("spillover.suggest").did_you_mean

local M = {}

-- ---- errors ------------------------------------------------------------------
--
-- Helpers raise a private error object; each public entry point turns it into
-- "<function>: <message>" at its caller's line.  Other errors (bugs, core
-- errors) pass through unchanged.

local Failure = {}

local function fail(fmt, ...)
  error(setmetatable({ msg = string.format(fmt, ...) }, Failure), 0)
end

local function public(name, impl)
  return function(...)
    local res = table.pack(pcall(impl, ...))
    if res[1] then return table.unpack(res, 2, res.n) end
    local e = res[2]
    if getmetatable(e) == Failure then raise(name .. ": " .. e.msg) end
    error(e, 0)
  end
end

-- ---- small utilities -----------------------------------------------------------

local function typename(x)
  local mt = getmetatable(x)
  if type(mt) == "table" and type(mt.__name) == "string" then return mt.__name end
  return type(x)
end

local function is_frame(x) return typename(x) == "spillover.frame" end
local function is_matrix(x) return typename(x) == "spillover.matrix" end
local function isnan(x) return x ~= x end

local function check_options(opts, allowed)
  local problem = util.options_problem(opts, allowed)
  if problem then fail("%s", problem) end
  return opts or {}
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- ---- reading indicators ---------------------------------------------------------

--- The indicator columns as Lua arrays.
-- d is a frame (vars: its numeric column names) or a matrix (vars: optional
-- names for its columns, default x1, x2, ...).  Returns names, cols, n.
local function read_indicators(d, vars)
  if is_frame(d) then
    if type(vars) == "string" then vars = { vars } end
    if type(vars) ~= "table" or #vars == 0 then
      fail("expected a list of indicator columns as argument 2, got %s",
           type(vars) == "table" and "an empty table" or "a " .. typename(vars))
    end
    local have = d:names()
    local present = set_of(have)
    local seen, cols = {}, {}
    for j, name in ipairs(vars) do
      if type(name) ~= "string" then fail("indicator %d is a %s (expected a column name)", j, typename(name)) end
      if not present[name] then fail("no column '%s' in the frame%s", name, did_you_mean(name, have)) end
      if seen[name] then fail("indicator '%s' is listed twice", name) end
      seen[name] = true
      local c = d:column(name)
      if not is_matrix(c) then
        fail("column '%s' is categorical (expected a numeric indicator)", name)
      end
      cols[j] = c:totable()
    end
    return vars, cols, d:nrow()
  elseif is_matrix(d) then
    local n, k = d:shape()
    local names = {}
    if vars == nil then
      for j = 1, k do names[j] = "x" .. j end
    elseif type(vars) == "table" and #vars == k then
      for j = 1, k do
        if type(vars[j]) ~= "string" then fail("name %d is a %s (expected a string)", j, typename(vars[j])) end
        names[j] = vars[j]
      end
    else
      fail("the matrix has %d columns but %s names were given", k,
           type(vars) == "table" and tostring(#vars) or "no list of")
    end
    if k == 0 then fail("the matrix has no columns (expected at least one indicator)") end
    local cols = {}
    for j = 1, k do
      local c = {}
      for i = 1, n do c[i] = d:get(i, j) end
      cols[j] = c
    end
    return names, cols, n
  end
  fail("expected a spillover.frame or spillover.matrix as argument 1, got a %s", typename(d))
end

--- Direction per indicator: +1 (larger is better) or -1.
-- spec maps names (or positions) to "+", "-", "positive", "negative", 1 or -1.
local function parse_direction(spec, names)
  local dir = {}
  for j = 1, #names do dir[j] = 1 end
  if spec == nil then return dir end
  if type(spec) ~= "table" then fail("direction must be a table {name = \"+\" | \"-\"}, got a %s", typename(spec)) end
  local pos = {}
  for j, name in ipairs(names) do pos[name] = j end
  for key, v in pairs(spec) do
    local j
    if math.type(key) == "integer" and key >= 1 and key <= #names then
      j = key
    elseif type(key) == "string" then
      j = pos[key]
      if not j then
        fail("direction names '%s', which is not one of the indicators%s (expected one of %s)", key,
             did_you_mean(key, names), table.concat(names, ", "))
      end
    else
      fail("direction key %s is not an indicator name", tostring(key))
    end
    local s
    if v == "+" or v == "positive" or v == 1 then s = 1
    elseif v == "-" or v == "negative" or v == -1 then s = -1
    else
      fail("direction of '%s' is %s (expected \"+\" or \"-\")", names[j],
           type(v) == "string" and ("'" .. v .. "'") or tostring(v))
    end
    dir[j] = s
  end
  return dir
end

--- Group key per row (nil: no group) and the sorted list of groups.
local function read_groups(d, by, n)
  if by == nil then
    local key = {}
    for i = 1, n do key[i] = true end
    return key, { true }
  end
  if type(by) ~= "string" then fail("'by' must be a column name, got a %s", typename(by)) end
  if not is_frame(d) then fail("'by' needs a frame (argument 1 is a matrix)") end
  local have = d:names()
  if not set_of(have)[by] then fail("no column '%s' in the frame for 'by'%s", by, did_you_mean(by, have)) end
  local c = d:column(by)
  local key = {}
  if is_matrix(c) then
    local t = c:totable()
    for i = 1, n do if not isnan(t[i]) then key[i] = t[i] end end
  else
    for i = 1, n do key[i] = c[i] end
  end
  local seen, groups = {}, {}
  for i = 1, n do
    local g = key[i]
    if g ~= nil and not seen[g] then seen[g] = true; groups[#groups + 1] = g end
  end
  table.sort(groups)
  return key, groups
end

--- Rows of each group that are complete in every indicator (listwise).
local function complete_rows(cols, key, groups, n)
  local rows = {}
  for _, g in ipairs(groups) do rows[g] = {} end
  for i = 1, n do
    local g = key[i]
    if g ~= nil then
      local ok = true
      for j = 1, #cols do
        local x = cols[j][i]
        if isnan(x) or x == math.huge or x == -math.huge then ok = false; break end
      end
      if ok then local r = rows[g]; r[#r + 1] = i end
    end
  end
  return rows
end

local function keystr(g)
  if type(g) == "number" then return string.format("%.15g", g) end
  return tostring(g)
end

local function group_label(g)
  if g == true then return "" end
  return " in group " .. keystr(g)
end

local function bounds_of(col, rows, name, g)
  local lo, hi = math.huge, -math.huge
  for _, i in ipairs(rows) do
    local x = col[i]
    if x < lo then lo = x end
    if x > hi then hi = x end
  end
  if hi == lo then
    fail("indicator '%s' has no variation%s (every one of the %d complete rows is %.17g; expected at least two distinct values)",
         name, group_label(g), #rows, lo)
  end
  return lo, hi
end

-- ---- normalisation (shared by estimation and apply, so both give identical bits) ----

--- Normalised value of x for one indicator: nb = {lo, hi, dir, shift, method}.
local function normalise(x, nb)
  if nb.method == "minmax" then
    if nb.dir > 0 then return (x - nb.lo) / (nb.hi - nb.lo) + nb.shift end
    return (nb.hi - x) / (nb.hi - nb.lo) + nb.shift
  else -- "ratio": linear proportion; the bounds must be positive
    if nb.dir > 0 then return x / nb.hi end
    return nb.lo / x
  end
end

local function score_rows(cols, key, n, wfor, nbfor, scale)
  local s = {}
  for i = 1, n do
    local g = key[i]
    local w, nb = g ~= nil and wfor[g], g ~= nil and nbfor[g]
    local v = 0 / 0
    if w then
      v = 0
      for j = 1, #cols do
        local x = cols[j][i]
        if isnan(x) then v = 0 / 0; break end
        v = v + w[j] * normalise(x, nb[j])
      end
      v = v * scale
    end
    s[i] = v
  end
  return s
end

local function to_column(t, n)
  local m = core.matrix(n, 1)
  for i = 1, n do m[i] = t[i] end
  return m
end

local function write_into(d, into, m)
  if into == nil then return end
  if type(into) ~= "string" then fail("'into' must be a column name, got a %s", typename(into)) end
  if not is_frame(d) then fail("'into' needs a frame (argument 1 is a matrix)") end
  d[into] = m
end

-- ---- result objects ------------------------------------------------------------

local Index = { __name = "spillover.index" }
Index.__index = Index

local function byname(names, values)
  local t = {}
  for j, name in ipairs(names) do t[name] = values[j] end
  return t
end

--- Per-group tables keyed by name, collapsed to one table when pooled.
local function keyed(res, per_group)
  if res.by == nil then return per_group[true] end
  return per_group
end

function Index:__tostring()
  local lines = { string.format("spillover.index (%s): %d indicators, %d of %d rows used%s",
                                self.method, #self.names, self.n, self.nobs,
                                self.by and (", by " .. self.by) or ", pooled") }
  if self.table then lines[#lines + 1] = tostring(self.table) end
  return table.concat(lines, "\n")
end

-- ---- entropy-weight method ------------------------------------------------------

local entropy_options = set_of { "direction", "by", "normalise", "normalize", "shift", "scale", "into", "entropy_n" }

--- Entropy weights of one group: returns w, e, nb (normalisation per indicator).
local function entropy_group(cols, names, dir, rows, g, o)
  local n = #rows
  if n < 2 then
    fail("%d complete row%s%s (expected at least 2 rows with every indicator present)",
         n, n == 1 and "" or "s", group_label(g))
  end
  local k = 1 / math.log(o.entropy_n or n)
  local nb, e, dsum, div = {}, {}, 0, {}
  for j, col in ipairs(cols) do
    local lo, hi = bounds_of(col, rows, names[j], g)
    if o.normalise == "ratio" and lo <= 0 then
      fail("indicator '%s' has the non-positive value %.17g%s; normalise = \"ratio\" needs positive values (use \"minmax\")",
           names[j], lo, group_label(g))
    end
    nb[j] = { lo = lo, hi = hi, dir = dir[j], shift = o.shift, method = o.normalise }
    local z, zsum = {}, 0
    for r, i in ipairs(rows) do
      local v = normalise(col[i], nb[j])
      z[r] = v
      zsum = zsum + v
    end
    local h = 0
    for r = 1, n do
      local p = z[r] / zsum
      if p > 0 then h = h + p * math.log(p) end  -- 0 ln 0 = 0 (its limit)
    end
    e[j] = -k * h
    div[j] = 1 - e[j]
    dsum = dsum + div[j]
  end
  if not (dsum > 0) then
    fail("the indicators carry no information%s (every entropy is 1; expected some variation)", group_label(g))
  end
  local w = {}
  for j = 1, #cols do w[j] = div[j] / dsum end
  return w, e, div, nb
end

local function parse_entropy_options(opts)
  local o = check_options(opts, entropy_options)
  local norm = o.normalise or o.normalize or "minmax"
  if norm ~= "minmax" and norm ~= "ratio" then
    fail("normalise is '%s' (expected \"minmax\" or \"ratio\")", tostring(norm))
  end
  local shift = o.shift
  if shift == nil then shift = norm == "minmax" and 1e-4 or 0 end
  if type(shift) ~= "number" or shift < 0 or isnan(shift) then
    fail("shift must be a number >= 0, got %s", tostring(shift))
  end
  if norm == "ratio" and shift ~= 0 then fail("shift applies to normalise = \"minmax\" only") end
  local scale = o.scale or 1
  if type(scale) ~= "number" or not (scale > 0) then fail("scale must be a positive number, got %s", tostring(scale)) end
  local en = o.entropy_n
  if en ~= nil and (type(en) ~= "number" or not (en > 1)) then
    fail("entropy_n must be a number > 1 (the N in 1/ln N), got %s", tostring(en))
  end
  return { normalise = norm, shift = shift, scale = scale, entropy_n = en, by = o.by, into = o.into,
           direction = o.direction }
end

--- One row per (group,) indicator: specs is a list of {column, fn(g, j)}.
local function summary_frame(res, specs)
  local t = { indicator = {}, direction = {} }
  for _, sp in ipairs(specs) do t[sp[1]] = {} end
  local group = {}
  for _, g in ipairs(res.groups or { true }) do
    for j, name in ipairs(res.names) do
      local r = #t.indicator + 1
      group[r] = g
      t.indicator[r] = name
      t.direction[r] = res.direction[name]
      for _, sp in ipairs(specs) do t[sp[1]][r] = sp[2](g, j) end
    end
  end
  local order = {}
  if res.by then
    t[res.by] = group
    order[1] = res.by
  end
  order[#order + 1] = "indicator"
  order[#order + 1] = "direction"
  for _, sp in ipairs(specs) do order[#order + 1] = sp[1] end
  return core.frame(t, { order = order })
end

local function entropy_impl(d, vars, opts)
  local names, cols, n = read_indicators(d, vars)
  local o = parse_entropy_options(opts)
  local dir = parse_direction(o.direction, names)
  local key, groups = read_groups(d, o.by, n)
  if #groups == 0 then fail("column '%s' has no non-missing value to group by", o.by) end
  local rows = complete_rows(cols, key, groups, n)
  local res = setmetatable({ method = "entropy", names = names, by = o.by, nobs = n, n = 0,
                             normalise = o.normalise, shift = o.shift, scale = o.scale,
                             entropy_n = o.entropy_n, direction = {},
                             _w = {}, _e = {}, _div = {}, _nb = {}, _n = {} }, Index)
  for j, name in ipairs(names) do res.direction[name] = dir[j] > 0 and "+" or "-" end
  if o.by then res.groups = groups end
  for _, g in ipairs(groups) do
    local w, e, div, nb = entropy_group(cols, names, dir, rows[g], g, o)
    res._w[g], res._e[g], res._div[g], res._nb[g], res._n[g] = w, e, div, nb, #rows[g]
    res.n = res.n + #rows[g]
  end
  local pw, pe, pd, pb, pn = {}, {}, {}, {}, {}
  for _, g in ipairs(groups) do
    pw[g] = byname(names, res._w[g])
    pe[g] = byname(names, res._e[g])
    pd[g] = byname(names, res._div[g])
    local b = {}
    for j, name in ipairs(names) do b[name] = { min = res._nb[g][j].lo, max = res._nb[g][j].hi } end
    pb[g] = b
    pn[g] = res._n[g]
  end
  res.weights, res.entropy, res.divergence, res.bounds = keyed(res, pw), keyed(res, pe), keyed(res, pd), keyed(res, pb)
  if o.by then res.nrows = pn end
  res.score = to_column(score_rows(cols, key, n, res._w, res._nb, o.scale), n)
  res.table = summary_frame(res, {
    { "min", function(g, j) return res._nb[g][j].lo end },
    { "max", function(g, j) return res._nb[g][j].hi end },
    { "entropy", function(g, j) return res._e[g][j] end },
    { "divergence", function(g, j) return res._div[g][j] end },
    { "weight", function(g, j) return res._w[g][j] end },
  })
  write_into(d, o.into, res.score)
  return res
end

M.entropy = public("entropy", entropy_impl)

-- ---- TOPSIS ------------------------------------------------------------------------

local topsis_options = set_of { "direction", "by", "normalise", "normalize", "weights", "into" }

local function topsis_group(cols, names, dir, rows, g, o, wgiven)
  local n = #rows
  if n < 2 then
    fail("%d complete row%s%s (expected at least 2 rows with every indicator present)",
         n, n == 1 and "" or "s", group_label(g))
  end
  local w
  if wgiven then
    w = wgiven
  else
    w = entropy_group(cols, names, dir, rows, g, { normalise = "minmax", shift = 1e-4 })
  end
  local nb, ideal, anti = {}, {}, {}
  for j, col in ipairs(cols) do
    if o.normalise == "minmax" then
      local lo, hi = bounds_of(col, rows, names[j], g)
      nb[j] = { method = "minmax", lo = lo, hi = hi, dir = dir[j], shift = 0 }
      -- Direction is already in z, so the ideal is the best z of the group.
      ideal[j], anti[j] = w[j], 0
    else
      local ss = 0
      for _, i in ipairs(rows) do ss = ss + col[i] * col[i] end
      if not (ss > 0) then fail("indicator '%s' is zero in every complete row%s (vector normalisation divides by its norm)", names[j], group_label(g)) end
      local norm = math.sqrt(ss)
      nb[j] = { method = "vector", norm = norm, dir = dir[j] }
      local lo, hi = math.huge, -math.huge
      for _, i in ipairs(rows) do
        local v = w[j] * (col[i] / norm)
        if v < lo then lo = v end
        if v > hi then hi = v end
      end
      if dir[j] > 0 then ideal[j], anti[j] = hi, lo else ideal[j], anti[j] = lo, hi end
    end
  end
  return w, nb, ideal, anti
end

local function topsis_value(x, nb)
  if nb.method == "vector" then return x / nb.norm end
  return normalise(x, nb)
end

local function topsis_rows(cols, key, n, wfor, nbfor, idfor, antifor)
  local c, dp, dm = {}, {}, {}
  for i = 1, n do
    local g = key[i]
    local w = g ~= nil and wfor[g]
    local a, b = 0 / 0, 0 / 0
    if w then
      local nb, id, an = nbfor[g], idfor[g], antifor[g]
      a, b = 0, 0
      for j = 1, #cols do
        local x = cols[j][i]
        if isnan(x) then a, b = 0 / 0, 0 / 0; break end
        local v = w[j] * topsis_value(x, nb[j])
        a = a + (v - id[j]) ^ 2
        b = b + (v - an[j]) ^ 2
      end
      a, b = math.sqrt(a), math.sqrt(b)
    end
    dp[i], dm[i] = a, b
    c[i] = b / (a + b)
  end
  return c, dp, dm
end

local function parse_weights(spec, names)
  if spec == nil then return nil end
  if type(spec) ~= "table" then fail("weights must be a table {name = w}, got a %s", typename(spec)) end
  local pos = {}
  for j, name in ipairs(names) do pos[name] = j end
  local w, total = {}, 0
  for key, v in pairs(spec) do
    local j = math.type(key) == "integer" and key or pos[key]
    if not j or not names[j] then
      fail("weights names '%s', which is not one of the indicators%s", tostring(key),
           type(key) == "string" and did_you_mean(key, names) or "")
    end
    if type(v) ~= "number" or not (v >= 0) or v == math.huge then
      fail("weight of '%s' is %s (expected a finite number >= 0)", names[j], tostring(v))
    end
    w[j] = v
  end
  for j, name in ipairs(names) do
    if w[j] == nil then fail("weights has no entry for '%s' (expected one weight per indicator)", name) end
    total = total + w[j]
  end
  if not (total > 0) then fail("weights sum to 0 (expected a positive sum)") end
  for j = 1, #names do w[j] = w[j] / total end
  return w
end

M.topsis = public("topsis", function(d, vars, opts)
  local names, cols, n = read_indicators(d, vars)
  local o = check_options(opts, topsis_options)
  local norm = o.normalise or o.normalize or "vector"
  if norm ~= "vector" and norm ~= "minmax" then
    fail("normalise is '%s' (expected \"vector\" or \"minmax\")", tostring(norm))
  end
  local dir = parse_direction(o.direction, names)
  local wgiven = parse_weights(o.weights, names)
  local key, groups = read_groups(d, o.by, n)
  if #groups == 0 then fail("column '%s' has no non-missing value to group by", o.by) end
  local rows = complete_rows(cols, key, groups, n)
  local res = setmetatable({ method = "topsis", names = names, by = o.by, nobs = n, n = 0, normalise = norm,
                             weighting = wgiven and "given" or "entropy", direction = {}, scale = 1,
                             _w = {}, _nb = {}, _ideal = {}, _anti = {} }, Index)
  for j, name in ipairs(names) do res.direction[name] = dir[j] > 0 and "+" or "-" end
  if o.by then res.groups = groups end
  for _, g in ipairs(groups) do
    local w, nb, ideal, anti = topsis_group(cols, names, dir, rows[g], g, { normalise = norm }, wgiven)
    res._w[g], res._nb[g], res._ideal[g], res._anti[g] = w, nb, ideal, anti
    res.n = res.n + #rows[g]
  end
  local pw, pi, pa = {}, {}, {}
  for _, g in ipairs(groups) do
    pw[g], pi[g], pa[g] = byname(names, res._w[g]), byname(names, res._ideal[g]), byname(names, res._anti[g])
  end
  res.weights, res.ideal, res.anti_ideal = keyed(res, pw), keyed(res, pi), keyed(res, pa)
  -- The baseline normalisation, as entropy's bounds: {min, max} or the vector norm.
  local pb = {}
  for _, g in ipairs(groups) do
    local b = {}
    for j, name in ipairs(names) do
      local nb = res._nb[g][j]
      b[name] = nb.method == "vector" and { norm = nb.norm } or { min = nb.lo, max = nb.hi }
    end
    pb[g] = b
  end
  res.bounds = keyed(res, pb)
  local c, dp, dm = topsis_rows(cols, key, n, res._w, res._nb, res._ideal, res._anti)
  res.score, res.dplus, res.dminus = to_column(c, n), to_column(dp, n), to_column(dm, n)
  local specs = {}
  if norm == "vector" then
    specs[1] = { "norm", function(g, j) return res._nb[g][j].norm end }
  else
    specs[1] = { "min", function(g, j) return res._nb[g][j].lo end }
    specs[2] = { "max", function(g, j) return res._nb[g][j].hi end }
  end
  specs[#specs + 1] = { "weight", function(g, j) return res._w[g][j] end }
  specs[#specs + 1] = { "ideal", function(g, j) return res._ideal[g][j] end }
  specs[#specs + 1] = { "anti_ideal", function(g, j) return res._anti[g][j] end }
  res.table = summary_frame(res, specs)
  write_into(d, o.into, res.score)
  return res
end)

-- ---- principal-component index ------------------------------------------------------

local pca_options = set_of { "direction", "components", "into" }

M.pca = public("pca", function(d, vars, opts)
  local names, cols, n = read_indicators(d, vars)
  local o = check_options(opts, pca_options)
  local dir = parse_direction(o.direction, names)
  local comp = o.components or "kaiser"
  if comp ~= "kaiser" and (math.type(comp) ~= "integer" or comp < 1 or comp > #names) then
    fail("components is %s (expected \"kaiser\" or an integer from 1 to %d)", tostring(comp), #names)
  end
  local key, groups = read_groups(d, nil, n)
  local rows = complete_rows(cols, key, groups, n)[true]
  local m = #rows
  if m < 3 then fail("%d complete rows (expected at least 3 rows with every indicator present)", m) end
  local k = #names
  -- z-scores of the direction-adjusted indicators (sd with the n - 1 divisor).
  local mean, sd = {}, {}
  local Z = core.matrix(m, k)
  for j, col in ipairs(cols) do
    local s = 0
    for _, i in ipairs(rows) do s = s + dir[j] * col[i] end
    local mu = s / m
    local ss = 0
    for _, i in ipairs(rows) do ss = ss + (dir[j] * col[i] - mu) ^ 2 end
    local sdv = math.sqrt(ss / (m - 1))
    if not (sdv > 0) then bounds_of(col, rows, names[j], true) end
    mean[j], sd[j] = mu, sdv
    for r, i in ipairs(rows) do Z:set(r, j, (dir[j] * col[i] - mu) / sdv) end
  end
  local R = Z:crossprod() / (m - 1)
  -- Symmetrise exactly: dsyrk fills both triangles, but be safe for eigen's test.
  local values, vectors = R:eigen()
  local lam, vec = {}, {}
  for c = 1, k do
    local src = k - c + 1  -- eigen returns ascending values
    lam[c] = values[src]
    local v, s = {}, 0
    for j = 1, k do v[j] = vectors:get(j, src); s = s + v[j] end
    -- An eigenvector's sign is arbitrary: orient it so that its loadings sum
    -- to a positive number, so that a higher component means "more" overall.
    if s < 0 then for j = 1, k do v[j] = -v[j] end end
    vec[c] = v
  end
  local total = 0
  for c = 1, k do total = total + lam[c] end
  local keep = comp
  if comp == "kaiser" then
    keep = 0
    for c = 1, k do if lam[c] > 1 then keep = c end end
    if keep == 0 then keep = 1 end
  end
  local sel = 0
  for c = 1, keep do sel = sel + lam[c] end
  local share = {}
  for c = 1, keep do share[c] = lam[c] / sel end
  local res = setmetatable({ method = "pca", names = names, nobs = n, n = m, direction = {}, scale = 1,
                             components = keep, eigenvalues = lam, explained = {}, cumulative = {},
                             loadings = {}, mean = byname(names, mean), sd = byname(names, sd),
                             _mean = mean, _sd = sd, _vec = vec, _share = share, _dir = dir }, Index)
  local cum = 0
  for c = 1, k do
    res.explained[c] = lam[c] / total
    cum = cum + lam[c] / total
    res.cumulative[c] = cum
  end
  for c = 1, keep do res.loadings[c] = byname(names, vec[c]) end
  for j, name in ipairs(names) do res.direction[name] = dir[j] > 0 and "+" or "-" end
  local specs = {
    { "mean", function(_, j) return mean[j] end },
    { "sd", function(_, j) return sd[j] end },
  }
  for c = 1, keep do
    specs[#specs + 1] = { "loading" .. c, function(_, j) return vec[c][j] end }
  end
  res.table = summary_frame(res, specs)
  res.score = to_column(M._pca_scores(res, cols, n), n)
  write_into(d, o.into, res.score)
  return res
end)

function M._pca_scores(res, cols, n)
  local s = {}
  for i = 1, n do
    local v = 0
    for c = 1, res.components do
      local f = 0
      for j = 1, #cols do
        f = f + res._vec[c][j] * ((res._dir[j] * cols[j][i] - res._mean[j]) / res._sd[j])
      end
      v = v + res._share[c] * f
    end
    s[i] = v  -- NaN propagates from any missing indicator
  end
  return s
end

-- ---- apply: score new data with the baseline weights and normalisation ----------------

local apply_options = set_of { "into" }

M.apply = public("apply", function(d, res, opts)
  local o = check_options(opts, apply_options)
  if getmetatable(res) ~= Index then
    fail("argument 2 is a %s (expected the result of index.entropy, index.topsis or index.pca)", typename(res))
  end
  local _, cols, n = read_indicators(d, res.names)
  local score
  if res.method == "pca" then
    score = M._pca_scores(res, cols, n)
  else
    local key, groups = read_groups(d, res.by, n)
    local known = {}
    for _, g in ipairs(res.groups or { true }) do known[g] = true end
    for _, g in ipairs(groups) do
      if not known[g] then
        fail("group %s = %s was not in the baseline (its weights and bounds are unknown)", res.by, keystr(g))
      end
    end
    if res.normalise == "ratio" then
      for j, col in ipairs(cols) do
        for i = 1, n do
          if col[i] <= 0 then
            fail("indicator '%s' has the non-positive value %.17g at row %d; normalise = \"ratio\" needs positive values",
                 res.names[j], col[i], i)
          end
        end
      end
    end
    if res.method == "entropy" then
      score = score_rows(cols, key, n, res._w, res._nb, res.scale)
    else
      score = topsis_rows(cols, key, n, res._w, res._nb, res._ideal, res._anti)
    end
  end
  local m = to_column(score, n)
  write_into(d, o.into, m)
  return m
end)

-- ---- coupling coordination degree ---------------------------------------------------

local coupling_options = set_of { "alpha", "into", "into_c", "into_t" }

M.coupling = public("coupling", function(d, vars, opts)
  local names, cols, n = read_indicators(d, vars)
  local o = check_options(opts, coupling_options)
  local m = #names
  if m < 2 then fail("%d subsystem (expected 2 or more subsystem indices)", m) end
  local alpha = {}
  if o.alpha == nil then
    for j = 1, m do alpha[j] = 1 / m end
  else
    if type(o.alpha) ~= "table" or #o.alpha ~= m then
      fail("alpha must be a list of %d contribution shares, one per subsystem", m)
    end
    local s = 0
    for j = 1, m do
      local a = o.alpha[j]
      if type(a) ~= "number" or not (a >= 0) then fail("alpha[%d] is %s (expected a number >= 0)", j, tostring(a)) end
      alpha[j] = a
      s = s + a
    end
    if math.abs(s - 1) > 1e-12 then fail("alpha sums to %.15g (expected 1)", s) end
  end
  local C, T, D = {}, {}, {}
  for i = 1, n do
    local sum, logprod, t, miss, zero = 0, 0, 0, false, false
    for j = 1, m do
      local u = cols[j][i]
      if isnan(u) then miss = true; break end
      if u < 0 then
        fail("subsystem '%s' is negative (%.17g) at row %d (expected indices >= 0)", names[j], u, i)
      end
      sum = sum + u
      if u == 0 then zero = true else logprod = logprod + math.log(u) end
      t = t + alpha[j] * u
    end
    if miss then
      C[i], T[i], D[i] = 0 / 0, 0 / 0, 0 / 0
    else
      local c
      if sum == 0 then c = 0 / 0
      elseif zero then c = 0
      else c = m * math.exp(logprod / m) / sum end
      C[i], T[i], D[i] = c, t, math.sqrt(c * t)
    end
  end
  local res = { C = to_column(C, n), T = to_column(T, n), D = to_column(D, n), names = names, alpha = alpha }
  if o.into then write_into(d, o.into, res.D) end
  if o.into_c then write_into(d, o.into_c, res.C) end
  if o.into_t then write_into(d, o.into_t, res.T) end
  return res
end)

--- The conventional five- or ten-level label of a coupling coordination degree D.
-- Ten equal bands of width 0.1, the scale used across the coupling literature.
local levels = { "extreme imbalance", "serious imbalance", "moderate imbalance", "mild imbalance",
                 "on the verge of imbalance", "barely coordinated", "primary coordination",
                 "intermediate coordination", "good coordination", "quality coordination" }

M.coupling_level = public("coupling_level", function(D)
  if type(D) ~= "number" then fail("expected a number, got a %s", typename(D)) end
  if isnan(D) then return nil end
  if D < 0 or D > 1 then fail("D = %.17g is outside [0, 1]", D) end
  local b = math.min(10, math.floor(D * 10) + 1)
  return levels[b], b
end)

return M
