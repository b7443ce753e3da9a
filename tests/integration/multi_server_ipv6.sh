#!/usr/bin/env bash
# multi_server_ipv6: "Servers" entries written "[::1]:PORT" (docs/CONFIG.md) on real sockets. Two tunneld listen on
# "::" (dual stack, so the admin API stays on 127.0.0.1); tunnelc lists both as [::1]. Asserted: --check-config
# reports both in brackets; each tunneld sees tunnelc connect from [::1] (an IPv6 link, not IPv4 through a name);
# the certificate's IP address ::1 is what is verified; each link's log lines name "[::1]:PORT"; public connections
# to [::1] through both servers reach the backend; a [::1] server that is down is retried and joined once up.
# SKIP line where IPv6 is disabled.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

v6=$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || echo 1)
if [ "$v6" != 0 ] || ! python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  echo "SKIP: ${TEST_NAME}: IPv6 is disabled on this host (net.ipv6.conf.all.disable_ipv6=$v6): no [::1] server to reach"
  pass "SKIP (IPv6 disabled)"
  exit 0
fi

make_pki
server_ports A B
BACKEND=$(free_port); PUBLIC_A=$(free_port); PUBLIC_B=$(free_port)
start_marker_nginx web "$BACKEND" home
# start_server writes ListenAddress 127.0.0.1; these two listen on both families.
start_v6_server() {
  use_server "$1"
  write_tunneld_config
  sed 's/"ListenAddress": "127.0.0.1"/"ListenAddress": "::"/' "$TEST_TMP/tunneld.json" >"$TEST_TMP/tunneld-$1.json"
  spawn_checked "tunneld-$1" "$TUNNELD" --config "$TEST_TMP/tunneld-$1.json" --init-state
  printf -v "PID_$1" '%s' "$SPAWNED_PID"
  wait_until 15 api_ping || fail "tunneld $1 did not start (see $TEST_TMP/tunneld-$1.log)"
}
start_v6_server A
write_servers_tunnelc home1 "[\"[::1]:$CONTROL_A\", \"[::1]:$CONTROL_B\"]" "[$BACKEND]"
# --service-user: the daemons here run as the test's user, whatever accounts the host has (a host with the package has "tunnel").
out=$("$TUNNELC" --config "$TEST_TMP/tunnelc-home1.json" --check-config --service-user "$(id -un)" 2>&1) || fail "the [::1] list was refused: $out"
grep -qF "2 servers: [::1]:$CONTROL_A, [::1]:$CONTROL_B)" <<<"$out" || fail "--check-config does not list both [::1] servers: $out"
# B is not up yet: its link must retry, and join once B listens.
spawn_checked tunnelc-home1 "$TUNNELC" --config "$TEST_TMP/tunnelc-home1.json"
TUNNELC_PID_home1=$SPAWNED_PID
CLOG="$TEST_TMP/tunnelc-home1.log"
use_server A
wait_client_connected home1
wait_log "$CLOG" "client home1 \(server \[::1\]:$CONTROL_B\): cannot connect to \[::1\]:$CONTROL_B: .*retrying"
start_v6_server B
use_server B
wait_client_connected home1
for s in A B; do
  c="CONTROL_$s" p="PUBLIC_$s"
  grep -qE "client home1: connected from \[::1\]:[0-9]+ " "$TEST_TMP/tunneld-$s.log" ||
    fail "tunneld $s did not see home1 come from [::1]: $(grep -m1 'client home1: connected from' "$TEST_TMP/tunneld-$s.log")"
  grep -qF "client home1 (server [::1]:${!c}): connected to [::1]:${!c} (server certificate CN server)" "$CLOG" ||
    fail "no connect line naming [::1]:${!c}: $(grep 'connected to' "$CLOG")"
  use_server "$s"
  put_tunnels "[{\"ListenAddress\": \"::1\", \"ListenPort\": ${!p}, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND}]"
  wait_port "${!p}" ::1
  [ "$(http_get_marker ::1 "${!p}")" = home ] || fail "no traffic through [::1]:${!p} (server $s)"
done
grep -m1 -F "client home1 (server [::1]:$CONTROL_A): connected to" "$CLOG" | sed 's/^[^ ]* /tunnelc: /'
grep -m1 -E "client home1: connected from \[::1\]" "$TEST_TMP/tunneld-B.log" | sed 's/^[^ ]* /tunneld B: /'

stop_checked home1
grep -qF "client home1 (server [::1]:$CONTROL_A): link closed" "$CLOG" || fail "A's link not closed at SIGTERM"
grep -qF "client home1 (server [::1]:$CONTROL_B): link closed" "$CLOG" || fail "B's link not closed at SIGTERM"
stop_server A
stop_server B
pass "Servers as [::1]:PORT: IPv6 links to both tunneld, ::1 verified, lines name [::1]:PORT, traffic through both"
