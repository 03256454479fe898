/*
** scancheck.h: whether a numeric column's scan cache (frame.h) holds what a
** plain pass over its values finds: the range of the finite values, whether
** one is missing, whether a finite value is not an integer (by numstat.h's
** test, exact below 2^51 in magnitude), and no claim of density (only a design learns that).  A fit
** trusts the cache to code factors (a range too narrow would index past its
** arrays), so tests and the CSV fuzzer check the loader's cache against
** this loop, not against the loader's own code.
*/
#ifndef SPILLOVER_TEST_SCANCHECK_H
#define SPILLOVER_TEST_SCANCHECK_H

#include <math.h>

#include "spillover/frame.h"

static int scan_matches(const sp_column *c, size_t nrow) {
  double lo = INFINITY, hi = -INFINITY;
  int missing = 0, frac = 0;
  for (size_t r = 0; r < nrow; r++) {
    double x = c->num[r];
    if (!isfinite(x)) { missing = 1; continue; }
    lo = fmin(lo, x);
    hi = fmax(hi, x);
    /* numstat.h's integer test: exact below 2^51 in magnitude; above, where
       the range test already refuses the direct coding, it may say either. */
    frac |= (x + 6755399441055744.0) - 6755399441055744.0 != x;
  }
  return c->scan.known && c->scan.missing == missing && c->scan.frac == frac && c->scan.lo == lo &&
         c->scan.hi == hi && !c->scan.dense;
}

#endif
