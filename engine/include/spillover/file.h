/*
** file.h: opening input data files.
**
** A reader that is handed a device (/dev/zero), a FIFO or a directory either
** reads until memory runs out or blocks forever waiting for a writer.  Every
** reader of user-named files (CSV, Stata/SPSS/SAS, YAML) therefore opens
** through sp_file_open, which accepts regular files only.
*/
#ifndef SPILLOVER_FILE_H
#define SPILLOVER_FILE_H

#include <sys/types.h>

#include "spillover/error.h"

/* Open path for reading and return its descriptor (the caller closes it),
   after checking that it is a regular file.  The open does not block on a
   FIFO without a writer, and the check is made on the open descriptor, so the
   file checked is the file read.  On failure returns -1, fills err (SP_EIO,
   "cannot open 'x': <strerror>" or "cannot read 'x': it is a directory,
   expected <what>") and leaves errno set to the reason (EISDIR for a
   directory, EINVAL for any other kind of non-regular file).  When size is
   not NULL it receives the file's size in bytes. */
int sp_file_open(const char *path, const char *what, off_t *size, sp_error *err);

#endif
