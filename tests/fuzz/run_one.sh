#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on a scratch copy of its seed corpus,
# so new inputs it finds never dirty the repository. Any crash, leak or timeout fails.
set -euo pipefail
target=$1 seeds=$2 seconds=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
if [ -d "$seeds" ]; then cp -r "$seeds"/. "$work/corpus/"; fi
status=0
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/output.log" 2>&1 || status=$?
tail -n 20 "$work/output.log"
if [ "$status" -ne 0 ]; then
  echo "fuzz: $(basename "$target"): the sanitizer's report:"
  grep -E -A12 'runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$work/output.log" | head -n 60
fi
if ls "$work/artifacts"/* >/dev/null 2>&1; then
  echo "fuzz: $(basename "$target"): crashing inputs:"; ls -l "$work/artifacts"
  for f in "$work/artifacts"/*; do echo "--- $f"; od -A x -t x1z "$f" | head -20; done
  exit 1
fi
exit "$status"
