/*
** lerror.c: the spillover.error object raised for core failures.
**
** One error type for the whole API (Redis's lesson: choose once).  It is a
** table so callers can read msg, file, line, col and var; its __tostring gives
** the one-line form, so message handlers that call tostring print it.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lsp.h"

static int error_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "where");
  lua_getfield(L, 1, "text");
  lua_concat(L, 2);
  return 1;
}

/* "chunk:line:" of the innermost Lua function that is not part of spillover
   itself (the modules under lua/spillover), so an error raised inside sp.ols points at the
   user's call, not at the wrapper.  When no user code is on the stack (the
   scenario commands run only spillover's modules) it is "": a position inside
   scenario.lua would only hide the file:line:col the message already carries. */
static void push_user_where(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
    if (strstr(ar.short_src, "lua/spillover/") != NULL || strncmp(ar.short_src, "spillover/", 10) == 0) continue;
    lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
    return;
  }
  lua_pushliteral(L, "");
}

int sp_lua_error(lua_State *L, const sp_error *e) {
  char text[1200];
  sp_error_format(e, text, sizeof text);
  lua_createtable(L, 0, 8);
  lua_pushstring(L, e->msg);
  lua_setfield(L, -2, "msg");
  lua_pushstring(L, text);
  lua_setfield(L, -2, "text");
  if (e->file[0]) { lua_pushstring(L, e->file); lua_setfield(L, -2, "file"); }
  if (e->line > 0) { lua_pushinteger(L, e->line); lua_setfield(L, -2, "line"); }
  if (e->col > 0) { lua_pushinteger(L, e->col); lua_setfield(L, -2, "col"); }
  if (e->var[0]) { lua_pushstring(L, e->var); lua_setfield(L, -2, "var"); }
  lua_pushstring(L, sp_status_name(e->code));
  lua_setfield(L, -2, "code");
  push_user_where(L);
  lua_setfield(L, -2, "where");
  luaL_setmetatable(L, SP_ERROR_T);
  return lua_error(L);
}

int sp_lua_errorf(lua_State *L, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  luaL_where(L, 1);
  lua_pushstring(L, msg);
  lua_concat(L, 2);
  return lua_error(L);
}

void sp_lua_check_options(lua_State *L, int idx, const char *fn, const char *const *allowed) {
  if (lua_isnoneornil(L, idx)) return;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int ok = 0;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(lua_tostring(L, -2), *a) == 0;
    if (!ok) {
      size_t nallowed = 0;
      while (allowed[nallowed]) nallowed++;
      /* the one "did you mean" rule (sp_closest) */
      long near = lua_type(L, -2) == LUA_TSTRING ? sp_closest(lua_tostring(L, -2), allowed, nallowed) : -1;
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (const char *const *a = allowed; *a; a++) {
        if (a != allowed) luaL_addstring(&b, ", ");
        luaL_addstring(&b, *a);
      }
      luaL_addstring(&b, ")");
      if (near >= 0) {
        luaL_addstring(&b, "; did you mean '");
        luaL_addstring(&b, allowed[near]);
        luaL_addstring(&b, "'?");
      }
      luaL_pushresult(&b);
      luaL_error(L, "%s: unknown option '%s' (expected %s", fn,
                 lua_type(L, -3) == LUA_TSTRING ? lua_tostring(L, -3) : luaL_typename(L, -3), lua_tostring(L, -1));
    }
    lua_pop(L, 1);
  }
}

void sp_lua_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *meth) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);  /* luaL_newlibtable sizes from an array, not a pointer */
  luaL_setfuncs(L, meth, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void sp_lua_new_box_type(lua_State *L, const char *name, lua_CFunction gc) {
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}

void sp_lua_open_error(lua_State *L) {
  if (luaL_newmetatable(L, SP_ERROR_T)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}
