-- test_spatial_vcov: cluster-robust and Conley standard errors of the ML
-- spatial models (spillover.spatial_vcov): the sandwich I^-1 (sum_g s_g s_g')
-- I^-1 on the log-likelihood's per-observation scores.
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local SM = require "spillover.spatial_models"
local SV = require "spillover.spatial_vcov"
local core = require "spillover.core"

local col = sp.read_csv("tests/reference/data/columbus.csv")
local n = col:nrow()
local cids, grp = {}, {}
for i = 1, n do cids[i], grp[i] = col.POLYID[i], col.POLYID[i] % 7 end
col.grp = grp
local Wc = SM.contiguity("tests/reference/data/columbus_edges.csv", { ids = cids })
local F = "CRIME ~ INC + HOVAL"

-- ---- one observation per cluster = the heteroskedasticity-robust sandwich ---------------
-- The cluster sandwich carries Stata ml's G/(G-1); with G = n singleton
-- clusters it is n/(n-1) times the HC sandwich, which Conley with a cutoff
-- below every distance (only i = j pairs) computes through another meat.
for _, m in ipairs { "sar", "sem", "sdm" } do
  local an = SM.spatial(col, F, { model = m, weights = Wc, id = "POLYID" })
  local cl = SM.spatial(col, F, { model = m, weights = Wc, id = "POLYID", vcov = { cluster = "POLYID" } })
  local hc = SM.spatial(col, F, { model = m, weights = Wc, id = "POLYID",
    vcov = { conley = { lat = "Y", lon = "X", cutoff = 1e-6 } } })
  local worst = 0
  for _, x in ipairs(an.names) do
    T.check(cl:coef()[x] == an:coef()[x], m .. ": " .. x .. " estimate unchanged")
    worst = math.max(worst, math.abs(cl:se()[x] * math.sqrt((n - 1) / n) / hc:se()[x] - 1))
  end
  T.check(worst < 1e-10, m .. ": clusters of one = n/(n-1) x the HC sandwich = Conley with cutoff 0", tostring(worst))
  T.check(cl.vcov_label == "ML sandwich, clustered by POLYID (49)", m .. ": label", cl.vcov_label)
  T.check(hc:se().INC ~= an:se().INC, m .. ": not the information-matrix SE")
end

-- ---- diag(G) sums to tr(G) -----------------------------------------------------------------
do
  local f = SM.spatial(col, F, { model = "sar", weights = Wc, id = "POLYID" })
  local S, rho = f.spatial.S, f:coef().rho
  local g = SV.diag_G(S, rho, n, nil)
  local sum = 0
  for i = 1, n do sum = sum + g[i] end
  local _, trG = S:traces(rho, 3000, false)
  T.near(sum, trG, 1e-10, "sum of diag(W A^-1) = tr(G) (cross-section)")
  -- the scores at the ML estimates sum to zero (the rho score with its
  -- diagonal split is the concentrated likelihood's first-order condition)
  local des = sp.design(col, F)
  local Wy = S:lag(des.y)
  local b = core.matrix { f:coef()["(Intercept)"], f:coef().INC, f:coef().HOVAL }
  local e = des.y - Wy * rho - des.X * b
  local sc = SV.scores(des.X, e, Wy, f.stats.sigma2, g)
  local worst = 0
  for j = 1, sc:ncol() do
    local s, scale = 0, 0
    for i = 1, n do s, scale = s + sc:get(i, j), scale + math.abs(sc:get(i, j)) end
    worst = math.max(worst, math.abs(s) / scale)
  end
  T.check(worst < 1e-6, "SAR: the scores sum to 0 at the ML estimates", tostring(worst))
end

-- ---- rho fixed at 0: the beta block is OLS's cluster-robust V --------------------------
-- Scores x_i e_i / s2 with the OLS residuals and the information of (beta,
-- rho, sigma2) with rho's row and column zero (rho not estimated): the sigma2
-- score is orthogonal (X'e = 0), so the beta block is (X'X)^-1 sum_g X_g'e_g
-- e_g'X_g (X'X)^-1 G/(G-1), sp.ols's {cluster =, dof = "none", gadj = "each"}.
do
  local des = sp.design(col, F)
  local ols = sp.lsfit(des.X, des.y)
  local e, X = ols.resid, des.X
  local p = X:ncol()
  local s2 = ols.ssr / n
  local I = core.matrix(p + 2, p + 2, 0)
  local XX = X:crossprod()
  for i = 1, p do for j = 1, p do I:set(i, j, XX:get(i, j) / s2) end end
  I:set(p + 2, p + 2, n / (2 * s2 * s2))
  local Vinf = core.matrix(p + 2, p + 2, 0)
  local Ib = I:view(1, 1, p, p):copy():inv()
  for i = 1, p do for j = 1, p do Vinf:set(i, j, Ib:get(i, j)) end end
  Vinf:set(p + 2, p + 2, 1 / I:get(p + 2, p + 2))
  local zeros = {}
  for i = 1, n do zeros[i] = 0 end
  local S = SV.scores(X, e, core.matrix(n, 1, 0), s2, zeros)
  local Ssum = 0
  for j = 1, p + 2 do
    local s = 0
    for i = 1, n do s = s + S:get(i, j) end
    Ssum = math.max(Ssum, math.abs(s))
  end
  T.check(Ssum < 1e-8, "the scores sum to 0 at the OLS estimates", tostring(Ssum))
  local V = SV.sandwich({ type = "cluster", cluster = "grp" }, Vinf, S, col, des.rows)
  local o = sp.ols(col, F, { vcov = { cluster = "grp", dof = "none", gadj = "each" } })
  for j, x in ipairs(o.names) do
    T.near(math.sqrt(V:get(j, j)), o:se()[x], 1e-10, "rho = 0: " .. x .. " = OLS cluster SE")
  end
end

-- ---- a panel: coverage under serial correlation within unit -----------------------------
-- Pooled SAR on Columbus' 49 units over 8 periods with a unit effect in the
-- error and in x (not absorbed): the information-matrix SE ignores the
-- within-unit correlation and under-covers; clustering by unit repairs it.
do
  local Tn, R, beta, rho = 8, 60, 1, 0.3
  local Wd = Wc:dense()
  local A = core.matrix(n, n, 0)
  for i = 1, n do for j = 1, n do A:set(i, j, (i == j and 1 or 0) - rho * Wd:get(i, j)) end end
  local Ainv = A:inv()
  local cover_an, cover_cl = 0, 0
  for r = 1, R do
    local g = sp.rng(1000 + r)
    local ux, ue = g:normals(n), g:normals(n)
    local cols = { id = {}, t = {}, x = {}, y = {} }
    for t = 1, Tn do
      local x, eps = core.matrix(n, 1), core.matrix(n, 1)
      for i = 1, n do
        x:set(i, 1, ux:get(i, 1) + 0.5 * g:normal())
        eps:set(i, 1, 1.5 * ue:get(i, 1) + 0.5 * g:normal())
      end
      local yt = Ainv * (x * beta + eps)
      for i = 1, n do
        local q = #cols.id + 1
        cols.id[q], cols.t[q], cols.x[q], cols.y[q] = cids[i], t, x:get(i, 1), yt:get(i, 1)
      end
    end
    local d = sp.frame(cols)
    d:panel { entity = "id", time = "t" }
    local fa = SM.spatial(d, "y ~ x", { model = "sar", weights = Wc })
    local fc = SM.spatial(d, "y ~ x", { model = "sar", weights = Wc, vcov = { cluster = "id" } })
    if math.abs(fa:coef().x - beta) < 1.96 * fa:se().x then cover_an = cover_an + 1 end
    if math.abs(fc:coef().x - beta) < 1.96 * fc:se().x then cover_cl = cover_cl + 1 end
    if r == 1 then
      local periods = sp.design(d, "y ~ x", { extra = { "t" } }):codes("t")
      local g, sum = SV.diag_G(fc.spatial.S, fc:coef().rho, n * Tn, periods), 0
      for i = 1, n * Tn do sum = sum + g[i] end
      local _, trG = fc.spatial.S:traces(fc:coef().rho, 3000, false)
      T.near(sum, trG, 1e-10, "panel: sum of diag(G) over the period blocks = tr(G)")
    end
  end
  T.check(cover_cl / R >= 0.85, "panel: clustered 95% intervals cover", string.format("%d/%d", cover_cl, R))
  print(string.format("coverage over %d samples: clustered %d, information matrix %d", R, cover_cl, cover_an))
  T.check(cover_an / R < 0.8, "panel: the information-matrix intervals under-cover",
    string.format("%d/%d", cover_an, R))
end

-- ---- a two-way fixed-effects SDM: the scores of the demeaned model ------------------------
do
  local d = sp.read_csv("scenarios/data/cn_province_panel.csv")
  d:panel { entity = "province", time = "year" }
  local W = sp.weights.contiguity("scenarios/data/cn_province_adjacency_31_edges.csv",
    { from = "province_i", to = "province_j" })
  local f = "log(patent_grants) ~ log(digital_finance) + urbanization | province + year"
  for _, tr in ipairs { "lsdv", "splm" } do
    local a = sp.spatial(d, f, { model = "sdm", weights = W, transform = tr })
    local c = sp.spatial(d, f, { model = "sdm", weights = W, transform = tr, vcov = { cluster = "province" } })
    T.check(c.vcov_label == "ML sandwich, clustered by province (31)", tr .. ": two-way SDM label", c.vcov_label)
    local same, finite = true, true
    for _, x in ipairs(a.names) do
      same = same and a:coef()[x] == c:coef()[x]
      finite = finite and c:se()[x] > 0 and c:se()[x] < math.huge and c:se()[x] ~= a:se()[x]
    end
    T.check(same and finite, tr .. ": estimates unchanged, clustered SEs finite and not the analytic ones")
  end
end

-- ---- errors -------------------------------------------------------------------------------
T.checkerr("spatial: unknown cluster variable 'POLYD'.*did you mean 'POLYID'", SM.spatial, col, F,
  { model = "sar", weights = Wc, id = "POLYID", vcov = { cluster = "POLYD" } })
T.checkerr("spatial: vcov must be \"analytic\", \"hessian\", \"splm\", {cluster = \"id\"} or {conley = {...}}",
  SM.spatial, col, F, { model = "sar", weights = Wc, id = "POLYID", vcov = { clustr = "POLYID" } })
T.checkerr("vcov: conley.cutoff must be a distance in km > 0", SM.spatial, col, F,
  { model = "sar", weights = Wc, id = "POLYID", vcov = { conley = { lat = "Y", lon = "X", cutoff = 0 } } })

T.done()
