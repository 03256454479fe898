/*
** lmodule.c: luaopen_spillover_core, the entry point of the C part of the
** Lua API.  The Lua part (lua/spillover/init.lua) requires it as
** "spillover.core" and builds the public `spillover` table on top.
*/
#include <gsl/gsl_errno.h>

#include "ldist.h"
#include "lsp.h"
#include "lplot.h"
#include "lqp.h"
#include "lsandbox.h"
#include "lspml.h"
#include "lsummary.h"
#include "lsys.h"
#include "lweights.h"
#include "lxlsx.h"
#include "lthreshold.h"

int luaopen_spillover_core(lua_State *L) {
  /* GSL's default handler aborts; the core checks every status instead.
     The handler is process-global, so switching it off here is idempotent. */
  gsl_set_error_handler_off();
  lua_newtable(L);
  sp_lua_open_error(L);
  sp_lua_open_matrix(L);
  sp_lua_open_frame(L);
  sp_lua_open_io(L);
  sp_lua_open_formula(L);
  sp_lua_open_rng(L);
  sp_lua_open_estimate(L);
  sp_lua_open_yaml(L);
  sp_lua_open_sys(L);
  sp_lua_open_threshold(L);
  sp_lua_open_spml(L);
  sp_lua_open_weights(L);
  sp_lua_open_sandbox(L);
  sp_lua_open_lp(L);
  sp_lua_open_qp(L);
  sp_lua_open_conley(L);
  sp_lua_open_summary(L);
  sp_lua_open_dist(L);
  /* spillover.xlsx (the etable writer) is a separate small module. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_spillover_xlsx);
  lua_setfield(L, -2, "spillover.xlsx");
  lua_pushcfunction(L, luaopen_spillover_plotcore);
  lua_setfield(L, -2, "spillover.plotcore");
  lua_pop(L, 1);
  lua_pushliteral(L, SPILLOVER_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
