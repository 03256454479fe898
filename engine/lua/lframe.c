/*
** lframe.c: the spillover.frame userdata and its methods.
**
** The userdata is a box holding an sp_frame pointer; it is pushed empty
** before the frame is built (owner first), so an error during construction
** leaves nothing unowned.  Scratch arrays that must survive a call back into
** Lua (a filter predicate, a table read) are Lua userdata, so an error raised
** there frees them with the collector; buffers from sp_mem_alloc are held
** only across core calls that cannot raise, and handed to the frame (which
** then owns them) or freed before any error is raised.
**
** Methods live in a registry table "spillover.frame.methods" (other modules,
** e.g. lio.c, add to it); __index looks there first, then at the columns.
** Numeric work is in frame_ops.c.
*/
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsandbox.h"
#include "lsp.h"
#include "spillover/frame_ops.h"
#include "spillover/mem.h"
#include "spillover/panel.h"

#define METHODS_KEY "spillover.frame.methods"
#define PANEL_INFO_T "spillover.panel_info"
#define SHOW_ROWS 10
#define LI(x) ((lua_Integer)(x))  /* luaL_error knows %I, not %zu */

typedef struct {
  sp_frame *f;
} lframe;

sp_frame **sp_lua_frame_box(lua_State *L) {
  lframe *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->f = NULL;
  luaL_setmetatable(L, SP_FRAME_T);
  return &u->f;
}

sp_frame *sp_lua_check_frame(lua_State *L, int idx) {
  lframe *u = luaL_checkudata(L, idx, SP_FRAME_T);
  if (u->f == NULL) luaL_error(L, "attempt to use a closed spillover.frame");
  return u->f;
}

static int l_gc(lua_State *L) {
  lframe *u = luaL_checkudata(L, 1, SP_FRAME_T);
  sp_frame_free(u->f);
  u->f = NULL;
  return 0;
}

/* {=====================================================================
** Helpers
** ====================================================================== */

/* GC-owned scratch memory, pushed on the stack. */
static void *scratch(lua_State *L, size_t n, size_t size) {
  if (size != 0 && n > ((size_t)-1) / 2 / size) luaL_error(L, "frame: array of %I elements is too large", LI(n));
  size_t bytes = n * size;
  return lua_newuserdatauv(L, bytes ? bytes : 1, 0);
}

/* Create a new frame box and put an empty frame of nrow rows in it. */
static sp_frame *new_frame(lua_State *L, size_t nrow) {
  sp_frame **slot = sp_lua_frame_box(L);
  sp_error err;
  sp_error_clear(&err);
  if ((*slot = sp_frame_new(nrow, &err)) == NULL) sp_lua_error(L, &err);
  return *slot;
}

static int raise_status(lua_State *L, sp_error *err) {
  return sp_lua_error(L, err);
}

static int unknown_column(lua_State *L, const sp_frame *f, const char *name) {
  sp_error err;
  sp_error_clear(&err);
  long j = sp_frame_closest(f, name);
  if (j >= 0)
    sp_error_set(&err, SP_ENOTFOUND, "unknown column '%s' (did you mean '%s'?)", name, f->cols[j].name);
  else
    sp_error_set(&err, SP_ENOTFOUND, "unknown column '%s'", name);
  sp_error_var(&err, name);
  return sp_lua_error(L, &err);
}

static sp_column *check_column(lua_State *L, const sp_frame *f, const char *name) {
  sp_column *c = sp_frame_column(f, name);
  if (c == NULL) unknown_column(L, f, name);
  return c;
}

static sp_column *check_numeric(lua_State *L, const sp_frame *f, const char *name, const char *what) {
  sp_column *c = check_column(L, f, name);
  if (c->type != SP_NUMERIC)
    luaL_error(L, "%s: column '%s' is categorical; expected a numeric column", what, name);
  return c;
}

/* Column names from a string or an array of strings at idx; the strings stay
   anchored by the argument.  Pushes a scratch array; *n receives the count.
   With check, every name must be a column of f. */
static const char **check_names(lua_State *L, int idx, const sp_frame *f, size_t *n, const char *what) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char **v = scratch(L, 1, sizeof *v);
    v[0] = lua_tostring(L, idx);
    if (f) check_column(L, f, v[0]);
    *n = 1;
    return v;
  }
  if (!lua_istable(L, idx))
    luaL_error(L, "%s: expected a column name or a table of column names, got %s", what, luaL_typename(L, idx));
  size_t m = lua_rawlen(L, idx);
  const char **v = scratch(L, m, sizeof *v);
  for (size_t i = 0; i < m; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: element %I of the column list is a %s; expected a column name", what, LI(i + 1),
                 luaL_typename(L, -1));
    v[i] = lua_tostring(L, -1);  /* anchored by the table */
    lua_pop(L, 1);
    if (f) check_column(L, f, v[i]);
  }
  *n = m;
  return v;
}

/* Rebuild the panel index of dst (a row subset or rearrangement of src) when
   src had one and both index columns survive.  A result that is no longer a
   valid panel (duplicate cells after a join) simply has no index. */
static void carry_panel(lua_State *L, const sp_frame *src, sp_frame *dst) {
  if (src->panel == NULL) return;
  const char *e = src->panel->entity_name, *t = src->panel->time_name;
  if (sp_frame_find(dst, e) < 0 || sp_frame_find(dst, t) < 0) return;
  sp_panel *p = NULL;
  sp_error err;
  sp_error_clear(&err);
  int st = sp_panel_build(dst, e, t, &p, &err);
  if (st == SP_ENOMEM) sp_lua_error(L, &err);
  if (st == SP_OK) sp_frame_set_panel(dst, p);
}

/* opts[key] as a string, def when absent; a clear error for other types.
   The string stays anchored by the options table. */
static const char *field_string(lua_State *L, int opts, const char *key, const char *def, const char *what) {
  const char *v = def;
  int t = lua_getfield(L, opts, key);
  if (t == LUA_TSTRING) v = lua_tostring(L, -1);
  else if (t != LUA_TNIL) luaL_error(L, "%s: option %s must be a string, got a %s", what, key, lua_typename(L, t));
  lua_pop(L, 1);
  return v;
}

static size_t opt_count(lua_State *L, int idx, lua_Integer def, const char *what) {
  lua_Integer k = luaL_optinteger(L, idx, def);
  if (k < 0) luaL_error(L, "%s: expected a non-negative count, got %I", what, k);
  return (size_t)k;
}

/* }===================================================================== */

/* {=====================================================================
** Columns: reading and writing
** ====================================================================== */

static void push_cell(lua_State *L, const sp_column *c, size_t r) {
  if (c->type == SP_NUMERIC) lua_pushnumber(L, c->num[r]);
  else if (c->code[r] < 0) lua_pushnil(L);
  else lua_pushstring(L, c->levels[c->code[r]]);
}

static void push_column(lua_State *L, const sp_frame *f, const sp_column *c) {
  size_t n = f->nrow;
  if (c->type == SP_NUMERIC) {
    gsl_matrix *m = sp_lua_matrix_new(L, n, 1);
    for (size_t i = 0; i < n; i++) gsl_matrix_set(m, i, 0, c->num[i]);
    return;
  }
  lua_createtable(L, n > INT32_MAX ? 0 : (int)n, 1);
  for (size_t i = 0; i < n; i++) {
    if (c->code[i] < 0) continue;
    lua_pushstring(L, c->levels[c->code[i]]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushinteger(L, (lua_Integer)n);
  lua_setfield(L, -2, "n");
}

/* The length of a Lua table used as column name: its field n when given,
   else its largest positive integer key (so missing entries, nil, may appear
   anywhere but at the end unless n is given).  An n that is not a count, or
   that would cut off values, is an error rather than ignored. */
static size_t table_length(lua_State *L, int idx, const char *name) {
  idx = lua_absindex(L, idx);
  if (lua_getfield(L, idx, "n") != LUA_TNIL) {
    int isint;
    lua_Integer n = lua_tointegerx(L, -1, &isint);
    if (lua_type(L, -1) != LUA_TNUMBER || !isint || n < 0)
      luaL_error(L, "column '%s': field n must be a non-negative integer (the number of rows), got %s",
                 name, luaL_tolstring(L, -1, NULL));
    if (n > INT32_MAX)  /* grouping refuses more rows anyway; checking a larger n would seem to hang */
      luaL_error(L, "column '%s': field n = %I is more rows than a frame built from Lua tables holds "
                 "(at most 2^31 - 1)", name, n);
    if ((lua_Unsigned)n < lua_rawlen(L, idx))
      luaL_error(L, "column '%s': field n = %I but the table has %I values", name, n, LI(lua_rawlen(L, idx)));
    lua_pop(L, 1);
    return (size_t)n;
  }
  lua_pop(L, 1);
  lua_Integer maxk = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > maxk) maxk = lua_tointeger(L, -1);
  }
  return (size_t)maxk;
}

/* Store the Lua value at vidx as column name of f.  adopt: a frame without
   columns takes its row count from the value. */
static void set_column(lua_State *L, sp_frame *f, const char *name, int vidx, int adopt) {
  sp_error err;
  sp_error_clear(&err);
  vidx = lua_absindex(L, vidx);
  int t = lua_type(L, vidx);
  int was_index = f->panel != NULL &&
                  (strcmp(f->panel->entity_name, name) == 0 || strcmp(f->panel->time_name, name) == 0);
  if (name[0] == '\0') luaL_error(L, "column names must not be empty");
  if (t == LUA_TNIL) {
    if (sp_frame_find(f, name) >= 0 && sp_frame_drop(f, name, &err) != SP_OK) sp_lua_error(L, &err);
    if (was_index) sp_frame_set_panel(f, NULL);
    return;
  }
  size_t n = f->nrow, len;
  int st;
  gsl_matrix *m = NULL;
  if (t == LUA_TNUMBER) {
    len = n;
  } else if ((m = sp_lua_test_matrix(L, vidx)) != NULL) {
    if (m->size1 != 1 && m->size2 != 1)
      luaL_error(L, "column '%s': a %I x %I matrix is not a vector; expected n x 1 or 1 x n", name,
                 LI(m->size1), LI(m->size2));
    len = m->size1 * m->size2;
  } else if (t == LUA_TTABLE) {
    len = table_length(L, vidx, name);
  } else {
    luaL_error(L, "column '%s': cannot store a %s; expected a spillover.matrix, a table of numbers or "
               "strings, a number, or nil", name, luaL_typename(L, vidx));
    return;
  }
  if (adopt && f->ncol == 0 && t != LUA_TNUMBER) n = f->nrow = len;
  if (len != n) {
    int hint = t == LUA_TTABLE && m == NULL && len < n;
    luaL_error(L, "column '%s': %I values for a frame of %I rows%s", name, LI(len), LI(n),
               hint ? " (if the last values are nil, give the length as field n)" : "");
  }

  int strings = 0;
  if (t == LUA_TTABLE && m == NULL) {  /* validate first: raising is safe here */
    size_t first_num = 0, first_str = 0;
    luaL_checkstack(L, 2, NULL);
    for (size_t i = 0; i < len; i++) {
      int et = lua_rawgeti(L, vidx, (lua_Integer)i + 1);
      lua_pop(L, 1);
      if (et == LUA_TNUMBER) { if (!first_num) first_num = i + 1; }
      else if (et == LUA_TSTRING) { if (!first_str) first_str = i + 1; }
      else if (et != LUA_TNIL)
        luaL_error(L, "column '%s': element %I is a %s; expected a number, a string or nil", name, LI(i + 1),
                   lua_typename(L, et));
    }
    if (first_num && first_str)
      luaL_error(L, "column '%s' mixes numbers (element %I) and strings (element %I); a column holds one type",
                 name, LI(first_num), LI(first_str));
    strings = first_str != 0;
  }
  if (strings) {
    const char **v = scratch(L, len, sizeof *v);
    for (size_t i = 0; i < len; i++) {
      lua_rawgeti(L, vidx, (lua_Integer)i + 1);
      v[i] = lua_tostring(L, -1);  /* NULL for nil; strings anchored by the table */
      lua_pop(L, 1);
    }
    st = sp_frame_add_strings(f, name, v, &err);
    lua_pop(L, 1);
  } else {
    double *x = sp_mem_doubles(n ? n : 1);
    if (x == NULL) luaL_error(L, "column '%s': out of memory", name);
    /* no call below can raise until the frame owns x */
    if (t == LUA_TNUMBER) {
      double v = lua_tonumber(L, vidx);
      for (size_t i = 0; i < n; i++) x[i] = v;
    } else if (m != NULL) {
      for (size_t i = 0; i < n; i++) x[i] = m->size2 == 1 ? gsl_matrix_get(m, i, 0) : gsl_matrix_get(m, 0, i);
    } else {
      for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, vidx, (lua_Integer)i + 1);
        x[i] = lua_isnil(L, -1) ? NAN : lua_tonumber(L, -1);
        lua_pop(L, 1);
      }
    }
    st = sp_frame_add_numeric(f, name, x, &err);
  }
  if (st != SP_OK) sp_lua_error(L, &err);
  if (was_index) {  /* the index no longer describes these values */
    sp_panel *p = NULL;
    sp_error perr;
    sp_error_clear(&perr);
    const char *e = f->panel->entity_name, *tm = f->panel->time_name;
    st = sp_panel_build(f, e, tm, &p, &perr);
    sp_frame_set_panel(f, st == SP_OK ? p : NULL);
  }
}

static int l_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    sp_frame *f = sp_lua_check_frame(L, 1);
    push_column(L, f, check_column(L, f, lua_tostring(L, 2)));
    return 1;
  }
  return luaL_error(L, "a frame is indexed by column names (strings), not by a %s", luaL_typename(L, 2));
}

static int l_newindex(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "a frame column name must be a string, not a %s", luaL_typename(L, 2));
  set_column(L, f, lua_tostring(L, 2), 3, 1);
  return 0;
}

static int l_column(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  const char *name = luaL_checkstring(L, 2);
  push_column(L, f, check_column(L, f, name));
  return 1;
}

static int l_label(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  sp_column *c = check_column(L, f, luaL_checkstring(L, 2));
  if (lua_isnoneornil(L, 3) && lua_gettop(L) < 3) {
    if (c->label) lua_pushstring(L, c->label); else lua_pushnil(L);
    return 1;
  }
  const char *text = luaL_optstring(L, 3, NULL);
  sp_error err;
  sp_error_clear(&err);
  if (sp_column_set_label(c, text, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_settop(L, 1);
  return 1;
}

static int l_names(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  lua_createtable(L, (int)f->ncol, 0);
  for (size_t j = 0; j < f->ncol; j++) {
    lua_pushstring(L, f->cols[j].name);
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  return 1;
}

static int l_nrow(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sp_lua_check_frame(L, 1)->nrow);
  return 1;
}

static int l_ncol(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sp_lua_check_frame(L, 1)->ncol);
  return 1;
}

/* sp.frame(columns [, {order = {...}}]) */
static int l_frame(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int has_opts = !lua_isnoneornil(L, 2);
  if (has_opts) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  /* names: those in opts.order first, then the rest in byte order */
  lua_newtable(L);  /* 3: ordered names */
  lua_newtable(L);  /* 4: set of names taken */
  lua_Integer k = 0;
  if (has_opts && lua_getfield(L, 2, "order") != LUA_TNIL) {
    if (!lua_istable(L, -1)) return luaL_error(L, "sp.frame: order must be a table of column names");
    size_t m = lua_rawlen(L, -1);
    for (size_t i = 1; i <= m; i++) {
      lua_rawgeti(L, -1, (lua_Integer)i);
      if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "sp.frame: order[%I] is a %s; expected a column name", LI(i), luaL_typename(L, -1));
      lua_pushvalue(L, -1);
      if (lua_rawget(L, 1) == LUA_TNIL)
        return luaL_error(L, "sp.frame: order names '%s', which is not among the columns given", lua_tostring(L, -2));
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      if (lua_rawget(L, 4) != LUA_TNIL) return luaL_error(L, "sp.frame: order names '%s' twice", lua_tostring(L, -2));
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushboolean(L, 1);
      lua_rawset(L, 4);
      lua_rawseti(L, 3, ++k);
    }
  }
  lua_settop(L, 4);
  lua_Integer nfixed = k;
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "sp.frame: column names must be strings, got a %s key", luaL_typename(L, -1));
    lua_pushvalue(L, -1);
    if (lua_rawget(L, 4) == LUA_TNIL) {
      lua_pushvalue(L, -2);
      lua_rawseti(L, 3, ++k);
    }
    lua_pop(L, 1);
  }
  /* insertion sort of the unordered tail by byte order (strcmp) */
  for (lua_Integer i = nfixed + 2; i <= k; i++) {
    lua_rawgeti(L, 3, i);
    lua_Integer j = i;
    while (j > nfixed + 1) {
      lua_rawgeti(L, 3, j - 1);
      if (strcmp(lua_tostring(L, -1), lua_tostring(L, -2)) <= 0) { lua_pop(L, 1); break; }
      lua_rawseti(L, 3, j);
      j--;
    }
    lua_rawseti(L, 3, j);
  }
  /* the row count: the first column that is not a scalar */
  size_t nrow = 0;
  int found = 0;
  for (lua_Integer i = 1; i <= k && !found; i++) {
    lua_rawgeti(L, 3, i);
    lua_pushvalue(L, -1);
    lua_rawget(L, 1);
    gsl_matrix *m = sp_lua_test_matrix(L, -1);
    if (m) { nrow = m->size1 * m->size2; found = 1; }
    else if (lua_istable(L, -1)) { nrow = table_length(L, -1, lua_tostring(L, -2)); found = 1; }
    lua_pop(L, 2);
  }
  if (!found && k > 0) nrow = 1;  /* only scalars: one row */
  sp_frame *f = new_frame(L, nrow);  /* 5 */
  for (lua_Integer i = 1; i <= k; i++) {
    lua_rawgeti(L, 3, i);
    lua_pushvalue(L, -1);
    lua_rawget(L, 1);
    set_column(L, f, lua_tostring(L, -2), -1, 0);
    lua_pop(L, 2);
  }
  lua_settop(L, 5);
  return 1;
}

/* }===================================================================== */

/* {=====================================================================
** Printing
** ====================================================================== */

static int is_wide(unsigned cp) {
  return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
         (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x20000 && cp <= 0x3FFFD);
}

/* Terminal columns taken by UTF-8 text: CJK ideographs and full-width forms count 2. */
static size_t display_width(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t w = 0;
  while (*p) {
    unsigned cp;
    int len;
    if (*p < 0x80) { cp = *p; len = 1; }
    else if ((*p >> 5) == 6) { cp = *p & 0x1Fu; len = 2; }
    else if ((*p >> 4) == 14) { cp = *p & 0x0Fu; len = 3; }
    else if ((*p >> 3) == 30) { cp = *p & 0x07u; len = 4; }
    else { p++; w++; continue; }
    int i = 1;
    for (; i < len && (p[i] & 0xC0) == 0x80; i++) cp = (cp << 6) | (p[i] & 0x3Fu);
    p += i;
    w += (i == len && is_wide(cp)) ? 2 : 1;
  }
  return w;
}

static const char *format_cell(const sp_column *c, size_t r, char *buf, size_t size) {
  if (sp_column_missing(c, r)) return "NA";
  if (c->type == SP_CATEGORICAL) return c->levels[c->code[r]];
  double v = c->num[r];
  /* whole numbers (years, counts, sums of integers) in full, others to 6 digits */
  if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, size, "%.0f", v);
  else snprintf(buf, size, "%.6g", v);
  return buf;
}

static void add_padded(luaL_Buffer *b, const char *s, size_t width, int right) {
  size_t w = display_width(s);
  if (right) for (size_t i = w; i < width; i++) luaL_addchar(b, ' ');
  luaL_addstring(b, s);
  if (!right) for (size_t i = w; i < width; i++) luaL_addchar(b, ' ');
}

static int l_tostring(lua_State *L) {
  lframe *u = luaL_checkudata(L, 1, SP_FRAME_T);
  if (u->f == NULL) { lua_pushliteral(L, "spillover.frame (closed)"); return 1; }
  const sp_frame *f = u->f;
  size_t show = f->nrow < SHOW_ROWS ? f->nrow : SHOW_ROWS;
  size_t *w = scratch(L, f->ncol, sizeof *w);
  char buf[64], rn[32];
  snprintf(rn, sizeof rn, "%zu", show);
  size_t rw = strlen(rn);
  for (size_t j = 0; j < f->ncol; j++) {
    w[j] = display_width(f->cols[j].name);
    for (size_t r = 0; r < show; r++) {
      size_t cw = display_width(format_cell(&f->cols[j], r, buf, sizeof buf));
      if (cw > w[j]) w[j] = cw;
    }
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "spillover.frame: %I row%s x %I column%s", (lua_Integer)f->nrow, f->nrow == 1 ? "" : "s",
                  (lua_Integer)f->ncol, f->ncol == 1 ? "" : "s");
  luaL_addvalue(&b);
  if (f->panel) {
    luaL_addstring(&b, " (panel index: ");
    luaL_addstring(&b, f->panel->entity_name);
    luaL_addstring(&b, " x ");
    luaL_addstring(&b, f->panel->time_name);
    luaL_addchar(&b, ')');
  }
  luaL_addchar(&b, '\n');
  add_padded(&b, "", rw, 1);
  for (size_t j = 0; j < f->ncol; j++) {
    luaL_addchar(&b, ' ');
    add_padded(&b, f->cols[j].name, w[j], f->cols[j].type == SP_NUMERIC);
  }
  for (size_t r = 0; r < show; r++) {
    luaL_addchar(&b, '\n');
    snprintf(rn, sizeof rn, "%zu", r + 1);
    add_padded(&b, rn, rw, 1);
    for (size_t j = 0; j < f->ncol; j++) {
      luaL_addchar(&b, ' ');
      add_padded(&b, format_cell(&f->cols[j], r, buf, sizeof buf), w[j], f->cols[j].type == SP_NUMERIC);
    }
  }
  if (f->nrow > show) {
    lua_pushfstring(L, "\n... %I more row%s", (lua_Integer)(f->nrow - show), f->nrow - show == 1 ? "" : "s");
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  return 1;
}

static int l_len(lua_State *L) {
  return l_nrow(L);
}

/* }===================================================================== */

/* {=====================================================================
** Row selection: head, select, copy, rename, filter, sort
** ====================================================================== */

/* Push a new frame made of rows of f (rows == NULL: all) and of the named
   columns (names == NULL: all), with the panel index carried over. */
static void push_take(lua_State *L, const sp_frame *f, const size_t *rows, size_t n,
                      const char *const *names, size_t nnames) {
  sp_frame **slot = sp_lua_frame_box(L);
  sp_error err;
  sp_error_clear(&err);
  int st = rows ? sp_frame_take(f, rows, n, names, nnames, slot, &err)
                : (names ? sp_frame_take(f, NULL, f->nrow, names, nnames, slot, &err) : sp_frame_copy(f, slot, &err));
  if (st != SP_OK) raise_status(L, &err);
  carry_panel(L, f, *slot);
}

static int l_head(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  size_t n = opt_count(L, 2, 6, "head");
  if (n > f->nrow) n = f->nrow;
  size_t *rows = scratch(L, n, sizeof *rows);
  for (size_t i = 0; i < n; i++) rows[i] = i;
  push_take(L, f, rows, n, NULL, 0);
  return 1;
}

/* d:take(rows): a new frame of the given 1-based rows, in that order
   (repeats allowed: bootstrap resamples are built this way). */
static int l_take(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t n = (size_t)luaL_len(L, 2);
  size_t *rows = scratch(L, n, sizeof *rows);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    lua_Integer r = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (r < 1 || (size_t)r > f->nrow)
      return luaL_error(L, "take: row %I at position %I is out of range (the frame has %I rows)",
                        (lua_Integer)r, (lua_Integer)i + 1, (lua_Integer)f->nrow);
    rows[i] = (size_t)r - 1;
  }
  push_take(L, f, rows, n, NULL, 0);
  return 1;
}

static int l_select(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  size_t n;
  const char **names = check_names(L, 2, f, &n, "select");
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++)
      if (strcmp(names[i], names[j]) == 0) return luaL_error(L, "select: column '%s' is named twice", names[i]);
  push_take(L, f, NULL, 0, names, n);
  return 1;
}

static int l_copy(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  push_take(L, f, NULL, 0, NULL, 0);
  return 1;
}

static int l_rename(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "rename: expected {old = \"new\", ...} with string names");
    check_column(L, f, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  sp_error err;
  sp_error_clear(&err);
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) {
    if (sp_frame_rename(f, lua_tostring(L, -2), lua_tostring(L, -1), &err) != SP_OK) return sp_lua_error(L, &err);
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  return 1;
}

/* The row a filter expression is evaluated at; a userdata so it needs no freeing. */
typedef struct {
  size_t row;
} cursor;

/* __index of a filter expression's environment: upvalue 1 the frame, 2 the
   cursor.  Besides columns, an expression sees only the private tables of
   pure functions of lsandbox.c (math, string, tostring, tonumber, type).
   It cannot assign (it has no statements), so it needs no __newindex. */
static int l_filter_env(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, lua_upvalueindex(1));
  cursor *cur = lua_touserdata(L, lua_upvalueindex(2));
  const char *name = luaL_checkstring(L, 2);
  sp_column *c = sp_frame_column(f, name);
  if (c != NULL) {
    if (cur->row >= f->nrow) return luaL_error(L, "filter: the frame changed while filtering");
    push_cell(L, c, cur->row);
    return 1;
  }
  if (sp_lua_expression_global(L, name)) return 1;
  long j = sp_frame_closest(f, name);
  if (j >= 0)
    return luaL_error(L, "filter: unknown column '%s' in the expression (did you mean '%s'?)", name, f->cols[j].name);
  return luaL_error(L, "filter: unknown column '%s' in the expression", name);
}

/* Evaluate the predicate at 2 (a function(row), or with is_expr a compiled
   expression reading cur) at every row, appending the rows it accepts. */
static size_t filter_rows(lua_State *L, int is_expr, cursor *cur, size_t *rows) {
  size_t n = sp_lua_check_frame(L, 1)->nrow, m = 0;
  for (size_t r = 0; r < n; r++) {
    sp_frame *f = sp_lua_check_frame(L, 1);
    if (f->nrow != n) luaL_error(L, "filter: the frame changed while filtering");
    lua_pushvalue(L, 2);
    if (is_expr) {
      cur->row = r;
    } else {
      lua_createtable(L, 0, (int)f->ncol);
      for (size_t j = 0; j < f->ncol; j++) {
        push_cell(L, &f->cols[j], r);
        lua_setfield(L, -2, f->cols[j].name);
      }
    }
    lua_call(L, is_expr ? 0 : 1, 1);
    if (lua_toboolean(L, -1)) rows[m++] = r;
    lua_pop(L, 1);
  }
  return m;
}

/* The expression pass of filter_rows, run protected by l_filter: upvalue 1
   the cursor, 2 the scratch rows; returns the count. */
static int l_filter_expr_rows(lua_State *L) {
  cursor *cur = lua_touserdata(L, lua_upvalueindex(1));
  size_t *rows = lua_touserdata(L, lua_upvalueindex(2));
  lua_pushinteger(L, (lua_Integer)filter_rows(L, 1, cur, rows));
  return 1;
}

static int l_filter(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  int is_expr = lua_type(L, 2) == LUA_TSTRING;
  if (!is_expr && lua_type(L, 2) != LUA_TFUNCTION)
    return luaL_argerror(L, 2, "expected a function(row) -> boolean or an expression string");
  lua_settop(L, 2);
  size_t *rows = scratch(L, f->nrow, sizeof *rows);  /* 3 */
  size_t m;
  if (is_expr) {
    size_t len;
    const char *expr = lua_tolstring(L, 2, &len);
    const char *bad = sp_lua_expression_problem(L, 2);
    if (bad != NULL) return luaL_error(L, "filter: %s is not allowed in an expression: \"%s\"", bad, expr);
    lua_pushfstring(L, "return (%s\n)", expr);
    if (luaL_loadbufferx(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=filter expression", "t") != LUA_OK)
      return luaL_error(L, "filter: cannot compile the expression \"%s\": %s", expr, lua_tostring(L, -1));
    lua_replace(L, 2);  /* 2: the compiled chunk */
    lua_settop(L, 3);
    lua_newtable(L);  /* the environment */
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    cursor *cur = lua_newuserdatauv(L, sizeof *cur, 0);
    cur->row = 0;
    lua_pushvalue(L, -1);
    lua_insert(L, 4);  /* 4: the cursor, kept for the row pass */
    lua_pushcclosure(L, l_filter_env, 2);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    if (lua_setupvalue(L, 2, 1) == NULL) return luaL_error(L, "filter: the expression has no environment");
    /* Methods of string values are the expression's string table while it
       runs, since a column's value reaches them as name.rep; the rows pass
       runs protected so the real methods are back before any error.
       Everything that allocates comes before the swap. */
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 3);
    lua_pushcclosure(L, l_filter_expr_rows, 2);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);  /* the pass sees the frame and the chunk at 1 and 2, as here */
    sp_lua_expression_global(L, "string");
    sp_lua_swap_string_methods(L);
    lua_insert(L, 5);  /* 5: the methods to restore */
    int status = lua_pcall(L, 2, 1, 0);
    lua_pushvalue(L, 5);
    sp_lua_swap_string_methods(L);
    lua_pop(L, 1);
    if (status != LUA_OK) return lua_error(L);
    m = (size_t)lua_tointeger(L, -1);
  } else {
    m = filter_rows(L, 0, NULL, rows);
  }
  f = sp_lua_check_frame(L, 1);
  push_take(L, f, rows, m, NULL, 0);
  return 1;
}

static int l_sort(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  size_t nk;
  sp_sort_key *keys;
  if (lua_type(L, 2) == LUA_TSTRING) {
    nk = 1;
    keys = scratch(L, 1, sizeof *keys);
    keys[0].name = lua_tostring(L, 2);
    keys[0].desc = 0;
  } else if (lua_istable(L, 2)) {
    nk = lua_rawlen(L, 2);
    if (nk == 0) return luaL_error(L, "sort: no keys given");
    keys = scratch(L, nk, sizeof *keys);
    for (size_t i = 0; i < nk; i++) {
      int t = lua_rawgeti(L, 2, (lua_Integer)i + 1);
      keys[i].desc = 0;
      if (t == LUA_TSTRING) {
        keys[i].name = lua_tostring(L, -1);
      } else if (t == LUA_TTABLE) {
        if (lua_rawgeti(L, -1, 1) != LUA_TSTRING)
          return luaL_error(L, "sort: key %I must be {\"column\", desc = true|false}", LI(i + 1));
        keys[i].name = lua_tostring(L, -1);  /* anchored by the key table, itself in the argument */
        lua_pop(L, 1);
        lua_getfield(L, -1, "desc");
        keys[i].desc = lua_toboolean(L, -1);
        lua_pop(L, 1);
      } else {
        return luaL_error(L, "sort: key %I is a %s; expected a column name or {\"column\", desc = true}", LI(i + 1),
                          lua_typename(L, t));
      }
      lua_pop(L, 1);
      check_column(L, f, keys[i].name);
    }
  } else {
    return luaL_argerror(L, 2, "expected a column name or a table of sort keys");
  }
  check_column(L, f, keys[0].name);
  sp_frame **slot = sp_lua_frame_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_frame_sort(f, keys, nk, slot, &err) != SP_OK) return sp_lua_error(L, &err);
  carry_panel(L, f, *slot);
  return 1;
}

/* }===================================================================== */

/* {=====================================================================
** Summaries: describe, aggregate, join
** ====================================================================== */

static int l_describe(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  size_t n = 0;
  const char **names = lua_isnoneornil(L, 2) ? NULL : check_names(L, 2, f, &n, "describe");
  sp_frame **slot = sp_lua_frame_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_frame_describe(f, names, n, slot, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

static int l_aggregate(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  static const char *const allowed[] = {"by", "count", "mean", "sum", "sd", "min", "max", "first", NULL};
  sp_lua_check_options(L, 2, "aggregate", allowed);
  if (lua_getfield(L, 2, "by") == LUA_TNIL) return luaL_error(L, "aggregate: by = \"column\" or {\"c1\", \"c2\"} is required");
  size_t nby;
  const char **by = check_names(L, -1, f, &nby, "aggregate by");  /* 4: by, 5: names */
  if (nby == 0) return luaL_error(L, "aggregate: by lists no columns");
  lua_getfield(L, 2, "count");
  int count = lua_toboolean(L, -1);
  lua_pop(L, 1);
  /* count the specs, then fill them, in the fixed order mean, sum, sd, min, max, first */
  size_t nspec = 0;
  for (int fun = 0; fun < SP_AGG_NFUN; fun++) {
    if (lua_getfield(L, 2, sp_agg_name((sp_agg_fun)fun)) != LUA_TNIL) {
      size_t k;
      check_names(L, -1, f, &k, "aggregate");
      lua_pop(L, 1);
      nspec += k;
    }
    lua_pop(L, 1);
  }
  if (nspec == 0 && !count) return luaL_error(L, "aggregate: nothing to compute (give mean=, sum=, sd=, min=, max=, first= or count=true)");
  sp_agg_spec *specs = scratch(L, nspec, sizeof *specs);  /* 6 */
  size_t s = 0;
  for (int fun = 0; fun < SP_AGG_NFUN; fun++) {
    if (lua_getfield(L, 2, sp_agg_name((sp_agg_fun)fun)) != LUA_TNIL) {
      size_t k;
      const char **cols = check_names(L, -1, f, &k, "aggregate");  /* strings anchored in the option */
      for (size_t i = 0; i < k; i++) { specs[s].column = cols[i]; specs[s].fun = (sp_agg_fun)fun; specs[s].out = NULL; s++; }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  sp_frame **slot = sp_lua_frame_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_frame_aggregate(f, by, nby, specs, nspec, count, slot, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

static int l_join(lua_State *L) {
  sp_frame *x = sp_lua_check_frame(L, 1);
  sp_frame *y = sp_lua_check_frame(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  sp_join_options o;
  memset(&o, 0, sizeof o);
  if (lua_getfield(L, 3, "on") == LUA_TNIL) return luaL_error(L, "join: on = \"key\" or {\"k1\", \"k2\"} is required");
  o.on = check_names(L, -1, NULL, &o.non, "join on");  /* 4: on, 5: names */
  if (o.non == 0) return luaL_error(L, "join: on lists no columns");
  const char *how = field_string(L, 3, "how", "left", "join");
  if (strcmp(how, "left") == 0) o.how = SP_JOIN_LEFT;
  else if (strcmp(how, "inner") == 0) o.how = SP_JOIN_INNER;
  else return luaL_error(L, "join: how = \"%s\" is not supported; expected \"left\" or \"inner\"", how);
  const char *v = field_string(L, 3, "validate", "m:m", "join");
  if (strcmp(v, "1:1") == 0) o.validate = SP_VALIDATE_1_1;
  else if (strcmp(v, "m:1") == 0) o.validate = SP_VALIDATE_M_1;
  else if (strcmp(v, "m:m") == 0) o.validate = SP_VALIDATE_NONE;
  else return luaL_error(L, "join: validate = \"%s\" is not supported; expected \"1:1\", \"m:1\" or \"m:m\"", v);
  o.suffix = field_string(L, 3, "suffix", "_y", "join");
  sp_frame **slot = sp_lua_frame_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_frame_join(x, y, &o, slot, &err) != SP_OK) return sp_lua_error(L, &err);
  carry_panel(L, x, *slot);
  return 1;
}

/* }===================================================================== */

/* {=====================================================================
** Column transforms: winsorize, standardize, log
** ====================================================================== */

/* The name a transform writes to: opts.prefix .. col .. opts.suffix (the
   column itself when neither is given).  Pushes the name. */
static const char *target_name(lua_State *L, int opts, const char *col, const char *what) {
  const char *pre = "", *suf = "";
  if (opts) {
    pre = field_string(L, opts, "prefix", "", what);
    suf = field_string(L, opts, "suffix", "", what);
  }
  return lua_pushfstring(L, "%s%s%s", pre, col, suf);
}

static double opt_prob(lua_State *L, int opts, const char *key, double def) {
  if (!opts) return def;
  lua_getfield(L, opts, key);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
  if (!lua_isnumber(L, -1)) return luaL_error(L, "winsorize: %s must be a number in [0, 1]", key), 0;
  double p = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!(p >= 0 && p <= 1)) return luaL_error(L, "winsorize: %s = %f is outside [0, 1]", key, p), 0;
  return p;
}

static int l_winsorize(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  int opts = lua_istable(L, 3) ? 3 : 0;
  if (!opts && !lua_isnoneornil(L, 3)) return luaL_argerror(L, 3, "expected an options table");
  lua_settop(L, 3);
  size_t nc;
  const char **cols = check_names(L, 2, f, &nc, "winsorize");
  for (size_t k = 0; k < nc; k++) check_numeric(L, f, cols[k], "winsorize");
  double p = opt_prob(L, opts, "p", 0.01);
  if (p > 0.5) return luaL_error(L, "winsorize: p = %f must be at most 0.5 (it trims both tails)", p);
  double lower = opt_prob(L, opts, "lower", p), upper = opt_prob(L, opts, "upper", 1 - p);
  if (lower > upper) return luaL_error(L, "winsorize: lower = %f is above upper = %f", lower, upper);
  int32_t *codes = NULL;
  size_t ng = 0, n = f->nrow;
  if (opts && lua_getfield(L, opts, "by") != LUA_TNIL) {
    size_t nby;
    const char **by = check_names(L, -1, f, &nby, "winsorize by");
    codes = scratch(L, n, sizeof *codes);
    size_t *first = scratch(L, n, sizeof *first);
    sp_error err;
    sp_error_clear(&err);
    if (sp_frame_group(f, by, nby, codes, &ng, first, &err) != SP_OK) return sp_lua_error(L, &err);
  }
  for (size_t k = 0; k < nc; k++) {
    const char *out = target_name(L, opts, cols[k], "winsorize");
    const sp_column *c = sp_frame_column(f, cols[k]);
    double *x = sp_mem_doubles(n ? n : 1);
    if (x == NULL) return luaL_error(L, "winsorize: out of memory");
    memcpy(x, c->num, n * sizeof *x);
    sp_error err;
    sp_error_clear(&err);
    if (sp_winsorize(x, n, codes, ng, lower, upper, &err) != SP_OK) { sp_mem_free(x); return sp_lua_error(L, &err); }
    if (sp_frame_add_numeric(f, out, x, &err) != SP_OK) return sp_lua_error(L, &err);
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  return 1;
}

static int l_standardize(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  int opts = lua_istable(L, 3) ? 3 : 0;
  lua_settop(L, 3);
  size_t nc, n = f->nrow;
  const char **cols = check_names(L, 2, f, &nc, "standardize");
  for (size_t k = 0; k < nc; k++) check_numeric(L, f, cols[k], "standardize");
  for (size_t k = 0; k < nc; k++) {
    const char *out = target_name(L, opts, cols[k], "standardize");
    double *x = sp_mem_doubles(n ? n : 1);
    if (x == NULL) return luaL_error(L, "standardize: out of memory");
    memcpy(x, sp_frame_column(f, cols[k])->num, n * sizeof *x);
    sp_error err;
    sp_error_clear(&err);
    if (sp_standardize(x, n, cols[k], &err) != SP_OK) { sp_mem_free(x); return sp_lua_error(L, &err); }
    if (sp_frame_add_numeric(f, out, x, &err) != SP_OK) return sp_lua_error(L, &err);
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  return 1;
}

static int l_log(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  int opts = lua_istable(L, 3) ? 3 : 0;
  lua_settop(L, 3);
  size_t nc, n = f->nrow;
  const char **cols = check_names(L, 2, f, &nc, "log");
  for (size_t k = 0; k < nc; k++) check_numeric(L, f, cols[k], "log");
  int nan_ok = 0;
  if (opts) {
    const char *np = field_string(L, opts, "nonpositive", "error", "log");
    if (strcmp(np, "nan") == 0) nan_ok = 1;
    else if (strcmp(np, "error") != 0)
      return luaL_error(L, "log: nonpositive = \"%s\"; expected \"error\" or \"nan\"", np);
  }
  for (size_t k = 0; k < nc; k++) {
    const char *out = target_name(L, opts, cols[k], "log");
    double *x = sp_mem_doubles(n ? n : 1);
    if (x == NULL) return luaL_error(L, "log: out of memory");
    sp_error err;
    sp_error_clear(&err);
    if (sp_log_values(sp_frame_column(f, cols[k])->num, n, nan_ok, cols[k], x, &err) != SP_OK) {
      sp_mem_free(x);
      return sp_lua_error(L, &err);
    }
    if (sp_frame_add_numeric(f, out, x, &err) != SP_OK) return sp_lua_error(L, &err);
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  return 1;
}

/* }===================================================================== */

/* {=====================================================================
** Panel methods
** ====================================================================== */

static int l_panel(lua_State *L) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "entity");
  lua_getfield(L, 2, "time");
  if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
    return luaL_error(L, "panel: expected {entity = \"column\", time = \"column\"}");
  const char *e = lua_tostring(L, -2), *t = lua_tostring(L, -1);
  check_column(L, f, e);
  check_column(L, f, t);
  sp_panel *p = NULL;
  sp_error err;
  sp_error_clear(&err);
  if (sp_panel_build(f, e, t, &p, &err) != SP_OK) return sp_lua_error(L, &err);
  sp_frame_set_panel(f, p);
  lua_settop(L, 1);
  return 1;
}

static const sp_panel *check_panel(lua_State *L, const sp_frame *f) {
  if (f->panel == NULL) luaL_error(L, "no panel index: call d:panel{entity=, time=} first");
  return f->panel;
}

static int l_panel_info_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "N");
  lua_getfield(L, 1, "T");
  lua_getfield(L, 1, "n");
  lua_getfield(L, 1, "balanced");
  lua_getfield(L, 1, "Tmin");
  lua_getfield(L, 1, "Tmax");
  lua_getfield(L, 1, "gaps");
  lua_getfield(L, 1, "entity");
  lua_getfield(L, 1, "time");
  lua_pushfstring(L, "panel: %I entities (%s) x %I periods (%s), %I rows, %s; %I to %I periods per entity, %I gap%s",
                  lua_tointeger(L, 2), luaL_optstring(L, 9, "?"), lua_tointeger(L, 3), luaL_optstring(L, 10, "?"),
                  lua_tointeger(L, 4), lua_toboolean(L, 5) ? "balanced" : "unbalanced", lua_tointeger(L, 6),
                  lua_tointeger(L, 7), lua_tointeger(L, 8), lua_tointeger(L, 8) == 1 ? "" : "s");
  return 1;
}

/* nil for a frame without a panel index: "is there a panel?" is a question
   callers ask, not an error. */
static int l_panel_info(lua_State *L) {
  const sp_panel *p = sp_lua_check_frame(L, 1)->panel;
  if (p == NULL) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 9);
  lua_pushinteger(L, (lua_Integer)p->N); lua_setfield(L, -2, "N");
  lua_pushinteger(L, (lua_Integer)p->T); lua_setfield(L, -2, "T");
  lua_pushinteger(L, (lua_Integer)p->n); lua_setfield(L, -2, "n");
  lua_pushboolean(L, p->balanced); lua_setfield(L, -2, "balanced");
  lua_pushinteger(L, (lua_Integer)p->Tmin); lua_setfield(L, -2, "Tmin");
  lua_pushinteger(L, (lua_Integer)p->Tmax); lua_setfield(L, -2, "Tmax");
  lua_pushinteger(L, (lua_Integer)p->ngaps); lua_setfield(L, -2, "gaps");
  lua_pushstring(L, p->entity_name); lua_setfield(L, -2, "entity");
  lua_pushstring(L, p->time_name); lua_setfield(L, -2, "time");
  luaL_setmetatable(L, PANEL_INFO_T);
  return 1;
}

enum { SHIFT_LAG, SHIFT_LEAD, SHIFT_DIFF, SHIFT_GROWTH };

static int shift_op(lua_State *L, int op, const char *what) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  const char *name = luaL_checkstring(L, 2);
  lua_Integer k = luaL_optinteger(L, 3, 1);
  const sp_column *c = check_numeric(L, f, name, what);
  const sp_panel *p = check_panel(L, f);
  size_t n = f->nrow;
  gsl_matrix *m = sp_lua_matrix_new(L, n, 1);
  double *lag = scratch(L, n, sizeof *lag);
  sp_error err;
  sp_error_clear(&err);
  /* a lead is a negative lag; -LUA_MININTEGER would overflow (the core clamps huge shifts anyway) */
  long shift = op != SHIFT_LEAD ? (long)k : (k == LUA_MININTEGER ? LONG_MAX : -(long)k);
  if (sp_panel_shift(p, c->num, shift, lag, &err) != SP_OK)
    return sp_lua_error(L, &err);
  for (size_t i = 0; i < n; i++) {
    double x = c->num[i], l = lag[i], v;
    if (op == SHIFT_DIFF) v = x - l;
    else if (op == SHIFT_GROWTH) v = (x - l) / l;
    else v = l;
    gsl_matrix_set(m, i, 0, v);
  }
  lua_pop(L, 1);
  return 1;
}

static int l_lag(lua_State *L) { return shift_op(L, SHIFT_LAG, "lag"); }
static int l_lead(lua_State *L) { return shift_op(L, SHIFT_LEAD, "lead"); }
static int l_diff(lua_State *L) { return shift_op(L, SHIFT_DIFF, "diff"); }
static int l_growth(lua_State *L) { return shift_op(L, SHIFT_GROWTH, "growth"); }

static int within_op(lua_State *L, int demean, const char *what) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const sp_column *c = check_numeric(L, f, name, what);
  const sp_panel *p = check_panel(L, f);
  size_t n = f->nrow;
  gsl_matrix *m = sp_lua_matrix_new(L, n, 1);
  double *means = scratch(L, p->N, sizeof *means);
  sp_error err;
  sp_error_clear(&err);
  if (sp_group_means(c->num, n, p->entity, p->N, means, &err) != SP_OK) return sp_lua_error(L, &err);
  for (size_t i = 0; i < n; i++) {
    double mu = means[p->entity[i]];
    gsl_matrix_set(m, i, 0, demean ? c->num[i] - mu : mu);
  }
  lua_pop(L, 1);
  return 1;
}

static int l_within_mean(lua_State *L) { return within_op(L, 0, "within_mean"); }
static int l_demean(lua_State *L) { return within_op(L, 1, "demean"); }

/* }===================================================================== */

/* core.closest(name, candidates): the candidate (a string of the array)
   closest to name under sp_closest's rule, or nil.  spillover.suggest uses it,
   so "did you mean" reads the same from Lua and from C. */
static int l_closest(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t n = (size_t)luaL_len(L, 2);
  const char **cand = scratch(L, n ? n : 1, sizeof *cand);
  for (size_t j = 0; j < n; j++) {
    /* strings only: the array keeps them alive after the pop (a number
       converted on the stack would not be) */
    if (lua_geti(L, 2, (lua_Integer)j + 1) != LUA_TSTRING)
      return luaL_error(L, "closest: candidate %d is a %s (expected a string)", (int)j + 1, luaL_typename(L, -1));
    cand[j] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  long j = sp_closest(name, cand, n);
  if (j < 0) lua_pushnil(L);
  else lua_geti(L, 2, (lua_Integer)j + 1);
  return 1;
}

static const luaL_Reg metameth[] = {
  {"__gc", l_gc},
  {"__close", l_gc},
  {"__newindex", l_newindex},
  {"__len", l_len},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

static const luaL_Reg meth[] = {
  {"close", l_gc},
  {"column", l_column},
  {"label", l_label},
  {"names", l_names},
  {"nrow", l_nrow},
  {"ncol", l_ncol},
  {"head", l_head},
  {"select", l_select},
  {"take", l_take},
  {"copy", l_copy},
  {"rename", l_rename},
  {"filter", l_filter},
  {"sort", l_sort},
  {"describe", l_describe},
  {"aggregate", l_aggregate},
  {"join", l_join},
  {"winsorize", l_winsorize},
  {"standardize", l_standardize},
  {"log", l_log},
  {"panel", l_panel},
  {"panel_info", l_panel_info},
  {"lag", l_lag},
  {"lead", l_lead},
  {"diff", l_diff},
  {"growth", l_growth},
  {"within_mean", l_within_mean},
  {"demean", l_demean},
  {NULL, NULL}
};

/* core.frame_version(d): a count that changes whenever a column, a column
   name or the panel index of d changes; a fit compares it with the count it
   saw to reuse its own design for predictions on the same, unchanged frame.
   Not part of the sp surface. */
static int l_frame_version(lua_State *L) {
  const sp_frame *f = sp_lua_check_frame(L, 1);
  lua_pushinteger(L, (lua_Integer)f->version);
  return 1;
}

void sp_lua_open_frame(lua_State *L) {
  luaL_newmetatable(L, SP_FRAME_T);
  luaL_setfuncs(L, metameth, 0);
  /* the method table lives in the registry so other modules can add methods */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, METHODS_KEY);
  luaL_setfuncs(L, meth, 0);
  lua_pushcclosure(L, l_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  if (luaL_newmetatable(L, PANEL_INFO_T)) {
    lua_pushcfunction(L, l_panel_info_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_frame);
  lua_setfield(L, -2, "frame");
  lua_pushcfunction(L, l_closest);
  lua_setfield(L, -2, "closest");
  lua_pushcfunction(L, l_frame_version);
  lua_setfield(L, -2, "frame_version");
}
