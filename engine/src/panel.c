/*
** panel.c: building the panel index and gap-aware shifts.
**
** Rows are ordered by (entity, time) with a stable merge sort over numeric
** keys: an entity or time key is the value itself for numeric columns and the
** rank of the level string for categorical ones, so codes follow the sorted
** order of the values in both cases.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/mem.h"
#include "spillover/panel.h"

void sp_panel_free(sp_panel *p) {
  if (p == NULL) return;
  free(p->entity_name);
  free(p->time_name);
  sp_mem_free(p->entity);
  sp_mem_free(p->period);
  sp_mem_free(p->step);
  sp_mem_free(p->order);
  free(p->start);
  free(p);
}

static char *dup_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}

/* ---- sorting ------------------------------------------------------------- */

typedef struct {
  const double *k1, *k2;  /* primary and secondary keys by row */
} sort_keys;

static int key_less(const sort_keys *s, size_t a, size_t b) {
  if (s->k1[a] != s->k1[b]) return s->k1[a] < s->k1[b];
  return s->k2 != NULL && s->k2[a] < s->k2[b];
}

/* Stable bottom-up merge sort of idx[0..n) by the keys; tmp has n slots. */
static void merge_sort(size_t *idx, size_t *tmp, size_t n, const sort_keys *s) {
  size_t *src = idx, *dst = tmp;
  for (size_t width = 1; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = lo + width < n ? lo + width : n;
      size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
      size_t i = lo, j = mid, o = lo;
      while (i < mid && j < hi) dst[o++] = key_less(s, src[j], src[i]) ? src[j++] : src[i++];
      while (i < mid) dst[o++] = src[i++];
      while (j < hi) dst[o++] = src[j++];
    }
    size_t *t = src; src = dst; dst = t;
  }
  if (src != idx) memcpy(idx, src, n * sizeof *idx);
}

/* Numeric sort keys for a column: values, or level ranks for categoricals.
   A missing value is an error naming the row. */
static int column_keys(const sp_column *c, size_t n, double *key, const char *role, sp_error *err) {
  if (c->type == SP_NUMERIC) {
    for (size_t r = 0; r < n; r++) {
      if (isnan(c->num[r])) {
        sp_error_set(err, SP_EMISSING, "panel %s '%s' is missing in row %zu", role, c->name, r + 1);
        sp_error_var(err, c->name);
        return SP_EMISSING;
      }
      if (isinf(c->num[r])) {  /* it would sort, but is no period or unit anyone means */
        sp_error_var(err, c->name);
        return sp_error_set(err, SP_EVALUE, "panel %s '%s' is infinite in row %zu; expected a finite value",
                            role, c->name, r + 1);
      }
      key[r] = c->num[r];
    }
    return SP_OK;
  }
  int32_t *rank = sp_column_level_ranks(c);
  if (rank == NULL) return sp_error_set(err, SP_ENOMEM, "out of memory indexing the panel");
  int st = SP_OK;
  for (size_t r = 0; r < n; r++) {
    if (c->code[r] < 0) {
      st = sp_error_set(err, SP_EMISSING, "panel %s '%s' is missing in row %zu", role, c->name, r + 1);
      sp_error_var(err, c->name);
      break;
    }
    key[r] = (double)rank[c->code[r]];
  }
  free(rank);
  return st;
}

static void format_cell(const sp_column *c, size_t row, char *buf, size_t size) {
  if (c->type == SP_CATEGORICAL) snprintf(buf, size, "%s", c->levels[c->code[row]]);
  else snprintf(buf, size, "%.15g", c->num[row]);
}

static const sp_column *find_index_column(const sp_frame *f, const char *name, const char *role,
                                          sp_error *err) {
  const sp_column *c = sp_frame_column(f, name);
  if (c == NULL) {
    long j = sp_frame_closest(f, name);
    if (j >= 0)
      sp_error_set(err, SP_ENOTFOUND, "panel %s: unknown column '%s' (did you mean '%s'?)",
                   role, name, f->cols[j].name);
    else
      sp_error_set(err, SP_ENOTFOUND, "panel %s: unknown column '%s'", role, name);
    sp_error_var(err, name);
  }
  return c;
}

/* ---- building ---------------------------------------------------------------- */

int sp_panel_build(const sp_frame *f, const char *entity, const char *time,
                   sp_panel **out, sp_error *err) {
  *out = NULL;
  const sp_column *ce = find_index_column(f, entity, "entity", err);
  if (ce == NULL) return SP_ENOTFOUND;
  const sp_column *ct = find_index_column(f, time, "time", err);
  if (ct == NULL) return SP_ENOTFOUND;
  if (ce == ct) return sp_error_set(err, SP_EVALUE, "panel entity and time are the same column '%s'", entity);

  size_t n = f->nrow;
  int st = SP_OK;
  sp_panel *p = calloc(1, sizeof *p);
  double *ekey = sp_mem_doubles(n), *tkey = sp_mem_doubles(n), *utimes = sp_mem_doubles(n);
  size_t *tmp = sp_mem_alloc(n * sizeof *tmp);
  if (p == NULL || ekey == NULL || tkey == NULL || utimes == NULL || tmp == NULL) goto nomem;
  p->n = n;
  p->entity_name = dup_string(entity);
  p->time_name = dup_string(time);
  p->entity = sp_mem_alloc(n * sizeof *p->entity);
  p->period = sp_mem_alloc(n * sizeof *p->period);
  p->step = sp_mem_alloc(n * sizeof *p->step);
  p->order = sp_mem_alloc(n * sizeof *p->order);
  if (!p->entity_name || !p->time_name || !p->entity || !p->period || !p->step || !p->order) goto nomem;

  if ((st = column_keys(ce, n, ekey, "entity", err)) != SP_OK) goto fail;
  if ((st = column_keys(ct, n, tkey, "time", err)) != SP_OK) goto fail;

  /* Distinct periods: sort the time keys. */
  for (size_t r = 0; r < n; r++) tmp[r] = r;
  sort_keys tk = {tkey, NULL};
  merge_sort(tmp, p->order, n, &tk);
  size_t T = 0;
  for (size_t i = 0; i < n; i++)
    if (T == 0 || tkey[tmp[i]] != utimes[T - 1]) utimes[T++] = tkey[tmp[i]];
  p->T = T;

  /* Rows by (entity, time). */
  for (size_t r = 0; r < n; r++) p->order[r] = r;
  sort_keys et = {ekey, tkey};
  merge_sort(p->order, tmp, n, &et);

  int integer_time = ct->type == SP_NUMERIC;
  for (size_t r = 0; integer_time && r < n; r++)
    integer_time = fabs(tkey[r]) < 9.0e15 && tkey[r] == floor(tkey[r]);

  size_t N = 0;
  for (size_t i = 0; i < n; i++) {
    size_t r = p->order[i];
    if (i > 0) {
      size_t q = p->order[i - 1];
      if (ekey[r] != ekey[q]) N++;
      else if (tkey[r] == tkey[q]) {
        char ev[128], tv[64];
        format_cell(ce, r, ev, sizeof ev);
        format_cell(ct, r, tv, sizeof tv);
        st = sp_error_set(err, SP_EDUP, "duplicate panel cell (%s = %s, %s = %s) in rows %zu and %zu",
                          entity, ev, time, tv, (q < r ? q : r) + 1, (q < r ? r : q) + 1);
        goto fail;
      }
    }
    p->entity[r] = (int32_t)N;
    size_t lo = 0, hi = T;  /* binary search of the period */
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (utimes[mid] <= tkey[r]) lo = mid; else hi = mid;
    }
    p->period[r] = (int32_t)lo;
    p->step[r] = integer_time ? (int64_t)tkey[r] : (int64_t)lo;
  }
  p->N = n ? N + 1 : 0;

  p->start = malloc((p->N + 1) * sizeof *p->start);
  if (p->start == NULL) goto nomem;
  p->Tmin = n ? (size_t)-1 : 0;
  p->Tmax = 0;
  p->ngaps = 0;
  size_t e = 0;
  p->start[0] = 0;
  for (size_t i = 1; i <= n; i++) {
    if (i == n || p->entity[p->order[i]] != (int32_t)e) {
      size_t s = p->start[e], cnt = i - s;
      if (cnt < p->Tmin) p->Tmin = cnt;
      if (cnt > p->Tmax) p->Tmax = cnt;
      int64_t span = p->step[p->order[i - 1]] - p->step[p->order[s]] + 1;
      p->ngaps += (size_t)span - cnt;
      p->start[++e] = i;
    }
  }
  p->balanced = (p->N * p->T == n);
  sp_mem_free(ekey); sp_mem_free(tkey); sp_mem_free(utimes); sp_mem_free(tmp);
  *out = p;
  return SP_OK;

nomem:
  st = sp_error_set(err, SP_ENOMEM, "out of memory indexing the panel");
fail:
  sp_mem_free(ekey); sp_mem_free(tkey); sp_mem_free(utimes); sp_mem_free(tmp);
  sp_panel_free(p);
  return st;
}

int sp_panel_shift(const sp_panel *p, const double *x, long k, double *out, sp_error *err) {
  if (x == out) return sp_error_set(err, SP_EVALUE, "panel shift: output must not alias the input");
  /* Steps are below 2^53 in size, so a shift beyond 2^62 periods never lands
     on an observed one; clamping k keeps step - k from overflowing. */
  const int64_t kmax = (int64_t)1 << 62;
  const int64_t shift = k > kmax ? kmax : (k < -kmax ? -kmax : (int64_t)k);
  for (size_t e = 0; e < p->N; e++) {
    size_t lo = p->start[e], hi = p->start[e + 1], j = lo;
    for (size_t i = lo; i < hi; i++) {
      int64_t target = p->step[p->order[i]] - shift;
      while (j < hi && p->step[p->order[j]] < target) j++;
      size_t r = p->order[i];
      out[r] = (j < hi && p->step[p->order[j]] == target) ? x[p->order[j]] : NAN;
    }
  }
  return SP_OK;
}
