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

# One that exits at once on SIGTERM (as tunneld does when nothing is open) is judged too, even while the harness is
# still waiting for a slower daemon started before it.
slow='python3 -c "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1), sys.exit(0))); print(\"started\", flush=True); time.sleep(300)"'
quick='python3 -c "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(4)); print(\"started\", flush=True); time.sleep(300)"'
status=$(inner quick_exit "spawn_checked s $slow; spawn_checked d $quick
wait_log \"\$TEST_TMP/s.log\" started; wait_log \"\$TEST_TMP/d.log\" started; pass looks fine")
[ "$status" != 0 ] || fail "a daemon that exits 4 at once on SIGTERM did not fail the test: $(cat "$TEST_TMP/quick_exit.out")"
grep -q "d exited with status 4 at the end of the test" "$TEST_TMP/quick_exit.out" || fail "no message for the quick bad exit"

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

# Load classes (docs/TESTING.md): heavy tests take both cpu slots, timing tests one, and the test command and
# stress.sh schedule with the two-slot spec, so a timing test never runs beside a heavy one.
src=${TUNNEL_SOURCE_DIR:?}
classes=$(ctest --test-dir "${TUNNEL_BUILD_DIR:?}" --show-only=json-v1 2>/dev/null | python3 -c '
import json, sys
spec = json.load(open(sys.argv[1]))
slots = sum(r["slots"] for r in spec["local"][0]["cpu"])
heavy = timing = 0
for t in json.load(sys.stdin)["tests"]:
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    labels = props.get("LABELS", [])
    need = sum(r["slots"] for g in props.get("RESOURCE_GROUPS", []) for r in g["requirements"])
    if "heavy" in labels:
        heavy += 1
        assert need == slots, t["name"] + " is heavy but does not take every slot"
    elif "timing" in labels:
        timing += 1
        assert 0 < need < slots, t["name"] + " measures time but would not be kept from heavy tests"
print(heavy, timing, slots)' "$src/tests/resources.json") || fail "load classes: $classes"
read -r n_heavy n_timing n_slots <<<"$classes"
[ "$n_heavy" -ge 4 ] && [ "$n_timing" -ge 8 ] && [ "$n_slots" = 2 ] || fail "load classes: $classes"
for f in tests/run.sh tests/stress.sh; do
  grep -q -- '--resource-spec-file "$here/tests/resources.json"' "$src/$f" || fail "$f does not schedule with tests/resources.json"
done

pass "load classes ($n_heavy heavy, $n_timing timing, $n_slots slots); spawned pids are the programs; checked daemons: bad exit and sanitizer report fail the test, a clean exit does not; background jobs stopped; payloads of a failed run dropped, logs kept"
