/* test_rows_fit.c: least squares and the covariance read from a row source
   (sp_lsfit_rows, sp_vcov_compute_rows) give the same bits as on the
   materialised matrix, for every path of either. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_matrix.h>

#include "spillover/lsfit.h"
#include "spillover/rows.h"
#include "spillover/vcov.h"
#include "testlib.h"


/* The test source: p columns from column off of a row-major array with ld
   doubles per row.  A request of more than SP_ROWS_BLOCK rows (a breach of
   rows.h) sets oversize, written only then, so no two threads race on it. */
typedef struct {
  const double *a;
  size_t ld, off;
} arr;
static int oversize;

static void arr_read(const sp_rows *s, size_t r0, size_t r1, double *out, size_t ldo) {
  const arr *a = s->ctx;
  if (r1 - r0 > SP_ROWS_BLOCK || r1 > s->n) oversize = 1;
  for (size_t i = r0; i < r1; i++) memcpy(out + (i - r0) * ldo, a->a + i * a->ld + a->off, s->p * sizeof *out);
}

/* The matrix the source stands for: n x k, tda ld, at data (k may be 0,
   which gsl's views refuse). */
static gsl_matrix matrix_at(double *data, size_t n, size_t k, size_t ld) {
  return (gsl_matrix){n, k, ld, data, NULL, 0};
}

/* The block yX (n rows [y x_1 .. x_k], stride k + 1) as least squares' two
   inputs: the matrix *X of its regressors, and the row source returned,
   whose state is *src. */
static sp_rows block_inputs(double *yX, size_t n, size_t k, gsl_matrix *X, arr *src) {
  *X = matrix_at(yX + 1, n, k, k + 1);
  *src = (arr){yX, k + 1, 0};
  return (sp_rows){n, k + 1, arr_read, src, NULL};
}

static int same_fit(const sp_lsfit *a, const sp_lsfit *b, const double *ra, const double *rb, size_t n) {
  if (a->n != b->n || a->k != b->k || a->rank != b->rank) return 0;
  if (memcmp(&a->ssr, &b->ssr, sizeof a->ssr) || memcmp(&a->yss, &b->yss, sizeof a->yss)) return 0;
  if (memcmp(a->keep, b->keep, a->k * sizeof *a->keep) || memcmp(a->b, b->b, a->k * sizeof *a->b)) return 0;
  if (a->bread->size1 != b->bread->size1) return 0;
  for (size_t i = 0; i < a->rank; i++)
    if (memcmp(gsl_matrix_const_ptr(a->bread, i, 0), gsl_matrix_const_ptr(b->bread, i, 0),
               a->rank * sizeof(double)))
      return 0;
  return ra == NULL || memcmp(ra, rb, n * sizeof *ra) == 0;
}

/* The shapes of design the fit treats differently. */
enum { PLAIN, CONSTANT, LATE_CONSTANT, COLLINEAR, WEIGHTED, SCALED, CONSTANT_DROPPED, NVARIANT };
static const char *variant_name[] = {"no constant (fused scan)", "a constant column",
                                     "a column constant over the first 1024 rows only", "a collinear column",
                                     "weights and a constant", "a caller's scale",
                                     "a constant the scale drops (uncentred refit)"};

/* [y X] (n x (k + 1), row-major) for variant v; w filled for WEIGHTED. */
static void design(double *yX, double *w, size_t n, size_t k, int v) {
  size_t p = k + 1;
  for (size_t i = 0; i < n; i++) {
    double *row = yX + i * p, y = 0.5 * nrand();
    for (size_t j = 1; j <= k; j++) {
      row[j] = nrand() + 0.25 * (double)j;
      y += row[j] * (0.5 - 0.1 * (double)j);
    }
    if (k >= 1 && (v == CONSTANT || v == WEIGHTED || v == CONSTANT_DROPPED)) row[1] = 1.0;
    if (k >= 1 && v == LATE_CONSTANT) row[1] = i < 1200 ? 2.0 : 2.0 + nrand();
    if (k >= 3 && v == COLLINEAR) row[3] = row[1] - 2.0 * row[2];
    row[0] = y + 3.0;
    w[i] = 0.1 + urand();
  }
}

static void lsfit_equal(void) {
  static const size_t ns[] = {1000, 1031, 70000};
  size_t nmax = 70000, kmax = 6;
  double *yX = malloc(nmax * (kmax + 1) * sizeof *yX), *w = malloc(nmax * sizeof *w);
  double *ra = malloc(nmax * sizeof *ra), *rb = malloc(nmax * sizeof *rb);
  double scale[6];
  int all = 1, some_dropped = 0, some_constant_dropped = 0;
  char what[200];
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
    for (size_t k = 0; k <= kmax; k++)
      for (int v = 0; v < NVARIANT; v++) {
        size_t n = ns[a], p = k + 1;
        design(yX, w, n, k, v);
        for (size_t j = 0; j < k; j++) scale[j] = v == CONSTANT_DROPPED && j == 0 ? 1e300 : 1e4;
        sp_lsfit_opts o = {v == WEIGHTED ? w : NULL, v == SCALED || v == CONSTANT_DROPPED ? scale : NULL, 0,
                           NULL, NULL, 1, 0};
        gsl_matrix X;
        arr src;
        sp_rows rows = block_inputs(yX, n, k, &X, &src);
        sp_lsfit fa, fb;
        sp_error err;
        sp_lsfit_init(&fa);
        sp_lsfit_init(&fb);
        int sa = sp_lsfit_run(&X, yX, p, &o, &fa, ra, &err);
        int sb = sp_lsfit_rows(&rows, &o, &fb, rb, &err);
        int ok = sa == SP_OK && sb == SP_OK && same_fit(&fa, &fb, ra, rb, n);
        /* without residuals, and with no options at all */
        sa = sp_lsfit_run(&X, yX, p, NULL, &fa, NULL, &err);
        sb = sp_lsfit_rows(&rows, NULL, &fb, NULL, &err);
        ok &= sa == SP_OK && sb == SP_OK && same_fit(&fa, &fb, NULL, NULL, n);
        sa = sp_lsfit_run(&X, yX, p, &o, &fa, NULL, &err);
        some_dropped |= fa.rank < k;
        some_constant_dropped |= v == CONSTANT_DROPPED && k >= 1 && !fa.keep[0];
        if (!ok) {
          snprintf(what, sizeof what, "sp_lsfit_rows = sp_lsfit_run to the bit: n %zu, k %zu, %s", n, k,
                   variant_name[v]);
          check(what, 0);
          all = 0;
        }
        sp_lsfit_clear(&fa);
        sp_lsfit_clear(&fb);
      }
  check("sp_lsfit_rows = sp_lsfit_run to the bit (b, bread, ssr, yss, keep, rank, residuals) for "
             "n 1000, 1031, 70000, k 0..6, every design shape", all);
  check("the cases include dropped columns and a dropped constant", some_dropped && some_constant_dropped);
  check("the fit never asks a source for more than SP_ROWS_BLOCK rows", !oversize);
  free(yX);
  free(w);
  free(ra);
  free(rb);
}

/* Above the size where the second thread starts (100000 rows). */
static void lsfit_threads(void) {
  enum { N = 150001 };
  static const size_t ks[] = {2, 3, 6};
  double *yX = malloc(N * 7 * sizeof *yX), *w = malloc(N * sizeof *w);
  double *r1 = malloc(N * sizeof *r1), *r2 = malloc(N * sizeof *r2), *r3 = malloc(N * sizeof *r3);
  for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
    size_t k = ks[c], p = k + 1;
    design(yX, w, N, k, c == 1 ? WEIGHTED : c == 0 ? PLAIN : CONSTANT);
    gsl_matrix X;
    arr src;
    sp_rows rows = block_inputs(yX, N, k, &X, &src);
    sp_lsfit f1, f2, f3;
    sp_error err;
    sp_lsfit_init(&f1);
    sp_lsfit_init(&f2);
    sp_lsfit_init(&f3);
    const double *wt = c == 1 ? w : NULL;
    int st = sp_lsfit_run(&X, yX, p, &(sp_lsfit_opts){wt, NULL, 0, NULL, NULL, 1, 0}, &f1, r1, &err);
    st |= sp_lsfit_rows(&rows, &(sp_lsfit_opts){wt, NULL, 0, NULL, NULL, 1, 0}, &f2, r2, &err);
    st |= sp_lsfit_rows(&rows, &(sp_lsfit_opts){wt, NULL, 0, NULL, NULL, 2, 0}, &f3, r3, &err);
    char what[120];
    snprintf(what, sizeof what, "sp_lsfit_rows at 1 and 2 threads = sp_lsfit_run to the bit: n %d, k %zu", N, k);
    check(what, st == SP_OK && same_fit(&f1, &f2, r1, r2, N) && same_fit(&f1, &f3, r1, r3, N));
    sp_lsfit_clear(&f1);
    sp_lsfit_clear(&f2);
    sp_lsfit_clear(&f3);
  }
  free(yX);
  free(w);
  free(r1);
  free(r2);
  free(r3);
}

/* The error naming a bad element or weight names the same one, rows
   counted over the whole source. */
static void lsfit_errors(void) {
  enum { N = 1031 };
  static double yX[N * 4], w[N];
  static const struct { size_t k, row, col; int weight, shape; const char *what, *needle; } cases[] = {
    {3, 776, 2, 0, CONSTANT, "NaN in row 777 of X (narrow)", "X[777,2] is NaN"},
    {6, 776, 5, 0, CONSTANT, "NaN in row 777 of X (wide)", "X[777,5] is NaN"},
    {3, 1030, 0, 0, CONSTANT, "Inf in y on the last row", "y[1031] is Inf"},
    {2, 1029, 1, 0, PLAIN, "NaN in X past the first 1024 rows (the fused scan)", "X[1030,1] is NaN"},
    {2, 600, 0, 1, CONSTANT, "a negative weight", "weight -1 at observation 601"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    size_t k = cases[c].k, p = k + 1;
    static double wide[N * 7];
    double *a = k > 3 ? wide : yX;
    design(a, w, N, k, cases[c].shape);
    if (cases[c].weight) w[cases[c].row] = -1;
    else a[cases[c].row * p + cases[c].col] = cases[c].col == 0 ? INFINITY : NAN;
    gsl_matrix X;
    arr src;
    sp_rows rows = block_inputs(a, N, k, &X, &src);
    sp_lsfit_opts o = {cases[c].weight ? w : NULL, NULL, 0, NULL, NULL, 1, 0};
    sp_lsfit fa, fb;
    sp_error ea, eb;
    sp_lsfit_init(&fa);
    sp_lsfit_init(&fb);
    int sa = sp_lsfit_run(&X, a, p, &o, &fa, NULL, &ea);
    int sb = sp_lsfit_rows(&rows, &o, &fb, NULL, &eb);
    check(cases[c].what, sa == SP_EVALUE && sb == SP_EVALUE && strcmp(ea.msg, eb.msg) == 0 && strstr(eb.msg, cases[c].needle));
    check("a failed fit from a source holds nothing", fb.b == NULL && fb.bread == NULL);
  }
  sp_lsfit fit;
  sp_error err;
  sp_lsfit_init(&fit);
  check("a source without y: SP_EVALUE", sp_lsfit_rows(&(sp_rows){10, 0, arr_read, NULL, NULL}, NULL, &fit, NULL, &err) == SP_EVALUE &&
            strstr(err.msg, "no columns"));
  check("no source: SP_EVALUE", sp_lsfit_rows(NULL, NULL, &fit, NULL, &err) == SP_EVALUE);
}

/* sp_vcov_compute_rows = sp_vcov_compute for every type, on the design of
   a fit with weights or without, at 1 and 2 threads. */
static void vcov_equal(size_t n, int threads) {
  enum { K = 3 };
  size_t p = K + 1;
  double *yX = malloc(n * p * sizeof *yX), *w = malloc(n * sizeof *w), *r = malloc(n * sizeof *r);
  int32_t *ent = malloc(n * sizeof *ent), *yr = malloc(n * sizeof *yr), *reg = malloc(n * sizeof *reg);
  for (size_t i = 0; i < n; i++) {
    ent[i] = (int32_t)(i / 7);               /* a sorted panel's entities */
    yr[i] = (int32_t)(i % 7);                /* its periods */
    reg[i] = (int32_t)((i * 7919) % 53);     /* codes out of first-appearance order */
  }
  for (int weighted = 0; weighted <= 1; weighted++) {
    design(yX, w, n, K, CONSTANT);
    gsl_matrix X = matrix_at(yX + 1, n, K, p);
    sp_lsfit fit;
    sp_error err;
    sp_lsfit_init(&fit);
    int st = sp_lsfit_run(&X, yX, p, &(sp_lsfit_opts){weighted ? w : NULL, NULL, 0, NULL, NULL, 1, 0}, &fit, r, &err);
    arr src = {yX, p, 1};
    sp_rows rows = {n, K, arr_read, &src, NULL};
    struct { sp_vcov_type type; size_t ncl; int multi0; const char *name; } cases[] = {
      {SP_VCOV_IID, 0, 0, "iid"}, {SP_VCOV_HC0, 0, 0, "HC0"}, {SP_VCOV_HC1, 0, 0, "HC1"},
      {SP_VCOV_HC2, 0, 0, "HC2"}, {SP_VCOV_HC3, 0, 0, "HC3"}, {SP_VCOV_CLUSTER, 1, 0, "one-way cluster"},
      {SP_VCOV_CLUSTER, 2, 0, "two-way cluster"}, {SP_VCOV_CLUSTER, 3, 1, "three-way cluster, multi0"},
      {SP_VCOV_DRISCOLL_KRAAY, 0, 0, "Driscoll-Kraay"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
      sp_vcov_spec s;
      sp_vcov_spec_init(&s, cases[c].type);
      s.weights = weighted ? w : NULL;
      s.threads = threads;
      s.ncluster = cases[c].ncl;
      s.cluster[0] = reg;
      s.cluster[1] = ent;
      s.cluster[2] = yr;
      s.multi0 = cases[c].multi0;
      s.gadj = SP_VCOV_GADJ_EACH;
      s.fix_psd = cases[c].ncl > 1;
      s.time = yr;
      s.lag = 2;
      gsl_matrix *Va = gsl_matrix_alloc(K, K), *Vb = gsl_matrix_alloc(K, K);
      sp_vcov_info ia, ib;
      sp_error ea, eb;
      int sa = sp_vcov_compute(&X, r, fit.bread, &s, Va, &ia, &ea);
      int sb = sp_vcov_compute_rows(&rows, r, fit.bread, &s, Vb, &ib, &eb);
      char what[160];
      snprintf(what, sizeof what, "sp_vcov_compute_rows = sp_vcov_compute to the bit: %s, n %zu, %s, threads %d",
               cases[c].name, n, weighted ? "weights" : "no weights", threads);
      check(what, st == SP_OK && sa == SP_OK && sb == SP_OK && memcmp(Va->data, Vb->data, K * K * sizeof(double)) == 0 &&
                memcmp(&ia, &ib, sizeof ia) == 0 && Va->data[0] > 0);
      gsl_matrix_free(Va);
      gsl_matrix_free(Vb);
    }
    sp_lsfit_clear(&fit);
  }
  free(yX);
  free(w);
  free(r);
  free(ent);
  free(yr);
  free(reg);
}

/* HC2's leverage-1 error names the same observation from a source. */
static void vcov_errors(void) {
  enum { N = 700, K = 2 };
  static double X2[N * K], r[N];
  for (size_t i = 0; i < N; i++) {
    X2[i * K] = 1.0;
    X2[i * K + 1] = i == 600 ? 1.0 : 0.0;  /* a dummy for one observation: h = 1 */
    r[i] = nrand();
  }
  gsl_matrix X = matrix_at(X2, N, K, K);
  arr src = {X2, K, 0};
  sp_rows rows = {N, K, arr_read, &src, NULL};
  gsl_matrix *B = gsl_matrix_alloc(K, K), *V = gsl_matrix_alloc(K, K);
  gsl_matrix_set(B, 0, 0, 1.0 / (N - 1));
  gsl_matrix_set(B, 0, 1, -1.0 / (N - 1));
  gsl_matrix_set(B, 1, 0, -1.0 / (N - 1));
  gsl_matrix_set(B, 1, 1, 1.0 + 1.0 / (N - 1));
  sp_vcov_spec s;
  sp_vcov_spec_init(&s, SP_VCOV_HC2);
  sp_error ea, eb;
  int sa = sp_vcov_compute(&X, r, B, &s, V, NULL, &ea);
  int sb = sp_vcov_compute_rows(&rows, r, B, &s, V, NULL, &eb);
  check("HC2 from a source: leverage 1 at observation 601, the same message", sa == SP_EVALUE && sb == SP_EVALUE && strcmp(ea.msg, eb.msg) == 0 && strstr(eb.msg, "observation 601"));
  gsl_matrix *B3 = gsl_matrix_alloc(3, 3);
  sb = sp_vcov_compute_rows(&rows, r, B3, &s, V, NULL, &eb);
  check("a bread that does not match the source's columns: SP_EDIM", sb == SP_EDIM);
  check("no source: SP_EVALUE", sp_vcov_compute_rows(NULL, r, B, &s, V, NULL, &eb) == SP_EVALUE);
  gsl_matrix_free(B);
  gsl_matrix_free(B3);
  gsl_matrix_free(V);
}

/* A fit's residual rows (sp_lsfit_resid) hold the residuals sp_lsfit_run
   writes and the kept columns of X, to the bit; the covariance read from
   them (resid NULL) is the one on the stored residuals, and its info.ssr is
   the fit's ssr, for fits that centre, weight and drop columns. */
static void resid_rows_equal(size_t n, int threads) {
  enum { K = 3 };
  static const int variants[] = {PLAIN, CONSTANT, COLLINEAR, WEIGHTED};
  size_t p = K + 1;
  double *yX = malloc(n * p * sizeof *yX), *w = malloc(n * sizeof *w), *r = malloc(n * sizeof *r);
  double *eX = malloc(n * p * sizeof *eX), *Xk = malloc(n * K * sizeof *Xk);
  int32_t *ent = malloc(n * sizeof *ent), *yr = malloc(n * sizeof *yr);
  for (size_t i = 0; i < n; i++) {
    ent[i] = (int32_t)(i / 7);
    yr[i] = (int32_t)(i % 7);
  }
  int rows_ok = 1, v_ok = 1, fit_ok = 1, saw_drop = 0;
  for (size_t a = 0; a < sizeof variants / sizeof *variants; a++) {
    int v = variants[a];
    design(yX, w, n, K, v);
    const double *wt = v == WEIGHTED ? w : NULL;
    gsl_matrix X;
    arr src;
    sp_rows rows = block_inputs(yX, n, K, &X, &src);
    sp_lsfit fa, fb;
    sp_error err;
    sp_lsfit_init(&fa);
    sp_lsfit_init(&fb);
    int st = sp_lsfit_run(&X, yX, p, &(sp_lsfit_opts){wt, NULL, 0, NULL, NULL, 1, 0}, &fa, r, &err);
    st |= sp_lsfit_rows(&rows, &(sp_lsfit_opts){wt, NULL, 0, NULL, NULL, threads, 1}, &fb, NULL, &err);
    /* deferred: the same fit but for its ssr */
    fit_ok &= st == SP_OK && isnan(fb.ssr) && fa.rank == fb.rank && memcmp(fa.b, fb.b, K * sizeof *fa.b) == 0 &&
              memcmp(fa.bread->data, fb.bread->data, fa.rank * fa.rank * sizeof(double)) == 0;
    size_t cols[K], m = 0;
    for (size_t j = 0; j < K; j++)
      if (fb.keep[j]) cols[m++] = j;
    saw_drop |= m < K;
    /* the kept columns in order, then reversed (read through the stack) */
    for (int rev = 0; rev <= 1; rev++) {
      if (rev)
        for (size_t j = 0; j < m / 2; j++) {
          size_t t = cols[j];
          cols[j] = cols[m - 1 - j];
          cols[m - 1 - j] = t;
        }
      sp_lsfit_resid res;
      if (sp_lsfit_resid_init(&res, &fb, &rows, cols, m) != 0) {
        rows_ok = 0;
        continue;
      }
      for (size_t r0 = 0; r0 < n; r0 += SP_ROWS_BLOCK)
        res.rows.read(&res.rows, r0, r0 + SP_ROWS_BLOCK < n ? r0 + SP_ROWS_BLOCK : n, eX + r0 * (m + 1), m + 1);
      for (size_t i = 0; i < n; i++) {
        rows_ok &= memcmp(&eX[i * (m + 1)], &r[i], sizeof *r) == 0;
        for (size_t j = 0; j < m; j++) {
          Xk[i * m + j] = yX[i * p + 1 + cols[j]];
          rows_ok &= memcmp(&eX[i * (m + 1) + 1 + j], &Xk[i * m + j], sizeof *Xk) == 0;
        }
      }
      if (rev) continue;
      static const sp_vcov_type types[] = {SP_VCOV_IID, SP_VCOV_HC1, SP_VCOV_HC3, SP_VCOV_CLUSTER,
                                           SP_VCOV_DRISCOLL_KRAAY};
      gsl_matrix Xm = matrix_at(Xk, n, m, m);
      for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        sp_vcov_spec s;
        sp_vcov_spec_init(&s, types[t]);
        s.weights = wt;
        s.threads = threads;
        s.ncluster = 1;
        s.cluster[0] = ent;
        s.time = yr;
        gsl_matrix *Va = gsl_matrix_alloc(m, m), *Vb = gsl_matrix_alloc(m, m);
        sp_vcov_info ia, ib;
        int sa = sp_vcov_compute(&Xm, r, fb.bread, &s, Va, &ia, &err);
        int sb = sp_vcov_compute_rows(&res.rows, NULL, fb.bread, &s, Vb, &ib, &err);
        v_ok &= sa == SP_OK && sb == SP_OK && memcmp(Va->data, Vb->data, m * m * sizeof(double)) == 0 &&
                memcmp(&ia, &ib, sizeof ia) == 0 && memcmp(&ib.ssr, &fa.ssr, sizeof fa.ssr) == 0;
        gsl_matrix_free(Va);
        gsl_matrix_free(Vb);
      }
    }
    sp_lsfit_clear(&fa);
    sp_lsfit_clear(&fb);
  }
  char what[200];
  snprintf(what, sizeof what, "defer_ssr: the same b, bread and rank, ssr NaN (n %zu, threads %d)", n, threads);
  check(what, fit_ok);
  snprintf(what, sizeof what, "sp_lsfit_resid rows = the residuals and kept columns to the bit, in order and "
           "reversed (n %zu, threads %d)", n, threads);
  check(what, rows_ok && saw_drop);
  snprintf(what, sizeof what, "vcov from [e X] rows = vcov on the stored residuals, info.ssr = the fit's ssr, "
           "iid/HC1/HC3/cluster/DK (n %zu, threads %d)", n, threads);
  check(what, v_ok);
  free(yX);
  free(w);
  free(r);
  free(eX);
  free(Xk);
  free(ent);
  free(yr);
}

/* Errors of the residual rows and of the covariance reading them. */
static void resid_rows_errors(void) {
  enum { N = 700, K = 2 };
  static double yX[N * (K + 1)];
  design(yX, (double[N]){0}, N, K, PLAIN);
  arr src = {yX, K + 1, 0};
  sp_rows rows = {N, K + 1, arr_read, &src, NULL};
  sp_lsfit fit;
  sp_error err;
  sp_lsfit_init(&fit);
  check("defer_ssr with residuals asked for: SP_EVALUE",
        sp_lsfit_rows(&rows, &(sp_lsfit_opts){NULL, NULL, 0, NULL, NULL, 1, 1}, &fit, (double[N]){0}, &err) ==
            SP_EVALUE);
  gsl_matrix Xm = matrix_at(yX + 1, N, K, K + 1);
  check("defer_ssr with residuals asked for from a matrix: SP_EVALUE",
        sp_lsfit_run(&Xm, yX, K + 1, &(sp_lsfit_opts){NULL, NULL, 0, NULL, NULL, 1, 1}, &fit, (double[N]){0},
                     &err) == SP_EVALUE);
  int st = sp_lsfit_rows(&rows, &(sp_lsfit_opts){NULL, NULL, 0, NULL, NULL, 1, 1}, &fit, NULL, &err);
  sp_lsfit_resid res;
  size_t cols[] = {0, 1}, bad[] = {0, 2};
  check("sp_lsfit_resid_init refuses a column out of range", st == SP_OK && sp_lsfit_resid_init(&res, &fit, &rows, bad, 2) == -1);
  sp_rows narrow = {N, K, arr_read, &src, NULL};
  check("sp_lsfit_resid_init refuses rows of another width", sp_lsfit_resid_init(&res, &fit, &narrow, cols, 2) == -1);
  check("sp_lsfit_resid_init takes the kept columns", sp_lsfit_resid_init(&res, &fit, &rows, cols, 2) == 0 &&
                                                          res.rows.p == 3);
  /* a non-finite residual: y NaN on row 501 of what the rows read */
  yX[500 * (K + 1)] = NAN;
  gsl_matrix *V = gsl_matrix_alloc(K, K);
  sp_vcov_spec s;
  sp_vcov_spec_init(&s, SP_VCOV_HC1);
  st = sp_vcov_compute_rows(&res.rows, NULL, fit.bread, &s, V, NULL, &err);
  check("vcov from [e X] rows: a NaN residual is SP_EMISSING at observation 501",
        st == SP_EMISSING && strstr(err.msg, "observation 501") != NULL);
  sp_vcov_spec_init(&s, SP_VCOV_IID);
  st = sp_vcov_compute_rows(&res.rows, NULL, fit.bread, &s, V, NULL, &err);
  check("the same under iid, whose own pass reads the rows", st == SP_EMISSING && strstr(err.msg, "observation 501") != NULL);
  check("rows [e X] with no column: SP_EVALUE",
        sp_vcov_compute_rows(&(sp_rows){N, 0, arr_read, &src, NULL}, NULL, fit.bread, &s, V, NULL, &err) == SP_EVALUE);
  gsl_matrix_free(V);
  sp_lsfit_clear(&fit);
}

int main(void) {
  lsfit_equal();
  lsfit_threads();
  lsfit_errors();
  vcov_equal(1031, 1);
  vcov_equal(70000, 1);
  vcov_equal(150001, 2);
  vcov_errors();
  resid_rows_equal(1031, 1);
  resid_rows_equal(150001, 2);
  resid_rows_errors();
  check("no pass asks a source for more than SP_ROWS_BLOCK rows", !oversize);
  printf("%d passed, %d failed\n", npass, nfail);
  return nfail ? 1 : 0;
}
