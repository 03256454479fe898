/*
** kdtree.c: the implicit k-d tree (see kdtree.h).
*/
#include <math.h>
#include <stddef.h>

#include "spillover/kdtree.h"

/* Reorder idx[lo, hi) so that idx[k] holds the point whose coordinate d is
   k-th smallest, with no larger one before it and no smaller one after
   (Hoare's selection). */
static void select_kth(size_t *idx, const double *P, int dim, int d, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t k) {
  hi--;
  while (lo < hi) {
    double pivot = P[dim * idx[lo + (hi - lo) / 2] + d];
    ptrdiff_t i = lo, j = hi;
    while (i <= j) {
      while (P[dim * idx[i] + d] < pivot) i++;
      while (P[dim * idx[j] + d] > pivot) j--;
      if (i <= j) {
        size_t t = idx[i];
        idx[i++] = idx[j];
        idx[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;  /* between j and i everything equals the pivot */
  }
}

void sp_kdtree_build(size_t *idx, unsigned char *split, const double *P, int dim, size_t lo, size_t hi) {
  while (hi - lo > SP_KDTREE_LEAF) {
    double mn[3] = {INFINITY, INFINITY, INFINITY}, mx[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (size_t p = lo; p < hi; p++)
      for (int d = 0; d < dim; d++) {
        double v = P[dim * idx[p] + d];
        if (v < mn[d]) mn[d] = v;
        if (v > mx[d]) mx[d] = v;
      }
    int d = 0;
    for (int c = 1; c < dim; c++)
      if (mx[c] - mn[c] > mx[d] - mn[d]) d = c;
    size_t mid = lo + (hi - lo) / 2;
    select_kth(idx, P, dim, d, (ptrdiff_t)lo, (ptrdiff_t)hi, (ptrdiff_t)mid);
    split[mid] = (unsigned char)d;
    sp_kdtree_build(idx, split, P, dim, lo, mid);
    lo = mid + 1;
  }
}

void sp_kdtree_search(const double *Pt, const unsigned char *split, int dim, const double *q,
                      const double *r2, size_t lo, size_t hi, sp_kdtree_visit visit, void *ctx) {
  while (hi - lo > SP_KDTREE_LEAF) {
    size_t mid = lo + (hi - lo) / 2;
    int d = split[mid];
    visit(ctx, mid);
    double diff = q[d] - Pt[dim * mid + d];
    /* the near side first; the far side only when the ball crosses the plane */
    size_t nlo = diff < 0 ? lo : mid + 1, nhi = diff < 0 ? mid : hi;
    size_t flo = diff < 0 ? mid + 1 : lo, fhi = diff < 0 ? hi : mid;
    sp_kdtree_search(Pt, split, dim, q, r2, nlo, nhi, visit, ctx);
    if (diff * diff > *r2) return;
    lo = flo;
    hi = fhi;
  }
  for (size_t p = lo; p < hi; p++) visit(ctx, p);
}
