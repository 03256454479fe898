/*
** dist.h: the processes of one MPI job (`mpirun -np K spillover script.lua`).
**
** Built without MPI (the default) every function behaves as rank 0 of a job
** of one, and the reductions copy their input.  Built with -DSPILLOVER_MPI=ON,
** MPI starts on the first call of sp_dist_start when the process was launched
** by an MPI launcher (mpirun, srun: it sets the variables the MPI library
** reads), and stays off otherwise, so an ordinary run never pays for it.
** Errors of the MPI library come back as SP_EIO with MPI's own text
** (MPI_ERRORS_RETURN), never as an abort of the job.
**
** What is distributed is decided by the caller: the reductions here combine
** small objects (sums per period, k x k cross-products, counts), never rows.
*/
#ifndef SPILLOVER_DIST_H
#define SPILLOVER_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "spillover/error.h"

/* Start MPI when launched by an MPI launcher (idempotent).  SP_OK also when
   MPI is not built in or not launched: then there is one rank. */
int sp_dist_start(sp_error *err);

/* Stop MPI if sp_dist_start started it (idempotent; call before exit). */
void sp_dist_stop(void);

int sp_dist_rank(void);
int sp_dist_size(void);
int sp_dist_mpi_built(void);   /* 1 when built with MPI */

/* In place over all ranks: buf[i] becomes the sum (max) of every rank's buf[i]. */
int sp_dist_sum(double *buf, size_t n, sp_error *err);
int sp_dist_max(double *buf, size_t n, sp_error *err);

/* Every rank's n values, rank by rank: *all gets size * n doubles (malloc'd,
   the caller frees).  n must be the same on every rank. */
int sp_dist_allgather(const double *mine, size_t n, double **all, sp_error *err);

/* Every rank's values when their counts differ: *all (malloc'd) gets the
   concatenation in rank order, *total its length. */
int sp_dist_allgatherv(const double *mine, size_t n, double **all, size_t *total, sp_error *err);

/* Two-way (entity, period) demeaning of the p columns of a row-major n x p
   block (row r, column j at data[r * tda + j]) when every entity's rows are
   on one rank and the periods are numbered globally: entity[r] in
   [0, nentity) local, period[r] in [0, nperiod) the same numbering on every
   rank (period NULL: entity demeaning only, exact in one pass).  Gauss-Seidel
   on the coefficients: the entity step is local, the period step sums each
   period's residuals over the ranks (one reduction of nperiod x p numbers per
   sweep), until no period coefficient moves by more than tol times the
   column's root mean square over all ranks.  *iters (may be NULL) gets the
   sweeps made; SP_ECONV when maxiter sweeps were not enough (the block then
   holds the last iterate).  Collective: every rank calls it with the same
   nperiod, p, tol and maxiter. */
int sp_dist_demean2(double *data, size_t n, size_t p, size_t tda, const int32_t *entity, size_t nentity,
                    const int32_t *period, size_t nperiod, double tol, size_t maxiter, size_t *iters,
                    sp_error *err);

/* The links the local entities make between periods: parent[t] (nperiod
   int32, caller-allocated) becomes a forest over the periods in which two
   periods share a root when some local entity is observed in both, and
   seen[t] (may be NULL) 1 for periods with a local row.  Merging every
   rank's forest gives the connected components of the entity-period graph
   (the absorbed parameters of two-way fixed effects are L1 + L2 - components). */
int sp_dist_period_links(size_t n, const int32_t *entity, size_t nentity, const int32_t *period,
                         size_t nperiod, int32_t *parent, unsigned char *seen, sp_error *err);

#endif
