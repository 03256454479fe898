-- Reference handlers for spatial-dependence tests: global Moran (moran.test),
-- local Moran (localmoran) and the OLS diagnostics (lm.morantest, lm.LMtests).
-- The weights come from the case's edge list as the spec's edges2listw():
-- ids in data order, row-standardised for style "W".
local sp = require "spillover"
local spatial = require "spillover.spatial"

local H = {}

local edge_dirs = { "tests/reference/data/", "scenarios/data/" }

local function weights_of(case, d, ids_col)
  local file = case.options.weights
  local path
  for _, dir in ipairs(edge_dirs) do
    local f = io.open(dir .. file)
    if f then f:close(); path = dir .. file; break end
  end
  if not path then error("NOT_COVERED: edge list '" .. tostring(file) .. "' is not bundled") end
  local style = tostring(case.options.style or "W"):match("^(%a)")
  return spatial.weights.contiguity(path, { ids = d[ids_col], style = style })
end

--- The data of a case after the spec's subset (only "year == <n>" occurs).
local function case_data(case, ctx)
  local d = sp.read_csv("tests/reference/data/" .. case.dataset)
  local sub = case.options and case.options.subset
  if type(sub) == "string" then
    local col, val = sub:match("^(%w+) == (%d+)$")
    if not col then error("NOT_COVERED: subset '" .. sub .. "' is not mapped") end
    d = d:filter(function(r) return r[col] == tonumber(val) end)
  end
  local _ = ctx
  return d
end

--- The id column named in the spec's edges2listw(..., ids = d$<col>).
local function ids_column(case)
  local col = case.spec:match("ids = d%$(%w+)")
  if not col then error("NOT_COVERED: no ids in the spec") end
  return col
end

local function variable(case)
  local v = case.formula:match("^d%$(%w+)$")
  if not v then error("NOT_COVERED: formula '" .. case.formula .. "' is not a column") end
  return v
end

H.moran_global = function(case, ctx)
  local d = case_data(case, ctx)
  local W = weights_of(case, d, ids_column(case))
  local r = sp.moran and sp.moran(d[variable(case)], W, { randomisation = case.options.randomisation })
    or spatial.moran(d[variable(case)], W, { randomisation = case.options.randomisation })
  local s = case.stats
  return {
    { "I", r.I, s.I, 1e-10 },
    { "expectation", r.expectation, s.expectation, 1e-12 },
    { "variance", r.variance, s.variance, 1e-9 },
    { "z", r.z, s.z, 1e-9 },
    { "pvalue", r.pvalue, s.pvalue, 1e-7, 1e-300 },
    { "nobs", r.nobs, case.nobs, 0 },
    { "method", r.method, s.method },
  }
end

H.moran_local = function(case, ctx)
  local d = case_data(case, ctx)
  local idc = ids_column(case)
  local W = weights_of(case, d, idc)
  local lm = spatial.local_moran(d[variable(case)], W)
  local checks = {}
  local ids = W:ids()
  local row = {}
  for i, id in ipairs(ids) do row[id] = i end
  local Ii, E, V, Z, P = lm.Ii, lm.E_Ii, lm.Var_Ii, lm.Z_Ii, lm.p
  local sum = 0
  for i = 1, W:n() do sum = sum + Ii:get(i, 1) end
  for id, u in pairs(case.stats.units) do
    local i = row[id]
    local function add(name, got, want, rtol, atol)
      checks[#checks + 1] = { "unit " .. id .. " " .. name, got, want, rtol, atol }
    end
    add("Ii", i and Ii:get(i, 1), u.Ii, 1e-9, 1e-14)
    add("E.Ii", i and E:get(i, 1), u.E_Ii, 1e-9, 1e-14)
    add("Var.Ii", i and V:get(i, 1), u.Var_Ii, 1e-9, 1e-14)
    add("Z.Ii", i and Z:get(i, 1), u.Z_Ii, 1e-8, 1e-12)
    add("p", i and P:get(i, 1), u.p_two_sided, 1e-7, 1e-300)
  end
  checks[#checks + 1] = { "sum Ii / n", sum / W:n(), case.stats.sum_Ii_over_n, 1e-10 }
  return checks
end

H.ols_spatial_diagnostics = function(case, ctx)
  local d = case_data(case, ctx)
  local W = weights_of(case, d, ids_column(case))
  local fit = sp.ols(d, case.formula)
  local checks = ctx.fit_checks(case, fit)
  local mr = spatial.moran_residuals(fit, W)
  local m = case.stats.lm_morantest
  for _, k in ipairs { "I", "expectation", "variance", "z" } do
    checks[#checks + 1] = { "lm.morantest " .. k, mr[k], m[k], 1e-9 }
  end
  checks[#checks + 1] = { "lm.morantest pvalue", mr.pvalue, m.pvalue, 1e-7, 1e-300 }
  local lt = spatial.lm_tests(fit, W)
  for name, want in pairs(case.stats.lm_LMtests) do
    local got = lt[name]
    checks[#checks + 1] = { name .. " statistic", got and got.statistic, want.statistic, 1e-9 }
    checks[#checks + 1] = { name .. " df", got and got.df, want.df, 0 }
    checks[#checks + 1] = { name .. " pvalue", got and got.pvalue, want.pvalue, 1e-7, 1e-300 }
  end
  return checks
end

return H
