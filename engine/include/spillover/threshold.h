/*
** threshold.h: Hansen (1999) fixed-effect panel threshold regression.
**
**   y_it = a_i + x_it'b + sum_r z_it'd_r 1(q_it in regime r) + e_it
**
** with regimes d1 <= g1 < ... (regime 1: q <= g1, regime r: g_{r-1} < q <= g_r,
** last: q > g_K).  One-way entity fixed effects are removed by the within
** transformation; the panel may be unbalanced.
**
** Speed: the observations are sorted by q once.  For a fixed set of other
** columns B (x, z, and the regime columns of thresholds already fixed), the
** SSR of a candidate g follows from Frisch-Waugh:
**   SSR(g) = SSR_B - r' A^-1 r,  r = w'e_B,  A = w~'w~ - (w~'Q)(Q'w~)
** where w = z 1(q <= g), w~ its within transform, Q an orthonormal basis of B
** and e_B the residual on B.  As g moves up the sorted q only the moving
** observation's terms change (r, w'Q and, through its entity's running sum,
** w~'w~), so a whole scan costs O(n m p) plus O(G (m p^2 + m^3)), not G
** regressions.  The bootstrap reuses the sorting and the basis of B, and
** its first stage needs no regression at all: what does not depend on the
** outcome (w'Q and the factor of A at every candidate) is cached by the point
** estimate, and bounds over groups of rows leave few candidates to evaluate
** (boot_stage1 in threshold.c); results agree with the scan to rounding.
**
** Hansen's own program (option hansen1999) differs in two conventions:
** regimes are q < g (not q <= g), and after the within transformation the
** last observation (in time order) of every entity is deleted before least
** squares (the n T demeaned values have n (T - 1) degrees of freedom; his
** program keeps T - 1 of them).  The scan handles the deletion exactly: with
** D the deletion and M the within projector, w'MD'DMw = w'Mw - sum_i
** (w_last,i - mean_i w)^2 adds one rank-one term per entity, and r, w'Q use
** the within transforms of the zero-padded e and Q.
**
** The `naive` option refits the whole within regression at every candidate
** instead (what xthreg and the R/Python ports do); it gives the same answer
** and exists for the benchmark and the cross-check in tests.
**
** Bootstrap (Hansen 1999): for the test of k-1 against k thresholds, whole
** within residual vectors of the (k-1)-threshold model are drawn by entity
** with replacement (among entities with the same number of observations when
** the panel is unbalanced) and added to its fitted values; the thresholds are
** re-estimated sequentially.  Replication r of test k uses its own random
** stream derived from (seed, k, r), so results do not depend on the number of
** threads, nor on the number of processes of an MPI job (dist.h): once MPI
** has started, rank i runs the replications i, i + size, ... and every rank
** gets all of them back by a sum over ranks (a collective: every rank of the
** job must fit the same model).
*/
#ifndef SPILLOVER_THRESHOLD_H
#define SPILLOVER_THRESHOLD_H

#include <stddef.h>
#include <stdint.h>

#include "spillover/error.h"

#define SP_THR_MAX 3  /* thresholds estimated sequentially: at most three */

/* The data, over the rows used (no missing values).  Nothing is copied into
   the result; the arrays are read during sp_threshold_fit only. */
typedef struct sp_thr_data {
  size_t n;                   /* observations */
  size_t k;                   /* regime-independent regressors (may be 0) */
  size_t m;                   /* regime-dependent regressors (>= 1) */
  const double *y;            /* n */
  const double *X;            /* n x k, row-major, row stride ldx; NULL when k = 0 */
  size_t ldx;
  const double *Z;            /* n x m, row-major, row stride ldz */
  size_t ldz;
  const double *q;            /* n values of the threshold variable */
  const int32_t *entity;      /* n codes in [0, N) */
  size_t N;
  const int32_t *time;        /* n codes ordering rows within an entity, or NULL (row order) */
  const char *const *xnames;  /* k names for messages, or NULL */
  const char *const *znames;  /* m names, or NULL */
  const char *qname;          /* the threshold variable's name, or NULL */
} sp_thr_data;

typedef struct sp_thr_options {
  int nthresh;        /* 1, 2 or 3 */
  double trim[SP_THR_MAX]; /* trim[0] builds the grid; trim[s] sets the exclusion width of stage s+1 */
  size_t grid;        /* quantile grid of this many points (xthreg: 400); 0 = every unique value */
  int reps;           /* bootstrap replications per test; 0 = no bootstrap */
  uint64_t seed;
  int threads;        /* worker threads for the bootstrap (>= 1) */
  double level;       /* confidence level of the LR intervals (0.95) */
  int naive;          /* 1: refit at every candidate (benchmark / cross-check) */
  int hansen1999;     /* 1: Hansen's (1999) program: regimes q < g, each entity's last row deleted after demeaning */
} sp_thr_options;

void sp_thr_options_init(sp_thr_options *o);

/* The LR(gamma) curve of one threshold: the candidates of its stage. */
typedef struct sp_thr_curve {
  size_t n;
  double *gamma;      /* n candidates (ascending), owned */
  double *lr;         /* n values of LR(gamma), owned */
} sp_thr_curve;

typedef struct sp_thr_test {
  double F, ssr_null, ssr_alt;
  int reps;           /* 0 when not bootstrapped */
  double pvalue;      /* share of bootstrap F* > F */
  double crit[3];     /* bootstrap critical values at 10%, 5%, 1% */
  double *Fboot;      /* reps bootstrap statistics in replication order, owned */
} sp_thr_test;

typedef struct sp_thr_result {
  int nthresh;
  size_t nobs, nentities, df;  /* df = nobs - entities: the sigma^2 divisor (Hansen n(T-1)); with
                                  hansen1999 also the rows left after the deletion */
  int balanced;
  size_t nunique, ngrid;       /* distinct values of q, candidates of the first stage */
  double lr_crit;              /* -2 ln(1 - sqrt(level)) */
  double ssr_linear;           /* no threshold */
  double gamma[SP_THR_MAX];    /* final thresholds, ascending */
  double ci[SP_THR_MAX][2];    /* LR confidence intervals, same order */
  sp_thr_curve curve[SP_THR_MAX]; /* the LR curve behind each interval, same order */
  double ssr;                  /* SSR of the final model */
  size_t regime_nobs[SP_THR_MAX + 1];
  /* The sequence, stage by stage: g1 (stage 1), g2 given g1, g1 refined
     given g2, g3 given (refined g1, g2); NaN where not estimated. */
  double seq_gamma[4];
  double seq_ssr[4];           /* SSR at (g1), (g1,g2), (g1r,g2), (g1r,g2,g3) */
  size_t seq_ncand[4];         /* candidates searched at each stage */
  sp_thr_test test[SP_THR_MAX];/* F1 (0 vs 1), F2 (1 vs 2), F3 (2 vs 3) */
  /* hansen1999 only (else NULL): the program's least squares at the final
     thresholds (the deleted rows left out), ncoef = k + (nthresh + 1) m
     coefficients: the k slopes of X, then for each regime regressor its
     coefficient in regime 1 .. nthresh + 1; with the program's covariances
     (ncoef x ncoef, row-major; homoskedastic: sigma^2 (X'X)^-1 with sigma^2 =
     ssr / (df - entities - ncoef), 6772 on his data; heteroskedastic: White,
     no small-sample factor). */
  size_t ncoef;
  double *coef, *V_homo, *V_het;
} sp_thr_result;

/* Estimate.  res is overwritten (clear it with sp_thr_result_clear, also
   after a failure).  Errors: SP_EVALUE for bad options, a constant threshold
   variable or too few distinct values for the trimming; SP_EDF when no
   candidate leaves every regime with at least m observations (the number of
   regime-dependent coefficients) or too few observations; SP_ESINGULAR for
   regressors collinear after the within transformation; SP_ENOMEM. */
int sp_threshold_fit(const sp_thr_data *d, const sp_thr_options *o, sp_thr_result *res, sp_error *err);

void sp_thr_result_clear(sp_thr_result *res);

#endif
