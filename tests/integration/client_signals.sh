#!/usr/bin/env bash
# tunnelc's signals:
#  SIGHUP after adding a port to AllowedBackEndPorts: the new backend becomes reachable on the same link
#         (ConnectedSince unchanged, no reconnect in the log);
#  SIGTERM during a download: GoAway reaches tunneld, the download completes within DrainTimeoutMs, exit 0;
#  SIGTERM with a download longer than DrainTimeoutMs: tunnelc exits 0 once the drain timeout has passed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

DRAIN_MS=10000
LIMITS='{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": '$DRAIN_MS', "ReconnectMinMs": 100, "ReconnectMaxMs": 1000}'

make_pki
start_tunneld
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
# The backend itself is slow (4 MiB paced over ~3 s), so the stream is really open when the signal comes:
# no buffer on the way can have taken the whole answer yet.
SIZE=$((4 * 1024 * 1024))
spawn paced $NET paced-sender "$PORT_C" "$SIZE" 65536 45
wait_port "$PORT_C"
sed -i "s/\"AllowedBackEndPorts\": \[$PORT_A, $PORT_B\]/\"AllowedBackEndPorts\": [$PORT_A, $PORT_B, $PORT_C]/" "$TEST_TMP/tunnelc-home1.json"
kill -HUP "$TUNNELC_PID_home1"
wait_log "$CLOG" "configuration reloaded \(0 services, 3 allowed ports\)"
$NET fetch "$P_C" "$SIZE" >"$TEST_TMP/fetch.out" 2>&1 &
FETCH_PID=$!
wait_log "$CLOG" "stream [0-9]+ from .* -> 127.0.0.1:$PORT_C"
t_term=$(now_ms)
kill -TERM "$TUNNELC_PID_home1"
wait_log "$TEST_TMP/tunneld.log" "client home1: going away" 5
t_goaway=$(log_ms "$TEST_TMP/tunneld.log" "client home1: going away")
fetch_rc=0; wait "$FETCH_PID" || fetch_rc=$?
t_done=$(now_ms)
tc_rc=0; wait "$TUNNELC_PID_home1" || tc_rc=$?
t_exit=$(now_ms)
echo "SIGTERM: tunneld saw the GoAway $((t_goaway - t_term)) ms after the signal; the paced download ended" \
     "$((t_done - t_term)) ms after it ($(cat "$TEST_TMP/fetch.out")); tunnelc exited $((t_exit - t_term)) ms after" \
     "the signal with status $tc_rc (DrainTimeoutMs $DRAIN_MS)"
[ "$fetch_rc" = 0 ] || fail "download cut by SIGTERM: $(cat "$TEST_TMP/fetch.out")"
[ "$tc_rc" = 0 ] || fail "tunnelc exit status $tc_rc after SIGTERM"
[ $((t_exit - t_term)) -lt $((DRAIN_MS + 3000)) ] || fail "tunnelc took $((t_exit - t_term)) ms to exit"
[ $((t_done - t_term)) -ge 1000 ] || fail "the download ended too soon to prove a drain"
grep -q "stopping; 1 open streams" "$CLOG" || fail "no drain line in the log"

# ---- SIGTERM with a download that outlasts DrainTimeoutMs ----
SHORT_DRAIN_MS=1500
start_tunnelc home1 "[$PORT_C]" '{}' "${LIMITS/\"DrainTimeoutMs\": $DRAIN_MS/\"DrainTimeoutMs\": $SHORT_DRAIN_MS}"
CLOG="$TEST_TMP/tunnelc-home1.log"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_C, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $PORT_C}]"
$NET fetch "$P_C" "$SIZE" >"$TEST_TMP/fetch.out" 2>&1 &
FETCH_PID=$!
wait_log "$CLOG" "stream [0-9]+ from .* -> 127.0.0.1:$PORT_C"
t_term=$(now_ms)
kill -TERM "$TUNNELC_PID_home1"
tc_rc=0; wait "$TUNNELC_PID_home1" || tc_rc=$?
t_exit=$(now_ms)
fetch_rc=0; wait "$FETCH_PID" || fetch_rc=$?
echo "SIGTERM past the drain timeout: tunnelc exited $((t_exit - t_term)) ms after the signal with status $tc_rc" \
     "(DrainTimeoutMs $SHORT_DRAIN_MS); the user got: $(cat "$TEST_TMP/fetch.out")"
[ "$tc_rc" = 0 ] || fail "tunnelc exit status $tc_rc after a drain timeout"
[ $((t_exit - t_term)) -ge $((SHORT_DRAIN_MS - 200)) ] || fail "tunnelc did not wait for the drain timeout"
[ $((t_exit - t_term)) -lt $((SHORT_DRAIN_MS + 3000)) ] || fail "tunnelc overstayed its drain timeout"
[ "$fetch_rc" != 0 ] || fail "a download cut by the drain timeout looked complete to the user"
grep -q "drain timeout" "$CLOG" || fail "no drain timeout line in the log"
grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|Assertion .* failed" "$CLOG" &&
  fail "tunnelc: sanitizer report or failed assertion: $(grep -m3 -E "Sanitizer|runtime error:|Assertion" "$CLOG")"
stop_checked tunneld
pass "SIGHUP reloads the allow-list on the same link; SIGTERM drains, then exits 0"
