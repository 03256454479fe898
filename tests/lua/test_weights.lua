package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local spatial = require "spillover.spatial"
local weights = spatial.weights

-- Expected values: R 4.2.2, spdep 1.2-7 (script in the comments).
-- d <- read.csv("tests/reference/data/columbus.csv"); lw: edges2listw(columbus_edges, ids = d$POLYID, "W")

local d = sp.read_csv("tests/reference/data/columbus.csv")
local W = weights.contiguity("tests/reference/data/columbus_edges.csv", { ids = d.POLYID })

-- ---- the object ---------------------------------------------------------------------
T.check(weights.is(W), "contiguity returns a spillover.weights")
T.check(W:n() == 49 and W:nlinks() == 230, "columbus: 49 units, 230 links")
T.check(W:style() == "W", "default style W")
T.check(W:ids()[1] == "1" and W:ids()[49] == "49", "ids in data order, numbers as integers")
local rs = W:rowsums()
local okrs = true
for i = 1, 49 do okrs = okrs and math.abs(rs:get(i, 1) - 1) < 1e-15 end
T.check(okrs, "row sums are 1 under style W")
local nb, w = W:neighbours(1)
T.check(#nb == 2 and nb[1] == 2 and nb[2] == 3 and w[1] == 0.5, "neighbours of unit 1: 2, 3 with weight 1/2")
T.check(tostring(W):find("49 units, 230 links", 1, true) ~= nil, "tostring names units and links")

-- W:lag against the dense product
local D = W:dense()
T.check(D:nrow() == 49 and D:get(1, 2) == 0.5 and D:get(1, 1) == 0, "dense export")
local lag = W:lag(d.CRIME)
local dl = D * d.CRIME
local maxd = 0
for i = 1, 49 do maxd = math.max(maxd, math.abs(lag:get(i, 1) - dl:get(i, 1))) end
T.check(maxd < 1e-12, "lag equals dense W x")
local arr = {}
for i = 1, 49 do arr[i] = d.CRIME:get(i, 1) end
T.near(W:lag(arr):get(7, 1), lag:get(7, 1), 1e-15, "lag of a Lua array")
local X = sp.matrix.hcat(d.CRIME, d.INC)
local WX = W:lag(X)
T.near(WX:get(10, 2), W:lag(d.INC):get(10, 1), 1e-15, "lag of an n x k matrix, column by column")
-- transpose
local Wt = W:t()
T.near(Wt:dense():get(2, 1), D:get(1, 2), 0, "transpose")

-- eigenvalues and traces: eigen(listw2mat(lw))$values; sum(diag(W^k))
local re, im = W:eigenvalues()
T.near(re:get(1, 1), -0.65195459824238744, 1e-12, "min eigenvalue (R eigen)")
T.near(re:get(49, 1), 1, 1e-12, "max eigenvalue 1 for row-standardised W")
T.check(im:get(1, 1) == 0, "real spectrum (similar to a symmetric matrix)")
local tr = W:traces(6)
local want_tr = { 0, 10.908301209372636, 3.650684591296836, 5.6193206717297857, 3.6646872738108054, 4.0036473540029451 }
for k = 1, 6 do T.near(tr[k], want_tr[k], 1e-10, "tr(W^" .. k .. ")") end
T.near(W:trace(4), want_tr[4], 1e-10, "W:trace(4)")
local trmc = W:traces(4, { reps = 400, seed = 3 })
T.near(trmc[2], want_tr[2], 1e-12, "Monte Carlo traces: tr(W^2) exact")
T.check(math.abs(trmc[3] - want_tr[3]) < 0.15 * want_tr[3], "Monte Carlo tr(W^3) within 15%")
-- the general (dgeev) path: knn weights are asymmetric
local coords = sp.frame { id = d.POLYID, x = d.X, y = d.Y }
local Wk = weights.knn(coords, 4)
local rk = Wk:eigenvalues()
T.near(rk:get(49, 1), 1, 1e-10, "knn: largest real eigenvalue 1 (dgeev path)")
local trk = Wk:traces(3)
local Dk = Wk:dense()
local P = Dk * Dk * Dk
local t3 = 0
for i = 1, 49 do t3 = t3 + P:get(i, i) end
T.near(trk[3], t3, 1e-9, "knn: tr(W^3) from eigenvalues = dense trace")

-- ---- summaries ----------------------------------------------------------------------------
local s = W:summary()
T.check(s.links == 230 and s.card_min == 2 and s.card_max == 10, "summary: links, min and max neighbours")
T.near(s.card_mean, 230 / 49, 1e-15, "summary: mean neighbours")
T.check(#s.islands == 0, "summary: no islands")
T.check(s.asymmetric > 0 and s.asymmetric_pattern == 0, "row-standardised: symmetric pattern, asymmetric values")
T.check(tostring(s):find("islands: none", 1, true) ~= nil, "summary prints")
local WB = W:restyle("B")
T.check(WB:style() == "B" and WB:summary().asymmetric == 0, "restyle B: binary and symmetric")
T.near(WB:stats().S0, 230, 0, "S0 of binary weights = links")
local WC = W:restyle("C")
T.near(WC:stats().S0, 49, 1e-12, "style C sums to n")
local WU = W:restyle("U")
T.near(WU:stats().S0, 1, 1e-12, "style U sums to 1")

-- ---- other constructors, checked against spdep through Moran's I ----------------------------
-- knn2nb(knearneigh(cbind(d$X, d$Y), k = 4)); moran.test(d$CRIME, nb2listw(kn))
local nbk = Wk:neighbours(1)
T.check(#nbk == 4 and nbk[1] == 2 and nbk[2] == 3 and nbk[3] == 4 and nbk[4] == 8, "knn 4: neighbours of unit 1 = 2 3 4 8 (spdep)")
local mk = spatial.moran(d.CRIME, Wk)
T.near(mk.I, 0.62493366735179146, 1e-12, "knn 4: Moran's I (spdep)")
T.near(mk.variance, 0.0080035032800134191, 1e-10, "knn 4: variance (spdep)")
local Wks = weights.knn(coords, 4, { symmetric = true })
T.check(Wks:summary().asymmetric_pattern == 0 and Wks:nlinks() > Wk:nlinks(), "knn symmetric = true: union of both directions")
-- inverse distance: Wd <- 1/as.matrix(dist(cbind(X, Y))); mat2listw(Wd, style = "W"); randomisation = FALSE
local Wd = weights.distance(coords)
local md = spatial.moran(d.CRIME, Wd, { randomisation = false })
T.near(md.I, 0.16527991872240866, 1e-12, "inverse distance: Moran's I (spdep)")
T.near(md.variance, 0.00049013734139355901, 1e-10, "inverse distance: variance (spdep)")
-- 1/d^2 within 5 units, style B: 462 links
local Wc = weights.distance(coords, { power = 2, cutoff = 5, style = "B" })
T.check(Wc:nlinks() == 462, "cutoff 5: 462 links (R)")
local mc = spatial.moran(d.CRIME, Wc)
T.near(mc.I, 0.76736040965929164, 1e-12, "1/d^2, cutoff, style B: Moran's I (spdep)")
T.near(mc.variance, 0.01124243111105995, 1e-10, "1/d^2, cutoff, style B: variance (spdep)")
-- economic: 1/abs(outer(HOVAL, HOVAL, "-")), style W
local We = weights.economic(d, "HOVAL", { ids = "POLYID" })
local me = spatial.moran(d.CRIME, We)
T.near(me.I, 0.33523233115982576, 1e-12, "economic weights: Moran's I (spdep)")
T.near(me.variance, 0.0051486454177659003, 1e-10, "economic weights: variance (spdep)")
-- nested: product keeps the contiguity pattern; mix with phi
local Wn = weights.nested(W, We)
T.check(Wn:nlinks() == 230 and Wn:style() == "W", "nested product: contiguity pattern, style W")
local Wm = weights.nested(W, We, { phi = 0.5 })
T.check(Wm:nlinks() == 49 * 48, "nested mix: every pair")
local nn, nw = Wn:neighbours(1)
local h = d.HOVAL
local w2 = 1 / math.abs(h:get(1, 1) - h:get(2, 1))
local w3 = 1 / math.abs(h:get(1, 1) - h:get(3, 1))
T.near(nw[1], w2 / (w2 + w3), 1e-12, "nested product weight = w_geo * w_econ, row-standardised")
local _ = nn
-- economic on a panel: mean by id
local prov = sp.read_csv("scenarios/data/cn_province_panel.csv")
local Wg = weights.economic(prov, "gdp_per_capita", { ids = "adcode" })
T.check(Wg:n() == 31 and Wg:ids()[1] == "110000", "economic on a panel: one unit per id (mean over years)")

-- ---- bundled data --------------------------------------------------------------------------
local cn = weights.contiguity("scenarios/data/cn_province_adjacency_31_edges.csv",
  { from = "adcode_i", to = "adcode_j" })
T.check(cn:n() == 31 and cn:nlinks() == 138, "31 provinces, 138 links (69 pairs incl. Hainan-Guangdong)")
local cs = cn:summary()
T.check(#cs.islands == 0 and cs.card_min == 1 and cs.card_max == 8, "provinces: no islands, 1..8 neighbours (R card)")
local hn = cn:index_of({ "460000" })[1]
local hnb = cn:neighbours(hn)
T.check(#hnb == 1 and cn:ids()[hnb[1]] == "440000", "Hainan's one neighbour is Guangdong")
local rc = cn:eigenvalues()
T.near(rc:get(1, 1), -0.62009904433296703, 1e-12, "provinces: min eigenvalue (R)")
-- ids from a frame column, in data order
local p22 = prov:filter("year == 2022")
local cn2 = weights.contiguity("scenarios/data/cn_province_adjacency_31_edges.csv",
  { from = "adcode_i", to = "adcode_j", ids = p22.adcode })
T.check(cn2:ids()[1] == string.format("%d", p22.adcode:get(1, 1)) and cn2:nlinks() == 138,
  "ids follow the data order")
-- knn on the capitals (great circle): knearneigh(longlat = TRUE, k = 3)
local cap = sp.read_csv("scenarios/data/cn_province_capital_coords.csv")
local Wcap = weights.knn(cap, 3, { id = "adcode" })
local bj = Wcap:neighbours(Wcap:index_of({ "110000" })[1])
local bjids = {}
for i, j in ipairs(bj) do bjids[i] = Wcap:ids()[j] end
table.sort(bjids)
T.check(table.concat(bjids, " ") == "120000 130000 370000", "knn 3 great circle: Beijing -> Tianjin, Hebei, Shandong (spdep)")
local hk = Wcap:neighbours(Wcap:index_of({ "460000" })[1])
local hkids = {}
for i, j in ipairs(hk) do hkids[i] = Wcap:ids()[j] end
table.sort(hkids)
T.check(table.concat(hkids, " ") == "440000 450000 520000", "knn 3 great circle: Hainan -> Guangdong, Guangxi, Guizhou (spdep)")
local Wgd = weights.distance(cap, { id = "adcode", cutoff = 1000, zero_policy = true })
T.check(Wgd:n() == 31 and Wgd:summary().asymmetric_pattern == 0, "great-circle distance band 1000 km")
local isl = Wgd:summary().islands
T.check(#isl == 2 and isl[1] == "540000" and isl[2] == "650000", "1000 km band: Lhasa and Urumqi are islands")
T.checkerr("weights.distance: 2 units have no neighbours %(islands%): 540000, 650000",
  function() weights.distance(cap, { id = "adcode", cutoff = 1000 }) end)
-- US-48 queen contiguity for Produc
local produc = sp.read_csv("tests/reference/data/Produc.csv")
local p86 = produc:filter("year == 1986")
local us = weights.contiguity("scenarios/data/us48_queen_edges.csv", { ids = p86.state })
T.check(us:n() == 48 and us:summary().asymmetric_pattern == 0 and #us:summary().islands == 0,
  "US-48 queen: 48 states, symmetric, no islands")

-- ---- alignment and panels ------------------------------------------------------------------
local ids = cn:ids()
local rev = {}
for i = 1, 31 do rev[i] = ids[32 - i] end
local cr = cn:align(rev)
T.check(cr:ids()[1] == ids[31] and cr:nlinks() == 138, "align: reorder to given ids")
local sub = cn:align({ "110000", "120000", "130000" })
T.check(sub:n() == 3 and sub:nlinks() == 6 and sub:style() == "W", "align to a subset: links among them, re-standardised")
T.checkerr("1 id is not among the 31 units of the weights: '999999'", function() cn:index_of({ "110000", "999999" }) end)
T.checkerr("2 ids are not among", function() cn:align({ "1", "2" }) end)
T.checkerr("duplicated", function() cn:align({ "110000", "110000" }) end)
-- panel lag: (time, unit) order, matched by id
prov:panel { entity = "adcode", time = "year" }
local pl = cn:panel_lag(prov, "digital_finance")
local r1 = 1
local e1 = prov.adcode:get(r1, 1)
local y1 = prov.year:get(r1, 1)
local yr = prov:filter("year == " .. string.format("%d", y1))
local xo = {}
for i = 1, yr:nrow() do xo[string.format("%d", yr.adcode:get(i, 1))] = yr.digital_finance:get(i, 1) end
local u = cn:index_of({ string.format("%d", e1) })[1]
local nbu, wu = cn:neighbours(u)
local want = 0
for k, j in ipairs(nbu) do want = want + wu[k] * xo[ids[j]] end
T.near(pl:get(r1, 1), want, 1e-13, "panel_lag: neighbours in the same year")
local stacked = {}
for t = 1, 2 do for i = 1, 31 do stacked[(t - 1) * 31 + i] = t * 100 + i end end
local lp = cn:lag_panel(stacked, 2, "time")
local first = {}
for i = 1, 31 do first[i] = 200 + i end
T.near(lp:get(31 + 5, 1), cn:lag(first):get(5, 1), 1e-14, "lag_panel (time, unit): block of period 2")
local su = {}
for i = 1, 31 do for t = 1, 2 do su[(i - 1) * 2 + t] = t * 100 + i end end
local lu = cn:lag_panel(su, 2, "unit")
T.near(lu:get((5 - 1) * 2 + 2, 1), lp:get(31 + 5, 1), 1e-14, "lag_panel (unit, time) = (time, unit) reordered")
-- a panel with an entity the weights do not know
local bad = sp.frame { id = { "a", "b", "zz" }, t = { 1, 1, 1 }, x = { 1, 2, 3 } }
local Wab = weights.contiguity(sp.frame { from = { "a", "b", "zz" }, to = { "b", "zz", "a" } })
T.check(Wab:n() == 3, "edges from a frame; ids from the edges when not given")
local Wa2 = weights.contiguity(sp.frame { from = { "a" }, to = { "b" } })
T.checkerr("1 id value is not among the 2 units of the weights: 'zz'",
  function() Wa2:panel_lag(bad, "x", { entity = "id", time = "t" }) end)

-- ---- errors --------------------------------------------------------------------------------
T.checkerr("2 ids in the edge list are not among the 2 unit ids: 'c' %(row 2%), 'd' %(row 2%)", function()
  weights.contiguity(sp.frame { from = { "a", "c" }, to = { "b", "d" } }, { ids = { "a", "b" } })
end)
T.checkerr("1 unit has no neighbours %(island%): c; style W needs", function()
  weights.contiguity(sp.frame { from = { "a" }, to = { "b" } }, { ids = { "a", "b", "c" } })
end)
local Wz = weights.contiguity(sp.frame { from = { "a" }, to = { "b" } }, { ids = { "a", "b", "c" }, zero_policy = true })
T.check(Wz:summary().islands[1] == "c", "zero_policy: island kept and named in the summary")
T.check(Wz:lag({ 1, 2, 3 }):get(3, 1) == 0, "zero_policy: an island's lag is 0")
T.checkerr("the id 'a' is duplicated", function()
  weights.contiguity(sp.frame { from = { "a" }, to = { "b" } }, { ids = { "a", "b", "a" } })
end)
T.checkerr("the edge list has no column 'from' %(columns: adcode_i", function()
  weights.contiguity("scenarios/data/cn_province_adjacency_31_edges.csv")
end)
T.checkerr("row 1 of the edge list links 'a' to itself", function()
  weights.contiguity(sp.frame { from = { "a" }, to = { "a" } })
end)
T.checkerr("the link 1 %-> 2 is given twice with different weights", function()
  weights.contiguity(sp.frame { from = { "a", "a" }, to = { "b", "b" }, w = { 1, 2 } }, { weight = "w", symmetric = false })
end)
T.checkerr("unknown style 'Q'", function() weights.contiguity("tests/reference/data/columbus_edges.csv", { style = "Q" }) end)
T.checkerr("unknown option 'styel'", function() weights.contiguity("tests/reference/data/columbus_edges.csv", { styel = "W" }) end)
do  -- the option error is located at the user's call (it was lost once by a tail call into util.check_options)
  local ok, e = pcall(function() weights.contiguity("tests/reference/data/columbus_edges.csv", { styel = "W" }) end)
  T.check(not ok and tostring(e):match("^[^:]*test_weights%.lua:%d+: weights%.contiguity: unknown option 'styel'"),
    "option error located at the caller, with did-you-mean", tostring(e))
end
T.checkerr("k = 49 with 49 units; expected 1 <= k < n", function() weights.knn(coords, 49) end)
T.checkerr("k must be an integer", function() weights.knn(coords, 2.5) end)
T.checkerr("the frame has no column 'lon'", function() weights.knn(cap, 3, { x = "lon", y = "lat" }) end)
T.checkerr("units 1 and 2 are at the same point", function()
  weights.distance(sp.frame { x = { 0, 0, 1 }, y = { 0, 0, 1 } })
end)
T.checkerr("power must be a positive number", function() weights.distance(coords, { power = -1 }) end)
T.checkerr("have the same value", function()
  weights.economic(sp.frame { id = { "a", "b", "c" }, g = { 1, 1, 2 } }, "g", { ids = "id" })
end)
T.checkerr("column 'id' must be numeric", function()
  weights.economic(sp.frame { id = { "a", "b", "c" }, g = { 1, 1, 2 } }, "id")
end)
T.checkerr("lag: x has 3 values for weights over 49 units", function() W:lag({ 1, 2, 3 }) end)
T.checkerr("element 2 of x is a string; expected a number", function()
  local t = {}
  for i = 1, 49 do t[i] = i end
  t[2] = "a"
  W:lag(t)
end)
T.checkerr("lag_panel: x has 31 values; expected n x T = 31 x 2 = 62", function() cn:lag_panel(first, 2) end)
T.checkerr("exact traces of powers above 2", function()
  local big = weights.knn(sp.frame { x = (function() local t = {} for i = 1, 6001 do t[i] = i end return t end)(),
    y = (function() local t = {} for i = 1, 6001 do t[i] = (i * 7919) % 6007 end return t end)() }, 1)
  big:traces(3)
end)
T.checkerr("the weights have 49 and 31 units", function() weights.nested(W, cn) end)
local Wclosed = W:restyle("B")
Wclosed:close()
Wclosed:close()
T.checkerr("attempt to use a closed spillover.weights", function() Wclosed:n() end)

-- spectral normalisation: the spectral radius becomes 1, relative weights and ids stay
do
  local W = sp.weights.contiguity("scenarios/data/cn_province_adjacency_31_edges.csv",
    { from = "province_en_i", to = "province_en_j", style = "B" })
  local S = sp.weights.spectral(W)
  local re, im = S:eigenvalues()
  local r = 0
  for i = 1, re:nrow() do r = math.max(r, math.sqrt(re:get(i, 1) ^ 2 + im:get(i, 1) ^ 2)) end
  T.near(r, 1, 1e-12, "spectral: the spectral radius is 1")
  local a, b = W:dense(), S:dense()
  T.near(b:get(1, 2) * a:get(2, 3), a:get(1, 2) * b:get(2, 3), 1e-15, "spectral: one factor for every weight")
  T.check(S:ids()[5] == W:ids()[5] and S:style() == "B", "spectral: ids kept, style B")
  T.checkerr("expected a spillover.weights", sp.weights.spectral, {})
end

T.done()
