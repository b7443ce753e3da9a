#!/usr/bin/env bash
# tls_openssl.sh: tn_tls (through tools/tls_peer) against openssl s_server / s_client over loopback, both
# directions, with certificates from `tunneld pki` and from the openssl command line (ECDSA P-256, RSA 2048).
source "$(dirname "$0")/lib.sh"

PEER="$TUNNEL_TOOLS/tls_peer"
command -v openssl >/dev/null || fail "openssl not installed"
[ -x "$PEER" ] || fail "missing $PEER"

pki="$TEST_TMP/pki"
"$TUNNELD" pki init "$pki" >"$TEST_TMP/pki.log" 2>&1 || fail "pki init"
"$TUNNELD" pki issue "$pki" --name server --server --dns localhost --ip 127.0.0.1 >>"$TEST_TMP/pki.log" 2>&1 || fail "pki issue server"
"$TUNNELD" pki issue "$pki" --name client >>"$TEST_TMP/pki.log" 2>&1 || fail "pki issue client"
[ "$(stat -c %a "$pki")" = 700 ] || fail "CA directory mode is not 0700"
[ "$(stat -c %a "$pki/client.key")" = 600 ] || fail "client key mode is not 0600"

# openssl's own view of what tunneld pki wrote.
openssl verify -CAfile "$pki/ca.crt" -purpose sslserver "$pki/server.crt" >/dev/null || fail "openssl rejects the server certificate"
openssl verify -CAfile "$pki/ca.crt" -purpose sslclient "$pki/client.crt" >/dev/null || fail "openssl rejects the client certificate"
openssl x509 -in "$pki/server.crt" -noout -ext subjectAltName | grep -q "IP Address:127.0.0.1" || fail "no IP SAN seen by openssl"
fp_openssl=$(openssl x509 -in "$pki/client.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
"$TUNNELD" pki show "$pki/client.crt" | grep -q "SHA-256: *$fp_openssl" || fail "pki show fingerprint differs from openssl's"
pass "tunneld pki certificates verify with openssl"

# s_server_run NAME PORT CERT KEY CA [extra openssl args]: a one-shot s_server that reverses lines (-rev).
# Readiness comes from its "ACCEPT" line: a probing connect would use up its one accept.
s_server_run() {
  local name=$1 port=$2 cert=$3 key=$4 ca=$5; shift 5
  spawn "$name" openssl s_server -accept "127.0.0.1:$port" -tls1_2 -Verify 1 -verify_return_error \
    -cert "$cert" -key "$key" -CAfile "$ca" -naccept 1 -rev "$@"
  wait_log "$TEST_TMP/$name.log" "^ACCEPT"
}

# --- tn_tls client -> openssl s_server -------------------------------------------------------
port=$(free_port)
s_server_run s_server1 "$port" "$pki/server.crt" "$pki/server.key" "$pki/ca.crt"
"$PEER" client --connect "127.0.0.1:$port" --name 127.0.0.1 --ca "$pki/ca.crt" --cert "$pki/client.crt" \
  --key "$pki/client.key" --send "hello openssl" --expect "lssnepo olleh" >"$TEST_TMP/peer1.log" 2>&1 \
  || fail "tn_tls client vs s_server: $(cat "$TEST_TMP/peer1.log")"
grep -q "handshake ok: peer cn=server" "$TEST_TMP/peer1.log" || fail "no peer identity in client output"
grep -q "suite=TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256" "$TEST_TMP/peer1.log" || fail "unexpected suite: $(cat "$TEST_TMP/peer1.log")"
pass "tn_tls client -> openssl s_server (IP SAN 127.0.0.1, reversed echo)"

# --- openssl s_client -> tn_tls server -------------------------------------------------------
port=$(free_port)
spawn peer2 "$PEER" server --listen "$port" --ca "$pki/ca.crt" --cert "$pki/server.crt" --key "$pki/server.key" --echo-line
wait_log "$TEST_TMP/peer2.log" "listening on"
echo "hello tn_tls" | timeout 20 openssl s_client -connect "127.0.0.1:$port" -tls1_2 -verify_return_error \
  -CAfile "$pki/ca.crt" -cert "$pki/client.crt" -key "$pki/client.key" -verify_hostname localhost -quiet \
  >"$TEST_TMP/s_client2.log" 2>&1 || fail "s_client failed: $(cat "$TEST_TMP/s_client2.log")"
grep -q "echo: hello tn_tls" "$TEST_TMP/s_client2.log" || fail "no echo at s_client: $(cat "$TEST_TMP/s_client2.log")"
wait_log "$TEST_TMP/peer2.log" "handshake ok: peer cn=client"
pass "openssl s_client -> tn_tls server (client certificate, echo)"

# --- refusals seen through openssl -------------------------------------------------------------
# s_client without a certificate: the tn_tls server says why.
port=$(free_port)
spawn peer3 "$PEER" server --listen "$port" --ca "$pki/ca.crt" --cert "$pki/server.crt" --key "$pki/server.key" \
  --expect-error "no client certificate"
wait_log "$TEST_TMP/peer3.log" "listening on"
echo hi | timeout 20 openssl s_client -connect "127.0.0.1:$port" -tls1_2 -CAfile "$pki/ca.crt" -quiet \
  >"$TEST_TMP/s_client3.log" 2>&1 || true
wait_log "$TEST_TMP/peer3.log" "handshake failed: no client certificate"
pass "tn_tls server refuses a client without certificate"

# s_server presenting a client certificate: the tn_tls client's own EKU check (mbedTLS servers refuse to do this).
port=$(free_port)
s_server_run s_server4 "$port" "$pki/client.crt" "$pki/client.key" "$pki/ca.crt"
"$PEER" client --connect "127.0.0.1:$port" --name client --ca "$pki/ca.crt" --cert "$pki/client.crt" \
  --key "$pki/client.key" --expect-error "certificate not for server use" >"$TEST_TMP/peer4.log" 2>&1 \
  || fail "EKU not enforced by the client: $(cat "$TEST_TMP/peer4.log")"
pass "tn_tls client refuses a server using a client certificate (EKU)"

# Name mismatch against the IP SAN.
port=$(free_port)
s_server_run s_server5 "$port" "$pki/server.crt" "$pki/server.key" "$pki/ca.crt"
"$PEER" client --connect "127.0.0.1:$port" --name 127.0.0.2 --ca "$pki/ca.crt" --cert "$pki/client.crt" \
  --key "$pki/client.key" --expect-error "IP address mismatch" >"$TEST_TMP/peer5.log" 2>&1 \
  || fail "IP mismatch not detected: $(cat "$TEST_TMP/peer5.log")"
pass "tn_tls client refuses a server certificate without the dialled IP"

# --- certificates made with the openssl command line -------------------------------------------
o="$TEST_TMP/ossl"
mkdir -p "$o"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$o/ca.key" 2>/dev/null
openssl req -x509 -new -key "$o/ca.key" -subj "/CN=openssl test CA" -days 30 -out "$o/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null \
  || fail "openssl CA"
# issue_ossl NAME KEYALG EXTENSIONS
issue_ossl() {
  local name=$1 alg=$2 ext=$3
  if [ "$alg" = rsa ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$o/$name.key" 2>/dev/null
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$o/$name.key" 2>/dev/null
  fi
  openssl req -new -key "$o/$name.key" -subj "/CN=$name" -out "$o/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$o/$name.ext"
  openssl x509 -req -in "$o/$name.csr" -CA "$o/ca.crt" -CAkey "$o/ca.key" -CAcreateserial -days 30 \
    -sha256 -extfile "$o/$name.ext" -out "$o/$name.crt" 2>/dev/null || fail "openssl issue $name"
}
srv_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
cli_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
issue_ossl rsa-server rsa "$srv_ext"
issue_ossl rsa-client rsa "$cli_ext"
issue_ossl ec-server ec "$srv_ext"
issue_ossl ec-client ec "$cli_ext"

# tn_tls on both ends, openssl-made certificates, each key type in each role.
for combo in "rsa-server ec-client" "ec-server rsa-client"; do
  set -- $combo
  srv=$1 cli=$2
  port=$(free_port)
  spawn "peer-$srv" "$PEER" server --listen "$port" --ca "$o/ca.crt" --cert "$o/$srv.crt" --key "$o/$srv.key" --echo-line
  wait_log "$TEST_TMP/peer-$srv.log" "listening on"
  "$PEER" client --connect "127.0.0.1:$port" --name localhost --ca "$o/ca.crt" --cert "$o/$cli.crt" \
    --key "$o/$cli.key" --send "ping $cli" --expect "echo: ping $cli" >"$TEST_TMP/client-$cli.log" 2>&1 \
    || fail "$cli -> $srv: $(cat "$TEST_TMP/client-$cli.log")"
  wait_log "$TEST_TMP/peer-$srv.log" "handshake ok: peer cn=$cli"
  pass "tn_tls <-> tn_tls with openssl-made $srv and $cli"
done
# TLS 1.3 suites do not name the key type (the RSA key signs with RSA-PSS there); TLS 1.2's do.
if grep -qs '^#define MBEDTLS_SSL_PROTO_TLS1_3' /usr/include/mbedtls/mbedtls_config.h; then
  grep -q "peer cn=rsa-server .*suite=TLS1-3-CHACHA20-POLY1305-SHA256 version=TLSv1.3" "$TEST_TMP/client-ec-client.log" \
    || fail "RSA server did not negotiate TLS 1.3: $(cat "$TEST_TMP/client-ec-client.log")"
else
  grep -q "suite=TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256" "$TEST_TMP/client-ec-client.log" \
    || fail "RSA server did not negotiate ECDHE-RSA: $(cat "$TEST_TMP/client-ec-client.log")"
fi

# And the openssl-made RSA pair against openssl itself, through tn_tls in each role.
# mbedTLS 3.6 with TLS 1.3 offers RSA-PSS signatures (1.3 needs them) but cannot check one in a TLS 1.2
# ServerKeyExchange, which openssl as a 1.2-only server then sends: that server is told to sign PKCS#1 here.
# tunneld never meets this: mbedTLS servers sign TLS 1.2 with PKCS#1.
rsa12=()
grep -qs '^#define MBEDTLS_SSL_PROTO_TLS1_3' /usr/include/mbedtls/mbedtls_config.h && rsa12=(-sigalgs RSA+SHA256:ECDSA+SHA256:RSA+SHA384:ECDSA+SHA384)
port=$(free_port)
s_server_run s_server6 "$port" "$o/rsa-server.crt" "$o/rsa-server.key" "$o/ca.crt" "${rsa12[@]}"
"$PEER" client --connect "127.0.0.1:$port" --name localhost --ca "$o/ca.crt" --cert "$o/ec-client.crt" \
  --key "$o/ec-client.key" --send "abc" --expect "cba" >"$TEST_TMP/peer6.log" 2>&1 \
  || fail "tn_tls client vs s_server (RSA): $(cat "$TEST_TMP/peer6.log")"
port=$(free_port)
spawn peer7 "$PEER" server --listen "$port" --ca "$o/ca.crt" --cert "$o/ec-server.crt" --key "$o/ec-server.key" --echo-line
wait_log "$TEST_TMP/peer7.log" "listening on"
echo "from rsa client" | timeout 20 openssl s_client -connect "127.0.0.1:$port" -tls1_2 -verify_return_error \
  -CAfile "$o/ca.crt" -cert "$o/rsa-client.crt" -key "$o/rsa-client.key" -verify_ip 127.0.0.1 -quiet \
  >"$TEST_TMP/s_client7.log" 2>&1 || fail "s_client (RSA client): $(cat "$TEST_TMP/s_client7.log")"
grep -q "echo: from rsa client" "$TEST_TMP/s_client7.log" || fail "no echo: $(cat "$TEST_TMP/s_client7.log")"
pass "openssl-made RSA 2048 certificates with openssl on the other end, both roles"

# A CA from tunneld pki does not vouch for openssl's CA's certificates (wrong CA, through openssl).
port=$(free_port)
s_server_run s_server8 "$port" "$o/ec-server.crt" "$o/ec-server.key" "$o/ca.crt"
"$PEER" client --connect "127.0.0.1:$port" --name localhost --ca "$pki/ca.crt" --cert "$pki/client.crt" \
  --key "$pki/client.key" --expect-error "unknown CA" >"$TEST_TMP/peer8.log" 2>&1 \
  || fail "wrong CA accepted: $(cat "$TEST_TMP/peer8.log")"
pass "tn_tls client refuses a server from another CA"

# --- protocol versions -------------------------------------------------------------------------
# TLS 1.3 when the build's mbedTLS has it (3.x), with openssl's defaults on the other end; never below 1.2, never CBC.
tls13=0
grep -qs '^#define MBEDTLS_SSL_PROTO_TLS1_3' /usr/include/mbedtls/mbedtls_config.h && tls13=1
port=$(free_port)
spawn s_server10 openssl s_server -accept "127.0.0.1:$port" -Verify 1 -verify_return_error \
  -cert "$pki/server.crt" -key "$pki/server.key" -CAfile "$pki/ca.crt" -naccept 1 -rev
wait_log "$TEST_TMP/s_server10.log" "^ACCEPT"
"$PEER" client --connect "127.0.0.1:$port" --name 127.0.0.1 --ca "$pki/ca.crt" --cert "$pki/client.crt" \
  --key "$pki/client.key" --send "hello any version" --expect "noisrev yna olleh" >"$TEST_TMP/peer10.log" 2>&1 \
  || fail "tn_tls client vs s_server (any version): $(cat "$TEST_TMP/peer10.log")"
if [ "$tls13" = 1 ]; then
  grep -q "suite=TLS1-3-CHACHA20-POLY1305-SHA256 version=TLSv1.3" "$TEST_TMP/peer10.log" ||
    fail "TLS 1.3 with CHACHA20-POLY1305 not negotiated: $(cat "$TEST_TMP/peer10.log")"
else
  grep -q "version=TLSv1.2" "$TEST_TMP/peer10.log" || fail "not TLS 1.2: $(cat "$TEST_TMP/peer10.log")"
fi
pass "tn_tls client -> openssl s_server with every version allowed: TLSv1.$((2 + tls13)) (session tickets ignored)"

port=$(free_port)
spawn peer11 "$PEER" server --listen "$port" --ca "$pki/ca.crt" --cert "$pki/server.crt" --key "$pki/server.key" --echo-line
wait_log "$TEST_TMP/peer11.log" "listening on"
if echo "hello 1.3" | timeout 20 openssl s_client -connect "127.0.0.1:$port" -tls1_3 -verify_return_error \
  -CAfile "$pki/ca.crt" -cert "$pki/client.crt" -key "$pki/client.key" -verify_hostname localhost -quiet \
  >"$TEST_TMP/s_client11.log" 2>&1 && grep -q "echo: hello 1.3" "$TEST_TMP/s_client11.log"; then
  [ "$tls13" = 1 ] || fail "a TLS 1.2-only build accepted TLS 1.3: $(cat "$TEST_TMP/s_client11.log")"
  wait_log "$TEST_TMP/peer11.log" "handshake ok: peer cn=client .* version=TLSv1.3"
else
  [ "$tls13" = 0 ] || fail "s_client -tls1_3 refused: $(cat "$TEST_TMP/s_client11.log")"
fi
pass "openssl s_client -tls1_3 -> tn_tls server: $([ "$tls13" = 1 ] && echo accepted || echo refused)"

# TLS 1.1 and a CBC suite under 1.2 are refused (openssl's own floor lowered so that it offers them).
for try in "-tls1_1 -cipher DEFAULT:@SECLEVEL=0" "-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA256:@SECLEVEL=0"; do
  port=$(free_port)
  spawn peer12 "$PEER" server --listen "$port" --ca "$pki/ca.crt" --cert "$pki/server.crt" --key "$pki/server.key" \
    --expect-error "handshake"
  wait_log "$TEST_TMP/peer12.log" "listening on"
  # shellcheck disable=SC2086
  if echo hi | timeout 20 openssl s_client -connect "127.0.0.1:$port" $try -CAfile "$pki/ca.crt" \
    -cert "$pki/client.crt" -key "$pki/client.key" -quiet >"$TEST_TMP/s_client12.log" 2>&1 &&
    grep -q "echo" "$TEST_TMP/s_client12.log"; then
    fail "s_client $try was served: $(cat "$TEST_TMP/s_client12.log")"
  fi
  wait_log "$TEST_TMP/peer12.log" "handshake failed"
  kill "$SPAWNED_PID" 2>/dev/null || true
done
pass "TLS 1.1 and CBC suites refused"

# An encrypted key is refused with a clear reason.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:secret -out "$o/enc.key" 2>/dev/null
if "$PEER" client --connect 127.0.0.1:1 --name localhost --ca "$o/ca.crt" --cert "$o/ec-client.crt" \
  --key "$o/enc.key" >"$TEST_TMP/peer9.log" 2>&1; then fail "encrypted key accepted"; fi
grep -q "protected by a passphrase" "$TEST_TMP/peer9.log" || fail "unclear error: $(cat "$TEST_TMP/peer9.log")"
grep -q secret "$TEST_TMP/peer9.log" && fail "passphrase leaked into output"
pass "encrypted key refused with a clear reason"
