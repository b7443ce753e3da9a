#!/usr/bin/env bash
# tunnelc's signals:
#  SIGHUP after adding a port to AllowedBackEndPorts: the new backend becomes reachable on the same link
#         (ConnectedSince unchanged, no reconnect in the log);
#  SIGTERM during a download: GoAway reaches tunneld, the download completes intact, then tunnelc exits 0;
#  SIGTERM with a download longer than DrainTimeoutMs: tunnelc exits 0 once the drain timeout has passed;
#  a second SIGTERM during the drain ends it at once, exit 0.
# Downloads are held open by their backend (tools/stream_server.py) until the test ends them.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

DRAIN_MS=60000   # long enough that no check races it on a loaded machine; its end is tested with a short value
LIMITS='{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": '$DRAIN_MS', "ReconnectMinMs": 100, "ReconnectMaxMs": 1000}'

make_pki
# tunneld bounds how long a client's going-away link may drain by its own DrainTimeoutMs: as long as the client's.
start_tunneld "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 2000, \"DrainTimeoutMs\": $DRAIN_MS, \"ReplacedLinkGraceMs\": 3000}"
PORT_A=$(free_port); PORT_B=$(free_port); PORT_C=$(free_port); P_A=$(free_port); P_B=$(free_port); P_C=$(free_port)
mkdir -p "$TEST_TMP/www"
echo "page a" >"$TEST_TMP/www/index.html"
start_nginx nginx "$TEST_TMP/www" "$PORT_A"
spawn backend-b $NET record-listener "$PORT_B" "$TEST_TMP/b.conns" port-b
wait_port "$PORT_B"
start_tunnelc home1 "[$PORT_A]" '{}' "$LIMITS"
CLOG="$TEST_TMP/tunnelc-home1.log"
wait_client_connected home1
put_tunnels "[
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_A, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $PORT_A},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_B, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $PORT_B},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_C, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $PORT_C}]"
wait_port "$P_A"; wait_port "$P_B"

log_ms() {
  grep -E "$2" "$1" | tail -1 | python3 -c 'import sys,datetime
t=sys.stdin.read().split(" ")[0]
print(int(datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()*1000))'
}
connected_since() { api GET /clients; json_get "$API_BODY" 'd["home1"]["ConnectedSince"]'; }

# ---- SIGHUP ----
got=$(curl -sS --max-time 10 "telnet://127.0.0.1:$P_B" </dev/null 2>/dev/null) || true
[ -z "$got" ] || fail "port B reachable before it was allowed: '$got'"
wait_log "$CLOG" "port $PORT_B is not in AllowedBackEndPorts"
since=$(connected_since)
sed -i "s/\"AllowedBackEndPorts\": \[$PORT_A\]/\"AllowedBackEndPorts\": [$PORT_A, $PORT_B]/" "$TEST_TMP/tunnelc-home1.json"
grep -q "\[$PORT_A, $PORT_B\]" "$TEST_TMP/tunnelc-home1.json" || fail "could not edit the config"
kill -HUP "$TUNNELC_PID_home1"
wait_log "$CLOG" "configuration reloaded \(0 services, 2 allowed ports\)"
got=$(curl -sS --max-time 10 "telnet://127.0.0.1:$P_B" </dev/null) || true
[ "$got" = "port-b" ] || fail "port B after SIGHUP: got '$got'"
[ "$(connected_since)" = "$since" ] || fail "the link was replaced by the reload (ConnectedSince $since -> $(connected_since))"
[ "$(grep -c 'connected to 127.0.0.1' "$CLOG")" = 1 ] || fail "tunnelc reconnected on SIGHUP"
echo "SIGHUP: port $PORT_B reachable after the reload, same link (ConnectedSince $since)"

# ---- SIGTERM during a download: drained, complete, exit 0 ----
start_stream_server stream "$PORT_C" "port-c"
sed -i "s/\"AllowedBackEndPorts\": \[$PORT_A, $PORT_B\]/\"AllowedBackEndPorts\": [$PORT_A, $PORT_B, $PORT_C]/" "$TEST_TMP/tunnelc-home1.json"
kill -HUP "$TUNNELC_PID_home1"
wait_log "$CLOG" "configuration reloaded \(0 services, 3 allowed ports\)"
tunnelc_running() { kill -0 "$TUNNELC_PID_home1" 2>/dev/null; }
# wait_tunnelc_exit SECONDS: tunnelc exits by itself; its status in $tc_rc.
wait_tunnelc_exit() {
  wait_until "$1" eval '! tunnelc_running' || fail "tunnelc still running $1 s after SIGTERM"
  tc_rc=0; wait "$TUNNELC_PID_home1" || tc_rc=$?
  assert_clean_exit tunnelc-home1
}
start_held_download dl1 "$P_C"
t_term=$(now_ms)
kill -TERM "$TUNNELC_PID_home1"
wait_log "$TEST_TMP/tunneld.log" "client home1: going away"
t_goaway=$(log_ms "$TEST_TMP/tunneld.log" "client home1: going away")
at_term=$(held_download_bytes dl1)
wait_until 30 held_download_has_bytes dl1 "$((at_term + 1024 * 1024))" || fail "the download stalled during the drain"
tunnelc_running || fail "tunnelc exited with a stream still open"
finish_held_download dl1
t_done=$(now_ms)
wait_tunnelc_exit 30
t_exit=$(now_ms)
echo "SIGTERM: tunneld saw the GoAway $((t_goaway - t_term)) ms after the signal; the download went on and ended intact" \
     "($((HELD_BYTES / 1024)) KiB); tunnelc exited $((t_exit - t_done)) ms after it with status $tc_rc"
[ "$tc_rc" = 0 ] || fail "tunnelc exit status $tc_rc after SIGTERM"
grep -q "stopping; 1 open streams" "$CLOG" || fail "no drain line in the log"

# ---- SIGTERM with a download that outlasts DrainTimeoutMs ----
SHORT_DRAIN_MS=1500
restart_tunnelc() {
  start_tunnelc home1 "[$PORT_C]" '{}' "${LIMITS/\"DrainTimeoutMs\": $DRAIN_MS/\"DrainTimeoutMs\": $1}"
  CLOG="$TEST_TMP/tunnelc-home1.log"
  wait_client_connected home1
}
restart_tunnelc "$SHORT_DRAIN_MS"
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_C, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $PORT_C}]"
start_held_download dl2 "$P_C"
t_term=$(now_ms)
kill -TERM "$TUNNELC_PID_home1"
wait_tunnelc_exit 30
t_exit=$(now_ms)
wait_until 30 eval '! held_download_running dl2' || fail "the download outlived tunnelc"
echo "SIGTERM past the drain timeout: tunnelc exited $((t_exit - t_term)) ms after the signal with status $tc_rc" \
     "(DrainTimeoutMs $SHORT_DRAIN_MS)"
[ "$tc_rc" = 0 ] || fail "tunnelc exit status $tc_rc after a drain timeout"
# A lower bound only: the clock runs forward whatever the load; an upper bound would measure the machine.
[ $((t_exit - t_term)) -ge "$SHORT_DRAIN_MS" ] || fail "tunnelc did not wait for the drain timeout"
[ ! -f "$TEST_TMP/streams/dl2.done" ] || fail "the held download ended by itself"
grep -q "drain timeout" "$CLOG" || fail "no drain timeout line in the log"

# ---- a second SIGTERM ends the drain at once ----
restart_tunnelc "$DRAIN_MS"
start_held_download dl3 "$P_C"
kill -TERM "$TUNNELC_PID_home1"
wait_log "$CLOG" "stopping; 1 open streams"
kill -TERM "$TUNNELC_PID_home1"
wait_tunnelc_exit 30
[ "$tc_rc" = 0 ] || fail "tunnelc exit status $tc_rc after a second SIGTERM"
grep -q "stop signal during the drain; resetting 1 open streams now" "$CLOG" || fail "no log line for the second SIGTERM"
echo "second SIGTERM during a $DRAIN_MS ms drain: tunnelc exited 0 at once"
stop_checked tunneld
pass "SIGHUP reloads the allow-list on the same link; SIGTERM drains, then exits 0; a second SIGTERM ends the drain"
