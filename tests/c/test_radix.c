/*
** test_radix.c: the radix sort kernel (radix.c) against qsort with the row as
** tie-break (a stable reference), over key widths that take one, several and
** skipped passes, with and without a row array.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/radix.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

static uint64_t state = 88172645463325252ULL;

static uint64_t rnd(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

typedef struct {
  uint64_t key;  /* the field sorted on */
  uint64_t a;    /* the whole element */
  uint32_t row;
} ref;

static int cmp_ref(const void *p, const void *q) {
  const ref *x = p, *y = q;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return (x->row > y->row) - (x->row < y->row);
}

/* Sort n elements whose field (shift, bits) takes values below 2^vbits
   (fewer values than the field holds: the high passes are skipped). */
static void case_sort(size_t n, unsigned shift, unsigned bits, unsigned vbits, int with_rows, const char *what) {
  uint64_t *a = malloc((n ? n : 1) * sizeof *a);
  uint32_t *rows = malloc((n ? n : 1) * sizeof *rows);
  ref *r = malloc((n ? n : 1) * sizeof *r);
  uint64_t field = bits >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << bits) - 1;
  uint64_t vmask = vbits >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << vbits) - 1;
  for (size_t i = 0; i < n; i++) {
    uint64_t noise = rnd();  /* bits outside the field must not matter */
    uint64_t v = rnd() & vmask & field;
    uint64_t keep = shift ? noise & (((uint64_t)1 << shift) - 1) : 0;
    uint64_t above = shift + bits < 64 ? noise & ~(((uint64_t)1 << (shift + bits)) - 1) : 0;
    a[i] = (v << shift) | keep | above;
    rows[i] = (uint32_t)i;
    r[i].key = v;
    r[i].a = a[i];
    r[i].row = (uint32_t)i;
  }
  qsort(r, n, sizeof *r, cmp_ref);
  sp_error err;
  int st = sp_radix_sort(a, with_rows ? rows : NULL, n, shift, bits, &err);
  int ok = st == SP_OK;
  for (size_t i = 0; ok && i < n; i++) ok = a[i] == r[i].a && (!with_rows || rows[i] == r[i].row);
  check(ok, what);
  free(a);
  free(rows);
  free(r);
}

int main(void) {
  case_sort(0, 0, 8, 8, 1, "empty");
  case_sort(1, 0, 64, 64, 1, "one element");
  case_sort(1000, 0, 1, 1, 1, "one bit, many ties: stable");
  case_sort(5000, 0, 11, 11, 1, "11 bits: one pass");
  case_sort(5000, 0, 17, 17, 1, "17 bits: two passes");
  case_sort(5000, 0, 17, 3, 1, "17-bit field holding 3-bit values: high pass skipped");
  case_sort(5000, 32, 20, 20, 0, "packed: key above a 32-bit row, no row array");
  case_sort(5000, 32, 32, 32, 0, "packed: 32-bit key");
  case_sort(5000, 0, 64, 64, 1, "64 bits: six passes");
  case_sort(5000, 5, 40, 40, 1, "field in the middle, noise above and below");
  case_sort(5000, 0, 40, 0, 1, "all equal: every pass skipped");
  check(sp_radix_bits(0) == 0 && sp_radix_bits(1) == 1 && sp_radix_bits(100000) == 17 &&
        sp_radix_bits(~(uint64_t)0) == 64, "bits needed");
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
