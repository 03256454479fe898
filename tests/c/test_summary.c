/* test_summary.c: the summary of an experiment's draws (summary.h) on cases
   computed by hand: the type-7 quantiles it takes from frame_ops.h
   (sp_quantile_sorted), intervals that leave NaN out, the
   back-transforms, per-row intervals (reversed when the level decreases),
   cell sums in the caller's row order, unit-wise means of % changes, and the
   documented errors.  tests/lua/test_summary.lua checks the bits against
   the Lua loops this replaced on random panels. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/frame_ops.h"
#include "spillover/summary.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

static void near(double got, double want, double tol, const char *what) {
  int ok = fabs(got - want) <= tol * fmax(1, fabs(want));
  if (!ok) printf("  got %.17g want %.17g\n", got, want);
  check(ok, what);
}

static void quantiles(void) {
  double s[] = {1, 2, 3, 4};
  check(sp_quantile_sorted(s, 4, 0.25) == 1.75, "type 7: h = 0.75 between 1 and 2");
  check(sp_quantile_sorted(s, 4, 0.5) == 2.5, "median of four");
  check(sp_quantile_sorted(s, 4, 1) == 4 && sp_quantile_sorted(s, 4, 2) == 4, "p >= 1: the last");
  check(sp_quantile_sorted(s, 4, 0) == 1 && sp_quantile_sorted(s, 4, -3) == 1, "p <= 0: the first");
  check(isnan(sp_quantile_sorted(s, 0, 0.5)), "no value: NaN");
  double x[] = {NAN, 3, 1, NAN, 2, 2}, scratch[6], lo, hi;
  size_t m = sp_summary_interval(x, 6, 0.5, scratch, &lo, &hi);
  check(m == 4 && scratch[0] == 1 && scratch[3] == 3, "interval: the numbers, sorted");
  near(lo, 1.75, 0, "interval: quantile at 0.25 of 1 2 2 3");
  near(hi, 2.25, 0, "interval: quantile at 0.75 of 1 2 2 3");
  double all_nan[] = {NAN, NAN};
  check(sp_summary_interval(all_nan, 2, 0.9, scratch, &lo, &hi) == 0 && isnan(lo) && isnan(hi),
        "interval of NaN only: NaN");
}

static int cmp(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return (a > b) - (a < b);
}

/* The introsort against qsort on inputs that break naive quicksorts: sorted,
   reversed, all equal, few distinct values, organ pipes, random. */
static void sorting(void) {
  enum { N = 3000 };
  static double x[N], y[N];
  unsigned seed = 12345;
  int ok = 1;
  for (int kind = 0; kind < 6; kind++) {
    for (size_t n = 0; n <= N; n = n < 40 ? n + 1 : n * 3 / 2 + 1) {
      for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        double r = (double)(seed >> 8) / 16777216.0;
        x[i] = kind == 0 ? (double)i : kind == 1 ? (double)(n - i) : kind == 2 ? 7 : kind == 3 ? floor(r * 4)
             : kind == 4 ? (double)(i < n / 2 ? i : n - i) : r - 0.5;
      }
      memcpy(y, x, n * sizeof *x);
      sp_summary_sort(x, n);
      qsort(y, n, sizeof *y, cmp);
      for (size_t i = 0; i < n; i++) ok = ok && x[i] == y[i];
    }
  }
  check(ok, "introsort = qsort on sorted, reversed, equal, tied, organ-pipe and random inputs up to 3000");
}

static void levels(void) {
  sp_summary_scale id = {SP_SUMMARY_IDENTITY, 1, 0}, lg = {SP_SUMMARY_LOG, 1.5, 0}, l1 = {SP_SUMMARY_LOG1P, 1, 0},
                   as = {SP_SUMMARY_ASINH, 1.2, 0.1};
  near(sp_summary_level(&id, 3, 2), 6, 0, "identity: den p");
  near(sp_summary_level(&lg, log(4.0), 1), 6, 1e-15, "log: a e^p");
  near(sp_summary_level(&l1, log(5.0), 2), 8, 1e-15, "log1p: den (e^p - 1)");
  near(sp_summary_level(&as, 0.7, 1), 1.2 * sinh(0.7) + 0.1 * cosh(0.7), 1e-15, "asinh: a sinh p + b cosh p");
}

/* Three rows, two draws; the level is den * p with den = -1 on row 2. */
static void rows_and_cells(void) {
  double b0[] = {1, 2, 3}, b1[] = {2, 2, 5};
  double draws[] = {0.5, 1.5,   /* row 1 */
                    NAN, 2,     /* row 2: one draw missing */
                    1, 3};      /* row 3 */
  double den[] = {1, -1, 2};
  size_t start[] = {0, 3, 5}, rows[] = {2, 0, 1, 2, 1}, unit[] = {0, 1, 0};
  sp_summary_in in = {.n = 3, .b0 = b0, .b1 = b1, .ndraws = 2, .draws = draws, .level = 0.5, .has_scale = 1,
                      .scale = {SP_SUMMARY_IDENTITY, 1, 0}, .den0 = den, .den1 = den,
                      .ncell = 2, .cell_start = start, .cell_rows = rows,
                      .unitwise = SP_SUMMARY_MEAN_PCT, .unit = unit, .nunit = 2};
  sp_summary_row r[3];
  sp_summary_cell c[2];
  sp_error err;
  sp_error_clear(&err);
  check(sp_summary_run(&in, r, c, &err) == SP_OK, "a run succeeds");
  near(r[1].level_baseline, -2, 0, "row 2: baseline level den b0");
  near(r[2].level_scenario, 10, 0, "row 3: scenario level den b1");
  near(r[0].lo, 0.75, 1e-15, "row 1: interval of 0.5, 1.5 at 0.5 from 0.75");
  near(r[0].hi, 1.25, 1e-15, "row 1: to 1.25");
  check(r[1].lo == 2 && r[1].hi == 2, "row 2: the NaN draw left out");
  near(r[2].level_lo, 3, 1e-15, "row 3: level changes 2 and 6 at 0.5 from 3");
  near(r[2].level_hi, 5, 1e-15, "row 3: to 5");
  check(r[1].level_lo == -2 && r[1].level_hi == -2, "row 2: a decreasing level, one draw");
  /* cell 1 = rows 3, 1, 2: effects 2, 1, 0; level changes 4, 1, 0; base 6 + 1 - 2 */
  near(c[0].sum, 3, 0, "cell 1: sum of effects");
  near(c[0].change, 5, 0, "cell 1: sum of level changes");
  near(c[0].base, 5, 0, "cell 1: sum of baseline levels");
  /* units: 0 = rows 3 and 1 (change 5, base 7: 500/7 %), 1 = row 2 (0 %) */
  near(c[0].up, (500.0 / 7 + 0) / 2, 1e-14, "cell 1: mean over units of their % change");
  /* draws: sums of effects 1 + 0.5 + NaN, 3 + 1.5 + 2: the first is NaN and left out */
  check(c[0].sum_lo == 6.5 && c[0].sum_hi == 6.5, "cell 1: a draw with a NaN row has no sum");
  /* cell 2 = rows 2, 3: level changes per draw: (NaN, 2 * 1 = 2), (-2, 6) */
  check(c[1].change_lo == 4 && c[1].change_hi == 4, "cell 2: the interval of one sum");
  in.unitwise = SP_SUMMARY_WEIGHTED;
  double w[] = {1, 3, 3};
  in.weight = w;
  check(sp_summary_run(&in, r, c, &err) == SP_OK, "weighted run");
  near(c[0].up, (4 * 500.0 / 7 + 3 * 0) / 7, 1e-14, "cell 1: weighted by the units' summed weights");
}

static void errors(void) {
  double b[] = {1};
  size_t start[] = {0, 1}, rows[] = {1};
  sp_summary_in in = {.n = 1, .b0 = b, .b1 = b, .ndraws = 1, .draws = b, .level = 1.5};
  sp_summary_row r[1];
  sp_summary_cell c[1];
  sp_error err;
  sp_error_clear(&err);
  check(sp_summary_run(&in, r, c, &err) == SP_EVALUE && strstr(err.msg, "level must lie between 0 and 1"),
        "a level of 1.5 is refused");
  in.level = 0.9;
  in.ncell = 1;
  in.cell_start = start;
  in.cell_rows = rows;
  sp_error_clear(&err);
  check(sp_summary_run(&in, r, c, &err) == SP_EVALUE && strstr(err.msg, "cell 1 names row 2 of 1"),
        "a row out of range is refused");
}

int main(void) {
  quantiles();
  sorting();
  levels();
  rows_and_cells();
  errors();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
