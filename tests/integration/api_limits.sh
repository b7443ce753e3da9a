#!/usr/bin/env bash
# Public listener limits: MaxConnectionsPerTunnel and MaxConnectionsPerClient close the excess connection at once
# (counted in /metrics, logged with the tunnel port and the limit's name), and a slot freed is usable again. Each
# limit is tested alone, the other one loose, so that neither can pass on the strength of the other: first
# MaxConnectionsPerTunnel 2 with MaxConnectionsPerClient 1000, then (tunneld restarted) the reverse.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": 3000, "MaxConnectionsPerTunnel": 2, "MaxConnectionsPerClient": 1000}'
BACKEND_PORT=$(free_port)
PORT1=$(free_port)
PORT2=$(free_port)
mkdir -p "$TEST_TMP/www"
echo "limits backend" >"$TEST_TMP/www/index.html"
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT" "keepalive_timeout 120s;"
start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PORT1, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT},
              {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PORT2, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"

# hold.py PORT...: opens one keep-alive HTTP connection per PORT, proves each works, then for each further
# command line from stdin ("probe PORT") reports whether a new connection gets an answer or is closed.
cat >"$TEST_TMP/hold.py" <<'PY'
import socket, sys, time
def ask(s):
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"limits backend" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return "closed"
        data += chunk
    return "answered"
held = []
for port in sys.argv[1:]:
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    r = ask(s)
    assert r == "answered", (port, r)
    held.append(s)
print("held", len(held), flush=True)
for line in sys.stdin:
    cmd, port = line.split()
    if cmd == "release":
        held.pop().close(); print("released", flush=True); continue
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        r = ask(s)
        s.close()
    except (ConnectionResetError, BrokenPipeError):
        r = "closed"
    except socket.timeout:
        r = "hung"
    print(r, int((time.monotonic() - t0) * 1000), flush=True)
PY
# hold PORT...: a holder with one answered connection per PORT; unhold: it closes them and exits.
hold() {
  coproc HOLD { python3 "$TEST_TMP/hold.py" "$@"; }
  TEST_PIDS+=("$HOLD_PID")
  read -r -t 20 line <&"${HOLD[0]}" || fail "could not open the held connections"
  [ "$line" = "held $#" ] || fail "holder: $line"
}
unhold() { local pid=$HOLD_PID; exec {HOLD[1]}>&-; wait "$pid" 2>/dev/null || true; }
probe() { echo "probe $1" >&"${HOLD[1]}"; read -r -t 20 PROBE <&"${HOLD[0]}" || fail "probe $1 got no answer"; }

# 1. MaxConnectionsPerTunnel alone: two on $PORT1 fill that tunnel, and only that tunnel.
hold "$PORT1" "$PORT1"
probe "$PORT1"
echo "third connection to a tunnel at MaxConnectionsPerTunnel 2 (client limit 1000): $PROBE ms"
[ "${PROBE%% *}" = closed ] || fail "over MaxConnectionsPerTunnel: $PROBE"
wait_log "$TEST_TMP/tunneld.log" "tunnel port $PORT1: refused 1 connection\\(s\\): MaxConnectionsPerTunnel reached"
probe "$PORT2"
[ "${PROBE%% *}" = answered ] || fail "another tunnel of the same client was refused: $PROBE"
api GET /metrics
grep -q "^tunneld_tunnel_connections_refused_total{listen=\"127.0.0.1:$PORT1\"} 1$" <<<"$API_BODY" || fail "refusal on $PORT1 not counted"
# The refused connection may still be closing: the open count is polled until it is the two held ones.
open_on_port1() {
  api GET /metrics && grep -q "^tunneld_tunnel_connections_open{listen=\"127.0.0.1:$PORT1\"} 2$" <<<"$API_BODY"
}
wait_until 20 open_on_port1 || fail "open count on $PORT1 never settled at the 2 held: $(grep connections_open <<<"$API_BODY")"
grep -q "MaxConnectionsPerClient" "$TEST_TMP/tunneld.log" && fail "the client limit (1000) refused something"
pass "a connection over MaxConnectionsPerTunnel closed at once, counted and logged; the client's other tunnel served"

# Freeing a slot lets a new connection through to $PORT1 again.
echo "release 0" >&"${HOLD[1]}"
read -r -t 20 line <&"${HOLD[0]}" || fail "release got no answer"
slot_free() { api GET /tunnels && [ "$(json_get "$API_BODY" 'd[0]["OpenConnections"]')" = 1 ]; }
wait_until 10 slot_free || fail "the released connection is still counted: $API_BODY"
probe "$PORT1"
[ "${PROBE%% *}" = answered ] || fail "after a slot was freed: $PROBE"
pass "a freed slot is usable again"
unhold

# 2. MaxConnectionsPerClient alone: one connection on each tunnel fills the client, neither tunnel is full.
stop_tunneld
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS on SIGTERM"
! grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$TEST_TMP/tunneld.log" || fail "sanitizer report in the first tunneld's log"
start_tunneld '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": 3000, "MaxConnectionsPerTunnel": 1000, "MaxConnectionsPerClient": 2}'
wait_client_connected home1
wait_port "$PORT1"; wait_port "$PORT2"
hold "$PORT1" "$PORT2"
probe "$PORT1"
echo "third connection for a client at MaxConnectionsPerClient 2 (tunnel limit 1000): $PROBE ms"
[ "${PROBE%% *}" = closed ] || fail "over MaxConnectionsPerClient: $PROBE"
wait_log "$TEST_TMP/tunneld.log" "tunnel port $PORT1: refused 1 connection\\(s\\): MaxConnectionsPerClient reached"
api GET /metrics
grep -q "^tunneld_tunnel_connections_refused_total{listen=\"127.0.0.1:$PORT1\"} 1$" <<<"$API_BODY" || fail "refusal on $PORT1 not counted"
grep -q "MaxConnectionsPerTunnel" "$TEST_TMP/tunneld.log" && fail "the tunnel limit (1000) refused something"
unhold
pass "a connection over MaxConnectionsPerClient closed at once, counted and logged, with its tunnel far from full"
