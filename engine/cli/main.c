/*
** main.c: the spillover executable.
**
**   spillover SCRIPT.lua [args...]   run a script (it sees `arg` as in lua5.4)
**   spillover -e 'code'              run a chunk
**   spillover run|check|batch|gather ...  scenario commands (lua/spillover/cli.lua)
**   spillover                        interactive prompt (line editing)
**
** As lua.c does, everything, setup included, runs under lua_pcall with a
** message handler, so nothing reaches Lua's panic function.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "embedded_lua.h"
#include "lsp.h"
#include "spillover/mem.h"

static const char *progname = "spillover";

/* Lua's allocator.  Large blocks (matrix storage lives inside userdata) go
   through sp_mem_alloc, which populates fresh blocks in one call and reuses
   freed ones: on our machines faulting fresh pages in one by one would
   otherwise dominate estimation at 1e7 rows. */
#define SP_LUA_BIG ((size_t)1 << 20)

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  /* osize is the block's size when ptr is not NULL. */
  int big = ptr != NULL && osize >= SP_LUA_BIG;
  if (nsize == 0) {
    if (big) sp_mem_free(ptr); else free(ptr);
    return NULL;
  }
  if (nsize < SP_LUA_BIG && !big) return realloc(ptr, nsize);
  void *p = sp_mem_alloc(nsize);
  if (p == NULL) return NULL;  /* Lua keeps ptr valid on failure */
  if (ptr != NULL) {
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    if (big) sp_mem_free(ptr); else free(ptr);
  }
  return p;
}

static void print_usage(FILE *out) {
  fprintf(out,
    "usage: spillover [options] [SCRIPT.lua [args...]]\n"
    "       spillover run FILE.yaml [-o DIR] [--set key.path=value ...] [--trust] [--quiet]\n"
    "                     [--timeout SECONDS] [-j N | --part K/N | --parts N]\n"
    "       spillover check FILE.yaml [--set key.path=value ...] [--trust]\n"
    "       spillover batch DIR|FILES... [-j N] [-o OUTROOT] [--set key.path=value ...] [--trust]\n"
    "                     [--timeout SECONDS] [--quiet] [--force]\n"
    "       spillover batch DIR|FILES... --slurm [--array-size N] [--partition P] [--time T]\n"
    "                     [--dry-run] [--split N] [-o OUTROOT] [--set ...] [--trust]\n"
    "                     [--timeout SECONDS]\n"
    "       spillover gather OUTROOT [--resubmit [--array-size N] [--partition P] [--time T]\n"
    "                     [--dry-run] [--trust] [--timeout SECONDS]]\n"
    "options:\n"
    "  -e CODE      run CODE\n"
    "  -            run standard input\n"
    "  --version    print the version\n"
    "  --help       print this help\n"
    "scenario options:\n"
    "  -o DIR       run: the output folder (default out/<name>); batch: the folder that gets\n"
    "               one output folder per scenario and batch-logs/ (default out)\n"
    "  --set K=V    override a value of the scenario (read as a YAML scalar), e.g.\n"
    "               --set experiments.west.draws=200; may be repeated\n"
    "  --trust      run plugins without the sandbox and the instruction limit\n"
    "  --quiet, -q  run: no progress bar and no closing line; batch: list only the scenarios\n"
    "               that did not end ok\n"
    "  -j N         batch: run N scenarios at a time (default 1); run: compute the sweeps'\n"
    "               points and the specification curve's cells in N processes\n"
    "  --part K/N   run: compute only part K of N of them, into <output>.parts/\n"
    "  --parts N    run: take them from the N part files there, and write the output\n"
    "  --split N    batch: run scenarios with sweeps or a specification curve as N parts\n"
    "               and an assembly (as array tasks with --slurm)\n"
    "  --force      batch: run scenarios whose output is complete and whose inputs, --set values\n"
    "               and spillover version are unchanged (skipped otherwise)\n"
    "  --slurm      batch: write a Slurm job array (OUTROOT/batch-logs/tasks.tsv and\n"
    "               tasks.sbatch) and submit it with sbatch; --dry-run only writes them\n"
    "  --array-size N  at most N array tasks (default: one per run, up to 1000); runs are\n"
    "               packed into them in order\n"
    "  --partition P, --time T  sbatch's --partition and --time\n"
    "  --resubmit   gather: write and submit an array of the runs that are missing, failed\n"
    "               or stale\n"
    "  --timeout S  stop a scenario that runs longer than S seconds; its output folder is\n"
    "               not written (exit status 124 for run)\n"
    "With no script and a terminal on standard input, an interactive prompt starts.\n");
}

/* Message handler: keep spillover.error objects as they are (their text is
   the message), add a traceback to everything else. */
static int msghandler(lua_State *L) {
  if (luaL_testudata(L, 1, SP_ERROR_T) == NULL && lua_type(L, 1) == LUA_TTABLE &&
      lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, SP_ERROR_T);
    int is_sp = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (is_sp) {
      luaL_tolstring(L, 1, NULL);
      return 1;
    }
  }
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s: %s\n", progname, msg ? msg : "(error without message)");
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status;
}

static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int status = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  return status;
}

/* package.searchers entry for the modules compiled into the executable. */
static int embedded_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  for (const sp_embedded_module *m = sp_embedded_modules; m->name != NULL; m++) {
    if (strcmp(m->name, name) == 0) {
      if (luaL_loadbufferx(L, m->source, m->size, lua_pushfstring(L, "@%s", m->chunk), "t") != LUA_OK)
        return lua_error(L);
      lua_pushstring(L, m->chunk);
      return 2;
    }
  }
  lua_pushfstring(L, "no embedded module '%s'", name);
  return 1;
}

/* Preload the C part and put the embedded searcher right after the preload
   searcher.  When SPILLOVER_LUA_DIR is set (development), modules are read
   from that directory first and the embedded copies are the fallback. */
static void setup_modules(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_spillover_core);
  lua_setfield(L, -2, "spillover.core");
  lua_pop(L, 1);

  lua_getglobal(L, "package");
  const char *dir = getenv("SPILLOVER_LUA_DIR");
  int dev = dir != NULL && dir[0] != '\0';
  lua_getfield(L, -1, "searchers");
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  if (dev) {
    /* Development: the source tree first, the embedded copy as a fallback. */
    lua_pushcfunction(L, embedded_searcher);
    lua_rawseti(L, -2, n + 1);
  } else {
    for (lua_Integer i = n; i >= 2; i--) {
      lua_rawgeti(L, -1, i);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, embedded_searcher);
    lua_rawseti(L, -2, 2);
  }
  lua_pop(L, 1);
  if (dev) {
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* arg table as lua.c builds it: arg[0] = script, negative indices before. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script - 1, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int run_script(lua_State *L, char **argv, int argc, int script) {
  const char *fname = argv[script];
  if (strcmp(fname, "-") == 0) fname = NULL;
  create_arg_table(L, argv, argc, script);
  int status = luaL_loadfilex(L, fname, "t");
  if (status == LUA_OK) {
    int nargs = argc - script - 1;
    luaL_checkstack(L, nargs, "too many arguments to script");
    for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
    status = docall(L, nargs, 0);
  }
  return report(L, status);
}

static int run_string(lua_State *L, const char *code) {
  int status = luaL_loadbufferx(L, code, strlen(code), "=(command line)", "t");
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

/* Scenario commands are Lua: require("spillover.cli").main(cmd, ...). */
static int run_command(lua_State *L, char **argv, int argc) {
  create_arg_table(L, argv, argc, 0);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "spillover.cli");
  int status = docall(L, 1, 1);
  if (status == LUA_OK) {
    lua_getfield(L, -1, "main");
    lua_remove(L, -2);
    luaL_checkstack(L, argc, "too many arguments");
    for (int i = 1; i < argc; i++) lua_pushstring(L, argv[i]);
    status = docall(L, argc - 1, 1);
    if (status == LUA_OK) {
      int code = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
      return code;
    }
  }
  report(L, status);
  return 1;
}

static void repl(lua_State *L) {
  printf("spillover %s (Lua 5.4)  sp = require 'spillover' is loaded; Ctrl-D exits\n", SPILLOVER_VERSION);
  char *line;
  while ((line = readline("> ")) != NULL) {
    if (line[0] != '\0') add_history(line);
    /* Try it as an expression first, as lua.c does. */
    const char *ret = lua_pushfstring(L, "return %s", line);
    int status = luaL_loadbufferx(L, ret, strlen(ret), "=stdin", "t");
    lua_remove(L, -2);
    if (status != LUA_OK) {
      lua_pop(L, 1);
      status = luaL_loadbufferx(L, line, strlen(line), "=stdin", "t");
    }
    free(line);
    int top = lua_gettop(L) - 1;
    if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK) {
      int n = lua_gettop(L) - top;
      if (n > 0) {
        lua_getglobal(L, "print");
        lua_insert(L, top + 1);
        if (lua_pcall(L, n, 0, 0) != LUA_OK) report(L, 1);
      }
    } else {
      report(L, status);
    }
    lua_settop(L, top);
  }
  printf("\n");
}

/* Everything runs in here, under lua_pcall (see main). */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  luaL_openlibs(L);
  setup_modules(L);
  int *result = (int *)lua_touserdata(L, 3);
  *result = 0;

  if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)) {
    printf("spillover %s (%s)\n", SPILLOVER_VERSION, LUA_RELEASE);
    return 0;
  }
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    print_usage(stdout);
    return 0;
  }
  if (argc >= 2 && (strcmp(argv[1], "run") == 0 || strcmp(argv[1], "check") == 0 ||
                    strcmp(argv[1], "batch") == 0 || strcmp(argv[1], "gather") == 0)) {
    *result = run_command(L, argv, argc);
    return 0;
  }
  /* sp is a global convenience in -e and the prompt; scripts require it. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "spillover");
  if (report(L, docall(L, 1, 1)) != LUA_OK) { *result = 1; return 0; }
  lua_setglobal(L, "sp");

  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
    if (strcmp(argv[i], "-e") == 0) {
      if (i + 1 >= argc) { fprintf(stderr, "%s: '-e' needs an argument\n", progname); *result = 1; return 0; }
      if (run_string(L, argv[++i]) != LUA_OK) { *result = 1; return 0; }
    } else if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else {
      fprintf(stderr, "%s: unknown option '%s'\n", progname, argv[i]);
      print_usage(stderr);
      *result = 1;
      return 0;
    }
  }
  int ran_code = i > 1;
  if (i < argc) {
    *result = run_script(L, argv, argc, i) != LUA_OK;
  } else if (!ran_code) {
    if (isatty(STDIN_FILENO)) {
      create_arg_table(L, argv, argc, 0);
      repl(L);
    } else {
      char *dash[] = {argv[0], (char *)"-"};
      *result = run_script(L, dash, 2, 1) != LUA_OK;
    }
  }
  return 0;
}

/* Reached only if something escapes every protected call. */
static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "%s: unprotected error: %s\n", progname, msg ? msg : "(not a string)");
  return 0;
}

int main(int argc, char **argv) {
  lua_State *L = lua_newstate(l_alloc, NULL);
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", progname);
    return EXIT_FAILURE;
  }
  lua_atpanic(L, panic);
  lua_setwarnf(L, NULL, NULL);
  int result = 1;
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushlightuserdata(L, &result);
  int status = lua_pcall(L, 3, 0, 0);
  if (status != LUA_OK) {
    report(L, status);
    result = 1;
  }
  lua_close(L);
  /* The scenario commands choose their status (124: timed out, 128 + N:
     stopped by signal N, as shells report it); everything else is 0 or 1. */
  return result;
}
