-- test_extending: the PPML plugin of docs/extending.md (scenarios/plugins/ppml.lua),
-- loaded through the sandbox as `spillover run` loads it, recovers known
-- parameters, solves its own score equations, agrees with explicit dummies,
-- re-centres its fixed effects under parameter draws, and runs from YAML with
-- draws and bootstrap.  The tutorial's excerpts of the plugin are checked
-- against the file, so the page cannot drift from the code it explains.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local sandbox = require "spillover.sandbox"

local PLUGIN = "scenarios/plugins/ppml.lua"
local entry
sandbox.load_plugin(PLUGIN, { register = function(e) entry = e end, root = "scenarios" })
T.check(entry and entry.name == "my_ppml" and entry.capabilities.refit and entry.capabilities.draw
  and not entry.capabilities.predict_matrix and entry.options.tol.type == "number",
  "the plugin registers my_ppml with its options and capabilities (no --trust)")
local function ppml(d, formula, model, options)
  model = model or {}
  model.formula = formula
  return entry.fit(d, model, options or {})
end

-- Poisson draws by inversion (sp.rng has no Poisson generator).
local function rpois(rng, mu)
  local u, k, p = rng:uniform(), 0, math.exp(-mu)
  local c = p
  while u > c do
    k = k + 1
    p = p * mu / k
    c = c + p
  end
  return k
end

-- (a) 300 entities x 10 periods, two-way fixed effects, seeded.
local rng = sp.rng(2026)
local N, P = 300, 10
local alpha, gamma = {}, {}
for i = 1, N do alpha[i] = 0.5 * rng:normal() end
for t = 1, P do gamma[t] = 0.3 * rng:normal() end
local cols = { id = {}, t = {}, x1 = {}, x2 = {}, y = {} }
for i = 1, N do
  for t = 1, P do
    local x1, x2 = rng:normal(), rng:normal() + alpha[i]   -- x2 correlated with the entity effect
    cols.id[#cols.id + 1] = "e" .. i
    cols.t[#cols.t + 1] = 2000 + t
    cols.x1[#cols.x1 + 1], cols.x2[#cols.x2 + 1] = x1, x2
    cols.y[#cols.y + 1] = rpois(rng, math.exp(0.5 * x1 - 0.3 * x2 + alpha[i] + gamma[t]))
  end
end
local d = sp.frame(cols)
d:panel { entity = "id", time = "t" }
local fit = ppml(d, "y ~ x1 + x2 | id + t", { vcov = { cluster = "id" } })
local b, se = fit:coef(), fit:se()
T.check(fit.nobs <= 3000 and fit.nobs > 2900, "simulation: rows used (all-zero entities dropped)", tostring(fit.nobs))
T.check(math.abs(b.x1 - 0.5) < 3 * se.x1 and math.abs(b.x2 + 0.3) < 3 * se.x2,
  "simulation: both slopes within 3 standard errors of the truth",
  string.format("x1 %.4f (%.4f), x2 %.4f (%.4f)", b.x1, se.x1, b.x2, se.x2))
T.check(se.x1 < 0.05 and se.x2 < 0.05 and se.x1 > 0.005, "simulation: standard errors of the expected size")
T.check(fit.stats.n_clusters <= 300 and fit.stats.n_clusters > 290 and fit.vcov_label == "cluster: id",
  "simulation: clustered by id")
-- The fixed effects come back too (up to one constant per dimension).
local fx = fit:fixef()
local sa, saa, sab, sb, sbb, m = 0, 0, 0, 0, 0, 0
for i = 1, N do
  local a = fx.id["e" .. i]
  if a then
    m = m + 1
    sa, sb = sa + a, sb + alpha[i]
    saa, sbb, sab = saa + a * a, sbb + alpha[i] ^ 2, sab + a * alpha[i]
  end
end
local cor = (sab - sa * sb / m) / math.sqrt((saa - sa * sa / m) * (sbb - sb * sb / m))
T.check(cor > 0.7, "simulation: entity effects (10 periods each) correlate with the truth", tostring(cor))

-- Baseline predictions are the fitted means, and sum to the outcome (the
-- first-order condition of each fixed-effect level).
local p = fit:predict(d)
local mu = fit:fitted()
local y = d.y
local ysum, psum, musum = 0, 0, mu:sum()
for r = 1, d:nrow() do
  if p[r] == p[r] then psum, ysum = psum + p[r], ysum + y[r] end
end
T.near(psum, ysum, 1e-9, "predict: the baseline predictions add up to the outcome")
T.check(mu:nrow() == fit.nobs, "fitted values over the rows used")
T.near(musum, psum, 1e-12, "predict with the estimates gives the fitted values")
local dm = d:copy()
local ym = dm.y
ym[1] = 0 / 0
dm.y = ym
T.near(fit:predict(dm)[1], p[1], 1e-12, "predict: a row whose outcome is missing is predicted")

-- Re-centring under a parameter draw: sum of y - prediction is 0 in every
-- level of both fixed effects; the baseline fixed effects with the drawn
-- slopes are not.
local draw = fit:draw(sp.rng(5))
local pd = fit:predict(d, { coef = draw })
local function worst(pred)
  local by = { id = {}, t = {} }
  for r = 1, d:nrow() do
    if pred[r] == pred[r] then
      local e = y[r] - pred[r]
      by.id[cols.id[r]] = (by.id[cols.id[r]] or 0) + e
      by.t[cols.t[r]] = (by.t[cols.t[r]] or 0) + e
    end
  end
  local w = 0
  for _, g in pairs(by) do for _, s in pairs(g) do w = math.max(w, math.abs(s)) end end
  return w
end
local naive = sp.matrix(d:nrow(), 1, 0 / 0)
for r = 1, d:nrow() do
  local a, g = fx.id[cols.id[r]], fx.t[string.format("%d", cols.t[r])]
  if a and g then naive[r] = math.exp(draw.x1 * cols.x1[r] + draw.x2 * cols.x2[r] + a + g) end
end
T.check(worst(pd) < 1e-6, "draw: re-centred fixed effects keep every level's mean condition", tostring(worst(pd)))
T.check(worst(naive) > 1, "draw: the baseline fixed effects with drawn slopes would not", tostring(worst(naive)))
T.check(worst(p) < 1e-6, "baseline: every level's mean condition holds", tostring(worst(p)))

-- (b) Without fixed effects the estimates solve X'(y - exp(X b)) = 0.
local fit0 = ppml(d, "y ~ x1 + x2", { vcov = "hc1" })   -- the default tol
local X = sp.design(d, "y ~ x1 + x2").X
local b0 = sp.matrix { fit0.b[1], fit0.b[2], fit0.b[3] }
local score = X:crossprod(sp.matrix(d, { "y" }) - (X * b0):exp())
local scale = X:abs():crossprod(sp.matrix(d, { "y" }))
for q = 1, 3 do
  T.check(math.abs(score[q]) < 1e-10 * scale[q], "identity: score of " .. fit0.names[q] .. " is 0 to 1e-10 (relative)",
    string.format("%.3g of %.3g", score[q], scale[q]))
end

-- A closed form: with one binary regressor D and no fixed effects, exp(b0) and
-- exp(b0 + b1) are the means of y in the two groups, the Poisson variance of
-- b1 is 1/sum_1 y + 1/sum_0 y, and its HC0 variance
-- sum_1 (y - ybar_1)^2 / (sum_1 y)^2 + sum_0 (y - ybar_0)^2 / (sum_0 y)^2.
local dd = d:copy()
local D = {}
for r = 1, dd:nrow() do D[r] = cols.x1[r] > 0 and 1 or 0 end
dd.D = D
local sum, cnt, ss = { [0] = 0, [1] = 0 }, { [0] = 0, [1] = 0 }, { [0] = 0, [1] = 0 }
for r = 1, dd:nrow() do
  local g = cols.x1[r] > 0 and 1 or 0
  sum[g], cnt[g] = sum[g] + cols.y[r], cnt[g] + 1
end
for r = 1, dd:nrow() do
  local g = cols.x1[r] > 0 and 1 or 0
  ss[g] = ss[g] + (cols.y[r] - sum[g] / cnt[g]) ^ 2
end
local fiid = ppml(dd, "y ~ D", { vcov = "iid" })
local fhc0 = ppml(dd, "y ~ D", { vcov = "hc0" })
T.near(fiid:coef().D, math.log((sum[1] / cnt[1]) / (sum[0] / cnt[0])), 1e-10, "closed form: b1 = log(ybar_1 / ybar_0)")
T.near(fiid:se().D ^ 2, 1 / sum[1] + 1 / sum[0], 1e-8, "closed form: Poisson variance of b1")
T.near(fhc0:se().D ^ 2, ss[1] / sum[1] ^ 2 + ss[0] / sum[0] ^ 2, 1e-8, "closed form: HC0 variance of b1")

-- Absorbing the fixed effects equals estimating their dummies: the slopes at
-- 1e-8, the Poisson (iid) variance of the slopes (the bread) at 1e-6.
local small = d:filter("t <= 2004 and x1 > -3")
local fa = ppml(small, "y ~ x1 + x2 | id + t", { vcov = "iid" }, { tol = 1e-14 })
local fd = ppml(small, "y ~ x1 + x2 + i(id) + i(t)", { vcov = "iid" }, { tol = 1e-14 })
local ca, cd = fa:coef(), fd:coef()
T.near(ca.x1, cd.x1, 1e-8, "absorb vs dummies: x1")
T.near(ca.x2, cd.x2, 1e-8, "absorb vs dummies: x2")
T.near(fa:se().x1, fd:se().x1, 1e-6, "absorb vs dummies: Poisson standard error of x1")
T.near(fa:vcov().x1.x2, fd:vcov().x1.x2, 1e-6, "absorb vs dummies: Poisson covariance of x1 and x2")

-- Refit: the same specification on other rows.
local rf = fit:refit(small)
T.near(rf:coef().x1, ca.x1, 1e-8, "refit on other data is the same estimator")

-- Refusals.
T.checkerr("ppml: unknown option 'tolerance'", ppml, d, "y ~ x1 | id", {}, { tolerance = 1 })
local neg = d:copy()
neg.y = sp.eval(neg, "I(y - 1)")
T.checkerr("negative values", ppml, neg, "y ~ x1 | id")
T.checkerr("vcov must be", ppml, d, "y ~ x1 | id", { vcov = { driscoll_kraay = 2 } })
T.checkerr("instrumental variables are not supported", ppml, d, "y ~ x1 | id | x2 ~ t")

-- From YAML, with draws and with bootstrap (fewer of each than the file asks,
-- to keep the suite quick).
local s = sp.scenario.load("scenarios/ppml_example.yaml")
s.spec.experiments.pcap_draws.draws = 20
s.spec.experiments.pcap_bootstrap.bootstrap = 5
local res = sp.scenario.execute(s)
local ed, eb = res.experiments.pcap_draws, res.experiments.pcap_bootstrap
T.check(ed.method == "parameter draws" and ed.ndraws == 20, "yaml: the draws experiment used 20 parameter draws")
T.check(eb.method == "cluster bootstrap" and eb.ndraws == 5, "yaml: the bootstrap experiment used 5 refits")
local td, tb = ed.groups.all.total, eb.groups.all.total
T.check(td.sum < 0 and td.sum_lo < td.sum and td.sum < td.sum_hi and tb.sum_lo < tb.sum_hi,
  "yaml: effects with intervals from draws and from the bootstrap",
  string.format("%g [%g, %g]; %g [%g, %g]", td.sum, td.sum_lo, td.sum_hi, tb.sum, tb.sum_lo, tb.sum_hi))
-- The effect on a shocked row is exp(b log 1.1) - 1 of its baseline.
local u = ed.units[#ed.units]
T.near(u.effect / u.baseline, 1.1 ^ res.fits.ppml:coef()["log(pcap)"] - 1, 1e-9,
  "yaml: a shocked row moves by 1.1^b - 1")

-- Every ```lua ppml.lua excerpt of the tutorial is in the plugin, verbatim.
local page, code = T.read("docs/extending.md"), T.read(PLUGIN)
local excerpts = 0
for block in page:gmatch("\n```lua ppml%.lua\n(.-)\n```\n") do
  excerpts = excerpts + 1
  T.check(code:find(block, 1, true) ~= nil, "docs/extending.md excerpt " .. excerpts .. " is in " .. PLUGIN,
    block:match("^[^\n]*"))
end
T.check(excerpts >= 5, "the tutorial quotes the plugin", tostring(excerpts))
T.done()
