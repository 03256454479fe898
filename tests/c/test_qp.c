/*
** test_qp.c: the simplex-constrained least-norm problem (qp.c) against
** closed forms and against brute force over every face of the hull.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "spillover/qp.h"

static int passed, failed;

static void check(int ok, const char *what, const char *detail) {
  if (ok) {
    passed++;
    printf("PASS %s\n", what);
  } else {
    failed++;
    printf("FAIL %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  }
}

/* A deterministic stream (splitmix64) and normal draws by Box-Muller. */
static unsigned long long state = 20100601ULL;
static double uniform(void) {
  unsigned long long z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}
static double normal(void) { return sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()); }

/* Least-norm affine combination of the points in mask (KKT by Gaussian
   elimination); returns 0 when singular. */
static int affine(const double *P, size_t K, const size_t *S, size_t m, double *a) {
  double A[12][13];
  size_t n = m + 1;
  for (size_t i = 0; i < m; i++) {
    for (size_t j = 0; j < m; j++) {
      double s = 0.0;
      for (size_t k = 0; k < K; k++) s += P[S[i] * K + k] * P[S[j] * K + k];
      A[i][j] = s;
    }
    A[i][m] = 1.0;
    A[m][i] = 1.0;
    A[i][n] = 0.0;
  }
  A[m][m] = 0.0;
  A[m][n] = 1.0;
  for (size_t c = 0; c < n; c++) {
    size_t p = c;
    for (size_t r = c + 1; r < n; r++)
      if (fabs(A[r][c]) > fabs(A[p][c])) p = r;
    if (fabs(A[p][c]) < 1e-12) return 0;
    for (size_t j = 0; j <= n; j++) {
      double t = A[c][j];
      A[c][j] = A[p][j];
      A[p][j] = t;
    }
    for (size_t r = 0; r < n; r++)
      if (r != c) {
        double f = A[r][c] / A[c][c];
        for (size_t j = c; j <= n; j++) A[r][j] -= f * A[c][j];
      }
  }
  for (size_t i = 0; i < m; i++) a[i] = A[i][n] / A[i][i];
  return 1;
}

static double brute(const double *P, size_t J, size_t K, double *w) {
  double best = INFINITY;
  size_t S[10];
  double a[10];
  for (unsigned mask = 1; mask < (1u << J); mask++) {
    size_t m = 0;
    for (size_t j = 0; j < J; j++)
      if (mask & (1u << j)) S[m++] = j;
    if (m > K + 1 || !affine(P, K, S, m, a)) continue;
    int feasible = 1;
    for (size_t i = 0; i < m; i++)
      if (a[i] < -1e-12) feasible = 0;
    if (!feasible) continue;
    double v = 0.0;
    for (size_t k = 0; k < K; k++) {
      double x = 0.0;
      for (size_t i = 0; i < m; i++) x += a[i] * P[S[i] * K + k];
      v += x * x;
    }
    if (v < best - 1e-13) {
      best = v;
      for (size_t j = 0; j < J; j++) w[j] = 0.0;
      for (size_t i = 0; i < m; i++) w[S[i]] = a[i];
    }
  }
  return best;
}

int main(void) {
  sp_error e;
  double w[10], norm2;
  char d[200];

  /* Closed forms. */
  const double two[4] = {1, 0, -1, 0};
  sp_error_clear(&e);
  int st = sp_qp_simplex(two, 2, 2, w, &norm2, &e);
  check(st == SP_OK && fabs(w[0] - 0.5) < 1e-15 && fabs(w[1] - 0.5) < 1e-15 && norm2 < 1e-30,
        "origin between two points: weights 1/2, norm 0", NULL);
  const double line[4] = {1, 1, 2, 2};
  st = sp_qp_simplex(line, 2, 2, w, &norm2, &e);
  check(st == SP_OK && w[0] == 1.0 && w[1] == 0.0 && fabs(norm2 - 2.0) < 1e-15, "nearest vertex", NULL);
  const double edge[6] = {1, -1, 1, 1, 3, 0};
  st = sp_qp_simplex(edge, 3, 2, w, &norm2, &e);
  check(st == SP_OK && fabs(w[0] - 0.5) < 1e-14 && fabs(w[1] - 0.5) < 1e-14 && w[2] == 0.0 && fabs(norm2 - 1.0) < 1e-14,
        "nearest point on an edge", NULL);

  /* Random problems against brute force. */
  double worst_obj = 0.0, worst_w = 0.0;
  int unique = 0, simplex = 1;
  for (int c = 0; c < 400; c++) {
    size_t J = 3 + (size_t)(uniform() * 6), K = 1 + (size_t)(uniform() * 4);
    double shift = c % 3 == 0 ? 0.0 : 1.5, P[40], bw[10];
    for (size_t i = 0; i < J * K; i++) P[i] = normal() + shift;
    st = sp_qp_simplex(P, J, K, w, &norm2, &e);
    double bobj = brute(P, J, K, bw), s = 0.0;
    for (size_t j = 0; j < J; j++) {
      s += w[j];
      if (w[j] < 0.0) simplex = 0;
    }
    if (st != SP_OK || fabs(s - 1.0) > 1e-12) simplex = 0;
    double dev = fabs(norm2 - bobj) / (bobj > 1 ? bobj : 1);
    if (dev > worst_obj) worst_obj = dev;
    if (bobj > 1e-8) {
      unique++;
      for (size_t j = 0; j < J; j++)
        if (fabs(w[j] - bw[j]) > worst_w) worst_w = fabs(w[j] - bw[j]);
    }
  }
  check(simplex, "400 random problems: weights on the simplex", NULL);
  snprintf(d, sizeof d, "worst %g", worst_obj);
  check(worst_obj < 1e-10, "least norm = brute force over every face", d);
  snprintf(d, sizeof d, "worst %g over %d", worst_w, unique);
  check(worst_w < 1e-8 && unique > 200, "weights = brute force where unique", d);

  /* Errors. */
  st = sp_qp_simplex(two, 0, 2, w, &norm2, &e);
  check(st == SP_EDIM && strstr(e.msg, "0 points") != NULL, "no points: SP_EDIM", e.msg);
  const double bad[4] = {1, 0, NAN, 0};
  st = sp_qp_simplex(bad, 2, 2, w, &norm2, &e);
  check(st == SP_EVALUE && strstr(e.msg, "coordinate 1 of point 2 is not finite") != NULL, "NaN coordinate named", e.msg);

  printf("%d passed, %d failed\n", passed, failed);
  return failed > 0;
}
