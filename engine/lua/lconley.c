/*
** lconley.c: core.conley_vcov(X, e, bread, opts) -> V, info, the binding of
** conley.h.
**
** X (n x k), e (n x 1) and bread (k x k) are spillover.matrix values; opts:
**   lat, lon   n x 1 matrices of degrees;
**   cutoff     km (> 0);  kernel "uniform" (default) or "bartlett";
**   weights    n x 1 matrix of WLS weights, or nil;
**   time, unit arrays of n integer codes (periods in time order), or nil for
**              a cross-section; lag the serial lag within unit (default 0);
**   factor     the small-sample factor (default 1).
** info = {pairs, serial_pairs, mean_neighbours}.  The code arrays are copied
** into userdata on the stack and V is created before the core runs, so an
** error raised at any point leaks nothing.
*/
#include <math.h>
#include <string.h>

#include "spillover/conley.h"

#include "lsp.h"

static const double *opt_coord(lua_State *L, int opts, const char *field, size_t n, int required) {
  lua_getfield(L, opts, field);
  if (lua_isnil(L, -1) && !required) {
    lua_pop(L, 1);
    return NULL;
  }
  gsl_matrix *m = sp_lua_test_matrix(L, -1);
  if (m == NULL || m->size1 != n || m->size2 != 1 || m->tda != 1)
    sp_lua_errorf(L, "conley_vcov: '%s' must be a contiguous %zu x 1 matrix", field, n);
  lua_pop(L, 1);  /* pinned by opts */
  return m->data;
}

/* opts[field] as n int32 codes in a userdata left on the stack; NULL when nil. */
static const int32_t *opt_codes(lua_State *L, int opts, const char *field, size_t n) {
  if (lua_getfield(L, opts, field) == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1) || lua_rawlen(L, -1) != n)
    sp_lua_errorf(L, "conley_vcov: '%s' must be an array of %zu integer codes", field, n);
  int t = lua_gettop(L);
  int32_t *c = lua_newuserdatauv(L, (n ? n : 1) * sizeof *c, 0);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, t, (lua_Integer)i + 1);
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 0 || v > INT32_MAX)
      sp_lua_errorf(L, "conley_vcov: '%s' entry %zu must be an integer code >= 0", field, i + 1);
    c[i] = (int32_t)v;
    lua_pop(L, 1);
  }
  lua_remove(L, t);
  return c;
}

static int l_conley_vcov(lua_State *L) {
  gsl_matrix *X = sp_lua_check_matrix(L, 1);
  gsl_matrix *e = sp_lua_check_matrix(L, 2);
  gsl_matrix *B = sp_lua_check_matrix(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);
  static const char *const allowed[] = {"lat", "lon", "cutoff", "kernel", "weights", "time", "unit", "lag",
                                       "factor", NULL};
  sp_lua_check_options(L, 4, "conley_vcov", allowed);
  size_t n = X->size1, k = X->size2;
  if (e->size1 != n || e->size2 != 1 || e->tda != 1)
    return sp_lua_errorf(L, "conley_vcov: resid must be a contiguous %zu x 1 vector, got %zu x %zu", n, e->size1,
                         e->size2);
  sp_conley_spec s;
  memset(&s, 0, sizeof s);
  s.lat = opt_coord(L, 4, "lat", n, 1);
  s.lon = opt_coord(L, 4, "lon", n, 1);
  s.weights = opt_coord(L, 4, "weights", n, 0);
  lua_getfield(L, 4, "cutoff");
  s.cutoff = luaL_checknumber(L, -1);
  lua_getfield(L, 4, "kernel");
  const char *kernel = luaL_optstring(L, -1, "uniform");
  if (strcmp(kernel, "uniform") == 0) s.kernel = SP_CONLEY_UNIFORM;
  else if (strcmp(kernel, "bartlett") == 0) s.kernel = SP_CONLEY_BARTLETT;
  else return sp_lua_errorf(L, "conley_vcov: unknown kernel '%s' (expected uniform or bartlett)", kernel);
  lua_getfield(L, 4, "lag");
  s.lag = (long)luaL_optinteger(L, -1, 0);
  lua_getfield(L, 4, "factor");
  s.factor = luaL_optnumber(L, -1, 1.0);
  lua_settop(L, 4);
  s.time = opt_codes(L, 4, "time", n);
  s.unit = opt_codes(L, 4, "unit", n);
  gsl_matrix *V = sp_lua_matrix_new(L, k, k);
  sp_conley_info info;
  sp_error err;
  sp_error_clear(&err);
  if (sp_conley_vcov(X, e->data, B, &s, V, &info, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)info.pairs);
  lua_setfield(L, -2, "pairs");
  lua_pushinteger(L, (lua_Integer)info.serial_pairs);
  lua_setfield(L, -2, "serial_pairs");
  lua_pushnumber(L, info.mean_neighbours);
  lua_setfield(L, -2, "mean_neighbours");
  return 2;
}

void sp_lua_open_conley(lua_State *L) {
  lua_pushcfunction(L, l_conley_vcov);
  lua_setfield(L, -2, "conley_vcov");
}
