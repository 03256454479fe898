#!/bin/sh
# The distributed fixed-effects fit at np = 1 and 2 (bench/mpi/README.md).
#   bench/mpi/run.sh BUILD_MPI [ROWS] [RUNS]    (run from the repo root; BUILD_MPI
#   is a build directory configured with -DSPILLOVER_MPI=ON)
set -eu
B=${1:?build directory with -DSPILLOVER_MPI=ON}
N=${2:-1000000}
RUNS=${3:-5}
W=$(mktemp -d /tmp/spillover-bench-mpi.XXXXXX)
trap 'rm -rf "$W"' EXIT
cc -O2 -std=c11 -o "$W/gen_panel" bench/fe/gen_panel.c -lm
"$W/gen_panel" "$N" "$W" >/dev/null
csv="$W/panel_$N.csv"
# whole entities per part: id modulo the number of ranks
for k in 1 2; do
  for r in $(seq 0 $((k - 1))); do
    awk -F, -v k="$k" -v r="$r" 'NR == 1 || ($1 % k) == r' "$csv" > "$W/part_${k}_${r}.csv"
  done
done
for i in $(seq 1 "$RUNS"); do
  for k in 1 2; do
    mpirun --allow-run-as-root --oversubscribe -np "$k" "$B/spillover" bench/mpi/fit.lua "$W"
  done
done
