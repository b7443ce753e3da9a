#!/usr/bin/env bash
# SIGHUP and SIGTERM on tunneld. SIGHUP with a re-issued server certificate: new handshakes present the new
# certificate, the established client link stays up. SIGTERM during a download: the public port stops accepting
# at once, the download finishes intact, tunneld then exits 0 by itself. SIGTERM with a download that never ends:
# tunneld resets it when DrainTimeoutMs is over and exits 0. A second SIGTERM during the drain ends it at once,
# still with status 0. Downloads are held open by their backend (tools/stream_server.py) until the test ends them.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

# Long enough that no check below races it on a loaded machine; the drain's end is tested with its own short value.
DRAIN_MS=60000
SHORT_DRAIN_MS=2000
limits() {
  echo "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 2000, \"DrainTimeoutMs\": $1, \"ReplacedLinkGraceMs\": 3000}"
}
make_pki
start_tunneld "$(limits "$DRAIN_MS")"
BACKEND_PORT=$(free_port)
PUBLIC_PORT=$(free_port)
start_stream_server web "$BACKEND_PORT" "shutdown backend"
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

# wait_exit SECONDS: waits for tunneld to exit by itself; its status in $TUNNELD_STATUS.
tunneld_running() { kill -0 "$TUNNELD_PID" 2>/dev/null; }
wait_exit() {
  wait_until "$1" eval '! tunneld_running' || fail "tunneld still running $1 s after SIGTERM"
  TUNNELD_STATUS=0
  wait "$TUNNELD_PID" 2>/dev/null || TUNNELD_STATUS=$?
}
check_stopped_cleanly() {
  [ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS after SIGTERM ($1)"
  assert_clean_exit tunneld
  grep -q 'server: stopped' "$TEST_TMP/tunneld.log" || fail "no 'stopped' log line ($1)"
}
restart_with_download() {
  start_tunneld "$(limits "$1")"
  wait_client_connected home1
  wait_port "$PUBLIC_PORT"
  start_held_download "$2" "$PUBLIC_PORT"
}

# ---- SIGTERM during a download ----
start_held_download dl1 "$PUBLIC_PORT"
api GET /tunnels
[ "$(json_get "$API_BODY" 'd[0]["OpenConnections"]')" -ge 1 ] || fail "tunneld no longer carries the download: $API_BODY"
kill -TERM "$TUNNELD_PID"
t_term=$(now_ms)
public_closed() { ! port_open "$PUBLIC_PORT"; }
# "At once" is an event (the listener is closed in the signal's callback); 10 s only bounds a loaded machine.
wait_until 10 public_closed || fail "the public port still accepts connections after SIGTERM"
t_closed=$(now_ms)
echo "SIGTERM with $(($(held_download_bytes dl1) / 1024)) KiB downloaded; public port closed $((t_closed - t_term)) ms later"
! port_open "$MGMT_PORT" || fail "the management port still accepts connections after SIGTERM"
at_term=$(held_download_bytes dl1)
wait_until 30 held_download_has_bytes dl1 "$((at_term + 1024 * 1024))" || fail "the download stalled during the drain"
tunneld_running || fail "tunneld exited before the download finished"
finish_held_download dl1
t_done=$(now_ms)
wait_exit 30
t_exit=$(now_ms)
echo "download finished intact ($((HELD_BYTES / 1024)) KiB); tunneld exited with status $TUNNELD_STATUS $((t_exit - t_done)) ms later"
check_stopped_cleanly "after its last connection ended"
pass "SIGTERM: port closed at once, running download finished intact, exit 0 when it ended"

# ---- SIGTERM with a download that outlives DrainTimeoutMs ----
restart_with_download "$SHORT_DRAIN_MS" dl2
kill -TERM "$TUNNELD_PID"
t_term=$(now_ms)
wait_exit 30
t_exit=$(now_ms)
echo "drain of $SHORT_DRAIN_MS ms: tunneld exited with status $TUNNELD_STATUS $((t_exit - t_term)) ms after SIGTERM"
check_stopped_cleanly "at the drain timeout"
# Whichever deadline is seen first (the client link's or the public listener's), the log says it was the drain.
grep -qE "client home1: old link from .* closed: drain timeout|tunnel port $PUBLIC_PORT: drain timeout" "$TEST_TMP/tunneld.log" ||
  fail "no drain-timeout line"
# The drain lasted at least its timeout (the clock only runs forward; no upper bound on a loaded machine).
[ $((t_exit - t_term)) -ge "$SHORT_DRAIN_MS" ] || fail "tunneld exited after $((t_exit - t_term)) ms, before DrainTimeoutMs"
wait_until 30 eval '! held_download_running dl2' || fail "the download outlived tunneld"
pass "SIGTERM: a connection past DrainTimeoutMs is reset and tunneld exits 0"

# ---- a second SIGTERM ends the drain at once ----
restart_with_download "$DRAIN_MS" dl3
kill -TERM "$TUNNELD_PID"
wait_log "$TEST_TMP/tunneld.log" 'server: stopping'
tunneld_running || fail "tunneld exited with a download open and a 60 s drain"
kill -TERM "$TUNNELD_PID"
t_second=$(now_ms)
wait_exit 30
t_exit=$(now_ms)
echo "second SIGTERM: tunneld exited with status $TUNNELD_STATUS $((t_exit - t_second)) ms later (drain was $DRAIN_MS ms)"
check_stopped_cleanly "after a second SIGTERM"
grep -q 'server: stop signal during the drain; closing the remaining connections now' "$TEST_TMP/tunneld.log" ||
  fail "no log line for the second SIGTERM"
pass "a second SIGTERM ends the drain at once with exit 0"
