-- spillover.vcov_rules: the covariance options of the linear estimators
-- (vcov = "hc1", {cluster = ...}, {driscoll_kraay = lag}, compat = preset) and
-- the rules that follow from a package convention.  The conventions are one
-- table, the C sp_vcov_preset's (read through core.vcov_presets): its C
-- corrections, which parameters k_df counts and which df t tests use.
local core = require "spillover.core"
local util = require "spillover.util"
local conley = require "spillover.conley"
local raise = util.raise

local M = {}

-- ---- the package conventions ------------------------------------------------------

local presets, preset_order = {}, {}
for i, p in ipairs(core.vcov_presets()) do
  presets[p.name] = p
  preset_order[i] = p.name
end
M.presets = presets

--- compat name -> true, for every preset.
local compat_names = {}
for name in pairs(presets) do compat_names[name] = true end
M.compat_names = compat_names

-- The names as the error lists them: stata first (the default), then the order of the C table.
local function preset_list()
  local names = { "stata" }
  for _, n in ipairs(preset_order) do if n ~= "stata" then names[#names + 1] = n end end
  return table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
end

--- opts.compat, checked against the presets (default "stata").
function M.check_compat(opts)
  local compat = opts.compat or "stata"
  if not compat_names[compat] then
    raise("compat: unknown preset '" .. tostring(compat) .. "' (expected " .. preset_list() .. ")")
  end
  return compat
end

-- ---- the vcov option -----------------------------------------------------------------

-- The keys of vcov = {wild = ...} besides wild: the bootstrap's settings.
local WILD_KEYS = { "wild", "reps", "weights", "seed", "impose_null", "level" }

--- Normalise opts.vcov into {type=, cluster={names}, lag=, dof=, gadj=, tdf=}.
--- {wild = "g", ...} is a one-way cluster on g plus out.wild (the bootstrap
--- settings); only estimators that report it (sp.ols, 2SLS) pass
--- allow_wild, the others refuse it.
local function parse_vcov(v, allow_wild)
  if v == nil then return { type = "iid" } end
  if type(v) == "table" and v.wild ~= nil then
    if not allow_wild then
      raise("vcov: the wild cluster bootstrap ({wild = ...}) is reported by sp.ols and 2SLS fits; use " ..
        "{cluster = ...} here")
    end
    util.check_options(v, WILD_KEYS, "vcov")
    if type(v.wild) ~= "string" then
      raise("vcov: wild must name the one cluster variable of the bootstrap, got a " .. type(v.wild))
    end
    return { type = "cluster", cluster = { v.wild }, wild = require("spillover.wildboot").settings(v, "vcov") }
  end
  if type(v) == "string" then
    local t = v:lower()
    if t == "classic" or t == "iid" or t == "hc0" or t == "hc1" or t == "hc2" or t == "hc3" then
      return { type = t == "classic" and "iid" or t }
    end
    raise("vcov: unknown type '" .. v .. "' (expected iid, hc0, hc1, hc2, hc3, {cluster = ...}, " ..
      "{driscoll_kraay = lag}, {newey_west = lag}, {conley = {...}} or {wild = ...})")
  end
  if type(v) ~= "table" then raise("vcov: expected a string or a table") end
  local out = { dof = v.dof, gadj = v.gadj, tdf = v.tdf, fix_psd = v.fix_psd, multi0 = v.multi0 }
  if v.cluster then
    out.type = "cluster"
    out.cluster = type(v.cluster) == "string" and { v.cluster } or v.cluster
    if #out.cluster == 0 then raise("vcov: 'cluster' needs at least one variable") end
    out.hc = v.type  -- e.g. {cluster = "firm", type = "hc1"}: plm arellano HC1
  elseif v.driscoll_kraay ~= nil then
    out.type = "driscoll_kraay"
    local lag = v.driscoll_kraay
    if lag ~= true and math.type(lag) ~= "integer" and not (type(lag) == "number" and lag == math.floor(lag)) then
      raise("vcov: driscoll_kraay must be true (the default lag) or an integer lag 0 <= lag <= T - 1, got " ..
        tostring(lag))
    end
    if lag ~= true and lag < 0 then
      raise(string.format("vcov: driscoll_kraay lag %d is negative (expected an integer 0 <= lag <= T - 1, " ..
        "T the number of periods)", lag))
    end
    out.lag = lag ~= true and math.tointeger(lag) or nil  -- nil: plm's default floor(T^(1/4))
  elseif v.newey_west ~= nil then
    local lag = v.newey_west
    if type(lag) ~= "number" or math.tointeger(lag) == nil or lag < 0 then
      raise("vcov: newey_west must be an integer lag >= 0 (Stata's newey, lag(#)), got " .. tostring(lag))
    end
    if v.time ~= nil and type(v.time) ~= "string" then
      raise("vcov: newey_west's time must be the name of a column, got a " .. type(v.time))
    end
    out.type, out.lag, out.time = "newey_west", math.tointeger(lag), v.time
  elseif v.conley ~= nil then
    out.type, out.conley = "conley", conley.parse(v.conley)
  elseif v.type then
    out = parse_vcov(v.type)
    out.dof, out.gadj, out.tdf = v.dof, v.gadj, v.tdf
  else
    raise("vcov: a table must have 'cluster', 'driscoll_kraay', 'newey_west', 'conley' or 'type'")
  end
  return out
end
M.parse_vcov = parse_vcov

--- The covariance kinds a model's `vcov:` can name, as registry entries
--- declare them (entry.vcov): the names, and cluster / driscoll_kraay for the
--- table forms.  `spillover check` refuses a kind the estimator does not take.
M.KINDS = { "classic", "iid", "hc0", "hc1", "hc2", "hc3", "cluster", "driscoll_kraay", "conley" }
--- The kinds of sp.ols and 2SLS: KINDS, Newey-West (a single time series)
--- and the wild cluster bootstrap.
M.OLS_KINDS = { "newey_west", "wild" }
for _, k in ipairs(M.KINDS) do M.OLS_KINDS[#M.OLS_KINDS + 1] = k end

--- The kind of a vcov value (a name, lower-cased, or the table form's key);
--- nil when it has none (parse_vcov says why at run time).
function M.kind(v)
  if type(v) == "string" then return v:lower() end
  if type(v) ~= "table" then return nil end
  if v.wild ~= nil then return "wild" end
  if v.cluster then return "cluster" end
  if v.newey_west ~= nil then return "newey_west" end
  if v.driscoll_kraay ~= nil then return "driscoll_kraay" end
  if v.conley ~= nil then return "conley" end
  return type(v.type) == "string" and v.type:lower() or nil
end

local function describe_vcov(vc, info)
  if vc.type == "cluster" then
    local parts = {}
    for j, name in ipairs(vc.cluster) do
      parts[j] = string.format("%s (%d)", name, info.ngroups[j] or 0)
    end
    return "clustered by " .. table.concat(parts, " & ") .. (vc.wild and ", wild bootstrap" or "")
  elseif vc.type == "driscoll_kraay" then
    return string.format("Driscoll-Kraay (lag %d)", info.lag)
  elseif vc.type == "newey_west" then
    return string.format("Newey-West (Bartlett, lag %d)", info.lag)
  elseif vc.type == "iid" then
    return "iid"
  end
  return vc.type:upper()
end

--- k_df for the vcov: which parameters the preset counts.  fe_dof_nonnested:
--- the absorbed parameters not nested in the clusters (for Driscoll-Kraay
--- under stata: in the panel's entity, see M.covariance).
local function vcov_kdf(compat, vc, rank, fe_dof, fe_dof_nonnested)
  if vc.type == "iid" then return rank + fe_dof end
  local rule = presets[compat] and presets[compat].k_df or "nonnested"
  if rule == "all" then return rank + fe_dof end  -- LSDV: K counts every dummy
  if rule == "rank" then return rank end
  if vc.type == "cluster" or (vc.type == "driscoll_kraay" and compat == "stata") then
    return rank + fe_dof_nonnested
  end
  return rank + fe_dof
end

--- The period of each estimation row for Newey-West: the row order, or the
--- values of vc.time, which must differ from row to row (a single time
--- series).  The C Driscoll-Kraay pairs the sorted distinct values: a gap in
--- the time variable is closed up, as Stata's newey with force.
local function nw_periods(ctx, vc, n)
  if ctx.design == nil then
    raise("vcov: newey_west is for sp.ols and 2SLS fits of a single time series (use {driscoll_kraay = lag} " ..
      "on a panel)")
  end
  local t = {}
  if vc.time == nil then
    for i = 1, n do t[i] = i end
    return t
  end
  local col, seen = ctx.data[vc.time], {}
  for i, r in ipairs(ctx.design.rows) do
    local v = type(col) == "table" and col[r] or col:get(r, 1)
    if seen[v] then
      raise(string.format("vcov: newey_west: '%s' = %s on more than one row: Newey-West is for a single time " ..
        "series (use {driscoll_kraay = lag} on a panel)", vc.time,
        math.type(v) == "float" and string.format("%.15g", v) or tostring(v)))
    end
    seen[v], t[i] = true, v
  end
  return t
end

--- Compute the covariance for a fitted linear model.
--   X: the (transformed) regressors actually used (kept columns), e: residuals
--   (nil: X is a row source [e X], core.lsfit's eX, and info.ssr is e'e), bread: (X'X)^-1; ctx: {compat, vcov (parsed), codes = function(name), time_codes,
--   fe_dof, fe_nested(name) -> dof of FE not nested in that cluster, weights,
--   small = false for the large-sample V of Stata's ivregress without small,
--   threads = 1 or 2 for the passes over the rows: the same V either way}
function M.covariance(X, e, bread, ctx)
  local vc = ctx.vcov
  local rank = e and X:ncol() or X:ncol() - 1  -- e nil: X is rows [e X] (core.lsfit's eX)
  local fe_dof = ctx.fe_dof or 0
  local opts = { type = vc.type, compat = ctx.compat, weights = ctx.weights, threads = ctx.threads }
  local nonnested = fe_dof
  if vc.type == "cluster" then
    opts.cluster, opts.cluster_names = {}, {}
    for j, name in ipairs(vc.cluster) do
      opts.cluster[j] = ctx.codes(name)
      opts.cluster_names[j] = name
    end
    if ctx.fe_dof_nonnested then nonnested = ctx.fe_dof_nonnested(vc.cluster) end
  elseif vc.type == "driscoll_kraay" then
    opts.time, opts.time_name = ctx.time_codes(), ctx.time_name
    opts.lag = vc.lag
    -- xtscc, fe regresses the within-transformed data on the slopes and a
    -- constant: its k = rank counts the entity effects once (nObs - rank in
    -- its (TT/(TT-1))*((nObs-1)/(nObs-rank)))
    if ctx.compat == "stata" and ctx.entity_fe then nonnested = ctx.fe_dof_nonnested({ ctx.entity_fe }) end
  elseif vc.type == "newey_west" then
    -- Newey-West on one time series is Driscoll-Kraay with one row per
    -- period; Stata's newey (and ivregress ..., small) scale by N/(N-K)
    opts.type, opts.time, opts.time_name, opts.lag = "driscoll_kraay", nw_periods(ctx, vc, X:nrow()), vc.time, vc.lag
    opts.dof = ctx.compat == "stata" and "n/(n-k)" or "none"
    opts.gadj = "none"  -- not xtscc's T/(T-1): newey has no such factor
  end
  opts.k_df = vcov_kdf(ctx.compat, vc, rank, fe_dof, nonnested)
  if vc.type == "conley" then return conley.covariance(X, e, bread, ctx, opts.k_df) end
  if vc.type == "cluster" and vc.hc then
    -- plm's arellano with an HC type: HC0 none, HC1 n/(n-k), sss (n-1)/(n-k) G/(G-1)
    local h = vc.hc:lower()
    if h == "hc0" then opts.dof, opts.gadj = "none", "none"
    elseif h == "hc1" then opts.dof, opts.gadj = "n/(n-k)", "none"
    elseif h == "sss" then opts.dof, opts.gadj = "(n-1)/(n-k)", "each"
    else raise("vcov: cluster type must be hc0, hc1 or sss, got '" .. vc.hc .. "'") end
  end
  if ctx.small == false then
    -- ivregress without small: s2 = e'e/N, robust, cluster and HAC meats
    -- with no N/(N-K) and no G/(G-1)
    opts.dof, opts.gadj = "none", "none"
  end
  opts.dof = vc.dof or opts.dof
  opts.gadj = vc.gadj or opts.gadj
  opts.tdf = vc.tdf or opts.tdf
  opts.fix_psd, opts.multi0 = vc.fix_psd, vc.multi0
  local V, info = core.vcov(X, e, bread, opts)
  return V, info, describe_vcov(vc, info)
end


--- Degrees of freedom of t tests: G - 1 (T - 1) where the preset says so
--- (its t_df_groups: stata, fixest, statsmodels; or tdf = "clusters"), else df_resid.
function M.t_df(vc, compat, vinfo, df_resid)
  local by_groups = (vc.type == "cluster" or vc.type == "driscoll_kraay") and vc.tdf ~= "resid" and
    (vc.tdf == "clusters" or (presets[compat] ~= nil and presets[compat].t_df_groups))
  return (by_groups and vinfo) and vinfo.df_t or df_resid
end

--- df2 of a robust joint Wald F: min G - 1 for one-way or CGM clusters, T - 1
--- for Driscoll-Kraay, df_resid otherwise (and for plm's vcovDC).
function M.wald_df2(vc, vinfo, df_resid)
  if vc.type == "cluster" and not vc.multi0 then
    local df2 = math.huge
    for _, g in ipairs(vinfo.ngroups) do df2 = math.min(df2, g - 1) end
    return df2
  elseif vc.type == "driscoll_kraay" then
    return vinfo.nperiods - 1
  end
  return df_resid
end

--- fit.stats.n_clusters: the number of clusters for one-way clustering, an
--- array of one count per dimension for multiway clustering.
function M.n_clusters(vinfo)
  local g = vinfo.ngroups
  if #g == 1 then return g[1] end
  return g
end

--- The note a clustered fit carries when some clustering dimension has fewer
--- than about 42 clusters (the common rule of thumb; MacKinnon, Nielsen & Webb
--- 2023 show the cluster-robust t test over-rejecting there, badly when the
--- clusters are unbalanced), recommending the wild cluster bootstrap.  nil
--- for other fits.
M.FEW_CLUSTERS = 42
function M.few_clusters_note(vc, vinfo)
  if vc.type ~= "cluster" or vc.wild then return nil end
  for j, g in ipairs(vinfo.ngroups) do
    if g < M.FEW_CLUSTERS then
      return string.format("only %d clusters in '%s': cluster-robust t tests over-reject with fewer than about %d; " ..
        "check a coefficient with fit:wildboot{param = \"...\", cluster = \"%s\"} or report every coefficient " ..
        "with vcov = {wild = \"%s\"}", g, vc.cluster[j], M.FEW_CLUSTERS, vc.cluster[j], vc.cluster[j])
    end
  end
  return nil
end

--- The context M.covariance needs for a design: cluster codes, DK periods,
--- and the absorbed parameters not nested in the clusters (fixest/reghdfe
--- count only those).
function M.vcov_context(d, des, compat, vc, absorb, fe_dof, weights)
  local nfe = #des.fe
  return {
    compat = compat, vcov = vc, fe_dof = fe_dof, weights = weights, data = d, design = des,
    codes = function(name) return core.codes(des, name) end,
    time_codes = function() return core.codes(des, d:panel_info().time) end,
    time_name = vc.type == "driscoll_kraay" and d:panel_info().time or nil,
    -- the panel's entity when it is one of the absorbed factors
    entity_fe = (function()
      local info = vc.type == "driscoll_kraay" and d:panel_info() or nil
      for _, fe in ipairs(des.fe) do if info and fe.name == info.entity then return fe.name end end
      return nil
    end)(),
    fe_dof_nonnested = function(clusters)
      if nfe == 0 then return 0 end
      local dof = fe_dof
      local _, levels = absorb:info()
      for j = 1, nfe do
        for _, cname in ipairs(clusters) do
          -- a nested factor adds nothing beyond the one level that stands
          -- for the intercept (fixest's fixef.K = "nested": K = vars + 1
          -- when every factor is nested, as xtreg's K with its constant)
          if absorb:nested(j, core.codes(des, cname)) then dof = dof - (levels[j] - 1); break end
        end
      end
      return math.max(dof, 0)
    end,
  }
end

return M
