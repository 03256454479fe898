package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"

local tmpdir = os.tmpname()
os.remove(tmpdir)
assert(os.execute("mkdir -p " .. tmpdir))
local function tmp(name, text)
  local p = tmpdir .. "/" .. name
  if text then
    local f = assert(io.open(p, "wb"))
    f:write(text)
    f:close()
  end
  return p
end
local function slurp(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- reading -------------------------------------------------------------------
local d = sp.read_csv("tests/reference/data/Produc.csv")
T.check(d:nrow() == 816 and d:ncol() == 18, "Produc.csv: 816 x 18")
T.check(d:names()[1] == "state" and d:names()[18] == "log_util", "Produc.csv: names in file order")
T.check(type(d.state) == "table" and d.state[1] == "ALABAMA" and d.state[816] == "WYOMING",
        "Produc.csv: state is categorical")

local raw = sp.read_csv("tests/reference/data/Produc.csv", {types = {log_gsp = "categorical"}, max_rows = 2})
T.check(raw:nrow() == 2 and raw.log_gsp[1] == "10.254778026198021", "types: forced categorical keeps the text; max_rows")

local cn = sp.read("scenarios/data/cn_province_capital_coords.csv")
T.check(cn:nrow() == 31 and cn.province[1] == "北京" and cn.capital_city[2] == "天津",
        "sp.read on .csv: Chinese names byte for byte")

local p = tmp("semi.txt", "a;b\n1;x\nNA;\n-;y\n")
local s = sp.read(p, {delimiter = ";", missing = {"-"}, types = {a = "categorical"}})
T.check(s.a[1] == "1" and s.a[2] == "NA" and s.a[3] == nil and s.b[2] == "" and s.b[3] == "y",
        "options: delimiter, custom missing list (replaces the defaults), forced type")
local h = sp.read_csv(tmp("nohdr.csv", "x,1\ny,2\n"), {header = false})
T.check(h:names()[1] == "V1" and h:names()[2] == "V2" and h.V1[2] == "y", "header = false names V1, V2")
local q = sp.read_csv(tmp("q.csv", 'a,b\r\n"x, ""y""\nz",1\r\n'))
T.check(q.a[1] == 'x, "y"\nz', "quoted field with comma, doubled quote and newline; CRLF")

-- errors of the data, with file:line:column ----------------------------------
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  return (not ok) and e or nil
end
local e = err_of(sp.read_csv, tmp("ragged.csv", "a,b,c,d,e\n1,2,3,4,5\n1,2,3,4,5\n1,2,3,4,5\n1,2,3,4,5\n1,2,3,4,5\n1,2,3,4\n"))
T.check(type(e) == "table" and e.line == 7 and e.col == 8 and e.code == "parse error",
        "ragged row: error object has line 7, col 8", tostring(e))
T.checkerr("ragged%.csv:7:8: expected 5 fields, found 4", function() error(e) end)
T.checkerr("q2%.csv:2:3: unterminated quoted field", sp.read_csv, tmp("q2.csv", 'a,b\n1,"open\n2,3\n'))
T.checkerr("q3%.csv:2:6: unexpected character 'x' after the closing quote", sp.read_csv, tmp("q3.csv", 'a,b\n1,"a"x\n'))
T.checkerr("forced numeric but has the value 'abc'", sp.read_csv, tmp("f.csv", "a\n1\nabc\n"), {types = {a = "numeric"}})
T.checkerr("dup%.csv:1:3: duplicate column name 'a'", sp.read_csv, tmp("dup.csv", "a,a\n1,2\n"))
T.checkerr("empty column name in the header %(field 2%)", sp.read_csv, tmp("eh.csv", "a,\n1,2\n"))
T.checkerr("empty%.csv:1:1: empty file", sp.read_csv, tmp("empty.csv", ""))
T.checkerr("cannot open '[^']*nope%.csv': No such file or directory", sp.read_csv, tmp("nope.csv"))
T.checkerr("types names column 'zz', which is not in the file", sp.read_csv, "tests/reference/data/Produc.csv",
           {types = {zz = "numeric"}})
T.checkerr("cannot open '[^']*nope%.dta': No such file or directory", sp.read, tmp("nope.dta"))
T.checkerr("unsupported extension '%.xlsx' %(expected %.csv", sp.read, "data.xlsx")
T.checkerr("unsupported extension '%(none%)'", sp.read, "datafile")

-- misuse of the options -----------------------------------------------------
T.checkerr("unknown option 'delim'", sp.read_csv, "x.csv", {delim = ";"})
T.checkerr("option 'delimiter' must be a one%-character string", sp.read_csv, "x.csv", {delimiter = ";;"})
T.checkerr("option 'header' must be a boolean", sp.read_csv, "x.csv", {header = 1})
T.checkerr("option 'missing' must be a list of strings %(item 2 is a number%)", sp.read_csv, "x.csv", {missing = {"NA", 3}})
T.checkerr("type of column 'a' must be \"numeric\" or \"categorical\"", sp.read_csv, "x.csv", {types = {a = "text"}})
T.checkerr("option 'max_rows' must be a positive integer", sp.read_csv, "x.csv", {max_rows = 0})
T.checkerr("options apply to CSV files only", sp.read, "x.dta", {header = false})
T.checkerr("bad argument #1 to '[%w.]*read_csv' %(string expected", sp.read_csv)

-- writing -------------------------------------------------------------------
local out = tmp("out.csv")
T.check(d:write_csv(out) == d, "write_csv returns the frame")
local back = sp.read_csv(out)
T.check(back:nrow() == 816 and back:ncol() == 18 and back.state[48] == d.state[48], "write/read round trip")
local out2 = tmp("out2.csv")
back:write_csv(out2)
T.check(slurp(out) == slurp(out2), "writing what was read back gives the same bytes (numbers round-trip exactly)")
T.check(select(2, slurp(out):gsub("\n", "")) == 817, "817 lines written (header + 816)")
local w = sp.read_csv(tmp("w.csv", 'a,b\n"x,y",1.5\n"NA",\n" q""",1e300\n'))
w:write_csv(out)
T.check(slurp(out) == 'a,b\n"x,y",1.5\n"NA",\n" q""",1e+300\n', "writer quotes what needs quoting; missing is empty")
local wb = sp.read_csv(out)
T.check(wb.a[2] == "NA" and wb.a[3] == ' q"', "quoted NA level and leading space survive a round trip")
T.checkerr("cannot create a temporary file next to '[^']*/no/dir/x%.csv': No such file or directory",
           function() d:write_csv(tmpdir .. "/no/dir/x.csv") end)
T.checkerr("bad argument #1 to 'write_csv' %(string expected", function() d:write_csv() end)

os.execute("rm -rf " .. tmpdir)
T.done()
