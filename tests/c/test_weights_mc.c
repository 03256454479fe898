/* test_weights_mc.c: the Monte Carlo traces of powers of U = (W - a I) / b,
   now converted from the Chebyshev moments of one recurrence, equal the
   direct estimator (the same probes multiplied by U k times) to 1e-12, and
   the Chebyshev traces equal their own recurrence; on asymmetric kNN
   weights, shifted and scaled, with an order of 60. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "spillover/weights.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

/* The estimators as written out: mean of n u'U^k u / u'u and of n u'T_k(U)u / u'u. */
static void direct(const sp_weights *W, double a, double b, size_t kmax, size_t reps, unsigned long seed,
                   double *tp, double *tc) {
  size_t n = W->n;
  double *u = malloc(n * sizeof *u), *v = malloc(n * sizeof *v), *w = malloc(n * sizeof *w);
  double *c0 = malloc(n * sizeof *c0), *c1 = malloc(n * sizeof *c1);
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, seed);
  memset(tp, 0, kmax * sizeof *tp);
  memset(tc, 0, kmax * sizeof *tc);
  for (size_t rep = 0; rep < reps; rep++) {
    double uu = 0;
    for (size_t i = 0; i < n; i++) { v[i] = c0[i] = u[i] = gsl_ran_gaussian_ziggurat(r, 1.0); uu += u[i] * u[i]; }
    double norm = (double)n / uu / (double)reps;
    sp_weights_lag(W, u, c1);
    for (size_t i = 0; i < n; i++) c1[i] = (c1[i] - a * u[i]) / b;
    for (size_t k = 0; k < kmax; k++) {
      sp_weights_lag(W, v, w);
      double s = 0, c = 0;
      for (size_t i = 0; i < n; i++) { v[i] = (w[i] - a * v[i]) / b; s += u[i] * v[i]; c += u[i] * c1[i]; }
      tp[k] += s * norm;
      tc[k] += c * norm;
      sp_weights_lag(W, c1, w);
      for (size_t i = 0; i < n; i++) {
        double next = 2 * (w[i] - a * c1[i]) / b - c0[i];
        c0[i] = c1[i];
        c1[i] = next;
      }
    }
  }
  gsl_rng_free(r);
  free(u); free(v); free(w); free(c0); free(c1);
}

int main(void) {
  enum { N = 400, K = 60, R = 7 };
  double x[N], y[N];
  gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
  for (size_t i = 0; i < N; i++) { x[i] = gsl_rng_uniform(g); y[i] = gsl_rng_uniform(g); }
  gsl_rng_free(g);
  sp_error err;
  sp_error_clear(&err);
  sp_weights *W = NULL;
  sp_weights_knn(N, x, y, 4, 0, &W, &err);
  sp_weights_set_style(W, 'W', 0, &err);
  const double shifts[2][2] = {{0, 1}, {0.1, 0.95}};
  for (int c = 0; c < 2; c++) {
    double a = shifts[c][0], b = shifts[c][1], tp[K], tc[K], wp[K], wc[K];
    int st = sp_weights_traces_mc_shifted(W, a, b, K, R, 5, tp, tc, &err);
    direct(W, a, b, K, R, 5, wp, wc);
    double worst = 0;
    for (size_t k = 2; k < K; k++)  /* k <= 2 are exact, not estimated */
      worst = fmax(worst, fmax(fabs(tp[k] - wp[k]), fabs(tc[k] - wc[k])) / N);
    printf("  shift %g scale %g: max difference / n %.3g (tr(U^60) = %.6g)\n", a, b, worst, tp[K - 1]);
    check(st == SP_OK && worst <= 1e-12, c ? "shifted and scaled U: the direct estimates to 1e-12"
                                           : "U = W: the direct estimates to 1e-12");
  }
  double only[K], tp[K], tc[K];
  check(sp_weights_traces_mc(W, K, R, 5, only, &err) == SP_OK &&
        sp_weights_traces_mc_shifted(W, 0, 1, K, R, 5, tp, tc, &err) == SP_OK && memcmp(only, tp, sizeof tp) == 0,
        "without Chebyshev traces: the same powers");
  sp_weights_free(W);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
