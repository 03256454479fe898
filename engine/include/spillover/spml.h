/*
** spml.h: maximum-likelihood spatial models (SAR, SEM, SDM, SDEM), the C core.
**
** What lives here is what must be fast or exact: the weights over the
** observations (an sp_weights, the one sparse matrix type of spillover:
** block-diagonal per period, restricted to the units present),
** the log-determinant log|I - rho W| (eigenvalues, dense LU, or the Barry-Pace
** Monte Carlo / Chebyshev approximations built on traces of powers of W), the
** concentrated log-likelihood and its optimisation (Brent on the interval,
** then Newton on the score), traces of (I - rho W)^-1 and related matrices for
** the information matrix and the LeSage-Pace impacts, and solves with
** I - rho W.  Designs, fixed effects and the assembly of fits are in Lua
** (lua/spillover/spatial_models.lua).
**
** Ownership: every object is created by an sp_*_new-style function and freed
** by its matching _free; all arrays inside belong to the object.  Inputs are
** copied, so callers may free theirs after the call.
*/
#ifndef SPILLOVER_SPML_H
#define SPILLOVER_SPML_H

#include <stddef.h>

#include "spillover/error.h"
#include "spillover/weights.h"

/* ---- BLAS threads --------------------------------------------------------------- */

/* OpenBLAS splits the work of its LAPACK and level-3 kernels by thread count,
   which changes the order of floating-point sums: eigenvalues and LU factors
   of the same W differed in the last bits between OPENBLAS_NUM_THREADS=1 and
   2, and so did every estimate and prediction built on them.  Each LAPACK
   call of the spatial code runs between these two: sp_blas_serial_begin pins
   OpenBLAS to one thread and returns the previous count, which
   sp_blas_serial_end restores (so nested pairs are harmless).  The matrices
   are at most a few thousand units a side, where one thread costs little. */
int sp_blas_serial_begin(void);
void sp_blas_serial_end(int previous);

/* ---- the weights of a sample: one block per period --------------------------- */

/* A sample of nrow observations; row r is unit unit[r] (0-based, < W->n) in
   block block[r] (0-based, < nblock; one block per period, or one block for a
   cross-section).  The weights over the sample are W restricted in every
   block to the units present; with restandardise != 0 the restricted rows
   are divided by their sums again (a unit whose neighbours are all absent
   keeps an empty row).  Blocks with the same set of units share one
   "distinct" block, so a balanced panel costs one N x N problem. */
typedef struct sp_spml_sample {
  size_t nrow, nblock;
  sp_weights *Wn;       /* nrow x nrow, rows in sample order (style 'B': raw = val) */
  size_t ndistinct;
  sp_weights **Wd;      /* ndistinct blocks, units in increasing order */
  size_t *mult;        /* how many periods share each distinct block */
  int row_stochastic;  /* every non-empty row of Wn sums to 1 (within 1e-12) */
  size_t nempty;       /* rows of Wn without neighbours */
  size_t *bstart;      /* nblock + 1 offsets into brows */
  size_t *brows;       /* the rows of each block, in the unit order of its distinct block */
  size_t *dkey;        /* nblock: the distinct block of each block */
} sp_spml_sample;

int sp_spml_sample_new(const sp_weights *W, size_t nrow, const size_t *unit, const size_t *block,
                       size_t nblock, int restandardise, sp_spml_sample **out, sp_error *err);
void sp_spml_sample_free(sp_spml_sample *s);

/* Blocks up to this many units have a direct (dense LU) solve. */
#define SP_SPML_DIRECT_MAX 2000

/* Solve (I - rho W) z = b over the whole sample (n-vectors, b and z must not
   alias).  First the iteration of sp_weights_solve; when it stalls or diverges
   (|rho| times the spectral radius of W near or above 1, which the
   admissible interval allows for negative rho), a dense LU of each distinct
   block, shared by the periods with the same units.  SP_ECONV when the
   iteration fails and a block is larger than SP_SPML_DIRECT_MAX; SP_ESINGULAR
   when I - rho W is singular. */
int sp_spml_solve(const sp_spml_sample *s, double rho, const double *b, double *z, sp_error *err);

/* ---- log-determinants --------------------------------------------------------- */

typedef enum {
  SP_LOGDET_EIGEN = 0,   /* exact, from the eigenvalues of each distinct block */
  SP_LOGDET_LU,          /* exact, a dense LU factorisation per evaluation */
  SP_LOGDET_MC,          /* Barry & Pace (1999): power series with traces estimated by random vectors */
  SP_LOGDET_CHEBYSHEV    /* Pace & LeSage (2004): Chebyshev expansion on [-1, 1] with the same traces */
} sp_logdet_method;

typedef struct sp_logdet_options {
  int method;          /* an sp_logdet_method */
  size_t order;        /* MC/Chebyshev: highest power of W (default 30) */
  size_t nvec;         /* MC/Chebyshev: random vectors (default 50) */
  unsigned long seed;  /* MC/Chebyshev: seed of the random vectors (default 1) */
} sp_logdet_options;

void sp_logdet_options_init(sp_logdet_options *o);

typedef struct sp_logdet sp_logdet;

/* Prepare the log-determinant of a sample.  Keeps a pointer to s (which must
   outlive it).  Also sets the admissible interval (lower, upper) of rho, the
   same for every method: the reciprocals of the smallest and largest real
   part of the eigenvalues of the distinct blocks.  A block is similar to a
   symmetric matrix when W is a row rescaling of symmetric weights (W = D^-1 C,
   row-standardised contiguity or distance weights); its eigenvalues are then
   real and come from dsyevd on D^1/2 W D^-1/2, else from dgeev.  MC and
   Chebyshev bound a block above SP_SPML_DIRECT_MAX units by its largest
   absolute row sum r instead (-1/r, 1/r: inside the exact interval).
   When every eigenvalue is real, MC and Chebyshev expand in U = (W - a I) / b,
   with [a - b, a + b] the range of the eigenvalues, so they hold on the whole
   interval.  With complex eigenvalues (or only the row-sum bound) they expand
   in W / r, r the largest modulus, and their interval is cut to (-1/r, 1/r),
   the only part where those series converge. */
int sp_logdet_new(const sp_spml_sample *s, const sp_logdet_options *o, sp_logdet **out,
                  sp_error *err);
void sp_logdet_free(sp_logdet *ld);
void sp_logdet_interval(const sp_logdet *ld, double *lower, double *upper);

/* log|I - rho W| over the whole sample, and its first two derivatives in rho
   (d1, d2 may be NULL). */
int sp_logdet_eval(sp_logdet *ld, double rho, double *val, double *d1, double *d2, sp_error *err);

/* Traces over the whole sample at rho, with A = (I - rho W)^-1 and G = W A:
   t[0] = tr(A), t[1] = tr(G), t[2] = tr(G G), t[3] = tr(G'G).  EIGEN gives
   the first three exactly from the eigenvalues; LU computes all four
   exactly; MC/Chebyshev use the power series of the estimated traces of W^k.
   tr(G'G) is exact (dense) when every distinct block has at most dense_max
   units, otherwise estimated with nvec random vectors and sp_weights_solve;
   with want_gtg == 0 it is skipped (t[3] = NaN), which is what impacts need. */
int sp_logdet_traces(sp_logdet *ld, double rho, size_t dense_max, int want_gtg, double t[4],
                     sp_error *err);

/* ---- the concentrated likelihood ----------------------------------------------- */

typedef enum { SP_SPML_LAG = 0, SP_SPML_ERROR = 1 } sp_spml_kind;

/* The concentrated log-likelihood in rho, on transformed (demeaned) data:
     lag:   SSR(rho) = e0'e0 - 2 rho e0'eL + rho^2 eL'eL, where e0 and eL are
            the residuals of y and of W y on X (computed once by the caller);
     error: SSR(rho) from the regression of y - rho Wy on X - rho WX, redone
            at every rho (a QR of the n x k block);
   lnL(rho) = -n_eff/2 (log(2 pi SSR / n_eff) + 1) + ld_factor * logdet(rho)
              - log1m_coef * log(1 - rho). */
typedef struct sp_spml_problem {
  int kind;                /* an sp_spml_kind */
  size_t n;                /* observations (rows of y, X) */
  double n_eff;            /* n in sigma2 = SSR / n_eff (n, or Lee-Yu's N(T-1) ...) */
  double ld_factor;        /* multiplies logdet (1, or (T-1)/T for Lee-Yu) */
  double log1m_coef;       /* Lee-Yu: coefficient of log(1 - rho) removed (0 otherwise) */
  double ee[3];            /* lag: e0'e0, e0'eL, eL'eL */
  size_t k;                /* error: columns of X */
  const double *y, *Wy;    /* error: n-vectors (stride 1) */
  const double *X, *WX;    /* error: row-major n x k (stride k) */
  sp_logdet *ld;
  double lower, upper;     /* the search interval (open) */
} sp_spml_problem;

typedef struct sp_spml_result {
  double rho, loglik, score, hess;  /* score and second derivative at rho */
  double sigma2, ssr;
  int boundary;                      /* 1 when the maximum is at an end of the interval */
  size_t evals;
} sp_spml_result;

int sp_spml_loglik(sp_spml_problem *p, double rho, double *ll, double *ssr, sp_error *err);

/* Maximise: Brent on (lower, upper), then Newton steps on the score (second
   derivative by central differences of the score) until the step is below
   1e-15 relative. */
int sp_spml_maximise(sp_spml_problem *p, sp_spml_result *r, sp_error *err);

#endif
