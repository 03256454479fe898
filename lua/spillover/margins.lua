-- spillover.margins: centring, moderation (y ~ x*m + controls | fe) and
-- average marginal effects of x over its moderators, with delta-method
-- standard errors, and their plot.  fit:margins(x, opts) is this margins(fit,
-- x, opts): fit.lua knows the method and loads this module on first use.
local core = require "spillover.core"
local fitmod = require "spillover.fit"
local linear = require "spillover.linear"
local formula_object = require "spillover.formula"
local common = require "spillover.mechanism_common"
local raise = require("spillover.util").raise
local dist = core.dist

local as_list, numeric_column = common.as_list, common.numeric_column
local controls_text, fe_text, formula_of = common.controls_text, common.fe_text, common.formula_of
local mean_sd, fmt, fmtp, pad = common.mean_sd, common.fmt, common.fmtp, fitmod.pad

local M = {}

-- ---- moderation ------------------------------------------------------------------------

--- Centre numeric columns at their means (over non-missing rows), in place.
--- Writes prefix .. name .. suffix (default prefix "c_"); returns d and the means.
function M.center(d, cols, opts)
  local F = "center"
  opts = opts or {}
  cols = as_list(cols)
  if #cols == 0 then raise(F .. ": expected a column name or a list of names") end
  local prefix = opts.prefix
  local suffix = opts.suffix or ""
  if prefix == nil then prefix = (opts.suffix == nil) and "c_" or "" end
  if prefix == "" and suffix == "" then
    raise(F .. ": prefix and suffix are both empty: the centred column would overwrite '" .. cols[1] .. "'")
  end
  local means = {}
  for _, name in ipairs(cols) do
    numeric_column(F, d, name, "column")
    local v = d:column(name)
    local s, n = 0, 0
    for i = 1, v:nrow() do
      local x = v:get(i, 1)
      if x == x then s, n = s + x, n + 1 end
    end
    if n == 0 then raise(F .. ": column '" .. name .. "' has no non-missing values") end
    local m = s / n
    means[name] = m
    local out = core.matrix(v:nrow(), 1)
    for i = 1, v:nrow() do out:set(i, 1, v:get(i, 1) - m) end
    d[prefix .. name .. suffix] = out
  end
  return d, means
end
M.centre = M.center

--- sp.moderation(d, {y=, x=, m=, controls=, fe=, vcov=, centre=true}): y ~ x*m + controls | fe.
--- With centre, x and m enter centred (columns c_x, c_m); margins on the fit
--- then take x and m in their original units.
function M.moderation(d, opts)
  local F = "moderation"
  if type(opts) ~= "table" then raise(F .. ": expected an options table {y=, x=, m=, ...}") end
  numeric_column(F, d, opts.x, "x")
  numeric_column(F, d, opts.m, "m")
  numeric_column(F, d, opts.y, "y")
  if opts.m == opts.x then raise(F .. ": the moderator m is the same column as x ('" .. opts.x .. "')") end
  if opts.m == opts.y or opts.x == opts.y then raise(F .. ": y must differ from x and m") end
  local centre = opts.centre
  if centre == nil then centre = opts.center end
  local xn, mn = opts.x, opts.m
  local means
  if centre then
    local prefix = type(centre) == "string" and centre or "c_"
    local _
    _, means = M.center(d, { xn, mn }, { prefix = prefix })
    xn, mn = prefix .. xn, prefix .. mn
  end
  local qx, qm = formula_object.quote(xn), formula_object.quote(mn)
  local rhs = { qx, qm, qx .. ":" .. qm, controls_text(F, opts.controls) }
  local formula = formula_of(opts.y, rhs, fe_text(F, opts.fe))
  local fit = linear.ols(d, tostring(formula), { vcov = opts.vcov, compat = opts.compat })
  fit.depvar = opts.y
  if centre then
    fit.centering = { [opts.x] = { name = xn, mean = means[opts.x] }, [opts.m] = { name = mn, mean = means[opts.m] } }
  end
  return fit
end

--- Split an interaction name at top-level ':' (not '::', not inside parentheses).
local function split_interaction(name)
  local parts, depth, start, i = {}, 0, 1, 1
  while i <= #name do
    local c = name:sub(i, i)
    if c == "(" then depth = depth + 1
    elseif c == ")" then depth = depth - 1
    elseif c == ":" and depth == 0 then
      if name:sub(i + 1, i + 1) == ":" then
        i = i + 1
      else
        parts[#parts + 1] = name:sub(start, i - 1)
        start = i + 1
      end
    end
    i = i + 1
  end
  parts[#parts + 1] = name:sub(start)
  return parts
end

local Margins = {}
Margins.__index = Margins
Margins.__name = "spillover.margins"

--- Mean of a design column over the estimation sample (nil if unavailable).
local function sample_values(fit, name)
  local des = fit.design
  if not des then return nil end
  if #des.fe > 0 and fit.data and fit.formula then
    -- sp.ols demeans its design in place: rebuild the original values.
    fit.original_design_cache = fit.original_design_cache or
      (linear.original_design and linear.original_design(fit) or
        core.design(fit.data, fit.formula, { extra = fit.design_extra }))
    des = fit.original_design_cache
  end
  for j, nm in ipairs(des.names) do
    if nm == name then
      local X = des.X
      local t = {}
      for i = 1, des.n do t[i] = X:get(i, j) end
      return t
    end
  end
  return nil
end

--- margins(fit, "x", {at = {m = {...}}, over = "m", n = 20, range = {lo, hi}, level = 0.95})
function M.margins(fit, x, opts)
  local F = "margins"
  if type(fit) ~= "table" or type(fit.names) ~= "table" or type(fit.V) ~= "table" then
    raise(F .. ": argument 1 must be a fit")
  end
  if type(x) ~= "string" then raise(F .. ": argument 2 must be the name of the variable whose effect is wanted") end
  opts = opts or {}
  local level = opts.level or 0.95
  if type(level) ~= "number" or not (level > 0 and level < 1) then raise(F .. ": level must be in (0, 1)") end
  local cen = fit.centering or {}
  local xname = cen[x] and cen[x].name or x
  local ix = fit.index[xname]
  -- Terms: the main effect and every interaction with x.
  local terms = {}
  local moderators, modset = {}, {}
  for i, nm in ipairs(fit.names) do
    if nm ~= xname then
      local parts = split_interaction(nm)
      if #parts > 1 then
        local hasx, others = false, {}
        for _, p in ipairs(parts) do
          if p == xname and not hasx then hasx = true else others[#others + 1] = p end
        end
        if hasx then
          terms[#terms + 1] = { index = i, others = others }
          for _, o in ipairs(others) do
            if not modset[o] then modset[o] = true; moderators[#moderators + 1] = o end
          end
        end
      end
    end
  end
  if ix == nil and #terms == 0 then
    raise(string.format("%s: '%s' is not a coefficient of the fit (coefficients: %s)", F, x, table.concat(fit.names, ", ")))
  end
  -- Original-unit names of centred moderators.
  local orig_of = {}
  for o, c in pairs(cen) do orig_of[c.name] = o end
  local function user_name(mod) return orig_of[mod] or mod end
  local function to_model(mod, v) local o = orig_of[mod]; return o and (v - cen[o].mean) or v end

  local at = opts.at or {}
  if type(at) ~= "table" then raise(F .. ": 'at' must be a table {moderator = {values}}") end
  local known = {}
  for _, mod in ipairs(moderators) do known[user_name(mod)] = mod end
  for k in pairs(at) do
    if not known[k] then
      raise(string.format("%s: '%s' in 'at' is not a moderator of '%s' (moderators: %s)", F, tostring(k), x,
        #moderators > 0 and table.concat((function() local t = {} for i, m in ipairs(moderators) do t[i] = user_name(m) end return t end)(), ", ") or "none"))
    end
  end
  local over = opts.over
  if over ~= nil then
    if not known[over] then
      raise(string.format("%s: over = '%s' is not a moderator of '%s'", F, tostring(over), x))
    end
    local n = opts.n or 20
    if math.type(n) ~= "integer" or n < 2 then raise(F .. ": n must be a whole number >= 2") end
    local lo, hi
    if opts.range then
      lo, hi = opts.range[1], opts.range[2]
      if type(lo) ~= "number" or type(hi) ~= "number" or not (hi > lo) then
        raise(F .. ": range must be {low, high} with low < high")
      end
    else
      local vals = sample_values(fit, known[over])
      if not vals then raise(F .. ": the fit does not carry its data; give range = {low, high} for '" .. over .. "'") end
      lo, hi = math.huge, -math.huge
      for _, v in ipairs(vals) do if v == v then lo, hi = math.min(lo, v), math.max(hi, v) end end
      -- The sample values are in model units; report original units.
      local o = orig_of[known[over]]
      if o then lo, hi = lo + cen[o].mean, hi + cen[o].mean end
    end
    local grid = {}
    for i = 1, n do grid[i] = lo + (hi - lo) * (i - 1) / (n - 1) end
    local a2 = {}
    for k, v in pairs(at) do a2[k] = v end
    a2[over] = grid
    at = a2
  end
  -- Moderators not given are held at their sample means.
  local fixed, varying = {}, {}
  for _, mod in ipairs(moderators) do
    local un = user_name(mod)
    if at[un] ~= nil then
      local vals = type(at[un]) == "table" and at[un] or { at[un] }
      for i, v in ipairs(vals) do
        if type(v) ~= "number" then raise(string.format("%s: at.%s[%d] must be a number", F, un, i)) end
      end
      varying[#varying + 1] = { mod = mod, name = un, values = vals }
    else
      local vals = sample_values(fit, mod)
      if not vals then
        raise(string.format("%s: give a value for the moderator '%s' in 'at' (the fit does not carry its data)", F, un))
      end
      local m = mean_sd(vals)
      fixed[mod] = m
    end
  end
  -- Cartesian product of the 'at' values (first moderator varies slowest).
  local combos = { {} }
  for _, v in ipairs(varying) do
    local nxt = {}
    for _, c in ipairs(combos) do
      for _, val in ipairs(v.values) do
        local t = {}
        for k, w in pairs(c) do t[k] = w end
        t[v.mod] = val
        nxt[#nxt + 1] = t
      end
    end
    combos = nxt
  end
  local q = fit:uses_t() and dist.qt(1 - (1 - level) / 2, fit.df_resid) or dist.qnorm(1 - (1 - level) / 2)
  local rows = {}
  for r, c in ipairs(combos) do
    local g = {}
    if ix then g[ix] = 1 end
    local values = {}
    for _, t in ipairs(terms) do
      local prod = 1
      for _, o in ipairs(t.others) do
        local v
        if c[o] ~= nil then v = to_model(o, c[o]) else v = fixed[o] end
        prod = prod * v
      end
      g[t.index] = (g[t.index] or 0) + prod
    end
    for _, v in ipairs(varying) do values[v.name] = c[v.mod] end
    local est, var = 0, 0
    for i, gi in pairs(g) do
      est = est + gi * fit.b[i]
      for j, gj in pairs(g) do var = var + gi * fit.V[i][j] * gj end
    end
    local se = math.sqrt(math.max(var, 0))
    local stat = est / se
    local p = fit:uses_t() and 2 * dist.pt(math.abs(stat), fit.df_resid, true) or 2 * dist.pnorm(math.abs(stat), true)
    rows[r] = { at = values, effect = est, se = se, statistic = stat, pvalue = p, lower = est - q * se, upper = est + q * se,
      gradient = g }
  end
  local held = {}
  for mod, v in pairs(fixed) do held[user_name(mod)] = orig_of[mod] and v + cen[orig_of[mod]].mean or v end
  return setmetatable({ x = x, over = over, level = level, rows = rows, moderators = varying, held = held,
    dist = fit:uses_t() and "t" or "normal", df = fit.df_resid }, Margins)
end

function Margins:__tostring()
  local out = {}
  local lv = string.format("%g%%", self.level * 100)
  out[1] = string.format("Marginal effect of %s (delta-method standard errors, %s intervals)", self.x, lv)
  local held = {}
  for k, v in pairs(self.held) do held[#held + 1] = string.format("%s = %.4g", k, v) end
  table.sort(held)
  if #held > 0 then out[#out + 1] = "Held at sample means: " .. table.concat(held, ", ") end
  local head = ""
  for _, v in ipairs(self.moderators) do head = head .. pad(v.name, 12, true) end
  out[#out + 1] = head .. pad("dy/dx", 11, true) .. pad("Std. Error", 11, true) .. pad(self.dist == "t" and "t" or "z", 9, true) ..
    pad("p-value", 10, true) .. pad("lower", 11, true) .. pad("upper", 11, true)
  for _, r in ipairs(self.rows) do
    local line = ""
    for _, v in ipairs(self.moderators) do line = line .. pad(string.format("%.4g", r.at[v.name]), 12, true) end
    out[#out + 1] = line .. " " .. fmt(r.effect) .. " " .. fmt(r.se) .. string.format("%9.3f", r.statistic) .. fmtp(r.pvalue) ..
      " " .. fmt(r.lower) .. " " .. fmt(r.upper)
  end
  return table.concat(out, "\n")
end

--- The rows as a frame (one column per moderator, then effect, se, ...).
function Margins:frame()
  local cols, order = {}, {}
  for _, v in ipairs(self.moderators) do cols[v.name] = {}; order[#order + 1] = v.name end
  for _, k in ipairs { "effect", "se", "statistic", "pvalue", "lower", "upper" } do cols[k] = {}; order[#order + 1] = k end
  for i, r in ipairs(self.rows) do
    for _, v in ipairs(self.moderators) do cols[v.name][i] = r.at[v.name] end
    cols.effect[i], cols.se[i], cols.statistic[i] = r.effect, r.se, r.statistic
    cols.pvalue[i], cols.lower[i], cols.upper[i] = r.pvalue, r.lower, r.upper
  end
  return core.frame(cols, { order = order })
end

--- Marginal-effect plot of a margins(..., {over = m}) result: the effect with
--- its confidence band over the moderator, and a zero line.
function M.margins_plot(path, result, opts)
  if getmetatable(result) ~= Margins or not result.over then
    raise("margins_plot: argument 2 must be the result of margins(fit, x, {over = moderator})")
  end
  opts = opts or {}
  local xs, ys, lo, hi = {}, {}, {}, {}
  for i, r in ipairs(result.rows) do
    xs[i], ys[i], lo[i], hi[i] = r.at[result.over], r.effect, r.lower, r.upper
  end
  local spec = {}
  for k, v in pairs(opts) do spec[k] = v end
  spec.x = xs
  spec.series = { { y = ys, lo = lo, hi = hi, label = opts.label or
    string.format("∂y/∂%s (%g%% CI)", result.x, result.level * 100) } }
  spec.label = nil
  spec.zero_line = opts.zero_line ~= false
  spec.xlabel = opts.xlabel or result.over
  spec.ylabel = opts.ylabel or ("Marginal effect of " .. result.x)
  return require("spillover.plot").lines(path, spec)
end

return M
