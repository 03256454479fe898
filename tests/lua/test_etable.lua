-- test_etable: regression tables (spillover.etable) in every format, and the
-- xlsx writer (spillover.xlsx).  Fits are built with spillover.fit directly,
-- with normal p-values (no df_resid) so the stars are known exactly:
-- z = 5 -> p 5.7e-7, z = 2 -> p 0.0455, z = 1.7 -> p 0.0891, z = 1 -> p 0.317.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local fitmod = require "spillover.fit"
local etable = (sp.etable or require("spillover.etable").etable)

local f1 = fitmod.new { names = { "x_1", "z" }, b = { 0.5, 0.2 }, V = { { 0.01, 0 }, { 0, 0.01 } }, nobs = 816,
  stats = { r2 = 0.61234, adj_r2 = 0.6 } }
local f2 = fitmod.new { names = { "x_1", "w" }, b = { 0.17, -0.1 }, V = { { 0.01, 0 }, { 0, 0.01 } }, nobs = 800,
  stats = { r2 = 0.9, adj_r2 = 0.88, r2_within = 0.25 },
  fe = { { name = "state", nlevels = 48 }, { name = "year", nlevels = 17 } }, vcov_label = "clustered by state" }

local function same(got, want, what)
  if got == want then return T.check(true, what) end
  -- Show the first differing line, so a failure is readable.
  local gl, wl, i = {}, {}, 1
  for l in (got .. "\n"):gmatch("(.-)\n") do gl[#gl + 1] = l end
  for l in (want .. "\n"):gmatch("(.-)\n") do wl[#wl + 1] = l end
  while gl[i] == wl[i] and i <= math.max(#gl, #wl) do i = i + 1 end
  T.check(false, what, string.format("line %d: got [%s] want [%s]", i, tostring(gl[i]), tostring(wl[i])))
end

local tab = etable { f1, f2, labels = { x_1 = "数字金融", w = "50% & more" }, digits = 2 }

-- ---- Markdown ---------------------------------------------------------------------
same(tab:markdown(), [[
|            |   (1)   |        (2)         |
|:-----------|:-------:|:------------------:|
| 数字金融   | 0.50*** |       0.17*        |
|            | (0.10)  |       (0.10)       |
| z          | 0.20**  |                    |
|            | (0.10)  |                    |
| 50% & more |         |       -0.10        |
|            |         |       (0.10)       |
| state FE   |   No    |        Yes         |
| year FE    |   No    |        Yes         |
| N          |   816   |        800         |
| R²         |  0.61   |        0.90        |
| Within R²  |         |        0.25        |
| Adj. R²    |  0.60   |        0.88        |
| SE         |         | clustered by state |

Standard errors in parentheses. * p<0.1, ** p<0.05, *** p<0.01
]], "markdown golden (CJK label padded by display width, FE rows, stats, SE row)")
same(tostring(tab), tab:markdown(), "tostring gives the markdown table")

-- ---- LaTeX -----------------------------------------------------------------------
same(tab:latex(), [[
% Needs \usepackage{booktabs,threeparttable}; Chinese text needs xeCJK or ctex (compile with xelatex).
\begin{table}[htbp]
\centering
\begin{threeparttable}
\begin{tabular}{lcc}
\toprule
 & (1) & (2) \\
\midrule
数字金融 & 0.50$^{***}$ & 0.17$^{*}$ \\
 & (0.10) & (0.10) \\
z & 0.20$^{**}$ &  \\
 & (0.10) &  \\
50\% \& more &  & -0.10 \\
 &  & (0.10) \\
\midrule
state FE & No & Yes \\
year FE & No & Yes \\
\midrule
N & 816 & 800 \\
$R^2$ & 0.61 & 0.90 \\
Within $R^2$ &  & 0.25 \\
Adj. $R^2$ & 0.60 & 0.88 \\
SE &  & clustered by state \\
\bottomrule
\end{tabular}
\begin{tablenotes}[flushleft]
\footnotesize
\item Standard errors in parentheses. $^{*}\,p<0.1$, $^{**}\,p<0.05$, $^{***}\,p<0.01$
\end{tablenotes}
\end{threeparttable}
\end{table}
]], "latex golden (booktabs, threeparttable, escaped % and &)")

-- Escaping of every special, in labels, title and notes.
local tx = etable { f1, labels = { x_1 = "a_b % c & d $ # {e} ~ ^ \\" }, title = "R_&D 100%", notes = "50% of x_1" }
local latex = tx:latex()
T.check(latex:find("a\\_b \\% c \\& d \\$ \\# \\{e\\} \\textasciitilde{} \\textasciicircum{} \\textbackslash{} & ",
  1, true), "latex escapes _ % & $ # { } ~ ^ \\ in labels")
T.check(latex:find("\\caption{R\\_\\&D 100\\%}", 1, true), "latex escapes the caption")
T.check(latex:find("\\item 50\\% of x\\_1", 1, true), "latex escapes user notes")
T.check(not latex:find("[^\\]_"), "no unescaped underscore anywhere")

-- ---- CSV -------------------------------------------------------------------------
same(tab:csv(), [[
,(1),(2)
数字金融,0.50***,0.17*
,(0.10),(0.10)
z,0.20**,
,(0.10),
50% & more,,-0.10
,,(0.10)
state FE,No,Yes
year FE,No,Yes
N,816,800
R²,0.61,0.90
Within R²,,0.25
Adj. R²,0.60,0.88
SE,,clustered by state
"Standard errors in parentheses. * p<0.1, ** p<0.05, *** p<0.01",,
]], "csv golden (rectangular, note quoted because of its commas)")

-- ---- options: se = "t", stars, keep, order, headers, title, fe_rows, stats ------
local t2 = etable { f1, f2, se = "t", stars = { 0.05, 0.01, 0.001 }, fe_rows = false, stats = { "nobs" },
  keep = { "x_1", "w" }, order = { "w" }, headers = { "OLS", "FE" }, title = "A \"quoted\", title" }
same(t2:markdown(), [[
**A "quoted", title**

|     |   OLS    |         FE         |
|:----|:--------:|:------------------:|
| w   |          |       -0.100       |
|     |          |      (-1.000)      |
| x_1 | 0.500*** |       0.170        |
|     | (5.000)  |      (1.700)       |
| N   |   816    |        800         |
| SE  |          | clustered by state |

t statistics in parentheses. * p<0.05, ** p<0.01, *** p<0.001
]], "markdown with t statistics, custom stars, keep, order, headers, title, no FE rows")
same(t2:csv(), [[
"A ""quoted"", title",,
,OLS,FE
w,,-0.100
,,(-1.000)
x_1,0.500***,0.170
,(5.000),(1.700)
N,816,800
SE,,clustered by state
"t statistics in parentheses. * p<0.05, ** p<0.01, *** p<0.001",,
]], "csv quotes fields with commas and doubles quotes")
T.check(t2:csv { bom = true }:sub(1, 3) == "\239\187\191", "csv{bom = true} starts with the UTF-8 BOM")

-- Stars thresholds: z = 3 (p = 0.0027) gets ** under {0.05, 0.01, 0.001}, *** under the default.
local f3 = fitmod.new { names = { "a" }, b = { 3 }, V = { { 1 } }, nobs = 10 }
T.check(etable { f3, stars = { 0.05, 0.01, 0.001 } }:rows()[2][2] == "3.000**", "p = 0.0027: ** under {.05,.01,.001}")
T.check(etable { f3 }:rows()[2][2] == "3.000***", "p = 0.0027: *** under the default {.1,.05,.01}")
T.check(etable { f3, stars = false }:rows()[2][2] == "3.000", "stars = false: no stars")
T.check(not etable { f3, stars = false }:markdown():find("p<", 1, true), "stars = false: no star legend")
local f4 = fitmod.new { names = { "a" }, b = { 1.7 }, V = { { 1 } }, nobs = 10 }
T.check(etable { f4 }:rows()[2][2] == "1.700*", "p = 0.089: * at 10%")
T.check(etable { f4, stars = { 0.05 } }:rows()[2][2] == "1.700", "p = 0.089: no star at 5%")
-- t(df) p-values are used when the fit has df_resid: t = 2 on 5 df, p = 0.102.
local f5 = fitmod.new { names = { "a" }, b = { 2 }, V = { { 1 } }, nobs = 7, df_resid = 5 }
T.check(etable { f5 }:rows()[2][2] == "2.000", "t(5) p-value 0.102: no star")

-- drop with a pattern, labels for FE and stats, headers from fit labels.
f1.label, f2.label = "OLS", "Two-way FE"
local t3 = etable { f1, f2, drop = { "~^x" }, headers = "label",
  labels = { state = "省份", year = "年份", nobs = "观测值", r2 = "R方", Yes = "是", No = "否" } }
local r3 = t3:rows()
T.check(r3[1][2] == "OLS" and r3[1][3] == "Two-way FE", "headers = \"label\" uses fit.label")
local d1 = fitmod.new { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 5, formula = "lnpat ~ a | province" }
local d2 = fitmod.new { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 5, depvar = "tfp" }
local rd = etable { d1, d2, headers = "depvar", labels = { lnpat = "专利" } }:rows()
T.check(rd[1][2] == "专利" and rd[1][3] == "tfp", "headers = \"depvar\" uses formula lhs / fit.depvar, labelled")
-- the response as the formula object names it: no backquotes, normalised spacing
local dq = fitmod.new { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 5, formula = "`ln pat` ~ a" }
local dl = fitmod.new { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 5, formula = "log( y )~a" }
local rq = etable { dq, dl, headers = "depvar", labels = { ["ln pat"] = "专利" } }:rows()
T.check(rq[1][2] == "专利" and rq[1][3] == "log(y)", "headers = \"depvar\": the response's name", rq[1][2] .. " " .. rq[1][3])
T.checkerr("headers = \"depvar\": model 1 has neither depvar nor a formula", etable, { f3, headers = "depvar" })
T.check(r3[2][1] == "z" and r3[4][1] == "w", "drop = {\"~^x\"} removes x_1 by pattern")
T.check(r3[6][1] == "省份 FE" and r3[6][2] == "否" and r3[6][3] == "是", "FE names and Yes/No take labels")
T.check(r3[8][1] == "观测值" and r3[9][1] == "R方", "stat labels apply")
T.check(t3:latex():find("\nR方 & 0.612 & 0.900", 1, true), "a labelled R2 row is escaped, not the default $R^2$")
local md3 = t3:markdown()
T.check(md3:find("| 省份 FE   |", 1, true), "markdown pads CJK labels by display width")
T.check(etable { f1, f2, labels = { ["state FE"] = "State effects" } }:rows()[8][1] == "State effects",
  "labels[\"state FE\"] replaces the whole FE row label")

-- Union of FE names in first appearance order; fe as plain strings works too.
local g1 = fitmod.new { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 5, fe = { "firm" } }
local g2 = fitmod.new { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 5, fe = { { name = "year" }, { name = "firm" } } }
local rg = etable { g1, g2 }:rows()
T.check(rg[4][1] == "firm FE" and rg[4][2] == "Yes" and rg[4][3] == "Yes" and rg[5][1] == "year FE" and
  rg[5][2] == "No" and rg[5][3] == "Yes", "FE rows: union over models, Yes/No per model")

-- Escaping in Markdown and HTML.
local th = etable { f1, labels = { x_1 = "a|b <i> & \"q\"" }, title = "T<1>" }
T.check(th:markdown():find("| a\\|b <i> & \"q\" |", 1, true), "markdown escapes | in cells")
local page = th:html()
T.check(page:find('<meta charset="utf-8">', 1, true) and page:find("^<!DOCTYPE html>") and
  page:find("</html>\n$"), "html is a complete UTF-8 page")
T.check(page:find("<td>a|b &lt;i&gt; &amp; &quot;q&quot;</td>", 1, true), "html escapes & < > \"")
T.check(page:find("<caption>T&lt;1&gt;</caption>", 1, true), "html caption escaped")
T.check(page:find('<tr class="sep"><td>N</td><td>816</td></tr>', 1, true), "html separates sections")
T.check(tab:html():find("<td>数字金融</td><td>0.50***</td><td>0.17*</td>", 1, true), "html keeps CJK labels")

-- ---- errors ------------------------------------------------------------------------
T.checkerr("etable: no models given", etable, {})
T.checkerr("etable: no models given", etable, { labels = { a = "b" } })
T.checkerr("etable: argument 2 is not a fit %(got a number value%)", etable, { f1, 42 })
T.checkerr("etable: argument 2 is not a fit %(got nil%)", etable, { f1, nil, f2 })
T.checkerr("etable: argument 1 is not a fit %(got a table without the fields", etable, { { 1, 2 } })
T.checkerr("etable: expected a table {fit1, fit2, ...", etable, f1)
T.checkerr("etable: unknown option 'lables'", etable, { f1, lables = {} })
T.checkerr("etable: se must be \"se\" or \"t\", got p", etable, { f1, se = "p" })
T.checkerr("etable: stars%[2%] must be a p%-value threshold in %(0, 1%), got 5", etable, { f1, stars = { 0.1, 5 } })
T.checkerr("etable: digits must be an integer from 0 to 12, got 2.5", etable, { f1, digits = 2.5 })
T.checkerr("etable: headers must be an array of 2 strings %(one per model%), \"label\" or \"depvar\", got an array of 1", etable, { f1, f2, headers = { "a" } })
T.checkerr("etable: keep: no model has a coefficient named 'x9'", etable, { f1, keep = { "x9" } })
T.checkerr("etable: drop: no model has a coefficient matching '^q'", etable, { f1, drop = { "~^q" } })
T.checkerr("etable: order: bad pattern", etable, { f1, order = { "~[" } })
T.checkerr("etable: stats: no model provides 'r3'", etable, { f1, stats = { "nobs", "r3" } })
T.checkerr("etable: labels.x_1 must be a string, got number", etable, { f1, labels = { x_1 = 1 } })
T.checkerr("etable: cannot tell the output format of 'out.docx' from its extension: expected .md, .tex, .csv, .html or .xlsx",
  tab.write, tab, "out.docx")
T.checkerr("etable: cannot tell the output format of 'out' from its extension", tab.write, tab, "out")
T.checkerr("etable: write_all: unknown format 'pdf' %(entry 2%)", tab.write_all, tab, "out", { "md", "pdf" })
T.checkerr("etable: write must be called as tab:write", tab.write, "x.md")
T.checkerr("etable: cannot write '/nonexistent%-dir%-h7/t.md': No such file or directory", tab.write, tab,
  "/nonexistent-dir-h7/t.md")

-- ---- files -------------------------------------------------------------------------
local slurp = T.read

local prefix = os.tmpname()
os.remove(prefix)
T.check(tab:write(prefix .. ".md") == prefix .. ".md", "write returns the path")
T.check(slurp(prefix .. ".md") == tab:markdown(), "write(.md) writes the markdown")
-- Overwrite an existing file: the rename replaces it whole.
local fh = assert(io.open(prefix .. ".tex", "wb"))
fh:write("old contents that are longer than nothing")
fh:close()
tab:write(prefix .. ".tex")
T.check(slurp(prefix .. ".tex") == tab:latex(), "write(.tex) replaces an existing file")
os.remove(prefix .. ".md")
os.remove(prefix .. ".tex")

-- The xlsx writer: the host should preload spillover.xlsx.  Until it does, load
-- its entry point from the Lua C module built next to the executable.
if not pcall(require, "spillover.xlsx") then
  local dir = (arg and arg[-1] or ""):match("^(.*)/[^/]*$") or "."
  local open = package.loadlib(dir .. "/lua/spillover/core.so", "luaopen_spillover_xlsx")
  if open then package.preload["spillover.xlsx"] = open end
end
local has_xlsx, xlsx = pcall(require, "spillover.xlsx")
T.check(has_xlsx, "spillover.xlsx is available", tostring(xlsx))

-- Entry names from a zip's central directory (end record at the file's tail).
local function zip_names(data)
  local names = {}
  local eocd
  for i = #data - 21, math.max(1, #data - 65557), -1 do
    if data:sub(i, i + 3) == "PK\5\6" then eocd = i; break end
  end
  if not eocd then return names end
  local count, _, offset = string.unpack("<I2I4I4", data, eocd + 10)
  local pos = offset + 1
  for _ = 1, count do
    if data:sub(pos, pos + 3) ~= "PK\1\2" then break end
    local nlen, xlen, clen = string.unpack("<I2I2I2", data, pos + 28)
    names[data:sub(pos + 46, pos + 45 + nlen)] = true
    pos = pos + 46 + nlen + xlen + clen
  end
  return names
end

if has_xlsx then
  local tz = etable { f1, f2, labels = { x_1 = "数字金融" }, title = "基准回归", notes = "注：括号内为标准误。" }
  local paths = tz:write_all(prefix)
  T.check(#paths == 5 and paths[5] == prefix .. ".xlsx", "write_all writes five files by default")
  for i, ext in ipairs { "md", "tex", "csv", "html" } do
    T.check(slurp(paths[i]) == tz[({ "markdown", "latex", "csv", "html" })[i]](tz), "write_all ." .. ext .. " content")
  end
  local data = slurp(prefix .. ".xlsx") or ""
  T.check(data:sub(1, 4) == "PK\3\4", "xlsx starts with a zip local header")
  local names = zip_names(data)
  T.check(names["xl/worksheets/sheet1.xml"] and names["xl/sharedStrings.xml"] and names["xl/workbook.xml"],
    "xlsx zip directory holds sheet1.xml, sharedStrings.xml and workbook.xml")
  -- The text itself is deflated; read it with unzip when the machine has it.
  local p = io.popen("unzip -p '" .. prefix .. ".xlsx' xl/sharedStrings.xml 2>/dev/null")
  local strings = p and p:read("a") or ""
  if p then p:close() end
  if strings ~= "" then
    T.check(strings:find("<t>数字金融</t>", 1, true) and strings:find("<t>0.500***</t>", 1, true) and
      strings:find("<t>(0.100)</t>", 1, true) and strings:find("<t>基准回归</t>", 1, true),
      "xlsx shared strings hold the CJK label, starred estimate, SE line and title")
    local p2 = io.popen("unzip -p '" .. prefix .. ".xlsx' xl/worksheets/sheet1.xml 2>/dev/null")
    local sheet = p2:read("a")
    p2:close()
    T.check(sheet:find('<mergeCell ref="A1:C1"/>', 1, true), "xlsx title row merged across the table")
  end
  for _, path in ipairs(paths) do os.remove(path) end

  -- The binding's own checks.
  T.checkerr("xlsx.write: rows%[2%]%[1%] must be a string, a number or nil, got table", xlsx.write, prefix .. ".xlsx",
    { rows = { { "a" }, { {} } } })
  T.checkerr("xlsx.write: rows%[1%].align must be one of \"left\", \"center\", \"right\", got middle", xlsx.write,
    prefix .. ".xlsx", { rows = { { "a", align = "middle" } } })
  T.checkerr("xlsx.write: invalid sheet name 'a%[b%]'", xlsx.write, prefix .. ".xlsx", { sheet = "a[b]", rows = {} })
  T.checkerr("xlsx.write: spec.rows must be an array of rows", xlsx.write, prefix .. ".xlsx", {})
  local ok = xlsx.write(prefix .. ".xlsx", { rows = { { "n", 816 } } })
  T.check(ok == true and (slurp(prefix .. ".xlsx") or ""):sub(1, 2) == "PK", "xlsx.write writes numbers and text")
  os.remove(prefix .. ".xlsx")
  local nok, nmsg = xlsx.write("/nonexistent-dir-h7/t.xlsx", { rows = { { "a" } } })
  T.check(nok == nil and tostring(nmsg):find("cannot write '/nonexistent-dir-h7/t.xlsx'", 1, true),
    "xlsx.write returns nil, message when the file cannot be created")
  T.checkerr("etable: cannot write '/nonexistent%-dir%-h7/t.xlsx': No such file or directory", tab.write, tab,
    "/nonexistent-dir-h7/t.xlsx")
end

T.done()
