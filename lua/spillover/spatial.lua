-- spillover.spatial: spatial weights (sp.weights.*) and spatial-dependence
-- tests (sp.moran, sp.local_moran, sp.moran_residuals, sp.lm_tests,
-- sp.moran_by) on top of the C kernels in core._weights (lweights.c).
--
-- Unit ids are strings: a numeric id is written as an integer when it is one
-- ("110000", not "110000.0"), so ids read from different files match.
-- Definitions follow spdep 1.2-7 (see docs/api/weights.md, docs/api/moran.md).
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local K = core._weights
local dist = core.dist

local M = {}
local methods = K.methods

-- ---- helpers -------------------------------------------------------------------

local function fail(fmt, ...)
  raise(string.format(fmt, ...))
end

--- The string form of a unit id (nil stays nil).
local function idstr(v)
  if type(v) == "number" then
    if v ~= v then return nil end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
    return string.format("%.17g", v)
  elseif type(v) == "string" then
    return v
  end
  return nil
end
M.idstr = idstr

local function is_frame(v)
  return type(v) == "userdata" and getmetatable(v) == getmetatable(core.frame { a = { 1 } })
end

--- The values of a frame column as a Lua array (numbers, strings or nil).
local function column_values(d, name, what, thing)
  local names = d:names()
  local found = false
  for _, nm in ipairs(names) do if nm == name then found = true end end
  if not found then
    fail("%s: %s has no column '%s' (columns: %s)", what, thing or "the frame", tostring(name),
      table.concat(names, ", "))
  end
  local c = d[name]
  local n = d:nrow()
  local out = {}
  if type(c) == "table" then
    for i = 1, n do out[i] = c[i] end
  else
    for i = 1, n do out[i] = c:get(i, 1) end
  end
  return out, n
end

--- A list of unit ids from an array, an n x 1 matrix or a table with .n;
--- every id present and unique (errors name the position).
local function id_list(v, what)
  local out = {}
  local n
  if type(v) == "userdata" and v.nrow then
    n = v:nrow() * v:ncol()
    for i = 1, n do out[i] = idstr(v:get(i, 1)) end
  elseif type(v) == "table" then
    n = v.n or #v
    for i = 1, n do
      out[i] = idstr(v[i])
      if v[i] ~= nil and out[i] == nil then
        fail("%s: id %d is a %s; expected a string or a number", what, i, type(v[i]))
      end
    end
  else
    fail("%s: ids must be a list or a frame column, got a %s", what, type(v))
  end
  local seen = {}
  for i = 1, n do
    if out[i] == nil then fail("%s: id %d is missing", what, i) end
    if seen[out[i]] then
      fail("%s: the id '%s' is duplicated (positions %d and %d); ids must be unique", what, out[i], seen[out[i]], i)
    end
    seen[out[i]] = i
  end
  return out
end

--- Names of up to five items, then ", ..." (for error messages).
local function some(list, quote)
  local parts = {}
  for i = 1, math.min(#list, 5) do parts[i] = quote and ("'" .. list[i] .. "'") or list[i] end
  return table.concat(parts, ", ") .. (#list > 5 and string.format(", ... (%d in all)", #list) or "")
end

local function check_style(style, what)
  if style == nil then return "W" end
  if style == "row" then return "W" end
  if style == "binary" then return "B" end
  if type(style) ~= "string" or not (style == "W" or style == "B" or style == "C" or style == "U") then
    fail("%s: unknown style '%s'; expected \"W\" (row-standardised), \"B\" (raw/binary), \"C\" or \"U\"",
      what, tostring(style))
  end
  return style
end

local function check_opts(opts, allowed, what)
  local checked = util.check_options(opts, allowed, what)  -- not a tail call: it keeps this level
  return checked
end

--- Sort ids numerically when they all are numbers, else as strings.
local function sort_ids(ids)
  local numeric = true
  for _, s in ipairs(ids) do if tonumber(s) == nil then numeric = false break end end
  table.sort(ids, function(a, b)
    if numeric then return tonumber(a) < tonumber(b) end
    return a < b
  end)
  return ids
end

--- Finish a weights object: ids, style, zero policy.
local function finish(W, ids, style, zero_policy, what)
  if ids then W:set_ids(ids) end
  local ok, res = pcall(W.restyle, W, style, zero_policy and true or false)
  if not ok then
    if type(res) == "table" then
      res.msg = what .. ": " .. res.msg:gsub("^weights: ", "")
      res.text = what .. ": " .. (res.text or ""):gsub("^weights: ", "")
    end
    error(res, 0)
  end
  W:close()
  return res
end

-- ---- constructors ----------------------------------------------------------------

local weights = {}
M.weights = weights

--- sp.weights.contiguity(edges, {from=, to=, ids=, style=, symmetric=, weight=, zero_policy=})
function weights.contiguity(edges, opts)
  local what = "weights.contiguity"
  opts = check_opts(opts, { from = true, to = true, ids = true, style = true, symmetric = true, weight = true,
    zero_policy = true }, what)
  local style = check_style(opts.style, what)
  local e = edges
  if type(edges) == "string" then
    local ok, res = pcall(core.read_csv, edges)
    if not ok then error(res, 0) end
    e = res
  elseif not is_frame(edges) then
    fail("%s: edges must be a file path or a frame (with columns from, to), got a %s", what, type(edges))
  end
  local fname, tname = opts.from or "from", opts.to or "to"
  local from = column_values(e, fname, what, "the edge list")
  local to, m = column_values(e, tname, what, "the edge list")
  local wv = opts.weight and column_values(e, opts.weight, what, "the edge list") or nil
  for r = 1, m do
    from[r], to[r] = idstr(from[r]), idstr(to[r])
    if from[r] == nil or to[r] == nil then
      fail("%s: row %d of the edge list has a missing '%s'", what, r, from[r] == nil and fname or tname)
    end
  end
  local ids
  if opts.ids ~= nil then
    ids = id_list(opts.ids, what .. " (ids)")
  else
    local set = {}
    ids = {}
    for r = 1, m do
      for _, v in ipairs { from[r], to[r] } do
        if not set[v] then set[v] = true; ids[#ids + 1] = v end
      end
    end
    sort_ids(ids)
  end
  local pos = {}
  for i, v in ipairs(ids) do pos[v] = i end
  local unmatched, useen = {}, {}
  local fi, ti, vals = {}, {}, wv and {} or nil
  for r = 1, m do
    for _, v in ipairs { from[r], to[r] } do
      if not pos[v] and not useen[v] then
        useen[v] = true
        unmatched[#unmatched + 1] = string.format("'%s' (row %d)", v, r)
      end
    end
    if pos[from[r]] and pos[to[r]] then
      if from[r] == to[r] then fail("%s: row %d of the edge list links '%s' to itself", what, r, from[r]) end
      fi[#fi + 1], ti[#ti + 1] = pos[from[r]], pos[to[r]]
      if vals then
        local w = wv[r]
        if type(w) ~= "number" or w ~= w then fail("%s: row %d of the edge list has no numeric weight", what, r) end
        vals[#vals + 1] = w
      end
      if opts.symmetric ~= false then
        fi[#fi + 1], ti[#ti + 1] = pos[to[r]], pos[from[r]]
        if vals then vals[#vals + 1] = vals[#vals] end
      end
    end
  end
  if #unmatched > 0 then
    fail("%s: %d id%s in the edge list %s not among the %d unit ids: %s", what, #unmatched,
      #unmatched == 1 and "" or "s", #unmatched == 1 and "is" or "are", #ids, some(unmatched))
  end
  local W = K.links(#ids, fi, ti, vals)
  return finish(W, ids, style, opts.zero_policy, what)
end

--- Coordinates from a frame: ids, x, y, great_circle (see docs).
local function coords_of(c, opts, what)
  if not is_frame(c) then fail("%s: coords must be a frame with id, x and y columns, got a %s", what, type(c)) end
  local names = {}
  for _, nm in ipairs(c:names()) do names[nm] = true end
  local xname, yname, gc = opts.x, opts.y, opts.great_circle
  if xname == nil and yname == nil and not names.x and names.longitude and names.latitude then
    xname, yname = "longitude", "latitude"
    if gc == nil then gc = true end
  end
  xname, yname = xname or "x", yname or "y"
  local x = column_values(c, xname, what)
  local y = column_values(c, yname, what)
  for i = 1, #x do
    if type(x[i]) ~= "number" or type(y[i]) ~= "number" then
      fail("%s: coordinate columns '%s' and '%s' must be numeric (row %d)", what, xname, yname, i)
    end
  end
  local ids
  local idname = opts.id
  if idname == nil and names.id then idname = "id" end
  if idname ~= nil then ids = id_list(column_values(c, idname, what), what .. " (ids)") end
  return x, y, ids, gc and true or false
end

--- Make a weights object symmetric: the union of i -> j and j -> i.
local function symmetrise(W)
  local fi, ti = {}, {}
  for i = 1, W:n() do
    local nb = W:neighbours(i)
    for _, j in ipairs(nb) do
      fi[#fi + 1], ti[#ti + 1] = i, j
      fi[#fi + 1], ti[#ti + 1] = j, i
    end
  end
  return K.links(W:n(), fi, ti)
end

--- sp.weights.knn(coords, k, {id=, x=, y=, great_circle=, style=, symmetric=})
function weights.knn(coords, k, opts)
  local what = "weights.knn"
  opts = check_opts(opts, { id = true, x = true, y = true, great_circle = true, style = true, symmetric = true },
    what)
  if math.type(k) ~= "integer" then fail("%s: k must be an integer, got %s", what, tostring(k)) end
  local style = check_style(opts.style, what)
  local x, y, ids, gc = coords_of(coords, opts, what)
  if k < 1 or k >= #x then fail("%s: k = %d with %d units; expected 1 <= k < n", what, k, #x) end
  local W = K.knn(x, y, k, gc)
  if opts.symmetric then
    local S = symmetrise(W)
    W:close()
    W = S
  end
  return finish(W, ids, style, false, what)
end

--- sp.weights.distance(coords, {power=, cutoff=, great_circle=, id=, x=, y=, style=, zero_policy=})
function weights.distance(coords, opts)
  local what = "weights.distance"
  opts = check_opts(opts, { id = true, x = true, y = true, great_circle = true, style = true, power = true,
    cutoff = true, zero_policy = true }, what)
  local style = check_style(opts.style, what)
  local power = opts.power or 1
  if type(power) ~= "number" or power <= 0 then fail("%s: power must be a positive number (1 or 2), got %s", what, tostring(power)) end
  if opts.cutoff ~= nil and (type(opts.cutoff) ~= "number" or opts.cutoff <= 0) then
    fail("%s: cutoff must be a positive distance, got %s", what, tostring(opts.cutoff))
  end
  local x, y, ids, gc = coords_of(coords, opts, what)
  local W = K.distance(x, y, power, opts.cutoff or 0, gc)
  return finish(W, ids, style, opts.zero_policy, what)
end

--- sp.weights.economic(frame, col, {ids=, style=}): 1/|g_i - g_j|, g averaged by id.
function weights.economic(d, col, opts)
  local what = "weights.economic"
  opts = check_opts(opts, { ids = true, style = true }, what)
  if not is_frame(d) then fail("%s: expected a frame, got a %s", what, type(d)) end
  if type(col) ~= "string" then fail("%s: expected a column name as argument 2, got a %s", what, type(col)) end
  local style = check_style(opts.style, what)
  local g, n = column_values(d, col, what)
  for i = 1, n do
    if type(g[i]) ~= "number" then fail("%s: column '%s' must be numeric (row %d is a %s)", what, col, i, type(g[i])) end
  end
  local ids, vals = nil, g
  if opts.ids ~= nil then
    local raw = type(opts.ids) == "string" and column_values(d, opts.ids, what) or opts.ids
    -- several rows per id (a panel): the mean over them, in order of first appearance
    ids, vals = {}, {}
    local pos, cnt = {}, {}
    for i = 1, n do
      local s = idstr(raw[i] ~= nil and raw[i] or (type(raw) == "userdata" and raw:get(i, 1) or nil))
      if s == nil then fail("%s: the id of row %d is missing", what, i) end
      if g[i] ~= g[i] then fail("%s: '%s' is missing for %s (row %d)", what, col, s, i) end
      local p = pos[s]
      if not p then
        p = #ids + 1
        pos[s], ids[p], vals[p], cnt[p] = p, s, 0, 0
      end
      vals[p], cnt[p] = vals[p] + g[i], cnt[p] + 1
    end
    for p = 1, #vals do vals[p] = vals[p] / cnt[p] end
  end
  local W = K.economic(vals, ids)
  return finish(W, ids, style, false, what)
end

--- sp.weights.nested(Wgeo, Wecon, {phi=, style=}): Wgeo .* Wecon, or phi Wgeo + (1 - phi) Wecon.
function weights.nested(A, B, opts)
  local what = "weights.nested"
  opts = check_opts(opts, { phi = true, style = true, zero_policy = true }, what)
  if not K.is(A) or not K.is(B) then fail("%s: expected two spillover.weights", what) end
  local style = check_style(opts.style, what)
  if A:n() ~= B:n() then fail("%s: the weights have %d and %d units; expected the same units", what, A:n(), B:n()) end
  local Bal = B
  local ia, ib = A:ids(), B:ids()
  if ia and ib then
    Bal = B:align(ia)
  end
  local phi = opts.phi
  if phi ~= nil and (type(phi) ~= "number" or phi < 0 or phi > 1) then
    fail("%s: phi must be a number in [0, 1], got %s", what, tostring(phi))
  end
  local W = phi and K.combine(A, Bal, phi, 1 - phi, false) or K.combine(A, Bal, 1, 1, true)
  return finish(W, nil, style, opts.zero_policy, what)
end

--- sp.weights.spectral(W): W divided by its spectral radius (the largest
--- |eigenvalue|), the normalisation of Kelejian & Prucha (2010) that keeps a
--- matrix's relative weights (row standardisation does not); style "B"
--- (raw), ids kept.  Dense eigenvalues: for the hundreds of units of
--- regional panels, not for 1e5.
function weights.spectral(W)
  if not K.is(W) then fail("weights.spectral: expected a spillover.weights, got a %s", type(W)) end
  local re, im = W:eigenvalues()
  local r = 0
  for i = 1, re:nrow() do r = math.max(r, math.sqrt(re:get(i, 1) ^ 2 + im:get(i, 1) ^ 2)) end
  if not (r > 0) then fail("weights.spectral: the weights have no link (spectral radius 0)") end
  local S = K.combine(W, W, 1 / r, 0, false)
  return finish(S, W:ids(), "B", true, "weights.spectral")
end

--- Is v a spillover.weights?
weights.is = K.is

--- sp.weights.from_links(n, from, to, values, {ids=, style=}) (1-based indices).
function weights.from_links(n, from, to, values, opts)
  opts = check_opts(opts, { ids = true, style = true, zero_policy = true }, "weights.from_links")
  local W = K.links(n, from, to, values)
  local ids = opts.ids and id_list(opts.ids, "weights.from_links (ids)") or nil
  return finish(W, ids, check_style(opts.style, "weights.from_links", 2), opts.zero_policy, "weights.from_links")
end

-- ---- Lua methods on spillover.weights ------------------------------------------------

--- W:index_of(ids) -> positions (1-based) of the ids in W; unmatched ids are an error naming them.
function methods.index_of(W, ids, what)
  what = what or "weights"
  local wid = W:ids()
  if not wid then fail("%s: the weights have no unit ids to match against", what) end
  local pos = {}
  for i, s in ipairs(wid) do pos[s] = i end
  local list = id_list(ids, what)
  local out, missing = {}, {}
  for i, s in ipairs(list) do
    out[i] = pos[s]
    if not out[i] then missing[#missing + 1] = s end
  end
  if #missing > 0 then
    fail("%s: %d id%s not among the %d units of the weights: %s", what, #missing,
      #missing == 1 and " is" or "s are", #wid, some(missing, true))
  end
  return out
end

--- W:align(ids) -> the weights over exactly these ids in this order (a
--- subset is re-standardised; an id not in W is an error).
function methods.align(W, ids)
  local idx = methods.index_of(W, ids, "weights:align")
  local same = #idx == W:n()
  for i = 1, #idx do if idx[i] ~= i then same = false break end end
  if same then return W end
  return W:subset(idx)
end

--- W:trace(k) -> tr(W^k).
function methods.trace(W, k)
  if math.type(k) ~= "integer" or k < 1 then fail("trace: k must be a positive integer, got %s", tostring(k)) end
  return W:traces(k)[k]
end

local summary_mt = {}
summary_mt.__tostring = function(s)
  local lines = {
    string.format("Spatial weights: %d units, %d links, style %s%s", s.n, s.links, s.style,
      s.zero_policy and " (zero policy)" or ""),
    string.format("  neighbours per unit: mean %.4g, min %d, max %d; %.2f%% of pairs linked", s.card_mean, s.card_min,
      s.card_max, 100 * s.density),
    string.format("  islands: %s", #s.islands == 0 and "none" or (#s.islands .. " (" .. some(s.islands) .. ")")),
    string.format("  symmetric: %s", s.asymmetric == 0 and "yes" or
      string.format("no (%d links without an equal reverse link; %d without any)", s.asymmetric, s.asymmetric_pattern)),
    string.format("  S0 = %.10g, S1 = %.10g, S2 = %.10g", s.S0, s.S1, s.S2),
  }
  return table.concat(lines, "\n")
end

--- W:summary() -> {n, links, card_mean/min/max, density, islands (ids), asymmetric, S0, S1, S2, style}.
function methods.summary(W)
  local s = W:stats()
  local ids = W:ids()
  if ids then
    for k, i in ipairs(s.islands) do s.islands[k] = ids[i] end
  else
    for k, i in ipairs(s.islands) do s.islands[k] = "unit " .. i end
  end
  return setmetatable(s, summary_mt)
end

--- The rows of a panel frame matched to W's units: unit index per row and
--- period code per row, with the period values.
local function panel_rows(W, d, opts, what)
  opts = opts or {}
  local entity, time = opts.entity, opts.time
  if entity == nil or time == nil then
    local pi = util.panel_of(d)
    if pi == nil then
      fail("%s: the frame has no panel index; call d:panel{entity=, time=} or pass {entity=, time=}", what)
    end
    entity, time = entity or pi.entity, time or pi.time
  end
  local ev = column_values(d, entity, what)
  local tv = column_values(d, time, what)
  local wid = W:ids()
  if not wid then fail("%s: the weights have no unit ids to match the entities against", what) end
  local pos = {}
  for i, s in ipairs(wid) do pos[s] = i end
  local unit, missing, mseen = {}, {}, {}
  for r = 1, #ev do
    local s = idstr(ev[r])
    unit[r] = s and pos[s]
    if not unit[r] and not mseen[tostring(s)] then
      mseen[tostring(s)] = true
      missing[#missing + 1] = tostring(s)
    end
  end
  if #missing > 0 then
    fail("%s: %d %s value%s not among the %d units of the weights: %s", what, #missing, entity,
      #missing == 1 and " is" or "s are", #wid, some(missing, true))
  end
  local periods, pcode = {}, {}
  for r = 1, #tv do
    local key = tv[r]
    if key == nil then fail("%s: row %d has no %s", what, r, time) end
    if not pcode[key] then periods[#periods + 1] = key; pcode[key] = true end
  end
  table.sort(periods, function(a, b)
    if type(a) == type(b) then return a < b end
    return tostring(a) < tostring(b)
  end)
  for i, p in ipairs(periods) do pcode[p] = i end
  local period, seen = {}, {}
  for r = 1, #tv do
    period[r] = pcode[tv[r]]
    local key = unit[r] .. "|" .. period[r]
    if seen[key] then
      fail("%s: %s '%s' appears twice in %s %s (rows %d and %d)", what, entity, wid[unit[r]], time,
        tostring(tv[r]), seen[key], r)
    end
    seen[key] = r
  end
  return unit, period, periods, entity, time
end

--- W:panel_lag(d, col [, {entity=, time=}]) -> n x 1 matrix in d's row
--- order: for row (i, t), sum_j w_ij x_jt.  A neighbour not observed in t,
--- or missing, makes the lag missing (NaN).
function methods.panel_lag(W, d, col, opts)
  local what = "weights:panel_lag"
  if not is_frame(d) then fail("%s: expected a frame, got a %s", what, type(d)) end
  local x = column_values(d, col, what)
  for r = 1, #x do
    if type(x[r]) ~= "number" then fail("%s: column '%s' must be numeric (row %d is a %s)", what, col, r, type(x[r])) end
  end
  local unit, period, periods = panel_rows(W, d, opts, what)
  local n, T = W:n(), #periods
  local stacked = {}
  for i = 1, n * T do stacked[i] = 0 / 0 end
  for r = 1, #x do stacked[(period[r] - 1) * n + unit[r]] = x[r] end
  local lag = W:lag_panel(stacked, T, "time")
  local out = core.matrix(#x, 1)
  for r = 1, #x do out:set(r, 1, lag:get((period[r] - 1) * n + unit[r], 1)) end
  return out
end

-- ---- Moran's I --------------------------------------------------------------------

local result_mt = {}
result_mt.__tostring = function(r)
  local s = string.format("%s\n  I = %.6g, E(I) = %.6g, Var(I) = %.6g, z = %.4f, p = %.4g (alternative: greater)",
    r.method, r.I, r.expectation, r.variance, r.z, r.pvalue)
  if r.permutation_pvalue then
    s = s .. string.format("\n  permutation test: p = %.4g (%d permutations, seed %d)", r.permutation_pvalue,
      r.permutations, r.seed)
  end
  return s
end

--- x as a vector: a matrix, an array, or {frame, "column"} is not accepted;
--- non-numeric and length errors come from the C kernel with names.
local function check_weights(W, what)
  if not K.is(W) then fail("%s: argument 2 must be a spillover.weights, got a %s", what, type(W)) end
end

local function check_x(x, W, what)
  if type(x) == "table" then
    local n = x.n or #x
    for i = 1, n do
      if type(x[i]) ~= "number" then
        fail("%s: element %d of x is a %s; expected a number (x must be numeric)", what, i, type(x[i]))
      end
    end
    if n ~= W:n() then fail("%s: x has %d values for weights over %d units; expected one per unit", what, n, W:n()) end
  elseif type(x) ~= "userdata" then
    -- refused here so the message points at the caller, not at this module
    fail("%s: x is a %s; expected a spillover.matrix (n x 1) or an array of numbers", what, type(x))
  end
end

--- sp.moran(x, W, {randomisation = true, permutations =, seed =})
function M.moran(x, W, opts)
  local what = "moran"
  opts = check_opts(opts, { randomisation = true, permutations = true, seed = true }, what)
  check_weights(W, what)
  check_x(x, W, what)
  local rnd = opts.randomisation ~= false
  local r = K.moran(W, x, rnd)
  r.method = rnd and "Moran I test under randomisation" or "Moran I test under normality"
  r.alternative = "greater"
  r.nobs = W:n()
  if opts.permutations then
    local np = opts.permutations
    if math.type(np) ~= "integer" or np < 1 then fail("%s: permutations must be a positive integer", what) end
    local seed = opts.seed or 42
    local p, sim = K.moran_perm(W, x, np, seed)
    r.permutation_pvalue, r.permutations, r.seed, r.permutation_I = p, np, seed, sim
  end
  return setmetatable(r, result_mt)
end

--- sp.moran_plot(path, x, W [, spec]): the Moran scatterplot (Anselin 1996):
--- the standardised values z against their spatial lag Wz, the zero axes
--- splitting the HH/LL/HL/LH quadrants, and the least-squares line, whose
--- slope z'Wz / z'z is Moran's I for row-standardised W.  spec goes to
--- plot.scatter (title, labels, size).  Returns the path(s) and the slope.
function M.moran_plot(path, x, W, spec)
  local what = "moran_plot"
  check_weights(W, what)
  check_x(x, W, what)
  local n = W:n()
  local v = {}
  for i = 1, n do v[i] = type(x) == "table" and x[i] or x:get(i, 1) end
  local mean, ss = 0, 0
  for i = 1, n do mean = mean + v[i] end
  mean = mean / n
  for i = 1, n do ss = ss + (v[i] - mean) ^ 2 end
  local sd = math.sqrt(ss / n)
  if not (sd > 0) then fail("%s: x is constant; there is nothing to plot", what) end
  local z = core.matrix(n, 1)
  for i = 1, n do z:set(i, 1, (v[i] - mean) / sd) end
  local wz = W:lag(z)
  local zt, wt, zz, zw, mw = {}, {}, 0, 0, 0
  for i = 1, n do
    zt[i], wt[i] = z:get(i, 1), wz:get(i, 1)
    zz, zw, mw = zz + zt[i] * zt[i], zw + zt[i] * wt[i], mw + wt[i] / n
  end
  local slope = zw / zz
  local s = { series = { { x = zt, y = wt } }, fit = { mw, slope }, hlines = { 0 }, vlines = { 0 },
    xlabel = "z (standardised)", ylabel = "Wz (spatial lag)", fit_label = string.format("slope %.4g", slope) }
  for k, val in pairs(spec or {}) do s[k] = val end
  return require("spillover.plot").scatter(path, s), slope
end

--- sp.local_moran(x, W, {permutations =, seed =, alpha = 0.05}) -> a frame
--- with id, Ii, E_Ii, Var_Ii, Z_Ii, p (two-sided), [p_perm], cluster.
function M.local_moran(x, W, opts)
  local what = "local_moran"
  opts = check_opts(opts, { permutations = true, seed = true, alpha = true }, what)
  check_weights(W, what)
  check_x(x, W, what)
  local alpha = opts.alpha or 0.05
  local I, E, V = K.local_moran(W, x)
  local n = W:n()
  local pp
  if opts.permutations then
    local np = opts.permutations
    if math.type(np) ~= "integer" or np < 1 then fail("%s: permutations must be a positive integer", what) end
    pp = K.local_moran_perm(W, x, np, opts.seed or 42)
  end
  -- the quadrant from z_i and its lag (x centred on its mean)
  local xv = {}
  for i = 1, n do xv[i] = type(x) == "table" and x[i] or x:get(i, 1) end
  local mean = 0
  for i = 1, n do mean = mean + xv[i] end
  mean = mean / n
  local z = {}
  for i = 1, n do z[i] = xv[i] - mean end
  local lz = W:lag(z)
  local cols = { Ii = {}, E_Ii = {}, Var_Ii = {}, Z_Ii = {}, p = {}, cluster = {}, Wx = {} }
  if pp then cols.p_perm = {} end
  for i = 1, n do
    local Ii, Ei, Vi = I:get(i, 1), E:get(i, 1), V:get(i, 1)
    local Z = (Ii - Ei) / math.sqrt(Vi)
    local p = 2 * dist.pnorm(math.abs(Z), true)
    cols.Ii[i], cols.E_Ii[i], cols.Var_Ii[i], cols.Z_Ii[i], cols.p[i] = Ii, Ei, Vi, Z, p
    cols.Wx[i] = lz:get(i, 1) + mean
    local psig = pp and pp:get(i, 1) or p
    if pp then cols.p_perm[i] = psig end
    local label = "ns"
    if psig == psig and psig < alpha then
      local hi, lhi = z[i] > 0, lz:get(i, 1) > 0
      label = (hi and "H" or "L") .. (lhi and "H" or "L")
    end
    cols.cluster[i] = label
  end
  local order = { "Ii", "E_Ii", "Var_Ii", "Z_Ii", "p" }
  if pp then order[#order + 1] = "p_perm" end
  order[#order + 1] = "Wx"
  order[#order + 1] = "cluster"
  local ids = W:ids()
  if ids then
    cols.id = ids
    table.insert(order, 1, "id")
  end
  return core.frame(cols, { order = order })
end

--- The design of a linear fit without absorbed effects: y, X (kept columns), e.
local function ols_parts(fit, W, what)
  if type(fit) ~= "table" or not fit.design or not fit.resid_values then
    fail("%s: expected a fit from sp.ols (with its design), got a %s", what, type(fit))
  end
  if fit.absorb or (fit.fe and #fit.fe > 0) then
    fail("%s: the fit has absorbed fixed effects; these tests need a pooled OLS fit (demean first, or add dummies)", what)
  end
  if fit.weights then fail("%s: weighted fits are not supported", what) end
  check_weights(W, what)
  local des = fit.design
  local n = des.n
  if n ~= W:n() then
    fail("%s: the fit uses %d observations but the weights have %d units; expected one observation per unit (in the weights' order)",
      what, n, W:n())
  end
  local cols = {}
  local kept = {}
  for _, nm in ipairs(fit.names) do kept[nm] = true end  -- fit.names: the columns kept (collinear ones dropped)
  for j, nm in ipairs(des.names) do if kept[nm] then cols[#cols + 1] = des.X:col(j) end end
  local X = #cols > 0 and core.matrix.hcat(table.unpack(cols)) or nil
  if not X then fail("%s: the fit has no regressors", what) end
  return des.y, X, fit.resid_values
end

local dot = util.dot

local function trace(A)
  local s = 0
  for i = 1, A:nrow() do s = s + A:get(i, i) end
  return s
end

--- sp.moran_residuals(fit, W): Moran's I of OLS residuals with the exact
--- moments under normality (Cliff-Ord; spdep::lm.morantest).
function M.moran_residuals(fit, W)
  local what = "moran_residuals"
  local _, X, e = ols_parts(fit, W, what)
  local n, k = X:nrow(), X:ncol()
  local S = W:stats()
  local S0 = S.S0
  local We = W:lag(e)
  local I = n / S0 * dot(e, We) / dot(e, e)
  local G = X:crossprod():inv()
  local WX = W:lag(X)
  local WtX = W:t():lag(X)
  local A = G * (X:t() * WX)         -- (X'X)^-1 X'WX
  local B = G * (X:t() * WtX)        -- (X'X)^-1 X'W'X
  local trs = W:traces(2)
  local trW, trWW = trs[1], trs[2]
  local trWWt = S.S1 - trWW  -- sum w_ij^2, as S1 = sum w_ij^2 + sum w_ij w_ji
  local trMW = trW - trace(A)
  local WWX = W:lag(WX)
  local trMWMW = trWW - 2 * trace(G * (X:t() * WWX)) + trace(A * A)
  local trMWMWt = trWWt - trace(G * (WX:t() * WX)) - trace(G * (WtX:t() * WtX)) + trace(A * B)
  local E = n / S0 * trMW / (n - k)
  local V = (n / S0) ^ 2 * (trMWMWt + trMWMW + trMW ^ 2) / ((n - k) * (n - k + 2)) - E ^ 2
  local z = (I - E) / math.sqrt(V)
  return setmetatable({ I = I, expectation = E, variance = V, z = z, pvalue = dist.pnorm(z, true),
    alternative = "greater", method = "Global Moran I for regression residuals", nobs = n }, result_mt)
end

--- sp.lm_tests(fit, W): LM tests for spatial lag and error dependence in OLS
--- residuals (Anselin 1988; robust forms Anselin et al. 1996), as spdep::lm.LMtests.
function M.lm_tests(fit, W)
  local what = "lm_tests"
  local y, X, e = ols_parts(fit, W, what)
  local n = X:nrow()
  local s2 = dot(e, e) / n
  local TrW = W:stats().S1                 -- tr(W'W + WW) = sum w_ij^2 + sum w_ij w_ji = S1
  local yhat = y - e
  local Wy, We, Wyhat = W:lag(y), W:lag(e), W:lag(yhat)
  local G = X:crossprod():inv()
  local XtWyhat = X:t() * Wyhat
  local dutmu = dot(e, We) / s2
  local dutmy = dot(e, Wy) / s2
  local q = (XtWyhat:t() * G * XtWyhat):get(1, 1)
  local nJ = (dot(Wyhat, Wyhat) - q + TrW * s2) / s2
  local function test(stat, df)
    return { statistic = stat, df = df, pvalue = dist.pchisq(stat, df, true) }
  end
  local out = {
    LMerr = test(dutmu ^ 2 / TrW, 1),
    LMlag = test(dutmy ^ 2 / nJ, 1),
    RLMerr = test((dutmu - TrW / nJ * dutmy) ^ 2 / (TrW * (1 - TrW / nJ)), 1),
    RLMlag = test((dutmy - dutmu) ^ 2 / (nJ - TrW), 1),
    SARMA = test((dutmy - dutmu) ^ 2 / (nJ - TrW) + dutmu ^ 2 / TrW, 2),
  }
  return setmetatable(out, { __tostring = function(t)
    local lines = { "Lagrange multiplier diagnostics for spatial dependence" }
    for _, k in ipairs { "LMerr", "LMlag", "RLMerr", "RLMlag", "SARMA" } do
      lines[#lines + 1] = string.format("  %-7s %10.4f  df %d  p = %.4g", k, t[k].statistic, t[k].df, t[k].pvalue)
    end
    return table.concat(lines, "\n")
  end })
end

--- sp.moran_by(d, col, W, by [, {entity=, randomisation=, permutations=, seed=, subset=}])
--- -> a frame with one row per value of `by`: by, n, I, expectation, variance, z, pvalue.
function M.moran_by(d, col, W, by, opts)
  local what = "moran_by"
  opts = check_opts(opts, { entity = true, randomisation = true, permutations = true, seed = true, subset = true },
    what)
  if not is_frame(d) then fail("%s: expected a frame, got a %s", what, type(d)) end
  check_weights(W, what)
  if type(by) ~= "string" then fail("%s: argument 4 must be the name of the period column", what) end
  local entity = opts.entity
  if entity == nil then
    local pi = util.panel_of(d)
    if pi == nil then
      fail("%s: name the unit column with {entity = ...} or give the frame a panel index", what)
    end
    entity = pi.entity
  end
  local x = column_values(d, col, what)
  for r = 1, #x do
    if type(x[r]) ~= "number" then fail("%s: column '%s' must be numeric (row %d is a %s)", what, col, r, type(x[r])) end
  end
  local ev = column_values(d, entity, what)
  local bv = column_values(d, by, what)
  local groups, gkeys = {}, {}
  for r = 1, #x do
    local key = bv[r]
    if key == nil then fail("%s: row %d has no %s", what, r, by) end
    if not groups[key] then groups[key] = {}; gkeys[#gkeys + 1] = key end
    table.insert(groups[key], r)
  end
  table.sort(gkeys, function(a, b)
    if type(a) == type(b) then return a < b end
    return tostring(a) < tostring(b)
  end)
  local wid = W:ids()
  if not wid then fail("%s: the weights have no unit ids to match the '%s' column against", what, entity) end
  local out = { [by] = {}, n = {}, I = {}, expectation = {}, variance = {}, z = {}, pvalue = {} }
  if opts.permutations then out.permutation_pvalue = {} end
  for gi, key in ipairs(gkeys) do
    local rows = groups[key]
    local ids, xv = {}, {}
    for k, r in ipairs(rows) do ids[k] = idstr(ev[r]); xv[k] = x[r] end
    local kname = idstr(key) or tostring(key)
    local idx = methods.index_of(W, ids, string.format("%s (%s %s)", what, by, kname))
    local Wg = W
    if #rows ~= W:n() then
      if not opts.subset then
        local have = {}
        for _, i in ipairs(idx) do have[i] = true end
        local miss = {}
        for i = 1, W:n() do if not have[i] then miss[#miss + 1] = wid[i] end end
        fail("%s: %s %s has no row for %d unit%s of the weights: %s (pass subset = true to use the weights among the units observed)",
          what, by, kname, #miss, #miss == 1 and "" or "s", some(miss, true))
      end
      Wg = W:subset(idx)
    end
    -- x in the weights' unit order
    local xw = {}
    if Wg == W then
      for k, i in ipairs(idx) do xw[i] = xv[k] end
    else
      xw = xv
    end
    local r = M.moran(xw, Wg, { randomisation = opts.randomisation, permutations = opts.permutations,
      seed = opts.seed })
    out[by][gi], out.n[gi], out.I[gi], out.expectation[gi] = key, #rows, r.I, r.expectation
    out.variance[gi], out.z[gi], out.pvalue[gi] = r.variance, r.z, r.pvalue
    if opts.permutations then out.permutation_pvalue[gi] = r.permutation_pvalue end
  end
  local order = { by, "n", "I", "expectation", "variance", "z", "pvalue" }
  if opts.permutations then order[#order + 1] = "permutation_pvalue" end
  return core.frame(out, { order = order })
end

return M
