-- spillover.tiles: tile-grid layouts (one square per region at a row and a
-- column) for plot.tilemap, the built-in ones and those read from a CSV file.
--
--   local tiles = require "spillover.tiles"
--   local cn = tiles.get("cn31")             -- or "us48", or a CSV path
--   local index = tiles.match(cn, {"Beijing", "110000", "上海"})   -- unit -> tile
--
-- A layout is {name =, source =, tiles = {{row =, col =, keys = {...},
-- label = {en =, zh =}}, ...}}; row 1 is the top row, col 1 the left column.
-- A unit names a tile when it equals one of the tile's keys, ignoring ASCII
-- case (so "ALABAMA" in Produc.csv finds Alabama).
--
-- A CSV layout has the columns row and col, optional label columns (label,
-- or label_en, label_zh, ...: the text drawn in the tile for that language)
-- and any number of key columns (every other column).
local core = require "spillover.core"
local util = require "spillover.util"
local suggest = require "spillover.suggest"
local raise = util.raise

local M = {}

-- ---- built-in layouts ----------------------------------------------------------------

-- The 31 provinces of mainland China.  Positions are those of geofacet's
-- china_prov_grid1 (R package geofacet, Hafen; grids/china_prov_grid1.csv of
-- github.com/hafen/grid-designer) without Taiwan, Hong Kong and Macao, which
-- the provincial panels leave out; Hainan moves up from row 11 to row 10, where
-- Hong Kong and Macao stood, so no empty row separates it from Guangdong.
-- Keys: ISO 3166-2:CN code, administrative code, English name as in
-- scenarios/data/cn_province_panel.csv (province_en), Chinese name.  Labels:
-- the ISO code, and the usual two-character short name.
-- code, adcode, name_en, name_zh, label_zh, row, col
local CN31 = {
  { "HL", 230000, "Heilongjiang", "黑龙江", "黑龙", 1, 10 },
  { "XJ", 650000, "Xinjiang", "新疆", "新疆", 2, 1 },
  { "NM", 150000, "Inner Mongolia", "内蒙古", "内蒙", 2, 7 },
  { "JL", 220000, "Jilin", "吉林", "吉林", 2, 10 },
  { "NX", 640000, "Ningxia", "宁夏", "宁夏", 3, 5 },
  { "BJ", 110000, "Beijing", "北京", "北京", 3, 8 },
  { "LN", 210000, "Liaoning", "辽宁", "辽宁", 3, 9 },
  { "QH", 630000, "Qinghai", "青海", "青海", 4, 2 },
  { "HE", 130000, "Hebei", "河北", "河北", 4, 7 },
  { "TJ", 120000, "Tianjin", "天津", "天津", 4, 8 },
  { "GS", 620000, "Gansu", "甘肃", "甘肃", 5, 4 },
  { "SX", 140000, "Shanxi", "山西", "山西", 5, 6 },
  { "HA", 410000, "Henan", "河南", "河南", 5, 7 },
  { "SD", 370000, "Shandong", "山东", "山东", 5, 8 },
  { "SN", 610000, "Shaanxi", "陕西", "陕西", 6, 5 },
  { "HB", 420000, "Hubei", "湖北", "湖北", 6, 6 },
  { "AH", 340000, "Anhui", "安徽", "安徽", 6, 7 },
  { "JS", 320000, "Jiangsu", "江苏", "江苏", 6, 8 },
  { "SH", 310000, "Shanghai", "上海", "上海", 6, 9 },
  { "XZ", 540000, "Tibet", "西藏", "西藏", 7, 2 },
  { "SC", 510000, "Sichuan", "四川", "四川", 7, 4 },
  { "CQ", 500000, "Chongqing", "重庆", "重庆", 7, 5 },
  { "HN", 430000, "Hunan", "湖南", "湖南", 7, 6 },
  { "ZJ", 330000, "Zhejiang", "浙江", "浙江", 7, 8 },
  { "GZ", 520000, "Guizhou", "贵州", "贵州", 8, 5 },
  { "JX", 360000, "Jiangxi", "江西", "江西", 8, 7 },
  { "FJ", 350000, "Fujian", "福建", "福建", 8, 8 },
  { "YN", 530000, "Yunnan", "云南", "云南", 9, 4 },
  { "GX", 450000, "Guangxi", "广西", "广西", 9, 6 },
  { "GD", 440000, "Guangdong", "广东", "广东", 9, 7 },
  { "HI", 460000, "Hainan", "海南", "海南", 10, 7 },
}

-- The 48 contiguous US states.  Positions are those of geofacet's
-- us_state_contiguous_grid1 (grids/us_state_contiguous_grid1.csv of
-- github.com/hafen/grid-designer) without the District of Columbia.  Keys:
-- USPS code, FIPS code, name (as in scenarios/data/us48_states.csv) and the
-- name as Produc.csv spells it (NEW_HAMPSHIRE, and TENNESSE without the last
-- e; scenarios/data/us48_states.csv, produc_name).  Label: the USPS code in
-- every language.
-- code, fips, name, row, col[, Produc's name when it is not NAME with _ for spaces]
local US48 = {
  { "WI", 55, "Wisconsin", 1, 6 }, { "VT", 50, "Vermont", 1, 9 }, { "NH", 33, "New Hampshire", 1, 10 },
  { "ME", 23, "Maine", 1, 11 },
  { "WA", 53, "Washington", 2, 1 }, { "ID", 16, "Idaho", 2, 2 }, { "MT", 30, "Montana", 2, 3 },
  { "ND", 38, "North Dakota", 2, 4 }, { "MN", 27, "Minnesota", 2, 5 }, { "IL", 17, "Illinois", 2, 6 },
  { "MI", 26, "Michigan", 2, 7 }, { "NY", 36, "New York", 2, 9 }, { "MA", 25, "Massachusetts", 2, 10 },
  { "OR", 41, "Oregon", 3, 1 }, { "NV", 32, "Nevada", 3, 2 }, { "WY", 56, "Wyoming", 3, 3 },
  { "SD", 46, "South Dakota", 3, 4 }, { "IA", 19, "Iowa", 3, 5 }, { "IN", 18, "Indiana", 3, 6 },
  { "OH", 39, "Ohio", 3, 7 }, { "PA", 42, "Pennsylvania", 3, 8 }, { "NJ", 34, "New Jersey", 3, 9 },
  { "CT", 9, "Connecticut", 3, 10 }, { "RI", 44, "Rhode Island", 3, 11 },
  { "CA", 6, "California", 4, 1 }, { "UT", 49, "Utah", 4, 2 }, { "CO", 8, "Colorado", 4, 3 },
  { "NE", 31, "Nebraska", 4, 4 }, { "MO", 29, "Missouri", 4, 5 }, { "KY", 21, "Kentucky", 4, 6 },
  { "WV", 54, "West Virginia", 4, 7 }, { "VA", 51, "Virginia", 4, 8 }, { "MD", 24, "Maryland", 4, 9 },
  { "DE", 10, "Delaware", 4, 10 },
  { "AZ", 4, "Arizona", 5, 2 }, { "NM", 35, "New Mexico", 5, 3 }, { "KS", 20, "Kansas", 5, 4 },
  { "AR", 5, "Arkansas", 5, 5 }, { "TN", 47, "Tennessee", 5, 6, "TENNESSE" }, { "NC", 37, "North Carolina", 5, 7 },
  { "SC", 45, "South Carolina", 5, 8 },
  { "OK", 40, "Oklahoma", 6, 4 }, { "LA", 22, "Louisiana", 6, 5 }, { "MS", 28, "Mississippi", 6, 6 },
  { "AL", 1, "Alabama", 6, 7 }, { "GA", 13, "Georgia", 6, 8 },
  { "TX", 48, "Texas", 7, 4 }, { "FL", 12, "Florida", 7, 9 },
}

local BUILTIN = {
  cn31 = function()
    local t = {}
    for i, r in ipairs(CN31) do
      t[i] = { keys = { r[1], tostring(r[2]), r[3], r[4] }, label = { en = r[1], zh = r[5] }, row = r[6], col = r[7] }
    end
    return { name = "cn31", source = "geofacet china_prov_grid1 (31 provinces of mainland China)", tiles = t }
  end,
  us48 = function()
    local t = {}
    for i, r in ipairs(US48) do
      local produc = r[6] or r[3]:upper():gsub(" ", "_")
      t[i] = { keys = { r[1], string.format("%02d", r[2]), r[3], produc }, label = { en = r[1], zh = r[1] }, row = r[4],
        col = r[5] }
    end
    return { name = "us48", source = "geofacet us_state_contiguous_grid1 (48 contiguous states)", tiles = t }
  end,
}

--- The names of the built-in layouts, sorted.
function M.builtin()
  local names = {}
  for k in pairs(BUILTIN) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- How keys compare: ignoring ASCII case, and codes ignoring leading zeros
-- (FIPS "01" read from a CSV as the number 1).
local function norm(k)
  k = tostring(k):lower()
  return k:match("^%d+$") and (k:gsub("^0+(%d)", "%1")) or k
end

--- Whether which names a built-in layout (anything else is a file path).
function M.is_builtin(which) return BUILTIN[which] ~= nil end

-- ---- layouts from files ---------------------------------------------------------------

local function cell(v)
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
  if v == nil or v ~= v then return nil end
  return tostring(v)
end

-- A layout from a CSV file: columns row and col, label or label_<lang>, keys.
local function read(path)
  local ok, d = pcall(core.read_csv, path)
  if not ok then raise("tiles: cannot read the layout: " .. util.message(d)) end
  local names = d:names()
  local have = {}
  for _, c in ipairs(names) do have[c] = true end
  for _, c in ipairs { "row", "col" } do
    if not have[c] then
      raise(string.format("tiles: %s has no column '%s' (expected row, col, label or label_<lang>, and key columns)%s",
        path, c, suggest.did_you_mean(c, names)))
    end
  end
  local keycols, labelcols = {}, {}
  for _, c in ipairs(names) do
    if c == "label" then labelcols.en = c
    elseif c:match("^label_") then labelcols[c:sub(7)] = c
    elseif c ~= "row" and c ~= "col" then keycols[#keycols + 1] = c end
  end
  if #keycols == 0 then raise("tiles: " .. path .. " has no key column (a column naming the units, such as name)") end
  local cols = {}
  for _, c in ipairs(names) do cols[c] = d:column(c) end
  local t = {}
  for i = 1, d:nrow() do
    local row, col = cols.row[i], cols.col[i]
    for _, rc in ipairs { { "row", row }, { "col", col } } do
      local v = rc[2]
      if math.type(v) == nil or v ~= math.floor(v) or v < 1 then
        raise(string.format("tiles: %s line %d: %s must be a positive integer, got %s", path, i + 1, rc[1], tostring(v)))
      end
    end
    local keys = {}
    for _, c in ipairs(keycols) do keys[#keys + 1] = cell(cols[c][i]) end
    local label = {}
    for lang, c in pairs(labelcols) do label[lang] = cell(cols[c][i]) end
    t[i] = { keys = keys, label = label, row = math.tointeger(row), col = math.tointeger(col) }
  end
  return { name = path, source = path, tiles = t }
end

--- Check a layout: a table of tiles, each at a distinct positive row and
--- column, with at least one key, and no key shared by two tiles.
function M.check(layout, who)
  who = who or "tiles"
  if type(layout) ~= "table" or type(layout.tiles) ~= "table" or #layout.tiles == 0 then
    raise(who .. ": a layout must be {tiles = {{row =, col =, keys = {...}, label = {...}}, ...}} with at least one tile")
  end
  local at, owner = {}, {}
  for i, t in ipairs(layout.tiles) do
    if type(t) ~= "table" or math.type(t.row) ~= "integer" or math.type(t.col) ~= "integer" or t.row < 1 or t.col < 1 then
      raise(string.format("%s: tile %d must have integer row and col >= 1", who, i))
    end
    if type(t.keys) ~= "table" or #t.keys == 0 then raise(string.format("%s: tile %d has no keys", who, i)) end
    local pos = t.row .. "," .. t.col
    if at[pos] then
      raise(string.format("%s: tiles %d ('%s') and %d ('%s') are both at row %d, col %d", who, at[pos],
        layout.tiles[at[pos]].keys[1], i, t.keys[1], t.row, t.col))
    end
    at[pos] = i
    for _, k in ipairs(t.keys) do
      local lk = norm(k)
      if owner[lk] and owner[lk] ~= i then
        raise(string.format("%s: the key '%s' names two tiles (%d and %d)", who, k, owner[lk], i))
      end
      owner[lk] = i
    end
  end
  return layout
end

--- A layout by name ("cn31", "us48") or from a CSV file (a relative path
--- taken from the folder dir when given); a layout table is checked and returned.
function M.get(which, dir)
  if type(which) == "table" then return M.check(which) end
  if type(which) ~= "string" then
    raise("tiles: expected a layout name (" .. table.concat(M.builtin(), ", ") .. "), a CSV path or a layout table, got "
      .. type(which))
  end
  if BUILTIN[which] then return BUILTIN[which]() end
  if not which:find("[/.]") then
    raise("tiles: unknown layout '" .. which .. "' (expected " .. table.concat(M.builtin(), ", ") ..
      " or a CSV path)" .. suggest.did_you_mean(which, M.builtin()))
  end
  if dir and which:sub(1, 1) ~= "/" then which = dir .. "/" .. which end
  return M.check(read(which), "tiles: " .. which)
end

--- The tile of each unit: an array parallel to units of tile indices.  A
--- unit with no tile is an error naming it (and the keys it could match).
function M.match(layout, units, who)
  who = who or "tiles"
  local index, keys = {}, {}
  for i, t in ipairs(layout.tiles) do
    for _, k in ipairs(t.keys) do
      index[norm(k)] = i
      keys[#keys + 1] = tostring(k)
    end
  end
  local out, taken, missing = {}, {}, {}
  for j, u in ipairs(units) do
    -- a code read as a number (110000.0) names the tile keyed "110000"
    local key = cell(u) or tostring(u)
    local i = index[norm(key)]
    if not i then
      missing[#missing + 1] = "'" .. key .. "'" .. suggest.did_you_mean(key, keys)
    elseif taken[i] then
      raise(string.format("%s: units '%s' and '%s' both name the tile at row %d, col %d of %s", who,
        cell(units[taken[i]]), key, layout.tiles[i].row, layout.tiles[i].col, layout.name or "the layout"))
    else
      taken[i] = j
      out[j] = i
    end
  end
  if #missing > 0 then
    raise(string.format("%s: %d unit%s ha%s no tile in %s: %s", who, #missing, #missing == 1 and "" or "s",
      #missing == 1 and "s" or "ve", layout.name or "the layout", table.concat(missing, ", ")))
  end
  return out
end

return M
