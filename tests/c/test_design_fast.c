/*
** test_design_fast.c: the design's fast set-up paths against a plain
** reference, at 1 and 2 threads.  The factor coding of numeric columns has a
** direct path (integers in a small range, from the range the missing-mask
** pass learned) with a dense and a gapped variant, and a hash path for
** everything else; the mask pass skips blocks without missing values.  Every
** path must give the codes of the definition (the rank of the value among
** the distinct values of the used rows, -0 and 0 one level), and two threads
** the same bits as one.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_matrix.h>

#include "spillover/design.h"
#include "spillover/formula.h"
#include "spillover/frame.h"
#include "spillover/mem.h"

static int passed, failed;

static void check(int ok, const char *what) {
  if (ok) passed++;
  else failed++;
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ULL;
}
static double unif(void) { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
static long irand(long m) { return (long)(unif() * (double)m); }

/* Three blocks of the mask pass (8192 rows) and an odd tail row. */
#define N 20001

static void add(sp_frame *f, const char *name, const double *v) {
  double *a = sp_mem_doubles(N);
  memcpy(a, v, N * sizeof *a);
  sp_frame_add_numeric(f, name, a, NULL);
}

static double col[16][N];
static const char *const names[] = {"y", "x", "dense", "gaps", "neg", "frac", "huge", "big", "holes", "inf", "one"};
enum { Y, X, DENSE, GAPS, NEG, FRAC, HUGE, BIG, HOLES, INF, ONE, NCOL };

static sp_frame *make_frame(void) {
  for (size_t r = 0; r < N; r++) {
    col[Y][r] = unif() * 10 - 5;
    col[X][r] = unif();
    col[DENSE][r] = (double)(r % 500) + 1;            /* 1..500, every value present */
    col[GAPS][r] = 10.0 * (double)irand(700);          /* multiples of 10: gaps */
    col[NEG][r] = (double)(irand(1001) - 500);         /* negative, zero... */
    if (r % 97 == 0) col[NEG][r] = -0.0;               /* ... and -0 */
    col[FRAC][r] = (double)irand(300) + (r % 3 == 0 ? 0.5 : 0.0);  /* not integers: hash */
    col[HUGE][r] = (double)irand(1000000000);          /* range far above 2n: hash */
    col[BIG][r] = 4503599627370496.0 + (double)irand(50);  /* 2^52 + k: beyond the integer test */
    col[HOLES][r] = (double)irand(40) - 20;
    col[INF][r] = (double)irand(60);
    col[ONE][r] = 7;
  }
  /* Missing values in some blocks only (the others take the no-mask path). */
  col[Y][3] = NAN;
  col[HOLES][9000] = NAN;
  col[HOLES][9001] = NAN;
  col[HOLES][N - 1] = NAN;  /* the odd tail row */
  col[INF][15000] = INFINITY;
  col[INF][15001] = -INFINITY;
  col[X][12345] = NAN;
  sp_error err;
  sp_error_clear(&err);
  sp_frame *f = sp_frame_new(N, &err);
  for (int j = 0; j < NCOL; j++) add(f, names[j], col[j]);
  return f;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The definition: the rank of each used row's value among the distinct
   values of the used rows, -0 counted as 0. */
static size_t reference_codes(const double *v, const size_t *rows, size_t n, int32_t *code) {
  double *s = malloc(n * sizeof *s);
  for (size_t i = 0; i < n; i++) s[i] = v[rows ? rows[i] : i] == 0 ? 0.0 : v[rows ? rows[i] : i];
  qsort(s, n, sizeof *s, cmp_double);
  size_t L = 0;
  for (size_t i = 0; i < n; i++)
    if (i == 0 || s[i] != s[L - 1]) s[L++] = s[i];
  for (size_t i = 0; i < n; i++) {
    double x = v[rows ? rows[i] : i];
    if (x == 0) x = 0.0;
    double *p = bsearch(&x, s, L, sizeof *s, cmp_double);
    code[i] = p ? (int32_t)(p - s) : -1;
  }
  free(s);
  return L;
}

typedef struct {
  sp_design *d;
  gsl_matrix *block, *y, *X;
  gsl_matrix_view yv, Xv;
  int st;
} built;

/* Plan with the given threads; fill y and X as side-by-side views of one
   block (the bindings' layout, filled in one pass) or as two matrices. */
static built build(const sp_frame *f, const char *text, const char *const *extra, size_t nextra, int threads,
                   int one_block) {
  built b;
  memset(&b, 0, sizeof b);
  sp_error err;
  sp_error_clear(&err);
  sp_formula *fm = NULL;
  if ((b.st = sp_formula_parse(text, &fm, &err)) != SP_OK) return b;
  sp_design_options opt;
  sp_design_options_init(&opt);
  opt.threads = threads;
  opt.extra = extra;
  opt.nextra = nextra;
  b.st = sp_design_plan(f, fm, &opt, &b.d, &err);
  sp_formula_free(fm);
  if (b.st != SP_OK) {
    printf("  plan '%s': %s\n", text, err.msg);
    return b;
  }
  size_t n = b.d->n, k = b.d->k;
  if (one_block) {
    b.block = gsl_matrix_alloc(n, 1 + k);
    b.yv = gsl_matrix_submatrix(b.block, 0, 0, n, 1);
    b.Xv = gsl_matrix_submatrix(b.block, 0, 1, n, k);
    b.st = sp_design_fill(b.d, &b.yv.matrix, &b.Xv.matrix, NULL, NULL, &err);
  } else {
    b.y = gsl_matrix_alloc(n, 1);
    b.X = gsl_matrix_alloc(n, k);
    b.st = sp_design_fill(b.d, b.y, b.X, NULL, NULL, &err);
  }
  return b;
}

static const gsl_matrix *ym(const built *b) { return b->block ? &b->yv.matrix : b->y; }
static const gsl_matrix *Xm(const built *b) { return b->block ? &b->Xv.matrix : b->X; }

static void release(built *b) {
  if (b->block) gsl_matrix_free(b->block);
  if (b->y) gsl_matrix_free(b->y);
  if (b->X) gsl_matrix_free(b->X);
  sp_design_free(b->d);
}

static int same_matrix(const gsl_matrix *a, const gsl_matrix *b) {
  if (a->size1 != b->size1 || a->size2 != b->size2) return 0;
  for (size_t i = 0; i < a->size1; i++)
    for (size_t j = 0; j < a->size2; j++) {
      double u = gsl_matrix_get(a, i, j), v = gsl_matrix_get(b, i, j);
      if (memcmp(&u, &v, sizeof u) != 0) return 0;
    }
  return 1;
}

static int same_rows(const sp_design *a, const sp_design *b) {
  if (a->n != b->n || a->dropped != b->dropped || a->dropped_missing != b->dropped_missing) return 0;
  if ((a->rows == NULL) != (b->rows == NULL)) return 0;
  return a->rows == NULL || memcmp(a->rows, b->rows, a->n * sizeof *a->rows) == 0;
}

static int same_factor(const sp_design_factor *a, const sp_design_factor *b, size_t n) {
  return a->nlevels == b->nlevels && memcmp(a->code, b->code, n * sizeof *a->code) == 0 &&
         (a->num == NULL) == (b->num == NULL) && (a->num == NULL || memcmp(a->num, b->num, n * sizeof *a->num) == 0) &&
         (a->lev == NULL) == (b->lev == NULL) && (a->lev == NULL || memcmp(a->lev, b->lev, a->nlevels * sizeof *a->lev) == 0);
}

/* The used rows by the definition: y, x and the fixed effect finite. */
static size_t reference_rows(int fe, size_t *rows) {
  size_t n = 0;
  for (size_t r = 0; r < N; r++)
    if (isfinite(col[Y][r]) && isfinite(col[X][r]) && isfinite(col[fe][r])) rows[n++] = r;
  return n;
}

static void test_codes(const sp_frame *f) {
  static size_t rows[N];
  static int32_t want[N];
  for (int fe = DENSE; fe < NCOL; fe++) {
    char text[64], what[160];
    snprintf(text, sizeof text, "y ~ x | %s", names[fe]);
    size_t n = reference_rows(fe, rows);
    size_t L = reference_codes(col[fe], rows, n, want);
    built b1 = build(f, text, NULL, 0, 1, 1), b2 = build(f, text, NULL, 0, 2, 1);
    int ok = b1.st == SP_OK && b2.st == SP_OK;
    snprintf(what, sizeof what, "%s: %zu rows used, %zu dropped as missing", text, n, (size_t)N - n);
    check(ok && b1.d->n == n && b1.d->dropped_missing == N - n &&
              (n == N ? b1.d->rows == NULL : memcmp(b1.d->rows, rows, n * sizeof *rows) == 0), what);
    snprintf(what, sizeof what, "%s: codes are the ranks of the values (%zu levels)", text, L);
    check(ok && b1.d->fe[0].nlevels == L && memcmp(b1.d->fe[0].code, want, n * sizeof *want) == 0, what);
    snprintf(what, sizeof what, "%s: two threads give the same rows, codes, y and X", text);
    check(ok && same_rows(b1.d, b2.d) && same_factor(&b1.d->fe[0], &b2.d->fe[0], n) && same_matrix(ym(&b1), ym(&b2)) &&
              same_matrix(Xm(&b1), Xm(&b2)), what);
    release(&b1);
    release(&b2);
  }
}

/* -0 and 0 are one level whichever comes first (the range's minimum may be
   either zero), labelled "0". */
static void test_signed_zero(void) {
  static const double v[4][3] = {{-0.0, 0.0, 1}, {0.0, -0.0, 1}, {-0.0, -0.0, -1}, {2, -0.0, 0.0}};
  static const int32_t want[4][3] = {{0, 0, 1}, {0, 0, 1}, {1, 1, 0}, {1, 0, 0}};
  for (int t = 0; t < 4; t++) {
    sp_error err;
    sp_error_clear(&err);
    sp_frame *f = sp_frame_new(3, &err);
    double *g = sp_mem_doubles(3), *x = sp_mem_doubles(3), *y = sp_mem_doubles(3);
    memcpy(g, v[t], sizeof v[t]);
    for (int i = 0; i < 3; i++) x[i] = y[i] = i + 1;
    sp_frame_add_numeric(f, "g", g, NULL);
    sp_frame_add_numeric(f, "x", x, NULL);
    sp_frame_add_numeric(f, "y", y, NULL);
    sp_formula *fm = NULL;
    sp_formula_parse("y ~ i(g, x) | g", &fm, &err);
    sp_design *d = NULL;
    int st = sp_design_plan(f, fm, NULL, &d, &err);
    int ok = st == SP_OK && d->fe[0].nlevels == 2 && memcmp(d->fe[0].code, want[t], sizeof want[t]) == 0 && d->k == 2;
    int zero = 0;
    for (size_t j = 0; ok && j < d->k; j++) {
      zero |= strcmp(d->names[j], "g::0:x") == 0;
      ok = strstr(d->names[j], "-0") == NULL;
    }
    char what[96];
    snprintf(what, sizeof what, "-0 and 0 one level, case %d: codes %d %d %d, dummy g::0:x", t + 1, want[t][0],
             want[t][1], want[t][2]);
    check(ok && zero, what);
    sp_formula_free(fm);
    sp_design_free(d);
    sp_frame_free(f);
  }
}

static void test_extras_and_fill(const sp_frame *f) {
  const char *extra[] = {"huge", "gaps", "dense"};
  built b1 = build(f, "y ~ x + frac | dense + gaps", extra, 3, 1, 1);
  built b2 = build(f, "y ~ x + frac | dense + gaps", extra, 3, 2, 1);
  built s1 = build(f, "y ~ x + frac | dense + gaps", extra, 3, 1, 0);
  int ok = b1.st == SP_OK && b2.st == SP_OK && s1.st == SP_OK;
  int same = ok && b1.d->nextra == 3;
  for (size_t j = 0; same && j < 3; j++) same = same_factor(&b1.d->extra[j], &b2.d->extra[j], b1.d->n);
  check(same, "extras (hash-coded, gapped, shared with a fixed effect): values and codes at 1 and 2 threads");
  static size_t rows[N];
  size_t n = 0;
  for (size_t r = 0; r < N; r++)
    if (isfinite(col[Y][r]) && isfinite(col[X][r])) rows[n++] = r;
  int vals = ok && b1.d->n == n;
  for (size_t i = 0; vals && i < n; i++) vals = b1.d->extra[0].num[i] == col[HUGE][rows[i]];
  check(vals, "an extra's values are the used rows' values");
  check(ok && same_matrix(ym(&b1), ym(&s1)) && same_matrix(Xm(&b1), Xm(&s1)) && same_matrix(Xm(&b1), Xm(&b2)),
        "y and X side by side in one block (one pass) equal y and X filled separately");
  check(ok && b1.d->extra[2].code == b1.d->fe[0].code, "an extra that is a fixed effect shares its codes");
  int vx = ok;
  for (size_t i = 0; vx && i < n; i++)
    vx = gsl_matrix_get(Xm(&b2), i, 0) == col[X][rows[i]] && gsl_matrix_get(Xm(&b2), i, 1) == col[FRAC][rows[i]] &&
         gsl_matrix_get(ym(&b2), i, 0) == col[Y][rows[i]];
  check(vx, "two threads: y and X are the frame's values of the used rows");
  release(&b1);
  release(&b2);
  release(&s1);
  built c1 = build(f, "y ~ x | dense^gaps", NULL, 0, 1, 1), c2 = build(f, "y ~ x | dense^gaps", NULL, 0, 2, 1);
  check(c1.st == SP_OK && c2.st == SP_OK && same_factor(&c1.d->fe[0], &c2.d->fe[0], c1.d->n),
        "combined fixed effect dense^gaps: the same codes at 1 and 2 threads");
  release(&c1);
  release(&c2);
}

static void test_threads_option(const sp_frame *f) {
  for (int t = -1; t <= 3; t += 4) {
    sp_error err;
    sp_error_clear(&err);
    sp_formula *fm = NULL;
    sp_formula_parse("y ~ x", &fm, &err);
    sp_design_options opt;
    sp_design_options_init(&opt);
    opt.threads = t;
    sp_design *d = NULL;
    int st = sp_design_plan(f, fm, &opt, &d, &err);
    char what[96];
    snprintf(what, sizeof what, "threads = %d is refused, naming the option", t);
    check(st == SP_EVALUE && d == NULL && strstr(err.msg, "threads") != NULL, what);
    sp_formula_free(fm);
  }
}

/* The mask pass writes a chunk's mask only from its first missing value on
   (zeroing the chunk's earlier blocks then), and not at all in a chunk
   without one: with the mask taken dirty from the block cache, missing
   values only in later blocks must still drop exactly their rows, whether
   chunk 0 has some (gone[0]) or none. */
static void test_mask_late_missing(void) {
  enum { M = 1200001 };  /* 1 MB or more: the mask comes from sp_mem's cache */
  const size_t gone[] = {100000, 900000, M - 1};  /* chunk 0's 13th block, chunk 1's 37th, the last row */
  for (int from = 0; from < 2; from++) {
    void *junk = sp_mem_alloc(M);
    memset(junk, 0xff, M);
    sp_mem_free(junk);
    sp_error err;
    sp_error_clear(&err);
    sp_frame *f = sp_frame_new(M, &err);
    double *y = sp_mem_doubles(M), *x = sp_mem_doubles(M);
    for (size_t r = 0; r < M; r++) {
      y[r] = (double)(r % 7);
      x[r] = (double)(r % 11);
    }
    for (size_t i = from; i < 3; i++) y[gone[i]] = NAN;
    sp_frame_add_numeric(f, "y", y, NULL);
    sp_frame_add_numeric(f, "x", x, NULL);
    for (int threads = 1; threads <= 2; threads++) {
      built b = build(f, "y ~ x", NULL, 0, threads, 1);
      size_t ng = 3 - (size_t)from;
      int ok = b.st == SP_OK && b.d->n == M - ng && b.d->dropped_missing == ng && b.d->rows != NULL;
      for (size_t i = 0, g = from; ok && i < b.d->n; i++) {
        while (g < 3 && i + g - from == gone[g]) g++;
        ok = b.d->rows[i] == i + g - from;
      }
      char what[160];
      snprintf(what, sizeof what, "missing values only in late blocks%s, mask memory dirty, %d thread(s): the rows",
               from ? " of chunk 1" : "", threads);
      check(ok, what);
      release(&b);
    }
    sp_frame_free(f);
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);  /* the lines so far, should a broken path crash */
  sp_frame *f = make_frame();
  test_codes(f);
  test_signed_zero();
  test_extras_and_fill(f);
  test_threads_option(f);
  sp_frame_free(f);
  test_mask_late_missing();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
