/*
** fuzz_scenario.c: the YAML loader and scenario validation must never crash
** on any scenario file; a Lua error (a refused scenario) is the expected
** outcome for most inputs.
**
** One Lua state with the spillover module lives for the whole run, working in
** a temporary folder that holds a small panel (data.csv) and an edge list
** (edges.csv) for scenarios to name.  Each input is written there as s.yaml
** and goes through require("spillover.scenario").load and .check under
** pcall.  check runs with skip_plugins, so no plugin file is ever loaded:
** the target fuzzes our parsing and validation, not arbitrary Lua code.
*/
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lsp.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static char dir[64];
static char yaml_path[96];

static const char *const panel_csv =
  "province,year,region,y,x,z\n"
  "北京,2019,East,1.5,2.0,0.3\n北京,2020,East,1.7,2.1,0.2\n"
  "天津,2019,East,1.1,1.4,0.5\n天津,2020,East,1.2,1.6,0.4\n"
  "四川,2019,West,0.6,0.9,0.8\n四川,2020,West,0.8,1.3,0.7\n"
  "重庆,2019,West,0.7,1.0,0.6\n重庆,2020,West,0.9,1.2,0.9\n";
static const char *const edges_csv = "from,to\n北京,天津\n天津,北京\n四川,重庆\n重庆,四川\n";

static void write_file(const char *name, const void *data, size_t size) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *fp = fopen(path, "wb");
  if (fp == NULL) abort();
  if (size > 0 && fwrite(data, 1, size, fp) != size) abort();
  fclose(fp);
}

/* libFuzzer ends with exit(): leave no temporary folder behind. */
static void remove_dir(void) {
  static const char *const files[] = {"data.csv", "edges.csv", "s.yaml"};
  char path[128];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* s = scenario.load(path); scenario.check(s, {skip_plugins = true}) */
static const char *const run_chunk =
  "local scenario, path = ...\n"
  "local s = scenario.load(path)\n"
  "scenario.check(s, {skip_plugins = true})\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  snprintf(dir, sizeof dir, "/tmp/sp_fuzz_scenario_XXXXXX");
  if (mkdtemp(dir) == NULL) abort();
  atexit(remove_dir);
  snprintf(yaml_path, sizeof yaml_path, "%s/s.yaml", dir);
  write_file("data.csv", panel_csv, strlen(panel_csv));
  write_file("edges.csv", edges_csv, strlen(edges_csv));
  L = luaL_newstate();
  if (L == NULL) abort();
  luaL_openlibs(L);
  /* The C part is linked in; the Lua part comes from the source tree. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_spillover_core);
  lua_setfield(L, -2, "spillover.core");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushstring(L, SP_FUZZ_LUA_DIR "/?.lua;" SP_FUZZ_LUA_DIR "/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushstring(L, "spillover.scenario");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_scenario: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.scenario");
  if (luaL_loadbufferx(L, run_chunk, strlen(run_chunk), "=fuzz", "t") != LUA_OK) abort();
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.run");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  write_file("s.yaml", data, size);
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.run");
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.scenario");
  lua_pushstring(L, yaml_path);
  (void)lua_pcall(L, 2, 0, 0);  /* a refused scenario is a Lua error: fine */
  lua_settop(L, 0);
  /* Keep the heap small between inputs so leaks, not garbage, stand out. */
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
