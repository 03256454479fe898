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
  int st = sp_lsfit_run(X, y, 1, NULL, NULL, 0, &fit, r, &err);
  check(st == SP_OK, "fit runs");
  check(fit.rank == 4 && fit.keep[3] == 0 && isnan(fit.b[3]), "collinear column 4 dropped, earlier ones kept");
  check(fabs(fit.b[1] - 2.385) < 1e-3 && fabs(fit.b[2] + 0.731) < 1e-3 && fabs(fit.b[4] - 0.25) < 1e-3,
        "coefficients recovered");
  /* Normal equations hold at the solution: X'r = 0. */
  double worst = 0;
  for (size_t j = 0; j < 5; j++) {
    double s = 0;
    for (size_t i = 0; i < N; i++) s += gsl_matrix_get(X, i, j) * r[i];
    if (fabs(s) > worst) worst = fabs(s);
  }
  check(worst < 1e-12, "X'r = 0 to 1e-12");
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
  st = sp_lsfit_run(X, y, 1, w, NULL, 0, &fit, r, &err);
  worst = 0;
  for (size_t j = 0; j < 5; j++) {
    double s = 0;
    for (size_t i = 0; i < N; i++) s += gsl_matrix_get(X, i, j) * w[i] * r[i];
    if (fabs(s) > worst) worst = fabs(s);
  }
  check(st == SP_OK && fit.rank == 4 && worst < 1e-12, "weighted normal equations");

  /* A column that is rounding noise relative to its scale is dropped. */
  double scale[5] = {N, 100, 100, 100, 100};
  for (size_t i = 0; i < N; i++) gsl_matrix_set(X, i, 2, 1e-9 * sin((double)i));
  st = sp_lsfit_run(X, y, 1, NULL, scale, 0, &fit, NULL, &err);
  check(st == SP_OK && fit.keep[2] == 0, "absorbed column found through its reference scale");

  /* Bad input is an error naming the element, not a column silently dropped
     as collinear (NaN in X) or NaN coefficients (NaN in y or w). */
  gsl_matrix_set(X, 7, 1, NAN);
  st = sp_lsfit_run(X, y, 1, NULL, NULL, 0, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "X[8,2] is NaN") != NULL && fit.b == NULL, "NaN in X is an error");
  gsl_matrix_set(X, 7, 1, 0.5);
  y[3] = INFINITY;
  st = sp_lsfit_run(X, y, 1, NULL, NULL, 0, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "y[4] is Inf") != NULL, "Inf in y is an error");
  y[3] = 1.0;
  w[5] = -1.0;
  st = sp_lsfit_run(X, y, 1, w, NULL, 0, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "weight -1 at observation 6") != NULL, "a negative weight is an error");
  w[5] = NAN;
  st = sp_lsfit_run(X, y, 1, w, NULL, 0, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "weight NaN at observation 6") != NULL, "a NaN weight is an error");
  st = sp_lsfit_run(X, y, 1, NULL, NULL, NAN, &fit, r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "tolerance") != NULL, "a NaN tolerance is an error");
  w[5] = 0.0;
  st = sp_lsfit_run(X, y, 1, w, NULL, 0, &fit, NULL, &err);
  check(st == SP_OK && isfinite(fit.ssr) && fit.rank > 0, "a zero weight is allowed");

  sp_lsfit_clear(&fit);
  gsl_matrix_free(X);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
