/*
** statfile.h: reading Stata, SPSS and SAS data files (through ReadStat).
**
** Mapping onto sp_frame:
**   numeric variable                  -> numeric column; system missing, Stata
**                                        extended missing (.a-.z) and SPSS
**                                        user-defined missing -> NaN
**   string variable                   -> categorical, levels in order of first
**                                        appearance; the empty string is missing
**   numeric variable with value labels -> categorical whose levels are the
**                                        labels, ordered by value; a value
**                                        without a label keeps its number as
**                                        text (%.15g); all labels of the set are
**                                        levels, observed or not
**   variable label                    -> sp_column.label
*/
#ifndef SPILLOVER_STATFILE_H
#define SPILLOVER_STATFILE_H

#include "spillover/error.h"
#include "spillover/frame.h"

/* Read path into a new frame (*out, freed with sp_frame_free), choosing the
   format by extension: .dta (Stata), .sav/.zsav/.por (SPSS), .sas7bdat/.xpt
   (SAS).  Another extension is SP_EVALUE naming the supported ones; a path
   that is not a regular file (a directory, FIFO or device) is SP_EIO.  The
   row count a file announces only sizes the first allocation: memory follows
   the rows actually present. */
int sp_frame_read_stat(const char *path, sp_frame **out, sp_error *err);

/* The same from buf[0..len), in the format name's extension says; name is
   used in messages.  buf is only borrowed for the call. */
int sp_frame_read_stat_buffer(const void *buf, size_t len, const char *name, sp_frame **out, sp_error *err);

/* 1 when path has an extension sp_frame_read_stat reads. */
int sp_stat_supported(const char *path);

#endif
