/*
** conley.h: Conley (1999) spatial HAC covariance for linear models, with
** optional serial correlation within unit (the spatio-temporal version of
** Hsiang 2010 and conleyreg).
**
** With scores g_i = w_i e_i x_i the meat is
**   M = sum_{i,j: d_ij <= cutoff, same period} K(d_ij) g_i g_j'
**     + sum_{same unit, 0 < |t_i - t_j| <= lag} (1 - |t_i - t_j| / (lag + 1)) g_i g_j'
** where d_ij is the great-circle (haversine) distance on a sphere of radius
** SP_CONLEY_EARTH_KM and K the kernel: uniform 1, Bartlett 1 - d / cutoff.
** A cross-section (no time codes) pairs every observation with every other;
** a panel pairs observations of the same period only, and the serial term
** links the periods of a unit.  i = j is included (K = 1), so a cutoff below
** the smallest distance between distinct points gives the HC0 meat.
**
** The neighbours of each point come from a k-d tree over the points on the
** unit sphere (the chord length is monotone in the great-circle distance),
** one tree per period: O(n log n + pairs * k) time, O(n) extra memory.
** Nothing is n x n.  The caller owns everything passed in and out.
*/
#ifndef SPILLOVER_CONLEY_H
#define SPILLOVER_CONLEY_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_matrix.h>

#include "spillover/error.h"

/* The Earth radius of conleyreg's haversine distances, in km. */
#define SP_CONLEY_EARTH_KM 6371.01

typedef enum { SP_CONLEY_UNIFORM = 0, SP_CONLEY_BARTLETT } sp_conley_kernel;

typedef struct sp_conley_spec {
  const double *lat, *lon;  /* n coordinates in degrees (|lat| <= 90, |lon| <= 360) */
  double cutoff;            /* km, finite and > 0 */
  sp_conley_kernel kernel;
  const double *weights;    /* n WLS weights (>= 0), or NULL */
  /* Panels: n period codes (integers in time order, consecutive periods
     differ by 1) and n unit codes, both >= 0; time NULL for a cross-section.
     unit is read only when lag > 0. */
  const int32_t *time, *unit;
  long lag;                 /* serial lag within unit (>= 0; 0: none) */
  double factor;            /* the small-sample factor multiplying V */
} sp_conley_spec;

typedef struct sp_conley_info {
  size_t pairs;          /* ordered spatial pairs i != j within the cutoff */
  size_t serial_pairs;   /* ordered pairs linked by the serial term */
  double mean_neighbours; /* pairs / n */
} sp_conley_info;

/* The meat M (k x k, caller's) of X (n x k) and resid (n).  info may be NULL.
   Errors: SP_EDIM (sizes), SP_EVALUE (cutoff, kernel, lag, coordinates out of
   range, negative weights or codes), SP_EMISSING (non-finite coordinate,
   residual or weight, naming the row 1-based), SP_ENOMEM. */
int sp_conley_meat(const gsl_matrix *X, const double *resid, const sp_conley_spec *spec,
                   gsl_matrix *M, sp_conley_info *info, sp_error *err);

/* V (k x k, caller's) = spec->factor * B M B with B the bread ((X'X)^-1, or
   (X'WX)^-1 with weights).  Errors as sp_conley_meat, and SP_EDIM for B. */
int sp_conley_vcov(const gsl_matrix *X, const double *resid, const gsl_matrix *bread,
                   const sp_conley_spec *spec, gsl_matrix *V, sp_conley_info *info,
                   sp_error *err);

#endif
