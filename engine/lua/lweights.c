/*
** lweights.c: the spillover.weights userdata and the C kernels behind
** sp.weights, sp.moran and sp.local_moran (lua/spillover/spatial.lua builds
** the public functions on top of core._weights).
**
** The userdata is a box holding an sp_weights pointer, pushed empty before
** the core builds the weights (owner first).  Vectors read from Lua go into
** GC-owned scratch userdata, so an error raised while reading them leaks
** nothing; the core's own allocations are freed before any error is raised.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lsp.h"
#include "lweights.h"

#define LI(x) ((lua_Integer)(x))

typedef struct {
  sp_weights *W;
} lweights;

/* {======================================================================
** Boxes and argument helpers
** ======================================================================= */

static sp_weights **push_box(lua_State *L) {
  lweights *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->W = NULL;
  luaL_setmetatable(L, SP_WEIGHTS_T);
  return &u->W;
}

sp_weights *sp_lua_check_weights(lua_State *L, int idx) {
  lweights *u = luaL_checkudata(L, idx, SP_WEIGHTS_T);
  if (u->W == NULL) luaL_error(L, "attempt to use a closed spillover.weights");
  return u->W;
}

static int l_gc(lua_State *L) {
  lweights *u = luaL_checkudata(L, 1, SP_WEIGHTS_T);
  sp_weights_free(u->W);
  u->W = NULL;
  return 0;
}

static void *scratch(lua_State *L, size_t n, size_t size) {
  if (size != 0 && n > ((size_t)-1) / 4 / size) luaL_error(L, "weights: array of %I elements is too large", LI(n));
  return lua_newuserdatauv(L, n * size > 0 ? n * size : 1, 0);
}

/* The values of a vector argument (an n x 1 or 1 x n spillover.matrix, or a
   Lua array of numbers) in a pushed scratch buffer; n must match when > 0,
   and *len receives the length. */
static double *check_vector(lua_State *L, int idx, size_t n, const char *what, size_t *len) {
  idx = lua_absindex(L, idx);
  gsl_matrix *m = sp_lua_test_matrix(L, idx);
  size_t k;
  double *v;
  if (m != NULL) {
    if (m->size1 != 1 && m->size2 != 1)
      luaL_error(L, "%s: x is a %I x %I matrix; expected a vector (n x 1)", what, LI(m->size1), LI(m->size2));
    k = m->size1 * m->size2;
    if (n > 0 && k != n)
      luaL_error(L, "%s: x has %I values for weights over %I units; expected one value per unit", what, LI(k), LI(n));
    v = scratch(L, k, sizeof *v);
    for (size_t i = 0; i < k; i++) v[i] = m->size2 == 1 ? gsl_matrix_get(m, i, 0) : gsl_matrix_get(m, 0, i);
  } else if (lua_type(L, idx) == LUA_TTABLE) {
    k = lua_rawlen(L, idx);
    if (n > 0 && k != n)
      luaL_error(L, "%s: x has %I values for weights over %I units; expected one value per unit", what, LI(k), LI(n));
    v = scratch(L, k, sizeof *v);
    for (size_t i = 0; i < k; i++) {
      int t = lua_rawgeti(L, idx, (lua_Integer)i + 1);
      if (t != LUA_TNUMBER)
        luaL_error(L, "%s: element %I of x is a %s; expected a number", what, LI(i + 1), lua_typename(L, t));
      v[i] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
  } else {
    luaL_error(L, "%s: x is a %s; expected a spillover.matrix (n x 1) or an array of numbers", what,
               luaL_typename(L, idx));
    return NULL;
  }
  *len = k;
  return v;
}

/* A non-negative integer argument. */
static size_t check_count(lua_State *L, int idx, const char *what) {
  int isint = 0;
  lua_Integer k = lua_tointegerx(L, idx, &isint);
  if (!isint || lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s must be a non-negative integer (got %s)", what, luaL_tolstring(L, idx, NULL));
  if (k < 0) luaL_error(L, "%s must not be negative (got %I)", what, k);
  return (size_t)k;
}

/* An array of 1-based unit indices in [1, n] into a scratch buffer (0-based). */
static size_t *check_indices(lua_State *L, int idx, size_t n, size_t *len, const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  size_t m = lua_rawlen(L, idx);
  size_t *v = scratch(L, m, sizeof *v);
  for (size_t k = 0; k < m; k++) {
    lua_rawgeti(L, idx, (lua_Integer)k + 1);
    int isint = 0;
    lua_Integer x = lua_tointegerx(L, -1, &isint);
    if (!isint || x < 1 || (n > 0 && (size_t)x > n))
      luaL_error(L, "%s: element %I is %s; expected a unit index in 1..%I", what, LI(k + 1),
                 luaL_tolstring(L, -1, NULL), LI(n));
    v[k] = (size_t)(x - 1);
    lua_pop(L, 1);
  }
  *len = m;
  return v;
}

static char check_style(lua_State *L, int idx) {
  const char *s = luaL_checkstring(L, idx);
  if (strlen(s) != 1 || !strchr("BWCU", s[0]))
    luaL_error(L, "weights: unknown style '%s'; expected \"W\" (row-standardised), \"B\" (raw/binary), "
               "\"C\" (sum n) or \"U\" (sum 1)", s);
  return s[0];
}

/* }====================================================================== */

/* {======================================================================
** Constructors: core._weights.links/knn/distance/economic/combine
** ======================================================================= */

/* links(n, from, to [, values]): from/to arrays of 1-based unit indices. */
static int l_links(lua_State *L) {
  lua_settop(L, 4);  /* scratch buffers go above the arguments */
  size_t n = check_count(L, 1, "weights: n");
  size_t m1, m2, mv = 0;
  size_t *from = check_indices(L, 2, n, &m1, "weights: from");
  size_t *to = check_indices(L, 3, n, &m2, "weights: to");
  double *v = NULL;
  if (!lua_isnoneornil(L, 4)) v = check_vector(L, 4, 0, "weights: values", &mv);
  if (m1 != m2) luaL_error(L, "weights: %I 'from' and %I 'to' units; expected one each per link", LI(m1), LI(m2));
  if (v && mv != m1) luaL_error(L, "weights: %I values for %I links", LI(mv), LI(m1));
  sp_weights **box = push_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_from_links(n, from, to, v, m1, box, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

/* x and y coordinate vectors at 1 and 2 (scratch copies pushed); returns n. */
static size_t coords(lua_State *L, double **x, double **y, const char *what) {
  size_t nx, ny;
  *x = check_vector(L, 1, 0, what, &nx);
  *y = check_vector(L, 2, 0, what, &ny);
  if (nx != ny) luaL_error(L, "%s: %I x values and %I y values", what, LI(nx), LI(ny));
  return nx;
}

static int l_knn(lua_State *L) {
  lua_settop(L, 4);  /* scratch buffers go above the arguments */
  double *x, *y;
  size_t n = coords(L, &x, &y, "weights.knn");
  size_t k = check_count(L, 3, "weights.knn: k");
  int gc = lua_toboolean(L, 4);
  sp_weights **box = push_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_knn(n, x, y, k, gc, box, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

static int l_distance(lua_State *L) {
  lua_settop(L, 5);  /* scratch buffers go above the arguments */
  double *x, *y;
  size_t n = coords(L, &x, &y, "weights.distance");
  double power = luaL_checknumber(L, 3), cutoff = luaL_optnumber(L, 4, 0);
  int gc = lua_toboolean(L, 5);
  sp_weights **box = push_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_distance(n, x, y, power, cutoff, gc, box, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

/* economic(g [, ids]) */
static int l_economic(lua_State *L) {
  lua_settop(L, 2);  /* scratch buffers go above the arguments */
  size_t n;
  double *g = check_vector(L, 1, 0, "weights.economic", &n);
  const char **ids = NULL;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    ids = scratch(L, n, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, 2, (lua_Integer)i + 1);
      ids[i] = lua_tostring(L, -1);  /* anchored by the table; NULL when absent */
      lua_pop(L, 1);
    }
  }
  sp_weights **box = push_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_economic(n, g, ids, box, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

/* combine(A, B, a, b, product) */
static int l_combine(lua_State *L) {
  lua_settop(L, 5);  /* scratch buffers go above the arguments */
  sp_weights *A = sp_lua_check_weights(L, 1), *B = sp_lua_check_weights(L, 2);
  double a = luaL_optnumber(L, 3, 0.5), b = luaL_optnumber(L, 4, 0.5);
  int product = lua_toboolean(L, 5);
  sp_weights **box = push_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_combine(A, B, a, b, product, box, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

/* }====================================================================== */

/* {======================================================================
** Methods
** ======================================================================= */

static int m_n(lua_State *L) {
  lua_pushinteger(L, LI(sp_lua_check_weights(L, 1)->n));
  return 1;
}

static int m_nlinks(lua_State *L) {
  lua_pushinteger(L, LI(sp_lua_check_weights(L, 1)->nnz));
  return 1;
}

static int m_style(lua_State *L) {
  sp_weights *W = sp_lua_check_weights(L, 1);
  char s[2] = {W->style, 0};
  lua_pushstring(L, s);
  lua_pushboolean(L, W->zero_policy);
  return 2;
}

/* W:ids() -> array of strings, or nil when unlabelled. */
static int m_ids(lua_State *L) {
  sp_weights *W = sp_lua_check_weights(L, 1);
  if (W->ids == NULL) { lua_pushnil(L); return 1; }
  lua_createtable(L, W->n > INT32_MAX ? 0 : (int)W->n, 0);
  for (size_t i = 0; i < W->n; i++) {
    lua_pushstring(L, W->ids[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* W:set_ids(array of strings): labels in place (unique). */
static int m_set_ids(lua_State *L) {
  lua_settop(L, 2);  /* scratch buffers go above the arguments */
  sp_weights *W = sp_lua_check_weights(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t m = lua_rawlen(L, 2);
  if (m != W->n) luaL_error(L, "weights: %I ids for %I units; expected one id per unit", LI(m), LI(W->n));
  const char **ids = scratch(L, m, sizeof *ids);
  for (size_t i = 0; i < m; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "weights: id %I is a %s; expected a string", LI(i + 1), luaL_typename(L, -1));
    ids[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_set_ids(W, ids, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_settop(L, 1);
  return 1;
}

/* W:restyle(style [, zero_policy]) -> a new weights object in that style. */
static int m_restyle(lua_State *L) {
  lua_settop(L, 3);  /* scratch buffers go above the arguments */
  sp_weights *W = sp_lua_check_weights(L, 1);
  char style = check_style(L, 2);
  int zp = lua_isnoneornil(L, 3) ? W->zero_policy : lua_toboolean(L, 3);
  sp_weights **box = push_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_copy(W, box, &err) != SP_OK || sp_weights_set_style(*box, style, zp, &err) != SP_OK)
    return sp_lua_error(L, &err);  /* the box owns the copy */
  return 1;
}

/* W:lag(x): x an n x k matrix (each column lagged) or an array; returns n x k. */
static int m_lag(lua_State *L) {
  lua_settop(L, 2);  /* scratch buffers go above the arguments */
  sp_weights *W = sp_lua_check_weights(L, 1);
  gsl_matrix *m = sp_lua_test_matrix(L, 2);
  if (m != NULL && m->size2 > 1 && m->size1 > 1) {
    if (m->size1 != W->n)
      luaL_error(L, "lag: x has %I rows for weights over %I units; expected one row per unit", LI(m->size1), LI(W->n));
    gsl_matrix *out = sp_lua_matrix_new(L, W->n, m->size2);
    for (size_t j = 0; j < m->size2; j++)
      sp_weights_lag_strided(W, m->data + j, m->tda, out->data + j, out->tda);
    return 1;
  }
  size_t n;
  double *x = check_vector(L, 2, W->n, "lag", &n);
  gsl_matrix *out = sp_lua_matrix_new(L, n, 1);
  sp_weights_lag_strided(W, x, 1, out->data, out->tda);
  return 1;
}

/* W:lag_panel(x, T [, order]): x stacked n*T values; order "time" (the
   default: unit i of period t at t*n + i) or "unit" (i*T + t). */
static int m_lag_panel(lua_State *L) {
  lua_settop(L, 4);  /* scratch buffers go above the arguments */
  sp_weights *W = sp_lua_check_weights(L, 1);
  size_t T = check_count(L, 3, "lag_panel: T");
  static const char *const orders[] = {"time", "unit", NULL};
  int order = luaL_checkoption(L, 4, "time", orders);
  size_t len;
  double *x = check_vector(L, 2, 0, "lag_panel", &len);
  if (T == 0 || len % T != 0 || len / T != W->n)  /* not len != n * T, which can wrap */
    luaL_error(L, "lag_panel: x has %I values; expected n x T = %I x %I = %I", LI(len), LI(W->n), LI(T),
               LI(W->n * T));
  gsl_matrix *out = sp_lua_matrix_new(L, len, 1);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_lag_panel(W, x, T, order == 0 ? SP_WORDER_TIME : SP_WORDER_UNIT, out->data, &err) != SP_OK)
    return sp_lua_error(L, &err);
  return 1;
}

static int m_dense(lua_State *L) {
  sp_weights *W = sp_lua_check_weights(L, 1);
  if (W->n > 20000) luaL_error(L, "dense: %I units would need %I x %I doubles", LI(W->n), LI(W->n), LI(W->n));
  gsl_matrix *out = sp_lua_matrix_new(L, W->n, W->n);
  if (W->n) sp_weights_dense(W, out->data);
  return 1;
}

static int m_rowsums(lua_State *L) {
  sp_weights *W = sp_lua_check_weights(L, 1);
  gsl_matrix *out = sp_lua_matrix_new(L, W->n, 1);
  sp_weights_rowsums(W, out->data);
  return 1;
}

/* W:eigenvalues() -> real parts (n x 1, ascending), imaginary parts (n x 1). */
static int m_eigenvalues(lua_State *L) {
  sp_weights *W = sp_lua_check_weights(L, 1);
  gsl_matrix *re = sp_lua_matrix_new(L, W->n, 1);
  gsl_matrix *im = sp_lua_matrix_new(L, W->n, 1);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_eigenvalues(W, re->data, im->data, &err) != SP_OK) return sp_lua_error(L, &err);
  return 2;
}

/* W:traces(kmax [, {reps =, seed =}]) -> array of tr(W^k), k = 1..kmax. */
static int m_traces(lua_State *L) {
  lua_settop(L, 3);  /* scratch buffers go above the arguments */
  sp_weights *W = sp_lua_check_weights(L, 1);
  size_t kmax = check_count(L, 2, "traces: kmax");
  size_t reps = 0;
  lua_Integer seed = 42;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if (lua_getfield(L, 3, "reps") != LUA_TNIL) reps = check_count(L, -1, "traces: reps");  /* -1 would loop 2^64 times */
    if (lua_getfield(L, 3, "seed") != LUA_TNIL) seed = luaL_checkinteger(L, -1);
    lua_pop(L, 2);
  }
  double *out = scratch(L, kmax, sizeof *out);
  sp_error err;
  sp_error_clear(&err);
  int st = reps > 0 ? sp_weights_traces_mc(W, kmax, reps, (uint64_t)seed, out, &err)
                    : sp_weights_traces(W, kmax, out, &err);
  if (st != SP_OK) return sp_lua_error(L, &err);
  lua_createtable(L, (int)(kmax < 1000000 ? kmax : 0), 0);
  for (size_t k = 0; k < kmax; k++) {
    lua_pushnumber(L, out[k]);
    lua_rawseti(L, -2, (lua_Integer)k + 1);
  }
  return 1;
}

static int m_t(lua_State *L) {
  sp_weights *W = sp_lua_check_weights(L, 1);
  sp_weights **box = push_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_transpose(W, box, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

/* W:subset(indices) (1-based, distinct) -> the weights among those units. */
static int m_subset(lua_State *L) {
  lua_settop(L, 2);  /* scratch buffers go above the arguments */
  sp_weights *W = sp_lua_check_weights(L, 1);
  size_t m;
  size_t *idx = check_indices(L, 2, W->n, &m, "subset");
  sp_weights **box = push_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_subset(W, idx, m, box, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

/* W:neighbours(i) -> array of unit indices (1-based), array of weights. */
static int m_neighbours(lua_State *L) {
  sp_weights *W = sp_lua_check_weights(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  if (i < 1 || (size_t)i > W->n) luaL_error(L, "neighbours: unit %I is outside 1..%I", i, LI(W->n));
  size_t a = W->rowptr[i - 1], b = W->rowptr[i];
  lua_createtable(L, (int)(b - a), 0);
  lua_createtable(L, (int)(b - a), 0);
  for (size_t p = a; p < b; p++) {
    lua_pushinteger(L, LI(W->col[p] + 1));
    lua_rawseti(L, -3, LI(p - a + 1));
    lua_pushnumber(L, W->val[p]);
    lua_rawseti(L, -2, LI(p - a + 1));
  }
  return 2;
}

/* W:stats() -> {n, links, card_min, card_max, card_mean, islands = {indices},
   asymmetric, asymmetric_pattern, S0, S1, S2, style, zero_policy}. */
static int m_stats(lua_State *L) {
  sp_weights *W = sp_lua_check_weights(L, 1);
  size_t n = W->n, cmin = (size_t)-1, cmax = 0;
  for (size_t i = 0; i < n; i++) {
    size_t c = W->rowptr[i + 1] - W->rowptr[i];
    if (c < cmin) cmin = c;
    if (c > cmax) cmax = c;
  }
  double S0, S1, S2;
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_moran_sums(W, &S0, &S1, &S2, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_createtable(L, 0, 14);
  lua_pushinteger(L, LI(n)); lua_setfield(L, -2, "n");
  lua_pushinteger(L, LI(W->nnz)); lua_setfield(L, -2, "links");
  lua_pushinteger(L, LI(n ? cmin : 0)); lua_setfield(L, -2, "card_min");
  lua_pushinteger(L, LI(cmax)); lua_setfield(L, -2, "card_max");
  lua_pushnumber(L, n ? (double)W->nnz / (double)n : 0); lua_setfield(L, -2, "card_mean");
  lua_pushnumber(L, n ? (double)W->nnz / ((double)n * (double)n) : 0); lua_setfield(L, -2, "density");
  lua_pushinteger(L, LI(sp_weights_asymmetry(W, 0))); lua_setfield(L, -2, "asymmetric");
  lua_pushinteger(L, LI(sp_weights_asymmetry(W, 1))); lua_setfield(L, -2, "asymmetric_pattern");
  lua_pushnumber(L, S0); lua_setfield(L, -2, "S0");
  lua_pushnumber(L, S1); lua_setfield(L, -2, "S1");
  lua_pushnumber(L, S2); lua_setfield(L, -2, "S2");
  char s[2] = {W->style, 0};
  lua_pushstring(L, s); lua_setfield(L, -2, "style");
  lua_pushboolean(L, W->zero_policy); lua_setfield(L, -2, "zero_policy");
  lua_newtable(L);
  lua_Integer k = 0;
  for (size_t i = 0; i < n; i++)
    if (W->rowptr[i + 1] == W->rowptr[i]) {
      lua_pushinteger(L, LI(i + 1));
      lua_rawseti(L, -2, ++k);
    }
  lua_setfield(L, -2, "islands");
  return 1;
}

static int m_tostring(lua_State *L) {
  lweights *u = luaL_checkudata(L, 1, SP_WEIGHTS_T);
  if (u->W == NULL) { lua_pushliteral(L, "spillover.weights (closed)"); return 1; }
  sp_weights *W = u->W;
  size_t isl = sp_weights_islands(W, NULL, 0), asym = sp_weights_asymmetry(W, 0);
  lua_pushfstring(L, "spillover.weights: %I units, %I links (%f per unit), style %c, %I island%s, %s",
                  LI(W->n), LI(W->nnz), W->n ? (double)W->nnz / (double)W->n : 0.0, W->style, LI(isl),
                  isl == 1 ? "" : "s", asym ? "asymmetric" : "symmetric");
  return 1;
}

/* }====================================================================== */

/* {======================================================================
** Moran kernels: core._weights.moran/moran_perm/local_moran/local_moran_perm
** ======================================================================= */

static int l_moran(lua_State *L) {
  lua_settop(L, 3);  /* scratch buffers go above the arguments */
  sp_weights *W = sp_lua_check_weights(L, 1);
  size_t n;
  double *x = check_vector(L, 2, W->n, "moran", &n);
  int randomisation = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  sp_moran_result r;
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_moran(W, x, randomisation, &r, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_createtable(L, 0, 11);
  lua_pushnumber(L, r.I); lua_setfield(L, -2, "I");
  lua_pushnumber(L, r.expectation); lua_setfield(L, -2, "expectation");
  lua_pushnumber(L, r.variance); lua_setfield(L, -2, "variance");
  lua_pushnumber(L, r.z); lua_setfield(L, -2, "z");
  lua_pushnumber(L, r.pvalue); lua_setfield(L, -2, "pvalue");
  lua_pushnumber(L, r.variance_normal); lua_setfield(L, -2, "variance_normality");
  lua_pushnumber(L, r.variance_random); lua_setfield(L, -2, "variance_randomisation");
  lua_pushnumber(L, r.S0); lua_setfield(L, -2, "S0");
  lua_pushnumber(L, r.S1); lua_setfield(L, -2, "S1");
  lua_pushnumber(L, r.S2); lua_setfield(L, -2, "S2");
  lua_pushnumber(L, r.kurtosis); lua_setfield(L, -2, "kurtosis");
  return 1;
}

/* moran_perm(W, x, nperm, seed) -> pvalue, n x 1 matrix of simulated I */
static int l_moran_perm(lua_State *L) {
  lua_settop(L, 4);  /* scratch buffers go above the arguments */
  sp_weights *W = sp_lua_check_weights(L, 1);
  size_t n;
  double *x = check_vector(L, 2, W->n, "moran", &n);
  size_t nperm = check_count(L, 3, "moran: permutations");
  lua_Integer seed = luaL_checkinteger(L, 4);
  gsl_matrix *sim = sp_lua_matrix_new(L, nperm, 1);
  double p = NAN;
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_moran_perm(W, x, nperm, (uint64_t)seed, sim->data, &p, &err) != SP_OK)
    return sp_lua_error(L, &err);
  lua_pushnumber(L, p);
  lua_insert(L, -2);
  return 2;
}

/* local_moran(W, x) -> Ii, E, Var (n x 1 matrices) */
static int l_local_moran(lua_State *L) {
  lua_settop(L, 2);  /* scratch buffers go above the arguments */
  sp_weights *W = sp_lua_check_weights(L, 1);
  size_t n;
  double *x = check_vector(L, 2, W->n, "local_moran", &n);
  gsl_matrix *I = sp_lua_matrix_new(L, n, 1), *E = sp_lua_matrix_new(L, n, 1), *V = sp_lua_matrix_new(L, n, 1);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_local_moran(W, x, I->data, E->data, V->data, &err) != SP_OK) return sp_lua_error(L, &err);
  return 3;
}

static int l_local_moran_perm(lua_State *L) {
  lua_settop(L, 4);  /* scratch buffers go above the arguments */
  sp_weights *W = sp_lua_check_weights(L, 1);
  size_t n;
  double *x = check_vector(L, 2, W->n, "local_moran", &n);
  size_t nperm = check_count(L, 3, "local_moran: permutations");
  lua_Integer seed = luaL_checkinteger(L, 4);
  gsl_matrix *p = sp_lua_matrix_new(L, n, 1);
  sp_error err;
  sp_error_clear(&err);
  if (sp_weights_local_moran_perm(W, x, nperm, (uint64_t)seed, p->data, &err) != SP_OK)
    return sp_lua_error(L, &err);
  return 1;
}

/* is(v): is v a spillover.weights? */
static int l_is(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, SP_WEIGHTS_T) != NULL);
  return 1;
}

/* }====================================================================== */

static const luaL_Reg metameth[] = {
  {"__gc", l_gc},
  {"__close", l_gc},
  {"__tostring", m_tostring},
  {NULL, NULL}
};

static const luaL_Reg meth[] = {
  {"close", l_gc},
  {"n", m_n},
  {"nlinks", m_nlinks},
  {"style", m_style},
  {"ids", m_ids},
  {"set_ids", m_set_ids},
  {"restyle", m_restyle},
  {"lag", m_lag},
  {"lag_panel", m_lag_panel},
  {"dense", m_dense},
  {"rowsums", m_rowsums},
  {"eigenvalues", m_eigenvalues},
  {"traces", m_traces},
  {"t", m_t},
  {"subset", m_subset},
  {"neighbours", m_neighbours},
  {"stats", m_stats},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"links", l_links},
  {"knn", l_knn},
  {"distance", l_distance},
  {"economic", l_economic},
  {"combine", l_combine},
  {"moran", l_moran},
  {"moran_perm", l_moran_perm},
  {"local_moran", l_local_moran},
  {"local_moran_perm", l_local_moran_perm},
  {"is", l_is},
  {NULL, NULL}
};

void sp_lua_open_weights(lua_State *L) {
  luaL_newmetatable(L, SP_WEIGHTS_T);
  luaL_setfuncs(L, metameth, 0);
  luaL_newlibtable(L, meth);
  luaL_setfuncs(L, meth, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  /* stack: module, metatable, methods */
  luaL_newlib(L, funcs);
  lua_insert(L, -2);
  lua_setfield(L, -2, "methods");  /* spatial.lua adds its Lua methods here */
  lua_setfield(L, -3, "_weights");
  lua_pop(L, 1);
}
