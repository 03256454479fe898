#!/bin/sh
# The MPI test: test_mpi.lua as one process writes its reference results,
# then under mpirun -np 2 every rank compares with them (tests/lua/test_mpi.lua).
# usage: run.sh SPILLOVER MPIEXEC
set -eu
exe=$1 mpiexec=$2
ref=$(mktemp /tmp/spillover-mpi-ref.XXXXXX)
trap 'rm -f "$ref" "$ref.curve"' EXIT
"$exe" tests/lua/test_mpi.lua "$ref"
# --allow-run-as-root: CI runs as root; --oversubscribe: the test asks for 2
# ranks whatever the machine's slots
"$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$exe" tests/lua/test_mpi.lua "$ref"
