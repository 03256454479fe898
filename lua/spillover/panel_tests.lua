-- spillover.panel_tests: specification tests for panel models, matching
-- plm 2.6 number for number (statistics, degrees of freedom, p-values and
-- the method strings, quirks included):
--
--   pftest(d, formula, {effect=})          F test for effects (plm::pFtest)
--   pftest(within_fit, pooled_fit)          the same from two fits
--   plmtest(d, formula | fit, {type=, effect=})   LM tests for effects (plm::plmtest)
--   hausman(fe_fit, re_fit)                 classic Hausman (plm::phtest on two models)
--   phtest(d, formula, {method=, effect=})  within vs random effects (plm::phtest.formula)
--   pcdtest(d, formula | fit, {test=, model=, effect=, w=})   cross-sectional dependence
--                                           (plm::pcdtest: CD, LM, scaled LM, ...)
--
-- Every test returns an htest table {statistic, statistic_name, df | df1, df2,
-- pvalue, method, alternative, data_name, nobs, parameter} whose __tostring
-- prints like R's print.htest.  The estimation itself goes through
-- spillover.linear (sp.ols with compat = "plm") and spillover.panel_models
-- (sp.re), so the tests see exactly the fits a user would get.
local core = require "spillover.core"
local util = require "spillover.util"
local raise = util.raise
local linear = require "spillover.linear"
local fitmod = require "spillover.fit"
local F = require "spillover.formula"
local dist = core.dist

local M = {}

-- ---- the result object -------------------------------------------------------------

local HTest = { __name = "spillover.htest" }
HTest.__index = HTest

--- R's format(x, digits = 5) for the statistic and parameters: whole numbers
--- in full, others with 5 significant digits.
local function fmt_num(x)
  if x ~= x then return "NA" end
  if x == math.floor(x) and math.abs(x) < 1e15 then return string.format("%d", x) end
  return string.format("%.5g", x)
end

--- R's format.pval(p, digits = 4): "< 2.2e-16" below the machine epsilon.
local function fmt_pval(p)
  if p < 2.220446049250313e-16 then return "< 2.2e-16" end
  return "= " .. string.format("%.4g", p)
end

--- R's strwrap: whitespace runs collapse to one space, lines break before
--- width 72 (0.9 x the default 80 columns), each line starting with prefix.
local function strwrap(text, prefix)
  local lines, line = {}, nil
  for word in text:gmatch("%S+") do
    if line == nil then
      line = word
    elseif #line + 1 + #word < 72 then
      line = line .. " " .. word
    else
      lines[#lines + 1] = prefix .. line
      line = word
    end
  end
  if line then lines[#lines + 1] = prefix .. line end
  return table.concat(lines, "\n")
end

function HTest.__tostring(h)
  local out = {}
  if h.statistic ~= nil then out[#out + 1] = h.statistic_name .. " = " .. fmt_num(h.statistic) end
  for _, p in ipairs(h.parameter or {}) do out[#out + 1] = p[1] .. " = " .. fmt_num(p[2]) end
  if h.pvalue ~= nil then out[#out + 1] = "p-value " .. fmt_pval(h.pvalue) end
  local lines = {
    "", strwrap(h.method, "\t"), "", "data:  " .. (h.data_name or ""),
    strwrap(table.concat(out, ", "), ""),
    "alternative hypothesis: " .. h.alternative,
  }
  for _, note in ipairs(h.notes or {}) do lines[#lines + 1] = strwrap("note: " .. note, "") end
  lines[#lines + 1] = ""
  return table.concat(lines, "\n")
end

--- Build an htest: spec has statistic, statistic_name, parameter (ordered
--- {{name, value}, ...}), pvalue, method, alternative, data_name, nobs, notes.
local function htest(spec)
  local h = setmetatable(spec, HTest)
  for _, p in ipairs(h.parameter or {}) do h[p[1]] = p[2] end
  h.parameter = h.parameter or {}
  return h
end
M.htest = htest

-- ---- shared helpers ----------------------------------------------------------------

local function check_opts(opts, who)
  if opts == nil then return {} end
  if type(opts) ~= "table" then raise(who .. ": options must be a table, got " .. type(opts)) end
  return opts
end

--- Check a string option against its allowed values (first = default).
local function choice(opts, key, allowed, who)
  local v = opts[key]
  if v == nil then return allowed[1] end
  for _, a in ipairs(allowed) do if v == a then return v end end
  raise(string.format("%s: unknown %s '%s' (expected %s)", who, key, tostring(v),
    table.concat(allowed, ", ")))
end

local function panel_info(d, who)
  if type(d) ~= "userdata" or getmetatable(d) == nil or getmetatable(d).__name ~= "spillover.frame" then
    raise(who .. ": expected a frame as argument 1, got " .. (fitmod.is_fit(d) and "a fit" or type(d)))
  end
  local info = util.panel_of(d)
  if info == nil then
    raise(who .. ": the frame has no panel index: call d:panel{entity=, time=} first")
  end
  return info
end

local function check_formula(formula, who, argn)
  if type(formula) ~= "string" then
    raise(string.format("%s: expected a formula string as argument %d, got %s", who, argn, type(formula)))
  end
  -- a formula that does not parse is reported by the estimator that reads it
  local ok, f = pcall(F.parse, formula)
  if ok and (#f:fe() > 0 or f:iv() ~= nil) then
    raise(who .. ": the formula must not have a '|' part (fixed effects or instruments): " ..
      "the effects are chosen with the option 'effect'")
  end
end

--- The formula as R's data.name shows it: the model part, without fixed
--- effects or instruments (a formula without them as written).
local function data_name(formula)
  if formula == nil then return "" end
  local ok, f = pcall(F.parse, formula)
  if not ok then return tostring(formula) end  -- a user fit's own notation
  if #f:fe() == 0 and f:iv() == nil then return f.text end
  return f:without_fe():without_iv():format()
end

--- The formula with the fixed effects of an effect ("individual", "time",
--- "twoways") added: the within model of plm.
local function with_effect(formula, info, effect)
  local fe = {}
  if effect ~= "time" then fe[#fe + 1] = F.quote(info.entity) end
  if effect ~= "individual" then fe[#fe + 1] = F.quote(info.time) end
  return F.parse(formula):with_fe(fe)
end

local function plm_fit(d, formula)
  return linear.ols(d, formula, { compat = "plm" })
end

--- Dense 1-based codes of a frame column over the given rows (values in
--- sorted order, as R's factor levels): codes, number of levels.
local function row_codes(d, rows, name)
  local col = d[name]
  local vals, seen, uniq = {}, {}, {}
  for i, r in ipairs(rows) do
    local v
    if type(col) == "table" then v = col[r] else v = col:get(r, 1) end
    vals[i] = v
    if not seen[v] then seen[v] = true; uniq[#uniq + 1] = v end
  end
  table.sort(uniq, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  local code = {}
  for c, v in ipairs(uniq) do code[v] = c end
  local out = {}
  for i, v in ipairs(vals) do out[i] = code[v] end
  return out, #uniq
end

--- Rows (1-based, of the frame) a fit used: the design's rows, or every row
--- when the fit has no design but one residual per row of d.
local function fit_rows(d, fit, n, who)
  if fit.design and fit.design.rows then return fit.design.rows end
  if n == d:nrow() then
    local rows = {}
    for i = 1, n do rows[i] = i end
    return rows
  end
  raise(string.format("%s: the fit has %d residuals but the frame %d rows, and no design (fit.design.rows) " ..
    "says which rows it used", who, n, d:nrow()))
end

local function vector(v)
  if type(v) == "table" then return v end
  return v:tovector()
end

-- ---- F test for effects (plm::pFtest) ------------------------------------------------

--- Effect of a within fit, from its absorbed factors and the panel index.
local function fit_effect(fit, info)
  local fe = fit.fe or {}
  if #fe == 2 then return "twoways" end
  if #fe == 1 then
    if fe[1].name == info.entity then return "individual" end
    if fe[1].name == info.time then return "time" end
  end
  return nil
end

local function f_from_fits(within, pooling, effect, formula)
  local sw, sp_ = within.stats, pooling.stats
  local df2 = sw.df_resid
  local df1 = sp_.df_resid - df2
  if df1 <= 0 then
    raise(string.format("pftest: the within model has no fewer residual degrees of freedom (%d) than the pooled " ..
      "model (%d); pass the within fit first", df2, sp_.df_resid))
  end
  local stat = (sp_.ssr - sw.ssr) / sw.ssr / df1 * df2
  return htest {
    statistic = stat, statistic_name = "F", parameter = { { "df1", df1 }, { "df2", df2 } },
    pvalue = dist.pf(stat, df1, df2, true), method = "F test for " .. effect .. " effects",
    alternative = "significant effects", data_name = data_name(formula), nobs = within.nobs,
  }
end

--- sp.pftest(d, formula, {effect = "individual" | "time" | "twoways"}) or
--- sp.pftest(within_fit, pooled_fit): F = ((SSR_p - SSR_w) / df1) / (SSR_w / df2).
function M.pftest(d, formula, opts)
  if fitmod.is_fit(d) then
    if not fitmod.is_fit(formula) then
      raise("pftest: with a within fit as argument 1, argument 2 must be the pooled fit")
    end
    local within, pooling = d, formula
    if not within.fe or #within.fe == 0 then
      raise("pftest: argument 1 must be a within fit (fixed effects absorbed), got a fit without fixed effects")
    end
    if within.nobs ~= pooling.nobs then
      raise(string.format("pftest: the fits use different observations (%d and %d)", within.nobs, pooling.nobs))
    end
    local info = util.panel_of(within.data)
    local effect = type(info) == "table" and fit_effect(within, info) or nil
    if effect == nil then
      local names = {}
      for j, fe in ipairs(within.fe) do names[j] = fe.name end
      effect = table.concat(names, " + ")
    end
    return f_from_fits(within, pooling, effect, within.formula)
  end
  local who = "pftest"
  local info = panel_info(d, who)
  check_formula(formula, who, 2)
  opts = check_opts(opts, who)
  local effect = choice(opts, "effect", { "individual", "time", "twoways" }, who)
  local within = plm_fit(d, with_effect(formula, info, effect))
  local pooling = plm_fit(d, formula)
  return f_from_fits(within, pooling, effect, formula)
end

-- ---- LM tests for effects (plm::plmtest) -------------------------------------------

local lm_method_type = { honda = "Honda", bp = "Breusch-Pagan", ghm = "Gourieroux, Holly and Monfort", kw = "King and Wu" }
-- plm 2.6 matches effect against "id", so one-way individual tests print no effect
-- ("Lagrange Multiplier Test -  (Honda)"); kept verbatim for parity.
local lm_method_effect = { individual = "", time = "time effects", twoways = "two-ways effects" }

--- chi-bar-squared upper tail: weights (1/4, 1/2, 1/4) on chi2(0, 1, 2).
local function pchibarsq_upper(q)
  local p0 = 0  -- chi2(0) is a point mass at 0: P(X > q) = 0 for q >= 0
  return 0.25 * p0 + 0.5 * dist.pchisq(q, 1, true) + 0.25 * dist.pchisq(q, 2, true)
end

--- sp.plmtest(d, formula | pooled_fit, {type = "honda" | "bp" | "kw" | "ghm",
--- effect = "individual" | "time" | "twoways"}) on pooled OLS residuals.
function M.plmtest(d, x, opts)
  local who = "plmtest"
  local info = panel_info(d, who)
  local fit
  if fitmod.is_fit(x) then
    fit = x
    if fit.estimator ~= "ols" then
      -- as plm: any other panel model is refitted as pooled OLS on its formula
      if type(fit.formula) ~= "string" then
        raise("plmtest: the fit is not pooled OLS and has no formula to refit it as one")
      end
      fit = plm_fit(d, data_name(fit.formula))
    end
  else
    check_formula(x, who, 2)
    fit = plm_fit(d, x)
  end
  opts = check_opts(opts, who)
  local effect = choice(opts, "effect", { "individual", "time", "twoways" }, who)
  local ltype = choice(opts, "type", { "honda", "bp", "ghm", "kw" }, who)
  if effect ~= "twoways" and ltype == "ghm" then
    raise('plmtest: type must be one of "honda", "bp" or "kw" for a one way model (ghm needs effect = "twoways")')
  end
  local e = vector(fit:resid())
  local n = #e
  local rows = fit_rows(d, fit, n, who)
  local id, N = row_codes(d, rows, info.entity)
  local tm, T = row_codes(d, rows, info.time)
  local sid, stm, Ti, Nt = {}, {}, {}, {}
  for c = 1, N do sid[c], Ti[c] = 0, 0 end
  for c = 1, T do stm[c], Nt[c] = 0, 0 end
  local ee = 0
  for i = 1, n do
    local r = e[i]
    ee = ee + r * r
    sid[id[i]] = sid[id[i]] + r
    stm[tm[i]] = stm[tm[i]] + r
    Ti[id[i]] = Ti[id[i]] + 1
    Nt[tm[i]] = Nt[tm[i]] + 1
  end
  local s1, s2, M11, M22 = 0, 0, 0, 0
  for c = 1, N do s1, M11 = s1 + sid[c] ^ 2, M11 + Ti[c] ^ 2 end
  for c = 1, T do s2, M22 = s2 + stm[c] ^ 2, M22 + Nt[c] ^ 2 end
  local A1, A2 = s1 / ee - 1, s2 / ee - 1
  -- M11 - n = 0 when every entity has one period: no within-entity variation to test
  local LM1 = n * (1 / math.sqrt(2 * (M11 - n))) * A1
  local LM2 = n * (1 / math.sqrt(2 * (M22 - n))) * A2
  if (effect ~= "time" and M11 == n) or (effect ~= "individual" and M22 == n) then
    raise("plmtest: every " .. (M11 == n and "entity has one period" or "period has one entity") ..
      ": the test for " .. effect .. " effects is undefined")
  end
  local stat, name, param, pv
  if effect ~= "twoways" then
    local lm = effect == "individual" and LM1 or LM2
    if ltype == "bp" then
      stat, name, param = lm * lm, "chisq", { { "df", 1 } }
      pv = dist.pchisq(stat, 1, true)
    else
      stat, name, param = lm, "normal", nil
      pv = dist.pnorm(stat, true)
    end
  else
    if ltype == "honda" then
      stat, name = (LM1 + LM2) / math.sqrt(2), "normal"
      pv = dist.pnorm(stat, true)
    elseif ltype == "bp" then
      stat, name, param = LM1 * LM1 + LM2 * LM2, "chisq", { { "df", 2 } }
      pv = dist.pchisq(stat, 2, true)
    elseif ltype == "kw" then
      local den = math.sqrt(M11 + M22 - 2 * n)
      stat, name = math.sqrt(M11 - n) / den * LM1 + math.sqrt(M22 - n) / den * LM2, "normal"
      pv = dist.pnorm(stat, true)
    else
      stat, name = math.max(0, LM1) ^ 2 + math.max(0, LM2) ^ 2, "chibarsq"
      param = { { "df0", 0 }, { "df1", 1 }, { "df2", 2 }, { "w0", 0.25 }, { "w1", 0.5 }, { "w2", 0.25 } }
      pv = pchibarsq_upper(stat)
    end
  end
  return htest {
    statistic = stat, statistic_name = name, parameter = param, pvalue = pv,
    method = "Lagrange Multiplier Test - " .. lm_method_effect[effect] .. " (" .. lm_method_type[ltype] .. ")",
    alternative = "significant effects", data_name = data_name(fit.formula), nobs = n,
    lm = { individual = LM1, time = LM2 },
  }
end

-- ---- Hausman (plm::phtest) ----------------------------------------------------------

--- sp.hausman(fe_fit, re_fit): chi2 = |d' (V_fe - V_re)^-1 d| over the slope
--- coefficients the two fits share (the intercept excluded), d = b_fe - b_re.
--- With a within and a between fit the variances add (they are independent).
function M.hausman(x, x2)
  if not fitmod.is_fit(x) or not fitmod.is_fit(x2) then
    raise("hausman: expected two fits (e.g. a within fit and a random-effects fit), got " ..
      (fitmod.is_fit(x) and "a fit" or type(x)) .. " and " .. (fitmod.is_fit(x2) and "a fit" or type(x2)))
  end
  local common = {}
  for _, nm in ipairs(x2.names) do
    if nm ~= "(Intercept)" and x.index[nm] then common[#common + 1] = nm end
  end
  if #common == 0 then raise("hausman: no common coefficients in the two models") end
  local q = #common
  local between = (x.estimator == "within" and x2.estimator == "between") or
    (x2.estimator == "within" and x.estimator == "between")
  local sign = between and 1 or -1
  local D, dv = core.matrix(q, q), core.matrix(q, 1)
  for a, na in ipairs(common) do
    local ia, ja = x.index[na], x2.index[na]
    dv:set(a, 1, x.b[ia] - x2.b[ja])
    for c, nc in ipairs(common) do
      D:set(a, c, x.V[ia][x.index[nc]] + sign * x2.V[ja][x2.index[nc]])
    end
  end
  local ok, sol = pcall(D.solve, D, dv)
  if not ok then
    raise("hausman: the difference of the covariance matrices over (" .. table.concat(common, ", ") ..
      ") is singular: " .. util.message(sol))
  end
  local stat = 0
  for a = 1, q do stat = stat + dv:get(a, 1) * sol:get(a, 1) end
  stat = math.abs(stat)
  return htest {
    statistic = stat, statistic_name = "chisq", parameter = { { "df", q } },
    pvalue = dist.pchisq(stat, q, true), method = "Hausman Test",
    alternative = "one model is inconsistent", data_name = data_name(x.formula), nobs = x.nobs,
    coefficients = common,
  }
end

--- sp.phtest(d, formula, {method = "swar" | ..., effect = "individual" | "time" | "twoways"}):
--- the within fit against sp.re with the same effect.
function M.phtest(d, formula, opts)
  local who = "phtest"
  local info = panel_info(d, who)
  check_formula(formula, who, 2)
  opts = check_opts(opts, who)
  local effect = choice(opts, "effect", { "individual", "time", "twoways" }, who)
  local ok, pm = pcall(require, "spillover.panel_models")
  if not ok or type(pm) ~= "table" or type(pm.re) ~= "function" then
    raise("phtest: random effects (spillover.panel_models, sp.re) are not available in this build")
  end
  local fe = plm_fit(d, with_effect(formula, info, effect))
  local re = pm.re(d, formula, { method = opts.method or "swar", effect = effect })
  local h = M.hausman(fe, re)
  h.data_name = data_name(formula)
  return h
end

-- ---- cross-sectional dependence (plm::pcdtest) ------------------------------------

--- Residuals of a unit-by-unit OLS of the formula (plm's heterogeneous model):
--- a table aligned with des rows.
local function hetero_resid(des, id, N)
  local X, y, k = des.X, des.y, des.k
  local members = {}
  for c = 1, N do members[c] = {} end
  for i = 1, des.n do local m = members[id[i]]; m[#m + 1] = i end
  local e = {}
  for c = 1, N do
    local rows = members[c]
    local Xi, yi = core.matrix(#rows, k), core.matrix(#rows, 1)
    for r, i in ipairs(rows) do
      yi:set(r, 1, y:get(i, 1))
      for j = 1, k do Xi:set(r, j, X:get(i, j)) end
    end
    local f = core.lsfit(Xi, yi)
    for r, i in ipairs(rows) do e[i] = f.resid:get(r, 1) end
  end
  return e
end

--- The proximity matrix w as a table of rows (N x N), or nil.
local function proximity(w, N)
  if w == nil then return nil end
  local rows
  if type(w) == "userdata" and w.totable then
    if w:nrow() ~= N or w:ncol() ~= N then
      raise(string.format("pcdtest: matrix 'w' describing proximity of individuals has wrong dimensions: " ..
        "should be %d x %d (no. of individuals) but is %d x %d", N, N, w:nrow(), w:ncol()))
    end
    rows = w:totable()
  elseif type(w) == "table" then
    rows = w
    if #rows ~= N then
      raise(string.format("pcdtest: matrix 'w' describing proximity of individuals has wrong dimensions: " ..
        "should be %d x %d (no. of individuals) but has %d rows", N, N, #rows))
    end
    for i = 1, N do
      if type(rows[i]) ~= "table" or #rows[i] ~= N then
        raise(string.format("pcdtest: matrix 'w': row %d must have %d entries", i, N))
      end
    end
  else
    raise("pcdtest: option 'w' must be an N x N matrix or table of rows, got " .. type(w))
  end
  local lower, upper = 0, 0
  for i = 1, N do
    for j = 1, N do
      if rows[i][j] ~= 0 then
        if i > j then lower = lower + 1 elseif j > i then upper = upper + 1 end
      end
    end
  end
  if lower == 0 then
    raise("pcdtest: no neighbouring individuals defined in proximity matrix 'w'; " ..
      "only the lower triangular part of 'w' (without the diagonal) is evaluated")
  end
  if upper ~= 0 then
    for i = 1, N do
      for j = 1, i - 1 do
        if (rows[i][j] ~= 0) ~= (rows[j][i] ~= 0) then
          raise(string.format("pcdtest: proximity matrix 'w' is ambiguous: upper and lower triangular part " ..
            "define different neighbours (entry [%d,%d] vs [%d,%d]); it is enough to fill the lower triangle", i, j, j, i))
        end
      end
    end
  end
  return rows
end

local cd_names = {
  cd = { "Pesaran CD test", "z" }, lm = { "Breusch-Pagan LM test", "chisq" }, sclm = { "Scaled LM test", "z" },
  bcsclm = { "Bias-corrected Scaled LM test", "z" }, rho = { "Average correlation coefficient", "rho" },
  absrho = { "Average absolute correlation coefficient", "|rho|" },
}

--- The statistics from residuals e over entity/time codes (plm::pcdres).
local function cd_from_resid(e, id, N, tm, T, test, w, form, notes)
  -- wide layout: per entity, its residual at each period (nil where absent)
  local wide = {}
  for c = 1, N do wide[c] = {} end
  for i = 1, #e do wide[id[i]][tm[i]] = e[i] end
  local present = {}
  local Tmax = 0
  for c = 1, N do
    local list, cnt = {}, 0
    for t = 1, T do if wide[c][t] ~= nil then list[#list + 1] = t; cnt = cnt + 1 end end
    present[c] = list
    if cnt > Tmax then Tmax = cnt end
  end
  local m, s_cd, s_lm, s_sclm, s_rho, s_abs, dropped = 0, 0, 0, 0, 0, 0, 0
  for i = 2, N do
    local wi, wrow = wide[i], w and w[i]
    for j = 1, i - 1 do
      if not wrow or wrow[j] ~= 0 then
        local wj = wide[j]
        -- pairwise complete periods: means and moments over the common ones
        local tij, sa, sb = 0, 0, 0
        for _, t in ipairs(present[i]) do
          local b = wj[t]
          if b ~= nil then tij, sa, sb = tij + 1, sa + wi[t], sb + b end
        end
        if tij <= 1 then
          dropped = dropped + 1
        else
          local ma, mb = sa / tij, sb / tij
          local saa, sbb, sab = 0, 0, 0
          for _, t in ipairs(present[i]) do
            local b = wj[t]
            if b ~= nil then
              local x, z = wi[t] - ma, b - mb
              saa, sbb, sab = saa + x * x, sbb + z * z, sab + x * z
            end
          end
          local rho = sab / math.sqrt(saa * sbb)
          m = m + 1
          s_cd = s_cd + math.sqrt(tij) * rho
          s_lm = s_lm + tij * rho * rho
          s_sclm = s_sclm + (tij * rho * rho - 1)
          s_rho, s_abs = s_rho + rho, s_abs + math.abs(rho)
        end
      end
    end
  end
  if dropped > 0 then
    local total = N * (N - 1) / 2
    notes[#notes + 1] = string.format("some pairs of individuals (%.2g percent) do not have any or just one " ..
      "time period in common and have been omitted from calculation", dropped / total * 100)
  end
  if m == 0 then
    raise("pcdtest: no pair of individuals has two or more periods in common: the test is undefined")
  end
  local stat, pv, param
  if test == "lm" then
    stat, param = s_lm, { { "df", m } }
    pv = dist.pchisq(stat, m, true)
  elseif test == "sclm" then
    stat = math.sqrt(1 / (2 * m)) * s_sclm
  elseif test == "bcsclm" then
    stat = math.sqrt(1 / (2 * m)) * s_sclm - N / (2 * (Tmax - 1))
  elseif test == "cd" then
    stat = math.sqrt(1 / m) * s_cd
  elseif test == "rho" then
    stat = s_rho / m
  else
    stat = s_abs / m
  end
  if test == "sclm" or test == "bcsclm" or test == "cd" then pv = 2 * dist.pnorm(math.abs(stat), true) end
  return htest {
    statistic = stat, statistic_name = cd_names[test][2], parameter = param, pvalue = pv,
    method = cd_names[test][1] .. " for " .. (w and "local" or "") .. " cross-sectional dependence in panels",
    alternative = "cross-sectional dependence", data_name = form, nobs = #e, npairs = m,
    notes = #notes > 0 and notes or nil,
  }
end

--- sp.pcdtest(d, formula | fit, {test = "cd" | "lm" | "sclm" | "bcsclm" | "rho" | "absrho",
--- model = nil | "pooling" | "within", effect =, w =}).  With a formula and no
--- model, the residuals are those of unit-by-unit OLS (plm's default).
function M.pcdtest(d, x, opts)
  local who = "pcdtest"
  local info = panel_info(d, who)
  opts = check_opts(opts, who)
  local test = choice(opts, "test", { "cd", "sclm", "bcsclm", "lm", "rho", "absrho" }, who)
  local notes = {}
  local e, rows, form
  if fitmod.is_fit(x) then
    if test == "bcsclm" then
      local eff = x.estimator == "within" and type(info) == "table" and fit_effect(x, info)
      if eff ~= "individual" and eff ~= "twoways" then
        raise("pcdtest: for test = 'bcsclm', the fit must be a within fit with individual or twoways effects")
      end
    end
    e = vector(x:resid())
    rows = fit_rows(d, x, #e, who)
    form = data_name(x.formula)
  else
    check_formula(x, who, 2)
    form = x
    local model = opts.model
    if model ~= nil and model ~= "pooling" and model ~= "within" then
      raise("pcdtest: unknown model '" .. tostring(model) .. "' (expected nil for unit-by-unit OLS, 'pooling' or 'within')")
    end
    local effect = choice(opts, "effect", { "individual", "time", "twoways" }, who)
    if test == "bcsclm" and (model ~= "within" or effect == "time") then
      raise("pcdtest: for test = 'bcsclm', set model = 'within' and effect = 'individual' or 'twoways'")
    end
    if model == nil then
      local des = core.design(d, x)
      rows = des.rows
      local id, N = row_codes(d, rows, info.entity)
      local Ti, minT = {}, math.huge
      for i = 1, des.n do Ti[id[i]] = (Ti[id[i]] or 0) + 1 end
      for c = 1, N do if Ti[c] < minT then minT = Ti[c] end end
      if minT < des.k + 1 then
        notes[#notes + 1] = "insufficient number of observations in time to estimate heterogeneous model: " ..
          "using within residuals"
        model = "within"
      else
        e = hetero_resid(des, id, N)
      end
    end
    if model ~= nil then
      local f = plm_fit(d, model == "within" and with_effect(x, info, effect) or x)
      e = vector(f:resid())
      rows = f.private.design.rows
    end
  end
  local id, N = row_codes(d, rows, info.entity)
  local tm, T = row_codes(d, rows, info.time)
  local w = proximity(opts.w, N)
  return cd_from_resid(e, id, N, tm, T, test, w, form, notes)
end

return M
