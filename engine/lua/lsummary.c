/*
** lsummary.c: core.summary and core.quantile, the binding of summary.h.
**
** core.summary(opts) -> rows, cells.  opts:
**   b0, b1     the baseline and scenario predictions (model scale): arrays of
**              n numbers or n x 1 matrices;
**   draws      an array of columns (arrays or n x 1 matrices), column r the
**              effect of every row under draw r; nil or {} for none;
**   level      of the intervals (default 0.95);
**   scale      nil (the model's scale only) or {fn = "identity" | "log" |
**              "log1p" | "asinh", factor = the back-transform's factor
**              (default 1), shift = its shift (asinh; default 0)};
**   den0, den1 the rows' denominators at baseline and in the scenario (nil: 1);
**   cells      an array of cells, each an array of 1-based row numbers in the
**              order their values are summed;
**   unitwise   nil or "sum" (none), "mean_pct" or "weighted" (with scale);
**   units      then an array of n positive integers, row i's unit;
**   weights    an array of n weights (nil: 1), for "weighted".
** rows = {level_baseline, level_scenario (with scale), lo, hi, and with scale
** level_lo, level_hi (with draws)}, each an array of n numbers; cells[c] =
** {sum, and with scale change, base, with unitwise up; with draws sum_lo,
** sum_hi, change_lo, change_hi, up_lo, up_hi likewise} (summary.h).
**
** Every input is copied into userdata on the stack and the outputs are
** userdata too, all before the core runs: an error raised while reading the
** options leaks nothing, and the core frees its work space before it
** returns.
*/
#include <string.h>

#include "lsp.h"
#include "lsummary.h"
#include "spillover/frame_ops.h"
#include "spillover/summary.h"

/* Entry k (1-based) of the array at idx as a number, or raise "fn: what
   entry k is not a number". */
static double entry(lua_State *L, int idx, size_t k, const char *fn, const char *what) {
  lua_rawgeti(L, idx, (lua_Integer)k);
  int ok = 0;
  double v = (double)lua_tonumberx(L, -1, &ok);
  if (!ok) sp_lua_errorf(L, "%s: %s entry %zu is not a number", fn, what, k);
  lua_pop(L, 1);
  return v;
}

/* The value at idx (an array of numbers or an n x 1 matrix) into out[0],
   out[stride], ..., out[(n - 1) stride]; *n is its length when SIZE_MAX. */
static void read_column(lua_State *L, int idx, size_t *n, double *out, size_t stride, const char *what) {
  gsl_matrix *m = sp_lua_test_matrix(L, idx);
  if (m != NULL) {
    if (m->size2 != 1 || (*n != SIZE_MAX && m->size1 != *n))
      sp_lua_errorf(L, "summary: %s must be %zu x 1, got %zu x %zu", what, *n == SIZE_MAX ? m->size1 : *n, m->size1,
                    m->size2);
    *n = m->size1;
    if (out != NULL)
      for (size_t i = 0; i < m->size1; i++) out[i * stride] = m->data[i * m->tda];
    return;
  }
  if (!lua_istable(L, idx)) sp_lua_errorf(L, "summary: %s must be an array of numbers or a column matrix", what);
  size_t len = lua_rawlen(L, idx);
  if (*n != SIZE_MAX && len != *n) sp_lua_errorf(L, "summary: %s has %zu entries (expected %zu)", what, len, *n);
  *n = len;
  if (out != NULL)
    for (size_t i = 0; i < len; i++) out[i * stride] = entry(L, idx, i + 1, "summary", what);
}

/* A new userdata of count elements of size bytes, left on the stack. */
static void *buffer(lua_State *L, size_t count, size_t size) {
  luaL_checkstack(L, 2, "summary");
  return lua_newuserdatauv(L, (count ? count : 1) * size, 0);
}

/* opts[field] as n doubles in a userdata left on the stack, or NULL when nil. */
static const double *opt_vector(lua_State *L, const char *field, size_t n) {
  if (lua_getfield(L, 1, field) == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  double *v = buffer(L, n, sizeof *v);
  read_column(L, -2, &n, v, 1, field);
  lua_remove(L, -2);
  return v;
}

/* The draws as an n x R row-major matrix in a userdata left on the stack. */
static const double *read_draws(lua_State *L, size_t n, size_t *R) {
  *R = 0;
  if (lua_getfield(L, 1, "draws") == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  luaL_argexpected(L, lua_istable(L, -1), 1, "draws: an array of columns");
  int t = lua_gettop(L);
  *R = lua_rawlen(L, t);
  double *d = buffer(L, n * *R, sizeof *d);
  for (size_t r = 0; r < *R; r++) {
    lua_rawgeti(L, t, (lua_Integer)r + 1);
    size_t len = n;
    read_column(L, -1, &len, d + r, *R, "a draw");
    lua_pop(L, 1);
  }
  lua_remove(L, t);
  return d;
}

/* The cells as CSR (0-based rows), two userdata left on the stack. */
static void read_cells(lua_State *L, size_t n, sp_summary_in *in) {
  lua_getfield(L, 1, "cells");
  int t = lua_gettop(L);
  size_t ncell = 0, total = 0;
  if (!lua_isnil(L, t)) {
    luaL_argexpected(L, lua_istable(L, t), 1, "cells: an array of arrays of row numbers");
    ncell = lua_rawlen(L, t);
    for (size_t c = 0; c < ncell; c++) {
      if (lua_rawgeti(L, t, (lua_Integer)c + 1) != LUA_TTABLE) sp_lua_errorf(L, "summary: cell %zu is not an array", c + 1);
      total += lua_rawlen(L, -1);
      lua_pop(L, 1);
    }
  }
  size_t *start = buffer(L, ncell + 1, sizeof *start);
  size_t *rows = buffer(L, total, sizeof *rows);
  start[0] = 0;
  for (size_t c = 0; c < ncell; c++) {
    lua_rawgeti(L, t, (lua_Integer)c + 1);
    size_t k = lua_rawlen(L, -1);
    for (size_t j = 0; j < k; j++) {
      lua_rawgeti(L, -1, (lua_Integer)j + 1);
      int ok = 0;
      lua_Integer i = lua_tointegerx(L, -1, &ok);
      if (!ok || i < 1 || (lua_Unsigned)i > n)
        sp_lua_errorf(L, "summary: cell %zu entry %zu must be a row number from 1 to %zu", c + 1, j + 1, n);
      rows[start[c] + j] = (size_t)i - 1;
      lua_pop(L, 1);
    }
    start[c + 1] = start[c] + k;
    lua_pop(L, 1);
  }
  lua_remove(L, t);
  in->ncell = ncell;
  in->cell_start = start;
  in->cell_rows = rows;
}

/* opts.units as 0-based codes in a userdata left on the stack; in->nunit. */
static void read_units(lua_State *L, size_t n, sp_summary_in *in) {
  lua_getfield(L, 1, "units");
  int t = lua_gettop(L);
  if (!lua_istable(L, t) || lua_rawlen(L, t) != n)
    sp_lua_errorf(L, "summary: unit-wise means need 'units', an array of %zu unit numbers", n);
  size_t *u = buffer(L, n, sizeof *u);
  in->nunit = 0;
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, t, (lua_Integer)i + 1);
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 1) sp_lua_errorf(L, "summary: units entry %zu must be a positive integer", i + 1);
    u[i] = (size_t)v - 1;
    in->nunit = u[i] + 1 > in->nunit ? u[i] + 1 : in->nunit;
    lua_pop(L, 1);
  }
  lua_remove(L, t);
  in->unit = u;
}

static void set_array(lua_State *L, const char *field, const sp_summary_row *rows, size_t n, size_t offset) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushnumber(L, *(const double *)((const char *)(rows + i) + offset));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, field);
}

static void set_number(lua_State *L, const char *field, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, field);
}

static int l_summary(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  static const char *const allowed[] = {"b0", "b1", "draws", "level", "scale", "den0", "den1", "cells", "unitwise",
                                       "units", "weights", NULL};
  sp_lua_check_options(L, 1, "summary", allowed);
  sp_summary_in in;
  memset(&in, 0, sizeof in);
  size_t n = SIZE_MAX;
  lua_getfield(L, 1, "b0");
  read_column(L, -1, &n, NULL, 1, "b0");
  lua_pop(L, 1);
  in.n = n;
  in.b0 = opt_vector(L, "b0", n);
  in.b1 = opt_vector(L, "b1", n);
  if (in.b1 == NULL) return luaL_error(L, "summary: 'b1' is missing");
  in.draws = read_draws(L, n, &in.ndraws);
  lua_getfield(L, 1, "level");
  in.level = luaL_optnumber(L, -1, 0.95);
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "scale") != LUA_TNIL) {
    luaL_argexpected(L, lua_istable(L, -1), 1, "scale: a table {fn =, factor =}");
    lua_getfield(L, -1, "fn");
    const char *fn = luaL_optstring(L, -1, "identity");
    if (strcmp(fn, "identity") == 0) in.scale.fn = SP_SUMMARY_IDENTITY;
    else if (strcmp(fn, "log") == 0) in.scale.fn = SP_SUMMARY_LOG;
    else if (strcmp(fn, "log1p") == 0) in.scale.fn = SP_SUMMARY_LOG1P;
    else if (strcmp(fn, "asinh") == 0) in.scale.fn = SP_SUMMARY_ASINH;
    else return luaL_error(L, "summary: unknown scale fn '%s' (expected identity, log, log1p or asinh)", fn);
    lua_getfield(L, -2, "factor");
    in.scale.factor = luaL_optnumber(L, -1, 1);
    lua_getfield(L, -3, "shift");
    in.scale.shift = luaL_optnumber(L, -1, 0);
    lua_pop(L, 3);
    in.has_scale = 1;
  }
  lua_pop(L, 1);
  in.den0 = opt_vector(L, "den0", n);
  in.den1 = opt_vector(L, "den1", n);
  read_cells(L, n, &in);
  lua_getfield(L, 1, "unitwise");
  const char *uw = luaL_optstring(L, -1, "sum");
  if (strcmp(uw, "sum") == 0) in.unitwise = SP_SUMMARY_SUM;
  else if (strcmp(uw, "mean_pct") == 0) in.unitwise = SP_SUMMARY_MEAN_PCT;
  else if (strcmp(uw, "weighted") == 0) in.unitwise = SP_SUMMARY_WEIGHTED;
  else return luaL_error(L, "summary: unknown unitwise '%s' (expected sum, mean_pct or weighted)", uw);
  lua_pop(L, 1);
  int unitwise = in.has_scale && in.unitwise != SP_SUMMARY_SUM;
  if (unitwise) read_units(L, n, &in);
  in.weight = opt_vector(L, "weights", n);
  sp_summary_row *rows = buffer(L, n, sizeof *rows);
  sp_summary_cell *cells = buffer(L, in.ncell, sizeof *cells);
  sp_error err;
  sp_error_clear(&err);
  if (sp_summary_run(&in, rows, cells, &err) != SP_OK) return sp_lua_error(L, &err);

  int draws = in.ndraws > 0;
  lua_createtable(L, 0, 6);
  if (in.has_scale) {
    set_array(L, "level_baseline", rows, n, offsetof(sp_summary_row, level_baseline));
    set_array(L, "level_scenario", rows, n, offsetof(sp_summary_row, level_scenario));
  }
  if (draws) {
    set_array(L, "lo", rows, n, offsetof(sp_summary_row, lo));
    set_array(L, "hi", rows, n, offsetof(sp_summary_row, hi));
    if (in.has_scale) {
      set_array(L, "level_lo", rows, n, offsetof(sp_summary_row, level_lo));
      set_array(L, "level_hi", rows, n, offsetof(sp_summary_row, level_hi));
    }
  }
  lua_createtable(L, (int)in.ncell, 0);
  for (size_t c = 0; c < in.ncell; c++) {
    const sp_summary_cell *o = cells + c;
    lua_createtable(L, 0, 10);
    set_number(L, "sum", o->sum);
    if (draws) {
      set_number(L, "sum_lo", o->sum_lo);
      set_number(L, "sum_hi", o->sum_hi);
    }
    if (in.has_scale) {
      set_number(L, "change", o->change);
      set_number(L, "base", o->base);
      if (draws) {
        set_number(L, "change_lo", o->change_lo);
        set_number(L, "change_hi", o->change_hi);
      }
    }
    if (unitwise) {
      set_number(L, "up", o->up);
      if (draws) {
        set_number(L, "up_lo", o->up_lo);
        set_number(L, "up_hi", o->up_hi);
      }
    }
    lua_rawseti(L, -2, (lua_Integer)c + 1);
  }
  return 2;
}

/* core.quantile(sorted, p): sp_quantile_sorted (type 7) of an array sorted
   in increasing order; NaN for a NaN p. */
static int l_quantile(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double p = (double)luaL_checknumber(L, 2);
  size_t n = lua_rawlen(L, 1);
  double *v = buffer(L, n, sizeof *v);
  for (size_t i = 0; i < n; i++) v[i] = entry(L, 1, i + 1, "quantile", "sorted");
  lua_pushnumber(L, p == p ? sp_quantile_sorted(v, n, p) : p);
  return 1;
}

void sp_lua_open_summary(lua_State *L) {
  lua_pushcfunction(L, l_summary);
  lua_setfield(L, -2, "summary");
  lua_pushcfunction(L, l_quantile);
  lua_setfield(L, -2, "quantile");
}
