/*
** weights.h: sparse spatial weights and the statistics built on them
** (Moran's I, local Moran, traces and eigenvalues for spatial models).
**
** Storage is compressed sparse rows: row i's neighbours are
** col[rowptr[i] .. rowptr[i+1]) in increasing order.  `raw` keeps the weights
** as built (1 for contiguity, 1/d^p for distance, ...) and `val` the weights
** in the current style, so a style can be changed, or a subset taken, without
** losing the originals.  Styles (spdep's names):
**   'B'  the raw weights (binary for contiguity);
**   'W'  row-standardised: each row sums to one;
**   'C'  globally standardised: all weights sum to n;
**   'U'  all weights sum to one.
** A unit without neighbours (an island) has an empty row.  With style 'W' an
** island is an error unless zero_policy is set; then its row stays zero (and
** its lag is 0), as spdep's zero.policy = TRUE.
**
** Ownership: an sp_weights is created by one of the constructors below and
** released by sp_weights_free, which frees every array and id string.
*/
#ifndef SPILLOVER_WEIGHTS_H
#define SPILLOVER_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "spillover/error.h"

typedef struct sp_weights {
  size_t n;          /* units */
  size_t nnz;        /* links (non-zero weights) */
  size_t *rowptr;    /* n + 1 offsets */
  size_t *col;       /* nnz column indices, increasing within a row */
  double *raw;       /* nnz weights as built */
  double *val;       /* nnz weights in the current style */
  char **ids;        /* n owned id strings, or NULL when unlabelled */
  char style;        /* 'B', 'W', 'C' or 'U' */
  int zero_policy;   /* islands allowed (their rows stay zero) */
} sp_weights;

/* Orders of a stacked panel vector of n units x T periods:
   SP_WORDER_TIME: (time, unit), i.e. unit i of period t at t*n + i;
   SP_WORDER_UNIT: (unit, time), i.e. at i*T + t. */
enum { SP_WORDER_TIME = 0, SP_WORDER_UNIT = 1 };

/* ---- construction ---------------------------------------------------------- */

/* Weights over n units from m links i[k] -> j[k] (0-based) with values v[k]
   (v NULL: all ones).  A link repeated with the same value is kept once (edge
   lists often list both directions); with a different value it is SP_EDUP.
   A self-link, an index >= n, or a value that is not finite and positive is
   SP_EVALUE naming the link (k is reported 1-based).  Style 'B'. */
int sp_weights_from_links(size_t n, const size_t *i, const size_t *j, const double *v, size_t m,
                          sp_weights **out, sp_error *err);

/* k nearest neighbours of each point (x, y); great_circle: x = longitude,
   y = latitude in degrees and distances in km on a sphere of radius
   6371.0088 km, else Euclidean.  Ties at the k-th distance are broken by the
   lower index.  Needs 1 <= k < n.  Binary, style 'B'.  The candidates come
   from a k-d tree (kdtree.h; the unit vectors for great circles), each
   measured exactly: O(n log n) for points spread in the plane, and the same
   links as comparing every pair. */
int sp_weights_knn(size_t n, const double *x, const double *y, size_t k, int great_circle,
                   sp_weights **out, sp_error *err);

/* Inverse-distance weights 1/d^power between all pairs with d <= cutoff
   (cutoff <= 0 or infinite: every pair).  Two distinct units at distance 0
   are SP_EVALUE (the first such pair named).  Style 'B' (the raw inverse
   distances).  The pairs within the cutoff come from the k-d tree, as for
   sp_weights_knn. */
int sp_weights_distance(size_t n, const double *x, const double *y, double power, double cutoff,
                        int great_circle, sp_weights **out, sp_error *err);

/* Economic-distance weights 1/|g_i - g_j| between all pairs; equal values
   (an infinite weight) are SP_EVALUE naming the two units (ids when given). */
int sp_weights_economic(size_t n, const double *g, const char *const *ids, sp_weights **out,
                        sp_error *err);

/* Nested weights over the same units: product != 0 gives the element-wise
   product A .* B (links present in both), else a*A + b*B (links in either).
   Uses the current-style values of A and B; the result is style 'B' and
   carries A's ids. */
int sp_weights_combine(const sp_weights *A, const sp_weights *B, double a, double b, int product,
                       sp_weights **out, sp_error *err);

/* The weights among units idx[0..m) (0-based, distinct), in that order:
   links to units left out are dropped and the style is re-applied to the raw
   values (a unit can become an island).  Reorders when m == n. */
int sp_weights_subset(const sp_weights *W, const size_t *idx, size_t m, sp_weights **out,
                      sp_error *err);

/* The transpose (raw and styled values transposed as they are; style kept). */
int sp_weights_transpose(const sp_weights *W, sp_weights **out, sp_error *err);

int sp_weights_copy(const sp_weights *W, sp_weights **out, sp_error *err);

/* A general sparse n x n matrix in the same storage, from nnz triplets
   (0-based i, j): duplicates are summed, zeros left out, and any finite
   value is taken (negative values and the diagonal included), so a dense
   matrix or a restricted sample of W (spml.h) fits.  raw = val, style 'B'.
   SP_EVALUE for an index >= n or a non-finite value, naming the triplet. */
int sp_weights_from_triplets(size_t n, size_t nnz, const size_t *i, const size_t *j, const double *x,
                             sp_weights **out, sp_error *err);

void sp_weights_free(sp_weights *W);

/* Label the units (copies the strings).  A duplicate id is SP_EDUP naming it. */
int sp_weights_set_ids(sp_weights *W, const char *const *ids, sp_error *err);

/* Apply a style ('B', 'W', 'C', 'U') to the raw values.  Islands under 'W'
   are SP_EVALUE naming them unless zero_policy. */
int sp_weights_set_style(sp_weights *W, char style, int zero_policy, sp_error *err);

/* ---- products and summaries ---------------------------------------------- */

/* y = W x (n values each; y must not alias x). */
void sp_weights_lag(const sp_weights *W, const double *x, double *y);

/* y = W x on strided vectors (matrix columns: inc = row stride). */
void sp_weights_lag_strided(const sp_weights *W, const double *x, size_t incx, double *y,
                            size_t incy);

/* y = (I_T (x) W) x for a stacked panel vector of n*T values in `order`
   (SP_WORDER_TIME or SP_WORDER_UNIT). */
int sp_weights_lag_panel(const sp_weights *W, const double *x, size_t T, int order, double *y,
                         sp_error *err);

/* Solve (I - rho W) z = b (n-vectors) by the fixed-point iteration
   z <- b + rho W z, which converges when |rho| times the spectral radius of W
   is below 1 (row-standardised W and |rho| < 1).  SP_ECONV when it diverges
   or stalls above a relative change of 1e-15 (sp_spml_solve then solves
   directly). */
int sp_weights_solve(const sp_weights *W, double rho, const double *b, double *z, sp_error *err);

/* out (n*n, row-major) = W, dense. */
void sp_weights_dense(const sp_weights *W, double *out);

void sp_weights_rowsums(const sp_weights *W, double *out);

/* The number of links i -> j with no link j -> i of the same weight
   (pattern_only: of any weight).  0 means symmetric. */
size_t sp_weights_asymmetry(const sp_weights *W, int pattern_only);

/* Islands: their count, and the first `cap` of them in out (may be NULL). */
size_t sp_weights_islands(const sp_weights *W, size_t *out, size_t cap);

/* Moran's constants: S0 = sum w_ij, S1 = 1/2 sum (w_ij + w_ji)^2,
   S2 = sum_i (w_i. + w_.i)^2. */
int sp_weights_moran_sums(const sp_weights *W, double *S0, double *S1, double *S2, sp_error *err);

/* Is W a row rescaling of a symmetric matrix (W = D^-1 C, C symmetric, D a
   positive diagonal: symmetric raw weights in any style, or a restricted
   and re-standardised sample of them)?  Then it is similar to the symmetric
   D^1/2 W D^-1/2, and s (n) receives the diagonal of D, scaled to 1 at the
   first unit of each connected component.  0 when it is not, or when the
   check ran out of memory (the general path is always right). */
int sp_weights_similar_symmetric(const sp_weights *W, double *s);

/* Eigenvalues of W (n each in re, im), sorted by real part.  When W is
   similar to a symmetric matrix (sp_weights_similar_symmetric) the
   eigenvalues are real and come from that matrix, numbered in reverse
   Cuthill-McKee order so that it is a narrow band: LAPACK's dsbev_2stage,
   O(n kd) memory and O(n^2 kd) time for half-bandwidth kd (dsyevd_2stage on
   the dense matrix when kd > n / 10).  Otherwise the general dgeev on a
   dense copy: O(n^2) memory, O(n^3) time. */
int sp_weights_eigenvalues(const sp_weights *W, double *re, double *im, sp_error *err);

/* out[k-1] = tr(W^k) for k = 1..kmax.  Exact: from sparse products for
   k <= 2 and from the eigenvalues beyond (n <= SP_WEIGHTS_EXACT_MAX). */
#define SP_WEIGHTS_EXACT_MAX 6000
int sp_weights_traces(const sp_weights *W, size_t kmax, double *out, sp_error *err);

/* Monte Carlo estimates of tr(W^k), k = 1..kmax, from `reps` Gaussian
   probes x: the mean of n x'W^k x / x'x (Barry & Pace 1999); tr(W) and
   tr(W^2) are exact.  seed seeds the Mersenne Twister of the probes
   directly. */
int sp_weights_traces_mc(const sp_weights *W, size_t kmax, size_t reps, uint64_t seed,
                         double *out, sp_error *err);

/* The same for U = (W - shift I) / scale: tpow[k-1] estimates tr(U^k) and,
   when tcheb is not NULL, tcheb[k-1] tr(T_k(U)) (T_k the Chebyshev
   polynomials), k = 1..kmax, from the same probes; k <= 2 exact.  With shift
   0 and scale 1 tpow is sp_weights_traces_mc's result.  The log-determinant
   approximations of spml.h (Barry-Pace, Pace-LeSage) are built on it.
   Both sets come from one Chebyshev recurrence per probe (kmax sparse
   products): each power is a convex combination of Chebyshev polynomials,
   so u'U^k u is exact arithmetic on the u'T_j(U)u, not more products. */
int sp_weights_traces_mc_shifted(const sp_weights *W, double shift, double scale, size_t kmax,
                                 size_t reps, uint64_t seed, double *tpow, double *tcheb,
                                 sp_error *err);

/* ---- Moran's I ------------------------------------------------------------ */

typedef struct sp_moran_result {
  double I, expectation, variance, z, pvalue;  /* pvalue: upper tail ("greater") */
  double variance_normal, variance_random;     /* both inference variances */
  double S0, S1, S2, kurtosis;                 /* n sum z^4 / (sum z^2)^2 */
} sp_moran_result;

/* Global Moran's I of x (n values, none missing) with its expectation
   -1/(n-1) and variance under normality (randomisation == 0) or
   randomisation, as spdep::moran.test. */
int sp_weights_moran(const sp_weights *W, const double *x, int randomisation,
                     sp_moran_result *res, sp_error *err);

/* Permutation test: nperm values of I under random permutations of x
   (Isim, may be NULL) and the upper-tail pseudo p-value
   (1 + #{Isim >= I}) / (nperm + 1), as spdep::moran.mc. */
int sp_weights_moran_perm(const sp_weights *W, const double *x, size_t nperm, uint64_t seed,
                          double *Isim, double *pvalue, sp_error *err);

/* Local Moran (spdep::localmoran, conditional = TRUE, mlvar = TRUE):
   Ii, E(Ii), Var(Ii) per unit (any output may be NULL). */
int sp_weights_local_moran(const sp_weights *W, const double *x, double *Ii, double *E,
                           double *Var, sp_error *err);

/* Conditional permutation p-values of local Moran: for unit i, nperm draws of
   its neighbours' values from the other n - 1 units; the folded pseudo
   p-value (1 + min(#{sim >= Ii}, #{sim <= Ii})) / (nperm + 1) per unit. */
int sp_weights_local_moran_perm(const sp_weights *W, const double *x, size_t nperm, uint64_t seed,
                                double *pvalue, sp_error *err);

#endif
