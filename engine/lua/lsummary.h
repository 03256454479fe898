/*
** lsummary.h: the binding of summary.h.  Adds core.summary (the draws x rows
** part of spillover.counterfactual.summarise) and core.quantile
** (sp_quantile_sorted, behind spillover.util.quantile) to the table at the top of the
** stack.
*/
#ifndef SPILLOVER_LSUMMARY_H
#define SPILLOVER_LSUMMARY_H

#include <lua.h>

void sp_lua_open_summary(lua_State *L);

#endif
