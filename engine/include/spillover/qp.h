/*
** qp.h: the quadratic program of the synthetic control's W step.
**
**   minimise || sum_j w_j p_j ||^2   subject to   w_j >= 0, sum_j w_j = 1,
**
** i.e. the point of minimum norm in the convex hull of J points p_j in R^K.
** With p_j = V^(1/2) (x_j - x_1) this is min (x_1 - X_0 w)' V (x_1 - X_0 w)
** over the simplex (Abadie, Diamond & Hainmueller 2010).  Solved exactly by
** Wolfe's (1976) active-set algorithm: a corral of affinely independent
** points, major cycles that add the point most opposed to the current
** minimiser, minor cycles that move to the corral's affine minimiser and drop
** points whose weight reaches 0.  Finite; tolerances guard only rounding.
**
** Ownership: the caller owns P and w; the function allocates its workspace
** and frees it before returning, whatever the outcome.
*/
#ifndef SPILLOVER_QP_H
#define SPILLOVER_QP_H

#include <stddef.h>

#include "spillover/error.h"

/* P: J x K row-major (point j is row j); J >= 1, K >= 1.  On success w
   (J entries) holds the weights and *norm2 the minimal squared norm.
   Errors: SP_EDIM (J or K is 0), SP_EVALUE (a non-finite coordinate, naming
   the point and coordinate), SP_ENOMEM. */
int sp_qp_simplex(const double *P, size_t J, size_t K, double *w, double *norm2, sp_error *err);

#endif
