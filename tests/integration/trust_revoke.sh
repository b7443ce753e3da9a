#!/usr/bin/env bash
# trust_revoke: a lost machine's certificate is locked out without a restart, two ways.
#  1. PUT /revoked-certificates with a connected client's fingerprint: its link closes at once, its reconnects are
#     refused at the handshake ("revoked" in the log, alert 44 at a TLS 1.2 client), GET /clients shows it disconnected.
#     A live management connection of a revoked admin certificate is closed the same way and the certificate is
#     refused afterwards. Malformed lists are 400s and a list naming the requester's own certificate is a 409; both
#     change nothing. The list survives a restart of tunneld (state file) and an empty list lets the client back.
#  2. CrlFile (made with openssl ca -gencrl) + SIGHUP: the revoked client's link closes, its reconnects are refused;
#     a broken CRL on SIGHUP is logged and the old one kept; a broken CRL at start is a config error naming the
#     field. tunnelc's own CrlFile closes its link when a reload revokes the server's certificate.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

# Closing happens inside the PUT (or the SIGHUP handler) before it answers; the bound only allows for the API
# round trip and process start-up of curl on a loaded 2-core ASan machine.
CLOSE_BOUND_MS=3000

make_pki
issue_twin "$PKI/admin2" admin --admin         # a second admin certificate (same CN, own key)

# An openssl CA database over tunneld pki's CA, to revoke with openssl ca and publish CRLs.
CA_DIR="$TEST_TMP/ca"
mkdir -p "$CA_DIR"
: >"$CA_DIR/index.txt"
echo 01 >"$CA_DIR/crlnumber"
cat >"$CA_DIR/ca.cnf" <<CNF
[ca]
default_ca = tunnel_ca
[tunnel_ca]
database = $CA_DIR/index.txt
crlnumber = $CA_DIR/crlnumber
certificate = $PKI/ca.crt
private_key = $PKI/ca.key
default_md = sha256
default_crl_days = 30
CNF
CRL="$TEST_TMP/ca.crl"
publish_crl() {  # written beside and renamed, as an operator's script would
  openssl ca -config "$CA_DIR/ca.cnf" -gencrl -out "$CRL.new" 2>/dev/null
  mv "$CRL.new" "$CRL"
}
publish_crl

TUNNELD_EXTRA_JSON="\"CrlFile\": \"$CRL\""
start_tunneld
start_tunnelc home1
start_tunnelc home2
wait_client_connected home1
wait_client_connected home2
FP1=$(fingerprint "$PKI/home1.crt")
FP_ADMIN=$(fingerprint "$PKI/admin.crt")
FP_ADMIN2=$(fingerprint "$PKI/admin2/admin.crt")

client_state() { api GET /clients && json_get "$API_BODY" "d.get('$1', {}).get('CurrentState', 'absent')"; }
# Milliseconds since the epoch of the last line of LOG matching PATTERN (the loggers' own clock, so the figure is
# the close itself and not the time a poll took to notice it).
log_ms() {
  grep -E "$2" "$1" | tail -n1 | python3 -c 'import sys, datetime
t = sys.stdin.read().split(" ")[0]
print(int(datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000))'
}
client_down() { [ "$(client_state "$1")" = ClientDisconnected ]; }

# ---- 1. the API list ----
t0=$(now_ms)
api PUT /revoked-certificates "[\"$FP1\"]"
[ "$API_STATUS" = 200 ] || fail "PUT /revoked-certificates: $API_STATUS $API_BODY"
[ "$(json_get "$API_BODY" 'd')" = "[\"$FP1\"]" ] || fail "PUT answer is not the applied list: $API_BODY"
wait_until 10 client_down home1 || fail "home1's link is still up after its certificate was revoked"
took=$(($(log_ms "$TEST_TMP/tunnelc-home1.log" 'client home1: disconnected from') - t0))
echo "revoked through the API: home1's link closed (by tunnelc's log) $took ms after the PUT started (bound $CLOSE_BOUND_MS ms)"
[ "$took" -le "$CLOSE_BOUND_MS" ] || fail "closing took $took ms"
[ "$(client_state home2)" = ClientConnected ] || fail "home2 was disturbed"
wait_log "$TEST_TMP/tunneld.log" "control: .*: TLS handshake failed: client certificate rejected: certificate revoked \(listed in /revoked-certificates\); CN \"home1\", sha256 $FP1"
if grep -q 'client home1: connected to .* over TLSv1.3' "$TEST_TMP/tunnelc-home1.log"; then
  # An mbedTLS 3.6 server's TLS 1.3 alert comes under keys the client has left: the refusal shows, its reason not.
  wait_log "$TEST_TMP/tunnelc-home1.log" 'peer rejected the handshake \(TLS 1.3'
else
  wait_log "$TEST_TMP/tunnelc-home1.log" 'certificate revoked \(alert 44\)'
fi
[ "$(metric tunneld_revoked_certificates)" = 1 ] || fail "tunneld_revoked_certificates is not 1"
[ "$(metric tunneld_links_revoked_total)" -ge 1 ] || fail "tunneld_links_revoked_total did not count the closed link"
pass "PUT /revoked-certificates closed home1's link in $took ms; its reconnects are refused as revoked"

for bad in '["AB:CD"]' "[\"$FP1\", \"$FP1\"]" '{"a": 1}' "[\"$FP1\", \"${FP1^^}\"]" '[1]'; do
  api PUT /revoked-certificates "$bad"
  [ "$API_STATUS" = 400 ] && is_json_error "$API_BODY" || fail "PUT $bad: $API_STATUS $API_BODY"
done
api PUT /revoked-certificates "[\"$FP1\", \"$FP_ADMIN\"]"
[ "$API_STATUS" = 409 ] && is_json_error "$API_BODY" || fail "revoking the requester's own certificate: $API_STATUS $API_BODY"
api GET /revoked-certificates
[ "$(json_get "$API_BODY" 'd')" = "[\"$FP1\"]" ] || fail "a refused PUT changed the list: $API_BODY"
pass "malformed lists (400) and the requester's own certificate (409) change nothing"

# A management connection of the second admin certificate, held open (keep-alive) until the server closes it.
spawn mgmt-hold python3 -c '
import socket, ssl, sys, time
port, ca, crt, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(crt, key)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
s.sendall(b"GET /ping HTTP/1.1\r\nHost: tunnel-test\r\n\r\n")
print("up", s.recv(4096).split(b"\r\n")[0].decode(), flush=True)
while True:
    try:
        if not s.recv(4096):
            break
    except OSError:
        break
print("closed", int(time.time() * 1000), flush=True)
' "$MGMT_PORT" "$PKI/ca.crt" "$PKI/admin2/admin.crt" "$PKI/admin2/admin.key"
HOLD_PID=$SPAWNED_PID
wait_log "$TEST_TMP/mgmt-hold.log" '^up HTTP/1.1 200'
t0=$(now_ms)
api PUT /revoked-certificates "[\"$FP1\", \"$FP_ADMIN2\"]"
[ "$API_STATUS" = 200 ] || fail "PUT with the second admin: $API_STATUS $API_BODY"
wait_log "$TEST_TMP/mgmt-hold.log" '^closed '
t_closed=$(awk '$1 == "closed" { print $2 }' "$TEST_TMP/mgmt-hold.log")
echo "the revoked admin's open management connection closed $((t_closed - t0)) ms after the PUT"
[ $((t_closed - t0)) -le "$CLOSE_BOUND_MS" ] || fail "the admin connection closed after $((t_closed - t0)) ms"
wait "$HOLD_PID" 2>/dev/null || true
wait_log "$TEST_TMP/tunneld.log" "management: .*: closing the connection of certificate \"admin\" \(sha256 $FP_ADMIN2\): certificate revoked"
api_as admin2/admin GET /ping
[ "$API_STATUS" = 000 ] || fail "the revoked admin certificate still gets $API_STATUS"
wait_log "$TEST_TMP/tunneld.log" "management: .*: TLS handshake failed: client certificate rejected: certificate revoked \(listed in /revoked-certificates\); CN \"admin\", sha256 $FP_ADMIN2"
api_as admin GET /ping
[ "$API_STATUS" = 200 ] || fail "the other admin certificate was refused: $API_STATUS"
pass "a revoked admin certificate's live management connection is closed and it is refused afterwards"

# The list survives a restart.
stop_checked tunneld
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert sorted(d["RevokedCertificates"]) == sorted(sys.argv[2:]), d' \
  "$STATE_FILE" "$FP1" "$FP_ADMIN2" || fail "state file: $(cat "$STATE_FILE")"
start_tunneld
api GET /revoked-certificates
[ "$(json_get "$API_BODY" 'sorted(d)')" = "$(python3 -c 'import json,sys; print(json.dumps(sorted(sys.argv[1:])))' "$FP1" "$FP_ADMIN2")" ] ||
  fail "after a restart the list is $API_BODY"
wait_client_connected home2
[ "$(client_state home1)" = absent ] || fail "home1 connected after the restart: $API_BODY"
pass "the revoked list survives a restart (state file) and still refuses home1"

api PUT /revoked-certificates '[]'
[ "$API_STATUS" = 200 ] && [ "$(json_get "$API_BODY" 'd')" = "[]" ] || fail "emptying the list: $API_STATUS $API_BODY"
wait_client_connected home1
pass "an emptied list lets home1 back"

# ---- 2. CrlFile + SIGHUP ----
openssl ca -config "$CA_DIR/ca.cnf" -revoke "$PKI/home2.crt" 2>/dev/null
publish_crl
t0=$(now_ms)
kill -HUP "$TUNNELD_PID"
wait_until 10 client_down home2 || fail "home2's link is still up after a CRL revoking it was loaded"
took=$(($(log_ms "$TEST_TMP/tunnelc-home2.log" 'client home2: disconnected from') - t0))
echo "revoked through CrlFile: home2's link closed (by tunnelc's log) $took ms after SIGHUP"
[ "$took" -le "$CLOSE_BOUND_MS" ] || fail "closing took $took ms"
wait_log "$TEST_TMP/tunneld.log" "client home2: disconnected .*revoked by a CRL in CrlFile"
wait_log "$TEST_TMP/tunneld.log" "control: .*: TLS handshake failed: client certificate rejected: revoked by a CRL in CrlFile; CN \"home2\""
[ "$(client_state home1)" = ClientConnected ] || fail "home1 was disturbed by the CRL"
pass "a CRL loaded on SIGHUP closed home2's link in $took ms and refuses its reconnects"

echo "not a CRL" >"$CRL.bad"
cp "$CRL" "$CRL.good"
mv "$CRL.bad" "$CRL"
kill -HUP "$TUNNELD_PID"
wait_log "$TEST_TMP/tunneld.log" "certificate reload failed, keeping the loaded ones: .*\"CrlFile\": $CRL: not a CRL"
[ "$(client_state home1)" = ClientConnected ] || fail "a broken CRL on SIGHUP disturbed home1"
mv "$CRL.good" "$CRL"
pass "a broken CRL on SIGHUP is logged and the loaded one kept"

echo "not a CRL" >"$TEST_TMP/broken.crl"
sed "s|\"CrlFile\": \"$CRL\"|\"CrlFile\": \"$TEST_TMP/broken.crl\"|" "$TEST_TMP/tunneld.json" >"$TEST_TMP/tunneld-badcrl.json"
status=0
"$TUNNELD" --config "$TEST_TMP/tunneld-badcrl.json" >"$TEST_TMP/badcrl.out" 2>&1 || status=$?
[ "$status" != 0 ] || fail "tunneld started with a broken CrlFile"
grep -q "tunneld-badcrl.json: \"CrlFile\": $TEST_TMP/broken.crl: not a CRL" "$TEST_TMP/badcrl.out" ||
  fail "the start-up error does not name the file and field: $(cat "$TEST_TMP/badcrl.out")"
pass "a broken CrlFile at start is a config error: $(head -n1 "$TEST_TMP/badcrl.out")"

# tunnelc's CrlFile: a reload that revokes the server's certificate closes the link.
cp "$CRL" "$TEST_TMP/client.crl"
python3 - "$TEST_TMP/tunnelc-home1.json" "$TEST_TMP/client.crl" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["CrlFile"] = sys.argv[2]; json.dump(c, open(sys.argv[1], "w"))
PY
kill -HUP "$TUNNELC_PID_home1"
wait_log "$TEST_TMP/tunnelc-home1.log" 'configuration reloaded'
[ "$(client_state home1)" = ClientConnected ] || fail "a CRL that does not list the server disturbed home1"
openssl ca -config "$CA_DIR/ca.cnf" -revoke "$PKI/server.crt" 2>/dev/null
openssl ca -config "$CA_DIR/ca.cnf" -gencrl -out "$TEST_TMP/client.crl" 2>/dev/null
kill -HUP "$TUNNELC_PID_home1"
wait_log "$TEST_TMP/tunnelc-home1.log" 'the connected server is no longer trusted: server certificate rejected: revoked by a CRL in CrlFile'
wait_until 10 client_down home1 || fail "tunnelc kept its link to a revoked server"
wait_log "$TEST_TMP/tunnelc-home1.log" 'server certificate rejected: revoked by a CRL in CrlFile; CN "server"'
pass "tunnelc's CrlFile: a reload revoking the server's certificate closes the link and refuses the server"

stop_checked home1 home2 tunneld
