package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local plot = require "spillover.plot"
local pc = require "spillover.plotcore"
assert(sp.version)

-- A fresh temporary directory.
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))

local slurp = T.read

local function listing()
  local p = io.popen("ls -A '" .. dir .. "'")
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local function u32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function check_png(path, what, w, h)
  local s = slurp(path)
  T.check(s ~= nil, what .. ": PNG written")
  if not s then return end
  T.check(s:sub(1, 8) == "\137PNG\r\n\26\n", what .. ": PNG signature")
  T.check(#s > 5000, what .. ": PNG larger than 5 kB", #s .. " bytes")
  if w then
    T.check(u32(s, 17) == w and u32(s, 21) == h, what .. ": PNG is " .. w .. " x " .. h,
      u32(s, 17) .. " x " .. u32(s, 21))
  end
end

-- Well-formed enough: one root, every tag closed in order, no stray '<'.
local function well_formed(s)
  local stack, roots = {}, 0
  local body = s:gsub("^<%?xml.-%?>", ""):gsub("<!%-%-.-%-%->", "")
  for close, name, rest in body:gmatch("<(/?)([%w:_%-]+)([^<>]*)>") do
    if close == "/" then
      if stack[#stack] ~= name then return false, "unexpected </" .. name .. ">" end
      stack[#stack] = nil
    elseif rest:sub(-1) ~= "/" then
      if #stack == 0 then roots = roots + 1 end
      stack[#stack + 1] = name
    elseif #stack == 0 then
      roots = roots + 1
    end
  end
  if #stack > 0 then return false, "unclosed <" .. stack[#stack] .. ">" end
  if roots ~= 1 then return false, roots .. " root elements" end
  return true
end

local function check_svg(path, what, texts, width)
  local s = slurp(path)
  T.check(s ~= nil, what .. ": SVG written")
  if not s then return end
  local ok, why = well_formed(s)
  T.check(ok, what .. ": SVG is well-formed XML", why)
  T.check(s:find("<svg", 1, true) ~= nil and s:find("width=\"" .. (width or 252) .. "pt\"", 1, true) ~= nil,
    what .. ": SVG has the page width")
  for _, t in ipairs(texts) do T.check(s:find(t, 1, true) ~= nil, what .. ": SVG contains '" .. t .. "'") end
end

-- ---- data ---------------------------------------------------------------------------

local years, e1, l1, h1, e2, l2, h2 = {}, {}, {}, {}, {}, {}, {}
for i = 0, 10 do
  years[#years + 1] = 2015 + i
  local a = i < 5 and 0 or 0.04 * (i - 4)
  e1[#e1 + 1], l1[#l1 + 1], h1[#h1 + 1] = a, a - 0.03, a + 0.03
  local b = i < 5 and 0 or 0.02 * (i - 4)
  e2[#e2 + 1], l2[#l2 + 1], h2[#h2 + 1] = b, b - 0.02, b + 0.02
end

local provinces = { "北京", "天津", "河北", "山西", "内蒙古", "辽宁", "吉林", "黑龙江", "上海", "江苏", "浙江",
  "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西", "海南", "重庆", "四川", "贵州", "云南",
  "西藏", "陕西", "甘肃", "青海", "宁夏", "新疆" }
local pv, plo, phi = {}, {}, {}
for i = 1, #provinces do
  pv[i] = math.sin(i) * 0.1
  plo[i], phi[i] = pv[i] - 0.03, pv[i] + 0.03
end

-- ---- every high-level function writes PNG and SVG -------------------------------------------

do
  local png, svg = dir .. "/paths.png", dir .. "/paths.svg"
  local r = plot.paths({ png, svg }, {
    series = { { label = "西部", x = years, y = e1, lo = l1, hi = h1 }, { label = "东部", x = years, y = e2, lo = l2, hi = h2 } },
    xlabel = "年份", ylabel = "效应 (log points)", title = "反事实效应路径", zero_line = true })
  T.check(type(r) == "table" and r[1] == png, "paths returns its paths")
  check_png(png, "paths", 1050, 780)
  check_svg(svg, "paths", { "<title>反事实效应路径</title>", "年份", "效应 (log points)", "西部", "东部", "2020" })
end

do
  local png, svg = dir .. "/bars.png", dir .. "/bars.svg"
  T.check(plot.bars(png, { labels = provinces, values = pv, lo = plo, hi = phi, sort = true, xlabel = "效应",
    title = "各省效应" }) == png, "bars returns its path")
  plot.bars(svg, { labels = provinces, values = pv, lo = plo, hi = phi, sort = true, xlabel = "效应", title = "各省效应" })
  check_png(png, "bars (31 provinces)")
  local s = slurp(png)
  T.check(s and u32(s, 21) > 780, "bars: the page grows to fit 31 provinces", s and u32(s, 21))
  check_svg(svg, "bars", { "各省效应", "北京", "新疆", "内蒙古", "黑龙江" })
  plot.bars(dir .. "/vbars.png", { labels = { "East", "Central", "West" }, values = { 0.1, 0.05, -0.02 },
    horizontal = false, ylabel = "Effect" })
  check_png(dir .. "/vbars.png", "vertical bars", 1050, 780)
  -- An experiment whose shock touches no unit has all-zero effects (the axis
  -- range once collapsed to [0, 0] and the tick labels failed to format).
  plot.bars(dir .. "/zeros.png", { labels = { "a", "b" }, values = { 0, 0 } })
  check_png(dir .. "/zeros.png", "bars of zeros")
end

do
  local fit = sp.fit { names = { "(Intercept)", "dige", "lngdp" }, b = { 1, 0.12, 0.4 },
    V = { { 0.01, 0, 0 }, { 0, 0.0009, 0 }, { 0, 0, 0.0025 } }, nobs = 100, df_resid = 97 }
  local fit2 = sp.fit { names = { "dige", "lngdp", "rd" }, b = { 0.08, 0.3, 0.02 },
    V = { { 0.0016, 0, 0 }, { 0, 0.0049, 0 }, { 0, 0, 0.0004 } }, nobs = 100, df_resid = 97 }
  plot.coef({ dir .. "/coef.png", dir .. "/coef.svg" }, { fits = { fit, fit2 }, labels = { "OLS", "双向固定效应" },
    coef_labels = { dige = "数字经济" }, xlabel = "Estimate", title = "Coefficients" })
  check_png(dir .. "/coef.png", "coef from fits")
  check_svg(dir .. "/coef.svg", "coef", { "数字经济", "lngdp", "rd", "OLS", "双向固定效应", "Estimate" })
  local s = slurp(dir .. "/coef.svg") or ""
  T.check(not s:find("(Intercept)", 1, true), "coef drops the intercept by default")
  plot.coef(dir .. "/coef1.png", { names = { "a", "b" }, est = { 1, -1 }, lo = { 0.5, -1.5 }, hi = { 1.5, -0.5 } })
  check_png(dir .. "/coef1.png", "coef from names/est/lo/hi")
end

do
  local per, est, lo, hi = {}, {}, {}, {}
  for k = -4, 4 do
    if k ~= -1 then
      per[#per + 1] = k
      est[#est + 1] = k < 0 and 0.01 * k or 0.05 * (k + 1)
      lo[#lo + 1], hi[#hi + 1] = est[#est] - 0.04, est[#est] + 0.04
    end
  end
  plot.event_study({ dir .. "/es.png", dir .. "/es.svg" }, { periods = per, est = est, lo = lo, hi = hi, ref = -1,
    xlabel = "Years relative to treatment", ylabel = "系数" })
  check_png(dir .. "/es.png", "event_study", 1050, 780)
  check_svg(dir .. "/es.svg", "event_study", { "Years relative to treatment", "系数", "−4" })
end

do
  local g, lr = {}, {}
  for i = 1, 60 do g[i] = 0.5 + i * 0.02; lr[i] = (g[i] - 1.1) ^ 2 * 50 end
  plot.lines({ dir .. "/lr.png", dir .. "/lr.svg" }, { x = g, series = { { label = "LR(γ)", y = lr } }, hlines = { 7.35 },
    xlabel = "Threshold γ", ylabel = "LR", width = 5, height = 3, dpi = 150 })
  check_png(dir .. "/lr.png", "lines (5 x 3 in at 150 dpi)", 750, 450)
  check_svg(dir .. "/lr.svg", "lines", { "Threshold γ", "LR(γ)" }, 360)
end

-- ---- errors: clear messages, no crash, no exit, nothing left behind -------------------------------

local before = #listing()
T.checkerr("plot%.paths: series 2 %('东部'%) has 11 x values but 10 y values", plot.paths, dir .. "/bad.png",
  { series = { { label = "西部", x = years, y = e1 }, { label = "东部", x = years, y = { table.unpack(e2, 1, 10) } } } })
T.checkerr("series 1 %('a'%) has 11 x values but 3 lo values", plot.paths, dir .. "/bad.png",
  { series = { { label = "a", x = years, y = e1, lo = { 1, 2, 3 }, hi = h1 } } })
T.checkerr("series 1 gives only one of lo and hi", plot.paths, dir .. "/bad.png",
  { series = { { x = years, y = e1, lo = l1 } } })
T.checkerr("option 'series' must be a non%-empty array", plot.paths, dir .. "/bad.png", { series = {} })
T.checkerr("series 1 has no data %(y is empty%)", plot.paths, dir .. "/bad.png", { series = { { x = {}, y = {} } } })
T.checkerr("series 1%.y%[2%] must be a number, got a string", plot.paths, dir .. "/bad.png",
  { series = { { x = { 1, 2 }, y = { 1, "x" } } } })
T.checkerr("plot%.bars: labels is empty: nothing to plot", plot.bars, dir .. "/bad.png", { labels = {}, values = {} })
T.checkerr("plot%.bars: the bar chart has 31 label values but 2 value values", plot.bars, dir .. "/bad.png",
  { labels = provinces, values = { 1, 2 } })
T.checkerr("plot%.event_study: periods is empty", plot.event_study, dir .. "/bad.png", { periods = {}, est = {} })
T.checkerr("the event study has 3 period values but 2 est values", plot.event_study, dir .. "/bad.png",
  { periods = { 0, 1, 2 }, est = { 1, 2 } })
T.checkerr("plot%.coef: fits%[1%] is not a fit", plot.coef, dir .. "/bad.png", { fits = { 42 } })
T.checkerr("plot%.coef: model 1 has 2 name values but 1 est values", plot.coef, dir .. "/bad.png",
  { names = { "a", "b" }, est = { 1 } })
T.checkerr("plot%.lines: x is empty", plot.lines, dir .. "/bad.png", { x = {}, series = { { y = {} } } })
T.checkerr("cannot tell the format of '[^']*bad%.pdf' from its extension: expected %.png or %.svg", plot.paths,
  dir .. "/bad.pdf", { series = { { x = years, y = e1 } } })
T.checkerr("cannot tell the format of 'noext'", plot.lines, "noext", { x = { 1, 2 }, series = { { y = { 1, 2 } } } })
T.checkerr("plot%.paths: cannot write '/nonexistent%-dir%-spillover/x%.png': No such file or directory", plot.paths,
  "/nonexistent-dir-spillover/x.png", { series = { { x = years, y = e1 } } })
T.checkerr("option 'width' must be a positive number", plot.paths, dir .. "/bad.png",
  { series = { { x = years, y = e1 } }, width = -1 })
T.checkerr("plot%.paths: expected an options table", plot.paths, dir .. "/bad.png", nil)
T.checkerr("figure is too small for its labels", plot.paths, dir .. "/bad.png",
  { series = { { x = years, y = e1 } }, width = 0.4, height = 0.4 })
T.check(#listing() == before, "failed calls leave no files behind", table.concat(listing(), " "))

-- ---- the low-level session -----------------------------------------------------------

T.check(#pc.devices() == 2, "plotcore.devices lists png and svg", table.concat(pc.devices(), ","))
do
  -- Two sessions drawn in turns must not mix (one PLplot stream each).
  local a = pc.open(dir .. "/a.png", { device = "png", width = 200, height = 100, units = "px", dpi = 72 })
  local b = pc.open(dir .. "/b.svg", { device = "svg", width = 2, height = 1 })
  a:viewport(0.1, 0.9, 0.1, 0.9); b:viewport(0.1, 0.9, 0.1, 0.9)
  a:window(0, 1, 0, 1); b:window(0, 10, 0, 10)
  a:fill({ 0, 1, 1 }, { 0, 0, 1 }, { color = { 0, 114, 178 }, alpha = 0.5 })
  b:line({ 0, 10 }, { 0, 10 }, { color = "#D55E00", width = 2, dash = { 2, 1 } })
  a:points({ 0.5 }, { 0.5 }, { shape = "diamond", size = 6 })
  b:text(5, 5, "b 文字 #1", { just = 0.5, angle = 30 })
  a:mtext("t", 1, 0.5, 0.5, "a")
  b:box { x = "bcnst", y = "bcnstv" }
  local w, h, u = b:size()
  T.check(w == 144 and h == 72 and u == 1, "svg session is 144 x 72 pt", w .. " " .. h .. " " .. u)
  T.check(a:close() == true and b:close() == true, "both sessions close")
  local s = slurp(dir .. "/a.png")
  T.check(s and u32(s, 17) == 200 and u32(s, 21) == 100, "interleaved session a: 200 x 100 PNG")
  T.check(well_formed(slurp(dir .. "/b.svg") or ""), "interleaved session b: well-formed SVG")
  T.checkerr("attempt to use a closed spillover%.plot", a.line, a, { 0, 1 }, { 0, 1 })
  T.check(a:close() == nil, "close is idempotent")
end

do
  local s = pc.open(dir .. "/e.png", { device = "png", width = 1, height = 1 })
  T.checkerr("plot: color 'mauve' is not a colour", s.line, s, { 0, 1 }, { 0, 1 }, { color = "mauve" })
  T.checkerr("plot: color%[2%] must be an integer in 0%-255", s.line, s, { 0, 1 }, { 0, 1 }, { color = { 1, 300, 2 } })
  T.checkerr("plot: line: x has 2 values but y has 1", s.line, s, { 0, 1 }, { 0 })
  T.checkerr("plot: fill: a polygon needs at least 3 points, got 2", s.fill, s, { 0, 1 }, { 0, 1 })
  T.checkerr("plot: x%[2%] is NaN; expected a finite number", s.fill, s, { 0, 0 / 0, 1 }, { 0, 1, 1 })
  T.checkerr("plot: x%[2%] must be a number, got string", s.points, s, { 0, "a" }, { 0, 1 })
  T.checkerr("plot: viewport%(0%.5, 0%.2, 0, 1%) must satisfy", s.viewport, s, 0.5, 0.2, 0, 1)
  T.checkerr("plot: window%(1, 1, 0, 1%) is empty", s.window, s, 1, 1, 0, 1)
  T.checkerr("text is not valid UTF%-8", s.text, s, 0, 0, "bad \255 text")
  T.checkerr("plot: option 'dash' must hold pairs", s.line, s, { 0, 1 }, { 0, 1 }, { dash = { 1, 2, 3 } })
  T.checkerr("plot: option 'alpha' must be in %[0, 1%], got 2", s.fill, s, { 0, 1, 1 }, { 0, 0, 1 }, { alpha = 2 })
  T.checkerr("invalid option 'star'", s.points, s, { 0 }, { 0 }, { shape = "star" })
  s:line({ 0, 0 / 0, 0.5, 1 }, { 0, 0, 0.5, 1 }) -- NaN is a gap in a line, not an error
  -- PLplot calls plexit (exit()) on a tick spacing too small for the axis;
  -- the session must report it and stay closable, and the process must live.
  s:window(0, 10, 0, 10)
  T.checkerr("tick spacing is much too small", s.box, s, { xtick = 1e-12 })
  T.checkerr("this session failed earlier", s.line, s, { 0, 1 }, { 0, 1 })
  T.checkerr("the session failed earlier .*incomplete", s.close, s)
  T.check(tostring(s) == "spillover.plot (closed)", "a failed session ends closed")
  -- The process still plots after a plexit.
  plot.lines(dir .. "/after.png", { x = { 1, 2, 3 }, series = { { y = { 1, 3, 2 } } } })
  check_png(dir .. "/after.png", "plotting after a PLplot exit", 1050, 780)
end

T.checkerr("plot: option 'device' is required", pc.open, dir .. "/x.png", { width = 1, height = 1 })
T.checkerr("invalid option 'pdf'", pc.open, dir .. "/x.png", { device = "pdf", width = 1, height = 1 })
T.checkerr("plot: cannot write '/nonexistent%-dir%-spillover/x%.png'", pc.open, "/nonexistent-dir-spillover/x.png",
  { device = "png", width = 1, height = 1 })
T.checkerr("out of range", pc.open, dir .. "/x.png", { device = "png", width = 100, height = 100 })

do
  -- Sessions dropped without close are ended by the collector.
  for i = 1, 3 do pc.open(dir .. "/gc" .. i .. ".svg", { device = "svg", width = 1, height = 1 }) end
  collectgarbage()
  collectgarbage()
  T.check(true, "collected sessions end their streams")
end

os.execute("rm -rf '" .. dir .. "'")
T.done()
