/*
** frame_ops.c: sorting, grouping, aggregation, joins, descriptive statistics
** and column transforms over sp_frame (see frame_ops.h).
**
** Every function allocates its scratch itself and frees it on every path; the
** frames it returns belong to the caller.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/frame_ops.h"
#include "spillover/mem.h"
#include "spillover/panel.h"
#include "spillover/radix.h"
#include "spillover/strdict.h"

#define NO_ROW SP_NO_ROW

static char *dup_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}

static int nomem(sp_error *err, const char *what) {
  return sp_error_set(err, SP_ENOMEM, "out of memory %s", what);
}

static int unknown_column(const sp_frame *f, const char *name, const char *ctx, sp_error *err) {
  long j = sp_frame_closest(f, name);
  if (j >= 0)
    sp_error_set(err, SP_ENOTFOUND, "%s: unknown column '%s' (did you mean '%s'?)", ctx, name,
                 f->cols[j].name);
  else
    sp_error_set(err, SP_ENOTFOUND, "%s: unknown column '%s'", ctx, name);
  sp_error_var(err, name);
  return SP_ENOTFOUND;
}

/* {=====================================================================
** Building columns
** ====================================================================== */

typedef struct {
  const char *s;
  size_t row;
} str_row;

static int cmp_str_row(const void *a, const void *b) {
  const str_row *x = a, *y = b;
  int c = strcmp(x->s, y->s);
  if (c != 0) return c;
  return (x->row > y->row) - (x->row < y->row);
}

int sp_frame_add_strings(sp_frame *f, const char *name, const char *const *values, sp_error *err) {
  size_t n = f->nrow, m = 0;
  str_row *sr = malloc((n ? n : 1) * sizeof *sr);
  int32_t *codes = sp_mem_alloc((n ? n : 1) * sizeof *codes);
  char **levels = NULL;
  size_t nlev = 0;
  if (sr == NULL || codes == NULL) goto oom;
  for (size_t i = 0; i < n; i++) {
    codes[i] = -1;
    if (values[i] != NULL) { sr[m].s = values[i]; sr[m].row = i; m++; }
  }
  qsort(sr, m, sizeof *sr, cmp_str_row);
  levels = calloc(m ? m : 1, sizeof *levels);
  if (levels == NULL) goto oom;
  for (size_t k = 0; k < m; k++) {
    if (k == 0 || strcmp(sr[k].s, sr[k - 1].s) != 0) {
      if ((levels[nlev] = dup_string(sr[k].s)) == NULL) goto oom;
      nlev++;
    }
    codes[sr[k].row] = (int32_t)(nlev - 1);
  }
  free(sr);
  /* sp_frame_add_categorical takes the arrays on every path */
  return sp_frame_add_categorical(f, name, codes, levels, nlev, err);
oom:
  free(sr);
  sp_mem_free(codes);
  if (levels) { for (size_t k = 0; k < nlev; k++) free(levels[k]); free(levels); }
  return nomem(err, "building a categorical column");
}

int sp_frame_rename(sp_frame *f, const char *from, const char *to, sp_error *err) {
  long j = sp_frame_find(f, from);
  if (j < 0) return unknown_column(f, from, "rename", err);
  if (strcmp(from, to) == 0) return SP_OK;
  if (to[0] == '\0') {
    sp_error_var(err, from);
    return sp_error_set(err, SP_EVALUE, "rename: the new name of column '%s' is empty", from);
  }
  if (sp_frame_find(f, to) >= 0) {
    sp_error_var(err, to);
    return sp_error_set(err, SP_EDUP, "rename: cannot rename '%s' to '%s': a column '%s' already exists",
                        from, to, to);
  }
  char *nm = dup_string(to);
  if (nm == NULL) return nomem(err, "renaming a column");
  sp_panel *p = f->panel;
  char *pe = NULL, *pt = NULL;
  if (p != NULL && strcmp(p->entity_name, from) == 0 && (pe = dup_string(to)) == NULL) {
    free(nm);
    return nomem(err, "renaming a column");
  }
  if (p != NULL && strcmp(p->time_name, from) == 0 && (pt = dup_string(to)) == NULL) {
    free(nm);
    free(pe);
    return nomem(err, "renaming a column");
  }
  if (pe) { free(p->entity_name); p->entity_name = pe; }
  if (pt) { free(p->time_name); p->time_name = pt; }
  free(f->cols[j].name);
  f->cols[j].name = nm;
  f->version++;
  return SP_OK;
}

/* }===================================================================== */

/* {=====================================================================
** Sorting and grouping
**
** No comparator: each key column is encoded as one unsigned integer per row
** whose ascending order is the sort order, and the rows are radix sorted on
** those integers (radix.h).  A categorical cell encodes as the rank of its
** level in strcmp order; a numeric column whose values are all whole numbers
** of at most 2^53 in magnitude as the integer itself, any other as its IEEE
** bits made order-preserving (-0 as +0, since they compare equal).  Values
** count from the smallest present (up from the minimum, or down from the
** maximum for a descending key), so a key takes only the bits its range
** needs (an id with 1e5 values takes 17), and a missing cell is one past the
** largest value, which puts it last in either direction.  The keys are
** packed, first key highest, into as few 64-bit words as hold them, and the
** words are sorted from the last to the first: each sort is stable, so the
** whole is the stable lexicographic order.
** ====================================================================== */

#define SIGN_BIT ((uint64_t)1 << 63)
#define NONE32 UINT32_MAX

typedef struct {
  const sp_column *c;
  int desc;
  int integral;    /* numeric: encoded as the integer value */
  uint32_t *map;   /* categorical: code -> rank of its level */
  uint64_t base;   /* encoding = raw - base, or base - raw when descending */
  uint64_t range;  /* largest encoding of a present value; a missing cell is range + 1 */
  unsigned bits;   /* bits of the largest encoding that occurs */
} key_code;

static uint64_t double_bits(double v) {
  uint64_t u;
  if (v == 0) v = 0.0;
  memcpy(&u, &v, sizeof u);
  return (u & SIGN_BIT) ? ~u : u | SIGN_BIT;
}

/* The order-preserving unsigned form of a present numeric value. */
static uint64_t numeric_raw(const key_code *k, double v) {
  return k->integral ? (uint64_t)(int64_t)v ^ SIGN_BIT : double_bits(v);
}

static uint64_t key_value(const key_code *k, size_t r) {
  uint64_t raw;
  if (k->c->type == SP_CATEGORICAL) {
    int32_t code = k->c->code[r];
    if (code < 0) return k->range + 1;
    raw = k->map[code];
  } else {
    double v = k->c->num[r];
    if (isnan(v)) return k->range + 1;
    raw = numeric_raw(k, v);
  }
  return k->desc ? k->base - raw : raw - k->base;
}

/* One pass over the column: its range and whether any cell is missing. */
static int key_code_init(key_code *k, const sp_column *c, int desc, size_t n, sp_error *err) {
  memset(k, 0, sizeof *k);
  k->c = c;
  k->desc = desc;
  int missing = 0;
  uint64_t lo = UINT64_MAX, hi = 0;
  if (c->type == SP_CATEGORICAL) {
    int32_t *rank = sp_column_level_ranks(c);
    if (rank == NULL) return nomem(err, "sorting");
    k->map = (uint32_t *)rank;  /* ranks are >= 0 */
    for (size_t i = 0; i < n; i++) {
      int32_t code = c->code[i];
      if (code < 0) { missing = 1; continue; }
      uint64_t v = k->map[code];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  } else {
    double dlo = INFINITY, dhi = -INFINITY;
    int integral = 1;
    for (size_t i = 0; i < n; i++) {
      double v = c->num[i];
      if (isnan(v)) { missing = 1; continue; }
      if (v < dlo) dlo = v;
      if (v > dhi) dhi = v;
      /* the bound first: converting a larger double to int64 is undefined */
      if (integral && !(fabs(v) <= 9007199254740992.0 && v == (double)(int64_t)v)) integral = 0;
    }
    k->integral = integral;
    if (dlo <= dhi) { lo = numeric_raw(k, dlo); hi = numeric_raw(k, dhi); }
  }
  if (lo > hi) lo = hi = 0;  /* every cell missing */
  k->base = desc ? hi : lo;
  k->range = hi - lo;
  k->bits = sp_radix_bits(missing ? k->range + 1 : k->range);
  return SP_OK;
}

static void free_keys(key_code *keys, size_t nkeys) {
  if (keys == NULL) return;
  for (size_t k = 0; k < nkeys; k++) free(keys[k].map);
  free(keys);
}

static int make_keys(const sp_frame *f, const sp_sort_key *spec, size_t nkeys, const char *ctx,
                     key_code **out, sp_error *err) {
  *out = NULL;
  if (f->nrow > (size_t)INT32_MAX)
    return sp_error_set(err, SP_EVALUE, "%s: too many rows (%zu; at most %d)", ctx, f->nrow, INT32_MAX);
  key_code *keys = calloc(nkeys ? nkeys : 1, sizeof *keys);
  if (keys == NULL) return nomem(err, "sorting");
  for (size_t k = 0; k < nkeys; k++) {
    const sp_column *c = sp_frame_column(f, spec[k].name);
    if (c == NULL) { free_keys(keys, nkeys); return unknown_column(f, spec[k].name, ctx, err); }
    int st = key_code_init(&keys[k], c, spec[k].desc, f->nrow, err);
    if (st != SP_OK) { free_keys(keys, nkeys); return st; }
  }
  *out = keys;
  return SP_OK;
}

/* rows[0..n) = the row numbers in the stable order of the keys.  Keys are
   packed into words from the last key back; a word of at most 32 bits
   carries its row in the low half of the element, so that sort moves 8 bytes
   per row instead of 12. */
static int order_rows(const key_code *keys, size_t nkeys, size_t n, uint32_t *rows, sp_error *err) {
  uint64_t *a = sp_mem_alloc((n ? n : 1) * sizeof *a);
  if (a == NULL) return nomem(err, "sorting");
  int st = SP_OK, first = 1;
  size_t hi = nkeys;
  while (hi > 0 && st == SP_OK) {
    size_t lo = hi;
    unsigned bits = 0;
    while (lo > 0 && bits + keys[lo - 1].bits <= 64) bits += keys[--lo].bits;
    int packed = bits <= 32;
    for (size_t j = 0; j < n; j++) {
      size_t r = first ? j : rows[j];
      uint64_t w = 0;
      for (size_t k = lo; k < hi; k++)
        w = keys[k].bits >= 64 ? key_value(&keys[k], r) : (w << keys[k].bits) | key_value(&keys[k], r);
      a[j] = packed ? (w << 32) | r : w;
      if (!packed) rows[j] = (uint32_t)r;
    }
    st = sp_radix_sort(a, packed ? NULL : rows, n, packed ? 32 : 0, bits, err);
    if (packed) for (size_t j = 0; j < n; j++) rows[j] = (uint32_t)a[j];
    first = 0;
    hi = lo;
  }
  if (first) for (size_t j = 0; j < n; j++) rows[j] = (uint32_t)j;  /* no keys */
  sp_mem_free(a);
  return st;
}

int sp_frame_order(const sp_frame *f, const sp_sort_key *spec, size_t nkeys, size_t *perm, sp_error *err) {
  key_code *keys;
  int st = make_keys(f, spec, nkeys, "sort", &keys, err);
  if (st != SP_OK) return st;
  size_t n = f->nrow;
  uint32_t *rows = sp_mem_alloc((n ? n : 1) * sizeof *rows);
  if (rows == NULL) st = nomem(err, "sorting");
  else st = order_rows(keys, nkeys, n, rows, err);
  for (size_t j = 0; st == SP_OK && j < n; j++) perm[j] = rows[j];
  sp_mem_free(rows);
  free_keys(keys, nkeys);
  return st;
}

int sp_frame_sort(const sp_frame *f, const sp_sort_key *keys, size_t nkeys, sp_frame **out, sp_error *err) {
  *out = NULL;
  size_t *perm = sp_mem_alloc((f->nrow ? f->nrow : 1) * sizeof *perm);
  if (perm == NULL) return nomem(err, "sorting");
  int st = sp_frame_order(f, keys, nkeys, perm, err);
  if (st == SP_OK) st = sp_frame_take(f, perm, f->nrow, NULL, 0, out, err);
  sp_mem_free(perm);
  return st;
}

/* Is any key of row r missing (encoded past its range)? */
static int row_has_missing(const key_code *keys, size_t nkeys, size_t r) {
  for (size_t k = 0; k < nkeys; k++)
    if (key_value(&keys[k], r) > keys[k].range) return 1;
  return 0;
}

/* Few possible key combinations (an id, a year, a region): one pass numbers
   each row's combination in a table indexed by it, ascending in key order. */
static int group_table(const key_code *keys, size_t nkeys, size_t n, size_t ncomb,
                       int32_t *codes, size_t *ngroups, size_t *first, sp_error *err) {
  uint32_t *tab = sp_mem_alloc(ncomb * sizeof *tab);
  if (tab == NULL) return nomem(err, "grouping");
  for (size_t u = 0; u < ncomb; u++) tab[u] = NONE32;
  for (size_t i = 0; i < n; i++) {
    uint64_t u = 0;
    size_t k;
    for (k = 0; k < nkeys; k++) {
      uint64_t v = key_value(&keys[k], i);
      if (v > keys[k].range) break;
      u = u * (keys[k].range + 1) + v;
    }
    if (k < nkeys) { codes[i] = -1; continue; }
    codes[i] = (int32_t)u;
    if (tab[u] == NONE32) tab[u] = (uint32_t)i;  /* stable: the smallest row */
  }
  size_t g = 0;
  for (size_t u = 0; u < ncomb; u++)
    if (tab[u] != NONE32) { first[g] = tab[u]; tab[u] = (uint32_t)g++; }
  for (size_t i = 0; i < n; i++)
    if (codes[i] >= 0) codes[i] = (int32_t)tab[codes[i]];
  *ngroups = g;
  sp_mem_free(tab);
  return SP_OK;
}

/* Many combinations: sort the rows, then a group starts where a key changes. */
static int group_sorted(const key_code *keys, size_t nkeys, size_t n,
                        int32_t *codes, size_t *ngroups, size_t *first, sp_error *err) {
  uint32_t *rows = sp_mem_alloc((n ? n : 1) * sizeof *rows);
  if (rows == NULL) return nomem(err, "grouping");
  int st = order_rows(keys, nkeys, n, rows, err);
  size_t g = 0, prev = 0;
  for (size_t j = 0; st == SP_OK && j < n; j++) {
    size_t r = rows[j];
    if (row_has_missing(keys, nkeys, r)) { codes[r] = -1; continue; }  /* missing rows sort last */
    int same = g > 0;
    for (size_t k = 0; same && k < nkeys; k++) same = key_value(&keys[k], r) == key_value(&keys[k], prev);
    if (!same) first[g++] = r;  /* stable: the smallest row */
    codes[r] = (int32_t)(g - 1);
    prev = r;
  }
  *ngroups = g;
  sp_mem_free(rows);
  return st;
}

int sp_frame_group(const sp_frame *f, const char *const *names, size_t nkeys,
                   int32_t *codes, size_t *ngroups, size_t *first, sp_error *err) {
  *ngroups = 0;
  size_t n = f->nrow;
  sp_sort_key *spec = calloc(nkeys ? nkeys : 1, sizeof *spec);
  if (spec == NULL) return nomem(err, "grouping");
  for (size_t k = 0; k < nkeys; k++) spec[k].name = names[k];
  key_code *keys;
  int st = make_keys(f, spec, nkeys, "group", &keys, err);
  free(spec);
  if (st != SP_OK) return st;
  /* the table costs about one pass over the rows when it has at most n + 2^16 entries */
  uint64_t ncomb = 1, limit = (uint64_t)n + 65536;
  for (size_t k = 0; k < nkeys && ncomb <= limit; k++)
    ncomb = keys[k].range >= limit ? limit + 1 : ncomb * (keys[k].range + 1);
  if (ncomb <= limit && ncomb <= (uint64_t)INT32_MAX)
    st = group_table(keys, nkeys, n, (size_t)ncomb, codes, ngroups, first, err);
  else
    st = group_sorted(keys, nkeys, n, codes, ngroups, first, err);
  free_keys(keys, nkeys);
  return st;
}

/* }===================================================================== */

/* {=====================================================================
** Aggregation and descriptive statistics
** ====================================================================== */

const char *sp_agg_name(sp_agg_fun fun) {
  static const char *const names[] = {"mean", "sum", "sd", "min", "max", "first"};
  return (unsigned)fun < SP_AGG_NFUN ? names[fun] : "?";
}

/* One statistic of x over each group; codes -1 are skipped, NaN skipped. */
static void group_stat(const double *x, size_t n, const int32_t *codes, size_t ng, sp_agg_fun fun,
                       double *res, size_t *cnt, double *mean) {
  for (size_t g = 0; g < ng; g++) { cnt[g] = 0; mean[g] = 0.0; }
  for (size_t i = 0; i < n; i++)
    if (codes[i] >= 0 && !isnan(x[i])) { cnt[codes[i]]++; mean[codes[i]] += x[i]; }
  switch (fun) {
    case SP_AGG_SUM:
      for (size_t g = 0; g < ng; g++) res[g] = mean[g];
      return;
    case SP_AGG_MEAN:
    case SP_AGG_SD:
      for (size_t g = 0; g < ng; g++) mean[g] = cnt[g] ? mean[g] / (double)cnt[g] : NAN;
      if (fun == SP_AGG_MEAN) { memcpy(res, mean, ng * sizeof *res); return; }
      for (size_t g = 0; g < ng; g++) res[g] = 0.0;
      for (size_t i = 0; i < n; i++)
        if (codes[i] >= 0 && !isnan(x[i])) { double d = x[i] - mean[codes[i]]; res[codes[i]] += d * d; }
      for (size_t g = 0; g < ng; g++) res[g] = cnt[g] > 1 ? sqrt(res[g] / (double)(cnt[g] - 1)) : NAN;
      return;
    case SP_AGG_MIN:
    case SP_AGG_MAX:
    case SP_AGG_FIRST:
      for (size_t g = 0; g < ng; g++) { res[g] = NAN; cnt[g] = 0; }
      for (size_t i = 0; i < n; i++) {
        if (codes[i] < 0 || isnan(x[i])) continue;
        size_t g = (size_t)codes[i];
        if (cnt[g]++ == 0) res[g] = x[i];
        else if (fun == SP_AGG_MIN && x[i] < res[g]) res[g] = x[i];
        else if (fun == SP_AGG_MAX && x[i] > res[g]) res[g] = x[i];
      }
      return;
    default:
      return;
  }
}

int sp_frame_aggregate(const sp_frame *f, const char *const *by, size_t nby,
                       const sp_agg_spec *specs, size_t nspecs, int count,
                       sp_frame **out, sp_error *err) {
  *out = NULL;
  size_t n = f->nrow, ng = 0;
  for (size_t s = 0; s < nspecs; s++) {
    const sp_column *c = sp_frame_column(f, specs[s].column);
    if (c == NULL) return unknown_column(f, specs[s].column, "aggregate", err);
    if ((unsigned)specs[s].fun >= SP_AGG_NFUN)
      return sp_error_set(err, SP_EVALUE, "aggregate: unknown function for column '%s'", specs[s].column);
    if (c->type == SP_CATEGORICAL && specs[s].fun != SP_AGG_FIRST) {
      sp_error_var(err, c->name);
      return sp_error_set(err, SP_EVALUE,
                          "aggregate: column '%s' is categorical; %s needs a numeric column (only first works on categories)",
                          c->name, sp_agg_name(specs[s].fun));
    }
  }
  int32_t *codes = sp_mem_alloc((n ? n : 1) * sizeof *codes);
  size_t *first = malloc((n ? n : 1) * sizeof *first);
  double *res = NULL, *mean = NULL;
  size_t *cnt = NULL, *rows = NULL;
  sp_frame *g = NULL;
  char name[512];
  int st;
  if (codes == NULL || first == NULL) { st = nomem(err, "aggregating"); goto done; }
  if ((st = sp_frame_group(f, by, nby, codes, &ng, first, err)) != SP_OK) goto done;
  res = malloc((ng ? ng : 1) * sizeof *res);
  mean = malloc((ng ? ng : 1) * sizeof *mean);
  cnt = malloc((ng ? ng : 1) * sizeof *cnt);
  rows = malloc((ng ? ng : 1) * sizeof *rows);
  if (res == NULL || mean == NULL || cnt == NULL || rows == NULL) { st = nomem(err, "aggregating"); goto done; }
  if ((g = sp_frame_new(ng, err)) == NULL) { st = SP_ENOMEM; goto done; }
  for (size_t k = 0; k < nby; k++)
    if ((st = sp_frame_add_rows(g, by[k], sp_frame_column(f, by[k]), first, ng, err)) != SP_OK) goto done;
  if (count) {
    if (sp_frame_find(g, "n") >= 0) {
      st = sp_error_set(err, SP_EDUP, "aggregate: the count column 'n' clashes with a by column of that name");
      goto done;
    }
    double *v = sp_mem_doubles(ng ? ng : 1);
    if (v == NULL) { st = nomem(err, "aggregating"); goto done; }
    for (size_t q = 0; q < ng; q++) v[q] = 0.0;
    for (size_t i = 0; i < n; i++) if (codes[i] >= 0) v[codes[i]] += 1.0;
    if ((st = sp_frame_add_numeric(g, "n", v, err)) != SP_OK) goto done;
  }
  for (size_t s = 0; s < nspecs; s++) {
    const sp_column *c = sp_frame_column(f, specs[s].column);
    if (specs[s].out != NULL) snprintf(name, sizeof name, "%s", specs[s].out);
    else snprintf(name, sizeof name, "%s_%s", c->name, sp_agg_name(specs[s].fun));
    if (sp_frame_find(g, name) >= 0) {
      sp_error_var(err, name);
      st = sp_error_set(err, SP_EDUP, "aggregate: result column '%s' is produced twice", name);
      goto done;
    }
    if (c->type == SP_CATEGORICAL) {  /* first non-missing level */
      for (size_t q = 0; q < ng; q++) rows[q] = NO_ROW;
      for (size_t i = 0; i < n; i++)
        if (codes[i] >= 0 && c->code[i] >= 0 && rows[codes[i]] == NO_ROW) rows[codes[i]] = i;
      if ((st = sp_frame_add_rows(g, name, c, rows, ng, err)) != SP_OK) goto done;
      continue;
    }
    group_stat(c->num, n, codes, ng, specs[s].fun, res, cnt, mean);
    double *v = sp_mem_doubles(ng ? ng : 1);
    if (v == NULL) { st = nomem(err, "aggregating"); goto done; }
    memcpy(v, res, ng * sizeof *v);
    if ((st = sp_frame_add_numeric(g, name, v, err)) != SP_OK) goto done;
  }
  *out = g;
  g = NULL;
  st = SP_OK;
done:
  sp_frame_free(g);
  sp_mem_free(codes); free(first); free(res); free(mean); free(cnt); free(rows);
  return st;
}

int sp_frame_describe(const sp_frame *f, const char *const *names, size_t nnames,
                      sp_frame **out, sp_error *err) {
  *out = NULL;
  size_t m = 0;
  const sp_column **cols = malloc((names ? nnames : f->ncol) * sizeof *cols + 1);
  if (cols == NULL) return nomem(err, "describing");
  if (names != NULL) {
    for (size_t k = 0; k < nnames; k++) {
      const sp_column *c = sp_frame_column(f, names[k]);
      if (c == NULL) { free(cols); return unknown_column(f, names[k], "describe", err); }
      if (c->type != SP_NUMERIC) {
        free(cols);
        sp_error_var(err, names[k]);
        return sp_error_set(err, SP_EVALUE, "describe: column '%s' is categorical; expected a numeric column",
                            names[k]);
      }
      cols[m++] = c;
    }
  } else {
    for (size_t j = 0; j < f->ncol; j++)
      if (f->cols[j].type == SP_NUMERIC) cols[m++] = &f->cols[j];
  }
  static const char *const stat[] = {"N", "mean", "sd", "min", "max", "missing"};
  double *v[6] = {0};
  const char **vn = malloc((m ? m : 1) * sizeof *vn);
  sp_frame *g = sp_frame_new(m, err);
  int st = SP_OK;
  for (int s = 0; s < 6; s++) if ((v[s] = sp_mem_doubles(m ? m : 1)) == NULL) st = SP_ENOMEM;
  if (g == NULL || vn == NULL || st != SP_OK) { st = nomem(err, "describing"); goto done; }
  for (size_t k = 0; k < m; k++) {
    const double *x = cols[k]->num;
    size_t n = f->nrow, cnt = 0;
    double sum = 0.0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
      if (isnan(x[i])) continue;
      cnt++;
      sum += x[i];
      if (x[i] < lo) lo = x[i];
      if (x[i] > hi) hi = x[i];
    }
    double mean = cnt ? sum / (double)cnt : NAN, ss = 0.0, corr = 0.0;
    for (size_t i = 0; cnt && i < n; i++) {
      if (isnan(x[i])) continue;
      double d = x[i] - mean;
      ss += d * d;
      corr += d;
    }
    /* corrected two-pass (Chan, Golub and LeVeque): corr absorbs the rounding error of mean */
    if (cnt) mean += corr / (double)cnt;
    double var = cnt > 1 ? (ss - corr * corr / (double)cnt) / (double)(cnt - 1) : NAN;
    vn[k] = cols[k]->name;
    v[0][k] = (double)cnt;
    v[1][k] = mean;
    v[2][k] = cnt > 1 ? sqrt(var < 0 ? 0 : var) : NAN;
    v[3][k] = cnt ? lo : NAN;
    v[4][k] = cnt ? hi : NAN;
    v[5][k] = (double)(n - cnt);
  }
  if ((st = sp_frame_add_strings(g, "variable", vn, err)) != SP_OK) goto done;
  for (int s = 0; s < 6; s++) {
    st = sp_frame_add_numeric(g, stat[s], v[s], err);
    v[s] = NULL;  /* taken by the frame on every path */
    if (st != SP_OK) goto done;
  }
  *out = g;
  g = NULL;
done:
  for (int s = 0; s < 6; s++) sp_mem_free(v[s]);
  sp_frame_free(g);
  free(vn);
  free(cols);
  return st;
}

/* }===================================================================== */

/* {=====================================================================
** Joins
**
** An index over one side's keys: each distinct key's rows are chained in row
** order, so matches come out in that side's row order without a sort.  When
** every key is an integer-valued numeric column or a categorical one and
** their combinations are few (an id, a year), a key's slot is its
** combination number, counted from the smallest value present: no hashing
** and no comparison.  Otherwise the index is a hash table: numeric keys hash
** by their bits (-0 as +0: they compare equal).  Categorical keys go by an id
** of their level string shared by both frames, so that frames with different
** dictionaries match by text.
** ====================================================================== */

typedef struct {
  const sp_column **c;  /* the key columns of this side */
  uint32_t **id;        /* categorical key k: code -> shared level id; NULL for numeric */
  size_t nk;
} side_keys;

typedef struct {
  uint32_t *slot;  /* the first row of each key, or NONE32 */
  uint32_t *next;  /* the next row with the same key, or NONE32 */
  size_t nslot;    /* hashed: a power of two; direct: the combinations + 1, the last always empty */
  int dup;         /* some key has more than one row */
  int direct;
  int64_t *lo;     /* direct: each key's smallest value (its level id for a categorical key) */
  uint64_t *card;  /* direct: each key's number of values from lo */
} key_index;

/* Compare key of row i of side a with row j of side b (columns ca, cb). */
static int cmp_key(const sp_column **ca, size_t i, const sp_column **cb, size_t j, size_t nk) {
  for (size_t k = 0; k < nk; k++) {
    int c;
    if (ca[k]->type == SP_NUMERIC) {
      double x = ca[k]->num[i], y = cb[k]->num[j];
      c = (x > y) - (x < y);
    } else {
      c = strcmp(ca[k]->levels[ca[k]->code[i]], cb[k]->levels[cb[k]->code[j]]);
    }
    if (c != 0) return c;
  }
  return 0;
}

static int key_missing(const side_keys *s, size_t r) {
  for (size_t k = 0; k < s->nk; k++)
    if (sp_column_missing(s->c[k], r)) return 1;
  return 0;
}

/* The value of key k of a row with no missing key, equal exactly when the keys are. */
static uint64_t key_canon(const side_keys *s, size_t k, size_t r) {
  const sp_column *c = s->c[k];
  if (c->type == SP_CATEGORICAL) return s->id[k][c->code[r]];
  double v = c->num[r];
  uint64_t u;
  if (v == 0) v = 0.0;
  memcpy(&u, &v, sizeof u);
  return u;
}

static uint64_t mix64(uint64_t h) {  /* MurmurHash3's finaliser: every input bit moves every output bit */
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  return h ^ (h >> 33);
}

static uint64_t key_hash(const side_keys *s, size_t r) {
  uint64_t h = 0;
  for (size_t k = 0; k < s->nk; k++) h = mix64(h ^ key_canon(s, k, r));
  return h;
}

static int same_key(const side_keys *a, size_t i, const side_keys *b, size_t j) {
  for (size_t k = 0; k < a->nk; k++)
    if (key_canon(a, k, i) != key_canon(b, k, j)) return 0;
  return 1;
}

static int integral_value(double v) {  /* the bound first: converting a larger double is undefined */
  return fabs(v) <= 9007199254740992.0 && v == (double)(int64_t)v;
}

/* The integer a present key cell stands for in a direct index. */
static int64_t key_integer(const side_keys *s, size_t k, size_t r) {
  const sp_column *c = s->c[k];
  return c->type == SP_CATEGORICAL ? (int64_t)s->id[k][c->code[r]] : (int64_t)c->num[r];
}

/* The slot of row i of side a's key in the index of side b.  Its first row,
   or NONE32 when no row of b has that key. */
static size_t find_slot(const key_index *ix, const side_keys *b, const side_keys *a, size_t i) {
  if (ix->direct) {
    uint64_t u = 0;
    for (size_t k = 0; k < a->nk; k++) {
      if (a->c[k]->type == SP_NUMERIC && !integral_value(a->c[k]->num[i])) return ix->nslot - 1;
      uint64_t off = (uint64_t)key_integer(a, k, i) - (uint64_t)ix->lo[k];
      if (off >= ix->card[k]) return ix->nslot - 1;
      u = u * ix->card[k] + off;
    }
    return (size_t)u;
  }
  size_t mask = ix->nslot - 1, p = (size_t)key_hash(a, i) & mask;
  while (ix->slot[p] != NONE32 && !same_key(b, ix->slot[p], a, i)) p = (p + 1) & mask;
  return p;
}

static void index_free(key_index *ix) {
  sp_mem_free(ix->slot);
  sp_mem_free(ix->next);
  free(ix->lo);
  free(ix->card);
}

/* Can side s be indexed directly?  Fills ix->lo, ix->card and ix->nslot if so. */
static int index_direct(key_index *ix, const side_keys *s, size_t n, sp_error *err) {
  ix->lo = malloc(s->nk * sizeof *ix->lo);
  ix->card = malloc(s->nk * sizeof *ix->card);
  if (ix->lo == NULL || ix->card == NULL) return nomem(err, "joining");
  uint64_t ncomb = 1, limit = (uint64_t)n + 65536;  /* a table about the size of the side */
  for (size_t k = 0; k < s->nk; k++) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    const sp_column *c = s->c[k];
    if (c->type == SP_CATEGORICAL) {
      for (size_t l = 0; l < c->nlevels; l++) {
        if ((int64_t)s->id[k][l] < lo) lo = s->id[k][l];
        if ((int64_t)s->id[k][l] > hi) hi = s->id[k][l];
      }
    } else {
      for (size_t r = 0; r < n; r++) {
        double v = c->num[r];
        if (isnan(v)) continue;
        if (!integral_value(v)) return SP_OK;
        if ((int64_t)v < lo) lo = (int64_t)v;
        if ((int64_t)v > hi) hi = (int64_t)v;
      }
    }
    if (lo > hi) lo = hi = 0;  /* no value: nothing will match */
    ix->lo[k] = lo;
    ix->card[k] = (uint64_t)hi - (uint64_t)lo + 1;
    if (ix->card[k] > limit || (ncomb *= ix->card[k]) > limit) return SP_OK;
  }
  ix->direct = 1;
  ix->nslot = (size_t)ncomb + 1;
  return SP_OK;
}

/* Index the n rows of side s; rows with a missing key are left out.  The rows
   go in from the last, each in front of its key's chain, so chains run in row
   order. */
static int index_build(key_index *ix, const side_keys *s, size_t n, sp_error *err) {
  int st = index_direct(ix, s, n, err);
  if (st != SP_OK) { index_free(ix); return st; }
  if (!ix->direct) {
    ix->nslot = 16;
    while (ix->nslot < 2 * n) ix->nslot *= 2;  /* load at most 1/2: short probes */
  }
  ix->slot = sp_mem_alloc(ix->nslot * sizeof *ix->slot);
  ix->next = sp_mem_alloc((n ? n : 1) * sizeof *ix->next);
  if (ix->slot == NULL || ix->next == NULL) { index_free(ix); return nomem(err, "joining"); }
  for (size_t p = 0; p < ix->nslot; p++) ix->slot[p] = NONE32;
  for (size_t r = n; r-- > 0;) {
    if (key_missing(s, r)) continue;
    size_t p = find_slot(ix, s, s, r);
    ix->next[r] = ix->slot[p];
    ix->dup |= ix->slot[p] != NONE32;
    ix->slot[p] = (uint32_t)r;
  }
  return SP_OK;
}

static void describe_key(const sp_column **c, size_t nk, size_t r, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t k = 0; k < nk && used < size; k++) {
    int w;
    if (c[k]->type == SP_NUMERIC)
      w = snprintf(buf + used, size - used, "%s%s = %.15g", k ? ", " : "", c[k]->name, c[k]->num[r]);
    else
      w = snprintf(buf + used, size - used, "%s%s = '%s'", k ? ", " : "", c[k]->name,
                   c[k]->levels[c[k]->code[r]]);
    if (w < 0) break;
    used += (size_t)w;
  }
}

/* A duplicated key is an error naming the smallest such key in key order and
   its first two rows, whatever order the index holds the keys in. */
static int check_unique(const key_index *ix, const side_keys *s, const char *side, const char *validate,
                        sp_error *err) {
  if (!ix->dup) return SP_OK;
  size_t best = SP_NO_ROW;
  for (size_t p = 0; p < ix->nslot; p++) {
    uint32_t r = ix->slot[p];
    if (r != NONE32 && ix->next[r] != NONE32 && (best == SP_NO_ROW || cmp_key(s->c, r, s->c, best, s->nk) < 0))
      best = r;
  }
  char key[400];
  describe_key(s->c, s->nk, best, key, sizeof key);
  return sp_error_set(err, SP_EDUP,
                      "join: key (%s) appears more than once in the %s frame (rows %zu and %zu); "
                      "validate = \"%s\" needs unique keys there",
                      key, side, best + 1, (size_t)ix->next[best] + 1, validate);
}

/* Give every level of the categorical keys of both sides an id shared by equal strings. */
static int level_ids(side_keys *x, side_keys *y, sp_error *err) {
  sp_strdict d;
  memset(&d, 0, sizeof d);
  int st = SP_OK;
  for (size_t k = 0; k < x->nk && st == SP_OK; k++) {
    if (x->c[k]->type != SP_CATEGORICAL) continue;
    side_keys *sides[2] = {y, x};
    for (int s = 0; s < 2 && st == SP_OK; s++) {
      const sp_column *c = sides[s]->c[k];
      uint32_t *id = malloc((c->nlevels ? c->nlevels : 1) * sizeof *id);
      sides[s]->id[k] = id;
      if (id == NULL) { st = nomem(err, "joining"); break; }
      for (size_t l = 0; l < c->nlevels; l++) {
        int32_t code = sp_strdict_intern(&d, c->levels[l], strlen(c->levels[l]));
        if (code < 0) { st = nomem(err, "joining"); break; }
        id[l] = (uint32_t)code;
      }
    }
  }
  sp_strdict_free(&d);
  return st;
}

int sp_frame_join(const sp_frame *x, const sp_frame *y, const sp_join_options *opt,
                  sp_frame **out, sp_error *err) {
  *out = NULL;
  size_t nk = opt->non, nx = x->nrow;
  const char *suffix = opt->suffix ? opt->suffix : "_y";
  if (nk == 0) return sp_error_set(err, SP_EVALUE, "join: no key columns given (on = ...)");
  if (nx > (size_t)INT32_MAX || y->nrow > (size_t)INT32_MAX)
    return sp_error_set(err, SP_EVALUE, "join: too many rows (%zu and %zu; at most %d)", nx, y->nrow, INT32_MAX);
  side_keys sx = {NULL, NULL, nk}, sy = {NULL, NULL, nk};
  key_index iy, ix;
  memset(&iy, 0, sizeof iy);
  memset(&ix, 0, sizeof ix);
  uint32_t *match = NULL;
  size_t *xi = NULL, *yj = NULL;
  sp_frame *g = NULL;
  int st = SP_OK;
  sx.c = malloc(nk * sizeof *sx.c);
  sy.c = malloc(nk * sizeof *sy.c);
  sx.id = calloc(nk, sizeof *sx.id);
  sy.id = calloc(nk, sizeof *sy.id);
  if (sx.c == NULL || sy.c == NULL || sx.id == NULL || sy.id == NULL) { st = nomem(err, "joining"); goto done; }
  for (size_t k = 0; k < nk; k++) {
    sx.c[k] = sp_frame_column(x, opt->on[k]);
    sy.c[k] = sp_frame_column(y, opt->on[k]);
    if (sx.c[k] == NULL) { st = unknown_column(x, opt->on[k], "join (left frame)", err); goto done; }
    if (sy.c[k] == NULL) { st = unknown_column(y, opt->on[k], "join (right frame)", err); goto done; }
    if (sx.c[k]->type != sy.c[k]->type) {
      sp_error_var(err, opt->on[k]);
      st = sp_error_set(err, SP_EVALUE, "join: key '%s' is %s in the left frame but %s in the right",
                        opt->on[k], sx.c[k]->type == SP_NUMERIC ? "numeric" : "categorical",
                        sy.c[k]->type == SP_NUMERIC ? "numeric" : "categorical");
      goto done;
    }
  }
  if ((st = level_ids(&sx, &sy, err)) != SP_OK) goto done;
  if ((st = index_build(&iy, &sy, y->nrow, err)) != SP_OK) goto done;
  const char *vname = opt->validate == SP_VALIDATE_1_1 ? "1:1" : "m:1";
  if (opt->validate != SP_VALIDATE_NONE && (st = check_unique(&iy, &sy, "right", vname, err)) != SP_OK) goto done;
  if (opt->validate == SP_VALIDATE_1_1) {
    if ((st = index_build(&ix, &sx, nx, err)) != SP_OK) goto done;
    if ((st = check_unique(&ix, &sx, "left", vname, err)) != SP_OK) goto done;
  }
  /* match[i]: the first row of y with x's key; then the result's size */
  match = sp_mem_alloc((nx ? nx : 1) * sizeof *match);
  if (match == NULL) { st = nomem(err, "joining"); goto done; }
  size_t total = 0;
  for (size_t i = 0; i < nx; i++) {
    match[i] = key_missing(&sx, i) ? NONE32 : iy.slot[find_slot(&iy, &sy, &sx, i)];
    if (match[i] == NONE32) total += opt->how == SP_JOIN_LEFT;
    else for (uint32_t j = match[i]; j != NONE32; j = iy.next[j]) total++;
  }
  /* a left join on unique right keys keeps x's rows as they are: x's columns are copied whole */
  int same_rows = opt->how == SP_JOIN_LEFT && !iy.dup;
  yj = sp_mem_alloc((total ? total : 1) * sizeof *yj);
  xi = same_rows ? NULL : sp_mem_alloc((total ? total : 1) * sizeof *xi);
  if (yj == NULL || (!same_rows && xi == NULL)) { st = nomem(err, "joining"); goto done; }
  size_t o = 0;
  for (size_t i = 0; i < nx; i++) {
    if (match[i] == NONE32) {
      if (opt->how != SP_JOIN_LEFT) continue;
      if (xi) xi[o] = i;
      yj[o++] = NO_ROW;
      continue;
    }
    for (uint32_t j = match[i]; j != NONE32; j = iy.next[j]) {
      if (xi) xi[o] = i;
      yj[o++] = j;
    }
  }
  if ((g = sp_frame_new(total, err)) == NULL) { st = SP_ENOMEM; goto done; }
  for (size_t j = 0; j < x->ncol; j++)
    if ((st = sp_frame_add_rows(g, x->cols[j].name, &x->cols[j], xi, total, err)) != SP_OK) goto done;
  for (size_t j = 0; j < y->ncol; j++) {
    const sp_column *c = &y->cols[j];
    int is_key = 0;
    for (size_t k = 0; k < nk; k++) is_key |= sy.c[k] == c;
    if (is_key) continue;
    char name[512];
    if (sp_frame_find(g, c->name) >= 0) snprintf(name, sizeof name, "%s%s", c->name, suffix);
    else snprintf(name, sizeof name, "%s", c->name);
    if (sp_frame_find(g, name) >= 0) {
      sp_error_var(err, name);
      st = sp_error_set(err, SP_EDUP, "join: column '%s' of the right frame clashes with '%s' even after adding the suffix '%s'",
                        c->name, name, suffix);
      goto done;
    }
    if ((st = sp_frame_add_rows(g, name, c, yj, total, err)) != SP_OK) goto done;
  }
  *out = g;
  g = NULL;
done:
  sp_frame_free(g);
  for (size_t k = 0; k < nk; k++) {
    if (sx.id) free(sx.id[k]);
    if (sy.id) free(sy.id[k]);
  }
  free(sx.c); free(sy.c); free(sx.id); free(sy.id);
  index_free(&iy);
  index_free(&ix);
  sp_mem_free(match); sp_mem_free(xi); sp_mem_free(yj);
  return st;
}

/* }===================================================================== */

/* {=====================================================================
** Quantiles and column transforms
** ====================================================================== */

double sp_quantile_sorted(const double *sorted, size_t n, double p) {
  if (n == 0) return NAN;
  if (p <= 0) return sorted[0];
  if (p >= 1) return sorted[n - 1];
  double h = (double)(n - 1) * p;
  size_t lo = (size_t)floor(h);
  if (lo + 1 >= n) return sorted[n - 1];
  return sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int sp_winsorize(double *x, size_t n, const int32_t *group, size_t ngroups,
                 double lower, double upper, sp_error *err) {
  if (!(lower >= 0 && lower <= upper && upper <= 1))
    return sp_error_set(err, SP_EVALUE,
                        "winsorize: the quantiles must satisfy 0 <= lower <= upper <= 1 (got %g and %g)",
                        lower, upper);
  if (group == NULL) ngroups = 1;
  size_t *start = calloc(ngroups + 1, sizeof *start);
  double *buf = malloc((n ? n : 1) * sizeof *buf);
  double *lo = malloc((ngroups ? ngroups : 1) * sizeof *lo);
  double *hi = malloc((ngroups ? ngroups : 1) * sizeof *hi);
  size_t *fill = malloc((ngroups ? ngroups : 1) * sizeof *fill);
  if (start == NULL || buf == NULL || lo == NULL || hi == NULL || fill == NULL) {
    free(start); free(buf); free(lo); free(hi); free(fill);
    return nomem(err, "winsorizing");
  }
  /* counting sort of the non-missing values by group, then one sort per group */
  for (size_t i = 0; i < n; i++) {
    long g = group ? group[i] : 0;
    if (g >= 0 && !isnan(x[i])) start[g + 1]++;
  }
  for (size_t g = 0; g < ngroups; g++) { start[g + 1] += start[g]; fill[g] = start[g]; }
  for (size_t i = 0; i < n; i++) {
    long g = group ? group[i] : 0;
    if (g >= 0 && !isnan(x[i])) buf[fill[g]++] = x[i];
  }
  for (size_t g = 0; g < ngroups; g++) {
    size_t m = start[g + 1] - start[g];
    qsort(buf + start[g], m, sizeof *buf, cmp_double);
    lo[g] = sp_quantile_sorted(buf + start[g], m, lower);
    hi[g] = sp_quantile_sorted(buf + start[g], m, upper);
  }
  for (size_t i = 0; i < n; i++) {
    long g = group ? group[i] : 0;
    if (g < 0 || isnan(x[i])) continue;
    if (x[i] < lo[g]) x[i] = lo[g];
    else if (x[i] > hi[g]) x[i] = hi[g];
  }
  free(start); free(buf); free(lo); free(hi); free(fill);
  return SP_OK;
}

int sp_standardize(double *x, size_t n, const char *name, sp_error *err) {
  size_t cnt = 0;
  double sum = 0.0, ss = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(x[i])) continue;
    if (isinf(x[i])) {  /* else the mean and sd are NaN and every z-score with them */
      sp_error_var(err, name);
      return sp_error_set(err, SP_EVALUE, "standardize: column '%s' has the infinite value %g at row %zu",
                          name, x[i], i + 1);
    }
    cnt++;
    sum += x[i];
  }
  if (cnt < 2) {
    sp_error_var(err, name);
    return sp_error_set(err, SP_EDF, "standardize: column '%s' has %zu non-missing value%s; at least 2 are needed",
                        name, cnt, cnt == 1 ? "" : "s");
  }
  double mean = sum / (double)cnt;
  for (size_t i = 0; i < n; i++) if (!isnan(x[i])) ss += (x[i] - mean) * (x[i] - mean);
  double sd = sqrt(ss / (double)(cnt - 1));
  if (!(sd > 0)) {
    sp_error_var(err, name);
    return sp_error_set(err, SP_EVALUE, "standardize: column '%s' is constant (sd = 0)", name);
  }
  for (size_t i = 0; i < n; i++) x[i] = (x[i] - mean) / sd;
  return SP_OK;
}

int sp_log_values(const double *x, size_t n, int nonpositive_nan, const char *name,
                  double *out, sp_error *err) {
  if (!nonpositive_nan) {
    for (size_t i = 0; i < n; i++) {
      if (x[i] <= 0) {
        sp_error_var(err, name);
        return sp_error_set(err, SP_EVALUE,
                            "log: column '%s' has the non-positive value %.15g at row %zu; expected values > 0 "
                            "(use nonpositive = \"nan\" to turn them into missing values)",
                            name, x[i], i + 1);
      }
    }
  }
  for (size_t i = 0; i < n; i++) out[i] = x[i] > 0 ? log(x[i]) : NAN;
  return SP_OK;
}

int sp_group_means(const double *x, size_t n, const int32_t *group, size_t ngroups,
                   double *means, sp_error *err) {
  size_t *cnt = calloc(ngroups ? ngroups : 1, sizeof *cnt);
  double *corr = calloc(ngroups ? ngroups : 1, sizeof *corr);
  if (cnt == NULL || corr == NULL) { free(cnt); free(corr); return nomem(err, "computing group means"); }
  for (size_t g = 0; g < ngroups; g++) means[g] = 0.0;
  for (size_t i = 0; i < n; i++)
    if (group[i] >= 0 && !isnan(x[i])) { means[group[i]] += x[i]; cnt[group[i]]++; }
  for (size_t g = 0; g < ngroups; g++) means[g] = cnt[g] ? means[g] / (double)cnt[g] : NAN;
  /* second pass: correct each mean by its mean residual, for accuracy */
  for (size_t i = 0; i < n; i++)
    if (group[i] >= 0 && !isnan(x[i])) corr[group[i]] += x[i] - means[group[i]];
  for (size_t g = 0; g < ngroups; g++) if (cnt[g]) means[g] += corr[g] / (double)cnt[g];
  free(cnt);
  free(corr);
  return SP_OK;
}

/* }===================================================================== */
