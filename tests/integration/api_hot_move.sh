#!/usr/bin/env bash
# A PUT that moves a tunnel from home1 to home2 while a long download runs through home1: the download completes
# intact, the listener stays open, new connections reach home2's backend, GET /tunnels shows ActiveClient home2.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld
BACKEND1=$(free_port)
BACKEND2=$(free_port)
PUBLIC_PORT=$(free_port)
SIZE_MB=64
RATE=16m   # nginx sends at this rate (limit_rate), so the conversation inside tunneld spans the event;
           # a rate-limited reader would not do: the kernel buffers tens of MiB on loopback
mkdir -p "$TEST_TMP/www1" "$TEST_TMP/www2"
echo "backend of home1" >"$TEST_TMP/www1/marker.txt"
echo "backend of home2" >"$TEST_TMP/www2/marker.txt"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$TEST_TMP/www1/big.bin"
want=$(sha256sum <"$TEST_TMP/www1/big.bin" | cut -d' ' -f1)
start_nginx nginx1 "$TEST_TMP/www1" "$BACKEND1" "limit_rate $RATE;"
start_nginx nginx2 "$TEST_TMP/www2" "$BACKEND2"
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

# The long download through home1.
t0=$(now_ms)
curl -sS --max-time 60 -o "$TEST_TMP/download.bin" "http://127.0.0.1:$PUBLIC_PORT/big.bin" \
  2>"$TEST_TMP/download.err" &
DL_PID=$!
TEST_PIDS+=("$DL_PID")
downloaded_some() { [ "$(stat -c %s "$TEST_TMP/download.bin" 2>/dev/null || echo 0)" -ge $((2 * 1024 * 1024)) ]; }
wait_until 20 downloaded_some || fail "the download did not start"

# Move the tunnel while the download runs.
put_tunnels "$(tunnel_for home2)"
t_move=$(now_ms)
at_move=$(stat -c %s "$TEST_TMP/download.bin")
kill -0 "$DL_PID" 2>/dev/null || fail "the download finished before the move; the test proves nothing"
echo "tunnel moved to home2 after $((t_move - t0)) ms, with $((at_move / 1024 / 1024)) of $SIZE_MB MiB downloaded"
[ "$(json_get "$API_BODY" 'd[0]["ActiveClient"]')" = home2 ] || fail "PUT answer: ActiveClient is not home2: $API_BODY"

# New connections reach home2 while the old download continues on home1.
marker=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/marker.txt")
[ "$marker" = "backend of home2" ] || fail "after the move a new connection got '$marker'"
api GET /tunnels
echo "GET /tunnels during the download: $API_BODY"
[ "$(json_get "$API_BODY" 'd[0]["ActiveClient"]')" = home2 ] || fail "GET /tunnels: ActiveClient is not home2"
[ "$(json_get "$API_BODY" 'd[0]["OpenConnections"]')" -ge 1 ] || fail "GET /tunnels: the download is not counted"
api GET /clients
[ "$(json_get "$API_BODY" 'd["home1"]["OpenStreams"]')" = 1 ] || fail "home1 does not carry the download: $API_BODY"
kill -0 "$DL_PID" 2>/dev/null || fail "the download ended before the checks after the move were done"

wait "$DL_PID" || fail "the download failed after the move: $(cat "$TEST_TMP/download.err")"
t1=$(now_ms)
got=$(sha256sum <"$TEST_TMP/download.bin" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "download corrupted: $(stat -c %s "$TEST_TMP/download.bin") bytes, checksum differs"
echo "$SIZE_MB MiB downloaded intact across the move in $((t1 - t0)) ms ($((SIZE_MB * 1000 / (t1 - t0))) MB/s, nginx limit_rate $RATE)"
grep -q "tunnel port $PUBLIC_PORT: listening" "$TEST_TMP/tunneld.log" || fail "listener log line missing"
[ "$(grep -c "tunnel port $PUBLIC_PORT: listening" "$TEST_TMP/tunneld.log")" = 1 ] ||
  fail "the listener was re-bound by the move instead of kept"
marker=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/marker.txt")
[ "$marker" = "backend of home2" ] || fail "after the download a new connection got '$marker'"
wait_log "$TEST_TMP/tunneld.log" "tunnel port $PUBLIC_PORT: new connections go to client home2 \\(was home1\\); 1 open connections stay"
pass "download through home1 survived the move intact; new connections reach home2; ActiveClient home2"
