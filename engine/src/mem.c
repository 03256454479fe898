/*
** mem.c: large-buffer allocation with huge-page advice (see mem.h).
*/
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "spillover/mem.h"

#define SP_HUGE_ALIGN ((size_t)2 << 20)
#define SP_HUGE_MIN ((size_t)1 << 20)

void *sp_mem_alloc(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes < SP_HUGE_MIN) return malloc(bytes);
  size_t rounded = (bytes + SP_HUGE_ALIGN - 1) & ~(SP_HUGE_ALIGN - 1);
  if (rounded < bytes) return NULL;
  void *p = NULL;
  if (posix_memalign(&p, SP_HUGE_ALIGN, rounded) != 0) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, rounded, MADV_HUGEPAGE);  /* advice only: failure is harmless */
#endif
  return p;
}

void *sp_mem_calloc(size_t n, size_t size) {
  if (size != 0 && n > SIZE_MAX / size) return NULL;
  void *p = sp_mem_alloc(n * size);
  if (p != NULL) memset(p, 0, n * size == 0 ? 1 : n * size);
  return p;
}

void sp_mem_free(void *p) { free(p); }

double *sp_mem_doubles(size_t n) {
  if (n > SIZE_MAX / sizeof(double)) return NULL;
  return sp_mem_alloc(n * sizeof(double));
}
