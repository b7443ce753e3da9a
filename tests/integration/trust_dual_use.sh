#!/usr/bin/env bash
# trust_dual_use: one certificate is never both client and server (docs/PKI.md, "Roles").
# A certificate from the real CA with a CN and nothing else (no subjectAltName, no extended key usage: openssl x509
# -req without extensions makes one) was taken by tunneld as a client and by tunnelc as its server, dialled by its
# CN as ServerName (mbedTLS matches the CN when there is no subjectAltName).
#  1. As tunnelc's client certificate: tunnelc refuses to start, naming ClientTlsCertificateFile; presented by
#     openssl s_client at the control port, tunneld refuses the handshake with a log line saying why.
#  2. As tunneld's server certificate: tunneld --check-config and tunneld itself refuse it, naming
#     ServerTlsCertificateFile; presented by openssl s_server, tunnelc (ServerName = its CN) refuses the server with
#     a log line saying why. Also a server certificate with serverAuth but no subjectAltName: refused both ways.
#  3. The right certificates still meet: home1 connects to tunneld.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
# sign NAME [extension lines...]: a certificate for CN=NAME from the test CA with exactly those extensions.
sign() {
  local name=$1; shift
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$name.key" 2>/dev/null
  chmod 600 "$PKI/$name.key"
  openssl req -new -key "$PKI/$name.key" -subj "/CN=$name" -out "$TEST_TMP/$name.csr" 2>/dev/null
  printf '%s\n' "$@" >"$TEST_TMP/$name.ext"
  openssl x509 -req -in "$TEST_TMP/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -set_serial "0x$(openssl rand -hex 12)" -days 30 -sha256 -extfile "$TEST_TMP/$name.ext" -out "$PKI/$name.crt" \
    2>>"$TEST_TMP/openssl.log" || fail "openssl: certificate for $name"
}
sign dual "basicConstraints=CA:FALSE"
sign nosan "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth"
text=$(openssl x509 -in "$PKI/dual.crt" -noout -text)
! grep -q "Extended Key Usage\|Subject Alternative Name" <<<"$text" || fail "dual.crt has EKU or SAN: $text"
openssl verify -CAfile "$PKI/ca.crt" "$PKI/dual.crt" >/dev/null || fail "dual.crt does not verify with the CA"
FP=$(fingerprint "$PKI/dual.crt")
NO_EKU_CLIENT='it has no extended key usage \(a client certificate needs clientAuth; one for any use could act as client and server\)'
NO_EKU_SERVER='it has no extended key usage \(a server certificate needs serverAuth; one for any use could act as client and server\)'
NO_SAN='it has no DNS or IP subjectAltName \(a server certificate names its host there; the CN is never taken as a host name\)'

# ---- 1. as a client ----
start_tunneld
start_tunnelc_as dual "$PKI/dual.crt" "$PKI/dual.key"
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_until 60 gone "$TUNNELC_PID_dual" ||
  fail "tunnelc runs with a certificate without extended key usage: $(tail -n2 "$TEST_TMP/tunnelc-dual.log")"
status=0
wait "$TUNNELC_PID_dual" 2>/dev/null || status=$?
[ "$status" != 0 ] || fail "tunnelc ran with a certificate without extended key usage"
grep -Eq "\"ClientTlsCertificateFile\": $PKI/dual.crt: cannot be the client certificate: $NO_EKU_CLIENT" \
  "$TEST_TMP/tunnelc-dual.log" || fail "tunnelc's start-up error: $(cat "$TEST_TMP/tunnelc-dual.log")"
pass "tunnelc refuses to start with it: $(tail -n1 "$TEST_TMP/tunnelc-dual.log")"

# s_client keeps its side open until tunneld's refusal has closed it, so the log line is there to wait for.
timeout 20 openssl s_client -connect "127.0.0.1:$CONTROL_PORT" -tls1_2 -CAfile "$PKI/ca.crt" \
  -cert "$PKI/dual.crt" -key "$PKI/dual.key" </dev/null >"$TEST_TMP/s_client.log" 2>&1 || true
wait_log "$TEST_TMP/tunneld.log" \
  "control: .*: TLS handshake failed: client certificate rejected: $NO_EKU_CLIENT; CN \"dual\", sha256 $FP"
api GET /clients
[ "$API_STATUS" = 200 ] && [ "$(json_get "$API_BODY" 'sorted(d)')" = '[]' ] || fail "GET /clients: $API_STATUS $API_BODY"
pass "tunneld refuses it as a client: $(grep -F "$FP" "$TEST_TMP/tunneld.log" | head -n1 | sed 's/.*TLS handshake failed: //')"
stop_checked tunneld

# ---- 2. as a server ----
cp "$TEST_TMP/tunneld.json" "$TEST_TMP/tunneld-dual.json"
sed -i "s|$PKI/server.crt|$PKI/dual.crt|; s|$PKI/server.key|$PKI/dual.key|" "$TEST_TMP/tunneld-dual.json"
status=0
"$TUNNELD" --check-config --service-user "$(id -un)" --init-state --config "$TEST_TMP/tunneld-dual.json" >"$TEST_TMP/check.out" 2>&1 || status=$?
[ "$status" = 1 ] || fail "tunneld --check-config exited $status with the dual-use certificate: $(cat "$TEST_TMP/check.out")"
grep -Eq "\"ServerTlsCertificateFile\": $PKI/dual.crt: cannot be the server certificate: $NO_EKU_SERVER" \
  "$TEST_TMP/check.out" || fail "tunneld --check-config: $(cat "$TEST_TMP/check.out")"
status=0
# A tunneld that took the certificate would run: the timeout only ends that failure.
timeout 60 "$TUNNELD" --config "$TEST_TMP/tunneld-dual.json" >"$TEST_TMP/tunneld-dual.log" 2>&1 || status=$?
[ "$status" = 1 ] && grep -Eq "cannot be the server certificate: $NO_EKU_SERVER" "$TEST_TMP/tunneld-dual.log" ||
  fail "tunneld ran with the dual-use certificate ($status): $(cat "$TEST_TMP/tunneld-dual.log")"
pass "tunneld --check-config and tunneld refuse it: $(tail -n1 "$TEST_TMP/check.out")"

# serve NAME CERT KEY: openssl s_server presenting CERT on a free port ($SPORT), asking for a client certificate.
# Readiness comes from its "ACCEPT" line: a probing connect would use up its one accept.
serve() {
  SPORT=$(free_port)
  spawn "$1" openssl s_server -accept "127.0.0.1:$SPORT" -tls1_2 -Verify 1 -cert "$2" -key "$3" \
    -CAfile "$PKI/ca.crt" -naccept 1 -rev
  wait_log "$TEST_TMP/$1.log" "^ACCEPT"
}
# dial LABEL NAME: tunnelc home1 to 127.0.0.1:$SPORT with ServerName NAME (the name its certificate must carry).
dial() {
  cat >"$TEST_TMP/tunnelc-$1.json" <<JSON
{
  "ServerHost": "127.0.0.1",
  "ServerName": "$2",
  "ServerTunnelControlPort": $SPORT,
  "CaCertificateFile": "$PKI/ca.crt",
  "ClientTlsCertificateFile": "$PKI/home1.crt",
  "ClientTlsKeyFile": "$PKI/home1.key",
  "AllowedBackEndPorts": [],
  "DebugLog": true,
  "Limits": $FAST_CLIENT_LIMITS
}
JSON
  spawn_checked "tunnelc-$1" "$TUNNELC" --config "$TEST_TMP/tunnelc-$1.json"
  printf -v "TUNNELC_PID_$1" '%s' "$SPAWNED_PID"
}

serve s_server_dual "$PKI/dual.crt" "$PKI/dual.key"
dial todual dual
wait_log "$TEST_TMP/tunnelc-todual.log" "TLS handshake failed: server certificate rejected: $NO_EKU_SERVER; CN \"dual\""
! grep -q "connected to" "$TEST_TMP/tunnelc-todual.log" || fail "tunnelc connected to the dual-use server"
stop_checked todual
pass "tunnelc refuses it as its server: $(grep -m1 'TLS handshake failed' "$TEST_TMP/tunnelc-todual.log" | sed 's/.*TLS handshake failed: //')"

serve s_server_nosan "$PKI/nosan.crt" "$PKI/nosan.key"
dial tonosan nosan
wait_log "$TEST_TMP/tunnelc-tonosan.log" "TLS handshake failed: server certificate rejected: $NO_SAN; CN \"nosan\""
! grep -q "connected to" "$TEST_TMP/tunnelc-tonosan.log" || fail "tunnelc connected to a server without SAN"
stop_checked tonosan
sed -i "s|$PKI/dual.crt|$PKI/nosan.crt|; s|$PKI/dual.key|$PKI/nosan.key|" "$TEST_TMP/tunneld-dual.json"
status=0
"$TUNNELD" --check-config --service-user "$(id -un)" --init-state --config "$TEST_TMP/tunneld-dual.json" >"$TEST_TMP/check-nosan.out" 2>&1 || status=$?
[ "$status" = 1 ] && grep -Eq "\"ServerTlsCertificateFile\": $PKI/nosan.crt: cannot be the server certificate: $NO_SAN" \
  "$TEST_TMP/check-nosan.out" || fail "tunneld --check-config with nosan.crt ($status): $(cat "$TEST_TMP/check-nosan.out")"
pass "a server certificate with serverAuth but no subjectAltName: refused by tunnelc (dialled by its CN) and by --check-config"

# ---- 3. the right certificates ----
start_tunneld
start_tunnelc home1
wait_client_connected home1
stop_checked home1 tunneld
pass "certificates with the right extended key usage and names still meet"
