-- spillover.parts: the independent work inside one scenario run (the points
-- of each sweep, the cells of the specification curve) computed by other
-- processes (the workers of `spillover run -j N`, or the array tasks of a
-- Slurm batch) and put back, so that the run's output is byte-identical to
-- the output of one process.
--
-- A run split into N parts: part k computes, of every list of work items,
-- the contiguous block k (blocks as even as they go, as sp.mpi.range deals
-- replications) and writes the items' records to <outdir>.parts/k-of-N.json;
-- the run that assembles reads the N files and takes every item's record from
-- them instead of computing it.  Records are plain data written exactly
-- (floats in hexadecimal, integers kept integers), and each part file names
-- the inputs it was computed from (the SHA-256 of the scenario, data and
-- plugins, the --set values, the version), so parts made from other inputs
-- are refused rather than mixed into one result.
local core = require "spillover.core"
local json = require "spillover.json"
local util = require "spillover.util"
local raise = util.raise

local M = {}

--- The folder of a run's part files.
function M.dir(outdir) return outdir .. ".parts" end

--- The file of part k of n in dir.
function M.file(dir, k, n) return string.format("%s/%d-of-%d.json", dir, k, n) end

--- The most parts a run is split into (each is a file and a process).
M.MAX = 10000

--- "K/N" as two whole numbers 1 <= K <= N <= M.MAX; raises naming the option.
function M.parse(text)
  local k, n = tostring(text):match("^(%d+)/(%d+)$")
  k, n = math.tointeger(tonumber(k)), math.tointeger(tonumber(n))
  if not k or n < 1 or k < 1 or k > n or n > M.MAX then
    raise(string.format("--part needs K/N with 1 <= K <= N <= %d (part K of N), got '%s'", M.MAX, tostring(text)))
  end
  return k, n
end

-- ---- exact records --------------------------------------------------------------
-- JSON cannot carry every double (NaN, infinities, -0) nor tell 2.0 from 2,
-- and its objects have string keys only; a record is therefore written as
-- tagged values: {"f": "<%a>"} for a float, {"t": [[key, value], ...]} for a
-- table, and a list of flat records (a sweep's long table) by column,
-- {"c": [n, [[key, column], ...]]}, a column of floats {"fa": ["<%a>", ...]},
-- any other column an array of tagged values (null where a record has none):
-- a tenth of the text, which is what the assembly spends its time reading.

local function hexfloat(x)
  return x ~= x and "nan" or x == math.huge and "inf" or x == -math.huge and "-inf" or string.format("%a", x)
end

local function is_scalar(x)
  local t = type(x)
  return t == "number" or t == "string" or t == "boolean"
end

-- The keys of a sequence of n >= 2 flat records (tables without a metatable,
-- scalar values), or nil when v is not one.
local function record_keys(v)
  local n = #v
  if n < 2 then return nil end
  local keys, seen = {}, {}
  for k, r in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n or type(r) ~= "table" or getmetatable(r) ~= nil then return nil end
    for key, x in pairs(r) do
      if type(key) ~= "string" or not is_scalar(x) then return nil end
      if not seen[key] then seen[key] = true; keys[#keys + 1] = key end
    end
  end
  table.sort(keys)
  return keys, n
end

local pack

local function pack_column(v, key, n)
  local floats = true
  for i = 1, n do floats = floats and math.type(v[i][key]) == "float" end
  local out = {}
  for i = 1, n do
    local x = v[i][key]
    if floats then out[i] = hexfloat(x) elseif x == nil then out[i] = json.null else out[i] = pack(x, 0) end
  end
  return floats and { fa = json.array(out) } or json.array(out)
end

pack = function(v, depth)
  local t = type(v)
  if t == "string" or t == "boolean" or math.type(v) == "integer" then return v end
  if t == "number" then return { f = hexfloat(v) } end
  if t == "table" and getmetatable(v) == nil and depth < 32 then
    local rkeys, n = record_keys(v)
    if rkeys then
      local cols = {}
      for i, key in ipairs(rkeys) do cols[i] = json.array { key, pack_column(v, key, n) } end
      return { c = json.array { n, json.array(cols) } }
    end
    local pairs_ = {}
    for i, k in ipairs(util.sorted_keys(v)) do pairs_[i] = json.array { pack(k, depth + 1), pack(v[k], depth + 1) } end
    return { t = json.array(pairs_) }
  end
  raise("parts: a work item's record holds a " .. t .. ", which cannot be written to a part file")
end

local SPECIAL = { nan = 0 / 0, inf = math.huge, ["-inf"] = -math.huge }

local function not_part(where, what) raise(where .. ": not a spillover part file (" .. what .. ")") end

-- (a hexadecimal numeral with an exponent reads as a float, -0 kept)
local function float_of(s, where)
  local x = type(s) == "string" and (SPECIAL[s] or (s:match("^%-?0x[%x.]+p[-+]%d+$") and tonumber(s)))
  if math.type(x) ~= "float" then not_part(where, "a float is not a hexadecimal numeral") end
  return x
end

local unpack_

local function unpack_column(col, key, n, out, where)
  local fa = type(col) == "table" and col.fa
  local list = fa or col
  if type(list) ~= "table" or #list ~= n then not_part(where, "a column is not as long as its records") end
  for i = 1, n do
    local x = list[i]
    if fa then out[i][key] = float_of(x, where)
    elseif x ~= json.null then out[i][key] = unpack_(x, where) end
  end
end

unpack_ = function(v, where)
  local t = type(v)
  if t == "string" or t == "boolean" or math.type(v) == "integer" then return v end
  local only = t == "table" and next(v) ~= nil and next(v, next(v)) == nil and next(v)
  if only == "f" then return float_of(v.f, where) end
  if only == "t" and type(v.t) == "table" then
    local out = {}
    for i, kv in ipairs(v.t) do
      local k = type(kv) == "table" and #kv == 2 and unpack_(kv[1], where)
      if (type(k) ~= "string" and type(k) ~= "number") or k ~= k then
        not_part(where, "entry " .. i .. " of a record is not a key and a value")
      end
      out[k] = unpack_(kv[2], where)
    end
    return out
  end
  if only == "c" and type(v.c) == "table" and math.type(v.c[1]) == "integer" and type(v.c[2]) == "table" then
    local n, out = v.c[1], {}
    for i = 1, n do out[i] = {} end
    for _, kc in ipairs(v.c[2]) do
      if type(kc) ~= "table" or type(kc[1]) ~= "string" then not_part(where, "a column has no name") end
      unpack_column(kc[2], kc[1], n, out, where)
    end
    return out
  end
  not_part(where, "a value is not a tagged record")
end

-- ---- the split a run does --------------------------------------------------------

--- The records of items 1..count of the list `key` (one per sweep, one for
--- the curve): compute(i) returns item i's record (plain data).  split is nil
--- for a whole run (everything computed here), a part (computes its block,
--- keeps the records for its file and returns nil: the caller stops there) or
--- an assembly (the records from the part files).
function M.map(split, key, count, compute)
  if not split then
    local out = {}
    for i = 1, count do out[i] = compute(i) end
    return out
  end
  if split.k then
    local first, last = util.block(count, split.k, split.n)
    local list = {}
    for i = first, last do list[#list + 1] = compute(i) end
    split.records[key] = { first = first, count = count, list = list }
    return nil
  end
  local out = {}
  for k = 1, split.n do
    local first, last = util.block(count, k, split.n)
    local got = split.parts[k].records[key]
    if type(got) ~= "table" or got.first ~= first or got.count ~= count or type(got.list) ~= "table"
        or #got.list ~= last - first + 1 then
      raise(string.format("%s: its items of %s are not items %d-%d of %d (the part was computed from another " ..
        "version of the scenario; compute it again)", split.parts[k].file, key, first, last, count))
    end
    for i, r in ipairs(got.list) do out[first + i - 1] = r end
  end
  return out
end

--- A part of a run: k of n, what it was computed from (stamp: plain data
--- that every part of the same run shares).
function M.part(k, n, stamp) return { k = k, n = n, stamp = stamp, records = {} } end

--- Write a part's records to its file in dir (written whole, then renamed
--- into place: a killed part leaves no file, never half of one).
function M.write(split, dir)
  local S = core.sys
  local ok, err = S.mkdir(dir, { parents = true })
  if not ok then raise("cannot create " .. dir .. ": " .. tostring(err)) end
  local path = M.file(dir, split.k, split.n)
  local tmp = path .. ".tmp-" .. S.getpid()
  local text = json.encode({ spillover_part = json.array { split.k, split.n }, stamp = pack(split.stamp, 0),
    records = pack(split.records, 0) }) .. "\n"
  local f, ferr = io.open(tmp, "wb")
  if not f then raise(ferr) end
  local wok, werr = f:write(text)
  if wok then wok, werr = f:close() else f:close() end
  if wok then wok, werr = S.fsync(tmp) end
  if wok then wok, werr = S.rename(tmp, path) end
  if not wok then
    os.remove(tmp)
    raise("cannot write " .. path .. ": " .. tostring(werr))
  end
  return path
end

--- The part numbers 1..n that have no file in dir.
function M.missing(dir, n)
  local out = {}
  for k = 1, n do
    if not core.sys.isfile(M.file(dir, k, n)) then out[#out + 1] = k end
  end
  return out
end

local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b or (a ~= a and b ~= b) end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

--- The assembly of the n parts in dir, which must all be there and have
--- been computed from stamp.
function M.assembly(dir, n, stamp)
  local missing = M.missing(dir, n)
  if #missing > 0 then
    local shown = {}
    for i, k in ipairs(missing) do shown[i] = tostring(k) end
    raise(string.format("part%s %s of %d missing in %s/ (compute each with `spillover run ... --part K/%d`)",
      #missing > 1 and "s" or "", table.concat(shown, ", "), n, dir, n))
  end
  local parts = {}
  for k = 1, n do
    local file = M.file(dir, k, n)
    local doc = json.read(file)
    local id = type(doc) == "table" and doc.spillover_part
    if type(id) ~= "table" or id[1] ~= k or id[2] ~= n then raise(file .. ": not part " .. k .. " of " .. n) end
    if not same(unpack_(doc.stamp, file), stamp) then
      raise(file .. ": computed from other inputs than this run's (the scenario, its data, plugins, --set " ..
        "values or spillover changed since): compute the parts again")
    end
    local records = unpack_(doc.records, file)
    parts[k] = { file = file, records = records }
  end
  return { n = n, parts = parts }
end

return M
