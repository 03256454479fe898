/*
** llp.c: core.lp_batch(spec), the binding of lp.h.
**
** spec: A (m x n matrix), sense (a string of m characters L, G, E), rhs, obj,
** lb, ub (matrices with m or n entries, or nil), maximize, count (problems;
** read from the per-problem matrices when absent), varcols (1-based column
** indices) with colval (count x (#varcols * m): the columns of each problem
** side by side) and varobj (count x #varcols: their objective coefficients),
** prob_rhs (count x m), fix0 (count
** 1-based column indices fixed at 0, 0 for none), threads, keep (1-based
** columns to return in x; default all).
**
** Returns {x = count x n (or count x #keep), dual = count x m, value = count x 1 matrices,
** status = array of "optimal" | "infeasible" | "unbounded" | "failed"}.
** Every buffer is a userdata created before the solve, so raising while the
** result is built leaks nothing.
*/
#include <string.h>

#include "spillover/lp.h"

#include "lsp.h"

static const char *const spec_keys[] = {"A", "sense", "rhs", "obj", "lb", "ub", "maximize", "count", "varcols",
                                        "colval", "varobj", "prob_rhs", "fix0", "threads", "keep", NULL};

/* The contiguous row-major values of the matrix field k of spec (index 1),
   checked to hold `len` entries; NULL when the field is nil and optional.
   A view with a row stride is copied into a userdata left on the stack. */
static const double *field_values(lua_State *L, const char *k, size_t len, int required) {
  if (lua_getfield(L, 1, k) == LUA_TNIL) {
    lua_pop(L, 1);
    if (required) sp_lua_errorf(L, "lp_batch: '%s' is required", k);
    return NULL;
  }
  gsl_matrix *M = sp_lua_test_matrix(L, -1);
  if (!M) sp_lua_errorf(L, "lp_batch: '%s' must be a matrix", k);
  if (M->size1 * M->size2 != len)
    sp_lua_errorf(L, "lp_batch: '%s' has %zu entries (expected %zu)", k, M->size1 * M->size2, len);
  if (len == 0 || M->tda == M->size2) return M->data;  /* pinned by spec */
  double *c = lua_newuserdatauv(L, len * sizeof(double), 0);
  for (size_t i = 0; i < M->size1; i++) memcpy(c + i * M->size2, M->data + i * M->tda, M->size2 * sizeof(double));
  return c;
}

static size_t field_rows(lua_State *L, const char *k) {
  size_t r = 0;
  if (lua_getfield(L, 1, k) != LUA_TNIL) {
    gsl_matrix *M = sp_lua_test_matrix(L, -1);
    if (!M) sp_lua_errorf(L, "lp_batch: '%s' must be a matrix", k);
    r = M->size1;
  }
  lua_pop(L, 1);
  return r;
}

static int l_lp_batch(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkstack(L, 40, "lp_batch");
  sp_lua_check_options(L, 1, "lp_batch", spec_keys);
  lua_settop(L, 1);
  if (lua_getfield(L, 1, "A") == LUA_TNIL) sp_lua_errorf(L, "lp_batch: 'A' is required");
  gsl_matrix *Am = sp_lua_test_matrix(L, -1);
  if (!Am) sp_lua_errorf(L, "lp_batch: 'A' must be a matrix");
  lua_pop(L, 1);
  sp_lp_batch b;
  memset(&b, 0, sizeof b);
  b.m = Am->size1;
  b.n = Am->size2;
  b.A = field_values(L, "A", b.m * b.n, 1);
  lua_getfield(L, 1, "sense");
  size_t slen;
  b.sense = luaL_checklstring(L, -1, &slen);  /* pinned by spec */
  if (slen != b.m) sp_lua_errorf(L, "lp_batch: 'sense' has %zu characters (expected %zu, one per row of A)", slen, b.m);
  b.rhs = field_values(L, "rhs", b.m, 0);
  b.obj = field_values(L, "obj", b.n, 0);
  b.lb = field_values(L, "lb", b.n, 0);
  b.ub = field_values(L, "ub", b.n, 0);
  lua_getfield(L, 1, "maximize");
  b.maximize = lua_toboolean(L, -1);
  lua_getfield(L, 1, "threads");
  lua_Integer th = luaL_optinteger(L, -1, 1);
  if (th < 1 || th > 256) sp_lua_errorf(L, "lp_batch: threads is %lld (expected 1..256)", (long long)th);
  b.threads = (int)th;
  lua_getfield(L, 1, "count");
  if (lua_isnil(L, -1)) {
    size_t c = field_rows(L, "colval");
    if (!c) c = field_rows(L, "prob_rhs");
    if (!c && lua_getfield(L, 1, "fix0") == LUA_TTABLE) c = (size_t)lua_rawlen(L, -1);
    b.count = c ? c : 1;  /* no per-problem data: one LP */
  } else {
    lua_Integer c = luaL_checkinteger(L, -1);
    if (c < 0) sp_lua_errorf(L, "lp_batch: count is %lld (expected >= 0)", (long long)c);
    b.count = (size_t)c;
  }
  lua_getfield(L, 1, "varcols");
  if (!lua_isnil(L, -1)) {
    luaL_checktype(L, -1, LUA_TTABLE);
    b.nvar = (size_t)lua_rawlen(L, -1);
    size_t *vc = lua_newuserdatauv(L, (b.nvar ? b.nvar : 1) * sizeof(size_t), 0);
    for (size_t k = 0; k < b.nvar; k++) {
      lua_rawgeti(L, -2, (lua_Integer)k + 1);
      lua_Integer j = lua_tointeger(L, -1);
      if (j < 1 || (size_t)j > b.n) sp_lua_errorf(L, "lp_batch: varcols[%zu] must be a column index in 1..%zu", k + 1, b.n);
      vc[k] = (size_t)j - 1;
      lua_pop(L, 1);
    }
    b.varcol = vc;
    b.colval = field_values(L, "colval", b.count * b.nvar * b.m, b.nvar > 0);
    b.varobj = field_values(L, "varobj", b.count * b.nvar, 0);
  }
  b.prob_rhs = field_values(L, "prob_rhs", b.count * b.m, 0);
  if (lua_getfield(L, 1, "fix0") != LUA_TNIL) {
    luaL_checktype(L, -1, LUA_TTABLE);
    if ((size_t)lua_rawlen(L, -1) != b.count)
      sp_lua_errorf(L, "lp_batch: 'fix0' has %zu entries (expected %zu)", (size_t)lua_rawlen(L, -1), b.count);
    long *fx = lua_newuserdatauv(L, (b.count ? b.count : 1) * sizeof(long), 0);
    for (size_t p = 0; p < b.count; p++) {
      lua_rawgeti(L, -2, (lua_Integer)p + 1);
      lua_Integer j = lua_tointeger(L, -1);
      if (j < 0 || (size_t)j > b.n) sp_lua_errorf(L, "lp_batch: fix0[%zu] must be 0 or a column index in 1..%zu", p + 1, b.n);
      fx[p] = (long)j - 1;
      lua_pop(L, 1);
    }
    b.fix0 = fx;
  }

  size_t *keep = NULL, nkeep = b.n;
  if (lua_getfield(L, 1, "keep") != LUA_TNIL) {
    luaL_checktype(L, -1, LUA_TTABLE);
    nkeep = (size_t)lua_rawlen(L, -1);
    keep = lua_newuserdatauv(L, (nkeep ? nkeep : 1) * sizeof(size_t), 0);
    for (size_t q = 0; q < nkeep; q++) {
      lua_rawgeti(L, -2, (lua_Integer)q + 1);
      lua_Integer j = lua_tointeger(L, -1);
      if (j < 1 || (size_t)j > b.n) sp_lua_errorf(L, "lp_batch: keep[%zu] must be a column index in 1..%zu", q + 1, b.n);
      keep[q] = (size_t)j - 1;
      lua_pop(L, 1);
    }
  }

  /* Owners of the results, then the solve. */
  lua_createtable(L, 0, 4);
  int out = lua_gettop(L);
  gsl_matrix *x = sp_lua_matrix_new(L, b.count, nkeep);
  lua_setfield(L, out, "x");
  gsl_matrix *dual = sp_lua_matrix_new(L, b.count, b.m);
  lua_setfield(L, out, "dual");
  gsl_matrix *value = sp_lua_matrix_new(L, b.count, 1);
  lua_setfield(L, out, "value");
  int *status = lua_newuserdatauv(L, (b.count ? b.count : 1) * sizeof(int), 0);
  sp_lp_result res = {.x = x->data, .keep = keep, .nkeep = keep ? nkeep : 0, .dual = dual->data, .value = value->data,
                      .status = status};
  sp_error err;
  sp_error_clear(&err);
  if (sp_lp_solve_batch(&b, &res, &err)) return sp_lua_error(L, &err);
  lua_createtable(L, (int)b.count, 0);
  for (size_t p = 0; p < b.count; p++) {
    lua_pushstring(L, sp_lp_status_name(status[p]));
    lua_rawseti(L, -2, (lua_Integer)p + 1);
  }
  lua_setfield(L, out, "status");
  lua_pushvalue(L, out);
  return 1;
}

void sp_lua_open_lp(lua_State *L) {
  lua_pushcfunction(L, l_lp_batch);
  lua_setfield(L, -2, "lp_batch");
}
