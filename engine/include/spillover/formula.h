/*
** formula.h: the formula language (close to fixest) and its parsed form.
**
**   y ~ x1 + log(x2) + l(x1, 1:2) + x1:x2 + a*b + i(region) | fe1 + fe1^fe2 | w ~ z1 + z2
**
** A formula has up to three parts separated by '|': regressors, absorbed fixed
** effects, and an IV part `endog ~ instruments`.  With two parts, a second
** part containing '~' is the IV part.  Parsing expands `a*b` into a, b, a:b
** and `l(x, 1:2)` into l(x, 1), l(x, 2), drops duplicate terms, and records
** the intercept.  Everything a formula holds lives in one arena that
** sp_formula_free releases, so nodes are never freed one by one.
**
** Positions: line and col are 1-based and count characters (UTF-8 code
** points), not bytes, so a caret under the formula text lines up.
*/
#ifndef SPILLOVER_FORMULA_H
#define SPILLOVER_FORMULA_H

#include <stddef.h>

#include "spillover/error.h"

typedef enum {
  SP_FN_VAR,       /* a variable: name */
  SP_FN_NUM,       /* a number (inside functions and I()): num, text as written */
  SP_FN_OP,        /* + - * / ^ inside I() or a function argument: op, kids[0], kids[1];
                      unary minus has op '-' and nkids == 1 */
  SP_FN_PAREN,     /* parentheses, kept so labels read as written: kids[0] */
  SP_FN_FUNC,      /* log exp sqrt abs asinh: name is the function, kids[0] */
  SP_FN_I,         /* I(expr): kids[0] */
  SP_FN_SHIFT,     /* l(x, k) lag (name "l") or f(x, k) lead (name "f"): kids[0], k */
  SP_FN_DIFF,      /* d(x, k) = x - l(x, k): kids[0], k */
  SP_FN_INTERACT,  /* a:b[:c...]: kids (two or more) */
  SP_FN_FACTOR,    /* i(f [, x] [, ref = level]): kids[0] the factor variable, kids[1] the
                      slope expression when nkids == 2; ref or NULL */
  SP_FN_COMBINE    /* a^b[^c...] in the fixed-effects part: kids are variables */
} sp_fnode_kind;

typedef struct sp_fnode {
  sp_fnode_kind kind;
  const char *name;        /* VAR: the variable; FUNC/SHIFT/DIFF: the function; else NULL */
  const char *text;        /* NUM: the number as written */
  double num;              /* NUM */
  long k;                  /* SHIFT/DIFF: periods as written (lead: l(x,-k) == f(x,k)) */
  char op;                 /* OP: one of + - * / ^ */
  const char *ref;         /* FACTOR: reference level to drop, or NULL */
  struct sp_fnode **kids;
  size_t nkids;
  const char *label;       /* the normalised name: "log(x3)", "l(x1, 1)", "x1:x2", "I(x^2)" */
  size_t pos;              /* byte offset in the formula text */
  long line, col;          /* 1-based position (characters) */
} sp_fnode;

typedef struct sp_formula {
  const char *text;        /* a copy of the formula text */
  sp_fnode *lhs;           /* the dependent variable (a numeric expression); NULL for "~ x"
                              (only with SP_FORMULA_OPTIONAL_RESPONSE) */
  sp_fnode **rhs;          /* regressor terms, in formula order, expanded, no duplicates */
  size_t nrhs;
  int intercept;           /* 1 unless '- 1' or '+ 0' (fixed effects drop it later, in design.c) */
  size_t nremoved;         /* regressor terms written with '-' (x - z), intercept markers aside: an
                              expression evaluator refuses them, where "y - 1" would silently be y */
  sp_fnode **fe;           /* fixed-effect terms: VAR or COMBINE */
  size_t nfe;
  sp_fnode **endog;        /* IV part: endogenous regressors, or NULL */
  size_t nendog;
  sp_fnode **inst;         /* IV part: excluded instruments */
  size_t ninst;
  int nparts;              /* 1, 2 or 3 as written */
  const char **vars;       /* every variable referenced, once each, in order of first use */
  size_t nvars;
  void *arena;             /* private: the storage of everything above */
} sp_formula;

/* Parse text.  On success *out is a new formula (free with sp_formula_free).
   On failure *out is NULL and err holds SP_EPARSE (or SP_ENOMEM) with
   file "formula", line and column of the offending token, and a message whose
   first line says what was expected and whose next lines show the formula
   with a caret under the column. */
int sp_formula_parse(const char *text, sp_formula **out, sp_error *err);

/* sp_formula_parse with flags.  SP_FORMULA_OPTIONAL_RESPONSE accepts a formula
   without a response ("~ x1 + x2 | fe"), whose lhs is NULL: the formula
   object's rewrites (without_response) produce them.  Without it "~ x" is
   the parse error "expected the dependent variable before '~'", since a
   forgotten response is the likelier mistake where an estimator needs one. */
#define SP_FORMULA_OPTIONAL_RESPONSE 1
int sp_formula_parse_flags(const char *text, int flags, sp_formula **out, sp_error *err);
void sp_formula_free(sp_formula *fm);

/* The variables a formula references (also fm->vars): an array owned by fm. */
const char *const *sp_formula_vars(const sp_formula *fm, size_t *n);

/* Fill err with code and a message about node (its position and a caret
   line, as parse errors do); returns code.  For semantic errors found later
   (design.c): unknown variable, no panel, wrong type. */
int sp_formula_error(const sp_formula *fm, const sp_fnode *node, sp_error *err, int code,
                     const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 5, 6)))
#endif
  ;

#endif
