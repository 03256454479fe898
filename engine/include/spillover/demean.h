/*
** demean.h: absorbing high-dimensional fixed effects (the HDFE kernel).
**
** sp_demean_run replaces each column of a row-major n x p block by its
** residual from the (weighted) least-squares projection on the dummies of one
** or several factors.  The factor structure is analysed once into a workspace
** (sp_demean_new) that is reused for every block demeaned on the same sample:
** for a regression, y and all regressors, then again for bootstrap draws.
**
** Method (see docs/api/demean.md).  One factor: the exact group means.  Two or
** more: Gauss-Seidel on the fixed-effect coefficients (which is the method of
** alternating projections written in coefficient space), optionally with
** Irons-Tuck acceleration as in fixest.  The rows are grouped once by the
** factor with the most levels, so one sweep streams only the codes of the
** other factors (4 bytes per row and factor) whatever p is; the data block is
** read twice (group sums, then residuals) and written once.
**
** A fit need not store the demeaned block at all: sp_demean_solve reads the
** columns from a row source (rows.h) and keeps only the coefficients, and a
** within source (sp_demean_within) then produces the demeaned rows on
** request, the same bits sp_demean_run would have written.
**
** Codes are int32 in [0, nlevels); a level may be empty.  The workspace
** borrows the code arrays (at 1e7 rows a copy is 40 MB of fresh pages per
** factor): they must stay alive and unchanged until sp_demean_free.  Weights
** are copied.  A workspace is not safe for concurrent runs.
*/
#ifndef SPILLOVER_DEMEAN_H
#define SPILLOVER_DEMEAN_H

#include <stddef.h>
#include <stdint.h>

#include "spillover/error.h"
#include "spillover/rows.h"

typedef struct sp_demean_ws sp_demean_ws;

typedef struct sp_demean_options {
  /* Stop iterating column j when, over one sweep, no fixed-effect coefficient
     of the factors other than the largest moved by more than
     tol * rms_j, where rms_j = sqrt(sum_r w_r y_rj^2 / sum_r w_r) is the
     root mean square of the column before demeaning.  Default 1e-10. */
  double tol;
  size_t maxiter;    /* sweeps per column (default 10000) */
  int accelerate;    /* Irons-Tuck acceleration (default 1) */
  int threads;       /* 1 or 2 (default 1); results are bit-identical for both */
} sp_demean_options;

typedef struct sp_demean_info {
  size_t iter;       /* sweeps of the slowest column (1 for one factor) */
  size_t sweeps;     /* passes over the codes actually made (all columns together) */
  int converged;     /* every column met tol */
  double achieved;   /* largest final relative change over the columns */
} sp_demean_info;

void sp_demean_options_init(sp_demean_options *opt);

/* Analyse nfe factors over n rows: codes[k][r] in [0, nlevels[k]).  weights is
   NULL or n non-negative finite analytic weights (weighted means; a row of
   weight 0 takes no part in the coefficients but is still demeaned).  The
   code arrays are borrowed (see above), weights copied.  NULL and
   err set on failure (bad code, bad weight, no memory).  threads = 2 (and
   at least SP_TEAM_MIN_ROWS rows) counts the absorbed parameters of
   sp_demean_dof on a second thread during the pass over the codes.  Free
   with sp_demean_free. */
sp_demean_ws *sp_demean_new(size_t n, size_t nfe, const int32_t *const *codes,
                            const size_t *nlevels, const double *weights, int threads, sp_error *err);
void sp_demean_free(sp_demean_ws *ws);

size_t sp_demean_nobs(const sp_demean_ws *ws);

/* The coefficients of factor j (in the caller's order) from the last run,
   solve or fixef on ws: nlevels[j] rows of *p values, level-major (*p the
   columns then solved).  With one factor they are the (weighted) level
   means of the columns.  NULL (and *p = 0) before any, or for no such j. */
const double *sp_demean_coef(const sp_demean_ws *ws, size_t j, size_t *p);

/* Demean columns 0..p-1 of data (row r, column j at data[r * tda + j]) in
   place.  opt NULL means defaults; info may be NULL.  Non-finite data is
   SP_EMISSING naming the column.  On SP_ECONV the block holds the residuals
   of the last iterate and info is filled, so the caller can warn instead. */
int sp_demean_run(sp_demean_ws *ws, double *data, size_t n, size_t p, size_t tda,
                  const sp_demean_options *opt, sp_demean_info *info, sp_error *err);

/* The fixed-effect coefficients of src's p = src->p columns, kept in the
   workspace for a within source, without writing anything row-sized: src is
   read once, SP_ROWS_BLOCK rows at a time, by up to opt->threads threads at
   once (so its read must be reentrant, as rows.h requires).  The sums are
   taken in the order sp_demean_run takes them, so the coefficients, info and
   return value are those sp_demean_run gives for the same values: non-finite
   data is SP_EMISSING naming the column; on SP_ECONV the coefficients are
   those of the last iterate and info is filled.  src->n must be the
   workspace's rows. */
int sp_demean_solve(sp_demean_ws *ws, const sp_rows *src, const sp_demean_options *opt,
                    sp_demean_info *info, sp_error *err);

/* Rows of a source minus the fixed effects of the last solve: after
   sp_demean_solve(ws, raw, ...) returned SP_OK or SP_ECONV, row r of w->rows
   is raw's row r minus its effects, bit for bit what sp_demean_run would have
   left in row r of a block holding raw's values (same expression, same order
   of additions); with cols, only raw's columns cols[0..m-1], in that order
   (what a consumer reads is all that is read and subtracted).  Each read
   reads raw (its arrays directly when raw->col is set) and subtracts into
   the caller's buffer, so nothing row-sized is stored; reads are reentrant.
   w keeps pointers to ws, raw and cols: w->rows is valid while they live and
   until the next sp_demean_run, sp_demean_solve or sp_demean_fixef on ws
   (each overwrites the coefficients). */
typedef struct sp_demean_within {
  sp_rows rows;
  const sp_demean_ws *ws;
  const sp_rows *raw;
  const size_t *cols;   /* NULL: all of raw's columns */
} sp_demean_within;

/* cols NULL: all of raw's columns (m is ignored).  Returns 0, or -1 when m
   or raw->p exceeds SP_ROWS_MAXSEL or a column is out of range (cols given). */
int sp_demean_within_init(sp_demean_within *w, const sp_demean_ws *ws, const sp_rows *raw, const size_t *cols,
                          size_t m);

/* Fixed-effect coefficients of one vector resid_before_fe (n values, usually
   y - X b): coef[k] (caller-allocated, nlevels[k] doubles each, in the
   caller's factor order) such that sum_k coef[k][code_k[r]] is the projection
   of resid_before_fe on the dummies.  Normalisation: factor 0 carries the
   level; with two factors the lowest-numbered non-empty level of factor 1 in
   each connected component is 0; with three or more, the lowest non-empty
   level of every factor k >= 1 is 0.  Empty levels get NaN. */
int sp_demean_fixef(sp_demean_ws *ws, const double *resid_before_fe, double **coef,
                    const sp_demean_options *opt, sp_error *err);

/* Iteratively clear keep[r] for rows alone in a level of any factor, until
   none remains.  keep is in/out: on entry 1 for rows in the sample, 0 for rows
   already excluded (they do not count).  *ndropped = rows cleared here. */
int sp_fe_singletons(size_t n, size_t nfe, const int32_t *const *codes,
                     const size_t *nlevels, unsigned char *keep, size_t *ndropped,
                     sp_error *err);

/* Parameters absorbed by the factors over the rows with keep[r] != 0 (keep
   NULL: all rows), the lfe/fixest convention: one factor, its non-empty
   levels; the first two factors, L1 + L2 - (connected components of their
   bipartite graph); each further factor, its non-empty levels minus 1.  Exact
   for one or two factors, an upper bound beyond.  ncomp (may be NULL)
   receives the number of components of the first two factors (0 if nfe < 2). */
int sp_fe_dof(size_t n, size_t nfe, const int32_t *const *codes, const size_t *nlevels,
              const unsigned char *keep, size_t *dof, size_t *ncomp, sp_error *err);

/* sp_fe_dof of the workspace's factors (in the order sp_demean_new was
   given them) over all its rows, without checking the codes again; counted
   once (by sp_demean_new itself when it ran on two threads) and kept. */
int sp_demean_dof(sp_demean_ws *ws, size_t *dof, size_t *ncomp, sp_error *err);

/* *nested = 1 when every level of fe (over the kept rows) lies within a single
   cluster, so the fixed effect is nested in the cluster variable (fixest's
   fixef.K = "nested" then does not count its parameters). */
int sp_fe_nested(size_t n, const int32_t *fe, size_t fe_nlevels, const int32_t *cluster,
                 size_t cluster_nlevels, const unsigned char *keep, int *nested, sp_error *err);

/* Plain (unweighted) means per level of one factor: means[l * p + j] is the
   mean of column j of src (p = src->p columns, at most SP_ROWS_MAXSEL; a
   matrix through sp_rows_array) over the rows with code[r] == l, NaN for
   an empty level.  means holds nlevels x p doubles (caller-allocated).
   This is what the between R2 of a one-way fit correlates, so it stays in C
   rather than in per-row Lua; from a source, a fit that never stored its
   rows gets it too. */
int sp_fe_group_means(size_t n, const int32_t *code, size_t nlevels, const sp_rows *src, double *means,
                      sp_error *err);

#endif
