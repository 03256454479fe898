/*
** conley.c: Conley spatial HAC meat and covariance (see conley.h).
**
** The neighbours come from the k-d tree of kdtree.c, one per period, built
** over the unit vectors of the coordinates, so a ball query on the chord
** length finds every point within a great-circle distance.  That distance
** is conleyreg's haversine distance; only pairs within rounding of the
** cutoff compute it, since the chord gives it as 2 R asin(chord / 2) to
** within 1e-12 km.
*/
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_blas.h>

#include "spillover/conley.h"
#include "spillover/kdtree.h"

#define DEG2RAD 0.017453292519943295

static int nomem(sp_error *err) { return sp_error_set(err, SP_ENOMEM, "conley: out of memory"); }

/* {======================================================================
** The meat
** ======================================================================= */

/* The rows of one period in tree order: position p holds row idx[p], and
   every array below is indexed by position, so a leaf is a contiguous run
   and the queries, made in tree order too, walk memory that is close. */
typedef struct {
  const double *P;        /* 3 per position: the unit vector */
  const double *lat, *lon, *coslat;  /* radians */
  const double *G;        /* k per position: the score w e x */
  size_t k;
  double cutoff;          /* km */
  double r2_in, r2_out;   /* squared chords surely inside / possibly inside the cutoff */
  int bartlett;
  double *s;              /* k: sum of K(d_ij) g_j over the neighbours j of i */
  size_t pairs;
  size_t i;               /* the position being queried */
} query;

/* The haversine distance in km (the formula of weights.c and conleyreg). */
static double haversine(const query *q, size_t a, size_t b) {
  double s1 = sin((q->lat[b] - q->lat[a]) / 2), s2 = sin((q->lon[b] - q->lon[a]) / 2);
  double h = s1 * s1 + q->coslat[a] * q->coslat[b] * s2 * s2;
  if (h > 1) h = 1;
  return 2 * SP_CONLEY_EARTH_KM * asin(sqrt(h));
}

static void visit(query *q, size_t i, size_t j) {
  const double *a = q->P + 3 * i, *b = q->P + 3 * j;
  double dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
  double c2 = dx * dx + dy * dy + dz * dz;
  if (c2 > q->r2_out) return;
  double w = 1.0;
  if (j != i) {
    /* Only pairs in the thin shell where rounding could decide need the
       haversine test; inside it the chord gives the same distance
       (d = 2 R asin(chord / 2)) to within 1e-12 km. */
    if (c2 > q->r2_in && !(haversine(q, i, j) <= q->cutoff)) return;
    if (q->bartlett) {
      double d = 2 * SP_CONLEY_EARTH_KM * asin(fmin(1.0, sqrt(c2) / 2));
      w = fmax(0.0, 1.0 - d / q->cutoff);
    }
    q->pairs++;
  }
  const double *g = q->G + j * q->k;
  for (size_t c = 0; c < q->k; c++) q->s[c] += w * g[c];
}

static void visit_pos(void *ctx, size_t j) {
  query *q = ctx;
  visit(q, q->i, j);
}

/* M += g_i s' */
static void add_outer(double *M, size_t k, const double *g, const double *s) {
  for (size_t a = 0; a < k; a++)
    for (size_t b = 0; b < k; b++) M[a * k + b] += g[a] * s[b];
}

typedef struct { int32_t key1, key2; size_t row; } keyed;

static int keyed_cmp(const void *x, const void *y) {
  const keyed *a = x, *b = y;
  if (a->key1 != b->key1) return a->key1 < b->key1 ? -1 : 1;
  if (a->key2 != b->key2) return a->key2 < b->key2 ? -1 : 1;
  return a->row < b->row ? -1 : (a->row > b->row);
}

/* The serial term: within each unit, the rows of other periods up to the lag
   with Bartlett weights in time.  R is sorted by (unit, time). */
static void serial(const keyed *R, size_t n, const double *G, size_t k, long lag, double *M, double *s,
                   size_t *pairs) {
  size_t a = 0;
  while (a < n) {
    size_t b = a;
    while (b < n && R[b].key1 == R[a].key1) b++;
    for (size_t p = a; p < b; p++) {
      memset(s, 0, k * sizeof *s);
      for (size_t q = a; q < b; q++) {
        long dt = labs((long)R[q].key2 - (long)R[p].key2);
        if (dt == 0 || dt > lag) continue;  /* same period: the spatial term's */
        double w = 1.0 - (double)dt / (double)(lag + 1);
        const double *g = G + R[q].row * k;
        for (size_t c = 0; c < k; c++) s[c] += w * g[c];
        (*pairs)++;
      }
      add_outer(M, k, G + R[p].row * k, s);
    }
    a = b;
  }
}

static int check_spec(const gsl_matrix *X, const double *resid, const sp_conley_spec *sp,
                      const gsl_matrix *M, sp_error *err) {
  size_t n = X->size1, k = X->size2;
  if (M->size1 != k || M->size2 != k)
    return sp_error_set(err, SP_EDIM, "conley: the result is %zu x %zu for %zu regressors", M->size1, M->size2, k);
  if (!(isfinite(sp->cutoff) && sp->cutoff > 0))
    return sp_error_set(err, SP_EVALUE, "conley: cutoff = %g km; expected a finite distance > 0", sp->cutoff);
  if (sp->kernel != SP_CONLEY_UNIFORM && sp->kernel != SP_CONLEY_BARTLETT)
    return sp_error_set(err, SP_EVALUE, "conley: unknown kernel %d", (int)sp->kernel);
  if (sp->lag < 0) return sp_error_set(err, SP_EVALUE, "conley: lag = %ld; expected an integer >= 0", sp->lag);
  if (sp->lag > 0 && (sp->time == NULL || sp->unit == NULL))
    return sp_error_set(err, SP_EVALUE, "conley: a serial lag needs the unit and period of each row (a panel)");
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(sp->lat[i]) || !isfinite(sp->lon[i]))
      return sp_error_set(err, SP_EMISSING, "conley: the coordinates of row %zu are missing or not finite", i + 1);
    if (fabs(sp->lat[i]) > 90 || fabs(sp->lon[i]) > 360)
      return sp_error_set(err, SP_EVALUE,
                          "conley: row %zu has latitude %g, longitude %g; expected degrees with |latitude| <= 90 "
                          "and |longitude| <= 360", i + 1, sp->lat[i], sp->lon[i]);
    if (!isfinite(resid[i]))
      return sp_error_set(err, SP_EMISSING, "conley: the residual of row %zu is missing or not finite", i + 1);
    if (sp->weights && !(isfinite(sp->weights[i]) && sp->weights[i] >= 0))
      return sp_error_set(err, SP_EVALUE, "conley: the weight of row %zu is %g; expected a finite number >= 0", i + 1,
                          sp->weights[i]);
    if ((sp->time && sp->time[i] < 0) || (sp->lag > 0 && sp->unit[i] < 0))
      return sp_error_set(err, SP_EVALUE, "conley: row %zu has a negative unit or period code", i + 1);
  }
  return SP_OK;
}

int sp_conley_meat(const gsl_matrix *X, const double *resid, const sp_conley_spec *sp,
                   gsl_matrix *M, sp_conley_info *info, sp_error *err) {
  int st = check_spec(X, resid, sp, M, err);
  if (st != SP_OK) return st;
  size_t n = X->size1, k = X->size2;
  gsl_matrix_set_zero(M);
  if (info) memset(info, 0, sizeof *info);
  if (n == 0 || k == 0) return SP_OK;
  /* P, G and rad by row; Pt, Gt and radt the same in tree order */
  double *P = malloc(3 * n * sizeof *P), *G = malloc(n * k * sizeof *G), *rad = malloc(3 * n * sizeof *rad);
  double *Pt = malloc(3 * n * sizeof *Pt), *Gt = malloc(n * k * sizeof *Gt), *radt = malloc(3 * n * sizeof *radt);
  double *s = malloc(k * sizeof *s), *Md = calloc(k * k, sizeof *Md);
  size_t *idx = malloc(n * sizeof *idx);
  unsigned char *dim = calloc(n, 1);
  keyed *R = malloc(n * sizeof *R);
  if (!P || !G || !rad || !Pt || !Gt || !radt || !s || !Md || !idx || !dim || !R) {
    st = nomem(err);
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    double la = sp->lat[i] * DEG2RAD, lo = sp->lon[i] * DEG2RAD, cl = cos(la);
    rad[3 * i] = la;
    rad[3 * i + 1] = lo;
    rad[3 * i + 2] = cl;
    P[3 * i] = cl * cos(lo);
    P[3 * i + 1] = cl * sin(lo);
    P[3 * i + 2] = sin(la);
    double ge = (sp->weights ? sp->weights[i] : 1.0) * resid[i];
    for (size_t c = 0; c < k; c++) G[i * k + c] = ge * gsl_matrix_get(X, i, c);
  }
  /* The chord of the cutoff, with a shell of rounding slack around it: pairs
     in the shell get the haversine test, so a candidate too many costs one
     distance and none is lost. */
  double half = sp->cutoff / (2 * SP_CONLEY_EARTH_KM);
  double chord = half >= M_PI / 2 ? 2.0 : 2 * sin(half);
  query q = {Pt, radt, radt + n, radt + 2 * n, Gt, k, sp->cutoff, chord * chord * (1 - 1e-9) - 1e-12,
             chord * chord * (1 + 1e-9) + 1e-12, sp->kernel == SP_CONLEY_BARTLETT, s, 0, 0};
  /* One tree per period (a cross-section is one period). */
  for (size_t i = 0; i < n; i++) {
    R[i].key1 = sp->time ? sp->time[i] : 0;
    R[i].key2 = 0;
    R[i].row = i;
  }
  qsort(R, n, sizeof *R, keyed_cmp);
  for (size_t a = 0, b; a < n; a = b) {
    for (b = a; b < n && R[b].key1 == R[a].key1; b++) idx[b] = R[b].row;
    sp_kdtree_build(idx, dim, P, 3, a, b);
    for (size_t p = a; p < b; p++) {
      size_t i = idx[p];
      memcpy(Pt + 3 * p, P + 3 * i, 3 * sizeof *Pt);
      memcpy(Gt + k * p, G + k * i, k * sizeof *Gt);
      radt[p] = rad[3 * i];
      radt[n + p] = rad[3 * i + 1];
      radt[2 * n + p] = rad[3 * i + 2];
    }
    for (size_t p = a; p < b; p++) {
      memset(s, 0, k * sizeof *s);
      q.i = p;
      sp_kdtree_search(Pt, dim, 3, Pt + 3 * p, &q.r2_out, a, b, visit_pos, &q);
      add_outer(Md, k, Gt + k * p, s);
    }
  }
  size_t serial_pairs = 0;
  if (sp->lag > 0) {
    for (size_t i = 0; i < n; i++) {
      R[i].key1 = sp->unit[i];
      R[i].key2 = sp->time[i];
      R[i].row = i;
    }
    qsort(R, n, sizeof *R, keyed_cmp);
    serial(R, n, G, k, sp->lag, Md, s, &serial_pairs);
  }
  /* symmetric in exact arithmetic; make it so in floating point */
  for (size_t a = 0; a < k; a++)
    for (size_t b = 0; b <= a; b++) {
      double v = 0.5 * (Md[a * k + b] + Md[b * k + a]);
      gsl_matrix_set(M, a, b, v);
      gsl_matrix_set(M, b, a, v);
    }
  if (info) {
    info->pairs = q.pairs;
    info->serial_pairs = serial_pairs;
    info->mean_neighbours = (double)q.pairs / (double)n;
  }
done:
  free(P); free(G); free(rad); free(Pt); free(Gt); free(radt); free(s); free(Md); free(idx); free(dim); free(R);
  return st;
}

/* }====================================================================== */

int sp_conley_vcov(const gsl_matrix *X, const double *resid, const gsl_matrix *bread,
                   const sp_conley_spec *spec, gsl_matrix *V, sp_conley_info *info,
                   sp_error *err) {
  size_t k = X->size2;
  if (bread->size1 != k || bread->size2 != k || V->size1 != k || V->size2 != k)
    return sp_error_set(err, SP_EDIM, "conley: the bread is %zu x %zu and the result %zu x %zu for %zu regressors",
                        bread->size1, bread->size2, V->size1, V->size2, k);
  if (k == 0) return sp_conley_meat(X, resid, spec, V, info, err);
  gsl_matrix *M = gsl_matrix_alloc(k, k), *T = gsl_matrix_alloc(k, k);
  int st;
  if (M == NULL || T == NULL) {
    st = nomem(err);
  } else if ((st = sp_conley_meat(X, resid, spec, M, info, err)) == SP_OK) {
    gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, 1.0, bread, M, 0.0, T);
    gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, spec->factor, T, bread, 0.0, V);
    for (size_t a = 0; a < k; a++)
      for (size_t b = 0; b < a; b++) {
        double v = 0.5 * (gsl_matrix_get(V, a, b) + gsl_matrix_get(V, b, a));
        gsl_matrix_set(V, a, b, v);
        gsl_matrix_set(V, b, a, v);
      }
  }
  if (M) gsl_matrix_free(M);
  if (T) gsl_matrix_free(T);
  return st;
}
