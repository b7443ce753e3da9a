#!/usr/bin/env bash
# Every PUT /tunnels error status (400 JSON, 400 field, 400 duplicate, 400 server's own ports, 400 hostname glob,
# 409 port bound elsewhere, 413, 415) and 405/404 answer a JSON {"error": ...}, and after each the previous table
# is still in force: GET shows it and its public port still reaches the backend.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld
BACKEND_PORT=$(free_port)
PUBLIC_PORT=$(free_port)
mkdir -p "$TEST_TMP/www"
echo "old table answers" >"$TEST_TMP/www/index.html"
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT"
start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
TABLE=$API_BODY
wait_port "$PUBLIC_PORT"

# mgmt_req METHOD PATH CONTENT_TYPE BODY_FILE: raw admin request; status in $API_STATUS, body in $API_BODY,
# response headers in $TEST_TMP/headers.
mgmt_req() {
  local method=$1 path=$2 ctype=$3 file=${4:-}
  local args=(-sS -o "$TEST_TMP/resp.out" -D "$TEST_TMP/headers" -w '%{http_code}' --max-time 20
              --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" -X "$method")
  [ -n "$ctype" ] && args+=(-H "Content-Type: $ctype")
  [ -n "$file" ] && args+=(--data-binary "@$file")
  API_STATUS=$(curl "${args[@]}" "https://127.0.0.1:$MGMT_PORT$path" 2>"$TEST_TMP/curl.err") || API_STATUS=000
  API_BODY=$(cat "$TEST_TMP/resp.out" 2>/dev/null || true)
}

# put_expect STATUS PATTERN WHAT JSON: PUT must answer STATUS with a JSON error matching PATTERN.
put_expect() {
  local status=$1 pattern=$2 what=$3
  printf '%s' "$4" >"$TEST_TMP/body.json"
  mgmt_req PUT /tunnels application/json "$TEST_TMP/body.json"
  check_error "$status" "$pattern" "$what"
}

check_error() {
  local status=$1 pattern=$2 what=$3
  echo "$what -> $API_STATUS $API_BODY"
  [ "$API_STATUS" = "$status" ] || fail "$what: expected $status, got $API_STATUS: $API_BODY"
  grep -qi '^Content-Type: application/json' "$TEST_TMP/headers" || fail "$what: error not application/json"
  # One python start per check (they cost up to a second each on a loaded machine): shape check and message.
  local msg; msg=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert isinstance(d,dict) and list(d)==["error"] and isinstance(d["error"],str) and d["error"]; print(d["error"])' "$API_BODY") ||
    fail "$what: body is not {\"error\": \"...\"}: $API_BODY"
  grep -qE -- "$pattern" <<<"$msg" || fail "$what: message '$msg' does not match '$pattern'"
  old_table_in_force "$what"
}

# The table without its live counter: a connection from the previous check may still be closing.
without_open_connections() { sed -E 's/"OpenConnections":[0-9]+/"OpenConnections":-/g' <<<"$1"; }

old_table_in_force() {
  api GET /tunnels
  [ "$API_STATUS" = 200 ] && [ "$(without_open_connections "$API_BODY")" = "$(without_open_connections "$TABLE")" ] ||
    fail "$1: table changed: $API_BODY (was $TABLE)"
  local body; body=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/index.html") ||
    fail "$1: the old public port no longer answers"
  [ "$body" = "old table answers" ] || fail "$1: old public port answered '$body'"
}

tunnel() {  # tunnel PORT [EXTRA_KEYS]
  printf '{"ListenAddress": "127.0.0.1", "ListenPort": %s, "ClientIdentifier": "home1", "BackEndPort": %s%s}' \
    "$1" "$BACKEND_PORT" "${2:+, $2}"
}

P1=$(free_port)
P2=$(free_port)
put_expect 400 'line 1, column [0-9]+' "invalid JSON" "[$(tunnel "$P1"), {\"ListenPort\": "
put_expect 400 '^tunnels\[1\]\.ListenPort: .*70000' "invalid ListenPort at index 1" \
  "[$(tunnel "$P1"), $(tunnel 70000)]"
put_expect 400 '^tunnels\[1\].*127\.0\.0\.1:'"$P1"'.*duplicates tunnels\[0\]' "duplicate address:port" \
  "[$(tunnel "$P1"), $(tunnel "$P1")]"
put_expect 400 "collides with the server's ManagementPort" "the management port" "[$(tunnel "$MGMT_PORT")]"
put_expect 400 "collides with the server's TunnelControlPort" "the control port" \
  "[{\"ListenPort\": $CONTROL_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 80}]"
put_expect 400 '^tunnels\[0\]\.ListenHostnameGlob: must be "\*", a host name .*got "a\.\*\.example\.com"' "ListenHostnameGlob" \
  "[$(tunnel "$P1" '"ListenHostnameGlob": "a.*.example.com"')]"
# 409: the same glob twice on one address and port (case does not make globs differ); both tunnels are named.
put_expect 409 '^tunnels\[2\] \(client home1\): listener 127\.0\.0\.1:'"$P1"' with ListenHostnameGlob "\*\.example\.com" is already tunnels\[0\]'"'"'s \(client home1\)' \
  "the same hostname glob twice on one port" \
  "[$(tunnel "$P1" '"ListenHostnameGlob": "*.example.com"'), $(tunnel "$P1" '"ListenHostnameGlob": "a.example.com"'), $(tunnel "$P1" '"ListenHostnameGlob": "*.EXAMPLE.com"')]"

# 409: a port another process listens on. The other, bindable new listener must not stay open (nothing applied).
BUSY_PORT=$(free_port)
spawn busy python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); print("listening", flush=True)
while True: time.sleep(60)' "$BUSY_PORT"
wait_log "$TEST_TMP/busy.log" listening
put_expect 409 "^tunnels\[1\]: cannot listen on 127\.0\.0\.1:$BUSY_PORT: address already in use" "port bound elsewhere" \
  "[$(tunnel "$P2"), $(tunnel "$BUSY_PORT")]"
! port_open "$P2" || fail "409: the new listener on $P2 stayed open after the failed PUT"
grep -qE "management: 127\.0\.0\.1:[0-9]+ \(admin\): PUT /tunnels -> 409 .*cannot listen on 127\.0\.0\.1:$BUSY_PORT" "$TEST_TMP/tunneld.log" ||
  fail "409 not logged with its reason"

# 409 from tunneld's own listener: the tunnel's address changed to the wildcard on the same port cannot be bound
# while the old listener is still in force; the message says so, and the old listener keeps serving.
put_expect 409 "^tunnels\[0\]: cannot listen on 0\.0\.0\.0:$PUBLIC_PORT: tunneld's current listener 127\.0\.0\.1:$PUBLIC_PORT holds that port" \
  "same port, specific -> wildcard address" \
  "[{\"ListenAddress\": \"0.0.0.0\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"

# 413: a syntactically fine table over 1 MiB.
python3 - "$TEST_TMP/huge.json" <<'PY'
import json, sys
t = [{"ListenPort": 1000 + (i % 60000), "ClientIdentifier": "home1-" + "x" * 200, "BackEndPort": 80} for i in range(5000)]
open(sys.argv[1], "w").write(json.dumps(t))
PY
echo "413 body: $(stat -c %s "$TEST_TMP/huge.json") bytes"
mgmt_req PUT /tunnels application/json "$TEST_TMP/huge.json"
check_error 413 "larger than 1048576" "body over 1 MiB"

# 415: wrong and missing Content-Type.
printf '[%s]' "$(tunnel "$P1")" >"$TEST_TMP/ok.json"
mgmt_req PUT /tunnels text/plain "$TEST_TMP/ok.json"
check_error 415 'application/json, got "text/plain"' "Content-Type text/plain"
mgmt_req PUT /tunnels "" "$TEST_TMP/ok.json"
check_error 415 'application/json' "Content-Type form (curl's default)"

# 405 with Allow, 404.
mgmt_req DELETE /tunnels ""
check_error 405 "DELETE not allowed on /tunnels" "DELETE /tunnels"
grep -qi '^Allow: GET, PUT' "$TEST_TMP/headers" || fail "405 without 'Allow: GET, PUT': $(cat "$TEST_TMP/headers")"
mgmt_req POST /clients ""
check_error 405 "POST not allowed on /clients" "POST /clients"
grep -qi '^Allow: GET' "$TEST_TMP/headers" || fail "405 without 'Allow: GET'"
mgmt_req GET /tunnel ""
check_error 404 "no such endpoint: /tunnel" "GET /tunnel"

api GET /metrics
grep tunneld_api_put_requests_total <<<"$API_BODY"
grep -q 'tunneld_api_put_requests_total{result="invalid"} 8' <<<"$API_BODY" || fail "invalid PUTs not counted: $API_BODY"
grep -q 'tunneld_api_put_requests_total{result="conflict"} 3' <<<"$API_BODY" || fail "409 not counted"
pass "400 (JSON, field, duplicate, own ports, hostname glob), 409 (same glob twice, port in use), 413, 415, 405+Allow, 404: JSON errors, old table intact"
