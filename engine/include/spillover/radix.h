/*
** radix.h: a stable LSD radix sort on unsigned 64-bit keys, the kernel under
** sorting, grouping and joining frames (frame_ops.c).
**
** Callers encode what they sort (level ranks, integers, doubles) as unsigned
** integers whose ascending order is the order wanted, so one kernel serves
** every key type without a comparator.
*/
#ifndef SPILLOVER_RADIX_H
#define SPILLOVER_RADIX_H

#include <stddef.h>
#include <stdint.h>

#include "spillover/error.h"

/* Stably sort a[0..n) ascending by the bit field (a[i] >> shift) of width
   bits (bits above shift + bits are ignored); when rows is not NULL it is
   permuted along with a.  shift + bits <= 64.  The scratch (the size of a and
   rows) is allocated and freed here; SP_ENOMEM when it cannot be. */
int sp_radix_sort(uint64_t *a, uint32_t *rows, size_t n, unsigned shift, unsigned bits, sp_error *err);

/* The number of bits needed to write v (0 for v == 0). */
unsigned sp_radix_bits(uint64_t v);

#endif
