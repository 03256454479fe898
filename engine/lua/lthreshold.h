/*
** lthreshold.h: the binding of the panel threshold core (threshold.h).
**
**   core.threshold_fit(design, opts) -> table
**
** design: a spillover.design built as "y ~ x... | entity" with the threshold
** variable, the regime regressors (and the time variable, if any) as extra
** variables.  lua/spillover/threshold.lua is the user-facing layer.
*/
#ifndef SPILLOVER_LTHRESHOLD_H
#define SPILLOVER_LTHRESHOLD_H

#include <lua.h>

/* Adds threshold_fit to the table at the top of the stack. */
void sp_lua_open_threshold(lua_State *L);

#endif
