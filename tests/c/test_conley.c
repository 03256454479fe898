/*
** test_conley.c: the Conley meat (conley.c, k-d tree neighbour search)
** against a brute-force O(n^2) double loop over every pair, for
** cross-sections and panels, both kernels, weights, coincident points, the
** date line and the poles; the cutoff -> 0 limit (the HC0 meat); and the
** errors.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_matrix.h>

#include "spillover/conley.h"

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
static unsigned long long state = 19990101ULL;
static double uniform(void) {
  unsigned long long z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}
static double normal(void) { return sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()); }

/* The haversine distance written out independently (atan2 form, as conleyreg). */
static double dist_km(double lat1, double lon1, double lat2, double lon2) {
  const double r = 0.017453292519943295;
  double a = pow(sin((lat2 - lat1) * r / 2), 2) + cos(lat1 * r) * cos(lat2 * r) * pow(sin((lon2 - lon1) * r / 2), 2);
  return 2 * 6371.01 * atan2(sqrt(a), sqrt(1 - a));
}

/* Brute force: every ordered pair, the definition in conley.h. */
static void brute(const gsl_matrix *X, const double *e, const sp_conley_spec *s, gsl_matrix *M) {
  size_t n = X->size1, k = X->size2;
  gsl_matrix_set_zero(M);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      double w = 0;
      int same_t = s->time == NULL || s->time[i] == s->time[j];
      if (same_t) {
        double d = i == j ? 0 : dist_km(s->lat[i], s->lon[i], s->lat[j], s->lon[j]);
        if (d <= s->cutoff) w = s->kernel == SP_CONLEY_BARTLETT ? 1 - d / s->cutoff : 1;
      } else if (s->lag > 0 && s->unit[i] == s->unit[j]) {
        long dt = labs((long)s->time[i] - (long)s->time[j]);
        if (dt <= s->lag) w = 1 - (double)dt / (double)(s->lag + 1);
      }
      if (w == 0) continue;
      double wi = s->weights ? s->weights[i] : 1, wj = s->weights ? s->weights[j] : 1;
      for (size_t a = 0; a < k; a++)
        for (size_t b = 0; b < k; b++)
          *gsl_matrix_ptr(M, a, b) += w * wi * e[i] * gsl_matrix_get(X, i, a) * wj * e[j] * gsl_matrix_get(X, j, b);
    }
}

static double rel_diff(const gsl_matrix *A, const gsl_matrix *B) {
  double num = 0, den = 0;
  for (size_t i = 0; i < A->size1; i++)
    for (size_t j = 0; j < A->size2; j++) {
      num = fmax(num, fabs(gsl_matrix_get(A, i, j) - gsl_matrix_get(B, i, j)));
      den = fmax(den, fabs(gsl_matrix_get(B, i, j)));
    }
  return num / den;
}

typedef struct {
  size_t n, k;
  gsl_matrix *X;
  double *e, *lat, *lon, *w;
  int32_t *time, *unit;
} data;

/* n points: `clusters` centres spread over a box, points scattered around
   them by `spread` degrees (with some exact duplicates); X = [1, N(0,1)...]. */
static data make(size_t n, size_t k, double lat0, double lat1, double lon0, double lon1, double spread) {
  data D = {n, k, gsl_matrix_alloc(n, k), malloc(n * sizeof(double)), malloc(n * sizeof(double)),
            malloc(n * sizeof(double)), malloc(n * sizeof(double)), malloc(n * sizeof(int32_t)),
            malloc(n * sizeof(int32_t))};
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && uniform() < 0.05) {
      D.lat[i] = D.lat[i - 1];
      D.lon[i] = D.lon[i - 1];
    } else {
      D.lat[i] = lat0 + (lat1 - lat0) * uniform() + spread * normal();
      D.lon[i] = lon0 + (lon1 - lon0) * uniform() + spread * normal();
      if (D.lat[i] > 90) D.lat[i] = 90;
      if (D.lat[i] < -90) D.lat[i] = -90;
    }
    gsl_matrix_set(D.X, i, 0, 1.0);
    for (size_t c = 1; c < k; c++) gsl_matrix_set(D.X, i, c, normal() + 0.1 * D.lat[i]);
    D.e[i] = normal();
    D.w[i] = 0.5 + uniform();
    D.time[i] = 0;
    D.unit[i] = (int32_t)i;
  }
  return D;
}

static void drop(data *D) {
  gsl_matrix_free(D->X);
  free(D->e); free(D->lat); free(D->lon); free(D->w); free(D->time); free(D->unit);
}

static void compare(const data *D, sp_conley_spec *s, const char *what) {
  gsl_matrix *M = gsl_matrix_alloc(D->k, D->k), *R = gsl_matrix_alloc(D->k, D->k);
  sp_error err;
  sp_conley_info info;
  char buf[1024];
  s->lat = D->lat;
  s->lon = D->lon;
  int st = sp_conley_meat(D->X, D->e, s, M, &info, &err);
  brute(D->X, D->e, s, R);
  double rd = st == SP_OK ? rel_diff(M, R) : INFINITY;
  snprintf(buf, sizeof buf, "status %d (%s), relative difference %.3g, %.1f neighbours each", st,
           st == SP_OK ? "ok" : err.msg, rd, info.mean_neighbours);
  check(rd < 1e-12, what, buf);
  gsl_matrix_free(M);
  gsl_matrix_free(R);
}

int main(void) {
  char buf[1024];
  sp_error err;

  /* Cross-sections: both kernels, with and without weights, over a region,
     across the date line and around a pole. */
  data D = make(700, 3, 20, 45, 95, 125, 0.3);
  sp_conley_spec s = {0};
  s.cutoff = 150;
  s.lag = 0;
  compare(&D, &s, "cross-section, uniform, 150 km = brute force");
  s.kernel = SP_CONLEY_BARTLETT;
  compare(&D, &s, "cross-section, Bartlett, 150 km = brute force");
  s.weights = D.w;
  compare(&D, &s, "cross-section, Bartlett, weights = brute force");
  s.weights = NULL;
  s.cutoff = 3000;
  compare(&D, &s, "cross-section, 3000 km (most pairs) = brute force");
  s.cutoff = 30000;
  compare(&D, &s, "cutoff beyond half the circumference: every pair = brute force");
  drop(&D);

  D = make(500, 2, -10, 10, 178, 182, 0.5);  /* longitudes over 180 wrap to the west */
  for (size_t i = 0; i < D.n; i++)
    if (D.lon[i] > 180) D.lon[i] -= 360;
  s = (sp_conley_spec){0};
  s.cutoff = 100;
  compare(&D, &s, "across the date line (lon 179.9 next to -179.9) = brute force");
  drop(&D);

  D = make(500, 2, 84, 90, -180, 180, 0.2);
  s.cutoff = 120;
  s.kernel = SP_CONLEY_BARTLETT;
  compare(&D, &s, "around the north pole = brute force");
  drop(&D);

  /* Many points at few exact locations: the tree's ties. */
  D = make(400, 2, 0, 1, 0, 1, 0);
  for (size_t i = 0; i < D.n; i++) {
    D.lat[i] = (double)(i % 7) * 0.2;
    D.lon[i] = (double)(i % 5) * 0.2;
  }
  s = (sp_conley_spec){0};
  s.cutoff = 25;
  compare(&D, &s, "400 points at 35 locations (ties) = brute force");
  drop(&D);

  /* Panels: 60 units x 8 periods with a gap, spatial pairs within period,
     the serial term within unit (lag 2 and 3), unbalanced (rows dropped). */
  size_t N = 60, TT = 8, n = 0;
  D = make(N * TT, 3, 30, 40, 110, 120, 0.0);
  double ulat[60], ulon[60];
  for (size_t u = 0; u < N; u++) {
    ulat[u] = 30 + 10 * uniform();
    ulon[u] = 110 + 10 * uniform();
  }
  for (size_t u = 0; u < N; u++)
    for (size_t t = 0; t < TT; t++) {
      if (uniform() < 0.1) continue;
      D.lat[n] = ulat[u];
      D.lon[n] = ulon[u];
      D.unit[n] = (int32_t)u;
      D.time[n] = (int32_t)(t < 5 ? t : t + 1);  /* no period 5 */
      for (size_t c = 0; c < D.k; c++) gsl_matrix_set(D.X, n, c, c == 0 ? 1 : normal());
      D.e[n] = normal();
      n++;
    }
  D.X->size1 = n;
  D.n = n;
  s = (sp_conley_spec){0};
  s.cutoff = 300;
  s.time = D.time;
  compare(&D, &s, "panel, spatial within period only = brute force");
  s.unit = D.unit;
  s.lag = 2;
  compare(&D, &s, "panel, uniform + serial lag 2 = brute force");
  s.kernel = SP_CONLEY_BARTLETT;
  s.lag = 3;
  s.weights = D.w;
  compare(&D, &s, "panel, Bartlett + serial lag 3 + weights = brute force");

  /* The serial pairs: with lag 7 and a tiny cutoff, every pair of rows of a
     unit at distinct periods, counted by hand. */
  s = (sp_conley_spec){0};
  s.lat = D.lat; s.lon = D.lon; s.time = D.time; s.unit = D.unit;
  s.cutoff = 1e-9;
  s.lag = 9;
  gsl_matrix *M = gsl_matrix_alloc(D.k, D.k);
  sp_conley_info info;
  size_t want = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      if (i != j && D.unit[i] == D.unit[j]) want++;
  int st = sp_conley_meat(D.X, D.e, &s, M, &info, &err);
  snprintf(buf, sizeof buf, "status %d, %zu serial and %zu spatial pairs, want %zu and 0", st, info.serial_pairs,
           info.pairs, want);
  check(st == SP_OK && info.serial_pairs == want && info.pairs == 0, "serial pairs counted", buf);
  gsl_matrix_free(M);
  drop(&D);

  /* The cutoff -> 0 limit: the HC0 meat sum e_i^2 x_i x_i' (distinct points). */
  D = make(300, 3, 0, 20, 0, 20, 0);
  for (size_t i = 1; i < D.n; i++) {  /* no duplicates */
    D.lat[i] = 20 * uniform();
    D.lon[i] = 20 * uniform();
  }
  M = gsl_matrix_alloc(3, 3);
  gsl_matrix *H = gsl_matrix_calloc(3, 3);
  for (size_t i = 0; i < D.n; i++)
    for (size_t a = 0; a < 3; a++)
      for (size_t b = 0; b < 3; b++)
        *gsl_matrix_ptr(H, a, b) += D.e[i] * D.e[i] * gsl_matrix_get(D.X, i, a) * gsl_matrix_get(D.X, i, b);
  s = (sp_conley_spec){0};
  s.lat = D.lat; s.lon = D.lon;
  s.cutoff = 1e-6;
  st = sp_conley_meat(D.X, D.e, &s, M, &info, &err);
  snprintf(buf, sizeof buf, "relative difference %.3g", rel_diff(M, H));
  check(st == SP_OK && rel_diff(M, H) < 1e-14 && info.pairs == 0, "cutoff -> 0: the HC0 meat", buf);

  /* V = factor B M B. */
  gsl_matrix *B = gsl_matrix_alloc(3, 3), *V = gsl_matrix_alloc(3, 3), *Wm = gsl_matrix_alloc(3, 3);
  for (size_t a = 0; a < 3; a++)
    for (size_t b = 0; b < 3; b++) gsl_matrix_set(B, a, b, a == b ? 2.0 : 0.25);
  s.cutoff = 500;
  s.factor = 1.5;
  st = sp_conley_vcov(D.X, D.e, B, &s, V, NULL, &err);
  sp_conley_meat(D.X, D.e, &s, M, NULL, &err);
  for (size_t a = 0; a < 3; a++)
    for (size_t b = 0; b < 3; b++) {
      double v = 0;
      for (size_t p = 0; p < 3; p++)
        for (size_t q = 0; q < 3; q++) v += gsl_matrix_get(B, a, p) * gsl_matrix_get(M, p, q) * gsl_matrix_get(B, q, b);
      gsl_matrix_set(Wm, a, b, 1.5 * v);
    }
  snprintf(buf, sizeof buf, "relative difference %.3g", rel_diff(V, Wm));
  check(st == SP_OK && rel_diff(V, Wm) < 1e-14, "vcov = factor B M B", buf);

  /* Errors. */
  s.cutoff = 0;
  st = sp_conley_meat(D.X, D.e, &s, M, NULL, &err);
  check(st == SP_EVALUE && strstr(err.msg, "cutoff = 0 km") != NULL, "cutoff 0: SP_EVALUE", err.msg);
  s.cutoff = 100;
  s.lag = 2;
  st = sp_conley_meat(D.X, D.e, &s, M, NULL, &err);
  check(st == SP_EVALUE && strstr(err.msg, "needs the unit and period") != NULL, "lag without a panel: SP_EVALUE",
        err.msg);
  s.lag = 0;
  double keep = D.lat[41];
  D.lat[41] = NAN;
  st = sp_conley_meat(D.X, D.e, &s, M, NULL, &err);
  check(st == SP_EMISSING && strstr(err.msg, "row 42") != NULL, "missing latitude names the row", err.msg);
  D.lat[41] = 91;
  st = sp_conley_meat(D.X, D.e, &s, M, NULL, &err);
  check(st == SP_EVALUE && strstr(err.msg, "row 42 has latitude 91") != NULL, "latitude beyond 90 refused", err.msg);
  D.lat[41] = keep;
  D.e[7] = INFINITY;
  st = sp_conley_meat(D.X, D.e, &s, M, NULL, &err);
  check(st == SP_EMISSING && strstr(err.msg, "residual of row 8") != NULL, "non-finite residual refused", err.msg);
  D.e[7] = 0;
  gsl_matrix *small = gsl_matrix_alloc(2, 2);
  st = sp_conley_vcov(D.X, D.e, small, &s, V, NULL, &err);
  check(st == SP_EDIM, "bread of the wrong size: SP_EDIM", err.msg);
  gsl_matrix_free(small);
  gsl_matrix_free(M); gsl_matrix_free(H); gsl_matrix_free(B); gsl_matrix_free(V); gsl_matrix_free(Wm);
  drop(&D);

  printf("%d passed, %d failed\n", passed, failed);
  return failed > 0;
}
