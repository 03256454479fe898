/*
** strdict.h: a string dictionary that gives each distinct string a code, in
** order of first appearance (the levels of a categorical column as a reader
** meets them).  The CSV reader and the Stata/SPSS/SAS readers share it.
**
** Ownership: lv and its strings belong to the dictionary until a caller takes
** them (hands lv to a frame and sets lv = NULL, n = 0); sp_strdict_free frees
** whatever is still there.  A zeroed sp_strdict is an empty dictionary.
*/
#ifndef SPILLOVER_STRDICT_H
#define SPILLOVER_STRDICT_H

#include <stddef.h>
#include <stdint.h>

typedef struct sp_strdict {
  char **lv;         /* n strings (malloc, NUL-terminated), in order of first appearance */
  size_t *len;       /* their lengths */
  uint32_t *hash;    /* their hashes (FNV-1a) */
  size_t n, cap;
  int32_t *tab;      /* open addressing: a code or -1 */
  size_t tmask;
} sp_strdict;

/* The code of s[0..n) (which may hold NUL bytes), added if unseen: -1 when
   out of memory, -2 when there are too many strings for int32 codes. */
int32_t sp_strdict_intern(sp_strdict *d, const char *s, size_t n);

void sp_strdict_free(sp_strdict *d);

#endif
