-- spillover.threshold: Hansen (1999) fixed-effect panel threshold regression.
--
--   sp.threshold(d, "i ~ q1 + q2 + q3 + d1 + qd1", {threshold = "d1", regime = {"c1"}, n = 1,
--                trim = {0.01, 0.01, 0.05}, grid = 400 | "exact", bootstrap = 300, seed = 1,
--                vcov = "iid" | "hc0" | {cluster = "id"} | ..., threads = 1, level = 0.95,
--                compat = "hansen1999"})
--
-- The search (grid, sequential thresholds with refinement, F tests, the
-- bootstrap, LR intervals) runs in C (core.threshold_fit).  The coefficients
-- at the estimated thresholds come from the linear pipeline (sp.ols with the
-- entity absorbed), so every vcov option of sp.ols applies; the fit renames
-- the regime columns to "<z>:regime<r>" and predicts with the regime each row
-- falls in given its (possibly shocked) threshold variable.
--
-- compat = "hansen1999" reproduces Hansen's own program (regimes q < g, each
-- entity's last row deleted after demeaning): the C core then also returns
-- that program's coefficients and its two covariances, which the fit reports.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local fitmod = require "spillover.fit"
local formula_object = require "spillover.formula"
local linear = require "spillover.linear"

local M = {}

local function fail(msg) raise("threshold: " .. msg) end

local function column_numbers(d, name)
  local col = d[name]
  if type(col) ~= "userdata" then return nil end
  return col:totable()
end

--- The internal (formula-safe) name of regime r of regressor z.
local function inner_name(z, r) return string.format("%s__thr_regime%d", z, r) end

--- Regime columns of a frame: z * 1(g_{r-1} < q <= g_r) (g_{r-1} <= q < g_r with
--- spec.strict, Hansen's program), NaN where q or z is.
local function regime_columns(d, spec)
  local q = column_numbers(d, spec.threshold)
  if not q then fail("the data have no numeric column '" .. spec.threshold .. "'") end
  local g = spec.thresholds
  local out = {}
  for _, z in ipairs(spec.regime) do
    local zv = column_numbers(d, z)
    if not zv then fail("the data have no numeric column '" .. z .. "'") end
    for r = 1, #g + 1 do
      local lo, hi = g[r - 1] or -math.huge, g[r] or math.huge
      local v = {}
      for i = 1, #q do
        local qi, zi = q[i], zv[i]
        local inside
        if spec.strict then inside = qi >= lo and qi < hi else inside = qi > lo and qi <= hi end
        if qi ~= qi or zi ~= zi then v[i] = 0 / 0
        elseif inside then v[i] = zi
        else v[i] = 0 end
      end
      out[#out + 1] = { name = inner_name(z, r), public = z .. ":regime" .. r, values = v }
    end
  end
  return out
end
M.regime_columns = regime_columns

local function augmented(d, spec)
  local nd = d:copy()
  for _, c in ipairs(regime_columns(d, spec)) do nd[c.name] = c.values end
  return nd
end

-- ---- options -------------------------------------------------------------------------

local function parse_opts(d, formula, opts)
  if type(formula) ~= "string" then fail("expected a formula string as argument 2") end
  opts = linear.check_options(opts, { "threshold", "regime", "n", "trim", "grid", "bootstrap", "seed", "threads",
    "level", "vcov", "compat", "naive" }, "threshold")
  local o = {}
  local f = formula_object.parse(formula)
  if not f:response() then fail("formula '" .. formula .. "' has no response (y ~ ...)") end
  if #f:fe() > 0 or f:iv() then
    fail("formula '" .. formula .. "': leave out the '|' part; the entity fixed effects come from the panel index " ..
      "(d:panel{entity=, time=})")
  end
  o.formula, o.f = formula, f
  local info = util.panel_of(d)
  if info == nil then
    fail("needs a panel index: call d:panel{entity = ..., time = ...} first")
  end
  o.entity, o.time = info.entity, info.time
  if type(opts.threshold) ~= "string" then fail("option 'threshold' must name the threshold variable (a string)") end
  o.threshold = opts.threshold
  local reg = opts.regime
  if type(reg) == "string" then reg = { reg } end
  if type(reg) ~= "table" or #reg == 0 then
    fail("option 'regime' must name the regime-dependent regressor(s): a string or an array of strings")
  end
  for i, z in ipairs(reg) do
    if type(z) ~= "string" then fail("option 'regime': entry " .. i .. " is not a string") end
  end
  o.regime = reg
  -- A regime regressor also in the formula would be collinear with its regime columns.
  for _, z in ipairs(reg) do
    for _, term in ipairs(f:terms()) do
      if term == z then
        fail("regime regressor '" .. z .. "' is also in the formula; list it only in 'regime' " ..
          "(its coefficient differs by regime)")
      end
    end
  end
  for _, name in ipairs({ o.threshold, table.unpack(reg) }) do
    local okc, col = pcall(function() return d[name] end)
    if not okc or col == nil then fail("the data have no column '" .. name .. "'") end
    if type(col) ~= "userdata" then fail("column '" .. name .. "' must be numeric, not categorical") end
  end
  local n = opts.n or 1
  if math.type(n) ~= "integer" or n < 1 or n > 3 then
    fail("option 'n' (number of thresholds) must be 1, 2 or 3, got " .. tostring(n))
  end
  o.n = n
  local trim = opts.trim or { 0.01, 0.01, 0.05 }
  if type(trim) == "number" then trim = { trim, trim, trim } end
  if type(trim) ~= "table" then fail("option 'trim' must be a number or an array {t1, t2, t3}") end
  local defaults = { 0.01, 0.01, 0.05 }
  o.trim = {}
  for s = 1, 3 do
    local t = trim[s] or (s > #trim and #trim > 0 and trim[#trim]) or defaults[s]
    if type(t) ~= "number" or t < 0 or t >= 0.5 then
      fail("option 'trim': entry " .. s .. " must be a number in [0, 0.5), got " .. tostring(t))
    end
    o.trim[s] = t
  end
  local grid = opts.grid == nil and 400 or opts.grid
  if grid == "exact" then o.grid = 0
  elseif math.type(grid) == "integer" and grid >= 10 then o.grid = grid
  else fail("option 'grid' must be a number of points (>= 10, xthreg: 400) or \"exact\", got " .. tostring(grid)) end
  local boot = opts.bootstrap
  if boot == nil then boot = 300 end
  if boot == false then o.reps = 0
  elseif math.type(boot) == "integer" and boot >= 1 then o.reps = boot
  else fail("option 'bootstrap' must be a number of replications >= 1 (or false for none), got " .. tostring(boot)) end
  o.seed = opts.seed or 1
  if math.type(o.seed) ~= "integer" then fail("option 'seed' must be an integer") end
  o.threads = opts.threads or 1
  if math.type(o.threads) ~= "integer" or o.threads < 1 or o.threads > 64 then
    fail("option 'threads' must be an integer in 1..64")
  end
  o.level = opts.level or 0.95
  if type(o.level) ~= "number" or o.level <= 0 or o.level >= 1 then fail("option 'level' must be in (0, 1)") end
  o.vcov, o.compat = opts.vcov, opts.compat
  if o.compat == "hansen1999" then
    -- Hansen's program reports two covariances; the within fit's presets do not apply.
    if o.vcov ~= nil and o.vcov ~= "iid" and o.vcov ~= "hc0" then
      fail("compat = \"hansen1999\" reports the program's own standard errors: vcov = \"iid\" (its homoskedastic ones) " ..
        "or \"hc0\" (its heteroskedastic ones), got " .. (type(o.vcov) == "table" and "a table" or tostring(o.vcov)))
    end
    o.hansen1999, o.compat = true, nil
  end
  o.naive = opts.naive and true or false
  return o
end

-- ---- the estimator ---------------------------------------------------------------------

local function describe_tests(tests, reps)
  local names = { "single", "double", "triple" }
  local lines = {}
  for j, t in ipairs(tests) do
    if t.pvalue then
      lines[#lines + 1] = string.format(
        "F%d (%s threshold) = %.4f, bootstrap p = %.4f (%d reps); critical values 10%%/5%%/1%%: %.4f / %.4f / %.4f",
        j, names[j], t.F, t.pvalue, reps, t.crit10, t.crit5, t.crit1)
    else
      lines[#lines + 1] = string.format("F%d (%s threshold) = %.4f (no bootstrap)", j, names[j], t.F)
    end
  end
  return lines
end

--- sp.threshold(d, formula, opts) -> fit
function M.threshold(d, formula, opts)
  local o = parse_opts(d, formula, opts)
  local extra = { o.threshold }
  for _, z in ipairs(o.regime) do extra[#extra + 1] = z end
  if o.time then extra[#extra + 1] = o.time end
  local entity_fe = { formula_object.quote(o.entity) }
  local des = core.design(d, o.f:with_fe(entity_fe), { extra = extra })
  -- Under mpirun the bootstrap's replications are split over the ranks
  -- (each from its own stream, summed back exactly); asking the job's size
  -- starts MPI there, and does nothing in an ordinary run.
  if o.reps > 0 then require("spillover.mpi").size() end
  local res = core.threshold_fit(des, {
    entity = o.entity, threshold = o.threshold, regime = o.regime, time = o.time, n = o.n, trim = o.trim,
    grid = o.grid, reps = o.reps, seed = o.seed, threads = o.threads, level = o.level, naive = o.naive,
    hansen1999 = o.hansen1999,
  })

  -- Coefficients at the thresholds: the within regression with regime columns.
  local spec = { threshold = o.threshold, regime = o.regime, thresholds = res.thresholds, strict = o.hansen1999 }
  local nd = augmented(d, spec)
  local terms = {}
  for _, c in ipairs(regime_columns(d, spec)) do terms[#terms + 1] = formula_object.quote(c.name) end
  local inner_formula = o.f:with_terms(terms):with_fe(entity_fe)
  local inner = linear.ols(nd, tostring(inner_formula), { vcov = o.vcov, compat = o.compat })

  -- Public names: "<z>:regime<r>" for the regime columns.
  local rename = {}
  for _, c in ipairs(regime_columns(d, spec)) do rename[c.name] = c.public end
  local names, back = {}, {}
  for i, nm in ipairs(inner.names) do
    names[i] = rename[nm] or nm
    back[names[i]] = nm
  end
  for _, c in pairs(rename) do
    if not back[c] then
      fail("the regime coefficient '" .. c .. "' was dropped as collinear at the estimated thresholds")
    end
  end

  local stats = {}
  for k, v in pairs(inner.stats) do stats[k] = v end
  stats.F = nil
  stats.thresholds = res.thresholds
  stats.ci = res.ci
  stats.lr = res.lr
  stats.lr_crit = res.lr_crit
  stats.level = o.level
  stats.ssr = res.ssr
  stats.ssr_linear = res.ssr_linear
  stats.sigma2 = res.ssr / res.df
  stats.df_sigma2 = res.df
  stats.tests = res.tests
  for _, t in ipairs(res.tests) do t.statistic = t.F end
  stats.F = res.tests
  stats.sequence = res.sequence
  stats.regime_nobs = res.regime_nobs
  stats.n_unique = res.n_unique
  stats.n_grid = res.n_grid
  stats.grid = o.grid == 0 and "exact" or o.grid
  stats.trim = o.trim
  stats.bootstrap = o.reps
  stats.seed = o.seed
  stats.balanced = res.balanced
  stats.n_entities = res.n_entities

  local notes = {}
  for _, nt in ipairs(inner.notes or {}) do
    if not nt:find("__thr_regime", 1, true) then notes[#notes + 1] = nt end
  end
  for j, g in ipairs(res.thresholds) do
    notes[#notes + 1] = string.format("threshold %d (%s): %.6g, %g%% LR interval [%.6g, %.6g]", j, o.threshold, g,
      100 * o.level, res.ci[j][1], res.ci[j][2])
  end
  for _, line in ipairs(describe_tests(res.tests, o.reps)) do notes[#notes + 1] = line end

  local b, V, vcov_label, vcov_type = inner.b, inner.V, inner.vcov_label, inner.vcov_type
  if o.hansen1999 then
    -- The program's regression: the same columns, its deleted rows left out.
    if #res.coef ~= #names then fail("internal: the program's coefficients do not match the design") end
    b = res.coef
    local het = o.vcov == "hc0"
    V = core.matrix(het and res.V_het or res.V_homo)
    vcov_label = het and "Hansen (1999) program, heteroskedasticity-robust (White)" or
      "Hansen (1999) program, homoskedastic"
    vcov_type = het and "hc0" or "iid"
    stats.compat = "hansen1999"
    stats.nobs_used = res.df
    notes[#notes + 1] = string.format("compat hansen1999: regimes %s < g; each entity's last row deleted after " ..
      "demeaning (%d rows in the regression)", o.threshold, res.df)
  end
  local fit = fitmod.new {
    names = names, b = b, V = V, nobs = inner.nobs, df_resid = inner.df_resid, dist = inner.dist,
    stats = stats, estimator = "threshold", label = "Panel threshold (Hansen 1999), entity fixed effects",
    formula = o.formula, vcov_label = vcov_label, vcov_type = vcov_type, fe = inner.fe, notes = notes,
    compat = inner.compat,
  }
  fit.inner = inner
  fit.threshold_spec = spec
  fit.data = d
  fit.resid_values = inner.resid_values
  fit.fitted_values = function() return inner:fitted() end
  fit.fixef_values = function() return inner:fixef() end
  -- Predictions switch regime with the row's own threshold variable: a shock
  -- that moves q across a threshold changes which coefficient applies.
  fit.predict_fn = function(self, frame, popts)
    local aug = augmented(frame, self.threshold_spec)
    local coef
    if popts and popts.coef then
      coef = {}
      for pub, v in pairs(popts.coef) do coef[back[pub] or pub] = v end
    end
    return linear.predict_linear(self.inner, aug, { coef = coef })
  end
  fit.predict_matrix = function(self, frame)
    return linear.predict_matrix(self.inner, augmented(frame, self.threshold_spec))
  end
  fit.refit = function(_, newdata) return M.threshold(newdata, formula, opts) end
  return fit
end

--- The LR(gamma) curves as a plot (spillover.plot.lines), one panel per threshold
--- in one figure: LR against the candidates, with the critical value as a line.
function M.lr_plot(fit, path, popts)
  if type(fit) ~= "table" or not (fit.stats and fit.stats.lr) then
    raise("threshold.lr_plot: expected a threshold fit as argument 1")
  end
  if type(path) ~= "string" then raise("threshold.lr_plot: expected an output path as argument 2") end
  popts = popts or {}
  local plot = require "spillover.plot"
  local st = fit.stats
  -- One x axis: the union of the candidates of every curve (the stages
  -- exclude different neighbourhoods); a curve is NaN (a gap) where it has no value.
  local seen, x = {}, {}
  for _, cv in ipairs(st.lr) do
    for _, g in ipairs(cv.gamma) do
      if not seen[g] then seen[g] = true; x[#x + 1] = g end
    end
  end
  table.sort(x)
  local series = {}
  for j, cv in ipairs(st.lr) do
    local at, y = {}, {}
    for i, g in ipairs(cv.gamma) do at[g] = cv.lr[i] end
    for i, g in ipairs(x) do y[i] = at[g] or 0 / 0 end
    series[j] = { label = #st.lr > 1 and string.format("LR(\u{3b3}%d)", j) or "LR(\u{3b3})", y = y }
  end
  return plot.lines(path, {
    x = x, series = series, hlines = { st.lr_crit },
    title = popts.title,
    xlabel = popts.xlabel or ("Threshold \u{3b3} (" .. fit.threshold_spec.threshold .. ")"),
    ylabel = popts.ylabel or "LR statistic",
    width = popts.width, height = popts.height,
  })
end

-- ---- report section and registration (spillover.registry, spillover.report) --------------

--- The report files of a threshold fit: the thresholds with their LR
--- intervals and bootstrap tests (threshold_<model>.md) and the LR(gamma)
--- plot (lr_<model>.png / .svg, as the report's formats ask).
local function report_files(fit, out)
  local st = fit.stats
  if not (st.thresholds and st.lr) then return end
  local num = out.number
  local md = { "# Thresholds: " .. out.name, "",
    "| threshold | estimate | 95% LR interval | F | bootstrap p | crit 10% | crit 5% | crit 1% |",
    "|---|---:|---|---:|---:|---:|---:|---:|" }
  for i, g in ipairs(st.thresholds) do
    local ci = st.ci and st.ci[i] or {}
    local t = st.tests and st.tests[i] or {}
    md[#md + 1] = string.format("| %d | %s | [%s, %s] | %s | %s | %s | %s | %s |", i, num(g), num(ci[1]), num(ci[2]),
      num(t.F), num(t.pvalue), num(t.crit10), num(t.crit5), num(t.crit1))
  end
  out:write("threshold_" .. out.name .. ".md", table.concat(md, "\n") .. "\n")
  for _, ext in ipairs({ "png", "svg" }) do
    if out.formats[ext] then M.lr_plot(fit, out:path("lr_" .. out.name .. "." .. ext)) end
  end
  out:log("threshold tables and LR plot of %s written", out.name)
end
M.report_sections = { { name = "threshold", files = report_files } }

local registry = require "spillover.registry"
local THRESHOLD_MODEL_KEYS = { "vcov", "compat" }
registry.register {
  name = "threshold",
  fit = function(d, model, options)
    local f = M.threshold(d, model.formula, registry.merged_options(model, options, THRESHOLD_MODEL_KEYS))
    f.report_sections = M.report_sections
    return f
  end,
  model_keys = THRESHOLD_MODEL_KEYS, vcov = linear.KINDS,
  options = {
    threshold = { type = "string", required = true }, regime = { type = { "string", "list" }, items = { type = "string" }, required = true },
    n = { type = "integer", min = 1, max = 3 }, trim = { type = { "number", "list" }, items = { type = "number" } },
    grid = { type = { "integer", "string" }, enum = { "exact" }, min = 10 },
    bootstrap = { type = { "integer", "boolean" }, min = 1 }, seed = { type = "integer" },
    threads = { type = "integer", min = 1, max = 64 }, level = { type = "number", min = 0, max = 1, open_range = true },
    naive = { type = "boolean" },
  },
  capabilities = { predict = true, predict_matrix = true, refit = true, draw = true, spatial = false },
}

return M
