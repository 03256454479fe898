/*
** test_csv_window.c: a file read a window at a time gives what the same
** bytes give read whole (csv.c).
**
** sp_frame_read_csv reads a file in windows of whole lines and reads a record
** again when a quoted field runs past a window's end; the columns' capacity
** comes from a count over the whole file, and a column that turns
** categorical late is filled by a second pass that reads the file again.
** sp_frame_read_csv_buffer parses the same bytes as one window.  Random texts
** with every feature the tokenizer has (quoted fields holding delimiters,
** doubled quotes and newlines, CRLF, lone CRs, blank lines, a byte-order
** mark, no final newline, text that flips a numeric column, malformed
** records) are read both ways, with windows from 1 byte up, so that every
** byte of every text falls on a window's edge; the frames, or the errors
** with their line and column, must be the same.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spillover/csv.h"
#include "spillover/frame.h"
#include "testlib.h"

typedef struct {
  char *s;
  size_t n, cap;
} text;

static void put(text *t, const char *s, size_t n) {
  if (t->n + n + 1 > t->cap) {
    t->cap = 2 * (t->n + n + 1);
    t->s = realloc(t->s, t->cap);
  }
  memcpy(t->s + t->n, s, n);
  t->n += n;
  t->s[t->n] = '\0';
}
static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

/* One field: mostly numbers, sometimes missing, text, quoted text with the
   tokenizer's special bytes, or (rarely) something malformed. */
static void field(text *t, int bad) {
  static const char *const plain[] = {"1", "-2.5", "3e4", " 7 ", "NA", "", ".", "NaN", "x", "abc", "a\"b",
                                      "1\r2", "\xE4\xB8\xAD"};
  static const char *const quoted[] = {"\"q\"", "\"a,b\"", "\"line\nbreak\"", "\"crlf\r\nin\"", "\"say \"\"hi\"\"\"",
                                       "\"\"", "\"12\"", "\"NA\"", "\"\n\n\""};
  double u = urand();
  char buf[32];
  if (bad && u < 0.5) {
    puts_(t, urand() < 0.5 ? "\"unclosed" : "\"closed\"x");
  } else if (u < 0.6) {
    snprintf(buf, sizeof buf, "%d", irand(1000) - 500);
    puts_(t, buf);
  } else if (u < 0.8) {
    puts_(t, plain[irand(sizeof plain / sizeof plain[0])]);
  } else {
    puts_(t, quoted[irand(sizeof quoted / sizeof quoted[0])]);
  }
}

/* A random CSV text of nrec records of ncol fields: numbers before row
   numeric_until, then anything, malformed with probability p_bad a record. */
static void random_csv(text *t, int nrec, int ncol, int numeric_until, double p_bad) {
  const char *eol = urand() < 0.5 ? "\n" : "\r\n";
  if (urand() < 0.2) puts_(t, "\xEF\xBB\xBF");
  for (int j = 0; j < ncol; j++) {  /* names, some quoted across a newline */
    char b[32];
    if (urand() < 0.2) snprintf(b, sizeof b, "%s\"na\nme%d\"", j ? "," : "", j);
    else snprintf(b, sizeof b, "%sc%d", j ? "," : "", j);
    puts_(t, b);
  }
  puts_(t, eol);
  for (int r = 0; r < nrec; r++) {
    int bad = urand() < p_bad;
    int nf = ncol;
    if (urand() < p_bad / 2) nf += urand() < 0.5 ? -1 : 1;  /* a wrong field count */
    for (int j = 0; j < nf; j++) {
      if (j) puts_(t, ",");
      if (r < numeric_until) {
        char b[32];
        snprintf(b, sizeof b, "%d.5", irand(100));
        puts_(t, b);
      } else {
        field(t, bad);
      }
    }
    if (urand() < p_bad) puts_(t, eol);  /* a blank line: a record of one empty field */
    if (r + 1 < nrec || urand() < 0.7) puts_(t, eol);
  }
  if (urand() < 0.3) puts_(t, "\n\r\n\n");  /* blank lines at the end */
}

/* Whether two reads agree: the same status and error place, or the same frame. */
static int same(int st1, const sp_frame *a, const sp_error *e1, int st2, const sp_frame *b,
                const sp_error *e2) {
  if (st1 != st2) return 0;
  if (st1 != SP_OK)
    return e1->line == e2->line && e1->col == e2->col && strcmp(e1->msg, e2->msg) == 0 &&
           strcmp(e1->var, e2->var) == 0;
  if (a->nrow != b->nrow || a->ncol != b->ncol) return 0;
  for (size_t j = 0; j < a->ncol; j++) {
    const sp_column *x = &a->cols[j], *y = &b->cols[j];
    if (strcmp(x->name, y->name) != 0 || x->type != y->type) return 0;
    if (x->type == SP_NUMERIC) {
      if (a->nrow && memcmp(x->num, y->num, a->nrow * sizeof(double)) != 0) return 0;
    } else {
      if (x->nlevels != y->nlevels) return 0;
      if (a->nrow && memcmp(x->code, y->code, a->nrow * sizeof(int32_t)) != 0) return 0;
      for (size_t k = 0; k < x->nlevels; k++)
        if (strcmp(x->levels[k], y->levels[k]) != 0) return 0;
    }
  }
  return 1;
}

/* Read t whole and from path in windows of each size in win[]. */
static int agree(const text *t, const char *path, const size_t *win, size_t nwin, size_t max_rows,
                 int *failed_ok) {
  FILE *fp = fopen(path, "wb");
  if (fp == NULL || fwrite(t->s, 1, t->n, fp) != t->n || fclose(fp) != 0) return 0;
  sp_csv_options opt;
  sp_csv_options_init(&opt);
  opt.max_rows = max_rows;
  sp_frame *whole = NULL;
  sp_error ew;
  sp_error_clear(&ew);
  int sw = sp_frame_read_csv_buffer(t->s, t->n, path, &opt, &whole, &ew);
  *failed_ok = sw != SP_OK;
  int ok = 1;
  for (size_t i = 0; i < nwin && ok; i++) {
    opt.window = win[i];
    sp_frame *f = NULL;
    sp_error e;
    sp_error_clear(&e);
    int s = sp_frame_read_csv(path, &opt, &f, &e);
    ok = same(sw, whole, &ew, s, f, &e);
    if (!ok) {
      printf("  window %zu: status %d/%d, line %ld/%ld col %ld/%ld: %s | %s\n", win[i], sw, s, ew.line, e.line,
             ew.col, e.col, ew.msg, e.msg);
      FILE *dump = fopen("/tmp/spillover_csv_window_fail.csv", "wb");
      if (dump) { fwrite(t->s, 1, t->n, dump); fclose(dump); }
    }
    sp_frame_free(f);
  }
  sp_frame_free(whole);
  return ok;
}

int main(void) {
  char path[] = "/tmp/spillover_test_csv_window_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) { check("temporary file", 0); return 1; }
  close(fd);

  /* Small texts, every window from 1 to 48 bytes and the default. */
  size_t win[50];
  for (size_t i = 0; i < 48; i++) win[i] = i + 1;
  win[48] = 0;
  int ok = 1, nerr = 0, nfr = 0;
  for (int k = 0; k < 300 && ok; k++) {
    text t = {0};
    int ncol = 1 + irand(4);
    random_csv(&t, 1 + irand(12), ncol, urand() < 0.3 ? irand(6) : 0, 0.03);
    int failed = 0;
    ok = agree(&t, path, win, 49, urand() < 0.1 ? 1 + (size_t)irand(5) : 0, &failed);
    nerr += failed;
    nfr += !failed;
    free(t.s);
  }
  char what[160];
  snprintf(what, sizeof what, "300 small texts, windows of 1-48 bytes and the default: %d frames and %d errors alike",
           nfr, nerr);
  check(what, ok && nerr > 20 && nfr > 100);

  /* Blank lines before the header, more than a window of them: an empty
     name in the header, unless nothing else follows (an empty file). */
  {
    static const char *const blank[] = {"\n\n\n\n\r\n\n\na,b\n1,2\n", "\n\r\n\n\n\n\n\n\n", "\r\n\r\n\r\n\r\nx\n"};
    ok = 1;
    int failed = 0, empty = 0;
    for (int k = 0; k < 3 && ok; k++) {
      text t = {0};
      puts_(&t, blank[k]);
      ok = agree(&t, path, win, 49, 0, &failed) && failed;
      sp_frame *f = NULL;
      sp_error e;
      sp_error_clear(&e);
      sp_frame_read_csv(path, NULL, &f, &e);
      empty += strstr(e.msg, "empty file") != NULL;
      free(t.s);
    }
    check("blank lines before the header, across windows: the same errors", ok && empty == 1);
  }

  /* Larger texts over many default windows (64 KiB), some with a column
     that turns categorical late (its second pass reads the file again). */
  ok = 1;
  nerr = nfr = 0;
  for (int k = 0; k < 20 && ok; k++) {
    text t = {0};
    int nrec = 20000 + irand(20000);
    random_csv(&t, nrec, 2 + irand(3), k % 2 ? nrec - 50 : 0, k % 4 == 3 ? 1e-3 : 0);
    int failed = 0;
    size_t w[] = {0, 4093};
    ok = agree(&t, path, w, 2, 0, &failed);
    nerr += failed;
    nfr += !failed;
    free(t.s);
  }
  snprintf(what, sizeof what, "20 texts of 0.2-0.8 MB, windows of 64 KiB and 4093 bytes: %d frames and %d errors alike",
           nfr, nerr);
  check(what, ok && nfr >= 10 && nerr >= 3);

  /* A record longer than the window: a quoted field of 300 KB with newlines,
     across a window of 64 KiB that must grow. */
  {
    text t = {0};
    puts_(&t, "a,b\n1,\"");
    for (int i = 0; i < 300000; i++) put(&t, i % 1000 == 999 ? "\n" : "x", 1);
    puts_(&t, "\"\n2,y\n");
    int failed = 1;
    size_t w[] = {0};
    sp_frame *f = NULL;
    sp_error e;
    check("a record longer than the window: alike", agree(&t, path, w, 1, 0, &failed) && !failed);
    sp_error_clear(&e);
    int s = sp_frame_read_csv(path, NULL, &f, &e);
    check("a record longer than the window: its field whole",
          s == SP_OK && f->nrow == 2 && f->cols[1].type == SP_CATEGORICAL &&
              strlen(f->cols[1].levels[f->cols[1].code[0]]) == 300000);
    sp_frame_free(f);
    free(t.s);
  }

  /* An unterminated quote far from the end is found, with its place. */
  {
    text t = {0};
    puts_(&t, "a,b\n");
    for (int i = 0; i < 20000; i++) puts_(&t, "1,2\n");
    puts_(&t, "3,\"open\n");
    for (int i = 0; i < 20000; i++) puts_(&t, "1,2\n");
    FILE *fp = fopen(path, "wb");
    fwrite(t.s, 1, t.n, fp);
    fclose(fp);
    sp_frame *f = NULL;
    sp_error e;
    sp_error_clear(&e);
    int s = sp_frame_read_csv(path, NULL, &f, &e);
    check("an unterminated quote 80 KB into the file: line 20002, column 3",
          s == SP_EPARSE && f == NULL && e.line == 20002 && e.col == 3 && strstr(e.msg, "unterminated") != NULL);
    free(t.s);
  }

  /* A window too large to allocate with its sentinel is refused, not wrapped. */
  {
    sp_csv_options opt;
    sp_csv_options_init(&opt);
    opt.window = (size_t)-1;
    sp_frame *f = NULL;
    sp_error e;
    sp_error_clear(&e);
    int s = sp_frame_read_csv(path, &opt, &f, &e);
    check("a window of SIZE_MAX bytes: refused, naming the limit",
          s == SP_EVALUE && f == NULL && strstr(e.msg, "at most") != NULL);
  }

  remove(path);
  printf("%d passed, %d failed\n", npass, nfail);
  return nfail != 0;
}
