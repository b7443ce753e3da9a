#!/usr/bin/env bash
# A silently dead link (tunneld frozen with SIGSTOP: the TCP connection stays open, nothing answers) is noticed
# by tunnelc within DeadPeerTimeoutMs plus slack, logged, and re-dialled; after SIGCONT the client is connected
# again and traffic flows.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

DEAD_PEER_MS=2000   # FAST_CLIENT_LIMITS
# Detection is the keepalive timer's business (tested to the millisecond in test_mux.c); here the slack only has to
# cover a busy 2-core machine under ASan, while still failing a link that is never noticed as dead.
SLACK_MS=8000

log_ms() {
  grep -E "$2" "$1" | tail -1 | python3 -c 'import sys,datetime
t=sys.stdin.read().split(" ")[0]
print(int(datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()*1000))'
}

make_pki
start_tunneld
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port)
mkdir -p "$TEST_TMP/www"; echo "alive" >"$TEST_TMP/www/index.html"
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT"
start_tunnelc home1 "[$BACKEND_PORT]"
CLOG="$TEST_TMP/tunnelc-home1.log"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"
[ "$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/")" = "alive" ] || fail "no traffic before the freeze"

for round in 1 2; do
  before=$(grep -c "disconnected from" "$CLOG" || true)
  t_stop=$(now_ms)
  kill -STOP "$TUNNELD_PID"
  wait_until $(( (DEAD_PEER_MS + SLACK_MS) / 1000 + 10 )) bash -c "[ \$(grep -c 'disconnected from' '$CLOG') -gt $before ]" ||
    { kill -CONT "$TUNNELD_PID"; fail "tunnelc never noticed the frozen server"; }
  t_seen=$(log_ms "$CLOG" "disconnected from")
  echo "round $round: dead peer detected $((t_seen - t_stop)) ms after SIGSTOP (DeadPeerTimeoutMs $DEAD_PEER_MS):" \
       "$(grep 'disconnected from' "$CLOG" | tail -1 | cut -d' ' -f4-)"
  [ $((t_seen - t_stop)) -lt $((DEAD_PEER_MS + SLACK_MS)) ] ||
    { kill -CONT "$TUNNELD_PID"; fail "detection took $((t_seen - t_stop)) ms (> $DEAD_PEER_MS + $SLACK_MS)"; }
  [ $((t_seen - t_stop)) -ge $((DEAD_PEER_MS / 2)) ] ||
    { kill -CONT "$TUNNELD_PID"; fail "dropped after $((t_seen - t_stop)) ms: sooner than any dead-peer timeout"; }
  # The client keeps retrying while the server is frozen (its connects sit in the listen backlog).
  t_cont=$(now_ms)
  kill -CONT "$TUNNELD_PID"
  wait_client_connected home1
  wait_until 20 bash -c "[ \"\$(curl -sS --max-time 2 http://127.0.0.1:$PUBLIC_PORT/ 2>/dev/null)\" = 'alive' ]" ||
    fail "traffic did not flow again after SIGCONT"
  echo "round $round: connected with traffic flowing $(( $(now_ms) - t_cont )) ms after SIGCONT"
done

# The other way round: a process that was itself off the CPU longer than its dead-peer timeout must read what its
# peer sent meanwhile before judging it silent. home2 keeps pinging (its own dead-peer timeout is long); tunneld is
# frozen for longer than its DeadPeerTimeoutMs and resumed with home2's pings waiting in its socket: the link stays.
stop_checked home1
start_tunnelc home2 "[$BACKEND_PORT]" '{}' \
  '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 600000, "DrainTimeoutMs": 3000, "ReconnectMinMs": 100, "ReconnectMaxMs": 1000}'
wait_client_connected home2
api GET /clients
since=$(json_get "$API_BODY" 'd["home2"]["ConnectedSince"]')
kill -STOP "$TUNNELD_PID"
t_stop=$(now_ms)
wait_until 30 eval '[ $(( $(now_ms) - t_stop )) -ge $((DEAD_PEER_MS + 1500)) ]'  # the freeze is the test's input
kill -CONT "$TUNNELD_PID"
wait_client_connected home2   # answered: tunneld has run several loop iterations since SIGCONT
api GET /clients
[ "$(json_get "$API_BODY" 'd["home2"]["ConnectedSince"]')" = "$since" ] ||
  fail "home2's link was replaced after tunneld's own freeze: $API_BODY"
! grep -q "client home2: disconnected" "$TEST_TMP/tunneld.log" ||
  fail "tunneld called a talking client dead after being frozen itself: $(grep 'client home2: disconnected' "$TEST_TMP/tunneld.log")"
echo "tunneld frozen for $(( $(now_ms) - t_stop )) ms (DeadPeerTimeoutMs $DEAD_PEER_MS): home2's link kept, its pings read first"
stop_checked home2 tunneld
pass "frozen server noticed within the dead-peer timeout, reconnected after SIGCONT; a frozen server reads before judging"
