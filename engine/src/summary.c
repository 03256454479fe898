/*
** summary.c: intervals and cell aggregates of an experiment's parameter
** draws (summary.h).  Every sum starts from 0 and runs over rows in the
** caller's order, and every formula keeps the Lua code's order of
** operations, so the results are the bits spillover.counterfactual wrote
** when it looped in Lua.
*/
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/frame_ops.h"
#include "spillover/mem.h"
#include "spillover/summary.h"

/* {======================================================================
** Sorting numbers (no NaN) in increasing order: an introsort (quicksort on
** the median of three, insertion sort below 16 values, heapsort past 2 log2 n
** levels), O(n log n) at worst and several times faster than qsort's
** comparator calls, which were half of the summary's time.  Equal values
** may come out in any order: a quantile of tied values is the same number
** (even for -0 and +0, since a + f (b - a) is +0 for any mix of them).
** ======================================================================= */

static void swap(double *a, double *b) {
  double t = *a;
  *a = *b;
  *b = t;
}

static void insertion_sort(double *x, size_t n) {
  for (size_t i = 1; i < n; i++) {
    double v = x[i];
    size_t j = i;
    for (; j > 0 && x[j - 1] > v; j--) x[j] = x[j - 1];
    x[j] = v;
  }
}

static void sift_down(double *x, size_t root, size_t n) {
  for (size_t c; (c = 2 * root + 1) < n; root = c) {
    if (c + 1 < n && x[c + 1] > x[c]) c++;
    if (!(x[c] > x[root])) return;
    swap(x + c, x + root);
  }
}

static void heap_sort(double *x, size_t n) {
  for (size_t i = n / 2; i-- > 0;) sift_down(x, i, n);
  for (size_t end = n; end-- > 1;) {
    swap(x, x + end);
    sift_down(x, 0, end);
  }
}

static void intro_sort(double *x, size_t n, int depth) {
  while (n > 16) {
    if (depth-- == 0) {
      heap_sort(x, n);
      return;
    }
    /* the median of the first, middle and last values becomes x[0], the
       pivot of Hoare's partition: both parts are then non-empty */
    double *a = x, *b = x + n / 2, *c = x + n - 1;
    double *m = *a < *b ? (*b < *c ? b : (*a < *c ? c : a)) : (*a < *c ? a : (*b < *c ? c : b));
    swap(x, m);
    double pivot = x[0];
    size_t i = 0, j = n - 1;
    for (;;) {
      while (x[i] < pivot) i++;
      while (x[j] > pivot) j--;
      if (i >= j) break;
      swap(x + i, x + j);
      i++;
      j--;
    }
    /* x[0..j] <= pivot <= x[j+1..n-1]; recurse into the smaller part */
    size_t left = j + 1;
    if (left < n - left) {
      intro_sort(x, left, depth);
      x += left;
      n -= left;
    } else {
      intro_sort(x + left, n - left, depth);
      n = left;
    }
  }
  insertion_sort(x, n);
}

void sp_summary_sort(double *x, size_t n) {
  int depth = 0;
  for (size_t k = n; k > 1; k >>= 1) depth += 2;
  intro_sort(x, n, depth);
}

/* }====================================================================== */

/* The numbers of x sorted into out; returns their count. */
static size_t sorted_numbers(const double *x, size_t n, double *out) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (x[i] == x[i]) out[m++] = x[i];
  sp_summary_sort(out, m);
  return m;
}

static void bounds(const double *sorted, size_t m, double level, double *lo, double *hi) {
  double a = (1 - level) / 2;
  *lo = sp_quantile_sorted(sorted, m, a);
  *hi = sp_quantile_sorted(sorted, m, 1 - a);
}

size_t sp_summary_interval(const double *x, size_t n, double level, double *scratch, double *lo, double *hi) {
  size_t m = sorted_numbers(x, n, scratch);
  bounds(scratch, m, level, lo, hi);
  return m;
}

double sp_summary_level(const sp_summary_scale *s, double p, double den) {
  double a = s->factor;
  switch (s->fn) {
  case SP_SUMMARY_IDENTITY:
    return den * p;
  case SP_SUMMARY_ASINH: {
    double x = exp(p), b = s->shift;
    return den * (a * (x - 1 / x) + b * (x + 1 / x)) / 2;
  }
  default:
    return den * (a * exp(p) - (s->fn == SP_SUMMARY_LOG1P ? 1 : 0));
  }
}

/* Work space of one run, allocated once: the draws' level changes (n x
   ndraws), the point estimate's effects and level changes (n each), the
   values of a cell per draw, the sorting scratch, and the unit-wise
   accumulators of the units of one cell. */
typedef struct work {
  double *change, *eff0, *chg0, *lbase;
  double *sum, *chg, *up, *sorted, *t;
  double *uchange, *ubase, *uw;  /* per local unit: ndraws (or 1) level changes, base, weight */
  size_t *slot, *order;          /* unit -> local index (SIZE_MAX: not in the cell); local -> unit */
} work;

/* The values of one cell for w columns of per-row values (eff, and chg with
   levels: n x w, row-major): sums of the effects and of the level changes,
   and the unit-wise mean of the % changes, into sum[w], chg[w], up[w].  Row
   by row, each column's accumulator adds that row's value, so every column
   is summed in the cell's row order. */
static void cell_values(const sp_summary_in *in, const size_t *rows, size_t k, const double *eff, const double *chg,
                        size_t w, work *ws, double *sum, double *csum, double *up) {
  for (size_t r = 0; r < w; r++) sum[r] = csum[r] = 0;
  int unitwise = chg != NULL && in->unitwise != SP_SUMMARY_SUM;
  size_t nloc = 0;
  for (size_t j = 0; j < k; j++) {
    size_t i = rows[j];
    const double *e = eff + i * w;
    for (size_t r = 0; r < w; r++) sum[r] += e[r];
    if (chg == NULL) continue;
    const double *c = chg + i * w;
    for (size_t r = 0; r < w; r++) csum[r] += c[r];
    if (!unitwise) continue;
    size_t u = in->unit[i], s = ws->slot[u];
    if (s == SIZE_MAX) {
      s = ws->slot[u] = nloc++;
      ws->order[s] = u;
      memset(ws->uchange + s * w, 0, w * sizeof *ws->uchange);
      ws->ubase[s] = ws->uw[s] = 0;
    }
    double *uc = ws->uchange + s * w;
    for (size_t r = 0; r < w; r++) uc[r] += c[r];
    ws->ubase[s] += ws->lbase[i];
    ws->uw[s] += in->weight ? in->weight[i] : 1;
  }
  if (!unitwise) return;
  for (size_t r = 0; r < w; r++) {
    double num = 0, den = 0;
    for (size_t s = 0; s < nloc; s++) {
      double base = ws->ubase[s], wt = in->unitwise == SP_SUMMARY_WEIGHTED ? ws->uw[s] : 1;
      if (base != 0 && wt == wt) {
        num = num + wt * 100 * ws->uchange[s * w + r] / fabs(base);
        den = den + wt;
      }
    }
    up[r] = den > 0 ? num / den : NAN;
  }
  for (size_t s = 0; s < nloc; s++) ws->slot[ws->order[s]] = SIZE_MAX;
}

/* Per-row levels, the draws' level changes and the rows' intervals. */
static void summarise_rows(const sp_summary_in *in, sp_summary_row *rows, work *ws) {
  size_t n = in->n, R = in->ndraws;
  for (size_t i = 0; i < n; i++) {
    sp_summary_row *o = rows + i;
    ws->eff0[i] = in->b1[i] - in->b0[i];
    double d0 = in->den0 ? in->den0[i] : 1, d1 = in->den1 ? in->den1[i] : 1;
    if (in->has_scale) {
      o->level_baseline = sp_summary_level(&in->scale, in->b0[i], d0);
      o->level_scenario = sp_summary_level(&in->scale, in->b1[i], d1);
      ws->lbase[i] = o->level_baseline;
      ws->chg0[i] = o->level_scenario - o->level_baseline;
    }
    if (R == 0) continue;
    const double *d = in->draws + i * R;
    if (in->has_scale) {
      double *l = ws->change + i * R;
      for (size_t r = 0; r < R; r++) l[r] = sp_summary_level(&in->scale, in->b0[i] + d[r], d1) - o->level_baseline;
    }
    size_t m = sp_summary_interval(d, R, in->level, ws->sorted, &o->lo, &o->hi);
    if (!in->has_scale) continue;
    /* The level is monotone in the effect: the sorted effects' level
       changes are sorted too, reversed when the level decreases. */
    for (size_t r = 0; r < m; r++)
      ws->t[r] = sp_summary_level(&in->scale, in->b0[i] + ws->sorted[r], d1) - o->level_baseline;
    if (m > 1 && ws->t[0] > ws->t[m - 1]) {
      for (size_t r = 0; r < m / 2; r++) {
        double x = ws->t[r];
        ws->t[r] = ws->t[m - 1 - r];
        ws->t[m - 1 - r] = x;
      }
    }
    bounds(ws->t, m, in->level, &o->level_lo, &o->level_hi);
  }
}

static void summarise_cells(const sp_summary_in *in, sp_summary_cell *cells, work *ws) {
  size_t R = in->ndraws;
  int level = in->has_scale, unitwise = level && in->unitwise != SP_SUMMARY_SUM;
  for (size_t c = 0; c < in->ncell; c++) {
    const size_t *cr = in->cell_rows + in->cell_start[c];
    size_t k = in->cell_start[c + 1] - in->cell_start[c];
    sp_summary_cell *o = cells + c;
    o->base = 0;
    if (level)
      for (size_t j = 0; j < k; j++) o->base += ws->lbase[cr[j]];
    o->up = NAN;
    cell_values(in, cr, k, ws->eff0, level ? ws->chg0 : NULL, 1, ws, &o->sum, &o->change, &o->up);
    o->sum_lo = o->sum_hi = o->change_lo = o->change_hi = o->up_lo = o->up_hi = NAN;
    if (R == 0) continue;
    cell_values(in, cr, k, in->draws, level ? ws->change : NULL, R, ws, ws->sum, ws->chg, ws->up);
    sp_summary_interval(ws->sum, R, in->level, ws->sorted, &o->sum_lo, &o->sum_hi);
    if (level) sp_summary_interval(ws->chg, R, in->level, ws->sorted, &o->change_lo, &o->change_hi);
    if (unitwise) sp_summary_interval(ws->up, R, in->level, ws->sorted, &o->up_lo, &o->up_hi);
  }
}

static void work_free(work *ws) {
  sp_mem_free(ws->change);
  free(ws->eff0);
  free(ws->chg0);
  free(ws->lbase);
  free(ws->sum);
  free(ws->chg);
  free(ws->up);
  free(ws->sorted);
  free(ws->t);
  sp_mem_free(ws->uchange);
  free(ws->ubase);
  free(ws->uw);
  free(ws->slot);
  free(ws->order);
}

int sp_summary_run(const sp_summary_in *in, sp_summary_row *rows, sp_summary_cell *cells, sp_error *err) {
  size_t n = in->n, R = in->ndraws;
  if (R > 0 && !(in->level > 0 && in->level < 1))
    return sp_error_set(err, SP_EVALUE, "summary: the level must lie between 0 and 1, got %g", in->level);
  int unitwise = in->has_scale && in->unitwise != SP_SUMMARY_SUM;
  size_t most = 0;  /* the rows of the largest cell */
  for (size_t c = 0; c < in->ncell; c++) {
    size_t k = in->cell_start[c + 1] - in->cell_start[c];
    most = k > most ? k : most;
    for (size_t j = 0; j < k; j++) {
      size_t i = in->cell_rows[in->cell_start[c] + j];
      if (i >= n) return sp_error_set(err, SP_EVALUE, "summary: cell %zu names row %zu of %zu", c + 1, i + 1, n);
    }
  }
  if (unitwise)
    for (size_t i = 0; i < n; i++)
      if (in->unit[i] >= in->nunit)
        return sp_error_set(err, SP_EVALUE, "summary: row %zu is in unit %zu of %zu", i + 1, in->unit[i] + 1, in->nunit);
  size_t w = R > 0 ? R : 1, nloc = unitwise ? (most < in->nunit ? most : in->nunit) : 0;
  size_t nn = n ? n : 1, nl = nloc ? nloc : 1;
  work ws = {0};
  int ok = (ws.eff0 = malloc(nn * sizeof(double))) && (ws.chg0 = malloc(nn * sizeof(double))) &&
           (ws.lbase = malloc(nn * sizeof(double))) &&
           (ws.sum = malloc(w * sizeof(double))) && (ws.chg = malloc(w * sizeof(double))) &&
           (ws.up = malloc(w * sizeof(double))) && (ws.sorted = malloc(w * sizeof(double))) &&
           (ws.t = malloc(w * sizeof(double))) &&
           (ws.ubase = malloc(nl * sizeof(double))) && (ws.uw = malloc(nl * sizeof(double))) &&
           (ws.order = malloc(nl * sizeof(size_t))) &&
           (ws.slot = malloc((unitwise ? in->nunit : 1) * sizeof(size_t)));
  /* w * nloc and n * R: sizes of the caller's own arrays, so no overflow */
  if (ok && unitwise) ok = (ws.uchange = sp_mem_doubles(nl * w)) != NULL;
  if (ok && in->has_scale && R > 0) ok = (ws.change = sp_mem_doubles(n * R)) != NULL;
  if (!ok) {
    work_free(&ws);
    return sp_error_set(err, SP_ENOMEM, "summary: out of memory for %zu rows x %zu draws", n, R);
  }
  if (unitwise)
    for (size_t u = 0; u < in->nunit; u++) ws.slot[u] = SIZE_MAX;
  summarise_rows(in, rows, &ws);
  summarise_cells(in, cells, &ws);
  work_free(&ws);
  return SP_OK;
}
