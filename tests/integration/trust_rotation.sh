#!/usr/bin/env bash
# trust_rotation: certificate rotation keeps serving. tunnelc home1 gets a new certificate for the same CN (new key,
# same CA) in place of the old files and SIGHUP: it lets go of the old link (GoAway), reconnects at once with the
# new certificate, and tunneld takes it without the "identity in use" refusal (the old link is not live any more).
# A probe opening a new connection every 50 ms sees at most one gap: failures, if any, form one unbroken run no
# longer than a reconnect.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

# One reconnect: a TLS handshake or two on a loaded 2-core ASan machine (the whole suite and other work beside
# it), with slack; the probe's own requests then need a moment to notice.
GAP_BOUND_MS=5000

make_pki
issue_twin "$PKI/next" home1
OLD_FP=$(fingerprint "$PKI/home1.crt")
NEW_FP=$(fingerprint "$PKI/next/home1.crt")
start_tunneld
WEB=$(free_port)
start_marker_nginx web "$WEB" home1
start_tunnelc home1 '[]' "{\"web\": \"127.0.0.1:$WEB\"}"
wait_client_connected home1
PUBLIC=$(free_port)
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\",
               \"BackEndService\": \"web\"}]"
wait_port "$PUBLIC"

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
wait_until 30 probe_has_ok_after "$(now_ms)" || fail "no answer after the rotation"
touch "$TEST_TMP/probe.stop"
wait "$PROBE_PID" 2>/dev/null || true

grep -q 'refused the link' "$TEST_TMP/tunneld.log" && fail "tunneld took the rotated certificate for an impostor"
python3 - "$TEST_TMP/probe.probe" "$t_hup" "$GAP_BOUND_MS" <<'PY' || fail "more than one gap, or too long a gap"
import sys
rows = sorted((int(a), int(b), s) for a, b, s, *_ in (l.split(" ") for l in open(sys.argv[1])))
t_hup, bound = int(sys.argv[2]), int(sys.argv[3])
after = [r for r in rows if r[0] >= t_hup - 1000]
runs, cur = [], []
for r in after:
    if r[2] == "fail":
        cur.append(r)
    elif cur:
        runs.append(cur); cur = []
if cur:
    runs.append(cur)
print("requests around the rotation: %d, failed: %d, in %d gap(s)%s" % (
    len(after), sum(len(r) for r in runs), len(runs),
    "; gap %d ms" % (runs[0][-1][1] - runs[0][0][0]) if runs else ""))
assert len(runs) <= 1
assert not runs or runs[0][-1][1] - runs[0][0][0] <= bound
PY
grep -q "client home1: connected from .* (certificate sha256 $NEW_FP)" "$TEST_TMP/tunneld.log" || fail "no connect line for the new certificate"
grep -q "$OLD_FP" "$TEST_TMP/tunneld.log" || fail "the old certificate never appeared in the log"
stop_checked home1 tunneld
pass "tunnelc reloaded with a new certificate for the same CN kept serving with at most one reconnect gap"
