#!/usr/bin/env bash
# MaxFramePayload and MaxWindow (docs/CONFIG.md, both programs): a value outside its range is a configuration error
# naming the file and the field; and tunnelc's configured values govern what it puts on the wire, as seen by an
# independent peer (tests/interop/old_tunneld reads every frame): no Data frame longer than MaxFramePayload, and
# no stream's send window granted beyond MaxWindow, while windows do grow past the initial 256 KiB (so the cap is
# what stops them). The peer holds tunnelc's pings 300 ms, so tunnelc's measured round trip, and with it the
# auto-tuning rule "half the window used within two round trips", does not depend on the machine's speed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

make_pki
CONTROL_PORT=$(free_port) MGMT_PORT=$(free_port)
write_tunneld_config
cat >"$TEST_TMP/tunnelc-home1.json" <<JSON
{
  "ServerHost": "127.0.0.1",
  "ServerTunnelControlPort": $CONTROL_PORT,
  "CaCertificateFile": "$PKI/ca.crt",
  "ClientTlsCertificateFile": "$PKI/home1.crt",
  "ClientTlsKeyFile": "$PKI/home1.key",
  "AllowedBackEndPorts": [1]
}
JSON
bad_value() {  # PROGRAM CONFIG KEY VALUE RANGE
  local prog=$1 cfg=$2 key=$3 value=$4 range=$5 out rc=0
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.setdefault("Limits",{})[sys.argv[3]]=int(sys.argv[4]); json.dump(d,open(sys.argv[2],"w"))' \
    "$cfg" "$TEST_TMP/bad.json" "$key" "$value"
  out=$("$prog" --config "$TEST_TMP/bad.json" --check-config 2>&1) || rc=$?
  echo "$(basename "$prog") $key $value -> exit $rc: $out"
  [ "$rc" = 1 ] || fail "$(basename "$prog") accepted $key $value (exit $rc)"
  grep -qF "$TEST_TMP/bad.json: \"Limits.$key\": must be an integer $range, got $value" <<<"$out" ||
    fail "$(basename "$prog")'s message for $key $value does not name file, field, range and value: $out"
}
for prog in "$TUNNELD:$TEST_TMP/tunneld.json" "$TUNNELC:$TEST_TMP/tunnelc-home1.json"; do
  bad_value "${prog%%:*}" "${prog#*:}" MaxFramePayload 1023 1024-1048576
  bad_value "${prog%%:*}" "${prog#*:}" MaxFramePayload 1048577 1024-1048576
  bad_value "${prog%%:*}" "${prog#*:}" MaxWindow 262143 262144-1073741824
  bad_value "${prog%%:*}" "${prog#*:}" MaxWindow 1073741825 262144-1073741824
done

UP=$((24 * 1024 * 1024)) DOWN=$((4 * 1024 * 1024))
BACKEND=$(free_port)
spawn backend $NET eof-then-answer "$BACKEND" "$DOWN"
wait_port "$BACKEND"
# run LABEL LIMITS_JSON: one tunnelc against a fresh peer, one visitor up and down; sets PAYLOAD and WINDOW.
run() {
  local label=$1 limits=$2 out
  start_old_tunneld "peer-$label" --backend-port "$BACKEND" --pong-delay-ms 300
  CONTROL_PORT=$OLD_CONTROL
  start_tunnelc_as "$label" "$PKI/home1.crt" "$PKI/home1.key" "[$BACKEND]" '{}' "$limits"
  # A round trip measured before the transfer: tunnelc pings after KeepaliveIntervalMs of silence.
  wait_log "$TEST_TMP/peer-$label.log" "^ping from tunnelc, answered after 300 ms" 30
  out=$($NET half-close-user "$OLD_PUBLIC" "$UP" "$DOWN") || fail "$label: the visitor failed: $out"
  wait_log "$TEST_TMP/peer-$label.log" " ended: sent $UP to tunnelc, received $((DOWN + 1 + ${#DIGEST_LINE})) from tunnelc"
  PAYLOAD=$(awk '/^max client data payload/ { v = $NF } END { print v + 0 }' "$TEST_TMP/peer-$label.log")
  WINDOW=$(awk '/^peak granted window/ { v = $NF } END { print v + 0 }' "$TEST_TMP/peer-$label.log")
  echo "$label ($limits): largest Data frame from tunnelc $PAYLOAD bytes, largest window granted $WINDOW bytes"
  stop_checked "$label"
}
# The backend's answer starts with "got N SHA256" (64 hex digits) and a newline.
DIGEST_LINE="got $UP 0000000000000000000000000000000000000000000000000000000000000000"

# The dead-peer timeout leaves room for the held pings.
LIMITS='{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 10000, "DrainTimeoutMs": 3000, "ReconnectMinMs": 100, "ReconnectMaxMs": 1000'
run small "$LIMITS, \"MaxFramePayload\": 1024, \"MaxWindow\": 1048576}"
[ "$PAYLOAD" = 1024 ] || fail "MaxFramePayload 1024: the largest Data frame tunnelc sent was $PAYLOAD bytes"
[ "$WINDOW" -le 1048576 ] || fail "MaxWindow 1 MiB: tunnelc granted a window of $WINDOW bytes"
[ "$WINDOW" -gt 524288 ] || fail "MaxWindow 1 MiB: the window never grew past $WINDOW bytes, so the cap was not tested"
small_window=$WINDOW
run default "$LIMITS}"
[ "$PAYLOAD" = 16384 ] || fail "default MaxFramePayload 16384: the largest Data frame tunnelc sent was $PAYLOAD bytes"
[ "$WINDOW" -le 16777216 ] || fail "default MaxWindow 16 MiB: tunnelc granted a window of $WINDOW bytes"
[ "$WINDOW" -gt 1048576 ] || fail "default MaxWindow 16 MiB: the window stopped at $WINDOW bytes, as if capped at 1 MiB"
pass "MaxFramePayload and MaxWindow: out-of-range values refused by both programs; tunnelc's frames at most 1024/16384 bytes and windows at most 1 MiB ($small_window) / 16 MiB ($WINDOW) as configured"
