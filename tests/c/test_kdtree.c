/* test_kdtree.c: the k-d tree (kdtree.h) and the nearest-neighbour and
   distance-band weights built on it, against brute force.  The brute force
   below is the O(n^2) search weights.c used before the tree: every pair, the
   same distance formulas, the k best kept by strict insertion (a tie at the
   k-th distance keeps the lower index).  The weights must come out identical
   (same links, bit-identical values), on random points, on an integer grid
   where ties are everywhere, with duplicated points, and on the sphere
   (poles, the date line, longitudes in 0..360). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/kdtree.h"
#include "spillover/weights.h"

#define EARTH_RADIUS_KM 6371.0088
#define DEG2RAD 0.017453292519943295

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

static uint64_t state = 12345;
static double unif(void) {  /* xorshift64*: reproducible across libcs */
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return (double)((state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* ---- the brute force (weights.c before the tree) ------------------------- */

static double dist(const double *x, const double *y, size_t a, size_t b, int gc) {
  if (!gc) return hypot(x[a] - x[b], y[a] - y[b]);
  double dlat = (y[b] - y[a]) * DEG2RAD, dlon = (x[b] - x[a]) * DEG2RAD;
  double s1 = sin(dlat / 2), s2 = sin(dlon / 2);
  double h = s1 * s1 + cos(y[a] * DEG2RAD) * cos(y[b] * DEG2RAD) * s2 * s2;
  if (h > 1) h = 1;
  return 2 * EARTH_RADIUS_KM * asin(sqrt(h));
}

/* The k nearest of every point, sorted by index per row (as CSR rows are). */
static size_t *brute_knn(size_t n, const double *x, const double *y, size_t k, int gc) {
  size_t *nb = malloc(n * k * sizeof *nb), *bj = malloc(k * sizeof *bj);
  double *bd = malloc(k * sizeof *bd);
  for (size_t i = 0; i < n; i++) {
    size_t have = 0;
    for (size_t j = 0; j < n; j++) {
      if (j == i) continue;
      double d = dist(x, y, i, j, gc);
      if (have == k && !(d < bd[k - 1])) continue;
      size_t p = have < k ? have++ : k - 1;
      while (p > 0 && d < bd[p - 1]) { bd[p] = bd[p - 1]; bj[p] = bj[p - 1]; p--; }
      bd[p] = d;
      bj[p] = j;
    }
    for (size_t a = 1; a < k; a++)  /* insertion sort by index */
      for (size_t b = a; b > 0 && bj[b] < bj[b - 1]; b--) { size_t t = bj[b]; bj[b] = bj[b - 1]; bj[b - 1] = t; }
    memcpy(nb + i * k, bj, k * sizeof *nb);
  }
  free(bj);
  free(bd);
  return nb;
}

static int same_knn(size_t n, const double *x, const double *y, size_t k, int gc) {
  sp_weights *W = NULL;
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_knn(n, x, y, k, gc, &W, &err) != SP_OK) { printf("  %s\n", err.msg); return 0; }
  size_t *nb = brute_knn(n, x, y, k, gc);
  int ok = W->nnz == n * k;
  for (size_t i = 0; i < n && ok; i++) {
    ok = W->rowptr[i] == i * k;
    for (size_t c = 0; c < k && ok; c++) ok = W->col[i * k + c] == nb[i * k + c] && W->raw[i * k + c] == 1.0;
    if (!ok) printf("  row %zu differs\n", i + 1);
  }
  free(nb);
  sp_weights_free(W);
  return ok;
}

/* Identical links and bit-identical values, or the same error message. */
static int same_band(size_t n, const double *x, const double *y, double power, double cutoff, int gc) {
  int all = !(cutoff > 0) || isinf(cutoff);
  char want[256] = "";
  size_t m = 0;
  for (size_t i = 0; i < n && !want[0]; i++)
    for (size_t j = 0; j < n && !want[0]; j++) {
      if (j == i) continue;
      double d = dist(x, y, i, j, gc);
      if (d == 0)
        snprintf(want, sizeof want,
                 "weights.distance: units %zu and %zu are at the same point; inverse distance is infinite", i + 1,
                 j + 1);
      else if (all || d <= cutoff) m++;
    }
  sp_weights *W = NULL;
  sp_error err;
  sp_error_clear(&err);
  int st = sp_weights_distance(n, x, y, power, cutoff, gc, &W, &err);
  if (want[0]) {
    if (st == SP_EVALUE && strcmp(err.msg, want) == 0) return 1;
    printf("  expected \"%s\", got %d \"%s\"\n", want, st, err.msg);
    sp_weights_free(W);
    return 0;
  }
  if (st != SP_OK) { printf("  %s\n", err.msg); return 0; }
  int ok = W->nnz == m;
  size_t q = 0;
  for (size_t i = 0; i < n && ok; i++) {
    ok = W->rowptr[i] == q;
    for (size_t j = 0; j < n && ok; j++) {
      if (j == i) continue;
      double d = dist(x, y, i, j, gc);
      if (!(all || d <= cutoff)) continue;
      ok = q < W->nnz && W->col[q] == j && W->raw[q] == pow(d, -power);
      q++;
    }
    if (!ok) printf("  row %zu differs\n", i + 1);
  }
  sp_weights_free(W);
  return ok && q == m;
}

/* ---- the tree itself: a ball search misses nothing ------------------------ */

typedef struct {
  const double *Pt, *q;
  int dim;
  double r2;
  unsigned char *seen;
  size_t visits;
} ball;

static void mark(void *ctx, size_t pos) {
  ball *b = ctx;
  b->seen[pos]++;
  b->visits++;
}

static int ball_complete(size_t n, int dim) {
  double *P = malloc(n * (size_t)dim * sizeof *P), *Pt = malloc(n * (size_t)dim * sizeof *Pt);
  size_t *idx = malloc(n * sizeof *idx);
  unsigned char *split = calloc(n, 1), *seen = malloc(n);
  for (size_t i = 0; i < n; i++) {
    idx[i] = i;
    for (int d = 0; d < dim; d++) P[dim * i + d] = floor(unif() * 50);  /* many equal coordinates */
  }
  sp_kdtree_build(idx, split, P, dim, 0, n);
  int ok = 1;
  for (size_t i = 0; i < n; i++) {  /* a permutation */
    seen[i] = 0;
  }
  for (size_t p = 0; p < n; p++) {
    if (seen[idx[p]]++) ok = 0;
    memcpy(Pt + dim * p, P + dim * idx[p], (size_t)dim * sizeof *P);
  }
  size_t total = 0;
  for (size_t p = 0; p < n && ok; p += 7) {
    ball b = {Pt, Pt + dim * p, dim, 9.0 * (double)(p % 4), seen, 0};
    memset(seen, 0, n);
    sp_kdtree_search(Pt, split, dim, b.q, &b.r2, 0, n, mark, &b);
    total += b.visits;
    for (size_t s = 0; s < n && ok; s++) {
      double d2 = 0;
      for (int d = 0; d < dim; d++) d2 += (Pt[dim * s + d] - b.q[d]) * (Pt[dim * s + d] - b.q[d]);
      if (seen[s] > 1 || (d2 <= b.r2 && !seen[s])) ok = 0;
    }
  }
  /* and it prunes: far fewer visits than points times queries */
  ok = ok && total < (n / 7 + 1) * n / 4;
  free(P); free(Pt); free(idx); free(split); free(seen);
  return ok;
}

int main(void) {
  check(ball_complete(3000, 2), "2-d ball search visits every point within the radius, once, and prunes");
  check(ball_complete(3000, 3), "3-d ball search visits every point within the radius, once, and prunes");

  enum { N = 1500 };
  double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);

  /* uniform random points */
  for (size_t i = 0; i < N; i++) { x[i] = unif(); y[i] = unif(); }
  check(same_knn(N, x, y, 1, 0) && same_knn(N, x, y, 6, 0) && same_knn(N, x, y, 20, 0),
        "knn (k = 1, 6, 20) on random points: the brute force's weights");
  check(same_band(N, x, y, 1, 0.05, 0) && same_band(N, x, y, 2, 0.2, 0),
        "distance band on random points: the brute force's links and values");
  check(same_band(300, x, y, 1, 0, 0), "distance without a cutoff: every pair");
  check(same_knn(5, x, y, 4, 0), "knn with k = n - 1 (fewer points than a leaf)");

  /* an integer grid: ties at every distance, and the cutoff exactly on links */
  for (size_t i = 0; i < N; i++) { x[i] = (double)(i % 40); y[i] = (double)(i / 40); }
  check(same_knn(N, x, y, 4, 0) && same_knn(N, x, y, 5, 0) && same_knn(N, x, y, 13, 0),
        "knn on a grid: ties at the k-th distance keep the lower index");
  check(same_band(N, x, y, 1, 2.0, 0) && same_band(N, x, y, 1, sqrt(5.0), 0),
        "distance band on a grid: pairs exactly at the cutoff are in");

  /* duplicated points: distance 0 neighbours first, ties among them by index */
  for (size_t i = 0; i < N; i++) { x[i] = floor(unif() * 12); y[i] = floor(unif() * 12); }
  check(same_knn(N, x, y, 3, 0) && same_knn(N, x, y, 15, 0), "knn with duplicated points");
  check(same_band(N, x, y, 1, 1.5, 0), "distance band with duplicated points: the same first pair refused");

  /* clusters far apart: an unbalanced tree */
  for (size_t i = 0; i < N; i++) {
    double c = (double)(i % 3) * 1e6;
    x[i] = c + unif() * 1e-3;
    y[i] = -c + unif() * 1e-3;
  }
  check(same_knn(N, x, y, 7, 0), "knn on tight clusters far apart");

  /* the sphere: the whole globe, longitudes in -180..180 and 0..360 */
  for (size_t i = 0; i < N; i++) {
    x[i] = i % 2 ? unif() * 360 - 180 : unif() * 360;
    y[i] = asin(2 * unif() - 1) / DEG2RAD;
  }
  check(same_knn(N, x, y, 1, 1) && same_knn(N, x, y, 8, 1), "great-circle knn over the globe");
  check(same_band(N, x, y, 1, 500, 1) && same_band(N, x, y, 2, 2000, 1), "great-circle distance band over the globe");
  check(same_band(200, x, y, 1, 0, 1), "great circles without a cutoff: every pair");

  /* near the poles and across the date line, on a 0.5-degree grid (ties) */
  for (size_t i = 0; i < N; i++) {
    x[i] = 179.0 + 0.5 * (double)(i % 5) - (i % 5 > 2 ? 360 : 0);  /* 179 .. 180, -179.5, -179 */
    y[i] = (i % 2 ? 1 : -1) * (80 + 0.5 * (double)((i / 5) % 21));        /* +-80 .. +-90 */
  }
  check(same_knn(N, x, y, 6, 1), "great-circle knn at the poles and the date line, with ties and duplicates");
  check(same_band(N, x, y, 1, 100, 1), "great-circle band with duplicated points: the same first pair refused");
  for (size_t i = 0; i < 40; i++) { x[i] = i % 2 ? 179.9 : -179.9 + 0.001 * (double)i; y[i] = 0.01 * (double)i; }
  check(same_knn(40, x, y, 3, 1) && same_band(40, x, y, 1, 30, 1), "great circles across the date line");

  free(x);
  free(y);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
