/*
** error.c: filling and formatting sp_error records.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "spillover/error.h"

void sp_error_clear(sp_error *e) {
  if (e == NULL) return;
  memset(e, 0, sizeof *e);
}

int sp_error_set(sp_error *e, int code, const char *fmt, ...) {
  if (e == NULL) return code;
  va_list ap;
  e->code = code;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return code;
}

void sp_error_at(sp_error *e, const char *file, long line, long col) {
  if (e == NULL) return;
  if (file != NULL) snprintf(e->file, sizeof e->file, "%s", file);
  e->line = line;
  e->col = col;
}

void sp_error_var(sp_error *e, const char *var) {
  if (e == NULL || var == NULL) return;
  snprintf(e->var, sizeof e->var, "%s", var);
}

void sp_error_format(const sp_error *e, char *buf, size_t size) {
  size_t used = 0;
  if (size == 0) return;
  buf[0] = '\0';
  if (e->file[0] != '\0') {
    int w = snprintf(buf, size, "%s:", e->file);
    used = (w > 0 && (size_t)w < size) ? (size_t)w : size - 1;
  }
  if (e->line > 0 && used < size) {
    int w = (e->col > 0) ? snprintf(buf + used, size - used, "%ld:%ld:", e->line, e->col)
                         : snprintf(buf + used, size - used, "%ld:", e->line);
    used += (w > 0 && (size_t)w < size - used) ? (size_t)w : size - used - 1;
  }
  if (used < size)
    snprintf(buf + used, size - used, "%s%s", used > 0 ? " " : "", e->msg);
}

const char *sp_status_name(int code) {
  static const char *const names[] = {
    "ok", "out of memory", "i/o error", "parse error", "bad value",
    "dimension mismatch", "singular matrix", "too few degrees of freedom",
    "missing values", "not found", "duplicate", "no convergence"
  };
  if (code < 0 || (size_t)code >= sizeof names / sizeof names[0]) return "unknown error";
  return names[code];
}
