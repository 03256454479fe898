/*
** lformula.c: formulas and design matrices from Lua (sp.formula, sp.design).
**
** sp.formula(text) returns a plain table describing the parse, for
** inspection.  sp.design(d, formula [, opts]) returns a spillover.design
** userdata: a box around an sp_design whose user values 1..4 hold the y, X,
** endog and inst matrices (5 the block [y X]), so des.X is the same matrix
** every time.  The box is created before the design (owner first) and the
** design is detached from the frame once filled, so the frame may change or
** die afterwards.  core.design_deferred leaves y, X and [y X] unfilled when
** they are plain columns of the frame (kept in user value 6) and fills them
** on first use, or says that the frame no longer holds them.
*/
#include <string.h>

#include "ldesign.h"
#include "lsp.h"
#include "spillover/formula.h"

typedef struct {
  sp_design *d;
  unsigned long long frame_version;  /* the frame's version when built (des.frame_version) */
  int deferred;  /* y, X and yX not filled yet: they are read from the frame (user value 6)
                    on first use (core.design_deferred) */
} ldesign;

typedef struct {
  sp_formula *fm;
} lformula;

/* {====================================================================
** sp.formula
** ===================================================================== */

static int formula_gc(lua_State *L) {
  lformula *u = luaL_checkudata(L, 1, SP_FORMULA_T);
  sp_formula_free(u->fm);
  u->fm = NULL;
  return 0;
}

static const char *kind_name(const sp_fnode *n) {
  switch (n->kind) {
    case SP_FN_VAR: return "var";
    case SP_FN_NUM: return "number";
    case SP_FN_OP: return "op";
    case SP_FN_PAREN: return "paren";
    case SP_FN_FUNC: return "call";
    case SP_FN_I: return "I";
    case SP_FN_SHIFT: return n->name[0] == 'f' ? "lead" : "lag";
    case SP_FN_DIFF: return "diff";
    case SP_FN_INTERACT: return "interaction";
    case SP_FN_FACTOR: return "factor";
    case SP_FN_COMBINE: return "combine";
  }
  return "?";
}

static void push_node(lua_State *L, const sp_fnode *n) {
  luaL_checkstack(L, 6, "formula too deep");
  lua_createtable(L, 0, 8);
  lua_pushstring(L, kind_name(n));
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, n->label);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, n->col);
  lua_setfield(L, -2, "col");
  switch (n->kind) {
    case SP_FN_VAR: lua_pushstring(L, n->name); lua_setfield(L, -2, "var"); break;
    case SP_FN_NUM: lua_pushnumber(L, n->num); lua_setfield(L, -2, "value"); break;
    case SP_FN_OP: lua_pushlstring(L, &n->op, 1); lua_setfield(L, -2, "op"); break;
    case SP_FN_FUNC: lua_pushstring(L, n->name); lua_setfield(L, -2, "fn"); break;
    case SP_FN_SHIFT:
    case SP_FN_DIFF:
      lua_pushstring(L, n->name);
      lua_setfield(L, -2, "fn");
      lua_pushinteger(L, n->k);
      lua_setfield(L, -2, "k");
      break;
    case SP_FN_FACTOR:
      if (n->ref) { lua_pushstring(L, n->ref); lua_setfield(L, -2, "ref"); }
      break;
    default: break;
  }
  lua_createtable(L, (int)n->nkids, 0);
  for (size_t i = 0; i < n->nkids; i++) {
    push_node(L, n->kids[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "args");
}

static void push_terms(lua_State *L, sp_fnode **t, size_t n, const char *field) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    push_node(L, t[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, field);
}

/* The formula text at idx; an embedded NUL would silently cut it short. */
static const char *check_text(lua_State *L, int idx) {
  size_t len;
  const char *text = luaL_checklstring(L, idx, &len);
  if (strlen(text) != len) luaL_argerror(L, idx, "the formula text contains a NUL byte");
  return text;
}

/* core.formula(text [, {optional_response = true}]): the parse tree as plain
   tables; spillover.formula builds the formula object on it.  lhs is absent
   for "~ x", which only optional_response accepts. */
static int l_formula(lua_State *L) {
  const char *text = check_text(L, 1);
  int flags = 0;
  if (!lua_isnoneornil(L, 2)) {
    static const char *const allowed[] = {"optional_response", NULL};
    sp_lua_check_options(L, 2, "formula", allowed);
    if (lua_getfield(L, 2, "optional_response") != LUA_TNIL && !lua_isboolean(L, -1))
      return luaL_argerror(L, 2, "optional_response must be true or false");
    if (lua_toboolean(L, -1)) flags |= SP_FORMULA_OPTIONAL_RESPONSE;
    lua_pop(L, 1);
  }
  lformula *u = lua_newuserdatauv(L, sizeof *u, 0);  /* owner first */
  u->fm = NULL;
  luaL_setmetatable(L, SP_FORMULA_T);
  sp_error err;
  sp_error_clear(&err);
  if (sp_formula_parse_flags(text, flags, &u->fm, &err) != SP_OK) return sp_lua_error(L, &err);
  const sp_formula *fm = u->fm;
  lua_createtable(L, 0, 10);
  lua_pushstring(L, fm->text);
  lua_setfield(L, -2, "text");
  if (fm->lhs != NULL) {
    push_node(L, fm->lhs);
    lua_setfield(L, -2, "lhs");
  }
  push_terms(L, fm->rhs, fm->nrhs, "rhs");
  push_terms(L, fm->fe, fm->nfe, "fe");
  push_terms(L, fm->endog, fm->nendog, "endog");
  push_terms(L, fm->inst, fm->ninst, "inst");
  lua_pushboolean(L, fm->intercept);
  lua_setfield(L, -2, "intercept");
  lua_pushinteger(L, (lua_Integer)fm->nremoved);
  lua_setfield(L, -2, "nremoved");
  lua_pushinteger(L, fm->nparts);
  lua_setfield(L, -2, "nparts");
  lua_createtable(L, (int)fm->nvars, 0);
  for (size_t i = 0; i < fm->nvars; i++) {
    lua_pushstring(L, fm->vars[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "vars");
  return 1;
}

/* }==================================================================== */

/* {====================================================================
** sp.design
** ===================================================================== */

static ldesign *check_box(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, SP_DESIGN_T);
}

sp_design *sp_lua_check_design(lua_State *L, int idx) {
  ldesign *u = check_box(L, idx);
  if (u->d == NULL) luaL_error(L, "attempt to use a closed spillover.design");
  return u->d;
}

/* Fill a deferred design's block [y X] from its frame, once.  The frame may
   have changed since the design was built: the columns are read only if it
   still holds them unchanged (sp_design_readable); otherwise the values the
   design was built on are gone, and the error says so. */
static void design_materialise(lua_State *L, int idx) {
  ldesign *u = check_box(L, idx);
  if (!u->deferred) return;
  sp_design *d = sp_lua_check_design(L, idx);
  lua_getiuservalue(L, idx, 6);
  sp_frame *f = sp_lua_check_frame(L, -1);
  if (!sp_design_readable(d, f))
    luaL_error(L, "the data this design (or fit) of %s was built on changed: a column it reads was "
                  "replaced or dropped from the frame since; build it (or fit) again", d->yname);
  sp_lua_matrix_new(L, d->n, 1 + d->k);
  int block = lua_gettop(L);
  gsl_matrix *y = sp_lua_matrix_view(L, block, 0, 0, d->n, 1);
  lua_setiuservalue(L, idx, 1);
  gsl_matrix *X = sp_lua_matrix_view(L, block, 0, 1, d->n, d->k);
  lua_setiuservalue(L, idx, 2);
  sp_design_refill(d, f, y, X, 0);
  lua_setiuservalue(L, idx, 5);
  lua_pop(L, 1);  /* the frame */
  lua_pushnil(L);
  lua_setiuservalue(L, idx, 6);  /* no longer needed */
  u->deferred = 0;
}

void sp_lua_design_matrices(lua_State *L, int idx, gsl_matrix **y, gsl_matrix **X,
                            gsl_matrix **endog, gsl_matrix **inst) {
  idx = lua_absindex(L, idx);
  sp_lua_check_design(L, idx);
  if (y != NULL || X != NULL) design_materialise(L, idx);
  gsl_matrix **out[4] = {y, X, endog, inst};
  for (int j = 0; j < 4; j++) {
    if (out[j] == NULL) continue;
    lua_getiuservalue(L, idx, j + 1);
    *out[j] = sp_lua_test_matrix(L, -1);
    lua_pop(L, 1);
  }
}

static int design_gc(lua_State *L) {
  ldesign *u = check_box(L, 1);
  sp_design_free(u->d);
  u->d = NULL;
  return 0;
}

static void push_strings(lua_State *L, char **s, size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, s[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static const sp_design_factor *check_factor(lua_State *L, const sp_design *d, int arg) {
  const char *name = luaL_checkstring(L, arg);
  const sp_design_factor *x = sp_design_factor_find(d, name);
  if (x == NULL)
    luaL_error(L, "'%s' is not a fixed effect or extra variable of this design "
                  "(pass it in sp.design(d, f, {extra = {\"%s\"}}))", name, name);
  return x;
}

/* des:codes(name): the 1-based level codes of a fixed effect or extra variable. */
static int l_codes(lua_State *L) {
  const sp_design *d = sp_lua_check_design(L, 1);
  const sp_design_factor *x = check_factor(L, d, 2);
  lua_createtable(L, (int)d->n, 0);
  for (size_t i = 0; i < d->n; i++) {
    lua_pushinteger(L, (lua_Integer)x->code[i] + 1);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushinteger(L, (lua_Integer)x->nlevels);
  return 2;
}

/* des:values(name): the values of a numeric extra variable over the used rows (n x 1). */
static int l_values(lua_State *L) {
  sp_design *d = sp_lua_check_design(L, 1);
  const sp_design_factor *x = check_factor(L, d, 2);
  if (!sp_design_factor_numeric(d, x))
    return luaL_error(L, "'%s' is categorical (or a fixed effect): use des:codes(\"%s\")", x->name, x->name);
  gsl_matrix *m = sp_lua_matrix_new(L, d->n, 1);
  sp_error err;
  sp_error_clear(&err);
  const double *v = sp_design_factor_values(d, x, &err);
  if (v == NULL) return sp_lua_error(L, &err);
  for (size_t i = 0; i < d->n; i++) m->data[i * m->tda] = v[i];
  return 1;
}

static int design_index(lua_State *L) {
  const sp_design *d = sp_lua_check_design(L, 1);
  const char *key = luaL_checkstring(L, 2);
  static const char *const mats[] = {"y", "X", "endog", "inst", "yX"};
  for (int j = 0; j < 5; j++)
    if (strcmp(key, mats[j]) == 0) {
      if (j != 2 && j != 3) design_materialise(L, 1);
      lua_getiuservalue(L, 1, j + 1);
      return 1;
    }
  if (strcmp(key, "names") == 0) push_strings(L, d->names, d->k);
  else if (strcmp(key, "yname") == 0) lua_pushstring(L, d->yname);
  else if (strcmp(key, "n") == 0) lua_pushinteger(L, (lua_Integer)d->n);
  else if (strcmp(key, "k") == 0) lua_pushinteger(L, (lua_Integer)d->k);
  else if (strcmp(key, "nrow") == 0) lua_pushinteger(L, (lua_Integer)d->nrow);
  else if (strcmp(key, "intercept") == 0) lua_pushboolean(L, d->intercept);
  else if (strcmp(key, "frame_version") == 0) lua_pushinteger(L, (lua_Integer)check_box(L, 1)->frame_version);
  else if (strcmp(key, "filled") == 0) lua_pushboolean(L, !check_box(L, 1)->deferred);
  else if (strcmp(key, "dropped") == 0) lua_pushinteger(L, (lua_Integer)d->dropped);
  else if (strcmp(key, "dropped_missing") == 0) lua_pushinteger(L, (lua_Integer)d->dropped_missing);
  else if (strcmp(key, "dropped_derived") == 0) lua_pushinteger(L, (lua_Integer)d->dropped_derived);
  else if (strcmp(key, "notes") == 0) push_strings(L, d->notes, d->nnotes);
  else if (strcmp(key, "endog_names") == 0) {
    if (d->p_endog) push_strings(L, d->endog_names, d->p_endog); else lua_pushnil(L);
  } else if (strcmp(key, "inst_names") == 0) {
    if (d->p_inst) push_strings(L, d->inst_names, d->p_inst); else lua_pushnil(L);
  } else if (strcmp(key, "rows") == 0) {
    lua_createtable(L, (int)d->n, 0);
    for (size_t i = 0; i < d->n; i++) {
      lua_pushinteger(L, (lua_Integer)(d->rows ? d->rows[i] : i) + 1);  /* NULL: every row */
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  } else if (strcmp(key, "fe") == 0 || strcmp(key, "extra") == 0) {
    int fe = key[0] == 'f';
    size_t m = fe ? d->nfe : d->nextra;
    const sp_design_factor *x = fe ? d->fe : d->extra;
    lua_createtable(L, (int)m, 0);
    for (size_t j = 0; j < m; j++) {
      lua_createtable(L, 0, 3);
      lua_pushstring(L, x[j].name);
      lua_setfield(L, -2, "name");
      lua_pushinteger(L, (lua_Integer)x[j].nlevels);
      lua_setfield(L, -2, "nlevels");
      if (!fe) { lua_pushboolean(L, sp_design_factor_numeric(d, &x[j])); lua_setfield(L, -2, "numeric"); }
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
  } else if (strcmp(key, "codes") == 0) lua_pushcfunction(L, l_codes);
  else if (strcmp(key, "values") == 0) lua_pushcfunction(L, l_values);
  else lua_pushnil(L);
  return 1;
}

static int design_tostring(lua_State *L) {
  ldesign *u = check_box(L, 1);
  if (u->d == NULL) lua_pushliteral(L, "spillover.design (closed)");
  else lua_pushfstring(L, "spillover.design: %s on %d rows x %d columns (%d dropped)",
                       u->d->yname ? u->d->yname : "no response",
                       (int)u->d->n, (int)u->d->k, (int)u->d->dropped);
  return 1;
}

/* Designs built in this Lua state, for tests that count how often the
   estimators build one (core.design_stats(); not part of the sp surface). */
static const char design_builds_key = 0;

static void count_design_build(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &design_builds_key);
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushinteger(L, n + 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &design_builds_key);
}

/* core.design_stats() -> {builds = designs built so far in this state} */
static int l_design_stats(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &design_builds_key);
  lua_pushinteger(L, lua_tointeger(L, -1));
  lua_setfield(L, -3, "builds");
  lua_pop(L, 1);
  return 1;
}

/* sp.design, and with deferred core.design_deferred: a design whose block
   [y X] is filled only when something reads des.y, des.X or des.yX, when
   every column of y and X is read in place from the frame (otherwise it is
   filled at once, as sp.design does).  A fit that reads the design's rows
   straight from the frame (sp_design_rows) never needs the block: at 1e7
   rows and two regressors, 240 MB never allocated. */
static int design_build(lua_State *L, int deferred) {
  sp_frame *f = sp_lua_check_frame(L, 1);
  const char *text;
  int flags = 0;
  if (lua_istable(L, 2)) {  /* the object sp.formula returns */
    if (lua_getfield(L, 2, "text") != LUA_TSTRING)
      return luaL_argerror(L, 2, "expected a formula string or an sp.formula table");
    lua_replace(L, 2);
    /* Only an object may lack a response (f:without_response(): X alone); a
       text "~ x" is more likely a forgotten response. */
    flags = SP_FORMULA_OPTIONAL_RESPONSE;
  }
  text = check_text(L, 2);
  sp_design_options opt;
  sp_design_options_init(&opt);
  const char **extra = NULL;
  if (!lua_isnoneornil(L, 3)) {
    static const char *const allowed[] = {"intercept", "extra", "threads", NULL};
    sp_lua_check_options(L, 3, "design", allowed);
    if (lua_getfield(L, 3, "threads") != LUA_TNIL) {
      /* 2.0 is 2, as for the demeaning's and least squares' own threads
         (a scenario's YAML number may arrive as a float) */
      int isint = 0;
      lua_Integer t = lua_tointegerx(L, -1, &isint);
      if (!isint || lua_type(L, -1) != LUA_TNUMBER || (t != 1 && t != 2))
        return luaL_argerror(L, 3, "threads must be 1 or 2");
      opt.threads = (int)t;
    }
    lua_pop(L, 1);
    lua_getfield(L, 3, "intercept");
    if (!lua_isnil(L, -1)) {
      if (!lua_isboolean(L, -1)) return luaL_argerror(L, 3, "intercept must be true or false");
      opt.intercept = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, 3, "extra");
    if (lua_isstring(L, -1) && !lua_isnumber(L, -1)) {  /* a single name */
      lua_createtable(L, 1, 0);
      lua_insert(L, -2);
      lua_rawseti(L, -2, 1);
    }
    if (!lua_isnil(L, -1)) {
      if (!lua_istable(L, -1)) return luaL_argerror(L, 3, "extra must be a list of variable names");
      size_t m = (size_t)luaL_len(L, -1);
      /* The array is a userdata so the collector frees it if we raise; the
         strings stay alive because the list (left on the stack) holds them. */
      extra = lua_newuserdatauv(L, (m ? m : 1) * sizeof *extra, 0);
      lua_insert(L, -2);
      for (size_t i = 0; i < m; i++) {
        if (lua_geti(L, -1, (lua_Integer)i + 1) != LUA_TSTRING)
          return luaL_error(L, "bad argument #3 to 'design' (extra[%d] must be a variable name, found %s)",
                            (int)i + 1, luaL_typename(L, -1));
        extra[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
      }
      opt.extra = extra;
      opt.nextra = m;
    }
  }
  ldesign *u = lua_newuserdatauv(L, sizeof *u, 6);  /* owner first */
  u->d = NULL;
  u->deferred = 0;
  luaL_setmetatable(L, SP_DESIGN_T);
  int box = lua_gettop(L);
  sp_error err;
  sp_error_clear(&err);
  sp_formula *fm = NULL;
  if (sp_formula_parse_flags(text, flags, &fm, &err) != SP_OK) return sp_lua_error(L, &err);
  int st = sp_design_plan(f, fm, &opt, &u->d, &err);
  sp_formula_free(fm);  /* freed before any raise; the design keeps no pointer into it */
  if (st != SP_OK) return sp_lua_error(L, &err);
  sp_design *d = u->d;
  gsl_matrix *m[4] = {NULL, NULL, NULL, NULL};
  size_t cols[4] = {1, d->k, d->p_endog, d->p_inst};
  u->frame_version = f->version;
  if (deferred && d->yname != NULL && d->p_endog == 0 && d->p_inst == 0 && sp_design_readable(d, f)) {
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, box, 6);
    u->deferred = 1;
    sp_design_detach(d);
    count_design_build(L);
    lua_settop(L, box);
    return 1;
  }
  if (d->yname != NULL) {
    /* y and X share one n x (1 + k) block (user value 5, des.yX), so an
       estimator can absorb fixed effects from both in one sweep, in place. */
    sp_lua_matrix_new(L, d->n, 1 + d->k);
    int block = lua_gettop(L);
    m[0] = sp_lua_matrix_view(L, block, 0, 0, d->n, 1);
    lua_setiuservalue(L, box, 1);
    m[1] = sp_lua_matrix_view(L, block, 0, 1, d->n, d->k);
    lua_setiuservalue(L, box, 2);
    lua_setiuservalue(L, box, 5);
  } else {  /* no response: X alone; y and yX stay nil */
    m[1] = sp_lua_matrix_new(L, d->n, d->k);
    lua_setiuservalue(L, box, 2);
  }
  for (int j = 2; j < 4; j++) {
    if (cols[j] == 0) continue;
    m[j] = sp_lua_matrix_new(L, d->n, cols[j]);
    lua_setiuservalue(L, box, j + 1);
  }
  if (sp_design_fill(d, m[0], m[1], m[2], m[3], &err) != SP_OK) return sp_lua_error(L, &err);
  sp_design_detach(d);  /* the frame may now change or be collected */
  count_design_build(L);
  lua_settop(L, box);
  return 1;
}

static int l_design(lua_State *L) { return design_build(L, 0); }

/* core.design_deferred(d, formula [, opts]): sp.design whose block is filled
   on first use (design_build); for estimators, not part of sp. */
static int l_design_deferred(lua_State *L) { return design_build(L, 1); }

/* }==================================================================== */

static const luaL_Reg design_meta[] = {
  {"__gc", design_gc},
  {"__close", design_gc},
  {"__index", design_index},
  {"__tostring", design_tostring},
  {NULL, NULL}
};

void sp_lua_open_formula(lua_State *L) {
  luaL_newmetatable(L, SP_DESIGN_T);
  luaL_setfuncs(L, design_meta, 0);
  lua_pop(L, 1);
  sp_lua_new_box_type(L, SP_FORMULA_T, formula_gc);
  lua_pushcfunction(L, l_formula);
  lua_setfield(L, -2, "formula");
  lua_pushcfunction(L, l_design);
  lua_setfield(L, -2, "design");
  lua_pushcfunction(L, l_design_deferred);
  lua_setfield(L, -2, "design_deferred");
  lua_pushcfunction(L, l_design_stats);
  lua_setfield(L, -2, "design_stats");
}
