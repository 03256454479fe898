-- spillover.util: one helper per small idea that several modules need (a
-- type-7 quantile, the grouping key of a cell, option checking, a dot
-- product, the panel index of a frame).  Each used to exist as a private
-- copy in two to seven modules, and the copies had drifted (a quantile that
-- clamped p and one that did not; seven wordings of "unknown option").
local core = require "spillover.core"
local suggest = require "spillover.suggest"

local M = {}

--- raise(msg [, {code =, var =, file =, line =, col =}]): the one way a Lua
--- module reports a failure.  It raises a spillover.error, the table the C
--- bindings raise (msg, text, code, var, where), located at the user's call:
--- the innermost caller outside spillover's own modules, found on the stack
--- rather than counted by hand as error()'s level argument was.
M.raise = core.raise
local raise = M.raise

--- The text of a caught error for wrapping in another message: a
--- spillover.error's text (without where, the caller's position), or a
--- string without the positions inside spillover's own modules that Lua
--- prepends ("spillover/ols.lua:12: "), which mean nothing to a user.
function M.message(err)
  if type(err) == "table" and type(err.text) == "string" then return err.text end
  return (tostring(err):gsub("[^%s:]*spillover/[%w_]+%.lua:%d+: ", ""))
end

--- Type-7 quantile (R's default, numpy's "linear") of an array sorted in
--- increasing order: with h = (n - 1) p, the value at 1-based position
--- floor(h) + 1 plus the fraction h - floor(h) of the step to the next.
--- p below 0 or above 1 gives the first or last value; an empty array or a
--- NaN p NaN.  The C summary of draws (engine/src/summary.c) uses the same
--- function, so there is one definition.
M.quantile = core.quantile

--- Kernel density of an array of numbers.  kde(values [, n]) is R's
--- density() with its defaults: a Gaussian kernel, bandwidth bw.nrd0
--- (0.9 min(sd, IQR / 1.34) m^(-1/5)), evaluated at n = 512 points from
--- min - 3 bw to max + 3 bw.  kde(values, opts) takes
---   kernel = "gaussian" | "epanechnikov"
---   bw     = "silverman" (bw.nrd0, the default) | "scott" (R's bw.nrd:
---            1.06 min(sd, IQR / 1.34) m^(-1/5)) | a positive number
---   n      = number of points (512), from =, to = the grid's ends (default
---            min - 3 bw and max + 3 bw, R's cut = 3)
--- As in R, bw is the standard deviation of the kernel whatever its shape,
--- so the Epanechnikov kernel is 3/(4 sqrt(5) bw) (1 - u^2 / 5) on
--- |u| < sqrt(5), u = (x - xi) / bw.  Returns {x =, y =, bw =, kernel =}.
--- (R bins the data and uses an FFT; this sums the kernels exactly, so values
--- agree with R's to about 1e-3 relative, not to the last digit.)
local KERNELS = { gaussian = true, epanechnikov = true }
function M.kde(values, opts)
  if type(opts) ~= "table" then opts = { n = opts } end
  M.check_options(opts, { "n", "kernel", "bw", "from", "to" }, "kde")
  local n = opts.n or 512
  if math.type(n) ~= "integer" or n < 2 then raise("kde: n must be an integer >= 2, got " .. tostring(n)) end
  local kernel = opts.kernel or "gaussian"
  if not KERNELS[kernel] then
    raise("kde: unknown kernel '" .. tostring(kernel) .. "' (expected gaussian or epanechnikov)")
  end
  local v = {}
  for i, x in ipairs(values) do
    if type(x) ~= "number" or x ~= x or x == math.huge or x == -math.huge then
      raise("kde: value " .. i .. " is " .. tostring(x) .. "; expected a finite number")
    end
    v[i] = x
  end
  table.sort(v)
  local m = #v
  if m < 2 then raise("kde: need at least 2 values, got " .. m) end
  local bw = opts.bw or "silverman"
  if type(bw) == "number" then
    if not (bw > 0 and bw < math.huge) then raise("kde: bw must be a positive number, got " .. tostring(bw)) end
  elseif bw == "silverman" or bw == "scott" then
    local mean, ss = 0, 0
    for _, x in ipairs(v) do mean = mean + x end
    mean = mean / m
    for _, x in ipairs(v) do ss = ss + (x - mean) ^ 2 end
    local sd = math.sqrt(ss / (m - 1))
    local iqr = (M.quantile(v, 0.75) - M.quantile(v, 0.25)) / 1.34
    local lo = math.min(sd, iqr)
    if not (lo > 0) then lo = sd > 0 and sd or (math.abs(v[1]) > 0 and math.abs(v[1]) or 1) end
    bw = (bw == "scott" and 1.06 or 0.9) * lo * m ^ (-0.2)
  else
    raise("kde: bw must be \"silverman\", \"scott\" or a positive number, got " .. tostring(bw))
  end
  local x0, x1 = opts.from or v[1] - 3 * bw, opts.to or v[m] + 3 * bw
  if not (x1 > x0) then raise("kde: 'to' must be above 'from'") end
  local xs, ys = {}, {}
  local gauss = kernel == "gaussian"
  local c = gauss and 1 / (m * bw * math.sqrt(2 * math.pi)) or 3 / (4 * math.sqrt(5) * m * bw)
  for k = 1, n do
    local x = x0 + (x1 - x0) * (k - 1) / (n - 1)
    local s = 0
    for _, xi in ipairs(v) do
      local z = (x - xi) / bw
      if gauss then
        s = s + math.exp(-0.5 * z * z)
      elseif z * z < 5 then
        s = s + 1 - z * z / 5
      end
    end
    xs[k], ys[k] = x, c * s
  end
  return { x = xs, y = ys, bw = bw, kernel = kernel }
end

--- The key of a cell for grouping and lookups: an integer-valued number as
--- "%d" (so 2001 and 2001.0, read from different files, are one group),
--- another number by tostring, a string as it is.
function M.key_of(v)
  if type(v) == "number" then
    local i = math.tointeger(v)
    return i and string.format("%d", i) or tostring(v)
  end
  return v
end

--- Items first..last (inclusive; first > last when none) of block k of n
--- (k = 1..n): count items dealt into n contiguous blocks as even as they go.
--- The one split of replications over MPI ranks, worker processes and parts.
function M.block(count, k, n)
  return (k - 1) * count // n + 1, k * count // n
end

--- The keys of t in a fixed order: numbers (ascending) before strings
--- (ascending), so that a table is written or walked the same way every time.
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  return keys
end

--- What is wrong with an options argument, or nil: not a table, or a key
--- the function does not read (a typo such as {vcv = "hc1"} would otherwise
--- be ignored silently).  allowed: an array of option names, or a set
--- {name = true}.  who (optional) starts the message.  The one wording:
---   "<who>: unknown option 'x' (expected one of a, b, c); did you mean 'y'?"
--- For modules that raise their own error objects; others use check_options.
function M.options_problem(opts, allowed, who)
  local prefix = who and (who .. ": ") or ""
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    return string.format("%sexpected an options table, got %s", prefix, type(opts))
  end
  local names, ok = {}, {}
  if #allowed > 0 then
    for _, k in ipairs(allowed) do names[#names + 1] = k end
  else
    for k in pairs(allowed) do names[#names + 1] = k end
  end
  for _, k in ipairs(names) do ok[k] = true end
  table.sort(names)
  for k in pairs(opts) do
    if not ok[k] then
      local near = type(k) == "string" and suggest.closest(k, names) or nil
      return string.format("%sunknown option '%s' (expected one of %s)%s", prefix, tostring(k),
        table.concat(names, ", "), near and ("; did you mean '" .. near .. "'?") or "")
    end
  end
  return nil
end

--- Raise options_problem's message, if any (located at the user's call, as
--- every raise is).  Returns opts, or {} for nil.
function M.check_options(opts, allowed, who)
  local problem = M.options_problem(opts, allowed, who)
  if problem then raise(problem) end
  return opts or {}
end

--- A number as the reports print it: 4 significant digits, "" for nil or NaN.
function M.number(v)
  if v == nil or v ~= v then return "" end
  return string.format("%.4g", v)
end

--- The rows of any matrix as an array of arrays, whatever its shape
--- (m:totable() gives a flat table for n x 1 and 1 x n).
function M.rows(m)
  local t = {}
  for i = 1, m:nrow() do
    local row = {}
    for j = 1, m:ncol() do row[j] = m:get(i, j) end
    t[i] = row
  end
  return t
end

--- a' b of two column vectors: n x 1 matrices, or Lua arrays of the same length.
function M.dot(a, b)
  local s = 0
  if type(a) == "table" then  -- Lua arrays (the small dense algebra of estimators)
    for i = 1, #a do s = s + a[i] * b[i] end
    return s
  end
  for i = 1, a:nrow() do s = s + a:get(i, 1) * b:get(i, 1) end
  return s
end

--- The panel index of a frame (d:panel_info()'s table), or nil when it has
--- none or d is not a frame (callers ask before checking their argument).
function M.panel_of(d)
  local mt = type(d) == "userdata" and getmetatable(d)
  if type(mt) ~= "table" or mt.__name ~= "spillover.frame" then return nil end
  return d:panel_info()
end

return M
