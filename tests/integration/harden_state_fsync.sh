#!/usr/bin/env bash
# The state file is replaced by write-to-temp, fsync, rename (docs/CONFIG.md, State file): without the fsync a
# power cut after the rename can leave an empty or torn file, and with it the revocations. Nothing else sees that
# step, so this test watches tunneld's system calls: under strace, every rename of a temporary copy onto the state
# file (the --init-state file, PUT /tunnels, PUT /revoked-certificates) must come after an fsync (or fdatasync) of
# that copy's descriptor, and be followed by an fsync of the directory.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

command -v strace >/dev/null || fail "strace not installed (tests/install-deps.sh installs it)"
make_pki
CONTROL_PORT=$(free_port)
MGMT_PORT=$(free_port)
write_tunneld_config
# LeakSanitizer stops the process with ptrace at exit, which a traced process cannot do: leaks are the other
# tests' business here.
spawn_checked tunneld env ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 strace -f -qq -o "$TEST_TMP/strace.out" \
  -e trace=open,openat,fsync,fdatasync,rename,renameat,renameat2 "$TUNNELD" --config "$TEST_TMP/tunneld.json" --init-state
STRACE_PID=$SPAWNED_PID
wait_until 30 api_ping || fail "tunneld did not start under strace (see $TEST_TMP/tunneld.log)"
PUBLIC=$(free_port)
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 9}]"
api PUT /revoked-certificates "[\"$(fingerprint "$PKI/home2.crt")\"]"
[ "$API_STATUS" = 200 ] || fail "PUT /revoked-certificates: $API_STATUS $API_BODY"
# tunneld is strace's child: it gets the SIGTERM, strace exits with its status.
TD=$(pgrep -P "$STRACE_PID" -x tunneld) || fail "no tunneld under strace"
kill -TERM "$TD"
status=0; wait "$STRACE_PID" || status=$?
[ "$status" = 0 ] || fail "tunneld under strace exited $status"

python3 - "$TEST_TMP/strace.out" "$STATE_FILE" <<'PY' || fail "a state file rename without the fsync before it (or the directory's after it); trace in $TEST_TMP/strace.out"
import os, re, sys
trace, state = sys.argv[1], sys.argv[2]
state_dir = os.path.dirname(state)
pending, calls = {}, []
for line in open(trace):
    m = re.match(r"(\d+)\s+(.*)", line.rstrip("\n"))
    if not m:
        continue
    pid, rest = m.groups()
    if rest.endswith("<unfinished ...>"):
        pending[pid] = rest[: -len("<unfinished ...>")]
        continue
    r = re.match(r"<\.\.\. \w+ resumed>(.*)", rest)
    if r:
        rest = pending.pop(pid, "") + r.group(1)
    calls.append((pid, rest))

fd_path, synced = {}, set()
renames, errors = 0, []
for i, (pid, c) in enumerate(calls):
    m = re.match(r'(?:open|openat)\((?:AT_FDCWD, )?"([^"]*)", ([^)]*)\)\s*=\s*(\d+)', c)
    if m:
        path, flags, fd = m.groups()
        fd_path[fd] = path
        synced.discard(path)
        continue
    m = re.match(r"f(?:data)?sync\((\d+)\)\s*=\s*0", c)
    if m:
        synced.add(fd_path.get(m.group(1), "?"))
        continue
    m = re.match(r'rename(?:at2?)?\((?:AT_FDCWD, )?"([^"]*)", (?:AT_FDCWD, )?"([^"]*)".*\)\s*=\s*0', c)
    if m and m.group(2) == state:
        renames += 1
        tmp = m.group(1)
        if tmp not in synced:
            errors.append("rename %s -> %s without an fsync of %s first" % (tmp, state, tmp))
        # The directory: opened after the rename, and that descriptor fsynced.
        dfd = None
        for _, x in calls[i + 1:]:
            d = re.match(r'(?:open|openat)\((?:AT_FDCWD, )?"([^"]*)", [^)]*O_DIRECTORY[^)]*\)\s*=\s*(\d+)', x)
            if dfd is None and d and os.path.abspath(d.group(1)) == state_dir:
                dfd = d.group(2)
            elif dfd is not None and re.match(r"fsync\(%s\)\s*=\s*0" % dfd, x):
                break
        else:
            errors.append("rename onto %s with no fsync of its directory after it" % state)
print("state file renames seen: %d" % renames)
for e in errors:
    print("error: " + e)
sys.exit(1 if errors or renames < 3 else 0)
PY
pass "every rename onto the state file (first start, PUT /tunnels, PUT /revoked-certificates) follows an fsync of the copy"
