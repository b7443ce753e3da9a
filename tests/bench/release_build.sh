# tests/bench/release_build.sh: sourced by the benchmark scripts (from the tree's root). bench_build TARGET...
# builds those targets in a Release tree without sanitizers (build/bench) and exports TUNNELD and TUNNELC from it.
bench_build() {
  echo "== build (Release, no sanitizers) in build/bench"
  cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DTUNNEL_SANITIZE=OFF -DTUNNEL_FUZZ=OFF -DTUNNEL_TESTS=ON \
    >/dev/null
  cmake --build build/bench -j "$(nproc 2>/dev/null || echo 2)" --target "$@" >/dev/null
  export TUNNELD="$PWD/build/bench/server/tunneld" TUNNELC="$PWD/build/bench/client/tunnelc"
}
