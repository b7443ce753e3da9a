#!/usr/bin/env bash
# ReplacedLinkGraceMs (CONFIG.md, FAILOVER.md): when a client reconnects with the same certificate, new connections go
# to the new link at once and the old link's open streams may finish within the grace period, then are reset. The old
# tunnelc is frozen (SIGSTOP) with a download open, as after a network change it has not noticed; a second tunnelc
# with the same certificate takes over. The download is neither cut at once nor kept past the grace period.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

GRACE_MS=2000
make_pki
# The dead-peer timeout far above the grace, so only the grace can end the old link.
start_tunneld "{\"KeepaliveIntervalMs\": 1000, \"DeadPeerTimeoutMs\": 30000, \"DrainTimeoutMs\": 3000, \"ReplacedLinkGraceMs\": $GRACE_MS}"
BACKEND=$(free_port) PUBLIC=$(free_port)
start_stream_server streams "$BACKEND" home1
LIMITS='{"KeepaliveIntervalMs": 1000, "DeadPeerTimeoutMs": 30000, "DrainTimeoutMs": 3000, "ReconnectMinMs": 100, "ReconnectMaxMs": 1000}'
start_tunnelc_as old "$PKI/home1.crt" "$PKI/home1.key" "[$BACKEND]" '{}' "$LIMITS"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND}]"
wait_port "$PUBLIC"
start_held_download dl "$PUBLIC"

kill -STOP "$TUNNELC_PID_old"
start_tunnelc_as new "$PKI/home1.crt" "$PKI/home1.key" "[$BACKEND]" '{}' "$LIMITS"
wait_log "$TEST_TMP/tunneld.log" "client home1: new link from .* replaces the one from .*; old link drains for up to $GRACE_MS ms"
t0=$(now_ms)
# New connections go to the new link at once.
[ "$(http_get_marker 127.0.0.1 "$PUBLIC")" = home1 ] || fail "no new connection through the new link"
held_download_running dl || fail "the old link's download was cut at once instead of given the grace period"
wait_until 30 bash -c "! kill -0 $HELD_PID_dl 2>/dev/null" || fail "the old link's download outlived the grace period"
ms=$(( $(now_ms) - t0 ))
rc=0; wait "$HELD_PID_dl" || rc=$?
[ "$rc" != 0 ] || fail "the download on the replaced link ended as if complete"
wait_log "$TEST_TMP/tunneld.log" "client home1: old link from .* closed: grace period over; resetting its remaining streams"
echo "the replaced link's download was reset $ms ms after the replacement (ReplacedLinkGraceMs $GRACE_MS; curl exit $rc)"
# Lower bound: not before the grace (200 ms for the clocks); upper bound only catches "never", sized for a busy machine.
[ "$ms" -ge $((GRACE_MS - 200)) ] && [ "$ms" -le $((GRACE_MS + 10000)) ] ||
  fail "reset after $ms ms, ReplacedLinkGraceMs is $GRACE_MS"
stop_tunnelc old KILL
client_connected home1 || fail "the new link did not stay"
pass "a replaced link's streams run for ReplacedLinkGraceMs ($ms ms measured for $GRACE_MS), then are reset"
