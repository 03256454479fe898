#!/bin/sh
# bench/spatial/compare.sh [reps]: spillover against R (spdep, spatialreg) on
# spatial weights and the spatial Durbin model, in one run, alternating.
# From the repository root; SPILLOVER names the executable (a Release build;
# default build/spillover).  R runs with OPENBLAS_NUM_THREADS=1, as
# spillover's LAPACK calls do.  Writes bench/results/spatial/ and prints the
# table of bench/spatial/summary.lua.
#   1. kNN (k = 6) and distance-band (radius 0.01) weights on 30,000 random
#      points: spillover `reps` times, spdep R_WEIGHT_REPS times (default 1:
#      about a minute of CPU each).
#   2. The SDM on 3,000 units (sdm.lua / sdm.R): each process fits twice,
#      the first fit being the first in a fresh process; `reps` pairs.
set -eu
cd "$(dirname "$0")/../.."
SP=${SPILLOVER:-build/spillover}
REPS=${1:-5}
RW=${R_WEIGHT_REPS:-1}
OUT=bench/results/spatial
rm -rf "$OUT"
mkdir -p "$OUT"
export OPENBLAS_NUM_THREADS=1
timed() { out=$1; shift; /usr/bin/time -v -o "$out.time" "$@" > "$out.txt"; }

"$SP" bench/spatial/sdm.lua gen 3000
for r in $(seq "$REPS"); do
  timed "$OUT/sp_weights_$r" "$SP" bench/spatial/weights.lua 30000 6 0.01
  if [ "$r" -le "$RW" ]; then timed "$OUT/r_weights_$r" Rscript bench/spatial/weights.R 30000 6 0.01; fi
done
for r in $(seq "$REPS"); do
  timed "$OUT/sp_sdm_$r" "$SP" bench/spatial/sdm.lua fit 3000 2
  timed "$OUT/r_sdm_$r" Rscript bench/spatial/sdm.R 3000 2
done
"$SP" bench/spatial/summary.lua "$OUT" "$REPS"
