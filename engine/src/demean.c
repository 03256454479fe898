/*
** demean.c: the HDFE kernel (see demean.h and docs/api/demean.md).
**
** Internally the factor with the most levels is factor 0 (call its levels
** "blocks"); the others keep the caller's order.  The unknowns iterated on are
** the coefficients X of factors 1..K-1 (few levels in a typical panel, so they
** stay in cache); factor 0's coefficients are always the exact best response
** to X, computed block by block during the sweep.  One Gauss-Seidel sweep F
** is K-1 passes over the rows grouped by block; pass s updates factor s from
** the newest values of all others.  Each pass streams only the int32 codes of
** factors 1..K-1 in block order (copied once into the workspace), and all
** active columns are carried together (level-major, column-minor arrays).
**
** Determinism: every pass is cut into NCH fixed chunks (rows, or whole
** blocks) whose partial sums are reduced in chunk order, so the arithmetic is
** the same whether one thread runs both chunks or two threads run one each.
*/
#define _GNU_SOURCE /* pthread_barrier_t (team.h) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/demean.h"
#include "spillover/inline.h"
#include "spillover/mem.h"
#include "spillover/rows.h"
#include "team.h"

#define NCH SP_TEAM_CHUNKS /* fixed chunk count: the determinism contract */
#define GMAX 4     /* columns handled together by a specialised kernel */
#define SP_MAXF 16 /* most factors (pointer tables live on the stack) */


/* ------------------------------------------------------------------------
** The workspace.
** ------------------------------------------------------------------------ */
struct sp_demean_ws {
  size_t n, K;
  size_t *ord;         /* ord[k]: caller index of internal factor k */
  size_t *L;           /* levels of internal factor k */
  size_t *off;         /* off[k] = L[0] + ... + L[k-1]; off[K] = Ltot */
  size_t Ltot, M;      /* all levels; levels of factors 1..K-1 */
  const int32_t **code;/* K arrays of n codes in row order, the caller's (borrowed) */
  int32_t **sown;      /* K arrays in block order, owned (NULL when sorted; [0] unused) */
  const int32_t **scode;/* K arrays in block order: sown[k], or code[k] when sorted */
  int sorted;          /* factor 0 codes were non-decreasing: no copies */
  size_t *start;       /* L[0] + 1 block offsets into the block order */
  double *w, *sw;      /* weights in row / block order, or NULL; sw aliases w if sorted */
  double *wsum;        /* Ltot weight sums (row counts when unweighted) */
  double *invw;        /* Ltot reciprocals, 0 for empty levels */
  double wtot;
  size_t dof, ncomp;   /* sp_demean_dof's figures, when dof_known */
  int dof_known;
  size_t rcut[NCH + 1], bcut[NCH + 1];
  /* Scratch for up to cap columns, grown by a run or solve (never in a loop). */
  size_t cap;
  double *buf;
  double *S;           /* Ltot x q: weighted sums of the active columns */
  double *acc[NCH];    /* Ltot x p per chunk */
  double *coef;        /* Ltot x p: final coefficients, all columns */
  double *alpha;       /* L[0] x q: factor 0 coefficients of the active columns */
  double *X, *GX, *GGX;/* M x q: iterates */
  double *ss[NCH];     /* p per chunk */
  double *rowbuf[NCH]; /* SP_ROWS_BLOCK x p per chunk: rows read from a source */
  double *scale, *v1, *v2;
  size_t *act;         /* active position -> column */
  unsigned char *drop; /* per active position: converged this sweep */
  size_t pr;           /* columns of the current run (stride of coef) */
  size_t *others;      /* K: scratch list of factors */
  const double **cur;  /* K: per-factor coefficient pointers of a pass */
};

void sp_demean_options_init(sp_demean_options *opt) {
  opt->tol = 1e-10;
  opt->maxiter = 10000;
  opt->accelerate = 1;
  opt->threads = 1;
}

size_t sp_demean_nobs(const sp_demean_ws *ws) { return ws->n; }

const double *sp_demean_coef(const sp_demean_ws *ws, size_t j, size_t *p) {
  *p = 0;
  if (ws == NULL || ws->coef == NULL || j >= ws->K) return NULL;
  for (size_t k = 0; k < ws->K; k++)
    if (ws->ord[k] == j) {
      *p = ws->pr;
      return ws->coef + ws->off[k] * ws->pr;
    }
  return NULL;
}

void sp_demean_free(sp_demean_ws *ws) {
  if (ws == NULL) return;
  if (ws->sown != NULL)
    for (size_t k = 0; k < ws->K; k++) sp_mem_free(ws->sown[k]);
  if (!ws->sorted) sp_mem_free(ws->sw);
  sp_mem_free(ws->w);
  free(ws->code);
  free(ws->scode);
  free(ws->sown);
  free(ws->ord);
  free(ws->L);
  free(ws->off);
  sp_mem_free(ws->wsum);  /* start and invw are in its block */
  sp_mem_free(ws->buf);
  free(ws->act);
  free(ws->drop);
  free(ws->others);
  free(ws->cur);
  free(ws);
}

enum { CHECK_BLOCK = 4096 };  /* rows whose codes are checked at once, then used */

/* The first row whose code lies outside [0, L), or n when none does.  The
   test is branch-free over blocks of rows, so it vectorises (the codes of a
   1e7-row fit are checked at memory speed); only a block that fails is
   searched row by row, for the message. */
static size_t first_bad_code(const int32_t *c, size_t n, int32_t L) {
  for (size_t r0 = 0; r0 < n; r0 += CHECK_BLOCK) {
    size_t r1 = n - r0 < CHECK_BLOCK ? n : r0 + CHECK_BLOCK;
    unsigned bad = 0;
    for (size_t r = r0; r < r1; r++) bad |= (uint32_t)c[r] >= (uint32_t)L;
    if (bad)
      for (size_t r = r0; r < r1; r++)
        if ((uint32_t)c[r] >= (uint32_t)L) return r;
  }
  return n;
}

/* The factors' pointers and level counts (not their codes). */
static int check_factors(size_t n, size_t nfe, const int32_t *const *codes, const size_t *nlevels, sp_error *err) {
  if (nfe == 0) return sp_error_set(err, SP_EVALUE, "fixed effects: none given (expected at least one factor)");
  if (codes == NULL || nlevels == NULL)
    return sp_error_set(err, SP_EVALUE, "fixed effects: codes and nlevels must not be NULL");
  for (size_t k = 0; k < nfe; k++) {
    if (codes[k] == NULL && n > 0)
      return sp_error_set(err, SP_EVALUE, "fixed effect %zu has no codes", k + 1);
    if (nlevels[k] == 0 || nlevels[k] > (size_t)INT32_MAX)
      return sp_error_set(err, SP_EVALUE, "fixed effect %zu has %zu levels (expected 1 to %d)",
                          k + 1, nlevels[k], INT32_MAX);
  }
  return SP_OK;
}

/* Every factor's codes of rows [r0, r1) lie in 0..nlevels - 1. */
static int check_code_rows(size_t r0, size_t r1, size_t nfe, const int32_t *const *codes, const size_t *nlevels,
                           sp_error *err) {
  for (size_t k = 0; k < nfe; k++) {
    const int32_t *c = codes[k] + r0;
    int32_t L = (int32_t)nlevels[k];
    size_t r = first_bad_code(c, r1 - r0, L);
    if (r < r1 - r0)
      return sp_error_set(err, SP_EVALUE,
                          "fixed effect %zu, row %zu: code %d outside 0..%d "
                          "(missing levels must be removed from the sample first)",
                          k + 1, r0 + r + 1, (int)c[r], (int)L - 1);
  }
  return SP_OK;
}

static int check_codes(size_t n, size_t nfe, const int32_t *const *codes,
                       const size_t *nlevels, sp_error *err) {
  int st = check_factors(n, nfe, codes, nlevels, err);
  return st != SP_OK ? st : check_code_rows(0, n, nfe, codes, nlevels, err);
}

static int ws_oom(sp_demean_ws *ws, sp_error *err) {
  sp_demean_free(ws);
  return sp_error_set(err, SP_ENOMEM, "demean: out of memory building the fixed-effect workspace");
}

static int fe_dof(size_t n, size_t nfe, const int32_t *const *codes, const size_t *nlevels,
                  const unsigned char *keep, size_t *dof, size_t *ncomp, sp_error *err);

/* The pass over the codes of sp_demean_new, codes and nlevels in the
   caller's order. */
static int count_levels(sp_demean_ws *ws, const int32_t *const *codes, const size_t *nlevels, sp_error *err) {
  /* One pass over the codes: block sizes, whether factor 0 is sorted, and
     the weight sums of every level (row counts when unweighted).  Factor
     0's rows usually come grouped by level, and an add to the level the
     previous row added to waits for that store, a chain through memory: its
     count and weight sum stay in registers while its code repeats and are
     stored when it changes (the same additions in the same order). */
  size_t n = ws->n, K = ws->K, L0 = ws->L[0];
  const int32_t *c0 = ws->code[0];
  unsigned unsorted = 0;
  int32_t cur = c0[0];
  size_t run = 0;
  double wtot = 0.0, acc = 0.0;
  const double *w = ws->w;
  size_t *start = ws->start;
  double *wsum[SP_MAXF];
  const int32_t *cd[SP_MAXF];
  for (size_t k = 0; k < K; k++) {
    wsum[k] = ws->wsum + ws->off[k];
    cd[k] = ws->code[k];
  }
  /* Unweighted, the other factors' rows are counted as integers in
     wsum's own storage (zeros either way) and converted after: an integer
     add instead of a floating-point one in each row's load-add-store. */
  _Static_assert(sizeof(uint64_t) == sizeof(double), "a count in a weight sum's place");
  uint64_t *cnt[SP_MAXF];
  for (size_t k = 0; k < K; k++) cnt[k] = (uint64_t *)(void *)wsum[k];
  for (size_t b0 = 0; b0 < n; b0 += CHECK_BLOCK) {
    size_t b1 = n - b0 < CHECK_BLOCK ? n : b0 + CHECK_BLOCK;
    int st = check_code_rows(b0, b1, K, codes, nlevels, err);
    if (st != SP_OK) return st;
    for (size_t r = b0; r < b1; r++) {
      int32_t c = c0[r];
      double wr = w != NULL ? w[r] : 1.0;
      if (c != cur) {
        unsorted |= c < cur;
        start[cur + 1] += run;
        wsum[0][cur] = acc;
        cur = c;
        run = 0;
        acc = wsum[0][c];
      }
      run++;
      if (w != NULL) {  /* unweighted, the sums are the counts, exact below */
        wtot += wr;
        acc += wr;
      }
      if (w != NULL)
        for (size_t k = 1; k < K; k++) wsum[k][cd[k][r]] += wr;
      else
        for (size_t k = 1; k < K; k++) cnt[k][cd[k][r]]++;
    }
  }
  start[cur + 1] += run;
  wsum[0][cur] = acc;
  ws->sorted = !unsorted;
  if (w == NULL) {
    wtot = (double)n;
    for (size_t b = 0; b < L0; b++) wsum[0][b] = (double)start[b + 1];
    for (size_t k = 1; k < K; k++)
      for (size_t l = 0; l < ws->L[k]; l++) wsum[k][l] = (double)cnt[k][l];
  }
  ws->wtot = wtot;
  return SP_OK;
}

typedef struct {
  sp_demean_ws *ws;
  const int32_t *const *codes;
  const size_t *nlevels;
  int st, dofst;
  sp_error err, doferr;
} setup_job;

/* Chunk 0 counts the levels; chunk 1 counts the absorbed parameters. */
static void setup_chunk(void *ctx, int c) {
  setup_job *j = ctx;
  sp_demean_ws *ws = j->ws;
  if (c == 0) j->st = count_levels(ws, j->codes, j->nlevels, &j->err);
  else j->dofst = fe_dof(ws->n, ws->K, j->codes, j->nlevels, NULL, &ws->dof, &ws->ncomp, &j->doferr);
}

sp_demean_ws *sp_demean_new(size_t n, size_t nfe, const int32_t *const *codes,
                            const size_t *nlevels, const double *weights, int threads, sp_error *err) {
  if (n == 0) {
    sp_error_set(err, SP_EDF, "demean: no observations");
    return NULL;
  }
  if (nfe > SP_MAXF) {
    sp_error_set(err, SP_EVALUE, "demean: %zu fixed effects (expected at most %d)", nfe, SP_MAXF);
    return NULL;
  }
  /* The codes themselves are checked in the counting pass below, a block
     at a time while the block is in cache: one read of them, not two. */
  if (check_factors(n, nfe, codes, nlevels, err) != SP_OK) return NULL;
  if (weights != NULL) {
    for (size_t r = 0; r < n; r++)
      if (!(weights[r] >= 0.0) || !isfinite(weights[r])) {
        sp_error_set(err, SP_EVALUE, "demean: weight of row %zu is %g (expected a finite value >= 0)",
                     r + 1, weights[r]);
        return NULL;
      }
  }
  sp_demean_ws *ws = calloc(1, sizeof *ws);
  if (ws == NULL) {
    sp_error_set(err, SP_ENOMEM, "demean: out of memory building the fixed-effect workspace");
    return NULL;
  }
  size_t K = nfe;
  ws->n = n;
  ws->K = K;
  ws->ord = malloc(K * sizeof *ws->ord);
  ws->L = malloc(K * sizeof *ws->L);
  ws->off = malloc((K + 1) * sizeof *ws->off);
  ws->code = calloc(K, sizeof *ws->code);
  ws->scode = calloc(K, sizeof *ws->scode);
  ws->sown = calloc(K, sizeof *ws->sown);
  ws->others = malloc(K * sizeof *ws->others);
  ws->cur = malloc(K * sizeof *ws->cur);
  if (!ws->ord || !ws->L || !ws->off || !ws->code || !ws->scode || !ws->sown || !ws->others || !ws->cur) {
    ws_oom(ws, err);
    return NULL;
  }
  /* The factor with the most levels goes first: its coefficients are then
     never stored as iterates, and its blocks are the unit of work. */
  size_t big = 0;
  for (size_t k = 1; k < K; k++)
    if (nlevels[k] > nlevels[big]) big = k;
  ws->ord[0] = big;
  for (size_t k = 0, i = 1; k < K; k++)
    if (k != big) ws->ord[i++] = k;
  ws->off[0] = 0;
  for (size_t k = 0; k < K; k++) {
    ws->L[k] = nlevels[ws->ord[k]];
    ws->off[k + 1] = ws->off[k] + ws->L[k];
  }
  ws->Ltot = ws->off[K];
  ws->M = ws->Ltot - ws->L[0];

  /* Borrowed, not copied: a copy is 4n bytes of fresh pages per factor. */
  for (size_t k = 0; k < K; k++) ws->code[k] = codes[ws->ord[k]];
  if (weights != NULL) {
    ws->w = sp_mem_doubles(n);
    if (ws->w == NULL) {
      ws_oom(ws, err);
      return NULL;
    }
    memcpy(ws->w, weights, n * sizeof(double));
  }

  size_t L0 = ws->L[0];
  /* One block for the block starts, the weight sums and their inverses:
     2.4 MB at 1e5 levels, which as three mallocs were fresh pages on every
     fit (each a trap on our VMs), and as one comes warm from sp_mem's cache. */
  _Static_assert(sizeof(size_t) == sizeof(double), "start, wsum and invw share one block of doubles");
  if (ws->Ltot > (SIZE_MAX / sizeof(double) - 1) / 2 - L0 ||
      (ws->wsum = sp_mem_doubles(L0 + 1 + 2 * ws->Ltot)) == NULL) {
    ws_oom(ws, err);
    return NULL;
  }
  ws->start = (size_t *)(void *)(ws->wsum + 2 * ws->Ltot);
  ws->invw = ws->wsum + ws->Ltot;
  memset(ws->wsum, 0, ws->Ltot * sizeof *ws->wsum);
  memset(ws->start, 0, (L0 + 1) * sizeof *ws->start);
  /* On two threads the second counts the absorbed parameters meanwhile
     (what sp_demean_dof would compute later), reading the same codes; on
     one, chunk 1 never runs and dofst keeps its "not counted". */
  setup_job job = {ws, codes, nlevels, SP_OK, -1, {0}, {0}};
  sp_error_clear(&job.err);
  sp_error_clear(&job.doferr);
  if (threads >= 2 && n >= SP_TEAM_MIN_ROWS) {
    sp_team tm;
    sp_team_start(&tm, 2);
    sp_team_run(&tm, setup_chunk, &job);
    sp_team_stop(&tm);
  } else {
    setup_chunk(&job, 0);
  }
  if (job.st != SP_OK) {
    if (err != NULL) *err = job.err;
    sp_demean_free(ws);
    return NULL;
  }
  ws->dof_known = job.dofst == SP_OK;
  for (size_t b = 0; b < L0; b++) ws->start[b + 1] += ws->start[b];

  if (ws->sorted) {
    for (size_t k = 0; k < K; k++) ws->scode[k] = ws->code[k];
    ws->sw = ws->w;
  } else {
    /* Counting sort of the other factors' codes (and weights) into block
       order; the row order itself is never needed again. */
    size_t *pos = malloc(L0 * sizeof *pos);
    if (pos == NULL) {
      ws_oom(ws, err);
      return NULL;
    }
    for (size_t k = 1; k < K; k++) {
      ws->scode[k] = ws->sown[k] = sp_mem_alloc(n * sizeof(int32_t));
      if (ws->sown[k] == NULL) {
        free(pos);
        ws_oom(ws, err);
        return NULL;
      }
    }
    if (ws->w != NULL && (ws->sw = sp_mem_doubles(n)) == NULL) {
      free(pos);
      ws_oom(ws, err);
      return NULL;
    }
    memcpy(pos, ws->start, L0 * sizeof *pos);
    const int32_t *c0 = ws->code[0];
    for (size_t r = 0; r < n; r++) {
      size_t d = pos[c0[r]]++;
      for (size_t k = 1; k < K; k++) ws->sown[k][d] = ws->code[k][r];
      if (ws->w != NULL) ws->sw[d] = ws->w[r];
    }
    free(pos);
  }

  for (size_t l = 0; l < ws->Ltot; l++) ws->invw[l] = ws->wsum[l] > 0.0 ? 1.0 / ws->wsum[l] : 0.0;

  /* Fixed chunks: halves of the rows, and the block boundary nearest n/2. */
  ws->rcut[0] = 0;
  ws->rcut[1] = n / 2;
  ws->rcut[2] = n;
  size_t b = 0;
  while (b < L0 && ws->start[b] < n / 2) b++;
  ws->bcut[0] = 0;
  ws->bcut[1] = b;
  ws->bcut[2] = L0;
  return ws;
}

/* Size the scratch for p columns once; later runs with p <= cap reuse it. */
static int ws_reserve(sp_demean_ws *ws, size_t p, sp_error *err) {
  if (p <= ws->cap) return SP_OK;
  size_t Lt = ws->Ltot, M = ws->M, L0 = ws->L[0];
  size_t per = Lt * (1 + NCH + 1) + L0 + 3 * M + NCH * (1 + SP_ROWS_BLOCK) + 3;
  if (per != 0 && p > ((size_t)-1 / sizeof(double) - 3 * NCH * SP_TEAM_PAD) / per)
    return sp_error_set(err, SP_ENOMEM, "demean: %zu columns are too many", p);
  /* Each chunk's sums, sums of squares and row buffer are followed by a
     cache line of padding (sp_team_bufs says why). */
  double *buf = sp_mem_doubles(per * p + 3 * NCH * SP_TEAM_PAD);
  size_t *act = malloc(p * sizeof *act);
  unsigned char *drop = malloc(p);
  if (buf == NULL || act == NULL || drop == NULL) {
    sp_mem_free(buf);
    free(act);
    free(drop);
    return sp_error_set(err, SP_ENOMEM, "demean: out of memory for %zu columns", p);
  }
  sp_mem_free(ws->buf);
  free(ws->act);
  free(ws->drop);
  ws->buf = buf;
  ws->act = act;
  ws->drop = drop;
  ws->cap = p;
  double *q = buf;
  ws->S = q; q += Lt * p;
  for (int c = 0; c < NCH; c++) { ws->acc[c] = q; q += Lt * p + SP_TEAM_PAD; }
  ws->coef = q; q += Lt * p;
  ws->alpha = q; q += L0 * p;
  ws->X = q; q += M * p;
  ws->GX = q; q += M * p;
  ws->GGX = q; q += M * p;
  for (int c = 0; c < NCH; c++) { ws->ss[c] = q; q += p + SP_TEAM_PAD; }
  for (int c = 0; c < NCH; c++) { ws->rowbuf[c] = q; q += SP_ROWS_BLOCK * p + SP_TEAM_PAD; }
  ws->scale = q; q += p;
  ws->v1 = q; q += p;
  ws->v2 = q;
  return SP_OK;
}

/* ------------------------------------------------------------------------
** Pass 1: weighted sums per level and sums of squares (row order).
**
** The columns come from a matrix (sp_demean_run) or from a row source
** (sp_demean_solve), both SP_ROWS_BLOCK rows at a time: a source's block is
** read into the chunk's buffer, a matrix's block is used where it lies.  The
** kernel carries its running sums from block to block through acc and ss,
** so every sum takes its terms in row order, as one pass over the whole
** chunk would: the two inputs give the same bits.
** ------------------------------------------------------------------------ */
typedef struct agg_ctx {
  const sp_demean_ws *ws;
  const double *data;   /* the matrix, or NULL for src */
  size_t tda;
  const sp_rows *src;
  size_t p;
} agg_ctx;

/* Rows [r0, r1) of columns j0..j0+g-1: row r at blk[(r - r0) * ldy], or,
   when fromcol (a constant where inlined), at col[j][r], a source's own
   arrays read here so that the loads overlap the sums. */
SP_INLINE void agg_kernel(const sp_demean_ws *ws, size_t p, int c, const double *blk, size_t ldy,
                          const double *const *col, size_t r0, size_t r1, size_t j0, size_t g, int weighted,
                          int fromcol, size_t K) {
  double ss[GMAX];
  const double *cc[GMAX];
  for (size_t j = 0; j < g; j++) {
    ss[j] = ws->ss[c][j0 + j];
    cc[j] = fromcol ? col[j0 + j] : NULL;
  }
  /* Locals, so that the stores into the sums cannot be taken to change them:
     each factor's sums from its level 0, and its codes. */
  double *acc[SP_MAXF];
  const int32_t *code[SP_MAXF];
  for (size_t k = 0; k < K; k++) {
    acc[k] = ws->acc[c] + ws->off[k] * p + j0;
    code[k] = ws->code[k];
  }
  const double *wv = ws->w;
  /* Factor 0's sums of the current level are carried in registers while
     its code repeats (rows usually come grouped by it) and stored when it
     changes: the same additions in the same order as adding into acc row
     by row, without each add waiting for the previous row's store. */
  int32_t cur = code[0][r0];
  double run[GMAX];
  for (size_t j = 0; j < g; j++) run[j] = acc[0][(size_t)cur * p + j];
  for (size_t r = r0; r < r1; r++) {
    double wy[GMAX], y[GMAX];
    double wr = weighted ? wv[r] : 1.0;
    for (size_t j = 0; j < g; j++) {
      y[j] = fromcol ? cc[j][r] : blk[(r - r0) * ldy + j0 + j];
      wy[j] = weighted ? wr * y[j] : y[j];
      ss[j] += wy[j] * y[j];
    }
    int32_t c0 = code[0][r];
    if (c0 != cur) {
      for (size_t j = 0; j < g; j++) {
        acc[0][(size_t)cur * p + j] = run[j];
        run[j] = acc[0][(size_t)c0 * p + j];
      }
      cur = c0;
    }
    for (size_t j = 0; j < g; j++) run[j] += wy[j];
    for (size_t k = 1; k < K; k++) {
      double *a = acc[k] + (size_t)code[k][r] * p;
      for (size_t j = 0; j < g; j++) a[j] += wy[j];
    }
  }
  for (size_t j = 0; j < g; j++) {
    acc[0][(size_t)cur * p + j] = run[j];
    ws->ss[c][j0 + j] = ss[j];
  }
}

/* agg_kernel with the factor count a constant for one to three factors. */
SP_INLINE void agg_factors(const sp_demean_ws *ws, size_t p, int c, const double *blk, size_t ldy,
                           const double *const *col, size_t r0, size_t r1, size_t j0, size_t g, int weighted,
                           int fromcol) {
  switch (ws->K) {
    case 1: agg_kernel(ws, p, c, blk, ldy, col, r0, r1, j0, g, weighted, fromcol, 1); break;
    case 2: agg_kernel(ws, p, c, blk, ldy, col, r0, r1, j0, g, weighted, fromcol, 2); break;
    case 3: agg_kernel(ws, p, c, blk, ldy, col, r0, r1, j0, g, weighted, fromcol, 3); break;
    default: agg_kernel(ws, p, c, blk, ldy, col, r0, r1, j0, g, weighted, fromcol, ws->K); break;
  }
}

/* agg_kernel over every column group, the group width and weighting
   constant. */
SP_INLINE void agg_groups(const sp_demean_ws *ws, size_t p, int c, const double *blk, size_t ldy,
                          const double *const *col, size_t r0, size_t r1, int fromcol) {
  int wt = ws->w != NULL;
  for (size_t j0 = 0; j0 < p; j0 += GMAX) {
    size_t g = p - j0 < GMAX ? p - j0 : GMAX;
    switch (g * 2 + (size_t)wt) {
      case 2: agg_factors(ws, p, c, blk, ldy, col, r0, r1, j0, 1, 0, fromcol); break;
      case 3: agg_factors(ws, p, c, blk, ldy, col, r0, r1, j0, 1, 1, fromcol); break;
      case 4: agg_factors(ws, p, c, blk, ldy, col, r0, r1, j0, 2, 0, fromcol); break;
      case 5: agg_factors(ws, p, c, blk, ldy, col, r0, r1, j0, 2, 1, fromcol); break;
      case 6: agg_factors(ws, p, c, blk, ldy, col, r0, r1, j0, 3, 0, fromcol); break;
      case 7: agg_factors(ws, p, c, blk, ldy, col, r0, r1, j0, 3, 1, fromcol); break;
      case 8: agg_factors(ws, p, c, blk, ldy, col, r0, r1, j0, 4, 0, fromcol); break;
      default: agg_factors(ws, p, c, blk, ldy, col, r0, r1, j0, 4, 1, fromcol); break;
    }
  }
}

static void agg_chunk(void *vctx, int c) {
  const agg_ctx *x = vctx;
  const sp_demean_ws *ws = x->ws;
  size_t p = x->p;
  memset(ws->acc[c], 0, ws->Ltot * p * sizeof(double));
  memset(ws->ss[c], 0, p * sizeof(double));
  for (size_t r0 = ws->rcut[c]; r0 < ws->rcut[c + 1]; r0 += SP_ROWS_BLOCK) {
    size_t r1 = ws->rcut[c + 1] - r0 < SP_ROWS_BLOCK ? ws->rcut[c + 1] : r0 + SP_ROWS_BLOCK;
    if (x->src != NULL && x->src->col != NULL) {
      agg_groups(ws, p, c, NULL, 0, x->src->col, r0, r1, 1);
    } else if (x->src != NULL) {
      x->src->read(x->src, r0, r1, ws->rowbuf[c], p);
      agg_groups(ws, p, c, ws->rowbuf[c], p, NULL, r0, r1, 0);
    } else {
      agg_groups(ws, p, c, x->data + r0 * x->tda, x->tda, NULL, r0, r1, 0);
    }
  }
}

/* ------------------------------------------------------------------------
** A sweep pass: update factor s (1..K-1) from the newest other coefficients.
** cur[m] points at factor m's q-wide coefficients (new ones for m < s, old
** ones for m > s); for s == 1 the pass first computes factor 0's block
** coefficients alpha from the old iterate.
** ------------------------------------------------------------------------ */
typedef struct sweep_ctx {
  const sp_demean_ws *ws;
  size_t q, s;
  const double **cur;
  const size_t *oth;    /* the K - 2 factors other than 0 and s */
} sweep_ctx;


/* t -= row r's coefficients of the factors 1..K-1 (times its weight). */
SP_INLINE void sweep_sub(double *t, const double *const *mv, const int32_t *const *mc, const double *sw, size_t r,
                         size_t q, size_t g, int weighted, size_t K) {
  double wr = weighted ? sw[r] : 1.0;
  for (size_t m = 0; m + 1 < K; m++) {
    const double *cm = mv[m] + (size_t)mc[m][r] * q;
    for (size_t j = 0; j < g; j++) t[j] -= weighted ? wr * cm[j] : cm[j];
  }
}

SP_INLINE void sweep_kernel(const sweep_ctx *x, int c, size_t j0, size_t g, int weighted, size_t K) {
  const sp_demean_ws *ws = x->ws;
  size_t q = x->q, s = x->s, noth = K - 2;  /* the factors other than 0 and s */
  const size_t *start = ws->start;
  const double *S0 = ws->S, *inv0 = ws->invw;
  double *alpha = ws->alpha;
  double *acc = ws->acc[c] + j0;
  const int32_t *cs = ws->scode[s];
  const double *sw = ws->sw;
  /* Local copies, so that stores into acc cannot be assumed to change them. */
  const int32_t *mc[SP_MAXF], *oc[SP_MAXF];
  const double *mv[SP_MAXF], *ov[SP_MAXF];
  for (size_t m = 1; m < K; m++) {
    mc[m - 1] = ws->scode[m];
    mv[m - 1] = x->cur[m] + j0;
  }
  for (size_t i = 0; i < noth; i++) {
    oc[i] = ws->scode[x->oth[i]];
    ov[i] = x->cur[x->oth[i]] + j0;
  }
  size_t b0 = ws->bcut[c], b1 = ws->bcut[c + 1];
  for (size_t b = b0; b < b1; b++) {
    size_t r0 = start[b], r1 = start[b + 1];
    double a[GMAX];
    if (s == 1) {
      /* Two running sums a column, even and odd rows of the block: each
         subtraction waits on the one two rows back, not on the last. */
      double t0[GMAX], t1[GMAX];
      for (size_t j = 0; j < g; j++) {
        t0[j] = S0[b * q + j0 + j];
        t1[j] = 0.0;
      }
      size_t r = r0;
      for (; r + 1 < r1; r += 2) {
        sweep_sub(t0, mv, mc, sw, r, q, g, weighted, K);
        sweep_sub(t1, mv, mc, sw, r + 1, q, g, weighted, K);
      }
      if (r < r1) sweep_sub(t0, mv, mc, sw, r, q, g, weighted, K);
      for (size_t j = 0; j < g; j++) {
        a[j] = (t0[j] + t1[j]) * inv0[b];
        alpha[b * q + j0 + j] = a[j];
      }
    } else {
      for (size_t j = 0; j < g; j++) a[j] = alpha[b * q + j0 + j];
    }
    for (size_t r = r0; r < r1; r++) {
      double v[GMAX];
      for (size_t j = 0; j < g; j++) v[j] = a[j];
      for (size_t i = 0; i < noth; i++) {
        const double *cm = ov[i] + (size_t)oc[i][r] * q;
        for (size_t j = 0; j < g; j++) v[j] += cm[j];
      }
      double *ac = acc + (size_t)cs[r] * q;
      double wr = weighted ? sw[r] : 1.0;
      for (size_t j = 0; j < g; j++) ac[j] += weighted ? wr * v[j] : v[j];
    }
  }
}

/* sweep_kernel with the factor count a constant for two and three factors
   (the loops over the other factors then vanish or unroll). */
SP_INLINE void sweep_factors(const sweep_ctx *x, int c, size_t j0, size_t g, int weighted) {
  switch (x->ws->K) {
    case 2: sweep_kernel(x, c, j0, g, weighted, 2); break;
    case 3: sweep_kernel(x, c, j0, g, weighted, 3); break;
    default: sweep_kernel(x, c, j0, g, weighted, x->ws->K); break;
  }
}

static void sweep_chunk(void *vctx, int c) {
  const sweep_ctx *x = vctx;
  const sp_demean_ws *ws = x->ws;
  memset(ws->acc[c], 0, ws->L[x->s] * x->q * sizeof(double));
  int wt = ws->w != NULL;
  for (size_t j0 = 0; j0 < x->q; j0 += GMAX) {
    size_t g = x->q - j0 < GMAX ? x->q - j0 : GMAX;
    switch (g * 2 + (size_t)wt) {
      case 2: sweep_factors(x, c, j0, 1, 0); break;
      case 3: sweep_factors(x, c, j0, 1, 1); break;
      case 4: sweep_factors(x, c, j0, 2, 0); break;
      case 5: sweep_factors(x, c, j0, 2, 1); break;
      case 6: sweep_factors(x, c, j0, 3, 0); break;
      case 7: sweep_factors(x, c, j0, 3, 1); break;
      case 8: sweep_factors(x, c, j0, 4, 0); break;
      default: sweep_factors(x, c, j0, 4, 1); break;
    }
  }
}

/* One Gauss-Seidel sweep: out = F(in), both M x q; alpha = factor 0's best
   response to in. */
static void sweep(sp_demean_ws *ws, sp_team *tm, size_t q, const double *in, double *out) {
  sweep_ctx x;
  size_t K = ws->K, L0 = ws->L[0];
  x.ws = ws;
  x.q = q;
  x.cur = ws->cur;
  for (size_t s = 1; s < K; s++) {
    x.s = s;
    size_t noth = 0;
    for (size_t m = 1; m < K; m++) {
      const double *base = (m < s ? out : in);
      ws->cur[m] = base + (ws->off[m] - L0) * q;
      if (m != s) ws->others[noth++] = m;
    }
    x.oth = ws->others;
    sp_team_run(tm, sweep_chunk, &x);
    /* Reduce the chunks in fixed order, then solve for factor s. */
    size_t Ls = ws->L[s];
    const double *Ss = ws->S + ws->off[s] * q, *inv = ws->invw + ws->off[s];
    double *o = out + (ws->off[s] - L0) * q;
    for (size_t l = 0; l < Ls; l++)
      for (size_t j = 0; j < q; j++) {
        double a = ws->acc[0][l * q + j];
        for (int c = 1; c < NCH; c++) a += ws->acc[c][l * q + j];
        o[l * q + j] = (Ss[l * q + j] - a) * inv[l];
      }
  }
}

/* ------------------------------------------------------------------------
** Last pass: the rows minus the effects, in place: the whole block
** (sp_demean_run), or the rows a within source has just read.
** ------------------------------------------------------------------------ */

/* Where a residual pass reads its values and writes the differences: g
   columns whose coefficients are columns j0..j0+g-1 of ws->coef, read from
   in (row r at in[(r - r0) * ldi], the columns side by side) or, when col is
   not NULL, from the arrays col[0..g-1] (row r at col[j][r]), and written
   to out (row r at out[(r - r0) * ldo]).  in may be out: in place. */
typedef struct {
  const double *const *col;
  const double *in;
  size_t ldi;
  double *out;
  size_t ldo;
  size_t j0;
} resid_io;

/* Rows [r0, r1) of the g columns of io: the value minus the sum of its
   effects.  fromcol, g and K are constants where inlined.  Reading the
   frame's arrays here, rather than copying them into the block first, keeps
   the loads in flight while the effects are summed: a fit without a stored
   block runs this on every pass over its rows. */
SP_INLINE void resid_kernel(const sp_demean_ws *ws, const resid_io *io, size_t r0, size_t r1, size_t g, size_t K,
                            int fromcol) {
  size_t p = ws->pr, ldi = io->ldi, ldo = io->ldo;
  /* Locals, so that the stores into out cannot be taken to change them. */
  const double *cf[SP_MAXF], *c[GMAX];
  const int32_t *cd[SP_MAXF];
  for (size_t k = 0; k < K; k++) {
    cf[k] = ws->coef + ws->off[k] * p + io->j0;
    cd[k] = ws->code[k];
  }
  for (size_t j = 0; j < g; j++) c[j] = fromcol ? io->col[j] : NULL;
  const double *in = io->in;
  double *out = io->out;
  for (size_t r = r0; r < r1; r++) {
    double f[GMAX];
    const double *a = cf[0] + (size_t)cd[0][r] * p;
    for (size_t j = 0; j < g; j++) f[j] = a[j];
    for (size_t k = 1; k < K; k++) {
      a = cf[k] + (size_t)cd[k][r] * p;
      for (size_t j = 0; j < g; j++) f[j] += a[j];
    }
    double *o = out + (r - r0) * ldo;
    if (fromcol)
      for (size_t j = 0; j < g; j++) o[j] = c[j][r] - f[j];
    else
      for (size_t j = 0; j < g; j++) o[j] = in[(r - r0) * ldi + j] - f[j];
  }
}

/* resid_kernel with the column count constant, and the factor count for
   one to three factors. */
SP_INLINE void resid_factors(const sp_demean_ws *ws, const resid_io *io, size_t r0, size_t r1, size_t g,
                             int fromcol) {
  switch (ws->K) {
    case 1: resid_kernel(ws, io, r0, r1, g, 1, fromcol); break;
    case 2: resid_kernel(ws, io, r0, r1, g, 2, fromcol); break;
    case 3: resid_kernel(ws, io, r0, r1, g, 3, fromcol); break;
    default: resid_kernel(ws, io, r0, r1, g, ws->K, fromcol); break;
  }
}

SP_INLINE void resid_group(const sp_demean_ws *ws, const resid_io *io, size_t r0, size_t r1, size_t g,
                           int fromcol) {
  switch (g) {
    case 1: resid_factors(ws, io, r0, r1, 1, fromcol); break;
    case 2: resid_factors(ws, io, r0, r1, 2, fromcol); break;
    case 3: resid_factors(ws, io, r0, r1, 3, fromcol); break;
    default: resid_factors(ws, io, r0, r1, 4, fromcol); break;
  }
}

/* Rows [r0, r1) of m output columns, column j the input's column cols[j]
   (cols NULL: column j) minus its effects, GMAX at a time over runs of
   consecutive columns.  From the arrays col[0..) when col is not NULL, else
   from in (ldi doubles a row); into out. */
static void resid_cols(const sp_demean_ws *ws, const double *const *col, const double *in, size_t ldi,
                       double *out, size_t ldo, const size_t *cols, size_t m, size_t r0, size_t r1) {
  for (size_t j = 0; j < m;) {
    size_t c0 = cols ? cols[j] : j, g = 1;
    while (j + g < m && g < GMAX && (cols ? cols[j + g] : j + g) == c0 + g) g++;
    resid_io io = {col ? col + c0 : NULL, in ? in + c0 : NULL, ldi, out + j, ldo, c0};
    if (col) resid_group(ws, &io, r0, r1, g, 1);
    else resid_group(ws, &io, r0, r1, g, 0);
    j += g;
  }
}

typedef struct resid_ctx {
  const sp_demean_ws *ws;
  double *data;
  size_t tda;
} resid_ctx;

static void resid_chunk(void *vctx, int c) {
  const resid_ctx *x = vctx;
  const sp_demean_ws *ws = x->ws;
  double *blk = x->data + ws->rcut[c] * x->tda;
  resid_cols(ws, NULL, blk, x->tda, blk, x->tda, NULL, ws->pr, ws->rcut[c], ws->rcut[c + 1]);
}

static void within_read(const sp_rows *src, size_t r0, size_t r1, double *out, size_t ldo) {
  const sp_demean_within *w = src->ctx;
  const sp_rows *raw = w->raw;
  if (raw->col != NULL) {
    resid_cols(w->ws, raw->col, NULL, 0, out, ldo, w->cols, src->p, r0, r1);
  } else if (w->cols == NULL) {
    raw->read(raw, r0, r1, out, ldo);
    resid_cols(w->ws, NULL, out, ldo, out, ldo, NULL, src->p, r0, r1);
  } else {
    /* raw's rows on the stack: at most 256 x 64 doubles (128 KB) */
    double buf[SP_ROWS_BLOCK * SP_ROWS_MAXSEL];
    raw->read(raw, r0, r1, buf, raw->p);
    resid_cols(w->ws, NULL, buf, raw->p, out, ldo, w->cols, src->p, r0, r1);
  }
}

int sp_demean_within_init(sp_demean_within *w, const sp_demean_ws *ws, const sp_rows *raw, const size_t *cols,
                          size_t m) {
  if (cols != NULL) {
    if (m > SP_ROWS_MAXSEL || raw->p > SP_ROWS_MAXSEL) return -1;
    for (size_t j = 0; j < m; j++)
      if (cols[j] >= raw->p) return -1;
  }
  w->ws = ws;
  w->raw = raw;
  w->cols = cols;
  w->rows = (sp_rows){raw->n, cols ? m : raw->p, within_read, w, NULL};
  return 0;
}

/* ------------------------------------------------------------------------
** The solver: ws->coef (Ltot x p) for the columns of data.
** ------------------------------------------------------------------------ */

/* Keep the columns whose flag is 0 in a q-wide level-major array, in place. */
static void compact(double *a, size_t rows, size_t q, const unsigned char *drop, size_t qn) {
  if (qn == q) return;
  for (size_t l = 0; l < rows; l++) {
    size_t o = 0;
    for (size_t j = 0; j < q; j++)
      if (!drop[j]) a[l * qn + o++] = a[l * q + j];
  }
}

/* Column at active position ja is final: copy (alpha, X) into coef. */
static void finalize_col(sp_demean_ws *ws, size_t q, size_t ja, const double *X) {
  size_t p = ws->pr, j = ws->act[ja], L0 = ws->L[0];
  for (size_t l = 0; l < L0; l++) ws->coef[l * p + j] = ws->alpha[l * q + ja];
  for (size_t l = 0; l < ws->M; l++) ws->coef[(L0 + l) * p + j] = X[l * q + ja];
}

/* Test the active columns for convergence between in and out = F(in); the
   converged ones are finalised from (alpha, in) and dropped from every
   q-wide array.  Returns the new number of active columns. */
static size_t converge_step(sp_demean_ws *ws, size_t q, double *in, double *out, double *third,
                            double tol, double *achieved) {
  size_t M = ws->M, qn = q;
  for (size_t ja = 0; ja < q; ja++) ws->v1[ja] = 0.0;
  for (size_t l = 0; l < M; l++)
    for (size_t ja = 0; ja < q; ja++) {
      double d = fabs(out[l * q + ja] - in[l * q + ja]);
      if (!(d <= ws->v1[ja])) ws->v1[ja] = d;  /* NaN propagates as "not converged" */
    }
  for (size_t ja = 0; ja < q; ja++) {
    double rel = ws->v1[ja] / ws->scale[ws->act[ja]];
    ws->v1[ja] = rel;
    ws->drop[ja] = rel <= tol;
    if (ws->drop[ja]) {
      if (rel > *achieved) *achieved = rel;
      finalize_col(ws, q, ja, in);
      qn--;
    }
  }
  if (qn == q) return q;
  compact(ws->S, ws->Ltot, q, ws->drop, qn);
  compact(in, M, q, ws->drop, qn);
  compact(out, M, q, ws->drop, qn);
  if (third != NULL) compact(third, M, q, ws->drop, qn);
  size_t o = 0;
  for (size_t ja = 0; ja < q; ja++)
    if (!ws->drop[ja]) {
      ws->act[o] = ws->act[ja];
      ws->v1[o] = ws->v1[ja];
      o++;
    }
  return qn;
}

/* Give up: finalise the remaining columns from (alpha, in). */
static void finalize_rest(sp_demean_ws *ws, size_t q, const double *in, double *achieved) {
  for (size_t ja = 0; ja < q; ja++) {
    finalize_col(ws, q, ja, in);
    if (!(ws->v1[ja] <= *achieved)) *achieved = ws->v1[ja];
  }
}

/* Irons-Tuck, per column: X <- GGX - c (GGX - GX), c = <d1, d2> / <d2, d2>
   with d1 = GGX - GX and d2 = GGX - 2 GX + X. */
static void irons_tuck(sp_demean_ws *ws, size_t q, double *X, const double *GX, const double *GGX) {
  size_t M = ws->M;
  for (size_t ja = 0; ja < q; ja++) ws->v1[ja] = ws->v2[ja] = 0.0;
  for (size_t l = 0; l < M; l++)
    for (size_t ja = 0; ja < q; ja++) {
      size_t i = l * q + ja;
      double d1 = GGX[i] - GX[i], d2 = d1 - GX[i] + X[i];
      ws->v1[ja] += d1 * d2;
      ws->v2[ja] += d2 * d2;
    }
  for (size_t ja = 0; ja < q; ja++) ws->v1[ja] = ws->v2[ja] > 0.0 ? ws->v1[ja] / ws->v2[ja] : 0.0;
  for (size_t l = 0; l < M; l++)
    for (size_t ja = 0; ja < q; ja++) {
      size_t i = l * q + ja;
      X[i] = GGX[i] - ws->v1[ja] * (GGX[i] - GX[i]);
    }
}

static int check_options(const sp_demean_options *opt, sp_error *err) {
  if (!(opt->tol >= 0.0) || !isfinite(opt->tol))
    return sp_error_set(err, SP_EVALUE, "demean: tol is %g (expected a finite value >= 0)", opt->tol);
  if (opt->maxiter < 1)
    return sp_error_set(err, SP_EVALUE, "demean: maxiter is 0 (expected at least 1)");
  if (opt->threads != 1 && opt->threads != 2)
    return sp_error_set(err, SP_EVALUE, "demean: threads is %d (expected 1 or 2)", opt->threads);
  return SP_OK;
}

/* Fill ws->coef (Ltot x p) for the p columns of in. */
static int solve(sp_demean_ws *ws, agg_ctx *in, const sp_demean_options *opt, sp_team *tm,
                 sp_demean_info *info, sp_error *err) {
  size_t Lt = ws->Ltot, K = ws->K, p = in->p;
  ws->pr = p;
  sp_team_run(tm, agg_chunk, in);
  for (size_t i = 0; i < Lt * p; i++) {
    double a = ws->acc[0][i];
    for (int c = 1; c < NCH; c++) a += ws->acc[c][i];
    ws->S[i] = a;
  }
  for (size_t j = 0; j < p; j++) {
    double ss = ws->ss[0][j];
    for (int c = 1; c < NCH; c++) ss += ws->ss[c][j];
    if (!isfinite(ss))
      return sp_error_set(err, SP_EMISSING,
                          "demean: column %zu has missing, infinite or too large values "
                          "(expected finite values below 1e150 in magnitude)", j + 1);
    ws->scale[j] = ws->wtot > 0.0 ? sqrt(ss / ws->wtot) : 0.0;
  }
  info->iter = 1;
  info->sweeps = 0;
  info->converged = 1;
  info->achieved = 0.0;
  if (K == 1) {
    for (size_t l = 0; l < Lt; l++)
      for (size_t j = 0; j < p; j++) ws->coef[l * p + j] = ws->S[l * p + j] * ws->invw[l];
    return SP_OK;
  }
  /* Columns that are zero (in weighted rms) have zero coefficients. */
  size_t q = 0;
  for (size_t j = 0; j < p; j++) {
    ws->drop[j] = !(ws->scale[j] > 0.0);
    if (ws->drop[j]) {
      for (size_t l = 0; l < Lt; l++) ws->coef[l * p + j] = 0.0;
    } else {
      ws->act[q++] = j;
    }
  }
  compact(ws->S, Lt, p, ws->drop, q);
  double *x = ws->X, *gx = ws->GX, *ggx = ws->GGX;
  memset(x, 0, ws->M * q * sizeof(double));
  size_t iter = 0;
  double achieved = 0.0;
  int conv = 1;
  while (q > 0) {
    sweep(ws, tm, q, x, gx);
    iter++;
    info->sweeps += K - 1;
    q = converge_step(ws, q, x, gx, ggx, opt->tol, &achieved);
    if (q == 0) break;
    if (iter >= opt->maxiter) {
      finalize_rest(ws, q, x, &achieved);
      conv = 0;
      break;
    }
    if (!opt->accelerate) {
      double *t = x;
      x = gx;
      gx = t;
      continue;
    }
    sweep(ws, tm, q, gx, ggx);
    iter++;
    info->sweeps += K - 1;
    q = converge_step(ws, q, gx, ggx, x, opt->tol, &achieved);
    if (q == 0) break;
    if (iter >= opt->maxiter) {
      finalize_rest(ws, q, gx, &achieved);
      conv = 0;
      break;
    }
    irons_tuck(ws, q, x, gx, ggx);
  }
  info->iter = iter;
  info->converged = conv;
  info->achieved = achieved;
  if (!conv)
    return sp_error_set(err, SP_ECONV,
                        "demean: fixed effects not absorbed after %zu iterations: relative change "
                        "%.3g, expected at most tol = %.3g (raise maxiter or tol)",
                        iter, achieved, opt->tol);
  return SP_OK;
}

/* sp_demean_run (data != NULL: solve, then the residuals in place) and
   sp_demean_solve (src != NULL: solve only). */
static int run(sp_demean_ws *ws, double *data, size_t tda, const sp_rows *src, size_t n, size_t p,
               const sp_demean_options *opt, sp_demean_info *info, sp_error *err) {
  sp_demean_options dflt;
  sp_demean_info dinfo;
  if (opt == NULL) {
    sp_demean_options_init(&dflt);
    opt = &dflt;
  }
  if (info == NULL) info = &dinfo;
  memset(info, 0, sizeof *info);
  if (ws == NULL) return sp_error_set(err, SP_EVALUE, "demean: no workspace");
  if (n != ws->n)
    return sp_error_set(err, SP_EDIM, "demean: the block has %zu rows, the fixed effects %zu", n, ws->n);
  if (src == NULL && tda < p)
    return sp_error_set(err, SP_EDIM, "demean: row stride %zu is smaller than the %zu columns", tda, p);
  int st = check_options(opt, err);
  if (st != SP_OK) return st;
  info->converged = 1;
  if (p == 0) {
    ws->pr = 0;  /* a within source over no columns subtracts nothing */
    return SP_OK;
  }
  if (src == NULL && data == NULL) return sp_error_set(err, SP_EVALUE, "demean: data is NULL");
  st = ws_reserve(ws, p, err);
  if (st != SP_OK) return st;
  sp_team tm;
  sp_team_start(&tm, opt->threads);
  agg_ctx in = {ws, data, tda, src, p};
  st = solve(ws, &in, opt, &tm, info, err);
  if (data != NULL && (st == SP_OK || st == SP_ECONV)) {
    resid_ctx rx = {ws, data, tda};
    sp_team_run(&tm, resid_chunk, &rx);
  }
  sp_team_stop(&tm);
  return st;
}

int sp_demean_run(sp_demean_ws *ws, double *data, size_t n, size_t p, size_t tda,
                  const sp_demean_options *opt, sp_demean_info *info, sp_error *err) {
  return run(ws, data, tda, NULL, n, p, opt, info, err);
}

int sp_demean_solve(sp_demean_ws *ws, const sp_rows *src, const sp_demean_options *opt,
                    sp_demean_info *info, sp_error *err) {
  if (src == NULL || src->read == NULL) {
    if (info != NULL) memset(info, 0, sizeof *info);
    return sp_error_set(err, SP_EVALUE, "demean: no row source");
  }
  return run(ws, NULL, 0, src, src->n, src->p, opt, info, err);
}

/* ------------------------------------------------------------------------
** Union-find over level nodes (connected components of factor graphs).
** ------------------------------------------------------------------------ */
static size_t uf_find(size_t *parent, size_t a) {
  while (parent[a] != a) {
    parent[a] = parent[parent[a]];
    a = parent[a];
  }
  return a;
}

static void uf_union(size_t *parent, size_t a, size_t b) {
  a = uf_find(parent, a);
  b = uf_find(parent, b);
  if (a == b) return;
  if (a < b) parent[b] = a;
  else parent[a] = b;
}

int sp_demean_fixef(sp_demean_ws *ws, const double *resid_before_fe, double **coef,
                    const sp_demean_options *opt, sp_error *err) {
  sp_demean_options dflt;
  sp_demean_info info;
  if (opt == NULL) {
    sp_demean_options_init(&dflt);
    opt = &dflt;
  }
  if (ws == NULL || resid_before_fe == NULL || coef == NULL)
    return sp_error_set(err, SP_EVALUE, "demean fixef: workspace, input and output must not be NULL");
  for (size_t k = 0; k < ws->K; k++)
    if (coef[k] == NULL) return sp_error_set(err, SP_EVALUE, "demean fixef: output for fixed effect %zu is NULL", k + 1);
  int st = check_options(opt, err);
  if (st != SP_OK) return st;
  st = ws_reserve(ws, 1, err);
  if (st != SP_OK) return st;
  sp_team tm;
  sp_team_start(&tm, opt->threads);
  agg_ctx in = {ws, resid_before_fe, 1, NULL, 1};
  st = solve(ws, &in, opt, &tm, &info, err);
  sp_team_stop(&tm);
  if (st != SP_OK && st != SP_ECONV) return st;

  size_t K = ws->K;
  /* Copy out in the caller's order; empty levels are not estimable. */
  for (size_t k = 0; k < K; k++) {
    double *o = coef[ws->ord[k]];
    for (size_t l = 0; l < ws->L[k]; l++)
      o[l] = ws->wsum[ws->off[k] + l] > 0.0 ? ws->coef[ws->off[k] + l] : NAN;
  }
  if (K == 1) return st;
  /* wsum in the caller's order, for the reference levels. */
  size_t inv_ord[2];
  for (size_t k = 0; k < K && k < 2; k++) inv_ord[k] = 0;
  for (size_t k = 0; k < K; k++)
    if (ws->ord[k] < 2) inv_ord[ws->ord[k]] = k;
  double *c0 = coef[0];
  size_t k0 = inv_ord[0];
  if (K == 2) {
    /* One reference per connected component of the two factors. */
    size_t k1 = inv_ord[1], L0c = ws->L[k0], L1c = ws->L[k1];
    size_t *parent = malloc((L0c + L1c) * sizeof *parent);
    double *shift = malloc((L0c + L1c) * sizeof *shift);
    unsigned char *has = calloc(L0c + L1c, 1);
    if (parent == NULL || shift == NULL || has == NULL) {
      free(parent);
      free(shift);
      free(has);
      return sp_error_set(err, SP_ENOMEM, "demean fixef: out of memory");
    }
    for (size_t i = 0; i < L0c + L1c; i++) parent[i] = i;
    for (size_t r = 0; r < ws->n; r++)
      if (ws->w == NULL || ws->w[r] > 0.0)
        uf_union(parent, (size_t)ws->code[k0][r], L0c + (size_t)ws->code[k1][r]);
    double *c1 = coef[1];
    for (size_t l = 0; l < L1c; l++) {
      if (ws->wsum[ws->off[k1] + l] <= 0.0) continue;
      size_t root = uf_find(parent, L0c + l);
      if (!has[root]) {
        has[root] = 1;
        shift[root] = c1[l];
      }
    }
    for (size_t l = 0; l < L1c; l++)
      if (ws->wsum[ws->off[k1] + l] > 0.0) c1[l] -= shift[uf_find(parent, L0c + l)];
    for (size_t l = 0; l < L0c; l++)
      if (ws->wsum[ws->off[k0] + l] > 0.0) {
        size_t root = uf_find(parent, l);
        if (has[root]) c0[l] += shift[root];
      }
    free(parent);
    free(shift);
    free(has);
    return st;
  }
  for (size_t k = 0; k < K; k++) {
    size_t kc = ws->ord[k];
    if (kc == 0) continue;
    double *ck = coef[kc], sh = 0.0;
    int found = 0;
    for (size_t l = 0; l < ws->L[k] && !found; l++)
      if (ws->wsum[ws->off[k] + l] > 0.0) {
        sh = ck[l];
        found = 1;
      }
    if (!found) continue;
    for (size_t l = 0; l < ws->L[k]; l++) ck[l] -= sh;  /* NaN stays NaN */
    for (size_t l = 0; l < ws->L[k0]; l++) c0[l] += sh;
  }
  return st;
}

/* ------------------------------------------------------------------------
** Sample helpers: singletons, absorbed degrees of freedom, nesting.
** ------------------------------------------------------------------------ */
int sp_fe_singletons(size_t n, size_t nfe, const int32_t *const *codes,
                     const size_t *nlevels, unsigned char *keep, size_t *ndropped,
                     sp_error *err) {
  if (ndropped != NULL) *ndropped = 0;
  if (keep == NULL && n > 0) return sp_error_set(err, SP_EVALUE, "singletons: keep must not be NULL");
  int st = check_codes(n, nfe, codes, nlevels, err);
  if (st != SP_OK) return st;
  size_t Lmax = 0;
  for (size_t k = 0; k < nfe; k++)
    if (nlevels[k] > Lmax) Lmax = nlevels[k];
  uint32_t *cnt = malloc(Lmax * sizeof *cnt);
  if (cnt == NULL) return sp_error_set(err, SP_ENOMEM, "singletons: out of memory");
  size_t dropped = 0;
  /* One factor at a time until a full round over all factors drops nothing:
     dropping a row can make another level a singleton. */
  size_t clean = 0;
  for (size_t k = 0; clean < nfe; k = (k + 1) % nfe) {
    const int32_t *c = codes[k];
    memset(cnt, 0, nlevels[k] * sizeof *cnt);
    for (size_t r = 0; r < n; r++)
      if (keep[r] && cnt[c[r]] < 2) cnt[c[r]]++;
    size_t d = 0;
    for (size_t r = 0; r < n; r++)
      if (keep[r] && cnt[c[r]] == 1) {
        keep[r] = 0;
        d++;
      }
    dropped += d;
    clean = d == 0 ? clean + 1 : 1;
    if (nfe == 1) break;  /* dropping singletons of one factor creates none */
  }
  free(cnt);
  if (ndropped != NULL) *ndropped = dropped;
  return SP_OK;
}

/* sp_fe_dof without the check of the codes.  A code outside its range is
   skipped, never used as an index: sp_demean_new counts on two threads
   while its codes are still being checked (the count is then discarded). */
static int fe_dof(size_t n, size_t nfe, const int32_t *const *codes, const size_t *nlevels,
                  const unsigned char *keep, size_t *dof, size_t *ncomp, sp_error *err) {
  size_t L0 = nlevels[0], L1 = nfe > 1 ? nlevels[1] : 0, Ltot = 0;
  for (size_t k = 0; k < nfe; k++) Ltot += nlevels[k];
  /* seen: one flag per level of every factor, factor k from off[k]; the first
     two factors' flags are also the nodes of their graph (0..L0+L1-1). */
  unsigned char *seen = calloc(Ltot, 1);
  size_t *parent = nfe > 1 ? malloc((L0 + L1) * sizeof *parent) : NULL;
  if (seen == NULL || (nfe > 1 && parent == NULL)) {
    free(seen);
    free(parent);
    return sp_error_set(err, SP_ENOMEM, "fe dof: out of memory");
  }
  unsigned char *sk[SP_MAXF];
  for (size_t k = 0, off = 0; k < nfe; off += nlevels[k], k++) sk[k] = seen + off;
  /* Factors beyond the second: their levels seen, one pass each. */
  for (size_t k = (nfe == 1 ? 0 : 2); k < nfe; k++)
    for (size_t r = 0; r < n; r++)
      if ((keep == NULL || keep[r]) && (uint32_t)codes[k][r] < nlevels[k]) sk[k][codes[k][r]] = 1;
  if (nfe > 1) {
    /* One pass: the levels seen, and the union of each row's two levels.  The
       root of the current factor-0 level is carried from row to row (rows
       usually come grouped by it), so a row costs one find, not two.  Plain
       locals: a store through an unsigned char pointer may alias anything, so
       pointers read from arrays would be reloaded every row. */
    const int32_t *k0 = codes[0], *k1 = codes[1];
    unsigned char *s0 = sk[0], *s1 = sk[1];
    for (size_t i = 0; i < L0 + L1; i++) parent[i] = i;
    size_t pa = (size_t)-1, ra = 0;
    size_t nseen = 0, seen1 = 0, merges = 0;  /* levels seen (both factors, factor 1), unions made */
    for (size_t r = 0; r < n; r++) {
      if ((keep != NULL && !keep[r]) || (uint32_t)k0[r] >= L0 || (uint32_t)k1[r] >= L1) continue;
      size_t a = (size_t)k0[r], b = L0 + (size_t)k1[r];
      if (!s1[b - L0]) {
        s1[b - L0] = 1;
        seen1++;
        nseen++;
      }
      if (a != pa) {
        nseen += !s0[a];
        s0[a] = 1;
        ra = uf_find(parent, a);
        pa = a;
      }
      /* Most rows find their factor-1 level one link from its root: then no
         path halving (a store per row). */
      size_t rb = parent[b];
      if (parent[rb] != rb) rb = parent[b] = uf_find(parent, rb);
      if (ra < rb) { parent[rb] = ra; merges++; }
      else if (rb < ra) { parent[ra] = rb; ra = rb; merges++; }
      /* Every level of factor 1 seen, and every level seen so far in one
         component (which holds a): the other rows of a's run can join or
         mark nothing, and are passed over reading factor 0's codes only.
         In a panel sorted by entity this is every row but the first of
         each entity once the first entity has been read. */
      if (seen1 == L1 && nseen == merges + 1) {
        int32_t ai = (int32_t)a;
        while (r + 8 < n && ((k0[r + 1] ^ ai) | (k0[r + 2] ^ ai) | (k0[r + 3] ^ ai) | (k0[r + 4] ^ ai) |
                             (k0[r + 5] ^ ai) | (k0[r + 6] ^ ai) | (k0[r + 7] ^ ai) | (k0[r + 8] ^ ai)) == 0)
          r += 8;
        while (r + 1 < n && k0[r + 1] == ai) r++;
      }
    }
  }
  size_t total = 0;
  for (size_t k = 0; k < nfe; k++) {
    size_t ne = 0;
    for (size_t l = 0; l < nlevels[k]; l++) ne += sk[k][l];
    total += (k >= 2 && ne > 0) ? ne - 1 : ne;
  }
  if (nfe > 1) {
    size_t comp = 0;
    for (size_t i = 0; i < L0 + L1; i++) comp += seen[i] && parent[i] == i;
    total -= comp;
    if (ncomp != NULL) *ncomp = comp;
  }
  free(seen);
  free(parent);
  *dof = total;
  return SP_OK;
}

int sp_fe_dof(size_t n, size_t nfe, const int32_t *const *codes, const size_t *nlevels,
              const unsigned char *keep, size_t *dof, size_t *ncomp, sp_error *err) {
  if (dof == NULL) return sp_error_set(err, SP_EVALUE, "fe dof: dof must not be NULL");
  *dof = 0;
  if (ncomp != NULL) *ncomp = 0;
  if (nfe > SP_MAXF) return sp_error_set(err, SP_EVALUE, "fe dof: %zu fixed effects (expected at most %d)", nfe, SP_MAXF);
  int st = check_codes(n, nfe, codes, nlevels, err);
  return st != SP_OK ? st : fe_dof(n, nfe, codes, nlevels, keep, dof, ncomp, err);
}

int sp_demean_dof(sp_demean_ws *ws, size_t *dof, size_t *ncomp, sp_error *err) {
  if (!ws->dof_known) {
    const int32_t *codes[SP_MAXF];
    size_t L[SP_MAXF];
    for (size_t k = 0; k < ws->K; k++) {  /* back in the caller's order */
      codes[ws->ord[k]] = ws->code[k];
      L[ws->ord[k]] = ws->L[k];
    }
    int st = fe_dof(ws->n, ws->K, codes, L, NULL, &ws->dof, &ws->ncomp, err);
    if (st != SP_OK) return st;
    ws->dof_known = 1;
  }
  *dof = ws->dof;
  if (ncomp != NULL) *ncomp = ws->ncomp;
  return SP_OK;
}

int sp_fe_nested(size_t n, const int32_t *fe, size_t fe_nlevels, const int32_t *cluster,
                 size_t cluster_nlevels, const unsigned char *keep, int *nested, sp_error *err) {
  if (nested == NULL) return sp_error_set(err, SP_EVALUE, "fe nested: nested must not be NULL");
  *nested = 0;
  const int32_t *cs[2] = {fe, cluster};
  size_t ls[2] = {fe_nlevels, cluster_nlevels};
  /* Clustering on the fixed effect itself (the design then shares one code
     array): every level is its own single cluster, nothing to scan. */
  int same = fe == cluster && fe_nlevels == cluster_nlevels;
  int st = check_codes(n, same ? 1 : 2, cs, ls, err);
  if (st != SP_OK) return st;
  if (same) {
    *nested = 1;
    return SP_OK;
  }
  int32_t *owner = malloc(fe_nlevels * sizeof *owner);
  if (owner == NULL) return sp_error_set(err, SP_ENOMEM, "fe nested: out of memory");
  for (size_t l = 0; l < fe_nlevels; l++) owner[l] = -1;
  int ok = 1;
  for (size_t r = 0; r < n && ok; r++) {
    if (keep != NULL && !keep[r]) continue;
    int32_t *o = &owner[fe[r]];
    if (*o < 0) *o = cluster[r];
    else if (*o != cluster[r]) ok = 0;
  }
  free(owner);
  *nested = ok;
  return SP_OK;
}

int sp_fe_group_means(size_t n, const int32_t *code, size_t nlevels, const sp_rows *src, double *means,
                      sp_error *err) {
  const int32_t *cs[1] = {code};
  int st = check_codes(n, 1, cs, &nlevels, err);
  if (st != SP_OK) return st;
  size_t p = src->p;
  if (src->n != n) return sp_error_set(err, SP_EDIM, "group means: %zu rows of data, %zu codes", src->n, n);
  if (p > SP_ROWS_MAXSEL) return sp_error_set(err, SP_EDIM, "group means: %zu columns (at most %d)", p, SP_ROWS_MAXSEL);
  size_t *cnt = calloc(nlevels, sizeof *cnt);
  double *buf = malloc(SP_ROWS_BLOCK * (p ? p : 1) * sizeof *buf);
  if (cnt == NULL || buf == NULL) {
    free(cnt);
    free(buf);
    return sp_error_set(err, SP_ENOMEM, "group means: out of memory for %zu levels", nlevels);
  }
  memset(means, 0, nlevels * p * sizeof *means);
  for (size_t r0 = 0; r0 < n; r0 += SP_ROWS_BLOCK) {
    size_t r1 = n - r0 < SP_ROWS_BLOCK ? n : r0 + SP_ROWS_BLOCK;
    src->read(src, r0, r1, buf, p);
    for (size_t r = r0; r < r1; r++) {
      double *m = means + (size_t)code[r] * p;
      const double *x = buf + (r - r0) * p;
      cnt[code[r]]++;
      for (size_t j = 0; j < p; j++) m[j] += x[j];
    }
  }
  for (size_t l = 0; l < nlevels; l++)
    for (size_t j = 0; j < p; j++) means[l * p + j] = cnt[l] ? means[l * p + j] / (double)cnt[l] : NAN;
  free(cnt);
  free(buf);
  return SP_OK;
}
