-- test_matrix.lua: the spillover.matrix userdata and its linear algebra.
-- Expected values come from R 4.2.2 (printed with digits = 17).
package.path = "tests/lua/?.lua;" .. package.path
local T = require "testlib"
local sp = require "spillover"
local M = sp.matrix

-- every element of m against a table of rows (or a flat table for vectors)
local function near_all(m, want, rtol, what)
  local got = m:totable()
  local worst, detail = 0, nil
  local function cmp(g, w, where)
    local e = math.abs(g - w)
    if e > rtol * math.max(math.abs(w), 1e-300) and e > rtol and e > worst then
      worst, detail = e, string.format("%s got %.17g want %.17g", where, g, w)
    end
  end
  if type(want[1]) == "table" then
    for i = 1, #want do for j = 1, #want[i] do cmp(got[i][j], want[i][j], ("[%d,%d]"):format(i, j)) end end
  else
    for i = 1, #want do cmp(got[i], want[i], ("[%d]"):format(i)) end
  end
  T.check(detail == nil, what, detail)
end

local G = M{{2.385, 0.3, 1.9}, {-1.2, 4.1, 0.45}, {0.7, -2.2, -3.3}}
local B = M{{1.5, 2}, {-2.25, 0}, {0.8, 1}}
local S = M{{4.385, 2.1, 0.61}, {2.1, 5.2, 1.53}, {0.61, 1.53, 3.27}}

-- ---- construction ----------------------------------------------------------
do
  local r, c = G:shape()
  T.check(r == 3 and c == 3 and G:nrow() == 3 and G:ncol() == 3, "shape of a 3x3 from rows")
  T.check(G:get(1, 3) == 1.9 and G(3, 2) == -2.2, "get and __call read (i, j)")
  local v = M{1, 2, 3}
  T.check(v:nrow() == 3 and v:ncol() == 1 and v[3] == 3 and #v == 3, "a table of numbers is a column vector")
  local f = M(2, 3, 1.5)
  T.check(f:nrow() == 2 and f:ncol() == 3 and f(2, 3) == 1.5 and M(2, 2)(1, 1) == 0, "sp.matrix(r, c, fill), default fill 0")
  local e = M.eye(3)
  T.check(e(1, 1) == 1 and e(2, 2) == 1 and e(1, 2) == 0 and e:sum() == 3, "eye(3)")
  local d = M.diag{2, 5}
  T.check(d(1, 1) == 2 and d(2, 2) == 5 and d(1, 2) == 0, "diag of a table")
  T.check(M.diag(M{7, 8, 9}) == M{{7, 0, 0}, {0, 8, 0}, {0, 0, 9}}, "diag of a vector")
  T.check(M.diag(M{{7, 8, 9}}):nrow() == 3, "diag of a row vector")
  local h = M.hcat(M{1, 2}, M{{3, 4}, {5, 6}})
  T.check(h == M{{1, 3, 4}, {2, 5, 6}}, "hcat")
  T.check(M.vcat(M{{1, 2}}, M{{3, 4}, {5, 6}}) == M{{1, 2}, {3, 4}, {5, 6}}, "vcat")
  local z = M{}
  T.check(z:nrow() == 0 and z:ncol() == 1 and #z == 0, "an empty table gives a 0x1 matrix")
end

-- ---- access and views ------------------------------------------------------
do
  local m = M{{1, 2}, {3, 4}}
  m:set(2, 1, 30)
  T.check(m(2, 1) == 30, "set(i, j, v)")
  local v = M{1, 2, 3}
  v[2] = 20
  T.check(v[2] == 20 and v:get(2, 1) == 20, "vector m[i] = v")
  local rv = M{{5, 6, 7}}
  T.check(rv[3] == 7 and #rv == 3, "row vector m[i]")

  local p = M{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}
  local col = p:col(2)
  T.check(col:nrow() == 3 and col:ncol() == 1 and col[3] == 8, "col(j) is an n x 1 view")
  col[1] = 20
  T.check(p(1, 2) == 20, "writing through a column view changes the parent")
  local row = p:row(3)
  T.check(row:nrow() == 1 and row[2] == 8, "row(i) is a 1 x n view")
  local blk = p:view(2, 2, 2, 2)
  T.check(blk == M{{5, 6}, {8, 9}}, "view(i, j, r, c)")
  blk:set(1, 1, -5)
  T.check(p(2, 2) == -5, "writing through a block view changes the parent")
  local inner = blk:view(2, 1, 1, 2)
  inner[2] = 99
  T.check(p(3, 3) == 99, "a view of a view reaches the root")
  -- arithmetic and linear algebra on strided views
  T.check(blk * M{1, 1} == M{-5 + 6, 8 + 99}, "product with a view operand")
  T.check(blk:crossprod() == blk:t() * blk, "crossprod of a view")
  T.check(blk:copy() == blk and blk:copy():ncol() == 2, "copy of a view")

  local kept
  do
    local parent = M{{1, 2}, {3, 4}}
    kept = parent:col(2)
  end
  collectgarbage(); collectgarbage()
  T.check(kept[1] == 2 and kept[2] == 4, "a view keeps its parent alive after the parent is dropped")

  local c = p:copy()
  c:set(1, 1, -1)
  T.check(p(1, 1) == 1, "copy() is independent of the original")
  local t = M{{1, 2}, {3, 4}}:totable()
  T.check(#t == 2 and t[2][1] == 3 and t[1][2] == 2, "totable gives rows")
  local tv = M{4, 5}:totable()
  T.check(#tv == 2 and tv[2] == 5 and type(tv[1]) == "number", "totable of a vector is flat")
  local cv, rv, one = M{4, 5}:tovector(), M{{4, 5}}:tovector(), M(1, 1, 7):tovector()
  T.check(#cv == 2 and cv[2] == 5 and #rv == 2 and rv[1] == 4 and #one == 1 and one[1] == 7,
    "tovector of n x 1, 1 x n and 1 x 1 matrices is flat")
  T.checkerr("tovector: expected an n x 1 or 1 x n matrix, got 2 x 2", function() return M{{1, 2}, {3, 4}}:tovector() end)
  T.check(#M(0, 1):tovector() == 0, "tovector of an empty column is empty")
end

-- ---- printing (compared with R's print) -----------------------------------
do
  T.check(tostring(G) ==
    "       [,1] [,2]  [,3]\n" ..
    "[1,]  2.385  0.3  1.90\n" ..
    "[2,] -1.200  4.1  0.45\n" ..
    "[3,]  0.700 -2.2 -3.30", "tostring like R (per-column decimals)")
  T.check(tostring(M{{1, 1e6}, {2.5, 0.001}, {-3, 12}}) ==
    "     [,1]    [,2]\n" ..
    "[1,]  1.0 1.0e+06\n" ..
    "[2,]  2.5 1.0e-03\n" ..
    "[3,] -3.0 1.2e+01", "tostring switches a column to scientific as R does")
  local big = tostring(M(30, 12, 1))
  T.check(big:find("a 30x12 matrix: 20 more rows and 4 more columns not shown", 1, true) ~= nil,
    "a big matrix is truncated with a note of its shape")
  T.check(tostring(M(0, 3)) == "<0x3 matrix>", "tostring of an empty matrix")
  T.check(tostring(M{0 / 0, 1 / 0}):find("NaN", 1, true) and tostring(M{1 / 0}):find("Inf", 1, true),
    "NaN and Inf are printed")
end

-- ---- arithmetic ------------------------------------------------------------
do
  near_all(G * B, {{4.4224999999999994, 6.6699999999999999}, {-10.664999999999999, -1.95},
    {3.3599999999999999, -1.8999999999999999}}, 1e-14, "matrix product (R's %*%)")
  T.check(G + G == 2 * G and G * 2 == G + G and (G - G):sum() == 0, "sum, difference, scalar product")
  T.check(-B == B * -1 and B / 2 == B * 0.5, "unary minus and division by a scalar")
  T.check(B + 1 == B:map(function(x) return x + 1 end) and 1 - B == -B + 1, "scalar broadcast in + and -")
  T.check(B:mul(B) == B:map(function(x) return x * x end), "element-wise mul")
  T.check(B:div(M(3, 2, 2)) == B / 2, "element-wise div")
  T.check(B:t() == M{{1.5, -2.25, 0.8}, {2, 0, 1}}, "transpose")
  T.check(G ~= G:t() and G == G:copy() and not (M{1, 2} == M{{1, 2}}), "== compares shape and content")
  near_all(B:crossprod(), {{7.9524999999999997, 3.7999999999999998}, {3.7999999999999998, 5}}, 1e-14,
    "crossprod (R's crossprod(B))")
  near_all(G:crossprod(B), {{6.8374999999999995, 5.4699999999999998}, {-10.534999999999998, -1.6000000000000001},
    {-0.80250000000000032, 0.5}}, 1e-13, "crossprod(b) (R's crossprod(G, B))")
end

-- ---- linear algebra --------------------------------------------------------
do
  near_all(G:solve(B), {{0.56480291617894041, 1.0412425568731234}, {-0.39922594661305921, 0.3385429920097715},
    {0.14353306784060257, -0.30785599776070033}}, 1e-13, "solve (R's solve(G, B))")
  local invG = {{0.398875260827523, 0.10146826810524712, 0.2434920352180773},
    {0.11594101480991401, 0.2926516616621711, 0.10666096238994353},
    {0.0073158939386228266, -0.17357753575245563, -0.322487785637946}}
  near_all(G:inv(), invG, 1e-13, "inv (R's solve(G))")
  near_all(G:solve(), invG, 1e-13, "solve() without b is the inverse")
  T.near(G:det(), -31.438399999999998, 1e-13, "det (R's det)")
  local la, sg = G:logdet()
  T.near(la, 3.4480300756807942, 1e-14, "logdet modulus (R's determinant)")
  T.check(sg == -1, "logdet sign")
  local las, sgs = S:logdet()
  T.near(las, 3.9485850624853249, 1e-14, "logdet of an SPD matrix")
  T.check(sgs == 1, "logdet sign of an SPD matrix")
  near_all(S:chol(), {{2.0940391591371923, 1.002846575641529, 0.29130305292444414}, {0, 2.0479987172173861,
    0.604427981567629}, {0, 0, 1.6792287951482312}}, 1e-14, "chol is upper, as R's chol")
  local R = S:chol()
  near_all(R:t() * R, S:totable(), 1e-14, "R'R reproduces A")
  local vals, vecs = S:eigen()
  near_all(vals, {2.1967688108483543, 3.1402362293547239, 7.5179949597969262}, 1e-13,
    "eigen values ascending (R's eigen, reversed)")
  near_all(S * vecs, (vecs * M.diag(vals)):totable(), 1e-13, "eigen: A V = V diag(values)")
  near_all(vecs:crossprod(), M.eye(3):totable(), 1e-13, "eigen vectors are orthonormal")

  -- qr on a collinear matrix: column 3 = 2*col1 - col2; R: rank 3, pivot 1 2 4 3
  local X = M{{1, 1.2, 0.8, 0.3}, {1, 2.5, -0.5, -1.1}, {1, 3.1, -1.1, 2.2},
              {1, 4.7, -2.7, 0.9}, {1, 5.3, -3.3, -0.4}, {1, 6.8, -4.8, 1.7}}
  local q = X:qr()
  T.check(q.rank == 3, "qr: rank of a collinear matrix is 3")
  T.check(table.concat(q.perm, " ") == "1 2 4 3", "qr: perm as R's qr()$pivot")
  near_all(q.R:view(1, 1, 3, 3), {{-2.4494897427831779, -9.6346596549471677, -1.46969384566990713},
    {0, 4.5709225910458526, 0.86197040565031857}, {0, 0, -2.66402083696487324}}, 1e-12, "qr: R as R's qr.R")
  local Xp = M.hcat(X:col(1), X:col(2), X:col(4), X:col(3))
  near_all(q.Q * q.R, Xp:totable(), 1e-12, "qr: Q R = X[, perm]")
  local q2 = X:qr(1e-20)
  T.check(q2.rank == 4, "qr: a tiny tolerance keeps the collinear column")
end

-- ---- reductions and element-wise functions ---------------------------------
do
  near_all(G:colsums(), {1.8849999999999998, 2.1999999999999993, -0.94999999999999996}, 1e-14, "colsums")
  near_all(G:colmeans(), {0.6283333333333333, 0.73333333333333317, -0.31666666666666665}, 1e-14, "colmeans")
  T.near(G:sum(), 3.1349999999999993, 1e-14, "sum")
  T.check(G:min() == -3.3 and G:max() == 4.1, "min and max")
  T.check(M{1, 0 / 0, 3}:max() ~= M{1, 0 / 0, 3}:max(), "max propagates NaN")
  T.check(G:diag() == M{2.385, 4.1, -3.3} and M{{1, 2, 3}, {4, 5, 6}}:diag() == M{1, 5}, "diag of a matrix")
  local p = M{1, 4, 9}
  T.check(p:sqrt() == M{1, 2, 3} and M{-1, 2}:abs() == M{1, 2}, "sqrt and abs")
  near_all(p:log(), {0, math.log(4), math.log(9)}, 1e-15, "log")
  near_all(M{0, 1}:exp(), {1, math.exp(1)}, 1e-15, "exp")
end

-- ---- zero-size matrices ----------------------------------------------------
do
  T.check((M(0, 3) * M(3, 2)):nrow() == 0, "0x3 * 3x2 is 0x2")
  T.check(M(2, 0) * M(0, 3) == M(2, 3, 0), "2x0 * 0x3 is a 2x3 zero")
  T.check(M(0, 3):crossprod() == M(3, 3), "crossprod of 0x3 is a 3x3 zero")
  T.check(M(0, 0):det() == 1 and M(0, 0):inv():nrow() == 0, "det and inverse of 0x0")
  T.check(M(0, 0):solve(M(0, 2)):ncol() == 2 and M(0, 2):t():nrow() == 2, "solve and t on empty")
  local q = M(0, 2):qr()
  T.check(q.rank == 0 and #q.perm == 2, "qr of 0x2")
  T.check(M.hcat(M(0, 1), M(0, 2)):ncol() == 3 and M(0, 4):colsums():nrow() == 4, "hcat and colsums of empty")
end

-- ---- errors ----------------------------------------------------------------
do
  local A32 = M(3, 2, 1)
  T.checkerr("matrix product: 3x2 %* 3x2 is not conformable", function() return A32 * A32 end)
  T.checkerr("matrix sum: 2x2 %+ 3x3 is not conformable", function() return M(2, 2) + M(3, 3) end)
  T.checkerr("matrix difference: 2x2 %- 2x1 is not conformable", function() return M(2, 2) - M(2, 1) end)
  T.checkerr("element%-wise product: 2x2 %.%* 3x3 is not conformable", function() return M(2, 2):mul(M(3, 3)) end)
  T.checkerr("matrix sum: expected a spillover.matrix or a number, got string", function() return M(2, 2) + "x" end)
  T.checkerr("matrix division: only matrix / number is defined", function() return M(2, 2) / M(2, 2) end)
  T.checkerr("solve: matrix is 3x3 but the right%-hand side is 2x1 %(expected 3 rows%)", G.solve, G, M{1, 2})
  T.checkerr("solve: matrix is 3x2 %(expected a square matrix%)", A32.solve, A32, M{1, 2, 3})
  local sing = M{{1, 2, 3}, {4, 5, 6}, {5, 7, 9}}
  T.checkerr("solve: matrix is exactly singular", sing.solve, sing, M{1, 2, 3})
  T.checkerr("solve: matrix is computationally singular %(reciprocal condition number",
    G.solve, M{{1, 1}, {1, 1 + 4e-16}}, M{1, 2})
  T.checkerr("inverse: matrix is exactly singular", sing.inv, sing)
  T.checkerr("chol: matrix is not positive definite %(the leading minor of order 2", G.chol, M{{1, 2}, {2, 1}})
  T.checkerr("eigen: matrix is not symmetric", G.eigen, G)
  T.checkerr("det: matrix is 3x2 %(expected a square matrix%)", A32.det, A32)
  T.checkerr("logdet: matrix is 3x2", A32.logdet, A32)
  T.checkerr("solve: element %[1,2%] is NaN", G.solve, M{{1, 0 / 0}, {0, 1}}, M{1, 1})
  T.checkerr("crossprod: X is 3x2 and Y is 2x1", A32.crossprod, A32, M{1, 2})
  T.checkerr("qr: tolerance 2 is outside %[0, 1%)", A32.qr, A32, 2)
  T.checkerr("get: index %(3, 1%) out of range for a 2x2 matrix", function() return M(2, 2):get(3, 1) end)
  T.checkerr("set: index %(0, 1%) out of range for a 2x2 matrix", function() M(2, 2):set(0, 1, 1) end)
  T.checkerr("index %(1, 5%) out of range for a 2x2 matrix", function() return M(2, 2)(1, 5) end)
  T.checkerr("m%[i%] needs a vector %(n x 1 or 1 x n%), but this matrix is 2x2", function() return M(2, 2)[1] end)
  T.checkerr("matrix index: 4 out of range for a 3x1 vector", function() return M{1, 2, 3}[4] end)
  T.checkerr("matrix index: expected an integer, got 1.5", function() return M{1, 2, 3}[1.5] end)
  T.checkerr("cannot set field 'foo'", function() M{1}.foo = 1 end)
  T.checkerr("row: index 3 out of range for a 2x2 matrix", function() return M(2, 2):row(3) end)
  T.checkerr("col: index 0 out of range", function() return M(2, 2):col(0) end)
  T.checkerr("view: a 2x2 block at %(2, 2%) does not fit in a 2x2 matrix", function() return M(2, 2):view(2, 2, 2, 2) end)
  T.checkerr("matrix: row 2 has 1 elements %(expected 2, like row 1%)", M, {{1, 2}, {3}})
  T.checkerr("matrix: element %[2%]%[1%] is a string %(expected a number%)", M, {{1, 2}, {"a", 3}})
  T.checkerr("matrix: element 2 is a boolean %(expected a number%)", M, {1, true})
  T.checkerr("matrix: dimensions must be non%-negative, got %-1 x 2", M, -1, 2)
  T.checkerr("matrix: expected a table of rows, a table of numbers", M, "x")
  T.checkerr("hcat: argument 2 is 3x1 but argument 1 has 2 rows", M.hcat, M(2, 1), M(3, 1))
  T.checkerr("vcat: argument 2 is 1x3 but argument 1 has 2 columns", M.vcat, M(2, 2), M(1, 3))
  T.checkerr("hcat: argument 2 is a number %(expected a spillover.matrix%)", M.hcat, M(2, 1), 3)
  T.checkerr("diag: expected a vector or a table of numbers, got a 2x2 matrix", M.diag, M(2, 2))
  T.checkerr("max: the matrix is empty", function() return M(0, 2):max() end)
  T.checkerr("map: the function returned a string for element %[1,1%]", function()
    return M{1}:map(function() return "x" end)
  end)
  T.checkerr("spillover.matrix expected, got number", G.solve, G, 3)
end

-- ---- from a frame, and pooled OLS on Produc against R's lm ------------------
do
  local d = sp.read_csv("tests/reference/data/Produc.csv")
  local X = M(d, {"log_pcap", "log_pc", "log_emp", "unemp"}, {intercept = true})
  local y = M(d, {"log_gsp"})
  local n, k = X:shape()
  T.check(n == 816 and k == 5 and X(1, 1) == 1 and X(1, 2) == 9.617981111680646, "matrix from frame columns with intercept")
  T.checkerr("matrix: column 'state' is categorical %(expected a numeric column%)", M, d, {"state"})
  T.checkerr("matrix: no column 'log_gspp' in the frame %(did you mean 'log_gsp'%?%)", M, d, {"log_gspp"})
  T.checkerr("matrix: unknown option 'const'", M, d, {"unemp"}, {const = true})

  local XtXi = X:crossprod():inv()
  local b = XtXi * X:crossprod(y)
  local e = y - X * b
  local s2 = e:crossprod()(1, 1) / (n - k)
  local se = (XtXi * s2):diag():sqrt()
  -- tests/reference/ols_produc_classic.json (R 4.2.2 lm)
  local coef = {1.6433022630088323, 0.1550070051665878, 0.309190167393314, 0.5939348975779969, -0.006732975577842188}
  local ses = {0.057587252277173415, 0.017153768455748983, 0.010271986879122567, 0.013747462070053658, 0.00141637611043614}
  local names = {"(Intercept)", "log_pcap", "log_pc", "log_emp", "unemp"}
  for j = 1, 5 do
    T.near(b[j], coef[j], 1e-10, "Produc OLS coef " .. names[j])
    T.near(se[j], ses[j], 1e-10, "Produc OLS se " .. names[j])
  end
  T.near(e:crossprod()(1, 1), 6.294154363952954, 1e-10, "Produc OLS ssr")
  -- the same through Cholesky and QR
  local bc = X:crossprod():chol()
  local z = bc:t():solve(X:crossprod(y))
  near_all(bc:solve(z), coef, 1e-10, "Produc OLS via chol")
  T.check(X:qr().rank == 5, "Produc design has full rank")
end

-- ---- bad input to the primitives over matrices (lestimate.c) ----------------
do
  local X, y = M{{1, 2}, {1, 3}, {1, 5}, {1, 7}}, M{1, 2, 3, 4}
  local f = sp.lsfit(X, y)
  T.checkerr("least squares: X%[2,2%] is NaN", sp.lsfit, M{{1, 2}, {1, 0 / 0}, {1, 5}, {1, 7}}, y)
  T.checkerr("least squares: y%[3%] is Inf", sp.lsfit, X, M{1, 2, 1 / 0, 4})
  T.checkerr("least squares: weight %-1 at observation 2", sp.lsfit, X, y, {weights = M{1, -1, 1, 1}})
  T.checkerr("lsfit: option 'tol' must be a number, got a string", sp.lsfit, X, y, {tol = "x"})
  T.checkerr("lsfit: option 'tol' must be >= 0", sp.lsfit, X, y, {tol = 0 / 0})
  T.checkerr("vcov: option 'k_df' must be an integer >= 0, got %-3", sp.vcov, X, f.resid, f.bread, {k_df = -3})
  T.checkerr("vcov: option 'lag' must be an integer, got x", sp.vcov, X, f.resid, f.bread,
    {type = "driscoll_kraay", time = {1, 2, 3, 4}, lag = "x"})
  T.checkerr("vcov: option 'type' must be a string, got a number", sp.vcov, X, f.resid, f.bread, {type = 3})
  T.checkerr("vcov: 'cluster' must be an array of vectors, got a string", sp.vcov, X, f.resid, f.bread,
    {type = "hc1", cluster = "firm"})
  local a = sp.absorb({{1, 1, 2, 2}})
  T.checkerr("demean: option 'maxiter' must be an integer >= 1, got 0", a.demean, a, M{1, 2, 3, 4}, {maxiter = 0})
  T.checkerr("demean: option 'tol' must be a number, got a string", a.demean, a, M{1, 2, 3, 4}, {tol = "x"})
  -- Unknown keys were silently ignored: {weight = w} gave an unweighted
  -- workspace and {clusters = ...} iid errors.
  T.checkerr("absorb: unknown option 'weight' %(expected weights, threads%)", sp.absorb, {{1, 1, 2, 2}}, {weight = M{1, 1, 1, 1}})
  T.checkerr("demean: unknown option 'tl' .*did you mean 'tol'", a.demean, a, M{1, 2, 3, 4}, {tl = 1e-8})
  T.checkerr("demean: unknown option 'weight'", sp.demean, M{1, 2, 3, 4}, {{1, 1, 2, 2}}, {weight = M{1, 1, 1, 1}})
  T.checkerr("sumsq: unknown option 'centre' .*did you mean 'center'", sp.sumsq, M{1, 2, 3, 4}, {centre = true})
  do  -- centred sums of squares, and the uncentred ones of the same pass
    local ss, raw = sp.sumsq(sp.matrix{{1, 10}, {2, 20}, {3, 30}, {6, 60}}, {center = true, weights = M{1, 1, 2, 1}})
    T.near(ss[1], 14, 1e-12, "sumsq: weighted centred sum of squares")
    T.near(ss[2], 1400, 1e-12, "sumsq: second column")
    T.near(raw[1], 59, 1e-12, "sumsq: the uncentred sum of squares comes second")
    T.check(select("#", sp.sumsq(M{1, 2})) == 1, "sumsq: one table without center")
  end
  do  -- no columns: nothing to fit, every residual is y (read 4 columns past the matrix once)
    local f0 = sp.lsfit(sp.matrix(5, 0), M{1, 2, 3, 4, 5})
    T.check(f0.rank == 0 and f0.ssr == 55 and f0.yss == 55, "lsfit: X with no columns")
  end
  T.checkerr("vcov: unknown option 'clusters' .*did you mean 'cluster'", sp.vcov, X, f.resid, f.bread,
    {clusters = {{1, 1, 2, 2}}})
  T.checkerr("vcov: 'cluster' is given but type is 'HC1'", sp.vcov, X, f.resid, f.bread,
    {type = "hc1", cluster = {{1, 1, 2, 2}}})
  local Vc = sp.vcov(X, f.resid, f.bread, {cluster = {{1, 1, 2, 2}}})
  local Vt = sp.vcov(X, f.resid, f.bread, {type = "cluster", cluster = {{1, 1, 2, 2}}})
  T.check(Vc == Vt, "vcov with cluster vectors and no type is the clustered covariance")
  local dm, info = sp.demean(M{1, 2, 3, 5}, {{1, 1, 2, 2}}, {weights = M{1, 1, 1, 3}, tol = 1e-12})
  T.near(dm[4], 0.5, 1e-12, "sp.demean passes weights to the workspace and tol to the demeaning")
end

-- ---- bad input to the weights kernels (lweights.c) --------------------------
do
  local W = sp.weights.from_links(4, {1, 2, 3, 4}, {2, 3, 4, 1})
  T.checkerr("traces: reps must not be negative %(got %-1%)", W.traces, W, 3, {reps = -1})
  T.checkerr("traces: reps must be a non%-negative integer %(got x%)", W.traces, W, 3, {reps = "x"})
  T.checkerr("lag_panel: x has 4 values; expected n x T", W.lag_panel, W, M{1, 2, 3, 4}, math.maxinteger)
  T.check(#W:traces(3, {reps = 10}) == 3, "traces by Monte Carlo with a valid reps")
end

-- ---- bad input to random streams and distribution functions (lrng.c) --------
do
  T.checkerr("degrees of freedom must be positive", sp.dist.qchisq, 0.5, 0)
  T.checkerr("standard deviation must be finite and >= 0", function() return sp.rng(1):normal(0, -1) end)
  T.checkerr("standard deviation must be finite and >= 0", function() return sp.rng(1):normal(0, 0 / 0) end)
  T.check(sp.rng(1):normal(2, 0) == 2, "a normal draw with sd 0 is its mean")
end

-- ---- bad options to the spatial sample (lspml.c) ------------------------------
do
  local core = require "spillover.core"
  local ring = {n = 4, i = {1, 2, 3, 4, 2, 3, 4, 1}, j = {2, 3, 4, 1, 1, 2, 3, 4}, x = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}}
  local S = core.spml_sample(ring, {1, 2, 3, 4}, {1, 1, 1, 1}, 1)
  T.checkerr("spml logdet: option 'method' must be one of eigen, lu, mc, chebyshev, got zz", S.setup_logdet, S, {method = "zz"})
  S:setup_logdet{}
  T.checkerr("spml: option 'kind' must be one of lag, error, got nil", S.maximise, S, {ee = {1, 0.5, 1}})
  T.checkerr("spml: ee%[2%] is a nil", S.maximise, S, {kind = "lag", ee = {1}})
  local A = M{{1, 10, 0}, {2, 20, 0}, {3, 30, 0}, {4, 40, 0}}
  T.check(S:lag(A:view(1, 1, 4, 2)) == S:lag(A:view(1, 1, 4, 2):copy()), "spml lag of a view equals the lag of its copy")
end

T.done()
