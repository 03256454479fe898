/*
** lsfit.c: ordered Cholesky least squares with collinearity detection and one
** step of iterative refinement (see lsfit.h).
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

#include "spillover/lsfit.h"

void sp_lsfit_init(sp_lsfit *fit) { memset(fit, 0, sizeof *fit); }

void sp_lsfit_clear(sp_lsfit *fit) {
  free(fit->keep);
  free(fit->b);
  if (fit->bread) gsl_matrix_free(fit->bread);
  sp_lsfit_init(fit);
}

/* A = X'WX (full, k x k) and c = X'Wy. */
static void cross_products(const gsl_matrix *X, const double *y, size_t ys, const double *w, double *A,
                           double *c) {
  size_t n = X->size1, k = X->size2;
  if (w == NULL) {
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n, 1.0, X->data, (int)X->tda, 0.0, A, (int)k);
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)k, 1.0, X->data, (int)X->tda, y, (int)ys, 0.0, c, 1);
  } else {
    memset(A, 0, k * k * sizeof *A);
    memset(c, 0, k * sizeof *c);
    for (size_t i = 0; i < n; i++) {
      const double *x = X->data + i * X->tda;
      for (size_t a = 0; a < k; a++) {
        double wx = w[i] * x[a];
        c[a] += wx * y[i * ys];
        for (size_t b = a; b < k; b++) A[a * k + b] += wx * x[b];
      }
    }
  }
  for (size_t a = 0; a < k; a++)
    for (size_t b = 0; b < a; b++) A[a * k + b] = A[b * k + a];
}

/* r = y - X b over kept columns (b is compact: rank entries). */
static void residuals(const gsl_matrix *X, const double *y, size_t ys, const int *keep, const double *bc,
                      double *r) {
  size_t n = X->size1, k = X->size2;
  for (size_t i = 0; i < n; i++) {
    const double *x = X->data + i * X->tda;
    double s = y[i * ys];
    for (size_t a = 0, m = 0; a < k; a++)
      if (keep[a]) s -= x[a] * bc[m++];
    r[i] = s;
  }
}

/* c_kept = X_kept' W r. */
static void cross_resid(const gsl_matrix *X, const double *r, const double *w, const int *keep, double *out,
                        size_t rank) {
  size_t n = X->size1, k = X->size2;
  memset(out, 0, rank * sizeof *out);
  for (size_t i = 0; i < n; i++) {
    const double *x = X->data + i * X->tda;
    double ri = w ? w[i] * r[i] : r[i];
    for (size_t a = 0, m = 0; a < k; a++)
      if (keep[a]) out[m++] += x[a] * ri;
  }
}

static const char *nonfinite(double v) { return isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf"; }

/* NaN or Inf in X or y, or a negative or non-finite weight, would come out
   as a column silently dropped as collinear or as NaN coefficients. */
static int check_inputs(const gsl_matrix *X, const double *y, size_t ys, const double *w, double tol,
                        sp_error *err) {
  if (!isfinite(tol))
    return sp_error_set(err, SP_EVALUE, "least squares: tolerance %g is not finite", tol);
  for (size_t i = 0; i < X->size1; i++) {
    const double *x = X->data + i * X->tda;
    for (size_t j = 0; j < X->size2; j++)
      if (!isfinite(x[j]))
        return sp_error_set(err, SP_EVALUE, "least squares: X[%zu,%zu] is %s (expected finite values; "
                            "drop rows with missing values first)", i + 1, j + 1, nonfinite(x[j]));
    if (!isfinite(y[i * ys]))
      return sp_error_set(err, SP_EVALUE, "least squares: y[%zu] is %s (expected finite values; "
                          "drop rows with missing values first)", i + 1, nonfinite(y[i * ys]));
    if (w && !(w[i] >= 0 && isfinite(w[i]))) {
      char v[32];
      snprintf(v, sizeof v, "%g", w[i]);
      return sp_error_set(err, SP_EVALUE, "least squares: weight %s at observation %zu (expected a finite "
                          "weight >= 0)", isfinite(w[i]) ? v : nonfinite(w[i]), i + 1);
    }
  }
  return SP_OK;
}

int sp_lsfit_run(const gsl_matrix *X, const double *y, size_t ystride, const double *w, const double *scale,
                 double tol, sp_lsfit *fit, double *resid, sp_error *err) {
  size_t n = X->size1, k = X->size2;
  sp_lsfit_clear(fit);
  if (ystride == 0) ystride = 1;
  int st = check_inputs(X, y, ystride, w, tol, err);
  if (st) return st;
  if (tol <= 0) tol = SP_LSFIT_TOL;
  fit->n = n;
  fit->k = k;
  /* One scratch block: A (k x k), c, bc, tmp (k each), L and Li (k x k
     each), the residuals unless the caller gives them, then idx. */
  size_t nd = 3 * k * k + 3 * k + (resid ? 0 : n) + 1;
  double *A = malloc(nd * sizeof *A + (k + 1) * sizeof(size_t));
  fit->keep = calloc(k + 1, sizeof *fit->keep);
  fit->b = malloc((k + 1) * sizeof *fit->b);
  if (A == NULL || fit->keep == NULL || fit->b == NULL) {
    free(A);
    sp_lsfit_clear(fit);
    return sp_error_set(err, SP_ENOMEM, "out of memory in least squares (%zu x %zu)", n, k);
  }
  double *c = A + k * k, *bc = c + k, *tmp = bc + k, *L = tmp + k, *Li = L + k * k;
  double *r = resid ? resid : Li + k * k;
  size_t *idx = (size_t *)(void *)(A + nd);
  cross_products(X, y, ystride, w, A, c);

  /* Left-looking Cholesky over kept columns, in column order: L is m x m
     lower-triangular (compact), column j of A tested before it is kept. */
  size_t m = 0;
  for (size_t j = 0; j < k; j++) {
    double ref = scale ? scale[j] : A[j * k + j];
    double v = A[j * k + j];
    for (size_t l = 0; l < m; l++) {
      double s = A[idx[l] * k + j];
      for (size_t q = 0; q < l; q++) s -= L[l * k + q] * L[m * k + q];
      L[m * k + l] = s / L[l * k + l];
      v -= L[m * k + l] * L[m * k + l];
    }
    if (!(ref > 0) || !(v > tol * ref)) continue;  /* collinear, zero or NaN: drop */
    L[m * k + m] = sqrt(v);
    idx[m++] = j;
    fit->keep[j] = 1;
  }
  fit->rank = m;

  /* bread = (L L')^{-1}: invert L (lower) into Li (m x m, in the k x k
     block), then Linv' Linv. */
  fit->bread = gsl_matrix_calloc(m ? m : 1, m ? m : 1);
  if (fit->bread == NULL) {
    free(A);
    sp_lsfit_clear(fit);
    return sp_error_set(err, SP_ENOMEM, "out of memory in least squares");
  }
  if (m == 0) { fit->bread->size1 = fit->bread->size2 = 0; }
  memset(Li, 0, m * m * sizeof *Li);
  for (size_t j = 0; j < m; j++) {
    Li[j * m + j] = 1.0 / L[j * k + j];
    for (size_t i = j + 1; i < m; i++) {
      double s = 0;
      for (size_t q = j; q < i; q++) s -= L[i * k + q] * Li[q * m + j];
      Li[i * m + j] = s / L[i * k + i];
    }
  }
  for (size_t a = 0; a < m; a++)
    for (size_t b = 0; b <= a; b++) {
      double s = 0;
      for (size_t q = a; q < m; q++) s += Li[q * m + a] * Li[q * m + b];
      gsl_matrix_set(fit->bread, a, b, s);
      gsl_matrix_set(fit->bread, b, a, s);
    }

  /* b = bread c_kept, then one refinement step on the residuals. */
  for (size_t a = 0; a < m; a++) tmp[a] = c[idx[a]];
  for (size_t a = 0; a < m; a++) {
    double s = 0;
    for (size_t q = 0; q < m; q++) s += gsl_matrix_get(fit->bread, a, q) * tmp[q];
    bc[a] = s;
  }
  residuals(X, y, ystride, fit->keep, bc, r);
  cross_resid(X, r, w, fit->keep, tmp, m);
  for (size_t a = 0; a < m; a++) {
    double s = 0;
    for (size_t q = 0; q < m; q++) s += gsl_matrix_get(fit->bread, a, q) * tmp[q];
    bc[a] += s;
  }
  residuals(X, y, ystride, fit->keep, bc, r);
  double ssr = 0;
  for (size_t i = 0; i < n; i++) ssr += (w ? w[i] : 1.0) * r[i] * r[i];
  fit->ssr = ssr;
  for (size_t j = 0, q = 0; j < k; j++) fit->b[j] = fit->keep[j] ? bc[q++] : NAN;

  free(A);
  return SP_OK;
}
