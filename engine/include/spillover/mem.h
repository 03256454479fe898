/*
** mem.h: allocation of large numeric buffers.
**
** On the machines we target, the first touch of fresh memory costs ~17 us per
** 4 KiB page; buffers of a megabyte or more are therefore aligned to 2 MiB and
** advised for transparent huge pages.  Free them with sp_mem_free only.
*/
#ifndef SPILLOVER_MEM_H
#define SPILLOVER_MEM_H

#include <stddef.h>

void *sp_mem_alloc(size_t bytes);            /* NULL on failure; bytes == 0 gives a valid pointer */
void *sp_mem_calloc(size_t n, size_t size);  /* zeroed; NULL on failure or overflow */
void sp_mem_free(void *p);

double *sp_mem_doubles(size_t n);            /* uninitialised doubles */

#endif
