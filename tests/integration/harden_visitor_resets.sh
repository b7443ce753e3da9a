#!/usr/bin/env bash
# Visitors cannot flood the logs: 2,000 public connections that reset (SO_LINGER 0 close right after connect, or
# after sending a byte and reading the home service's greeting) leave a bounded number of lines in tunneld's and tunnelc's logs at info level and above
# (the first of each kind, then counts), not one line per visitor in each, and tunneld counts them in
# tunneld_tunnel_connections_aborted_total. A real request is served afterwards.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

STORM=2000
make_pki
start_tunneld
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port)
# The home service greets every connection at once, so a visitor knows its stream reached the backend through
# tunnelc before it resets: those resets end streams on both sides.
spawn greeter python3 -c '
import socket, sys, threading
def serve(c):
    try:
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\nreal\n")
        c.shutdown(socket.SHUT_WR)
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(1024)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()' "$BACKEND_PORT"
wait_port "$BACKEND_PORT"
start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC_PORT")" = real ] || fail "no traffic before the resets"

# Lines at info level and above, past the first $2 lines of log $1 (debug lines are the operator's choice).
visible_since() { tail -n +$(($2 + 1)) "$1" | grep -E ' (info|warn|error): ' || true; }
TD_LOG="$TEST_TMP/tunneld.log"; TC_LOG="$TEST_TMP/tunnelc-home1.log"
td0=$(wc -l <"$TD_LOG"); tc0=$(wc -l <"$TC_LOG")

python3 - "$PUBLIC_PORT" "$STORM" <<'PY'
import socket, struct, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if i % 2:
        # Half send a byte and wait for the service's greeting: their streams reached tunnelc and the backend.
        s.send(b"G")
        s.recv(1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
PY

# Every reset visitor has ended on tunneld's side once nothing is open and the count stops short of nothing.
open_now() { metric "tunneld_tunnel_connections_open{listen=\"127.0.0.1:$PUBLIC_PORT\"}"; }
wait_until 60 bash -c "[ \"\$(curl -s --cacert $PKI/ca.crt --cert $PKI/admin.crt --key $PKI/admin.key https://127.0.0.1:$MGMT_PORT/metrics | awk '\$1 == \"tunneld_tunnel_connections_open{listen=\\\"127.0.0.1:$PUBLIC_PORT\\\"}\" { print \$2 }')\" = 0 ]" ||
  fail "visitor connections still open: $(open_now)"
aborted=$(metric "tunneld_tunnel_connections_aborted_total{listen=\"127.0.0.1:$PUBLIC_PORT\"}")
echo "tunneld_tunnel_connections_aborted_total after $STORM resets: $aborted"
# A reset that lands before tunneld reads the socket may still end as a clean close; most end as resets.
[ "${aborted:-0}" -ge $((STORM / 2)) ] || fail "the resets were not counted: '$aborted'"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC_PORT")" = real ] || fail "no traffic after the resets"

# Pending counts are written at shutdown: they are part of the total.
stop_checked home1 tunneld
td_lines=$(visible_since "$TD_LOG" "$td0"); tc_lines=$(visible_since "$TC_LOG" "$tc0")
td_n=$(grep -c . <<<"$td_lines" || true); tc_n=$(grep -c . <<<"$tc_lines" || true)
echo "log lines at info and above for $STORM reset visitors, shutdown included: tunneld $td_n, tunnelc $tc_n"
echo "$td_lines" | cut -c1-200 | head -n 12
echo "$tc_lines" | cut -c1-200 | head -n 12
# A first line per kind, a count per 10 s while they last, the shutdown's own lines. Before, 2,000 and 1,990.
[ "$td_n" -le 50 ] || fail "tunneld wrote $td_n lines for $STORM reset visitors"
[ "$tc_n" -le 50 ] || fail "tunnelc wrote $tc_n lines for $STORM reset visitors"
grep -q 'tunnel port connections ended.*more in the last' <<<"$td_lines" || fail "tunneld did not count the suppressed lines"
grep -q 'client: streams ended.*more in the last' <<<"$tc_lines" || fail "tunnelc did not count the suppressed lines"
pass "$STORM reset visitors: $td_n tunneld lines, $tc_n tunnelc lines, $aborted counted as aborted"
