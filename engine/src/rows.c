/*
** rows.c: column selection over a row source, and an array as one (rows.h).
*/
#include <string.h>

#include "spillover/rows.h"

static void select_read(const sp_rows *r, size_t r0, size_t r1, double *out, size_t ldo) {
  const sp_rows_select *s = r->ctx;
  const sp_rows *src = s->src;
  /* The source's rows on the stack: at most 256 x 64 doubles (128 KB). */
  double buf[SP_ROWS_BLOCK * SP_ROWS_MAXSEL];
  src->read(src, r0, r1, buf, src->p);
  for (size_t i = 0; i < r1 - r0; i++)
    for (size_t j = 0; j < r->p; j++) out[i * ldo + j] = buf[i * src->p + s->cols[j]];
}

int sp_rows_select_init(sp_rows_select *s, const sp_rows *src, const size_t *cols, size_t m) {
  if (src == NULL || src->p > SP_ROWS_MAXSEL || m > SP_ROWS_MAXSEL || (m > 0 && cols == NULL)) return -1;
  for (size_t j = 0; j < m; j++)
    if (cols[j] >= src->p) return -1;
  memset(s, 0, sizeof *s);
  s->src = src;
  s->cols = cols;
  s->rows = (sp_rows){src->n, m, select_read, s, NULL};
  if (src->col != NULL) {
    for (size_t j = 0; j < m; j++) s->col[j] = src->col[cols[j]];
    s->rows.col = s->col;
  }
  return 0;
}

static void array_read(const sp_rows *r, size_t r0, size_t r1, double *out, size_t ldo) {
  const sp_rows_array *a = r->ctx;
  if (r->p == 0) return;  /* data may be NULL then */
  for (size_t i = r0; i < r1; i++) memcpy(out + (i - r0) * ldo, a->data + i * a->ld, r->p * sizeof *out);
}

void sp_rows_array_init(sp_rows_array *a, const double *data, size_t n, size_t p, size_t ld) {
  a->data = data;
  a->ld = ld;
  a->rows = (sp_rows){n, p, array_read, a, NULL};
}
