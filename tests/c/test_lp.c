/* test_lp.c: the batched LP layer over GLPK: a textbook LP and its duals,
   infeasible and unbounded problems as statuses (not errors), varying
   columns / right-hand sides / objectives / fixed columns against the same
   problems solved one at a time, identical results at any thread count, and
   the documented errors (nothing printed, nothing aborted). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/lp.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

static void near(double got, double want, double tol, const char *what) {
  int ok = fabs(got - want) <= tol;
  if (!ok) printf("  got %.17g want %.17g\n", got, want);
  check(ok, what);
}

/* max x + y s.t. x + 2y <= 4, 3x + y <= 6: x = 1.6, y = 1.2, value 2.8,
   duals 0.4 and 0.2 (and 4 * 0.4 + 6 * 0.2 = 2.8: strong duality). */
static void textbook(void) {
  double A[] = {1, 2, 3, 1}, rhs[] = {4, 6}, obj[] = {1, 1};
  sp_lp_batch b = {.m = 2, .n = 2, .count = 1, .A = A, .sense = "LL", .rhs = rhs, .obj = obj, .maximize = 1,
                   .threads = 1};
  double x[2], dual[2], value;
  int st;
  sp_lp_result r = {.x = x, .dual = dual, .value = &value, .status = &st};
  sp_error err;
  sp_error_clear(&err);
  check(sp_lp_solve_batch(&b, &r, &err) == SP_OK && st == SP_LP_OPTIMAL, "textbook LP solves");
  near(x[0], 1.6, 1e-12, "x");
  near(x[1], 1.2, 1e-12, "y");
  near(value, 2.8, 1e-12, "objective");
  near(dual[0], 0.4, 1e-12, "dual of row 1");
  near(dual[1], 0.2, 1e-12, "dual of row 2");
  near(rhs[0] * dual[0] + rhs[1] * dual[1], value, 1e-12, "primal = dual objective");
}

static void statuses(void) {
  /* x + y >= 1, maximise x + y: unbounded; x + y >= 2 and x + y <= 1: infeasible. */
  double A1[] = {1, 1}, r1[] = {1}, o[] = {1, 1};
  double x[2], value;
  int st;
  sp_lp_result r = {.x = x, .value = &value, .status = &st};
  sp_error err;
  sp_error_clear(&err);
  sp_lp_batch b = {.m = 1, .n = 2, .count = 1, .A = A1, .sense = "G", .rhs = r1, .obj = o, .maximize = 1, .threads = 1};
  check(sp_lp_solve_batch(&b, &r, &err) == SP_OK && st == SP_LP_UNBOUNDED, "unbounded is a status, not an error");
  check(isnan(value) && isnan(x[0]), "an unbounded problem gives NaN");
  /* max x0 with x0 free and in no constraint (an empty column): the dual
     simplex alone cannot classify it */
  double A3[] = {0, 1}, o3[] = {1, 0};
  double lb3[] = {-INFINITY, 0};
  sp_lp_batch b3 = {.m = 1, .n = 2, .count = 1, .A = A3, .sense = "L", .rhs = r1, .obj = o3, .lb = lb3, .maximize = 1,
                    .threads = 1};
  check(sp_lp_solve_batch(&b3, &r, &err) == SP_OK && st == SP_LP_UNBOUNDED, "a free empty column is unbounded");
  double A2[] = {1, 1, 1, 1}, r2[] = {2, 1};
  sp_lp_batch b2 = {.m = 2, .n = 2, .count = 1, .A = A2, .sense = "GL", .rhs = r2, .obj = o, .threads = 1};
  check(sp_lp_solve_batch(&b2, &r, &err) == SP_OK && st == SP_LP_INFEASIBLE, "infeasible is a status");
  check(strcmp(sp_lp_status_name(SP_LP_INFEASIBLE), "infeasible") == 0, "status names");
}

/* A DEA-like batch: count problems min theta s.t. theta x_o - sum l_j x_j >= 0,
   sum l_j y_j >= y_o, over n units, the theta column and the rhs varying, and
   half the problems excluding their own unit.  Solved as a batch (1 and 3
   threads) and one problem at a time. */
static void batch_vs_single(void) {
  enum { N = 150, M = 2 };
  double x[N], y[N];
  unsigned s = 12345;
  for (int j = 0; j < N; j++) {
    s = s * 1103515245u + 12345u;
    x[j] = 1 + (s >> 16) % 1000 / 100.0;
    s = s * 1103515245u + 12345u;
    y[j] = 1 + (s >> 16) % 1000 / 100.0;
  }
  size_t n = N + 1;
  double *A = calloc(M * n, sizeof *A), *colval = malloc(N * M * sizeof *colval);
  double *rhs = malloc(N * M * sizeof *rhs), *obj = calloc(n, sizeof *obj), *varobj = malloc(N * sizeof *varobj);
  long fix0[N];
  for (int j = 0; j < N; j++) {
    A[0 * n + 1 + j] = -x[j];
    A[1 * n + 1 + j] = y[j];
  }
  for (int k = 0; k < N; k++) {
    colval[k * M + 0] = x[k];
    colval[k * M + 1] = 0;
    rhs[k * M + 0] = 0;
    rhs[k * M + 1] = y[k];
    varobj[k] = 1 + k % 3;  /* a scaled objective: value = (1 + k % 3) theta */
    fix0[k] = k % 7 ? 1 + k : -1;  /* most problems exclude their own unit */
  }
  size_t vc[] = {0};
  sp_lp_batch b = {.m = M, .n = n, .count = N, .A = A, .sense = "GG", .obj = obj, .nvar = 1, .varcol = vc,
                   .colval = colval, .varobj = varobj, .prob_rhs = rhs, .fix0 = fix0, .threads = 1};
  double *v1 = malloc(N * sizeof *v1), *v3 = malloc(N * sizeof *v3), *x1 = malloc(N * n * sizeof *x1),
         *x3 = malloc(N * n * sizeof *x3);
  int st1[N], st3[N];
  sp_lp_result r1 = {.x = x1, .value = v1, .status = st1}, r3 = {.x = x3, .value = v3, .status = st3};
  sp_error err;
  sp_error_clear(&err);
  int rc1 = sp_lp_solve_batch(&b, &r1, &err);
  b.threads = 3;
  int rc3 = sp_lp_solve_batch(&b, &r3, &err);
  check(rc1 == SP_OK && rc3 == SP_OK, "batch of 150 DEA LPs with 1 and 3 threads");
  check(memcmp(v1, v3, N * sizeof *v1) == 0 && memcmp(x1, x3, N * n * sizeof *x1) == 0 &&
        memcmp(st1, st3, sizeof st1) == 0, "identical results at 1 and 3 threads (bitwise)");
  /* The same problems one by one: theta_k = max over j of ... is an LP;
     compare with a single-problem batch (a cold start each time). */
  double worst = 0;
  int super_gt1 = 0;
  for (int k = 0; k < N; k++) {
    double vk;
    int sk;
    sp_lp_batch one = b;
    one.count = 1;
    one.colval = colval + k * M;
    one.varobj = varobj + k;
    one.prob_rhs = rhs + k * M;
    one.fix0 = fix0 + k;
    one.threads = 1;
    sp_lp_result rk = {.value = &vk, .status = &sk};
    if (sp_lp_solve_batch(&one, &rk, &err) != SP_OK || sk != st1[k]) worst = INFINITY;
    else if (sk == SP_LP_OPTIMAL) worst = fmax(worst, fabs(vk - v1[k]));
    /* CRS with one input and output: theta = (y_o / x_o) / max_j (y_j / x_j) */
    double best = 0;
    for (int j = 0; j < N; j++)
      if (fix0[k] != 1 + j) best = fmax(best, y[j] / x[j]);
    if (fabs(v1[k] / varobj[k] - (y[k] / x[k]) / best) > 1e-9) worst = INFINITY;
    if (fix0[k] >= 0 && v1[k] / varobj[k] > 1 + 1e-12) super_gt1++;
  }
  check(worst < 1e-10, "warm-started batch = cold single solves = the closed form");
  check(super_gt1 >= 1, "excluding a unit's own column (fix0) allows scores above 1");
  free(A), free(colval), free(rhs), free(obj), free(varobj), free(v1), free(v3), free(x1), free(x3);
}

static void errors(void) {
  double A[] = {1, 1}, o[] = {1, 1};
  sp_lp_result r = {0};
  sp_error err;
  sp_lp_batch b = {.m = 1, .n = 2, .count = 1, .A = A, .sense = "X", .obj = o, .threads = 1};
  sp_error_clear(&err);
  check(sp_lp_solve_batch(&b, &r, &err) == SP_EVALUE && strstr(err.msg, "sense of row 1 is 'X'"), "bad sense");
  b.sense = "L";
  double bad[] = {1, NAN};
  b.A = bad;
  sp_error_clear(&err);
  check(sp_lp_solve_batch(&b, &r, &err) == SP_EVALUE && strstr(err.msg, "row 1, column 2"), "NaN coefficient named");
  b.A = A;
  size_t vc[] = {5};
  double cv[] = {1};
  b.nvar = 1, b.varcol = vc, b.colval = cv;
  sp_error_clear(&err);
  check(sp_lp_solve_batch(&b, &r, &err) == SP_EDIM && strstr(err.msg, "varying column 6"), "varying column out of range");
  b.nvar = 0;
  b.threads = 0;
  sp_error_clear(&err);
  check(sp_lp_solve_batch(&b, &r, &err) == SP_EVALUE, "threads = 0");
  b.threads = 1;
  b.m = 0;
  sp_error_clear(&err);
  check(sp_lp_solve_batch(&b, &r, &err) == SP_EDIM, "no constraints");
  b.m = 1;
  double lb[] = {1, 0}, ub[] = {0, 1};
  b.lb = lb, b.ub = ub;
  sp_error_clear(&err);
  check(sp_lp_solve_batch(&b, &r, &err) == SP_EVALUE && strstr(err.msg, "bounds of column 1"), "lb > ub");
  b.lb = b.ub = NULL;
  b.count = 0;
  check(sp_lp_solve_batch(&b, &r, &err) == SP_OK, "an empty batch is fine");
}

int main(void) {
  textbook();
  statuses();
  batch_vs_single();
  errors();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
