/*
** test_sha256: FIPS 180-4 example vectors, streaming in odd chunks, block
** boundary lengths and real files against the system's sha256sum, and the
** error for a missing file.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spillover/sha256.h"

static int passed, failed;

static void check(int ok, const char *what, const char *detail) {
  if (ok) {
    passed++;
    printf("PASS %s\n", what);
  } else {
    failed++;
    printf("FAIL %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  }
}

static void check_hex(const char *got, const char *want, const char *what) {
  char detail[200];
  snprintf(detail, sizeof detail, "got %s want %s", got, want);
  check(strcmp(got, want) == 0, what, detail);
}

/* sha256sum's digest of path, or "" when the tool is unavailable. */
static void sha256sum(const char *path, char out[SP_SHA256_HEX]) {
  char cmd[512];
  out[0] = '\0';
  snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
  FILE *p = popen(cmd, "r");
  if (p == NULL) return;
  if (fscanf(p, "%64s", out) != 1) out[0] = '\0';
  pclose(p);
}

int main(void) {
  char hex[SP_SHA256_HEX];

  /* FIPS 180-4 / NIST CSRC example vectors. */
  sp_sha256_hex("abc", 3, hex);
  check_hex(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "abc");
  sp_sha256_hex("", 0, hex);
  check_hex(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty");
  const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  sp_sha256_hex(m448, strlen(m448), hex);
  check_hex(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "448-bit message");
  const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
  sp_sha256_hex(m896, strlen(m896), hex);
  check_hex(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1", "896-bit message");

  /* One million 'a', fed in chunks of 997 bytes (not a divisor of 64). */
  {
    static char a[997];
    memset(a, 'a', sizeof a);
    sp_sha256 s;
    unsigned char d[SP_SHA256_DIGEST];
    size_t left = 1000000;
    sp_sha256_init(&s);
    while (left > 0) {
      size_t n = left < sizeof a ? left : sizeof a;
      sp_sha256_update(&s, a, n);
      left -= n;
    }
    sp_sha256_final(&s, d);
    sp_sha256_tohex(d, hex);
    check_hex(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "million a in 997-byte chunks");
  }

  /* Byte-at-a-time equals one-shot. */
  {
    sp_sha256 s;
    unsigned char d[SP_SHA256_DIGEST];
    char one[SP_SHA256_HEX];
    sp_sha256_init(&s);
    for (size_t i = 0; i < strlen(m896); i++) sp_sha256_update(&s, m896 + i, 1);
    sp_sha256_final(&s, d);
    sp_sha256_tohex(d, hex);
    sp_sha256_hex(m896, strlen(m896), one);
    check_hex(hex, one, "byte-at-a-time equals one-shot");
  }

  /* Padding edge cases (55, 56, 63, 64, 65, 119, 120 bytes) and a real data
     file, against sha256sum. */
  {
    char dir[] = "/tmp/sp_sha256_XXXXXX";
    if (mkdtemp(dir) == NULL) {
      check(0, "mkdtemp", NULL);
    } else {
      static const size_t lens[] = {55, 56, 63, 64, 65, 119, 120, 4097};
      for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        char path[256], want[SP_SHA256_HEX], what[64];
        snprintf(path, sizeof path, "%s/f%zu", dir, lens[k]);
        FILE *f = fopen(path, "wb");
        for (size_t i = 0; f && i < lens[k]; i++) fputc((int)(i * 7 % 251), f);
        if (f) fclose(f);
        sp_error err;
        sp_error_clear(&err);
        int st = sp_sha256_file(path, hex, &err);
        sha256sum(path, want);
        snprintf(what, sizeof what, "length %zu matches sha256sum", lens[k]);
        if (want[0] == '\0') {
          check(st == SP_OK, what, "sha256sum unavailable; only status checked");
        } else {
          check(st == SP_OK, what, err.msg);
          check_hex(hex, want, what);
        }
        remove(path);
      }
      rmdir(dir);
    }
    const char *data = "tests/reference/data/Produc.csv";
    char want[SP_SHA256_HEX];
    sp_error err;
    sp_error_clear(&err);
    int st = sp_sha256_file(data, hex, &err);
    check(st == SP_OK, "Produc.csv hashed", err.msg);
    sha256sum(data, want);
    if (want[0] != '\0') check_hex(hex, want, "Produc.csv matches sha256sum");
  }

  /* A missing file: SP_EIO, the path in err->file, strerror in the message. */
  {
    sp_error err;
    sp_error_clear(&err);
    int st = sp_sha256_file("/nonexistent/sp_missing.csv", hex, &err);
    check(st == SP_EIO, "missing file gives SP_EIO", err.msg);
    check(strcmp(err.file, "/nonexistent/sp_missing.csv") == 0, "missing file: path recorded", err.file);
    check(strstr(err.msg, "No such file") != NULL, "missing file: strerror text", err.msg);
    sp_error_clear(&err);
    st = sp_sha256_file("tests", hex, &err);
    check(st == SP_EIO && strstr(err.msg, "cannot read") != NULL, "directory gives a read error", err.msg);
  }

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
