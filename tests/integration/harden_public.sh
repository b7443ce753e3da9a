#!/usr/bin/env bash
# Public ports under attack: 2,000 connections that send nothing while a real request still succeeds; then tunneld
# run out of file descriptors (ulimit -n 64): accept backs off instead of spinning, logs once, and recovers.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

NET="python3 $(dirname "$0")/tools/harden_net.py"
STORM=2000

make_pki
# The storm and the real user share 127.0.0.1: this test is about what 2,000 idle connections cost, not about
# MaxPublicConnectionsPerSource (harden_slot_filler.sh), so the per-source limit is out of the way.
start_tunneld "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 2000, \"DrainTimeoutMs\": 3000, \"ReplacedLinkGraceMs\": 3000, \"MaxPublicConnectionsPerSource\": 5000}"
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port)
# nginx sized for the storm (the fixture's marker nginx stops at 1024 connections).
mkdir -p "$TEST_TMP/nginx/tmp"
cat >"$TEST_TMP/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; worker_rlimit_nofile 8192;
pid $TEST_TMP/nginx/nginx.pid; error_log $TEST_TMP/nginx/error.log;
events { worker_connections 6000; }
http {
  access_log off; client_header_timeout 60s;
  client_body_temp_path $TEST_TMP/nginx/tmp; proxy_temp_path $TEST_TMP/nginx/tmp; fastcgi_temp_path $TEST_TMP/nginx/tmp;
  uwsgi_temp_path $TEST_TMP/nginx/tmp; scgi_temp_path $TEST_TMP/nginx/tmp;
  server { listen 127.0.0.1:$BACKEND_PORT backlog=4096; location / { return 200 "real\n"; } }
}
CONF
spawn nginx nginx -e stderr -c "$TEST_TMP/nginx/nginx.conf" -p "$TEST_TMP/nginx"
wait_port "$BACKEND_PORT"
start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC_PORT")" = real ] || fail "no traffic before the storm"

# 1. A storm of idle connections, held open while a real user is served.
HOLD_UNTIL="$TEST_TMP/storm.release" spawn storm $NET idle "$PUBLIC_PORT" "$STORM" 40
STORM_PID=$SPAWNED_PID
wait_log "$TEST_TMP/storm.log" '"opened"' 30
echo "idle storm: $(head -n 1 "$TEST_TMP/storm.log")"
t0=$(now_ms)
body=$(http_get_marker 127.0.0.1 "$PUBLIC_PORT") || fail "real request failed during the idle storm"
t1=$(now_ms)
[ "$body" = real ] || fail "real request during the storm got '$body'"
echo "real request during $STORM idle connections: $((t1 - t0)) ms; tunneld holds $(fd_count "$TUNNELD_PID") descriptors"
touch "$TEST_TMP/storm.release"
wait "$STORM_PID" || fail "storm tool failed"
echo "idle storm end: $(tail -n 1 "$TEST_TMP/storm.log")"

# 2. Out of descriptors: tunneld restarted with ulimit -n 64 (same ports and state file; the tunnel is restored).
stop_tunneld
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS"
assert_clean_exit tunneld
mv "$TEST_TMP/tunneld.log" "$TEST_TMP/tunneld-first.log"
REAL_TUNNELD=$TUNNELD
cat >"$TEST_TMP/tunneld-lowfd" <<SH
#!/usr/bin/env bash
ulimit -n 64
exec "$REAL_TUNNELD" "\$@"
SH
chmod +x "$TEST_TMP/tunneld-lowfd"
TUNNELD="$TEST_TMP/tunneld-lowfd" start_tunneld
wait_client_connected home1
wait_port "$PUBLIC_PORT"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC_PORT")" = real ] || fail "no traffic through the low-descriptor tunneld"
echo "tunneld with ulimit -n 64 holds $(fd_count "$TUNNELD_PID") descriptors before the storm"

HOLD_UNTIL="$TEST_TMP/exhaust.release" spawn exhaust $NET idle "$PUBLIC_PORT" 150 40
EXHAUST_PID=$SPAWNED_PID
wait_log "$TEST_TMP/exhaust.log" '"opened"' 30
wait_until 10 bash -c "[ \$(ls /proc/$TUNNELD_PID/fd | wc -l) -ge 60 ]" || fail "tunneld never ran out of descriptors"
echo "tunneld descriptors while exhausted: $(fd_count "$TUNNELD_PID") (limit 64)"
c0=$(cpu_ms "$TUNNELD_PID"); t0=$(now_ms)
sleep 3   # measuring CPU use over a fixed window while descriptors stay exhausted
c1=$(cpu_ms "$TUNNELD_PID"); t1=$(now_ms)
cpu=$((c1 - c0)); wall=$((t1 - t0))
echo "tunneld CPU while out of descriptors: $cpu ms in $wall ms ($((cpu * 100 / wall))%)"
[ $((cpu * 100 / wall)) -le 25 ] || fail "tunneld spins while out of descriptors: $cpu ms CPU in $wall ms"
n=$(grep -cE 'out of file descriptors' "$TEST_TMP/tunneld.log" || true)
echo "log lines about running out of descriptors: $n"
grep -E 'out of file descriptors|descriptors available' "$TEST_TMP/tunneld.log" | sed -n 1,3p
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "expected the exhaustion logged once, got $n lines"

touch "$TEST_TMP/exhaust.release"
wait "$EXHAUST_PID" || fail "exhaust tool failed"
t0=$(now_ms)
wait_until 20 bash -c "[ \"\$(python3 -c \"\$0\" 127.0.0.1 $PUBLIC_PORT 2>/dev/null)\" = real ]" \
  "$_HTTP_GET_PY"$'\nimport sys\nprint(http_get(sys.argv[1], int(sys.argv[2]), 3))' ||
  fail "no recovery after descriptors were freed"
echo "recovered $(( $(now_ms) - t0 )) ms after the idle connections closed; tunneld holds $(fd_count "$TUNNELD_PID") descriptors"
wait_log "$TEST_TMP/tunneld.log" 'file descriptors available again'

stop_tunnelc home1
stop_tunneld
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS"
[ "$TUNNELC_STATUS" = 0 ] || fail "tunnelc exited $TUNNELC_STATUS"
assert_clean_exit tunneld
assert_clean_exit tunnelc-home1
pass "2000 idle connections did not block a real user; descriptor exhaustion: ${cpu} ms CPU in ${wall} ms, logged $n time(s), recovered"
