package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

-- Expected values from R 4.x on the same CSV (read.csv, aggregate, merge, quantile type 7).
local produc = sp.read_csv("tests/reference/data/Produc.csv")

-- ---- construction -------------------------------------------------------------
local d = sp.frame{x = {1.5, 2, 3}, region = {"E", "W", "E"}}
T.check(d:nrow() == 3 and #d == 3 and d:ncol() == 2, "sp.frame: shape")
T.check(table.concat(d:names(), ",") == "region,x", "sp.frame: columns in byte order without order=")
local o = sp.frame({x = {1, 2}, a = {"p", "q"}}, {order = {"x", "a"}})
T.check(table.concat(o:names(), ",") == "x,a", "sp.frame: order option")
local m = sp.frame{x = {1, nil, 3}, s = {"a", nil, "b"}}
T.check(m.x[2] ~= m.x[2], "sp.frame: nil in a numeric column is NaN")
T.check(m.s[2] == nil and m.s.n == 3, "sp.frame: nil in a string column is missing; n = nrow")
local withn = sp.frame{s = {"a", nil, n = 3}}
T.check(withn:nrow() == 3, "sp.frame: field n gives the length of a table with trailing nils")
T.check(sp.frame{s = {"a", n = 2.0}}:nrow() == 2, "sp.frame: a float n with an integer value counts")
T.checkerr("column 'x': field n = 2 but the table has 3 values", sp.frame, {x = {1, 2, 3, n = 2}})
T.checkerr("column 'x': field n must be a non%-negative integer %(the number of rows%), got %-1", sp.frame,
           {x = {1, n = -1}})
T.checkerr("column 'x': field n must be a non%-negative integer", sp.frame, {x = {1, n = 1.5}})
T.checkerr("column 'x': field n must be a non%-negative integer", sp.frame, {x = {1, n = "3"}})
T.checkerr("column 'x': field n = 1000000000000000000 is more rows", sp.frame, {x = {1, n = 1e18}})
T.checkerr("column 'y': 2 values for a frame of 3 rows", sp.frame, {x = {1, 2, 3}, y = {1, 2}})
T.checkerr("column 'x' mixes numbers %(element 1%) and strings %(element 2%)", sp.frame, {x = {1, "a"}})
T.checkerr("column 'x': element 2 is a boolean; expected a number, a string or nil", sp.frame, {x = {1, true}})
T.checkerr("order names 'zz', which is not among the columns", sp.frame, {x = {1}}, {order = {"zz"}})
T.checkerr("column names must be strings", sp.frame, {[1] = {1}})

-- ---- column get / set -------------------------------------------------------------
local x = d.x
T.check(x:nrow() == 3 and x:ncol() == 1 and x[3] == 3, "d.x is an n x 1 matrix")
x[1] = 99
T.check(d.x[1] == 1.5, "d.x is a copy")
local r = d.region
T.check(r[1] == "E" and r[2] == "W" and r.n == 3, "categorical column is a table of strings with n")
T.check(d:column("x")[2] == 2, "d:column")
d.y = 7
T.check(d.y[3] == 7, "number broadcast")
d.z = sp.matrix{10, 20, 30}
T.check(d.z[2] == 20, "set from an n x 1 matrix")
d.z = sp.matrix{{1, 2, 3}}
T.check(d.z[3] == 3, "set from a 1 x n matrix")
d.w = {"a", "b", "c"}
T.check(d.w[3] == "c", "set from a table of strings")
d.w = nil
T.check(d:ncol() == 4, "d.x = nil drops the column")
T.checkerr("unknown column 'regoin' %(did you mean 'region'%?%)", function() return d.regoin end)
T.checkerr("unknown column 'nothing_like_it'$", function() return d:column("nothing_like_it") end)
T.checkerr("column 'q': 2 values for a frame of 3 rows", function() d.q = {1, 2} end)
T.checkerr("column 'q': 4 values for a frame of 3 rows", function() d.q = sp.matrix{1, 2, 3, 4} end)
T.checkerr("a 2 x 2 matrix is not a vector", function() d.q = sp.matrix{{1, 2}, {3, 4}} end)
T.checkerr("cannot store a boolean", function() d.q = true end)
T.checkerr("indexed by column names", function() return d[1] end)
local e = sp.frame{}
e.a = {1, 2, 3, 4}
T.check(e:nrow() == 4, "an empty frame takes its row count from the first column")
d:label("x", "R&D intensity (%)")
T.check(d:label("x") == "R&D intensity (%)", "label set/get")
T.check(d:label("y") == nil, "no label is nil")

-- ---- printing ----------------------------------------------------------------------
local s = tostring(produc)
T.check(s:find("816 rows x 18 columns", 1, true) ~= nil, "tostring: shape")
T.check(s:find("1 ALABAMA 1970", 1, true) ~= nil, "tostring: first row aligned")
T.check(s:find("... 806 more rows", 1, true) ~= nil, "tostring: rows left out")
local cn = sp.frame{prov = {"北京", "Hebei"}, v = {1, 2}}
local lines = {}
for line in tostring(cn):gmatch("[^\n]+") do lines[#lines + 1] = line end
T.check(lines[3] == "1 北京  1" and lines[4] == "2 Hebei 2", "tostring: CJK characters take two columns")

-- ---- head / select / copy / rename ------------------------------------------------------
T.check(produc:head():nrow() == 6 and produc:head(3):nrow() == 3, "head")
T.check(produc:head(10000):nrow() == 816, "head beyond nrow")
local sel = produc:select{"state", "gsp"}
T.check(sel:ncol() == 2 and sel:names()[2] == "gsp" and sel:nrow() == 816, "select")
T.checkerr("unknown column 'gps' %(did you mean 'gsp'%?%)", produc.select, produc, {"state", "gps"})
T.checkerr("column 'gsp' is named twice", produc.select, produc, {"gsp", "gsp"})
local cp = produc:copy()
cp.gsp = 0
T.check(produc.gsp[1] == 28418 and cp.gsp[1] == 0, "copy is deep")
cp:rename{gsp = "output"}
T.check(cp:column("output")[1] == 0, "rename")
T.checkerr("a column 'year' already exists", cp.rename, cp, {output = "year"})
T.checkerr("unknown column 'gdp'", cp.rename, cp, {gdp = "y"})

-- ---- filter -------------------------------------------------------------------------
local f1 = produc:filter("year >= 1985 and region == 9")
T.check(f1:nrow() == 6, "filter expression (3 states of region 9 x 2 years)")
local f2 = produc:filter(function(row) return row.state == "TEXAS" and row.year < 1972 end)
T.check(f2:nrow() == 2 and f2.year[2] == 1971, "filter with a predicate function")
T.check(produc:filter("state == 'OHIO' and math.floor(unemp) == 5"):nrow() > 0, "filter expression may use math")
T.checkerr("unknown column 'yaer' in the expression %(did you mean 'year'%?%)", produc.filter, produc, "yaer > 1980")
T.checkerr("cannot compile the expression", produc.filter, produc, "year >")
-- An expression has no statements, so it cannot assign: function literals are refused (tests/lua/test_sandbox.lua).
T.checkerr("the keyword 'function' is not allowed in an expression", produc.filter, produc, "(function() year = 1 end)()")
T.checkerr("expected a function", produc.filter, produc, 42)
T.checkerr("boom", produc.filter, produc, function() error("boom") end)

-- ---- sort ---------------------------------------------------------------------------
local so = produc:sort{{"unemp", desc = true}, "state"}
T.check(so.unemp[1] == 18 and so.state[1] == "WEST_VIRGINIA", "sort descending")
local so2 = produc:sort{"year", "state"}
T.check(so2.state[1] == "ALABAMA" and so2.state[2] == "ARIZONA" and so2.year[48] == 1970, "sort by two keys")
local so3 = sp.frame{k = {2, 1, 2, 1}, i = {1, 2, 3, 4}}:sort("k")
T.check(so3.i[1] == 2 and so3.i[2] == 4 and so3.i[3] == 1 and so3.i[4] == 3, "sort is stable")
local so4 = sp.frame{k = {"b", nil, "a", n = 3}}:sort("k")
T.check(so4.k[1] == "a" and so4.k[3] == nil, "sort: categorical by string, missing last")
T.checkerr("unknown column 'yr'", produc.sort, produc, "yr")

-- ---- describe -------------------------------------------------------------------------
local ds = produc:describe{"unemp", "gsp"}
T.check(ds.variable[1] == "unemp" and ds:nrow() == 2, "describe: one row per variable")
T.near(ds.N[1], 816, 0, "describe unemp N")
T.near(ds.mean[1], 6.6022058823529415, 1e-14, "describe unemp mean")
T.near(ds.sd[1], 2.2332171707636443, 1e-13, "describe unemp sd")
T.near(ds.min[1], 2.8, 1e-15, "describe unemp min")
T.near(ds.max[1], 18, 0, "describe unemp max")
T.near(ds.missing[1], 0, 0, "describe unemp missing")
T.check(produc:describe():nrow() == 17, "describe: all numeric columns")
T.checkerr("column 'state' is categorical; expected a numeric column", produc.describe, produc, {"state"})

-- ---- aggregate ----------------------------------------------------------------------------
local ag = produc:aggregate{by = "region", mean = "unemp", sum = {"gsp"}, sd = "unemp", count = true}
T.check(table.concat(ag:names(), ",") == "region,n,unemp_mean,gsp_sum,unemp_sd", "aggregate: column names and order")
T.check(ag:nrow() == 9, "aggregate: 9 regions")
T.near(ag.unemp_mean[1], 6.3941176470588239, 1e-14, "aggregate mean region 1")
T.near(ag.unemp_mean[9], 8.329411764705883, 1e-14, "aggregate mean region 9")
T.near(ag.gsp_sum[5], 6961089, 1e-15, "aggregate sum region 5")
T.near(ag.unemp_sd[3], 2.6313042212488287, 1e-13, "aggregate sd region 3")
local ns = {102, 51, 85, 119, 136, 68, 68, 136, 51}
local okn = true
for i = 1, 9 do okn = okn and ag.n[i] == ns[i] end
T.check(okn, "aggregate count per region")
local ag2 = produc:aggregate{by = {"region", "year"}, max = "unemp", first = "state"}
T.check(ag2:nrow() == 153, "aggregate by two keys: 153 groups")
T.near(ag2.unemp_max[18], 4.5999999999999996, 0, "aggregate by two keys: region 2, 1970")
T.check(ag2.state_first[1] == "CONNECTICUT", "aggregate first of a categorical")
T.checkerr("unknown option 'avg'", produc.aggregate, produc, {by = "region", avg = "unemp"})
T.checkerr("by = ", produc.aggregate, produc, {mean = "unemp"})
T.checkerr("column 'state' is categorical; mean needs a numeric column", produc.aggregate, produc,
  {by = "region", mean = "state"})
T.checkerr("unknown column 'unemployment'", produc.aggregate, produc, {by = "region", mean = "unemployment"})

-- ---- join ---------------------------------------------------------------------------------
local states = sp.read_csv("tests/reference/data/us48_states.csv")
states:rename{produc_name = "state"}
local j = produc:join(states, {on = "state", validate = "m:1"})
T.check(j:nrow() == 816 and j.abbr[1] == "AL" and j.abbr[816] == "WY", "join m:1 (R merge: 816 rows, no NA)")
T.check(j.state[17] == "ALABAMA" and j.state[18] == "ARIZONA", "join keeps the left row order")
local few = states:filter("state == 'OHIO' or state == 'TEXAS'")
local jl = produc:join(few, {on = "state"})
T.check(jl:nrow() == 816 and jl.abbr[1] == nil, "left join: unmatched rows get missing values")
local ji = produc:join(few, {on = "state", how = "inner"})
T.check(ji:nrow() == 34 and ji.state[1] == "OHIO", "inner join")
local clash = sp.frame{state = {"OHIO"}, unemp = {-1}}
local jc = produc:join(clash, {on = "state", how = "inner"})
T.check(jc.unemp_y[1] == -1 and jc.unemp[1] ~= -1, "name clash gets _y")
local jc2 = produc:join(clash, {on = "state", how = "inner", suffix = "_other"})
T.check(jc2.unemp_other[1] == -1, "suffix option")
local dup = sp.frame{state = {"OHIO", "TEXAS", "OHIO"}, v = {1, 2, 3}}
T.checkerr("key %(state = 'OHIO'%) appears more than once in the right frame %(rows 1 and 3%)",
  produc.join, produc, dup, {on = "state", validate = "m:1"})
T.checkerr("appears more than once in the left frame", produc.join, produc, states, {on = "state", validate = "1:1"})
local mm = few:join(produc, {on = "state"})
T.check(mm:nrow() == 34, "m:m join repeats rows")
local y2 = sp.frame{state = {"OHIO", "OHIO"}, year = {1970, 1971}, flag = {1, 2}}
local j2 = produc:join(y2, {on = {"state", "year"}, how = "inner", validate = "1:1"})
T.check(j2:nrow() == 2 and j2.flag[2] == 2 and j2.unemp[1] == produc:filter("state == 'OHIO'").unemp[1],
  "join on two keys")
T.checkerr("key 'year' is numeric in the left frame but categorical in the right", produc.join, produc,
  sp.frame{year = {"1970"}}, {on = "year"})
T.checkerr("how = \"outer\" is not supported", produc.join, produc, states, {on = "state", how = "outer"})
T.checkerr("validate = \"1:m\" is not supported", produc.join, produc, states, {on = "state", validate = "1:m"})
T.checkerr("unknown column 'stat' %(did you mean 'state'%?%)", produc.join, produc, states, {on = "stat"})

-- ---- transforms ----------------------------------------------------------------------------
local function sum(mat) local t = 0; for i = 1, #mat do t = t + mat[i] end; return t end
local w = produc:copy()
w:winsorize("unemp", {p = 0.01, suffix = "_w"})
T.near(sum(w.unemp_w), 5374.0349999999999, 1e-13, "winsorize p = 0.01 (R quantile type 7)")
T.near(sum(w.unemp), sum(produc.unemp), 0, "winsorize with suffix keeps the original")
w:winsorize({"unemp"}, {lower = 0.05, upper = 0.95, by = "region"})
T.near(sum(w.unemp), 5345.1350000000002, 1e-13, "winsorize by region, in place")
T.checkerr("p = 0.6 must be at most 0.5", w.winsorize, w, "unemp", {p = 0.6})
T.checkerr("column 'state' is categorical", w.winsorize, w, "state")
w:standardize("gsp", {prefix = "z_"})
T.near(w.z_gsp[1], -0.46583537211495324, 1e-13, "standardize")
T.checkerr("column 'c' is constant", sp.frame{c = {1, 1, 1}}.standardize, sp.frame{c = {1, 1, 1}}, "c")
T.checkerr("column 'c' has the infinite value %-inf at row 3", function()
  sp.frame{c = {1, 2, -math.huge}}:standardize("c")
end)
w:log({"gsp", "pcap"}, {prefix = "ln_"})
T.near(w.ln_gsp[1], 10.254778026198021, 1e-15, "log into a new column")
local neg = sp.frame{g = {1, 0, -3}}
T.checkerr("column 'g' has the non%-positive value 0 at row 2", neg.log, neg, "g")
neg:log("g", {nonpositive = "nan"})
T.check(neg.g[1] == 0 and neg.g[2] ~= neg.g[2] and neg.g[3] ~= neg.g[3], "log: nonpositive = nan, in place")
T.checkerr("nonpositive = \"zero\"", neg.log, neg, "g", {nonpositive = "zero"})

-- ---- lifetime and the method registry -------------------------------------------------
local cl = produc:head(2)
cl:close()
cl:close()
T.checkerr("attempt to use a closed spillover.frame", cl.nrow, cl)
T.check(tostring(cl) == "spillover.frame (closed)", "tostring of a closed frame")
local methods = debug.getregistry()["spillover.frame.methods"]
T.check(type(methods) == "table" and methods.filter ~= nil, "methods live in the registry table")
methods.twice_rows = function(self) return 2 * self:nrow() end
T.check(produc:twice_rows() == 1632, "a method added to the registry table is found")
methods.twice_rows = nil

-- ---- one "did you mean" rule ----------------------------------------------------
-- spillover.suggest (Lua messages) and the frame's unknown-column message (C)
-- suggest the same name: both are sp_closest.  Before, Lua had its own
-- Levenshtein with another bound, and 'abcdefghi' got no suggestion from Lua
-- while C suggested 'abcdWXYZi' (4 edits, within a third of 9 letters plus 1).
local suggest = require "spillover.suggest"
local typos = sp.frame{abcdWXYZi = {1}, region = {1}, gsp = {1}, West = {1}}
for _, typo in ipairs{"abcdefghi", "regoin", "gps", "west", "zzzzzzzz"} do
  local ok, e = pcall(typos.column, typos, typo)
  local from_c = not ok and tostring(e.message or e):match("did you mean '([^']+)'") or nil
  T.check(not ok and suggest.closest(typo, typos:names()) == from_c,
    "suggest.closest agrees with the C message for '" .. typo .. "'", tostring(from_c))
end
T.check(suggest.closest("abcdefghi", {"abcdWXYZi"}) == "abcdWXYZi", "suggest: the C bound (n // 3 + 1 edits)")
T.check(suggest.closest("REGION_CODE", {"region_code", "region_cd"}) == "region_code", "suggest: a match but for case wins")
T.check(suggest.closest("year", {2001, 2002}) == nil and suggest.closest("2001", {2001}) == "2001",
  "suggest: candidates that are not strings compare as text")
T.check(suggest.did_you_mean("regoin", {"region"}) == " (did you mean 'region'?)" and suggest.did_you_mean("q", {"zzz"}) == "",
  "suggest.did_you_mean wording")
T.checkerr("closest: candidate 2 is a number", require("spillover.core").closest, "x", {"a", 1})

T.done()
