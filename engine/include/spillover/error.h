/*
** error.h: the status codes and error record of the spillover core.
**
** Every fallible core function returns an int status (SP_OK on success) and,
** on failure, fills the caller's sp_error with a message and whatever context
** it knows (file, line, column, variable).  The core never prints, exits or
** aborts; the caller decides how to report.
*/
#ifndef SPILLOVER_ERROR_H
#define SPILLOVER_ERROR_H

#include <stddef.h>

typedef enum {
  SP_OK = 0,
  SP_ENOMEM,     /* allocation failed */
  SP_EIO,        /* cannot open, read or write a file */
  SP_EPARSE,     /* malformed input text (CSV, formula, YAML) */
  SP_EVALUE,     /* a value of the wrong kind or outside its domain */
  SP_EDIM,       /* non-conformable dimensions */
  SP_ESINGULAR,  /* singular or not positive definite matrix */
  SP_EDF,        /* too few observations or degrees of freedom */
  SP_EMISSING,   /* missing values where none are allowed */
  SP_ENOTFOUND,  /* unknown column, level or key */
  SP_EDUP,       /* duplicate key, name or panel cell */
  SP_ECONV       /* an iterative method did not converge */
} sp_status;

typedef struct sp_error {
  int code;          /* an sp_status; SP_OK when nothing failed */
  char msg[768];
  char file[256];    /* empty when not tied to a file */
  long line, col;    /* 1-based; 0 when unknown */
  char var[128];     /* the variable or column concerned, if any */
} sp_error;

void sp_error_clear(sp_error *e);

/* Set code and a printf-style message; returns code so callers can write
   `return sp_error_set(err, SP_EVALUE, "...")`.  A NULL err is allowed. */
int sp_error_set(sp_error *e, int code, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 3, 4)))
#endif
  ;

/* Attach a source position (any of file/line/col may be NULL/0). */
void sp_error_at(sp_error *e, const char *file, long line, long col);

/* Attach the variable a failure concerns. */
void sp_error_var(sp_error *e, const char *var);

/* "file:line:col: message" (the parts that are known), into buf. */
void sp_error_format(const sp_error *e, char *buf, size_t size);

const char *sp_status_name(int code);

#endif
