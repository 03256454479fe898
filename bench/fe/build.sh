#!/bin/sh
# Build the benchmark programs against the core library of a build directory.
#   bench/fe/build.sh [builddir]     (default build; run from the repo root)
set -e
B=${1:-build}
cmake --build "$B" -j1 --target spillover_core
CC=${CC:-cc}
$CC -O2 -std=c11 -o "$B/gen_panel" bench/fe/gen_panel.c -lm
$CC -O2 -std=c11 -Iengine/include -o "$B/bench_demean" bench/fe/bench_demean.c "$B/libspillover_core.a" -lm -lpthread
echo "built $B/gen_panel $B/bench_demean"
