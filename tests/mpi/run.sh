#!/bin/sh
# The MPI test: test_mpi.lua as one process writes its reference results,
# then under mpirun -np 2 every rank compares with them (tests/lua/test_mpi.lua);
# then a bundled scenario's results.json, one process against two.
# usage: run.sh SPILLOVER MPIEXEC
set -eu
exe=$1 mpiexec=$2
ref=$(mktemp /tmp/spillover-mpi-ref.XXXXXX)
out=$(mktemp -d /tmp/spillover-mpi-run.XXXXXX)
trap 'rm -f "$ref" "$ref.curve" "$ref.boot"; rm -rf "$out"' EXIT
"$exe" tests/lua/test_mpi.lua "$ref"
# --allow-run-as-root: CI runs as root; --oversubscribe: the test asks for 2
# ranks whatever the machine's slots
"$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$exe" tests/lua/test_mpi.lua "$ref"

# A bundled scenario with parameter draws and a cluster bootstrap: its draws
# split over 2 ranks give the one process's results.json, byte for byte
# (every rank writes the same folder, one after the other under its lock).
set -- run scenarios/ppml_example.yaml -q --set experiments.pcap_draws.draws=40 \
  --set experiments.pcap_bootstrap.bootstrap=8
"$exe" "$@" -o "$out/one"
"$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$exe" "$@" -o "$out/two"
if cmp -s "$out/one/results.json" "$out/two/results.json"; then
  echo "PASS ppml_example on 2 processes: the one process's results.json"
else
  echo "FAIL ppml_example on 2 processes: results.json differs from the one process's"
  exit 1
fi
