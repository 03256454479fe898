/* test_weights.c: the sparse weights core (construction, styles, islands,
   products, eigenvalues, traces) and Moran's I against hand-computed values
   on small graphs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "spillover/weights.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

static int near(double a, double b, double tol) { return fabs(a - b) <= tol * (fabs(b) > 1 ? fabs(b) : 1); }

/* A path 1 - 2 - 3 - 4 (edges in one direction, symmetrised by the caller). */
static sp_weights *path4(char style, sp_error *err) {
  const size_t i[] = {0, 1, 1, 2, 2, 3}, j[] = {1, 0, 2, 1, 3, 2};
  sp_weights *W = NULL;
  if (sp_weights_from_links(4, i, j, NULL, 6, &W, err) != SP_OK) return NULL;
  if (sp_weights_set_style(W, style, 0, err) != SP_OK) { sp_weights_free(W); return NULL; }
  return W;
}

int main(void) {
  sp_error err;
  sp_error_clear(&err);

  /* ---- construction and styles ---- */
  sp_weights *W = path4('W', &err);
  check(W != NULL && W->n == 4 && W->nnz == 6, "path of 4: 6 links");
  check(W && W->val[0] == 1.0 && W->val[1] == 0.5 && W->val[2] == 0.5, "row-standardised values");
  double x[4] = {1, 2, 3, 4}, y[4];
  sp_weights_lag(W, x, y);
  check(y[0] == 2 && y[1] == 2 && y[2] == 3 && y[3] == 3, "lag W x");
  double rs[4];
  sp_weights_rowsums(W, rs);
  check(rs[0] == 1 && rs[3] == 1, "row sums 1");
  check(sp_weights_asymmetry(W, 0) == 4 && sp_weights_asymmetry(W, 1) == 0, "asymmetric values, symmetric pattern");

  /* duplicate links with the same value merge; different values are an error */
  {
    const size_t i[] = {0, 0, 1}, j[] = {1, 1, 0};
    sp_weights *D = NULL;
    check(sp_weights_from_links(2, i, j, NULL, 3, &D, &err) == SP_OK && D->nnz == 2, "repeated link kept once");
    sp_weights_free(D);
    const double v[] = {1, 2, 1};
    int st = sp_weights_from_links(2, i, j, v, 3, &D, &err);
    check(st == SP_EDUP && D == NULL && strstr(err.msg, "given twice with different weights"), "conflicting duplicate: SP_EDUP");
    const size_t si[] = {0}, sj[] = {0};
    st = sp_weights_from_links(2, si, sj, NULL, 1, &D, &err);
    check(st == SP_EVALUE && strstr(err.msg, "to itself"), "self link refused");
    const size_t bi[] = {0}, bj[] = {5};
    st = sp_weights_from_links(2, bi, bj, NULL, 1, &D, &err);
    check(st == SP_EVALUE && strstr(err.msg, "beyond the 2 units"), "index out of range refused");
    const double neg[] = {-1};
    const size_t ni[] = {0}, nj[] = {1};
    st = sp_weights_from_links(2, ni, nj, neg, 1, &D, &err);
    check(st == SP_EVALUE && strstr(err.msg, "finite positive"), "negative weight refused");
  }

  /* islands: error under W unless zero_policy */
  {
    const size_t i[] = {0, 1}, j[] = {1, 0};
    sp_weights *I = NULL;
    sp_weights_from_links(3, i, j, NULL, 2, &I, &err);
    const char *ids[] = {"a", "b", "c"};
    check(sp_weights_set_ids(I, ids, &err) == SP_OK, "ids set");
    int st = sp_weights_set_style(I, 'W', 0, &err);
    check(st == SP_EVALUE && strstr(err.msg, "1 unit has no neighbours (island): c"), "island named under style W");
    check(sp_weights_set_style(I, 'W', 1, &err) == SP_OK && I->zero_policy, "zero_policy accepts islands");
    size_t isl[2];
    check(sp_weights_islands(I, isl, 2) == 1 && isl[0] == 2, "islands listed");
    const char *dup[] = {"a", "b", "a"};
    st = sp_weights_set_ids(I, dup, &err);
    check(st == SP_EDUP && strstr(err.msg, "'a' is duplicated (units 1 and 3)"), "duplicate id refused");
    sp_weights_free(I);
  }

  /* ---- Moran's constants and I on the path, by hand ----
     style B: S0 = 6, S1 = 1/2 * 6 * 4 = 12, S2 = sum (2 d_i)^2 = 4 + 16 + 16 + 4 = 40.
     x = 1..4: z = (-1.5, -.5, .5, 1.5), z'z = 5, z'Wz = 2(.75 - .25 + .75) = 2.5,
     I = 4/6 * 2.5/5 = 1/3. */
  {
    sp_weights *B = path4('B', &err);
    double S0, S1, S2;
    sp_weights_moran_sums(B, &S0, &S1, &S2, &err);
    check(S0 == 6 && S1 == 12 && S2 == 40, "S0, S1, S2 of the binary path");
    sp_moran_result r;
    check(sp_weights_moran(B, x, 0, &r, &err) == SP_OK, "moran runs");
    check(near(r.I, 1.0 / 3, 1e-15), "I = 1/3 on the path");
    check(near(r.expectation, -1.0 / 3, 1e-15), "E(I) = -1/(n-1)");
    /* normality: (n^2 S1 - n S2 + 3 S0^2) / (S0^2 (n^2 - 1)) - E^2 = (192 - 160 + 108)/(36*15) - 1/9 */
    check(near(r.variance_normal, 140.0 / 540 - 1.0 / 9, 1e-14), "variance under normality by hand");
    double p;
    check(sp_weights_moran_perm(B, x, 99, 1, NULL, &p, &err) == SP_OK && p > 0 && p <= 1, "permutation p in (0, 1]");
    double nanx[4] = {1, NAN, 3, 4};
    check(sp_weights_moran(B, nanx, 1, &r, &err) == SP_EMISSING && strstr(err.msg, "unit 2 is missing"), "missing x named");
    double cx[4] = {2, 2, 2, 2};
    check(sp_weights_moran(B, cx, 1, &r, &err) == SP_EVALUE && strstr(err.msg, "constant"), "constant x refused");
    /* local Moran: Ii = z_i / m2 * (W z)_i, m2 = 5/4 */
    double Ii[4], E[4], V[4];
    sp_weights_local_moran(B, x, Ii, E, V, &err);
    check(near(Ii[0], -1.5 / 1.25 * -0.5, 1e-15), "local Ii of unit 1");
    check(near(E[0], -(2.25 * 1) / (3 * 1.25), 1e-15), "local E(Ii) conditional");
    double pp[4];
    check(sp_weights_local_moran_perm(B, x, 49, 2, pp, &err) == SP_OK && pp[0] >= 1.0 / 50 && pp[0] <= 1, "local permutation p");

    /* eigenvalues of the path adjacency: 2 cos(k pi / 5), k = 1..4 */
    double re[4], im[4];
    check(sp_weights_eigenvalues(B, re, im, &err) == SP_OK, "eigenvalues run (symmetric path)");
    check(near(re[0], 2 * cos(4 * M_PI / 5), 1e-13) && near(re[3], 2 * cos(M_PI / 5), 1e-13), "path eigenvalues");
    /* tr(B^2) = 2 * links/2 * ... = sum of degrees = 6; tr(B^3) = 0 (bipartite); tr(B^4) = sum lambda^4 */
    double tr[4];
    sp_weights_traces(B, 4, tr, &err);
    double t4 = 0;
    for (int k = 0; k < 4; k++) t4 += pow(re[k], 4);
    check(tr[0] == 0 && tr[1] == 6 && fabs(tr[2]) < 1e-12 && near(tr[3], t4, 1e-12), "traces of powers");
    double mc[3];
    check(sp_weights_traces_mc(B, 3, 50, 1, mc, &err) == SP_OK && mc[1] == 6, "Monte Carlo traces: exact k = 2");
    sp_weights_free(B);
  }

  /* row-standardised eigenvalues through the symmetric similar matrix = dgeev on the transpose (not symmetric) */
  {
    double re[4], im[4], re2[4], im2[4];
    sp_weights_eigenvalues(W, re, im, &err);
    sp_weights *T = NULL;
    sp_weights_transpose(W, &T, &err);
    /* the transpose's raw values are symmetric too, so force the general path with a perturbed copy */
    T->raw[0] *= 1.0000001;
    sp_weights_eigenvalues(T, re2, im2, &err);
    check(near(re[3], 1, 1e-13) && near(re2[3], 1, 1e-6) && near(re[0], re2[0], 1e-6), "symmetric-similar and dgeev paths agree");
    sp_weights_free(T);
  }

  /* ---- panel lag, subset, transpose, copy, combine ---- */
  {
    double px[8] = {1, 2, 3, 4, 10, 20, 30, 40}, py[8];
    check(sp_weights_lag_panel(W, px, 2, SP_WORDER_TIME, py, &err) == SP_OK && py[4] == 20 && py[5] == 20 && py[7] == 30,
          "panel lag (time, unit)");
    double ux[8] = {1, 10, 2, 20, 3, 30, 4, 40}, uy[8];
    sp_weights_lag_panel(W, ux, 2, SP_WORDER_UNIT, uy, &err);
    check(uy[1] == 20 && uy[3] == 20 && uy[7] == 30, "panel lag (unit, time)");
    const size_t idx[] = {3, 2};
    sp_weights *S = NULL;
    check(sp_weights_subset(W, idx, 2, &S, &err) == SP_OK && S->n == 2 && S->nnz == 2 && S->val[0] == 1,
          "subset {4, 3}: one link each way, re-standardised");
    sp_weights_free(S);
    const size_t idx2[] = {0, 3};
    check(sp_weights_subset(W, idx2, 2, &S, &err) == SP_EVALUE && S == NULL, "subset that leaves islands under W: error");
    const size_t dup[] = {1, 1};
    check(sp_weights_subset(W, dup, 2, &S, &err) == SP_EDUP, "subset with a repeated unit: error");
    sp_weights *C = NULL, *P = NULL, *M = NULL;
    check(sp_weights_copy(W, &C, &err) == SP_OK && C->nnz == 6, "copy");
    check(sp_weights_combine(W, C, 0, 0, 1, &P, &err) == SP_OK && P->nnz == 6 && P->val[1] == 0.25, "product of weights");
    check(sp_weights_combine(W, C, 0.5, 0.5, 0, &M, &err) == SP_OK && M->val[1] == 0.5, "mix of weights");
    sp_weights_free(C); sp_weights_free(P); sp_weights_free(M);
    double dense[16];
    sp_weights_dense(W, dense);
    check(dense[1] == 1 && dense[4] == 0.5 && dense[0] == 0, "dense export");
  }

  /* ---- knn, distance, economic ---- */
  {
    const double cx[5] = {0, 1, 3, 6, 10}, cy[5] = {0, 0, 0, 0, 0};
    sp_weights *K = NULL;
    check(sp_weights_knn(5, cx, cy, 1, 0, &K, &err) == SP_OK && K->nnz == 5, "knn 1");
    check(K->col[K->rowptr[2]] == 1 && K->col[K->rowptr[4]] == 3, "nearest neighbours on a line");
    sp_weights_free(K);
    check(sp_weights_knn(5, cx, cy, 5, 0, &K, &err) == SP_EVALUE && strstr(err.msg, "1 <= k < n"), "k >= n refused");
    sp_weights *D = NULL;
    check(sp_weights_distance(5, cx, cy, 1, 2.5, 0, &D, &err) == SP_OK && D->nnz == 4, "distance band 2.5: 4 links");
    sp_weights_free(D);
    check(sp_weights_distance(5, cx, cy, 2, 0, 0, &D, &err) == SP_OK && near(D->raw[D->rowptr[0] + 1], 1.0 / 9, 1e-15),
          "inverse squared distance");
    sp_weights_free(D);
    /* great circle: one degree of latitude ~ 111.19 km on a 6371.0088 km sphere */
    const double lon[3] = {0, 0, 0}, lat[3] = {0, 1, 3};
    check(sp_weights_distance(3, lon, lat, 1, 0, 1, &D, &err) == SP_OK &&
          near(1 / D->raw[0], 6371.0088 * M_PI / 180, 1e-12), "great-circle distance");
    sp_weights_free(D);
    const double g[3] = {1, 2, 4};
    const char *ids[] = {"a", "b", "c"};
    sp_weights *E = NULL;
    check(sp_weights_economic(3, g, ids, &E, &err) == SP_OK && E->raw[0] == 1 && E->raw[1] == 1.0 / 3,
          "economic 1/|g_i - g_j|");
    sp_weights_free(E);
    const double g2[3] = {1, 2, 1};
    check(sp_weights_economic(3, g2, ids, &E, &err) == SP_EVALUE && strstr(err.msg, "a and c have the same value"),
          "equal economic values named");
    const double bad[2] = {0, NAN};
    check(sp_weights_knn(2, bad, bad, 1, 0, &K, &err) == SP_EMISSING, "missing coordinates refused");
  }

  sp_weights_free(W);
  /* One sparse type for spml too: a general matrix from triplets (duplicates
     summed, zeros dropped, any finite value), whose raw values are its values.
     A re-standardised star (centre 0, leaves 1..3; row sums 1) has no
     symmetric raw weights but is a row rescaling of the symmetric adjacency:
     the eigenvalues are real, from dsyevd: -1, 0, 0, 1. */
  {
    size_t ti[7] = {0, 0, 0, 1, 2, 3, 3}, tj[7] = {1, 2, 3, 0, 0, 0, 0};
    double tx[7] = {1.0 / 3, 1.0 / 3, 1.0 / 3, 1, 1, 0.5, 0.5};
    sp_weights *S = NULL;
    check(sp_weights_from_triplets(4, 7, ti, tj, tx, &S, &err) == SP_OK && S->nnz == 6 && S->val[5] == 1 &&
          S->raw[5] == 1 && S->style == 'B', "from_triplets: a duplicate summed, raw = val");
    double re[4], im[4];
    check(S != NULL && sp_weights_eigenvalues(S, re, im, &err) == SP_OK && im[0] == 0 && im[1] == 0 && im[2] == 0 &&
          im[3] == 0 && near(re[0], -1, 1e-14) && near(re[1], 0, 1e-14) && near(re[3], 1, 1e-14),
          "a row rescaling of symmetric weights has a real spectrum (similarity, not dgeev)");
    double z[4], b[4] = {1, 0, 0, 0}, Wz[4];
    check(S != NULL && sp_weights_solve(S, 0.5, b, z, &err) == SP_OK, "solve by iteration");
    if (S) sp_weights_lag(S, z, Wz);
    check(S != NULL && near(z[0] - 0.5 * Wz[0], 1, 1e-13) && near(z[2] - 0.5 * Wz[2], 0, 1e-13), "solve: (I - rho W) z = b");
    sp_weights_free(S);
    size_t bi[1] = {0}, bj[1] = {1};
    double bx[1] = {INFINITY};
    check(sp_weights_from_triplets(2, 1, bi, bj, bx, &S, &err) == SP_EVALUE && strstr(err.msg, "non-finite") != NULL,
          "from_triplets: a non-finite value is SP_EVALUE");
    /* an empty block (a period without units): traces 0, not 0 / 0 */
    double tp[4], tc[4];
    check(sp_weights_from_triplets(0, 0, bi, bj, bx, &S, &err) == SP_OK &&
          sp_weights_traces_mc_shifted(S, 0.1, 0.9, 4, 10, 1, tp, tc, &err) == SP_OK && tp[3] == 0 && tc[3] == 0 &&
          tp[0] == 0 && tc[1] == 0, "Monte Carlo traces of an empty matrix are 0");
    sp_weights_free(S);
  }

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
