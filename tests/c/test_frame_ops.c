/*
** test_frame_ops.c: unit tests of frame_ops.c (sorting, grouping, aggregation,
** joins, describe, quantiles, transforms).  Expected values from R 4.x.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/frame.h"
#include "spillover/frame_ops.h"
#include "spillover/mem.h"
#include "spillover/strdict.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

static void near(double got, double want, double rtol, const char *what) {
  int ok = (isnan(want) && isnan(got)) ||
           fabs(got - want) <= rtol * (fabs(want) > 1e-300 ? fabs(want) : 1.0);
  if (!ok) printf("  got %.17g want %.17g\n", got, want);
  check(ok, what);
}

static void add_num(sp_frame *f, const char *name, const double *v) {
  double *x = sp_mem_doubles(f->nrow);
  memcpy(x, v, f->nrow * sizeof *x);
  sp_frame_add_numeric(f, name, x, NULL);
}

static const char *cell(const sp_frame *f, const char *col, size_t r) {
  return sp_column_level(sp_frame_column(f, col), r);
}

static double num(const sp_frame *f, const char *col, size_t r) {
  return sp_frame_column(f, col)->num[r];
}

/* region (E/W/E/W/E/NA/W), year, x with a missing value */
static sp_frame *sample(void) {
  sp_frame *f = sp_frame_new(7, NULL);
  const char *region[] = {"W", "E", "W", "E", "W", NULL, "E"};
  double year[] = {2001, 2000, 2000, 2001, 2002, 2000, 2002};
  double x[] = {3.5, 1.25, NAN, 7.75, 2.385, 9.1, 4.4};
  sp_frame_add_strings(f, "region", region, NULL);
  add_num(f, "year", year);
  add_num(f, "x", x);
  return f;
}

static void test_strings(void) {
  sp_frame *f = sample();
  sp_error err;
  const sp_column *c = sp_frame_column(f, "region");
  check(c->type == SP_CATEGORICAL && c->nlevels == 2, "add_strings: two levels");
  check(strcmp(c->levels[0], "E") == 0 && strcmp(c->levels[1], "W") == 0, "add_strings: levels sorted");
  check(c->code[5] == -1 && c->code[0] == 1, "add_strings: NULL is missing");
  unsigned long long v = f->version;
  check(v == 3, "version counts the three columns added");
  check(sp_frame_rename(f, "x", "y", &err) == SP_OK && sp_frame_find(f, "y") == 2, "rename");
  check(f->version == v + 1, "rename changes the version");
  check(sp_frame_rename(f, "y", "year", &err) == SP_EDUP && strstr(err.msg, "already exists") != NULL,
        "rename onto an existing name is SP_EDUP");
  check(sp_frame_rename(f, "yx", "z", &err) == SP_ENOTFOUND && strstr(err.msg, "did you mean 'y'") != NULL,
        "rename of an unknown column suggests a name");
  check(f->version == v + 1, "a refused rename leaves the version");
  check(sp_frame_drop(f, "y", &err) == SP_OK && f->version == v + 2, "drop changes the version");
  sp_frame_set_panel(f, NULL);
  check(f->version == v + 3, "setting the panel index changes the version");
  sp_frame_free(f);
}

static void test_order(void) {
  sp_frame *f = sample();
  sp_error err;
  size_t perm[7];
  sp_sort_key k1[] = {{"region", 0}, {"year", 0}};
  check(sp_frame_order(f, k1, 2, perm, &err) == SP_OK, "order by region, year");
  size_t want1[] = {1, 3, 6, 2, 0, 4, 5};
  check(memcmp(perm, want1, sizeof perm) == 0, "order: E rows by year, then W, missing region last");
  sp_sort_key k2[] = {{"x", 1}};
  sp_frame_order(f, k2, 1, perm, &err);
  size_t want2[] = {5, 3, 6, 0, 4, 1, 2};
  check(memcmp(perm, want2, sizeof perm) == 0, "order descending, NaN last");
  sp_sort_key k3[] = {{"year", 0}};
  sp_frame_order(f, k3, 1, perm, &err);
  size_t want3[] = {1, 2, 5, 0, 3, 4, 6};
  check(memcmp(perm, want3, sizeof perm) == 0, "order is stable on ties");
  sp_sort_key k4[] = {{"yaer", 0}};
  check(sp_frame_order(f, k4, 1, perm, &err) == SP_ENOTFOUND && strstr(err.msg, "did you mean 'year'"),
        "order: unknown column suggests a name");
  sp_frame_free(f);
}

static void test_group_aggregate(void) {
  sp_frame *f = sample();
  sp_error err;
  int32_t codes[7];
  size_t first[7], ng;
  const char *by[] = {"region"};
  check(sp_frame_group(f, by, 1, codes, &ng, first, &err) == SP_OK && ng == 2, "group: two groups");
  check(codes[0] == 1 && codes[1] == 0 && codes[5] == -1, "group: codes in key order, missing -1");
  check(first[0] == 1 && first[1] == 0, "group: first row of each group");

  sp_agg_spec specs[] = {{"x", SP_AGG_MEAN, NULL}, {"x", SP_AGG_SUM, NULL}, {"x", SP_AGG_SD, NULL},
                         {"x", SP_AGG_MIN, NULL}, {"x", SP_AGG_MAX, "xmax"}, {"year", SP_AGG_FIRST, NULL}};
  sp_frame *a = NULL;
  check(sp_frame_aggregate(f, by, 1, specs, 6, 1, &a, &err) == SP_OK, "aggregate");
  if (a == NULL) return;
  check(a->nrow == 2 && a->ncol == 8, "aggregate: 2 rows, 8 columns");
  check(strcmp(cell(a, "region", 0), "E") == 0 && strcmp(cell(a, "region", 1), "W") == 0, "aggregate: keys sorted");
  near(num(a, "n", 0), 3, 0, "aggregate: n counts rows");
  /* R: aggregate(x ~ region, mean) on E = 1.25, 7.75, 4.4; W = 3.5, 2.385 (NaN skipped) */
  near(num(a, "x_mean", 0), 4.4666666666666668, 1e-15, "aggregate: mean E");
  near(num(a, "x_mean", 1), 2.9424999999999999, 1e-15, "aggregate: mean W skips NaN");
  near(num(a, "x_sum", 1), 5.885, 1e-15, "aggregate: sum W");
  near(num(a, "x_sd", 0), 3.2505127800599913, 1e-14, "aggregate: sd E");
  near(num(a, "x_min", 0), 1.25, 0, "aggregate: min");
  near(num(a, "xmax", 1), 3.5, 0, "aggregate: named output");
  near(num(a, "year_first", 1), 2001, 0, "aggregate: first in frame order");
  sp_frame_free(a);

  sp_agg_spec bad[] = {{"region", SP_AGG_MEAN, NULL}};
  check(sp_frame_aggregate(f, by, 1, bad, 1, 0, &a, &err) == SP_EVALUE && strstr(err.msg, "categorical"),
        "aggregate: mean of a categorical is an error");
  sp_agg_spec dup[] = {{"x", SP_AGG_MEAN, NULL}, {"x", SP_AGG_MEAN, NULL}};
  check(sp_frame_aggregate(f, by, 1, dup, 2, 0, &a, &err) == SP_EDUP, "aggregate: duplicate result name");
  const char *by2[] = {"region", "year"};
  check(sp_frame_aggregate(f, by2, 2, specs, 1, 1, &a, &err) == SP_OK && a->nrow == 6, "aggregate by two keys");
  if (a) {
    near(num(a, "year", 0), 2000, 0, "aggregate by two keys: order");
    check(strcmp(cell(a, "region", 5), "W") == 0 && num(a, "year", 5) == 2002, "aggregate by two keys: last");
    sp_frame_free(a);
  }
  sp_frame_free(f);
}

static void test_describe(void) {
  sp_frame *f = sample();
  sp_error err;
  sp_frame *d = NULL;
  check(sp_frame_describe(f, NULL, 0, &d, &err) == SP_OK && d->nrow == 2, "describe: numeric columns");
  if (d) {
    check(strcmp(cell(d, "variable", 1), "x") == 0, "describe: variable names");
    near(num(d, "N", 1), 6, 0, "describe: N");
    near(num(d, "mean", 1), 4.730833333333333, 1e-15, "describe: mean");
    near(num(d, "sd", 1), 3.0805363439937965, 1e-14, "describe: sd");
    near(num(d, "min", 1), 1.25, 0, "describe: min");
    near(num(d, "max", 1), 9.1, 0, "describe: max");
    near(num(d, "missing", 1), 1, 0, "describe: missing");
    sp_frame_free(d);
  }
  const char *names[] = {"region"};
  check(sp_frame_describe(f, names, 1, &d, &err) == SP_EVALUE && strstr(err.msg, "categorical"),
        "describe: categorical column is an error");
  /* accuracy: huge offset, tiny spread */
  sp_frame *g = sp_frame_new(3, NULL);
  double v[] = {1e9 + 4, 1e9 + 7, 1e9 + 13};
  add_num(g, "v", v);
  sp_frame_describe(g, NULL, 0, &d, &err);
  near(num(d, "sd", 0), 4.5825756949558398, 1e-12, "describe: sd with a large offset");
  sp_frame_free(d);
  sp_frame_free(g);
  sp_frame_free(f);
}

static void test_join(void) {
  sp_error err;
  sp_frame *x = sample();
  sp_frame *y = sp_frame_new(3, NULL);
  const char *reg[] = {"W", "E", "N"};
  double pop[] = {10, 20, 30}, xx[] = {-1, -2, -3};
  sp_frame_add_strings(y, "region", reg, NULL);
  add_num(y, "pop", pop);
  add_num(y, "x", xx);
  const char *on[] = {"region"};
  sp_join_options o = {on, 1, SP_JOIN_LEFT, SP_VALIDATE_M_1, NULL};
  sp_frame *j = NULL;
  check(sp_frame_join(x, y, &o, &j, &err) == SP_OK && j->nrow == 7, "join left m:1");
  if (j) {
    near(num(j, "pop", 0), 10, 0, "join: W gets 10");
    near(num(j, "pop", 1), 20, 0, "join: E gets 20");
    check(isnan(num(j, "pop", 5)), "join: missing key does not match");
    near(num(j, "x_y", 0), -1, 0, "join: clashing column gets _y");
    near(num(j, "x", 0), 3.5, 0, "join: left column keeps its name");
    sp_frame_free(j);
  }
  o.how = SP_JOIN_INNER;
  check(sp_frame_join(x, y, &o, &j, &err) == SP_OK && j->nrow == 6, "join inner drops unmatched");
  sp_frame_free(j);
  o.validate = SP_VALIDATE_1_1;
  check(sp_frame_join(x, y, &o, &j, &err) == SP_EDUP && strstr(err.msg, "region = 'E'") &&
        strstr(err.msg, "left frame (rows 2 and 4)"), "join 1:1: duplicate key on the left names key and rows");
  /* y joined to x many-to-one the other way: duplicates on the right */
  o.validate = SP_VALIDATE_M_1;
  check(sp_frame_join(y, x, &o, &j, &err) == SP_EDUP && strstr(err.msg, "right frame"),
        "join m:1: duplicate key on the right");
  o.validate = SP_VALIDATE_NONE;
  o.how = SP_JOIN_LEFT;
  check(sp_frame_join(y, x, &o, &j, &err) == SP_OK && j->nrow == 7, "join m:m multiplies rows");
  if (j) {
    near(num(j, "x_y", 0), 3.5, 0, "join m:m: matches in right row order");
    near(num(j, "x_y", 1), NAN, 0, "join m:m: second W match");
    check(strcmp(cell(j, "region", 6), "N") == 0 && isnan(num(j, "year", 6)), "join m:m: unmatched left row");
    sp_frame_free(j);
  }
  /* two keys, numeric and categorical */
  const char *on2[] = {"region", "year"};
  sp_frame *z = sp_frame_new(2, NULL);
  const char *zr[] = {"E", "W"};
  double zy[] = {2001, 2001}, zv[] = {100, 200};
  sp_frame_add_strings(z, "region", zr, NULL);
  add_num(z, "year", zy);
  add_num(z, "v", zv);
  sp_join_options o2 = {on2, 2, SP_JOIN_INNER, SP_VALIDATE_1_1, "_r"};
  check(sp_frame_join(x, z, &o2, &j, &err) == SP_OK && j->nrow == 2, "join on two keys");
  if (j) {
    near(num(j, "v", 0), 200, 0, "join on two keys: W 2001");
    near(num(j, "x", 1), 7.75, 0, "join on two keys: E 2001");
    sp_frame_free(j);
  }
  const char *on3[] = {"year"};
  sp_join_options o3 = {on3, 1, SP_JOIN_LEFT, SP_VALIDATE_NONE, NULL};
  check(sp_frame_join(x, y, &o3, &j, &err) == SP_ENOTFOUND && strstr(err.msg, "right frame"),
        "join: key missing on the right");
  sp_frame_add_strings(z, "year", zr, NULL);
  check(sp_frame_join(x, z, &o3, &j, &err) == SP_EVALUE && strstr(err.msg, "numeric in the left"),
        "join: key types must agree");
  sp_frame_free(z);
  sp_frame_free(x);
  sp_frame_free(y);
}

static void test_transforms(void) {
  sp_error err;
  double s[] = {1.25, 2.385, 3.5, 4.4, 7.75, 9.1};
  near(sp_quantile_sorted(s, 6, 0.1), 1.8174999999999999, 1e-15, "quantile type 7, 10%");
  near(sp_quantile_sorted(s, 6, 0.9), 8.4250000000000007, 1e-15, "quantile type 7, 90%");
  near(sp_quantile_sorted(s, 1, 0.3), 1.25, 0, "quantile of one value");
  check(isnan(sp_quantile_sorted(s, 0, 0.5)), "quantile of none is NaN");

  double x[] = {3.5, 1.25, NAN, 7.75, 2.385, 9.1, 4.4};
  check(sp_winsorize(x, 7, NULL, 0, 0.1, 0.9, &err) == SP_OK, "winsorize");
  near(x[1], 1.8174999999999999, 1e-15, "winsorize: low value clamped");
  near(x[5], 8.4250000000000007, 1e-15, "winsorize: high value clamped");
  near(x[0], 3.5, 0, "winsorize: middle value kept");
  check(isnan(x[2]), "winsorize: NaN kept");
  int32_t g[] = {0, 0, 0, 1, 1, 1, -1};
  double y[] = {1, 2, 3, 10, 20, 30, 99};
  sp_winsorize(y, 7, g, 2, 0.5, 0.5, &err);
  check(y[0] == 2 && y[2] == 2 && y[3] == 20 && y[6] == 99, "winsorize by group");
  check(sp_winsorize(y, 7, NULL, 0, 0.9, 0.1, &err) == SP_EVALUE, "winsorize: lower > upper is an error");

  double z[] = {1, 2, NAN, 3};
  check(sp_standardize(z, 4, "z", &err) == SP_OK && z[0] == -1 && z[3] == 1 && isnan(z[2]), "standardize");
  double c[] = {5, 5, 5};
  check(sp_standardize(c, 3, "c", &err) == SP_EVALUE && strstr(err.msg, "'c' is constant"), "standardize constant");
  double inf[] = {1, INFINITY, 3};
  check(sp_standardize(inf, 3, "v", &err) == SP_EVALUE && strstr(err.msg, "'v' has the infinite value inf at row 2") &&
        inf[0] == 1, "standardize names an infinite value (not 'constant') and leaves x as it was");

  double l[] = {1, exp(1.0), -2}, out[3];
  check(sp_log_values(l, 3, 0, "gdp", out, &err) == SP_EVALUE && strstr(err.msg, "column 'gdp'") &&
        strstr(err.msg, "-2 at row 3"), "log: non-positive value names column, value and row");
  check(sp_log_values(l, 3, 1, "gdp", out, &err) == SP_OK && out[0] == 0 && fabs(out[1] - 1) < 1e-15 &&
        isnan(out[2]), "log: nonpositive -> NaN");

  double m[] = {1, 2, NAN, 10, 20}, means[2];
  int32_t mg[] = {0, 0, 0, 1, -1};
  sp_group_means(m, 5, mg, 2, means, &err);
  check(means[0] == 1.5 && means[1] == 10, "group means skip NaN and code -1");
}

/* sp_frame_take and sp_frame_add_rows (frame.c), the one row copier every
   operation here uses. */
static void test_take(void) {
  sp_frame *f = sample(), *g = NULL;
  sp_error err;
  sp_column_set_label(sp_frame_column(f, "year"), "calendar year", &err);
  const char *names[] = {"year", "x", "year"};
  size_t rows[] = {4, 0};
  check(sp_frame_take(f, rows, 2, names, 3, &g, &err) == SP_OK && g->ncol == 2 && num(g, "year", 0) == 2002 &&
        num(g, "x", 1) == 3.5, "take: rows and named columns (a repeated name replaces in place)");
  check(strcmp(sp_frame_column(g, "year")->label, "calendar year") == 0 && sp_frame_column(g, "x")->label == NULL,
        "take: a repeated column keeps its label and gives it to no other column");
  sp_frame_free(g);
  size_t pick[] = {1, SP_NO_ROW};
  g = sp_frame_new(2, &err);
  check(sp_frame_add_rows(g, "r", sp_frame_column(f, "region"), pick, 2, &err) == SP_OK &&
        strcmp(cell(g, "r", 0), "E") == 0 && cell(g, "r", 1) == NULL, "add_rows: SP_NO_ROW is a missing cell");
  sp_frame_free(g);
  sp_frame_free(f);
}

/* The one level ranking (sort, group, panel index): strcmp order, equal
   strings share a rank; and the one string dictionary of the readers. */
static void test_ranks_and_dict(void) {
  char *lv[4] = {"b", "a", "c", "a"};
  sp_column c;
  memset(&c, 0, sizeof c);
  c.type = SP_CATEGORICAL;
  c.levels = lv;
  c.nlevels = 4;
  int32_t *rank = sp_column_level_ranks(&c);
  check(rank != NULL && rank[0] == 1 && rank[1] == 0 && rank[2] == 2 && rank[3] == 0,
        "level ranks: strcmp order, equal strings share a rank");
  free(rank);
  sp_strdict d;
  memset(&d, 0, sizeof d);
  int ok = 1;
  char buf[16];
  for (int i = 0; i < 1000 && ok; i++) {  /* past several rehashes */
    snprintf(buf, sizeof buf, "L%d", i % 300);
    ok = sp_strdict_intern(&d, buf, strlen(buf)) == i % 300;
  }
  check(ok && d.n == 300 && strcmp(d.lv[299], "L299") == 0, "strdict: codes in order of first appearance");
  check(sp_strdict_intern(&d, "a\0b", 3) == 300 && sp_strdict_intern(&d, "a", 1) == 301 &&
        sp_strdict_intern(&d, "a\0b", 3) == 300 && d.len[300] == 3, "strdict: strings with NUL bytes are their bytes");
  sp_strdict_free(&d);
  check(d.n == 0 && d.lv == NULL, "strdict: freed to empty");
}

/* {=====================================================================
** The radix sorts, counting tables and hash joins against a reference: the
** comparison sort and nested-loop join they replaced, on random frames with
** ties, NaN, -0, infinities, missing levels, a dictionary out of string order
** with a repeated string, integers too wide to count, and constant and empty
** columns.
** ====================================================================== */

static uint64_t rstate = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void) {
  rstate ^= rstate << 13;
  rstate ^= rstate >> 7;
  rstate ^= rstate << 17;
  return rstate;
}

/* halves: "small" holds multiples of 1/2 instead of integers. */
static sp_frame *random_frame(size_t n, int halves, int other_dict) {
  static const double pool[] = {NAN, -0.0, 0.0, INFINITY, -INFINITY, 1e300, -1e300, 1e-300, 0.5, -2.25, 3.0};
  static const char *const dict1[] = {"b", "a", "\xc3\xa4", "B", "a", ""};
  static const char *const dict2[] = {"a", "zz", "B", "b", "", "\xc3\xa4"};
  sp_frame *f = sp_frame_new(n, NULL);
  double *small = sp_mem_doubles(n + 1), *dbl = sp_mem_doubles(n + 1), *big = sp_mem_doubles(n + 1);
  double *cst = sp_mem_doubles(n + 1), *na = sp_mem_doubles(n + 1), *row = sp_mem_doubles(n + 1);
  int32_t *cat = sp_mem_alloc((n + 1) * sizeof *cat), *cat2 = sp_mem_alloc((n + 1) * sizeof *cat2);
  char **lv = calloc(6, sizeof *lv), **lv2 = calloc(300, sizeof *lv2);
  for (size_t l = 0; l < 6; l++) lv[l] = strdup(other_dict ? dict2[l] : dict1[l]);
  for (size_t l = 0; l < 300; l++) {
    char b[16];
    snprintf(b, sizeof b, "L%zu", other_dict ? 299 - l : l);
    lv2[l] = strdup(b);
  }
  for (size_t i = 0; i < n; i++) {
    small[i] = rnd() % 10 == 0 ? NAN : (double)((int)(rnd() % 7) - 3) / (halves ? 2 : 1);
    dbl[i] = rnd() % 2 ? pool[rnd() % 11] : (double)(rnd() % 1000) / 8.0 - 60.0;
    big[i] = rnd() % 10 == 0 ? NAN : (double)((int64_t)(rnd() % 20) * 250000000000000LL - 2000000000000000LL);
    cst[i] = 7.0;
    na[i] = NAN;
    row[i] = (double)i;
    cat[i] = (int32_t)(rnd() % 7) - 1;
    cat2[i] = rnd() % 20 == 0 ? -1 : (int32_t)(rnd() % 300);
  }
  sp_frame_add_numeric(f, "small", small, NULL);
  sp_frame_add_numeric(f, "dbl", dbl, NULL);
  sp_frame_add_numeric(f, "big", big, NULL);
  sp_frame_add_numeric(f, "const", cst, NULL);
  sp_frame_add_numeric(f, "allna", na, NULL);
  sp_frame_add_numeric(f, "row", row, NULL);
  sp_frame_add_categorical(f, "cat", cat, lv, 6, NULL);
  sp_frame_add_categorical(f, "cat2", cat2, lv2, 300, NULL);
  return f;
}

typedef struct {
  const sp_column *c[4];
  int desc[4];
  size_t nk;
} ref_keys;

static const ref_keys *cur;  /* qsort takes no context */

/* The comparator of the merge sort that radix sorting replaced. */
static int ref_cmp_keys(const ref_keys *k, size_t a, size_t b) {
  for (size_t q = 0; q < k->nk; q++) {
    const sp_column *c = k->c[q];
    int ma = sp_column_missing(c, a), mb = sp_column_missing(c, b), cmp;
    if (ma || mb) {
      if (ma && mb) continue;
      return ma ? 1 : -1;  /* missing last in either direction */
    }
    if (c->type == SP_NUMERIC) cmp = (c->num[a] > c->num[b]) - (c->num[a] < c->num[b]);
    else cmp = strcmp(c->levels[c->code[a]], c->levels[c->code[b]]);
    if (cmp != 0) return k->desc[q] ? -cmp : cmp;
  }
  return 0;
}

static int ref_cmp_rows(const void *pa, const void *pb) {
  size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
  int c = ref_cmp_keys(cur, a, b);
  return c ? c : (a > b) - (a < b);  /* the row breaks ties: stable */
}

static int ref_missing(const ref_keys *k, size_t r) {
  for (size_t q = 0; q < k->nk; q++)
    if (sp_column_missing(k->c[q], r)) return 1;
  return 0;
}

/* keys: "name" or "-name" (descending), NULL-terminated. */
static ref_keys parse_keys(const sp_frame *f, const char *const *names, sp_sort_key *spec) {
  ref_keys k;
  memset(&k, 0, sizeof k);
  for (; names[k.nk] != NULL; k.nk++) {
    const char *nm = names[k.nk];
    k.desc[k.nk] = spec[k.nk].desc = nm[0] == '-';
    spec[k.nk].name = nm + (nm[0] == '-');
    k.c[k.nk] = sp_frame_column(f, spec[k.nk].name);
  }
  return k;
}

static void ref_order(const ref_keys *k, size_t n, size_t *perm) {
  for (size_t i = 0; i < n; i++) perm[i] = i;
  cur = k;
  qsort(perm, n, sizeof *perm, ref_cmp_rows);
}

static void case_order_group(const sp_frame *f, const char *const *names, const char *what) {
  size_t n = f->nrow, m = n ? n : 1;
  sp_sort_key spec[4];
  ref_keys k = parse_keys(f, names, spec);
  size_t *perm = malloc(m * sizeof *perm), *want = malloc(m * sizeof *want);
  size_t *first = malloc(m * sizeof *first), *wfirst = malloc(m * sizeof *wfirst);
  int32_t *codes = malloc(m * sizeof *codes), *wcodes = malloc(m * sizeof *wcodes);
  char label[200];
  sp_error err;
  ref_order(&k, n, want);
  snprintf(label, sizeof label, "radix order = comparison sort, n = %zu: %s", n, what);
  check(sp_frame_order(f, spec, k.nk, perm, &err) == SP_OK && memcmp(perm, want, n * sizeof *perm) == 0, label);
  sp_frame *sorted = NULL;
  int ok = sp_frame_sort(f, spec, k.nk, &sorted, &err) == SP_OK && sorted->nrow == n && sorted->ncol == f->ncol;
  for (size_t j = 0; ok && j < n; j++) ok = num(sorted, "row", j) == (double)want[j];
  snprintf(label, sizeof label, "sort = take in that order, n = %zu: %s", n, what);
  check(ok, label);
  sp_frame_free(sorted);
  /* groups: ascending keys ignoring the direction, numbered along the sorted rows */
  for (size_t q = 0; q < k.nk; q++) k.desc[q] = 0;
  ref_order(&k, n, want);
  size_t wng = 0, prev = 0;
  for (size_t j = 0; j < n; j++) {
    size_t r = want[j];
    if (ref_missing(&k, r)) { wcodes[r] = -1; continue; }
    if (wng == 0 || ref_cmp_keys(&k, prev, r) != 0) wfirst[wng++] = r;
    wcodes[r] = (int32_t)(wng - 1);
    prev = r;
  }
  const char *gnames[4];
  for (size_t q = 0; q < k.nk; q++) gnames[q] = spec[q].name;
  size_t ng = 0;
  ok = sp_frame_group(f, gnames, k.nk, codes, &ng, first, &err) == SP_OK && ng == wng &&
           memcmp(codes, wcodes, n * sizeof *codes) == 0 && memcmp(first, wfirst, ng * sizeof *first) == 0;
  snprintf(label, sizeof label, "group = grouping the comparison sort, n = %zu: %s", n, what);
  check(ok, label);
  free(perm); free(want); free(first); free(wfirst); free(codes); free(wcodes);
}

/* The join against a nested loop over both frames' "row" columns. */
static void case_join(const sp_frame *x, const sp_frame *y, const char *const *on, size_t non, sp_join_how how,
                      const char *what) {
  ref_keys kx, ky;
  memset(&kx, 0, sizeof kx);
  memset(&ky, 0, sizeof ky);
  kx.nk = ky.nk = non;
  for (size_t q = 0; q < non; q++) { kx.c[q] = sp_frame_column(x, on[q]); ky.c[q] = sp_frame_column(y, on[q]); }
  size_t cap = x->nrow * (y->nrow + 1) + 1, o = 0;
  double *wx = malloc(cap * sizeof *wx), *wy = malloc(cap * sizeof *wy);
  for (size_t i = 0; i < x->nrow; i++) {
    size_t matched = 0;
    for (size_t j = 0; !ref_missing(&kx, i) && j < y->nrow; j++) {
      int eq = !ref_missing(&ky, j);
      for (size_t q = 0; eq && q < non; q++) {
        const sp_column *a = kx.c[q], *b = ky.c[q];
        eq = a->type == SP_NUMERIC ? a->num[i] == b->num[j]
                                   : strcmp(a->levels[a->code[i]], b->levels[b->code[j]]) == 0;
      }
      if (eq) { wx[o] = num(x, "row", i); wy[o++] = num(y, "row", j); matched++; }
    }
    if (!matched && how == SP_JOIN_LEFT) { wx[o] = num(x, "row", i); wy[o++] = NAN; }
  }
  sp_join_options opt = {on, non, how, SP_VALIDATE_NONE, NULL};
  sp_frame *j = NULL;
  sp_error err;
  int ok = sp_frame_join(x, y, &opt, &j, &err) == SP_OK && j->nrow == o;
  for (size_t r = 0; ok && r < o; r++) {
    double gy = num(j, "row_y", r);
    ok = num(j, "row", r) == wx[r] && (isnan(wy[r]) ? isnan(gy) : gy == wy[r]);
  }
  char label[200];
  snprintf(label, sizeof label, "join = nested loop, %zu x %zu rows, %s: %s", x->nrow, y->nrow,
           how == SP_JOIN_LEFT ? "left" : "inner", what);
  check(ok, label);
  sp_frame_free(j);
  /* validate: the error names the smallest duplicated key and its first two rows, as the sorted
     check did; without duplicates, the result is the same as unvalidated */
  size_t *want = malloc((y->nrow ? y->nrow : 1) * sizeof *want), d1 = 0, d2 = 0, ndup = 0;
  ref_order(&ky, y->nrow, want);
  for (size_t r = 1; r < y->nrow && !ndup; r++)
    if (!ref_missing(&ky, want[r]) && ref_cmp_keys(&ky, want[r - 1], want[r]) == 0) {
      d1 = want[r - 1];
      d2 = want[r];
      ndup = 1;
    }
  opt.validate = SP_VALIDATE_M_1;
  int st = sp_frame_join(x, y, &opt, &j, &err);
  char rows[80];
  snprintf(rows, sizeof rows, "right frame (rows %zu and %zu)", d1 + 1, d2 + 1);
  snprintf(label, sizeof label, "join m:1 %s, %s", ndup ? "names the first duplicate" : "accepts unique keys", what);
  check(ndup ? st == SP_EDUP && strstr(err.msg, rows) != NULL : st == SP_OK && j->nrow == o, label);
  if (st == SP_OK) sp_frame_free(j);
  free(want);
  free(wx);
  free(wy);
}

static void test_against_reference(void) {
  static const char *const keysets[][4] = {
    {"small", NULL}, {"-small", NULL}, {"dbl", NULL}, {"-dbl", NULL}, {"big", NULL}, {"-big", NULL},
    {"cat", NULL}, {"-cat", NULL}, {"cat2", NULL}, {"const", NULL}, {"allna", NULL},
    {"cat", "small", NULL}, {"small", "-dbl", NULL}, {"big", "dbl", NULL}, {"-dbl", "big", "cat", NULL},
    {"cat2", "-cat", "small", NULL}, {"const", "-small", NULL}, {"allna", "cat", NULL},
  };
  static const size_t sizes[] = {0, 1, 2, 50, 3000};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    sp_frame *f = random_frame(sizes[s], 0, 0);
    for (size_t q = 0; q < sizeof keysets / sizeof *keysets; q++) {
      char what[100] = "";
      for (size_t k = 0; keysets[q][k] != NULL; k++) {
        strcat(what, k ? ", " : "");
        strcat(what, keysets[q][k]);
      }
      case_order_group(f, keysets[q], what);
    }
    sp_frame_free(f);
  }
  static const char *const on[][3] = {
    {"small"}, {"cat"}, {"dbl"}, {"big"}, {"cat2"}, {"cat", "small"}, {"dbl", "cat2"}, {"small", "big", "cat"},
  };
  static const size_t non[] = {1, 1, 1, 1, 1, 2, 2, 3};
  for (size_t s = 0; s < 3; s++) {
    size_t nx = s == 0 ? 0 : 300, ny = s == 1 ? 1 : 60;
    sp_frame *x = random_frame(nx, 0, 0), *y = random_frame(ny, 0, 1), *xh = random_frame(nx, 1, 0);
    for (size_t q = 0; q < sizeof non / sizeof *non; q++) {
      case_join(x, y, on[q], non[q], SP_JOIN_LEFT, on[q][0]);
      case_join(x, y, on[q], non[q], SP_JOIN_INNER, on[q][0]);
    }
    case_join(xh, y, on[0], 1, SP_JOIN_LEFT, "halves against integers");
    case_join(y, xh, on[0], 1, SP_JOIN_LEFT, "integers against halves");
    /* unique right keys: the first row of each key of y */
    sp_sort_key spec[4];
    const char *const names[] = {"cat", "small", NULL};
    ref_keys k = parse_keys(y, names, spec);
    size_t *perm = malloc((ny ? ny : 1) * sizeof *perm), *keep = malloc((ny ? ny : 1) * sizeof *keep), m = 0;
    ref_order(&k, ny, perm);
    for (size_t r = 0; r < ny; r++)
      if (!ref_missing(&k, perm[r]) && (m == 0 || ref_cmp_keys(&k, keep[m - 1], perm[r]) != 0)) keep[m++] = perm[r];
    sp_frame *yu = NULL;
    sp_frame_take(y, keep, m, NULL, 0, &yu, NULL);
    case_join(x, yu, on[5], 2, SP_JOIN_LEFT, "unique right keys");
    case_join(x, yu, on[5], 2, SP_JOIN_INNER, "unique right keys");
    sp_frame_free(yu);
    free(perm);
    free(keep);
    sp_frame_free(x);
    sp_frame_free(y);
    sp_frame_free(xh);
  }
}

/* }===================================================================== */

int main(void) {
  test_take();
  test_strings();
  test_order();
  test_group_aggregate();
  test_describe();
  test_join();
  test_transforms();
  test_ranks_and_dict();
  test_against_reference();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
