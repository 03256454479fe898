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

/* core.raise(msg [, {code =, var =, file =, line =, col =}]): the error
   object for failures found in Lua (the modules under lua/spillover), the
   same as the C bindings raise: msg and text, code (a status name, "bad
   value" by default), var and position when given, and where, the user's
   call.  Lua modules raise through it instead of error(msg, level), whose
   level had to be counted by hand at every call and was often wrong. */
static int l_raise(lua_State *L) {
  luaL_checkstring(L, 1);
  int hasf = lua_istable(L, 2);
  lua_settop(L, 2);
  lua_createtable(L, 0, 8);
  int t = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_setfield(L, t, "msg");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (hasf) {
    static const char *const pos[] = {"file", "line", "col"};
    int any = 0;
    for (int j = 0; j < 3; j++) {
      int ty = lua_getfield(L, 2, pos[j]);
      if (ty == LUA_TSTRING || (j > 0 && ty == LUA_TNUMBER)) {
        lua_pushvalue(L, -1);
        lua_setfield(L, t, pos[j]);
        luaL_addvalue(&b);  /* pops the value */
        luaL_addchar(&b, ':');
        any = 1;
      } else {
        lua_pop(L, 1);
      }
    }
    if (any) luaL_addchar(&b, ' ');
    if (lua_getfield(L, 2, "var") == LUA_TSTRING) lua_setfield(L, t, "var"); else lua_pop(L, 1);
  }
  lua_pushvalue(L, 1);
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  lua_setfield(L, t, "text");
  if (!hasf || lua_getfield(L, 2, "code") != LUA_TSTRING) {
    if (hasf) lua_pop(L, 1);
    lua_pushstring(L, sp_status_name(SP_EVALUE));
  }
  lua_setfield(L, t, "code");
  push_user_where(L);
  lua_setfield(L, t, "where");
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

/* Errors raised by the Lua modules were strings before they were
   spillover.errors, and scripts wrote err:match(...) and "..." .. err.  The
   string methods therefore work on an error's text (e:find, e:match, e:gsub,
   ...) and concatenation uses it, so such scripts keep working. */
static int error_string_method(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  lua_replace(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static int error_index(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "string") == LUA_TTABLE && lua_type(L, 2) == LUA_TSTRING &&
      lua_getfield(L, -1, lua_tostring(L, 2)) == LUA_TFUNCTION) {
    lua_pushcclosure(L, error_string_method, 1);
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

static int error_concat(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  luaL_tolstring(L, 2, NULL);
  lua_concat(L, 2);
  return 1;
}

void sp_lua_open_error(lua_State *L) {
  if (luaL_newmetatable(L, SP_ERROR_T)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, error_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, error_concat);
    lua_setfield(L, -2, "__concat");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_raise);
  lua_setfield(L, -2, "raise");
}
