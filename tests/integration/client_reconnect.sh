#!/usr/bin/env bash
# tunnelc keeps its link by itself: started before tunneld exists it retries with backoff, logging one line per
# change of reason (not one per retry), and connects once tunneld comes up; after tunneld is killed (-9) and
# restarted on the same ports it reconnects and traffic flows. The backoff cap is checked where it is decided: every
# delay tunnelc logs ("next in N ms") is at most ReconnectMaxMs + 20% jitter; the wall-clock figures are printed,
# and bounded only loosely (a loaded machine delays the timer's callback and the handshake, not the decision).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

RECONNECT_MAX_MS=1000   # FAST_CLIENT_LIMITS
SLACK_MS=15000          # only catches "never reconnected in time": ASan, TLS handshake, a busy 2-core machine

# log_ms FILE PATTERN: epoch milliseconds of the last line matching PATTERN (the logs' own UTC timestamps).
log_ms() {
  grep -E "$2" "$1" | tail -1 | python3 -c 'import sys,datetime
t=sys.stdin.read().split(" ")[0]
print(int(datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()*1000))'
}

make_pki
CONTROL_PORT=$(free_port); MGMT_PORT=$(free_port)
while [ "$MGMT_PORT" = "$CONTROL_PORT" ]; do MGMT_PORT=$(free_port); done
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port)
mkdir -p "$TEST_TMP/www"; echo "back again" >"$TEST_TMP/www/index.html"
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT"

# 1. No tunneld yet: the client retries quietly.
start_tunnelc home1 "[$BACKEND_PORT]"
CLOG="$TEST_TMP/tunnelc-home1.log"
wait_until 20 bash -c "[ \$(grep -c 'still failing' '$CLOG') -ge 6 ]" || fail "tunnelc is not retrying: $(tail -3 "$CLOG")"
retries=$(grep -c 'still failing' "$CLOG")
warns=$(grep -c 'cannot connect to' "$CLOG")
echo "tunnelc without a server: $((retries + 1)) attempts, $warns warning line(s): $(grep 'cannot connect to' "$CLOG" | head -1 | cut -c1-160)"
[ "$warns" = 1 ] || fail "expected one warning line for one unchanged reason, got $warns"
grep -q 'cannot connect to.*refused' "$CLOG" || fail "the warning does not give the reason (refused)"

t_start=$(now_ms)
start_tunneld
t_ready=$(now_ms)
wait_client_connected home1
t_conn=$(now_ms)
echo "client started first: connected $((t_conn - t_ready)) ms after tunneld answered ($((t_conn - t_start)) ms after its start)"
grep -q "connected to 127.0.0.1:$CONTROL_PORT.*attempts" "$CLOG" || fail "no 'connected after N attempts' line"

put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"
[ "$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/")" = "back again" ] || fail "no traffic before the kill"

# 2. tunneld killed without warning and restarted on the same ports (its state file brings the tunnel back).
for round in 1 2; do
  stop_tunneld KILL
  wait_log "$CLOG" "disconnected from 127.0.0.1:$CONTROL_PORT" 10
  t_start=$(now_ms)
  start_tunneld
  t_ready=$(now_ms)
  wait_client_connected home1
  t_conn=$(now_ms)
  # Precise figure from the logs: tunneld listening again -> tunnelc connected (polling GET /clients costs
  # a TLS handshake per poll, hundreds of ms under ASan).
  l_listen=$(log_ms "$TEST_TMP/tunneld.log" "TunnelControlPort: listening")
  l_conn=$(log_ms "$CLOG" "connected to 127.0.0.1:$CONTROL_PORT")
  echo "restart $round: tunnelc connected $((l_conn - l_listen)) ms after tunneld listened again (from the logs)"
  [ $((l_conn - l_listen)) -lt $((RECONNECT_MAX_MS * 12 / 10 + SLACK_MS)) ] ||
    fail "reconnect took $((l_conn - l_listen)) ms after the restart (logs)"
  wait_until 20 bash -c "[ \"\$(curl -sS --max-time 2 http://127.0.0.1:$PUBLIC_PORT/ 2>/dev/null)\" = 'back again' ]" ||
    fail "traffic did not flow again after the restart"
  t_traffic=$(now_ms)
  echo "restart $round: tunneld answered $((t_ready - t_start)) ms after its start; client connected again" \
       "$((t_conn - t_ready)) ms later; traffic flowing $((t_traffic - t_ready)) ms after tunneld answered"
done
# Every delay tunnelc chose stayed within the cap, from the first retry to the last.
delays=$(grep -oE 'next in [0-9]+ ms' "$CLOG" | grep -oE '[0-9]+' | sort -n)
[ -n "$delays" ] || fail "no backoff delays in the log"
longest=$(tail -n1 <<<"$delays")
echo "backoff: $(wc -l <<<"$delays") retries, longest delay $longest ms (ReconnectMaxMs $RECONNECT_MAX_MS + 20% jitter)"
[ "$longest" -le $((RECONNECT_MAX_MS * 12 / 10)) ] || fail "a backoff delay of $longest ms exceeds the cap"
[ "$(grep -c 'client home1: starting' "$CLOG")" = 1 ] || fail "tunnelc restarted itself"
kill -0 "$TUNNELC_PID_home1" || fail "tunnelc died"
# Both programs must also shut down cleanly after all that.
stop_checked home1 tunneld
pass "retries quietly before the server exists, reconnects after kill -9 + restart within the backoff cap"
