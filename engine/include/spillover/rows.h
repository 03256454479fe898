/*
** rows.h: a matrix read block by block and never stored whole.
**
** A fixed-effects fit at 1e7 rows used to copy [y X] out of the frame
** (240 MB for two regressors), demean the copy in place and read it about
** nine times.  A source instead produces rows on request: the design's
** plain columns read from the frame (sp_design_rows), those rows minus the
** absorbed fixed effects (sp_demean_within), a subset of another source's
** columns (sp_rows_select).  Least squares, the covariance, the sums of
** squares and the demeaning read sources through the same row passes as
** matrices, and give the same bits: a pass keeps its running sums across
** the blocks of a chunk (team.h), so reading rows in blocks changes no
** order of additions.
**
** read may be called from two threads at once, for different rows: it must
** not modify the source.
*/
#ifndef SPILLOVER_ROWS_H
#define SPILLOVER_ROWS_H

#include <stddef.h>

/* The most rows a pass asks for at once: 256 rows of up to 64 columns stay
   in the first two cache levels. */
#define SP_ROWS_BLOCK 256

typedef struct sp_rows sp_rows;

/* Rows [r0, r1) (r1 - r0 <= SP_ROWS_BLOCK) of the n x p matrix, row-major
   into out with ldo >= p doubles per row. */
typedef void (*sp_rows_read)(const sp_rows *src, size_t r0, size_t r1, double *out, size_t ldo);

struct sp_rows {
  size_t n, p;
  sp_rows_read read;
  const void *ctx;      /* the producer's state; not owned */
  /* When not NULL, column j of the rows is col[j][0..n) and read copies
     exactly those values: a consumer may read the arrays itself and fuse
     its own arithmetic into the loads (sp_demean_within does). */
  const double *const *col;
};

/* Columns cols[0..m-1] (0-based, any order) of src; src->p and m at most
   SP_ROWS_MAXSEL.  When src has column arrays, so does the select (the
   chosen ones): it points into itself, so it must not be copied.
   The select keeps pointers to src and cols: both must outlive it. */
#define SP_ROWS_MAXSEL 64
typedef struct sp_rows_select {
  sp_rows rows;
  const sp_rows *src;
  const size_t *cols;
  const double *col[SP_ROWS_MAXSEL];  /* rows.col, when src->col is set */
} sp_rows_select;

/* Returns 0, or -1 when m or a column is out of range (nothing set). */
int sp_rows_select_init(sp_rows_select *s, const sp_rows *src, const size_t *cols, size_t m);

/* An n x p row-major array (ld >= p doubles per row) as a source, for the
   routines that read sources only. */
typedef struct sp_rows_array {
  sp_rows rows;
  const double *data;
  size_t ld;
} sp_rows_array;

void sp_rows_array_init(sp_rows_array *a, const double *data, size_t n, size_t p, size_t ld);

#endif
