#!/usr/bin/env bash
# demo.sh: tunnel's live demo, all on this machine's loopback. Run it from a clone, as root on Debian bookworm:
#
#     bash examples/demo.sh
#
# What it does, step by step (each step is printed as it runs):
#   1. installs missing Debian packages (tests/install-deps.sh) and builds tunneld and tunnelc (Release, build/release, as the README quick start does)
#   2. makes a PKI with `tunneld pki`: a CA, the server's certificate, clients home1 and home2, an admin
#   3. starts tunneld (the "VPS"), two nginx web servers and two tunnelc clients (the "home machines")
#   4. PUT /tunnels with curl and the admin certificate: one public port, primary home1, backup home2, PROXY v2 on
#   5. fetches a page through the public port, and shows the real client address nginx logged from the PROXY header
#   6. shows GET /clients and GET /tunnels
#   7. a second site on the same public port: the Host blog.demo.test goes to home2, every other name to home1
#   8. kills home1 (kill -9) and shows the next request served by home2, with the measured failover time
#   9. two VPSes: starts a second tunneld (vps2), lists both in home2's "Servers" (SIGHUP: its link to the first
#      stays, a second link opens), PUTs the same table on vps2 and fetches a page through both public ports
#  10. kills the first tunneld (kill -9) while requests go through vps2, and counts them: none fails
# Everything it starts is stopped, and its temporary directory removed, when it exits (also on failure or Ctrl-C).
# Exit status 0 when every step worked; otherwise a message saying which step failed, and the logs.
#
# In real life tunneld runs on a VPS and each tunnelc on its own home machine; here they share 127.0.0.1, so the
# two "home machines" tell their nginx apart by a service name: the tunnel asks for service "web", and each tunnelc
# maps "web" to its own nginx.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$REPO/build/release
DEMO=$(mktemp -d /tmp/tunnel-demo.XXXXXX)
PIDS=()

# ---- presentation and process helpers ----

if [ -t 1 ]; then BOLD=$'\e[1m' GREEN=$'\e[32m' RED=$'\e[31m' OFF=$'\e[0m'; else BOLD='' GREEN='' RED='' OFF=''; fi
STEP=0
step() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s\n' "$BOLD" "$STEP" "$*" "$OFF"; }
say() { printf '   %s\n' "$*"; }
show() { sed 's/^/   | /'; }   # indents a command's output under its step
die() { printf '\n%sdemo: FAILED at step %d: %s%s\n' "$RED" "$STEP" "$*" "$OFF" >&2; exit 1; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for f in "$DEMO"/*.log; do
      [ -s "$f" ] || continue
      echo "--- last lines of $f" >&2
      tail -n 15 "$f" >&2
    done
  fi
  rm -rf "$DEMO"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD ARGS...: runs CMD in the background, output in $DEMO/NAME.log; pid in $STARTED
start() {
  local name=$1; shift
  "$@" >"$DEMO/$name.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}

# wait_for SECONDS WHAT CMD ARGS...: polls CMD every 100 ms until it succeeds, or dies after SECONDS.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not happen within $seconds s"
    sleep 0.1
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
now_ms() { date +%s%3N; }

# ---- 1. dependencies and build ----

step "Install missing packages (tests/install-deps.sh) and build tunneld + tunnelc (Release, $BUILD)"
bash "$REPO/tests/install-deps.sh" || die "installing dependencies failed (run as root on Debian bookworm)"
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTUNNEL_SANITIZE=OFF -DTUNNEL_FUZZ=OFF -DTUNNEL_TESTS=OFF \
  >"$DEMO/cmake.log" 2>&1 || die "cmake configure failed (its log follows)"
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" >>"$DEMO/cmake.log" 2>&1 || die "build failed (its log follows)"
mv "$DEMO/cmake.log" "$DEMO/cmake.txt"   # kept out of the logs shown on a later failure
TUNNELD=$BUILD/server/tunneld
TUNNELC=$BUILD/client/tunnelc
[ -x "$TUNNELD" ] && [ -x "$TUNNELC" ] || die "build produced no tunneld/tunnelc in $BUILD"
say "built: $("$TUNNELD" --version), $("$TUNNELC" --version)"

# ---- 2. PKI ----

step "Make a PKI with 'tunneld pki' (in $DEMO/pki)"
PKI=$DEMO/pki
"$TUNNELD" pki init "$PKI" | show
"$TUNNELD" pki issue "$PKI" --name server --server --ip 127.0.0.1 --dns localhost | show
"$TUNNELD" pki issue "$PKI" --name home1 | show
"$TUNNELD" pki issue "$PKI" --name home2 | show
"$TUNNELD" pki issue "$PKI" --name admin --admin | show

# ---- 3. processes ----

CONTROL_PORT=$(free_port); MGMT_PORT=$(free_port); PUBLIC_PORT=$(free_port)
WEB1_PORT=$(free_port); WEB2_PORT=$(free_port)

step "Start two nginx web servers (one per home machine) that expect the PROXY protocol"
# start_nginx NAME PORT: serves "Hello from NAME" on 127.0.0.1:PORT; `listen ... proxy_protocol` makes nginx read
# the PROXY header tunnelc sends first, and the log format records the real user address it carries.
start_nginx() {
  local name=$1 port=$2 dir=$DEMO/$1
  mkdir -p "$dir/www" "$dir/tmp"
  echo "Hello from $name's nginx, reached through the tunnel" >"$dir/www/index.html"
  cat >"$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $dir/nginx.pid; error_log $DEMO/$name-error.log;
events { worker_connections 256; }
http {
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  log_format realip 'user=\$proxy_protocol_addr:\$proxy_protocol_port "\$request" \$status (tcp peer \$remote_addr:\$remote_port)';
  access_log $dir/access.log realip;
  server {
    listen 127.0.0.1:$port proxy_protocol;
    root $dir/www;
  }
}
CONF
  start "$name" nginx -e stderr -p "$dir" -c "$dir/nginx.conf"
  wait_for 10 "nginx $name listening on port $port" port_open "$port"
  say "nginx for $name on 127.0.0.1:$port (log $dir/access.log)"
}
start_nginx web1 "$WEB1_PORT"
start_nginx web2 "$WEB2_PORT"

step "Start tunneld (the VPS side): control port $CONTROL_PORT, management port $MGMT_PORT"
cat >"$DEMO/tunneld.json" <<JSON
{
  "TunnelControlPort": $CONTROL_PORT,
  "ManagementPort": $MGMT_PORT,
  "ListenAddress": "127.0.0.1",
  "CaCertificateFile": "$PKI/ca.crt",
  "ServerTlsCertificateFile": "$PKI/server.crt",
  "ServerTlsKeyFile": "$PKI/server.key",
  "AdminIdentities": ["admin"],
  "StateFile": "$DEMO/state/tunnels.json",
  "Limits": {"KeepaliveIntervalMs": 1000, "DeadPeerTimeoutMs": 3000}
}
JSON
mkdir -p "$DEMO/state"
show <"$DEMO/tunneld.json"
start tunneld "$TUNNELD" --config "$DEMO/tunneld.json" --init-state; TUNNELD_PID=$STARTED

# api METHOD PATH [JSON]: the management API with the admin certificate, exactly as automation would call it.
# API_PORT picks another tunneld's management port (step 8).
api() {
  local args=(-sS --fail-with-body --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key"
              -X "$1")
  [ $# -lt 3 ] || args+=(-H 'Content-Type: application/json' --data-binary "$3")
  curl "${args[@]}" "https://127.0.0.1:${API_PORT:-$MGMT_PORT}$2"
}
wait_for 15 "tunneld answering GET /ping" api GET /ping
say "tunneld is up: GET /ping says '$(api GET /ping)'"

step "Start two tunnelc clients (the home machines): home1 and home2"
# start_client NAME WEB_PORT: a tunnelc with NAME's certificate that maps service "web" to its own nginx.
start_client() {
  cat >"$DEMO/tunnelc-$1.json" <<JSON
{
  "ServerHost": "127.0.0.1",
  "ServerTunnelControlPort": $CONTROL_PORT,
  "CaCertificateFile": "$PKI/ca.crt",
  "ClientTlsCertificateFile": "$PKI/$1.crt",
  "ClientTlsKeyFile": "$PKI/$1.key",
  "ServiceToLocalAddrMap": {"web": "127.0.0.1:$2"},
  "Limits": {"KeepaliveIntervalMs": 1000, "DeadPeerTimeoutMs": 3000, "ReconnectMinMs": 200}
}
JSON
  start "tunnelc-$1" "$TUNNELC" --config "$DEMO/tunnelc-$1.json"
}
start_client home1 "$WEB1_PORT"; HOME1_PID=$STARTED
start_client home2 "$WEB2_PORT"; HOME2_PID=$STARTED
show <"$DEMO/tunnelc-home1.json"
connected() { api GET /clients | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin).get(sys.argv[1],{}).get("CurrentState")!="ClientConnected")' "$1"; }
wait_for 20 "client home1 connecting to tunneld" connected home1
wait_for 20 "client home2 connecting to tunneld" connected home2
say "home1 and home2 are connected"

# ---- 4. the tunnel ----

step "PUT /tunnels: public port $PUBLIC_PORT -> service \"web\" on home1 (backup home2), PROXY protocol v2"
TABLE="[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\",
  \"BackupClientIdentifiers\": [\"home2\"], \"BackEndService\": \"web\",
  \"HaProxyProxyProtocol\": true, \"ProxyProtocolVersion\": 2}]"
say "curl --cacert ca.crt --cert admin.crt --key admin.key -X PUT -H 'Content-Type: application/json' \\"
say "     --data-binary '$(tr -s ' \n' ' ' <<<"$TABLE" | sed 's/ $//')' https://127.0.0.1:$MGMT_PORT/tunnels"
reply=$(api PUT /tunnels "$TABLE") || die "PUT /tunnels was refused: $reply"
say "answer (the applied table):"
echo "$reply" | python3 -m json.tool | show
wait_for 10 "the public port $PUBLIC_PORT opening" port_open "$PUBLIC_PORT"

# ---- 5. a page through the tunnel, and the real client address ----

step "Fetch a page through the public port"
say "curl http://127.0.0.1:$PUBLIC_PORT/"
out=$(curl -sS --max-time 10 -w '\n%{local_ip}:%{local_port}' "http://127.0.0.1:$PUBLIC_PORT/") \
  || die "no answer through the public port"
page=$(echo "$out" | head -n 1); user=$(echo "$out" | tail -n 1)
echo "$page" | show
case "$page" in "Hello from web1's nginx"*) ;; *) die "expected home1's page, got '$page'" ;; esac
say "curl (the internet user) connected from $user"

step "The real client address nginx logged, from the PROXY header tunnelc sent"
logged_line() { grep -F "user=$1 " "$DEMO/web1/access.log"; }
wait_for 10 "nginx logging user=$user" logged_line "$user"
logged_line "$user" | show
say "nginx saw user=$user: the user's own address and port, although its TCP peer is tunnelc on loopback"

# ---- 6. state through the management API ----

# Byte counters are added when a connection ends: wait for curl's to be closed on the tunnel side too.
streams_closed() { api GET /clients | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["home1"]["OpenStreams"] != 0)'; }
wait_for 10 "the fetched page's connection closing" streams_closed
step "GET /clients"
api GET /clients | python3 -m json.tool | show
step "GET /tunnels"
api GET /tunnels | python3 -m json.tool | show

# ---- 7. a second site on the same port ----

step "A second site on public port $PUBLIC_PORT: Host blog.demo.test -> home2, every other name -> home1"
TABLE2="[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\",
  \"BackupClientIdentifiers\": [\"home2\"], \"BackEndService\": \"web\",
  \"HaProxyProxyProtocol\": true, \"ProxyProtocolVersion\": 2, \"ListenHostnameGlob\": \"*\"},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home2\",
  \"BackEndService\": \"web\", \"HaProxyProxyProtocol\": true, \"ProxyProtocolVersion\": 2,
  \"ListenHostnameGlob\": \"blog.demo.test\"}]"
reply=$(api PUT /tunnels "$TABLE2") || die "PUT /tunnels with two sites on one port was refused: $reply"
echo "$reply" | python3 -c 'import json,sys; [print(t["ListenPort"], t["ListenHostnameGlob"], "->", t["ClientIdentifier"]) for t in json.load(sys.stdin)]' | show
say "tunneld reads each visitor's Host (or TLS server name: the same works for HTTPS, never decrypted) and picks the tunnel"
say "curl --resolve blog.demo.test:$PUBLIC_PORT:127.0.0.1 http://blog.demo.test:$PUBLIC_PORT/"
page=$(curl -sS --max-time 10 --resolve "blog.demo.test:$PUBLIC_PORT:127.0.0.1" "http://blog.demo.test:$PUBLIC_PORT/") ||
  die "no answer for blog.demo.test"
echo "$page" | show
case "$page" in "Hello from web2's nginx"*) ;; *) die "expected home2's page for blog.demo.test, got '$page'" ;; esac
say "curl http://127.0.0.1:$PUBLIC_PORT/ (any other name: the \"*\" tunnel)"
page=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/") || die "no answer for another name"
echo "$page" | show
case "$page" in "Hello from web1's nginx"*) ;; *) die "expected home1's page for another name, got '$page'" ;; esac
say "two sites, two home machines, one public port"

# ---- 8. failover ----

step "Kill the primary client home1 (kill -9) and fetch again: home2 serves"
t_kill=$(now_ms)
disown "$HOME1_PID"   # so the shell does not print its own "Killed" line
kill -KILL "$HOME1_PID"
say "home1 killed; requesting every 50 ms until an answer comes from home2..."
deadline=$((t_kill + 20000)) page='' failed=0
while [ "$(now_ms)" -lt "$deadline" ]; do
  if page=$(curl -sS --max-time 2 "http://127.0.0.1:$PUBLIC_PORT/" 2>/dev/null) && [[ $page == "Hello from web2's nginx"* ]]; then
    break
  fi
  failed=$((failed + 1)) page=''
  sleep 0.05
done
t_ok=$(now_ms)
[ -n "$page" ] || die "no request was served by home2 within 20 s of killing home1"
echo "$page" | show
say "failover: the first request served by the backup home2 came $((t_ok - t_kill)) ms after kill -9 ($failed requests failed or went elsewhere before it)"
say "(a dead TCP connection is seen at once; a silent one by the keepalive, here within DeadPeerTimeoutMs = 3000 ms)"
tail -n 1 "$DEMO/web2/access.log" | show
api GET /tunnels | python3 -c 'import json,sys; t=json.load(sys.stdin)[0]; print("ActiveClient:", t["ActiveClient"])' | show
api GET /clients | python3 -c 'import json,sys; d=json.load(sys.stdin); [print(k, d[k]["CurrentState"]) for k in sorted(d)]' | show

# ---- 9. two VPSes ----

CONTROL2_PORT=$(free_port); MGMT2_PORT=$(free_port); PUBLIC2_PORT=$(free_port)
step "Two VPSes: a second tunneld (vps2), and home2 listing both in \"Servers\""
sed -e "s/\"TunnelControlPort\": $CONTROL_PORT,/\"TunnelControlPort\": $CONTROL2_PORT,/" \
    -e "s/\"ManagementPort\": $MGMT_PORT,/\"ManagementPort\": $MGMT2_PORT,/" \
    -e "s#$DEMO/state/#$DEMO/state2/#" "$DEMO/tunneld.json" >"$DEMO/tunneld-vps2.json"
mkdir -p "$DEMO/state2"
start tunneld-vps2 "$TUNNELD" --config "$DEMO/tunneld-vps2.json" --init-state
API_PORT=$MGMT2_PORT wait_for 15 "tunneld vps2 answering GET /ping" api GET /ping
say "vps2: control port $CONTROL2_PORT, management port $MGMT2_PORT (the first tunneld, vps1, is still up)"
# The same file with "Servers" in place of ServerHost: the link to vps1 is kept across the reload.
python3 - "$DEMO/tunnelc-home2.json" "$CONTROL_PORT" "$CONTROL2_PORT" <<'PY'
import json, sys
path, p1, p2 = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = json.load(open(path))
del cfg["ServerHost"], cfg["ServerTunnelControlPort"]
cfg["Servers"] = ["127.0.0.1:" + p1, "127.0.0.1:" + p2]
json.dump(cfg, open(path + ".new", "w"), indent=2)
PY
mv "$DEMO/tunnelc-home2.json.new" "$DEMO/tunnelc-home2.json"
grep -A3 '"Servers"' "$DEMO/tunnelc-home2.json" | show
say "kill -HUP home2's tunnelc: it re-reads the file and keeps its link to vps1"
kill -HUP "$HOME2_PID"
reloaded() { grep -q "configuration reloaded .*servers: 1 kept, 1 added, 0 removed" "$DEMO/tunnelc-home2.log"; }
wait_for 10 "home2 reloading with two servers" reloaded
API_PORT=$MGMT2_PORT wait_for 20 "home2 connecting to vps2" connected home2
grep -E "configuration reloaded|server added|connected to 127.0.0.1:$CONTROL2_PORT" "$DEMO/tunnelc-home2.log" |
  sed 's/^[^ ]* //' | show
say "PUT the same table on vps2 (its own public port $PUBLIC2_PORT: both VPSes share this machine's loopback)"
reply=$(API_PORT=$MGMT2_PORT api PUT /tunnels "${TABLE//$PUBLIC_PORT/$PUBLIC2_PORT}") || die "PUT /tunnels on vps2 was refused: $reply"
wait_for 10 "vps2's public port $PUBLIC2_PORT opening" port_open "$PUBLIC2_PORT"
for port in "$PUBLIC_PORT" "$PUBLIC2_PORT"; do
  page=$(curl -sS --max-time 10 "http://127.0.0.1:$port/") || die "no answer through public port $port"
  case "$page" in "Hello from web2's nginx"*) ;; *) die "expected home2's page through $port, got '$page'" ;; esac
  say "through $([ "$port" = "$PUBLIC_PORT" ] && echo vps1 || echo vps2) (port $port): $page"
done

# ---- 10. one VPS dies ----

step "Kill the first tunneld, vps1 (kill -9), while requests go through vps2"
# One request after another through vps2, across the kill, until told to stop; one line each: ok or fail.
(
  while [ ! -e "$DEMO/loop.stop" ]; do
    if curl -sS --max-time 5 "http://127.0.0.1:$PUBLIC2_PORT/" 2>/dev/null | grep -q "Hello from web2"; then
      echo ok; else echo fail; fi
  done >"$DEMO/loop.txt"
) &
LOOP_PID=$!; PIDS+=("$LOOP_PID")
answered() { [ "$(grep -c ok "$DEMO/loop.txt")" -ge "$1" ]; }
wait_for 20 "requests through vps2 being answered" answered 5
disown "$TUNNELD_PID"
kill -KILL "$TUNNELD_PID"
say "vps1 killed; home2 notices its link is gone, the link to vps2 is untouched:"
lost() { grep -q "(server 127.0.0.1:$CONTROL_PORT): disconnected from" "$DEMO/tunnelc-home2.log"; }
wait_for 20 "home2 noticing that vps1 is gone" lost
grep -m1 "(server 127.0.0.1:$CONTROL_PORT): disconnected from" "$DEMO/tunnelc-home2.log" | sed 's/^[^ ]* //' | show
before=$(grep -c ok "$DEMO/loop.txt")
wait_for 30 "20 more requests through vps2 after vps1 died" answered $((before + 20))
touch "$DEMO/loop.stop"; wait "$LOOP_PID" || true
port_open "$PUBLIC_PORT" && die "vps1's public port still answers after kill -9"
ok=$(grep -c ok "$DEMO/loop.txt"); bad=$(grep -c fail "$DEMO/loop.txt" || true)
say "vps1's public port $PUBLIC_PORT refuses connections now (a browser would try the name's other address)"
say "two VPSes: $ok requests through vps2 across the kill of vps1, $bad failed"
[ "$bad" = 0 ] || die "$bad requests through vps2 failed while vps1 died"
API_PORT=$MGMT2_PORT api GET /clients | python3 -c 'import json,sys; d=json.load(sys.stdin); [print("vps2:", k, d[k]["CurrentState"]) for k in sorted(d)]' | show

printf '\n%sdemo: every step worked.%s tunneld vps2, nginx and home2 are stopped now; see docs/FAILOVER.md for the routing policy.\n' \
  "$GREEN" "$OFF"
