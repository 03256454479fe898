/*
** numstat.c: the range and integer test of a numeric column (numstat.h).
*/
#include <math.h>
#include <stddef.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "numstat.h"

/* With SSE2, first two values a step over the raw values (GCC 12 does not
   vectorise this loop by itself: the selects and the min/max reductions),
   which is exact when every value is
   finite; a block with a missing value is done again by the scalar loop, which
   leaves the non-finite values out.  minpd / maxpd compute exactly the scalar
   `a < b ? a : b` and `a > b ? a : b`, so only the sign of a zero minimum or
   maximum can depend on the order, which neither the offsets (x - lo) nor the
   values lo + j see. */
int sp_numstat_fold(const double *v, size_t r0, size_t r1, sp_numstat *s) {
#if defined(__SSE2__)
  {
    const __m128d zero = _mm_setzero_pd(), rnd = _mm_set1_pd(SP_ROUNDER);
    __m128d vlo = _mm_set1_pd(s->lo), vhi = _mm_set1_pd(s->hi), vfrac = zero, vbad = zero;
    size_t r = r0;
    for (; r + 2 <= r1; r += 2) {
      __m128d x = _mm_loadu_pd(v + r);
      vlo = _mm_min_pd(x, vlo);
      vhi = _mm_max_pd(x, vhi);
      vfrac = _mm_or_pd(vfrac, _mm_cmpneq_pd(_mm_sub_pd(_mm_add_pd(x, rnd), rnd), x));
      vbad = _mm_or_pd(vbad, _mm_cmpneq_pd(_mm_sub_pd(x, x), zero));  /* NaN - NaN, inf - inf: NaN */
    }
    double l2[2], h2[2];
    _mm_storeu_pd(l2, vlo);
    _mm_storeu_pd(h2, vhi);
    double lo = l2[1] < l2[0] ? l2[1] : l2[0], hi = h2[1] > h2[0] ? h2[1] : h2[0];
    unsigned frac = _mm_movemask_pd(vfrac) != 0, bad = _mm_movemask_pd(vbad) != 0;
    if (r < r1) {  /* an odd row left */
      double x = v[r];
      lo = x < lo ? x : lo;
      hi = x > hi ? x : hi;
      frac |= (x + SP_ROUNDER) - SP_ROUNDER != x;
      bad |= x - x != 0;
    }
    if (!bad) {
      *s = (sp_numstat){lo, hi, s->frac | frac};
      return 0;
    }
  }
#endif
  double lo = s->lo, hi = s->hi;
  unsigned frac = s->frac, bad = 0;
  for (size_t r = r0; r < r1; r++) {
    double x = v[r];
    int fin = x - x == 0;
    double xi = fin ? x : 0.0, xl = fin ? x : INFINITY, xh = fin ? x : -INFINITY;
    lo = xl < lo ? xl : lo;
    hi = xh > hi ? xh : hi;
    frac |= (xi + SP_ROUNDER) - SP_ROUNDER != xi;
    bad |= !fin;
  }
  *s = (sp_numstat){lo, hi, frac};
  return bad != 0;
}
