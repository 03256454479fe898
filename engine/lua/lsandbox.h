/*
** lsandbox.h: the limits and refusals of untrusted code (lsandbox.c): plugin
** calls run under an instruction budget and a memory cap, writing entry
** points refuse while a plugin runs, and expressions (frame:filter strings,
** scenario where:) are expressions only, with pure functions only.
*/
#ifndef SPILLOVER_LSANDBOX_H
#define SPILLOVER_LSANDBOX_H

#include <lua.h>

/* Adds core.sandbox (call, coroutine, refuse, active, expression_problem)
   to the table at -1. */
void sp_lua_open_sandbox(lua_State *L);

/* Raise "<what>: writing files is not allowed in a sandboxed plugin ..."
   when plugin code is running (inside sandbox.call); return 0 otherwise.
   Every entry point that writes a file calls it first. */
int sp_lua_sandbox_refuse(lua_State *L, const char *what);

/* NULL when the text of the string at idx may be an expression; else pushes
   and returns a description of the first token that is not part of an
   expression ("the keyword 'while'", "';'", ...). */
const char *sp_lua_expression_problem(lua_State *L, int idx);

/* Push the value of the name an expression may use besides column names
   (math, string, tostring, tonumber, type: private copies holding pure
   functions only) and return 1; return 0 and push nothing for other names. */
int sp_lua_expression_global(lua_State *L, const char *name);

/* Exchange the value at the top of the stack with the __index of the string
   metatable (the methods of string values).  Untrusted code reaches string
   methods through any string value, ("x").rep or ("").dump, whatever its
   environment holds, so plugin calls and expressions run with their own
   method table: swap it in, run, swap the saved one back. */
void sp_lua_swap_string_methods(lua_State *L);

#endif
