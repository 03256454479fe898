-- test_asinh: an asinh(x) outcome (counts with zeros) is put back in the
-- units of x: level = mean over the residuals of sinh(p + e_i) (Duan's
-- smearing), e^(s^2/2) sinh(p) (the normal correction) or sinh(p) (naive),
-- each checked by hand, the smearing from its definition (the module uses an
-- identity that needs two numbers only).
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local cf = require "spillover.counterfactual"

local function sinh(v) return (math.exp(v) - math.exp(-v)) / 2 end

-- ---- the transform, from the formula and derive: -----------------------------------------
local t = cf.outcome_scale("asinh(patents) ~ x")
T.check(t and t.fn == "asinh" and t.column == "patents" and t.response == "asinh(patents)", "asinh(x) in the formula")
t = cf.outcome_scale("ihs ~ x", { ihs = "asinh(patents)" })
T.check(t and t.fn == "asinh" and t.column == "patents" and t.response == "ihs", "asinh(x) in derive:")
t = cf.outcome_scale("asinh(I(patents / pop)) ~ x")
T.check(t and t.fn == "asinh" and t.column == "patents" and t.denominator == "pop", "asinh of a ratio")
local none, why = cf.outcome_scale("sq ~ x", { sq = "sqrt(patents)" })
T.check(none == nil and why:find("asinh%(x%)"), "the refusal names asinh(x) among the transforms read", why)

-- ---- levels by hand through a fit, zeros in the data --------------------------------------
local ids, years, x, z = {}, {}, {}, {}
for unit = 1, 4 do
  for year = 2001, 2006 do
    ids[#ids + 1], years[#years + 1] = "u" .. unit, year
    z[#z + 1] = 0.4 * unit + 0.25 * (year - 2000) + 0.2 * ((unit * 5 + year) % 3)
    -- a count: zero in a few rows, where log() would drop them
    x[#x + 1] = math.floor(math.exp(0.3 + 0.6 * z[#z] + 0.5 * math.sin(unit * 7 + year)) - 1.5)
    if x[#x] < 0 then x[#x] = 0 end
  end
end
local d = sp.frame { id = ids, year = years, x = x, z = z }
d:panel { entity = "id", time = "year" }
local zeros = 0
for i = 1, #x do zeros = zeros + (x[i] == 0 and 1 or 0) end
T.check(zeros >= 2, "the data have zeros (" .. zeros .. ")")
local fit = sp.ols(d, "asinh(x) ~ z")
T.check(fit.nobs == #x, "asinh keeps the zero rows in the fit")
local b = fit:coef().z
local e = fit:resid():tovector()
local p0 = fit:predict(d):tovector()
local ss = 0
for i = 1, #e do ss = ss + e[i] ^ 2 end
local shock = { { variable = "z", where = "id == 'u2' or id == 'u3'", from = 2004, change = "+0.5" } }

-- Duan's smearing, from its definition: the mean over every residual.
local function smeared(p)
  local s = 0
  for j = 1, #e do s = s + sinh(p + e[j]) end
  return s / #e
end
local cases = {
  { "smearing", smeared },
  { "normal", function(p) return math.exp(ss / fit.df_resid / 2) * sinh(p) end },
  { "naive", sinh },
}
for _, case in ipairs(cases) do
  local name, level = case[1], case[2]
  local res = cf.run { data = d, fit = fit, entity = "id", time = "year", shocks = shock,
    scale = { backtransform = name }, draws = 50, seed = 7 }
  T.check(res.scale.transform == "asinh" and res.scale.column == "x" and res.scale.backtransform == name,
    name .. ": the scale read from the fit's formula")
  local worst, order = 0, true
  for i, u in ipairs(res.units) do
    local dz = u.shocked and 0.5 or 0
    local want0, want1 = level(p0[i]), level(p0[i] + b * dz)
    worst = math.max(worst, math.abs(u.level_baseline - want0), math.abs(u.level_change - (want1 - want0)))
    order = order and u.level_lo <= u.level_hi
  end
  T.check(worst < 1e-10, name .. ": every unit's level and level change by hand", worst)
  T.check(order, name .. ": the level intervals are ordered (the back-transform increases)")
  local tot = 0
  for i, u in ipairs(res.units) do if u.shocked then tot = tot + level(p0[i] + b * 0.5) - level(p0[i]) end end
  T.near(res.groups.all.total.level_change, tot, 1e-10, name .. ": additional x, summed")
end
-- the smearing's two numbers, by hand
local sm = cf.run { data = d, fit = fit, entity = "id", time = "year", shocks = shock, scale = {} }
local ch, sh = 0, 0
for j = 1, #e do ch, sh = ch + (math.exp(e[j]) + math.exp(-e[j])) / 2, sh + sinh(e[j]) end
T.near(sm.scale.factor, ch / #e, 1e-12, "smearing: factor = mean cosh(e)")
T.near(sm.scale.shift, sh / #e, 1e-12, "smearing: shift = mean sinh(e)")

-- ---- in a scenario: the report says how the levels were made ------------------------------
local tmp = assert(sp.sys.mkdtemp("/tmp/sp-asinh-"))
d:write_csv(tmp .. "/panel.csv")
local path = T.write(tmp .. "/s.yaml", [[
name: ihs
data: {file: panel.csv, entity: id, time: year}
models:
  m: {estimator: ols, formula: "asinh(x) ~ z"}
experiments:
  up:
    model: m
    shock: {variable: z, where: "id == 'u2' or id == 'u3'", from: 2004, change: "+0.5"}
]])
local out = sp.scenario.run(sp.scenario.load(path), { outdir = tmp .. "/out" })
local text = T.read(out .. "/effects_up_groups.md")
T.check(text:find("back%-transformed from asinh%(x%) with Duan's smearing estimate %(level = [%d.]+ sinh%(p%) %+ %-?[%d.e-]+ cosh%(p%)")
  ~= nil, "the report gives the asinh back-transform", text:sub(1, 600))
sp.sys.remove_tree(tmp)
T.done()
