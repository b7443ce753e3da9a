#!/usr/bin/env bash
# A BackEndPort whose service listens on [::1] only is reached through the documented fallback
# (127.0.0.1 refused -> [::1] once), and a port nobody listens on still fails promptly.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld
V6_PORT=$(free_port)
DEAD_PORT=$(free_port)
PUB1=$(free_port)
PUB2=$(free_port)
mkdir -p "$TEST_TMP/www"
echo "served from ::1" >"$TEST_TMP/www/index.html"
spawn httpd6 python3 -m http.server "$V6_PORT" --bind ::1 --directory "$TEST_TMP/www"
wait_port "$V6_PORT" ::1
start_tunnelc home1 "[$V6_PORT, $DEAD_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUB1, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $V6_PORT},
              {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUB2, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $DEAD_PORT}]"
wait_port "$PUB1"
body=$(curl -sS --max-time 10 "http://127.0.0.1:$PUB1/index.html") || fail "request to the [::1]-only backend failed"
[ "$body" = "served from ::1" ] || fail "unexpected body '$body'"
t0=$(now_ms)
if curl -sS --max-time 5 "http://127.0.0.1:$PUB2/" >/dev/null 2>&1; then fail "a port with no listener answered"; fi
t1=$(now_ms)
# Refused on both addresses is immediate; 4.5 s stays below DialTimeoutMs (5 s), which a retry would have hit.
[ $((t1 - t0)) -lt 4500 ] || fail "refused backend took $((t1 - t0)) ms to fail"
echo "[::1] fallback served; refused-on-both failed in $((t1 - t0)) ms"
pass "loopback fallback from 127.0.0.1 to [::1]"
