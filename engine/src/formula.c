/*
** formula.c: tokenizer and recursive-descent parser of the formula language.
**
** Grammar (terms are separated by + and -, parts by |):
**
**   formula := [expr] '~' terms { '|' part }        at most three parts; no
**                                                   response only with SP_FORMULA_OPTIONAL_RESPONSE
**   part    := terms [ '~' terms ]                  '~' makes it the IV part
**   terms   := [+|-] cross { (+|-) cross }
**   cross   := inter { '*' inter }                  a*b = a + b + a:b
**   inter   := comb { ':' comb }
**   comb    := atom { '^' atom }                    fe1^fe2 (fixed effects only)
**   atom    := NAME | `quoted name` | call | 0 | 1
**   expr    := mul { (+|-) mul }                    inside functions and I()
**   mul     := unary { (*|/) unary }
**   unary   := '-' unary | pow
**   pow     := primary [ '^' unary ]
**   primary := NUMBER | NAME | call | '(' expr ')'
**
** All nodes and strings live in an arena owned by the formula, so a failed
** parse releases everything with one call whatever state it stopped in.
*/
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/formula.h"

/* {====================================================================
** Arena
** ===================================================================== */

typedef struct ablock {
  struct ablock *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} ablock;

typedef struct {
  ablock *head;
} arena;

static void *arena_alloc(arena *a, size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (size == 0) size = 16;
  ablock *b = a->head;
  if (b == NULL || b->cap - b->used < size) {
    size_t cap = size > 4096 ? size : 4096;
    b = malloc(sizeof *b + cap);
    if (b == NULL) return NULL;
    b->cap = cap;
    b->used = 0;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += size;
  memset(p, 0, size);
  return p;
}

static void arena_free(arena *a) {
  if (a == NULL) return;
  ablock *b = a->head;
  while (b != NULL) {
    ablock *next = b->next;
    free(b);
    b = next;
  }
  free(a);
}

static char *arena_strndup(arena *a, const char *s, size_t n) {
  char *d = arena_alloc(a, n + 1);
  if (d != NULL) { memcpy(d, s, n); d[n] = '\0'; }
  return d;
}

static char *arena_printf(arena *a, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
static char *arena_printf(arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *d = arena_alloc(a, (size_t)n + 1);
  if (d == NULL) return NULL;
  va_start(ap, fmt);
  vsnprintf(d, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return d;
}

/* A growable array of node pointers inside the arena (old storage is simply
   abandoned when it grows: formulas are small). */
typedef struct {
  sp_fnode **v;
  size_t n, cap;
} nvec;

static int nvec_push(arena *a, nvec *vec, sp_fnode *x) {
  if (vec->n == vec->cap) {
    size_t cap = vec->cap ? 2 * vec->cap : 8;
    sp_fnode **v = arena_alloc(a, cap * sizeof *v);
    if (v == NULL) return 0;
    if (vec->n) memcpy(v, vec->v, vec->n * sizeof *v);
    vec->v = v;
    vec->cap = cap;
  }
  vec->v[vec->n++] = x;
  return 1;
}

/* }==================================================================== */

/* {====================================================================
** Error messages with a caret under the formula
** ===================================================================== */

static int is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

static void caret_message(const char *text, size_t pos, long line, long col, sp_error *err,
                          int code, const char *msg) {
  if (err == NULL) return;
  size_t len = strlen(text);
  if (pos > len) pos = len;
  size_t ls = pos, le = pos;
  while (ls > 0 && text[ls - 1] != '\n') ls--;
  while (le < len && text[le] != '\n') le++;
  /* Show at most about 60 bytes either side of the column, cut on character
     boundaries, so the message stays readable for long formulas. */
  size_t ws = ls, we = le;
  if (pos - ws > 60) { ws = pos - 60; while (ws < pos && is_cont((unsigned char)text[ws])) ws++; }
  if (we - pos > 60) { we = pos + 60; while (we > pos && is_cont((unsigned char)text[we])) we--; }
  char shown[200];
  size_t m = 0, caret = 0;
  const char *pre = ws > ls ? "..." : "";
  const char *post = we < le ? "..." : "";
  for (size_t i = ws; i < we && m + 1 < sizeof shown; i++) {
    unsigned char c = (unsigned char)text[i];
    shown[m++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    if (i < pos && !is_cont(c)) caret++;
  }
  shown[m] = '\0';
  caret += strlen(pre);
  sp_error_set(err, code, "%s\n  %s%s%s\n  %*s^", msg, pre, shown, post, (int)caret, "");
  sp_error_at(err, "formula", line, col);
}

int sp_formula_error(const sp_formula *fm, const sp_fnode *node, sp_error *err, int code,
                     const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (fm == NULL || node == NULL) return sp_error_set(err, code, "%s", msg);
  caret_message(fm->text, node->pos, node->line, node->col, err, code, msg);
  return code;
}

/* }==================================================================== */

/* {====================================================================
** Tokenizer
** ===================================================================== */

typedef enum {
  T_END, T_NAME, T_NUM, T_STR, T_TILDE, T_BAR, T_PLUS, T_MINUS, T_STAR, T_SLASH,
  T_CARET, T_COLON, T_LPAR, T_RPAR, T_COMMA, T_EQ, T_BAD
} tkind;

typedef struct {
  tkind kind;
  size_t pos, len;     /* bytes of the token in the text */
  long line, col;
  const char *s;       /* NAME, STR: the value (arena); NUM: the text */
  double num;
} token;

typedef struct {
  const char *text;
  size_t len;
  size_t pos;          /* scanner position */
  long line, col;
  token tok, prev;
  arena *a;
  sp_formula *fm;
  sp_error *err;
  int failed;
  int depth;
  int flags;           /* SP_FORMULA_* */
} parser;

#define MAX_DEPTH 100

static int name_start(unsigned char c) { return isalpha(c) || c == '_' || c == '.' || c >= 0x80; }
static int name_char(unsigned char c) { return isalnum(c) || c == '_' || c == '.' || c >= 0x80; }

static void fail(parser *p, const token *t, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 3, 4)))
#endif
  ;
static void fail(parser *p, const token *t, const char *fmt, ...) {
  if (p->failed) return;  /* keep the first error: later ones are consequences */
  p->failed = 1;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  caret_message(p->text, t->pos, t->line, t->col, p->err, SP_EPARSE, msg);
}

static void nomem(parser *p) {
  if (p->failed) return;
  p->failed = 1;
  sp_error_set(p->err, SP_ENOMEM, "out of memory parsing a formula");
}

static void advance_char(parser *p) {
  unsigned char c = (unsigned char)p->text[p->pos++];
  if (c == '\n') { p->line++; p->col = 1; }
  else if (!is_cont(c)) p->col++;
}

/* Scan the next token into p->tok (p->prev keeps the last one). */
static void lex(parser *p) {
  p->prev = p->tok;
  while (p->pos < p->len && strchr(" \t\r\n", p->text[p->pos]) != NULL) advance_char(p);
  token *t = &p->tok;
  memset(t, 0, sizeof *t);
  t->pos = p->pos;
  t->line = p->line;
  t->col = p->col;
  if (p->pos >= p->len) { t->kind = T_END; return; }
  unsigned char c = (unsigned char)p->text[p->pos];
  if (isdigit(c) || (c == '.' && p->pos + 1 < p->len && isdigit((unsigned char)p->text[p->pos + 1]))) {
    size_t i = p->pos;
    while (i < p->len && isdigit((unsigned char)p->text[i])) i++;
    if (i < p->len && p->text[i] == '.') { i++; while (i < p->len && isdigit((unsigned char)p->text[i])) i++; }
    if (i < p->len && (p->text[i] == 'e' || p->text[i] == 'E')) {
      size_t j = i + 1;
      if (j < p->len && (p->text[j] == '+' || p->text[j] == '-')) j++;
      if (j < p->len && isdigit((unsigned char)p->text[j])) {
        while (j < p->len && isdigit((unsigned char)p->text[j])) j++;
        i = j;
      }
    }
    t->kind = T_NUM;
    t->s = arena_strndup(p->a, p->text + p->pos, i - p->pos);
    if (t->s == NULL) { nomem(p); t->kind = T_END; return; }
    t->num = strtod(t->s, NULL);
    while (p->pos < i) advance_char(p);
  } else if (name_start(c)) {
    size_t i = p->pos;
    while (i < p->len && name_char((unsigned char)p->text[i])) i++;
    t->kind = T_NAME;
    t->s = arena_strndup(p->a, p->text + p->pos, i - p->pos);
    if (t->s == NULL) { nomem(p); t->kind = T_END; return; }
    while (p->pos < i) advance_char(p);
  } else if (c == '`' || c == '"' || c == '\'') {
    size_t i = p->pos + 1;
    while (i < p->len && p->text[i] != (char)c) i++;
    if (i >= p->len) {
      t->kind = T_BAD;
      fail(p, t, c == '`' ? "unterminated backquoted name: expected a closing '`'"
                          : "unterminated string: expected a closing %c", c);
      return;
    }
    if (i == p->pos + 1 && c == '`') {
      t->kind = T_BAD;
      fail(p, t, "empty backquoted name");
      return;
    }
    t->kind = c == '`' ? T_NAME : T_STR;
    t->s = arena_strndup(p->a, p->text + p->pos + 1, i - p->pos - 1);
    if (t->s == NULL) { nomem(p); t->kind = T_END; return; }
    while (p->pos <= i) advance_char(p);
  } else {
    static const char punct[] = "~|+-*/^:(),=";
    static const tkind kinds[] = {T_TILDE, T_BAR, T_PLUS, T_MINUS, T_STAR, T_SLASH,
                                  T_CARET, T_COLON, T_LPAR, T_RPAR, T_COMMA, T_EQ};
    const char *q = c ? strchr(punct, c) : NULL;
    if (q == NULL) {
      t->kind = T_BAD;
      if (c >= 0x20 && c < 0x7f) fail(p, t, "unexpected character '%c'", c);
      else fail(p, t, "unexpected character (byte 0x%02x)", c);
      return;
    }
    t->kind = kinds[q - punct];
    advance_char(p);
  }
  t->len = p->pos - t->pos;
}

/* The token after the current one, without consuming anything. */
static token peek(parser *p) {
  size_t pos = p->pos;
  long line = p->line, col = p->col;
  token cur = p->tok, prev = p->prev;
  int failed = p->failed;
  lex(p);
  token next = p->tok;
  p->pos = pos; p->line = line; p->col = col;
  p->tok = cur; p->prev = prev;
  p->failed = failed;  /* a bad token ahead is reported when reached */
  return next;
}

static void describe(const token *t, char *buf, size_t size) {
  static const char *const punct[] = {
    [T_TILDE] = "'~'", [T_BAR] = "'|'", [T_PLUS] = "'+'", [T_MINUS] = "'-'", [T_STAR] = "'*'",
    [T_SLASH] = "'/'", [T_CARET] = "'^'", [T_COLON] = "':'", [T_LPAR] = "'('", [T_RPAR] = "')'",
    [T_COMMA] = "','", [T_EQ] = "'='"};
  switch (t->kind) {
    case T_END: snprintf(buf, size, "the end of the formula"); break;
    case T_NAME: snprintf(buf, size, "'%.60s'", t->s); break;
    case T_NUM: snprintf(buf, size, "the number %.40s", t->s); break;
    case T_STR: snprintf(buf, size, "a string"); break;
    case T_BAD: snprintf(buf, size, "a bad character"); break;
    default: snprintf(buf, size, "%s", punct[t->kind]); break;
  }
}

/* }==================================================================== */

/* {====================================================================
** Nodes and labels
** ===================================================================== */

static sp_fnode *new_node(parser *p, sp_fnode_kind kind, const token *at, size_t nkids) {
  sp_fnode *n = arena_alloc(p->a, sizeof *n);
  if (n == NULL) { nomem(p); return NULL; }
  n->kind = kind;
  n->pos = at->pos;
  n->line = at->line;
  n->col = at->col;
  if (nkids) {
    n->kids = arena_alloc(p->a, nkids * sizeof *n->kids);
    if (n->kids == NULL) { nomem(p); return NULL; }
    n->nkids = nkids;
  }
  return n;
}

/* Labels follow R's deparse: spaces around + - * and none around / ^. */
static int set_label(parser *p, sp_fnode *n) {
  arena *a = p->a;
  const char *l = NULL;
  switch (n->kind) {
    case SP_FN_VAR: l = n->name; break;
    case SP_FN_NUM: l = n->text; break;
    case SP_FN_OP:
      if (n->nkids == 1) l = arena_printf(a, "-%s", n->kids[0]->label);
      else if (n->op == '/' || n->op == '^')
        l = arena_printf(a, "%s%c%s", n->kids[0]->label, n->op, n->kids[1]->label);
      else l = arena_printf(a, "%s %c %s", n->kids[0]->label, n->op, n->kids[1]->label);
      break;
    case SP_FN_PAREN: l = arena_printf(a, "(%s)", n->kids[0]->label); break;
    case SP_FN_FUNC: l = arena_printf(a, "%s(%s)", n->name, n->kids[0]->label); break;
    case SP_FN_I: l = arena_printf(a, "I(%s)", n->kids[0]->label); break;
    case SP_FN_SHIFT: l = arena_printf(a, "%s(%s, %ld)", n->name, n->kids[0]->label, n->k); break;
    case SP_FN_DIFF:
      l = n->k == 1 ? arena_printf(a, "d(%s)", n->kids[0]->label)
                    : arena_printf(a, "d(%s, %ld)", n->kids[0]->label, n->k);
      break;
    case SP_FN_FACTOR: {
      const char *slope = n->nkids == 2 ? n->kids[1]->label : NULL;
      if (slope && n->ref) l = arena_printf(a, "i(%s, %s, ref = %s)", n->kids[0]->label, slope, n->ref);
      else if (slope) l = arena_printf(a, "i(%s, %s)", n->kids[0]->label, slope);
      else if (n->ref) l = arena_printf(a, "i(%s, ref = %s)", n->kids[0]->label, n->ref);
      else l = arena_printf(a, "i(%s)", n->kids[0]->label);
      break;
    }
    case SP_FN_INTERACT:
    case SP_FN_COMBINE: {
      size_t len = 0;
      for (size_t i = 0; i < n->nkids; i++) len += strlen(n->kids[i]->label) + 1;
      char *s = arena_alloc(a, len + 1);
      if (s != NULL) {
        s[0] = '\0';
        for (size_t i = 0; i < n->nkids; i++) {
          if (i) strcat(s, n->kind == SP_FN_INTERACT ? ":" : "^");
          strcat(s, n->kids[i]->label);
        }
      }
      l = s;
      break;
    }
  }
  if (l == NULL) { nomem(p); return 0; }
  n->label = l;
  return 1;
}

/* }==================================================================== */

/* {====================================================================
** Expressions (inside functions and I())
** ===================================================================== */

static sp_fnode *parse_expr(parser *p);
static int parse_call(parser *p, const token *name, int term_level, nvec *out);

static int enter(parser *p) {
  if (++p->depth > MAX_DEPTH) {
    fail(p, &p->tok, "formula nested too deeply (more than %d levels)", MAX_DEPTH);
    return 0;
  }
  return 1;
}

static sp_fnode *parse_primary(parser *p) {
  if (p->failed || !enter(p)) return NULL;
  sp_fnode *n = NULL;
  token t = p->tok;
  char what[80];
  switch (t.kind) {
    case T_NUM:
      n = new_node(p, SP_FN_NUM, &t, 0);
      if (n) { n->num = t.num; n->text = t.s; set_label(p, n); }
      lex(p);
      break;
    case T_NAME:
      lex(p);
      if (p->tok.kind == T_LPAR) {
        nvec v = {0};
        if (parse_call(p, &t, 0, &v) && v.n == 1) n = v.v[0];
      } else {
        n = new_node(p, SP_FN_VAR, &t, 0);
        if (n) { n->name = t.s; set_label(p, n); }
      }
      break;
    case T_LPAR: {
      lex(p);
      sp_fnode *e = parse_expr(p);
      if (p->failed) break;
      if (p->tok.kind != T_RPAR) {
        describe(&p->tok, what, sizeof what);
        fail(p, &p->tok, "expected ')' to close the '(' at column %ld, found %s", t.col, what);
        break;
      }
      lex(p);
      n = new_node(p, SP_FN_PAREN, &t, 1);
      if (n) { n->kids[0] = e; set_label(p, n); }
      break;
    }
    default:
      describe(&p->tok, what, sizeof what);
      if (p->prev.kind == T_LPAR || p->prev.kind == T_COMMA || p->prev.kind == T_END)
        fail(p, &p->tok, "expected a variable name or a number, found %s", what);
      else {
        char after[80];
        describe(&p->prev, after, sizeof after);
        fail(p, &p->tok, "expected a variable name or a number after %s, found %s", after, what);
      }
      break;
  }
  p->depth--;
  return p->failed ? NULL : n;
}

static sp_fnode *parse_unary(parser *p);

static sp_fnode *binop(parser *p, const token *at, char op, sp_fnode *a, sp_fnode *b) {
  if (p->failed) return NULL;
  sp_fnode *n = new_node(p, SP_FN_OP, at, 2);
  if (n == NULL) return NULL;
  n->op = op;
  n->kids[0] = a;
  n->kids[1] = b;
  return set_label(p, n) ? n : NULL;
}

static sp_fnode *parse_pow(parser *p) {
  sp_fnode *a = parse_primary(p);
  if (p->failed) return NULL;
  if (p->tok.kind == T_CARET) {
    token t = p->tok;
    lex(p);
    sp_fnode *b = parse_unary(p);
    return binop(p, &t, '^', a, b);
  }
  return a;
}

static sp_fnode *parse_unary(parser *p) {
  if (p->failed || !enter(p)) return NULL;
  sp_fnode *n;
  if (p->tok.kind == T_MINUS) {
    token t = p->tok;
    lex(p);
    sp_fnode *a = parse_unary(p);
    n = p->failed ? NULL : new_node(p, SP_FN_OP, &t, 1);
    if (n) { n->op = '-'; n->kids[0] = a; if (!set_label(p, n)) n = NULL; }
  } else {
    n = parse_pow(p);
  }
  p->depth--;
  return p->failed ? NULL : n;
}

static sp_fnode *parse_mul(parser *p) {
  sp_fnode *a = parse_unary(p);
  while (!p->failed && (p->tok.kind == T_STAR || p->tok.kind == T_SLASH)) {
    token t = p->tok;
    lex(p);
    sp_fnode *b = parse_unary(p);
    a = binop(p, &t, t.kind == T_STAR ? '*' : '/', a, b);
  }
  return p->failed ? NULL : a;
}

static sp_fnode *parse_expr(parser *p) {
  if (p->failed || !enter(p)) return NULL;
  sp_fnode *a = parse_mul(p);
  while (!p->failed && (p->tok.kind == T_PLUS || p->tok.kind == T_MINUS)) {
    token t = p->tok;
    lex(p);
    sp_fnode *b = parse_mul(p);
    a = binop(p, &t, t.kind == T_PLUS ? '+' : '-', a, b);
  }
  p->depth--;
  return p->failed ? NULL : a;
}

/* }==================================================================== */

/* {====================================================================
** Function calls
** ===================================================================== */

static const char *const known_functions[] = {"log", "exp", "sqrt", "abs", "asinh", "I", "l", "f", "d", "i"};
#define NKNOWN (sizeof known_functions / sizeof known_functions[0])

static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 32 || lb > 32) return (size_t)-1;
  size_t prev[33], cur[33];
  for (size_t j = 0; j <= lb; j++) prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
  }
  return prev[lb];
}

/* The known function a misspelt or foreign name most likely means, or NULL. */
static const char *suggest_function(const char *name) {
  static const char *const alias[][2] = {
    {"ln", "log"}, {"log10", "log"}, {"lag", "l"}, {"lead", "f"}, {"diff", "d"},
    {"factor", "i"}, {"as.factor", "i"}, {"L", "l"}, {"F", "f"}, {"D", "d"}, {"Log", "log"},
    {"arcsinh", "asinh"}, {"ihs", "asinh"}};
  for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
    if (strcmp(name, alias[i][0]) == 0) return alias[i][1];
  const char *best = NULL;
  size_t bestd = (size_t)-1, limit = strlen(name) / 2;
  for (size_t i = 0; i < NKNOWN; i++) {
    if (strlen(known_functions[i]) < 2) continue;  /* one letter is close to anything */
    size_t dd = edit_distance(name, known_functions[i]);
    if (dd < bestd) { bestd = dd; best = known_functions[i]; }
  }
  return bestd <= limit ? best : NULL;
}

/* A shift amount: INT, -INT or (when ranges are allowed) INT:INT. */
static int parse_periods(parser *p, long *lo, long *hi) {
  long v[2];
  for (int i = 0; i < 2; i++) {
    int neg = 0;
    if (p->tok.kind == T_MINUS) { neg = 1; lex(p); }
    token t = p->tok;
    /* The range first: casting 1e115 to long is undefined behaviour. */
    if (t.kind != T_NUM || !(t.num >= 0 && t.num <= 1000000) || t.num != floor(t.num)) {
      char what[80];
      describe(&t, what, sizeof what);
      fail(p, &t, "expected a whole number of periods (as in l(x, 1) or l(x, 1:3)), found %s", what);
      return 0;
    }
    v[i] = neg ? -(long)t.num : (long)t.num;
    lex(p);
    if (i == 0) {
      if (p->tok.kind != T_COLON) { v[1] = v[0]; break; }
      lex(p);
    }
  }
  *lo = v[0];
  *hi = v[1];
  return 1;
}

static void arity(parser *p, const token *name, const char *want, size_t got) {
  fail(p, name, "%s() takes %s, found %zu", name->s, want, got);
}

/* Parse name(...) with p->tok at '('.  Appends the resulting node(s) to out:
   several only for a lag range l(x, 1:3), which only a whole term may use. */
static int parse_call(parser *p, const token *name, int term_level, nvec *out) {
  const char *fn = name->s;
  int which = -1;
  for (size_t i = 0; i < NKNOWN; i++)
    if (strcmp(fn, known_functions[i]) == 0) which = (int)i;
  if (which < 0) {
    const char *s = suggest_function(fn);
    if (s) fail(p, name, "unknown function '%s'; did you mean '%s'? (known: log, exp, sqrt, abs, asinh, I, l, f, d, i)", fn, s);
    else fail(p, name, "unknown function '%s' (known: log, exp, sqrt, abs, asinh, I, l, f, d, i)", fn);
    return 0;
  }
  token open = p->tok;
  lex(p);  /* '(' */
  if (!enter(p)) return 0;
  sp_fnode *args[3] = {NULL, NULL, NULL};
  size_t nargs = 0;
  const char *ref = NULL;
  long lo = 1, hi = 1;
  int have_periods = 0;
  char what[80];
  int is_shift = fn[0] != '\0' && fn[1] == '\0' && strchr("lfd", fn[0]) != NULL;
  int is_i = strcmp(fn, "i") == 0;
  while (!p->failed && p->tok.kind != T_RPAR) {
    if (nargs > 0 || ref != NULL || have_periods) {
      if (p->tok.kind != T_COMMA) {
        describe(&p->tok, what, sizeof what);
        if (p->tok.kind == T_END)
          fail(p, &p->tok, "expected ')' to close the '(' of %s() at column %ld, found %s", fn, open.col, what);
        else fail(p, &p->tok, "expected ',' or ')' in %s(), found %s", fn, what);
        break;
      }
      lex(p);
    }
    token at = p->tok;
    if (at.kind == T_NAME && peek(p).kind == T_EQ) {  /* named argument */
      if (!is_i || strcmp(at.s, "ref") != 0) {
        fail(p, &at, is_i ? "unknown argument '%s' of i(); the only named argument is ref ="
                          : "unknown argument '%s' of %s(); it takes no named arguments", at.s, fn);
        break;
      }
      lex(p); lex(p);
      int neg = 0;
      if (p->tok.kind == T_MINUS) { neg = 1; lex(p); }
      if (p->tok.kind != T_STR && p->tok.kind != T_NUM && p->tok.kind != T_NAME) {
        describe(&p->tok, what, sizeof what);
        fail(p, &p->tok, "expected a level after 'ref =' (as in ref = \"West\"), found %s", what);
        break;
      }
      ref = neg ? arena_printf(p->a, "-%s", p->tok.s) : p->tok.s;
      if (ref == NULL) { nomem(p); break; }
      lex(p);
      continue;
    }
    if (is_shift && nargs == 1) {  /* the periods */
      if (have_periods) { arity(p, name, "one or two arguments", 3); break; }
      if (!parse_periods(p, &lo, &hi)) break;
      have_periods = 1;
      continue;
    }
    if (nargs == 3) { nargs++; break; }
    if (is_i && nargs == 0) {
      if (at.kind != T_NAME) {
        describe(&at, what, sizeof what);
        fail(p, &at, "expected the name of a categorical variable as the first argument of i(), found %s", what);
        break;
      }
      sp_fnode *v = new_node(p, SP_FN_VAR, &at, 0);
      if (v) { v->name = at.s; set_label(p, v); }
      args[nargs++] = v;
      lex(p);
      continue;
    }
    args[nargs++] = parse_expr(p);
  }
  if (p->failed) { p->depth--; return 0; }
  size_t given = nargs + (have_periods ? 1 : 0);
  if (is_shift) {
    if (given < 1 || given > 2) { arity(p, name, "one or two arguments (x and periods)", given); p->depth--; return 0; }
  } else if (is_i) {
    if (nargs < 1 || nargs > 2) { arity(p, name, "one or two arguments (f, or f and x) and optionally ref =", nargs); p->depth--; return 0; }
  } else if (nargs != 1) {
    arity(p, name, "one argument", nargs);
    p->depth--;
    return 0;
  }
  lex(p);  /* ')' */
  p->depth--;

  if (is_shift) {
    if (lo > hi) { long t = lo; lo = hi; hi = t; }
    if (lo != hi && !term_level) {
      fail(p, name, "a range of periods like %s(x, %ld:%ld) must be a term on its own", fn, lo, hi);
      return 0;
    }
    if (hi - lo > 1000) { fail(p, name, "a range of more than 1000 periods"); return 0; }
    for (long k = lo; k <= hi; k++) {
      sp_fnode *n = new_node(p, fn[0] == 'd' ? SP_FN_DIFF : SP_FN_SHIFT, name, 1);
      if (n == NULL) return 0;
      n->name = fn;
      n->k = k;
      n->kids[0] = args[0];
      if (fn[0] == 'd' && k < 1) {
        fail(p, name, "d(x, k) needs k >= 1 periods, found %ld", k);
        return 0;
      }
      if (!set_label(p, n) || !nvec_push(p->a, out, n)) { nomem(p); return 0; }
    }
    return 1;
  }
  if (is_i && !term_level) {
    fail(p, name, "i() makes dummy columns and cannot be used inside an expression");
    return 0;
  }
  sp_fnode *n;
  if (is_i) {
    n = new_node(p, SP_FN_FACTOR, name, nargs);
    if (n == NULL) return 0;
    n->ref = ref;
  } else {
    n = new_node(p, strcmp(fn, "I") == 0 ? SP_FN_I : SP_FN_FUNC, name, 1);
    if (n == NULL) return 0;
    n->name = fn;
  }
  for (size_t i = 0; i < nargs; i++) n->kids[i] = args[i];
  if (!set_label(p, n) || !nvec_push(p->a, out, n)) { nomem(p); return 0; }
  return 1;
}

/* }==================================================================== */

/* {====================================================================
** Terms and parts
** ===================================================================== */

/* atom: returns the node(s) in out (several only for a lag range); the
   intercept terms 0 and 1 come back as NUM nodes. */
static int parse_atom(parser *p, nvec *out) {
  token t = p->tok;
  char what[80], after[80];
  if (t.kind == T_NAME) {
    lex(p);
    if (p->tok.kind == T_LPAR) return parse_call(p, &t, 1, out);
    sp_fnode *n = new_node(p, SP_FN_VAR, &t, 0);
    if (n == NULL) return 0;
    n->name = t.s;
    if (!set_label(p, n) || !nvec_push(p->a, out, n)) { nomem(p); return 0; }
    return 1;
  }
  if (t.kind == T_NUM) {
    if (t.num != 0 && t.num != 1) {
      fail(p, &t, "a number on its own must be 0 or 1 (to drop or keep the intercept), found %s; "
                  "use I() for arithmetic", t.s);
      return 0;
    }
    lex(p);
    sp_fnode *n = new_node(p, SP_FN_NUM, &t, 0);
    if (n == NULL) return 0;
    n->num = t.num;
    n->text = t.s;
    if (!set_label(p, n) || !nvec_push(p->a, out, n)) { nomem(p); return 0; }
    return 1;
  }
  describe(&t, what, sizeof what);
  if (t.kind == T_LPAR) {
    fail(p, &t, "parentheses around terms are not supported; use I(...) for arithmetic");
    return 0;
  }
  if (t.kind == T_RPAR) { fail(p, &t, "unbalanced parentheses: ')' without a matching '('"); return 0; }
  describe(&p->prev, after, sizeof after);
  fail(p, &t, "expected a variable name after %s, found %s", after, what);
  return 0;
}

/* comb := atom { '^' atom } */
static sp_fnode *parse_comb(parser *p, nvec *range) {
  nvec v = {0};
  token first = p->tok;
  if (!parse_atom(p, &v)) return NULL;
  if (v.n > 1) {
    if (p->tok.kind == T_CARET || p->tok.kind == T_COLON || p->tok.kind == T_STAR) {
      fail(p, &first, "a range of periods like l(x, 1:2) must be a term on its own");
      return NULL;
    }
    *range = v;  /* the caller adds them all */
    return NULL;
  }
  if (p->tok.kind != T_CARET) return v.v[0];
  while (!p->failed && p->tok.kind == T_CARET) {
    lex(p);
    if (p->tok.kind == T_NUM) {
      fail(p, &first, "'^' combines variables into one fixed effect (fe1^fe2); for powers use I(x^2)");
      return NULL;
    }
    if (!parse_atom(p, &v)) return NULL;
  }
  for (size_t i = 0; i < v.n; i++)
    if (v.v[i]->kind != SP_FN_VAR) {
      fail(p, &first, "'^' combines variables into one fixed effect (fe1^fe2); for powers use I(x^2)");
      return NULL;
    }
  sp_fnode *n = new_node(p, SP_FN_COMBINE, &first, v.n);
  if (n == NULL) return NULL;
  memcpy(n->kids, v.v, v.n * sizeof *v.v);
  return set_label(p, n) ? n : NULL;
}

/* inter := comb { ':' comb }; the atoms are appended to group. */
static int parse_inter(parser *p, nvec *group, nvec *range) {
  token first = p->tok;
  sp_fnode *a = parse_comb(p, range);
  if (p->failed) return 0;
  if (a == NULL) return 1;  /* a lag range, returned in range */
  if (!nvec_push(p->a, group, a)) { nomem(p); return 0; }
  while (p->tok.kind == T_COLON) {
    lex(p);
    sp_fnode *b = parse_comb(p, range);
    if (p->failed) return 0;
    if (b == NULL) { fail(p, &first, "a range of periods like l(x, 1:2) must be a term on its own"); return 0; }
    if (!nvec_push(p->a, group, b)) { nomem(p); return 0; }
  }
  return 1;
}

static sp_fnode *make_interaction(parser *p, sp_fnode **atoms, size_t n) {
  if (n == 1) return atoms[0];
  for (size_t i = 0; i < n; i++) {
    if (atoms[i]->kind == SP_FN_NUM) {
      fail(p, &(token){.pos = atoms[i]->pos, .line = atoms[i]->line, .col = atoms[i]->col},
           "the intercept terms 0 and 1 cannot be part of an interaction");
      return NULL;
    }
    if (atoms[i]->kind == SP_FN_FACTOR) {
      fail(p, &(token){.pos = atoms[i]->pos, .line = atoms[i]->line, .col = atoms[i]->col},
           "i() cannot be part of an interaction; use i(f, x) for one slope of x per level of f");
      return NULL;
    }
  }
  sp_fnode *it = arena_alloc(p->a, sizeof *it);
  if (it == NULL) { nomem(p); return NULL; }
  it->kind = SP_FN_INTERACT;
  it->pos = atoms[0]->pos;
  it->line = atoms[0]->line;
  it->col = atoms[0]->col;
  it->kids = arena_alloc(p->a, n * sizeof *it->kids);
  if (it->kids == NULL) { nomem(p); return NULL; }
  memcpy(it->kids, atoms, n * sizeof *atoms);
  it->nkids = n;
  return set_label(p, it) ? it : NULL;
}

#define MAX_CROSS 8

/* cross := inter { '*' inter }: the expansion of a*b*c in R's order (main
   effects, then two-way, ... interactions), appended to terms. */
static int parse_cross(parser *p, nvec *terms) {
  nvec groups[MAX_CROSS];
  size_t ng = 0;
  token first = p->tok;
  for (;;) {
    nvec range = {0};
    memset(&groups[ng], 0, sizeof groups[ng]);
    if (!parse_inter(p, &groups[ng], &range)) return 0;
    if (range.n > 0) {
      if (ng > 0 || p->tok.kind == T_STAR) {
        fail(p, &first, "a range of periods like l(x, 1:2) must be a term on its own");
        return 0;
      }
      for (size_t i = 0; i < range.n; i++)
        if (!nvec_push(p->a, terms, range.v[i])) { nomem(p); return 0; }
      return 1;
    }
    ng++;
    if (p->tok.kind != T_STAR) break;
    if (ng == MAX_CROSS) { fail(p, &p->tok, "more than %d factors crossed with '*'", MAX_CROSS); return 0; }
    lex(p);
  }
  for (size_t size = 1; size <= ng; size++) {
    /* Every subset of the groups of this size, in lexicographic order. */
    size_t idx[MAX_CROSS];
    for (size_t i = 0; i < size; i++) idx[i] = i;
    for (;;) {
      sp_fnode *atoms[64];
      size_t na = 0;
      for (size_t i = 0; i < size; i++)
        for (size_t j = 0; j < groups[idx[i]].n; j++) {
          if (na == 64) { fail(p, &first, "an interaction of more than 64 variables"); return 0; }
          atoms[na++] = groups[idx[i]].v[j];
        }
      sp_fnode *t = make_interaction(p, atoms, na);
      if (t == NULL || !nvec_push(p->a, terms, t)) { if (!p->failed) nomem(p); return 0; }
      size_t i = size;
      while (i > 0 && idx[i - 1] == ng - size + i - 1) i--;
      if (i == 0) break;
      idx[i - 1]++;
      for (size_t j = i; j < size; j++) idx[j] = idx[j - 1] + 1;
    }
  }
  return 1;
}

/* terms, up to '|', '~' or the end.  intercept (may be NULL) collects 0/1
   terms; removed terms (- x) are dropped; duplicates are dropped. */
static int parse_terms(parser *p, nvec *out, int *intercept) {
  nvec terms = {0}, minus = {0};
  int sign = 1;
  if (p->tok.kind == T_PLUS || p->tok.kind == T_MINUS) {
    sign = p->tok.kind == T_PLUS ? 1 : -1;
    lex(p);
  }
  for (;;) {
    nvec *dst = sign > 0 ? &terms : &minus;
    if (!parse_cross(p, dst)) return 0;
    if (p->tok.kind == T_PLUS || p->tok.kind == T_MINUS) {
      sign = p->tok.kind == T_PLUS ? 1 : -1;
      lex(p);
      continue;
    }
    break;
  }
  if (p->tok.kind == T_RPAR) { fail(p, &p->tok, "unbalanced parentheses: ')' without a matching '('"); return 0; }
  if (p->tok.kind != T_END && p->tok.kind != T_BAR && p->tok.kind != T_TILDE) {
    char what[80];
    describe(&p->tok, what, sizeof what);
    fail(p, &p->tok, "expected '+' or the end of the part, found %s", what);
    return 0;
  }
  /* Intercept markers: +1 / 1 keep it, +0 / -1 drop it, -0 keeps it. */
  for (size_t i = 0; i < terms.n + minus.n; i++) {
    int plus = i < terms.n;
    sp_fnode *t = plus ? terms.v[i] : minus.v[i - terms.n];
    if (t->kind != SP_FN_NUM) continue;
    if (intercept == NULL) {
      fail(p, &(token){.pos = t->pos, .line = t->line, .col = t->col},
           "the intercept terms 0 and 1 belong to the regressors (before the first '|')");
      return 0;
    }
    *intercept = plus ? (t->num == 1) : (t->num == 0);
  }
  if (intercept != NULL)
    for (size_t i = 0; i < minus.n; i++) p->fm->nremoved += minus.v[i]->kind != SP_FN_NUM;
  for (size_t i = 0; i < terms.n; i++) {
    sp_fnode *t = terms.v[i];
    if (t->kind == SP_FN_NUM) continue;
    int skip = 0;
    for (size_t j = 0; j < minus.n && !skip; j++) skip = strcmp(minus.v[j]->label, t->label) == 0;
    for (size_t j = 0; j < out->n && !skip; j++) skip = strcmp(out->v[j]->label, t->label) == 0;
    if (!skip && !nvec_push(p->a, out, t)) { nomem(p); return 0; }
  }
  return 1;
}

static int check_part(parser *p, nvec *v, const char *part, int fe) {
  for (size_t i = 0; i < v->n; i++) {
    sp_fnode *t = v->v[i];
    token at = {.pos = t->pos, .line = t->line, .col = t->col};
    if (fe && t->kind != SP_FN_VAR && t->kind != SP_FN_COMBINE) {
      fail(p, &at, "a fixed effect is a variable or a combination fe1^fe2, found '%s'", t->label);
      return 0;
    }
    if (!fe && t->kind == SP_FN_COMBINE) {
      fail(p, &at, "'^' combines fixed effects (fe1^fe2) and cannot be used in the %s; for powers use I(x^2)", part);
      return 0;
    }
  }
  return 1;
}

static int collect_vars(parser *p, nvec *vars, sp_fnode *n) {
  if (n == NULL) return 1;
  if (n->kind == SP_FN_VAR) {
    for (size_t i = 0; i < vars->n; i++)
      if (strcmp(vars->v[i]->name, n->name) == 0) return 1;
    if (!nvec_push(p->a, vars, n)) { nomem(p); return 0; }
    return 1;
  }
  for (size_t i = 0; i < n->nkids; i++)
    if (!collect_vars(p, vars, n->kids[i])) return 0;
  return 1;
}

static sp_fnode **to_array(nvec *v, size_t *n) {
  *n = v->n;
  return v->n ? v->v : NULL;
}

static void parse_formula(parser *p) {
  sp_formula *fm = p->fm;
  char what[80];
  lex(p);
  if (p->failed) return;
  if (p->tok.kind == T_END) { fail(p, &p->tok, "empty formula: expected 'y ~ x1 + x2'"); return; }
  if (p->tok.kind == T_TILDE && !(p->flags & SP_FORMULA_OPTIONAL_RESPONSE)) {
    fail(p, &p->tok, "expected the dependent variable before '~'");
    return;
  }
  if (p->tok.kind != T_TILDE) fm->lhs = parse_primary(p);  /* one variable or call: arithmetic needs I() */
  if (p->failed) return;
  if (p->tok.kind != T_TILDE) {
    describe(&p->tok, what, sizeof what);
    if (p->tok.kind == T_RPAR) fail(p, &p->tok, "unbalanced parentheses: ')' without a matching '('");
    else if (p->tok.kind == T_PLUS || p->tok.kind == T_COMMA)
      fail(p, &p->tok, "expected one dependent variable and then '~', found %s", what);
    else if (p->tok.kind != T_NAME && p->tok.kind != T_END && p->tok.kind != T_NUM)
      fail(p, &p->tok, "expected '~' after the dependent variable, found %s (use I() for arithmetic)", what);
    else fail(p, &p->tok, "expected '~' after the dependent variable, found %s", what);
    return;
  }
  lex(p);
  nvec rhs = {0}, fe = {0}, endog = {0}, inst = {0};
  fm->intercept = 1;
  if (!parse_terms(p, &rhs, &fm->intercept)) return;
  if (p->tok.kind == T_TILDE) {
    fail(p, &p->tok, "a second '~' in the first part; the IV part comes after '|' (y ~ x | endog ~ z)");
    return;
  }
  if (!check_part(p, &rhs, "regressors", 0)) return;
  fm->nparts = 1;
  int have_iv = 0;
  while (p->tok.kind == T_BAR) {
    token bar = p->tok;
    if (++fm->nparts > 3) {
      fail(p, &bar, "a formula has at most three parts (regressors | fixed effects | IV); this '|' starts a fourth");
      return;
    }
    if (have_iv) {
      fail(p, &bar, "the IV part (endog ~ instruments) must be the last part");
      return;
    }
    lex(p);
    nvec part = {0};
    if (p->tok.kind == T_NUM && p->tok.num == 0 &&
        (peek(p).kind == T_BAR || peek(p).kind == T_END)) {
      lex(p);  /* '| 0 |': no fixed effects */
    } else if (!parse_terms(p, &part, NULL)) {
      return;
    }
    if (p->tok.kind == T_TILDE) {
      if (!check_part(p, &part, "IV part", 0)) return;
      endog = part;
      if (endog.n == 0) { fail(p, &p->tok, "expected the endogenous variables before '~' in the IV part"); return; }
      lex(p);
      if (!parse_terms(p, &inst, NULL)) return;
      if (p->tok.kind == T_TILDE) { fail(p, &p->tok, "a second '~' in the IV part (endog ~ instruments)"); return; }
      if (!check_part(p, &inst, "IV part", 0)) return;
      have_iv = 1;
    } else {
      if (fm->nparts == 3 && p->tok.kind == T_BAR) {
        fail(p, &p->tok, "a formula has at most three parts (regressors | fixed effects | IV); this '|' starts a fourth");
        return;
      }
      if (fm->nparts == 3) {
        describe(&p->tok, what, sizeof what);
        fail(p, &p->tok, "expected '~' in the IV part (endog ~ instruments), found %s", what);
        return;
      }
      if (!check_part(p, &part, "fixed effects", 1)) return;
      fe = part;
    }
  }
  if (p->tok.kind != T_END) {
    describe(&p->tok, what, sizeof what);
    fail(p, &p->tok, "unexpected %s", what);
    return;
  }
  fm->rhs = to_array(&rhs, &fm->nrhs);
  fm->fe = to_array(&fe, &fm->nfe);
  fm->endog = to_array(&endog, &fm->nendog);
  fm->inst = to_array(&inst, &fm->ninst);

  nvec vars = {0};
  if (!collect_vars(p, &vars, fm->lhs)) return;
  sp_fnode **lists[] = {fm->rhs, fm->fe, fm->endog, fm->inst};
  size_t counts[] = {fm->nrhs, fm->nfe, fm->nendog, fm->ninst};
  for (size_t l = 0; l < 4; l++)
    for (size_t i = 0; i < counts[l]; i++)
      if (!collect_vars(p, &vars, lists[l][i])) return;
  fm->vars = arena_alloc(p->a, (vars.n ? vars.n : 1) * sizeof *fm->vars);
  if (fm->vars == NULL) { nomem(p); return; }
  for (size_t i = 0; i < vars.n; i++) fm->vars[i] = vars.v[i]->name;
  fm->nvars = vars.n;
}

/* }==================================================================== */

int sp_formula_parse(const char *text, sp_formula **out, sp_error *err) {
  return sp_formula_parse_flags(text, 0, out, err);
}

int sp_formula_parse_flags(const char *text, int flags, sp_formula **out, sp_error *err) {
  *out = NULL;
  if (text == NULL) return sp_error_set(err, SP_EVALUE, "no formula given");
  arena *a = calloc(1, sizeof *a);
  if (a == NULL) return sp_error_set(err, SP_ENOMEM, "out of memory parsing a formula");
  sp_formula *fm = arena_alloc(a, sizeof *fm);
  char *copy = fm ? arena_strndup(a, text, strlen(text)) : NULL;
  if (copy == NULL) {
    arena_free(a);
    return sp_error_set(err, SP_ENOMEM, "out of memory parsing a formula");
  }
  fm->text = copy;
  fm->arena = a;
  parser p;
  memset(&p, 0, sizeof p);
  p.text = copy;
  p.len = strlen(copy);
  p.line = p.col = 1;
  p.a = a;
  p.fm = fm;
  p.err = err;
  p.flags = flags;
  p.tok.kind = T_END;  /* "previous" of the first token: the start */
  parse_formula(&p);
  if (p.failed) {
    arena_free(a);
    return err ? err->code : SP_EPARSE;
  }
  *out = fm;
  return SP_OK;
}

void sp_formula_free(sp_formula *fm) {
  if (fm == NULL) return;
  arena_free(fm->arena);  /* fm itself lives in the arena */
}

const char *const *sp_formula_vars(const sp_formula *fm, size_t *n) {
  *n = fm->nvars;
  return fm->vars;
}
