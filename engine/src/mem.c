/*
** mem.c: large-buffer allocation with huge-page advice and reuse (see mem.h).
**
** The first touch of a fresh page costs ~17 us on the machines we target, so
** an estimation at 1e7 rows that allocates a few hundred megabytes of fresh
** buffers spends more time in page faults than in arithmetic.  Large blocks
** are therefore aligned to 2 MiB, advised for transparent huge pages, and,
** when freed, kept in a small cache (at most SP_CACHE_MAX bytes) from which the
** next allocation of a similar size is served warm.  The cache is
** process-wide infrastructure like malloc's own arenas, guarded by a mutex.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "spillover/mem.h"

#define SP_HUGE_ALIGN ((size_t)2 << 20)
#define SP_HUGE_MIN ((size_t)1 << 20)
#define SP_CACHE_MAX ((size_t)1 << 30)
#define SP_CACHE_SLOTS 16
#define SP_LIVE_SLOTS 1024

typedef struct {
  void *p;
  size_t cap;
} block;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static block live[SP_LIVE_SLOTS];     /* large blocks handed out (capacity by pointer) */
static size_t nlive;
static block cache[SP_CACHE_SLOTS];   /* freed large blocks kept for reuse */
static size_t ncache, cache_bytes;

static void *cache_take(size_t bytes) {
  size_t best = SP_CACHE_SLOTS;
  for (size_t i = 0; i < ncache; i++)
    if (cache[i].cap >= bytes && cache[i].cap / 2 <= bytes && (best == SP_CACHE_SLOTS || cache[i].cap < cache[best].cap))
      best = i;
  if (best == SP_CACHE_SLOTS) return NULL;
  block b = cache[best];
  cache[best] = cache[--ncache];
  cache_bytes -= b.cap;
  if (nlive < SP_LIVE_SLOTS) live[nlive++] = b;
  return b.p;
}

void *sp_mem_alloc(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes < SP_HUGE_MIN) return malloc(bytes);
  size_t rounded = (bytes + SP_HUGE_ALIGN - 1) & ~(SP_HUGE_ALIGN - 1);
  if (rounded < bytes) return NULL;
  pthread_mutex_lock(&lock);
  void *p = cache_take(rounded);
  pthread_mutex_unlock(&lock);
  if (p != NULL) return p;
  if (posix_memalign(&p, SP_HUGE_ALIGN, rounded) != 0) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, rounded, MADV_HUGEPAGE);  /* advice only: failure is harmless */
#endif
  pthread_mutex_lock(&lock);
  if (nlive < SP_LIVE_SLOTS) live[nlive++] = (block){p, rounded};  /* untracked blocks are simply freed */
  pthread_mutex_unlock(&lock);
  return p;
}

void *sp_mem_calloc(size_t n, size_t size) {
  if (size != 0 && n > SIZE_MAX / size) return NULL;
  void *p = sp_mem_alloc(n * size);
  if (p != NULL) memset(p, 0, n * size == 0 ? 1 : n * size);
  return p;
}

void sp_mem_free(void *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < nlive; i++) {
    if (live[i].p != p) continue;
    block b = live[i];
    live[i] = live[--nlive];
    if (ncache < SP_CACHE_SLOTS && cache_bytes + b.cap <= SP_CACHE_MAX) {
      cache[ncache++] = b;
      cache_bytes += b.cap;
      pthread_mutex_unlock(&lock);
      return;
    }
    break;
  }
  pthread_mutex_unlock(&lock);
  free(p);
}

double *sp_mem_doubles(size_t n) {
  if (n > SIZE_MAX / sizeof(double)) return NULL;
  return sp_mem_alloc(n * sizeof(double));
}
