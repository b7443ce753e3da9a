#!/usr/bin/env bash
# Benchmarks: the tunnel beside direct loopback and ssh -R, and the raw cipher, in one run.
#
#   bash tests/bench/run.sh [--quick]
#
# Installs what is missing (tests/install-deps.sh, tests/bench/install-bench-deps.sh; as root), builds a Release
# tree without sanitizers in build/bench, then starts on loopback, on free ports: nginx (a 1 KiB and a 1 MiB
# file), an iperf3 server, tunneld + tunnelc (certificates from `tunneld pki`), and its own sshd with two
# `ssh -N -R` forwarders (default ciphers, and -c chacha20-poly1305@openssh.com). Every figure is measured against
# each column in turn, back to back, so all columns see the same machine load. Prints one table and writes it as
# JSON and Markdown to tests/bench/results/. Everything started is stopped on exit.
#
# About 4-5 minutes; --quick (1 s per measurement, one round, fewer samples) takes under a minute once built.
# Not part of the test command: it reports and does not fail on missed targets.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"

QUICK=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  "") ;;
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: bash tests/bench/run.sh [--quick]" >&2; exit 2 ;;
esac

if [ "$QUICK" = 1 ]; then
  DUR=1; TTFB_N=100; TLS_MIB=32; IDLE_N=10000; ROUNDS=1
else
  DUR=5; TTFB_N=500; TLS_MIB=256; IDLE_N=10000; ROUNDS=2
fi
T_START=$(date +%s)

bash tests/install-deps.sh
bash tests/bench/install-bench-deps.sh

source "$here/tests/bench/release_build.sh"
bench_build tunneld tunnelc bench_tls bench_conn

BENCH_BIN="$here/build/bench/bench"
RESULTS="$here/tests/bench/results"

# Process handling shared with the integration tests: spawn (stopped by the exit trap), free_port, wait_until,
# wait_port, wait_log, fail.
source "$here/tests/integration/lib.sh"
# Our own scratch directory inside the build tree (lib.sh's cleanup removes it on success, keeps it on failure).
lib_tmp=$TEST_TMP
TEST_TMP=$(mktemp -d "$here/build/bench/run.XXXXXX")
# lib.sh's scratch directory holds the python3 link it put first in PATH: it moves along.
if [ -d "$lib_tmp/bin" ]; then
  mv "$lib_tmp/bin" "$TEST_TMP/bin"
  PATH="$TEST_TMP/bin:$PATH"
fi
rmdir "$lib_tmp"
RAW="$TEST_TMP/raw"
mkdir -p "$RAW"
FIG="$RAW/figures.txt"
fig() { echo "$1 $2" >>"$FIG"; }

# 10,000 idle connections need that many descriptors in tunneld, tunnelc, nginx and the opener, each.
want_fds=$((IDLE_N + 2048))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$want_fds" ]; then
  ulimit -Hn "$want_fds" 2>/dev/null || true
fi
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
  IDLE_N=$(( $(ulimit -n) - 2048 ))
  echo "note: ulimit -n is $(ulimit -n); idle connection test uses $IDLE_N connections"
fi

# Distinct free ports (the kernel may hand out the same free port twice when nothing holds it yet).
PORTS_TAKEN=" "
new_port() {
  local p
  while :; do
    p=$(free_port)
    case "$PORTS_TAKEN" in *" $p "*) continue ;; esac
    PORTS_TAKEN="$PORTS_TAKEN$p "
    echo "$p"; return
  done
}
NGINX_PORT=$(new_port); IPERF_PORT=$(new_port)
# One iperf3 server per tunnel column: a server left "busy" by one column's test (seen after -P 8 through ssh -R)
# must not cost another column its figure.
IPERF_T=$(new_port); IPERF_S=$(new_port); IPERF_SC=$(new_port)
CONTROL_PORT=$(new_port); MGMT_PORT=$(new_port)
TUN_HTTP=$(new_port); TUN_IPERF=$(new_port)
SSH_PORT=$(new_port)
SSH_HTTP=$(new_port); SSH_IPERF=$(new_port)
SSHC_HTTP=$(new_port); SSHC_IPERF=$(new_port)
# Per column: "HTTP_PORT IPERF_PORT"
declare -A COL_PORTS=(
  [direct]="$NGINX_PORT $IPERF_PORT"
  [tunnel]="$TUN_HTTP $TUN_IPERF"
  [ssh]="$SSH_HTTP $SSH_IPERF"
  [ssh_chacha]="$SSHC_HTTP $SSHC_IPERF"
)
COLUMNS=(direct tunnel ssh ssh_chacha)
http_port() { set -- ${COL_PORTS[$1]}; echo "$1"; }
iperf_port() { set -- ${COL_PORTS[$1]}; echo "$2"; }

fig mode "$([ "$QUICK" = 1 ] && echo quick || echo full)"
fig date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
fig nproc "$(nproc)"
fig cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
fig load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
fig clk_tck "$(getconf CLK_TCK)"
fig versions "$(nginx -v 2>&1 | sed 's/.*version: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), iperf $(iperf3 -v | head -1 | cut -d' ' -f2), $(ssh -V 2>&1 | cut -d, -f1), mbedTLS $(dpkg-query -W -f='${Version}' libmbedtls-dev 2>/dev/null)"

# ---- backends ----
echo "== starting nginx, iperf3, tunneld + tunnelc, sshd + ssh -R (ports: nginx $NGINX_PORT, iperf3 $IPERF_PORT)"
WWW="$TEST_TMP/www"
mkdir -p "$WWW" "$TEST_TMP/nginx"
head -c 1024 /dev/urandom >"$WWW/1k.bin"
head -c $((1024 * 1024)) /dev/urandom >"$WWW/1m.bin"
cat >"$TEST_TMP/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
worker_rlimit_nofile $want_fds;
pid $TEST_TMP/nginx/nginx.pid; error_log $TEST_TMP/nginx/error.log;
events { worker_connections $want_fds; multi_accept on; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 120s; keepalive_requests 10000000;
  client_header_timeout 120s;
  client_body_temp_path $TEST_TMP/nginx; proxy_temp_path $TEST_TMP/nginx; fastcgi_temp_path $TEST_TMP/nginx;
  uwsgi_temp_path $TEST_TMP/nginx; scgi_temp_path $TEST_TMP/nginx;
  server { listen 127.0.0.1:$NGINX_PORT backlog=4096; root $WWW; }
}
CONF
spawn nginx nginx -c "$TEST_TMP/nginx/nginx.conf" -p "$TEST_TMP/nginx"
for p in $IPERF_PORT $IPERF_T $IPERF_S $IPERF_SC; do spawn "iperf3-$p" iperf3 -s -B 127.0.0.1 -p "$p"; done

# ---- tunneld + tunnelc ----
PKI="$TEST_TMP/pki"
"$TUNNELD" pki init "$PKI" >/dev/null
"$TUNNELD" pki issue "$PKI" --name server --server --ip 127.0.0.1 --dns localhost >/dev/null
"$TUNNELD" pki issue "$PKI" --name home >/dev/null
"$TUNNELD" pki issue "$PKI" --name admin --admin >/dev/null
# Room for the idle-connection test; every other limit keeps its default.
cat >"$TEST_TMP/tunneld.json" <<JSON
{
  "TunnelControlPort": $CONTROL_PORT,
  "ManagementPort": $MGMT_PORT,
  "ListenAddress": "127.0.0.1",
  "CaCertificateFile": "$PKI/ca.crt",
  "ServerTlsCertificateFile": "$PKI/server.crt",
  "ServerTlsKeyFile": "$PKI/server.key",
  "AdminIdentities": ["admin"],
  "StateFile": "$TEST_TMP/tunnels.json",
  "DebugLog": false,
  "Limits": {"MaxConnectionsPerTunnel": $((IDLE_N + 1000)), "MaxConnectionsPerClient": $((IDLE_N + 2000)),
             "MaxStreamsPerLink": $((IDLE_N + 2000))}
}
JSON
cat >"$TEST_TMP/tunnelc.json" <<JSON
{
  "ServerHost": "127.0.0.1",
  "ServerTunnelControlPort": $CONTROL_PORT,
  "CaCertificateFile": "$PKI/ca.crt",
  "ClientTlsCertificateFile": "$PKI/home.crt",
  "ClientTlsKeyFile": "$PKI/home.key",
  "AllowedBackEndPorts": [$NGINX_PORT, $IPERF_T],
  "DebugLog": false,
  "Limits": {"MaxStreamsPerLink": $((IDLE_N + 2000))}
}
JSON
spawn tunneld "$TUNNELD" --config "$TEST_TMP/tunneld.json"
TUNNELD_PID=$SPAWNED_PID
api() {
  local method=$1 path=$2 body=${3:-}
  local args=(-sS -o "$TEST_TMP/api.out" -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt"
              --cert "$PKI/admin.crt" --key "$PKI/admin.key" -X "$method")
  if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' --data-binary "$body"); fi
  API_STATUS=$(curl "${args[@]}" "https://127.0.0.1:$MGMT_PORT$path" 2>"$TEST_TMP/api.err") || API_STATUS=000
  API_BODY=$(cat "$TEST_TMP/api.out" 2>/dev/null || true)
}
api_ping() { api GET /ping && [ "$API_STATUS" = 200 ]; }
wait_until 20 api_ping || fail "tunneld did not start"
spawn tunnelc "$TUNNELC" --config "$TEST_TMP/tunnelc.json"
TUNNELC_PID=$SPAWNED_PID
client_connected() {
  api GET /clients && [ "$API_STATUS" = 200 ] &&
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d.get("home",{}).get("CurrentState")=="ClientConnected" else 1)' "$API_BODY"
}
wait_until 20 client_connected || fail "tunnelc never connected"
api PUT /tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $TUN_HTTP, \"ClientIdentifier\": \"home\", \"BackEndPort\": $NGINX_PORT},
                   {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $TUN_IPERF, \"ClientIdentifier\": \"home\", \"BackEndPort\": $IPERF_T}]"
[ "$API_STATUS" = 200 ] || fail "PUT /tunnels returned $API_STATUS: $API_BODY"

# ---- sshd + ssh -R ----
SSH_DIR="$TEST_TMP/ssh"
mkdir -m 700 "$SSH_DIR"
ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/id"
cp "$SSH_DIR/id.pub" "$SSH_DIR/authorized_keys"
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1-2 "$SSH_DIR/host_key.pub")" >"$SSH_DIR/known_hosts"
mkdir -p /run/sshd  # sshd's privilege-separation directory; the package creates it only at boot
cat >"$SSH_DIR/sshd_config" <<CONF
ListenAddress 127.0.0.1
HostKey $SSH_DIR/host_key
PidFile none
AuthorizedKeysFile $SSH_DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
MaxStartups 100
LogLevel ERROR
CONF
spawn sshd /usr/sbin/sshd -D -e -f "$SSH_DIR/sshd_config" -p "$SSH_PORT"
SSHD_PID=$SPAWNED_PID
SSH_OPTS=(-F /dev/null -i "$SSH_DIR/id" -o IdentitiesOnly=yes -o BatchMode=yes
          -o UserKnownHostsFile="$SSH_DIR/known_hosts" -o StrictHostKeyChecking=yes -o ExitOnForwardFailure=yes
          -o ServerAliveInterval=30 -p "$SSH_PORT")
wait_port "$SSH_PORT"
SSH_CIPHER=$(ssh "${SSH_OPTS[@]}" -v root@127.0.0.1 true 2>&1 | sed -n 's/.*kex: server->client cipher: \([^ ]*\).*/\1/p' | head -1)
[ -n "$SSH_CIPHER" ] || fail "ssh to the benchmark sshd failed (see $TEST_TMP/sshd.log)"
fig ssh_cipher "$SSH_CIPHER"
spawn ssh-default ssh "${SSH_OPTS[@]}" -o LogLevel=ERROR -N \
  -R "127.0.0.1:$SSH_HTTP:127.0.0.1:$NGINX_PORT" -R "127.0.0.1:$SSH_IPERF:127.0.0.1:$IPERF_S" root@127.0.0.1
SSH_PID=$SPAWNED_PID
spawn ssh-chacha ssh "${SSH_OPTS[@]}" -o LogLevel=ERROR -N -c chacha20-poly1305@openssh.com \
  -R "127.0.0.1:$SSHC_HTTP:127.0.0.1:$NGINX_PORT" -R "127.0.0.1:$SSHC_IPERF:127.0.0.1:$IPERF_SC" root@127.0.0.1
SSHC_PID=$SPAWNED_PID

for p in $NGINX_PORT $IPERF_PORT $IPERF_T $IPERF_S $IPERF_SC $TUN_HTTP $TUN_IPERF $SSH_HTTP $SSH_IPERF $SSHC_HTTP $SSHC_IPERF; do wait_port "$p"; done
for c in "${COLUMNS[@]}"; do
  got=$(curl -sS --max-time 10 "http://127.0.0.1:$(http_port "$c")/1k.bin" | cmp - "$WWW/1k.bin" && echo same)
  [ "$got" = same ] || fail "$c: the 1 KiB file does not come back intact"
done
echo "   all four columns serve the files; ssh default cipher: $SSH_CIPHER"

# ---- helpers ----
# Sum of utime+stime, in clock ticks, over the given pids.
cpu_ticks() {
  python3 -c '
import sys
t = 0
for pid in sys.argv[1:]:
    try:
        f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
        t += int(f[11]) + int(f[12])
    except (OSError, IndexError):
        pass
print(t)' "$@"
}
descendants() {
  local p
  for p in $(pgrep -P "$1" || true); do echo "$p"; descendants "$p"; done
}
# The processes that carry a column's bytes, as two ends ("A_PIDS;B_PIDS"): tunnelc and tunneld, ssh and the
# sshd processes under our sshd. Direct has none.
carriers() {
  case $1 in
    tunnel) echo "$TUNNELD_PID;$TUNNELC_PID" ;;
    ssh) echo "$SSH_PID;$(descendants "$SSHD_PID" | tr '\n' ' ')" ;;
    ssh_chacha) echo "$SSHC_PID;$(descendants "$SSHD_PID" | tr '\n' ' ')" ;;
  esac
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

run_iperf() {  # FIGURE COLUMN IPERF3_ARGS...
  local figname=$1 col=$2; shift 2
  local out="$RAW/$figname.$col.json" ends="" a0=0 b0=0
  if [ "$col" != direct ] && [ "$figname" = iperf1 ]; then
    ends=$(carriers "$col")
    a0=$(cpu_ticks ${ends%%;*}); b0=$(cpu_ticks ${ends#*;})
  fi
  # The iperf3 server refuses a client ("busy") while it is still tearing down the previous test: retry for a
  # bounded time.
  local tries=0
  until timeout $((DUR + 30)) iperf3 -c 127.0.0.1 -p "$(iperf_port "$col")" -R -J -t "$DUR" --connect-timeout 5000 \
          "$@" >"$out" 2>"$RAW/$figname.$col.err"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 20 ] || ! grep -q busy "$out"; then
      echo "   $figname $col: iperf3 failed (see tests/bench/results/raw-latest/)"; break
    fi
    sleep 0.5
  done
  if [ -n "$ends" ]; then
    # CPU of each end separately: the busier end bounds what one core per end could carry.
    fig "cpu_ticks_a.$col" $(( $(cpu_ticks ${ends%%;*}) - a0 ))
    fig "cpu_ticks_b.$col" $(( $(cpu_ticks ${ends#*;}) - b0 ))
  fi
}
run_wrk() {  # FIGURE COLUMN PATH WRK_ARGS... (round $ROUND: the report keeps each column's best round)
  local figname=$1 col=$2 path=$3; shift 3
  timeout $((DUR + 30)) wrk -d "${DUR}s" --timeout 5s "$@" "http://127.0.0.1:$(http_port "$col")$path" \
    >"$RAW/$figname.$col.r$ROUND.txt" 2>&1 || echo "   $figname $col: wrk failed"
}
each_column() {  # LABEL FUNCTION ARGS... (FUNCTION gets the column after its first argument)
  local label=$1 fn=$2 figname=$3; shift 3
  local c
  printf '== %s:' "$label"
  for c in "${COLUMNS[@]}"; do
    "$fn" "$figname" "$c" "$@"
    printf ' %s' "$c"
  done
  echo
}

# ---- idle connections first, on fresh processes (tunnel only) ----
backend_conns() { ss -Htn state established "( sport = :$NGINX_PORT )" | wc -l; }
backend_at_least() { [ "$(backend_conns)" -ge "$1" ]; }
backend_at_most() { [ "$(backend_conns)" -le "$1" ]; }
# RSS has settled when two reads 200 ms apart agree within 64 KiB.
rss_settled() {
  local a b c d
  a=$(rss_kib "$TUNNELD_PID"); b=$(rss_kib "$TUNNELC_PID")
  sleep 0.2
  c=$(rss_kib "$TUNNELD_PID"); d=$(rss_kib "$TUNNELC_PID")
  [ $((c - a)) -le 64 ] && [ $((a - c)) -le 64 ] && [ $((d - b)) -le 64 ] && [ $((b - d)) -le 64 ]
}
echo "== idle connections: $IDLE_N through the tunnel"
# Warm up first so one-time allocations (link buffers, first stream) are not charged to the idle connections.
wrk -t1 -c16 -d1s "http://127.0.0.1:$TUN_HTTP/1k.bin" >/dev/null 2>&1 || true
wait_until 30 backend_at_most 0 || echo "   note: $(backend_conns) backend connections still open before the idle test"
wait_until 10 rss_settled || true
fig rss_before.tunneld "$(rss_kib "$TUNNELD_PID")"
fig rss_before.tunnelc "$(rss_kib "$TUNNELC_PID")"
t_idle=$(date +%s%N)
spawn idle "$BENCH_BIN/bench_conn" idle 127.0.0.1 "$TUN_HTTP" "$IDLE_N"
IDLE_PID=$SPAWNED_PID
wait_log "$TEST_TMP/idle.log" '^connected' 90
wait_until 90 backend_at_least "$IDLE_N" || echo "   only $(backend_conns) of $IDLE_N reached the backend"
t_idle=$(( ($(date +%s%N) - t_idle) / 1000000 ))
wait_until 10 rss_settled || true
fig idle.count "$IDLE_N"
fig idle.connected "$(backend_conns)"
fig rss_after.tunneld "$(rss_kib "$TUNNELD_PID")"
fig rss_after.tunnelc "$(rss_kib "$TUNNELC_PID")"
echo "   $(sed -n 's/^connected/connected/p' "$TEST_TMP/idle.log") in ${t_idle} ms; $(backend_conns) at the backend"
kill -TERM "$IDLE_PID" 2>/dev/null || true
wait "$IDLE_PID" 2>/dev/null || true
wait_until 60 backend_at_most 0 || echo "   note: $(backend_conns) backend connections still open after the idle test"

# ---- throughput ----
each_column "iperf3 1 stream (${DUR} s)" run_iperf iperf1
each_column "iperf3 8 streams (${DUR} s)" run_iperf iperf8 -P 8
# ---- HTTP: small requests, new connections, the 1 MiB file ----
# The machine is shared: in the full run every wrk figure is measured in $ROUNDS rounds (all columns each round)
# and each column keeps its best round, so a burst of someone else's load hits no column alone.
for ROUND in $(seq 1 "$ROUNDS"); do
  r=""; [ "$ROUNDS" = 1 ] || r=" round $ROUND/$ROUNDS"
  each_column "1 KiB, 1 connection (${DUR} s)$r" run_wrk rps1 /1k.bin -t1 -c1 --latency
  each_column "1 KiB, 16 connections (${DUR} s)$r" run_wrk rps16 /1k.bin -t2 -c16 --latency
  each_column "new connections, 16 at a time (${DUR} s)$r" run_wrk newconn /1k.bin -t2 -c16 -H 'Connection: close'
  each_column "1 MiB file, 4 connections (${DUR} s)$r" run_wrk mib4 /1m.bin -t1 -c4
done
run_ttfb() { timeout 120 "$BENCH_BIN/bench_conn" ttfb 127.0.0.1 "$(http_port "$2")" /1k.bin "$TTFB_N" >"$RAW/$1.$2.json" || true; }
each_column "time to first byte, $TTFB_N new connections" run_ttfb ttfb

# ---- the cipher ceiling ----
echo "== raw cipher speed (bench_tls, $TLS_MIB MiB)"
"$BENCH_BIN/bench_tls" "$TLS_MIB" >"$RAW/bench_tls.txt"

fig load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
echo
python3 "$here/tests/bench/report.py" "$RAW" "$RESULTS"
# The tools' own outputs, for a second look (replaced by every run; the scratch directory goes at exit).
rm -rf "$RESULTS/raw-latest"
cp -r "$RAW" "$RESULTS/raw-latest"
echo "total $(( $(date +%s) - T_START )) s"
