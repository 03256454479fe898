#!/bin/sh
# Build the threshold benchmark against the core library of a build directory.
#   bench/threshold/build.sh [builddir]     (default build; run from the repo root)
set -e
B=${1:-build}
cmake --build "$B" -j1 --target spillover_core
CC=${CC:-cc}
$CC -O2 -std=c11 -Iengine/include -o "$B/bench_threshold" bench/threshold/bench_threshold.c "$B/libspillover_core.a" \
  -lgsl -lopenblas -llapacke -lreadstat -lm -lpthread
echo "built $B/bench_threshold"
