/* test_spml_traces.c: the exact traces of sp_logdet_traces (tr A, tr G,
   tr G G, tr G'G with A = (I - rho W)^-1, G = W A) against a dense LU
   inverse computed here, for W similar to a symmetric matrix (the Cholesky
   path: row-standardised symmetric neighbours, restricted and
   re-standardised in a panel with a missing unit), for W that is not (the
   LU path: plain nearest neighbours), and for rho beyond the interval, where
   I - rho S is not positive definite and the Cholesky falls back. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/spml.h"  /* before lapacke.h, whose complex.h defines I, a field in weights.h */
#include <lapacke.h>

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

static uint64_t state = 99;
static double unif(void) {
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return (double)((state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* The four traces of one block by LU, summed over the blocks of s with
   their multiplicities. */
static void reference(const sp_spml_sample *s, double rho, double t[4]) {
  for (int q = 0; q < 4; q++) t[q] = 0;
  for (size_t d = 0; d < s->ndistinct; d++) {
    const sp_weights *w = s->Wd[d];
    size_t n = w->n;
    double *A = calloc(n * n, sizeof *A), *G = calloc(n * n, sizeof *G), *Wd = malloc(n * n * sizeof *Wd);
    lapack_int *piv = malloc(n * sizeof *piv);
    sp_weights_dense(w, Wd);
    for (size_t i = 0; i < n * n; i++) A[i] = -rho * Wd[i];
    for (size_t i = 0; i < n; i++) A[i * n + i] += 1;
    LAPACKE_dgetrf(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)n, A, (lapack_int)n, piv);
    LAPACKE_dgetri(LAPACK_ROW_MAJOR, (lapack_int)n, A, (lapack_int)n, piv);
    for (size_t i = 0; i < n; i++)
      for (size_t k = 0; k < n; k++)
        for (size_t j = 0; j < n; j++) G[i * n + j] += Wd[i * n + k] * A[k * n + j];
    double m = (double)s->mult[d];
    for (size_t i = 0; i < n; i++) {
      t[0] += m * A[i * n + i];
      t[1] += m * G[i * n + i];
      for (size_t j = 0; j < n; j++) {
        t[2] += m * G[i * n + j] * G[j * n + i];
        t[3] += m * G[i * n + j] * G[i * n + j];
      }
    }
    free(A); free(G); free(Wd); free(piv);
  }
}

/* Every method that computes tr(G'G) densely against the reference. */
static int traces_match(const sp_spml_sample *s, double rho, const char *what) {
  double want[4];
  reference(s, rho, want);
  int ok = 1;
  const int methods[2] = {SP_LOGDET_EIGEN, SP_LOGDET_LU};
  for (int m = 0; m < 2; m++) {
    sp_logdet_options o;
    sp_logdet_options_init(&o);
    o.method = methods[m];
    sp_logdet *ld = NULL;
    sp_error err;
    sp_error_clear(&err);
    double t[4];
    if (sp_logdet_new(s, &o, &ld, &err) != SP_OK || sp_logdet_traces(ld, rho, 1000, 1, t, &err) != SP_OK) {
      printf("  %s\n", err.msg);
      ok = 0;
    } else {
      for (int q = 0; q < 4; q++)
        if (!(fabs(t[q] - want[q]) <= 1e-10 * fmax(1, fabs(want[q])))) {
          printf("  %s, method %d, trace %d: %.17g, want %.17g\n", what, m, q, t[q], want[q]);
          ok = 0;
        }
    }
    sp_logdet_free(ld);
  }
  return ok;
}

int main(void) {
  sp_error err;
  sp_error_clear(&err);
  enum { N = 250, T = 3 };
  double x[N], y[N];
  for (size_t i = 0; i < N; i++) { x[i] = unif(); y[i] = unif(); }
  sp_weights *K = NULL, *W = NULL;
  sp_weights_knn(N, x, y, 5, 0, &K, &err);
  size_t m = 0, fi[2 * 5 * N], ti[2 * 5 * N];
  for (size_t i = 0; i < N; i++)
    for (size_t p = K->rowptr[i]; p < K->rowptr[i + 1]; p++) {
      fi[m] = i; ti[m] = K->col[p]; m++;
      fi[m] = K->col[p]; ti[m] = i; m++;
    }
  sp_weights_from_links(N, fi, ti, NULL, m, &W, &err);
  sp_weights_set_style(W, 'W', 0, &err);
  sp_weights_set_style(K, 'W', 0, &err);
  double s[N];
  check(sp_weights_similar_symmetric(W, s) && !sp_weights_similar_symmetric(K, s),
        "symmetric kNN row-standardised is similar to a symmetric matrix, plain kNN is not");

  /* a panel of T periods; period 2 lacks unit 1, so its block is restricted and re-standardised */
  size_t unit[N * T], block[N * T], nrow = 0;
  for (size_t t = 0; t < T; t++)
    for (size_t i = 0; i < N; i++) {
      if (t == 1 && i == 0) continue;
      unit[nrow] = i;
      block[nrow] = t;
      nrow++;
    }
  sp_spml_sample *S = NULL, *SK = NULL;
  sp_spml_sample_new(W, nrow, unit, block, T, 1, &S, &err);
  sp_spml_sample_new(K, nrow, unit, block, T, 1, &SK, &err);
  check(S != NULL && S->ndistinct == 2 && SK != NULL, "two distinct blocks");
  check(traces_match(S, 0.45, "similar"), "similar to symmetric (Cholesky): the LU traces at rho = 0.45");
  check(traces_match(S, -0.8, "similar"), "similar to symmetric (Cholesky): the LU traces at rho = -0.8");
  check(traces_match(S, 1.3, "similar"), "rho beyond the interval (not positive definite): the LU traces");
  check(traces_match(SK, 0.45, "general"), "not similar (LU): the reference traces");
  sp_spml_sample_free(S);
  sp_spml_sample_free(SK);
  sp_weights_free(W);
  sp_weights_free(K);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
