/*
** fuzz_csv.c: the CSV reader must never crash, whatever it accepts must
** survive a write and a second read, and a file read a window at a time
** (windows of 1-16 bytes here, so that records straddle them) must give what
** the same bytes give read whole: the same error, or a frame that writes the
** same text.
**
** The first input byte chooses the options (delimiter, header, max_rows, a
** forced type, a GB18030 conversion, and the writer's quote-all/BOM/"NA"
** options); the rest is the file.
*/
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "spillover/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* f written with the default options, in a malloc'd text (NULL on failure). */
static char *written(const sp_frame *f, size_t *len) {
  char *text = NULL;
  FILE *fp = open_memstream(&text, len);
  if (fp == NULL) return NULL;
  sp_error err;
  sp_error_clear(&err);
  int st = sp_frame_write_csv_stream(f, fp, "fuzz-out.csv", NULL, &err);
  fclose(fp);
  if (st != SP_OK) { free(text); return NULL; }
  return text;
}

/* The same bytes as a file (a memfd), read in windows of `window` bytes. */
static void windowed(const uint8_t *data, size_t size, sp_csv_options opt, size_t window, int st0,
                     const sp_frame *f0, const sp_error *e0) {
  int fd = memfd_create("fuzz.csv", 0);
  if (fd < 0) return;
  if (size > 0 && write(fd, data, size) != (ssize_t)size) { close(fd); return; }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  opt.window = window;
  sp_frame *f = NULL;
  sp_error err;
  sp_error_clear(&err);
  int st = sp_frame_read_csv(path, &opt, &f, &err);
  close(fd);
  if (size == 0) {  /* a file of no size is read whole: nothing to compare but a failure */
    sp_frame_free(f);
    return;
  }
  if (st != st0) abort();
  if (st != SP_OK) {
    if (err.line != e0->line || err.col != e0->col || strcmp(err.msg, e0->msg) != 0) abort();
    return;
  }
  size_t n0 = 0, n1 = 0;
  char *t0 = written(f0, &n0), *t1 = written(f, &n1);
  if ((t0 == NULL) != (t1 == NULL) || n0 != n1 || (t0 != NULL && memcmp(t0, t1, n0) != 0)) abort();
  free(t0);
  free(t1);
  sp_frame_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char delims[4] = {',', ';', '\t', '|'};
  const char *names[1] = {"a"};
  sp_csv_type types[1] = {SP_CSV_NUMERIC};
  sp_csv_options opt;
  sp_csv_options_init(&opt);
  sp_csv_write_options wopt;
  sp_csv_write_options_init(&wopt);
  if (size > 0) {
    uint8_t b = data[0];
    data++;
    size--;
    opt.delimiter = delims[b & 3];
    opt.header = !(b & 4);
    if (b & 8) opt.max_rows = 3;
    if (b & 16) {
      types[0] = (b & 32) ? SP_CSV_CATEGORICAL : SP_CSV_NUMERIC;
      opt.type_names = names;
      opt.types = types;
      opt.ntypes = 1;
    }
    if (b & 64) opt.encoding = "GB18030";
    if (b & 128) {
      wopt.quote = SP_CSV_QUOTE_ALL;
      wopt.bom = 1;
      wopt.na = "NA";
    }
  }
  sp_frame *f = NULL;
  sp_error err;
  sp_error_clear(&err);
  int st0 = sp_frame_read_csv_buffer((const char *)data, size, "fuzz.csv", &opt, &f, &err);
  windowed(data, size, opt, 1 + size % 16, st0, f, &err);
  if (st0 != SP_OK) {
    if (err.msg[0] == '\0' || f != NULL) abort();  /* every failure must explain itself */
    return 0;
  }
  char *text = NULL;
  size_t len = 0;
  FILE *fp = open_memstream(&text, &len);
  if (fp == NULL) { sp_frame_free(f); return 0; }
  int st = sp_frame_write_csv_stream(f, fp, "fuzz-out.csv", &wopt, &err);
  fclose(fp);
  if (st == SP_OK) {
    sp_frame *g = NULL;
    sp_error_clear(&err);
    /* What we write, we must read back with the same columns. */
    if (sp_frame_read_csv_buffer(text, len, "fuzz-out.csv", NULL, &g, &err) != SP_OK) {
      fprintf(stderr, "re-read failed: %s (line %ld col %ld)\n", err.msg, err.line, err.col);
      abort();
    }
    if (g->ncol != f->ncol) abort();
    sp_frame_free(g);
  }
  free(text);
  sp_frame_free(f);
  return 0;
}
