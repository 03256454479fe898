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
local slurp = T.read

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
T.checkerr("bad argument #1 to '[%w.:]*write_csv' %(string expected", function() d:write_csv() end)


-- write_csv options -------------------------------------------------------------
local wo = sp.read_csv(tmp("wo.csv", 'name,x\n"a;b",1.5\n,\n"NA",2\nplain,-3\n'))
local wpath = tmp("wo_out.csv")
wo:write_csv(wpath, {delimiter = ";", na = "NA"})
T.check(slurp(wpath) == 'name;x\n"a;b";1.5\nNA;NA\n"NA";2\nplain;-3\n',
        "write_csv delimiter = ';' and na = 'NA': the separator and the NA level are quoted, missing is NA",
        slurp(wpath))
local wr = sp.read_csv(wpath, {delimiter = ";"})
T.check(wr.name[1] == "a;b" and wr.name[2] == nil and wr.name[3] == "NA" and wr.x[2] ~= wr.x[2],
        "write_csv delimiter/na output reads back with the same values")
wo:write_csv(wpath, {quote = "all"})
T.check(slurp(wpath) == '"name","x"\n"a;b",1.5\n,\n"NA",2\n"plain",-3\n',
        "write_csv quote = 'all' quotes names and texts, not numbers or missing values", slurp(wpath))
T.check(sp.read_csv(wpath).name[4] == "plain", "quote = 'all' reads back")
local plain = sp.read_csv(tmp("pl.csv", "a,b\nx,1\ny z,2\n"))
plain:write_csv(wpath, {quote = "none", delimiter = "\t"})
T.check(slurp(wpath) == "a\tb\nx\t1\ny z\t2\n", "write_csv quote = 'none' writes texts bare")
T.checkerr("wo_out%.csv:2: row 1, column 'name': the value 'a;b' holds the delimiter",
           function() wo:write_csv(wpath, {quote = "none", delimiter = ";"}) end)
T.check(slurp(wpath) == "a\tb\nx\t1\ny z\t2\n", "a refused quote = 'none' write leaves the old file as it was")
local nl = sp.read_csv(tmp("nl.csv", 'a\n"two\nlines"\n'))
T.checkerr("row 1, column 'a': the value 'two%?lines' holds", function() nl:write_csv(wpath, {quote = "none"}) end)
wo:write_csv(wpath, {bom = true})
local bomtext = slurp(wpath)
T.check(bomtext:sub(1, 3) == "\xEF\xBB\xBF" and bomtext:sub(4, 9) == "name,x", "write_csv bom = true starts with a UTF-8 BOM")
T.check(sp.read_csv(wpath):names()[1] == "name", "a BOM written for Excel is skipped on reading")
T.checkerr("write_csv: unknown option 'sep' %(expected delimiter, na, quote, bom%)", function() wo:write_csv(wpath, {sep = ";"}) end)
T.checkerr("write_csv: unknown option 'qoute' %(expected delimiter, na, quote, bom%); did you mean 'quote'%?", function() wo:write_csv(wpath, {qoute = "all"}) end)
T.checkerr("write_csv: option 'delimiter' must be a one%-character string", function() wo:write_csv(wpath, {delimiter = ";;"}) end)
T.checkerr("write_csv: option 'quote' must be \"minimal\", \"all\" or \"none\"", function() wo:write_csv(wpath, {quote = "always"}) end)
T.checkerr("write_csv: option 'na' must be a string", function() wo:write_csv(wpath, {na = false}) end)
T.checkerr("write_csv: option 'bom' must be a boolean", function() wo:write_csv(wpath, {bom = 1}) end)
T.checkerr("the missing%-value text 'a,b' holds the delimiter", function() wo:write_csv(wpath, {na = "a,b"}) end)

-- A write that fails (here: over the file-size limit) names the path and the
-- system's reason, and leaves the previous file whole, with no temporary.
do
  local good = tmp("keep.csv")
  d:write_csv(good)
  local before = slurp(good)
  local script = tmp("fsize.lua", string.format([[
    local sp = require "spillover"
    local d = sp.read_csv("tests/reference/data/Produc.csv")
    local ok, e = pcall(d.write_csv, d, %q)
    io.stdout:write(tostring(e))
  ]], good))
  local exe = arg and arg[-1] or "spillover"
  local p = io.popen("ulimit -f 64; trap '' XFSZ; " .. exe .. " " .. script .. " 2>&1")
  local out = p:read("a")
  p:close()
  T.check(out:find("cannot write '" .. good .. "': File too large", 1, true),
          "a failed write is an error naming the path and strerror", out)
  T.check(slurp(good) == before, "a failed write leaves the file that was there untouched")
  local left = io.popen("ls " .. tmpdir .. " | grep -c 'keep.csv.tmp' || true"):read("a")
  T.check(tonumber(left) == 0, "a failed write removes its temporary", left)
end

-- encodings ----------------------------------------------------------------------
-- A yearbook table in GBK: 省份 (province), 人口 (population).
local gbk = "\xCA\xA1\xB7\xDD,\xC8\xCB\xBF\xDA\n\xB1\xB1\xBE\xA9,2189\n\xCC\xEC\xBD\xF2,1387\n" ..
            "\xBA\xD3\xB1\xB1,7461\n\xC9\xCF\xBA\xA3,2487\n\xB9\xE3\xB6\xAB,12601\n"
local gpath = tmp("gbk.csv", gbk)
local g = sp.read_csv(gpath, {encoding = "gbk"})
T.check(g:names()[1] == "省份" and g:names()[2] == "人口", "encoding = 'gbk': names decoded to UTF-8")
T.check(g["省份"][1] == "北京" and g["省份"][2] == "天津" and g["省份"][3] == "河北" and g["省份"][4] == "上海" and
        g["省份"][5] == "广东" and g["人口"][5] == 12601, "encoding = 'gbk': province names decoded to UTF-8")
local g2 = sp.read_csv(gpath, {encoding = "GB18030"})
T.check(g2["省份"][1] == "北京", "encoding = 'GB18030' (any case)")
T.check(sp.read(gpath, {encoding = "gb18030"})["省份"][4] == "上海", "sp.read passes encoding to read_csv")
T.checkerr("gbk%.csv:1:2: invalid UTF%-8 %(byte 0xB7%) in the header: expected UTF%-8 text; if the file is "
                      .. "in another encoding, name it with the option encoding %(the bytes look like GBK: "
                      .. "encoding = \"gb18030\"%)", sp.read_csv, gpath)
local gval = tmp("gbkval.csv", "id,name\n1,ok\n2,\xB1\xB1\xBE\xA9\n")
T.checkerr("gbkval%.csv:3:3: invalid UTF%-8 %(byte 0xB1%) in column 'name'.*encoding = \"gb18030\"", sp.read_csv, gval)
local l1 = tmp("latin1.csv", "city,n\nZ\xFCrich,1\nBern,2\n")
T.checkerr("latin1%.csv:2:2: invalid UTF%-8 %(byte 0xFC%) in column 'city'.*encoding = \"latin1\" or \"windows%-1252\"",
           sp.read_csv, l1)
T.check(sp.read_csv(l1, {encoding = "latin1"}).city[1] == "Zürich", "encoding = 'latin1' decodes ü")
T.check(sp.read_csv(tmp("u8.csv", "a\nZürich\n"), {encoding = "UTF-8"}).a[1] == "Zürich", "encoding = 'UTF-8' reads as is")
T.checkerr("unknown encoding 'klingon' %(expected a name iconv knows, such as \"gb18030\", \"gbk\"", sp.read_csv, gpath,
           {encoding = "klingon"})
T.checkerr("badgbk%.csv:3:4: byte 0xFF at byte 4 of the line is not valid gbk text",
           sp.read_csv, tmp("badgbk.csv", "a,b\n1,x\n2,y\xFF\xFF\n"), {encoding = "gbk"})
T.checkerr("option 'encoding' must be a string", sp.read_csv, gpath, {encoding = 936})
-- Numeric columns never hold non-ASCII bytes, so only texts are checked: a
-- UTF-8 file is read as before.
T.check(sp.read_csv("scenarios/data/cn_province_capital_coords.csv").province[1] == "北京", "UTF-8 files unchanged")

-- BOM: a UTF-8 byte-order mark at the start of a CSV is skipped.
local bcsv = sp.read_csv(tmp("bom.csv", "\xEF\xBB\xBFregion,v\nEast,1\n"))
T.check(bcsv:names()[1] == "region" and bcsv.region[1] == "East", "CSV: a leading UTF-8 BOM is skipped")

-- only regular files ------------------------------------------------------------
T.checkerr("cannot read '/dev/zero': it is a character device, expected a CSV file", sp.read_csv, "/dev/zero")
T.checkerr("cannot read '[^']*': it is a directory, expected a CSV file", sp.read_csv, tmpdir)
local fifo = tmpdir .. "/pipe.csv"
assert(os.execute("mkfifo " .. fifo))
-- Opening a FIFO without a writer used to block for ever; now it is refused at once.
T.checkerr("cannot read '[^']*pipe%.csv': it is a FIFO %(named pipe%), expected a CSV file", sp.read_csv, fifo)
os.execute("ln -s /dev/zero " .. tmpdir .. "/zero.dta")
os.execute("ln -s " .. fifo .. " " .. tmpdir .. "/pipe.sav")
os.execute("mkdir " .. tmpdir .. "/dir.dta")
T.checkerr("cannot read '[^']*zero%.dta': it is a character device, expected a Stata, SPSS or SAS data file",
           sp.read, tmpdir .. "/zero.dta")
T.checkerr("cannot read '[^']*pipe%.sav': it is a FIFO", sp.read, tmpdir .. "/pipe.sav")
T.checkerr("cannot read '[^']*dir%.dta': it is a directory", sp.read, tmpdir .. "/dir.dta")

-- a header of 1e5 columns (the duplicate check was quadratic) -------------------
do
  local n = 100000
  local names, vals = {}, {}
  for j = 1, n do names[j] = "v" .. j; vals[j] = tostring(j % 7) end
  local wide = tmp("wide.csv", table.concat(names, ",") .. "\n" .. table.concat(vals, ",") .. "\n")
  local wd = sp.read_csv(wide)
  T.check(wd:ncol() == n and wd:names()[n] == "v100000" and wd.v99999[1] == 99999 % 7, "a 1e5-column header reads")
  names[n] = "v5"
  T.checkerr("wide2%.csv:1:688888: duplicate column name 'v5' %(fields 5 and 100000%)", sp.read_csv,
             tmp("wide2.csv", table.concat(names, ",") .. "\n" .. table.concat(vals, ",") .. "\n"))
end

os.execute("rm -rf " .. tmpdir)
T.done()
