#!/usr/bin/env bash
# systemd units and readiness: `systemd-analyze verify` accepts both units (and does catch a broken one), the
# units carry the settings the packaging promises, and over a real AF_UNIX datagram NOTIFY_SOCKET tunneld says
# READY=1 only once its control, management and restored public ports accept connections, tunnelc only once its
# first link is up (or it is retrying); both say RELOADING=1/READY=1 on SIGHUP (with STATUS= saying so when the
# reload failed and the loaded certificates or configuration stay) and STOPPING=1 on SIGTERM, exit 0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

src=${TUNNEL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v systemd-analyze >/dev/null || fail "systemd-analyze not installed (apt-get install systemd)"

# ---- static checks ----
units="$TEST_TMP/units"
mkdir -p "$units" "$TEST_TMP/man/man8"
sed "s#^ExecStart=/usr/bin/tunneld #ExecStart=$TUNNELD #" "$src/examples/systemd/tunneld.service" >"$units/tunneld.service"
sed "s#^ExecStart=/usr/bin/tunnelc #ExecStart=$TUNNELC #" "$src/examples/systemd/tunnelc.service" >"$units/tunnelc.service"
# Documentation=man:... is checked by verify: let it find the pages from the source tree.
cp "$src/docs/man/tunneld.8" "$src/docs/man/tunnelc.8" "$TEST_TMP/man/man8/"
export MANPATH="$TEST_TMP/man"

# --man=no: verify would also run man(1) for every Documentation= line, which can fail while another test
# renders pages at the same moment; the pages are checked below with man -w instead, deterministically.
verify() { systemd-analyze verify --man=no "$@" 2>&1; }
for page in tunneld tunnelc; do
  grep -q "^Documentation=man:$page(8)" "$src/examples/systemd/$page.service" || fail "$page.service: no Documentation=man:$page(8)"
  man -w "$page" >/dev/null 2>&1 || fail "man -w $page: the page its unit documents is not found"
done
out=$(verify "$units/tunneld.service" "$units/tunnelc.service") || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify complains: $out"
# The check itself can fail: a misspelt setting and a missing binary are reported.
sed 's/^ProtectSystem=strict/ProtectSytem=strict/' "$units/tunneld.service" >"$units/broken.service"
out=$(verify "$units/broken.service" || true)
grep -q 'Unknown key' <<<"$out" || fail "verify did not notice a misspelt key"
sed "s#^ExecStart=$TUNNELD #ExecStart=$TEST_TMP/no-such-tunneld #" "$units/tunneld.service" >"$units/nobin.service"
out=$(verify "$units/nobin.service" || true)
grep -q 'no-such-tunneld is not executable' <<<"$out" || fail "verify did not notice a missing binary"
rm "$units/broken.service" "$units/nobin.service"

has() {  # has UNIT LINE: the unit holds exactly this line
  grep -qxF "$2" "$src/examples/systemd/$1.service" || fail "$1.service lacks '$2'"
}
for u in tunneld tunnelc; do
  for line in Type=notify Restart=on-failure 'ExecReload=/bin/kill -HUP $MAINPID' User=tunnel Group=tunnel \
      StateDirectory=tunnel ConfigurationDirectory=tunnel NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes \
      PrivateTmp=yes 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' SystemCallFilter=@system-service \
      LimitNOFILE=65536 ProtectKernelTunables=yes ProtectControlGroups=yes RestrictNamespaces=yes \
      LockPersonality=yes MemoryDenyWriteExecute=yes "ExecStart=/usr/bin/$u --config /etc/tunnel/$u.json"; do
    has "$u" "$line"
  done
done
has tunneld AmbientCapabilities=CAP_NET_BIND_SERVICE
has tunneld CapabilityBoundingSet=CAP_NET_BIND_SERVICE
grep -q '^AmbientCapabilities=.*CAP_NET_BIND_SERVICE' "$src/examples/systemd/tunnelc.service" &&
  fail "tunnelc.service must not get CAP_NET_BIND_SERVICE"
has tunnelc CapabilityBoundingSet=
# Both units describe what systemd-analyze security would score; print it for the log when it works offline.
for u in tunneld tunnelc; do
  score=$(systemd-analyze security --offline=true "$units/$u.service" 2>/dev/null | grep -o 'Overall exposure level.*' || true)
  [ -z "$score" ] || echo "$u.service: $score"
done

# ---- readiness over a real NOTIFY_SOCKET ----
cat >"$TEST_TMP/notify.py" <<'PY'
# Receives sd_notify datagrams; when one says READY=1, probes right away whether the given TCP ports accept
# connections and whether the given log file already holds the given pattern. One JSON line per datagram.
import json, os, re, socket, sys, time
sock_path, out_path, log_path, pattern = sys.argv[1:5]
ports = [int(p) for p in sys.argv[5:]]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock_path)
with open(out_path, "a", buffering=1) as out:
    out.write(json.dumps({"listening": True}) + "\n")
    while True:
        data, _ = s.recvfrom(4096)
        msg = data.decode()
        rec = {"t": time.time(), "msg": msg}
        if "READY=1" in msg.split("\n"):
            probe = {}
            for p in ports:
                c = socket.socket()
                c.settimeout(2)
                try:
                    c.connect(("127.0.0.1", p)); probe[str(p)] = True
                except OSError:
                    probe[str(p)] = False
                finally:
                    c.close()
            rec["ports"] = probe
            try:
                with open(log_path) as f:
                    rec["log_has_pattern"] = re.search(pattern, f.read()) is not None
            except OSError:
                rec["log_has_pattern"] = False
        out.write(json.dumps(rec) + "\n")
PY

# start_notify NAME LOG PATTERN PORTS...: a listener on $TEST_TMP/NAME.sock writing $TEST_TMP/NAME.jsonl
start_notify() {
  local name=$1; shift
  rm -f "$TEST_TMP/$name.sock" "$TEST_TMP/$name.jsonl"
  spawn "notify-$name" python3 "$TEST_TMP/notify.py" "$TEST_TMP/$name.sock" "$TEST_TMP/$name.jsonl" "$@"
  wait_until 10 grep -q listening "$TEST_TMP/$name.jsonl" || fail "notify listener $name did not start"
}
# messages NAME: the datagrams received so far, one per line with newlines shown as '|'
messages() {
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l)
    if "msg" in r: print(r["msg"].replace("\n","|"))' "$TEST_TMP/$1.jsonl"
}
# ready_record NAME N: the Nth READY=1 record (1-based) as JSON
ready_record() {
  python3 -c 'import json,sys
rs=[json.loads(l) for l in open(sys.argv[1])]
rs=[r for r in rs if "READY=1" in r.get("msg","").split("\n")]
n=int(sys.argv[2]); print(json.dumps(rs[n-1]) if len(rs)>=n else ""); sys.exit(0 if len(rs)>=n else 1)' "$TEST_TMP/$1.jsonl" "$2"
}
count_msgs() { messages "$1" | grep -c "$2" || true; }
wait_msg() {  # wait_msg NAME REGEX [COUNT]
  wait_until 20 sh -c "[ \"\$(python3 -c 'import json,sys
print(sum(1 for l in open(sys.argv[1]) if \"msg\" in json.loads(l) and __import__(\"re\").search(sys.argv[2], json.loads(l)[\"msg\"])))' '$TEST_TMP/$1.jsonl' '$2')\" -ge ${3:-1} ]" ||
    fail "no datagram matching '$2' (x${3:-1}) on $1's NOTIFY_SOCKET; got: $(messages "$1" | tr '\n' ' ')"
}
json_get() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); [v:=v[k] for k in sys.argv[2:]]; print(json.dumps(v))' "$@"; }

make_pki

# tunneld, with a saved table whose public port must also be bound before READY=1.
CONTROL_PORT=$(free_port)
MGMT_PORT=$(free_port)
PUBLIC_PORT=$(free_port)
while [ "$MGMT_PORT" = "$CONTROL_PORT" ]; do MGMT_PORT=$(free_port); done
while [ "$PUBLIC_PORT" = "$CONTROL_PORT" ] || [ "$PUBLIC_PORT" = "$MGMT_PORT" ]; do PUBLIC_PORT=$(free_port); done
mkdir -p "$(dirname "$STATE_FILE")"
echo "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 9}]" >"$STATE_FILE"
start_notify td "$TEST_TMP/tunneld.log" 'tunnels restored' "$CONTROL_PORT" "$MGMT_PORT" "$PUBLIC_PORT"
t0=$(now_ms)
NOTIFY_SOCKET="$TEST_TMP/td.sock" start_tunneld
wait_msg td '^READY=1'
t1=$(now_ms)
rec=$(ready_record td 1)
echo "tunneld READY=1 after $((t1 - t0)) ms (measured by the test, ASan build): $rec"
[ "$(json_get "$rec" ports)" = "{\"$CONTROL_PORT\": true, \"$MGMT_PORT\": true, \"$PUBLIC_PORT\": true}" ] ||
  fail "tunneld READY=1 before every port accepted connections: $(json_get "$rec" ports)"
[ "$(json_get "$rec" log_has_pattern)" = true ] || fail "tunneld READY=1 before the table was restored"
json_get "$rec" msg | grep -q "MAINPID=$TUNNELD_PID" || fail "READY=1 without MAINPID=$TUNNELD_PID: $rec"
json_get "$rec" msg | grep -q 'STATUS=' || fail "READY=1 without STATUS: $rec"
[ "$(count_msgs td '^READY=1')" = 1 ] || fail "tunneld sent READY=1 more than once at start"

kill -HUP "$TUNNELD_PID"
wait_msg td '^RELOADING=1'
wait_msg td '^READY=1' 2
messages td | grep -n . | grep -q '^2:RELOADING=1' || fail "SIGHUP: RELOADING=1 did not come second: $(messages td | tr '\n' ' ')"
wait_log "$TEST_TMP/tunneld.log" 'certificates and CA reloaded'
api_ping || fail "tunneld stopped answering after SIGHUP"
# A reload that fails (a key that does not parse) keeps the loaded certificates, so tunneld stays ready, but
# systemd is told it failed: READY=1 with a STATUS= naming the key, not "reloaded".
cp "$PKI/server.key" "$TEST_TMP/server.key.good"
echo "not a key" >"$PKI/server.key"
kill -HUP "$TUNNELD_PID"
wait_msg td '^RELOADING=1' 2
wait_msg td '^READY=1' 3
failed_status=$(messages td | grep '^READY=1' | sed -n 3p)
echo "after a failed reload: $failed_status"
grep -q '|STATUS=reload failed, serving with the loaded certificates: .*"ServerTlsKeyFile"' <<<"$failed_status" ||
  fail "a failed reload was not reported as failed in STATUS=: $failed_status"
grep -q "|MAINPID=$TUNNELD_PID$" <<<"$failed_status" || fail "the failed reload's READY=1 lost MAINPID: $failed_status"
api_ping || fail "tunneld stopped answering after a failed SIGHUP"
cp "$TEST_TMP/server.key.good" "$PKI/server.key"
kill -HUP "$TUNNELD_PID"
wait_msg td '^READY=1' 4
messages td | grep '^READY=1' | sed -n 4p | grep -q '|STATUS=reloaded|' ||
  fail "the reload after the key was restored did not say reloaded: $(messages td | tr '\n' ' ')"

stop_tunneld TERM
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS on SIGTERM"
wait_msg td '^STOPPING=1'
echo "tunneld datagrams: $(messages td | tr '\n' ' ')"

# tunnelc while the server is down: READY=1 once it is retrying (it is configured and working as designed).
start_notify tcdown "$TEST_TMP/tunnelc-home1.log" 'cannot connect'
t0=$(now_ms)
NOTIFY_SOCKET="$TEST_TMP/tcdown.sock" start_tunnelc home1
wait_msg tcdown '^READY=1'
t1=$(now_ms)
rec=$(ready_record tcdown 1)
echo "tunnelc (server down) READY=1 after $((t1 - t0)) ms: $(json_get "$rec" msg)"
json_get "$rec" msg | grep -q 'STATUS=retrying' || fail "tunnelc READY=1 without STATUS=retrying: $rec"
[ "$(json_get "$rec" log_has_pattern)" = true ] || fail "tunnelc READY=1 before its first attempt failed"
# The server comes up; the client connects; no second READY=1 (a reconnect is not a restart).
start_tunneld
wait_client_connected home1
[ "$(count_msgs tcdown '^READY=1')" = 1 ] || fail "tunnelc sent READY=1 again on connecting"
kill -TERM "$TUNNELC_PID_home1"
status=0; wait "$TUNNELC_PID_home1" || status=$?
[ "$status" = 0 ] || fail "tunnelc exited $status on SIGTERM"
wait_msg tcdown '^STOPPING=1'

# tunnelc with the server up: READY=1 once the link is up; journald-style log lines while JOURNAL_STREAM is set.
start_notify tcup "$TEST_TMP/tunnelc-home2.log" 'connected to'
t0=$(now_ms)
NOTIFY_SOCKET="$TEST_TMP/tcup.sock" JOURNAL_STREAM=8:12345 start_tunnelc home2
wait_msg tcup '^READY=1'
t1=$(now_ms)
rec=$(ready_record tcup 1)
echo "tunnelc (server up) READY=1 after $((t1 - t0)) ms: $(json_get "$rec" msg)"
json_get "$rec" msg | grep -q 'STATUS=connected' || fail "tunnelc READY=1 without STATUS=connected: $rec"
json_get "$rec" msg | grep -q "MAINPID=$TUNNELC_PID_home2" || fail "READY=1 without MAINPID=$TUNNELC_PID_home2: $rec"
[ "$(json_get "$rec" log_has_pattern)" = true ] || fail "tunnelc READY=1 before its link was up"
wait_client_connected home2
grep -qE '^<6>client home2: connected to' "$TEST_TMP/tunnelc-home2.log" ||
  fail "with JOURNAL_STREAM set, log lines should carry a <priority> prefix: $(head -3 "$TEST_TMP/tunnelc-home2.log")"
kill -HUP "$TUNNELC_PID_home2"
wait_msg tcup '^RELOADING=1'
wait_msg tcup '^READY=1' 2
wait_log "$TEST_TMP/tunnelc-home2.log" 'configuration reloaded'
# A configuration that fails to load on SIGHUP: the running one stays, READY=1 says the reload failed.
cp "$TEST_TMP/tunnelc-home2.json" "$TEST_TMP/tunnelc-home2.json.good"
echo '{"ServerPort": 1}' >"$TEST_TMP/tunnelc-home2.json"
kill -HUP "$TUNNELC_PID_home2"
wait_msg tcup '^RELOADING=1' 2
wait_msg tcup '^READY=1' 3
failed_status=$(messages tcup | grep '^READY=1' | sed -n 3p)
echo "tunnelc after a failed reload: $failed_status"
grep -q '|STATUS=reload failed, running with the loaded configuration: .*"ServerPort"' <<<"$failed_status" ||
  fail "tunnelc: a failed reload was not reported as failed in STATUS=: $failed_status"
cp "$TEST_TMP/tunnelc-home2.json.good" "$TEST_TMP/tunnelc-home2.json"
kill -TERM "$TUNNELC_PID_home2"
status=0; wait "$TUNNELC_PID_home2" || status=$?
[ "$status" = 0 ] || fail "tunnelc exited $status on SIGTERM"
wait_msg tcup '^STOPPING=1'
echo "tunnelc datagrams: $(messages tcup | tr '\n' ' ')"

pass "units verify; READY=1 after bind/link (or retrying), RELOADING=1+READY=1 on SIGHUP (a failed one said in STATUS=), STOPPING=1 and exit 0 on SIGTERM"
