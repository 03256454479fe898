#!/bin/sh
# CSV load benchmark: spillover's sp.read_csv against R's data.table::fread
# and read.csv on the same file, in one run.  Not part of the test suite.
#   bench/csv_load/run.sh [ROWS] [BUILD_DIR]     (default 1e7 rows, build/)
# The data go to bench/data/ (git-ignored); they are generated once.
# Every reader runs twice: "cold" is its first run in a fresh process, "warm"
# the second in the same process (read.csv runs once: it is slow).  The file
# is in the page cache for all of them (it was just written or read).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rows=${1:-10000000}
build=${2:-$root/build}
case $build in /*) ;; *) build=$root/$build ;; esac
rows=$(awk -v r="$rows" 'BEGIN { printf "%d", r }')
data=$root/bench/data
mkdir -p "$data"
csv=$data/numeric_${rows}x5.csv
if [ ! -f "$csv" ]; then
  cc -O2 -o "$data/gen" "$here/gen.c"
  "$data/gen" "$rows" "$csv"
fi
size=$(stat -c %s "$csv")
echo "file: $csv ($rows rows x 5 columns, $(awk -v s="$size" 'BEGIN { printf "%.0f", s / 1e6 }') MB)"

sp_t=$("$build/spillover" -e "
  local function t(f) local a = os.clock(); local d = f(); return os.clock() - a, d end
  local c1, d = t(function() return sp.read_csv('$csv') end)
  assert(d:nrow() == $rows and d:ncol() == 5)
  d = nil; collectgarbage()
  local c2 = t(function() return sp.read_csv('$csv') end)
  io.write(string.format('%.3f %.3f', c1, c2))")
r_t=$(Rscript -e "
  suppressMessages(library(data.table)); setDTthreads(1)
  a <- system.time(d <- fread('$csv'))[['elapsed']]; stopifnot(nrow(d) == $rows); rm(d); invisible(gc())
  b <- system.time(d <- fread('$csv'))[['elapsed']]; rm(d); invisible(gc())
  setDTthreads(0)
  c <- system.time(d <- fread('$csv'))[['elapsed']]; rm(d); invisible(gc())
  e <- system.time(d <- read.csv('$csv'))[['elapsed']]
  cat(sprintf('%.3f %.3f %.3f %.3f', a, b, c, e))")
echo "$sp_t $r_t" | awk '{
  printf "%-34s %8s %8s %10s\n", "reader", "cold s", "warm s", "fread/x"
  printf "%-34s %8.3f %8.3f %10.2f\n", "spillover sp.read_csv (1 thread)", $1, $2, $4 / $2
  printf "%-34s %8.3f %8.3f %10.2f\n", "data.table::fread (1 thread)", $3, $4, 1
  printf "%-34s %8s %8.3f %10.2f\n", "data.table::fread (all threads)", "-", $5, $4 / $5
  printf "%-34s %8s %8.3f %10.2f\n", "read.csv", "-", $6, $4 / $6
  printf "spillover is %.2fx faster than fread (1 thread, warm) and %.1fx faster than read.csv\n", $4 / $2, $6 / $2
}'
