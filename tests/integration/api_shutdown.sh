#!/usr/bin/env bash
# SIGHUP and SIGTERM on tunneld. SIGHUP with a re-issued server certificate: new handshakes present the new
# certificate, the established client link stays up. SIGTERM during a download: the public port stops accepting
# at once, the download finishes intact within DrainTimeoutMs, tunneld exits 0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

DRAIN_MS=20000
make_pki
start_tunneld "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 2000, \"DrainTimeoutMs\": $DRAIN_MS, \"ReplacedLinkGraceMs\": 3000}"
BACKEND_PORT=$(free_port)
PUBLIC_PORT=$(free_port)
SIZE_MB=48
RATE=12m   # nginx sends at this rate (limit_rate), so the conversation inside tunneld spans the event;
           # a rate-limited reader would not do: the kernel buffers tens of MiB on loopback
mkdir -p "$TEST_TMP/www"
echo "shutdown backend" >"$TEST_TMP/www/index.html"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$TEST_TMP/www/big.bin"
want=$(sha256sum <"$TEST_TMP/www/big.bin" | cut -d' ' -f1)
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT" "limit_rate $RATE;"
start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"

# ---- SIGHUP: a re-issued server certificate ----
# served_fingerprint PORT: SHA-256 fingerprint of the certificate tunneld presents in a new handshake.
# Each port gets the identity it serves: admin on the management port, a client (home3) on the control port.
served_fingerprint() {
  local who=admin
  [ "$1" = "$CONTROL_PORT" ] && who=home3
  { openssl s_client -connect "127.0.0.1:$1" -CAfile "$PKI/ca.crt" -cert "$PKI/$who.crt" -key "$PKI/$who.key" \
      </dev/null 2>/dev/null || true; } | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}
file_fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
old_fp=$(file_fingerprint "$PKI/server.crt")
[ "$(served_fingerprint "$MGMT_PORT")" = "$old_fp" ] || fail "the management port does not serve server.crt"
[ "$(served_fingerprint "$CONTROL_PORT")" = "$old_fp" ] || fail "the control port does not serve server.crt"
api GET /clients
since_before=$(json_get "$API_BODY" 'd["home1"]["ConnectedSince"]')
remote_before=$(json_get "$API_BODY" 'd["home1"]["RemoteAddress"]')

mkdir -p "$TEST_TMP/reissue"
"$TUNNELD" pki issue "$PKI" --name server-new --server --ip 127.0.0.1 --ip ::1 --dns localhost >/dev/null
cp "$PKI/server-new.key" "$PKI/server.key.tmp" && mv "$PKI/server.key.tmp" "$PKI/server.key"
cp "$PKI/server-new.crt" "$PKI/server.crt.tmp" && mv "$PKI/server.crt.tmp" "$PKI/server.crt"
new_fp=$(file_fingerprint "$PKI/server.crt")
[ "$new_fp" != "$old_fp" ] || fail "the re-issued certificate has the old fingerprint"
kill -HUP "$TUNNELD_PID"
wait_log "$TEST_TMP/tunneld.log" 'certificates and CA reloaded'
got_mgmt=$(served_fingerprint "$MGMT_PORT")
got_control=$(served_fingerprint "$CONTROL_PORT")
echo "server certificate before SIGHUP $old_fp"
echo "after SIGHUP: management port serves $got_mgmt, control port $got_control"
[ "$got_mgmt" = "$new_fp" ] || fail "after SIGHUP the management port serves $got_mgmt, not the new $new_fp"
[ "$got_control" = "$new_fp" ] || fail "after SIGHUP the control port serves $got_control, not the new $new_fp"
kill -0 "$TUNNELD_PID" || fail "tunneld died on SIGHUP"
api GET /clients
[ "$(json_get "$API_BODY" 'd["home1"]["CurrentState"]')" = ClientConnected ] || fail "home1 dropped by SIGHUP: $API_BODY"
[ "$(json_get "$API_BODY" 'd["home1"]["ConnectedSince"]')" = "$since_before" ] &&
  [ "$(json_get "$API_BODY" 'd["home1"]["RemoteAddress"]')" = "$remote_before" ] ||
  fail "home1's link was replaced by SIGHUP: $API_BODY (was since $since_before from $remote_before)"
[ "$(grep -c 'client home1: connected from' "$TEST_TMP/tunneld.log")" = 1 ] || fail "home1 reconnected after SIGHUP"
body=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/index.html")
[ "$body" = "shutdown backend" ] || fail "through the tunnel after SIGHUP: got '$body'"
pass "SIGHUP: new handshakes present the re-issued certificate; the established client link stays up and carries data"

# ---- SIGTERM during a download ----
t0=$(now_ms)
curl -sS --max-time 60 -o "$TEST_TMP/download.bin" "http://127.0.0.1:$PUBLIC_PORT/big.bin" \
  2>"$TEST_TMP/download.err" &
DL_PID=$!
TEST_PIDS+=("$DL_PID")
downloaded_some() { [ "$(stat -c %s "$TEST_TMP/download.bin" 2>/dev/null || echo 0)" -ge $((4 * 1024 * 1024)) ]; }
wait_until 20 downloaded_some || fail "the download did not start"
api GET /tunnels
[ "$(json_get "$API_BODY" 'd[0]["OpenConnections"]')" -ge 1 ] || fail "tunneld no longer carries the download: $API_BODY"
kill -TERM "$TUNNELD_PID"
t_term=$(now_ms)
at_term=$(stat -c %s "$TEST_TMP/download.bin")
kill -0 "$DL_PID" 2>/dev/null || fail "the download finished before SIGTERM; the test proves nothing"
public_closed() { ! port_open "$PUBLIC_PORT"; }
wait_until 2 public_closed || fail "the public port still accepts connections after SIGTERM"
t_closed=$(now_ms)
echo "SIGTERM with $((at_term / 1024 / 1024)) of $SIZE_MB MiB downloaded; public port closed $((t_closed - t_term)) ms later"
! port_open "$MGMT_PORT" || fail "the management port still accepts connections after SIGTERM"
kill -0 "$TUNNELD_PID" 2>/dev/null || fail "tunneld exited before the download finished"

wait "$DL_PID" || fail "the download failed during the drain: $(cat "$TEST_TMP/download.err")"
t_done=$(now_ms)
got=$(sha256sum <"$TEST_TMP/download.bin" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "download corrupted by the shutdown: $(stat -c %s "$TEST_TMP/download.bin") bytes"
echo "download finished intact $((t_done - t_term)) ms after SIGTERM (DrainTimeoutMs $DRAIN_MS)"
[ $((t_done - t_term)) -lt "$DRAIN_MS" ] || fail "the download outlived DrainTimeoutMs"
stop_tunneld TERM   # waits for the exit (a second TERM while draining changes nothing)
t_exit=$(now_ms)
echo "tunneld exited with status $TUNNELD_STATUS $((t_exit - t_done)) ms after the download ended"
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS after SIGTERM"
[ $((t_exit - t_done)) -lt 5000 ] || fail "tunneld lingered $((t_exit - t_done)) ms after its last connection ended"
grep -q 'server: stopped' "$TEST_TMP/tunneld.log" || fail "no 'stopped' log line"
pass "SIGTERM: port closed at once, running download finished intact within DrainTimeoutMs, exit 0"
