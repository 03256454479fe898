/*
** linalg.c: dense linear algebra over gsl_matrix (see linalg.h).
**
** LAPACK is called through LAPACKE's *_work functions in column-major layout
** directly on our row-major storage: a row-major n x m block with leading
** dimension tda is the column-major storage of its m x n transpose.  This
** avoids the transposed copies LAPACKE's row-major wrappers would allocate
** and lets every routine work on views (tda > size2).  Each function below
** says what that transpose means for it.
*/
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_blas.h>
#include <gsl/gsl_cblas.h>
#include <lapacke.h>

#include "spillover/linalg.h"

/* {======================================================================
** Shared checks
** ======================================================================= */

/* LAPACK takes int dimensions. */
static int too_big(size_t n, const char *op, sp_error *err) {
  if (n > (size_t)INT_MAX)
    return sp_error_set(err, SP_EVALUE, "%s: dimension %zu is too large for LAPACK (at most %d)",
                        op, n, INT_MAX);
  return SP_OK;
}

static int check_square(const gsl_matrix *A, const char *op, sp_error *err) {
  if (A->size1 != A->size2)
    return sp_error_set(err, SP_EDIM, "%s: matrix is %zux%zu (expected a square matrix)", op,
                        A->size1, A->size2);
  return too_big(A->size1, op, err);
}

/* NaN or Inf would make LAPACK return garbage or a misleading status. */
static int check_finite(const gsl_matrix *A, const char *op, sp_error *err) {
  for (size_t i = 0; i < A->size1; i++) {
    const double *row = A->data + i * A->tda;
    for (size_t j = 0; j < A->size2; j++)
      if (!isfinite(row[j]))
        return sp_error_set(err, SP_EVALUE, "%s: element [%zu,%zu] is %s (expected finite values)",
                            op, i + 1, j + 1, isnan(row[j]) ? "NaN" : "Inf");
  }
  return SP_OK;
}

/* Mirror the upper triangle into the lower one. */
static void fill_lower(gsl_matrix *A) {
  size_t n = A->size1;
  for (size_t i = 1; i < n; i++)
    for (size_t j = 0; j < i; j++) A->data[i * A->tda + j] = A->data[j * A->tda + i];
}

/* }====================================================================== */

/* {======================================================================
** Cross-products
** ======================================================================= */

int sp_linalg_crossprod(const gsl_matrix *X, gsl_matrix *XtX, sp_error *err) {
  size_t n = X->size1, p = X->size2;
  if (XtX->size1 != p || XtX->size2 != p)
    return sp_error_set(err, SP_EDIM, "crossprod: X is %zux%zu, so X'X is %zux%zu, but the output is %zux%zu",
                        n, p, p, p, XtX->size1, XtX->size2);
  if (too_big(n, "crossprod", err) || too_big(p, "crossprod", err)) return SP_EVALUE;
  if (p == 0) return SP_OK;
  if (n == 0) {
    gsl_matrix_set_zero(XtX);
    return SP_OK;
  }
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)p, (int)n, 1.0, X->data, (int)X->tda,
              0.0, XtX->data, (int)XtX->tda);
  fill_lower(XtX);
  return SP_OK;
}

int sp_linalg_crossprod2(const gsl_matrix *X, const gsl_matrix *Y, gsl_matrix *XtY, sp_error *err) {
  size_t n = X->size1, p = X->size2, k = Y->size2;
  if (Y->size1 != n)
    return sp_error_set(err, SP_EDIM, "crossprod: X is %zux%zu and Y is %zux%zu (expected the same number of rows)",
                        n, p, Y->size1, k);
  if (XtY->size1 != p || XtY->size2 != k)
    return sp_error_set(err, SP_EDIM, "crossprod: X'Y is %zux%zu, but the output is %zux%zu",
                        p, k, XtY->size1, XtY->size2);
  if (too_big(n, "crossprod", err) || too_big(p, "crossprod", err) || too_big(k, "crossprod", err))
    return SP_EVALUE;
  if (p == 0 || k == 0) return SP_OK;
  if (n == 0) {
    gsl_matrix_set_zero(XtY);
    return SP_OK;
  }
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p, (int)k, (int)n, 1.0, X->data,
              (int)X->tda, Y->data, (int)Y->tda, 0.0, XtY->data, (int)XtY->tda);
  return SP_OK;
}

/* }====================================================================== */

/* {======================================================================
** Cholesky
** ======================================================================= */

/* Column-major 'L' on our data is our upper triangle: dpotrf computes
   A = L L' there, and L' read row-major is the upper R with A = R'R. */
static int chol_factor(gsl_matrix *A, const char *op, sp_error *err) {
  int st = check_square(A, op, err);
  if (st) return st;
  if ((st = check_finite(A, op, err))) return st;
  size_t n = A->size1;
  if (n == 0) return SP_OK;
  lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int)n, A->data, (lapack_int)A->tda);
  if (info > 0)
    return sp_error_set(err, SP_ESINGULAR,
                        "%s: matrix is not positive definite (the leading minor of order %d is not; "
                        "expected a symmetric positive definite matrix)", op, (int)info);
  if (info < 0)
    return sp_error_set(err, SP_EVALUE, "%s: LAPACK dpotrf rejected argument %d", op, (int)-info);
  return SP_OK;
}

int sp_linalg_chol(gsl_matrix *A, sp_error *err) {
  int st = chol_factor(A, "chol", err);
  if (st) return st;
  for (size_t i = 1; i < A->size1; i++)
    memset(A->data + i * A->tda, 0, i * sizeof(double));
  return SP_OK;
}

int sp_linalg_chol_solve(const gsl_matrix *R, gsl_matrix *B, sp_error *err) {
  int st = check_square(R, "chol_solve", err);
  if (st) return st;
  size_t n = R->size1, k = B->size2;
  if (B->size1 != n)
    return sp_error_set(err, SP_EDIM, "chol_solve: factor is %zux%zu but the right-hand side is %zux%zu "
                        "(expected %zu rows)", n, n, B->size1, k, n);
  if ((st = too_big(k, "chol_solve", err))) return st;
  if (n == 0 || k == 0) return SP_OK;
  /* A = R'R: solve R' Y = B, then R X = Y. */
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasTrans, CblasNonUnit, (int)n, (int)k, 1.0,
              R->data, (int)R->tda, B->data, (int)B->tda);
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, (int)n, (int)k, 1.0,
              R->data, (int)R->tda, B->data, (int)B->tda);
  return SP_OK;
}

int sp_linalg_inv_spd(gsl_matrix *A, sp_error *err) {
  int st = chol_factor(A, "inverse (SPD)", err);
  if (st) return st;
  size_t n = A->size1;
  if (n == 0) return SP_OK;
  lapack_int info = LAPACKE_dpotri_work(LAPACK_COL_MAJOR, 'L', (lapack_int)n, A->data, (lapack_int)A->tda);
  if (info > 0)
    return sp_error_set(err, SP_ESINGULAR, "inverse (SPD): the Cholesky factor has a zero at diagonal %d",
                        (int)info);
  if (info < 0)
    return sp_error_set(err, SP_EVALUE, "inverse (SPD): LAPACK dpotri rejected argument %d", (int)-info);
  fill_lower(A);
  return SP_OK;
}

/* }====================================================================== */

/* {======================================================================
** LU: solve, inverse, log-determinant
** ======================================================================= */

/* The 1-norm (largest absolute column sum) of A. */
static double norm1(const gsl_matrix *A) {
  double best = 0.0;
  for (size_t j = 0; j < A->size2; j++) {
    double s = 0.0;
    for (size_t i = 0; i < A->size1; i++) s += fabs(A->data[i * A->tda + j]);
    if (s > best) best = s;
  }
  return best;
}

/* LU-factor the column-major view of `lu` (that is A', for our row-major A)
   and estimate rcond(A) in the 1-norm: the 1-norm of A is the infinity
   norm of A', hence norm 'I' for dgecon.  work holds 4n doubles and iwork
   n ints.  anorm is the 1-norm of A, taken before `lu` was overwritten. */
static int lu_factor_rcond(double *lu, size_t ld, size_t n, lapack_int *ipiv, double anorm,
                           double *work, lapack_int *iwork, double *rcond, const char *op,
                           sp_error *err) {
  lapack_int info = LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, (lapack_int)n, (lapack_int)n, lu,
                                        (lapack_int)ld, ipiv);
  if (info < 0) return sp_error_set(err, SP_EVALUE, "%s: LAPACK dgetrf rejected argument %d", op, (int)-info);
  if (info > 0) {
    if (rcond) *rcond = 0.0;
    return sp_error_set(err, SP_ESINGULAR, "%s: matrix is exactly singular (pivot %d of its LU "
                        "factorisation is zero)", op, (int)info);
  }
  double rc = 0.0;
  info = LAPACKE_dgecon_work(LAPACK_COL_MAJOR, 'I', (lapack_int)n, lu, (lapack_int)ld, anorm, &rc,
                             work, iwork);
  if (info < 0) return sp_error_set(err, SP_EVALUE, "%s: LAPACK dgecon rejected argument %d", op, (int)-info);
  if (rcond) *rcond = rc;
  if (!(rc >= SP_LINALG_RCOND_MIN))
    return sp_error_set(err, SP_ESINGULAR, "%s: matrix is computationally singular (reciprocal "
                        "condition number %.6g, expected at least %.6g)", op, rc, SP_LINALG_RCOND_MIN);
  return SP_OK;
}

int sp_linalg_solve(const gsl_matrix *A, const gsl_matrix *B, gsl_matrix *X, double *rcond,
                    sp_error *err) {
  int st = check_square(A, "solve", err);
  if (st) return st;
  size_t n = A->size1, k = B->size2;
  if (B->size1 != n)
    return sp_error_set(err, SP_EDIM, "solve: matrix is %zux%zu but the right-hand side is %zux%zu "
                        "(expected %zu rows)", n, n, B->size1, k, n);
  if (X->size1 != n || X->size2 != k)
    return sp_error_set(err, SP_EDIM, "solve: the solution is %zux%zu but the output is %zux%zu",
                        n, k, X->size1, X->size2);
  if (X == A) return sp_error_set(err, SP_EVALUE, "solve: the output may not be the matrix itself");
  if ((st = too_big(k, "solve", err))) return st;
  if ((st = check_finite(A, "solve", err))) return st;
  if (rcond) *rcond = INFINITY;
  if (n == 0) return SP_OK;

  /* One block: the LU copy (n*n), dgecon work (4n), then ipiv and iwork. */
  size_t nd = n * n + 4 * n;
  if (n > ((size_t)-1 / sizeof(double) - 4) / (n + 6))
    return sp_error_set(err, SP_ENOMEM, "solve: a %zux%zu system is too large", n, n);
  double *buf = malloc(nd * sizeof(double) + 2 * n * sizeof(lapack_int));
  if (buf == NULL) return sp_error_set(err, SP_ENOMEM, "solve: out of memory for a %zux%zu system", n, n);
  double *lu = buf, *work = buf + n * n;
  lapack_int *ipiv = (lapack_int *)(buf + nd), *iwork = ipiv + n;

  for (size_t i = 0; i < n; i++) memcpy(lu + i * n, A->data + i * A->tda, n * sizeof(double));
  st = lu_factor_rcond(lu, n, n, ipiv, norm1(A), work, iwork, rcond, "solve", err);
  if (st == SP_OK && k > 0) {
    /* lu holds A' = P L U column-major, so A = U' L' P'; read row-major,
       its lower triangle is U' and its strict upper triangle is L'. */
    if (X != B) gsl_matrix_memcpy(X, B);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)n, (int)k, 1.0,
                lu, (int)n, X->data, (int)X->tda);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasUnit, (int)n, (int)k, 1.0,
                lu, (int)n, X->data, (int)X->tda);
    /* X = P W with P = P_1 ... P_n: apply the interchanges last to first. */
    for (size_t i = n; i-- > 0;) {
      size_t r = (size_t)ipiv[i] - 1;
      if (r != i) gsl_matrix_swap_rows(X, i, r);
    }
  }
  free(buf);
  return st;
}

int sp_linalg_inv(gsl_matrix *A, sp_error *err) {
  int st = check_square(A, "inverse", err);
  if (st) return st;
  if ((st = check_finite(A, "inverse", err))) return st;
  size_t n = A->size1;
  if (n == 0) return SP_OK;

  double query = 0.0;
  lapack_int dummy = 0;
  lapack_int info = LAPACKE_dgetri_work(LAPACK_COL_MAJOR, (lapack_int)n, A->data, (lapack_int)A->tda,
                                        &dummy, &query, -1);
  size_t lwork = (info == 0 && query >= (double)n) ? (size_t)query : n;
  if (lwork < 4 * n) lwork = 4 * n;  /* the block also serves dgecon */
  if (n > ((size_t)-1 / sizeof(lapack_int)) / 2 || lwork > (size_t)INT_MAX)
    return sp_error_set(err, SP_ENOMEM, "inverse: a %zux%zu matrix is too large", n, n);
  double *work = malloc(lwork * sizeof(double) + 2 * n * sizeof(lapack_int));
  if (work == NULL) return sp_error_set(err, SP_ENOMEM, "inverse: out of memory for a %zux%zu matrix", n, n);
  lapack_int *ipiv = (lapack_int *)(work + lwork), *iwork = ipiv + n;

  /* inv(A') computed column-major is inv(A) read row-major. */
  st = lu_factor_rcond(A->data, A->tda, n, ipiv, norm1(A), work, iwork, NULL, "inverse", err);
  if (st == SP_OK) {
    info = LAPACKE_dgetri_work(LAPACK_COL_MAJOR, (lapack_int)n, A->data, (lapack_int)A->tda, ipiv,
                               work, (lapack_int)lwork);
    if (info > 0)
      st = sp_error_set(err, SP_ESINGULAR, "inverse: matrix is exactly singular (pivot %d is zero)", (int)info);
    else if (info < 0)
      st = sp_error_set(err, SP_EVALUE, "inverse: LAPACK dgetri rejected argument %d", (int)-info);
  }
  free(work);
  return st;
}

static int logdet(const gsl_matrix *A, double *logabsdet, int *sign, const char *op, sp_error *err) {
  int st = check_square(A, op, err);
  if (st) return st;
  if ((st = check_finite(A, op, err))) return st;
  size_t n = A->size1;
  *logabsdet = 0.0;
  *sign = 1;
  if (n == 0) return SP_OK;
  if (n > ((size_t)-1 / sizeof(double) - 1) / (n + 1))
    return sp_error_set(err, SP_ENOMEM, "%s: a %zux%zu matrix is too large", op, n, n);
  double *lu = malloc(n * n * sizeof(double) + n * sizeof(lapack_int));
  if (lu == NULL) return sp_error_set(err, SP_ENOMEM, "%s: out of memory for a %zux%zu matrix", op, n, n);
  lapack_int *ipiv = (lapack_int *)(lu + n * n);
  for (size_t i = 0; i < n; i++) memcpy(lu + i * n, A->data + i * A->tda, n * sizeof(double));
  /* det(A') = det(A), so factoring the transposed view is harmless. */
  lapack_int info = LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, (lapack_int)n, (lapack_int)n, lu, (lapack_int)n, ipiv);
  if (info < 0) {
    st = sp_error_set(err, SP_EVALUE, "%s: LAPACK dgetrf rejected argument %d", op, (int)-info);
  } else if (info > 0) {
    *logabsdet = -INFINITY;
    *sign = 0;
  } else {
    double s = 0.0;
    int sg = 1;
    for (size_t i = 0; i < n; i++) {
      double u = lu[i * n + i];
      if (u < 0) sg = -sg;
      if ((size_t)ipiv[i] != i + 1) sg = -sg;
      s += log(fabs(u));
    }
    *logabsdet = s;
    *sign = sg;
  }
  free(lu);
  return st;
}

int sp_linalg_logdet(const gsl_matrix *A, double *logabsdet, int *sign, sp_error *err) {
  return logdet(A, logabsdet, sign, "logdet", err);
}

int sp_linalg_det(const gsl_matrix *A, double *det, sp_error *err) {
  double la = 0.0;
  int sg = 0;
  int st = logdet(A, &la, &sg, "det", err);
  if (st) return st;
  *det = sg == 0 ? 0.0 : sg * exp(la);
  return SP_OK;
}

/* }====================================================================== */

/* {======================================================================
** QR with R's limited column pivoting (LINPACK dqrdc2)
** ======================================================================= */

#define QR_AT(X, i, j) ((X)->data[(i) * (X)->tda + (j)])

/* Move column l of X (and its bookkeeping) to the far right. */
static void qr_move_last(gsl_matrix *X, size_t l, size_t *perm, double *qn, double *on) {
  size_t p = X->size2, tail = p - l - 1;
  for (size_t i = 0; i < X->size1; i++) {
    double *row = X->data + i * X->tda, t = row[l];
    memmove(row + l, row + l + 1, tail * sizeof(double));
    row[p - 1] = t;
  }
  size_t pi = perm[l];
  double a = qn[l], b = on[l];
  memmove(perm + l, perm + l + 1, tail * sizeof(size_t));
  memmove(qn + l, qn + l + 1, tail * sizeof(double));
  memmove(on + l, on + l + 1, tail * sizeof(double));
  perm[p - 1] = pi;
  qn[p - 1] = a;
  on[p - 1] = b;
}

int sp_linalg_qr_pivot(gsl_matrix *X, gsl_vector *tau, size_t *perm, size_t *rank, double tol,
                       sp_error *err) {
  size_t n = X->size1, p = X->size2, k = n < p ? n : p;
  if (tau->size < k)
    return sp_error_set(err, SP_EDIM, "qr: tau has %zu elements for a %zux%zu matrix (expected at least %zu)",
                        tau->size, n, p, k);
  if (!(tol >= 0.0 && tol < 1.0))
    return sp_error_set(err, SP_EVALUE, "qr: tolerance %g is outside [0, 1)", tol);
  if (too_big(n, "qr", err) || too_big(p, "qr", err)) return SP_EVALUE;
  int st = check_finite(X, "qr", err);
  if (st) return st;
  for (size_t j = 0; j < p; j++) perm[j] = j;
  *rank = 0;
  for (size_t l = 0; l < k; l++) gsl_vector_set(tau, l, 0.0);
  if (k == 0) return SP_OK;

  /* qn: current norm of each column's unreduced part; on: its original
     norm (1 for a zero column, as in dqrdc2); w: scratch for the update. */
  double *qn = malloc(3 * p * sizeof(double));
  if (qn == NULL) return sp_error_set(err, SP_ENOMEM, "qr: out of memory for %zu columns", p);
  double *on = qn + p, *w = on + p;
  for (size_t j = 0; j < p; j++) {
    qn[j] = cblas_dnrm2((int)n, X->data + j, (int)X->tda);
    on[j] = qn[j] == 0.0 ? 1.0 : qn[j];
  }

  size_t good = p;  /* columns at positions >= good have been moved as negligible */
  for (size_t l = 0; l < k; l++) {
    while (l < good && qn[l] < on[l] * tol) {
      qr_move_last(X, l, perm, qn, on);
      good--;
    }
    if (l == n - 1) break;  /* a single row left: nothing to reflect */
    double *xl = &QR_AT(X, l, l);
    double nrm = cblas_dnrm2((int)(n - l), xl, (int)X->tda);
    if (nrm == 0.0) continue;
    if (*xl != 0.0) nrm = copysign(nrm, *xl);
    cblas_dscal((int)(n - l), 1.0 / nrm, xl, (int)X->tda);
    *xl += 1.0;
    /* Reflect the remaining columns: each gets x_j -= (u'x_j / u_l) u, done
       row-wise as one gemv and one rank-1 update. */
    size_t rest = p - l - 1;
    if (rest > 0) {
      cblas_dgemv(CblasRowMajor, CblasTrans, (int)(n - l), (int)rest, 1.0, xl + 1, (int)X->tda, xl,
                  (int)X->tda, 0.0, w, 1);
      double ul = *xl;
      for (size_t j = 0; j < rest; j++) w[j] = -w[j] / ul;
      cblas_dger(CblasRowMajor, (int)(n - l), (int)rest, 1.0, xl, (int)X->tda, w, 1, xl + 1, (int)X->tda);
      for (size_t j = l + 1; j < p; j++) {
        if (qn[j] == 0.0) continue;
        double r = fabs(QR_AT(X, l, j)) / qn[j];
        double tt = 1.0 - r * r;
        if (tt < 0.0) tt = 0.0;
        /* Downdating loses accuracy when most of the norm is gone
           (Bates's 1999 fix in dqrdc2): recompute it then. */
        if (tt < 1e-6)
          qn[j] = n - l - 1 > 0 ? cblas_dnrm2((int)(n - l - 1), &QR_AT(X, l + 1, j), (int)X->tda) : 0.0;
        else
          qn[j] *= sqrt(tt);
      }
    }
    gsl_vector_set(tau, l, *xl);
    *xl = -nrm;
  }
  *rank = good < n ? good : n;
  free(qn);
  return SP_OK;
}

int sp_linalg_qr_R(const gsl_matrix *QR, gsl_matrix *R, sp_error *err) {
  size_t n = QR->size1, p = QR->size2, k = n < p ? n : p;
  if (R->size1 != k || R->size2 != p)
    return sp_error_set(err, SP_EDIM, "qr: R of a %zux%zu factorisation is %zux%zu, but the output is %zux%zu",
                        n, p, k, p, R->size1, R->size2);
  for (size_t i = 0; i < k; i++)
    for (size_t j = 0; j < p; j++) QR_AT(R, i, j) = j >= i ? QR_AT(QR, i, j) : 0.0;
  return SP_OK;
}

int sp_linalg_qr_Q(const gsl_matrix *QR, const gsl_vector *tau, gsl_matrix *Q, sp_error *err) {
  size_t n = QR->size1, p = QR->size2, k = n < p ? n : p;
  if (Q->size1 != n || Q->size2 != k)
    return sp_error_set(err, SP_EDIM, "qr: Q of a %zux%zu factorisation is %zux%zu, but the output is %zux%zu",
                        n, p, n, k, Q->size1, Q->size2);
  if (tau->size < k)
    return sp_error_set(err, SP_EDIM, "qr: tau has %zu elements (expected at least %zu)", tau->size, k);
  gsl_matrix_set_identity(Q);
  if (k == 0) return SP_OK;
  double *w = malloc(k * sizeof(double));
  if (w == NULL) return sp_error_set(err, SP_ENOMEM, "qr: out of memory for %zu columns", k);
  /* Q = H_0 ... H_{k-1} I[, 1:k], applied last to first.  When H_l comes,
     columns before l are still unit vectors that it leaves alone, so it
     acts on the block Q[l:, l:]; each reflection is one gemv and one rank-1
     update that stream through the rows. */
  for (size_t l = k; l-- > 0;) {
    double ul = gsl_vector_get(tau, l);
    if (ul == 0.0) continue;
    size_t below = n - l - 1, m = k - l;
    double *ql = &QR_AT(Q, l, l);
    const double *u = below ? &QR_AT(QR, l + 1, l) : NULL;
    for (size_t j = 0; j < m; j++) w[j] = ul * ql[j];
    if (below)
      cblas_dgemv(CblasRowMajor, CblasTrans, (int)below, (int)m, 1.0, ql + Q->tda, (int)Q->tda, u,
                  (int)QR->tda, 1.0, w, 1);
    for (size_t j = 0; j < m; j++) {
      w[j] /= -ul;
      ql[j] += w[j] * ul;
    }
    if (below)
      cblas_dger(CblasRowMajor, (int)below, (int)m, 1.0, u, (int)QR->tda, w, 1, ql + Q->tda, (int)Q->tda);
  }
  free(w);
  return SP_OK;
}

/* }====================================================================== */

/* {======================================================================
** Symmetric eigen-decomposition
** ======================================================================= */

int sp_linalg_eigen_sym(const gsl_matrix *A, gsl_vector *values, gsl_matrix *vectors, sp_error *err) {
  int st = check_square(A, "eigen", err);
  if (st) return st;
  size_t n = A->size1;
  if (values->size != n)
    return sp_error_set(err, SP_EDIM, "eigen: matrix is %zux%zu but the values vector has %zu elements",
                        n, n, values->size);
  if (vectors && (vectors->size1 != n || vectors->size2 != n))
    return sp_error_set(err, SP_EDIM, "eigen: matrix is %zux%zu but the vectors output is %zux%zu",
                        n, n, vectors->size1, vectors->size2);
  if ((st = check_finite(A, "eigen", err))) return st;
  if (n == 0) return SP_OK;
  double amax = 0.0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) amax = fmax(amax, fabs(QR_AT(A, i, j)));
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (fabs(QR_AT(A, i, j) - QR_AT(A, j, i)) > 1e-12 * amax)
        return sp_error_set(err, SP_EVALUE, "eigen: matrix is not symmetric ([%zu,%zu] = %.10g but "
                            "[%zu,%zu] = %.10g; expected a symmetric matrix)", i + 1, j + 1,
                            QR_AT(A, i, j), j + 1, i + 1, QR_AT(A, j, i));

  /* Documented minimum workspaces of dsyevd with jobz = 'V'. */
  if (n > 32000) return sp_error_set(err, SP_EVALUE, "eigen: %zux%zu is too large", n, n);
  size_t lwork = 1 + 6 * n + 2 * n * n, liwork = 3 + 5 * n;
  size_t ncopy = vectors ? 0 : n * n;
  double *buf = malloc((lwork + n + ncopy) * sizeof(double) + liwork * sizeof(lapack_int));
  if (buf == NULL) return sp_error_set(err, SP_ENOMEM, "eigen: out of memory for a %zux%zu matrix", n, n);
  double *work = buf, *w = buf + lwork, *a = w + n;
  lapack_int *iwork = (lapack_int *)(a + ncopy);
  size_t lda = n;
  if (vectors) {
    if (vectors != A) gsl_matrix_memcpy(vectors, A);
    a = vectors->data;
    lda = vectors->tda;
  } else {
    for (size_t i = 0; i < n; i++) memcpy(a + i * n, A->data + i * A->tda, n * sizeof(double));
  }
  lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, vectors ? 'V' : 'N', 'L', (lapack_int)n, a,
                                        (lapack_int)lda, w, work, (lapack_int)lwork, iwork,
                                        (lapack_int)liwork);
  if (info > 0) {
    st = sp_error_set(err, SP_ECONV, "eigen: LAPACK dsyevd did not converge (%d off-diagonal elements "
                      "did not reach zero)", (int)info);
  } else if (info < 0) {
    st = sp_error_set(err, SP_EVALUE, "eigen: LAPACK dsyevd rejected argument %d", (int)-info);
  } else {
    for (size_t i = 0; i < n; i++) gsl_vector_set(values, i, w[i]);
    /* The eigenvectors are the columns of the column-major result, i.e.
       the rows of our view: transpose to make them columns. */
    if (vectors) gsl_matrix_transpose(vectors);
  }
  free(buf);
  return st;
}

/* }====================================================================== */
