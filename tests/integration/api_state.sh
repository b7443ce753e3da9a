#!/usr/bin/env bash
# The state file: written after a successful PUT (mode 0600, valid JSON, the table), untouched by failed PUTs;
# after SIGTERM and a restart on the same ports the table is restored and its public port listens before any
# client is back; data flows again once the client reconnects.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld
BACKEND_PORT=$(free_port)
PUBLIC_PORT=$(free_port)
mkdir -p "$TEST_TMP/www"
echo "state backend" >"$TEST_TMP/www/index.html"
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT"
start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1

TABLE_JSON="[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackupClientIdentifiers\": [\"home2\"], \"BackEndPort\": $BACKEND_PORT}]"
put_tunnels "$TABLE_JSON"
[ -f "$STATE_FILE" ] || fail "no state file after PUT"
mode=$(stat -c %a "$STATE_FILE")
[ "$mode" = 600 ] || fail "state file mode $mode, want 600"
python3 - "$STATE_FILE" "$PUBLIC_PORT" "$BACKEND_PORT" <<'PY' || fail "state file content: $(cat "$STATE_FILE")"
import json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d, list) and len(d) == 1, d
t = d[0]
assert t["ListenAddress"] == "127.0.0.1" and t["ListenPort"] == int(sys.argv[2]), t
assert t["ClientIdentifier"] == "home1" and t["BackupClientIdentifiers"] == ["home2"], t
assert t["BackEndPort"] == int(sys.argv[3]), t
PY
ls "$(dirname "$STATE_FILE")" | grep -v '^tunnels.json$' && fail "temporary files left beside the state file"
echo "state file after PUT: $(cat "$STATE_FILE")"
pass "state file written after PUT: mode 0600, valid JSON holding the table"

# Failed PUTs (400 and 409) leave the file as it was.
before=$(sha256sum <"$STATE_FILE")
before_mtime=$(stat -c %Y.%y "$STATE_FILE")
api PUT /tunnels "[{\"ListenPort\": 0, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 80}]"
[ "$API_STATUS" = 400 ] || fail "invalid PUT: $API_STATUS"
BUSY_PORT=$(free_port)
spawn busy python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); print("listening", flush=True)
while True: time.sleep(60)' "$BUSY_PORT"
wait_log "$TEST_TMP/busy.log" listening
api PUT /tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $BUSY_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 80}]"
[ "$API_STATUS" = 409 ] || fail "PUT on a busy port: $API_STATUS $API_BODY"
[ "$(sha256sum <"$STATE_FILE")" = "$before" ] || fail "a failed PUT changed the state file: $(cat "$STATE_FILE")"
[ "$(stat -c %Y.%y "$STATE_FILE")" = "$before_mtime" ] || fail "a failed PUT rewrote the state file"
pass "failed PUTs (400, 409) leave the state file untouched"

api GET /tunnels
TABLE_BEFORE=$(json_get "$API_BODY" '[{k: v for k, v in t.items() if k not in ("ActiveClient", "OpenConnections")} for t in d]')

# Restart. The client is frozen first, so "before any client reconnects" is certain rather than a race.
kill -STOP "$TUNNELC_PID_home1"
t0=$(now_ms)
stop_tunneld TERM
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS on SIGTERM"
! port_open "$PUBLIC_PORT" || fail "public port still open after tunneld exited"
mv "$TEST_TMP/tunneld.log" "$TEST_TMP/tunneld-first.log"
start_tunneld   # same CONTROL_PORT and MGMT_PORT, same state file
t1=$(now_ms)
port_open "$PUBLIC_PORT" || fail "restored tunnel's port is not listening right after the restart"
echo "restart: management port answering and public port listening $((t1 - t0)) ms after SIGTERM"
api GET /tunnels
echo "GET /tunnels after restart: $API_BODY"
[ "$(json_get "$API_BODY" '[{k: v for k, v in t.items() if k not in ("ActiveClient", "OpenConnections")} for t in d]')" = "$TABLE_BEFORE" ] ||
  fail "restored table differs: $API_BODY vs $TABLE_BEFORE"
[ "$(json_get "$API_BODY" 'd[0]["ActiveClient"]')" = None ] || [ "$(json_get "$API_BODY" 'd[0]["ActiveClient"]')" = null ] ||
  fail "ActiveClient set although the client is frozen: $API_BODY"
api GET /clients
[ "$(json_get "$API_BODY" 'd["home1"]["CurrentState"]')" = ClientUnknown ] || fail "home1 known before reconnecting: $API_BODY"
grep -q "1 tunnels restored from $STATE_FILE" "$TEST_TMP/tunneld.log" || fail "no restore log line"
pass "after restart the table is restored and its port listens before any client is back"

# The client comes back; data flows again.
kill -CONT "$TUNNELC_PID_home1"
t2=$(now_ms)
wait_client_connected home1
body=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/index.html")
t3=$(now_ms)
[ "$body" = "state backend" ] || fail "through the restored tunnel: got '$body'"
echo "client reconnected and data flowed $((t3 - t2)) ms after it resumed"
pass "restored tunnel carries data once the client reconnects"
