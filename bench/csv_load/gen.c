/*
** gen.c: a reproducible numeric CSV for the load benchmark.
**   gen ROWS OUT.csv
** Five columns (id, an integer-like count, two decimals, a small-magnitude
** value with a negative exponent range); about 37 bytes per row, so 1e7 rows
** is about 375 MB.  Fixed seed (splitmix64): the same file every time.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t state = 20261128;

static uint64_t next(void) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static double unif(void) { return (double)(next() >> 11) * 0x1.0p-53; }

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: gen ROWS OUT.csv\n"); return 2; }
  long n = atol(argv[1]);
  FILE *fp = fopen(argv[2], "w");
  if (fp == NULL) { perror(argv[2]); return 1; }
  static char buf[1 << 20];
  setvbuf(fp, buf, _IOFBF, sizeof buf);
  fputs("id,count,x1,x2,share\n", fp);
  for (long i = 1; i <= n; i++)
    fprintf(fp, "%ld,%d,%.4f,%.3f,%.5f\n", i, (int)(next() % 100000), 100 * unif(),
            200 * unif() - 100, unif());
  if (fclose(fp) != 0) { perror(argv[2]); return 1; }
  return 0;
}
