#!/usr/bin/env bash
# trust_rotation: a client certificate rotation drops nothing (docs/OPERATIONS.md section 7). tunnelc home1 gets a
# new certificate for the same CN (new key, same CA) in place of the old files and SIGHUP: its link announces the
# new certificate (a rotation control message), the new link comes up beside it, tunneld moves new connections to
# the new link at once and sends the old one GoAway; the old link's streams finish there and tunnelc closes it.
# Asserted: a download held open across the swap arrives whole (every byte checked), a probe opening a new
# connection every 50 ms through the swap sees no failure at all, and tunneld never took the new certificate for an
# impostor.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
issue_twin "$PKI/next" home1
OLD_FP=$(fingerprint "$PKI/home1.crt")
NEW_FP=$(fingerprint "$PKI/next/home1.crt")
# The old link may drain for as long as the test holds its download: the bound is the operator's, not a race.
start_tunneld '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": 3000, "ReplacedLinkGraceMs": 120000}'
WEB=$(free_port)
start_stream_server web "$WEB" home1
start_tunnelc home1 '[]' "{\"web\": \"127.0.0.1:$WEB\"}"
wait_client_connected home1
PUBLIC=$(free_port)
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\",
               \"BackEndService\": \"web\"}]"
wait_port "$PUBLIC"

start_held_download dl "$PUBLIC"
probe_has_ok_after() { probe_first_ok_after probe home1 "$1" >/dev/null; }
start_http_probe probe 127.0.0.1 "$PUBLIC"
PROBE_PID=$SPAWNED_PID
wait_until 30 probe_has_ok_after 0 || fail "the probe never got an answer"

cp "$PKI/next/home1.crt" "$PKI/home1.crt.new" && mv "$PKI/home1.crt.new" "$PKI/home1.crt"
cp "$PKI/next/home1.key" "$PKI/home1.key.new" && mv "$PKI/home1.key.new" "$PKI/home1.key"
t_hup=$(now_ms)
kill -HUP "$TUNNELC_PID_home1"
new_cert_connected() { api GET /clients && [ "$(json_get "$API_BODY" 'd["home1"]["CertificateSha256"]')" = "$NEW_FP" ]; }
wait_until 20 new_cert_connected || fail "tunneld never saw the new certificate"
t_swap=$(now_ms)
# The held download is still running on the old link, and still moving.
held_download_running dl || fail "the download on the old link ended at the swap: $(cat "$TEST_TMP/dl.err")"
before=$(held_download_bytes dl)
wait_until 20 held_download_has_bytes dl "$before" || fail "the download on the old link stalled after the swap"
wait_log "$TEST_TMP/tunneld.log" "client home1: certificate rotation: the link from .* \(sha256 $NEW_FP\) takes over"
wait_log "$TEST_TMP/tunnelc-home1.log" "tunneld moved new connections to the new link; the old link .* drains"
wait_until 30 probe_has_ok_after "$(now_ms)" || fail "no answer after the rotation"
touch "$TEST_TMP/probe.stop"
wait "$PROBE_PID" 2>/dev/null || true
finish_held_download dl home1
echo "held download across the rotation: $HELD_BYTES bytes, all verified"
# With its last stream gone the old link closes.
wait_log "$TEST_TMP/tunnelc-home1.log" "old link from .* closed after the certificate rotation"
wait_log "$TEST_TMP/tunneld.log" "client home1: old link from .* closed"

grep -q 'refused the link' "$TEST_TMP/tunneld.log" && fail "tunneld took the rotated certificate for an impostor"
grep -q 'ended: tunnel link lost' "$TEST_TMP/tunnelc-home1.log" && fail "a stream was reset by the rotation"
python3 - "$TEST_TMP/probe.probe" "$t_hup" "$t_swap" <<'PY' || fail "a new connection failed during the rotation"
import sys
rows = sorted((int(a), int(b), s) for a, b, s, *_ in (l.split(" ") for l in open(sys.argv[1])))
t_hup, t_swap = int(sys.argv[2]), int(sys.argv[3])
around = [r for r in rows if r[0] >= t_hup - 1000]
failed = [r for r in around if r[2] != "ok"]
print("new connections around the rotation: %d (%d started between SIGHUP and the swap), failed: %d" % (
    len(around), sum(1 for r in around if t_hup <= r[0] <= t_swap), len(failed)))
assert around and not failed, failed[:5]
PY
grep -q "client home1: connected from .* (certificate sha256 $NEW_FP)" "$TEST_TMP/tunneld.log" || fail "no connect line for the new certificate"
grep -q "$OLD_FP" "$TEST_TMP/tunneld.log" || fail "the old certificate never appeared in the log"
stop_checked home1 tunneld
pass "client certificate rotation: new link first, held download whole, no new connection failed, old link drained and closed"
