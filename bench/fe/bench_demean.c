/*
** bench_demean.c: times sp_demean_run on (y, x1, x2) of a generated panel.
**
**   bench_demean bench/data/panel_<N>.bin [drop]
**   bench_demean --stream <N>     the one-sweep bandwidth bound for N rows (compare.sh)
**   bench_demean --setup panel_<N>.bin [reps]   the set-up of a two-way fit, 1 and 2 threads
**
** drop (default 0): fraction of rows removed at random (fixed seed) to make
** the panel unbalanced, so that two factors need real iterations.
** For 2 factors (id, time) and 3 (id, time, k), 1 and 2 threads, prints the
** setup time (sp_demean_new), the cold time (a fresh buffer:
** first touch included) and the warm time (best of 5, buffer reused), the
** sweeps made, the bytes those passes move, and the ratio of the warm time to
** that traffic at the measured bandwidth (a STREAM-like a += s b over two
** 200 MB arrays, warmed, best of 5).  Not a test.
**
** --setup: what sp.ols does before its first sweep for "y ~ x1 + x2 | id +
** time" clustered by id, on a frame of id, time (as numbers), y, x1, x2:
** sp_design_plan (mask, coding id and time, the cluster extra) and
** sp_design_fill (y and X side by side in one n x 3 block) at 1 and 2
** threads, then sp_fe_dof, sp_demean_new and sp_fe_nested (one thread).
** reps rounds (default 5), the thread counts alternating within a round; wall
** and process CPU seconds, min / median / max.
*/
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spillover/demean.h"
#include "spillover/design.h"
#include "spillover/formula.h"
#include "spillover/frame.h"
#include "spillover/mem.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double bandwidth(void) {
  size_t m = 200u * 1000u * 1000u / 8u;
  double *a = sp_mem_doubles(m), *b = sp_mem_doubles(m);
  if (!a || !b) return 0.0;
  for (size_t i = 0; i < m; i++) { a[i] = 1.0; b[i] = 2.0; }
  double best = 1e30;
  for (int rep = 0; rep < 5; rep++) {
    double t0 = now();
    for (size_t i = 0; i < m; i++) a[i] += 0.5 * b[i];
    double t = now() - t0;
    if (t < best) best = t;
  }
  volatile double sink = a[m / 2];
  (void)sink;
  sp_mem_free(a);
  sp_mem_free(b);
  return 3.0 * (double)m * 8.0 / best;  /* read a, read b, write a */
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* "min / median / max" of v[0..m) (sorts v). */
static void spread(double *v, int m, char *out, size_t size) {
  qsort(v, (size_t)m, sizeof *v, cmp_d);
  snprintf(out, size, "%.4f / %.4f / %.4f", v[0], v[m / 2], v[m - 1]);
}

enum { PH_PLAN, PH_FILL, PH_DOF, PH_WS, PH_NESTED, NPH };
static const char *const phase_name[NPH] = {"design plan", "design fill", "sp_fe_dof", "sp_demean_new", "sp_fe_nested"};

/* One set-up at the given threads; wall[ph] and cpu[ph] receive the times. */
static int setup_once(const sp_frame *fr, const sp_formula *fm, int threads, double *wall, double *cpu) {
  sp_error err;
  sp_error_clear(&err);
  sp_design_options opt;
  sp_design_options_init(&opt);
  const char *extra[] = {"id"};
  opt.extra = extra;
  opt.nextra = 1;
  opt.threads = threads;
  sp_design *d = NULL;
  double t0 = now(), c0 = cpu_now();
  if (sp_design_plan(fr, fm, &opt, &d, &err) != SP_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
  wall[PH_PLAN] = now() - t0;
  cpu[PH_PLAN] = cpu_now() - c0;
  size_t n = d->n;
  /* y and X as side-by-side views of one fresh n x 3 block, as the bindings
     allocate it (page faults included, as in a fit). */
  double *block = sp_mem_doubles(3 * n);
  gsl_matrix y = {n, 1, 3, block, NULL, 0}, X = {n, 2, 3, block + 1, NULL, 0};
  t0 = now();
  c0 = cpu_now();
  if (sp_design_fill(d, &y, &X, NULL, NULL, &err) != SP_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
  wall[PH_FILL] = now() - t0;
  cpu[PH_FILL] = cpu_now() - c0;
  const int32_t *codes[2] = {d->fe[0].code, d->fe[1].code};
  size_t L[2] = {d->fe[0].nlevels, d->fe[1].nlevels}, dof = 0;
  t0 = now();
  c0 = cpu_now();
  int st = sp_fe_dof(n, 2, codes, L, NULL, &dof, NULL, &err);
  wall[PH_DOF] = now() - t0;
  cpu[PH_DOF] = cpu_now() - c0;
  t0 = now();
  c0 = cpu_now();
  sp_demean_ws *ws = sp_demean_new(n, 2, codes, L, NULL, 1, &err);
  wall[PH_WS] = now() - t0;
  cpu[PH_WS] = cpu_now() - c0;
  int nested = 0;
  t0 = now();
  c0 = cpu_now();
  for (int j = 0; j < 2 && st == SP_OK; j++)
    st = sp_fe_nested(n, codes[j], L[j], d->extra[0].code, d->extra[0].nlevels, NULL, &nested, &err);
  wall[PH_NESTED] = now() - t0;
  cpu[PH_NESTED] = cpu_now() - c0;
  if (st != SP_OK || ws == NULL) { fprintf(stderr, "%s\n", err.msg); return 1; }
  sp_demean_free(ws);
  sp_mem_free(block);
  sp_design_free(d);
  return 0;
}

static int setup_bench(size_t n, int32_t *const *code, double *const *col, int reps) {
  sp_error err;
  sp_error_clear(&err);
  sp_frame *fr = sp_frame_new(n, &err);
  static const char *const names[5] = {"id", "time", "y", "x1", "x2"};
  for (int j = 0; j < 5; j++) {
    double *v = sp_mem_doubles(n);
    if (v == NULL) { fprintf(stderr, "out of memory\n"); return 1; }
    for (size_t r = 0; r < n; r++) v[r] = j < 2 ? (double)code[j][r] + 1 : col[j - 2][r];
    sp_frame_add_numeric(fr, names[j], v, NULL);
  }
  sp_formula *fm = NULL;
  if (sp_formula_parse("y ~ x1 + x2 | id + time", &fm, &err) != SP_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
  double *wall[2][NPH], *cpu[2][NPH];
  for (int t = 0; t < 2; t++)
    for (int ph = 0; ph < NPH; ph++) {
      wall[t][ph] = malloc((size_t)reps * sizeof(double));
      cpu[t][ph] = malloc((size_t)reps * sizeof(double));
    }
  double w[NPH], c[NPH];
  if (setup_once(fr, fm, 1, w, c) != 0) return 1;  /* warm-up: page the frame in */
  for (int rep = 0; rep < reps; rep++)
    for (int t = 0; t < 2; t++) {
      int th = (rep % 2 == 0) ? t + 1 : 2 - t;  /* alternate which thread count goes first */
      if (setup_once(fr, fm, th, w, c) != 0) return 1;
      for (int ph = 0; ph < NPH; ph++) {
        wall[th - 1][ph][rep] = w[ph];
        cpu[th - 1][ph][rep] = c[ph];
      }
    }
  printf("set-up of y ~ x1 + x2 | id + time, cluster id: %zu rows, %d rounds; seconds min / median / max\n", n, reps);
  printf("%-14s %-4s %-26s %-26s\n", "phase", "thr", "wall", "cpu (process)");
  for (int ph = 0; ph < NPH; ph++)
    for (int t = 0; t < (ph <= PH_FILL ? 2 : 1); t++) {
      char a[64], b[64];
      spread(wall[t][ph], reps, a, sizeof a);
      spread(cpu[t][ph], reps, b, sizeof b);
      printf("%-14s %-4d %-26s %-26s\n", phase_name[ph], t + 1, a, b);
    }
  sp_formula_free(fm);
  sp_frame_free(fr);
  return 0;
}

static uint64_t s = 7;
static double urand(void) {
  s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
  return (double)((s * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--stream") == 0) {
    /* The bound compare.sh divides by: one residual-space sweep over y, x1,
       x2 with two factors moves 56 bytes per row (codes read, data read and
       written), at the bandwidth measured now. */
    double n = atof(argv[2]), bw = bandwidth();
    printf("stream bandwidth_GBs=%.2f one_sweep_bound_s=%.5f rows=%.0f\n", bw / 1e9, 56.0 * n / bw, n);
    return 0;
  }
  int setup = argc >= 3 && strcmp(argv[1], "--setup") == 0;
  if (argc < 2 || (argc == 2 && strcmp(argv[1], "--setup") == 0)) {
    fprintf(stderr, "usage: bench_demean panel.bin [drop] | bench_demean --setup panel.bin [reps]\n");
    return 2;
  }
  const char *path = argv[setup ? 2 : 1];
  double drop = !setup && argc > 2 ? atof(argv[2]) : 0.0;
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); return 1; }
  char magic[8];
  uint64_t hdr[4];
  if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "SPFE0001", 8) != 0 || fread(hdr, 8, 4, f) != 4) {
    fprintf(stderr, "%s: not a gen_panel file\n", path);
    return 1;
  }
  size_t n = hdr[0];
  int32_t *code[3];
  double *col[3];
  for (int k = 0; k < 3; k++) code[k] = sp_mem_alloc(n * 4);
  for (int j = 0; j < 3; j++) col[j] = sp_mem_doubles(n);
  for (int k = 0; k < 3; k++)
    if (!code[k] || fread(code[k], 4, n, f) != n) { fprintf(stderr, "short read\n"); return 1; }
  for (int j = 0; j < 3; j++)
    if (!col[j] || fread(col[j], 8, n, f) != n) { fprintf(stderr, "short read\n"); return 1; }
  fclose(f);
  size_t L[3] = {hdr[1], hdr[2], hdr[3]};
  if (setup) return setup_bench(n, code, col, argc > 3 ? atoi(argv[3]) : 5);
  if (drop > 0.0) {  /* compact in place */
    size_t o = 0;
    for (size_t r = 0; r < n; r++) {
      if (urand() < drop) continue;
      for (int k = 0; k < 3; k++) code[k][o] = code[k][r];
      for (int j = 0; j < 3; j++) col[j][o] = col[j][r];
      o++;
    }
    n = o;
  }
  /* Row-major block y, x1, x2 (as the regression code hands it over). */
  double *src = sp_mem_doubles(3 * n), *work = sp_mem_doubles(3 * n);
  if (!src || !work) { fprintf(stderr, "out of memory\n"); return 1; }
  for (size_t r = 0; r < n; r++)
    for (int j = 0; j < 3; j++) src[3 * r + j] = col[j][r];
  memcpy(work, src, 3 * n * 8);  /* first touch of work, outside the timings */
  double bw = bandwidth();
  printf("rows %zu (%zu entities x %zu periods, k %zu levels, %.0f%% rows dropped)\n", n, L[0], L[1], L[2],
         100.0 * drop);
  printf("measured bandwidth (a += s b, 2 x 200 MB, best of 5): %.1f GB/s\n", bw / 1e9);
  printf("%-4s %-3s %9s %9s %9s %6s %7s %10s %9s %7s\n", "fe", "thr", "setup_s", "cold_s", "warm_s", "iter",
         "passes", "MB_moved", "bound_s", "ratio");
  sp_error err;
  for (size_t nfe = 2; nfe <= 3; nfe++) {
    double t0 = now();
    sp_demean_ws *ws = sp_demean_new(n, nfe, (const int32_t *const *)code, L, NULL, 1, &err);
    double setup = now() - t0;
    if (!ws) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (int thr = 1; thr <= 2; thr++) {
      sp_demean_options opt;
      sp_demean_options_init(&opt);
      opt.threads = thr;
      sp_demean_info info;
      /* cold: a fresh buffer, first touch and copy included */
      t0 = now();
      double *fresh = sp_mem_doubles(3 * n);
      memcpy(fresh, src, 3 * n * 8);
      int st = sp_demean_run(ws, fresh, n, 3, 3, &opt, &info, &err);
      double cold = now() - t0;
      sp_mem_free(fresh);
      double warm = 1e30;
      for (int rep = 0; rep < 5; rep++) {
        memcpy(work, src, 3 * n * 8);
        t0 = now();
        st |= sp_demean_run(ws, work, n, 3, 3, &opt, &info, &err);
        double t = now() - t0;
        if (t < warm) warm = t;
      }
      if (st != 0) fprintf(stderr, "status %d: %s\n", st, err.msg);
      /* Traffic of the passes made: group sums (data + codes), the sweeps
         (codes of factors 1..K-1 per pass), residuals (codes + data r/w). */
      double K = (double)nfe, nn = (double)n;
      double bytes = nn * (24 + 4 * K) + (double)info.sweeps * nn * 4 * (K - 1) + nn * (48 + 4 * K);
      double bound = bytes / bw;
      printf("%-4zu %-3d %9.4f %9.4f %9.4f %6zu %7zu %10.1f %9.4f %7.2f\n", nfe, thr, setup, cold, warm,
             info.iter, info.sweeps, bytes / 1e6, bound, warm / bound);
    }
    sp_demean_free(ws);
  }
  printf("(one residual-space sweep over 3 columns moves %.0f MB for 2 factors: %.4f s at this bandwidth)\n",
         56.0 * (double)n / 1e6, 56.0 * (double)n / bw);
  for (int k = 0; k < 3; k++) sp_mem_free(code[k]);
  for (int j = 0; j < 3; j++) sp_mem_free(col[j]);
  sp_mem_free(src);
  sp_mem_free(work);
  return 0;
}
