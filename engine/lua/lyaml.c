/*
** lyaml.c: sp.yaml, YAML loading with source positions, and a block-style
** dumper (libyaml's event API; YAML never reaches the C core, DESIGN.md).
**
**   sp.yaml.load(text [, name])  -> value, positions
**   sp.yaml.load_file(path)      -> value, positions   (nil, msg, errno if unreadable)
**   sp.yaml.dump(value)          -> text
**   sp.yaml.null, sp.yaml.is_seq(t), sp.yaml.seq(t)
**
** Ownership: the libyaml parser and its current event live in a
** spillover.yaml_parser userdata whose __gc deletes both (idempotently), and
** the input string is pinned as its uservalue, so a Lua error at any point of
** the build (out of memory, a bad scalar) leaks nothing and never lets libyaml
** read a collected string (STYLE.md, lyaml's caveat).  The tree is built on
** the Lua stack: each open container occupies three slots (table, path,
** pending key); per-level C state sits in a fixed array inside the userdata,
** which is what bounds the nesting depth.
**
** Typing follows the YAML 1.2 core schema for plain scalars only; quoted and
** block scalars are strings.  Anchors and aliases are refused (libcyaml's
** NO_ALIAS): scenarios gain nothing from them and they make positions and
** error messages ambiguous.
*/
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "lsp.h"
#include "lsys.h"
#include "spillover/file.h"

#define PARSER_T "spillover.yaml_parser"
#define NULL_T "spillover.yaml.null"
#define SEQ_T "spillover.yaml.seq"
#define BUF_T "spillover.yaml_buffer"
#define FILE_T "spillover.yaml_file"
#define NULL_KEY "spillover.yaml.null.value" /* registry key of the sentinel */

#define MAX_DEPTH 256

/* Fixed stack slots of l_load's build phase. */
enum { S_TEXT = 1, S_NAME, S_PARSER, S_POS, S_NULL, S_SEQMT, S_ROOT, S_BASE = S_ROOT };

enum { K_MAP = 1, K_SEQ = 2 };

typedef struct {
  int kind;
  lua_Integer n;  /* items so far (sequences) */
} level;

typedef struct {
  yaml_parser_t parser;
  yaml_event_t event;
  int parser_live, event_live;
  int depth;
  level lv[MAX_DEPTH];
} yparser;

/* ---- the parser box ------------------------------------------------------- */

static void parser_close(yparser *p) {
  if (p->event_live) yaml_event_delete(&p->event);
  p->event_live = 0;
  if (p->parser_live) yaml_parser_delete(&p->parser);
  p->parser_live = 0;
}

static int parser_gc(lua_State *L) {
  parser_close(luaL_checkudata(L, 1, PARSER_T));
  return 0;
}

/* ---- scalar resolution (YAML 1.2 core schema) ------------------------------ */

enum { P_NULL, P_BOOL, P_INT, P_FLOAT, P_STR };

static int eq(const char *s, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int all_of(const char *s, size_t n, const char *set) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\0' || strchr(set, s[i]) == NULL) return 0;
  return 1;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_float_text(const char *s, size_t n) {
  size_t i = 0, digits = 0;
  if (i < n && (s[i] == '-' || s[i] == '+')) i++;
  while (i < n && is_digit(s[i])) i++, digits++;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && is_digit(s[i])) i++, digits++;
  }
  if (digits == 0) return 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    size_t e = 0;
    i++;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    while (i < n && is_digit(s[i])) i++, e++;
    if (e == 0) return 0;
  }
  return i == n;
}

/* The core-schema type a plain scalar resolves to. */
static int plain_kind(const char *s, size_t n) {
  if (n == 0 || eq(s, n, "~") || eq(s, n, "null") || eq(s, n, "Null") || eq(s, n, "NULL"))
    return P_NULL;
  if (eq(s, n, "true") || eq(s, n, "True") || eq(s, n, "TRUE") || eq(s, n, "false") ||
      eq(s, n, "False") || eq(s, n, "FALSE"))
    return P_BOOL;
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (all_of(s + i, n - i, "0123456789")) return P_INT;
  if (n > 2 && s[0] == '0' && s[1] == 'o' && all_of(s + 2, n - 2, "01234567")) return P_INT;
  if (n > 2 && s[0] == '0' && s[1] == 'x' && all_of(s + 2, n - 2, "0123456789abcdefABCDEF"))
    return P_INT;
  if (is_float_text(s, n)) return P_FLOAT;
  if (eq(s + i, n - i, ".inf") || eq(s + i, n - i, ".Inf") || eq(s + i, n - i, ".INF"))
    return P_FLOAT;
  if (eq(s, n, ".nan") || eq(s, n, ".NaN") || eq(s, n, ".NAN")) return P_FLOAT;
  return P_STR;
}

/* Push the value of a plain scalar (s is NUL-terminated by libyaml); returns
   its kind.  Integers too large for lua_Integer become floats. */
static int push_plain(lua_State *L, const char *s, size_t n) {
  int k = plain_kind(s, n);
  switch (k) {
  case P_NULL: lua_pushvalue(L, S_NULL); break;
  case P_BOOL: lua_pushboolean(L, s[0] == 't' || s[0] == 'T'); break;
  case P_INT: {
    int base = 10;
    const char *d = s;
    if (n > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
      base = s[1] == 'o' ? 8 : 16;
      d = s + 2;
    }
    errno = 0;
    if (base == 10) {
      long long v = strtoll(d, NULL, 10);
      if (errno == ERANGE) lua_pushnumber(L, strtod(s, NULL));
      else lua_pushinteger(L, (lua_Integer)v);
    } else {
      unsigned long long v = strtoull(d, NULL, base);
      if (errno == ERANGE || v > (unsigned long long)LUA_MAXINTEGER) lua_pushnumber(L, (lua_Number)v);
      else lua_pushinteger(L, (lua_Integer)v);
    }
    break;
  }
  case P_FLOAT:
    if (strchr(s, 'n') || strchr(s, 'N')) {
      if (s[1] == 'n' || s[1] == 'N') lua_pushnumber(L, (lua_Number)NAN);
      else lua_pushnumber(L, s[0] == '-' ? -(lua_Number)HUGE_VAL : (lua_Number)HUGE_VAL);
    } else {
      lua_pushnumber(L, strtod(s, NULL));
    }
    break;
  default: lua_pushlstring(L, s, n); break;
  }
  return k;
}

/* ---- building the tree ------------------------------------------------------ */

static int fail_at(sp_error *err, const char *name, yaml_mark_t m, const char *fmt, const char *arg) {
  sp_error_set(err, SP_EPARSE, fmt, arg);
  sp_error_at(err, name, (long)m.line + 1, (long)m.column + 1);
  return SP_EPARSE;
}

static void set_position(lua_State *L, int path_idx, const char *suffix, yaml_mark_t m) {
  lua_pushvalue(L, path_idx);
  if (suffix) {
    lua_pushstring(L, suffix);
    lua_concat(L, 2);
  }
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)m.line + 1);
  lua_setfield(L, -2, "line");
  lua_pushinteger(L, (lua_Integer)m.column + 1);
  lua_setfield(L, -2, "col");
  lua_rawset(L, S_POS);
}

static int slot(int depth, int which) { return S_BASE + 3 * (depth - 1) + which; }
#define SL_TABLE 1
#define SL_PATH 2
#define SL_KEY 3

/* The next node of the current container: a key (returns 1, the key string
   has been stored as pending) or a value (returns 0 and pushes its path).
   Mapping keys must be scalars. */
static int next_node(lua_State *L, yparser *p, const char *name, sp_error *err, int *is_key) {
  yaml_event_t *ev = &p->event;
  *is_key = 0;
  luaL_checkstack(L, 8, "YAML nesting");
  if (p->depth == 0) {
    lua_pushliteral(L, "");
    return SP_OK;
  }
  level *top = &p->lv[p->depth - 1];
  int tbl = slot(p->depth, SL_TABLE), path = slot(p->depth, SL_PATH), key = slot(p->depth, SL_KEY);
  if (top->kind == K_SEQ) {
    top->n++;
    lua_pushfstring(L, "%s[%I]", lua_tostring(L, path), (LUAI_UACINT)top->n);
    return SP_OK;
  }
  if (lua_isnil(L, key)) {
    if (ev->type != YAML_SCALAR_EVENT)
      return fail_at(err, name, ev->start_mark,
                     "mapping keys must be plain or quoted strings%s, not a sequence or mapping", "");
    const char *k = (const char *)ev->data.scalar.value;
    size_t kn = ev->data.scalar.length;
    lua_pushlstring(L, k, kn);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, tbl) != LUA_TNIL) {
      /* Name both lines: the first occurrence's key position is recorded. */
      lua_pop(L, 1);
      const char *parent = lua_tostring(L, path);
      lua_pushfstring(L, "%s%s%s#key", parent, parent[0] ? "." : "", k);
      lua_rawget(L, S_POS);
      long first = 0;
      if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "line");
        first = (long)lua_tointeger(L, -1);
        lua_pop(L, 1);
      }
      lua_pop(L, 2);
      sp_error_set(err, SP_EPARSE, "duplicate key '%s' (first defined at line %ld, again at line %ld)",
                   k, first, (long)ev->start_mark.line + 1);
      sp_error_at(err, name, (long)ev->start_mark.line + 1, (long)ev->start_mark.column + 1);
      sp_error_var(err, k);
      return SP_EPARSE;
    }
    lua_pop(L, 1);
    lua_replace(L, key);
    /* Record the key's own position under path#key. */
    const char *parent = lua_tostring(L, path);
    lua_pushfstring(L, "%s%s%s", parent, parent[0] ? "." : "", k);
    set_position(L, lua_gettop(L), "#key", ev->start_mark);
    lua_pop(L, 1);
    *is_key = 1;
    return SP_OK;
  }
  const char *parent = lua_tostring(L, path);
  lua_pushfstring(L, "%s%s%s", parent, parent[0] ? "." : "", lua_tostring(L, key));
  return SP_OK;
}

/* Store the value on top of the stack into the current container (or as the
   root) and pop it. */
static void attach(lua_State *L, yparser *p) {
  if (p->depth == 0) {
    lua_replace(L, S_ROOT);
    return;
  }
  level *top = &p->lv[p->depth - 1];
  int tbl = slot(p->depth, SL_TABLE), key = slot(p->depth, SL_KEY);
  if (top->kind == K_SEQ) {
    lua_rawseti(L, tbl, top->n);
  } else {
    lua_pushvalue(L, key);
    lua_insert(L, -2);
    lua_rawset(L, tbl);
    lua_pushnil(L);
    lua_replace(L, key);
  }
}

static const char *TAG_PREFIX = "tag:yaml.org,2002:";

/* Push a scalar event's value, honouring explicit core tags (!!str etc.). */
static int push_scalar(lua_State *L, yaml_event_t *ev, const char *name, sp_error *err) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  if (tag == NULL || strcmp(tag, "!") == 0) {
    if (plain && tag == NULL) push_plain(L, s, n);
    else lua_pushlstring(L, s, n);
    return SP_OK;
  }
  size_t pl = strlen(TAG_PREFIX);
  if (strncmp(tag, TAG_PREFIX, pl) != 0)
    return fail_at(err, name, ev->start_mark,
                   "unsupported tag '%s' (expected none, or one of !!str !!int !!float !!bool !!null)", tag);
  const char *t = tag + pl;
  if (strcmp(t, "str") == 0) {
    lua_pushlstring(L, s, n);
    return SP_OK;
  }
  int want = strcmp(t, "null") == 0 ? P_NULL : strcmp(t, "bool") == 0 ? P_BOOL
           : strcmp(t, "int") == 0 ? P_INT : strcmp(t, "float") == 0 ? P_FLOAT : -1;
  if (want < 0)
    return fail_at(err, name, ev->start_mark,
                   "unsupported tag '!!%s' (expected !!str, !!int, !!float, !!bool or !!null)", t);
  int got = plain_kind(s, n);
  if (got == want || (want == P_FLOAT && got == P_INT)) {
    push_plain(L, s, n);
    if (want == P_FLOAT && lua_isinteger(L, -1)) {
      lua_Number v = (lua_Number)lua_tointeger(L, -1);
      lua_pop(L, 1);
      lua_pushnumber(L, v);
    }
    return SP_OK;
  }
  sp_error_set(err, SP_EPARSE, "'%s' is not a valid !!%s", s, t);
  sp_error_at(err, name, (long)ev->start_mark.line + 1, (long)ev->start_mark.column + 1);
  return SP_EPARSE;
}

/* Line and column (1-based, in bytes) of a byte offset, for reader errors
   which libyaml reports by offset only. */
static void offset_position(const char *text, size_t len, size_t off, long *line, long *col) {
  long ln = 1;
  size_t start = 0;
  if (off > len) off = len;
  for (size_t i = 0; i < off; i++)
    if (text[i] == '\n') ln++, start = i + 1;
  *line = ln;
  *col = (long)(off - start) + 1;
}

static int syntax_error(yparser *p, const char *name, const char *text, size_t len, sp_error *err) {
  yaml_parser_t *ps = &p->parser;
  const char *problem = ps->problem ? ps->problem : "malformed YAML";
  switch (ps->error) {
  case YAML_MEMORY_ERROR:
    return sp_error_set(err, SP_ENOMEM, "out of memory while parsing YAML");
  case YAML_READER_ERROR: {
    long line, col;
    offset_position(text, len, ps->problem_offset, &line, &col);
    if (ps->problem_value != -1)
      sp_error_set(err, SP_EPARSE, "%s (byte 0x%02X at offset %zu; YAML text must be UTF-8)", problem,
                   (unsigned)ps->problem_value & 0xFFu, ps->problem_offset);
    else
      sp_error_set(err, SP_EPARSE, "%s (at offset %zu)", problem, ps->problem_offset);
    sp_error_at(err, name, line, col);
    return SP_EPARSE;
  }
  default:
    if (ps->context)
      sp_error_set(err, SP_EPARSE, "%s (%s at line %zu, column %zu)", problem, ps->context,
                   ps->context_mark.line + 1, ps->context_mark.column + 1);
    else
      sp_error_set(err, SP_EPARSE, "%s", problem);
    sp_error_at(err, name, (long)ps->problem_mark.line + 1, (long)ps->problem_mark.column + 1);
    return SP_EPARSE;
  }
}

/* Run the event loop; the root ends up in S_ROOT.  Lua errors may escape
   (memory); everything else comes back as a status with err filled. */
static int build(lua_State *L, yparser *p, const char *name, const char *text, size_t len, sp_error *err) {
  int ndocs = 0;
  for (;;) {
    if (!yaml_parser_parse(&p->parser, &p->event)) return syntax_error(p, name, text, len, err);
    p->event_live = 1;
    yaml_event_t *ev = &p->event;
    int st = SP_OK, is_key = 0, done = 0;
    const char *anchor = ev->type == YAML_SCALAR_EVENT ? (const char *)ev->data.scalar.anchor
                       : ev->type == YAML_SEQUENCE_START_EVENT ? (const char *)ev->data.sequence_start.anchor
                       : ev->type == YAML_MAPPING_START_EVENT ? (const char *)ev->data.mapping_start.anchor
                       : NULL;
    if (anchor != NULL)
      st = fail_at(err, name, ev->start_mark, "anchors are not supported (&%s): write the value out in full",
                   anchor);
    else switch (ev->type) {
    case YAML_STREAM_END_EVENT: done = 1; break;
    case YAML_DOCUMENT_START_EVENT:
      if (++ndocs > 1)
        st = fail_at(err, name, ev->start_mark,
                     "multiple documents in one file are not supported%s (expected a single document)", "");
      break;
    case YAML_ALIAS_EVENT:
      st = fail_at(err, name, ev->start_mark,
                   "aliases are not supported (*%s): write the value out in full", (const char *)ev->data.alias.anchor);
      break;
    case YAML_SCALAR_EVENT:
      st = next_node(L, p, name, err, &is_key);
      if (st != SP_OK || is_key) break;
      set_position(L, lua_gettop(L), NULL, ev->start_mark);
      lua_pop(L, 1);
      st = push_scalar(L, ev, name, err);
      if (st == SP_OK) attach(L, p);
      break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
      int seq = ev->type == YAML_SEQUENCE_START_EVENT;
      const char *tag = (const char *)(seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag);
      if (tag && strcmp(tag, seq ? "tag:yaml.org,2002:seq" : "tag:yaml.org,2002:map") != 0) {
        st = fail_at(err, name, ev->start_mark, "unsupported tag '%s' on a collection", tag);
        break;
      }
      if (p->depth >= MAX_DEPTH) {
        st = fail_at(err, name, ev->start_mark, "nesting deeper than %s levels", "256");
        break;
      }
      st = next_node(L, p, name, err, &is_key);
      if (st != SP_OK) break;
      set_position(L, lua_gettop(L), NULL, ev->start_mark);
      lua_newtable(L);
      if (seq) {
        lua_pushvalue(L, S_SEQMT);
        lua_setmetatable(L, -2);
      }
      lua_insert(L, -2); /* table below its path */
      lua_pushnil(L);    /* pending key */
      p->lv[p->depth].kind = seq ? K_SEQ : K_MAP;
      p->lv[p->depth].n = 0;
      p->depth++;
      break;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      lua_settop(L, slot(p->depth, SL_TABLE));
      p->depth--;
      attach(L, p);
      break;
    default: break;
    }
    yaml_event_delete(&p->event);
    p->event_live = 0;
    if (st != SP_OK) return st;
    if (done) return SP_OK;
  }
}

/* load(text, name) with text at 1 and name at 2. */
static int load_common(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, S_TEXT, &len);
  const char *name = luaL_optstring(L, S_NAME, "<yaml>");
  lua_settop(L, S_NAME);
  if (lua_isnil(L, S_NAME)) {
    lua_pushstring(L, name);
    lua_replace(L, S_NAME);
  }

  /* Owner first: a closed box with __gc, then the parser, then the pin. */
  yparser *p = lua_newuserdatauv(L, sizeof *p, 1);
  p->parser_live = p->event_live = 0;
  p->depth = 0;
  luaL_setmetatable(L, PARSER_T);
  lua_pushvalue(L, S_TEXT);
  lua_setiuservalue(L, S_PARSER, 1);
  if (!yaml_parser_initialize(&p->parser)) return luaL_error(L, "out of memory creating a YAML parser");
  p->parser_live = 1;
  /* A leading byte-order mark (Windows editors write one) is not content.
     libyaml, told the encoding, would count it as a column of the first line
     and then misread the indentation of the next. */
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
    text += 3;
    len -= 3;
  }
  yaml_parser_set_input_string(&p->parser, (const unsigned char *)text, len);
  yaml_parser_set_encoding(&p->parser, YAML_UTF8_ENCODING);

  lua_newtable(L);                        /* S_POS */
  lua_getfield(L, LUA_REGISTRYINDEX, NULL_KEY); /* S_NULL */
  luaL_getmetatable(L, SEQ_T);            /* S_SEQMT */
  lua_pushnil(L);                         /* S_ROOT */

  sp_error err;
  sp_error_clear(&err);
  int st = build(L, p, name, text, len, &err);
  parser_close(p);
  if (st != SP_OK) return sp_lua_error(L, &err);
  if (lua_isnil(L, S_ROOT)) {
    /* An empty stream: a null document positioned at its start. */
    lua_pushvalue(L, S_NULL);
    lua_replace(L, S_ROOT);
    lua_pushliteral(L, "");
    yaml_mark_t m = {0, 0, 0};
    set_position(L, lua_gettop(L), NULL, m);
    lua_pop(L, 1);
  }
  lua_pushvalue(L, S_ROOT);
  lua_pushvalue(L, S_POS);
  return 2;
}

static int l_load(lua_State *L) {
  luaL_checkstring(L, 1);
  luaL_optstring(L, 2, NULL);
  return load_common(L);
}

/* A FILE* box, so a memory error while reading does not leak the stream. */
typedef struct {
  FILE *f;
} yfile;

static int file_gc(lua_State *L) {
  yfile *b = luaL_checkudata(L, 1, FILE_T);
  if (b->f) fclose(b->f);
  b->f = NULL;
  return 0;
}

static int l_load_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  yfile *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->f = NULL;
  luaL_setmetatable(L, FILE_T);
  /* Regular files only: a FIFO would block and /dev/zero never end. */
  int fd = sp_file_open(path, "a YAML file", NULL, NULL);
  if (fd >= 0 && (b->f = fdopen(fd, "rb")) == NULL) {
    int e = errno;
    close(fd);
    errno = e;
    fd = -1;
  }
  if (fd < 0) {
    /* sp_file_open's EINVAL means a FIFO, device or socket (open(2) never
       gives it for a plain read-only open). */
    int e = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, e == EINVAL ? "not a regular file (a FIFO, device or socket): "
                                                     "expected a YAML file" : strerror(e));
    lua_pushinteger(L, e);
    return 3;
  }
  luaL_Buffer buf;
  luaL_buffinit(L, &buf);
  for (;;) {
    char *dst = luaL_prepbuffer(&buf);
    size_t n = fread(dst, 1, LUAL_BUFFERSIZE, b->f);
    luaL_addsize(&buf, n);
    if (n < LUAL_BUFFERSIZE) break;
  }
  int e = ferror(b->f) ? errno : 0;
  luaL_pushresult(&buf);
  fclose(b->f);
  b->f = NULL;
  if (e != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(e));
    lua_pushinteger(L, e);
    return 3;
  }
  /* load_common expects text at 1 and the name at 2. */
  lua_replace(L, 2); /* text over the box */
  lua_insert(L, 1);  /* text, path */
  return load_common(L);
}

/* ---- dump ------------------------------------------------------------------- */

/* A growable byte buffer owned by a userdata (luaL_Buffer cannot be used: the
   walk pushes keys and values between appends). */
typedef struct {
  char *data;
  size_t len, cap;
} ybuf;

static int buf_gc(lua_State *L) {
  ybuf *b = luaL_checkudata(L, 1, BUF_T);
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  return 0;
}

static void put(lua_State *L, ybuf *b, const char *s, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) luaL_error(L, "yaml.dump: out of memory"); /* b still owns the old block */
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static void puts_(lua_State *L, ybuf *b, const char *s) { put(L, b, s, strlen(s)); }

static void indent(lua_State *L, ybuf *b, int n) {
  for (int i = 0; i < n; i++) put(L, b, " ", 1);
}

/* Length of a valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t k;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) k = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) k = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) k = 4, min = 0x10000;
  else return 0;
  if (k > n) return 0;
  unsigned cp = c & (0xFFu >> (k + 1));
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return k;
}

/* Can s be written as a plain scalar that loads back as the same string? */
static int plain_safe(const char *s, size_t n) {
  if (n == 0 || plain_kind(s, n) != P_STR) return 0;
  if (strchr("-?:,[]{}#&*!|>'\"%@` \t.", s[0])) return 0;
  if (s[n - 1] == ' ' || s[n - 1] == ':') return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7F || c >= 0x80) {
      if (c < 0x80) return 0;
      /* Unicode line breaks (NEL, LS, PS) and BOM must be escaped. */
      if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85) return 0;
      if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
          ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9))
        return 0;
      if (c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBB && (unsigned char)s[i + 2] == 0xBF)
        return 0;
    }
    if (c == ':' && i + 1 < n && s[i + 1] == ' ') return 0;
    if (c == '#' && i > 0 && s[i - 1] == ' ') return 0;
  }
  return 1;
}

/* Write a string scalar (plain when safe, else double-quoted); the string
   must be valid UTF-8 since YAML text is. */
static void put_string(lua_State *L, ybuf *b, const char *s, size_t n, int path_idx) {
  for (size_t i = 0; i < n;) {
    size_t k = utf8_len((const unsigned char *)s + i, n - i);
    if (k == 0)
      luaL_error(L, "yaml.dump: string at '%s' is not valid UTF-8 (byte %d); YAML text must be UTF-8",
                 lua_tostring(L, path_idx), (int)(i + 1));
    i += k;
  }
  if (plain_safe(s, n)) {
    put(L, b, s, n);
    return;
  }
  put(L, b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"') puts_(L, b, "\\\"");
    else if (c == '\\') puts_(L, b, "\\\\");
    else if (c == '\n') puts_(L, b, "\\n");
    else if (c == '\t') puts_(L, b, "\\t");
    else if (c == '\r') puts_(L, b, "\\r");
    else if (c < 0x20 || c == 0x7F) {
      snprintf(esc, sizeof esc, "\\x%02X", c);
      puts_(L, b, esc);
    } else if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85) {
      puts_(L, b, "\\N");
      i += 1;
    } else if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
               ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) {
      puts_(L, b, (unsigned char)s[i + 2] == 0xA8 ? "\\L" : "\\P");
      i += 2;
    } else if (c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBB && (unsigned char)s[i + 2] == 0xBF) {
      puts_(L, b, "\\uFEFF");
      i += 2;
    } else {
      put(L, b, (const char *)&c, 1);
    }
  }
  put(L, b, "\"", 1);
}

static void put_number(lua_State *L, ybuf *b, int idx) {
  char num[64];
  if (lua_isinteger(L, idx)) {
    snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
  } else {
    double v = (double)lua_tonumber(L, idx);
    if (isnan(v)) strcpy(num, ".nan");
    else if (isinf(v)) strcpy(num, v > 0 ? ".inf" : "-.inf");
    else {
      /* Shortest of %.15g..%.17g that reads back exactly. */
      for (int prec = 15; prec <= 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec, v);
        if (strtod(num, NULL) == v) break;
      }
      /* Keep it a float on reload: 3 would come back an integer. */
      if (strspn(num, "-0123456789") == strlen(num)) strcat(num, ".0");
    }
  }
  puts_(L, b, num);
}

enum { D_SCALAR, D_MAP, D_SEQ, D_EMPTY_MAP, D_EMPTY_SEQ };

/* Classify the value at idx; tables must be all-string-keyed or 1..n. */
static int classify(lua_State *L, int idx, int path_idx, lua_Integer *len) {
  if (!lua_istable(L, idx)) return D_SCALAR;
  int marked = 0;
  if (lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, SEQ_T);
    marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  lua_Integer count = 0, strings = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    count++;
    if (lua_type(L, -2) == LUA_TSTRING) strings++;
    lua_pop(L, 1);
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  *len = n;
  if (count == 0) return marked ? D_EMPTY_SEQ : D_EMPTY_MAP;
  if (strings == count && !marked) return D_MAP;
  if (n == count) {
    int ok = 1;
    for (lua_Integer i = 1; i <= n && ok; i++) {
      ok = lua_rawgeti(L, idx, i) != LUA_TNIL;
      lua_pop(L, 1);
    }
    if (ok) return D_SEQ;
  }
  return luaL_error(L, "yaml.dump: table at '%s' mixes key types (expected all string keys, or a sequence 1..n)",
                    lua_tostring(L, path_idx));
}

typedef struct {
  const char *s;
  size_t n;
} keyref;

static int keycmp(const void *a, const void *b) {
  const keyref *x = a, *y = b;
  size_t m = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, m);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

static void dump_node(lua_State *L, ybuf *b, int idx, int path_idx, int ind, int inl, int depth);

/* A scalar or empty container value, written on the current line. */
static void dump_inline(lua_State *L, ybuf *b, int idx, int path_idx, int kind) {
  if (kind == D_EMPTY_MAP) { puts_(L, b, "{}"); return; }
  if (kind == D_EMPTY_SEQ) { puts_(L, b, "[]"); return; }
  switch (lua_type(L, idx)) {
  case LUA_TNIL: puts_(L, b, "null"); break;
  case LUA_TBOOLEAN: puts_(L, b, lua_toboolean(L, idx) ? "true" : "false"); break;
  case LUA_TNUMBER: put_number(L, b, idx); break;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    put_string(L, b, s, n, path_idx);
    break;
  }
  case LUA_TUSERDATA:
    if (luaL_testudata(L, idx, NULL_T)) {
      puts_(L, b, "null");
      break;
    }
    /* fall through */
  default:
    luaL_error(L, "yaml.dump: cannot write a %s value at '%s' (expected a string, number, boolean, "
                  "sp.yaml.null or table)", luaL_typename(L, idx), lua_tostring(L, path_idx));
  }
}

/* Write the child at idx after "key:" or "- "; path of the child at path_idx. */
static void dump_child(lua_State *L, ybuf *b, int idx, int path_idx, int ind, int after_dash, int depth) {
  lua_Integer n;
  int kind = classify(L, idx, path_idx, &n);
  if (kind == D_MAP || kind == D_SEQ) {
    if (after_dash) {
      dump_node(L, b, idx, path_idx, ind, 1, depth + 1);
    } else {
      put(L, b, "\n", 1);
      dump_node(L, b, idx, path_idx, ind, 0, depth + 1);
    }
  } else {
    if (!after_dash) put(L, b, " ", 1);
    dump_inline(L, b, idx, path_idx, kind);
    put(L, b, "\n", 1);
  }
}

/* Write the node at idx at indentation ind; when inl, its first line
   continues the current line (after "- "). */
static void dump_node(lua_State *L, ybuf *b, int idx, int path_idx, int ind, int inl, int depth) {
  if (depth > MAX_DEPTH)
    luaL_error(L, "yaml.dump: nesting deeper than %d at '%s' (a table that contains itself?)", MAX_DEPTH,
               lua_tostring(L, path_idx));
  luaL_checkstack(L, 10, "yaml.dump");
  lua_Integer n;
  int kind = classify(L, idx, path_idx, &n);
  const char *parent = lua_tostring(L, path_idx);
  if (kind == D_SEQ) {
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1 || !inl) indent(L, b, ind);
      put(L, b, "- ", 2);
      lua_rawgeti(L, idx, i);
      lua_pushfstring(L, "%s[%I]", parent, (LUAI_UACINT)i);
      dump_child(L, b, lua_gettop(L) - 1, lua_gettop(L), ind + 2, 1, depth);
      lua_pop(L, 2);
    }
  } else if (kind == D_MAP) {
    /* Deterministic order: keys sorted bytewise.  The key strings stay
       pinned by the table itself while the refs point at them. */
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) count++, lua_pop(L, 1);
    keyref *keys = lua_newuserdatauv(L, (size_t)count * sizeof *keys, 0);
    lua_Integer k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      keys[k].s = lua_tolstring(L, -2, &keys[k].n);
      k++;
      lua_pop(L, 1);
    }
    qsort(keys, (size_t)count, sizeof *keys, keycmp);
    for (lua_Integer i = 0; i < count; i++) {
      if (i > 0 || !inl) indent(L, b, ind);
      lua_pushlstring(L, keys[i].s, keys[i].n);
      lua_pushfstring(L, "%s%s%s", parent, parent[0] ? "." : "", keys[i].s);
      put_string(L, b, keys[i].s, keys[i].n, lua_gettop(L));
      put(L, b, ":", 1);
      lua_pushvalue(L, -2);
      lua_rawget(L, idx);
      lua_replace(L, -3); /* value, path */
      dump_child(L, b, lua_gettop(L) - 1, lua_gettop(L), ind + 2, 0, depth);
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  } else {
    dump_inline(L, b, idx, path_idx, kind);
    put(L, b, "\n", 1);
  }
}

static int l_dump(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  ybuf *b = lua_newuserdatauv(L, sizeof *b, 0); /* 2 */
  b->data = NULL;
  b->len = b->cap = 0;
  luaL_setmetatable(L, BUF_T);
  lua_pushliteral(L, ""); /* 3: root path */
  dump_node(L, b, 1, 3, 0, 0, 0);
  lua_pushlstring(L, b->data, b->len);
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  return 1;
}

/* ---- helpers for sequences and null --------------------------------------- */

static int l_is_seq(lua_State *L) {
  int r = 0;
  if (lua_istable(L, 1) && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, SEQ_T);
    r = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, r);
  return 1;
}

static int l_seq(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_setmetatable(L, SEQ_T);
  return 1;
}

static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "null");
  return 1;
}

/* sp.json encodes userdata through __tojson; returning nothing gives null. */
static int null_tojson(lua_State *L) {
  (void)L;
  return 0;
}

static int seq_tostring(lua_State *L) {
  lua_pushfstring(L, "yaml.seq: %p", lua_topointer(L, 1));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"load", l_load},
  {"load_file", l_load_file},
  {"dump", l_dump},
  {"is_seq", l_is_seq},
  {"seq", l_seq},
  {NULL, NULL}
};

void sp_lua_open_yaml(lua_State *L) {
  sp_lua_new_box_type(L, PARSER_T, parser_gc);
  sp_lua_new_box_type(L, FILE_T, file_gc);
  sp_lua_new_box_type(L, BUF_T, buf_gc);
  luaL_newmetatable(L, SEQ_T);
  lua_pushcfunction(L, seq_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  /* The null sentinel: one zero-size userdata per state, owning nothing. */
  lua_getfield(L, LUA_REGISTRYINDEX, NULL_KEY);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newuserdatauv(L, 0, 0);
    if (luaL_newmetatable(L, NULL_T)) {
      lua_pushcfunction(L, null_tostring);
      lua_setfield(L, -2, "__tostring");
      lua_pushcfunction(L, null_tojson);
      lua_setfield(L, -2, "__tojson");
    }
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, NULL_KEY);
  }
  lua_setfield(L, -2, "null");
  luaL_getmetatable(L, SEQ_T);
  lua_setfield(L, -2, "seq_mt");
  lua_setfield(L, -2, "yaml");
}
