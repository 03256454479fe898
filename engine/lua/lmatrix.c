/*
** lmatrix.c: the spillover.matrix userdata.
**
** Storage we allocate lives inside the userdata (LPeg's newtree), so the
** collector sees its true size and nothing needs freeing.  A view shares its
** parent's storage and pins the parent in user value 1.  Results that GSL
** allocated itself are kept in `owned` and freed by __gc.
*/
#include <string.h>

#include "lsp.h"

typedef struct {
  gsl_matrix m;        /* header; m.data points into data[], a parent, or owned */
  gsl_matrix *owned;   /* GSL-allocated storage to free in __gc, or NULL */
  double data[];       /* storage when allocated here */
} lmatrix;

gsl_matrix *sp_lua_matrix_new(lua_State *L, size_t rows, size_t cols) {
  size_t n = rows * cols;
  if (cols != 0 && n / cols != rows) luaL_error(L, "matrix of %zu x %zu is too large", rows, cols);
  lmatrix *u = lua_newuserdatauv(L, offsetof(lmatrix, data) + n * sizeof(double), 1);
  memset(&u->m, 0, sizeof u->m);
  u->owned = NULL;
  u->m.size1 = rows;
  u->m.size2 = cols;
  u->m.tda = cols;
  u->m.data = n ? u->data : NULL;
  u->m.owner = 0;
  luaL_setmetatable(L, SP_MATRIX_T);
  return &u->m;
}

gsl_matrix *sp_lua_test_matrix(lua_State *L, int idx) {
  lmatrix *u = luaL_testudata(L, idx, SP_MATRIX_T);
  return u ? &u->m : NULL;
}

gsl_matrix *sp_lua_check_matrix(lua_State *L, int idx) {
  lmatrix *u = luaL_checkudata(L, idx, SP_MATRIX_T);
  return &u->m;
}

static int l_gc(lua_State *L) {
  lmatrix *u = luaL_checkudata(L, 1, SP_MATRIX_T);
  if (u->owned != NULL) {
    gsl_matrix_free(u->owned);
    u->owned = NULL;
  }
  return 0;
}

static int l_shape(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  lua_pushinteger(L, (lua_Integer)m->size1);
  lua_pushinteger(L, (lua_Integer)m->size2);
  return 2;
}

static const luaL_Reg metameth[] = {
  {"__gc", l_gc},
  {"__close", l_gc},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg meth[] = {
  {"shape", l_shape},
  {NULL, NULL}
};

void sp_lua_open_matrix(lua_State *L) {
  luaL_newmetatable(L, SP_MATRIX_T);
  luaL_setfuncs(L, metameth, 0);
  luaL_newlibtable(L, meth);
  luaL_setfuncs(L, meth, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
