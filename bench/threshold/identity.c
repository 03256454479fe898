/* identity.c: every result of sp_threshold_fit that a change to the
   bootstrap could move (thresholds, intervals, F, p-values, critical values
   and every bootstrap F*), printed exactly (%a) for a set of configurations,
   so that two cores can be compared bit for bit:

     cc -O2 -std=c11 -Iengine/include -o id-new bench/threshold/identity.c build-x/libspillover_core.a ...
     ./id-old > old.txt; ./id-new > new.txt; cmp old.txt new.txt

   (bench/threshold/identity.sh does this for two build directories.)
   Configurations: Hansen's data (quantile and exact grid, 1-3 thresholds,
   his program's conventions), unbalanced synthetic panels with one and two
   regime regressors and an entity without rows, heavy ties in q, a regime
   regressor with zeros, fewer rows than one group, and a 1e5-row panel with
   many groups; each at 1 and 2 threads. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spillover/csv.h"
#include "spillover/frame.h"
#include "spillover/threshold.h"

static void dump(const char *name, const sp_thr_data *d, int nthresh, size_t grid, int reps, int hansen1999) {
  for (int th = 1; th <= 2; th++) {
    sp_thr_options o;
    sp_thr_options_init(&o);
    o.nthresh = nthresh; o.grid = grid; o.reps = reps; o.seed = 17; o.threads = th; o.hansen1999 = hansen1999;
    sp_thr_result r;
    sp_error err;
    int st = sp_threshold_fit(d, &o, &r, &err);
    printf("%s nt=%d grid=%zu reps=%d threads=%d: status %d\n", name, nthresh, grid, reps, th, st);
    if (st == SP_OK) {
      for (int j = 0; j < nthresh; j++) {
        printf(" gamma %a ci %a %a\n", r.gamma[j], r.ci[j][0], r.ci[j][1]);
        const sp_thr_test *T = &r.test[j];
        printf(" F %a p %a crit %a %a %a\n", T->F, T->pvalue, T->crit[0], T->crit[1], T->crit[2]);
        for (int b = 0; b < T->reps; b++) printf("  %a\n", T->Fboot[b]);
      }
    }
    sp_thr_result_clear(&r);
  }
}

static double unif(unsigned long long *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*s >> 11) * 0x1.0p-53;
}

typedef struct { size_t n, N; double *y, *X, *Z, *q; int32_t *ent, *tim; } panel;

/* N entities (entity 3 without rows when skip3), T + i % vary periods,
   k = 2, m = 2 regime regressors (the first with zeros when zeros), q on a
   grid of `levels` values when levels > 0. */
static panel synth(size_t N, size_t T, size_t vary, int skip3, int zeros, int levels, unsigned long long seed) {
  panel p = {0};
  p.N = N;
  for (size_t i = 0; i < N; i++) p.n += (skip3 && i == 3) ? 0 : T + (vary ? i % vary : 0);
  p.y = malloc(p.n * sizeof(double)); p.X = malloc(2 * p.n * sizeof(double)); p.Z = malloc(2 * p.n * sizeof(double));
  p.q = malloc(p.n * sizeof(double)); p.ent = malloc(p.n * sizeof(int32_t)); p.tim = malloc(p.n * sizeof(int32_t));
  size_t t = 0;
  unsigned long long s = seed;
  for (size_t i = 0; i < N; i++) {
    size_t Ti = (skip3 && i == 3) ? 0 : T + (vary ? i % vary : 0);
    double a = unif(&s);
    for (size_t k = 0; k < Ti; k++, t++) {
      p.ent[t] = (int32_t)i;
      p.tim[t] = (int32_t)(Ti - k);  /* rows stored in reverse time order */
      p.X[2 * t] = unif(&s) + a; p.X[2 * t + 1] = unif(&s);
      p.Z[2 * t] = zeros && unif(&s) < 0.3 ? 0.0 : unif(&s) - 0.5;
      p.Z[2 * t + 1] = unif(&s) - 0.5;
      double u = unif(&s);
      p.q[t] = levels > 0 ? floor(u * levels) / levels : u;
      p.y[t] = a + 0.5 * p.X[2 * t] - 0.3 * p.X[2 * t + 1] + (u <= 0.4 ? 1.0 : 0.6) * p.Z[2 * t] + 0.2 * p.Z[2 * t + 1] +
               (unif(&s) - 0.5);
    }
  }
  return p;
}

static sp_thr_data view(const panel *p, size_t m) {
  sp_thr_data d = {.n = p->n, .k = 2, .m = m, .y = p->y, .X = p->X, .ldx = 2, .Z = p->Z, .ldz = 2, .q = p->q,
                   .entity = p->ent, .N = p->N, .time = p->tim};
  return d;
}

static void drop(panel *p) { free(p->y); free(p->X); free(p->Z); free(p->q); free(p->ent); free(p->tim); }

int main(void) {
  sp_error err;
  sp_frame *f = NULL;
  if (sp_frame_read_csv("tests/reference/data/hansen_1999_invest_565firms.csv", NULL, &f, &err)) {
    fprintf(stderr, "%s (run from the repository root)\n", err.msg);
    return 1;
  }
  size_t n = f->nrow;
  const char *xn[] = {"q1", "q2", "q3", "d1", "qd1"};
  double *y = malloc(n * sizeof(double)), *X = malloc(5 * n * sizeof(double)), *Z = malloc(n * sizeof(double)),
         *q = malloc(n * sizeof(double));
  int32_t *ent = malloc(n * sizeof(int32_t)), *tim = malloc(n * sizeof(int32_t));
  for (size_t t = 0; t < n; t++) {
    y[t] = sp_frame_column(f, "i")->num[t];
    for (int j = 0; j < 5; j++) X[5 * t + (size_t)j] = sp_frame_column(f, xn[j])->num[t];
    Z[t] = sp_frame_column(f, "c1")->num[t];
    q[t] = sp_frame_column(f, "d1")->num[t];
    ent[t] = (int32_t)sp_frame_column(f, "id")->num[t] - 1;
    tim[t] = (int32_t)sp_frame_column(f, "year")->num[t];
  }
  sp_frame_free(f);
  sp_thr_data h = {.n = n, .k = 5, .m = 1, .y = y, .X = X, .ldx = 5, .Z = Z, .ldz = 1, .q = q, .entity = ent,
                   .N = 565, .time = tim};
  for (int nt = 1; nt <= 3; nt++) dump("hansen", &h, nt, 400, 60, 0);
  dump("hansen", &h, 2, 0, 25, 0);
  dump("hansen1999", &h, 2, 400, 25, 1);
  free(y); free(X); free(Z); free(q); free(ent); free(tim);

  panel a = synth(300, 6, 5, 1, 0, 0, 5);
  sp_thr_data d = view(&a, 1);
  dump("unbalanced m=1", &d, 1, 0, 40, 0);
  dump("unbalanced m=1", &d, 2, 0, 20, 0);
  d = view(&a, 2);
  dump("unbalanced m=2", &d, 1, 0, 40, 0);
  dump("unbalanced m=2", &d, 2, 100, 20, 0);
  drop(&a);
  a = synth(400, 8, 0, 0, 1, 37, 6);
  d = view(&a, 1);
  dump("ties and zeros m=1", &d, 1, 0, 40, 0);
  d = view(&a, 2);
  dump("ties and zeros m=2", &d, 2, 0, 20, 0);
  drop(&a);
  a = synth(6, 8, 0, 0, 0, 0, 7);
  d = view(&a, 1);
  dump("one group", &d, 1, 0, 40, 0);
  drop(&a);
  a = synth(10000, 10, 0, 0, 0, 0, 8);
  d = view(&a, 1);
  dump("n = 1e5", &d, 1, 0, 24, 0);
  drop(&a);
  return 0;
}
