/*
** lqp.h: the binding of the simplex-constrained least-norm problem (qp.h).
**
**   core.qp_simplex(D [, v]) -> w (array of J numbers), norm2
**
** lua/spillover/synth.lua (the synthetic control's W step) is its user.
*/
#ifndef SPILLOVER_LQP_H
#define SPILLOVER_LQP_H

#include <lua.h>

/* Adds qp_simplex to the table at the top of the stack. */
void sp_lua_open_qp(lua_State *L);

#endif
