/* test_threshold.c: the Hansen (1999) panel threshold core against the
   reference cases tests/reference/threshold_hansen1999_*.json (Hansen's 565
   firms), against the refit-at-every-candidate implementation, thread-count
   invariance of the bootstrap, a simulation with a known threshold,
   unbalanced panels, several regime regressors and the documented errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/csv.h"
#include "spillover/frame.h"
#include "spillover/mem.h"
#include "spillover/threshold.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

static void near(double got, double want, double rtol, const char *what) {
  int ok = fabs(got - want) <= rtol * fabs(want) || fabs(got - want) <= 1e-300;
  if (!ok) printf("  got %.17g want %.17g (rtol %g)\n", got, want, rtol);
  check(ok, what);
}

/* Hansen's data as the arrays the core reads. */
typedef struct {
  size_t n;
  double *y, *X, *Z, *q;
  int32_t *ent, *tim;
} hdata;

static const char *xn[] = {"q1", "q2", "q3", "d1", "qd1"};
static const char *zn[] = {"c1"};

static int load(hdata *h) {
  sp_error err;
  sp_frame *f = NULL;
  if (sp_frame_read_csv("tests/reference/data/hansen_1999_invest_565firms.csv", NULL, &f, &err)) {
    printf("cannot read the Hansen data: %s\n", err.msg);
    return 1;
  }
  size_t n = f->nrow;
  h->n = n;
  h->y = malloc(n * sizeof(double));
  h->X = malloc(n * 5 * sizeof(double));
  h->Z = malloc(n * sizeof(double));
  h->q = malloc(n * sizeof(double));
  h->ent = malloc(n * sizeof(int32_t));
  h->tim = malloc(n * sizeof(int32_t));
  const double *id = sp_frame_column(f, "id")->num, *yr = sp_frame_column(f, "year")->num;
  for (size_t t = 0; t < n; t++) {
    h->y[t] = sp_frame_column(f, "i")->num[t];
    for (int j = 0; j < 5; j++) h->X[t * 5 + (size_t)j] = sp_frame_column(f, xn[j])->num[t];
    h->Z[t] = sp_frame_column(f, "c1")->num[t];
    h->q[t] = sp_frame_column(f, "d1")->num[t];
    h->ent[t] = (int32_t)id[t] - 1;
    h->tim[t] = (int32_t)yr[t];
  }
  sp_frame_free(f);
  return 0;
}

static void unload(hdata *h) {
  free(h->y); free(h->X); free(h->Z); free(h->q); free(h->ent); free(h->tim);
}

static sp_thr_data view(const hdata *h, size_t n, size_t N) {
  sp_thr_data d = {.n = n, .k = 5, .m = 1, .y = h->y, .X = h->X, .ldx = 5, .Z = h->Z, .ldz = 1, .q = h->q,
                   .entity = h->ent, .N = N, .time = h->tim, .xnames = xn, .znames = zn, .qname = "d1"};
  return d;
}

static void reference_cases(const hdata *h) {
  sp_thr_data d = view(h, h->n, 565);
  sp_thr_options o;
  sp_thr_result r;
  sp_error err;
  char what[160];

  /* Single threshold, quantile grid of 400 (xthreg's default). */
  sp_thr_options_init(&o);
  int st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_OK, "single: fit");
  if (st) printf("  %s\n", err.msg);
  check(r.ngrid == 393, "single: 393 grid points");
  check(r.nunique == 6747, "single: 6747 distinct values of d1");
  check(r.df == 7345 && r.nentities == 565 && r.balanced, "single: df 7345 = n(T-1), balanced");
  near(r.gamma[0], 0.0157, 1e-12, "single: threshold 0.0157");
  near(r.ci[0][0], 0.01453, 1e-12, "single: CI lower 0.01453");
  near(r.ci[0][1], 0.01806, 1e-12, "single: CI upper 0.01806");
  near(r.ssr, 17.781651236937968, 1e-10, "single: SSR");
  near(r.ssr_linear, 17.861099228176094, 1e-10, "single: SSR without threshold");
  near(r.test[0].F, 32.8172838319897, 1e-8, "single: F1");
  near(r.lr_crit, 7.352276694155739, 1e-12, "single: LR critical value at 95%");
  check(r.regime_nobs[0] + r.regime_nobs[1] == 7910, "single: regimes partition the sample");
  check(r.curve[0].n == 393, "single: LR curve over the grid");
  sp_thr_result_clear(&r);

  /* Double: g2 given g1, g1 refined given g2. */
  o.nthresh = 2;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_OK, "double: fit");
  near(r.gamma[0], 0.0157, 1e-12, "double: threshold 1");
  near(r.gamma[1], 0.54072, 1e-12, "double: threshold 2");
  near(r.ci[0][0], 0.01453, 1e-12, "double: CI 1 lower");
  near(r.ci[0][1], 0.01806, 1e-12, "double: CI 1 upper");
  near(r.ci[1][0], 0.52469, 1e-12, "double: CI 2 lower");
  near(r.ci[1][1], 1.00593, 1e-12, "double: CI 2 upper");
  near(r.ssr, 17.725134385825942, 1e-10, "double: SSR");
  near(r.test[1].F, 23.419640290557275, 1e-8, "double: F2");
  near(r.test[1].ssr_null, 17.781651236937968, 1e-10, "double: F2 null SSR");
  check(r.seq_ncand[1] == 385 && r.seq_ncand[2] == 385, "double: 385 candidates at stage 2 and refinement");
  sp_thr_result_clear(&r);

  /* Triple: trim 0.05 at stage 3. */
  o.nthresh = 3;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_OK, "triple: fit");
  near(r.gamma[2], 0.91085, 1e-12, "triple: threshold 3");
  near(r.ci[2][0], 0.03902, 1e-12, "triple: CI 3 lower");
  near(r.ci[2][1], 1.00593, 1e-12, "triple: CI 3 upper");
  near(r.ssr, 17.706188571596552, 1e-10, "triple: SSR");
  near(r.test[2].F, 7.859229836628229, 1e-8, "triple: F3");
  check(r.seq_ncand[3] == 321, "triple: 321 candidates at stage 3");
  sp_thr_result_clear(&r);

  /* Exact search over every distinct value. */
  o.grid = 0;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_OK, "exact triple: fit");
  check(r.ngrid == 6613, "exact: 6613 candidates");
  check(r.seq_ncand[1] == 6479 && r.seq_ncand[3] == 5400, "exact: 6479 and 5400 candidates at stages 2 and 3");
  near(r.gamma[1], 0.54003, 1e-12, "exact: threshold 2");
  near(r.ci[0][0], 0.01298, 1e-12, "exact: refined CI 1 lower");
  near(r.ci[1][0], 0.52274, 1e-12, "exact: CI 2 lower");
  near(r.ci[2][0], 0.0389, 1e-12, "exact: CI 3 lower");
  near(r.seq_ssr[1], 17.723695577971927, 1e-10, "exact: stage-2 SSR");
  near(r.test[1].F, 24.0178078681649, 1e-8, "exact: F2");
  near(r.ssr, 17.704962474184207, 1e-10, "exact: triple SSR");
  near(r.test[2].F, 7.771530017159444, 1e-8, "exact: F3");
  sp_thr_result_clear(&r);

  /* Bootstrap: random, so loose (reference with another RNG: p = 0, crit5 14.29). */
  sp_thr_options_init(&o);
  o.reps = 300;
  o.seed = 1999;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_OK, "single bootstrap: fit");
  check(r.test[0].pvalue < 0.02, "single bootstrap: p < 0.02 (reference 0)");
  snprintf(what, sizeof what, "single bootstrap: 5%% critical value %.3g within 30%% of 14.29", r.test[0].crit[1]);
  check(fabs(r.test[0].crit[1] - 14.2946) < 0.3 * 14.2946, what);
  check(r.test[0].crit[0] <= r.test[0].crit[1] && r.test[0].crit[1] <= r.test[0].crit[2],
        "single bootstrap: critical values ordered");
  sp_thr_result_clear(&r);
}

/* hansen1999: Hansen's own program (regimes q < g, each firm's last year
   deleted after demeaning), against its output on the same data
   (tests/reference/threshold_hansen1999_*.json, stats.hansen_program: the
   program run in Octave) and the paper's thresholds 0.0157 and 0.5361. */
static void hansen_program(const hdata *h) {
  sp_thr_data d = view(h, h->n, 565);
  sp_thr_options o;
  sp_thr_result r, b;
  sp_error err;
  sp_thr_options_init(&o);
  o.hansen1999 = 1;
  o.nthresh = 3;
  int st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_OK, "hansen1999: fit");
  if (st) { printf("  %s\n", err.msg); return; }
  check(r.df == 7345, "hansen1999: 7345 = 565 x 13 rows after the deletion");
  near(r.seq_gamma[0], 0.0157, 1e-12, "hansen1999: single threshold 0.0157 (paper)");
  near(r.seq_gamma[1], 0.53616, 1e-12, "hansen1999: second threshold 0.53616 (paper: 0.5361)");
  near(r.seq_gamma[2], 0.0157, 1e-12, "hansen1999: refined first threshold 0.0157");
  near(r.gamma[0], 0.0157, 1e-12, "hansen1999 triple: threshold 1");
  near(r.gamma[1], 0.33134, 1e-12, "hansen1999 triple: threshold 2 (the third estimated)");
  near(r.gamma[2], 0.53616, 1e-12, "hansen1999 triple: threshold 3");
  near(r.ci[0][0], 0.01392, 1e-12, "hansen1999: CI 1 lower 0.01392");
  near(r.ci[0][1], 0.01806, 1e-12, "hansen1999: CI 1 upper 0.01806");
  near(r.ci[1][0], 0.03902, 1e-12, "hansen1999: CI of the third threshold, lower");
  near(r.ci[1][1], 1.00593, 1e-12, "hansen1999: CI of the third threshold, upper");
  near(r.ci[2][0], 0.53049, 1e-12, "hansen1999: CI 2 lower 0.53049");
  near(r.ci[2][1], 0.56287, 1e-12, "hansen1999: CI 2 upper 0.56287");
  near(r.ssr_linear, 16.591220601436028, 1e-12, "hansen1999: SSR without threshold");
  near(r.seq_ssr[0], 16.51779586163103, 1e-12, "hansen1999: SSR single");
  near(r.seq_ssr[1], 16.45997992124409, 1e-12, "hansen1999: SSR double");
  near(r.ssr, 16.450614815574834, 1e-12, "hansen1999: SSR triple");
  near(r.test[0].F, 32.649920024769415, 1e-10, "hansen1999: F1");
  near(r.test[1].F, 25.79942892846287, 1e-10, "hansen1999: F2");
  near(r.test[2].F, 4.1814061001280365, 1e-10, "hansen1999: F3");
  check(r.seq_ncand[1] == 385 && r.seq_ncand[3] == 321, "hansen1999: 385 and 321 candidates at stages 2 and 3");
  check(r.regime_nobs[0] + r.regime_nobs[1] + r.regime_nobs[2] + r.regime_nobs[3] == 7910,
        "hansen1999: regimes partition the sample");
  /* The incremental scan with the deletion term against refits. */
  o.naive = 1;
  st = sp_threshold_fit(&d, &o, &b, &err);
  check(st == SP_OK, "hansen1999 naive: fit");
  double wlr = 0;
  int same = st == SP_OK;
  for (int j = 0; same && j < 3; j++) {
    same = r.gamma[j] == b.gamma[j] && r.curve[j].n == b.curve[j].n;
    for (size_t i = 0; same && i < r.curve[j].n; i++)
      wlr = fmax(wlr, fabs(r.curve[j].lr[i] - b.curve[j].lr[i]) / fmax(1.0, fabs(b.curve[j].lr[i])));
  }
  printf("  hansen1999: largest difference of the LR curves, incremental vs refits: %.3g\n", wlr);
  check(same && wlr < 1e-7, "hansen1999: incremental scan and refits agree");
  sp_thr_result_clear(&r);
  sp_thr_result_clear(&b);
  /* The default is not Hansen's program. */
  o.naive = 0;
  o.hansen1999 = 0;
  o.nthresh = 2;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_OK && r.gamma[1] == 0.54072, "hansen1999: off by default (xthreg-style 0.54072)");
  sp_thr_result_clear(&r);
  /* Bootstrap (random; the program's own draws gave p = 0.0067 and 0.01). */
  o.hansen1999 = 1;
  o.reps = 100;
  o.seed = 1999;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_OK && r.test[0].pvalue < 0.05 && r.test[1].pvalue < 0.05,
        "hansen1999: bootstrap rejects 0 and 1 threshold at 5%");
  sp_thr_result_clear(&r);
}

static void naive_and_threads(const hdata *h) {
  /* The first 60 firms: fast enough for refits at every candidate. */
  sp_thr_data d = view(h, 60 * 14, 60);
  sp_thr_options o;
  sp_thr_result a, b;
  sp_error err;
  sp_thr_options_init(&o);
  o.nthresh = 3;
  o.reps = 4;
  o.seed = 7;
  int st = sp_threshold_fit(&d, &o, &a, &err);
  o.naive = 1;
  int st2 = sp_threshold_fit(&d, &o, &b, &err);
  check(st == SP_OK && st2 == SP_OK, "naive: both fits");
  int same = 1;
  double worst = 0;
  for (int j = 0; j < 3; j++) {
    same = same && a.gamma[j] == b.gamma[j] && a.ci[j][0] == b.ci[j][0] && a.ci[j][1] == b.ci[j][1];
    worst = fmax(worst, fabs(a.test[j].F - b.test[j].F) / fabs(b.test[j].F));
    for (int r = 0; r < o.reps; r++)
      worst = fmax(worst, fabs(a.test[j].Fboot[r] - b.test[j].Fboot[r]) / fmax(1e-3, fabs(b.test[j].Fboot[r])));
  }
  check(same, "naive: same thresholds and intervals as the incremental scan");
  double wlr = 0;
  for (int j = 0; j < 3; j++) {
    same = same && a.curve[j].n == b.curve[j].n;
    for (size_t i = 0; same && i < a.curve[j].n; i++)
      wlr = fmax(wlr, fabs(a.curve[j].lr[i] - b.curve[j].lr[i]) / fmax(1.0, fabs(b.curve[j].lr[i])));
  }
  printf("  largest difference of the LR curves: %.3g\n", wlr);
  check(same && wlr < 1e-7, "naive: same LR curves (incremental SSR vs refits)");
  printf("  largest relative difference of F and F*: %.3g\n", worst);
  check(worst < 1e-8, "naive: same F and bootstrap F* (1e-8)");
  near(a.ssr, b.ssr, 1e-11, "naive: same SSR");
  sp_thr_result_clear(&a);
  sp_thr_result_clear(&b);

  /* Thread count does not change the bootstrap. */
  d = view(h, h->n, 565);
  sp_thr_options_init(&o);
  o.nthresh = 2;
  o.reps = 40;
  o.seed = 3;
  st = sp_threshold_fit(&d, &o, &a, &err);
  o.threads = 2;
  st2 = sp_threshold_fit(&d, &o, &b, &err);
  check(st == SP_OK && st2 == SP_OK, "threads: fits with 1 and 2 threads");
  same = 1;
  for (int j = 0; j < 2; j++)
    for (int r = 0; r < o.reps; r++) same = same && a.test[j].Fboot[r] == b.test[j].Fboot[r];
  check(same, "threads: identical bootstrap statistics with 1 and 2 threads");
  check(a.test[1].pvalue == b.test[1].pvalue, "threads: identical p-values");
  sp_thr_result_clear(&a);
  o.threads = 1;
  o.seed = 4;
  st = sp_threshold_fit(&d, &o, &a, &err);
  same = st == SP_OK;
  for (int r = 0; r < o.reps && same; r++) same = a.test[1].Fboot[r] == b.test[1].Fboot[r];
  check(st == SP_OK && !same, "threads: another seed gives other draws");
  sp_thr_result_clear(&a);
  sp_thr_result_clear(&b);
}

/* Uniform in [0, 1) from a tiny LCG: the test needs data, not quality. */
static double unif(unsigned long long *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*s >> 11) * 0x1.0p-53;
}

static double gauss(unsigned long long *s) {
  double u1 = unif(s), u2 = unif(s);
  return sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}

static void simulation(void) {
  /* y = a_i + 0.5 x + z (1 if q <= 0.3, -1 otherwise) + 0.5 e, unbalanced:
     entity i has 6 + i % 5 periods; two regime regressors in the second run. */
  size_t N = 200, n = 0;
  for (size_t i = 0; i < N; i++) n += 6 + i % 5;
  double *y = malloc(n * sizeof *y), *X = malloc(n * sizeof *X), *Z = malloc(2 * n * sizeof *Z), *q = malloc(n * sizeof *q);
  int32_t *ent = malloc(n * sizeof *ent);
  unsigned long long s = 12345;
  size_t t = 0;
  for (size_t i = 0; i < N; i++) {
    double a = gauss(&s);
    for (size_t k = 0; k < 6 + i % 5; k++, t++) {
      ent[t] = (int32_t)i;
      X[t] = gauss(&s) + a;
      q[t] = unif(&s);
      Z[2 * t] = gauss(&s);
      Z[2 * t + 1] = gauss(&s);
      y[t] = a + 0.5 * X[t] + (q[t] <= 0.3 ? 1.0 : -1.0) * Z[2 * t] + (q[t] <= 0.3 ? 0.0 : 0.8) * Z[2 * t + 1] +
             0.5 * gauss(&s);
    }
  }
  const char *zs[] = {"z1", "z2"};
  sp_thr_data d = {.n = n, .k = 1, .m = 1, .y = y, .X = X, .ldx = 1, .Z = Z, .ldz = 2, .q = q, .entity = ent,
                   .N = N, .time = NULL, .xnames = NULL, .znames = zs, .qname = "q"};
  sp_thr_options o;
  sp_thr_result r;
  sp_error err;
  sp_thr_options_init(&o);
  o.reps = 100;
  o.threads = 2;
  int st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_OK, "simulation: fit (unbalanced panel)");
  check(!r.balanced, "simulation: reported as unbalanced");
  check(fabs(r.gamma[0] - 0.3) < 0.01, "simulation: threshold 0.3 recovered within 0.01");
  check(r.ci[0][0] <= 0.3 && 0.3 <= r.ci[0][1] + 0.005, "simulation: the LR interval covers 0.3");
  check(r.test[0].pvalue == 0.0, "simulation: the threshold effect is significant (bootstrap p = 0)");
  sp_thr_result_clear(&r);

  /* Two regime regressors, double threshold: the second threshold is spurious. */
  d.m = 2;
  o.nthresh = 2;
  o.reps = 50;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_OK, "simulation: two regime regressors");
  check(fabs(r.seq_gamma[0] - 0.3) < 0.01, "simulation: first stage finds 0.3 with two regime regressors");
  check(r.test[1].F > 0 && r.test[1].pvalue >= 0 && r.test[1].pvalue <= 1, "simulation: F2 and its p-value computed");
  sp_thr_result_clear(&r);

  /* Naive agrees on the unbalanced panel with two regime regressors. */
  sp_thr_result b;
  o.reps = 0;
  st = sp_threshold_fit(&d, &o, &r, &err);
  o.naive = 1;
  int st2 = sp_threshold_fit(&d, &o, &b, &err);
  check(st == SP_OK && st2 == SP_OK && r.gamma[0] == b.gamma[0] && r.gamma[1] == b.gamma[1],
        "naive: same thresholds on an unbalanced panel with two regime regressors");
  near(r.test[1].F, b.test[1].F, 1e-9, "naive: same F2 there");
  sp_thr_result_clear(&r);
  sp_thr_result_clear(&b);

  /* No threshold in the data: the bootstrap should not reject (fixed data,
     so this is deterministic; p was 0.34 when written). */
  {
    double *y0 = malloc(n * sizeof *y0);
    unsigned long long s2 = 99;
    for (size_t i = 0; i < n; i++) y0[i] = 0.5 * X[i] + Z[2 * i] + 0.5 * gauss(&s2) + (double)(ent[i] % 7);
    d.y = y0;
    d.m = 1;
    o.nthresh = 1;
    o.reps = 100;
    o.naive = 0;
    st = sp_threshold_fit(&d, &o, &r, &err);
    printf("  null: F1 = %g, bootstrap p = %g\n", r.test[0].F, r.test[0].pvalue);
    check(st == SP_OK && r.test[0].pvalue > 0.05, "simulation: no threshold in the data, no rejection at 5%");
    sp_thr_result_clear(&r);
    d.y = y;
    d.m = 2;
    free(y0);
  }

  /* Errors. */
  o.naive = 0;
  o.nthresh = 1;
  double *qc = malloc(n * sizeof *qc);
  for (size_t i = 0; i < n; i++) qc[i] = 2.5;
  d.q = qc;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "'q' is constant") != NULL, "error: constant threshold variable");
  sp_thr_result_clear(&r);
  for (size_t i = 0; i < n; i++) qc[i] = (double)(i % 2);
  o.nthresh = 2;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "has 2 distinct values, too few for 2 thresholds") != NULL,
        "error: too few distinct values for the trimming");
  sp_thr_result_clear(&r);
  /* One observation with q = 1 and two regime coefficients. */
  for (size_t i = 0; i < n; i++) qc[i] = i == 5 ? 1.0 : 0.0;
  o.nthresh = 1;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_EDF && strstr(err.msg, "at least 2 observations") != NULL,
        "error: a regime with fewer observations than parameters");
  if (st != SP_EDF) printf("  %s\n", err.msg);
  sp_thr_result_clear(&r);
  d.q = q;
  o.reps = -1;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "replications must be >= 0") != NULL, "error: bootstrap replications < 0");
  o.reps = 0;
  o.nthresh = 4;
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_EVALUE && strstr(err.msg, "must be 1, 2 or 3") != NULL, "error: four thresholds");
  o.nthresh = 1;
  /* A regressor constant within entities. */
  for (size_t i = 0; i < n; i++) X[i] = (double)ent[i];
  st = sp_threshold_fit(&d, &o, &r, &err);
  check(st == SP_ESINGULAR && strcmp(err.var, "?") != 0 && strstr(err.msg, "constant within entities") != NULL,
        "error: a regressor absorbed by the entity effects");
  free(qc);
  free(y); free(X); free(Z); free(q); free(ent);
}

/* The bootstrap's first stage by bounds over groups of 64 sorted rows
   (boot_stage1 in threshold.c) against refits at every candidate, on an
   exact search with many groups, and its thread invariance. */
static void fast_first_stage(void) {
  size_t N = 100, T = 10, n = N * T;
  double *y = malloc(n * sizeof *y), *X = malloc(n * sizeof *X), *Z = malloc(n * sizeof *Z), *q = malloc(n * sizeof *q);
  int32_t *ent = malloc(n * sizeof *ent), *tim = malloc(n * sizeof *tim);
  unsigned long long s = 777;
  for (size_t t = 0; t < n; t++) {
    ent[t] = (int32_t)(t / T);
    tim[t] = (int32_t)(t % T);
    X[t] = gauss(&s);
    Z[t] = gauss(&s);
    q[t] = unif(&s);
    y[t] = 0.3 * X[t] + (q[t] <= 0.5 ? 0.4 : -0.2) * Z[t] + gauss(&s) + 0.1 * (double)(t / T % 5);
  }
  sp_thr_data d = {.n = n, .k = 1, .m = 1, .y = y, .X = X, .ldx = 1, .Z = Z, .ldz = 1, .q = q, .entity = ent,
                   .N = N, .time = tim};
  sp_thr_options o;
  sp_thr_result a, b, c2;
  sp_error err;
  sp_thr_options_init(&o);
  o.grid = 0;
  o.nthresh = 2;
  o.reps = 6;
  o.seed = 11;
  int st = sp_threshold_fit(&d, &o, &a, &err);
  o.threads = 2;
  int st3 = sp_threshold_fit(&d, &o, &c2, &err);
  o.threads = 1;
  o.naive = 1;
  int st2 = sp_threshold_fit(&d, &o, &b, &err);
  check(st == SP_OK && st2 == SP_OK && st3 == SP_OK, "first stage by bounds: fits");
  double worst = 0;
  int same = 1, same2 = 1;
  for (int j = 0; j < 2 && st == SP_OK && st2 == SP_OK && st3 == SP_OK; j++) {
    same = same && a.test[j].pvalue == b.test[j].pvalue;
    for (int r = 0; r < o.reps; r++) {
      worst = fmax(worst, fabs(a.test[j].Fboot[r] - b.test[j].Fboot[r]) / fmax(1e-3, fabs(b.test[j].Fboot[r])));
      same2 = same2 && a.test[j].Fboot[r] == c2.test[j].Fboot[r];
    }
  }
  printf("  first stage by bounds: largest relative difference of F* from refits %.3g\n", worst);
  check(same && worst < 1e-9, "first stage by bounds: the refits' F* (1e-9) and p-values");
  check(same2, "first stage by bounds: identical F* with 1 and 2 threads");
  sp_thr_result_clear(&a);
  sp_thr_result_clear(&b);
  sp_thr_result_clear(&c2);
  free(y); free(X); free(Z); free(q); free(ent); free(tim);
}

/* boot_stage1's pass inlined for four replications of one regime regressor
   with 0-3 other regressors (p = 1-4) against its general form: one thread
   runs the eight replications in two full batches (the inlined pass), eight
   threads one each (the general pass, nb = 1); each replication draws from
   its own stream, so every F* must have the same bits. */
static void inlined_pass(void) {
  size_t N = 60, T = 6, n = N * T;
  double *y = malloc(n * sizeof *y), *X = malloc(3 * n * sizeof *X), *Z = malloc(n * sizeof *Z),
         *q = malloc(n * sizeof *q);
  int32_t *ent = malloc(n * sizeof *ent);
  unsigned long long s = 4242;
  for (size_t t = 0; t < n; t++) {
    ent[t] = (int32_t)(t / T);
    for (size_t j = 0; j < 3; j++) X[3 * t + j] = gauss(&s);
    Z[t] = gauss(&s);
    q[t] = unif(&s);
    y[t] = 0.3 * X[3 * t] - 0.2 * X[3 * t + 2] + (q[t] <= 0.4 ? 0.5 : -0.3) * Z[t] + gauss(&s) +
           0.1 * (double)(t / T % 4);
  }
  for (size_t k = 0; k <= 3; k++) {
    sp_thr_data d = {.n = n, .k = k, .m = 1, .y = y, .X = X, .ldx = 3, .Z = Z, .ldz = 1, .q = q, .entity = ent, .N = N};
    sp_thr_options o;
    sp_thr_options_init(&o);
    o.grid = 0;
    o.reps = 8;
    o.seed = 3;
    sp_thr_result a, b;
    sp_error err;
    int st = sp_threshold_fit(&d, &o, &a, &err);
    o.threads = 8;
    int st2 = sp_threshold_fit(&d, &o, &b, &err);
    int same = st == SP_OK && st2 == SP_OK && a.test[0].pvalue == b.test[0].pvalue, differ = 0;
    for (int r = 0; r < o.reps && same; r++) {
      same = a.test[0].Fboot[r] == b.test[0].Fboot[r];
      differ += r > 0 && a.test[0].Fboot[r] != a.test[0].Fboot[0];
    }
    char what[120];
    snprintf(what, sizeof what, "inlined pass, %zu other regressor%s: every F* bit-identical to the general pass", k,
             k == 1 ? "" : "s");
    check(same && differ > 0, what);
    if (st == SP_OK) sp_thr_result_clear(&a);
    if (st2 == SP_OK) sp_thr_result_clear(&b);
  }
  free(y); free(X); free(Z); free(q); free(ent);
}

/* An unbalanced panel whose threshold variable has ties, negative values
   and both signed zeros, with z = 0 on a band of q (equal SSR there). */
static void pinned_panel(size_t *pn, double **py, double **pX, double **pZ, double **pq, int32_t **pent) {
  size_t N = 150, n = 0;
  for (size_t i = 0; i < N; i++) n += 4 + i % 3;
  double *y = malloc(n * sizeof *y), *X = malloc(n * sizeof *X), *Z = malloc(n * sizeof *Z), *q = malloc(n * sizeof *q);
  int32_t *ent = malloc(n * sizeof *ent);
  unsigned long long s = 2024;
  size_t t = 0;
  for (size_t i = 0; i < N; i++) {
    double a = gauss(&s);
    for (size_t k = 0; k < 4 + i % 3; k++, t++) {
      ent[t] = (int32_t)i;
      X[t] = gauss(&s) + a;
      q[t] = floor(unif(&s) * 40.0) / 10.0 - 2.0;
      if (q[t] == 0.0) q[t] = t % 2 ? -0.0 : 0.0;
      Z[t] = q[t] >= 0.5 && q[t] <= 0.9 ? 0.0 : gauss(&s);
      y[t] = a + 0.5 * X[t] + (q[t] <= 0.0 ? 0.6 : -0.2) * Z[t] + gauss(&s);
    }
  }
  *pn = n; *py = y; *pX = X; *pZ = Z; *pq = q; *pent = ent;
}

/* Every bootstrap result pinned to its bits as computed by the core before
   the batched first stage (commit b9192ea): the replications share one pass
   four at a time (7 = a batch and a partial one), the draws take their
   modulo by a multiply, the rows are sorted by q with a radix sort (ties,
   negative values, -0 and +0), and ties of the SSR (z = 0 on a band of q)
   keep the first candidate.  The same bits at 1, 2 and 3 threads. */
static void pinned_bootstrap(void) {
  static const double F[2] = {0x1.8a994b1008157p+5, 0x1.e9d56fe6544ebp+2};
  static const double crit[2] = {0x1.6b2e5b4060ca1p+3, 0x1.b246dc8d61ddcp+2};
  static const double Fb[2][7] = {
      {0x1.e5b5c60ece28ep+2, 0x1.c68b116ba2715p+2, 0x1.9b04e40bf014fp+1, 0x1.b9fd7b381ef3cp+2, 0x1.b776da574f897p+2,
       0x1.6b2e5b4060ca1p+3, 0x1.0185bf39e8d5ep+3},
      {0x1.248f919ea9f67p+2, 0x1.4cdb6fcae8f1p+2, 0x1.8633f841bc72cp+1, 0x1.33f5cd7941b32p+2, 0x1.9dd9f16dcec45p+1,
       0x1.e8435c60b7b2p+1, 0x1.b246dc8d61ddcp+2}};
  size_t n;
  double *y, *X, *Z, *q;
  int32_t *ent;
  pinned_panel(&n, &y, &X, &Z, &q, &ent);
  sp_thr_data d = {.n = n, .k = 1, .m = 1, .y = y, .X = X, .ldx = 1, .Z = Z, .ldz = 1, .q = q, .entity = ent, .N = 150};
  for (int threads = 1; threads <= 3; threads++) {
    sp_thr_options o;
    sp_thr_options_init(&o);
    o.grid = 0;
    o.nthresh = 2;
    o.reps = 7;
    o.seed = 5;
    o.threads = threads;
    sp_thr_result r;
    sp_error err;
    int st = sp_threshold_fit(&d, &o, &r, &err);
    int same = st == SP_OK && r.gamma[0] == 0.0 && !signbit(r.gamma[0]) && r.gamma[1] == 0x1.b333333333334p+0;
    for (int j = 0; j < 2 && same; j++) {
      same = r.test[j].F == F[j] && r.test[j].pvalue == 0.0;
      for (int l = 0; l < 3; l++) same = same && r.test[j].crit[l] == crit[j];
      for (int b = 0; b < 7; b++) {
        if (r.test[j].Fboot[b] != Fb[j][b]) printf("  F%d* %d: got %a want %a\n", j + 1, b, r.test[j].Fboot[b], Fb[j][b]);
        same = same && r.test[j].Fboot[b] == Fb[j][b];
      }
    }
    printf("  %d thread%s\n", threads, threads > 1 ? "s" : "");
    check(same, "pinned: thresholds, F, p-values, critical values and every F* bit-identical to the previous core");
    sp_thr_result_clear(&r);
  }
  free(y); free(X); free(Z); free(q); free(ent);
}

int main(void) {
  hdata h;
  if (load(&h)) {
    printf("0 passed, 1 failed\n");
    return 1;
  }
  reference_cases(&h);
  naive_and_threads(&h);
  hansen_program(&h);
  unload(&h);
  simulation();
  fast_first_stage();
  inlined_pass();
  pinned_bootstrap();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
