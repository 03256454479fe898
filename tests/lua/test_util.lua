package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local util = require "spillover.util"

-- ---- type-7 quantile (R: quantile(c(1, 2, 3, 4, 10), c(0, .3, .5, .9, 1))) --------------
local s = { 1, 2, 3, 4, 10 }
T.near(util.quantile(s, 0.3), 2.2, 1e-15, "quantile: p = .3")
T.near(util.quantile(s, 0.9), 7.6, 1e-15, "quantile: p = .9")
T.check(util.quantile(s, 0.5) == 3 and util.quantile(s, 0) == 1 and util.quantile(s, 1) == 10, "quantile: median and ends")
T.check(util.quantile(s, -1) == 1 and util.quantile(s, 2) == 10, "quantile: p outside [0, 1] clamps")
T.check(util.quantile({ 7 }, 0.25) == 7, "quantile: one value")
local e = util.quantile({}, 0.5)
T.check(e ~= e, "quantile: NaN for an empty array")

-- ---- key_of -----------------------------------------------------------------------------
T.check(util.key_of(2001) == "2001" and util.key_of(2001.0) == "2001", "key_of: integers as %d, float or not")
T.check(util.key_of(2.5) == "2.5" and util.key_of(1e300) == tostring(1e300), "key_of: other numbers by tostring")
T.check(util.key_of("West") == "West" and util.key_of(nil) == nil, "key_of: strings as they are")

-- ---- check_options ------------------------------------------------------------------------
T.check(next(util.check_options(nil, { "a" }, "f")) == nil, "check_options: nil gives {}")
local o = { tol = 1 }
T.check(util.check_options(o, { "tol", "maxiter" }, "f") == o, "check_options: returns the table")
T.check(util.check_options(o, { tol = true }, "f") == o, "check_options: a set of names works too")
-- (T.checkerr's pcall is the user's call here: the messages start with testlib.lua's position)
T.checkerr(": f: unknown option 'tl' %(expected one of maxiter, tol%); did you mean 'tol'%?$",
  util.check_options, { tl = 1 }, { "tol", "maxiter" }, "f")
T.checkerr(": f: unknown option 'zzz' %(expected one of maxiter, tol%)$", util.check_options, { zzz = 1 }, { "tol", "maxiter" }, "f")
T.checkerr(": f: expected an options table, got string$", util.check_options, "hc1", { "tol" }, "f")

-- ---- raise, message -------------------------------------------------------------------------
do
  local line = debug.getinfo(1, "l").currentline + 1
  local ok2, e = pcall(function() util.raise("f: bad", { var = "x", code = "not found" }) end)
  T.check(not ok2 and getmetatable(e).__name == "spillover.error", "raise: a spillover.error")
  T.check(e.msg == "f: bad" and e.text == "f: bad" and e.var == "x" and e.code == "not found",
    "raise: msg, text, var and code", e.text)
  T.check(e.where:sub(-#("test_util.lua:" .. line .. ": ")) == "test_util.lua:" .. line .. ": ",
    "raise: where is the user's line", e.where)
  T.check(tostring(e) == e.where .. "f: bad", "raise: tostring is where .. text")
  T.check(e:match("f: (%a+)") == "bad" and ("[" .. e):find("test_util.lua:", 1, true) ~= nil,
    "raise: string methods and .. work on the text, as they did when errors were strings")
  local _, p = pcall(util.raise, "g", { file = "s.yaml", line = 3, col = 7 })
  T.check(p.text == "s.yaml:3:7: g" and p.line == 3 and p.col == 7 and p.code == "bad value",
    "raise: a data position goes into text; the code defaults to 'bad value'", p.text)
  T.check(util.message(e) == "f: bad", "message: the text without where")
  T.check(util.message("spillover/ols.lua:12: x: y") == "x: y" and util.message("a.lua:3: z") == "a.lua:3: z",
    "message: strips positions inside spillover only")
end
-- the error points at the user's call (level 2 by default: the caller of the checking function)
local function api(opts) local checked = util.check_options(opts, { "tol" }, "api"); return checked end
local ok, msg = pcall(function() api({ tool = 1 }) end)
T.check(not ok and msg:match("^[^:]*test_util%.lua:%d+: api: unknown option 'tool'"), "check_options: located at the caller", msg)
T.check(util.options_problem({ tol = 1 }, { "tol" }) == nil and
  util.options_problem({ x = 1 }, { "tol" }) == "unknown option 'x' (expected one of tol)", "options_problem: without who")

-- ---- dot, panel_of ------------------------------------------------------------------------
local a, b = sp.matrix({ { 1 }, { 2 }, { 3 } }), sp.matrix({ { 4 }, { 5 }, { 6 } })
T.check(util.dot(a, b) == 32, "dot")
T.check(util.dot({ 1, 2, 3 }, { 4, 5, 6 }) == 32, "dot of Lua arrays")
local d = sp.frame{ id = { 1, 1, 2, 2 }, t = { 1, 2, 1, 2 }, y = { 1, 2, 3, 4 } }
T.check(util.panel_of(d) == nil, "panel_of: nil without an index")
T.check(util.panel_of(nil) == nil and util.panel_of(a) == nil and util.panel_of({}) == nil, "panel_of: nil for what is not a frame")
d:panel{ entity = "id", time = "t" }
T.check(util.panel_of(d).entity == "id" and util.panel_of(d).N == 2, "panel_of: the index")

T.done()
