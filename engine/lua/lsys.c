/*
** lsys.c: sp.sys, the operating-system services the scenario runner needs:
** hashing inputs for the manifest, writing an output folder atomically
** (mkdtemp next to the target, fsync, then an exchange of names under a
** lock), timing, and running scenario workers as child processes for
** `spillover batch -j N` and `--timeout`.
**
** Two error channels (STYLE.md): wrong argument types raise; every routine
** failure returns nil, "<op>: <path>: <strerror>", errno.  Resources that
** live across a Lua call that may raise (a DIR* while names are pushed) sit in
** a userdata with __gc; everything else is released before anything is
** pushed.  Processes are started with posix_spawnp: no shell is involved, so
** arguments need no quoting.  Two results are neither success nor failure:
** `false` means "not now" (a lock held by another process, a wait that timed
** out or was cut short by a trapped signal).
**
** The one piece of process-global state is the number of the last trapped
** signal: a signal handler can only talk to the program through a static.
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lsp.h"
#include "lsys.h"
#include "spillover/sha256.h"

extern char **environ;

#define DIR_T "spillover.sys_dir"
#define LOCK_T "spillover.sys_lock"

/* nil, "op: path: strerror(e)", e */
static int fail(lua_State *L, const char *op, const char *path, int e) {
  luaL_pushfail(L);
  if (path) lua_pushfstring(L, "%s: %s: %s", op, path, strerror(e));
  else lua_pushfstring(L, "%s: %s", op, strerror(e));
  lua_pushinteger(L, e);
  return 3;
}


/* ---- hashing ---------------------------------------------------------------- */

static int l_sha256(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char hex[SP_SHA256_HEX];
  sp_sha256_hex(s, n, hex);
  lua_pushstring(L, hex);
  return 1;
}

static int l_sha256_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char hex[SP_SHA256_HEX], msg[1200];
  sp_error err;
  sp_error_clear(&err);
  if (sp_sha256_file(path, hex, &err) != SP_OK) {
    sp_error_format(&err, msg, sizeof msg);
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    return 2;
  }
  lua_pushstring(L, hex);
  return 1;
}

/* ---- files and directories ---------------------------------------------------- */

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int l_isdir(lua_State *L) {
  lua_pushboolean(L, is_dir(luaL_checkstring(L, 1)));
  return 1;
}

/* sys.isfile(path): a regular file (after symlinks).  Callers that only
   probe a path must not open it: opening a FIFO blocks. */
static int l_isfile(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0 && S_ISREG(st.st_mode));
  return 1;
}

static int l_exists(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0);
  return 1;
}

static int l_mkdir(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  static const char *const allowed[] = {"parents", "mode", NULL};
  sp_lua_check_options(L, 2, "sys.mkdir", allowed);
  int parents = 0;
  lua_Integer mode = 0777;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "parents");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) luaL_error(L, "sys.mkdir: option 'parents' must be a boolean");
    parents = lua_toboolean(L, -1);
    lua_getfield(L, 2, "mode");
    if (!lua_isnil(L, -1)) {
      int isint;
      mode = lua_tointegerx(L, -1, &isint);
      if (!isint || mode < 0 || mode > 07777) luaL_error(L, "sys.mkdir: option 'mode' must be an integer such as 493 (0755)");
    }
    lua_pop(L, 2);
  }
  if (len == 0) return fail(L, "mkdir", "''", ENOENT);
  if (parents) {
    char buf[PATH_MAX];
    if (len >= sizeof buf) return fail(L, "mkdir", path, ENAMETOOLONG);
    memcpy(buf, path, len + 1);
    /* Create each ancestor in turn; ones that exist already are fine. */
    for (size_t i = 1; i < len; i++) {
      if (buf[i] != '/' || buf[i - 1] == '/') continue;
      buf[i] = '\0';
      if (mkdir(buf, (mode_t)mode) != 0 && !(errno == EEXIST && is_dir(buf))) {
        int e = errno == EEXIST ? ENOTDIR : errno;
        return fail(L, "mkdir", buf, e);
      }
      buf[i] = '/';
    }
  }
  if (mkdir(path, (mode_t)mode) != 0) {
    int e = errno;
    if (!(parents && e == EEXIST && is_dir(path))) return fail(L, "mkdir", path, e);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_mkdtemp(lua_State *L) {
  size_t len;
  const char *prefix = luaL_checklstring(L, 1, &len);
  char buf[PATH_MAX];
  if (len + 7 > sizeof buf) return fail(L, "mkdtemp", prefix, ENAMETOOLONG);
  memcpy(buf, prefix, len);
  memcpy(buf + len, "XXXXXX", 7);
  if (mkdtemp(buf) == NULL) {
    int e = errno;
    return fail(L, "mkdtemp", lua_pushfstring(L, "%sXXXXXX", prefix), e);
  }
  lua_pushstring(L, buf);
  return 1;
}

static int l_rename(lua_State *L) {
  const char *from = luaL_checkstring(L, 1), *to = luaL_checkstring(L, 2);
  if (rename(from, to) != 0) {
    int e = errno;
    return fail(L, "rename", lua_pushfstring(L, "%s -> %s", from, to), e);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* renameat2(RENAME_EXCHANGE) swaps two existing paths in one step, so there is
   no moment at which either name is missing.  glibc has had a wrapper only
   since 2.28, hence the raw system call.  Filesystems and kernels that cannot
   exchange answer EINVAL or ENOSYS: that is `false`, and the caller falls back
   to two renames. */
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int l_exchange(lua_State *L) {
  const char *a = luaL_checkstring(L, 1), *b = luaL_checkstring(L, 2);
#ifdef SYS_renameat2
  if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  int e = errno;
#else
  int e = ENOSYS;
#endif
  if (e == EINVAL || e == ENOSYS || e == ENOTSUP) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return fail(L, "exchange", lua_pushfstring(L, "%s <-> %s", a, b), e);
}

/* fsync a file or a directory (a directory's fsync makes the names in it,
   such as a rename's result, durable). */
static int l_fsync(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fail(L, "fsync", path, errno);
  int r = fsync(fd), e = errno;
  close(fd);
  if (r != 0) return fail(L, "fsync", path, e);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_chmod(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer mode = luaL_checkinteger(L, 2);
  luaL_argcheck(L, mode >= 0 && mode <= 07777, 2, "expected a mode such as 493 (0755)");
  if (chmod(path, (mode_t)mode) != 0) return fail(L, "chmod", path, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* The process's umask.  POSIX can only read it by setting it, so it is set
   back at once (the executable is single-threaded). */
static int l_umask(lua_State *L) {
  mode_t m = umask(022);
  umask(m);
  lua_pushinteger(L, (lua_Integer)m);
  return 1;
}

/* An advisory lock (flock) on a file, created if missing, or on a directory.
   The lock lives as long as its box: unlock(), __close, __gc or the death of
   the process release it, so a killed run never leaves a lock behind. */
typedef struct {
  int fd;
} lockbox;

static int lock_gc(lua_State *L) {
  lockbox *b = luaL_checkudata(L, 1, LOCK_T);
  if (b->fd >= 0) close(b->fd);
  b->fd = -1;
  return 0;
}

static volatile sig_atomic_t trapped_signal = 0;

static int l_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  static const char *const allowed[] = {"wait", NULL};
  sp_lua_check_options(L, 2, "sys.lock", allowed);
  int wait = 1;
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, "wait") != LUA_TNIL) {
      if (!lua_isboolean(L, -1)) luaL_error(L, "sys.lock: option 'wait' must be a boolean");
      wait = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
  }
  lua_settop(L, 2);
  lockbox *b = lua_newuserdatauv(L, sizeof *b, 0); /* 3 */
  b->fd = -1;
  luaL_setmetatable(L, LOCK_T);
  b->fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0666);
  if (b->fd < 0 && errno == EISDIR) b->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (b->fd < 0) return fail(L, "lock", path, errno);
  int r;
  /* A blocking wait gives way to a trapped signal (the handler does not
     restart system calls), so Ctrl-C still stops a run waiting here. */
  while ((r = flock(b->fd, LOCK_EX | (wait ? 0 : LOCK_NB))) != 0 && errno == EINTR && !trapped_signal) {}
  if (r != 0) {
    int e = errno;
    close(b->fd);
    b->fd = -1;
    if (e == EWOULDBLOCK) {
      lua_pushboolean(L, 0);
      return 1;
    }
    return fail(L, "lock", path, e);
  }
  return 1;
}

static int l_unlock(lua_State *L) {
  lock_gc(L);
  return 0;
}

static int l_realpath(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char buf[PATH_MAX];
  if (realpath(path, buf) == NULL) return fail(L, "realpath", path, errno);
  lua_pushstring(L, buf);
  return 1;
}

/* The DIR* of listdir lives in a box while names are pushed (which may
   raise on memory). */
typedef struct {
  DIR *d;
} dirbox;

static int dir_gc(lua_State *L) {
  dirbox *b = luaL_checkudata(L, 1, DIR_T);
  if (b->d) closedir(b->d);
  b->d = NULL;
  return 0;
}

typedef struct {
  const char *s;
  size_t n;
} nameref;

static int namecmp(const void *a, const void *b) {
  const nameref *x = a, *y = b;
  size_t m = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, m);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int l_listdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  dirbox *b = lua_newuserdatauv(L, sizeof *b, 0); /* 2 */
  b->d = NULL;
  luaL_setmetatable(L, DIR_T);
  b->d = opendir(path);
  if (b->d == NULL) return fail(L, "listdir", path, errno);
  lua_newtable(L); /* 3: names in directory order */
  lua_Integer n = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(b->d);
    if (de == NULL) {
      int e = errno;
      closedir(b->d);
      b->d = NULL;
      if (e != 0) return fail(L, "listdir", path, e);
      break;
    }
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    lua_pushstring(L, de->d_name);
    lua_rawseti(L, 3, ++n);
  }
  /* Sort bytewise so listings (and batch order) do not depend on the
     filesystem; the names stay pinned by table 3. */
  nameref *refs = lua_newuserdatauv(L, (size_t)n * sizeof *refs, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_rawgeti(L, 3, i + 1);
    refs[i].s = lua_tolstring(L, -1, &refs[i].n);
    lua_pop(L, 1);
  }
  qsort(refs, (size_t)n, sizeof *refs, namecmp);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushlstring(L, refs[i].s, refs[i].n);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* Remove name (relative to dirfd) and, for a directory, everything below it,
   without following symbolic links.  path[0..len) is the display path used
   in messages; on failure it names the entry that could not be removed.
   Returns 0 or an errno.  Pure C: nothing here can raise. */
static int remove_at(int dirfd, const char *name, char *path, size_t len, size_t cap) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  if (!S_ISDIR(st.st_mode)) return unlinkat(dirfd, name, 0) != 0 ? errno : 0;
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    int e = errno;
    close(fd);
    return e;
  }
  int e = 0, removed;
  /* Repeat passes while entries are found: whether readdir returns entries
     after some were unlinked is unspecified. */
  do {
    removed = 0;
    rewinddir(d);
    for (;;) {
      errno = 0;
      struct dirent *de = readdir(d);
      if (de == NULL) {
        e = errno;
        break;
      }
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      int w = snprintf(path + len, cap - len, "/%s", de->d_name);
      size_t add = w < 0 ? 0 : ((size_t)w < cap - len ? (size_t)w : cap - len - 1);
      e = remove_at(fd, de->d_name, path, len + add, cap);
      if (e != 0) break;
      path[len] = '\0';
      removed++;
    }
  } while (e == 0 && removed > 0);
  closedir(d);
  if (e != 0) return e;
  return unlinkat(dirfd, name, AT_REMOVEDIR) != 0 ? errno : 0;
}

static int l_remove_tree(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  /* Guard against the catastrophic cases a bad join would produce. */
  if (len == 0 || strcmp(path, "/") == 0 || strcmp(path, ".") == 0 || strcmp(path, "..") == 0)
    return fail(L, "remove_tree: refusing to remove", len ? path : "''", EINVAL);
  char name[PATH_MAX], shown[PATH_MAX + 256];
  if (len >= sizeof name) return fail(L, "remove_tree", path, ENAMETOOLONG);
  /* Without trailing slashes: "link/" would resolve a symbolic link and
     empty the directory it points to. */
  memcpy(name, path, len + 1);
  while (len > 1 && name[len - 1] == '/') name[--len] = '\0';
  if (strcmp(name, "/") == 0) return fail(L, "remove_tree: refusing to remove", path, EINVAL);
  snprintf(shown, sizeof shown, "%s", name);
  size_t slen = strlen(shown);
  int e = remove_at(AT_FDCWD, name, shown, slen, sizeof shown);
  if (e != 0) return fail(L, "remove_tree", shown, e);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- time, host, terminal --------------------------------------------------- */

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)mono_now());
  return 1;
}

static int l_time_iso(lua_State *L) {
  time_t t;
  if (lua_isnoneornil(L, 1)) t = time(NULL);
  else t = (time_t)luaL_checkinteger(L, 1);
  struct tm tm;
  char buf[64];
  if (gmtime_r(&t, &tm) == NULL || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    return fail(L, "time_iso", NULL, EOVERFLOW);
  lua_pushstring(L, buf);
  return 1;
}

static int l_hostname(lua_State *L) {
  char buf[HOST_NAME_MAX + 1];
  if (gethostname(buf, sizeof buf) != 0) return fail(L, "hostname", NULL, errno);
  buf[sizeof buf - 1] = '\0';
  lua_pushstring(L, buf);
  return 1;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static int l_isatty(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "expected a file descriptor (0, 1 or 2)");
  lua_pushboolean(L, isatty((int)fd));
  return 1;
}

static int l_ncpu(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? (lua_Integer)n : 1);
  return 1;
}

/* ---- processes ---------------------------------------------------------------- */

/* spawn(argv, {stdin=, stdout=, stderr=, group=}) -> pid.  The redirection
   files are opened here, in the parent, so a bad path is reported by name;
   they are close-on-exec, dup'ed onto 0/1/2 in the child, and closed here
   after.  group = true starts the child in a process group of its own, so that
   kill(pid, sig, {group = true}) reaches everything it started and a Ctrl-C
   at the terminal reaches only the parent, which decides what to stop. */
static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  static const char *const allowed[] = {"stdin", "stdout", "stderr", "group", NULL};
  sp_lua_check_options(L, 2, "sys.spawn", allowed);
  lua_settop(L, 2);
  int group = 0;
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  luaL_argcheck(L, n > 0, 1, "expected a non-empty list of strings (program, arguments...)");
  const char *redirect[3] = {NULL, NULL, NULL};
  static const char *const stream[3] = {"stdin", "stdout", "stderr"};
  if (lua_istable(L, 2)) {
    for (int i = 0; i < 3; i++) {
      if (lua_getfield(L, 2, stream[i]) != LUA_TNIL && lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "sys.spawn: option '%s' must be a file path (string)", stream[i]);
      redirect[i] = lua_tostring(L, -1); /* pinned by the options table */
      lua_pop(L, 1);
    }
    if (lua_getfield(L, 2, "group") != LUA_TNIL && !lua_isboolean(L, -1))
      luaL_error(L, "sys.spawn: option 'group' must be a boolean");
    group = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  /* argv lives in a userdata; its strings are pinned by table 1. */
  char **argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
      luaL_error(L, "sys.spawn: argv[%d] is a %s (expected a string)", (int)i, luaL_typename(L, -1));
    argv[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  argv[n] = NULL;

  /* From here to the cleanup nothing may raise. */
  int fds[3] = {-1, -1, -1}, e = 0, bad = -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  if ((e = posix_spawn_file_actions_init(&fa)) != 0) return fail(L, "spawn", argv[0], e);
  if ((e = posix_spawnattr_init(&attr)) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return fail(L, "spawn", argv[0], e);
  }
  if (group) {
    e = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    if (e == 0) e = posix_spawnattr_setpgroup(&attr, 0);
  }
  for (int i = 0; i < 3 && e == 0; i++) {
    if (redirect[i] == NULL) continue;
    if (i == 2 && redirect[1] && strcmp(redirect[1], redirect[2]) == 0) {
      /* One file for both streams: share stdout's offset, do not truncate twice. */
      e = posix_spawn_file_actions_adddup2(&fa, 1, 2);
      continue;
    }
    int flags = i == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_TRUNC;
    fds[i] = open(redirect[i], flags | O_CLOEXEC, 0666);
    if (fds[i] < 0) {
      e = errno;
      bad = i;
      break;
    }
    e = posix_spawn_file_actions_adddup2(&fa, fds[i], i);
  }
  pid_t pid = -1;
  if (e == 0) e = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0) close(fds[i]);
  if (bad >= 0) return fail(L, lua_pushfstring(L, "spawn: cannot open %s file", stream[bad]), redirect[bad], e);
  if (e != 0) return fail(L, "spawn", argv[0], e);
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

/* Push the exit code (128 + signal when killed, as shells report it) and,
   when killed, the signal number. */
static int push_status(lua_State *L, int status) {
  if (WIFEXITED(status)) {
    lua_pushinteger(L, WEXITSTATUS(status));
    return 1;
  }
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  lua_pushinteger(L, 128 + sig);
  lua_pushinteger(L, sig);
  return 2;
}

static void on_signal(int sig) {
  trapped_signal = sig;
}

/* trap_signals(): from now on SIGINT, SIGTERM and SIGHUP do not kill this
   process; they end the current wait (or lock wait) instead, which returns
   false and the signal, so the caller can stop its children and clean up.
   Children started later get the default actions back (exec resets caught
   signals). */
static int l_trap_signals(lua_State *L) {
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a blocking call returns EINTR */
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (sigaction(sigs[i], &sa, NULL) != 0) return fail(L, "trap_signals", NULL, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* Wait for pid (-1: any child) for at most timeout seconds (< 0: no limit).
   Returns the pid reaped, 0 when the time is up, -1 with errno set on
   failure, or -2 with *sig set when a trapped signal arrived (the signal is
   consumed: a second Ctrl-C ends the next wait too).  waitpid has no timeout,
   so this polls, sleeping 1 ms doubling to 50 ms; a trapped signal cuts the
   sleep short. */
static pid_t wait_for(pid_t pid, int *status, double timeout, int *sig) {
  double deadline = mono_now() + timeout;
  long delay_ns = 1000000;
  for (;;) {
    if (trapped_signal) {
      *sig = trapped_signal;
      trapped_signal = 0;
      return -2;
    }
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r > 0) return r;
    if (r < 0 && errno != EINTR) return -1;
    double left = timeout < 0 ? 1.0 : deadline - mono_now();
    if (left <= 0) return 0;
    long ns = left * 1e9 < (double)delay_ns ? (long)(left * 1e9) : delay_ns;
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
    if (delay_ns < 50000000) delay_ns *= 2;
  }
}

static double opt_timeout(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return -1;
  lua_Number t = luaL_checknumber(L, idx);
  luaL_argcheck(L, t >= 0 && t < 1e9, idx, "expected a timeout in seconds (>= 0)");
  return (double)t;
}

/* The results of a wait that did not reap: false (time is up) or false and
   the trapped signal. */
static int push_not_now(lua_State *L, pid_t r, int sig) {
  lua_pushboolean(L, 0);
  if (r == 0) return 1;
  lua_pushinteger(L, sig);
  return 2;
}

static int l_wait(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  luaL_argcheck(L, pid > 0, 1, "expected a process id returned by sys.spawn");
  double timeout = opt_timeout(L, 2);
  int status, sig = 0;
  pid_t r = wait_for((pid_t)pid, &status, timeout, &sig);
  if (r == -1) return fail(L, "wait", lua_pushfstring(L, "pid %d", (int)pid), errno);
  if (r <= 0) return push_not_now(L, r, sig);
  return push_status(L, status);
}

static int l_waitany(lua_State *L) {
  double timeout = opt_timeout(L, 1);
  int status, sig = 0;
  pid_t r = wait_for(-1, &status, timeout, &sig);
  if (r == -1) return fail(L, "waitany", NULL, errno);
  if (r <= 0) return push_not_now(L, r, sig);
  lua_pushinteger(L, (lua_Integer)r);
  return 1 + push_status(L, status);
}

/* kill(pid [, sig [, {group = true}]]): group sends to the process group
   whose id is pid (a child started with spawn{group = true}). */
static int l_kill(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  lua_Integer sig = luaL_optinteger(L, 2, SIGTERM);
  luaL_argcheck(L, pid > 1, 1, "expected a process id returned by sys.spawn");
  luaL_argcheck(L, sig >= 0 && sig < 65, 2, "expected a signal number");
  static const char *const allowed[] = {"group", NULL};
  sp_lua_check_options(L, 3, "sys.kill", allowed);
  int group = 0;
  if (lua_istable(L, 3)) {
    if (lua_getfield(L, 3, "group") != LUA_TNIL && !lua_isboolean(L, -1))
      luaL_error(L, "sys.kill: option 'group' must be a boolean");
    group = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (kill(group ? -(pid_t)pid : (pid_t)pid, (int)sig) != 0)
    return fail(L, "kill", lua_pushfstring(L, "%s %d", group ? "process group" : "pid", (int)pid), errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* "SIGKILL" for 9: the name people know a signal by (strsignal gives
   "Killed"); nil for a number that is not a signal here. */
static int l_signame(lua_State *L) {
  static const struct { int sig; const char *name; } names[] = {
    {SIGHUP, "SIGHUP"}, {SIGINT, "SIGINT"}, {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
    {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"}, {SIGFPE, "SIGFPE"},
    {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
    {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGCHLD, "SIGCHLD"},
    {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
    {SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"}, {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
    {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGSYS, "SIGSYS"},
  };
  lua_Integer sig = luaL_checkinteger(L, 1);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (names[i].sig == sig) {
      lua_pushstring(L, names[i].name);
      return 1;
    }
  }
  luaL_pushfail(L);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"sha256", l_sha256},
  {"sha256_file", l_sha256_file},
  {"mkdir", l_mkdir},
  {"isdir", l_isdir},
  {"isfile", l_isfile},
  {"exists", l_exists},
  {"listdir", l_listdir},
  {"remove_tree", l_remove_tree},
  {"rename", l_rename},
  {"exchange", l_exchange},
  {"fsync", l_fsync},
  {"chmod", l_chmod},
  {"umask", l_umask},
  {"lock", l_lock},
  {"mkdtemp", l_mkdtemp},
  {"realpath", l_realpath},
  {"isatty", l_isatty},
  {"now", l_now},
  {"time_iso", l_time_iso},
  {"hostname", l_hostname},
  {"getpid", l_getpid},
  {"ncpu", l_ncpu},
  {"spawn", l_spawn},
  {"wait", l_wait},
  {"waitany", l_waitany},
  {"kill", l_kill},
  {"trap_signals", l_trap_signals},
  {"signame", l_signame},
  {NULL, NULL}
};

void sp_lua_open_sys(lua_State *L) {
  luaL_newmetatable(L, DIR_T);
  lua_pushcfunction(L, dir_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  static const luaL_Reg lock_meta[] = {{"__gc", lock_gc}, {"__close", lock_gc}, {NULL, NULL}};
  static const luaL_Reg lock_methods[] = {{"unlock", l_unlock}, {NULL, NULL}};
  sp_lua_new_class(L, LOCK_T, lock_meta, lock_methods);
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  lua_setfield(L, -2, "sys");
}
