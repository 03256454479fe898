/*
** team.c: the two-thread team of team.h.  The helper is started once per
** parallel phase and parked on a barrier between runs, so a run costs two
** barrier waits, not a thread creation (the demeaning runs thousands).
*/
#define _GNU_SOURCE
#include <string.h>

#include "team.h"

static void *team_main(void *arg) {
  sp_team *t = arg;
  for (;;) {
    pthread_barrier_wait(&t->bar);
    if (t->stop) break;
    t->fn(t->ctx, 1);
    pthread_barrier_wait(&t->bar);
  }
  return NULL;
}

void sp_team_start(sp_team *t, int threads) {
  memset(t, 0, sizeof *t);
  if (threads < 2) return;
  if (pthread_barrier_init(&t->bar, NULL, 2) != 0) return;
  if (pthread_create(&t->th, NULL, team_main, t) != 0) {
    pthread_barrier_destroy(&t->bar);
    return;
  }
  t->active = 1;
}

void sp_team_run(sp_team *t, sp_team_fn fn, void *ctx) {
  if (!t->active) {
    for (int c = 0; c < SP_TEAM_CHUNKS; c++) fn(ctx, c);
    return;
  }
  t->fn = fn;
  t->ctx = ctx;
  pthread_barrier_wait(&t->bar);
  fn(ctx, 0);
  pthread_barrier_wait(&t->bar);
}

void sp_team_stop(sp_team *t) {
  if (!t->active) return;
  t->stop = 1;
  pthread_barrier_wait(&t->bar);
  pthread_join(t->th, NULL);
  pthread_barrier_destroy(&t->bar);
  t->active = 0;
}
