/*
** test_statfile.c: Stata and SPSS files written with ReadStat's writer into
** a temporary directory, then read back with sp_frame_read_stat (and from
** memory with sp_frame_read_stat_buffer); a header that lies about the row
** count; paths that are not regular files.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <readstat.h>

#include "spillover/frame.h"
#include "spillover/statfile.h"

static int npass, nfail;

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  if (ok) npass++; else nfail++;
}

static ssize_t write_bytes(const void *data, size_t len, void *ctx) {
  return (ssize_t)fwrite(data, 1, len, (FILE *)ctx);
}

/* Rows: region (labelled 1 = "东部 East", 2 = "West"; 3 unlabelled; one
   missing), gdp (labelled "GDP per capita"; a system missing, and an extended
   missing .a in Stata or a user-defined -99 in SPSS), name (UTF-8 strings, one
   empty). */
static int write_file(const char *path, int dta) {
  FILE *fp = fopen(path, "wb");
  if (fp == NULL) return 0;
  readstat_writer_t *w = readstat_writer_init();
  readstat_set_data_writer(w, write_bytes);
  readstat_label_set_t *ls = readstat_add_label_set(w, dta ? READSTAT_TYPE_INT32 : READSTAT_TYPE_DOUBLE, "reglab");
  if (dta) {
    readstat_label_int32_value(ls, 1, "东部 East");
    readstat_label_int32_value(ls, 2, "West");
  } else {
    readstat_label_double_value(ls, 1, "东部 East");
    readstat_label_double_value(ls, 2, "West");
  }
  readstat_variable_t *region = readstat_add_variable(w, "region", dta ? READSTAT_TYPE_INT32 : READSTAT_TYPE_DOUBLE, 0);
  readstat_variable_set_label_set(region, ls);
  readstat_variable_set_label(region, "Region of the province");
  readstat_variable_t *gdp = readstat_add_variable(w, "gdp", READSTAT_TYPE_DOUBLE, 0);
  readstat_variable_set_label(gdp, "GDP per capita");
  if (!dta) readstat_variable_add_missing_double_value(gdp, -99);
  readstat_variable_t *name = readstat_add_variable(w, "name", READSTAT_TYPE_STRING, 24);
  readstat_error_t e = dta ? readstat_begin_writing_dta(w, fp, 5) : readstat_begin_writing_sav(w, fp, 5);
  const double regions[5] = {1, 2, 3, 1, NAN};
  const char *names[5] = {"北京", "Shanghai", "", "天津", "北京"};
  for (int r = 0; r < 5 && e == READSTAT_OK; r++) {
    e = readstat_begin_row(w);
    if (isnan(regions[r])) readstat_insert_missing_value(w, region);
    else if (dta) readstat_insert_int32_value(w, region, (int32_t)regions[r]);
    else readstat_insert_double_value(w, region, regions[r]);
    if (r == 1) readstat_insert_missing_value(w, gdp);
    else if (r == 2 && dta) readstat_insert_tagged_missing_value(w, gdp, 'a');
    else if (r == 2) readstat_insert_double_value(w, gdp, -99);
    else readstat_insert_double_value(w, gdp, 1.5 * r + 0.25);
    readstat_insert_string_value(w, name, names[r]);
    if (e == READSTAT_OK) e = readstat_end_row(w);
  }
  if (e == READSTAT_OK) e = readstat_end_writing(w);
  readstat_writer_free(w);
  fclose(fp);
  if (e != READSTAT_OK) printf("  readstat: %s\n", readstat_error_message(e));
  return e == READSTAT_OK;
}

static void check_frame(const char *path, const char *tag) {
  char what[200];
  sp_frame *f = NULL;
  sp_error err;
  sp_error_clear(&err);
  int st = sp_frame_read_stat(path, &f, &err);
  snprintf(what, sizeof what, "%s: read back 5 rows x 3 columns", tag);
  check(st == SP_OK && f != NULL && f->nrow == 5 && f->ncol == 3, what);
  if (st != SP_OK) { printf("  %s\n", err.msg); return; }
  sp_column *region = sp_frame_column(f, "region"), *gdp = sp_frame_column(f, "gdp"),
            *name = sp_frame_column(f, "name");
  snprintf(what, sizeof what, "%s: labelled variable is categorical with label levels", tag);
  check(region && region->type == SP_CATEGORICAL && region->nlevels == 3 &&
        strcmp(region->levels[0], "东部 East") == 0 && strcmp(region->levels[1], "West") == 0 &&
        strcmp(region->levels[2], "3") == 0, what);
  snprintf(what, sizeof what, "%s: codes follow values; unlabelled value as text; missing is -1", tag);
  check(region && region->code[0] == 0 && region->code[1] == 1 && region->code[2] == 2 &&
        region->code[3] == 0 && region->code[4] == -1, what);
  snprintf(what, sizeof what, "%s: variable labels kept", tag);
  check(region && gdp && region->label && strcmp(region->label, "Region of the province") == 0 &&
        gdp->label && strcmp(gdp->label, "GDP per capita") == 0 && name && name->label == NULL, what);
  snprintf(what, sizeof what, "%s: numeric values; system and %s missing are NaN", tag,
           strcmp(tag, "dta") == 0 ? "extended (.a)" : "user-defined (-99)");
  check(gdp && gdp->type == SP_NUMERIC && gdp->num[0] == 0.25 && isnan(gdp->num[1]) &&
        isnan(gdp->num[2]) && gdp->num[3] == 4.75 && gdp->num[4] == 6.25, what);
  snprintf(what, sizeof what, "%s: strings are categorical, UTF-8 byte for byte, empty is missing", tag);
  check(name && name->type == SP_CATEGORICAL && name->nlevels == 3 &&
        strcmp(sp_column_level(name, 0), "北京") == 0 && strcmp(sp_column_level(name, 3), "天津") == 0 &&
        name->code[2] == -1 && name->code[4] == name->code[0], what);
  sp_frame_free(f);
}

/* Stata date formats (counts from 1 January 1960): yearly %td stamps and
   whole-day %tc milliseconds become periods one step apart; the other
   formats, a single event date, times within a day and plain numbers stay. */
static void check_dates(const char *dir) {
  char path[256];
  snprintf(path, sizeof path, "%s/dates.dta", dir);
  FILE *fp = fopen(path, "wb");
  if (fp == NULL) { check(0, "dates: open"); return; }
  static const struct { const char *name, *fmt; double v[3]; } cols[] = {
    {"jan1", "%td", {18263, 18628, NAN}},                      /* 1 Jan 2010, 2011, missing */
    {"daily", "%tdCCYY-NN-DD", {18263, 18264, 18266}},        /* three days: stay days */
    {"month", "%tm", {600, 601, 603}},                         /* 2010m1, m2, m4 */
    {"year", "%ty", {2010, 2011, 2012}},
    {"dec31", "%tc", {14609 * 86400000.0, 14975 * 86400000.0, 15340 * 86400000.0}},
    {"cdays", "%-tcCCYY", {18263 * 86400000.0, 18264 * 86400000.0, 18270 * 86400000.0}},
    {"clock", "%tc", {18263 * 86400000.0 + 3600000, 18264 * 86400000.0, NAN}},
    {"event", "%td", {20000, 20000, 20000}},
    {"plain", "%9.0g", {18263, 18628, 18993}},
  };
  enum { NC = sizeof cols / sizeof cols[0] };
  readstat_writer_t *w = readstat_writer_init();
  readstat_set_data_writer(w, write_bytes);
  readstat_variable_t *var[NC];
  for (int j = 0; j < NC; j++) {
    var[j] = readstat_add_variable(w, cols[j].name, READSTAT_TYPE_DOUBLE, 0);
    readstat_variable_set_format(var[j], cols[j].fmt);
  }
  readstat_error_t e = readstat_begin_writing_dta(w, fp, 3);
  for (int r = 0; r < 3 && e == READSTAT_OK; r++) {
    e = readstat_begin_row(w);
    for (int j = 0; j < NC; j++) {
      if (isnan(cols[j].v[r])) readstat_insert_missing_value(w, var[j]);
      else readstat_insert_double_value(w, var[j], cols[j].v[r]);
    }
    if (e == READSTAT_OK) e = readstat_end_row(w);
  }
  if (e == READSTAT_OK) e = readstat_end_writing(w);
  readstat_writer_free(w);
  fclose(fp);
  check(e == READSTAT_OK, "dates: write a .dta with date formats");
  sp_frame *f = NULL;
  sp_error err;
  sp_error_clear(&err);
  if (sp_frame_read_stat(path, &f, &err) != SP_OK) { check(0, "dates: read back"); printf("  %s\n", err.msg); return; }
  const double *jan1 = sp_frame_column(f, "jan1")->num, *daily = sp_frame_column(f, "daily")->num,
               *month = sp_frame_column(f, "month")->num, *year = sp_frame_column(f, "year")->num,
               *dec31 = sp_frame_column(f, "dec31")->num, *cdays = sp_frame_column(f, "cdays")->num,
               *clock = sp_frame_column(f, "clock")->num, *event = sp_frame_column(f, "event")->num,
               *plain = sp_frame_column(f, "plain")->num;
  check(jan1[0] == 2010 && jan1[1] == 2011 && isnan(jan1[2]), "dates: %td on 1 January of each year becomes the year");
  check(dec31[0] == 1999 && dec31[1] == 2000 && dec31[2] == 2001,
        "dates: %tc at midnight of 31 December becomes the year");
  check(cdays[0] == 18263 && cdays[1] == 18264 && cdays[2] == 18270, "dates: %tc whole days become %td days");
  check(daily[0] == 18263 && daily[2] == 18266 && month[0] == 600 && month[2] == 603 && year[1] == 2011,
        "dates: %td days, %tm months and %ty years stay Stata's periods");
  check(clock[0] == 18263 * 86400000.0 + 3600000 && clock[1] == 18264 * 86400000.0 && isnan(clock[2]),
        "dates: %tc with a time of day stays in milliseconds");
  check(event[0] == 20000 && event[2] == 20000, "dates: a single date stays a day");
  check(plain[0] == 18263 && plain[2] == 18993, "dates: a number without a date format is left alone");
  sp_frame_free(f);  unlink(path);
}

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return NULL;
  unsigned char *b = malloc(1 << 16);
  *len = b ? fread(b, 1, 1 << 16, fp) : 0;
  fclose(fp);
  return b;
}

/* Address space is capped in a child so that reading for 2e9 announced rows
   fails there instead of taking the machine's memory; AddressSanitizer
   reserves terabytes of address space, so under it the cap is left off (the
   ASan run only checks that the read is clean). */
#if defined(__SANITIZE_ADDRESS__)
#define SP_CAP_MEMORY 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SP_CAP_MEMORY 0
#endif
#endif
#ifndef SP_CAP_MEMORY
#define SP_CAP_MEMORY 1
#endif

/* A .dta whose header claims 2e9 rows (Stata 118 keeps N as 8 bytes in the
   <N> tag) while 5 are present: the reader must not allocate for 2e9 rows up
   front.  A clean error or a correct read are both fine; out of memory is
   not. */
static void check_lying_header(const char *dir, const char *dta) {
  size_t len = 0;
  unsigned char *b = slurp(dta, &len);
  unsigned char *n = NULL;
  for (size_t i = 0; b != NULL && i + 11 < len && n == NULL; i++)
    if (memcmp(b + i, "<N>", 3) == 0) n = b + i + 3;
  check(n != NULL && memcmp(b, "<stata_dta>", 11) == 0, "lying header: the .dta has an <N> tag (format 118+)");
  if (n == NULL) { free(b); return; }
  uint64_t big = 2000000000u;
  for (int k = 0; k < 8; k++) n[k] = (unsigned char)(big >> (8 * k));  /* LSF: little-endian */
  char path[300];
  snprintf(path, sizeof path, "%s/lying.dta", dir);
  FILE *fp = fopen(path, "wb");
  if (fp) { fwrite(b, 1, len, fp); fclose(fp); }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (SP_CAP_MEMORY) {
      struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};
      setrlimit(RLIMIT_AS, &rl);
    }
    sp_frame *f = NULL;
    sp_error err;
    sp_error_clear(&err);
    int st = sp_frame_read_stat(path, &f, &err);
    printf("  lying header: status %d, %s\n", st, st == SP_OK ? "read" : err.msg);
    int ok = (st == SP_OK && f != NULL && f->nrow == 5) ||
             (st != SP_OK && st != SP_ENOMEM && strstr(err.msg, "lying.dta") != NULL);
    sp_frame_free(f);
    sp_error_clear(&err);
    /* The same bytes from memory. */
    st = sp_frame_read_stat_buffer(b, len, "lying.dta", &f, &err);
    ok = ok && ((st == SP_OK && f != NULL && f->nrow == 5) || (st != SP_OK && st != SP_ENOMEM));
    sp_frame_free(f);
    fflush(stdout);
    _exit(ok ? 0 : 1);
  }
  int ws = 0;
  waitpid(pid, &ws, 0);
  check(WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
        "lying header (N = 2e9, 5 rows present): a clean error or a correct read within 1 GiB, from a file and from memory");
  unlink(path);
  free(b);
}

int main(void) {
  char dir[] = "/tmp/sp_stat_testXXXXXX";
  if (mkdtemp(dir) == NULL) { printf("FAIL temp dir\n0 passed, 1 failed\n"); return 1; }
  char dta[256], sav[256], other[256];
  snprintf(dta, sizeof dta, "%s/t.dta", dir);
  snprintf(sav, sizeof sav, "%s/t.sav", dir);
  snprintf(other, sizeof other, "%s/t.xlsx", dir);

  check(write_file(dta, 1), "write a .dta with ReadStat");
  check_frame(dta, "dta");
  check(write_file(sav, 0), "write a .sav with ReadStat");
  check_frame(sav, "sav");
  check_dates(dir);

  /* The same file from memory. */
  size_t blen = 0;
  unsigned char *bytes = slurp(dta, &blen);
  sp_frame *f = NULL;
  sp_error err;
  sp_error_clear(&err);
  int st = bytes ? sp_frame_read_stat_buffer(bytes, blen, "mem.dta", &f, &err) : SP_EIO;
  check(st == SP_OK && f != NULL && f->nrow == 5 && f->ncol == 3 &&
        strcmp(sp_column_level(sp_frame_column(f, "name"), 3), "天津") == 0, "dta from a memory buffer");
  sp_frame_free(f);
  f = NULL;
  sp_error_clear(&err);
  st = bytes ? sp_frame_read_stat_buffer(bytes, blen / 2, "half.dta", &f, &err) : SP_OK;
  check(st != SP_OK && f == NULL && strstr(err.msg, "half.dta") != NULL, "a truncated buffer is an error naming it");
  free(bytes);
  check_lying_header(dir, dta);

  /* fuzz_statfile's first find: a Stata 116 header whose value-label name
     fills its 33-byte entry with no terminator; ReadStat passes a pointer
     into that table and strdup read past it (an ASan report; run the ASan
     build to see this test fail without the fix). */
  sp_error_clear(&err);
  st = sp_frame_read_stat("tests/data/fuzz_dta_unterminated_labelset.dta", &f, &err);
  check((st == SP_OK && f != NULL) || (st != SP_OK && f == NULL && err.msg[0] != '\0'),
        "fuzz reproducer: an unterminated value-label name is read within its entry");
  sp_frame_free(f);
  f = NULL;
  /* fuzz_statfile's second find: a damaged .dta for which ReadStat asks the
     buffer reader for 0 bytes into a NULL buffer; memcpy(NULL, ..., 0) is
     undefined (a UBSan report in the sanitizer build without the fix). */
  bytes = slurp("tests/data/fuzz_dta_zero_read.dta", &blen);
  sp_error_clear(&err);
  st = bytes ? sp_frame_read_stat_buffer(bytes, blen, "zero.dta", &f, &err) : SP_EIO;
  check(bytes != NULL && ((st == SP_OK && f != NULL) || (st != SP_OK && f == NULL && err.msg[0] != '\0')),
        "fuzz reproducer: a zero-byte read into no buffer");
  free(bytes);
  sp_frame_free(f);
  f = NULL;

  /* Regular files only: a directory, a FIFO and a device are refused at once
     (a FIFO used to block in open, /dev/zero to be read for ever). */
  const char *kinds[3][2] = {{"d.dta", "it is a directory"}, {"p.sav", "it is a FIFO"}, {"z.dta", "it is a character device"}};
  char special[3][300];
  for (int k = 0; k < 3; k++) snprintf(special[k], sizeof special[k], "%s/%s", dir, kinds[k][0]);
  mkdir(special[0], 0700);
  mkfifo(special[1], 0600);
  if (symlink("/dev/zero", special[2]) != 0) printf("  (symlink failed)\n");
  for (int k = 0; k < 3; k++) {
    char what[200];
    sp_error_clear(&err);
    st = sp_frame_read_stat(special[k], &f, &err);
    snprintf(what, sizeof what, "error: %s is refused (%s)", kinds[k][0], kinds[k][1]);
    check(st == SP_EIO && f == NULL && strstr(err.msg, kinds[k][1]) != NULL &&
          strstr(err.msg, "expected a Stata, SPSS or SAS data file") != NULL, what);
  }
  rmdir(special[0]);
  unlink(special[1]);
  unlink(special[2]);

  sp_error_clear(&err);
  st = sp_frame_read_stat(other, &f, &err);
  check(st == SP_EVALUE && f == NULL && strstr(err.msg, "unsupported extension '.xlsx'") != NULL &&
        strstr(err.msg, ".dta") != NULL, "error: unsupported extension named with the supported ones");
  snprintf(other, sizeof other, "%s/missing.dta", dir);
  sp_error_clear(&err);
  st = sp_frame_read_stat(other, &f, &err);
  check(st == SP_EIO && strstr(err.msg, "No such file or directory") != NULL, "error: missing file with strerror");
  /* A CSV renamed .dta: ReadStat refuses it and we say so. */
  snprintf(other, sizeof other, "%s/fake.dta", dir);
  FILE *fp = fopen(other, "w");
  if (fp) { fputs("a,b\n1,2\n", fp); fclose(fp); }
  sp_error_clear(&err);
  st = sp_frame_read_stat(other, &f, &err);
  check(st != SP_OK && f == NULL && strstr(err.msg, "fake.dta") != NULL, "error: not a Stata file");
  printf("  (%s)\n", err.msg);

  unlink(dta);
  unlink(sav);
  unlink(other);
  rmdir(dir);
  printf("%d passed, %d failed\n", npass, nfail);
  return nfail != 0;
}
