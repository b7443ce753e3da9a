#!/usr/bin/env bash
# A client cannot make tunneld's log grow with the allow-lists it announces (docs/API.md, Problems): a hostile
# home1, backup in 4,095 tunnels whose backend it does not accept, announces its list 100 times, then with one
# tunnel 27,000 times in 10 s. Each announcement is at most one line, rate-limited per client, and the per-tunnel
# detail is in GET /tunnels; the management API keeps answering meanwhile.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
HOSTILE="$TUNNEL_TOOLS/hostile_client"
LOG="$TEST_TMP/tunneld.log"
# The last API answer (a 4,095-tunnel body is too long for an argument), evaluated as d.
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(eval(sys.argv[2]), separators=(",",":")))' "$TEST_TMP/api.out" "$1"; }

make_pki
start_tunneld '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 3000, "ApiMaxBody": 16777216}'
PORT=$(free_port)
# The allow-list home1 announces: ports 80 and 8336 (16 bytes); every tunnel asks for 8443.
MSG=01010000000000100002005020900000

# Lines a client can make tunneld write (debug lines are the operator's opt-in).
lines() { grep -vc ' debug: ' "$LOG" || true; }
flood() {
  "$HOSTILE" --port "$CONTROL_PORT" --ca "$PKI/ca.crt" --cert "$PKI/home1.crt" --key "$PKI/home1.key" \
    --mode control-flood --message "$MSG" --count "$1" --seconds "$2" >"$TEST_TMP/flood.out" 2>&1 ||
    fail "hostile_client failed: $(cat "$TEST_TMP/flood.out")"
  grep '^result:' "$TEST_TMP/flood.out"
}

# 1. home1 is the backup of 4,095 tunnels (one listener, a hostname glob each).
python3 - "$PORT" >"$TEST_TMP/big.json" <<'PY'
import json, sys
port = int(sys.argv[1])
print(json.dumps([{"ListenAddress": "127.0.0.1", "ListenPort": port, "ListenHostnameGlob": "h%d.example.test" % i,
                   "ClientIdentifier": "home2", "BackupClientIdentifiers": ["home1"], "BackEndPort": 8443}
                  for i in range(4095)]))
PY
code=$(curl -sS -o "$TEST_TMP/put.out" -w '%{http_code}' --max-time 120 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
  --key "$PKI/admin.key" -X PUT -H 'Content-Type: application/json' --data-binary "@$TEST_TMP/big.json" \
  "https://127.0.0.1:$MGMT_PORT/tunnels" 2>&1) || true
[ "$code" = 200 ] || fail "PUT of 4,095 tunnels: $code $(cat "$TEST_TMP/put.out")"

before=$(lines)
r=$(flood 100 60)
echo "100 announcements, backup in 4,095 tunnels: $r"
grep -q "result: sent=100 answered=100" <<<"$r" || fail "the announcements were not all answered: $r"
after=$(lines)
echo "log lines written: $((after - before))"
# One line for the first announcement, the rest counted in a summary every 10 s; 100 leaves room for the lines
# the link itself writes (connected, disconnected) and for a slow machine spreading the flood over intervals.
[ $((after - before)) -le 100 ] || fail "100 announcements wrote $((after - before)) lines"
wait_log "$LOG" "warn: client home1: allow-list announced \(2 BackEndPorts, 0 services\); 4095 tunnels name a backend it does not accept \(first: port $PORT -> 8443\)"
api GET /tunnels
[ "$(jget "d[4094].get('Problems')")" = '["client home1 does not allow BackEndPort 8443"]' ] ||
  fail "the per-tunnel problem is not in GET /tunnels: $(jget "d[4094].get('Problems')")"

# 2. One tunnel, home1 its only client: 27,000 announcements in at most 10 s, the API probed meanwhile.
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 8443}]"
before=$(lines)
flood 27000 10 >"$TEST_TMP/flood2.result" &
FLOOD=$!
worst=0
while kill -0 "$FLOOD" 2>/dev/null; do
  t=$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' --max-time 30 --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$MGMT_PORT/ping" 2>/dev/null) || t="000 30"
  [ "${t%% *}" = 200 ] || fail "GET /ping during the flood: $t"
  worst=$(python3 -c "import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))" "$worst" "${t#* }")
done
wait "$FLOOD" || fail "the flood failed"
r=$(cat "$TEST_TMP/flood2.result")
after=$(lines)
echo "announcements in 10 s, one tunnel: $r; log lines written: $((after - before)); slowest GET /ping ${worst}s"
grep -q "result: sent=" <<<"$r" || fail "the flooding link was closed: $r"
[ $((after - before)) -le 100 ] || fail "the flood wrote $((after - before)) lines"
# Within 10 s of the first line, this one is counted and shows in the next summary ("last: ...").
wait_log "$LOG" "client home1: allow-list announced \(2 BackEndPorts, 0 services\); 1 tunnel names a backend" 30
# Bound for "never answers", not a speed: a loaded 2-core machine answers in well under a second.
python3 -c "import sys; sys.exit(float(sys.argv[1]) >= 5)" "$worst" || fail "GET /ping took ${worst}s during the flood"
pass "announcements flood: one line per client per interval, problems in GET /tunnels, API responsive"
