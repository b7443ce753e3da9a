# fixture.sh: a PKI, tunneld, tunnelc instances and an admin API client for integration tests (sourced after lib.sh).
#
#   make_pki                       CA + server (127.0.0.1, ::1, localhost) + clients home1 home2 + admin, in $PKI;
#                                  and a second, unrelated CA with a client "stranger" in $PKI/other
#   start_tunneld [LIMITS_JSON]    free control/management ports ($CONTROL_PORT, $MGMT_PORT), state in $STATE_FILE;
#                                  waits until the management port answers; pid in $TUNNELD_PID; more top-level keys
#                                  from $TUNNELD_EXTRA_JSON (e.g. '"CrlFile": "/path"') when set
#   stop_tunneld [SIGNAL]          signal (TERM by default) and wait for exit; status in $TUNNELD_STATUS
#   start_tunnelc NAME [PORTS_JSON] [SERVICES_JSON] [LIMITS_JSON]
#                                  client with identity NAME (certificate from make_pki); pid in TUNNELC_PID_<NAME>
#   wait_client_connected NAME     polls GET /clients until NAME is ClientConnected
#   api METHOD PATH [BODY]         admin request; body in $API_BODY, status in $API_STATUS
#   put_tunnels JSON               PUT /tunnels, fails the test unless 200
#   web_ca; web_cert NAME SAN      the home sites' own PKI (not tunnel's), in $WEB_PKI: a CA (ca.crt), then NAME.crt
#                                  and NAME.key for SAN ("DNS:a.example.test,IP:127.0.0.1"), serverAuth
#
# Tests use short keepalive and dead-peer timeouts so failures are detected in seconds.

: "${TUNNELD:?TUNNELD must point at the tunneld binary}"
: "${TUNNELC:?TUNNELC must point at the tunnelc binary}"

PKI="$TEST_TMP/pki"
WEB_PKI="$TEST_TMP/web-pki"
STATE_FILE="$TEST_TMP/state/tunnels.json"
FAST_LIMITS='{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": 3000, "ReplacedLinkGraceMs": 3000}'
FAST_CLIENT_LIMITS='{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": 3000, "ReconnectMinMs": 100, "ReconnectMaxMs": 1000}'

make_pki() {
  "$TUNNELD" pki init "$PKI" >/dev/null
  "$TUNNELD" pki issue "$PKI" --name server --server --ip 127.0.0.1 --ip ::1 --dns localhost >/dev/null
  for n in home1 home2 home3; do "$TUNNELD" pki issue "$PKI" --name "$n" >/dev/null; done
  "$TUNNELD" pki issue "$PKI" --name admin --admin >/dev/null
  "$TUNNELD" pki init "$PKI/other" >/dev/null
  "$TUNNELD" pki issue "$PKI/other" --name stranger >/dev/null
  "$TUNNELD" pki issue "$PKI/other" --name admin --admin >/dev/null
}

write_tunneld_config() {
  local limits=${1:-$FAST_LIMITS}
  mkdir -p "$(dirname "$STATE_FILE")"
  cat >"$TEST_TMP/tunneld.json" <<JSON
{
  "TunnelControlPort": $CONTROL_PORT,
  "ManagementPort": $MGMT_PORT,
  "ListenAddress": "127.0.0.1",
  "CaCertificateFile": "$PKI/ca.crt",
  "ServerTlsCertificateFile": "$PKI/server.crt",
  "ServerTlsKeyFile": "$PKI/server.key",
  "AdminIdentities": ["admin"],
  "StateFile": "$STATE_FILE",
  "DebugLog": true,${TUNNELD_EXTRA_JSON:+
  $TUNNELD_EXTRA_JSON,}
  "Limits": $limits
}
JSON
}

start_tunneld() {
  if [ -z "${CONTROL_PORT:-}" ]; then
    CONTROL_PORT=$(free_port)
    MGMT_PORT=$(free_port)
    while [ "$MGMT_PORT" = "$CONTROL_PORT" ]; do MGMT_PORT=$(free_port); done
  fi
  write_tunneld_config "${1:-}"
  spawn_checked tunneld "$TUNNELD" --config "$TEST_TMP/tunneld.json" --init-state
  TUNNELD_PID=$SPAWNED_PID
  wait_until 15 api_ping || fail "tunneld did not start (see $TEST_TMP/tunneld.log)"
}

stop_tunneld() {
  local sig=${1:-TERM}
  kill -"$sig" "$TUNNELD_PID" 2>/dev/null || true
  TUNNELD_STATUS=0
  wait "$TUNNELD_PID" 2>/dev/null || TUNNELD_STATUS=$?
}

start_tunnelc() {
  local name=$1 ports=${2:-[]} services=${3:-\{\}} limits=${4:-$FAST_CLIENT_LIMITS}
  cat >"$TEST_TMP/tunnelc-$name.json" <<JSON
{
  "ServerHost": "127.0.0.1",
  "ServerTunnelControlPort": $CONTROL_PORT,
  "CaCertificateFile": "$PKI/ca.crt",
  "ClientTlsCertificateFile": "$PKI/$name.crt",
  "ClientTlsKeyFile": "$PKI/$name.key",
  "AllowedBackEndPorts": $ports,
  "ServiceToLocalAddrMap": $services,
  "DebugLog": true,
  "Limits": $limits
}
JSON
  spawn_checked "tunnelc-$name" "$TUNNELC" --config "$TEST_TMP/tunnelc-$name.json"
  printf -v "TUNNELC_PID_$name" '%s' "$SPAWNED_PID"
}

api() {
  local method=$1 path=$2 body=${3:-}
  local out="$TEST_TMP/api.out"
  local args=(-sS -o "$out" -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt"
              --cert "$PKI/admin.crt" --key "$PKI/admin.key" -X "$method")
  if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' --data-binary "$body"); fi
  API_STATUS=$(curl "${args[@]}" "https://127.0.0.1:$MGMT_PORT$path" 2>"$TEST_TMP/api.err") || API_STATUS=000
  API_BODY=$(cat "$out" 2>/dev/null || true)
}

api_ping() { api GET /ping && [ "$API_STATUS" = 200 ]; }

put_tunnels() {
  api PUT /tunnels "$1"
  [ "$API_STATUS" = 200 ] || fail "PUT /tunnels returned $API_STATUS: $API_BODY"
}

client_connected() {
  api GET /clients && [ "$API_STATUS" = 200 ] &&
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d.get(sys.argv[2],{}).get("CurrentState")=="ClientConnected" else 1)' "$API_BODY" "$1"
}

wait_client_connected() { wait_until 20 client_connected "$1" || fail "client $1 never connected"; }

# Milliseconds since the epoch, for measured figures.
now_ms() { date +%s%3N; }

# nginx_with NAME CONNECTIONS SERVER_BLOCKS PORT...: nginx with the given server blocks (config, logs and temp files
# in $TEST_TMP/NAME/), spawned; waits for each PORT.
nginx_with() {
  local name=$1 conns=$2 servers=$3; shift 3
  local dir="$TEST_TMP/$name" port
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $dir/nginx.pid; error_log $dir/error.log;
events { worker_connections $conns; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  $servers
}
CONF
  spawn "$name" nginx -e stderr -c "$dir/nginx.conf" -p "$dir"
  for port in "$@"; do wait_port "$port"; done
}

# start_nginx NAME ROOT PORT [EXTRA_SERVER_DIRECTIVES]: nginx serving ROOT on 127.0.0.1:PORT; waits for the port.
start_nginx() {
  nginx_with "$1" 256 "server { listen 127.0.0.1:$3; root $2; ${4:-} }" "$3"
}

# api_as CERT_NAME METHOD PATH: a management request with $PKI/CERT_NAME.{crt,key} (a path under $PKI such as
# other/admin works too); status in $API_STATUS ("000" when TLS failed), body in $API_BODY, curl's exit code in
# $API_CURL_RC.
api_as() {
  local who=$1 method=$2 path=$3
  local out="$TEST_TMP/api_as.out" args=(-sS -o "$TEST_TMP/api_as.out" -w '%{http_code}' --max-time 10
                                          --cacert "$PKI/ca.crt" -X "$method")
  if [ -n "$who" ]; then args+=(--cert "$PKI/$who.crt" --key "$PKI/$who.key"); fi
  rm -f "$out"
  API_CURL_RC=0
  API_STATUS=$(curl "${args[@]}" "https://127.0.0.1:$MGMT_PORT$path" 2>"$TEST_TMP/api_as.err") || API_CURL_RC=$?
  API_BODY=$(cat "$out" 2>/dev/null || true)
}

# json_get JSON PYTHON_EXPR: evaluates EXPR with the parsed JSON bound to d and prints the result (JSON for
# lists/objects/null, else str), e.g. json_get "$API_BODY" 'd[0]["ActiveClient"]'.
json_get() {
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=eval(sys.argv[2]); print(v if isinstance(v,str) else json.dumps(v))' "$1" "$2"
}

# is_json_error JSON: true when JSON is an object with exactly one key "error" holding a non-empty string.
is_json_error() {
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if isinstance(d,dict) and list(d)==["error"] and isinstance(d["error"],str) and d["error"] else 1)' "$1"
}

# ---- failover, hot swap and PROXY helpers ----
#   free_port6                     a TCP port free on [::1] right now
#   start_marker_nginx NAME PORT MARKER
#                                  nginx on 127.0.0.1:PORT answering every path with "MARKER" (keep-alive on);
#                                  access log in $TEST_TMP/NAME/access.log
#   http_get_marker HOST PORT      one HTTP/1.0 GET / on a new connection; prints the body, fails unless 200
#   start_http_probe NAME HOST PORT
#                                  a new GET every 50 ms (each on its own connection, 10 s timeout, at most 300 s);
#                                  one line per request in $TEST_TMP/NAME.probe: "START_MS END_MS ok MARKER" or
#                                  "START_MS END_MS fail REASON"; stops when $TEST_TMP/NAME.stop exists
#   probe_first_ok_after NAME MARKER T_MS
#                                  prints END_MS of the earliest-ending success with MARKER that started after T_MS
#   run_http_load HOST PORT WORKERS SECONDS [STOPFILE]
#                                  fixed-concurrency load (HTTP/1.0, a new connection per request) for SECONDS, or
#                                  until STOPFILE exists (then SECONDS is only a cap); prints one JSON object
#                                  {"ok": N, "failed": N, "markers": {MARKER: N}, "errors": [...]}

free_port6() { free_port; }  # free_port already checks ::1 too

start_marker_nginx() {
  nginx_with "$1" 1024 "server { listen 127.0.0.1:$2; location / { return 200 \"$3\\n\"; } }" "$2"
}

# The Python pieces below share one GET: a new connection, HTTP/1.0, the whole answer read to EOF.
_HTTP_GET_PY='
import socket
def http_get(host, port, timeout, path="/"):
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.0\r\nHost: tunnel-test\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0].decode("latin-1")
    if not sep or status.split(" ")[1:2] != ["200"]:
        raise OSError("bad answer %r" % data[:80])
    return body.decode("latin-1").strip()
'

http_get_marker() {
  python3 -c "$_HTTP_GET_PY"'
import sys
print(http_get(sys.argv[1], int(sys.argv[2]), 10))' "$1" "$2"
}

start_http_probe() {
  local name=$1 host=$2 port=$3
  rm -f "$TEST_TMP/$name.stop" "$TEST_TMP/$name.probe"
  spawn "$name" python3 -c "$_HTTP_GET_PY"'
import os, sys, threading, time
host, port, out, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lock = threading.Lock()
f = open(out, "a", buffering=1)
def now_ms():
    return int(time.time() * 1000)
def one():
    t0 = now_ms()
    try:
        line = "ok " + http_get(host, port, 10)
    except Exception as e:
        line = "fail " + (type(e).__name__ + ":" + str(e)).replace("\n", " ")[:80]
    with lock:
        f.write("%d %d %s\n" % (t0, now_ms(), line))
end = time.time() + 300  # a cap; the test ends the probe with its stop file
threads = []
while time.time() < end and not os.path.exists(stop):
    t = threading.Thread(target=one, daemon=True)
    t.start()
    threads.append(t)
    threads = [t for t in threads if t.is_alive()]
    time.sleep(0.05)
for t in threads:
    t.join()
' "$host" "$port" "$TEST_TMP/$name.probe" "$TEST_TMP/$name.stop"
}

probe_first_ok_after() {
  awk -v m="$2" -v t="$3" '$1 > t && $3 == "ok" && $4 == m && (best == "" || $2 < best) { best = $2 }
                           END { if (best == "") exit 1; print best }' "$TEST_TMP/$1.probe"
}

run_http_load() {
  python3 -c "$_HTTP_GET_PY"'
import json, os, sys, threading, time
host, port, workers, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
stop = sys.argv[5] if len(sys.argv) > 5 else None
lock = threading.Lock()
res = {"ok": 0, "failed": 0, "markers": {}, "errors": []}
end = time.time() + seconds
def worker():
    while time.time() < end and not (stop and os.path.exists(stop)):
        try:
            m = http_get(host, port, 10)
            with lock:
                res["ok"] += 1
                res["markers"][m] = res["markers"].get(m, 0) + 1
        except Exception as e:
            with lock:
                res["failed"] += 1
                if len(res["errors"]) < 10:
                    res["errors"].append("%.3f %s: %s" % (time.time(), type(e).__name__, e))
ts = [threading.Thread(target=worker) for _ in range(workers)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps(res))' "$@"
}

# ---- hardening helpers ----
#   assert_clean_exit NAME         fails the test when $TEST_TMP/NAME.log holds a sanitizer report
#                                  (AddressSanitizer, LeakSanitizer, UBSan "runtime error")
#   rss_kb PID                     resident set size of PID in KiB
#   fd_count PID                   open descriptors of PID (entries in /proc/PID/fd)
#   cpu_ms PID                     user+system CPU time PID has used, in ms
#   stop_tunnelc NAME [SIGNAL]     signal (TERM by default) tunnelc NAME and wait; status in $TUNNELC_STATUS

assert_clean_exit() {
  local log="$TEST_TMP/$1.log"
  [ -f "$log" ] || fail "assert_clean_exit: no log $log"
  if grep -qE 'LeakSanitizer|AddressSanitizer|runtime error' "$log"; then
    grep -nE -A12 'LeakSanitizer|AddressSanitizer|runtime error' "$log" | sed -n 1,60p >&2
    fail "sanitizer report in $log"
  fi
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

fd_count() { ls "/proc/$1/fd" | wc -l; }

cpu_ms() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz) }' "/proc/$1/stat"
}

stop_tunnelc() {
  local name=$1 sig=${2:-TERM} pidvar="TUNNELC_PID_$1"
  kill -"$sig" "${!pidvar}" 2>/dev/null || true
  TUNNELC_STATUS=0
  wait "${!pidvar}" 2>/dev/null || TUNNELC_STATUS=$?
}

# stop_checked NAME...: SIGTERM tunneld ("tunneld") or a tunnelc (its NAME), wait for it, and fail the test unless it
# exited 0 without a sanitizer report or failed assertion in its log (shutdown paths are bugs' favourite hideout).
stop_checked() {
  local name pid var status log
  for name in "$@"; do
    if [ "$name" = tunneld ]; then pid=$TUNNELD_PID log=$TEST_TMP/tunneld.log
    else var="TUNNELC_PID_$name"; pid=${!var}; log=$TEST_TMP/tunnelc-$name.log; fi
    kill -TERM "$pid" 2>/dev/null || true
    status=0
    wait "$pid" 2>/dev/null || status=$?
    [ "$status" = 0 ] || fail "$name exited with status $status on SIGTERM (log $log)"
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|Assertion .* failed" "$log"; then
      fail "$name: sanitizer report or failed assertion in $log: $(grep -m3 -E "Sanitizer|runtime error:|Assertion" "$log")"
    fi
  done
}

# ---- downloads held open by the test ----
#   start_stream_server NAME PORT MARKER
#                                  tools/stream_server.py on 127.0.0.1:PORT: GET /stream/DL streams until the test
#                                  ends DL; any other path answers MARKER. All stream servers of a test share
#                                  $TEST_TMP/streams, so the test need not know which one a tunnel reached.
#   start_held_download DL PORT    curl http://127.0.0.1:PORT/stream/DL into $TEST_TMP/DL.bin in the background;
#                                  returns once the first bytes arrived; curl's pid in HELD_PID_DL
#   held_download_running DL       true while that curl still runs
#   held_download_bytes DL         bytes received so far
#   finish_held_download DL [MARKER]
#                                  ends DL at its stream server, waits for curl and fails unless every byte the
#                                  server sent arrived intact (and, with MARKER, that this backend sent them)
# These replace "a file big enough to outlast the checks": the download lasts exactly as long as the test needs,
# whatever the machine's speed.

start_stream_server() {
  local name=$1 port=$2 marker=$3
  mkdir -p "$TEST_TMP/streams"
  spawn "$name" python3 "$(dirname "${BASH_SOURCE[0]}")/tools/stream_server.py" "$port" "$TEST_TMP/streams" "$marker"
  wait_port "$port"
}

start_held_download() {
  local dl=$1 port=$2
  rm -f "$TEST_TMP/$dl.bin" "$TEST_TMP/streams/$dl".*
  bg curl -sS --max-time 600 -o "$TEST_TMP/$dl.bin" "http://127.0.0.1:$port/stream/$dl" 2>"$TEST_TMP/$dl.err"
  printf -v "HELD_PID_$dl" '%s' "$BG_PID"
  wait_until 30 held_download_has_bytes "$dl" ||
    fail "download $dl did not start: $(cat "$TEST_TMP/$dl.err" 2>/dev/null)"
}

held_download_bytes() { stat -c %s "$TEST_TMP/$1.bin" 2>/dev/null || echo 0; }
held_download_has_bytes() { [ "$(held_download_bytes "$1")" -gt "${2:-0}" ]; }
held_download_running() { local v="HELD_PID_$1"; kill -0 "${!v}" 2>/dev/null; }

finish_held_download() {
  local dl=$1 marker=${2:-} v="HELD_PID_$1" rc=0 sent sha by got
  touch "$TEST_TMP/streams/$dl.stop"
  wait "${!v}" || rc=$?
  [ "$rc" = 0 ] || fail "download $dl failed (curl exit $rc): $(cat "$TEST_TMP/$dl.err" 2>/dev/null)"
  [ -f "$TEST_TMP/streams/$dl.done" ] || fail "download $dl ended before its stream server ended it"
  read -r sent sha by <"$TEST_TMP/streams/$dl.done"
  got=$(sha256sum <"$TEST_TMP/$dl.bin" | cut -d' ' -f1)
  [ "$(held_download_bytes "$dl")" = "$sent" ] && [ "$got" = "$sha" ] ||
    fail "download $dl corrupted: got $(held_download_bytes "$dl") bytes (sha256 $got), the backend sent $sent ($sha)"
  [ -z "$marker" ] || [ "$by" = "$marker" ] || fail "download $dl came from backend '$by', not '$marker'"
  HELD_BYTES=$sent
  rm -f "$TEST_TMP/$dl.bin"
}

# ---- identity helpers ----
#   issue_twin DIR NAME [pki issue options]
#                                  another certificate for NAME (its own key) from the same CA, in DIR (made here)
#   start_tunnelc_as LABEL CERT KEY [PORTS_JSON] [SERVICES_JSON] [LIMITS_JSON]
#                                  a tunnelc presenting CERT/KEY; config, log and pid as start_tunnelc's under LABEL
#   fingerprint CERT               the certificate's SHA-256 fingerprint as 64 lowercase hex digits
#   metric NAME_WITH_LABELS        the value of one sample from GET /metrics (empty when absent)

issue_twin() {
  local dir=$1 name=$2; shift 2
  mkdir -p "$dir"
  cp "$PKI/ca.crt" "$PKI/ca.key" "$dir/"
  "$TUNNELD" pki issue "$dir" --name "$name" "$@" >/dev/null
}

start_tunnelc_as() {
  local label=$1 cert=$2 key=$3 ports=${4:-[]} services=${5:-\{\}} limits=${6:-$FAST_CLIENT_LIMITS}
  cat >"$TEST_TMP/tunnelc-$label.json" <<JSON
{
  "ServerHost": "127.0.0.1",
  "ServerTunnelControlPort": $CONTROL_PORT,
  "CaCertificateFile": "$PKI/ca.crt",
  "ClientTlsCertificateFile": "$cert",
  "ClientTlsKeyFile": "$key",
  "AllowedBackEndPorts": $ports,
  "ServiceToLocalAddrMap": $services,
  "DebugLog": true,
  "Limits": $limits
}
JSON
  spawn_checked "tunnelc-$label" "$TUNNELC" --config "$TEST_TMP/tunnelc-$label.json"
  printf -v "TUNNELC_PID_$label" '%s' "$SPAWNED_PID"
}

fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f'; }

metric() {
  api GET /metrics
  [ "$API_STATUS" = 200 ] || fail "GET /metrics returned $API_STATUS"
  awk -v k="$1" '$1 == k { print $2 }' <<<"$API_BODY"
}

# start_good_and_bad_tunnels: home1 connected and serving marker "good" on $GOOD_PORT; $BAD_PORT routes to home2,
# which a hostile tool will play. For tests where one client attacks and another must keep working.
start_good_and_bad_tunnels() {
  BACKEND_PORT=$(free_port); GOOD_PORT=$(free_port); BAD_PORT=$(free_port)
  start_marker_nginx nginx "$BACKEND_PORT" good
  start_tunnelc home1 "[$BACKEND_PORT]"
  wait_client_connected home1
  put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $GOOD_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT},
                {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $BAD_PORT, \"ClientIdentifier\": \"home2\", \"BackEndPort\": $BACKEND_PORT}]"
  wait_port "$GOOD_PORT"
  [ "$(http_get_marker 127.0.0.1 "$GOOD_PORT")" = good ] || fail "no traffic through the good client"
}

# ---- an older tunneld, independently built ----
#   start_old_tunneld NAME [ARGS]  tests/interop/old_tunneld (Go's crypto/tls + Debian's hashicorp/yamux, built here
#                                  in GOPATH mode: no network) with the fixture's server certificate; free ports in
#                                  $OLD_CONTROL, $OLD_PUBLIC; ARGS go to it (--backend-port is required); log in
#                                  $TEST_TMP/NAME.log; fails the test if the build fails
start_old_tunneld() {
  local name=$1 src=${TUNNEL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}; shift
  local bin=$TEST_TMP/old_tunneld gopath=/usr/share/gocode
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null || fail "go not found: apt-get install golang-go"
    [ -d "$gopath/src/github.com/hashicorp/yamux" ] ||
      fail "hashicorp/yamux not found in $gopath: apt-get install golang-github-hashicorp-yamux-dev"
    (cd "$src" && GO111MODULE=off GOPATH=$gopath GOCACHE="$TEST_TMP/gocache" GOFLAGS="" GOENV=off GOPROXY=off \
      go build -o "$bin" ./tests/interop/old_tunneld) >"$TEST_TMP/go-build.log" 2>&1 ||
      fail "building tests/interop/old_tunneld failed: $(cat "$TEST_TMP/go-build.log")"
  fi
  OLD_CONTROL=$(free_port) OLD_PUBLIC=$(free_port)
  spawn "$name" "$bin" --control "$OLD_CONTROL" --public "$OLD_PUBLIC" --ca "$PKI/ca.crt" --cert "$PKI/server.crt" \
    --key "$PKI/server.key" "$@"
  wait_log "$TEST_TMP/$name.log" "^listening: control 127\.0\.0\.1:$OLD_CONTROL public 127\.0\.0\.1:$OLD_PUBLIC" 60
}

# ---- several tunneld for one tunnelc ("Servers") ----
#   server_ports NAME...           free control and management ports per server: $CONTROL_<NAME>, $MGMT_<NAME>
#   use_server NAME                points api / put_tunnels / wait_client_connected at that tunneld
#   start_server NAME              tunneld NAME on its ports with its own state file (kept across restarts);
#                                  log $TEST_TMP/tunneld-NAME.log, pid in PID_<NAME>
#   kill_server NAME               kill -9 and reap it
#   stop_server NAME               SIGTERM; fails unless it exits 0 without a sanitizer report
#   write_servers_tunnelc NAME SERVERS_JSON [PORTS_JSON]
#                                  $TEST_TMP/tunnelc-NAME.json with "Servers": SERVERS_JSON and the fast limits
#   route_on_server NAME CLIENT BACKEND
#                                  a tunnel $PUBLIC_<NAME> -> BACKEND on tunneld NAME, once CLIENT is connected
#   log_ms FILE PATTERN            epoch milliseconds of the last line matching PATTERN (the logs' UTC timestamps)

server_ports() {
  local s
  for s in "$@"; do
    printf -v "CONTROL_$s" '%s' "$(free_port)"
    printf -v "MGMT_$s" '%s' "$(free_port)"
  done
}

use_server() {
  local c="CONTROL_$1" m="MGMT_$1"
  CONTROL_PORT=${!c} MGMT_PORT=${!m} STATE_FILE="$TEST_TMP/state-$1/tunnels.json"
}

start_server() {
  use_server "$1"
  write_tunneld_config
  mv "$TEST_TMP/tunneld.json" "$TEST_TMP/tunneld-$1.json"
  spawn_checked "tunneld-$1" "$TUNNELD" --config "$TEST_TMP/tunneld-$1.json" --init-state
  printf -v "PID_$1" '%s' "$SPAWNED_PID"
  wait_until 15 api_ping || fail "tunneld $1 did not start (see $TEST_TMP/tunneld-$1.log)"
}

kill_server() {
  local v="PID_$1"
  kill -KILL "${!v}"
  wait "${!v}" 2>/dev/null || true
}

stop_server() {
  local v="PID_$1" status=0 log="$TEST_TMP/tunneld-$1.log"
  kill -TERM "${!v}" 2>/dev/null || true
  wait "${!v}" 2>/dev/null || status=$?
  [ "$status" = 0 ] || fail "tunneld $1 exited with status $status on SIGTERM (log $log)"
  if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|Assertion .* failed" "$log"; then
    fail "tunneld $1: sanitizer report in $log"
  fi
}

# route_on_server NAME CLIENT BACKEND: on tunneld NAME (use_server), once CLIENT is connected, one tunnel from
# $PUBLIC_<NAME> on 127.0.0.1 to BACKEND; returns once the public port listens
route_on_server() {
  local p="PUBLIC_$1"
  use_server "$1"
  wait_client_connected "$2"
  put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": ${!p}, \"ClientIdentifier\": \"$2\", \"BackEndPort\": $3}]"
  wait_port "${!p}"
}

write_servers_tunnelc() {
  local name=$1 servers=$2 ports=${3:-[]}
  cat >"$TEST_TMP/tunnelc-$name.json" <<JSON
{
  "Servers": $servers,
  "CaCertificateFile": "$PKI/ca.crt",
  "ClientTlsCertificateFile": "$PKI/$name.crt",
  "ClientTlsKeyFile": "$PKI/$name.key",
  "AllowedBackEndPorts": $ports,
  "DebugLog": true,
  "Limits": $FAST_CLIENT_LIMITS
}
JSON
}

log_ms() {
  grep -E "$2" "$1" | tail -1 | python3 -c 'import sys,datetime
t=sys.stdin.read().split(" ")[0]
print(int(datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()*1000))'
}

# The home sites' PKI: tests where the visitor's TLS goes end to end to a site at home, never through tunnel's PKI.
web_ca() {
  mkdir -p "$WEB_PKI"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=home web test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout "$WEB_PKI/ca.key" -out "$WEB_PKI/ca.crt" 2>>"$TEST_TMP/openssl.log" || fail "openssl: the web CA"
}
web_cert() {  # web_cert NAME SAN
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$1" \
    -keyout "$WEB_PKI/$1.key" -out "$WEB_PKI/$1.csr" 2>>"$TEST_TMP/openssl.log" || fail "openssl: request for $1"
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" >"$WEB_PKI/$1.cnf"
  openssl x509 -req -days 2 -in "$WEB_PKI/$1.csr" -CA "$WEB_PKI/ca.crt" -CAkey "$WEB_PKI/ca.key" -CAcreateserial \
    -extfile "$WEB_PKI/$1.cnf" -out "$WEB_PKI/$1.crt" 2>>"$TEST_TMP/openssl.log" || fail "openssl: certificate for $1"
}
