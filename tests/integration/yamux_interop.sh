#!/usr/bin/env bash
# yamux_interop.sh: tn_mux (tools/mux_peer) against an independent yamux, Debian's
# hashicorp/yamux (tests/interop/yamux_peer), over loopback TCP in both roles.
# Each pairing moves 8 concurrent echo streams of 8 MiB+ each way, checked byte by
# byte and by SHA-256, with half-close in all three shapes (FIN after the data and
# FIN back after the echo drains; a response sent only after the request's FIN; an
# upload into a stream the peer half-closed first), streams opened by the server
# (even ids) as well as the client, resets both ways, pings and GoAway.
# Both peers must exit 0.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

src=${TUNNEL_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
mux_peer=${TUNNEL_TOOLS:-${TUNNEL_BUILD_DIR:-$src/build}/tools}/mux_peer
gopath=/usr/share/gocode
[ -x "$mux_peer" ] || fail "$mux_peer not built (cmake --build <dir> --target mux_peer)"
command -v go >/dev/null || fail "go not found: apt-get install golang-go"
[ -d "$gopath/src/github.com/hashicorp/yamux" ] ||
  fail "hashicorp/yamux not found in $gopath: apt-get install golang-github-hashicorp-yamux-dev"

# GOPATH mode against the Debian package: no module download, no network, cache in TEST_TMP.
go_peer=$TEST_TMP/yamux_peer
if ! (cd "$src" && GO111MODULE=off GOPATH=$gopath GOCACHE="$TEST_TMP/gocache" GOFLAGS="" GOENV=off \
  GOPROXY=off go build -o "$go_peer" ./tests/interop/yamux_peer) >"$TEST_TMP/go-build.log" 2>&1; then
  cat "$TEST_TMP/go-build.log" >&2
  fail "building tests/interop/yamux_peer failed"
fi

# Per pairing the client opens 8 echo streams of >= 8 MiB (64 MiB each way), and
# both sides open 2 request-response and 2 upload streams of >= 1 MiB and 2 streams
# that end in a reset; the server also opens 64 small echo streams at once.
big=$((8 * 1024 * 1024))
aux=$((1024 * 1024 + 1))
small=$((16 * 1024 + 3))
timeout=40

# Both peers print their summary and PASS/FAIL; yamux logs protocol trouble it sees as [ERR].
check_logs() {
  local f
  for f in "$@"; do
    grep -q ': PASS$' "$f" || fail "$(basename "$f" .log) did not pass"
    if grep -q '\[ERR\]' "$f"; then
      grep '\[ERR\]' "$f" >&2
      fail "hashicorp/yamux reported errors in $(basename "$f")"
    fi
  done
}

# run_pairing NAME SERVER_CMD... -- CLIENT_CMD...: the server gets --listen PORT, the client --connect PORT.
run_pairing() {
  local name=$1; shift
  local server=() client=()
  while [ "$1" != "--" ]; do server+=("$1"); shift; done
  shift
  client=("$@")
  local port
  port=$(free_port)
  spawn "$name-server" "${server[@]}" --listen "$port"
  local server_pid=$SPAWNED_PID
  # The servers accept exactly one connection, so no wait_port probe: wait for their log line.
  wait_log "$TEST_TMP/$name-server.log" "listening on" 20
  local client_status=0 server_status=0
  "${client[@]}" --connect "$port" >"$TEST_TMP/$name-client.log" 2>&1 || client_status=$?
  # The server returns once the client closes the session (or at its own --timeout).
  wait "$server_pid" || server_status=$?
  grep -hE '(go|c) (client|server)\): [0-9]+/[0-9]+ echo' "$TEST_TMP/$name-client.log" "$TEST_TMP/$name-server.log" |
    sed 's/^/  /'
  if [ "$client_status" -ne 0 ] || [ "$server_status" -ne 0 ]; then
    echo "first problems reported:" >&2
    grep -h 'FAIL' "$TEST_TMP/$name-client.log" "$TEST_TMP/$name-server.log" | head -n 6 | sed 's/^/  /' >&2
  fi
  [ "$client_status" -eq 0 ] || fail "$name: client exited with status $client_status"
  [ "$server_status" -eq 0 ] || fail "$name: server exited with status $server_status"
  check_logs "$TEST_TMP/$name-client.log" "$TEST_TMP/$name-server.log"
}

echo "Go client (hashicorp/yamux, 256 KiB window) -> C server (tn_mux, windows auto-tuned):"
run_pairing go-to-c \
  "$mux_peer" --open-echo 64 --size "$small" --open-rr 2 --open-upload 2 --aux-size "$aux" --open-reset-self 2 \
  --accept-echo 8 --accept-rr 2 --accept-upload 2 --accept-reset-req 2 --pings 3 --seed 11 --timeout "$timeout" -- \
  "$go_peer" --open-echo 8 --size "$big" --open-rr 2 --open-upload 2 --aux-size "$aux" --open-reset-req 2 \
  --accept-echo 64 --accept-rr 2 --accept-upload 2 --accept-reset-self 2 --pings 3 --seed 22 --timeout "$timeout"

echo "C client (tn_mux, 256 KiB fixed window) -> Go server (hashicorp/yamux, 4 MiB window):"
run_pairing c-to-go \
  "$go_peer" --open-echo 64 --size "$small" --open-rr 2 --open-upload 2 --aux-size "$aux" --open-reset-req 2 \
  --accept-echo 8 --accept-rr 2 --accept-upload 2 --accept-reset-self 2 --pings 3 --window $((4 * 1024 * 1024)) \
  --seed 33 --timeout "$timeout" -- \
  "$mux_peer" --open-echo 8 --size "$big" --open-rr 2 --open-upload 2 --aux-size "$aux" --open-reset-self 2 \
  --accept-echo 64 --accept-rr 2 --accept-upload 2 --accept-reset-req 2 --pings 3 --window $((256 * 1024)) \
  --seed 44 --timeout "$timeout"

# hashicorp/yamux takes a stream id and sends its SYN in two steps, so opens racing
# each other put SYNs on the wire out of id order; the acceptor must take them.
# Rounds of 32 opens released together make that near certain. This is tunneld's
# direction: the server opens, tunnelc's tn_mux accepts.
echo "SYN burst: Go server opens 4 rounds of 32 streams at once -> C client accepts:"
run_pairing syn-burst \
  "$go_peer" --burst 32 --burst-rounds 4 --pings 1 --seed 55 --timeout "$timeout" -- \
  "$mux_peer" --accept-echo 128 --pings 1 --seed 66 --timeout "$timeout"

pass "tn_mux and hashicorp/yamux interoperate as client and server (echo, request-response and upload half-closes, resets, SYN bursts, pings, GoAway)"
