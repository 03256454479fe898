/*
** sha256.h: SHA-256 (FIPS 180-4) of buffers and files, for the input hashes a
** scenario run records in its manifest.
**
** Streaming use: sp_sha256_init, any number of sp_sha256_update, then
** sp_sha256_final.  The context is a plain struct the caller owns; nothing is
** allocated.
*/
#ifndef SPILLOVER_SHA256_H
#define SPILLOVER_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "spillover/error.h"

#define SP_SHA256_DIGEST 32
#define SP_SHA256_HEX 65 /* 64 hex digits and the terminating NUL */

typedef struct {
  uint32_t h[8];
  uint64_t nbytes;        /* total bytes hashed so far */
  unsigned char buf[64];  /* the partial block */
  size_t nbuf;
} sp_sha256;

void sp_sha256_init(sp_sha256 *s);
void sp_sha256_update(sp_sha256 *s, const void *data, size_t n);
/* Writes the digest; s must be re-initialised before reuse. */
void sp_sha256_final(sp_sha256 *s, unsigned char out[SP_SHA256_DIGEST]);

/* Lowercase hex of a digest into hex (SP_SHA256_HEX bytes). */
void sp_sha256_tohex(const unsigned char digest[SP_SHA256_DIGEST], char hex[SP_SHA256_HEX]);

/* One-shot hex digest of a buffer. */
void sp_sha256_hex(const void *data, size_t n, char hex[SP_SHA256_HEX]);

/* Hex digest of a file's bytes.  Fails with SP_EIO ("cannot open/read file:
   <strerror>", err->file = path) when the file cannot be read. */
int sp_sha256_file(const char *path, char hex[SP_SHA256_HEX], sp_error *err);

#endif
