package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local F = require "spillover.formula"

-- the contract's example ------------------------------------------------------------
local f = F.parse("y ~ x1 + l(y, 1) + log(x2) | fe1 + fe2 | d ~ z1 + z2")
T.check(rawequal(sp.formula, F.parse), "sp.formula is the formula object's parse")
T.check(f.text == "y ~ x1 + l(y, 1) + log(x2) | fe1 + fe2 | d ~ z1 + z2", "text as given")
T.check(f:response() == "y", "response")
T.check(table.concat(f:terms(), ";") == "x1;l(y, 1);log(x2)", "terms", table.concat(f:terms(), ";"))
T.check(table.concat(f:fe(), ";") == "fe1;fe2", "fe()")
local iv = f:iv()
T.check(iv and table.concat(iv.endogenous) == "d" and table.concat(iv.instruments, ";") == "z1;z2", "iv()")
T.check(table.concat(f:vars(), ",") == "y,x1,x2,fe1,fe2,d,z1,z2", "vars()", table.concat(f:vars(), ","))
T.check(table.concat(f:response_lags(), ",") == "1", "response_lags")
T.check(f:has_intercept() == true, "has_intercept")
-- the old table fields stay readable next to the methods of the same name
T.check(#f.fe == 2 and f.fe[2].name == "fe2" and f.fe[1].kind == "var", "f.fe is still the list of nodes")
T.check(table.concat(f.vars, ",") == "y,x1,x2,fe1,fe2,d,z1,z2", "f.vars is still the list of names")
T.check(f.lhs.kind == "var" and f.rhs[2].kind == "lag" and f.endog[1].name == "d" and f.nparts == 3,
        "lhs, rhs, endog, nparts")
T.check(F.parse("y ~ x"):iv() == nil and #F.parse("y ~ x"):fe() == 0, "no IV part, no fixed effects")

-- responses and their lags
local g = F.parse("log(gsp) ~ l(log(gsp), 2) + d(log(gsp)) + f(log(gsp), -3) + l(gsp, 1):x + f(log(gsp), 1)")
T.check(g:response() == "log(gsp)" and table.concat(g:response_vars()) == "gsp", "response as written and its vars")
T.check(table.concat(g:response_lags(), ",") == "1,2,3", "lags, differences and negative leads of the response",
        table.concat(g:response_lags(), ","))
T.check(#F.parse("y ~ l(x, 1) + f(y, 1)"):response_lags() == 0, "a lag of another variable or a lead: no lag")
T.check(table.concat(F.parse("y ~ x | l(y, 2) ~ z"):response_lags(), ",") == "2", "a lag in the IV part counts")
local nr = F.parse("~ x + w")
T.check(nr:response() == nil and #nr:response_vars() == 0 and #nr:response_lags() == 0, "no response")
T.checkerr("expected the dependent variable before '~'", sp.design, sp.frame{ x = { 1, 2 } }, "~ x")

-- a design without a response: X alone, rows kept where only the response is missing
local d = sp.frame { y = { 1, 0 / 0, 3, 4 }, x = { 1, 2, 0 / 0, 5 }, g = { 1, 1, 2, 2 } }
local xo = sp.design(d, F.parse("y ~ x | g"):without_response())
T.check(xo.y == nil and xo.yX == nil and xo.yname == nil, "no y, yX or yname")
T.check(xo.n == 3 and table.concat(xo.rows, ",") == "1,2,4" and xo.X:get(2, 1) == 2 and #xo.fe == 1,
        "X over the rows where x and g exist", table.concat(xo.rows, ","))
T.check(tostring(xo):find("no response on 3 rows x 1 columns") ~= nil, "tostring", tostring(xo))
T.check(sp.design(d, F.parse("~ x")).intercept == true, "with its intercept")

-- rewrites return new objects and leave the original alone
T.check(tostring(f:without_response()) == "~ x1 + l(y, 1) + log(x2) | fe1 + fe2 | d ~ z1 + z2", "without_response")
T.check(tostring(f:without_fe()) == "y ~ x1 + l(y, 1) + log(x2) | d ~ z1 + z2", "without_fe")
T.check(tostring(f:without_iv()) == "y ~ x1 + l(y, 1) + log(x2) + d | fe1 + fe2", "without_iv")
T.check(tostring(f:with_terms { "x3", "x1", "a*b" }) ==
        "y ~ x1 + l(y, 1) + log(x2) + x3 + a + b + a:b | fe1 + fe2 | d ~ z1 + z2", "with_terms (duplicates dropped)")
T.check(tostring(f:without_terms { "x1", "log(x2)" }) == "y ~ l(y, 1) | fe1 + fe2 | d ~ z1 + z2", "without_terms")
T.check(tostring(f:with_fe { "g", "a^b" }) == "y ~ x1 + l(y, 1) + log(x2) | fe1 + fe2 + g + a^b | d ~ z1 + z2",
        "with_fe")
T.check(tostring(f:with_response("log(z)")) == "log(z) ~ x1 + l(y, 1) + log(x2) | fe1 + fe2 | d ~ z1 + z2",
        "with_response")
T.check(f:with_fe({ F.quote("my id") }):fe()[3] == "my id", "with_fe of a quoted column name")
T.check(tostring(f) == "y ~ x1 + l(y, 1) + log(x2) | fe1 + fe2 | d ~ z1 + z2", "the original is unchanged")
T.check(tostring(F.parse("y ~ x"):without_terms { "x" }) == "y ~ 1", "every term removed leaves the intercept")
T.check(tostring(F.parse("y ~ x - 1"):with_terms { "z" }) == "y ~ x + z - 1", "no intercept is kept")
T.check(tostring(F.parse("y ~ 0 + x"):without_terms { "x" }) == "y ~ 0", "no terms and no intercept")
T.check(F.parse("y ~ x"):with_terms(F.parse("z ~ l(w, 1:2)").rhs):terms()[3] == "l(w, 2)", "nodes of another formula")
T.checkerr("with_terms: 'x %+' is not a formula term %(expected a variable name", f.with_terms, f, { "x +" })
T.checkerr("with_terms: '0' is not a term", f.with_terms, f, { "0" })
T.checkerr("with_terms: 'a | b' is not a term", f.with_terms, f, { "a | b" })
T.checkerr("with_terms: expected a list of terms", f.with_terms, f, "x3")
T.checkerr("without_terms: 'x9' is not a term of 'y ~ x1", f.without_terms, f, { "x9" })
T.checkerr("with_fe: expected variable names or combinations a%^b, found {log%(x%)}", f.with_fe, f, { "log(x)" })
T.checkerr("with_response: expected a response such as", f.with_response, f, "y ~ x")
T.checkerr("with_response: expected a response such as .*found nil", f.with_response, f)
T.checkerr("formula: expected a formula string", F.parse, 5)
T.check(rawequal(F.parse(f), f) and F.is_formula(f) and not F.is_formula({}), "parse of an object is the object")

-- building from parts, and terms back as text
local b = F.build { response = F.quote("ln y"), terms = { F.quote("x 1"), "lngdp + urban", "a*b" }, fe = { "province + year" } }
T.check(tostring(b) == "`ln y` ~ `x 1` + lngdp + urban + a + b + a:b | province + year", "build", tostring(b))
T.check(tostring(F.build { terms = { "x" }, intercept = false }) == "~ x - 1", "build without a response")
T.check(tostring(F.build { response = "y" }) == "y ~ 1", "build with no terms")
T.checkerr("formula.build: expected a response", F.build, { response = "y ~ x" })
T.checkerr("formula.build: 'a |' is not a formula term", F.build, { response = "y", terms = { "a |" } })
T.check(F.format_term(b.rhs[1]) == "`x 1`" and F.format_term(b.fe[2]) == "year", "format_term quotes names")
T.checkerr("expected a term of a formula", F.format_term, "x")
T.check(#F.parse("y ~ x"):with_fe({}):fe() == 0, "with_fe of no fixed effects")

-- quoting
T.check(F.quote("x1") == "x1" and F.quote("gdp growth") == "`gdp growth`" and F.quote(".5a") == "`.5a`"
        and F.quote("1x") == "`1x`" and F.quote(".a") == ".a" and F.quote("über") == "über", "quote")
T.checkerr("contains a backquote", F.quote, "a`b")

-- round trips: the canonical text parses back to an equal formula ------------------------
local function roundtrip(text, what)
  local a = F.parse(text)
  local s = tostring(a)
  local ok, b = pcall(F.parse, s)
  return ok and a == b and tostring(b) == s, (what or text) .. " => " .. s
end
local fuzz = {
  "`my y` ~ `a b` + log(`c d`) + `a b`:`c d` | `id x`^year",
  "y ~ i(f, ref = \"x\") + i(g, x, ref = 'a\"b') + i(h, ref = -1) + i(k, ref = \"\")",
  "y ~ l(x, 1:3) + l(x, -2:-1) + f(x, 2) + d(x) + d(x, 3) + log(l(x, 1))",
  "y ~ x - 1", "y ~ 0 + x", "y ~ -1 + x", "y ~ 0", "y ~ 1", "y ~ x + 1 - 0",
  "y ~ a*b*c - a:b:c", "y ~ a:b:c + b:a",
  "y ~ I(-x^2) + I((-x)^2) + I(2^-x) + I(a - -b) + I(a^b^c) + I(a/(b/c)) + I(1e-5 * x) + I(.5 + x)",
  "y ~ I(exp(abs(x)) - sqrt(x)/3)", "log(y) ~ x", "(y) ~ x", "I(y / 2) ~ x", "1 ~ x",
  "y ~ x | fe1 + fe1^fe2", "y ~ x | 0 | d ~ z", "y ~ x | d ~ z1 + z2", "y ~ x | fe | d1 + log(d2) ~ z1 + l(z2, 1)",
  "~ x", "~ 1 | g", "~ x | d ~ z",
  "y~x+ l( x ,1 )|fe", "y ~ .x + x.y + _z + `1st` + `.9`", "ÿ ~ über",
}
for _, text in ipairs(fuzz) do T.check(roundtrip(text)) end

-- every formula written in the tests, docs, scenarios and examples
local function files(dir, out)
  for _, name in ipairs(sp.sys.listdir(dir)) do
    local path = dir .. "/" .. name
    if sp.sys.isdir(path) then files(path, out)
    elseif name:match("%.lua$") or name:match("%.md$") or name:match("%.ya?ml$") then out[#out + 1] = path end
  end
  return out
end
local function candidates(text, out)
  -- quoted strings (with \" escapes undone), `code spans` and YAML formula: values
  local i = 1
  while true do
    local s, q = text:match("()([\"'])", i)
    if not s then break end
    local j, buf = s + 1, {}
    while j <= #text do
      local c = text:sub(j, j)
      if c == "\\" then buf[#buf + 1] = text:sub(j + 1, j + 1); j = j + 2
      elseif c == q or c == "\n" then break
      else buf[#buf + 1] = c; j = j + 1 end
    end
    local str = table.concat(buf)
    if str:find("~", 1, true) then out[#out + 1] = str end
    i = j + 1
  end
  for span in text:gmatch("`([^`\n]*~[^`\n]*)`") do out[#out + 1] = span end
  for v in text:gmatch("formula:%s*([^\n#]*~[^\n#]*)") do out[#out + 1] = (v:gsub("^[\"']", ""):gsub("[\"']%s*$", "")) end
end
local seen, parsed, bad = {}, 0, {}
for _, dir in ipairs { "tests/lua", "tests/reference", "docs", "scenarios", "examples" } do
  for _, path in ipairs(files(dir, {})) do
    local list = {}
    candidates(T.read(path), list)
    for _, c in ipairs(list) do
      if not seen[c] and pcall(F.parse, c) then
        seen[c] = true
        parsed = parsed + 1
        local ok, what = roundtrip(c, path .. ": " .. c)
        if not ok then bad[#bad + 1] = what end
      end
    end
  end
end
T.check(parsed >= 100, "found the formulas of the tests and docs", parsed .. " parsed")
T.check(#bad == 0, "every formula of the tests and docs round-trips (" .. parsed .. ")", table.concat(bad, "\n"))

T.done()
