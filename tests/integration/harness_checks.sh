#!/usr/bin/env bash
# The harness keeps its promises (docs/TESTING.md): a daemon started with spawn_checked that exits non-zero on
# SIGTERM, or leaves a sanitizer report in its log, fails the test even when every assertion passed; a clean one
# does not; background jobs never outlive the test; a failed run keeps its logs but drops large payloads.
source "$(dirname "$0")/lib.sh"

lib="$(cd "$(dirname "$0")" && pwd)/lib.sh"
# inner NAME BODY: runs BODY as a test script that sources lib.sh; prints its exit status.
inner() {
  local script="$TEST_TMP/$1.sh"
  printf 'source %q\n%s\n' "$lib" "$2" >"$script"
  local status=0
  bash "$script" >"$TEST_TMP/$1.out" 2>&1 || status=$?
  echo "$status"
}
daemon='bash -c '"'"'trap "exit $0" TERM; echo started; while :; do sleep 0.05; done'"'"''

status=$(inner clean "spawn_checked d $daemon 0; wait_log \"\$TEST_TMP/d.log\" started; pass clean")
[ "$status" = 0 ] || fail "a daemon that exits 0 failed the test (status $status): $(cat "$TEST_TMP/clean.out")"

status=$(inner bad_exit "spawn_checked d $daemon 3; wait_log \"\$TEST_TMP/d.log\" started; pass looks fine")
[ "$status" != 0 ] || fail "a daemon that exits 3 on SIGTERM did not fail the test"
grep -q "d exited with status 3 at the end of the test" "$TEST_TMP/bad_exit.out" || fail "no message for the bad exit"

status=$(inner sanitizer "spawn_checked d bash -c 'echo \"==1==ERROR: AddressSanitizer: heap-use-after-free\"; exit 0'
wait_until 10 grep -q AddressSanitizer \"\$TEST_TMP/d.log\"; pass looks fine")
[ "$status" != 0 ] || fail "a sanitizer report in a checked daemon's log did not fail the test"
grep -q "sanitizer report or failed assertion" "$TEST_TMP/sanitizer.out" || fail "no message for the sanitizer report"

status=$(inner background "bg sleep 300; echo \$BG_PID >\"$TEST_TMP/bg.pid\"
head -c 2000000 /dev/zero >\"\$TEST_TMP/payload.bin\"; echo kept >\"\$TEST_TMP/x.log\"; echo \$TEST_TMP >\"$TEST_TMP/tmpdir\"; fail on purpose")
[ "$status" != 0 ] || fail "a failing inner test passed"
! kill -0 "$(cat "$TEST_TMP/bg.pid")" 2>/dev/null || fail "a background job outlived its test"
inner_tmp=$(cat "$TEST_TMP/tmpdir")
[ -f "$inner_tmp/x.log" ] || fail "a failed run lost its logs"
[ ! -e "$inner_tmp/payload.bin" ] || fail "a failed run kept its 2 MB payload"
rm -rf "$inner_tmp"
# The pid spawn returns is the program itself (so signalling it stops it), python3 included.
spawn sleeper python3 -c 'import time; time.sleep(300)'
wait_until 10 grep -q python "/proc/$SPAWNED_PID/cmdline" || fail "spawned pid $SPAWNED_PID is not python3 itself"
kill -TERM "$SPAWNED_PID"
wait_until 10 eval '! kill -0 '"$SPAWNED_PID"' 2>/dev/null' || fail "SIGTERM to a spawned python3 did not stop it"

pass "spawned pids are the programs; checked daemons: bad exit and sanitizer report fail the test, a clean exit does not; background jobs stopped; payloads of a failed run dropped, logs kept"
