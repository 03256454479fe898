/*
** radix.c: stable LSD radix sort (see radix.h).
**
** One pass over the keys counts every digit's histogram at once; each digit
** then costs one scatter pass, and a digit whose values are all equal (high
** bits of a narrow key) is skipped.  Digits are at most 11 bits: 2048 buckets
** keep the counts and the write positions in L1/L2 while the scatter stays a
** few streams per cache line.  The bits are split evenly over the passes, so
** a 17-bit key takes two 9/8-bit passes instead of 11 + 6.
*/
#include <stdlib.h>
#include <string.h>

#include "spillover/mem.h"
#include "spillover/radix.h"

#define DIGIT_MAX 11

unsigned sp_radix_bits(uint64_t v) {
  unsigned b = 0;
  while (v != 0) { b++; v >>= 1; }
  return b;
}

int sp_radix_sort(uint64_t *a, uint32_t *rows, size_t n, unsigned shift, unsigned bits, sp_error *err) {
  if (n < 2 || bits == 0) return SP_OK;
  unsigned npass = (bits + DIGIT_MAX - 1) / DIGIT_MAX;
  unsigned width = (bits + npass - 1) / npass;
  size_t nb = (size_t)1 << width, mask[(64 + DIGIT_MAX - 1) / DIGIT_MAX];
  for (unsigned p = 0; p < npass; p++) {  /* the last digit may be narrower */
    unsigned w = bits - p * width < width ? bits - p * width : width;
    mask[p] = ((size_t)1 << w) - 1;
  }
  size_t *count = calloc(npass * nb, sizeof *count);
  uint64_t *ta = sp_mem_alloc(n * sizeof *ta);
  uint32_t *tr = rows ? sp_mem_alloc(n * sizeof *tr) : NULL;
  if (count == NULL || ta == NULL || (rows && tr == NULL)) {
    free(count);
    sp_mem_free(ta);
    sp_mem_free(tr);
    return sp_error_set(err, SP_ENOMEM, "out of memory sorting %zu rows", n);
  }
  for (size_t i = 0; i < n; i++)
    for (unsigned p = 0; p < npass; p++) count[p * nb + ((a[i] >> (shift + p * width)) & mask[p])]++;
  uint64_t *src = a, *dst = ta;
  uint32_t *rsrc = rows, *rdst = tr;
  for (unsigned p = 0; p < npass; p++) {
    size_t *c = count + p * nb, m = mask[p];
    unsigned sh = shift + p * width;
    if (c[(src[0] >> sh) & m] == n) continue;  /* every key has the same digit: a pass would copy */
    size_t sum = 0;
    for (size_t b = 0; b < nb; b++) { size_t t = c[b]; c[b] = sum; sum += t; }
    if (rows) {
      for (size_t i = 0; i < n; i++) {
        size_t o = c[(src[i] >> sh) & m]++;
        dst[o] = src[i];
        rdst[o] = rsrc[i];
      }
    } else {
      for (size_t i = 0; i < n; i++) dst[c[(src[i] >> sh) & m]++] = src[i];
    }
    uint64_t *t = src; src = dst; dst = t;
    uint32_t *tt = rsrc; rsrc = rdst; rdst = tt;
  }
  if (src != a) {
    memcpy(a, src, n * sizeof *a);
    if (rows) memcpy(rows, rsrc, n * sizeof *rows);
  }
  free(count);
  sp_mem_free(ta);
  sp_mem_free(tr);
  return SP_OK;
}
