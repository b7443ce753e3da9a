#!/usr/bin/env bash
# Hostname routing's cost: new connections through a port shared by hostname beside a plain port, on a Release build.
#
#   bash tests/bench/bench_routed.sh [SECONDS] [ROUNDS]          (default 5 s per measurement, 3 rounds)
#
# Starts nginx (a marker page), tunneld and tunnelc on free loopback ports with DebugLog off, and routes two public
# ports to the same nginx: a plain port (one "*" tunnel: no bytes read before the stream opens) and a port shared
# by two tunnels by ListenHostnameGlob (each connection's first request is read until its Host header decides the
# tunnel). wrk opens a new connection per request, 16 at a time, with "Host: bench.example.test", against nginx
# directly, the plain port and the routed port in turn, round after round, so every column sees the same machine
# load; the best round of each is reported. Prints one table; not part of the test command, never fails on a figure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"
DUR=${1:-5}
ROUNDS=${2:-3}
command -v wrk >/dev/null || bash tests/bench/install-bench-deps.sh

source "$here/tests/bench/release_build.sh"
bench_build tunneld tunnelc
source "$here/tests/integration/lib.sh"
source "$here/tests/integration/fixture.sh"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

make_pki
CONTROL_PORT=$(free_port); MGMT_PORT=$(free_port)
write_tunneld_config '{}'
sed -i 's/"DebugLog": true/"DebugLog": false/' "$TEST_TMP/tunneld.json"  # a line per connection is not the point
spawn tunneld "$TUNNELD" --config "$TEST_TMP/tunneld.json"
wait_until 15 api_ping || fail "tunneld did not start"
NGINX=$(free_port); PLAIN=$(free_port); ROUTED=$(free_port)
start_marker_nginx nginx "$NGINX" bench
cat >"$TEST_TMP/tunnelc.json" <<JSON
{"ServerHost": "127.0.0.1", "ServerTunnelControlPort": $CONTROL_PORT, "CaCertificateFile": "$PKI/ca.crt",
 "ClientTlsCertificateFile": "$PKI/home1.crt", "ClientTlsKeyFile": "$PKI/home1.key",
 "AllowedBackEndPorts": [$NGINX], "DebugLog": false}
JSON
spawn tunnelc "$TUNNELC" --config "$TEST_TMP/tunnelc.json"
wait_client_connected home1
tunnel() { echo "{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $1, \"ListenHostnameGlob\": \"$2\", \"ClientIdentifier\": \"home1\", \"BackEndPort\": $NGINX}"; }
put_tunnels "[$(tunnel "$PLAIN" '*'), $(tunnel "$ROUTED" bench.example.test), $(tunnel "$ROUTED" '*.other.test')]"
for p in $PLAIN $ROUTED; do wait_port "$p"; done
for p in $NGINX $PLAIN $ROUTED; do
  [ "$(curl -sS --max-time 10 -H 'Host: bench.example.test' "http://127.0.0.1:$p/")" = bench ] || fail "port $p does not serve the page"
done

declare -A PORT=([direct]=$NGINX [plain]=$PLAIN [routed]=$ROUTED)
declare -A RPS P50 P99
ms() {  # wrk's "1.23ms" / "456.00us" / "1.02s" as milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'
}
for round in $(seq 1 "$ROUNDS"); do
  for col in direct plain routed; do
    out=$(wrk -t2 -c16 -d"${DUR}s" --timeout 5s --latency -H 'Connection: close' -H 'Host: bench.example.test' \
      "http://127.0.0.1:${PORT[$col]}/" 2>&1) || true
    rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out")
    echo "   round $round, $col: ${rps:-?} new connections/s"
    if [ -n "$rps" ] && [ "$rps" -gt "${RPS[$col]:-0}" ]; then
      RPS[$col]=$rps
      P50[$col]=$(ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
      P99[$col]=$(ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    fi
  done
done
echo
echo "new connections, 1 request each, 16 at a time, ${DUR} s, best of $ROUNDS rounds; $(nproc) cores;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| figure | direct (nginx) | tunnel, plain port | tunnel, port routed by Host |"
echo "|---|---|---|---|"
echo "| new connections/s | ${RPS[direct]:-?} | ${RPS[plain]:-?} | ${RPS[routed]:-?} |"
echo "| latency p50 / p99, ms | ${P50[direct]:-?} / ${P99[direct]:-?} | ${P50[plain]:-?} / ${P99[plain]:-?} | ${P50[routed]:-?} / ${P99[routed]:-?} |"
if [ -n "${RPS[plain]:-}" ] && [ -n "${RPS[routed]:-}" ]; then
  echo
  echo "routed / plain: $(awk -v a="${RPS[routed]}" -v b="${RPS[plain]}" 'BEGIN { printf "%.1f%%", 100 * a / b }') of the plain port's rate"
fi
pass "benchmark done"
