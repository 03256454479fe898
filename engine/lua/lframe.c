/*
** lframe.c: the spillover.frame userdata.
**
** The userdata is a box holding an sp_frame pointer; it is pushed empty
** before the frame is built (owner first), so an error during construction
** leaves nothing unowned.
*/
#include "lsp.h"

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

static int l_nrow(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sp_lua_check_frame(L, 1)->nrow);
  return 1;
}

static const luaL_Reg metameth[] = {
  {"__gc", l_gc},
  {"__close", l_gc},
  {NULL, NULL}
};

static const luaL_Reg meth[] = {
  {"nrow", l_nrow},
  {NULL, NULL}
};

void sp_lua_open_frame(lua_State *L) {
  luaL_newmetatable(L, SP_FRAME_T);
  luaL_setfuncs(L, metameth, 0);
  luaL_newlibtable(L, meth);
  luaL_setfuncs(L, meth, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
