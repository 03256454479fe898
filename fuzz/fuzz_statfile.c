/*
** fuzz_statfile.c: reading Stata and SPSS files (sp.read's ReadStat path)
** must never crash and every failure must explain itself.
**
** The first input byte chooses the format (even: .dta, odd: .sav); the rest
** is the file, read from memory with sp_frame_read_stat_buffer, which goes
** through the same handlers and frame building as a file on disk.
*/
#include <stdint.h>
#include <stdlib.h>

#include "spillover/statfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const char *name = (data[0] & 1) ? "fuzz.sav" : "fuzz.dta";
  sp_frame *f = NULL;
  sp_error err;
  sp_error_clear(&err);
  int st = sp_frame_read_stat_buffer(data + 1, size - 1, name, &f, &err);
  if (st != SP_OK && (err.msg[0] == '\0' || f != NULL)) abort();
  if (st == SP_OK) {
    /* Touch every cell: a frame built from a damaged file must be whole. */
    volatile double sink = 0;
    for (size_t j = 0; j < f->ncol; j++)
      for (size_t r = 0; r < f->nrow; r++) {
        const sp_column *c = &f->cols[j];
        if (c->type == SP_NUMERIC) sink += c->num[r];
        else if (c->code[r] >= (int32_t)c->nlevels) abort();
        else if (c->code[r] >= 0 && c->levels[c->code[r]] == NULL) abort();
      }
    (void)sink;
  }
  sp_frame_free(f);
  return 0;
}
