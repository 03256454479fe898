/* test_lsfit.c: least squares with collinearity detection. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_matrix.h>

#include "spillover/lsfit.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

/* A deterministic N(0,1) stream (xorshift64* and Box-Muller). */
static unsigned long long rng_state = 88172645463325252ULL;
static double uniform(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return ((double)((rng_state * 2685821657736338717ULL) >> 11) + 0.5) / 9007199254740992.0;
}
static double normal(void) { return sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()); }

/* y = 1 + 2 x + e with x = 1e6 + N(0,1): R's lm estimates it; the
   uncentred cross-product used to drop x as collinear with the constant.
   The reference slope and its (X'X)^-1 entry come from centred sums in long
   double. */
static void large_mean(void) {
  enum { N = 200 };
  gsl_matrix *X = gsl_matrix_alloc(N, 3);
  double y[N], r[N];
  long double sx = 0, sy = 0;
  for (size_t i = 0; i < N; i++) {
    double x = 1e6 + normal();
    gsl_matrix_set(X, i, 0, 1.0);
    gsl_matrix_set(X, i, 1, x);
    y[i] = 1 + 2 * x + normal();
    sx += x;
    sy += y[i];
  }
  long double mx = sx / N, my = sy / N, sxx = 0, sxy = 0;
  for (size_t i = 0; i < N; i++) {
    long double dx = gsl_matrix_get(X, i, 1) - mx;
    sxx += dx * dx;
    sxy += dx * (y[i] - my);
  }
  double slope = (double)(sxy / sxx), icept = (double)(my - sxy / sxx * mx);
  sp_lsfit fit;
  sp_lsfit_init(&fit);
  sp_error err;
  gsl_matrix_view X2 = gsl_matrix_submatrix(X, 0, 0, N, 2);
  int st = sp_lsfit_run(&X2.matrix, y, 1, NULL, &fit, r, &err);
  check(st == SP_OK && fit.rank == 2 && fit.keep[1], "x = 1e6 + N(0,1) is kept");
  check(fabs(fit.b[1] - slope) < 1e-9 * fabs(slope), "its slope matches the centred long-double one to 1e-9");
  check(fabs(fit.b[0] - icept) < 1e-6 * fabs(icept), "the intercept is recovered to 1e-6");
  check(fabs(gsl_matrix_get(fit.bread, 1, 1) * (double)sxx - 1) < 1e-8, "bread[x,x] = 1 / Sxx to 1e-8");
  /* The constant column last: the same fit. */
  gsl_matrix *Xr = gsl_matrix_alloc(N, 2);
  for (size_t i = 0; i < N; i++) {
    gsl_matrix_set(Xr, i, 0, gsl_matrix_get(X, i, 1));
    gsl_matrix_set(Xr, i, 1, 1.0);
  }
  st = sp_lsfit_run(Xr, y, 1, NULL, &fit, r, &err);
  check(st == SP_OK && fit.rank == 2 && fabs(fit.b[0] - slope) < 1e-9 * fabs(slope) &&
        fabs(gsl_matrix_get(fit.bread, 0, 0) * (double)sxx - 1) < 1e-8, "the same with the constant column last");
  gsl_matrix_free(Xr);
  /* A caller's scale that makes the constant column negligible drops it; the
     fit is then through the origin (not a centred one missing its constant). */
  double sc[2] = {1e20, 0};
  long double sxy0 = 0, sxx0 = 0;
  for (size_t i = 0; i < N; i++) {
    double x = gsl_matrix_get(X, i, 1);
    sxy0 += (long double)x * y[i];
    sxx0 += (long double)x * x;
  }
  sc[1] = (double)sxx0;
  st = sp_lsfit_run(&X2.matrix, y, 1, &(sp_lsfit_opts){NULL, sc, 0, NULL, NULL, 1, 0}, &fit, r, &err);
  check(st == SP_OK && fit.rank == 1 && !fit.keep[0] && isnan(fit.b[0]) &&
        fabs(fit.b[1] - (double)(sxy0 / sxx0)) < 1e-12 * fabs(fit.b[1]),
        "constant column dropped through its scale: the regression through the origin");
  /* True collinearity is still found: 2 x, and x plus noise of 1e-14 of its size. */
  for (size_t i = 0; i < N; i++) gsl_matrix_set(X, i, 2, 2 * gsl_matrix_get(X, i, 1));
  st = sp_lsfit_run(X, y, 1, NULL, &fit, r, &err);
  check(st == SP_OK && fit.rank == 2 && fit.keep[1] && !fit.keep[2], "x2 = 2 x is dropped");
  for (size_t i = 0; i < N; i++) {
    double x = gsl_matrix_get(X, i, 1);
    gsl_matrix_set(X, i, 2, x + 1e-14 * x * normal());
  }
  st = sp_lsfit_run(X, y, 1, NULL, &fit, r, &err);
  check(st == SP_OK && fit.rank == 2 && !fit.keep[2], "x2 = x (1 + 1e-14 N(0,1)) is dropped");
  /* A column that varies by 1e-8 of its size is collinear with the
     constant, as in R's lm (a norm ratio below 1e-7). */
  for (size_t i = 0; i < N; i++) gsl_matrix_set(X, i, 1, 1e8 + normal());
  st = sp_lsfit_run(&X2.matrix, y, 1, NULL, &fit, r, &err);
  check(st == SP_OK && fit.rank == 1 && !fit.keep[1], "x = 1e8 + N(0,1) is collinear with the constant");
  sp_lsfit_clear(&fit);
  gsl_matrix_free(X);
}

/* Columns whose squares overflow or underflow are refused by name instead
   of being dropped as collinear; scales short of that are estimated. */
static void extreme_scales(void) {
  enum { N = 40 };
  gsl_matrix *X = gsl_matrix_alloc(N, 2);
  double y[N], yb[N], z[N];
  for (size_t i = 0; i < N; i++) {
    z[i] = normal();
    y[i] = 1 + 3 * z[i] + 0.1 * normal();
    gsl_matrix_set(X, i, 0, 1.0);
  }
  const char *names[] = {"(Intercept)", "x"};
  sp_lsfit fit;
  sp_lsfit_init(&fit);
  sp_error err;
  sp_error_clear(&err);
  const double scales[] = {1e300, 1e-300, 1e160, 1e-160, 1e150, 1e-150};
  for (size_t s = 0; s < 6; s++) {
    for (size_t i = 0; i < N; i++) gsl_matrix_set(X, i, 1, scales[s] * z[i]);
    int st = sp_lsfit_run(X, y, 1, &(sp_lsfit_opts){NULL, NULL, 0, names, "y", 1, 0}, &fit, NULL, &err);
    char what[96];
    if (s < 4) {
      snprintf(what, sizeof what, "x at scale %g is an error naming it", scales[s]);
      check(st == SP_EVALUE && strstr(err.msg, s % 2 ? "values of x are too small" : "values of x are too large") &&
            strstr(err.msg, "rescale it") && strcmp(err.var, "x") == 0, what);
    } else {
      snprintf(what, sizeof what, "x at scale %g is estimated, b = 3 / scale", scales[s]);
      check(st == SP_OK && fit.rank == 2 && fabs(fit.b[1] * scales[s] / 3 - 1) < 0.01, what);
    }
  }
  for (size_t i = 0; i < N; i++) yb[i] = 1e300 * y[i];
  int st = sp_lsfit_run(X, yb, 1, &(sp_lsfit_opts){NULL, NULL, 0, names, "y", 1, 0}, &fit, NULL, &err);
  check(st == SP_EVALUE && strstr(err.msg, "values of y are too large") != NULL, "y at 1e300 is an error naming it");
  sp_lsfit_clear(&fit);
  gsl_matrix_free(X);
}

/* Designs longer than the scan's prefix (1024 rows), where a narrow design
   without a constant column takes its cross products from the scan itself:
   a 0/1 column that is 1 on the first half looks like a constant in the
   prefix (separate passes), and the same rows reversed do not (one fused
   pass); both must solve the normal equations, and values that are not
   finite past the prefix are still named. */
static void long_designs(void) {
  enum { N = 3000, KW = 6 };
  gsl_matrix *X = gsl_matrix_alloc(N, 2), *R = gsl_matrix_alloc(N, 2), *W = gsl_matrix_alloc(N, KW);
  static double y[N], yr[N], yw[N], r[N], w[N];
  long double yss = 0;
  for (size_t i = 0; i < N; i++) {
    double x1 = normal(), x2 = i < N / 2 ? 1.0 : 0.0;
    y[i] = 0.5 * x1 - 2.0 * x2 + 0.1 * normal();
    w[i] = 0.5 + uniform();
    yss += (long double)w[i] * y[i] * y[i];
    gsl_matrix_set(X, i, 0, x1);
    gsl_matrix_set(X, i, 1, x2);
    gsl_matrix_set(R, N - 1 - i, 0, x1);
    gsl_matrix_set(R, N - 1 - i, 1, x2);
    yr[N - 1 - i] = y[i];
    gsl_matrix_set(W, i, 0, 1.0);
    for (size_t j = 1; j < KW; j++) gsl_matrix_set(W, i, j, normal() + (double)j);
    yw[i] = 1.0 + gsl_matrix_get(W, i, 1) - 0.5 * gsl_matrix_get(W, i, KW - 1) + normal();
  }
  sp_lsfit a, b;
  sp_lsfit_init(&a);
  sp_lsfit_init(&b);
  sp_error err;
  sp_lsfit_opts o = {w, NULL, 0, NULL, NULL, 1, 0};
  int st = sp_lsfit_run(X, y, 1, &o, &a, r, &err);
  double worst = 0;
  for (size_t j = 0; j < 2; j++) {
    long double s = 0;
    for (size_t i = 0; i < N; i++) s += (long double)w[i] * gsl_matrix_get(X, i, j) * r[i];
    if (fabs((double)s) > worst) worst = fabs((double)s);
  }
  check(st == SP_OK && a.rank == 2 && worst < 1e-10, "a 0/1 column constant over the prefix: X'Wr = 0 to 1e-10");
  check(fabs(a.yss - (double)yss) < 1e-13 * (double)yss, "yss is the weighted sum of squares of y");
  for (size_t i = 0; i < N; i++) w[i] = 1.0;
  st = sp_lsfit_run(X, y, 1, NULL, &a, NULL, &err);
  st |= sp_lsfit_run(R, yr, 1, NULL, &b, r, &err);
  worst = 0;
  for (size_t j = 0; j < 2; j++) {
    long double s = 0;
    for (size_t i = 0; i < N; i++) s += (long double)gsl_matrix_get(R, i, j) * r[i];
    if (fabs((double)s) > worst) worst = fabs((double)s);
  }
  check(st == SP_OK && worst < 1e-10 && fabs(a.b[0] - b.b[0]) < 1e-12 && fabs(a.b[1] - b.b[1]) < 1e-12 &&
        fabs(a.ssr - b.ssr) < 1e-12 * a.ssr, "the fused pass (rows reversed) gives the same fit");

  st = sp_lsfit_run(W, yw, 1, NULL, &a, r, &err);
  worst = 0;
  for (size_t j = 0; j < KW; j++) {
    long double s = 0;
    for (size_t i = 0; i < N; i++) s += (long double)gsl_matrix_get(W, i, j) * r[i];
    if (fabs((double)s) > worst) worst = fabs((double)s);
  }
  check(st == SP_OK && a.rank == KW && worst < 1e-9 && fabs(a.b[1] - 1) < 0.1, "six columns and a constant: X'r = 0");

  gsl_matrix_set(X, 2499, 0, NAN);
  st = sp_lsfit_run(X, y, 1, NULL, &a, NULL, &err);
  check(st == SP_EVALUE && strstr(err.msg, "X[2500,1] is NaN") != NULL, "NaN past the prefix is named");
  gsl_matrix_set(X, 2499, 0, 1.0);
  y[2999] = -INFINITY;
  st = sp_lsfit_run(X, y, 1, NULL, &a, NULL, &err);
  check(st == SP_EVALUE && strstr(err.msg, "y[3000] is -Inf") != NULL, "-Inf in the last y is named");
  y[2999] = 0;
  w[1999] = -0.5;
  o.w = w;
  st = sp_lsfit_run(X, y, 1, &o, &a, NULL, &err);
  check(st == SP_EVALUE && strstr(err.msg, "weight -0.5 at observation 2000") != NULL,
        "a negative weight past the prefix is named");
  sp_lsfit_clear(&a);
  sp_lsfit_clear(&b);
  gsl_matrix_free(X);
  gsl_matrix_free(R);
  gsl_matrix_free(W);
}

/* Two threads run the passes on the same two chunks of rows as one:
   coefficients, bread, residuals and ssr are bit-identical, for a narrow
   design without a constant (one fused pass), one with a constant
   (centred) and a wide one (BLAS), weighted. */
static void thread_invariance(void) {
  enum { N = 150001, KW = 6 };
  gsl_matrix *X = gsl_matrix_alloc(N, KW);
  static double y[N], w[N], r1[N], r2[N];
  for (size_t i = 0; i < N; i++) {
    gsl_matrix_set(X, i, 0, 1.0);
    for (size_t j = 1; j < KW; j++) gsl_matrix_set(X, i, j, normal() + 0.1 * (double)j);
    y[i] = 2.0 + gsl_matrix_get(X, i, 1) - 0.3 * gsl_matrix_get(X, i, 2) + normal();
    w[i] = 0.25 + uniform();
  }
  struct { size_t j0, k; const char *what; } cases[] = {
    {1, 2, "two columns, no constant: bit-identical at 1 and 2 threads"},
    {0, 3, "a constant and two columns: bit-identical at 1 and 2 threads"},
    {0, KW, "six columns: bit-identical at 1 and 2 threads"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    gsl_matrix_view V = gsl_matrix_submatrix(X, 0, cases[c].j0, N, cases[c].k);
    sp_lsfit a, b;
    sp_lsfit_init(&a);
    sp_lsfit_init(&b);
    sp_error err;
    int st = sp_lsfit_run(&V.matrix, y, 1, &(sp_lsfit_opts){w, NULL, 0, NULL, NULL, 1, 0}, &a, r1, &err);
    st |= sp_lsfit_run(&V.matrix, y, 1, &(sp_lsfit_opts){w, NULL, 0, NULL, NULL, 2, 0}, &b, r2, &err);
    int same = st == SP_OK && a.rank == b.rank && a.ssr == b.ssr && a.yss == b.yss &&
               memcmp(a.b, b.b, cases[c].k * sizeof *a.b) == 0 && memcmp(r1, r2, sizeof r1) == 0;
    for (size_t i = 0; same && i < a.rank * a.rank; i++) same = a.bread->data[i] == b.bread->data[i];
    check(same && fabs(a.b[cases[c].j0 == 0 ? 1 : 0] - 1) < 0.3, cases[c].what);
    sp_lsfit_clear(&a);
    sp_lsfit_clear(&b);
  }
  gsl_matrix_free(X);
}

/* max_j |sum_i x_ij w_i r_i| / sum_i |x_ij w_i r_i|: how far the normal
   equations are from holding, relative to the size of their terms. */
static double normal_eq(const gsl_matrix *X, const double *w, const double *r, size_t n) {
  double worst = 0;
  for (size_t j = 0; j < X->size2; j++) {
    double s = 0, a = 0;
    for (size_t i = 0; i < n; i++) {
      double t = gsl_matrix_get(X, i, j) * (w ? w[i] : 1.0) * r[i];
      s += t;
      a += fabs(t);
    }
    if (a > 0 && fabs(s) / a > worst) worst = fabs(s) / a;
  }
  return worst;
}

int main(void) {
  enum { N = 50 };
  gsl_matrix *X = gsl_matrix_alloc(N, 5);
  double y[N], r[N], w[N];
  for (size_t i = 0; i < N; i++) {
    double x1 = sin(1.7 * (double)i) * 3.1, x2 = cos(0.37 * (double)i * (double)i) + 0.2 * (double)i;
    gsl_matrix_set(X, i, 0, 1.0);
    gsl_matrix_set(X, i, 1, x1);
    gsl_matrix_set(X, i, 2, x2);
    gsl_matrix_set(X, i, 3, 2.0 * x1 - x2);  /* collinear with the two before */
    gsl_matrix_set(X, i, 4, x1 * x2);
    y[i] = 1.5 + 2.385 * x1 - 0.731 * x2 + 0.25 * x1 * x2 + 1e-3 * sin(13.0 * (double)i);
    w[i] = 1.0 + 0.5 * (double)(i % 3);
  }
  sp_lsfit fit;
  sp_lsfit_init(&fit);
  sp_error err;
  int st = sp_lsfit_run(X, y, 1, NULL, &fit, r, &err);
  check(st == SP_OK, "fit runs");
  check(fit.rank == 4 && fit.keep[3] == 0 && isnan(fit.b[3]), "collinear column 4 dropped, earlier ones kept");
  check(fabs(fit.b[1] - 2.385) < 1e-3 && fabs(fit.b[2] + 0.731) < 1e-3 && fabs(fit.b[4] - 0.25) < 1e-3,
        "coefficients recovered");
  /* Normal equations hold at the solution: X'r = 0, to what a solution of
     this well-conditioned problem without the refinement step gives (about
     6e-12 of sum |x_ij r_i|). */
  check(normal_eq(X, NULL, r, N) < 1e-10, "X'r = 0 to 1e-10 of sum |x r|");
  /* bread is the inverse of X'X over kept columns. */
  double ata = 0;
  for (size_t i = 0; i < N; i++) ata += 1.0;
  double prod = ata * gsl_matrix_get(fit.bread, 0, 0);
  for (size_t q = 1; q < 4; q++) {
    size_t col = q < 3 ? q : 4;
    double s = 0;
    for (size_t i = 0; i < N; i++) s += gsl_matrix_get(X, i, col);
    prod += s * gsl_matrix_get(fit.bread, q, 0);
  }
  check(fabs(prod - 1.0) < 1e-10, "bread is (X'X)^-1");

  /* Weighted: X'Wr = 0. */
  st = sp_lsfit_run(X, y, 1, &(sp_lsfit_opts){w, NULL, 0, NULL, NULL, 1, 0}, &fit, r, &err);
  check(st == SP_OK && fit.rank == 4 && normal_eq(X, w, r, N) < 1e-10, "weighted normal equations");

  /* Every column dropped (all zero): the residuals are y, and the ssr is yss
     exactly, so a within R2 is 0, not a rounding away from it. */
  {
    gsl_matrix *Z = gsl_matrix_calloc(N, 2);
    st = sp_lsfit_run(Z, y, 1, &(sp_lsfit_opts){w, NULL, 0, NULL, NULL, 1, 0}, &fit, r, &err);
    int same_r = 1;
    for (size_t i = 0; i < N; i++) same_r &= r[i] == y[i];
    check(st == SP_OK && fit.rank == 0 && fit.ssr == fit.yss && same_r, "no column kept: r = y and ssr == yss");
    gsl_matrix_free(Z);
  }

  /* Ill-conditioned (x2 nearly x1, cond of the cross-product about 1e9):
     the refinement step runs and brings X'r to 6e-13 of its terms. */
  {
    gsl_matrix *Z = gsl_matrix_alloc(N, 3);
    for (size_t i = 0; i < N; i++) {
      double x1 = sin(1.7 * (double)i) * 3.1;
      gsl_matrix_set(Z, i, 0, 1.0);
      gsl_matrix_set(Z, i, 1, x1);
      gsl_matrix_set(Z, i, 2, x1 + 1e-4 * cos(0.37 * (double)i * (double)i));
    }
    st = sp_lsfit_run(Z, y, 1, NULL, &fit, r, &err);
    check(st == SP_OK && fit.rank == 3 && normal_eq(Z, NULL, r, N) < 1e-11,
          "ill-conditioned: refined, X'r = 0 to 1e-11 of sum |x r| (2e-7 unrefined)");
    gsl_matrix_free(Z);
  }

  /* A column that is rounding noise relative to its scale is dropped. */
  double scale[5] = {N, 100, 100, 100, 100};
  for (size_t i = 0; i < N; i++) gsl_matrix_set(X, i, 2, 1e-9 * sin((double)i));
  st = sp_lsfit_run(X, y, 1, &(sp_lsfit_opts){NULL, scale, 0, NULL, NULL, 1, 0}, &fit, NULL, &err);
  check(st == SP_OK && fit.keep[2] == 0, "absorbed column found through its reference scale");

  /* Bad input is an error naming the element, not a column silently dropped
     as collinear (NaN in X) or NaN coefficients (NaN in y or w). */
  gsl_matrix_set(X, 7, 1, NAN);
  st = sp_lsfit_run(X, y, 1, NULL, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "X[8,2] is NaN") != NULL && fit.b == NULL, "NaN in X is an error");
  gsl_matrix_set(X, 7, 1, 0.5);
  y[3] = INFINITY;
  st = sp_lsfit_run(X, y, 1, NULL, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "y[4] is Inf") != NULL, "Inf in y is an error");
  y[3] = 1.0;
  w[5] = -1.0;
  st = sp_lsfit_run(X, y, 1, &(sp_lsfit_opts){w, NULL, 0, NULL, NULL, 1, 0}, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "weight -1 at observation 6") != NULL, "a negative weight is an error");
  w[5] = NAN;
  st = sp_lsfit_run(X, y, 1, &(sp_lsfit_opts){w, NULL, 0, NULL, NULL, 1, 0}, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "weight NaN at observation 6") != NULL, "a NaN weight is an error");
  st = sp_lsfit_run(X, y, 1, &(sp_lsfit_opts){NULL, NULL, NAN, NULL, NULL, 1, 0}, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "tolerance") != NULL, "a NaN tolerance is an error");
  w[5] = 0.0;
  st = sp_lsfit_run(X, y, 1, &(sp_lsfit_opts){w, NULL, 0, NULL, NULL, 1, 0}, &fit, NULL, &err);
  check(st == SP_OK && isfinite(fit.ssr) && fit.rank > 0, "a zero weight is allowed");

  st = sp_lsfit_run(X, y, 1, &(sp_lsfit_opts){NULL, NULL, 1.0, NULL, NULL, 1, 0}, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "outside [0, 1)") != NULL, "a tolerance of 1 is an error");
  for (size_t i = 0; i < N; i++) w[i] = 0;
  st = sp_lsfit_run(X, y, 1, &(sp_lsfit_opts){w, NULL, 0, NULL, NULL, 1, 0}, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "the weights are all zero") != NULL,
        "all-zero weights are named as such, not as every column collinear");

  sp_lsfit_clear(&fit);
  gsl_matrix_free(X);
  large_mean();
  extreme_scales();
  long_designs();
  thread_invariance();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
