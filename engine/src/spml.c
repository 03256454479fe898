/*
** spml.c: the C core of the ML spatial models (see spml.h).
**
** The log-likelihood of every model is concentrated in the one spatial
** parameter, so optimisation is one-dimensional: a grid brackets the maximum,
** GSL's Brent minimiser narrows it, and Newton steps on the score polish it to
** full precision (Brent alone stops near sqrt(eps) relative, which is what
** limits spatialreg's optimize()).
*/
/* First: weights.h has a field called I, which complex.h makes a macro. */
#include "spillover/spml.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_min.h>
#include <gsl/gsl_rng.h>
#include <lapacke.h>

/* From OpenBLAS's cblas.h, which cannot be included next to GSL's
   gsl_cblas.h (both define the CBLAS enums). */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

int sp_blas_serial_begin(void) {
  int previous = openblas_get_num_threads();
  if (previous != 1) openblas_set_num_threads(1);
  return previous;
}

void sp_blas_serial_end(int previous) {
  if (previous != 1) openblas_set_num_threads(previous);
}

/* {======================================================================
** The sample: W restricted to the units present in each block
** ======================================================================= */

void sp_spml_sample_free(sp_spml_sample *s) {
  if (s == NULL) return;
  sp_weights_free(s->Wn);
  if (s->Wd)
    for (size_t d = 0; d < s->ndistinct; d++) sp_weights_free(s->Wd[d]);
  free(s->Wd);
  free(s->mult);
  free(s->bstart);
  free(s->brows);
  free(s->dkey);
  free(s);
}

int sp_spml_sample_new(const sp_weights *W, size_t nrow, const size_t *unit, const size_t *block,
                       size_t nblock, int restandardise, sp_spml_sample **out, sp_error *err) {
  *out = NULL;
  size_t N = W->n;
  for (size_t r = 0; r < nrow; r++) {
    if (unit[r] >= N)
      return sp_error_set(err, SP_EVALUE, "spatial: observation %zu is unit %zu, but the weights have %zu units",
                          r + 1, unit[r] + 1, N);
    if (block[r] >= nblock)
      return sp_error_set(err, SP_EVALUE, "spatial: observation %zu is in period %zu of %zu", r + 1, block[r] + 1,
                          nblock);
  }
  int st = SP_OK;
  sp_spml_sample *s = calloc(1, sizeof *s);
  size_t *bstart = calloc(nblock + 1, sizeof *bstart);  /* rows of each block, sorted by unit */
  size_t *brows = malloc((nrow ? nrow : 1) * sizeof *brows);
  size_t *pos = malloc((N ? N : 1) * sizeof *pos);       /* unit -> row in the current block */
  size_t *tri_i = NULL, *tri_j = NULL;
  double *tri_x = NULL;
  size_t *dkey = malloc((nblock ? nblock : 1) * sizeof *dkey);  /* block -> distinct index */
  if (s == NULL || bstart == NULL || brows == NULL || pos == NULL || dkey == NULL) goto nomem;
  s->nrow = nrow;
  s->nblock = nblock;
  for (size_t r = 0; r < nrow; r++) bstart[block[r] + 1]++;
  for (size_t b = 0; b < nblock; b++) bstart[b + 1] += bstart[b];
  {
    size_t *fill = calloc(nblock + 1, sizeof *fill);
    if (fill == NULL) goto nomem;
    for (size_t r = 0; r < nrow; r++) brows[bstart[block[r]] + fill[block[r]]++] = r;
    free(fill);
  }
  for (size_t b = 0; b < nblock; b++) {  /* sort each block's rows by unit (stable insertion) */
    for (size_t a = bstart[b] + 1; a < bstart[b + 1]; a++) {
      size_t v = brows[a], t = a;
      while (t > bstart[b] && unit[brows[t - 1]] > unit[v]) { brows[t] = brows[t - 1]; t--; }
      brows[t] = v;
    }
    for (size_t a = bstart[b] + 1; a < bstart[b + 1]; a++)
      if (unit[brows[a]] == unit[brows[a - 1]]) {
        st = sp_error_set(err, SP_EDUP, "spatial: unit %zu appears twice in period %zu (observations %zu and %zu)",
                          unit[brows[a]] + 1, b + 1, brows[a - 1] + 1, brows[a] + 1);
        goto fail;
      }
  }
  /* Count the links first, then fill the triplets of Wn. */
  size_t SIZE_NONE = (size_t)-1;
  for (size_t u = 0; u < N; u++) pos[u] = SIZE_NONE;
  size_t nnz = 0;
  for (size_t b = 0; b < nblock; b++) {
    for (size_t a = bstart[b]; a < bstart[b + 1]; a++) pos[unit[brows[a]]] = brows[a];
    for (size_t a = bstart[b]; a < bstart[b + 1]; a++) {
      size_t u = unit[brows[a]];
      for (size_t q = W->rowptr[u]; q < W->rowptr[u + 1]; q++)
        if (pos[W->col[q]] != SIZE_NONE) nnz++;
    }
    for (size_t a = bstart[b]; a < bstart[b + 1]; a++) pos[unit[brows[a]]] = SIZE_NONE;
  }
  tri_i = malloc((nnz ? nnz : 1) * sizeof *tri_i);
  tri_j = malloc((nnz ? nnz : 1) * sizeof *tri_j);
  tri_x = malloc((nnz ? nnz : 1) * sizeof *tri_x);
  if (tri_i == NULL || tri_j == NULL || tri_x == NULL) goto nomem;
  size_t e = 0;
  s->row_stochastic = 1;
  for (size_t b = 0; b < nblock; b++) {
    for (size_t a = bstart[b]; a < bstart[b + 1]; a++) pos[unit[brows[a]]] = brows[a];
    for (size_t a = bstart[b]; a < bstart[b + 1]; a++) {
      size_t r = brows[a], u = unit[r], e0 = e;
      double sum = 0;
      for (size_t q = W->rowptr[u]; q < W->rowptr[u + 1]; q++)
        if (pos[W->col[q]] != SIZE_NONE) {
          tri_i[e] = r;
          tri_j[e] = pos[W->col[q]];
          tri_x[e] = W->val[q];
          sum += W->val[q];
          e++;
        }
      if (e == e0) { s->nempty++; continue; }
      if (restandardise && sum != 0)
        for (size_t q = e0; q < e; q++) tri_x[q] /= sum;
      else if (fabs(sum - 1) > 1e-12)
        s->row_stochastic = 0;
    }
    for (size_t a = bstart[b]; a < bstart[b + 1]; a++) pos[unit[brows[a]]] = SIZE_NONE;
  }
  st = sp_weights_from_triplets(nrow, nnz, tri_i, tri_j, tri_x, &s->Wn, err);
  if (st != SP_OK) goto fail;
  /* Distinct blocks: same unit set -> same restricted matrix. */
  s->Wd = calloc(nblock ? nblock : 1, sizeof *s->Wd);
  s->mult = calloc(nblock ? nblock : 1, sizeof *s->mult);
  if (s->Wd == NULL || s->mult == NULL) goto nomem;
  size_t *first = malloc((nblock ? nblock : 1) * sizeof *first);  /* distinct -> its first block */
  if (first == NULL) goto nomem;
  for (size_t b = 0; b < nblock; b++) {
    size_t nb = bstart[b + 1] - bstart[b];
    size_t found = SIZE_NONE;
    for (size_t d = 0; d < s->ndistinct && found == SIZE_NONE; d++) {
      size_t f = first[d];
      if (bstart[f + 1] - bstart[f] != nb) continue;
      size_t a = 0;
      while (a < nb && unit[brows[bstart[f] + a]] == unit[brows[bstart[b] + a]]) a++;
      if (a == nb) found = d;
    }
    if (found == SIZE_NONE) {
      found = s->ndistinct++;
      first[found] = b;
    }
    dkey[b] = found;
    s->mult[found]++;
  }
  for (size_t d = 0; d < s->ndistinct && st == SP_OK; d++) {
    /* Extract block first[d] of Wn with local indices (its rows are sorted by unit). */
    size_t b = first[d], nb = bstart[b + 1] - bstart[b], m = 0;
    for (size_t a = 0; a < nb; a++) pos[unit[brows[bstart[b] + a]]] = a;
    for (size_t a = 0; a < nb; a++) {
      size_t r = brows[bstart[b] + a];
      for (size_t q = s->Wn->rowptr[r]; q < s->Wn->rowptr[r + 1]; q++) {
        tri_i[m] = a;
        tri_j[m] = pos[unit[s->Wn->col[q]]];
        tri_x[m] = s->Wn->val[q];
        m++;
      }
    }
    for (size_t a = 0; a < nb; a++) pos[unit[brows[bstart[b] + a]]] = SIZE_NONE;
    st = sp_weights_from_triplets(nb, m, tri_i, tri_j, tri_x, &s->Wd[d], err);
  }
  free(first);
  if (st != SP_OK) goto fail;
  s->bstart = bstart;  /* kept for the direct solve */
  s->brows = brows;
  s->dkey = dkey;
  free(pos);
  free(tri_i); free(tri_j); free(tri_x);
  *out = s;
  return SP_OK;
nomem:
  st = sp_error_set(err, SP_ENOMEM, "spatial: out of memory for the weights of %zu observations", nrow);
fail:
  free(bstart); free(brows); free(pos); free(dkey);
  free(tri_i); free(tri_j); free(tri_x);
  sp_spml_sample_free(s);
  return st;
}

/* }====================================================================== */

/* {======================================================================
** Log-determinants
** ======================================================================= */

struct sp_logdet {
  const sp_spml_sample *s;
  sp_logdet_options o;
  double lower, upper;
  /* U = (W - a I) / b has its spectrum in [-1, 1] when it is real, else in
     the unit disc (a = 0, b the largest modulus); see sp_logdet_new. */
  double a, b;
  /* EIGEN: eigenvalues per distinct block */
  double **re, **im;
  /* MC/Chebyshev: tr(U^k) (k = 0..order) and tr(T_k(U)), summed over blocks
     with multiplicity.  For a real spectrum both expansions then hold on the
     whole interval of rho, not only on (-1, 1) where those of a
     row-standardised W itself converge. */
  double *tpow, *tcheb;
  double *work;  /* LU: dense scratch of the largest block (2 n^2) */
  size_t nmax;
};

void sp_logdet_options_init(sp_logdet_options *o) {
  o->method = SP_LOGDET_EIGEN;
  o->order = 30;
  o->nvec = 50;
  o->seed = 1;
}

void sp_logdet_free(sp_logdet *ld) {
  if (ld == NULL) return;
  if (ld->re && ld->im)
    for (size_t d = 0; d < ld->s->ndistinct; d++) { free(ld->re[d]); free(ld->im[d]); }
  free(ld->re);
  free(ld->im);
  free(ld->tpow);
  free(ld->tcheb);
  free(ld->work);
  free(ld);
}

void sp_logdet_interval(const sp_logdet *ld, double *lower, double *upper) {
  *lower = ld->lower;
  *upper = ld->upper;
}

/* Traces of U^k (k = 0..m) and of the Chebyshev polynomials T_k(U) for one
   block, U = (W - a I) / b, added (times mult) into tpow and tcheb: exact for
   k <= 2, estimated with nvec random vectors above (Barry & Pace 1999). */
static int block_moments(const sp_weights *w, size_t mult, double sa, double sb, const sp_logdet_options *o,
                         uint64_t seed, double *tpow, double *tcheb, sp_error *err) {
  size_t m = o->order;
  double *est = malloc(2 * m * sizeof *est);
  if (est == NULL)
    return sp_error_set(err, SP_ENOMEM, "spatial log-determinant: out of memory (block of %zu units)", w->n);
  int st = sp_weights_traces_mc_shifted(w, sa, sb, m, o->nvec, seed, est, est + m, err);
  if (st == SP_OK) {
    tpow[0] += (double)mult * (double)w->n;
    tcheb[0] += (double)mult * (double)w->n;
    for (size_t k = 1; k <= m; k++) {
      tpow[k] += (double)mult * est[k - 1];
      tcheb[k] += (double)mult * est[m + k - 1];
    }
  }
  free(est);
  return st;
}

int sp_logdet_new(const sp_spml_sample *s, const sp_logdet_options *o, sp_logdet **out, sp_error *err) {
  *out = NULL;
  if (o->method < SP_LOGDET_EIGEN || o->method > SP_LOGDET_CHEBYSHEV)
    return sp_error_set(err, SP_EVALUE, "spatial log-determinant: unknown method %d", o->method);
  if ((o->method == SP_LOGDET_MC || o->method == SP_LOGDET_CHEBYSHEV) && (o->order < 3 || o->nvec < 1))
    return sp_error_set(err, SP_EVALUE, "spatial log-determinant: order is %zu and nvec %zu (expected order >= 3, nvec >= 1)",
                        o->order, o->nvec);
  sp_logdet *ld = calloc(1, sizeof *ld);
  if (ld == NULL) return sp_error_set(err, SP_ENOMEM, "spatial log-determinant: out of memory");
  ld->s = s;
  ld->o = *o;
  int st = SP_OK;
  for (size_t d = 0; d < s->ndistinct; d++) ld->nmax = s->Wd[d]->n > ld->nmax ? s->Wd[d]->n : ld->nmax;
  /* The interval of rho comes from the real parts of the eigenvalues of
     every distinct block, whatever the method, so that every method
     maximises over the same interval.  EIGEN keeps the eigenvalues; LU,
     whose every evaluation costs as much as one eigen-decomposition, uses
     them once; MC and Chebyshev, which exist to avoid O(n^3) work, compute
     them for blocks up to SP_SPML_DIRECT_MAX units and bound them by the
     largest absolute row sum above (for row-standardised W: (-1, 1), inside
     the exact interval). */
  ld->re = calloc(s->ndistinct ? s->ndistinct : 1, sizeof *ld->re);
  ld->im = calloc(s->ndistinct ? s->ndistinct : 1, sizeof *ld->im);
  if (ld->re == NULL || ld->im == NULL) goto nomem;
  double emin = 0, emax = 0, radius = 0;  /* real parts' range, largest modulus */
  int real = 1;                            /* every eigenvalue is real */
  for (size_t d = 0; d < s->ndistinct; d++) {
    const sp_weights *w = s->Wd[d];
    size_t n = w->n;
    if ((o->method == SP_LOGDET_MC || o->method == SP_LOGDET_CHEBYSHEV) && n > SP_SPML_DIRECT_MAX) {
      for (size_t r = 0; r < n; r++) {
        double sum = 0;
        for (size_t q = w->rowptr[r]; q < w->rowptr[r + 1]; q++) sum += fabs(w->val[q]);
        emin = fmin(emin, -sum);
        emax = fmax(emax, sum);
        radius = fmax(radius, sum);
      }
      real = 0;  /* only a disc is known */
      continue;
    }
    ld->re[d] = malloc((n ? n : 1) * sizeof **ld->re);
    ld->im[d] = malloc((n ? n : 1) * sizeof **ld->im);
    if (ld->re[d] == NULL || ld->im[d] == NULL) goto nomem;
    if ((st = sp_weights_eigenvalues(w, ld->re[d], ld->im[d], err)) != SP_OK) goto fail;
    for (size_t r = 0; r < n; r++) {
      emin = fmin(emin, ld->re[d][r]);
      emax = fmax(emax, ld->re[d][r]);
      radius = fmax(radius, hypot(ld->re[d][r], ld->im[d][r]));
      if (ld->im[d][r] != 0) real = 0;
    }
    if (o->method != SP_LOGDET_EIGEN) {
      free(ld->re[d]);
      free(ld->im[d]);
      ld->re[d] = ld->im[d] = NULL;
    }
  }
  ld->lower = emin < 0 ? 1 / emin : -INFINITY;
  ld->upper = emax > 0 ? 1 / emax : INFINITY;
  if (real) {
    /* U = (W - a I) / b has its spectrum in [-1, 1]: the series in U hold on
       the whole interval */
    ld->a = (emax + emin) / 2;
    ld->b = emax > emin ? (emax - emin) / 2 : 1;  /* a W without links: U = W */
  } else {
    /* Complex eigenvalues (or only a bound): all that is known is the disc
       |w| <= radius, so U = W / radius, and the series converge for |rho|
       below 1 / radius only.  MC and Chebyshev keep to that part of the
       interval (for row-standardised W: (max(1/min, -1), 1)). */
    ld->a = 0;
    ld->b = radius > 0 ? radius : 1;
    if (o->method == SP_LOGDET_MC || o->method == SP_LOGDET_CHEBYSHEV) {
      ld->lower = fmax(ld->lower, -1 / ld->b);
      ld->upper = fmin(ld->upper, 1 / ld->b);
    }
  }
  if (o->method == SP_LOGDET_EIGEN) {
    /* the eigenvalues are all it needs */
  } else if (o->method == SP_LOGDET_LU) {
    ld->work = malloc((2 * ld->nmax * ld->nmax + 1) * sizeof *ld->work);
    if (ld->work == NULL) goto nomem;
  } else {
    ld->tpow = calloc(o->order + 1, sizeof *ld->tpow);
    ld->tcheb = calloc(o->order + 1, sizeof *ld->tcheb);
    if (ld->tpow == NULL || ld->tcheb == NULL) goto nomem;
    for (size_t d = 0; d < s->ndistinct && st == SP_OK; d++)  /* one probe stream per block */
      st = block_moments(s->Wd[d], s->mult[d], ld->a, ld->b, o, (uint64_t)o->seed + d, ld->tpow, ld->tcheb, err);
    if (st != SP_OK) goto fail;
  }
  *out = ld;
  return SP_OK;
nomem:
  st = sp_error_set(err, SP_ENOMEM, "spatial log-determinant: out of memory");
fail:
  sp_logdet_free(ld);
  return st;
}

/* Dense A = I - rho W of one block into a (row-major), then LU in place. */
static int lu_block(const sp_weights *w, double rho, double *a, lapack_int *piv, sp_error *err) {
  size_t n = w->n;
  memset(a, 0, n * n * sizeof *a);
  for (size_t r = 0; r < n; r++) {
    a[r * n + r] = 1;
    for (size_t q = w->rowptr[r]; q < w->rowptr[r + 1]; q++) a[r * n + w->col[q]] -= rho * w->val[q];
  }
  int threads = sp_blas_serial_begin();
  lapack_int info = LAPACKE_dgetrf(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)n, a, (lapack_int)n, piv);
  sp_blas_serial_end(threads);
  if (info != 0)
    return sp_error_set(err, SP_ESINGULAR, "spatial: I - rho W is singular at rho = %.17g", rho);
  return SP_OK;
}

/* Dense inverse of I - rho W (one block) into a; piv scratch of n. */
static int inverse_block(const sp_weights *w, double rho, double *a, lapack_int *piv, sp_error *err) {
  int st = lu_block(w, rho, a, piv, err);
  if (st != SP_OK) return st;
  int threads = sp_blas_serial_begin();
  lapack_int info = LAPACKE_dgetri(LAPACK_ROW_MAJOR, (lapack_int)w->n, a, (lapack_int)w->n, piv);
  sp_blas_serial_end(threads);
  if (info != 0)
    return sp_error_set(err, SP_ESINGULAR, "spatial: I - rho W is singular at rho = %.17g", rho);
  return SP_OK;
}

/* Dense inverse of I - rho W (one block) into a (row-major), s scratch of n.
   When W is similar to the symmetric S = D^1/2 W D^-1/2, I - rho W =
   D^-1/2 (I - rho S) D^1/2, and inside the interval of rho I - rho S is
   positive definite: a Cholesky factorisation and its inverse (dpotrf,
   dpotri: n^3 flops) instead of the LU's 2 n^3, and (column-major, which a
   symmetric matrix does not mind) no transposition by LAPACKE.  Otherwise,
   or when the Cholesky fails, the LU. */
static int inverse_similar(const sp_weights *w, double rho, double *a, lapack_int *piv, double *s, sp_error *err) {
  size_t n = w->n;
  if (!sp_weights_similar_symmetric(w, s)) return inverse_block(w, rho, a, piv, err);
  /* the lower triangle of I - rho S, column-major: (i, j) at i + j n, i >= j */
  memset(a, 0, n * n * sizeof *a);
  for (size_t r = 0; r < n; r++) a[r + r * n] = 1;
  for (size_t r = 0; r < n; r++)
    for (size_t q = w->rowptr[r]; q < w->rowptr[r + 1]; q++) {
      size_t c = w->col[q], i = r > c ? r : c, j = r > c ? c : r;
      a[i + j * n] -= rho * w->val[q] * sqrt(s[r] / s[c]) * (r == c ? 1 : 0.5);  /* half from each of the pair */
    }
  int threads = sp_blas_serial_begin();
  lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (lapack_int)n, a, (lapack_int)n);
  if (info == 0) info = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', (lapack_int)n, a, (lapack_int)n);
  sp_blas_serial_end(threads);
  if (info != 0) return inverse_block(w, rho, a, piv, err);
  /* (I - rho W)^-1 = D^-1/2 B D^1/2 with B = (I - rho S)^-1 symmetric: its
     (i, j) is B_ij sqrt(s_j / s_i), written row-major.  B_ij (i > j) sits at
     i + j n, which is where the row-major (j, i) goes: read it first. */
  for (size_t j = 0; j < n; j++)
    for (size_t i = j + 1; i < n; i++) {
      double b = a[i + j * n], f = sqrt(s[j] / s[i]);
      a[i * n + j] = b * f;
      a[j * n + i] = b / f;
    }
  return SP_OK;
}

int sp_spml_solve(const sp_spml_sample *s, double rho, const double *b, double *z, sp_error *err) {
  sp_error first;
  sp_error_clear(&first);
  int st = sp_weights_solve(s->Wn, rho, b, z, &first);
  if (st != SP_ECONV) {
    if (st != SP_OK) *err = first;
    return st;
  }
  size_t nmax = 0;
  for (size_t d = 0; d < s->ndistinct; d++) nmax = s->Wd[d]->n > nmax ? s->Wd[d]->n : nmax;
  if (nmax > SP_SPML_DIRECT_MAX)
    return sp_error_set(err, SP_ECONV,
                        "spatial solve: (I - rho W) z = b did not converge at rho = %g (|rho| times the spectral "
                        "radius of W is near or above 1), and a period block of %zu units is too large for the "
                        "direct solve (at most %d)", rho, nmax, SP_SPML_DIRECT_MAX);
  /* Direct: one LU per distinct block, then every period that shares it. */
  double *a = malloc((nmax ? nmax * nmax : 1) * sizeof *a), *x = malloc((nmax ? nmax : 1) * sizeof *x);
  lapack_int *piv = malloc((nmax ? nmax : 1) * sizeof *piv);
  if (a == NULL || x == NULL || piv == NULL) {
    st = sp_error_set(err, SP_ENOMEM, "spatial solve: out of memory for a %zu x %zu block", nmax, nmax);
    goto done;
  }
  for (size_t d = 0; d < s->ndistinct; d++) {
    const sp_weights *w = s->Wd[d];
    lapack_int n = (lapack_int)w->n;
    if (n == 0) continue;
    if ((st = lu_block(w, rho, a, piv, err)) != SP_OK) goto done;
    for (size_t blk = 0; blk < s->nblock; blk++) {
      if (s->dkey[blk] != d) continue;
      const size_t *rows = s->brows + s->bstart[blk];
      for (lapack_int r = 0; r < n; r++) x[r] = b[rows[r]];
      int threads = sp_blas_serial_begin();
      lapack_int info = LAPACKE_dgetrs(LAPACK_ROW_MAJOR, 'N', n, 1, a, n, piv, x, 1);
      sp_blas_serial_end(threads);
      if (info != 0) {
        st = sp_error_set(err, SP_EVALUE, "spatial solve: LAPACK dgetrs failed (info %d)", (int)info);
        goto done;
      }
      for (lapack_int r = 0; r < n; r++) z[rows[r]] = x[r];
    }
  }
  st = SP_OK;
done:
  free(a);
  free(x);
  free(piv);
  return st;
}

/* Chebyshev coefficients on u in [-1, 1] at q + 1 nodes of g(a + b u), with
   g(x) = log(1 - rho x) or its first or second derivative in rho. */
static void cheb_coef(double rho, double a, double b, int deriv, size_t q, double *c) {
  for (size_t j = 0; j <= q; j++) {
    double sum = 0;
    for (size_t k = 0; k <= q; k++) {
      double th = M_PI * ((double)k + 0.5) / (double)(q + 1), x = a + b * cos(th);
      double f = deriv == 0 ? log(1 - rho * x) : deriv == 1 ? -x / (1 - rho * x) : -x * x / ((1 - rho * x) * (1 - rho * x));
      sum += f * cos((double)j * th);
    }
    c[j] = 2 * sum / (double)(q + 1);
  }
}

int sp_logdet_eval(sp_logdet *ld, double rho, double *val, double *d1, double *d2, sp_error *err) {
  const sp_spml_sample *s = ld->s;
  double v = 0, g1 = 0, g2 = 0;
  if (ld->o.method == SP_LOGDET_EIGEN) {
    for (size_t d = 0; d < s->ndistinct; d++) {
      double bv = 0, b1 = 0, b2 = 0;
      for (size_t r = 0; r < s->Wd[d]->n; r++) {
        double complex w = ld->re[d][r] + I * ld->im[d][r];
        double complex a = 1 - rho * w;
        bv += log(cabs(a));
        double complex q = w / a;
        b1 -= creal(q);
        b2 -= creal(q * q);
      }
      v += (double)s->mult[d] * bv;
      g1 += (double)s->mult[d] * b1;
      g2 += (double)s->mult[d] * b2;
    }
  } else if (ld->o.method == SP_LOGDET_LU) {
    lapack_int *piv = malloc((ld->nmax ? ld->nmax : 1) * sizeof *piv);
    if (piv == NULL) return sp_error_set(err, SP_ENOMEM, "spatial log-determinant: out of memory");
    for (size_t d = 0; d < s->ndistinct; d++) {
      const sp_weights *w = s->Wd[d];
      size_t n = w->n;
      double *a = ld->work;
      int st = lu_block(w, rho, a, piv, err);
      if (st != SP_OK) { free(piv); return st; }
      double bv = 0;
      for (size_t r = 0; r < n; r++) bv += log(fabs(a[r * n + r]));
      v += (double)s->mult[d] * bv;
      if (d1 || d2) {
        if ((st = inverse_block(w, rho, a, piv, err)) != SP_OK) { free(piv); return st; }
        /* G = W A^-1 (into the second half of work) */
        double *G = ld->work + n * n;
        for (size_t r = 0; r < n; r++) {
          for (size_t c = 0; c < n; c++) G[r * n + c] = 0;
          for (size_t q = w->rowptr[r]; q < w->rowptr[r + 1]; q++)
            for (size_t c = 0; c < n; c++) G[r * n + c] += w->val[q] * a[w->col[q] * n + c];
        }
        double tg = 0, tg2 = 0;
        for (size_t r = 0; r < n; r++) {
          tg += G[r * n + r];
          for (size_t c = 0; c < n; c++) tg2 += G[r * n + c] * G[c * n + r];
        }
        g1 -= (double)s->mult[d] * tg;
        g2 -= (double)s->mult[d] * tg2;
      }
    }
    free(piv);
  } else if (ld->o.method == SP_LOGDET_MC) {
    /* With W = a I + b U and c = 1 - rho a: I - rho W = c (I - s U), s = rho b / c, so
       log|I - rho W| = n log c - sum_k s^k tr(U^k) / k, and |s| < 1 on the interval. */
    double n = ld->tpow[0], a = ld->a, c = 1 - rho * a, sr = rho * ld->b / c;
    double ds = ld->b / (c * c), d2s = 2 * a * ld->b / (c * c * c);  /* ds/drho, d2s/drho2 */
    double f = 0, f1 = 0, f2 = 0;  /* -sum s^k t_k / k and its first two derivatives in s */
    double pk = 1;  /* s^(k-1) */
    double pk2 = 1; /* s^(k-2) for k >= 2 */
    for (size_t k = 1; k <= ld->o.order; k++) {
      double t = ld->tpow[k];
      f1 -= pk * t;
      if (k >= 2) { f2 -= (double)(k - 1) * pk2 * t; pk2 *= sr; }
      pk *= sr;
      f -= pk * t / (double)k;
    }
    v = n * log(c) + f;
    g1 = -n * a / c + f1 * ds;
    g2 = -n * a * a / (c * c) + f1 * d2s + f2 * ds * ds;
  } else {
    size_t q = ld->o.order;
    double *c = malloc((q + 1) * sizeof *c);
    if (c == NULL) return sp_error_set(err, SP_ENOMEM, "spatial log-determinant: out of memory");
    double n = ld->tcheb[0];
    cheb_coef(rho, ld->a, ld->b, 0, q, c);
    v = -c[0] * n / 2;
    for (size_t j = 0; j <= q; j++) v += c[j] * ld->tcheb[j];
    cheb_coef(rho, ld->a, ld->b, 1, q, c);
    g1 = -c[0] * n / 2;
    for (size_t j = 0; j <= q; j++) g1 += c[j] * ld->tcheb[j];
    cheb_coef(rho, ld->a, ld->b, 2, q, c);
    g2 = -c[0] * n / 2;
    for (size_t j = 0; j <= q; j++) g2 += c[j] * ld->tcheb[j];
    free(c);
  }
  if (!isfinite(v))
    return sp_error_set(err, SP_EVALUE, "spatial log-determinant: I - rho W is singular at rho = %.17g", rho);
  *val = v;
  if (d1) *d1 = g1;
  if (d2) *d2 = g2;
  return SP_OK;
}

/* tr(G'G) of one block by random Rademacher vectors: E ||G x||^2. */
static int gtg_stochastic(const sp_weights *w, double rho, size_t nvec, unsigned long seed, double *out, sp_error *err) {
  size_t n = w->n;
  double *x = malloc(3 * (n ? n : 1) * sizeof *x);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (x == NULL || rng == NULL) {
    free(x); gsl_rng_free(rng);
    return sp_error_set(err, SP_ENOMEM, "spatial traces: out of memory");
  }
  gsl_rng_set(rng, seed);
  double *z = x + n, *g = x + 2 * n, sum = 0;
  int st = SP_OK;
  for (size_t p = 0; p < nvec && st == SP_OK; p++) {
    for (size_t r = 0; r < n; r++) x[r] = gsl_rng_uniform(rng) < 0.5 ? -1.0 : 1.0;
    st = sp_weights_solve(w, rho, x, z, err);
    if (st != SP_OK) break;
    sp_weights_lag(w, z, g);
    for (size_t r = 0; r < n; r++) sum += g[r] * g[r];
  }
  free(x);
  gsl_rng_free(rng);
  *out = sum / (double)(nvec ? nvec : 1);
  return st;
}

int sp_logdet_traces(sp_logdet *ld, double rho, size_t dense_max, int want_gtg, double t[4], sp_error *err) {
  const sp_spml_sample *s = ld->s;
  for (int q = 0; q < 4; q++) t[q] = 0;
  int st = SP_OK;
  /* EIGEN gives the first three traces without any dense work. */
  int want_dense = ld->o.method == SP_LOGDET_LU ||
                   (ld->nmax <= dense_max && (want_gtg || ld->o.method != SP_LOGDET_EIGEN));
  double *a = NULL, *G = NULL, *sc = NULL;
  lapack_int *piv = NULL;
  if (want_dense && ld->nmax > 0) {
    a = malloc(ld->nmax * ld->nmax * sizeof *a);
    G = malloc(ld->nmax * ld->nmax * sizeof *G);
    piv = malloc(ld->nmax * sizeof *piv);
    sc = malloc(ld->nmax * sizeof *sc);
    if (a == NULL || G == NULL || piv == NULL || sc == NULL) {
      free(a); free(G); free(piv); free(sc);
      return sp_error_set(err, SP_ENOMEM, "spatial traces: out of memory for a %zu x %zu block", ld->nmax, ld->nmax);
    }
  }
  for (size_t d = 0; d < s->ndistinct && st == SP_OK; d++) {
    const sp_weights *w = s->Wd[d];
    size_t n = w->n;
    double m = (double)s->mult[d], b[4] = {0, 0, 0, 0};
    if (n == 0) continue;
    if (want_dense) {
      if ((st = inverse_similar(w, rho, a, piv, sc, err)) != SP_OK) break;
      for (size_t r = 0; r < n; r++) {
        for (size_t c = 0; c < n; c++) G[r * n + c] = 0;
        for (size_t q = w->rowptr[r]; q < w->rowptr[r + 1]; q++) {
          double wx = w->val[q];
          const double *ar = a + w->col[q] * n;
          double *gr = G + r * n;
          for (size_t c = 0; c < n; c++) gr[c] += wx * ar[c];
        }
      }
      for (size_t r = 0; r < n; r++) {
        b[0] += a[r * n + r];
        b[1] += G[r * n + r];
        for (size_t c = 0; c < n; c++) b[3] += G[r * n + c] * G[r * n + c];
      }
      if (ld->o.method != SP_LOGDET_EIGEN)  /* EIGEN has it from the eigenvalues, below: skip a strided pass */
        for (size_t r = 0; r < n; r++)
          for (size_t c = 0; c < n; c++) b[2] += G[r * n + c] * G[c * n + r];
    }
    if (ld->o.method == SP_LOGDET_EIGEN) {
      b[0] = b[1] = b[2] = 0;
      for (size_t r = 0; r < n; r++) {
        double complex wv = ld->re[d][r] + I * ld->im[d][r];
        double complex q = 1 / (1 - rho * wv);
        b[0] += creal(q);
        b[1] += creal(wv * q);
        b[2] += creal(wv * q * wv * q);
      }
    }
    if (!want_gtg) {
      b[3] = NAN;
    } else if (!want_dense) {
      st = gtg_stochastic(w, rho, ld->o.nvec, ld->o.seed + d, &b[3], err);
      if (st != SP_OK) break;
    }
    for (int q = 0; q < 4; q++) t[q] += m * b[q];
  }
  if (st == SP_OK && (ld->o.method == SP_LOGDET_MC || ld->o.method == SP_LOGDET_CHEBYSHEV) && !want_dense) {
    /* No dense inverse: the first three from the power series in U (already
       weighted by block).  A = (I - s U)^-1 / c = sum_k s^k U^k / c,
       G = (a I + b U) A, G G = (a I + b U)^2 sum_k (k + 1) s^k U^k / c^2. */
    const double *tu = ld->tpow;
    double sa = ld->a, sb = ld->b, c = 1 - rho * sa, sr = rho * sb / c, pk = 1;
    size_t m = ld->o.order;
    double sA = 0, sU = 0, sG2 = 0;
    for (size_t k = 0; k <= m; k++) {
      sA += pk * tu[k];
      if (k + 1 <= m) sU += pk * tu[k + 1];
      double g2k = sa * sa * tu[k];
      if (k + 1 <= m) g2k += 2 * sa * sb * tu[k + 1];
      if (k + 2 <= m) g2k += sb * sb * tu[k + 2];
      sG2 += (double)(k + 1) * pk * g2k;
      pk *= sr;
    }
    t[0] = sA / c;
    t[1] = sa * t[0] + sb * sU / c;
    t[2] = sG2 / (c * c);
  }
  free(a);
  free(G);
  free(piv);
  free(sc);
  return st;
}

/* }====================================================================== */

/* {======================================================================
** The concentrated likelihood and its maximisation
** ======================================================================= */

/* Scratch of the error model: the n x k block X - rho WX, its QR, y - rho Wy. */
typedef struct {
  gsl_matrix *A;
  gsl_vector *tau, *b, *yv, *res;
} err_ws;

static void err_ws_free(err_ws *w) {
  if (w->A) gsl_matrix_free(w->A);
  if (w->tau) gsl_vector_free(w->tau);
  if (w->b) gsl_vector_free(w->b);
  if (w->yv) gsl_vector_free(w->yv);
  if (w->res) gsl_vector_free(w->res);
}

static int err_ws_init(err_ws *w, size_t n, size_t k, sp_error *err) {
  memset(w, 0, sizeof *w);
  if (k == 0 || n <= k) return sp_error_set(err, SP_EDF, "spatial error model: %zu observations for %zu regressors", n, k);
  w->A = gsl_matrix_alloc(n, k);
  w->tau = gsl_vector_alloc(k);
  w->b = gsl_vector_alloc(k);
  w->yv = gsl_vector_alloc(n);
  w->res = gsl_vector_alloc(n);
  if (!w->A || !w->tau || !w->b || !w->yv || !w->res) {
    err_ws_free(w);
    return sp_error_set(err, SP_ENOMEM, "spatial error model: out of memory (n = %zu, k = %zu)", n, k);
  }
  return SP_OK;
}

/* SSR of the error model at rho and its derivative (envelope theorem). */
static int error_ssr(const sp_spml_problem *p, err_ws *w, double rho, double *ssr, double *dssr, sp_error *err) {
  size_t n = p->n, k = p->k;
  for (size_t r = 0; r < n; r++) {
    for (size_t c = 0; c < k; c++) gsl_matrix_set(w->A, r, c, p->X[r * k + c] - rho * p->WX[r * k + c]);
    gsl_vector_set(w->yv, r, p->y[r] - rho * p->Wy[r]);
  }
  if (gsl_linalg_QR_decomp(w->A, w->tau) != GSL_SUCCESS ||
      gsl_linalg_QR_lssolve(w->A, w->tau, w->yv, w->b, w->res) != GSL_SUCCESS)
    return sp_error_set(err, SP_ESINGULAR, "spatial error model: the transformed regressors are collinear at lambda = %g", rho);
  for (size_t c = 0; c < k; c++)
    if (!isfinite(gsl_vector_get(w->b, c)) || gsl_matrix_get(w->A, c, c) == 0)
      return sp_error_set(err, SP_ESINGULAR, "spatial error model: the transformed regressors are collinear at lambda = %g", rho);
  double s = 0, ds = 0;
  for (size_t r = 0; r < n; r++) {
    double e = gsl_vector_get(w->res, r);
    double de = p->Wy[r];
    for (size_t c = 0; c < k; c++) de -= p->WX[r * k + c] * gsl_vector_get(w->b, c);
    s += e * e;
    ds -= 2 * e * de;
  }
  *ssr = s;
  if (dssr) *dssr = ds;
  return SP_OK;
}

/* lnL, score and (for the lag model) second derivative at rho. */
static int profile(sp_spml_problem *p, err_ws *w, double rho, double *ll, double *score, double *hess,
                   double *ssr_out, sp_error *err) {
  double ldv, ld1, ld2, s = 0, ds = 0, d2s = 0;
  int st = sp_logdet_eval(p->ld, rho, &ldv, &ld1, &ld2, err);
  if (st != SP_OK) return st;
  if (p->kind == SP_SPML_LAG) {
    s = p->ee[0] - 2 * rho * p->ee[1] + rho * rho * p->ee[2];
    ds = -2 * p->ee[1] + 2 * rho * p->ee[2];
    d2s = 2 * p->ee[2];
  } else {
    if ((st = error_ssr(p, w, rho, &s, &ds, err)) != SP_OK) return st;
  }
  if (!(s > 0)) return sp_error_set(err, SP_EVALUE, "spatial: the residual sum of squares is %g at rho = %g", s, rho);
  double ne = p->n_eff, c = p->log1m_coef;
  *ll = -ne / 2 * (log(2 * M_PI * s / ne) + 1) + p->ld_factor * ldv - c * log(1 - rho);
  *score = -ne / 2 * ds / s + p->ld_factor * ld1 + c / (1 - rho);
  if (hess) *hess = -ne / 2 * (d2s * s - ds * ds) / (s * s) + p->ld_factor * ld2 + c / ((1 - rho) * (1 - rho));
  if (ssr_out) *ssr_out = s;
  return SP_OK;
}

int sp_spml_loglik(sp_spml_problem *p, double rho, double *ll, double *ssr, sp_error *err) {
  err_ws w;
  memset(&w, 0, sizeof w);
  int st;
  if (p->kind == SP_SPML_ERROR && (st = err_ws_init(&w, p->n, p->k, err)) != SP_OK) return st;
  double score;
  st = profile(p, &w, rho, ll, &score, NULL, ssr, err);
  err_ws_free(&w);
  return st;
}

typedef struct {
  sp_spml_problem *p;
  err_ws *w;
  sp_error *err;
  int st;
  size_t evals;
} min_ctx;

static double neg_ll(double rho, void *vp) {
  min_ctx *c = vp;
  double ll, sc;
  c->evals++;
  if (c->st != SP_OK) return GSL_POSINF;
  int st = profile(c->p, c->w, rho, &ll, &sc, NULL, NULL, c->err);
  if (st != SP_OK) { c->st = st; return GSL_POSINF; }
  return -ll;
}

/* Score and its derivative (analytic for lag, central differences for error). */
static int score_hess(sp_spml_problem *p, err_ws *w, double rho, double *sc, double *h, sp_error *err) {
  double ll;
  int st = profile(p, w, rho, &ll, sc, h, NULL, err);
  if (st != SP_OK || p->kind == SP_SPML_LAG) return st;
  double step = 1e-5 * fmax(1, fabs(rho)), lo = rho - step, hi = rho + step, sl, sh;
  if (hi >= p->upper) { hi = rho; }
  if (lo <= p->lower) { lo = rho; }
  if ((st = profile(p, w, hi, &ll, &sh, NULL, NULL, err)) != SP_OK) return st;
  if ((st = profile(p, w, lo, &ll, &sl, NULL, NULL, err)) != SP_OK) return st;
  *h = (sh - sl) / (hi - lo);
  return SP_OK;
}

int sp_spml_maximise(sp_spml_problem *p, sp_spml_result *r, sp_error *err) {
  memset(r, 0, sizeof *r);
  double lo = p->lower, hi = p->upper;
  if (!(lo < hi) || !isfinite(lo) || !isfinite(hi))
    return sp_error_set(err, SP_EVALUE, "spatial: the search interval (%g, %g) is empty or unbounded", lo, hi);
  /* Stay strictly inside: log|I - rho W| is -inf at the ends. */
  double width = hi - lo, eps = 1e-10 * width;
  lo += eps;
  hi -= eps;
  err_ws w;
  memset(&w, 0, sizeof w);
  int st;
  if (p->kind == SP_SPML_ERROR && (st = err_ws_init(&w, p->n, p->k, err)) != SP_OK) return st;
  min_ctx c = {p, &w, err, SP_OK, 0};
  /* A grid brackets the maximum (the likelihood need not be unimodal far
     from the estimate), then Brent. */
  enum { NGRID = 60 };
  double best = GSL_POSINF, bx = 0;
  size_t bi = 0;
  double gx[NGRID + 1], gf[NGRID + 1];
  for (size_t g = 0; g <= NGRID; g++) {
    gx[g] = lo + (hi - lo) * (double)g / NGRID;
    gf[g] = neg_ll(gx[g], &c);
    if (c.st != SP_OK) { st = c.st; goto done; }
    if (gf[g] < best) { best = gf[g]; bx = gx[g]; bi = g; }
  }
  double a = gx[bi > 0 ? bi - 1 : 0], b = gx[bi < NGRID ? bi + 1 : NGRID], x = bx;
  if (bi > 0 && bi < NGRID) {
    gsl_min_fminimizer *m = gsl_min_fminimizer_alloc(gsl_min_fminimizer_brent);
    if (m == NULL) { st = sp_error_set(err, SP_ENOMEM, "spatial: out of memory"); goto done; }
    gsl_function F = {neg_ll, &c};
    if (gsl_min_fminimizer_set_with_values(m, &F, bx, gf[bi], a, gf[bi - 1], b, gf[bi + 1]) == GSL_SUCCESS) {
      for (int it = 0; it < 200; it++) {
        if (gsl_min_fminimizer_iterate(m) != GSL_SUCCESS) break;
        x = gsl_min_fminimizer_x_minimum(m);
        a = gsl_min_fminimizer_x_lower(m);
        b = gsl_min_fminimizer_x_upper(m);
        if (gsl_min_test_interval(a, b, 1e-12, 1e-10) == GSL_SUCCESS) break;
      }
    }
    gsl_min_fminimizer_free(m);
    if (c.st != SP_OK) { st = c.st; goto done; }
    /* Newton on the score, kept inside the bracket found above. */
    double blo = gx[bi - 1], bhi = gx[bi + 1];
    for (int it = 0; it < 60; it++) {
      double sc, h;
      if ((st = score_hess(p, &w, x, &sc, &h, err)) != SP_OK) goto done;
      if (!(h < 0)) break;
      double step = -sc / h, nx = x + step;
      if (nx <= blo || nx >= bhi) break;
      x = nx;
      if (fabs(step) <= 4e-16 * fmax(1e-3, fabs(x))) break;
    }
  } else {
    r->boundary = 1;
  }
  double ll, sc, h, ssr;
  if ((st = profile(p, &w, x, &ll, &sc, &h, &ssr, err)) != SP_OK) goto done;
  if (p->kind == SP_SPML_ERROR && (st = score_hess(p, &w, x, &sc, &h, err)) != SP_OK) goto done;
  r->rho = x;
  r->loglik = ll;
  r->score = sc;
  r->hess = h;
  r->ssr = ssr;
  r->sigma2 = ssr / p->n_eff;
  r->evals = c.evals;
  st = SP_OK;
done:
  err_ws_free(&w);
  return st;
}

/* }====================================================================== */
