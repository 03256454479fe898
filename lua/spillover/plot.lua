-- spillover.plot: journal-style figures (PNG and SVG) over spillover.plotcore.
--
--   local plot = require "spillover.plot"
--   plot.paths("out/effect.png", {series = {{label = "东部", x = years, y = eff, lo = lo, hi = hi}, ...},
--              xlabel = "年份", ylabel = "效应", title = "...", zero_line = true})
--   plot.bars(path, {labels = provinces, values = v, lo = lo, hi = hi, horizontal = true, sort = true})
--   plot.coef(path, {fits = {m1, m2}, labels = {"(1)", "(2)"}})   or {names=, est=, lo=, hi=}
--   plot.event_study(path, {periods = {-4, ..., 4}, est = b, lo = lo, hi = hi, ref = -1})
--   plot.lines(path, {x = gamma, series = {{label = "LR", y = lr}}, hlines = {7.35}})
--   plot.tilemap(path, {tiles = "cn31", units = provinces, values = eff, lo = lo, hi = hi})
--
-- The format comes from the extension (.png or .svg); path may also be an
-- array of paths ({"fig.png", "fig.svg"}) to write the same figure twice.
-- Each file is written to a temporary name next to the target and renamed,
-- so a reader never sees half a figure.  Every function returns the path(s).
--
-- Common options: title, xlabel, ylabel, width and height (inches, default
-- 3.5 x 2.6, one journal column), dpi (PNG, default 300), fontsize (points,
-- default 8.5), font (a fontconfig family list; Chinese falls back to Noto
-- Sans CJK), legend = false to omit the legend.
--
-- Style: white background, black left and bottom axes with outward ticks,
-- the Okabe-Ito colour-blind-safe palette, translucent bands, a grey dashed
-- zero line, the legend above the plotting area (it never covers data).
local pc = require "spillover.plotcore"
local util = require "spillover.util"
local raise = util.raise

local M = {}

M.palette = { "#0072B2", "#D55E00", "#009E73", "#E69F00", "#56B4E9", "#CC79A7", "#000000", "#F0E442" }
local SHAPES = { "circle", "square", "diamond", "triangle", "triangle_down" }
local GREY = "#808080"
local MINUS = "\u{2212}"

-- ---- argument checking --------------------------------------------------------

local function fail(fname, msg) raise("plot." .. fname .. ": " .. msg) end

local function describe(v)
  if v == nil then return "nil" end
  return "a " .. type(v)
end

-- A numeric array (NaN allowed when gaps) as a plain table.
local function numbers(fname, v, what, gaps)
  if type(v) ~= "table" then
    fail(fname, string.format("%s must be an array of numbers, got %s", what, describe(v)))
  end
  local out, n = {}, #v
  for i = 1, n do
    local x = v[i]
    if math.type(x) == nil then
      fail(fname, string.format("%s[%d] must be a number, got %s", what, i, describe(x)))
    end
    if x ~= x and not gaps then
      fail(fname, string.format("%s[%d] is NaN; expected a number", what, i))
    end
    if x == math.huge or x == -math.huge then
      fail(fname, string.format("%s[%d] is infinite; expected a finite number", what, i))
    end
    out[i] = x + 0.0
  end
  return out
end

local function strings(fname, v, what)
  if type(v) ~= "table" then
    fail(fname, string.format("%s must be an array of strings, got %s", what, describe(v)))
  end
  local out = {}
  for i = 1, #v do
    if type(v[i]) ~= "string" and math.type(v[i]) == nil then
      fail(fname, string.format("%s[%d] must be a string, got %s", what, i, describe(v[i])))
    end
    out[i] = tostring(v[i])
  end
  return out
end

local function same_length(fname, what, a, an, b, bn)
  if #a ~= #b then
    fail(fname, string.format("%s has %d %s values but %d %s values", what, #a, an, #b, bn))
  end
end

-- spec.lo and spec.hi (both or neither; NaN marks a gap), each as long as
-- ref: nil, nil when neither is given.
local function bounds(fname, spec, what, ref, refname)
  if spec.lo == nil and spec.hi == nil then return nil, nil end
  local lo, hi = numbers(fname, spec.lo, "lo", true), numbers(fname, spec.hi, "hi", true)
  same_length(fname, what, ref, refname, lo, "lo")
  same_length(fname, what, ref, refname, hi, "hi")
  return lo, hi
end

local function opt_string(fname, spec, key)
  local v = spec[key]
  if v ~= nil and type(v) ~= "string" then
    fail(fname, string.format("option '%s' must be a string, got %s", key, describe(v)))
  end
  return v
end

-- ---- text measurement (an estimate: the driver does not report widths) ------------

local function text_width(s, size)
  local w = 0
  for _, c in utf8.codes(s) do
    if c >= 0x2E80 then w = w + 1.0
    elseif c == 32 or c == 46 or c == 44 or c == 105 or c == 108 or c == 106 or c == 39 then w = w + 0.28
    elseif c == 45 or c == 40 or c == 41 or c == 116 or c == 102 or c == 114 then w = w + 0.36
    elseif c >= 65 and c <= 90 then w = w + 0.68
    elseif c == 109 or c == 119 or c == 77 or c == 87 then w = w + 0.85
    elseif c == 0x2212 then w = w + 0.58
    else w = w + 0.56 end
  end
  return w * size
end

-- ---- ticks ---------------------------------------------------------------------

local function nice(x, round)
  local e = math.floor(math.log(x, 10))
  local f = x / 10 ^ e
  local nf
  if round then
    nf = f < 1.5 and 1 or f < 3 and 2 or f < 7 and 5 or 10
  else
    nf = f <= 1 and 1 or f <= 2 and 2 or f <= 5 and 5 or 10
  end
  return nf * 10 ^ e
end

local function decimals(step)
  local d = math.max(0, -math.floor(math.log(step, 10) + 1e-9))
  while d < 10 and math.abs(step * 10 ^ d - math.floor(step * 10 ^ d + 0.5)) > 1e-6 * 10 ^ d * step do d = d + 1 end
  return d
end

local function fmt_num(v, d)
  local s = string.format("%." .. d .. "f", v)
  if tonumber(s) == 0 then s = s:gsub("^%-", "") end
  return (s:gsub("^%-", MINUS))
end

-- Ticks inside [lo, hi], about n of them (integers only when integer).
local function ticks(lo, hi, n, integer)
  local step = nice((hi - lo) / math.max(n - 1, 1), true)
  if integer and step < 1 then step = 1 end
  local k0, k1 = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
  local t = {}
  for k = k0, k1 do t[#t + 1] = k * step end
  local d = decimals(step)
  local labels = {}
  for i, v in ipairs(t) do labels[i] = fmt_num(v, d) end
  return t, labels
end

-- Data range [lo, hi] padded by frac on each side (a point becomes an interval).
local function padded(lo, hi, frac)
  if hi < lo then lo, hi = 0, 1 end
  if hi == lo then
    local d = math.abs(lo) > 0 and math.abs(lo) * 0.1 or 1
    return lo - d, hi + d
  end
  local d = (hi - lo) * frac
  return lo - d, hi + d
end

-- ---- figure: layout in points over one plotcore session ---------------------------

local Fig = {}
Fig.__index = Fig

-- The session seen by the drawing code: every text drawn is also recorded,
-- for the <title> and <desc> of SVG files (cairo writes glyphs as paths).
local function recording(s, texts)
  local p = {}
  for _, k in ipairs { "viewport", "window", "line", "fill", "points", "mtext", "box", "size", "close" } do
    p[k] = function(_, ...) return s[k](s, ...) end
  end
  p.text = function(_, x, y, str, o)
    texts[#texts + 1] = str
    return s:text(x, y, str, o)
  end
  return p
end

local function new_fig(s, spec)
  local W, H = s:size()
  local f = setmetatable({ s = s, W = W, H = H, fs = spec.fontsize or 8.5, spec = spec }, Fig)
  f.L, f.R, f.B, f.T = 6, 10, 6, 6
  return f
end

-- Margins from the tick labels, axis labels, title and legend.
function Fig:layout(ylabels_width, xlabel_rows, legend)
  local fs, spec = self.fs, self.spec
  self.L = 4 + (spec.ylabel and fs * 1.5 or 0) + ylabels_width + 5 + 3
  self.B = 4 + (spec.xlabel and fs * 1.5 or 0) + (xlabel_rows or fs * 1.25) + 3 + 3
  local top = 5
  if spec.title then top = top + fs * 1.6 end
  self.title_y = self.H - 4 - fs * 0.65
  if legend and #legend > 0 and spec.legend ~= false then
    self.legend = legend
    self:legend_rows()
    self.legend_top = self.H - top
    top = top + #self.legend_rows_ * fs * 1.35 + 3
  end
  self.T = top
end

function Fig:legend_rows()
  local fs = self.fs
  local avail = self.W - 8
  local rows, row, w = {}, {}, 0
  for _, e in ipairs(self.legend) do
    local ew = 16 + 3 + text_width(e.label, fs) + 10
    if #row > 0 and w + ew > avail then
      rows[#rows + 1] = { items = row, width = w - 10 }
      row, w = {}, 0
    end
    row[#row + 1] = e
    w = w + ew
  end
  if #row > 0 then rows[#rows + 1] = { items = row, width = w - 10 } end
  self.legend_rows_ = rows
end

function Fig:frame(xmin, xmax, ymin, ymax)
  self.xmin, self.xmax, self.ymin, self.ymax = xmin, xmax, ymin, ymax
  self.x0, self.x1 = self.L, self.W - self.R
  self.y0, self.y1 = self.B, self.H - self.T
  if self.x1 - self.x0 < 20 or self.y1 - self.y0 < 20 then
    raise("the figure is too small for its labels (enlarge width/height or shorten the labels)")
  end
  self.s:viewport(self.x0 / self.W, self.x1 / self.W, self.y0 / self.H, self.y1 / self.H)
  self.s:window(xmin, xmax, ymin, ymax)
end

function Fig:px(x) return self.x0 + (x - self.xmin) / (self.xmax - self.xmin) * (self.x1 - self.x0) end
function Fig:py(y) return self.y0 + (y - self.ymin) / (self.ymax - self.ymin) * (self.y1 - self.y0) end

local function pline(s, xs, ys, opts)
  opts = opts or {}
  opts.page = true
  s:line(xs, ys, opts)
end

-- Bottom axis: line, outward ticks and labels at world positions t.
function Fig:xaxis(t, labels, opts)
  opts = opts or {}
  local s, fs = self.s, self.fs
  pline(s, { self.x0, self.x1 }, { self.y0, self.y0 }, { width = 0.6 })
  local size = opts.size or fs
  for i, v in ipairs(t) do
    local x = self:px(v)
    if x >= self.x0 - 0.01 and x <= self.x1 + 0.01 then
      pline(s, { x, x }, { self.y0, self.y0 - 3 }, { width = 0.6 })
      if labels[i] and labels[i] ~= "" then
        if opts.angle then
          s:text(x + size * 0.3, self.y0 - 5, labels[i], { page = true, just = 1, angle = opts.angle, size = size })
        else
          s:text(x, self.y0 - 5 - size * 0.6, labels[i], { page = true, just = 0.5, size = size })
        end
      end
    end
  end
  if self.spec.xlabel then
    s:text((self.x0 + self.x1) / 2, 4 + fs * 0.6, self.spec.xlabel, { page = true, just = 0.5 })
  end
end

-- Left axis: line, outward ticks and labels at world positions t.
function Fig:yaxis(t, labels, opts)
  opts = opts or {}
  local s, fs = self.s, self.fs
  local size = opts.size or fs
  pline(s, { self.x0, self.x0 }, { self.y0, self.y1 }, { width = 0.6 })
  for i, v in ipairs(t) do
    local y = self:py(v)
    if y >= self.y0 - 0.01 and y <= self.y1 + 0.01 then
      if not opts.noticks then pline(s, { self.x0, self.x0 - 3 }, { y, y }, { width = 0.6 }) end
      if labels[i] and labels[i] ~= "" then
        s:text(self.x0 - 5, y, labels[i], { page = true, just = 1, size = size })
      end
    end
  end
  if self.spec.ylabel then
    s:text(4 + fs * 0.6, (self.y0 + self.y1) / 2, self.spec.ylabel, { page = true, just = 0.5, angle = 90 })
  end
end

function Fig:decorate()
  local s, fs = self.s, self.fs
  if self.spec.title then
    s:text(self.W / 2, self.title_y, self.spec.title, { page = true, just = 0.5, size = fs + 1 })
  end
  if self.legend then
    local y = self.legend_top - fs * 0.65
    for _, row in ipairs(self.legend_rows_) do
      local x = math.max(4, (self.W - row.width) / 2)
      for _, e in ipairs(row.items) do
        if e.band then
          s:fill({ x, x + 16, x + 16, x }, { y - fs * 0.4, y - fs * 0.4, y + fs * 0.4, y + fs * 0.4 },
            { page = true, color = e.color, alpha = 0.25 })
        end
        if e.bar then
          s:fill({ x + 2, x + 14, x + 14, x + 2 }, { y - fs * 0.35, y - fs * 0.35, y + fs * 0.35, y + fs * 0.35 },
            { page = true, color = e.color })
        end
        if e.line ~= false and not e.bar then
          pline(s, { x, x + 16 }, { y, y }, { color = e.color, width = e.width or 1.2, dash = e.dash })
        end
        if e.shape then s:points({ x + 8 }, { y }, { page = true, color = e.color, size = 4, shape = e.shape }) end
        s:text(x + 19, y, e.label, { page = true, just = 0 })
        x = x + 16 + 3 + text_width(e.label, fs) + 10
      end
      y = y - fs * 1.35
    end
  end
end

-- Dashed grey reference lines in world coordinates (clipped to the frame).
function Fig:hline(y)
  self.s:line({ self.xmin, self.xmax }, { y, y }, { color = GREY, width = 0.6, dash = { 3, 2 } })
end
function Fig:vline(x)
  self.s:line({ x, x }, { self.ymin, self.ymax }, { color = GREY, width = 0.6, dash = { 3, 2 } })
end

local function max_width(labels, size)
  local w = 0
  for _, l in ipairs(labels) do w = math.max(w, text_width(l, size)) end
  return w
end

-- ---- files -------------------------------------------------------------------------

local DEVICES = { png = "png", svg = "svg" }

local function reason(msg, path)
  msg = tostring(msg)
  local i = msg:find(path, 1, true)
  if i and msg:sub(i + #path, i + #path + 1) == ": " then return msg:sub(i + #path + 2) end
  return msg
end

local function paths_of(fname, path)
  local list = type(path) == "table" and path or { path }
  if #list == 0 then fail(fname, "expected a file path ending in .png or .svg, got an empty list") end
  local out = {}
  for i, p in ipairs(list) do
    if type(p) ~= "string" then
      fail(fname, "expected a file path ending in .png or .svg, got " .. describe(p))
    end
    local ext = p:match("%.([^./\\]+)$")
    local dev = ext and DEVICES[ext:lower()]
    if not dev then
      fail(fname, string.format("cannot tell the format of '%s' from its extension: expected .png or .svg", p))
    end
    out[i] = { path = p, device = dev }
  end
  return out
end

local function check_common(fname, spec)
  for _, k in ipairs { "title", "xlabel", "ylabel", "font" } do opt_string(fname, spec, k) end
  for _, k in ipairs { "width", "height", "dpi", "fontsize" } do
    local v = spec[k]
    if v ~= nil and (math.type(v) == nil or not (v > 0)) then
      fail(fname, string.format("option '%s' must be a positive number, got %s", k, tostring(v)))
    end
  end
end

-- Draw with draw(fig) into every target; atomic per file.
local function xml_escape(str)
  return (str:gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

-- Put the figure's title and all its text into the SVG as <title> and <desc>,
-- so the file is searchable and accessible.
local function svg_annotate(tmp, title, texts)
  local f = io.open(tmp, "rb")
  if not f then return false, "cannot reopen the SVG" end
  local body = f:read("a")
  f:close()
  local at = body:find("<svg[^>]*>")
  if not at then return false, "PLplot wrote no <svg> element" end
  local _, e = body:find("<svg[^>]*>")
  local seen, uniq = {}, {}
  for _, t in ipairs(texts) do
    if not seen[t] then seen[t] = true; uniq[#uniq + 1] = t end
  end
  local meta = string.format("\n<title>%s</title>\n<desc>%s</desc>", xml_escape(title or ""),
    xml_escape(table.concat(uniq, " | ")))
  f = io.open(tmp, "wb")
  if not f then return false, "cannot rewrite the SVG" end
  local ok, err = f:write(body:sub(1, e), meta, body:sub(e + 1))
  local cok, cerr = f:close()
  if not ok or not cok then return false, err or cerr end
  return true
end

local function render(fname, path, spec, draw)
  local targets = paths_of(fname, path)
  for _, t in ipairs(targets) do
    local tmp = string.format("%s.tmp-%s", t.path, tostring({}):match("0x(%x+)") or tostring(os.time()))
    local fh, msg = io.open(tmp, "wb")
    if not fh then fail(fname, string.format("cannot write '%s': %s", t.path, reason(msg, tmp))) end
    fh:close()
    local texts = {}
    local ok, err = pcall(function()
      local s <close> = pc.open(tmp, {
        device = t.device, width = spec.width or 3.5, height = spec.height or 2.6, units = "in",
        dpi = spec.dpi or 300, fontsize = spec.fontsize, font = spec.font,
      })
      draw(new_fig(recording(s, texts), spec))
      s:close()
    end)
    if ok then
      local f = io.open(tmp, "rb")
      local size = f and f:seek("end") or 0
      if f then f:close() end
      if size == 0 then ok, err = false, "PLplot wrote an empty file" end
    end
    if ok and t.device == "svg" then ok, err = svg_annotate(tmp, spec.title, texts) end
    if not ok then
      os.remove(tmp)
      fail(fname, string.format("cannot draw '%s': %s", t.path, util.message(err):gsub("^plot: ", "")))
    end
    local rok, rerr = os.rename(tmp, t.path)
    if not rok then
      os.remove(tmp)
      fail(fname, string.format("cannot write '%s': %s", t.path, reason(rerr, tmp)))
    end
  end
  return path
end

local function spec_table(fname, spec)
  if type(spec) ~= "table" then fail(fname, "expected an options table, got " .. describe(spec)) end
  check_common(fname, spec)
end

local function range_of(lists, lo, hi)
  lo, hi = lo or math.huge, hi or -math.huge
  for _, l in ipairs(lists) do
    for _, v in ipairs(l) do
      if v == v then
        if v < lo then lo = v end
        if v > hi then hi = v end
      end
    end
  end
  return lo, hi
end

local function all_integers(lists)
  for _, l in ipairs(lists) do
    for _, v in ipairs(l) do if v == v and v ~= math.floor(v) then return false end end
  end
  return true
end

-- ---- plot.paths ---------------------------------------------------------------------

local function check_series(fname, spec, need_x)
  local series = spec.series
  if type(series) ~= "table" or #series == 0 then
    fail(fname, "option 'series' must be a non-empty array of {label=, x=, y=, lo=, hi=}, got " ..
      (type(series) == "table" and "an empty table" or describe(series)))
  end
  local out = {}
  for i, sr in ipairs(series) do
    if type(sr) ~= "table" then fail(fname, string.format("series[%d] must be a table, got %s", i, describe(sr))) end
    local name = sr.label and string.format("series %d ('%s')", i, tostring(sr.label)) or string.format("series %d", i)
    local x = need_x and numbers(fname, sr.x, name .. ".x", true) or spec.x
    local y = numbers(fname, sr.y, name .. ".y", true)
    if #y == 0 then fail(fname, name .. " has no data (y is empty)") end
    same_length(fname, name, x, "x", y, "y")
    local e = { label = sr.label and tostring(sr.label), x = x, y = y, color = sr.color or M.palette[(i - 1) % #M.palette + 1],
      dash = sr.dash, shape = sr.shape, points = sr.points }
    if sr.lo ~= nil or sr.hi ~= nil then
      if sr.lo == nil or sr.hi == nil then fail(fname, name .. " gives only one of lo and hi") end
      e.lo = numbers(fname, sr.lo, name .. ".lo", true)
      e.hi = numbers(fname, sr.hi, name .. ".hi", true)
      same_length(fname, name, x, "x", e.lo, "lo")
      same_length(fname, name, x, "x", e.hi, "hi")
    end
    out[i] = e
  end
  return out
end

local function band(s, x, lo, hi, color)
  -- One polygon per run of complete points (a NaN breaks the band).
  local i, n = 1, #x
  while i <= n do
    while i <= n and (x[i] ~= x[i] or lo[i] ~= lo[i] or hi[i] ~= hi[i]) do i = i + 1 end
    local j = i
    while j <= n and x[j] == x[j] and lo[j] == lo[j] and hi[j] == hi[j] do j = j + 1 end
    if j - i >= 2 then
      local px, py = {}, {}
      for k = i, j - 1 do px[#px + 1], py[#py + 1] = x[k], hi[k] end
      for k = j - 1, i, -1 do px[#px + 1], py[#py + 1] = x[k], lo[k] end
      s:fill(px, py, { color = color, alpha = 0.22 })
    end
    i = j
  end
end

local function xy_plot(fname, spec, series, opts)
  local xs, ys = {}, {}
  for _, e in ipairs(series) do
    xs[#xs + 1] = e.x
    ys[#ys + 1] = e.y
    if e.lo then ys[#ys + 1] = e.lo; ys[#ys + 1] = e.hi end
  end
  local xlo, xhi = range_of(xs)
  local ylo, yhi = range_of(ys, opts.zero and 0 or nil, opts.zero and 0 or nil)
  for _, h in ipairs(opts.hlines or {}) do ylo, yhi = math.min(ylo, h), math.max(yhi, h) end
  if xlo > xhi or ylo > yhi then fail(fname, "no finite data to plot") end
  local integer_x = all_integers(xs)
  local legend = {}
  local labelled = false
  for _, e in ipairs(series) do if e.label then labelled = true end end
  if labelled then
    for i, e in ipairs(series) do
      legend[#legend + 1] = { label = e.label or ("series " .. i), color = e.color, band = e.lo ~= nil, dash = e.dash,
        shape = (opts.markers or e.points) and e.shape }
    end
  end
  local y0, y1 = padded(ylo, yhi, 0.06)
  local x0, x1 = xlo, xhi
  if x0 == x1 then x0, x1 = padded(x0, x1, 0) end
  if opts.xpad then x0, x1 = padded(x0, x1, opts.xpad) end
  return function(fig)
    local yt, yl = ticks(y0, y1, math.max(3, math.floor(((spec.height or 2.6) * 72 - 50) / 22)), false)
    local xt, xl = ticks(x0, x1, math.max(3, math.floor(((spec.width or 3.5) * 72 - 60) / 30)), integer_x)
    fig:layout(max_width(yl, fig.fs), nil, legend)
    fig:frame(x0, x1, y0, y1)
    local s = fig.s
    for _, e in ipairs(series) do if e.lo then band(s, e.x, e.lo, e.hi, e.color) end end
    if opts.zero then fig:hline(0) end
    for _, h in ipairs(opts.hlines or {}) do fig:hline(h) end
    for _, v in ipairs(opts.vlines or {}) do fig:vline(v) end
    for _, e in ipairs(series) do
      if not e.points then s:line(e.x, e.y, { color = e.color, width = 1.2, dash = e.dash }) end
      if opts.markers or e.points then s:points(e.x, e.y, { color = e.color, size = 3.5, shape = e.shape }) end
    end
    fig:xaxis(xt, xl)
    fig:yaxis(yt, yl)
    fig:decorate()
  end
end

--- Effect paths over time by group, with shaded intervals.
function M.paths(path, spec)
  spec_table("paths", spec)
  local series = check_series("paths", spec, true)
  local few = true
  for i, e in ipairs(series) do
    if #e.x > 15 then few = false end
    e.shape = e.shape or SHAPES[(i - 1) % #SHAPES + 1]
  end
  local draw = xy_plot("paths", spec, series,
    { zero = spec.zero_line ~= false, markers = spec.markers == nil and few or spec.markers, xpad = 0.02 })
  return render("paths", path, spec, draw)
end

--- A scatter plot: series = {{x=, y=, label=, color=, shape=}, ...} drawn as
--- points; fit = {intercept, slope} adds that line over the x range;
--- hlines/vlines reference lines (a Moran scatterplot's zero axes).
function M.scatter(path, spec)
  local F = "scatter"
  spec_table(F, spec)
  local series = check_series(F, spec, true)
  for i, e in ipairs(series) do
    e.points = true
    e.shape = e.shape or SHAPES[(i - 1) % #SHAPES + 1]
  end
  if spec.fit ~= nil then
    local a, b = table.unpack(numbers(F, spec.fit, "fit"))
    if a == nil or b == nil then fail(F, "fit must be {intercept, slope}") end
    local lo, hi = math.huge, -math.huge
    for _, e in ipairs(series) do
      for _, v in ipairs(e.x) do if v == v then lo, hi = math.min(lo, v), math.max(hi, v) end end
    end
    series[#series + 1] = { x = { lo, hi }, y = { a + b * lo, a + b * hi }, color = GREY, label = spec.fit_label }
  end
  local hl = spec.hlines and numbers(F, spec.hlines, "hlines") or nil
  local vl = spec.vlines and numbers(F, spec.vlines, "vlines") or nil
  local draw = xy_plot(F, spec, series, { hlines = hl, vlines = vl, xpad = 0.04 })
  return render(F, path, spec, draw)
end

--- A generic line chart: x shared by all series ({y=, label=, color=, dash=}).
function M.lines(path, spec)
  spec_table("lines", spec)
  local x = numbers("lines", spec.x, "x", true)
  if #x == 0 then fail("lines", "x is empty: nothing to plot") end
  local sp = setmetatable({ x = x }, { __index = spec })
  local series = check_series("lines", sp, false)
  local hl = spec.hlines and numbers("lines", spec.hlines, "hlines") or nil
  local vl = spec.vlines and numbers("lines", spec.vlines, "vlines") or nil
  local draw = xy_plot("lines", spec, series,
    { zero = spec.zero_line == true, hlines = hl, vlines = vl, markers = spec.markers })
  return render("lines", path, spec, draw)
end

-- ---- plot.event_study ---------------------------------------------------------------

--- Leads and lags with intervals, a zero line and a vertical line at 0.
function M.event_study(path, spec)
  local F = "event_study"
  spec_table(F, spec)
  local t = numbers(F, spec.periods, "periods")
  local est = numbers(F, spec.est, "est", true)
  if #t == 0 then fail(F, "periods is empty: nothing to plot") end
  same_length(F, "the event study", t, "period", est, "est")
  local lo, hi = bounds(F, spec, "the event study", t, "period")
  local ref = spec.ref == nil and -1 or spec.ref
  if ref ~= false and math.type(ref) == nil then fail(F, "ref must be a period (number) or false, got " .. describe(ref)) end
  local vline = spec.vline == nil and 0 or spec.vline
  local color = spec.color or M.palette[1]
  local xlo, xhi = range_of({ t }, ref or nil, ref or nil)
  local ylo, yhi = range_of({ est, lo or {}, hi or {} }, 0, 0)
  local x0, x1 = xlo - 0.6, xhi + 0.6
  local y0, y1 = padded(ylo, yhi, 0.06)
  local has_ref = false
  for i = 1, #t do if t[i] == ref then has_ref = true end end
  local draw = function(fig)
    local yt, yl = ticks(y0, y1, math.max(3, math.floor(((spec.height or 2.6) * 72 - 50) / 22)), false)
    local xt, xl = ticks(xlo, xhi, math.max(3, math.floor(((spec.width or 3.5) * 72 - 60) / 24)), true)
    fig:layout(max_width(yl, fig.fs), nil, nil)
    fig:frame(x0, x1, y0, y1)
    local s = fig.s
    fig:hline(0)
    if vline then fig:vline(vline) end
    if spec.ci == "band" and lo then
      band(s, t, lo, hi, color)
      s:line(t, est, { color = color, width = 1 })
    elseif lo then
      local cap = 0.12
      for i = 1, #t do
        if lo[i] == lo[i] and hi[i] == hi[i] then
          s:line({ t[i], t[i] }, { lo[i], hi[i] }, { color = color, width = 0.9 })
          s:line({ t[i] - cap, t[i] + cap }, { lo[i], lo[i] }, { color = color, width = 0.9 })
          s:line({ t[i] - cap, t[i] + cap }, { hi[i], hi[i] }, { color = color, width = 0.9 })
        end
      end
    end
    s:points(t, est, { color = color, size = 4 })
    if ref and not has_ref then s:points({ ref }, { 0 }, { color = color, size = 4, fill = false, width = 0.9 }) end
    fig:xaxis(xt, xl)
    fig:yaxis(yt, yl)
    fig:decorate()
  end
  return render(F, path, spec, draw)
end

-- ---- plot.bars -----------------------------------------------------------------------

--- Per-unit values with optional intervals: horizontal (default) or vertical bars.
function M.bars(path, spec)
  local F = "bars"
  spec_table(F, spec)
  local labels = strings(F, spec.labels, "labels")
  local values = numbers(F, spec.values, "values")
  if #labels == 0 then fail(F, "labels is empty: nothing to plot") end
  same_length(F, "the bar chart", labels, "label", values, "value")
  local lo, hi
  if spec.lo ~= nil or spec.hi ~= nil then
    lo = numbers(F, spec.lo, "lo")
    hi = numbers(F, spec.hi, "hi")
    same_length(F, "the bar chart", labels, "label", lo, "lo")
    same_length(F, "the bar chart", labels, "label", hi, "hi")
  end
  local n = #labels
  local order = {}
  for i = 1, n do order[i] = i end
  if spec.sort then
    table.sort(order, function(a, b)
      if values[a] ~= values[b] then return values[a] > values[b] end
      return a < b
    end)
  end
  local horizontal = spec.horizontal ~= false
  local fs = spec.fontsize or 8.5
  local sp = setmetatable({}, { __index = spec })
  -- Room for every category: grow the page along the category axis.
  if horizontal and spec.height == nil then sp.height = math.max(2.6, (n * fs * 1.3 + 70) / 72) end
  local vlo, vhi = range_of({ values, lo or {}, hi or {} }, 0, 0)
  local v0, v1 = padded(vlo, vhi, 0.05)
  if vlo >= 0 then v0 = 0 end
  if vhi <= 0 then v1 = 0 end
  -- All values zero: both ends were snapped to 0; keep the padded range.
  if v0 == v1 then v0, v1 = padded(vlo, vhi, 0.05) end
  local color = spec.color or M.palette[1]
  local draw = function(fig)
    local s = fig.s
    local cat = {}
    for k, i in ipairs(order) do cat[k] = labels[i] end
    local pos = {}
    if horizontal then
      for k = 1, n do pos[k] = n - k + 1 end -- first category on top
      local vt, vl = ticks(v0, v1, math.max(3, math.floor(((sp.width or 3.5) * 72 - 100) / 30)), false)
      fig:layout(max_width(cat, fs), nil, nil)
      fig:frame(v0, v1, 0.4, n + 0.6)
      for k, i in ipairs(order) do
        local y = pos[k]
        s:fill({ 0, values[i], values[i], 0 }, { y - 0.35, y - 0.35, y + 0.35, y + 0.35 }, { color = color })
      end
      if v0 < 0 and v1 > 0 then fig:vline(0) end
      if lo then
        for k, i in ipairs(order) do
          local y = pos[k]
          s:line({ lo[i], hi[i] }, { y, y }, { width = 0.8 })
          s:line({ lo[i], lo[i] }, { y - 0.18, y + 0.18 }, { width = 0.8 })
          s:line({ hi[i], hi[i] }, { y - 0.18, y + 0.18 }, { width = 0.8 })
        end
      end
      fig:xaxis(vt, vl)
      fig:yaxis(pos, cat, { noticks = false })
    else
      for k = 1, n do pos[k] = k end
      local vt, vl = ticks(v0, v1, math.max(3, math.floor(((sp.height or 2.6) * 72 - 50) / 22)), false)
      local plotw = (sp.width or 3.5) * 72 - 60
      local rotate = max_width(cat, fs) + 4 > plotw / n
      local rows = rotate and (max_width(cat, fs) * 0.71 + fs) or fs * 1.25
      fig:layout(max_width(vl, fs), rows, nil)
      fig:frame(0.4, n + 0.6, v0, v1)
      for k, i in ipairs(order) do
        local x = pos[k]
        s:fill({ x - 0.35, x + 0.35, x + 0.35, x - 0.35 }, { 0, 0, values[i], values[i] }, { color = color })
      end
      if v0 < 0 and v1 > 0 then fig:hline(0) end
      if lo then
        for k, i in ipairs(order) do
          local x = pos[k]
          s:line({ x, x }, { lo[i], hi[i] }, { width = 0.8 })
          s:line({ x - 0.18, x + 0.18 }, { lo[i], lo[i] }, { width = 0.8 })
          s:line({ x - 0.18, x + 0.18 }, { hi[i], hi[i] }, { width = 0.8 })
        end
      end
      fig:xaxis(pos, cat, { angle = rotate and 45 or nil })
      fig:yaxis(vt, vl)
    end
    fig:decorate()
  end
  return render(F, path, sp, draw)
end

-- ---- plot.ridgeline and plot.heatmap (distributions over periods) -------------------------

--- Densities stacked over periods (a ridgeline): series = {{label =, x =, y =}, ...},
--- the first at the bottom; overlap (default 1.8) is the height of the tallest
--- density in steps between baselines.
function M.ridgeline(path, spec)
  local F = "ridgeline"
  spec_table(F, spec)
  local series = check_series(F, spec, true)
  local overlap = spec.overlap or 1.8
  if type(overlap) ~= "number" or not (overlap > 0) then fail(F, "overlap must be a positive number") end
  local xs, ys = {}, {}
  for i, e in ipairs(series) do xs[i], ys[i] = e.x, e.y end
  local xlo, xhi = range_of(xs)
  local _, ymax = range_of(ys, 0, 0)
  if not (xhi > xlo) or not (ymax > 0) then fail(F, "no finite density to plot") end
  local n = #series
  local scale = overlap / ymax
  local sp = setmetatable({}, { __index = spec })
  if spec.height == nil then sp.height = math.max(2.6, (n * 14 + 80) / 72) end
  local labels = {}
  for i, e in ipairs(series) do labels[i] = e.label or tostring(i) end
  local draw = function(fig)
    local s = fig.s
    local xt, xl = ticks(xlo, xhi, math.max(3, math.floor(((sp.width or 3.5) * 72 - 60) / 30)), false)
    fig:layout(max_width(labels, fig.fs), nil, nil)
    fig:frame(xlo, xhi, -0.2, n - 1 + overlap * 1.05)
    -- Back to front: a lower (earlier) density is drawn over the ones above it.
    for i = n, 1, -1 do
      local e, base = series[i], i - 1
      local px, py = { e.x[1] }, { base }
      for k = 1, #e.x do px[#px + 1], py[#py + 1] = e.x[k], base + e.y[k] * scale end
      px[#px + 1], py[#py + 1] = e.x[#e.x], base
      s:fill(px, py, { color = spec.color or M.palette[1], alpha = 0.55 })
      s:line(px, py, { color = "#000000", width = 0.6 })
    end
    local pos = {}
    for i = 1, n do pos[i] = i - 1 end
    fig:xaxis(xt, xl)
    fig:yaxis(pos, labels)
    fig:decorate()
  end
  return render(F, path, sp, draw)
end

--- A heat map of z over a grid: x = {...} (columns, e.g. periods), y = {...}
--- (rows, e.g. values), z = an array of #x arrays of #y numbers (z[i][j] at
--- x[i], y[j]); colours from white to the palette's blue.
function M.heatmap(path, spec)
  local F = "heatmap"
  spec_table(F, spec)
  local x = numbers(F, spec.x, "x")
  local y = numbers(F, spec.y, "y")
  if #x < 1 or #y < 2 then fail(F, "need at least one x and two y values") end
  if type(spec.z) ~= "table" or #spec.z ~= #x then fail(F, "z must have one array per x value (" .. #x .. ")") end
  local zmax = 0
  for i = 1, #x do
    local zi = numbers(F, spec.z[i], "z[" .. i .. "]")
    if #zi ~= #y then fail(F, string.format("z[%d] has %d values for %d y values", i, #zi, #y)) end
    for _, v in ipairs(zi) do if v > zmax then zmax = v end end
  end
  if not (zmax > 0) then fail(F, "z has no positive value to plot") end
  local dx = #x > 1 and (x[#x] - x[1]) / (#x - 1) or 1
  local x0, x1 = x[1] - dx / 2, x[#x] + dx / 2
  local y0, y1 = y[1], y[#y]
  local function shade(v)
    local t = math.max(0, math.min(1, v / zmax))
    local r = math.floor(255 + (0x00 - 255) * t + 0.5)
    local g = math.floor(255 + (0x72 - 255) * t + 0.5)
    local b = math.floor(255 + (0xB2 - 255) * t + 0.5)
    return string.format("#%02X%02X%02X", r, g, b)
  end
  local draw = function(fig)
    local s = fig.s
    local yt, yl = ticks(y0, y1, math.max(3, math.floor(((spec.height or 2.6) * 72 - 50) / 22)), false)
    local xt, xl = ticks(x0, x1, math.max(3, math.floor(((spec.width or 3.5) * 72 - 60) / 30)), all_integers({ x }))
    fig:layout(max_width(yl, fig.fs), nil, nil)
    fig:frame(x0, x1, y0, y1)
    for i = 1, #x do
      for j = 1, #y - 1 do
        local v = (spec.z[i][j] + spec.z[i][j + 1]) / 2
        s:fill({ x[i] - dx / 2, x[i] + dx / 2, x[i] + dx / 2, x[i] - dx / 2 }, { y[j], y[j], y[j + 1], y[j + 1] },
          { color = shade(v) })
      end
    end
    fig:xaxis(xt, xl)
    fig:yaxis(yt, yl)
    fig:decorate()
  end
  return render(F, path, spec, draw)
end

-- ---- plot.coef ------------------------------------------------------------------------

local INTERCEPTS = { ["(Intercept)"] = true, Intercept = true, _cons = true, const = true }

local function is_fit(v)
  return type(v) == "table" and type(v.names) == "table" and type(v.b) == "table" and type(v.V) == "table"
end

-- Models as {label=, names=, est=, lo=, hi=}, from fits or given directly.
local function coef_models(F, spec)
  local models = {}
  if spec.fits ~= nil then
    if type(spec.fits) ~= "table" or #spec.fits == 0 then
      fail(F, "fits must be a non-empty array of fits, got " .. describe(spec.fits))
    end
    local level_ci = spec.level or 0.95
    for i, f in ipairs(spec.fits) do
      if not is_fit(f) then fail(F, string.format("fits[%d] is not a fit (expected names, b and V), got %s", i, describe(f))) end
      local m = { label = spec.labels and spec.labels[i] or f.label or string.format("(%d)", i), names = {}, est = {}, lo = {}, hi = {} }
      local ci = type(f.confint) == "function" and f:confint(level_ci) or nil
      for j, name in ipairs(f.names) do
        local b = f.b[j]
        local se = math.sqrt(f.V[j][j])
        local c = ci and ci[name] or { b - 1.959963984540054 * se, b + 1.959963984540054 * se }
        m.names[j], m.est[j], m.lo[j], m.hi[j] = name, b, c[1], c[2]
      end
      models[i] = m
    end
  elseif spec.models ~= nil then
    if type(spec.models) ~= "table" or #spec.models == 0 then
      fail(F, "models must be a non-empty array of {label=, names=, est=, lo=, hi=}")
    end
    for i, m in ipairs(spec.models) do models[i] = m end
  else
    models[1] = { label = spec.label, names = spec.names, est = spec.est, lo = spec.lo, hi = spec.hi }
  end
  for i, m in ipairs(models) do
    local what = string.format("model %d%s", i, m.label and (" ('" .. tostring(m.label) .. "')") or "")
    m.names = strings(F, m.names, what .. ".names")
    m.est = numbers(F, m.est, what .. ".est", true)
    if #m.names == 0 then fail(F, what .. " has no coefficients (names is empty)") end
    same_length(F, what, m.names, "name", m.est, "est")
    if m.lo ~= nil or m.hi ~= nil then
      m.lo = numbers(F, m.lo, what .. ".lo", true)
      m.hi = numbers(F, m.hi, what .. ".hi", true)
      same_length(F, what, m.names, "name", m.lo, "lo")
      same_length(F, what, m.names, "name", m.hi, "hi")
    end
  end
  return models
end

--- A coefficient plot: point estimates with intervals for one or several models.
function M.coef(path, spec)
  local F = "coef"
  spec_table(F, spec)
  local models = coef_models(F, spec)
  -- Coefficients: spec.keep order, else first appearance; intercepts dropped.
  local names, seen = {}, {}
  if spec.keep then
    names = strings(F, spec.keep, "keep")
  else
    for _, m in ipairs(models) do
      for _, nm in ipairs(m.names) do
        if not seen[nm] and not (spec.intercept ~= true and INTERCEPTS[nm]) then
          seen[nm] = true
          names[#names + 1] = nm
        end
      end
    end
  end
  if #names == 0 then fail(F, "no coefficients left to plot") end
  local rename = spec.coef_labels or {}
  local cat = {}
  for i, nm in ipairs(names) do cat[i] = tostring(rename[nm] or nm) end
  local k, nm_ = #names, #models
  local vals = {}
  for _, m in ipairs(models) do vals[#vals + 1] = m.est; if m.lo then vals[#vals + 1] = m.lo; vals[#vals + 1] = m.hi end end
  local vlo, vhi = range_of(vals, 0, 0)
  local v0, v1 = padded(vlo, vhi, 0.06)
  local fs = spec.fontsize or 8.5
  local sp = setmetatable({}, { __index = spec })
  if spec.height == nil then sp.height = math.max(2.6, (k * math.max(1, nm_ * 0.6) * fs * 1.6 + 80) / 72) end
  local legend = nil
  if nm_ > 1 then
    legend = {}
    for i, m in ipairs(models) do
      legend[i] = { label = tostring(m.label or ("(" .. i .. ")")), color = M.palette[(i - 1) % #M.palette + 1],
        shape = SHAPES[(i - 1) % #SHAPES + 1], line = true, width = 0.9 }
    end
  end
  local draw = function(fig)
    local s = fig.s
    local vt, vl = ticks(v0, v1, math.max(3, math.floor(((sp.width or 3.5) * 72 - 100) / 30)), false)
    local pos = {}
    for i = 1, k do pos[i] = k - i + 1 end
    fig:layout(max_width(cat, fs), nil, legend)
    fig:frame(v0, v1, 0.4, k + 0.6)
    fig:vline(0)
    local span = math.min(0.6, 0.22 * (nm_ - 1))
    for j, m in ipairs(models) do
      local color = M.palette[(j - 1) % #M.palette + 1]
      local off = nm_ > 1 and (span / 2 - span * (j - 1) / (nm_ - 1)) or 0
      local idx = {}
      for i, nm in ipairs(m.names) do idx[nm] = i end
      local px, py = {}, {}
      for i, nm in ipairs(names) do
        local r = idx[nm]
        if r then
          local y = pos[i] + off
          if m.lo and m.lo[r] == m.lo[r] and m.hi[r] == m.hi[r] then
            s:line({ m.lo[r], m.hi[r] }, { y, y }, { color = color, width = 0.9 })
          end
          px[#px + 1], py[#py + 1] = m.est[r], y
        end
      end
      s:points(px, py, { color = color, size = 4, shape = SHAPES[(j - 1) % #SHAPES + 1] })
    end
    fig:xaxis(vt, vl)
    fig:yaxis(pos, cat)
    fig:decorate()
  end
  return render(F, path, sp, draw)
end

-- ---- plot.spec_curve ---------------------------------------------------------------------

--- The specification curve (Simonsohn, Simmons & Nelson 2020): estimates
--- sorted, with intervals, above a panel that marks which choice each
--- specification makes.  spec: {estimate =, lo =, hi = (numbers, already
--- sorted), significant = (booleans), rows = {{label =, on = {booleans}}}}.
function M.spec_curve(path, spec)
  local F = "spec_curve"
  spec_table(F, spec)
  local est = numbers(F, spec.estimate, "estimate")
  local n = #est
  if n == 0 then fail(F, "no estimates to plot") end
  local lo, hi = bounds(F, spec, "the curve", est, "estimate")
  if not lo then fail(F, "give lo and hi, the intervals of the estimates") end
  local rows = spec.rows
  if type(rows) ~= "table" or #rows == 0 then fail(F, "option 'rows' must be a non-empty array of {label =, on =}") end
  local labels = {}
  for i, r in ipairs(rows) do
    if type(r) ~= "table" or type(r.label) ~= "string" or type(r.on) ~= "table" or #r.on ~= n then
      fail(F, string.format("rows[%d] must be {label = \"...\", on = {%d booleans}}", i, n))
    end
    labels[i] = r.label
  end
  local sig = spec.significant or {}
  local vlo, vhi = range_of({ est, lo, hi }, 0, 0)
  local v0, v1 = padded(vlo, vhi, 0.06)
  local fs = spec.fontsize or 8.5
  local sp = setmetatable({}, { __index = spec })
  local rows_height = #rows * fs * 1.3
  if spec.height == nil then sp.height = math.max(3.2, (rows_height + 150) / 72) end
  if spec.width == nil then sp.width = math.max(4.5, math.min(9, (n * 4 + 200) / 72)) end
  local draw = function(fig)
    local s = fig.s
    fig:layout(max_width(labels, fs), nil, nil)
    local bottom, top = fig.B, fig.T
    local gap = fs * 1.2
    -- The upper panel (estimates) takes what the indicator rows leave.
    fig.B = bottom + rows_height + gap
    fig:frame(0.5, n + 0.5, v0, v1)
    fig:hline(0)
    local xs_sig, ys_sig, xs_ns, ys_ns = {}, {}, {}, {}
    for i = 1, n do
      local c = sig[i] and M.palette[1] or GREY
      if lo[i] == lo[i] and hi[i] == hi[i] then s:line({ i, i }, { lo[i], hi[i] }, { color = c, width = 0.7 }) end
      if sig[i] then xs_sig[#xs_sig + 1], ys_sig[#ys_sig + 1] = i, est[i]
      else xs_ns[#xs_ns + 1], ys_ns[#ys_ns + 1] = i, est[i] end
    end
    if #xs_ns > 0 then s:points(xs_ns, ys_ns, { color = GREY, size = 2.5 }) end
    if #xs_sig > 0 then s:points(xs_sig, ys_sig, { color = M.palette[1], size = 2.5 }) end
    local vt, vl = ticks(v0, v1, math.max(3, math.floor((fig.y1 - fig.y0) / 22)), false)
    fig:yaxis(vt, vl)
    pline(s, { fig.x0, fig.x1 }, { fig.y0, fig.y0 }, { width = 0.6 })
    -- The lower panel: one row per choice, a mark where the specification makes it.
    fig.B, fig.T = bottom, fig.H - (bottom + rows_height)
    fig:frame(0.5, n + 0.5, 0.5, #rows + 0.5)
    local pos = {}
    for j, r in ipairs(rows) do
      pos[j] = #rows - j + 1
      local px, py = {}, {}
      for i = 1, n do if r.on[i] then px[#px + 1], py[#py + 1] = i, pos[j] end end
      if #px > 0 then s:points(px, py, { color = "#000000", size = 2 }) end
    end
    local xt, xl = ticks(1, n, math.max(3, math.floor((fig.x1 - fig.x0) / 30)), true)
    fig:xaxis(xt, xl)
    local saved = fig.spec
    fig.spec = setmetatable({ ylabel = false }, { __index = saved })
    fig:yaxis(pos, labels, { noticks = true })
    fig.spec = saved
    fig.T = top
    fig:decorate()
  end
  return render(F, path, sp, draw)
end

-- ---- plot.tilemap ----------------------------------------------------------------------

--- The diverging scale of effect maps: Okabe-Ito blue (below the centre)
--- through near-white to vermillion (above it), both ends colour-blind safe.
M.diverging = { "#0072B2", "#F7F7F7", "#D55E00" }
--- Colours of the classes of a LISA cluster map (plot.tilemap's classes).
M.lisa_colors = { HH = "#D55E00", LL = "#0072B2", HL = "#E69F00", LH = "#56B4E9", ns = "#F7F7F7" }
local NO_DATA = "#BDBDBD"

local function rgb(c) return tonumber(c:sub(2, 3), 16), tonumber(c:sub(4, 5), 16), tonumber(c:sub(6, 7), 16) end

local function mix(a, b, t)
  local ar, ag, ab = rgb(a)
  local br, bg, bb = rgb(b)
  return string.format("#%02X%02X%02X", math.floor(ar + (br - ar) * t + 0.5), math.floor(ag + (bg - ag) * t + 0.5),
    math.floor(ab + (bb - ab) * t + 0.5))
end

-- Black text on light tiles, white on dark ones (relative luminance, sRGB weights).
local function ink(c)
  local r, g, b = rgb(c)
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 < 0.5 and "#FFFFFF" or "#000000"
end

local function hex_color(F, c, what)
  if type(c) ~= "string" or not c:match("^#%x%x%x%x%x%x$") then
    fail(F, string.format("%s must be a colour \"#rrggbb\", got %s", what, type(c) == "string" and ("'" .. c .. "'") or describe(c)))
  end
  return c
end

-- Diagonal hatching over the square [x, x + s] x [y, y + s] (page points).
local function hatch(s, x, y, size, color)
  local step = 3
  for k = -size + step / 2, size, step do
    local a, b = math.max(0, -k), math.min(size, size - k)
    if b > a then pline(s, { x + a, x + b }, { y + a + k, y + b + k }, { color = color, width = 0.4 }) end
  end
end

local TILEMAP_OPTIONS = { "tiles", "units", "values", "lo", "hi", "classes", "colors", "order", "lang", "palette",
  "center", "scale_label", "hatch_label", "missing_label", "title", "width", "height", "dpi", "fontsize", "font",
  "legend" }

--- A tile-grid map: one square per region of a layout (spillover.tiles: "cn31",
--- "us48", a CSV path or a layout table), coloured by values (diverging around
--- center, or sequential) with a colour bar, or by classes (a LISA cluster map)
--- with swatches; lo/hi hatch the tiles whose interval includes the centre.
function M.tilemap(path, spec)
  local F = "tilemap"
  spec_table(F, spec)
  util.check_options(spec, TILEMAP_OPTIONS, "plot.tilemap")
  local tiles = require "spillover.tiles"
  local ok, layout = pcall(tiles.get, spec.tiles == nil and "cn31" or spec.tiles)
  if not ok then fail(F, util.message(layout)) end
  local units = strings(F, spec.units, "units")
  if #units == 0 then fail(F, "units is empty: nothing to map") end
  local at
  ok, at = pcall(tiles.match, layout, units)
  if not ok then fail(F, util.message(at)) end
  local lang = opt_string(F, spec, "lang") or "en"
  local n = #units
  local fill, hatched = {}, {}
  local scale, items = nil, {}
  if (spec.values == nil) == (spec.classes == nil) then fail(F, "give values (numbers) or classes (strings), one of them") end
  if spec.values ~= nil then
    local values = numbers(F, spec.values, "values", true)
    same_length(F, "the map", units, "unit", values, "value")
    local lo, hi = bounds(F, spec, "the map", units, "unit")
    local palette = spec.palette or "diverging"
    if palette ~= "diverging" and palette ~= "sequential" then
      fail(F, "palette must be \"diverging\" or \"sequential\", got " .. tostring(palette))
    end
    local center = spec.center or 0
    if math.type(center) == nil then fail(F, "center must be a number, got " .. describe(center)) end
    local vlo, vhi = range_of({ values })
    if vlo > vhi then fail(F, "values has no number to map (all NaN)") end
    local s0, s1
    if palette == "diverging" then
      local m = math.max(math.abs(vlo - center), math.abs(vhi - center))
      if m == 0 then m = 1 end
      s0, s1 = center - m, center + m
    else
      s0, s1 = vlo, vhi
      if s0 == s1 then s0, s1 = padded(s0, s1, 0) end
    end
    local D = M.diverging
    local function color(v)
      local t = (v - s0) / (s1 - s0)
      if palette == "sequential" then return mix(D[2], D[1], t) end
      return t < 0.5 and mix(D[1], D[2], t * 2) or mix(D[2], D[3], t * 2 - 1)
    end
    scale = { s0 = s0, s1 = s1, color = color }
    for j = 1, n do
      local v = values[j]
      if v == v then fill[at[j]] = color(v) end
      -- A point interval at the centre (a unit the shock cannot reach) is an
      -- exact zero, not an uncertain one: its colour says so, unhatched.
      if lo and lo[j] <= center and center <= hi[j] and lo[j] < hi[j] then hatched[at[j]] = true end
    end
    if next(hatched) then
      items[#items + 1] = { label = opt_string(F, spec, "hatch_label") or ("interval includes " .. fmt_num(center, decimals(math.abs(center) > 0 and math.abs(center) or 1))),
        color = "#FFFFFF", hatch = true }
    end
  else
    local classes = strings(F, spec.classes, "classes")
    same_length(F, "the map", units, "unit", classes, "class")
    local colors = spec.colors or M.lisa_colors
    if type(colors) ~= "table" then fail(F, "colors must be a table {class = \"#rrggbb\"}, got " .. describe(colors)) end
    local order = spec.order and strings(F, spec.order, "order") or nil
    if not order then
      local seen = {}
      order = {}
      for _, c in ipairs(classes) do if not seen[c] then seen[c] = true; order[#order + 1] = c end end
      table.sort(order)
    end
    local known = {}
    for k, c in ipairs(order) do
      known[c] = colors[c] and hex_color(F, colors[c], "colors." .. c) or M.palette[(k - 1) % #M.palette + 1]
      items[#items + 1] = { label = c, color = known[c] }
    end
    for j = 1, n do
      if not known[classes[j]] then
        fail(F, string.format("classes[%d] is '%s', which order leaves out%s", j, classes[j],
          require("spillover.suggest").did_you_mean(classes[j], order)))
      end
      fill[at[j]] = known[classes[j]]
    end
  end
  local rows, cols = 0, 0
  local missing = false
  for i, t in ipairs(layout.tiles) do
    rows, cols = math.max(rows, t.row), math.max(cols, t.col)
    if not fill[i] then missing = true end
  end
  if missing then items[#items + 1] = { label = opt_string(F, spec, "missing_label") or "no data", color = NO_DATA } end
  local fs = spec.fontsize or 8.5
  local show_legend = spec.legend ~= false
  local top = 5 + (spec.title and fs * 1.6 or 0)
  local bottom = 4
  if show_legend then
    if scale then bottom = bottom + fs * 0.8 + 3 + fs * 1.3 + (spec.scale_label and fs * 1.4 or 0) end
    if #items > 0 then bottom = bottom + fs * 1.6 end
  end
  local sp = setmetatable({}, { __index = spec })
  local W = (spec.width or 3.5) * 72
  -- Square tiles: the page is as tall as the grid needs at the page's width.
  if spec.height == nil then sp.height = (top + bottom + rows * (W - 8) / cols) / 72 end
  local draw = function(fig)
    local s = fig.s
    fig:layout(0, 0, nil)
    local H = fig.H
    local cell = math.min((fig.W - 8) / cols, (H - top - bottom) / rows)
    if cell < 6 then raise("the figure is too small for its tiles (enlarge width/height)") end
    local size = cell * 0.92
    local x0 = (fig.W - cols * cell) / 2
    local ytop = H - top
    for i, t in ipairs(layout.tiles) do
      local x, y = x0 + (t.col - 1) * cell + (cell - size) / 2, ytop - t.row * cell + (cell - size) / 2
      local c = fill[i] or NO_DATA
      s:fill({ x, x + size, x + size, x }, { y, y, y + size, y + size }, { page = true, color = c })
      -- an outline keeps near-white tiles (values at the centre) visible on the white page
      pline(s, { x, x + size, x + size, x, x }, { y, y, y + size, y + size, y }, { color = "#D0D0D0", width = 0.4 })
      if hatched[i] then hatch(s, x, y, size, ink(c) == "#000000" and "#404040" or "#FFFFFF") end
      local label = t.label and (t.label[lang] or t.label.en) or t.keys[1]
      local ts = math.min(fs, size * 0.85 / math.max(text_width(label, 1), 0.5))
      s:text(x + size / 2, y + size / 2, label, { page = true, just = 0.5, size = ts, color = ink(c) })
    end
    if show_legend then
      local y = 4
      if scale and spec.scale_label then
        s:text(fig.W / 2, y + fs * 0.6, spec.scale_label, { page = true, just = 0.5 })
        y = y + fs * 1.4
      end
      if scale then
        local bx0, bx1 = fig.W * 0.2, fig.W * 0.8
        local by = y + fs * 1.3 + 3
        local k = 64
        for j = 1, k do
          local a, b = bx0 + (bx1 - bx0) * (j - 1) / k, bx0 + (bx1 - bx0) * j / k
          local v = scale.s0 + (scale.s1 - scale.s0) * (j - 0.5) / k
          s:fill({ a, b + 0.3, b + 0.3, a }, { by, by, by + fs * 0.8, by + fs * 0.8 }, { page = true, color = scale.color(v) })
        end
        local tv, tl = ticks(scale.s0, scale.s1, 5, false)
        for j, v in ipairs(tv) do
          local x = bx0 + (bx1 - bx0) * (v - scale.s0) / (scale.s1 - scale.s0)
          pline(s, { x, x }, { by, by - 3 }, { width = 0.6 })
          s:text(x, by - 3 - fs * 0.6, tl[j], { page = true, just = 0.5 })
        end
        y = by + fs * 0.8
      end
      if #items > 0 then
        local w = 0
        for _, e in ipairs(items) do w = w + 12 + 3 + text_width(e.label, fs) + 10 end
        local x = math.max(4, (fig.W - (w - 10)) / 2)
        local yc = y + fs * 0.9
        for _, e in ipairs(items) do
          local sx, sy = { x, x + 12, x + 12, x }, { yc - fs * 0.4, yc - fs * 0.4, yc + fs * 0.4, yc + fs * 0.4 }
          s:fill(sx, sy, { page = true, color = e.color })
          if e.hatch then
            local sq = fs * 0.8
            hatch(s, x + (12 - sq) / 2, yc - sq / 2, sq, "#404040")
          end
          pline(s, { x, x + 12, x + 12, x, x }, { sy[1], sy[1], sy[3], sy[3], sy[1] }, { color = GREY, width = 0.4 })
          s:text(x + 15, yc, e.label, { page = true, just = 0 })
          x = x + 12 + 3 + text_width(e.label, fs) + 10
        end
      end
    end
    fig:decorate()
  end
  return render(F, path, sp, draw)
end

M.text_width = text_width
M.ticks = ticks

return M
