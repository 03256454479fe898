-- test_maps: the tile-grid layouts (every unit of the bundled data has a tile,
-- no two tiles share a cell), plot.tilemap (PNG and SVG written, colours of
-- the diverging scale, hatching, classes, every bad input) and the report's
-- maps (report: {maps:, tiles:}) with their checks.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local plot = require "spillover.plot"
local tiles = require "spillover.tiles"

local root = assert(sp.sys.realpath("."))
local dir = assert(sp.sys.mkdtemp("/tmp/sp-maps-"))

-- ---- layouts --------------------------------------------------------------------------

local function distinct_cells(layout)
  local seen, n = {}, 0
  for _, t in ipairs(layout.tiles) do
    local k = t.row .. "," .. t.col
    if seen[k] then return false, k end
    seen[k] = true
    n = n + 1
  end
  return true, n
end

local cn = tiles.get("cn31")
local us = tiles.get("us48")
T.check(#cn.tiles == 31, "cn31 has 31 tiles", #cn.tiles)
T.check(#us.tiles == 48, "us48 has 48 tiles", #us.tiles)
for _, l in ipairs { cn, us } do
  local ok, why = distinct_cells(l)
  T.check(ok, l.name .. ": no two tiles share a row and column", why)
end

-- Every province of the panel, by each name the data uses, and every state.
local panel = sp.read_csv("scenarios/data/cn_province_panel.csv")
for _, col in ipairs { "province_en", "province", "adcode" } do
  local units, seen, c = {}, {}, panel:column(col)
  for i = 1, panel:nrow() do
    local u = c[i]
    if not seen[u] then seen[u] = true; units[#units + 1] = u end
  end
  local ok, at = pcall(tiles.match, cn, units)
  T.check(ok and #units == 31, "cn31: every " .. col .. " of cn_province_panel.csv has a tile", tostring(at))
end
local states = sp.read_csv("scenarios/data/us48_states.csv")
for _, col in ipairs { "name", "abbr", "produc_name", "fips" } do
  local units, c = {}, states:column(col)
  for i = 1, states:nrow() do units[i] = c[i] end
  local ok, at = pcall(tiles.match, us, units)
  T.check(ok and #units == 48, "us48: every " .. col .. " of us48_states.csv has a tile", tostring(at))
end
local produc = sp.read_csv("tests/reference/data/Produc.csv")
local pnames, pseen = {}, {}
for i = 1, produc:nrow() do
  local u = produc.state[i]
  if not pseen[u] then pseen[u] = true; pnames[#pnames + 1] = u end
end
T.check(pcall(tiles.match, us, pnames), "us48: every state of Produc.csv (TENNESSE included) has a tile")

-- Neighbours in the layout are neighbours on the ground, for a few well-known pairs.
local function at(layout, key)
  return layout.tiles[tiles.match(layout, { key })[1]]
end
for _, pair in ipairs { { "Beijing", "Tianjin" }, { "Jiangsu", "Shanghai" }, { "Guangdong", "Hainan" } } do
  local a, b = at(cn, pair[1]), at(cn, pair[2])
  T.check(math.abs(a.row - b.row) + math.abs(a.col - b.col) == 1, pair[1] .. " and " .. pair[2] .. " are adjacent tiles")
end

T.checkerr("unknown layout 'cn32' %(expected cn31, us48 or a CSV path%) %(did you mean 'cn31'%?%)", tiles.get, "cn32")
T.checkerr("1 unit has no tile in cn31: 'Taiwan'", tiles.match, cn, { "Beijing", "Taiwan" })
T.checkerr("'Shangai' %(did you mean 'Shanghai'%?%)", tiles.match, cn, { "Shangai" })
T.checkerr("units 'Beijing' and '110000' both name the tile at row 3, col 8 of cn31", tiles.match, cn,
  { "Beijing", 110000.0 })

-- Layouts from CSV files.
local function write(name, text)
  T.write(dir .. "/" .. name, text)
  return dir .. "/" .. name
end
local small = write("small.csv", "name,label,label_zh,row,col\nNorth,N,北,1,2\nWest,W,西,2,1\nEast,E,东,2,3\n")
local l = tiles.get(small)
T.check(#l.tiles == 3 and l.tiles[2].label.zh == "西" and l.tiles[3].col == 3, "a CSV layout is read")
T.checkerr("tiles 1 %('North'%) and 2 %('West'%) are both at row 1, col 2",
  tiles.get, write("overlap.csv", "name,row,col\nNorth,1,2\nWest,1,2\n"))
T.checkerr("has no column 'col'", tiles.get, write("nocol.csv", "name,row,column\nNorth,1,2\n"))
T.checkerr("line 2: row must be a positive integer, got 0", tiles.get, write("zero.csv", "name,row,col\nNorth,0,2\n"))
T.checkerr("has no key column", tiles.get, write("nokey.csv", "row,col\n1,2\n"))
T.checkerr("the key 'north' names two tiles", tiles.get, write("dupkey.csv", "name,row,col\nNorth,1,1\nnorth,1,2\n"))
T.checkerr("cannot read the layout", tiles.get, dir .. "/none.csv")

-- ---- plot.tilemap -------------------------------------------------------------------------

local function u32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Cairo's spelling of a "#rrggbb" fill in SVG: rgb(83.529412%,36.862745%,0%).
local function svg_rgb(hex)
  local parts = {}
  for k = 0, 2 do
    local v = tonumber(hex:sub(2 + 2 * k, 3 + 2 * k), 16) / 255 * 100
    parts[#parts + 1] = (string.format("%f", v):gsub("0+$", ""):gsub("%.$", "")) .. "%"
  end
  return "fill:rgb(" .. table.concat(parts, ",") .. ")"
end

local units, values, lo, hi = {}, {}, {}, {}
for i = 1, panel:nrow() do
  if panel.year[i] == 2020 then
    local k = #units + 1
    units[k] = panel.province_en[i]
    values[k] = (k - 16) / 15 * 2 -- -2 .. 2: the scale's two ends are reached
    lo[k], hi[k] = values[k] - 0.5, values[k] + 0.5
  end
end
local png, svg = dir .. "/cn.png", dir .. "/cn.svg"
plot.tilemap({ png, svg }, { tiles = "cn31", units = units, values = values, lo = lo, hi = hi, title = "Effect",
  scale_label = "Additional patents" })
local p = T.read(png)
T.check(p and p:sub(1, 8) == "\137PNG\r\n\26\n", "tilemap: PNG written")
-- 10 x 10 grid: the page is as tall as the square tiles need.
T.check(p and u32(p, 17) == 1050 and u32(p, 21) > 1200 and u32(p, 21) < 1400, "tilemap: PNG 1050 px wide at 300 dpi, taller than wide",
  p and (u32(p, 17) .. " x " .. u32(p, 21)))
local s = T.read(svg) or ""
T.check(s:find("<desc>HL | ", 1, true) ~= nil and s:find("| HI |", 1, true) ~= nil, "tilemap: SVG names the tiles")
T.check(s:find(svg_rgb(plot.diverging[1]), 1, true) ~= nil, "tilemap: the lowest value is the scale's blue end")
T.check(s:find(svg_rgb(plot.diverging[3]), 1, true) ~= nil, "tilemap: the highest value is the scale's vermillion end")
T.check(s:find(svg_rgb(plot.diverging[2]), 1, true) ~= nil, "tilemap: a zero effect is the scale's centre")
T.check(s:find("interval includes 0", 1, true) ~= nil, "tilemap: intervals that include 0 are hatched and explained")
T.check(s:find("no data", 1, true) == nil, "tilemap: every tile has data, so no 'no data' entry")

-- Chinese labels, a sequential scale, tiles without data and intervals that all exclude 0.
local zh, v = { "北京", "上海", "广东" }, { 1, 2, 3 }
plot.tilemap(svg, { tiles = "cn31", units = zh, values = v, lo = { 0.5, 1.5, 2.5 }, hi = { 1.5, 2.5, 3.5 },
  lang = "zh", palette = "sequential", missing_label = "无数据" })
s = T.read(svg) or ""
T.check(s:find("北京", 1, true) and s:find("内蒙", 1, true) and not s:find("| BJ |", 1, true), "tilemap: lang = zh labels")
T.check(s:find("无数据", 1, true) ~= nil and s:find(svg_rgb("#BDBDBD"), 1, true) ~= nil, "tilemap: tiles without data are grey")
T.check(s:find("interval includes", 1, true) == nil, "tilemap: no hatching when no interval includes 0")
T.check(s:find(svg_rgb(plot.diverging[1]), 1, true) ~= nil, "tilemap: sequential scale ends at the blue")

-- Classes (a LISA cluster map) on the US layout.
local names, cls = {}, {}
local kinds = { "HH", "LL", "HL", "LH", "ns" }
for i = 1, states:nrow() do names[i], cls[i] = states.abbr[i], kinds[i % 5 + 1] end
plot.tilemap(svg, { tiles = "us48", units = names, classes = cls, order = kinds, title = "LISA" })
s = T.read(svg) or ""
T.check(s:find("| HH | LL | HL | LH | ns |", 1, true) ~= nil, "tilemap: classes listed in order")
T.check(s:find(svg_rgb(plot.lisa_colors.HH), 1, true) ~= nil and s:find(svg_rgb(plot.lisa_colors.LH), 1, true) ~= nil,
  "tilemap: LISA classes in their colours")

-- A layout from a file, and from a table.
plot.tilemap(png, { tiles = small, units = { "north", "EAST" }, values = { 1, -1 } })
T.check(T.read(png) ~= nil, "tilemap: a CSV layout, units matched ignoring case")

-- Bad input.
local F = "plot%.tilemap: "
T.checkerr(F .. "tiles: 1 unit has no tile in cn31: 'Taiwan'", plot.tilemap, png,
  { tiles = "cn31", units = { "Taiwan" }, values = { 1 } })
T.checkerr(F .. "tiles: unknown layout 'china'", plot.tilemap, png, { tiles = "china", units = { "Beijing" }, values = { 1 } })
T.checkerr(F .. "the map has 2 unit values but 1 value values", plot.tilemap, png,
  { units = { "Beijing", "Tianjin" }, values = { 1 } })
T.checkerr(F .. "give values %(numbers%) or classes %(strings%), one of them", plot.tilemap, png,
  { units = { "Beijing" }, values = { 1 }, classes = { "HH" } })
T.checkerr(F .. "give values", plot.tilemap, png, { units = { "Beijing" } })
T.checkerr("unknown option 'colour' %(expected one of", plot.tilemap, png, { units = { "Beijing" }, values = { 1 }, colour = "red" })
T.checkerr(F .. "units is empty", plot.tilemap, png, { units = {}, values = {} })
T.checkerr(F .. "values%[1%] must be a number, got a string", plot.tilemap, png, { units = { "Beijing" }, values = { "x" } })
T.checkerr(F .. "values has no number to map", plot.tilemap, png, { units = { "Beijing" }, values = { 0 / 0 } })
T.checkerr(F .. "palette must be \"diverging\" or \"sequential\", got rainbow", plot.tilemap, png,
  { units = { "Beijing" }, values = { 1 }, palette = "rainbow" })
T.checkerr(F .. "classes%[2%] is 'XX', which order leaves out", plot.tilemap, png,
  { units = { "Beijing", "Tianjin" }, classes = { "HH", "XX" }, order = { "HH" } })
T.checkerr(F .. "colors%.HH must be a colour \"#rrggbb\", got 'red'", plot.tilemap, png,
  { units = { "Beijing" }, classes = { "HH" }, colors = { HH = "red" } })
T.checkerr(F .. "cannot tell the format of", plot.tilemap, dir .. "/m.pdf", { units = { "Beijing" }, values = { 1 } })
T.checkerr(F .. "cannot draw .*too small for its tiles", plot.tilemap, png,
  { units = { "Beijing" }, values = { 1 }, width = 0.5, height = 0.5 })

-- ---- the report's maps ----------------------------------------------------------------------

local scen = [[
name: maps
seed: 3
data:
  file: PRODUC
  entity: state
  time: year
models:
  fe:
    estimator: ols
    formula: log_gsp ~ log_pcap + log_emp | state + year
experiments:
  south:
    model: fe
    shock: {variable: log_pcap, where: "region >= 5 and region <= 7", from: 1980, change: "+0.1"}
    draws: 20
    # 50%: log_pcap's t is -1.5, so 95% intervals of the shocked states include 0
    # (hatched, as they should be); the test is about the exact zeros
    level: 0.5
report:
  formats: [md, png, svg]
  maps: [south]
  tiles: TILES
]]
local function scenario(name, tiles_value, extra)
  local text = scen:gsub("PRODUC", root .. "/tests/reference/data/Produc.csv"):gsub("TILES", tiles_value)
  return write(name, text .. (extra or ""))
end
local out = sp.scenario.run(sp.scenario.check(sp.scenario.load(scenario("maps.yaml", "us48"))), { outdir = dir .. "/out" })
local m = T.read(out .. "/south_map.svg") or ""
T.check(T.read(out .. "/south_map.png") ~= nil and m:find("| TX |", 1, true) ~= nil, "report: south_map.png and .svg written")
-- OLS has no spillover: the states outside the South have an effect of exactly 0.
T.check(m:find(svg_rgb(plot.diverging[2]), 1, true) ~= nil, "report: unshocked states at the scale's centre")
T.check(m:find(svg_rgb(plot.diverging[1]), 1, true) ~= nil or m:find(svg_rgb(plot.diverging[3]), 1, true) ~= nil,
  "report: the largest effect at one end of the scale")
T.check(m:find("interval includes 0", 1, true) == nil, "report: an exact zero (interval [0, 0]) is not hatched")
T.check((T.read(out .. "/run.log") or ""):find("map of south: 2 files", 1, true) ~= nil, "report: the map is logged")

-- A layout path relative to the scenario, and the units it lacks found by check.
write("two_states.csv", "name,row,col\nALABAMA,1,1\nTEXAS,1,2\n")
T.checkerr("maps%.yaml:%d+:%d+: report%.tiles: 46 units have no tile in .*two_states%.csv: 'ARIZONA'",
  sp.scenario.check, sp.scenario.load(scenario("maps.yaml", "two_states.csv")))
T.checkerr("report%.tiles: unknown layout 'us50'", sp.scenario.check, sp.scenario.load(scenario("maps.yaml", "us50")))
T.checkerr("report%.maps%[1%]: unknown experiment 'north' %(did you mean 'south'%?%)", sp.scenario.check,
  sp.scenario.load(write("maps2.yaml", (T.read(scenario("maps.yaml", "us48")):gsub("maps: %[south%]", "maps: [north]")))))
local no_entity = T.read(scenario("maps.yaml", "us48")):gsub("  entity: state\n", ""):gsub(" | state %+ year", "")
-- An outcome with a level (log(gsp)): the map shows what the units' bars show, additional gsp.
local level = T.read(scenario("maps.yaml", "us48")):gsub("log_gsp ~ log_pcap", "log(gsp) ~ log(pcap)")
  :gsub("variable: log_pcap", "variable: pcap"):gsub('change: "%+0%.1"', 'change: "+10%%"')
out = sp.scenario.run(sp.scenario.check(sp.scenario.load(write("level.yaml", level))), { outdir = dir .. "/out2" })
m = T.read(out .. "/south_map.svg") or ""
T.check(m:find("Additional gsp (sum over periods)", 1, true) ~= nil, "report: the map's scale is the level change",
  m:match("<desc>(.-)</desc>"))
T.check(m:find(svg_rgb(plot.diverging[1]), 1, true) ~= nil or m:find(svg_rgb(plot.diverging[3]), 1, true) ~= nil,
  "report: the level map's largest effect at one end of the scale")
T.checkerr("report%.maps: maps draw the effect by unit; give data%.entity", sp.scenario.check,
  sp.scenario.load(write("maps4.yaml", no_entity)))
T.checkerr("report%.tiles: expected a string", sp.scenario.check,
  sp.scenario.load(write("maps3.yaml", (T.read(scenario("maps.yaml", "us48")):gsub("tiles: us48", "tiles: [us48]")))))

if os.getenv("SP_KEEP") then print(dir) else sp.sys.remove_tree(dir) end
T.done()
