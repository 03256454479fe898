/*
** lxlsx.c: spillover.xlsx, one-sheet .xlsx tables through libxlsxwriter.
**
**   local xlsx = require "spillover.xlsx"
**   ok, msg = xlsx.write(path, {
**     sheet  = "Table",                 -- optional, default "Sheet1"
**     ncols  = 3,                       -- optional, default: the longest row
**     widths = {24, 12, 12},            -- optional column widths (characters)
**     align  = {"left", "center", ...}, -- optional per column (default left, then center)
**     rows   = {
**       {"Title", merge = true, bold = true, align = "center"},
**       {"", "(1)", "(2)", bold = true, top = "medium", bottom = "thin"},
**       {"x", "0.123***", 1.5, height = 30, wrap = true, italic = true},
**     },
**   })
**
** Cells are UTF-8 strings (written as text cells, so "0.123***" and
** "(0.045)" stay exactly as given), numbers (numeric cells) or nil (blank,
** but still formatted so borders show).  A row with merge = true puts its
** first cell across all ncols columns.  Returns true, or nil and a message
** when the file cannot be written (libxlsxwriter writes it only at close).
** Malformed specs raise.
**
** Ownership: the workbook lives in a full userdata (owner first, STYLE.md
** rule 3) whose __gc frees it, so an error raised while the sheet is being
** filled leaks nothing.  workbook_close() frees the workbook itself, so the
** box is emptied before the call.
*/
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <xlsxwriter.h>

#include "lxlsx.h"

#define SP_XLSX_T "spillover.xlsx.workbook"

/* Format attributes; each combination gets one lxw_format, made on first use
   and owned by the workbook. */
enum { N_ALIGN = 3, N_BORDER = 3 };
#define N_FORMATS (2 * 2 * 2 * N_ALIGN * N_BORDER * N_BORDER)

typedef struct {
  lxw_workbook *wb;          /* NULL once closed or freed */
  lxw_format *fmt[N_FORMATS];
} xlsx_box;

static const char *const align_names[] = {"left", "center", "right", NULL};
static const char *const border_names[] = {"none", "thin", "medium", NULL};

static int box_gc(lua_State *L) {
  xlsx_box *b = luaL_checkudata(L, 1, SP_XLSX_T);
  if (b->wb != NULL) lxw_workbook_free(b->wb);
  b->wb = NULL;
  return 0;
}

/* ---- reading the spec ------------------------------------------------------ */

/* Index of field `key` of the table at idx among names (or def when absent);
   raises on another value.  `what` names the table in the message. */
static int opt_choice(lua_State *L, int idx, const char *key, const char *const names[], int def,
                      const char *what) {
  int t = lua_getfield(L, idx, key);
  int r = def;
  if (t != LUA_TNIL) {
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    r = -1;
    for (int i = 0; s != NULL && names[i] != NULL; i++)
      if (strcmp(s, names[i]) == 0) r = i;
    if (r < 0) {
      luaL_Buffer B;
      luaL_buffinit(L, &B);
      for (int i = 0; names[i] != NULL; i++) {
        if (i > 0) luaL_addstring(&B, ", ");
        luaL_addchar(&B, '"');
        luaL_addstring(&B, names[i]);
        luaL_addchar(&B, '"');
      }
      luaL_pushresult(&B);
      return luaL_error(L, "xlsx.write: %s.%s must be one of %s, got %s", what, key, lua_tostring(L, -1),
                        s ? s : luaL_typename(L, -2));
    }
  }
  lua_pop(L, 1);
  return r;
}

static int opt_bool(lua_State *L, int idx, const char *key) {
  lua_getfield(L, idx, key);
  int r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

/* The number field `key` (0 when absent); raises when it is not a number. */
static double opt_number(lua_State *L, int idx, const char *key, const char *what) {
  int t = lua_getfield(L, idx, key);
  double r = 0;
  if (t != LUA_TNIL) {
    if (!lua_isnumber(L, -1))
      luaL_error(L, "xlsx.write: %s.%s must be a number, got %s", what, key, luaL_typename(L, -1));
    r = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return r;
}

/* Check every row of spec.rows (table at idx) before the workbook exists,
   and return the widest row. */
static lua_Integer check_rows(lua_State *L, int rows) {
  lua_Integer nrows = luaL_len(L, rows), ncols = 0;
  if (nrows > 1048576) luaL_error(L, "xlsx.write: %I rows is more than a sheet holds (1048576)", nrows);
  for (lua_Integer r = 1; r <= nrows; r++) {
    char what[48];
    snprintf(what, sizeof what, "rows[%lld]", (long long)r);
    if (lua_geti(L, rows, r) != LUA_TTABLE)
      luaL_error(L, "xlsx.write: %s must be a table of cells, got %s", what, luaL_typename(L, -1));
    int row = lua_gettop(L);
    lua_Integer n = luaL_len(L, row);
    for (lua_Integer c = 1; c <= n; c++) {
      int t = lua_geti(L, row, c);
      if (t != LUA_TNIL && t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "xlsx.write: %s[%I] must be a string, a number or nil, got %s", what, c,
                   luaL_typename(L, -1));
      lua_pop(L, 1);
    }
    if (n > ncols) ncols = n;
    (void)opt_choice(L, row, "align", align_names, 0, what);
    (void)opt_choice(L, row, "top", border_names, 0, what);
    (void)opt_choice(L, row, "bottom", border_names, 0, what);
    (void)opt_number(L, row, "height", what);
    lua_pop(L, 1);
  }
  return ncols;
}

/* ---- writing ----------------------------------------------------------------- */

static lxw_format *get_format(xlsx_box *b, int bold, int italic, int wrap, int align, int top, int bottom) {
  int key = ((((bold * 2 + italic) * 2 + wrap) * N_ALIGN + align) * N_BORDER + top) * N_BORDER + bottom;
  if (b->fmt[key] == NULL) {
    static const uint8_t aligns[N_ALIGN] = {LXW_ALIGN_LEFT, LXW_ALIGN_CENTER, LXW_ALIGN_RIGHT};
    static const uint8_t borders[N_BORDER] = {LXW_BORDER_NONE, LXW_BORDER_THIN, LXW_BORDER_MEDIUM};
    lxw_format *f = workbook_add_format(b->wb);
    if (f == NULL) return NULL;
    if (bold) format_set_bold(f);
    if (italic) format_set_italic(f);
    if (wrap) format_set_text_wrap(f);
    format_set_align(f, aligns[align]);
    format_set_align(f, LXW_ALIGN_VERTICAL_CENTER);
    if (top) format_set_top(f, borders[top]);
    if (bottom) format_set_bottom(f, borders[bottom]);
    b->fmt[key] = f;
  }
  return b->fmt[key];
}

/* Column alignments from spec.align (table at idx), default left then center. */
static void column_aligns(lua_State *L, int spec, int *align, lua_Integer ncols) {
  for (lua_Integer c = 0; c < ncols; c++) align[c] = c == 0 ? 0 : 1;
  if (lua_getfield(L, spec, "align") == LUA_TTABLE) {
    int t = lua_gettop(L);
    for (lua_Integer c = 0; c < ncols; c++) {
      if (lua_geti(L, t, c + 1) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        for (int i = 0; align_names[i] != NULL; i++)
          if (strcmp(s, align_names[i]) == 0) align[c] = i;
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

static int l_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);

  /* Validate everything first. */
  if (lua_getfield(L, 2, "rows") != LUA_TTABLE)
    return luaL_error(L, "xlsx.write: spec.rows must be an array of rows, got %s", luaL_typename(L, -1));
  int rows = lua_gettop(L); /* 3 */
  lua_Integer ncols = check_rows(L, rows);
  lua_Integer want = (lua_Integer)opt_number(L, 2, "ncols", "spec");
  if (want > ncols) ncols = want;
  if (ncols < 1) ncols = 1;
  if (ncols > 16384) return luaL_error(L, "xlsx.write: %I columns is more than a sheet holds (16384)", ncols);
  const char *sheet = "Sheet1";
  int t = lua_getfield(L, 2, "sheet"); /* 4, kept on the stack: pins the string */
  if (t == LUA_TSTRING) sheet = lua_tostring(L, -1);
  else if (t != LUA_TNIL) return luaL_error(L, "xlsx.write: spec.sheet must be a string, got %s", luaL_typename(L, -1));
  t = lua_getfield(L, 2, "widths"); /* 5 */
  if (t != LUA_TNIL && t != LUA_TTABLE)
    return luaL_error(L, "xlsx.write: spec.widths must be an array of numbers, got %s", luaL_typename(L, -1));
  int *align = lua_newuserdatauv(L, (size_t)ncols * sizeof *align, 0); /* 6: GC-owned scratch */
  column_aligns(L, 2, align, ncols);

  /* Owner first, then the workbook. */
  xlsx_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* 7 */
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, SP_XLSX_T);
  b->wb = workbook_new(path);
  if (b->wb == NULL) return luaL_error(L, "xlsx.write: out of memory creating a workbook");
  lxw_error e = workbook_validate_sheet_name(b->wb, sheet);
  if (e != LXW_NO_ERROR)
    return luaL_error(L, "xlsx.write: invalid sheet name '%s': %s", sheet, lxw_strerror(e));
  lxw_worksheet *ws = workbook_add_worksheet(b->wb, sheet);
  if (ws == NULL) return luaL_error(L, "xlsx.write: cannot add sheet '%s'", sheet);

  if (lua_type(L, 5) == LUA_TTABLE) {
    lua_Integer nw = luaL_len(L, 5);
    for (lua_Integer c = 1; c <= nw && c <= ncols; c++) {
      lua_geti(L, 5, c);
      if (lua_isnumber(L, -1)) {
        e = worksheet_set_column(ws, (lxw_col_t)(c - 1), (lxw_col_t)(c - 1), lua_tonumber(L, -1), NULL);
        if (e != LXW_NO_ERROR) return luaL_error(L, "xlsx.write: column %I: %s", c, lxw_strerror(e));
      }
      lua_pop(L, 1);
    }
  }

  lua_Integer nrows = luaL_len(L, rows);
  for (lua_Integer r = 1; r <= nrows; r++) {
    char what[48];
    snprintf(what, sizeof what, "rows[%lld]", (long long)r);
    lua_geti(L, rows, r);
    int row = lua_gettop(L);
    lxw_row_t xr = (lxw_row_t)(r - 1);
    int bold = opt_bool(L, row, "bold"), italic = opt_bool(L, row, "italic"), wrap = opt_bool(L, row, "wrap");
    int ralign = opt_choice(L, row, "align", align_names, -1, what);
    int top = opt_choice(L, row, "top", border_names, 0, what);
    int bottom = opt_choice(L, row, "bottom", border_names, 0, what);
    double height = opt_number(L, row, "height", what);
    if (height > 0) {
      e = worksheet_set_row(ws, xr, height, NULL);
      if (e != LXW_NO_ERROR) return luaL_error(L, "xlsx.write: %s: %s", what, lxw_strerror(e));
    }
    if (opt_bool(L, row, "merge")) {
      lxw_format *f = get_format(b, bold, italic, wrap, ralign >= 0 ? ralign : align[0], top, bottom);
      if (f == NULL) return luaL_error(L, "xlsx.write: out of memory creating a cell format");
      lua_geti(L, row, 1);
      const char *s = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
      if (ncols > 1) e = worksheet_merge_range(ws, xr, 0, xr, (lxw_col_t)(ncols - 1), s, f);
      else e = s[0] ? worksheet_write_string(ws, xr, 0, s, f) : worksheet_write_blank(ws, xr, 0, f);
      if (e != LXW_NO_ERROR) return luaL_error(L, "xlsx.write: %s: %s", what, lxw_strerror(e));
      lua_pop(L, 2);
      continue;
    }
    for (lua_Integer c = 1; c <= ncols; c++) {
      lxw_format *f = get_format(b, bold, italic, wrap, ralign >= 0 ? ralign : align[c - 1], top, bottom);
      if (f == NULL) return luaL_error(L, "xlsx.write: out of memory creating a cell format");
      lxw_col_t xc = (lxw_col_t)(c - 1);
      int ct = lua_geti(L, row, c);
      if (ct == LUA_TNUMBER) {
        e = worksheet_write_number(ws, xr, xc, lua_tonumber(L, -1), f);
      } else if (ct == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
        e = worksheet_write_string(ws, xr, xc, lua_tostring(L, -1), f);
      } else {
        e = worksheet_write_blank(ws, xr, xc, f);
      }
      if (e != LXW_NO_ERROR) return luaL_error(L, "xlsx.write: %s[%I]: %s", what, c, lxw_strerror(e));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }

  /* workbook_close writes the file and frees the workbook whatever happens. */
  lxw_workbook *wb = b->wb;
  b->wb = NULL;
  e = workbook_close(wb);
  if (e != LXW_NO_ERROR) {
    luaL_pushfail(L);
    lua_pushfstring(L, "cannot write '%s': %s", path, lxw_strerror(e));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg box_meta[] = {{"__gc", box_gc}, {"__close", box_gc}, {NULL, NULL}};

static const luaL_Reg xlsx_funcs[] = {{"write", l_write}, {NULL, NULL}};

int luaopen_spillover_xlsx(lua_State *L) {
  if (luaL_newmetatable(L, SP_XLSX_T)) luaL_setfuncs(L, box_meta, 0);
  lua_pop(L, 1);
  luaL_newlib(L, xlsx_funcs);
  lua_pushliteral(L, LXW_VERSION);
  lua_setfield(L, -2, "libxlsxwriter_version");
  return 1;
}
