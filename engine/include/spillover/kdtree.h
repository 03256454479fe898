/*
** kdtree.h: an implicit k-d tree over points in 2 or 3 dimensions, shared by
** the Conley covariance (conley.c: a ball around each point) and the
** nearest-neighbour and distance-band weights (weights.c).
**
** The tree is a permutation of the points, nothing else: the median of each
** range [lo, hi) sits at mid = lo + (hi - lo) / 2 with the points on its low
** side before it, split along the axis of widest spread (split[mid]); ranges
** of at most SP_KDTREE_LEAF points are scanned.  Building is O(n log n) with
** Hoare's selection, and needs no memory beyond idx and split.
**
** The search visits a superset of the points within a radius of a query
** point and leaves the exact distance test to the caller's visitor, so the
** caller keeps its own metric (a haversine, a hypot) and its own rounding
** rules: the tree only promises never to skip a point whose distance along
** every axis is within the radius.  The visitor may shrink the radius as it
** goes, which is how a k-nearest search narrows.
*/
#ifndef SPILLOVER_KDTREE_H
#define SPILLOVER_KDTREE_H

#include <stddef.h>

#define SP_KDTREE_LEAF 8

/* Build over idx[lo, hi): on entry idx holds point numbers, P their
   coordinates (dim per point, P[dim * point + axis]); on return idx[lo, hi)
   is in tree order and split[p] is the axis of the median at position p.
   dim is 2 or 3. */
void sp_kdtree_build(size_t *idx, unsigned char *split, const double *P, int dim, size_t lo, size_t hi);

/* Called with the tree position of each candidate point. */
typedef void (*sp_kdtree_visit)(void *ctx, size_t pos);

/* Visit, in [lo, hi) of a tree built by sp_kdtree_build, every position
   whose point may lie within sqrt(*r2) of q: each point not visited has a
   coordinate whose squared difference from q's exceeds *r2 when it is
   reached.  Pt holds the coordinates in tree order (Pt[dim * pos + axis]).
   Near sides are searched first; *r2 is read again at every split, so a
   visitor that lowers it prunes what follows.  *r2 may be infinite. */
void sp_kdtree_search(const double *Pt, const unsigned char *split, int dim, const double *q,
                      const double *r2, size_t lo, size_t hi, sp_kdtree_visit visit, void *ctx);

#endif
