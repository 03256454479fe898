/*
** design.c: from a frame and a parsed formula to y, X, fixed-effect codes and
** instruments (see design.h).
**
** Terms are evaluated column-wise over the whole frame into buffers (a plain
** variable is read in place, not copied), so each function costs one tight
** loop; lags need the whole frame because the previous period of a used row
** may itself be unused.  Rows are then chosen once, by one pass over each
** variable that also learns the range of its values, so that a factor of
** integers in a small range (ids, periods) is recoded over the chosen rows in
** one more pass.  The fill copies with one pass over the rows for the common
** all-numeric case.  With opt->threads = 2 the passes over the rows (mask,
** coding, fill) run in two fixed chunks on two threads (team.h): each chunk
** does the same work either way, so the results are the same bits.
*/
#define _GNU_SOURCE /* pthread_barrier_t (team.h) */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PASS 1 /* stats_avx2, chosen at run time where the CPU has AVX2 */
#endif

#include "spillover/design.h"
#include "spillover/mem.h"
#include "spillover/panel.h"
#include "team.h"

/* One output column: num (indexed by frame row) times the dummy
   (code[i] == level, indexed by used row); NULL parts are 1. */
typedef struct {
  const double *num;
  const int32_t *code;
  int32_t level;
  int framecol;                /* num is a column of the frame planned on, read in place */
  unsigned long long serial;   /* that column's serial then (frame.h) */
} dcol;

/* Frame row of used row i: rows is NULL when every row is used. */
static inline size_t row_at(const size_t *rows, size_t i) { return rows ? rows[i] : i; }

/* Rows of a block to fill from columns, cut into the team's chunks. */
typedef struct {
  const size_t *rows;
  size_t n;
  double *out;
  size_t tda;
  const dcol *cols;
  size_t k;
} fill_job;

static void fill_chunk(void *vj, int k);

struct sp_design_src {
  dcol *cols[4];          /* y, X, endog, inst */
  size_t ncols[4];
  double **bufs;          /* evaluated columns (nrow each, sp_mem), owned */
  size_t nbufs, capbufs;
  int32_t **cbufs;        /* dense factor codes (n each, sp_mem), owned */
  size_t ncbufs, capcbufs;
  int detached;
  int threads;            /* sp_design_options.threads, for the fill */
};

enum { R_Y = 0, R_X = 1, R_ENDOG = 2, R_INST = 3 };
enum { M_MISSING = 1, M_DERIVED = 2 };

void sp_design_options_init(sp_design_options *opt) {
  opt->extra = NULL;
  opt->nextra = 0;
  opt->intercept = -1;
  opt->threads = 1;
}

/* {====================================================================
** Small helpers
** ===================================================================== */

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static char *str_printf(const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 1, 2)))
#endif
  ;
static char *str_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (s == NULL) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* Grow *arr (of elements of size sz) to hold at least need; 0 on failure. */
static int grow(void **arr, size_t *cap, size_t need, size_t sz) {
  if (need <= *cap) return 1;
  size_t c = *cap ? *cap : 8;
  while (c < need) c *= 2;
  void *p = realloc(*arr, c * sz);
  if (p == NULL) return 0;
  *arr = p;
  *cap = c;
  return 1;
}

static void free_strings(char **s, size_t n) {
  if (s == NULL) return;
  for (size_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

/* The shortest "%g" form that reads back as the same number. */
static void format_number(double v, char *buf, size_t size) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) return;
  }
}

/* }==================================================================== */

/* {====================================================================
** Plan context
** ===================================================================== */

typedef struct {
  const char *label;
  const double *v;
} cached;

/* A term before the rows are known: a numeric part and/or a factor. */
typedef struct {
  int role;
  const sp_fnode *node;
  const double *num;        /* numeric part (frame rows), or NULL */
  sp_column *factor;        /* the categorical part, or NULL */
  const char *fname;        /* its variable name */
  char *prefix, *suffix;    /* labels around the factor in an interaction ("" if none) */
  const char *ref;          /* i(f, ref =) */
  int drop_first;           /* i(f) without a slope drops its reference level */
} pterm;

typedef struct {
  const sp_frame *f;
  const sp_formula *fm;
  sp_error *err;
  sp_design *d;
  cached *cache;
  size_t ncache, capcache;
  pterm *terms;
  size_t nterms, capterms;
  char **notes;
  size_t capnotes;
  struct scanvar *scan;  /* the variables of the missing mask */
  size_t nscan, capscan;
  sp_team team;          /* opt->threads: the row passes in two chunks */
} ctx;

static int oom(ctx *c) { return sp_error_set(c->err, SP_ENOMEM, "out of memory building the design"); }

static int add_note(ctx *c, char *note) {
  sp_design *d = c->d;
  if (note == NULL || !grow((void **)&d->notes, &c->capnotes, d->nnotes + 1, sizeof *d->notes)) {
    free(note);
    return oom(c);
  }
  d->notes[d->nnotes++] = note;
  return SP_OK;
}

static double *new_buf(ctx *c) {
  struct sp_design_src *s = c->d->src;
  if (!grow((void **)&s->bufs, &s->capbufs, s->nbufs + 1, sizeof *s->bufs)) return NULL;
  double *b = sp_mem_doubles(c->f->nrow);
  if (b != NULL) s->bufs[s->nbufs++] = b;
  return b;
}

static int32_t *new_cbuf(ctx *c, size_t n) {
  struct sp_design_src *s = c->d->src;
  if (!grow((void **)&s->cbufs, &s->capcbufs, s->ncbufs + 1, sizeof *s->cbufs)) return NULL;
  int32_t *b = sp_mem_alloc(n * sizeof *b);
  if (b != NULL) s->cbufs[s->ncbufs++] = b;
  return b;
}

/* }==================================================================== */

/* {====================================================================
** Checks (before any heavy work, so mistakes are reported at once)
** ===================================================================== */

static int unknown_var(ctx *c, const sp_fnode *n, const char *name) {
  long j = sp_frame_closest(c->f, name);
  int st;
  if (j >= 0)
    st = sp_formula_error(c->fm, n, c->err, SP_ENOTFOUND, "unknown variable '%s'; did you mean '%s'?",
                          name, c->f->cols[j].name);
  else
    st = sp_formula_error(c->fm, n, c->err, SP_ENOTFOUND, "unknown variable '%s' (not a column of the frame)", name);
  sp_error_var(c->err, name);
  return st;
}

static const sp_column *lookup(ctx *c, const sp_fnode *n) {
  const sp_column *col = sp_frame_column(c->f, n->name);
  if (col == NULL) unknown_var(c, n, n->name);
  return col;
}

static int not_numeric(ctx *c, const sp_fnode *n) {
  int st = sp_formula_error(c->fm, n, c->err, SP_EVALUE,
                            "'%s' is categorical but a number is needed here; use i(%s) for dummies "
                            "or %s:x for one slope per level",
                            n->name, n->name, n->name);
  sp_error_var(c->err, n->name);
  return st;
}

/* numeric: the node must give numbers (a categorical variable is an error). */
static int check_node(ctx *c, const sp_fnode *n, int numeric) {
  switch (n->kind) {
    case SP_FN_VAR: {
      const sp_column *col = lookup(c, n);
      if (col == NULL) return c->err ? c->err->code : SP_ENOTFOUND;
      if (numeric && col->type != SP_NUMERIC) return not_numeric(c, n);
      return SP_OK;
    }
    case SP_FN_SHIFT:
    case SP_FN_DIFF:
      if (c->f->panel == NULL)
        return sp_formula_error(c->fm, n, c->err, SP_EVALUE,
                                "%s needs a panel: call d:panel{entity=, time=}", n->label);
      if (c->f->panel->n != c->f->nrow)
        return sp_formula_error(c->fm, n, c->err, SP_EVALUE,
                                "%s: the panel index covers %zu rows but the frame has %zu; rebuild it with d:panel{}",
                                n->label, c->f->panel->n, c->f->nrow);
      return check_node(c, n->kids[0], 1);
    case SP_FN_INTERACT: {
      const sp_fnode *fac = NULL;
      for (size_t i = 0; i < n->nkids; i++) {
        const sp_fnode *k = n->kids[i];
        if (k->kind == SP_FN_VAR) {
          const sp_column *col = lookup(c, k);
          if (col == NULL) return c->err ? c->err->code : SP_ENOTFOUND;
          if (col->type == SP_CATEGORICAL) {
            if (fac != NULL)
              return sp_formula_error(c->fm, k, c->err, SP_EVALUE,
                                      "an interaction of two categorical variables ('%s' and '%s') is not supported",
                                      fac->name, k->name);
            fac = k;
          }
        } else {
          int st = check_node(c, k, 1);
          if (st != SP_OK) return st;
        }
      }
      return SP_OK;
    }
    case SP_FN_FACTOR: {
      const sp_column *col = lookup(c, n->kids[0]);
      if (col == NULL) return c->err ? c->err->code : SP_ENOTFOUND;
      return n->nkids == 2 ? check_node(c, n->kids[1], 1) : SP_OK;
    }
    case SP_FN_COMBINE:
      for (size_t i = 0; i < n->nkids; i++)
        if (lookup(c, n->kids[i]) == NULL) return c->err ? c->err->code : SP_ENOTFOUND;
      return SP_OK;
    default:
      for (size_t i = 0; i < n->nkids; i++) {
        int st = check_node(c, n->kids[i], 1);
        if (st != SP_OK) return st;
      }
      return SP_OK;
  }
}

/* }==================================================================== */

/* {====================================================================
** Numeric evaluation (whole frame)
** ===================================================================== */

static const double *eval(ctx *c, const sp_fnode *n);

/* A constant operand (a number, possibly negated or in parentheses). */
static int constant(const sp_fnode *n, double *v) {
  if (n->kind == SP_FN_NUM) { *v = n->num; return 1; }
  if (n->kind == SP_FN_PAREN) return constant(n->kids[0], v);
  if (n->kind == SP_FN_OP && n->nkids == 1 && constant(n->kids[0], v)) { *v = -*v; return 1; }
  return 0;
}

static int note_count(ctx *c, const sp_fnode *n, size_t count, const char *what) {
  if (count == 0) return SP_OK;
  return add_note(c, str_printf("%s: %zu %s value%s set to missing", n->label, count, what,
                                count == 1 ? "" : "s"));
}

static const double *eval_func(ctx *c, const sp_fnode *n) {
  const double *x = eval(c, n->kids[0]);
  if (x == NULL) return NULL;
  double *out = new_buf(c);
  if (out == NULL) { oom(c); return NULL; }
  size_t N = c->f->nrow, bad = 0;
  const char *fn = n->name, *what = "";
  if (strcmp(fn, "log") == 0) {
    for (size_t r = 0; r < N; r++) {
      double v = x[r];
      bad += v <= 0;
      out[r] = v > 0 ? log(v) : NAN;
    }
    what = "non-positive";
  } else if (strcmp(fn, "sqrt") == 0) {
    for (size_t r = 0; r < N; r++) {
      double v = x[r];
      bad += v < 0;
      out[r] = v >= 0 ? sqrt(v) : NAN;
    }
    what = "negative";
  } else if (strcmp(fn, "exp") == 0) {
    for (size_t r = 0; r < N; r++) {
      out[r] = exp(x[r]);
      bad += isinf(out[r]) && isfinite(x[r]);
    }
    what = "overflowing";
  } else if (strcmp(fn, "asinh") == 0) {
    /* Defined on every real, zero and negatives included: the reason to use it. */
    for (size_t r = 0; r < N; r++) out[r] = asinh(x[r]);
  } else {
    for (size_t r = 0; r < N; r++) out[r] = fabs(x[r]);
  }
  return note_count(c, n, bad, what) == SP_OK ? out : NULL;
}

static const double *eval_op(ctx *c, const sp_fnode *n) {
  size_t N = c->f->nrow, bad = 0;
  double *out;
  if (n->nkids == 1) {
    const double *x = eval(c, n->kids[0]);
    if (x == NULL || (out = new_buf(c)) == NULL) { if (x) oom(c); return NULL; }
    for (size_t r = 0; r < N; r++) out[r] = -x[r];
    return out;
  }
  double ca = 0, cb = 0;
  int sa = constant(n->kids[0], &ca), sb = constant(n->kids[1], &cb);
  const double *a = sa ? NULL : eval(c, n->kids[0]);
  if (!sa && a == NULL) return NULL;
  const double *b = sb ? NULL : eval(c, n->kids[1]);
  if (!sb && b == NULL) return NULL;
  if ((out = new_buf(c)) == NULL) { oom(c); return NULL; }
  /* One loop per operator and operand shape; the constant cases are the
     usual ones (I(x^2), I(x/1000)). */
#define LOOP(EXPR)                                                       \
  do {                                                                   \
    if (!sa && !sb) for (size_t r = 0; r < N; r++) { double u = a[r], v = b[r]; (void)v; out[r] = (EXPR); } \
    else if (sa && !sb) for (size_t r = 0; r < N; r++) { double u = ca, v = b[r]; (void)v; out[r] = (EXPR); } \
    else if (!sa && sb) for (size_t r = 0; r < N; r++) { double u = a[r], v = cb; (void)v; out[r] = (EXPR); } \
    else for (size_t r = 0; r < N; r++) { double u = ca, v = cb; (void)v; out[r] = (EXPR); } \
  } while (0)
  switch (n->op) {
    case '+': LOOP(u + v); break;
    case '-': LOOP(u - v); break;
    case '*': LOOP(u * v); break;
    case '/': LOOP(u / v); break;
    default:
      if (sb && cb == 2) LOOP(u * u);
      else LOOP(pow(u, v));
      break;
  }
#undef LOOP
  for (size_t r = 0; r < N; r++) {
    double u = sa ? ca : a[r], v = sb ? cb : b[r];
    bad += !isfinite(out[r]) && isfinite(u) && isfinite(v);
  }
  return note_count(c, n, bad, "non-finite (division by zero, overflow or a power out of domain)") == SP_OK
             ? out : NULL;
}

static const double *eval_shift(ctx *c, const sp_fnode *n) {
  const double *x = eval(c, n->kids[0]);
  if (x == NULL) return NULL;
  double *out = new_buf(c);
  if (out == NULL) { oom(c); return NULL; }
  long k = n->kind == SP_FN_SHIFT && n->name[0] == 'f' ? -n->k : n->k;
  sp_error e;
  sp_error_clear(&e);
  if (sp_panel_shift(c->f->panel, x, k, out, &e) != SP_OK) {
    sp_formula_error(c->fm, n, c->err, e.code, "%s: %s", n->label, e.msg);
    return NULL;
  }
  if (n->kind == SP_FN_DIFF)
    for (size_t r = 0; r < c->f->nrow; r++) out[r] = x[r] - out[r];
  return out;
}

static const double *eval(ctx *c, const sp_fnode *n) {
  if (n->kind == SP_FN_VAR) return sp_frame_column(c->f, n->name)->num;  /* checked */
  if (n->kind == SP_FN_PAREN || n->kind == SP_FN_I) return eval(c, n->kids[0]);
  for (size_t i = 0; i < c->ncache; i++)
    if (strcmp(c->cache[i].label, n->label) == 0) return c->cache[i].v;
  const double *v = NULL;
  switch (n->kind) {
    case SP_FN_NUM: {
      double *out = new_buf(c);
      if (out == NULL) { oom(c); return NULL; }
      for (size_t r = 0; r < c->f->nrow; r++) out[r] = n->num;
      v = out;
      break;
    }
    case SP_FN_FUNC: v = eval_func(c, n); break;
    case SP_FN_OP: v = eval_op(c, n); break;
    case SP_FN_SHIFT:
    case SP_FN_DIFF: v = eval_shift(c, n); break;
    case SP_FN_INTERACT: {  /* all-numeric interaction: the product */
      double *out = new_buf(c);
      if (out == NULL) { oom(c); return NULL; }
      const double *a = eval(c, n->kids[0]);
      if (a == NULL) return NULL;
      memcpy(out, a, c->f->nrow * sizeof *out);
      for (size_t i = 1; i < n->nkids; i++) {
        const double *b = eval(c, n->kids[i]);
        if (b == NULL) return NULL;
        for (size_t r = 0; r < c->f->nrow; r++) out[r] *= b[r];
      }
      v = out;
      break;
    }
    default:
      sp_formula_error(c->fm, n, c->err, SP_EVALUE, "'%s' cannot be used as a number", n->label);
      return NULL;
  }
  if (v == NULL) return NULL;
  if (!grow((void **)&c->cache, &c->capcache, c->ncache + 1, sizeof *c->cache)) { oom(c); return NULL; }
  c->cache[c->ncache].label = n->label;
  c->cache[c->ncache++].v = v;
  return v;
}

/* }==================================================================== */

/* {====================================================================
** Terms
** ===================================================================== */

static char *join_labels(sp_fnode **kids, size_t from, size_t to) {
  size_t len = 1;
  for (size_t i = from; i < to; i++) len += strlen(kids[i]->label) + 1;
  char *s = malloc(len);
  if (s == NULL) return NULL;
  s[0] = '\0';
  for (size_t i = from; i < to; i++) {
    if (i > from) strcat(s, ":");
    strcat(s, kids[i]->label);
  }
  return s;
}

static int add_term(ctx *c, int role, const sp_fnode *n) {
  if (!grow((void **)&c->terms, &c->capterms, c->nterms + 1, sizeof *c->terms)) return oom(c);
  pterm *t = &c->terms[c->nterms];
  memset(t, 0, sizeof *t);
  t->role = role;
  t->node = n;
  if (n->kind == SP_FN_FACTOR) {
    t->factor = sp_frame_column(c->f, n->kids[0]->name);
    t->fname = n->kids[0]->name;
    t->ref = n->ref;
    t->drop_first = n->nkids == 1 || n->ref != NULL;
    if (n->nkids == 2) {
      if ((t->num = eval(c, n->kids[1])) == NULL) return c->err ? c->err->code : SP_EVALUE;
      t->suffix = dup_str(n->kids[1]->label);
    } else {
      t->suffix = dup_str("");
    }
    t->prefix = dup_str("");
    c->nterms++;  /* counted now so the strings are freed on every path */
    return t->prefix && t->suffix ? SP_OK : oom(c);
  }
  if (n->kind == SP_FN_INTERACT) {
    size_t fi = n->nkids;
    for (size_t i = 0; i < n->nkids; i++) {
      const sp_fnode *k = n->kids[i];
      if (k->kind == SP_FN_VAR && sp_frame_column(c->f, k->name)->type == SP_CATEGORICAL) fi = i;
    }
    if (fi < n->nkids) {
      c->nterms++;
      t->factor = sp_frame_column(c->f, n->kids[fi]->name);
      t->fname = n->kids[fi]->name;
      t->prefix = join_labels(n->kids, 0, fi);
      t->suffix = join_labels(n->kids, fi + 1, n->nkids);
      if (t->prefix == NULL || t->suffix == NULL) return oom(c);
      /* The numeric part: the product of the other factors. */
      size_t nnum = n->nkids - 1;
      if (nnum == 1) {
        t->num = eval(c, n->kids[fi == 0 ? 1 : 0]);
      } else {
        double *out = new_buf(c);
        if (out == NULL) return oom(c);
        int first = 1;
        for (size_t i = 0; i < n->nkids; i++) {
          if (i == fi) continue;
          const double *b = eval(c, n->kids[i]);
          if (b == NULL) return c->err ? c->err->code : SP_EVALUE;
          if (first) memcpy(out, b, c->f->nrow * sizeof *out);
          else for (size_t r = 0; r < c->f->nrow; r++) out[r] *= b[r];
          first = 0;
        }
        t->num = out;
      }
      return t->num ? SP_OK : (c->err ? c->err->code : SP_EVALUE);
    }
  }
  c->nterms++;
  t->num = eval(c, n);
  return t->num ? SP_OK : (c->err ? c->err->code : SP_EVALUE);
}

/* }==================================================================== */

/* {====================================================================
** Row selection
** ===================================================================== */

/* Range of the finite values of a column and whether they are all
   integers: what factor coding needs, gathered in the same pass as the
   missing mask.  The integer test adds and subtracts 1.5 * 2^52, which rounds
   x to an integer when |x| < 2^51, so it gives x back exactly when x is one:
   branch-free and vectorisable where floor() is a library call (no SSE4.1
   in the baseline).  Values of 2^51 or more in magnitude make `ints` false
   and leave the column to the hash coding. */
typedef struct {
  double lo, hi;     /* INFINITY, -INFINITY when no value is finite */
  unsigned frac;     /* some finite value of magnitude < 2^51 is not an integer */
} numstat;

#define ROUNDER 6755399441055744.0 /* 1.5 * 2^52 */
#define INT_LIMIT 2251799813685248.0 /* 2^51 */

static const numstat NUMSTAT_EMPTY = {INFINITY, -INFINITY, 0};

static void numstat_merge(numstat *a, const numstat *b) {
  a->lo = b->lo < a->lo ? b->lo : a->lo;
  a->hi = b->hi > a->hi ? b->hi : a->hi;
  a->frac |= b->frac;
}

static int numstat_ints(const numstat *s) { return !s->frac && s->lo > -INT_LIMIT && s->hi < INT_LIMIT; }

/* A variable whose missing values drop rows: a frame column (numeric or
   categorical) or a derived buffer, each scanned once however often the
   formula and the extras name it. */
typedef struct scanvar {
  const double *num;           /* numeric values (frame rows), or NULL */
  const int32_t *code;         /* categorical codes (frame rows), or NULL */
  sp_column *col;              /* the frame column, whose scan cache this pass reads or fills; NULL: derived */
  uint8_t bit;                 /* M_MISSING and/or M_DERIVED */
  uint8_t skip;                /* known from col->scan to have no missing value: not read */
  uint8_t bad[SP_TEAM_CHUNKS]; /* per row chunk: some value is missing */
  numstat st[SP_TEAM_CHUNKS];  /* per row chunk, merged in chunk order */
} scanvar;

static int add_scan(ctx *c, const double *num, const int32_t *code, sp_column *col, uint8_t bit) {
  for (size_t i = 0; i < c->nscan; i++)
    if (c->scan[i].num == num && c->scan[i].code == code) {
      c->scan[i].bit |= bit;
      return SP_OK;
    }
  if (!grow((void **)&c->scan, &c->capscan, c->nscan + 1, sizeof *c->scan)) return oom(c);
  scanvar *v = &c->scan[c->nscan++];
  memset(v, 0, sizeof *v);
  v->num = num;
  v->code = code;
  v->col = col;
  v->bit = bit;
  for (int k = 0; k < SP_TEAM_CHUNKS; k++) v->st[k] = NUMSTAT_EMPTY;
  /* A column an earlier design found complete is not read again: its
     statistics are the cached ones. */
  if (col != NULL && col->scan.known && !col->scan.missing) {
    v->skip = 1;
    v->st[0] = (numstat){col->scan.lo, col->scan.hi, col->scan.frac};
  }
  return SP_OK;
}

static int add_scan_column(ctx *c, sp_column *col) {
  return col->type == SP_NUMERIC ? add_scan(c, col->num, NULL, col, M_MISSING)
                                 : add_scan(c, NULL, col->code, col, M_MISSING);
}

/* Keep what the pass learned about each frame column it read. */
static void cache_scans(const ctx *c) {
  for (size_t i = 0; i < c->nscan; i++) {
    const scanvar *v = &c->scan[i];
    if (v->col == NULL || v->skip) continue;
    numstat s = v->st[0];
    unsigned char bad = v->bad[0];
    for (int k = 1; k < SP_TEAM_CHUNKS; k++) {
      numstat_merge(&s, &v->st[k]);
      bad |= v->bad[k];
    }
    v->col->scan = (sp_colscan){.known = 1, .missing = bad, .frac = s.frac != 0, .lo = s.lo, .hi = s.hi};
  }
}

/* Variables read at their own row: all of them except those only seen
   through a lag or lead (a lag of x needs x one period earlier, not now). */
static int scan_direct(ctx *c, const sp_fnode *n) {
  if (n->kind == SP_FN_VAR) return add_scan_column(c, sp_frame_column(c->f, n->name));
  if (n->kind == SP_FN_SHIFT) return SP_OK;
  for (size_t i = 0; i < n->nkids; i++) {
    int st = scan_direct(c, n->kids[i]);
    if (st != SP_OK) return st;
  }
  return SP_OK;
}

/* Fold v[r0..r1) into s one value at a time, leaving the values that are
   not finite out of the range; returns whether there was one. */
static int stats_scalar(const double *v, size_t r0, size_t r1, numstat *s) {
  double lo = s->lo, hi = s->hi;
  unsigned frac = s->frac, bad = 0;
  for (size_t r = r0; r < r1; r++) {
    double x = v[r];
    int fin = x - x == 0;
    double xi = fin ? x : 0.0, xl = fin ? x : INFINITY, xh = fin ? x : -INFINITY;
    lo = xl < lo ? xl : lo;
    hi = xh > hi ? xh : hi;
    frac |= (xi + ROUNDER) - ROUNDER != xi;
    bad |= !fin;
  }
  *s = (numstat){lo, hi, frac};
  return bad != 0;
}

/* One raw value into the running range and tests, as a vector lane does:
   the rows left after a vector pass's last full step. */
static inline void fold_raw(double x, double *lo, double *hi, unsigned *frac, unsigned *bad) {
  *lo = x < *lo ? x : *lo;
  *hi = x > *hi ? x : *hi;
  *frac |= (x + ROUNDER) - ROUNDER != x;
  *bad |= x - x != 0;
}

/* The vector passes below go over the raw values, four (AVX2) or two (SSE2)
   a step (GCC 12 does not vectorise the scalar loop by itself: the selects
   and the min/max reductions), which is exact when every value is finite; a
   block with a missing value is done again by stats_scalar.  minpd / maxpd
   compute exactly the scalar `a < b ? a : b` and `a > b ? a : b`, so only the
   sign of a zero minimum or maximum can depend on the order, which neither
   the offsets (x - lo) nor the values lo + j see.  The pass is bound by its
   ten operations a step: AVX2 halves a first design's scan (5.0 -> 2.7 ms
   for 1e7 values in cache), a second SSE2 accumulator gains nothing. */
#if defined(HAVE_AVX2_PASS)
__attribute__((target("avx2"))) static int stats_avx2(const double *v, size_t r0, size_t r1, numstat *s) {
  const __m256d zero = _mm256_setzero_pd(), rnd = _mm256_set1_pd(ROUNDER);
  __m256d vlo = _mm256_set1_pd(s->lo), vhi = _mm256_set1_pd(s->hi), vfrac = zero, vbad = zero;
  size_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    __m256d x = _mm256_loadu_pd(v + r);
    vlo = _mm256_min_pd(x, vlo);
    vhi = _mm256_max_pd(x, vhi);
    vfrac = _mm256_or_pd(vfrac, _mm256_cmp_pd(_mm256_sub_pd(_mm256_add_pd(x, rnd), rnd), x, _CMP_NEQ_UQ));
    vbad = _mm256_or_pd(vbad, _mm256_cmp_pd(_mm256_sub_pd(x, x), zero, _CMP_NEQ_UQ));  /* NaN: not finite */
  }
  double l4[4], h4[4];
  _mm256_storeu_pd(l4, vlo);
  _mm256_storeu_pd(h4, vhi);
  double lo = l4[0], hi = h4[0];
  for (int k = 1; k < 4; k++) {
    lo = l4[k] < lo ? l4[k] : lo;
    hi = h4[k] > hi ? h4[k] : hi;
  }
  unsigned frac = _mm256_movemask_pd(vfrac) != 0, bad = _mm256_movemask_pd(vbad) != 0;
  for (; r < r1; r++) fold_raw(v[r], &lo, &hi, &frac, &bad);  /* up to three rows left */
  if (bad) return stats_scalar(v, r0, r1, s);
  *s = (numstat){lo, hi, s->frac | frac};
  return 0;
}
#endif

/* Fold v[r0..r1) into s: the range and integer test over the finite values.
   Returns whether some value is not finite. */
static int block_stats(const double *v, size_t r0, size_t r1, numstat *s) {
#if defined(HAVE_AVX2_PASS)
  if (__builtin_cpu_supports("avx2")) return stats_avx2(v, r0, r1, s);
#endif
#if defined(__SSE2__)
  {
    const __m128d zero = _mm_setzero_pd(), rnd = _mm_set1_pd(ROUNDER);
    __m128d vlo = _mm_set1_pd(s->lo), vhi = _mm_set1_pd(s->hi), vfrac = zero, vbad = zero;
    size_t r = r0;
    for (; r + 2 <= r1; r += 2) {
      __m128d x = _mm_loadu_pd(v + r);
      vlo = _mm_min_pd(x, vlo);
      vhi = _mm_max_pd(x, vhi);
      vfrac = _mm_or_pd(vfrac, _mm_cmpneq_pd(_mm_sub_pd(_mm_add_pd(x, rnd), rnd), x));
      vbad = _mm_or_pd(vbad, _mm_cmpneq_pd(_mm_sub_pd(x, x), zero));  /* NaN - NaN, inf - inf: NaN */
    }
    double l2[2], h2[2];
    _mm_storeu_pd(l2, vlo);
    _mm_storeu_pd(h2, vhi);
    double lo = l2[1] < l2[0] ? l2[1] : l2[0], hi = h2[1] > h2[0] ? h2[1] : h2[0];
    unsigned frac = _mm_movemask_pd(vfrac) != 0, bad = _mm_movemask_pd(vbad) != 0;
    if (r < r1) fold_raw(v[r], &lo, &hi, &frac, &bad);  /* an odd row left */
    if (!bad) {
      *s = (numstat){lo, hi, s->frac | frac};
      return 0;
    }
  }
#endif
  return stats_scalar(v, r0, r1, s);
}

typedef struct {
  ctx *c;
  uint8_t *mask;                 /* not zeroed: a chunk's part is written only when dirty */
  size_t used[SP_TEAM_CHUNKS], missing[SP_TEAM_CHUNKS];
  int dirty[SP_TEAM_CHUNKS];     /* the chunk has a missing value: its mask is all written */
} scan_job;

/* Chunk k of the rows: every variable's missing values into the mask, in
   blocks small enough that the block's mask stays in L1 across variables,
   then the block's rows counted.  A chunk's mask is zeroed from its first
   block with a missing value on, that block's earlier rows included, so
   complete data never touches it (10 MB of fresh pages at 1e7 rows, each a
   trap on our VMs). */
static void scan_chunk(void *vj, int k) {
  scan_job *j = vj;
  const ctx *c = j->c;
  enum { BLOCK = 8192 };
  size_t r0, r1, used = 0, missing = 0;
  int dirty = 0;
  sp_team_range(c->f->nrow, k, &r0, &r1);
  for (size_t b0 = r0; b0 < r1; b0 += BLOCK) {
    size_t b1 = r1 - b0 < BLOCK ? r1 : b0 + BLOCK;
    if (dirty) memset(j->mask + b0, 0, b1 - b0);
    int any = 0;  /* some row of the block is missing something */
    for (size_t i = 0; i < c->nscan; i++) {
      scanvar *v = &c->scan[i];
      if (v->skip) continue;
      if (v->num != NULL) {
        /* The mask is written only in the rare blocks with a missing value. */
        if (block_stats(v->num, b0, b1, &v->st[k])) {
          if (!dirty) memset(j->mask + r0, 0, b1 - r0);
          dirty = 1;
          any = v->bad[k] = 1;
          for (size_t r = b0; r < b1; r++) j->mask[r] |= (uint8_t)((v->num[r] - v->num[r] != 0) * v->bit);
        }
      } else {
        unsigned neg = 0;
        for (size_t r = b0; r < b1; r++) neg |= (uint32_t)v->code[r] >> 31;
        if (neg) {
          if (!dirty) memset(j->mask + r0, 0, b1 - r0);
          dirty = 1;
          any = v->bad[k] = 1;
          for (size_t r = b0; r < b1; r++) j->mask[r] |= (uint8_t)((v->code[r] < 0) * v->bit);
        }
      }
    }
    if (!any) {
      used += b1 - b0;
      continue;
    }
    for (size_t r = b0; r < b1; r++) {
      used += j->mask[r] == 0;
      missing += (j->mask[r] & M_MISSING) != 0;
    }
  }
  j->used[k] = used;
  j->missing[k] = missing;
  j->dirty[k] = dirty;
}

/* The merged statistics of a numeric frame column scanned for the mask, or
   NULL when it was not scanned. */
static const numstat *scan_stats(const ctx *c, const double *num, numstat *out) {
  for (size_t i = 0; i < c->nscan; i++)
    if (c->scan[i].num == num) {
      *out = c->scan[i].st[0];
      for (int k = 1; k < SP_TEAM_CHUNKS; k++) numstat_merge(out, &c->scan[i].st[k]);
      return out;
    }
  return NULL;
}

/* }==================================================================== */

/* {====================================================================
** Factors: dense codes over the used rows, in sorted order of the values
** ===================================================================== */

typedef struct {
  const char *s;
  int32_t code;
} strcode;

static int cmp_strcode(const void *a, const void *b) {
  return strcmp(((const strcode *)a)->s, ((const strcode *)b)->s);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* The range of the values x[rows[i]], i < n, all finite. */
static void stats_rows(const double *x, const size_t *rows, size_t n, numstat *s) {
  *s = NUMSTAT_EMPTY;
  if (rows == NULL) {
    block_stats(x, 0, n, s);
    return;
  }
  double lo = INFINITY, hi = -INFINITY;
  unsigned frac = 0;
  for (size_t i = 0; i < n; i++) {
    double v = x[row_at(rows, i)];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    frac |= (v + ROUNDER) - ROUNDER != v;
  }
  *s = (numstat){lo, hi, frac};
}

/* Integers in a range small enough to index an array directly (ids, years). */
static int small_range(const numstat *s, size_t n) {
  return numstat_ints(s) && s->hi - s->lo < 2.0 * (double)n + 1024 && s->hi - s->lo < 2e9;
}

typedef struct {
  const double *x;
  const size_t *rows;
  size_t n;
  double lo;
  int32_t *code;
  uint8_t *present[SP_TEAM_CHUNKS];  /* the same array when one thread runs both chunks; NULL: not wanted */
  const int32_t *map;                /* remap_chunk: offset -> dense code */
} code_job;

/* Chunk k: each value's offset from the minimum, and the offsets present. */
static void code_chunk(void *vj, int k) {
  const code_job *j = vj;
  size_t i0, i1;
  sp_team_range(j->n, k, &i0, &i1);
  /* Locals: a store through the uint8_t pointer may alias anything, so the
     job's fields would be reloaded every row. */
  const double *x = j->x;
  const size_t *rows = j->rows;
  double lo = j->lo;
  int32_t *code = j->code;
  uint8_t *present = j->present[k];
  /* Below 2^31 (small_range): a direct conversion, where one to size_t is
     a branch for values of 2^63 and more. */
  if (present == NULL) {  /* the offsets are known to be the codes: a conversion only */
    for (size_t i = i0; i < i1; i++) code[i] = (int32_t)(x[row_at(rows, i)] - lo);
    return;
  }
  for (size_t i = i0; i < i1; i++) {
    int32_t o = (int32_t)(x[row_at(rows, i)] - lo);
    code[i] = o;
    present[o] = 1;
  }
}

static void remap_chunk(void *vj, int k) {
  const code_job *j = vj;
  size_t i0, i1;
  sp_team_range(j->n, k, &i0, &i1);
  int32_t *code = j->code;
  const int32_t *map = j->map;
  for (size_t i = i0; i < i1; i++) code[i] = map[code[i]];
}

/* Dense codes of the numbers x[rows[i]] (x[i] when rows is NULL), i < n, all
   finite.  known: the range of a superset of these values (the whole column,
   from the mask pass), or NULL.  On success *vals (malloc) holds the nlevels
   distinct values, sorted. */
static int factor_numeric(sp_team *tm, const double *x, const size_t *rows, size_t n, const numstat *known,
                          sp_colscan *cache, int32_t *code, size_t *nlevels, double **vals) {
  *vals = NULL;
  *nlevels = 0;
  if (n == 0) return SP_OK;
  numstat s;
  if (known != NULL && small_range(known, n)) s = *known;
  else stats_rows(x, rows, n, &s);
  if (small_range(&s, n)) {
    /* One pass writes each row's offset from the minimum; when every offset
       in the range occurs (a balanced panel's ids and periods) the offsets
       are the codes, otherwise a second pass over the int32 codes ranks them. */
    size_t range = (size_t)(s.hi - s.lo) + 1;
    code_job j = {.x = x, .rows = rows, .n = n, .lo = s.lo, .code = code};
    /* A whole column an earlier design found dense (every integer of its
       range present): the offsets are the codes, no presence to track. */
    if (cache != NULL && rows == NULL && cache->dense) {
      double *v = malloc(range * sizeof *v);
      if (v == NULL) return SP_ENOMEM;
      sp_team_run(tm, code_chunk, &j);
      for (size_t o = 0; o < range; o++) v[o] = s.lo + (double)o;
      *vals = v;
      *nlevels = range;
      return SP_OK;
    }
    int two = tm->active;
    uint8_t *present = calloc(range, two ? 2 : 1);
    if (present == NULL) return SP_ENOMEM;
    for (int k = 0; k < SP_TEAM_CHUNKS; k++) j.present[k] = two ? present + (size_t)k * range : present;
    sp_team_run(tm, code_chunk, &j);
    size_t L = 0;
    for (size_t o = 0; o < range; o++) {
      if (two) present[o] |= present[range + o];
      L += present[o];
    }
    if (cache != NULL && rows == NULL && cache->known) cache->dense = L == range;
    double *v = malloc(L * sizeof *v);
    int32_t *map = L < range ? malloc(range * sizeof *map) : NULL;
    if (v == NULL || (L < range && map == NULL)) { free(v); free(present); return SP_ENOMEM; }
    for (size_t o = 0, l = 0; o < range; o++)
      if (present[o]) {
        v[l] = s.lo + (double)o;
        if (map != NULL) map[o] = (int32_t)l;
        l++;
      }
    if (map != NULL) {
      j.map = map;
      sp_team_run(tm, remap_chunk, &j);
      free(map);
    }
    free(present);
    *vals = v;
    *nlevels = L;
    return SP_OK;
  }
  /* Otherwise an open-addressing hash of the values, then a sort of the
     distinct values only. */
  size_t cap = 1024, nu = 0, capu = 256;
  double *keys = malloc(cap * sizeof *keys);
  int32_t *ids = malloc(cap * sizeof *ids);
  double *uniq = malloc(capu * sizeof *uniq);
  if (keys == NULL || ids == NULL || uniq == NULL) { free(keys); free(ids); free(uniq); return SP_ENOMEM; }
  for (size_t j = 0; j < cap; j++) ids[j] = -1;
  for (size_t i = 0; i < n; i++) {
    double v = x[row_at(rows, i)];
    if (v == 0) v = 0;  /* -0 and 0 are one level */
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    size_t h = (size_t)mix64(bits) & (cap - 1);
    while (ids[h] >= 0 && keys[h] != v) h = (h + 1) & (cap - 1);
    if (ids[h] < 0) {
      if (nu == capu) {
        double *u = realloc(uniq, 2 * capu * sizeof *u);
        if (u == NULL) { free(keys); free(ids); free(uniq); return SP_ENOMEM; }
        uniq = u;
        capu *= 2;
      }
      keys[h] = v;
      ids[h] = (int32_t)nu;
      uniq[nu++] = v;
      if (2 * nu > cap) {  /* rehash into twice the table */
        size_t ncap = 2 * cap;
        double *nk = malloc(ncap * sizeof *nk);
        int32_t *ni = malloc(ncap * sizeof *ni);
        if (nk == NULL || ni == NULL) { free(nk); free(ni); free(keys); free(ids); free(uniq); return SP_ENOMEM; }
        for (size_t j = 0; j < ncap; j++) ni[j] = -1;
        for (size_t j = 0; j < cap; j++) {
          if (ids[j] < 0) continue;
          uint64_t b2;
          memcpy(&b2, &keys[j], sizeof b2);
          size_t h2 = (size_t)mix64(b2) & (ncap - 1);
          while (ni[h2] >= 0) h2 = (h2 + 1) & (ncap - 1);
          nk[h2] = keys[j];
          ni[h2] = ids[j];
        }
        free(keys);
        free(ids);
        keys = nk;
        ids = ni;
        cap = ncap;
        code[i] = (int32_t)(nu - 1);
        continue;
      }
    }
    code[i] = ids[h];
  }
  free(keys);
  free(ids);
  /* rank[id]: position of value id in sorted order. */
  double *sorted = malloc(nu * sizeof *sorted);
  int32_t *rank = malloc(nu * sizeof *rank);
  if (sorted == NULL || rank == NULL) { free(sorted); free(rank); free(uniq); return SP_ENOMEM; }
  memcpy(sorted, uniq, nu * sizeof *sorted);
  qsort(sorted, nu, sizeof *sorted, cmp_double);
  for (size_t j = 0; j < nu; j++) {
    double *p = bsearch(&uniq[j], sorted, nu, sizeof *sorted, cmp_double);
    rank[j] = (int32_t)(p - sorted);
  }
  for (size_t i = 0; i < n; i++) code[i] = rank[code[i]];
  free(rank);
  free(uniq);
  *vals = sorted;
  *nlevels = nu;
  return SP_OK;
}

/* Dense codes of a column over the used rows.  For labels: *vals (numeric)
   or *orig (categorical: original level index per dense code), malloc'd. */
static int factor_column(ctx *c, sp_column *col, int32_t *code, size_t *nlevels, double **vals,
                         int32_t **orig) {
  const size_t *rows = c->d->rows;
  size_t n = c->d->n;
  *vals = NULL;
  *orig = NULL;
  if (col->type == SP_NUMERIC) {
    numstat known;
    /* The column's scan cache also keeps whether its values are dense. */
    return factor_numeric(&c->team, col->num, rows, n, scan_stats(c, col->num, &known), &col->scan, code, nlevels,
                          vals);
  }
  size_t L0 = col->nlevels;
  int32_t *map = malloc((L0 ? L0 : 1) * sizeof *map);
  strcode *sc = malloc((L0 ? L0 : 1) * sizeof *sc);
  if (map == NULL || sc == NULL) { free(map); free(sc); return SP_ENOMEM; }
  for (size_t j = 0; j < L0; j++) map[j] = -1;
  for (size_t i = 0; i < n; i++) map[col->code[row_at(rows, i)]] = 0;
  size_t L = 0;
  for (size_t j = 0; j < L0; j++)
    if (map[j] == 0) { sc[L].s = col->levels[j]; sc[L].code = (int32_t)j; L++; }
  qsort(sc, L, sizeof *sc, cmp_strcode);
  int32_t *o = malloc((L ? L : 1) * sizeof *o);
  if (o == NULL) { free(map); free(sc); return SP_ENOMEM; }
  for (size_t j = 0; j < L; j++) { map[sc[j].code] = (int32_t)j; o[j] = sc[j].code; }
  for (size_t i = 0; i < n; i++) code[i] = map[col->code[row_at(rows, i)]];
  free(map);
  free(sc);
  *orig = o;
  *nlevels = L;
  return SP_OK;
}

static void level_label(const sp_column *col, const double *vals, const int32_t *orig, size_t l,
                        char *buf, size_t size) {
  if (col->type == SP_NUMERIC) format_number(vals[l], buf, size);
  else snprintf(buf, size, "%s", col->levels[orig[l]]);
}

/* A fixed effect: one variable, or a^b^... combined. */
static int build_fe(ctx *c, const sp_fnode *n, sp_design_factor *out) {
  sp_design *d = c->d;
  size_t nn = d->n;
  out->name = dup_str(n->label);
  out->code = sp_mem_alloc((nn ? nn : 1) * sizeof *out->code);
  if (out->name == NULL || out->code == NULL) return oom(c);
  double *vals = NULL;
  int32_t *orig = NULL;
  if (n->kind == SP_FN_VAR) {
    int st = factor_column(c, sp_frame_column(c->f, n->name), out->code, &out->nlevels, &vals, &orig);
    out->lev = vals;  /* an extra of the same name shares them (plain_fe) */
    free(orig);
    return st == SP_OK ? SP_OK : oom(c);
  }
  /* Combined: key = ((c1 * L2) + c2) * L3 + c3 ..., exact in a double up to 2^53. */
  double *key = sp_mem_doubles(nn ? nn : 1);
  int32_t *tmp = sp_mem_alloc((nn ? nn : 1) * sizeof *tmp);
  if (key == NULL || tmp == NULL) { sp_mem_free(key); sp_mem_free(tmp); return oom(c); }
  double span = 1;
  for (size_t i = 0; i < nn; i++) key[i] = 0;
  for (size_t j = 0; j < n->nkids; j++) {
    size_t L = 0;
    int st = factor_column(c, sp_frame_column(c->f, n->kids[j]->name), tmp, &L, &vals, &orig);
    free(vals);
    free(orig);
    if (st != SP_OK) { sp_mem_free(key); sp_mem_free(tmp); return oom(c); }
    span *= (double)(L ? L : 1);
    if (span > 9007199254740992.0) {
      sp_mem_free(key);
      sp_mem_free(tmp);
      return sp_formula_error(c->fm, n, c->err, SP_EVALUE, "%s has too many level combinations", n->label);
    }
    for (size_t i = 0; i < nn; i++) key[i] = key[i] * (double)L + tmp[i];
  }
  sp_mem_free(tmp);
  int st = factor_numeric(&c->team, key, NULL, nn, NULL, NULL, out->code, &out->nlevels, &vals);
  free(vals);
  sp_mem_free(key);
  return st == SP_OK ? SP_OK : oom(c);
}

/* }==================================================================== */

/* {====================================================================
** Columns
** ===================================================================== */

/* Append the columns of term t to role's column list and names. */
static int expand_term(ctx *c, pterm *t, dcol **cols, size_t *ncols, size_t *capcols, char ***names) {
  sp_design *d = c->d;
  if (t->factor == NULL) {
    if (!grow((void **)cols, capcols, *ncols + 1, sizeof **cols)) return oom(c);
    char **nm = realloc(*names, (*ncols + 1) * sizeof *nm);
    if (nm == NULL) return oom(c);
    *names = nm;
    if ((nm[*ncols] = dup_str(t->node->label)) == NULL) return oom(c);
    (*cols)[*ncols] = (dcol){.num = t->num, .level = -1};
    (*ncols)++;
    return SP_OK;
  }
  int32_t *code = new_cbuf(c, d->n ? d->n : 1);
  if (code == NULL) return oom(c);
  size_t L = 0;
  double *vals = NULL;
  int32_t *orig = NULL;
  if (factor_column(c, t->factor, code, &L, &vals, &orig) != SP_OK) return oom(c);
  char lab[256];
  size_t drop = (size_t)-1;
  if (t->ref != NULL) {
    for (size_t l = 0; l < L && drop == (size_t)-1; l++) {
      level_label(t->factor, vals, orig, l, lab, sizeof lab);
      if (strcmp(lab, t->ref) == 0) drop = l;
    }
    if (drop == (size_t)-1) {
      char list[640] = "";
      for (size_t l = 0; l < L && l < 8; l++) {
        level_label(t->factor, vals, orig, l, lab, sizeof lab);
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s'%.60s'", l ? ", " : "", lab);
      }
      if (L > 8) strncat(list, ", ...", sizeof list - strlen(list) - 1);
      free(vals);
      free(orig);
      int st = sp_formula_error(c->fm, t->node, c->err, SP_ENOTFOUND,
                                "reference level '%s' is not a level of '%s' in the rows used (levels: %s)",
                                t->ref, t->fname, list);
      sp_error_var(c->err, t->fname);
      return st;
    }
  } else if (t->drop_first) {
    drop = 0;
  }
  size_t add = L - (drop < L ? 1 : 0);
  if (!grow((void **)cols, capcols, *ncols + add, sizeof **cols)) { free(vals); free(orig); return oom(c); }
  char **nm = realloc(*names, (*ncols + add + 1) * sizeof *nm);
  if (nm == NULL) { free(vals); free(orig); return oom(c); }
  *names = nm;
  for (size_t l = 0; l < L; l++) {
    if (l == drop) continue;
    level_label(t->factor, vals, orig, l, lab, sizeof lab);
    char *name = str_printf("%s%s%s::%s%s%s", t->prefix, t->prefix[0] ? ":" : "", t->fname, lab,
                            t->suffix[0] ? ":" : "", t->suffix);
    if (name == NULL) { free(vals); free(orig); return oom(c); }
    nm[*ncols] = name;
    (*cols)[*ncols] = (dcol){.num = t->num, .code = code, .level = (int32_t)l};
    (*ncols)++;
  }
  free(vals);
  free(orig);
  return SP_OK;
}

/* }==================================================================== */

/* The fixed effect that is the plain variable name, or NULL. */
static const sp_design_factor *plain_fe(const sp_design *d, const sp_formula *fm, const char *name) {
  for (size_t j = 0; j < d->nfe; j++)
    if (fm->fe[j]->kind == SP_FN_VAR && strcmp(fm->fe[j]->name, name) == 0) return &d->fe[j];
  return NULL;
}

/* An extra variable's codes and levels may be a fixed effect's (plain_fe):
   freed once. */
static int borrowed(const sp_design *d, const sp_design_factor *x) {
  for (size_t j = 0; j < d->nfe; j++)
    if (d->fe[j].code == x->code) return 1;
  return 0;
}

void sp_design_free(sp_design *d) {
  if (d == NULL) return;
  sp_mem_free(d->rows);
  free(d->yname);
  free_strings(d->names, d->k);
  free_strings(d->endog_names, d->p_endog);
  free_strings(d->inst_names, d->p_inst);
  for (size_t j = 0; j < d->nextra; j++) {
    free(d->extra[j].name);
    if (!borrowed(d, &d->extra[j])) {
      sp_mem_free(d->extra[j].code);
      free(d->extra[j].lev);
    }
    sp_mem_free(d->extra[j].num);
  }
  free(d->extra);
  for (size_t j = 0; j < d->nfe; j++) {
    free(d->fe[j].name);
    sp_mem_free(d->fe[j].code);
    sp_mem_free(d->fe[j].num);
    free(d->fe[j].lev);
  }
  free(d->fe);
  free_strings(d->notes, d->nnotes);
  sp_design_detach(d);
  if (d->src) {
    for (size_t j = 0; j < 4; j++) free(d->src->cols[j]);
    free(d->src);
  }
  free(d);
}

void sp_design_detach(sp_design *d) {
  if (d == NULL || d->src == NULL) return;
  struct sp_design_src *s = d->src;
  for (size_t j = 0; j < s->nbufs; j++) sp_mem_free(s->bufs[j]);
  free(s->bufs);
  s->bufs = NULL;
  s->nbufs = s->capbufs = 0;
  for (size_t j = 0; j < s->ncbufs; j++) sp_mem_free(s->cbufs[j]);
  free(s->cbufs);
  s->cbufs = NULL;
  s->ncbufs = s->capcbufs = 0;
  s->detached = 1;
}

/* x's index among d's extras, or d->nextra. */
static size_t extra_index(const sp_design *d, const sp_design_factor *x) {
  for (size_t j = 0; j < d->nextra; j++)
    if (&d->extra[j] == x) return j;
  return d->nextra;
}

int sp_design_factor_numeric(const sp_design *d, const sp_design_factor *x) {
  return extra_index(d, x) < d->nextra && (x->num != NULL || x->lev != NULL);
}

const double *sp_design_factor_values(sp_design *d, const sp_design_factor *x, sp_error *err) {
  size_t j = extra_index(d, x);
  if (j == d->nextra || (x->num == NULL && x->lev == NULL)) {
    sp_error_set(err, SP_EVALUE, "'%s' is not a numeric extra variable of the design", x->name);
    sp_error_var(err, x->name);
    return NULL;
  }
  sp_design_factor *e = &d->extra[j];
  if (e->num != NULL) return e->num;
  if ((e->num = sp_mem_doubles(d->n ? d->n : 1)) == NULL) {
    sp_error_set(err, SP_ENOMEM, "out of memory for the values of '%s'", x->name);
    return NULL;
  }
  for (size_t i = 0; i < d->n; i++) e->num[i] = e->lev[e->code[i]];
  return e->num;
}

const sp_design_factor *sp_design_factor_find(const sp_design *d, const char *name) {
  for (size_t j = 0; j < d->nfe; j++)
    if (strcmp(d->fe[j].name, name) == 0) return &d->fe[j];
  for (size_t j = 0; j < d->nextra; j++)
    if (strcmp(d->extra[j].name, name) == 0) return &d->extra[j];
  return NULL;
}

static int plan(ctx *c, const sp_design_options *opt) {
  const sp_frame *f = c->f;
  const sp_formula *fm = c->fm;
  sp_design *d = c->d;
  size_t N = f->nrow;
  int st;

  /* 1. Every name resolves and has the right type, before any work. */
  /* fm->lhs is NULL for "~ x": a design of X alone (the bindings ask for it). */
  if (fm->lhs && (st = check_node(c, fm->lhs, 1)) != SP_OK) return st;
  for (size_t i = 0; i < fm->nrhs; i++) if ((st = check_node(c, fm->rhs[i], 1)) != SP_OK) return st;
  for (size_t i = 0; i < fm->nfe; i++) if ((st = check_node(c, fm->fe[i], 0)) != SP_OK) return st;
  for (size_t i = 0; i < fm->nendog; i++) if ((st = check_node(c, fm->endog[i], 1)) != SP_OK) return st;
  for (size_t i = 0; i < fm->ninst; i++) if ((st = check_node(c, fm->inst[i], 1)) != SP_OK) return st;
  for (size_t i = 0; i < opt->nextra; i++) {
    if (sp_frame_find(f, opt->extra[i]) >= 0) continue;
    long j = sp_frame_closest(f, opt->extra[i]);
    if (j >= 0) st = sp_error_set(c->err, SP_ENOTFOUND, "unknown extra variable '%s'; did you mean '%s'?",
                                  opt->extra[i], f->cols[j].name);
    else st = sp_error_set(c->err, SP_ENOTFOUND, "unknown extra variable '%s' (not a column of the frame)",
                           opt->extra[i]);
    sp_error_var(c->err, opt->extra[i]);
    return st;
  }

  /* 2. Evaluate the terms over the whole frame. */
  if (fm->lhs && (st = add_term(c, R_Y, fm->lhs)) != SP_OK) return st;
  for (size_t i = 0; i < fm->nrhs; i++) if ((st = add_term(c, R_X, fm->rhs[i])) != SP_OK) return st;
  for (size_t i = 0; i < fm->nendog; i++) if ((st = add_term(c, R_ENDOG, fm->endog[i])) != SP_OK) return st;
  for (size_t i = 0; i < fm->ninst; i++) if ((st = add_term(c, R_INST, fm->inst[i])) != SP_OK) return st;

  /* 3. Listwise deletion: one pass over the rows (per chunk) for every
     variable, which also learns the range of the numeric ones for coding. */
  if (fm->lhs && (st = scan_direct(c, fm->lhs)) != SP_OK) return st;
  sp_fnode **lists[] = {fm->rhs, fm->fe, fm->endog, fm->inst};
  size_t counts[] = {fm->nrhs, fm->nfe, fm->nendog, fm->ninst};
  for (size_t l = 0; l < 4; l++)
    for (size_t i = 0; i < counts[l]; i++)
      if ((st = scan_direct(c, lists[l][i])) != SP_OK) return st;
  for (size_t i = 0; i < opt->nextra; i++)
    if ((st = add_scan_column(c, sp_frame_column(f, opt->extra[i]))) != SP_OK) return st;
  for (size_t i = 0; i < c->nterms; i++) {
    const pterm *t = &c->terms[i];
    if (t->num != NULL && t->node->kind != SP_FN_VAR && (st = add_scan(c, t->num, NULL, NULL, M_DERIVED)) != SP_OK)
      return st;
  }
  /* Nothing to read when every variable is a column known to be complete. */
  int all_known = 1;
  for (size_t i = 0; i < c->nscan; i++) all_known &= c->scan[i].skip;
  uint8_t *mask = all_known ? NULL : sp_mem_alloc(N ? N : 1);
  if (!all_known && mask == NULL) return oom(c);
  scan_job sj = {.c = c, .mask = mask, .used = {N}};
  if (!all_known) {
    sp_team_run(&c->team, scan_chunk, &sj);
    cache_scans(c);
  }
  size_t n = 0;
  for (int k = 0; k < SP_TEAM_CHUNKS; k++) {
    n += sj.used[k];
    d->dropped_missing += sj.missing[k];
  }
  d->n = n;
  d->dropped = N - n;
  d->dropped_derived = d->dropped - d->dropped_missing;
  if (N == 0) {
    /* Say so: "each of the 0 rows has a missing value" sends the user hunting
       for missing values when a filter or subset removed every row. */
    sp_mem_free(mask);
    return sp_error_set(c->err, SP_EDF, "the data has no rows (did a filter or subset remove them all?)");
  }
  if (n == 0) {
    sp_mem_free(mask);
    return sp_error_set(c->err, SP_EMISSING,
                        "no complete rows: each of the %zu rows of the frame has a missing value in a variable "
                        "of '%s' (%zu missing in the data, %zu from lags, logs or other derived values)",
                        N, fm->text, d->dropped_missing, d->dropped_derived);
  }
  /* No row index when every row is used (80 MB at 1e7 rows, on every fit). */
  if (n < N) {
    d->rows = sp_mem_alloc(n * sizeof *d->rows);
    if (d->rows == NULL) { sp_mem_free(mask); return oom(c); }
    size_t i = 0;
    for (int k = 0; k < SP_TEAM_CHUNKS; k++) {
      size_t r0, r1;
      sp_team_range(N, k, &r0, &r1);
      for (size_t r = r0; r < r1; r++)
        if (!sj.dirty[k] || mask[r] == 0) d->rows[i++] = r;
    }
  }
  sp_mem_free(mask);

  /* 4. Columns and names. */
  if (fm->lhs) {
    d->yname = dup_str(fm->lhs->label);
    if (d->yname == NULL) return oom(c);
  }
  struct sp_design_src *s = d->src;
  int icpt = opt->intercept < 0 ? (fm->intercept && fm->nfe == 0) : opt->intercept != 0;
  size_t cap[4] = {0, 0, 0, 0};
  char **names[4] = {NULL, NULL, NULL, NULL};
  size_t ncols[4] = {0, 0, 0, 0};
  st = SP_OK;
  if (icpt) {
    if (!grow((void **)&s->cols[R_X], &cap[R_X], 1, sizeof *s->cols[R_X]) ||
        (names[R_X] = malloc(sizeof *names[R_X])) == NULL ||
        (names[R_X][0] = dup_str("(Intercept)")) == NULL) {
      st = oom(c);
    } else {
      s->cols[R_X][0] = (dcol){.level = -1};
      ncols[R_X] = 1;
      d->intercept = 1;
    }
  }
  for (size_t i = 0; st == SP_OK && i < c->nterms; i++) {
    pterm *t = &c->terms[i];
    st = expand_term(c, t, &s->cols[t->role], &ncols[t->role], &cap[t->role], &names[t->role]);
  }
  /* Hand the names to the design on every path so sp_design_free finds them. */
  free_strings(names[R_Y], ncols[R_Y]);
  d->names = names[R_X];
  d->k = ncols[R_X];
  d->endog_names = names[R_ENDOG];
  d->p_endog = ncols[R_ENDOG];
  d->inst_names = names[R_INST];
  d->p_inst = ncols[R_INST];
  for (size_t j = 0; j < 4; j++) s->ncols[j] = ncols[j];
  if (st != SP_OK) return st;

  /* 5. Fixed effects and extras over the used rows. */
  if (fm->nfe) {
    d->fe = calloc(fm->nfe, sizeof *d->fe);
    if (d->fe == NULL) return oom(c);
    for (size_t j = 0; j < fm->nfe; j++) {
      d->nfe++;
      if ((st = build_fe(c, fm->fe[j], &d->fe[j])) != SP_OK) return st;
    }
  }
  if (opt->nextra) {
    d->extra = calloc(opt->nextra, sizeof *d->extra);
    if (d->extra == NULL) return oom(c);
    for (size_t j = 0; j < opt->nextra; j++) {
      sp_design_factor *x = &d->extra[d->nextra++];
      sp_column *col = sp_frame_column(f, opt->extra[j]);
      x->name = dup_str(opt->extra[j]);
      if (x->name == NULL) return oom(c);
      const sp_design_factor *same = plain_fe(d, fm, opt->extra[j]);
      if (same != NULL) {
        /* Clustering on a fixed effect is the common case: its codes and
           levels are these, computed the same way (40 MB and a pass less at
           1e7 rows). */
        x->code = same->code;
        x->nlevels = same->nlevels;
        x->lev = same->lev;
      } else {
        if ((x->code = sp_mem_alloc(n * sizeof *x->code)) == NULL) return oom(c);
        int32_t *orig = NULL;
        st = factor_column(c, col, x->code, &x->nlevels, &x->lev, &orig);
        free(orig);
        if (st != SP_OK) return oom(c);
      }
      /* Values that repeat (identifiers) stay as levels until an estimator
         asks for them (sp_design_factor_values); the others (weights) are
         copied now, as levels would take more room than the values. */
      if (col->type == SP_NUMERIC && (x->nlevels > n / 2 || x->lev == NULL)) {
        if ((x->num = sp_mem_doubles(n)) == NULL) return oom(c);
        fill_job job = {.rows = d->rows, .n = n, .out = x->num, .tda = 1, .cols = &(dcol){.num = col->num, .level = -1}, .k = 1};
        sp_team_run(&c->team, fill_chunk, &job);
        if (same == NULL) free(x->lev);
        x->lev = NULL;
      }
    }
  }
  return SP_OK;
}

/* Mark the columns of y and X that are columns of f read in place, with
   their serials, so that they can be read again while f keeps them
   (plain_column). */
static void record_frame_columns(sp_design *d, const sp_frame *f) {
  for (int r = R_Y; r <= R_X; r++)
    for (size_t j = 0; j < d->src->ncols[r]; j++) {
      dcol *c = &d->src->cols[r][j];
      if (c->num == NULL || c->code != NULL) continue;
      for (size_t m = 0; m < f->ncol; m++)
        if (f->cols[m].type == SP_NUMERIC && f->cols[m].num == c->num) {
          c->framecol = 1;
          c->serial = f->cols[m].serial;
          break;
        }
    }
}

int sp_design_plan(const sp_frame *f, const sp_formula *fm, const sp_design_options *opt,
                   sp_design **out, sp_error *err) {
  *out = NULL;
  sp_design_options defaults;
  if (opt == NULL) { sp_design_options_init(&defaults); opt = &defaults; }
  if (opt->threads != 1 && opt->threads != 2)
    return sp_error_set(err, SP_EVALUE, "design: threads is %d (expected 1 or 2)", opt->threads);
  sp_design *d = calloc(1, sizeof *d);
  if (d == NULL || (d->src = calloc(1, sizeof *d->src)) == NULL) {
    free(d);
    return sp_error_set(err, SP_ENOMEM, "out of memory building the design");
  }
  d->nrow = f->nrow;
  d->src->threads = opt->threads;
  ctx c;
  memset(&c, 0, sizeof c);
  c.f = f;
  c.fm = fm;
  c.err = err;
  c.d = d;
  sp_team_start(&c.team, opt->threads);
  int st = plan(&c, opt);
  sp_team_stop(&c.team);
  free(c.scan);
  for (size_t i = 0; i < c.nterms; i++) { free(c.terms[i].prefix); free(c.terms[i].suffix); }
  free(c.terms);
  free(c.cache);
  if (st != SP_OK) {
    sp_design_free(d);
    return st;
  }
  record_frame_columns(d, f);
  *out = d;
  return SP_OK;
}

/* {====================================================================
** Fill
** ===================================================================== */

/* Rows [i0, i1) of the n x k block out (row stride tda) from the columns. */
static void fill_rows(const size_t *rows, const dcol *cols, size_t k, double *out, size_t tda, size_t i0,
                      size_t i1) {
  int plain = k > 0 && k <= 64;
  for (size_t j = 0; j < k && plain; j++) plain = cols[j].num != NULL && cols[j].code == NULL;
  if (plain) {
    /* The common case: one pass over the rows, reading k columns. */
    const double *src[64];
    for (size_t j = 0; j < k; j++) src[j] = cols[j].num;
    if (k == 1) {
      for (size_t i = i0; i < i1; i++) out[i * tda] = src[0][row_at(rows, i)];
      return;
    }
    for (size_t i = i0; i < i1; i++) {
      size_t r = row_at(rows, i);
      double *o = out + i * tda;
      for (size_t j = 0; j < k; j++) o[j] = src[j][r];
    }
    return;
  }
  for (size_t j = 0; j < k; j++) {
    const double *x = cols[j].num;
    const int32_t *code = cols[j].code;
    int32_t lv = cols[j].level;
    double *o = out + j;
    if (x == NULL && code == NULL) for (size_t i = i0; i < i1; i++) o[i * tda] = 1.0;
    else if (code == NULL) for (size_t i = i0; i < i1; i++) o[i * tda] = x[row_at(rows, i)];
    else if (x == NULL) for (size_t i = i0; i < i1; i++) o[i * tda] = code[i] == lv ? 1.0 : 0.0;
    else for (size_t i = i0; i < i1; i++) o[i * tda] = code[i] == lv ? x[row_at(rows, i)] : 0.0;
  }
}

static void fill_chunk(void *vj, int k) {
  const fill_job *j = vj;
  size_t i0, i1;
  sp_team_range(j->n, k, &i0, &i1);
  fill_rows(j->rows, j->cols, j->k, j->out, j->tda, i0, i1);
}

/* Copy y and X (R_Y, R_X) and the others into their matrices, each row chunk
   on its own thread when the design was planned with two.  y and X views of
   one block, side by side (the bindings' [y X]), are filled together: one
   pass writing whole rows instead of two passes each writing part of every
   cache line. */
static int fill_all(const sp_design *d, gsl_matrix *const *m, sp_error *err) {
  const struct sp_design_src *s = d->src;
  fill_job jobs[4];
  size_t njobs = 0;
  dcol *both = NULL;
  int r = 0;
  if (m[R_Y] != NULL && m[R_X] != NULL && s->ncols[R_Y] == 1 && s->ncols[R_X] > 0 && m[R_Y]->tda == m[R_X]->tda &&
      m[R_Y]->data + 1 == m[R_X]->data) {
    size_t k = 1 + s->ncols[R_X];
    if ((both = malloc(k * sizeof *both)) == NULL)
      return sp_error_set(err, SP_ENOMEM, "out of memory filling the design");
    both[0] = s->cols[R_Y][0];
    memcpy(both + 1, s->cols[R_X], s->ncols[R_X] * sizeof *both);
    jobs[njobs++] = (fill_job){d->rows, d->n, m[R_Y]->data, m[R_Y]->tda, both, k};
    r = R_X + 1;
  }
  for (; r < 4; r++)
    if (m[r] != NULL && s->ncols[r] > 0)
      jobs[njobs++] = (fill_job){d->rows, d->n, m[r]->data, m[r]->tda, s->cols[r], s->ncols[r]};
  sp_team tm;
  sp_team_start(&tm, s->threads);
  for (size_t i = 0; i < njobs; i++) sp_team_run(&tm, fill_chunk, &jobs[i]);
  sp_team_stop(&tm);
  free(both);
  return SP_OK;
}

int sp_design_fill(const sp_design *d, gsl_matrix *y, gsl_matrix *X, gsl_matrix *endog,
                   gsl_matrix *inst, sp_error *err) {
  if (d->src == NULL || d->src->detached)
    return sp_error_set(err, SP_EVALUE, "the design was detached from its frame; plan it again to fill matrices");
  gsl_matrix *m[4] = {y, X, endog, inst};
  static const char *const what[4] = {"y", "X", "endog", "inst"};
  for (int j = 0; j < 4; j++) {
    if (m[j] == NULL) continue;
    size_t want = d->src->ncols[j];
    if (m[j]->size1 != d->n || m[j]->size2 != want)
      return sp_error_set(err, SP_EDIM, "%s is %zu x %zu but the design needs %zu x %zu", what[j],
                          m[j]->size1, m[j]->size2, d->n, want);
  }
  return fill_all(d, m, err);
}

/* A column is re-readable when it is the intercept, or a plain numeric
   column of f read in place that f still holds: the same array with the
   same serial (not a product, a dummy or a derived buffer, which
   sp_design_detach has freed).  The serial tells a column from a later one
   that happens to get the freed array's address. */
static int plain_column(const dcol *c, const sp_frame *f) {
  if (c->code != NULL) return 0;
  if (c->num == NULL) return 1;
  if (!c->framecol) return 0;
  for (size_t j = 0; j < f->ncol; j++)
    if (f->cols[j].type == SP_NUMERIC && f->cols[j].num == c->num && f->cols[j].serial == c->serial) return 1;
  return 0;
}

int sp_design_readable(const sp_design *d, const sp_frame *f) {
  const struct sp_design_src *s = d->src;
  if (s == NULL || f == NULL || f->nrow != d->nrow) return 0;
  for (int r = R_Y; r <= R_X; r++)
    for (size_t j = 0; j < s->ncols[r]; j++)
      if (!plain_column(&s->cols[r][j], f)) return 0;
  return 1;
}

int sp_design_refill(const sp_design *d, const sp_frame *f, gsl_matrix *y, gsl_matrix *X, int check_only) {
  const struct sp_design_src *s = d->src;
  if (!sp_design_readable(d, f) || y == NULL || y->size1 != d->n || y->size2 != s->ncols[R_Y]) return 0;
  if (s->ncols[R_X] > 0 && (X == NULL || X->size1 != d->n || X->size2 != s->ncols[R_X])) return 0;
  if (!check_only) {
    gsl_matrix *m[4] = {y, s->ncols[R_X] > 0 ? X : NULL, NULL, NULL};
    sp_error err;
    sp_error_clear(&err);
    /* Out of memory for the fused list is the only failure: fill one by one. */
    if (fill_all(d, m, &err) != SP_OK) {
      for (int r = R_Y; r <= R_X; r++)
        if (m[r] != NULL) fill_rows(d->rows, s->cols[r], s->ncols[r], m[r]->data, m[r]->tda, 0, d->n);
    }
  }
  return 1;
}

/* Rows [r0, r1) of [y X] from the frame's columns (sp_design_rows_init). */
static void design_rows_read(const sp_rows *src, size_t r0, size_t r1, double *out, size_t ldo) {
  const sp_design_rows *s = src->ctx;
  size_t m = r1 - r0;
  /* Column by column: each column is read in order (a gather through the
     row index when rows were dropped) into its strided slot of the block. */
  for (size_t j = 0; j < src->p; j++) {
    const double *c = s->col[j];
    double *o = out + j;
    if (c == NULL) for (size_t i = 0; i < m; i++) o[i * ldo] = 1.0;
    else if (s->index == NULL) for (size_t i = 0; i < m; i++) o[i * ldo] = c[r0 + i];
    else for (size_t i = 0; i < m; i++) o[i * ldo] = c[s->index[r0 + i]];
  }
}

int sp_design_rows_init(sp_design_rows *s, const sp_design *d, const sp_frame *f) {
  const struct sp_design_src *src = d->src;
  if (d->yname == NULL || !sp_design_readable(d, f)) return -1;
  size_t p = src->ncols[R_Y] + src->ncols[R_X];
  if (p > SP_ROWS_MAXSEL) return -1;
  memset(s, 0, sizeof *s);
  size_t j = 0;
  for (int r = R_Y; r <= R_X; r++)
    for (size_t c = 0; c < src->ncols[r]; c++) s->col[j++] = src->cols[r][c].num;
  s->index = d->rows;
  /* The arrays themselves, for readers that fuse their work into the loads,
     when row i is the frame's row i and no column is the intercept. */
  int direct = s->index == NULL;
  for (j = 0; j < p; j++) direct &= s->col[j] != NULL;
  s->rows = (sp_rows){d->n, p, design_rows_read, s, direct ? s->col : NULL};
  return 0;
}

/* }==================================================================== */
