#!/usr/bin/env bash
# Under ASan/UBSan with LeakSanitizer: a bounded mixed run (bulk downloads, small requests, client reconnects, PUTs
# that add and remove tunnels), then SIGTERM to tunneld and tunnelc: both exit 0 and report nothing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

NET="python3 $(dirname "$0")/tools/harden_net.py"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
case $ASAN_OPTIONS in *detect_leaks=0*) fail "LeakSanitizer is disabled in ASAN_OPTIONS" ;; esac

make_pki
start_tunneld
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port); EXTRA_PORT=$(free_port)
mkdir -p "$TEST_TMP/www"
echo small >"$TEST_TMP/www/index.html"
head -c $((16 * 1024 * 1024)) /dev/urandom >"$TEST_TMP/www/bulk.bin"
want=$(sha256sum <"$TEST_TMP/www/bulk.bin" | cut -d' ' -f1)
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT"
CLIENT_LIMITS='{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": 3000, "ReconnectMinMs": 10, "ReconnectMaxMs": 50, "ReconnectResetAfterMs": 0}'
start_tunnelc home1 "[$BACKEND_PORT]" '{}' "$CLIENT_LIMITS"
wait_client_connected home1
T1="{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}"
T2="{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $EXTRA_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT, \"HaProxyProxyProtocol\": true, \"ProxyProtocolVersion\": 2}"
put_tunnels "[$T1]"
wait_port "$PUBLIC_PORT"

t0=$(now_ms)
for round in 1 2 3; do
  # bulk downloads in the background, small requests, a reconnect and a table change meanwhile
  BULK_PIDS=()
  for i in 1 2; do
    (curl -sS --max-time 60 "http://127.0.0.1:$PUBLIC_PORT/bulk.bin" | sha256sum | cut -d' ' -f1 >"$TEST_TMP/bulk.$round.$i") &
    BULK_PIDS+=("$!"); TEST_PIDS+=("$!")
  done
  out=$($NET churn 127.0.0.1 "$PUBLIC_PORT" 1500 8)
  [ "$(json_get "$out" 'd["failed"]')" = 0 ] || fail "small requests failed in round $round: $out"
  # a tunnel added (its port opens) and removed again (its port closes)
  put_tunnels "[$T1, $T2]"
  wait_port "$EXTRA_PORT"
  api GET /tunnels; [ "$(json_get "$API_BODY" 'len(d)')" = 2 ] || fail "round $round: the added tunnel is not in the table: $API_BODY"
  api GET /clients; api GET /metrics
  put_tunnels "[$T1]"
  ! port_open "$EXTRA_PORT" || fail "round $round: the removed tunnel's port $EXTRA_PORT still accepts connections"
  api PUT /tunnels '[{"ListenPort": "bad"}]'   # invalid bodies free what they parsed too
  [ "$API_STATUS" = 400 ] || fail "invalid PUT answered $API_STATUS"
  wait "${BULK_PIDS[@]}"
  for i in 1 2; do [ "$(cat "$TEST_TMP/bulk.$round.$i")" = "$want" ] || fail "bulk download $round.$i corrupted"; done
  # reconnect: kill the link under tunnelc while a download runs; tunneld must see a new link
  links=$(grep -c 'client home1: connected from' "$TEST_TMP/tunneld.log")
  (curl -sS --max-time 30 -o /dev/null "http://127.0.0.1:$PUBLIC_PORT/bulk.bin" 2>/dev/null || true) &
  CURL_PID=$!; TEST_PIDS+=("$!")
  ss -K dst 127.0.0.1 dport = ":$CONTROL_PORT" >/dev/null 2>&1 || stop_tunnelc home1 KILL
  wait "$CURL_PID" || true
  kill -0 "$TUNNELC_PID_home1" 2>/dev/null || start_tunnelc home1 "[$BACKEND_PORT]" '{}' "$CLIENT_LIMITS"
  wait_until 20 bash -c "[ \$(grep -c 'client home1: connected from' '$TEST_TMP/tunneld.log') -gt $links ]" ||
    fail "round $round: no new link after the old one was killed"
  wait_client_connected home1
  wait_until 15 bash -c "[ \"\$(curl -sS --max-time 5 http://127.0.0.1:$PUBLIC_PORT/index.html)\" = small ]" ||
    fail "no traffic after reconnect $round"
done
echo "mixed run: 3 rounds (2 x 16 MiB + 1500 small requests + PUTs + a link killed mid-download each) in $(( $(now_ms) - t0 )) ms"
links=$(grep -c 'client home1: connected from' "$TEST_TMP/tunneld.log")
echo "client links accepted: $links"
[ "$links" -ge 4 ] || fail "expected the first link and 3 reconnects, tunneld accepted $links links"

stop_tunnelc home1
stop_tunneld
echo "exit status: tunneld $TUNNELD_STATUS, tunnelc $TUNNELC_STATUS"
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS"
[ "$TUNNELC_STATUS" = 0 ] || fail "tunnelc exited $TUNNELC_STATUS"
assert_clean_exit tunneld
assert_clean_exit tunnelc-home1
pass "mixed run under ASan/UBSan: both exit 0 on SIGTERM, no LeakSanitizer/AddressSanitizer/runtime error report"
