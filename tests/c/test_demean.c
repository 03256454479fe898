/*
** test_demean.c: the HDFE kernel against closed forms and dense dummy
** regressions, plus singletons, degrees of freedom, fixed-effect recovery,
** thread determinism and the documented errors.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit.h>

#include "spillover/demean.h"
#include "testlib.h"


static double max_abs_diff(const double *a, const double *b, size_t n) {
  double d = 0.0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(a[i] - b[i]);
    if (!(e <= d)) d = e;
  }
  return d;
}

/* Residuals of column j (of an n x p row-major block) on the dummies of all
   factors, by a dense least-squares solve (truncated SVD handles the
   collinear dummies). */
static int dense_resid(size_t n, size_t nfe, int32_t **codes, const size_t *L, const double *w,
                       const double *data, size_t p, size_t j, double *out) {
  size_t m = 0;
  for (size_t k = 0; k < nfe; k++) m += L[k];
  gsl_matrix *X = gsl_matrix_calloc(n, m);
  gsl_vector *y = gsl_vector_alloc(n), *c = gsl_vector_alloc(m), *r = gsl_vector_alloc(n);
  gsl_vector *wv = gsl_vector_alloc(n);
  gsl_matrix *cov = gsl_matrix_alloc(m, m);
  gsl_multifit_linear_workspace *work = gsl_multifit_linear_alloc(n, m);
  int st = -1;
  if (X && y && c && r && wv && cov && work) {
    for (size_t i = 0; i < n; i++) {
      size_t off = 0;
      for (size_t k = 0; k < nfe; k++) {
        gsl_matrix_set(X, i, off + (size_t)codes[k][i], 1.0);
        off += L[k];
      }
      gsl_vector_set(y, i, data[i * p + j]);
      gsl_vector_set(wv, i, w ? w[i] : 1.0);
    }
    double chisq;
    size_t rank;
    st = gsl_multifit_wlinear_tsvd(X, wv, y, 1e-12, c, cov, &chisq, &rank, work);
    if (st == 0) st = gsl_multifit_linear_residuals(X, y, c, r);
    for (size_t i = 0; i < n && st == 0; i++) out[i] = gsl_vector_get(r, i);
  }
  gsl_matrix_free(X);
  gsl_vector_free(y);
  gsl_vector_free(c);
  gsl_vector_free(r);
  gsl_vector_free(wv);
  gsl_matrix_free(cov);
  if (work) gsl_multifit_linear_free(work);
  return st;
}

static void test_one_fe(void) {
  enum { N = 1000, L = 37, P = 2 };
  int32_t *code = malloc(N * sizeof *code);
  double *d = malloc(N * P * sizeof *d), *ref = malloc(N * P * sizeof *ref);
  double sum[L][P] = {{0}}, cnt[L] = {0};
  for (size_t r = 0; r < N; r++) {
    code[r] = irand(L);
    for (size_t j = 0; j < P; j++) d[r * P + j] = (double)irand(1000) - 300.0;  /* sums stay exact */
    cnt[code[r]] += 1.0;
    for (size_t j = 0; j < P; j++) sum[code[r]][j] += d[r * P + j];
  }
  for (size_t r = 0; r < N; r++)
    for (size_t j = 0; j < P; j++) ref[r * P + j] = d[r * P + j] - sum[code[r]][j] * (1.0 / cnt[code[r]]);
  const int32_t *cs[1] = {code};
  size_t Ls[1] = {L};
  sp_error err;
  sp_demean_ws *ws = sp_demean_new(N, 1, cs, Ls, NULL, 1, &err);
  sp_demean_info info;
  int st = ws ? sp_demean_run(ws, d, N, P, P, NULL, &info, &err) : -1;
  check("one factor: runs", st == 0);
  check("one factor: exactly the group-demeaned values", memcmp(d, ref, sizeof(double) * N * P) == 0);
  check("one factor: one pass, converged", info.iter == 1 && info.converged == 1);
  sp_demean_free(ws);
  free(code);
  free(d);
  free(ref);
}

static void test_balanced_twoway(void) {
  enum { NI = 30, NT = 12, N = NI * NT, P = 3 };
  int32_t *ci = malloc(N * sizeof *ci), *ct = malloc(N * sizeof *ct);
  double *d = malloc(N * P * sizeof *d), *ref = malloc(N * P * sizeof *ref);
  double mi[NI][P] = {{0}}, mt[NT][P] = {{0}}, m[P] = {0};
  /* Rows ordered by time, so the entity factor (the larger) is unsorted. */
  for (size_t t = 0; t < NT; t++)
    for (size_t i = 0; i < NI; i++) {
      size_t r = t * NI + i;
      ci[r] = (int32_t)i;
      ct[r] = (int32_t)t;
      for (size_t j = 0; j < P; j++) {
        double v = 100.0 * urand() + (double)i * (j + 1) - 3.0 * (double)t;
        d[r * P + j] = v;
        mi[i][j] += v / NT;
        mt[t][j] += v / NI;
        m[j] += v / N;
      }
    }
  for (size_t r = 0; r < N; r++)
    for (size_t j = 0; j < P; j++) ref[r * P + j] = d[r * P + j] - mi[ci[r]][j] - mt[ct[r]][j] + m[j];
  const int32_t *cs[2] = {ci, ct};
  size_t Ls[2] = {NI, NT};
  sp_error err;
  sp_demean_ws *ws = sp_demean_new(N, 2, cs, Ls, NULL, 1, &err);
  sp_demean_info info;
  int st = ws ? sp_demean_run(ws, d, N, P, P, NULL, &info, &err) : -1;
  check("balanced two-way: runs", st == 0);
  check("balanced two-way: equals x - xbar_i - xbar_t + xbar (1e-11)", max_abs_diff(d, ref, N * P) < 1e-11);
  check("balanced two-way: converges in at most 2 sweeps", info.iter <= 2);
  sp_demean_free(ws);
  free(ci);
  free(ct);
  free(d);
  free(ref);
}

/* Unbalanced designs with 2 and 3 factors (optionally weighted) against the
   dense dummy regression. */
static void test_dense(size_t nfe, int weighted, int sorted) {
  enum { N = 400, P = 3 };
  size_t L[3] = {40, 9, 6};
  int32_t *codes[3];
  for (size_t k = 0; k < 3; k++) codes[k] = malloc(N * sizeof(int32_t));
  double *d = malloc(N * P * sizeof *d), *orig = malloc(N * P * sizeof *orig);
  double *w = weighted ? malloc(N * sizeof *w) : NULL, *res = malloc(N * sizeof *res);
  for (size_t r = 0; r < N; r++) {
    codes[0][r] = sorted ? (int32_t)(r * L[0] / N) : irand((int32_t)L[0]);
    codes[1][r] = irand((int32_t)L[1]);
    codes[2][r] = irand((int32_t)L[2]);
    if (w) w[r] = 0.2 + 2.0 * urand();
    for (size_t j = 0; j < P; j++)
      d[r * P + j] = orig[r * P + j] = urand() * 10.0 + codes[0][r] * 0.3 - codes[1][r] * (double)j +
                                      2.0 * codes[2][r];
  }
  if (w) w[5] = 0.0;  /* a row that takes no part in the fit */
  sp_error err;
  sp_demean_ws *ws = sp_demean_new(N, nfe, (const int32_t *const *)codes, L, w, 1, &err);
  sp_demean_info info;
  int st = ws ? sp_demean_run(ws, d, N, P, P, NULL, &info, &err) : -1;
  char name[160];
  snprintf(name, sizeof name, "%zu factors%s%s: runs and converges", nfe, weighted ? ", weighted" : "",
           sorted ? ", sorted" : "");
  check(name, st == 0 && info.converged);
  /* Errors relative to the column's root mean square, the scale tol refers to. */
  double worst = 0.0;
  for (size_t j = 0; j < P; j++) {
    double ss = 0.0;
    for (size_t r = 0; r < N; r++) ss += orig[r * P + j] * orig[r * P + j];
    double rms = sqrt(ss / N);
    if (dense_resid(N, nfe, codes, L, w, orig, P, j, res) != 0) worst = INFINITY;
    for (size_t r = 0; r < N; r++) {
      double e = fabs(res[r] - d[r * P + j]) / rms;
      if (!(e <= worst)) worst = e;
    }
  }
  snprintf(name, sizeof name, "%zu factors%s%s: residuals equal the dense dummy regression (1e-9 x rms, got %.2g)",
           nfe, weighted ? ", weighted" : "", sorted ? ", sorted" : "", worst);
  check(name, worst < 1e-9);
  sp_demean_free(ws);
  for (size_t k = 0; k < 3; k++) free(codes[k]);
  free(d);
  free(orig);
  free(w);
  free(res);
}

static void test_singletons(void) {
  /* Rows: (a,x) (a,y) (b,x) (b,y) (c,y) (d,z) (d,x)
     Round 1: c is a singleton in factor 1 -> row 4 dropped; z is a singleton
     in factor 2 -> row 5 dropped.  Round 2: d now has one row (6) -> dropped. */
  int32_t f1[7] = {0, 0, 1, 1, 2, 3, 3};
  int32_t f2[7] = {0, 1, 0, 1, 1, 2, 0};
  const int32_t *cs[2] = {f1, f2};
  size_t L[2] = {4, 3};
  unsigned char keep[7] = {1, 1, 1, 1, 1, 1, 1};
  size_t nd = 99;
  sp_error err;
  int st = sp_fe_singletons(7, 2, cs, L, keep, &nd, &err);
  unsigned char want[7] = {1, 1, 1, 1, 0, 0, 0};
  check("singletons: runs", st == 0);
  check("singletons: iterated removal drops rows 5, 6, 7", memcmp(keep, want, 7) == 0 && nd == 3);
  /* Rows already excluded do not count: excluding row 2 makes a a singleton,
     and the cascade then empties the sample (a, c, z; y; b, d). */
  unsigned char keep2[7] = {1, 0, 1, 1, 1, 1, 1}, none[7] = {0};
  st = sp_fe_singletons(7, 2, cs, L, keep2, &nd, &err);
  check("singletons: pre-excluded rows do not count, cascade", st == 0 && memcmp(keep2, none, 7) == 0 && nd == 6);
}

static void test_dof(void) {
  /* Two components: entities {0,1} x times {0,1}; entities {2,3} x times {2,3}. */
  int32_t e[8] = {0, 0, 1, 1, 2, 2, 3, 3};
  int32_t t[8] = {0, 1, 0, 1, 2, 3, 2, 3};
  int32_t g[8] = {0, 1, 2, 0, 1, 2, 0, 1};
  const int32_t *cs[3] = {e, t, g};
  size_t L[3] = {5, 4, 3};  /* entity 4 is empty */
  size_t dof = 0, nc = 0;
  sp_error err;
  int st = sp_fe_dof(8, 2, cs, L, NULL, &dof, &nc, &err);
  check("dof: two factors, two components: 4 + 4 - 2 = 6", st == 0 && dof == 6 && nc == 2);
  st = sp_fe_dof(8, 1, cs, L, NULL, &dof, NULL, &err);
  check("dof: one factor counts non-empty levels (4)", st == 0 && dof == 4);
  st = sp_fe_dof(8, 3, cs, L, NULL, &dof, NULL, &err);
  check("dof: third factor adds levels - 1 (6 + 2)", st == 0 && dof == 8);
  unsigned char keep[8] = {1, 1, 1, 1, 0, 0, 0, 0};
  st = sp_fe_dof(8, 2, cs, L, keep, &dof, &nc, &err);
  check("dof: respects keep (2 + 2 - 1)", st == 0 && dof == 3 && nc == 1);
  int nested = -1;
  int32_t cl[8] = {0, 0, 0, 0, 1, 1, 1, 1};
  st = sp_fe_nested(8, e, 5, cl, 2, NULL, &nested, &err);
  check("nested: entities within clusters", st == 0 && nested == 1);
  st = sp_fe_nested(8, g, 3, cl, 2, NULL, &nested, &err);
  check("nested: a factor crossing clusters is not nested", st == 0 && nested == 0);
}

static void test_fixef(void) {
  enum { N = 600, NI = 50, NT = 8, NK = 5 };
  int32_t *ci = malloc(N * sizeof *ci), *ct = malloc(N * sizeof *ct), *ck = malloc(N * sizeof *ck);
  double a[NI], g[NT], k3[NK], *y = malloc(N * sizeof *y);
  double ea[NI], eg[NT], ek[NK];
  for (size_t i = 0; i < NI; i++) a[i] = 5.0 * urand() - 2.0;
  for (size_t t = 0; t < NT; t++) g[t] = t == 0 ? 0.0 : 3.0 * urand();   /* the normalisation */
  for (size_t k = 0; k < NK; k++) k3[k] = k == 0 ? 0.0 : -2.0 * urand();
  for (size_t r = 0; r < N; r++) {
    ci[r] = irand(NI);
    ct[r] = irand(NT);
    ck[r] = irand(NK);
  }
  ct[0] = 0;
  ck[0] = 0;
  sp_error err;
  sp_demean_options opt;
  sp_demean_options_init(&opt);
  opt.tol = 1e-14;
  for (size_t nfe = 2; nfe <= 3; nfe++) {
    for (size_t r = 0; r < N; r++) y[r] = a[ci[r]] + g[ct[r]] + (nfe == 3 ? k3[ck[r]] : 0.0);
    /* The small factor first in the caller's order exercises the internal reordering. */
    const int32_t *cs[3] = {ct, ci, ck};
    size_t L[3] = {NT, NI, NK};
    double *o[3] = {eg, ea, ek};
    sp_demean_ws *ws = sp_demean_new(N, nfe, cs, L, NULL, 1, &err);
    int st = ws ? sp_demean_fixef(ws, y, o, &opt, &err) : -1;
    /* Caller factor 0 (time) carries the level: for factor 1 (entity) the
       lowest level is 0, so the truth is g + a[0], a - a[0]. */
    double worst = 0.0;
    for (size_t t = 0; t < NT; t++) worst = fmax(worst, fabs(eg[t] - (g[t] + a[0])));
    for (size_t i = 0; i < NI; i++) worst = fmax(worst, fabs(ea[i] - (a[i] - a[0])));
    if (nfe == 3)
      for (size_t k = 0; k < NK; k++) worst = fmax(worst, fabs(ek[k] - k3[k]));
    char name[128];
    snprintf(name, sizeof name, "fixef: %zu factors recover the coefficients (1e-9, got %.2g)", nfe, worst);
    check(name, st == 0 && worst < 1e-9);
    sp_demean_free(ws);
  }
  free(ci);
  free(ct);
  free(ck);
  free(y);
}

static void test_fixef_components(void) {
  /* Two components; the second time factor level 3 is in component 2. */
  int32_t e[8] = {0, 0, 1, 1, 2, 2, 3, 3};
  int32_t t[8] = {0, 1, 0, 1, 2, 3, 2, 3};
  double a[4] = {1, 2, 10, 20}, g[4] = {0, 0.5, 7, 9}, y[8], ea[5], eg[4];
  for (size_t r = 0; r < 8; r++) y[r] = a[e[r]] + g[t[r]];
  const int32_t *cs[2] = {e, t};
  size_t L[2] = {5, 4};
  double *o[2] = {ea, eg};
  sp_error err;
  sp_demean_ws *ws = sp_demean_new(8, 2, cs, L, NULL, 1, &err);
  int st = ws ? sp_demean_fixef(ws, y, o, NULL, &err) : -1;
  int ok = st == 0 && fabs(eg[0]) < 1e-12 && fabs(eg[2]) < 1e-12 && fabs(eg[1] - 0.5) < 1e-9 &&
           fabs(eg[3] - 2.0) < 1e-9 && fabs(ea[0] - 1) < 1e-9 && fabs(ea[2] - 17) < 1e-9 && isnan(ea[4]);
  check("fixef: one reference per connected component, NaN for an empty level", ok);
  sp_demean_free(ws);
}

/* A larger unbalanced design for threads and for iteration counts. */
static void test_threads_and_accel(void) {
  enum { N = 30000, P = 3 };
  size_t L[3] = {3000, 30, 50};
  int32_t *codes[3];
  for (size_t k = 0; k < 3; k++) codes[k] = malloc(N * sizeof(int32_t));
  double *w = malloc(N * sizeof *w);
  double *d1 = malloc(N * P * sizeof *d1), *d2 = malloc(N * P * sizeof *d2);
  for (size_t r = 0; r < N; r++) {
    codes[0][r] = irand((int32_t)L[0]);
    /* factor 1 tied to factor 0 (slow mixing): a "chain" of overlapping groups */
    codes[1][r] = (int32_t)((codes[0][r] / 100 + irand(3)) % (int32_t)L[1]);
    codes[2][r] = irand((int32_t)L[2]);
    w[r] = 0.5 + urand();
    for (size_t j = 0; j < P; j++) d1[r * P + j] = urand() + 0.01 * codes[0][r] + (j == 2 ? 0.0 : codes[1][r]);
  }
  sp_error err;
  for (size_t nfe = 2; nfe <= 3; nfe++)
    for (int weighted = 0; weighted <= 1; weighted++) {
      memcpy(d2, d1, N * P * sizeof *d1);
      double *e1 = malloc(N * P * sizeof *e1);
      memcpy(e1, d1, N * P * sizeof *d1);
      sp_demean_ws *ws = sp_demean_new(N, nfe, (const int32_t *const *)codes, L, weighted ? w : NULL, 1, &err);
      sp_demean_options opt;
      sp_demean_options_init(&opt);
      sp_demean_info i1, i2;
      int s1 = sp_demean_run(ws, e1, N, P, P, &opt, &i1, &err);
      opt.threads = 2;
      int s2 = sp_demean_run(ws, d2, N, P, P, &opt, &i2, &err);
      char name[128];
      snprintf(name, sizeof name, "threads: %zu factors%s, 2 threads bit-identical to 1", nfe,
               weighted ? ", weighted" : "");
      check(name, s1 == 0 && s2 == 0 && memcmp(e1, d2, N * P * sizeof *d2) == 0 && i1.iter == i2.iter);
      if (!weighted) {
        memcpy(d2, d1, N * P * sizeof *d1);
        opt.threads = 1;
        opt.accelerate = 0;
        sp_demean_info i3;
        int s3 = sp_demean_run(ws, d2, N, P, P, &opt, &i3, &err);
        printf("  # %zu factors, slow design: %zu sweeps accelerated, %zu plain\n", nfe, i1.iter, i3.iter);
        snprintf(name, sizeof name, "acceleration: %zu factors, fewer sweeps than plain projections", nfe);
        check(name, s3 == 0 && i1.iter < i3.iter);
        double diff = max_abs_diff(e1, d2, N * P);
        snprintf(name, sizeof name, "acceleration: %zu factors, same residuals as plain (1e-7, got %.2g)", nfe, diff);
        check(name, diff < 1e-7);
      }
      sp_demean_free(ws);
      free(e1);
    }
  for (size_t k = 0; k < 3; k++) free(codes[k]);
  free(w);
  free(d1);
  free(d2);
}

static void test_econv_and_errors(void) {
  enum { N = 200 };
  int32_t *ci = malloc(N * sizeof *ci), *ct = malloc(N * sizeof *ct);
  double *d = malloc(N * 4 * sizeof *d);
  for (size_t r = 0; r < N; r++) {
    ci[r] = irand(20);
    ct[r] = irand(7);
    d[r * 4 + 0] = urand() + ci[r];
    d[r * 4 + 1] = 0.0;            /* an all-zero column converges at once */
    d[r * 4 + 2] = urand() * ct[r];
    d[r * 4 + 3] = 12345.0;        /* beyond p: must stay untouched */
  }
  const int32_t *cs[2] = {ci, ct};
  size_t L[2] = {20, 7};
  sp_error err;
  sp_demean_ws *ws = sp_demean_new(N, 2, cs, L, NULL, 1, &err);
  sp_demean_options opt;
  sp_demean_options_init(&opt);
  opt.maxiter = 1;
  sp_demean_info info;
  int st = sp_demean_run(ws, d, N, 3, 4, &opt, &info, &err);
  check("maxiter = 1 on two factors gives SP_ECONV", st == SP_ECONV && info.converged == 0 && info.iter == 1);
  check("SP_ECONV message gives iterations and the achieved tolerance",
        strstr(err.msg, "after 1 iterations") != NULL && strstr(err.msg, "relative change") != NULL &&
            strstr(err.msg, "tol = 1e-10") != NULL);
  opt.maxiter = 10000;
  st = sp_demean_run(ws, d, N, 3, 4, &opt, &info, &err);
  int untouched = 1, zero = 1;
  for (size_t r = 0; r < N; r++) {
    if (d[r * 4 + 3] != 12345.0) untouched = 0;
    if (d[r * 4 + 1] != 0.0) zero = 0;
  }
  check("row stride: columns beyond p untouched, zero column stays zero", st == 0 && untouched && zero);
  /* Demeaning residuals again changes nothing (idempotent projection). */
  double before = d[7 * 4 + 0];
  st = sp_demean_run(ws, d, N, 3, 4, &opt, &info, &err);
  check("demeaning is idempotent", st == 0 && fabs(d[7 * 4 + 0] - before) < 1e-12);

  d[3 * 4 + 2] = NAN;
  st = sp_demean_run(ws, d, N, 3, 4, &opt, &info, &err);
  check("NaN in a column: SP_EMISSING naming column 3",
        st == SP_EMISSING && strstr(err.msg, "column 3 has missing") != NULL);
  opt.threads = 3;
  st = sp_demean_run(ws, d, N, 3, 4, &opt, &info, &err);
  check("threads = 3 rejected", st == SP_EVALUE && strstr(err.msg, "expected 1 or 2") != NULL);
  opt.threads = 1;
  st = sp_demean_run(ws, d, N - 1, 3, 4, &opt, &info, &err);
  check("row count mismatch: SP_EDIM", st == SP_EDIM && strstr(err.msg, "199 rows") != NULL);
  sp_demean_free(ws);

  ct[17] = 7;
  ws = sp_demean_new(N, 2, cs, L, NULL, 1, &err);
  check("code out of range: error names factor, row and range",
        ws == NULL && err.code == SP_EVALUE && strstr(err.msg, "fixed effect 2, row 18: code 7 outside 0..6") != NULL);
  ct[17] = 0;
  double *w = malloc(N * sizeof *w);
  for (size_t r = 0; r < N; r++) w[r] = 1.0;
  w[9] = -1.0;
  ws = sp_demean_new(N, 2, cs, L, w, 1, &err);
  check("negative weight: error names the row",
        ws == NULL && err.code == SP_EVALUE && strstr(err.msg, "weight of row 10 is -1") != NULL);
  ws = sp_demean_new(N, 0, cs, L, NULL, 1, &err);
  check("no factors: error", ws == NULL && strstr(err.msg, "expected at least one factor") != NULL);
  free(w);
  free(ci);
  free(ct);
  free(d);
}

int main(void) {
  gsl_set_error_handler_off();
  test_one_fe();
  test_balanced_twoway();
  test_dense(2, 0, 0);
  test_dense(2, 1, 0);
  test_dense(2, 0, 1);
  test_dense(3, 0, 0);
  test_dense(3, 1, 1);
  test_singletons();
  test_dof();
  test_fixef();
  test_fixef_components();
  test_threads_and_accel();
  test_econv_and_errors();
  printf("%d passed, %d failed\n", npass, nfail);
  return nfail != 0;
}
