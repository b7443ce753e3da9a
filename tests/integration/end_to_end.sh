#!/usr/bin/env bash
# tunneld and tunnelc carry real HTTP (nginx) end to end: PUT a tunnel, fetch small and large files, checksums match.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld
BACKEND_PORT=$(free_port)
PUBLIC_PORT=$(free_port)

mkdir -p "$TEST_TMP/www" "$TEST_TMP/nginx"
echo "hello through the tunnel" >"$TEST_TMP/www/index.html"
head -c $((32 * 1024 * 1024)) /dev/urandom >"$TEST_TMP/www/big.bin"
cat >"$TEST_TMP/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $TEST_TMP/nginx/nginx.pid; error_log $TEST_TMP/nginx/error.log;
events { worker_connections 256; }
http {
  access_log $TEST_TMP/nginx/access.log;
  client_body_temp_path $TEST_TMP/nginx; proxy_temp_path $TEST_TMP/nginx; fastcgi_temp_path $TEST_TMP/nginx;
  uwsgi_temp_path $TEST_TMP/nginx; scgi_temp_path $TEST_TMP/nginx;
  server { listen 127.0.0.1:$BACKEND_PORT; root $TEST_TMP/www; }
}
CONF
spawn nginx nginx -c "$TEST_TMP/nginx/nginx.conf" -p "$TEST_TMP/nginx"
wait_port "$BACKEND_PORT"

start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"

body=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/index.html")
[ "$body" = "hello through the tunnel" ] || fail "small page through the tunnel: got '$body'"

want=$(sha256sum <"$TEST_TMP/www/big.bin" | cut -d' ' -f1)
t0=$(now_ms)
got=$(curl -sS --max-time 60 "http://127.0.0.1:$PUBLIC_PORT/big.bin" | sha256sum | cut -d' ' -f1)
t1=$(now_ms)
[ "$got" = "$want" ] || fail "32 MiB download checksum mismatch"
echo "32 MiB through the tunnel (ASan build) in $((t1 - t0)) ms"

# Keep-alive: several requests on one public connection.
# curl reports how many connections each transfer opened (the second must reuse the first's), and tunneld must
# have carried exactly one new public connection for both.
accepted() { grep -cE "tunnel port $PUBLIC_PORT: 127\.0\.0\.1:[0-9]+ -> client home1" "$TEST_TMP/tunneld.log" || true; }
before=$(accepted)
connects=$(curl -sS --max-time 10 -w '%{num_connects} ' -o "$TEST_TMP/ka1" -o "$TEST_TMP/ka2" \
             "http://127.0.0.1:$PUBLIC_PORT/index.html" "http://127.0.0.1:$PUBLIC_PORT/index.html")
for f in ka1 ka2; do [ "$(cat "$TEST_TMP/$f")" = "hello through the tunnel" ] || fail "keep-alive request $f: got '$(cat "$TEST_TMP/$f")'"; done
[ "$connects" = "1 0 " ] || fail "keep-alive: curl opened '$connects' connections for its two requests (want '1 0 ')"
wait_until 10 bash -c "[ \$(grep -cE 'tunnel port $PUBLIC_PORT: 127\.0\.0\.1:[0-9]+ -> client home1' '$TEST_TMP/tunneld.log') -ge $((before + 1)) ]" || fail "tunneld logged no public connection"
[ "$(accepted)" = $((before + 1)) ] || fail "keep-alive: tunneld carried $(( $(accepted) - before )) connections for two requests on one"

api GET /tunnels
grep -q '"ActiveClient":"home1"' <<<"$API_BODY" || fail "GET /tunnels lacks ActiveClient home1: $API_BODY"

# Counters are live: a download still running shows its bytes in GET /clients.
spawn slow_download curl -sS --limit-rate 1M -o /dev/null "http://127.0.0.1:$PUBLIC_PORT/big.bin"
slow_pid=$SPAWNED_PID
before=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["home1"]["BytesOut"])' "$(api GET /clients; echo "$API_BODY")")
bytes_grew() {
  api GET /clients
  python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["home1"]["BytesOut"] > int(sys.argv[2]) + 1048576 else 1)' "$API_BODY" "$before"
}
wait_until 20 bytes_grew || fail "GET /clients BytesOut did not grow during an open download"
kill -0 "$slow_pid" 2>/dev/null || fail "the slow download ended before the check; the check proved nothing"
kill "$slow_pid"
pass "HTTP small, 32 MiB and keep-alive through tunneld+tunnelc"
