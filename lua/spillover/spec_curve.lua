-- spillover.spec_curve: specification curves (Simonsohn, Simmons & Nelson
-- 2020, "Specification curve analysis", Nature Human Behaviour 4).  The
-- analyst lists the defensible choices of each kind (outcomes, regressors of
-- interest, control sets, fixed effects, samples, estimators, weights,
-- covariance); every combination is one cell, and every cell is one fit,
-- made through the estimator registry exactly as a scenario's model is.
--
-- The formula of a cell is built as a tree (formula.build), never pasted
-- together as text, so a column name that needs backquotes or a term such as
-- log(x) is placed as it would be in a hand-written formula.
--
-- A cell whose estimation fails is kept with its error: the summary counts
-- it and printing names it, so a curve never quietly covers fewer
-- specifications than it claims.
local util = require "spillover.util"
local raise = util.raise
local F = require "spillover.formula"
local registry = require "spillover.registry"
local parts = require "spillover.parts"

local M = {}

-- The kinds of choice, in the order cells vary (the last fastest) and rows
-- appear in the figure.  list: the choices are a list of strings; else a
-- map name -> value (or a list, named by position).
local DIMS = {
  { key = "outcomes", label = "outcome", list = true },
  { key = "treatments", label = "regressor", list = true },
  { key = "controls", label = "controls" },
  { key = "fe", label = "fixed effects" },
  { key = "samples", label = "sample" },
  { key = "estimators", label = "estimator", list = true },
  { key = "weights", label = "weights" },
  { key = "vcov", label = "vcov" },
}
local SPEC_KEYS = {}
for _, dim in ipairs(DIMS) do SPEC_KEYS[#SPEC_KEYS + 1] = dim.key end
local OPTS = { "level", "options", "seed" }

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then return nil end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

local function show(v)
  if type(v) == "table" then
    local shown = {}
    for _, k in ipairs(sorted_keys(v) or {}) do shown[#shown + 1] = k .. "=" .. tostring(v[k]) end
    for _, x in ipairs(v) do shown[#shown + 1] = tostring(x) end
    return table.concat(shown, ",")
  end
  return tostring(v)
end

--- The choices of one kind as {{name =, value =}, ...} in a fixed order:
--- a list keeps its order (named by its text, or "1", "2", ... for tables),
--- a map is sorted by name.  Absent: one choice, value nil.
local function choices_of(spec, dim)
  local v = spec[dim.key]
  if v == nil then return { { name = "", value = nil } } end
  if type(v) ~= "table" then raise(string.format("spec_curve: %s must be a list or a table of named choices, got a %s", dim.key, type(v))) end
  local out = {}
  if #v > 0 then
    for i, x in ipairs(v) do
      if dim.list and type(x) ~= "string" then
        raise(string.format("spec_curve: %s[%d] must be a string, got a %s", dim.key, i, type(x)))
      end
      out[i] = { name = type(x) == "table" and (#x == 0 and next(x) == nil and "none" or show(x)) or tostring(x), value = x }
    end
  else
    if dim.list then raise("spec_curve: " .. dim.key .. " must be a list of strings such as {\"y\", \"log(y)\"}") end
    local keys = sorted_keys(v)
    if not keys or #keys == 0 then
      raise("spec_curve: " .. dim.key .. " must be a non-empty list, or a table of choices named by strings")
    end
    for i, k in ipairs(keys) do out[i] = { name = k, value = v[k] } end
  end
  return out
end

--- The name fits give the term written as text (what formula.build makes of it).
local function term_name(text)
  local f = F.build { terms = { text } }
  return F.format_term(f.rhs[1])
end

local function list_of(v, what)
  if v == nil then return {} end
  if type(v) == "string" then return { v } end
  if type(v) ~= "table" then raise(string.format("spec_curve: %s must be a list of strings, got a %s", what, type(v))) end
  for i, x in ipairs(v) do
    if type(x) ~= "string" then raise(string.format("spec_curve: %s[%d] must be a string, got a %s", what, i, type(x))) end
  end
  return v
end

-- Check every choice before the first fit: a typo in the last control set
-- should not cost the time of every cell before it.
local function validate(d, dims)
  for _, dim in ipairs(dims) do
    for _, c in ipairs(dim.choices) do
      local v = c.value
      local what = string.format("%s '%s'", dim.key, c.name)
      if v == nil then goto next_choice end -- a kind of choice not given
      if dim.key == "outcomes" then
        F.build { response = v, terms = {} }
      elseif dim.key == "treatments" then
        term_name(v)
      elseif dim.key == "controls" then
        F.build { terms = list_of(v, what) }
      elseif dim.key == "fe" then
        F.build { fe = list_of(v, what) }
      elseif dim.key == "samples" then
        if v ~= true and type(v) ~= "string" and type(v) ~= "function" then
          raise(string.format("spec_curve: %s must be true (all rows), a filter expression or a function(row), got a %s",
            what, type(v)))
        end
      elseif dim.key == "estimators" then
        local e = registry.get(v)
        if not e then
          raise(string.format("spec_curve: unknown estimator '%s' (registered: %s)", v, table.concat(registry.names(), ", ")))
        end
        c.entry = e
      elseif dim.key == "weights" then
        if type(v) ~= "userdata" or not v.align then
          raise(string.format("spec_curve: %s must be a weights object (sp.weights...)", what))
        end
      end
      ::next_choice::
    end
  end
  if d == nil or type(d) ~= "userdata" or not d.nrow then raise("spec_curve: argument 1 must be a frame") end
end

-- Put every rank's block of cells together on every rank: the numbers by
-- reduction, an error's text only where it happened (elsewhere the cell
-- says which process failed it).
local NUMBERS = { "estimate", "std_error", "lo", "hi", "pvalue", "nobs" }
local function gather_cells(cells, first, last, mpi)
  for _, key in ipairs(NUMBERS) do
    local mine = {}
    for i = first, last do mine[#mine + 1] = cells[i][key] or 0 / 0 end
    local all = mpi.collect(mine, #cells)
    for i, cell in ipairs(cells) do
      if i < first or i > last then cell[key] = all[i] == all[i] and all[i] or nil end
    end
  end
  local who = mpi.collect((function()
    local t = {}
    for _ = first, last do t[#t + 1] = mpi.rank() end
    return t
  end)(), #cells)
  for i, cell in ipairs(cells) do
    if (i < first or i > last) and cell.estimate == nil then
      cell.error = "failed on MPI process " .. math.tointeger(who[i])
    end
  end
  for _, cell in ipairs(cells) do
    if cell.nobs then cell.nobs = math.tointeger(cell.nobs) or cell.nobs end
  end
end

local Curve = {}
Curve.__index = Curve

--- The estimators of a curve that names none.
M.DEFAULT_ESTIMATORS = { "ols" }

--- sp.spec_curve(d, choices [, {level = 0.95, options = {estimator = {...}}, seed =}])
--- choices: {outcomes =, treatments =, controls =, fe =, samples =,
--- estimators = (default {"ols"}), weights =, vcov =}; outcomes and
--- treatments are required.  Returns a curve: cells, summary, :plot(path),
--- :frame(), :write_csv(path).  split (scenarios only): a split run's part
--- or assembly (spillover.parts); a part returns nil.
function M.spec_curve(d, spec, opts, split)
  if type(spec) ~= "table" then raise("spec_curve: argument 2 must be a table of choices {outcomes =, treatments =, ...}") end
  util.check_options(spec, SPEC_KEYS, "spec_curve")
  opts = util.check_options(opts, OPTS, "spec_curve")
  local level = opts.level or 0.95
  if type(level) ~= "number" or not (level > 0 and level < 1) then
    raise("spec_curve: level must be a number between 0 and 1, got " .. tostring(level))
  end
  if spec.outcomes == nil or spec.treatments == nil then raise("spec_curve: outcomes and treatments are required") end
  local given = setmetatable({ estimators = spec.estimators or M.DEFAULT_ESTIMATORS }, { __index = spec })
  local dims = {}
  for i, dim in ipairs(DIMS) do dims[i] = { key = dim.key, label = dim.label, choices = choices_of(given, dim) } end
  validate(d, dims)
  local by = {}
  for _, dim in ipairs(dims) do by[dim.key] = dim end
  for _, c in ipairs(by.estimators.choices) do
    if by.weights.choices[1].value ~= nil and not (c.entry.capabilities and c.entry.capabilities.spatial) then
      raise(string.format("spec_curve: weights are given but estimator '%s' is not spatial; list weights only with spatial estimators", c.value))
    end
    if c.entry.capabilities and c.entry.capabilities.spatial and by.weights.choices[1].value == nil then
      raise(string.format("spec_curve: estimator '%s' needs weights: give weights = {name = W, ...}", c.value))
    end
  end

  local samples = {}
  local function sample_of(c)
    if c.value == nil or c.value == true then return d end
    if not samples[c.name] then
      local ok, sub = pcall(d.filter, d, c.value)
      if not ok then raise(string.format("spec_curve: sample '%s': %s", c.name, util.message(sub))) end
      if sub:nrow() == 0 then raise(string.format("spec_curve: sample '%s' selects no rows", c.name)) end
      samples[c.name] = sub
    end
    return samples[c.name]
  end

  -- Cells: the mixed-radix count over the dimensions, the last fastest.
  local cells, pick = {}, {}
  for i = 1, #dims do pick[i] = 1 end
  while true do
    local cell = { choice = {} }
    for i, dim in ipairs(dims) do cell.choice[dim.key] = dim.choices[pick[i]] end
    cells[#cells + 1] = cell
    local i = #dims
    while i >= 1 do
      pick[i] = pick[i] + 1
      if pick[i] <= #dims[i].choices then break end
      pick[i] = 1
      i = i - 1
    end
    if i == 0 then break end
  end

  local estimator_opts = opts.options or {}
  -- Under mpirun each rank estimates a block of the cells (sp.mpi).
  local mpi = require "spillover.mpi"
  local formulas = {}
  for i, cell in ipairs(cells) do
    local ch = cell.choice
    local terms = { ch.treatments.value }
    for _, t in ipairs(list_of(ch.controls.value, "controls")) do terms[#terms + 1] = t end
    formulas[i] = F.build { response = ch.outcomes.value, terms = terms, fe = list_of(ch.fe.value, "fe") }
    cell.formula = tostring(formulas[i])
  end
  -- The samples first: a filter that cannot run is the caller's error, not
  -- a failure of every cell that uses it.
  for _, c in ipairs(by.samples.choices) do sample_of(c) end
  -- One cell's fit: its estimate, or its error (a record of plain data, so
  -- that another process can compute it: spillover.parts).
  local function fit_cell(i)
    local cell, formula = cells[i], formulas[i]
    local ch = cell.choice
    local entry = ch.estimators.entry
    local model = { formula = formula, vcov = ch.vcov.value, weights_object = ch.weights.value,
      estimator = ch.estimators.value, seed = opts.seed }
    local ok, fit = pcall(function()
      return entry.fit(sample_of(ch.samples), model, estimator_opts[ch.estimators.value] or {})
    end)
    local name = term_name(ch.treatments.value)
    if not (ok and type(fit) == "table" and fit.coef) then
      return { error = ok and "the estimator did not return a fit" or util.message(fit) }
    end
    local okc, est, se, ci, p = pcall(function()
      return fit:coef()[name], fit:se()[name], fit:confint(level)[name], fit:pvalue()[name]
    end)
    if not (okc and type(est) == "number" and est == est) then
      return { error = okc and ("the fit has no estimate of '" .. name .. "'") or util.message(est) }
    end
    return { estimate = est, std_error = se, lo = ci[1], hi = ci[2], pvalue = p,
      nobs = fit.stats and fit.stats.nobs or fit.nobs }
  end
  local function take(i, rec)
    for _, key in ipairs(NUMBERS) do cells[i][key] = rec[key] end
    cells[i].error = rec.error
  end
  if split or mpi.size() == 1 then
    -- a part of a split run stops here: its cells go to its part file
    local recs = parts.map(split, "spec_curve", #cells, fit_cell)
    if not recs then return nil end
    for i, rec in ipairs(recs) do take(i, rec) end
  else
    -- Every process fits cell 1 (one extra fit off rank 0): the same data
    -- and choices on every process give the same estimate.
    local first, last = mpi.range(#cells)
    mpi.same(#cells, "spec_curve: the number of specifications")
    take(1, fit_cell(1))
    mpi.same(cells[1].estimate or 0, "spec_curve: the first specification's estimate")
    for i = math.max(first, 2), last do take(i, fit_cell(i)) end
    gather_cells(cells, first, last, mpi)
  end

  local ok_cells, pos, sig_pos, sig_neg = {}, 0, 0, 0
  local alpha = 1 - level
  for _, c in ipairs(cells) do
    if c.estimate then
      ok_cells[#ok_cells + 1] = c
      c.significant = c.pvalue ~= nil and c.pvalue == c.pvalue and c.pvalue < alpha
      if c.estimate > 0 then pos = pos + 1 end
      if c.significant then
        if c.estimate > 0 then sig_pos = sig_pos + 1 else sig_neg = sig_neg + 1 end
      end
    end
  end
  if #ok_cells == 0 then
    raise("spec_curve: every one of the " .. #cells .. " specifications failed; the first: " .. cells[1].error)
  end
  local sorted = {}
  for i, c in ipairs(ok_cells) do sorted[i] = c.estimate end
  table.sort(sorted)
  local n = #ok_cells
  local summary = {
    cells = #cells, estimated = n, failed = #cells - n, level = level,
    median = util.quantile(sorted, 0.5), min = sorted[1], max = sorted[n],
    share_positive = pos / n, share_significant_positive = sig_pos / n, share_significant_negative = sig_neg / n,
  }
  return setmetatable({ cells = cells, dims = dims, summary = summary }, Curve)
end

--- The cells that were estimated, sorted by estimate (ties keep cell order).
function Curve:ranked()
  local out = {}
  for i, c in ipairs(self.cells) do if c.estimate then out[#out + 1] = { c = c, i = i } end end
  table.sort(out, function(a, b)
    if a.c.estimate ~= b.c.estimate then return a.c.estimate < b.c.estimate end
    return a.i < b.i
  end)
  for i, x in ipairs(out) do out[i] = x.c end
  return out
end

-- The kinds of choice that vary (more than one choice): the others say
-- nothing in a table column or a figure row.
local function varying(dims)
  local out = {}
  for _, dim in ipairs(dims) do if #dim.choices > 1 then out[#out + 1] = dim end end
  return out
end

--- One row per cell: the choice of each kind, the formula, estimate,
--- std_error, lo, hi, pvalue, nobs and error (empty when estimated).
function Curve:frame()
  local cols = { "cell" }
  for _, dim in ipairs(self.dims) do cols[#cols + 1] = dim.key end
  for _, k in ipairs { "formula", "estimate", "std_error", "lo", "hi", "pvalue", "nobs", "error" } do cols[#cols + 1] = k end
  local data = {}
  for _, k in ipairs(cols) do data[k] = {} end
  local nan = 0 / 0
  for i, c in ipairs(self.cells) do
    data.cell[i] = i
    for _, dim in ipairs(self.dims) do data[dim.key][i] = c.choice[dim.key].name end
    data.formula[i] = c.formula
    for _, k in ipairs { "estimate", "std_error", "lo", "hi", "pvalue", "nobs" } do data[k][i] = c[k] or nan end
    data.error[i] = c.error or ""
  end
  return require("spillover.core").frame(data, { order = cols })
end

function Curve:write_csv(path) return self:frame():write_csv(path) end

--- The specification-curve figure (PNG or SVG by the extension, or both
--- from a list): estimates sorted with their intervals, significant ones in
--- colour, over one row per choice of each kind that varies.
function Curve:plot(path, spec)
  spec = spec or {}
  local ranked = self:ranked()
  local est, lo, hi, sig = {}, {}, {}, {}
  for i, c in ipairs(ranked) do est[i], lo[i], hi[i], sig[i] = c.estimate, c.lo, c.hi, c.significant end
  local rows = {}
  for _, dim in ipairs(varying(self.dims)) do
    for _, ch in ipairs(dim.choices) do
      local on = {}
      for i, c in ipairs(ranked) do on[i] = c.choice[dim.key] == ch end
      rows[#rows + 1] = { label = dim.label .. ": " .. ch.name, on = on }
    end
  end
  if #rows == 0 then raise("spec_curve: plot: no choice varies (one specification), so there is no curve to draw") end
  local s = setmetatable({ estimate = est, lo = lo, hi = hi, significant = sig, rows = rows }, { __index = spec })
  if spec.ylabel == nil then s.ylabel = "estimate" end
  if spec.xlabel == nil then s.xlabel = "specification (sorted by estimate)" end
  return require("spillover.plot").spec_curve(path, s)
end

function Curve:__tostring()
  local s = self.summary
  local lines = {
    string.format("Specification curve: %d specifications, %d estimated%s", s.cells, s.estimated,
      s.failed > 0 and string.format(", %d failed", s.failed) or ""),
    string.format("  median estimate %s (range %s to %s)", util.number(s.median), util.number(s.min), util.number(s.max)),
    string.format("  positive: %.1f%%; significant at %g%%: %.1f%% positive, %.1f%% negative",
      100 * s.share_positive, 100 * (1 - s.level), 100 * s.share_significant_positive, 100 * s.share_significant_negative),
  }
  local shown = 0
  for i, c in ipairs(self.cells) do
    if c.error and shown < 5 then
      shown = shown + 1
      lines[#lines + 1] = string.format("  cell %d (%s) failed: %s", i, c.formula, c.error)
    end
  end
  if s.failed > shown then lines[#lines + 1] = string.format("  ... and %d more failed", s.failed - shown) end
  return table.concat(lines, "\n")
end

-- ---- in scenarios ---------------------------------------------------------------------

--- A scenario's spec_curve: section run on its data.  weights_of(name)
--- builds a named entry of the scenario's weights:, so `weights:` lists
--- names there.  split: as for M.spec_curve.
function M.from_scenario(section, d, weights_of, seed, split)
  local choices = {}
  for k, v in pairs(section) do if k ~= "level" then choices[k] = v end end
  if section.weights then
    choices.weights = {}
    for _, name in ipairs(section.weights) do choices.weights[name] = weights_of(name) end
  end
  return M.spec_curve(d, choices, { level = section.level, seed = seed }, split)
end

local RECORD = { "estimate", "std_error", "lo", "hi", "pvalue", "nobs", "error", "formula" }

--- What results.json keeps: the summary and every cell's choices and estimate.
function Curve:record()
  local cells = {}
  for i, c in ipairs(self.cells) do
    local r = { cell = i }
    for _, dim in ipairs(varying(self.dims)) do r[dim.key] = c.choice[dim.key].name end
    for _, k in ipairs(RECORD) do r[k] = c[k] end
    cells[i] = r
  end
  return { summary = self.summary, cells = cells }
end

--- The report's files: spec_curve.csv (one row per cell), spec_curve.md
--- (the summary) and the figure in each plot format.
function Curve:files(w)
  local header = { "cell" }
  for _, dim in ipairs(varying(self.dims)) do header[#header + 1] = dim.key end
  for _, k in ipairs(RECORD) do header[#header + 1] = k end
  w.write("spec_curve.csv", w.csv(self:record().cells, header))
  w.write("spec_curve.md", "# Specification curve\n\n```text\n" .. tostring(self) .. "\n```\n")
  for _, ext in ipairs(w.formats) do self:plot(w.path("spec_curve." .. ext)) end
end

return M
