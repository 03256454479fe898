/*
** ldist.h: core.mpi (ldist.c), the processes of an MPI job.
*/
#ifndef SPILLOVER_LDIST_H
#define SPILLOVER_LDIST_H

#include <lua.h>

/* Add the table `mpi` to the module table at -1. */
void sp_lua_open_dist(lua_State *L);

#endif
