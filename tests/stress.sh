#!/usr/bin/env bash
# tests/stress.sh [N]: runs the integration tests N times (default 3) on a machine made busy on purpose, the way
# CI's shared 2-core runner is: two busy loops take the cores for the whole run, and the tests run in parallel
# (-j2, heavy ones included) with the same scheduling as the test command. Prints a line per run and, for every
# failure, the test's own output; exits non-zero if any test failed in any run.
#
# Uses the ASan build of tests/run.sh (build/asan), configuring and building it if needed; run tests/run.sh (or
# tests/install-deps.sh) once first on a fresh machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
runs=${1:-3}
case $runs in ''|*[!0-9]*) echo "usage: tests/stress.sh [N]" >&2; exit 2 ;; esac

cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DTUNNEL_SANITIZE=ON >/dev/null
cmake --build build/asan -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

out=$(mktemp -d /tmp/tunnel-stress.XXXXXX)
busy=()
stop_busy() { [ "${#busy[@]}" = 0 ] || kill "${busy[@]}" 2>/dev/null || true; }
trap stop_busy EXIT
trap 'exit 130' INT TERM
for _ in 1 2; do
  bash -c 'while :; do :; done' &
  busy+=("$!")
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failures=0
summary=()
for run in $(seq 1 "$runs"); do
  log="$out/run$run.log"
  t0=$(date +%s)
  status=0
  ctest --test-dir build/asan -L integration -j 2 --resource-spec-file "$here/tests/resources.json" --output-on-failure \
    >"$log" 2>&1 || status=$?
  secs=$(( $(date +%s) - t0 ))
  failed=$(sed -n '/The following tests FAILED:/,$p' "$log" | grep -oE 'integration\.[A-Za-z0-9_]+' | sort -u || true)
  n_failed=$(grep -c . <<<"$failed" || true)
  total=$(grep -oE 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  line="run $run: $((total - n_failed))/$total passed in ${secs}s"
  [ -z "$failed" ] || line="$line; failed: $(tr '\n' ' ' <<<"$failed")"
  [ "$status" = 0 ] || [ -n "$failed" ] || line="$line; ctest exited $status (see $log)"
  echo "$line"
  summary+=("$line")
  if [ -n "$failed" ] || [ "$status" != 0 ]; then
    failures=$((failures + 1))
    for t in $failed; do
      echo "----- run $run, $t: its output"
      # The failed test's block: from its result line to the next test's start or result line.
      awk -v t="$t" '
        index($0, " " t " ") && /\*\*\*|Failed|Timeout/ { on = 1; print; next }
        on && /^ *(Start +[0-9]+:|[0-9]+\/[0-9]+ Test +#)/ { on = 0 }
        on { print }' "$log" | tail -n 120
    done
  fi
done
stop_busy
echo "== stress: $runs runs with two busy loops on the cores"
printf '%s\n' "${summary[@]}"
if [ "$failures" != 0 ]; then
  echo "== $failures of $runs runs had failures; full logs in $out"
  exit 1
fi
rm -rf "$out"
echo "== all runs passed"
