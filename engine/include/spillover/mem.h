/*
** mem.h: allocation of large numeric buffers.
**
** On the machines we target, the first access to fresh memory costs about
** 1.5 s per GB with 4 KiB pages; buffers of a megabyte or more are therefore
** mapped on huge pages where the kernel gives them, populated in one call by
** a helper thread, and kept for reuse when freed (mem.c).  Free them with
** sp_mem_free only.
*/
#ifndef SPILLOVER_MEM_H
#define SPILLOVER_MEM_H

#include <stddef.h>

void *sp_mem_alloc(size_t bytes);            /* NULL on failure; bytes == 0 gives a valid pointer */
void *sp_mem_calloc(size_t n, size_t size);  /* zeroed; NULL on failure or overflow */
/* As sp_mem_alloc, for a block to be written slowly from its start to its
   end (a parser's output): 4 KiB pages, which the populating helper keeps
   ahead of such a writer where huge pages stall it (mem.c). */
void *sp_mem_alloc_stream(size_t bytes);
void sp_mem_free(void *p);

double *sp_mem_doubles(size_t n);            /* uninitialised doubles */

/* Whether blocks mapped from now on ask for huge pages (MADV_HUGEPAGE): on
   at start, and turned off for the rest of the process when a huge-page
   populate runs slower than 0.3 GB/s.  Returns the previous setting.  For
   benchmarks and tests; blocks already mapped keep their pages. */
int sp_mem_huge_pages(int on);

#endif
