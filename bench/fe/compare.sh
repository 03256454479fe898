#!/bin/sh
# Side-by-side: spillover, plm and pandas+statsmodels on the same generated
# panels, estimation only; prints each tool's seconds and the ratios.
#   bench/fe/compare.sh build [sizes...]     (default sizes: 1e5 1e6 1e7)
# plm at 1e7 takes minutes (about 94 s in shared/PERFORMANCE.md): set PLM_1E7=1 to run it.
set -eu
build=${1:-build}
shift || true
sizes=${*:-"1e5 1e6 1e7"}
[ -x "$build/gen_panel" ] || bench/fe/build.sh "$build"
mkdir -p bench/data
for s in $sizes; do
  n=$(printf '%.0f' "$s")
  f=bench/data/panel_$n.csv
  [ -f "$f" ] || "$build/gen_panel" "$s" >/dev/null
  out=$(mktemp)
  "$build/spillover" bench/fe/run_spillover.lua "$f" | tee "$out"
  sp=$(awk '/2fe iid 1thr/ { for (i=1;i<=NF;i++) if ($i ~ /^warm=/) { sub("warm=","",$i); print $i } }' "$out")
  if [ "$n" -lt 10000000 ] || [ "${PLM_1E7:-0}" = 1 ]; then
    r=$(Rscript bench/fe/run_r.R "$f" | tee /dev/stderr | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
  else
    r=""
  fi
  py=$(/usr/bin/python3 bench/fe/run_py.py "$f" | tee /dev/stderr | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
  awk -v n="$n" -v sp="$sp" -v r="$r" -v py="$py" 'BEGIN {
    printf "rows=%d  spillover 2-way (warm, 1 thread) %.3f s", n, sp
    if (r != "") printf " | plm %.2f s (%.0fx)", r, r / sp
    if (py != "") printf " | pandas+statsmodels %.2f s (%.0fx)", py, py / sp
    printf "\n" }'
  rm -f "$out"
done
