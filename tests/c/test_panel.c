/* test_panel.c: panel index construction, duplicate and missing cells, and
   gap-aware shifts. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/frame.h"
#include "spillover/mem.h"
#include "spillover/panel.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) passed++; else failed++;
}

static double *doubles(const double *v, size_t n) {
  double *d = sp_mem_doubles(n);
  memcpy(d, v, n * sizeof *d);
  return d;
}

/* Entities as strings so codes must follow sorted level order, not first
   appearance; entity "b" has a gap (1991 missing). */
static sp_frame *make_frame(void) {
  sp_error err;
  sp_frame *f = sp_frame_new(7, &err);
  char **lv = malloc(2 * sizeof *lv);
  lv[0] = strdup("b");
  lv[1] = strdup("a");
  int32_t *codes = sp_mem_alloc(7 * sizeof *codes);
  const int32_t c[7] = {0, 0, 0, 1, 1, 1, 1};
  memcpy(codes, c, sizeof c);
  sp_frame_add_categorical(f, "id", codes, lv, 2, &err);
  const double years[7] = {1992, 1990, 1993, 1990, 1991, 1992, 1993};
  const double x[7] = {12, 10, 13, 20, 21, 22, 23};
  sp_frame_add_numeric(f, "year", doubles(years, 7), &err);
  sp_frame_add_numeric(f, "x", doubles(x, 7), &err);
  return f;
}

int main(void) {
  sp_error err;
  sp_error_clear(&err);
  sp_frame *f = make_frame();
  sp_panel *p = NULL;
  int st = sp_panel_build(f, "id", "year", &p, &err);
  check(st == SP_OK && p != NULL, "build");
  check(p->N == 2 && p->T == 4 && p->n == 7, "N, T, n");
  check(!p->balanced && p->Tmin == 3 && p->Tmax == 4 && p->ngaps == 1, "balance, Ti range, gaps");
  check(p->entity[3] == 0 && p->entity[0] == 1, "entity codes follow sorted values");
  check(p->period[1] == 0 && p->period[2] == 3, "period codes");
  check(p->order[0] == 3 && p->order[3] == 6 && p->order[4] == 1 && p->order[6] == 2, "order by (entity, time)");

  double x[7], out[7];
  memcpy(x, f->cols[2].num, sizeof x);
  sp_panel_shift(p, x, 1, out, &err);
  check(isnan(out[1]) && isnan(out[0]) && out[2] == 12 && out[4] == 20 && isnan(out[3]),
        "lag 1 is missing across the gap and at the start");
  sp_panel_shift(p, x, -1, out, &err);
  check(isnan(out[1]) && out[0] == 13 && isnan(out[2]) && out[5] == 23, "lead 1");
  sp_panel_shift(p, x, 2, out, &err);
  check(out[0] == 10 && isnan(out[2]) && out[5] == 20 && isnan(out[4]), "lag 2");
  check(sp_panel_shift(p, x, 1, x, &err) == SP_EVALUE, "aliasing refused");
  /* Shifts far beyond any period must not overflow step - k (UBSan would flag it). */
  int none = 1;
  sp_panel_shift(p, x, LONG_MIN, out, &err);
  for (int i = 0; i < 7; i++) none &= isnan(out[i]);
  sp_panel_shift(p, x, LONG_MAX, out, &err);
  for (int i = 0; i < 7; i++) none &= isnan(out[i]);
  check(none, "shifts by LONG_MIN and LONG_MAX periods give only missing values");
  sp_frame_set_panel(f, p);

  /* Duplicate cell. */
  f->cols[1].num[2] = 1992;
  st = sp_panel_build(f, "id", "year", &p, &err);
  check(st == SP_EDUP && strstr(err.msg, "duplicate panel cell (id = b, year = 1992) in rows 1 and 3") != NULL,
        "duplicate pair named");
  if (st != SP_EDUP) printf("  message: %s\n", err.msg);

  /* Missing index value and unknown column. */
  f->cols[1].num[2] = NAN;
  st = sp_panel_build(f, "id", "year", &p, &err);
  check(st == SP_EMISSING && strstr(err.msg, "row 3") != NULL, "missing time named by row");
  f->cols[1].num[2] = INFINITY;
  st = sp_panel_build(f, "id", "year", &p, &err);
  check(st == SP_EVALUE && strstr(err.msg, "panel time 'year' is infinite in row 3") != NULL,
        "infinite time refused, by row");
  st = sp_panel_build(f, "id", "yaer", &p, &err);
  check(st == SP_ENOTFOUND && strstr(err.msg, "did you mean 'year'") != NULL, "unknown column suggests");
  sp_frame_free(f);

  /* Balanced, numeric entity, empty frame. */
  sp_frame *g = sp_frame_new(4, &err);
  const double id[4] = {2, 1, 2, 1}, yr[4] = {1, 1, 2, 2};
  sp_frame_add_numeric(g, "id", doubles(id, 4), &err);
  sp_frame_add_numeric(g, "t", doubles(yr, 4), &err);
  st = sp_panel_build(g, "id", "t", &p, &err);
  check(st == SP_OK && p->balanced && p->N == 2 && p->T == 2 && p->ngaps == 0, "balanced numeric panel");
  sp_panel_free(p);
  sp_frame_free(g);
  g = sp_frame_new(0, &err);
  sp_frame_add_numeric(g, "id", sp_mem_doubles(0), &err);
  sp_frame_add_numeric(g, "t", sp_mem_doubles(0), &err);
  st = sp_panel_build(g, "id", "t", &p, &err);
  check(st == SP_OK && p->N == 0 && p->T == 0, "empty frame");
  sp_panel_free(p);
  sp_frame_free(g);

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
