/*
** lsfit.c: centred, ordered Cholesky least squares with collinearity
** detection and one step of iterative refinement (see lsfit.h).
*/
#include <float.h>
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

static const char *nonfinite(double v) { return isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf"; }

/* What one pass over the rows learns: largest absolute value, weighted sum
   (k + 1 entries each, y last), weighted uncentred sum of squares and
   whether the column equals its first value on every row (1 or 0; k each),
   and the weight total. */
typedef struct {
  double *amax, *sum, *ssq, *same;
  double wsum;
} colstats;

/* The pass.  NaN or Inf in X or y, or a negative or non-finite weight, would
   come out as a column silently dropped as collinear or as NaN coefficients:
   an error naming the element. */
static int scan(const gsl_matrix *X, const double *y, size_t ys, const double *w, colstats *cs, sp_error *err) {
  size_t n = X->size1, k = X->size2;
  /* restrict: the accumulators never alias X, so they stay in registers */
  double *restrict amax = cs->amax, *restrict sum = cs->sum, *restrict ssq = cs->ssq, *restrict same = cs->same;
  const double *restrict x0 = X->data;
  memset(amax, 0, (k + 1) * sizeof *amax);
  memset(sum, 0, (k + 1) * sizeof *sum);
  memset(ssq, 0, k * sizeof *ssq);
  for (size_t j = 0; j < k; j++) same[j] = 1;
  cs->wsum = 0;
  for (size_t i = 0; i < n; i++) {
    const double *restrict x = X->data + i * X->tda;
    double yi = y[i * ys], wi = w ? w[i] : 1.0;
    for (size_t j = 0; j < k; j++) {
      double a = fabs(x[j]);
      if (!(a <= DBL_MAX))
        return sp_error_set(err, SP_EVALUE, "least squares: X[%zu,%zu] is %s (expected finite values; "
                            "drop rows with missing values first)", i + 1, j + 1, nonfinite(x[j]));
      if (a > amax[j]) amax[j] = a;
      sum[j] += wi * x[j];
      ssq[j] += wi * x[j] * x[j];
      if (x[j] != x0[j]) same[j] = 0;
    }
    if (!isfinite(yi))
      return sp_error_set(err, SP_EVALUE, "least squares: y[%zu] is %s (expected finite values; "
                          "drop rows with missing values first)", i + 1, nonfinite(yi));
    if (fabs(yi) > amax[k]) amax[k] = fabs(yi);
    sum[k] += wi * yi;
    if (!(wi >= 0 && isfinite(wi))) {
      char v[32];
      snprintf(v, sizeof v, "%g", wi);
      return sp_error_set(err, SP_EVALUE, "least squares: weight %s at observation %zu (expected a finite "
                          "weight >= 0)", isfinite(wi) ? v : nonfinite(wi), i + 1);
    }
    cs->wsum += wi;
  }
  if (n > 0 && !(cs->wsum > 0))
    return sp_error_set(err, SP_EVALUE, "least squares: the weights are all zero (expected at least one "
                        "positive weight)");
  return SP_OK;
}

/* Values whose squares overflow (or underflow to subnormals) cannot give
   meaningful sums of squares, nor a representable (X'WX)^-1: refuse them,
   naming the variable, rather than drop the column as collinear. */
static int check_range(double amax, size_t n, const char *name, sp_error *err) {
  int large = amax > sqrt(DBL_MAX / (double)(n ? n : 1)), small = amax > 0 && amax < sqrt(DBL_MIN);
  if (!large && !small) return SP_OK;
  sp_error_set(err, SP_EVALUE, "least squares: values of %s are too %s to estimate reliably (|%s| up to %g); "
               "rescale it", name, large ? "large" : "small", name, amax);
  sp_error_var(err, name);
  return SP_EVALUE;
}

static int check_ranges(const colstats *cs, size_t n, size_t k, const sp_lsfit_opts *o, sp_error *err) {
  char name[64];
  for (size_t j = 0; j < k; j++) {
    if (o->names == NULL) snprintf(name, sizeof name, "column %zu of X", j + 1);
    int st = check_range(cs->amax[j], n, o->names ? o->names[j] : name, err);
    if (st) return st;
  }
  return check_range(cs->amax[k], n, o->yname ? o->yname : "y", err);
}

/* The first column whose values are all equal and non-zero, or k. */
static size_t constant_column(const gsl_matrix *X, const colstats *cs) {
  for (size_t j = 0; j < X->size2; j++)
    if (cs->same[j] != 0 && X->data[j] != 0 && X->size1 > 0) return j;
  return X->size2;
}

/* Centring on the constant column c (none when c == k): z_ij = x_ij - m_j,
   with m_j the weighted mean of column j (0 for the constant column, the
   exact value for any other constant column, so that it centres to exact
   zeros), and yc_i = y_i - my. */
static void centre(const gsl_matrix *X, const colstats *cs, size_t c, double *m, double *my) {
  size_t k = X->size2;
  memset(m, 0, k * sizeof *m);
  *my = 0;
  if (c == k) return;
  *my = cs->sum[k] / cs->wsum;
  for (size_t j = 0; j < k; j++) m[j] = cs->same[j] != 0 ? X->data[j] : cs->sum[j] / cs->wsum;
  m[c] = 0;
}

/* A = Z'WZ (k x k, full) and c = Z'W yc, accumulated by blocks of rows of
   sqrt(w) [z yc] so that the product runs in BLAS without a copy of X. */
enum { BLOCK = 128 };
static void cross_products(const gsl_matrix *X, const double *y, size_t ys, const double *w, const double *m,
                           double my, double *buf, double *A1, double *A, double *c) {
  size_t n = X->size1, k = X->size2, k1 = k + 1;
  memset(A1, 0, k1 * k1 * sizeof *A1);
  for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
    size_t rows = n - i0 < BLOCK ? n - i0 : BLOCK;
    for (size_t r = 0; r < rows; r++) {
      const double *x = X->data + (i0 + r) * X->tda;
      double s = w ? sqrt(w[i0 + r]) : 1.0;
      double *b = buf + r * k1;
      for (size_t j = 0; j < k; j++) b[j] = s * (x[j] - m[j]);
      b[k] = s * (y[(i0 + r) * ys] - my);
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k1, (int)rows, 1.0, buf, (int)k1, 1.0, A1, (int)k1);
  }
  for (size_t a = 0; a < k; a++) {
    for (size_t b = a; b < k; b++) A[a * k + b] = A[b * k + a] = A1[a * k1 + b];
    c[a] = A1[a * k1 + k];
  }
}

/* r = yc - Z g over the m kept columns idx (g in that order). */
static void residuals(const gsl_matrix *X, const double *y, size_t ys, const double *restrict m, double my,
                      const size_t *restrict idx, size_t rank, const double *restrict g, double *restrict r) {
  for (size_t i = 0; i < X->size1; i++) {
    const double *x = X->data + i * X->tda;
    double s = y[i * ys] - my;
    for (size_t q = 0; q < rank; q++) s -= (x[idx[q]] - m[idx[q]]) * g[q];
    r[i] = s;
  }
}

/* out = Z_kept' W r. */
static void cross_resid(const gsl_matrix *X, const double *r, const double *w, const double *restrict m,
                        const size_t *restrict idx, size_t rank, double *restrict out) {
  memset(out, 0, rank * sizeof *out);
  for (size_t i = 0; i < X->size1; i++) {
    const double *x = X->data + i * X->tda;
    double ri = w ? w[i] * r[i] : r[i];
    for (size_t q = 0; q < rank; q++) out[q] += (x[idx[q]] - m[idx[q]]) * ri;
  }
}

/* out = B v for the m x m matrix B (row-major, compact). */
static void symv(const double *B, size_t m, const double *v, double *out) {
  for (size_t a = 0; a < m; a++) {
    double s = 0;
    for (size_t q = 0; q < m; q++) s += B[a * m + q] * v[q];
    out[a] = s;
  }
}

int sp_lsfit_run(const gsl_matrix *X, const double *y, size_t ystride, const sp_lsfit_opts *opts, sp_lsfit *fit,
                 double *resid, sp_error *err) {
  static const sp_lsfit_opts defaults = {NULL, NULL, 0, NULL, NULL};
  const sp_lsfit_opts *o = opts ? opts : &defaults;
  const double *w = o->w;
  size_t n = X->size1, k = X->size2;
  sp_lsfit_clear(fit);
  if (ystride == 0) ystride = 1;
  if (!(o->tol >= 0 && o->tol < 1))
    return sp_error_set(err, SP_EVALUE, "least squares: tolerance %g is outside [0, 1)", o->tol);
  double tol = o->tol > 0 ? o->tol : SP_LSFIT_TOL;
  fit->n = n;
  fit->k = k;
  /* One scratch block: A, L, B (k x k each), A1 ((k+1)^2), the row block,
     m, c, g, tmp, t, ssq, same (k each), amax and sum (k + 1 each), the
     residuals unless the caller gives them, then idx and pos. */
  size_t k1 = k + 1;
  size_t nd = 3 * k * k + k1 * k1 + BLOCK * k1 + 9 * k + 2 + (resid ? 0 : n) + 1;
  double *A = malloc(nd * sizeof *A + 2 * k1 * sizeof(size_t));
  fit->keep = calloc(k1, sizeof *fit->keep);
  fit->b = malloc(k1 * sizeof *fit->b);
  if (A == NULL || fit->keep == NULL || fit->b == NULL) {
    free(A);
    sp_lsfit_clear(fit);
    return sp_error_set(err, SP_ENOMEM, "out of memory in least squares (%zu x %zu)", n, k);
  }
  double *L = A + k * k, *B = L + k * k, *A1 = B + k * k, *buf = A1 + k1 * k1, *m = buf + BLOCK * k1;
  double *c = m + k, *g = c + k, *tmp = g + k, *t = tmp + k;
  colstats cs = {t + k, t + k + k1, t + 2 * k1 + k, t + 2 * k1 + 2 * k, 0};
  double *r = resid ? resid : cs.same + k;
  size_t *idx = (size_t *)(void *)(A + nd), *pos = idx + k1;
  int st = scan(X, y, ystride, w, &cs, err);
  if (!st) st = check_ranges(&cs, n, k, o, err);
  if (st) {
    free(A);
    sp_lsfit_clear(fit);
    return st;
  }

  size_t cc = constant_column(X, &cs), rank;
  double my;
  for (;;) {
    centre(X, &cs, cc, m, &my);
    cross_products(X, y, ystride, w, m, my, buf, A1, A, c);
    /* Left-looking Cholesky over kept columns, the constant column first
       (it is orthogonal to the centred ones, so it never causes a drop),
       then in column order: L is rank x rank lower-triangular (rows k
       apart). */
    rank = 0;
    memset(fit->keep, 0, k * sizeof *fit->keep);
    for (size_t p = 0; p < k; p++) {
      size_t j = cc == k ? p : p == 0 ? cc : p <= cc ? p - 1 : p;
      double ref = o->scale ? o->scale[j] : cs.ssq[j];
      double v = A[j * k + j];
      for (size_t l = 0; l < rank; l++) {
        double s = A[idx[l] * k + j];
        for (size_t q = 0; q < l; q++) s -= L[l * k + q] * L[rank * k + q];
        L[rank * k + l] = s / L[l * k + l];
        v -= L[rank * k + l] * L[rank * k + l];
      }
      /* collinear, zero or NaN: drop */
      if (!(A[j * k + j] > 0) || !(v > tol * A[j * k + j]) || !(v > SP_LSFIT_RELTOL * ref)) continue;
      L[rank * k + rank] = sqrt(v);
      idx[rank++] = j;
      fit->keep[j] = 1;
    }
    /* Centring is a reparametrisation only with the constant column in the
       model; a caller's scale can make it negligible: fit uncentred then. */
    if (cc == k || fit->keep[cc]) break;
    cc = k;
  }
  fit->rank = rank;

  /* B = (L L')^{-1}: invert L (lower) into A, no longer needed, then
     B = Linv' Linv. */
  double *Li = A;
  memset(Li, 0, rank * rank * sizeof *Li);
  for (size_t j = 0; j < rank; j++) {
    Li[j * rank + j] = 1.0 / L[j * k + j];
    for (size_t i = j + 1; i < rank; i++) {
      double s = 0;
      for (size_t q = j; q < i; q++) s -= L[i * k + q] * Li[q * rank + j];
      Li[i * rank + j] = s / L[i * k + i];
    }
  }
  for (size_t a = 0; a < rank; a++)
    for (size_t b = 0; b <= a; b++) {
      double s = 0;
      for (size_t q = a; q < rank; q++) s += Li[q * rank + a] * Li[q * rank + b];
      B[a * rank + b] = B[b * rank + a] = s;
    }

  /* g = B c_kept, then one refinement step on the centred residuals. */
  for (size_t q = 0; q < rank; q++) tmp[q] = c[idx[q]];
  symv(B, rank, tmp, g);
  residuals(X, y, ystride, m, my, idx, rank, g, r);
  cross_resid(X, r, w, m, idx, rank, tmp);
  symv(B, rank, tmp, t);
  for (size_t q = 0; q < rank; q++) g[q] += t[q];
  residuals(X, y, ystride, m, my, idx, rank, g, r);
  double ssr = 0;
  for (size_t i = 0; i < n; i++) ssr += (w ? w[i] : 1.0) * r[i] * r[i];
  fit->ssr = ssr;

  /* Undo the centring: b_j = g_j except for the constant column,
     b_c = g_c + (my - sum_j m_j g_j) / kappa, that is b = T g with T the
     identity but for row c, t = (1, -m_j / kappa); the bread is T B T'. */
  for (size_t j = 0; j < k; j++) fit->b[j] = NAN;
  for (size_t q = 0; q < rank; q++) fit->b[idx[q]] = g[q];
  if (cc < k) {
    double kappa = X->data[cc], s = my;
    for (size_t q = 1; q < rank; q++) s -= m[idx[q]] * g[q];
    fit->b[cc] = g[0] + s / kappa;
    t[0] = 1.0;
    for (size_t q = 1; q < rank; q++) t[q] = -m[idx[q]] / kappa;
    symv(B, rank, t, tmp);  /* row 0 of T B (B symmetric) */
    double s00 = 0;
    for (size_t q = 0; q < rank; q++) s00 += tmp[q] * t[q];
    for (size_t q = 1; q < rank; q++) B[q] = B[q * rank] = tmp[q];
    B[0] = s00;
  }

  /* The bread over kept columns in column order. */
  fit->bread = gsl_matrix_calloc(rank ? rank : 1, rank ? rank : 1);
  if (fit->bread == NULL) {
    free(A);
    sp_lsfit_clear(fit);
    return sp_error_set(err, SP_ENOMEM, "out of memory in least squares");
  }
  if (rank == 0) fit->bread->size1 = fit->bread->size2 = 0;
  for (size_t j = 0, q = 0; j < k; j++)
    if (fit->keep[j]) pos[q++] = j;
  /* where each Cholesky position lands in column order */
  for (size_t q = 0; q < rank; q++) {
    size_t at = 0;
    while (pos[at] != idx[q]) at++;
    idx[q] = at;
  }
  for (size_t a = 0; a < rank; a++)
    for (size_t b = 0; b < rank; b++) gsl_matrix_set(fit->bread, idx[a], idx[b], B[a * rank + b]);

  free(A);
  return SP_OK;
}
