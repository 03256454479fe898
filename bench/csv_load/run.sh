#!/bin/sh
# CSV load benchmark: spillover's sp.read_csv against R's data.table::fread
# (1 thread) on the same file, in one run.  Not part of the test suite.
#   bench/csv_load/run.sh [ROWS] [BUILD_DIR] [RUNS]   (default 1e7 rows, build/, 5 runs)
# The data go to bench/data/ (git-ignored); they are generated once.
# Each run starts both readers in fresh processes, alternating, so every
# load timed is a first load (fresh column buffers); each process then loads
# the file a second time ("warm").  Times are wall clock (the file is in the
# page cache for all of them); peak RSS comes from /usr/bin/time -v.  Prints
# min / median / max and the ratio of the medians.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rows=${1:-10000000}
build=${2:-$root/build}
runs=${3:-5}
case $build in /*) ;; *) build=$root/$build ;; esac
rows=$(awk -v r="$rows" 'BEGIN { printf "%d", r }')
data=$root/bench/data
mkdir -p "$data"
csv=$data/numeric_${rows}x5.csv
if [ ! -f "$csv" ]; then
  cc -O2 -o "$data/gen" "$here/gen.c"
  "$data/gen" "$rows" "$csv"
fi
cat "$csv" > /dev/null  # into the page cache
size=$(stat -c %s "$csv")
echo "# $(date -u); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "file: $csv ($rows rows x 5 columns, $(awk -v s="$size" 'BEGIN { printf "%.0f", s / 1e6 }') MB)"

rec=$(mktemp)
timed() {  # timed <label> <cmd...>: "label first warm rss_MB" into $rec
  label=$1
  shift
  t=$(mktemp)
  "/usr/bin/time" -v "$@" > "$t.out" 2> "$t"
  echo "$label $(cat "$t.out") $(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 * 1024 / 1e6 }' "$t")" >> "$rec"  # KiB -> MB (1e6 bytes)
  rm -f "$t" "$t.out"
}
for r in $(seq "$runs"); do
  timed spillover "$build/spillover" -e "
    local now = sp.sys.now
    local a = now(); local d = sp.read_csv('$csv'); local c1 = now() - a
    assert(d:nrow() == $rows and d:ncol() == 5)
    d = nil; collectgarbage()
    a = now(); d = sp.read_csv('$csv'); local c2 = now() - a
    io.write(string.format('%.3f %.3f', c1, c2))"
  timed fread Rscript -e "
    suppressMessages(library(data.table)); setDTthreads(1)
    a <- system.time(d <- fread('$csv'))[['elapsed']]; stopifnot(nrow(d) == $rows); rm(d); invisible(gc())
    b <- system.time(d <- fread('$csv'))[['elapsed']]
    cat(sprintf('%.3f %.3f', a, b))"
done
awk '
  function med(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { n[$1]++; k = n[$1]; f[$1, k] = $2; w[$1, k] = $3; m[$1, k] = $4 }
  END {
    printf "%-30s %-22s %-22s %s\n", "reader (1 thread)", "first load min/med/max", "warm min/med/max", "peak RSS MB"
    split("spillover fread", R, " ")
    for (i = 1; i <= 2; i++) {
      r = R[i]; c = n[r]
      for (k = 1; k <= c; k++) { a[k] = f[r, k]; b[k] = w[r, k]; d[k] = m[r, k] }
      mf[r] = med(a, c); mw[r] = med(b, c)
      printf "%-30s %.3f/%.3f/%.3f    %.3f/%.3f/%.3f    %.0f\n", r == "fread" ? "data.table::fread" : "spillover sp.read_csv",
        a[1], mf[r], a[c], b[1], mw[r], b[c], med(d, c)
    }
    printf "fread / spillover, medians: first load %.2f, warm %.2f (> 1: spillover faster)\n",
      mf["fread"] / mf["spillover"], mw["fread"] / mw["spillover"]
  }' "$rec"
rm -f "$rec"
