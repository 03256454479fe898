/*
** lqp.c: core.qp_simplex(D [, v]), the binding of qp.h.
**
** D: a J x K spillover.matrix whose rows are the points; v (optional): an
** array of K finite weights >= 0, which scale coordinate k by sqrt(v[k]) (the
** synthetic control's V).  Returns the weights w (w >= 0, sum 1) minimising
** || sum_j w_j p_j ||^2 as an array, and that squared norm.  The scaled
** points and the weights live in matrix userdata that Lua owns, and the core
** frees its own workspace before returning, so raising leaks nothing.
*/
#include <math.h>

#include "spillover/qp.h"

#include "lqp.h"
#include "lsp.h"

static int l_qp_simplex(lua_State *L) {
  gsl_matrix *D = sp_lua_check_matrix(L, 1);
  size_t J = D->size1, K = D->size2;
  int has_v = !lua_isnoneornil(L, 2);
  lua_settop(L, 2);  /* the scratch matrices pushed below go to 3 and 4 */
  if (has_v) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_rawlen(L, 2) != K)
      return sp_lua_errorf(L, "qp_simplex: v has %zu entries for %zu columns of D (expected one per column)",
                           (size_t)lua_rawlen(L, 2), K);
    for (size_t k = 1; k <= K; k++) {
      lua_rawgeti(L, 2, (lua_Integer)k);
      int isnum = 0;
      double v = lua_tonumberx(L, -1, &isnum);
      if (!isnum || !(v >= 0.0) || !isfinite(v))
        return sp_lua_errorf(L, "qp_simplex: v[%zu] must be a finite number >= 0", k);
      lua_pop(L, 1);
    }
  }
  gsl_matrix *P = sp_lua_matrix_new(L, J, K);
  gsl_matrix *w = sp_lua_matrix_new(L, J, 1);
  for (size_t k = 0; k < K; k++) {
    double s = 1.0;
    if (has_v) {
      lua_rawgeti(L, 2, (lua_Integer)k + 1);
      s = sqrt(lua_tonumber(L, -1));
      lua_pop(L, 1);
    }
    for (size_t j = 0; j < J; j++) gsl_matrix_set(P, j, k, s * gsl_matrix_get(D, j, k));
  }
  sp_error e;
  sp_error_clear(&e);
  double norm2 = 0.0;
  if (sp_qp_simplex(P->data, J, K, w->data, &norm2, &e) != SP_OK) return sp_lua_error(L, &e);
  lua_createtable(L, (int)J, 0);
  for (size_t j = 0; j < J; j++) {
    lua_pushnumber(L, w->data[j]);
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  lua_pushnumber(L, norm2);
  return 2;
}

void sp_lua_open_qp(lua_State *L) {
  lua_pushcfunction(L, l_qp_simplex);
  lua_setfield(L, -2, "qp_simplex");
}
