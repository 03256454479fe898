/*
** panel.h: the panel index of a frame (entity x time).
**
** Built once by sp_panel_build; the frame owns it (sp_frame_set_panel).
** Entity codes follow the sorted order of the entity values, time codes the
** sorted order of the time values.  Lags, leads and differences respect gaps:
** the lag of a row is the row of the same entity whose time is one step
** earlier, and missing when that period is absent.  A time step is one unit of
** an integer-valued numeric time column (years), and one position in the
** sorted levels otherwise.
*/
#ifndef SPILLOVER_PANEL_H
#define SPILLOVER_PANEL_H

#include <stddef.h>
#include <stdint.h>

#include "spillover/error.h"
#include "spillover/frame.h"

typedef struct sp_panel {
  char *entity_name, *time_name;  /* owned copies of the index column names */
  size_t n;          /* rows of the frame */
  size_t N, T;       /* number of entities and of distinct periods */
  int32_t *entity;   /* n entity codes in [0, N) */
  int32_t *period;   /* n time codes in [0, T) */
  int64_t *step;     /* n time positions in steps (year values, or time codes) */
  size_t *order;     /* n row numbers sorted by (entity, time) */
  size_t *start;     /* N + 1 offsets into order: entity e is order[start[e] .. start[e+1]) */
  size_t Tmin, Tmax; /* observations per entity */
  size_t ngaps;      /* missing periods inside the entities' spans */
  int balanced;      /* every entity observed in every period */
} sp_panel;

/* Index the frame by the two columns.  A duplicate (entity, time) pair or a
   missing or infinite index value is an error naming the pair or the row. */
int sp_panel_build(const sp_frame *f, const char *entity, const char *time,
                   sp_panel **out, sp_error *err);
void sp_panel_free(sp_panel *p);

/* out[r] = x at the same entity, k steps earlier (k > 0: lag; k < 0: lead);
   NaN where that period is not observed (whatever |k|, without overflow).
   out must not alias x. */
int sp_panel_shift(const sp_panel *p, const double *x, long k, double *out, sp_error *err);

#endif
