/*
** mem.c: large-buffer allocation, pre-faulted and reused (see mem.h).
**
** On the VMs we target (Firecracker guests with shadow page tables and free
** page reporting), the first access from user space to a 4 KiB page costs
** about 6 us even once the kernel has populated it: 1.5 s per GB, paid by
** whoever touches the page first.  A 2 MiB page costs one such trap for 512
** of them.  Populating huge pages costs what the host charges for backing
** them: 12-28 GB/s when the guest used that memory recently (a process that
** ran before), 0.25-1 GB/s when the host had taken it back, about what 4 KiB
** pages cost with their traps (bench/fe/README.md, "Huge pages, measured
** again").  Large blocks are therefore mapped 2 MiB-aligned and advised to
** use huge pages, and populated in one system call (MADV_POPULATE_WRITE,
** Linux 5.14+; older kernels fault them in on first touch).  Except blocks
** written slowly from start to end (sp_mem_alloc_stream: the CSV loader's
** columns, a few hundred MB/s from its parser): with 4 KiB pages the helper
** below keeps ahead of the writer, while huge pages the host must back
** stalled both, and loads took 1.31-1.50 s against 1.23-1.29 s.  An earlier VM
** of this kind once gave huge pages at 0.15 GB/s, far worse than its 4 KiB
** pages: a helper that measures a populate below SP_HUGE_MIN_RATE turns
** huge pages off for the rest of the process.
**
** When freed, blocks are kept in a small cache (at most SP_CACHE_MAX bytes)
** from which the next allocation of a similar size is served warm.  The
** cache is process-wide infrastructure like malloc's own arenas, guarded by
** a mutex.
**
** A fit's first blocks pay the populating and later fits do not (they come
** from the cache).  Every mapped block is therefore populated by a
** short-lived helper thread while the caller goes on (from 1 MB: a thread
** costs tens of microseconds, a megabyte's first accesses milliseconds
** here): the caller's own writes fault in whatever the helper has not
** reached yet (the kernel serialises the two per page, and populating never
** changes what a page holds), so the zeroing overlaps the caller's work on
** another core.  The helper is joined when the block is freed, or earlier
** by any allocation that finds it done.
**
** The helper then reads one byte a page from the block's end backwards, so
** that it meets the caller, who writes from the start, about halfway, and
** the first-access traps are shared between the two threads (an 80 MB pass
** beside it with 4 KiB pages: 0.08 s against 0.13-0.16 s).  Going forwards
** it would follow the caller and gain nothing.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "spillover/mem.h"

#define SP_BIG_MIN ((size_t)1 << 20)
#define SP_CACHE_MAX ((size_t)1 << 30)
#define SP_CACHE_SLOTS 16
#define SP_HUGE ((size_t)2 << 20)          /* a huge page: sizes are rounded up to it (so that similar
                                              requests share cached blocks), blocks aligned to it */
#define SP_HUGE_MIN_RATE 0.3e9             /* bytes a second: a slower huge-page populate turns them off */
#define SP_HUGE_TIMED ((size_t)8 << 20)    /* populates of this size or more are timed */

/* A helper thread populating a block, owned by the block's live entry. */
typedef struct {
  pthread_t th;
  atomic_int done;
  atomic_int stop;  /* set when the block is freed: the rest is not worth touching */
  void *p;
  size_t bytes;
  int huge;         /* mapped with huge pages: the populate is timed */
} filler;

typedef struct {
  void *p;
  size_t cap;
  filler *fill;  /* live blocks only: the helper still to join, or NULL */
} block;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static block *live;                   /* large blocks handed out (capacity by pointer) */
static size_t nlive, live_cap;
static block cache[SP_CACHE_SLOTS];   /* freed large blocks kept for reuse */
static size_t ncache, cache_bytes;
static atomic_int huge_off;           /* 4 KiB pages: asked for (sp_mem_huge_pages), or a huge-page populate was too slow */

#if defined(__linux__)
static void populate(void *p, size_t bytes) {
#if defined(MADV_POPULATE_WRITE)
  madvise(p, bytes, MADV_POPULATE_WRITE);  /* older kernels: faulted in on first touch instead */
#else
  (void)p;
  (void)bytes;
#endif
}

/* Read one byte a page of the block, last page first, until told to stop.
   The caller may be writing the same bytes: relaxed atomic loads, whose
   values are discarded (a page's contents are never changed). */
static void touch_back(filler *f) {
  enum { PAGE = 4096, CHECK = 64 };  /* pages between looks at stop */
  const char *p = f->p;
  for (size_t off = f->bytes, k = 0; off >= PAGE; off -= PAGE, k++) {
    if (k % CHECK == 0 && atomic_load_explicit(&f->stop, memory_order_relaxed)) return;
    (void)__atomic_load_n(p + off - PAGE, __ATOMIC_RELAXED);
  }
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *fill_main(void *arg) {
  filler *f = arg;
  double t0 = seconds();
  populate(f->p, f->bytes);
  if (f->huge && f->bytes >= SP_HUGE_TIMED && (double)f->bytes < SP_HUGE_MIN_RATE * (seconds() - t0))
    atomic_store(&huge_off, 1);
  touch_back(f);
  atomic_store(&f->done, 1);
  return NULL;
}

/* A mapping of bytes (a multiple of SP_HUGE) starting on a huge-page
   boundary: SP_HUGE more is mapped and the ends cut off. */
static void *map_aligned(size_t bytes) {
  if (bytes > SIZE_MAX - SP_HUGE) return NULL;
  char *q = mmap(NULL, bytes + SP_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (q == MAP_FAILED) return NULL;
  char *p = (char *)(((uintptr_t)q + SP_HUGE - 1) & ~(uintptr_t)(SP_HUGE - 1));
  size_t head = (size_t)(p - q);
  if (head > 0) munmap(q, head);
  munmap(p + bytes, SP_HUGE - head);  /* never empty: head < SP_HUGE */
  return p;
}

/* A fresh mapping of bytes; *fill gets the helper thread populating it
   (NULL: no thread could be started, and it is populated already).
   Advice only: a kernel without huge pages ignores it. */
static void *map_block(size_t bytes, int huge, filler **fill) {
  *fill = NULL;
  huge = huge && !atomic_load(&huge_off);
  void *p = map_aligned(bytes);
  if (p == NULL) return NULL;
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
  madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#else
  huge = 0;
#endif
  filler *f = malloc(sizeof *f);
  if (f != NULL) {
    f->p = p;
    f->bytes = bytes;
    f->huge = huge;
    atomic_init(&f->done, 0);
    atomic_init(&f->stop, 0);
    if (pthread_create(&f->th, NULL, fill_main, f) == 0) {
      *fill = f;
      return p;
    }
    free(f);
  }
  populate(p, bytes);  /* no thread: here */
  return p;
}
static void unmap_block(block b) { munmap(b.p, b.cap); }
#else
static void *map_block(size_t bytes, int huge, filler **fill) {
  (void)huge;
  *fill = NULL;
  return malloc(bytes);
}
static void unmap_block(block b) { free(b.p); }
#endif

static void join_fill(filler *f) {
  if (f == NULL) return;
  atomic_store(&f->stop, 1);
  pthread_join(f->th, NULL);
  free(f);
}

/* Join the helpers that are done (called with the lock held): a finished
   thread is joined at once, and the number left unjoined stays small. */
static void reap(void) {
  for (size_t i = 0; i < nlive; i++)
    if (live[i].fill != NULL && atomic_load(&live[i].fill->done)) {
      join_fill(live[i].fill);
      live[i].fill = NULL;
    }
}

static void *cache_take(size_t bytes) {
  size_t best = SP_CACHE_SLOTS;
  for (size_t i = 0; i < ncache; i++)
    if (cache[i].cap >= bytes && cache[i].cap / 2 <= bytes && (best == SP_CACHE_SLOTS || cache[i].cap < cache[best].cap))
      best = i;
  if (best == SP_CACHE_SLOTS) return NULL;
  block b = cache[best];
  cache[best] = cache[--ncache];
  cache_bytes -= b.cap;
  b.fill = NULL;
  live[nlive++] = b;  /* room: the block was live before it was cached */
  return b.p;
}

/* Room for one more live block (called with the lock held). */
static int live_reserve(void) {
  if (nlive < live_cap) return 1;
  size_t cap = live_cap ? 2 * live_cap : 64;
  block *nl = realloc(live, cap * sizeof *nl);
  if (nl == NULL) return 0;
  live = nl;
  live_cap = cap;
  return 1;
}

int sp_mem_huge_pages(int on) { return !atomic_exchange(&huge_off, !on); }

/* A block from the cache, or a fresh one (on huge pages when asked for and
   not turned off). */
static void *alloc_block(size_t bytes, int huge) {
  if (bytes == 0) bytes = 1;
  if (bytes < SP_BIG_MIN) return malloc(bytes);
  size_t rounded = (bytes + SP_HUGE - 1) & ~(SP_HUGE - 1);
  if (rounded < bytes) return NULL;
  pthread_mutex_lock(&lock);
  reap();
  void *p = live_reserve() ? cache_take(rounded) : NULL;
  pthread_mutex_unlock(&lock);
  if (p != NULL) return p;
  filler *fill;
  if ((p = map_block(rounded, huge, &fill)) == NULL) return NULL;
  pthread_mutex_lock(&lock);
  int ok = live_reserve();
  if (ok) live[nlive++] = (block){p, rounded, fill};
  pthread_mutex_unlock(&lock);
  if (!ok) {
    join_fill(fill);
    unmap_block((block){p, rounded, NULL});
    return NULL;
  }
  return p;
}

void *sp_mem_alloc(size_t bytes) { return alloc_block(bytes, 1); }

void *sp_mem_alloc_stream(size_t bytes) { return alloc_block(bytes, 0); }

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
    /* The helper must be done with the pages before they are cached or
       unmapped; it never takes the lock, so joining under it is safe. */
    join_fill(b.fill);
    b.fill = NULL;
    int kept = ncache < SP_CACHE_SLOTS && cache_bytes + b.cap <= SP_CACHE_MAX;
    if (kept) {
      cache[ncache++] = b;
      cache_bytes += b.cap;
    }
    pthread_mutex_unlock(&lock);
    if (!kept) unmap_block(b);
    return;
  }
  pthread_mutex_unlock(&lock);
  free(p);  /* a small block: malloc's */
}

double *sp_mem_doubles(size_t n) {
  if (n > SIZE_MAX / sizeof(double)) return NULL;
  return sp_mem_alloc(n * sizeof(double));
}
