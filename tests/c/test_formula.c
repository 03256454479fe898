/*
** test_formula.c: the formula parser: terms, labels, parts, intercept, and
** every parse error with its column.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/formula.h"

static int passed, failed;

static void check(int ok, const char *what, const char *detail) {
  if (ok) { passed++; printf("PASS %s\n", what); }
  else { failed++; printf("FAIL %s%s%s\n", what, detail ? ": " : "", detail ? detail : ""); }
}

/* Join the labels of a term list with " + " into buf. */
static void labels(sp_fnode **t, size_t n, char *buf, size_t size) {
  buf[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i) strncat(buf, " + ", size - strlen(buf) - 1);
    strncat(buf, t[i]->label, size - strlen(buf) - 1);
  }
}

/* Parse text and compare the regressor labels (and optionally fe, endog, inst). */
static void expect_terms(const char *text, const char *rhs, const char *fe, const char *endog,
                         const char *inst, int intercept) {
  sp_formula *fm = NULL;
  sp_error err;
  sp_error_clear(&err);
  char what[300], buf[1000];
  snprintf(what, sizeof what, "parse \"%s\"", text);
  if (sp_formula_parse(text, &fm, &err) != SP_OK) {
    check(0, what, err.msg);
    return;
  }
  labels(fm->rhs, fm->nrhs, buf, sizeof buf);
  snprintf(what, sizeof what, "\"%s\" regressors = [%s]", text, rhs);
  check(strcmp(buf, rhs) == 0, what, buf);
  if (fe) {
    labels(fm->fe, fm->nfe, buf, sizeof buf);
    snprintf(what, sizeof what, "\"%s\" fe = [%s]", text, fe);
    check(strcmp(buf, fe) == 0, what, buf);
  }
  if (endog) {
    labels(fm->endog, fm->nendog, buf, sizeof buf);
    snprintf(what, sizeof what, "\"%s\" endog = [%s]", text, endog);
    check(strcmp(buf, endog) == 0, what, buf);
    labels(fm->inst, fm->ninst, buf, sizeof buf);
    snprintf(what, sizeof what, "\"%s\" inst = [%s]", text, inst);
    check(strcmp(buf, inst) == 0, what, buf);
  }
  snprintf(what, sizeof what, "\"%s\" intercept = %d", text, intercept);
  check(fm->intercept == intercept, what, NULL);
  sp_formula_free(fm);
}

/* Parsing must fail with SP_EPARSE at col, with msg containing want. */
static void expect_error(const char *text, long col, const char *want) {
  sp_formula *fm = NULL;
  sp_error err;
  sp_error_clear(&err);
  char what[400], detail[1200];
  snprintf(what, sizeof what, "error in \"%s\": col %ld, '%s'", text, col, want);
  int st = sp_formula_parse(text, &fm, &err);
  sp_formula_free(fm);
  snprintf(detail, sizeof detail, "status %d col %ld msg %s", st, err.col, err.msg);
  check(st == SP_EPARSE && fm == NULL && err.col == col && strstr(err.msg, want) != NULL &&
            strcmp(err.file, "formula") == 0,
        what, detail);
}

int main(void) {
  /* Terms, labels and expansion. */
  expect_terms("y ~ x1 + x2", "x1 + x2", "", NULL, NULL, 1);
  expect_terms("y~x1+log(x3)+l(x1,1)+d(x2)+x1:x2", "x1 + log(x3) + l(x1, 1) + d(x2) + x1:x2", "", NULL, NULL, 1);
  expect_terms("y ~ a*b", "a + b + a:b", NULL, NULL, NULL, 1);
  {
    /* Removed terms are counted (intercept markers aside), so that an
       expression evaluator can refuse "y - x", which the formula reads as y. */
    sp_error err;
    sp_formula *fm = NULL;
    check(sp_formula_parse("y ~ a*b - a:b - 1 + c - z", &fm, &err) == SP_OK && fm->nremoved == 2,
          "\"y ~ a*b - a:b - 1 + c - z\" nremoved = 2", NULL);
    sp_formula_free(fm);
    fm = NULL;
    check(sp_formula_parse("y ~ x - 1", &fm, &err) == SP_OK && fm->nremoved == 0, "\"y ~ x - 1\" nremoved = 0", NULL);
    sp_formula_free(fm);
  }
  expect_terms("y ~ a*b*c", "a + b + c + a:b + a:c + b:c + a:b:c", NULL, NULL, NULL, 1);
  expect_terms("y ~ a:b*c", "a:b + c + a:b:c", NULL, NULL, NULL, 1);
  expect_terms("y ~ x + x*z", "x + z + x:z", NULL, NULL, NULL, 1);
  expect_terms("y ~ l(x, 1:3)", "l(x, 1) + l(x, 2) + l(x, 3)", NULL, NULL, NULL, 1);
  expect_terms("y ~ l(x) + f(x, 2) + d(x, 2) + l(x, -1)", "l(x, 1) + f(x, 2) + d(x, 2) + l(x, -1)", NULL, NULL, NULL, 1);
  expect_terms("y ~ I(x^2) + I(x * z) + I((x + 1)/2) + I(-x)", "I(x^2) + I(x * z) + I((x + 1)/2) + I(-x)", NULL, NULL, NULL, 1);
  expect_terms("y ~ log(x + 1) + sqrt(abs(x)) + exp(l(x, 1))", "log(x + 1) + sqrt(abs(x)) + exp(l(x, 1))", NULL, NULL, NULL, 1);
  expect_terms("y ~ i(region) + i(region, x) + i(region, ref = \"West\")",
               "i(region) + i(region, x) + i(region, ref = West)", NULL, NULL, NULL, 1);
  expect_terms("y ~ i(year, ref = 1990)", "i(year, ref = 1990)", NULL, NULL, NULL, 1);
  expect_terms("y ~ x - 1", "x", NULL, NULL, NULL, 0);
  expect_terms("y ~ 0 + x", "x", NULL, NULL, NULL, 0);
  expect_terms("y ~ -1 + x", "x", NULL, NULL, NULL, 0);
  expect_terms("y ~ 1 + x", "x", NULL, NULL, NULL, 1);
  expect_terms("y ~ x + z - z", "x", NULL, NULL, NULL, 1);
  expect_terms("y ~ `my var` + x.1 + _z + r\xc3\xa9gion", "my var + x.1 + _z + r\xc3\xa9gion", NULL, NULL, NULL, 1);
  expect_terms("y ~ x | id + year", "x", "id + year", NULL, NULL, 1);
  expect_terms("y ~ x | id^year + id", "x", "id^year + id", NULL, NULL, 1);
  expect_terms("y ~ x | w ~ z1 + z2", "x", "", "w", "z1 + z2", 1);
  expect_terms("y ~ x | id | w + v ~ z1 + l(z2, 1)", "x", "id", "w + v", "z1 + l(z2, 1)", 1);
  expect_terms("y ~ x | 0 | w ~ z", "x", "", "w", "z", 1);
  expect_terms("log(y) ~ x", "x", NULL, NULL, NULL, 1);
  expect_terms("asinh(y) ~ asinh(x) + asinh(l(x, 1)) + l(asinh(x), 1)", "asinh(x) + asinh(l(x, 1)) + l(asinh(x), 1)",
               NULL, NULL, NULL, 1);

  /* Parts, dependent variable, variable list. */
  {
    sp_formula *fm = NULL;
    sp_error err;
    sp_error_clear(&err);
    int st = sp_formula_parse("log(gsp) ~ x + i(f, z) + l(x, 1) | id^t | w ~ q", &fm, &err);
    check(st == SP_OK, "parse a three-part formula", err.msg);
    if (st == SP_OK) {
      check(fm->nparts == 3, "three parts", NULL);
      check(strcmp(fm->lhs->label, "log(gsp)") == 0 && fm->lhs->kind == SP_FN_FUNC, "lhs log(gsp)", fm->lhs->label);
      size_t n;
      const char *const *v = sp_formula_vars(fm, &n);
      char buf[200] = "";
      for (size_t i = 0; i < n; i++) { strcat(buf, v[i]); strcat(buf, " "); }
      check(strcmp(buf, "gsp x f z id t w q ") == 0, "variables in order of first use", buf);
      check(fm->rhs[1]->kind == SP_FN_FACTOR && fm->rhs[1]->nkids == 2, "i(f, z) is a factor with a slope", NULL);
      check(fm->rhs[2]->kind == SP_FN_SHIFT && fm->rhs[2]->k == 1 && fm->rhs[2]->col == 26,
            "l(x, 1) is a shift at column 26", NULL);
      sp_formula_free(fm);
    }
  }

  /* Errors, with the 1-based column. */
  expect_error("y ~ x1 + + x2", 10, "expected a variable name after '+'");
  expect_error("y ~ x1 + ", 10, "expected a variable name after '+', found the end of the formula");
  expect_error("y ~ ", 5, "expected a variable name after '~'");
  expect_error("y ~ log(x", 10, "expected ')' to close the '(' of log() at column 8");
  expect_error("y ~ log(x))", 11, "unbalanced parentheses");
  expect_error("y ~ I((x + 1)", 14, "expected ')' to close");
  expect_error("y ~ lg(x)", 5, "unknown function 'lg'; did you mean 'log'?");
  expect_error("y ~ lag(x, 1)", 5, "unknown function 'lag'; did you mean 'l'?");
  expect_error("y ~ sqr(x)", 5, "did you mean 'sqrt'?");
  expect_error("y ~ foo(x)", 5, "unknown function 'foo' (known:");
  expect_error("y ~ sinh(x)", 5, "unknown function 'sinh'; did you mean 'asinh'?");
  expect_error("y ~ arcsinh(x)", 5, "did you mean 'asinh'?");
  expect_error("y ~ asinh(x, 2)", 5, "asinh() takes one argument, found 2");
  expect_error("y ~ log(x, 2)", 5, "log() takes one argument, found 2");
  expect_error("y ~ l(x, 1, 2)", 5, "l() takes one or two arguments");
  expect_error("y ~ l(x, 1.5)", 10, "expected a whole number of periods");
  /* fuzz_formula's find: a 115-digit lag was cast to long before the range
     check (undefined behaviour, caught by UBSan). */
  expect_error("y ~ l(x, 99999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999990)",
               10, "expected a whole number of periods");
  expect_error("y ~ i()", 5, "i() takes one or two arguments");
  expect_error("y ~ i(2)", 7, "expected the name of a categorical variable");
  expect_error("y ~ i(f, x, z)", 5, "i() takes one or two arguments");
  expect_error("y ~ i(f, foo = 1)", 10, "unknown argument 'foo' of i()");
  expect_error("y ~ x | a | b | c", 15, "at most three parts");
  expect_error("y x", 3, "expected '~' after the dependent variable, found 'x'");
  expect_error("y + z ~ x", 3, "expected one dependent variable");
  expect_error("y^2 ~ x", 2, "use I() for arithmetic");
  expect_error("y ~ x ~ z", 7, "a second '~' in the first part");
  expect_error("y ~ x | w ~ z ~ q", 15, "a second '~' in the IV part");
  expect_error("y ~ x | id | fe2", 17, "expected '~' in the IV part");
  expect_error("y ~ x | w ~ z | id", 15, "the IV part (endog ~ instruments) must be the last part");
  expect_error("~ x", 1, "expected the dependent variable before '~'");
  {
    /* Without a response only on request; the rest parses as usual. */
    sp_formula *fm = NULL;
    sp_error err;
    sp_error_clear(&err);
    int st = sp_formula_parse_flags("~ x + l(w, 1:2) | id | d ~ z", SP_FORMULA_OPTIONAL_RESPONSE, &fm, &err);
    check(st == SP_OK && fm->lhs == NULL && fm->nrhs == 3 && fm->nfe == 1 && fm->nendog == 1 && fm->nvars == 5,
          "\"~ x ...\" parses with SP_FORMULA_OPTIONAL_RESPONSE", err.msg);
    sp_formula_free(fm);
    st = sp_formula_parse_flags("~", SP_FORMULA_OPTIONAL_RESPONSE, &fm, &err);
    check(st == SP_EPARSE && fm == NULL && err.col == 2, "\"~\" alone still needs terms", err.msg);
  }
  expect_error("", 1, "empty formula");
  expect_error("y ~ x $ z", 7, "unexpected character '$'");
  expect_error("y ~ `x", 5, "unterminated backquoted name");
  expect_error("y ~ 2", 5, "a number on its own must be 0 or 1");
  expect_error("y ~ x:i(f)", 7, "i() cannot be part of an interaction");
  expect_error("y ~ log(i(f))", 9, "i() makes dummy columns");
  expect_error("y ~ x^2", 5, "'^' combines variables");
  expect_error("y ~ a^b", 5, "cannot be used in the regressors");
  expect_error("y ~ x | log(id)", 9, "a fixed effect is a variable");
  expect_error("y ~ l(x, 1:2):z", 5, "must be a term on its own");
  expect_error("y ~ log(l(x, 1:2))", 9, "must be a term on its own");
  expect_error("y ~ (x + z)", 5, "parentheses around terms are not supported");
  expect_error("y ~ d(x, 0)", 5, "d(x, k) needs k >= 1");
  expect_error("y ~ x | id + 1", 14, "the intercept terms 0 and 1 belong to the regressors");
  /* Columns count characters, not bytes: 'é' is one column. */
  expect_error("r\xc3\xa9gion ~ x + + z", 14, "expected a variable name after '+'");
  {
    sp_formula *fm = NULL;
    sp_error err;
    sp_error_clear(&err);
    sp_formula_parse("y ~ x1 + + x2", &fm, &err);
    check(strstr(err.msg, "\n  y ~ x1 + + x2\n           ^") != NULL, "caret under the column", err.msg);
    char buf[1200];
    sp_error_format(&err, buf, sizeof buf);
    check(strncmp(buf, "formula:1:10: expected a variable name after '+'", 48) == 0, "formatted as formula:1:col", buf);
  }
  {
    /* Deep nesting is an error, not a stack overflow. */
    char text[2100] = "y ~ I(";
    for (int i = 0; i < 1000; i++) strcat(text, "(");
    strcat(text, "x");
    sp_formula *fm = NULL;
    sp_error err;
    sp_error_clear(&err);
    int st = sp_formula_parse(text, &fm, &err);
    check(st == SP_EPARSE && strstr(err.msg, "nested too deeply") != NULL, "deep nesting rejected", err.msg);
  }

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
