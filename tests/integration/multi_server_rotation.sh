#!/usr/bin/env bash
# multi_server_rotation: a client certificate rotation (docs/OPERATIONS.md section 7) with "Servers" naming two
# tunneld. home1 gets a new certificate for the same CN in place of its files and SIGHUP: each link announces it,
# a new link comes up beside each old one, each tunneld moves new connections over and sends its old link GoAway.
# Asserted, for each server: tunneld shows the new certificate; a download held open through it across the swap
# keeps moving on the old link and arrives whole; a probe opening a new connection every 50 ms through it sees no
# failure; the old link closes once its download ended; tunneld never took the new certificate for an impostor.
# The reload keeps both servers (no link removed or added by the configuration).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
issue_twin "$PKI/next" home1
NEW_FP=$(fingerprint "$PKI/next/home1.crt")
# The old links may drain for as long as the test holds their downloads: the bound is the operator's, not a race.
FAST_LIMITS='{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": 3000, "ReplacedLinkGraceMs": 120000}'
server_ports A B
BACKEND=$(free_port); PUBLIC_A=$(free_port); PUBLIC_B=$(free_port)
start_stream_server backend "$BACKEND" home
start_server A
start_server B
write_servers_tunnelc home1 "[\"127.0.0.1:$CONTROL_A\", \"127.0.0.1:$CONTROL_B\"]" "[$BACKEND]"
spawn_checked tunnelc-home1 "$TUNNELC" --config "$TEST_TMP/tunnelc-home1.json"
TUNNELC_PID_home1=$SPAWNED_PID
CLOG="$TEST_TMP/tunnelc-home1.log"
probe_has_ok_after() { probe_first_ok_after "$1" home "$2" >/dev/null; }
for s in A B; do
  p="PUBLIC_$s"
  route_on_server "$s" home1 "$BACKEND"
  start_held_download "dl$s" "${!p}"
  start_http_probe "probe$s" 127.0.0.1 "${!p}"
  printf -v "PROBE_PID_$s" '%s' "$SPAWNED_PID"
  wait_until 30 probe_has_ok_after "probe$s" 0 || fail "the probe through $s never got an answer"
done

cp "$PKI/next/home1.crt" "$PKI/home1.crt.new" && mv "$PKI/home1.crt.new" "$PKI/home1.crt"
cp "$PKI/next/home1.key" "$PKI/home1.key.new" && mv "$PKI/home1.key.new" "$PKI/home1.key"
t_hup=$(now_ms)
kill -HUP "$TUNNELC_PID_home1"
wait_log "$CLOG" "configuration reloaded .*servers: 2 kept, 0 added, 0 removed; new certificate"
new_cert_connected() { use_server "$1"; api GET /clients && [ "$(json_get "$API_BODY" 'd["home1"]["CertificateSha256"]')" = "$NEW_FP" ]; }
for s in A B; do
  c="CONTROL_$s" p="PUBLIC_$s"
  wait_until 20 new_cert_connected "$s" || fail "tunneld $s never saw the new certificate"
  printf -v "T_SWAP_$s" '%s' "$(now_ms)"
  wait_log "$TEST_TMP/tunneld-$s.log" "client home1: certificate rotation: the link from .* \(sha256 $NEW_FP\) takes over"
  wait_log "$CLOG" "client home1 \(server 127.0.0.1:${!c}\): tunneld moved new connections to the new link; the old link .* drains"
  # The held download is still running on the old link, and still moving.
  held_download_running "dl$s" || fail "the download through $s ended at the swap: $(cat "$TEST_TMP/dl$s.err")"
  before=$(held_download_bytes "dl$s")
  wait_until 20 held_download_has_bytes "dl$s" "$before" || fail "the download on $s's old link stalled after the swap"
  wait_until 30 probe_has_ok_after "probe$s" "$(now_ms)" || fail "no answer through $s after the rotation"
done
for s in A B; do
  c="CONTROL_$s" v="PROBE_PID_$s" w="T_SWAP_$s"
  touch "$TEST_TMP/probe$s.stop"
  wait "${!v}" 2>/dev/null || true
  finish_held_download "dl$s" home
  echo "server $s: held download across the rotation: $HELD_BYTES bytes, all verified"
  wait_log "$CLOG" "client home1 \(server 127.0.0.1:${!c}\): old link from .* closed after the certificate rotation"
  grep -q 'refused the link' "$TEST_TMP/tunneld-$s.log" && fail "tunneld $s took the rotated certificate for an impostor"
  python3 - "$TEST_TMP/probe$s.probe" "$t_hup" "${!w}" "$s" <<'PY' || fail "a new connection through $s failed during the rotation"
import sys
rows = sorted((int(a), int(b), st) for a, b, st, *_ in (l.split(" ") for l in open(sys.argv[1])))
t_hup, t_swap, name = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
around = [r for r in rows if r[0] >= t_hup - 1000]
failed = [r for r in around if r[2] != "ok"]
print("server %s: new connections around the rotation: %d (%d started between SIGHUP and the swap), failed: %d" % (
    name, len(around), sum(1 for r in around if t_hup <= r[0] <= t_swap), len(failed)))
assert around and not failed, failed[:5]
PY
done
grep -q 'ended: tunnel link lost' "$CLOG" && fail "a stream was reset by the rotation"
stop_checked home1
stop_server A
stop_server B
pass "rotation with two servers: each link rotated beside its old one, held downloads whole, no new connection failed"
