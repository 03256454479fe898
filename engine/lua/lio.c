/*
** lio.c: reading and writing data files from Lua (sp.read_csv, sp.read,
** frame:write_csv).
**
** The options table is checked completely before anything is allocated; the
** C arrays the core borrows (missing tokens, forced types) live in userdata
** on the stack, so a raise at any point leaks nothing, and the strings they
** point to stay pinned by the options table itself (argument 2).
*/
#include <string.h>
#include <strings.h>

#include "lsp.h"
#include "lsandbox.h"
#include "spillover/csv.h"
#include "spillover/statfile.h"

/* Fill opt from the table at index idx (absent or nil: defaults). */
static void check_csv_options(lua_State *L, int idx, sp_csv_options *opt) {
  sp_csv_options_init(opt);
  if (lua_isnoneornil(L, idx)) return;
  static const char *const allowed[] = {"delimiter", "header", "missing", "types", "max_rows", "encoding", NULL};
  sp_lua_check_options(L, idx, "read_csv", allowed);

  if (lua_getfield(L, idx, "delimiter") != LUA_TNIL) {
    size_t n;
    const char *d = lua_tolstring(L, -1, &n);
    if (lua_type(L, -1) != LUA_TSTRING || n != 1 || d[0] == '"' || d[0] == '\n' || d[0] == '\r')
      luaL_error(L, "read_csv: option 'delimiter' must be a one-character string other than a quote or newline");
    opt->delimiter = d[0];
  }
  lua_pop(L, 1);

  if (lua_getfield(L, idx, "header") != LUA_TNIL) {
    if (!lua_isboolean(L, -1)) luaL_error(L, "read_csv: option 'header' must be a boolean");
    opt->header = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);

  if (lua_getfield(L, idx, "encoding") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "read_csv: option 'encoding' must be a string such as \"gb18030\" or \"latin1\"");
    opt->encoding = lua_tostring(L, -1);  /* pinned by the options table */
  }
  lua_pop(L, 1);

  if (lua_getfield(L, idx, "max_rows") != LUA_TNIL) {
    int isint;
    lua_Integer m = lua_tointegerx(L, -1, &isint);
    if (!isint || m < 1) luaL_error(L, "read_csv: option 'max_rows' must be a positive integer");
    opt->max_rows = (size_t)m;
  }
  lua_pop(L, 1);

  if (lua_getfield(L, idx, "missing") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "read_csv: option 'missing' must be a list of strings");
    size_t n = (size_t)lua_rawlen(L, -1);
    const char **m = lua_newuserdatauv(L, (n ? n : 1) * sizeof *m, 0);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, -2, (lua_Integer)i + 1);
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "read_csv: option 'missing' must be a list of strings (item %d is a %s)",
                   (int)i + 1, luaL_typename(L, -1));
      m[i] = lua_tostring(L, -1);  /* pinned by the options table */
      lua_pop(L, 1);
    }
    opt->missing = m;
    opt->nmissing = n;
    lua_insert(L, -2);  /* keep the array userdata on the stack below */
  }
  lua_pop(L, 1);

  if (lua_getfield(L, idx, "types") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "read_csv: option 'types' must be a table {column = \"numeric\"|\"categorical\"}");
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) { n++; lua_pop(L, 1); }
    const char **names = lua_newuserdatauv(L, (n ? n : 1) * sizeof *names, 0);
    sp_csv_type *types = lua_newuserdatauv(L, (n ? n : 1) * sizeof *types, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, -4) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "read_csv: option 'types' must map column names to types");
      const char *t = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      if (strcmp(t, "numeric") == 0) types[i] = SP_CSV_NUMERIC;
      else if (strcmp(t, "categorical") == 0) types[i] = SP_CSV_CATEGORICAL;
      else luaL_error(L, "read_csv: type of column '%s' must be \"numeric\" or \"categorical\"",
                      lua_tostring(L, -2));
      names[i++] = lua_tostring(L, -2);  /* keys are pinned by the types table */
      lua_pop(L, 1);
    }
    opt->type_names = names;
    opt->types = types;
    opt->ntypes = n;
    lua_rotate(L, -3, 2);  /* arrays below the types table */
  }
  lua_pop(L, 1);
}

static int read_csv_at(lua_State *L, const char *path, const sp_csv_options *opt) {
  sp_frame **slot = sp_lua_frame_box(L);
  sp_error err;
  sp_error_clear(&err);
  if (sp_frame_read_csv(path, opt, slot, &err) != SP_OK) return sp_lua_error(L, &err);
  return 1;
}

/* sp.read_csv(path [, opts]) */
static int l_read_csv(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  sp_csv_options opt;
  check_csv_options(L, 2, &opt);
  return read_csv_at(L, path, &opt);
}

static const char *extension(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(path, '.');
  return (dot == NULL || (slash != NULL && dot < slash)) ? NULL : dot;
}

/* sp.read(path [, opts]): by extension. */
static int l_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *ext = extension(path);
  if (ext != NULL && (strcasecmp(ext, ".csv") == 0 || strcasecmp(ext, ".txt") == 0 ||
                      strcasecmp(ext, ".tsv") == 0)) {
    sp_csv_options opt;
    int tsv = strcasecmp(ext, ".tsv") == 0;
    check_csv_options(L, 2, &opt);
    if (tsv && (lua_isnoneornil(L, 2) || lua_getfield(L, 2, "delimiter") == LUA_TNIL)) opt.delimiter = '\t';
    return read_csv_at(L, path, &opt);
  }
  if (sp_stat_supported(path)) {
    if (!lua_isnoneornil(L, 2))
      luaL_argerror(L, 2, "options apply to CSV files only; Stata/SPSS/SAS files take none");
    sp_frame **slot = sp_lua_frame_box(L);
    sp_error err;
    sp_error_clear(&err);
    if (sp_frame_read_stat(path, slot, &err) != SP_OK) return sp_lua_error(L, &err);
    return 1;
  }
  return luaL_error(L, "read: cannot read '%s': unsupported extension '%s' (expected .csv, .txt, .tsv, "
                       ".dta, .sav, .zsav, .por, .sas7bdat or .xpt)", path, ext ? ext : "(none)");
}

/* frame:write_csv(path [, opts]): delimiter (as read_csv names it; R's
   write.csv sep, Stata's export delimited delimiter()), na, quote, bom.
   Plugin code may not write files: the refusal is here, in the writer. */
static int l_write_csv(lua_State *L) {
  sp_lua_sandbox_refuse(L, "frame:write_csv");
  sp_frame *f = sp_lua_check_frame(L, 1);
  const char *path = luaL_checkstring(L, 2);
  sp_csv_write_options opt;
  sp_csv_write_options_init(&opt);
  if (!lua_isnoneornil(L, 3)) {
    static const char *const allowed[] = {"delimiter", "na", "quote", "bom", NULL};
    sp_lua_check_options(L, 3, "write_csv", allowed);
    if (lua_getfield(L, 3, "delimiter") != LUA_TNIL) {
      size_t n;
      const char *d = lua_tolstring(L, -1, &n);
      if (lua_type(L, -1) != LUA_TSTRING || n != 1 || d[0] == '"' || d[0] == '\n' || d[0] == '\r' || d[0] == '\0')
        luaL_error(L, "write_csv: option 'delimiter' must be a one-character string other than a quote, newline or NUL");
      opt.delimiter = d[0];
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 3, "na") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "write_csv: option 'na' must be a string (\"\" or \"NA\", say)");
      opt.na = lua_tostring(L, -1);  /* pinned by the options table */
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 3, "quote") != LUA_TNIL) {
      static const char *const modes[] = {"minimal", "all", "none", NULL};
      const char *q = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      int k = 0;
      while (modes[k] != NULL && strcmp(modes[k], q) != 0) k++;
      if (modes[k] == NULL) luaL_error(L, "write_csv: option 'quote' must be \"minimal\", \"all\" or \"none\"");
      opt.quote = k == 0 ? SP_CSV_QUOTE_MINIMAL : k == 1 ? SP_CSV_QUOTE_ALL : SP_CSV_QUOTE_NONE;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 3, "bom") != LUA_TNIL) {
      if (!lua_isboolean(L, -1)) luaL_error(L, "write_csv: option 'bom' must be a boolean");
      opt.bom = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
  }
  sp_error err;
  sp_error_clear(&err);
  if (sp_frame_write_csv(f, path, &opt, &err) != SP_OK) return sp_lua_error(L, &err);
  lua_settop(L, 1);
  return 1;
}

/* Add write_csv to the frame's methods: the registry table
   "spillover.frame.methods" when lframe.c provides one, else the __index
   table of the metatable. */
static void add_frame_method(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, "spillover.frame.methods") == LUA_TTABLE) {
    lua_pushcfunction(L, l_write_csv);
    lua_setfield(L, -2, "write_csv");
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  luaL_getmetatable(L, SP_FRAME_T);
  if (lua_istable(L, -1) && lua_getfield(L, -1, "__index") == LUA_TTABLE) {
    lua_pushcfunction(L, l_write_csv);
    lua_setfield(L, -2, "write_csv");
  }
  lua_settop(L, lua_gettop(L) - 2);
}

static const luaL_Reg funcs[] = {
  {"read_csv", l_read_csv},
  {"read", l_read},
  {NULL, NULL}
};

void sp_lua_open_io(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
  add_frame_method(L);
}
