#!/usr/bin/env bash
# The TLS profile of PROTOCOL.md, checked from outside with openssl on both tunneld ports: no TLS 1.0/1.1; TLS 1.3
# only when tunneld is built on an mbedTLS that has it (3.x); ECDHE with CHACHA20-POLY1305 or AES-GCM, server's order
# CHACHA20 first; no CBC suite and no static-RSA key exchange; curves X25519, P-256, P-384 and no other;
# renegotiation refused. Every other test pins TLS 1.2; this one asks for everything else.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld

mbedtls_major=$(sed -nE 's/^#define MBEDTLS_VERSION_STRING +"([0-9]+)\..*/\1/p' /usr/include/mbedtls/*.h 2>/dev/null | head -n 1)
echo "tunneld built on mbedTLS ${mbedtls_major:-?}.x"

# hello PORT CERT [openssl options]: one handshake; prints openssl's summary; status 0 when it completed.
hello() {
  local port=$1 who=$2; shift 2
  openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$PKI/ca.crt" \
    -cert "$PKI/$who.crt" -key "$PKI/$who.key" -verify_return_error "$@" </dev/null >"$TEST_TMP/hello.out" 2>&1
  local rc=$?
  grep -E "^ *(Protocol|Cipher) *:|^(Server|Peer) Temp Key|alert|error" "$TEST_TMP/hello.out" | head -n 4 | tr '\n' ' '
  return $rc
}
# "New, TLSv1.x, Cipher is ..." is printed for every completed handshake; the "SSL-Session" block is not (OpenSSL 3.5
# prints it for TLS 1.3 only once a session ticket has arrived).
accepted() { hello "$@" >/dev/null && grep -qE "^New, TLSv1\.[0-9], Cipher is [A-Z]" "$TEST_TMP/hello.out"; }

for port_who in "$CONTROL_PORT home1" "$MGMT_PORT admin"; do
  read -r port who <<<"$port_who"
  echo "--- port $port ($who)"
  # The baseline: TLS 1.2 with the server's first choice.
  accepted "$port" "$who" -tls1_2 || fail "port $port: a TLS 1.2 handshake failed: $(cat "$TEST_TMP/hello.out" | tail -n 5)"
  grep -qE "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305" "$TEST_TMP/hello.out" ||
    fail "port $port: the server's first choice is not ECDHE-ECDSA-CHACHA20-POLY1305: $(grep Cipher "$TEST_TMP/hello.out")"
  # Old versions, refused even when the client is willing (SECLEVEL=0 lets openssl offer them).
  for v in -tls1 -tls1_1; do
    ! accepted "$port" "$who" "$v" -cipher 'DEFAULT:@SECLEVEL=0' || fail "port $port: $v accepted"
    echo "$v refused"
  done
  if accepted "$port" "$who" -tls1_3; then
    [ "${mbedtls_major:-2}" -ge 3 ] || fail "port $port: TLS 1.3 accepted, but this mbedTLS ($mbedtls_major.x) has none"
    echo "TLS 1.3 accepted (mbedTLS $mbedtls_major.x)"
  else
    [ "${mbedtls_major:-2}" -lt 3 ] || { tail -n 30 "$TEST_TMP/hello.out"; fail "port $port: TLS 1.3 refused by a tunneld on mbedTLS $mbedtls_major.x"; }
    echo "TLS 1.3 refused (mbedTLS ${mbedtls_major}.x: TLS 1.2 only)"
  fi
  # Each AEAD suite alone is accepted; CBC suites and static RSA key exchange are not.
  for c in ECDHE-ECDSA-CHACHA20-POLY1305 ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384; do
    accepted "$port" "$who" -tls1_2 -cipher "$c" || fail "port $port: $c refused"
  done
  for c in ECDHE-ECDSA-AES128-SHA256 ECDHE-ECDSA-AES256-SHA384 ECDHE-ECDSA-AES128-SHA ECDHE-RSA-AES128-SHA \
           AES128-GCM-SHA256 AES256-GCM-SHA384 AES128-SHA256 DHE-RSA-AES128-GCM-SHA256; do
    ! accepted "$port" "$who" -tls1_2 -cipher "$c:@SECLEVEL=0" || fail "port $port: $c accepted"
  done
  echo "CBC, static-RSA and DHE suites refused"
  # Renegotiation: openssl's "R" asks for it on a live session; the server must not do it. The session then
  # either ends or stays on its first handshake: openssl never reports a second one.
  { echo R; sleep 2; } | timeout 20 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$PKI/ca.crt" \
    -cert "$PKI/$who.crt" -key "$PKI/$who.key" -tls1_2 >"$TEST_TMP/reneg.out" 2>&1 || true
  grep -q "RENEGOTIATING" "$TEST_TMP/reneg.out" || fail "port $port: openssl did not try to renegotiate: $(tail -n 5 "$TEST_TMP/reneg.out")"
  grep -qiE "no renegotiation" "$TEST_TMP/reneg.out" ||
    fail "port $port: renegotiation was not refused: $(tail -n 8 "$TEST_TMP/reneg.out")"
  echo "renegotiation refused: $(grep -m1 -iE "no renegotiation" "$TEST_TMP/reneg.out")"
done
# Curves. In TLS 1.2 the client's group list also names the curves it accepts for the server's ECDSA key, so each
# probe offers the certificate's curve too and the ephemeral key shows which group was chosen.
# OpenSSL 3.0 calls the server's ephemeral key "Server Temp Key", 3.5 "Peer Temp Key".
temp_key() { grep -m1 -E "^(Server|Peer) Temp Key" "$TEST_TMP/hello.out" | sed -E 's/^(Server|Peer) Temp Key: //'; }
accepted "$CONTROL_PORT" home1 -tls1_2 -groups X25519:P-256 || fail "X25519 refused: $(head -n 3 "$TEST_TMP/hello.out")"
case $(temp_key) in X25519*) ;; *) fail "X25519 offered first but not chosen: $(temp_key)" ;; esac
accepted "$CONTROL_PORT" home1 -tls1_2 -groups P-256 || fail "P-256 refused"
case $(temp_key) in *prime256v1*|*P-256*) ;; *) fail "P-256 alone gave $(temp_key)" ;; esac
# P-384: a server certificate on P-384 (made with openssl from the same CA), taken in by SIGHUP, which is itself
# checked: new handshakes present the new certificate.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -subj /CN=server384 -keyout "$TEST_TMP/s384.key" \
  -out "$TEST_TMP/s384.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$TEST_TMP/s384.ext"
openssl x509 -req -in "$TEST_TMP/s384.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -days 30 -extfile "$TEST_TMP/s384.ext" \
  -out "$TEST_TMP/s384.crt" 2>/dev/null
install -m 0600 "$TEST_TMP/s384.key" "$PKI/server.key"; cp "$TEST_TMP/s384.crt" "$PKI/server.crt"
kill -HUP "$TUNNELD_PID"
wait_log "$TEST_TMP/tunneld.log" "server: certificates and CA reloaded from disk"
accepted "$CONTROL_PORT" home1 -tls1_2 -groups P-384 || fail "P-384 refused: $(head -n 3 "$TEST_TMP/hello.out")"
grep -q "CN *= *server384" "$TEST_TMP/hello.out" || fail "after SIGHUP the server still presents its old certificate"
case $(temp_key) in *secp384r1*|*P-384*) ;; *) fail "P-384 alone gave $(temp_key)" ;; esac
for g in P-521 ffdhe2048; do
  if accepted "$CONTROL_PORT" home1 -tls1_2 -groups "$g:P-384"; then
    case $(temp_key) in *secp384r1*|*P-384*) ;; *) fail "group $g was negotiated: $(temp_key)" ;; esac
  fi
done
echo "curves: X25519 (server's first), P-256, P-384 negotiated; P-521 and ffdhe2048 never"
# None of this disturbed tunneld.
api_ping || fail "tunneld does not answer after the TLS probes"
pass "TLS profile: 1.2 (1.3 only with mbedTLS 3), AEAD suites with ECDHE only, X25519/P-256/P-384, no renegotiation, on both ports"
