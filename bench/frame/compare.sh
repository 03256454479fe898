#!/bin/sh
# Frame operations side by side: spillover and R data.table (setDTthreads(1))
# on the same generated file, alternating process by process, RUNS processes
# each.  Every process reads the data (not timed), then runs each operation
# three times: "first" is its first run in that process, "warm" the best of
# the other two.  Prints min / median / max over the processes, wall clock and
# CPU seconds, the ratios data.table / spillover of the medians, each tool's
# peak RSS (/usr/bin/time -v; it includes reading the file), and whether the
# two tools' checksums agree.  Not part of the test suite.
#   bench/frame/compare.sh [BUILD_DIR] [ROWS] [RUNS]     (default: build 1e7 5)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
case $build in /*) ;; *) build=$root/$build ;; esac
rows=$(awk -v r="${2:-1e7}" 'BEGIN { printf "%d", r }')
runs=${3:-5}
data=$root/bench/data
mkdir -p "$data" "$root/bench/results"
csv=$data/frame_$rows.csv
lookup=$data/frame_lookup.csv
if [ ! -f "$csv" ] || [ ! -f "$lookup" ]; then
  cc -O2 -o "$data/gen_frame" "$here/gen.c"
  "$data/gen_frame" "$rows" "$csv" "$lookup"
fi
out=$root/bench/results/frame_$(date -u +%Y%m%dT%H%M%S).txt
tm=$(mktemp)
for r in $(seq 1 "$runs"); do
  for tool in spillover datatable; do
    if [ "$tool" = spillover ]; then
      /usr/bin/time -v -o "$tm" "$build/spillover" "$here/run_spillover.lua" "$csv" "$lookup" > "$tm.out"
    else
      /usr/bin/time -v -o "$tm" Rscript "$here/run_dt.R" "$csv" "$lookup" > "$tm.out"
    fi
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tm")
    sed "s/^/$tool run=$r rss_kb=$rss /" "$tm.out" | tee -a "$out"
  done
done
rm -f "$tm" "$tm.out"
echo "raw lines: $out"
awk '
function stats(key,   n, i, j, t, v) {
  n = cnt[key]
  for (i = 1; i <= n; i++) v[i] = val[key, i]
  for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
  lo[key] = v[1]; hi[key] = v[n]
  med[key] = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{
  tool = $1; op = $4
  if (!(op in seen)) { seen[op] = 1; ops[++nops] = op }
  for (f = 5; f <= NF; f++) {
    split($f, kv, "=")
    if (kv[1] == "check") { if (tool == "spillover") csp[op] = kv[2]; else cdt[op] = kv[2]; continue }
    key = tool SUBSEP op SUBSEP kv[1]
    val[key, ++cnt[key]] = kv[2]
  }
  split($3, kv, "="); if (!((tool, $2) in rseen)) { rseen[tool, $2] = 1; rk = tool SUBSEP "rss"; val[rk, ++cnt[rk]] = kv[2] * 1024 / 1e6 }  # KiB -> MB (1e6 bytes)
}
END {
  for (key in cnt) stats(key)
  split("first warm cpu_first cpu_warm", ms, " ")
  printf "%-14s %-10s %-26s %-26s %8s  %s\n", "operation", "measure", "spillover min/med/max s", "data.table min/med/max s", "dt/sp", "checksums"
  for (i = 1; i <= nops; i++) {
    op = ops[i]
    d = csp[op] - cdt[op]; if (d < 0) d = -d
    a = csp[op] < 0 ? -csp[op] : csp[op]
    agree = d <= 1e-8 * (a > 1 ? a : 1) ? "agree" : "DIFFER (" csp[op] " vs " cdt[op] ")"
    for (m = 1; m <= 4; m++) {
      s = "spillover" SUBSEP op SUBSEP ms[m]; t = "datatable" SUBSEP op SUBSEP ms[m]
      printf "%-14s %-10s %7.3f %7.3f %7.3f    %7.3f %7.3f %7.3f    %8.2f  %s\n", op, ms[m],
        lo[s], med[s], hi[s], lo[t], med[t], hi[t], med[t] / med[s], m == 1 ? agree : ""
    }
  }
  s = "spillover" SUBSEP "rss"; t = "datatable" SUBSEP "rss"
  printf "peak RSS MB (whole process)  spillover %.0f / %.0f / %.0f   data.table %.0f / %.0f / %.0f\n",
    lo[s], med[s], hi[s], lo[t], med[t], hi[t]
}' "$out"
