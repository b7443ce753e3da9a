#!/usr/bin/env bash
# A PUT that moves a tunnel from home1 to home2 while a download runs through home1: the download goes on and
# completes intact on home1's backend, the listener stays open, new connections reach home2's backend, GET /tunnels
# shows ActiveClient home2. The download is held open by its backend until every check after the move is done.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld
BACKEND1=$(free_port)
BACKEND2=$(free_port)
PUBLIC_PORT=$(free_port)
start_stream_server web1 "$BACKEND1" "backend of home1"
start_stream_server web2 "$BACKEND2" "backend of home2"
# Both clients serve the tunnel's service "web", each from its own backend.
start_tunnelc home1 "[]" "{\"web\": \"127.0.0.1:$BACKEND1\"}"
start_tunnelc home2 "[]" "{\"web\": \"127.0.0.1:$BACKEND2\"}"
wait_client_connected home1
wait_client_connected home2

tunnel_for() {
  printf '[{"ListenAddress": "127.0.0.1", "ListenPort": %s, "ClientIdentifier": "%s", "BackEndService": "web"}]' \
    "$PUBLIC_PORT" "$1"
}
put_tunnels "$(tunnel_for home1)"
wait_port "$PUBLIC_PORT"
marker=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/marker.txt")
[ "$marker" = "backend of home1" ] || fail "before the move: got '$marker'"

start_held_download dl "$PUBLIC_PORT"

# Move the tunnel while the download runs.
put_tunnels "$(tunnel_for home2)"
at_move=$(held_download_bytes dl)
[ "$(json_get "$API_BODY" 'd[0]["ActiveClient"]')" = home2 ] || fail "PUT answer: ActiveClient is not home2: $API_BODY"

# New connections reach home2 while the old download continues on home1.
marker=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/marker.txt")
[ "$marker" = "backend of home2" ] || fail "after the move a new connection got '$marker'"
api GET /tunnels
echo "GET /tunnels during the download: $API_BODY"
[ "$(json_get "$API_BODY" 'd[0]["ActiveClient"]')" = home2 ] || fail "GET /tunnels: ActiveClient is not home2"
[ "$(json_get "$API_BODY" 'd[0]["OpenConnections"]')" -ge 1 ] || fail "GET /tunnels: the download is not counted"
# The marker request's stream on home2 (and the one before the move on home1) may still be closing when curl
# returns: the counts are polled until they settle, and only the held download keeps a stream open.
streams_settled() {
  api GET /clients && [ "$(json_get "$API_BODY" 'd["home1"]["OpenStreams"]')" = 1 ] &&
    [ "$(json_get "$API_BODY" 'd["home2"].get("OpenStreams", 0)')" = 0 ]
}
wait_until 20 streams_settled ||
  fail "home1 should carry the download alone (OpenStreams 1) and home2 nothing once closed streams end: $API_BODY"
held_download_running dl || fail "the download ended during the move"
# Bytes keep flowing on the old path after the move (not merely a connection left open).
wait_until 30 held_download_has_bytes dl "$((at_move + 1024 * 1024))" ||
  fail "the download stalled after the move at $(held_download_bytes dl) bytes"

finish_held_download dl "backend of home1"
echo "$((HELD_BYTES / 1024 / 1024)) MiB downloaded intact from home1's backend across the move ($((at_move / 1024)) KiB before it)"
[ "$(grep -c "tunnel port $PUBLIC_PORT: listening" "$TEST_TMP/tunneld.log")" = 1 ] ||
  fail "the listener was re-bound by the move instead of kept"
marker=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/marker.txt")
[ "$marker" = "backend of home2" ] || fail "after the download a new connection got '$marker'"
wait_log "$TEST_TMP/tunneld.log" "tunnel port $PUBLIC_PORT: new connections go to client home2 \\(was home1\\); 1 open connections stay"
stop_checked home1 home2 tunneld
pass "download through home1 survived the move intact; new connections reach home2; ActiveClient home2"
