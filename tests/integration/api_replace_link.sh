#!/usr/bin/env bash
# A second link for an identity that already has one (a tunnelc restarted while its old connection lingers)
# replaces the old link: new connections go to the new link at once, the old link's running download finishes
# intact within ReplacedLinkGraceMs, and the new link is not kicked off with the old one.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

# The old link's download is held open by its backend until the checks below are done; the grace period only has
# to outlast those checks, and is generous because a loaded machine makes them slow.
GRACE_MS=30000
make_pki
# The same identity twice: a copy of home1's certificate under another file name.
cp "$PKI/home1.crt" "$PKI/home1b.crt"
cp "$PKI/home1.key" "$PKI/home1b.key"
start_tunneld "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 5000, \"DrainTimeoutMs\": 3000, \"ReplacedLinkGraceMs\": $GRACE_MS}"
BACKEND_A=$(free_port)
BACKEND_B=$(free_port)
PUBLIC_PORT=$(free_port)
start_stream_server weba "$BACKEND_A" "old link A"
start_stream_server webb "$BACKEND_B" "new link B"
# A reconnects only after a minute, so once replaced it stays out of the way for the rest of the test.
start_tunnelc home1 "[]" "{\"web\": \"127.0.0.1:$BACKEND_A\"}" \
  '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 5000, "DrainTimeoutMs": 3000, "ReconnectMinMs": 60000, "ReconnectMaxMs": 60000}'
wait_client_connected home1
api GET /clients
remote_a=$(json_get "$API_BODY" 'd["home1"]["RemoteAddress"]')
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndService\": \"web\"}]"
wait_port "$PUBLIC_PORT"
[ "$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/marker.txt")" = "old link A" ] || fail "before: not A"

start_held_download dl "$PUBLIC_PORT"

# B: same identity, its own backend.
start_tunnelc home1b "[]" "{\"web\": \"127.0.0.1:$BACKEND_B\"}"
wait_log "$TEST_TMP/tunneld.log" "client home1: new link from 127\\.0\\.0\\.1:[0-9]+ replaces the one from $remote_a"
t_replace=$(now_ms)
marker=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/marker.txt")
t_new=$(now_ms)
[ "$marker" = "new link B" ] || fail "a new connection after the replacement got '$marker'"
echo "new connection reached the new link $((t_new - t_replace)) ms after the replacement was logged"
api GET /clients
remote_b=$(json_get "$API_BODY" 'd["home1"]["RemoteAddress"]')
[ "$remote_b" != "$remote_a" ] && [ "$(json_get "$API_BODY" 'd["home1"]["CurrentState"]')" = ClientConnected ] ||
  fail "GET /clients does not show the new link: $API_BODY"

held_download_running dl || fail "the download on the old link ended at the replacement"
at_replace=$(held_download_bytes dl)
wait_until 30 held_download_has_bytes dl "$((at_replace + 1024 * 1024))" ||
  fail "the download on the replaced link stalled at $(held_download_bytes dl) bytes"
finish_held_download dl "old link A"
t_done=$(now_ms)
echo "download on the replaced link finished intact ($((HELD_BYTES / 1024)) KiB) $((t_done - t_replace)) ms after the replacement (grace $GRACE_MS ms)"
wait_log "$TEST_TMP/tunneld.log" "client home1: old link from $remote_a closed" 20

# The new link was not taken down with the old one.
api GET /clients
[ "$(json_get "$API_BODY" 'd["home1"]["CurrentState"]')" = ClientConnected ] &&
  [ "$(json_get "$API_BODY" 'd["home1"]["RemoteAddress"]')" = "$remote_b" ] ||
  fail "the new link did not survive the old one's end: $API_BODY"
[ "$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/marker.txt")" = "new link B" ] || fail "after: not B"
! grep -q "client home1: disconnected" "$TEST_TMP/tunneld.log" || fail "home1 was reported disconnected"
api GET /metrics
grep -q '^tunneld_links_replaced_total 1$' <<<"$API_BODY" || fail "replacement not counted"
stop_checked home1b tunneld
pass "new link replaced the old at once, the old link's download finished intact, the new link stayed"
