/*
** test_mem.c: large blocks populated by a helper thread (mem.c).
**
** A block of 1 MB or more comes back at once while a helper populates it:
** the caller's writes race the helper page by page and must all survive, a
** block freed while its helper runs is joined before it is cached or
** unmapped, and a cached block comes back with its contents (the cache does
** not clear it).  Blocks start on a huge-page boundary (the mapping's ends
** cut off must be the slack, not the block), and are backed by huge pages
** when asked for and the kernel gives them, by 4 KiB pages when not and
** for a block to be written as a stream (read back from /proc/self/smaps).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/mem.h"

static int npass, nfail;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) npass++; else nfail++;
}

/* Write a pattern into every page from both ends, as a fit's fill does while
   the helper is still populating, and read it back. */
static int write_and_check(uint64_t *p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n / 2; i++) {
    p[i] = seed ^ i;
    p[n - 1 - i] = seed ^ (n - 1 - i);
  }
  if (n % 2) p[n / 2] = seed ^ (n / 2);
  for (size_t i = 0; i < n; i++)
    if (p[i] != (seed ^ i)) return 0;
  return 1;
}

/* The kB of huge pages backing the mapping that holds p (smaps), or -1 when
   it cannot be read. */
static long huge_kb(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return -1;
  char line[512];
  int in = 0;
  long kb = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {  /* a mapping's first line; its fields follow */
      in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
      continue;
    }
    if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
  }
  fclose(f);
  return kb;
}

/* Whether the kernel gives huge pages to a mapping that asks for them. */
static int thp_on_request(void) {
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == NULL) return 0;
  char line[128] = "";
  int on = fgets(line, sizeof line, f) != NULL && strstr(line, "[never]") == NULL;
  fclose(f);
  return on;
}

int main(void) {
  enum { NB = 6 };
  size_t sizes[NB] = {(size_t)16 << 20, (size_t)40 << 20, (size_t)1 << 20, (size_t)64 << 20, (size_t)17 << 20,
                      (size_t)33 << 20};
  uint64_t *blk[NB];
#if defined(__linux__)
  /* Huge pages asked for, then not; each block written whole (the helper
     then done with it) before its pages are read back.  First, while the
     cache is empty: both are fresh mappings. */
  int was = sp_mem_huge_pages(1);
  uint64_t *h = sp_mem_alloc((size_t)18 << 20), *st = sp_mem_alloc_stream((size_t)26 << 20);
  sp_mem_huge_pages(0);
  uint64_t *s4 = sp_mem_alloc((size_t)22 << 20);
  int wrote = h != NULL && s4 != NULL && st != NULL && write_and_check(h, ((size_t)18 << 20) / 8, 7) &&
              write_and_check(s4, ((size_t)22 << 20) / 8, 8) && write_and_check(st, ((size_t)26 << 20) / 8, 9);
  check(wrote && (uintptr_t)h % ((size_t)2 << 20) == 0 && (uintptr_t)s4 % ((size_t)2 << 20) == 0,
        "blocks start on a 2 MiB boundary and hold all their bytes");
  long kh = huge_kb(h), k4 = huge_kb(s4), ks = huge_kb(st);
  printf("  huge pages: %ld kB under the block that asked, %ld kB under the one that did not, %ld kB under the "
         "stream (THP %s)\n", kh, k4, ks, thp_on_request() ? "on request" : "never");
  check(kh >= 0 && k4 == 0 && ks == 0 && (!thp_on_request() || kh >= 2048),
        "huge pages back a block when asked for (where the kernel gives them), never when not, nor a stream");
  sp_mem_free(h);
  sp_mem_free(s4);
  sp_mem_free(st);
  check(was == 1 && sp_mem_huge_pages(1) == 0, "the setting reads back: on at start, off as set");
#endif

  int ok = 1;
  for (int b = 0; b < NB; b++) {
    blk[b] = sp_mem_alloc(sizes[b]);
    ok &= blk[b] != NULL && write_and_check(blk[b], sizes[b] / 8, 0x9e3779b97f4a7c15ULL * (uint64_t)(b + 1));
  }
  check(ok, "writes racing the helper thread all land, in blocks of 1 to 64 MB");
  /* Freed at once, in another order than allocated: each helper is joined. */
  sp_mem_free(blk[3]);
  sp_mem_free(blk[0]);
  sp_mem_free(blk[5]);
  uint64_t *again = sp_mem_alloc((size_t)64 << 20);
  check(again != NULL && again[12345] == (0x9e3779b97f4a7c15ULL * 4 ^ 12345),
        "a freed block comes back from the cache as it was left");
  ok = 1;
  for (int b = 1; b < NB; b++)
    if (b != 3 && b != 5 && b != 0) ok &= blk[b][sizes[b] / 8 - 1] == ((0x9e3779b97f4a7c15ULL * (uint64_t)(b + 1)) ^ (sizes[b] / 8 - 1));
  check(ok, "blocks still live keep their contents");
  sp_mem_free(again);
  for (int b = 1; b < NB; b++)
    if (b != 3 && b != 5 && b != 0) sp_mem_free(blk[b]);
  /* Many blocks in a row, each freed before the next: no helper is left behind. */
  ok = 1;
  for (int r = 0; r < 40; r++) {
    uint64_t *p = sp_mem_alloc((size_t)(20 + r % 7) << 20);
    ok &= p != NULL && write_and_check(p, 1 << 16, (uint64_t)r);
    sp_mem_free(p);
  }
  check(ok, "forty allocations of 20-26 MB, each freed before the next");

  printf("%d passed, %d failed\n", npass, nfail);
  return nfail != 0;
}
