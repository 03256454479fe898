/*
** summary.h: the summary of an experiment's parameter draws (the hot part of
** spillover.counterfactual.summarise): intervals per row and, per cell of
** rows (a group in a period, a group over all periods, an entity), the sum
** of the effects, the sum of the level changes and the unit-wise mean of
** the % changes, for the point estimate and for every draw, with intervals
** over the draws.
**
** The arithmetic is the one the Lua code did, operation for operation and
** in the same order (sums run over a cell's rows in the order given,
** starting from 0), so results written from here are the same bytes.  The
** quantiles are sp_quantile_sorted's (frame_ops.h, type 7), the one
** definition: spillover.util.quantile calls it too (core.quantile).
**
** The caller owns everything passed in and out.
*/
#ifndef SPILLOVER_SUMMARY_H
#define SPILLOVER_SUMMARY_H

#include <stddef.h>

#include "spillover/error.h"

/* Sort the numbers x[0..n-1] (no NaN) in increasing order, in place. */
void sp_summary_sort(double *x, size_t n);

/* The interval at level (0 < level < 1) of the numbers among x[0..n-1]:
   their sp_quantile_sorted at (1 - level) / 2 and 1 - (1 - level) / 2, NaN when
   every value is NaN.  NaN values are left out; scratch (n doubles) receives
   the numbers, sorted.  Returns how many there are. */
size_t sp_summary_interval(const double *x, size_t n, double level, double *scratch, double *lo, double *hi);

/* How a prediction p on the model's scale becomes a level of the data
   column, on a row with denominator den (1 without one), with a the
   back-transform's factor (Duan's smearing, the normal correction or 1) and
   b its shift (asinh only):
     identity  den p
     log       den (a e^p)
     log1p     den (a e^p - 1)
     asinh     den (a (x - 1/x) + b (x + 1/x)) / 2, x = e^p: the mean of
               sinh(p + e_i) over the residuals is a sinh p + b cosh p with
               a = mean cosh e_i, b = mean sinh e_i. */
typedef enum { SP_SUMMARY_IDENTITY = 0, SP_SUMMARY_LOG, SP_SUMMARY_LOG1P, SP_SUMMARY_ASINH } sp_summary_fn;

typedef struct sp_summary_scale {
  sp_summary_fn fn;
  double factor, shift;
} sp_summary_scale;

double sp_summary_level(const sp_summary_scale *s, double p, double den);

/* The mean over the units of a cell of each unit's % level change (its
   level changes summed over the cell's rows, over the sum of its baseline
   levels): plain, or weighted by the units' summed weights. */
typedef enum { SP_SUMMARY_SUM = 0, SP_SUMMARY_MEAN_PCT, SP_SUMMARY_WEIGHTED } sp_summary_unitwise;

typedef struct sp_summary_in {
  size_t n;               /* rows */
  const double *b0, *b1;  /* n baseline and scenario predictions, model scale */
  size_t ndraws;
  const double *draws;    /* n x ndraws, row i's draws contiguous: the effect of
                             row i under draw r at draws[i ndraws + r] */
  double level;           /* of the intervals, 0 < level < 1 (read with draws) */
  /* Levels: with has_scale, a draw's level change on row i is
     level(b0 + effect, den1) - level(b0, den0). */
  int has_scale;
  sp_summary_scale scale;
  const double *den0, *den1;  /* n, or NULL for 1 */
  /* Cells: cell c is rows cell_rows[cell_start[c] .. cell_start[c + 1] - 1]
     (0-based, in the order their values are summed). */
  size_t ncell;
  const size_t *cell_start;   /* ncell + 1 */
  const size_t *cell_rows;
  /* Unit-wise means (with has_scale): row i belongs to unit unit[i] <
     nunit, and weighs weight[i] (NULL: 1) for SP_SUMMARY_WEIGHTED. */
  sp_summary_unitwise unitwise;
  const size_t *unit;
  size_t nunit;
  const double *weight;
} sp_summary_in;

/* Per row; the level fields with has_scale, the intervals with draws. */
typedef struct sp_summary_row {
  double level_baseline, level_scenario;  /* level(b0, den0), level(b1, den1) */
  double lo, hi;                          /* of the effect over the draws */
  double level_lo, level_hi;              /* of the level change over the draws */
} sp_summary_row;

/* Per cell: the point estimate (effects b1 - b0, level changes
   level_scenario - level_baseline) and intervals over the draws.  change,
   base (the sum of the baseline levels) with has_scale; up with a unit-wise
   mean (NaN when no unit has a non-zero baseline). */
typedef struct sp_summary_cell {
  double sum, change, base, up;
  double sum_lo, sum_hi, change_lo, change_hi, up_lo, up_hi;
} sp_summary_cell;

/* Fill rows[0..n-1] and cells[0..ncell-1].  SP_EVALUE for a level outside
   (0, 1), a row or unit number out of range; SP_ENOMEM. */
int sp_summary_run(const sp_summary_in *in, sp_summary_row *rows, sp_summary_cell *cells, sp_error *err);

#endif
