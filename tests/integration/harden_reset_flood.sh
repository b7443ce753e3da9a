#!/usr/bin/env bash
# Data for a stream tunneld has reset skips no flow control: a client that keeps sending on it after the reset is
# cut off with GoAway(protocol error) once it passes what the stream's window still allowed, and only its link
# closes: another client carries traffic the whole time, and stays connected.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

HOSTILE="$TUNNEL_TOOLS/hostile_client"
make_pki
start_tunneld
start_good_and_bad_tunnels

spawn flood "$HOSTILE" --port "$CONTROL_PORT" --ca "$PKI/ca.crt" --cert "$PKI/home2.crt" --key "$PKI/home2.key" \
  --mode reset-flood --seconds 20
FLOOD_PID=$SPAWNED_PID
wait_log "$TEST_TMP/flood.log" established
wait_client_connected home2

# A public user connects to the hostile client's tunnel, then resets its connection once the stream is acknowledged:
# tunneld resets the stream, which the hostile client then floods.
spawn user python3 -c '
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
deadline = time.time() + 15
while time.time() < deadline and "acked" not in open(sys.argv[2]).read():
    time.sleep(0.05)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()' "$BAD_PORT" "$TEST_TMP/flood.log"

# The good client under load meanwhile.
load=$(run_http_load 127.0.0.1 "$GOOD_PORT" 4 4)
wait "$FLOOD_PID" || fail "hostile_client reset-flood failed (see flood.log)"
out=$(grep '^result:' "$TEST_TMP/flood.log")
echo "reset-stream flood: $out"
echo "good client during the flood: $load"
case $out in "result: closed"*) ;; *) fail "the flooding client's link was not closed: $out" ;; esac
sent=$(sed -E 's/.*sent_bytes=([0-9]+).*/\1/' <<<"$out")
# tunneld accepts at most the reset stream's remaining window (256 KiB here) plus credit banked from earlier resets
# (none here; never more than MaxWindow, 16 MiB); the rest of what the client wrote sat in socket buffers.
# 64 MiB is a loose bound that still fails by orders of magnitude when nothing stops the flood.
[ "$sent" -le $((64 * 1024 * 1024)) ] || fail "the flooding client sent $sent bytes before being cut off"
grep -q 'go_away=1' <<<"$out" || echo "note: the GoAway was not read before the socket closed: $out"
wait_log "$TEST_TMP/tunneld.log" 'client home2: disconnected .*protocol error from peer: data for closed streams beyond'
[ "$(json_get "$load" 'd["failed"]')" = 0 ] && [ "$(json_get "$load" 'd["ok"]')" -gt 0 ] ||
  fail "the good client's traffic failed during the flood: $load"
client_connected home1 || fail "the good client lost its link"
! grep -q 'client home1: disconnected' "$TEST_TMP/tunneld.log" || fail "the good client's link was closed"
[ "$(http_get_marker 127.0.0.1 "$GOOD_PORT")" = good ] || fail "good client unusable after the flood"

stop_checked tunneld home1
pass "reset-stream flood cut off after $sent bytes sent with GoAway; the other client's $(json_get "$load" 'd["ok"]') requests all succeeded"
