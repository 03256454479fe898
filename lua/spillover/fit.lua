-- spillover.fit: the fit protocol (docs/fit-protocol.md).
--
-- Every estimator, built-in or user-written, returns sp.fit{...}; tables,
-- tests, draws and counterfactuals rely only on what is here.  The contract:
--   names   array of coefficient names as written in the formula
--   b       array of estimates (same order; or a k x 1 / 1 x k matrix)
--   V       the k x k covariance (array of rows or a k x k matrix)
--   nobs    observations used; df_resid for t/F inference (nil: normal/chi2)
--   stats   named statistics (r2, adj_r2, sigma, ssr, F, ...)
--   optional: resid_values, fitted_values, fixef_values (values or functions),
--   predict_fn(fit, frame, opts), predict_matrix(fit, frame), refit(fit, frame),
--   estimator, label, formula, vcov_label, fe, notes, capabilities (explicit
--   entries, e.g. spatial = true), report_sections, private (estimator
--   internals: the protocol never reads them and printing ignores them);
--   other fields are kept as they are, except names of methods (reserved).
local core = require "spillover.core"
local suggest = require "spillover.suggest"
local util = require "spillover.util"
local raise = util.raise
local F = require "spillover.formula"
local dist, matrix = core.dist, core.matrix

local Fit = {}
Fit.__name = "spillover.fit"

-- Internals of the built-in estimators that modules outside the estimators
-- (counterfactual, mechanism, spatial diagnostics) still read as fields; they
-- live in fit.private and are readable here until those modules read
-- fit.private themselves.
local PRIVATE_ALIASES = { design = true, data = true, absorb = true, design_extra = true, weights = true }

local capabilities

-- Fields a fit computes when first read (defer below), by fit.  Weak keys:
-- a collected fit takes its pending computations with it.
local deferred = setmetatable({}, { __mode = "k" })

--- fit[field] = fn(fit), computed when the field is first read and then kept
--- as a plain field.  A large fixed-effects fit defers its residuals (80 MB
--- at 1e7 rows) this way: most uses never read them.
local function defer(fit, field, fn)
  local d = deferred[fit]
  if not d then
    d = {}
    deferred[fit] = d
  end
  d[field] = fn
end

Fit.__index = function(self, k)
  local m = Fit[k]
  if m ~= nil then return m end
  local d = deferred[self]
  if d and d[k] then
    local fn = d[k]
    d[k] = nil
    local v = fn(self)
    rawset(self, k, v)
    return v
  end
  -- computed on each read: plugins may set predict_fn or refit after sp.fit
  if k == "capabilities" then return capabilities(self) end
  if PRIVATE_ALIASES[k] then
    local p = rawget(self, "private")
    return p and p[k]
  end
  return nil
end

local function shape_error(what, k, got)
  raise(string.format("sp.fit: '%s' must be %s (one entry per name in 'names'), got %s", what,
    what == "V" and string.format("a %d x %d matrix", k, k) or string.format("%d numbers", k), got))
end

-- b as an array of k numbers, from an array or a k x 1 / 1 x k matrix.
local function coef_array(v, k)
  if type(v) == "userdata" and v.tovector then
    local r, c = v:shape()
    if r ~= 1 and c ~= 1 and not (r == 0 or c == 0) then shape_error("b", k, string.format("a %d x %d matrix", r, c)) end
    v = v:tovector()
  elseif type(v) ~= "table" then
    shape_error("b", k, v == nil and "nothing" or ("a " .. type(v)))
  end
  if #v ~= k then shape_error("b", k, #v .. " entries") end
  for i = 1, k do
    if type(v[i]) ~= "number" then shape_error("b", k, string.format("a %s at entry %d", type(v[i]), i)) end
  end
  return v
end

-- V as an array of k rows of k numbers, from rows or a k x k matrix (of any
-- k, 1 x 1 included: the matrix's shape decides, never the table's).
local function cov_rows(v, k)
  if type(v) == "userdata" and v.totable then
    local r, c = v:shape()
    if r ~= k or c ~= k then shape_error("V", k, string.format("a %d x %d matrix", r, c)) end
    return util.rows(v)
  end
  if type(v) ~= "table" then shape_error("V", k, v == nil and "nothing" or ("a " .. type(v))) end
  if #v ~= k then shape_error("V", k, #v .. " rows") end
  for i = 1, k do
    local row = v[i]
    if type(row) ~= "table" or #row ~= k then
      shape_error("V", k, string.format("row %d with %s", i, type(row) == "table" and (#row .. " entries") or ("a " .. type(row))))
    end
    for j = 1, k do
      if type(row[j]) ~= "number" then shape_error("V", k, string.format("a %s at [%d, %d]", type(row[j]), i, j)) end
    end
  end
  return v
end

--- The lags k >= 1 of the response the model uses (the formula object's
--- response_lags), nil when none or when the formula is not one spillover
--- reads (a user estimator's own notation).
local function response_lags(formula)
  if formula == nil then return nil end
  local ok, f = pcall(function() return F.is_formula(formula) and formula or F.parse(formula) end)
  if not ok then return nil end
  local lags = f:response_lags()
  return #lags > 0 and lags or nil
end

-- What the fit can do (docs/fit-protocol.md): explicit entries of
-- spec.capabilities win, the rest follows from the fields present.
capabilities = function(self)
  local declared = rawget(self, "declared_capabilities") or {}
  local function pick(name, derived)
    if declared[name] ~= nil then return declared[name] end
    return derived
  end
  local finite = true
  for i = 1, #self.names do
    for j = 1, #self.names do
      local v = self.V[i][j]
      if v ~= v or v == math.huge or v == -math.huge then finite = false end
    end
  end
  local dynamic = declared.dynamic
  if dynamic == nil then dynamic = response_lags(rawget(self, "formula")) end
  return {
    predict = pick("predict", rawget(self, "predict_fn") ~= nil),
    predict_matrix = pick("predict_matrix", rawget(self, "predict_matrix") ~= nil),
    refit = pick("refit", rawget(self, "refit") ~= nil),
    draw = pick("draw", finite),
    dynamic = dynamic or nil,
    spatial = pick("spatial", false),
    -- roll-out experiments (spillover.rollout): dynamic treatment effects
    rollout = pick("rollout", type(rawget(self, "dynamic_effects")) == "function" and
      type(rawget(self, "cohort")) == "string"),
  }
end

local CAPABILITY_NAMES = { predict = true, predict_matrix = true, refit = true, draw = true, dynamic = true,
  spatial = true, rollout = true }

local function check_capabilities(c)
  if c == nil then return nil end
  if type(c) ~= "table" then raise("sp.fit: 'capabilities' must be a table such as {spatial = true}") end
  for k, v in pairs(c) do
    if not CAPABILITY_NAMES[k] then
      local names = {}
      for n in pairs(CAPABILITY_NAMES) do names[#names + 1] = n end
      table.sort(names)
      raise(string.format("sp.fit: unknown capability '%s' (expected one of %s)%s", tostring(k),
        table.concat(names, ", "), suggest.did_you_mean(tostring(k), names)))
    end
    if k == "dynamic" then
      if type(v) ~= "table" then raise("sp.fit: capability 'dynamic' must be an array of lags such as {1}") end
    elseif type(v) ~= "boolean" then
      raise(string.format("sp.fit: capability '%s' must be true or false, got %s", k, tostring(v)))
    end
  end
  return c
end

--- Build a fit object; checks the contract so a user estimator fails early.
local function new(spec)
  if type(spec) ~= "table" then raise("sp.fit: expected a table {names=, b=, V=, nobs=, ...}") end
  local names = spec.names
  if type(names) ~= "table" then raise("sp.fit: 'names' must be an array of coefficient names") end
  for i, n in ipairs(names) do
    if type(n) ~= "string" then
      raise(string.format("sp.fit: 'names' must be strings (entry %d is a %s)", i, type(n)))
    end
  end
  for k in pairs(spec) do
    if type(Fit[k]) == "function" or k == "index" or k == "declared_capabilities" then
      raise(string.format("sp.fit: field '%s' is reserved (fit:%s() is a method of every fit); " ..
        "keep estimator data in 'stats', or in 'private' for internals", k, k))
    end
  end
  local k = #names
  local b = coef_array(spec.b, k)
  local V = cov_rows(spec.V, k)
  local nobs = spec.nobs
  if nobs == nil and type(spec.stats) == "table" then nobs = spec.stats.nobs end
  if math.type(nobs) ~= "integer" and not (type(nobs) == "number" and nobs >= 0 and nobs == math.floor(nobs)) then
    raise("sp.fit: 'nobs' must be the number of observations used (an integer >= 0), got " ..
      (nobs == nil and "nothing" or tostring(nobs)))
  end
  if nobs < 0 then raise("sp.fit: 'nobs' must be >= 0, got " .. tostring(nobs)) end
  if spec.private ~= nil and type(spec.private) ~= "table" then
    raise("sp.fit: 'private' must be a table (the estimator's internals)")
  end
  local self = {}
  for key, v in pairs(spec) do self[key] = v end
  self.capabilities = nil
  self.declared_capabilities = check_capabilities(spec.capabilities)
  self.private = spec.private or {}
  self.b, self.V = b, V
  self.index = {}
  for i, n in ipairs(names) do self.index[n] = i end
  self.stats = self.stats or {}
  self.nobs = math.tointeger(nobs) or nobs
  self.stats.nobs = self.nobs
  if self.df_resid == nil then self.df_resid = self.stats.df_resid end
  if self.stats.df_resid == nil then self.stats.df_resid = self.df_resid end
  return setmetatable(self, Fit)
end

local function keyed(self, f)
  local t = {}
  for i, n in ipairs(self.names) do t[n] = f(i) end
  return t
end

function Fit:coef() return keyed(self, function(i) return self.b[i] end) end
function Fit:se() return keyed(self, function(i) return math.sqrt(self.V[i][i]) end) end

function Fit:vcov()
  local t = {}
  for i, a in ipairs(self.names) do
    t[a] = {}
    for j, c in ipairs(self.names) do t[a][c] = self.V[i][j] end
  end
  return t
end

function Fit:tstat()
  return keyed(self, function(i) return self.b[i] / math.sqrt(self.V[i][i]) end)
end

--- Uses t(df_resid) when the fit has df_resid and dist ~= "normal", else N(0,1).
function Fit:uses_t() return self.df_resid ~= nil and self.dist ~= "normal" end

local function two_sided(self, z)
  if self:uses_t() then return 2 * dist.pt(math.abs(z), self.df_resid, true) end
  return 2 * dist.pnorm(math.abs(z), true)
end

-- fit.inference (optional): p-values and confidence sets of another method
-- than the t/z test on V, e.g. the wild cluster bootstrap of vcov = {wild =}:
-- {pvalue = {name = p}, confint = function(name, level) -> {lo, hi}, level =,
-- label =}.  pvalue() and confint() report it.
function Fit:pvalue()
  local inf = self.inference
  if inf then return keyed(self, function(i) return inf.pvalue[self.names[i]] end) end
  return keyed(self, function(i) return two_sided(self, self.b[i] / math.sqrt(self.V[i][i])) end)
end

function Fit:confint(level)
  local inf = self.inference
  level = level or (inf and inf.level) or 0.95
  if not (level > 0 and level < 1) then raise("confint: level must be in (0, 1)") end
  if inf then return keyed(self, function(i) return inf.confint(self.names[i], level) end) end
  local q = self:uses_t() and dist.qt(1 - (1 - level) / 2, self.df_resid) or dist.qnorm(1 - (1 - level) / 2)
  return keyed(self, function(i)
    local s = math.sqrt(self.V[i][i])
    return { self.b[i] - q * s, self.b[i] + q * s }
  end)
end

local function need(self, field, what)
  if self[field] == nil then
    raise(string.format("%s: this %s fit does not provide %s", what, self.estimator or "user", field))
  end
  return self[field]
end

-- The value of field: as held, or computed once by the function held there.
local function value(self, field, what)
  local v = need(self, field, what)
  if type(v) == "function" then
    v = v(self)
    self[field] = v
  end
  return v
end

function Fit:resid() return value(self, "resid_values", "resid") end
function Fit:fitted() return value(self, "fitted_values", "fitted") end
function Fit:fixef() return value(self, "fixef_values", "fixef") end

function Fit:predict(frame, opts)
  local p = need(self, "predict_fn", "predict")
  return p(self, frame, opts)
end

-- A factor F with F F' = V over the coefficients with positive variance:
-- the Cholesky factor (m:chol) when V is definite there; when it is only
-- semidefinite (collinear coefficients kept by an estimator) the symmetric
-- square root from the eigen decomposition, negative rounding clipped to 0.
local function draw_factor(V, idx)
  if #idx == 0 then return nil end
  local sub = {}
  for a, i in ipairs(idx) do
    sub[a] = {}
    for c, j in ipairs(idx) do sub[a][c] = V[i][j] end
  end
  local S = matrix(sub)
  local ok, R = pcall(S.chol, S)
  if ok then return R:t() end
  local vals, vecs = S:eigen()
  local top = math.max(math.abs(vals:get(1, 1)), math.abs(vals:get(#idx, 1)))
  local root = {}
  for a = 1, #idx do
    local l = vals:get(a, 1)
    if l < -1e-12 * top then raise("draw: the covariance matrix is not positive semi-definite") end
    root[a] = math.sqrt(math.max(l, 0))
  end
  return vecs * matrix.diag(matrix(root))
end

--- One draw of the coefficients from N(b, V): a table keyed by name.  A
--- coefficient with no sampling variance (a zero diagonal) takes no noise.
function Fit:draw(rng)
  local k = #self.names
  local p = self.private
  if p.draw_factor == nil then
    local idx = {}
    for i = 1, k do
      local v = self.V[i][i]
      -- NaN: a perfect fit (docs/estimators/ols.md), whose residual variance
      -- is zero; its coefficients take no noise, as the definite ones of V would
      if v < 0 then raise("draw: the covariance matrix is not positive semi-definite") end
      if v > 0 then idx[#idx + 1] = i end
    end
    p.draw_factor = { idx = idx, F = draw_factor(self.V, idx) }
  end
  local idx, F = p.draw_factor.idx, p.draw_factor.F
  -- z is drawn for every coefficient, so the stream of later draws does not
  -- depend on which coefficients have variance.
  local z = {}
  for i = 1, k do z[i] = rng:normal() end
  local out = {}
  for i, n in ipairs(self.names) do out[n] = self.b[i] end
  for a, i in ipairs(idx) do
    local s = 0
    for c = 1, #idx do s = s + F:get(a, c) * z[idx[c]] end
    out[self.names[i]] = out[self.names[i]] + s
  end
  return out
end

-- ---- Wald tests of linear restrictions ------------------------------------

-- Split at commas outside parentheses (names like l(x, 1) contain commas).
local function split_top(s)
  local parts, depth, start = {}, 0, 1
  for i = 1, #s do
    local c = s:sub(i, i)
    if c == "(" then depth = depth + 1
    elseif c == ")" then depth = depth - 1
    elseif c == "," and depth == 0 then
      parts[#parts + 1] = s:sub(start, i - 1)
      start = i + 1
    end
  end
  parts[#parts + 1] = s:sub(start)
  return parts
end

-- Parse one side "2*x1 - x2 + 3" into (coefficients by index, constant).
local function parse_linear(self, s, row, sign, text)
  local sorted = {}
  for i, n in ipairs(self.names) do sorted[#sorted + 1] = { n, i } end
  table.sort(sorted, function(a, b) return #a[1] > #b[1] end)
  local pos, const, expect_term = 1, 0, true
  local termsign = 1
  local function skip() pos = s:find("%S", pos) or #s + 1 end
  local function name_at()
    for _, e in ipairs(sorted) do
      if s:sub(pos, pos + #e[1] - 1) == e[1] then
        local after = s:sub(pos + #e[1], pos + #e[1])
        if not after:match("[%w_%.]") then pos = pos + #e[1]; return e[2] end
      end
    end
  end
  local function number_at()
    local num = s:match("^%d*%.?%d+[eE][-+]?%d+", pos) or s:match("^%d*%.?%d+", pos)
    if num then pos = pos + #num; return tonumber(num) end
  end
  skip()
  while pos <= #s do
    local c = s:sub(pos, pos)
    if c == "+" or c == "-" then
      if c == "-" then termsign = -termsign end
      pos = pos + 1
    else
      local mult, idx = 1, name_at()
      if idx == nil then
        local num = number_at()
        if num == nil then
          raise(string.format("wald: cannot read '%s' in \"%s\": expected a coefficient name (one of: %s) or a number",
            s:sub(pos), text, table.concat(self.names, ", ")))
        end
        mult = num
        skip()
        if s:sub(pos, pos) == "*" then
          pos = pos + 1
          skip()
          idx = name_at()
          if idx == nil then raise(string.format("wald: expected a coefficient name after '*' in \"%s\"", text)) end
        end
      else
        skip()
        if s:sub(pos, pos) == "*" then
          pos = pos + 1
          skip()
          mult = number_at()
          if mult == nil then raise(string.format("wald: expected a number after '*' in \"%s\"", text)) end
        end
      end
      if idx then row[idx] = (row[idx] or 0) + sign * termsign * mult
      else const = const + sign * termsign * mult end
      termsign = 1
    end
    skip()
  end
  return const
end

-- The result of fit:wald prints the way Stata's `test` does: the
-- restrictions, then F(df1, df2) or chi2(df1) and its p-value.
local Wald = { __name = "spillover.wald" }
Wald.__index = Wald

function Wald.__tostring(w)
  local function stat(v) return string.format(math.abs(v) < 1e7 and "%10.2f" or "%10.4g", v) end
  local out = {}
  for i, r in ipairs(w.restrictions or {}) do out[i] = string.format(" (%d)  %s", i, r) end
  out[#out + 1] = ""
  if w.kind == "F" then
    out[#out + 1] = string.format("%20s = %s", string.format("F(%3d, %5s)", w.df1,
      tostring(math.tointeger(w.df2) or w.df2)), stat(w.statistic))
    out[#out + 1] = string.format("%20s = %10.4f", "Prob > F", w.pvalue)
  else
    out[#out + 1] = string.format("%20s = %s", string.format("chi2(%3d)", w.df1), stat(w.statistic))
    out[#out + 1] = string.format("%20s = %10.4f", "Prob > chi2", w.pvalue)
  end
  return table.concat(out, "\n")
end

--- Wald test of linear restrictions: "x1 = x2", "x1 = 0, x2 = 0",
--- "2*x1 + x2 = 1", or an array of names (all zero).  Returns a table
--- {statistic, df1, df2, pvalue, chi2, chi2_pvalue, kind, restrictions}: F
--- with (q, df_resid) when the fit uses t, chi2(q) otherwise; it prints as
--- Stata's `test` does.
function Fit:wald(spec)
  local rows, rhs, texts = {}, {}, {}
  if type(spec) == "table" then
    for _, n in ipairs(spec) do
      local i = self.index[n]
      if i == nil then
        raise("wald: unknown coefficient '" .. tostring(n) .. "'" .. suggest.did_you_mean(tostring(n), self.names) ..
          " (coefficients: " .. table.concat(self.names, ", ") .. ")")
      end
      rows[#rows + 1] = { [i] = 1 }
      rhs[#rhs + 1] = 0
      texts[#texts + 1] = n .. " = 0"
    end
  elseif type(spec) == "string" then
    for _, part in ipairs(split_top(spec)) do
      local lhs, r = part:match("^(.-)=(.*)$")
      if lhs == nil then lhs, r = part, "0" end
      local row = {}
      local c1 = parse_linear(self, lhs, row, 1, spec)
      local c2 = parse_linear(self, r, row, -1, spec)
      if next(row) == nil then raise("wald: restriction '" .. part .. "' involves no coefficient") end
      rows[#rows + 1] = row
      rhs[#rhs + 1] = -(c1 + c2)
      local text = part:match("^%s*(.-)%s*$")
      texts[#texts + 1] = lhs == part and (text .. " = 0") or text
    end
  else
    raise("wald: expected a string like \"x1 = x2\" or an array of names")
  end
  local q = #rows
  -- d = R b - r, M = R V R'
  local d, M = {}, {}
  for a = 1, q do
    local s = -rhs[a]
    for i, v in pairs(rows[a]) do s = s + v * self.b[i] end
    d[a] = s
    M[a] = {}
    for c = 1, q do
      local m = 0
      for i, vi in pairs(rows[a]) do
        for j, vj in pairs(rows[c]) do m = m + vi * self.V[i][j] * vj end
      end
      M[a][c] = m
    end
  end
  -- Solve M x = d (LU with the singularity test of sp.matrix:solve).
  local ok, xm = pcall(function() return matrix(M):solve(matrix(d)) end)
  if not ok then
    raise("wald: the restrictions are linearly dependent or involve coefficients without variance")
  end
  local x = xm:totable()
  local chi2 = 0
  for a = 1, q do chi2 = chi2 + d[a] * x[a] end
  local out = setmetatable({ chi2 = chi2, df1 = q, chi2_pvalue = dist.pchisq(chi2, q, true),
    restrictions = texts }, Wald)
  if self:uses_t() then
    out.statistic, out.df2 = chi2 / q, self.df_resid
    out.pvalue = dist.pf(out.statistic, q, self.df_resid, true)
    out.kind = "F"
  else
    out.statistic, out.pvalue, out.kind = chi2, out.chi2_pvalue, "chi2"
  end
  return out
end

-- ---- printing ---------------------------------------------------------------

local function stars(p)
  if p ~= p then return "" end
  return p < 0.001 and "***" or p < 0.01 and "**" or p < 0.05 and "*" or p < 0.1 and "." or ""
end

local function fmtp(p)
  if p ~= p then return "NA" end
  if p < 2.2e-16 then return "< 2e-16" end
  if p < 1e-4 then return string.format("%.2e", p) end
  return string.format("%.4f", p)
end

local function fmtnum(x)
  if x ~= x then return "NA" end
  local a = math.abs(x)
  if a ~= 0 and (a >= 1e6 or a < 1e-4) then return string.format("%.4e", x) end
  return string.format("%.6f", x)
end

-- A statistic too large for the column (|t| of 1e6 and more) in
-- scientific notation, as R prints it, rather than overflowing into the next.
local function fmtt(t)
  if t ~= t then return "NA" end
  if math.abs(t) >= 1e6 and t ~= math.huge and t ~= -math.huge then return string.format("%.3e", t) end
  return string.format("%.3f", t)
end

--- Width of a UTF-8 string in terminal cells (CJK counted as 2).
local function width(s)
  local w = 0
  for _, c in utf8.codes(s) do w = w + ((c >= 0x1100 and (c <= 0x115F or (c >= 0x2E80 and c <= 0xA4CF) or
    (c >= 0xAC00 and c <= 0xD7A3) or (c >= 0xF900 and c <= 0xFAFF) or (c >= 0xFF00 and c <= 0xFF60))) and 2 or 1) end
  return w
end

local function pad(s, n, right)
  local fill = string.rep(" ", math.max(0, n - width(s)))
  return right and (fill .. s) or (s .. fill)
end

function Fit:summary()
  local out = {}
  local function add(s) out[#out + 1] = s end
  add(string.format("%s: %s", self.label or self.estimator or "fit", self.formula or ""))
  local line = string.format("Observations: %s", tostring(self.nobs))
  if self.fe and #self.fe > 0 then
    local fes = {}
    for _, f in ipairs(self.fe) do fes[#fes + 1] = f.nlevels and string.format("%s (%d)", f.name, f.nlevels) or f.name end
    line = line .. "   Fixed effects: " .. table.concat(fes, ", ")
  end
  add(line)
  if self.vcov_label then add("Standard errors: " .. self.vcov_label) end
  add("")
  local se, p = self:se(), self:pvalue()
  local tname = self:uses_t() and "t value" or "z value"
  local pname = self:uses_t() and "Pr(>|t|)" or "Pr(>|z|)"
  local w = 8
  for _, n in ipairs(self.names) do w = math.max(w, width(n)) end
  add(pad("", w) .. "  " .. pad("Estimate", 14, true) .. pad("Std. Error", 14, true) .. pad(tname, 10, true) ..
    pad(pname, 11, true))
  for i, n in ipairs(self.names) do
    local t = self.b[i] / se[n]
    add(pad(n, w) .. "  " .. pad(fmtnum(self.b[i]), 14, true) .. pad(fmtnum(se[n]), 14, true) ..
      pad(fmtt(t), 10, true) .. pad(fmtp(p[n]), 11, true) .. " " .. stars(p[n]))
  end
  add("---")
  add("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
  local s = self.stats
  local parts = {}
  local function int(x) return math.tointeger(x) or x end
  if s.sigma then parts[#parts + 1] = string.format("Residual std. error: %.6g on %s degrees of freedom", s.sigma,
      tostring(int(s.df_resid or self.df_resid))) end
  if #parts > 0 then add(table.concat(parts, "   ")) end
  parts = {}
  if s.r2 then parts[#parts + 1] = string.format("R-squared: %.6f", s.r2) end
  if s.adj_r2 then parts[#parts + 1] = string.format("Adj. R-squared: %.6f", s.adj_r2) end
  if s.r2_within then parts[#parts + 1] = string.format("Within R-squared: %.6f", s.r2_within) end
  if #parts > 0 then add(table.concat(parts, "   ")) end
  if s.F and type(s.F) == "table" and s.F.statistic then
    local F = s.F
    if F.df2 then
      add(string.format("%s-statistic: %.6g on %s and %s DF, p-value: %s", F.kind or "F", F.statistic,
        tostring(int(F.df1)), tostring(int(F.df2)), fmtp(F.pvalue)))
    else
      add(string.format("Wald chi2: %.6g on %s DF, p-value: %s", F.statistic, tostring(int(F.df1)), fmtp(F.pvalue)))
    end
  end
  if self.notes and #self.notes > 0 then
    for _, n in ipairs(self.notes) do add("Note: " .. n) end
  end
  return table.concat(out, "\n")
end

Fit.__tostring = Fit.summary

--- A frame with one row per coefficient (needs sp.frame).
function Fit:tidy(level)
  local sp = require "spillover"
  local ci, se, p = self:confint(level), self:se(), self:pvalue()
  local cols = { term = {}, estimate = {}, std_error = {}, statistic = {}, p_value = {}, conf_low = {}, conf_high = {} }
  for i, n in ipairs(self.names) do
    cols.term[i] = n
    cols.estimate[i] = self.b[i]
    cols.std_error[i] = se[n]
    cols.statistic[i] = self.b[i] / se[n]
    cols.p_value[i] = p[n]
    cols.conf_low[i], cols.conf_high[i] = ci[n][1], ci[n][2]
  end
  return sp.frame(cols, { order = { "term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high" } })
end

--- fit:margins(x, opts): marginal effects of x over its moderators
--- (spillover.margins, loaded on first use: it builds on this module).
function Fit:margins(x, opts) return require("spillover.margins").margins(self, x, opts) end

--- fit:wildboot(opts): wild cluster bootstrap test and confidence set of one
--- coefficient (spillover.wildboot, loaded on first use).
function Fit:wildboot(opts) return require("spillover.wildboot").wildboot(self, opts) end

--- Is v a fit object?
local function is_fit(v) return getmetatable(v) == Fit end

return { new = new, class = Fit, is_fit = is_fit, width = width, pad = pad, defer = defer }
