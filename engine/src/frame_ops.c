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
** ====================================================================== */

typedef struct {
  const sp_column *c;
  int32_t *rank;  /* categorical: rank of each level in strcmp order */
  int desc;
} sort_key;

static int cmp_rows(const sort_key *keys, size_t nkeys, size_t a, size_t b) {
  for (size_t k = 0; k < nkeys; k++) {
    const sp_column *c = keys[k].c;
    int ma, mb, cmp;
    if (c->type == SP_NUMERIC) {
      double x = c->num[a], y = c->num[b];
      ma = isnan(x); mb = isnan(y);
      cmp = (ma || mb) ? 0 : (x > y) - (x < y);
    } else {
      int32_t x = c->code[a], y = c->code[b];
      ma = x < 0; mb = y < 0;
      cmp = (ma || mb) ? 0 : (keys[k].rank[x] > keys[k].rank[y]) - (keys[k].rank[x] < keys[k].rank[y]);
    }
    if (ma || mb) {
      if (ma && mb) continue;
      return ma ? 1 : -1;  /* missing last in either direction */
    }
    if (cmp != 0) return keys[k].desc ? -cmp : cmp;
  }
  return 0;
}

/* Stable merge sort of perm[0..n) with tmp as scratch of the same size. */
static void merge_sort(size_t *perm, size_t *tmp, size_t n, const sort_key *keys, size_t nkeys) {
  if (n < 2) return;
  if (n <= 16) {
    for (size_t i = 1; i < n; i++) {
      size_t v = perm[i], j = i;
      while (j > 0 && cmp_rows(keys, nkeys, perm[j - 1], v) > 0) { perm[j] = perm[j - 1]; j--; }
      perm[j] = v;
    }
    return;
  }
  size_t h = n / 2;
  merge_sort(perm, tmp, h, keys, nkeys);
  merge_sort(perm + h, tmp, n - h, keys, nkeys);
  if (cmp_rows(keys, nkeys, perm[h - 1], perm[h]) <= 0) return;  /* already in order */
  size_t i = 0, j = h, o = 0;
  while (i < h && j < n) tmp[o++] = cmp_rows(keys, nkeys, perm[j], perm[i]) < 0 ? perm[j++] : perm[i++];
  while (i < h) tmp[o++] = perm[i++];
  while (j < n) tmp[o++] = perm[j++];
  memcpy(perm, tmp, n * sizeof *perm);
}

static void free_keys(sort_key *keys, size_t nkeys) {
  if (keys == NULL) return;
  for (size_t k = 0; k < nkeys; k++) free(keys[k].rank);
  free(keys);
}

static int make_keys(const sp_frame *f, const sp_sort_key *spec, size_t nkeys, const char *ctx,
                     sort_key **out, sp_error *err) {
  *out = NULL;
  sort_key *keys = calloc(nkeys ? nkeys : 1, sizeof *keys);
  if (keys == NULL) return nomem(err, "sorting");
  for (size_t k = 0; k < nkeys; k++) {
    keys[k].c = sp_frame_column(f, spec[k].name);
    keys[k].desc = spec[k].desc;
    if (keys[k].c == NULL) { free_keys(keys, nkeys); return unknown_column(f, spec[k].name, ctx, err); }
    if (keys[k].c->type == SP_CATEGORICAL && (keys[k].rank = sp_column_level_ranks(keys[k].c)) == NULL) {
      free_keys(keys, nkeys);
      return nomem(err, "sorting");
    }
  }
  *out = keys;
  return SP_OK;
}

int sp_frame_order(const sp_frame *f, const sp_sort_key *spec, size_t nkeys, size_t *perm, sp_error *err) {
  sort_key *keys;
  int st = make_keys(f, spec, nkeys, "sort", &keys, err);
  if (st != SP_OK) return st;
  size_t n = f->nrow;
  size_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
  if (tmp == NULL) { free_keys(keys, nkeys); return nomem(err, "sorting"); }
  for (size_t i = 0; i < n; i++) perm[i] = i;
  merge_sort(perm, tmp, n, keys, nkeys);
  free(tmp);
  free_keys(keys, nkeys);
  return SP_OK;
}

static int row_has_missing(const sort_key *keys, size_t nkeys, size_t r) {
  for (size_t k = 0; k < nkeys; k++)
    if (sp_column_missing(keys[k].c, r)) return 1;
  return 0;
}

int sp_frame_group(const sp_frame *f, const char *const *names, size_t nkeys,
                   int32_t *codes, size_t *ngroups, size_t *first, sp_error *err) {
  *ngroups = 0;
  size_t n = f->nrow;
  if (n > (size_t)INT32_MAX) return sp_error_set(err, SP_EVALUE, "group: too many rows (%zu)", n);
  sp_sort_key *spec = calloc(nkeys ? nkeys : 1, sizeof *spec);
  if (spec == NULL) return nomem(err, "grouping");
  for (size_t k = 0; k < nkeys; k++) spec[k].name = names[k];
  sort_key *keys;
  int st = make_keys(f, spec, nkeys, "group", &keys, err);
  free(spec);
  if (st != SP_OK) return st;
  size_t *perm = malloc((n ? n : 1) * sizeof *perm);
  size_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
  if (perm == NULL || tmp == NULL) {
    free(perm); free(tmp); free_keys(keys, nkeys);
    return nomem(err, "grouping");
  }
  for (size_t i = 0; i < n; i++) perm[i] = i;
  merge_sort(perm, tmp, n, keys, nkeys);
  size_t g = 0;
  for (size_t i = 0; i < n; i++) {
    size_t r = perm[i];
    if (row_has_missing(keys, nkeys, r)) { codes[r] = -1; continue; }
    if (g == 0 || cmp_rows(keys, nkeys, perm[i - 1], r) != 0) first[g++] = r;  /* stable: smallest row */
    codes[r] = (int32_t)(g - 1);
  }
  *ngroups = g;
  free(perm);
  free(tmp);
  free_keys(keys, nkeys);
  return SP_OK;
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
  int32_t *codes = malloc((n ? n : 1) * sizeof *codes);
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
  free(codes); free(first); free(res); free(mean); free(cnt); free(rows);
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
** ====================================================================== */

typedef struct {
  const sp_column **cx, **cy;  /* key columns in x and in y */
  size_t nk;
} join_keys;

/* Compare key of row i of side a with row j of side b (columns ca, cb). */
static int cmp_key(const join_keys *jk, const sp_column **ca, size_t i, const sp_column **cb, size_t j) {
  for (size_t k = 0; k < jk->nk; k++) {
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

static int key_missing(const sp_column **c, size_t nk, size_t r) {
  for (size_t k = 0; k < nk; k++)
    if (sp_column_missing(c[k], r)) return 1;
  return 0;
}

/* Stable merge sort of row lists by key, within one side. */
static void key_sort(size_t *a, size_t *tmp, size_t n, const join_keys *jk, const sp_column **c) {
  if (n < 2) return;
  size_t h = n / 2;
  key_sort(a, tmp, h, jk, c);
  key_sort(a + h, tmp, n - h, jk, c);
  size_t i = 0, j = h, o = 0;
  while (i < h && j < n) tmp[o++] = cmp_key(jk, c, a[j], c, a[i]) < 0 ? a[j++] : a[i++];
  while (i < h) tmp[o++] = a[i++];
  while (j < n) tmp[o++] = a[j++];
  memcpy(a, tmp, n * sizeof *a);
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

/* Sort the rows of one side that have complete keys into rows[0..*m). */
static int sorted_keys(const sp_frame *f, const join_keys *jk, const sp_column **c, size_t *rows,
                       size_t *m, sp_error *err) {
  size_t n = f->nrow, k = 0;
  for (size_t i = 0; i < n; i++) if (!key_missing(c, jk->nk, i)) rows[k++] = i;
  size_t *tmp = malloc((k ? k : 1) * sizeof *tmp);
  if (tmp == NULL) return nomem(err, "joining");
  key_sort(rows, tmp, k, jk, c);
  free(tmp);
  *m = k;
  return SP_OK;
}

static int check_unique(const join_keys *jk, const sp_column **c, const size_t *rows, size_t m,
                        const char *side, const char *validate, sp_error *err) {
  for (size_t k = 1; k < m; k++) {
    if (cmp_key(jk, c, rows[k - 1], c, rows[k]) == 0) {
      char key[400];
      describe_key(c, jk->nk, rows[k], key, sizeof key);
      return sp_error_set(err, SP_EDUP,
                          "join: key (%s) appears more than once in the %s frame (rows %zu and %zu); "
                          "validate = \"%s\" needs unique keys there",
                          key, side, rows[k - 1] + 1, rows[k] + 1, validate);
    }
  }
  return SP_OK;
}

int sp_frame_join(const sp_frame *x, const sp_frame *y, const sp_join_options *opt,
                  sp_frame **out, sp_error *err) {
  *out = NULL;
  size_t nk = opt->non;
  const char *suffix = opt->suffix ? opt->suffix : "_y";
  if (nk == 0) return sp_error_set(err, SP_EVALUE, "join: no key columns given (on = ...)");
  join_keys jk = {NULL, NULL, nk};
  size_t *yrows = NULL, *xrows = NULL, *xi = NULL, *yj = NULL;
  sp_frame *g = NULL;
  int st = SP_OK;
  jk.cx = malloc(nk * sizeof *jk.cx);
  jk.cy = malloc(nk * sizeof *jk.cy);
  if (jk.cx == NULL || jk.cy == NULL) { st = nomem(err, "joining"); goto done; }
  for (size_t k = 0; k < nk; k++) {
    jk.cx[k] = sp_frame_column(x, opt->on[k]);
    jk.cy[k] = sp_frame_column(y, opt->on[k]);
    if (jk.cx[k] == NULL) { st = unknown_column(x, opt->on[k], "join (left frame)", err); goto done; }
    if (jk.cy[k] == NULL) { st = unknown_column(y, opt->on[k], "join (right frame)", err); goto done; }
    if (jk.cx[k]->type != jk.cy[k]->type) {
      sp_error_var(err, opt->on[k]);
      st = sp_error_set(err, SP_EVALUE, "join: key '%s' is %s in the left frame but %s in the right",
                        opt->on[k], jk.cx[k]->type == SP_NUMERIC ? "numeric" : "categorical",
                        jk.cy[k]->type == SP_NUMERIC ? "numeric" : "categorical");
      goto done;
    }
  }
  size_t my = 0, mx = 0;
  yrows = malloc((y->nrow ? y->nrow : 1) * sizeof *yrows);
  if (yrows == NULL) { st = nomem(err, "joining"); goto done; }
  if ((st = sorted_keys(y, &jk, jk.cy, yrows, &my, err)) != SP_OK) goto done;
  const char *vname = opt->validate == SP_VALIDATE_1_1 ? "1:1" : "m:1";
  if (opt->validate != SP_VALIDATE_NONE &&
      (st = check_unique(&jk, jk.cy, yrows, my, "right", vname, err)) != SP_OK) goto done;
  if (opt->validate == SP_VALIDATE_1_1) {
    xrows = malloc((x->nrow ? x->nrow : 1) * sizeof *xrows);
    if (xrows == NULL) { st = nomem(err, "joining"); goto done; }
    if ((st = sorted_keys(x, &jk, jk.cx, xrows, &mx, err)) != SP_OK) goto done;
    if ((st = check_unique(&jk, jk.cx, xrows, mx, "left", vname, err)) != SP_OK) goto done;
  }
  /* Two passes over x: count the result rows, then fill the row maps. */
  size_t total = 0;
  for (int pass = 0; pass < 2; pass++) {
    size_t o = 0;
    for (size_t i = 0; i < x->nrow; i++) {
      size_t lo = 0, hi = my;
      int miss = key_missing(jk.cx, nk, i);
      if (!miss) {
        while (lo < hi) {  /* first y row whose key is >= x's */
          size_t mid = lo + (hi - lo) / 2;
          if (cmp_key(&jk, jk.cy, yrows[mid], jk.cx, i) < 0) lo = mid + 1; else hi = mid;
        }
      }
      size_t matched = 0;
      for (size_t k = lo; !miss && k < my && cmp_key(&jk, jk.cy, yrows[k], jk.cx, i) == 0; k++) {
        if (pass) { xi[o] = i; yj[o] = yrows[k]; }
        o++;
        matched++;
      }
      if (matched == 0 && opt->how == SP_JOIN_LEFT) {
        if (pass) { xi[o] = i; yj[o] = NO_ROW; }
        o++;
      }
    }
    if (pass == 0) {
      total = o;
      xi = malloc((total ? total : 1) * sizeof *xi);
      yj = malloc((total ? total : 1) * sizeof *yj);
      if (xi == NULL || yj == NULL) { st = nomem(err, "joining"); goto done; }
    }
  }
  if ((g = sp_frame_new(total, err)) == NULL) { st = SP_ENOMEM; goto done; }
  for (size_t j = 0; j < x->ncol; j++)
    if ((st = sp_frame_add_rows(g, x->cols[j].name, &x->cols[j], xi, total, err)) != SP_OK) goto done;
  for (size_t j = 0; j < y->ncol; j++) {
    const sp_column *c = &y->cols[j];
    int is_key = 0;
    for (size_t k = 0; k < nk; k++) is_key |= jk.cy[k] == c;
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
  free(jk.cx); free(jk.cy); free(yrows); free(xrows); free(xi); free(yj);
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
