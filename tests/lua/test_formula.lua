package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

-- sp.formula: the parse as a table -------------------------------------------
local f = sp.formula("log(y) ~ x1 + l(x1, 1:2) + a*b + i(region, ref = \"West\") | id + id^t | w ~ z")
T.check(f.lhs.kind == "call" and f.lhs.name == "log(y)" and f.lhs.args[1].var == "y", "lhs log(y)")
local names = {}
for i, t in ipairs(f.rhs) do names[i] = t.name end
T.check(table.concat(names, ",") == "x1,l(x1, 1),l(x1, 2),a,b,a:b,i(region, ref = West)",
        "rhs term names", table.concat(names, ","))
T.check(f.rhs[2].kind == "lag" and f.rhs[2].k == 1 and f.rhs[3].k == 2, "l(x1, 1:2) expands to two lags")
T.check(f.rhs[6].kind == "interaction" and #f.rhs[6].args == 2, "a:b is an interaction of two")
T.check(f.rhs[7].kind == "factor" and f.rhs[7].ref == "West", "i() with ref")
T.check(#f.fe == 2 and f.fe[2].kind == "combine" and f.fe[2].name == "id^t", "fixed effects with id^t")
T.check(#f.endog == 1 and f.endog[1].name == "w" and f.inst[1].name == "z", "IV part")
T.check(f.intercept == true and f.nparts == 3, "intercept and parts")
T.check(table.concat(f.vars, ",") == "y,x1,a,b,region,id,t,w,z", "vars", table.concat(f.vars, ","))
T.check(sp.formula("y ~ x - 1").intercept == false, "- 1 drops the intercept")
T.check(#sp.formula("y ~ x | w ~ z").fe == 0, "two parts with ~: regressors | IV")

-- parse errors carry the column and a caret
local msg = T.checkerr("formula:1:10: expected a variable name after '%+'", sp.formula, "y ~ x1 + + x2")
T.check(msg:find("\n  y ~ x1 %+ %+ x2\n           %^") ~= nil, "caret line", msg)
T.checkerr("unknown function 'lg'; did you mean 'log'%?", sp.formula, "y ~ lg(x)")
T.checkerr("unbalanced parentheses", sp.formula, "y ~ log(x))")
T.checkerr("at most three parts", sp.formula, "y ~ x | a | b ~ c | d")
T.checkerr("expected '~' after the dependent variable", sp.formula, "y x")
local ok, e = pcall(sp.formula, "y ~ x + + z")
T.check(not ok and type(e) == "table" and e.col == 9 and e.line == 1 and e.code == "parse error",
        "error object has line, col and code")

-- sp.design on a small panel ---------------------------------------------------
local d = sp.frame{
  id = {1, 1, 1, 1, 2, 2, 2, 3},
  year = {2000, 2001, 2003, 2004, 2000, 2001, 2002, 2000},
  y = {10.5, 11, 12.25, 13, 14, 15.5, 16, 17},
  x = {1, 2, 3, 4, 5, 6, 7, 8},
  z = {0.5, 1, 0/0, 2, 4, 8, 16, 32},
  v = {1, 0, 2, -1, 3, 4, 5, 6},
  region = {"West", "East", "North", "West", "East", "North", "West", "East"},
}

local des = sp.design(d, "y ~ x + z")
T.check(des.n == 7 and des.k == 3 and des.dropped == 1, "listwise deletion: 7 rows, 3 columns")
T.check(table.concat(des.names, ",") == "(Intercept),x,z", "names")
T.check(table.concat(des.rows, ",") == "1,2,4,5,6,7,8", "rows are 1-based frame rows")
T.check(des.X == des.X, "des.X is the same matrix each time")
T.check(rawequal(des.X, des.X), "des.X is the same userdata each time")
T.check(des.X:get(3, 3) == 2 and des.X:get(3, 1) == 1 and des.y:get(7, 1) == 17, "X and y values")
T.check(des.yname == "y" and des.endog == nil and des.inst == nil and des.endog_names == nil, "no IV part")
T.check(des.intercept == true and #des.fe == 0 and #des.notes == 0, "intercept, no fe, no notes")
T.check(tostring(des):find("spillover.design: y on 7 rows x 3 columns") ~= nil, "tostring", tostring(des))

-- lags need the panel, and respect the gap of id 1 in 2002
T.checkerr("formula:1:5: l%(x, 1%) needs a panel: call d:panel{entity=, time=}", sp.design, d, "y ~ l(x, 1)")
d:panel{entity = "id", time = "year"}
local lag = sp.design(d, "y ~ l(x, 1) - 1")
T.check(table.concat(lag.rows, ",") == "2,4,6,7", "l(x, 1) is missing across the gap", table.concat(lag.rows, ","))
T.check(lag.X:get(2, 1) == 3 and lag.dropped_derived == 4, "lag values and derived drops")

-- factors, fixed effects, IV, extras
local fac = sp.design(d, "y ~ i(region) + i(region, x, ref = \"West\")")
T.check(table.concat(fac.names, ",") ==
        "(Intercept),region::North,region::West,region::East:x,region::North:x",
        "factor dummies and slopes", table.concat(fac.names, ","))
local fe = sp.design(d, "y ~ x | id + year | z ~ v", {extra = {"region"}})
T.check(fe.k == 1 and fe.intercept == false, "fixed effects drop the intercept")
T.check(fe.fe[1].name == "id" and fe.fe[1].nlevels == 3 and fe.fe[2].nlevels == 4, "fe levels over the used rows (2003 dropped)")
T.check(fe.endog:get(1, 1) == 0.5 and fe.inst:get(1, 1) == 1 and fe.endog_names[1] == "z" and fe.inst_names[1] == "v",
        "endog and instruments")
local codes, L = fe:codes("region")
T.check(L == 3 and #codes == fe.n and codes[1] == 3 and codes[2] == 1, "extra codes are 1-based and sorted")
local yc = fe:codes("year")
T.check(yc[3] == 4, "fe codes")
T.checkerr("'nope' is not a fixed effect or extra variable", fe.codes, fe, "nope")
local ex = sp.design(d, "y ~ x", {extra = "v", intercept = false})
T.check(ex.k == 1 and ex:values("v"):get(4, 1) == -1, "extra values; intercept = false")
T.checkerr("is categorical", fe.values, fe, "region")

-- log of non-positive values: noted, not fatal
local lg = sp.design(d, "y ~ log(v)")
T.check(lg.n == 6 and lg.notes[1] == "log(v): 2 non-positive values set to missing", "log note", lg.notes[1])

-- asinh: defined at zero and below, so every row stays and nothing is noted
local ih = sp.design(d, "asinh(y) ~ asinh(v) - 1")
T.check(ih.n == d:nrow() and #ih.notes == 0 and ih.names[1] == "asinh(v)" and ih.yname == "asinh(y)", "asinh design")
for i = 1, d:nrow() do
  T.near(ih.X:get(i, 1), math.log(d.v[i] + math.sqrt(d.v[i] ^ 2 + 1)), 1e-15, "asinh(v) row " .. i)
end
T.near(sp.eval(d, "asinh(v)"):get(4, 1), math.log(-1 + math.sqrt(2)), 1e-15, "sp.eval asinh(-1)")
T.check(sp.formula("asinh(y) ~ x").lhs.fn == "asinh", "asinh response is a call")
T.checkerr("unknown function 'ihs'; did you mean 'asinh'%?", sp.formula, "y ~ ihs(x)")

-- design-time errors
T.checkerr("formula:1:5: unknown variable 'xx'; did you mean 'x'%?", sp.design, d, "y ~ xx")
-- one suggestion rule for every unknown-name message: two wrong letters out of two suggest nothing
T.checkerr("unknown variable 'qq' %(not a column of the frame%)", sp.design, d, "y ~ qq")
T.checkerr("unknown extra variable 'qq' %(not a column of the frame%)$", sp.design, d, "y ~ x", {extra = "qq"})
T.checkerr("'region' is categorical but a number is needed here; use i%(region%)", sp.design, d, "y ~ region")
T.checkerr("reference level 'South' is not a level of 'region'", sp.design, d, "y ~ i(region, ref = \"South\")")
T.checkerr("unknown extra variable 'regoin'; did you mean 'region'%?", sp.design, d, "y ~ x", {extra = {"regoin"}})
T.checkerr("no complete rows", sp.design, d, "y ~ log(v - 10)")
T.checkerr("extra%[1%] must be a variable name", sp.design, d, "y ~ x", {extra = {1}})
T.checkerr("intercept must be true or false", sp.design, d, "y ~ x", {intercept = 1})
T.checkerr("design: unknown option 'intercpt' %(expected intercept, extra, threads%)", sp.design, d, "y ~ x",
           {intercpt = false})
T.checkerr("threads must be 1 or 2", sp.design, d, "y ~ x", {threads = 3})
T.checkerr("threads must be 1 or 2", sp.design, d, "y ~ x", {threads = 1.5})
T.checkerr("threads must be 1 or 2", sp.design, d, "y ~ x", {threads = "2"})
T.check(sp.design(d, "y ~ x", {threads = 2.0}).n == sp.design(d, "y ~ x").n, "design: threads = 2.0 is 2")
T.checkerr("the formula text contains a NUL byte", sp.design, d, "y ~ x\0 + qq")
T.checkerr("the formula text contains a NUL byte", sp.formula, "y ~ x\0 + qq")
T.checkerr("expected a formula string or an sp.formula table", sp.design, d, {text = 5})
T.checkerr("expected a variable name after '%+'", sp.design, d, "y ~ x +")

-- the design outlives its frame (detached once filled)
local keep = sp.design(sp.frame{y = {1, 2, 3}, x = {3, 1, 2}}, "y ~ x")
collectgarbage()
collectgarbage()
T.check(keep.X:get(2, 2) == 1 and keep.n == 3, "design usable after its frame is collected")

-- Produc: the classic specification
local produc = sp.read_csv("tests/reference/data/Produc.csv")
local p = sp.design(produc, "log_gsp ~ log_pcap + log_pc + log_emp + unemp")
T.check(p.n == 816 and p.k == 5, "Produc design is 816 x 5")
T.near(p.X:get(1, 2), 9.617981111680646, 1e-15, "Produc X[1, log_pcap]")
local pf = sp.design(produc, "log_gsp ~ log_pcap + log_pc + log_emp + unemp | state + year")
T.check(pf.k == 4 and pf.fe[1].nlevels == 48 and pf.fe[2].nlevels == 17, "Produc two-way FE: 48 states, 17 years")

T.done()
