/*
** lsfit.h: least squares with collinearity detection, the shared solver of
** every linear estimator (OLS, within, between, first differences, random
** effects after quasi-demeaning, 2SLS second stages).
**
** When X has a constant column, every other column and y are centred (their
** weighted means taken out, an exact reparametrisation undone at the end), so
** that a regressor such as 1e6 + N(0,1) is as well conditioned as N(0,1): the
** cross-product of the centred columns is factored by a Cholesky
** decomposition, the constant column first and the others in column order.
** Column j is dropped as collinear (so, as in R's lm, the later of two
** collinear columns goes) when the sum of squares left after projecting out
** the columns kept before it is
**   - at most tol times its sum of squares as factored (about its mean when
**     there is a constant column): what the factorisation can resolve, or
**   - at most SP_LSFIT_RELTOL = 1e-14 times its reference sum of squares: its
**     own uncentred one, or the caller's scale (R's lm: a norm ratio of 1e-7).
** So a column that varies by less than 1e-7 of its size is collinear with the
** constant, as in R, and one the fixed effects absorbed is found through its
** scale.  One step of iterative refinement on the centred residuals brings the
** coefficients to the accuracy of a QR solution; it takes a pass over the
** rows, taken only when the centred cross-product's 1-norm condition number
** exceeds SP_LSFIT_REFINE_COND (below, the step would change the coefficients
** by less than about 1e-12 of their size).
*/
#ifndef SPILLOVER_LSFIT_H
#define SPILLOVER_LSFIT_H

#include <stddef.h>

#include <gsl/gsl_matrix.h>

#include "spillover/error.h"
#include "spillover/rows.h"

typedef struct sp_lsfit {
  size_t n, k, rank;
  int *keep;          /* k flags: 1 kept, 0 dropped as collinear (owned) */
  double *b;          /* k coefficients, NaN where dropped (owned) */
  gsl_matrix *bread;  /* rank x rank (X'WX)^{-1} over kept columns, in column order (owned) */
  double ssr;         /* sum of (weighted) squared residuals; NaN when the fit deferred
                         it (sp_lsfit_opts.defer_ssr) */
  double yss;         /* sum of (weighted) squares of y, uncentred */
  /* The residuals as the fit computes them, for sp_lsfit_resid (owned):
     r = (y - centre[k]) - sum_j (x_j - centre[j]) g[j], g the coefficients
     of the centred columns (0 where dropped), centre the weighted means
     when X has a constant column, else zeros. */
  double *g, *centre;
} sp_lsfit;

/* Default relative tolerance of the numerical collinearity test. */
#define SP_LSFIT_TOL 1e-10
/* Fixed relative tolerance against the reference sums of squares. */
#define SP_LSFIT_RELTOL 1e-14
/* The condition number above which the solution is refined. */
#define SP_LSFIT_REFINE_COND 1e4

typedef struct sp_lsfit_opts {
  const double *w;            /* NULL or n weights >= 0, not all zero (not owned) */
  const double *scale;        /* NULL or k reference sums of squares for the collinearity
                                 test (e.g. of the columns before fixed effects were
                                 absorbed, so that a column the fixed effects absorb is
                                 found even though its remainder is rounding noise); by
                                 default the column's own uncentred (weighted) one */
  double tol;                 /* in [0, 1); 0 means SP_LSFIT_TOL */
  const char *const *names;   /* NULL or k column names, for messages (not owned) */
  const char *yname;          /* NULL or the name of y, for messages */
  int threads;                /* 1 or 2 (0 means 1): the passes over the rows run on two
                                 fixed chunks of rows, so the results are bit-identical */
  int defer_ssr;              /* skip the pass that sums the squared residuals (resid must
                                 be NULL, else SP_EVALUE; ssr is NaN): a caller whose
                                 covariance reads the residuals from sp_lsfit_resid gets the
                                 same sum, to the bit, from that pass (sp_vcov_info.ssr) */
} sp_lsfit_opts;

void sp_lsfit_init(sp_lsfit *fit);
void sp_lsfit_clear(sp_lsfit *fit);

/* Fit y (n values, ystride apart; 0 means 1) on the columns of X (n x k,
   row-major).  opts: NULL for no weights, no scale, the default tolerance.
   resid: NULL or n outputs (unweighted residuals y - Xb).
   SP_EVALUE, naming the element or the variable, when X or y holds NaN or Inf,
   a weight is negative or not finite, every weight is zero, tol is outside
   [0, 1), or the values of a column or of y are so large or small that their
   squares overflow or underflow (the message says to rescale it); SP_ENOMEM.
   Allocates one scratch block per call. */
int sp_lsfit_run(const gsl_matrix *X, const double *y, size_t ystride, const sp_lsfit_opts *opts, sp_lsfit *fit,
                 double *resid, sp_error *err);

/* sp_lsfit_run on rows read from a source (rows.h), never stored whole:
   column 0 of yX is y, columns 1..p-1 are X (k = p - 1).  The passes read
   SP_ROWS_BLOCK rows at a time and carry their sums across blocks, so the
   results are the same bits as sp_lsfit_run on the materialised [y X] (X
   its columns 1.., y its column 0 with ystride p), at any thread count;
   errors name the same element, rows counted over the whole source.  The
   source is read three or four times (the scan, the cross products unless
   the scan could fuse them, the refinement, the residuals), its first rows
   a few times more; n and k are yX's.  SP_EVALUE also when yX is NULL or
   has no columns. */
int sp_lsfit_rows(const sp_rows *yX, const sp_lsfit_opts *opts, sp_lsfit *fit, double *resid, sp_error *err);

/* The rows [r, x_{cols[0]}, ..., x_{cols[m-1]}] of a fit: its residuals
   (the bits sp_lsfit_rows would have written, at any thread count) beside
   columns of X (0-based among X's), read from the rows yX it was fitted on
   and never stored.  The covariance reads residuals and regressors in one
   pass from it (sp_vcov_compute_rows with resid NULL); at 1e7 rows that is
   80 MB of residuals neither written nor faulted in, and a pass saved.
   Keeps pointers to yX (which must outlive it); copies what it needs of
   fit.  Returns 0, or -1 when fit is not a fit of yX's k columns, yX->p or
   m + 1 exceeds SP_ROWS_MAXSEL, or a column is out of range. */
typedef struct sp_lsfit_resid {
  sp_rows rows;
  const sp_rows *yX;
  size_t k, cols[SP_ROWS_MAXSEL];
  int all;  /* cols are all of X's, in order: rows read in place */
  double g[SP_ROWS_MAXSEL], centre[SP_ROWS_MAXSEL];
} sp_lsfit_resid;

int sp_lsfit_resid_init(sp_lsfit_resid *r, const sp_lsfit *fit, const sp_rows *yX, const size_t *cols, size_t m);

#endif
