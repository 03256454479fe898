/* bench_threshold.c: Hansen (1999) panel threshold, single and double, with
   B bootstrap replications per test on Hansen's 565 firms x 14 years, by the
   incremental scan (spillover) and by refitting the within regression at
   every grid point (the way xthreg and the R/Python ports work; the same core
   with naive = 1, so both give identical answers).  Also an exact scan with a
   bootstrap on a large synthetic panel.

     bench/threshold/build.sh [builddir]
     <builddir>/bench_threshold [B] [naive_B]

   naive_B (default B) replications are run by the refit method and its time
   is scaled to B linearly (each replication repeats the same work); the
   printed table says when that happened.  naive_B = 0 skips the refits.

     <builddir>/bench_threshold large [runs] [threads]

   times only the n = 1e6 synthetic panel (exact scan + 300 replications),
   runs times, one line per run (for alternating before/after comparisons). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spillover/csv.h"
#include "spillover/frame.h"
#include "spillover/threshold.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct { size_t n; double *y, *X, *Z, *q; int32_t *ent, *tim; size_t N; } data;

static int load(data *h) {
  sp_error err;
  sp_frame *f = NULL;
  if (sp_frame_read_csv("tests/reference/data/hansen_1999_invest_565firms.csv", NULL, &f, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  const char *xn[] = {"q1", "q2", "q3", "d1", "qd1"};
  size_t n = f->nrow;
  h->n = n; h->N = 565;
  h->y = malloc(n * sizeof(double)); h->X = malloc(5 * n * sizeof(double));
  h->Z = malloc(n * sizeof(double)); h->q = malloc(n * sizeof(double));
  h->ent = malloc(n * sizeof(int32_t)); h->tim = malloc(n * sizeof(int32_t));
  for (size_t t = 0; t < n; t++) {
    h->y[t] = sp_frame_column(f, "i")->num[t];
    for (int j = 0; j < 5; j++) h->X[5 * t + (size_t)j] = sp_frame_column(f, xn[j])->num[t];
    h->Z[t] = sp_frame_column(f, "c1")->num[t];
    h->q[t] = sp_frame_column(f, "d1")->num[t];
    h->ent[t] = (int32_t)sp_frame_column(f, "id")->num[t] - 1;
    h->tim[t] = (int32_t)sp_frame_column(f, "year")->num[t];
  }
  sp_frame_free(f);
  return 0;
}

static double run(const data *h, size_t k, int nthresh, int reps, int threads, int naive, size_t grid, sp_thr_result *keep) {
  sp_thr_data d = {.n = h->n, .k = k, .m = 1, .y = h->y, .X = h->X, .ldx = k, .Z = h->Z, .ldz = 1, .q = h->q,
                   .entity = h->ent, .N = h->N, .time = h->tim};
  sp_thr_options o;
  sp_thr_options_init(&o);
  o.nthresh = nthresh; o.reps = reps; o.threads = threads; o.naive = naive; o.seed = 1999; o.grid = grid;
  sp_thr_result r;
  sp_error err;
  double t0 = now();
  if (sp_threshold_fit(&d, &o, &r, &err)) { fprintf(stderr, "fit failed: %s\n", err.msg); exit(1); }
  double t = now() - t0;
  if (keep) *keep = r; else sp_thr_result_clear(&r);
  return t;
}

static double best(const data *h, size_t k, int nthresh, int reps, int threads, size_t grid) {
  double b = 1e300;
  for (int i = 0; i < 3; i++) b = fmin(b, run(h, k, nthresh, reps, threads, 0, grid, NULL));
  return b;
}

/* The synthetic Hansen design: N = n / 10 entities x 10 periods, two
   regressors and one regime regressor, threshold at q = 0.4. */
static void synthetic(data *g, size_t n) {
  *g = (data){.n = n, .N = n / 10};
  g->y = malloc(n * sizeof(double)); g->X = malloc(2 * n * sizeof(double)); g->Z = malloc(n * sizeof(double));
  g->q = malloc(n * sizeof(double)); g->ent = malloc(n * sizeof(int32_t)); g->tim = malloc(n * sizeof(int32_t));
  unsigned long long st = 42;
  for (size_t t = 0; t < n; t++) {
    double u[6];
    for (int j = 0; j < 6; j++) {
      st = st * 6364136223846793005ULL + 1442695040888963407ULL;
      u[j] = (double)(st >> 11) * 0x1.0p-53;
    }
    g->ent[t] = (int32_t)(t / 10);
    g->tim[t] = (int32_t)(t % 10);
    g->X[2 * t] = u[0]; g->X[2 * t + 1] = u[1]; g->Z[t] = u[2] - 0.5; g->q[t] = u[3];
    g->y[t] = 0.5 * u[0] - 0.3 * u[1] + (u[3] <= 0.4 ? 1.0 : 0.5) * g->Z[t] + (u[4] - 0.5) + 0.01 * (double)(t / 10 % 7);
  }
}

static void unload(data *g) { free(g->y); free(g->X); free(g->Z); free(g->q); free(g->ent); free(g->tim); }

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "large") == 0) {
    int runs = argc > 2 ? atoi(argv[2]) : 1, threads = argc > 3 ? atoi(argv[3]) : 1;
    data g;
    synthetic(&g, 1000000);
    for (int i = 0; i < runs; i++) {
      sp_thr_result r;
      struct timespec c0, c1;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
      double t = run(&g, 2, 1, 300, threads, 0, 0, &r);
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
      /* CPU time too: the machine is shared, and wall time counts other jobs' turns. */
      double cpu = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
      /* A digest of every F* (FNV-1a of their bits): equal digests, bit-identical bootstraps. */
      unsigned long long h = 1469598103934665603ULL;
      const unsigned char *fb = (const unsigned char *)r.test[0].Fboot;
      for (size_t i = 0; i < (size_t)r.test[0].reps * sizeof(double); i++) h = (h ^ fb[i]) * 1099511628211ULL;
      printf("n = 1e6, exact scan + 300 reps, %d thread%s: wall %.3f s, cpu %.3f s (threshold %.6g, F1 %.6g, p %.4f, "
             "F* digest %016llx)\n", threads, threads > 1 ? "s" : "", t, cpu, r.gamma[0], r.test[0].F,
             r.test[0].pvalue, h);
      sp_thr_result_clear(&r);
    }
    unload(&g);
    return 0;
  }
  int B = argc > 1 ? atoi(argv[1]) : 300;
  int NB = argc > 2 ? atoi(argv[2]) : B;
  data h;
  if (load(&h)) return 1;
  printf("Hansen (1999) data: n = %zu, 565 firms, quantile grid 400 (393 points), B = %d per test\n\n", h.n, B);
  printf("| model | spillover cold (1 thr) | spillover warm (1 thr) | spillover warm (2 thr) | refit per grid point (1 thr) | ratio (warm, 1 thr) |\n");
  printf("|---|---|---|---|---|---|\n");
  for (int nt = 1; nt <= 2; nt++) {
    sp_thr_result a, b;
    double cold = run(&h, 5, nt, B, 1, 0, 400, &a);
    double warm1 = best(&h, 5, nt, B, 1, 400);
    double warm2 = best(&h, 5, nt, B, 2, 400);
    if (NB == 0) {  /* incremental method only */
      printf("| %s | %.3f s | %.3f s | %.3f s | - | - |\n", nt == 1 ? "single" : "double", cold, warm1, warm2);
      sp_thr_result_clear(&a);
      continue;
    }
    double tn = run(&h, 5, nt, NB, 1, 1, 400, &b);
    double tn_scaled = tn;
    if (NB != B) {
      /* time without bootstrap + per-replication time scaled */
      double t0 = run(&h, 5, nt, 0, 1, 1, 400, NULL);
      tn_scaled = t0 + (tn - t0) * (double)B / (double)(NB > 0 ? NB : 1);
    }
    int agree = a.gamma[0] == b.gamma[0] && (nt == 1 || a.gamma[1] == b.gamma[1]) &&
                fabs(a.test[nt - 1].F - b.test[nt - 1].F) < 1e-9 * a.test[nt - 1].F;
    printf("| %s (F1%s, %d reps each) | %.3f s | %.3f s | %.3f s | %.1f s%s | %.0fx |\n",
           nt == 1 ? "single" : "double", nt == 1 ? "" : " and F2", B, cold, warm1, warm2, tn_scaled,
           NB != B ? " (scaled)" : "", tn_scaled / warm1);
    if (!agree) printf("WARNING: the two methods disagree\n");
    sp_thr_result_clear(&a);
    sp_thr_result_clear(&b);
  }
  if (NB != B && NB > 0) printf("\n(scaled): the refit method ran %d replications; its time is scaled to %d linearly.\n", NB, B);

  /* A large synthetic panel: exact scan over every distinct value, B reps. */
  size_t sizes[2] = {100000, 1000000};
  printf("\nSynthetic panel (1e4/1e5 entities x 10 periods, 2 regressors + 1 regime regressor), exact search over all distinct values, single threshold, B = %d\n\n", B);
  printf("| n | candidates | no bootstrap | with bootstrap, 1 thread | 2 threads |\n|---|---|---|---|---|\n");
  for (int s = 0; s < 2; s++) {
    size_t n = sizes[s];
    data g;
    synthetic(&g, n);
    sp_thr_result r;
    double t0 = run(&g, 2, 1, 0, 1, 0, 0, &r);
    size_t ncand = r.ngrid;
    sp_thr_result_clear(&r);
    double t1 = run(&g, 2, 1, B, 1, 0, 0, NULL);
    double t2 = run(&g, 2, 1, B, 2, 0, 0, NULL);
    printf("| %zu | %zu | %.3f s | %.3f s | %.3f s |\n", n, ncand, t0, t1, t2);
    unload(&g);
  }
  free(h.y); free(h.X); free(h.Z); free(h.q); free(h.ent); free(h.tim);
  return 0;
}
