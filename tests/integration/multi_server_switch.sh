#!/usr/bin/env bash
# multi_server_switch: a running tunnelc moved from "ServerHost" to "Servers" and back by SIGHUP (docs/CONFIG.md).
#  1. ServerHost A -> Servers [A, B]: A's link is kept (same host, port and ServerName: same ConnectedSince at A,
#     no second "connected" line, a download held open through A goes on), only B's link opens; log lines about
#     A's link name the server from then on.
#  2. Servers [A, B] -> ServerHost A: A's link is still the same one; B's link drains and closes.
#  3. ServerHost A -> Servers [B]: A is not listed, so its link drains (the held download finishes whole) and B's
#     opens.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
server_ports A B
BACKEND=$(free_port); PUBLIC_A=$(free_port); PUBLIC_B=$(free_port)
start_stream_server backend "$BACKEND" home
start_server A
start_server B
use_server A
start_tunnelc home1 "[$BACKEND]"
CONF="$TEST_TMP/tunnelc-home1.json"
CLOG="$TEST_TMP/tunnelc-home1.log"
wait_client_connected home1
route() {  # SERVER: its tunnel, checked with one request
  local p="PUBLIC_$1"
  route_on_server "$1" home1 "$BACKEND"
  [ "$(http_get_marker 127.0.0.1 "${!p}")" = home ] || fail "no traffic through server $1"
}
route A
connected_since() { use_server "$1"; api GET /clients; json_get "$API_BODY" 'd.get("home1", {}).get("ConnectedSince")'; }
client_state() { use_server "$1"; api GET /clients; json_get "$API_BODY" 'd.get("home1", {}).get("CurrentState", "none")'; }
not_connected() { [ "$(client_state "$1")" != ClientConnected ]; }
# Lines for a new link, whichever form (tagged or not) the configuration gives them.
connects_to() { grep -c "connected to 127.0.0.1:$1 " "$CLOG" || true; }
reloads() { grep -c "configuration reloaded" "$CLOG" || true; }
reload_to() {  # PYTHON_EDIT: edits the running file (d), then SIGHUP and waits for the reload line
  local n; n=$(reloads)
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec(sys.argv[2]); json.dump(d, open(sys.argv[1]+".new", "w"))' \
    "$CONF" "$1"
  mv "$CONF.new" "$CONF"
  kill -HUP "$TUNNELC_PID_home1"
  more_reloads() { [ "$(reloads)" -gt "$n" ]; }
  wait_until 10 more_reloads || fail "no reload line after SIGHUP ($1)"
}
since_a=$(connected_since A)
start_held_download dl "$PUBLIC_A"

# ---- 1. ServerHost A -> Servers [A, B] ----
reload_to 'del d["ServerHost"], d["ServerTunnelControlPort"]; d["Servers"] = ["127.0.0.1:'"$CONTROL_A"'", "127.0.0.1:'"$CONTROL_B"'"]'
grep -q "configuration reloaded .*servers: 1 kept, 1 added, 0 removed" "$CLOG" ||
  fail "ServerHost -> Servers was not 1 kept, 1 added: $(grep 'configuration reloaded' "$CLOG" | tail -1)"
use_server B
wait_client_connected home1
route B
[ "$(connected_since A)" = "$since_a" ] || fail "A's link was replaced by the switch to Servers"
[ "$(connects_to "$CONTROL_A")" = 1 ] || fail "A reconnected during the switch to Servers"
b1=$(held_download_bytes dl)
wait_until 20 held_download_has_bytes dl "$((b1 + 1048576))" || fail "the download through A stalled after the switch"
# The kept link now names its server in its lines (the allow-list is announced again at each reload).
wait_log "$CLOG" "client home1 \(server 127.0.0.1:$CONTROL_A\): announced"
echo "ServerHost -> Servers: A kept (ConnectedSince $since_a), B added"

# ---- 2. Servers [A, B] -> ServerHost A ----
reload_to 'del d["Servers"]; d["ServerHost"] = "127.0.0.1"; d["ServerTunnelControlPort"] = '"$CONTROL_A"
grep -q "configuration reloaded .*servers: 1 kept, 0 added, 1 removed" "$CLOG" ||
  fail "Servers -> ServerHost was not 1 kept, 1 removed: $(grep 'configuration reloaded' "$CLOG" | tail -1)"
wait_until 15 not_connected B || fail "B still shows home1 connected after the switch back to ServerHost"
wait_log "$CLOG" "client home1 \(server 127.0.0.1:$CONTROL_B\): removed server's link is closed"
[ "$(connected_since A)" = "$since_a" ] || fail "A's link was replaced by the switch back to ServerHost"
[ "$(connects_to "$CONTROL_A")" = 1 ] || fail "A reconnected during the switch back to ServerHost"
b2=$(held_download_bytes dl)
wait_until 20 held_download_has_bytes dl "$((b2 + 1048576))" || fail "the download through A stalled after the switch back"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC_A")" = home ] || fail "no traffic through A after the switch back"
echo "Servers -> ServerHost: A still the same link, B's closed"

# ---- 3. ServerHost A -> Servers [B]: A drains ----
reload_to 'del d["ServerHost"], d["ServerTunnelControlPort"]; d["Servers"] = ["127.0.0.1:'"$CONTROL_B"'"]'
grep -q "configuration reloaded .*servers: 0 kept, 1 added, 1 removed" "$CLOG" ||
  fail "ServerHost A -> Servers [B] was not 0 kept, 1 added, 1 removed: $(grep 'configuration reloaded' "$CLOG" | tail -1)"
use_server B
wait_client_connected home1
[ "$(connects_to "$CONTROL_B")" = 2 ] || fail "B should have connected exactly twice (first switch, this one)"
held_download_running dl || fail "the download through A was cut when A was removed"
finish_held_download dl home
echo "ServerHost A -> Servers [B]: the held download through A finished whole ($HELD_BYTES bytes) while A drained"
wait_until 15 not_connected A || fail "A still shows home1 connected after its removal"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC_B")" = home ] || fail "no traffic through B"

grep -q 'ended: tunnel link lost' "$CLOG" && fail "a stream was reset by a switch"
stop_checked home1
stop_server A
stop_server B
pass "ServerHost <-> Servers by SIGHUP: the server that stays keeps its link and its streams; others open or drain"
