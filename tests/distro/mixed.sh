#!/usr/bin/env bash
# Mixed versions: tunneld from one build and tunnelc from another (the host's build and the one
# inside a distro root, each way round, and the root's against itself) carry HTTP end to end, and
# both logs name the TLS version negotiated: TLSv1.3 when both builds have it (mbedTLS 3.x), TLSv1.2
# otherwise. Run by tests/distro/run.sh, which mounts the root (sharing the host's /tmp and network)
# and sets DISTRO_ROOT (the root's path) and DISTRO_TREE (the tree's path inside it).
#   mixed.sh                   every pairing
#   mixed.sh SERVER CLIENT     one pairing; each of host|guest
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${DISTRO_ROOT:?DISTRO_ROOT must name the distro root}"
: "${DISTRO_TREE:?DISTRO_TREE must name the tree inside the root}"

if [ $# -eq 0 ]; then
  if [ ! -x "$here/build/asan/server/tunneld" ] || [ ! -x "$here/build/asan/client/tunnelc" ]; then
    cmake -S "$here" -B "$here/build/asan" -DCMAKE_BUILD_TYPE=Debug -DTUNNEL_SANITIZE=ON -DTUNNEL_WERROR=ON >/dev/null
    cmake --build "$here/build/asan" -j "$(nproc)" >/dev/null
  fi
  for pair in "guest host" "host guest" "guest guest"; do
    # shellcheck disable=SC2086
    bash "${BASH_SOURCE[0]}" $pair
  done
  exit 0
fi

server_side=$1 client_side=$2
# Whether a build speaks TLS 1.3: the mbedTLS it was built against has it.
has_tls13() { # SYSROOT ("" for the host)
  local cfg="$1/usr/include/mbedtls/mbedtls_config.h"
  [ -f "$cfg" ] && grep -q '^#define MBEDTLS_SSL_PROTO_TLS1_3' "$cfg"
}
mbedtls_of() { # SYSROOT
  grep -hoE 'MBEDTLS_VERSION_STRING +"[0-9.]+"' "$1/usr/include/mbedtls/build_info.h" \
    "$1/usr/include/mbedtls/version.h" 2>/dev/null | head -n1 | grep -oE '[0-9.]+'
}
sysroot() { [ "$1" = guest ] && echo "$DISTRO_ROOT" || echo ""; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
source "$here/tests/integration/lib.sh"
TEST_NAME="mixed-$server_side-tunneld-$client_side-tunnelc"

# Wrappers under /tmp, which both sides see at the same path; a guest binary runs chrooted (same pid).
wrap=$TEST_TMP/wrap
mkdir -p "$wrap"
for prog in server/tunneld client/tunnelc; do
  name=$(basename "$prog")
  printf '#!/bin/sh\nexec "%s/build/asan/%s" "$@"\n' "$here" "$prog" >"$wrap/$name-host"
  printf '#!/bin/sh\nexec chroot "%s" "%s/build/asan/%s" "$@"\n' "$DISTRO_ROOT" "$DISTRO_TREE" "$prog" >"$wrap/$name-guest"
  chmod +x "$wrap/$name-host" "$wrap/$name-guest"
done
TUNNELD=$wrap/tunneld-$server_side TUNNELC=$wrap/tunnelc-$client_side
source "$here/tests/integration/fixture.sh"

want=TLSv1.2
if has_tls13 "$(sysroot "$server_side")" && has_tls13 "$(sysroot "$client_side")"; then want=TLSv1.3; fi
echo "== tunneld: $server_side build (mbedTLS $(mbedtls_of "$(sysroot "$server_side")")), tunnelc: $client_side build" \
  "(mbedTLS $(mbedtls_of "$(sysroot "$client_side")")); expecting $want"

make_pki
start_tunneld
BACKEND_PORT=$(free_port)
PUBLIC_PORT=$(free_port)
mkdir -p "$TEST_TMP/www"
echo "hello across versions" >"$TEST_TMP/www/index.html"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$TEST_TMP/www/big.bin"
start_nginx backend "$TEST_TMP/www" "$BACKEND_PORT"

start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"

body=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/index.html")
[ "$body" = "hello across versions" ] || fail "page through the tunnel: got '$body'"
got=$(curl -sS --max-time 60 "http://127.0.0.1:$PUBLIC_PORT/big.bin" | sha256sum | cut -d' ' -f1)
[ "$got" = "$(sha256sum <"$TEST_TMP/www/big.bin" | cut -d' ' -f1)" ] || fail "4 MiB download checksum mismatch"

grep -qE "client home1: connected from .* over $want\$" "$TEST_TMP/tunneld.log" ||
  fail "tunneld's log does not say $want: $(grep 'client home1: connected from' "$TEST_TMP/tunneld.log" || true)"
grep -qE "client home1: connected to .* over $want\$" "$TEST_TMP/tunnelc-home1.log" ||
  fail "tunnelc's log does not say $want: $(grep 'client home1: connected to' "$TEST_TMP/tunnelc-home1.log" || true)"
pass "$server_side tunneld and $client_side tunnelc carry HTTP over $want"
