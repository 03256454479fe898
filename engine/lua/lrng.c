/*
** lrng.c: sp.rng(seed), a reproducible random stream (GSL's MT19937), and
** the distribution functions that p-values need (sp.dist).
**
** Sub-streams: rng:substream(i) is a new generator seeded from (seed, i) by a
** splitmix64 mix, so parallel tasks get independent streams that do not
** depend on the order in which they run.
*/
#include <math.h>
#include <stdint.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "lsp.h"

#define SP_RNG_T "spillover.rng"

typedef struct {
  gsl_rng *r;
  uint64_t seed;
} lrng;

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static lrng *check_rng(lua_State *L, int idx) {
  lrng *u = luaL_checkudata(L, idx, SP_RNG_T);
  if (u->r == NULL) luaL_error(L, "attempt to use a closed spillover.rng");
  return u;
}

/* Owner first: the box exists (closed) before the generator is allocated. */
static lrng *push_rng(lua_State *L, uint64_t seed) {
  lrng *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->r = NULL;
  u->seed = seed;
  luaL_setmetatable(L, SP_RNG_T);
  u->r = gsl_rng_alloc(gsl_rng_mt19937);
  if (u->r == NULL) luaL_error(L, "out of memory creating a random stream");
  /* MT19937 takes an unsigned long seed; mix so nearby seeds differ widely. */
  gsl_rng_set(u->r, (unsigned long)splitmix64(seed));
  return u;
}

static int l_new(lua_State *L) {
  lua_Integer seed = luaL_optinteger(L, 1, 42);
  push_rng(L, (uint64_t)seed);
  return 1;
}

static int l_gc(lua_State *L) {
  lrng *u = luaL_checkudata(L, 1, SP_RNG_T);
  if (u->r != NULL) gsl_rng_free(u->r);
  u->r = NULL;
  return 0;
}

static int l_substream(lua_State *L) {
  lrng *u = check_rng(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  push_rng(L, splitmix64(u->seed ^ splitmix64((uint64_t)i + 1)));
  return 1;
}

static int l_uniform(lua_State *L) {
  lrng *u = check_rng(L, 1);
  lua_pushnumber(L, gsl_rng_uniform(u->r));
  return 1;
}

static int l_normal(lua_State *L) {
  lrng *u = check_rng(L, 1);
  double mu = luaL_optnumber(L, 2, 0.0), sd = luaL_optnumber(L, 3, 1.0);
  luaL_argcheck(L, sd >= 0 && isfinite(sd), 3, "standard deviation must be finite and >= 0");
  lua_pushnumber(L, mu + gsl_ran_gaussian_ziggurat(u->r, sd));
  return 1;
}

/* rng:integer(n): uniform on 1..n. */
static int l_integer(lua_State *L) {
  lrng *u = check_rng(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 1 && (unsigned long long)n <= gsl_rng_max(u->r), 2, "n must be in 1 .. 2^32");
  lua_pushinteger(L, (lua_Integer)gsl_rng_uniform_int(u->r, (unsigned long)n) + 1);
  return 1;
}

/* rng:normals(rows, cols): a matrix of standard normal draws. */
static int l_normals(lua_State *L) {
  lrng *u = check_rng(L, 1);
  lua_Integer r = luaL_checkinteger(L, 2), c = luaL_optinteger(L, 3, 1);
  luaL_argcheck(L, r >= 0, 2, "rows must be >= 0");
  luaL_argcheck(L, c >= 0, 3, "cols must be >= 0");
  gsl_matrix *m = sp_lua_matrix_new(L, (size_t)r, (size_t)c);
  for (size_t i = 0; i < (size_t)r; i++)
    for (size_t j = 0; j < (size_t)c; j++) gsl_matrix_set(m, i, j, gsl_ran_gaussian_ziggurat(u->r, 1.0));
  return 1;
}

/* ---- sp.dist: distribution functions (upper tails computed directly, so
   tiny p-values keep their precision) ------------------------------------------- */

static int d_pnorm(lua_State *L) {
  double x = luaL_checknumber(L, 1);
  int upper = lua_toboolean(L, 2);
  lua_pushnumber(L, upper ? gsl_cdf_ugaussian_Q(x) : gsl_cdf_ugaussian_P(x));
  return 1;
}

static int d_qnorm(lua_State *L) {
  double p = luaL_checknumber(L, 1);
  luaL_argcheck(L, p > 0 && p < 1, 1, "probability must be in (0, 1)");
  lua_pushnumber(L, gsl_cdf_ugaussian_Pinv(p));
  return 1;
}

static int d_pt(lua_State *L) {
  double x = luaL_checknumber(L, 1), df = luaL_checknumber(L, 2);
  luaL_argcheck(L, df > 0, 2, "degrees of freedom must be positive");
  int upper = lua_toboolean(L, 3);
  lua_pushnumber(L, upper ? gsl_cdf_tdist_Q(x, df) : gsl_cdf_tdist_P(x, df));
  return 1;
}

static int d_qt(lua_State *L) {
  double p = luaL_checknumber(L, 1), df = luaL_checknumber(L, 2);
  luaL_argcheck(L, p > 0 && p < 1, 1, "probability must be in (0, 1)");
  luaL_argcheck(L, df > 0, 2, "degrees of freedom must be positive");
  lua_pushnumber(L, gsl_cdf_tdist_Pinv(p, df));
  return 1;
}

static int d_pchisq(lua_State *L) {
  double x = luaL_checknumber(L, 1), df = luaL_checknumber(L, 2);
  luaL_argcheck(L, df > 0, 2, "degrees of freedom must be positive");
  int upper = lua_toboolean(L, 3);
  lua_pushnumber(L, upper ? gsl_cdf_chisq_Q(x, df) : gsl_cdf_chisq_P(x, df));
  return 1;
}

static int d_qchisq(lua_State *L) {
  double p = luaL_checknumber(L, 1), df = luaL_checknumber(L, 2);
  luaL_argcheck(L, p > 0 && p < 1, 1, "probability must be in (0, 1)");
  luaL_argcheck(L, df > 0, 2, "degrees of freedom must be positive");  /* GSL returns NaN */
  lua_pushnumber(L, gsl_cdf_chisq_Pinv(p, df));
  return 1;
}

static int d_pf(lua_State *L) {
  double x = luaL_checknumber(L, 1), d1 = luaL_checknumber(L, 2), d2 = luaL_checknumber(L, 3);
  luaL_argcheck(L, d1 > 0, 2, "degrees of freedom must be positive");
  luaL_argcheck(L, d2 > 0, 3, "degrees of freedom must be positive");
  int upper = lua_toboolean(L, 4);
  lua_pushnumber(L, upper ? gsl_cdf_fdist_Q(x, d1, d2) : gsl_cdf_fdist_P(x, d1, d2));
  return 1;
}

static const luaL_Reg metameth[] = {
  {"__gc", l_gc},
  {"__close", l_gc},
  {NULL, NULL}
};

static const luaL_Reg meth[] = {
  {"substream", l_substream},
  {"uniform", l_uniform},
  {"normal", l_normal},
  {"normals", l_normals},
  {"integer", l_integer},
  {NULL, NULL}
};

static const luaL_Reg dist[] = {
  {"pnorm", d_pnorm}, {"qnorm", d_qnorm}, {"pt", d_pt}, {"qt", d_qt},
  {"pchisq", d_pchisq}, {"qchisq", d_qchisq}, {"pf", d_pf},
  {NULL, NULL}
};

void sp_lua_open_rng(lua_State *L) {
  sp_lua_new_class(L, SP_RNG_T, metameth, meth);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "rng");
  luaL_newlib(L, dist);
  lua_setfield(L, -2, "dist");
}
