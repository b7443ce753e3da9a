#!/usr/bin/env bash
# multi_server_failover: one tunnelc with "Servers" naming two tunneld (A and B, each with its own ports and state
# file), the same table PUT on each. Servers share no state: each public connection rides the link of the server it
# arrived at.
#  1. requests through both public ports reach the backend; each link's log lines name their server.
#  2. kill -9 A while a probe opens a new connection to B every 50 ms: not one request through B fails.
#  3. restart A with its state file: tunnelc is back on it within its backoff, requests through A work again
#     (the figure, from the logs, is printed).
#  4. a download through A, held open by its backend, continues while B is killed and restarted, and arrives whole.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

RECONNECT_MAX_MS=1000   # FAST_CLIENT_LIMITS
SLACK_MS=15000          # only catches "never came back": ASan, TLS handshake, a busy 2-core machine

make_pki
server_ports A B
BACKEND=$(free_port); PUBLIC_A=$(free_port); PUBLIC_B=$(free_port)
start_stream_server backend "$BACKEND" home
start_server A
start_server B

write_servers_tunnelc home1 "[\"127.0.0.1:$CONTROL_A\", {\"Host\": \"127.0.0.1\", \"Port\": $CONTROL_B}]" "[$BACKEND]"
spawn_checked tunnelc-home1 "$TUNNELC" --config "$TEST_TMP/tunnelc-home1.json"
TUNNELC_PID_home1=$SPAWNED_PID
CLOG="$TEST_TMP/tunnelc-home1.log"

# ---- 1. both servers carry traffic ----
for s in A B; do
  route_on_server "$s" home1 "$BACKEND"
  p="PUBLIC_$s"
  [ "$(http_get_marker 127.0.0.1 "${!p}")" = home ] || fail "no traffic through server $s's public port"
done
grep -q "client home1: starting; 2 servers, one link each: 127.0.0.1:$CONTROL_A, 127.0.0.1:$CONTROL_B" "$CLOG" ||
  fail "the start line does not list both servers: $(grep -m1 starting "$CLOG")"
for s in A B; do
  c="CONTROL_$s"
  grep -q "client home1 (server 127.0.0.1:${!c}): connected to 127.0.0.1:${!c}" "$CLOG" ||
    fail "no 'connected' line naming server $s"
done
echo "both public ports reach the backend, one link per server"

# ---- 2. kill -9 A while B serves a request loop ----
start_http_probe probe 127.0.0.1 "$PUBLIC_B"
PROBE_PID=$SPAWNED_PID
probe_ok_after() { probe_first_ok_after probe home "$1" >/dev/null; }
wait_until 10 probe_ok_after 0 || fail "the probe never got an answer through B"
t_kill=$(now_ms)
kill_server A
wait_log "$CLOG" "client home1 \(server 127.0.0.1:$CONTROL_A\): disconnected from 127.0.0.1:$CONTROL_A" 10
# B keeps serving for a while after A is gone, and through A's reconnect attempts.
wait_log "$CLOG" "client home1 \(server 127.0.0.1:$CONTROL_A\): cannot connect to 127.0.0.1:$CONTROL_A: .*refused" 10
t_after=$(now_ms)
wait_until 10 probe_ok_after "$((t_after + 300))" || fail "the probe through B stopped getting answers"

# ---- 3. restart A with its state file ----
start_server A
use_server A
wait_client_connected home1
l_listen=$(log_ms "$TEST_TMP/tunneld-A.log" "TunnelControlPort: listening")
l_conn=$(log_ms "$CLOG" "client home1 \(server 127.0.0.1:$CONTROL_A\): connected to 127.0.0.1:$CONTROL_A")
echo "A restarted: tunnelc back on it $((l_conn - l_listen)) ms after it listened again (from the logs; ReconnectMaxMs $RECONNECT_MAX_MS)"
[ $((l_conn - l_listen)) -lt $((RECONNECT_MAX_MS * 12 / 10 + SLACK_MS)) ] || fail "reconnect to A took $((l_conn - l_listen)) ms"
wait_port "$PUBLIC_A"
wait_until 20 bash -c "[ \"\$(curl -sS --max-time 2 http://127.0.0.1:$PUBLIC_A/ 2>/dev/null)\" = home ]" ||
  fail "no traffic through A after its restart (state file not restored?)"
t_back=$(now_ms)
wait_until 10 probe_ok_after "$((t_back + 300))" || fail "the probe through B stopped getting answers"
touch "$TEST_TMP/probe.stop"
wait_until 15 bash -c "! kill -0 $PROBE_PID 2>/dev/null" || fail "the probe did not end"
total=$(awk -v t="$t_kill" '$1 >= t' "$TEST_TMP/probe.probe" | wc -l)
fails=$(awk '$3 != "ok"' "$TEST_TMP/probe.probe")
echo "requests through B from the kill of A to its return: $total, failed: $(printf '%s' "$fails" | grep -c . || true)"
[ -z "$fails" ] || fail "requests through B failed while A was down: $fails"
[ "$total" -ge 10 ] || fail "too few requests through B during A's outage ($total) to judge"
# B's link was never touched.
c="CONTROL_B"
[ "$(grep -c "client home1 (server 127.0.0.1:${!c}): connected to" "$CLOG")" = 1 ] || fail "B's link was replaced"

# ---- 4. a download through A continues while B is killed and restarted ----
start_held_download dl "$PUBLIC_A"
kill_server B
wait_log "$CLOG" "client home1 \(server 127.0.0.1:$CONTROL_B\): disconnected from 127.0.0.1:$CONTROL_B" 10
b1=$(held_download_bytes dl)
wait_until 20 held_download_has_bytes dl "$((b1 + 1048576))" || fail "the download through A stalled when B died"
start_server B
use_server B
wait_client_connected home1
wait_until 20 bash -c "[ \"\$(curl -sS --max-time 2 http://127.0.0.1:$PUBLIC_B/ 2>/dev/null)\" = home ]" ||
  fail "no traffic through B after its restart"
held_download_running dl || fail "the download through A ended while B was down"
b2=$(held_download_bytes dl)
wait_until 20 held_download_has_bytes dl "$((b2 + 1048576))" || fail "the download through A stalled after B returned"
finish_held_download dl home
echo "download through A: $HELD_BYTES bytes intact while B was killed and restarted"
[ "$(grep -c "client home1 (server 127.0.0.1:$CONTROL_A): connected to" "$CLOG")" = 2 ] ||
  fail "A's link was replaced while B went down and came back"

stop_checked home1
stop_server A
stop_server B
pass "two servers, one link each: kill -9 of one loses no request on the other, its restart is picked up within the backoff, a download on one survives the other's restart"
