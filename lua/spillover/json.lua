-- spillover.json: JSON decoding (with line:column errors) and deterministic
-- encoding (sorted keys, numbers in the shortest form that reads back to the
-- same double), so the same results always give byte-identical files.
local raise = require("spillover.util").raise
local json = {}

local null = setmetatable({}, { __tostring = function() return "null" end })
json.null = null

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function decode_error(s, pos, name, what)
  local line, col = 1, 1
  for i = 1, pos - 1 do
    if s:byte(i) == 10 then line, col = line + 1, 1 else col = col + 1 end
  end
  raise(string.format("%s:%d:%d: %s", name or "json", line, col, what))
end

local function utf8_char(cp) return utf8.char(cp) end

--- Decode a JSON text. `name` labels errors (a file name).
function json.decode(s, name)
  local pos = 1
  local function ws()
    pos = s:find("[^ \t\r\n]", pos) or #s + 1
  end
  local value
  local function str()
    local buf, i = {}, pos + 1
    while true do
      local c = s:sub(i, i)
      if c == "" then decode_error(s, pos, name, "unterminated string") end
      if c == '"' then pos = i + 1; return table.concat(buf) end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        if e == "u" then
          local hex = s:sub(i + 2, i + 5)
          if not hex:match("^%x%x%x%x$") then decode_error(s, i, name, "bad \\u escape") end
          local cp = tonumber(hex, 16)
          i = i + 6
          if cp >= 0xD800 and cp <= 0xDBFF and s:sub(i, i + 1) == "\\u" then
            local lo = tonumber(s:sub(i + 2, i + 5), 16)
            if lo and lo >= 0xDC00 and lo <= 0xDFFF then
              cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
              i = i + 6
            end
          end
          buf[#buf + 1] = utf8_char(cp)
        elseif escapes[e] then
          buf[#buf + 1] = escapes[e]
          i = i + 2
        else
          decode_error(s, i, name, "bad escape '\\" .. e .. "'")
        end
      else
        local j = s:find('["\\]', i) or #s + 1
        buf[#buf + 1] = s:sub(i, j - 1)
        i = j
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then decode_error(s, pos, name, "expected a string key") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then decode_error(s, pos, name, "expected ':' after key") end
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then decode_error(s, pos - 1, name, "expected ',' or '}' in object") end
      end
    elseif c == "[" then
      local t, n = {}, 0
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
      while true do
        n = n + 1
        t[n] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then decode_error(s, pos - 1, name, "expected ',' or ']' in array") end
      end
    elseif c == '"' then
      return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return null
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if num == nil or num == "" or num == "-" then decode_error(s, pos, name, "unexpected character '" .. c .. "'") end
      pos = pos + #num
      local v = tonumber(num)
      if v == nil then decode_error(s, pos - #num, name, "bad number '" .. num .. "'") end
      return math.type(v) == "integer" and v or v + 0.0
    end
  end
  local v = value()
  ws()
  if pos <= #s then decode_error(s, pos, name, "trailing characters after the JSON value") end
  return v
end

--- Read and decode a JSON file; errors name the file.
function json.read(path)
  local f, msg = io.open(path, "rb")
  if not f then raise(msg) end
  local s = f:read("a")
  f:close()
  return json.decode(s, path)
end

--- The shortest decimal form of x that reads back to the same double.
function json.number(x)
  if math.type(x) == "integer" then return tostring(x) end
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  if x == math.floor(x) and math.abs(x) < 2^53 then return string.format("%.0f", x) end
  for digits = 15, 17 do
    local s = string.format("%." .. digits .. "g", x)
    if tonumber(s) == x then return s end
  end
  return string.format("%.17g", x)
end

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = #t
  if n == 0 then return next(t) == nil and getmetatable(t) == json.array_mt end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

json.array_mt = {}
--- Mark a (possibly empty) table to be encoded as an array.
function json.array(t) return setmetatable(t or {}, json.array_mt) end

local function encode(v, indent, depth, out, active)
  local tv = type(v)
  if v == null or v == nil then out[#out + 1] = "null"
  elseif tv == "boolean" then out[#out + 1] = tostring(v)
  elseif tv == "number" then out[#out + 1] = json.number(v)
  elseif tv == "string" then out[#out + 1] = quote(v)
  elseif tv == "table" then
    if active[v] then raise("json.encode: a table contains itself; JSON cannot represent cycles") end
    active[v] = true
    local nl = indent and ("\n" .. string.rep(indent, depth + 1)) or ""
    local close = indent and ("\n" .. string.rep(indent, depth)) or ""
    if is_array(v) then
      if #v == 0 then out[#out + 1] = "[]"; active[v] = nil; return end
      out[#out + 1] = "["
      for i = 1, #v do
        out[#out + 1] = (i > 1 and "," or "") .. nl
        encode(v[i], indent, depth + 1, out, active)
      end
      out[#out + 1] = close .. "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      if #keys == 0 then out[#out + 1] = "{}"; active[v] = nil; return end
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        local val = v[k]
        if val == nil then val = v[tonumber(k)] end
        out[#out + 1] = (i > 1 and "," or "") .. nl .. quote(k) .. (indent and ": " or ":")
        encode(val, indent, depth + 1, out, active)
      end
      out[#out + 1] = close .. "}"
    end
    active[v] = nil
  else
    local mt = getmetatable(v)
    if mt and mt.__tojson then return encode(mt.__tojson(v), indent, depth, out, active) end
    raise("json.encode: cannot encode a " .. tv)
  end
end

--- Encode v; opts.indent (e.g. "  ") pretty-prints.
function json.encode(v, opts)
  local out = {}
  encode(v, opts and opts.indent, 0, out, {})
  return table.concat(out)
end

return json
