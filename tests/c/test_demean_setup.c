/*
** test_demean_setup.c: the fused set-up passes of the HDFE kernel against
** plain references: sp_fe_dof (one pass: levels seen and the union of each
** row's two levels, carrying the factor-0 root) against the textbook count,
** sp_fe_nested's shortcut for a cluster that is the fixed effect itself, the
** block-wise code check (the row of the first bad code), and sp_demean_new's
** unweighted counts (row counts and total taken from the level sums) against
** unit weights, which count row by row: the demeaned values must agree bit
** for bit, at 1 and 2 threads.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/demean.h"
#include "spillover/mem.h"
#include "testlib.h"


static size_t ref_find(size_t *p, size_t a) {
  while (p[a] != a) a = p[a];
  return a;
}

/* The definition: non-empty levels per factor (minus one beyond the second),
   minus the connected components of the first two factors' graph. */
static size_t ref_dof(size_t n, size_t nfe, int32_t **codes, const size_t *L, const unsigned char *keep,
                      size_t *ncomp) {
  size_t total = 0;
  for (size_t k = 0; k < nfe; k++) {
    unsigned char *seen = calloc(L[k], 1);
    size_t ne = 0;
    for (size_t r = 0; r < n; r++)
      if ((!keep || keep[r]) && !seen[codes[k][r]]) {
        seen[codes[k][r]] = 1;
        ne++;
      }
    total += k >= 2 && ne ? ne - 1 : ne;
    free(seen);
  }
  *ncomp = 0;
  if (nfe < 2) return total;
  size_t m = L[0] + L[1];
  size_t *p = malloc(m * sizeof *p);
  unsigned char *used = calloc(m, 1);
  for (size_t i = 0; i < m; i++) p[i] = i;
  for (size_t r = 0; r < n; r++)
    if (!keep || keep[r]) {
      size_t a = ref_find(p, (size_t)codes[0][r]), b = ref_find(p, L[0] + (size_t)codes[1][r]);
      used[codes[0][r]] = used[L[0] + codes[1][r]] = 1;
      if (a != b) p[b] = a;
    }
  for (size_t i = 0; i < m; i++) *ncomp += used[i] && ref_find(p, i) == i;
  free(p);
  free(used);
  return total - *ncomp;
}

static void test_dof_random(void) {
  enum { N = 30000 };
  static int32_t c0[N], c1[N], c2[N];
  int32_t *codes[3] = {c0, c1, c2};
  static unsigned char keep[N];
  /* Shapes: sorted panel, shuffled panel, many small components, sparse
     graph, and sorted runs whose first ten see every level of factor 1 in
     two components (even entities the levels 0-14, odd ones 15-29), joined
     only later and inside runs (sp_fe_dof passes over a run's other rows
     only once all it has seen is one component). */
  for (int shape = 0; shape < 5; shape++) {
    size_t L[3];
    for (size_t r = 0; r < N; r++) {
      switch (shape) {
        case 0: c0[r] = (int32_t)(r / 30); c1[r] = (int32_t)(r % 30); break;
        case 1: c0[r] = irand(1000); c1[r] = irand(30); break;
        case 2: c0[r] = irand(3000); c1[r] = c0[r] % 50 * 4 + irand(2); break;  /* 50+ components */
        case 3: c0[r] = irand(20000); c1[r] = irand(15000); break;
        default:
          c0[r] = (int32_t)(r / 30);
          c1[r] = r / 30 < 10 ? (int32_t)(c0[r] % 2 * 15 + r % 15) : irand(30);
          break;
      }
      c2[r] = irand(7);
      keep[r] = urand() > 0.2;
    }
    L[0] = shape == 2 ? 3000 : shape == 3 ? 20000 : 1000;
    L[1] = shape == 2 ? 200 : shape == 3 ? 15000 : 30;
    L[2] = 9;  /* two empty levels */
    for (int usekeep = 0; usekeep < 2; usekeep++)
      for (size_t nfe = 1; nfe <= 3; nfe++) {
        size_t want_c = 0, want = ref_dof(N, nfe, codes, L, usekeep ? keep : NULL, &want_c);
        size_t dof = 0, nc = 99;
        sp_error err;
        int st = sp_fe_dof(N, nfe, (const int32_t *const *)codes, L, usekeep ? keep : NULL, &dof, &nc, &err);
        char name[128];
        snprintf(name, sizeof name, "dof: shape %d, %zu factor(s), %s: %zu absorbed, %zu components", shape, nfe,
                 usekeep ? "keep" : "all rows", want, want_c);
        check(name, st == SP_OK && dof == want && nc == want_c);
        if (usekeep) continue;
        /* The workspace's count, from its own codes: the same, also when it
           puts another factor first (its order is by levels).  Factors 1,
           2, 0: the workspace pairs 0 with 1, the count 1 with 2, which
           differ in shape 2 (many components of 0 and 1). */
        int32_t *rot[3] = {codes[1], codes[2], codes[0]};
        size_t Lr[3] = {L[1], L[2], L[0]};
        if (nfe == 2) {
          rot[1] = codes[0];
          Lr[1] = L[0];
        }
        for (int order = 0; order < 2; order++) {
          int32_t **cs = order ? rot : codes;
          size_t *Ls = order ? Lr : L;
          size_t wd = 0, wc = 99, rd = 0, rc = 99;
          sp_demean_ws *ws = sp_demean_new(N, nfe, (const int32_t *const *)cs, Ls, NULL, 1, &err);
          int ok = ws != NULL && sp_demean_dof(ws, &wd, &wc, &err) == SP_OK &&
                   sp_fe_dof(N, nfe, (const int32_t *const *)cs, Ls, NULL, &rd, &rc, &err) == SP_OK &&
                   wd == rd && wc == rc;
          sp_demean_free(ws);
          snprintf(name, sizeof name, "sp_demean_dof == sp_fe_dof: shape %d, %zu factor(s), %s order", shape, nfe,
                   order ? "rotated" : "given");
          check(name, ok);
        }
      }
  }
}

static void test_nested_same(void) {
  int32_t fe[6] = {0, 0, 1, 1, 2, 2}, copy[6] = {0, 0, 1, 1, 2, 2}, other[6] = {0, 1, 0, 1, 0, 1};
  int nested = -1;
  sp_error err;
  int st = sp_fe_nested(6, fe, 3, fe, 3, NULL, &nested, &err);
  check("nested: a fixed effect in itself (one code array)", st == SP_OK && nested == 1);
  st = sp_fe_nested(6, fe, 3, copy, 3, NULL, &nested, &err);
  check("nested: a fixed effect in an equal copy", st == SP_OK && nested == 1);
  st = sp_fe_nested(6, other, 2, fe, 3, NULL, &nested, &err);
  check("nested: a crossing factor is not nested", st == SP_OK && nested == 0);
  int32_t bad[6] = {0, 0, 1, 3, 2, 2};
  st = sp_fe_nested(6, bad, 3, bad, 3, NULL, &nested, &err);
  check("nested: the shortcut still checks the codes (row 4: code 3)",
        st == SP_EVALUE && strstr(err.msg, "row 4: code 3") != NULL);
}

static void test_bad_code_rows(void) {
  enum { N = 10000 };
  static int32_t c[N], d[N];
  for (size_t r = 0; r < N; r++) c[r] = d[r] = (int32_t)(r % 10);
  const size_t L[2] = {10, 10};
  const int32_t *cs[2] = {c, d};
  size_t at[3] = {0, 4095, 9999};  /* first row, a block's last row, the tail */
  int32_t val[3] = {-1, 10, INT32_MIN};
  for (int t = 0; t < 3; t++) {
    d[at[t]] = val[t];
    sp_error err;
    sp_demean_ws *ws = sp_demean_new(N, 2, cs, L, NULL, 1, &err);
    char want[96], name[160];
    snprintf(want, sizeof want, "fixed effect 2, row %zu: code %d outside 0..9", at[t] + 1, (int)val[t]);
    snprintf(name, sizeof name, "bad code found: %s", want);
    check(name, ws == NULL && err.code == SP_EVALUE && strstr(err.msg, want) != NULL);
    sp_demean_free(ws);
    d[at[t]] = (int32_t)(at[t] % 10);
  }
  sp_error err;
  sp_demean_ws *ws = sp_demean_new(N, 2, cs, L, NULL, 1, &err);
  check("valid codes pass the check", ws != NULL);
  sp_demean_free(ws);
  /* The factor the workspace puts first (most levels), and the dof passes:
     a bad code is an error even in a row that keep leaves out. */
  static unsigned char keep[N];
  memset(keep, 1, sizeof keep);
  keep[7000] = 0;
  const int32_t *c3[3] = {c, d, c};
  const size_t L3[3] = {10, 10, 10};
  for (int f = 0; f < 3; f++) {
    int32_t *bad = f == 1 ? d : c;
    bad[7000] = 12;
    char want[96], name[192];
    snprintf(want, sizeof want, "fixed effect %d, row 7001: code 12 outside 0..9", f == 1 ? 2 : 1);
    ws = sp_demean_new(N, 2, cs, L, NULL, 1, &err);
    snprintf(name, sizeof name, "bad code in factor %d found by sp_demean_new", f == 1 ? 2 : 1);
    check(name, ws == NULL && strstr(err.msg, want) != NULL);
    for (size_t nfe = 1; nfe <= 3; nfe++) {
      size_t dof = 0;
      int st = sp_fe_dof(N, nfe, c3, L3, keep, &dof, NULL, &err);
      int expect_err = f != 1 || nfe >= 2;
      snprintf(name, sizeof name, "sp_fe_dof, %zu factor(s), bad code in factor %d of a row keep leaves out: %s", nfe,
               f == 1 ? 2 : 1, expect_err ? "error" : "fine");
      check(name, expect_err ? st == SP_EVALUE && strstr(err.msg, want) != NULL : st == SP_OK);
    }
    bad[7000] = 0;
  }
  const int32_t *c3b[3] = {c, c, d};
  d[8191] = 10;
  size_t dof = 0;
  int st = sp_fe_dof(N, 3, c3b, L3, NULL, &dof, NULL, &err);
  check("sp_fe_dof: a bad code in a third factor", st == SP_EVALUE && strstr(err.msg, "fixed effect 3, row 8192: code 10") != NULL);
  d[8191] = (int32_t)(8191 % 10);
}

static void test_unweighted_counts(void) {
  enum { N = 5000, P = 3 };
  static int32_t c0[N], c1[N], c2[N];
  static double w1[N], data[N * P], a[N * P], b[N * P];
  for (int sorted = 0; sorted < 2; sorted++) {
    for (size_t r = 0; r < N; r++) {
      c0[r] = sorted ? (int32_t)(r / 25) : irand(200);
      c1[r] = irand(25);
      c2[r] = irand(40);
      w1[r] = 1.0;
      for (size_t j = 0; j < P; j++) data[r * P + j] = urand() * 10 - 3 + c0[r] * 0.1 + c1[r];
    }
    const int32_t *cs[3] = {c0, c1, c2};
    const size_t L[3] = {200, 25, 40};
    for (size_t nfe = 2; nfe <= 3; nfe++)
      for (int th = 1; th <= 2; th++) {
        sp_error err;
        sp_demean_ws *u = sp_demean_new(N, nfe, cs, L, NULL, 1, &err), *w = sp_demean_new(N, nfe, cs, L, w1, 1, &err);
        sp_demean_options opt;
        sp_demean_options_init(&opt);
        opt.threads = th;
        memcpy(a, data, sizeof a);
        memcpy(b, data, sizeof b);
        int st1 = sp_demean_run(u, a, N, P, P, &opt, NULL, &err), st2 = sp_demean_run(w, b, N, P, P, &opt, NULL, &err);
        char name[128];
        snprintf(name, sizeof name, "%s factor 0, %zu factors, %d thread(s): unweighted = unit weights, bit for bit",
                 sorted ? "sorted" : "unsorted", nfe, th);
        check(name, u && w && st1 == SP_OK && st2 == SP_OK && memcmp(a, b, sizeof a) == 0);
        sp_demean_free(u);
        sp_demean_free(w);
      }
  }
}

/* Two threads: sp_demean_new counts the dof on the second thread while the
   first checks the codes.  The same dof as sp_fe_dof; a bad code (negative,
   or past the levels, where the count must not index) is the same error. */
static void test_two_threads(void) {
  enum { N = 150000 };  /* above SP_TEAM_MIN_ROWS */
  static int32_t c0[N], c1[N], c2[N];
  const int32_t *cs[3] = {c0, c1, c2};
  const size_t L[3] = {5000, 60, 7};
  for (size_t r = 0; r < N; r++) {
    c0[r] = (int32_t)(r / 30);
    c1[r] = irand(60) / 2 * 2 + (c0[r] % 2);  /* two components of factors 0 and 1 */
    c2[r] = irand(7);
  }
  for (size_t nfe = 1; nfe <= 3; nfe++) {
    sp_error err;
    size_t d1 = 0, n1 = 0, d2 = 0, n2 = 0;
    sp_demean_ws *ws = sp_demean_new(N, nfe, cs, L, NULL, 2, &err);
    int ok = ws != NULL && sp_demean_dof(ws, &d2, &n2, &err) == SP_OK &&
             sp_fe_dof(N, nfe, cs, L, NULL, &d1, &n1, &err) == SP_OK && d1 == d2 && n1 == n2;
    sp_demean_free(ws);
    char name[96];
    snprintf(name, sizeof name, "two threads, %zu factor(s): dof %zu, %zu components, as sp_fe_dof", nfe, d1, n1);
    check(name, ok && (nfe < 2 || n1 == 2));
  }
  int32_t bad[2] = {-5, 1 << 30};
  for (int b = 0; b < 2; b++) {
    for (int f = 0; f < 3; f++) {
      int32_t *c = (int32_t *)cs[f], keep = c[N - 3];
      c[N - 3] = bad[b];
      sp_error err;
      sp_demean_ws *ws = sp_demean_new(N, 3, cs, L, NULL, 2, &err);
      char want[96], name[160];
      snprintf(want, sizeof want, "fixed effect %d, row %d: code %d outside", f + 1, N - 2, (int)bad[b]);
      snprintf(name, sizeof name, "two threads, bad code: %s", want);
      check(name, ws == NULL && strstr(err.msg, want) != NULL);
      sp_demean_free(ws);
      c[N - 3] = keep;
    }
  }
}

/* Two threads at scale (above SP_TEAM_MIN_ROWS), unweighted: the workspace
   must demean as one thread's does and as unit weights' (summed, not
   counted), bit for bit, with factor 0 sorted, unsorted, and sorted in two
   runs (down once, at row MID).  Bad codes at two rows: the first is
   reported. */
static void test_two_thread_workspace(void) {
  enum { N = 160000, P = 2, MID = N - N * 3 / 8 };
  static int32_t c0[N], c1[N], c2[N];
  static double w1[N], data[N * P], a[N * P], b[N * P], c[N * P];
  const int32_t *cs[3] = {c0, c1, c2};
  const size_t L[3] = {6000, 50, 9};
  static const char *const shape[] = {"sorted", "unsorted", "sorted in two runs"};
  for (int sh = 0; sh < 3; sh++) {
    for (size_t r = 0; r < N; r++) {
      c0[r] = sh == 0 ? (int32_t)(r / 27) : sh == 1 ? irand(6000) : (int32_t)((r < MID ? r : r - MID) / 27);
      c1[r] = irand(50);
      c2[r] = irand(9);
      w1[r] = 1.0;
      for (size_t j = 0; j < P; j++) data[r * P + j] = urand() * 4 + c0[r] * 0.001 + c1[r] * 0.1;
    }
    for (size_t nfe = 2; nfe <= 3; nfe++) {
      sp_error err;
      sp_demean_ws *one = sp_demean_new(N, nfe, cs, L, NULL, 1, &err);
      sp_demean_ws *two = sp_demean_new(N, nfe, cs, L, NULL, 2, &err);
      sp_demean_ws *unit = sp_demean_new(N, nfe, cs, L, w1, 2, &err);
      sp_demean_options opt;
      sp_demean_options_init(&opt);
      memcpy(a, data, sizeof a);
      memcpy(b, data, sizeof b);
      memcpy(c, data, sizeof c);
      int ok = one && two && unit && sp_demean_run(one, a, N, P, P, &opt, NULL, &err) == SP_OK &&
               sp_demean_run(two, b, N, P, P, &opt, NULL, &err) == SP_OK &&
               sp_demean_run(unit, c, N, P, P, &opt, NULL, &err) == SP_OK && memcmp(a, b, sizeof a) == 0 &&
               memcmp(a, c, sizeof a) == 0;
      char name[160];
      snprintf(name, sizeof name, "two threads, factor 0 %s, %zu factors: as one thread's and unit weights', bit for bit",
               shape[sh], nfe);
      check(name, ok);
      sp_demean_free(one);
      sp_demean_free(two);
      sp_demean_free(unit);
    }
  }
  /* Many levels: the workspace's counts and sums (one block of 1.3 MB) come
     from sp_mem's cache, and must be cleared.  The cache is filled first with
     blocks of that size holding all-ones bytes (NaN sums, huge counts), then
     with zeros: the two workspaces must demean alike. */
  {
    const size_t Lb[2] = {N / 3 + 1, 50};
    size_t bytes = (Lb[0] + 1 + 2 * (Lb[0] + Lb[1])) * sizeof(double);
    for (size_t r = 0; r < N; r++) c0[r] = (int32_t)(r / 3);
    int ok = 1;
    for (int rep = 0; rep < 2; rep++) {
      void *junk[8];
      for (int i = 0; i < 8; i++) {
        junk[i] = sp_mem_alloc(bytes);
        if (junk[i] != NULL) memset(junk[i], rep ? 0x00 : 0xff, bytes);
      }
      for (int i = 0; i < 8; i++) sp_mem_free(junk[i]);
      sp_error err;
      sp_demean_ws *ws = sp_demean_new(N, 2, cs, Lb, NULL, 1, &err);
      sp_demean_options opt;
      sp_demean_options_init(&opt);
      double *out = rep ? b : a;
      memcpy(out, data, sizeof a);
      ok &= ws != NULL && sp_demean_run(ws, out, N, P, P, &opt, NULL, &err) == SP_OK;
      sp_demean_free(ws);
    }
    check("a workspace from a dirty block cache: cleared, it demeans as from a clean one",
          ok && memcmp(a, b, sizeof a) == 0);
    for (size_t r = 0; r < N; r++) c0[r] = (int32_t)((r < MID ? r : r - MID) / 27);
  }
  for (int first = 0; first < 2; first++) {  /* a bad code at row MID, and one before it too */
    int32_t keep0 = c1[1000], keep1 = c1[MID];
    c1[MID] = 50;
    if (first) c1[1000] = -1;
    sp_error err;
    sp_demean_ws *ws = sp_demean_new(N, 3, cs, L, NULL, 2, &err);
    char want[96], name[160];
    snprintf(want, sizeof want, "fixed effect 2, row %d: code %d outside", first ? 1001 : MID + 1, first ? -1 : 50);
    snprintf(name, sizeof name, "two threads, bad code%s: %s", first ? "s at two rows" : "", want);
    check(name, ws == NULL && strstr(err.msg, want) != NULL);
    sp_demean_free(ws);
    c1[1000] = keep0;
    c1[MID] = keep1;
  }
}

int main(void) {
  rng_state = 0x2545F4914F6CDD1DULL;  /* the cases were drawn from this seed */
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_dof_random();
  test_nested_same();
  test_bad_code_rows();
  test_unweighted_counts();
  test_two_threads();
  test_two_thread_workspace();
  printf("%d passed, %d failed\n", npass, nfail);
  return nfail ? 1 : 0;
}
