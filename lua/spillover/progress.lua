-- spillover.progress: progress bars for long loops (parameter draws,
-- bootstraps, sweeps, placebo loops) on stderr.
--
--   local bar <close> = progress.new("placebo", reps)
--   for r = 1, reps do ...; bar:tick() end
--   bar:done()
--
-- A bar is drawn only when stderr is a terminal, so logs, pipes and the
-- tests' captured output never see one; SPILLOVER_PROGRESS=1 draws it
-- anyway and SPILLOVER_PROGRESS=0 never does.  It is redrawn at most ten
-- times a second (a loop of cheap steps must not spend its time writing),
-- and only the outermost loop draws: a sweep's bar is not interrupted by
-- the bars of the draws inside each of its points, which share its line.
local util = require "spillover.util"
local raise = util.raise

local M = {}

local INTERVAL = 0.1  -- seconds between redraws
local WIDTH = 30      -- characters of the bar

local sys = require("spillover.core").sys
local clock = sys and sys.now or os.clock

--- Whether bars are drawn: SPILLOVER_PROGRESS (0 or 1) decides, else
--- whether stderr is a terminal.
function M.enabled()
  local env = os.getenv("SPILLOVER_PROGRESS")
  if env == "0" then return false end
  if env == "1" then return true end
  return sys ~= nil and sys.isatty ~= nil and sys.isatty(2)
end

-- The bar being drawn, if any: only one owns stderr's line at a time.
local active = nil

local Bar = {}
Bar.__index = Bar

local function draw(b)
  local frac = b.total > 0 and math.min(b.count / b.total, 1) or 1
  local filled = math.floor(WIDTH * frac)
  io.stderr:write(string.format("\r%-24s [%s%s] %3d%% %d/%d", b.label:sub(1, 24), string.rep("#", filled),
    string.rep(".", WIDTH - filled), math.floor(100 * frac), b.count, b.total))
  io.stderr:flush()
  b.last = clock()
end

--- Advance by k steps (default 1); a bar that reaches its total is done.
function Bar:tick(k)
  self.count = self.count + (k or 1)
  if not self.live then return end
  if self.count >= self.total then return self:done() end
  if clock() - self.last >= INTERVAL then draw(self) end
end

--- The last redraw and the end of the line.  Idempotent; also the bar's
--- __close, so a loop left by an error does not keep the line.
function Bar:done()
  if not self.live then return end
  self.live = false
  if active == self then active = nil end
  draw(self)
  io.stderr:write("\n")
end
Bar.__close = Bar.done

--- A bar labelled label over total steps.  When bars are not drawn (not a
--- terminal, SPILLOVER_PROGRESS=0, or another bar is being drawn) it counts
--- and writes nothing.
function M.new(label, total)
  if type(label) ~= "string" then raise("progress.new: 'label' must be a string, got " .. type(label)) end
  if math.type(total) ~= "integer" or total < 0 then
    raise("progress.new: 'total' must be a whole number of steps >= 0, got " .. tostring(total))
  end
  local b = setmetatable({ label = label, total = total, count = 0, last = -math.huge, live = false }, Bar)
  if active == nil and M.enabled() then
    b.live, active = true, b
    draw(b)
  end
  return b
end

--- A function(label, done, total) that draws one bar per label, as
--- scenario runs report their experiments' draws (scenario.run's progress).
function M.reporter()
  local bar
  return function(label, i, total)
    if bar == nil or bar.label ~= label or bar.total ~= total or i < bar.count then
      if bar then bar:done() end
      bar = M.new(label, total)
    end
    bar:tick(i - bar.count)
  end
end

return M
