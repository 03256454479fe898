/*
** lestimate.c: estimator primitives for Lua.
**
**   sp.lsfit(X, y [, {weights=, scale=, tol=, names=, yname=, threads=}])   least squares, collinear columns dropped
**   sp.vcov(X, resid, bread, opts)                 the sandwich family (vcov.h)
**   sp.sumsq(M [, {center=, weights=, threads=}])  column sums of squares
**   sp.absorb(fe [, {weights=}])                   a fixed-effects workspace (demean.h):
**       a:demean(M [, opts]) in place, a:fixef(r), a:dof(), a:nobs(),
**       a:solve(rows [, opts]) and a:within(rows): the rows minus the effects
**   core.design_rows(des, d)                       the design's [y X] read from d, never stored (rows.h);
**       rows:nrow(), rows:ncol(), rows:select({j...}); core.lsfit, core.vcov,
**       core.sumsq, core.cor2 and a:means read rows where they read matrices
**   sp.demean(M, fe [, opts])                      one-shot absorb + demean (in place)
**   sp.codes(v)                                    dense 0-based codes of a vector, and levels
**   core.design_refill(des, d [, check])           des.y, des.X re-read from the frame (in-place fits)
**
** Vectors of group identifiers (fixed effects, clusters, periods) may be
** n x 1 matrices, Lua arrays of numbers or strings, or design code handles;
** they are recoded densely (sorted values) here.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/demean.h"
#include "spillover/inline.h"
#include "spillover/lsfit.h"
#include "spillover/mem.h"
#include "spillover/rows.h"
#include "spillover/vcov.h"

#include "ldesign.h"
#include "lsp.h"
/* The core's internal two-chunk team: sumsq splits its rows the same way. */
#include "../src/team.h"

#define SP_ABSORB_T "spillover.absorb"

/* ---- group codes ------------------------------------------------------------ */

/* A userdata that owns an int32 code array (so it is freed if we raise). */
typedef struct {
  int32_t *code;
  size_t n, nlevels;
  int owned;     /* code was allocated here; else it is a design's, pinned by user value 1 */
} lcodes;

static int codes_gc(lua_State *L) {
  lcodes *c = luaL_checkudata(L, 1, "spillover.codes");
  if (c->owned) sp_mem_free(c->code);
  c->code = NULL;
  return 0;
}

/* A codes userdata; with alloc, n fresh codes to fill, else code stays NULL
   for the caller to point at storage it pins in user value 1. */
static lcodes *push_codes_uv(lua_State *L, size_t n, int alloc) {
  lcodes *c = lua_newuserdatauv(L, sizeof *c, 1);
  c->code = NULL;
  c->n = n;
  c->nlevels = 0;
  c->owned = alloc;
  luaL_setmetatable(L, "spillover.codes");
  if (alloc && (c->code = sp_mem_alloc((n ? n : 1) * sizeof *c->code)) == NULL)
    sp_lua_errorf(L, "out of memory building group codes");
  return c;
}

static lcodes *push_codes(lua_State *L, size_t n) { return push_codes_uv(L, n, 1); }

/* Borrowed codes are valid while their design is open: a design closed
   early (`<close>`) raises here instead of leaving dangling codes. */
static void codes_check_live(lua_State *L, int idx, const lcodes *c) {
  if (c->owned) return;
  lua_getiuservalue(L, idx, 1);
  sp_lua_check_design(L, -1);
  lua_pop(L, 1);
}

typedef struct { double v; size_t row; } vrow;

static int cmp_vrow(const void *a, const void *b) {
  double x = ((const vrow *)a)->v, y = ((const vrow *)b)->v;
  return (x > y) - (x < y);
}

/* Dense codes (sorted unique values) of the vector at idx, pushed as an
   lcodes userdata.  what names the argument in messages; n_expected is 0 to
   accept any length.  Missing values (NaN, nil) are an error. */
static lcodes *check_codes(lua_State *L, int idx, size_t n_expected, const char *what) {
  idx = lua_absindex(L, idx);
  lcodes *c = luaL_testudata(L, idx, "spillover.codes");
  if (c != NULL) {
    codes_check_live(L, idx, c);
    if (n_expected && c->n != n_expected)
      sp_lua_errorf(L, "%s has %zu entries, expected %zu", what, c->n, n_expected);
    lua_pushvalue(L, idx);
    return c;
  }
  gsl_matrix *m = sp_lua_test_matrix(L, idx);
  if (m != NULL || (lua_istable(L, idx) && lua_type(L, (lua_rawgeti(L, idx, 1), -1)) == LUA_TNUMBER)) {
    if (m == NULL) lua_pop(L, 1);
    size_t n = m ? m->size1 * m->size2 : (size_t)luaL_len(L, idx);
    if (m && m->size1 != 1 && m->size2 != 1) sp_lua_errorf(L, "%s must be a vector, got a %zux%zu matrix", what, m->size1, m->size2);
    if (n_expected && n != n_expected) sp_lua_errorf(L, "%s has %zu entries, expected %zu", what, n, n_expected);
    vrow *tmp = lua_newuserdatauv(L, (n ? n : 1) * sizeof *tmp, 0);
    for (size_t i = 0; i < n; i++) {
      double v;
      if (m) v = m->size2 == 1 ? gsl_matrix_get(m, i, 0) : gsl_matrix_get(m, 0, i);
      else { lua_rawgeti(L, idx, (lua_Integer)i + 1); v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : NAN; lua_pop(L, 1); }
      if (isnan(v)) sp_lua_errorf(L, "%s is missing (or not a number) at entry %zu", what, i + 1);
      tmp[i].v = v;
      tmp[i].row = i;
    }
    qsort(tmp, n, sizeof *tmp, cmp_vrow);
    c = push_codes(L, n);
    size_t L_ = 0;
    for (size_t i = 0; i < n; i++) {
      if (i > 0 && tmp[i].v != tmp[i - 1].v) L_++;
      c->code[tmp[i].row] = (int32_t)L_;
    }
    c->nlevels = n ? L_ + 1 : 0;
    lua_remove(L, -2);  /* tmp */
    return c;
  }
  if (lua_istable(L, idx)) {
    lua_pop(L, 1);  /* the probe of entry 1 */
    /* Strings: sort the distinct values, then map. */
    size_t n = lua_rawlen(L, idx);
    lua_Integer nn = 0;
    lua_getfield(L, idx, "n");
    if (lua_isinteger(L, -1)) nn = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if ((size_t)nn > n) n = (size_t)nn;
    if (n_expected && n != n_expected) sp_lua_errorf(L, "%s has %zu entries, expected %zu", what, n, n_expected);
    lua_newtable(L);  /* value -> code */
    int map = lua_gettop(L);
    lua_newtable(L);  /* distinct values, to sort */
    int uniq = lua_gettop(L);
    lua_Integer nu = 0;
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, idx, (lua_Integer)i + 1);
      if (lua_type(L, -1) != LUA_TSTRING) sp_lua_errorf(L, "%s is missing (or not a string) at entry %zu", what, i + 1);
      lua_pushvalue(L, -1);
      if (lua_rawget(L, map) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, map);
        lua_rawseti(L, uniq, ++nu);
      } else {
        lua_pop(L, 2);
      }
    }
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, uniq);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    for (lua_Integer u = 1; u <= nu; u++) {
      lua_rawgeti(L, uniq, u);
      lua_pushinteger(L, u - 1);
      lua_rawset(L, map);
    }
    c = push_codes(L, n);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, idx, (lua_Integer)i + 1);
      lua_rawget(L, map);
      c->code[i] = (int32_t)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    c->nlevels = (size_t)nu;
    lua_replace(L, map);  /* leave only the codes userdata on top */
    lua_settop(L, map);
    return c;
  }
  sp_lua_errorf(L, "%s must be a vector (matrix, or array of numbers or strings)", what);
  return NULL;
}

/* Codes of a design's fixed effect or extra variable, over its rows: the
   design's own array (it never changes), pinned by pinning the design, not a
   copy (40 MB per factor at 1e7 rows, fresh pages on a first fit). */
static lcodes *design_codes(lua_State *L, int idx, const char *name) {
  idx = lua_absindex(L, idx);
  sp_design *des = sp_lua_check_design(L, idx);
  const sp_design_factor *f = sp_design_factor_find(des, name);
  if (f == NULL) {
    sp_lua_errorf(L, "the design has no fixed effect or extra variable '%s' (ask for it with opts.extra)", name);
  }
  lcodes *c = push_codes_uv(L, des->n, 0);
  c->code = f->code;
  c->nlevels = f->nlevels;
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, -2, 1);
  return c;
}

static int l_codes(lua_State *L) {
  lcodes *c = luaL_testudata(L, 1, SP_DESIGN_T) ? design_codes(L, 1, luaL_checkstring(L, 2))
                                                 : check_codes(L, 1, 0, "sp.codes argument");
  (void)c;
  return 1;
}

/* ---- sp.lsfit ------------------------------------------------------------------ */

/* Field `field` of the options table at `opts` as a number (def when nil);
   anything else is an error naming the option, not "bad argument #-1". */
static double opt_number(lua_State *L, int opts, const char *field, double def, const char *op) {
  double v = def;
  int t = lua_getfield(L, opts, field);
  if (t != LUA_TNIL) {
    if (t != LUA_TNUMBER) sp_lua_errorf(L, "%s: option '%s' must be a number, got a %s", op, field, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* The same for an integer at least `lo` (a negative value would wrap when
   stored in a size_t). */
static lua_Integer opt_integer(lua_State *L, int opts, const char *field, lua_Integer def, lua_Integer lo,
                               const char *op) {
  lua_Integer v = def;
  if (lua_getfield(L, opts, field) != LUA_TNIL) {
    int isint = 0;
    v = lua_tointegerx(L, -1, &isint);
    if (!isint || lua_type(L, -1) != LUA_TNUMBER || v < lo) {
      char bound[32] = "";
      if (lo != LUA_MININTEGER) snprintf(bound, sizeof bound, " >= %lld", (long long)lo);
      sp_lua_errorf(L, "%s: option '%s' must be an integer%s, got %s", op, field, bound, luaL_tolstring(L, -1, NULL));
    }
  }
  lua_pop(L, 1);
  return v;
}

/* Option 'threads': 1 or 2 (2.0 is 2, as for the design's, the demeaning's
   and least squares' threads: a scenario's YAML number may arrive as a float). */
static int opt_threads(lua_State *L, int opts, const char *op) {
  int isint = 1;
  lua_Integer t = 1;
  if (lua_getfield(L, opts, "threads") != LUA_TNIL) t = lua_tointegerx(L, -1, &isint);
  if (!isint || (t != 1 && t != 2))
    sp_lua_errorf(L, "%s: option 'threads' must be 1 or 2, got %s", op, luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  return (int)t;
}

static const double *opt_vector(lua_State *L, int opts, const char *field, size_t n) {
  const double *v = NULL;
  if (lua_getfield(L, opts, field) != LUA_TNIL) {
    gsl_matrix *m = sp_lua_test_matrix(L, -1);
    if (m == NULL || m->size1 * m->size2 != n || (m->size2 != 1 && m->size1 != 1) || (m->size2 != 1 && m->tda != m->size2))
      sp_lua_errorf(L, "option '%s' must be a vector (matrix) of %zu entries", field, n);
    if (m->size2 == 1 && m->tda != 1)
      sp_lua_errorf(L, "option '%s' must be a contiguous vector (use :copy())", field);
    v = m->data;
  }
  lua_pop(L, 1);  /* the caller keeps the options table, which pins the matrix */
  return v;
}

/* ---- row sources (rows.h) ----------------------------------------------------------- */

typedef struct {
  sp_demean_ws *ws;
  size_t n, nfe;
  size_t nlevels[8];
  unsigned long long gen;  /* bumped whenever ws solves again: its rows minus the effects change */
} labsorb;

static labsorb *check_absorb(lua_State *L, int idx);

#define SP_ROWS_T "spillover.rows"

enum { ROWS_DESIGN, ROWS_WITHIN, ROWS_SELECT, ROWS_RESID };

/* A row source, with what it reads pinned in its user values: the design and
   its frame (ROWS_DESIGN: core.design_rows), the workspace and the raw rows
   it solved (ROWS_WITHIN: absorb:within), the rows it selects from
   (ROWS_SELECT: rows:select), the rows a fit read (ROWS_RESID: a fit's
   residuals and kept regressors, core.lsfit's eX).  The sources point into
   this userdata, which Lua never moves. */
typedef struct {
  int kind;
  unsigned long long gen;  /* ROWS_WITHIN: the workspace's solve these rows read */
  union {
    sp_design_rows design;
    sp_demean_within within;
    sp_rows_select select;
    sp_lsfit_resid resid;
  } u;
  size_t cols[SP_ROWS_MAXSEL];
} lrows;

static const sp_rows *rows_of(const lrows *r) {
  switch (r->kind) {
    case ROWS_DESIGN: return &r->u.design.rows;
    case ROWS_WITHIN: return &r->u.within.rows;
    case ROWS_RESID: return &r->u.resid.rows;
    default: return &r->u.select.rows;
  }
}

/* The source at idx, after checking that what it reads is still there and
   unchanged: the design's frame columns, a workspace not solved again since. */
static const sp_rows *check_rows(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lrows *r = luaL_checkudata(L, idx, SP_ROWS_T);
  lua_getiuservalue(L, idx, 1);
  lua_getiuservalue(L, idx, 2);
  int top = lua_gettop(L);
  if (r->kind == ROWS_DESIGN) {
    const sp_design *d = sp_lua_check_design(L, top - 1);
    if (!sp_design_readable(d, sp_lua_check_frame(L, top)))
      sp_lua_errorf(L, "rows: the frame no longer holds the columns of %s these rows read (replaced or dropped)",
                    d->yname);
  } else if (r->kind == ROWS_WITHIN) {
    labsorb *a = check_absorb(L, top - 1);
    if (a->gen != r->gen) sp_lua_errorf(L, "rows: the fixed effects were solved again since these rows were made");
    check_rows(L, top);
  } else {
    check_rows(L, top - 1);
  }
  lua_pop(L, 2);
  return rows_of(r);
}

static lrows *push_rows(lua_State *L, int kind) {
  lrows *r = lua_newuserdatauv(L, sizeof *r, 2);
  memset(r, 0, sizeof *r);
  r->kind = kind;
  luaL_setmetatable(L, SP_ROWS_T);
  return r;
}

/* Pin what the rows on top read: the values at stack indices first and
   second (0: none) become its user values 1 and 2. */
static void rows_pin(lua_State *L, int first, int second) {
  lua_pushvalue(L, first);
  lua_setiuservalue(L, -2, 1);
  if (second == 0) return;
  lua_pushvalue(L, second);
  lua_setiuservalue(L, -2, 2);
}

/* core.design_rows(des, d) -> rows | nil: the design's [y X] read from the
   frame d it was built on, never stored (sp_design_rows_init); nil when a
   column is not a plain column of d (derived terms, dummies) or d changed. */
static int l_design_rows(lua_State *L) {
  const sp_design *d = sp_lua_check_design(L, 1);
  const sp_frame *f = sp_lua_check_frame(L, 2);
  lrows *r = push_rows(L, ROWS_DESIGN);
  if (sp_design_rows_init(&r->u.design, d, f) != 0) {
    lua_pushnil(L);
    return 1;
  }
  rows_pin(L, 1, 2);
  return 1;
}

static int rows_nrow(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_rows(L, 1)->n);
  return 1;
}

static int rows_ncol(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_rows(L, 1)->p);
  return 1;
}

/* rows:select({j1, j2, ...}) -> rows: those columns (1-based), in that
   order; the rows themselves when that is all of them in order (a fit that
   dropped no column), which then need no copying. */
static int rows_select(lua_State *L) {
  const sp_rows *src = check_rows(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t m = lua_rawlen(L, 2);
  if (m > SP_ROWS_MAXSEL || src->p > SP_ROWS_MAXSEL)
    return sp_lua_errorf(L, "rows: select reads at most %d columns", SP_ROWS_MAXSEL);
  size_t cols[SP_ROWS_MAXSEL];
  int identity = m == src->p;
  for (size_t j = 0; j < m; j++) {
    lua_rawgeti(L, 2, (lua_Integer)j + 1);
    int isint = 0;
    lua_Integer c = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    if (!isint || c < 1 || (size_t)c > src->p)
      return sp_lua_errorf(L, "rows: select: column %zu is not an integer in 1..%zu", j + 1, src->p);
    cols[j] = (size_t)c - 1;
    identity &= cols[j] == j;
  }
  if (identity) {
    lua_settop(L, 1);
    return 1;
  }
  const lrows *from = lua_touserdata(L, 1);
  if (from->kind == ROWS_WITHIN) {
    /* Columns of rows minus their effects: read and subtract only those. */
    const sp_demean_within *w = &from->u.within;
    lrows *r = push_rows(L, ROWS_WITHIN);
    r->gen = from->gen;
    for (size_t j = 0; j < m; j++) r->cols[j] = w->cols ? w->cols[cols[j]] : cols[j];
    sp_demean_within_init(&r->u.within, w->ws, w->raw, r->cols, m);  /* sizes checked above */
    for (int u = 1; u <= 2; u++) {  /* the same workspace and raw rows */
      lua_getiuservalue(L, 1, u);
      lua_setiuservalue(L, -2, u);
    }
    return 1;
  }
  lrows *r = push_rows(L, ROWS_SELECT);
  memcpy(r->cols, cols, m * sizeof *cols);
  sp_rows_select_init(&r->u.select, src, r->cols, m);  /* sizes checked above */
  rows_pin(L, 1, 0);
  return 1;
}

/* rows:column(j) -> n x 1 matrix: column j (1-based) stored, for what a
   caller needs whole (a fit's residuals when asked for them). */
static int rows_column(lua_State *L) {
  const sp_rows *src = check_rows(L, 1);
  lua_Integer j = luaL_checkinteger(L, 2);
  if (j < 1 || (lua_Integer)src->p < j) return sp_lua_errorf(L, "rows: column %lld is not in 1..%zu", (long long)j, src->p);
  gsl_matrix *out = sp_lua_matrix_new(L, src->n, 1);
  double *buf = lua_newuserdatauv(L, SP_ROWS_BLOCK * src->p * sizeof *buf, 0);
  for (size_t r0 = 0; r0 < src->n; r0 += SP_ROWS_BLOCK) {
    size_t r1 = src->n - r0 < SP_ROWS_BLOCK ? src->n : r0 + SP_ROWS_BLOCK;
    src->read(src, r0, r1, buf, src->p);
    for (size_t i = r0; i < r1; i++) out->data[i] = buf[(i - r0) * src->p + (size_t)j - 1];
  }
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg rows_meta[] = {{NULL, NULL}};

static const luaL_Reg rows_meth[] = {
  {"nrow", rows_nrow},
  {"ncol", rows_ncol},
  {"select", rows_select},
  {"column", rows_column},
  {NULL, NULL}
};

/* Rows [r0, r1) of the n x p matrix or source behind a pass: a block of the
   matrix in place, or the source's rows read into buf (SP_ROWS_BLOCK x p). */
static const double *block_of(const gsl_matrix *M, const sp_rows *src, size_t r0, size_t r1, double *buf,
                              size_t *ld) {
  if (M != NULL) {
    *ld = M->tda;
    return M->data + r0 * M->tda;
  }
  src->read(src, r0, r1, buf, src->p);
  *ld = src->p;
  return buf;
}

static int lsfit_gc(lua_State *L) {
  sp_lsfit_clear(lua_touserdata(L, 1));
  return 0;
}

/* Option `field` as an array of k strings, in a userdata of pointers left
   on the stack (the strings are pinned by the options table); NULL when nil. */
static const char *const *opt_names(lua_State *L, int opts, const char *field, size_t k) {
  if (lua_getfield(L, opts, field) == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1) || lua_rawlen(L, -1) != k)
    sp_lua_errorf(L, "lsfit: option '%s' must be an array of %zu names", field, k);
  const char **names = lua_newuserdatauv(L, (k ? k : 1) * sizeof *names, 0);
  for (size_t j = 0; j < k; j++) {
    if (lua_rawgeti(L, -2, (lua_Integer)j + 1) != LUA_TSTRING)
      sp_lua_errorf(L, "lsfit: option '%s' must be an array of %zu names (entry %zu is not a string)", field, k,
                    j + 1);
    names[j] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  lua_remove(L, -2);
  return names;
}

/* sp.lsfit(X, y [, opts]), or core.lsfit(rows [, opts]) for a source whose
   column 1 is y and whose other columns are X (the same bits as the
   matrices those rows would fill).  With a source and resid = false the
   residuals are neither stored nor summed: the result has no resid and no
   ssr but eX, the rows [e Xk] (Xk the kept columns), from which sp.vcov
   reads both in its own pass and reports the ssr (info.ssr, the same bits). */
static int l_lsfit(lua_State *L) {
  static const char *const allowed[] = {"weights", "scale", "tol", "names", "yname", "threads", "resid", NULL};
  const sp_rows *src = luaL_testudata(L, 1, SP_ROWS_T) ? check_rows(L, 1) : NULL;
  gsl_matrix *X = NULL, *y = NULL;
  int oi = src ? 2 : 3;
  if (src == NULL) {
    X = sp_lua_check_matrix(L, 1);
    y = sp_lua_check_matrix(L, 2);
    if (y->size1 != X->size1 || y->size2 != 1)
      return sp_lua_errorf(L, "lsfit: y must be %zu x 1 to match X (%zu x %zu), got %zu x %zu", X->size1, X->size1,
                           X->size2, y->size1, y->size2);
  } else if (src->p == 0) {
    return sp_lua_errorf(L, "lsfit: the rows have no column y");
  }
  size_t n = src ? src->n : X->size1, k = src ? src->p - 1 : X->size2;
  sp_lsfit_opts o = {NULL, NULL, 0, NULL, NULL, 1, 0};
  if (lua_istable(L, oi)) {
    sp_lua_check_options(L, oi, "lsfit", allowed);
    o.w = opt_vector(L, oi, "weights", n);
    o.scale = opt_vector(L, oi, "scale", k);
    o.tol = opt_number(L, oi, "tol", 0, "lsfit");
    if (!(o.tol >= 0 && o.tol < 1))
      return sp_lua_errorf(L, "lsfit: option 'tol' must be >= 0 and < 1, got %g", o.tol);
    o.threads = (int)opt_integer(L, oi, "threads", 1, 1, "lsfit");
    o.names = opt_names(L, oi, "names", k);  /* the pointer array stays on the stack */
    if (lua_getfield(L, oi, "yname") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING) return sp_lua_errorf(L, "lsfit: option 'yname' must be a string");
      o.yname = lua_tostring(L, -1);  /* pinned by the options table */
    }
    lua_pop(L, 1);
    if (lua_getfield(L, oi, "resid") != LUA_TNIL) {
      if (!lua_isboolean(L, -1)) return sp_lua_errorf(L, "lsfit: option 'resid' must be a boolean");
      o.defer_ssr = !lua_toboolean(L, -1);
      if (o.defer_ssr && src == NULL)
        return sp_lua_errorf(L, "lsfit: resid = false needs a row source (core.lsfit(rows, opts))");
      if (o.defer_ssr && src->p > SP_ROWS_MAXSEL)
        return sp_lua_errorf(L, "lsfit: resid = false reads at most %d columns, got %zu", SP_ROWS_MAXSEL, src->p);
    }
    lua_pop(L, 1);
  }
  lua_createtable(L, 0, 8);
  int res = lua_gettop(L);
  gsl_matrix *r = NULL;
  if (!o.defer_ssr) {
    r = sp_lua_matrix_new(L, n, 1);
    lua_setfield(L, res, "resid");
  }
  gsl_matrix *b = sp_lua_matrix_new(L, k, 1);
  lua_setfield(L, res, "b");
  /* The result lives in a userdata whose __gc clears it (owner first), so
     an allocation failure while the outputs are built below leaks nothing. */
  sp_lsfit *fitp = lua_newuserdatauv(L, sizeof *fitp, 0);
  sp_lsfit_init(fitp);
  luaL_setmetatable(L, "spillover.lsfit_result");
  sp_error err;
  sp_error_clear(&err);
  double *rd = r ? r->data : NULL;
  int st = src ? sp_lsfit_rows(src, &o, fitp, rd, &err) : sp_lsfit_run(X, y->data, y->tda, &o, fitp, rd, &err);
  if (st != SP_OK) return sp_lua_error(L, &err);
  if (o.defer_ssr) {
    lrows *e = push_rows(L, ROWS_RESID);
    size_t cols[SP_ROWS_MAXSEL], m = 0;
    for (size_t j = 0; j < k; j++)
      if (fitp->keep[j]) cols[m++] = j;
    sp_lsfit_resid_init(&e->u.resid, fitp, src, cols, m);  /* sizes checked above */
    rows_pin(L, 1, 0);
    lua_setfield(L, res, "eX");
  }
  for (size_t j = 0; j < k; j++) gsl_matrix_set(b, j, 0, fitp->b[j]);
  gsl_matrix *B = sp_lua_matrix_new(L, fitp->rank, fitp->rank);
  for (size_t i = 0; i < fitp->rank; i++)
    for (size_t j = 0; j < fitp->rank; j++) gsl_matrix_set(B, i, j, gsl_matrix_get(fitp->bread, i, j));
  lua_setfield(L, res, "bread");
  lua_createtable(L, (int)k, 0);
  for (size_t j = 0; j < k; j++) {
    lua_pushboolean(L, fitp->keep[j]);
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  lua_setfield(L, res, "keep");
  lua_pushinteger(L, (lua_Integer)fitp->rank);
  lua_setfield(L, res, "rank");
  if (!o.defer_ssr || fitp->rank == 0) {  /* no column kept: ssr is yss, known */
    lua_pushnumber(L, fitp->ssr);
    lua_setfield(L, res, "ssr");
  }
  lua_pushnumber(L, fitp->yss);
  lua_setfield(L, res, "yss");
  lua_settop(L, res);  /* the result box is collected (and cleared) later */
  return 1;
}

/* ---- sp.vcov -------------------------------------------------------------------- */

static const char *const vcov_types[] = {"iid", "hc0", "hc1", "hc2", "hc3", "cluster", "driscoll_kraay", NULL};
static const char *const dof_names[] = {"default", "none", "n/(n-k)", "(n-1)/(n-k)", NULL};
static const char *const gadj_names[] = {"none", "each", "min", NULL};
static const char *const tdf_names[] = {"resid", "clusters", NULL};

static int opt_enum(lua_State *L, int opts, const char *field, const char *const *names, int def) {
  int v = def;
  if (lua_getfield(L, opts, field) != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING)
      sp_lua_errorf(L, "vcov: option '%s' must be a string, got a %s", field, luaL_typename(L, -1));
    const char *s = lua_tostring(L, -1);
    v = -1;
    for (int i = 0; names[i]; i++)
      if (strcmp(names[i], s) == 0) v = i;
    if (v < 0) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (int i = 0; names[i]; i++) {
        if (i) luaL_addstring(&b, ", ");
        luaL_addstring(&b, names[i]);
      }
      luaL_pushresult(&b);
      sp_lua_errorf(L, "vcov: unknown %s '%s' (expected one of: %s)", field, s, lua_tostring(L, -1));
    }
  }
  lua_pop(L, 1);
  return v;
}

/* sp.vcov(X, e, bread, opts) -> V, info; core.vcov(rows, nil, bread, opts)
   for a source whose column 1 is the residual and whose other columns are
   X (core.lsfit's eX). */
static int l_vcov(lua_State *L) {
  const sp_rows *src = luaL_testudata(L, 1, SP_ROWS_T) ? check_rows(L, 1) : NULL;
  gsl_matrix *X = src ? NULL : sp_lua_check_matrix(L, 1);
  gsl_matrix *e = src && lua_isnil(L, 2) ? NULL : sp_lua_check_matrix(L, 2);
  gsl_matrix *B = sp_lua_check_matrix(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  if (src && e == NULL && src->p == 0) return sp_lua_errorf(L, "vcov: the rows have no residual column");
  size_t n = src ? src->n : X->size1, k = src ? src->p - (e == NULL) : X->size2;
  if (e && (e->size1 != n || e->size2 != 1 || e->tda != 1))
    return sp_lua_errorf(L, "vcov: resid must be a contiguous %zu x 1 vector, got %zu x %zu", n, e->size1, e->size2);
  if (B->size1 != k || B->size2 != k)
    return sp_lua_errorf(L, "vcov: bread must be %zu x %zu, got %zu x %zu", k, k, B->size1, B->size2);
  static const char *const allowed[] = {"type", "compat", "dof", "gadj", "tdf", "k_df", "multi0", "fix_psd",
                                       "weights", "lag", "cluster", "cluster_names", "time", "time_name", "threads", NULL};
  sp_lua_check_options(L, 4, "vcov", allowed);
  /* Without a type, cluster vectors mean a clustered covariance and a time
     vector Driscoll-Kraay: ignoring them and returning iid errors would be a
     silent wrong answer. */
  int given = lua_getfield(L, 4, "type") != LUA_TNIL;
  int has_cluster = lua_getfield(L, 4, "cluster") == LUA_TTABLE;
  int has_time = lua_getfield(L, 4, "time") != LUA_TNIL;
  lua_pop(L, 3);
  int deflt = has_cluster ? SP_VCOV_CLUSTER : has_time ? SP_VCOV_DRISCOLL_KRAAY : SP_VCOV_IID;
  sp_vcov_spec spec;
  sp_vcov_spec_init(&spec, (sp_vcov_type)opt_enum(L, 4, "type", vcov_types, deflt));
  if (given && has_cluster && spec.type != SP_VCOV_CLUSTER)
    return sp_lua_errorf(L, "vcov: 'cluster' is given but type is '%s'; use type = \"cluster\" or drop 'cluster'",
                         sp_vcov_type_name(spec.type));
  if (given && has_time && spec.type != SP_VCOV_DRISCOLL_KRAAY)
    return sp_lua_errorf(L, "vcov: 'time' is given but type is '%s'; use type = \"driscoll_kraay\" or drop 'time'",
                         sp_vcov_type_name(spec.type));
  sp_error err;
  sp_error_clear(&err);
  if (lua_getfield(L, 4, "compat") != LUA_TNIL) {
    if (sp_vcov_preset(&spec, luaL_checkstring(L, -1), &err) != SP_OK) return sp_lua_error(L, &err);
  }
  lua_pop(L, 1);
  int dof = opt_enum(L, 4, "dof", dof_names, -1);
  if (dof >= 0) spec.dof = (sp_vcov_dof)dof;
  int gadj = opt_enum(L, 4, "gadj", gadj_names, -1);
  if (gadj >= 0) spec.gadj = (sp_vcov_gadj)gadj;
  int tdf = opt_enum(L, 4, "tdf", tdf_names, -1);
  if (tdf >= 0) spec.tdf = (sp_vcov_tdf)tdf;
  spec.k_df = (size_t)opt_integer(L, 4, "k_df", 0, 0, "vcov");
  if (lua_getfield(L, 4, "multi0") != LUA_TNIL) spec.multi0 = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, 4, "fix_psd") != LUA_TNIL) spec.fix_psd = lua_toboolean(L, -1);
  lua_pop(L, 1);
  spec.weights = opt_vector(L, 4, "weights", n);
  spec.threads = opt_threads(L, 4, "vcov");
  /* absent: plm's default floor(T^(1/4)) (spec.lag -1) */
  int has_lag = lua_getfield(L, 4, "lag") != LUA_TNIL;
  lua_pop(L, 1);
  if (has_lag) {
    lua_Integer lag = opt_integer(L, 4, "lag", 0, LUA_MININTEGER, "vcov");
    if (lag < 0) return sp_lua_errorf(L, "vcov: option 'lag' must be >= 0 (0 <= lag <= T - 1), got %lld", (long long)lag);
    spec.lag = (long)lag;
  }
  /* Cluster dimensions: opts.cluster = {v1, v2, ...}, names in opts.cluster_names. */
  int ctype = lua_getfield(L, 4, "cluster");
  if (ctype != LUA_TNIL && ctype != LUA_TTABLE)
    return sp_lua_errorf(L, "vcov: 'cluster' must be an array of vectors, got a %s", luaL_typename(L, -1));
  if (ctype == LUA_TTABLE) {
    int ct = lua_gettop(L);
    size_t nc = lua_rawlen(L, ct);
    if (nc == 0 || nc > SP_VCOV_MAXWAY) return sp_lua_errorf(L, "vcov: 'cluster' must list 1 to %d vectors", SP_VCOV_MAXWAY);
    lua_getfield(L, 4, "cluster_names");
    int cn = lua_gettop(L);
    for (size_t j = 0; j < nc; j++) {
      lua_rawgeti(L, ct, (lua_Integer)j + 1);
      lcodes *c = check_codes(L, -1, n, "vcov: cluster variable");
      lua_remove(L, -2);
      spec.cluster[j] = c->code;   /* pinned: the codes userdata stays on the stack */
      if (lua_istable(L, cn)) {
        lua_rawgeti(L, cn, (lua_Integer)j + 1);
        spec.cluster_name[j] = lua_tostring(L, -1);  /* pinned by the names table */
        lua_pop(L, 1);
      }
    }
    spec.ncluster = nc;
  }
  if (lua_getfield(L, 4, "time") != LUA_TNIL) {
    lcodes *c = check_codes(L, -1, n, "vcov: time variable");
    spec.time = c->code;
  }
  if (lua_getfield(L, 4, "time_name") != LUA_TNIL) spec.time_name = lua_tostring(L, -1);  /* pinned by opts */
  gsl_matrix *V = sp_lua_matrix_new(L, k, k);
  int vidx = lua_gettop(L);
  sp_vcov_info info;
  memset(&info, 0, sizeof info);
  int st = src ? sp_vcov_compute_rows(src, e ? e->data : NULL, B, &spec, V, &info, &err)
               : sp_vcov_compute(X, e->data, B, &spec, V, &info, &err);
  if (st != SP_OK) return sp_lua_error(L, &err);
  lua_pushvalue(L, vidx);
  lua_createtable(L, 0, 10);
  lua_pushnumber(L, info.dof_factor); lua_setfield(L, -2, "dof_factor");
  lua_pushnumber(L, info.df_t); lua_setfield(L, -2, "df_t");
  lua_pushnumber(L, info.sigma2); lua_setfield(L, -2, "sigma2");
  lua_pushnumber(L, info.ssr); lua_setfield(L, -2, "ssr");
  lua_pushinteger(L, (lua_Integer)info.k_df); lua_setfield(L, -2, "k_df");
  lua_pushinteger(L, (lua_Integer)info.nclipped); lua_setfield(L, -2, "nclipped");
  lua_pushinteger(L, (lua_Integer)info.nperiods); lua_setfield(L, -2, "nperiods");
  lua_pushinteger(L, (lua_Integer)info.lag); lua_setfield(L, -2, "lag");
  if (spec.type == SP_VCOV_DRISCOLL_KRAAY) {
    lua_pushnumber(L, info.gadj[0] > 0.0 ? info.gadj[0] : 1.0);
    lua_setfield(L, -2, "period_factor");
  }
  lua_createtable(L, (int)spec.ncluster, 0);
  for (size_t j = 0; j < spec.ncluster; j++) {
    lua_pushinteger(L, (lua_Integer)info.ngroups[j]);
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  lua_setfield(L, -2, "ngroups");
  lua_pushstring(L, sp_vcov_type_name(spec.type)); lua_setfield(L, -2, "type");
  return 2;
}

/* sp.vcov_presets() -> array of the package conventions of sp_vcov_preset,
   in its order: {name, cluster = {gadj, dof, tdf, multi0, fix_psd},
   driscoll_kraay = {gadj, dof, tdf}, k_df = "all" | "rank" | "nonnested",
   t_df_groups}, with the option names sp.vcov takes.  The linear estimators
   read it instead of keeping their own copy. */
static int l_vcov_presets(lua_State *L) {
  static const char *const kdf_names[] = {"all", "rank", "nonnested"};
  size_t n;
  const sp_vcov_preset_def *p = sp_vcov_presets(&n);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 5);
    lua_pushstring(L, p[i].name); lua_setfield(L, -2, "name");
    lua_createtable(L, 0, 5);
    lua_pushstring(L, gadj_names[p[i].cluster_gadj]); lua_setfield(L, -2, "gadj");
    lua_pushstring(L, dof_names[p[i].cluster_dof]); lua_setfield(L, -2, "dof");
    lua_pushstring(L, tdf_names[p[i].cluster_tdf]); lua_setfield(L, -2, "tdf");
    lua_pushboolean(L, p[i].cluster_multi0); lua_setfield(L, -2, "multi0");
    lua_pushboolean(L, p[i].cluster_fix_psd); lua_setfield(L, -2, "fix_psd");
    lua_setfield(L, -2, "cluster");
    lua_createtable(L, 0, 3);
    lua_pushstring(L, gadj_names[p[i].dk_gadj]); lua_setfield(L, -2, "gadj");
    lua_pushstring(L, dof_names[p[i].dk_dof]); lua_setfield(L, -2, "dof");
    lua_pushstring(L, tdf_names[p[i].dk_tdf]); lua_setfield(L, -2, "tdf");
    lua_setfield(L, -2, "driscoll_kraay");
    lua_pushstring(L, kdf_names[p[i].kdf]); lua_setfield(L, -2, "k_df");
    lua_pushboolean(L, p[i].t_df_groups); lua_setfield(L, -2, "t_df_groups");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* ---- sp.absorb: the fixed-effects workspace ---------------------------------------- */

static labsorb *check_absorb(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  labsorb *a = luaL_checkudata(L, idx, SP_ABSORB_T);
  if (a->ws == NULL) sp_lua_errorf(L, "attempt to use a closed spillover.absorb");
  /* The workspace borrows its codes (sp_demean_new): they must still be live. */
  lua_getiuservalue(L, idx, 1);
  for (size_t j = 0; j < a->nfe; j++) {
    lua_rawgeti(L, -1, (lua_Integer)j + 1);
    codes_check_live(L, lua_gettop(L), lua_touserdata(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return a;
}

static int absorb_gc(lua_State *L) {
  labsorb *a = luaL_checkudata(L, 1, SP_ABSORB_T);
  sp_demean_free(a->ws);
  a->ws = NULL;
  return 0;
}

/* The code arrays of the workspace at index 1 (pinned by its user value 1,
   which this pushes and leaves on the stack). */
static void absorb_codes(lua_State *L, const labsorb *a, const int32_t **codes) {
  lua_getiuservalue(L, 1, 1);
  for (size_t j = 0; j < a->nfe; j++) {
    lua_rawgeti(L, -1, (lua_Integer)j + 1);
    codes[j] = ((lcodes *)lua_touserdata(L, -1))->code;
    lua_pop(L, 1);
  }
}

/* sp.absorb({v1, v2, ...} [, {weights = w, threads = 1 | 2}]): user value 1
   keeps the codes; two threads count the absorbed parameters (a:dof()) while
   the workspace is set up. */
static int l_absorb(lua_State *L) {
  if (luaL_testudata(L, 1, SP_DESIGN_T)) {
    /* sp.absorb(des [, opts]): the design's fixed effects, as codes. */
    sp_design *des = sp_lua_check_design(L, 1);
    if (des->nfe == 0) return sp_lua_errorf(L, "absorb: the design has no fixed effects");
    lua_createtable(L, (int)des->nfe, 0);
    for (size_t j = 0; j < des->nfe; j++) {
      design_codes(L, 1, des->fe[j].name);
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
    lua_replace(L, 1);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  static const char *const allowed[] = {"weights", "threads", NULL};
  lua_settop(L, 2);  /* the workspace is pushed above the options */
  sp_lua_check_options(L, 2, "absorb", allowed);
  int threads = lua_istable(L, 2) ? opt_threads(L, 2, "absorb") : 1;
  size_t nfe = lua_rawlen(L, 1);
  if (nfe == 0 || nfe > 8) return sp_lua_errorf(L, "absorb: expected 1 to 8 fixed-effect vectors, got %zu", nfe);
  labsorb *a = lua_newuserdatauv(L, sizeof *a, 2);  /* 1: the codes; 2: the rows last solved */
  a->ws = NULL;
  a->nfe = nfe;
  a->gen = 0;
  luaL_setmetatable(L, SP_ABSORB_T);
  int ud = lua_gettop(L);
  lua_createtable(L, (int)nfe, 0);
  int keep = lua_gettop(L);
  const int32_t *codes[8];
  size_t n = 0;
  for (size_t j = 0; j < nfe; j++) {
    lua_rawgeti(L, 1, (lua_Integer)j + 1);
    lcodes *c = check_codes(L, -1, n, "absorb: fixed-effect vector");
    lua_remove(L, -2);
    n = c->n;
    codes[j] = c->code;
    a->nlevels[j] = c->nlevels;
    lua_rawseti(L, keep, (lua_Integer)j + 1);
  }
  a->n = n;
  const double *w = lua_istable(L, 2) ? opt_vector(L, 2, "weights", n) : NULL;
  sp_error err;
  sp_error_clear(&err);
  a->ws = sp_demean_new(n, nfe, codes, a->nlevels, w, threads, &err);
  if (a->ws == NULL) return sp_lua_error(L, &err);
  lua_pushvalue(L, keep);
  lua_setiuservalue(L, ud, 1);
  lua_pushvalue(L, ud);
  return 1;
}

/* The workspace at index 1 is about to solve again: sources that read its
   previous solution (a:within) become stale, and it no longer holds one. */
static void solved_again(lua_State *L, labsorb *a) {
  a->gen++;
  lua_pushnil(L);
  lua_setiuservalue(L, 1, 2);
}

/* The info table of a demeaning or a solve (st its status): non-convergence
   raises unless allowed, and is then a warning in the table. */
static int push_demean_info(lua_State *L, int st, int allow, const sp_demean_info *info, const sp_error *err) {
  if (st != SP_OK && !(st == SP_ECONV && allow)) return sp_lua_error(L, err);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)info->iter); lua_setfield(L, -2, "iter");
  lua_pushboolean(L, info->converged); lua_setfield(L, -2, "converged");
  lua_pushnumber(L, info->achieved); lua_setfield(L, -2, "achieved");
  if (st == SP_ECONV) { lua_pushstring(L, err->msg); lua_setfield(L, -2, "warning"); }
  return 1;
}

/* The options of a:demean, a:solve and a:fixef; returns allow_nonconvergence. */
static int demean_options(lua_State *L, int idx, sp_demean_options *opt) {
  static const char *const allowed[] = {"tol", "maxiter", "threads", "accelerate", "allow_nonconvergence", NULL};
  sp_demean_options_init(opt);
  if (lua_isnoneornil(L, idx)) return 0;
  sp_lua_check_options(L, idx, "demean", allowed);
  opt->tol = opt_number(L, idx, "tol", opt->tol, "demean");
  opt->maxiter = (size_t)opt_integer(L, idx, "maxiter", (lua_Integer)opt->maxiter, 1, "demean");
  opt->threads = (int)opt_integer(L, idx, "threads", opt->threads, LUA_MININTEGER, "demean");
  if (lua_getfield(L, idx, "accelerate") != LUA_TNIL) opt->accelerate = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, idx, "allow_nonconvergence");
  int allow = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return allow;
}

/* The start of a:demean and a:solve: options at index 3 into opt, info and
   err cleared, the workspace's earlier rows made stale.  Returns
   allow_nonconvergence. */
static int solve_begin(lua_State *L, labsorb *a, sp_demean_options *opt, sp_demean_info *info, sp_error *err) {
  int allow = demean_options(L, 3, opt);
  memset(info, 0, sizeof *info);
  sp_error_clear(err);
  solved_again(L, a);
  return allow;
}

/* a:demean(M [, opts]) -> info; M (n x p) is demeaned in place.  Returns
   info {iter, converged, achieved}; non-convergence raises unless
   opts.allow_nonconvergence (the caller then warns). */
static int absorb_demean(lua_State *L) {
  labsorb *a = check_absorb(L, 1);
  gsl_matrix *M = sp_lua_check_matrix(L, 2);
  if (M->size1 != a->n) return sp_lua_errorf(L, "demean: the matrix has %zu rows, the fixed effects %zu", M->size1, a->n);
  sp_demean_options opt;
  sp_demean_info info;
  sp_error err;
  int allow = solve_begin(L, a, &opt, &info, &err);
  int st = sp_demean_run(a->ws, M->data, M->size1, M->size2, M->tda, &opt, &info, &err);
  return push_demean_info(L, st, allow, &info, &err);
}

/* a:solve(rows [, opts]) -> info (as a:demean): the fixed-effect
   coefficients of the rows' columns, nothing row-sized written; then
   a:within(rows) reads the rows minus the effects. */
static int absorb_solve(lua_State *L) {
  labsorb *a = check_absorb(L, 1);
  const sp_rows *src = check_rows(L, 2);
  if (src->n != a->n) return sp_lua_errorf(L, "solve: the rows are %zu, the fixed effects %zu", src->n, a->n);
  sp_demean_options opt;
  sp_demean_info info;
  sp_error err;
  int allow = solve_begin(L, a, &opt, &info, &err);
  int st = sp_demean_solve(a->ws, src, &opt, &info, &err);
  if (st == SP_OK || (st == SP_ECONV && allow)) {
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 2);
  }
  return push_demean_info(L, st, allow, &info, &err);
}

/* a:within(rows) -> rows: the rows a:solve(rows) last solved, minus their
   fixed effects (the values a:demean would have written), valid until the
   workspace solves again. */
static int absorb_within(lua_State *L) {
  labsorb *a = check_absorb(L, 1);
  const sp_rows *raw = check_rows(L, 2);
  lua_getiuservalue(L, 1, 2);
  if (!lua_rawequal(L, -1, 2)) return sp_lua_errorf(L, "within: solve these rows first (a:solve(rows))");
  lua_pop(L, 1);
  lrows *r = push_rows(L, ROWS_WITHIN);
  r->gen = a->gen;
  sp_demean_within_init(&r->u.within, a->ws, raw, NULL, 0);
  rows_pin(L, 1, 2);
  return 1;
}

/* a:fixef(r) -> {coef vector per factor (nlevels x 1 matrices)} */
static int absorb_fixef(lua_State *L) {
  labsorb *a = check_absorb(L, 1);
  gsl_matrix *r = sp_lua_check_matrix(L, 2);
  if (r->size1 != a->n || r->size2 != 1 || r->tda != 1)
    return sp_lua_errorf(L, "fixef: expected a contiguous %zu x 1 vector", a->n);
  sp_demean_options opt;
  demean_options(L, 3, &opt);
  lua_createtable(L, (int)a->nfe, 0);
  double *coef[8];
  for (size_t j = 0; j < a->nfe; j++) {
    gsl_matrix *c = sp_lua_matrix_new(L, a->nlevels[j], 1);
    coef[j] = c->data;
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  sp_error err;
  sp_error_clear(&err);
  solved_again(L, a);  /* r's fixed effects are solved on the same workspace */
  if (sp_demean_fixef(a->ws, r->data, coef, &opt, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

/* a:dof() -> parameters absorbed, connected components of the first two. */
static int absorb_dof(lua_State *L) {
  labsorb *a = check_absorb(L, 1);
  size_t dof = 0, ncomp = 0;
  sp_error err;
  sp_error_clear(&err);
  if (sp_demean_dof(a->ws, &dof, &ncomp, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_pushinteger(L, (lua_Integer)dof);
  lua_pushinteger(L, (lua_Integer)ncomp);
  return 2;
}

/* a:nested(j, cluster) -> is factor j nested in the cluster vector? */
static int absorb_nested(lua_State *L) {
  labsorb *a = check_absorb(L, 1);
  lua_Integer j = luaL_checkinteger(L, 2);
  luaL_argcheck(L, j >= 1 && (size_t)j <= a->nfe, 2, "no such fixed effect");
  lcodes *c = check_codes(L, 3, a->n, "nested: cluster variable");
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, j);
  const lcodes *fe = lua_touserdata(L, -1);
  int nested = 0;
  sp_error err;
  sp_error_clear(&err);
  if (sp_fe_nested(a->n, fe->code, fe->nlevels, c->code, c->nlevels, NULL, &nested, &err) != SP_OK)
    return sp_lua_error(L, &err);
  lua_pushboolean(L, nested);
  return 1;
}

/* a:singletons() -> array of the 1-based rows that are alone in a level of
   some factor, found iteratively (dropping one can make another a singleton). */
static int absorb_singletons(lua_State *L) {
  labsorb *a = check_absorb(L, 1);
  const int32_t *codes[8];
  absorb_codes(L, a, codes);
  unsigned char *keep = lua_newuserdatauv(L, a->n ? a->n : 1, 0);
  memset(keep, 1, a->n);
  size_t ndropped = 0;
  sp_error err;
  sp_error_clear(&err);
  if (sp_fe_singletons(a->n, a->nfe, codes, a->nlevels, keep, &ndropped, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_createtable(L, (int)ndropped, 0);
  lua_Integer k = 0;
  for (size_t i = 0; i < a->n; i++)
    if (!keep[i]) {
      lua_pushinteger(L, (lua_Integer)i + 1);
      lua_rawseti(L, -2, ++k);
    }
  return 1;
}

/* a:means(j, M) -> nlevels_j x p matrix of the plain means of M's columns per
   level of factor j (NaN for an empty level). */
/* a:coef(j) -> the coefficients of factor j from the last demean, solve or
   fixef (levels x columns then solved); with one factor, the (weighted)
   level means of those columns. */
static int absorb_coef(lua_State *L) {
  labsorb *a = check_absorb(L, 1);
  lua_Integer j = luaL_checkinteger(L, 2);
  luaL_argcheck(L, j >= 1 && (size_t)j <= a->nfe, 2, "no such fixed effect");
  size_t p = 0;
  const double *c = sp_demean_coef(a->ws, (size_t)j - 1, &p);
  if (c == NULL || p == 0) return sp_lua_errorf(L, "coef: nothing solved yet (a:demean or a:solve first)");
  size_t L0 = a->nlevels[j - 1];
  gsl_matrix *out = sp_lua_matrix_new(L, L0, p);
  for (size_t l = 0; l < L0; l++)
    for (size_t q = 0; q < p; q++) out->data[l * out->tda + q] = c[l * p + q];
  return 1;
}

/* a:means(j, M | rows) -> the means of the columns within each level of
   fixed effect j (levels x p). */
static int absorb_means(lua_State *L) {
  labsorb *a = check_absorb(L, 1);
  lua_Integer j = luaL_checkinteger(L, 2);
  luaL_argcheck(L, j >= 1 && (size_t)j <= a->nfe, 2, "no such fixed effect");
  sp_rows_array arr;
  const sp_rows *src;
  if (luaL_testudata(L, 3, SP_ROWS_T)) {
    src = check_rows(L, 3);
  } else {
    gsl_matrix *M = sp_lua_check_matrix(L, 3);
    sp_rows_array_init(&arr, M->data, M->size1, M->size2, M->tda);
    src = &arr.rows;
  }
  if (src->n != a->n)
    return sp_lua_errorf(L, "means: the %s has %zu rows, the fixed effects %zu", src == &arr.rows ? "matrix" : "source",
                         src->n, a->n);
  const int32_t *codes[8];
  absorb_codes(L, a, codes);
  gsl_matrix *out = sp_lua_matrix_new(L, a->nlevels[j - 1], src->p);
  sp_error err;
  sp_error_clear(&err);
  if (sp_fe_group_means(a->n, codes[j - 1], a->nlevels[j - 1], src, out->data, &err) != SP_OK)
    return sp_lua_error(L, &err);
  return 1;
}

static int absorb_info(lua_State *L) {
  labsorb *a = check_absorb(L, 1);
  lua_pushinteger(L, (lua_Integer)a->n);
  lua_createtable(L, (int)a->nfe, 0);
  for (size_t j = 0; j < a->nfe; j++) {
    lua_pushinteger(L, (lua_Integer)a->nlevels[j]);
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  return 2;
}

/* sp.demean(M, fe [, opts]): absorb then demean M in place; returns M, info. */
static int l_demean(lua_State *L) {
  sp_lua_check_matrix(L, 1);
  lua_settop(L, 3);
  /* One options table for both steps: the workspace takes the weights, the
     demeaning the rest. */
  static const char *const allowed[] = {"weights", "tol", "maxiter", "threads", "accelerate", "allow_nonconvergence",
                                        NULL};
  if (!lua_isnoneornil(L, 3)) sp_lua_check_options(L, 3, "demean", allowed);
  lua_pushcfunction(L, l_absorb);
  lua_pushvalue(L, 2);
  if (lua_istable(L, 3)) {
    lua_createtable(L, 0, 1);
    lua_getfield(L, 3, "weights");
    lua_setfield(L, -2, "weights");
  } else {
    lua_pushnil(L);
  }
  lua_call(L, 2, 1);
  lua_pushcfunction(L, absorb_demean);
  lua_pushvalue(L, -2);
  lua_pushvalue(L, 1);
  if (lua_istable(L, 3)) {
    lua_createtable(L, 0, 5);
    for (int i = 1; allowed[i] != NULL; i++) {
      lua_getfield(L, 3, allowed[i]);
      lua_setfield(L, -2, allowed[i]);
    }
  } else {
    lua_pushnil(L);
  }
  lua_call(L, 3, 1);
  lua_pushvalue(L, 1);
  lua_insert(L, -2);
  return 2;
}

static const luaL_Reg absorb_meta[] = {
  {"__gc", absorb_gc},
  {"__close", absorb_gc},
  {NULL, NULL}
};

static const luaL_Reg absorb_meth[] = {
  {"demean", absorb_demean},
  {"solve", absorb_solve},
  {"within", absorb_within},
  {"fixef", absorb_fixef},
  {"dof", absorb_dof},
  {"nested", absorb_nested},
  {"singletons", absorb_singletons},
  {"means", absorb_means},
  {"coef", absorb_coef},
  {"info", absorb_info},
  {NULL, NULL}
};

/* Column sums of (weighted) squares over m rows of x (row stride ld), or,
   when col is not NULL, of the arrays col[j] from their row r0 (a source's
   own arrays, read here so that the loads overlap the sums): about mean
   (when not NULL), else the weighted sums into sum and the uncentred sums of
   squares into raw and the weight sum into *sw.  The sums continue from the
   values given (a chunk's running sums, carried from block to block, so
   reading rows in blocks changes no addition).  p and the flags weighted
   (w != NULL), centred (mean != NULL) and arrays (col != NULL) are
   constants where inlined: the sums live in registers instead of memory x
   might alias, and the loop tests no flag. */
enum { SUMSQ_NARROW = 4 };
SP_INLINE void sumsq_pass(const double *x, size_t ld, const double *const *col, size_t r0, const double *w,
                          size_t m, const size_t p, const double *mean, double *sum, double *raw, double *sw,
                          const int weighted, const int centred, const int arrays) {
  double s[SUMSQ_NARROW], q[SUMSQ_NARROW], t = *sw;
  const double *c[SUMSQ_NARROW];
  for (size_t j = 0; j < p; j++) {
    s[j] = centred ? 0.0 : sum[j];
    q[j] = raw[j];
    c[j] = arrays ? col[j] + r0 : NULL;
  }
  for (size_t i = 0; i < m; i++) {
    double wi = weighted ? w[i] : 1.0;
    if (weighted && !centred) t += wi;
    for (size_t j = 0; j < p; j++) {
      double xv = arrays ? c[j][i] : x[i * ld + j];
      double v = centred ? xv - mean[j] : xv;
      if (!centred) s[j] += wi * v;
      q[j] += wi * v * v;
    }
  }
  for (size_t j = 0; j < p; j++) {
    if (!centred) sum[j] = s[j];
    raw[j] = q[j];
  }
  /* Unweighted, the weight sum is the row count: whole numbers, exact in
     any grouping, and no add a row waits on. */
  if (!weighted && !centred) t += (double)m;
  *sw = t;
}

/* sumsq_pass with the flags as constants. */
SP_INLINE void sumsq_flags(const double *x, size_t ld, const double *const *col, size_t r0, const double *w,
                           size_t m, const size_t p, const double *mean, double *sum, double *raw, double *sw) {
  int f = (w != NULL) << 2 | (mean != NULL) << 1 | (col != NULL);
  switch (f) {
    case 0: sumsq_pass(x, ld, col, r0, w, m, p, mean, sum, raw, sw, 0, 0, 0); break;
    case 1: sumsq_pass(x, ld, col, r0, w, m, p, mean, sum, raw, sw, 0, 0, 1); break;
    case 2: sumsq_pass(x, ld, col, r0, w, m, p, mean, sum, raw, sw, 0, 1, 0); break;
    case 3: sumsq_pass(x, ld, col, r0, w, m, p, mean, sum, raw, sw, 0, 1, 1); break;
    case 4: sumsq_pass(x, ld, col, r0, w, m, p, mean, sum, raw, sw, 1, 0, 0); break;
    case 5: sumsq_pass(x, ld, col, r0, w, m, p, mean, sum, raw, sw, 1, 0, 1); break;
    case 6: sumsq_pass(x, ld, col, r0, w, m, p, mean, sum, raw, sw, 1, 1, 0); break;
    default: sumsq_pass(x, ld, col, r0, w, m, p, mean, sum, raw, sw, 1, 1, 1); break;
  }
}

/* One pass of sumsq_cols over the two fixed chunks of team.h, over a matrix
   M or a source src: chunk c's sums go to part[c] (p sums, p squares, the
   weight sum). */
typedef struct {
  const gsl_matrix *M;
  const sp_rows *src;
  size_t n, p;
  const double *w, *mean;
  double *part[SP_TEAM_CHUNKS];
} sumsq_job;

/* sumsq_pass with the column count a constant up to SUMSQ_NARROW, else one
   column at a time (the weight sum once). */
static void sumsq_any(const double *x, size_t ld, const double *const *col, size_t r0, const double *w, size_t m,
                      size_t p, const double *mean, double *sum, double *raw, double *sw) {
  switch (p) {
    case 1: sumsq_flags(x, ld, col, r0, w, m, 1, mean, sum, raw, sw); break;
    case 2: sumsq_flags(x, ld, col, r0, w, m, 2, mean, sum, raw, sw); break;
    case 3: sumsq_flags(x, ld, col, r0, w, m, 3, mean, sum, raw, sw); break;
    case 4: sumsq_flags(x, ld, col, r0, w, m, 4, mean, sum, raw, sw); break;
    default:
      for (size_t a = 0; a < p; a++) {
        double t = a == 0 ? *sw : 0.0;
        sumsq_flags(x ? x + a : NULL, ld, col ? col + a : NULL, r0, w, m, 1, mean ? mean + a : NULL, sum + a,
                    raw + a, &t);
        if (a == 0) *sw = t;
      }
  }
}

static void sumsq_chunk(void *ctx, int c) {
  sumsq_job *j = ctx;
  size_t i0, i1, p = j->p;
  double *sum = j->part[c], *raw = sum + p, *sw = sum + 2 * p;
  memset(sum, 0, (2 * p + 1) * sizeof *sum);
  sp_team_range(j->n, c, &i0, &i1);
  const double *w = j->w ? j->w + i0 : NULL;
  if (j->src != NULL && j->src->col != NULL) {  /* the source's arrays, in one stretch */
    sumsq_any(NULL, 0, j->src->col, i0, w, i1 - i0, p, j->mean, sum, raw, sw);
    return;
  }
  /* a matrix in one block; a source SP_ROWS_BLOCK rows at a time */
  double buf[SP_ROWS_BLOCK * SP_ROWS_MAXSEL];
  size_t step = j->src ? SP_ROWS_BLOCK : (i1 > i0 ? i1 - i0 : 1);
  for (size_t r0 = i0; r0 < i1; r0 += step) {
    size_t r1 = i1 - r0 < step ? i1 : r0 + step, ld;
    const double *x = block_of(j->M, j->src, r0, r1, buf, &ld);
    sumsq_any(x, ld, NULL, 0, j->w ? j->w + r0 : NULL, r1 - r0, p, j->mean, sum, raw, sw);
  }
}

/* The column sums into sum and the weight sum (when mean is NULL) and the
   sums of squares into raw: the chunks' added in chunk order, so the same
   bits on one thread as on two.  part holds 2 x (2p + 1) doubles; returns
   the weight sum when mean is NULL. */
static double sumsq_cols(sp_team *tm, const gsl_matrix *M, const sp_rows *src, const double *w, const double *mean,
                         double *sum, double *raw, double *part) {
  size_t p = M ? M->size2 : src->p;
  sumsq_job j = {M, src, M ? M->size1 : src->n, p, w, mean, {part, part + 2 * p + 1}};
  sp_team_run(tm, sumsq_chunk, &j);
  for (size_t a = 0; a < p; a++) {
    if (!mean) sum[a] = j.part[0][a] + j.part[1][a];
    raw[a] = j.part[0][p + a] + j.part[1][p + a];
  }
  return j.part[0][2 * p] + j.part[1][2 * p];
}


/* sp.sumsq(M [, {center = bool | m, weights = w, threads = 1 | 2}]) ->
   table of per-column sums of (weighted) squares, about the (weighted)
   column mean when center is true (two passes, so no cancellation), and
   then, when center is given, the table of uncentred ones, which the first
   pass gives for free: a fit needs both of its outcome and reads the rows
   once less.  center = m centres the first m columns only (the second pass
   reads only those; the first table has m entries).  threads = 2 gives the
   same bits as 1. */
static int l_sumsq(lua_State *L) {
  const sp_rows *src = luaL_testudata(L, 1, SP_ROWS_T) ? check_rows(L, 1) : NULL;
  gsl_matrix *M = src ? NULL : sp_lua_check_matrix(L, 1);
  if (src && src->p > SP_ROWS_MAXSEL) return sp_lua_errorf(L, "sumsq: at most %d columns of rows", SP_ROWS_MAXSEL);
  size_t n = src ? src->n : M->size1, p = src ? src->p : M->size2;
  int center = 0, threads = 1;
  size_t pc = p;  /* the columns centred */
  const double *w = NULL;
  if (!lua_isnoneornil(L, 2)) {
    static const char *const allowed[] = {"center", "weights", "threads", NULL};
    sp_lua_check_options(L, 2, "sumsq", allowed);
    if (lua_getfield(L, 2, "center") == LUA_TNUMBER) {
      int isint = 0;
      lua_Integer m = lua_tointegerx(L, -1, &isint);
      if (!isint || m < 1 || (size_t)m > p)
        return sp_lua_errorf(L, "sumsq: option 'center' must be a boolean or a column count in 1..%zu", p);
      pc = (size_t)m;
      center = 1;
    } else {
      center = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    w = opt_vector(L, 2, "weights", n);
    threads = opt_threads(L, 2, "sumsq");
  }
  double *acc = lua_newuserdatauv(L, (3 * p + 2 * (2 * p + 1)) * sizeof *acc, 0);
  double *sum = acc, *raw = acc + p, *ss = acc + 2 * p, *part = acc + 3 * p;
  sp_team tm;
  sp_team_start(&tm, n >= SP_TEAM_MIN_ROWS ? threads : 1);
  double sw = sumsq_cols(&tm, M, src, w, NULL, sum, raw, part);
  if (center) {
    for (size_t j = 0; j < pc; j++) sum[j] = sw > 0 ? sum[j] / sw : 0;
    if (pc == p) {
      sumsq_cols(&tm, M, src, w, sum, NULL, ss, part);
    } else if (M != NULL) {
      gsl_matrix_const_view lead = gsl_matrix_const_submatrix(M, 0, 0, n, pc);
      sumsq_cols(&tm, &lead.matrix, NULL, w, sum, NULL, ss, part);
    } else {
      size_t lc[SP_ROWS_MAXSEL];
      sp_rows_select lead;
      for (size_t j = 0; j < pc; j++) lc[j] = j;
      sp_rows_select_init(&lead, src, lc, pc);  /* pc <= p <= SP_ROWS_MAXSEL */
      sumsq_cols(&tm, NULL, &lead.rows, w, sum, NULL, ss, part);
    }
  }
  sp_team_stop(&tm);
  for (int t = 0; t < 1 + center; t++) {
    const double *out = center && t == 0 ? ss : raw;
    size_t m = center && t == 0 ? pc : p;
    lua_createtable(L, (int)m, 0);
    for (size_t j = 0; j < m; j++) {
      lua_pushnumber(L, out[j]);
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
  }
  return 1 + center;
}

/* Rows [r0, r1) of the two series cor2 correlates, into u and v: a and b
   (or B g), or a source's column 1 and its other columns times g (read from
   the source's arrays when it has them). */
typedef struct {
  const gsl_matrix *a, *b, *g;
  const sp_rows *src;
  size_t n;
} cor2_in;

static void cor2_block(const cor2_in *c, size_t r0, size_t r1, double *u, double *v, double *buf) {
  size_t m = r1 - r0, k = c->g ? c->g->size1 : 1, ld, gs = 1;
  /* g in a local array when it fits: the stores into v cannot change it */
  double gl[SP_ROWS_MAXSEL];
  const double *g = gl;
  if (c->g != NULL && k > SP_ROWS_MAXSEL) {
    g = c->g->data;
    gs = c->g->tda;
  } else if (c->g != NULL) {
    for (size_t j = 0; j < k; j++) gl[j] = c->g->data[j * c->g->tda];
  }
  if (c->src != NULL && c->src->col != NULL) {  /* column by column, no copy */
    const double *const *col = c->src->col;
    memcpy(u, col[0] + r0, m * sizeof *u);
    for (size_t i = 0; i < m; i++) v[i] = col[1][r0 + i] * g[0];  /* k < SP_ROWS_MAXSEL: g is gl */
    for (size_t j = 1; j < k; j++)
      for (size_t i = 0; i < m; i++) v[i] += col[j + 1][r0 + i] * g[j];
    return;
  }
  const double *x;
  if (c->src == NULL) {
    for (size_t i = 0; i < m; i++) u[i] = c->a->data[(r0 + i) * c->a->tda];
    x = c->b->data + r0 * c->b->tda;
    ld = c->b->tda;
  } else {
    c->src->read(c->src, r0, r1, buf, c->src->p);
    ld = c->src->p;
    for (size_t i = 0; i < m; i++) u[i] = buf[i * ld];
    x = buf + 1;
  }
  for (size_t i = 0; i < m; i++) {
    const double *row = x + i * ld;
    double s = row[0];
    if (c->g != NULL) {
      s = 0;
      for (size_t j = 0; j < k; j++) s += row[j] * g[j * gs];
    }
    v[i] = s;
  }
}

typedef struct {
  const cor2_in *in;
  double mu, mv;                /* the second pass: the means */
  double *buf[SP_TEAM_CHUNKS];  /* each chunk's rows, u and v */
  double part[SP_TEAM_CHUNKS][3];
} cor2_job;

/* Chunk c of the rows, a block at a time: the sums of u and v (first pass),
   or their centred squares and products (second pass, mu and mv set). */
static void cor2_chunk(void *ctx, int c, int centred) {
  cor2_job *j = ctx;
  size_t i0, i1;
  sp_team_range(j->in->n, c, &i0, &i1);
  double *buf = j->buf[c], *u = buf + SP_ROWS_BLOCK * SP_ROWS_MAXSEL, *v = u + SP_ROWS_BLOCK;
  double s0 = 0, s1 = 0, s2 = 0, mu = j->mu, mv = j->mv;
  for (size_t r0 = i0; r0 < i1; r0 += SP_ROWS_BLOCK) {
    size_t r1 = i1 - r0 < SP_ROWS_BLOCK ? i1 : r0 + SP_ROWS_BLOCK, m = r1 - r0;
    cor2_block(j->in, r0, r1, u, v, buf);
    if (!centred) {
      for (size_t i = 0; i < m; i++) {
        s0 += u[i];
        s1 += v[i];
      }
    } else {
      for (size_t i = 0; i < m; i++) {
        double du = u[i] - mu, dv = v[i] - mv;
        s0 += du * du;
        s1 += dv * dv;
        s2 += du * dv;
      }
    }
  }
  j->part[c][0] = s0;
  j->part[c][1] = s1;
  j->part[c][2] = s2;
}
static void cor2_sums(void *ctx, int c) { cor2_chunk(ctx, c, 0); }
static void cor2_products(void *ctx, int c) { cor2_chunk(ctx, c, 1); }

/* core.cor2(a, b [, g]) (internal) -> squared correlation of the n x 1
   matrix a with the n x 1 matrix b, or with B g for an n x k matrix B and a
   k x 1 g (a fit's Xb, formed row by row instead of as an n-sized
   temporary), from centred cross-products (two passes, no cancellation).
   core.cor2(rows, g [, {threads = 1 | 2}]): of a source's column 1 with its
   other columns times g.  The passes sum two fixed chunks of the rows and
   add them in order: the same bits on one thread as on two. */
static int l_cor2(lua_State *L) {
  cor2_in c = {NULL, NULL, NULL, NULL, 0};
  int threads = 1;
  if (luaL_testudata(L, 1, SP_ROWS_T)) {
    c.src = check_rows(L, 1);
    c.g = sp_lua_check_matrix(L, 2);
    if (c.src->p < 2 || c.src->p > SP_ROWS_MAXSEL || c.g->size1 != c.src->p - 1 || c.g->size2 != 1)
      return sp_lua_errorf(L, "cor2: expected rows of 2 to %d columns and a vector of one less, got %zu and %zux%zu",
                           SP_ROWS_MAXSEL, c.src->p, c.g->size1, c.g->size2);
    c.n = c.src->n;
    if (!lua_isnoneornil(L, 3)) {
      static const char *const allowed[] = {"threads", NULL};
      sp_lua_check_options(L, 3, "cor2", allowed);
      threads = opt_threads(L, 3, "cor2");
    }
  } else {
    c.a = sp_lua_check_matrix(L, 1);
    c.b = sp_lua_check_matrix(L, 2);
    c.g = lua_isnoneornil(L, 3) ? NULL : sp_lua_check_matrix(L, 3);
    const gsl_matrix *a = c.a, *b = c.b, *g = c.g;
    if (a->size2 != 1 || a->size1 != b->size1 || (g == NULL && b->size2 != 1) ||
        (g != NULL && (g->size1 != b->size2 || g->size2 != 1)))
      return sp_lua_errorf(L, "cor2: expected two vectors of the same length, or a vector, an n x k matrix and a "
                           "k-vector, got %zux%zu and %zux%zu", a->size1, a->size2, b->size1, b->size2);
    c.n = a->size1;
  }
  cor2_job j = {.in = &c};
  double *bufs = sp_team_bufs(SP_ROWS_BLOCK * (SP_ROWS_MAXSEL + 2), j.buf);
  if (bufs == NULL) return sp_lua_errorf(L, "cor2: out of memory");
  sp_team tm;
  sp_team_start(&tm, c.n >= SP_TEAM_MIN_ROWS ? threads : 1);
  sp_team_run(&tm, cor2_sums, &j);
  j.mu = (j.part[0][0] + j.part[1][0]) / (double)c.n;
  j.mv = (j.part[0][1] + j.part[1][1]) / (double)c.n;
  sp_team_run(&tm, cor2_products, &j);
  sp_team_stop(&tm);
  free(bufs);
  double saa = j.part[0][0] + j.part[1][0], sbb = j.part[0][1] + j.part[1][1], sab = j.part[0][2] + j.part[1][2];
  lua_pushnumber(L, sab * sab / (saa * sbb));
  return 1;
}

/* core.design_refill(des, d [, check]) -> boolean: copy des.y and des.X
   again from the frame d they were built from (sp_design_refill), after an
   estimator transformed them in place; with check, only say whether it can.
   False (nothing touched) when d has changed since the design was built, is
   another frame, or a column is not a plain numeric column of d.  Not part of
   the sp surface. */
static int l_design_refill(lua_State *L) {
  const sp_design *des = sp_lua_check_design(L, 1);
  const sp_frame *f = sp_lua_check_frame(L, 2);
  int check_only = lua_toboolean(L, 3);
  lua_getfield(L, 1, "frame_version");
  int same = lua_tointeger(L, -1) == (lua_Integer)f->version;
  lua_pop(L, 1);
  gsl_matrix *y = NULL, *X = NULL;
  sp_lua_design_matrices(L, 1, &y, &X, NULL, NULL);
  lua_pushboolean(L, same && sp_design_refill(des, f, y, X, check_only));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"sumsq", l_sumsq},
  {"cor2", l_cor2},
  {"lsfit", l_lsfit},
  {"vcov", l_vcov},
  {"vcov_presets", l_vcov_presets},
  {"absorb", l_absorb},
  {"demean", l_demean},
  {"codes", l_codes},
  {"design_refill", l_design_refill},
  {"design_rows", l_design_rows},
  {NULL, NULL}
};

void sp_lua_open_estimate(lua_State *L) {
  sp_lua_new_class(L, SP_ABSORB_T, absorb_meta, absorb_meth);
  sp_lua_new_class(L, SP_ROWS_T, rows_meta, rows_meth);
  sp_lua_new_box_type(L, "spillover.codes", codes_gc);
  sp_lua_new_box_type(L, "spillover.lsfit_result", lsfit_gc);
  luaL_setfuncs(L, funcs, 0);
}
