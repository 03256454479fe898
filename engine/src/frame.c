/*
** frame.c: construction, column management and row selection of sp_frame.
*/
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/frame.h"
#include "spillover/mem.h"
#include "spillover/panel.h"

static char *dup_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}

static void column_clear(sp_column *c) {
  free(c->name);
  free(c->label);
  sp_mem_free(c->num);
  sp_mem_free(c->code);
  if (c->levels != NULL) {
    for (size_t i = 0; i < c->nlevels; i++) free(c->levels[i]);
    free(c->levels);
  }
  memset(c, 0, sizeof *c);
}

sp_frame *sp_frame_new(size_t nrow, sp_error *err) {
  sp_frame *f = calloc(1, sizeof *f);
  if (f == NULL) {
    sp_error_set(err, SP_ENOMEM, "out of memory creating a frame");
    return NULL;
  }
  f->nrow = nrow;
  return f;
}

void sp_frame_free(sp_frame *f) {
  if (f == NULL) return;
  for (size_t j = 0; j < f->ncol; j++) column_clear(&f->cols[j]);
  free(f->cols);
  sp_panel_free(f->panel);
  free(f);
}

long sp_frame_find(const sp_frame *f, const char *name) {
  for (size_t j = 0; j < f->ncol; j++)
    if (strcmp(f->cols[j].name, name) == 0) return (long)j;
  return -1;
}

sp_column *sp_frame_column(const sp_frame *f, const char *name) {
  long j = sp_frame_find(f, name);
  return j < 0 ? NULL : &f->cols[j];
}

/* Optimal-string-alignment distance over bytes (a swap of two adjacent
   letters counts as one edit, so "gps" is close to "gsp"), bounded to short
   names. */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return (size_t)-1;
  size_t d[65][65];
  for (size_t i = 0; i <= la; i++) d[i][0] = i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      size_t best = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[la][lb];
}

/* A candidate equal to name but for case (the typical 'west' for 'West')
   wins over any other, whatever the length. */
static int same_but_case(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
  return *a == *b;
}

/* The closest of n names; the j-th is at base + j * stride, so an array of
   strings and the name fields of an array of columns are read alike. */
static long closest_strided(const char *name, const char *const *base, size_t stride, size_t n) {
  long best = -1;
  size_t bestd = (size_t)-1;
  size_t limit = strlen(name) / 3 + 1;  /* about a third of the name may be wrong */
  for (size_t j = 0; j < n; j++) {
    const char *c = *(const char *const *)((const char *)base + j * stride);
    size_t d = same_but_case(name, c) ? 0 : edit_distance(name, c);
    if (d < bestd) { bestd = d; best = (long)j; }
  }
  return bestd <= limit ? best : -1;
}

long sp_closest(const char *name, const char *const *candidates, size_t n) {
  return closest_strided(name, candidates, sizeof *candidates, n);
}

long sp_frame_closest(const sp_frame *f, const char *name) {
  if (f->ncol == 0) return -1;
  return closest_strided(name, (const char *const *)&f->cols[0].name, sizeof *f->cols, f->ncol);
}

typedef struct {
  const char *s;
  size_t idx;
} lev_idx;

static int cmp_lev_idx(const void *a, const void *b) {
  return strcmp(((const lev_idx *)a)->s, ((const lev_idx *)b)->s);
}

int32_t *sp_column_level_ranks(const sp_column *c) {
  size_t m = c->nlevels;
  int32_t *rank = malloc((m ? m : 1) * sizeof *rank);
  lev_idx *li = malloc((m ? m : 1) * sizeof *li);
  if (rank == NULL || li == NULL) { free(rank); free(li); return NULL; }
  for (size_t l = 0; l < m; l++) { li[l].s = c->levels[l]; li[l].idx = l; }
  qsort(li, m, sizeof *li, cmp_lev_idx);
  int32_t r = -1;
  for (size_t l = 0; l < m; l++) {
    if (l == 0 || strcmp(li[l].s, li[l - 1].s) != 0) r++;
    rank[li[l].idx] = r;
  }
  free(li);
  return rank;
}

/* Find a slot for a column called name: the existing one (cleared) or a new one. */
static sp_column *slot_for(sp_frame *f, const char *name, sp_error *err) {
  long j = sp_frame_find(f, name);
  char *nm = dup_string(name);
  if (nm == NULL) { sp_error_set(err, SP_ENOMEM, "out of memory adding column '%s'", name); return NULL; }
  f->version++;
  if (j >= 0) {
    char *label = f->cols[j].label;
    f->cols[j].label = NULL;  /* a replaced column keeps its label */
    column_clear(&f->cols[j]);
    f->cols[j].name = nm;
    f->cols[j].label = label;
    f->cols[j].serial = f->version;
    return &f->cols[j];
  }
  if (f->ncol == f->capcol) {
    size_t cap = f->capcol ? 2 * f->capcol : 8;
    sp_column *c = realloc(f->cols, cap * sizeof *c);
    if (c == NULL) { free(nm); sp_error_set(err, SP_ENOMEM, "out of memory adding column '%s'", name); return NULL; }
    f->cols = c;
    f->capcol = cap;
  }
  sp_column *c = &f->cols[f->ncol++];
  memset(c, 0, sizeof *c);
  c->name = nm;
  c->serial = f->version;
  return c;
}

int sp_frame_add_numeric(sp_frame *f, const char *name, double *values, sp_error *err) {
  sp_column *c = slot_for(f, name, err);
  if (c == NULL) { sp_mem_free(values); return err ? err->code : SP_ENOMEM; }
  c->type = SP_NUMERIC;
  c->num = values;
  return SP_OK;
}

int sp_frame_add_categorical(sp_frame *f, const char *name, int32_t *codes,
                             char **levels, size_t nlevels, sp_error *err) {
  sp_column *c = slot_for(f, name, err);
  if (c == NULL) {
    sp_mem_free(codes);
    if (levels) { for (size_t i = 0; i < nlevels; i++) free(levels[i]); free(levels); }
    return err ? err->code : SP_ENOMEM;
  }
  c->type = SP_CATEGORICAL;
  c->code = codes;
  c->levels = levels;
  c->nlevels = nlevels;
  return SP_OK;
}

int sp_frame_drop(sp_frame *f, const char *name, sp_error *err) {
  long j = sp_frame_find(f, name);
  if (j < 0) {
    sp_error_set(err, SP_ENOTFOUND, "no column '%s' to drop", name);
    sp_error_var(err, name);
    return SP_ENOTFOUND;
  }
  f->version++;
  column_clear(&f->cols[j]);
  memmove(&f->cols[j], &f->cols[j + 1], (f->ncol - (size_t)j - 1) * sizeof f->cols[0]);
  f->ncol--;
  return SP_OK;
}

int sp_column_set_label(sp_column *c, const char *label, sp_error *err) {
  char *l = NULL;
  if (label != NULL && (l = dup_string(label)) == NULL)
    return sp_error_set(err, SP_ENOMEM, "out of memory setting a label");
  free(c->label);
  c->label = l;
  return SP_OK;
}

int sp_frame_add_rows(sp_frame *dst, const char *name, const sp_column *src, const size_t *rows, size_t n,
                      sp_error *err) {
  if (src->type == SP_NUMERIC) {
    double *v = sp_mem_doubles(n);
    if (v == NULL) return sp_error_set(err, SP_ENOMEM, "out of memory copying column '%s'", src->name);
    if (rows == NULL) memcpy(v, src->num, n * sizeof *v);
    else for (size_t i = 0; i < n; i++) v[i] = rows[i] == SP_NO_ROW ? NAN : src->num[rows[i]];
    if (sp_frame_add_numeric(dst, name, v, err) != SP_OK) return err ? err->code : SP_ENOMEM;
  } else {
    int32_t *k = sp_mem_alloc(n * sizeof *k);
    char **lv = calloc(src->nlevels ? src->nlevels : 1, sizeof *lv);
    int ok = (k != NULL && lv != NULL);
    for (size_t i = 0; ok && i < src->nlevels; i++) ok = (lv[i] = dup_string(src->levels[i])) != NULL;
    if (!ok) {
      sp_mem_free(k);
      if (lv) { for (size_t i = 0; i < src->nlevels; i++) free(lv[i]); free(lv); }
      return sp_error_set(err, SP_ENOMEM, "out of memory copying column '%s'", src->name);
    }
    if (rows == NULL) memcpy(k, src->code, n * sizeof *k);
    else for (size_t i = 0; i < n; i++) k[i] = rows[i] == SP_NO_ROW ? -1 : src->code[rows[i]];
    if (sp_frame_add_categorical(dst, name, k, lv, src->nlevels, err) != SP_OK)
      return err ? err->code : SP_ENOMEM;
  }
  /* by name: a replaced column keeps its slot, which need not be the last */
  if (src->label != NULL) return sp_column_set_label(sp_frame_column(dst, name), src->label, err);
  return SP_OK;
}

int sp_frame_take(const sp_frame *f, const size_t *rows, size_t n,
                  const char *const *names, size_t nnames, sp_frame **out, sp_error *err) {
  *out = NULL;
  for (size_t i = 0; rows != NULL && i < n; i++)
    if (rows[i] >= f->nrow)
      return sp_error_set(err, SP_EVALUE, "row %zu is out of range (the frame has %zu rows)",
                          rows[i] + 1, f->nrow);
  sp_frame *g = sp_frame_new(n, err);
  if (g == NULL) return SP_ENOMEM;
  size_t m = names ? nnames : f->ncol;
  for (size_t j = 0; j < m; j++) {
    const sp_column *c = names ? sp_frame_column(f, names[j]) : &f->cols[j];
    int st;
    if (c == NULL) {
      st = sp_error_set(err, SP_ENOTFOUND, "unknown column '%s'", names[j]);
      sp_error_var(err, names[j]);
    } else {
      st = sp_frame_add_rows(g, c->name, c, rows, n, err);
    }
    if (st != SP_OK) { sp_frame_free(g); return st; }
  }
  *out = g;
  return SP_OK;
}

int sp_frame_copy(const sp_frame *f, sp_frame **out, sp_error *err) {
  return sp_frame_take(f, NULL, f->nrow, NULL, 0, out, err);
}

const char *sp_column_level(const sp_column *c, size_t row) {
  if (c->type != SP_CATEGORICAL || c->code[row] < 0) return NULL;
  return c->levels[c->code[row]];
}

int sp_column_missing(const sp_column *c, size_t row) {
  return c->type == SP_NUMERIC ? isnan(c->num[row]) : c->code[row] < 0;
}

void sp_frame_set_panel(sp_frame *f, struct sp_panel *p) {
  f->version++;
  sp_panel_free(f->panel);
  f->panel = p;
}
