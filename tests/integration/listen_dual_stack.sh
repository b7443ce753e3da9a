#!/usr/bin/env bash
# The default ListenAddress "::" is one dual-stack socket per port (docs/CONFIG.md): with no ListenAddress in
# tunneld.json, the control port takes a tunnelc over ::1 and another over 127.0.0.1, and the management port
# answers on both. A tunnel listening on "::" takes visitors on both families too, while the tunnel default
# "0.0.0.0" (docs/API.md) is IPv4 only.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

v6=$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || echo 1)
if [ "$v6" != 0 ] || ! python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  echo "SKIP: ${TEST_NAME}: IPv6 is disabled on this host (net.ipv6.conf.all.disable_ipv6=$v6): no dual stack to test"
  pass "SKIP (IPv6 disabled)"
  exit 0
fi

make_pki
CONTROL_PORT=$(free_port) MGMT_PORT=$(free_port)
write_tunneld_config
# The fixture pins 127.0.0.1; the subject here is the default.
sed -i '/"ListenAddress"/d' "$TEST_TMP/tunneld.json"
! grep -q ListenAddress "$TEST_TMP/tunneld.json" || fail "the test config still sets ListenAddress"
spawn_checked tunneld "$TUNNELD" --config "$TEST_TMP/tunneld.json" --init-state
TUNNELD_PID=$SPAWNED_PID
wait_until 15 api_ping || fail "tunneld did not answer on 127.0.0.1 with the default ListenAddress"
status=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
  --key "$PKI/admin.key" "https://[::1]:$MGMT_PORT/ping" 2>&1) || true
[ "$status" = 200 ] || fail "the management port did not answer on [::1] with the default ListenAddress: $status"

BACKEND=$(free_port) PUB_BOTH=$(free_port) PUB_V4=$(free_port)
start_marker_nginx nginx "$BACKEND" dual
start_tunnelc home2 "[$BACKEND]"
sed 's/"ServerHost": "127.0.0.1"/"ServerHost": "::1"/; s/home2\./home1./g' "$TEST_TMP/tunnelc-home2.json" \
  >"$TEST_TMP/tunnelc-home1.json"
grep -q '"ServerHost": "::1"' "$TEST_TMP/tunnelc-home1.json" || fail "could not write home1's config"
spawn_checked tunnelc-home1 "$TUNNELC" --config "$TEST_TMP/tunnelc-home1.json"
TUNNELC_PID_home1=$SPAWNED_PID
wait_client_connected home1
wait_client_connected home2
wait_log "$TEST_TMP/tunnelc-home1.log" "client home1: connected to \[::1\]:$CONTROL_PORT "
wait_log "$TEST_TMP/tunnelc-home2.log" "client home2: connected to 127\.0\.0\.1:$CONTROL_PORT "

put_tunnels "[{\"ListenAddress\": \"::\", \"ListenPort\": $PUB_BOTH, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND},
              {\"ListenPort\": $PUB_V4, \"ClientIdentifier\": \"home2\", \"BackEndPort\": $BACKEND}]"
wait_port "$PUB_BOTH"
[ "$(http_get_marker 127.0.0.1 "$PUB_BOTH")" = dual ] || fail "a \"::\" tunnel refused a visitor over 127.0.0.1"
[ "$(http_get_marker ::1 "$PUB_BOTH")" = dual ] || fail "a \"::\" tunnel refused a visitor over ::1"
[ "$(http_get_marker 127.0.0.1 "$PUB_V4")" = dual ] || fail "the default tunnel address refused a visitor over 127.0.0.1"
api GET /tunnels
[ "$(json_get "$API_BODY" "[t['ListenAddress'] for t in d if t['ListenPort'] == $PUB_V4][0]")" = 0.0.0.0 ] ||
  fail "a tunnel without ListenAddress is not shown as 0.0.0.0: $API_BODY"
! port_open "$PUB_V4" ::1 || fail "a tunnel on the default 0.0.0.0 accepted a visitor over ::1"

stop_checked home1 home2 tunneld
pass "default ListenAddress: control and management ports on 127.0.0.1 and ::1; \"::\" tunnels on both, 0.0.0.0 on IPv4"
