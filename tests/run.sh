#!/usr/bin/env bash
# The test command: installs what is missing, builds everything with ASan+UBSan,
# runs every unit and integration test, then builds the libFuzzer targets with
# clang and runs each for a bounded time. Exit status is non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash tests/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${TUNNEL_FUZZ_SECONDS:-20}

echo "== build (gcc, ASan+UBSan)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DTUNNEL_SANITIZE=ON -DTUNNEL_WERROR=ON >/dev/null
cmake --build build/asan -j "$jobs"

echo "== unit and integration tests"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build/asan --output-on-failure -j "$jobs" --resource-spec-file "$here/tests/resources.json"

if command -v clang >/dev/null 2>&1; then
  echo "== fuzz targets (clang libFuzzer, ${fuzz_seconds}s each)"
  CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DTUNNEL_FUZZ=ON -DTUNNEL_TESTS=OFF -DTUNNEL_WERROR=ON \
    -DTUNNEL_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
  cmake --build build/fuzz -j "$jobs"
  ctest --test-dir build/fuzz --output-on-failure -j "$jobs" -L fuzz
else
  echo "== clang not found: fuzz targets skipped"
fi
