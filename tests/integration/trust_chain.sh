#!/usr/bin/env bash
# trust_chain: chains are checked as a CA would, with openssl-made certificates from the old docs/PKI.md recipe (a CA
# without pathlen, which mbedTLS alone would let sign through any CA:TRUE leaf).
#  1. The forged admin: a client certificate wrongly issued with CA:TRUE signs a certificate named "admin"; curl
#     presents the chain. Refused: the intermediate came from the peer, not from CaCertificateFile.
#  2. A CA:TRUE certificate is never a client: tunnelc with it is refused at the handshake.
#  3. An intermediate the operator lists in CaCertificateFile is trusted: a client whose certificate it issued is
#     refused while only the root is listed, and connects once the bundle lists the intermediate (SIGHUP).
#  4. The certificates a correct issuance gives (CA:FALSE leaves) work: the admin and home1.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

mkdir -p "$PKI"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$1.key" 2>/dev/null; }
# sign NAME SUBJECT ISSUER EXTENSION...: NAME.crt/NAME.key signed by ISSUER.crt/ISSUER.key
sign() {
  local name=$1 subj=$2 issuer=$3; shift 3
  key "$name"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$TEST_TMP/$name.csr"
  printf '%s\n' "$@" >"$TEST_TMP/$name.ext"
  openssl x509 -req -in "$TEST_TMP/$name.csr" -CA "$PKI/$issuer.crt" -CAkey "$PKI/$issuer.key" \
    -set_serial "0x$(openssl rand -hex 12)" -days 30 -sha256 -extfile "$TEST_TMP/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
}
LEAF=("basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature")
CLIENT=("${LEAF[@]}" "extendedKeyUsage=clientAuth")

# The old recipe's CA: CA:TRUE without pathlen.
key ca
openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=old recipe CA" -days 30 -out "$PKI/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
sign server "/CN=server" ca "${LEAF[@]}" "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"
sign admin "/CN=admin" ca "${CLIENT[@]}"
sign home1 "/CN=home1" ca "${CLIENT[@]}"
# The mistake: a client certificate issued with CA:TRUE ...
sign evil "/CN=home3" ca "basicConstraints=critical,CA:TRUE" "keyUsage=critical,digitalSignature,keyCertSign" \
  "extendedKeyUsage=clientAuth"
# ... which signs a certificate with the admin's name.
sign forged "/CN=admin" evil "${CLIENT[@]}"
cat "$PKI/forged.crt" "$PKI/evil.crt" >"$PKI/forged-chain.crt"
openssl verify -CAfile "$PKI/ca.crt" -untrusted "$PKI/evil.crt" "$PKI/forged.crt" >/dev/null ||
  fail "openssl itself does not accept the forged chain; the test would prove nothing"
# An intermediate CA the operator may choose to trust, and a client it issued (its file carries the chain).
sign ops-int "/CN=ops intermediate" ca "basicConstraints=critical,CA:TRUE,pathlen:0" "keyUsage=critical,keyCertSign,cRLSign"
sign home2 "/CN=home2" ops-int "${CLIENT[@]}"
cat "$PKI/home2.crt" "$PKI/ops-int.crt" >"$PKI/home2-chain.crt"

start_tunneld

# ---- 1. the forged admin ----
status=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/forged-chain.crt" \
  --key "$PKI/forged.key" "https://127.0.0.1:$MGMT_PORT/tunnels" 2>/dev/null) || true
[ "$status" = 000 ] || fail "the forged admin chain got HTTP $status"
wait_log "$TEST_TMP/tunneld.log" 'management: .*: TLS handshake failed: client certificate rejected: it is issued by an intermediate that is not in the CA file \(certificates the peer sends add no trust\); CN "admin"'
api_as admin GET /tunnels
[ "$API_STATUS" = 200 ] || fail "the real admin was refused: $API_STATUS"
pass "the forged admin chain is refused; the real admin certificate works"

# ---- 2. a CA:TRUE certificate as a client ----
start_tunnelc_as evil "$PKI/evil.crt" "$PKI/evil.key"
wait_log "$TEST_TMP/tunneld.log" 'control: .*: TLS handshake failed: client certificate rejected: it is a CA certificate \(basicConstraints CA:TRUE\), never a client; CN "home3"'
wait_log "$TEST_TMP/tunnelc-evil.log" 'peer rejected the handshake'
status=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/evil.crt" \
  --key "$PKI/evil.key" "https://127.0.0.1:$MGMT_PORT/ping" 2>/dev/null) || true
[ "$status" = 000 ] || fail "a CA:TRUE certificate got HTTP $status on the management port"
start_tunnelc home1
wait_client_connected home1
api GET /clients
[ "$(json_get "$API_BODY" 'd.get("home3")')" = null ] || fail "the CA:TRUE certificate shows up as a client: $API_BODY"
pass "a CA:TRUE certificate is refused as a client and as an admin; a CA:FALSE client connects"

# ---- 3. an intermediate is trusted only when the operator lists it ----
start_tunnelc_as home2 "$PKI/home2-chain.crt" "$PKI/home2.key"
wait_log "$TEST_TMP/tunneld.log" 'control: .*: TLS handshake failed: client certificate rejected: it is issued by an intermediate that is not in the CA file .*; CN "home2"'
cat "$PKI/ops-int.crt" >>"$PKI/ca.crt"   # tunnelc reads the same file; the root stays first
kill -HUP "$TUNNELD_PID"
wait_log "$TEST_TMP/tunneld.log" 'certificates and CA reloaded'
wait_client_connected home2
wait_client_connected home1   # the reload re-verified home1's live link and kept it
pass "an intermediate listed in CaCertificateFile is trusted; sent by the peer alone it is not"

stop_checked home1 home2 tunneld
