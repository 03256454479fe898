/*
** frame.h: a columnar data frame.
**
** Each column is one contiguous array: doubles (NaN = missing) for numeric
** columns, int32 codes into a dictionary of UTF-8 levels (-1 = missing) for
** categorical ones.  Columnar storage lets demeaning and cross-products stream
** through memory.  The frame owns its columns; numeric and code arrays are
** allocated with sp_mem_alloc (see mem.h) and freed with sp_mem_free.
*/
#ifndef SPILLOVER_FRAME_H
#define SPILLOVER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "spillover/error.h"

typedef enum { SP_NUMERIC = 0, SP_CATEGORICAL = 1 } sp_coltype;

/* What a pass over a column's values found, kept so that the next design
   over the same column need not read it again: written by sp_design's
   missing-value pass, zeroed whenever the column is added or replaced.
   Valid because a column's values never change in place (see serial), and
   unchanged by any reordering of its rows. */
typedef struct sp_colscan {
  unsigned char known;    /* the fields below are set */
  unsigned char missing;  /* some value is missing: not finite, or a code of -1 */
  unsigned char frac;     /* numeric: some finite value of magnitude below 2^51 is not an integer */
  unsigned char dense;    /* numeric: every integer from lo to hi occurs (set once a design coded the
                             whole column as a factor; 0: not known or not so) */
  double lo, hi;          /* numeric: range of the finite values (INFINITY, -INFINITY: none) */
} sp_colscan;

typedef struct sp_column {
  char *name;        /* UTF-8, owned */
  char *label;       /* variable label (from .dta/.sav or set by the user), owned, may be NULL */
  sp_coltype type;
  double *num;       /* SP_NUMERIC: nrow values */
  int32_t *code;     /* SP_CATEGORICAL: nrow codes in [0, nlevels) or -1 */
  char **levels;     /* SP_CATEGORICAL: nlevels owned strings */
  size_t nlevels;
  unsigned long long serial; /* 0 when the frame was created with it, else the frame's version
                                when it was added or replaced: a column whose array and serial
                                are unchanged holds the same values, whatever else changed */
  sp_colscan scan;   /* a cache; all zero: not known */
} sp_column;

struct sp_panel;

typedef struct sp_frame {
  size_t nrow;
  size_t ncol, capcol;
  sp_column *cols;
  struct sp_panel *panel;  /* optional panel index over these rows, owned; NULL if none */
  unsigned long long version;  /* bumped by every change to a column, a name or the panel index, so
                                  that a fit can tell that its frame is unchanged since it was built */
} sp_frame;

/* A frame with nrow rows and no columns; NULL (and err set) on failure. */
sp_frame *sp_frame_new(size_t nrow, sp_error *err);
void sp_frame_free(sp_frame *f);

/* Index of the column called name, or -1. */
long sp_frame_find(const sp_frame *f, const char *name);
sp_column *sp_frame_column(const sp_frame *f, const char *name);

/* Index of the column whose name is closest to name (for "did you mean"),
   or -1 when nothing is reasonably close: about a third of the name may be
   wrong, and a swap of two adjacent characters ("gps" for "gsp", the
   commonest typo) counts as one edit (optimal string alignment), and a name
   that differs only in case wins over any other. */
long sp_frame_closest(const sp_frame *f, const char *name);

/* rank[l] = the position of level l of a categorical column in strcmp
   order (equal strings share a rank), malloc'ed; NULL when out of memory.
   Sorting, grouping and the panel index order categoricals by it. */
int32_t *sp_column_level_ranks(const sp_column *c);

/* The same rule over n candidate strings: the index of the closest, or -1.
   The one "did you mean" rule of spillover (Lua's spillover.suggest calls it
   through core.closest). */
long sp_closest(const char *name, const char *const *candidates, size_t n);

/* Add a column, or replace the one of the same name.  Ownership of the arrays
   passes to the frame on every path, success or failure, so the caller never
   frees them after the call.  values/codes must hold f->nrow entries and come
   from sp_mem_alloc; levels and its strings from malloc. */
int sp_frame_add_numeric(sp_frame *f, const char *name, double *values, sp_error *err);
int sp_frame_add_categorical(sp_frame *f, const char *name, int32_t *codes,
                             char **levels, size_t nlevels, sp_error *err);

/* Add (or replace) column name of dst with the values of src at rows[0..n)
   (rows == NULL: src's first n rows in order); rows[i] == SP_NO_ROW gives a
   missing cell.  Categorical columns keep src's whole dictionary; the label
   is copied.  dst->nrow must be n. */
#define SP_NO_ROW ((size_t)-1)
int sp_frame_add_rows(sp_frame *dst, const char *name, const sp_column *src, const size_t *rows, size_t n,
                      sp_error *err);

/* Remove a column; SP_ENOTFOUND if there is none of that name. */
int sp_frame_drop(sp_frame *f, const char *name, sp_error *err);

/* Set a column's label (copied; NULL clears it). */
int sp_column_set_label(sp_column *c, const char *label, sp_error *err);

/* A new frame made of the given rows (in that order, repeats allowed) and of
   all columns, or only of the named ones when names != NULL.  The panel index
   is not carried over (callers rebuild it). */
int sp_frame_take(const sp_frame *f, const size_t *rows, size_t n,
                  const char *const *names, size_t nnames,
                  sp_frame **out, sp_error *err);

/* A deep copy. */
int sp_frame_copy(const sp_frame *f, sp_frame **out, sp_error *err);

/* The level string of a categorical cell, or NULL when missing. */
const char *sp_column_level(const sp_column *c, size_t row);

/* Is a cell missing (NaN or code -1)? */
int sp_column_missing(const sp_column *c, size_t row);

/* Replace the panel index (frees the old one; takes ownership of p). */
void sp_frame_set_panel(sp_frame *f, struct sp_panel *p);

#endif
