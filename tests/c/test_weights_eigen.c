/* test_weights_eigen.c: the eigenvalues of weights similar to a symmetric
   matrix (the band solver after the reverse Cuthill-McKee numbering, or the
   dense two-stage solver for wide bands) equal LAPACK's general dgeev on the
   dense W to 1e-10: row-standardised symmetric nearest neighbours, several
   components with islands, a grid, inverse distances between every pair,
   and a row rescaling that is not row-standardised. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/weights.h"  /* before lapacke.h, whose complex.h defines I, a field here */
#include <lapacke.h>

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

static uint64_t state = 7;
static double unif(void) {
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return (double)((state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : (x > y);
}

/* max |lambda - dgeev's lambda| over the sorted spectra; dgeev's imaginary
   parts must vanish too (to 1e-10), since the spectrum is real. */
static double vs_dgeev(const sp_weights *W) {
  size_t n = W->n;
  double *A = malloc(n * n * sizeof *A), *re = malloc(n * sizeof *re), *im = malloc(n * sizeof *im);
  double *gr = malloc(n * sizeof *gr), *gi = malloc(n * sizeof *gi), *s = malloc(n * sizeof *s);
  double worst = INFINITY;
  sp_error err;
  sp_error_clear(&err);
  if (!sp_weights_similar_symmetric(W, s)) {
    printf("  not similar to a symmetric matrix\n");
    goto done;
  }
  if (sp_weights_eigenvalues(W, re, im, &err) != SP_OK) { printf("  %s\n", err.msg); goto done; }
  sp_weights_dense(W, A);
  if (LAPACKE_dgeev(LAPACK_ROW_MAJOR, 'N', 'N', (lapack_int)n, A, (lapack_int)n, gr, gi, NULL, 1, NULL, 1) != 0) goto done;
  qsort(gr, n, sizeof *gr, by_value);
  worst = 0;
  for (size_t i = 0; i < n; i++) {
    worst = fmax(worst, fabs(re[i] - gr[i]));
    worst = fmax(worst, fabs(im[i]));
    worst = fmax(worst, fabs(gi[i]));
    if (i > 0 && re[i] < re[i - 1]) worst = INFINITY;  /* sorted */
  }
  printf("  n = %zu: max difference %.3g\n", n, worst);
done:
  free(A); free(re); free(im); free(gr); free(gi); free(s);
  return worst;
}

/* Symmetric k nearest neighbours (the union) of n random points, in style. */
static sp_weights *sym_knn(size_t n, size_t k, char style, int zero_policy, size_t islands) {
  double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  for (size_t i = 0; i < n; i++) { x[i] = unif(); y[i] = unif(); }
  sp_weights *K = NULL, *W = NULL;
  sp_error err;
  sp_error_clear(&err);
  sp_weights_knn(n, x, y, k, 0, &K, &err);
  size_t m = 0, *fi = malloc(2 * K->nnz * sizeof *fi), *ti = malloc(2 * K->nnz * sizeof *ti);
  for (size_t i = 0; i < n; i++)
    for (size_t p = K->rowptr[i]; p < K->rowptr[i + 1]; p++) {
      size_t j = K->col[p];
      if (i < islands || j < islands) continue;  /* the first units lose their links */
      fi[m] = i; ti[m] = j; m++;
      fi[m] = j; ti[m] = i; m++;
    }
  sp_weights_from_links(n, fi, ti, NULL, m, &W, &err);
  sp_weights_set_style(W, style, zero_policy, &err);
  sp_weights_free(K);
  free(x); free(y); free(fi); free(ti);
  return W;
}

int main(void) {
  sp_error err;
  sp_error_clear(&err);

  sp_weights *W = sym_knn(800, 6, 'W', 0, 0);
  check(vs_dgeev(W) <= 1e-10, "row-standardised symmetric kNN (a narrow band): dgeev's eigenvalues to 1e-10");
  sp_weights_free(W);

  W = sym_knn(500, 4, 'W', 1, 7);
  check(vs_dgeev(W) <= 1e-10, "kNN with 7 islands (zero_policy) and several components");
  sp_weights_free(W);

  W = sym_knn(400, 5, 'C', 0, 0);
  check(vs_dgeev(W) <= 1e-10, "style C (symmetric itself)");
  sp_weights_free(W);

  /* a 30 x 20 rook grid, row-standardised: eigenvalues cos(a) + cos(b) mixes */
  {
    size_t n = 600, m = 0, fi[2400], ti[2400];
    for (size_t r = 0; r < 20; r++)
      for (size_t c = 0; c < 30; c++) {
        size_t u = r * 30 + c;
        if (c + 1 < 30) { fi[m] = u; ti[m] = u + 1; m++; fi[m] = u + 1; ti[m] = u; m++; }
        if (r + 1 < 20) { fi[m] = u; ti[m] = u + 30; m++; fi[m] = u + 30; ti[m] = u; m++; }
      }
    sp_weights_from_links(n, fi, ti, NULL, m, &W, &err);
    sp_weights_set_style(W, 'W', 0, &err);
    check(vs_dgeev(W) <= 1e-10, "row-standardised rook grid");
    sp_weights_free(W);
  }

  /* every pair (a full band: the dense two-stage solver) */
  {
    size_t n = 300;
    double x[300], y[300];
    for (size_t i = 0; i < n; i++) { x[i] = unif(); y[i] = unif(); }
    sp_weights_distance(n, x, y, 2, 0, 0, &W, &err);
    sp_weights_set_style(W, 'W', 0, &err);
    check(vs_dgeev(W) <= 1e-10, "row-standardised inverse squared distances between every pair (dense)");
    sp_weights_free(W);
  }

  /* a row rescaling that is not row-standardised: W = D^-1 C with D random */
  {
    sp_weights *C = sym_knn(300, 5, 'B', 0, 0);
    size_t *ti = malloc(C->nnz * sizeof *ti), *tj = malloc(C->nnz * sizeof *tj);
    double *tx = malloc(C->nnz * sizeof *tx);
    for (size_t i = 0; i < C->n; i++) {
      double d = 0.5 + unif();
      for (size_t p = C->rowptr[i]; p < C->rowptr[i + 1]; p++) {
        ti[p] = i; tj[p] = C->col[p]; tx[p] = (1 + (double)((i + C->col[p]) % 3)) / d;  /* c_ij symmetric */
      }
    }
    sp_weights_from_triplets(C->n, C->nnz, ti, tj, tx, &W, &err);
    check(vs_dgeev(W) <= 1e-10, "W = D^-1 C, C symmetric, D arbitrary");
    sp_weights_free(W);
    sp_weights_free(C);
    free(ti); free(tj); free(tx);
  }

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
