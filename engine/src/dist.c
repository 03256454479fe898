/*
** dist.c: ranks, reductions and the distributed two-way demeaning (dist.h).
**
** With SPILLOVER_HAVE_MPI (CMake -DSPILLOVER_MPI=ON) the reductions are
** MPI_Allreduce / MPI_Allgather(v) over MPI_COMM_WORLD with MPI_ERRORS_RETURN;
** without it the job has one rank and a reduction is the identity.  Either
** way the arithmetic of a reduction is MPI's: sums over ranks are not
** associative in floating point, so a fit on K ranks agrees with one rank to
** rounding (about 1e-15 relative), not bit for bit.
*/
#include "spillover/dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SPILLOVER_HAVE_MPI
#include <mpi.h>
#endif

static int started;   /* sp_dist_start has decided */
static int we_init;   /* ... and initialised MPI itself */
static int rank_, size_ = 1;

int sp_dist_mpi_built(void) {
#ifdef SPILLOVER_HAVE_MPI
  return 1;
#else
  return 0;
#endif
}

#ifdef SPILLOVER_HAVE_MPI
/* The launchers' variables (Open MPI, MPICH/Hydra, PMIx, Slurm's srun with PMI). */
static int launched(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", NULL};
  for (int i = 0; vars[i]; i++)
    if (getenv(vars[i]) != NULL) return 1;
  return 0;
}

static int mpi_fail(sp_error *err, int rc, const char *what) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error %d", rc);
  return sp_error_set(err, SP_EIO, "%s: %s", what, text);
}
#endif

int sp_dist_start(sp_error *err) {
  if (started) return SP_OK;
  started = 1;
#ifdef SPILLOVER_HAVE_MPI
  int already = 0;
  MPI_Initialized(&already);
  if (!already) {
    if (!launched()) return SP_OK;
    int rc = MPI_Init(NULL, NULL);
    if (rc != MPI_SUCCESS) return sp_error_set(err, SP_EIO, "MPI_Init failed (error %d)", rc);
    we_init = 1;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
#else
  (void)err;
#endif
  return SP_OK;
}

void sp_dist_stop(void) {
#ifdef SPILLOVER_HAVE_MPI
  int done = 0;
  if (we_init && (MPI_Finalized(&done), !done)) MPI_Finalize();
#endif
  we_init = 0;
}

int sp_dist_rank(void) { return rank_; }
int sp_dist_size(void) { return size_; }

static int reduce(double *buf, size_t n, int is_max, sp_error *err) {
#ifdef SPILLOVER_HAVE_MPI
  if (size_ > 1 && n > 0) {
    if (n > (size_t)INT32_MAX) return sp_error_set(err, SP_EVALUE, "dist: %zu values are too many for one reduction", n);
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, is_max ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "dist: MPI_Allreduce");
  }
#else
  (void)buf; (void)n; (void)is_max; (void)err;
#endif
  return SP_OK;
}

int sp_dist_sum(double *buf, size_t n, sp_error *err) { return reduce(buf, n, 0, err); }
int sp_dist_max(double *buf, size_t n, sp_error *err) { return reduce(buf, n, 1, err); }

int sp_dist_allgather(const double *mine, size_t n, double **all, sp_error *err) {
  size_t total = (size_t)size_ * n;
  *all = malloc((total ? total : 1) * sizeof **all);
  if (*all == NULL) return sp_error_set(err, SP_ENOMEM, "dist: out of memory gathering %zu values", n);
  if (size_ == 1) {
    if (n) memcpy(*all, mine, n * sizeof *mine);
    return SP_OK;
  }
#ifdef SPILLOVER_HAVE_MPI
  if (n > (size_t)INT32_MAX) {
    free(*all); *all = NULL;
    return sp_error_set(err, SP_EVALUE, "dist: %zu values are too many to gather", n);
  }
  int rc = MPI_Allgather(mine, (int)n, MPI_DOUBLE, *all, (int)n, MPI_DOUBLE, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) {
    free(*all); *all = NULL;
    return mpi_fail(err, rc, "dist: MPI_Allgather");
  }
#endif
  return SP_OK;
}

int sp_dist_allgatherv(const double *mine, size_t n, double **all, size_t *total, sp_error *err) {
  if (size_ == 1) {
    *total = n;
    return sp_dist_allgather(mine, n, all, err);
  }
#ifdef SPILLOVER_HAVE_MPI
  *all = NULL;
  if (n > (size_t)INT32_MAX) return sp_error_set(err, SP_EVALUE, "dist: %zu values are too many to gather", n);
  int *counts = malloc((size_t)size_ * 2 * sizeof *counts);
  if (counts == NULL) return sp_error_set(err, SP_ENOMEM, "dist: out of memory");
  int *displs = counts + size_;
  int mine_n = (int)n;
  int rc = MPI_Allgather(&mine_n, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) { free(counts); return mpi_fail(err, rc, "dist: MPI_Allgather"); }
  size_t sum = 0;
  for (int r = 0; r < size_; r++) {
    if (sum > (size_t)INT32_MAX) { free(counts); return sp_error_set(err, SP_EVALUE, "dist: too many values to gather"); }
    displs[r] = (int)sum;
    sum += (size_t)counts[r];
  }
  *all = malloc((sum ? sum : 1) * sizeof **all);
  if (*all == NULL) { free(counts); return sp_error_set(err, SP_ENOMEM, "dist: out of memory gathering %zu values", sum); }
  rc = MPI_Allgatherv(mine, mine_n, MPI_DOUBLE, *all, counts, displs, MPI_DOUBLE, MPI_COMM_WORLD);
  free(counts);
  if (rc != MPI_SUCCESS) { free(*all); *all = NULL; return mpi_fail(err, rc, "dist: MPI_Allgatherv"); }
  *total = sum;
  return SP_OK;
#else
  (void)mine; (void)n; (void)all; (void)total;
  return sp_error_set(err, SP_EVALUE, "dist: unreachable");
#endif
}

/* ---- two-way demeaning with the period step summed over ranks ------------------ */

static int check_codes(const int32_t *c, size_t n, size_t nlev, const char *what, sp_error *err) {
  for (size_t r = 0; r < n; r++)
    if (c[r] < 0 || (size_t)c[r] >= nlev)
      return sp_error_set(err, SP_EVALUE, "dist: %s code %ld at row %zu is outside [0, %zu)", what, (long)c[r], r + 1,
                          nlev);
  return SP_OK;
}

/* alpha[e][j] = mean over the rows of entity e of data - beta[period]. */
static void entity_step(const double *data, size_t n, size_t p, size_t tda, const int32_t *entity, size_t nentity,
                        const double *ecount, const int32_t *period, const double *beta, double *alpha) {
  memset(alpha, 0, nentity * p * sizeof *alpha);
  for (size_t r = 0; r < n; r++) {
    double *a = alpha + (size_t)entity[r] * p;
    const double *x = data + r * tda;
    const double *b = period ? beta + (size_t)period[r] * p : NULL;
    for (size_t j = 0; j < p; j++) a[j] += x[j] - (b ? b[j] : 0.0);
  }
  for (size_t e = 0; e < nentity; e++)
    if (ecount[e] > 0)
      for (size_t j = 0; j < p; j++) alpha[e * p + j] /= ecount[e];
}

int sp_dist_demean2(double *data, size_t n, size_t p, size_t tda, const int32_t *entity, size_t nentity,
                    const int32_t *period, size_t nperiod, double tol, size_t maxiter, size_t *iters,
                    sp_error *err) {
  if (iters) *iters = 0;
  if (p == 0) return SP_OK;
  if (tda < p) return sp_error_set(err, SP_EDIM, "dist: row stride %zu is less than %zu columns", tda, p);
  if (check_codes(entity, n, nentity, "entity", err) != SP_OK) return err->code;
  if (period && check_codes(period, n, nperiod, "period", err) != SP_OK) return err->code;
  for (size_t r = 0; r < n; r++)
    for (size_t j = 0; j < p; j++)
      if (!isfinite(data[r * tda + j]))
        return sp_error_set(err, SP_EMISSING, "dist: column %zu is not finite at row %zu", j + 1, r + 1);
  size_t na = nentity * p, nb = period ? nperiod * p : 0;
  double *alpha = calloc(na + nentity + 2 * nb + nperiod + p + 1, sizeof *alpha);
  if (alpha == NULL) return sp_error_set(err, SP_ENOMEM, "dist: out of memory for %zu fixed effects", nentity + nperiod);
  double *ecount = alpha + na, *beta = ecount + nentity, *bnew = beta + nb, *pcount = bnew + nb, *rms = pcount + nperiod;
  for (size_t r = 0; r < n; r++) ecount[entity[r]] += 1.0;
  int rc = SP_OK;
  size_t it = 0;
  if (period) {
    /* Period counts and the columns' root mean squares, over every rank. */
    for (size_t r = 0; r < n; r++) {
      pcount[period[r]] += 1.0;
      for (size_t j = 0; j < p; j++) rms[j] += data[r * tda + j] * data[r * tda + j];
    }
    rms[p] = (double)n;
    if ((rc = sp_dist_sum(pcount, nperiod + p + 1, err)) != SP_OK) goto done;
    for (size_t j = 0; j < p; j++) rms[j] = rms[p] > 0 ? sqrt(rms[j] / rms[p]) : 0.0;
    int converged = 0;
    while (!converged) {
      if (it == maxiter) {
        rc = sp_error_set(err, SP_ECONV, "dist: the two-way demeaning did not converge in %zu sweeps", maxiter);
        break;
      }
      it++;
      entity_step(data, n, p, tda, entity, nentity, ecount, period, beta, alpha);
      memset(bnew, 0, nb * sizeof *bnew);
      for (size_t r = 0; r < n; r++) {
        double *b = bnew + (size_t)period[r] * p;
        const double *x = data + r * tda, *a = alpha + (size_t)entity[r] * p;
        for (size_t j = 0; j < p; j++) b[j] += x[j] - a[j];
      }
      if ((rc = sp_dist_sum(bnew, nb, err)) != SP_OK) goto done;
      /* Every rank holds the same sums, so every rank takes the same decision. */
      converged = 1;
      for (size_t t = 0; t < nperiod; t++) {
        for (size_t j = 0; j < p; j++) {
          double v = pcount[t] > 0 ? bnew[t * p + j] / pcount[t] : 0.0;
          if (fabs(v - beta[t * p + j]) > tol * rms[j]) converged = 0;
          beta[t * p + j] = v;
        }
      }
    }
  } else {
    it = 1;
  }
  entity_step(data, n, p, tda, entity, nentity, ecount, period, beta, alpha);
  for (size_t r = 0; r < n; r++) {
    double *x = data + r * tda;
    const double *a = alpha + (size_t)entity[r] * p, *b = period ? beta + (size_t)period[r] * p : NULL;
    for (size_t j = 0; j < p; j++) x[j] -= a[j] + (b ? b[j] : 0.0);
  }
done:
  free(alpha);
  if (iters) *iters = it;
  return rc;
}

static int32_t find_root(int32_t *parent, int32_t t) {
  while (parent[t] != t) {
    parent[t] = parent[parent[t]];
    t = parent[t];
  }
  return t;
}

int sp_dist_period_links(size_t n, const int32_t *entity, size_t nentity, const int32_t *period,
                         size_t nperiod, int32_t *parent, unsigned char *seen, sp_error *err) {
  if (check_codes(entity, n, nentity, "entity", err) != SP_OK) return err->code;
  if (check_codes(period, n, nperiod, "period", err) != SP_OK) return err->code;
  if (nperiod > (size_t)INT32_MAX) return sp_error_set(err, SP_EVALUE, "dist: too many periods");
  int32_t *first = malloc((nentity ? nentity : 1) * sizeof *first);
  if (first == NULL) return sp_error_set(err, SP_ENOMEM, "dist: out of memory");
  for (size_t e = 0; e < nentity; e++) first[e] = -1;
  for (size_t t = 0; t < nperiod; t++) parent[t] = (int32_t)t;
  if (seen) memset(seen, 0, nperiod);
  for (size_t r = 0; r < n; r++) {
    int32_t t = period[r];
    if (seen) seen[t] = 1;
    if (first[entity[r]] < 0) {
      first[entity[r]] = t;
    } else {
      int32_t a = find_root(parent, first[entity[r]]), b = find_root(parent, t);
      if (a != b) parent[a < b ? b : a] = a < b ? a : b;
    }
  }
  free(first);
  return SP_OK;
}
