#!/usr/bin/env bash
# Who gets into the management port: a tunnel client's certificate (same CA) gets 403 JSON and a log line naming
# it; a certificate from another CA (even with CN "admin") and no certificate fail the TLS handshake; the admin
# keeps working throughout.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld
LOG="$TEST_TMP/tunneld.log"

admin_works() {
  api GET /tunnels
  [ "$API_STATUS" = 200 ] || fail "admin refused after $1: $API_STATUS $API_BODY"
}

# A tunnel client's certificate: TLS succeeds, every request is 403 with a JSON error naming the certificate.
for path in /tunnels /clients /ping; do
  api_as home1 GET "$path"
  echo "home1 GET $path -> $API_STATUS $API_BODY"
  [ "$API_STATUS" = 403 ] || fail "home1 on $path: expected 403, got $API_STATUS"
  is_json_error "$API_BODY" || fail "403 body is not a JSON error: $API_BODY"
  grep -q 'certificate \\"home1' <<<"$API_BODY" || fail "403 message does not name the certificate: $API_BODY"
done
api_as home1 PUT /tunnels
[ "$API_STATUS" = 403 ] || fail "home1 PUT: expected 403, got $API_STATUS"
wait_log "$LOG" 'management: 127\.0\.0\.1:[0-9]+: GET /tunnels refused: certificate CN "home1" is not in AdminIdentities'
admin_works "a client certificate"
api GET /metrics
grep -q '^tunneld_management_forbidden_total 4$' <<<"$API_BODY" || fail "forbidden requests not counted"
pass "tunnel client certificate: 403 JSON naming it, logged with the peer address"

# Another CA: no HTTP status at all, the handshake fails; its "admin" CN must not matter.
for who in other/stranger other/admin; do
  api_as "$who" GET /tunnels
  echo "$who -> status $API_STATUS, curl exit $API_CURL_RC: $(head -c 200 "$TEST_TMP/api_as.err")"
  [ "$API_STATUS" = 000 ] && [ "$API_CURL_RC" != 0 ] || fail "$who: expected a TLS failure, got HTTP $API_STATUS"
  admin_works "$who"
done
pass "certificates from another CA (CN stranger and CN admin) fail the TLS handshake"

# No certificate at all.
api_as "" GET /tunnels
echo "no certificate -> status $API_STATUS, curl exit $API_CURL_RC: $(head -c 200 "$TEST_TMP/api_as.err")"
[ "$API_STATUS" = 000 ] && [ "$API_CURL_RC" != 0 ] || fail "no certificate: expected a TLS failure, got HTTP $API_STATUS"
admin_works "no certificate"
# The refused handshakes are logged with the peer address: one line per way of failing and source (the second
# foreign-CA attempt within 10 s is counted, not logged: log lines are rate-limited per kind and source).
n=$(grep -cE 'management: 127\.0\.0\.1:[0-9]+: TLS handshake failed: ' "$LOG" || true)
echo "management handshake failures logged: $n"
[ "$n" -ge 2 ] || fail "expected 2 logged handshake failures on the management port (unknown CA, no certificate), got $n"
grep -q 'TLS handshake failed: .*unknown CA' "$LOG" || fail "the foreign-CA refusal does not say why"
grep -q 'TLS handshake failed: no client certificate' "$LOG" || fail "the missing-certificate refusal does not say why"
pass "no certificate fails the TLS handshake; the admin works meanwhile"

# Roles stay apart: an admin certificate is refused as a tunnel client on the control port.
timeout 10 openssl s_client -connect "127.0.0.1:$CONTROL_PORT" -tls1_2 -CAfile "$PKI/ca.crt" \
  -cert "$PKI/admin.crt" -key "$PKI/admin.key" </dev/null >"$TEST_TMP/s_client_admin.log" 2>&1 || true
wait_log "$LOG" 'certificate "admin" is an admin identity and cannot be a tunnel client'
api GET /clients
grep -q '"admin"' <<<"$API_BODY" && fail "an admin certificate was registered as a tunnel client: $API_BODY"
pass "an admin certificate cannot connect as a tunnel client"
