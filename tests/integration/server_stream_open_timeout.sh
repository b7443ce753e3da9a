#!/usr/bin/env bash
# tunneld's StreamOpenTimeoutMs (docs/CONFIG.md): a stream the client never acknowledges is reset and its public
# connection closed. tunnelc is frozen (SIGSTOP) so that it answers nothing; the dead-peer timeout is far longer
# than the open timeout, so only the open timeout can close the visitor. The close must come no earlier than the
# timeout (lower bound) and must come at all (the upper bound only catches "never", with room for a loaded
# machine); the log names the reason. Thawed, the same link carries the next visitor.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

OPEN_MS=2000 DEAD_MS=60000
make_pki
start_tunneld "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": $DEAD_MS, \"DrainTimeoutMs\": 3000,
                \"StreamOpenTimeoutMs\": $OPEN_MS}"
BACKEND=$(free_port) PUBLIC=$(free_port)
start_marker_nginx nginx "$BACKEND" home1
start_tunnelc home1 "[$BACKEND]" '{}' \
  '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 60000, "DrainTimeoutMs": 3000, "ReconnectMinMs": 100, "ReconnectMaxMs": 1000}'
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND}]"
wait_port "$PUBLIC"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC")" = home1 ] || fail "no traffic through the tunnel before the test"

kill -STOP "$TUNNELC_PID_home1"
# connect-wait measures from before its connect, so its figure is never shorter than the stream's real life.
out=$($NET connect-wait "$PUBLIC" $((OPEN_MS / 1000 + 30)))
echo "visitor of a frozen client: $out (StreamOpenTimeoutMs $OPEN_MS)"
[ "${out%% *}" = closed ] || fail "the public connection of an unacknowledged stream was not closed: $out"
ms=${out#closed }
[ "$ms" -ge $((OPEN_MS - 100)) ] || fail "the public connection was closed after $ms ms, before StreamOpenTimeoutMs $OPEN_MS"
[ "$ms" -le $((OPEN_MS + 20000)) ] || fail "the public connection was closed after $ms ms, StreamOpenTimeoutMs is $OPEN_MS"
wait_log "$TEST_TMP/tunneld.log" "tunnel port $PUBLIC: .* via client home1 ended: stream open not acknowledged in time"
! grep -q "client home1: disconnected" "$TEST_TMP/tunneld.log" || fail "the link was dropped instead of the one stream"

kill -CONT "$TUNNELC_PID_home1"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC")" = home1 ] || fail "no traffic through the tunnel after the client thawed"
client_connected home1 || fail "home1 is no longer connected"
[ "$(grep -c "client home1: connected from" "$TEST_TMP/tunneld.log")" = 1 ] || fail "home1's link was replaced"
stop_checked home1 tunneld
pass "an unacknowledged stream's visitor is closed after StreamOpenTimeoutMs ($ms ms for $OPEN_MS), the link stays"
