-- spillover.etable: publication regression tables from fits.
--
--   local tab = sp.etable{fit1, fit2, labels = {x = "数字金融"}, title = "..."}
--   tab:markdown()  tab:latex()  tab:csv()  tab:html()   -> strings
--   tab:write("out/table1.tex")                           -> format from the extension
--   tab:write_all("out/table1", {"md", "tex", "csv", "html", "xlsx"})
--
-- Layout follows esttab / fixest::etable: one column per model; for each
-- coefficient (union over the models, first appearance order unless `order`)
-- the estimate with significance stars and, on the line below, the standard
-- error (or t statistic) in parentheses; then one "<name> FE: Yes/No" row per
-- fixed effect found in any model; then N, R², within R², adjusted R² and the
-- kind of standard errors.
--
-- Only the fit protocol (lua/spillover/fit.lua) is used: names, b, V,
-- pvalue(), nobs, stats, fe, vcov_label / vcov_type, label / estimator.
-- Everything is UTF-8; widths in Markdown are display widths (CJK = 2).
-- Files are written to a temporary name next to the target and renamed, so a
-- reader never sees half a table.
local fitmod = require "spillover.fit"
local formula_object = require "spillover.formula"
local util = require "spillover.util"
local raise = util.raise

local width, pad = fitmod.width, fitmod.pad

local M = {}

local Table = {}
Table.__index = Table
Table.__name = "spillover.etable"

local OPTIONS = {
  labels = true, se = true, stars = true, digits = true, title = true, notes = true, keep = true,
  drop = true, order = true, headers = true, fe_rows = true, stats = true,
}
local OPTION_LIST = "labels, se, stars, digits, title, notes, keep, drop, order, headers, fe_rows, stats"

local DEFAULT_STATS = { "nobs", "r2", "r2_within", "adj_r2" }

-- Plain (UTF-8) and LaTeX names of the usual statistics.
local STAT_LABEL = {
  nobs = "N", r2 = "R²", adj_r2 = "Adj. R²", r2_within = "Within R²", r2_between = "Between R²",
  r2_overall = "Overall R²", adj_r2_within = "Adj. within R²", sigma = "Sigma", ll = "Log likelihood",
  aic = "AIC", bic = "BIC", F = "F",
  n_instruments = "Instruments", ar1_p = "AR(1) p", ar2_p = "AR(2) p", sargan_p = "Sargan p", hansen_p = "Hansen p",
}
local STAT_TEX = {
  r2 = "$R^2$", adj_r2 = "Adj. $R^2$", r2_within = "Within $R^2$", r2_between = "Between $R^2$",
  r2_overall = "Overall $R^2$", adj_r2_within = "Adj. within $R^2$", sigma = "$\\sigma$",
}
-- Statistics that are counts, printed without decimals.
local COUNT_STAT = { nobs = true, df_resid = true, nclusters = true, ngroups = true, n_instruments = true }

-- ---- argument checking -------------------------------------------------------

local function fail(msg) raise("etable: " .. msg) end

local function is_fit(v)
  if fitmod.is_fit(v) then return true end
  -- A user's own fit class works if it carries the protocol's fields.
  return type(v) == "table" and type(v.names) == "table" and type(v.b) == "table" and type(v.V) == "table"
    and type(v.pvalue) == "function"
end

local function describe(v)
  if type(v) == "table" then
    local mt = getmetatable(v)
    if type(mt) == "table" and type(mt.__name) == "string" then return "a " .. mt.__name end
    return "a table without the fields names, b, V and method pvalue"
  end
  if v == nil then return "nil" end
  return "a " .. type(v) .. " value"
end

local function string_list(v, what)
  if v == nil then return nil end
  if type(v) == "string" then return { v } end
  if type(v) ~= "table" then fail(what .. " must be an array of strings, got " .. type(v)) end
  local out = {}
  for i, s in ipairs(v) do
    if type(s) ~= "string" then
      fail(string.format("%s[%d] must be a string, got %s", what, i, type(s)))
    end
    out[i] = s
  end
  return out
end

-- keep/drop/order entries: an exact coefficient name, or "~pattern" (a Lua
-- pattern, since names such as log(x) are full of pattern characters).
local function matcher(entry, what)
  if entry:sub(1, 1) == "~" then
    local pat = entry:sub(2)
    local ok, err = pcall(string.find, "", pat)
    if not ok then fail(string.format("%s: bad pattern '%s': %s", what, pat, err)) end
    return function(name) return name:find(pat) ~= nil end
  end
  return function(name) return name == entry end
end

local function check_matches(list, names, what)
  for _, e in ipairs(list) do
    local m, hit = matcher(e, what), false
    for _, n in ipairs(names) do if m(n) then hit = true; break end end
    if not hit then
      fail(string.format("%s: no model has a coefficient %s '%s' (coefficients: %s)", what,
        e:sub(1, 1) == "~" and "matching" or "named", e:sub(1, 1) == "~" and e:sub(2) or e,
        table.concat(names, ", ")))
    end
  end
end

-- ---- formatting ----------------------------------------------------------------

local function fmt_num(x, digits)
  if type(x) ~= "number" then return tostring(x) end
  if x ~= x then return "NA" end
  if x == math.huge then return "Inf" elseif x == -math.huge then return "-Inf" end
  return string.format("%." .. digits .. "f", x)
end

local function fmt_stat(key, x, digits)
  if type(x) == "table" and type(x.statistic) == "number" then x = x.statistic end
  if type(x) ~= "number" then return tostring(x) end
  if COUNT_STAT[key] and x == math.floor(x) and math.abs(x) < 2 ^ 53 then return string.format("%d", x) end
  return fmt_num(x, digits)
end

local function stars_for(p, thresholds)
  if thresholds == nil or p ~= p or p == nil then return "" end
  local n = 0
  for _, t in ipairs(thresholds) do if p < t then n = n + 1 end end
  return string.rep("*", n)
end

local TEX_ESCAPE = {
  ["\\"] = "\\textbackslash{}", ["&"] = "\\&", ["%"] = "\\%", ["$"] = "\\$", ["#"] = "\\#",
  ["_"] = "\\_", ["{"] = "\\{", ["}"] = "\\}", ["~"] = "\\textasciitilde{}",
  ["^"] = "\\textasciicircum{}", ["<"] = "\\textless{}", [">"] = "\\textgreater{}", ["|"] = "\\textbar{}",
}
local function tex(s) return (s:gsub("[\\&%%$#_{}~^<>|]", TEX_ESCAPE)) end

local HTML_ESCAPE = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function html(s) return (s:gsub("[&<>\"']", HTML_ESCAPE)) end

local function csv_field(s)
  if s:find('[,"\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- ---- building the table --------------------------------------------------------

--- Build a table object from fits (positional) and options (named).
function M.etable(spec)
  if type(spec) ~= "table" or is_fit(spec) then
    fail("expected a table {fit1, fit2, ..., labels = {...}}, got " .. describe(spec) ..
      " (call it as sp.etable{fit1, fit2})")
  end
  local n = 0
  for k in pairs(spec) do
    if math.type(k) == "integer" and k >= 1 then
      if k > n then n = k end
    elseif type(k) == "string" then
      if not OPTIONS[k] then fail(string.format("unknown option '%s' (expected one of: %s)", k, OPTION_LIST)) end
    else
      fail("unexpected key " .. tostring(k) .. " (pass fits as {fit1, fit2, ...} and options by name)")
    end
  end
  if n == 0 then fail("no models given: pass one or more fits, e.g. sp.etable{fit1, fit2}") end
  local fits = {}
  for i = 1, n do
    local f = spec[i]
    if not is_fit(f) then
      fail(string.format("argument %d is not a fit (got %s); expected a fit returned by an estimator or sp.fit{...}",
        i, describe(f)))
    end
    fits[i] = f
  end

  -- Options.
  local labels = spec.labels or {}
  if type(labels) ~= "table" then fail("labels must be a table {name = \"label\"}, got " .. type(labels)) end
  for k, v in pairs(labels) do
    if type(v) ~= "string" then fail(string.format("labels.%s must be a string, got %s", tostring(k), type(v))) end
  end
  local se_kind = spec.se or "se"
  if se_kind ~= "se" and se_kind ~= "t" then
    fail("se must be \"se\" or \"t\", got " .. tostring(se_kind))
  end
  local thresholds
  if spec.stars == nil then
    thresholds = { 0.1, 0.05, 0.01 }
  elseif spec.stars ~= false then
    if type(spec.stars) ~= "table" or #spec.stars == 0 then
      fail("stars must be an array of p-value thresholds such as {0.1, 0.05, 0.01}, or false")
    end
    thresholds = {}
    for i, t in ipairs(spec.stars) do
      if type(t) ~= "number" or not (t > 0 and t < 1) then
        fail(string.format("stars[%d] must be a p-value threshold in (0, 1), got %s", i, tostring(t)))
      end
      thresholds[i] = t
    end
    table.sort(thresholds, function(a, b) return a > b end)
  end
  local digits = spec.digits or 3
  if type(digits) ~= "number" or digits ~= math.floor(digits) or digits < 0 or digits > 12 then
    fail("digits must be an integer from 0 to 12, got " .. tostring(digits))
  end
  digits = math.tointeger(digits)
  if spec.title ~= nil and type(spec.title) ~= "string" then fail("title must be a string, got " .. type(spec.title)) end
  local user_notes = string_list(spec.notes, "notes") or {}
  local keep = string_list(spec.keep, "keep")
  local drop = string_list(spec.drop, "drop")
  local order = string_list(spec.order, "order")
  local fe_rows = spec.fe_rows
  if fe_rows == nil then fe_rows = true end
  if type(fe_rows) ~= "boolean" then fail("fe_rows must be true or false, got " .. type(fe_rows)) end
  local stats_explicit = spec.stats ~= nil
  local stats = string_list(spec.stats, "stats") or DEFAULT_STATS
  if not stats_explicit then
    -- a fit's own diagnostics rows (fit.table_stats, e.g. GMM's instruments,
    -- AR(2) and Hansen p-values) follow the defaults
    local seen, more = {}, {}
    for _, k in ipairs(stats) do seen[k] = true end
    for _, f in ipairs(fits) do
      for _, k in ipairs(type(f.table_stats) == "table" and f.table_stats or {}) do
        if not seen[k] then seen[k] = true; more[#more + 1] = k end
      end
    end
    if #more > 0 then stats = { table.unpack(stats) }; for _, k in ipairs(more) do stats[#stats + 1] = k end end
  end

  -- Headers: "(1)", "(2)", ...; "label" uses each fit's label or estimator,
  -- "depvar" the (labelled) dependent variable: fit.depvar or the left-hand
  -- side of fit.formula.
  local headers = {}
  if spec.headers == nil then
    for i = 1, n do headers[i] = "(" .. i .. ")" end
  elseif spec.headers == "label" or spec.headers == "names" then
    for i, f in ipairs(fits) do
      local h = f.label or f.estimator
      headers[i] = type(h) == "string" and h or "(" .. i .. ")"
    end
  elseif spec.headers == "depvar" then
    for i, f in ipairs(fits) do
      local h = f.depvar
      if type(h) ~= "string" and type(f.formula) == "string" then
        local ok, fo = pcall(formula_object.parse, f.formula)
        h = ok and fo:response() or nil
      end
      if type(h) ~= "string" or h == "" then
        fail(string.format("headers = \"depvar\": model %d has neither depvar nor a formula \"y ~ ...\"", i))
      end
      headers[i] = labels[h] or h
    end
  else
    local h = string_list(spec.headers, "headers")
    if type(spec.headers) ~= "table" or #h ~= n then
      fail(string.format("headers must be an array of %d strings (one per model), \"label\" or \"depvar\", got %s", n,
        type(spec.headers) == "table" and ("an array of " .. #h) or tostring(spec.headers)))
    end
    headers = h
  end

  -- Coefficients: union in first appearance order, then keep, drop, order.
  local names, seen = {}, {}
  for _, f in ipairs(fits) do
    for _, nm in ipairs(f.names) do
      if not seen[nm] then seen[nm] = true; names[#names + 1] = nm end
    end
  end
  local all_names = names
  if keep then
    check_matches(keep, all_names, "keep")
    local ms = {}
    for i, e in ipairs(keep) do ms[i] = matcher(e, "keep") end
    local kept = {}
    for _, nm in ipairs(names) do
      for _, m in ipairs(ms) do if m(nm) then kept[#kept + 1] = nm; break end end
    end
    names = kept
  end
  if drop then
    check_matches(drop, all_names, "drop")
    local ms = {}
    for i, e in ipairs(drop) do ms[i] = matcher(e, "drop") end
    local kept = {}
    for _, nm in ipairs(names) do
      local hit = false
      for _, m in ipairs(ms) do if m(nm) then hit = true; break end end
      if not hit then kept[#kept + 1] = nm end
    end
    names = kept
  end
  if order then
    check_matches(order, all_names, "order")
    local placed, ordered = {}, {}
    for _, e in ipairs(order) do
      local m = matcher(e, "order")
      for _, nm in ipairs(names) do
        if not placed[nm] and m(nm) then placed[nm] = true; ordered[#ordered + 1] = nm end
      end
    end
    for _, nm in ipairs(names) do if not placed[nm] then ordered[#ordered + 1] = nm end end
    names = ordered
  end

  local sections = {}

  -- Coefficient rows: estimate + stars, then (se) or (t) below.
  local coef_rows = {}
  local per_fit = {}
  for j, f in ipairs(fits) do
    local idx = {}
    for i, nm in ipairs(f.names) do idx[nm] = i end
    per_fit[j] = { idx = idx, p = f:pvalue() }
    -- a fit with its own inference (fit.inference: the wild bootstrap of
    -- vcov = {wild = ...}) adds its confidence sets in brackets
    if type(f.inference) == "table" then per_fit[j].ci = f:confint() end
  end
  local any_ci = false
  for j = 1, n do any_ci = any_ci or per_fit[j].ci ~= nil end
  for _, nm in ipairs(names) do
    local est = { label = labels[nm] or nm, cells = {}, stars = {} }
    local sub = { label = "", cells = {}, stars = {} }
    for j, f in ipairs(fits) do
      local i = per_fit[j].idx[nm]
      if i then
        local b = f.b[i]
        local s = math.sqrt(f.V[i][i])
        est.cells[j] = fmt_num(b, digits)
        est.stars[j] = stars_for(per_fit[j].p[nm], thresholds)
        sub.cells[j] = "(" .. fmt_num(se_kind == "t" and b / s or s, digits) .. ")"
      else
        est.cells[j], est.stars[j], sub.cells[j] = "", "", ""
      end
      sub.stars[j] = ""
    end
    coef_rows[#coef_rows + 1] = est
    coef_rows[#coef_rows + 1] = sub
    if any_ci then
      local row = { label = "", cells = {}, stars = {} }
      for j = 1, n do
        local c = per_fit[j].ci and per_fit[j].idx[nm] and per_fit[j].ci[nm]
        row.cells[j], row.stars[j] = c and ("[" .. fmt_num(c[1], digits) .. ", " .. fmt_num(c[2], digits) .. "]") or "", ""
      end
      coef_rows[#coef_rows + 1] = row
    end
  end
  if #coef_rows > 0 then sections[#sections + 1] = coef_rows end

  -- Fixed-effect indicator rows.
  if fe_rows then
    local fe_names, fe_seen, has = {}, {}, {}
    for j, f in ipairs(fits) do
      has[j] = {}
      if type(f.fe) == "table" then
        for _, e in ipairs(f.fe) do
          local nm = type(e) == "table" and e.name or e
          if type(nm) == "string" then
            has[j][nm] = true
            if not fe_seen[nm] then fe_seen[nm] = true; fe_names[#fe_names + 1] = nm end
          end
        end
      end
    end
    local yes, no = labels.Yes or "Yes", labels.No or "No"
    local rows = {}
    for _, nm in ipairs(fe_names) do
      local row = { label = labels[nm .. " FE"] or ((labels[nm] or nm) .. " FE"), cells = {}, stars = {} }
      for j = 1, n do row.cells[j], row.stars[j] = has[j][nm] and yes or no, "" end
      rows[#rows + 1] = row
    end
    if #rows > 0 then sections[#sections + 1] = rows end
  end

  -- Statistics rows, then the kind of standard errors.
  local stat_rows = {}
  for _, key in ipairs(stats) do
    local row = { label = labels[key] or STAT_LABEL[key] or key, cells = {}, stars = {} }
    if not labels[key] and STAT_TEX[key] then row.label_tex = STAT_TEX[key] end
    local any = false
    for j, f in ipairs(fits) do
      local v
      if key == "nobs" then v = f.nobs or (f.stats and f.stats.nobs)
      else v = f.stats and f.stats[key] end
      if v ~= nil then any = true end
      row.cells[j], row.stars[j] = v ~= nil and fmt_stat(key, v, digits) or "", ""
    end
    if any then
      stat_rows[#stat_rows + 1] = row
    elseif stats_explicit then
      fail(string.format("stats: no model provides '%s'", key))
    end
  end
  local vrow, anyv = { label = labels.vcov or "SE", cells = {}, stars = {} }, false
  for j, f in ipairs(fits) do
    local v = f.vcov_label or f.vcov_type
    if v ~= nil then anyv = true end
    vrow.cells[j], vrow.stars[j] = v ~= nil and tostring(v) or "", ""
  end
  if anyv then stat_rows[#stat_rows + 1] = vrow end
  if #stat_rows > 0 then sections[#sections + 1] = stat_rows end

  -- Notes: what the parentheses hold and the star thresholds, then the user's.
  local what = se_kind == "t" and "t statistics in parentheses." or "Standard errors in parentheses."
  local plain, tex_note = what, what
  if thresholds then
    local parts, tparts = {}, {}
    for i, t in ipairs(thresholds) do
      parts[i] = string.rep("*", i) .. " p<" .. string.format("%g", t)
      tparts[i] = "$^{" .. string.rep("*", i) .. "}\\,p<" .. string.format("%g", t) .. "$"
    end
    plain = plain .. " " .. table.concat(parts, ", ")
    tex_note = tex_note .. " " .. table.concat(tparts, ", ")
  end
  local notes, notes_tex = { plain }, { tex_note }
  for j, f in ipairs(fits) do
    if per_fit[j].ci then
      local inf = f.inference
      local s = string.format("%s: stars from %s p-values, [%g%% confidence sets] by test inversion, clustered by " ..
        "%s (%d clusters); standard errors cluster-robust.", headers[j], inf.label, 100 * inf.level, inf.cluster,
        inf.n_clusters)
      notes[#notes + 1], notes_tex[#notes_tex + 1] = s, tex(s)
    end
  end
  for _, s in ipairs(user_notes) do
    notes[#notes + 1] = s
    notes_tex[#notes_tex + 1] = tex(s)
  end

  return setmetatable({
    title = spec.title, header = headers, corner = labels[""] or "", sections = sections,
    notes = notes, notes_tex = notes_tex, nmodels = n, names = names,
  }, Table)
end

-- ---- output --------------------------------------------------------------------

local function check_self(self, method)
  if getmetatable(self) ~= Table then
    raise(string.format("etable: %s must be called as tab:%s(...)", method, method))
  end
end

local function cell(row, j) return row.cells[j] .. row.stars[j] end

--- The table as an array of rows of plain strings, header first.
function Table:rows()
  check_self(self, "rows")
  local out = { { self.corner, table.unpack(self.header) } }
  for _, sec in ipairs(self.sections) do
    for _, row in ipairs(sec) do
      local r = { row.label }
      for j = 1, self.nmodels do r[j + 1] = cell(row, j) end
      out[#out + 1] = r
    end
  end
  return out
end

local function center(s, w)
  local fill = w - width(s)
  local left = fill // 2
  return string.rep(" ", left) .. s .. string.rep(" ", fill - left)
end

--- GitHub/pandoc pipe table; the label column is left-aligned, the model
--- columns centred, and the source is padded to display width.
function Table:markdown()
  check_self(self, "markdown")
  local rows = self:rows()
  for _, r in ipairs(rows) do
    for c = 1, #r do r[c] = r[c]:gsub("|", "\\|") end
  end
  local w = {}
  for c = 1, self.nmodels + 1 do
    w[c] = 3
    for _, r in ipairs(rows) do w[c] = math.max(w[c], width(r[c])) end
  end
  local function line(r)
    local parts = { pad(r[1], w[1]) }
    for c = 2, #r do parts[c] = center(r[c], w[c]) end
    return "| " .. table.concat(parts, " | ") .. " |"
  end
  local out = {}
  if self.title then out[#out + 1] = "**" .. self.title .. "**"; out[#out + 1] = "" end
  out[#out + 1] = line(rows[1])
  local sep = { ":" .. string.rep("-", w[1] + 1) }
  for c = 2, #w do sep[c] = ":" .. string.rep("-", w[c]) .. ":" end
  out[#out + 1] = "|" .. table.concat(sep, "|") .. "|"
  for i = 2, #rows do out[#out + 1] = line(rows[i]) end
  for _, s in ipairs(self.notes) do
    out[#out + 1] = ""
    out[#out + 1] = s
  end
  return table.concat(out, "\n") .. "\n"
end

--- A booktabs three-line table inside threeparttable (notes underneath).
function Table:latex()
  check_self(self, "latex")
  local out = {
    "% Needs \\usepackage{booktabs,threeparttable}; Chinese text needs xeCJK or ctex (compile with xelatex).",
    "\\begin{table}[htbp]",
    "\\centering",
    "\\begin{threeparttable}",
  }
  local function add(s) out[#out + 1] = s end
  if self.title then add("\\caption{" .. tex(self.title) .. "}") end
  add("\\begin{tabular}{l" .. string.rep("c", self.nmodels) .. "}")
  add("\\toprule")
  local h = { tex(self.corner) }
  for j, s in ipairs(self.header) do h[j + 1] = tex(s) end
  add(table.concat(h, " & ") .. " \\\\")
  for _, sec in ipairs(self.sections) do
    add("\\midrule")
    for _, row in ipairs(sec) do
      local r = { row.label_tex or tex(row.label) }
      for j = 1, self.nmodels do
        local s = tex(row.cells[j])
        if row.stars[j] ~= "" then s = s .. "$^{" .. row.stars[j] .. "}$" end
        r[j + 1] = s
      end
      add(table.concat(r, " & ") .. " \\\\")
    end
  end
  add("\\bottomrule")
  add("\\end{tabular}")
  add("\\begin{tablenotes}[flushleft]")
  add("\\footnotesize")
  for _, s in ipairs(self.notes_tex) do add("\\item " .. s) end
  add("\\end{tablenotes}")
  add("\\end{threeparttable}")
  add("\\end{table}")
  return table.concat(out, "\n") .. "\n"
end

--- RFC 4180 CSV (rectangular: title and notes fill the first field of their
--- row).  opts.bom = true prepends a UTF-8 byte-order mark, which Excel needs
--- to read Chinese text from a .csv.
function Table:csv(opts)
  check_self(self, "csv")
  if opts ~= nil and type(opts) ~= "table" then raise("etable: csv options must be a table {bom = true}") end
  local ncol = self.nmodels + 1
  local out = {}
  local function add(r)
    local f = {}
    for c = 1, ncol do f[c] = csv_field(r[c] or "") end
    out[#out + 1] = table.concat(f, ",")
  end
  if self.title then add({ self.title }) end
  for _, r in ipairs(self:rows()) do add(r) end
  for _, s in ipairs(self.notes) do add({ s }) end
  return ((opts and opts.bom) and "\239\187\191" or "") .. table.concat(out, "\n") .. "\n"
end

local HTML_STYLE = table.concat({
  "table.etable{border-collapse:collapse;border-top:2px solid #000;font-family:serif}",
  "table.etable caption{font-weight:bold;padding:4px}",
  "table.etable th,table.etable td{padding:2px 12px;text-align:center}",
  "table.etable th:first-child,table.etable td:first-child{text-align:left}",
  "table.etable thead th{border-bottom:1px solid #000}",
  "table.etable tr.sep td{border-top:1px solid #000}",
  "table.etable tbody tr:last-child td{border-bottom:2px solid #000}",
  "table.etable tfoot td{text-align:left;font-size:smaller}",
}, "\n")

--- A complete, minimal UTF-8 HTML page holding the table.
function Table:html()
  check_self(self, "html")
  local out = {
    "<!DOCTYPE html>",
    "<html>",
    "<head>",
    '<meta charset="utf-8">',
    "<title>" .. html(self.title or "Regression table") .. "</title>",
    "<style>",
    HTML_STYLE,
    "</style>",
    "</head>",
    "<body>",
    '<table class="etable">',
  }
  local function add(s) out[#out + 1] = s end
  if self.title then add("<caption>" .. html(self.title) .. "</caption>") end
  local h = { "<tr><th>" .. html(self.corner) .. "</th>" }
  for _, s in ipairs(self.header) do h[#h + 1] = "<th>" .. html(s) .. "</th>" end
  add("<thead>")
  add(table.concat(h) .. "</tr>")
  add("</thead>")
  add("<tbody>")
  for k, sec in ipairs(self.sections) do
    for i, row in ipairs(sec) do
      local r = { (k > 1 and i == 1) and '<tr class="sep">' or "<tr>", "<td>" .. html(row.label) .. "</td>" }
      for j = 1, self.nmodels do r[#r + 1] = "<td>" .. html(cell(row, j)) .. "</td>" end
      add(table.concat(r) .. "</tr>")
    end
  end
  add("</tbody>")
  add("<tfoot>")
  for _, s in ipairs(self.notes) do
    add('<tr><td colspan="' .. (self.nmodels + 1) .. '">' .. html(s) .. "</td></tr>")
  end
  add("</tfoot>")
  add("</table>")
  add("</body>")
  add("</html>")
  return table.concat(out, "\n") .. "\n"
end

--- The spec for spillover.xlsx.write: merged bold title, bold header between
--- a medium and a thin rule, thin rules between sections, a medium rule under
--- the last row, merged notes below.  Every cell is text, so "0.123***" and
--- "(0.045)" look exactly as in the other formats.
function Table:xlsx_spec()
  check_self(self, "xlsx_spec")
  local body = self:rows()
  local ncol = self.nmodels + 1
  local widths = {}
  for c = 1, ncol do
    widths[c] = c == 1 and 10 or 8
    for _, r in ipairs(body) do widths[c] = math.max(widths[c], width(r[c]) + 2) end
  end
  local total = 0
  for _, x in ipairs(widths) do total = total + x end
  local rows = {}
  if self.title then rows[#rows + 1] = { self.title, merge = true, bold = true, align = "center" } end
  local header = body[1]
  header.bold, header.top, header.bottom = true, "medium", "thin"
  rows[#rows + 1] = header
  local r = 2
  for k, sec in ipairs(self.sections) do
    for i = 1, #sec do
      local row = body[r]
      if k > 1 and i == 1 then row.top = "thin" end
      rows[#rows + 1] = row
      r = r + 1
    end
  end
  if #rows > 0 then rows[#rows].bottom = "medium" end
  for _, s in ipairs(self.notes) do
    local lines = math.max(1, math.ceil(width(s) / math.max(total, 1)))
    rows[#rows + 1] = { s, merge = true, wrap = true, align = "left", height = 15 * lines }
  end
  return { sheet = "etable", ncols = ncol, widths = widths, rows = rows }
end

-- ---- files -----------------------------------------------------------------------

local FORMATS = { md = "markdown", markdown = "markdown", tex = "latex", csv = "csv", html = "html",
  htm = "html", xlsx = "xlsx" }
local FORMAT_LIST = ".md, .tex, .csv, .html or .xlsx"

local function xlsx_module()
  local ok, mod = pcall(require, "spillover.xlsx")
  if not ok then
    raise("etable: .xlsx output needs the spillover.xlsx C module, which this build does not provide (" ..
      util.message(mod):match("^[^\n]*") .. ")")
  end
  return mod
end

-- The reason part of an io message "<path>: reason".
local function reason(msg, path)
  msg = tostring(msg)
  if msg:sub(1, #path + 2) == path .. ": " then return msg:sub(#path + 3) end
  return msg
end

local function write_file(self, path, fmt)
  local tmp = string.format("%s.tmp-%s", path, tostring({}):match("0x(%x+)") or tostring(os.time()))
  local fh, msg = io.open(tmp, "wb")
  if not fh then raise(string.format("etable: cannot write '%s': %s", path, reason(msg, tmp))) end
  if fmt == "xlsx" then
    -- libxlsxwriter writes the file itself at close; the probe above already
    -- told us the directory is writable.
    fh:close()
    local ok, err = xlsx_module().write(tmp, self:xlsx_spec())
    if not ok then
      os.remove(tmp)
      raise(string.format("etable: cannot write '%s': %s", path, reason(err, tmp)))
    end
  else
    local ok, err = fh:write(self[fmt](self))
    local cok, cerr = fh:close()
    if not ok or not cok then
      os.remove(tmp)
      raise(string.format("etable: cannot write '%s': %s", path, reason(err or cerr, tmp)))
    end
  end
  local ok, err = os.rename(tmp, path)
  if not ok then
    os.remove(tmp)
    raise(string.format("etable: cannot write '%s': %s", path, reason(err, tmp)))
  end
  return path
end

--- Write the table to path, the format chosen by the extension; returns path.
function Table:write(path)
  check_self(self, "write")
  if type(path) ~= "string" then raise("etable: write expects a file path, got " .. type(path)) end
  local ext = path:match("%.([^./\\]+)$")
  local fmt = ext and FORMATS[ext:lower()]
  if not fmt then
    raise(string.format("etable: cannot tell the output format of '%s' from its extension: expected %s",
      path, FORMAT_LIST))
  end
  return write_file(self, path, fmt)
end

--- Write prefix.<ext> for each extension (default md, tex, csv, html, xlsx);
--- returns the paths written.  Every extension is checked before any write.
function Table:write_all(prefix, exts)
  check_self(self, "write_all")
  if type(prefix) ~= "string" then raise("etable: write_all expects a path prefix, got " .. type(prefix)) end
  exts = exts or { "md", "tex", "csv", "html", "xlsx" }
  if type(exts) ~= "table" then raise("etable: write_all: formats must be an array such as {\"md\", \"tex\"}") end
  for i, e in ipairs(exts) do
    if type(e) ~= "string" or not FORMATS[e:lower()] then
      raise(string.format("etable: write_all: unknown format %s (entry %d): expected md, tex, csv, html or xlsx",
        type(e) == "string" and ("'" .. e .. "'") or type(e), i))
    end
  end
  local paths = {}
  for i, e in ipairs(exts) do
    paths[i] = write_file(self, prefix .. "." .. e, FORMATS[e:lower()])
  end
  return paths
end

Table.__tostring = Table.markdown

M.class = Table
function M.is_etable(v) return getmetatable(v) == Table end

return M
