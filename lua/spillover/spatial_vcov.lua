-- spillover.spatial_vcov: cluster-robust and Conley standard errors for the
-- ML spatial models (sp.spatial: SAR, SDM, SEM, SDEM), the
-- vcov = {cluster = "id"} and vcov = {conley = {...}} options.
--
-- A sandwich on the ML scores, as Stata's ml computes vce(cluster) for any
-- likelihood (and xsmle, which fits these models with ml, reports it):
--
--   V = c * I^-1 (sum_g s_g s_g') I^-1,   s_g = sum of s_i over cluster g
--
-- with I the analytic information matrix of (beta, rho, sigma2) the
-- estimator already forms (Anselin 1988; Elhorst 2014), c = G/(G-1) for
-- clusters (Stata's ml) and 1 for Conley, whose meat weights the pairs s_i s_j'
-- within the cutoff instead (engine/src/conley.c).  s_i is observation i's
-- term of the log-likelihood's gradient at the estimates, for the
-- (transformed) model e = A y - X beta, A = I - rho W (lag) or
-- e = A (y - X beta), X~ = A X (error):
--
--   beta:   x~_i e_i / sigma2
--   rho:    r_i e_i / sigma2 - G_ii,  r = W y (lag) or W (y - X beta) (error),
--           G = W A^-1: the log-determinant's derivative -tr(G) split by
--           its diagonal, G_ii = E[r_i e_i] / sigma2 under the model, so that
--           every observation's score has mean zero (an equal split tr(G)/n
--           would leave a cluster of units with many or few neighbours a
--           non-zero mean, which the meat would count as variance)
--   sigma2: e_i^2 / (2 sigma2^2) - 1 / (2 sigma2)
--
-- They sum to zero at the ML estimates (up to the log-determinant's
-- approximation when it is not exact).  The meats are the C sandwich meats
-- (sp.vcov's cluster and HC0, sp.conley_vcov) applied to the score matrix
-- with unit residuals.
local core = require "spillover.core"
local util = require "spillover.util"
local conley = require "spillover.conley"
local suggest = require "spillover.suggest"
local raise = util.raise

local M = {}

--- The checked option: {type = "cluster", cluster = name} or {type =
--- "conley", conley = {...}}; nil for the ML kinds (strings).
function M.parse(v)
  if type(v) ~= "table" then return nil end
  if v.cluster ~= nil and v.conley == nil then
    util.check_options(v, { "cluster" }, "spatial: vcov")
    if type(v.cluster) ~= "string" then
      raise("spatial: vcov cluster must name one variable, got a " .. type(v.cluster))
    end
    return { type = "cluster", cluster = v.cluster }
  elseif v.conley ~= nil and v.cluster == nil then
    util.check_options(v, { "conley" }, "spatial: vcov")
    return { type = "conley", conley = conley.parse(v.conley) }
  end
  raise("spatial: vcov must be \"analytic\", \"hessian\", \"splm\", {cluster = \"id\"} or {conley = {...}}")
end

--- diag(G), G = W A^-1, A = I - rho W, for the sample S (core.spml_sample,
--- block-diagonal by period; period: the n rows' period codes, nil for a
--- cross-section, one block).  Column c of
--- the right-hand side holds a unit vector in every period (at the c-th row
--- of that period), so one solve gives column c of every period's A^-1; the
--- columns go 256 at a time.  Cost: max_t N_t solves.
function M.diag_G(S, rho, n, period)
  local slot, count, m = {}, {}, 0
  for i = 1, n do
    local t = period and period[i] or 1
    count[t] = (count[t] or 0) + 1
    slot[i] = count[t]
    if slot[i] > m then m = slot[i] end
  end
  local diag = {}
  for c0 = 1, m, 256 do
    local w = math.min(256, m - c0 + 1)
    local E = core.matrix(n, w, 0)
    for i = 1, n do
      local s = slot[i] - c0 + 1
      if s >= 1 and s <= w then E:set(i, s, 1) end
    end
    local Z = S:lag(S:solve(rho, E))
    for i = 1, n do
      local s = slot[i] - c0 + 1
      if s >= 1 and s <= w then diag[i] = Z:get(i, s) end
    end
  end
  return diag
end

--- The n x (p + 2) score matrix at the estimates: Xs the model's regressors
--- (X for lag models, A X for error models), e the residuals, r the
--- regressor of rho (W y, or W (y - X beta)), gdiag = diag(W A^-1) (M.diag_G).
function M.scores(Xs, e, r, sigma2, gdiag)
  local n, p = Xs:nrow(), Xs:ncol()
  local S = core.matrix(n, p + 2)
  local X, ev, rv = util.rows(Xs), e:tovector(), r:tovector()
  for i = 1, n do
    local ei = ev[i]
    for j = 1, p do S:set(i, j, X[i][j] * ei / sigma2) end
    S:set(i, p + 1, rv[i] * ei / sigma2 - gdiag[i])
    S:set(i, p + 2, ei * ei / (2 * sigma2 * sigma2) - 1 / (2 * sigma2))
  end
  return S
end

-- The values of column `name` at the frame rows `rows` (missing ones refused).
local function values_at(d, name, rows)
  local names = d:names()
  local known = false
  for _, nm in ipairs(names) do if nm == name then known = true; break end end
  if not known then
    raise(string.format("spatial: unknown cluster variable '%s'%s", name, suggest.did_you_mean(name, names)))
  end
  local col = d:column(name)
  local vals = type(col) == "table" and col or col:totable()
  local out = {}
  for q, row in ipairs(rows) do
    local v = vals[row]
    if v == nil or v ~= v then
      raise(string.format("spatial: cluster variable '%s' is missing at row %d", name, row))
    end
    out[q] = v
  end
  return out
end

--- The robust V of (beta, rho) (p + 1 square, rho last), its label and
--- info.  spec: M.parse's; Vinf: the inverse information matrix of
--- (beta, rho, sigma2); S: M.scores; d, rows: the frame and the estimation
--- rows (cluster ids, coordinates).  spec.type = "hc0" gives the
--- heteroskedasticity-only sandwich (one cluster per observation without G/(G-1)).
function M.sandwich(spec, Vinf, S, d, rows)
  local n, q = S:nrow(), S:ncol()
  local ones = core.matrix(n, 1, 1)
  local V, info, label
  if spec.type == "cluster" then
    V, info = core.vcov(S, ones, Vinf, { type = "cluster", cluster = { values_at(d, spec.cluster, rows) },
      cluster_names = { spec.cluster }, gadj = "each", dof = "none" })
    label = string.format("ML sandwich, clustered by %s (%d)", spec.cluster, info.ngroups[1])
  elseif spec.type == "conley" then
    V, info, label = conley.covariance(S, ones, Vinf, { vcov = { conley = spec.conley }, data = d,
      design = { rows = rows } }, q)
    label = "ML sandwich, " .. label
  elseif spec.type == "hc0" then
    V, info = core.vcov(S, ones, Vinf, { type = "hc0" })
    label = "ML sandwich, heteroskedasticity-robust"
  else
    raise("spatial: internal: unknown robust vcov '" .. tostring(spec.type) .. "'")
  end
  return V:view(1, 1, q - 1, q - 1):copy(), info, label
end

return M
