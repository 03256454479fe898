/*
** lmpi.c: core.mpi, the binding of dist.h (lua/spillover/mpi.lua is the API, sp.mpi).
**
**   mpi.rank(), mpi.size()     this process and the job's processes (0 and 1
**                                 without MPI or without a launcher)
**   mpi.built                    true when built with MPI
**   mpi.sum(x), mpi.max(x)      x a number, an array of numbers or a matrix,
**                                 reduced over the ranks (a new value)
**   mpi.allgather(x)             an array (or a matrix, read row by row) of
**                                 every rank, concatenated in rank order
**   mpi.levels(des, name)        the sorted distinct values of the design's
**                                 numeric extra variable name (its periods)
**   mpi.demean(des, M, entity, period, levels [, {tol, maxiter}]) -> sweeps
**                                 two-way demeaning of M in place (mpi.h);
**                                 period and levels nil for one-way
**   mpi.links(des, entity, period, levels) -> parent, seen (0-based arrays)
**
** MPI starts on the first call (sp_dist_start) and stops when the Lua state
** closes: a sentinel in the registry has a __gc that finalises it, so a
** script that ends, or fails, leaves the job as MPI requires.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/dist.h"

#include "ldesign.h"
#include "ldist.h"
#include "lsp.h"

#define SENTINEL "spillover.mpi.sentinel"

static int sentinel_gc(lua_State *L) {
  (void)L;
  sp_dist_stop();
  return 0;
}

static void start(lua_State *L) {
  sp_error err;
  sp_error_clear(&err);
  if (sp_dist_start(&err) != SP_OK) sp_lua_error(L, &err);
  if (lua_getfield(L, LUA_REGISTRYINDEX, SENTINEL) == LUA_TNIL) {
    lua_newuserdatauv(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, sentinel_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, SENTINEL);
  }
  lua_pop(L, 1);
}

static int l_rank(lua_State *L) {
  start(L);
  lua_pushinteger(L, sp_dist_rank());
  return 1;
}

static int l_size(lua_State *L) {
  start(L);
  lua_pushinteger(L, sp_dist_size());
  return 1;
}

/* The numbers of x (number, array or matrix) in a userdata left on the stack. */
static double *numbers_of(lua_State *L, int idx, size_t *n, const char *fn) {
  gsl_matrix *m = sp_lua_test_matrix(L, idx);
  double *buf;
  if (m != NULL) {
    *n = m->size1 * m->size2;
    buf = lua_newuserdatauv(L, (*n ? *n : 1) * sizeof *buf, 0);
    for (size_t i = 0; i < m->size1; i++)
      for (size_t j = 0; j < m->size2; j++) buf[i * m->size2 + j] = gsl_matrix_get(m, i, j);
  } else if (lua_type(L, idx) == LUA_TNUMBER) {
    *n = 1;
    buf = lua_newuserdatauv(L, sizeof *buf, 0);
    buf[0] = lua_tonumber(L, idx);
  } else if (lua_istable(L, idx)) {
    *n = (size_t)lua_rawlen(L, idx);
    buf = lua_newuserdatauv(L, (*n ? *n : 1) * sizeof *buf, 0);
    for (size_t i = 0; i < *n; i++) {
      if (lua_rawgeti(L, idx, (lua_Integer)i + 1) != LUA_TNUMBER)
        sp_lua_errorf(L, "%s: entry %zu must be a number, got %s", fn, i + 1, luaL_typename(L, -1));
      buf[i] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
  } else {
    sp_lua_errorf(L, "%s: expected a number, an array of numbers or a matrix, got %s", fn, luaL_typename(L, idx));
    return NULL;
  }
  return buf;
}

/* Push the reduced values in the shape of x at idx. */
static void push_like(lua_State *L, int idx, const double *buf, size_t n) {
  gsl_matrix *m = sp_lua_test_matrix(L, idx);
  if (m != NULL) {
    gsl_matrix *out = sp_lua_matrix_new(L, m->size1, m->size2);
    for (size_t i = 0; i < m->size1; i++)
      for (size_t j = 0; j < m->size2; j++) gsl_matrix_set(out, i, j, buf[i * m->size2 + j]);
  } else if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_pushnumber(L, buf[0]);
  } else {
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
      lua_pushnumber(L, buf[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  }
}

static int reduce(lua_State *L, int is_max) {
  start(L);
  size_t n = 0;
  double *buf = numbers_of(L, 1, &n, is_max ? "mpi.max" : "mpi.sum");
  sp_error err;
  sp_error_clear(&err);
  if ((is_max ? sp_dist_max(buf, n, &err) : sp_dist_sum(buf, n, &err)) != SP_OK) return sp_lua_error(L, &err);
  push_like(L, 1, buf, n);
  return 1;
}

static int l_sum(lua_State *L) { return reduce(L, 0); }
static int l_max(lua_State *L) { return reduce(L, 1); }

static int l_allgather(lua_State *L) {
  start(L);
  size_t n = 0, total = 0;
  double *buf = numbers_of(L, 1, &n, "mpi.allgather"), *all = NULL;
  sp_error err;
  sp_error_clear(&err);
  if (sp_dist_allgatherv(buf, n, &all, &total, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_createtable(L, total > INT32_MAX ? 0 : (int)total, 0);
  for (size_t i = 0; i < total; i++) {
    lua_pushnumber(L, all[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(all);
  return 1;
}

static const sp_design_factor *factor_of(lua_State *L, sp_design *des, int idx, const char *fn) {
  const char *name = luaL_checkstring(L, idx);
  const sp_design_factor *f = sp_design_factor_find(des, name);
  if (f == NULL) sp_lua_errorf(L, "%s: the design has no fixed effect or extra variable '%s'", fn, name);
  return f;
}

/* The values of the numeric extra variable name of the design (a fixed
   effect of the same name has codes but no values). */
static const double *numeric_of(lua_State *L, sp_design *des, int idx, const char *fn) {
  const char *name = luaL_checkstring(L, idx);
  for (size_t i = 0; i < des->nextra; i++)
    if (strcmp(des->extra[i].name, name) == 0 && sp_design_factor_numeric(des, &des->extra[i])) {
      sp_error err;
      sp_error_clear(&err);
      const double *v = sp_design_factor_values(des, &des->extra[i], &err);
      if (v == NULL) sp_lua_error(L, &err);
      return v;
    }
  sp_lua_errorf(L, "%s: '%s' is not a numeric extra variable of the design (sp.design(..., {extra = {\"%s\"}}))", fn,
                name, name);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int l_levels(lua_State *L) {
  sp_design *des = sp_lua_check_design(L, 1);
  const double *x = numeric_of(L, des, 2, "mpi.levels");
  double *v = lua_newuserdatauv(L, (des->n ? des->n : 1) * sizeof *v, 0);
  memcpy(v, x, des->n * sizeof *v);
  qsort(v, des->n, sizeof *v, cmp_double);
  lua_createtable(L, 0, 0);
  size_t m = 0;
  for (size_t i = 0; i < des->n; i++) {
    if (i > 0 && v[i] == v[i - 1]) continue;
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, (lua_Integer)++m);
  }
  return 1;
}

/* The rows' period codes in the global numbering levels (a sorted array at
   idx), in a userdata left on the stack; *nlev gets the number of levels. */
static int32_t *period_codes(lua_State *L, sp_design *des, const double *x, int idx, size_t *nlev,
                             const char *fn) {
  luaL_checktype(L, idx, LUA_TTABLE);
  *nlev = (size_t)lua_rawlen(L, idx);
  double *lev = lua_newuserdatauv(L, (*nlev ? *nlev : 1) * sizeof *lev, 0);
  for (size_t i = 0; i < *nlev; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    lev[i] = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (i > 0 && !(lev[i] > lev[i - 1])) sp_lua_errorf(L, "%s: the period levels must be increasing", fn);
  }
  int32_t *code = lua_newuserdatauv(L, (des->n ? des->n : 1) * sizeof *code, 0);
  for (size_t r = 0; r < des->n; r++) {
    double *hit = bsearch(&x[r], lev, *nlev, sizeof *lev, cmp_double);
    if (hit == NULL) sp_lua_errorf(L, "%s: period %.17g of row %zu is not among the levels", fn, x[r], r + 1);
    code[r] = (int32_t)(hit - lev);
  }
  lua_remove(L, -2);
  return code;
}

static int l_demean(lua_State *L) {
  start(L);
  sp_design *des = sp_lua_check_design(L, 1);
  gsl_matrix *M = sp_lua_check_matrix(L, 2);
  const sp_design_factor *ent = factor_of(L, des, 3, "mpi.demean");
  if (M->size1 != des->n) sp_lua_errorf(L, "mpi.demean: the matrix has %zu rows, the design %zu", M->size1, des->n);
  int32_t *period = NULL;
  size_t nperiod = 0;
  if (!lua_isnoneornil(L, 4)) period = period_codes(L, des, numeric_of(L, des, 4, "mpi.demean"), 5, &nperiod, "mpi.demean");
  double tol = 1e-10;
  lua_Integer maxiter = 10000;
  if (lua_istable(L, 6)) {
    static const char *const allowed[] = {"tol", "maxiter", NULL};
    sp_lua_check_options(L, 6, "mpi.demean", allowed);
    if (lua_getfield(L, 6, "tol") != LUA_TNIL) tol = luaL_checknumber(L, -1);
    if (lua_getfield(L, 6, "maxiter") != LUA_TNIL) maxiter = luaL_checkinteger(L, -1);
    lua_pop(L, 2);
    if (!(tol > 0) || maxiter < 1) sp_lua_errorf(L, "mpi.demean: tol must be > 0 and maxiter >= 1");
  }
  size_t iters = 0;
  sp_error err;
  sp_error_clear(&err);
  if (sp_dist_demean2(M->data, M->size1, M->size2, M->tda, ent->code, ent->nlevels, period, nperiod, tol,
                      (size_t)maxiter, &iters, &err) != SP_OK)
    return sp_lua_error(L, &err);
  lua_pushinteger(L, (lua_Integer)iters);
  return 1;
}

static int l_links(lua_State *L) {
  start(L);
  sp_design *des = sp_lua_check_design(L, 1);
  const sp_design_factor *ent = factor_of(L, des, 2, "mpi.links");
  size_t nperiod = 0;
  int32_t *period = period_codes(L, des, numeric_of(L, des, 3, "mpi.links"), 4, &nperiod, "mpi.links");
  int32_t *parent = lua_newuserdatauv(L, (nperiod ? nperiod : 1) * (sizeof *parent + 1), 0);
  unsigned char *seen = (unsigned char *)(parent + nperiod);
  sp_error err;
  sp_error_clear(&err);
  if (sp_dist_period_links(des->n, ent->code, ent->nlevels, period, nperiod, parent, seen, &err) != SP_OK)
    return sp_lua_error(L, &err);
  lua_createtable(L, (int)nperiod, 0);
  lua_createtable(L, (int)nperiod, 0);
  for (size_t t = 0; t < nperiod; t++) {
    lua_pushinteger(L, parent[t]);
    lua_rawseti(L, -3, (lua_Integer)t + 1);
    lua_pushboolean(L, seen[t]);
    lua_rawseti(L, -2, (lua_Integer)t + 1);
  }
  return 2;
}

void sp_lua_open_dist(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"rank", l_rank}, {"size", l_size}, {"sum", l_sum}, {"max", l_max}, {"allgather", l_allgather},
    {"levels", l_levels}, {"demean", l_demean}, {"links", l_links}, {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_pushboolean(L, sp_dist_mpi_built());
  lua_setfield(L, -2, "built");
  lua_setfield(L, -2, "mpi");
}
