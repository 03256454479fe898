/*
** threshold.c: Hansen (1999) fixed-effect panel threshold model (see threshold.h).
**
** Layout: every per-observation array is stored in the order of the sorted
** threshold variable (ties by row), column-major, so a scan over candidates
** walks memory sequentially.  The context (thr_ctx) is shared read-only by
** the bootstrap threads; each thread owns a workspace (thr_ws) allocated once
** before any replication runs.
*/
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "spillover/dist.h"
#include "spillover/mem.h"
#include "spillover/threshold.h"

/* A column whose norm falls below this share of its norm before
   orthogonalisation is taken as collinear with the others. */
#define THR_COLLINEAR_TOL 1e-10
/* Columns of the largest design: k + m regressors plus 3 m regime columns. */
#define THR_PMAX 128
/* The bootstrap's cached first stage (boot_stage1) is used while its arrays
   stay below this size; beyond it each replication rescans. */
#define THR_CACHE_MAX ((size_t)1 << 29)
/* Rows per group of the bootstrap's first stage: 64 sorted rows share one
   bound (see boot_stage1). */
#define THR_GSHIFT 6
/* Entities ahead whose drawn residuals are prefetched. */
#define THR_PREFETCH 16
/* Entity-major rows ahead whose group sums are prefetched. */
#define THR_GAHEAD 32
/* Replications whose first stages share one entity-major pass (see
   boot_stage1): the pass streams ~50 bytes per row of cached arrays, which
   then serve this many replications instead of one, and the replications'
   sums of a group share a cache line (m = 1). */
#define THR_BATCH 4

/* Huge pages: 2 MiB. */
#define THR_HUGE ((size_t)2 << 20)

/* n doubles (uninitialised) that the bootstrap reads and writes at random:
   the drawn residual blocks and the group sums.  With 4 KiB pages nearly
   every access is also a TLB miss (at n = 1e6 the residuals span 2048 pages,
   the group sums of a batch 256), so from 256 KiB up they are asked for on
   huge pages, rounded up to 2 MiB (advice only; measured: the entity-major
   passes about 20% faster, and no gain with the residuals alone).  mem.c
   keeps its large blocks off huge pages because faulting them in costs more
   than it saves for sequential sweeps; these are small and touched at
   random.  Free with free(). */
static double *thr_random_doubles(size_t n) {
  size_t bytes = n * sizeof(double);
  if (bytes < THR_HUGE / 8) return malloc(bytes ? bytes : 1);
  bytes = (bytes | (THR_HUGE - 1)) + 1;
  void *p = NULL;
  if (posix_memalign(&p, THR_HUGE, bytes)) return NULL;
#if defined(MADV_HUGEPAGE)
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

void sp_thr_options_init(sp_thr_options *o) {
  memset(o, 0, sizeof *o);
  o->nthresh = 1;
  o->trim[0] = o->trim[1] = 0.01;
  o->trim[2] = 0.05;
  o->grid = 400;
  o->reps = 0;
  o->seed = 1;
  o->threads = 1;
  o->level = 0.95;
}

void sp_thr_result_clear(sp_thr_result *res) {
  if (res == NULL) return;
  for (int j = 0; j < SP_THR_MAX; j++) {
    free(res->curve[j].gamma);
    free(res->curve[j].lr);
    free(res->test[j].Fboot);
  }
  free(res->coef);
  free(res->V_homo);
  free(res->V_het);
  memset(res, 0, sizeof *res);
}

/* ---- the shared context ---------------------------------------------------- */

typedef struct thr_ctx {
  size_t n, k, m, N, p0;
  double *yt;       /* n: within-transformed y */
  double *Xt;       /* n x k within X (naive refits and hansen1999 only; else NULL) */
  double *Zt;       /* n x m within Z (naive refits only; else NULL) */
  double *Zs;       /* n x m raw Z */
  double *Q0;       /* n x p0 orthonormal basis of [X~, Z~] */
  int32_t *ent;     /* n entity codes */
  double *invT;     /* N: 1 / observations of the entity (0 when none) */
  size_t *Tcount;   /* N */
  double *u;        /* nu distinct values of q, ascending */
  size_t nu;
  size_t *cnt_le;   /* nu: observations with q <= u[j] */
  size_t *cand;     /* ncand indices into u (ascending): the grid */
  size_t ncand;
  size_t width[SP_THR_MAX]; /* exclusion half-widths of stages 2 and 3 (index 1, 2) */
  size_t *epos;     /* n: positions of entity e's rows, in time order, from estart[e] */
  size_t *estart;   /* N + 1 */
  size_t *strat;    /* N entities sorted by observation count */
  size_t *slo, *shi;/* N: the stratum of entity e is strat[slo[e] .. shi[e]) */
  size_t *lastpos;  /* N: sorted position of entity e's last row in time order (hansen1999) */
  /* The bootstrap's first stage without a regression per replication (see
     boot_stage1): what does not depend on the outcome, per candidate. */
  int fast;
  double *hc;       /* ncand x m p0: w'Q0 at each candidate */
  double *lc;       /* ncand x m(m+1)/2: inverse Cholesky factor of A, packed; NaN first: infeasible */
  uint32_t *tau;    /* n: rank of each sorted row in its entity's time order */
  size_t *sstart;   /* N: estart[strat[i]], so that a draw costs one lookup */
  double *zem;      /* n x m: Z in entity-major order (estart[e] + time rank), rows contiguous */
  double *qem;      /* n x p0: Q0 in entity-major order, rows contiguous */
  uint32_t *grp;    /* n: group (sorted position >> THR_GSHIFT) of each entity-major row */
  size_t ngrp;      /* groups: n / 2^THR_GSHIFT + 1 */
  size_t *gstart;   /* ngrp + 1: the candidates whose lower regime ends in group g */
  double *grec;     /* ngrp x (2 + m p0): per group what its bound reads (boot_select), together: the
                       largest |H - H0|_F and |Linv|_F^2 over its candidates, then H0 = H of its
                       first candidate */
  double df;
  int naive;
  int strict;       /* regimes q < g (hansen1999) instead of q <= g */
  int drop;         /* each entity's last row deleted after demeaning (hansen1999) */
} thr_ctx;

typedef struct thr_ws {
  double *Qx;       /* n x m nthresh: orthonormal regime columns of fixed thresholds */
  double *e;        /* n: residual on the current base */
  double *ystar;    /* n: bootstrap outcome (NULL when boot_stage1 does all a replication needs) */
  double *ssr[4];   /* ncand: the SSR curves of the four stages */
  double *S;        /* N x m running entity sums of w */
  double *H;        /* m x p: w'Q */
  double *W, *A;    /* m x m */
  double *r, *x;    /* m */
  double *D;        /* naive: n x (p0 + 3m) design; NULL otherwise */
  double *v;        /* naive: n residual */
  double *Mt;       /* drop: n x (1 + p0 + 3m) within transforms of e and the base columns */
  size_t *sb;       /* THR_BATCH x N: per replication of a batch, where the residuals drawn for
                       entity e start (entity-major) */
  double *gsum;     /* fast: ngrp x THR_BATCH x (m + 1): per group and replication of the batch
                       the sums of z (fres + u*) over its rows and, last, of their absolute values */
  double *L;        /* drop: N x m values of w at each entity's last row */
} thr_ws;

static void ws_free(thr_ws *w) {
  if (w == NULL) return;
  sp_mem_free(w->Qx);
  sp_mem_free(w->e);
  sp_mem_free(w->ystar);
  for (int s = 0; s < 4; s++) free(w->ssr[s]);
  sp_mem_free(w->S);
  free(w->H);
  free(w->W);
  free(w->A);
  free(w->r);
  free(w->x);
  sp_mem_free(w->D);
  sp_mem_free(w->v);
  sp_mem_free(w->Mt);
  sp_mem_free(w->L);
  free(w->sb);
  free(w->gsum);
  memset(w, 0, sizeof *w);
}

/* nt: the thresholds estimated (at most nt fixed in any regression). */
static int ws_alloc(const thr_ctx *c, int nt, thr_ws *w) {
  size_t n = c->n, m = c->m, p = c->p0 + 3 * m;
  memset(w, 0, sizeof *w);
  w->Qx = sp_mem_doubles(n * m * (size_t)nt);
  w->e = sp_mem_doubles(n);
  /* A single threshold's replications end with boot_stage1. */
  w->ystar = c->fast && nt == 1 ? NULL : sp_mem_doubles(n);
  int ok = w->Qx && w->e && (w->ystar || (c->fast && nt == 1));
  for (int s = 0; s < 4; s++) {
    w->ssr[s] = malloc((c->ncand ? c->ncand : 1) * sizeof(double));
    ok = ok && w->ssr[s];
  }
  w->S = sp_mem_doubles(c->N * m);
  w->H = malloc(m * p * sizeof(double));
  w->W = malloc(m * m * sizeof(double));
  w->A = malloc(m * m * sizeof(double));
  w->r = malloc(m * sizeof(double));
  w->x = malloc(m * sizeof(double));
  ok = ok && w->S && w->H && w->W && w->A && w->r && w->x;
  if (c->naive) {
    w->D = sp_mem_doubles(n * p);
    w->v = sp_mem_doubles(n);
    ok = ok && w->D && w->v;
  }
  w->sb = malloc((c->N ? c->N : 1) * THR_BATCH * sizeof *w->sb);
  ok = ok && w->sb;
  if (c->fast) {
    w->gsum = thr_random_doubles(c->ngrp * THR_BATCH * (m + 1));
    ok = ok && w->gsum;
  }
  if (c->drop) {
    w->Mt = sp_mem_doubles(n * (1 + p));
    w->L = sp_mem_doubles(c->N * m);
    ok = ok && w->Mt && w->L;
  }
  if (!ok) {
    ws_free(w);
    return SP_ENOMEM;
  }
  return SP_OK;
}

static void ctx_free(thr_ctx *c) {
  sp_mem_free(c->yt);
  sp_mem_free(c->Xt);
  sp_mem_free(c->Zt);
  sp_mem_free(c->Zs);
  sp_mem_free(c->Q0);
  sp_mem_free(c->ent);
  free(c->invT);
  free(c->Tcount);
  sp_mem_free(c->u);
  sp_mem_free(c->cnt_le);
  sp_mem_free(c->cand);
  sp_mem_free(c->epos);
  free(c->estart);
  free(c->strat);
  free(c->slo);
  free(c->shi);
  free(c->lastpos);
  sp_mem_free(c->hc);
  sp_mem_free(c->lc);
  sp_mem_free(c->tau);
  free(c->sstart);
  sp_mem_free(c->zem);
  sp_mem_free(c->qem);
  sp_mem_free(c->grp);
  free(c->gstart);
  sp_mem_free(c->grec);
  memset(c, 0, sizeof *c);
}

/* ---- small dense helpers ------------------------------------------------------ */

static double dot(size_t n, const double *a, const double *b) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* Orthogonalise v against the p orthonormal columns cols (Gram-Schmidt
   twice: "twice is enough") and normalise it.  Returns 1 when v is
   (numerically) in their span. */
static int orth_append(size_t n, const double *const *cols, size_t p, double *v) {
  double nrm0 = sqrt(dot(n, v, v));
  if (!(nrm0 > 0)) return 1;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t j = 0; j < p; j++) {
      double d = dot(n, cols[j], v);
      const double *cj = cols[j];
      for (size_t i = 0; i < n; i++) v[i] -= d * cj[i];
    }
  }
  double nrm = sqrt(dot(n, v, v));
  if (!(nrm > THR_COLLINEAR_TOL * nrm0)) return 1;
  double s = 1.0 / nrm;
  for (size_t i = 0; i < n; i++) v[i] *= s;
  return 0;
}

/* e = y minus its projection on the columns; returns e'e. */
static double project_out(size_t n, const double *const *cols, size_t p, const double *y, double *e) {
  if (e != y) memcpy(e, y, n * sizeof *e);
  for (int pass = 0; pass < 2; pass++) {
    for (size_t j = 0; j < p; j++) {
      double d = dot(n, cols[j], e);
      const double *cj = cols[j];
      for (size_t i = 0; i < n; i++) e[i] -= d * cj[i];
    }
  }
  return dot(n, e, e);
}

/* Subtract entity means in place. */
static void within(const thr_ctx *c, double *v, double *sum) {
  memset(sum, 0, c->N * sizeof *sum);
  for (size_t t = 0; t < c->n; t++) sum[c->ent[t]] += v[t];
  for (size_t e = 0; e < c->N; e++) sum[e] *= c->invT[e];
  for (size_t t = 0; t < c->n; t++) v[t] -= sum[c->ent[t]];
}

/* The transformation of every column of the regression: entity means
   removed, then (hansen1999) each entity's last row deleted, kept as a zero
   so that all columns stay in the sorted layout. */
static void transform(const thr_ctx *c, double *v, double *sum) {
  within(c, v, sum);
  if (c->drop)
    for (size_t e = 0; e < c->N; e++)
      if (c->Tcount[e]) v[c->lastpos[e]] = 0.0;
}

/* Observations in the lower regime of threshold u[j]: q <= u[j], or q < u[j]
   with strict regimes. */
static size_t nbelow(const thr_ctx *c, size_t j) {
  if (c->strict) return j ? c->cnt_le[j - 1] : 0;
  return c->cnt_le[j];
}

/* Cholesky solve of the m x m system A x = r (A overwritten).  Returns 1
   when a pivot is not clearly positive relative to ref (the diagonal before
   the projection was taken off). */
static int chol_solve(size_t m, double *A, const double *ref, const double *r, double *x) {
  for (size_t j = 0; j < m; j++) {
    double s = A[j * m + j];
    for (size_t l = 0; l < j; l++) s -= A[j * m + l] * A[j * m + l];
    if (!(s > THR_COLLINEAR_TOL * ref[j * m + j])) return 1;
    double d = sqrt(s);
    A[j * m + j] = d;
    for (size_t i = j + 1; i < m; i++) {
      double t = A[i * m + j];
      for (size_t l = 0; l < j; l++) t -= A[i * m + l] * A[j * m + l];
      A[i * m + j] = t / d;
    }
  }
  for (size_t i = 0; i < m; i++) {
    double t = r[i];
    for (size_t l = 0; l < i; l++) t -= A[i * m + l] * x[l];
    x[i] = t / A[i * m + i];
  }
  for (size_t i = m; i-- > 0;) {
    double t = x[i];
    for (size_t l = i + 1; l < m; l++) t -= A[l * m + i] * x[l];
    x[i] = t / A[i * m + i];
  }
  return 0;
}

/* The inverse of the Cholesky factor left in the lower triangle of A by
   chol_solve, packed by rows (element (a, b), b <= a, at a(a+1)/2 + b). */
static void tri_inverse(size_t m, const double *A, double *Li) {
  for (size_t b = 0; b < m; b++) {
    for (size_t a = b; a < m; a++) {
      double t = a == b ? 1.0 : 0.0;
      for (size_t l = b; l < a; l++) t -= A[a * m + l] * Li[l * (l + 1) / 2 + b];
      Li[a * (a + 1) / 2 + b] = t / A[a * m + a];
    }
  }
}

/* ---- stages ---------------------------------------------------------------- */

/* Regime columns w~ = within(z 1(q <= u[f])) of the fixed thresholds
   (u-indices), orthogonalised against Q0 and each other into ws->Qx. */
static int build_fixed(const thr_ctx *c, thr_ws *w, const size_t *fixed, size_t nf, const double **cols) {
  size_t n = c->n, m = c->m, p = c->p0;
  for (size_t j = 0; j < c->p0; j++) cols[j] = c->Q0 + j * n;
  for (size_t f = 0; f < nf; f++) {
    size_t upto = nbelow(c, fixed[f]);
    for (size_t a = 0; a < m; a++) {
      double *v = w->Qx + (f * m + a) * n;
      const double *z = c->Zs + a * n;
      for (size_t t = 0; t < n; t++) v[t] = t < upto ? z[t] : 0.0;
      transform(c, v, w->S);
      if (orth_append(n, cols, p, v)) return 1;
      cols[p++] = v;
    }
  }
  return 0;
}

/* Observations in each regime given sorted thresholds (u-indices). */
static int regimes_ok(const thr_ctx *c, const size_t *g, size_t ng) {
  size_t idx[SP_THR_MAX + 1];
  for (size_t i = 0; i < ng; i++) idx[i] = g[i];
  for (size_t i = 1; i < ng; i++)
    for (size_t j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
      size_t t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t;
    }
  size_t prev = 0;
  for (size_t i = 0; i <= ng; i++) {
    size_t cnt = i < ng ? nbelow(c, idx[i]) : c->n;
    if (cnt - prev < c->m) return 0;
    prev = cnt;
  }
  return 1;
}

/* Is grid position ci excluded around the fixed thresholds?  Hansen's rule:
   with nn candidates below f, positions nn-w .. nn+w-1 are dropped (f itself
   sits at position nn). */
static void exclusion(const thr_ctx *c, const size_t *fixed, size_t nf, size_t wdt, unsigned char *mask) {
  memset(mask, 0, c->ncand);
  for (size_t f = 0; f < nf; f++) {
    size_t nn = 0;
    while (nn < c->ncand && c->cand[nn] < fixed[f]) nn++;
    size_t lo = nn >= wdt ? nn - wdt : 0, hi = nn + wdt;
    for (size_t p = lo; p < hi && p < c->ncand; p++) mask[p] = 1;
  }
}

/* SSR of every candidate given the fixed thresholds, by incremental updates
   (or by a full refit per candidate in naive mode).  y: the within outcome,
   e: its residual on [Q0, fixed columns], ssr_base = e'e.  NaN marks
   excluded or infeasible candidates. */
static void scan(const thr_ctx *c, thr_ws *w, const double *const *cols, size_t p, const double *y,
                 const double *e, double ssr_base, const size_t *fixed, size_t nf,
                 const unsigned char *mask, int fill, double *out) {
  size_t n = c->n, m = c->m;
  size_t g[SP_THR_MAX + 1];
  for (size_t f = 0; f < nf; f++) g[f] = fixed[f];
  if (c->naive) {
    /* Straightforward: build the full within design at each candidate and
       refit it (columns x~, z~, fixed regime columns, candidate columns). */
    size_t pf = c->k + m + nf * m;
    const double *dc[THR_PMAX];
    (void)cols; (void)p; (void)e; (void)ssr_base;
    for (size_t ci = 0; ci < c->ncand; ci++) {
      g[nf] = c->cand[ci];
      if (mask[ci] || !regimes_ok(c, g, nf + 1)) { out[ci] = NAN; continue; }
      double *D = w->D;
      size_t col = 0;
      for (size_t j = 0; j < c->k; j++, col++) memcpy(D + col * n, c->Xt + j * n, n * sizeof(double));
      for (size_t a = 0; a < m; a++, col++) memcpy(D + col * n, c->Zt + a * n, n * sizeof(double));
      for (size_t f = 0; f <= nf; f++) {
        size_t upto = nbelow(c, g[f]);
        for (size_t a = 0; a < m; a++, col++) {
          double *v = D + col * n;
          const double *z = c->Zs + a * n;
          for (size_t t = 0; t < n; t++) v[t] = t < upto ? z[t] : 0.0;
          transform(c, v, w->S);
        }
      }
      int sing = 0;
      size_t q = 0;
      for (size_t j = 0; j < pf + m && !sing; j++) {
        double *v = D + j * n;
        sing = orth_append(n, dc, q, v);
        dc[q++] = v;
      }
      out[ci] = sing ? NAN : project_out(n, dc, q, y, w->v);
    }
    return;
  }
  double *S = w->S, *H = w->H, *W = w->W, *A = w->A, *r = w->r, *x = w->x;
  memset(S, 0, c->N * m * sizeof *S);
  memset(H, 0, m * p * sizeof *H);
  memset(W, 0, m * m * sizeof *W);
  memset(r, 0, m * sizeof *r);
  if (c->drop) memset(w->L, 0, c->N * m * sizeof *w->L);
  size_t t = 0;
  for (size_t ci = 0; ci < c->ncand; ci++) {
    size_t upto = nbelow(c, c->cand[ci]);
    if (m == 1 && !c->drop) {
      const double *z = c->Zs;
      for (; t < upto; t++) {
        double zt = z[t];
        if (zt == 0.0) continue;
        int32_t i = c->ent[t];
        r[0] += zt * e[t];
        for (size_t b = 0; b < p; b++) H[b] += zt * cols[b][t];
        double s = S[i];
        W[0] += zt * zt - (2.0 * s * zt + zt * zt) * c->invT[i];
        S[i] = s + zt;
      }
    } else {
      for (; t < upto; t++) {
        int32_t i = c->ent[t];
        double it = c->invT[i];
        double *Si = S + (size_t)i * m;
        for (size_t a = 0; a < m; a++) {
          double za = c->Zs[a * n + t];
          if (za == 0.0) continue;
          r[a] += za * e[t];
          double *Ha = H + a * p;
          for (size_t b = 0; b < p; b++) Ha[b] += za * cols[b][t];
        }
        for (size_t a = 0; a < m; a++) {
          double za = c->Zs[a * n + t];
          for (size_t b = 0; b < m; b++) {
            double zb = c->Zs[b * n + t];
            W[a * m + b] += za * zb - (Si[a] * zb + za * Si[b] + za * zb) * it;
          }
        }
        if (c->drop) {
          /* The deleted row's term: W -= d d' with d = w_last - mean(w),
             replaced for this entity as its sums change. */
          double *Li = w->L + (size_t)i * m, dold[32], dnew[32];
          int last = c->lastpos[i] == t;
          for (size_t a = 0; a < m; a++) {
            double za = c->Zs[a * n + t];
            dold[a] = Li[a] - Si[a] * it;
            if (last) Li[a] += za;
            dnew[a] = Li[a] - (Si[a] + za) * it;
          }
          for (size_t a = 0; a < m; a++)
            for (size_t b = 0; b < m; b++) W[a * m + b] -= dnew[a] * dnew[b] - dold[a] * dold[b];
        }
        for (size_t a = 0; a < m; a++) Si[a] += c->Zs[a * n + t];
      }
    }
    g[nf] = c->cand[ci];
    double *lc = fill ? c->lc + ci * (m * (m + 1) / 2) : NULL;
    if (fill) {
      memcpy(c->hc + ci * m * p, H, m * p * sizeof *H);
      lc[0] = NAN;
    }
    if (mask[ci] || !regimes_ok(c, g, nf + 1)) { out[ci] = NAN; continue; }
    for (size_t a = 0; a < m; a++)
      for (size_t b = 0; b < m; b++) A[a * m + b] = W[a * m + b] - dot(p, H + a * p, H + b * p);
    if (chol_solve(m, A, W, r, x)) { out[ci] = NAN; continue; }
    out[ci] = ssr_base - dot(m, r, x);
    if (fill) tri_inverse(m, A, lc);
  }
}

/* First minimum of the non-NaN entries; ncand when none. */
static size_t argmin(const double *v, size_t n) {
  size_t best = n;
  for (size_t i = 0; i < n; i++)
    if (!isnan(v[i]) && (best == n || v[i] < v[best])) best = i;
  return best;
}

typedef struct thr_seq {
  size_t g[4];      /* u-indices: g1, g2, g1r, g3 */
  double S[5];      /* S0 (linear), S(g1), S(g1,g2), S(g1r,g2), S(g1r,g2,g3) */
  size_t ncand[4];
} thr_seq;

/* Residual and SSR of y on [Q0, regime columns of fixed]; fills cols. */
static int base_fit(const thr_ctx *c, thr_ws *w, const size_t *fixed, size_t nf, const double *y,
                    const double **cols, size_t *p, double *ssr) {
  if (build_fixed(c, w, fixed, nf, cols)) return SP_ESINGULAR;
  *p = c->p0 + nf * c->m;
  *ssr = project_out(c->n, cols, *p, y, w->e);
  return SP_OK;
}

/* One stage: scan given fixed, into ws->ssr[slot]; *best is the argmin
   (ncand if none) and *base the exact SSR of the model with only the fixed
   thresholds. */
static int stage(const thr_ctx *c, thr_ws *w, const double *y, const size_t *fixed, size_t nf, size_t wdt,
                 int slot, unsigned char *mask, int fill, size_t *best, size_t *nvalid, double *base) {
  const double *cols[THR_PMAX];
  size_t p;
  double ssr;
  int st = base_fit(c, w, fixed, nf, y, cols, &p, &ssr);
  if (st) return st;
  *base = ssr;
  exclusion(c, fixed, nf, wdt, mask);
  const double *e = w->e;
  if (c->drop && !c->naive) {
    /* r = w'(M e) and w'(M Q): e and Q are zero at the deleted rows, M
       removes the entity means over all rows (see threshold.h). */
    size_t n = c->n;
    memcpy(w->Mt, w->e, n * sizeof *w->Mt);
    within(c, w->Mt, w->S);
    for (size_t j = 0; j < p; j++) {
      double *v = w->Mt + (1 + j) * n;
      memcpy(v, cols[j], n * sizeof *v);
      within(c, v, w->S);
      cols[j] = v;
    }
    e = w->Mt;
  }
  scan(c, w, cols, p, y, e, ssr, fixed, nf, mask, fill, w->ssr[slot]);
  *best = argmin(w->ssr[slot], c->ncand);
  if (nvalid) {
    size_t cnt = 0;
    for (size_t i = 0; i < c->ncand; i++) cnt += !mask[i];
    *nvalid = cnt;
  }
  return *best == c->ncand ? SP_EDF : SP_OK;
}

/* Exact SSR at the given thresholds (one regression). */
static int ssr_at(const thr_ctx *c, thr_ws *w, const double *y, const size_t *g, size_t ng, double *ssr) {
  const double *cols[THR_PMAX];
  size_t p;
  return base_fit(c, w, g, ng, y, cols, &p, ssr);
}

/* Sequential estimation up to stage `upto` (1: g1; 2: g2 and, with
   need_refine, g1 refined; 3: g3).  The SSR at the thresholds of one stage
   is the base SSR of the next, so it comes exact from that regression; the
   last stage's SSR is refitted when `exact`, else taken from the scan (the
   bootstrap: the two agree to rounding).  With `first`, stage 1 is already
   in s (g[0], S[0], S[1]: boot_stage1); the point estimate (`exact`) fills
   the cache that boot_stage1 reads. */
static int sequential(const thr_ctx *c, thr_ws *w, const double *y, int upto, int need_refine, int exact,
                      int first, unsigned char *mask, thr_seq *s) {
  int st;
  size_t best, fx[2];
  double dummy;
  for (int i = first; i < 4; i++) s->g[i] = (size_t)-1;
  if (!first) {
    if ((st = stage(c, w, y, NULL, 0, 0, 0, mask, exact && c->fast, &best, &s->ncand[0], &s->S[0]))) return st;
    s->g[0] = c->cand[best];
    if (upto < 2) {
      if (exact) return ssr_at(c, w, y, s->g, 1, &s->S[1]);
      s->S[1] = w->ssr[0][best];
      return SP_OK;
    }
  } else if (upto < 2) {
    return SP_OK;
  }
  fx[0] = s->g[0];
  if ((st = stage(c, w, y, fx, 1, c->width[1], 1, mask, 0, &best, &s->ncand[1], &s->S[1]))) return st;
  s->g[1] = c->cand[best];
  if (upto < 3 && !need_refine) {
    fx[0] = s->g[0]; fx[1] = s->g[1];
    if (exact) return ssr_at(c, w, y, fx, 2, &s->S[2]);
    s->S[2] = w->ssr[1][best];
    return SP_OK;
  }
  fx[0] = s->g[0]; fx[1] = s->g[1];
  if ((st = ssr_at(c, w, y, fx, 2, &s->S[2]))) return st;
  fx[0] = s->g[1];
  if ((st = stage(c, w, y, fx, 1, c->width[1], 2, mask, 0, &best, &s->ncand[2], &dummy))) return st;
  s->g[2] = c->cand[best];
  fx[0] = s->g[2]; fx[1] = s->g[1];
  if (upto < 3) return ssr_at(c, w, y, fx, 2, &s->S[3]);
  if ((st = stage(c, w, y, fx, 2, c->width[2], 3, mask, 0, &best, &s->ncand[3], &s->S[3]))) return st;
  s->g[3] = c->cand[best];
  size_t g3[3] = {s->g[2], s->g[1], s->g[3]};
  if (exact) return ssr_at(c, w, y, g3, 3, &s->S[4]);
  s->S[4] = w->ssr[3][best];
  return SP_OK;
}

static double fstat(const thr_ctx *c, const thr_seq *s, int test) {
  double s0 = test == 0 ? s->S[0] : test == 1 ? s->S[1] : s->S[3];
  double s1 = test == 0 ? s->S[1] : test == 1 ? s->S[2] : s->S[4];
  return (s0 - s1) / (s1 / c->df);
}

/* ---- random streams ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

typedef struct { uint64_t s[4]; } xoshiro;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xo_next(xoshiro *r) {
  uint64_t *s = r->s;
  uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
  s[2] ^= t; s[3] = rotl(s[3], 45);
  return res;
}

/* The stream of replication rep of test: seeded from (seed, test, rep) only,
   which is what makes the bootstrap independent of the thread count. */
static void xo_seed(xoshiro *r, uint64_t seed, int test, uint64_t rep) {
  uint64_t x = seed;
  uint64_t h = splitmix64(&x);
  x = h ^ ((uint64_t)(test + 1) << 56) ^ rep;
  h = splitmix64(&x);
  x = h;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

/* A divisor k > 0 prepared for xo_below: a draw costs two 64-bit divisions
   otherwise, 3e7 of them in 300 replications at N = 1e5. */
typedef struct { uint64_t k, lim, mag; } xo_div;

static xo_div xo_divisor(size_t k) {
  xo_div v = {(uint64_t)k, (0 - (uint64_t)k) % (uint64_t)k, UINT64_MAX / (uint64_t)k};
  return v;
}

/* The high 64 bits of a b. */
static uint64_t mulhi(uint64_t a, uint64_t b) {
#if defined(__SIZEOF_INT128__)
  __extension__ typedef unsigned __int128 u128;  /* one multiplication on 64-bit targets */
  return (uint64_t)(((u128)a * b) >> 64);
#else
  uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
  uint64_t p01 = a0 * b1, p10 = a1 * b0, mid = ((a0 * b0) >> 32) + (uint32_t)p01 + (uint32_t)p10;
  return a1 * b1 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
#endif
}

/* Uniform integer in [0, k), without modulo bias (rejection below lim =
   2^64 mod k).  x % k without a division: mag = floor((2^64 - 1) / k), so
   q = floor(x mag / 2^64) is x / k rounded down, or one less. */
static size_t xo_below(xoshiro *r, const xo_div *v) {
  for (;;) {
    uint64_t x = xo_next(r);
    if (x < v->lim) continue;
    uint64_t md = x - mulhi(x, v->mag) * v->k;
    return (size_t)(md >= v->k ? md - v->k : md);
  }
}

/* ---- bootstrap ---------------------------------------------------------------------- */

typedef struct boot_job {
  const thr_ctx *c;
  thr_ws *w;
  unsigned char *mask;
  const double *fitted, *resid;   /* the null model, within, sorted order */
  const double *fres;   /* fast: n, fitted less its projection on Q0 (sorted order) */
  const double *fem;    /* fast: n, the same in entity-major order */
  const double *rem;    /* fast: n, resid in entity-major order (estart[e] + time rank) */
  int test, reps, tid, nthreads;
  int rank, nranks;     /* the MPI job's processes (dist.h): this rank runs reps rank, rank + nranks, ... */
  uint64_t seed;
  double *Fboot;
  int status;
} boot_job;

/* The exact SSR reduction of group g's candidates (with m p0 work each),
   keeping the largest in *top / *best (first index on ties).  R starts at
   the sum of v = z (fres + u*) over the rows before the group, and the
   group's rows are added in threshold order; sb: the replication's draws. */
static void boot_group(const thr_ctx *c, const boot_job *j, const size_t *sb, size_t g, const double *P,
                       const double *cq, double *top, size_t *best) {
  size_t n = c->n, m = c->m, p = c->p0, nl = m * (m + 1) / 2;
  double R[32], r[32], v[1 << THR_GSHIFT];
  memcpy(R, P, m * sizeof *R);
  size_t t0 = g << THR_GSHIFT, t = t0, t1 = t0 + ((size_t)1 << THR_GSHIFT);
  /* The drawn residuals first, in a loop of independent loads whose cache
     misses overlap. */
  if (t1 > n) t1 = n;
  for (size_t i = t0; i < t1; i++) v[i - t0] = j->fres[i] + j->rem[sb[c->ent[i]] + c->tau[i]];
  for (size_t ci = c->gstart[g]; ci < c->gstart[g + 1]; ci++) {
    for (size_t upto = nbelow(c, c->cand[ci]); t < upto; t++)
      for (size_t a = 0; a < m; a++) R[a] += c->Zs[a * n + t] * v[t - t0];
    const double *L = c->lc + ci * nl, *H = c->hc + ci * m * p;
    if (isnan(L[0])) continue;
    for (size_t a = 0; a < m; a++) r[a] = R[a] - dot(p, H + a * p, cq);
    double term = 0;
    for (size_t a = 0; a < m; a++) {
      double z = dot(a + 1, L + a * (a + 1) / 2, r);
      term += z * z;
    }
    if (*best == c->ncand || term > *top || (term == *top && ci < *best)) { *top = term; *best = ci; }
  }
}

/* One replication's first stage from its group sums gs (group g's at
   gs + g * stride, overwritten), c = cq and |fres + u*|^2 = ss: the bounds,
   then the exact evaluation of the groups they leave (see boot_stage1).
   Returns the argmin of SSR (ncand if none) and S[0], S[1]. */
static size_t boot_select(const thr_ctx *c, const boot_job *j, const size_t *sb, double *gs, size_t stride,
                          const double *cq, double ss, double *S0, double *S1) {
  size_t m = c->m, p = c->p0, ng = c->ngrp;
  double cn = sqrt(dot(p, cq, cq));
  ss -= cn * cn;
  /* In place: the sums before each group (P) and the group's bound (last). */
  double P[32];
  memset(P, 0, m * sizeof *P);
  size_t gmax = ng;
  for (size_t g = 0; g < ng; g++) {
    double *gg = gs + g * stride, r0 = 0;
    const double *gr = c->grec + g * (2 + m * p);
    if (c->gstart[g] < c->gstart[g + 1]) {
      const double *H0 = gr + 2;
      for (size_t a = 0; a < m; a++) {
        double x = P[a] - dot(p, H0 + a * p, cq);
        r0 += x * x;
      }
    }
    double bnd = sqrt(r0) + gg[m] + gr[0] * cn;
    for (size_t a = 0; a < m; a++) {
      double x = gg[a];
      gg[a] = P[a];
      P[a] += x;
    }
    /* A margin far above the rounding of the exact evaluation. */
    gg[m] = c->gstart[g] == c->gstart[g + 1] ? -1.0 : gr[1] * bnd * bnd * (1.0 + 1e-9) + 1e-300;
    if (gg[m] >= 0 && (gmax == ng || gg[m] > gs[gmax * stride + m])) gmax = g;
  }
  size_t best = c->ncand;
  double top = 0;
  if (gmax < ng) boot_group(c, j, sb, gmax, gs + gmax * stride, cq, &top, &best);
  for (size_t g = 0; g < ng; g++)
    if (g != gmax && gs[g * stride + m] >= 0 && (best == c->ncand || gs[g * stride + m] >= top))
      boot_group(c, j, sb, g, gs + g * stride, cq, &top, &best);
  *S0 = ss;
  *S1 = ss - top;
  return best;
}

/* The entity-major pass of boot_stage1: for nb replications, c = Q0'u* (cq),
   |fres + u*|^2 (ss) and the group sums in w->gsum.  Inlined with constant
   nb, m and p in the usual cases, so that the accumulators, local here (a
   pointer could alias the group sums), stay in registers: in memory they
   make a chain of store-load latencies per row.  The same additions in the
   same order either way. */
static inline __attribute__((always_inline)) void boot_pass(const thr_ctx *c, const thr_ws *w, const boot_job *j,
                                                            int nb, size_t m, size_t p, double (*cq)[THR_PMAX],
                                                            double *ss) {
  size_t N = c->N, m1 = m + 1, stride = THR_BATCH * m1;
  double *gs = w->gsum, lcq[THR_BATCH][THR_PMAX], lss[THR_BATCH];
  for (int b = 0; b < nb; b++) {
    lss[b] = 0;
    for (size_t i = 0; i < p; i++) lcq[b][i] = 0;
  }
  for (size_t e = 0; e < N; e++) {
    const double *u[THR_BATCH];
    size_t ahead = e + THR_PREFETCH;
    int pf = ahead < N && c->Tcount[ahead];
    for (int b = 0; b < nb; b++) {
      const size_t *sb = w->sb + (size_t)b * N;
      u[b] = j->rem + sb[e];
      if (pf) {
        /* The drawn blocks are scattered: ask for them early, or every entity waits on memory. */
        __builtin_prefetch(j->rem + sb[ahead]);
        __builtin_prefetch(j->rem + sb[ahead] + c->Tcount[ahead] - 1);
      }
    }
    for (size_t k = c->estart[e], t = 0; k < c->estart[e + 1]; k++, t++) {
      double f = j->fem[k], *gk = gs + (size_t)c->grp[k] * stride;
      const double *q = c->qem + k * p, *z = c->zem + k * m;
      /* The group sums are read and written in random order: ask early. */
      if (k + THR_GAHEAD < c->n) __builtin_prefetch(gs + (size_t)c->grp[k + THR_GAHEAD] * stride, 1);
      for (int b = 0; b < nb; b++) {
        double ub = u[b][t], v = f + ub, *gb = gk + (size_t)b * m1, av = 0;
        lss[b] += v * v;
        for (size_t i = 0; i < p; i++) lcq[b][i] += q[i] * ub;
        for (size_t a = 0; a < m; a++) {
          double x = z[a] * v;
          gb[a] += x;
          av += fabs(x);
        }
        gb[m] += av;
      }
    }
  }
  for (int b = 0; b < nb; b++) {
    ss[b] = lss[b];
    for (size_t i = 0; i < p; i++) cq[b][i] = lcq[b][i];
  }
}

/* Stage 1 of nb <= THR_BATCH replications without forming y* or a
   regression.  With y* = f + u* (f the null model's fitted values, u* the
   drawn residuals) and e* = M_Q0 y* = fres + u* - Q0 c, c = Q0'u*:
     r(g) = w(g)'e* = R(g) - H(g) c,   R(g) = sum_{q <= g} z (fres + u*),
     SSR_B = |fres + u*|^2 - |c|^2,    SSR(g) = SSR_B - |Linv(g) r(g)|^2,
   where H(g) = w'Q0 and Linv(g) (the inverse Cholesky factor of A(g)) are
   the same in every replication and cached by the point estimate.
   Randomly gathering u* in threshold order costs a cache miss per row, so
   one pass in entity-major order (u* blocks read whole, nothing re-sorted)
   gives, for every replication of the batch, c, SSR_B and, per group of
   2^THR_GSHIFT sorted rows, the sum of v = z (fres + u*) and of |v|; each
   replication's sums are added in the same order as when it runs alone.
   A group's candidates then have
     |Linv r|^2 <= gL (|P - H0 c| + gabs + gH |c|)^2
   (P: the sum over the rows before the group, H0: H of its first candidate,
   gH: how far H moves within the group),
   and only groups whose bound reaches the best term so far are evaluated
   exactly (boot_group), starting with the group of the largest bound.
   The batch's draws are in w->sb (N per replication).  Fills s[b].g[0],
   S[0] and S[1], and sets st[b] to SP_EDF when replication b has no
   feasible candidate. */
static void boot_stage1(const thr_ctx *c, thr_ws *w, const boot_job *j, int nb, thr_seq *s, int *st) {
  size_t m = c->m, p = c->p0, N = c->N, m1 = m + 1, stride = THR_BATCH * m1;
  double cq[THR_BATCH][THR_PMAX], ss[THR_BATCH], *gs = w->gsum;
  memset(gs, 0, c->ngrp * stride * sizeof *gs);
  /* One regime regressor with up to three others, four replications. */
  if (nb == THR_BATCH && m == 1 && p == 1) boot_pass(c, w, j, THR_BATCH, 1, 1, cq, ss);
  else if (nb == THR_BATCH && m == 1 && p == 2) boot_pass(c, w, j, THR_BATCH, 1, 2, cq, ss);
  else if (nb == THR_BATCH && m == 1 && p == 3) boot_pass(c, w, j, THR_BATCH, 1, 3, cq, ss);
  else if (nb == THR_BATCH && m == 1 && p == 4) boot_pass(c, w, j, THR_BATCH, 1, 4, cq, ss);
  else boot_pass(c, w, j, nb, m, p, cq, ss);
  for (int b = 0; b < nb; b++) {
    size_t best = boot_select(c, j, w->sb + (size_t)b * N, gs + (size_t)b * m1, stride, cq[b], ss[b], &s[b].S[0],
                              &s[b].S[1]);
    st[b] = best == c->ncand ? SP_EDF : SP_OK;
    s[b].g[0] = best < c->ncand ? c->cand[best] : (size_t)-1;
  }
}

/* Replication rep's draws: for each entity with rows, where the residual
   block of the entity drawn for it starts (entity-major order). */
static void boot_draw(const thr_ctx *c, const boot_job *j, int rep, size_t *sb) {
  xoshiro rng;
  xo_seed(&rng, j->seed, j->test, (uint64_t)rep);
  xo_div v = {0, 0, 0};
  for (size_t e = 0; e < c->N; e++) {
    if (c->Tcount[e] == 0) continue;
    if (c->shi[e] - c->slo[e] != v.k) v = xo_divisor(c->shi[e] - c->slo[e]);
    sb[e] = c->slo[e] + xo_below(&rng, &v);
  }
  /* The lookups apart from the generator's chain, so that their cache
     misses overlap. */
  for (size_t e = 0; e < c->N; e++)
    if (c->Tcount[e]) sb[e] = c->sstart[sb[e]];
}

static void *boot_run(void *arg) {
  boot_job *j = arg;
  const thr_ctx *c = j->c;
  thr_ws *w = j->w;
  /* Stages after the first need y* itself. */
  int need_y = !c->fast || j->test > 0, nbmax = c->fast ? THR_BATCH : 1;
  for (long k = j->tid;;) {
    /* The next batch of this thread's replications: k, k + nthreads, ... */
    int rep[THR_BATCH], nb = 0;
    for (; nb < nbmax; k += j->nthreads) {
      long rep_l = k * j->nranks + j->rank;
      if (rep_l >= j->reps) break;
      rep[nb++] = (int)rep_l;
    }
    if (nb == 0) break;
    thr_seq s[THR_BATCH];
    int st[THR_BATCH];
    for (int b = 0; b < nb; b++) {
      boot_draw(c, j, rep[b], w->sb + (size_t)b * c->N);
      st[b] = SP_OK;
    }
    if (c->fast) boot_stage1(c, w, j, nb, s, st);
    for (int b = 0; b < nb; b++) {
      if (need_y) {
        const size_t *sb = w->sb + (size_t)b * c->N;
        for (size_t e = 0; e < c->N; e++) {
          if (c->Tcount[e] == 0) continue;
          const size_t *pe = c->epos + c->estart[e], *ps = c->epos + sb[e];
          for (size_t t = 0; t < c->Tcount[e]; t++) w->ystar[pe[t]] = j->fitted[pe[t]] + j->resid[ps[t]];
        }
      }
      if (st[b] == SP_OK) st[b] = sequential(c, w, w->ystar, j->test + 1, j->test == 2, 0, c->fast, j->mask, &s[b]);
      if (st[b]) {
        /* A resample with no feasible candidate: record no evidence against the null. */
        j->Fboot[rep[b]] = 0.0;
        if (st[b] == SP_ENOMEM) { j->status = st[b]; return NULL; }
        continue;
      }
      j->Fboot[rep[b]] = fstat(c, &s[b], j->test);
    }
  }
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ---- setup -------------------------------------------------------------------------- */

typedef struct { double q; size_t i; } qkey;

/* q's bits as an unsigned key in q's order (-0 and +0 the same value, so
   that their rows stay in row order). */
static uint64_t qbits(double q) {
  uint64_t b;
  if (q == 0) q = 0.0;
  memcpy(&b, &q, sizeof b);
  return b >> 63 ? ~b : b | (uint64_t)1 << 63;
}

/* key (n > 0, rows in order) sorted by q, ties by row: a stable LSD radix
   sort, a byte of the
   key per pass, skipping the passes where every key has the same byte; 5-10x
   faster than the comparison sort at n = 1e6. */
static int sort_qkeys(qkey *key, size_t n) {
  qkey *tmp = malloc(n * sizeof *tmp);
  size_t(*cnt)[256] = calloc(8, sizeof *cnt);
  if (!tmp || !cnt) {
    free(tmp);
    free(cnt);
    return SP_ENOMEM;
  }
  for (size_t t = 0; t < n; t++) {
    uint64_t b = qbits(key[t].q);
    for (int d = 0; d < 8; d++) cnt[d][(b >> (8 * d)) & 255]++;
  }
  qkey *src = key, *dst = tmp;
  for (int d = 0; d < 8; d++) {
    size_t *h = cnt[d], sum = 0;
    if (h[(qbits(src[0].q) >> (8 * d)) & 255] == n) continue;
    for (int v = 0; v < 256; v++) {
      size_t x = h[v];
      h[v] = sum;
      sum += x;
    }
    for (size_t t = 0; t < n; t++) dst[h[(qbits(src[t].q) >> (8 * d)) & 255]++] = src[t];
    qkey *x = src;
    src = dst;
    dst = x;
  }
  if (src != key) memcpy(key, src, n * sizeof *key);
  free(tmp);
  free(cnt);
  return SP_OK;
}

typedef struct { int32_t t; size_t row, pos; } tkey;

static int cmp_tkey(const void *a, const void *b) {
  const tkey *x = a, *y = b;
  if (x->t != y->t) return (x->t > y->t) - (x->t < y->t);
  return (x->row > y->row) - (x->row < y->row);
}

typedef struct { size_t count, e; } ckey;

static int cmp_ckey(const void *a, const void *b) {
  const ckey *x = a, *y = b;
  if (x->count != y->count) return (x->count > y->count) - (x->count < y->count);
  return (x->e > y->e) - (x->e < y->e);
}

static const char *qname_of(const sp_thr_data *d) { return d->qname ? d->qname : "threshold variable"; }

static int setup(const sp_thr_data *d, const sp_thr_options *o, thr_ctx *c, sp_error *err) {
  size_t n = d->n, k = d->k, m = d->m, N = d->N;
  c->n = n; c->k = k; c->m = m; c->N = N; c->p0 = k + m; c->naive = o->naive;
  c->strict = c->drop = o->hansen1999 != 0;
  if (k + 4 * m > THR_PMAX)
    return sp_error_set(err, SP_EVALUE, "threshold: too many regressors (k + 4 m = %zu, at most %d)", k + 4 * m, THR_PMAX);
  for (size_t t = 0; t < n; t++) {
    if (d->entity[t] < 0 || (size_t)d->entity[t] >= N)
      return sp_error_set(err, SP_EVALUE, "threshold: entity code %ld of row %zu is outside [0, %zu)",
                          (long)d->entity[t], t + 1, N);
    if (!isfinite(d->q[t]) || !isfinite(d->y[t]))
      return sp_error_set(err, SP_EMISSING, "threshold: row %zu has a missing or infinite value", t + 1);
  }
  qkey *key = malloc(n * sizeof *key);
  size_t *pos = malloc(n * sizeof *pos);  /* pos[row] = sorted position */
  if (!key || !pos) { free(key); free(pos); return sp_error_set(err, SP_ENOMEM, "threshold: out of memory"); }
  for (size_t t = 0; t < n; t++) { key[t].q = d->q[t]; key[t].i = t; }
  if (sort_qkeys(key, n)) { free(key); free(pos); return sp_error_set(err, SP_ENOMEM, "threshold: out of memory"); }
  for (size_t t = 0; t < n; t++) pos[key[t].i] = t;

  c->yt = sp_mem_doubles(n);
  c->Xt = c->naive || c->drop ? sp_mem_doubles(n * (k ? k : 1)) : NULL;
  c->Zt = c->naive ? sp_mem_doubles(n * m) : NULL;
  c->Zs = sp_mem_doubles(n * m);
  c->Q0 = sp_mem_doubles(n * c->p0);
  c->ent = sp_mem_alloc(n * sizeof *c->ent);
  c->invT = calloc(N ? N : 1, sizeof *c->invT);
  c->Tcount = calloc(N ? N : 1, sizeof *c->Tcount);
  c->u = sp_mem_doubles(n);
  c->cnt_le = sp_mem_alloc(n * sizeof *c->cnt_le);
  c->epos = sp_mem_alloc(n * sizeof *c->epos);
  c->estart = calloc(N + 1, sizeof *c->estart);
  c->strat = malloc((N ? N : 1) * sizeof *c->strat);
  c->slo = malloc((N ? N : 1) * sizeof *c->slo);
  c->shi = malloc((N ? N : 1) * sizeof *c->shi);
  c->lastpos = malloc((N ? N : 1) * sizeof *c->lastpos);
  c->sstart = malloc((N ? N : 1) * sizeof *c->sstart);
  double *sum = malloc((N ? N : 1) * sizeof *sum);
  tkey *tk = malloc(n * sizeof *tk);
  if (!c->yt || (!c->Xt && (c->naive || c->drop)) || (!c->Zt && c->naive) || !c->Zs || !c->Q0 || !c->ent || !c->invT || !c->Tcount ||
      !c->u || !c->cnt_le || !c->epos || !c->estart || !c->strat || !c->slo || !c->shi || !c->lastpos || !c->sstart || !sum || !tk) {
    free(key); free(pos); free(sum); free(tk);
    return sp_error_set(err, SP_ENOMEM, "threshold: out of memory for %zu observations", n);
  }
  for (size_t t = 0; t < n; t++) {
    size_t row = key[t].i;
    c->ent[t] = d->entity[row];
    c->yt[t] = d->y[row];
    /* X and Z into the columns of Q0, transformed and orthogonalised below. */
    for (size_t j = 0; j < k; j++) c->Q0[j * n + t] = d->X[row * d->ldx + j];
    for (size_t a = 0; a < m; a++) c->Zs[a * n + t] = c->Q0[(k + a) * n + t] = d->Z[row * d->ldz + a];
    /* The distinct values of q and the rows up to each. */
    if (c->nu == 0 || key[t].q != c->u[c->nu - 1]) c->u[c->nu++] = key[t].q;
    c->cnt_le[c->nu - 1] = t + 1;
  }
  for (size_t t = 0; t < n; t++) c->Tcount[c->ent[t]]++;
  size_t nent = 0;
  for (size_t e = 0; e < N; e++) {
    if (c->Tcount[e]) { nent++; c->invT[e] = 1.0 / (double)c->Tcount[e]; }
  }
  if (n <= nent + c->p0 + m)
    { free(key); free(pos); free(sum); free(tk);
      return sp_error_set(err, SP_EDF, "threshold: %zu observations are too few for %zu entities and %zu coefficients",
                          n, nent, c->p0 + m); }
  c->df = (double)(n - nent);

  /* Rows of each entity in time order (bootstrap: whole residual vectors). */
  for (size_t e = 0; e < N; e++) c->estart[e + 1] = c->estart[e] + c->Tcount[e];
  {
    size_t *fill = malloc((N ? N : 1) * sizeof *fill);
    if (!fill) { free(key); free(pos); free(sum); free(tk); return sp_error_set(err, SP_ENOMEM, "threshold: out of memory"); }
    memcpy(fill, c->estart, N * sizeof *fill);
    for (size_t row = 0; row < n; row++) {
      size_t e = (size_t)d->entity[row];
      tk[fill[e]].t = d->time ? d->time[row] : 0;
      tk[fill[e]].row = row;
      tk[fill[e]].pos = pos[row];
      fill[e]++;
    }
    free(fill);
    for (size_t e = 0; e < N; e++) {
      size_t lo = c->estart[e], cnt = c->Tcount[e];
      /* Panels usually come in time order: check before sorting. */
      size_t sorted = 1;
      while (sorted < cnt && cmp_tkey(tk + lo + sorted - 1, tk + lo + sorted) < 0) sorted++;
      if (sorted < cnt) qsort(tk + lo, cnt, sizeof *tk, cmp_tkey);
      for (size_t i = 0; i < cnt; i++) c->epos[lo + i] = tk[lo + i].pos;
      c->lastpos[e] = cnt ? c->epos[lo + cnt - 1] : 0;
    }
  }
  /* Strata of entities with equal observation counts. */
  {
    ckey *ck = malloc((N ? N : 1) * sizeof *ck);
    if (!ck) { free(key); free(pos); free(sum); free(tk); return sp_error_set(err, SP_ENOMEM, "threshold: out of memory"); }
    for (size_t e = 0; e < N; e++) { ck[e].count = c->Tcount[e]; ck[e].e = e; }
    qsort(ck, N, sizeof *ck, cmp_ckey);
    for (size_t e = 0; e < N; e++) {
      c->strat[e] = ck[e].e;
      c->sstart[e] = c->estart[ck[e].e];
    }
    free(ck);
  }
  for (size_t i = 0; i < N;) {
    size_t j = i;
    while (j < N && c->Tcount[c->strat[j]] == c->Tcount[c->strat[i]]) j++;
    for (size_t l = i; l < j; l++) { c->slo[c->strat[l]] = i; c->shi[c->strat[l]] = j; }
    i = j;
  }
  free(key); free(pos); free(tk);

  /* Within transformation and the basis of the regime-independent part. */
  transform(c, c->yt, sum);
  const double *cols[THR_PMAX];
  for (size_t j = 0; j < c->p0; j++) {
    double *v = c->Q0 + j * n, *keep = j < k ? c->Xt : c->Zt;
    transform(c, v, sum);
    if (keep) memcpy(keep + (j < k ? j : j - k) * n, v, n * sizeof *v);
    if (orth_append(n, cols, j, v)) {
      const char *nm = j < k ? (d->xnames ? d->xnames[j] : NULL) : (d->znames ? d->znames[j - k] : NULL);
      free(sum);
      sp_error_set(err, SP_ESINGULAR,
                   "threshold: %s '%s' is collinear with the other regressors or constant within entities "
                   "(after removing the entity means)", j < k ? "regressor" : "regime regressor", nm ? nm : "?");
      if (nm) sp_error_var(err, nm);
      return SP_ESINGULAR;
    }
    cols[j] = v;
  }
  free(sum);

  /* The grid (the distinct values are counted above). */
  size_t nu = c->nu;
  if (nu < 2) {
    sp_error_set(err, SP_EVALUE, "threshold: the threshold variable '%s' is constant (%g in every row used)",
                 qname_of(d), c->u[0]);
    sp_error_var(err, qname_of(d));
    return SP_EVALUE;
  }
  /* Candidates: xthreg/Hansen quantile grid u[floor((trim + k/G) N)] (1-based),
     k = 0 .. G(1 - 2 trim), or every u[j], j = floor(trim N) .. floor((1 - trim) N).
     Indices are clamped to [1, N - 1] (u[N] would leave the upper regime empty)
     and repeats removed. */
  size_t ng = 0;
  c->cand = sp_mem_alloc((o->grid ? o->grid + 1 : nu) * sizeof *c->cand);
  if (!c->cand) return sp_error_set(err, SP_ENOMEM, "threshold: out of memory");
  double tr = o->trim[0], Nu = (double)nu;
  if (o->grid) {
    double G = (double)o->grid;
    size_t kmax = (size_t)floor(G * (1.0 - 2.0 * tr) + 1e-9);
    for (size_t kk = 0; kk <= kmax; kk++) {
      double sq = tr + (double)kk / G;
      long j1 = (long)floor(sq * Nu);
      if (j1 < 1) j1 = 1;
      if (j1 > (long)nu - 1) j1 = (long)nu - 1;
      size_t j0 = (size_t)(j1 - 1);
      if (ng == 0 || c->cand[ng - 1] < j0) c->cand[ng++] = j0;
    }
  } else {
    long lo = (long)floor(tr * Nu), hi = (long)floor((1.0 - tr) * Nu);
    if (lo < 1) lo = 1;
    if (hi > (long)nu - 1) hi = (long)nu - 1;
    for (long j1 = lo; j1 <= hi; j1++) c->cand[ng++] = (size_t)(j1 - 1);
  }
  c->ncand = ng;
  for (int s = 1; s < SP_THR_MAX; s++) {
    double wd = o->grid ? floor((double)o->grid * o->trim[s] + 1e-9) : floor(o->trim[s] * Nu);
    c->width[s] = wd < 1 ? 1 : (size_t)wd;
  }
  /* Each threshold after the first removes 2 w candidates at most. */
  size_t need = (size_t)o->nthresh;
  if (ng < need) {
    sp_error_set(err, SP_EVALUE,
                 "threshold: the threshold variable '%s' has %zu distinct values, too few for %d threshold%s "
                 "with trimming %g: %zu candidate%s left (expected at least %zu)",
                 qname_of(d), nu, o->nthresh, o->nthresh > 1 ? "s" : "", tr, ng, ng == 1 ? "" : "s", need);
    sp_error_var(err, qname_of(d));
    return SP_EVALUE;
  }
  return SP_OK;
}

/* ---- the estimator ------------------------------------------------------------------ */

static int curve_from(const thr_ctx *c, const double *ssr, sp_thr_curve *cv, double crit, double ci[2]) {
  size_t cnt = 0, b = argmin(ssr, c->ncand);
  for (size_t i = 0; i < c->ncand; i++) cnt += !isnan(ssr[i]);
  cv->gamma = malloc((cnt ? cnt : 1) * sizeof(double));
  cv->lr = malloc((cnt ? cnt : 1) * sizeof(double));
  if (!cv->gamma || !cv->lr) return SP_ENOMEM;
  double smin = ssr[b];
  ci[0] = INFINITY; ci[1] = -INFINITY;
  cnt = 0;
  for (size_t i = 0; i < c->ncand; i++) {
    if (isnan(ssr[i])) continue;
    double g = c->u[c->cand[i]], lr = (ssr[i] - smin) / (smin / c->df);
    cv->gamma[cnt] = g;
    cv->lr[cnt] = lr;
    cnt++;
    if (lr < crit) {
      if (g < ci[0]) ci[0] = g;
      if (g > ci[1]) ci[1] = g;
    }
  }
  cv->n = cnt;
  return SP_OK;
}

/* hansen1999: the program's regression at the final thresholds fin (u-indices,
   ascending): transformed X and regime columns z 1(regime r), with its two
   standard errors (see threshold.h). */
static int hansen_coef(const thr_ctx *c, const size_t *fin, int nt, sp_thr_result *res) {
  size_t n = c->n, k = c->k, m = c->m, K = k + (size_t)(nt + 1) * m;
  double *D = sp_mem_doubles(n * K), *sum = malloc((c->N ? c->N : 1) * sizeof *sum);
  gsl_matrix *A = gsl_matrix_alloc(K, K), *B = gsl_matrix_calloc(K, K);
  gsl_vector *b = gsl_vector_alloc(K), *x = gsl_vector_alloc(K);
  res->coef = malloc(K * sizeof *res->coef);
  res->V_homo = malloc(K * K * sizeof *res->V_homo);
  res->V_het = malloc(K * K * sizeof *res->V_het);
  int st = SP_ENOMEM;
  if (!D || !sum || !A || !B || !b || !x || !res->coef || !res->V_homo || !res->V_het) goto out;
  res->ncoef = K;
  if (k) memcpy(D, c->Xt, n * k * sizeof *D);
  for (size_t a = 0; a < m; a++)
    for (int r = 0; r <= nt; r++) {
      double *v = D + (k + a * (size_t)(nt + 1) + (size_t)r) * n;
      size_t lo = r ? nbelow(c, fin[r - 1]) : 0, hi = r < nt ? nbelow(c, fin[r]) : n;
      for (size_t t = 0; t < n; t++) v[t] = t >= lo && t < hi ? c->Zs[a * n + t] : 0.0;
      transform(c, v, sum);
    }
  for (size_t i = 0; i < K; i++) {
    gsl_vector_set(b, i, dot(n, D + i * n, c->yt));
    for (size_t j = 0; j <= i; j++) {
      double v = dot(n, D + i * n, D + j * n);
      gsl_matrix_set(A, i, j, v);
      gsl_matrix_set(A, j, i, v);
    }
  }
  st = SP_ESINGULAR;
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  int bad = gsl_linalg_cholesky_decomp1(A) || gsl_linalg_cholesky_solve(A, b, x) || gsl_linalg_cholesky_invert(A);
  gsl_set_error_handler(old);
  if (bad) goto out;
  /* Residuals (zero in the deleted rows) and the meat of the sandwich. */
  double ssr = 0;
  for (size_t t = 0; t < n; t++) {
    double f = c->yt[t];
    for (size_t i = 0; i < K; i++) f -= D[i * n + t] * gsl_vector_get(x, i);
    ssr += f * f;
    double f2 = f * f;
    if (f2 == 0.0) continue;
    for (size_t i = 0; i < K; i++)
      for (size_t j = 0; j <= i; j++) B->data[i * B->tda + j] += f2 * D[i * n + t] * D[j * n + t];
  }
  /* The program's divisor: the rows kept, less the entities and the coefficients. */
  double s2 = ssr / (c->df - ((double)n - c->df) - (double)K);
  for (size_t i = 0; i < K; i++) {
    res->coef[i] = gsl_vector_get(x, i);
    for (size_t j = 0; j < K; j++) {
      res->V_homo[i * K + j] = s2 * gsl_matrix_get(A, i, j);
      double v = 0;
      for (size_t p = 0; p < K; p++)
        for (size_t q = 0; q < K; q++) {
          double bpq = p >= q ? gsl_matrix_get(B, p, q) : gsl_matrix_get(B, q, p);
          v += gsl_matrix_get(A, i, p) * bpq * gsl_matrix_get(A, q, j);
        }
      res->V_het[i * K + j] = v;
    }
  }
  st = SP_OK;
out:
  sp_mem_free(D);
  free(sum);
  if (A) gsl_matrix_free(A);
  if (B) gsl_matrix_free(B);
  if (b) gsl_vector_free(b);
  if (x) gsl_vector_free(x);
  return st;
}

static int fail_nocand(const sp_thr_data *d, const thr_ctx *c, int stg, sp_error *err) {
  static const char *const what[] = {"the first threshold", "the second threshold", "the refined first threshold",
                                     "the third threshold"};
  sp_error_set(err, SP_EDF,
               "threshold: no candidate for %s leaves every regime with at least %zu observation%s "
               "(the number of regime-dependent coefficients) after trimming: too few observations or distinct "
               "values of '%s' for this many thresholds",
               what[stg], c->m, c->m == 1 ? "" : "s", qname_of(d));
  sp_error_var(err, qname_of(d));
  return SP_EDF;
}

int sp_threshold_fit(const sp_thr_data *d, const sp_thr_options *o, sp_thr_result *res, sp_error *err) {
  memset(res, 0, sizeof *res);
  if (d == NULL || o == NULL) return sp_error_set(err, SP_EVALUE, "threshold: no data or options");
  if (o->nthresh < 1 || o->nthresh > SP_THR_MAX)
    return sp_error_set(err, SP_EVALUE, "threshold: the number of thresholds must be 1, 2 or 3 (got %d)", o->nthresh);
  for (int s = 0; s < o->nthresh; s++)
    if (!(o->trim[s] >= 0 && o->trim[s] < 0.5))
      return sp_error_set(err, SP_EVALUE, "threshold: trim[%d] must be in [0, 0.5) (got %g)", s + 1, o->trim[s]);
  if (o->reps < 0) return sp_error_set(err, SP_EVALUE, "threshold: bootstrap replications must be >= 0 (0: no bootstrap; got %d)", o->reps);
  if (o->threads < 1) return sp_error_set(err, SP_EVALUE, "threshold: threads must be >= 1 (got %d)", o->threads);
  if (!(o->level > 0 && o->level < 1)) return sp_error_set(err, SP_EVALUE, "threshold: level must be in (0, 1) (got %g)", o->level);
  if (d->m < 1) return sp_error_set(err, SP_EVALUE, "threshold: at least one regime-dependent regressor is needed");
  if (d->n == 0) return sp_error_set(err, SP_EDF, "threshold: no observations");

  thr_ctx c;
  memset(&c, 0, sizeof c);
  int nthreads = o->threads > 64 ? 64 : o->threads;
  if (o->reps < nthreads) nthreads = o->reps > 0 ? o->reps : 1;
  thr_ws ws[64];
  memset(ws, 0, sizeof ws);
  unsigned char *mask[64] = {0};
  double *fitted = NULL, *resid = NULL, *fres = NULL, *fem = NULL, *rem = NULL;
  int st = setup(d, o, &c, err);
  if (st) goto done;
  {
    size_t m = c.m, p0 = c.p0, cache = c.ncand * (m * p0 + m * (m + 1) / 2) + c.n * (m + p0 + 4);
    c.fast = o->reps > 0 && !c.naive && !c.drop && c.n < UINT32_MAX && cache * sizeof(double) <= THR_CACHE_MAX;
  }
  if (c.fast) {
    size_t n = c.n, m = c.m, p0 = c.p0;
    c.ngrp = (n >> THR_GSHIFT) + 1;
    c.hc = sp_mem_doubles(c.ncand * m * p0);
    c.lc = sp_mem_doubles(c.ncand * (m * (m + 1) / 2));
    c.tau = sp_mem_alloc(n * sizeof *c.tau);
    c.zem = sp_mem_doubles(n * m);
    c.qem = sp_mem_doubles(n * p0);
    c.grp = sp_mem_alloc(n * sizeof *c.grp);
    c.gstart = calloc(c.ngrp + 1, sizeof *c.gstart);
    c.grec = sp_mem_calloc(c.ngrp * (2 + m * p0), sizeof *c.grec);
    fres = sp_mem_doubles(n);
    fem = sp_mem_doubles(n);
    rem = thr_random_doubles(n);
    if (!c.hc || !c.lc || !c.tau || !c.zem || !c.qem || !c.grp || !c.gstart || !c.grec || !fres || !fem ||
        !rem) {
      st = sp_error_set(err, SP_ENOMEM, "threshold: out of memory for the bootstrap");
      goto done;
    }
    for (size_t e = 0; e < c.N; e++)
      for (size_t i = 0; i < c.Tcount[e]; i++) {
        size_t k = c.estart[e] + i, t = c.epos[k];
        c.tau[t] = (uint32_t)i;
        c.grp[k] = (uint32_t)(t >> THR_GSHIFT);
        for (size_t a = 0; a < m; a++) c.zem[k * m + a] = c.Zs[a * n + t];
        for (size_t b = 0; b < p0; b++) c.qem[k * p0 + b] = c.Q0[b * n + t];
      }
    /* Candidates are ascending, so each group's are a range. */
    for (size_t ci = 0; ci < c.ncand; ci++) c.gstart[(nbelow(&c, c.cand[ci]) >> THR_GSHIFT) + 1]++;
    for (size_t g = 0; g < c.ngrp; g++) c.gstart[g + 1] += c.gstart[g];
  }
  for (int i = 0; i < nthreads; i++) {
    mask[i] = malloc(c.ncand);
    if (!mask[i] || ws_alloc(&c, o->nthresh, &ws[i])) {
      st = sp_error_set(err, SP_ENOMEM, "threshold: out of memory for the workspaces");
      goto done;
    }
  }
  fitted = sp_mem_doubles(c.n);
  resid = sp_mem_doubles(c.n);
  if (!fitted || !resid) { st = sp_error_set(err, SP_ENOMEM, "threshold: out of memory"); goto done; }

  res->nthresh = o->nthresh;
  res->nobs = c.n;
  res->df = (size_t)c.df;
  res->nentities = c.n - res->df;
  res->balanced = 1;
  for (size_t e = 0; e < c.N; e++)
    if (c.Tcount[e] && c.Tcount[e] != c.Tcount[c.ent[0]]) res->balanced = 0;
  res->nunique = c.nu;
  res->ngrid = c.ncand;
  res->lr_crit = -2.0 * log(1.0 - sqrt(o->level));
  for (int i = 0; i < 4; i++) res->seq_gamma[i] = res->seq_ssr[i] = NAN;

  /* Point estimates, keeping the four SSR curves of workspace 0. */
  thr_seq s;
  memset(&s, 0, sizeof s);
  st = sequential(&c, &ws[0], c.yt, o->nthresh, o->nthresh >= 2, 1, 0, mask[0], &s);
  if (st == SP_EDF) {
    int stg = s.g[0] == (size_t)-1 ? 0 : s.g[1] == (size_t)-1 ? 1 : s.g[2] == (size_t)-1 ? 2 : 3;
    st = fail_nocand(d, &c, stg, err);
    goto done;
  }
  if (st == SP_ESINGULAR) {
    st = sp_error_set(err, SP_ESINGULAR, "threshold: the regime regressors are collinear at the estimated thresholds");
    goto done;
  }
  if (st) goto done;
  res->ssr_linear = s.S[0];
  if (c.fast) {
    /* The groups' bounds from the cache the point estimate filled. */
    size_t m = c.m, nl = m * (m + 1) / 2, hp = m * c.p0;
    for (size_t g = 0; g < c.ngrp; g++) {
      double *gr = c.grec + g * (2 + hp);
      const double *H0 = c.hc + c.gstart[g] * hp;
      if (c.gstart[g] < c.gstart[g + 1]) memcpy(gr + 2, H0, hp * sizeof *gr);
      for (size_t ci = c.gstart[g]; ci < c.gstart[g + 1]; ci++) {
        const double *L = c.lc + ci * nl, *H = c.hc + ci * hp;
        if (isnan(L[0])) continue;
        double dh = 0;
        for (size_t i = 0; i < hp; i++) dh += (H[i] - H0[i]) * (H[i] - H0[i]);
        gr[0] = fmax(gr[0], sqrt(dh));
        gr[1] = fmax(gr[1], dot(nl, L, L));
      }
    }
  }
  int nt = o->nthresh;
  size_t fin[3];
  int slot[3];
  if (nt == 1) { fin[0] = s.g[0]; slot[0] = 0; }
  else { fin[0] = s.g[2]; slot[0] = 2; fin[1] = s.g[1]; slot[1] = 1; }
  if (nt == 3) { fin[2] = s.g[3]; slot[2] = 3; }
  res->ssr = nt == 1 ? s.S[1] : nt == 2 ? s.S[3] : s.S[4];
  for (int i = 0; i < 4; i++) {
    if (s.g[i] != (size_t)-1) {
      res->seq_gamma[i] = c.u[s.g[i]];
      res->seq_ssr[i] = s.S[i + 1];
      res->seq_ncand[i] = s.ncand[i];
    }
  }
  /* Curves and intervals, then sort by threshold value. */
  for (int j = 0; j < nt; j++) {
    res->gamma[j] = c.u[fin[j]];
    if (curve_from(&c, ws[0].ssr[slot[j]], &res->curve[j], res->lr_crit, res->ci[j])) {
      st = sp_error_set(err, SP_ENOMEM, "threshold: out of memory");
      goto done;
    }
  }
  for (int i = 1; i < nt; i++)
    for (int j = i; j > 0 && res->gamma[j - 1] > res->gamma[j]; j--) {
      double g = res->gamma[j]; res->gamma[j] = res->gamma[j - 1]; res->gamma[j - 1] = g;
      double c0 = res->ci[j][0], c1 = res->ci[j][1];
      res->ci[j][0] = res->ci[j - 1][0]; res->ci[j][1] = res->ci[j - 1][1];
      res->ci[j - 1][0] = c0; res->ci[j - 1][1] = c1;
      sp_thr_curve cv = res->curve[j]; res->curve[j] = res->curve[j - 1]; res->curve[j - 1] = cv;
      size_t f = fin[j]; fin[j] = fin[j - 1]; fin[j - 1] = f;
    }
  {
    size_t prev = 0;
    for (int j = 0; j <= nt; j++) {
      size_t cnt = j < nt ? nbelow(&c, fin[j]) : c.n;
      res->regime_nobs[j] = cnt - prev;
      prev = cnt;
    }
  }
  if (c.drop && (st = hansen_coef(&c, fin, nt, res))) {
    st = st == SP_ENOMEM ? sp_error_set(err, SP_ENOMEM, "threshold: out of memory")
                         : sp_error_set(err, SP_ESINGULAR, "threshold: the regressors are collinear at the estimated thresholds");
    goto done;
  }

  /* Tests and their bootstrap. */
  for (int t = 0; t < nt; t++) {
    sp_thr_test *T = &res->test[t];
    T->F = fstat(&c, &s, t);
    T->ssr_null = t == 0 ? s.S[0] : t == 1 ? s.S[1] : s.S[3];
    T->ssr_alt = t == 0 ? s.S[1] : t == 1 ? s.S[2] : s.S[4];
    T->pvalue = NAN;
    T->crit[0] = T->crit[1] = T->crit[2] = NAN;
    if (o->reps == 0) continue;
    /* The null model: t thresholds (none; g1; refined g1 and g2). */
    size_t g0[2] = {t == 1 ? s.g[0] : s.g[2], s.g[1]};
    const double *cols[THR_PMAX];
    size_t p;
    double ssr0;
    if ((st = base_fit(&c, &ws[0], g0, (size_t)t, c.yt, cols, &p, &ssr0))) {
      st = sp_error_set(err, SP_ESINGULAR, "threshold: the null model of test %d is singular", t + 1);
      goto done;
    }
    memcpy(resid, ws[0].e, c.n * sizeof *resid);
    for (size_t i = 0; i < c.n; i++) fitted[i] = c.yt[i] - resid[i];
    if (c.fast) {
      /* What boot_stage1 reuses in every replication of this test. */
      for (size_t j = 0; j < c.p0; j++) cols[j] = c.Q0 + j * c.n;
      project_out(c.n, cols, c.p0, fitted, fres);
      for (size_t k = 0; k < c.n; k++) {
        rem[k] = resid[c.epos[k]];
        fem[k] = fres[c.epos[k]];
      }
    }
    T->reps = o->reps;
    /* zeros where other MPI ranks run the replication: the sum over ranks
       below then holds each F* exactly as its own rank computed it */
    T->Fboot = calloc((size_t)o->reps, sizeof(double));
    if (!T->Fboot) { st = sp_error_set(err, SP_ENOMEM, "threshold: out of memory"); goto done; }
    boot_job jobs[64];
    pthread_t tids[64];
    int started[64] = {0};
    for (int i = 0; i < nthreads; i++) {
      jobs[i] = (boot_job){.c = &c, .w = &ws[i], .mask = mask[i], .fitted = fitted, .resid = resid, .fres = fres,
                           .fem = fem, .rem = rem, .test = t,
                           .reps = o->reps, .tid = i, .nthreads = nthreads, .rank = sp_dist_rank(),
                           .nranks = sp_dist_size(), .seed = o->seed, .Fboot = T->Fboot,
                           .status = SP_OK};
    }
    for (int i = 1; i < nthreads; i++) started[i] = pthread_create(&tids[i], NULL, boot_run, &jobs[i]) == 0;
    boot_run(&jobs[0]);
    for (int i = 1; i < nthreads; i++) {
      if (started[i]) pthread_join(tids[i], NULL);
      else boot_run(&jobs[i]);  /* no thread: do its share here (same streams, same result) */
    }
    for (int i = 0; i < nthreads; i++)
      if (jobs[i].status) { st = sp_error_set(err, jobs[i].status, "threshold: bootstrap failed (out of memory)"); goto done; }
    if (sp_dist_size() > 1) {
      /* Every rank must bootstrap the same model: a script fitting its own
         data on each rank would otherwise mix replications of several. */
      double F[2] = {T->F, -T->F};
      if ((st = sp_dist_max(F, 2, err)) != SP_OK) goto done;
      if (F[0] != -F[1]) {
        st = sp_error_set(err, SP_EVALUE, "threshold: F%d differs between the processes of the MPI job; the bootstrap "
                          "splits one model's replications over them, so every process must fit the same data", t + 1);
        goto done;
      }
      if ((st = sp_dist_sum(T->Fboot, (size_t)o->reps, err)) != SP_OK) goto done;
    }
    size_t above = 0;
    for (int r = 0; r < o->reps; r++) above += T->Fboot[r] > T->F;
    T->pvalue = (double)above / (double)o->reps;
    double *sorted = malloc((size_t)o->reps * sizeof *sorted);
    if (!sorted) { st = sp_error_set(err, SP_ENOMEM, "threshold: out of memory"); goto done; }
    memcpy(sorted, T->Fboot, (size_t)o->reps * sizeof *sorted);
    qsort(sorted, (size_t)o->reps, sizeof *sorted, cmp_double);
    static const double lev[3] = {0.90, 0.95, 0.99};
    for (int l = 0; l < 3; l++) {
      long idx = (long)ceil(lev[l] * o->reps - 1e-9) - 1;
      if (idx < 0) idx = 0;
      if (idx >= o->reps) idx = o->reps - 1;
      T->crit[l] = sorted[idx];
    }
    free(sorted);
  }
  st = SP_OK;

done:
  for (int i = 0; i < 64; i++) { ws_free(&ws[i]); free(mask[i]); }
  sp_mem_free(fitted);
  sp_mem_free(resid);
  sp_mem_free(fres);
  sp_mem_free(fem);
  free(rem);
  ctx_free(&c);
  return st;
}
