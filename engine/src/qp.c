/*
** qp.c: minimum-norm point of a convex hull (Wolfe 1976); see qp.h.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/qp.h"

/* Weights at or below this are taken as 0 (rounding of the affine solve). */
#define QP_ZERO 1e-14

typedef struct {
  const double *P;
  size_t J, K;
  size_t *S;       /* corral: indices of points, at most K + 1 (+1 while adding) */
  double *lam;     /* convex weights of the corral */
  double *a;       /* affine minimiser of the corral (and the KKT multiplier) */
  double *A;       /* KKT system, (K + 3)^2 */
  double *x;       /* current point, K */
  size_t m;        /* corral size */
} qp_work;

static double dot(const double *u, const double *v, size_t K) {
  double s = 0.0;
  for (size_t k = 0; k < K; k++) s += u[k] * v[k];
  return s;
}

/* The affine combination a of the corral of least norm: the KKT system
   [G 1; 1' 0] [a; mu] = [0; 1], G the corral's Gram matrix, by Gaussian
   elimination with partial pivoting.  Returns 0 when a pivot vanishes
   (the corral is affinely dependent). */
static int affine_min(qp_work *q) {
  size_t m = q->m, n = m + 1, cols = n + 1;
  double *A = q->A;
  for (size_t i = 0; i < m; i++) {
    for (size_t j = 0; j <= i; j++) {
      double g = dot(q->P + q->S[i] * q->K, q->P + q->S[j] * q->K, q->K);
      A[i * cols + j] = g;
      A[j * cols + i] = g;
    }
    A[i * cols + m] = 1.0;
    A[m * cols + i] = 1.0;
    A[i * cols + n] = 0.0;
  }
  A[m * cols + m] = 0.0;
  A[m * cols + n] = 1.0;
  for (size_t c = 0; c < n; c++) {
    size_t piv = c;
    double best = fabs(A[c * cols + c]);
    for (size_t r = c + 1; r < n; r++)
      if (fabs(A[r * cols + c]) > best) { best = fabs(A[r * cols + c]); piv = r; }
    if (!(best > 1e-300)) return 0;
    if (piv != c)
      for (size_t j = 0; j < cols; j++) {
        double t = A[c * cols + j];
        A[c * cols + j] = A[piv * cols + j];
        A[piv * cols + j] = t;
      }
    for (size_t r = c + 1; r < n; r++) {
      double f = A[r * cols + c] / A[c * cols + c];
      if (f != 0.0)
        for (size_t j = c; j < cols; j++) A[r * cols + j] -= f * A[c * cols + j];
    }
  }
  /* back substitution into a[0..m] (a[m] is the multiplier, unused) */
  for (size_t i = n; i-- > 0;) {
    double s = A[i * cols + n];
    for (size_t j = i + 1; j < n; j++) s -= A[i * cols + j] * q->a[j];
    q->a[i] = s / A[i * cols + i];
  }
  return 1;
}

/* Minor cycles: from the weights lam of the corral, move towards its affine
   minimiser, dropping points whose weight reaches 0, until the minimiser
   lies inside the hull (then lam = a).  Returns 0 when the corral is
   affinely dependent. */
static int minor(qp_work *q) {
  for (;;) {
    if (!affine_min(q)) return 0;
    int inside = 1;
    for (size_t i = 0; i < q->m; i++)
      if (q->a[i] <= QP_ZERO) inside = 0;
    if (inside) {
      memcpy(q->lam, q->a, q->m * sizeof(double));
      return 1;
    }
    double theta = 1.0;
    for (size_t i = 0; i < q->m; i++)
      if (q->a[i] <= QP_ZERO) {
        double t = q->lam[i] / (q->lam[i] - q->a[i]);
        if (t < theta) theta = t;
      }
    size_t kept = 0, imin = 0;
    double tot = 0.0;
    for (size_t i = 0; i < q->m; i++) {
      double v = theta * q->a[i] + (1.0 - theta) * q->lam[i];
      if (v > QP_ZERO) {
        q->S[kept] = q->S[i];
        q->lam[kept] = v;
        kept++;
      }
    }
    if (kept == q->m) {
      /* theta reached no weight exactly (rounding): drop the smallest */
      for (size_t i = 1; i < kept; i++)
        if (q->lam[i] < q->lam[imin]) imin = i;
      for (size_t i = imin; i + 1 < kept; i++) {
        q->S[i] = q->S[i + 1];
        q->lam[i] = q->lam[i + 1];
      }
      kept--;
    }
    q->m = kept;
    for (size_t i = 0; i < kept; i++) tot += q->lam[i];
    for (size_t i = 0; i < kept; i++) q->lam[i] /= tot;
    if (kept == 1) {
      q->lam[0] = 1.0;
      return 1;
    }
  }
}

static void place(qp_work *q) {
  for (size_t k = 0; k < q->K; k++) {
    double s = 0.0;
    for (size_t i = 0; i < q->m; i++) s += q->lam[i] * q->P[q->S[i] * q->K + k];
    q->x[k] = s;
  }
}

int sp_qp_simplex(const double *P, size_t J, size_t K, double *w, double *norm2, sp_error *err) {
  if (J == 0 || K == 0) return sp_error_set(err, SP_EDIM, "qp_simplex: %zu points of dimension %zu (expected at least 1 each)", J, K);
  for (size_t j = 0; j < J; j++)
    for (size_t k = 0; k < K; k++)
      if (!isfinite(P[j * K + k]))
        return sp_error_set(err, SP_EVALUE, "qp_simplex: coordinate %zu of point %zu is not finite", k + 1, j + 1);
  int status = SP_OK;
  size_t cap = K + 2, nA = (K + 3) * (K + 4);
  qp_work q = {P, J, K, NULL, NULL, NULL, NULL, NULL, 0};
  q.S = malloc(cap * sizeof *q.S);
  q.lam = malloc(cap * sizeof *q.lam);
  q.a = malloc(cap * sizeof *q.a);
  q.A = malloc(nA * sizeof *q.A);
  q.x = malloc(K * sizeof *q.x);
  if (!q.S || !q.lam || !q.a || !q.A || !q.x) {
    status = sp_error_set(err, SP_ENOMEM, "qp_simplex: out of memory");
    goto out;
  }
  /* Start at the point of least norm. */
  double scale = 0.0, best = INFINITY;
  size_t jbest = 0;
  for (size_t j = 0; j < J; j++) {
    double nj = dot(P + j * K, P + j * K, K);
    if (nj > scale) scale = nj;
    if (nj < best) { best = nj; jbest = j; }
  }
  q.S[0] = jbest;
  q.lam[0] = 1.0;
  q.m = 1;
  place(&q);
  double eps = 1e-12 * (scale > 1e-300 ? scale : 1e-300);
  for (size_t iter = 0; iter < 50 * J + 100; iter++) {
    double xx = dot(q.x, q.x, K);
    if (xx <= eps * 1e-3) break;
    size_t jmin = 0;
    double vmin = INFINITY;
    for (size_t j = 0; j < J; j++) {
      double v = dot(q.x, P + j * K, K);
      if (v < vmin) { vmin = v; jmin = j; }
    }
    /* Optimal: no point lies beyond the supporting plane through x. */
    if (xx - vmin <= eps) break;
    int in = 0;
    for (size_t i = 0; i < q.m; i++)
      if (q.S[i] == jmin) in = 1;
    if (in || q.m >= cap - 1) break;  /* rounding: nothing left to gain */
    q.S[q.m] = jmin;
    q.lam[q.m] = 0.0;
    q.m++;
    if (!minor(&q)) {
      /* the new point is affinely dependent on the corral (rounding): drop it */
      size_t kept = 0;
      double tot = 0.0;
      for (size_t i = 0; i < q.m; i++)
        if (q.S[i] != jmin) {
          q.S[kept] = q.S[i];
          q.lam[kept] = q.lam[i];
          tot += q.lam[i];
          kept++;
        }
      q.m = kept;
      for (size_t i = 0; i < kept; i++) q.lam[i] /= tot;
      place(&q);
      break;
    }
    place(&q);
  }
  for (size_t j = 0; j < J; j++) w[j] = 0.0;
  for (size_t i = 0; i < q.m; i++) w[q.S[i]] = q.lam[i];
  *norm2 = dot(q.x, q.x, K);
out:
  free(q.S);
  free(q.lam);
  free(q.a);
  free(q.A);
  free(q.x);
  return status;
}
