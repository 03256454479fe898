/*
** numstat.h (internal): the range of a numeric column's finite values,
** whether they are all integers, and whether some value is not finite.
** The design's row scan gathers them to choose rows and code factors; the
** CSV loader gathers them over the rows it has just stored, while they are
** in cache, and leaves them in the column's scan cache (frame.h), so that
** a first fit need not read the columns to learn them.
**
** The integer test adds and subtracts 1.5 * 2^52, which rounds x to an
** integer when |x| < 2^51, so it gives x back exactly when x is one:
** branch-free and vectorisable where floor() is a library call (no SSE4.1
** in the baseline).  Values of 2^51 or more in magnitude make the integer
** test false and leave a factor to the hash coding.
*/
#ifndef SPILLOVER_NUMSTAT_H
#define SPILLOVER_NUMSTAT_H

#include <math.h>
#include <stddef.h>

#include "spillover/frame.h"

typedef struct {
  double lo, hi;     /* INFINITY, -INFINITY when no value is finite */
  unsigned frac;     /* some finite value of magnitude < 2^51 is not an integer */
} sp_numstat;

#define SP_ROUNDER 6755399441055744.0   /* 1.5 * 2^52 */
#define SP_INT_LIMIT 2251799813685248.0 /* 2^51 */
#define SP_NUMSTAT_EMPTY ((sp_numstat){INFINITY, -INFINITY, 0})

static inline void sp_numstat_merge(sp_numstat *a, const sp_numstat *b) {
  a->lo = b->lo < a->lo ? b->lo : a->lo;
  a->hi = b->hi > a->hi ? b->hi : a->hi;
  a->frac |= b->frac;
}

static inline int sp_numstat_ints(const sp_numstat *s) {
  return !s->frac && s->lo > -SP_INT_LIMIT && s->hi < SP_INT_LIMIT;
}

/* Fold v[r0..r1) into *s; returns whether some value is not finite (those
   are left out of the range).  Any split of the rows into pieces, folded in
   any order and merged, gives the same range and test, up to the sign of a
   zero minimum or maximum. */
int sp_numstat_fold(const double *v, size_t r0, size_t r1, sp_numstat *s);

/* The scan cache of a numeric column (frame.h) from its statistics. */
static inline sp_colscan sp_numstat_scan(const sp_numstat *s, int missing) {
  return (sp_colscan){.known = 1, .missing = missing != 0, .frac = s->frac != 0, .lo = s->lo, .hi = s->hi};
}

#endif
