/*
** vcov.h: the sandwich family of variance estimators for linear models.
**
** After a fit of y = X b + e (X possibly within-transformed), an estimator
** calls sp_vcov_compute with X, the residuals and the bread (X'X)^-1 (or
** (X'WX)^-1 for WLS) and gets V = factor * B M B, where the meat M depends on
** the type (iid, HC0-HC3, one- or multi-way cluster, Driscoll-Kraay).
**
** Small-sample corrections are explicit fields of the spec, never implied by
** a package name: sp_vcov_preset only fills those fields the way one package
** does (docs/api/vcov.md has the table), and sp_vcov_info reports the factors
** actually applied.  Everything is one pass over the rows, accumulating
** k-vectors of scores per cluster or period; nothing is n x n.
**
** Nothing here allocates memory that the caller must free: V and info belong
** to the caller, and temporary buffers are freed before returning.
*/
#ifndef SPILLOVER_VCOV_H
#define SPILLOVER_VCOV_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_matrix.h>

#include "spillover/error.h"
#include "spillover/rows.h"

/* At most this many cluster dimensions (2^4 - 1 = 15 inclusion-exclusion terms). */
#define SP_VCOV_MAXWAY 4

typedef enum {
  SP_VCOV_IID = 0,        /* s^2 B, s^2 = sum w e^2 / n times the dof factor */
  SP_VCOV_HC0,            /* meat sum (w e)^2 x x' */
  SP_VCOV_HC1,            /* HC0's meat; its default dof factor is n/(n-k) */
  SP_VCOV_HC2,            /* (w e)^2 / (1 - h) */
  SP_VCOV_HC3,            /* (w e)^2 / (1 - h)^2 */
  SP_VCOV_CLUSTER,        /* one- or multi-way (Cameron-Gelbach-Miller) clusters */
  SP_VCOV_DRISCOLL_KRAAY  /* scores summed within period, Bartlett-weighted lags */
} sp_vcov_type;

/* The overall degrees-of-freedom factor multiplying V. */
typedef enum {
  SP_VCOV_DOF_DEFAULT = 0, /* per type: IID and HC1 -> N_K, everything else -> NONE */
  SP_VCOV_DOF_NONE,        /* 1 */
  SP_VCOV_DOF_N_K,         /* n / (n - k_df) */
  SP_VCOV_DOF_N1_K         /* (n - 1) / (n - k_df) */
} sp_vcov_dof;

/* The cluster-count factor G/(G-1) of each inclusion-exclusion term. */
typedef enum {
  SP_VCOV_GADJ_NONE = 0,   /* 1 (plm arellano HC0/HC1/vcovDC) */
  SP_VCOV_GADJ_EACH,       /* each term by its own G/(G-1), intersections included
                              (sandwich cadjust = TRUE, statsmodels, Stata one-way) */
  SP_VCOV_GADJ_MIN         /* every term by Gmin/(Gmin-1), Gmin = fewest clusters of
                              the original dimensions (fixest cluster.df = "min", reghdfe) */
} sp_vcov_gadj;

/* The degrees of freedom reported for t tests (info->df_t). */
typedef enum {
  SP_VCOV_TDF_RESID = 0,   /* n - k_df */
  SP_VCOV_TDF_CLUSTERS     /* min over dimensions of G - 1 (DK: T - 1); n - k_df otherwise */
} sp_vcov_tdf;

typedef struct sp_vcov_spec {
  sp_vcov_type type;
  const double *weights;   /* n WLS weights (>= 0), or NULL; not owned */
  size_t k_df;             /* the k of every correction and of df; 0 means X->size2 */
  sp_vcov_dof dof;
  sp_vcov_tdf tdf;
  /* SP_VCOV_CLUSTER: ncluster code arrays of n int32 codes >= 0 (not owned;
     unused codes are allowed: G counts the codes that occur). */
  size_t ncluster;
  const int32_t *cluster[SP_VCOV_MAXWAY];
  const char *cluster_name[SP_VCOV_MAXWAY];  /* for messages; may be NULL */
  sp_vcov_gadj gadj;       /* clusters: G/(G-1); Driscoll-Kraay: T/(T-1) unless NONE */
  int multi0;              /* multi-way: the all-dimension intersection term is the
                              plain HC0 meat (no G or dof factor), as sandwich's
                              multi0 = TRUE and plm::vcovDC ("- V_white") */
  int fix_psd;             /* clip negative eigenvalues of V to 0 (CGM 2011; fixest
                              vcov_fix, sandwich fix = TRUE) */
  /* SP_VCOV_DRISCOLL_KRAAY: n period codes 0..T-1 in time order (consecutive
     periods differ by 1); lag < 0 picks plm's default floor(T^(1/4)); a lag
     above T - 1 is an error (SP_EVALUE). */
  const int32_t *time;
  const char *time_name;
  long lag;
  int threads;             /* 1 (the default) or 2: the passes over the rows on two
                              threads, giving the same V to the last bit as one */
} sp_vcov_spec;

typedef struct sp_vcov_info {
  size_t n, k_df;
  double dof_factor;                 /* the overall factor applied (see sp_vcov_dof) */
  double gadj[(1 << SP_VCOV_MAXWAY) - 1]; /* cluster factor per inclusion-exclusion term;
                                          DK: gadj[0] = T/(T-1) or 0 (none) */
  size_t nterms;                     /* number of such terms (2^ncluster - 1) */
  size_t ngroups[SP_VCOV_MAXWAY];    /* G of each cluster dimension */
  size_t nperiods;                   /* Driscoll-Kraay: T */
  long lag;                          /* Driscoll-Kraay: the lag used */
  double df_t;                       /* degrees of freedom for t tests */
  double ssr;                        /* sum w e^2, summed as sp_lsfit sums it (the same bits) */
  double sigma2;                     /* ssr / (n - k_df) */
  size_t nclipped;                   /* eigenvalues clipped by fix_psd */
} sp_vcov_info;

/* Zero everything, set the type; dof DEFAULT, gadj NONE, tdf RESID, lag -1,
   threads 1. */
void sp_vcov_spec_init(sp_vcov_spec *s, sp_vcov_type type);

/* Which parameters k_df counts under a robust type (IID always counts the
   rank and every absorbed fixed-effect parameter). */
typedef enum {
  SP_VCOV_KDF_ALL = 0,     /* rank + absorbed parameters (LSDV's K) */
  SP_VCOV_KDF_RANK,        /* the rank of the transformed model only (plm, sandwich) */
  SP_VCOV_KDF_NONNESTED    /* clusters: rank + absorbed parameters not nested in a
                              cluster (reghdfe, fixest); other types: ALL */
} sp_vcov_kdf;

/* One package convention (the table in docs/api/vcov.md).  IID and HC1 take
   n/(n-k) and HC0/HC2/HC3 no factor under every preset. */
typedef struct sp_vcov_preset_def {
  const char *name;
  sp_vcov_gadj cluster_gadj;
  sp_vcov_dof cluster_dof;
  sp_vcov_tdf cluster_tdf;
  int cluster_multi0, cluster_fix_psd;
  sp_vcov_gadj dk_gadj;    /* DK: EACH or MIN = T/(T-1), T the periods (xtscc) */
  sp_vcov_dof dk_dof;
  sp_vcov_tdf dk_tdf;
  sp_vcov_kdf kdf;         /* for the caller: what k_df counts */
  int t_df_groups;         /* for the caller: t tests of clustered and DK fits
                              take info->df_t (G - 1, T - 1 where tdf says so) */
} sp_vcov_preset_def;

/* The presets, in a fixed order; *n receives their number. */
const sp_vcov_preset_def *sp_vcov_presets(size_t *n);

/* Set dof, gadj, tdf, multi0 and fix_psd for s->type the way one package does:
   compat is "sandwich", "plm", "stata", "fixest" or "statsmodels" (a row of
   sp_vcov_presets).  Call after setting the type.  SP_EVALUE for an unknown
   name (NULL included). */
int sp_vcov_preset(sp_vcov_spec *s, const char *compat, sp_error *err);

/* V (k x k, caller's) = factor * B M B.  X is n x k, resid has n entries,
   bread is k x k symmetric ((X'X)^-1, or (X'WX)^-1 with weights: scores are
   w_i e_i x_i and leverage h_i = w_i x_i' B x_i).  info may be NULL.
   Errors: SP_EDIM (sizes), SP_EDF (n <= k_df), SP_EVALUE (one cluster level,
   leverage 1, negative weight or code, bad period codes, a Driscoll-Kraay lag
   above T - 1, threads not 1 or 2), SP_EMISSING
   (non-finite residual or weight), SP_ENOMEM, SP_ESINGULAR (eigen failure). */
int sp_vcov_compute(const gsl_matrix *X, const double *resid, const gsl_matrix *bread,
                    const sp_vcov_spec *spec, gsl_matrix *V, sp_vcov_info *info,
                    sp_error *err);

/* sp_vcov_compute with X (n x k, the kept regressors) read from a source
   (rows.h) a block of rows at a time, never stored whole: the same V and
   info to the last bit as sp_vcov_compute on the materialised X, for every
   type and thread count (the passes group the rows as they do for a
   matrix).  HC types and Driscoll-Kraay read X once, clusters once per
   inclusion-exclusion term; IID never.  resid NULL: the residuals are
   column 0 of X's rows and the regressors columns 1.. (k = X->p - 1; the
   rows of sp_lsfit_resid), so that no residual is stored; IID then reads
   the rows once.  The sum of squared residuals (info->ssr) comes from the
   first pass over the rows either way. */
int sp_vcov_compute_rows(const sp_rows *X, const double *resid, const gsl_matrix *bread,
                         const sp_vcov_spec *spec, gsl_matrix *V, sp_vcov_info *info,
                         sp_error *err);

/* "iid", "HC0", ..., "cluster", "driscoll-kraay". */
const char *sp_vcov_type_name(sp_vcov_type t);

#endif
