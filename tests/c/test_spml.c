/* test_spml: the C core of the ML spatial models on small hand-checkable cases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/spml.h"

static int passed = 0, failed = 0;

static void check(int ok, const char *what) {
  if (ok) { passed++; printf("PASS %s\n", what); }
  else { failed++; printf("FAIL %s\n", what); }
}

static void near(double got, double want, double tol, const char *what) {
  int ok = fabs(got - want) <= tol * fmax(1, fabs(want));
  if (!ok) printf("  got %.17g want %.17g\n", got, want);
  check(ok, what);
}

/* A ring of n units, row-standardised: eigenvalues cos(2 pi k / n). */
static sp_weights *ring(size_t n) {
  size_t i[64], j[64];
  double x[64];
  for (size_t r = 0; r < n; r++) {
    i[2 * r] = r; j[2 * r] = (r + 1) % n; x[2 * r] = 0.5;
    i[2 * r + 1] = r; j[2 * r + 1] = (r + n - 1) % n; x[2 * r + 1] = 0.5;
  }
  sp_weights *w = NULL;
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_from_triplets(n, 2 * n, i, j, x, &w, &err) != SP_OK) return NULL;
  return w;
}

int main(void) {
  sp_error err;
  sp_error_clear(&err);
  size_t n = 7;
  sp_weights *W = ring(n);
  check(W != NULL && W->nnz == 14, "ring: 14 links");

  /* duplicates are summed, out-of-range rejected */
  size_t di[3] = {0, 0, 1}, dj[3] = {1, 1, 0};
  double dx[3] = {0.25, 0.25, 1};
  sp_weights *D = NULL;
  check(sp_weights_from_triplets(2, 3, di, dj, dx, &D, &err) == SP_OK && D->nnz == 2 && D->val[0] == 0.5, "duplicates summed");
  sp_weights_free(D);
  size_t bi[1] = {5}, bj[1] = {0};
  double bx[1] = {1};
  check(sp_weights_from_triplets(2, 1, bi, bj, bx, &D, &err) == SP_EVALUE && strstr(err.msg, "indices below 2") != NULL,
        "index out of range is SP_EVALUE");

  /* cross-section sample */
  size_t unit[7], block[7];
  for (size_t r = 0; r < n; r++) { unit[r] = r; block[r] = 0; }
  sp_spml_sample *S = NULL;
  check(sp_spml_sample_new(W, n, unit, block, 1, 1, &S, &err) == SP_OK && S->ndistinct == 1 && S->row_stochastic,
        "sample of a cross-section");
  double rho = 0.37, exact = 0;
  for (size_t k = 0; k < n; k++) exact += log(1 - rho * cos(2 * M_PI * (double)k / (double)n));
  const int methods[4] = {SP_LOGDET_EIGEN, SP_LOGDET_LU, SP_LOGDET_MC, SP_LOGDET_CHEBYSHEV};
  const char *names[4] = {"eigen", "lu", "mc", "chebyshev"};
  /* rho = -1.05 is admissible (the interval starts at 1 / cos(6 pi / 7) = -1.11)
     but beyond -1, where the power series of W itself diverges */
  double rho_neg = -1.05, exact_neg = 0;
  for (size_t k = 0; k < n; k++) exact_neg += log(1 - rho_neg * cos(2 * M_PI * (double)k / (double)n));
  for (int m = 0; m < 4; m++) {
    sp_logdet_options o;
    sp_logdet_options_init(&o);
    o.method = methods[m];
    o.nvec = 400;
    o.order = 120;  /* the series converge slowly near the ends of the interval */
    sp_logdet *ld = NULL;
    char what[96];
    int st = sp_logdet_new(S, &o, &ld, &err);
    snprintf(what, sizeof what, "logdet %s: prepared", names[m]);
    check(st == SP_OK, what);
    if (st != SP_OK) continue;
    double v, d1, d2;
    sp_logdet_eval(ld, rho, &v, &d1, &d2, &err);
    snprintf(what, sizeof what, "logdet %s: value", names[m]);
    near(v, exact, m < 2 ? 1e-12 : 2e-2, what);
    double t[4];
    check(sp_logdet_traces(ld, rho, 100, 1, t, &err) == SP_OK, "traces computed");
    snprintf(what, sizeof what, "logdet %s: d1 = -tr(G)", names[m]);
    near(d1, -t[1], m < 2 ? 1e-12 : 2e-2, what);
    /* every method: the interval from the eigenvalues, and a log-determinant there */
    double lo, hi;
    sp_logdet_interval(ld, &lo, &hi);
    snprintf(what, sizeof what, "%s interval: upper 1 / max eigenvalue", names[m]);
    near(hi, 1, 1e-12, what);
    snprintf(what, sizeof what, "%s interval: lower 1 / min eigenvalue", names[m]);
    near(lo, 1 / cos(2 * M_PI * 3 / 7.0), 1e-12, what);
    snprintf(what, sizeof what, "logdet %s: value at rho = -1.05", names[m]);
    check(sp_logdet_eval(ld, rho_neg, &v, &d1, &d2, &err) == SP_OK, what);
    near(v, exact_neg, m < 2 ? 1e-12 : 2e-2, what);
    if (m >= 2) {
      /* the same expansion's traces at -1.05: tr(G) = -d1 of the exact logdet */
      double g1 = 0;
      for (size_t k = 0; k < n; k++) {
        double wk = cos(2 * M_PI * (double)k / (double)n);
        g1 += wk / (1 - rho_neg * wk);
      }
      check(sp_logdet_traces(ld, rho_neg, 0, 0, t, &err) == SP_OK, "traces by the series at rho = -1.05");
      snprintf(what, sizeof what, "%s: tr(G) at rho = -1.05", names[m]);
      near(t[1], g1, 2e-2, what);
    }
    if (m == 0) {
      /* tr(A) from a symmetric W: sum 1 / (1 - rho w) */
      double tA = 0;
      for (size_t k = 0; k < n; k++) tA += 1 / (1 - rho * cos(2 * M_PI * (double)k / (double)n));
      near(t[0], tA, 1e-12, "tr((I - rho W)^-1) from eigenvalues");
      near(t[3], t[2], 1e-12, "symmetric W: tr(G'G) = tr(G G)");
    }
    sp_logdet_free(ld);
  }

  /* solve */
  double b[7] = {1, 0, 0, 0, 0, 0, 0}, z[7], Wz[7];
  check(sp_weights_solve(S->Wn, rho, b, z, &err) == SP_OK, "solve converges");
  sp_weights_lag(S->Wn, z, Wz);
  double res = 0;
  for (size_t r = 0; r < n; r++) res = fmax(res, fabs(z[r] - rho * Wz[r] - b[r]));
  check(res < 1e-13, "solve: (I - rho W) z = b");
  check(sp_weights_solve(S->Wn, 1.5, b, z, &err) == SP_ECONV && strstr(err.msg, "did not converge") != NULL,
        "solve: divergence reported");
  /* Beyond -1 the iteration diverges; the sample's solve goes direct. */
  check(sp_weights_solve(S->Wn, rho_neg, b, z, &err) == SP_ECONV, "iterative solve fails at rho = -1.05");
  check(sp_spml_solve(S, rho_neg, b, z, &err) == SP_OK, "sample solve at rho = -1.05 (direct)");
  sp_weights_lag(S->Wn, z, Wz);
  res = 0;
  for (size_t r = 0; r < n; r++) res = fmax(res, fabs(z[r] - rho_neg * Wz[r] - b[r]));
  check(res < 1e-13, "direct solve: (I - rho W) z = b");

  /* A block above SP_SPML_DIRECT_MAX units: no direct fallback, a message that says why. */
  {
    size_t nb = SP_SPML_DIRECT_MAX + 1;
    size_t *bi_ = malloc(2 * nb * sizeof *bi_), *bj_ = malloc(2 * nb * sizeof *bj_), *bu = malloc(nb * sizeof *bu);
    size_t *bb = calloc(nb, sizeof *bb);
    double *bx_ = malloc(2 * nb * sizeof *bx_), *bv = calloc(nb, sizeof *bv), *bz = malloc(nb * sizeof *bz);
    sp_weights *R = NULL;
    sp_spml_sample *B = NULL;
    for (size_t r = 0; r < nb; r++) {
      bi_[2 * r] = bi_[2 * r + 1] = r;
      bj_[2 * r] = (r + 1) % nb;
      bj_[2 * r + 1] = (r + nb - 1) % nb;
      bx_[2 * r] = bx_[2 * r + 1] = 0.5;
      bu[r] = r;
    }
    bv[0] = 1;
    check(sp_weights_from_triplets(nb, 2 * nb, bi_, bj_, bx_, &R, &err) == SP_OK &&
          sp_spml_sample_new(R, nb, bu, bb, 1, 1, &B, &err) == SP_OK, "a ring of 2001 units");
    check(B != NULL && sp_spml_solve(B, rho_neg, bv, bz, &err) == SP_ECONV && strstr(err.msg, "too large for the direct solve") != NULL,
          "large block: no direct solve, and the message says so");
    sp_spml_sample_free(B);
    sp_weights_free(R);
    free(bi_); free(bj_); free(bu); free(bb); free(bx_); free(bv); free(bz);
  }

  /* a panel of 3 periods, unit 2 absent in period 1: two distinct blocks */
  size_t pu[20], pb[20], m = 0;
  for (size_t t = 0; t < 3; t++)
    for (size_t r = 0; r < n; r++)
      if (!(t == 1 && r == 2)) { pu[m] = r; pb[m] = t; m++; }
  sp_spml_sample *P = NULL;
  check(sp_spml_sample_new(W, m, pu, pb, 3, 1, &P, &err) == SP_OK && P->ndistinct == 2, "panel: 2 distinct blocks");
  check(P->row_stochastic && P->nempty == 0, "panel: restricted rows re-standardised");
  /* units 1 and 3 lose neighbour 2 in period 1: their only other neighbour gets weight 1 */
  size_t row_u1 = n + 1;  /* period 1 rows: 0, 1, 3, 4, 5, 6 -> unit 1 is row n + 1 */
  check(P->Wn->rowptr[row_u1 + 1] - P->Wn->rowptr[row_u1] == 1 && P->Wn->val[P->Wn->rowptr[row_u1]] == 1, "panel: absent neighbour dropped");
  /* the direct solve on two distinct blocks, shared by periods 0 and 2 */
  double pbv[20], pz[20], pw[20];
  for (size_t r = 0; r < m; r++) pbv[r] = sin((double)r + 1);
  check(sp_spml_solve(P, rho_neg, pbv, pz, &err) == SP_OK, "panel: direct solve at rho = -1.05");
  sp_weights_lag(P->Wn, pz, pw);
  res = 0;
  for (size_t r = 0; r < m; r++) res = fmax(res, fabs(pz[r] - rho_neg * pw[r] - pbv[r]));
  check(res < 1e-12, "panel: direct solve: (I - rho W) z = b in every period");
  sp_spml_sample_free(P);
  pu[1] = 0;
  check(sp_spml_sample_new(W, m, pu, pb, 3, 1, &P, &err) == SP_EDUP && strstr(err.msg, "appears twice") != NULL,
        "duplicate unit in a period is SP_EDUP");

  /* the lag likelihood: maximum where the score is zero */
  sp_logdet_options o;
  sp_logdet_options_init(&o);
  sp_logdet *ld = NULL;
  sp_logdet_new(S, &o, &ld, &err);
  sp_spml_problem p;
  memset(&p, 0, sizeof p);
  p.kind = SP_SPML_LAG;
  p.n = n;
  p.n_eff = (double)n;
  p.ld_factor = 1;
  p.ee[0] = 3; p.ee[1] = 1; p.ee[2] = 2;
  p.ld = ld;
  sp_logdet_interval(ld, &p.lower, &p.upper);
  sp_spml_result r;
  check(sp_spml_maximise(&p, &r, &err) == SP_OK, "maximise: lag");
  check(fabs(r.score) < 1e-10 && r.hess < 0, "maximise: score zero, curvature negative");
  double l1, l2, ssr;
  sp_spml_loglik(&p, r.rho + 1e-4, &l1, &ssr, &err);
  sp_spml_loglik(&p, r.rho - 1e-4, &l2, &ssr, &err);
  check(l1 < r.loglik && l2 < r.loglik, "maximise: a local maximum");
  p.lower = 1;
  p.upper = 1;
  check(sp_spml_maximise(&p, &r, &err) == SP_EVALUE && strstr(err.msg, "interval") != NULL, "empty interval rejected");
  sp_logdet_free(ld);

  sp_spml_sample_free(S);
  sp_weights_free(W);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
