/*
** fuzz_csv.c: the CSV reader must never crash, and whatever it accepts must
** survive a write and a second read.
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

#include "spillover/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
  if (sp_frame_read_csv_buffer((const char *)data, size, "fuzz.csv", &opt, &f, &err) != SP_OK) {
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
