#!/usr/bin/env bash
# PipeHighWater bounds what a pipe holds of a socket's bytes that the link cannot take. An internet user uploads
# into a tunnel whose backend never reads; tunnelc's window (MaxWindow = the initial 256 KiB, so it cannot grow)
# soon closes and tunneld's pipe keeps what it reads. With PipeHighWater at its maximum (64 MiB) tunneld goes on
# reading the user's 48 MiB; with 16 KiB it stops, the user's TCP window closes and the upload stalls with only
# the window, the mark and what the kernel buffers between tunnelc and the backend taken from the user
# (tunneld's "BytesIn" for the client counts what it read from the users).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

MIB=$((1024 * 1024))
UPLOAD=$((48 * MIB))
limits() { echo "${FAST_LIMITS%\}}, \"PipeHighWater\": $1, \"PipeLowWater\": $2}"; }

bytes_in() { api GET /clients && json_get "$API_BODY" 'd["home1"]["BytesIn"]'; }
bytes_in_at_least() { local n; n=$(bytes_in) && [ "$n" -ge "$1" ]; }
pushed() { [ -s "$TEST_TMP/push$1.out" ]; }

make_pki
start_tunneld "$(limits 67108864 65536)"
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port)
spawn backend $NET never-read "$BACKEND_PORT"
wait_port "$BACKEND_PORT"
start_tunnelc home1 "[$BACKEND_PORT]" '{}' "${FAST_CLIENT_LIMITS%\}}, \"MaxWindow\": 262144}"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"

# 1. A high mark: tunneld reads (and holds) nearly all of the upload although nothing reaches the backend.
spawn push1 $NET push "$PUBLIC_PORT" "$UPLOAD" "$TEST_TMP/push1.out"
push1=$SPAWNED_PID
wait_until 120 bytes_in_at_least $((40 * MIB)) || fail "PipeHighWater 64 MiB: tunneld read only $(bytes_in) bytes of a 48 MiB upload"
high=$(bytes_in)
kill "$push1" 2>/dev/null; wait "$push1" 2>/dev/null || true

# 2. A low mark: tunneld stops reading the user; the upload stalls far below it.
stop_checked tunneld
start_tunneld "$(limits 16384 0)"
wait_client_connected home1
wait_port "$PUBLIC_PORT"
before=$(bytes_in)
spawn push2 $NET push "$PUBLIC_PORT" "$UPLOAD" "$TEST_TMP/push2.out"
wait_until 120 pushed 2 || fail "the second upload neither finished nor stalled"
result=$(cat "$TEST_TMP/push2.out")
[ "${result%% *}" = stalled ] || fail "PipeHighWater 16 KiB: the whole upload went through ($result)"
low=$(( $(bytes_in) - before ))
echo "bytes tunneld read from a user whose tunnel's backend never reads: $high (PipeHighWater 64 MiB), $low (16 KiB)"
# Window 256 KiB + mark 16 KiB + one 64 KiB read + tunnelc's socket send buffer (at most 4 MiB by default).
[ "$low" -le $((12 * MIB)) ] || fail "PipeHighWater 16 KiB: tunneld read $low bytes from a stalled user"

stop_checked home1 tunneld
pass "PipeHighWater bounds what tunneld reads ahead of a closed window ($high vs $low bytes)"
