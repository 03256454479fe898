/*
** statfile.c: Stata/SPSS/SAS files through ReadStat's callback parser (see
** statfile.h for the mapping).
**
** ReadStat hands over variables, values and value labels in an order that
** depends on the format (Stata stores value labels after the data, SPSS
** before), so everything is collected first and the columns are built once
** the parse has finished.  A callback that runs out of memory records the
** failure in the context and aborts the parse.
**
** The row count in a file's header is only a hint: a hostile or damaged
** header may claim 2e9 rows.  Arrays start at that count capped by what the
** file could hold (a row takes at least a byte per variable) and grow as
** values arrive, so memory follows the data actually present.
**
** ReadStat reads through our I/O handlers: from a descriptor that
** sp_file_open has checked is a regular file (a FIFO or /dev/zero would block
** or never end), or from a memory buffer.
*/
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <readstat.h>

#include "spillover/file.h"
#include "spillover/mem.h"
#include "spillover/statfile.h"
#include "spillover/strdict.h"

/* ---- collection -------------------------------------------------------------------- */

typedef struct {
  char *name, *label, *labelset;  /* owned; label and labelset may be NULL */
  int is_string;
  char stata_time;                /* a Stata date format's letter (%td: 'd', %tc: 'c', ...), 0 otherwise */
  double *num;                    /* numeric: cap values, NaN for missing */
  int32_t *code;                  /* string: cap codes into d, -1 missing */
  sp_strdict d;
} svar;

typedef struct {
  char *set, *label;
  double value;
} vlabel;

/* The input ReadStat reads through the handlers below: a file (fd) or a
   buffer (buf, len). */
typedef struct {
  int fd;
  const unsigned char *buf;
  size_t len;
  readstat_off_t pos;   /* buffer only */
  off_t size;           /* bytes in the input, for the row hint */
  int stata;            /* a .dta file (see labelset_max) */
  sp_error *err;        /* the open handler's failure, if any */
  int st;
} sinput;

typedef struct {
  svar *vars;
  size_t nvar, capvar;
  size_t cap;          /* rows allocated in every variable */
  size_t nrow;         /* rows seen */
  vlabel *labels;
  size_t nlab, caplab;
  int st;              /* SP_OK, or the failure that aborted the parse */
  sp_error *err;
  sinput in;
  size_t labelset_max; /* bytes a value-label set name may span */
} sctx;

static int oom(sctx *c, const char *what) {
  c->st = sp_error_set(c->err, SP_ENOMEM, "out of memory reading %s", what);
  return READSTAT_HANDLER_ABORT;
}

static int on_metadata(readstat_metadata_t *m, void *ctx) {
  sctx *c = ctx;
  long n = readstat_get_row_count(m);
  int nvar = readstat_get_var_count(m);
  /* Stata's label-name entries are 9, 33 or 129 bytes wide by release. */
  if (c->in.stata) {
    int v = readstat_get_file_format_version(m);
    c->labelset_max = v < 110 ? 9 : v < 118 ? 33 : 129;
  }
  /* Preallocate for the announced rows (saving the doubling copies), but
     never for more rows than the file has bytes per variable. */
  if (n > 0) {
    size_t most = (size_t)c->in.size / (size_t)(nvar > 0 ? nvar : 1) + 1;
    c->cap = (size_t)n < most ? (size_t)n : most;
  }
  return READSTAT_HANDLER_OK;
}

static int grow_all(sctx *c, size_t need) {
  if (need <= c->cap && c->cap > 0) return 1;
  size_t cap = c->cap ? c->cap : 16;
  while (cap < need) cap *= 2;
  for (size_t j = 0; j < c->nvar; j++) {
    svar *v = &c->vars[j];
    if (v->is_string && v->code != NULL) {
      int32_t *k = sp_mem_alloc(cap * sizeof *k);
      if (k == NULL) return 0;
      memcpy(k, v->code, c->cap * sizeof *k);
      for (size_t i = c->cap; i < cap; i++) k[i] = -1;
      sp_mem_free(v->code);
      v->code = k;
    } else if (!v->is_string && v->num != NULL) {
      double *x = sp_mem_doubles(cap);
      if (x == NULL) return 0;
      memcpy(x, v->num, c->cap * sizeof *x);
      for (size_t i = c->cap; i < cap; i++) x[i] = NAN;
      sp_mem_free(v->num);
      v->num = x;
    }
  }
  c->cap = cap;
  return 1;
}

/* Make v's array exist and every array hold at least n rows. */
static int ensure_rows(sctx *c, svar *v, size_t n) {
  if ((n > c->cap || c->cap == 0) && !grow_all(c, n)) return 0;
  if (v->num != NULL || v->code != NULL) return 1;
  if (v->is_string) {
    if ((v->code = sp_mem_alloc(c->cap * sizeof *v->code)) == NULL) return 0;
    for (size_t i = 0; i < c->cap; i++) v->code[i] = -1;
  } else {
    if ((v->num = sp_mem_doubles(c->cap)) == NULL) return 0;
    for (size_t i = 0; i < c->cap; i++) v->num[i] = NAN;
  }
  return 1;
}

static int on_variable(int index, readstat_variable_t *var, const char *val_labels, void *ctx) {
  sctx *c = ctx;
  (void)index;
  if (c->nvar == c->capvar) {
    size_t cap = c->capvar ? 2 * c->capvar : 16;
    svar *v = realloc(c->vars, cap * sizeof *v);
    if (v == NULL) return oom(c, "the variables");
    c->vars = v;
    c->capvar = cap;
  }
  svar *v = &c->vars[c->nvar++];
  memset(v, 0, sizeof *v);
  const char *name = readstat_variable_get_name(var);
  const char *label = readstat_variable_get_label(var);
  v->is_string = readstat_variable_get_type_class(var) == READSTAT_TYPE_CLASS_STRING;
  if ((v->name = strdup(name ? name : "")) == NULL) return oom(c, "the variables");
  if (label != NULL && label[0] != '\0' && (v->label = strdup(label)) == NULL) return oom(c, "the variables");
  /* ReadStat hands a Stata file's value-label name as a pointer into the
     file's fixed-width table, not terminated when the name fills its entry
     (found by fuzz_statfile): read at most one entry. */
  if (val_labels != NULL && val_labels[0] != '\0' &&
      (v->labelset = strndup(val_labels, c->labelset_max)) == NULL)
    return oom(c, "the variables");
  /* Stata date formats: "%td", "%-tdCCYY", "%tcHH:MM", ... */
  const char *fmt = readstat_variable_get_format(var);
  if (c->in.stata && !v->is_string && fmt != NULL && fmt[0] == '%') {
    const char *f = fmt + 1 + (fmt[1] == '-');
    if (f[0] == 't' && f[1] != '\0' && strchr("cdwmqhy", f[1]) != NULL) v->stata_time = f[1];
  }
  return READSTAT_HANDLER_OK;
}

static int on_value(int obs, readstat_variable_t *var, readstat_value_t value, void *ctx) {
  sctx *c = ctx;
  int j = readstat_variable_get_index(var);
  if (obs < 0 || j < 0 || (size_t)j >= c->nvar) return READSTAT_HANDLER_OK;
  svar *v = &c->vars[j];
  size_t r = (size_t)obs;
  if (!ensure_rows(c, v, r + 1)) return oom(c, "the values");
  if (r + 1 > c->nrow) c->nrow = r + 1;
  if (v->is_string) {
    const char *s = readstat_string_value(value);
    if (s == NULL || s[0] == '\0') { v->code[r] = -1; return READSTAT_HANDLER_OK; }
    int32_t k = sp_strdict_intern(&v->d, s, strlen(s));
    if (k < 0) return oom(c, "the values");
    v->code[r] = k;
  } else {
    v->num[r] = readstat_value_is_missing(value, var) ? NAN : readstat_double_value(value);
  }
  return READSTAT_HANDLER_OK;
}

static int on_value_label(const char *set, readstat_value_t value, const char *label, void *ctx) {
  sctx *c = ctx;
  if (readstat_value_type_class(value) != READSTAT_TYPE_CLASS_NUMERIC) return READSTAT_HANDLER_OK;
  if (readstat_value_is_tagged_missing(value) || readstat_value_is_system_missing(value))
    return READSTAT_HANDLER_OK;  /* labels of missing codes: the cells are missing anyway */
  if (c->nlab == c->caplab) {
    size_t cap = c->caplab ? 2 * c->caplab : 32;
    vlabel *l = realloc(c->labels, cap * sizeof *l);
    if (l == NULL) return oom(c, "the value labels");
    c->labels = l;
    c->caplab = cap;
  }
  vlabel *l = &c->labels[c->nlab];
  l->set = strdup(set ? set : "");
  l->label = strdup(label ? label : "");
  l->value = readstat_double_value(value);
  if (l->set == NULL || l->label == NULL) {
    free(l->set);
    free(l->label);
    return oom(c, "the value labels");
  }
  c->nlab++;
  return READSTAT_HANDLER_OK;
}

static void ctx_free(sctx *c) {
  for (size_t j = 0; j < c->nvar; j++) {
    svar *v = &c->vars[j];
    free(v->name);
    free(v->label);
    free(v->labelset);
    sp_mem_free(v->num);
    sp_mem_free(v->code);
    sp_strdict_free(&v->d);
  }
  free(c->vars);
  for (size_t i = 0; i < c->nlab; i++) { free(c->labels[i].set); free(c->labels[i].label); }
  free(c->labels);
}

/* ---- building the frame ------------------------------------------------------------ */

/* Stata dates count from 1 January 1960: %td in days, %tw/%tm/%tq/%th in
   weeks, months, quarters, half-years, %ty in calendar years, %tc in
   milliseconds.  The counts of %td to %ty are already periods one step
   apart, which lags and differences need.  Two cases are not:

   - %tc milliseconds (what pandas writes for a datetime column) at whole
     days become %td days;
   - days that all fall on the same day of the year, in at least two years
     (yearly data stamped on 1 January or 31 December), become the calendar
     year, the step a lag of yearly data needs; a single date (an event
     date) stays a day.

   Other values (times within a day, %tC with leap seconds) are left as they
   are. */
#define MS_PER_DAY 86400000.0

/* The civil date of day d counted from 1960-01-01 (Hinnant's algorithm). */
static void civil_from_1960(double d, long *year, int *month, int *day) {
  long z = (long)d - 3653 + 719468;  /* 1960-01-01 is 3653 days before 1970-01-01 */
  long era = (z >= 0 ? z : z - 146096) / 146097;
  long doe = z - era * 146097;
  long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  long mp = (5 * doy + 2) / 153;
  *day = (int)(doy - (153 * mp + 2) / 5 + 1);
  *month = (int)(mp < 10 ? mp + 3 : mp - 9);
  *year = yoe + era * 400 + (*month <= 2);
}

static void stata_periods(svar *v, size_t nrow) {
  double *x = v->num;
  int days = v->stata_time == 'd';
  /* |x| below 1e15 ms (about 31,000 years) keeps the day counts exact integers */
  if (v->stata_time == 'c') {
    days = 1;
    for (size_t r = 0; r < nrow && days; r++)
      days = isnan(x[r]) || (fabs(x[r]) < 1e15 && fmod(x[r], MS_PER_DAY) == 0);
    if (days)
      for (size_t r = 0; r < nrow; r++) x[r] /= MS_PER_DAY;
  }
  if (!days) return;
  int month = 0, day = 0, seen = 0, years = 0;
  long first = 0;
  for (size_t r = 0; r < nrow; r++) {
    if (isnan(x[r])) continue;
    long y;
    int m, dd;
    if (fabs(x[r]) >= 1e9 || x[r] != floor(x[r])) return;  /* not a day count */
    civil_from_1960(x[r], &y, &m, &dd);
    if (!seen) { month = m; day = dd; first = y; seen = 1; }
    else if (m != month || dd != day) return;
    if (y != first) years = 1;
  }
  for (size_t r = 0; years && r < nrow; r++) {
    if (isnan(x[r])) continue;
    long y;
    int m, dd;
    civil_from_1960(x[r], &y, &m, &dd);
    x[r] = (double)y;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* A numeric variable with value labels becomes categorical: the distinct
   values (labelled ones and observed ones) sorted, each named by its label or
   its number; values sharing a label share a level. */
static int labelled_column(sctx *c, svar *v, size_t nrow, sp_frame *fr) {
  sp_error *err = c->err;
  size_t nv = 0;
  for (size_t i = 0; i < c->nlab; i++) nv += strcmp(c->labels[i].set, v->labelset) == 0;
  for (size_t r = 0; r < nrow; r++) nv += !isnan(v->num[r]);
  double *vals = malloc((nv ? nv : 1) * sizeof *vals);
  int32_t *lvl = malloc((nv ? nv : 1) * sizeof *lvl);
  int32_t *codes = sp_mem_alloc(nrow * sizeof *codes);
  sp_strdict d;
  memset(&d, 0, sizeof d);
  int st = SP_OK;
  if (vals == NULL || lvl == NULL || codes == NULL) {
    st = sp_error_set(err, SP_ENOMEM, "out of memory reading variable '%s'", v->name);
    goto done;
  }
  size_t k = 0;
  for (size_t i = 0; i < c->nlab; i++)
    if (strcmp(c->labels[i].set, v->labelset) == 0) vals[k++] = c->labels[i].value;
  for (size_t r = 0; r < nrow; r++)
    if (!isnan(v->num[r])) vals[k++] = v->num[r];
  qsort(vals, k, sizeof *vals, cmp_double);
  size_t u = 0;
  for (size_t i = 0; i < k; i++)
    if (u == 0 || vals[i] != vals[u - 1]) vals[u++] = vals[i];
  for (size_t i = 0; i < u; i++) {
    const char *text = NULL;
    char buf[40];
    for (size_t l = 0; l < c->nlab && text == NULL; l++)
      if (c->labels[l].value == vals[i] && strcmp(c->labels[l].set, v->labelset) == 0)
        text = c->labels[l].label;
    if (text == NULL) { snprintf(buf, sizeof buf, "%.15g", vals[i]); text = buf; }
    if ((lvl[i] = sp_strdict_intern(&d, text, strlen(text))) < 0) {
      st = sp_error_set(err, SP_ENOMEM, "out of memory reading variable '%s'", v->name);
      goto done;
    }
  }
  for (size_t r = 0; r < nrow; r++) {
    double x = v->num[r];
    if (isnan(x)) { codes[r] = -1; continue; }
    const double *hit = bsearch(&x, vals, u, sizeof *vals, cmp_double);
    codes[r] = lvl[hit - vals];
  }
  st = sp_frame_add_categorical(fr, v->name, codes, d.lv, d.n, err);
  codes = NULL;
  d.lv = NULL;
  d.n = 0;
done:
  free(vals);
  free(lvl);
  sp_mem_free(codes);
  sp_strdict_free(&d);
  return st;
}

static int build(sctx *c, sp_frame **out) {
  sp_error *err = c->err;
  size_t nrow = c->nrow;
  sp_frame *fr = sp_frame_new(nrow, err);
  if (fr == NULL) return SP_ENOMEM;
  for (size_t j = 0; j < c->nvar; j++) {
    svar *v = &c->vars[j];
    int st;
    if (!ensure_rows(c, v, nrow)) { sp_frame_free(fr); return sp_error_set(err, SP_ENOMEM, "out of memory"); }
    if (sp_frame_find(fr, v->name) >= 0) {
      sp_frame_free(fr);
      sp_error_set(err, SP_EDUP, "the file has two variables named '%s'", v->name);
      sp_error_var(err, v->name);
      return SP_EDUP;
    }
    int labelled = 0;
    for (size_t i = 0; !v->is_string && v->labelset && i < c->nlab && !labelled; i++)
      labelled = strcmp(c->labels[i].set, v->labelset) == 0;
    if (v->is_string) {
      st = sp_frame_add_categorical(fr, v->name, v->code, v->d.lv, v->d.n, err);
      v->code = NULL;
      v->d.lv = NULL;
      v->d.n = 0;
    } else if (labelled) {
      st = labelled_column(c, v, nrow, fr);
    } else {
      if (v->stata_time) stata_periods(v, nrow);
      st = sp_frame_add_numeric(fr, v->name, v->num, err);
      v->num = NULL;
    }
    if (st == SP_OK && v->label != NULL) st = sp_column_set_label(&fr->cols[fr->ncol - 1], v->label, err);
    if (st != SP_OK) { sp_frame_free(fr); return st; }
  }
  *out = fr;
  return SP_OK;
}

/* ---- dispatch ---------------------------------------------------------------------- */

typedef readstat_error_t (*parse_fn)(readstat_parser_t *, const char *, void *);

static const char *extension(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(path, '.');
  return (dot == NULL || (slash != NULL && dot < slash)) ? NULL : dot + 1;
}

static parse_fn parser_for(const char *path, const char **kind) {
  static const struct { const char *ext, *kind; parse_fn fn; } formats[] = {
    {"dta", "Stata", readstat_parse_dta},
    {"sav", "SPSS", readstat_parse_sav},
    {"zsav", "SPSS", readstat_parse_sav},
    {"por", "SPSS portable", readstat_parse_por},
    {"sas7bdat", "SAS", readstat_parse_sas7bdat},
    {"xpt", "SAS transport", readstat_parse_xport},
  };
  const char *ext = extension(path);
  for (size_t i = 0; ext != NULL && i < sizeof formats / sizeof formats[0]; i++)
    if (strcasecmp(ext, formats[i].ext) == 0) {
      if (kind != NULL) *kind = formats[i].kind;
      return formats[i].fn;
    }
  return NULL;
}

int sp_stat_supported(const char *path) { return parser_for(path, NULL) != NULL; }

/* ---- input handlers ------------------------------------------------------------- */

static int in_open(const char *path, void *io) {
  sinput *in = io;
  if (in->buf != NULL) {
    in->pos = 0;
    in->size = (off_t)in->len;
    return 0;
  }
  in->fd = sp_file_open(path, "a Stata, SPSS or SAS data file", &in->size, in->err);
  if (in->fd < 0) in->st = SP_EIO;
  return in->fd;
}

static int in_close(void *io) {
  sinput *in = io;
  if (in->fd >= 0) close(in->fd);
  in->fd = -1;
  return 0;
}

static readstat_off_t in_seek(readstat_off_t off, readstat_io_flags_t whence, void *io) {
  sinput *in = io;
  int w = whence == READSTAT_SEEK_SET ? SEEK_SET : whence == READSTAT_SEEK_CUR ? SEEK_CUR : SEEK_END;
  if (in->buf == NULL) return lseek(in->fd, off, w);
  readstat_off_t base = w == SEEK_SET ? 0 : w == SEEK_CUR ? in->pos : (readstat_off_t)in->len;
  if ((off < 0 && -off > base) || (off > 0 && off > (readstat_off_t)in->len - base)) return -1;
  in->pos = base + off;
  return in->pos;
}

static ssize_t in_read(void *dst, size_t n, void *io) {
  sinput *in = io;
  if (in->buf == NULL) {
    ssize_t r;
    do r = read(in->fd, dst, n); while (r < 0 && errno == EINTR);
    return r;
  }
  size_t left = in->len - (size_t)in->pos;
  if (n > left) n = left;
  if (n > 0) memcpy(dst, in->buf + in->pos, n);  /* ReadStat asks for 0 bytes into NULL */
  in->pos += (readstat_off_t)n;
  return (ssize_t)n;
}

static readstat_error_t in_update(long size, readstat_progress_handler progress, void *user, void *io) {
  (void)size; (void)progress; (void)user; (void)io;
  return READSTAT_OK;  /* no progress reports */
}

/* Parse from c->in (a file at path, or a buffer named path) into *out. */
static int read_stat(sctx *c, const char *path, sp_frame **out) {
  sp_error *err = c->err;
  *out = NULL;
  const char *kind = "";
  parse_fn parse = parser_for(path, &kind);
  if (parse == NULL) {
    const char *ext = extension(path);
    sp_error_set(err, SP_EVALUE,
                 "cannot read '%s': unsupported extension '%s%s' (expected .dta, .sav, .zsav, .por, "
                 ".sas7bdat or .xpt)", path, ext ? "." : "", ext ? ext : "(none)");
    sp_error_at(err, path, 0, 0);
    return SP_EVALUE;
  }
  /* Until the metadata gives a .dta's release, assume its narrowest
     label-name entry (9 bytes); other formats terminate their names. */
  c->in.stata = parse == readstat_parse_dta;
  c->labelset_max = c->in.stata ? 9 : (size_t)-1;
  readstat_parser_t *p = readstat_parser_init();
  if (p == NULL) return sp_error_set(err, SP_ENOMEM, "out of memory starting the ReadStat parser");
  readstat_set_metadata_handler(p, on_metadata);
  readstat_set_variable_handler(p, on_variable);
  readstat_set_value_handler(p, on_value);
  readstat_set_value_label_handler(p, on_value_label);
  readstat_set_open_handler(p, in_open);
  readstat_set_close_handler(p, in_close);
  readstat_set_seek_handler(p, in_seek);
  readstat_set_read_handler(p, in_read);
  readstat_set_update_handler(p, in_update);
  readstat_set_io_ctx(p, &c->in);
  readstat_error_t rs = parse(p, path, c);
  in_close(&c->in);  /* ReadStat does not close after every failure */
  readstat_parser_free(p);
  int st = c->in.st != SP_OK ? c->in.st : c->st;
  if (st == SP_OK && rs != READSTAT_OK) {
    st = sp_error_set(err, rs == READSTAT_ERROR_OPEN || rs == READSTAT_ERROR_READ ? SP_EIO : SP_EPARSE,
                      "cannot read '%s' as a %s file: %s", path, kind, readstat_error_message(rs));
  }
  if (st == SP_OK) st = build(c, out);
  if (st != SP_OK) sp_error_at(err, path, 0, 0);
  ctx_free(c);
  return st;
}

int sp_frame_read_stat(const char *path, sp_frame **out, sp_error *err) {
  sctx c;
  memset(&c, 0, sizeof c);
  c.err = err;
  c.in.fd = -1;
  c.in.err = err;
  return read_stat(&c, path, out);
}

int sp_frame_read_stat_buffer(const void *buf, size_t len, const char *name, sp_frame **out, sp_error *err) {
  static const unsigned char empty[1];
  sctx c;
  memset(&c, 0, sizeof c);
  c.err = err;
  c.in.fd = -1;
  c.in.err = err;
  c.in.buf = len > 0 ? buf : empty;  /* buf != NULL marks a buffer input */
  c.in.len = len;
  return read_stat(&c, name, out);
}
