/*
** gen_panel.c: synthetic panels for the fixed-effects benchmarks.
**
**   gen_panel N [outdir]     N rows = N/100 entities x 100 periods (balanced)
**
** y = 0.5 x1 - 0.3 x2 + a_i + g_t + k_c + e, with x1 correlated with a_i, x2
** with g_t, k_c a third factor of 1000 levels drawn at random per row (use it
** or not), e ~ N(0, 1).  Seed fixed (42), so every run writes the same data.
** Writes <outdir>/panel_<N>.bin (header + column arrays, see below) and
** <outdir>/panel_<N>.csv (id,time,k,y,x1,x2) for R and pandas.
**
** .bin layout (little endian): "SPFE0001", uint64 n, uint64 entities,
** uint64 periods, uint64 klevels, then int32 id[n], int32 time[n], int32 k[n],
** double y[n], double x1[n], double x2[n].
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s = 42;
static double urand(void) {
  s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
  return ((double)((s * 2685821657736338717ULL) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static double nrand(void) {
  return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand());
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: gen_panel N [outdir]\n");
    return 2;
  }
  uint64_t n = (uint64_t)atof(argv[1]);
  const char *dir = argc > 2 ? argv[2] : "bench/data";
  uint64_t T = 100, NI = n / T, KL = 1000;
  n = NI * T;
  int32_t *id = malloc(n * 4), *tm = malloc(n * 4), *kk = malloc(n * 4);
  double *y = malloc(n * 8), *x1 = malloc(n * 8), *x2 = malloc(n * 8);
  double *a = malloc(NI * 8), g[100], kc[1000];
  if (!id || !tm || !kk || !y || !x1 || !x2 || !a) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  for (uint64_t i = 0; i < NI; i++) a[i] = nrand();
  for (uint64_t t = 0; t < T; t++) g[t] = 0.5 * nrand();
  for (uint64_t c = 0; c < KL; c++) kc[c] = 0.3 * nrand();
  for (uint64_t i = 0, r = 0; i < NI; i++)
    for (uint64_t t = 0; t < T; t++, r++) {
      id[r] = (int32_t)i;
      tm[r] = (int32_t)t;
      kk[r] = (int32_t)(urand() * KL);
      x1[r] = 0.5 * a[i] + nrand();
      x2[r] = 0.3 * g[t] + nrand();
      y[r] = 0.5 * x1[r] - 0.3 * x2[r] + a[i] + g[t] + kc[kk[r]] + nrand();
    }
  char path[1024];
  snprintf(path, sizeof path, "%s/panel_%llu.bin", dir, (unsigned long long)n);
  FILE *f = fopen(path, "wb");
  if (!f) { perror(path); return 1; }
  uint64_t hdr[4] = {n, NI, T, KL};
  fwrite("SPFE0001", 1, 8, f);
  fwrite(hdr, 8, 4, f);
  fwrite(id, 4, n, f); fwrite(tm, 4, n, f); fwrite(kk, 4, n, f);
  fwrite(y, 8, n, f); fwrite(x1, 8, n, f); fwrite(x2, 8, n, f);
  if (fclose(f) != 0) { perror(path); return 1; }
  snprintf(path, sizeof path, "%s/panel_%llu.csv", dir, (unsigned long long)n);
  f = fopen(path, "w");
  if (!f) { perror(path); return 1; }
  fprintf(f, "id,time,k,y,x1,x2\n");
  for (uint64_t r = 0; r < n; r++)
    fprintf(f, "%d,%d,%d,%.10g,%.10g,%.10g\n", id[r], tm[r], kk[r], y[r], x1[r], x2[r]);
  if (fclose(f) != 0) { perror(path); return 1; }
  printf("wrote %s/panel_%llu.{bin,csv}: %llu rows, %llu entities x %llu periods, k: %llu levels\n",
         dir, (unsigned long long)n, (unsigned long long)n, (unsigned long long)NI,
         (unsigned long long)T, (unsigned long long)KL);
  free(id); free(tm); free(kk); free(y); free(x1); free(x2); free(a);
  return 0;
}
