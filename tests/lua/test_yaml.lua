-- test_yaml: sp.yaml.load/load_file/dump: core-schema typing, positions,
-- every documented error, round trips through dump, UTF-8.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local Y = sp.yaml
local null = Y.null

local function deq(a, b)
  if a == b then return true end
  if type(a) == "number" and type(b) == "number" then
    return (a ~= a and b ~= b) or (a == b and math.type(a) == math.type(b))
  end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  -- Only empty tables need the marker to tell a sequence from a map.
  if next(a) == nil and next(b) == nil then return Y.is_seq(a) == Y.is_seq(b) end
  for k, v in pairs(a) do if not deq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- ---- scalar typing (YAML 1.2 core schema, plain scalars only) -------------
local v = Y.load([[
n1: null
n2: ~
n3:
n4: NULL
b1: true
b2: False
b3: yes
i1: 2020
i2: -17
i3: +5
i4: 0o17
i5: 0x1F
i6: 123456789012345678901234
f1: 1.5
f2: 1e3
f3: .5
f4: -.inf
f5: .NaN
f6: +.inf
s1: +20%
s2: "2020"
s3: '+20%'
s4: 1_000
s5: log(patents)
s6: region == "west"
s7: "true"
s8: !!str 2020
f7: !!float 3
i7: !!int 42
lit: |
  line one
  line two
fold: >
  folded
  text
]], "types.yaml")
T.check(v.n1 == null and v.n2 == null and v.n3 == null and v.n4 == null, "null, ~, empty and NULL are sp.yaml.null")
T.check(tostring(null) == "null", "null prints as null")
T.check(sp.json.encode({ x = null }) == '{"x":null}', "sp.yaml.null encodes as JSON null", sp.json.encode({ x = null }))
do
  -- A cycle is a clear error (it overflowed the C stack); a table shared twice is not a cycle.
  local cyc = {}
  cyc.self = cyc
  T.checkerr("json.encode: a table contains itself", sp.json.encode, cyc)
  local shared = { 1 }
  T.check(sp.json.encode({ a = shared, b = shared }) == '{"a":[1],"b":[1]}', "a shared table encodes twice")
end
T.check(v.b1 == true and v.b2 == false, "true/False are booleans")
T.check(v.b3 == "yes", "yes is a string (1.2 core schema, not 1.1)")
T.check(math.type(v.i1) == "integer" and v.i1 == 2020, "2020 is an integer")
T.check(v.i2 == -17 and v.i3 == 5, "signed integers")
T.check(v.i4 == 15 and v.i5 == 31, "octal 0o and hex 0x integers")
T.check(math.type(v.i6) == "float" and v.i6 > 1e23, "an integer beyond 64 bits becomes a float")
T.check(math.type(v.f1) == "float" and v.f1 == 1.5, "1.5 is a float")
T.check(math.type(v.f2) == "float" and v.f2 == 1000, "1e3 is a float")
T.check(v.f3 == 0.5, ".5 is a float")
T.check(v.f4 == -math.huge and v.f6 == math.huge, "-.inf and +.inf")
T.check(v.f5 ~= v.f5, ".NaN is NaN")
T.check(v.s1 == "+20%", "plain +20% is a string")
T.check(v.s2 == "2020" and v.s3 == "+20%", "quoted scalars are strings")
T.check(v.s4 == "1_000", "1_000 is a string in the 1.2 core schema")
T.check(v.s5 == "log(patents)" and v.s6 == 'region == "west"', "expressions are strings")
T.check(v.s7 == "true", "quoted true is a string")
T.check(v.s8 == "2020", "!!str 2020 is a string")
T.check(math.type(v.f7) == "float" and v.f7 == 3, "!!float 3 is a float")
T.check(math.type(v.i7) == "integer" and v.i7 == 42, "!!int 42 is an integer")
T.check(v.lit == "line one\nline two\n", "literal block scalar")
T.check(v.fold == "folded text\n", "folded block scalar")

-- ---- sequences and maps -------------------------------------------------------
v = Y.load("a: []\nb: {}\nc: [1, two, 3.0]\nd:\n  - x\n  - [y, z]\n")
T.check(Y.is_seq(v.a) and not Y.is_seq(v.b), "empty sequence and empty map are distinguishable")
T.check(next(v.a) == nil and next(v.b) == nil, "both are empty tables")
T.check(Y.is_seq(v.c) and #v.c == 3 and v.c[2] == "two" and math.type(v.c[3]) == "float", "flow sequence")
T.check(v.d[1] == "x" and Y.is_seq(v.d[2]) and v.d[2][2] == "z", "nested sequences")
T.check(not Y.is_seq(v) and not Y.is_seq("x"), "is_seq is false for maps and non-tables")
T.check(Y.is_seq(Y.seq()) and Y.is_seq(Y.seq({ 1 })), "sp.yaml.seq marks a table")
T.check(Y.load("[1, 2]")[2] == 2, "a sequence at the root")
T.check(Y.load("42") == 42 and Y.load("hello") == "hello", "a scalar at the root")
local e, epos = Y.load("")
T.check(e == null and epos[""].line == 1, "empty text is a null document")
T.check(Y.load("# only a comment\n") == null, "a comment-only document is null")

-- ---- positions ------------------------------------------------------------------
local scen = [[
name: test
models:
  main: {estimator: sdm, formula: y ~ x}
derive:
  dige:
    entropy: [a, b, c]
experiments:
  west:
    shock:
      change: "+20%"
]]
local doc, pos = Y.load(scen, "scenario.yaml")
local function at(path) local p = pos[path]; return p and (p.line .. ":" .. p.col) or "none" end
T.check(at("") == "1:1", "root position", at(""))
T.check(at("name") == "1:7" and at("name#key") == "1:1", "value and key positions", at("name") .. " " .. at("name#key"))
T.check(at("models.main.formula") == "3:35", "flow mapping value position", at("models.main.formula"))
T.check(at("models.main.formula#key") == "3:26", "flow mapping key position", at("models.main.formula#key"))
T.check(at("derive.dige.entropy[3]") == "6:21", "sequence item position", at("derive.dige.entropy[3]"))
T.check(at("derive.dige.entropy") == "6:14", "sequence position", at("derive.dige.entropy"))
T.check(at("experiments.west.shock.change") == "10:15", "deep value position", at("experiments.west.shock.change"))
T.check(doc.experiments.west.shock.change == "+20%", "quoted +20% stays a string")
local np = Y.load("- a\n- [b, c]\n")
local _, p2 = Y.load("- a\n- [b, c]\n")
T.check(p2["[2][1]"] and p2["[2][1]"].line == 2 and p2["[2][1]"].col == 4, "root sequence paths are [i][j]")
T.check(np[2][1] == "b", "nested flow item")

-- ---- UTF-8 ------------------------------------------------------------------
local zh, zpos = Y.load("标题: 宽带基础设施\n地区: [东部, 西部]\n")
T.check(zh["标题"] == "宽带基础设施", "Chinese key and value")
T.check(zh["地区"][2] == "西部", "Chinese sequence item")
T.check(zpos["地区[2]"] and zpos["地区[2]"].line == 2, "positions under Chinese keys")
T.check(zpos["标题"].col == 5, "columns count characters, not bytes", tostring(zpos["标题"].col))

-- ---- errors -------------------------------------------------------------------
T.checkerr("scenario%.yaml:2:5: mapping values are not allowed in this context",
           Y.load, "a: 1\nb: c: d\n", "scenario.yaml")
T.checkerr("s%.yaml:3:1: did not find expected ',' or ']' %(while parsing a flow sequence at line 2, column 4%)",
           Y.load, "a: 1\nb: [1\n", "s.yaml")
T.checkerr("s%.yaml:2:1: duplicate key 'a' %(first defined at line 1, again at line 2%)",
           Y.load, "a: 1\na: 2\n", "s.yaml")
T.checkerr("s%.yaml:3:3: duplicate key 'x' %(first defined at line 2, again at line 3%)",
           Y.load, "m:\n  x: 1\n  x: {}\n", "s.yaml")
T.checkerr("s%.yaml:2:4: aliases are not supported %(%*x%)", Y.load, "a: 1\nb: *x\n", "s.yaml")
T.checkerr("s%.yaml:1:4: anchors are not supported %(&x%)", Y.load, "a: &x 1\nb: *x\n", "s.yaml")
T.checkerr("s%.yaml:2:1: multiple documents in one file are not supported",
           Y.load, "a: 1\n---\nb: 2\n", "s.yaml")
T.checkerr("s%.yaml:1:3: mapping keys must be plain or quoted strings, not a sequence or mapping",
           Y.load, "? [a, b]\n: 1\n", "s.yaml")
T.checkerr("s%.yaml:1:4: invalid leading UTF%-8 octet %(byte 0xFF at offset 3; YAML text must be UTF%-8%)",
           Y.load, "a: \255\n", "s.yaml")
T.checkerr("s%.yaml:1:4: 'abc' is not a valid !!int", Y.load, "a: !!int abc\n", "s.yaml")
T.checkerr("s%.yaml:1:4: unsupported tag '!money'", Y.load, "a: !money 12\n", "s.yaml")
T.checkerr("s%.yaml:1:4: unsupported tag 'tag:yaml.org,2002:set' on a collection", Y.load, "a: !!set {x: 1}\n", "s.yaml")
T.checkerr("nesting deeper than 256 levels", Y.load, string.rep("[", 300) .. string.rep("]", 300), "s.yaml")
T.checkerr("<yaml>:1:7: mapping values", Y.load, "a:b: c: d")
T.checkerr("bad argument #1 .*string expected, got nil", Y.load, nil)
T.checkerr("bad argument #2 .*string expected, got table", Y.load, "a: 1", {})

-- The error object carries its parts.
local ok, err = pcall(Y.load, "a: 1\na: 2\n", "dup.yaml")
T.check(not ok and type(err) == "table", "errors are spillover.error tables")
T.check(err.file == "dup.yaml" and err.line == 2 and err.col == 1 and err.var == "a",
        "error fields file/line/col/var", tostring(err))
T.check(err.code == "parse error", "error code is parse error", tostring(err.code))

-- Errors in the middle of a parse leak nothing (checked under ASan), and the
-- parser never reads a collected input string.
for i = 1, 200 do
  pcall(Y.load, "a:\n  b: [1, 2, {c: " .. i .. "}]\n  b: 2\n", "leak.yaml")
  pcall(Y.load, string.rep("- ", 20) .. "x: y: z", "leak.yaml")
end
collectgarbage()
T.check(true, "200 failing parses collected")

-- Mutated scenarios (a deterministic mini-fuzz): every outcome is a value or
-- a positioned spillover.error, never a crash or a bare string.
do
  local seed, bad = 12345, 0
  local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
  local alphabet = { ":", "-", "[", "]", "{", "}", "\n", " ", "&", "*", "#", "'", '"', "!", "?", "|", ">", "\t", "%", "@", "\0", "\200" }
  for _ = 1, 600 do
    local t = scen
    for _ = 1, rnd(4) do
      local i = rnd(#t)
      t = t:sub(1, i - 1) .. alphabet[rnd(#alphabet)] .. t:sub(i + 1)
    end
    local ok2, r = pcall(Y.load, t, "fuzz.yaml")
    if not ok2 and not (type(r) == "table" and r.file == "fuzz.yaml" and (r.line or 0) >= 1) then
      bad = bad + 1
      if bad == 1 then print("unexpected outcome: " .. tostring(r)) end
    end
    if ok2 then pcall(Y.dump, r) end
  end
  T.check(bad == 0, "600 mutated scenarios: values or positioned errors", tostring(bad))
end

-- ---- load_file ------------------------------------------------------------------
local dir = assert(sp.sys.mkdtemp("/tmp/sp_yaml_test_"))
local path = dir .. "/scenario.yaml"
local fh = assert(io.open(path, "w"))
fh:write(scen)
fh:close()
local fdoc, fpos = Y.load_file(path)
T.check(deq(fdoc, doc) and fpos["experiments.west.shock.change"].line == 10, "load_file equals load")
fh = assert(io.open(path, "w"))
fh:write("name: x\nmodels:\n  main: {formula: y ~ x\n")
fh:close()
T.checkerr(path:gsub("%p", "%%%0") .. ":4:1: did not find expected ',' or '}'", Y.load_file, path)
local nv, nmsg, nerr = Y.load_file(dir .. "/missing.yaml")
T.check(nv == nil and nmsg:find("missing.yaml: No such file or directory", 1, true) and nerr == 2,
        "load_file of a missing file: nil, message, errno", tostring(nmsg))
local dv, dmsg = Y.load_file(dir)
T.check(dv == nil and dmsg:find("Is a directory", 1, true), "load_file of a directory: nil, message", tostring(dmsg))
T.checkerr("bad argument #1 .*string expected, got boolean", Y.load_file, 42 < 0)
-- Regular files only: a FIFO without a writer used to block for ever, and
-- /dev/zero to read until memory ran out.
local fifo = dir .. "/pipe.yaml"
assert(os.execute("mkfifo " .. fifo))
local pv, pmsg, perr = Y.load_file(fifo)
T.check(pv == nil and pmsg == fifo .. ": not a regular file (a FIFO, device or socket): expected a YAML file" and perr == 22,
        "load_file of a FIFO: nil, message, EINVAL at once", tostring(pmsg))
local zv, zmsg = Y.load_file("/dev/zero")
T.check(zv == nil and zmsg:find("^/dev/zero: not a regular file"), "load_file of /dev/zero: nil, message", tostring(zmsg))

-- A leading UTF-8 byte-order mark (Notepad writes one) is skipped, in files
-- and strings; positions count from the first character after it.  It used
-- to shift the first line by one column, so a second key failed to parse.
fh = assert(io.open(path, "wb"))
fh:write("\xEF\xBB\xBFname: 西部\nmodels:\n  main: {formula: y ~ x}\n")
fh:close()
local bdoc, bpos = Y.load_file(path)
T.check(bdoc and bdoc.name == "西部" and bdoc.models.main.formula == "y ~ x", "load_file skips a UTF-8 BOM")
T.check(bpos and bpos["name#key"].col == 1 and bpos["models#key"].col == 1 and bpos["models.main.formula"].line == 3,
        "positions after a BOM start at column 1")
local sdoc = Y.load("\xEF\xBB\xBFa: 1\nb: 2\n")
T.check(sdoc.a == 1 and sdoc.b == 2, "load skips a UTF-8 BOM in a string")

-- ---- dump -------------------------------------------------------------------------
local text = Y.dump(doc)
T.check(text == [[
derive:
  dige:
    entropy:
      - a
      - b
      - c
experiments:
  west:
    shock:
      change: +20%
models:
  main:
    estimator: sdm
    formula: y ~ x
name: test
]], "dump: block style, sorted keys", text)
T.check(deq(Y.load(text), doc), "dump round trip of a scenario")
T.check(Y.dump(doc) == text, "dump is deterministic")

local tricky = {
  empty = "", null_word = "null", tilde = "~", yes = "true", year = "2020", float = "1.5", inf = ".inf",
  colon = "a: b", hash = "x #y", lead = " x", trail = "x ", dash = "- x", q = "?x", star = "*x",
  amp = "&x", bang = "!x", pct = "%x", at = "@x", brace = "{x}", quote = "'x'", dq = '"x"',
  nl = "two\nlines", tab = "a\tb", ctl = "bell\7", bs = "back\\slash", dots = "...", dashes = "---",
  zh = "数字经济指数", nel = "a\u{85}b", ls = "a\u{2028}b", bom = "\u{FEFF}x", colon_end = "x:",
  int = 7, neg = -3, big = math.maxinteger, f = 3.0, tiny = 1e-300, third = 1 / 3, ninf = -math.huge,
  nan = 0 / 0, t = true, fl = false, nul = null,
  seq = { 1, { 2, 3 }, { k = "v", j = { "w" } }, Y.seq(), {} },
  emptyseq = Y.seq(), emptymap = {},
  ["key with: colon"] = 1, ["中文键"] = "值", ["2020"] = "year key",
}
local back = Y.load(Y.dump(tricky))
for k, val in pairs(tricky) do
  T.check(deq(back[k], val), "dump round trip of " .. k, tostring(back[k]))
end
T.check(Y.dump(tricky.seq):find("^%- 1\n%- %- 2\n  %- 3\n%- j:\n") ~= nil, "nested sequences and maps in sequences",
        Y.dump(tricky.seq))
T.check(Y.dump(42) == "42\n" and Y.dump(null) == "null\n" and Y.dump({}) == "{}\n" and Y.dump(Y.seq()) == "[]\n",
        "dump of root scalars and empty containers")
T.check(Y.dump(3.0) == "3.0\n" and Y.dump(0.1) == "0.1\n", "floats: shortest round-trip form, .0 kept")

T.checkerr("yaml%.dump: cannot write a function value at 'a%.b' %(expected", Y.dump, { a = { b = print } })
T.checkerr("yaml%.dump: table at 'x' mixes key types", Y.dump, { x = { 1, 2, k = 3 } })
T.checkerr("yaml%.dump: table at '%[2%]' mixes key types", Y.dump, { 1, { [3] = 1 } })
T.checkerr("yaml%.dump: string at 's' is not valid UTF%-8 %(byte 2%)", Y.dump, { s = "a\255" })
local cyc = {}
cyc.self = cyc
T.checkerr("yaml%.dump: nesting deeper than 256 at", Y.dump, cyc)

sp.sys.remove_tree(dir)
T.done()
