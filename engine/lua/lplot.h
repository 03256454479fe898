/*
** lplot.h: the spillover.plotcore Lua C module (lplot.c), low-level drawing
** sessions over PLplot's cairo driver (pngcairo, svgcairo), used by the
** high-level plots in lua/spillover/plot.lua.
**
** It is not part of spillover.core: the host preloads it under the name
** "spillover.plotcore" (package.preload), like spillover.xlsx.
*/
#ifndef SPILLOVER_LPLOT_H
#define SPILLOVER_LPLOT_H

#include <lua.h>

/* Push the module table {open = function(path, opts), devices = function()};
   see lplot.c for the session methods. */
int luaopen_spillover_plotcore(lua_State *L);

#endif
