/*
** lformula.c: formulas and design matrices from Lua (sp.formula, sp.design).
*/
#include "lsp.h"

void sp_lua_open_formula(lua_State *L) {
  (void)L;
}
