/*
** lp.c: batches of related LPs over GLPK (see lp.h for the design).
*/
#include "spillover/lp.h"

#include <glpk.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *sp_lp_status_name(int status) {
  switch (status) {
  case SP_LP_OPTIMAL: return "optimal";
  case SP_LP_INFEASIBLE: return "infeasible";
  case SP_LP_UNBOUNDED: return "unbounded";
  default: return "failed";
  }
}

static int check_batch(const sp_lp_batch *b, sp_error *err) {
  if (b->m == 0 || b->n == 0)
    return sp_error_set(err, SP_EDIM, "lp: the problem has %zu constraints and %zu variables (need at least one of each)",
                        b->m, b->n);
  if (b->m > (size_t)INT32_MAX / 2 || b->n > (size_t)INT32_MAX / 2 || b->m * b->n > (size_t)INT32_MAX / 2)
    return sp_error_set(err, SP_EDIM, "lp: %zu x %zu is too large for GLPK", b->m, b->n);
  if (!b->A || !b->sense) return sp_error_set(err, SP_EVALUE, "lp: A and sense are required");
  if (b->threads < 1) return sp_error_set(err, SP_EVALUE, "lp: threads is %d (expected >= 1)", b->threads);
  for (size_t i = 0; i < b->m; i++)
    if (b->sense[i] != 'L' && b->sense[i] != 'G' && b->sense[i] != 'E')
      return sp_error_set(err, SP_EVALUE, "lp: sense of row %zu is '%c' (expected L, G or E)", i + 1, b->sense[i]);
  for (size_t i = 0; i < b->m * b->n; i++)
    if (!isfinite(b->A[i])) return sp_error_set(err, SP_EVALUE, "lp: A has a non-finite coefficient at row %zu, column %zu",
                                                i / b->n + 1, i % b->n + 1);
  if (b->nvar > 0 && (!b->varcol || !b->colval)) return sp_error_set(err, SP_EVALUE, "lp: nvar > 0 needs varcol and colval");
  for (size_t k = 0; k < b->nvar; k++)
    if (b->varcol[k] >= b->n) return sp_error_set(err, SP_EDIM, "lp: varying column %zu is out of range (1..%zu)",
                                                  b->varcol[k] + 1, b->n);
  for (size_t i = 0; i < b->count * b->nvar * b->m; i++)
    if (!isfinite(b->colval[i])) return sp_error_set(err, SP_EVALUE, "lp: a varying column of problem %zu is not finite",
                                                     i / (b->nvar * b->m) + 1);
  const double *vecs[4] = {b->rhs, b->obj, b->prob_rhs, b->varobj};
  const size_t lens[4] = {b->m, b->n, b->count * b->m, b->count * b->nvar};
  const char *names[4] = {"rhs", "obj", "a problem's rhs", "a problem's objective"};
  for (int v = 0; v < 4; v++)
    for (size_t i = 0; vecs[v] && i < lens[v]; i++)
      if (!isfinite(vecs[v][i])) return sp_error_set(err, SP_EVALUE, "lp: %s has a non-finite value", names[v]);
  for (size_t j = 0; j < b->n; j++) {
    double lo = b->lb ? b->lb[j] : 0, hi = b->ub ? b->ub[j] : HUGE_VAL;
    if (isnan(lo) || isnan(hi) || lo > hi || lo == HUGE_VAL || hi == -HUGE_VAL)
      return sp_error_set(err, SP_EVALUE, "lp: bounds of column %zu are [%g, %g]", j + 1, lo, hi);
  }
  for (size_t p = 0; b->fix0 && p < b->count; p++)
    if (b->fix0[p] < -1 || b->fix0[p] >= (long)b->n)
      return sp_error_set(err, SP_EDIM, "lp: problem %zu fixes column %ld (expected -1 or 0..%zu)", p + 1, b->fix0[p], b->n - 1);
  return SP_OK;
}

/* ---- one worker: a GLPK environment of its own ------------------------------ */

typedef struct worker {
  const sp_lp_batch *b;
  sp_lp_result *res;
  size_t first_block, stride;  /* blocks first_block, first_block + stride, ... */
  int *ind;                    /* m + 1 GLPK indices (1-based) */
  double *val;                 /* m + 1 values */
  jmp_buf jump;
  sp_error err;
} worker;

static void on_glpk_error(void *info) {
  /* GLPK calls this instead of abort(); its state is undefined afterwards,
     so the worker frees the whole environment once back in run_blocks. */
  longjmp(((worker *)info)->jump, 1);
}

static void set_col_bounds(glp_prob *P, int j, double lo, double hi) {
  int type = isinf(lo) && isinf(hi) ? GLP_FR : isinf(hi) ? GLP_LO : isinf(lo) ? GLP_UP : lo == hi ? GLP_FX : GLP_DB;
  glp_set_col_bnds(P, j, type, isinf(lo) ? 0 : lo, isinf(hi) ? 0 : hi);
}

static void set_row_rhs(glp_prob *P, const sp_lp_batch *b, int i, double r) {
  char s = b->sense[i - 1];
  glp_set_row_bnds(P, i, s == 'L' ? GLP_UP : s == 'G' ? GLP_LO : GLP_FX, r, r);
}

static void set_column(worker *w, glp_prob *P, size_t j, const double *coef, size_t stride) {
  const sp_lp_batch *b = w->b;
  int len = 0;
  for (size_t i = 0; i < b->m; i++) {
    double a = coef[i * stride];
    if (a != 0) {
      len++;
      w->ind[len] = (int)i + 1;
      w->val[len] = a;
    }
  }
  glp_set_mat_col(P, (int)j + 1, len, w->ind, w->val);
}

static glp_prob *build(worker *w) {
  const sp_lp_batch *b = w->b;
  glp_prob *P = glp_create_prob();
  glp_set_obj_dir(P, b->maximize ? GLP_MAX : GLP_MIN);
  glp_add_rows(P, (int)b->m);
  glp_add_cols(P, (int)b->n);
  for (size_t i = 0; i < b->m; i++) set_row_rhs(P, b, (int)i + 1, b->rhs ? b->rhs[i] : 0);
  for (size_t j = 0; j < b->n; j++) {
    set_col_bounds(P, (int)j + 1, b->lb ? b->lb[j] : 0, b->ub ? b->ub[j] : HUGE_VAL);
    glp_set_obj_coef(P, (int)j + 1, b->obj ? b->obj[j] : 0);
    set_column(w, P, j, b->A + j, b->n);
  }
  /* Scale factors come from the shared columns only, so they are the same
     for every block. */
  glp_scale_prob(P, GLP_SF_AUTO);
  return P;
}

static void solve_one(worker *w, glp_prob *P, size_t p, long *fixed) {
  const sp_lp_batch *b = w->b;
  size_t m = b->m, n = b->n;
  for (size_t k = 0; k < b->nvar; k++) {
    set_column(w, P, b->varcol[k], b->colval + (p * b->nvar + k) * m, 1);
    if (b->varobj) glp_set_obj_coef(P, (int)b->varcol[k] + 1, b->varobj[p * b->nvar + k]);
  }
  if (b->prob_rhs)
    for (size_t i = 0; i < m; i++) set_row_rhs(P, b, (int)i + 1, b->prob_rhs[p * m + i]);
  long f = b->fix0 ? b->fix0[p] : -1;
  if (*fixed != f) {
    if (*fixed >= 0) set_col_bounds(P, (int)*fixed + 1, b->lb ? b->lb[*fixed] : 0, b->ub ? b->ub[*fixed] : HUGE_VAL);
    if (f >= 0) glp_set_col_bnds(P, (int)f + 1, GLP_FX, 0, 0);
    *fixed = f;
  }
  glp_smcp parm;
  glp_init_smcp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.meth = GLP_DUALP;
  int rc = glp_simplex(P, &parm);
  if (rc == GLP_EBADB || rc == GLP_ESING || rc == GLP_ECOND) {
    /* The previous basis does not fit the changed columns: start afresh. */
    glp_adv_basis(P, 0);
    rc = glp_simplex(P, &parm);
  }
  if (rc == 0 && glp_get_status(P) != GLP_OPT && glp_get_status(P) != GLP_NOFEAS && glp_get_status(P) != GLP_UNBND) {
    /* The dual simplex can stop on a dual-infeasible basis without telling
       an unbounded problem from an infeasible one: the primal simplex does. */
    parm.meth = GLP_PRIMAL;
    rc = glp_simplex(P, &parm);
  }
  int st = SP_LP_FAILED;
  if (rc == 0) {
    int g = glp_get_status(P);
    st = g == GLP_OPT ? SP_LP_OPTIMAL : g == GLP_NOFEAS ? SP_LP_INFEASIBLE : g == GLP_UNBND ? SP_LP_UNBOUNDED : SP_LP_FAILED;
  }
  sp_lp_result *r = w->res;
  int ok = st == SP_LP_OPTIMAL;
  if (r->status) r->status[p] = st;
  if (r->value) r->value[p] = ok ? glp_get_obj_val(P) : NAN;
  size_t nx = r->keep ? r->nkeep : n;
  for (size_t q = 0; r->x && q < nx; q++)
    r->x[p * nx + q] = ok ? glp_get_col_prim(P, (int)(r->keep ? r->keep[q] : q) + 1) : NAN;
  for (size_t i = 0; r->dual && i < m; i++) r->dual[p * m + i] = ok ? glp_get_row_dual(P, (int)i + 1) : NAN;
}

static void *run_blocks(void *arg) {
  worker *w = arg;
  const sp_lp_batch *b = w->b;
  size_t nblocks = (b->count + SP_LP_BLOCK - 1) / SP_LP_BLOCK;
  /* volatile: read after longjmp. */
  volatile size_t blk = w->first_block;
  glp_term_out(GLP_OFF);
  glp_error_hook(on_glpk_error, w);
  if (setjmp(w->jump)) {
    sp_error_set(&w->err, SP_EVALUE, "lp: GLPK failed internally while solving problems %zu..%zu",
                 blk * SP_LP_BLOCK + 1, (blk + 1) * SP_LP_BLOCK);
    glp_free_env();
    return NULL;
  }
  for (; blk < nblocks; blk += w->stride) {
    glp_prob *P = build(w);
    long fixed = -1;
    size_t end = (blk + 1) * SP_LP_BLOCK < b->count ? (blk + 1) * SP_LP_BLOCK : b->count;
    for (size_t p = blk * SP_LP_BLOCK; p < end; p++) {
      solve_one(w, P, p, &fixed);
    }
    glp_delete_prob(P);
  }
  glp_error_hook(NULL, NULL);
  glp_free_env();
  return NULL;
}

int sp_lp_solve_batch(const sp_lp_batch *b, sp_lp_result *res, sp_error *err) {
  int rc = check_batch(b, err);
  if (rc) return rc;
  for (size_t q = 0; res->keep && q < res->nkeep; q++)
    if (res->keep[q] >= b->n) return sp_error_set(err, SP_EDIM, "lp: kept column %zu is out of range (1..%zu)",
                                                  res->keep[q] + 1, b->n);
  if (b->count == 0) return SP_OK;
  size_t nblocks = (b->count + SP_LP_BLOCK - 1) / SP_LP_BLOCK;
  size_t nt = (size_t)b->threads < nblocks ? (size_t)b->threads : nblocks;
  worker *ws = calloc(nt, sizeof *ws);
  int *ind = malloc(nt * (b->m + 1) * sizeof *ind);
  double *val = malloc(nt * (b->m + 1) * sizeof *val);
  pthread_t *th = malloc(nt * sizeof *th);
  if (!ws || !ind || !val || !th) {
    free(ws), free(ind), free(val), free(th);
    return sp_error_set(err, SP_ENOMEM, "lp: out of memory for %zu problems", b->count);
  }
  size_t started = 0;
  for (size_t t = 0; t < nt; t++) {
    ws[t] = (worker){.b = b, .res = res, .first_block = t, .stride = nt,
                     .ind = ind + t * (b->m + 1), .val = val + t * (b->m + 1)};
    sp_error_clear(&ws[t].err);
  }
  /* Thread 0 is the caller; a thread that cannot be started leaves its
     blocks to the caller, which runs them after its own. */
  for (size_t t = 1; t < nt; t++) {
    if (pthread_create(&th[t], NULL, run_blocks, &ws[t]) != 0) break;
    started = t;
  }
  run_blocks(&ws[0]);
  for (size_t t = 1; t <= started; t++) pthread_join(th[t], NULL);
  for (size_t t = started + 1; t < nt; t++) run_blocks(&ws[t]);
  rc = SP_OK;
  for (size_t t = 0; t < nt && !rc; t++)
    if (ws[t].err.code) {
      if (err) *err = ws[t].err;
      rc = ws[t].err.code;
    }
  free(ws), free(ind), free(val), free(th);
  return rc;
}
