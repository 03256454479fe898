/*
** lplot.c: spillover.plotcore, drawing sessions over PLplot's cairo driver.
**
**   local pc = require "spillover.plotcore"
**   local s = pc.open("fig.png.tmp", {device = "png", width = 3.5, height = 2.6,
**                                     units = "in", dpi = 300})
**   s:viewport(0.15, 0.95, 0.2, 0.9)     -- fractions of the page
**   s:window(0, 10, -1, 1)               -- world coordinates
**   s:fill({0, 10, 10, 0}, {-.2, -.2, .2, .2}, {color = "#0072B2", alpha = 0.25})
**   s:line({0, 10}, {0, 0.5}, {color = "#0072B2", width = 1, dash = {3, 2}})
**   s:points({5}, {0.3}, {size = 4, shape = "circle"})
**   s:text(5, 0.8, "广东省", {size = 9, just = 0.5, angle = 0})
**   s:text(10, 20, "page text", {page = true})  -- x, y in points from bottom left
**   s:box{x = "bcnst", y = "bcnstv"}     -- PLplot's plbox: frame, ticks, labels
**   s:mtext("t", 1.5, 0.5, 0.5, "Title")  -- PLplot's plmtex
**   s:close()                             -- the file is complete only now
**
** Units: every size (text, line width, dash, marker, tick) is in points
** (1/72 in), whatever the device; `page = true` coordinates are points from
** the bottom-left corner of the page.  Colours are "#rrggbb", "#rgb", a few
** names, or {r, g, b} with 0-255 components; alpha is separate (0-1).
** Text is UTF-8; '#' (PLplot's escape character) is doubled unless raw = true.
**
** PLplot keeps global state per stream and calls exit() through plexit() on
** some errors.  Each session owns one stream made with plmkstrm and selects it
** with plsstrm before every call; every PLplot call runs inside guarded(),
** which points a process-wide jmp_buf at its frame, so the plsexit handler
** longjmps back instead of returning into exit().  plabort() messages are
** recorded per stream through plsError.  No Lua API call happens inside a
** guarded section, so a Lua error can never skip the guard's reset, and no
** malloc'd buffer is held across a raise: scratch arrays are Lua userdata.
** A session whose stream hit plexit is "broken": its methods raise, and __gc
** still ends its stream.
*/
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <plplot.h>

#include "lplot.h"
#include "lsp.h"

#define SP_PLOT_T "spillover.plot"
#define DRAW_COL 15                 /* cmap0 slot reused for every drawing colour */
#define FONT_ENV "PLPLOT_FREETYPE_SANS_FAMILY"
#define DEFAULT_FONT "Liberation Sans,Arial,Noto Sans CJK SC,sans"
#define MAX_TEXT 400                /* the cairo driver drops strings of 500+ code points */
#define MAX_DASH 10                 /* plstyl takes at most 10 mark/space pairs */
#define PI 3.14159265358979323846
#define MSG_LEN 1024

enum { ST_CLOSED = 0, ST_OPEN = 1, ST_BROKEN = 2 };

typedef struct {
  int state;
  PLINT strm;          /* -1 until plmkstrm succeeded; -1 again after plend1 */
  double wpt, hpt;     /* page size in points */
  double unit;         /* device units per point (dpi/72 for PNG, 1 for SVG) */
  double fontsize;     /* default text size in points */
  PLINT errcode;       /* plabort() reports here (plsError) */
  char errmsg[MSG_LEN];
  char failmsg[MSG_LEN];   /* why a broken session broke */
} plot_box;

/* ==== the guard against plexit() ========================================= */

/* Only non-NULL while a guarded() call runs; PLplot is single-threaded. */
static jmp_buf *guard_env = NULL;
static char exit_msg[512];

static int on_plexit(const char *msg) {
  snprintf(exit_msg, sizeof exit_msg, "%s", msg ? msg : "unknown error");
  if (guard_env != NULL) longjmp(*guard_env, 1);
  return 1; /* unreachable while every call is guarded */
}

/* plabort() also writes into the stream's plsError buffer; this handler only
   catches aborts on streams without one (before plmkstrm). */
static void on_plabort(const char *msg) {
  snprintf(exit_msg, sizeof exit_msg, "%s", msg ? msg : "unknown error");
}

static void install_handlers(void) {
  plsexit(on_plexit);
  plsabort(on_plabort);
}

typedef void (*draw_fn)(plot_box *p, void *arg);

/* Drop PLplot's decorations ("\n*** ... ***\n", ", aborting operation\n"). */
static void tidy_msg(char *m) {
  char *s = m;
  while (*s == '\n' || *s == '*' || *s == ' ') s++;
  memmove(m, s, strlen(s) + 1);
  size_t n = strlen(m);
  while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' ')) m[--n] = '\0';
  const char *tail = ", aborting operation";
  size_t t = strlen(tail);
  if (n >= t && strcmp(m + n - t, tail) == 0) m[n - t] = '\0';
}

/* Run fn(p, arg) with p's stream current (p may be NULL: no stream).  Returns
   0, or -1 with a message in msg; after plexit the session is broken. */
static int guarded(plot_box *p, draw_fn fn, void *arg, char *msg, size_t size) {
  jmp_buf env;
  jmp_buf *volatile prev = guard_env;
  if (setjmp(env) != 0) {
    guard_env = prev;
    if (p != NULL) p->state = ST_BROKEN;
    snprintf(msg, size, "%s", exit_msg);
    tidy_msg(msg);
    return -1;
  }
  guard_env = &env;
  exit_msg[0] = '\0';
  if (p != NULL) {
    if (p->strm >= 0) plsstrm(p->strm);
    p->errcode = 0;
    p->errmsg[0] = '\0';
  }
  fn(p, arg);
  guard_env = prev;
  if (p != NULL && p->errcode != 0) {
    snprintf(msg, size, "%s", p->errmsg[0] ? p->errmsg : "PLplot aborted an operation");
    tidy_msg(msg);
    return -1;
  }
  return 0;
}

/* ==== sizes ================================================================ */

/* The cairo driver sets 72/25.4 device units per PLplot "mm", and pango
   renders a character height of h mm at h*96/25.4 device units. */
static PLFLT font_mm(const plot_box *p, double pt) { return pt * p->unit * 25.4 / 96.0; }
static PLFLT len_mm(const plot_box *p, double pt) { return pt * p->unit * 25.4 / 72.0; }

/* ==== argument reading (may raise; never inside guarded) =================== */

static plot_box *check_box(lua_State *L, int idx) { return luaL_checkudata(L, idx, SP_PLOT_T); }

static plot_box *check_open(lua_State *L, int idx) {
  plot_box *p = check_box(L, idx);
  if (p->state == ST_CLOSED) sp_lua_errorf(L, "attempt to use a closed spillover.plot");
  if (p->state == ST_BROKEN)
    sp_lua_errorf(L, "plot: this session failed earlier (PLplot: %s) and can only be closed", p->failmsg);
  return p;
}

static double opt_num(lua_State *L, int t, const char *key, double def, double lo, double hi) {
  double v = def;
  if (t == 0) return def;
  int ty = lua_getfield(L, t, key);
  if (ty != LUA_TNIL) {
    if (!lua_isnumber(L, -1))
      sp_lua_errorf(L, "plot: option '%s' must be a number, got %s", key, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
    if (!(v >= lo && v <= hi)) sp_lua_errorf(L, "plot: option '%s' must be in [%g, %g], got %g", key, lo, hi, v);
  }
  lua_pop(L, 1);
  return v;
}

static int opt_bool(lua_State *L, int t, const char *key) {
  if (t == 0) return 0;
  lua_getfield(L, t, key);
  int r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

/* The string option key (def when absent); the string stays valid while the
   options table is alive. */
static const char *opt_str(lua_State *L, int t, const char *key, const char *def) {
  if (t == 0) return def;
  int ty = lua_getfield(L, t, key);
  const char *s = def;
  if (ty == LUA_TSTRING) s = lua_tostring(L, -1);
  else if (ty != LUA_TNIL) sp_lua_errorf(L, "plot: option '%s' must be a string, got %s", key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return s;
}

/* Index of the options table at idx (0 when absent). */
static int opt_table(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  return lua_absindex(L, idx);
}

typedef struct {
  int r, g, b;
  double alpha;
  double width;               /* points */
  int ndash;
  PLINT mark[MAX_DASH], space[MAX_DASH];
} style;

static const struct { const char *name; int r, g, b; } named[] = {
  {"black", 0, 0, 0},         {"white", 255, 255, 255},   {"grey", 128, 128, 128},
  {"gray", 128, 128, 128},    {"lightgrey", 200, 200, 200}, {"lightgray", 200, 200, 200},
  {"darkgrey", 80, 80, 80},   {"darkgray", 80, 80, 80},   {"red", 213, 94, 0},
  {"blue", 0, 114, 178},      {"orange", 230, 159, 0},    {"green", 0, 158, 115},
  {NULL, 0, 0, 0},
};

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void read_color(lua_State *L, int t, style *st) {
  st->r = st->g = st->b = 0;
  if (t == 0) return;
  int ty = lua_getfield(L, t, "color");
  if (ty == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    size_t n = strlen(s);
    int ok = 0;
    if (s[0] == '#' && (n == 7 || n == 4)) {
      int v[6], k = (int)n - 1;
      ok = 1;
      for (int i = 0; i < k; i++)
        if ((v[i] = hexval((unsigned char)s[i + 1])) < 0) ok = 0;
      if (ok && k == 6) { st->r = v[0] * 16 + v[1]; st->g = v[2] * 16 + v[3]; st->b = v[4] * 16 + v[5]; }
      else if (ok) { st->r = v[0] * 17; st->g = v[1] * 17; st->b = v[2] * 17; }
    } else {
      for (int i = 0; named[i].name != NULL; i++)
        if (strcmp(s, named[i].name) == 0) { st->r = named[i].r; st->g = named[i].g; st->b = named[i].b; ok = 1; }
    }
    if (!ok)
      sp_lua_errorf(L, "plot: color '%s' is not a colour: expected \"#rrggbb\", \"#rgb\", a name (black, white, grey, "
                    "lightgrey, darkgrey, red, blue, orange, green) or {r, g, b} with 0-255 components", s);
  } else if (ty == LUA_TTABLE) {
    int c[3];
    for (int i = 0; i < 3; i++) {
      lua_geti(L, -1 - i, i + 1);
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 255)
        sp_lua_errorf(L, "plot: color[%d] must be an integer in 0-255, got %s", i + 1,
                   lua_isnumber(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
      c[i] = (int)lua_tointeger(L, -1);
    }
    lua_pop(L, 3);
    st->r = c[0]; st->g = c[1]; st->b = c[2];
  } else if (ty != LUA_TNIL) {
    sp_lua_errorf(L, "plot: option 'color' must be a string or {r, g, b}, got %s", luaL_typename(L, -1));
  }
  lua_pop(L, 1);
}

static void read_style(lua_State *L, plot_box *p, int t, style *st, double defwidth) {
  read_color(L, t, st);
  st->alpha = opt_num(L, t, "alpha", 1.0, 0.0, 1.0);
  st->width = opt_num(L, t, "width", defwidth, 0.0, 100.0);
  st->ndash = 0;
  if (t != 0) {
    int ty = lua_getfield(L, t, "dash");
    if (ty == LUA_TTABLE) {
      lua_Integer n = luaL_len(L, -1);
      if (n % 2 != 0 || n > 2 * MAX_DASH)
        sp_lua_errorf(L, "plot: option 'dash' must hold pairs {on, off, ...} of at most %d pairs, got %d numbers",
                   MAX_DASH, (int)n);
      for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, -1, i + 1);
        double v = lua_tonumber(L, -1);
        if (!lua_isnumber(L, -1) || !(v > 0 && v < 1000))
          sp_lua_errorf(L, "plot: dash[%d] must be a positive length in points", (int)(i + 1));
        PLINT um = (PLINT)(len_mm(p, v) * 1000.0 + 0.5);
        if (um < 1) um = 1;
        if (i % 2 == 0) st->mark[i / 2] = um;
        else st->space[i / 2] = um;
        lua_pop(L, 1);
      }
      st->ndash = (int)(n / 2);
    } else if (ty != LUA_TNIL) {
      sp_lua_errorf(L, "plot: option 'dash' must be an array {on, off, ...} in points, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
  }
}

/* The array at idx as doubles in GC-owned scratch (pushed on the stack).
   NaN is allowed (a gap) only when allow_nan. */
static double *check_vec(lua_State *L, int idx, const char *name, size_t *n, int allow_nan) {
  if (lua_type(L, idx) != LUA_TTABLE)
    sp_lua_errorf(L, "plot: %s must be an array of numbers, got %s", name, luaL_typename(L, idx));
  lua_Integer len = luaL_len(L, idx);
  if (len < 0 || len > 10000000) sp_lua_errorf(L, "plot: %s has %d elements, more than a plot can take", name, (int)len);
  double *v = lua_newuserdatauv(L, (size_t)(len > 0 ? len : 1) * sizeof *v, 0);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_geti(L, idx, i);
    if (!lua_isnumber(L, -1))
      sp_lua_errorf(L, "plot: %s[%d] must be a number, got %s", name, (int)i, luaL_typename(L, -1));
    v[i - 1] = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!isfinite(v[i - 1]) && !(allow_nan && isnan(v[i - 1])))
      sp_lua_errorf(L, "plot: %s[%d] is %s; expected a finite number", name, (int)i,
                 isnan(v[i - 1]) ? "NaN" : "infinite");
  }
  *n = (size_t)len;
  return v;
}

/* Length of a valid UTF-8 string in code points, or -1 when invalid. */
static long utf8_len(const char *s, size_t n) {
  long count = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (k == 0 || i + k > n) return -1;
    for (size_t j = 1; j < k; j++)
      if (((unsigned char)s[i + j] >> 6) != 2) return -1;
    i += k;
    count++;
  }
  return count;
}

/* The text argument at idx, checked and with '#' doubled unless raw; the
   result is pushed (and so pinned) on the stack. */
static const char *check_text(lua_State *L, int idx, int raw) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (strlen(s) != n) luaL_argerror(L, idx, "text contains a zero byte");
  long len = utf8_len(s, n);
  if (len < 0) luaL_argerror(L, idx, "text is not valid UTF-8");
  if (len > MAX_TEXT) sp_lua_errorf(L, "plot: text of %d characters is too long (at most %d)", (int)len, MAX_TEXT);
  if (raw) { lua_pushvalue(L, idx); return lua_tostring(L, -1); }
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '#') luaL_addchar(&B, '#');
    luaL_addchar(&B, s[i]);
  }
  luaL_pushresult(&B);
  return lua_tostring(L, -1);
}

static int raise_plot(lua_State *L, const char *what, const char *msg) {
  return sp_lua_errorf(L, "plot: %s failed: PLplot: %s", what, msg);
}

/* ==== drawing callbacks (run inside guarded; no Lua calls) ================== */

typedef struct { PLFLT vx0, vx1, vy0, vy1, wx0, wx1, wy0, wy1; } frame_save;

static void enter_page(plot_box *p, frame_save *f) {
  plgvpd(&f->vx0, &f->vx1, &f->vy0, &f->vy1);
  plgvpw(&f->wx0, &f->wx1, &f->wy0, &f->wy1);
  plvpor(0, 1, 0, 1);
  plwind(0, p->wpt, 0, p->hpt);
}

static void leave_page(const frame_save *f) {
  plvpor(f->vx0, f->vx1, f->vy0, f->vy1);
  plwind(f->wx0, f->wx1, f->wy0, f->wy1);
}

/* Points per world unit in x and y for the current viewport and window. */
static void world_scale(const plot_box *p, double *sx, double *sy) {
  PLFLT vx0, vx1, vy0, vy1, wx0, wx1, wy0, wy1;
  plgvpd(&vx0, &vx1, &vy0, &vy1);
  plgvpw(&wx0, &wx1, &wy0, &wy1);
  *sx = (vx1 - vx0) * p->wpt / (wx1 - wx0);
  *sy = (vy1 - vy0) * p->hpt / (wy1 - wy0);
}

static void set_color(const style *st) {
  plscol0a(DRAW_COL, st->r, st->g, st->b, st->alpha);
  plcol0(DRAW_COL);
}

typedef struct {
  const double *x, *y;
  size_t n;
  style st;
  int page;
  /* text */
  const char *text;
  double size, angle, just, disp, pos;
  const char *side;
  /* markers */
  int shape, filled;
  /* open */
  const char *dev, *path, *font;
  double devw, devh, dpi;
  /* box */
  const char *xopt, *yopt;
  double xtick, ytick, ticklen;
  int nxsub, nysub;
} draw_args;

static void do_open(plot_box *p, void *arg) {
  draw_args *a = arg;
  PLINT strm;
  plmkstrm(&strm);
  if (strm < 0) { /* all PL_NSTREAMS (100) streams in use; PLplot only prints */
    p->errcode = 1;
    snprintf(p->errmsg, sizeof p->errmsg, "too many plot sessions open at once (PLplot allows 99); close some");
    return;
  }
  p->strm = strm;
  plsError(&p->errcode, p->errmsg);
  plsdev(a->dev);
  plsfnam(a->path);
  plspage(a->dpi, a->dpi, (PLINT)a->devw, (PLINT)a->devh, 0, 0);
  plscolbg(255, 255, 255);
  plscol0(1, 0, 0, 0);
  plinit();
  if (p->errcode != 0) return;
  pladv(0);
  plvpor(0, 1, 0, 1);
  plwind(0, p->wpt, 0, p->hpt);
  plschr(font_mm(p, p->fontsize), 1.0);
  plsmaj(len_mm(p, 3.0), 1.0);
  plsmin(len_mm(p, 1.5), 1.0);
  plwidth(0.6 * p->unit);
  plcol0(1);
}

static void do_end(plot_box *p, void *arg) {
  (void)arg;
  plend1();
  p->strm = -1;
}

static void do_line(plot_box *p, void *arg) {
  draw_args *a = arg;
  frame_save f;
  if (a->page) enter_page(p, &f);
  set_color(&a->st);
  plwidth(a->st.width * p->unit);
  if (a->st.ndash > 0) plstyl(a->st.ndash, a->st.mark, a->st.space);
  /* NaN splits the line: draw each run of finite points. */
  size_t i = 0;
  while (i < a->n) {
    while (i < a->n && (isnan(a->x[i]) || isnan(a->y[i]))) i++;
    size_t j = i;
    while (j < a->n && !isnan(a->x[j]) && !isnan(a->y[j])) j++;
    if (j - i >= 2) plline((PLINT)(j - i), a->x + i, a->y + i);
    i = j;
  }
  if (a->st.ndash > 0) plstyl(0, NULL, NULL);
  if (a->page) leave_page(&f);
}

static void do_fill(plot_box *p, void *arg) {
  draw_args *a = arg;
  frame_save f;
  if (a->page) enter_page(p, &f);
  set_color(&a->st);
  /* The driver strokes the outline of a fill with the pen width; a hairline
     keeps translucent bands from getting darker edges. */
  plwidth(0.001);
  plfill((PLINT)a->n, a->x, a->y);
  if (a->page) leave_page(&f);
}

enum { SH_CIRCLE, SH_SQUARE, SH_DIAMOND, SH_TRIANGLE, SH_TRIANGLE_DOWN };
static const char *const shape_names[] = {"circle", "square", "diamond", "triangle", "triangle_down", NULL};

static void do_points(plot_box *p, void *arg) {
  draw_args *a = arg;
  frame_save f;
  double sx, sy;
  if (a->page) enter_page(p, &f);
  world_scale(p, &sx, &sy);
  set_color(&a->st);
  plwidth(a->filled ? 0.001 : a->st.width * p->unit);
  double r = a->size / 2.0;
  for (size_t i = 0; i < a->n; i++) {
    if (isnan(a->x[i]) || isnan(a->y[i])) continue;
    PLFLT px[21], py[21];
    int k = 0;
    switch (a->shape) {
      case SH_CIRCLE:
        for (k = 0; k < 20; k++) {
          double t = 2 * PI * k / 20;
          px[k] = cos(t) * r;
          py[k] = sin(t) * r;
        }
        break;
      case SH_SQUARE: {
        double h = r * 0.886; /* same area as the circle */
        px[0] = -h; py[0] = -h; px[1] = h; py[1] = -h; px[2] = h; py[2] = h; px[3] = -h; py[3] = h;
        k = 4;
        break;
      }
      case SH_DIAMOND:
        px[0] = 0; py[0] = -r * 1.2; px[1] = r * 1.2; py[1] = 0; px[2] = 0; py[2] = r * 1.2; px[3] = -r * 1.2; py[3] = 0;
        k = 4;
        break;
      default: {
        double s = a->shape == SH_TRIANGLE ? 1 : -1;
        px[0] = -r * 1.2; py[0] = -s * r * 0.8; px[1] = r * 1.2; py[1] = -s * r * 0.8; px[2] = 0; py[2] = s * r * 1.3;
        k = 3;
        break;
      }
    }
    for (int j = 0; j < k; j++) {
      px[j] = a->x[i] + px[j] / sx;
      py[j] = a->y[i] + py[j] / sy;
    }
    if (a->filled) plfill(k, px, py);
    else {
      px[k] = px[0];
      py[k] = py[0];
      plline(k + 1, px, py);
    }
  }
  if (a->page) leave_page(&f);
}

static void do_text(plot_box *p, void *arg) {
  draw_args *a = arg;
  frame_save f;
  double sx = 1, sy = 1;
  if (a->page) enter_page(p, &f);
  else world_scale(p, &sx, &sy);
  set_color(&a->st);
  plschr(font_mm(p, a->size), 1.0);
  double t = a->angle * PI / 180.0;
  plptex(a->x[0], a->y[0], cos(t) / sx, sin(t) / sy, a->just, a->text);
  plschr(font_mm(p, p->fontsize), 1.0);
  if (a->page) leave_page(&f);
}

static void do_mtext(plot_box *p, void *arg) {
  draw_args *a = arg;
  set_color(&a->st);
  plschr(font_mm(p, a->size), 1.0);
  plmtex(a->side, a->disp, a->pos, a->just, a->text);
  plschr(font_mm(p, p->fontsize), 1.0);
}

static void do_box(plot_box *p, void *arg) {
  draw_args *a = arg;
  set_color(&a->st);
  plwidth(a->st.width * p->unit);
  plsmaj(len_mm(p, a->ticklen), 1.0);
  plsmin(len_mm(p, a->ticklen / 2), 1.0);
  plschr(font_mm(p, a->size), 1.0);
  plbox(a->xopt, a->xtick, a->nxsub, a->yopt, a->ytick, a->nysub);
  plschr(font_mm(p, p->fontsize), 1.0);
}

static void do_viewport(plot_box *p, void *arg) {
  (void)p;
  draw_args *a = arg;
  plvpor(a->x[0], a->x[1], a->x[2], a->x[3]);
}

static void do_window(plot_box *p, void *arg) {
  (void)p;
  draw_args *a = arg;
  plwind(a->x[0], a->x[1], a->x[2], a->x[3]);
}

/* ==== devices ============================================================== */

enum { HAVE_PNG = 1, HAVE_SVG = 2, DEVS_KNOWN = 4 };
static int devices_found = 0;   /* what the installed driver set offers; constant per process */

static void do_devices(plot_box *p, void *arg) {
  (void)p;
  const char *menu[128], *names[128];
  const char **menup = menu, **namesp = names;
  int n = 128;
  plgDevs(&menup, &namesp, &n);
  int *found = arg;
  for (int i = 0; i < n; i++) {
    if (strcmp(names[i], "pngcairo") == 0) *found |= HAVE_PNG;
    if (strcmp(names[i], "svgcairo") == 0) *found |= HAVE_SVG;
  }
  *found |= DEVS_KNOWN;
}

static int probe_devices(char *msg, size_t size) {
  if (devices_found & DEVS_KNOWN) return 0;
  int found = 0;
  install_handlers();
  if (guarded(NULL, do_devices, &found, msg, size) != 0) return -1;
  devices_found = found;
  return 0;
}

static int l_devices(lua_State *L) {
  char msg[MSG_LEN];
  if (probe_devices(msg, sizeof msg) != 0) return sp_lua_errorf(L, "plot: cannot list PLplot devices: %s", msg);
  lua_newtable(L);
  int k = 0;
  if (devices_found & HAVE_PNG) { lua_pushliteral(L, "png"); lua_rawseti(L, -2, ++k); }
  if (devices_found & HAVE_SVG) { lua_pushliteral(L, "svg"); lua_rawseti(L, -2, ++k); }
  return 1;
}

/* ==== the session ============================================================ */

static void end_stream(plot_box *p) {
  if (p->strm >= 0) {
    char msg[MSG_LEN];
    /* Ends the stream even of a broken session; an error here has nowhere
       to go (this may be the collector), so it is dropped. */
    (void)guarded(p, do_end, NULL, msg, sizeof msg);
    p->strm = -1;
  }
  p->state = ST_CLOSED;
}

static int l_gc(lua_State *L) {
  end_stream(check_box(L, 1));
  return 0;
}

/* open(path, {device=, width=, height=, units=, dpi=, font=, fontsize=}) */
static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int t = opt_table(L, 2);
  luaL_argcheck(L, t != 0, 2, "expected an options table {device=, width=, height=, ...}");
  static const char *const devs[] = {"png", "svg", NULL};
  static const char *const units[] = {"in", "px", "pt", "cm", NULL};
  lua_getfield(L, t, "device");
  if (lua_isnil(L, -1)) return sp_lua_errorf(L, "plot: option 'device' is required (\"png\" or \"svg\")");
  int dev = luaL_checkoption(L, -1, NULL, devs);
  lua_getfield(L, t, "units");
  int unit = luaL_checkoption(L, -1, "in", units);
  lua_pop(L, 2);
  double dpi = opt_num(L, t, "dpi", 300, 36, 2400);
  double w = opt_num(L, t, "width", -1, 0, 1e6), h = opt_num(L, t, "height", -1, 0, 1e6);
  if (!(w > 0 && h > 0)) return sp_lua_errorf(L, "plot: options 'width' and 'height' must be positive numbers");
  double fontsize = opt_num(L, t, "fontsize", 8.5, 2, 72);
  const char *font = opt_str(L, t, "font", DEFAULT_FONT);
  if (strlen(font) > 900) return sp_lua_errorf(L, "plot: option 'font' is too long");
  if (strcmp(path, "-") == 0 || path[0] == '\0')
    return sp_lua_errorf(L, "plot: '%s' is not a file path", path);

  /* Physical size in inches, then device units. */
  double win = unit == 0 ? w : unit == 1 ? w / dpi : unit == 2 ? w / 72 : w / 2.54;
  double hin = unit == 0 ? h : unit == 1 ? h / dpi : unit == 2 ? h / 72 : h / 2.54;
  double u = dev == 0 ? dpi / 72.0 : 1.0;
  double devw = floor(win * 72 * u + 0.5), devh = floor(hin * 72 * u + 0.5);
  if (devw < 16 || devh < 16 || devw > 20000 || devh > 20000)
    return sp_lua_errorf(L, "plot: a page of %.0f x %.0f device units is out of range (16 to 20000 each)", devw, devh);

  char msg[MSG_LEN];
  if (probe_devices(msg, sizeof msg) != 0) return sp_lua_errorf(L, "plot: cannot list PLplot devices: %s", msg);
  if (!(devices_found & (dev == 0 ? HAVE_PNG : HAVE_SVG)))
    return sp_lua_errorf(L, "plot: PLplot's %s driver is not installed (Debian: plplot-driver-cairo)",
                      dev == 0 ? "pngcairo" : "svgcairo");

  /* PLplot prompts on stdin when it cannot open the file, so check first. */
  FILE *probe = fopen(path, "wb");
  if (probe == NULL) return sp_lua_errorf(L, "plot: cannot write '%s': %s", path, strerror(errno));
  fclose(probe);

  plot_box *p = lua_newuserdatauv(L, sizeof *p, 0); /* owner first */
  memset(p, 0, sizeof *p);
  p->strm = -1;
  p->state = ST_CLOSED;
  luaL_setmetatable(L, SP_PLOT_T);
  p->unit = u;
  p->wpt = devw / u;
  p->hpt = devh / u;
  p->fontsize = fontsize;

  draw_args a;
  memset(&a, 0, sizeof a);
  a.dev = dev == 0 ? "pngcairo" : "svgcairo";
  a.path = path;
  a.devw = devw;
  a.devh = devh;
  a.dpi = dev == 0 ? dpi : 72;
  /* The cairo driver reads its sans family from the environment at plinit;
     set it for this call only. */
  char old[1024];
  const char *prev = getenv(FONT_ENV);
  int had = prev != NULL && strlen(prev) < sizeof old;
  if (had) snprintf(old, sizeof old, "%s", prev);
  setenv(FONT_ENV, font, 1);
  install_handlers();
  int rc = guarded(p, do_open, &a, msg, sizeof msg);
  if (had) setenv(FONT_ENV, old, 1);
  else unsetenv(FONT_ENV);
  if (rc != 0) {
    end_stream(p); /* the half-made stream */
    return sp_lua_errorf(L, "plot: cannot start a %s plot on '%s': PLplot: %s", devs[dev], path, msg);
  }
  p->state = ST_OPEN;
  return 1;
}

static int l_close(lua_State *L) {
  plot_box *p = check_box(L, 1);
  if (p->state == ST_CLOSED) return 0;
  int broken = p->state == ST_BROKEN;
  char msg[MSG_LEN];
  int rc = guarded(p, do_end, NULL, msg, sizeof msg);
  p->strm = -1;
  p->state = ST_CLOSED;
  if (broken) return sp_lua_errorf(L, "plot: the session failed earlier (PLplot: %s); its file is incomplete", p->failmsg);
  if (rc != 0) return raise_plot(L, "finishing the file", msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* After a failed guarded call: remember plexit's message for later methods. */
static int fail(lua_State *L, plot_box *p, const char *what, const char *msg) {
  if (p->state == ST_BROKEN) snprintf(p->failmsg, sizeof p->failmsg, "%s", msg);
  return raise_plot(L, what, msg);
}

static int run(lua_State *L, plot_box *p, draw_fn fn, draw_args *a, const char *what) {
  char msg[MSG_LEN];
  if (guarded(p, fn, a, msg, sizeof msg) != 0) return fail(L, p, what, msg);
  return 0;
}

static int l_size(lua_State *L) {
  plot_box *p = check_open(L, 1);
  lua_pushnumber(L, p->wpt);
  lua_pushnumber(L, p->hpt);
  lua_pushnumber(L, p->unit);
  return 3;
}

static int four(lua_State *L, draw_fn fn, const char *what, int viewport) {
  plot_box *p = check_open(L, 1);
  double v[4];
  for (int i = 0; i < 4; i++) {
    v[i] = luaL_checknumber(L, i + 2);
    if (!isfinite(v[i])) return luaL_argerror(L, i + 2, "expected a finite number");
  }
  if (viewport && !(v[0] >= 0 && v[0] < v[1] && v[1] <= 1 && v[2] >= 0 && v[2] < v[3] && v[3] <= 1))
    return sp_lua_errorf(L, "plot: viewport(%g, %g, %g, %g) must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1",
                      v[0], v[1], v[2], v[3]);
  if (!viewport && (v[0] == v[1] || v[2] == v[3]))
    return sp_lua_errorf(L, "plot: window(%g, %g, %g, %g) is empty: xmin must differ from xmax and ymin from ymax",
                      v[0], v[1], v[2], v[3]);
  draw_args a;
  memset(&a, 0, sizeof a);
  a.x = v;
  run(L, p, fn, &a, what);
  return 0;
}

static int l_viewport(lua_State *L) { return four(L, do_viewport, "viewport", 1); }
static int l_window(lua_State *L) { return four(L, do_window, "window", 0); }

/* Arguments 2 and 3 as the x and y vectors of a drawing call (equal lengths). */
static void read_xy(lua_State *L, draw_args *a, int finite_gaps, const char *what) {
  memset(a, 0, sizeof *a);
  size_t ny;
  a->x = check_vec(L, 2, "x", &a->n, finite_gaps);
  a->y = check_vec(L, 3, "y", &ny, finite_gaps);
  if (a->n != ny) sp_lua_errorf(L, "plot: %s: x has %d values but y has %d", what, (int)a->n, (int)ny);
}

/* line(x, y [, {color=, alpha=, width=, dash=, page=}]) */
static int l_line(lua_State *L) {
  plot_box *p = check_open(L, 1);
  int t = opt_table(L, 4);
  draw_args a;
  read_xy(L, &a, 1, "line");
  read_style(L, p, t, &a.st, 1.0);
  a.page = opt_bool(L, t, "page");
  run(L, p, do_line, &a, "line");
  return 0;
}

/* fill(x, y [, {color=, alpha=, page=}]): a filled polygon. */
static int l_fill(lua_State *L) {
  plot_box *p = check_open(L, 1);
  int t = opt_table(L, 4);
  draw_args a;
  read_xy(L, &a, 0, "fill");
  if (a.n < 3) return sp_lua_errorf(L, "plot: fill: a polygon needs at least 3 points, got %d", (int)a.n);
  read_style(L, p, t, &a.st, 0);
  a.page = opt_bool(L, t, "page");
  run(L, p, do_fill, &a, "fill");
  return 0;
}

/* points(x, y [, {color=, alpha=, size=, shape=, fill=, width=, page=}]) */
static int l_points(lua_State *L) {
  plot_box *p = check_open(L, 1);
  int t = opt_table(L, 4);
  draw_args a;
  read_xy(L, &a, 1, "points");
  read_style(L, p, t, &a.st, 0.8);
  a.size = opt_num(L, t, "size", 4, 0.1, 100);
  a.page = opt_bool(L, t, "page");
  a.filled = 1;
  if (t != 0) {
    lua_getfield(L, t, "fill");
    if (lua_isboolean(L, -1)) a.filled = lua_toboolean(L, -1);
    lua_getfield(L, t, "shape");
    a.shape = luaL_checkoption(L, -1, "circle", shape_names);
    lua_pop(L, 2);
  }
  run(L, p, do_points, &a, "points");
  return 0;
}

/* text(x, y, s [, {size=, angle=, just=, color=, alpha=, page=, raw=}]):
   s centred vertically on y; just = 0 left, 0.5 centre, 1 right of x. */
static int l_text(lua_State *L) {
  plot_box *p = check_open(L, 1);
  double xy[2] = {luaL_checknumber(L, 2), luaL_checknumber(L, 3)};
  if (!isfinite(xy[0]) || !isfinite(xy[1])) return sp_lua_errorf(L, "plot: text: x and y must be finite");
  int t = opt_table(L, 5);
  draw_args a;
  memset(&a, 0, sizeof a);
  a.text = check_text(L, 4, opt_bool(L, t, "raw"));
  a.x = xy;
  a.y = xy + 1;
  read_style(L, p, t, &a.st, 0);
  a.size = opt_num(L, t, "size", p->fontsize, 1, 200);
  a.angle = opt_num(L, t, "angle", 0, -360, 360);
  a.just = opt_num(L, t, "just", 0, 0, 1);
  a.page = opt_bool(L, t, "page");
  run(L, p, do_text, &a, "text");
  return 0;
}

/* mtext(side, disp, pos, just, s [, {size=, color=, raw=}]): plmtex. */
static int l_mtext(lua_State *L) {
  plot_box *p = check_open(L, 1);
  static const char *const sides[] = {"b", "t", "l", "r", "lv", "rv", NULL};
  int side = luaL_checkoption(L, 2, NULL, sides);
  draw_args a;
  memset(&a, 0, sizeof a);
  a.side = sides[side];
  a.disp = luaL_checknumber(L, 3);
  a.pos = luaL_checknumber(L, 4);
  a.just = luaL_checknumber(L, 5);
  int t = opt_table(L, 7);
  a.text = check_text(L, 6, opt_bool(L, t, "raw"));
  read_style(L, p, t, &a.st, 0);
  a.size = opt_num(L, t, "size", p->fontsize, 1, 200);
  run(L, p, do_mtext, &a, "mtext");
  return 0;
}

/* box{x = "bcnst", y = "bcnstv", xtick=, ytick=, nxsub=, nysub=, width=,
   ticklen=, size=, color=}: PLplot's plbox over the current viewport. */
static int l_box(lua_State *L) {
  plot_box *p = check_open(L, 1);
  int t = opt_table(L, 2);
  draw_args a;
  memset(&a, 0, sizeof a);
  a.xopt = opt_str(L, t, "x", "bcnst");
  a.yopt = opt_str(L, t, "y", "bcnstv");
  for (const char *s = a.xopt; *s; s++)
    if (!strchr("abcdfghilmnostuvwxy0123456789", *s)) return sp_lua_errorf(L, "plot: box: unknown x option '%c'", *s);
  for (const char *s = a.yopt; *s; s++)
    if (!strchr("abcdfghilmnostuvwxy0123456789", *s)) return sp_lua_errorf(L, "plot: box: unknown y option '%c'", *s);
  a.xtick = opt_num(L, t, "xtick", 0, 0, HUGE_VAL);
  a.ytick = opt_num(L, t, "ytick", 0, 0, HUGE_VAL);
  a.nxsub = (int)opt_num(L, t, "nxsub", 0, 0, 100);
  a.nysub = (int)opt_num(L, t, "nysub", 0, 0, 100);
  a.ticklen = opt_num(L, t, "ticklen", 3, 0, 100);
  a.size = opt_num(L, t, "size", p->fontsize, 1, 200);
  read_style(L, p, t, &a.st, 0.6);
  /* opt_str's strings belong to the options table, which stays on the stack. */
  run(L, p, do_box, &a, "box");
  return 0;
}

static int l_tostring(lua_State *L) {
  plot_box *p = check_box(L, 1);
  if (p->state == ST_CLOSED) lua_pushliteral(L, "spillover.plot (closed)");
  else lua_pushfstring(L, "spillover.plot (%f x %f pt%s)", p->wpt, p->hpt, p->state == ST_BROKEN ? ", failed" : "");
  return 1;
}

static const luaL_Reg methods[] = {
  {"viewport", l_viewport}, {"window", l_window}, {"line", l_line},   {"fill", l_fill},
  {"points", l_points},     {"text", l_text},     {"mtext", l_mtext}, {"box", l_box},
  {"size", l_size},         {"close", l_close},   {NULL, NULL},
};

static const luaL_Reg metamethods[] = {
  {"__gc", l_gc}, {"__close", l_gc}, {"__tostring", l_tostring}, {NULL, NULL},
};

int luaopen_spillover_plotcore(lua_State *L) {
  if (luaL_newmetatable(L, SP_PLOT_T)) {
    luaL_setfuncs(L, metamethods, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, l_open);
  lua_setfield(L, -2, "open");
  lua_pushcfunction(L, l_devices);
  lua_setfield(L, -2, "devices");
  return 1;
}
