/*
** file.c: opening input data files (see file.h).
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spillover/file.h"

static const char *kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

int sp_file_open(const char *path, const char *what, off_t *size, sp_error *err) {
  /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    sp_error_set(err, SP_EIO, "cannot open '%s': %s", path, strerror(e));
    sp_error_at(err, path, 0, 0);
    errno = e;
    return -1;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    sp_error_set(err, SP_EIO, "cannot read '%s': %s", path, strerror(e));
    sp_error_at(err, path, 0, 0);
    errno = e;
    return -1;
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    sp_error_set(err, SP_EIO, "cannot read '%s': it is %s, expected %s", path, kind_of(sb.st_mode), what);
    sp_error_at(err, path, 0, 0);
    errno = S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
    return -1;
  }
  /* Reads of a regular file never block; clear the flag so the descriptor
     behaves like any other. */
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  if (size != NULL) *size = sb.st_size;
  return fd;
}
