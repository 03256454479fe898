/* alloc_sweep.c: make allocations of the Lua state fail from the Nth on, for N = 1, 2,
   ... until a script exercising the bindings completes, and require every
   failure to be a clean error (STYLE.md 17c, after Lua's testes/api.lua):
   no crash, no abort, and, under AddressSanitizer, no leak of C resources held
   while the error was raised. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lsp.h"

typedef struct {
  long count, fail_at;
  int failed;
} budget;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  budget *b = ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  /* From the Nth growing allocation on, every one fails (Lua retries a
     failed allocation after a full collection, so a single failure would be
     absorbed). */
  if (ptr == NULL || nsize > osize) {
    if (++b->count >= b->fail_at) {
      b->failed = 1;
      return NULL;
    }
  }
  return realloc(ptr, nsize);
}

static const char *script =
  "package.preload['spillover.core'] = ...\n"
  "local sp = require 'spillover.core'\n"
  "local m = sp.matrix{{4, 1}, {1, 3}}\n"
  "local v = m:view(1, 1, 2, 1)\n"
  "local x = (m * m):inv():chol()\n"
  "local q = m:qr()\n"
  "local d = sp.frame and sp.frame{a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, b = {2, 1, 4, 3, 6, 7, 5, 9, 12, 8},\n"
  "  g = {'x', 'y', 'x', 'y', 'x', 'y', 'x', 'y', 'x', 'y'}, t = {1, 1, 2, 2, 3, 3, 4, 4, 5, 5}}\n"
  "if d then\n"
  "  d.c = d.a\n"
  "  local s = d:sort{'b'}\n"
  "  local f = d:filter('a > 2')\n"
  "  local agg = d:aggregate{by = 'g', mean = {'a'}}\n"
  "  local desc = d:describe()\n"
  "  d:panel{entity = 'g', time = 't'}\n"
  "  local des = sp.design(d, 'b ~ a + l(b, 1) | g')\n"
  "  local ab = sp.absorb(des)\n"
  "  ab:demean(des.yX)\n"
  "  local fit = sp.lsfit(des.X, des.y)\n"
  "  local V = sp.vcov(des.X, fit.resid, fit.bread, {type = 'hc1'})\n"
  "  local r = sp.rng(1):normals(3, 2)\n"
  "end\n"
  "local y = sp.yaml and sp.yaml.load('a: [1, 2]\\nb: {c: x}', 'mem')\n"
  "if sp._weights then\n"
  "  local W = sp._weights.links(4, {1, 2, 3, 4, 1}, {2, 1, 4, 3, 3})\n"
  "  W = W:restyle('W')\n"
  "  local l = W:lag({1, 2, 3, 4})\n"
  "  local mo = sp._weights.moran(W, {1, 3, 2, 5})\n"
  "  local e = W:eigenvalues()\n"
  "end\n"
  "local h = sp.sys and sp.sys.sha256('abc')\n"
  "return true\n";

static int run(lua_State *L) {
  luaL_openlibs(L);
  if (luaL_loadbufferx(L, script, strlen(script), "=sweep", "t") != LUA_OK) return lua_error(L);
  lua_pushcfunction(L, luaopen_spillover_core);
  lua_call(L, 1, 1);
  return 1;
}

int main(void) {
  long completed_at = -1, clean_errors = 0, bad = 0;
  for (long n = 1; n < 200000; n++) {
    budget b = {0, n, 0};
    lua_State *L = lua_newstate(counting_alloc, &b);
    if (L == NULL) continue;
    lua_pushcfunction(L, run);
    int st = lua_pcall(L, 0, 1, 0);
    if (st == LUA_OK && !b.failed) {
      completed_at = n;
      lua_close(L);
      break;
    }
    if (st != LUA_OK) {
      if (st == LUA_ERRMEM || b.failed) clean_errors++;
      else {
        /* An error with no failed allocation is a bug of the script itself. */
        const char *msg = lua_tostring(L, -1);
        printf("FAIL allocation %ld: unexpected error: %s\n", n, msg ? msg : "(not a string)");
        bad++;
        lua_close(L);
        break;
      }
    }
    lua_close(L);
  }
  int ok = completed_at > 0 && bad == 0;
  printf("%s the script ran to completion with %ld allocations; %ld injected failures were clean errors\n",
         ok ? "PASS" : "FAIL", completed_at, clean_errors);
  printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
  return ok ? 0 : 1;
}
