/*
** lspml.h: the binding of the ML spatial-model core (spml.h), used by
** lua/spillover/spatial_models.lua.  Adds core.spml_sample to the module
** table at the top of the stack; it returns a spillover.spml userdata (the
** weights over a sample, its log-determinant and the likelihood machinery).
*/
#ifndef SPILLOVER_LSPML_H
#define SPILLOVER_LSPML_H

#include <lua.h>

void sp_lua_open_spml(lua_State *L);

#endif
