/*
** team.h (internal): at most two threads running one function on two fixed
** chunks of work.  The chunks, not the threads, define the arithmetic: a
** caller that reduces per-chunk results in chunk order gets the same bits
** with one thread (both chunks in turn) as with two (one each), which is how
** the demeaning and the design build stay bit-identical at any thread count.
*/
#ifndef SPILLOVER_TEAM_H
#define SPILLOVER_TEAM_H

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#define SP_TEAM_CHUNKS 2

/* Below this many rows a second thread costs more than it saves: least
   squares, the covariance and the sums of squares start their team with
   one thread then (the same bits either way). */
#define SP_TEAM_MIN_ROWS 100000

typedef void (*sp_team_fn)(void *ctx, int chunk);

typedef struct sp_team {
  int active;               /* a second thread is running */
  int stop;
  pthread_t th;
  pthread_barrier_t bar;
  sp_team_fn fn;
  void *ctx;
} sp_team;

/* Start a helper thread when threads >= 2; on any failure the team runs
   single-threaded (same results, by construction). */
void sp_team_start(sp_team *t, int threads);
/* fn(ctx, c) for c = 0 .. SP_TEAM_CHUNKS - 1, returning when all are done. */
void sp_team_run(sp_team *t, sp_team_fn fn, void *ctx);
void sp_team_stop(sp_team *t);

/* Chunk c of [0, n): the halves [0, n/2) and [n/2, n). */
static inline void sp_team_range(size_t n, int c, size_t *r0, size_t *r1) {
  *r0 = c == 0 ? 0 : n / 2;
  *r1 = c == 0 ? n / 2 : n;
}

/* Doubles between two chunks' scratch: one cache line (also the alignment
   of per-chunk sums kept in a struct). */
#define SP_TEAM_PAD 8

/* One zeroed scratch buffer of per doubles for each chunk, a cache line
   apart, in one calloc (returned; free it; NULL when out of memory, and
   then buf[] is NULL too).  The threads store into their buffers after
   every block of rows, and a line holding the end of one chunk's and the
   start of the other's would move between the cores each time. */
static inline double *sp_team_bufs(size_t per, double *buf[SP_TEAM_CHUNKS]) {
  double *b = calloc(SP_TEAM_CHUNKS * (per + SP_TEAM_PAD), sizeof *b);
  for (int c = 0; c < SP_TEAM_CHUNKS; c++) buf[c] = b != NULL ? b + (size_t)c * (per + SP_TEAM_PAD) : NULL;
  return b;
}

#endif
