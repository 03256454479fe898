-- bench/spatial/summary.lua DIR REPS: the table of bench/spatial/compare.sh
-- from the outputs it wrote in DIR (times are CPU seconds as each program
-- reports them; peak RSS from /usr/bin/time -v).
local dir, reps = arg[1], math.tointeger(tonumber(arg[2]))

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function stats(v)
  if #v == 0 then return nil end
  local s = {}
  for i, x in ipairs(v) do s[i] = x end
  table.sort(s)
  local m = #s % 2 == 1 and s[(#s + 1) // 2] or (s[#s // 2] + s[#s // 2 + 1]) / 2
  return { min = s[1], med = m, max = s[#s], n = #s }
end

local function fmt(st, digits)
  if not st then return "—" end
  local f = "%." .. (digits or 3) .. "f"
  return string.format(f .. " / " .. f .. " / " .. f, st.min, st.med, st.max)
end

local function rss(path)  -- MB
  local s = read(path .. ".time")
  local kb = s and s:match("Maximum resident set size %(kbytes%): (%d+)")
  return kb and tonumber(kb) / 1024 or nil
end

local function coefs(s)
  local c = {}
  for name, b, se in s:gmatch("coef (%S+) (%S+) (%S+)") do c[name] = { tonumber(b), tonumber(se) } end
  return c
end

local rows, ratios = {}, {}
local function collect(prefix, pattern)
  local out = {}
  for r = 1, reps do
    local s = read(string.format("%s/%s_%d.txt", dir, prefix, r))
    if s then
      local vals = { s:match(pattern) }
      for i, v in ipairs(vals) do
        out[i] = out[i] or {}
        out[i][#out[i] + 1] = tonumber(v)
      end
    end
  end
  return out
end

local function peak(prefix)
  local v = {}
  for r = 1, reps do v[#v + 1] = rss(string.format("%s/%s_%d", dir, prefix, r)) end
  return stats(v)
end

local spw = collect("sp_weights", "knn%(k=%d+%) ([%d.]+)s, distance%(cutoff=[^,]+, %d+ links%) ([%d.]+)s")
local rw = collect("r_weights", "knn%(k=%d+%) ([%d.]+)s, distance%(cutoff=[^,]+, %d+ links%) ([%d.]+)s")
local sps = collect("sp_sdm", "fits ([%d.]+) ([%d.]+)")
local rs = collect("r_sdm", "fits ([%d.]+) ([%d.]+)")

local function pair_ratio(a, b)  -- b[i] / a[i] for runs present in both, else against b's median
  local v = {}
  if not a or not b then return nil end
  if #b == #a then
    for i = 1, #a do v[i] = b[i] / a[i] end
  else
    local mb = stats(b).med
    for i = 1, #a do v[i] = mb / a[i] end
  end
  return stats(v)
end

print("| case | spillover CPU s (min / median / max) | R CPU s (min / median / max) | R / spillover (min / median / max) |")
print("|---|---|---|---|")
local cases = {
  { "kNN weights (k = 6), N = 30,000", spw[1], rw[1] },
  { "distance-band weights (r = 0.01), N = 30,000", spw[2], rw[2] },
  { "SDM N = 3,000, first fit in a fresh process", sps[1], rs[1] },
  { "SDM N = 3,000, second fit", sps[2], rs[2] },
}
for _, c in ipairs(cases) do
  local a, b = c[2] and stats(c[2]), c[3] and stats(c[3])
  print(string.format("| %s | %s | %s | %s |", c[1], fmt(a), fmt(b), fmt(pair_ratio(c[2], c[3]), 1)))
end
print(string.format("\nruns: spillover weights %d, R weights %d, SDM pairs %d (R: ratios against its median when it ran fewer times)",
  spw[1] and #spw[1] or 0, rw[1] and #rw[1] or 0, sps[1] and #sps[1] or 0))
print(string.format("peak RSS MB (max over runs): weights spillover %.0f, R %.0f; SDM spillover %.0f, R %.0f",
  (peak("sp_weights") or {}).max or 0, (peak("r_weights") or {}).max or 0, (peak("sp_sdm") or {}).max or 0,
  (peak("r_sdm") or {}).max or 0))

local a, b = read(dir .. "/sp_sdm_1.txt"), read(dir .. "/r_sdm_1.txt")
if a and b then
  local ca, cb = coefs(a), coefs(b)
  local db, dse, worst, n = 0, 0, nil, 0
  for name, v in pairs(ca) do
    if cb[name] then
      n = n + 1
      local d = math.abs(v[1] - cb[name][1])
      if d > db then db, worst = d, name end
      dse = math.max(dse, math.abs(v[2] - cb[name][2]))
    end
  end
  print(string.format("SDM estimates, %d coefficients in both: max |difference| %.2g (%s), standard errors %.2g",
    n, db, worst or "-", dse))
end
