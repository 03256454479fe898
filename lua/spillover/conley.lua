-- spillover.conley: Conley (1999) spatial HAC standard errors, the
-- vcov = {conley = {lat =, lon =, cutoff = km, kernel =, lag =}} option of the
-- linear estimators.  vcov_rules parses the option here and hands the
-- covariance over; the meat (pairs within the cutoff found through a k-d
-- tree, the serial term within unit) is engine/src/conley.c.
local core = require "spillover.core"
local util = require "spillover.util"
local suggest = require "spillover.suggest"
local raise = util.raise

local M = {}

local KEYS = { "lat", "lon", "cutoff", "kernel", "lag" }
local FORM = "{lat = column, lon = column, cutoff = km, kernel = \"uniform\" | \"bartlett\", lag = periods}"

--- The checked conley table: {lat, lon, cutoff, kernel, lag}.
function M.parse(c)
  if type(c) ~= "table" then raise("vcov: conley must be a table " .. FORM .. ", got a " .. type(c)) end
  util.check_options(c, KEYS, "vcov: conley")
  for _, key in ipairs { "lat", "lon" } do
    if type(c[key]) ~= "string" then
      raise(string.format("vcov: conley.%s must name the column of %s in degrees, got %s", key,
        key == "lat" and "latitudes" or "longitudes", c[key] == nil and "nothing" or ("a " .. type(c[key]))))
    end
  end
  local cutoff = c.cutoff
  if type(cutoff) ~= "number" or not (cutoff > 0 and cutoff < math.huge) then
    raise("vcov: conley.cutoff must be a distance in km > 0, got " .. tostring(cutoff))
  end
  local kernel = c.kernel or "uniform"
  if kernel ~= "uniform" and kernel ~= "bartlett" then
    raise("vcov: conley.kernel must be \"uniform\" or \"bartlett\", got " .. tostring(kernel))
  end
  local lag = c.lag or 0
  if math.type(lag) ~= "integer" and not (type(lag) == "number" and lag == math.floor(lag)) or lag < 0 then
    raise("vcov: conley.lag must be an integer number of periods >= 0, got " .. tostring(c.lag))
  end
  return { lat = c.lat, lon = c.lon, cutoff = cutoff, kernel = kernel, lag = math.tointeger(lag) }
end

--- The label of tables: "Conley (uniform, 100 km)", with the lag when there is one.
function M.describe(c)
  return string.format("Conley (%s, %g km%s)", c.kernel, c.cutoff,
    c.lag > 0 and string.format(", lag %d", c.lag) or "")
end

-- The values of column `name` at the frame rows `rows`: numbers (missing
-- ones refused, naming the row) or, with any_type, strings too.
local function column_at(d, name, rows, what, any_type)
  local names = d:names()
  local known = false
  for _, nm in ipairs(names) do if nm == name then known = true; break end end
  if not known then
    raise(string.format("vcov: unknown conley %s variable '%s'%s", what, name, suggest.did_you_mean(name, names)))
  end
  local col = d:column(name)
  local numeric = type(col) ~= "table"
  if not numeric and not any_type then
    raise(string.format("vcov: the conley %s variable '%s' is not numeric", what, name))
  end
  if numeric then col = col:totable() end
  local out = {}
  for q, r in ipairs(rows) do
    local v = col[r]
    if v == nil or v ~= v then
      raise(string.format("vcov: the conley %s variable '%s' is missing at row %d", what, name, r))
    end
    out[q] = v
  end
  return out, numeric
end

-- Dense integer codes (0-based) of the values.
local function unit_codes(values)
  local code, out, next_code = {}, {}, 0
  for q, v in ipairs(values) do
    local c = code[v]
    if c == nil then c, code[v], next_code = next_code, next_code, next_code + 1 end
    out[q] = c
  end
  return out
end

-- Periods as integer offsets from the first, so a gap in the panel widens
-- the distance in time (the serial term's Bartlett weight uses it).
local function period_codes(values, name)
  local lo = math.huge
  for _, v in ipairs(values) do
    if v ~= math.floor(v) then
      raise(string.format("vcov: conley needs integer periods; the time variable '%s' has %s", name, tostring(v)))
    end
    if v < lo then lo = v end
  end
  local out = {}
  for q, v in ipairs(values) do out[q] = math.tointeger(v - lo) end
  return out
end

local DOF = { none = true, ["n/(n-k)"] = true, ["(n-1)/(n-k)"] = true }

--- V, info, label for a fit: X the regressors used, e the residuals, bread
--- (X'X)^-1, ctx vcov_rules' context (its data and design give the
--- coordinates of the estimation rows), k_df the parameters the small-sample
--- factor counts.  The factor is 1 unless vcov.dof asks for one.
function M.covariance(X, e, bread, ctx, k_df)
  local vc, d, des = ctx.vcov, ctx.data, ctx.design
  local c = vc.conley
  if d == nil or des == nil or des.rows == nil then
    raise("vcov: conley standard errors are not available for this estimator")
  end
  local n = X:nrow()
  local rows = des.rows
  if #rows ~= n then raise("vcov: conley needs one coordinate per observation of the fit") end
  local dof = vc.dof or "none"
  if not DOF[dof] then
    raise("vcov: conley takes dof = \"none\" (the default), \"n/(n-k)\" or \"(n-1)/(n-k)\", got " .. tostring(dof))
  end
  local factor = dof == "n/(n-k)" and n / (n - k_df) or dof == "(n-1)/(n-k)" and (n - 1) / (n - k_df) or 1
  local opts = {
    lat = core.matrix(column_at(d, c.lat, rows, "latitude")),
    lon = core.matrix(column_at(d, c.lon, rows, "longitude")),
    cutoff = c.cutoff, kernel = c.kernel, lag = c.lag, weights = ctx.weights, factor = factor,
  }
  local pinfo = util.panel_of(d)
  if pinfo then
    -- a panel: spatial pairs within each period, the serial term within unit
    opts.time = period_codes((column_at(d, pinfo.time, rows, "time")), pinfo.time)
    if c.lag > 0 then opts.unit = unit_codes((column_at(d, pinfo.entity, rows, "entity", true))) end
  elseif c.lag > 0 then
    raise("vcov: conley.lag needs a panel index (units and periods): call d:panel{entity=, time=} first")
  end
  local V, info = core.conley_vcov(X, e, bread, opts)
  info.dof_factor, info.df_t, info.ngroups, info.k_df = factor, n - k_df, {}, k_df
  info.cutoff, info.kernel, info.lag = c.cutoff, c.kernel, c.lag
  return V, info, M.describe(c)
end

return M
