/*
** lxlsx.h: the spillover.xlsx Lua C module (lxlsx.c), a small writer of
** one-sheet .xlsx tables over libxlsxwriter, used by spillover.etable.
**
** It is not part of spillover.core: the host preloads it under the name
** "spillover.xlsx" (package.preload or luaL_requiref), so a build without
** that line still works for every other format.
*/
#ifndef SPILLOVER_LXLSX_H
#define SPILLOVER_LXLSX_H

#include <lua.h>

/* Push the module table {write = function(path, spec)}; see lxlsx.c. */
int luaopen_spillover_xlsx(lua_State *L);

#endif
