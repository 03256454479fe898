-- spillover.tobit: censored regression (docs/estimators/dea.md, "Second stage").
--
--   sp.tobit(d, "eff ~ dig + x", {left = 0, right = 1, model = "pooled" | "re", entity = "id",
--                                  quadrature = 12})
--
-- y* = x'b + e, observed y = left when y* <= left, right when y* >= right.
-- Pooled: e ~ N(0, sigma^2) (Stata's tobit).  Random effects: y*_it = x'b +
-- u_i + e_it, u_i ~ N(0, sigma_u^2), the likelihood of entity i integrated over
-- u_i by adaptive Gauss-Hermite quadrature (as Stata's xttobit).  The
-- maximum is found by Newton's method on (b, log sigma...) with a numerical
-- Hessian; the covariance is the inverse of the observed information.
local core = require "spillover.core"
local util = require "spillover.util"
local fitmod = require "spillover.fit"
local F = require "spillover.formula"
local raise = util.raise

local M = {}

local SQRT2PI = math.sqrt(2 * math.pi)
local pnorm = core.dist.pnorm

local function dnorm(z) return math.exp(-0.5 * z * z) / SQRT2PI end

-- log Phi(z) without underflow in the lower tail.
local function lpnorm(z)
  if z > -30 then return math.log(pnorm(z)) end
  return -0.5 * z * z - math.log(-z) - 0.5 * math.log(2 * math.pi)
end

--- Gauss-Hermite nodes and weights for the integral of f(z) exp(-z^2)
--- (Golub-Welsch: the eigen decomposition of the Jacobi matrix).
function M.hermite(q)
  local J = core.matrix(q, q, 0)
  for i = 1, q - 1 do
    local b = math.sqrt(i / 2)
    J:set(i, i + 1, b)
    J:set(i + 1, i, b)
  end
  local vals, vecs = J:eigen()
  local x, w = {}, {}
  for i = 1, q do x[i], w[i] = vals:get(i, 1), math.sqrt(math.pi) * vecs:get(1, i) ^ 2 end
  return x, w
end

-- The Hessian by central differences of the analytic score.
local function num_hess(grad, th)
  local k = #th
  local H = core.matrix(k, k, 0)
  for j = 1, k do
    local h = 1e-4 * math.max(1, math.abs(th[j]))
    local save = th[j]
    th[j] = save + h
    local gp = grad(th)
    th[j] = save - h
    local gm = grad(th)
    th[j] = save
    for i = 1, k do H:set(i, j, (gp[i] - gm[i]) / (2 * h)) end
  end
  -- symmetrise
  for i = 1, k do
    for j = i + 1, k do
      local v = 0.5 * (H:get(i, j) + H:get(j, i))
      H:set(i, j, v)
      H:set(j, i, v)
    end
  end
  return H
end

-- Newton's method with step halving.  Returns theta, ll, H, iterations.
local function maximize(f, grad, th, who, maxiter, tol)
  local ll = f(th)
  if ll ~= ll or ll == -math.huge then raise(who .. ": the log likelihood is not finite at the starting values") end
  for it = 1, maxiter do
    local g = grad(th)
    local H = num_hess(grad, th)
    local negH = H * -1
    local ok, step = pcall(function() return negH:solve(core.matrix(g)) end)
    local dir = {}
    local newton = ok and true
    if newton then
      for j = 1, #th do dir[j] = step:get(j, 1) end
      local slope = 0
      for j = 1, #th do slope = slope + dir[j] * g[j] end
      if slope ~= slope or slope <= 0 then newton = false end  -- not an ascent direction
    end
    if not newton then
      for j = 1, #th do dir[j] = g[j] * 1e-2 end
    end
    local t, improved = 1, false
    local cand = {}
    for _ = 1, 40 do
      for j = 1, #th do cand[j] = th[j] + t * dir[j] end
      local l2 = f(cand)
      if l2 == l2 and l2 >= ll - 1e-12 then
        improved = true
        local change = l2 - ll
        for j = 1, #th do th[j] = cand[j] end
        ll = l2
        local gmax = 0
        for _, v in ipairs(grad(th)) do gmax = math.max(gmax, math.abs(v)) end
        if newton and t == 1 and (change < tol and gmax < 1e-4) then
          return th, ll, num_hess(grad, th), it
        end
        break
      end
      t = t / 2
    end
    if not improved then
      local gmax = 0
      for _, v in ipairs(g) do gmax = math.max(gmax, math.abs(v)) end
      if gmax < 1e-3 then return th, ll, num_hess(grad, th), it end
      raise(who .. ": the likelihood could not be increased (iteration " .. it .. "); check for a regressor "
        .. "that predicts censoring perfectly", { code = "did not converge" })
    end
  end
  raise(who .. ": no convergence in " .. maxiter .. " iterations", { code = "did not converge" })
end

-- phi(z) / Phi(z), with its limit -z far in the lower tail.
local function mills(z)
  if z < -30 then return -z end
  return dnorm(z) / pnorm(z)
end

-- One observation's log density, its first and second derivatives with
-- respect to its index v = x'b (+ u), and its derivative with respect to
-- log sigma.
local function obs(yi, v, s, lo, hi)
  if lo and yi <= lo then
    local a = (lo - v) / s
    local l = mills(a)
    return lpnorm(a), -l / s, -l * (a + l) / (s * s), -l * a
  elseif hi and yi >= hi then
    local c = (v - hi) / s
    local l = mills(c)
    return lpnorm(c), l / s, -l * (c + l) / (s * s), -l * c
  end
  local z = (yi - v) / s
  return -0.5 * z * z - math.log(s * SQRT2PI), z / s, -1 / (s * s), z * z - 1
end

--- The score of the pooled Tobit log likelihood in (b, log sigma): an array
--- of k + 1 derivatives at theta, from the rows X (arrays) and y.
function M.score(theta, X, y, lo, hi)
  local k = #X[1]
  local s = math.exp(theta[k + 1])
  local g = {}
  for j = 1, k + 1 do g[j] = 0 end
  for i, r in ipairs(X) do
    local v = 0
    for j = 1, k do v = v + r[j] * theta[j] end
    local _, db, _, de = obs(y[i], v, s, lo, hi)
    for j = 1, k do g[j] = g[j] + db * r[j] end
    g[k + 1] = g[k + 1] + de
  end
  return g
end

--- The random-effects Tobit log likelihood and its score in (b, log sigma_u,
--- log sigma_e).  Entity i contributes log of the integral over u of
--- exp(h(u)), h(u) = sum_t log f(y_it | x_it'b + u) + log N(u; 0, sigma_u^2),
--- by adaptive Gauss-Hermite quadrature (Liu & Pierce 1994, as xttobit):
--- the nodes are centred at the mode of h and scaled by its curvature, found
--- by Newton's method (h is concave).  The score is the posterior mean of
--- dh/dtheta over the nodes.  modes: a table of starting points per entity,
--- updated in place.
function M.re_loglik(theta, X, y, lo, hi, groups, gx, gw, modes)
  local k = #X[1]
  local su, se = math.exp(theta[k + 1]), math.exp(theta[k + 2])
  local ll, g = 0, {}
  for j = 1, k + 2 do g[j] = 0 end
  local xbs = {}
  for i, r in ipairs(X) do
    local v = 0
    for j = 1, k do v = v + r[j] * theta[j] end
    xbs[i] = v
  end
  local q = #gx
  local lsu = math.log(su * SQRT2PI)
  local function h(rows, u)
    local val, d1, d2 = -0.5 * (u / su) ^ 2 - lsu, -u / (su * su), -1 / (su * su)
    for _, i in ipairs(rows) do
      local l, db, dbb = obs(y[i], xbs[i] + u, se, lo, hi)
      val, d1, d2 = val + l, d1 + db, d2 + dbb
    end
    return val, d1, d2
  end
  local terms, gr = {}, {}
  for gi, rows in ipairs(groups) do
    local mu = modes[gi] or 0
    local _, d1, d2 = h(rows, mu)
    for _ = 1, 50 do
      local step = -d1 / d2
      mu = mu + step
      _, d1, d2 = h(rows, mu)
      if math.abs(step) < 1e-10 * (1 + math.abs(mu)) then break end
    end
    modes[gi] = mu
    local tau = math.sqrt(-1 / d2)
    local mx = -math.huge
    for a = 1, q do
      local u = mu + math.sqrt(2) * tau * gx[a]
      local lsum = math.log(math.sqrt(2) * tau * gw[a]) + gx[a] ^ 2 - 0.5 * (u / su) ^ 2 - lsu
      local ga = gr[a] or {}
      for j = 1, k + 2 do ga[j] = 0 end
      for _, i in ipairs(rows) do
        local l, db, _, de = obs(y[i], xbs[i] + u, se, lo, hi)
        lsum = lsum + l
        local r = X[i]
        for j = 1, k do ga[j] = ga[j] + db * r[j] end
        ga[k + 2] = ga[k + 2] + de
      end
      ga[k + 1] = (u / su) ^ 2 - 1
      terms[a], gr[a] = lsum, ga
      if lsum > mx then mx = lsum end
    end
    local acc = 0
    for a = 1, q do
      terms[a] = math.exp(terms[a] - mx)
      acc = acc + terms[a]
    end
    ll = ll + mx + math.log(acc)
    for a = 1, q do
      local p = terms[a] / acc
      for j = 1, k + 2 do g[j] = g[j] + p * gr[a][j] end
    end
  end
  return ll, g
end

local OPTIONS = { "left", "right", "model", "entity", "quadrature", "maxiter", "tol" }

function M.tobit(d, formula, opts)
  local who = "tobit"
  opts = opts or {}
  util.check_options(opts, OPTIONS, who)
  local lo, hi = opts.left, opts.right
  if lo == nil and hi == nil then lo = 0 end
  if lo ~= nil and type(lo) ~= "number" then raise(who .. ": 'left' must be a number") end
  if hi ~= nil and type(hi) ~= "number" then raise(who .. ": 'right' must be a number") end
  if lo and hi and lo >= hi then raise(who .. ": 'left' must be below 'right'") end
  local model = opts.model or "pooled"
  if model ~= "pooled" and model ~= "re" then
    raise(who .. ": model must be \"pooled\" or \"re\", got " .. tostring(model))
  end
  local entity = opts.entity
  if model == "re" and not entity then
    local p = util.panel_of(d)
    entity = p and p.entity
    if not entity then raise(who .. ": model \"re\" needs 'entity' (or a frame with d:panel{...})") end
  end
  local des = core.design(d, formula, entity and { extra = { entity } } or nil)
  local n, k = des.n, des.k
  if n <= k + 1 then raise(string.format("%s: %d observations for %d coefficients", who, n, k + 1)) end
  local X = util.rows(des.X)
  local y = des.y:tovector()
  local nl, nr = 0, 0
  for i = 1, n do
    if lo and y[i] <= lo then nl = nl + 1 elseif hi and y[i] >= hi then nr = nr + 1 end
    if lo and y[i] < lo - 1e-12 * math.max(1, math.abs(lo)) or hi and y[i] > hi + 1e-12 * math.max(1, math.abs(hi)) then
      raise(string.format("%s: %s = %g in row %d lies outside the censoring limits", who, des.yname, y[i], des.rows[i]),
        { var = des.yname })
    end
  end
  if nl + nr == n then raise(who .. ": every observation is censored") end
  local function xb(b, i)
    local s, r = 0, X[i]
    for j = 1, k do s = s + r[j] * b[j] end
    return s
  end
  -- Starting values: OLS on all rows.
  local ls = core.lsfit(des.X, des.y)
  local th = {}
  for j = 1, k do th[j] = ls.b:get(j, 1) == ls.b:get(j, 1) and ls.b:get(j, 1) or 0 end
  local s0 = math.sqrt(ls.ssr / math.max(1, n - k))
  if s0 ~= s0 or s0 <= 0 then s0 = 1 end  -- a perfect or degenerate OLS start
  local f, groups, gx, gw, modes
  if model == "pooled" then
    th[k + 1] = math.log(s0)
    f = function(t)
      local s, ll = math.exp(t[k + 1]), 0
      for i = 1, n do ll = ll + obs(y[i], xb(t, i), s, lo, hi) end
      return ll
    end
  else
    local codes, ng = des:codes(entity)
    groups = {}
    for g = 1, ng do groups[g] = {} end
    for i = 1, n do table.insert(groups[codes[i]], i) end
    local q = opts.quadrature or 12
    if math.type(q) ~= "integer" or q < 2 or q > 200 then raise(who .. ": quadrature must be an integer in 2..200") end
    gx, gw = M.hermite(q)
    th[k + 1], th[k + 2] = math.log(s0 / math.sqrt(2)), math.log(s0 / math.sqrt(2))
    modes = {}
    f = function(t) return (M.re_loglik(t, X, y, lo, hi, groups, gx, gw, modes)) end
  end
  local grad
  if model == "pooled" then
    grad = function(t) return M.score(t, X, y, lo, hi) end
  else
    grad = function(t) return select(2, M.re_loglik(t, X, y, lo, hi, groups, gx, gw, modes)) end
  end
  local theta, ll, H, iters = maximize(f, grad, th, who, opts.maxiter or 100, opts.tol or 1e-9)
  local ok, Vlog = pcall(function() return (H * -1):inv() end)
  if not ok then
    raise(who .. ": the information matrix is singular (collinear regressors?)", { code = "singular matrix" })
  end
  -- Report sigma(s) on their natural scale (delta method: d sigma = sigma d log sigma).
  local npar = #theta
  local b, names = {}, {}
  for j = 1, k do b[j], names[j] = theta[j], des.names[j] end
  local aux = model == "pooled" and { "sigma" } or { "sigma_u", "sigma_e" }
  local jac = {}
  for j = 1, npar do jac[j] = 1 end
  for a, nm in ipairs(aux) do
    b[k + a], names[k + a] = math.exp(theta[k + a]), nm
    jac[k + a] = b[k + a]
  end
  local V = core.matrix(npar, npar, 0)
  for i = 1, npar do
    for j = 1, npar do V:set(i, j, jac[i] * Vlog:get(i, j) * jac[j]) end
  end
  -- Average marginal effects on E[y | x] (censored mean), with the total
  -- error variance for the random-effects model.
  local function ame(t)
    local s = model == "pooled" and math.exp(t[k + 1]) or math.sqrt(math.exp(2 * t[k + 1]) + math.exp(2 * t[k + 2]))
    local share = 0
    for i = 1, n do
      local v = xb(t, i)
      local pu = hi and pnorm((hi - v) / s) or 1
      local pl = lo and pnorm((lo - v) / s) or 0
      share = share + (pu - pl)
    end
    share = share / n
    local out = {}
    for j = 1, k do out[j] = t[j] * share end
    return out, share
  end
  local eff, share = ame(theta)
  local Jm = {}
  for j = 1, npar do
    local h = 1e-6 * math.max(1, math.abs(theta[j]))
    local save = theta[j]
    theta[j] = save + h
    local ep = ame(theta)
    theta[j] = save - h
    local em = ame(theta)
    theta[j] = save
    Jm[j] = {}
    for q = 1, k do Jm[j][q] = (ep[q] - em[q]) / (2 * h) end
  end
  local me = { term = {}, dydx = {}, std_error = {}, z = {}, pvalue = {} }
  local rows_me = 0
  for q = 1, k do
    if des.names[q] ~= "(Intercept)" then
      local var = 0
      for i = 1, npar do
        for j = 1, npar do var = var + Jm[i][q] * Vlog:get(i, j) * Jm[j][q] end
      end
      rows_me = rows_me + 1
      local se = math.sqrt(math.max(var, 0))
      me.term[rows_me], me.dydx[rows_me], me.std_error[rows_me] = des.names[q], eff[q], se
      me.z[rows_me] = eff[q] / se
      me.pvalue[rows_me] = 2 * pnorm(-math.abs(eff[q] / se))
    end
  end
  local label = model == "pooled" and "Tobit" or "Random-effects Tobit"
  local limits = string.format("censored %s%s%s", lo and ("below at " .. lo) or "", lo and hi and ", " or "",
    hi and ("above at " .. hi) or "")
  local fit = fitmod.new {
    names = names, b = b, V = V, nobs = n, dist = "normal", estimator = "tobit",
    label = label .. " (" .. limits .. ")", formula = formula, vcov_label = "OIM",
    stats = { ll = ll, n_left = nl, n_right = nr, n_uncensored = n - nl - nr, iterations = iters,
      n_entities = groups and #groups or nil, uncensored_share = share },
    notes = { string.format("%d left-censored, %d right-censored, %d uncensored observations", nl, nr, n - nl - nr) },
    private = { X = X, y = y, left = lo, right = hi, model = model, theta = theta },
  }
  fit.marginal_effects = core.frame(me, { order = { "term", "dydx", "std_error", "z", "pvalue" } })
  -- Counterfactual hook: the censored mean E[y | x] on new data.
  fit.predict_fn = function(self, frame, popts)
    local coef = popts and popts.coef or self:coef()
    local f0 = F.parse(self.formula):without_response()
    local dn = core.design(frame, f0)
    local out = core.matrix(frame:nrow(), 1, 0 / 0)
    -- abs: a parameter draw of sigma can fall below 0; only its size matters
    local sg = model == "pooled" and math.abs(coef.sigma) or math.sqrt(coef.sigma_u ^ 2 + coef.sigma_e ^ 2)
    for i, r in ipairs(dn.rows) do
      local v = 0
      for j, nm in ipairs(dn.names) do v = v + dn.X:get(i, j) * coef[nm] end
      local a = lo and (lo - v) / sg
      local c = hi and (hi - v) / sg
      local Pa, Pc = a and pnorm(a) or 0, c and pnorm(c) or 1
      local e = (Pc - Pa) * v + sg * ((a and dnorm(a) or 0) - (c and dnorm(c) or 0))
      if lo then e = e + lo * Pa end
      if hi then e = e + hi * (1 - Pc) end
      out:set(r, 1, e)
    end
    return out
  end
  return fit
end

-- Scenarios name it as `estimator: tobit` (options as sp.tobit's).
require("spillover.registry").register {
  name = "tobit",
  fit = function(d, model, options) return M.tobit(d, model.formula, options) end,
  model_keys = {},
  options = {
    left = { type = "number" }, right = { type = "number" }, model = { type = "string", enum = { "pooled", "re" } },
    entity = { type = "string" }, quadrature = { type = "integer", min = 2, max = 200 },
    maxiter = { type = "integer", min = 1 }, tol = { type = "number", min = 0 },
  },
  capabilities = { predict = true, predict_matrix = false, refit = false, draw = true, spatial = false },
}

return setmetatable(M, { __call = function(_, ...) return M.tobit(...) end })
