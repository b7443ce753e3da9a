#!/usr/bin/env bash
# multi_server_reload: "Servers" and SIGHUP, with two tunneld (A and B) and one tunnelc.
#  1. SIGHUP removing B: B's link drains (a download held open through B finishes whole; no new connection is
#     taken there) and closes; A's link is untouched (same ConnectedSince at A, no new "connected" line).
#  2. SIGHUP adding B back: only B's link opens; A's is still the same.
#  3. SIGTERM drains both links and exits 0.
#  Throughout, systemd hears READY=1 once and "N of M servers connected" as links come and go (a real NOTIFY_SOCKET).
#  4. configuration errors name the field (--check-config): both ServerHost and Servers, an empty list, a
#     duplicate entry, a bad port; a good list is reported with every server.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
server_ports A B
BACKEND=$(free_port); PUBLIC_A=$(free_port); PUBLIC_B=$(free_port)
start_stream_server backend "$BACKEND" home
start_server A
start_server B
BOTH="[\"127.0.0.1:$CONTROL_A\", \"127.0.0.1:$CONTROL_B\"]"
write_servers_tunnelc home1 "$BOTH" "[$BACKEND]"
# sd_notify datagrams, one per line ('\n' inside a datagram written as '|').
spawn notify python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
f = open(sys.argv[2], "a", buffering=1)
f.write("listening\n")
while True:
    f.write(s.recv(4096).decode().replace("\n", "|") + "\n")
' "$TEST_TMP/notify.sock" "$TEST_TMP/notify.txt"
wait_until 10 grep -q listening "$TEST_TMP/notify.txt" || fail "notify listener did not start"
NOTIFY_SOCKET="$TEST_TMP/notify.sock" spawn_checked tunnelc-home1 "$TUNNELC" --config "$TEST_TMP/tunnelc-home1.json"
TUNNELC_PID_home1=$SPAWNED_PID
notified() { grep -qE "$1" "$TEST_TMP/notify.txt"; }
CLOG="$TEST_TMP/tunnelc-home1.log"
for s in A B; do
  route_on_server "$s" home1 "$BACKEND"
  p="PUBLIC_$s"
  [ "$(http_get_marker 127.0.0.1 "${!p}")" = home ] || fail "no traffic through server $s"
done
connected_since() { use_server "$1"; api GET /clients; json_get "$API_BODY" 'd["home1"]["ConnectedSince"]'; }
client_state() { use_server "$1"; api GET /clients; json_get "$API_BODY" 'd.get("home1", {}).get("CurrentState", "none")'; }
not_connected() { [ "$(client_state "$1")" != ClientConnected ]; }
connected_lines() { grep -c "client home1 (server 127.0.0.1:$1): connected to" "$CLOG" || true; }
since_a=$(connected_since A)
wait_until 10 notified "STATUS=2 of 2 servers connected" || fail "systemd never heard 2 of 2: $(cat "$TEST_TMP/notify.txt")"
[ "$(grep -c READY=1 "$TEST_TMP/notify.txt")" = 1 ] || fail "READY=1 sent more than once at start"
grep -m1 READY=1 "$TEST_TMP/notify.txt" | grep -qE "STATUS=[12] of 2 servers connected" ||
  fail "READY=1 came before any link was up: $(grep -m1 READY=1 "$TEST_TMP/notify.txt")"

# ---- 1. remove B: its link drains, A's stays ----
start_held_download dl "$PUBLIC_B"
write_servers_tunnelc home1 "[\"127.0.0.1:$CONTROL_A\"]" "[$BACKEND]"
kill -HUP "$TUNNELC_PID_home1"
wait_log "$CLOG" "configuration reloaded .*servers: 1 kept, 0 added, 1 removed"
wait_until 10 notified "RELOADING=1" || fail "no RELOADING=1 on SIGHUP"
wait_until 10 notified "READY=1\|STATUS=1 of 1 servers connected" || fail "after removing B, systemd did not hear 1 of 1: $(cat "$TEST_TMP/notify.txt")"
grep -q "client home1 (server 127.0.0.1:$CONTROL_B): server removed from the configuration; its open streams finish first" "$CLOG" ||
  fail "no line for B's removal: $(grep -m1 removed "$CLOG")"
# Draining: the held download goes on; a new connection through B is not carried by the removed link.
b1=$(held_download_bytes dl)
wait_until 20 held_download_has_bytes dl "$((b1 + 1048576))" || fail "the download through B stalled during its drain"
curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$PUBLIC_B/" 2>/dev/null &&
  [ "$(curl -sS --max-time 5 "http://127.0.0.1:$PUBLIC_B/" 2>/dev/null)" = home ] &&
  fail "a new connection through B was carried after B was removed"
finish_held_download dl home
echo "removed server B: a held download through it finished whole ($HELD_BYTES bytes) before its link closed"
wait_until 15 not_connected B || fail "B still shows home1 connected after its removal"
wait_log "$CLOG" "client home1 \(server 127.0.0.1:$CONTROL_B\): removed server's link is closed"
[ "$(connected_since A)" = "$since_a" ] || fail "A's link was replaced by the reload removing B"
[ "$(connected_lines "$CONTROL_A")" = 1 ] || fail "A reconnected during the reload removing B"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC_A")" = home ] || fail "no traffic through A after B's removal"

# ---- 2. add B back: only its link opens ----
twos=$(grep -c "STATUS=2 of 2 servers connected" "$TEST_TMP/notify.txt" || true)
write_servers_tunnelc home1 "$BOTH" "[$BACKEND]"
kill -HUP "$TUNNELC_PID_home1"
wait_log "$CLOG" "configuration reloaded .*servers: 1 kept, 1 added, 0 removed"
use_server B
wait_client_connected home1
more_twos() { [ "$(grep -c "STATUS=2 of 2 servers connected" "$TEST_TMP/notify.txt")" -gt "$twos" ]; }
wait_until 10 more_twos || fail "after adding B, systemd did not hear 2 of 2: $(cat "$TEST_TMP/notify.txt")"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC_B")" = home ] || fail "no traffic through B after it was added back"
[ "$(connected_since A)" = "$since_a" ] || fail "A's link was replaced by the reload adding B"
[ "$(connected_lines "$CONTROL_A")" = 1 ] || fail "A reconnected during the reload adding B"
[ "$(connected_lines "$CONTROL_B")" = 2 ] || fail "B should have connected exactly twice (start, re-add)"
echo "SIGHUP: removing B closed only B's link, adding it back opened only B's link (A ConnectedSince $since_a throughout)"

# ---- 3. SIGTERM drains both ----
stop_checked home1
grep -q "client home1 (server 127.0.0.1:$CONTROL_A): link closed" "$CLOG" || fail "A's link not closed at SIGTERM"
grep -q "client home1 (server 127.0.0.1:$CONTROL_B): link closed" "$CLOG" || fail "B's link not closed at SIGTERM"

# ---- 4. configuration errors ----
GOOD="$TEST_TMP/tunnelc-home1.json"
check_error() {  # PYTHON_EDIT EXPECTED_TEXT
  local f="$TEST_TMP/bad.json" out rc=0
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec(sys.argv[2]); json.dump(d, open(sys.argv[3], "w"))' \
    "$GOOD" "$1" "$f"
  out=$("$TUNNELC" --config "$f" --check-config --service-user "$(id -un)" 2>&1) || rc=$?
  [ "$rc" = 1 ] || fail "tunnelc accepted a bad Servers list ($1): $out"
  grep -qF "$f: $2" <<<"$out" || fail "for $1: wanted '$2', got: $out"
}
check_error 'd["ServerHost"] = "127.0.0.1"' '"Servers": cannot be used together with "ServerHost"'
check_error 'd["Servers"] = []' '"Servers": must list at least one server'
check_error 'd["Servers"].append("127.0.0.1:%d" % '"$CONTROL_A"')' \
  "\"Servers\"[2]: server 127.0.0.1:$CONTROL_A is listed twice (also at [0])"
check_error 'd["Servers"][1] = "127.0.0.1:70000"' '"Servers"[1]: port must be an integer 1-65535, got "127.0.0.1:70000"'
check_error 'd["Servers"][1] = {"Host": "127.0.0.1", "Port": "x"}' '"Servers"[1]."Port": must be an integer 1-65535, got "x"'
# --service-user: the daemons here run as the test's user, whatever accounts the host has (a host with the package has "tunnel").
out=$("$TUNNELC" --config "$GOOD" --check-config --service-user "$(id -un)" 2>&1) || fail "the good file was refused: $out"
out=$(grep "configuration OK" <<<"$out" || true)  # run as root it also speaks of the service user
[ "$out" = "tunnelc: $GOOD: configuration OK (client identity home1, 2 servers: 127.0.0.1:$CONTROL_A, 127.0.0.1:$CONTROL_B)" ] ||
  fail "unexpected --check-config line: $out"
stop_server A
stop_server B
pass "SIGHUP removes and adds servers without touching the link that stays; a removed link drains; errors name the field"
