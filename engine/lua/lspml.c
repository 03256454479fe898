/*
** lspml.c: the spillover.spml userdata (core.spml_sample), the Lua face of
** spml.h.  It owns the weights of a sample (W restricted per period to the
** units present), the prepared log-determinant, and offers the products,
** solves, traces and the maximisation of the concentrated likelihood that
** lua/spillover/spatial_models.lua assembles into sp.spatial.
**
** Discipline (STYLE.md): arguments are checked first, the userdata is pushed
** in a closed state before any C allocation, scratch buffers are Lua
** userdata (collected if we raise), and core errors are raised only after C
** has released what it holds.
*/
#include <math.h>
#include <string.h>

#include "lsp.h"
#include "lspml.h"
#include "lweights.h"
#include "spillover/spml.h"

#define SP_SPML_T "spillover.spml"

typedef struct {
  sp_spml_sample *s;  /* owned; NULL once closed */
  sp_logdet *ld;      /* owned; NULL until :setup_logdet */
  size_t nunits;      /* units of the source weights */
} lspml;

static lspml *check_spml(lua_State *L, int idx) {
  lspml *u = luaL_checkudata(L, idx, SP_SPML_T);
  if (u->s == NULL) luaL_error(L, "attempt to use a closed spillover.spml");
  return u;
}

static int spml_gc(lua_State *L) {
  lspml *u = luaL_checkudata(L, 1, SP_SPML_T);
  sp_logdet_free(u->ld);
  u->ld = NULL;
  sp_spml_sample_free(u->s);
  u->s = NULL;
  return 0;
}

/* A scratch array of n elements of size sz owned by the Lua stack. */
static void *scratch(lua_State *L, size_t n, size_t sz) {
  return lua_newuserdatauv(L, (n ? n : 1) * sz, 0);
}

/* An index array (1-based Lua integers -> 0-based size_t) of length n. */
static size_t *index_array(lua_State *L, int idx, size_t n, const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  if ((size_t)luaL_len(L, idx) != n)
    sp_lua_errorf(L, "spml_sample: %s has %zu entries (expected %zu)", what, (size_t)luaL_len(L, idx), n);
  size_t *a = scratch(L, n, sizeof *a);
  for (size_t r = 0; r < n; r++) {
    lua_rawgeti(L, idx, (lua_Integer)r + 1);
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 1) sp_lua_errorf(L, "spml_sample: %s[%zu] is not a positive integer", what, r + 1);
    a[r] = (size_t)(v - 1);
    lua_pop(L, 1);
  }
  return a;
}

/* The source weights: a spillover.weights (its values in the current style,
   used as it is: *owned stays NULL), a dense N x N sp.matrix, or a table
   {n =, i =, j =, x =} of 1-based triplets (both built into *owned, which the
   caller frees before any raise). */
static int source_weights(lua_State *L, int idx, const sp_weights **W, sp_weights **owned, sp_error *err) {
  *owned = NULL;
  if (luaL_testudata(L, idx, SP_WEIGHTS_T) != NULL) {
    *W = sp_lua_check_weights(L, idx);
    return SP_OK;
  }
  int st;
  gsl_matrix *m = sp_lua_test_matrix(L, idx);
  if (m != NULL) {
    if (m->size1 != m->size2)
      return sp_error_set(err, SP_EDIM, "spatial: the weights matrix is %zu x %zu (expected square)", m->size1, m->size2);
    size_t n = m->size1, nnz = 0;
    for (size_t r = 0; r < n; r++)
      for (size_t c = 0; c < n; c++) nnz += m->data[r * m->tda + c] != 0;
    size_t *ti = scratch(L, nnz, sizeof *ti), *tj = scratch(L, nnz, sizeof *tj);
    double *tx = scratch(L, nnz, sizeof *tx);
    size_t e = 0;
    for (size_t r = 0; r < n; r++)
      for (size_t c = 0; c < n; c++) {
        double v = m->data[r * m->tda + c];
        if (v != 0) { ti[e] = r; tj[e] = c; tx[e] = v; e++; }
      }
    st = sp_weights_from_triplets(n, nnz, ti, tj, tx, owned, err);
    lua_pop(L, 3);
  } else {
    if (!lua_istable(L, idx)) luaL_argerror(L, idx, "expected an sp.matrix or a table {n=, i=, j=, x=}");
    lua_getfield(L, idx, "n");
    int ok = 0;
    lua_Integer n = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || n < 1) luaL_argerror(L, idx, "triplet weights need a positive integer n");
    lua_getfield(L, idx, "i");
    lua_getfield(L, idx, "j");
    lua_getfield(L, idx, "x");
    int ti_ = lua_absindex(L, -3), tj_ = lua_absindex(L, -2), tx_ = lua_absindex(L, -1);
    if (!lua_istable(L, ti_) || !lua_istable(L, tj_) || !lua_istable(L, tx_))
      luaL_argerror(L, idx, "triplet weights need arrays i, j and x");
    size_t nnz = (size_t)luaL_len(L, ti_);
    if ((size_t)luaL_len(L, tj_) != nnz || (size_t)luaL_len(L, tx_) != nnz)
      luaL_argerror(L, idx, "triplet arrays i, j and x differ in length");
    size_t *a = index_array(L, ti_, nnz, "i");
    size_t *b = index_array(L, tj_, nnz, "j");
    double *x = scratch(L, nnz, sizeof *x);
    for (size_t e = 0; e < nnz; e++) {
      lua_rawgeti(L, tx_, (lua_Integer)e + 1);
      if (lua_type(L, -1) != LUA_TNUMBER) sp_lua_errorf(L, "spml_sample: x[%zu] is not a number", e + 1);
      x[e] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    st = sp_weights_from_triplets((size_t)n, nnz, a, b, x, owned, err);
    lua_pop(L, 6);
  }
  *W = *owned;
  return st;
}

/* core.spml_sample(W, unit, block, nblock [, restandardise]) */
static int l_sample(lua_State *L) {
  luaL_checkany(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer nblock = luaL_checkinteger(L, 4);
  luaL_argcheck(L, nblock >= 1, 4, "expected at least one period");
  int restd = lua_isnoneornil(L, 5) ? 1 : lua_toboolean(L, 5);
  size_t nrow = (size_t)luaL_len(L, 2);
  size_t *unit = index_array(L, 2, nrow, "unit");
  size_t *block = index_array(L, 3, nrow, "block");
  lspml *u = lua_newuserdatauv(L, sizeof *u, 0);  /* owner first */
  u->s = NULL;
  u->ld = NULL;
  u->nunits = 0;
  luaL_setmetatable(L, SP_SPML_T);
  sp_error err;
  sp_error_clear(&err);
  const sp_weights *W = NULL;
  sp_weights *owned = NULL;
  int st = source_weights(L, 1, &W, &owned, &err);
  if (st != SP_OK) return sp_lua_error(L, &err);
  u->nunits = W->n;
  st = sp_spml_sample_new(W, nrow, unit, block, (size_t)nblock, restd, &u->s, &err);
  sp_weights_free(owned);
  if (st != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

static int l_info(lua_State *L) {
  lspml *u = check_spml(L, 1);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)u->s->nrow); lua_setfield(L, -2, "nrow");
  lua_pushinteger(L, (lua_Integer)u->s->nblock); lua_setfield(L, -2, "nblock");
  lua_pushinteger(L, (lua_Integer)u->s->ndistinct); lua_setfield(L, -2, "ndistinct");
  lua_pushinteger(L, (lua_Integer)u->s->nempty); lua_setfield(L, -2, "nempty");
  lua_pushinteger(L, (lua_Integer)u->s->Wn->nnz); lua_setfield(L, -2, "links");
  lua_pushboolean(L, u->s->row_stochastic); lua_setfield(L, -2, "row_stochastic");
  return 1;
}

/* S:lag(M) -> W M (a new matrix) */
static int l_lag(lua_State *L) {
  lspml *u = check_spml(L, 1);
  gsl_matrix *m = sp_lua_check_matrix(L, 2);
  if (m->size1 != u->s->nrow)
    return sp_lua_errorf(L, "spml lag: the matrix has %zu rows (expected %zu observations)", m->size1, u->s->nrow);
  gsl_matrix *out = sp_lua_matrix_new(L, m->size1, m->size2);
  /* column by column: a view's columns are strided like a full matrix's */
  for (size_t c = 0; c < m->size2; c++)
    sp_weights_lag_strided(u->s->Wn, m->data + c, m->tda, out->data + c, out->tda);
  return 1;
}

/* S:solve(rho, M) -> (I - rho W)^-1 M, column by column */
static int l_solve(lua_State *L) {
  lspml *u = check_spml(L, 1);
  double rho = luaL_checknumber(L, 2);
  gsl_matrix *m = sp_lua_check_matrix(L, 3);
  size_t n = u->s->nrow;
  if (m->size1 != n) return sp_lua_errorf(L, "spml solve: the matrix has %zu rows (expected %zu)", m->size1, n);
  gsl_matrix *out = sp_lua_matrix_new(L, n, m->size2);
  double *b = scratch(L, n, sizeof *b), *z = scratch(L, n, sizeof *z);
  sp_error err;
  sp_error_clear(&err);
  for (size_t c = 0; c < m->size2; c++) {
    for (size_t r = 0; r < n; r++) b[r] = m->data[r * m->tda + c];
    if (sp_spml_solve(u->s, rho, b, z, &err) != SP_OK) return sp_lua_error(L, &err);
    for (size_t r = 0; r < n; r++) out->data[r * out->tda + c] = z[r];
  }
  lua_pop(L, 2);
  return 1;
}

/* Field k of the table at t, one of names (def when nil and def >= 0); an
   error names the option and the choices (luaL_checkoption on a stack slot
   would say "bad argument #-2"). */
static int opt_choice(lua_State *L, int t, const char *k, const char *const *names, int def, const char *op) {
  int v = def;
  if (lua_getfield(L, t, k) != LUA_TNIL || def < 0) {
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    v = -1;
    for (int i = 0; s && names[i]; i++)
      if (strcmp(names[i], s) == 0) v = i;
    if (v < 0) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (int i = 0; names[i]; i++) {
        if (i) luaL_addstring(&b, ", ");
        luaL_addstring(&b, names[i]);
      }
      luaL_pushresult(&b);
      const char *choices = lua_tostring(L, -1);
      const char *got = luaL_tolstring(L, -2, NULL);
      sp_lua_errorf(L, "%s: option '%s' must be one of %s, got %s", op, k, choices, got);
    }
  }
  lua_pop(L, 1);
  return v;
}

static const char *const methods[] = {"eigen", "lu", "mc", "chebyshev", NULL};

static size_t opt_size(lua_State *L, int t, const char *k, size_t def) {
  lua_getfield(L, t, k);
  size_t v = def;
  if (!lua_isnil(L, -1)) {
    int ok = 0;
    lua_Integer i = lua_tointegerx(L, -1, &ok);
    if (!ok || i < 0) luaL_error(L, "spml logdet: option '%s' must be a non-negative integer", k);
    v = (size_t)i;
  }
  lua_pop(L, 1);
  return v;
}

/* S:setup_logdet{method =, order =, nvec =, seed =} -> lower, upper */
static int l_setup(lua_State *L) {
  lspml *u = check_spml(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  sp_logdet_options o;
  sp_logdet_options_init(&o);
  o.method = opt_choice(L, 2, "method", methods, 0, "spml logdet");
  o.order = opt_size(L, 2, "order", o.order);
  o.nvec = opt_size(L, 2, "nvec", o.nvec);
  o.seed = (unsigned long)opt_size(L, 2, "seed", o.seed);
  sp_logdet_free(u->ld);
  u->ld = NULL;
  sp_error err;
  sp_error_clear(&err);
  if (sp_logdet_new(u->s, &o, &u->ld, &err) != SP_OK) return sp_lua_error(L, &err);
  double lo, hi;
  sp_logdet_interval(u->ld, &lo, &hi);
  lua_pushnumber(L, lo);
  lua_pushnumber(L, hi);
  return 2;
}

static sp_logdet *need_ld(lua_State *L, lspml *u) {
  if (u->ld == NULL) luaL_error(L, "spml: call setup_logdet first");
  return u->ld;
}

/* S:logdet(rho) -> value, d1, d2 */
static int l_logdet(lua_State *L) {
  lspml *u = check_spml(L, 1);
  double rho = luaL_checknumber(L, 2);
  sp_logdet *ld = need_ld(L, u);
  double v, d1, d2;
  sp_error err;
  sp_error_clear(&err);
  if (sp_logdet_eval(ld, rho, &v, &d1, &d2, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_pushnumber(L, v);
  lua_pushnumber(L, d1);
  lua_pushnumber(L, d2);
  return 3;
}

/* S:traces(rho [, dense_max [, gtg]]) -> tr(A), tr(G), tr(G^2), tr(G'G)
   (gtg = false skips the last, NaN) */
static int l_traces(lua_State *L) {
  lspml *u = check_spml(L, 1);
  double rho = luaL_checknumber(L, 2);
  lua_Integer dm = luaL_optinteger(L, 3, 3000);
  int gtg = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
  sp_logdet *ld = need_ld(L, u);
  double t[4];
  sp_error err;
  sp_error_clear(&err);
  if (sp_logdet_traces(ld, rho, dm < 0 ? 0 : (size_t)dm, gtg, t, &err) != SP_OK) return sp_lua_error(L, &err);
  for (int q = 0; q < 4; q++) lua_pushnumber(L, t[q]);
  return 4;
}

static double opt_number(lua_State *L, int t, const char *k, double def) {
  lua_getfield(L, t, k);
  double v = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "spml: '%s' must be a number", k);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* A contiguous copy of a field's matrix (n x cols expected), as scratch. */
static double *field_matrix(lua_State *L, int t, const char *k, size_t n, size_t *cols) {
  lua_getfield(L, t, k);
  gsl_matrix *m = sp_lua_test_matrix(L, -1);
  if (m == NULL) luaL_error(L, "spml: '%s' must be a matrix", k);
  if (m->size1 != n) sp_lua_errorf(L, "spml: '%s' has %zu rows (expected %zu)", k, m->size1, n);
  if (*cols != (size_t)-1 && m->size2 != *cols)
    sp_lua_errorf(L, "spml: '%s' has %zu columns (expected %zu)", k, m->size2, *cols);
  *cols = m->size2;
  double *a = scratch(L, n * m->size2, sizeof *a);
  for (size_t r = 0; r < n; r++)
    for (size_t c = 0; c < m->size2; c++) a[r * m->size2 + c] = m->data[r * m->tda + c];
  lua_remove(L, -2);  /* the matrix; the scratch stays on the stack until we return */
  return a;
}

static void read_problem(lua_State *L, lspml *u, int t, sp_spml_problem *p) {
  static const char *const kinds[] = {"lag", "error", NULL};
  memset(p, 0, sizeof *p);
  p->kind = opt_choice(L, t, "kind", kinds, -1, "spml");
  p->n = u->s->nrow;
  p->n_eff = opt_number(L, t, "n_eff", (double)p->n);
  p->ld_factor = opt_number(L, t, "ld_factor", 1);
  p->log1m_coef = opt_number(L, t, "log1m", 0);
  p->ld = need_ld(L, u);
  double lo, hi;
  sp_logdet_interval(p->ld, &lo, &hi);
  p->lower = opt_number(L, t, "lower", lo);
  p->upper = opt_number(L, t, "upper", hi);
  if (p->kind == SP_SPML_LAG) {
    lua_getfield(L, t, "ee");
    if (!lua_istable(L, -1)) luaL_error(L, "spml: a lag problem needs ee = {e0'e0, e0'eL, eL'eL}");
    for (int q = 0; q < 3; q++) {
      if (lua_rawgeti(L, -1, q + 1) != LUA_TNUMBER)
        luaL_error(L, "spml: ee[%d] is a %s (a lag problem needs ee = {e0'e0, e0'eL, eL'eL})", q + 1,
                   luaL_typename(L, -1));
      p->ee[q] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else {
    size_t one = 1, k = (size_t)-1;
    p->y = field_matrix(L, t, "y", p->n, &one);
    one = 1;
    p->Wy = field_matrix(L, t, "Wy", p->n, &one);
    p->X = field_matrix(L, t, "X", p->n, &k);
    p->WX = field_matrix(L, t, "WX", p->n, &k);
    p->k = k;
  }
}

/* S:maximise(problem) -> {rho, loglik, score, hess, sigma2, ssr, boundary, evals} */
static int l_maximise(lua_State *L) {
  lspml *u = check_spml(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int top = lua_gettop(L);
  sp_spml_problem p;
  read_problem(L, u, 2, &p);
  sp_spml_result r;
  sp_error err;
  sp_error_clear(&err);
  if (sp_spml_maximise(&p, &r, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_settop(L, top);
  lua_createtable(L, 0, 8);
  lua_pushnumber(L, r.rho); lua_setfield(L, -2, "rho");
  lua_pushnumber(L, r.loglik); lua_setfield(L, -2, "loglik");
  lua_pushnumber(L, r.score); lua_setfield(L, -2, "score");
  lua_pushnumber(L, r.hess); lua_setfield(L, -2, "hess");
  lua_pushnumber(L, r.sigma2); lua_setfield(L, -2, "sigma2");
  lua_pushnumber(L, r.ssr); lua_setfield(L, -2, "ssr");
  lua_pushboolean(L, r.boundary); lua_setfield(L, -2, "boundary");
  lua_pushinteger(L, (lua_Integer)r.evals); lua_setfield(L, -2, "evals");
  return 1;
}

/* S:loglik(problem, rho) -> lnL, ssr */
static int l_loglik(lua_State *L) {
  lspml *u = check_spml(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  double rho = luaL_checknumber(L, 3);
  sp_spml_problem p;
  read_problem(L, u, 2, &p);
  double ll, ssr;
  sp_error err;
  sp_error_clear(&err);
  if (sp_spml_loglik(&p, rho, &ll, &ssr, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_pushnumber(L, ll);
  lua_pushnumber(L, ssr);
  return 2;
}

static const luaL_Reg spml_meta[] = {
  {"__gc", spml_gc},
  {"__close", spml_gc},
  {NULL, NULL}
};

static const luaL_Reg spml_meth[] = {
  {"info", l_info},
  {"lag", l_lag},
  {"solve", l_solve},
  {"setup_logdet", l_setup},
  {"logdet", l_logdet},
  {"traces", l_traces},
  {"maximise", l_maximise},
  {"loglik", l_loglik},
  {"close", spml_gc},
  {NULL, NULL}
};

void sp_lua_open_spml(lua_State *L) {
  sp_lua_new_class(L, SP_SPML_T, spml_meta, spml_meth);
  lua_pushcfunction(L, l_sample);
  lua_setfield(L, -2, "spml_sample");
}
