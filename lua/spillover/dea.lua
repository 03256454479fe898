-- spillover.dea: frontier efficiency by linear programming (docs/estimators/dea.md).
--
--   sp.dea{inputs = X, outputs = Y, bad = B, model = "ccr" | "bcc" | "fdh" | "sbm" | "super_sbm" | "ddf",
--          orientation = "input" | "output" | "none", rts = "crs" | "vrs", ...}
--
-- Every LP of one model runs in one call of core.lp_batch (engine/src/lp.c):
-- the units' LPs differ only in a few columns, the right-hand side and the
-- objective, so the problem is built once per block and warm-started.
--
-- Data are divided by each variable's mean absolute value before the LPs
-- are built (every model here is invariant to units of measurement, so the
-- scores do not change, and GLPK sees coefficients near 1); slacks, targets
-- and weights are reported back in the data's units.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise

local M = {}

local TOL = 1e-9  -- an SBM score within TOL of 1 is efficient (super-SBM is solved for it)

-- ---- data ---------------------------------------------------------------------

-- Names of unnamed variables: x1, x2 (inputs), y1 (outputs), b1 (bad outputs).
local PREFIX = { inputs = "x", outputs = "y", bad = "b" }

-- A block of variables as {rows = n arrays of k numbers, names = k names}:
-- a matrix (units x variables), an array of rows, or column names of `data`.
local function read_block(v, data, what)
  if v == nil then return nil end
  if type(v) == "userdata" then
    local r, c = v:shape()
    local rows = {}
    for i = 1, r do rows[i] = c == 1 and { v(i, 1) } or v:row(i):tovector() end
    local names = {}
    for j = 1, c do names[j] = PREFIX[what] .. j end
    return { rows = rows, names = names }
  end
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" or #v == 0 then
    raise("dea: '" .. what .. "' must be a matrix, an array of rows or an array of column names")
  end
  if type(v[1]) == "string" then
    if not data then raise("dea: '" .. what .. "' names columns, so 'data' (a frame) is required") end
    local cols, names = {}, {}
    local have = {}
    for _, nm in ipairs(data:names()) do have[nm] = true end
    for j, nm in ipairs(v) do
      if not have[nm] then raise("dea: no column '" .. tostring(nm) .. "' in data (" .. what .. ")", { var = nm }) end
      local col = data[nm]
      if type(col) ~= "userdata" then raise("dea: column '" .. nm .. "' is not numeric", { var = nm }) end
      cols[j], names[j] = col:tovector(), nm
    end
    local rows = {}
    for i = 1, data:nrow() do
      local r = {}
      for j = 1, #cols do r[j] = cols[j][i] end
      rows[i] = r
    end
    return { rows = rows, names = names }
  end
  local rows, k = {}, nil
  for i, r in ipairs(v) do
    if type(r) == "number" then r = { r } end
    if type(r) ~= "table" then raise("dea: row " .. i .. " of '" .. what .. "' is not an array of numbers") end
    k = k or #r
    if #r ~= k then raise(string.format("dea: row %d of '%s' has %d values (row 1 has %d)", i, what, #r, k)) end
    rows[i] = r
  end
  local names = {}
  for j = 1, k do names[j] = PREFIX[what] .. j end
  return { rows = rows, names = names }
end

-- Check the values of a block: finite, and non-negative unless allowed.
local function check_values(block, what, unit_names, allow_negative)
  for i, r in ipairs(block.rows) do
    for j, x in ipairs(r) do
      local unit = unit_names and unit_names[i] or tostring(i)
      if type(x) ~= "number" or x ~= x or x == math.huge or x == -math.huge then
        raise(string.format("dea: %s '%s' of unit '%s' is %s; expected a finite number", what, block.names[j], unit,
          x ~= x and "NaN" or tostring(x)), { var = block.names[j] })
      end
      if x < 0 and not allow_negative then
        raise(string.format("dea: %s '%s' of unit '%s' is negative (%g); the models need data >= 0 "
          .. "(translate the variable, or use model = \"ddf\")", what, block.names[j], unit, x),
          { var = block.names[j] })
      end
    end
  end
end

-- The mean absolute value of each variable over the rows of the blocks (1 when all are 0).
local function scales(blocks, k)
  local sc = {}
  for j = 1, k do
    local s, n = 0, 0
    for _, b in ipairs(blocks) do
      for _, r in ipairs(b) do s, n = s + math.abs(r[j]), n + 1 end
    end
    sc[j] = (n > 0 and s > 0) and s / n or 1
  end
  return sc
end

local function scaled(rows, sc)
  local out = {}
  for i, r in ipairs(rows) do
    local o = {}
    for j = 1, #sc do o[j] = r[j] / sc[j] end
    out[i] = o
  end
  return out
end

-- ---- the LP layouts -----------------------------------------------------------
-- ref and ev are {X =, Y =, B =} arrays of rows (scaled); m, s, nb their widths.
-- Column 1 is the model's own variable (theta, phi, beta or the Charnes-Cooper
-- t), columns 2..nr+1 the intensities, then the slacks.

local function dims(ref, ev)
  return #ref.X, #ev.X, #ref.X[1], #(ref.Y[1] or {}), ref.B and #ref.B[1] or 0
end

local function matrix_of(rows, ncol)
  if #rows == 0 then return core.matrix(0, ncol) end
  return core.matrix(rows)
end

-- fix0 for super-efficiency: exclude[k] is the reference column of unit k or nil.
local function fix0_of(exclude, ne, offset)
  if not exclude then return nil end
  local f = {}
  for k = 1, ne do f[k] = exclude[k] and exclude[k] + offset or 0 end
  return f
end

-- Solve a batch; keep (1-based columns, or nil for all) limits what comes
-- back, since a frontier of thousands of units has thousands of intensity
-- columns per LP.  res.get(k, j) reads column j of problem k's solution.
local function batch(spec, o, keep)
  spec.threads, spec.keep = o.threads, keep
  local res = core.lp_batch(spec)
  local pos = {}
  if keep then
    for q, j in ipairs(keep) do pos[j] = q end
  end
  local x = res.x
  res.get = keep and function(k, j) return x(k, pos[j]) end or function(k, j) return x(k, j) end
  res.pos = pos
  return res
end

local function range(out, a, b)
  for j = a, b do out[#out + 1] = j end
  return out
end

-- Radial (CCR / BCC), phase 1: the score.
local function radial_phase1(ref, ev, o, exclude, keep)
  local nr, ne, m, s = dims(ref, ev)
  local input = o.orientation == "input"
  local rows, sense, colval, rhs = {}, {}, {}, {}
  local n = 1 + nr
  local nrow = m + s + (o.rts == "vrs" and 1 or 0)
  for i = 1, m do
    local r = { 0 }
    for j = 1, nr do r[j + 1] = input and -ref.X[j][i] or ref.X[j][i] end
    rows[#rows + 1], sense[#sense + 1] = r, input and "G" or "L"
  end
  for q = 1, s do
    local r = { 0 }
    for j = 1, nr do r[j + 1] = ref.Y[j][q] end
    rows[#rows + 1], sense[#sense + 1] = r, "G"
  end
  if o.rts == "vrs" then
    local r = { 0 }
    for j = 1, nr do r[j + 1] = 1 end
    rows[#rows + 1], sense[#sense + 1] = r, "E"
  end
  for k = 1, ne do
    local c, b = {}, {}
    for i = 1, m do
      local nd = o.nondisc[i]
      if input then
        c[i], b[i] = nd and 0 or ev.X[k][i], nd and -ev.X[k][i] or 0
        if nd then c[i] = 0 end
      else
        c[i], b[i] = 0, ev.X[k][i]
      end
    end
    for q = 1, s do
      c[m + q], b[m + q] = input and 0 or -ev.Y[k][q], input and ev.Y[k][q] or 0
    end
    if o.rts == "vrs" then c[nrow], b[nrow] = 0, 1 end
    colval[k], rhs[k] = c, b
  end
  -- Non-discretionary inputs (input orientation): -sum(lambda x) >= -x_o.
  for i = 1, m do
    if input and o.nondisc[i] then
      for j = 1, nr do rows[i][j + 1] = -ref.X[j][i] end
    end
  end
  local obj = { 1 }
  for j = 1, nr do obj[j + 1] = 0 end
  return batch({ A = matrix_of(rows, n), sense = table.concat(sense), obj = core.matrix(obj), maximize = not input,
    varcols = { 1 }, colval = matrix_of(colval, nrow), prob_rhs = matrix_of(rhs, nrow), count = ne,
    fix0 = fix0_of(exclude, ne, 1) }, o, keep)
end

-- Phase 2 of the radial models and of the DDF: maximise the sum of the
-- (scaled) slacks with the score fixed.  target[k] = {x =, y =, b =}: the
-- radially projected point of unit k.  Columns: lambda, s-, s+, s^b.
local function slack_phase(ref, ne, targets, o, exclude, keep)
  local nr, m = #ref.X, #ref.X[1]
  local s, nb = #(ref.Y[1] or {}), ref.B and #ref.B[1] or 0
  local n = nr + m + s + nb
  local rows, sense, rhs = {}, {}, {}
  local function row(vals, slackcol, sign)
    local r = {}
    for j = 1, nr do r[j] = vals[j] end
    for j = nr + 1, n do r[j] = 0 end
    r[slackcol] = sign
    rows[#rows + 1], sense[#sense + 1] = r, "E"
  end
  for i = 1, m do
    local v = {}
    for j = 1, nr do v[j] = ref.X[j][i] end
    row(v, nr + i, 1)
  end
  for q = 1, s do
    local v = {}
    for j = 1, nr do v[j] = ref.Y[j][q] end
    row(v, nr + m + q, -1)
  end
  for q = 1, nb do
    local v = {}
    for j = 1, nr do v[j] = ref.B[j][q] end
    row(v, nr + m + s + q, 1)
  end
  if o.rts == "vrs" then
    local r = {}
    for j = 1, n do r[j] = j <= nr and 1 or 0 end
    rows[#rows + 1], sense[#sense + 1] = r, "E"
  end
  for k = 1, ne do
    local t, b = targets[k], {}
    for i = 1, m do b[i] = t.x[i] end
    for q = 1, s do b[m + q] = t.y[q] end
    for q = 1, nb do b[m + s + q] = t.b[q] end
    if o.rts == "vrs" then b[#b + 1] = 1 end
    rhs[k] = b
  end
  local obj = {}
  for j = 1, n do obj[j] = j <= nr and 0 or 1 end
  return batch({ A = matrix_of(rows, n), sense = table.concat(sense), obj = core.matrix(obj), maximize = true,
    prob_rhs = matrix_of(rhs, #sense), count = ne, fix0 = fix0_of(exclude, ne, 0) }, o, keep)
end

-- SBM and super-SBM in Charnes-Cooper form (t = 1 / denominator).
-- Columns: t, Lambda (nr), S- (m), S+ (s), S^b (nb).
local function sbm_lp(ref, ev, o, units, exclude, super, keep)
  local nr, _, m, s, nb = dims(ref, ev)
  local ne = #units
  local n = 1 + nr + m + s + nb
  local orient = o.orientation
  local nout = s + nb
  local mfree = 0
  for i = 1, m do if not o.nondisc[i] then mfree = mfree + 1 end end
  local rows, sense = {}, {}
  local function newrow(sn)
    local r = {}
    for j = 1, n do r[j] = 0 end
    rows[#rows + 1], sense[#sense + 1] = r, sn
    return r
  end
  newrow("E")  -- the normalisation: its coefficients vary by unit
  for i = 1, m do
    local r = newrow(super and "L" or "E")
    for j = 1, nr do r[1 + j] = ref.X[j][i] end
    r[1 + nr + i] = super and -1 or 1
  end
  for q = 1, s do
    local r = newrow(super and "G" or "E")
    for j = 1, nr do r[1 + j] = ref.Y[j][q] end
    r[1 + nr + m + q] = super and 1 or -1
  end
  for q = 1, nb do
    local r = newrow(super and "L" or "E")
    for j = 1, nr do r[1 + j] = ref.B[j][q] end
    r[1 + nr + m + s + q] = super and -1 or 1
  end
  if o.rts == "vrs" then
    local r = newrow("E")
    for j = 1, nr do r[1 + j] = 1 end
  end
  local nrow = #rows
  local rhs = { 1 }
  for i = 2, nrow do rhs[i] = 0 end
  -- Varying columns: t and every slack (their objective or normalisation
  -- coefficients depend on the unit's data).
  local varcols = { 1 }
  for j = 2 + nr, n do varcols[#varcols + 1] = j end
  local nvar = #varcols
  local colval, varobj = {}, {}
  local sgn = super and -1 or 1
  for k = 1, ne do
    local u = units[k]
    local c, ob = {}, {}
    local x, y, b = ev.X[u], ev.Y[u], ev.B and ev.B[u]
    -- t column
    c[1] = 1
    for i = 1, m do c[1 + i] = -x[i] end
    for q = 1, s do c[1 + m + q] = -y[q] end
    for q = 1, nb do c[1 + m + s + q] = -b[q] end
    if o.rts == "vrs" then c[nrow] = -1 end
    ob[1] = 1
    local function slackcol(row, normcoef, objcoef)
      local base = #c
      for r = 1, nrow do c[base + r] = 0 end
      c[base + 1] = normcoef
      c[base + row] = sgn * ((row > 1 + m and row <= 1 + m + s) and -1 or 1)
      ob[#ob + 1] = objcoef
    end
    for i = 1, m do
      local w = (orient ~= "output" and not o.nondisc[i] and x[i] > 0) and 1 / (mfree * x[i]) or 0
      slackcol(1 + i, 0, super and w or -w)
    end
    for q = 1, s do
      local w = (orient ~= "input" and y[q] > 0) and 1 / (nout * y[q]) or 0
      slackcol(1 + m + q, super and -w or w, 0)
    end
    for q = 1, nb do
      local w = (orient ~= "input" and b[q] > 0) and 1 / (nout * b[q]) or 0
      slackcol(1 + m + s + q, super and -w or w, 0)
    end
    colval[k], varobj[k] = c, ob
  end
  -- Oriented super-SBM keeps the other side at the unit's values (Tone 2002).
  local ub
  if super and orient ~= "none" then
    ub = {}
    for j = 1, n do ub[j] = math.huge end
    local lo, hi = orient == "input" and 2 + nr + m or 2 + nr, orient == "input" and n or 1 + nr + m
    for j = lo, hi do ub[j] = 0 end
    ub = core.matrix(ub)
  end
  local ex
  if exclude then
    ex = {}
    for k = 1, ne do ex[k] = exclude[units[k]] end
  end
  return batch({ A = matrix_of(rows, n), sense = table.concat(sense), rhs = core.matrix(rhs),
    obj = core.matrix(n, 1, 0), ub = ub, varcols = varcols, colval = matrix_of(colval, nvar * nrow),
    varobj = matrix_of(varobj, nvar), count = ne, fix0 = fix0_of(ex, ne, 1) }, o, keep), nr, m, s, nb
end

-- Directional distance function: max beta, inputs <= x - beta gx, good
-- outputs >= y + beta gy, bad outputs = b - beta gb (weak disposability).
local function ddf_lp(ref, ev, o, dirs, exclude, keep)
  local nr, ne, m, s, nb = dims(ref, ev)
  local rows, sense = {}, {}
  local function newrow(sn, vals)
    local r = { 0 }
    for j = 1, nr do r[j + 1] = vals(j) end
    rows[#rows + 1], sense[#sense + 1] = r, sn
  end
  for i = 1, m do newrow("L", function(j) return ref.X[j][i] end) end
  for q = 1, s do newrow("G", function(j) return ref.Y[j][q] end) end
  -- Weak disposability of bad outputs (Shephard; Chung, Faere & Grosskopf
  -- 1997): an equality, so bads can only be cut together with goods.
  -- Strong: bads behave like inputs (DataEnvelopmentAnalysis.jl's deaenv).
  local bsense = o.bad_disposability == "strong" and "L" or "E"
  for q = 1, nb do newrow(bsense, function(j) return ref.B[j][q] end) end
  if o.rts == "vrs" then newrow("E", function() return 1 end) end
  local nrow = #rows
  local colval, rhs = {}, {}
  for k = 1, ne do
    local g, c, b = dirs[k], {}, {}
    for i = 1, m do c[i], b[i] = g.x[i], ev.X[k][i] end
    for q = 1, s do c[m + q], b[m + q] = -g.y[q], ev.Y[k][q] end
    for q = 1, nb do c[m + s + q], b[m + s + q] = g.b[q], ev.B[k][q] end
    if o.rts == "vrs" then c[nrow], b[nrow] = 0, 1 end
    colval[k], rhs[k] = c, b
  end
  local obj, lb = { 1 }, { -math.huge }
  for j = 1, nr do obj[j + 1], lb[j + 1] = 0, 0 end
  return batch({ A = matrix_of(rows, 1 + nr), sense = table.concat(sense), obj = core.matrix(obj),
    lb = core.matrix(lb), maximize = true, varcols = { 1 }, colval = matrix_of(colval, nrow),
    prob_rhs = matrix_of(rhs, nrow), count = ne, fix0 = fix0_of(exclude, ne, 1) }, o, keep)
end

-- The direction vectors of the DDF for each evaluated unit (scaled data):
-- each part "observed" (the unit's own values), "ones", "mean" (the
-- variable's mean over the evaluated units, as DataEnvelopmentAnalysis.jl)
-- or "zeros".
local function ddf_dirs(ref, ev, dir, sc)
  local function part(kind, rows, refrows, k, scv, name)
    local g = {}
    local w = #(refrows[1] or {})
    for j = 1, w do
      if kind == "observed" then
        g[j] = rows[k][j]
      elseif kind == "zeros" then
        g[j] = 0
      elseif kind == "ones" then
        g[j] = 1 / scv[j]
      elseif kind == "mean" then
        local t = 0
        for _, r in ipairs(rows) do t = t + r[j] end
        g[j] = t / #rows
      else
        raise("dea: direction." .. name .. " must be \"observed\", \"zeros\", \"ones\" or \"mean\", got "
          .. tostring(kind))
      end
    end
    return g
  end
  local d = {}
  for k = 1, #ev.X do
    d[k] = { x = part(dir.x, ev.X, ref.X, k, sc.x, "x"), y = part(dir.y, ev.Y, ref.Y, k, sc.y, "y"),
      b = ref.B and part(dir.b, ev.B, ref.B, k, sc.b, "b") or {} }
  end
  return d
end

-- FDH by enumeration (the mixed-integer LP has one feasible peer per
-- dominating unit, so the optimum is a min-max over units).
local function fdh(ref, ev, o, exclude)
  local nr, ne, m, s = dims(ref, ev)
  local input = o.orientation ~= "output"
  local score, peer = {}, {}
  for k = 1, ne do
    local best, arg = input and math.huge or -math.huge, nil
    for j = 1, nr do
      if j ~= (exclude and exclude[k]) then
        local ok, v = true, input and -math.huge or math.huge
        if input then
          for q = 1, s do if ref.Y[j][q] < ev.Y[k][q] then ok = false end end
          for i = 1, m do
            if ev.X[k][i] > 0 then v = math.max(v, ref.X[j][i] / ev.X[k][i])
            elseif ref.X[j][i] > 0 then ok = false end
          end
          if ok and (v < best) then best, arg = v, j end
        else
          for i = 1, m do if ref.X[j][i] > ev.X[k][i] then ok = false end end
          for q = 1, s do
            if ev.Y[k][q] > 0 then v = math.min(v, ref.Y[j][q] / ev.Y[k][q]) end
          end
          if ok and v > best then best, arg = v, j end
        end
      end
    end
    score[k], peer[k] = arg and best or 0 / 0, arg
  end
  return score, peer
end

-- ---- evaluation against a reference set -----------------------------------------

local function resolve_nondisc(nd, names)
  local set = {}
  for _, v in ipairs(nd or {}) do
    local idx = v
    if type(v) == "string" then
      for j, nm in ipairs(names) do if nm == v then idx = j end end
    end
    if math.type(idx) ~= "integer" or not names[idx] then
      raise("dea: nondiscretionary '" .. tostring(v) .. "' is not an input (inputs: "
        .. table.concat(names, ", ") .. ")")
    end
    set[idx] = true
  end
  return set
end

-- The units of ref that no other unit dominates (no more of any input or
-- bad output, no less of any good output, and strictly better in one).
-- Under free disposability the technology they span is the whole
-- reference set's, so every score is the same with them alone, and the LPs
-- are far smaller (a few hundred columns instead of thousands).  Units are
-- visited in increasing order of a sum that dominance strictly decreases,
-- so a unit can only be dominated by one visited before it, and (by
-- transitivity) by one already kept.
local function nondominated(ref)
  local X, Y, B = ref.X, ref.Y, ref.B
  local nr, m, s = #X, #X[1], #(Y[1] or {})
  local nb = B and #B[1] or 0
  local f, order = {}, {}
  for j = 1, nr do
    local v = 0
    for i = 1, m do v = v + X[j][i] end
    for q = 1, s do v = v - Y[j][q] end
    for q = 1, nb do v = v + B[j][q] end
    f[j], order[j] = v, j
  end
  table.sort(order, function(a, b) if f[a] ~= f[b] then return f[a] < f[b] end return a < b end)
  local kept = {}
  for _, j in ipairs(order) do
    local xj, yj, bj = X[j], Y[j], B and B[j]
    local dominated = false
    for _, i in ipairs(kept) do
      local xi, yi, bi = X[i], Y[i], B and B[i]
      local ok, strict = true, false
      for a = 1, m do
        if xi[a] > xj[a] then ok = false; break elseif xi[a] < xj[a] then strict = true end
      end
      if ok then
        for q = 1, s do
          if yi[q] < yj[q] then ok = false; break elseif yi[q] > yj[q] then strict = true end
        end
      end
      if ok then
        for q = 1, nb do
          if bi[q] > bj[q] then ok = false; break elseif bi[q] < bj[q] then strict = true end
        end
      end
      if ok and strict then dominated = true; break end
    end
    if not dominated then kept[#kept + 1] = j end
  end
  table.sort(kept)
  return kept
end

local function subset(set, idx)
  local out = { X = {}, Y = {} }
  if set.B then out.B = {} end
  for a, j in ipairs(idx) do
    out.X[a], out.Y[a] = set.X[j], set.Y[j]
    if set.B then out.B[a] = set.B[j] end
  end
  return out
end

--- evaluate(ref, ev, o [, exclude]) -> {score = {...}, status = {...}, super = {bool},
--- slacks = {x =, y =, b =} (rows in scaled units), lambda = matrix (when o.lambda), dual}.
--- ref, ev: {X =, Y =, B =} rows already scaled.  exclude[k]: the index in
--- ref of unit k (left out of its reference set for super-efficiency), or
--- nil.  Used by sp.dea, the Malmquist indices and the derive step.
function M.evaluate(ref, ev, o, exclude)
  local nr, ne = #ref.X, #ev.X
  local out = { score = {}, status = {}, super = {}, slacks = { x = {}, y = {}, b = {} } }
  local model = o.model
  local m, s, nb = #ref.X[1], #(ref.Y[1] or {}), ref.B and #ref.B[1] or 0
  local want_lambda = o.lambda ~= false
  -- The reference set reduced to its non-dominated units when every
  -- variable is freely disposable (not for bads under weak disposability);
  -- cmap[j]: the reference index of column j of the reduced set.
  local full, cmap = ref, nil
  if model ~= "fdh" and not (model == "ddf" and o.bad_disposability ~= "strong") and o.reduce ~= false then
    local c = nondominated(ref)
    if #c < nr then ref, cmap = subset(full, c), c end
  end
  -- slacks of problem a (columns first.. of res), divided by t, stored for unit k
  local function take_slacks(res, a, k, first, t, sign)
    local sx, sy, sb = {}, {}, {}
    for i = 1, m do sx[i] = sign * res.get(a, first + i - 1) / t end
    for q = 1, s do sy[q] = sign * res.get(a, first + m + q - 1) / t end
    for q = 1, nb do sb[q] = sign * res.get(a, first + m + s + q - 1) / t end
    out.slacks.x[k], out.slacks.y[k], out.slacks.b[k] = sx, sy, sb
  end
  -- intensities of problem a over the reference set it used (map: the
  -- reduced set's indices, or nil for the full set)
  local function take_lambda(lam, res, a, k, first, t, map, width)
    if map then
      for j = 1, nr do lam:set(k, j, 0) end
      for j, r in ipairs(map) do lam:set(k, r, res.get(a, first + j - 1) / t) end
    else
      for j = 1, width do lam:set(k, j, res.get(a, first + j - 1) / t) end
    end
  end
  if model == "fdh" then
    local score, peer = fdh(full, ev, o, o.super and exclude)
    local lam = core.matrix(ne, nr, 0)
    for k = 1, ne do
      out.score[k] = score[k]
      out.status[k] = peer[k] and "optimal" or "infeasible"
      if peer[k] then
        lam:set(k, peer[k], 1)
        local sx, sy = {}, {}
        local th, p = score[k], full.X[peer[k]]
        local py = full.Y[peer[k]]
        for i = 1, m do sx[i] = (o.orientation ~= "output" and th * ev.X[k][i] or ev.X[k][i]) - p[i] end
        for q = 1, s do sy[q] = py[q] - (o.orientation ~= "output" and ev.Y[k][q] or th * ev.Y[k][q]) end
        out.slacks.x[k], out.slacks.y[k], out.slacks.b[k] = sx, sy, {}
      end
    end
    out.lambda = lam
    return out
  end
  if model == "radial" or model == "ddf" then
    -- super-efficiency excludes each unit from its own reference set: the
    -- reduced set is not valid then (a unit dominated only by the excluded
    -- one would be missing), so those LPs use the full set
    if o.super and exclude then ref, cmap = full, nil end
    local nc = #ref.X
    local phase2 = o.slacks ~= false
    local keep = { 1 }
    if want_lambda and not phase2 then range(keep, 2, nc + 1) end
    local res, dirs
    if model == "radial" then
      res = radial_phase1(ref, ev, o, o.super and exclude, keep)
    else
      dirs = ddf_dirs(ref, ev, o.direction, o.scales)
      res = ddf_lp(ref, ev, o, dirs, o.super and exclude, keep)
    end
    out.dual = res.dual
    local targets, ok = {}, {}
    for k = 1, ne do
      out.status[k] = res.status[k]
      out.score[k] = res.value(k, 1)
      if res.status[k] == "optimal" and phase2 then
        local v = out.score[k]
        local t = { x = {}, y = {}, b = {} }
        for i = 1, m do
          if model == "ddf" then t.x[i] = ev.X[k][i] - v * dirs[k].x[i]
          elseif o.orientation == "input" and not o.nondisc[i] then t.x[i] = v * ev.X[k][i]
          else t.x[i] = ev.X[k][i] end
        end
        for q = 1, s do
          if model == "ddf" then t.y[q] = ev.Y[k][q] + v * dirs[k].y[q]
          elseif o.orientation == "output" then t.y[q] = v * ev.Y[k][q]
          else t.y[q] = ev.Y[k][q] end
        end
        for q = 1, nb do t.b[q] = ev.B[k][q] - v * dirs[k].b[q] end
        targets[#targets + 1], ok[#ok + 1] = t, k
      end
    end
    local lam = want_lambda and core.matrix(ne, nr, 0 / 0) or nil
    if not phase2 then
      for k = 1, ne do
        if lam and res.status[k] == "optimal" then take_lambda(lam, res, k, k, 2, 1, cmap, nc) end
      end
      out.lambda = lam
      return out
    end
    if #ok > 0 then
      local ex
      if o.super and exclude then
        ex = {}
        for a, k in ipairs(ok) do ex[a] = exclude[k] end
      end
      local keep2 = range({}, nc + 1, nc + m + s + nb)
      if want_lambda then range(keep2, 1, nc) end
      local r2 = slack_phase(ref, #ok, targets, o, ex, keep2)
      for a, k in ipairs(ok) do
        if r2.status[a] == "optimal" then
          take_slacks(r2, a, k, nc + 1, 1, 1)
          if lam then take_lambda(lam, r2, a, k, 1, 1, cmap, nc) end
        end
      end
    end
    out.lambda = lam
    return out
  end
  -- SBM, super-SBM: t, then the slacks (and the intensities when wanted).
  -- The first pass scores every unit on the (reduced) reference set; the
  -- super-SBM pass, for the efficient units only, uses the full set with the
  -- unit itself left out.
  local function keep_of(nc)
    local keep = range({ 1 }, 2 + nc, 1 + nc + m + s + nb)
    if want_lambda then range(keep, 2, 1 + nc) end
    return keep
  end
  local nc = #ref.X
  local all = {}
  for k = 1, ne do all[k] = k end
  local res = sbm_lp(ref, ev, o, all, nil, false, keep_of(nc))
  local lam = want_lambda and core.matrix(ne, nr, 0 / 0) or nil
  local again = {}
  for k = 1, ne do
    out.status[k] = res.status[k]
    out.score[k] = res.value(k, 1)
    if res.status[k] == "optimal" then
      local t = res.get(k, 1)
      take_slacks(res, k, k, 2 + nc, t, 1)
      if lam then take_lambda(lam, res, k, k, 2, t, cmap, nc) end
    end
    -- super-SBM: efficient units, and units outside the reference set's
    -- technology (SBM infeasible, as in mixed-period Malmquist LPs).
    if (model == "super_sbm" and (res.status[k] == "infeasible" or
        (res.status[k] == "optimal" and out.score[k] >= 1 - TOL))) or (o.beyond and res.status[k] == "infeasible") then
      again[#again + 1] = k
    end
  end
  if #again > 0 then
    local r2 = sbm_lp(full, ev, o, again, exclude, true, keep_of(nr))
    for a, k in ipairs(again) do
      out.status[k] = r2.status[a]
      out.score[k] = r2.value(a, 1)
      out.super[k] = true
      if r2.status[a] == "optimal" then
        -- super-SBM slacks are the distances the unit could worsen: reported negative
        take_slacks(r2, a, k, 2 + nr, r2.get(a, 1), -1)
        if lam then take_lambda(lam, r2, a, k, 2, r2.get(a, 1), nil, nr) end
      else
        if lam then for j = 1, nr do lam:set(k, j, 0 / 0) end end
        out.slacks.x[k], out.slacks.y[k], out.slacks.b[k] = nil, nil, nil
      end
    end
  end
  out.lambda = lam
  return out
end

-- ---- sp.dea ---------------------------------------------------------------------

local MODELS = { ccr = true, bcc = true, fdh = true, sbm = true, super_sbm = true, ddf = true }
local OPTIONS = { "inputs", "outputs", "bad", "data", "model", "orientation", "rts", "super", "slacks",
  "direction", "bad_disposability", "nondiscretionary", "names", "id", "threads", "lambda", "reduce" }

--- Normalise sp.dea / sp.malmquist options into the internal form.
function M.options(opts, who)
  who = who or "dea"
  local model = opts.model or "ccr"
  if not MODELS[model] then
    raise(who .. ": model must be one of ccr, bcc, fdh, sbm, super_sbm, ddf; got " .. tostring(model))
  end
  local rts = opts.rts or ((model == "bcc" or model == "fdh") and "vrs" or "crs")
  if rts ~= "crs" and rts ~= "vrs" then raise(who .. ": rts must be \"crs\" or \"vrs\", got " .. tostring(rts)) end
  if model == "ccr" and rts == "vrs" then raise(who .. ": model \"ccr\" is constant returns to scale (use \"bcc\")") end
  if model == "bcc" and rts == "crs" then raise(who .. ": model \"bcc\" is variable returns to scale (use \"ccr\")") end
  local default_orient = (model == "sbm" or model == "super_sbm" or model == "ddf") and "none" or "input"
  local orientation = opts.orientation or default_orient
  if orientation ~= "input" and orientation ~= "output" and orientation ~= "none" then
    raise(who .. ": orientation must be \"input\", \"output\" or \"none\", got " .. tostring(orientation))
  end
  if (model == "ccr" or model == "bcc" or model == "fdh") and orientation == "none" then
    raise(who .. ": model \"" .. model .. "\" needs orientation \"input\" or \"output\"")
  end
  local dir = opts.direction or {}
  if type(dir) ~= "table" then raise(who .. ": direction must be a table {x =, y =, b =}") end
  util.check_options(dir, { "x", "y", "b" }, who .. ": direction")
  local disp = opts.bad_disposability or "weak"
  if disp ~= "weak" and disp ~= "strong" then
    raise(who .. ": bad_disposability must be \"weak\" or \"strong\", got " .. tostring(disp))
  end
  return {
    model = (model == "ccr" or model == "bcc") and "radial" or model,
    name = model, rts = rts, orientation = orientation, super = opts.super == true or model == "super_sbm",
    slacks = opts.slacks, threads = opts.threads or 1, bad_disposability = disp, lambda = opts.lambda ~= false,
    reduce = opts.reduce ~= false,
    direction = { x = dir.x or "zeros", y = dir.y or "observed", b = dir.b or "observed" },
  }
end

--- Read inputs / outputs / bad into {X, Y, B, names}, check them, and scale.
function M.prepare(opts, who, unit_names)
  local X = read_block(opts.inputs, opts.data, "inputs")
  local Y = read_block(opts.outputs, opts.data, "outputs")
  local B = read_block(opts.bad, opts.data, "bad")
  if not X then raise(who .. ": 'inputs' is required") end
  if not Y and not B then raise(who .. ": 'outputs' (or 'bad') is required") end
  Y = Y or { rows = {}, names = {} }
  local n = #X.rows
  if #Y.rows == 0 then for i = 1, n do Y.rows[i] = {} end end
  for _, b in ipairs({ Y, B }) do
    if b and #b.rows ~= n then
      raise(string.format("%s: inputs have %d units but another block has %d", who, n, #b.rows))
    end
  end
  local allow_neg = opts.model == "ddf"
  check_values(X, "input", unit_names, allow_neg)
  check_values(Y, "output", unit_names, allow_neg)
  if B then check_values(B, "bad output", unit_names, allow_neg) end
  return { X = X, Y = Y, B = B, n = n }
end

function M.scale_all(d, rowsets)
  local sc = { x = scales(rowsets.X, #d.X.names), y = scales(rowsets.Y, #d.Y.names) }
  if d.B then sc.b = scales(rowsets.B, #d.B.names) end
  return sc
end

function M.scaled_set(d, sc, idx)
  local function pick(rows)
    local out = {}
    for a, i in ipairs(idx) do out[a] = rows[i] end
    return out
  end
  local set = { X = scaled(pick(d.X.rows), sc.x), Y = scaled(pick(d.Y.rows), sc.y) }
  if d.B then set.B = scaled(pick(d.B.rows), sc.b) end
  return set
end

local function unit_names_of(opts, n)
  if opts.names then return opts.names end
  if opts.id then
    if not opts.data then raise("dea: 'id' names a column, so 'data' is required") end
    local col = opts.data[opts.id]
    local out = {}
    for i = 1, n do out[i] = type(col) == "table" and col[i] or tostring(col[i]) end
    return out
  end
  local out = {}
  for i = 1, n do out[i] = tostring(i) end
  return out
end

function M.dea(opts)
  if type(opts) ~= "table" then raise("dea: expected a table of options") end
  util.check_options(opts, OPTIONS, "dea")
  local o = M.options(opts, "dea")
  if o.model == "radial" and opts.bad then
    raise("dea: model \"" .. o.name .. "\" has no bad outputs; use \"sbm\", \"super_sbm\" or \"ddf\"")
  end
  local n0 = opts.data and opts.data:nrow() or (type(opts.inputs) == "userdata" and opts.inputs:nrow())
    or (type(opts.inputs) == "table" and #opts.inputs) or 0
  local names = unit_names_of(opts, n0)
  local d = M.prepare(opts, "dea", names)
  local n = d.n
  o.nondisc = resolve_nondisc(opts.nondiscretionary, d.X.names)
  local sc = M.scale_all(d, { X = { d.X.rows }, Y = { d.Y.rows }, B = d.B and { d.B.rows } })
  o.scales = sc
  local idx = {}
  for i = 1, n do idx[i] = i end
  local set = M.scaled_set(d, sc, idx)
  local r = M.evaluate(set, set, o, o.super and idx or nil)
  local res = { model = o.name, rts = o.rts, orientation = o.orientation, names = names, n = n,
    efficiency = r.score, status = r.status, notes = {}, super = {},
    inputs = d.X.names, outputs = d.Y.names, bad = d.B and d.B.names or {} }
  for k = 1, n do
    res.super[k] = r.super[k] or false
    if r.status[k] ~= "optimal" then
      res.efficiency[k] = 0 / 0
      local why = r.status[k]
      if o.super and o.rts == "vrs" and why == "infeasible" then
        why = "infeasible (super-efficiency under VRS: no point of the other units' technology "
          .. "reaches this unit's outputs; reported as NA)"
      end
      res.notes[#res.notes + 1] = string.format("unit '%s': the LP is %s", names[k], why)
    end
  end
  -- Slacks back in the data's units.
  local function unscale(rows, scv)
    local out = {}
    for k = 1, n do
      local row, o2 = rows[k], {}
      -- |slack| below 1e-9 of the variable's mean is LP round-off; no row: NA
      for j = 1, #scv do
        o2[j] = not row and 0 / 0 or math.abs(row[j]) < 1e-9 and 0 or row[j] * scv[j]
      end
      out[k] = o2
    end
    return out
  end
  res.slacks = { x = unscale(r.slacks.x, sc.x), y = unscale(r.slacks.y, sc.y) }
  if d.B then res.slacks.b = unscale(r.slacks.b, sc.b) end
  res.lambda = r.lambda
  res.peers = {}
  if opts.lambda ~= false then
    for k = 1, n do
      local p = {}
      local row = r.lambda:row(k):tovector()
      for j = 1, n do
        if row[j] > 1e-9 then p[#p + 1] = j end
      end
      res.peers[k] = p
    end
  end
  -- Multiplier (dual) weights of the radial models, in the data's units.
  if r.dual then
    local m, s = #sc.x, #sc.y
    res.weights = { v = {}, u = {} }
    for k = 1, n do
      local v, u = {}, {}
      for i = 1, m do v[i] = math.abs(r.dual(k, i)) / sc.x[i] end
      for q = 1, s do u[q] = math.abs(r.dual(k, m + q)) / sc.y[q] end
      res.weights.v[k], res.weights.u[k] = v, u
    end
  end
  return setmetatable(res, { __index = M.result_methods })
end

-- ---- efficiency as a derived variable (scenarios) ----------------------------------------

local DERIVE_KEYS = { "inputs", "outputs", "bad", "model", "rts", "orientation", "direction", "bad_disposability",
  "frontier", "hold", "productivity", "threads" }

--- The columns an efficiency derivation reads (for the derive step's order).
function M.derived_inputs(spec)
  local out = {}
  for _, part in ipairs({ "inputs", "outputs", "bad" }) do
    local v = spec[part]
    if type(v) == "string" then v = { v } end
    for _, nm in ipairs(type(v) == "table" and v or {}) do out[#out + 1] = nm end
  end
  return out
end

--- derived(d, spec, state, ctx) -> column (nrow x 1 matrix), state.
--- The efficiency of every row of frame d, for a scenario's derive step.
--- spec: inputs, outputs, bad (column names), model, rts, orientation,
--- direction, bad_disposability (as sp.dea), frontier = "global" (one frontier
--- over all rows, the default) or "period" (one per value of ctx.time), hold =
--- "baseline" (the default) or "reestimate", productivity = {index =,
--- frontier =} (a Malmquist table of the baseline, kept in state).
--- First call (state nil): the baseline; it returns the state later calls
--- need.  Later calls with hold = "baseline" score each row of the shocked
--- data against the baseline frontier (a row's own baseline point is left
--- out of its reference set for the super-efficiency models, so a unit is
--- compared with the others' baseline technology; an SBM row beyond the
--- held frontier gets its super-SBM score); with hold = "reestimate"
--- the frontier is estimated again from the shocked data.  Rows with a
--- missing value get NaN; an LP without solution gives NaN and a note.
function M.derived(d, spec, state, ctx)
  util.check_options(spec, DERIVE_KEYS, "efficiency")
  ctx = ctx or {}
  local frontier = spec.frontier or "global"
  if frontier ~= "global" and frontier ~= "period" then
    raise("efficiency: frontier must be \"global\" or \"period\", got " .. tostring(frontier))
  end
  if frontier == "period" and not ctx.time then
    raise("efficiency: frontier \"period\" needs the data's time column")
  end
  local hold = spec.hold or "baseline"
  if hold ~= "baseline" and hold ~= "reestimate" then
    raise("efficiency: hold must be \"baseline\" or \"reestimate\", got " .. tostring(hold))
  end
  local o = M.options(spec, "efficiency")
  o.slacks, o.lambda = false, false
  local n = d:nrow()
  for _, part in ipairs({ "inputs", "outputs", "bad" }) do
    local v = spec[part]
    if v ~= nil and type(v) ~= "string" and (type(v) ~= "table" or type(v[1]) ~= "string") then
      raise("efficiency: '" .. part .. "' must be a list of column names")
    end
  end
  local cols = M.derived_inputs(spec)
  -- complete rows only
  local complete, values = {}, {}
  for _, nm in ipairs(cols) do values[nm] = d[nm]:tovector() end
  for i = 1, n do
    local ok = true
    for _, nm in ipairs(cols) do
      local x = values[nm][i]
      if x ~= x or x == math.huge or x == -math.huge then ok = false end
    end
    if ok then complete[#complete + 1] = i end
  end
  if #complete == 0 then raise("efficiency: no row has all of " .. table.concat(cols, ", ")) end
  local sub = d:take(complete)
  local names = {}
  for a, i in ipairs(complete) do names[a] = tostring(i) end
  local dd = M.prepare({ data = sub, inputs = spec.inputs, outputs = spec.outputs, bad = spec.bad, model = o.name },
    "efficiency", names)
  o.nondisc = {}
  -- groups of rows sharing a frontier, keyed by period (or one group)
  local groups = {}
  if frontier == "period" then
    local t = sub[ctx.time]
    local at = {}
    for a = 1, #complete do
      local k = util.key_of(t[a])
      if not at[k] then at[k] = #groups + 1; groups[#groups + 1] = { key = k, rows = {} } end
      table.insert(groups[at[k]].rows, a)
    end
  else
    local all = {}
    for a = 1, #complete do all[a] = a end
    groups[1] = { key = "all", rows = all }
  end
  local first = state == nil
  local fresh = first or hold == "reestimate"  -- the frontier comes from these data
  local sc = fresh and M.scale_all(dd, { X = { dd.X.rows }, Y = { dd.Y.rows }, B = dd.B and { dd.B.rows } })
    or state.sc
  o.scales = sc
  if first then
    state = { sc = sc, refs = {}, rowpos = {}, notes = {} }
    for _, g in ipairs(groups) do
      state.refs[g.key] = M.scaled_set(dd, sc, g.rows)
      for a, r in ipairs(g.rows) do state.rowpos[complete[r]] = { g.key, a } end
    end
  end
  -- A shocked row beyond the held frontier has no SBM solution: it gets its
  -- super-SBM score (above 1) instead of NA.
  o.beyond = not fresh and o.model == "sbm"
  local out = core.matrix(n, 1, 0 / 0)
  for _, grp in ipairs(groups) do
    local g = grp.rows
    local ev = M.scaled_set(dd, sc, g)
    local ref = fresh and ev or state.refs[grp.key]
    if not ref then raise("efficiency: period " .. grp.key .. " of the shocked data has no baseline frontier") end
    local exclude
    if o.super then
      exclude = {}
      for a, r in ipairs(g) do
        local pos = state.rowpos[complete[r]]
        exclude[a] = fresh and a or (pos and pos[1] == grp.key and pos[2] or nil)
      end
    end
    local r = M.evaluate(ref, ev, o, exclude)
    for a, row in ipairs(g) do
      local i = complete[row]
      if r.status[a] == "optimal" then
        out:set(i, 1, r.score[a])
      elseif first then
        state.notes[#state.notes + 1] = string.format("row %d: the efficiency LP is %s (NA)", i, r.status[a])
      end
    end
  end
  if first and spec.productivity then
    local p = spec.productivity
    if type(p) ~= "table" then raise("efficiency: productivity must be a table {index =, frontier =}") end
    util.check_options(p, { "index", "frontier" }, "efficiency.productivity")
    if not (ctx.entity and ctx.time) then raise("efficiency: productivity needs the data's entity and time columns") end
    local mq = require "spillover.malmquist"
    local mopts = { data = sub, entity = ctx.entity, time = ctx.time, inputs = spec.inputs, outputs = spec.outputs,
      bad = spec.bad, index = p.index, frontier = p.frontier, rts = spec.rts, threads = spec.threads,
      bad_disposability = spec.bad_disposability, direction = spec.direction }
    if (p.index or "m") == "m" then mopts.model, mopts.orientation = spec.model, spec.orientation end
    state.productivity = mq.malmquist(mopts)
  end
  return out, state
end

M.result_methods = {}

--- res:frame(): one row per unit with its score and slacks.
function M.result_methods.frame(res)
  local cols = { unit = {}, efficiency = {} }
  local order = { "unit", "efficiency" }
  for k = 1, res.n do cols.unit[k], cols.efficiency[k] = res.names[k], res.efficiency[k] end
  for _, part in ipairs({ { "x", res.inputs }, { "y", res.outputs }, { "b", res.bad } }) do
    for j, nm in ipairs(part[2]) do
      local c = "slack_" .. nm
      cols[c] = {}
      for k = 1, res.n do cols[c][k] = res.slacks[part[1]][k][j] end
      order[#order + 1] = c
    end
  end
  return core.frame(cols, { order = order })
end

return M
