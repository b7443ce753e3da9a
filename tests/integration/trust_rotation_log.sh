#!/usr/bin/env bash
# tunnelc says "after N ms down" only when its link was down. An attack run saw "after 85179 ms down" logged after a
# certificate rotation that never took the link down: the time of an earlier, real outage was never cleared. Here
# home1 loses its link once (tunneld restarted: one real "ms down" line), then rotates its certificate (the new link
# comes up beside the old one): the rotation's connected line must not claim any time down.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
LOG="$TEST_TMP/tunnelc-home1.log"

make_pki
issue_twin "$PKI/next" home1
NEW_FP=$(fingerprint "$PKI/next/home1.crt")
start_tunneld
start_tunnelc home1
wait_client_connected home1

# 1. A real outage: tunneld stops, then comes back on the same ports.
stop_tunneld
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS"
wait_log "$LOG" "client home1: disconnected from"
start_tunneld
wait_client_connected home1
wait_log "$LOG" "client home1: connected to .* after [0-9]+ ms down, [0-9]+ attempts"
[ "$(grep -c ' ms down' "$LOG")" = 1 ] || fail "one outage, $(grep -c ' ms down' "$LOG") 'ms down' lines"

# 2. A rotation: the old link keeps serving until the new one is up.
cp "$PKI/next/home1.crt" "$PKI/home1.crt.new" && mv "$PKI/home1.crt.new" "$PKI/home1.crt"
cp "$PKI/next/home1.key" "$PKI/home1.key.new" && mv "$PKI/home1.key.new" "$PKI/home1.key"
kill -HUP "$TUNNELC_PID_home1"
new_cert_connected() { api GET /clients && [ "$(json_get "$API_BODY" 'd["home1"]["CertificateSha256"]')" = "$NEW_FP" ]; }
wait_until 20 new_cert_connected || fail "tunneld never saw the new certificate"
wait_log "$LOG" "old link from .* closed after the certificate rotation"
grep -q "disconnected from" <(sed -n '/tunneld took the rotation announcement/,$p' "$LOG") &&
  fail "the link went down during the rotation (the test's premise)"
rotated=$(sed -n '/tunneld took the rotation announcement/,$p' "$LOG" | grep -m1 "client home1: connected to") ||
  fail "no connected line after the rotation announcement"
echo "after the rotation: ${rotated#* tunnelc }"
grep -q ' ms down' <<<"$rotated" && fail "the rotation's link is said to come after time down: $rotated"
[ "$(grep -c ' ms down' "$LOG")" = 1 ] || fail "one outage, $(grep -c ' ms down' "$LOG") 'ms down' lines"
pass "'ms down' logged after the real outage only, not after a rotation"
