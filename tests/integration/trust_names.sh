#!/usr/bin/env bash
# trust_names: one certificate, one identity, never normalised.
#  1. Client certificates from the real CA whose subject does not name one clear identity (no CN, two CNs, a
#     multi-valued RDN with two CNs, a CN over the 64-byte limit, invalid UTF-8, a control byte, a CN shaped like a
#     fingerprint, a right-to-left override U+202E, a zero width space U+200B) are refused at the control port's
#     handshake with a log line saying which; tunnelc refuses to start with one. GET /clients, /metrics and the log
#     stay valid UTF-8 and list none of them, and the log holds neither invisible character.
#  2. The fingerprint form of ClientIdentifier works end to end: a tunnel naming home2's fingerprint routes to the
#     link presenting that certificate (ActiveClient shows its CN); one naming a certificate that is not connected
#     routes nowhere; a fingerprint in another spelling is a 400.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
# sign NAME [req options...]: a client certificate from the CA for the subject the options give.
sign() {
  local name=$1; shift
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/odd-$name.key" 2>/dev/null
  openssl req -new -key "$PKI/odd-$name.key" -out "$TEST_TMP/$name.csr" "$@"
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth" \
    >"$TEST_TMP/client.ext"
  openssl x509 -req -in "$TEST_TMP/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 12)" \
    -days 30 -sha256 -extfile "$TEST_TMP/client.ext" -out "$PKI/odd-$name.crt" 2>/dev/null
}
# resign NAME BYTE_HEX: NAME's CN "hXme" with X replaced by the raw byte, signed again by the CA (openssl will not
# write such a name itself, nor load it; a CA that copies names without checking would write it). The same
# re-signing with a plain "A" must give a certificate openssl verifies, which shows the signature is right.
resign() {
  cp "$PKI/odd-$1.crt" "$TEST_TMP/plain-$1.crt"
  resign_py "$TEST_TMP/plain-$1.crt" 41
  openssl verify -CAfile "$PKI/ca.crt" "$TEST_TMP/plain-$1.crt" >/dev/null 2>&1 || fail "re-signing $1 gives a bad signature"
  resign_py "$PKI/odd-$1.crt" "$2"
}
resign_py() {
  python3 - "$1" "$PKI/ca.key" "$2" <<'PY'
import base64, subprocess, sys
path, cakey, byte = sys.argv[1], sys.argv[2], bytes([int(sys.argv[3], 16)])
pem = open(path).read()
der = base64.b64decode("".join(l for l in pem.splitlines() if not l.startswith("-----")))
def tlv(d, i):  # (start of value, end) of the DER element at i
    n = d[i + 1]; i += 2
    if n & 0x80:
        k = n & 0x7f; n = int.from_bytes(d[i:i + k], "big"); i += k
    return i, i + n
def length(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b
outer, _ = tlv(der, 0)
_, tbs_end = tlv(der, outer)
_, alg_end = tlv(der, tbs_end)
tbs = der[outer:tbs_end]
assert tbs.count(b"hXme") == 1
tbs = tbs.replace(b"hXme", b"h" + byte + b"me")
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", cakey], input=tbs, capture_output=True, check=True).stdout
body = tbs + der[tbs_end:alg_end] + b"\x03" + length(len(sig) + 1) + b"\x00" + sig
cert = b"\x30" + length(len(body)) + body
b64 = base64.encodebytes(cert).decode().replace("\n", "")
open(path, "w").write("-----BEGIN CERTIFICATE-----\n" + "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) + "\n-----END CERTIFICATE-----\n")
PY
}

sign none -subj "/O=acme/OU=no name"
sign two -subj "/CN=home1/CN=home3"
sign multi -multivalue-rdn -subj "/CN=home1+CN=home3"
sign long -utf8 -subj "/CN=$(printf 'é%.0s' $(seq 33))"
sign badutf8 -subj "/CN=hXme" && resign badutf8 ff
sign control -subj "/CN=hXme" && resign control 01
sign hexname -subj "/CN=$(printf 'ab%.0s' $(seq 32))"
sign bidi -utf8 -subj "/CN=home1$(printf '\u202e')gnp.exe"     # a right-to-left override: shows as "home1exe.png"
sign zwsp -utf8 -subj "/CN=home$(printf '\u200b')1"            # a zero width space: shows as "home1"
declare -A WHY=(
  [none]='certificate has no CN \(its CN is the identity\)'
  [two]='certificate has 2 CN attributes \(one certificate names one identity\)'
  [multi]='certificate has 2 CN attributes \(one certificate names one identity\)'
  [long]='CN is 66 bytes, longer than the identity limit of 64 bytes'
  [badutf8]='CN is not valid UTF-8 \(byte 0xff at offset 1\)'
  [control]='CN holds a control character \(U\+0001 at offset 1\)'
  [hexname]='CN is 64 hex digits, the form that names a certificate by its fingerprint'
  [bidi]='CN holds an invisible or bidi character \(U\+202E at offset 5\)'
  [zwsp]='CN holds an invisible or bidi character \(U\+200B at offset 4\)'
)

start_tunneld
start_tunnelc home1
wait_client_connected home1

# ---- 1. odd names at the control port ----
for name in none two multi long badutf8 control hexname bidi zwsp; do
  # tn_tls's own client: openssl refuses to load a certificate whose UTF8String is not UTF-8.
  "$TUNNEL_TOOLS/tls_peer" client --connect "127.0.0.1:$CONTROL_PORT" --name 127.0.0.1 --ca "$PKI/ca.crt" \
    --cert "$PKI/odd-$name.crt" --key "$PKI/odd-$name.key" --expect-error 'peer rejected the handshake' \
    >"$TEST_TMP/peer-$name.out" 2>&1 || fail "$name: the handshake did not fail as expected: $(cat "$TEST_TMP/peer-$name.out")"
  fp=$(python3 -c 'import base64, hashlib, sys
pem = open(sys.argv[1]).read()
print(hashlib.sha256(base64.b64decode("".join(l for l in pem.splitlines() if not l.startswith("-----")))).hexdigest())' "$PKI/odd-$name.crt")
  wait_log "$TEST_TMP/tunneld.log" "control: .*: TLS handshake failed: client certificate rejected: ${WHY[$name]}; (CN \"[^\"]*\", )?sha256 $fp"
  echo "$name: $(grep -F "$fp" "$TEST_TMP/tunneld.log" | head -n1 | sed 's/.*client certificate rejected: //')"
done
pass "certificates whose subject is not one clear identity are refused at the handshake, each with its reason"

status=0
start_tunnelc_as badutf8 "$PKI/odd-badutf8.crt" "$PKI/odd-badutf8.key"
wait "$TUNNELC_PID_badutf8" 2>/dev/null || status=$?
[ "$status" != 0 ] || fail "tunnelc started with a certificate tunneld refuses"
grep -q '"ClientTlsCertificateFile": .*odd-badutf8.crt: CN is not valid UTF-8 (byte 0xff at offset 1); tunneld refuses such a certificate' \
  "$TEST_TMP/tunnelc-badutf8.log" || fail "tunnelc's start-up error: $(cat "$TEST_TMP/tunnelc-badutf8.log")"
pass "tunnelc refuses to start with such a certificate: $(tail -n1 "$TEST_TMP/tunnelc-badutf8.log")"

api GET /clients
[ "$API_STATUS" = 200 ] || fail "GET /clients: $API_STATUS"
[ "$(json_get "$API_BODY" 'sorted(d)')" = '["home1"]' ] || fail "GET /clients lists more than home1: $API_BODY"
api GET /metrics
[ "$API_STATUS" = 200 ] || fail "GET /metrics: $API_STATUS"
curl -sS --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
  "https://127.0.0.1:$MGMT_PORT/metrics" -o "$TEST_TMP/metrics.txt"
python3 - "$TEST_TMP/metrics.txt" "$TEST_TMP/tunneld.log" <<'PY' || fail "invalid UTF-8 or a malformed sample line"
import re, sys
metrics = open(sys.argv[1], "rb").read().decode("utf-8")   # strict: raises on invalid UTF-8
sample = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\\n]|\\[\\"n])*",?)*\})? [0-9]+$')
for line in metrics.splitlines():
    assert line.startswith("#") or sample.match(line), line
log = open(sys.argv[2], "rb").read().decode("utf-8")
assert "\u202e" not in log and "\u200b" not in log, "an invisible character in the log"
PY
pass "GET /clients and /metrics stay valid (UTF-8, well-formed samples), and so does the log"

# ---- 2. a tunnel pinned to a certificate by its fingerprint ----
issue_twin "$PKI/twin" home2
WEB1=$(free_port); WEB2=$(free_port)
start_marker_nginx web1 "$WEB1" home1
start_marker_nginx web2 "$WEB2" home2
stop_checked home1
start_tunnelc home1 '[]' "{\"web\": \"127.0.0.1:$WEB1\"}"
start_tunnelc home2 '[]' "{\"web\": \"127.0.0.1:$WEB2\"}"
wait_client_connected home1
wait_client_connected home2
FP2=$(fingerprint "$PKI/home2.crt")
FP_TWIN=$(fingerprint "$PKI/twin/home2.crt")
P1=$(free_port); P2=$(free_port)
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P1, \"ClientIdentifier\": \"$FP2\", \"BackEndService\": \"web\"},
              {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P2, \"ClientIdentifier\": \"$FP_TWIN\",
               \"BackupClientIdentifiers\": [\"home1\"], \"BackEndService\": \"web\"}]"
[ "$(json_get "$API_BODY" 'd[0]["ActiveClient"]')" = home2 ] || fail "the pinned tunnel's ActiveClient: $API_BODY"
[ "$(json_get "$API_BODY" 'd[1]["ActiveClient"]')" = home1 ] || fail "a tunnel pinned to an absent certificate: $API_BODY"
wait_port "$P1"
[ "$(http_get_marker 127.0.0.1 "$P1")" = home2 ] || fail "the pinned tunnel did not reach home2"
[ "$(http_get_marker 127.0.0.1 "$P2")" = home1 ] || fail "the backup of a tunnel pinned to an absent certificate"
api PUT /tunnels "[{\"ListenPort\": $P1, \"ClientIdentifier\": \"${FP2^^}\", \"BackEndService\": \"web\"}]"
[ "$API_STATUS" = 400 ] && is_json_error "$API_BODY" || fail "an upper-case fingerprint: $API_STATUS $API_BODY"
pass "ClientIdentifier as a fingerprint routes to the link presenting that certificate; other spellings are a 400"

stop_checked home1 home2 tunneld
