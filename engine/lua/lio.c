/*
** lio.c: reading and writing data files from Lua (sp.read_csv, sp.read,
** frame:write_csv).
*/
#include "lsp.h"

void sp_lua_open_io(lua_State *L) {
  (void)L;
}
