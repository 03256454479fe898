-- spillover.gmm: dynamic panels by difference GMM (Arellano & Bond 1991) and
-- system GMM (Blundell & Bond 1998), one- and two-step, with Windmeijer
-- (2005) corrected two-step errors, AR(1)/AR(2), Sargan/Hansen and
-- difference-in-Hansen tests (docs/estimators/gmm.md).
--
--   sp.gmm(d, "y ~ l(y, 1) + x1 + x2", {gmm = {"y 2 99", "x1 2 3"}, iv = {"x2"},
--          transformation = "fd" | "fod", system = true, steps = 2, robust = true,
--          collapse = false, time_dummies = true, compat = "pgmm" | "xtabond2"})
--
-- The layout follows plm::pgmm: every entity gets the same rows (one per
-- period of each equation, the transformed equation first), and a row whose
-- data are missing is a row of zeros, instruments included, so the one-step
-- weighting matrix H is the same for every entity.  The instrument matrix
-- is never formed for all rows at once: each entity's block Z_i is built,
-- reduced to Z_i'H Z_i, Z_i'X_i and Z_i'y_i, and only the AR tests read the
-- blocks again.  Every later quantity (two-step weights, Windmeijer's
-- correction, Hansen tests of instrument subsets) is a function of those
-- per-entity products.
local core = require "spillover.core"
local util = require "spillover.util"
local F = require "spillover.formula"
local fitmod = require "spillover.fit"
local raise = util.raise
local dist = core.dist
local matrix = core.matrix

local M = {}

local function fail(msg) raise("gmm: " .. msg) end

-- instrument column kinds: lagged levels (transformed equation), lagged
-- differences (levels equation), intercept and dummies, iv terms
local KIND = { gmm = 1, dgmm = 2, extra = 3, iv = 4 }

local OPTIONS = { "gmm", "iv", "transformation", "system", "steps", "robust", "collapse", "time_dummies", "compat" }

-- ---- options ---------------------------------------------------------------------------

--- One gmm() instrument spec as {term =, a =, b =, collapse =}: "y 2 99",
--- "y 2 .", {"y", 2, 99}, {"y", 2, 99, collapse = true} or {var = "y", lags = {2, 99}}.
local function gmm_spec(s, i, collapse)
  local term, a, b, col
  if type(s) == "string" then
    local parts = {}
    for w in s:gmatch("%S+") do parts[#parts + 1] = w end
    term, a, b = parts[1], parts[2] or "2", parts[3] or "."
    if #parts > 3 then
      fail(string.format("gmm[%d] = '%s': expected 'variable first_lag last_lag' (e.g. 'y 2 99')", i, s))
    end
    a = tonumber(a)
    b = b == "." and math.huge or tonumber(b)
  elseif type(s) == "table" then
    term = s.var or s[1]
    local lags = s.lags or { s[2], s[3] }
    a, b = lags[1] or 2, lags[2] or math.huge
    if b == "." then b = math.huge end
    col = s.collapse
  end
  if type(term) ~= "string" or type(a) ~= "number" or type(b) ~= "number" then
    fail(string.format("gmm[%d]: expected \"variable first_lag last_lag\" such as \"y 2 99\", or {\"y\", 2, 99}", i))
  end
  if a ~= math.floor(a) or a < 0 or (b ~= math.huge and (b ~= math.floor(b) or b < a)) then
    fail(string.format("gmm[%d] (%s): the lags must be integers with 0 <= first <= last, got %s to %s", i, term,
      tostring(a), tostring(b)))
  end
  if col == nil then col = collapse end
  return { term = term, a = a, b = b, collapse = col and true or false }
end

local function check(opts)
  opts = util.check_options(opts, OPTIONS, "gmm")
  local o = {}
  o.transformation = opts.transformation or "fd"
  if o.transformation ~= "fd" and o.transformation ~= "fod" then
    fail("option 'transformation' must be \"fd\" (first differences) or \"fod\" (forward orthogonal " ..
      "deviations), got " ..
      tostring(o.transformation))
  end
  o.steps = opts.steps or 2
  if o.steps ~= 1 and o.steps ~= 2 then fail("option 'steps' must be 1 or 2, got " .. tostring(o.steps)) end
  for _, k in ipairs({ "system", "robust", "collapse", "time_dummies" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then fail("option '" .. k .. "' must be true or false") end
  end
  o.system = opts.system or false
  o.robust = opts.robust ~= false
  o.collapse = opts.collapse or false
  o.time_dummies = opts.time_dummies
  o.compat = opts.compat or "pgmm"
  if o.compat ~= "pgmm" and o.compat ~= "xtabond2" then
    fail("option 'compat' must be \"pgmm\" or \"xtabond2\", got " .. tostring(o.compat))
  end
  local g = opts.gmm
  -- one spec alone ("y 2 99" or {"y", 2, 99}) or a list of them
  if type(g) == "string" or (type(g) == "table" and g[1] ~= nil and type(g[1]) ~= "table" and type(g[1]) ~= "string")
  then
    g = { g }
  end
  if type(g) ~= "table" or #g == 0 then
    fail("option 'gmm' is required: the GMM-style instruments, e.g. gmm = {\"y 2 99\"} (xtabond2's gmm(y, lag(2 99)))")
  end
  if type(g[1]) ~= "table" and type(g[1]) ~= "string" then g = { g } end
  o.gmm = {}
  for i, s in ipairs(g) do o.gmm[i] = gmm_spec(s, i, o.collapse) end
  if opts.iv ~= nil then
    local iv = type(opts.iv) == "string" and { opts.iv } or opts.iv
    if type(iv) ~= "table" then fail("option 'iv' must be a list of terms such as {\"x2\", \"l(x2, 1)\"}") end
    for i, t in ipairs(iv) do
      if type(t) ~= "string" then fail(string.format("iv[%d] must be a term (a string)", i)) end
    end
    o.iv = iv
  end
  return o
end

-- ---- the panel grid --------------------------------------------------------------------

--- Entity and period of every frame row: group codes 1..N (in sorted order
--- of the entity keys) and period positions 1..T on the time grid (integer
--- steps for an integer-valued time, as the panel index's lags, else the
--- sorted distinct values).
local function grid(d, info)
  local n = d:nrow()
  local ecol, tcol = d[info.entity], d[info.time]
  if type(tcol) ~= "userdata" then fail("the panel time '" .. info.time .. "' must be numeric") end
  local keys, seen = {}, {}
  local ekey = {}
  local evals = type(ecol) == "table" and ecol or ecol:tovector()
  local tvals = tcol:tovector()
  for r = 1, n do
    local v = evals[r]
    local k = util.key_of(v)
    ekey[r] = k
    if not seen[k] then seen[k] = v; keys[#keys + 1] = k end
  end
  table.sort(keys, function(x, y)
    local a, b = seen[x], seen[y]
    if type(a) == type(b) and type(a) == "number" then return a < b end
    return tostring(x) < tostring(y)
  end)
  local gcode = {}
  for i, k in ipairs(keys) do gcode[k] = i end
  local times, tset, integer = {}, {}, true
  for r = 1, n do
    local t = tvals[r]
    if not tset[t] then tset[t] = true; times[#times + 1] = t end
    if t ~= math.floor(t) then integer = false end
  end
  table.sort(times)
  local periods, pos = {}, {}
  if integer then
    for t = times[1], times[#times] do periods[#periods + 1] = t; pos[t] = #periods end
  else
    for i, t in ipairs(times) do periods[i] = t; pos[t] = i end
  end
  local g, p = {}, {}
  for r = 1, n do
    g[r] = gcode[ekey[r]]
    p[r] = pos[tvals[r]]
  end
  return { N = #keys, T = #periods, g = g, p = p, keys = keys, periods = periods }
end

--- Values of one term (any formula term: x, l(x, 1), log(x)) on the grid:
--- v[g][p], NaN where missing.
local function term_grid(d, G, term)
  local ok, des = pcall(function()
    return core.design(d, F.parse("y ~ " .. term):without_response(), { intercept = false })
  end)
  if not ok then fail("instrument '" .. term .. "': " .. util.message(des)) end
  if des.k ~= 1 then fail("instrument '" .. term .. "' must be one numeric column, got " .. des.k .. " columns") end
  local v = {}
  for i = 1, G.N do v[i] = {} end
  local col = des.X:tovector()
  for q, r in ipairs(des.rows) do v[G.g[r]][G.p[r]] = col[q] end
  return v
end

--- Largest lag (or difference span) of any variable on the right-hand side.
local function max_lag(f)
  local m = 0
  local function walk(n)
    if n.kind == "lag" or n.kind == "diff" then m = math.max(m, n.k) end
    for _, x in ipairs(n.args or {}) do walk(x) end
  end
  for _, t in ipairs(f.rhs) do walk(t) end
  return m
end

--- The variables a term node reads.
local function node_vars(n, out)
  if n.kind == "var" then out[n.var] = true end
  for _, x in ipairs(n.args or {}) do node_vars(x, out) end
  return out
end

-- ---- weighting matrices ----------------------------------------------------------------

-- A GMM weighting matrix A = c S^-1 is kept as its square root: whiten(X)
-- = U X with A = U'U.  With many instruments S is ill-conditioned (the
-- two-step S of system GMM on EmplUK has condition number ~1e9), and
-- estimating by least squares on whitened moments keeps the digits an
-- explicit inverse loses.  As pgmm, a smallest eigenvalue below 1e-9 means
-- a singular S, and then A is the Moore-Penrose inverse (MASS::ginv's
-- tolerance: eigenvalues below sqrt(eps) times the largest count as 0).
local function weight(S, c)
  local vals, vecs = S:eigen()
  local n = S:nrow()
  local W = { singular = vals[1] < 1e-9 }
  local sc = math.sqrt(c or 1)
  if W.singular then
    local tol = math.sqrt(2.220446049250313e-16) * math.max(math.abs(vals[1]), math.abs(vals[n]))
    local U = vecs:t()
    for i = 1, n do
      local f = vals[i] > tol and sc / math.sqrt(vals[i]) or 0
      for j = 1, n do U:set(i, j, U:get(i, j) * f) end
    end
    W.whiten = function(X) return U * X end
    W.apply = function(X) return U:crossprod(U * X) end
  else
    local R = S:chol()
    local Rt = R:t()
    W.whiten = function(X) return Rt:solve(X) * sc end
    W.apply = function(X) return R:solve(Rt:solve(X)) * (c or 1) end
  end
  return W
end

local function sym(A) return (A + A:t()) * 0.5 end

local function quad(v, A) return (v:t() * A * v):get(1, 1) end

--- The GMM estimate with weighting W: b and B = (X'Z A Z'X)^-1, as least
--- squares of the whitened moments.
local function gmm_step(ZX, Zy, W)
  local Q, q = W.whiten(ZX), W.whiten(Zy)
  local B = sym(Q:crossprod():solve(matrix.eye(ZX:ncol())))
  return B * Q:crossprod(q), B
end

--- The J statistic of moments z under W: z'A z.
local function jstat(W, z)
  local w = W.whiten(z)
  return w:crossprod():get(1, 1)
end

-- ---- building the equations ------------------------------------------------------------

--- The model's layout: rows (periods of the transformed and level equations),
--- regressor columns (the design's, then intercept and time dummies), and the
--- instrument columns with the group each belongs to (difference-in-Hansen).
local function layout(o, G, TL1, TL2, names, periods_name)
  local T = G.T
  local L = { rows1 = {}, rows2 = {} }
  for t = TL1 + 1, T do L.rows1[#L.rows1 + 1] = t end
  if o.system then for t = TL2 + 1, T do L.rows2[#L.rows2 + 1] = t end end
  L.R1, L.R2 = #L.rows1, #L.rows2
  L.R = L.R1 + L.R2
  -- level columns added to the regressors: intercept (system) and period dummies
  local extra = {}
  local intercept = o.system and (o.time_dummies or o.compat == "xtabond2")
  if intercept then extra[#extra + 1] = { name = "(Intercept)", period = nil } end
  if o.time_dummies then
    local first = o.system and TL2 + 2 or TL1 + 1
    for t = first, T do extra[#extra + 1] = { name = periods_name(t), period = t } end
  end
  L.extra = extra
  L.names = {}
  for _, nm in ipairs(names) do L.names[#L.names + 1] = nm end
  for _, e in ipairs(extra) do L.names[#L.names + 1] = e.name end
  L.kreg = #names
  L.k = #L.names
  -- instrument columns: {eq = 1|2|"both", kind, spec, lag, period, group}
  local cols = {}
  local function add(c) cols[#cols + 1] = c end
  for si, s in ipairs(o.gmm) do
    local grp = "gmm(" .. s.term .. ", " .. s.a .. ":" .. (s.b == math.huge and "." or s.b) .. ")"
    if s.collapse then
      local maxl = math.min(s.b, T - 1)
      for lag = s.a, maxl do
        -- a column only when some transformed-equation row reaches that lag
        if L.rows1[L.R1] and L.rows1[L.R1] - lag >= 1 then
          add { eq = 1, kind = "gmm", spec = si, lag = lag, group = grp }
        end
      end
    else
      for _, t in ipairs(L.rows1) do
        for s0 = math.max(1, t - s.b), t - s.a do
          add { eq = 1, kind = "gmm", spec = si, lag = t - s0, period = t, group = grp }
        end
      end
    end
    if o.system then
      -- levels: the difference dated t - (a - 1) (xtabond2), t - 1 in pgmm
      local lag = o.compat == "xtabond2" and math.max(s.a - 1, 0) or 1
      local lgrp = grp .. " levels"
      if s.collapse then
        local any = false
        for _, t in ipairs(L.rows2) do if t - lag >= 2 then any = true end end
        if any then add { eq = 2, kind = "dgmm", spec = si, lag = lag, group = lgrp } end
      else
        for _, t in ipairs(L.rows2) do
          if t - lag >= 2 then add { eq = 2, kind = "dgmm", spec = si, lag = lag, period = t, group = lgrp } end
        end
      end
    end
  end
  for j, e in ipairs(extra) do
    -- pgmm: the dummies instrument the transformed equation in difference
    -- GMM, the levels equation in system GMM
    -- a dummy is non-zero in the rows of its period only (differenced: its period and the next;
    -- a forward orthogonal deviation: every earlier row too)
    add { eq = o.system and 2 or 1, kind = "extra", col = L.kreg + j, group = "time dummies",
      periods = e.period and (o.system or o.transformation == "fd") and
        { [e.period] = true, [e.period + 1] = not o.system or nil } or nil }
  end
  for ti in ipairs(o.iv_terms) do
    if o.system and o.compat == "pgmm" then
      add { eq = 1, kind = "iv", term = ti, group = "iv" }
      add { eq = 2, kind = "iv", term = ti, group = "iv" }
    else
      add { eq = o.system and "both" or 1, kind = "iv", term = ti, group = "iv" }
    end
  end
  L.cols = cols
  L.ncol = #cols
  -- the columns that can be non-zero in each row (row r of the transformed
  -- equation, then the level rows)
  L.rowcols = {}
  for r = 1, L.R do
    local level = r > L.R1
    local t = level and L.rows2[r - L.R1] or L.rows1[r]
    local list = {}
    for c, col in ipairs(cols) do
      local eq_ok = col.eq == "both" or col.eq == (level and 2 or 1)
      if eq_ok and (col.period == nil or col.period == t) and (col.periods == nil or col.periods[t]) then
        list[#list + 1] = c
      end
    end
    L.rowcols[r] = list
  end
  -- the intercept and dummies of each row as {column = value}: levels D_t, differences D_t - D_t-1
  L.xextra = {}
  for r = 1, L.R do
    local level = r > L.R1
    local t = level and L.rows2[r - L.R1] or L.rows1[r]
    local x = {}
    for j, e in ipairs(extra) do
      local v
      if level then v = (e.period == nil or e.period == t) and 1 or 0
      elseif e.period then v = (e.period == t and 1 or 0) - (e.period == t - 1 and 1 or 0)
      else v = 0 end
      if v ~= 0 then x[L.kreg + j] = v end
    end
    L.xextra[r] = x
  end
  -- the columns' fields as flat arrays (the hot loop of entity_block reads them)
  L.ckind, L.cspec, L.clag, L.cterm, L.ccol = {}, {}, {}, {}, {}
  for c, col in ipairs(cols) do
    L.ckind[c], L.cspec[c], L.clag[c], L.cterm[c], L.ccol[c] = KIND[col.kind], col.spec, col.lag, col.term, col.col
  end
  return L
end

--- Forward orthogonal deviation at period s of the values v[.] among the
--- periods ok[.]: sqrt(m / (m + 1)) (v[s] - mean of the m later ones).
local function fod(v, ok, s, T)
  local sum, m = 0, 0
  for q = s + 1, T do
    if ok[q] then sum = sum + v[q]; m = m + 1 end
  end
  if m == 0 then return nil end
  return math.sqrt(m / (m + 1)) * (v[s] - sum / m)
end

local mset = matrix(1, 1, 0).set  -- every matrix's set: looked up once for the hot loop

--- Writes the block of one entity into the chunk matrices: its transformed
--- rows at rows off + 1.. of Z1, X1, y1, its level rows at off + 1.. of Z2,
--- X2, y2.  The chunks start as zeros and only non-zero cells are written
--- (unused rows stay zero, as pgmm's).  Returns the rows used in each equation.
local function entity_block(o, L, lev, ok, inst, ivv, T, ch, off)
  local kreg = L.kreg
  local fodmode = o.transformation == "fod"
  local ckind, cspec, clag, cterm, ccol = L.ckind, L.cspec, L.clag, L.cterm, L.ccol
  local levX, levy = lev.X, lev.y
  -- the intercept and dummies of each row: fixed per row, except under
  -- orthogonal deviations, where they depend on the entity's later periods
  local xfix = L.xextra
  local xcols
  if fodmode then
    xcols = {}
    for j = kreg + 1, L.k do
      local per, c = L.extra[j - kreg].period, {}
      for p = 1, T do if ok[p] then c[p] = (per == nil or per == p) and 1 or 0 end end
      xcols[j] = c
    end
  end
  local function num(v) return (v ~= nil and v == v) and v or 0 end
  local n1, n2 = 0, 0
  local R1 = L.R1
  local Z1, X1, y1, Z2, X2, y2 = ch.Z1, ch.X1, ch.y1, ch.Z2, ch.X2, ch.y2
  for r = 1, R1 + L.R2 do
    local level = r > R1
    local t = level and L.rows2[r - R1] or L.rows1[r]
    local yy, xrow, xex
    if level then
      if ok[t] then yy, xrow, xex = levy[t], levX[t], xfix[r] end
    elseif fodmode then
      if ok[t - 1] then
        yy = fod(levy, ok, t - 1, T)
        if yy ~= nil then
          xrow, xex = {}, {}
          for j = 1, kreg do
            local c = {}
            for p = t - 1, T do if ok[p] then c[p] = levX[p][j] end end
            xrow[j] = fod(c, ok, t - 1, T)
          end
          for j = kreg + 1, L.k do xex[j] = fod(xcols[j], ok, t - 1, T) end
        end
      end
      if ok[t] and ok[t - 1] then
        -- first differences as well: the AR tests read differenced residuals
        mset(ch.yd, off + r, 1, levy[t] - levy[t - 1])
        local a, b = levX[t], levX[t - 1]
        for j = 1, kreg do mset(ch.Xd, off + r, j, a[j] - b[j]) end
        for j, v in pairs(xfix[r]) do mset(ch.Xd, off + r, j, v) end
      end
    elseif ok[t] and ok[t - 1] then
      local a, b = levX[t], levX[t - 1]
      yy, xrow, xex = levy[t] - levy[t - 1], {}, xfix[r]
      for j = 1, kreg do xrow[j] = a[j] - b[j] end
    end
    if xrow then
      local Z, X, y, row
      if level then
        Z, X, y, row = Z2, X2, y2, off + r - R1
        n2 = n2 + 1
      else
        Z, X, y, row = Z1, X1, y1, off + r
        n1 = n1 + 1
      end
      mset(y, row, 1, yy)
      for j = 1, kreg do if xrow[j] ~= 0 then mset(X, row, j, xrow[j]) end end
      for j, v in pairs(xex) do if v ~= 0 then mset(X, row, j, v) end end
      local cols = L.rowcols[r]
      for q = 1, #cols do
        local c = cols[q]
        local kind, val = ckind[c], 0
        if kind == 1 then
          local v = inst[cspec[c]][t - clag[c]]
          if v ~= nil and v == v then val = v end
        elseif kind == 2 then
          local s0 = t - clag[c]
          local v = inst[cspec[c]]
          local a, b = v[s0], v[s0 - 1]
          if a ~= nil and b ~= nil and a == a and b == b then val = a - b end
        elseif kind == 3 then
          val = xex[ccol[c]] or 0
        elseif level then
          val = num(ivv[cterm[c]][t])
        elseif fodmode then
          -- an iv term transformed like the equation (missing values count 0, as pgmm's)
          local v, vv = ivv[cterm[c]], {}
          for p = 1, T do vv[p] = num(v[p]) end
          val = fod(vv, ok, t - 1, T) or 0
        else
          local v = ivv[cterm[c]]
          val = num(v[t]) - num(v[t - 1])
        end
        if val ~= 0 then mset(Z, row, c, val) end
      end
    end
  end
  return n1, n2
end

-- ---- estimation ------------------------------------------------------------------------

--- The selection matrix of the columns idx of an n-column matrix (n x #idx):
--- M * sel picks columns, sel' * M rows, in BLAS rather than element by element.
local function selector(n, idx)
  local sel = matrix(n, #idx, 0)
  for c, i in ipairs(idx) do sel:set(i, c, 1) end
  return sel
end

local function chi2_test(stat, df)
  return { statistic = stat, df = df, pvalue = df > 0 and dist.pchisq(stat, df, true) or 0 / 0 }
end

--- Wald chi2 that the coefficients idx are all zero.
local function wald(b, V, idx)
  if #idx == 0 then return nil end
  local sel = selector(b:nrow(), idx)
  local bb = sel:crossprod(b)
  local VV = sel:crossprod(V * sel)
  return chi2_test(quad(bb, sym(VV):inv()), #idx)
end

--- sp.gmm(d, formula, opts) -> fit
function M.gmm(d, formula, opts)
  local o = check(opts)
  local info = util.panel_of(d)
  if not info then fail("the data need a panel index: d:panel{entity = ..., time = ...}") end
  if type(formula) ~= "string" and not F.is_formula(formula) then fail("expected a formula as argument 2") end
  local f = F.is_formula(formula) and formula or F.parse(formula)
  if f:iv() then fail("the formula takes no IV part: give the instruments in the options gmm = and iv =") end
  local fe = f:fe()
  if #fe > 0 then
    if #fe == 1 and fe[1] == info.time then
      if o.time_dummies == false then fail("'| " .. info.time .. "' asks for time dummies but time_dummies = false") end
      o.time_dummies = true
    else
      fail("the only term after '|' can be the panel time '" .. info.time .. "' (time dummies); " ..
        "entity effects are removed by the transformation, got '| " .. table.concat(fe, " + ") .. "'")
    end
  end
  o.time_dummies = o.time_dummies or false
  local fm = f:without_fe()
  local yname = f:response()
  if not yname then fail("the formula needs a response (y ~ l(y, 1) + ...)") end
  local ok_d, des = pcall(core.design, d, fm, { intercept = false })
  if not ok_d then raise("gmm: " .. util.message(des)) end
  local G = grid(d, info)
  local T = G.T
  -- default iv: pgmm's rule, the regressor terms whose variables no gmm() spec names
  local gmmvars = {}
  for _, s in ipairs(o.gmm) do
    local ok_p, pf = pcall(F.parse, "y ~ " .. s.term)
    if ok_p then for _, n in ipairs(pf.rhs) do node_vars(n, gmmvars) end end
  end
  if o.iv == nil then
    o.iv = {}
    for _, n in ipairs(f.rhs) do
      local vars, other = node_vars(n, {}), true
      for v in pairs(vars) do if gmmvars[v] then other = false end end
      if other then o.iv[#o.iv + 1] = F.format_term(n) end
    end
  end
  -- TL1/TL2: pgmm's periods lost to the lags
  local maxlag, minlag = max_lag(f), math.huge
  for _, s in ipairs(o.gmm) do minlag = math.min(minlag, s.a) end
  local TL1 = math.max(maxlag + 1, minlag)
  local TL2 = math.max(maxlag, minlag - 1)
  if T - TL1 < 1 then
    fail(string.format("%d periods are too few: the lags leave no period for the transformed equation " ..
      "(the first %d periods are lost)", T, TL1))
  end
  local tname = function(t) return info.time .. "::" .. util.key_of(G.periods[t]) end
  o.iv_terms = o.iv
  local L = layout(o, G, TL1, TL2, des.names, tname)
  for si, s in ipairs(o.gmm) do
    local any = false
    for _, c in ipairs(L.cols) do if c.kind == "gmm" and c.spec == si then any = true end end
    if not any then
      fail(string.format("gmm(%s, %d:%s): no period of the %d has lag %d of %s inside the panel", s.term, s.a,
        s.b == math.huge and "." or tostring(s.b), T, s.a, s.term))
    end
  end
  local nL, k = L.ncol, L.k
  if nL < k then
    fail(string.format("%d instruments for %d coefficients: the model is not identified", nL, k))
  end
  -- level data on the grid
  local N = G.N
  local lev, okp = {}, {}
  for i = 1, N do lev[i] = { y = {}, X = {} }; okp[i] = {} end
  local Xd, yd = des.X:totable(), des.y:tovector()
  if des.k == 1 then for q = 1, #Xd do Xd[q] = { Xd[q] } end end  -- totable of n x 1 is flat
  for q, r in ipairs(des.rows) do
    local i, p = G.g[r], G.p[r]
    lev[i].X[p], lev[i].y[p], okp[i][p] = Xd[q], yd[q], true
  end
  local instv, ivv = {}, {}
  local cache = {}
  local function tg(term)
    if not cache[term] then cache[term] = term_grid(d, G, term) end
    return cache[term]
  end
  for si, s in ipairs(o.gmm) do instv[si] = tg(s.term) end
  for ti, t in ipairs(o.iv) do ivv[ti] = tg(t) end

  -- Pass 1: the entities' blocks, stacked in chunks of at most ~2^21 cells
  -- (never the whole n x L instrument matrix of a large panel).  Each entity
  -- has P = R1 + 1 rows in the transformed-equation chunk (its rows, then a
  -- zero row) and, in system GMM, P level rows in the level chunk.  The zero
  -- row separates entities, so Z'HZ comes from products of shifted views:
  -- H = C C' with C = [D; I] (D the first-difference operator), and
  --   Z1'G Z1 = 2 Z1'Z1 - S - S',  S = Z1[1..n-1]' Z1[2..n]
  --   Z1'FD Z2 = Z1[1..n-1]' Z2[2..n] - Z1'Z2
  -- (pgmm's one-step matrices tcrossprod(diff(I)) and FSM "full").
  local P = L.R1 + 1
  local per_chunk = math.max(1, math.floor(2 ^ 21 / (P * (o.system and 2 or 1) * math.max(nL, k + 1))))
  local chunks = {}
  local ZHZ, ZX, Zy = matrix(nL, nL, 0), matrix(nL, k, 0), matrix(nL, 1, 0)
  local nobs, nobs1, Ng = 0, 0, 0
  local function products(ch)
    local m = ch.Z1:nrow()
    local Z1a, Z1b = ch.Z1:view(1, 1, m - 1, nL), ch.Z1:view(2, 1, m - 1, nL)
    local Z1Z1 = ch.Z1:crossprod()
    if o.transformation == "fod" then
      ZHZ = ZHZ + Z1Z1
    else
      local S = Z1a:crossprod(Z1b)
      ZHZ = ZHZ + Z1Z1 * 2 - S - S:t()
    end
    ZX, Zy = ZX + ch.Z1:crossprod(ch.X1), Zy + ch.Z1:crossprod(ch.y1)
    if o.system then
      ZHZ = ZHZ + ch.Z2:crossprod()
      if o.transformation == "fd" then
        local C = Z1a:crossprod(ch.Z2:view(2, 1, m - 1, nL)) - ch.Z1:crossprod(ch.Z2)
        ZHZ = ZHZ + C + C:t()
      end
      ZX, Zy = ZX + ch.Z2:crossprod(ch.X2), Zy + ch.Z2:crossprod(ch.y2)
    end
  end
  local inst, iv = {}, {}
  for first = 1, N, per_chunk do
    local n = math.min(per_chunk, N - first + 1)
    local ch = { n = n, first = first, Z1 = matrix(n * P, nL, 0), X1 = matrix(n * P, k, 0), y1 = matrix(n * P, 1, 0) }
    if o.system then ch.Z2, ch.X2, ch.y2 = matrix(n * P, nL, 0), matrix(n * P, k, 0), matrix(n * P, 1, 0) end
    if o.transformation == "fod" then ch.Xd, ch.yd = matrix(n * P, k, 0), matrix(n * P, 1, 0) end
    for g = 1, n do
      local i = first + g - 1
      for si in ipairs(o.gmm) do inst[si] = instv[si][i] end
      for ti in ipairs(o.iv) do iv[ti] = ivv[ti][i] end
      local n1, n2 = entity_block(o, L, lev[i], okp[i], inst, iv, T, ch, (g - 1) * P)
      nobs, nobs1 = nobs + n1 + n2, nobs1 + n1
      if n1 + n2 > 0 then Ng = Ng + 1 end
    end
    products(ch)
    chunks[#chunks + 1] = ch
  end
  if nobs1 == 0 then fail("no entity has a complete transformed-equation row (check the lags against the periods)") end
  local notes = {}
  local W1 = weight(sym(ZHZ), N)  -- pgmm's A1 = N (sum Z_i'H Z_i)^-1
  if W1.singular then
    notes[#notes + 1] = "the first-step weighting matrix is singular: a generalized inverse is used"
  end
  local b1, B1 = gmm_step(ZX, Zy, W1)
  -- residuals of both equations by chunk, and the entities' moments u_i = Z_i'e_i
  local function residuals(ch, bb)
    local e1 = ch.y1 - ch.X1 * bb
    return e1, o.system and (ch.y2 - ch.X2 * bb) or nil
  end
  local function moments(ch, e1, e2)
    local cols = {}
    for g = 1, ch.n do
      local r0 = (g - 1) * P + 1
      local u = ch.Z1:view(r0, 1, P, nL):crossprod(e1:view(r0, 1, P, 1))
      if e2 then u = u + ch.Z2:view(r0, 1, P, nL):crossprod(e2:view(r0, 1, P, 1)) end
      cols[g] = u
    end
    return ch.n == 1 and cols[1] or matrix.hcat(table.unpack(cols))
  end
  local S2 = matrix(nL, nL, 0)
  for _, ch in ipairs(chunks) do
    ch.U1 = moments(ch, residuals(ch, b1))
    S2 = S2 + ch.U1:t():crossprod()
  end
  S2 = sym(S2)
  local W2 = weight(S2)  -- A2 = S2^-1
  if W2.singular then
    notes[#notes + 1] = "the second-step weighting matrix is singular: a generalized inverse is used"
  end
  local b, Bnr, W = b1, B1, W1
  if o.steps == 2 then b, Bnr = gmm_step(ZX, Zy, W2); W = W2 end
  -- covariance: pgmm's vcovHC.pgmm
  local A1ZX = W1.apply(ZX)
  local vcov1s = B1 * (A1ZX:t() * S2 * A1ZX) * B1
  local V, vlabel
  if not o.robust then
    V, vlabel = Bnr, o.steps == 1 and "one-step (pgmm's classic)" or "two-step (uncorrected)"
  elseif o.steps == 1 then
    V, vlabel = vcov1s, "one-step robust"
  else
    -- Windmeijer (2005): V = B2 + D B2 + (D B2)' + D V1 D' with column j of
    -- D = -B2 X'Z A2 (dS2/db_j) A2 Z'e2.  With v = A2 Z'e2, (dS2/db_j) v =
    -- -sum_i [G_ij (u_i'v) + u_i (G_ij'v)] (G_i = Z_i'X_i), so all columns at once:
    -- D = B2 X'Z A2 M, M = sum_i [(u_i'v) G_i + u_i (G_i'v)'].
    local v = W2.apply(Zy - ZX * b)
    local Mw = matrix(nL, k, 0)
    -- per chunk: sum_i s_i G_i = Z'(X with entity i's rows scaled by s_i),
    -- column by column, and sum_i u_i w_i' with w_i = X_i'Z_i v summed over
    -- entity i's rows
    local function part(Zc, Xc, srep, zv, Wt, n)
      local cols = {}
      for j = 1, k do
        local xj = Xc:col(j)
        cols[j] = Zc:crossprod(xj:mul(srep))
        local y = xj:mul(zv):tovector()
        for g = 1, n do
          local acc = 0
          for r = (g - 1) * P + 1, g * P do acc = acc + y[r] end
          Wt[g][j] = Wt[g][j] + acc
        end
      end
      return k == 1 and cols[1] or matrix.hcat(table.unpack(cols))
    end
    for _, ch in ipairs(chunks) do
      local sv = ch.U1:crossprod(v):tovector()
      local s = {}
      for g = 1, ch.n do
        for r = (g - 1) * P + 1, g * P do s[r] = sv[g] end
      end
      local srep = matrix(s)
      local Wt = {}
      for g = 1, ch.n do
        local w = {}
        for j = 1, k do w[j] = 0 end
        Wt[g] = w
      end
      Mw = Mw + part(ch.Z1, ch.X1, srep, ch.Z1 * v, Wt, ch.n)
      if o.system then Mw = Mw + part(ch.Z2, ch.X2, srep, ch.Z2 * v, Wt, ch.n) end
      Mw = Mw + ch.U1 * matrix(Wt)
    end
    local D = Bnr * W2.apply(ZX):crossprod(Mw)
    local DB = D * Bnr
    V = Bnr + DB + DB:t() + D * vcov1s * D:t()
    vlabel = "Windmeijer-corrected two-step"
  end
  V = sym(V)
  -- Hansen J (two-step weights) and pgmm's Sargan (one-step weights)
  local ze = Zy - ZX * b
  local df_over = nL - k
  local hansen = chi2_test(jstat(W2, ze), df_over)
  local sargan = chi2_test(jstat(W1, ze), df_over)
  -- AR(m) tests of the transformed-equation residuals (pgmm's mtest,
  -- Arellano & Bond 1991 m1/m2) with the covariance V
  -- Under orthogonal deviations the tests read the first-differenced
  -- residuals (as xtabond2), and the moments' residuals stay the deviations.
  local AZX = W.apply(ZX)
  local resid, mresid = {}, {}
  for q, ch in ipairs(chunks) do
    mresid[q] = ch.y1 - ch.X1 * b
    resid[q] = ch.Xd and (ch.yd - ch.Xd * b):tovector() or mresid[q]:tovector()
  end
  local function ar(order)
    if L.R1 <= order then return nil end
    local num, EVE = 0, 0
    local EX, ZVE = matrix(1, k, 0), matrix(nL, 1, 0)
    for q, ch in ipairs(chunks) do
      local ev, el, ws = resid[q], {}, {}
      for g = 1, ch.n do
        local r0 = (g - 1) * P
        local sg = 0
        for ri = 1, P do
          local r = r0 + ri
          local lagged = (ri > order and ri <= L.R1) and ev[r - order] or 0
          el[r] = lagged
          sg = sg + ev[r] * lagged
        end
        for ri = 1, P do ws[r0 + ri] = sg end
        num, EVE = num + sg, EVE + sg * sg
      end
      EX = EX + matrix(el):crossprod(ch.Xd or ch.X1)
      ZVE = ZVE + ch.Z1:crossprod(mresid[q]:mul(matrix(ws)))
    end
    local denom = EVE - 2 * (EX * Bnr * AZX:crossprod(ZVE)):get(1, 1) + (EX * V * EX:t()):get(1, 1)
    local z = num / math.sqrt(denom)
    return { statistic = z, pvalue = 2 * dist.pnorm(math.abs(z), true) }
  end
  local ar1, ar2 = ar(1), ar(2)
  if not ar2 then notes[#notes + 1] = "AR(2) is not computed: the transformed equation has fewer than 3 periods" end
  -- difference-in-Hansen for each instrument group: J minus the J of the
  -- two-step estimate without the group, weighted by the submatrix of the
  -- same one-step moments S2 (so the difference is >= 0, Hayashi's C)
  local diff_hansen = {}
  local order, members = {}, {}
  for c, col in ipairs(L.cols) do
    if not members[col.group] then members[col.group] = {}; order[#order + 1] = col.group end
    members[col.group][c] = true
  end
  if o.system then
    -- all GMM-style instruments of the levels equation (the Blundell-Bond restrictions)
    local lv = {}
    for c, col in ipairs(L.cols) do if col.kind == "dgmm" then lv[c] = true end end
    if next(lv) then members["levels equation (GMM)"] = lv; order[#order + 1] = "levels equation (GMM)" end
  end
  for _, grp in ipairs(order) do
    local keep = {}
    for c = 1, nL do if not members[grp][c] then keep[#keep + 1] = c end end
    local ok_s, Js = false, nil
    if #keep > k and #keep < nL then
      ok_s, Js = pcall(function()
        local sel = selector(nL, keep)
        local Ws = weight(sel:crossprod(S2 * sel))
        local ZXs, Zys = sel:crossprod(ZX), sel:crossprod(Zy)
        local bs = gmm_step(ZXs, Zys, Ws)
        return jstat(Ws, Zys - ZXs * bs)
      end)
    end
    if ok_s then
      local c = chi2_test(hansen.statistic - Js, nL - #keep)
      c.excluded = chi2_test(Js, #keep - k)
      c.group = grp
      diff_hansen[#diff_hansen + 1] = c
    end
  end
  -- Wald tests: the regressors, and the time dummies
  local bvec = b
  local reg_idx, td_idx = {}, {}
  for j = 1, L.kreg do reg_idx[j] = j end
  for j, e in ipairs(L.extra) do if e.period then td_idx[#td_idx + 1] = L.kreg + j end end
  local wald_coef = wald(bvec, V, reg_idx)
  local wald_td = wald(bvec, V, td_idx)
  if nL > N then
    notes[#notes + 1] = string.format("%d instruments exceed the %d entities: the Hansen test is weak and the " ..
      "estimates lean towards OLS; consider collapse = true or shorter lag ranges", nL, N)
  end
  local bt, Vt = {}, util.rows(V)
  for j = 1, k do bt[j] = bvec:get(j, 1) end
  local stats = {
    model = o.steps == 1 and "onestep" or "twosteps", transformation = o.transformation, system = o.system,
    robust = o.robust, n_entities = N, n_groups = Ng, n_periods = T, n_instruments = nL, nobs = nobs,
    nobs_transformed = nobs1, nobs_levels = nobs - nobs1,
    hansen = hansen, sargan = sargan, ar1 = ar1, ar2 = ar2, wald = wald_coef, wald_time = wald_td,
    diff_hansen = diff_hansen,
    -- flat numbers for sp.etable's stats rows
    hansen_p = hansen.pvalue, sargan_p = sargan.pvalue, ar1_p = ar1 and ar1.pvalue, ar2_p = ar2 and ar2.pvalue,
    hansen_stat = hansen.statistic, sargan_stat = sargan.statistic,
    ar1_z = ar1 and ar1.statistic, ar2_z = ar2 and ar2.statistic,
  }
  local label = (o.system and "System GMM (Blundell-Bond)" or "Difference GMM (Arellano-Bond)") ..
    (o.steps == 1 and ", one-step" or ", two-step") .. (o.transformation == "fod" and ", orthogonal deviations" or "")
  local fit = fitmod.new {
    names = L.names, b = bt, V = Vt, nobs = nobs, stats = stats, estimator = "gmm", label = label,
    formula = f, vcov_label = vlabel, notes = notes,
    table_stats = { "n_instruments", "ar1_p", "ar2_p", "hansen_p" },
    private = { b1 = b1, layout = L, grid = G, opts = o },
  }
  -- level predictions: X b + the period's dummy (and intercept) + the entity's mean level residual
  local alpha = {}
  local tau = {}
  for j, e in ipairs(L.extra) do
    local v = bt[L.kreg + j]
    if e.period then tau[e.period] = (tau[e.period] or 0) + v else tau.all = v end
  end
  for i = 1, N do
    local s, m = 0, 0
    for p = 1, T do
      if okp[i][p] then
        local xb = (tau.all or 0) + (tau[p] or 0)
        for j = 1, L.kreg do xb = xb + lev[i].X[p][j] * bt[j] end
        s, m = s + lev[i].y[p] - xb, m + 1
      end
    end
    alpha[G.keys[i]] = m > 0 and s / m or nil
  end
  fit.private.alpha, fit.private.tau = alpha, tau
  fit.predict_fn = M.predict
  if #f:response_lags() > 0 then stats.long_run = M.long_run(fit) end
  return fit
end

--- Predictions in levels on a frame (the counterfactual hook): X b plus the
--- period effect and the entity's effect estimated at the fit (NaN for an
--- entity or period the fit did not see, or where a regressor is missing).
function M.predict(fit, frame, opts)
  local p = fit.private
  local info = util.panel_of(frame)
  if not info then raise("gmm predict: the data need a panel index") end
  local f = F.is_formula(fit.formula) and fit.formula or F.parse(fit.formula)
  local des = core.design(frame, f:without_fe():without_response(), { intercept = false })
  local coef = opts and opts.coef
  local L = p.layout
  local b = {}
  for j, nm in ipairs(L.names) do b[j] = coef and coef[nm] or fit.b[j] end
  local tau = {}
  local all = 0
  for j, e in ipairs(L.extra) do
    if e.period then tau[p.grid.periods[e.period]] = b[L.kreg + j] else all = b[L.kreg + j] end
  end
  local n = frame:nrow()
  local out = matrix(n, 1, 0 / 0)
  local ecol, tcol = frame[info.entity], frame[info.time]
  local col = {}
  for j, nm in ipairs(des.names) do col[nm] = j end
  local X = des.X
  for q, r in ipairs(des.rows) do
    local ev = type(ecol) == "table" and ecol[r] or ecol:get(r, 1)
    local a = p.alpha[util.key_of(ev)]
    if a then
      local v = a + all + (tau[tcol:get(r, 1)] or 0)
      for j = 1, L.kreg do v = v + X:get(q, col[L.names[j]]) * b[j] end
      out:set(r, 1, v)
    end
  end
  return out
end

--- Long-run effects of each regressor variable: the sum of its coefficients
--- (current and lagged) over 1 - the sum of the lagged-outcome coefficients,
--- with delta-method standard errors.  {var = {estimate, se, z, pvalue}}.
function M.long_run(fit, coef)
  local f = F.is_formula(fit.formula) and fit.formula or F.parse(fit.formula)
  local y = f:response()
  local ys = f:response_vars()
  local idx = fit.index
  local rho, rho_idx = 0, {}
  local by, order = {}, {}
  for _, n in ipairs(f.rhs) do
    local name = F.format_term(n)
    local j = idx[n.name or name] or idx[name]
    if j then
      if (n.kind == "lag") and n.args[1].kind == "var" and n.args[1].var == ys[1] and #ys == 1 then
        rho = rho + (coef and coef[fit.names[j]] or fit.b[j])
        rho_idx[#rho_idx + 1] = j
      else
        local base = n
        while base.kind == "lag" do base = base.args[1] end
        local key = F.format_term(base)
        if not by[key] then by[key] = {}; order[#order + 1] = key end
        by[key][#by[key] + 1] = j
      end
    end
  end
  if #rho_idx == 0 then raise("gmm.long_run: the formula has no lag of " .. tostring(y)) end
  local V = fit.V
  local out = {}
  for _, key in ipairs(order) do
    local s = 0
    for _, j in ipairs(by[key]) do s = s + (coef and coef[fit.names[j]] or fit.b[j]) end
    local lr = s / (1 - rho)
    local grad = {}
    for _, j in ipairs(by[key]) do grad[j] = 1 / (1 - rho) end
    for _, j in ipairs(rho_idx) do grad[j] = (grad[j] or 0) + s / (1 - rho) ^ 2 end
    local var = 0
    for a, ga in pairs(grad) do
      for c, gc in pairs(grad) do var = var + ga * V[a][c] * gc end
    end
    local se = math.sqrt(var)
    out[key] = { estimate = lr, se = se, z = lr / se, pvalue = 2 * dist.pnorm(math.abs(lr / se), true) }
    out[#out + 1] = key
  end
  return out
end

-- ---- report section and registration (spillover.report, spillover.registry) -----------

local function test_row(num, name, t, df_text)
  if not t then return string.format("| %s | | | not computed |", name) end
  return string.format("| %s | %s | %s | %s |", name, num(t.statistic), df_text or (t.df and tostring(t.df) or ""),
    num(t.pvalue))
end

--- The specification tests and long-run effects of a GMM fit (gmm_<model>.md),
--- and the same under models.<name>.gmm in results.json.
local function report_md(fit, num)
  local st = fit.stats
  local md = { "| test | statistic | df | p-value |", "|---|---:|---:|---:|",
    test_row(num, "AR(1) in first differences (z)", st.ar1, "-"),
    test_row(num, "AR(2) in first differences (z)", st.ar2, "-"),
    test_row(num, "Sargan (one-step weights)", st.sargan),
    test_row(num, "Hansen J (two-step weights)", st.hansen),
    test_row(num, "Wald (regressors)", st.wald) }
  if st.wald_time then md[#md + 1] = test_row(num, "Wald (time dummies)", st.wald_time) end
  for _, c in ipairs(st.diff_hansen) do
    md[#md + 1] = test_row(num, "Difference-in-Hansen: " .. c.group, c)
  end
  md[#md + 1] = ""
  md[#md + 1] = string.format("Instruments: %d; entities: %d; observations: %d.", st.n_instruments, st.n_entities,
    st.nobs)
  if st.long_run then
    md[#md + 1] = ""
    md[#md + 1] = "Long-run effects b / (1 - sum of the lagged-outcome coefficients), delta-method standard errors:"
    md[#md + 1] = ""
    md[#md + 1] = "| variable | long-run effect | SE | z | p-value |"
    md[#md + 1] = "|---|---:|---:|---:|---:|"
    for _, v in ipairs(st.long_run) do
      local e = st.long_run[v]
      md[#md + 1] = string.format("| %s | %s | %s | %s | %s |", v, num(e.estimate), num(e.se), num(e.z), num(e.pvalue))
    end
  end
  for _, n in ipairs(fit.notes or {}) do md[#md + 1] = ""; md[#md + 1] = "Note: " .. n end
  return table.concat(md, "\n") .. "\n"
end

local function report_files(fit, out)
  out:write("gmm_" .. out.name .. ".md", "# Dynamic panel GMM: " .. out.name .. "\n\n" .. report_md(fit, out.number))
  out:log("GMM specification tests of %s written", out.name)
end

local function report_json(fit)
  local st = fit.stats
  local lr = {}
  for _, v in ipairs(st.long_run or {}) do lr[v] = st.long_run[v] end
  return { n_instruments = st.n_instruments, ar1 = st.ar1, ar2 = st.ar2, sargan = st.sargan, hansen = st.hansen,
    wald = st.wald, wald_time = st.wald_time, diff_hansen = st.diff_hansen, long_run = lr }
end

M.report_sections = { { name = "gmm", files = report_files, json = report_json } }

local registry = require "spillover.registry"
registry.register {
  name = "gmm",
  fit = function(d, model, options)
    local f = M.gmm(d, model.formula, options)
    f.report_sections = M.report_sections
    return f
  end,
  model_keys = {},
  options = {
    gmm = { type = { "string", "list" }, items = { type = "string" }, required = true },
    iv = { type = { "string", "list" }, items = { type = "string" } },
    transformation = { type = "string", enum = { "fd", "fod" } },
    system = { type = "boolean" }, robust = { type = "boolean" }, collapse = { type = "boolean" },
    time_dummies = { type = "boolean" },
    steps = { type = "integer", min = 1, max = 2 },
    compat = { type = "string", enum = { "pgmm", "xtabond2" } },
  },
  capabilities = { predict = true, predict_matrix = false, refit = false, draw = true, spatial = false },
}

return M
