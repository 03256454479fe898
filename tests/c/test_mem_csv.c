/*
** test_mem_csv.c: the memory a CSV load keeps resident (csv.c, mem.c).
**
** sp_frame_read_csv reads a file a window at a time into one reused buffer,
** so the peak of a load is the parsed columns plus a window, not the whole
** file beside them.  A column that turns categorical late is filled by a
** second pass that reads the file again: its earlier rows must still be
** right.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spillover/csv.h"
#include "spillover/frame.h"

static int npass, nfail;

static void check(int ok, const char *what, const char *detail) {
  printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
  if (ok) npass++; else nfail++;
}

/* Peak resident set of this process so far, in bytes (VmHWM), or 0. */
static size_t peak_rss(void) {
  FILE *fp = fopen("/proc/self/status", "r");
  if (fp == NULL) return 0;
  char line[256];
  size_t kb = 0;
  while (fgets(line, sizeof line, fp))
    if (sscanf(line, "VmHWM: %zu kB", &kb) == 1) break;
  fclose(fp);
  return kb * 1024;
}

#define TEXT "txxxxxxxxxxxxxxxxxxxxxx"  /* 23 characters, as the numbers */

/* Row r's value of column j, exactly representable; written as the integer
   r * 3 + j in 19 digits (zero-padded) and ".125": 23 characters, and
   printf formats integers much faster than doubles. */
static double value(size_t r, size_t j) { return (double)(r * 3 + j) + 0.125; }

/* Write rows x 3 columns; column a holds TEXT from row text_from on. */
static int write_csv(const char *path, size_t rows, size_t text_from, size_t *bytes) {
  FILE *fp = fopen(path, "w");
  if (fp == NULL) return 0;
  long n = fprintf(fp, "a,b,c\n");
  for (size_t r = 0; r < rows && n > 0; r++) {
    if (r >= text_from) n += fprintf(fp, "%s,", TEXT);
    else n += fprintf(fp, "%019zu.125,", r * 3);  /* value(r, 0) */
    n += fprintf(fp, "%019zu.125,%019zu.125\n", r * 3 + 1, r * 3 + 2);
  }
  *bytes = n > 0 ? (size_t)n : 0;
  return fclose(fp) == 0 && n > 0;
}

int main(void) {
  char path[] = "/tmp/spillover_test_mem_csv_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) { check(0, "temporary file", NULL); return 1; }
  close(fd);

  /* 2e6 rows x 72 bytes: a 144 MB file, 48 MB of columns. */
  size_t rows = 2000000;
  size_t bytes = 0;
  check(write_csv(path, rows, rows, &bytes), "numeric file written", NULL);
  sp_frame *f = NULL;
  sp_error err;
  sp_error_clear(&err);
  size_t base = peak_rss();
  int st = sp_frame_read_csv(path, NULL, &f, &err);
  size_t peak = peak_rss();
  check(st == SP_OK && f != NULL && f->nrow == rows && f->ncol == 3, "numeric file read", err.msg);
  if (st == SP_OK) {
    int ok = 1;
    for (size_t r = 0; r < rows && ok; r += 99991)
      for (size_t j = 0; j < 3; j++) ok &= f->cols[j].num[r] == value(r, j);
    ok &= f->cols[2].num[rows - 1] == value(rows - 1, 2);
    check(ok, "numeric file: values", NULL);
    /* Columns 48 MB; the whole file beside them would be 192 MB or more.  The
       load adds the columns, a window (64 KiB) and small change to the
       process's peak before it: 2 MB, 9 MB under ASan (its quarantine and
       redzones). */
    size_t cols = rows * 3 * sizeof(double);
    char detail[120];
    snprintf(detail, sizeof detail, "peak %zu MB (before the load %zu MB), columns %zu MB, file %zu MB", peak >> 20,
             base >> 20, cols >> 20, bytes >> 20);
    check(peak == 0 || peak < base + cols + ((size_t)16 << 20), "load peak: columns plus a window of the file", detail);
  }
  sp_frame_free(f);

  /* Column a turns categorical at row 5e5, 36 MB into a 43 MB file: the
     second pass reads 36 MB again. */
  rows = 600000;
  const size_t flip = 500000;
  check(write_csv(path, rows, flip, &bytes), "late-text file written", NULL);
  f = NULL;
  sp_error_clear(&err);
  st = sp_frame_read_csv(path, NULL, &f, &err);
  check(st == SP_OK && f != NULL && f->nrow == rows, "late-text file read", err.msg);
  if (st == SP_OK) {
    const sp_column *a = &f->cols[0];
    char want[64];
    int ok = a->type == SP_CATEGORICAL;
    for (size_t r = 0; r < rows && ok; r += 77777) {
      if (r >= flip) snprintf(want, sizeof want, "%s", TEXT);
      else snprintf(want, sizeof want, "%019zu.125", r * 3);
      ok = a->code[r] >= 0 && strcmp(a->levels[a->code[r]], want) == 0;
      if (!ok) printf("  row %zu: '%s', want '%s'\n", r, a->code[r] >= 0 ? a->levels[a->code[r]] : "NA", want);
    }
    ok &= f->cols[1].num[0] == value(0, 1) && f->cols[2].num[rows - 1] == value(rows - 1, 2);
    check(ok, "late-text file: the rows before the column turned categorical, re-read", NULL);
  }
  sp_frame_free(f);
  remove(path);
  printf("%d passed, %d failed\n", npass, nfail);
  return nfail != 0;
}
