/*
** mem.h: allocation of large numeric buffers.
**
** On the machines we target, faulting in fresh memory page by page costs
** about 3 s per GB (huge pages no less); buffers of a megabyte or more are
** therefore mapped and populated in one call, and kept for reuse when freed
** (mem.c).  Free them with sp_mem_free only.
*/
#ifndef SPILLOVER_MEM_H
#define SPILLOVER_MEM_H

#include <stddef.h>

void *sp_mem_alloc(size_t bytes);            /* NULL on failure; bytes == 0 gives a valid pointer */
void *sp_mem_calloc(size_t n, size_t size);  /* zeroed; NULL on failure or overflow */
void sp_mem_free(void *p);

double *sp_mem_doubles(size_t n);            /* uninitialised doubles */

#endif
