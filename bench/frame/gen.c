/*
** gen.c: the data of the frame-operations benchmark (bench/frame/compare.sh).
**   gen ROWS OUT.csv LOOKUP.csv
** OUT.csv has ROWS rows: id (integer, 1e5 levels in random order), g (a string
** factor of 400 levels, "g0".."lev199"), x (uniform double), y (normal-ish double).  LOOKUP.csv
** has one row per id (1..1e5, shuffled) with a double w, for the m:1 join.
** No missing values: data.table sorts NA first and spillover last, so a
** missing key would make the two results differ.  Fixed seed: every run
** compares the same file.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NID 100000
#define NG 200

static uint64_t state = 0x2545F4914F6CDD1DULL;

static uint64_t next(void) {  /* xorshift64* */
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545F4914F6CDD1DULL;
}

static double unif(void) { return (double)(next() >> 11) / 9007199254740992.0; }

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: gen ROWS OUT.csv LOOKUP.csv\n");
    return 2;
  }
  long rows = (long)strtod(argv[1], NULL);
  FILE *f = fopen(argv[2], "w"), *l = fopen(argv[3], "w");
  if (f == NULL || l == NULL) { perror("gen"); return 1; }
  fputs("id,g,x,y\n", f);
  for (long i = 0; i < rows; i++) {
    double y = unif() + unif() + unif() - 1.5;
    /* level names of different lengths, so that string order is not code order */
    fprintf(f, "%ld,%s%ld,%.17g,%.6f\n", (long)(next() % NID) + 1, (next() & 1) ? "lev" : "g",
            (long)(next() % NG), unif(), y);
  }
  state = 0x9E3779B97F4A7C15ULL;  /* the lookup table does not depend on ROWS */
  int *perm = malloc(NID * sizeof *perm);
  if (perm == NULL) return 1;
  for (int i = 0; i < NID; i++) perm[i] = i + 1;
  for (int i = NID - 1; i > 0; i--) {
    int j = (int)(next() % (uint64_t)(i + 1)), t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  fputs("id,w\n", l);
  for (int i = 0; i < NID; i++) fprintf(l, "%d,%.6f\n", perm[i], unif());
  free(perm);
  if (fclose(f) != 0 || fclose(l) != 0) { perror("gen"); return 1; }
  return 0;
}
