#!/usr/bin/env bash
# ServerHost as a name (docs/CONFIG.md): "every address it yields (IPv6 and IPv4) is tried". The name resolves to
# ::1 and 127.0.0.1 through a hosts file private to tunnelc (a mount namespace, so the machine's /etc/hosts is
# untouched); tunneld listens on one of the two, then on the other. Whatever order the resolver gives, tunnelc
# must reach tunneld within its first round of attempts (no "cannot connect" backoff line), and in the run where
# tunneld is on the second address the log shows the failed attempt on the first. The name is not in the
# server certificate, so ServerName ("localhost") is what is verified.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

NAME=tunnel-multi.test
printf '::1 %s\n127.0.0.1 %s\n' "$NAME" "$NAME" >"$TEST_TMP/hosts"
# Root (as CI runs) can give one process its own /etc/hosts; elsewhere the name cannot have two addresses.
if ! order=$(unshare -m --propagation private sh -c 'mount --bind "$0" /etc/hosts && getent ahosts "$1"' \
  "$TEST_TMP/hosts" "$NAME" 2>&1); then
  echo "SKIP: ${TEST_NAME}: no private /etc/hosts here (unshare/mount as $(id -un): $(head -n 1 <<<"$order"))"
  pass "SKIP (cannot give tunnelc a private hosts file)"
  exit 0
fi
echo "resolver order for $NAME:"; awk '$2 == "STREAM" { print "  " $1 }' <<<"$order"

make_pki
BACKEND=$(free_port) PUBLIC=$(free_port) CONTROL_PORT=$(free_port) MGMT_PORT=$(free_port)
start_marker_nginx nginx "$BACKEND" multi
# The management port follows ListenAddress; the fixture's api() speaks to 127.0.0.1.
API_HOST=127.0.0.1
api() {
  local out="$TEST_TMP/api.out"
  API_STATUS=$(curl -sS -o "$out" -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
    --key "$PKI/admin.key" -X "$1" ${3:+-H 'Content-Type: application/json' --data-binary "$3"} \
    "https://$API_HOST:$MGMT_PORT$2" 2>"$TEST_TMP/api.err") || API_STATUS=000
  API_BODY=$(cat "$out" 2>/dev/null || true)
}
shown() { if [ "$1" = ::1 ]; then echo '\[::1\]'; else echo '127\.0\.0\.1'; fi; }
fallbacks=0 run=0
for addr in 127.0.0.1 ::1; do
  run=$((run + 1))
  [ "$addr" = ::1 ] && other=127.0.0.1 || other=::1
  [ "$addr" = ::1 ] && API_HOST="[::1]" || API_HOST=127.0.0.1
  write_tunneld_config
  sed -i "s/\"ListenAddress\": \"127.0.0.1\"/\"ListenAddress\": \"$addr\"/" "$TEST_TMP/tunneld.json"
  spawn_checked tunneld "$TUNNELD" --config "$TEST_TMP/tunneld.json" --init-state
  TUNNELD_PID=$SPAWNED_PID
  wait_until 15 api_ping || fail "tunneld did not start on $addr"
  ! port_open "$CONTROL_PORT" "$other" || fail "tunneld with ListenAddress $addr also listens on $other"

  cat >"$TEST_TMP/tunnelc-run$run.json" <<JSON
{
  "ServerHost": "$NAME",
  "ServerName": "localhost",
  "ServerTunnelControlPort": $CONTROL_PORT,
  "CaCertificateFile": "$PKI/ca.crt",
  "ClientTlsCertificateFile": "$PKI/home1.crt",
  "ClientTlsKeyFile": "$PKI/home1.key",
  "AllowedBackEndPorts": [$BACKEND],
  "DebugLog": true,
  "Limits": $FAST_CLIENT_LIMITS
}
JSON
  spawn_checked "tunnelc-run$run" unshare -m --propagation private sh -c \
    'mount --bind "$0" /etc/hosts && exec "$1" --config "$2"' "$TEST_TMP/hosts" "$TUNNELC" "$TEST_TMP/tunnelc-run$run.json"
  printf -v "TUNNELC_PID_run$run" '%s' "$SPAWNED_PID"
  log=$TEST_TMP/tunnelc-run$run.log
  wait_log "$log" "client home1: connected to $(shown "$addr"):$CONTROL_PORT \(server certificate CN server\)" 30
  ! grep -q "cannot connect to" "$log" || fail "tunneld on $addr was reached only after a backoff: $(grep 'cannot connect' "$log")"
  if grep -qE "client home1: attempt to $(shown "$other"):$CONTROL_PORT failed" "$log"; then
    fallbacks=$((fallbacks + 1))
    echo "tunneld on $addr: $(grep -m1 -E "attempt to $(shown "$other")" "$log" | sed 's/.*client home1: //'), then connected"
  else
    echo "tunneld on $addr: reached on the first address"
  fi
  wait_client_connected home1
  put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND}]"
  wait_port "$PUBLIC"
  [ "$(http_get_marker 127.0.0.1 "$PUBLIC")" = multi ] || fail "no traffic through tunnelc connected to $addr"
  stop_checked "run$run" tunneld
  rm -f "$STATE_FILE"
done
[ "$fallbacks" = 1 ] || fail "expected exactly one run to try the other address first, saw $fallbacks"
pass "ServerHost with two addresses: tunneld reached on 127.0.0.1 and on ::1 in the first round, the other address tried first once"
