/*
** test_csv.c: the CSV reader and writer (csv.h).
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spillover/csv.h"
#include "spillover/frame.h"

static int npass, nfail;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) npass++; else nfail++;
}

static sp_frame *rd(const char *text, const sp_csv_options *opt, sp_error *err) {
  sp_frame *f = NULL;
  sp_error_clear(err);
  sp_frame_read_csv_buffer(text, strlen(text), "t.csv", opt, &f, err);
  return f;
}

/* The read must fail with code, at line:col, with a message containing want. */
static void check_err(const char *text, const sp_csv_options *opt, int code, long line, long col,
                      const char *want, const char *what) {
  sp_error err;
  sp_frame *f = rd(text, opt, &err);
  int ok = f == NULL && err.code == code && err.line == line && err.col == col &&
           strstr(err.msg, want) != NULL && strcmp(err.file, "t.csv") == 0;
  if (!ok) {
    char buf[1200];
    sp_error_format(&err, buf, sizeof buf);
    printf("  got code %d: %s\n", err.code, buf);
  }
  check(ok, what);
  sp_frame_free(f);
}

static int bits_equal(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void test_basic(void) {
  sp_error err;
  sp_frame *f = rd("id,x,name\n1,2.5,a\n2,-3e2,b\n3,,a\n", NULL, &err);
  check(f != NULL && f->nrow == 3 && f->ncol == 3, "basic: 3 rows x 3 columns");
  if (f == NULL) return;
  check(f->cols[0].type == SP_NUMERIC && f->cols[1].type == SP_NUMERIC, "basic: numeric inferred");
  check(f->cols[1].num[0] == 2.5 && f->cols[1].num[1] == -300.0 && isnan(f->cols[1].num[2]),
        "basic: values and empty as missing");
  sp_column *c = &f->cols[2];
  check(c->type == SP_CATEGORICAL && c->nlevels == 2 && strcmp(c->levels[0], "a") == 0 &&
        strcmp(c->levels[1], "b") == 0 && c->code[0] == 0 && c->code[1] == 1 && c->code[2] == 0,
        "basic: categorical levels in order of first appearance");
  sp_frame_free(f);
}

static void test_rfc4180(void) {
  sp_error err;
  const char *t = "\xEF\xBB\xBF" "a,b\r\n\"x, y\",1\r\n\"he said \"\"hi\"\"\",2\r\n\"two\nlines\",3";
  sp_frame *f = rd(t, NULL, &err);
  check(f != NULL && f->nrow == 3, "rfc4180: BOM, CRLF, no final newline: 3 rows");
  if (f == NULL) return;
  check(strcmp(f->cols[0].name, "a") == 0, "rfc4180: BOM skipped from the first name");
  check(strcmp(sp_column_level(&f->cols[0], 0), "x, y") == 0, "rfc4180: quoted comma");
  check(strcmp(sp_column_level(&f->cols[0], 1), "he said \"hi\"") == 0, "rfc4180: doubled quotes");
  check(strcmp(sp_column_level(&f->cols[0], 2), "two\nlines") == 0, "rfc4180: newline in quotes");
  check(f->cols[1].num[2] == 3.0, "rfc4180: last field without newline");
  sp_frame_free(f);

  f = rd("a,b\n1,2\n3,4\n\n\r\n\n", NULL, &err);
  check(f != NULL && f->nrow == 2, "blank final lines ignored");
  sp_frame_free(f);
  f = rd("a,b\n", NULL, &err);
  check(f != NULL && f->nrow == 0 && f->ncol == 2, "header only: 0 rows");
  sp_frame_free(f);
  f = rd("a\n1\n\n3\n", NULL, &err);
  check(f != NULL && f->nrow == 3 && isnan(f->cols[0].num[1]), "one column: inner blank line is missing");
  sp_frame_free(f);
}

static void test_missing_and_types(void) {
  sp_error err;
  sp_frame *f = rd("x,y,z\nNA,.,NaN\n1,\"NA\",inf\n2,b,nan\n", NULL, &err);
  check(f != NULL, "missing tokens: read");
  if (f == NULL) return;
  check(f->cols[0].type == SP_NUMERIC && isnan(f->cols[0].num[0]) && f->cols[0].num[1] == 1,
        "missing: NA is missing in a numeric column");
  check(f->cols[1].type == SP_CATEGORICAL && f->cols[1].code[0] == -1 &&
        strcmp(sp_column_level(&f->cols[1], 1), "NA") == 0,
        "missing: quoted \"NA\" is a level, unquoted . is missing");
  check(f->cols[2].type == SP_CATEGORICAL && f->cols[2].code[0] == -1 &&
        strcmp(sp_column_level(&f->cols[2], 1), "inf") == 0 &&
        strcmp(sp_column_level(&f->cols[2], 2), "nan") == 0,
        "inf/nan text is not a number");
  sp_frame_free(f);

  /* A column numeric for several rows that then meets text. */
  f = rd("k,v\n1,10\n2,20\n1,x\n3,\n2,y\n", NULL, &err);
  check(f != NULL && f->cols[1].type == SP_CATEGORICAL && f->cols[1].nlevels == 4,
        "late text: column becomes categorical");
  if (f != NULL) {
    sp_column *c = &f->cols[1];
    check(strcmp(c->levels[0], "10") == 0 && strcmp(c->levels[1], "20") == 0 &&
          strcmp(c->levels[2], "x") == 0 && strcmp(c->levels[3], "y") == 0 &&
          c->code[0] == 0 && c->code[2] == 2 && c->code[3] == -1 && c->code[4] == 3,
          "late text: earlier rows filled, levels in order of first appearance");
  }
  sp_frame_free(f);

  const char *miss[] = {"-999", "missing"};
  sp_csv_options opt;
  sp_csv_options_init(&opt);
  opt.missing = miss;
  opt.nmissing = 2;
  f = rd("a,b\n-999,missing\n5,\n", &opt, &err);
  check(f != NULL && isnan(f->cols[0].num[0]) && f->cols[0].num[1] == 5 &&
        f->cols[1].type == SP_CATEGORICAL && f->cols[1].code[0] == -1 &&
        strcmp(sp_column_level(&f->cols[1], 1), "") == 0,
        "custom missing tokens (numeric token wins; empty no longer missing)");
  sp_frame_free(f);

  const char *names[] = {"code", "v"};
  sp_csv_type types[] = {SP_CSV_CATEGORICAL, SP_CSV_NUMERIC};
  sp_csv_options_init(&opt);
  opt.type_names = names;
  opt.types = types;
  opt.ntypes = 2;
  f = rd("code,v\n110000,1\n120000,-Inf\n", &opt, &err);
  check(f != NULL && f->cols[0].type == SP_CATEGORICAL &&
        strcmp(sp_column_level(&f->cols[0], 1), "120000") == 0 && isinf(f->cols[1].num[1]) &&
        f->cols[1].num[1] < 0, "forced types: categorical codes, Inf in a forced numeric column");
  sp_frame_free(f);
  check_err("code,v\n1,2\n2,abc\n", &opt, SP_EVALUE, 3, 3, "column 'v' is forced numeric but has the value 'abc'",
            "error: non-numeric value in a forced numeric column");
  const char *bad[] = {"nope"};
  opt.type_names = bad;
  opt.ntypes = 1;
  sp_frame *g = rd("a\n1\n", &opt, &err);
  check(g == NULL && err.code == SP_ENOTFOUND && strstr(err.msg, "'nope'") != NULL,
        "error: forced type for an unknown column");

  sp_csv_options_init(&opt);
  opt.header = 0;
  opt.delimiter = ';';
  opt.max_rows = 2;
  f = rd("1;a\n2;b\n3;c\n", &opt, &err);
  check(f != NULL && f->nrow == 2 && strcmp(f->cols[0].name, "V1") == 0 &&
        strcmp(f->cols[1].name, "V2") == 0 && f->cols[0].num[1] == 2,
        "no header, ';' delimiter, max_rows");
  sp_frame_free(f);
}

static void test_errors(void) {
  check_err("a,b,c,d,e\n1,2,3,4,5\n1,2,3,4\n", NULL, SP_EPARSE, 3, 8, "expected 5 fields, found 4",
            "error: too few fields");
  check_err("a,b\n1,2\n1,2,3,4\n", NULL, SP_EPARSE, 3, 5, "expected 2 fields, found 4",
            "error: too many fields");
  check_err("a,b\n1,2\n3,\"abc\n\n", NULL, SP_EPARSE, 3, 3, "unterminated quoted field",
            "error: unterminated quote cites where it opened");
  check_err("a,b\n1,\"x\"y\n", NULL, SP_EPARSE, 2, 6, "unexpected character 'y' after the closing quote",
            "error: characters after a closing quote");
  check_err("a,b,a\n1,2,3\n", NULL, SP_EPARSE, 1, 5, "duplicate column name 'a' (fields 1 and 3)",
            "error: duplicate header name");
  check_err("a,,c\n1,2,3\n", NULL, SP_EPARSE, 1, 3, "empty column name in the header (field 2)",
            "error: empty header name");
  check_err("", NULL, SP_EPARSE, 1, 1, "empty file", "error: empty file");
  check_err("\xEF\xBB\xBF\n\n", NULL, SP_EPARSE, 1, 1, "empty file", "error: file of blank lines");
  /* Columns count characters, not bytes: 北京 is 2 characters, 6 bytes. */
  check_err("名,值\n北京,1,2\n", NULL, SP_EPARSE, 2, 6, "expected 2 fields, found 3",
            "error: column counted in UTF-8 characters");
  sp_error err;
  sp_frame *f = NULL;
  sp_error_clear(&err);
  int st = sp_frame_read_csv("/nonexistent/dir/x.csv", NULL, &f, &err);
  check(st == SP_EIO && f == NULL && strstr(err.msg, "No such file or directory") != NULL &&
        strstr(err.msg, "/nonexistent/dir/x.csv") != NULL, "error: cannot open names the file and strerror");
}

static void test_numbers(void) {
  /* The fast path must agree with strtod bit for bit. */
  const char *fixed[] = {"0", "-0", "1", "0.1", "0.3", "1e22", "1e23", "9007199254740993",
                         "123456789012345678901234", "2.2250738585072014e-308", "4.9e-324",
                         "1.7976931348623157e308", "1e400", "1e-400", ".5", "5.", "+3.25",
                         "0.000001234", "10.254778026198021", "1E5", "1e+05", "00012.500"};
  int ok = 1;
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    double a, b = strtod(fixed[i], NULL);
    if (!sp_csv_parse_double(fixed[i], strlen(fixed[i]), &a) || !bits_equal(a, b)) {
      printf("  mismatch on %s\n", fixed[i]);
      ok = 0;
    }
  }
  check(ok, "numbers: fixed cases bit-identical to strtod");
  uint64_t s = 12345;
  int bad = 0;
  char buf[64];
  for (int i = 0; i < 200000; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    int nd = 1 + (int)((s >> 33) % 20), dot = (int)((s >> 40) % (unsigned)(nd + 1));
    int k = 0;
    if ((s >> 20) & 1) buf[k++] = '-';
    uint64_t r = s;
    for (int d = 0; d < nd; d++) {
      if (d == dot) buf[k++] = '.';
      r = r * 6364136223846793005ULL + 1;
      buf[k++] = (char)('0' + (r >> 60) % 10);
    }
    if ((s >> 50) % 3 == 0) k += sprintf(buf + k, "e%d", (int)((s >> 24) % 61) - 30);
    buf[k] = '\0';
    double a, b = strtod(buf, NULL);
    if (!sp_csv_parse_double(buf, (size_t)k, &a) || !bits_equal(a, b)) {
      if (bad++ < 3) printf("  mismatch on %s\n", buf);
    }
  }
  check(bad == 0, "numbers: 200000 random decimals bit-identical to strtod");
  /* The same through the reader's one-scan path for plain decimals. */
  size_t cap = 64 * 40000 + 8, len = 0;
  char *text = malloc(cap);
  char **want = malloc(40000 * sizeof *want);
  if (text != NULL && want != NULL) {
    len += (size_t)sprintf(text, "x,y\n");
    for (int i = 0; i < 40000; i++) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      int nd = 1 + (int)((s >> 33) % 21), dot = (int)((s >> 40) % (unsigned)(nd + 1));
      want[i] = text + len;
      if ((s >> 20) & 1) text[len++] = '-';
      uint64_t r = s;
      for (int d = 0; d < nd; d++) {
        if (d == dot) text[len++] = '.';
        r = r * 6364136223846793005ULL + 1;
        text[len++] = (char)('0' + (r >> 60) % 10);
      }
      len += (size_t)sprintf(text + len, ",%d\n", i);
    }
    sp_error err;
    sp_frame *f = NULL;
    sp_error_clear(&err);
    int st = sp_frame_read_csv_buffer(text, len, "nums.csv", NULL, &f, &err);
    bad = st != SP_OK || f->nrow != 40000 || f->cols[0].type != SP_NUMERIC;
    for (int i = 0; !bad && i < 40000; i++) {
      double b = strtod(want[i], NULL);
      if (!bits_equal(f->cols[0].num[i], b)) { if (bad++ < 3) printf("  reader mismatch row %d\n", i); }
    }
    check(bad == 0, "numbers: 40000 random decimals through the reader bit-identical to strtod");
    sp_frame_free(f);
  }
  free(text);
  free(want);
  const char *notnum[] = {"", "-", ".", "e5", "1e", "1e+", "0x10", "inf", "nan", "1.2.3", "1 2", "--1", "1d"};
  ok = 1;
  for (size_t i = 0; i < sizeof notnum / sizeof notnum[0]; i++) {
    double a;
    if (sp_csv_parse_double(notnum[i], strlen(notnum[i]), &a)) { printf("  accepted '%s'\n", notnum[i]); ok = 0; }
  }
  check(ok, "numbers: non-numbers refused (hex, inf, nan, partial)");
  double a;
  check(sp_csv_parse_double(" 42 ", 4, &a) && a == 42, "numbers: surrounding spaces allowed");
}

static int frames_equal(const sp_frame *a, const sp_frame *b) {
  if (a->nrow != b->nrow || a->ncol != b->ncol) return 0;
  for (size_t j = 0; j < a->ncol; j++) {
    const sp_column *x = &a->cols[j], *y = &b->cols[j];
    if (strcmp(x->name, y->name) != 0 || x->type != y->type) return 0;
    for (size_t r = 0; r < a->nrow; r++) {
      if (x->type == SP_NUMERIC) {
        if (!(bits_equal(x->num[r], y->num[r]) || (isnan(x->num[r]) && isnan(y->num[r])))) return 0;
      } else {
        const char *s = sp_column_level(x, r), *t = sp_column_level(y, r);
        if ((s == NULL) != (t == NULL) || (s && strcmp(s, t) != 0)) return 0;
      }
    }
  }
  return 1;
}

static void test_write(void) {
  char dir[] = "/tmp/sp_csv_testXXXXXX";
  if (mkdtemp(dir) == NULL) { check(0, "write: temp dir"); return; }
  char path[256];
  snprintf(path, sizeof path, "%s/out.csv", dir);
  sp_error err;
  sp_frame *f = NULL, *g = NULL;
  sp_error_clear(&err);
  int st = sp_frame_read_csv("tests/reference/data/Produc.csv", NULL, &f, &err);
  check(st == SP_OK && f->nrow == 816 && f->ncol == 18, "Produc.csv: 816 x 18");
  if (st == SP_OK) {
    check(f->cols[0].type == SP_CATEGORICAL && f->cols[0].nlevels == 48 &&
          strcmp(f->cols[0].levels[0], "ALABAMA") == 0 && f->cols[1].type == SP_NUMERIC &&
          f->cols[11].num[0] == strtod("10.254778026198021", NULL), "Produc.csv: types and values");
    st = sp_frame_write_csv(f, path, NULL, &err);
    check(st == SP_OK, "write Produc.csv");
    st = sp_frame_read_csv(path, NULL, &g, &err);
    check(st == SP_OK && frames_equal(f, g), "write/read round trip is bit-identical");
    sp_frame_free(g);
    g = NULL;
  }
  sp_frame_free(f);

  f = rd("s,x\n\"a,b\",1.5\n\"q\"\"q\",\n\"l\nm\",0.1\n\"NA\",-0\n\" sp\",1e300\n", NULL, &err);
  check(f != NULL, "tricky frame read");
  if (f != NULL) {
    st = sp_frame_write_csv(f, path, NULL, &err);
    st = st == SP_OK ? sp_frame_read_csv(path, NULL, &g, &err) : st;
    check(st == SP_OK && frames_equal(f, g), "round trip: quotes, newlines, NA level, -0, 1e300");
    sp_frame_free(g);
    g = NULL;
  }
  FILE *fp = fopen(path, "r");
  char line[128] = "";
  if (fp) { if (fgets(line, sizeof line, fp) && fgets(line, sizeof line, fp)) {} fclose(fp); }
  check(strcmp(line, "\"a,b\",1.5\n") == 0, "writer quotes a field with a comma");

  f = f ? f : NULL;
  char bad[300];
  snprintf(bad, sizeof bad, "%s/no/such/dir/out.csv", dir);
  sp_error_clear(&err);
  st = f ? sp_frame_write_csv(f, bad, NULL, &err) : SP_EIO;
  check(st == SP_EIO && strstr(err.msg, "No such file or directory") != NULL, "write: error names the cause");
  sp_frame_free(f);

  sp_error_clear(&err);
  st = sp_frame_read_csv("scenarios/data/cn_province_capital_coords.csv", NULL, &f, &err);
  check(st == SP_OK && f->nrow == 31 && strcmp(sp_column_level(&f->cols[1], 0), "北京") == 0,
        "UTF-8: Chinese province names read byte for byte");
  if (st == SP_OK) {
    st = sp_frame_write_csv(f, path, NULL, &err);
    st = st == SP_OK ? sp_frame_read_csv(path, NULL, &g, &err) : st;
    check(st == SP_OK && frames_equal(f, g), "UTF-8: round trip");
    sp_frame_free(g);
  }
  sp_frame_free(f);
  unlink(path);
  rmdir(dir);
}

/* Text must be UTF-8: the validator's edge cases (RFC 3629), each at the
   line and column of its first bad byte, in a name or a level. */
static void test_utf8(void) {
  sp_error err;
  sp_frame *f = rd("a\n\xF0\x9F\x98\x80\n\xE4\xB8\xAD\n\xC3\xA9\n\xF4\x8F\xBF\xBF\n", NULL, &err);
  check(f != NULL && f->nrow == 4 && f->cols[0].nlevels == 4, "utf8: 4-, 3-, 2-byte and U+10FFFF accepted");
  sp_frame_free(f);
  check_err("a\nx\xC0\xAF\n", NULL, SP_EPARSE, 2, 2, "invalid UTF-8 (byte 0xC0)", "utf8: overlong '/' refused");
  check_err("a\n\xED\xA0\x80\n", NULL, SP_EPARSE, 2, 1, "(byte 0xED)", "utf8: a surrogate refused");
  check_err("a\n\xF4\x90\x80\x80\n", NULL, SP_EPARSE, 2, 1, "(byte 0xF4)", "utf8: above U+10FFFF refused");
  check_err("a\nok\n\"\xE4\xB8\"\n", NULL, SP_EPARSE, 3, 2, "(byte 0xE4)", "utf8: a truncated sequence refused");
  check_err("a,\xFF\n1,2\n", NULL, SP_EPARSE, 1, 3, "in the header", "utf8: a bad name refused");
  check_err("n,v\n1,\"x\ny\xB1\xB1\"\n", NULL, SP_EPARSE, 3, 2, "the bytes look like GBK",
            "utf8: position counts lines inside a quoted field; GBK suggested");
  /* A level seen before is not checked again, but the first one is: the
     error is at the first occurrence. */
  check_err("a\nx\n\xFC\n\xFC\n", NULL, SP_EPARSE, 3, 1, "encoding = \"latin1\"", "utf8: Latin-1 byte, latin1 suggested");
  sp_csv_options opt;
  sp_csv_options_init(&opt);
  opt.encoding = "latin1";
  f = rd("a\nx\n\xFC\n", &opt, &err);
  check(f != NULL && strcmp(sp_column_level(&f->cols[0], 1), "\xC3\xBC") == 0, "encoding latin1: converted to UTF-8");
  sp_frame_free(f);
  opt.encoding = "UTF-16LE";
  const char u16[] = "a\0\n\0\x2D\x4E\n\0";  /* "a\n中\n" */
  f = NULL;
  sp_error_clear(&err);
  sp_frame_read_csv_buffer(u16, sizeof u16 - 1, "t.csv", &opt, &f, &err);
  check(f != NULL && f->nrow == 1 && strcmp(sp_column_level(&f->cols[0], 0), "中") == 0,
        "encoding UTF-16LE: a multi-byte input encoding, converted");
  sp_frame_free(f);
  opt.encoding = "no-such-charset";
  check_err("a\n1\n", &opt, SP_EVALUE, 0, 0, "unknown encoding 'no-such-charset'", "encoding: unknown name refused");
  opt.encoding = "UTF-16LE";
  f = NULL;
  sp_error_clear(&err);
  sp_frame_read_csv_buffer(u16, 5, "t.csv", &opt, &f, &err);  /* cut inside 中 */
  check(f == NULL && err.code == SP_EPARSE && err.line == 2 && err.col == 2 &&
        strstr(err.msg, "ends inside a UTF-16LE character (its last byte is 0x2D)") != NULL,
        "encoding: input cut inside a character, located at its end");
}

/* Writer options: separator, NA text, quoting modes, BOM; quote = none
   refuses what it cannot write, naming row and column. */
static void test_write_options(void) {
  sp_error err;
  sp_frame *f = rd("name,x\n\"a;b\",1.5\n,\n\"NA\",2\n", NULL, &err);
  if (f == NULL) { check(0, "write options: read the input"); return; }
  sp_csv_write_options w;
  sp_csv_write_options_init(&w);
  char *text = NULL;
  size_t len = 0;
  FILE *fp = open_memstream(&text, &len);
  w.delimiter = ';';
  w.na = "NA";
  w.bom = 1;
  int st = sp_frame_write_csv_stream(f, fp, "m.csv", &w, &err);
  fclose(fp);
  check(st == SP_OK && strcmp(text, "\xEF\xBB\xBFname;x\n\"a;b\";1.5\nNA;NA\n\"NA\";2\n") == 0,
        "write options: ';', NA, BOM, the NA level quoted");
  free(text);
  fp = open_memstream(&text, &len);
  sp_csv_write_options_init(&w);
  w.quote = SP_CSV_QUOTE_NONE;
  w.delimiter = ';';
  sp_error_clear(&err);
  st = sp_frame_write_csv_stream(f, fp, "m.csv", &w, &err);
  fclose(fp);
  free(text);
  check(st == SP_EVALUE && err.line == 2 && strstr(err.msg, "row 1, column 'name'") != NULL &&
        strcmp(err.var, "name") == 0, "write options: quote none refuses 'a;b' at row 1");
  sp_csv_write_options_init(&w);
  w.na = "x\ny";
  sp_error_clear(&err);
  st = sp_frame_write_csv_stream(f, stdout, "m.csv", &w, &err);
  check(st == SP_EVALUE && strstr(err.msg, "missing-value text") != NULL, "write options: an NA text with a newline refused");
  sp_frame_free(f);
}

int main(void) {
  test_basic();
  test_utf8();
  test_write_options();
  test_rfc4180();
  test_missing_and_types();
  test_errors();
  test_numbers();
  test_write();
  printf("%d passed, %d failed\n", npass, nfail);
  return nfail != 0;
}
