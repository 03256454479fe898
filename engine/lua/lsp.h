/*
** lsp.h: shared declarations of the Lua binding (engine/lua/).  Only files in
** engine/lua/ and engine/cli/ include lua.h.
**
** Rules (see STYLE.md): every C object seen by Lua is a full userdata with a
** metatable named spillover.<type> and an idempotent __gc; check all arguments
** first, create the owners, call the core, free what C still holds, and only
** then raise.
*/
#ifndef SPILLOVER_LSP_H
#define SPILLOVER_LSP_H

#include <stddef.h>

#include <gsl/gsl_matrix.h>
#include <lauxlib.h>
#include <lua.h>

#include "spillover/error.h"
#include "spillover/frame.h"

#define SP_MATRIX_T "spillover.matrix"
#define SP_FRAME_T "spillover.frame"
#define SP_ERROR_T "spillover.error"

/* ---- errors (lerror.c) ---------------------------------------------------- */

/* Raise e as a spillover.error table {msg, file, line, col, var, code, where}
   whose __tostring gives "where file:line:col: msg".  Never returns. */
int sp_lua_error(lua_State *L, const sp_error *e);

/* ---- matrices (lmatrix.c) --------------------------------------------------- */

/* Push a new rows x cols matrix whose storage lives inside the userdata and
   return it (contents uninitialised).  Either dimension may be 0. */
gsl_matrix *sp_lua_matrix_new(lua_State *L, size_t rows, size_t cols);
gsl_matrix *sp_lua_check_matrix(lua_State *L, int idx);

/* Push a rows x cols view of the matrix at index parent, from its element
   (i, j) (0-based), pinning the parent; returns the view. */
gsl_matrix *sp_lua_matrix_view(lua_State *L, int parent, size_t i, size_t j, size_t rows, size_t cols);
gsl_matrix *sp_lua_test_matrix(lua_State *L, int idx);

/* ---- frames (lframe.c) ---------------------------------------------------------- */

/* Push an empty frame box (owner first) and return its slot; store the frame
   in *slot once it exists, and __gc frees it. */
sp_frame **sp_lua_frame_box(lua_State *L);
sp_frame *sp_lua_check_frame(lua_State *L, int idx);

/* Refuse keys of the option table at idx that are not in the NULL-terminated
   list `allowed` (unknown keys are almost always typos), with a message
   "fn: unknown option 'k' (expected a, b, c)".  Nil at idx is accepted; any
   other non-table raises. */
void sp_lua_check_options(lua_State *L, int idx, const char *fn, const char *const *allowed);

/* ---- types ------------------------------------------------------------------ */

/* Register the metatable `name` with metamethods `meta` and a method table
   `meth` as its __index (lerror.c).  Leaves the stack as it found it. */
void sp_lua_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *meth);

/* Register the metatable `name` of an internal box whose __gc and __close
   both run gc (lerror.c).  Leaves the stack as it found it. */
void sp_lua_new_box_type(lua_State *L, const char *name, lua_CFunction gc);

/* ---- module registration: each adds its functions to the table at -1 ------- */
void sp_lua_open_error(lua_State *L);

/* luaL_error with C's printf formats (%zu etc.), for messages with sizes.
   Never returns. */
int sp_lua_errorf(lua_State *L, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
void sp_lua_open_matrix(lua_State *L);
void sp_lua_open_frame(lua_State *L);
void sp_lua_open_io(lua_State *L);
void sp_lua_open_formula(lua_State *L);
void sp_lua_open_rng(lua_State *L);
void sp_lua_open_estimate(lua_State *L);
void sp_lua_open_lp(lua_State *L);
void sp_lua_open_conley(lua_State *L);

int luaopen_spillover_core(lua_State *L);

#endif
