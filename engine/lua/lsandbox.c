/*
** lsandbox.c: what untrusted code may use, and for how long.
**
** Plugin code (lua/spillover/sandbox.lua) runs only through core.sandbox.call,
** which for the outermost call
**   - installs a count hook that charges HOOK_STEP instructions per event and,
**     once the budget is spent, re-arms itself with count 1 so that every
**     further instruction raises again: a pcall inside the plugin cannot
**     swallow the kill (Redis's script timeout works the same way);
**   - wraps Lua's allocator with one that counts net bytes and refuses growth
**     past the cap.  Lua raises its ordinary memory error and the state stays
**     usable.  The wrapped allocator is also the "a plugin is running" flag:
**     the hook and the writing entry points read it with lua_getallocf, so
**     the flag cannot disagree with the accounting;
**   - gives string values their own method table (the string library without
**     dump), since ("").dump or getmetatable("").__index are reachable from
**     any string whatever the plugin's environment holds.
** Everything is restored before the call returns or raises.  Hooks are per
** coroutine, so core.sandbox.coroutine creates coroutines with the hook set.
**
** Expressions (frame:filter strings, scenario where:) are checked token by
** token and run with private tables of pure functions.
*/
#include <ctype.h>
#include <stdarg.h>
#include <string.h>

#include "lsandbox.h"
#include "lsp.h"

#define SANDBOX_KEY "spillover.sandbox"
#define PLUGIN_STRING_KEY "spillover.sandbox.string"
#define EXPRESSION_KEY "spillover.expression"
/* Instructions between two hook events: small enough that the budget is
   exact to a fraction of a millisecond, large enough to cost nothing. */
#define HOOK_STEP 1000

typedef struct {
  int depth;              /* nesting of core.sandbox.call; > 0 while plugin code runs */
  lua_Integer limit;      /* instructions allowed to the outermost call */
  lua_Integer used;
  int instr_exceeded;
  long long cap;          /* bytes of net growth allowed to the outermost call */
  long long net;
  int mem_exceeded;
  lua_Alloc old_f;        /* the allocator the call wraps, restored afterwards */
  void *old_ud;
} sandbox_state;

static sandbox_state *get_state(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY);
  sandbox_state *st = lua_touserdata(L, -1);
  lua_pop(L, 1);  /* anchored by the registry */
  return st;
}

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  sandbox_state *st = ud;
  /* When ptr is NULL, osize is the type of the new object, not a size. */
  size_t old = ptr != NULL ? osize : 0;
  if (nsize > old) {
    long long room = st->cap - st->net;
    if (room < 0 || (unsigned long long)(nsize - old) > (unsigned long long)room) {
      st->mem_exceeded = 1;
      return NULL;  /* Lua collects, retries once, then raises its memory error */
    }
  }
  void *p = st->old_f(st->old_ud, ptr, osize, nsize);
  if (p != NULL || nsize == 0) st->net += (long long)nsize - (long long)old;
  /* Freeing what existed before the call (arguments, the plugin's earlier
     tables) is no credit for new growth. */
  if (st->net < 0) st->net = 0;
  return p;
}

/* The running plugin call's state, or NULL when no plugin code is running. */
static sandbox_state *running(lua_State *L) {
  void *ud;
  return lua_getallocf(L, &ud) == counting_alloc ? ud : NULL;
}

static void count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  sandbox_state *st = running(L);
  if (st == NULL) return;  /* a plugin's coroutine resumed outside any call: nothing to charge */
  if (!st->instr_exceeded) {
    st->used += HOOK_STEP;
    if (st->used <= st->limit) return;
    st->instr_exceeded = 1;
  }
  lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
  luaL_error(L, "instruction limit exceeded");
}

void sp_lua_swap_string_methods(lua_State *L) {
  luaL_checkstack(L, 3, NULL);
  lua_pushliteral(L, "");
  if (!lua_getmetatable(L, -1)) {  /* no string library: nothing to swap */
    lua_pop(L, 1);
    return;
  }
  lua_getfield(L, -1, "__index");  /* value, "", mt, old */
  lua_pushvalue(L, -4);
  lua_setfield(L, -3, "__index");
  lua_replace(L, -4);  /* old, "", mt */
  lua_pop(L, 2);
}

static int is_spillover_error(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, SP_ERROR_T);
  int yes = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return yes;
}

/* lua_error with a formatted message and no position: luaL_error would add
   the position of sandbox.lua's call, which says nothing to the user. */
static int raise(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

/* Raise the error of a failed outermost call (at the top) naming the plugin.
   Only strings, numbers and spillover's own error objects are turned into
   text: a plugin's table could carry a __tostring that would run unlimited. */
static int plugin_error(lua_State *L, const sandbox_state *st, const char *name, int status) {
  if (st->instr_exceeded)
    return raise(L, "plugin %s: instruction limit exceeded (%I instructions in one call; --trust lifts the limit)",
                 name, st->limit);
  const char *msg = NULL;
  int t = lua_type(L, -1);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) msg = lua_tostring(L, -1);
  else if (t == LUA_TTABLE && is_spillover_error(L, -1)) msg = luaL_tolstring(L, -1, NULL);
  if (st->mem_exceeded && (status == LUA_ERRMEM || (msg != NULL && strcmp(msg, "not enough memory") == 0)))
    return st->cap % (1 << 20) == 0
             ? raise(L, "plugin %s: memory limit exceeded (more than %I MiB in one call; --trust lifts the limit)",
                     name, (lua_Integer)(st->cap >> 20))
             : raise(L, "plugin %s: memory limit exceeded (more than %I bytes in one call; --trust lifts the limit)",
                     name, (lua_Integer)st->cap);
  if (msg == NULL) return raise(L, "plugin %s: raised a %s value as its error", name, lua_typename(L, t));
  size_t n = strlen(name);
  if (strncmp(msg, name, n) == 0 && msg[n] == ':') return raise(L, "plugin %s", msg);
  return raise(L, "plugin %s: %s", name, msg);
}

/* sandbox.call(name, instructions, bytes, f, ...) -> f(...), with f and what
   it calls limited to `instructions` and `bytes` of net allocation.  A call
   made while plugin code runs (a plugin function reached again through the
   host) shares the running call's budget. */
static int l_call(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_Integer limit = luaL_checkinteger(L, 2);
  lua_Integer cap = luaL_checkinteger(L, 3);
  luaL_argcheck(L, limit > 0, 2, "the instruction limit must be positive");
  luaL_argcheck(L, cap > 0, 3, "the memory limit must be positive");
  luaL_checktype(L, 4, LUA_TFUNCTION);
  sandbox_state *st = get_state(L);
  int nargs = lua_gettop(L) - 4;
  if (st->depth > 0) {
    st->depth++;
    int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
    st->depth--;
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L) - 3;
  }
  lua_Hook oldhook = lua_gethook(L);
  int oldmask = lua_gethookmask(L), oldcount = lua_gethookcount(L);
  lua_getfield(L, LUA_REGISTRYINDEX, PLUGIN_STRING_KEY);
  sp_lua_swap_string_methods(L);
  lua_insert(L, 4);  /* 4: the string methods to restore; 5: f */
  st->depth = 1;
  st->limit = limit;
  st->used = 0;
  st->instr_exceeded = 0;
  st->cap = cap;
  st->net = 0;
  st->mem_exceeded = 0;
  /* Collect first: garbage freed during the call would otherwise count as
     room for the plugin. */
  lua_gc(L, LUA_GCCOLLECT);
  st->old_f = lua_getallocf(L, &st->old_ud);
  lua_setallocf(L, counting_alloc, st);
  lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_STEP);
  int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
  lua_sethook(L, oldhook, oldmask, oldcount);
  lua_setallocf(L, st->old_f, st->old_ud);
  st->depth = 0;
  lua_pushvalue(L, 4);
  sp_lua_swap_string_methods(L);
  lua_pop(L, 1);
  if (status != LUA_OK) return plugin_error(L, st, name, status);
  return lua_gettop(L) - 4;
}

/* sandbox.coroutine(f): coroutine.create for plugins, with the count hook
   set in the new coroutine (hooks are per coroutine). */
static int l_coroutine(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_sethook(co, count_hook, LUA_MASKCOUNT, HOOK_STEP);
  return 1;
}

int sp_lua_sandbox_refuse(lua_State *L, const char *what) {
  if (running(L) != NULL)
    return luaL_error(L, "%s: writing files is not allowed in a sandboxed plugin (--trust lifts the sandbox)", what);
  return 0;
}

/* sandbox.refuse(what): sp_lua_sandbox_refuse for writers written in Lua. */
static int l_refuse(lua_State *L) {
  sp_lua_sandbox_refuse(L, luaL_checkstring(L, 1));
  return 0;
}

static int l_active(lua_State *L) {
  lua_pushboolean(L, get_state(L)->depth > 0);
  return 1;
}

/* {=====================================================================
** Expressions
** ====================================================================== */

/* Lua's statement keywords; none of them can appear in an expression. */
static const char *const statement_words[] = {"function", "end", "do", "while", "repeat", "until", "for", "goto",
                                              "return", "local", "if", "then", "else", "elseif", "break", "in", NULL};

const char *sp_lua_expression_problem(lua_State *L, int idx) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  size_t i = 0;
  while (i < len) {
    unsigned char c = (unsigned char)s[i];
    char next = i + 1 < len ? s[i + 1] : '\0';
    if (c == '"' || c == '\'') {  /* a short string: skip it, escapes included */
      for (i++; i < len && (unsigned char)s[i] != c; i++)
        if (s[i] == '\\') i++;
      i++;
    } else if (c == '[' && (next == '[' || next == '=')) {
      return lua_pushliteral(L, "a long bracket '['");
    } else if (c == '-' && next == '-') {
      return lua_pushliteral(L, "a comment '--'");
    } else if (c == ';') {
      return lua_pushliteral(L, "';'");
    } else if (c == ':') {
      return next == ':' ? lua_pushliteral(L, "a label '::'") : lua_pushliteral(L, "a method call with ':'");
    } else if (c == '.' && next == '.') {
      if (i + 2 < len && s[i + 2] == '.') return lua_pushliteral(L, "'...'");
      i += 2;
    } else if (isdigit(c) || (c == '.' && isdigit((unsigned char)next))) {
      /* a number, exponent included: nothing in it can be a keyword */
      for (i++; i < len; i++) {
        unsigned char d = (unsigned char)s[i];
        if (!(isalnum(d) || d == '.' || d == '_' ||
              ((d == '+' || d == '-') && strchr("eEpP", s[i - 1]) != NULL)))
          break;
      }
    } else if (isalpha(c) || c == '_') {
      size_t start = i;
      while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '_')) i++;
      for (int k = 0; statement_words[k]; k++)
        if (strlen(statement_words[k]) == i - start && memcmp(s + start, statement_words[k], i - start) == 0)
          return lua_pushfstring(L, "the keyword '%s'", statement_words[k]);
    } else {
      i++;
    }
  }
  return NULL;
}

/* sandbox.expression_problem(text) -> nil or what in text is not allowed. */
static int l_expression_problem(lua_State *L) {
  luaL_checkstring(L, 1);
  if (sp_lua_expression_problem(L, 1) == NULL) lua_pushnil(L);
  return 1;
}

int sp_lua_expression_global(lua_State *L, const char *name) {
  lua_getfield(L, LUA_REGISTRYINDEX, EXPRESSION_KEY);
  if (lua_getfield(L, -1, name) == LUA_TNIL) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return 1;
}

/* Pure functions only: nothing that allocates without bound (rep, gsub),
   runs long on its own (find and match with backtracking patterns), reads
   or changes state (random), or exposes code (dump). */
static const char *const expression_math[] = {"abs", "ceil", "floor", "exp", "log", "sqrt", "min", "max", "fmod",
                                              "modf", "sin", "cos", "tan", "asin", "acos", "atan", "tointeger",
                                              "type", "ult", "huge", "pi", "maxinteger", "mininteger", NULL};
static const char *const expression_string[] = {"len", "lower", "upper", "sub", "byte", "char", "format",
                                                "reverse", NULL};
static const char *const expression_base[] = {"tostring", "tonumber", "type", NULL};

/* Push a new table with the fields `names` of the table at idx. */
static void copy_fields(lua_State *L, int idx, const char *const *names) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  for (int i = 0; names[i]; i++) {
    if (lua_istable(L, idx)) lua_getfield(L, idx, names[i]);
    else lua_pushnil(L);
    lua_setfield(L, -2, names[i]);
  }
}

/* The expression globals and the plugins' string methods, copied from the
   libraries as loaded (package.loaded), so later changes to the global
   tables do not reach them. */
static void build_tables(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_newtable(L);  /* the expression globals */
  lua_getfield(L, -2, "math");
  copy_fields(L, -1, expression_math);
  lua_setfield(L, -3, "math");
  lua_pop(L, 1);
  lua_getfield(L, -2, "string");
  copy_fields(L, -1, expression_string);
  lua_setfield(L, -3, "string");
  lua_pop(L, 1);
  lua_getfield(L, -2, "_G");
  copy_fields(L, -1, expression_base);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {  /* the base functions go to the top level */
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_settable(L, -6);
  }
  lua_pop(L, 2);
  lua_setfield(L, LUA_REGISTRYINDEX, EXPRESSION_KEY);

  lua_newtable(L);  /* string methods while a plugin runs: the library without dump */
  if (lua_getfield(L, -2, "string") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "dump") == 0) {
        lua_pop(L, 1);
        continue;
      }
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, -5);
    }
  }
  lua_pop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, PLUGIN_STRING_KEY);
  lua_pop(L, 1);
}

/* }===================================================================== */

static const luaL_Reg funcs[] = {
  {"call", l_call},
  {"coroutine", l_coroutine},
  {"refuse", l_refuse},
  {"active", l_active},
  {"expression_problem", l_expression_problem},
  {NULL, NULL}
};

void sp_lua_open_sandbox(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY) == LUA_TNIL) {
    sandbox_state *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    lua_setfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY);
    build_tables(L);
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  lua_setfield(L, -2, "sandbox");
}
