#!/usr/bin/env bash
# Per-stream flow control: internet users reading very slowly (1 KiB every 100 ms) from a large download do
# not slow a bulk download on another stream of the same link. The bulk download is timed alone and beside four
# slow readers, interleaved three times (alone, beside, alone, beside, ...) so that both are measured under the same
# machine load; the best beside must stay within a generous factor of the best alone. Without per-stream windows
# the slow streams would fill the link and the bulk download would crawl at their pace (minutes, not a factor).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

SLOW_READERS=4
FACTOR=3
# Memory: each slow stream may hold its window (256 KiB) and a bounded write queue on each side; without those
# bounds the backend's 64 MiB per slow reader would pile up in tunnelc or tunneld (4 x 64 MiB). 48 MiB of growth
# separates the two by far. ASan keeps freed memory in quarantine (256 MiB by default), which would count the
# bulk downloads' freed buffers as resident: a small quarantine keeps RSS about live memory.
MAX_GROWTH_KB=$((48 * 1024))
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"

make_pki
start_tunneld
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port)
mkdir -p "$TEST_TMP/www"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$TEST_TMP/www/huge.bin"
head -c $((32 * 1024 * 1024)) /dev/urandom >"$TEST_TMP/www/big.bin"
want=$(sha256sum <"$TEST_TMP/www/big.bin" | cut -d' ' -f1)
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT"
start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"

fast_download() {
  local t0 got
  t0=$(now_ms)
  got=$(curl -sS --max-time 240 "http://127.0.0.1:$PUBLIC_PORT/big.bin" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "fast download checksum mismatch ($1)"
  echo $(( $(now_ms) - t0 ))
}

open_connections() {
  api GET /tunnels && python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d[0]["OpenConnections"] >= int(sys.argv[2]) else 1)' "$API_BODY" "$1"
}
no_connections() {
  api GET /tunnels && [ "$(json_get "$API_BODY" 'd[0]["OpenConnections"]')" = 0 ]
}
start_slow_readers() {
  slow_pids=()
  for i in $(seq 1 "$SLOW_READERS"); do
    spawn "slow$1.$i" $NET slow-get "$PUBLIC_PORT" /huge.bin 1024 100 300
    slow_pids+=("$SPAWNED_PID")
  done
  wait_until 30 open_connections "$SLOW_READERS" || fail "slow readers did not connect"
}
stop_slow_readers() {
  for pid in "${slow_pids[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a slow reader ended early (see its log)"; done
  kill "${slow_pids[@]}" 2>/dev/null || true
  for pid in "${slow_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  wait_until 30 no_connections || fail "the slow readers' connections did not close"
}

fast_download warm-up >/dev/null
base_d=$(rss_kb "$TUNNELD_PID") base_c=$(rss_kb "$TUNNELC_PID_home1") peak_d=0 peak_c=0
alone=0 beside=0 figures=""
for round in 1 2 3; do
  a=$(fast_download alone)
  start_slow_readers "$round"
  # Their streams' windows fill within a fraction of a second; every slow stream now holds data both ends of
  # the link cannot deliver.
  b=$(fast_download "beside slow readers")
  # Sampled while the slow streams are still open and full: whatever they buffer is resident now.
  r=$(rss_kb "$TUNNELD_PID"); [ "$r" -le "$peak_d" ] || peak_d=$r
  r=$(rss_kb "$TUNNELC_PID_home1"); [ "$r" -le "$peak_c" ] || peak_c=$r
  stop_slow_readers
  figures="$figures $a/$b"
  { [ "$alone" = 0 ] || [ "$a" -lt "$alone" ]; } && alone=$a
  { [ "$beside" = 0 ] || [ "$b" -lt "$beside" ]; } && beside=$b
done
echo "32 MiB alone/beside $SLOW_READERS slow readers, ms per round:$figures (best $alone / $beside, allowed factor $FACTOR + 2 s)"
[ "$beside" -le $((alone * FACTOR + 2000)) ] || fail "bulk stream slowed from $alone ms to $beside ms by slow readers"
echo "RSS KiB after the warm-up / peak beside the slow readers: tunneld $base_d / $peak_d, tunnelc $base_c / $peak_c"
[ $((peak_d - base_d)) -le "$MAX_GROWTH_KB" ] || fail "tunneld grew by $((peak_d - base_d)) KiB beside $SLOW_READERS slow readers"
[ $((peak_c - base_c)) -le "$MAX_GROWTH_KB" ] || fail "tunnelc grew by $((peak_c - base_c)) KiB beside $SLOW_READERS slow readers"

client_connected home1 || fail "link lost"
api GET /tunnels
echo "tunnel while slow readers are open: $API_BODY"
# Both programs must also shut down cleanly after all that.
stop_checked home1 tunneld
pass "slow readers do not slow a bulk stream ($alone ms alone, $beside ms beside them) nor grow memory past $((MAX_GROWTH_KB / 1024)) MiB"
