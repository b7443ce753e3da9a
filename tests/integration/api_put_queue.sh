#!/usr/bin/env bash
# PUT /tunnels is applied off the event loop's critical path (parsed and persisted on worker threads, listeners
# bound in slices), so what that must not change is checked here:
# 1. Three admins PUT three different 1,000-tunnel tables at once: each gets 200 with the table it sent, changes
#    are applied one after another (never interleaved), and the table in force, the state file and the open
#    ports all agree with one of them.
# 2. PUT /revoked-certificates sent while a big PUT /tunnels is applied waits for it, and both are persisted.
# 3. An admin that sends a PUT and hangs up at once: the table is still applied, as it would have been.
# 4. SIGTERM while a big PUT is being applied: tunneld answers or drops it, stops cleanly (exit 0, no sanitizer
#    report: the harness checks), and restarts with a state file that holds a whole table, old or new.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 5000 ] || { echo "skip: needs 5000 descriptors for 3,000 listeners, have $(ulimit -n)"; exit 0; }
make_pki
start_tunneld '{"ApiMaxBody": 16777216}'
STATE=$STATE_FILE

# table FILE N PORT: N tunnels on 127.0.X.Y:PORT, client c<i>.
table() {
  python3 - "$2" "$3" >"$1" <<'PY'
import json, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps([{"ListenAddress": "127.0.%d.%d" % (1 + i // 250, 1 + i % 250), "ListenPort": port,
                   "ClientIdentifier": "c%d" % i, "BackEndPort": 80} for i in range(n)]))
PY
}
put_file() {  # put_file NAME FILE: PUT in the background, status in $TEST_TMP/NAME.status, body in NAME.out
  curl -sS -o "$TEST_TMP/$1.out" -w '%{http_code}' --max-time 300 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
    --key "$PKI/admin.key" -X PUT -H 'Content-Type: application/json' --data-binary "@$2" \
    "https://127.0.0.1:$MGMT_PORT/tunnels" >"$TEST_TMP/$1.status" 2>>"$TEST_TMP/curl.err" || true
}
ports_in() { python3 -c 'import json,sys; print(sorted({t["ListenPort"] for t in json.load(open(sys.argv[1]))}))' "$1"; }
# The state file is the bare table while nothing is revoked, {"Tunnels": ..., "RevokedCertificates": ...} after.
state_tunnels='import json,sys; s=json.load(open(sys.argv[1])); t=s["Tunnels"] if isinstance(s, dict) else s'
state_ports() { python3 -c "$state_tunnels"'; print(sorted({x["ListenPort"] for x in t}))' "$1"; }

# ---- 1. three tables at once ----
PA=$(free_port); PB=$(free_port); PC=$(free_port)
table "$TEST_TMP/a.json" 1000 "$PA"; table "$TEST_TMP/b.json" 1000 "$PB"; table "$TEST_TMP/c.json" 1000 "$PC"
pids=()
for n in a b c; do bg put_file "$n" "$TEST_TMP/$n.json"; pids+=("$BG_PID"); done
for p in "${pids[@]}"; do wait "$p"; done
for n in a b c; do
  [ "$(cat "$TEST_TMP/$n.status")" = 200 ] || fail "PUT $n: $(cat "$TEST_TMP/$n.status") $(cat "$TEST_TMP/$n.out")"
  [ "$(ports_in "$TEST_TMP/$n.out")" = "$(ports_in "$TEST_TMP/$n.json")" ] || fail "PUT $n answered another table"
done
api GET /tunnels
echo "$API_BODY" >"$TEST_TMP/now.json"
final=$(ports_in "$TEST_TMP/now.json")
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$TEST_TMP/now.json")" = 1000 ] ||
  fail "the table in force is not one whole table"
case "$final" in "[$PA]"|"[$PB]"|"[$PC]") ;; *) fail "table in force mixes the PUTs: ports $final" ;; esac
[ "$(state_ports "$STATE")" = "$final" ] || fail "state file ($(state_ports "$STATE")) differs from the table in force ($final)"
port=${final//[\[\]]/}
port_open "$port" 127.0.4.250 || fail "the table in force does not listen on 127.0.4.250:$port"
for p in "$PA" "$PB" "$PC"; do
  [ "$p" = "$port" ] && continue
  port_open "$p" 127.0.1.1 && fail "port $p of a table not in force still listens"
done
applied=$(grep -c 'audit: admin "admin" ([^)]*): PUT /tunnels applied' "$TEST_TMP/tunneld.log")
[ "$applied" = 3 ] || fail "expected 3 applied PUTs in the audit log, found $applied"
echo "three concurrent 1,000-tunnel PUTs: all 200, applied one at a time, table in force on port $port"

# ---- 2. a revocation queued behind a big PUT ----
table "$TEST_TMP/d.json" 3000 "$PA"
bg put_file d "$TEST_TMP/d.json"
PUT_PID=$BG_PID
FP=$(fingerprint "$PKI/home1.crt")
api PUT /revoked-certificates "[\"$FP\"]"
[ "$API_STATUS" = 200 ] || fail "PUT /revoked-certificates beside a big PUT: $API_STATUS $API_BODY"
wait "$PUT_PID"
[ "$(cat "$TEST_TMP/d.status")" = 200 ] || fail "big PUT beside a revocation: $(cat "$TEST_TMP/d.status")"
python3 - "$STATE" "$FP" "$PA" <<'PY' || fail "state file lost one of the two changes: $(head -c 300 "$STATE")"
import json, sys
s = json.load(open(sys.argv[1]))
assert len(s["Tunnels"]) == 3000 and s["Tunnels"][0]["ListenPort"] == int(sys.argv[3]), "table"
assert sys.argv[2] in json.dumps(s["RevokedCertificates"]), "revoked"
PY
echo "a revocation sent during a 3,000-tunnel PUT: both applied and persisted"

# ---- 3. the requester hangs up ----
table "$TEST_TMP/e.json" 1000 "$PB"
python3 - "$MGMT_PORT" "$PKI" "$TEST_TMP/e.json" <<'PY'
import socket, ssl, sys
port, pki, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = open(path, "rb").read()
ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
ctx.load_cert_chain(pki + "/admin.crt", pki + "/admin.key")
ctx.check_hostname = False
with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw) as s:
    s.sendall(b"PUT /tunnels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
PY
applied_e() { api GET /tunnels && [ "$(echo "$API_BODY" | python3 -c 'import json,sys; t=json.load(sys.stdin); print(len(t), t[0]["ListenPort"])')" = "1000 $PB" ]; }
wait_until 60 applied_e || fail "a PUT whose requester hung up was not applied"
echo "a PUT whose requester hung up at once: applied"

# ---- 4. SIGTERM during a big PUT ----
table "$TEST_TMP/f.json" 3000 "$PC"
bg put_file f "$TEST_TMP/f.json"
PUT_PID=$BG_PID
# Its first listener is bound: the PUT is being applied (or, on a fast machine, already is: both are fine here).
wait_until 60 port_open "$PC" 127.0.1.1 || fail "the PUT to be cut never started binding"
kill -TERM "$TUNNELD_PID"
wait "$PUT_PID" || true
stop_checked tunneld
status=$(cat "$TEST_TMP/f.status")
case "$status" in 200|503|000) ;; *) fail "PUT during shutdown answered $status: $(cat "$TEST_TMP/f.out" 2>/dev/null)" ;; esac
n=$(python3 -c "$state_tunnels"'; print(len(t))' "$STATE")
case "$n" in 1000|3000) ;; *) fail "state file after a PUT cut by SIGTERM holds $n tunnels" ;; esac
start_tunneld '{"ApiMaxBody": 16777216}'
api GET /tunnels
[ "$(echo "$API_BODY" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = "$n" ] ||
  fail "restart after a PUT cut by SIGTERM did not restore the $n tunnels of the state file"
pass "PUTs queue and never interleave; a revocation waits its turn; a hung-up PUT applies; SIGTERM mid-PUT (answered $status) keeps a whole table ($n tunnels)"
