#!/usr/bin/env bash
# Real half-close both ways through tunneld and tunnelc:
#  1. the internet user sends a request and shuts down its write side; the backend reads to EOF and only then
#     answers (4 MiB); the full answer reaches the user after its half-close.
#  2. the backend sends a greeting and shuts down its write side first; the user reads to EOF, then keeps
#     sending (4 MiB) and closes; the backend receives every byte.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

make_pki
start_tunneld
EOF_PORT=$(free_port); GREET_PORT=$(free_port); P_EOF=$(free_port); P_GREET=$(free_port)
spawn eof-backend $NET eof-then-answer "$EOF_PORT" $((4 * 1024 * 1024))
wait_port "$EOF_PORT"
start_tunnelc home1 "[$EOF_PORT, $GREET_PORT]"
wait_client_connected home1
put_tunnels "[
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_EOF, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $EOF_PORT},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_GREET, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $GREET_PORT}]"
wait_port "$P_EOF"

# 1. User half-closes first (small and large requests).
for req in 100 $((1024 * 1024)); do
  t0=$(now_ms)
  out=$($NET half-close-user "$P_EOF" "$req" $((4 * 1024 * 1024))) || fail "user half-close, $req-byte request: $out"
  echo "user half-closed after a $req-byte request: $out in $(( $(now_ms) - t0 )) ms"
done

# 2. Backend half-closes first; the user goes on sending. (wait_port is not used here: it would take the
#    one connection this backend serves.)
spawn greet-backend $NET greet-then-read "$GREET_PORT" 1000 "$TEST_TMP/greet.result"
listening() { ss -ltnH "sport = :$1" | grep -q .; }
wait_until 15 listening "$GREET_PORT" || fail "greeting backend did not start"
sent=$($NET read-then-send "$P_GREET" 1000 $((4 * 1024 * 1024))) || fail "backend half-close: $sent"
wait_until 15 test -s "$TEST_TMP/greet.result" || fail "backend never saw the user's EOF"
got=$(cat "$TEST_TMP/greet.result")
echo "backend half-closed first; user then sent: $sent; backend received: $got"
[ "$got" = "$sent" ] || fail "backend received '$got', user sent '$sent'"
# Both programs must also shut down cleanly after all that.
stop_checked home1 tunneld
pass "half-close both ways delivers every byte"
