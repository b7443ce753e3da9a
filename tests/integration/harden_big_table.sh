#!/usr/bin/env bash
# Table size limits and a table at them: more than MaxTunnels is a 413 and more than MaxBackupsPerTunnel a 400, each
# saying which and leaving the table as it was; exactly 4,096 tunnels with 16 backups each applies and routes (to a
# primary, and to the last backup of the last tunnel). Timing is the benchmark's business (tests/bench/bench_table.sh);
# here the PUT time and /ping latency are printed only.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 9000 ] || { echo "skip: needs 9000 descriptors for 4,096 listeners, have $(ulimit -n)"; exit 0; }
make_pki
# The table body is about 1.5 MB: above the default ApiMaxBody, as any table this size would be.
start_tunneld '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 3000, "ApiMaxBody": 16777216}'
PORT=$(free_port); P1=$(free_port); P2=$(free_port)
start_marker_nginx one "$P1" one
start_marker_nginx two "$P2" two
start_tunnelc home1 "[$P1]"
start_tunnelc home2 "[$P2]"
wait_client_connected home1
wait_client_connected home2

# table N BACKUPS [EXTRA]: N tunnels on 127.0.X.Y:$PORT (one free port, thousands of loopback addresses), primary
# p<i> (tunnel 0: home2 -> nginx "two"), backups from a pool of 64 names (tunnel N-1's last backup: home1 -> "one").
table() {
  python3 - "$1" "$2" "$PORT" "$P1" "$P2" <<'PY'
import json, sys
n, nb, port, p1, p2 = (int(x) for x in sys.argv[1:])
t = []
for i in range(n):
    backups = ["b%d" % ((i + k) % 64) for k in range(nb)]
    e = {"ListenAddress": "127.0.%d.%d" % (1 + i // 250, 1 + i % 250), "ListenPort": port,
         "ClientIdentifier": "p%d" % i, "BackupClientIdentifiers": backups, "BackEndPort": p1}
    if i == 0:
        e["ClientIdentifier"], e["BackEndPort"] = "home2", p2
    if i == n - 1 and nb > 0:
        backups[-1] = "home1"
    t.append(e)
print(json.dumps(t))
PY
}
put_file() {
  curl -sS -o "$TEST_TMP/put.out" -w '%{http_code} %{time_total}' --max-time 120 --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" -X PUT -H 'Content-Type: application/json' \
    --data-binary "@$1" "https://127.0.0.1:$MGMT_PORT/tunnels" 2>"$TEST_TMP/put.err" || echo "000 0"
}
put_tunnels "$(table 2 1)"
api GET /tunnels; before=$API_BODY

# 1. One tunnel too many: 413, the table unchanged.
table 4097 16 >"$TEST_TMP/t4097.json"
r=$(put_file "$TEST_TMP/t4097.json"); body=$(cat "$TEST_TMP/put.out")
echo "PUT 4097 tunnels: ${r%% *} $body"
[ "${r%% *}" = 413 ] || fail "4097 tunnels: expected 413, got $r"
is_json_error "$body" && grep -q 'MaxTunnels (4096)' <<<"$body" || fail "the 413 does not say MaxTunnels: $body"
api GET /tunnels; [ "$API_BODY" = "$before" ] || fail "a refused PUT changed the table"

# 2. One backup too many: 400 naming the tunnel and MaxBackupsPerTunnel.
api PUT /tunnels "$(table 3 17)"
echo "PUT with 17 backups: $API_STATUS $API_BODY"
[ "$API_STATUS" = 400 ] && grep -q 'tunnels\[0\].BackupClientIdentifiers: 17 entries, more than MaxBackupsPerTunnel (16)' <<<"$API_BODY" ||
  fail "17 backups: expected a 400 naming MaxBackupsPerTunnel, got $API_STATUS $API_BODY"
api GET /tunnels; [ "$API_BODY" = "$before" ] || fail "a refused PUT changed the table"

# 3. Exactly at both limits: applies and routes, while /ping is asked meanwhile.
table 4096 16 >"$TEST_TMP/t4096.json"
echo "table of 4096 x 16: $(wc -c <"$TEST_TMP/t4096.json") bytes"
spawn ping python3 -c '
import os, ssl, socket, sys, time
port, ca, crt, key, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca); ctx.load_cert_chain(crt, key)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
print("ready", flush=True)
worst, n, end = 0, 0, time.time() + 120
while not os.path.exists(stop) and time.time() < end:
    t0 = time.time()
    s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"pong"):
        data += s.recv(4096)
    worst = max(worst, time.time() - t0); n += 1
    time.sleep(0.01)
print("pings=%d worst_ms=%d" % (n, worst * 1000))' "$MGMT_PORT" "$PKI/ca.crt" "$PKI/admin.crt" "$PKI/admin.key" "$TEST_TMP/ping.stop"
wait_log "$TEST_TMP/ping.log" ready
r=$(put_file "$TEST_TMP/t4096.json")
touch "$TEST_TMP/ping.stop"
echo "PUT 4096 x 16: status ${r%% *}, ${r#* } s (ASan build; see tests/bench/bench_table.sh for figures)"
[ "${r%% *}" = 200 ] || fail "the table at the limits was refused: $r $(head -c 300 "$TEST_TMP/put.out")"
wait_until 20 grep -q pings= "$TEST_TMP/ping.log" || fail "the /ping loop did not finish"
echo "GET /ping on a kept-alive admin session during the PUT: $(cat "$TEST_TMP/ping.log")"
# big_get PATH EXPR: GET PATH (too big for a command line) and evaluate EXPR on it as d.
big_get() {
  api GET "$1" >/dev/null
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(v if isinstance(v,str) else json.dumps(v))'     "$TEST_TMP/api.out" "$2"
}
[ "$(big_get /tunnels 'len(d)')" = 4096 ] || fail "GET /tunnels does not list 4096 tunnels"
[ "$(big_get /tunnels 'd[0]["ActiveClient"]')" = home2 ] || fail "tunnel 0 not active on home2"
[ "$(big_get /tunnels 'd[4095]["ActiveClient"]')" = home1 ] || fail "tunnel 4095 not active on its last backup"
[ "$(big_get /tunnels 'len(d[4095]["BackupClientIdentifiers"])')" = 16 ] || fail "backups lost"
[ "$(http_get_marker 127.0.1.1 "$PORT")" = two ] || fail "tunnel 0 (primary home2) does not route"
[ "$(http_get_marker 127.0.17.96 "$PORT")" = one ] || fail "tunnel 4095 (last backup home1) does not route"
# Every named identity is listed once: p1..p4095, b0..b63, home1, home2.
[ "$(big_get /clients 'len(d)')" = $((4095 + 64 + 2)) ] || fail "GET /clients lists $(big_get /clients 'len(d)') clients"

# 4. Back to a small table: every listener but the kept ones closes; routing still right.
put_tunnels "$(table 1 16)"
[ "$(http_get_marker 127.0.1.1 "$PORT")" = two ] || fail "tunnel 0 does not route after shrinking the table"
stop_checked tunneld home1 home2
pass "413 past MaxTunnels, 400 past MaxBackupsPerTunnel, 4096 x 16 applied and routed (PUT ${r#* } s under ASan)"
