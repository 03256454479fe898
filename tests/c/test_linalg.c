/*
** test_linalg.c: unit tests of the dense linear algebra core (linalg.c).
** Expected values come from R 4.2.2 (chol, solve, det, determinant, eigen,
** qr with LAPACK = FALSE, i.e. dqrdc2), printed with digits = 17.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_matrix.h>

#include "spillover/linalg.h"

static int passed, failed;

static void check(int ok, const char *what, const char *detail) {
  if (ok) {
    passed++;
    printf("PASS %s\n", what);
  } else {
    failed++;
    printf("FAIL %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  }
}

static void near(double got, double want, double rtol, const char *what) {
  char d[160];
  double scale = fabs(want) > 1e-300 ? fabs(want) : 1e-300;
  int ok = fabs(got - want) <= rtol * scale || fabs(got - want) <= rtol * 1e-12;
  snprintf(d, sizeof d, "got %.17g want %.17g", got, want);
  check(ok, what, d);
}

/* Every element of m against the row-major array want. */
static void near_mat(const gsl_matrix *m, const double *want, double rtol, double atol, const char *what) {
  double worst = 0.0;
  size_t wi = 0, wj = 0;
  int ok = 1;
  for (size_t i = 0; i < m->size1; i++)
    for (size_t j = 0; j < m->size2; j++) {
      double g = gsl_matrix_get(m, i, j), w = want[i * m->size2 + j], e = fabs(g - w);
      if (e > rtol * fabs(w) && e > atol) {
        ok = 0;
        if (e > worst) { worst = e; wi = i; wj = j; }
      }
    }
  char d[200];
  snprintf(d, sizeof d, "worst [%zu,%zu] got %.17g want %.17g", wi + 1, wj + 1,
           gsl_matrix_get(m, wi, wj), want[wi * m->size2 + wj]);
  check(ok, what, d);
}

static void check_err(int st, int code, const sp_error *e, const char *needle, const char *what) {
  char d[900];
  snprintf(d, sizeof d, "status %d (want %d), message '%s' (want '%s')", st, code, e->msg, needle);
  check(st == code && strstr(e->msg, needle) != NULL, what, d);
}

static gsl_matrix *from(size_t r, size_t c, const double *v) {
  gsl_matrix *m = gsl_matrix_alloc(r, c);
  memcpy(m->data, v, r * c * sizeof(double));
  return m;
}

/* A symmetric positive definite 3x3 and a general 3x3 (R: column-major
   input, shown here row by row). */
static const double SPD[9] = {4.385, 2.1, 0.61, 2.1, 5.2, 1.53, 0.61, 1.53, 3.27};
static const double GEN[9] = {2.385, 0.3, 1.9, -1.2, 4.1, 0.45, 0.7, -2.2, -3.3};
static const double RHS[6] = {1.5, 2, -2.25, 0, 0.8, 1};

static void test_crossprod(void) {
  /* X: 6x4 with a collinear third column (2*x1 - x2). */
  static const double X[24] = {
    1, 1.2, 0.8, 0.3,  1, 2.5, -0.5, -1.1,  1, 3.1, -1.1, 2.2,
    1, 4.7, -2.7, 0.9, 1, 5.3, -3.3, -0.4,  1, 6.8, -4.8, 1.7};
  static const double XtX[16] = {6, 23.6, -11.6, 3.6, 23.6, 113.72, -66.52, 18.1,
                                 -11.6, -66.52, 43.32, -10.9, 3.6, 18.1, -10.9, 10};
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *x = from(6, 4, X), *c = gsl_matrix_alloc(4, 4);
  check(sp_linalg_crossprod(x, c, &e) == SP_OK, "crossprod status", NULL);
  near_mat(c, XtX, 1e-13, 1e-13, "crossprod X'X (both triangles)");

  gsl_matrix *y = gsl_matrix_alloc(6, 2), *xty = gsl_matrix_alloc(4, 2);
  for (size_t i = 0; i < 6; i++) {
    gsl_matrix_set(y, i, 0, X[i * 4 + 1]);  /* column 2 of X */
    gsl_matrix_set(y, i, 1, 1.0);
  }
  check(sp_linalg_crossprod2(x, y, xty, &e) == SP_OK, "crossprod2 status", NULL);
  double want2[8];
  for (int i = 0; i < 4; i++) { want2[2 * i] = XtX[i * 4 + 1]; want2[2 * i + 1] = XtX[i * 4]; }
  near_mat(xty, want2, 1e-13, 1e-13, "crossprod2 X'Y");

  /* A view (tda > size2) must work too. */
  gsl_matrix_view v = gsl_matrix_submatrix(x, 0, 1, 6, 2);
  gsl_matrix *c2 = gsl_matrix_alloc(2, 2);
  check(sp_linalg_crossprod(&v.matrix, c2, &e) == SP_OK, "crossprod of a view", NULL);
  double want3[4] = {XtX[5], XtX[6], XtX[9], XtX[10]};
  near_mat(c2, want3, 1e-13, 1e-13, "crossprod of a view: values");

  int st = sp_linalg_crossprod(x, c2, &e);
  check_err(st, SP_EDIM, &e, "X is 6x4, so X'X is 4x4, but the output is 2x2", "crossprod non-conformable");
  gsl_matrix *y5 = gsl_matrix_alloc(5, 2);
  st = sp_linalg_crossprod2(x, y5, xty, &e);
  check_err(st, SP_EDIM, &e, "X is 6x4 and Y is 5x2", "crossprod2 non-conformable");
  gsl_matrix_free(x); gsl_matrix_free(c); gsl_matrix_free(y); gsl_matrix_free(xty);
  gsl_matrix_free(c2); gsl_matrix_free(y5);
}

static void test_chol(void) {
  static const double R[9] = {2.0940391591371923, 1.0028465756415290, 0.29130305292444414,
                              0, 2.0479987172173861, 0.60442798156762900,
                              0, 0, 1.67922879514823120};
  static const double INV[9] = {
    0.28273338478597215273, -0.11441339725600475, 0.00079056057560985963,
    -0.11441339725600474519, 0.26930831647454873, -0.10466347152290417233,
    0.00079056057560986462, -0.10466347152290417, 0.35463390503942548992};
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *a = from(3, 3, SPD);
  check(sp_linalg_chol(a, &e) == SP_OK, "chol status", NULL);
  near_mat(a, R, 1e-14, 1e-15, "chol upper factor (R's chol)");

  gsl_matrix *b = from(3, 2, RHS);
  check(sp_linalg_chol_solve(a, b, &e) == SP_OK, "chol_solve status", NULL);
  gsl_matrix *spd = from(3, 3, SPD), *ab = gsl_matrix_alloc(3, 2);
  gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, 1.0, spd, b, 0.0, ab);
  near_mat(ab, RHS, 1e-13, 1e-14, "chol_solve: A x reproduces b");

  gsl_matrix *inv = from(3, 3, SPD);
  check(sp_linalg_inv_spd(inv, &e) == SP_OK, "inv_spd status", NULL);
  near_mat(inv, INV, 1e-13, 1e-15, "inv_spd (R's solve)");

  /* Not positive definite: the 2x2 leading minor 1*1 - 2*2 < 0. */
  static const double NPD[9] = {1, 2, 0, 2, 1, 0, 0, 0, 1};
  gsl_matrix *np = from(3, 3, NPD);
  int st = sp_linalg_chol(np, &e);
  check_err(st, SP_ESINGULAR, &e, "not positive definite (the leading minor of order 2", "chol on a non-PD matrix");
  gsl_matrix_free(np);
  np = from(3, 3, NPD);
  st = sp_linalg_inv_spd(np, &e);
  check_err(st, SP_ESINGULAR, &e, "inverse (SPD): matrix is not positive definite", "inv_spd on a non-PD matrix");
  gsl_matrix *rect = gsl_matrix_calloc(2, 3);
  st = sp_linalg_chol(rect, &e);
  check_err(st, SP_EDIM, &e, "chol: matrix is 2x3 (expected a square matrix)", "chol on a 2x3 matrix");
  gsl_matrix *b4 = gsl_matrix_calloc(4, 1);
  st = sp_linalg_chol_solve(a, b4, &e);
  check_err(st, SP_EDIM, &e, "factor is 3x3 but the right-hand side is 4x1", "chol_solve non-conformable");
  gsl_matrix *nan = from(3, 3, SPD);
  gsl_matrix_set(nan, 1, 2, NAN);
  st = sp_linalg_chol(nan, &e);
  check_err(st, SP_EVALUE, &e, "element [2,3] is NaN", "chol on NaN");
  gsl_matrix_free(a); gsl_matrix_free(b); gsl_matrix_free(spd); gsl_matrix_free(ab);
  gsl_matrix_free(inv); gsl_matrix_free(np); gsl_matrix_free(rect); gsl_matrix_free(b4);
  gsl_matrix_free(nan);
}

static void test_lu(void) {
  static const double X[6] = {0.56480291617894041, 1.04124255687312339,
                              -0.39922594661305921, 0.33854299200977150,
                              0.14353306784060257, -0.30785599776070033};
  static const double INV[9] = {
    0.3988752608275230038, 0.10146826810524712, 0.24349203521807730,
    0.1159410148099140059, 0.29265166166217110, 0.10666096238994353,
    0.0073158939386228266, -0.17357753575245563, -0.32248778563794600};
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *g = from(3, 3, GEN), *b = from(3, 2, RHS), *x = gsl_matrix_alloc(3, 2);
  double rc = 0;
  check(sp_linalg_solve(g, b, x, &rc, &e) == SP_OK, "solve status", NULL);
  near_mat(x, X, 1e-13, 1e-15, "solve (R's solve(G, b))");
  check(rc > 0.01 && rc < 1, "solve reports rcond", NULL);
  near_mat(g, GEN, 0, 0, "solve leaves A unchanged");
  /* In place: X may be B. */
  check(sp_linalg_solve(g, b, b, NULL, &e) == SP_OK && gsl_matrix_equal(b, x), "solve in place (X = B)", NULL);

  gsl_matrix *gi = from(3, 3, GEN);
  check(sp_linalg_inv(gi, &e) == SP_OK, "inv status", NULL);
  near_mat(gi, INV, 1e-13, 1e-15, "inv (R's solve(G))");

  double la = 0, d = 0;
  int sg = 0;
  check(sp_linalg_logdet(g, &la, &sg, &e) == SP_OK, "logdet status", NULL);
  near(la, 3.4480300756807942, 1e-14, "logdet modulus (R's determinant)");
  check(sg == -1, "logdet sign is -1", NULL);
  check(sp_linalg_det(g, &d, &e) == SP_OK, "det status", NULL);
  near(d, -31.438399999999998, 1e-13, "det (R's det)");

  /* Exactly singular: row 3 = row 1 + row 2. */
  static const double SING[9] = {1, 2, 3, 4, 5, 6, 5, 7, 9};
  gsl_matrix *s = from(3, 3, SING);
  int st = sp_linalg_solve(s, b, x, &rc, &e);
  check_err(st, SP_ESINGULAR, &e, "solve: matrix is", "solve on a singular matrix");
  check(strstr(e.msg, "singular") != NULL, "solve singular message says singular", e.msg);
  check(sp_linalg_det(s, &d, &e) == SP_OK && fabs(d) < 1e-12, "det of a singular matrix is ~0", NULL);
  /* Nearly singular: no zero pivot, but rcond ~ 1e-17 (the test R uses). */
  static const double NEAR[4] = {1, 1, 1, 1 + 1e-16 * 4};
  gsl_matrix *nr = from(2, 2, NEAR), *b2 = gsl_matrix_calloc(2, 1), *x2 = gsl_matrix_alloc(2, 1);
  st = sp_linalg_solve(nr, b2, x2, &rc, &e);
  check_err(st, SP_ESINGULAR, &e, "computationally singular (reciprocal condition number", "solve on a nearly singular matrix");
  gsl_matrix_const_view sv = gsl_matrix_const_view_array(SING, 3, 3);
  gsl_matrix_memcpy(s, &sv.matrix);
  st = sp_linalg_inv(s, &e);
  check_err(st, SP_ESINGULAR, &e, "inverse: matrix is", "inv on a singular matrix");
  gsl_matrix *b4 = gsl_matrix_calloc(4, 2);
  st = sp_linalg_solve(g, b4, x, NULL, &e);
  check_err(st, SP_EDIM, &e, "solve: matrix is 3x3 but the right-hand side is 4x2", "solve non-conformable");
  gsl_matrix *rect = gsl_matrix_calloc(3, 2);
  st = sp_linalg_logdet(rect, &la, &sg, &e);
  check_err(st, SP_EDIM, &e, "logdet: matrix is 3x2 (expected a square matrix)", "logdet on 3x2");

  gsl_matrix_free(g); gsl_matrix_free(b); gsl_matrix_free(x); gsl_matrix_free(gi);
  gsl_matrix_free(s); gsl_matrix_free(nr); gsl_matrix_free(b2); gsl_matrix_free(x2);
  gsl_matrix_free(b4); gsl_matrix_free(rect);
}

static void test_qr(void) {
  static const double X[24] = {
    1, 1.2, 0.8, 0.3,  1, 2.5, -0.5, -1.1,  1, 3.1, -1.1, 2.2,
    1, 4.7, -2.7, 0.9, 1, 5.3, -3.3, -0.4,  1, 6.8, -4.8, 1.7};
  /* R: qr.R(qr(X)), with pivot 1 2 4 3 and rank 3. */
  static const double R[16] = {
    -2.4494897427831779, -9.6346596549471677, -1.46969384566990713, 4.7356801693808119,
    0, 4.5709225910458526, 0.86197040565031857, -4.5709225910458517,
    0, 0, -2.66402083696487324, -6.6263044082359544e-16,
    0, 0, 0, -7.6617806926365377e-16};
  static const double Q[24] = {
    -0.40824829046386313, -0.59798285332763235, -0.080871560636969250, -0.378084005897889319,
    -0.40824829046386307, -0.31357637430595364, 0.536672395950930081, 0.185460030197712372,
    -0.40824829046386307, -0.18231184552671720, -0.659584711599120355, 0.025365601152724192,
    -0.40824829046386307, 0.16772689788457984, -0.058342027823263726, 0.791403311307615986,
    -0.40824829046386307, 0.29899142666381606, 0.472114085549084295, -0.290671583222038565,
    -0.40824829046386307, 0.62715274861190695, -0.209988181440661226, -0.333473353538125183};
  static const double TAU[4] = {1.4082482904638631, 1.1402223718542295, 1.6405406162206422,
                                1.1134977771276677};
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *x = from(6, 4, X);
  gsl_vector *tau = gsl_vector_alloc(4);
  size_t perm[4], rank = 99;
  check(sp_linalg_qr_pivot(x, tau, perm, &rank, SP_LINALG_QR_TOL, &e) == SP_OK, "qr status", NULL);
  check(rank == 3, "qr: rank of a collinear 6x4 matrix is 3", NULL);
  check(perm[0] == 0 && perm[1] == 1 && perm[2] == 3 && perm[3] == 2,
        "qr: collinear column 3 moved last (R's pivot 1 2 4 3)", NULL);
  gsl_matrix *r = gsl_matrix_alloc(4, 4), *q = gsl_matrix_alloc(6, 4);
  check(sp_linalg_qr_R(x, r, &e) == SP_OK, "qr_R status", NULL);
  near_mat(r, R, 1e-12, 1e-13, "qr: R matches R's qr.R");
  check(sp_linalg_qr_Q(x, tau, q, &e) == SP_OK, "qr_Q status", NULL);
  /* Column 4 spans the rounding noise of the collinear column: compare the
     first rank columns with R, and check that all of Q is orthonormal. */
  gsl_matrix_view q3 = gsl_matrix_submatrix(q, 0, 0, 6, 3);
  double q3want[18];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 3; j++) q3want[i * 3 + j] = Q[i * 4 + j];
  near_mat(&q3.matrix, q3want, 1e-12, 1e-13, "qr: Q[, 1:rank] matches R's qr.Q");
  gsl_matrix *qtq = gsl_matrix_alloc(4, 4);
  gsl_blas_dgemm(CblasTrans, CblasNoTrans, 1.0, q, q, 0.0, qtq);
  static const double I4[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  near_mat(qtq, I4, 1e-13, 1e-13, "qr: Q'Q = I");
  gsl_matrix_free(qtq);
  /* tau[3] reflects rounding noise (the collinear column), like Q[, 4]. */
  gsl_matrix_view tv = gsl_matrix_view_vector(tau, 1, 3);
  near_mat(&tv.matrix, TAU, 1e-12, 1e-13, "qr: tau[1:rank] matches R's qraux");
  /* Q R reproduces the pivoted X. */
  gsl_matrix *qr = gsl_matrix_alloc(6, 4);
  gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, 1.0, q, r, 0.0, qr);
  double xp[24];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 4; j++) xp[i * 4 + j] = X[i * 4 + perm[j]];
  near_mat(qr, xp, 1e-12, 1e-12, "qr: Q R = X[, perm]");

  /* Full rank wide matrix (2x3): rank 2, no moves. */
  static const double W[6] = {2.385, 1.1, -0.7, 0.4, 3.3, 1.9};
  gsl_matrix *w = from(2, 3, W);
  gsl_vector *t2 = gsl_vector_alloc(2);
  size_t p3[3];
  check(sp_linalg_qr_pivot(w, t2, p3, &rank, SP_LINALG_QR_TOL, &e) == SP_OK && rank == 2 &&
        p3[0] == 0 && p3[1] == 1 && p3[2] == 2, "qr: 2x3 has rank 2, order kept", NULL);
  /* A zero column is rank deficient and moves last. */
  gsl_matrix *zc = gsl_matrix_calloc(4, 2);
  gsl_matrix_set(zc, 0, 1, 1.0); gsl_matrix_set(zc, 2, 1, 2.5);
  gsl_vector *t3 = gsl_vector_alloc(2);
  size_t p2[2];
  check(sp_linalg_qr_pivot(zc, t3, p2, &rank, SP_LINALG_QR_TOL, &e) == SP_OK && rank == 1 &&
        p2[0] == 1 && p2[1] == 0, "qr: a zero column is dropped", NULL);

  int st = sp_linalg_qr_pivot(x, t2, perm, &rank, SP_LINALG_QR_TOL, &e);
  check_err(st, SP_EDIM, &e, "tau has 2 elements for a 6x4 matrix (expected at least 4)", "qr: short tau");
  st = sp_linalg_qr_pivot(x, tau, perm, &rank, 1.5, &e);
  check_err(st, SP_EVALUE, &e, "tolerance 1.5 is outside [0, 1)", "qr: bad tolerance");
  gsl_matrix_free(x); gsl_vector_free(tau); gsl_matrix_free(r); gsl_matrix_free(q);
  gsl_matrix_free(qr); gsl_matrix_free(w); gsl_vector_free(t2); gsl_matrix_free(zc);
  gsl_vector_free(t3);
}

static void test_eigen(void) {
  static const double VALS[3] = {2.1967688108483543, 3.1402362293547239, 7.5179949597969262};
  static const double VECS[9] = {
    0.41920776914716096, 0.70855723586773878, -0.56763675866361052,
    -0.62743059115881983, -0.22579472506075771, -0.74521647553769965,
    0.65619791188692023, -0.66855320329365431, -0.34991558239243797};
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *a = from(3, 3, SPD), *v = gsl_matrix_alloc(3, 3);
  gsl_vector *l = gsl_vector_alloc(3);
  check(sp_linalg_eigen_sym(a, l, v, &e) == SP_OK, "eigen status", NULL);
  gsl_matrix_view lv = gsl_matrix_view_vector(l, 1, 3);
  near_mat(&lv.matrix, VALS, 1e-13, 0, "eigen values ascending (R's eigen reversed)");
  /* Eigenvectors are determined up to sign: compare column by column. */
  for (size_t j = 0; j < 3; j++) {
    double s = gsl_matrix_get(v, 0, j) * VECS[j] < 0 ? -1.0 : 1.0;
    for (size_t i = 0; i < 3; i++) gsl_matrix_set(v, i, j, s * gsl_matrix_get(v, i, j));
  }
  near_mat(v, VECS, 1e-12, 1e-14, "eigen vectors as columns (up to sign)");
  gsl_vector *l2 = gsl_vector_alloc(3);
  check(sp_linalg_eigen_sym(a, l2, NULL, &e) == SP_OK && fabs(gsl_vector_get(l2, 2) - VALS[2]) < 1e-12,
        "eigen values only", NULL);
  gsl_matrix *g = from(3, 3, GEN);
  int st = sp_linalg_eigen_sym(g, l, v, &e);
  check_err(st, SP_EVALUE, &e, "eigen: matrix is not symmetric ([1,2]", "eigen on a non-symmetric matrix");
  gsl_vector *l4 = gsl_vector_alloc(4);
  st = sp_linalg_eigen_sym(a, l4, v, &e);
  check_err(st, SP_EDIM, &e, "values vector has 4 elements", "eigen: wrong values length");
  gsl_matrix_free(a); gsl_matrix_free(v); gsl_vector_free(l); gsl_vector_free(l2);
  gsl_matrix_free(g); gsl_vector_free(l4);
}

/* Zero-size inputs must not crash and give the natural result. */
static void test_empty(void) {
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *x = gsl_matrix_alloc(3, 1);
  /* GSL refuses zero-size views, so build the headers by hand, as the
     Lua matrix does. */
  gsl_matrix x0 = {0, 1, 1, x->data, NULL, 0};
  gsl_matrix c0 = {1, 1, 1, x->data + 1, NULL, 0};
  gsl_matrix e0 = {0, 0, 0, NULL, NULL, 0};
  gsl_matrix_set(x, 1, 0, 7.0);
  check(sp_linalg_crossprod(&x0, &c0, &e) == SP_OK && gsl_matrix_get(x, 1, 0) == 0.0,
        "crossprod of a 0x1 matrix is a 1x1 zero", NULL);
  double la = 1, d = 0;
  int sg = 0;
  check(sp_linalg_logdet(&e0, &la, &sg, &e) == SP_OK && la == 0.0 && sg == 1, "logdet of 0x0", NULL);
  check(sp_linalg_det(&e0, &d, &e) == SP_OK && d == 1.0, "det of 0x0 is 1", NULL);
  check(sp_linalg_inv(&e0, &e) == SP_OK && sp_linalg_chol(&e0, &e) == SP_OK,
        "inv and chol of 0x0", NULL);
  gsl_matrix_free(x);
}

int main(void) {
  gsl_set_error_handler_off();
  test_crossprod();
  test_chol();
  test_lu();
  test_qr();
  test_eigen();
  test_empty();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
