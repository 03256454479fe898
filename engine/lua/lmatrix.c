/*
** lmatrix.c: the spillover.matrix userdata (sp.matrix).
**
** Storage we allocate lives inside the userdata (LPeg's newtree), so the
** collector sees its true size and nothing needs freeing.  A view shares its
** parent's storage and pins the parent in user value 1, so the parent
** outlives every view of it.  Results that GSL allocated itself are kept in
** `owned` and freed by __gc.  Numeric work is in linalg.c; this file checks
** arguments, creates the result userdata first (so nothing C-owned is ever
** live when an error is raised), calls the core and raises its errors.
**
** Indices are 1-based.  Vectors are n x 1 (or 1 x n) matrices.
*/
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

#include "lsp.h"
#include "spillover/linalg.h"

typedef struct {
  gsl_matrix m;        /* header; m.data points into data[], a parent, or owned */
  gsl_matrix *owned;   /* GSL-allocated storage to free in __gc, or NULL */
  double data[];       /* storage when allocated here */
} lmatrix;

#define AT(m, i, j) ((m)->data[(size_t)(i) * (m)->tda + (size_t)(j)])

/* {======================================================================
** Creation and checks
** ======================================================================= */

gsl_matrix *sp_lua_matrix_new(lua_State *L, size_t rows, size_t cols) {
  size_t n = rows * cols;
  if ((cols != 0 && n / cols != rows) || n > ((size_t)-1 - sizeof(lmatrix)) / sizeof(double))
    luaL_error(L, "matrix of %f x %f elements is too large", (double)rows, (double)cols);
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

/* A view of rows x cols starting at `data` with row stride tda, pinning the
   matrix at index `parent` (STYLE.md rule 6). */
static gsl_matrix *push_view(lua_State *L, int parent, double *data, size_t rows, size_t cols,
                             size_t tda) {
  parent = lua_absindex(L, parent);
  lmatrix *u = lua_newuserdatauv(L, sizeof(lmatrix), 1);
  memset(&u->m, 0, sizeof u->m);
  u->owned = NULL;
  u->m.size1 = rows;
  u->m.size2 = cols;
  u->m.tda = tda;
  u->m.data = rows && cols ? data : NULL;
  u->m.owner = 0;
  luaL_setmetatable(L, SP_MATRIX_T);
  lua_pushvalue(L, parent);
  lua_setiuservalue(L, -2, 1);
  return &u->m;
}

gsl_matrix *sp_lua_matrix_view(lua_State *L, int parent, size_t i, size_t j, size_t rows, size_t cols) {
  gsl_matrix *m = sp_lua_check_matrix(L, parent);
  if (i + rows > m->size1 || j + cols > m->size2)
    luaL_error(L, "view: block does not fit in the matrix");
  return push_view(L, parent, m->data ? m->data + i * m->tda + j : NULL, rows, cols, m->tda);
}


/* A contiguous copy of m, pushed. */
static gsl_matrix *push_copy(lua_State *L, const gsl_matrix *m) {
  gsl_matrix *c = sp_lua_matrix_new(L, m->size1, m->size2);
  for (size_t i = 0; i < m->size1; i++)
    if (m->size2) memcpy(c->data + i * c->tda, m->data + i * m->tda, m->size2 * sizeof(double));
  return c;
}

static int is_vector(const gsl_matrix *m) { return m->size1 == 1 || m->size2 == 1; }

static void raise_core(lua_State *L, const sp_error *e) { sp_lua_error(L, e); }

/* A 1-based integer index argument. */
static lua_Integer check_index(lua_State *L, int arg) {
  int isint = 0;
  lua_Integer i = lua_tointegerx(L, arg, &isint);
  if (!isint) {
    if (lua_type(L, arg) == LUA_TNUMBER)
      luaL_error(L, "matrix index: expected an integer, got %s", lua_tostring(L, arg));
    luaL_typeerror(L, arg, "integer");
  }
  return i;
}

/* The element (i, j), 1-based, after a range check naming `op`. */
static double *elem(lua_State *L, gsl_matrix *m, lua_Integer i, lua_Integer j, const char *op) {
  if (i < 1 || j < 1 || (lua_Unsigned)i > m->size1 || (lua_Unsigned)j > m->size2)
    luaL_error(L, "%s: index (%I, %I) out of range for a %dx%d matrix", op, i, j, (int)m->size1,
               (int)m->size2);
  return &AT(m, i - 1, j - 1);
}

/* Element i of a vector (n x 1 or 1 x n). */
static double *velem(lua_State *L, gsl_matrix *m, lua_Integer i) {
  if (!is_vector(m))
    luaL_error(L, "matrix index: m[i] needs a vector (n x 1 or 1 x n), but this matrix is %dx%d "
               "(use m(i, j) or m:get(i, j))", (int)m->size1, (int)m->size2);
  size_t n = m->size1 * m->size2;
  if (i < 1 || (lua_Unsigned)i > n)
    luaL_error(L, "matrix index: %I out of range for a %dx%d vector", i, (int)m->size1, (int)m->size2);
  return m->size2 == 1 ? &AT(m, i - 1, 0) : &AT(m, 0, i - 1);
}

/* A number from a table slot, or an error naming where it came from. */
static double table_number(lua_State *L, int idx, const char *op, const char *where) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: %s is a %s (expected a number)", op, where, luaL_typename(L, idx));
  return lua_tonumber(L, idx);
}

/* }====================================================================== */

/* {======================================================================
** Construction: sp.matrix(...), eye, diag, hcat, vcat
** ======================================================================= */

static int from_table(lua_State *L, int t) {
  size_t r = lua_rawlen(L, t);
  char where[64];
  if (r > 0 && lua_rawgeti(L, t, 1) == LUA_TTABLE) {
    size_t c = lua_rawlen(L, -1);
    lua_pop(L, 1);
    gsl_matrix *m = sp_lua_matrix_new(L, r, c);
    for (size_t i = 0; i < r; i++) {
      if (lua_rawgeti(L, t, (lua_Integer)i + 1) != LUA_TTABLE)
        luaL_error(L, "matrix: row %d is a %s (expected a table of numbers)", (int)i + 1, luaL_typename(L, -1));
      if (lua_rawlen(L, -1) != c)
        luaL_error(L, "matrix: row %d has %d elements (expected %d, like row 1)", (int)i + 1,
                   (int)lua_rawlen(L, -1), (int)c);
      for (size_t j = 0; j < c; j++) {
        lua_rawgeti(L, -1, (lua_Integer)j + 1);
        snprintf(where, sizeof where, "element [%zu][%zu]", i + 1, j + 1);
        AT(m, i, j) = table_number(L, -1, "matrix", where);
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
    return 1;
  }
  if (r > 0) lua_pop(L, 1);
  gsl_matrix *m = sp_lua_matrix_new(L, r, 1);
  for (size_t i = 0; i < r; i++) {
    lua_rawgeti(L, t, (lua_Integer)i + 1);
    snprintf(where, sizeof where, "element %zu", i + 1);
    AT(m, i, 0) = table_number(L, -1, "matrix", where);
    lua_pop(L, 1);
  }
  return 1;
}

static int from_frame(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  int intercept = 0;
  if (!lua_isnoneornil(L, 4)) {
    static const char *const allowed[] = {"intercept", NULL};
    sp_lua_check_options(L, 4, "matrix", allowed);
    if (lua_getfield(L, 4, "intercept") != LUA_TNIL) {
      if (!lua_isboolean(L, -1)) luaL_error(L, "matrix: option 'intercept' must be a boolean");
      intercept = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
  }
  size_t k = lua_rawlen(L, 3), off = intercept ? 1 : 0;
  /* Resolve every name before building, so errors come before work. */
  for (size_t j = 0; j < k; j++) {
    if (lua_rawgeti(L, 3, (lua_Integer)j + 1) != LUA_TSTRING)
      luaL_error(L, "matrix: column name %d is a %s (expected a string)", (int)j + 1, luaL_typename(L, -1));
    const char *name = lua_tostring(L, -1);
    long c = sp_frame_find(f, name);
    if (c < 0) {
      long near = sp_frame_closest(f, name);
      if (near >= 0) luaL_error(L, "matrix: no column '%s' in the frame (did you mean '%s'?)", name, f->cols[near].name);
      luaL_error(L, "matrix: no column '%s' in the frame", name);
    }
    if (f->cols[c].type != SP_NUMERIC)
      luaL_error(L, "matrix: column '%s' is categorical (expected a numeric column)", name);
    lua_pop(L, 1);
  }
  gsl_matrix *m = sp_lua_matrix_new(L, f->nrow, k + off);
  for (size_t i = 0; i < f->nrow && intercept; i++) AT(m, i, 0) = 1.0;
  for (size_t j = 0; j < k; j++) {
    lua_rawgeti(L, 3, (lua_Integer)j + 1);
    const double *v = f->cols[sp_frame_find(f, lua_tostring(L, -1))].num;
    lua_pop(L, 1);
    for (size_t i = 0; i < f->nrow; i++) AT(m, i, j + off) = v[i];
  }
  return 1;
}

/* sp.matrix(...): the __call of the sp.matrix table (argument 1 is it). */
static int l_construct(lua_State *L) {
  switch (lua_type(L, 2)) {
    case LUA_TTABLE:
      return from_table(L, 2);
    case LUA_TNUMBER: {
      lua_Integer r = check_index(L, 2), c = check_index(L, 3);
      double fill = luaL_optnumber(L, 4, 0.0);
      if (r < 0 || c < 0) luaL_error(L, "matrix: dimensions must be non-negative, got %I x %I", r, c);
      gsl_matrix *m = sp_lua_matrix_new(L, (size_t)r, (size_t)c);
      for (size_t i = 0; i < m->size1; i++)
        for (size_t j = 0; j < m->size2; j++) AT(m, i, j) = fill;
      return 1;
    }
    case LUA_TUSERDATA:
      if (luaL_testudata(L, 2, SP_FRAME_T)) return from_frame(L);
      /* fall through */
    default:
      return luaL_error(L, "matrix: expected a table of rows, a table of numbers, (rows, cols [, fill]) "
                        "or (frame, {columns} [, options]), got %s", luaL_typename(L, 2));
  }
}

static int l_eye(lua_State *L) {
  lua_Integer n = check_index(L, 1);
  if (n < 0) luaL_error(L, "eye: size must be non-negative, got %I", n);
  gsl_matrix *m = sp_lua_matrix_new(L, (size_t)n, (size_t)n);
  if (n) gsl_matrix_set_identity(m);
  return 1;
}

static int l_sdiag(lua_State *L) {
  size_t n;
  gsl_matrix *v = sp_lua_test_matrix(L, 1);
  if (v) {
    if (!is_vector(v) && v->size1 * v->size2 != 0)
      luaL_error(L, "diag: expected a vector or a table of numbers, got a %dx%d matrix (use m:diag() "
                 "for its diagonal)", (int)v->size1, (int)v->size2);
    n = v->size1 * v->size2;
  } else {
    luaL_argexpected(L, lua_istable(L, 1), 1, "spillover.matrix or table");
    n = lua_rawlen(L, 1);
  }
  gsl_matrix *m = sp_lua_matrix_new(L, n, n);
  if (n) gsl_matrix_set_zero(m);
  char where[40];
  for (size_t i = 0; i < n; i++) {
    if (v) {
      AT(m, i, i) = v->size2 == 1 ? AT(v, i, 0) : AT(v, 0, i);
    } else {
      lua_rawgeti(L, 1, (lua_Integer)i + 1);
      snprintf(where, sizeof where, "element %zu", i + 1);
      AT(m, i, i) = table_number(L, -1, "diag", where);
      lua_pop(L, 1);
    }
  }
  return 1;
}

static int concat(lua_State *L, int horizontal) {
  const char *op = horizontal ? "hcat" : "vcat";
  int n = lua_gettop(L);
  if (n == 0) luaL_error(L, "%s: expected at least one matrix", op);
  size_t fixed = 0, total = 0;
  for (int a = 1; a <= n; a++) {
    gsl_matrix *m = sp_lua_test_matrix(L, a);
    if (!m) luaL_error(L, "%s: argument %d is a %s (expected a spillover.matrix)", op, a, luaL_typename(L, a));
    size_t keep = horizontal ? m->size1 : m->size2, grow = horizontal ? m->size2 : m->size1;
    if (a == 1) fixed = keep;
    else if (keep != fixed)
      luaL_error(L, "%s: argument %d is %dx%d but argument 1 has %d %s", op, a, (int)m->size1,
                 (int)m->size2, (int)fixed, horizontal ? "rows" : "columns");
    total += grow;
  }
  gsl_matrix *out = horizontal ? sp_lua_matrix_new(L, fixed, total) : sp_lua_matrix_new(L, total, fixed);
  size_t at = 0;
  for (int a = 1; a <= n; a++) {
    gsl_matrix *m = sp_lua_check_matrix(L, a);
    for (size_t i = 0; i < m->size1; i++)
      for (size_t j = 0; j < m->size2; j++) {
        if (horizontal) AT(out, i, at + j) = AT(m, i, j);
        else AT(out, at + i, j) = AT(m, i, j);
      }
    at += horizontal ? m->size2 : m->size1;
  }
  return 1;
}

static int l_hcat(lua_State *L) { return concat(L, 1); }
static int l_vcat(lua_State *L) { return concat(L, 0); }

/* }====================================================================== */

/* {======================================================================
** Access
** ======================================================================= */

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

static int l_nrow(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sp_lua_check_matrix(L, 1)->size1);
  return 1;
}

static int l_ncol(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sp_lua_check_matrix(L, 1)->size2);
  return 1;
}

static int l_len(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  lua_pushinteger(L, (lua_Integer)(m->size1 * m->size2));
  return 1;
}

static int l_get(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  lua_pushnumber(L, *elem(L, m, check_index(L, 2), check_index(L, 3), "get"));
  return 1;
}

static int l_set(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  lua_Integer i = check_index(L, 2), j = check_index(L, 3);
  double v = luaL_checknumber(L, 4);
  *elem(L, m, i, j, "set") = v;
  return 0;
}

/* m[i] for vectors, else the methods (upvalue 1). */
static int l_index(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_pushnumber(L, *velem(L, m, check_index(L, 2)));
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int l_newindex(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  if (lua_type(L, 2) != LUA_TNUMBER)
    luaL_error(L, "matrix: cannot set field '%s' (only m[i] = v on vectors, or m:set(i, j, v))",
               luaL_tolstring(L, 2, NULL));
  lua_Integer i = check_index(L, 2);
  double v = luaL_checknumber(L, 3);
  *velem(L, m, i) = v;
  return 0;
}

static int l_call(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  lua_pushnumber(L, *elem(L, m, check_index(L, 2), check_index(L, 3), "matrix call m(i, j)"));
  return 1;
}

static int l_row(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  lua_Integer i = check_index(L, 2);
  if (i < 1 || (lua_Unsigned)i > m->size1)
    luaL_error(L, "row: index %I out of range for a %dx%d matrix", i, (int)m->size1, (int)m->size2);
  push_view(L, 1, m->data + (size_t)(i - 1) * m->tda, 1, m->size2, m->tda);
  return 1;
}

static int l_col(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  lua_Integer j = check_index(L, 2);
  if (j < 1 || (lua_Unsigned)j > m->size2)
    luaL_error(L, "col: index %I out of range for a %dx%d matrix", j, (int)m->size1, (int)m->size2);
  push_view(L, 1, m->data ? m->data + (j - 1) : NULL, m->size1, 1, m->tda);
  return 1;
}

static int l_view(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  lua_Integer i = check_index(L, 2), j = check_index(L, 3), r = check_index(L, 4), c = check_index(L, 5);
  if (i < 1 || j < 1 || r < 0 || c < 0 || (lua_Unsigned)(i - 1 + r) > m->size1 ||
      (lua_Unsigned)(j - 1 + c) > m->size2)
    luaL_error(L, "view: a %Ix%I block at (%I, %I) does not fit in a %dx%d matrix", r, c, i, j,
               (int)m->size1, (int)m->size2);
  double *d = (r && c) ? m->data + (size_t)(i - 1) * m->tda + (size_t)(j - 1) : NULL;
  push_view(L, 1, d, (size_t)r, (size_t)c, m->tda);
  return 1;
}

static int l_copy(lua_State *L) {
  push_copy(L, sp_lua_check_matrix(L, 1));
  return 1;
}

/* The elements of a vector (n x 1 or 1 x n) as a flat table. */
static void push_vector(lua_State *L, const gsl_matrix *m) {
  size_t n = m->size1 * m->size2;
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushnumber(L, m->size2 == 1 ? AT(m, i, 0) : AT(m, 0, i));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* m:tovector(): a flat table for an n x 1 or 1 x n matrix (a 1 x 1 one
   included), an error for any other shape, so a caller that wants numbers
   never gets rows by accident. */
static int l_tovector(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  if (!is_vector(m) && m->size1 * m->size2 != 0)
    return luaL_error(L, "tovector: expected an n x 1 or 1 x n matrix, got %d x %d (use totable for rows)",
                      (int)m->size1, (int)m->size2);
  push_vector(L, m);
  return 1;
}

/* m:totable(): a table of rows; a vector (n x 1 or 1 x n) gives a flat table
   (kept for existing scripts: code that must not depend on the shape reads
   rows with m:get or numbers with m:tovector). */
static int l_totable(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  size_t r = m->size1, c = m->size2;
  if (is_vector(m)) {
    push_vector(L, m);
    return 1;
  }
  lua_createtable(L, (int)r, 0);
  for (size_t i = 0; i < r; i++) {
    lua_createtable(L, (int)c, 0);
    for (size_t j = 0; j < c; j++) {
      lua_pushnumber(L, AT(m, i, j));
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* }====================================================================== */

/* {======================================================================
** Printing (R-like: one format per column, fixed unless scientific is
** narrower, 7 significant digits)
** ======================================================================= */

#define PRINT_ROWS 20   /* more rows than this: show the first PRINT_HEAD */
#define PRINT_HEAD 10
#define PRINT_COLS 10   /* more columns than this: show the first PRINT_LEFT */
#define PRINT_LEFT 8

/* Significant digits (1..7) needed to show v as %.7g does. */
static int sig_digits(double v) {
  char want[40], got[40];
  snprintf(want, sizeof want, "%.7g", v);
  double target = strtod(want, NULL);
  for (int d = 1; d < 7; d++) {
    snprintf(got, sizeof got, "%.*g", d, v);
    if (strtod(got, NULL) == target) return d;
  }
  return 7;
}

typedef struct {
  int sci;      /* scientific notation for this column */
  int digits;   /* decimals (fixed) or mantissa decimals (scientific) */
  int width;
} colfmt;

static void format_cell(char *buf, size_t size, double v, const colfmt *f) {
  if (isnan(v)) snprintf(buf, size, "NaN");
  else if (isinf(v)) snprintf(buf, size, v > 0 ? "Inf" : "-Inf");
  else if (f->sci) snprintf(buf, size, "%.*e", f->digits, v);
  else snprintf(buf, size, "%.*f", f->digits, v);
}

static void plan_column(const gsl_matrix *m, size_t j, const size_t *rows, size_t nr, colfmt *f) {
  int maxsig = 1, decimals = 0;
  for (size_t k = 0; k < nr; k++) {
    double v = AT(m, rows[k], j);
    if (!isfinite(v) || v == 0.0) continue;
    int s = sig_digits(v);
    int e = (int)floor(log10(fabs(v)));
    char probe[40];  /* log10 can be off by one near powers of ten */
    snprintf(probe, sizeof probe, "%.*e", s - 1, v);
    e = atoi(strchr(probe, 'e') + 1);
    if (s > maxsig) maxsig = s;
    if (s - 1 - e > decimals) decimals = s - 1 - e;
  }
  char buf[400];
  colfmt fixed = {0, decimals, 0}, sci = {1, maxsig - 1, 0};
  for (size_t k = 0; k < nr; k++) {
    double v = AT(m, rows[k], j);
    format_cell(buf, sizeof buf, v, &fixed);
    if ((int)strlen(buf) > fixed.width) fixed.width = (int)strlen(buf);
    format_cell(buf, sizeof buf, v, &sci);
    if ((int)strlen(buf) > sci.width) sci.width = (int)strlen(buf);
  }
  *f = fixed.width <= sci.width ? fixed : sci;
}

/* s right-aligned (after a space) or left-aligned in width columns. */
static void pad(luaL_Buffer *b, const char *s, int width, int right) {
  int n = (int)strlen(s);
  if (right) {
    luaL_addchar(b, ' ');
    for (int i = n; i < width; i++) luaL_addchar(b, ' ');
  }
  luaL_addstring(b, s);
  if (!right)
    for (int i = n; i < width; i++) luaL_addchar(b, ' ');
}

static int l_tostring(lua_State *L) {
  gsl_matrix *m = sp_lua_check_matrix(L, 1);
  size_t r = m->size1, c = m->size2;
  if (r == 0 || c == 0) {
    lua_pushfstring(L, "<%dx%d matrix>", (int)r, (int)c);
    return 1;
  }
  size_t nr = r > PRINT_ROWS ? PRINT_HEAD : r, nc = c > PRINT_COLS ? PRINT_LEFT : c;
  /* Scratch in a userdata, so an error while formatting leaks nothing. */
  size_t *rows = lua_newuserdatauv(L, nr * sizeof(size_t) + nc * sizeof(colfmt), 0);
  colfmt *fmt = (colfmt *)(void *)(rows + nr);
  for (size_t k = 0; k < nr; k++) rows[k] = k;
  char cell[400], head[32];
  int labw = snprintf(head, sizeof head, "[%zu,]", nr);
  for (size_t j = 0; j < nc; j++) {
    plan_column(m, j, rows, nr, &fmt[j]);
    int hw = snprintf(head, sizeof head, "[,%zu]", j + 1);
    if (hw > fmt[j].width) fmt[j].width = hw;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  pad(&b, "", labw, 0);
  for (size_t j = 0; j < nc; j++) {
    snprintf(head, sizeof head, "[,%zu]", j + 1);
    pad(&b, head, fmt[j].width, 1);
  }
  for (size_t k = 0; k < nr; k++) {
    snprintf(head, sizeof head, "[%zu,]", k + 1);
    luaL_addchar(&b, '\n');
    for (int w = (int)strlen(head); w < labw; w++) luaL_addchar(&b, ' ');  /* right-aligned, as R */
    luaL_addstring(&b, head);
    for (size_t j = 0; j < nc; j++) {
      format_cell(cell, sizeof cell, AT(m, k, j), &fmt[j]);
      pad(&b, cell, fmt[j].width, 1);
    }
  }
  if (nr < r || nc < c) {
    snprintf(cell, sizeof cell, "\n... a %zux%zu matrix: %zu more rows and %zu more columns not shown",
             r, c, r - nr, c - nc);
    luaL_addstring(&b, cell);
  }
  luaL_pushresult(&b);
  return 1;
}

/* }====================================================================== */

/* {======================================================================
** Arithmetic
** ======================================================================= */

static void shape_mismatch(lua_State *L, const char *op, const char *sym, const gsl_matrix *a,
                           const gsl_matrix *b) {
  luaL_error(L, "%s: %dx%d %s %dx%d is not conformable", op, (int)a->size1, (int)a->size2, sym,
             (int)b->size1, (int)b->size2);
}

/* A matrix operand, or NULL with *s set for a number; anything else raises. */
static gsl_matrix *operand(lua_State *L, int idx, const char *op, double *s) {
  gsl_matrix *m = sp_lua_test_matrix(L, idx);
  if (m) return m;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    *s = lua_tonumber(L, idx);
    return NULL;
  }
  luaL_error(L, "%s: expected a spillover.matrix or a number, got %s", op, luaL_typename(L, idx));
  return NULL;
}

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

static double apply(int op, double x, double y) {
  switch (op) {
    case OP_ADD: return x + y;
    case OP_SUB: return x - y;
    case OP_MUL: return x * y;
    default: return x / y;
  }
}

/* Element-wise a op b where either may be a number (broadcast). */
static int elementwise(lua_State *L, int op, const char *name, const char *sym) {
  double sa = 0, sb = 0;
  gsl_matrix *a = operand(L, 1, name, &sa), *b = operand(L, 2, name, &sb);
  if (a && b && (a->size1 != b->size1 || a->size2 != b->size2)) shape_mismatch(L, name, sym, a, b);
  const gsl_matrix *shape = a ? a : b;
  gsl_matrix *out = sp_lua_matrix_new(L, shape->size1, shape->size2);
  for (size_t i = 0; i < out->size1; i++)
    for (size_t j = 0; j < out->size2; j++)
      AT(out, i, j) = apply(op, a ? AT(a, i, j) : sa, b ? AT(b, i, j) : sb);
  return 1;
}

static int l_add(lua_State *L) { return elementwise(L, OP_ADD, "matrix sum", "+"); }
static int l_sub(lua_State *L) { return elementwise(L, OP_SUB, "matrix difference", "-"); }
static int l_emul(lua_State *L) { return elementwise(L, OP_MUL, "element-wise product", ".*"); }
static int l_ediv(lua_State *L) { return elementwise(L, OP_DIV, "element-wise division", "./"); }

static int l_unm(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  gsl_matrix *out = sp_lua_matrix_new(L, a->size1, a->size2);
  for (size_t i = 0; i < a->size1; i++)
    for (size_t j = 0; j < a->size2; j++) AT(out, i, j) = -AT(a, i, j);
  return 1;
}

static int l_mul(lua_State *L) {
  double s = 0;
  gsl_matrix *a = operand(L, 1, "matrix product", &s), *b = operand(L, 2, "matrix product", &s);
  if (!a || !b) return elementwise(L, OP_MUL, "matrix product", "*");
  if (a->size2 != b->size1) shape_mismatch(L, "matrix product", "*", a, b);
  size_t n = a->size1, k = a->size2, p = b->size2;
  gsl_matrix *out = sp_lua_matrix_new(L, n, p);
  if (n == 0 || p == 0) return 1;
  if (k == 0) {
    gsl_matrix_set_zero(out);
    return 1;
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)p, (int)k, 1.0, a->data,
              (int)a->tda, b->data, (int)b->tda, 0.0, out->data, (int)out->tda);
  return 1;
}

static int l_div(lua_State *L) {
  double s = 0;
  gsl_matrix *a = operand(L, 1, "matrix division", &s), *b = operand(L, 2, "matrix division", &s);
  if (b)
    luaL_error(L, "matrix division: only matrix / number is defined (use a:solve(b) for A^-1 b, or "
               "a:div(b) for element-wise division)");
  (void)a;
  return elementwise(L, OP_DIV, "matrix division", "/");
}

static int l_eq(lua_State *L) {
  gsl_matrix *a = sp_lua_test_matrix(L, 1), *b = sp_lua_test_matrix(L, 2);
  int eq = a && b && a->size1 == b->size1 && a->size2 == b->size2;
  for (size_t i = 0; eq && i < a->size1; i++)
    for (size_t j = 0; eq && j < a->size2; j++) eq = AT(a, i, j) == AT(b, i, j);
  lua_pushboolean(L, eq);
  return 1;
}

static int l_t(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  gsl_matrix *out = sp_lua_matrix_new(L, a->size2, a->size1);
  for (size_t i = 0; i < a->size1; i++)
    for (size_t j = 0; j < a->size2; j++) AT(out, j, i) = AT(a, i, j);
  return 1;
}

/* }====================================================================== */

/* {======================================================================
** Linear algebra (the core does the work and names the shapes in errors)
** ======================================================================= */

static int l_crossprod(lua_State *L) {
  gsl_matrix *x = sp_lua_check_matrix(L, 1);
  sp_error e;
  sp_error_clear(&e);
  if (lua_isnoneornil(L, 2)) {
    gsl_matrix *out = sp_lua_matrix_new(L, x->size2, x->size2);
    if (sp_linalg_crossprod(x, out, &e)) raise_core(L, &e);
    return 1;
  }
  gsl_matrix *y = sp_lua_check_matrix(L, 2);
  gsl_matrix *out = sp_lua_matrix_new(L, x->size2, y->size2);
  if (sp_linalg_crossprod2(x, y, out, &e)) raise_core(L, &e);
  return 1;
}

static int l_inv(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *out = push_copy(L, a);
  if (sp_linalg_inv(out, &e)) raise_core(L, &e);
  return 1;
}

static int l_solve(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  if (lua_isnoneornil(L, 2)) return l_inv(L);
  gsl_matrix *b = sp_lua_check_matrix(L, 2);
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *x = sp_lua_matrix_new(L, a->size1, b->size2);
  if (sp_linalg_solve(a, b, x, NULL, &e)) raise_core(L, &e);
  return 1;
}

static int l_chol(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *r = push_copy(L, a);
  if (sp_linalg_chol(r, &e)) raise_core(L, &e);
  return 1;
}

/* A gsl_vector over an n x 1 contiguous matrix (GSL has no empty views). */
static gsl_vector vec_of(gsl_matrix *m) {
  gsl_vector v = {m->size1 * m->size2, 1, m->data, NULL, 0};
  return v;
}

static int l_qr(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  double tol = luaL_optnumber(L, 2, SP_LINALG_QR_TOL);
  size_t n = a->size1, p = a->size2, k = n < p ? n : p, rank = 0;
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *x = push_copy(L, a);                     /* 3: the factorisation */
  gsl_matrix *taum = sp_lua_matrix_new(L, k, 1);       /* 4 */
  size_t *perm = lua_newuserdatauv(L, (p ? p : 1) * sizeof(size_t), 0); /* 5 */
  gsl_vector tau = vec_of(taum);
  if (sp_linalg_qr_pivot(x, &tau, perm, &rank, tol, &e)) raise_core(L, &e);
  lua_createtable(L, 0, 4);
  gsl_matrix *q = sp_lua_matrix_new(L, n, k);
  if (sp_linalg_qr_Q(x, &tau, q, &e)) raise_core(L, &e);
  lua_setfield(L, -2, "Q");
  gsl_matrix *r = sp_lua_matrix_new(L, k, p);
  if (sp_linalg_qr_R(x, r, &e)) raise_core(L, &e);
  lua_setfield(L, -2, "R");
  lua_createtable(L, (int)p, 0);
  for (size_t j = 0; j < p; j++) {
    lua_pushinteger(L, (lua_Integer)perm[j] + 1);
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  lua_setfield(L, -2, "perm");
  lua_pushinteger(L, (lua_Integer)rank);
  lua_setfield(L, -2, "rank");
  return 1;
}

static int l_eigen(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  sp_error e;
  sp_error_clear(&e);
  gsl_matrix *vals = sp_lua_matrix_new(L, a->size1, 1);
  gsl_matrix *vecs = sp_lua_matrix_new(L, a->size1, a->size1);
  gsl_vector v = vec_of(vals);
  if (sp_linalg_eigen_sym(a, &v, vecs, &e)) raise_core(L, &e);
  return 2;
}

static int l_det(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  sp_error e;
  sp_error_clear(&e);
  double d = 0;
  if (sp_linalg_det(a, &d, &e)) raise_core(L, &e);
  lua_pushnumber(L, d);
  return 1;
}

static int l_logdet(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  sp_error e;
  sp_error_clear(&e);
  double la = 0;
  int sg = 0;
  if (sp_linalg_logdet(a, &la, &sg, &e)) raise_core(L, &e);
  lua_pushnumber(L, la);
  lua_pushinteger(L, sg);
  return 2;
}

/* }====================================================================== */

/* {======================================================================
** Reductions and element-wise functions
** ======================================================================= */

static int l_diag(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  size_t k = a->size1 < a->size2 ? a->size1 : a->size2;
  gsl_matrix *d = sp_lua_matrix_new(L, k, 1);
  for (size_t i = 0; i < k; i++) AT(d, i, 0) = AT(a, i, i);
  return 1;
}

static int l_sum(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  double s = 0;
  for (size_t i = 0; i < a->size1; i++)
    for (size_t j = 0; j < a->size2; j++) s += AT(a, i, j);
  lua_pushnumber(L, s);
  return 1;
}

static int colstat(lua_State *L, int mean) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  gsl_matrix *out = sp_lua_matrix_new(L, a->size2, 1);
  for (size_t j = 0; j < a->size2; j++) AT(out, j, 0) = 0.0;
  for (size_t i = 0; i < a->size1; i++)
    for (size_t j = 0; j < a->size2; j++) AT(out, j, 0) += AT(a, i, j);
  if (mean)
    for (size_t j = 0; j < a->size2; j++) AT(out, j, 0) /= (double)a->size1;
  return 1;
}

static int l_colsums(lua_State *L) { return colstat(L, 0); }
static int l_colmeans(lua_State *L) { return colstat(L, 1); }

static int extreme(lua_State *L, int want_max) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  if (a->size1 * a->size2 == 0) luaL_error(L, "%s: the matrix is empty (0 elements)", want_max ? "max" : "min");
  double best = AT(a, 0, 0);
  for (size_t i = 0; i < a->size1; i++)
    for (size_t j = 0; j < a->size2; j++) {
      double v = AT(a, i, j);
      if (isnan(v)) {  /* as R: NaN (missing) propagates */
        lua_pushnumber(L, v);
        return 1;
      }
      if (want_max ? v > best : v < best) best = v;
    }
  lua_pushnumber(L, best);
  return 1;
}

static int l_min(lua_State *L) { return extreme(L, 0); }
static int l_max(lua_State *L) { return extreme(L, 1); }

static int unary(lua_State *L, double (*f)(double)) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  gsl_matrix *out = sp_lua_matrix_new(L, a->size1, a->size2);
  for (size_t i = 0; i < a->size1; i++)
    for (size_t j = 0; j < a->size2; j++) AT(out, i, j) = f(AT(a, i, j));
  return 1;
}

static int l_log(lua_State *L) { return unary(L, log); }
static int l_exp(lua_State *L) { return unary(L, exp); }
static int l_sqrt(lua_State *L) { return unary(L, sqrt); }
static int l_abs(lua_State *L) { return unary(L, fabs); }

static int l_map(lua_State *L) {
  gsl_matrix *a = sp_lua_check_matrix(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  gsl_matrix *out = sp_lua_matrix_new(L, a->size1, a->size2);
  for (size_t i = 0; i < a->size1; i++)
    for (size_t j = 0; j < a->size2; j++) {
      lua_pushvalue(L, 2);
      lua_pushnumber(L, AT(a, i, j));
      lua_call(L, 1, 1);
      int isnum = 0;
      double v = lua_tonumberx(L, -1, &isnum);
      if (!isnum || lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "map: the function returned a %s for element [%d,%d] (expected a number)",
                   luaL_typename(L, -1), (int)i + 1, (int)j + 1);
      AT(out, i, j) = v;
      lua_pop(L, 1);
    }
  return 1;
}

/* }====================================================================== */

static const luaL_Reg metameth[] = {
  {"__gc", l_gc},
  {"__close", l_gc},
  {"__newindex", l_newindex},
  {"__call", l_call},
  {"__len", l_len},
  {"__tostring", l_tostring},
  {"__add", l_add},
  {"__sub", l_sub},
  {"__unm", l_unm},
  {"__mul", l_mul},
  {"__div", l_div},
  {"__eq", l_eq},
  {NULL, NULL}
};

static const luaL_Reg meth[] = {
  {"shape", l_shape}, {"nrow", l_nrow}, {"ncol", l_ncol},
  {"get", l_get}, {"set", l_set},
  {"row", l_row}, {"col", l_col}, {"view", l_view},
  {"copy", l_copy}, {"totable", l_totable}, {"tovector", l_tovector},
  {"t", l_t}, {"mul", l_emul}, {"div", l_ediv},
  {"crossprod", l_crossprod}, {"solve", l_solve}, {"inv", l_inv}, {"chol", l_chol},
  {"qr", l_qr}, {"eigen", l_eigen}, {"det", l_det}, {"logdet", l_logdet},
  {"diag", l_diag}, {"sum", l_sum}, {"colsums", l_colsums}, {"colmeans", l_colmeans},
  {"min", l_min}, {"max", l_max},
  {"log", l_log}, {"exp", l_exp}, {"sqrt", l_sqrt}, {"abs", l_abs}, {"map", l_map},
  {NULL, NULL}
};

static const luaL_Reg statics[] = {
  {"eye", l_eye}, {"diag", l_sdiag}, {"hcat", l_hcat}, {"vcat", l_vcat},
  {NULL, NULL}
};

/* Registers the metatable and sets field `matrix` of the table at -1 to a
   callable table holding the static constructors. */
void sp_lua_open_matrix(lua_State *L) {
  luaL_newmetatable(L, SP_MATRIX_T);
  luaL_setfuncs(L, metameth, 0);
  luaL_newlibtable(L, meth);
  luaL_setfuncs(L, meth, 0);
  lua_pushcclosure(L, l_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  luaL_newlibtable(L, statics);
  luaL_setfuncs(L, statics, 0);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_construct);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "matrix");
}
