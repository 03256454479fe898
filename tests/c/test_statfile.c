/*
** test_statfile.c: Stata and SPSS files written with ReadStat's writer into
** a temporary directory, then read back with sp_frame_read_stat.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

  sp_frame *f = NULL;
  sp_error err;
  sp_error_clear(&err);
  int st = sp_frame_read_stat(other, &f, &err);
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
