/*
** strdict.c: the string dictionary of the readers (see strdict.h).
*/
#include <stdlib.h>
#include <string.h>

#include "spillover/strdict.h"

static uint32_t hash_bytes(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

void sp_strdict_free(sp_strdict *d) {
  if (d->lv != NULL)
    for (size_t i = 0; i < d->n; i++) free(d->lv[i]);
  free(d->lv);
  free(d->len);
  free(d->hash);
  free(d->tab);
  memset(d, 0, sizeof *d);
}

static int rehash(sp_strdict *d, size_t tsize) {
  int32_t *t = malloc(tsize * sizeof *t);
  if (t == NULL) return 0;
  memset(t, 0xff, tsize * sizeof *t);
  for (size_t k = 0; k < d->n; k++) {
    size_t i = d->hash[k] & (tsize - 1);
    while (t[i] >= 0) i = (i + 1) & (tsize - 1);
    t[i] = (int32_t)k;
  }
  free(d->tab);
  d->tab = t;
  d->tmask = tsize - 1;
  return 1;
}

int32_t sp_strdict_intern(sp_strdict *d, const char *s, size_t n) {
  uint32_t h = hash_bytes(s, n);
  if (d->tab == NULL && !rehash(d, 64)) return -1;
  size_t i = h & d->tmask;
  for (int32_t k; (k = d->tab[i]) >= 0; i = (i + 1) & d->tmask)
    if (d->hash[k] == h && d->len[k] == n && memcmp(d->lv[k], s, n) == 0) return k;
  if (d->n >= (size_t)INT32_MAX) return -2;
  if (d->n == d->cap) {
    size_t cap = d->cap ? 2 * d->cap : 16;
    char **lv = realloc(d->lv, cap * sizeof *lv);
    if (lv == NULL) return -1;
    d->lv = lv;
    size_t *len = realloc(d->len, cap * sizeof *len);
    if (len == NULL) return -1;
    d->len = len;
    uint32_t *hh = realloc(d->hash, cap * sizeof *hh);
    if (hh == NULL) return -1;
    d->hash = hh;
    d->cap = cap;
  }
  char *c = malloc(n + 1);
  if (c == NULL) return -1;
  memcpy(c, s, n);
  c[n] = '\0';
  int32_t k = (int32_t)d->n;
  d->lv[k] = c;
  d->len[k] = n;
  d->hash[k] = h;
  d->n++;
  d->tab[i] = k;
  if (2 * d->n > d->tmask + 1 && !rehash(d, 2 * (d->tmask + 1))) return -1;
  return k;
}
