/*
** csv.c: the CSV reader and writer (see csv.h).
**
** Reading sees whole lines of the input, a window at a time, padded so that
** the window's last byte is always '\n' (a sentinel that stops every
** unquoted scan without a bounds test): a file is read in windows of one
** reused buffer, a buffer given whole is one window.  Rows are bounded above
** by the number of newlines, counted first, so every column buffer is
** allocated once at its final capacity: no realloc copies of huge buffers
** (first touch of fresh memory is slow, see PERFORMANCE.md).
**
** Every column starts numeric (unless forced).  When a column meets its first
** non-numeric, non-missing field it turns categorical from that row on; the
** earlier rows of all such columns are filled in by one second pass over the
** text at the end, and the levels are then renumbered into order of first
** appearance.  So the text is parsed at most twice, whatever the data.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spillover/csv.h"
#include "spillover/strdict.h"
#include "spillover/file.h"
#include "spillover/mem.h"

static const char *const default_missing[] = {"", "NA", ".", "NaN"};

void sp_csv_options_init(sp_csv_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->delimiter = ',';
  opt->header = 1;
  opt->missing = default_missing;
  opt->nmissing = sizeof default_missing / sizeof default_missing[0];
}

/* ---- numbers ------------------------------------------------------------------- */

static const double pow10_exact[23] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* strtod on a copy of [s, e), for the cases the fast path cannot do exactly. */
static double slow_strtod(const char *s, const char *e) {
  char small[128];
  size_t n = (size_t)(e - s);
  char *b = n < sizeof small ? small : malloc(n + 1);
  if (b == NULL) return NAN;  /* only for absurdly long digit strings */
  memcpy(b, s, n);
  b[n] = '\0';
  double v = strtod(b, NULL);
  if (b != small) free(b);
  return v;
}

/* Clinger's fast path: with at most 2^53 as mantissa and |exponent| <= 22,
   both operands are exact doubles and one IEEE multiply or divide rounds
   correctly, so the result equals strtod's.  Anything else goes to strtod. */
int sp_csv_parse_double(const char *s, size_t len, double *out) {
  const char *p = s, *e = s + len;
  while (p < e && (*p == ' ' || *p == '\t')) p++;
  while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
  if (p == e) return 0;
  const char *start = p;
  int neg = 0, slow = 0, ndig = 0, sig = 0;
  uint64_t m = 0;
  long exp10 = 0;
  if (*p == '+' || *p == '-') { neg = (*p == '-'); p++; }
  while (p < e && (unsigned)(*p - '0') < 10) {
    unsigned d = (unsigned)(*p - '0');
    if (m != 0 || d != 0) {
      if (sig < 19) { m = m * 10 + d; sig++; }
      else { slow = 1; exp10++; }
    }
    ndig++;
    p++;
  }
  if (p < e && *p == '.') {
    p++;
    while (p < e && (unsigned)(*p - '0') < 10) {
      unsigned d = (unsigned)(*p - '0');
      if (m != 0 || d != 0) {
        if (sig < 19) { m = m * 10 + d; sig++; exp10--; }
        else slow = 1;
      } else {
        exp10--;
      }
      ndig++;
      p++;
    }
  }
  if (ndig == 0) return 0;
  if (p < e && (*p == 'e' || *p == 'E')) {
    p++;
    int eneg = 0;
    long ex = 0;
    if (p < e && (*p == '+' || *p == '-')) { eneg = (*p == '-'); p++; }
    if (p == e || (unsigned)(*p - '0') >= 10) return 0;
    while (p < e && (unsigned)(*p - '0') < 10) {
      if (ex < 100000) ex = ex * 10 + (*p - '0');
      p++;
    }
    exp10 += eneg ? -ex : ex;
  }
  if (p != e) return 0;
  if (slow || m > ((uint64_t)1 << 53) || exp10 < -22 || exp10 > 22) {
    *out = slow_strtod(start, e);
    return 1;
  }
  double v = (double)m;
  v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
  *out = neg ? -v : v;
  return 1;
}

/* The commonest numbers in one scan: [-]digits[.digits], at most 19 digits
   (leading zeros included) and a mantissa up to 2^53, so the result is exact
   (Clinger) and equal to strtod's.  Returns the end of the number, or NULL
   for anything else (which then takes the general path).  Stops at the
   buffer's final '\n' sentinel. */
static inline const char *plain_number(const char *p, double *out) {
  int neg = (*p == '-');
  p += neg;
  const char *d0 = p;
  uint64_t m = 0;
  while ((unsigned)(*p - '0') < 10) m = m * 10 + (unsigned)(*p++ - '0');
  size_t nd = (size_t)(p - d0), nf = 0;
  if (nd > 19) return NULL;
  if (*p == '.') {
    const char *f0 = ++p;
    while ((unsigned)(*p - '0') < 10 && nd + (size_t)(p - f0) < 19) m = m * 10 + (unsigned)(*p++ - '0');
    nf = (size_t)(p - f0);
    if ((unsigned)(*p - '0') < 10) return NULL;  /* more than 19 digits */
  }
  if (nd + nf == 0 || m > ((uint64_t)1 << 53)) return NULL;
  double v = (double)m;
  if (nf > 0) v /= pow10_exact[nf];
  *out = neg ? -v : v;
  return p;
}

/* "inf"/"infinity" with an optional sign, any case: accepted only in columns
   forced numeric, where the user asked for numbers explicitly. */
static int parse_inf(const char *s, size_t n, double *out) {
  while (n > 0 && (*s == ' ' || *s == '\t')) { s++; n--; }
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  int neg = 0;
  if (n > 0 && (*s == '+' || *s == '-')) { neg = (*s == '-'); s++; n--; }
  if ((n == 3 && strncasecmp(s, "inf", 3) == 0) || (n == 8 && strncasecmp(s, "infinity", 8) == 0)) {
    *out = neg ? -INFINITY : INFINITY;
    return 1;
  }
  return 0;
}

/* ---- the tokenizer ------------------------------------------------------------------- */

typedef struct {
  const char *s;     /* field text (inside the quotes for quoted fields) */
  size_t len;
  int quoted, esc;   /* esc: holds doubled quotes to undo */
  const char *pos;   /* where the field starts (its opening quote if quoted) */
  long line;         /* physical line of pos */
  const char *lstart;
} field;

typedef struct {
  const char *name;
  const char *data, *end;   /* the window: whole lines; end[-1] == '\n' always */
  const char *data_end;     /* records start only before this (trailing blank lines cut) */
  char delim;
  unsigned char special[256];
  long line;
  const char *lstart;
  const char *const *miss;
  size_t nmiss;
  size_t *misslen;
  int empty_missing;        /* "" is a missing token */
  int miss_numeric;         /* some token parses as a number: test tokens first */
  char *scratch;
  size_t scap;
  sp_error *err;
  int last;                 /* the window holds the input's end */
} parser;

/* next_field's answer when a quoted field runs past a window that is not the
   last: its record is read again once the next window is in (not an sp_status). */
#define NEED_MORE (-1)

/* 1-based column of p on its line, in UTF-8 characters. */
static long utf8_col(const char *lstart, const char *p) {
  long c = 1;
  for (const char *q = lstart; q < p; q++)
    if (((unsigned char)*q & 0xC0) != 0x80) c++;
  return c;
}

static int fail_at(parser *P, int code, long line, const char *lstart, const char *p) {
  sp_error_at(P->err, P->name, line, utf8_col(lstart, p));
  return code;
}

/* Quote a field's text for a message: at most 40 bytes, cut on a UTF-8
   boundary, and non-printing bytes shown as '?'. */
static void show(const char *s, size_t n, char *buf, size_t size) {
  size_t k = n < 40 ? n : 40;
  while (k < n && k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
  if (k + 4 > size) k = size - 4;
  size_t j = 0;
  for (size_t i = 0; i < k; i++) buf[j++] = ((unsigned char)s[i] < 0x20) ? '?' : s[i];
  if (k < n) { buf[j++] = '.'; buf[j++] = '.'; buf[j++] = '.'; }
  buf[j] = '\0';
}

/* ---- encodings ------------------------------------------------------------------------- */

/* The first byte of s[0..n) that does not belong to a well-formed UTF-8
   sequence (no overlongs, no surrogates, nothing above U+10FFFF), or NULL. */
static const char *utf8_invalid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s, *e = p + n;
  while (p < e) {
    unsigned c = *p;
    if (c < 0x80) { p++; continue; }  /* ASCII: the common case */
    size_t k;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) k = 1;
    else if (c >= 0xE0 && c <= 0xEF) { k = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return (const char *)p;
    if ((size_t)(e - p) <= k || p[1] < lo || p[1] > hi) return (const char *)p;
    for (size_t i = 2; i <= k; i++)
      if ((p[i] & 0xC0) != 0x80) return (const char *)p;
    p += k + 1;
  }
  return NULL;
}

/* Whether the non-ASCII bytes of s[0..n) read as GBK double-byte characters,
   at least one of them with both bytes above 0x80 (as every GB2312 hanzi
   has); Latin-1 text rarely has two high bytes in a row. */
static int looks_gbk(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  int pairs = 0;
  for (size_t i = 0; i < n;) {
    if (p[i] < 0x80) { i++; continue; }
    if (p[i] == 0x80 || p[i] == 0xFF || i + 1 == n || p[i + 1] < 0x40 || p[i + 1] == 0x7F || p[i + 1] == 0xFF)
      return 0;
    pairs += p[i + 1] >= 0x80;
    i += 2;
  }
  return pairs > 0;
}

/* When a field's raw text f->s[0..f->len) is not UTF-8, fail at the first bad
   byte with a message that says which encoding to give.  col names the
   field's column; NULL for the header. */
static int check_utf8(parser *P, const field *f, const char *col) {
  const char *bad = utf8_invalid(f->s, f->len);
  if (bad == NULL) return SP_OK;
  char what[200];
  if (col != NULL) snprintf(what, sizeof what, "column '%.150s'", col);
  else snprintf(what, sizeof what, "the header");
  long line = f->line;
  const char *ls = f->lstart;
  for (const char *r = f->pos; r < bad; r++)
    if (*r == '\n') { line++; ls = r + 1; }
  int gbk = looks_gbk(bad, (size_t)(f->s + f->len - bad));
  sp_error_set(P->err, SP_EPARSE,
               "invalid UTF-8 (byte 0x%02X) in %s: expected UTF-8 text; if the file is in another "
               "encoding, name it with the option encoding (%s)",
               (unsigned char)*bad, what,
               gbk ? "the bytes look like GBK: encoding = \"gb18030\"" :
                     "for example encoding = \"latin1\" or \"windows-1252\"");
  return fail_at(P, SP_EPARSE, line, ls, bad);
}

/* Whether the options ask for a conversion: an encoding other than UTF-8. */
static int converts(const sp_csv_options *opt) {
  const char *e = opt != NULL ? opt->encoding : NULL;
  return e != NULL && strcasecmp(e, "UTF-8") != 0 && strcasecmp(e, "UTF8") != 0;
}

/* in[0..len) converted from encoding enc to UTF-8 in a new sp_mem buffer
   (*out, freed by the caller with sp_mem_free, with 2 spare bytes after
   *outlen for the parser's sentinel). */
static int to_utf8(const char *in, size_t len, const char *enc, const char *name,
                   char **out, size_t *outlen, sp_error *err) {
  *out = NULL;
  iconv_t cd = iconv_open("UTF-8", enc);
  if (cd == (iconv_t)-1) {
    sp_error_set(err, SP_EVALUE,
                 "unknown encoding '%s' (expected a name iconv knows, such as \"gb18030\", \"gbk\", "
                 "\"big5\", \"shift_jis\", \"latin1\", \"windows-1252\" or \"utf-16\")", enc);
    sp_error_at(err, name, 0, 0);
    return SP_EVALUE;
  }
  /* Most text grows by at most half (GBK 2 -> 3 bytes); grow when not. */
  size_t cap = len + len / 2 + 16;
  char *buf = sp_mem_alloc(cap + 2);
  char *ip = (char *)in, *op = buf;
  size_t il = len, ol = cap;
  int st = buf == NULL ? sp_error_set(err, SP_ENOMEM, "out of memory converting '%s' from %s", name, enc) : SP_OK;
  while (st == SP_OK) {
    size_t r = il > 0 ? iconv(cd, &ip, &il, &op, &ol) : iconv(cd, NULL, NULL, &op, &ol);
    if (r != (size_t)-1) {
      if (il == 0 && ip != NULL) { ip = NULL; continue; }  /* then flush the shift state */
      break;
    }
    if (errno == E2BIG) {
      size_t used = (size_t)(op - buf);
      char *b = sp_mem_alloc(2 * cap + 2);
      if (b == NULL) { st = sp_error_set(err, SP_ENOMEM, "out of memory converting '%s' from %s", name, enc); break; }
      memcpy(b, buf, used);
      sp_mem_free(buf);
      buf = b;
      op = buf + used;
      ol += cap;
      cap *= 2;
      continue;
    }
    /* EILSEQ: locate the offending byte in the original text.  EINVAL (an
       incomplete character) is at the end by definition; iconv does not
       always advance ip to it. */
    int incomplete = errno == EINVAL;
    size_t off = incomplete && len > 0 ? len - 1 : (size_t)(ip - in);
    long line = 1;
    size_t ls = 0;
    for (size_t i = 0; i < off; i++)
      if (in[i] == '\n') { line++; ls = i + 1; }
    if (incomplete)
      st = sp_error_set(err, SP_EPARSE, "the file ends inside a %s character (its last byte is 0x%02X): "
                        "is it truncated, or in another encoding?", enc, (unsigned char)in[off]);
    else
      st = sp_error_set(err, SP_EPARSE, "byte 0x%02X at byte %zu of the line is not valid %s text: "
                        "is the encoding right?", (unsigned char)in[off], off - ls + 1, enc);
    sp_error_at(err, name, line, (long)(off - ls + 1));
  }
  iconv_close(cd);
  if (st != SP_OK) { sp_mem_free(buf); return st; }
  *out = buf;
  *outlen = (size_t)(op - buf);
  return SP_OK;
}

/* Parse the field at *pp, leaving *pp at its terminator (the delimiter, or
   the '\r'/'\n' ending the record). */
static int next_field(parser *P, const char **pp, field *f) {
  const char *p = *pp;
  f->pos = p;
  f->line = P->line;
  f->lstart = P->lstart;
  f->esc = 0;
  if (*p != '"') {
    f->quoted = 0;
    f->s = p;
    for (;;) {
      while (!P->special[(unsigned char)*p]) p++;
      if (*p == '\r' && p[1] != '\n') { p++; continue; }  /* a lone CR is data */
      break;
    }
    f->len = (size_t)(p - f->s);
    *pp = p;
    return SP_OK;
  }
  f->quoted = 1;
  f->s = ++p;
  for (;;) {
    const char *q = memchr(p, '"', (size_t)(P->end - p));
    const char *stop = q ? q : P->end;
    for (const char *r = p; r < stop; r++)
      if (*r == '\n') { P->line++; P->lstart = r + 1; }
    if (q == NULL) {
      if (!P->last) return NEED_MORE;
      sp_error_set(P->err, SP_EPARSE,
                   "unterminated quoted field: the quote opened here is never closed "
                   "(expected a closing '\"' before the end of the file)");
      return fail_at(P, SP_EPARSE, f->line, f->lstart, f->pos);
    }
    if (q[1] == '"') { f->esc = 1; p = q + 2; continue; }
    f->len = (size_t)(q - f->s);
    p = q + 1;
    if (*p == P->delim || *p == '\n' || (*p == '\r' && p[1] == '\n')) {
      *pp = p;
      return SP_OK;
    }
    char c[8];
    show(p, 1, c, sizeof c);
    sp_error_set(P->err, SP_EPARSE,
                 "unexpected character '%s' after the closing quote of the field opened at "
                 "line %ld, column %ld: expected '%c' or the end of the line",
                 c, f->line, utf8_col(f->lstart, f->pos), P->delim);
    return fail_at(P, SP_EPARSE, P->line, P->lstart, p);
  }
}

/* Step over the record terminator at *pp ('\n' or "\r\n"). */
static void end_record(parser *P, const char **pp) {
  const char *p = *pp;
  if (*p == '\r') p++;
  p++;
  P->line++;
  P->lstart = p;
  *pp = p;
}

/* The field's text with doubled quotes undone (in P->scratch when needed). */
static int field_text(parser *P, const field *f, const char **s, size_t *n) {
  if (!f->esc) { *s = f->s; *n = f->len; return SP_OK; }
  if (f->len + 1 > P->scap) {
    size_t cap = f->len + 1 > 2 * P->scap ? f->len + 1 : 2 * P->scap;
    char *b = realloc(P->scratch, cap);
    if (b == NULL) return sp_error_set(P->err, SP_ENOMEM, "out of memory reading a quoted field");
    P->scratch = b;
    P->scap = cap;
  }
  size_t j = 0;
  for (size_t i = 0; i < f->len; i++) {
    P->scratch[j++] = f->s[i];
    if (f->s[i] == '"') i++;  /* the second quote of a pair */
  }
  *s = P->scratch;
  *n = j;
  return SP_OK;
}

static int is_missing(const parser *P, const field *f, const char *s, size_t n) {
  if (n == 0) return P->empty_missing;
  if (f->quoted) return 0;  /* a quoted text is a value: "NA" in quotes is the level NA */
  for (size_t i = 0; i < P->nmiss; i++)
    if (P->misslen[i] == n && memcmp(P->miss[i], s, n) == 0) return 1;
  return 0;
}

/* ---- columns --------------------------------------------------------------------------- */

typedef struct {
  char *name;
  sp_csv_type forced;
  int cat;            /* categorical (from flip_row on) */
  size_t flip_row;    /* rows before this are filled by the second pass */
  double *num;
  int32_t *code;
  sp_strdict d;
} colstate;

static void cols_free(colstate *c, size_t n) {
  if (c == NULL) return;
  for (size_t j = 0; j < n; j++) {
    free(c[j].name);
    sp_mem_free(c[j].num);
    sp_mem_free(c[j].code);
    sp_strdict_free(&c[j].d);
  }
  free(c);
}

static int intern_field(parser *P, colstate *c, const field *f, const char *s, size_t n,
                        size_t row) {
  if (is_missing(P, f, s, n)) { c->code[row] = -1; return SP_OK; }
  if (memchr(s, '\0', n) != NULL) {
    sp_error_set(P->err, SP_EPARSE,
                 "NUL byte in a field of column '%s': expected text (is this a binary file?)", c->name);
    sp_error_var(P->err, c->name);
    return fail_at(P, SP_EPARSE, f->line, f->lstart, f->pos);
  }
  size_t before = c->d.n;
  int32_t k = sp_strdict_intern(&c->d, s, n);
  if (k == -1) return sp_error_set(P->err, SP_ENOMEM, "out of memory reading column '%s'", c->name);
  if (k == -2) {
    sp_error_set(P->err, SP_EVALUE, "column '%s' has more than %d distinct values", c->name, INT32_MAX);
    return fail_at(P, SP_EVALUE, f->line, f->lstart, f->pos);
  }
  c->code[row] = k;
  if (c->d.n > before) {  /* a new level: each distinct text is checked once */
    int st = check_utf8(P, f, c->name);
    if (st != SP_OK) { sp_error_var(P->err, c->name); return st; }
  }
  return SP_OK;
}

static int store_field(parser *P, colstate *c, const field *f, size_t row, size_t cap) {
  const char *s;
  size_t n;
  if (!c->cat) {
    double v;
    if (!f->esc && !P->miss_numeric && sp_csv_parse_double(f->s, f->len, &v)) {
      c->num[row] = v;
      return SP_OK;
    }
    if (field_text(P, f, &s, &n) != SP_OK) return P->err ? P->err->code : SP_ENOMEM;
    if (is_missing(P, f, s, n)) { c->num[row] = NAN; return SP_OK; }
    if (sp_csv_parse_double(s, n, &v)) { c->num[row] = v; return SP_OK; }
    if (c->forced == SP_CSV_NUMERIC) {
      if (parse_inf(s, n, &v)) { c->num[row] = v; return SP_OK; }
      char shown[64];
      show(s, n, shown, sizeof shown);
      sp_error_set(P->err, SP_EVALUE,
                   "column '%s' is forced numeric but has the value '%s': expected a number "
                   "or a missing token", c->name, shown);
      sp_error_var(P->err, c->name);
      return fail_at(P, SP_EVALUE, f->line, f->lstart, f->pos);
    }
    /* First text in this column: categorical from here on. */
    c->code = sp_mem_alloc_stream(cap * sizeof *c->code);
    if (c->code == NULL) return sp_error_set(P->err, SP_ENOMEM, "out of memory reading column '%s'", c->name);
    sp_mem_free(c->num);
    c->num = NULL;
    c->cat = 1;
    c->flip_row = row;
  } else if (field_text(P, f, &s, &n) != SP_OK) {
    return P->err ? P->err->code : SP_ENOMEM;
  }
  return intern_field(P, c, f, s, n, row);
}

/* Renumber a column's levels into order of first appearance. */
static int renumber(colstate *c, size_t nrow, sp_error *err) {
  size_t nl = c->d.n;
  if (nl == 0) return SP_OK;
  int32_t *map = malloc(nl * sizeof *map);
  char **lv = malloc(nl * sizeof *lv);
  if (map == NULL || lv == NULL) {
    free(map);
    free(lv);
    return sp_error_set(err, SP_ENOMEM, "out of memory reading column '%s'", c->name);
  }
  memset(map, 0xff, nl * sizeof *map);
  int32_t next = 0;
  for (size_t r = 0; r < nrow; r++) {
    int32_t k = c->code[r];
    if (k < 0) continue;
    if (map[k] < 0) { map[k] = next; lv[next++] = c->d.lv[k]; }
    c->code[r] = map[k];
  }
  /* Every level was seen in some row, so next == nl here. */
  free(c->d.lv);
  c->d.lv = lv;
  free(map);
  return SP_OK;
}

/* ---- the input, a window at a time --------------------------------------------------- */

/* The parser sees whole lines of the input, one window at a time.  A buffer
   given whole is one window.  A file is read with pread into one reused
   buffer, grown only for a record longer than it: not mapped, because on a VM
   with shadow page tables (this project's machines) each mapped page's first
   access traps to the hypervisor, and unmapping the file, or giving its pages
   back as the parser passes, flushes the whole TLB, so that the columns just
   written trap again when a fit first reads them.  Read in windows, the 518 MB
   CSV of bench/fe took 0.23 s to scan twice against 0.8 s mapped, and an 80 MB
   column written before the scan read back in 0.007 s against 0.11 s
   (bench/fe/README.md, "The file read, not mapped"). */
#define SP_CSV_WINDOW ((size_t)64 << 10)
#define SP_CSV_WINDOW_MAX ((size_t)1 << 30)  /* sp_csv_options.window at most */

typedef struct {
  int fd;            /* the file, or -1 when buf holds the whole input */
  const char *path;
  char *buf;         /* len bytes, room for cap + 2: the sentinel '\n' and a NUL */
  size_t cap, len;
  off_t off, size;   /* the file offset of buf[len]; the file's size when opened */
  int last;          /* buf holds the input's end, and the sentinel after it */
  int pad;           /* the sentinel was added: buf's last byte is not the file's */
} source;

/* Read the file into S->buf[S->len..cap) up to its end. */
static int read_more(source *S, sp_error *err) {
  while (S->len < S->cap && S->off < S->size) {
    size_t want = S->cap - S->len;
    if ((off_t)want > S->size - S->off) want = (size_t)(S->size - S->off);
    ssize_t r = pread(S->fd, S->buf + S->len, want, S->off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      sp_error_set(err, SP_EIO, "cannot read '%s': %s", S->path, strerror(e));
      sp_error_at(err, S->path, 0, 0);
      return SP_EIO;
    }
    if (r == 0) S->size = S->off;  /* the file shrank since it was opened: it ends here */
    S->len += (size_t)r;
    S->off += r;
  }
  if (S->off >= S->size && !S->last) {
    S->last = 1;
    S->pad = S->len == 0 || S->buf[S->len - 1] != '\n';
    if (S->pad) S->buf[S->len++] = '\n';
    S->buf[S->len] = '\0';
  }
  return SP_OK;
}

/* Make the parser's window the whole lines of S->buf from `from` on.  Its
   data_end is before any blank lines at its end: unless the input ends there,
   they are read again with what follows them in the next window, where they
   are records.  0 when no line is whole yet. */
static int set_window(parser *P, const source *S, const char *from) {
  const char *e = S->buf + S->len;
  if (!S->last) {
    const char *nl = memrchr(from, '\n', (size_t)(e - from));
    if (nl == NULL) return 0;
    e = nl + 1;
  }
  const char *de = e;
  while (de > from && (de[-1] == '\n' || de[-1] == '\r')) de--;
  P->data = from;
  P->end = e;
  P->data_end = de;
  P->last = S->last;
  return 1;
}

/* The next window: keep S->buf's bytes from the record start `keep` on, move
   them to the front and read after them until a line is whole. */
static int next_window(parser *P, source *S, const char *keep) {
  size_t t = (size_t)(S->buf + S->len - keep);
  memmove(S->buf, keep, t);
  S->len = t;
  for (;;) {
    if (S->len == S->cap) {  /* one record fills the window: double it */
      char *b = S->cap <= SIZE_MAX / 4 ? realloc(S->buf, 2 * S->cap + 2) : NULL;
      if (b == NULL)
        return sp_error_set(P->err, SP_ENOMEM, "out of memory for a record of more than %zu bytes", S->cap);
      S->buf = b;
      S->cap *= 2;
    }
    int st = read_more(S, P->err);
    if (st != SP_OK) return st;
    if (set_window(P, S, S->buf)) break;
  }
  P->lstart = S->buf;  /* keep is where a record, so a line, starts */
  return SP_OK;
}

/* n plus the newlines in [p, e), at most limit. */
static size_t add_newlines(size_t n, const char *p, const char *e, size_t limit) {
  while (n < limit && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
    n++;
    p++;
  }
  return n;
}

/* Records are at most the newlines from p on, with the sentinel; counting
   stops at limit. */
static int count_lines(parser *P, source *S, const char *p, size_t limit, size_t *count) {
  size_t n = add_newlines(0, p, S->buf + S->len, limit);
  if (!S->last && n < limit) {
    source rest = *S;  /* the file after the window, through a buffer of its own */
    rest.cap = SP_CSV_WINDOW;
    rest.buf = malloc(rest.cap + 2);
    if (rest.buf == NULL) return sp_error_set(P->err, SP_ENOMEM, "out of memory");
    while (!rest.last && n < limit) {
      rest.len = 0;
      int st = read_more(&rest, P->err);
      if (st != SP_OK) { free(rest.buf); return st; }
      n = add_newlines(n, rest.buf, rest.buf + rest.len, limit);
    }
    free(rest.buf);
  }
  *count = n;
  return SP_OK;
}

/* ---- reading -------------------------------------------------------------------------- */

/* The header at *pp: the columns' names, or just their number.  NEED_MORE,
   with nothing kept, when a quoted name runs past the window. */
static int read_header(parser *P, const sp_csv_options *opt, const char **pp, colstate **colsp, size_t *ncolp) {
  sp_error *err = P->err;
  colstate *cols = NULL;
  size_t ncol = 0, cap = 0;
  sp_strdict names;  /* the header's names, for the duplicate check */
  memset(&names, 0, sizeof names);
  const char *q = *pp;
  long line0 = P->line;
  const char *ls0 = P->lstart;
  int st = SP_OK;
  field f;
  for (;;) {
    if ((st = next_field(P, &q, &f)) != SP_OK) goto fail;
    if (ncol == cap) {
      cap = cap ? 2 * cap : 16;
      colstate *c = realloc(cols, cap * sizeof *c);
      if (c == NULL) { st = sp_error_set(err, SP_ENOMEM, "out of memory reading the header"); goto fail; }
      cols = c;
    }
    colstate *c = &cols[ncol];
    memset(c, 0, sizeof *c);
    ncol++;
    if (opt->header) {
      const char *s;
      size_t n;
      if ((st = field_text(P, &f, &s, &n)) != SP_OK) goto fail;
      if (n == 0) {
        sp_error_set(err, SP_EPARSE, "empty column name in the header (field %zu): expected a name", ncol);
        st = fail_at(P, SP_EPARSE, f.line, f.lstart, f.pos);
        goto fail;
      }
      if (memchr(s, '\0', n) != NULL) {
        sp_error_set(err, SP_EPARSE, "NUL byte in the name of field %zu: expected text", ncol);
        st = fail_at(P, SP_EPARSE, f.line, f.lstart, f.pos);
        goto fail;
      }
      c->name = malloc(n + 1);
      if (c->name == NULL) { st = sp_error_set(err, SP_ENOMEM, "out of memory reading the header"); goto fail; }
      memcpy(c->name, s, n);
      c->name[n] = '\0';
      if ((st = check_utf8(P, &f, NULL)) != SP_OK) goto fail;
      /* A hash of the names so far: a header of 1e5 names stays linear. */
      int32_t k = sp_strdict_intern(&names, s, n);
      if (k < 0) { st = sp_error_set(err, SP_ENOMEM, "out of memory reading the header"); goto fail; }
      if ((size_t)k + 1 < ncol) {
        sp_error_set(err, SP_EPARSE,
                     "duplicate column name '%s' (fields %zu and %zu): expected unique names",
                     c->name, (size_t)k + 1, ncol);
        sp_error_var(err, c->name);
        st = fail_at(P, SP_EPARSE, f.line, f.lstart, f.pos);
        goto fail;
      }
    } else {
      char nm[32];
      snprintf(nm, sizeof nm, "V%zu", ncol);
      if ((c->name = strdup(nm)) == NULL) { st = sp_error_set(err, SP_ENOMEM, "out of memory"); goto fail; }
    }
    if (*q != P->delim) break;
    q++;
  }
  sp_strdict_free(&names);
  if (opt->header) {
    end_record(P, &q);
    *pp = q;
  } else {
    P->line = line0;  /* the first record is data: read it again */
    P->lstart = ls0;
  }
  *colsp = cols;
  *ncolp = ncol;
  return SP_OK;

fail:
  P->line = line0;
  P->lstart = ls0;
  cols_free(cols, ncol);
  sp_strdict_free(&names);
  return st;
}

/* The record at *pp, row `row`: every field stored.  NEED_MORE when one runs
   past the window (fields stored before it are stored again, to the same
   effect, when the record is read again). */
static int store_record(parser *P, colstate *cols, size_t ncol, const char **pp, size_t row, size_t cap) {
  sp_error *err = P->err;
  const char *p = *pp;
  field f;
  int st;
  for (size_t j = 0;; j++) {
    double v;
    const char *e;
    if (!cols[j].cat && !P->miss_numeric && (e = plain_number(p, &v)) != NULL &&
        (*e == P->delim || *e == '\n' || (*e == '\r' && e[1] == '\n'))) {
      cols[j].num[row] = v;  /* the common case, tokenized and parsed in one scan */
      p = e;
    } else {
      if ((st = next_field(P, &p, &f)) != SP_OK) return st;
      if ((st = store_field(P, &cols[j], &f, row, cap)) != SP_OK) return st;
    }
    if (*p != P->delim) {
      if (j + 1 < ncol) {
        sp_error_set(err, SP_EPARSE, "expected %zu fields, found %zu", ncol, j + 1);
        return fail_at(P, SP_EPARSE, P->line, P->lstart, p);
      }
      break;
    }
    if (j + 1 == ncol) {
      long eline = P->line;
      const char *els = P->lstart, *epos = p + 1;
      size_t found = ncol;
      while (*p == P->delim) {
        p++;
        found++;
        if ((st = next_field(P, &p, &f)) != SP_OK) return st;
      }
      sp_error_set(err, SP_EPARSE, "expected %zu fields, found %zu", ncol, found);
      return fail_at(P, SP_EPARSE, eline, els, epos);
    }
    p++;
  }
  *pp = p;
  return SP_OK;
}

/* The record at *pp again, row `row`: the fields of the columns that turned
   categorical after it are interned. */
static int fill_record(parser *P, colstate *cols, const char **pp, size_t row) {
  const char *p = *pp;
  int st;
  for (size_t j = 0;; j++) {
    field f;
    if ((st = next_field(P, &p, &f)) != SP_OK) return st;
    colstate *c = &cols[j];
    if (c->cat && row < c->flip_row) {
      const char *s;
      size_t n;
      if ((st = field_text(P, &f, &s, &n)) != SP_OK) return st;
      if ((st = intern_field(P, c, &f, s, n, row)) != SP_OK) return st;
    }
    if (*p != P->delim) break;
    p++;
  }
  *pp = p;
  return SP_OK;
}

/* Records from *pp on, rows *nrow.. until `upto` or the input's end, window
   after window; fill: the second pass (fill_record), else the first. */
static int read_records(parser *P, source *S, const char **pp, size_t *nrow, size_t upto,
                        colstate *cols, size_t ncol, size_t cap, int fill) {
  const char *p = *pp;
  size_t row = *nrow;
  int st = SP_OK;
  for (;;) {
    while (p < P->data_end && row < upto) {
      const char *rec = p;
      long line = P->line;
      st = fill ? fill_record(P, cols, &p, row) : store_record(P, cols, ncol, &p, row, cap);
      if (st == NEED_MORE) {  /* read it again with the next window */
        p = rec;
        P->line = line;
        P->lstart = rec;
        break;
      }
      if (st != SP_OK) goto done;
      end_record(P, &p);
      row++;
    }
    st = SP_OK;
    if (P->last || row == upto) break;
    if ((st = next_window(P, S, p)) != SP_OK) break;
    p = P->data;
  }
done:
  *pp = p;
  *nrow = row;
  return st;
}

static int parse_input(parser *P, source *S, const sp_csv_options *opt, sp_frame **out) {
  sp_error *err = P->err;
  const char *p = P->data;
  colstate *cols = NULL;
  size_t ncol = 0;
  int st = SP_OK;

  if (P->last && P->data_end <= p) {
    sp_error_set(err, SP_EPARSE, "empty file: expected a header line%s",
                 opt->header ? " with the column names" : " or data");
    sp_error_at(err, P->name, 1, 1);
    return SP_EPARSE;
  }

  /* First record: the names (or just the number of fields). */
  while ((st = read_header(P, opt, &p, &cols, &ncol)) == NEED_MORE) {
    if ((st = next_window(P, S, p)) != SP_OK) goto fail;
    p = P->data;
  }
  if (st != SP_OK) goto fail;

  /* Forced types. */
  for (size_t t = 0; t < opt->ntypes; t++) {
    size_t j = 0;
    while (j < ncol && strcmp(cols[j].name, opt->type_names[t]) != 0) j++;
    if (j == ncol) {
      st = sp_error_set(err, SP_ENOTFOUND, "types names column '%s', which is not in the file",
                        opt->type_names[t]);
      sp_error_at(err, P->name, 0, 0);
      sp_error_var(err, opt->type_names[t]);
      goto fail;
    }
    cols[j].forced = opt->types[t];
  }

  /* Capacity: every record ends with a '\n', so records <= newlines left. */
  size_t cap = 0;
  if ((st = count_lines(P, S, p, opt->max_rows > 0 ? opt->max_rows : SIZE_MAX, &cap)) != SP_OK) goto fail;
  for (size_t j = 0; j < ncol; j++) {
    colstate *c = &cols[j];
    if (c->forced == SP_CSV_CATEGORICAL) {
      c->cat = 1;
      c->code = sp_mem_alloc_stream(cap * sizeof *c->code);
    } else {
      c->num = sp_mem_alloc_stream(cap * sizeof *c->num);
    }
    if (c->code == NULL && c->num == NULL) {
      st = sp_error_set(err, SP_ENOMEM, "out of memory for %zu rows of column '%s'", cap, c->name);
      goto fail;
    }
  }

  /* The records. */
  const char *body = p;
  off_t body_off = S->off - (off_t)(S->buf + S->len - S->pad - p);
  long body_line = P->line;
  size_t nrow = 0;
  if ((st = read_records(P, S, &p, &nrow, cap, cols, ncol, cap, 0)) != SP_OK) goto fail;

  /* Second pass: the rows before each column turned categorical. */
  size_t upto = 0;
  for (size_t j = 0; j < ncol; j++)
    if (cols[j].cat && cols[j].flip_row > upto) upto = cols[j].flip_row;
  if (upto > 0) {
    if (S->fd >= 0) {  /* from the body's first byte again */
      S->off = body_off;
      S->len = 0;
      S->last = S->pad = 0;
      if ((st = next_window(P, S, S->buf)) != SP_OK) goto fail;
      body = P->data;
    }
    p = body;
    P->line = body_line;
    P->lstart = body;
    size_t r = 0;
    if ((st = read_records(P, S, &p, &r, upto, cols, ncol, cap, 1)) != SP_OK) goto fail;
    for (size_t j = 0; j < ncol; j++)
      if (cols[j].cat && cols[j].flip_row > 0 && (st = renumber(&cols[j], nrow, err)) != SP_OK) goto fail;
  }

  /* Hand the names and arrays to a frame.  The names are known to be
     distinct (the header check), so the columns are placed directly:
     sp_frame_add_* looks for an existing column of the same name first,
     which makes a header of 1e5 names quadratic (30 s). */
  sp_frame *fr = sp_frame_new(nrow, err);
  if (fr == NULL) { st = SP_ENOMEM; goto fail; }
  fr->cols = calloc(ncol, sizeof *fr->cols);
  if (fr->cols == NULL) {
    sp_frame_free(fr);
    st = sp_error_set(err, SP_ENOMEM, "out of memory for %zu columns", ncol);
    goto fail;
  }
  fr->capcol = ncol;
  for (size_t j = 0; j < ncol; j++) {
    colstate *c = &cols[j];
    sp_column *dst = &fr->cols[fr->ncol++];
    dst->name = c->name;
    c->name = NULL;
    if (c->cat) {
      dst->type = SP_CATEGORICAL;
      dst->code = c->code;
      dst->levels = c->d.lv;
      dst->nlevels = c->d.n;
      c->code = NULL;
      c->d.lv = NULL;
      c->d.n = 0;
    } else {
      dst->type = SP_NUMERIC;
      dst->num = c->num;
      c->num = NULL;
    }
  }
  cols_free(cols, ncol);
  *out = fr;
  return SP_OK;

fail:
  cols_free(cols, ncol);
  if (err != NULL && err->file[0] == '\0') sp_error_at(err, P->name, err->line, err->col);
  return st;
}

/* Parse the input S holds or reads (S->buf has room for the sentinel). */
static int parse_source(source *S, const char *name, const sp_csv_options *opt, sp_frame **out,
                        sp_error *err) {
  sp_csv_options defaults;
  if (opt == NULL) { sp_csv_options_init(&defaults); opt = &defaults; }
  char d = opt->delimiter;
  if (d == '"' || d == '\r' || d == '\n' || d == '\0')
    return sp_error_set(err, SP_EVALUE, "the delimiter cannot be a quote, CR, LF or NUL");
  parser P;
  memset(&P, 0, sizeof P);
  P.name = name;
  P.err = err;
  P.delim = d;
  P.special[(unsigned char)d] = 1;
  P.special['\n'] = 1;
  P.special['\r'] = 1;
  P.miss = opt->missing ? opt->missing : default_missing;
  P.nmiss = opt->missing ? opt->nmissing : sizeof default_missing / sizeof default_missing[0];
  P.misslen = malloc((P.nmiss ? P.nmiss : 1) * sizeof *P.misslen);
  if (P.misslen == NULL) return sp_error_set(err, SP_ENOMEM, "out of memory");
  for (size_t i = 0; i < P.nmiss; i++) {
    double v;
    P.misslen[i] = strlen(P.miss[i]);
    if (P.misslen[i] == 0) P.empty_missing = 1;
    if (sp_csv_parse_double(P.miss[i], P.misslen[i], &v)) P.miss_numeric = 1;
  }
  *out = NULL;
  int st = S->fd >= 0 ? next_window(&P, S, S->buf) : SP_OK;
  if (st == SP_OK) {
    const char *data = S->buf;
    if (S->len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) data += 3;
    set_window(&P, S, data);  /* a line is whole: the first window has one */
    P.line = 1;
    P.lstart = data;
    /* Blank lines only so far: the file's end decides between an empty file
       and an empty header. */
    while (st == SP_OK && !P.last && P.data_end <= P.data) st = next_window(&P, S, P.data);
    if (st == SP_OK) st = parse_input(&P, S, opt, out);
  }
  free(P.misslen);
  free(P.scratch);
  return st;
}

/* Parse buf[0..len); buf has 2 spare bytes after len for the sentinel. */
static int parse_owned(char *buf, size_t len, const char *name, const sp_csv_options *opt,
                       sp_frame **out, sp_error *err) {
  if (len == 0 || buf[len - 1] != '\n') buf[len++] = '\n';
  buf[len] = '\0';
  source S = {.fd = -1, .path = name, .buf = buf, .cap = len, .len = len, .last = 1};
  return parse_source(&S, name, opt, out, err);
}

/* Convert in[0..len) from opt->encoding to UTF-8, then parse. */
static int parse_converted(const char *in, size_t len, const char *name, const sp_csv_options *opt,
                           sp_frame **out, sp_error *err) {
  char *u;
  size_t ulen;
  int st = to_utf8(in, len, opt->encoding, name, &u, &ulen, err);
  if (st != SP_OK) return st;
  st = parse_owned(u, ulen, name, opt, out, err);
  sp_mem_free(u);
  return st;
}

int sp_frame_read_csv_buffer(const char *buf, size_t len, const char *name,
                             const sp_csv_options *opt, sp_frame **out, sp_error *err) {
  *out = NULL;
  if (name == NULL) name = "(buffer)";
  if (converts(opt)) return parse_converted(buf, len, name, opt, out, err);
  char *copy = sp_mem_alloc(len + 2);
  if (copy == NULL) return sp_error_set(err, SP_ENOMEM, "out of memory copying %zu bytes of CSV", len);
  if (len > 0) memcpy(copy, buf, len);
  int st = parse_owned(copy, len, name, opt, out, err);
  sp_mem_free(copy);
  return st;
}

int sp_frame_read_csv(const char *path, const sp_csv_options *opt, sp_frame **out, sp_error *err) {
  *out = NULL;
  off_t size;
  int fd = sp_file_open(path, "a CSV file", &size, err);
  if (fd < 0) return SP_EIO;
  int st = SP_OK;
  /* A file that needs no conversion is read a window at a time. */
  if (size > 0 && !converts(opt)) {
    size_t win = opt != NULL && opt->window > 0 ? opt->window : SP_CSV_WINDOW;
    if (win > SP_CSV_WINDOW_MAX) {
      close(fd);
      sp_error_set(err, SP_EVALUE, "a CSV window of %zu bytes: expected at most %zu", win, SP_CSV_WINDOW_MAX);
      sp_error_at(err, path, 0, 0);
      return SP_EVALUE;
    }
    source S = {.fd = fd, .path = path, .cap = win, .size = size};
    S.buf = malloc(win + 2);
    if (S.buf == NULL) st = sp_error_set(err, SP_ENOMEM, "out of memory reading '%s'", path);
    else st = parse_source(&S, path, opt, out, err);
    free(S.buf);
    close(fd);
    return st;
  }
  /* Otherwise (a conversion, or a file that reports no size, as files under
     /proc do) read whole into a buffer with room for the sentinel.  The loop
     grows the buffer when the file grew since fstat. */
  size_t cap = size > 0 ? (size_t)size + 1 : 1 << 16;
  char *buf = sp_mem_alloc(cap + 2);
  size_t len = 0;
  if (buf == NULL) {
    st = sp_error_set(err, SP_ENOMEM, "out of memory reading '%s' (%zu bytes)", path, cap);
  }
  while (st == SP_OK) {
    if (len == cap) {
      char *b = sp_mem_alloc(2 * cap + 2);
      if (b == NULL) { st = sp_error_set(err, SP_ENOMEM, "out of memory reading '%s'", path); break; }
      memcpy(b, buf, len);
      sp_mem_free(buf);
      buf = b;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      st = sp_error_set(err, SP_EIO, "cannot read '%s': %s", path, strerror(e));
    } else if (r == 0) {
      break;
    } else {
      len += (size_t)r;
    }
  }
  close(fd);
  if (st == SP_OK) st = converts(opt) ? parse_converted(buf, len, path, opt, out, err)
                                      : parse_owned(buf, len, path, opt, out, err);
  else sp_error_at(err, path, 0, 0);
  sp_mem_free(buf);
  return st;
}

/* ---- writing --------------------------------------------------------------------------- */

void sp_csv_write_options_init(sp_csv_write_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->delimiter = ',';
  opt->na = "";
  opt->quote = SP_CSV_QUOTE_MINIMAL;
}

typedef struct {
  FILE *fp;
  const sp_csv_write_options *opt;
  char buf[1 << 16];
  size_t n;
  int failed;   /* the errno of the first failed write, or 0 */
} outbuf;

static void ob_flush(outbuf *o) {
  if (o->n > 0 && !o->failed && fwrite(o->buf, 1, o->n, o->fp) != o->n) o->failed = errno ? errno : EIO;
  o->n = 0;
}

static void ob_put(outbuf *o, const char *s, size_t n) {
  while (n > 0) {
    if (o->n == sizeof o->buf) ob_flush(o);
    size_t k = sizeof o->buf - o->n;
    if (k > n) k = n;
    memcpy(o->buf + o->n, s, k);
    o->n += k;
    s += k;
    n -= k;
  }
}

/* Whether s holds a byte that ends an unquoted field: the delimiter, a
   quote, CR or LF. */
static int breaks_field(const char *s, char delim) {
  for (; *s; s++)
    if (*s == delim || *s == '"' || *s == '\r' || *s == '\n') return 1;
  return 0;
}

/* Whether s, written unquoted, would read back as something else: it breaks
   the field, has spaces at an end (or a leading byte-order mark) that the
   reader treats specially, or equals a missing token. */
static int needs_quotes(const char *s, const sp_csv_write_options *opt) {
  size_t n = strlen(s);
  if (n == 0) return 1;  /* an empty level: "" at least keeps the field */
  if (s[0] == ' ' || s[n - 1] == ' ' || strncmp(s, "\xEF\xBB\xBF", 3) == 0 || breaks_field(s, opt->delimiter))
    return 1;
  for (size_t i = 0; i < sizeof default_missing / sizeof default_missing[0]; i++)
    if (strcmp(s, default_missing[i]) == 0) return 1;
  return strcmp(s, opt->na) == 0;
}

/* Write the text s (a name or a level), quoted as opt->quote says.  With
   quoting off, a text that would break the field is an error: row is the
   data row (1-based), 0 for the header. */
static int ob_text(outbuf *o, const char *s, const char *col, size_t row, const char *name, sp_error *err) {
  const sp_csv_write_options *opt = o->opt;
  int q;
  if (opt->quote == SP_CSV_QUOTE_NONE) {
    if (breaks_field(s, opt->delimiter)) {
      char shown[64];
      show(s, strlen(s), shown, sizeof shown);
      if (row == 0)
        sp_error_set(err, SP_EVALUE, "the column name '%s' holds the delimiter, a quote or a newline, "
                     "which cannot be written with quote = \"none\" (use \"minimal\")", shown);
      else
        sp_error_set(err, SP_EVALUE, "row %zu, column '%s': the value '%s' holds the delimiter, a quote "
                     "or a newline, which cannot be written with quote = \"none\" (use \"minimal\")",
                     row, col, shown);
      sp_error_at(err, name, (long)row + 1, 0);
      sp_error_var(err, col);
      return SP_EVALUE;
    }
    q = 0;
  } else {
    q = opt->quote == SP_CSV_QUOTE_ALL || needs_quotes(s, opt);
  }
  if (!q) { ob_put(o, s, strlen(s)); return SP_OK; }
  ob_put(o, "\"", 1);
  for (const char *p = s; *p; p++) {
    if (*p == '"') ob_put(o, "\"", 1);
    ob_put(o, p, 1);
  }
  ob_put(o, "\"", 1);
  return SP_OK;
}

/* Shortest of %.15g, %.16g, %.17g that reads back to the same double. */
static size_t format_double(double v, char *b, size_t size) {
  if (isnan(v)) { b[0] = '\0'; return 0; }
  if (isinf(v)) return (size_t)snprintf(b, size, v > 0 ? "Inf" : "-Inf");
  if (v == trunc(v) && fabs(v) < 1e15) {
    char t[24];
    int neg = signbit(v) != 0;
    unsigned long long u = (unsigned long long)fabs(v);
    size_t k = 0;
    do { t[k++] = (char)('0' + u % 10); u /= 10; } while (u > 0);
    size_t j = 0;
    if (neg) b[j++] = '-';
    while (k > 0) b[j++] = t[--k];
    b[j] = '\0';
    return j;
  }
  int n = 0;
  for (int prec = 15; prec <= 17; prec++) {
    n = snprintf(b, size, "%.*g", prec, v);
    if (strtod(b, NULL) == v) break;
  }
  return (size_t)n;
}

int sp_frame_write_csv_stream(const sp_frame *f, FILE *fp, const char *name,
                              const sp_csv_write_options *opt, sp_error *err) {
  sp_csv_write_options defaults;
  if (opt == NULL) { sp_csv_write_options_init(&defaults); opt = &defaults; }
  const char *na = opt->na != NULL ? opt->na : "";
  char d = opt->delimiter;
  if (d == '"' || d == '\r' || d == '\n' || d == '\0')
    return sp_error_set(err, SP_EVALUE, "the delimiter cannot be a quote, CR, LF or NUL");
  if (breaks_field(na, d))
    return sp_error_set(err, SP_EVALUE, "the missing-value text '%s' holds the delimiter, a quote or "
                        "a newline: it would not read back as one field", na);
  outbuf *o = malloc(sizeof *o);
  if (o == NULL) return sp_error_set(err, SP_ENOMEM, "out of memory writing '%s'", name);
  sp_csv_write_options eff = *opt;
  eff.na = na;
  o->fp = fp;
  o->opt = &eff;
  o->n = 0;
  o->failed = 0;
  int st = SP_OK;
  size_t nalen = strlen(na);
  if (opt->bom) ob_put(o, "\xEF\xBB\xBF", 3);
  for (size_t j = 0; j < f->ncol && st == SP_OK; j++) {
    if (j > 0) ob_put(o, &d, 1);
    st = ob_text(o, f->cols[j].name, f->cols[j].name, 0, name, err);
  }
  ob_put(o, "\n", 1);
  char num[40];
  for (size_t r = 0; r < f->nrow && !o->failed && st == SP_OK; r++) {
    for (size_t j = 0; j < f->ncol && st == SP_OK; j++) {
      const sp_column *c = &f->cols[j];
      if (j > 0) ob_put(o, &d, 1);
      if (c->type == SP_NUMERIC) {
        if (isnan(c->num[r])) ob_put(o, na, nalen);
        else ob_put(o, num, format_double(c->num[r], num, sizeof num));
      } else {
        const char *s = sp_column_level(c, r);
        if (s == NULL) ob_put(o, na, nalen);
        else st = ob_text(o, s, c->name, r + 1, name, err);
      }
    }
    ob_put(o, "\n", 1);
  }
  if (st == SP_OK) ob_flush(o);
  int failed = o->failed;
  free(o);
  if (st != SP_OK) return st;
  if (!failed && fflush(fp) != 0) failed = errno;
  if (failed) {
    sp_error_set(err, SP_EIO, "cannot write '%s': %s", name, strerror(failed));
    sp_error_at(err, name, 0, 0);
    return SP_EIO;
  }
  return SP_OK;
}

int sp_frame_write_csv(const sp_frame *f, const char *path, const sp_csv_write_options *opt,
                       sp_error *err) {
  size_t n = strlen(path);
  char *tmp = malloc(n + 16);
  if (tmp == NULL) return sp_error_set(err, SP_ENOMEM, "out of memory writing '%s'", path);
  memcpy(tmp, path, n);
  memcpy(tmp + n, ".tmpXXXXXX", 11);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    sp_error_set(err, SP_EIO, "cannot create a temporary file next to '%s': %s", path, strerror(e));
    sp_error_at(err, path, 0, 0);
    free(tmp);
    return SP_EIO;
  }
  /* mkstemp makes the file private (0600); a data file is normally shared. */
  (void)fchmod(fd, 0644);
  FILE *fp = fdopen(fd, "w");
  if (fp == NULL) {
    int e = errno;
    close(fd);
    unlink(tmp);
    free(tmp);
    sp_error_set(err, SP_EIO, "cannot write '%s': %s", path, strerror(e));
    sp_error_at(err, path, 0, 0);
    return SP_EIO;
  }
  int st = sp_frame_write_csv_stream(f, fp, path, opt, err);
  if (fclose(fp) != 0 && st == SP_OK) {
    int e = errno;
    st = sp_error_set(err, SP_EIO, "cannot write '%s': %s", path, strerror(e));
    sp_error_at(err, path, 0, 0);
  }
  if (st == SP_OK && rename(tmp, path) != 0) {
    int e = errno;
    st = sp_error_set(err, SP_EIO, "cannot rename the temporary file to '%s': %s", path, strerror(e));
    sp_error_at(err, path, 0, 0);
  }
  if (st != SP_OK) unlink(tmp);
  free(tmp);
  return st;
}
