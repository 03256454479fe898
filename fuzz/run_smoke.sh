#!/bin/sh
# Run every libFuzzer target of a build for a few seconds each, on a scratch
# copy of its seed corpus (fuzz/corpus/<name without fuzz_>/), and fail if any
# target finds a crash, leak or timeout.  Not part of ctest: it needs a clang
# build configured with -DSPILLOVER_FUZZ=ON.  The targets (every fuzz_*.c):
# csv (reader and write/read round trip), formula, scenario (YAML loading and
# scenario validation through the Lua layer) and statfile (.dta/.sav).
#   fuzz/run_smoke.sh <builddir> <seconds>
set -u
if [ $# -ne 2 ]; then
  echo "usage: $0 <builddir> <seconds-per-target>" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
secs=$2
here=$(cd "$(dirname "$0")" && pwd)
targets=$(find "$build" -maxdepth 2 -type f -name 'fuzz_*' -perm -u+x | sort)
if [ -z "$targets" ]; then
  echo "no fuzz_* executables under $build (configure with CC=clang -DSPILLOVER_FUZZ=ON)" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for exe in $targets; do
  name=$(basename "$exe")
  short=${name#fuzz_}
  corpus="$work/$short"
  mkdir -p "$corpus"
  if [ -d "$here/corpus/$short" ]; then cp "$here/corpus/$short"/* "$corpus"/ 2>/dev/null; fi
  log="$work/$name.log"
  if (cd "$work" && "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "$corpus" >"$log" 2>&1); then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    echo "ok   $name: ${runs:-?} runs in ${secs}s, no crash"
  else
    failed=1
    echo "FAIL $name: see the report below"
    grep -v '^#' "$log" | tail -40
    for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
      [ -e "$f" ] || continue
      mkdir -p "$here/../fuzz/corpus-crashes"
      cp "$f" "$here/../fuzz/corpus-crashes/$name-$(basename "$f")"
      echo "     reproducer kept in fuzz/corpus-crashes/$name-$(basename "$f")"
    done
  fi
done
exit $failed
