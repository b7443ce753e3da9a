#!/usr/bin/env bash
# One address cannot starve the control port: a storm of handshakes that never finish, from 127.0.0.2, keeps at
# most MaxPendingHandshakesPerSource of them (its own oldest are closed to make room), so the shared
# MaxPendingHandshakes never fills and a real tunnelc from 127.0.0.1 connects and carries traffic during it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

NET="python3 $(dirname "$0")/tools/harden_net.py"
make_pki
# A small shared limit so that one source could fill it in a few milliseconds; per source the default 8.
start_tunneld '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "MaxPendingHandshakes": 24}'
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port)
start_marker_nginx nginx "$BACKEND_PORT" real
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"

# 300 a second: far more than MaxPendingHandshakes within one handshake's time, yet below what tunneld accepts on
# a loaded 2-core box under ASan (a storm beyond that starves the whole event loop: see HARDENING.md).
spawn storm $NET storm 127.0.0.2 "$CONTROL_PORT" 12 300
STORM_PID=$SPAWNED_PID
sleep 1   # let the storm reach full rate before the real client starts
t0=$(now_ms)
start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1
t1=$(now_ms)
[ "$(http_get_marker 127.0.0.1 "$PUBLIC_PORT")" = real ] || fail "no traffic through the tunnel during the storm"
echo "tunnelc connected $((t1 - t0)) ms after starting, during the storm from 127.0.0.2"
kill -0 "$STORM_PID" 2>/dev/null || fail "the storm ended before the client connected; it proves nothing"
wait "$STORM_PID" || fail "storm tool failed"
out=$(cat "$TEST_TMP/storm.log")
echo "handshake storm from 127.0.0.2: $out"
[ "$(json_get "$out" 'd["opened"]')" -ge 200 ] || fail "the storm was too weak to show anything: $out"
[ "$(json_get "$out" 'd["closed_by_server"] * 2 >= d["opened"]')" = true ] ||
  fail "tunneld did not close the storm's surplus handshakes: $out"
api GET /metrics
grep -E '^tunneld_handshakes_refused_total' <<<"$API_BODY"
n=$(grep -c 'control: 127\.0\.0\.2' "$TEST_TMP/tunneld.log" || true)
echo "log lines about the storm's source: $n"
stop_checked tunneld home1
pass "tunnelc connected in $((t1 - t0)) ms during a $(json_get "$out" 'd["opened"]')-connection handshake storm from another address"
