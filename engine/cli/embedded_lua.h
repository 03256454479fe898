/* embedded_lua.h: the Lua modules compiled into the executable (generated
   table, see cmake/embed_lua.cmake). */
#ifndef SPILLOVER_EMBEDDED_LUA_H
#define SPILLOVER_EMBEDDED_LUA_H

#include <stddef.h>

typedef struct {
  const char *name;    /* module name for require */
  const char *chunk;   /* chunk name used in messages */
  const char *source;
  size_t size;
} sp_embedded_module;

extern const sp_embedded_module sp_embedded_modules[];

#endif
