/*
** lestimate.c: estimator primitives for Lua (sp.lsfit, sp.demean, sp.vcov).
*/
#include "lsp.h"

void sp_lua_open_estimate(lua_State *L) {
  (void)L;
}
