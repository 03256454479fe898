#!/bin/sh
# Side by side on the same generated panels: spillover (one-, two- and
# three-way FE, two-way with clustered SEs on 1 and 2 threads), plm (two-way
# within; sizes below 1e7 only, it takes minutes at 1e7) and pandas +
# statsmodels (two-way within + OLS), and the one-sweep bandwidth bound of
# bench_demean's stream kernel.  Every program runs RUNS times, alternating
# (run 1 of each, then run 2 of each, ...), each run in a fresh process
# under /usr/bin/time -v for its peak RSS.  Prints min / median / max per
# measure and the ratios of the medians.
#   bench/fe/compare.sh [build] [runs] [sizes...]     (defaults: build 5 "1e6 1e7")
#   bench/fe/compare.sh --summary bench/results/fe_<date>.txt   (the summary of saved records)
# BEFORE=<build dir of an older commit> adds its spillover's two-way fit to
# every run (label before_2fe, the same run_spillover.lua), so a change is
# measured against the old code in the same run; PANDAS=0 leaves pandas out.
# Raw records go to bench/results/fe_<date>.txt (git-ignored).
set -eu
summary() {  # summary <records file>
  echo "# summary (min / median / max over the runs; seconds unless named)"
  # records only: the summary appended to the same file is not read again
  awk 'NF == 4 && $1 ~ /^[0-9]+$/' "$1" | sort -k1,1n -k2,2 -k3,3 -k4,4g | awk '
  function flush() {
    if (key == "") return
    m = c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    med[key] = m
    printf "%-10s %-12s %-14s %10.4g %10.4g %10.4g\n", ks, kl, km, v[1], m, v[c]
    order[++no] = key
  }
  { k = $1 " " $2 " " $3
    if (k != key) { flush(); key = k; ks = $1; kl = $2; km = $3; c = 0 }
    v[++c] = $4 }
  END {
    flush()
    print ""
    print "ratios of medians, same run:"
    for (i = 1; i <= no; i++) { split(order[i], a, " "); sz[a[1]] = 1 }
    for (s in sz) {
      b = med[s " stream one_sweep_bound_s"]
      f2 = med[s " sp_2fe first"]; w2 = med[s " sp_2fe warm"]
      c2 = med[s " sp_2fe first_cpu"]; cw2 = med[s " sp_2fe warm_cpu"]
      printf "rows=%s  bound %.4f s (bandwidth %.1f GB/s)\n", s, b, med[s " stream bandwidth_GBs"]
      printf "rows=%s  2-way+cluster first fit %.3f s wall = %.1fx bound (CPU %.3f s = %.1fx), warm %.3f s = %.1fx bound (CPU %.3f s)\n",
        s, f2, f2 / b, c2, c2 / b, w2, w2 / b, cw2
      printf "rows=%s  first / warm: wall %.2f, CPU %.2f\n", s, f2 / w2, c2 / cw2
      printf "rows=%s  1-way first %.3f s wall, CPU %.3f s (%.2fx 2-way CPU) | 3-way first %.3f s wall, CPU %.3f s\n",
        s, med[s " sp_1fe first"], med[s " sp_1fe first_cpu"], med[s " sp_1fe first_cpu"] / c2,
        med[s " sp_3fe first"], med[s " sp_3fe first_cpu"]
      printf "rows=%s  2 threads: 2-way first fit %.3f s wall (speed-up %.2fx), warm %.3f s (speed-up %.2fx)\n",
        s, med[s " sp_2fe_2thr first"], f2 / med[s " sp_2fe_2thr first"], med[s " sp_2fe_2thr warm"],
        w2 / med[s " sp_2fe_2thr warm"]
      fr = med[s " sp_2fe frame_MB"]
      printf "rows=%s  peak RSS / frame (%.0f MB): 1-way %.2f, 2-way %.2f, 3-way %.2f", s, fr,
        med[s " sp_1fe peak_rss_MB"] / fr, med[s " sp_2fe peak_rss_MB"] / fr, med[s " sp_3fe peak_rss_MB"] / fr
      if ((s " pandas peak_rss_MB") in med) printf ", pandas %.2f", med[s " pandas peak_rss_MB"] / fr
      printf "\n"
      if ((s " before_2fe first") in med)
        printf "rows=%s  before (BEFORE build), 2-way+cluster: first %.3f s wall, CPU %.3f s, warm CPU %.3f s, peak RSS %.2f x frame\n",
          s, med[s " before_2fe first"], med[s " before_2fe first_cpu"], med[s " before_2fe warm_cpu"],
          med[s " before_2fe peak_rss_MB"] / fr
      if ((s " before_2fe_2thr first") in med)
        printf "rows=%s  before (BEFORE build), 2-way+cluster on 2 threads: first %.3f s wall, warm %.3f s wall\n",
          s, med[s " before_2fe_2thr first"], med[s " before_2fe_2thr warm"]
      if ((s " pandas seconds") in med)
        printf "rows=%s  pandas+statsmodels %.3f s wall = %.1fx spillover 2-way first fit; CPU %.3f s = %.1fx\n", s,
          med[s " pandas seconds"], med[s " pandas seconds"] / f2, med[s " pandas cpu_seconds"], med[s " pandas cpu_seconds"] / c2
      if ((s " plm seconds") in med)
        printf "rows=%s  plm %.3f s wall = %.1fx spillover 2-way first fit; CPU %.3f s = %.1fx\n", s,
          med[s " plm seconds"], med[s " plm seconds"] / f2, med[s " plm cpu_seconds"], med[s " plm cpu_seconds"] / c2
    }
  }'
}

if [ "${1:-}" = --summary ]; then
  summary "$2"
  exit
fi
build=${1:-build}
runs=${2:-5}
if [ $# -ge 2 ]; then shift 2; else shift $#; fi
sizes=${*:-"1e6 1e7"}
[ -x "$build/gen_panel" ] && [ -x "$build/bench_demean" ] || bench/fe/build.sh "$build"
mkdir -p bench/data bench/results
out=bench/results/fe_$(date -u +%Y%m%dT%H%M%S).txt
: > "$out"
echo "# $(date -u) $(nproc) CPUs, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"

# rec <label> <size> <cmd...>: run cmd under /usr/bin/time -v, record its
# key=value output and its peak RSS.
rec() {
  label=$1 size=$2
  shift 2
  tmp=$(mktemp)
  if /usr/bin/time -v "$@" > "$tmp.out" 2> "$tmp"; then
    # time -v reports KiB; MB here are 1e6 bytes, the unit of the frame's
    # size (frame_MB), so that peak RSS / frame compares like with like
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 * 1024 / 1e6 }' "$tmp")
    tr ' ' '\n' < "$tmp.out" | awk -F= -v l="$label" -v s="$size" -v r="$rss" '
      NF == 2 && $2 ~ /^[-0-9.eE+]+$/ { print s, l, $1, $2 }
      END { print s, l, "peak_rss_MB", r }' | tee -a "$out"
  else
    echo "$label failed:" >&2
    cat "$tmp" >&2
  fi
  rm -f "$tmp" "$tmp.out"
}

for s in $sizes; do
  n=$(printf '%.0f' "$s")
  f=bench/data/panel_$n.csv
  [ -f "$f" ] || "$build/gen_panel" "$s" >/dev/null
  for r in $(seq "$runs"); do
    rec stream "$n" "$build/bench_demean" --stream "$n"
    rec sp_1fe "$n" "$build/spillover" bench/fe/run_spillover.lua "$f" "y ~ x1 + x2 | id" id 1
    rec sp_2fe "$n" "$build/spillover" bench/fe/run_spillover.lua "$f" "y ~ x1 + x2 | id + time" id 1
    rec sp_2fe_2thr "$n" "$build/spillover" bench/fe/run_spillover.lua "$f" "y ~ x1 + x2 | id + time" id 2
    rec sp_3fe "$n" "$build/spillover" bench/fe/run_spillover.lua "$f" "y ~ x1 + x2 | id + time + k" id 1
    if [ -n "${BEFORE:-}" ]; then
      rec before_2fe "$n" "$BEFORE/spillover" bench/fe/run_spillover.lua "$f" "y ~ x1 + x2 | id + time" id 1
      rec before_2fe_2thr "$n" "$BEFORE/spillover" bench/fe/run_spillover.lua "$f" "y ~ x1 + x2 | id + time" id 2
    fi
    if [ "${PANDAS:-1}" != 0 ]; then rec pandas "$n" /usr/bin/python3 bench/fe/run_py.py "$f"; fi
    if [ "$n" -lt 10000000 ] || [ "${PLM_1E7:-0}" = 1 ]; then
      rec plm "$n" Rscript bench/fe/run_r.R "$f"
    fi
  done
done

summary "$out" | tee -a "$out"
echo "raw records: $out"
