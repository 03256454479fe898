#!/bin/sh
# A specification curve whose cells are the work: 48 two-way and one-way FE
# fits on a synthetic panel of ROWS rows (bench/fe/gen_panel.c), run whole and
# with -j N by bench/parts/run.sh.
# usage: bench/parts/curve.sh BUILDDIR [ROWS=200000] [N=2] [R=3]   (from the repository root)
set -eu
B=$1 rows=${2:-200000} n=${3:-2} reps=${4:-3}
cc -O2 -std=c11 -o "$B/gen_panel" bench/fe/gen_panel.c -lm
dir=$(mktemp -d /tmp/sp-bench-curve.XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$B/gen_panel" "$rows" "$dir" >/dev/null
cat >"$dir/curve.yaml" <<YAML
name: curve
seed: 1
data: {file: panel_$rows.csv, entity: id, time: time}
derive:
  x1sq: I(x1^2)
models:
  fe: {estimator: ols, formula: y ~ x1 + x2 | id + time}
spec_curve:
  outcomes: [y]
  treatments: [x1]
  controls: {none: [], x2: [x2], square: [x1sq], both: [x2, x1sq]}
  fe: {two-way: [id, time], three-way: [id, time, k], entity: [id]}
  samples: {all: true, early: "time <= 50"}
  vcov: {cluster: {cluster: id}, hc1: hc1}
report:
  formats: [md, csv]
YAML
sh bench/parts/run.sh "$B/spillover" "$dir/curve.yaml" "$n" "$reps"
