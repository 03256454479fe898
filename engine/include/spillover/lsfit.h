/*
** lsfit.h: least squares with collinearity detection, the shared solver of
** every linear estimator (OLS, within, between, first differences, random
** effects after quasi-demeaning, 2SLS second stages).
**
** The cross-product X'WX is factored by a Cholesky decomposition taken in
** column order; a column whose remaining variance, after projection on the
** columns kept before it, is at most tol times its scale is dropped as
** collinear (so, as in R's lm, the later of two collinear columns goes).  One
** step of iterative refinement on the residuals brings the coefficients to the
** accuracy of a QR solution for well-conditioned problems.
*/
#ifndef SPILLOVER_LSFIT_H
#define SPILLOVER_LSFIT_H

#include <stddef.h>

#include <gsl/gsl_matrix.h>

#include "spillover/error.h"

typedef struct sp_lsfit {
  size_t n, k, rank;
  int *keep;          /* k flags: 1 kept, 0 dropped as collinear (owned) */
  double *b;          /* k coefficients, NaN where dropped (owned) */
  gsl_matrix *bread;  /* rank x rank (X'WX)^{-1} over kept columns (owned) */
  double ssr;         /* sum of (weighted) squared residuals */
} sp_lsfit;

/* Default relative tolerance of the collinearity test. */
#define SP_LSFIT_TOL 1e-10

void sp_lsfit_init(sp_lsfit *fit);
void sp_lsfit_clear(sp_lsfit *fit);

/* Fit y (n values, ystride apart; 0 means 1) on the columns of X (n x k, row-major).  w: NULL or n positive
   weights.  scale: NULL or k reference sums of squares for the collinearity
   test (e.g. of the columns before fixed effects were absorbed, so that a
   column the fixed effects absorb is found even though its remainder is
   rounding noise); by default the column's own X'WX diagonal.  resid: NULL or
   n outputs (unweighted residuals y - Xb).  tol <= 0 means SP_LSFIT_TOL.
   SP_EVALUE, naming the element, when X or y holds NaN or Inf, a weight is
   negative or not finite, or tol is not finite (rows with missing values must
   be dropped first); SP_ENOMEM.  Allocates one scratch block per call. */
int sp_lsfit_run(const gsl_matrix *X, const double *y, size_t ystride, const double *w, const double *scale,
                 double tol, sp_lsfit *fit, double *resid, sp_error *err);

#endif
