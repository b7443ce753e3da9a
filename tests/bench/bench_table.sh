#!/usr/bin/env bash
# Big tunnel tables: PUT /tunnels time and GET /ping latency while the PUT is applied, on a Release build.
#
#   bash tests/bench/bench_table.sh [TUNNELS] [BACKUPS]      (default 4096 x 16, the default MaxTunnels and
#                                                            MaxBackupsPerTunnel)
#   BENCH_TUNNELD=/path/to/tunneld bash tests/bench/bench_table.sh    (an existing binary, e.g. an older build,
#                                                            for a before/after figure; nothing is built)
#
# Builds tunneld without sanitizers in build/bench, starts it on free loopback ports with DebugLog off, and PUTs in
# turn: the full table onto an empty one (every listener bound), the same table again (nothing changes), the table
# with every primary client changed (routing moves, listeners kept), and the empty table (every listener closed).
# Tunnels listen on 127.0.X.Y on one port. Meanwhile an admin session asks GET /ping every 5 ms on a kept-alive
# connection; the worst answer time during each PUT is what a health check would see. Prints one table; not part of
# the test command and never fails on a figure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"
N=${1:-4096}
B=${2:-16}

if [ -n "${BENCH_TUNNELD:-}" ]; then
  export TUNNELD=$BENCH_TUNNELD TUNNELC=/bin/false
else
  source "$here/tests/bench/release_build.sh"
  bench_build tunneld tunnelc
fi
source "$here/tests/integration/lib.sh"
source "$here/tests/integration/fixture.sh"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((N * 2 + 256)) ] || fail "need $((N * 2 + 256)) descriptors"

make_pki
LIMITS="{\"ApiMaxBody\": 67108864, \"MaxTunnels\": $N, \"MaxBackupsPerTunnel\": $B}"
strings "$TUNNELD" | grep -q MaxBackupsPerTunnel || LIMITS='{"ApiMaxBody": 67108864}'  # a build before the limits
CONTROL_PORT=$(free_port); MGMT_PORT=$(free_port)
write_tunneld_config "$LIMITS"
sed -i 's/"DebugLog": true/"DebugLog": false/' "$TEST_TMP/tunneld.json"  # a line per connection is not the point
spawn tunneld "$TUNNELD" --config "$TEST_TMP/tunneld.json"
TUNNELD_PID=$SPAWNED_PID
wait_until 15 api_ping || fail "tunneld did not start"
PORT=$(free_port)

# table FILE SHIFT: N tunnels, B distinct backups each from a pool of 64 names; SHIFT renames every primary.
table() {
  python3 - "$N" "$B" "$PORT" "$2" >"$1" <<'PY'
import json, sys
n, nb, port, shift = (int(x) for x in sys.argv[1:])
print(json.dumps([{"ListenAddress": "127.0.%d.%d" % (1 + i // 250, 1 + i % 250), "ListenPort": port,
                   "ClientIdentifier": "p%d-%d" % (i, shift),
                   "BackupClientIdentifiers": ["b%d" % ((i + k) % 64) for k in range(nb)], "BackEndPort": 80}
                  for i in range(n)]))
PY
}
table "$TEST_TMP/full.json" 0
table "$TEST_TMP/moved.json" 1
echo '[]' >"$TEST_TMP/empty.json"

spawn ping python3 -c '
import os, ssl, socket, sys, time
port, ca, crt, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca); ctx.load_cert_chain(crt, key)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
f = open(out, "a", buffering=1)
print("ready", flush=True)
while True:
    t0 = time.time()
    s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"pong"):
        data += s.recv(4096)
    f.write("%d %d\n" % (int(t0 * 1000), int((time.time() - t0) * 1000)))
    time.sleep(0.005)' "$MGMT_PORT" "$PKI/ca.crt" "$PKI/admin.crt" "$PKI/admin.key" "$TEST_TMP/ping.txt"
wait_log "$TEST_TMP/ping.log" ready
sleep 1
idle=$(awk '{ if ($2 > m) m = $2 } END { print m + 0 }' "$TEST_TMP/ping.txt")

put() {
  local t0 t1 r worst
  t0=$(now_ms)
  r=$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' --max-time 300 --cacert "$PKI/ca.crt" \
        --cert "$PKI/admin.crt" --key "$PKI/admin.key" -X PUT -H 'Content-Type: application/json' \
        --data-binary "@$2" "https://127.0.0.1:$MGMT_PORT/tunnels")
  t1=$(now_ms)
  sleep 0.2
  worst=$(awk -v a="$t0" -v b="$t1" '$1 + $2 >= a && $1 <= b { if ($2 > m) m = $2 } END { print m + 0 }' "$TEST_TMP/ping.txt")
  [ "${r%% *}" = 200 ] || fail "$1: PUT returned $r"
  printf '| %-34s | %8d | %18d |\n' "$1" "$(awk -v s="${r#* }" 'BEGIN { printf "%d", s * 1000 }')" "$worst"
}
echo
echo "tunneld $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $N tunnels x $B backups, body $(wc -c <"$TEST_TMP/full.json") bytes, $(nproc) cores"
echo "GET /ping worst while idle: $idle ms"
echo
echo "| PUT /tunnels                       | time, ms | worst /ping, ms    |"
echo "|------------------------------------|----------|--------------------|"
put "empty -> $N x $B (all bound)" "$TEST_TMP/full.json"
put "same table again (no change)" "$TEST_TMP/full.json"
put "every primary changed (kept)" "$TEST_TMP/moved.json"
put "$N x $B -> empty (all closed)" "$TEST_TMP/empty.json"
