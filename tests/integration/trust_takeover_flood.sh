#!/usr/bin/env bash
# trust_takeover_flood: handshake flooding cannot take a healthy, idle client's identity. The real tunnelc (home1)
# reaches tunneld through a relay that adds DELAY ms each way; an impostor with another home1 certificate (same CN,
# same CA) completes TLS handshakes as fast as it can, many at a time, for FLOOD_S seconds while visitors make
# requests. Each impostor link must be refused while the real link is alive, however fast they come and however
# long the real link's round trip: every visitor request reaches the real client's backend, the real client stays
# connected on the link it had, GET /clients shows its fingerprint, and no impostor link is ever admitted. Run with
# a 20 ms and a 300 ms delay. A decision that raced the round trip (a ping per newcomer, only the answer to the
# latest one counted) let the impostor in already at 20 ms, at the 13-25 handshakes/s an ASan tunneld completes
# on a loaded 2-core machine; the longer the round trip, the slower a flood needs to be.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

FLOOD_S=8 FLOOD_THREADS=16
RELAY="python3 $(dirname "$0")/tools/link_relay.py"
FLOOD="python3 $(dirname "$0")/tools/handshake_flood.py"

make_pki
issue_twin "$PKI/impostor" home1
REAL_SHA=$(fingerprint "$PKI/home1.crt")
FAKE_SHA=$(fingerprint "$PKI/impostor/home1.crt")
[ "$REAL_SHA" != "$FAKE_SHA" ] || fail "the twin is the same certificate"
start_tunneld
WEB=$(free_port)
start_marker_nginx legit "$WEB" LEGIT
PUBLIC=$(free_port)

round() {  # round DELAY_MS: one flood against the real client behind a DELAY_MS relay
  local delay=$1 relay relay_pid since result ok failed legit flood
  relay=$(free_port)
  spawn "relay-$delay" $RELAY "$relay" "$CONTROL_PORT" "$delay" 0
  relay_pid=$SPAWNED_PID
  wait_port "$relay"
  CONTROL_PORT=$relay start_tunnelc_as "real$delay" "$PKI/home1.crt" "$PKI/home1.key" '[]' "{\"web\": \"127.0.0.1:$WEB\"}"
  wait_client_connected home1
  put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\",
                 \"BackEndService\": \"web\"}]"
  wait_port "$PUBLIC"
  [ "$(http_get_marker 127.0.0.1 "$PUBLIC")" = LEGIT ] || fail "$delay ms: before the flood: not LEGIT"
  api GET /clients
  since=$(json_get "$API_BODY" 'd["home1"]["ConnectedSince"] + " " + d["home1"]["RemoteAddress"]')
  [ "$(json_get "$API_BODY" 'd["home1"]["CertificateSha256"]')" = "$REAL_SHA" ] || fail "$delay ms: not the real client"

  rm -f "$TEST_TMP/flood-$delay.out"
  bg $FLOOD "$CONTROL_PORT" "$PKI/ca.crt" "$PKI/impostor/home1.crt" "$PKI/impostor/home1.key" "$FLOOD_S" \
    "$FLOOD_THREADS" "$TEST_TMP/flood-$delay.out"
  result=$(run_http_load 127.0.0.1 "$PUBLIC" 2 "$FLOOD_S")
  wait_until 30 test -s "$TEST_TMP/flood-$delay.out" || fail "$delay ms: the flood did not finish"
  flood=$(cat "$TEST_TMP/flood-$delay.out")
  read -r ok failed legit <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["ok"], d["failed"], d["markers"].get("LEGIT", 0))' "$result")"
  echo "$delay ms each way: impostor $flood; visitors: $legit of $((ok + failed)) requests reached the real client"
  [ "$(awk '{print $2}' <<<"$flood")" -ge 20 ] || fail "$delay ms: the impostor completed too few handshakes to test anything: $flood"
  [ "$ok" -gt 0 ] && [ "$failed" -eq 0 ] && [ "$legit" -eq "$ok" ] ||
    fail "$delay ms: $legit of $((ok + failed)) visitor requests reached the real client ($result)"
  grep -q "certificate sha256 $FAKE_SHA) over" "$TEST_TMP/tunneld.log" && fail "$delay ms: an impostor link was admitted"
  api GET /clients
  [ "$(json_get "$API_BODY" 'd["home1"]["CurrentState"]')" = ClientConnected ] || fail "$delay ms: real client not connected: $API_BODY"
  [ "$(json_get "$API_BODY" 'd["home1"]["CertificateSha256"]')" = "$REAL_SHA" ] ||
    fail "$delay ms: GET /clients does not show the real certificate: $API_BODY"
  [ "$(json_get "$API_BODY" 'd["home1"]["ConnectedSince"] + " " + d["home1"]["RemoteAddress"]')" = "$since" ] ||
    fail "$delay ms: the real client's link was replaced: $API_BODY"
  [ "$(http_get_marker 127.0.0.1 "$PUBLIC")" = LEGIT ] || fail "$delay ms: after the flood: not LEGIT"
  stop_checked "real$delay"
  kill "$relay_pid" 2>/dev/null || true
  wait_until 15 client_gone home1 || fail "$delay ms: tunnelc did not disconnect"
}

client_gone() { api GET /clients && [ "$(json_get "$API_BODY" 'd["home1"]["CurrentState"]')" != ClientConnected ]; }

round 20
round 300
refusals=$(metric 'tunneld_links_refused_total{reason="identity_in_use"}')
echo "impostor links refused in all: $refusals"
[ -n "$refusals" ] && [ "$refusals" -ge 40 ] || fail "refusals counted: '$refusals'"
stop_checked tunneld
pass "a flood of impostor handshakes never took a live client's identity ($refusals refused, 20 ms and 300 ms paths)"
