-- test_fit_protocol: sp.fit validates the contract (docs/fit-protocol.md),
-- reserves method names, keeps estimator internals in fit.private, derives
-- fit.capabilities, and one OLS fit plus a counterfactual builds the design
-- at most twice.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local core = require "spillover.core"
local M = sp.matrix

-- ---- required fields, with errors that say what was expected --------------------
T.checkerr("expected a table", sp.fit, 3)
T.checkerr("'names' must be an array", sp.fit, { b = { 1 }, V = { { 1 } }, nobs = 1 })
T.checkerr("'names' must be strings %(entry 2 is a number%)", sp.fit, { names = { "a", 2 }, b = { 1, 2 },
  V = { { 1, 0 }, { 0, 1 } }, nobs = 1 })
T.checkerr("'b' must be 2 numbers .*got 1 entries", sp.fit, { names = { "a", "c" }, b = { 1 },
  V = { { 1, 0 }, { 0, 1 } }, nobs = 1 })
T.checkerr("'b' must be 1 numbers .*got a string at entry 1", sp.fit, { names = { "a" }, b = { "x" }, V = { { 1 } }, nobs = 1 })
T.checkerr("'V' must be a 2 x 2 matrix .*got row 2 with 1 entries", sp.fit, { names = { "a", "c" }, b = { 1, 2 },
  V = { { 1, 0 }, { 0 } }, nobs = 1 })
T.checkerr("'V' must be a 2 x 2 matrix .*got a 2 x 1 matrix", sp.fit, { names = { "a", "c" }, b = { 1, 2 },
  V = M{ 1, 2 }, nobs = 1 })
T.checkerr("'V' must be a 1 x 1 matrix .*got nothing", sp.fit, { names = { "a" }, b = { 1 }, nobs = 1 })
T.checkerr("'nobs' must be the number of observations used .*got nothing", sp.fit,
  { names = { "a" }, b = { 1 }, V = { { 1 } } })
T.checkerr("'nobs' must be .*got 2.5", sp.fit, { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 2.5 })
-- the error points at the caller's line, not into spillover
local msg = T.checkerr("nobs", sp.fit, { names = { "a" }, b = { 1 }, V = { { 1 } } })
T.check(not msg:find("fit%.lua"), "sp.fit errors do not name spillover's files", msg)

-- ---- any k x k V, as rows or a matrix (1 x 1 included); b as a vector matrix -------
do
  local f = sp.fit { names = { "a" }, b = M{ 2 }, V = M(1, 1, 4), nobs = 10 }
  T.check(f:se().a == 2, "a 1 x 1 matrix V is accepted (totable would flatten it)")
  local g = sp.fit { names = { "a", "c" }, b = M{ { 1, 2 } }, V = M{ { 4, 1 }, { 1, 9 } }, nobs = 10 }
  T.check(g:coef().c == 2 and g:vcov().a.c == 1 and g:se().c == 3, "a 1 x k b and a k x k matrix V")
  local h = sp.fit { names = {}, b = {}, V = {}, nobs = 0 }
  T.check(#h.names == 0 and h.nobs == 0, "an empty fit (k = 0) is allowed")
end

-- ---- reserved method names -----------------------------------------------------
for _, name in ipairs { "se", "coef", "predict", "summary", "draw", "fitted" } do
  T.checkerr("field '" .. name .. "' is reserved", sp.fit, { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 3,
    [name] = 2 })
end
do
  -- stats may carry anything, a name like "se" included, and printing works
  local f = sp.fit { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 3, stats = { se = 2 } }
  T.check(tostring(f):find("Observations: 3") ~= nil, "print works for a fit whose stats have a field 'se'")
end

-- ---- private -------------------------------------------------------------------
do
  local secret = { frame = "not printed" }
  local f = sp.fit { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 3, private = secret }
  T.check(f.private == secret, "fit.private is the estimator's table")
  T.check(not tostring(f):find("not printed"), "printing ignores fit.private")
  local g = sp.fit { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 3 }
  T.check(type(g.private) == "table", "every fit has a private table")
  T.checkerr("'private' must be a table", sp.fit, { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 3, private = 1 })
  local d = sp.frame { y = { 1, 3, 2, 5, 4, 6 }, x = { 1, 2, 3, 4, 5, 6 }, g = { "a", "a", "b", "b", "c", "c" } }
  local o = sp.ols(d, "y ~ x | g")
  T.check(rawget(o, "design") == nil and rawget(o, "absorb") == nil and rawget(o, "data") == nil,
    "sp.ols keeps its design, data and absorb workspace out of the fit's fields")
  T.check(o.private.design ~= nil and o.private.absorb ~= nil and o.private.data == d,
    "sp.ols keeps them in fit.private")
  local json = require("spillover.json")
  local rec = json.encode { coef = o:coef(), stats = o.stats }
  T.check(not rec:find("private"), "the fit's json record has no private part")
end

-- ---- capabilities ----------------------------------------------------------------
do
  local f = sp.fit { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 3 }
  local c = f.capabilities
  T.check(c.draw == true and c.predict == false and c.predict_matrix == false and c.refit == false and
    c.spatial == false and c.dynamic == nil, "a bare fit can draw and nothing else")
  f.predict_fn = function() return M(1, 1, 0) end
  T.check(f.capabilities.predict == true, "predict_fn set after sp.fit (as plugins do) counts")
  local nan = sp.fit { names = { "a" }, b = { 1 }, V = { { 0 / 0 } }, nobs = 3 }
  T.check(nan.capabilities.draw == false, "a NaN covariance cannot serve draws")
  local s = sp.fit { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 3, capabilities = { spatial = true, draw = false } }
  T.check(s.capabilities.spatial == true and s.capabilities.draw == false, "explicit capabilities win")
  T.checkerr("unknown capability 'spatail' .*did you mean 'spatial'", sp.fit, { names = { "a" }, b = { 1 },
    V = { { 1 } }, nobs = 3, capabilities = { spatail = true } })
  T.checkerr("capability 'draw' must be true or false", sp.fit, { names = { "a" }, b = { 1 },
    V = { { 1 } }, nobs = 3, capabilities = { draw = 1 } })
  local function dyn(formula)
    local g = sp.fit { names = { "a" }, b = { 1 }, V = { { 1 } }, nobs = 3, formula = formula }
    return g.capabilities.dynamic and table.concat(g.capabilities.dynamic, ",") or "none"
  end
  T.check(dyn("y ~ l(y, 2) + x + l(y, 1) + l(x, 3)") == "1,2", "dynamic: the lags of the response, sorted")
  T.check(dyn("y ~ l(x, 1) + yy + l(yy, 1)") == "none", "lags of other variables (even yy) are not dynamic")
  T.check(dyn("y ~ log(l(y, 3)) | id") == "3", "a lag of y inside a call is dynamic")
  T.check(dyn("log(y) ~ l(log(y), 1) + l(y, 2)") == "1", "the response as written (log(y)) is what lags count")
  T.check(dyn("y ~ l(y, 1:2)") == "1,2", "a lag range")
  T.check(dyn(nil) == "none", "no formula: not dynamic")
  local d = sp.frame { y = { 1, 3, 2, 5, 4, 6, 5, 8 }, x = { 1, 2, 3, 4, 5, 6, 8, 7 } }
  local o = sp.ols(d, "y ~ x")
  local oc = o.capabilities
  T.check(oc.predict and oc.predict_matrix and oc.refit and oc.draw and not oc.spatial and oc.dynamic == nil,
    "sp.ols fits predict, predict_matrix, refit and draw")
end

-- ---- draws use m:chol, and semidefinite V -----------------------------------------
do
  local V = { { 4, 2, 0 }, { 2, 5, 0 }, { 0, 0, 0 } }
  local f = sp.fit { names = { "a", "b", "c" }, b = { 1, 2, 3 }, V = V, nobs = 10 }
  local rng = sp.rng(7)
  local n, sa, sb, sab, cfix = 4000, 0, 0, 0, true
  for _ = 1, n do
    local d = f:draw(rng)
    sa, sb, sab = sa + (d.a - 1) ^ 2, sb + (d.b - 2) ^ 2, sab + (d.a - 1) * (d.b - 2)
    if d.c ~= 3 then cfix = false end
  end
  T.near(sa / n, 4, 0.1, "draws: variance of a")
  T.near(sab / n, 2, 0.15, "draws: covariance of a and b")
  T.check(cfix, "a coefficient without variance takes no noise")
  -- collinear but semidefinite (rank 1): draws lie on the line b - a = 1
  local g = sp.fit { names = { "a", "b" }, b = { 0, 1 }, V = { { 1, 1 }, { 1, 1 } }, nobs = 10 }
  local d = g:draw(sp.rng(3))
  T.near(d.b - d.a, 1, 1e-12, "a semidefinite V draws along its range")
  local bad = sp.fit { names = { "a", "b" }, b = { 0, 0 }, V = { { 1, 2 }, { 2, 1 } }, nobs = 10 }
  T.checkerr("not positive semi%-definite", bad.draw, bad, sp.rng(1))
end

-- ---- one design per fit ---------------------------------------------------------
-- core.design_stats() counts the designs built (for tests only).  Before the
-- fit kept its design untransformed, an OLS fit with one fixed effect built
-- 2 and the counterfactual with draws 5 more (7); now the fit builds 1 and
-- the counterfactual one for the shocked frame (the baseline frame is the
-- fitted one, unchanged: core.frame_version says so, and its design is reused).
do
  local ids, years, x, y = {}, {}, {}, {}
  for u = 1, 5 do
    for t = 2001, 2006 do
      ids[#ids + 1], years[#years + 1] = "u" .. u, t
      local xv = u + (u * t % 7) * 0.3
      x[#x + 1], y[#y + 1] = xv, 2 * xv + u + ((u * 31 + t * 7) % 5) * 0.1
    end
  end
  local d = sp.frame { id = ids, year = years, x = x, y = y }
  d:panel { entity = "id", time = "year" }
  local base = core.design_stats().builds
  local f = sp.ols(d, "y ~ x | id")
  T.check(core.design_stats().builds - base == 1, "one sp.ols fit with a fixed effect builds one design",
    tostring(core.design_stats().builds - base))
  local des = f.private.design
  T.check(des.y:get(1, 1) == y[1], "the fit's design is kept as built (not demeaned)")
  local fx = f:fixef()
  local fitted = f:fitted()
  local _ = f.stats.r2_overall_corr
  T.check(core.design_stats().builds - base == 1, "fixed effects, fitted values and the overall R2 reuse it")
  T.near(fitted:get(3, 1), y[3] - f:resid():get(3, 1), 1e-12, "fitted = y - e in levels")
  T.near(fx.id.u1 + f:coef().x * x[1], fitted:get(1, 1), 1e-10, "fitted = fixed effect + x b")
  sp.counterfactual { fit = f, data = d, shocks = { { variable = "x", change = "+10%" } }, draws = 20,
    entity = "id", time = "year" }
  local n = core.design_stats().builds - base
  T.check(n <= 2, "one OLS fit plus a counterfactual with draws builds at most 2 designs (was 7)", tostring(n))
  -- the baseline reuses the fit's design only while the frame is unchanged
  local before = core.design_stats().builds
  local p_own = f:predict(d)
  T.check(core.design_stats().builds == before, "predict on the unchanged fitted frame builds no design")
  local x2 = {}
  for i = 1, #x do x2[i] = x[i] + 1 end
  d.x = x2
  local p_new = f:predict(d)
  T.check(core.design_stats().builds == before + 1, "a changed frame gets a design of its own")
  T.near(p_new:get(4, 1) - p_own:get(4, 1), f:coef().x, 1e-12, "and the prediction sees the new values")
  d.x = x
  -- predict takes the regressor matrix when the caller has it
  local X = f:predict_matrix(d)
  local before = core.design_stats().builds
  local p = f:predict(d, { matrix = X })
  T.check(core.design_stats().builds == before, "predict with opts.matrix builds no design")
  T.near(p:get(2, 1), f:predict(d):get(2, 1), 1e-14, "and predicts the same")
  T.checkerr("'matrix' must be predict_matrix", f.predict, f, d, { matrix = sp.matrix(2, 2, 0) })
end

-- ---- formulas are rewritten as objects, never as text ------------------------------
do
  -- an entity whose name needs backquotes: "y ~ x | firm id" was built as text
  local ids, years, x, y = {}, {}, {}, {}
  for u = 1, 6 do
    for t = 1, 5 do
      ids[#ids + 1], years[#years + 1] = u, t
      x[#x + 1] = (u * 7 + t * 3) % 11 + 0.5 * t
      y[#y + 1] = 1.5 * x[#x] + u + ((u * 5 + t * 11) % 7) * 0.2
    end
  end
  local d = sp.frame { ["firm id"] = ids, year = years, x = x, y = y }
  d:panel { entity = "firm id", time = "year" }
  local h = sp.pftest(d, "y ~ x")
  T.check(h.statistic ~= nil and h.data_name == "y ~ x", "pftest with an entity named 'firm id'")
  local w = sp.ols(d, "y ~ x | `firm id`")
  local p = w:predict(d)
  T.near(p:get(4, 1), w:fitted():get(4, 1), 1e-10, "predict of a fit whose fixed effect needs backquotes")
  local iv = sp.ols(d, "y ~ 1 | `firm id` | x ~ year")
  T.check(iv:predict(d):nrow() == d:nrow(), "2SLS predicts through the formula without its IV part")
end

-- ---- one error model: every failure is a spillover.error at the user's call ----------
-- Errors found in Lua (options, vcov, shocks) and in C (columns) are the same
-- kind of object, and where names this file's line however deep inside
-- spillover the failure was found.  (Before, a bad column gave a table and a
-- bad option a string, and error()'s hand-counted levels pointed elsewhere,
-- e.g. the Driscoll-Kraay lag error pointed inside spillover.)
do
  local ids, years, x, y = {}, {}, {}, {}
  for u = 1, 4 do
    for t = 1, 5 do
      ids[#ids + 1], years[#years + 1], x[#x + 1] = u, t, (u * 3 + t * 7) % 5 + t
      y[#y + 1] = x[#x] * 2 + u
    end
  end
  local d = sp.frame { id = ids, year = years, x = x, y = y }
  d:panel { entity = "id", time = "year" }
  local fit = sp.ols(d, "y ~ x")
  local cases = {
    { "driscoll_kraay lag %-3", function() local _ = sp.ols(d, "y ~ x", { vcov = { driscoll_kraay = -3 } }) end },
    { "unknown type 'hc9'", function() local _ = sp.ols(d, "y ~ x", { vcov = "hc9" }) end },
    { "unknown option 'vcv'", function() local _ = sp.ols(d, "y ~ x", { vcv = "hc1" }) end },
    { "unknown variable 'z'", function() local _ = sp.ols(d, "y ~ z") end },
    { "unknown preset", function() local _ = sp.ols(d, "y ~ x", { compat = "stat" }) end },
    { "shock", function() local _ = sp.counterfactual { fit = fit, data = d, shocks = { { variable = "x", change = "lots" } } } end },
    { "mediation", function() local _ = sp.mediation(d, { x = "x", m = "nope", y = "y" }) end },
    { "weights", function() local _ = sp.weights.contiguity(d, { from = "nope" }) end },
    { "re", function() local _ = sp.re(d, "y ~ x", { effect = "bogus" }) end },
  }
  for _, c in ipairs(cases) do
    local line = debug.getinfo(c[2], "S").linedefined
    local ok, e = pcall(c[2])
    T.check(not ok and type(e) == "table" and getmetatable(e).__name == "spillover.error" and
      e.msg:find(c[1]) ~= nil, "a spillover.error: " .. c[1], tostring(e))
    local want = "test_fit_protocol.lua:" .. line .. ": "
    T.check(type(e) == "table" and e.where:sub(-#want) == want,
      "located at the user's call (not a tail call): " .. c[1], type(e) == "table" and e.where or tostring(e))
  end
end

T.done()
