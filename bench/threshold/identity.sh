#!/bin/sh
# Compare every bootstrap result of two cores bit for bit (see identity.c).
#   bench/threshold/identity.sh OLD_BUILD NEW_BUILD    (from the repository root)
set -e
CC=${CC:-cc}
for B in "$1" "$2"; do
  $CC -O2 -std=c11 -Iengine/include -o "$B/threshold_identity" bench/threshold/identity.c "$B/libspillover_core.a" \
    -lgsl -lopenblas -llapacke -lreadstat -lm -lpthread
  "$B/threshold_identity" > "$B/threshold_identity.txt"
done
if cmp -s "$1/threshold_identity.txt" "$2/threshold_identity.txt"; then
  echo "identical: $(grep -c status "$2/threshold_identity.txt") fits, $(grep -c '^  ' "$2/threshold_identity.txt") bootstrap F*"
else
  echo "DIFFERENT:"; diff "$1/threshold_identity.txt" "$2/threshold_identity.txt" | head -20; exit 1
fi
