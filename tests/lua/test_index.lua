package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local index = require "spillover.index"

local function col(m) return m:totable() end
local function isnan(x) return x ~= x end

-- ---- a worked example by hand ---------------------------------------------------------
-- Four regions, three indicators; x3 is a "cost" indicator (smaller is better).
local X1, X2, X3 = { 2, 4, 6, 8 }, { 10, 30, 25, 40 }, { 5, 3, 4, 1 }
local d = sp.frame({ region = { "a", "b", "c", "d" }, x1 = X1, x2 = X2, x3 = X3 },
                   { order = { "region", "x1", "x2", "x3" } })

-- Independent computation with plain Lua arithmetic, formula by formula.
local function by_hand(cols, dirs, shift)
  local n, k = #cols[1], #cols
  local Z, e, w = {}, {}, {}
  for j = 1, k do
    local lo, hi = math.huge, -math.huge
    for i = 1, n do lo = math.min(lo, cols[j][i]); hi = math.max(hi, cols[j][i]) end
    Z[j] = {}
    for i = 1, n do
      local x = cols[j][i]
      Z[j][i] = (dirs[j] > 0 and (x - lo) or (hi - x)) / (hi - lo) + shift
    end
    local s = 0
    for i = 1, n do s = s + Z[j][i] end
    local h = 0
    for i = 1, n do
      local p = Z[j][i] / s
      if p > 0 then h = h + p * math.log(p) end
    end
    e[j] = -h / math.log(n)
  end
  local dsum = 0
  for j = 1, k do dsum = dsum + (1 - e[j]) end
  for j = 1, k do w[j] = (1 - e[j]) / dsum end
  local score = {}
  for i = 1, n do
    score[i] = 0
    for j = 1, k do score[i] = score[i] + w[j] * Z[j][i] end
  end
  return e, w, score
end

local e_h, w_h, s_h = by_hand({ X1, X2, X3 }, { 1, 1, -1 }, 1e-4)
local r = index.entropy(d, { "x1", "x2", "x3" }, { direction = { x3 = "-" } })
for j, name in ipairs { "x1", "x2", "x3" } do
  T.near(r.entropy[name], e_h[j], 1e-13, "entropy e_" .. name .. " by hand")
  T.near(r.weights[name], w_h[j], 1e-13, "weight w_" .. name .. " by hand")
  T.near(r.divergence[name], 1 - e_h[j], 1e-12, "divergence of " .. name)
end
for i = 1, 4 do T.near(r.score[i], s_h[i], 1e-13, "score row " .. i .. " by hand") end

-- The same numbers from R (base R only):
--   X <- cbind(x1=c(2,4,6,8), x2=c(10,30,25,40), x3=c(5,3,4,1)); dir <- c(1,1,-1)
--   Z <- sapply(1:3, function(j){x<-X[,j]; if(dir[j]>0)(x-min(x))/(max(x)-min(x)) else (max(x)-x)/(max(x)-min(x))})+1e-4
--   P <- sweep(Z,2,colSums(Z),"/"); e <- -colSums(P*log(P))/log(4); w <- (1-e)/sum(1-e); Z %*% w
local R_e = { 0.72995048123611872, 0.76345598971950157, 0.68983292726495238 }
local R_w = { 0.33063484964326217, 0.28961241490487444, 0.37975273545186339 }
local R_s = { 0.0001, 0.49326292754360201, 0.46026762441091118, 1.0001 }
for j, name in ipairs { "x1", "x2", "x3" } do
  T.near(r.entropy[name], R_e[j], 1e-13, "entropy " .. name .. " = R")
  T.near(r.weights[name], R_w[j], 1e-13, "weight " .. name .. " = R")
end
for i = 1, 4 do T.near(r.score[i], R_s[i], 1e-13, "score " .. i .. " = R") end
local wsum = r.weights.x1 + r.weights.x2 + r.weights.x3
T.near(wsum, 1, 1e-15, "weights sum to 1")
T.check(r.n == 4 and r.nobs == 4, "n counts the rows used")
T.check(r.bounds.x3.min == 1 and r.bounds.x3.max == 5, "baseline bounds are returned")
T.check(r.direction.x3 == "-" and r.direction.x1 == "+", "direction recorded")
T.check(r.table:nrow() == 3, "summary table has one row per indicator")
T.check(tostring(r):find("entropy") ~= nil, "tostring shows the method")

-- A matrix works as well as a frame (names optional).
local Xm = sp.matrix{ { 2, 10, 5 }, { 4, 30, 3 }, { 6, 25, 4 }, { 8, 40, 1 } }
local rm = index.entropy(Xm, nil, { direction = { [3] = "-" } })
T.near(rm.weights.x3, R_w[3], 1e-13, "matrix input, positional direction")

-- ---- direction handling ------------------------------------------------------------------
-- Reversing a negative indicator by hand must give the same index as direction = "-".
local d2 = d:copy()
d2.x3neg = sp.matrix{ -5, -3, -4, -1 }
local r2 = index.entropy(d2, { "x1", "x2", "x3neg" })
for i = 1, 4 do T.near(r2.score[i], r.score[i], 1e-14, "direction '-' equals negated column, row " .. i) end
local rpos = index.entropy(d, { "x1", "x2", "x3" })
T.check(rpos.score[4] < rpos.score[1] + 2 and rpos.score[1] > r.score[1],
        "treating the cost indicator as positive raises the region with the most of it")
local rw = index.entropy(d, { "x1", "x2", "x3" }, { direction = { x3 = "negative", x1 = 1 } })
T.near(rw.weights.x3, R_w[3], 1e-13, "direction words and numbers")

-- shift = 0 uses 0 ln 0 = 0; the weights then follow by hand as well.
local e0, w0 = by_hand({ X1, X2, X3 }, { 1, 1, -1 }, 0)
local r0 = index.entropy(d, { "x1", "x2", "x3" }, { direction = { x3 = "-" }, shift = 0 })
T.near(r0.weights.x2, w0[2], 1e-13, "shift = 0 weight by hand")
T.near(r0.entropy.x1, e0[1], 1e-13, "shift = 0 entropy by hand")

-- scale = 100 multiplies the score only.
local r100 = index.entropy(d, { "x1", "x2", "x3" }, { direction = { x3 = "-" }, scale = 100 })
T.near(r100.score[2], 100 * r.score[2], 1e-14, "scale = 100")
T.near(r100.weights.x1, r.weights.x1, 1e-15, "scale leaves weights alone")

-- normalise = "ratio": positive x / max, negative min / x; then p = z / sum z.
local rr = index.entropy(d, { "x1", "x2", "x3" }, { direction = { x3 = "-" }, normalise = "ratio" })
do
  local z3 = {}
  for i = 1, 4 do z3[i] = 1 / X3[i] end      -- min(x3) = 1
  local s = 0
  for i = 1, 4 do s = s + z3[i] end
  local h = 0
  for i = 1, 4 do local p = z3[i] / s; h = h + p * math.log(p) end
  T.near(rr.entropy.x3, -h / math.log(4), 1e-13, "ratio normalisation entropy by hand")
  -- positive x / max gives p = x / sum x, the proportion method
  local s1, h1 = 0, 0
  for i = 1, 4 do s1 = s1 + X1[i] end
  for i = 1, 4 do local p = X1[i] / s1; h1 = h1 + p * math.log(p) end
  T.near(rr.entropy.x1, -h1 / math.log(4), 1e-13, "ratio: positive indicator is the proportion method")
end

-- entropy_n changes the constant k = 1 / ln(N).
local rn = index.entropy(d, { "x1", "x2", "x3" }, { direction = { x3 = "-" }, entropy_n = 10 })
T.near(rn.entropy.x1, r.entropy.x1 * math.log(4) / math.log(10), 1e-13, "entropy_n = 10")

-- ---- missing values: listwise for the weights, NaN score -----------------------------------
local dm = sp.frame({ x1 = { 2, 4, 6, 8, 100, n = 5 }, x2 = { 10, 30, 25, 40, 0 / 0 }, x3 = { 5, 3, 4, 1, 2 } },
                    { order = { "x1", "x2", "x3" } })
local rmiss = index.entropy(dm, { "x1", "x2", "x3" }, { direction = { x3 = "-" }, into = "idx" })
T.near(rmiss.weights.x1, R_w[1], 1e-13, "a row with a missing indicator is left out of the weights")
T.check(isnan(rmiss.score[5]) and rmiss.n == 4 and rmiss.nobs == 5, "its score is NaN")
T.check(isnan(dm.idx[5]) and math.abs(dm.idx[2] - R_s[2]) < 1e-13, "into writes the score into the frame")

-- ---- by-year weights ----------------------------------------------------------------------
local panel = sp.frame({ year = { 1, 1, 1, 1, 2, 2, 2, 2 },
                         x1 = { 2, 4, 6, 8, 1, 5, 2, 9 }, x2 = { 10, 30, 25, 40, 3, 3.5, 8, 1 },
                         x3 = { 5, 3, 4, 1, 7, 2, 2, 4 } }, { order = { "year", "x1", "x2", "x3" } })
local rb = index.entropy(panel, { "x1", "x2", "x3" }, { direction = { x3 = "-" }, by = "year" })
local _, wy2, sy2 = by_hand({ { 1, 5, 2, 9 }, { 3, 3.5, 8, 1 }, { 7, 2, 2, 4 } }, { 1, 1, -1 }, 1e-4)
for j, name in ipairs { "x1", "x2", "x3" } do
  T.near(rb.weights[1][name], R_w[j], 1e-13, "by year: year 1 weight " .. name)
  T.near(rb.weights[2][name], wy2[j], 1e-13, "by year: year 2 weight " .. name .. " by hand")
end
for i = 1, 4 do
  T.near(rb.score[i], R_s[i], 1e-13, "by year: year 1 score " .. i)
  T.near(rb.score[4 + i], sy2[i], 1e-13, "by year: year 2 score " .. i)
end
T.check(rb.groups[1] == 1 and rb.groups[2] == 2 and rb.nrows[2] == 4, "groups and rows per group")
T.check(rb.bounds[2].x1.max == 9 and rb.table:nrow() == 6, "bounds per group")
local rpool = index.entropy(panel, { "x1", "x2", "x3" }, { direction = { x3 = "-" } })
T.check(math.abs(rpool.weights.x1 - rb.weights[1].x1) > 1e-3, "pooled weights differ from year weights")

-- ---- apply(): fixed weights and bounds -----------------------------------------------------
local base = index.entropy(panel, { "x1", "x2", "x3" }, { direction = { x3 = "-" } })
local same = index.apply(panel, base)
local exact = true
for i = 1, 8 do if same[i] ~= base.score[i] then exact = false end end
T.check(exact, "apply on unshocked data reproduces the baseline score bit for bit")
local shocked = panel:copy()
local x1 = col(shocked.x1)
x1[2] = x1[2] * 1.2                       -- raise a positive indicator in row 2
shocked.x1 = x1
local x3 = col(shocked.x3)
x3[6] = x3[6] * 1.5                       -- raise a cost indicator in row 6
shocked.x3 = x3
local moved = index.apply(shocked, base, { into = "idx_cf" })
T.check(moved[2] > base.score[2], "a positive shock raises the index")
T.check(moved[6] < base.score[6], "a shock to a cost indicator lowers the index")
T.near(moved[2] - base.score[2], base.weights.x1 * (0.8) / (9 - 1), 1e-12,
       "the change is w * dx / (max - min) of the baseline")
T.check(moved[1] == base.score[1] and moved[8] == base.score[8], "other rows do not move")
T.check(shocked.idx_cf[2] == moved[2], "apply writes into the frame")
-- beyond the baseline range the index extrapolates linearly (no re-normalisation)
local big = panel:copy()
local xb = col(big.x1)
xb[8] = 90
big.x1 = xb
local mb = index.apply(big, base)
T.near(mb[8] - base.score[8], base.weights.x1 * 81 / 8, 1e-12, "no clipping beyond the baseline max")
-- by-year results apply per year
local byapp = index.apply(panel, rb)
local exact2 = true
for i = 1, 8 do if byapp[i] ~= rb.score[i] then exact2 = false end end
T.check(exact2, "apply with by-year weights reproduces the baseline")

-- ---- TOPSIS --------------------------------------------------------------------------------
-- Vector normalisation, given weights; R:
--   R <- sweep(X,2,sqrt(colSums(X^2)),"/"); V <- sweep(R,2,c(.5,.3,.2),"*")
--   A+ = max (benefit) / min (cost) of V; D+ = sqrt(rowSums((V - A+)^2)); C = D-/(D+ + D-)
local tp = index.topsis(d, { "x1", "x2", "x3" }, { direction = { x3 = "-" }, weights = { x1 = 5, x2 = 3, x3 = 2 } })
local R_dp = { 0.33565651889634224, 0.19814460858098742, 0.14721150304981931, 0 }
local R_dm = { 0, 0.15044393950228949, 0.2009893450565611, 0.33565651889634224 }
local R_c = { 0, 0.43158026943085009, 0.57722244546387758, 1 }
for i = 1, 4 do
  T.near(tp.dplus[i], R_dp[i], 1e-13, "TOPSIS D+ row " .. i .. " = R")
  T.near(tp.dminus[i], R_dm[i], 1e-13, "TOPSIS D- row " .. i .. " = R")
  T.near(tp.score[i], R_c[i], 1e-13, "TOPSIS closeness row " .. i .. " = R")
end
T.near(tp.weights.x1, 0.5, 1e-15, "given weights are normalised to sum 1")
T.check(tp.bounds.x1.norm and math.abs(tp.bounds.x1.norm - math.sqrt(120)) < 1e-12, "vector norm recorded")

-- Min-max TOPSIS with entropy weights, by hand.
local tm = index.topsis(d, { "x1", "x2", "x3" }, { direction = { x3 = "-" }, normalise = "minmax" })
do
  local cols, dirs = { X1, X2, X3 }, { 1, 1, -1 }
  for i = 1, 4 do
    local a, b = 0, 0
    for j = 1, 3 do
      local c = cols[j]
      local lo, hi = math.min(table.unpack(c)), math.max(table.unpack(c))
      local z = (dirs[j] > 0 and (c[i] - lo) or (hi - c[i])) / (hi - lo)
      a = a + (R_w[j] * z - R_w[j]) ^ 2
      b = b + (R_w[j] * z) ^ 2
    end
    local want = math.sqrt(b) / (math.sqrt(a) + math.sqrt(b))
    T.near(tm.score[i], want, 1e-12, "TOPSIS minmax + entropy weights row " .. i .. " by hand")
  end
end
T.near(tm.weights.x2, R_w[2], 1e-13, "TOPSIS default weights are the entropy weights")
local tapp = index.apply(d, tp)
T.check(tapp[2] == tp.score[2] and tapp[3] == tp.score[3], "apply reproduces TOPSIS")
local dsh = d:copy()
dsh.x1 = { 2, 6, 6, 8 }
T.check(index.apply(dsh, tp)[2] > tp.score[2], "TOPSIS apply moves up with a positive shock")

-- ---- PCA -----------------------------------------------------------------------------------
-- R: Xd <- sweep(X,2,c(1,1,-1),"*"); pc <- prcomp(Xd, scale.=TRUE); lam <- pc$sdev^2
local pc = index.pca(d, { "x1", "x2", "x3" }, { direction = { x3 = "-" } })
local R_lam = { 2.7781950416267982, 0.18355714326478123, 0.038247815108422657 }
for c = 1, 3 do T.near(pc.eigenvalues[c], R_lam[c], 1e-12, "PCA eigenvalue " .. c .. " = R") end
T.check(pc.components == 1, "Kaiser rule keeps one component")
local R_pc = { -2.0139170215495055, 0.043996111591415962, -0.095894184094438673, 2.0658150940525282 }
for i = 1, 4 do T.near(pc.score[i], R_pc[i], 1e-11, "PCA score row " .. i .. " = R") end
local pc2 = index.pca(d, { "x1", "x2", "x3" }, { direction = { x3 = "-" }, components = 2 })
T.check(pc2.components == 2 and #pc2.loadings == 2, "components = 2")
T.check(index.apply(d, pc)[3] == pc.score[3], "apply reproduces the PCA index")

-- ---- coupling coordination degree -------------------------------------------------------
local dc = sp.frame({ u1 = { 0.2, 0.5, 0.9, 0 }, u2 = { 0.8, 0.5, 0.3, 0.4 } }, { order = { "u1", "u2" } })
local cc = index.coupling(dc, { "u1", "u2" }, { into = "ccd" })
do
  local u1, u2 = 0.2, 0.8
  local C = 2 * math.sqrt(u1 * u2) / (u1 + u2)
  T.near(cc.C[1], C, 1e-14, "coupling C = 2 sqrt(U1 U2)/(U1 + U2)")
  T.near(cc.D[1], math.sqrt(C * 0.5), 1e-14, "D = sqrt(C T) with equal shares")
  T.near(cc.C[2], 1, 1e-14, "equal subsystems couple fully")
  T.check(cc.C[4] == 0 and cc.D[4] == 0, "a zero subsystem gives C = 0")
  T.check(dc.ccd[1] == cc.D[1], "into writes D")
  local c3 = index.coupling(sp.matrix{ { 0.2, 0.4, 0.8 } }, nil, { alpha = { 0.5, 0.3, 0.2 } })
  local g = (0.2 * 0.4 * 0.8) ^ (1 / 3)
  T.near(c3.C[1], 3 * g / 1.4, 1e-14, "three subsystems: C = 3 (U1U2U3)^(1/3) / sum U")
  T.near(c3.T[1], 0.5 * 0.2 + 0.3 * 0.4 + 0.2 * 0.8, 1e-14, "T = sum alpha U")
end
T.check(index.coupling_level(0.55) == "barely coordinated", "coupling level label")

-- ---- the bundled Chinese provincial panel -----------------------------------------------
local cn = sp.read_csv("scenarios/data/cn_province_panel.csv")
local inno_vars = { "patent_grants_invention", "rd_exp_total_10k_yuan", "rd_fte_total_person_years" }
local inno = index.entropy(cn, inno_vars, { into = "inno" })
T.check(inno.n == 372, "innovation index uses all 372 province-years")
-- R: d <- read.csv("scenarios/data/cn_province_panel.csv"); X <- as.matrix(d[, vars])
--    Z <- apply(X, 2, function(x) (x - min(x))/(max(x) - min(x))) + 1e-4
--    P <- sweep(Z, 2, colSums(Z), "/"); e <- -colSums(P*log(P))/log(nrow(X)); w <- (1-e)/sum(1-e)
T.near(inno.weights.patent_grants_invention, 0.408111698852766, 1e-12, "invention-patent weight = R (docs 0.408112)")
T.near(inno.weights.rd_exp_total_10k_yuan, 0.308563664462535, 1e-12, "R&D expenditure weight = R (docs 0.308564)")
T.near(inno.weights.rd_fte_total_person_years, 0.283324636684699, 1e-12, "R&D personnel weight = R (docs 0.283325)")
T.near(inno.score[1], 0.184827548227796, 1e-12, "Beijing 2011 score = R")
T.near(cn.inno[2], 0.214122808002498, 1e-12, "Beijing 2012 score written into the frame = R")
do
  -- the top province-year is Guangdong 2022 (most of every input in the panel)
  local best, bi = -1, 0
  for i = 1, cn:nrow() do if inno.score[i] > best then best, bi = inno.score[i], i end end
  T.check(cn.province[bi] == "广东" and cn.year[bi] == 2022, "Guangdong 2022 tops the index")
  -- independent check of one weight with plain Lua over the column
  local x = col(cn.patent_grants_invention)
  local lo, hi = math.min(table.unpack(x)), math.max(table.unpack(x))
  local s, z = 0, {}
  for i = 1, #x do z[i] = (x[i] - lo) / (hi - lo) + 1e-4; s = s + z[i] end
  local h = 0
  for i = 1, #x do local p = z[i] / s; h = h + p * math.log(p) end
  T.near(inno.entropy.patent_grants_invention, -h / math.log(#x), 1e-12, "panel entropy by hand")
end
local inno_y = index.entropy(cn, inno_vars, { by = "year" })
T.check(#inno_y.groups == 12 and inno_y.groups[1] == 2011, "by-year weights on the panel")

-- by a categorical column, and TOPSIS per year with apply
local inno_r = index.entropy(cn, inno_vars, { by = "region_nbs" })
T.check(inno_r.groups[1] == "Central" and inno_r.groups[4] == "West" and inno_r.nrows.West == 144,
        "by a categorical column: groups sorted by level")
do
  -- West alone: the weights are those of the West subsample
  local west = cn:filter('region_nbs == "West"')
  local rw_ = index.entropy(west, inno_vars)
  T.near(inno_r.weights.West.rd_exp_total_10k_yuan, rw_.weights.rd_exp_total_10k_yuan, 1e-14,
         "group weights equal the subsample's weights")
end
local ty = index.topsis(cn, inno_vars, { by = "year", normalise = "minmax" })
local tya = index.apply(cn, ty)
local same_t = true
for i = 1, cn:nrow() do if tya[i] ~= ty.score[i] then same_t = false end end
T.check(same_t, "TOPSIS by year: apply reproduces the baseline")
do
  -- min-max TOPSIS: a row best on every indicator of its year has C = 1, worst on every one C = 0
  local best, worst, inside = {}, {}, true
  local yr = col(cn.year)
  for i = 1, cn:nrow() do
    local c = ty.score[i]
    if not (c >= 0 and c <= 1) then inside = false end
    best[yr[i]] = math.max(best[yr[i]] or 0, c)
    worst[yr[i]] = math.min(worst[yr[i]] or 1, c)
  end
  T.check(inside, "TOPSIS closeness lies in [0, 1]")
  T.check(best[2020] == 1 and best[2011] < 1 and worst[2011] == 0, "TOPSIS: the dominant province-year scores 1")
end

-- ---- errors -----------------------------------------------------------------------------
local bad = sp.frame({ x = { 1, 2, 3 }, c = { 4, 4, 4 }, z = { 0, 1, 2 }, s = { "a", "b", "c" } },
                     { order = { "x", "c", "z", "s" } })
T.checkerr("entropy: indicator 'c' has no variation %(every one of the 3 complete rows is 4", index.entropy, bad, { "x", "c" })
T.checkerr("entropy: column 's' is categorical %(expected a numeric indicator%)", index.entropy, bad, { "x", "s" })
T.checkerr("entropy: no column 'xx' in the frame %(did you mean 'x'%?%)", index.entropy, bad, { "xx" })
T.checkerr("entropy: direction names 'q', which is not one of the indicators", index.entropy, bad, { "x", "z" },
           { direction = { q = "-" } })
T.checkerr("entropy: direction of 'x' is 'up' %(expected \"%+\" or \"%-\"%)", index.entropy, bad, { "x", "z" },
           { direction = { x = "up" } })
T.checkerr("entropy: unknown option 'dirction' %(expected one of by, direction, entropy_n, into, normalise, normalize, scale, shift%); did you mean 'direction'%?", index.entropy, bad, { "x" },
           { dirction = {} })
T.checkerr("entropy: indicator 'z' has the non%-positive value 0; normalise = \"ratio\" needs positive values",
           index.entropy, bad, { "x", "z" }, { normalise = "ratio" })
T.checkerr("entropy: normalise is 'zscore' %(expected \"minmax\" or \"ratio\"%)", index.entropy, bad, { "x" },
           { normalise = "zscore" })
T.checkerr("entropy: shift must be a number >= 0", index.entropy, bad, { "x" }, { shift = -1 })
T.checkerr("entropy: scale must be a positive number", index.entropy, bad, { "x" }, { scale = 0 })
T.checkerr("entropy: 1 complete row %(expected at least 2", index.entropy,
           sp.frame({ x = { 1, 0 / 0 } }), { "x" })
T.checkerr("entropy: indicator 'x' is listed twice", index.entropy, bad, { "x", "x" })
T.checkerr("entropy: expected a list of indicator columns as argument 2", index.entropy, bad, {})
T.checkerr("entropy: expected a spillover.frame or spillover.matrix as argument 1", index.entropy, {}, { "x" })
T.checkerr("entropy: no column 'yr' in the frame for 'by'", index.entropy, bad, { "x" }, { by = "yr" })
T.checkerr("entropy: 'into' needs a frame", index.entropy, Xm, nil, { into = "y" })
T.checkerr("entropy: indicator 'x1' has no variation in group 2", index.entropy,
           sp.frame({ g = { 1, 1, 2, 2 }, x1 = { 1, 2, 3, 3 } }), { "x1" }, { by = "g" })
T.checkerr("test_index.lua:%d+: entropy: indicator 'c'", function() local r = index.entropy(bad, { "c" }); return r end)
T.checkerr("apply: argument 2 is a table %(expected the result of index.entropy", index.apply, bad, {})
T.checkerr("apply: group year = 3 was not in the baseline", index.apply,
           sp.frame({ year = { 3 }, x1 = { 1 }, x2 = { 1 }, x3 = { 1 } }), rb)
T.checkerr("apply: no column 'x2' in the frame", index.apply, sp.frame({ x1 = { 1 } }), base)
T.checkerr("topsis: normalise is 'ratio' %(expected \"vector\" or \"minmax\"%)", index.topsis, d, { "x1" },
           { normalise = "ratio" })
T.checkerr("topsis: weights has no entry for 'x2'", index.topsis, d, { "x1", "x2" }, { weights = { x1 = 1 } })
T.checkerr("topsis: weights names 'x9'", index.topsis, d, { "x1", "x2" }, { weights = { x1 = 1, x2 = 1, x9 = 1 } })
T.checkerr("topsis: weight of 'x1' is %-1 %(expected a finite number >= 0%)", index.topsis, d, { "x1", "x2" },
           { weights = { x1 = -1, x2 = 1 } })
T.checkerr("pca: components is 5 %(expected \"kaiser\" or an integer from 1 to 3%)", index.pca, d,
           { "x1", "x2", "x3" }, { components = 5 })
T.checkerr("pca: indicator 'c' has no variation", index.pca, bad, { "x", "c", "z" })
T.checkerr("coupling: subsystem 'u1' is negative %(%-0.5%) at row 1", index.coupling,
           sp.frame({ u1 = { -0.5 }, u2 = { 0.5 } }), { "u1", "u2" })
T.checkerr("coupling: alpha sums to 0.8 %(expected 1%)", index.coupling, dc, { "u1", "u2" }, { alpha = { 0.4, 0.4 } })
T.checkerr("coupling: 1 subsystem %(expected 2 or more", index.coupling, dc, { "u1" })
T.checkerr("coupling_level: D = 1.5 is outside %[0, 1%]", index.coupling_level, 1.5)

T.done()
