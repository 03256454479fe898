#!/bin/sh
# bench/gmm: sp.gmm against plm::pgmm on the same data (see README.md).
#   bench/gmm/run.sh [spillover executable]      (from the repository root)
set -e
EXE=${1:-build/spillover}
TMP=$(mktemp -d /tmp/sp-bench-gmm.XXXXXX)
"$EXE" bench/gmm/bench_gmm.lua "$TMP" | tee "$TMP/sp.out"
if command -v Rscript > /dev/null 2>&1 && Rscript -e 'library(plm)' > /dev/null 2>&1; then
  Rscript bench/gmm/bench_pgmm.R "$TMP" | tee "$TMP/r.out"
  awk '/^SPILLOVER_MS/ {s1 = $2; s2 = $3} /^PGMM_MS/ {r1 = $2; r2 = $3}
    END {printf "pgmm / spillover: EmplUK %.1fx, synthetic %.1fx\n", r1 / s1, r2 / s2}' "$TMP/sp.out" "$TMP/r.out"
else
  echo "R with plm not found (apt-get install r-cran-plm): no pgmm comparison"
fi
rm -rf "$TMP"
