/*
** lsfit.c: centred, ordered Cholesky least squares with collinearity
** detection and one step of iterative refinement (see lsfit.h).
**
** The rows come from a matrix or from a row source (rows.h): every pass
** walks its chunk in views (data, view_rows), the whole chunk in place for
** a matrix, SP_ROWS_BLOCK rows read into a buffer for a source, and one set
** of kernels carries its sums across the views, so both give the same bits.
*/
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

#include "spillover/inline.h"
#include "spillover/lsfit.h"
#include "spillover/rows.h"
#include "team.h"

void sp_lsfit_init(sp_lsfit *fit) { memset(fit, 0, sizeof *fit); }

void sp_lsfit_clear(sp_lsfit *fit) {
  free(fit->keep);
  free(fit->b);
  free(fit->g);
  free(fit->centre);
  if (fit->bread) gsl_matrix_free(fit->bread);
  sp_lsfit_init(fit);
}

static const char *nonfinite(double v) { return isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf"; }

/* Columns up to which the row loops below are specialised and the cross
   products accumulated row by row; wider designs use BLAS on row blocks. */
enum { KSMALL = 4, BLOCK = 128, PREFIX = 1024 };

/* What one pass over the rows learns: largest absolute value, weighted sum
   and weighted uncentred sum of squares (k + 1 entries each, y last),
   whether the column equals its first value on every row (1 or 0; k each),
   the weight total and the smallest weight. */
typedef struct {
  double *amax, *sum, *ssq, *same;
  double wsum, wmin;
} colstats;

/* The rows a fit reads: a matrix X with y beside it (ys apart), or a
   source whose column 0 is y and columns 1..k are X.  x0 is X's first row,
   which the constant-column test compares every row with. */
typedef struct {
  const gsl_matrix *X;
  const double *y;
  size_t ys;
  const sp_rows *src;
  const double *w, *x0;
  size_t n, k;
} data;

/* Rows [r0, r1) as the kernels read them: row i - r0 of X at x + (i - r0) *
   tda, of y at y[(i - r0) * ys], its weight w[i - r0] (w NULL: all 1). */
typedef struct {
  const double *x, *y, *w;
  size_t tda, ys, n;
} view;

/* The rows from r0 on, up to i1: a matrix's in place, all of them; a
   source's at most SP_ROWS_BLOCK, read into buf (SP_ROWS_BLOCK x (k + 1)).
   Returns where the view ends.  A pass walks its chunk view by view with
   its running sums carried across, so that the matrix and any source give
   the same sequence of additions. */
static size_t view_rows(const data *d, size_t r0, size_t i1, double *buf, view *v) {
  size_t r1 = i1, p = d->k + 1;
  if (d->src) {
    r1 = i1 - r0 < SP_ROWS_BLOCK ? i1 : r0 + SP_ROWS_BLOCK;
    d->src->read(d->src, r0, r1, buf, p);
    *v = (view){buf + 1, buf, d->w ? d->w + r0 : NULL, p, p, r1 - r0};
  } else {
    *v = (view){d->X->data + r0 * d->X->tda, d->y + r0 * d->ys, d->w ? d->w + r0 : NULL, d->X->tda, d->ys,
                r1 - r0};
  }
  return r1;
}

/* Where a value that is not finite, or a bad weight, sits: the slow scan
   behind a pass whose sums came out NaN or infinite (or whose smallest
   weight is negative).  SP_OK when every element is finite and every weight
   valid: the sums overflowed, which check_ranges reports. */
static int find_bad(const data *d, double *buf, sp_error *err) {
  for (size_t r0 = 0, r1; r0 < d->n; r0 = r1) {
    view v;
    r1 = view_rows(d, r0, d->n, buf, &v);
    for (size_t i = 0; i < v.n; i++) {
      const double *x = v.x + i * v.tda;
      double yi = v.y[i * v.ys], wi = v.w ? v.w[i] : 1.0;
      for (size_t j = 0; j < d->k; j++)
        if (!isfinite(x[j]))
          return sp_error_set(err, SP_EVALUE, "least squares: X[%zu,%zu] is %s (expected finite values; "
                              "drop rows with missing values first)", r0 + i + 1, j + 1, nonfinite(x[j]));
      if (!isfinite(yi))
        return sp_error_set(err, SP_EVALUE, "least squares: y[%zu] is %s (expected finite values; "
                            "drop rows with missing values first)", r0 + i + 1, nonfinite(yi));
      if (!(wi >= 0 && isfinite(wi))) {
        char s[32];
        snprintf(s, sizeof s, "%g", wi);
        return sp_error_set(err, SP_EVALUE, "least squares: weight %s at observation %zu (expected a finite "
                            "weight >= 0)", isfinite(wi) ? s : nonfinite(wi), r0 + i + 1);
      }
    }
  }
  return SP_OK;
}

/* The rows of v: the column statistics into cs when `stats`, and when
   `prods` the weighted cross products of z = [x - m, y - my] into A1's upper
   triangle ((k+1) x (k+1)).  The sums continue from cs's and A1's values
   (a chunk's start at zero), so that a chunk read in views adds the same
   terms in the same order as in one.  Branch-free, so that a NaN or Inf
   shows only in the sums (see find_bad).  k and the flags are constants
   where inlined, so that the sums stay in registers; with both flags the
   products are the uncentred ones (m = 0, the fused scan), their diagonal
   is ssq, and cs->ssq and A1's diagonal are the same sums.  The fused scan
   runs only when no column can be constant (scan), so it leaves the column
   sums and the constant-column test as they were: centring needs neither,
   and a NaN or Inf still shows in ssq. */
SP_INLINE void rows_pass(const view *v, const double *restrict x0, const size_t k, const double *m, double my,
                         colstats *cs, double *A1, const int stats, const int prods, const int weighted) {
  const size_t k1 = k + 1;
  double amax[KSMALL + 1], sum[KSMALL + 1], ssq[KSMALL + 1], A[(KSMALL + 1) * (KSMALL + 1)], z[KSMALL + 1];
  int diff[KSMALL];
  double wsum = stats ? cs->wsum : 0, wmin = INFINITY;
  SP_UNROLL
  for (size_t j = 0; j < k1; j++) {
    amax[j] = 0;
    sum[j] = stats ? cs->sum[j] : 0;
    ssq[j] = stats ? cs->ssq[j] : 0;
  }
  SP_UNROLL
  for (size_t j = 0; j < k; j++) diff[j] = 0;
  SP_UNROLL
  for (size_t j = 0; j < k1 * k1; j++) A[j] = prods ? A1[j] : 0;
  for (size_t i = 0; i < v->n; i++) {
    const double *restrict x = v->x + i * v->tda;
    double wi = weighted ? v->w[i] : 1.0;
    SP_UNROLL
    for (size_t j = 0; j < k1; j++) z[j] = j < k ? x[j] : v->y[i * v->ys];
    if (stats) {
      SP_UNROLL
      for (size_t j = 0; j < k1; j++) {
        double a = fabs(z[j]);
        amax[j] = a > amax[j] ? a : amax[j];
        if (!prods) {
          sum[j] += wi * z[j];
          ssq[j] += wi * z[j] * z[j];
        }
      }
      if (!prods)
        SP_UNROLL
        for (size_t j = 0; j < k; j++) diff[j] |= x[j] != x0[j];
      if (weighted) {
        wsum += wi;
        wmin = wi < wmin ? wi : wmin;
      }
    }
    if (prods) {
      if (!stats) {
        SP_UNROLL
        for (size_t j = 0; j < k1; j++) z[j] -= j < k ? m[j] : my;
      }
      SP_UNROLL
      for (size_t a = 0; a < k1; a++) {
        double za = wi * z[a];
        SP_UNROLL
        for (size_t b = a; b < k1; b++) A[a * k1 + b] += za * z[b];
      }
    }
  }
  if (stats) {
    if (!weighted) {
      wsum += (double)v->n;  /* whole numbers: exact in any grouping */
      wmin = v->n > 0 ? 1.0 : INFINITY;
    }
    SP_UNROLL
    for (size_t j = 0; j < k1; j++) {
      cs->amax[j] = amax[j] > cs->amax[j] ? amax[j] : cs->amax[j];
      cs->sum[j] = sum[j];
      cs->ssq[j] = prods ? A[j * k1 + j] : ssq[j];
    }
    SP_UNROLL
    for (size_t j = 0; j < k; j++) cs->same[j] = diff[j] ? 0 : cs->same[j];
    cs->wsum = wsum;
    cs->wmin = wmin < cs->wmin ? wmin : cs->wmin;
  }
  if (prods)
    SP_UNROLL
    for (size_t j = 0; j < k1 * k1; j++) A1[j] = A[j];
}

/* rows_pass with the column count and the flags as constants. */
SP_INLINE void rows_k(const view *v, const double *x0, const size_t k, const double *m, double my, colstats *cs,
                      double *A1) {
  if (v->w) {
    if (cs && A1) rows_pass(v, x0, k, m, my, cs, A1, 1, 1, 1);
    else if (cs) rows_pass(v, x0, k, m, my, cs, A1, 1, 0, 1);
    else rows_pass(v, x0, k, m, my, cs, A1, 0, 1, 1);
  } else {
    if (cs && A1) rows_pass(v, x0, k, m, my, cs, A1, 1, 1, 0);
    else if (cs) rows_pass(v, x0, k, m, my, cs, A1, 1, 0, 0);
    else rows_pass(v, x0, k, m, my, cs, A1, 0, 1, 0);
  }
}

/* The narrow designs (k <= KSMALL): cs and/or A1 as in rows_pass (m = 0 when
   both are given). */
static void rows_small(const view *v, const double *x0, size_t k, const double *m, double my, colstats *cs,
                       double *A1) {
  switch (k) {
    case 0: rows_k(v, x0, 0, m, my, cs, A1); break;
    case 1: rows_k(v, x0, 1, m, my, cs, A1); break;
    case 2: rows_k(v, x0, 2, m, my, cs, A1); break;
    case 3: rows_k(v, x0, 3, m, my, cs, A1); break;
    default: rows_k(v, x0, 4, m, my, cs, A1); break;
  }
}

/* The statistics of wide designs over the rows of v, one row at a time
   (k > KSMALL). */
static void stats_wide(const view *v, const double *x0, size_t k, colstats *cs) {
  for (size_t i = 0; i < v->n; i++) {
    const double *x = v->x + i * v->tda;
    double yi = v->y[i * v->ys], wi = v->w ? v->w[i] : 1.0;
    for (size_t j = 0; j < k; j++) {
      double a = fabs(x[j]);
      cs->amax[j] = a > cs->amax[j] ? a : cs->amax[j];
      cs->sum[j] += wi * x[j];
      cs->ssq[j] += wi * x[j] * x[j];
      cs->same[j] = x[j] != x0[j] ? 0 : cs->same[j];
    }
    double a = fabs(yi);
    cs->amax[k] = a > cs->amax[k] ? a : cs->amax[k];
    cs->sum[k] += wi * yi;
    cs->ssq[k] += wi * yi * yi;
    cs->wsum += wi;
    cs->wmin = wi < cs->wmin ? wi : cs->wmin;
  }
}

/* A1 += [Z yc]' W [Z yc] over the rows of v (wide designs), by blocks of
   BLOCK rows of sqrt(w) [z yc] in buf so that the product runs in BLAS.  A
   source's views hold SP_ROWS_BLOCK rows, a multiple of BLOCK: the blocks,
   and so the products, are the matrix's. */
static void products_wide(const view *v, size_t k, const double *m, double my, double *buf, double *A1) {
  size_t k1 = k + 1;
  for (size_t b0 = 0; b0 < v->n; b0 += BLOCK) {
    size_t rows = v->n - b0 < BLOCK ? v->n - b0 : BLOCK;
    for (size_t r = 0; r < rows; r++) {
      const double *x = v->x + (b0 + r) * v->tda;
      double s = v->w ? sqrt(v->w[b0 + r]) : 1.0;
      double *b = buf + r * k1;
      for (size_t j = 0; j < k; j++) b[j] = s * (x[j] - m[j]);
      b[k] = s * (v->y[(b0 + r) * v->ys] - my);
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k1, (int)rows, 1.0, buf, (int)k1, 1.0, A1, (int)k1);
  }
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
static size_t constant_column(const data *d, const colstats *cs) {
  for (size_t j = 0; j < d->k; j++)
    if (d->n > 0 && cs->same[j] != 0 && d->x0[j] != 0) return j;
  return d->k;
}

/* Centring on the constant column c (none when c == k): z_ij = x_ij - m_j,
   with m_j the weighted mean of column j (0 for the constant column, the
   exact value for any other constant column, so that it centres to exact
   zeros), and yc_i = y_i - my. */
static void centre(const data *d, const colstats *cs, size_t c, double *m, double *my) {
  size_t k = d->k;
  memset(m, 0, k * sizeof *m);
  *my = 0;
  if (c == k) return;
  *my = cs->sum[k] / cs->wsum;
  for (size_t j = 0; j < k; j++) m[j] = cs->same[j] != 0 ? d->x0[j] : cs->sum[j] / cs->wsum;
  m[c] = 0;
}

/* The residual of one row, as every residual here is computed (the fit's
   own passes and sp_lsfit_resid's rows give the same bits). */
SP_INLINE double resid_row(double y, const double *restrict x, const size_t k, const double *restrict m, double my,
                           const double *restrict gk) {
  double s = y - my;
  SP_UNROLL
  for (size_t j = 0; j < k; j++) s -= (x[j] - m[j]) * gk[j];
  return s;
}

/* The residuals r_i = yc_i - sum_j (x_ij - m_j) gk_j over the rows of v,
   gk in column order with zeros for the dropped columns (which leaves r_i
   exactly as without them: the values are finite).  out != NULL: out (k) +=
   Z' W r, r not stored (the refinement step); else r (v's rows, when not
   NULL) and *ssr += r' W r.  The sums continue from out's and *ssr's values,
   as in rows_pass. */
SP_INLINE void resid_pass(const view *v, const size_t k, const double *restrict m, double my,
                          const double *restrict gk, double *restrict r, double *restrict out, double *ssr) {
  double acc[KSMALL] = {0}, s2 = out ? 0 : *ssr;  /* narrow designs: Z'Wr in registers */
  for (size_t j = 0; out && k <= KSMALL && j < k; j++) acc[j] = out[j];
  for (size_t i = 0; i < v->n; i++) {
    const double *restrict x = v->x + i * v->tda;
    double s = resid_row(v->y[i * v->ys], x, k, m, my, gk), wi = v->w ? v->w[i] : 1.0;
    if (out && k <= KSMALL) {
      SP_UNROLL
      for (size_t j = 0; j < k; j++) acc[j] += (x[j] - m[j]) * (wi * s);
    } else if (out) {
      for (size_t j = 0; j < k; j++) out[j] += (x[j] - m[j]) * (wi * s);
    } else {
      if (r) r[i] = s;
      s2 += wi * s * s;
    }
  }
  if (out && k <= KSMALL) memcpy(out, acc, k * sizeof *out);
  if (!out) *ssr = s2;
}

/* {====================================================================
** The passes over the rows, in two fixed chunks (team.h): per-chunk sums
** are added in chunk order, so a fit gives the same bits on one thread as
** on two.
** ===================================================================== */

/* A chunk's statistics and sum of squared residuals, on cache lines of their
   own: each thread stores its chunk's after every block of rows, and two
   chunks' on one line would send the line between the cores each time. */
typedef struct {
  _Alignas(SP_TEAM_PAD * sizeof(double)) colstats cs;
  double ssr;
} chunk_sums;

typedef struct {
  const data *d;
  size_t lo, hi;                 /* the rows [lo, hi) are split */
  const double *m, *gk;
  double my;
  int stats, prods;              /* scan: statistics, cross products */
  double *r;                     /* residual pass: r or, when refine, out */
  int refine;
  chunk_sums ch[SP_TEAM_CHUNKS];
  double *A1[SP_TEAM_CHUNKS], *buf[SP_TEAM_CHUNKS], *out[SP_TEAM_CHUNKS];
  double *rbuf[SP_TEAM_CHUNKS];  /* a source's rows, SP_ROWS_BLOCK x (k + 1) per chunk */
} pass;

static void chunk_rows(const pass *p, int c, size_t *i0, size_t *i1) {
  sp_team_range(p->hi - p->lo, c, i0, i1);
  *i0 += p->lo;
  *i1 += p->lo;
}

/* Rows [i0, i1) view by view: the statistics into cs and/or the products
   into A1 (NULL: not wanted; m = 0 when both), rbuf a source's rows and
   buf the row block of wide designs. */
static void scan_rows(const pass *p, size_t i0, size_t i1, colstats *cs, double *A1, double *rbuf, double *buf) {
  const data *d = p->d;
  for (size_t r0 = i0; r0 < i1;) {
    view v;
    r0 = view_rows(d, r0, i1, rbuf, &v);
    if (d->k <= KSMALL) {
      rows_small(&v, d->x0, d->k, p->m, p->my, cs, A1);
      continue;
    }
    if (cs) stats_wide(&v, d->x0, d->k, cs);
    if (A1) products_wide(&v, d->k, p->m, p->my, buf, A1);
  }
}

static void scan_chunk(void *ctx, int c) {
  pass *p = ctx;
  size_t i0, i1;
  chunk_rows(p, c, &i0, &i1);
  scan_rows(p, i0, i1, p->stats ? &p->ch[c].cs : NULL, p->prods ? p->A1[c] : NULL, p->rbuf[c], p->buf[c]);
}

static void resid_chunk(void *ctx, int c) {
  pass *p = ctx;
  const data *d = p->d;
  size_t i0, i1;
  chunk_rows(p, c, &i0, &i1);
  double *out = p->refine ? p->out[c] : NULL;
  for (size_t r0 = i0, r1; r0 < i1; r0 = r1) {
    view v;
    r1 = view_rows(d, r0, i1, p->rbuf[c], &v);
    double *r = p->refine || p->r == NULL ? NULL : p->r + r0;
    switch (d->k) {  /* k a constant for the narrow designs */
      case 1: resid_pass(&v, 1, p->m, p->my, p->gk, r, out, &p->ch[c].ssr); break;
      case 2: resid_pass(&v, 2, p->m, p->my, p->gk, r, out, &p->ch[c].ssr); break;
      case 3: resid_pass(&v, 3, p->m, p->my, p->gk, r, out, &p->ch[c].ssr); break;
      case 4: resid_pass(&v, 4, p->m, p->my, p->gk, r, out, &p->ch[c].ssr); break;
      default: resid_pass(&v, d->k, p->m, p->my, p->gk, r, out, &p->ch[c].ssr); break;
    }
  }
}

static void colstats_zero(colstats *cs, size_t k) {
  memset(cs->amax, 0, (k + 1) * sizeof *cs->amax);
  memset(cs->sum, 0, (k + 1) * sizeof *cs->sum);
  memset(cs->ssq, 0, (k + 1) * sizeof *cs->ssq);
  for (size_t j = 0; j < k; j++) cs->same[j] = 1;
  cs->wsum = 0;
  cs->wmin = INFINITY;
}

static void colstats_add(colstats *to, const colstats *from, size_t k) {
  for (size_t j = 0; j <= k; j++) {
    to->amax[j] = from->amax[j] > to->amax[j] ? from->amax[j] : to->amax[j];
    to->sum[j] += from->sum[j];
    to->ssq[j] += from->ssq[j];
  }
  for (size_t j = 0; j < k; j++) to->same[j] = from->same[j] != 0 ? to->same[j] : 0;
  to->wsum += from->wsum;
  to->wmin = from->wmin < to->wmin ? from->wmin : to->wmin;
}

/* Run a pass over rows [lo, hi): the chunks' statistics and products start
   from zero and are added into cs and A1 (when given) in chunk order. */
static void run_scan(sp_team *tm, pass *p, size_t lo, size_t hi, colstats *cs, double *A1) {
  size_t k = p->d->k, k1 = k + 1;
  p->lo = lo;
  p->hi = hi;
  for (int c = 0; c < SP_TEAM_CHUNKS; c++) {
    colstats_zero(&p->ch[c].cs, k);
    memset(p->A1[c], 0, k1 * k1 * sizeof *p->A1[c]);
  }
  sp_team_run(tm, scan_chunk, p);
  for (int c = 0; c < SP_TEAM_CHUNKS; c++) {
    if (p->stats) colstats_add(cs, &p->ch[c].cs, k);
    if (p->prods)
      for (size_t j = 0; j < k1 * k1; j++) A1[j] += p->A1[c][j];
  }
}

/* }==================================================================== */

/* The scan: the column statistics, and for narrow designs with no constant
   column also the uncentred cross products into A1 (*fused = 1): a constant
   column must equal its non-zero first value on every row, so when none of
   the first PREFIX rows has one, the products that centring would need are
   never needed, and the one pass serves both.  NaN or Inf in X or y, or a
   negative or non-finite weight, would come out as a column silently dropped
   as collinear or as NaN coefficients: an error naming the element. */
static int scan(sp_team *tm, pass *p, colstats *cs, double *A1, int *fused, sp_error *err) {
  const data *d = p->d;
  size_t n = d->n, k = d->k, k1 = k + 1, pre = 0;
  colstats_zero(cs, k);
  memset(A1, 0, k1 * k1 * sizeof *A1);
  *fused = 0;
  if (k <= KSMALL) {
    static const double zero[KSMALL] = {0};
    pre = n < PREFIX ? n : PREFIX;
    p->m = zero;
    p->my = 0;
    scan_rows(p, 0, pre, cs, NULL, p->rbuf[0], p->buf[0]);
    int candidate = 0;
    for (size_t j = 0; j < k && pre > 0; j++) candidate |= cs->same[j] != 0 && d->x0[j] != 0;
    if (!candidate) {
      scan_rows(p, 0, pre, NULL, A1, p->rbuf[0], p->buf[0]);
      *fused = 1;
    }
  }
  p->stats = 1;
  p->prods = *fused;
  run_scan(tm, p, pre, n, cs, A1);
  int finite = isfinite(cs->wsum) && cs->wmin >= 0;
  for (size_t j = 0; j < k1; j++) finite &= isfinite(cs->sum[j]) && isfinite(cs->ssq[j]);
  if (!finite) {
    int st = find_bad(d, p->rbuf[0], err);
    if (st) return st;
  }
  if (n > 0 && !(cs->wsum > 0))
    return sp_error_set(err, SP_EVALUE, "least squares: the weights are all zero (expected at least one "
                        "positive weight)");
  return SP_OK;
}

/* A1 (upper triangle) = [Z yc]' W [Z yc], Z and yc centred on m and my. */
static void cross_products(sp_team *tm, pass *p, const double *m, double my, double *A1) {
  size_t k1 = p->d->k + 1;
  memset(A1, 0, k1 * k1 * sizeof *A1);
  p->m = m;
  p->my = my;
  p->stats = 0;
  p->prods = 1;
  run_scan(tm, p, 0, p->d->n, NULL, A1);
}

/* The residual pass over all rows with coefficients gk (see resid_pass):
   out = Z'Wr when out is given, else r (when p->r) and the returned ssr. */
static double residuals(sp_team *tm, pass *p, const double *m, double my, const double *gk, double *out) {
  size_t k = p->d->k;
  p->lo = 0;
  p->hi = p->d->n;
  p->m = m;
  p->my = my;
  p->gk = gk;
  p->refine = out != NULL;
  for (int c = 0; c < SP_TEAM_CHUNKS; c++) {
    memset(p->out[c], 0, k * sizeof *p->out[c]);
    p->ch[c].ssr = 0;
  }
  sp_team_run(tm, resid_chunk, p);
  if (out) {
    for (size_t j = 0; j < k; j++) out[j] = 0;
    for (int c = 0; c < SP_TEAM_CHUNKS; c++)
      for (size_t j = 0; j < k; j++) out[j] += p->out[c][j];
    return 0;
  }
  double ssr = 0;
  for (int c = 0; c < SP_TEAM_CHUNKS; c++) ssr += p->ch[c].ssr;
  return ssr;
}

/* out = B v for the m x m matrix B (row-major, compact). */
static void symv(const double *B, size_t m, const double *v, double *out) {
  for (size_t a = 0; a < m; a++) {
    double s = 0;
    for (size_t q = 0; q < m; q++) s += B[a * m + q] * v[q];
    out[a] = s;
  }
}

/* The fit of d (its x0 set here for a source); o not NULL. */
static int fit_data(data *d, const sp_lsfit_opts *o, sp_lsfit *fit, double *resid, sp_error *err) {
  size_t n = d->n, k = d->k;
  sp_lsfit_clear(fit);
  if (o->defer_ssr && resid != NULL)
    return sp_error_set(err, SP_EVALUE, "least squares: residuals asked for with their sum of squares deferred");
  if (!(o->tol >= 0 && o->tol < 1))
    return sp_error_set(err, SP_EVALUE, "least squares: tolerance %g is outside [0, 1)", o->tol);
  double tol = o->tol > 0 ? o->tol : SP_LSFIT_TOL;
  fit->n = n;
  fit->k = k;
  /* One scratch block: A, L, B (k x k each), A1 ((k+1)^2), m, c, g, gk,
     tmp, t, same (k each), amax, sum and ssq (k + 1 each); per chunk, after
     a cache line of padding, the same statistics, A1, the row block of wide
     designs, Z'Wr (k) and a source's rows; after another line, a source's
     first row (k + 1); then idx and pos. */
  size_t k1 = k + 1, rb = d->src ? SP_ROWS_BLOCK * k1 : 0;
  size_t per = SP_TEAM_PAD + 3 * k1 + 2 * k + k1 * k1 + BLOCK * k1 + rb;  /* sp_team_bufs says why the pad */
  size_t nd = 3 * k * k + k1 * k1 + 7 * k + 3 * k1 + SP_TEAM_CHUNKS * per + SP_TEAM_PAD + k1 + 1;
  double *A = malloc(nd * sizeof *A + 2 * k1 * sizeof(size_t));
  fit->keep = calloc(k1, sizeof *fit->keep);
  fit->b = malloc(k1 * sizeof *fit->b);
  fit->g = malloc(k1 * sizeof *fit->g);
  fit->centre = malloc(k1 * sizeof *fit->centre);
  if (A == NULL || fit->keep == NULL || fit->b == NULL || fit->g == NULL || fit->centre == NULL) {
    free(A);
    sp_lsfit_clear(fit);
    return sp_error_set(err, SP_ENOMEM, "out of memory in least squares (%zu x %zu)", n, k);
  }
  double *L = A + k * k, *B = L + k * k, *A1 = B + k * k, *m = A1 + k1 * k1;
  double *c = m + k, *g = c + k, *gk = g + k, *tmp = gk + k, *t = tmp + k;
  colstats cs = {t + k, t + k + k1, t + k + 2 * k1, t + k + 3 * k1, 0, 0};
  pass ps = {.d = d, .r = resid};
  for (int ch = 0; ch < SP_TEAM_CHUNKS; ch++) {
    double *q = cs.same + k + (size_t)ch * per + SP_TEAM_PAD;
    ps.ch[ch].cs = (colstats){q, q + k1, q + 2 * k1, q + 3 * k1, 0, 0};
    ps.out[ch] = q + 3 * k1 + k;
    ps.A1[ch] = ps.out[ch] + k;
    ps.buf[ch] = ps.A1[ch] + k1 * k1;
    ps.rbuf[ch] = ps.buf[ch] + BLOCK * k1;
  }
  if (d->src && n > 0) {  /* the first row, y first */
    double *row0 = cs.same + k + SP_TEAM_CHUNKS * per + SP_TEAM_PAD;  /* read by both chunks */
    d->src->read(d->src, 0, 1, row0, k1);
    d->x0 = row0 + 1;
  }
  size_t *idx = (size_t *)(void *)(A + nd), *pos = idx + k1;
  /* A second thread only where it pays for its start; the chunks, and so
     the results, are the same either way. */
  sp_team tm;
  sp_team_start(&tm, n >= SP_TEAM_MIN_ROWS ? o->threads : 1);
  int fused;
  int st = scan(&tm, &ps, &cs, A1, &fused, err);
  if (!st) st = check_ranges(&cs, n, k, o, err);
  if (st) {
    sp_team_stop(&tm);
    free(A);
    sp_lsfit_clear(fit);
    return st;
  }
  fit->yss = cs.ssq[k];

  size_t cc = constant_column(d, &cs), rank;
  double my;
  for (;;) {
    centre(d, &cs, cc, m, &my);
    /* the scan's products are the uncentred ones, what no constant column needs */
    if (!(fused && cc == k)) cross_products(&tm, &ps, m, my, A1);
    fused = 0;
    for (size_t a = 0; a < k; a++) {
      for (size_t b = a; b < k; b++) A[a * k + b] = A[b * k + a] = A1[a * k1 + b];
      c[a] = A1[a * k1 + k];
    }
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

  /* ||A||_1 over the kept columns, for the condition number below. */
  double anorm = 0;
  for (size_t q = 0; q < rank; q++) {
    double s = 0;
    for (size_t l = 0; l < rank; l++) s += fabs(A[idx[l] * k + idx[q]]);
    anorm = s > anorm ? s : anorm;
  }

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

  /* g = B c_kept, then one refinement step on the centred residuals when
     the normal equations may have lost digits that matter: their solution
     is off by about cond_1(A) eps, so below SP_LSFIT_REFINE_COND the step
     would move g by less than 1e-12 of itself and its pass over the rows is
     saved. */
  for (size_t q = 0; q < rank; q++) tmp[q] = c[idx[q]];
  symv(B, rank, tmp, g);
  memset(gk, 0, k * sizeof *gk);
  for (size_t q = 0; q < rank; q++) gk[idx[q]] = g[q];
  double bnorm = 0;
  for (size_t q = 0; q < rank; q++) {
    double s = 0;
    for (size_t l = 0; l < rank; l++) s += fabs(B[l * rank + q]);
    bnorm = s > bnorm ? s : bnorm;
  }
  if (!(anorm * bnorm <= SP_LSFIT_REFINE_COND)) {  /* NaN refines */
    residuals(&tm, &ps, m, my, gk, t);
    for (size_t q = 0; q < rank; q++) tmp[q] = t[idx[q]];
    symv(B, rank, tmp, t);
    for (size_t q = 0; q < rank; q++) gk[idx[q]] = g[q] += t[q];
  }
  fit->ssr = o->defer_ssr ? NAN : residuals(&tm, &ps, m, my, gk, NULL);
  /* No column kept: the residuals are y itself (uncentred, as the constant
     column was dropped too), so the ssr is the scan's yss exactly, not the
     same sum taken in another grouping (a within R2 of -2e-16). */
  if (rank == 0) fit->ssr = fit->yss;
  sp_team_stop(&tm);
  memcpy(fit->g, gk, k * sizeof *gk);
  memcpy(fit->centre, m, k * sizeof *m);
  fit->centre[k] = my;

  /* Undo the centring: b_j = g_j except for the constant column,
     b_c = g_c + (my - sum_j m_j g_j) / kappa, that is b = T g with T the
     identity but for row c, t = (1, -m_j / kappa); the bread is T B T'. */
  for (size_t j = 0; j < k; j++) fit->b[j] = NAN;
  for (size_t q = 0; q < rank; q++) fit->b[idx[q]] = g[q];
  if (cc < k) {
    double kappa = d->x0[cc], s = my;
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

int sp_lsfit_run(const gsl_matrix *X, const double *y, size_t ystride, const sp_lsfit_opts *opts, sp_lsfit *fit,
                 double *resid, sp_error *err) {
  static const sp_lsfit_opts defaults = {NULL, NULL, 0, NULL, NULL, 1, 0};
  const sp_lsfit_opts *o = opts ? opts : &defaults;
  data d = {X, y, ystride ? ystride : 1, NULL, o->w, X->data, X->size1, X->size2};
  return fit_data(&d, o, fit, resid, err);
}

int sp_lsfit_rows(const sp_rows *yX, const sp_lsfit_opts *opts, sp_lsfit *fit, double *resid, sp_error *err) {
  static const sp_lsfit_opts defaults = {NULL, NULL, 0, NULL, NULL, 1, 0};
  const sp_lsfit_opts *o = opts ? opts : &defaults;
  sp_lsfit_clear(fit);
  if (yX == NULL || yX->p == 0)
    return sp_error_set(err, SP_EVALUE, "least squares: the row source has no columns (expected y, then X)");
  data d = {NULL, NULL, 0, yX, o->w, NULL, yX->n, yX->p - 1};
  return fit_data(&d, o, fit, resid, err);
}

/* The residual of each of n rows [y x] (ld doubles apart) over its y. */
SP_INLINE void resid_block(double *io, size_t ld, size_t n, const size_t k, const double *m, double my,
                           const double *gk) {
  for (size_t i = 0; i < n; i++) io[i * ld] = resid_row(io[i * ld], io + i * ld + 1, k, m, my, gk);
}

/* Rows [r0, r1) of [r, x_cols]: yX's rows read, each y replaced by its
   residual (resid_block with k a constant for the narrow designs).  When
   cols are all of X in order (no column dropped) the rows are read straight
   into out; else onto the stack (at most 256 x 64 doubles, 128 KB, as
   sp_demean_within's) and the columns copied. */
static void resid_read(const sp_rows *src, size_t r0, size_t r1, double *out, size_t ldo) {
  const sp_lsfit_resid *r = src->ctx;
  size_t k = r->k, p = k + 1, m = src->p - 1, n = r1 - r0;
  double buf[SP_ROWS_BLOCK * SP_ROWS_MAXSEL];
  double *io = r->all ? out : buf;
  size_t ld = r->all ? ldo : p;
  r->yX->read(r->yX, r0, r1, io, ld);
  switch (k) {
    case 1: resid_block(io, ld, n, 1, r->centre, r->centre[k], r->g); break;
    case 2: resid_block(io, ld, n, 2, r->centre, r->centre[k], r->g); break;
    case 3: resid_block(io, ld, n, 3, r->centre, r->centre[k], r->g); break;
    case 4: resid_block(io, ld, n, 4, r->centre, r->centre[k], r->g); break;
    default: resid_block(io, ld, n, k, r->centre, r->centre[k], r->g); break;
  }
  if (io == out) return;
  for (size_t i = 0; i < n; i++) {
    out[i * ldo] = buf[i * p];
    for (size_t j = 0; j < m; j++) out[i * ldo + j + 1] = buf[i * p + 1 + r->cols[j]];
  }
}

int sp_lsfit_resid_init(sp_lsfit_resid *r, const sp_lsfit *fit, const sp_rows *yX, const size_t *cols, size_t m) {
  if (yX == NULL || fit->g == NULL || fit->centre == NULL || yX->p != fit->k + 1 || yX->p > SP_ROWS_MAXSEL ||
      m + 1 > SP_ROWS_MAXSEL || (m > 0 && cols == NULL))
    return -1;
  for (size_t j = 0; j < m; j++)
    if (cols[j] >= fit->k) return -1;
  r->yX = yX;
  r->k = fit->k;
  r->all = m == fit->k;
  for (size_t j = 0; j < m; j++) r->all &= cols[j] == j;
  if (m > 0) memcpy(r->cols, cols, m * sizeof *cols);
  memcpy(r->g, fit->g, fit->k * sizeof *fit->g);
  memcpy(r->centre, fit->centre, (fit->k + 1) * sizeof *fit->centre);
  r->rows = (sp_rows){yX->n, m + 1, resid_read, r, NULL};
  return 0;
}
