# lib.sh: shared helpers for integration tests (sourced, not run).
# Rules it serves: free ports chosen at run time, every started process stopped on exit,
# waits that poll against a deadline instead of sleeping.

set -euo pipefail

TEST_NAME=$(basename "${0%.sh}")
TEST_TMP=$(mktemp -d "/tmp/tunnel-${TEST_NAME}.XXXXXX")
TEST_PIDS=()

test_cleanup() {
  local status=$?
  for pid in "${TEST_PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${TEST_PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
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

# Prints a TCP port free on 127.0.0.1 right now (the kernel picks it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
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
