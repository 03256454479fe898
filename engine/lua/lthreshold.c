/*
** lthreshold.c: core.threshold_fit(design, opts), the binding of threshold.h.
**
** opts: entity (the fixed effect of the design), threshold (name), regime
** (array of names), time (name or nil), n (1..3), trim ({t1, t2, t3}),
** grid (points; 0 = every distinct value), reps, seed, threads, level, naive,
** hansen1999 (Hansen's own program; the result then has coef, V_homo, V_het).
**
** The result lives in a full userdata (spillover.threshold_result) whose
** __gc frees the core's arrays, so raising while the Lua table is built
** (out of memory) leaks nothing.  The regime regressors are packed into an
** n x m buffer that is also a userdata, for the same reason.
*/
#include <math.h>
#include <string.h>

#include "spillover/threshold.h"

#include "ldesign.h"
#include "lsp.h"
#include "lthreshold.h"

#define SP_THRRES_T "spillover.threshold_result"

static int thrres_gc(lua_State *L) {
  sp_thr_result *r = luaL_checkudata(L, 1, SP_THRRES_T);
  sp_thr_result_clear(r);  /* idempotent: clear zeroes the record */
  return 0;
}

static const sp_design_factor *need_factor(lua_State *L, const sp_design *des, const char *name, const char *role) {
  const sp_design_factor *f = sp_design_factor_find(des, name);
  if (f == NULL) sp_lua_errorf(L, "threshold_fit: the design has no %s variable '%s'", role, name);
  return f;
}

/* The values of a numeric variable of the design over its rows. */
static const double *need_values(lua_State *L, sp_design *des, const char *name, const char *role) {
  const sp_design_factor *f = need_factor(L, des, name, role);
  if (!sp_design_factor_numeric(des, f))
    sp_lua_errorf(L, "threshold_fit: the %s variable '%s' must be numeric, not categorical", role, name);
  sp_error err;
  sp_error_clear(&err);
  const double *v = sp_design_factor_values(des, f, &err);
  if (v == NULL) sp_lua_error(L, &err);
  return v;
}

static double opt_number(lua_State *L, int t, const char *k, double dflt) {
  double v = dflt;
  if (lua_getfield(L, t, k) != LUA_TNIL) {
    if (!lua_isnumber(L, -1)) sp_lua_errorf(L, "threshold_fit: option '%s' must be a number", k);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static void set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void push_array(lua_State *L, const double *v, size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static int l_threshold_fit(lua_State *L) {
  sp_design *des = sp_lua_check_design(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  gsl_matrix *y = NULL, *X = NULL;
  sp_lua_design_matrices(L, 1, &y, &X, NULL, NULL);
  size_t n = des->n, k = des->k;

  lua_getfield(L, 2, "entity");
  const sp_design_factor *fe = need_factor(L, des, luaL_checkstring(L, -1), "entity");
  lua_pop(L, 1);
  lua_getfield(L, 2, "threshold");
  const char *qname = luaL_checkstring(L, -1);
  const double *q = need_values(L, des, qname, "threshold");
  lua_pop(L, 1);  /* the name stays alive in the options table */
  const sp_design_factor *tf = NULL;
  if (lua_getfield(L, 2, "time") != LUA_TNIL) tf = need_factor(L, des, luaL_checkstring(L, -1), "time");
  lua_pop(L, 1);
  if (lua_getfield(L, 2, "regime") != LUA_TTABLE) sp_lua_errorf(L, "threshold_fit: option 'regime' must be an array of names");
  int regime = lua_gettop(L);
  size_t m = (size_t)lua_rawlen(L, regime);
  if (m == 0 || m > 32) sp_lua_errorf(L, "threshold_fit: between 1 and 32 regime regressors, got %zu", m);
  const char *znames[32];
  const double *zf[32];
  for (size_t a = 0; a < m; a++) {
    lua_rawgeti(L, regime, (lua_Integer)a + 1);
    znames[a] = luaL_checkstring(L, -1);
    zf[a] = need_values(L, des, znames[a], "regime");
    lua_pop(L, 1);  /* pinned by the regime table */
  }

  sp_thr_options o;
  sp_thr_options_init(&o);
  o.nthresh = (int)opt_number(L, 2, "n", 1);
  if (lua_getfield(L, 2, "trim") == LUA_TTABLE) {
    for (int s = 0; s < SP_THR_MAX; s++) {
      lua_rawgeti(L, -1, s + 1);
      if (lua_isnumber(L, -1)) o.trim[s] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  double grid = opt_number(L, 2, "grid", 400);
  if (!(grid >= 0 && grid <= 1e7)) sp_lua_errorf(L, "threshold_fit: grid must be 0 (exact) or a number of points");
  o.grid = (size_t)grid;
  o.reps = (int)opt_number(L, 2, "reps", 0);
  o.seed = (uint64_t)(int64_t)opt_number(L, 2, "seed", 1);
  o.threads = (int)opt_number(L, 2, "threads", 1);
  o.level = opt_number(L, 2, "level", 0.95);
  lua_getfield(L, 2, "naive");
  o.naive = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 2, "hansen1999");
  o.hansen1999 = lua_toboolean(L, -1);
  lua_pop(L, 1);

  /* Owners first: the regime buffer and the result box. */
  double *Z = lua_newuserdatauv(L, (n ? n : 1) * m * sizeof(double), 0);
  /* y is a column of the design's shared [y X] block: copy it contiguous. */
  double *yv = lua_newuserdatauv(L, (n ? n : 1) * sizeof(double), 0);
  for (size_t t = 0; t < n; t++) yv[t] = gsl_matrix_get(y, t, 0);
  for (size_t t = 0; t < n; t++)
    for (size_t a = 0; a < m; a++) Z[t * m + a] = zf[a][t];
  sp_thr_result *res = lua_newuserdatauv(L, sizeof *res, 0);
  memset(res, 0, sizeof *res);
  luaL_setmetatable(L, SP_THRRES_T);

  sp_thr_data d = {.n = n, .k = k, .m = m, .y = yv, .X = k ? X->data : NULL, .ldx = k ? X->tda : 0,
                   .Z = Z, .ldz = m, .q = q, .entity = fe->code, .N = fe->nlevels,
                   .time = tf ? tf->code : NULL, .xnames = (const char *const *)des->names,
                   .znames = znames, .qname = qname};
  sp_error err;
  sp_error_clear(&err);
  int st = sp_threshold_fit(&d, &o, res, &err);
  if (st) {
    sp_thr_result_clear(res);
    return sp_lua_error(L, &err);
  }

  int nt = res->nthresh;
  lua_createtable(L, 0, 24);
  lua_pushinteger(L, nt); lua_setfield(L, -2, "n");
  lua_pushinteger(L, (lua_Integer)res->nobs); lua_setfield(L, -2, "nobs");
  lua_pushinteger(L, (lua_Integer)res->nentities); lua_setfield(L, -2, "n_entities");
  lua_pushinteger(L, (lua_Integer)res->df); lua_setfield(L, -2, "df");
  lua_pushboolean(L, res->balanced); lua_setfield(L, -2, "balanced");
  lua_pushinteger(L, (lua_Integer)res->nunique); lua_setfield(L, -2, "n_unique");
  lua_pushinteger(L, (lua_Integer)res->ngrid); lua_setfield(L, -2, "n_grid");
  set_num(L, "lr_crit", res->lr_crit);
  set_num(L, "ssr_linear", res->ssr_linear);
  set_num(L, "ssr", res->ssr);
  push_array(L, res->gamma, (size_t)nt);
  lua_setfield(L, -2, "thresholds");
  lua_createtable(L, nt, 0);
  for (int j = 0; j < nt; j++) {
    push_array(L, res->ci[j], 2);
    lua_rawseti(L, -2, j + 1);
  }
  lua_setfield(L, -2, "ci");
  lua_createtable(L, nt, 0);
  for (int j = 0; j < nt; j++) {
    lua_createtable(L, 0, 2);
    push_array(L, res->curve[j].gamma, res->curve[j].n);
    lua_setfield(L, -2, "gamma");
    push_array(L, res->curve[j].lr, res->curve[j].n);
    lua_setfield(L, -2, "lr");
    lua_rawseti(L, -2, j + 1);
  }
  lua_setfield(L, -2, "lr");
  lua_createtable(L, nt + 1, 0);
  for (int j = 0; j <= nt; j++) {
    lua_pushinteger(L, (lua_Integer)res->regime_nobs[j]);
    lua_rawseti(L, -2, j + 1);
  }
  lua_setfield(L, -2, "regime_nobs");
  static const char *const seqn[4] = {"g1", "g2", "g1_refined", "g3"};
  lua_createtable(L, 0, 12);
  for (int i = 0; i < 4; i++) {
    if (isnan(res->seq_gamma[i])) continue;
    lua_createtable(L, 0, 3);
    set_num(L, "threshold", res->seq_gamma[i]);
    set_num(L, "ssr", res->seq_ssr[i]);
    lua_pushinteger(L, (lua_Integer)res->seq_ncand[i]);
    lua_setfield(L, -2, "n_candidates");
    lua_setfield(L, -2, seqn[i]);
  }
  lua_setfield(L, -2, "sequence");
  static const char *const testn[3] = {"single", "double", "triple"};
  lua_createtable(L, nt, 0);
  for (int j = 0; j < nt; j++) {
    const sp_thr_test *T = &res->test[j];
    lua_createtable(L, 0, 10);
    lua_pushstring(L, testn[j]); lua_setfield(L, -2, "name");
    set_num(L, "F", T->F);
    set_num(L, "ssr_null", T->ssr_null);
    set_num(L, "ssr_alt", T->ssr_alt);
    lua_pushinteger(L, T->reps); lua_setfield(L, -2, "reps");
    if (T->reps > 0) {
      set_num(L, "pvalue", T->pvalue);
      set_num(L, "crit10", T->crit[0]);
      set_num(L, "crit5", T->crit[1]);
      set_num(L, "crit1", T->crit[2]);
      push_array(L, T->Fboot, (size_t)T->reps);
      lua_setfield(L, -2, "Fboot");
    }
    lua_rawseti(L, -2, j + 1);
  }
  lua_setfield(L, -2, "tests");
  if (res->coef) {
    size_t K = res->ncoef;
    push_array(L, res->coef, K);
    lua_setfield(L, -2, "coef");
    static const char *const vn[2] = {"V_homo", "V_het"};
    for (int v = 0; v < 2; v++) {
      const double *V = v ? res->V_het : res->V_homo;
      lua_createtable(L, (int)K, 0);
      for (size_t i = 0; i < K; i++) {
        push_array(L, V + i * K, K);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      lua_setfield(L, -2, vn[v]);
    }
  }
  sp_thr_result_clear(res);
  return 1;
}

void sp_lua_open_threshold(lua_State *L) {
  sp_lua_new_box_type(L, SP_THRRES_T, thrres_gc);
  lua_pushcfunction(L, l_threshold_fit);
  lua_setfield(L, -2, "threshold_fit");
}
