#!/usr/bin/env bash
# A second link for an identity that already has one (a tunnelc restarted while its old connection lingers)
# replaces the old link: new connections go to the new link at once, the old link's running download finishes
# intact within ReplacedLinkGraceMs, and the new link is not kicked off with the old one.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

GRACE_MS=15000
make_pki
# The same identity twice: a copy of home1's certificate under another file name.
cp "$PKI/home1.crt" "$PKI/home1b.crt"
cp "$PKI/home1.key" "$PKI/home1b.key"
start_tunneld "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 5000, \"DrainTimeoutMs\": 3000, \"ReplacedLinkGraceMs\": $GRACE_MS}"
BACKEND_A=$(free_port)
BACKEND_B=$(free_port)
PUBLIC_PORT=$(free_port)
SIZE_MB=24
mkdir -p "$TEST_TMP/wwwa" "$TEST_TMP/wwwb"
echo "old link A" >"$TEST_TMP/wwwa/marker.txt"
echo "new link B" >"$TEST_TMP/wwwb/marker.txt"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$TEST_TMP/wwwa/big.bin"
want=$(sha256sum <"$TEST_TMP/wwwa/big.bin" | cut -d' ' -f1)
start_nginx nginxa "$TEST_TMP/wwwa" "$BACKEND_A" "limit_rate 8m;"
start_nginx nginxb "$TEST_TMP/wwwb" "$BACKEND_B"
# A reconnects only after a minute, so once replaced it stays out of the way for the rest of the test.
start_tunnelc home1 "[]" "{\"web\": \"127.0.0.1:$BACKEND_A\"}" \
  '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 5000, "DrainTimeoutMs": 3000, "ReconnectMinMs": 60000, "ReconnectMaxMs": 60000}'
wait_client_connected home1
api GET /clients
remote_a=$(json_get "$API_BODY" 'd["home1"]["RemoteAddress"]')
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndService\": \"web\"}]"
wait_port "$PUBLIC_PORT"
[ "$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/marker.txt")" = "old link A" ] || fail "before: not A"

t0=$(now_ms)
curl -sS --max-time 60 -o "$TEST_TMP/download.bin" "http://127.0.0.1:$PUBLIC_PORT/big.bin" 2>"$TEST_TMP/download.err" &
DL_PID=$!
TEST_PIDS+=("$DL_PID")
downloaded_some() { [ "$(stat -c %s "$TEST_TMP/download.bin" 2>/dev/null || echo 0)" -ge $((2 * 1024 * 1024)) ]; }
wait_until 20 downloaded_some || fail "the download did not start"

# B: same identity, its own backend.
start_tunnelc home1b "[]" "{\"web\": \"127.0.0.1:$BACKEND_B\"}"
wait_log "$TEST_TMP/tunneld.log" "client home1: new link from 127\\.0\\.0\\.1:[0-9]+ replaces the one from $remote_a"
t_replace=$(now_ms)
kill -0 "$DL_PID" 2>/dev/null || fail "the download finished before the replacement; the test proves nothing"
marker=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/marker.txt")
t_new=$(now_ms)
[ "$marker" = "new link B" ] || fail "a new connection after the replacement got '$marker'"
echo "new connection reached the new link $((t_new - t_replace)) ms after the replacement was logged"
api GET /clients
remote_b=$(json_get "$API_BODY" 'd["home1"]["RemoteAddress"]')
[ "$remote_b" != "$remote_a" ] && [ "$(json_get "$API_BODY" 'd["home1"]["CurrentState"]')" = ClientConnected ] ||
  fail "GET /clients does not show the new link: $API_BODY"

wait "$DL_PID" || fail "the download on the replaced link failed: $(cat "$TEST_TMP/download.err")"
t_done=$(now_ms)
got=$(sha256sum <"$TEST_TMP/download.bin" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "the download on the replaced link is corrupted"
echo "download on the replaced link finished intact $((t_done - t_replace)) ms after the replacement (grace $GRACE_MS ms)"
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
pass "new link replaced the old at once, the old link's download finished intact, the new link stayed"
