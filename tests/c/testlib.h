/*
** testlib.h: the pass/fail counter and the deterministic generator the C
** tests share (xorshift64*, so a test needs no RNG module).  Header-only:
** each test is one translation unit.
*/
#ifndef SPILLOVER_TESTLIB_H
#define SPILLOVER_TESTLIB_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static int npass, nfail;

static void check(const char *name, int ok) {
  printf("%s: %s\n", ok ? "PASS" : "FAIL", name);
  if (ok) npass++;
  else nfail++;
}

/* Uniform on [0, 1); seed it by assigning rng_state. */
static uint64_t rng_state = 88172645463325252ULL;
static double urand(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}
static inline int32_t irand(int32_t m) { return (int32_t)(urand() * m); }
/* N(0, 1) by Box-Muller (1 - urand() is never 0). */
static inline double nrand(void) { return sqrt(-2.0 * log(1.0 - urand())) * cos(6.283185307179586 * urand()); }

#endif
