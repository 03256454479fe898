/*
** test_design.c: design matrices on a small hand-made panel: exact y and X,
** names, listwise deletion, lags across a gap, factors, fixed effects, IV,
** extras, notes, and every design-time error.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_matrix.h>

#include "spillover/design.h"
#include "spillover/formula.h"
#include "spillover/frame.h"
#include "spillover/mem.h"
#include "spillover/panel.h"

static int passed, failed;

static void check(int ok, const char *what, const char *detail) {
  if (ok) { passed++; printf("PASS %s\n", what); }
  else { failed++; printf("FAIL %s%s%s\n", what, detail ? ": " : "", detail ? detail : ""); }
}

#define NR 8
/*        row:    0     1     2     3     4     5     6     7
   id:            1     1     1     1     2     2     2     3
   year:       2000  2001  2003  2004  2000  2001  2002  2000   (id 1 has a gap in 2002)
   region:        W     E     N     W     E     N     W     E                      */
static const double ID[NR] = {1, 1, 1, 1, 2, 2, 2, 3};
static const double YEAR[NR] = {2000, 2001, 2003, 2004, 2000, 2001, 2002, 2000};
static const double Y[NR] = {10.5, 11, 12.25, 13, 14, 15.5, 16, 17};
static const double X[NR] = {1, 2, 3, 4, 5, 6, 7, 8};
static const double Z[NR] = {0.5, 1, NAN, 2, 4, 8, 16, 32};
static const double V[NR] = {1, 0, 2, -1, 3, 4, 5, 6};
static const double W[NR] = {2.5, 1.5, 3.5, 0.25, 7, 1, 2, 9};

static char *dup(const char *s) {
  char *d = malloc(strlen(s) + 1);
  strcpy(d, s);
  return d;
}

static void add_num(sp_frame *f, const char *name, const double *v) {
  double *a = sp_mem_doubles(NR);
  memcpy(a, v, NR * sizeof *a);
  sp_frame_add_numeric(f, name, a, NULL);
}

static sp_frame *make_frame(int with_panel) {
  sp_error err;
  sp_error_clear(&err);
  sp_frame *f = sp_frame_new(NR, &err);
  add_num(f, "id", ID);
  add_num(f, "year", YEAR);
  add_num(f, "y", Y);
  add_num(f, "x", X);
  add_num(f, "z", Z);
  add_num(f, "v", V);
  add_num(f, "w", W);
  /* Dictionary deliberately unsorted: West, East, North. */
  int32_t *code = sp_mem_alloc(NR * sizeof *code);
  static const int32_t rc[NR] = {0, 1, 2, 0, 1, 2, 0, 1};
  memcpy(code, rc, sizeof rc);
  char **lv = malloc(3 * sizeof *lv);
  lv[0] = dup("West");
  lv[1] = dup("East");
  lv[2] = dup("North");
  sp_frame_add_categorical(f, "region", code, lv, 3, NULL);
  if (with_panel) {
    sp_panel *p = NULL;
    if (sp_panel_build(f, "id", "year", &p, &err) != SP_OK) printf("panel: %s\n", err.msg);
    sp_frame_set_panel(f, p);
  }
  return f;
}

typedef struct {
  sp_design *d;
  gsl_matrix *y, *X, *E, *I;
  sp_error err;
  int st;
} built;

static built build(const sp_frame *f, const char *text, const sp_design_options *opt) {
  built b;
  memset(&b, 0, sizeof b);
  sp_error_clear(&b.err);
  sp_formula *fm = NULL;
  b.st = sp_formula_parse(text, &fm, &b.err);
  if (b.st != SP_OK) return b;
  b.st = sp_design_plan(f, fm, opt, &b.d, &b.err);
  sp_formula_free(fm);  /* the design must not need the formula any more */
  if (b.st != SP_OK) return b;
  sp_design *d = b.d;
  b.y = gsl_matrix_alloc(d->n, 1);
  b.X = d->k ? gsl_matrix_alloc(d->n, d->k) : NULL;
  b.E = d->p_endog ? gsl_matrix_alloc(d->n, d->p_endog) : NULL;
  b.I = d->p_inst ? gsl_matrix_alloc(d->n, d->p_inst) : NULL;
  b.st = sp_design_fill(d, b.y, b.X, b.E, b.I, &b.err);
  return b;
}

static void release(built *b) {
  if (b->y) gsl_matrix_free(b->y);
  if (b->X) gsl_matrix_free(b->X);
  if (b->E) gsl_matrix_free(b->E);
  if (b->I) gsl_matrix_free(b->I);
  sp_design_free(b->d);
}

/* Compare a filled matrix with row-major expected values, exactly. */
static void expect_matrix(const char *what, const gsl_matrix *m, const double *want, size_t r, size_t c) {
  char detail[200] = "";
  int ok = m != NULL && m->size1 == r && m->size2 == c;
  for (size_t i = 0; ok && i < r; i++)
    for (size_t j = 0; ok && j < c; j++)
      if (gsl_matrix_get(m, i, j) != want[i * c + j]) {
        ok = 0;
        snprintf(detail, sizeof detail, "[%zu,%zu] = %.17g, want %.17g", i, j, gsl_matrix_get(m, i, j), want[i * c + j]);
      }
  if (m == NULL || m->size1 != r || m->size2 != c) snprintf(detail, sizeof detail, "wrong shape");
  check(ok, what, detail);
}

static void expect_names(const char *what, char **names, size_t k, const char *want) {
  char buf[600] = "";
  for (size_t j = 0; j < k; j++) {
    if (j) strcat(buf, ",");
    strcat(buf, names[j]);
  }
  check(strcmp(buf, want) == 0, what, buf);
}

static void expect_rows(const char *what, const sp_design *d, const size_t *want, size_t n) {
  int ok = d->n == n;
  for (size_t i = 0; ok && i < n; i++) ok = (d->rows ? d->rows[i] : i) == want[i];
  check(ok, what, NULL);
}

/* The plan must fail with code, col (0: no column) and msg containing want. */
static void expect_error(const sp_frame *f, const char *text, const sp_design_options *opt, int code,
                         long col, const char *want) {
  built b = build(f, text, opt);
  char what[300], detail[1200];
  snprintf(what, sizeof what, "design error for \"%s\": %s", text, want);
  snprintf(detail, sizeof detail, "status %d col %ld msg %s", b.st, b.err.col, b.err.msg);
  check(b.st == code && b.d == NULL && (col == 0 || b.err.col == col) && strstr(b.err.msg, want) != NULL,
        what, detail);
  release(&b);
}

int main(void) {
  gsl_set_error_handler_off();
  sp_frame *f = make_frame(1);

  {
    built b = build(f, "y ~ x + z", NULL);
    check(b.st == SP_OK, "y ~ x + z builds", b.err.msg);
    if (b.st == SP_OK) {
      static const size_t rows[] = {0, 1, 3, 4, 5, 6, 7};
      expect_rows("listwise deletion drops the row with z missing", b.d, rows, 7);
      static const double y[] = {10.5, 11, 13, 14, 15.5, 16, 17};
      expect_matrix("y", b.y, y, 7, 1);
      static const double x[] = {1, 1, 0.5, 1, 2, 1, 1, 4, 2, 1, 5, 4, 1, 6, 8, 1, 7, 16, 1, 8, 32};
      expect_matrix("X = [1 x z]", b.X, x, 7, 3);
      expect_names("names", b.d->names, b.d->k, "(Intercept),x,z");
      check(strcmp(b.d->yname, "y") == 0, "yname", b.d->yname);
      check(b.d->dropped == 1 && b.d->dropped_missing == 1 && b.d->dropped_derived == 0, "dropped 1, missing", NULL);
      check(b.d->intercept == 1 && b.d->nfe == 0 && b.d->p_endog == 0, "intercept, no fe, no iv", NULL);
    }
    release(&b);
  }
  {
    /* Lags follow the panel: row 2 (2003) has no 2002, so its lag is missing. */
    built b = build(f, "y ~ l(x, 1) - 1", NULL);
    check(b.st == SP_OK, "lag builds", b.err.msg);
    if (b.st == SP_OK) {
      static const size_t rows[] = {1, 3, 5, 6};
      expect_rows("l(x, 1): rows with a previous period", b.d, rows, 4);
      static const double x[] = {1, 3, 5, 6};
      expect_matrix("l(x, 1) values", b.X, x, 4, 1);
      expect_names("lag name", b.d->names, b.d->k, "l(x, 1)");
      check(b.d->dropped_derived == 4 && b.d->dropped_missing == 0, "lag drops counted as derived", NULL);
    }
    release(&b);
  }
  {
    built b = build(f, "y ~ 0 + d(x) + f(x, 1) + l(x, -1)", NULL);
    check(b.st == SP_OK, "diff and lead build", b.err.msg);
    if (b.st == SP_OK) {
      /* d(x) exists at rows 1,3,5,6; f(x,1) at rows 0,2,4,5: both at row 5 only. */
      static const size_t rows[] = {5};
      expect_rows("d(x) and f(x, 1) together: row 5", b.d, rows, 1);
      static const double x[] = {1, 7, 7};
      expect_matrix("d(x), f(x, 1), l(x, -1)", b.X, x, 1, 3);
      expect_names("diff/lead names", b.d->names, b.d->k, "d(x),f(x, 1),l(x, -1)");
    }
    release(&b);
  }
  {
    built b = build(f, "y ~ d(x, 2) - 1", NULL);
    check(b.st == SP_OK, "d(x, 2) builds", b.err.msg);
    if (b.st == SP_OK) {
      /* Two-period difference: x(t) - x(t-2): row 2 (2003 - 2001) and row 6 (2002 - 2000). */
      static const size_t rows[] = {2, 6};
      expect_rows("d(x, 2) rows", b.d, rows, 2);
      static const double x[] = {1, 2};
      expect_matrix("d(x, 2) is a two-period difference", b.X, x, 2, 1);
    }
    release(&b);
  }
  {
    built b = build(f, "y ~ i(region) + I(x^2) + x:w + log(w)", NULL);
    check(b.st == SP_OK, "factor and functions build", b.err.msg);
    if (b.st == SP_OK) {
      expect_names("i(region) drops the first sorted level (East)", b.d->names, b.d->k,
                   "(Intercept),region::North,region::West,I(x^2),x:w,log(w)");
      double want[NR * 6];
      static const int reg[NR] = {0, 1, 2, 0, 1, 2, 0, 1};  /* W E N */
      for (int r = 0; r < NR; r++) {
        double *o = want + r * 6;
        o[0] = 1;
        o[1] = reg[r] == 2;
        o[2] = reg[r] == 0;
        o[3] = X[r] * X[r];
        o[4] = X[r] * W[r];
        o[5] = log(W[r]);
      }
      expect_matrix("X with dummies, square, product, log", b.X, want, NR, 6);
    }
    release(&b);
  }
  {
    built b = build(f, "y ~ i(region, x) + i(region, ref = \"West\") - 1", NULL);
    check(b.st == SP_OK, "slopes and ref build", b.err.msg);
    if (b.st == SP_OK) {
      expect_names("i(f, x) keeps all levels; ref drops West", b.d->names, b.d->k,
                   "region::East:x,region::North:x,region::West:x,region::East,region::North");
      check(gsl_matrix_get(b.X, 1, 0) == 2 && gsl_matrix_get(b.X, 1, 1) == 0 && gsl_matrix_get(b.X, 2, 1) == 3 &&
                gsl_matrix_get(b.X, 0, 2) == 1 && gsl_matrix_get(b.X, 0, 3) == 0 && gsl_matrix_get(b.X, 1, 3) == 1,
            "slope and dummy values", NULL);
    }
    release(&b);
  }
  {
    built b = build(f, "y ~ x:region + region:w:x", NULL);
    check(b.st == SP_OK, "factor x numeric interaction builds", b.err.msg);
    if (b.st == SP_OK) {
      expect_names("interaction names keep the written order", b.d->names, b.d->k,
                   "(Intercept),x:region::East,x:region::North,x:region::West,"
                   "region::East:w:x,region::North:w:x,region::West:w:x");
      check(gsl_matrix_get(b.X, 4, 1) == 5 && gsl_matrix_get(b.X, 4, 4) == 35 && gsl_matrix_get(b.X, 4, 5) == 0,
            "slope values per level", NULL);
    }
    release(&b);
  }
  {
    built b = build(f, "y ~ x | id + year", NULL);
    check(b.st == SP_OK, "fixed effects build", b.err.msg);
    if (b.st == SP_OK) {
      expect_names("fixed effects drop the intercept", b.d->names, b.d->k, "x");
      check(b.d->nfe == 2 && strcmp(b.d->fe[0].name, "id") == 0 && b.d->fe[0].nlevels == 3 &&
                strcmp(b.d->fe[1].name, "year") == 0 && b.d->fe[1].nlevels == 5,
            "fe names and level counts", NULL);
      static const int32_t yc[NR] = {0, 1, 3, 4, 0, 1, 2, 0};
      check(memcmp(b.d->fe[1].code, yc, sizeof yc) == 0, "year codes in sorted order", NULL);
      check(b.d->fe[0].code[7] == 2 && b.d->fe[0].code[4] == 1, "id codes", NULL);
    }
    release(&b);
  }
  {
    built b = build(f, "y ~ x | region^id", NULL);
    check(b.st == SP_OK, "combined fixed effect builds", b.err.msg);
    if (b.st == SP_OK) {
      /* Pairs (W,1) (E,1) (N,1) (W,1) (E,2) (N,2) (W,2) (E,3): 7 distinct. */
      check(b.d->nfe == 1 && strcmp(b.d->fe[0].name, "region^id") == 0 && b.d->fe[0].nlevels == 7,
            "region^id has 7 levels", NULL);
      check(b.d->fe[0].code[0] == b.d->fe[0].code[3] && b.d->fe[0].code[0] != b.d->fe[0].code[6],
            "same pair, same code", NULL);
    }
    release(&b);
  }
  {
    sp_design_options opt;
    sp_design_options_init(&opt);
    const char *extra[] = {"region", "w"};
    opt.extra = extra;
    opt.nextra = 2;
    built b = build(f, "y ~ x | id | z ~ w + v", &opt);
    check(b.st == SP_OK, "IV with extras builds", b.err.msg);
    if (b.st == SP_OK) {
      check(b.d->p_endog == 1 && b.d->p_inst == 2 && b.d->k == 1, "IV sizes", NULL);
      expect_names("endog names", b.d->endog_names, b.d->p_endog, "z");
      expect_names("inst names", b.d->inst_names, b.d->p_inst, "w,v");
      check(b.d->n == 7, "IV drops the row with z missing", NULL);
      check(gsl_matrix_get(b.E, 2, 0) == 2 && gsl_matrix_get(b.I, 2, 0) == 0.25 && gsl_matrix_get(b.I, 2, 1) == -1,
            "endog and instruments values (third used row is frame row 3)", NULL);
      const sp_design_factor *r = sp_design_factor_find(b.d, "region");
      const sp_design_factor *w = sp_design_factor_find(b.d, "w");
      check(r && r->nlevels == 3 && r->num == NULL && r->code[0] == 2 && r->code[1] == 0, "extra region codes", NULL);
      sp_error verr;
      sp_error_clear(&verr);
      check(r && !sp_design_factor_numeric(b.d, r) && sp_design_factor_values(b.d, r, &verr) == NULL &&
            strcmp(verr.var, "region") == 0, "a categorical extra has no values (error names it)", verr.msg);
      check(w && w->num && w->num[2] == 0.25 && w->nlevels == 7, "extra w values", NULL);
    }
    release(&b);
  }
  {
    /* Every row used: no row index (NULL), and the fill, the codes and the
       extras read frame row i for used row i. */
    sp_design_options opt;
    sp_design_options_init(&opt);
    const char *extra[] = {"w", "id"};
    opt.extra = extra;
    opt.nextra = 2;
    built b = build(f, "y ~ x + v | id", &opt);
    check(b.st == SP_OK, "all rows: builds", b.err.msg);
    if (b.st == SP_OK) {
      check(b.d->n == NR && b.d->rows == NULL, "all rows used: no row index", NULL);
      static const size_t rows[] = {0, 1, 2, 3, 4, 5, 6, 7};
      expect_rows("all rows used: used row i is frame row i", b.d, rows, NR);
      static const double x[] = {1, 1, 2, 0, 3, 2, 4, -1, 5, 3, 6, 4, 7, 5, 8, 6};
      expect_matrix("all rows used: X = [x v]", b.X, x, NR, 2);
      expect_matrix("all rows used: y", b.y, Y, NR, 1);
      const sp_design_factor *w = sp_design_factor_find(b.d, "w");
      int ok = w && w->num;
      for (size_t i = 0; ok && i < NR; i++) ok = w->num[i] == W[i];
      check(ok, "all rows used: extra w values", NULL);
      /* An extra variable that is a fixed effect shares its codes (freed once: ASan). */
      const sp_design_factor *id = &b.d->extra[1];
      check(id->code == b.d->fe[0].code && id->nlevels == 3 && id->lev == b.d->fe[0].lev,
            "extra id: the fixed effect's codes and levels", NULL);
      /* An identifier (3 levels on 8 rows) keeps its levels; its values are
         materialised when asked, once. */
      check(id->num == NULL && sp_design_factor_numeric(b.d, id), "extra id: numeric, values not copied yet", NULL);
      sp_error verr;
      sp_error_clear(&verr);
      const double *iv = sp_design_factor_values(b.d, id, &verr);
      static const double ids[] = {1, 1, 1, 1, 2, 2, 2, 3};
      int same = iv != NULL;
      for (size_t i = 0; same && i < NR; i++) same = iv[i] == ids[i];
      check(same && id->num == iv && sp_design_factor_values(b.d, id, &verr) == iv,
            "extra id: values from the levels, kept", verr.msg);
      check(w->lev == NULL, "extra w: distinct values copied at once, no levels", NULL);
      check(!sp_design_factor_numeric(b.d, &b.d->fe[0]) && sp_design_factor_values(b.d, &b.d->fe[0], &verr) == NULL &&
            strstr(verr.msg, "not a numeric extra") != NULL, "a fixed effect has no values", verr.msg);
      check(b.d->fe[0].nlevels == 3 && b.d->fe[0].code[3] == 0 && b.d->fe[0].code[4] == 1 && b.d->fe[0].code[7] == 2,
            "all rows used: fixed-effect codes", NULL);
      /* sp_design_refill: overwrite y and X, re-read them from the frame. */
      check(sp_design_refill(b.d, f, b.y, b.X, 1) == 1, "refill: plain columns can be re-read", NULL);
      gsl_matrix_set_all(b.y, -1);
      gsl_matrix_set_all(b.X, -1);
      check(sp_design_refill(b.d, f, b.y, b.X, 0) == 1, "refill: re-read", NULL);
      expect_matrix("refill: X again", b.X, x, NR, 2);
      expect_matrix("refill: y again", b.y, Y, NR, 1);
      gsl_matrix *X3 = gsl_matrix_alloc(NR, 3);
      check(sp_design_refill(b.d, f, b.y, X3, 0) == 0, "refill: refuses a matrix of the wrong size", NULL);
      gsl_matrix_free(X3);
    }
    release(&b);
  }
  {
    /* A dropped row keeps the row index; refill follows it; derived columns are not re-read. */
    built b = build(f, "y ~ x + z", NULL);
    check(b.st == SP_OK && b.d->rows != NULL, "a dropped row: row index kept", b.err.msg);
    if (b.st == SP_OK) {
      gsl_matrix_set_all(b.X, 0);
      check(sp_design_refill(b.d, f, b.y, b.X, 0) == 1, "refill with a row index and an intercept", NULL);
      static const double x[] = {1, 1, 0.5, 1, 2, 1, 1, 4, 2, 1, 5, 4, 1, 6, 8, 1, 7, 16, 1, 8, 32};
      expect_matrix("refill: X = [1 x z] over the used rows", b.X, x, 7, 3);
    }
    release(&b);
    b = build(f, "y ~ log(x) + x:v", NULL);
    check(b.st == SP_OK, "derived terms build", b.err.msg);
    if (b.st == SP_OK) {
      gsl_matrix_set_all(b.X, 7);
      check(sp_design_refill(b.d, f, b.y, b.X, 0) == 0 && gsl_matrix_get(b.X, 0, 1) == 7,
            "refill: derived and product columns are not re-read (X untouched)", NULL);
    }
    release(&b);
  }
  {
    built b = build(f, "y ~ log(v) + sqrt(v)", NULL);
    check(b.st == SP_OK, "log of non-positive values builds", b.err.msg);
    if (b.st == SP_OK) {
      check(b.d->n == 6 && b.d->dropped_derived == 2, "two rows dropped by log", NULL);
      check(b.d->nnotes == 2 && strcmp(b.d->notes[0], "log(v): 2 non-positive values set to missing") == 0 &&
                strcmp(b.d->notes[1], "sqrt(v): 1 negative value set to missing") == 0,
            "notes count the domain problems", b.d->nnotes ? b.d->notes[0] : "none");
    }
    release(&b);
  }
  {
    /* asinh is defined on every real: v's zero and negative value stay, with no note. */
    built b = build(f, "asinh(y) ~ asinh(v) - 1", NULL);
    check(b.st == SP_OK, "asinh builds", b.err.msg);
    if (b.st == SP_OK) {
      check(b.d->n == NR && b.d->dropped == 0 && b.d->nnotes == 0, "asinh keeps every row, no note", NULL);
      /* to 4e-16 relative, not bit for bit: at -O2 the compiler folds asinh of
         the test's constants exactly rounded, while glibc's asinh may be 1 ulp off */
      int close = b.X->size1 == NR && b.y->size1 == NR;
      for (int r = 0; close && r < NR; r++) {
        close = fabs(gsl_matrix_get(b.X, r, 0) - asinh(V[r])) <= 4e-16 * fabs(asinh(V[r])) &&
                fabs(gsl_matrix_get(b.y, r, 0) - asinh(Y[r])) <= 4e-16 * fabs(asinh(Y[r]));
      }
      check(close, "asinh(v) values and asinh(y) response", NULL);
      expect_names("asinh name", b.d->names, b.d->k, "asinh(v)");
      check(strcmp(b.d->yname, "asinh(y)") == 0, "asinh yname", b.d->yname);
    }
    release(&b);
  }
  {
    sp_design_options opt;
    sp_design_options_init(&opt);
    opt.intercept = 0;
    built b = build(f, "y ~ x", &opt);
    check(b.st == SP_OK && b.d->k == 1 && b.d->intercept == 0, "intercept = 0 option", NULL);
    release(&b);
    opt.intercept = 1;
    b = build(f, "y ~ x | id", &opt);
    check(b.st == SP_OK && b.d->k == 2 && b.d->intercept == 1, "intercept = 1 keeps it with fe", NULL);
    release(&b);
  }
  {
    /* Fill checks sizes, and a detached design refuses to fill. */
    sp_formula *fm = NULL;
    sp_design *d = NULL;
    sp_error err;
    sp_error_clear(&err);
    sp_formula_parse("y ~ x", &fm, &err);
    sp_design_plan(f, fm, NULL, &d, &err);
    gsl_matrix *bad = gsl_matrix_alloc(3, 2);
    int st = sp_design_fill(d, NULL, bad, NULL, NULL, &err);
    check(st == SP_EDIM && strstr(err.msg, "X is 3 x 2 but the design needs 8 x 2") != NULL, "fill: wrong size", err.msg);
    sp_design_detach(d);
    st = sp_design_fill(d, NULL, NULL, NULL, NULL, &err);
    check(st == SP_EVALUE && strstr(err.msg, "detached") != NULL, "fill after detach", err.msg);
    gsl_matrix_free(bad);
    sp_design_free(d);
    sp_formula_free(fm);
  }

  /* Errors. */
  expect_error(f, "y ~ xx", NULL, SP_ENOTFOUND, 5, "unknown variable 'xx'; did you mean 'x'?");
  expect_error(f, "y ~ x + log(qqqqqq)", NULL, SP_ENOTFOUND, 13, "unknown variable 'qqqqqq' (not a column");
  expect_error(f, "y ~ region", NULL, SP_EVALUE, 5, "'region' is categorical but a number is needed here; use i(region)");
  expect_error(f, "region ~ x", NULL, SP_EVALUE, 1, "'region' is categorical");
  expect_error(f, "y ~ i(region, ref = \"South\")", NULL, SP_ENOTFOUND, 5,
               "reference level 'South' is not a level of 'region' in the rows used (levels: 'East', 'North', 'West')");
  expect_error(f, "y ~ region:region", NULL, SP_EVALUE, 12, "an interaction of two categorical variables");
  expect_error(f, "y ~ x | idd", NULL, SP_ENOTFOUND, 9, "did you mean 'id'?");
  {
    sp_design_options opt;
    sp_design_options_init(&opt);
    const char *extra[] = {"regoin"};
    opt.extra = extra;
    opt.nextra = 1;
    expect_error(f, "y ~ x", &opt, SP_ENOTFOUND, 0, "unknown extra variable 'regoin'; did you mean 'region'?");
  }
  expect_error(f, "y ~ log(v - 10)", NULL, SP_EMISSING, 0, "no complete rows");
  sp_frame *g = make_frame(0);
  expect_error(g, "y ~ x + l(x, 1)", NULL, SP_EVALUE, 9, "l(x, 1) needs a panel: call d:panel{entity=, time=}");
  expect_error(g, "y ~ d(x)", NULL, SP_EVALUE, 5, "d(x) needs a panel");
  {
    built b = build(f, "y ~ x + qq", NULL);
    char buf[1200];
    sp_error_format(&b.err, buf, sizeof buf);
    check(strncmp(buf, "formula:1:9: unknown variable 'qq'", 34) == 0 && strcmp(b.err.var, "qq") == 0 &&
              strstr(buf, "\n  y ~ x + qq\n          ^") != NULL,
          "semantic errors have position, caret and variable", buf);
    release(&b);
  }
  {
    /* The scan cache: a design records what it read of each column; the
       next design over the same columns reads nothing and gives the same
       rows, codes and values; a replaced column is read again. */
    sp_frame *h = make_frame(0);
    const sp_column *cx = sp_frame_column(h, "x"), *cz = sp_frame_column(h, "z"), *ci = sp_frame_column(h, "id");
    check(!cx->scan.known && !cz->scan.known, "scan cache: unknown before any design", NULL);
    built a = build(h, "y ~ x + z | id", NULL);
    check(a.st == SP_OK && cx->scan.known && !cx->scan.missing && !cx->scan.frac && cx->scan.lo == 1 &&
              cx->scan.hi == 8 && cz->scan.known && cz->scan.missing && cz->scan.frac && cz->scan.lo == 0.5 &&
              cz->scan.hi == 32 && ci->scan.known && ci->scan.lo == 1 && ci->scan.hi == 3,
          "scan cache: range, integers and missing values of x, z and id after a design", NULL);
    built b = build(h, "y ~ x + z | id", NULL);
    int same = b.st == SP_OK && b.d->n == a.d->n && b.d->nfe == 1 && b.d->fe[0].nlevels == a.d->fe[0].nlevels &&
               memcmp(b.d->fe[0].code, a.d->fe[0].code, a.d->n * sizeof(int32_t)) == 0 &&
               memcmp(b.X->data, a.X->data, a.d->n * a.d->k * sizeof(double)) == 0;
    for (size_t i = 0; same && i < a.d->n; i++) same = a.d->rows[i] == b.d->rows[i];
    check(same, "scan cache: a second design gives the same rows, codes and X", NULL);
    release(&b);
    /* Every column known and complete: no mask, every row used. */
    b = build(h, "y ~ x | id", NULL);
    check(b.st == SP_OK && b.d->n == NR && b.d->rows == NULL && b.d->dropped == 0,
          "scan cache: columns known complete use every row", NULL);
    release(&b);
    /* Factor coding keeps whether a whole column is dense (every integer of
       its range present); the next coding skips tracking presence. */
    static const double G[NR] = {1, 1, 5, 5, 9, 9, 9, 1};
    add_num(h, "g", G);
    const sp_column *cg = sp_frame_column(h, "g");
    ci = sp_frame_column(h, "id");
    static const int32_t want_id[NR] = {0, 0, 0, 0, 1, 1, 1, 2}, want_g[NR] = {0, 0, 1, 1, 2, 2, 2, 0};
    for (int round = 0; round < 2; round++) {
      b = build(h, "y ~ x | id", NULL);
      built e = build(h, "y ~ x | g", NULL);
      check(b.st == SP_OK && e.st == SP_OK && b.d->rows == NULL && b.d->fe[0].nlevels == 3 &&
                memcmp(b.d->fe[0].code, want_id, sizeof want_id) == 0 && e.d->fe[0].nlevels == 3 &&
                memcmp(e.d->fe[0].code, want_g, sizeof want_g) == 0 && ci->scan.dense && !cg->scan.dense,
            round == 0 ? "scan cache: id found dense, g (1, 5, 9) not; codes as expected"
                       : "scan cache: id coded as dense, g ranked: the same codes again", NULL);
      release(&b);
      release(&e);
    }
    /* x replaced by values with a missing one: read again, the row dropped. */
    double *x2 = sp_mem_doubles(NR);
    memcpy(x2, X, sizeof X);
    x2[6] = NAN;
    sp_frame_add_numeric(h, "x", x2, NULL);
    cx = sp_frame_column(h, "x");
    check(!cx->scan.known, "scan cache: a replaced column is unknown", NULL);
    b = build(h, "y ~ x | id", NULL);
    static const size_t kept[] = {0, 1, 2, 3, 4, 5, 7};
    if (b.st == SP_OK) expect_rows("scan cache: the replaced column's missing value drops its row", b.d, kept, 7);
    check(b.st == SP_OK && cx->scan.known && cx->scan.missing, "scan cache: the replaced column is scanned", NULL);
    release(&b);
    release(&a);
    sp_frame_free(h);
  }
  sp_frame_free(g);
  sp_frame_free(f);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
