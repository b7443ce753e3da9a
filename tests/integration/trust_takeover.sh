#!/usr/bin/env bash
# trust_takeover: a second certificate with a client's CN (its own key, same CA) cannot take a live client's tunnel.
# The real tunnelc (home1) serves "LEGIT"; an impostor tunnelc with another home1 certificate serves "ATTACKER" and
# reconnects as fast as its backoff allows. While the real link is alive, every impostor link is refused after its
# handshake (logged with both fingerprints, rate-limited per identity, and every one counted in /metrics) and at
# least 98% of requests over 10 s reach LEGIT. Then the real client is killed (-9): its link closes, and the
# impostor's certificate takes over at its next attempt, the documented fallback for a client that is really gone.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

KEEPALIVE_MS=500 DEAD_PEER_MS=2000 RECONNECT_MAX_MS=1000   # FAST_LIMITS; the impostor's limits below
# kill -9 closes the socket, so the takeover waits for the impostor's next attempt, not for silence; the bound is
# the documented one (dead-peer timeout) plus a reconnect, with slack for a loaded 2-core ASan machine.
BOUND_MS=$((DEAD_PEER_MS + RECONNECT_MAX_MS + 4000))

make_pki
issue_twin "$PKI/impostor" home1
[ "$(fingerprint "$PKI/home1.crt")" != "$(fingerprint "$PKI/impostor/home1.crt")" ] || fail "the twin is the same certificate"
start_tunneld
WEB_LEGIT=$(free_port); WEB_ATTACKER=$(free_port)
start_marker_nginx legit "$WEB_LEGIT" LEGIT
start_marker_nginx attacker "$WEB_ATTACKER" ATTACKER
start_tunnelc home1 '[]' "{\"web\": \"127.0.0.1:$WEB_LEGIT\"}"
wait_client_connected home1
PUBLIC=$(free_port)
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\",
               \"BackEndService\": \"web\"}]"
wait_port "$PUBLIC"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC")" = LEGIT ] || fail "before the impostor: not LEGIT"

start_tunnelc_as impostor "$PKI/impostor/home1.crt" "$PKI/impostor/home1.key" '[]' \
  "{\"web\": \"127.0.0.1:$WEB_ATTACKER\"}" \
  "{\"KeepaliveIntervalMs\": $KEEPALIVE_MS, \"DeadPeerTimeoutMs\": $DEAD_PEER_MS, \"ReconnectMinMs\": 100, \"ReconnectMaxMs\": $RECONNECT_MAX_MS}"
wait_log "$TEST_TMP/tunneld.log" 'client home1: refused the link from .* with certificate sha256 [0-9a-f]{64}: the identity is connected from .* with certificate sha256 [0-9a-f]{64}, alive \(last heard from [0-9]+ ms ago\)'

result=$(run_http_load 127.0.0.1 "$PUBLIC" 2 10)
echo "10 s of requests with the impostor reconnecting: $result"
read -r ok legit <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["ok"] + d["failed"], d["markers"].get("LEGIT", 0))' "$result")"
[ "$ok" -gt 0 ] || fail "no requests were made"
[ $((legit * 100)) -ge $((ok * 98)) ] || fail "only $legit of $ok requests reached the real client (need 98%)"
# The log first: the metric counts every refusal the rate-limited log has shown (and more), while the impostor
# keeps trying.
refusals=$(grep -c 'refused the link from' "$TEST_TMP/tunneld.log")
counted=$(metric 'tunneld_links_refused_total{reason="identity_in_use"}')
echo "impostor links refused: $refusals logged (rate-limited), $counted counted; $legit of $ok requests reached the real client"
[ -n "$counted" ] && [ "$refusals" -ge 1 ] && [ "$counted" -ge "$refusals" ] || fail "refusals: $refusals logged, '$counted' counted"
grep -q "ATTACKER" "$TEST_TMP/attacker/access.log" && fail "the impostor's backend was reached"
api GET /clients
[ "$(json_get "$API_BODY" 'd["home1"]["CertificateSha256"]')" = "$(fingerprint "$PKI/home1.crt")" ] ||
  fail "GET /clients does not show the real certificate: $API_BODY"
pass "a live client keeps its identity: $refusals impostor links refused, $legit/$ok requests to the real client"

# ---- the real client is gone for good: the other certificate is let in ----
got_attacker() { [ "$(http_get_marker 127.0.0.1 "$PUBLIC" 2>/dev/null)" = ATTACKER ]; }
t_kill=$(now_ms)
kill -KILL "$TUNNELC_PID_home1"
wait_until 30 got_attacker || fail "the other certificate never took over after kill -9"
took=$(($(now_ms) - t_kill))
echo "after kill -9 of the real client, the other certificate serves after $took ms (bound $BOUND_MS ms)"
[ "$took" -le "$BOUND_MS" ] || fail "takeover after kill -9 took $took ms, more than $BOUND_MS ms"
api GET /clients
[ "$(json_get "$API_BODY" 'd["home1"]["CertificateSha256"]')" = "$(fingerprint "$PKI/impostor/home1.crt")" ] ||
  fail "GET /clients does not show the new certificate: $API_BODY"
stop_checked impostor tunneld
pass "with the real client dead, the other certificate took over in $took ms"
