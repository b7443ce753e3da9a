#!/usr/bin/env bash
# docs/PROTOCOL.md 8a.1: a tunneld older than control messages refuses tunnelc's allow-list stream with RST "and
# that is all: the session goes on". The older tunneld here is tests/interop/old_tunneld, an independent peer (Go's
# crypto/tls, Debian's hashicorp/yamux) that knows no control message, over the real mTLS link. tunnelc must log
# the refusal once per announcement (at start, and again after a SIGHUP reload), keep its one link, and carry
# visitors end to end in both directions with half-close.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

UP=$((1024 * 1024 + 7)) DOWN=$((4 * 1024 * 1024 + 3))
REFUSED="client home1: tunneld did not take the allow-list announcement \(an older version\)"
make_pki
BACKEND=$(free_port)
spawn backend $NET eof-then-answer "$BACKEND" "$DOWN"
wait_port "$BACKEND"
start_old_tunneld old --backend-port "$BACKEND"
CONTROL_PORT=$OLD_CONTROL
start_tunnelc home1 "[$BACKEND]"
wait_log "$TEST_TMP/old.log" "^link 1 from .*: TLS 1\.[23], client CN home1"
wait_log "$TEST_TMP/tunnelc-home1.log" "client home1: connected to 127\.0\.0\.1:$OLD_CONTROL "
wait_log "$TEST_TMP/old.log" "^refused client stream 1 with RST"
wait_log "$TEST_TMP/tunnelc-home1.log" "$REFUSED"

visit() {
  local out
  out=$($NET half-close-user "$OLD_PUBLIC" "$UP" "$DOWN") || fail "visitor $1 through the older tunneld failed: $out"
  echo "visitor $1: $out"
}
visit 1
visit 2

# A reload announces again; the older tunneld refuses again; still the same link.
kill -HUP "$TUNNELC_PID_home1"
wait_log "$TEST_TMP/tunnelc-home1.log" "client home1: configuration reloaded"
wait_log "$TEST_TMP/old.log" "^refused client stream 3 with RST"
wait_until 15 bash -c "[ \$(grep -cE '$REFUSED' '$TEST_TMP/tunnelc-home1.log') -ge 2 ]" ||
  fail "the refusal of the second announcement was not logged"
visit 3

n=$(grep -cE "$REFUSED" "$TEST_TMP/tunnelc-home1.log")
[ "$n" = 2 ] || fail "two announcements refused, but the refusal was logged $n times"
[ "$(grep -c '^refused client stream' "$TEST_TMP/old.log")" = 2 ] || fail "tunnelc opened other client streams: $(grep '^refused' "$TEST_TMP/old.log")"
! grep -q "^link 2 " "$TEST_TMP/old.log" || fail "tunnelc opened a second link: $(grep '^link' "$TEST_TMP/old.log")"
! grep -qE "client home1: (disconnected|cannot connect)" "$TEST_TMP/tunnelc-home1.log" || fail "tunnelc lost its link to the older tunneld"
! grep -qE "\[ERR\]|^FAIL" "$TEST_TMP/old.log" || fail "the older tunneld reported errors: $(grep -E '\[ERR\]|^FAIL' "$TEST_TMP/old.log")"
[ "$(grep -c ' ended: sent ' "$TEST_TMP/old.log")" = 3 ] || fail "the older tunneld did not see three streams end cleanly"
stop_checked home1
wait_log "$TEST_TMP/old.log" "^link 1 ended"
pass "against a tunneld without control messages: allow-list refused by RST and logged once per announcement, one link, 3 visitors carried"
