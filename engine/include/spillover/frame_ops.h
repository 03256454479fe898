/*
** frame_ops.h: the numeric work behind frame operations: sorting, grouping,
** aggregation, joins, descriptive statistics, quantiles and column transforms.
**
** Conventions (as in frame.h): missing values are NaN in numeric columns and
** code -1 in categorical ones.  Categorical values are compared by their level
** strings (byte order of the UTF-8 text, i.e. strcmp), never by their codes,
** so two frames with different dictionaries compare consistently.  Every
** function returns an sp_status and fills err on failure; none prints.
*/
#ifndef SPILLOVER_FRAME_OPS_H
#define SPILLOVER_FRAME_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "spillover/error.h"
#include "spillover/frame.h"

/* ---- building columns -------------------------------------------------------- */

/* Add (or replace) a categorical column from f->nrow strings; values[i] == NULL
   marks a missing cell.  Levels are the distinct strings in strcmp order.  The
   strings are copied: the caller keeps ownership of values. */
int sp_frame_add_strings(sp_frame *f, const char *name, const char *const *values, sp_error *err);

/* Rename a column (and the panel index's record of it).  SP_ENOTFOUND when
   from does not exist, SP_EDUP when another column is already called to. */
int sp_frame_rename(sp_frame *f, const char *from, const char *to, sp_error *err);

/* ---- sorting and grouping -------------------------------------------------------- */

typedef struct {
  const char *name;  /* column to sort by */
  int desc;          /* non-zero: descending */
} sp_sort_key;

/* perm (f->nrow entries, caller-allocated) receives the row numbers in sorted
   order.  The sort is stable; missing values go last in either direction. */
int sp_frame_order(const sp_frame *f, const sp_sort_key *keys, size_t nkeys,
                   size_t *perm, sp_error *err);

/* *out = a new frame of f's rows in that order (all columns; no panel index).
   Unlike sp_frame_order followed by sp_frame_take, the row order is built in
   reused warm memory (mem.h), so a sort at 1e7 rows does not pay for 80 MB of
   fresh pages. */
int sp_frame_sort(const sp_frame *f, const sp_sort_key *keys, size_t nkeys,
                  sp_frame **out, sp_error *err);

/* Group the rows by the key columns.  codes (f->nrow entries) receives a group
   number per row, numbered in ascending order of the key values; a row with a
   missing value in any key gets -1 and belongs to no group.  first (f->nrow
   entries) receives, for each group, its first row in frame order.  Both
   arrays are caller-allocated. */
int sp_frame_group(const sp_frame *f, const char *const *keys, size_t nkeys,
                   int32_t *codes, size_t *ngroups, size_t *first, sp_error *err);

/* ---- aggregation ------------------------------------------------------------------- */

typedef enum {
  SP_AGG_MEAN = 0, SP_AGG_SUM, SP_AGG_SD, SP_AGG_MIN, SP_AGG_MAX, SP_AGG_FIRST,
  SP_AGG_NFUN
} sp_agg_fun;

/* "mean", "sum", ...: the suffix of result column names. */
const char *sp_agg_name(sp_agg_fun fun);

typedef struct {
  const char *column;
  sp_agg_fun fun;
  const char *out;   /* result column name; NULL gives "<column>_<fun>" */
} sp_agg_spec;

/* One row per group of the by columns (ascending key order; rows with a missing
   key are left out).  Result columns: the by columns, then "n" (rows per group)
   when count is non-zero, then one column per spec in the given order.  Missing
   values are skipped: mean/sd/min/max of no values is NaN, sum of none is 0, sd
   uses n - 1, first is the first non-missing value in frame order (the only
   function allowed on a categorical column).  *out is owned by the caller. */
int sp_frame_aggregate(const sp_frame *f, const char *const *by, size_t nby,
                       const sp_agg_spec *specs, size_t nspecs, int count,
                       sp_frame **out, sp_error *err);

/* ---- descriptive statistics ---------------------------------------------------------- */

/* A frame with columns variable, N, mean, sd, min, max, missing: one row per
   named column (or per numeric column when names == NULL).  N counts the
   non-missing values; sd uses n - 1 (NaN when N < 2).  The mean and sd are
   computed in two passes for accuracy.  A named categorical column is an
   SP_EVALUE error. */
int sp_frame_describe(const sp_frame *f, const char *const *names, size_t nnames,
                      sp_frame **out, sp_error *err);

/* ---- joins ------------------------------------------------------------------------------ */

typedef enum { SP_JOIN_LEFT = 0, SP_JOIN_INNER } sp_join_how;
typedef enum { SP_VALIDATE_NONE = 0, SP_VALIDATE_1_1, SP_VALIDATE_M_1 } sp_join_validate;

typedef struct {
  const char *const *on;  /* key columns, present in both frames with the same type */
  size_t non;
  sp_join_how how;
  sp_join_validate validate;
  const char *suffix;     /* appended to right-frame columns whose names clash; NULL: "_y" */
} sp_join_options;

/* Join y onto x by the key columns.  The result keeps x's row order; a row of x
   matching several rows of y is repeated once per match, in y's row order.
   Columns: all of x, then y's non-key columns (clashing names get the suffix).
   A missing key never matches.  Left joins keep unmatched x rows with missing
   y values.  validate = 1:1 requires unique keys on both sides, m:1 on the
   right; a duplicate is an SP_EDUP error naming the key values and two rows. */
int sp_frame_join(const sp_frame *x, const sp_frame *y, const sp_join_options *opt,
                  sp_frame **out, sp_error *err);

/* ---- quantiles and column transforms ------------------------------------------------ */

/* The p-quantile of n ascending non-missing values, Hyndman-Fan type 7 (R's
   default): h = (n - 1) p, x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]).
   NaN when n == 0. */
double sp_quantile_sorted(const double *sorted, size_t n, double p);

/* Clamp x (in place) to its [lower, upper] type-7 quantiles, computed over the
   non-missing values of each group (group == NULL: one group; rows with group
   code -1 are left as they are).  0 <= lower <= upper <= 1. */
int sp_winsorize(double *x, size_t n, const int32_t *group, size_t ngroups,
                 double lower, double upper, sp_error *err);

/* Replace x by z-scores (x - mean) / sd with sd on n - 1, skipping missing
   values.  SP_EDF with fewer than two values, SP_EVALUE when sd is zero or a
   value is infinite. */
int sp_standardize(double *x, size_t n, const char *name, sp_error *err);

/* out = log(x).  A zero or negative value is an SP_EVALUE error naming name,
   the 1-based row and the value, unless nonpositive_nan is set, when it gives
   NaN.  out may alias x. */
int sp_log_values(const double *x, size_t n, int nonpositive_nan, const char *name,
                  double *out, sp_error *err);

/* means[g] = mean of the non-missing x in group g (NaN for none); rows with
   code -1 are ignored.  means has ngroups entries. */
int sp_group_means(const double *x, size_t n, const int32_t *group, size_t ngroups,
                   double *means, sp_error *err);

#endif
