/*
** csv.h: reading and writing delimited text (RFC 4180) as sp_frame.
**
** Reading: the first record gives the column names (or V1..Vn without a
** header) and the number of fields every record must have.  Quoted fields may
** hold delimiters, doubled quotes and newlines; CRLF and LF both end a record;
** a UTF-8 byte-order mark is skipped; the final newline is optional and blank
** lines at the end of the file are ignored.
**
** Text is UTF-8: names and levels that are not valid UTF-8 are an error at
** the first invalid byte, unless the options name the file's encoding, in
** which case the whole input is converted to UTF-8 first (iconv).
**
** Type inference, per column: numeric when every non-missing field is a
** decimal number (strtod syntax without hex, "inf" or "nan"; spaces around
** the number are allowed), categorical otherwise.  Categorical levels are the
** field texts, byte for byte, in order of first appearance.  A field is
** missing when its text (after removing the quotes) equals one of the missing
** tokens.  Numbers are bit-identical to strtod's result.
**
** Errors carry file:line:column (1-based; lines are physical lines of the
** file, columns count UTF-8 characters) and say what was expected.
*/
#ifndef SPILLOVER_CSV_H
#define SPILLOVER_CSV_H

#include <stddef.h>
#include <stdio.h>

#include "spillover/error.h"
#include "spillover/frame.h"

typedef enum { SP_CSV_AUTO = 0, SP_CSV_NUMERIC, SP_CSV_CATEGORICAL } sp_csv_type;

typedef struct sp_csv_options {
  char delimiter;                  /* ',' by default; '"', '\r' and '\n' are refused */
  int header;                      /* 1: the first record names the columns */
  const char *const *missing;      /* missing tokens; NULL means the defaults */
  size_t nmissing;                 /* "", "NA", ".", "NaN" by default */
  const char *const *type_names;   /* columns whose type is forced ... */
  const sp_csv_type *types;        /* ... to these types */
  size_t ntypes;
  size_t max_rows;                 /* 0: no limit */
  const char *encoding;            /* NULL or "UTF-8": the text must be UTF-8;
                                      else an iconv name ("GB18030", "latin1") */
  size_t window;                   /* bytes a file is read in at a time (grown for a
                                      longer record); 0: 64 KiB; at most 1 GiB.  Tests
                                      set it small to put every record on a window's edge */
} sp_csv_options;

/* Defaults: ',', header, the default missing tokens, no forced types. The
   options struct only borrows its arrays; they must outlive the read call. */
void sp_csv_options_init(sp_csv_options *opt);

/* Read a CSV file into a new frame (*out, owned by the caller, freed with
   sp_frame_free).  opt may be NULL for the defaults.  On failure *out is NULL. */
int sp_frame_read_csv(const char *path, const sp_csv_options *opt, sp_frame **out, sp_error *err);

/* The same from a memory buffer of len bytes (need not be NUL-terminated);
   name is used as the file name in error messages. */
int sp_frame_read_csv_buffer(const char *buf, size_t len, const char *name,
                             const sp_csv_options *opt, sp_frame **out, sp_error *err);

typedef enum {
  SP_CSV_QUOTE_MINIMAL = 0,  /* quote a text only when reading it back needs it */
  SP_CSV_QUOTE_ALL,          /* quote every name and text value (not numbers, not missing) */
  SP_CSV_QUOTE_NONE          /* never quote; a text that would need it is SP_EVALUE */
} sp_csv_quote;

typedef struct sp_csv_write_options {
  char delimiter;     /* ',' by default; '"', '\r', '\n' and NUL are refused */
  const char *na;     /* written for missing values; "" by default */
  sp_csv_quote quote;
  int bom;            /* 1: start with a UTF-8 byte-order mark (for Excel) */
} sp_csv_write_options;

void sp_csv_write_options_init(sp_csv_write_options *opt);

/* Write f as CSV with a header.  Minimal quoting quotes a field that holds
   the delimiter, a quote, CR or LF, starts or ends with a space, starts with
   a byte-order mark, or equals a default missing token or opt->na; quotes
   inside are doubled.  Numbers in the shortest of %.15g/%.16g/%.17g that
   reads back identically; missing values as opt->na; infinities as Inf/-Inf.
   opt may be NULL for the defaults.  The file is written to a temporary in
   the same directory and renamed into place, so a failure (a full disk, a
   value that cannot be written unquoted) leaves the destination untouched. */
int sp_frame_write_csv(const sp_frame *f, const char *path, const sp_csv_write_options *opt,
                       sp_error *err);

/* Write to an open stream (no temporary, no rename); name is for messages. */
int sp_frame_write_csv_stream(const sp_frame *f, FILE *fp, const char *name,
                              const sp_csv_write_options *opt, sp_error *err);

/* Parse one decimal number exactly as strtod would, from s[0..len) which must
   be entirely a number (surrounding spaces allowed).  Returns 1 and sets *out,
   or 0 when the text is not a plain decimal number. */
int sp_csv_parse_double(const char *s, size_t len, double *out);

#endif
