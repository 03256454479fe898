/*
** vcov.c: sandwich variance estimators (see vcov.h).
**
** V = dof * B M B.  Every meat is a sum of outer products of k-vectors of
** scores u_i x_i (u_i = w_i e_i): per observation (HC), per cluster (one- and
** multi-way) or per period (Driscoll-Kraay).  The scores are accumulated in
** one pass over the rows into a G x k (or T x k) array S and the meat is S'S,
** formed by BLAS dsyrk.  HC meats go through a block of rows at a time so that
** the memory stays O(block * k) at any n.
**
** The passes over the rows run on the two fixed chunks of team.h, each into
** its own accumulator, added in chunk order: spec->threads changes the wall
** time, never the bits.  X is a matrix or a row source (rows.h, never
** stored whole): the HC meat takes the same HC_BLOCK-row blocks from
** either, and the per-group scores add row by row, so a source gives the
** matrix's V to the bit.  The residuals are an array beside X, or column 0
** of a source's rows (sp_lsfit_resid): then no residual is ever stored.
** The sum of squared residuals (and the smallest weight, which shows a bad
** one) is taken by the first pass over the rows, whatever its kind, so a
** source is read no more often than it must be.
*/
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_blas.h>
#include <gsl/gsl_cblas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>

#include "spillover/inline.h"
#include "spillover/mem.h"
#include "spillover/rows.h"
#include "spillover/vcov.h"
#include "team.h"

#define HC_BLOCK 512
/* Above this many possible keys a hash table recodes the groups instead of a
   direct lookup array. */
#define DIRECT_MIN ((uint64_t)1 << 20)
/* Period codes index a T x k array; refuse absurd codes instead of allocating. */
#define MAX_PERIOD_CODE ((int32_t)1 << 26)

const char *sp_vcov_type_name(sp_vcov_type t) {
  switch (t) {
    case SP_VCOV_IID: return "iid";
    case SP_VCOV_HC0: return "HC0";
    case SP_VCOV_HC1: return "HC1";
    case SP_VCOV_HC2: return "HC2";
    case SP_VCOV_HC3: return "HC3";
    case SP_VCOV_CLUSTER: return "cluster";
    case SP_VCOV_DRISCOLL_KRAAY: return "driscoll-kraay";
  }
  return "unknown";
}

void sp_vcov_spec_init(sp_vcov_spec *s, sp_vcov_type type) {
  memset(s, 0, sizeof *s);
  s->type = type;
  s->dof = SP_VCOV_DOF_DEFAULT;
  s->gadj = SP_VCOV_GADJ_NONE;
  s->tdf = SP_VCOV_TDF_RESID;
  s->lag = -1;
  s->threads = 1;
}

/* {====================================================== presets */

/* One row per package convention: everything spillover knows about a preset
   (the C corrections here, and the k_df and t-df rules the Lua estimators
   apply, read through sp.vcov_presets()).  IID and HC1 always take n/(n-k)
   and the other heteroskedastic types no factor, so only the cluster and
   Driscoll-Kraay columns differ. */
static const sp_vcov_preset_def presets[] = {
  /* vcovCL type "HC1" (its default for lm), cadjust = TRUE, multi0 = FALSE,
     fix = FALSE; coeftest uses t(n - k). */
  {"sandwich", SP_VCOV_GADJ_EACH, SP_VCOV_DOF_N1_K, SP_VCOV_TDF_RESID, 0, 0,
   SP_VCOV_GADJ_NONE, SP_VCOV_DOF_NONE, SP_VCOV_TDF_RESID, SP_VCOV_KDF_RANK, 0},
  /* vcovHC arellano type "HC0" (plm's default), vcovDC HC0 (double
     clustering subtracts the White meat), vcovSCC HC0; summary uses t(n - k). */
  {"plm", SP_VCOV_GADJ_NONE, SP_VCOV_DOF_NONE, SP_VCOV_TDF_RESID, 1, 0,
   SP_VCOV_GADJ_NONE, SP_VCOV_DOF_NONE, SP_VCOV_TDF_RESID, SP_VCOV_KDF_RANK, 0},
  /* Stata: regress/xtreg vce(cluster) G/(G-1) (n-1)/(n-k) with t(G-1);
     multi-way as reghdfe (Gmin) with the eigenvalue fix; xtscc (version 1.3
     on, without ase) T/(T-1) (n-1)/(n-k) with t(T-1): its xtscc.ado scales
     the Driscoll-Kraay V by (TT/(TT-1))*((nObs-1)/(nObs-rank)). */
  {"stata", SP_VCOV_GADJ_MIN, SP_VCOV_DOF_N1_K, SP_VCOV_TDF_CLUSTERS, 0, 1,
   SP_VCOV_GADJ_EACH, SP_VCOV_DOF_N1_K, SP_VCOV_TDF_CLUSTERS, SP_VCOV_KDF_NONNESTED, 1},
  /* fixest: ssc() defaults adj = TRUE, cluster.adj = TRUE, cluster.df =
     "min", t.df = "min", vcov_fix = TRUE. */
  {"fixest", SP_VCOV_GADJ_MIN, SP_VCOV_DOF_N1_K, SP_VCOV_TDF_CLUSTERS, 0, 1,
   SP_VCOV_GADJ_NONE, SP_VCOV_DOF_N1_K, SP_VCOV_TDF_CLUSTERS, SP_VCOV_KDF_NONNESTED, 1},
  /* cov_type "cluster" (use_correction, df_correction): each term of the
     two-way formula with its own G/(G-1) (n-1)/(n-k); t(Gmin - 1).  LSDV:
     K counts every dummy. */
  {"statsmodels", SP_VCOV_GADJ_EACH, SP_VCOV_DOF_N1_K, SP_VCOV_TDF_CLUSTERS, 0, 0,
   SP_VCOV_GADJ_NONE, SP_VCOV_DOF_NONE, SP_VCOV_TDF_RESID, SP_VCOV_KDF_ALL, 1},
};

const sp_vcov_preset_def *sp_vcov_presets(size_t *n) {
  *n = sizeof presets / sizeof presets[0];
  return presets;
}

int sp_vcov_preset(sp_vcov_spec *s, const char *compat, sp_error *err) {
  const sp_vcov_preset_def *p = NULL;
  for (size_t i = 0; compat != NULL && i < sizeof presets / sizeof presets[0]; i++)
    if (strcmp(compat, presets[i].name) == 0) p = &presets[i];
  if (p == NULL)
    return sp_error_set(err, SP_EVALUE,
                        "unknown vcov convention '%s': expected \"sandwich\", \"plm\", "
                        "\"stata\", \"fixest\" or \"statsmodels\"", compat ? compat : "");
  const int iid_or_hc1 = (s->type == SP_VCOV_IID || s->type == SP_VCOV_HC1);
  s->multi0 = 0;
  s->fix_psd = 0;
  s->gadj = SP_VCOV_GADJ_NONE;
  s->tdf = SP_VCOV_TDF_RESID;
  s->dof = iid_or_hc1 ? SP_VCOV_DOF_N_K : SP_VCOV_DOF_NONE;
  if (s->type == SP_VCOV_CLUSTER) {
    s->gadj = p->cluster_gadj;
    s->dof = p->cluster_dof;
    s->tdf = p->cluster_tdf;
    s->multi0 = p->cluster_multi0;
    s->fix_psd = p->cluster_fix_psd;
  } else if (s->type == SP_VCOV_DRISCOLL_KRAAY) {
    s->gadj = p->dk_gadj;
    s->dof = p->dk_dof;
    s->tdf = p->dk_tdf;
  }
  return SP_OK;
}

/* }====================================================== */

/* {====================================================== group recoding */

/* out[i] = dense code in [0, G) of the key (a[i] * nb + b[i]), numbered in
   order of first appearance; a may be NULL (key = b[i]).  range bounds the
   keys.  Small ranges use a lookup array, large ones an open-addressing hash
   table of about 2n slots.  Returns SP_OK or SP_ENOMEM. */
static int densify(size_t n, const int32_t *a, const int32_t *b, uint64_t nb, uint64_t range,
                   int32_t *out, size_t *G) {
  size_t g = 0;
  /* Codes are int32 (the frame's categorical codes), so G < 2^31. */
  uint64_t direct_max = (uint64_t)n * 4 > DIRECT_MIN ? (uint64_t)n * 4 : DIRECT_MIN;
  if (range <= direct_max) {
    int32_t *map = sp_mem_alloc((size_t)range * sizeof *map);
    if (map == NULL) return SP_ENOMEM;
    memset(map, 0xff, (size_t)range * sizeof *map);  /* all -1 */
    for (size_t i = 0; i < n; i++) {
      uint64_t key = (a ? (uint64_t)a[i] * nb : 0) + (uint64_t)b[i];
      if (map[key] < 0) map[key] = (int32_t)g++;
      out[i] = map[key];
    }
    sp_mem_free(map);
  } else {
    unsigned bits = 1;
    while (((size_t)1 << bits) < 2 * n) bits++;
    size_t cap = (size_t)1 << bits, mask = cap - 1;
    uint64_t *keys = sp_mem_alloc(cap * sizeof *keys);
    int32_t *vals = sp_mem_alloc(cap * sizeof *vals);
    if (keys == NULL || vals == NULL) {
      sp_mem_free(keys);
      sp_mem_free(vals);
      return SP_ENOMEM;
    }
    memset(vals, 0xff, cap * sizeof *vals);
    for (size_t i = 0; i < n; i++) {
      uint64_t key = (a ? (uint64_t)a[i] * nb : 0) + (uint64_t)b[i];
      size_t h = (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - bits)) & mask;
      while (vals[h] >= 0 && keys[h] != key) h = (h + 1) & mask;
      if (vals[h] < 0) {
        keys[h] = key;
        vals[h] = (int32_t)g++;
      }
      out[i] = vals[h];
    }
    sp_mem_free(keys);
    sp_mem_free(vals);
  }
  *G = g;
  return SP_OK;
}

/* }====================================================== */

/* {====================================================== meats */

static double score_weight(const double *w, size_t i) { return w ? w[i] : 1.0; }

/* X and the residuals as the passes read them: a matrix or a source of
   X's rows (rows.h) with the residuals in an array, or a source of the rows
   [e X] (ecol: the residual in column 0). */
typedef struct {
  const gsl_matrix *M;
  const sp_rows *src;
  const double *resid;  /* unless ecol */
  int ecol;
  size_t n, k;          /* k regressors: a source's rows are k + ecol wide */
} xrows;

static size_t xrows_width(const xrows *X) { return X->k + (size_t)X->ecol; }

/* Rows [r0, r1): row i - r0 of X at x + (i - r0) * tda, its residual at
   e[(i - r0) * es]. */
typedef struct {
  const double *x, *e;
  size_t tda, es;
} xview;

/* Rows [r0, r1): a matrix's in place, a source's read into buf ((r1 - r0)
   rows of xrows_width), SP_ROWS_BLOCK rows at a time. */
static xview xrows_get(const xrows *X, size_t r0, size_t r1, double *buf) {
  if (X->src == NULL) return (xview){X->M->data + r0 * X->M->tda, X->resid + r0, X->M->tda, 1};
  size_t p = xrows_width(X);
  for (size_t a = r0; a < r1; a += SP_ROWS_BLOCK)
    X->src->read(X->src, a, r1 - a < SP_ROWS_BLOCK ? r1 : a + SP_ROWS_BLOCK, buf + (a - r0) * p, p);
  if (X->ecol) return (xview){buf + 1, buf, p, p};
  return (xview){buf, X->resid + r0, p, 1};
}

/* The residual of row i (the error path: one row read from a source). */
static double xrows_resid(const xrows *X, size_t i) {
  if (!X->ecol) return X->resid[i];
  double row[SP_ROWS_MAXSEL];
  X->src->read(X->src, i, i + 1, row, xrows_width(X));
  return row[0];
}

/* Each chunk's sum of w e^2 and smallest weight, from the first pass over
   the rows (when a pass is given one): added in chunk order, as least
   squares adds its own, so the sum is the bits sp_lsfit_run reports. */
typedef struct {
  double ssr[SP_TEAM_CHUNKS], wmin[SP_TEAM_CHUNKS];
} rsums;

/* Where a pass over rows [r0, i1) that reads row by row stops its view:
   a matrix's rows are all in place, a source gives SP_ROWS_BLOCK at once. */
static size_t xrows_end(const xrows *X, size_t r0, size_t i1) {
  return X->src == NULL || i1 - r0 < SP_ROWS_BLOCK ? i1 : r0 + SP_ROWS_BLOCK;
}

/* M(upper) += alpha * sum_g S_g S_g', S being G x k row-major. */
static void add_crossprod(double *M, size_t k, const double *S, size_t G, double alpha) {
  if (G == 0) return;
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)G, alpha, S, (int)k, 1.0,
              M, (int)k);
}

/* The HC meat, alpha * sum_i (u_i c_i)^2 x_i x_i' with c_i = 1, (1-h)^-1/2 or
   (1-h)^-1 by power 0, 1, 2: each chunk into its own upper triangle M[c], a
   block of rows at a time through its scratch Z (and T, the rows times B). */
typedef struct {
  const xrows *X;
  const gsl_matrix *B;
  const double *w;
  int power;
  double alpha;
  rsums *rs;                    /* NULL: not wanted */
  double *M[SP_TEAM_CHUNKS], *Z[SP_TEAM_CHUNKS], *T[SP_TEAM_CHUNKS];
  double *R[SP_TEAM_CHUNKS];    /* a source's rows, HC_BLOCK x its width */
  size_t bad[SP_TEAM_CHUNKS];   /* the chunk's first row of leverage 1, or SIZE_MAX */
  double badh[SP_TEAM_CHUNKS];
} hc_job;

static void hc_chunk(void *ctx, int c) {
  hc_job *j = ctx;
  const xrows *X = j->X;
  size_t i0, i1, k = X->k;
  double *Z = j->Z[c], *T = j->T[c], ssr = 0.0, wmin = INFINITY;
  sp_team_range(X->n, c, &i0, &i1);
  /* blocks of HC_BLOCK rows whatever X is: the products, so the bits, are
     the same from a matrix as from a source */
  for (size_t r0 = i0; r0 < i1; r0 += HC_BLOCK) {
    size_t m = i1 - r0 < HC_BLOCK ? i1 - r0 : HC_BLOCK;
    xview v = xrows_get(X, r0, r0 + m, j->R[c]);
    if (j->power > 0)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)k, 1.0, v.x,
                  (int)v.tda, j->B->data, (int)j->B->tda, 0.0, T, (int)k);
    for (size_t r = 0; r < m; r++) {
      size_t i = r0 + r;
      const double *x = v.x + r * v.tda;
      double wi = score_weight(j->w, i), e = v.e[r * v.es], u = wi * e;
      ssr += u * e;
      wmin = wi < wmin ? wi : wmin;
      if (j->power > 0) {
        double h = 0.0;
        for (size_t a = 0; a < k; a++) h += T[r * k + a] * x[a];
        h *= score_weight(j->w, i);
        if (!(h < 1.0 - 1e-10)) {
          j->bad[c] = i;
          j->badh[c] = h;
          return;
        }
        u /= (j->power == 1) ? sqrt(1.0 - h) : (1.0 - h);
      }
      for (size_t a = 0; a < k; a++) Z[r * k + a] = u * x[a];
    }
    add_crossprod(j->M[c], k, Z, m, j->alpha);
  }
  if (j->rs) {
    j->rs->ssr[c] = ssr;
    j->rs->wmin[c] = wmin;
  }
}

/* The HC meat added into M's upper triangle, the chunks' in chunk order. */
static int hc_meat(sp_team *tm, const xrows *X, const double *w, const gsl_matrix *B, int power, double alpha,
                   double *M, rsums *rs, sp_error *err) {
  size_t k = X->k;
  /* a chunk's M, Z, T and a source's rows */
  size_t per = k * k + HC_BLOCK * k * (power > 0 ? 2 : 1) + (X->src ? HC_BLOCK * xrows_width(X) : 0);
  hc_job j = {X, B, w, power, alpha, rs, {0}, {0}, {0}, {0}, {0}, {0}};
  double *buf = sp_team_bufs(per, j.M);
  if (buf == NULL)
    return sp_error_set(err, SP_ENOMEM, "out of memory for the HC meat (%zu columns)", k);
  for (int c = 0; c < SP_TEAM_CHUNKS; c++) {
    j.Z[c] = j.M[c] + k * k;
    j.T[c] = power > 0 ? j.Z[c] + HC_BLOCK * k : NULL;
    j.R[c] = X->src ? j.Z[c] + HC_BLOCK * k * (power > 0 ? 2 : 1) : NULL;
    j.bad[c] = SIZE_MAX;
  }
  sp_team_run(tm, hc_chunk, &j);
  for (int c = 0; c < SP_TEAM_CHUNKS; c++)
    if (j.bad[c] != SIZE_MAX) {  /* chunk 0's rows come first: the first such row overall */
      free(buf);
      return sp_error_set(err, SP_EVALUE,
                          "observation %zu has leverage h_ii = %.17g (1 means it alone "
                          "determines a coefficient): HC2/HC3 divide by 1 - h_ii; drop "
                          "the observation or use HC0/HC1", j.bad[c] + 1, j.badh[c]);
    }
  for (int c = 0; c < SP_TEAM_CHUNKS; c++)
    for (size_t t = 0; t < k * k; t++) M[t] += j.M[c][t];
  free(buf);
  return SP_OK;
}

/* Per-group scores over the chunks: chunk c adds u_i x_i into row
   code[i] - off[c] of S[c]; k is a constant where inlined. */
typedef struct {
  const xrows *X;
  const double *w;
  const int32_t *code;
  rsums *rs;                                       /* NULL: not wanted */
  double *S[SP_TEAM_CHUNKS];
  int32_t off[SP_TEAM_CHUNKS];
  double *R[SP_TEAM_CHUNKS];                       /* a source's rows, SP_ROWS_BLOCK x its width */
} scores_job;

/* One pass over a vector of codes, each chunk its own: its smallest and
   largest code, and whether each row's code is the previous row's or the
   next integer (a sorted panel's entities: the codes are then in first
   appearance order when the first is 0).  Branch-free, so it vectorises. */
typedef struct {
  const int32_t *code;
  size_t n;
  int32_t lo[SP_TEAM_CHUNKS], hi[SP_TEAM_CHUNKS];
  unsigned steps[SP_TEAM_CHUNKS];
} code_scan;

static void code_scan_chunk(void *ctx, int c) {
  code_scan *j = ctx;
  size_t i0, i1;
  int32_t lo = INT32_MAX, hi = -1;
  unsigned bad = 0;
  sp_team_range(j->n, c, &i0, &i1);
  const int32_t *v = j->code;
  for (size_t i = i0; i < i1; i++) {
    lo = v[i] < lo ? v[i] : lo;
    hi = v[i] > hi ? v[i] : hi;
  }
  for (size_t i = i0 > 0 ? i0 : 1; i < i1; i++) bad |= (uint32_t)v[i] - (uint32_t)v[i - 1] > 1u;
  j->lo[c] = lo;
  j->hi[c] = hi;
  j->steps[c] = !bad;
}

/* Whether each new code of c, in row order, is the next integer. */
static int first_appearance(const int32_t *c, size_t n) {
  int32_t m = -1;
  for (size_t i = 0; i < n; i++)
    if (c[i] > m) {
      if (c[i] != m + 1) return 0;
      m = c[i];
    }
  return 1;
}

static void scan_codes(sp_team *tm, const int32_t *code, size_t n, code_scan *cs) {
  *cs = (code_scan){code, n, {0}, {0}, {0}};
  sp_team_run(tm, code_scan_chunk, cs);
}

/* Rows [i0, i1) of the view v (row i at i - i0); sums[0] += w e^2 and
   sums[1] = min(sums[1], w) over them.  For up to RUN_MAX columns the sums
   of the current group are carried in registers while its code repeats (a
   sorted panel's entities) and stored when it changes: the same additions
   in the same order as adding into S row by row, without each add waiting
   for the previous row's store. */
enum { RUN_MAX = 4 };
SP_INLINE void scores_pass(xview v, const double *restrict w, const int32_t *restrict code, size_t i0, size_t i1,
                           int32_t off, double *restrict S, double *restrict sums, const size_t k) {
  double ssr = sums[0], wmin = sums[1];
  if (k > RUN_MAX || i0 >= i1) {
    for (size_t i = i0; i < i1; i++) {
      const double *restrict x = v.x + (i - i0) * v.tda;
      double wi = score_weight(w, i), e = v.e[(i - i0) * v.es], u = wi * e;
      double *restrict s = S + (size_t)(code[i] - off) * k;
      ssr += u * e;
      wmin = wi < wmin ? wi : wmin;
      for (size_t j = 0; j < k; j++) s[j] += u * x[j];
    }
    sums[0] = ssr;
    sums[1] = wmin;
    return;
  }
  int32_t cur = code[i0];
  double run[RUN_MAX];
  for (size_t j = 0; j < k; j++) run[j] = S[(size_t)(cur - off) * k + j];
  for (size_t i = i0; i < i1; i++) {
    const double *restrict x = v.x + (i - i0) * v.tda;
    double wi = score_weight(w, i), e = v.e[(i - i0) * v.es], u = wi * e;
    ssr += u * e;
    wmin = wi < wmin ? wi : wmin;
    if (code[i] != cur) {
      for (size_t j = 0; j < k; j++) {
        S[(size_t)(cur - off) * k + j] = run[j];
        run[j] = S[(size_t)(code[i] - off) * k + j];
      }
      cur = code[i];
    }
    for (size_t j = 0; j < k; j++) run[j] += u * x[j];
  }
  for (size_t j = 0; j < k; j++) S[(size_t)(cur - off) * k + j] = run[j];
  sums[0] = ssr;
  sums[1] = wmin;
}

static void scores_chunk(void *ctx, int c) {
  scores_job *j = ctx;
  const xrows *X = j->X;
  size_t i0, i1;
  double sums[2] = {0.0, INFINITY};
  sp_team_range(X->n, c, &i0, &i1);
  /* row by row into S: reading the rows in views changes no sum */
  for (size_t r0 = i0, r1; r0 < i1; r0 = r1) {
    r1 = xrows_end(X, r0, i1);
    xview v = xrows_get(X, r0, r1, j->R[c]);
    switch (X->k) {
      case 1: scores_pass(v, j->w, j->code, r0, r1, j->off[c], j->S[c], sums, 1); break;
      case 2: scores_pass(v, j->w, j->code, r0, r1, j->off[c], j->S[c], sums, 2); break;
      case 3: scores_pass(v, j->w, j->code, r0, r1, j->off[c], j->S[c], sums, 3); break;
      case 4: scores_pass(v, j->w, j->code, r0, r1, j->off[c], j->S[c], sums, 4); break;
      default: scores_pass(v, j->w, j->code, r0, r1, j->off[c], j->S[c], sums, X->k); break;
    }
  }
  if (j->rs) {
    j->rs->ssr[c] = sums[0];
    j->rs->wmin[c] = sums[1];
  }
}

/* S (G x k, zeroed by the caller) = per-group sums of u_i x_i.  Chunk 0 adds
   into S; so does chunk 1 when all its codes are above chunk 0's (a sorted
   panel's entities, an intersection of dimensions: S may hold n rows, and is
   not doubled), else it fills a table of its own code range, added after.
   known: the codes' scan when the caller made it, else NULL.  Returns SP_OK
   or SP_ENOMEM. */
static int group_scores(sp_team *tm, const xrows *X, const double *w, const int32_t *code, const code_scan *known,
                        double *S, rsums *rs) {
  size_t k = X->k, p = xrows_width(X), g1 = 0;
  double *S1 = NULL, *R = NULL;
  scores_job j = {X, w, code, rs, {S, S}, {0, 0}, {NULL, NULL}};
  if (X->src) {
    if ((R = sp_team_bufs(SP_ROWS_BLOCK * p, j.R)) == NULL) return SP_ENOMEM;
  }
  code_scan sc;
  if (known == NULL) scan_codes(tm, code, X->n, &sc);
  const code_scan *r = known ? known : &sc;
  if (r->lo[1] <= r->hi[0]) {
    g1 = (size_t)(r->hi[1] - r->lo[1]) + 1;
    if ((S1 = sp_mem_calloc(g1, k * sizeof *S1)) == NULL) {
      free(R);
      return SP_ENOMEM;
    }
    j.S[1] = S1;
    j.off[1] = r->lo[1];
  }
  sp_team_run(tm, scores_chunk, &j);
  free(R);
  if (S1 != NULL) {
    double *s = S + (size_t)r->lo[1] * k;
    for (size_t t = 0; t < g1 * k; t++) s[t] += S1[t];
    sp_mem_free(S1);
  }
  return SP_OK;
}

static const char *dim_name(const sp_vcov_spec *s, size_t d, char *buf, size_t size) {
  if (s->cluster_name[d] != NULL) return s->cluster_name[d];
  snprintf(buf, size, "cluster %zu", d + 1);
  return buf;
}

/* Cameron-Gelbach-Miller: M = sum over non-empty subsets D of the dimensions
   of (-1)^(|D|+1) adj_D S_D'S_D, S_D the scores summed within the
   intersection of the dimensions in D. */
static int cluster_meat(sp_team *tm, const xrows *X, const sp_vcov_spec *s, double dof, double *M,
                        sp_vcov_info *info, rsums *rs, sp_error *err) {
  size_t n = X->n, k = X->k, p = s->ncluster;
  int32_t *dense[SP_VCOV_MAXWAY] = {0};       /* recoded copies, owned */
  const int32_t *dc[SP_VCOV_MAXWAY] = {0};    /* each dimension's dense codes */
  size_t G[SP_VCOV_MAXWAY] = {0};
  int32_t *cur = NULL, *tmp = NULL;
  double *S = NULL;
  int st = SP_OK;
  char nb[32];

  code_scan scan[SP_VCOV_MAXWAY];
  for (size_t d = 0; d < p; d++) {
    const int32_t *c = s->cluster[d];
    scan_codes(tm, c, n, &scan[d]);
    if (scan[d].lo[0] < 0 || scan[d].lo[1] < 0) {
      size_t i = 0;
      while (c[i] >= 0) i++;
      st = sp_error_set(err, SP_EVALUE,
                        "cluster variable '%s' has a missing or negative code (%d) at "
                        "observation %zu: expected codes 0..G-1 on every row",
                        dim_name(s, d, nb, sizeof nb), (int)c[i], i + 1);
      sp_error_var(err, dim_name(s, d, nb, sizeof nb));
      goto done;
    }
    int32_t mx = scan[d].hi[0] > scan[d].hi[1] ? scan[d].hi[0] : scan[d].hi[1];
    /* Each new code the next integer (densify would return c itself): at
       once for a sorted panel's entities, else by a pass in row order. */
    int first_order = (n > 0 && c[0] == 0 && scan[d].steps[0] && scan[d].steps[1]) || first_appearance(c, n);
    if (first_order) {
      /* A sorted panel's entity codes (the usual case): no copy, 40 MB at 1e7 rows. */
      dc[d] = c;
      G[d] = (size_t)mx + 1;
    } else {
      dense[d] = sp_mem_alloc(n * sizeof(int32_t));
      if (dense[d] == NULL) goto nomem;
      if (densify(n, NULL, c, 0, (uint64_t)mx + 1, dense[d], &G[d]) != SP_OK) goto nomem;
      dc[d] = dense[d];
    }
    if (G[d] < 2) {
      st = sp_error_set(err, SP_EVALUE,
                        "cluster variable '%s' has a single level: clustered standard errors "
                        "need at least 2 clusters", dim_name(s, d, nb, sizeof nb));
      sp_error_var(err, dim_name(s, d, nb, sizeof nb));
      goto done;
    }
    info->ngroups[d] = G[d];
  }
  size_t Gmin = G[0];
  for (size_t d = 1; d < p; d++)
    if (G[d] < Gmin) Gmin = G[d];

  if (p > 1) {
    cur = sp_mem_alloc(n * sizeof *cur);
    tmp = sp_mem_alloc(n * sizeof *tmp);
    if (cur == NULL || tmp == NULL) goto nomem;
  }
  size_t full = ((size_t)1 << p) - 1;
  info->nterms = full;
  for (size_t set = 1; set <= full; set++) {
    /* the term's codes: one dimension directly, or the intersection built by
       recoding pairs (cur x next dimension) so every key stays below n^2. */
    const int32_t *code = NULL;
    const code_scan *known = NULL;  /* the scan of code, when it is a dimension's own */
    size_t g = 0, size = 0;
    for (size_t d = 0; d < p; d++) {
      if (!(set & ((size_t)1 << d))) continue;
      if (size++ == 0) {
        code = dc[d];
        g = G[d];
        known = dense[d] == NULL ? &scan[d] : NULL;
      } else {
        known = NULL;
        if (densify(n, code, dc[d], G[d], (uint64_t)g * G[d], tmp, &g) != SP_OK) goto nomem;
        int32_t *t = cur; cur = tmp; tmp = t;
        code = cur;
      }
    }
    double sign = (size % 2 == 1) ? 1.0 : -1.0;
    double adj;
    if (s->multi0 && p > 1 && set == full) {
      /* The plain White meat, exempt from G and dof factors (sandwich
         multi0 = TRUE, plm vcovDC); dof is applied to all of V later. */
      adj = 1.0 / dof;
      info->gadj[set - 1] = 1.0;
      if ((st = hc_meat(tm, X, s->weights, NULL, 0, sign * adj, M, NULL, err)) != SP_OK) goto done;
      continue;
    }
    switch (s->gadj) {
      case SP_VCOV_GADJ_EACH: adj = (double)g / (double)(g - 1); break;
      case SP_VCOV_GADJ_MIN: adj = (double)Gmin / (double)(Gmin - 1); break;
      default: adj = 1.0; break;
    }
    if (g < 2) adj = 1.0;  /* an intersection with one cell only (cannot happen for g = n) */
    info->gadj[set - 1] = adj;
    S = sp_mem_calloc(g, k * sizeof *S);
    /* the first term's pass also sums the squared residuals */
    if (S == NULL || group_scores(tm, X, s->weights, code, known, S, set == 1 ? rs : NULL) != SP_OK) goto nomem;
    add_crossprod(M, k, S, g, sign * adj);
    sp_mem_free(S);
    S = NULL;
  }
  goto done;
nomem:
  st = sp_error_set(err, SP_ENOMEM, "out of memory for clustered scores (%zu rows, %zu columns)",
                    n, k);
done:
  for (size_t d = 0; d < p; d++) sp_mem_free(dense[d]);
  sp_mem_free(cur);
  sp_mem_free(tmp);
  sp_mem_free(S);
  return st;
}

/* Driscoll-Kraay: h_t = sum over period t of u_i x_i; M = sum_t h_t h_t' +
   sum_{l=1..L} (1 - l/(L+1)) sum_t (h_t h_{t-l}' + h_{t-l} h_t').  M is full
   on return (not only the upper triangle). */
static int dk_meat(sp_team *tm, const xrows *X, const sp_vcov_spec *s, double *M, sp_vcov_info *info, rsums *rs,
                   sp_error *err) {
  size_t n = X->n, k = X->k;
  const char *tn = s->time_name ? s->time_name : "time";
  if (s->time == NULL)
    return sp_error_set(err, SP_EVALUE, "Driscoll-Kraay standard errors need period codes "
                        "(spec.time): none were given");
  code_scan scan;
  scan_codes(tm, s->time, n, &scan);
  int32_t lo = scan.lo[0] < scan.lo[1] ? scan.lo[0] : scan.lo[1];
  int32_t mx = scan.hi[0] > scan.hi[1] ? scan.hi[0] : scan.hi[1];
  if (lo < 0 || mx >= MAX_PERIOD_CODE) {
    size_t i = 0;
    while (s->time[i] >= 0 && s->time[i] < MAX_PERIOD_CODE) i++;
    sp_error_set(err, SP_EVALUE, "time variable '%s' has code %d at observation %zu: expected "
                 "period positions 0..T-1", tn, (int)s->time[i], i + 1);
    sp_error_var(err, tn);
    return SP_EVALUE;
  }
  size_t T = (size_t)mx + 1;
  /* A lag of T or more would weight autocovariances that do not exist (and
     a huge one scales the long-run variance to nothing). */
  if (s->lag >= 0 && (size_t)s->lag > T - 1) {
    sp_error_set(err, SP_EVALUE, "Driscoll-Kraay lag %ld is out of range: expected an integer 0 <= lag <= T - 1 "
                 "= %zu (T = %zu periods of '%s')", s->lag, T - 1, T, tn);
    sp_error_var(err, tn);
    return SP_EVALUE;
  }
  double *H = sp_mem_calloc(T, k * sizeof *H);
  double *C = malloc(k * k * sizeof *C);
  if (H == NULL || C == NULL || group_scores(tm, X, s->weights, s->time, &scan, H, rs) != SP_OK) {
    sp_mem_free(H);
    free(C);
    return sp_error_set(err, SP_ENOMEM, "out of memory for %zu periods x %zu columns", T, k);
  }
  size_t used = 0;
  for (size_t t = 0; t < T; t++) {
    for (size_t j = 0; j < k; j++)
      if (H[t * k + j] != 0.0) { used++; break; }
  }
  /* Periods in which every score is exactly zero are counted as absent; with
     real data that only happens for codes nobody uses. */
  info->nperiods = used;
  long L = s->lag;
  if (L < 0) L = (long)floor(pow((double)used, 0.25));
  info->lag = L;
  add_crossprod(M, k, H, T, 1.0);
  for (size_t a = 0; a < k; a++)
    for (size_t b = 0; b < a; b++) M[a * k + b] = M[b * k + a];
  for (long l = 1; l <= L && (size_t)l < T; l++) {
    double wl = 1.0 - (double)l / (double)(L + 1);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)k, (int)(T - (size_t)l), wl,
                H + (size_t)l * k, (int)k, H, (int)k, 0.0, C, (int)k);
    for (size_t a = 0; a < k; a++)
      for (size_t b = 0; b < k; b++) M[a * k + b] += C[a * k + b] + C[b * k + a];
  }
  sp_mem_free(H);
  free(C);
  return SP_OK;
}

/* }====================================================== */

/* Clip negative eigenvalues of the symmetric V to zero, V = Q max(L,0) Q'. */
static int fix_psd(gsl_matrix *V, size_t *nclipped, sp_error *err) {
  size_t k = V->size1;
  gsl_matrix *A = gsl_matrix_alloc(k, k), *Q = gsl_matrix_alloc(k, k);
  gsl_vector *ev = gsl_vector_alloc(k);
  gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc(k);
  int st = SP_OK;
  *nclipped = 0;
  if (A == NULL || Q == NULL || ev == NULL || ws == NULL) {
    st = sp_error_set(err, SP_ENOMEM, "out of memory for the eigenvalue fix of V");
    goto done;
  }
  gsl_matrix_memcpy(A, V);
  if (gsl_eigen_symmv(A, ev, Q, ws) != GSL_SUCCESS) {
    st = sp_error_set(err, SP_ESINGULAR, "eigen-decomposition of the variance matrix failed");
    goto done;
  }
  for (size_t j = 0; j < k; j++)
    if (gsl_vector_get(ev, j) < 0) (*nclipped)++;
  if (*nclipped == 0) goto done;
  /* V = sum_j max(l_j, 0) q_j q_j' */
  for (size_t j = 0; j < k; j++) {
    double l = gsl_vector_get(ev, j);
    double sc = l > 0 ? sqrt(l) : 0.0;
    for (size_t a = 0; a < k; a++) gsl_matrix_set(Q, a, j, gsl_matrix_get(Q, a, j) * sc);
  }
  if (gsl_blas_dgemm(CblasNoTrans, CblasTrans, 1.0, Q, Q, 0.0, V) != GSL_SUCCESS)
    st = sp_error_set(err, SP_EDIM, "vcov: rebuilding V after the eigenvalue fix failed");
done:
  gsl_matrix_free(A);
  gsl_matrix_free(Q);
  gsl_vector_free(ev);
  if (ws) gsl_eigen_symmv_free(ws);
  return st;
}

static double dof_factor(sp_vcov_dof d, sp_vcov_type t, size_t n, size_t k) {
  if (d == SP_VCOV_DOF_DEFAULT)
    d = (t == SP_VCOV_IID || t == SP_VCOV_HC1) ? SP_VCOV_DOF_N_K : SP_VCOV_DOF_NONE;
  switch (d) {
    case SP_VCOV_DOF_N_K: return (double)n / (double)(n - k);
    case SP_VCOV_DOF_N1_K: return (double)(n - 1) / (double)(n - k);
    default: return 1.0;
  }
}

/* The IID covariance's own pass (no meat reads the rows): each chunk's
   sum of w e^2 and smallest weight into rs. */
typedef struct {
  const xrows *X;
  const double *w;
  rsums *rs;
  double *R[SP_TEAM_CHUNKS];  /* a source's rows, when the residuals are in them */
} ssr_job;

static void ssr_chunk(void *ctx, int c) {
  ssr_job *j = ctx;
  const xrows *X = j->X;
  size_t i0, i1;
  double ssr = 0.0, wmin = INFINITY;
  sp_team_range(X->n, c, &i0, &i1);
  for (size_t r0 = i0, r1; r0 < i1; r0 = r1) {
    r1 = X->ecol ? xrows_end(X, r0, i1) : i1;
    const double *e = X->resid + r0;
    size_t es = 1;
    if (X->ecol) {
      xview v = xrows_get(X, r0, r1, j->R[c]);
      e = v.e;
      es = v.es;
    }
    for (size_t i = r0; i < r1; i++) {
      double w = score_weight(j->w, i), u = w * e[(i - r0) * es];
      ssr += u * e[(i - r0) * es];
      wmin = w < wmin ? w : wmin;
    }
  }
  j->rs->ssr[c] = ssr;
  j->rs->wmin[c] = wmin;
}

static int iid_sums(sp_team *tm, const xrows *X, const double *w, rsums *rs) {
  ssr_job j = {X, w, rs, {NULL, NULL}};
  double *R = NULL;
  if (X->ecol) {
    size_t p = xrows_width(X);
    if ((R = sp_team_bufs(SP_ROWS_BLOCK * p, j.R)) == NULL) return SP_ENOMEM;
  }
  sp_team_run(tm, ssr_chunk, &j);
  free(R);
  return SP_OK;
}

/* sp_vcov_compute on X and the residuals (NULL when the caller's X is). */
static int compute(const xrows *X, const gsl_matrix *bread, const sp_vcov_spec *spec, gsl_matrix *V,
                   sp_vcov_info *info, sp_error *err) {
  sp_vcov_info local;
  gsl_matrix *Mm = NULL, *BM = NULL;
  int st = SP_OK;
  if (info == NULL) info = &local;
  memset(info, 0, sizeof *info);
  if (X == NULL || (!X->ecol && X->resid == NULL) || bread == NULL || spec == NULL || V == NULL)
    return sp_error_set(err, SP_EVALUE, "vcov: X, residuals, bread, spec and V are all required");
  size_t n = X->n, k = X->k;
  size_t kd = spec->k_df ? spec->k_df : k;
  if (bread->size1 != k || bread->size2 != k)
    return sp_error_set(err, SP_EDIM, "vcov: the bread is %zux%zu but X has %zu columns: "
                        "expected a %zux%zu (X'X)^-1", bread->size1, bread->size2, k, k, k);
  if (V->size1 != k || V->size2 != k)
    return sp_error_set(err, SP_EDIM, "vcov: the output V is %zux%zu: expected %zux%zu",
                        V->size1, V->size2, k, k);
  if (n <= kd)
    return sp_error_set(err, SP_EDF, "vcov: %zu observations for %zu parameters: the variance "
                        "needs more observations than parameters (n > k)", n, kd);
  if (spec->type == SP_VCOV_CLUSTER && (spec->ncluster < 1 || spec->ncluster > SP_VCOV_MAXWAY))
    return sp_error_set(err, SP_EVALUE, "vcov: clustered standard errors need 1 to %d cluster "
                        "variables, got %zu", SP_VCOV_MAXWAY, spec->ncluster);
  for (size_t d = 0; spec->type == SP_VCOV_CLUSTER && d < spec->ncluster; d++)
    if (spec->cluster[d] == NULL)
      return sp_error_set(err, SP_EVALUE, "vcov: cluster variable %zu has no codes", d + 1);
  if ((unsigned)spec->type > SP_VCOV_DRISCOLL_KRAAY)
    return sp_error_set(err, SP_EVALUE, "vcov: unknown type %d", (int)spec->type);
  if (spec->threads != 1 && spec->threads != 2)
    return sp_error_set(err, SP_EVALUE, "vcov: threads must be 1 or 2, got %d", spec->threads);

  sp_team tm;
  sp_team_start(&tm, n >= SP_TEAM_MIN_ROWS ? spec->threads : 1);
  rsums rs = {{0.0, 0.0}, {INFINITY, INFINITY}};
  double dof = dof_factor(spec->dof, spec->type, n, kd);
  if (spec->type == SP_VCOV_IID) {
    if (iid_sums(&tm, X, spec->weights, &rs) != SP_OK)
      st = sp_error_set(err, SP_ENOMEM, "vcov: out of memory for a block of rows");
  } else {
    Mm = gsl_matrix_calloc(k, k);
    BM = gsl_matrix_alloc(k, k);
    if (Mm == NULL || BM == NULL) {
      st = sp_error_set(err, SP_ENOMEM, "vcov: out of memory for a %zux%zu meat", k, k);
      goto done;
    }
    switch (spec->type) {
      case SP_VCOV_HC0:
      case SP_VCOV_HC1: st = hc_meat(&tm, X, spec->weights, bread, 0, 1.0, Mm->data, &rs, err); break;
      case SP_VCOV_HC2: st = hc_meat(&tm, X, spec->weights, bread, 1, 1.0, Mm->data, &rs, err); break;
      case SP_VCOV_HC3: st = hc_meat(&tm, X, spec->weights, bread, 2, 1.0, Mm->data, &rs, err); break;
      case SP_VCOV_CLUSTER: st = cluster_meat(&tm, X, spec, dof, Mm->data, info, &rs, err); break;
      default: st = dk_meat(&tm, X, spec, Mm->data, info, &rs, err); break;
    }
  }
  if (st != SP_OK) goto done;
  /* A residual or weight that is not finite, or a negative weight, shows in
     ssr or wmin: only then look for it, row by row. */
  double ssr = 0.0, wmin = INFINITY;
  for (int c = 0; c < SP_TEAM_CHUNKS; c++) {
    ssr += rs.ssr[c];
    wmin = rs.wmin[c] < wmin ? rs.wmin[c] : wmin;
  }
  for (size_t i = 0; !(isfinite(ssr) && wmin >= 0.0) && i < n; i++) {
    double w = score_weight(spec->weights, i), e = xrows_resid(X, i);
    if (!isfinite(e)) {
      st = sp_error_set(err, SP_EMISSING, "vcov: the residual of observation %zu is not "
                        "finite (%g): expected residuals of the estimation sample only",
                        i + 1, e);
      goto done;
    }
    if (!(w >= 0.0) || !isfinite(w)) {
      st = sp_error_set(err, SP_EVALUE, "vcov: weight %g at observation %zu: expected a "
                        "finite weight >= 0", w, i + 1);
      goto done;
    }
  }
  info->n = n;
  info->k_df = kd;
  info->dof_factor = dof;
  info->ssr = ssr;
  info->sigma2 = ssr / (double)(n - kd);
  info->df_t = (double)(n - kd);
  if (spec->type != SP_VCOV_DRISCOLL_KRAAY) info->lag = -1;

  if (spec->type == SP_VCOV_IID) {
    gsl_matrix_memcpy(V, bread);
    gsl_matrix_scale(V, ssr / (double)n * dof);
    goto done;
  }
  if (spec->type == SP_VCOV_DRISCOLL_KRAAY && spec->gadj != SP_VCOV_GADJ_NONE && info->nperiods > 1) {
    /* The periods play the clusters' part: xtscc's T/(T-1). */
    info->gadj[0] = (double)info->nperiods / (double)(info->nperiods - 1);
    gsl_matrix_scale(Mm, info->gadj[0]);
  }
  if (spec->type != SP_VCOV_DRISCOLL_KRAAY)  /* dsyrk filled the upper triangle only */
    for (size_t a = 0; a < k; a++)
      for (size_t b = 0; b < a; b++) gsl_matrix_set(Mm, a, b, gsl_matrix_get(Mm, b, a));

  if (spec->tdf == SP_VCOV_TDF_CLUSTERS) {
    if (spec->type == SP_VCOV_CLUSTER) {
      size_t g = info->ngroups[0];
      for (size_t d = 1; d < spec->ncluster; d++)
        if (info->ngroups[d] < g) g = info->ngroups[d];
      info->df_t = (double)(g - 1);
    } else if (spec->type == SP_VCOV_DRISCOLL_KRAAY && info->nperiods > 1) {
      info->df_t = (double)(info->nperiods - 1);
    }
  }

  /* V = dof * B M B; the matrices are k x k with k small. */
  if (gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, 1.0, bread, Mm, 0.0, BM) != GSL_SUCCESS ||
      gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, dof, BM, bread, 0.0, V) != GSL_SUCCESS) {
    st = sp_error_set(err, SP_EDIM, "vcov: forming B M B failed (k = %zu)", k);
    goto done;
  }
  for (size_t a = 0; a < k; a++)
    for (size_t b = 0; b < a; b++) {
      double m = 0.5 * (gsl_matrix_get(V, a, b) + gsl_matrix_get(V, b, a));
      gsl_matrix_set(V, a, b, m);
      gsl_matrix_set(V, b, a, m);
    }
  if (spec->fix_psd) st = fix_psd(V, &info->nclipped, err);
done:
  sp_team_stop(&tm);
  gsl_matrix_free(Mm);
  gsl_matrix_free(BM);
  return st;
}

int sp_vcov_compute(const gsl_matrix *X, const double *resid, const gsl_matrix *bread,
                    const sp_vcov_spec *spec, gsl_matrix *V, sp_vcov_info *info,
                    sp_error *err) {
  xrows x = {X, NULL, resid, 0, X ? X->size1 : 0, X ? X->size2 : 0};
  return compute(X ? &x : NULL, bread, spec, V, info, err);
}

int sp_vcov_compute_rows(const sp_rows *X, const double *resid, const gsl_matrix *bread,
                         const sp_vcov_spec *spec, gsl_matrix *V, sp_vcov_info *info,
                         sp_error *err) {
  if (X != NULL && resid == NULL && (X->p == 0 || X->p > SP_ROWS_MAXSEL))
    return sp_error_set(err, SP_EVALUE, "vcov: rows [e X] need 1 to %d columns, got %zu", SP_ROWS_MAXSEL, X->p);
  int ecol = resid == NULL;
  xrows x = {NULL, X, resid, ecol, X ? X->n : 0, X ? X->p - (size_t)ecol : 0};
  return compute(X ? &x : NULL, bread, spec, V, info, err);
}
