/*
** fuzz_formula.c: libFuzzer target for the formula parser.
**
** Any input must either parse or fail with a positioned error; nothing may
** crash, leak or read out of bounds.  A parsed formula is also walked (the
** variable list and every label) so half-built nodes would show up.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/formula.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const sp_fnode *n) {
  size_t len = strlen(n->label);
  for (size_t i = 0; i < n->nkids; i++) len += walk(n->kids[i]);
  return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = '\0';  /* the parser takes a C string: stop at the first NUL */
  sp_formula *fm = NULL;
  sp_error err;
  sp_error_clear(&err);
  if (sp_formula_parse(text, &fm, &err) == SP_OK) {
    size_t n, total = walk(fm->lhs);
    const char *const *v = sp_formula_vars(fm, &n);
    for (size_t i = 0; i < n; i++) total += strlen(v[i]);
    sp_fnode **lists[] = {fm->rhs, fm->fe, fm->endog, fm->inst};
    size_t counts[] = {fm->nrhs, fm->nfe, fm->nendog, fm->ninst};
    for (size_t l = 0; l < 4; l++)
      for (size_t i = 0; i < counts[l]; i++) total += walk(lists[l][i]);
    if (total == (size_t)-1) abort();  /* keeps the walk from being optimised away */
    sp_formula_free(fm);
  } else if (err.code == SP_EPARSE && (err.line < 1 || err.col < 1)) {
    abort();  /* every parse error must say where */
  }
  free(text);
  return 0;
}
