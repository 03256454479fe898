/*
** lp.h: batches of related linear programs, solved with GLPK's simplex.
**
** A frontier method (DEA and its relatives) solves one LP per unit, and the
** LPs of one run differ only in a few columns, the right-hand side, the
** and which columns are fixed at zero.  A batch describes the
** common problem once and the per-problem differences as arrays, so the
** caller makes one call per model, not per unit.  The problem object is
** built once per block of problems and each problem starts from the optimal
** basis of the one before it (a warm start: typically a few pivots).
**
** Determinism: problems are cut into blocks of SP_LP_BLOCK consecutive
** problems; each block starts from the same fresh problem and warm-starts
** only within itself.  Threads take whole blocks, so every problem sees the
** same sequence of bases and the results are identical at any thread count.
**
** GLPK is never allowed to print or abort: terminal output is switched off
** and an error hook returns control here (glp_error_hook with longjmp, as the
** GLPK manual describes), turning an internal GLPK error into an sp_error.
** Each thread uses its own GLPK environment and frees it before returning.
*/
#ifndef SPILLOVER_LP_H
#define SPILLOVER_LP_H

#include <stddef.h>

#include "spillover/error.h"

#define SP_LP_BLOCK 64  /* problems per warm-start chain (see above) */

/* Per-problem outcome. */
typedef enum {
  SP_LP_OPTIMAL = 0,
  SP_LP_INFEASIBLE,  /* no feasible point */
  SP_LP_UNBOUNDED,   /* the objective is unbounded */
  SP_LP_FAILED       /* the simplex stopped (iteration limit, numerical trouble) */
} sp_lp_status;

/* The common problem and the per-problem differences.  All arrays are
   row-major and only read during sp_lp_solve_batch. */
typedef struct sp_lp_batch {
  size_t m, n;             /* constraints (rows), variables (columns) */
  size_t count;            /* problems in the batch (may be 0) */
  const double *A;         /* m x n coefficients, shared by all problems */
  const char *sense;       /* m characters: 'L' (<=), 'G' (>=), 'E' (=) */
  const double *rhs;       /* m values, or NULL: zero */
  const double *obj;       /* n objective coefficients, or NULL: zero */
  const double *lb;        /* n lower bounds, or NULL: all 0 (-HUGE_VAL: free below) */
  const double *ub;        /* n upper bounds, or NULL: all +HUGE_VAL */
  int maximize;            /* 0: minimise, else maximise */
  /* Columns whose coefficients change from problem to problem: column
     varcol[k] of problem p is colval[(p * nvar + k) * m + i], i < m. */
  size_t nvar;
  const size_t *varcol;    /* nvar column indices (0-based), or NULL when nvar = 0 */
  const double *colval;    /* count x nvar x m, or NULL when nvar = 0 */
  const double *varobj;    /* count x nvar objective coefficients of the varying
                              columns, or NULL: they keep obj */
  const double *prob_rhs;  /* count x m right-hand sides replacing rhs, or NULL */
  const long *fix0;        /* count column indices fixed at 0 in problem p (-1: none), or NULL */
  int threads;             /* >= 1; more threads than blocks are not started */
} sp_lp_batch;

/* Caller-allocated results; any pointer may be NULL when not wanted. */
typedef struct sp_lp_result {
  double *x;               /* count x n primal solutions, or count x nkeep when keep is set */
  const size_t *keep;      /* nkeep column indices to report in x (0-based), or NULL: all n;
                              a large batch needs only a few columns of each solution */
  size_t nkeep;
  double *dual;            /* count x m row duals (shadow prices) */
  double *value;           /* count objective values */
  int *status;             /* count sp_lp_status codes */
} sp_lp_result;

/* Solve every problem of the batch.  A problem that is infeasible, unbounded
   or fails gets its status (and NaN in x, dual and value); that is not an
   error.  Errors: SP_EDIM / SP_EVALUE for malformed input (a bad sense
   character, a column index out of range, NaN coefficients), SP_ENOMEM, and
   SP_EVALUE when GLPK reports an internal error. */
int sp_lp_solve_batch(const sp_lp_batch *b, sp_lp_result *res, sp_error *err);

const char *sp_lp_status_name(int status);

#endif
