/*
** lsys.h: registration of sp.yaml (lyaml.c) and sp.sys (lsys.c).
**
** Each function adds one subtable ("yaml" or "sys") to the module table at
** the top of the stack, like sp_lua_open_rng.  Called from lmodule.c.
*/
#ifndef SPILLOVER_LSYS_H
#define SPILLOVER_LSYS_H

#include <lua.h>

void sp_lua_open_yaml(lua_State *L);
void sp_lua_open_sys(lua_State *L);

#endif
