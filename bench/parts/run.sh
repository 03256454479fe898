#!/bin/sh
# One run in parts (spillover.parts): a scenario run whole and with -j N,
# alternating, R times each; prints min / median / max wall seconds and the
# ratio of the medians, and checks that both outputs are the same.
# usage: bench/parts/run.sh SPILLOVER SCENARIO.yaml [N=2] [R=3]
set -eu
exe=$1 scen=$2 n=${3:-2} reps=${4:-3}
out=$(mktemp -d /tmp/sp-bench-parts.XXXXXX)
trap 'rm -rf "$out"' EXIT
now() { date +%s.%N; }
for r in $(seq "$reps"); do
  t0=$(now); "$exe" run "$scen" -q -o "$out/whole" ; t1=$(now)
  "$exe" run "$scen" -q -j "$n" -o "$out/parts"; t2=$(now)
  echo "$t1 - $t0" | bc >>"$out/whole.t"
  echo "$t2 - $t1" | bc >>"$out/parts.t"
done
diff -r -x manifest.json -x run.log "$out/whole" "$out/parts" >/dev/null || { echo "outputs differ" >&2; exit 1; }
stats() { sort -n "$1" | awk '{v[NR]=$1} END {printf "%.2f / %.2f / %.2f", v[1], v[int((NR+1)/2)], v[NR]}'; }
med() { sort -n "$1" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf '%s: whole %s s, -j %s %s s (min / median / max of %s), whole / parts %.2f; outputs identical\n' \
  "$(basename "$scen")" "$(stats "$out/whole.t")" "$n" "$(stats "$out/parts.t")" "$reps" \
  "$(echo "$(med "$out/whole.t") / $(med "$out/parts.t")" | bc -l)"
