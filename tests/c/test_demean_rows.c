/*
** test_demean_rows.c: the demeaning from a row source (sp_demean_solve) and
** the rows minus the effects (sp_demean_within) give the same bits, info,
** return codes and messages as sp_demean_run on the stored block: a fit that
** never stores the demeaned [y X] must not change a single digit.
*/
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/demean.h"
#include "spillover/rows.h"
#include "testlib.h"

/* A source over a row-major matrix, as the design's rows read the frame.  It
   records any request outside the rows.h contract (more than SP_ROWS_BLOCK
   rows, past the end). */
typedef struct mat_src {
  sp_rows rows;
  const double *a;
  size_t lda;
} mat_src;

static int bad_request;

static void mat_read(const sp_rows *s, size_t r0, size_t r1, double *out, size_t ldo) {
  const mat_src *m = s->ctx;
  if (r1 < r0 || r1 - r0 > SP_ROWS_BLOCK || r1 > s->n) {
    bad_request = 1;
    return;
  }
  for (size_t r = r0; r < r1; r++) memcpy(out + (r - r0) * ldo, m->a + r * m->lda, s->p * sizeof(double));
}

static void mat_src_init(mat_src *m, const double *a, size_t n, size_t p, size_t lda) {
  m->a = a;
  m->lda = lda;
  m->rows = (sp_rows){n, p, mat_read, m, NULL};
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* An unbalanced panel: factor 0 with about 4 rows per level (many levels of
   one row, some empty), sorted when asked; factor 1 (40 levels) and factor 2
   (7 levels) random, each with one level of a single row. */
typedef struct panel {
  size_t n, L[3];
  int32_t *codes[3];
  double *w;
} panel;

static void panel_make(panel *pn, size_t n, int sorted) {
  pn->n = n;
  pn->L[0] = n / 4;
  pn->L[1] = 40;
  pn->L[2] = 7;
  for (size_t k = 0; k < 3; k++) pn->codes[k] = malloc(n * sizeof(int32_t));
  pn->w = malloc(n * sizeof(double));
  for (size_t r = 0; r < n; r++) {
    pn->codes[0][r] = irand((int32_t)pn->L[0]);
    pn->codes[1][r] = irand((int32_t)pn->L[1] - 1);
    pn->codes[2][r] = irand((int32_t)pn->L[2] - 1);
    pn->w[r] = 0.2 + 2.0 * urand();
  }
  if (sorted) qsort(pn->codes[0], n, sizeof(int32_t), cmp_i32);
  pn->codes[1][n - 1] = (int32_t)pn->L[1] - 1;
  pn->codes[2][n / 3] = (int32_t)pn->L[2] - 1;
  pn->w[5] = 0.0;  /* a row that takes no part in the coefficients */
}

static void panel_free(panel *pn) {
  for (size_t k = 0; k < 3; k++) free(pn->codes[k]);
  free(pn->w);
}

/* n x p values with effects of every factor, not exactly representable sums
   (so any change in the order of additions shows in the last bits); column 4
   is all zero (a column dropped from the iteration at once). */
static double *values(const panel *pn, size_t p) {
  double *d = malloc(pn->n * p * sizeof *d);
  for (size_t r = 0; r < pn->n; r++)
    for (size_t j = 0; j < p; j++)
      d[r * p + j] = j == 4 ? 0.0
                            : urand() * 3.1 + 0.37 * pn->codes[0][r] - 1.3 * (double)j * pn->codes[1][r] +
                                  0.71 * pn->codes[2][r];
  return d;
}

/* w->rows read into out (n x ldo) in blocks of random sizes 1..256, so reads
   start anywhere, not only at the multiples of 256 the solve uses. */
static void read_all_random(const sp_rows *rows, double *out, size_t ldo) {
  for (size_t r0 = 0; r0 < rows->n;) {
    size_t b = 1 + (size_t)irand(SP_ROWS_BLOCK);
    size_t r1 = rows->n - r0 < b ? rows->n : r0 + b;
    rows->read(rows, r0, r1, out + r0 * ldo, ldo);
    r0 = r1;
  }
}

/* Two threads reading one half each, in blocks of 256, at the same time. */
typedef struct half_job {
  const sp_rows *rows;
  double *out;
  size_t ldo, r0, r1;
} half_job;

static void *read_half(void *v) {
  half_job *h = v;
  for (size_t r0 = h->r0; r0 < h->r1; r0 += SP_ROWS_BLOCK) {
    size_t r1 = h->r1 - r0 < SP_ROWS_BLOCK ? h->r1 : r0 + SP_ROWS_BLOCK;
    h->rows->read(h->rows, r0, r1, h->out + r0 * h->ldo, h->ldo);
  }
  return NULL;
}

static int read_all_two_threads(const sp_rows *rows, double *out, size_t ldo) {
  half_job a = {rows, out, ldo, 0, rows->n / 2}, b = {rows, out, ldo, rows->n / 2, rows->n};
  pthread_t th;
  if (pthread_create(&th, NULL, read_half, &b) != 0) return -1;
  read_half(&a);
  return pthread_join(th, NULL);
}

/* Columns 0..p-1 of out (stride ldo) equal the n x p block d bit for bit, and
   column p of out still holds the sentinel. */
static int same_rows(const double *d, size_t n, size_t p, const double *out, size_t ldo) {
  for (size_t r = 0; r < n; r++) {
    if (memcmp(d + r * p, out + r * ldo, p * sizeof(double)) != 0) return 0;
    if (out[r * ldo + p] != -7.0) return 0;
  }
  return 1;
}

/* The within rows of the columns sel[0..m-1] of the solved source, read from
   raw (a row source, or the same values as arrays: raw->col, the fused
   reads), equal those columns of the demeaned block d (n x p). */
static int same_selected(const sp_demean_ws *ws, const sp_rows *raw, const size_t *sel, size_t m, const double *d,
                         size_t p) {
  size_t n = raw->n, ldo = (sel ? m : p) + 1;
  double *out = malloc(n * ldo * sizeof *out);
  for (size_t i = 0; i < n * ldo; i++) out[i] = -7.0;
  sp_demean_within w;
  int ok = sp_demean_within_init(&w, ws, raw, sel, m) == 0 && w.rows.p == (sel ? m : p) && w.rows.col == NULL;
  if (ok) read_all_random(&w.rows, out, ldo);
  for (size_t r = 0; ok && r < n; r++) {
    for (size_t j = 0; j < w.rows.p; j++)
      ok &= memcmp(d + r * p + (sel ? sel[j] : j), out + r * ldo + j, sizeof(double)) == 0;
    ok &= out[r * ldo + ldo - 1] == -7.0;
  }
  free(out);
  return ok;
}

static int same_info(const sp_demean_info *a, const sp_demean_info *b) {
  return a->iter == b->iter && a->sweeps == b->sweeps && a->converged == b->converged &&
         memcmp(&a->achieved, &b->achieved, sizeof(double)) == 0;
}

/* One case: sp_demean_run on a copy, then sp_demean_solve on a source over
   the original and the within rows read two ways. */
static void identity_case(const panel *pn, size_t nfe, int weighted, size_t p, int threads,
                          const sp_demean_options *base, int want_st) {
  size_t n = pn->n, ldo = p + 1;
  double *orig = values(pn, p), *d = malloc(n * p * sizeof *d);
  double *out = malloc(n * ldo * sizeof *out), *out2 = malloc(n * ldo * sizeof *out2);
  memcpy(d, orig, n * p * sizeof *d);
  for (size_t i = 0; i < n * ldo; i++) out[i] = out2[i] = -7.0;
  sp_error e1, e2;
  sp_error_clear(&e1);
  sp_error_clear(&e2);
  sp_demean_ws *ws = sp_demean_new(n, nfe, (const int32_t *const *)pn->codes, pn->L, weighted ? pn->w : NULL, 1, &e1);
  sp_demean_options opt = *base;
  opt.threads = threads;
  sp_demean_info i1, i2;
  int s1 = ws ? sp_demean_run(ws, d, n, p, p, &opt, &i1, &e1) : -1;
  mat_src src;
  mat_src_init(&src, orig, n, p, p);
  bad_request = 0;
  int s2 = ws ? sp_demean_solve(ws, &src.rows, &opt, &i2, &e2) : -1;
  sp_demean_within w;
  int ok = ws != NULL && s1 == want_st && s2 == s1 && same_info(&i1, &i2) && strcmp(e1.msg, e2.msg) == 0;
  if (ok) {
    sp_demean_within_init(&w, ws, &src.rows, NULL, 0);
    ok = w.rows.n == n && w.rows.p == p;
    read_all_random(&w.rows, out, ldo);
    ok = ok && same_rows(d, n, p, out, ldo);
    ok = ok && read_all_two_threads(&w.rows, out2, ldo) == 0 && same_rows(d, n, p, out2, ldo);
    /* The values as arrays, and selections: a run of consecutive columns
       (one kernel group), then column 0 twice, out of order. */
    double *cm = malloc(n * p * sizeof *cm);
    const double *colp[SP_ROWS_MAXSEL];
    for (size_t j = 0; j < p; j++) {
      colp[j] = cm + j * n;
      for (size_t r = 0; r < n; r++) cm[j * n + r] = orig[r * p + j];
    }
    mat_src csrc;
    mat_src_init(&csrc, orig, n, p, p);
    csrc.rows.col = colp;
    size_t sel[SP_ROWS_MAXSEL], m = 0;
    for (size_t j = 1; j < p; j++) sel[m++] = j;
    sel[m++] = 0;
    sel[m++] = 0;
    ok = ok && same_selected(ws, &csrc.rows, NULL, 0, d, p) && same_selected(ws, &csrc.rows, sel, m, d, p) &&
         same_selected(ws, &src.rows, sel, m, d, p);
    free(cm);
  }
  ok = ok && !bad_request;
  char name[200];
  snprintf(name, sizeof name,
           "n %zu, %zu factor%s%s, p %zu, %d thread%s%s: solve from rows + within (all columns or a "
           "selection, from rows or arrays) == run in place (bits, info, status)",
           n, nfe, nfe > 1 ? "s" : "", weighted ? ", weighted" : "", p, threads, threads > 1 ? "s" : "",
           want_st == SP_ECONV ? ", maxiter 1" : "");
  check(name, ok);
  sp_demean_free(ws);
  free(orig);
  free(d);
  free(out);
  free(out2);
}

static void test_identity(void) {
  sp_demean_options opt;
  sp_demean_options_init(&opt);
  panel small, big;
  panel_make(&small, 1031, 0);
  panel_make(&big, 70001, 1);
  for (size_t nfe = 1; nfe <= 3; nfe++)
    for (int weighted = 0; weighted <= 1; weighted++)
      for (int threads = 1; threads <= 2; threads++) {
        for (size_t p = 1; p <= 6; p++) identity_case(&small, nfe, weighted, p, threads, &opt, SP_OK);
        /* the larger panel for a narrow and a wide block (two column groups) */
        identity_case(&big, nfe, weighted, 2, threads, &opt, SP_OK);
        identity_case(&big, nfe, weighted, 6, threads, &opt, SP_OK);
      }
  /* Not converged: the coefficients of the last iterate, the same SP_ECONV,
     message and info, and the same residuals. */
  opt.maxiter = 1;
  for (int threads = 1; threads <= 2; threads++) {
    identity_case(&small, 3, 0, 3, threads, &opt, SP_ECONV);
    identity_case(&big, 3, 1, 5, threads, &opt, SP_ECONV);
  }
  panel_free(&small);
  panel_free(&big);
}

/* An infinite value in the source: the error sp_demean_run gives, naming the
   column, and the same info. */
static void test_inf(void) {
  panel pn;
  panel_make(&pn, 1031, 0);
  size_t n = pn.n, p = 3;
  double *d = values(&pn, p), *copy = malloc(n * p * sizeof *copy);
  d[700 * p + 1] = INFINITY;
  memcpy(copy, d, n * p * sizeof *d);
  sp_error e1, e2;
  sp_error_clear(&e1);
  sp_error_clear(&e2);
  sp_demean_ws *ws = sp_demean_new(n, 2, (const int32_t *const *)pn.codes, pn.L, NULL, 1, &e1);
  sp_demean_info i1, i2;
  int s1 = sp_demean_run(ws, copy, n, p, p, NULL, &i1, &e1);
  mat_src src;
  mat_src_init(&src, d, n, p, p);
  int s2 = sp_demean_solve(ws, &src.rows, NULL, &i2, &e2);
  check("Inf in column 2 of the source: SP_EMISSING naming column 2, as sp_demean_run",
        s1 == SP_EMISSING && s2 == SP_EMISSING && strcmp(e1.msg, e2.msg) == 0 &&
            strstr(e2.msg, "column 2 has missing") != NULL && same_info(&i1, &i2));
  /* A source of the wrong length is refused before anything is read. */
  mat_src_init(&src, d, n - 1, p, p);
  s2 = sp_demean_solve(ws, &src.rows, NULL, &i2, &e2);
  check("source of n - 1 rows: SP_EDIM naming both counts",
        s2 == SP_EDIM && strstr(e2.msg, "1030 rows, the fixed effects 1031") != NULL);
  s2 = sp_demean_solve(ws, NULL, NULL, &i2, &e2);
  check("no source: SP_EVALUE", s2 == SP_EVALUE && strstr(e2.msg, "no row source") != NULL);
  /* No columns: nothing to solve, and the within rows are the raw rows. */
  mat_src_init(&src, d, n, 0, p);
  s2 = sp_demean_solve(ws, &src.rows, NULL, &i2, &e2);
  sp_demean_within w;
  sp_demean_within_init(&w, ws, &src.rows, NULL, 0);
  double sentinel = -7.0;
  w.rows.read(&w.rows, 0, 1, &sentinel, 1);
  check("zero columns: converged, and the within rows leave the buffer alone",
        s2 == SP_OK && i2.converged == 1 && w.rows.p == 0 && sentinel == -7.0);
  /* A selection of a column the rows do not have, or of too many, is refused. */
  mat_src_init(&src, d, n, p, p);
  size_t bad[SP_ROWS_MAXSEL + 1] = {0, 3};
  check("within of column 4 of 3 columns, or of 65 columns: -1",
        sp_demean_within_init(&w, ws, &src.rows, bad, 2) == -1 &&
            sp_demean_within_init(&w, ws, &src.rows, bad, SP_ROWS_MAXSEL + 1) == -1);
  sp_demean_free(ws);
  panel_free(&pn);
  free(d);
  free(copy);
}

int main(void) {
  test_identity();
  test_inf();
  printf("%d passed, %d failed\n", npass, nfail);
  return nfail != 0;
}
