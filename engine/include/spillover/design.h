/*
** design.h: design matrices from a frame and a formula.
**
** Two phases, as GSL workspaces do, so the caller owns the outputs:
**
**   sp_design *d;
**   sp_design_plan(frame, formula, &opt, &d, &err);    resolve, evaluate, select rows
**   allocate y (n x 1; NULL without a response), X (n x k), endog (n x p_endog), inst (n x p_inst)
**   sp_design_fill(d, y, X, endog, inst, &err);         copy the columns in
**   sp_design_detach(d);                                 optional: forget the frame
**   sp_design_free(d);
**
** Until sp_design_fill has run (or sp_design_detach), the design reads the
** frame's columns: the frame must stay alive and unchanged in between.
** Everything else in the design (names, rows, FE codes, extras, notes) is
** owned by the design and outlives the frame.
**
** Rows: listwise deletion over y, X, the fixed effects, the IV variables and
** the extra variables.  A value is missing when it is NaN or infinite (or a
** missing category); derived values (log of a non-positive number, a lag
** that falls outside the panel or on a gap) are missing too.  Domain
** problems (log/sqrt of values out of range, non-finite arithmetic) do not
** fail: they are counted in `notes`.
**
** X columns: the intercept first (if any: the formula keeps it unless '- 1'
** or '+ 0', and fixed effects drop it), then the terms in formula order.
** Names: "(Intercept)", "x", "log(x)", "l(x, 1)", "x1:x2", factor dummies
** "f::level", slopes "f::level:x".
*/
#ifndef SPILLOVER_DESIGN_H
#define SPILLOVER_DESIGN_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_matrix.h>

#include "spillover/error.h"
#include "spillover/formula.h"
#include "spillover/frame.h"
#include "spillover/rows.h"

typedef struct sp_design_options {
  const char *const *extra;  /* frame variables an estimator needs over the same rows
                                (cluster variables...); may be NULL */
  size_t nextra;
  int intercept;             /* -1: as the formula says (default); 0: never; 1: always,
                                even with fixed effects */
  int threads;               /* 1 (default) or 2: the passes over the rows (missing
                                mask, factor coding, sp_design_fill) run in two
                                chunks on two threads; results are identical */
} sp_design_options;

void sp_design_options_init(sp_design_options *opt);

/* A fixed effect or extra variable over the used rows. */
typedef struct sp_design_factor {
  char *name;          /* "state", or "state^year" for a combined fixed effect */
  size_t nlevels;      /* levels present in the used rows */
  int32_t *code;       /* n codes in [0, nlevels): sorted order of the values (numbers
                          numerically, strings bytewise); for a^b, of the pairs */
  double *num;         /* extras only: n numeric values, or NULL for a categorical variable
                          or while only lev is kept (read them with sp_design_factor_values) */
  double *lev;         /* a plain numeric variable: its nlevels sorted distinct values, so
                          that num[i] == lev[code[i]]; NULL otherwise */
} sp_design_factor;

struct sp_design_src;

typedef struct sp_design {
  size_t nrow;            /* rows of the frame */
  size_t n;               /* rows used */
  size_t *rows;           /* n row numbers (0-based, increasing) into the frame; NULL when
                             every row is used (n == nrow): used row i is frame row i */
  char *yname;            /* the dependent variable's label; NULL for a formula without one */
  size_t k;               /* columns of X */
  char **names;           /* k column names */
  int intercept;          /* X has an intercept column (the first) */
  size_t p_endog, p_inst; /* IV part: endogenous regressors and excluded instruments */
  char **endog_names, **inst_names;
  size_t nfe;
  sp_design_factor *fe;   /* nfe fixed effects */
  size_t nextra;
  sp_design_factor *extra;/* nextra extra variables, in the order asked */
  size_t dropped;         /* nrow - n */
  size_t dropped_missing; /* of those, rows where a variable used is missing in the data */
  size_t dropped_derived; /* the others: lags beyond the panel, log of non-positive values... */
  size_t nnotes;
  char **notes;           /* warnings, e.g. "log(x): 3 non-positive values set to missing" */
  struct sp_design_src *src;  /* private: what sp_design_fill reads */
} sp_design;

/* Resolve the formula's variables in f, evaluate every term, select the rows
   and recode the factors.  opt may be NULL (defaults).  Errors: an unknown
   variable (SP_ENOTFOUND, with a "did you mean"), l()/f()/d() without a
   panel index (SP_EVALUE), a categorical variable where a number is needed
   (SP_EVALUE), an unknown reference level (SP_ENOTFOUND), no complete rows
   (SP_EMISSING), threads other than 1 or 2 (SP_EVALUE).  Errors about a
   term carry its position in the formula. */
int sp_design_plan(const sp_frame *f, const sp_formula *fm, const sp_design_options *opt,
                   sp_design **out, sp_error *err);

/* Copy the columns into caller-allocated matrices: y n x 1, X n x k, endog
   n x p_endog, inst n x p_inst.  Any of them may be NULL to skip it.  Wrong
   sizes give SP_EDIM; a detached design gives SP_EVALUE. */
int sp_design_fill(const sp_design *d, gsl_matrix *y, gsl_matrix *X, gsl_matrix *endog,
                   gsl_matrix *inst, sp_error *err);

/* Release the evaluated columns and the references to the frame (after the
   fill): the design then keeps only its own metadata. */
void sp_design_detach(sp_design *d);

/* 1 when every column of y and X is the intercept or a numeric column of
   f (the frame the design was planned on) read in place, which f still
   holds unchanged: the same array and the same serial (frame.h), whatever
   else changed in f.  0 for derived terms, dummies and interactions (their
   buffers are freed by the detach), or a column replaced or dropped since. */
int sp_design_readable(const sp_design *d, const sp_frame *f);

/* After a fill (and a detach), copy y and X again from f when
   sp_design_readable(d, f): an estimator that transformed them in place (the
   within transformation) restores them in one pass instead of working on a
   copy, and a design whose block was never filled fills it on first use.
   Returns 1 when the columns are (with check_only: can be) re-read, 0 when
   not (not readable, wrong sizes), leaving y and X untouched. */
int sp_design_refill(const sp_design *d, const sp_frame *f, gsl_matrix *y, gsl_matrix *X, int check_only);

/* [y X] (y first) as a row source (rows.h) read from f's columns, never
   stored: for a fit that reads the design's block a few times and does not
   need a copy of it.  Valid while d and f live and f keeps the columns
   (sp_design_readable).  0 when set; -1 when the design has no response, is
   not readable from f, or has more than SP_ROWS_MAXSEL - 1 columns. */
typedef struct sp_design_rows {
  sp_rows rows;                           /* n x (1 + k) */
  const size_t *index;                    /* d->rows: frame row of each used row, or NULL */
  const double *col[SP_ROWS_MAXSEL];      /* y, then X's columns; NULL: the intercept */
} sp_design_rows;
int sp_design_rows_init(sp_design_rows *s, const sp_design *d, const sp_frame *f);

void sp_design_free(sp_design *d);

/* The fixed effect or extra variable called name, or NULL. */
const sp_design_factor *sp_design_factor_find(const sp_design *d, const char *name);

/* 1 when x is a numeric extra variable of d (its values can be read), else 0. */
int sp_design_factor_numeric(const sp_design *d, const sp_design_factor *x);

/* The n values over the used rows of x, a numeric extra variable of d.  One
   whose values repeat (a cluster or period identifier) is kept as its level
   values and codes, and its values are materialised here on first use and
   kept: at 1e7 rows a cluster variable costs 80 MB only if an estimator
   reads its values.  -0 and 0 are one level, so a -0 may come back as 0.
   NULL with err set for a fixed effect, a categorical variable or no memory. */
const double *sp_design_factor_values(sp_design *d, const sp_design_factor *x, sp_error *err);

#endif
