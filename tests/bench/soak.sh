#!/usr/bin/env bash
# soak.sh (bench, not a test): tunneld + tunnelc under the harden_leaks mix (bulk downloads, small requests, PUTs,
# link drops) for SOAK_SECONDS (default 600); RSS and open descriptors of both sampled every 10 s into a table
# (printed, and kept in $SOAK_OUT, default ./soak-table.txt). Ends with SIGTERM and the sanitizer check.
#   TUNNELD=... TUNNELC=... [SOAK_SECONDS=120] bash tests/bench/soak.sh
here=$(cd "$(dirname "$0")/../integration" && pwd)
: "${TUNNEL_SOURCE_DIR:=$(cd "$here/../.." && pwd)}"
: "${TUNNELD:=$TUNNEL_SOURCE_DIR/build/asan/server/tunneld}"
: "${TUNNELC:=$TUNNEL_SOURCE_DIR/build/asan/client/tunnelc}"
export TUNNELD TUNNELC
SECONDS_TOTAL=${SOAK_SECONDS:-600}
OUT=${SOAK_OUT:-$PWD/soak-table.txt}
source "$here/lib.sh"
source "$here/fixture.sh"
NET="python3 $here/tools/harden_net.py"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:quarantine_size_mb=16"

make_pki
start_tunneld
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port); EXTRA_PORT=$(free_port)
mkdir -p "$TEST_TMP/www"
echo small >"$TEST_TMP/www/index.html"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$TEST_TMP/www/bulk.bin"
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT"
start_tunnelc home1 "[$BACKEND_PORT]" '{}' '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": 3000, "ReconnectMinMs": 10, "ReconnectMaxMs": 50, "ReconnectResetAfterMs": 0}'
TC=$TUNNELC_PID_home1
wait_client_connected home1
T1="{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}"
T2="{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $EXTRA_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}"
put_tunnels "[$T1]"
wait_port "$PUBLIC_PORT"

# The load runs in the background until the stop file exists; the foreground samples.
STOP="$TEST_TMP/soak.stop"
spawn load bash -c '
  n=0; ok=0; bad=0
  while [ ! -e "$0" ]; do
    n=$((n + 1))
    curl -sS --max-time 60 -o /dev/null "http://127.0.0.1:$1/bulk.bin" && ok=$((ok + 1)) || bad=$((bad + 1))
    '"$NET"' churn 127.0.0.1 "$1" 500 8 >>"$2"
    if [ $((n % 5)) = 0 ]; then ss -K dst 127.0.0.1 dport = ":$3" >/dev/null 2>&1; fi
    echo "round $n bulk_ok $ok bulk_failed $bad" >>"$2"
  done' "$STOP" "$PUBLIC_PORT" "$TEST_TMP/load.results" "$CONTROL_PORT"
LOAD_PID=$SPAWNED_PID

{
  printf '%6s  %12s  %8s  %12s  %8s\n' "t (s)" "tunneld KiB" "fds" "tunnelc KiB" "fds"
} | tee "$OUT"
start=$(date +%s); puts=0
while :; do
  t=$(( $(date +%s) - start ))
  printf '%6d  %12d  %8d  %12d  %8d\n' "$t" "$(rss_kb "$TUNNELD_PID")" "$(fd_count "$TUNNELD_PID")" \
    "$(rss_kb "$TC")" "$(fd_count "$TC")" | tee -a "$OUT"
  [ "$t" -ge "$SECONDS_TOTAL" ] && break
  api PUT /tunnels "[$T1, $T2]"; api PUT /tunnels "[$T1]"; puts=$((puts + 2))
  sleep 10   # the sampling interval
done
touch "$STOP"
wait "$LOAD_PID" || true
small_ok=$(grep -o '"ok": [0-9]*' "$TEST_TMP/load.results" | awk '{ s += $2 } END { print s + 0 }')
small_bad=$(grep -o '"failed": [0-9]*' "$TEST_TMP/load.results" | awk '{ s += $2 } END { print s + 0 }')
echo "load: $(tail -n 1 "$TEST_TMP/load.results"); small requests ok $small_ok failed $small_bad; PUTs $puts; links accepted $(grep -c 'client home1: connected from' "$TEST_TMP/tunneld.log")" | tee -a "$OUT"
stop_tunnelc home1
stop_tunneld
echo "exit: tunneld $TUNNELD_STATUS, tunnelc $TUNNELC_STATUS" | tee -a "$OUT"
[ "$TUNNELD_STATUS" = 0 ] && [ "$TUNNELC_STATUS" = 0 ] || fail "non-zero exit"
assert_clean_exit tunneld
assert_clean_exit tunnelc-home1
pass "soak of ${SECONDS_TOTAL}s; table in $OUT"
