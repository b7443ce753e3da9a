#!/usr/bin/env bash
# An admin who shares an address with a handshake flood still gets in (MaxPendingHandshakesPerSource):
# 1. tunneld is paused while the admin connects and then 20 stalled handshakes queue behind it from the same
#    address; on resume libuv accepts all 21 in one go, before reading any. The admin's handshake, oldest of them,
#    is not the one closed: its ClientHello waits whole in the kernel, the others' do not (the old rule, "close
#    the source's oldest", closed it).
# 2. Four stalled handshakes from that address are then held for far longer than the test waits; an admin from
#    the same address gets in at once, because stalled handshakes make room for a newcomer (a rule that only
#    refused newcomers would lock the address out until HandshakeTimeoutMs).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

NET="python3 $(dirname "$0")/tools/harden_net.py"
PER_SOURCE=4
# Long enough that stalled handshakes outlive every wait below: only eviction can free their slots.
HANDSHAKE_TIMEOUT_MS=60000
make_pki
start_tunneld "{\"MaxPendingHandshakesPerSource\": $PER_SOURCE, \"HandshakeTimeoutMs\": $HANDSHAKE_TIMEOUT_MS}"

admin_get() {  # prints "STATUS"
  curl -sS -o /dev/null -w '%{http_code}' --max-time "${1:-20}" --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$MGMT_PORT/tunnels" 2>>"$TEST_TMP/curl.err" ||
    true
}
established_to_mgmt() { [ "$(ss -Htn state established "( dport = :$MGMT_PORT )" | wc -l)" -ge "$1" ]; }

# ---- 1. the admin first in a backlog of stalled handshakes from its own address ----
kill -STOP "$TUNNELD_PID"
bg admin_get 60 >"$TEST_TMP/admin1.status"
ADMIN_PID=$BG_PID
# The kernel completes the admin's TCP handshake and holds its ClientHello while tunneld is paused.
wait_until 15 established_to_mgmt 1 || { kill -CONT "$TUNNELD_PID"; fail "the admin's connection never reached the backlog"; }
spawn flood1 $NET flood "$MGMT_PORT" 20 30
FLOOD1_PID=$SPAWNED_PID
wait_until 30 grep -q '"holding"' "$TEST_TMP/flood1.log" || { kill -CONT "$TUNNELD_PID"; fail "flood did not open"; }
kill -CONT "$TUNNELD_PID"
wait "$ADMIN_PID" || true
status=$(cat "$TEST_TMP/admin1.status")
[ "$status" = 200 ] ||
  fail "admin accepted ahead of 20 stalled handshakes from its address: status $status ($(tail -n 2 "$TEST_TMP/curl.err"))"
wait_log "$TEST_TMP/tunneld.log" "management: 127\.0\.0\.1:[0-9]+: TLS handshake evicted: MaxPendingHandshakesPerSource reached for its source"
echo "phase 1: admin 200 ahead of a 20-connection backlog from its address"

# ---- 2. held stalled handshakes give way to a newcomer ----
kill "$FLOOD1_PID" 2>/dev/null || true
wait "$FLOOD1_PID" 2>/dev/null || true
spawn flood2 $NET flood "$MGMT_PORT" "$PER_SOURCE" 120
wait_log "$TEST_TMP/flood2.log" '"holding"' 30
for i in 1 2 3; do
  status=$(admin_get 20)
  [ "$status" = 200 ] ||
    fail "admin from the address of $PER_SOURCE held stalled handshakes: status $status, try $i ($(tail -n 2 "$TEST_TMP/curl.err"))"
done
pass "admin first in a same-address backlog served; three admin requests served beside $PER_SOURCE held stalled handshakes"
