/*
** weights.c: sparse spatial weights (see weights.h) and Moran statistics.
**
** Every constructor builds the CSR arrays in scratch memory first and hands
** them to a fresh sp_weights only when complete, so a failure frees
** everything it allocated and returns no partial object.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "spillover/weights.h"
#include "spillover/kdtree.h"
#include "spillover/spml.h"  /* sp_blas_serial_begin/end */

#include <lapacke.h>
/* lapacke.h pulls in complex.h, whose macro I would clobber Moran's I. */
#undef I

#define EARTH_RADIUS_KM 6371.0088
#define DEG2RAD 0.017453292519943295

/* {======================================================================
** Allocation
** ======================================================================= */

static int nomem(sp_error *err, const char *what) {
  return sp_error_set(err, SP_ENOMEM, "weights: out of memory (%s)", what);
}

static int overflow(size_t a, size_t b) { return b != 0 && a > ((size_t)-1) / b; }

/* An sp_weights with its arrays allocated (contents uninitialised). */
static sp_weights *alloc_weights(size_t n, size_t nnz, sp_error *err) {
  if (overflow(n + 1, sizeof(size_t)) || overflow(nnz ? nnz : 1, sizeof(double))) {
    sp_error_set(err, SP_ENOMEM, "weights: %zu units with %zu links are too many", n, nnz);
    return NULL;
  }
  sp_weights *W = calloc(1, sizeof *W);
  if (W == NULL) { nomem(err, "weights object"); return NULL; }
  W->n = n;
  W->nnz = nnz;
  W->style = 'B';
  W->rowptr = malloc((n + 1) * sizeof *W->rowptr);
  W->col = malloc((nnz ? nnz : 1) * sizeof *W->col);
  W->raw = malloc((nnz ? nnz : 1) * sizeof *W->raw);
  W->val = malloc((nnz ? nnz : 1) * sizeof *W->val);
  if (!W->rowptr || !W->col || !W->raw || !W->val) {
    sp_weights_free(W);
    nomem(err, "links");
    return NULL;
  }
  W->rowptr[0] = 0;
  return W;
}

void sp_weights_free(sp_weights *W) {
  if (W == NULL) return;
  if (W->ids) {
    for (size_t i = 0; i < W->n; i++) free(W->ids[i]);
    free(W->ids);
  }
  free(W->rowptr);
  free(W->col);
  free(W->raw);
  free(W->val);
  free(W);
}

/* The name of unit i for messages: its id, or "unit <i+1>". */
static const char *unit_name(const char *const *ids, size_t i, char *buf, size_t size) {
  if (ids && ids[i]) return ids[i];
  snprintf(buf, size, "unit %zu", i + 1);
  return buf;
}

static const char *wname(const sp_weights *W, size_t i, char *buf, size_t size) {
  return unit_name((const char *const *)W->ids, i, buf, size);
}

/* }====================================================================== */

/* {======================================================================
** Construction
** ======================================================================= */

typedef struct { size_t i, j; double v; size_t k; } link;

static int link_cmp(const void *a, const void *b) {
  const link *x = a, *y = b;
  if (x->i != y->i) return x->i < y->i ? -1 : 1;
  if (x->j != y->j) return x->j < y->j ? -1 : 1;
  return x->k < y->k ? -1 : (x->k > y->k);
}

/* Build from a link array (which is sorted in place); takes no ownership. */
static int from_link_array(size_t n, link *L, size_t m, sp_weights **out, sp_error *err) {
  *out = NULL;
  qsort(L, m, sizeof *L, link_cmp);
  size_t nnz = 0;
  for (size_t k = 0; k < m; k++) {
    if (k > 0 && L[k].i == L[k - 1].i && L[k].j == L[k - 1].j) {
      if (L[k].v != L[k - 1].v)
        return sp_error_set(err, SP_EDUP,
                            "weights: the link %zu -> %zu is given twice with different weights "
                            "(%.17g at link %zu, %.17g at link %zu)",
                            L[k].i + 1, L[k].j + 1, L[k - 1].v, L[k - 1].k + 1, L[k].v, L[k].k + 1);
      continue;
    }
    nnz++;
  }
  sp_weights *W = alloc_weights(n, nnz, err);
  if (W == NULL) return err ? err->code : SP_ENOMEM;
  size_t q = 0, k = 0;
  for (size_t i = 0; i < n; i++) {
    while (k < m && L[k].i == i) {
      if (!(q > W->rowptr[i] && W->col[q - 1] == L[k].j)) {
        W->col[q] = L[k].j;
        W->raw[q] = W->val[q] = L[k].v;
        q++;
      }
      k++;
    }
    W->rowptr[i + 1] = q;
  }
  *out = W;
  return SP_OK;
}

int sp_weights_from_links(size_t n, const size_t *i, const size_t *j, const double *v, size_t m,
                          sp_weights **out, sp_error *err) {
  *out = NULL;
  if (n == 0) return sp_error_set(err, SP_EVALUE, "weights: no units");
  if (overflow(m ? m : 1, sizeof(link))) return nomem(err, "links");
  link *L = malloc((m ? m : 1) * sizeof *L);
  if (L == NULL) return nomem(err, "links");
  for (size_t k = 0; k < m; k++) {
    double w = v ? v[k] : 1.0;
    if (i[k] >= n || j[k] >= n) {
      free(L);
      return sp_error_set(err, SP_EVALUE, "weights: link %zu (%zu -> %zu) refers to a unit beyond the %zu units",
                          k + 1, i[k] + 1, j[k] + 1, n);
    }
    if (i[k] == j[k]) {
      free(L);
      return sp_error_set(err, SP_EVALUE, "weights: link %zu joins unit %zu to itself; a unit is not its own neighbour",
                          k + 1, i[k] + 1);
    }
    if (!(isfinite(w) && w > 0)) {
      free(L);
      return sp_error_set(err, SP_EVALUE, "weights: link %zu (%zu -> %zu) has weight %g; expected a finite positive number",
                          k + 1, i[k] + 1, j[k] + 1, w);
    }
    L[k].i = i[k];
    L[k].j = j[k];
    L[k].v = w;
    L[k].k = k;
  }
  int st = from_link_array(n, L, m, out, err);
  free(L);
  return st;
}

static double point_distance(const double *x, const double *y, const double *coslat, size_t a, size_t b,
                             int great_circle) {
  if (!great_circle) return hypot(x[a] - x[b], y[a] - y[b]);
  /* haversine: accurate for the short distances that matter to neighbours */
  double dlat = (y[b] - y[a]) * DEG2RAD, dlon = (x[b] - x[a]) * DEG2RAD;
  double s1 = sin(dlat / 2), s2 = sin(dlon / 2);
  double h = s1 * s1 + coslat[a] * coslat[b] * s2 * s2;
  if (h > 1) h = 1;
  return 2 * EARTH_RADIUS_KM * asin(sqrt(h));
}

/* Check coordinates and precompute cos(latitude) for great circles. */
static int check_coords(size_t n, const double *x, const double *y, int great_circle, double **coslat,
                        sp_error *err) {
  *coslat = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i]) || !isfinite(y[i]))
      return sp_error_set(err, SP_EMISSING, "weights: the coordinates of unit %zu are missing or not finite", i + 1);
    if (great_circle && (fabs(y[i]) > 90 || fabs(x[i]) > 360))
      return sp_error_set(err, SP_EVALUE,
                          "weights: unit %zu has longitude %g, latitude %g; great-circle distances need degrees "
                          "(|latitude| <= 90)", i + 1, x[i], y[i]);
  }
  if (great_circle) {
    *coslat = malloc((n ? n : 1) * sizeof **coslat);
    if (*coslat == NULL) return nomem(err, "coordinates");
    for (size_t i = 0; i < n; i++) (*coslat)[i] = cos(y[i] * DEG2RAD);
  }
  return SP_OK;
}

/* The points in a k-d tree (kdtree.h): (x, y) for planar distances, the unit
   vector of (longitude, latitude) for great circles, whose chord is monotone
   in the great-circle distance.  Candidates get their exact distance from
   point_distance, the one formula of every constructor, so the tree decides
   only which pairs are looked at, never a distance. */
typedef struct {
  const double *x, *y, *coslat;
  int great_circle, dim;
  size_t *idx;           /* tree position -> unit */
  unsigned char *split;
  double *Pt;            /* dim coordinates per tree position */
} point_tree;

static void tree_free(point_tree *t) {
  free(t->idx);
  free(t->split);
  free(t->Pt);
}

static int tree_new(size_t n, const double *x, const double *y, const double *coslat, int great_circle,
                    point_tree *t, sp_error *err) {
  memset(t, 0, sizeof *t);
  t->x = x;
  t->y = y;
  t->coslat = coslat;
  t->great_circle = great_circle;
  t->dim = great_circle ? 3 : 2;
  size_t dim = (size_t)t->dim;
  if (overflow(n, dim * sizeof(double))) return nomem(err, "point tree");
  double *P = calloc(n * dim, sizeof *P);  /* calloc: gcc cannot see that the loop below fills it */
  t->idx = malloc(n * sizeof *t->idx);
  t->split = calloc(n, 1);
  t->Pt = malloc(n * dim * sizeof *t->Pt);
  if (!P || !t->idx || !t->split || !t->Pt) {
    free(P);
    tree_free(t);
    return nomem(err, "point tree");
  }
  for (size_t i = 0; i < n; i++) {
    double *v = P + dim * i;
    t->idx[i] = i;
    if (great_circle) {
      double lon = x[i] * DEG2RAD;
      v[0] = coslat[i] * cos(lon);
      v[1] = coslat[i] * sin(lon);
      v[2] = sin(y[i] * DEG2RAD);
    } else {
      v[0] = x[i];
      v[1] = y[i];
    }
  }
  sp_kdtree_build(t->idx, t->split, P, t->dim, 0, n);
  for (size_t p = 0; p < n; p++) memcpy(t->Pt + dim * p, P + dim * t->idx[p], dim * sizeof *P);
  free(P);
  return SP_OK;
}

/* The squared tree radius that holds every point within distance d: the
   chord of a great-circle distance, with slack for the rounding of the
   coordinates (relative for both metrics, absolute for the unit vectors),
   so that a point at exactly d, which a tie may bring in, is never cut. */
static double tree_radius2(const point_tree *t, double d) {
  if (!t->great_circle) return d * d * (1 + 1e-9);
  double half = d / (2 * EARTH_RADIUS_KM);
  double chord = half >= M_PI / 2 ? 2.0 : 2 * sin(half);
  return chord * chord * (1 + 1e-9) + 1e-12;
}

/* k nearest: bd/bj hold the best so far in increasing (distance, unit)
   order, so a tie at the k-th distance keeps the lower unit, whatever order
   the tree offers them in. */
typedef struct {
  const point_tree *t;
  size_t i, k, have;
  double *bd;
  size_t *bj;
  double r2;
} knn_query;

static void knn_visit(void *ctx, size_t pos) {
  knn_query *q = ctx;
  const point_tree *t = q->t;
  size_t j = t->idx[pos], k = q->k;
  if (j == q->i) return;
  double d = point_distance(t->x, t->y, t->coslat, q->i, j, t->great_circle);
  double *bd = q->bd;
  size_t *bj = q->bj;
  if (q->have == k && !(d < bd[k - 1] || (d == bd[k - 1] && j < bj[k - 1]))) return;
  size_t p = q->have < k ? q->have++ : k - 1;
  while (p > 0 && (d < bd[p - 1] || (d == bd[p - 1] && j < bj[p - 1]))) {
    bd[p] = bd[p - 1];
    bj[p] = bj[p - 1];
    p--;
  }
  bd[p] = d;
  bj[p] = j;
  if (q->have == k) q->r2 = tree_radius2(t, bd[k - 1]);
}

int sp_weights_knn(size_t n, const double *x, const double *y, size_t k, int great_circle,
                   sp_weights **out, sp_error *err) {
  *out = NULL;
  if (k < 1 || k >= n)
    return sp_error_set(err, SP_EVALUE, "weights.knn: k = %zu with %zu units; expected 1 <= k < n", k, n);
  double *coslat;
  int st = check_coords(n, x, y, great_circle, &coslat, err);
  if (st != SP_OK) return st;
  if (overflow(n, k) || overflow(n * k, sizeof(link))) { free(coslat); return nomem(err, "knn"); }
  point_tree t;
  if ((st = tree_new(n, x, y, coslat, great_circle, &t, err)) != SP_OK) { free(coslat); return st; }
  link *L = malloc(n * k * sizeof *L);
  double *bd = malloc(k * sizeof *bd);
  size_t *bj = malloc(k * sizeof *bj);
  if (!L || !bd || !bj) {
    free(L); free(bd); free(bj); free(coslat); tree_free(&t);
    return nomem(err, "knn");
  }
  /* queries in tree order: consecutive points are close, and so is the
     memory their searches walk */
  for (size_t p = 0; p < n; p++) {
    size_t i = t.idx[p];
    knn_query q = {&t, i, k, 0, bd, bj, INFINITY};
    sp_kdtree_search(t.Pt, t.split, t.dim, t.Pt + (size_t)t.dim * p, &q.r2, 0, n, knn_visit, &q);
    for (size_t c = 0; c < k; c++) {
      link *l = &L[i * k + c];
      l->i = i; l->j = bj[c]; l->v = 1.0; l->k = i * k + c;
    }
  }
  free(bd); free(bj); free(coslat); tree_free(&t);
  st = from_link_array(n, L, n * k, out, err);
  free(L);
  return st;
}

/* Distance band: every unit within the cutoff of unit i, and the lowest
   unit at distance 0 from it (which makes an inverse distance infinite). */
typedef struct {
  const point_tree *t;
  size_t i;
  double power, cutoff;
  int all;
  link *L;
  size_t m, cap;
  size_t same;   /* lowest unit at the same point as i, or (size_t)-1 */
  int nomem;
} band_query;

static void band_visit(void *ctx, size_t pos) {
  band_query *q = ctx;
  const point_tree *t = q->t;
  size_t j = t->idx[pos];
  if (j == q->i || q->nomem) return;
  double d = point_distance(t->x, t->y, t->coslat, q->i, j, t->great_circle);
  if (d == 0 && j < q->same) q->same = j;
  if (!(q->all || d <= q->cutoff)) return;
  if (q->m == q->cap) {
    size_t cap = q->cap ? 2 * q->cap : 1024;
    link *L = overflow(cap, sizeof *L) ? NULL : realloc(q->L, cap * sizeof *L);
    if (L == NULL) { q->nomem = 1; return; }
    q->L = L;
    q->cap = cap;
  }
  link *l = &q->L[q->m];
  l->i = q->i; l->j = j; l->v = pow(d, -q->power); l->k = q->m;
  q->m++;
}

int sp_weights_distance(size_t n, const double *x, const double *y, double power, double cutoff,
                        int great_circle, sp_weights **out, sp_error *err) {
  *out = NULL;
  if (n < 2) return sp_error_set(err, SP_EVALUE, "weights.distance: %zu unit(s); expected at least 2", n);
  if (!(isfinite(power) && power > 0))
    return sp_error_set(err, SP_EVALUE, "weights.distance: power = %g; expected a positive number (1 or 2)", power);
  double *coslat;
  int st = check_coords(n, x, y, great_circle, &coslat, err);
  if (st != SP_OK) return st;
  point_tree t;
  if ((st = tree_new(n, x, y, coslat, great_circle, &t, err)) != SP_OK) { free(coslat); return st; }
  band_query q = {&t, 0, power, cutoff, !(cutoff > 0) || isinf(cutoff), NULL, 0, 0, (size_t)-1, 0};
  double r2 = q.all ? INFINITY : tree_radius2(&t, cutoff);
  /* queries in tree order (see knn); two units at one point are reported as
     the lowest such pair, whatever the order */
  size_t same_i = (size_t)-1, same_j = 0;
  for (size_t p = 0; p < n && !q.nomem; p++) {
    q.i = t.idx[p];
    q.same = (size_t)-1;
    sp_kdtree_search(t.Pt, t.split, t.dim, t.Pt + (size_t)t.dim * p, &r2, 0, n, band_visit, &q);
    if (q.same != (size_t)-1 && q.i < same_i) { same_i = q.i; same_j = q.same; }
  }
  if (q.nomem) st = nomem(err, "distance links");
  else if (same_i != (size_t)-1)
    st = sp_error_set(err, SP_EVALUE,
                      "weights.distance: units %zu and %zu are at the same point; inverse distance is infinite",
                      same_i + 1, same_j + 1);
  free(coslat);
  tree_free(&t);
  if (st == SP_OK) st = from_link_array(n, q.L, q.m, out, err);
  free(q.L);
  return st;
}

int sp_weights_economic(size_t n, const double *g, const char *const *ids, sp_weights **out,
                        sp_error *err) {
  *out = NULL;
  char b1[32], b2[32];
  if (n < 2) return sp_error_set(err, SP_EVALUE, "weights.economic: %zu unit(s); expected at least 2", n);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(g[i]))
      return sp_error_set(err, SP_EMISSING, "weights.economic: the value of %s is missing or not finite",
                          unit_name(ids, i, b1, sizeof b1));
  if (overflow(n, n)) return nomem(err, "economic links");
  link *L = malloc(n * n * sizeof *L);
  if (L == NULL) return nomem(err, "economic links");
  size_t q = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      if (j == i) continue;
      double d = fabs(g[i] - g[j]);
      if (d == 0) {
        free(L);
        return sp_error_set(err, SP_EVALUE,
                            "weights.economic: %s and %s have the same value (%.17g); 1/|g_i - g_j| is infinite",
                            unit_name(ids, i, b1, sizeof b1), unit_name(ids, j, b2, sizeof b2), g[i]);
      }
      L[q].i = i; L[q].j = j; L[q].v = 1.0 / d; L[q].k = q;
      q++;
    }
  int st = from_link_array(n, L, q, out, err);
  free(L);
  return st;
}

static int copy_ids(sp_weights *dst, const sp_weights *src, const size_t *idx, sp_error *err) {
  if (src->ids == NULL) return SP_OK;
  dst->ids = calloc(dst->n ? dst->n : 1, sizeof *dst->ids);
  if (dst->ids == NULL) return nomem(err, "ids");
  for (size_t i = 0; i < dst->n; i++) {
    const char *s = src->ids[idx ? idx[i] : i];
    if ((dst->ids[i] = malloc(strlen(s) + 1)) == NULL) return nomem(err, "ids");
    strcpy(dst->ids[i], s);
  }
  return SP_OK;
}

int sp_weights_combine(const sp_weights *A, const sp_weights *B, double a, double b, int product,
                       sp_weights **out, sp_error *err) {
  *out = NULL;
  if (A->n != B->n)
    return sp_error_set(err, SP_EDIM, "weights.nested: the weights have %zu and %zu units; expected the same units",
                        A->n, B->n);
  size_t n = A->n, m = 0;
  link *L = malloc((A->nnz + B->nnz ? A->nnz + B->nnz : 1) * sizeof *L);
  if (L == NULL) return nomem(err, "nested links");
  for (size_t i = 0; i < n; i++) {
    size_t p = A->rowptr[i], pe = A->rowptr[i + 1], q = B->rowptr[i], qe = B->rowptr[i + 1];
    while (p < pe || q < qe) {
      size_t ja = p < pe ? A->col[p] : (size_t)-1, jb = q < qe ? B->col[q] : (size_t)-1;
      double va = 0, vb = 0;
      size_t j = ja < jb ? ja : jb;
      if (ja == j) va = A->val[p++];
      if (jb == j) vb = B->val[q++];
      double v = product ? va * vb : a * va + b * vb;
      if (v != 0) { L[m].i = i; L[m].j = j; L[m].v = v; L[m].k = m; m++; }
    }
  }
  int st = from_link_array(n, L, m, out, err);
  free(L);
  if (st == SP_OK && (st = copy_ids(*out, A, NULL, err)) != SP_OK) {
    sp_weights_free(*out);
    *out = NULL;
  }
  return st;
}

int sp_weights_subset(const sp_weights *W, const size_t *idx, size_t m, sp_weights **out,
                      sp_error *err) {
  *out = NULL;
  if (m == 0) return sp_error_set(err, SP_EVALUE, "weights: a subset of no units");
  size_t *pos = malloc(W->n * sizeof *pos);
  if (pos == NULL) return nomem(err, "subset");
  for (size_t i = 0; i < W->n; i++) pos[i] = (size_t)-1;
  for (size_t k = 0; k < m; k++) {
    char b[32];
    if (idx[k] >= W->n) {
      free(pos);
      return sp_error_set(err, SP_EVALUE, "weights: unit %zu of the subset is beyond the %zu units", idx[k] + 1, W->n);
    }
    if (pos[idx[k]] != (size_t)-1) {
      free(pos);
      return sp_error_set(err, SP_EDUP, "weights: %s appears twice in the subset", wname(W, idx[k], b, sizeof b));
    }
    pos[idx[k]] = k;
  }
  size_t nnz = 0;
  for (size_t k = 0; k < m; k++)
    for (size_t p = W->rowptr[idx[k]]; p < W->rowptr[idx[k] + 1]; p++)
      if (pos[W->col[p]] != (size_t)-1) nnz++;
  link *L = malloc((nnz ? nnz : 1) * sizeof *L);
  if (L == NULL) { free(pos); return nomem(err, "subset"); }
  size_t q = 0;
  for (size_t k = 0; k < m; k++)
    for (size_t p = W->rowptr[idx[k]]; p < W->rowptr[idx[k] + 1]; p++)
      if (pos[W->col[p]] != (size_t)-1) {
        L[q].i = k; L[q].j = pos[W->col[p]]; L[q].v = W->raw[p]; L[q].k = q;
        q++;
      }
  free(pos);
  int st = from_link_array(m, L, nnz, out, err);
  free(L);
  if (st != SP_OK) return st;
  if ((st = copy_ids(*out, W, idx, err)) == SP_OK)
    st = sp_weights_set_style(*out, W->style, W->zero_policy, err);
  if (st != SP_OK) { sp_weights_free(*out); *out = NULL; }
  return st;
}

int sp_weights_transpose(const sp_weights *W, sp_weights **out, sp_error *err) {
  *out = NULL;
  sp_weights *T = alloc_weights(W->n, W->nnz, err);
  if (T == NULL) return err ? err->code : SP_ENOMEM;
  size_t n = W->n;
  for (size_t i = 0; i <= n; i++) T->rowptr[i] = 0;
  for (size_t p = 0; p < W->nnz; p++) T->rowptr[W->col[p] + 1]++;
  for (size_t i = 0; i < n; i++) T->rowptr[i + 1] += T->rowptr[i];
  size_t *next = malloc((n ? n : 1) * sizeof *next);
  if (next == NULL) { sp_weights_free(T); return nomem(err, "transpose"); }
  memcpy(next, T->rowptr, n * sizeof *next);
  /* rows visited in order, so each transposed row's columns come out sorted */
  for (size_t i = 0; i < n; i++)
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) {
      size_t q = next[W->col[p]]++;
      T->col[q] = i;
      T->raw[q] = W->raw[p];
      T->val[q] = W->val[p];
    }
  free(next);
  T->style = W->style;
  T->zero_policy = W->zero_policy;
  int st = copy_ids(T, W, NULL, err);
  if (st != SP_OK) { sp_weights_free(T); return st; }
  *out = T;
  return SP_OK;
}

int sp_weights_copy(const sp_weights *W, sp_weights **out, sp_error *err) {
  *out = NULL;
  sp_weights *C = alloc_weights(W->n, W->nnz, err);
  if (C == NULL) return err ? err->code : SP_ENOMEM;
  memcpy(C->rowptr, W->rowptr, (W->n + 1) * sizeof *C->rowptr);
  if (W->nnz) {
    memcpy(C->col, W->col, W->nnz * sizeof *C->col);
    memcpy(C->raw, W->raw, W->nnz * sizeof *C->raw);
    memcpy(C->val, W->val, W->nnz * sizeof *C->val);
  }
  C->style = W->style;
  C->zero_policy = W->zero_policy;
  int st = copy_ids(C, W, NULL, err);
  if (st != SP_OK) { sp_weights_free(C); return st; }
  *out = C;
  return SP_OK;
}

int sp_weights_from_triplets(size_t n, size_t nnz, const size_t *i, const size_t *j, const double *x,
                             sp_weights **out, sp_error *err) {
  *out = NULL;
  for (size_t e = 0; e < nnz; e++) {
    if (i[e] >= n || j[e] >= n)
      return sp_error_set(err, SP_EVALUE, "weights: link %zu joins units %zu and %zu (expected indices below %zu)",
                          e + 1, i[e] + 1, j[e] + 1, n);
    if (!isfinite(x[e]))
      return sp_error_set(err, SP_EVALUE, "weights: link %zu (%zu -> %zu) has a non-finite weight", e + 1,
                          i[e] + 1, j[e] + 1);
  }
  sp_weights *W = alloc_weights(n, nnz, err);
  size_t *fill = W ? calloc(n + 1, sizeof *fill) : NULL;
  if (W == NULL || fill == NULL) {
    sp_weights_free(W);
    free(fill);
    return nomem(err, "links");
  }
  size_t *p = W->rowptr;
  memset(p, 0, (n + 1) * sizeof *p);
  for (size_t e = 0; e < nnz; e++) p[i[e] + 1]++;
  for (size_t r = 0; r < n; r++) p[r + 1] += p[r];
  for (size_t e = 0; e < nnz; e++) {
    size_t at = p[i[e]] + fill[i[e]]++;
    W->col[at] = j[e];
    W->val[at] = x[e];
  }
  free(fill);
  /* Sort each row by column (stable insertion sort: rows are short), then
     sum duplicates in input order and drop zeros, compacting in place. */
  size_t out_at = 0;
  for (size_t r = 0; r < n; r++) {
    size_t a = p[r], b = p[r + 1];
    for (size_t s = a + 1; s < b; s++) {
      size_t jj = W->col[s];
      double xx = W->val[s];
      size_t t = s;
      while (t > a && W->col[t - 1] > jj) { W->col[t] = W->col[t - 1]; W->val[t] = W->val[t - 1]; t--; }
      W->col[t] = jj;
      W->val[t] = xx;
    }
    size_t row_start = out_at;
    for (size_t s = a; s < b; s++) {
      if (out_at > row_start && W->col[out_at - 1] == W->col[s]) W->val[out_at - 1] += W->val[s];
      else { W->col[out_at] = W->col[s]; W->val[out_at] = W->val[s]; out_at++; }
    }
    size_t keep = row_start;
    for (size_t s = row_start; s < out_at; s++)
      if (W->val[s] != 0) { W->col[keep] = W->col[s]; W->val[keep] = W->val[s]; keep++; }
    out_at = keep;
    p[r] = row_start;
  }
  p[n] = out_at;
  W->nnz = out_at;
  memcpy(W->raw, W->val, out_at * sizeof *W->raw);
  *out = W;
  return SP_OK;
}

static int str_cmp_idx(const void *a, const void *b, const char *const *s) {
  return strcmp(s[*(const size_t *)a], s[*(const size_t *)b]);
}

/* qsort has no context argument: a small merge sort of indices by string. */
static void sort_by_string(size_t *v, size_t *tmp, size_t n, const char *const *s) {
  if (n < 2) return;
  size_t h = n / 2;
  sort_by_string(v, tmp, h, s);
  sort_by_string(v + h, tmp, n - h, s);
  size_t a = 0, b = h, k = 0;
  while (a < h && b < n) tmp[k++] = str_cmp_idx(&v[a], &v[b], s) <= 0 ? v[a++] : v[b++];
  while (a < h) tmp[k++] = v[a++];
  while (b < n) tmp[k++] = v[b++];
  memcpy(v, tmp, n * sizeof *v);
}

int sp_weights_set_ids(sp_weights *W, const char *const *ids, sp_error *err) {
  size_t n = W->n;
  size_t *ord = malloc(2 * (n ? n : 1) * sizeof *ord);
  if (ord == NULL) return nomem(err, "ids");
  for (size_t i = 0; i < n; i++) {
    if (ids[i] == NULL) { free(ord); return sp_error_set(err, SP_EMISSING, "weights: the id of unit %zu is missing", i + 1); }
    ord[i] = i;
  }
  sort_by_string(ord, ord + n, n, ids);
  for (size_t k = 1; k < n; k++)
    if (strcmp(ids[ord[k]], ids[ord[k - 1]]) == 0) {
      size_t a = ord[k - 1] < ord[k] ? ord[k - 1] : ord[k], b = ord[k - 1] < ord[k] ? ord[k] : ord[k - 1];
      int st = sp_error_set(err, SP_EDUP, "weights: the id '%s' is duplicated (units %zu and %zu); ids must be unique",
                            ids[a], a + 1, b + 1);
      sp_error_var(err, ids[a]);
      free(ord);
      return st;
    }
  free(ord);
  char **copy = calloc(n ? n : 1, sizeof *copy);
  if (copy == NULL) return nomem(err, "ids");
  for (size_t i = 0; i < n; i++) {
    if ((copy[i] = malloc(strlen(ids[i]) + 1)) == NULL) {
      for (size_t k = 0; k < i; k++) free(copy[k]);
      free(copy);
      return nomem(err, "ids");
    }
    strcpy(copy[i], ids[i]);
  }
  if (W->ids) {
    for (size_t i = 0; i < n; i++) free(W->ids[i]);
    free(W->ids);
  }
  W->ids = copy;
  return SP_OK;
}

size_t sp_weights_islands(const sp_weights *W, size_t *out, size_t cap) {
  size_t c = 0;
  for (size_t i = 0; i < W->n; i++)
    if (W->rowptr[i + 1] == W->rowptr[i]) {
      if (out && c < cap) out[c] = i;
      c++;
    }
  return c;
}

int sp_weights_set_style(sp_weights *W, char style, int zero_policy, sp_error *err) {
  size_t n = W->n;
  if (style != 'B' && style != 'W' && style != 'C' && style != 'U')
    return sp_error_set(err, SP_EVALUE, "weights: unknown style '%c'; expected W (row-standardised), B (raw), "
                        "C (sum n) or U (sum 1)", style);
  if (style == 'W' && !zero_policy) {
    size_t first[5];
    size_t c = sp_weights_islands(W, first, 5);
    if (c > 0) {
      char list[400] = "", b[32];
      size_t used = 0;
      for (size_t k = 0; k < c && k < 5; k++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", wname(W, first[k], b, sizeof b));
        if (w < 0 || (size_t)w >= sizeof list - used) break;
        used += (size_t)w;
      }
      int st = sp_error_set(err, SP_EVALUE,
                            "weights: %zu unit%s no neighbours (island%s): %s%s; style W needs a neighbour for every "
                            "unit (add links, or pass zero_policy = true to keep their rows zero)",
                            c, c == 1 ? " has" : "s have", c == 1 ? "" : "s", list, c > 5 ? ", ..." : "");
      if (W->ids) sp_error_var(err, W->ids[first[0]]);
      return st;
    }
  }
  double total = 0;
  for (size_t p = 0; p < W->nnz; p++) total += W->raw[p];
  for (size_t i = 0; i < n; i++) {
    double s = 0;
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) s += W->raw[p];
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) {
      double r = W->raw[p];
      W->val[p] = style == 'W' ? r / s : style == 'C' ? r * (double)n / total : style == 'U' ? r / total : r;
    }
  }
  W->style = style;
  W->zero_policy = zero_policy;
  return SP_OK;
}

/* }====================================================================== */

/* {======================================================================
** Products and summaries
** ======================================================================= */

void sp_weights_lag_strided(const sp_weights *W, const double *x, size_t incx, double *y,
                            size_t incy) {
  for (size_t i = 0; i < W->n; i++) {
    double s = 0;
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) s += W->val[p] * x[W->col[p] * incx];
    y[i * incy] = s;
  }
}

void sp_weights_lag(const sp_weights *W, const double *x, double *y) {
  sp_weights_lag_strided(W, x, 1, y, 1);
}

int sp_weights_lag_panel(const sp_weights *W, const double *x, size_t T, int order, double *y,
                         sp_error *err) {
  if (order != SP_WORDER_TIME && order != SP_WORDER_UNIT)
    return sp_error_set(err, SP_EVALUE, "weights: unknown panel order %d", order);
  for (size_t t = 0; t < T; t++) {
    if (order == SP_WORDER_TIME) sp_weights_lag(W, x + t * W->n, y + t * W->n);
    else sp_weights_lag_strided(W, x + t, T, y + t, T);
  }
  return SP_OK;
}

int sp_weights_solve(const sp_weights *W, double rho, const double *b, double *z, sp_error *err) {
  size_t n = W->n;
  double *t = malloc((n ? n : 1) * sizeof *t);
  if (t == NULL) return sp_error_set(err, SP_ENOMEM, "spatial solve: out of memory (n = %zu)", n);
  memcpy(z, b, n * sizeof *z);
  /* The change shrinks by |rho| times the spectral radius per step.  When it
     makes no new low for STALL steps the iteration diverges, or it is stuck
     at the rounding level above the tolerance (which happens for rho near
     -1, where the iterates alternate): stop rather than run on. */
  enum { STALL = 100 };
  double best = INFINITY;
  int since = 0;
  for (int it = 0; it < 100000; it++) {
    sp_weights_lag(W, z, t);
    double change = 0, size = 0;
    for (size_t r = 0; r < n; r++) {
      double v = b[r] + rho * t[r];
      change = fmax(change, fabs(v - z[r]));
      size = fmax(size, fabs(v));
      z[r] = v;
    }
    if (!isfinite(change)) break;
    if (change <= 1e-15 * size || size == 0) {
      free(t);
      return SP_OK;
    }
    if (change < best) {
      best = change;
      since = 0;
    } else if (++since > STALL) {
      break;
    }
  }
  free(t);
  return sp_error_set(err, SP_ECONV,
                      "spatial solve: (I - rho W) z = b did not converge at rho = %g (expected |rho| times the "
                      "spectral radius of W below 1)", rho);
}

void sp_weights_dense(const sp_weights *W, double *out) {
  size_t n = W->n;
  memset(out, 0, n * n * sizeof *out);
  for (size_t i = 0; i < n; i++)
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) out[i * n + W->col[p]] = W->val[p];
}

void sp_weights_rowsums(const sp_weights *W, double *out) {
  for (size_t i = 0; i < W->n; i++) {
    double s = 0;
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) s += W->val[p];
    out[i] = s;
  }
}

/* Position of column j in row i, or (size_t)-1 (binary search). */
static size_t find_link(const sp_weights *W, size_t i, size_t j) {
  size_t lo = W->rowptr[i], hi = W->rowptr[i + 1];
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (W->col[mid] < j) lo = mid + 1;
    else hi = mid;
  }
  return lo < W->rowptr[i + 1] && W->col[lo] == j ? lo : (size_t)-1;
}

size_t sp_weights_asymmetry(const sp_weights *W, int pattern_only) {
  size_t c = 0;
  for (size_t i = 0; i < W->n; i++)
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) {
      size_t q = find_link(W, W->col[p], i);
      if (q == (size_t)-1 || (!pattern_only && W->val[q] != W->val[p])) c++;
    }
  return c;
}

int sp_weights_moran_sums(const sp_weights *W, double *S0, double *S1, double *S2, sp_error *err) {
  size_t n = W->n;
  double *cs = calloc(n ? n : 1, sizeof *cs);
  if (cs == NULL) return nomem(err, "column sums");
  double s0 = 0, s1 = 0, s2 = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) {
      double w = W->val[p];
      size_t q = find_link(W, W->col[p], i);
      s0 += w;
      /* 1/2 sum (w_ij + w_ji)^2 = sum w_ij^2 + sum w_ij w_ji */
      s1 += w * w + (q != (size_t)-1 ? w * W->val[q] : 0);
      cs[W->col[p]] += w;
    }
  for (size_t i = 0; i < n; i++) {
    double r = 0;
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) r += W->val[p];
    s2 += (r + cs[i]) * (r + cs[i]);
  }
  free(cs);
  *S0 = s0;
  *S1 = s1;
  *S2 = s2;
  return SP_OK;
}

typedef struct { double re, im; } eig;

static int eig_cmp(const void *a, const void *b) {
  const eig *x = a, *y = b;
  if (x->re != y->re) return x->re < y->re ? -1 : 1;
  return x->im < y->im ? -1 : (x->im > y->im);
}

int sp_weights_similar_symmetric(const sp_weights *W, double *s) {
  size_t n = W->n;
  for (size_t r = 0; r < n; r++) s[r] = 0;
  size_t *stack = malloc((n ? n : 1) * sizeof *stack);
  if (stack == NULL) return 0;
  int ok = 1;
  for (size_t r0 = 0; r0 < n && ok; r0++) {
    if (s[r0] != 0) continue;
    s[r0] = 1;
    size_t top = 0;
    stack[top++] = r0;
    while (top > 0 && ok) {
      size_t r = stack[--top];
      for (size_t q = W->rowptr[r]; q < W->rowptr[r + 1]; q++) {
        size_t c = W->col[q], t = find_link(W, c, r);
        double wcr = t == (size_t)-1 ? 0 : W->val[t];
        if (wcr == 0 || (W->val[q] > 0) != (wcr > 0)) { ok = 0; break; }
        double want = s[r] * W->val[q] / wcr;  /* s_r w_rc = s_c w_cr */
        if (!(want > 0)) { ok = 0; break; }
        if (s[c] == 0) { s[c] = want; stack[top++] = c; }
        else if (fabs(s[c] - want) > 1e-10 * want) { ok = 0; break; }
      }
    }
  }
  free(stack);
  return ok;
}

/* {----------------------------------------------------------------------
** The symmetric path.  Reducing a dense n x n matrix to tridiagonal form
** reads the whole trailing matrix at every step (O(n^3) time, bound by
** memory bandwidth).  Weights are sparse and local: numbered in reverse
** Cuthill-McKee order, units linked to each other get nearby numbers, the
** matrix is a band of half-width kd (about 2 sqrt(n) for points in the
** plane), and LAPACK's two-stage band reduction (dsbev_2stage) takes
** O(n^2 kd) time in cache.  Permuting rows and columns together leaves the
** eigenvalues unchanged.  A wide band (dense weights) goes to the dense
** two-stage solver instead.
** ----------------------------------------------------------------------- */

static size_t degree(const sp_weights *W, size_t u) { return W->rowptr[u + 1] - W->rowptr[u]; }

/* Breadth-first search from start over start's component, written to order
   in Cuthill-McKee order (each unit's new neighbours by increasing degree,
   then index); seen[] == stamp marks the units reached.  Returns the depth
   (eccentricity of start) and sets *size and *last (where the deepest level
   begins in order). */
static size_t cm_search(const sp_weights *W, size_t start, unsigned *seen, unsigned stamp, size_t *order,
                        size_t *size, size_t *last) {
  size_t lo = 0, hi = 1, len = 1, depth = 0;
  order[0] = start;
  seen[start] = stamp;
  for (;;) {
    for (size_t h = lo; h < hi; h++) {
      size_t u = order[h], from = len;
      for (size_t q = W->rowptr[u]; q < W->rowptr[u + 1]; q++) {
        size_t c = W->col[q];
        if (seen[c] == stamp) continue;
        seen[c] = stamp;
        size_t t = len++;  /* insertion by (degree, index): rows are short */
        while (t > from && (degree(W, order[t - 1]) > degree(W, c) ||
                            (degree(W, order[t - 1]) == degree(W, c) && order[t - 1] > c))) {
          order[t] = order[t - 1];
          t--;
        }
        order[t] = c;
      }
    }
    if (len == hi) break;
    lo = hi;
    hi = len;
    depth++;
  }
  *size = len;
  *last = lo;
  return depth;
}

static int by_degree(const void *a, const void *b, const sp_weights *W) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b, dx = degree(W, x), dy = degree(W, y);
  if (dx != dy) return dx < dy ? -1 : 1;
  return x < y ? -1 : (x > y);
}

/* Units by increasing (degree, index): a merge sort, qsort having no context. */
static void sort_by_degree(size_t *v, size_t *tmp, size_t n, const sp_weights *W) {
  if (n < 2) return;
  size_t h = n / 2;
  sort_by_degree(v, tmp, h, W);
  sort_by_degree(v + h, tmp, n - h, W);
  size_t a = 0, b = h, k = 0;
  while (a < h && b < n) tmp[k++] = by_degree(&v[a], &v[b], W) <= 0 ? v[a++] : v[b++];
  while (a < h) tmp[k++] = v[a++];
  while (b < n) tmp[k++] = v[b++];
  memcpy(v, tmp, n * sizeof *v);
}

/* pos[u] = the reverse Cuthill-McKee number of unit u (W's pattern must be
   symmetric).  Each component starts from a pseudo-peripheral unit (George &
   Liu 1979): from the unit of lowest degree not yet placed, move to the
   lowest-degree unit of the deepest level while that makes the search
   deeper.  Returns the half-bandwidth, or (size_t)-1 without memory. */
static size_t rcm(const sp_weights *W, size_t *pos) {
  size_t n = W->n;
  size_t *order = malloc(3 * (n ? n : 1) * sizeof *order);
  unsigned *seen = calloc(n ? n : 1, sizeof *seen);
  if (order == NULL || seen == NULL) { free(order); free(seen); return (size_t)-1; }
  size_t *cand = order + n, *tmp = cand + n;
  for (size_t u = 0; u < n; u++) cand[u] = u;
  sort_by_degree(cand, tmp, n, W);
  unsigned stamp = 0;
  size_t placed = 0;
  for (size_t ci = 0; ci < n; ci++) {
    size_t start = cand[ci];
    if (seen[start] != 0) continue;  /* placed with an earlier component (stamps start at 1) */
    size_t size, last, *o = order + placed;
    size_t depth = cm_search(W, start, seen, ++stamp, o, &size, &last);
    for (int tries = 0; tries < 8; tries++) {
      size_t best = o[last];
      for (size_t p = last + 1; p < size; p++)
        if (degree(W, o[p]) < degree(W, best)) best = o[p];
      size_t s2, l2, d2 = cm_search(W, best, seen, ++stamp, o, &s2, &l2);
      if (d2 <= depth) {  /* no deeper: back to the best start */
        cm_search(W, start, seen, ++stamp, o, &size, &last);
        break;
      }
      start = best;
      depth = d2;
      last = l2;
    }
    placed += size;
  }
  size_t kd = 0;
  for (size_t p = 0; p < n; p++) pos[order[p]] = n - 1 - p;
  for (size_t r = 0; r < n; r++)
    for (size_t q = W->rowptr[r]; q < W->rowptr[r + 1]; q++) {
      size_t a = pos[r], b = pos[W->col[q]], w = a > b ? a - b : b - a;
      if (w > kd) kd = w;
    }
  free(order);
  free(seen);
  return kd;
}

static int lapack_failed(sp_error *err, const char *routine, lapack_int info, size_t n) {
  return sp_error_set(err, info > 0 ? SP_ECONV : SP_EVALUE,
                      "weights: the eigenvalue computation failed (LAPACK %s info %d on %zu units)", routine,
                      (int)info, n);
}

/* Eigenvalues (ascending, into re) of S = D^1/2 W D^-1/2, s the diagonal of
   D from sp_weights_similar_symmetric.  Each pair of links contributes half
   of each of its two entries, so S is exactly symmetric whatever the
   rounding of the rescaling. */
static int symmetric_eigenvalues(const sp_weights *W, const double *s, double *re, sp_error *err) {
  size_t n = W->n;
  size_t *pos = malloc(n * sizeof *pos);
  if (pos == NULL) return nomem(err, "eigenvalues");
  size_t kd = rcm(W, pos);
  if (kd == (size_t)-1) { free(pos); return nomem(err, "eigenvalues"); }
  int band = kd <= n / 10;  /* where dsbev_2stage beats the dense solver, measured at n = 3000 */
  size_t ld = band ? kd + 1 : n;
  if (overflow(ld, n) || overflow(ld * n, sizeof(double))) { free(pos); return nomem(err, "eigenvalues"); }
  /* column-major upper triangle; band: entry (i, j) at kd + i - j + j ld */
  double *A = calloc(ld * n, sizeof *A);
  if (A == NULL) { free(pos); return nomem(err, "eigenvalues (the symmetric matrix)"); }
  for (size_t r = 0; r < n; r++)
    for (size_t q = W->rowptr[r]; q < W->rowptr[r + 1]; q++) {
      size_t c = W->col[q], i = pos[r], j = pos[c];
      double v = W->val[q] * sqrt(s[r] / s[c]) * (r == c ? 1 : 0.5);
      if (i > j) { size_t t = i; i = j; j = t; }
      A[band ? kd + i - j + j * ld : i + j * ld] += v;
    }
  free(pos);
  int threads = sp_blas_serial_begin();  /* one BLAS thread: the same bits whatever OPENBLAS_NUM_THREADS says */
  lapack_int info = band ? LAPACKE_dsbev_2stage(LAPACK_COL_MAJOR, 'N', 'U', (lapack_int)n, (lapack_int)kd, A,
                                                (lapack_int)ld, re, NULL, 1)
                         : LAPACKE_dsyevd_2stage(LAPACK_COL_MAJOR, 'N', 'U', (lapack_int)n, A, (lapack_int)n, re);
  sp_blas_serial_end(threads);
  free(A);
  return info == 0 ? SP_OK : lapack_failed(err, band ? "dsbev_2stage" : "dsyevd_2stage", info, n);
}

/* }---------------------------------------------------------------------- */

/* Eigenvalues of any W by dgeev on a dense copy, sorted by real part. */
static int general_eigenvalues(const sp_weights *W, double *re, double *im, sp_error *err) {
  size_t n = W->n;
  if (overflow(n, n) || overflow(n * n, sizeof(double))) return nomem(err, "eigenvalues");
  double *A = malloc(n * n * sizeof *A);
  eig *e = malloc(n * sizeof *e);
  if (A == NULL || e == NULL) { free(A); free(e); return nomem(err, "eigenvalues (dense n x n copy)"); }
  sp_weights_dense(W, A);
  int threads = sp_blas_serial_begin();
  lapack_int info = LAPACKE_dgeev(LAPACK_ROW_MAJOR, 'N', 'N', (lapack_int)n, A, (lapack_int)n, re, im, NULL, 1,
                                  NULL, 1);
  sp_blas_serial_end(threads);
  if (info == 0) {
    for (size_t i = 0; i < n; i++) { e[i].re = re[i]; e[i].im = im[i]; }
    qsort(e, n, sizeof *e, eig_cmp);
    for (size_t i = 0; i < n; i++) { re[i] = e[i].re; im[i] = e[i].im; }
  }
  free(A);
  free(e);
  return info == 0 ? SP_OK : lapack_failed(err, "dgeev", info, n);
}

int sp_weights_eigenvalues(const sp_weights *W, double *re, double *im, sp_error *err) {
  size_t n = W->n;
  if (n == 0) return SP_OK;
  double *s = malloc(n * sizeof *s);
  if (s == NULL) return nomem(err, "eigenvalues");
  int st;
  if (sp_weights_similar_symmetric(W, s)) {
    if ((st = symmetric_eigenvalues(W, s, re, err)) == SP_OK)
      for (size_t i = 0; i < n; i++) im[i] = 0;
  } else {
    st = general_eigenvalues(W, re, im, err);
  }
  free(s);
  return st;
}

/* tr(W) and tr(W^2) from the sparse links. */
static void traces12(const sp_weights *W, double *t1, double *t2) {
  double a = 0, b = 0;
  for (size_t i = 0; i < W->n; i++)
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) {
      if (W->col[p] == i) a += W->val[p];
      size_t q = find_link(W, W->col[p], i);
      if (q != (size_t)-1) b += W->val[p] * W->val[q];
    }
  *t1 = a;
  *t2 = b;
}

int sp_weights_traces(const sp_weights *W, size_t kmax, double *out, sp_error *err) {
  if (kmax == 0) return SP_OK;
  double t1, t2;
  traces12(W, &t1, &t2);
  out[0] = t1;
  if (kmax >= 2) out[1] = t2;
  if (kmax <= 2) return SP_OK;
  size_t n = W->n;
  if (n > SP_WEIGHTS_EXACT_MAX)
    return sp_error_set(err, SP_EVALUE,
                        "weights: exact traces of powers above 2 need the eigenvalues, too costly for %zu units "
                        "(limit %d); use the Monte Carlo traces", n, SP_WEIGHTS_EXACT_MAX);
  double *re = malloc(2 * n * sizeof *re);
  if (re == NULL) return nomem(err, "traces");
  double *im = re + n;
  int st = sp_weights_eigenvalues(W, re, im, err);
  if (st != SP_OK) { free(re); return st; }
  for (size_t k = 3; k <= kmax; k++) out[k - 1] = 0;
  for (size_t i = 0; i < n; i++) {
    /* (re + i im)^k by repeated multiplication; the imaginary parts cancel over conjugate pairs */
    double pr = re[i] * re[i] - im[i] * im[i], pi = 2 * re[i] * im[i];
    for (size_t k = 3; k <= kmax; k++) {
      double nr = pr * re[i] - pi * im[i], ni = pr * im[i] + pi * re[i];
      pr = nr;
      pi = ni;
      out[k - 1] += pr;
    }
  }
  free(re);
  return SP_OK;
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/* A generator seeded as sp.rng(seed) is, so a seed means the same stream. */
static gsl_rng *new_rng(uint64_t seed, sp_error *err) {
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r == NULL) { nomem(err, "random stream"); return NULL; }
  gsl_rng_set(r, (unsigned long)splitmix64(seed));
  return r;
}

int sp_weights_traces_mc(const sp_weights *W, size_t kmax, size_t reps, uint64_t seed,
                         double *out, sp_error *err) {
  return sp_weights_traces_mc_shifted(W, 0, 1, kmax, reps, seed, out, NULL, err);
}

/* y = U x with U = (W - shift I) / scale. */
static void shifted_lag(const sp_weights *W, double shift, double scale, const double *x, double *y) {
  sp_weights_lag(W, x, y);
  for (size_t i = 0; i < W->n; i++) y[i] = (y[i] - shift * x[i]) / scale;
}

int sp_weights_traces_mc_shifted(const sp_weights *W, double shift, double scale, size_t kmax,
                                 size_t reps, uint64_t seed, double *tpow, double *tcheb,
                                 sp_error *err) {
  if (kmax == 0) return SP_OK;
  if (reps == 0) return sp_error_set(err, SP_EVALUE, "weights: Monte Carlo traces need at least one probe");
  size_t n = W->n;
  /* u the probe, c0 and c1 = T_(k-1)(U) u and T_k(U) u, w scratch; ch[k] the
     mean of n u'T_k(U)u / u'u (k = 0..kmax), p the binomial weights below */
  double *u = malloc((4 * (n ? n : 1) + 2 * (kmax + 1)) * sizeof *u);
  if (u == NULL) return nomem(err, "traces");
  double *c0 = u + n, *c1 = c0 + n, *w = c1 + n, *ch = w + n, *p = ch + kmax + 1;
  /* seed is the Mersenne Twister's own seed (not mixed as sp.rng's): the
     log-determinant's `seed` option has always meant that */
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r == NULL) { free(u); return nomem(err, "random stream"); }
  gsl_rng_set(r, (unsigned long)seed);
  for (size_t k = 0; k <= kmax; k++) ch[k] = 0;
  for (size_t rep = 0; rep < reps && n > 0; rep++) {  /* no units (an empty period block): all traces 0 */
    double uu = 0;
    for (size_t i = 0; i < n; i++) {
      c0[i] = u[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
      uu += u[i] * u[i];
    }
    double norm = (double)n / uu / (double)reps;
    ch[0] += uu * norm;
    shifted_lag(W, shift, scale, u, c1);
    for (size_t k = 1; k <= kmax; k++) {
      double c = 0;
      for (size_t i = 0; i < n; i++) c += u[i] * c1[i];
      ch[k] += c * norm;
      if (k == kmax) break;
      /* T_(k+1) u = 2 U T_k u - T_(k-1) u */
      shifted_lag(W, shift, scale, c1, w);
      for (size_t i = 0; i < n; i++) {
        double next = 2 * w[i] - c0[i];
        c0[i] = c1[i];
        c1[i] = next;
      }
    }
  }
  gsl_rng_free(r);
  /* The powers from the same products: with x = cos t, x^k = ((e^it +
     e^-it) / 2)^k = sum_j C(k, j) 2^-k T_|k-2j|(x), an identity between
     polynomials that holds for the matrix U and so for each probe's
     u'U^k u.  The weights (binomial probabilities, by halving Pascal's rule)
     are positive and sum to one, so the conversion loses no precision. */
  for (size_t j = 0; j <= kmax; j++) p[j] = 0;
  p[0] = 1;
  for (size_t k = 1; k <= kmax; k++) {
    for (size_t j = k; j > 0; j--) p[j] = (p[j] + p[j - 1]) / 2;
    p[0] /= 2;
    double t = 0;
    for (size_t j = 0; j <= k; j++) t += p[j] * ch[k > 2 * j ? k - 2 * j : 2 * j - k];
    tpow[k - 1] = t;
    if (tcheb) tcheb[k - 1] = ch[k];
  }
  free(u);
  /* tr(U) and tr(U^2) exactly, from tr(W) and tr(W^2); T_1 = U, T_2 = 2 U^2 - I */
  double t1, t2, dn = (double)n;
  traces12(W, &t1, &t2);
  double u1 = (t1 - shift * dn) / scale, u2 = (t2 - 2 * shift * t1 + shift * shift * dn) / (scale * scale);
  tpow[0] = u1;
  if (kmax >= 2) tpow[1] = u2;
  if (tcheb) {
    tcheb[0] = u1;
    if (kmax >= 2) tcheb[1] = 2 * u2 - dn;
  }
  return SP_OK;
}

/* }====================================================================== */

/* {======================================================================
** Moran's I
** ======================================================================= */

/* z = x - mean(x); fails on missing values or a constant x. */
static int centre(const sp_weights *W, const double *x, double *z, double *zz, const char *what,
                  sp_error *err) {
  size_t n = W->n;
  double m = 0;
  char b[32];
  if (n < 4) return sp_error_set(err, SP_EDF, "%s: %zu units are too few; expected at least 4", what, n);
  for (size_t i = 0; i < n; i++) {
    if (isnan(x[i]))
      return sp_error_set(err, SP_EMISSING, "%s: the value of %s is missing; Moran's I needs a value for every unit",
                          what, wname(W, i, b, sizeof b));
    m += x[i];
  }
  m /= (double)n;
  double s = 0;
  for (size_t i = 0; i < n; i++) { z[i] = x[i] - m; s += z[i] * z[i]; }
  if (!(s > 0)) return sp_error_set(err, SP_EVALUE, "%s: x is constant; Moran's I is undefined", what);
  *zz = s;
  return SP_OK;
}

static double zwz(const sp_weights *W, const double *z) {
  double s = 0;
  for (size_t i = 0; i < W->n; i++) {
    double l = 0;
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) l += W->val[p] * z[W->col[p]];
    s += z[i] * l;
  }
  return s;
}

int sp_weights_moran(const sp_weights *W, const double *x, int randomisation,
                     sp_moran_result *res, sp_error *err) {
  size_t n0 = W->n;
  memset(res, 0, sizeof *res);
  double *z = malloc((n0 ? n0 : 1) * sizeof *z);
  if (z == NULL) return nomem(err, "moran");
  double zz, z4 = 0;
  int st = centre(W, x, z, &zz, "moran", err);
  if (st != SP_OK) { free(z); return st; }
  double S0, S1, S2;
  if ((st = sp_weights_moran_sums(W, &S0, &S1, &S2, err)) != SP_OK) { free(z); return st; }
  if (!(S0 > 0)) { free(z); return sp_error_set(err, SP_EVALUE, "moran: the weights have no links"); }
  /* spdep's adjust.n: islands do not count in n */
  double n = (double)(n0 - sp_weights_islands(W, NULL, 0));
  double I = n / S0 * zwz(W, z) / zz;
  for (size_t i = 0; i < n0; i++) z4 += z[i] * z[i] * z[i] * z[i];
  free(z);
  double E = -1.0 / (n - 1), nn = n * n, S02 = S0 * S0;
  double Vn = (nn * S1 - n * S2 + 3 * S02) / (S02 * (nn - 1)) - E * E;
  double K = (double)n0 * z4 / (zz * zz);
  double Vr = (n * (S1 * (nn - 3 * n + 3) - n * S2 + 3 * S02) - K * (S1 * (nn - n) - 2 * n * S2 + 6 * S02)) /
                  ((n - 1) * (n - 2) * (n - 3) * S02) - E * E;
  res->I = I;
  res->expectation = E;
  res->variance_normal = Vn;
  res->variance_random = Vr;
  res->variance = randomisation ? Vr : Vn;
  res->z = (I - E) / sqrt(res->variance);
  res->pvalue = gsl_cdf_ugaussian_Q(res->z);
  res->S0 = S0;
  res->S1 = S1;
  res->S2 = S2;
  res->kurtosis = K;
  return SP_OK;
}

int sp_weights_moran_perm(const sp_weights *W, const double *x, size_t nperm, uint64_t seed,
                          double *Isim, double *pvalue, sp_error *err) {
  size_t n = W->n;
  if (nperm == 0) return sp_error_set(err, SP_EVALUE, "moran: permutations must be at least 1");
  double *z = malloc(2 * (n ? n : 1) * sizeof *z);
  if (z == NULL) return nomem(err, "moran permutations");
  double *zp = z + n, zz;
  int st = centre(W, x, z, &zz, "moran", err);
  if (st != SP_OK) { free(z); return st; }
  gsl_rng *r = new_rng(seed, err);
  if (r == NULL) { free(z); return SP_ENOMEM; }
  /* n/S0 and z'z do not change under permutation; compare z'Wz directly */
  double obs = zwz(W, z), S0 = 0;
  for (size_t p = 0; p < W->nnz; p++) S0 += W->val[p];
  double scale = (double)(n - sp_weights_islands(W, NULL, 0)) / S0 / zz;
  memcpy(zp, z, n * sizeof *zp);
  size_t ge = 0;
  for (size_t s = 0; s < nperm; s++) {
    gsl_ran_shuffle(r, zp, n, sizeof *zp);
    double v = zwz(W, zp);
    if (v >= obs) ge++;
    if (Isim) Isim[s] = v * scale;
  }
  gsl_rng_free(r);
  free(z);
  *pvalue = (double)(ge + 1) / (double)(nperm + 1);
  return SP_OK;
}

int sp_weights_local_moran(const sp_weights *W, const double *x, double *Ii, double *E,
                           double *Var, sp_error *err) {
  size_t n = W->n;
  double *z = malloc((n ? n : 1) * sizeof *z);
  if (z == NULL) return nomem(err, "local moran");
  double zz;
  int st = centre(W, x, z, &zz, "local_moran", err);
  if (st != SP_OK) { free(z); return st; }
  double dn = (double)n, m2 = zz / dn;  /* mlvar = TRUE: s2 = m2 */
  for (size_t i = 0; i < n; i++) {
    double lz = 0, wi = 0, wi2 = 0;
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) {
      lz += W->val[p] * z[W->col[p]];
      wi += W->val[p];
      wi2 += W->val[p] * W->val[p];
    }
    double zi2 = z[i] * z[i];
    if (Ii) Ii[i] = z[i] / m2 * lz;
    if (E) E[i] = -(zi2 * wi) / ((dn - 1) * m2);
    if (Var)
      Var[i] = (zi2 / (m2 * m2)) * (dn / (dn - 2)) * (wi2 - wi * wi / (dn - 1)) * (m2 - zi2 / (dn - 1));
  }
  free(z);
  return SP_OK;
}

int sp_weights_local_moran_perm(const sp_weights *W, const double *x, size_t nperm, uint64_t seed,
                                double *pvalue, sp_error *err) {
  size_t n = W->n;
  if (nperm == 0) return sp_error_set(err, SP_EVALUE, "local_moran: permutations must be at least 1");
  double *z = malloc(2 * (n ? n : 1) * sizeof *z);
  if (z == NULL) return nomem(err, "local moran permutations");
  double *pool = z + n, zz;
  int st = centre(W, x, z, &zz, "local_moran", err);
  if (st != SP_OK) { free(z); return st; }
  gsl_rng *r = new_rng(seed, err);
  if (r == NULL) { free(z); return SP_ENOMEM; }
  for (size_t i = 0; i < n; i++) {
    size_t k = W->rowptr[i + 1] - W->rowptr[i];
    if (k == 0) { pvalue[i] = NAN; continue; }
    /* the other n - 1 values; any order of the pool is a valid pool, so a
       partial Fisher-Yates shuffle per draw needs no reset */
    size_t m = 0;
    for (size_t j = 0; j < n; j++) if (j != i) pool[m++] = z[j];
    double obs = 0;
    for (size_t p = W->rowptr[i]; p < W->rowptr[i + 1]; p++) obs += W->val[p] * z[W->col[p]];
    obs *= z[i];
    size_t ge = 0, le = 0;
    for (size_t s = 0; s < nperm; s++) {
      double l = 0;
      for (size_t q = 0; q < k; q++) {
        size_t c = q + (size_t)gsl_rng_uniform_int(r, (unsigned long)(m - q));
        double t = pool[q]; pool[q] = pool[c]; pool[c] = t;
        l += W->val[W->rowptr[i] + q] * pool[q];
      }
      double v = z[i] * l;
      if (v >= obs) ge++;
      if (v <= obs) le++;
    }
    pvalue[i] = (double)((ge < le ? ge : le) + 1) / (double)(nperm + 1);
  }
  gsl_rng_free(r);
  free(z);
  return SP_OK;
}

/* }====================================================================== */
