# lib.sh: shared helpers for integration tests (sourced, not run).
# Rules it serves: free ports chosen at run time, every started process stopped on exit,
# waits that poll against a deadline instead of sleeping.

set -euo pipefail

TEST_NAME=$(basename "${0%.sh}")
TEST_TMP=$(mktemp -d "/tmp/tunnel-${TEST_NAME}.XXXXXX")

# The distribution's python3, a Debian package like every other test tool: a version manager's shim first in PATH
# costs a few extra processes per call, and the tests call python3 hundreds of times on a busy 2-core machine.
# A link in PATH, not a shell function: a spawned python3 must be the process whose pid the test holds and signals.
if [ -x /usr/bin/python3 ]; then
  mkdir -p "$TEST_TMP/bin"
  ln -s /usr/bin/python3 "$TEST_TMP/bin/python3"
  PATH="$TEST_TMP/bin:$PATH"
fi
TEST_PIDS=()
# Daemons whose end is part of the test: "PID NAME" lines; at exit each must have left no sanitizer report and,
# if still running, must exit 0 on SIGTERM (shutdown paths are where leaks and use-after-free hide).
TEST_CHECKED=()

# Sends SIGTERM to every registered process, gives checked daemons time to drain, then kills what is left.
# A checked daemon still draining after 10 s gets a second SIGTERM (documented: it ends the drain, still exit 0).
test_stop_all() {
  local pid status entry name deadline running=()
  # Which checked daemons are still running is decided before anything is signalled: one that exits at once on
  # the SIGTERM below is reaped by bash and would look "gone already" afterwards, its exit status unjudged.
  for entry in "${TEST_CHECKED[@]:-}"; do
    [ -n "$entry" ] || continue
    kill -0 "${entry%% *}" 2>/dev/null && running+=("$entry")
  done
  for pid in "${TEST_PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
  done
  # Not running before the signals: the test stopped it and judged its exit itself (a crash it did not notice still
  # leaves its sanitizer report for test_scan_logs; one that was never reaped is a zombie, which kill -0 finds).
  for entry in "${running[@]:-}"; do
    [ -n "$entry" ] || continue
    pid=${entry%% *} name=${entry#* }
    deadline=$(( $(date +%s) + 10 ))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(( $(date +%s) + 10 ))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    if kill -KILL "$pid" 2>/dev/null; then
      TEST_LATE_FAILURES+=("$name did not exit within 20 s of SIGTERM")
    fi
    status=0
    wait "$pid" 2>/dev/null || status=$?
    # 137: the test killed it with SIGKILL on purpose (a crash simulation) without reaping it; the escalation
    # above is reported on its own.
    if [ "$status" != 0 ] && [ "$status" != 137 ]; then
      TEST_LATE_FAILURES+=("$name exited with status $status at the end of the test")
    fi
  done
  for pid in "${TEST_PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# Sanitizer reports and failed assertions in the log of any checked daemon, running or long gone.
test_scan_logs() {
  local entry name log
  for entry in "${TEST_CHECKED[@]:-}"; do
    [ -n "$entry" ] || continue
    name=${entry#* }
    log="$TEST_TMP/$name.log"
    if [ -f "$log" ] && grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|Assertion .* failed" "$log"; then
      TEST_LATE_FAILURES+=("sanitizer report or failed assertion in $log: $(grep -m2 -E "Sanitizer|runtime error:|Assertion" "$log" | tr '\n' ' ')")
    fi
  done
}

test_cleanup() {
  local status=$? msg
  trap - EXIT
  TEST_LATE_FAILURES=()
  test_stop_all
  test_scan_logs
  for msg in "${TEST_LATE_FAILURES[@]:-}"; do
    [ -n "$msg" ] || continue
    echo "FAIL: ${TEST_NAME}: $msg" >&2
    [ "$status" != 0 ] || status=1
  done
  if [ -f "$TEST_TMP/claimed-ports" ]; then
    while read -r port; do rmdir "$TEST_PORT_CLAIMS/$port" 2>/dev/null || true; done <"$TEST_TMP/claimed-ports"
  fi
  if [ "$status" -ne 0 ]; then
    # Keep what explains the failure, not the payloads (downloads, random files): a failed run must not
    # fill /tmp on a machine that runs the suite over and over.
    find "$TEST_TMP" -type f -size +1M ! -name '*.log' -delete 2>/dev/null || true
    echo "--- ${TEST_NAME} failed (status $status); logs in $TEST_TMP:"
    for f in "$TEST_TMP"/*.log; do
      [ -f "$f" ] || continue
      echo "--- $f (last 40 lines)"; tail -n 40 "$f"
    done
  else
    rm -rf "$TEST_TMP"
  fi
  exit "$status"
}
trap test_cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: ${TEST_NAME}: $*" >&2; exit 1; }
pass() { echo "ok: ${TEST_NAME}: $*"; }

# Registers a background process to be stopped at exit: spawn NAME CMD ARGS... (output in $TEST_TMP/NAME.log)
spawn() {
  local name=$1; shift
  "$@" >"$TEST_TMP/$name.log" 2>&1 &
  TEST_PIDS+=("$!")
  SPAWNED_PID=$!
}

# spawn_checked NAME CMD ARGS...: spawn, and at exit require a clean end (see TEST_CHECKED).
spawn_checked() {
  spawn "$@"
  TEST_CHECKED+=("$SPAWNED_PID $1")
}

# bg CMD ARGS...: a background job of the test itself (a download, a load loop), registered so that it never
# outlives the test; its pid in $BG_PID. Redirect its output on the call as with any command.
bg() {
  "$@" &
  BG_PID=$!
  TEST_PIDS+=("$BG_PID")
}

# Prints a TCP port free on 127.0.0.1 and ::1 now, claimed for this test. Ports come from below the kernel's
# ephemeral range (so no outgoing connection of any process can be using it) and are claimed with an atomic
# mkdir under /tmp/tunnel-test-ports, so tests running in parallel never pick the same one. Claims are
# released at exit; a claim older than an hour is stale (a killed run) and may be taken again.
TEST_PORT_CLAIMS=/tmp/tunnel-test-ports
free_port() {
  local low high port
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  high=$((low - 1)); low=20000
  [ "$high" -gt "$low" ] || { low=10000; high=19999; }
  mkdir -p "$TEST_PORT_CLAIMS"
  find "$TEST_PORT_CLAIMS" -mindepth 1 -maxdepth 1 -mmin +60 -exec rmdir {} + 2>/dev/null || true
  for _ in $(seq 1 200); do
    port=$((low + (RANDOM * 32768 + RANDOM) % (high - low + 1)))
    mkdir "$TEST_PORT_CLAIMS/$port" 2>/dev/null || continue
    if python3 - "$port" <<'PY' 2>/dev/null; then
import socket, sys
port = int(sys.argv[1])
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(family)
    try:
        s.bind((host, port))
    except OSError as e:
        if family == socket.AF_INET6 and e.errno == 99:  # no IPv6 loopback on this machine
            continue
        sys.exit(1)
    finally:
        s.close()
PY
      echo "$port" >>"$TEST_TMP/claimed-ports"  # a file: free_port runs in $(...) subshells
      echo "$port"
      return 0
    fi
    rmdir "$TEST_PORT_CLAIMS/$port" 2>/dev/null || true
  done
  echo "free_port: no free port found in $low-$high" >&2
  return 1
}

# wait_until SECONDS CMD ARGS...: polls CMD every 50 ms until it succeeds or the deadline passes.
wait_until() {
  local seconds=$1; shift
  local deadline=$(( $(date +%s%N) + seconds * 1000000000 ))
  while ! "$@" >/dev/null 2>&1; do
    if [ "$(date +%s%N)" -ge "$deadline" ]; then return 1; fi
    sleep 0.05
  done
}

port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# wait_port PORT [HOST]: waits up to 15 s for a listener.
wait_port() { wait_until 15 port_open "$1" "${2:-127.0.0.1}" || fail "nothing listening on ${2:-127.0.0.1}:$1"; }

# wait_log FILE PATTERN [SECONDS]: waits until a log file holds a line matching PATTERN.
wait_log() { wait_until "${3:-15}" grep -qE "$2" "$1" || fail "no line matching '$2' in $1"; }

# The "defaults" section every haproxy receiver of the tests starts with: http mode, 5 s timeouts.
haproxy_http_defaults() {
  printf 'defaults\n  mode http\n  timeout connect 5s\n  timeout client 5s\n  timeout server 5s\n'
}
