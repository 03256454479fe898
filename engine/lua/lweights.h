/*
** lweights.h: the spillover.weights userdata (engine/lua/lweights.c).
*/
#ifndef SPILLOVER_LWEIGHTS_H
#define SPILLOVER_LWEIGHTS_H

#include <lua.h>

#include "spillover/weights.h"

#define SP_WEIGHTS_T "spillover.weights"

/* Adds `_weights` (constructors, Moran kernels, the method table) to the
   module table at the top of the stack. */
void sp_lua_open_weights(lua_State *L);

/* The weights at idx, raising on a wrong type or a closed object. */
sp_weights *sp_lua_check_weights(lua_State *L, int idx);

#endif
