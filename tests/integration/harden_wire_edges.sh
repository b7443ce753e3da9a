#!/usr/bin/env bash
# Three edges an attack run found: a control message over 262144 bytes ended its link with GoAway(0) where
# docs/PROTOCOL.md says 1 (protocol error); a PUT /tunnels with "Transfer-Encoding: gzip, chunked" was de-chunked and
# applied as if plain JSON (it replaced the table); and PUT /revoked-certificates refused a fingerprint in the colon
# form openssl prints, which docs/PKI.md says is accepted wherever a fingerprint is read.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
HOSTILE="$TUNNEL_TOOLS/hostile_client"

make_pki
start_tunneld
P1=$(free_port); P2=$(free_port)

# 1. 300 KB on one control stream (sent within the stream's window): GoAway(1), that link only.
r=$("$HOSTILE" --port "$CONTROL_PORT" --ca "$PKI/ca.crt" --cert "$PKI/home2.crt" --key "$PKI/home2.key" \
  --mode control-message --message 0101000000000010 --size 307200 --seconds 20) || fail "hostile_client failed: $r"
echo "300 KB control message: $r"
grep -q "result: closed go_away=1$" <<<"$r" || fail "an oversized control message: $r, want closed go_away=1"
wait_log "$TEST_TMP/tunneld.log" "control message longer than 262144 bytes"

# 2. Transfer-Encoding other than chunked alone: 501 with a JSON error, the table as it was.
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P1, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 9}]"
api GET /tunnels; before=$API_BODY
body="[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P2, \"ClientIdentifier\": \"home2\", \"BackEndPort\": 9}]"
for te in "gzip, chunked" "identity" "deflate"; do
  code=$(printf '%s' "$body" | curl -sS -o "$TEST_TMP/te.out" -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" -X PUT -H 'Content-Type: application/json' \
    -H "Transfer-Encoding: $te" --data-binary @- "https://127.0.0.1:$MGMT_PORT/tunnels" 2>"$TEST_TMP/te.err") || code=000
  echo "PUT /tunnels with Transfer-Encoding: $te -> $code $(cat "$TEST_TMP/te.out")"
  [ "$code" = 501 ] || fail "Transfer-Encoding: $te answered $code, want 501"
  is_json_error "$(cat "$TEST_TMP/te.out")" && grep -q 'Transfer-Encoding not supported' "$TEST_TMP/te.out" ||
    fail "Transfer-Encoding: $te: not a JSON error naming the header: $(cat "$TEST_TMP/te.out")"
  api GET /tunnels; [ "$API_BODY" = "$before" ] || fail "Transfer-Encoding: $te changed the table: $API_BODY"
done

# 3. The colon form openssl prints (and its upper case) revokes, kept as 64 lowercase hex digits.
colon=$(openssl x509 -in "$PKI/home2.crt" -noout -fingerprint -sha256 | sed 's/.*=//')
api PUT /revoked-certificates "[\"$colon\"]"
echo "PUT /revoked-certificates [\"$colon\"] -> $API_STATUS $API_BODY"
[ "$API_STATUS" = 200 ] && [ "$API_BODY" = "[\"$(fingerprint "$PKI/home2.crt")\"]" ] ||
  fail "the colon form: $API_STATUS $API_BODY"
# The server's verdict is the proof: under TLS 1.3 the client's side of the handshake ends before the server has
# judged its certificate, so the client alone cannot tell a refusal from an accepted link.
r=$("$HOSTILE" --port "$CONTROL_PORT" --ca "$PKI/ca.crt" --cert "$PKI/home2.crt" --key "$PKI/home2.key" \
  --mode silent --seconds 1 2>&1) || true
echo "home2 after its colon-form revocation: $r"
wait_log "$TEST_TMP/tunneld.log" "control: .*: TLS handshake failed: client certificate rejected: certificate revoked \(listed in /revoked-certificates\); CN \"home2\""
client_connected home2 && fail "home2, revoked by its colon fingerprint, is connected"
pass "GoAway(1) for a 300 KB control message; Transfer-Encoding other than chunked is 501, table unchanged; colon fingerprints revoke"
