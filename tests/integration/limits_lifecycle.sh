#!/usr/bin/env bash
# Documented limits and lifecycle promises no other test holds, grouped to share one setup:
#   --check-config prints "configuration OK (...)" (both programs) and exits 1 on a bad file; tunneld refuses a
#   configuration over 1 MiB; tunnelc's MaxStreamsPerLink resets the server's excess opens; DialTimeoutMs resets a
#   stream whose backend never answers (and the timeout on 127.0.0.1 is not retried on ::1); the per-tunnel and
#   per-client counters (bytes_in, client_streams_open) move; tunnelc reloaded with an invalid file keeps serving
#   with its running configuration; a failed certificate reload on tunneld changes nothing; a dead link (a frozen
#   tunnelc) resets its public connections and counts in links_dead_total; SIGTERM with a connection that outlives
#   DrainTimeoutMs closes it at the deadline and exits 0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

DRAIN_MS=3000 DEAD_MS=2000 DIAL_MS=1000
make_pki
BACKEND=$(free_port) PUBLIC=$(free_port) BLACKHOLE=$(free_port) DIALPORT=$(free_port)
start_stream_server streams "$BACKEND" home1

# --check-config, both programs, before anything runs.
CONTROL_PORT=$(free_port); MGMT_PORT=$(free_port)
write_tunneld_config
# Run as the user the test runs as: the readability check then has a user to check for (the default, "tunnel",
# need not exist here) and adds nothing to the one line.
out=$("$TUNNELD" --config "$TEST_TMP/tunneld.json" --check-config --init-state --service-user "$(id -un)") ||
  fail "tunneld --check-config failed: $out"
[ "$out" = "tunneld: $TEST_TMP/tunneld.json: configuration OK (0 tunnels in $STATE_FILE)" ] ||
  fail "tunneld --check-config printed '$out'"
# 1 MiB is the limit: the same valid file padded past it with spaces is refused, naming the size.
python3 -c 'import sys; t=open(sys.argv[1]).read(); open(sys.argv[2],"w").write(t.rstrip()[:-1] + " "*(1024*1024) + "}")' \
  "$TEST_TMP/tunneld.json" "$TEST_TMP/big.json"
if out=$("$TUNNELD" --config "$TEST_TMP/big.json" --check-config 2>&1); then fail "a configuration over 1 MiB was accepted"; fi
echo "over 1 MiB: $out"
grep -qE "big\.json: .*(1 MiB|1048576|too large)" <<<"$out" || fail "the 1 MiB refusal does not say why: $out"
sed 's/"DebugLog": true/"DebugLog": 1/' "$TEST_TMP/tunneld.json" >"$TEST_TMP/bad.json"
if out=$("$TUNNELD" --config "$TEST_TMP/bad.json" --check-config 2>&1); then fail "--check-config passed a bad file"; fi
grep -q '"DebugLog"' <<<"$out" || fail "--check-config's error does not name the field: $out"

start_tunneld "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": $DEAD_MS, \"DrainTimeoutMs\": $DRAIN_MS}"
CLIENT_LIMITS="{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 60000, \"DrainTimeoutMs\": 3000, \"ReconnectMinMs\": 100,
                \"ReconnectMaxMs\": 1000, \"MaxStreamsPerLink\": 2, \"DialTimeoutMs\": $DIAL_MS}"
start_tunnelc home1 "[$BACKEND, $BLACKHOLE]" '{}' "$CLIENT_LIMITS"
out=$("$TUNNELC" --config "$TEST_TMP/tunnelc-home1.json" --check-config --service-user "$(id -un)") ||
  fail "tunnelc --check-config failed: $out"
[ "$out" = "tunnelc: $TEST_TMP/tunnelc-home1.json: configuration OK (client identity home1, server 127.0.0.1:$CONTROL_PORT)" ] ||
  fail "tunnelc --check-config printed '$out'"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND},
              {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $DIALPORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BLACKHOLE}]"
wait_port "$PUBLIC"

# MaxStreamsPerLink 2 on tunnelc: two held downloads fill the link; a third visitor is reset, the two go on.
# wait_port's probe was a stream too: it must be gone before the two downloads take the link's two slots, and
# the count is read once it settles (a closing stream is still counted until its close completes).
streams_open_is() { local v; v=$(metric "tunneld_client_streams_open{client=\"home1\"}"); [ "${v:-0}" = "$1" ]; }
wait_until 20 streams_open_is 0 || fail "wait_port's stream never closed on home1"
start_held_download dl1 "$PUBLIC"
start_held_download dl2 "$PUBLIC"
wait_until 20 streams_open_is 2 ||
  fail "tunneld_client_streams_open for home1 is '$(metric "tunneld_client_streams_open{client=\"home1\"}")' with two downloads open"
if out=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC/" 2>&1); then fail "a third stream was carried past MaxStreamsPerLink 2: $out"; fi
wait_log "$TEST_TMP/tunneld.log" "tunnel port $PUBLIC: .* via client home1 ended: stream reset by the other side"
held_download_running dl1 && held_download_running dl2 || fail "a download ended when the third stream was refused"
echo "third stream past MaxStreamsPerLink 2: $out"

# A tunnelc reload with an invalid file: refused, and the running configuration keeps serving.
cp "$TEST_TMP/tunnelc-home1.json" "$TEST_TMP/tunnelc-home1.good"
echo '{"ServerHost": ' >"$TEST_TMP/tunnelc-home1.json"
kill -HUP "$TUNNELC_PID_home1"
wait_log "$TEST_TMP/tunnelc-home1.log" "reload refused, keeping the running configuration: .*tunnelc-home1.json"
cp "$TEST_TMP/tunnelc-home1.good" "$TEST_TMP/tunnelc-home1.json"
# A tunneld certificate reload that fails (a CA file that is not PEM) changes nothing: new links still handshake.
cp "$PKI/ca.crt" "$TEST_TMP/ca.good"; echo "not a certificate" >"$PKI/ca.crt"
kill -HUP "$TUNNELD_PID"
wait_log "$TEST_TMP/tunneld.log" "server: certificate reload failed, keeping the loaded ones: .*ca.crt"
cp "$TEST_TMP/ca.good" "$PKI/ca.crt"
api_ping || fail "the management port refuses handshakes after a failed reload"
finish_held_download dl1 home1
finish_held_download dl2 home1
v=$(metric "tunneld_tunnel_bytes_in_total{listen=\"127.0.0.1:$PUBLIC\"}")
[ "${v:-0}" -gt 0 ] || fail "tunneld_tunnel_bytes_in_total for the tunnel is '$v' after requests went in:
$(grep bytes_in "$TEST_TMP/api.out")"
wait_until 10 bash -c "[ \"\$(curl -sS --max-time 5 http://127.0.0.1:$PUBLIC/)\" = home1 ]" || fail "no traffic after the reloads"

# DialTimeoutMs: a backend whose accept queue is full never answers the SYN; the stream is reset after about
# DialTimeoutMs (lower bound: not before it; upper bound only catches "never", with room for a loaded machine).
spawn blackhole python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(0)
fill = []
for _ in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.1", int(sys.argv[1])))
    except BlockingIOError: pass
    fill.append(c)
print("full", flush=True); time.sleep(300)' "$BLACKHOLE"
wait_log "$TEST_TMP/blackhole.log" full
t0=$(now_ms)
curl -sS --max-time 30 "http://127.0.0.1:$DIALPORT/" >/dev/null 2>&1 || true
wait_log "$TEST_TMP/tunnelc-home1.log" "to 127\.0\.0\.1:$BLACKHOLE ended: backend connect timed out"
ms=$(( $(now_ms) - t0 ))
echo "backend dial timed out after $ms ms (DialTimeoutMs $DIAL_MS)"
[ "$ms" -ge $((DIAL_MS - 100)) ] && [ "$ms" -le $((DIAL_MS + 10000)) ] || fail "backend dial ended after $ms ms, DialTimeoutMs is $DIAL_MS"
! grep -q "\[::1\]:$BLACKHOLE" "$TEST_TMP/tunnelc-home1.log" || fail "a dial timeout on 127.0.0.1 was retried on ::1"

# A dead link: tunnelc frozen (SIGSTOP) while it carries a download; tunneld declares it dead after DeadPeerTimeoutMs,
# resets the public connection and counts it.
start_held_download dl3 "$PUBLIC"
dead0=$(metric tunneld_links_dead_total)
kill -STOP "$TUNNELC_PID_home1"
wait_log "$TEST_TMP/tunneld.log" "client home1: disconnected .*dead-peer" 30
wait_until 15 bash -c "! kill -0 $HELD_PID_dl3 2>/dev/null" || fail "the public connection outlived its dead link"
rc=0; wait "$HELD_PID_dl3" || rc=$?
[ "$rc" != 0 ] || fail "the download on a dead link ended as if complete"
v=$(metric tunneld_links_dead_total)
[ "$v" = $((dead0 + 1)) ] || fail "tunneld_links_dead_total went from $dead0 to $v after one dead link"
kill -CONT "$TUNNELC_PID_home1"
wait_client_connected home1
echo "dead link: public connection reset (curl exit $rc), tunneld_links_dead_total $dead0 -> $v"

# SIGTERM with a download that would outlive DrainTimeoutMs: cut at the deadline, exit 0.
start_held_download dl4 "$PUBLIC"
t0=$(now_ms)
kill -TERM "$TUNNELD_PID"
wait_log "$TEST_TMP/tunneld.log" "server: stopping; open connections may finish within $DRAIN_MS ms"
held_download_running dl4 || fail "SIGTERM cut the open connection at once instead of letting it drain"
TUNNELD_STATUS=0; wait "$TUNNELD_PID" || TUNNELD_STATUS=$?
ms=$(( $(now_ms) - t0 ))
echo "tunneld exited $TUNNELD_STATUS after $ms ms with a download open (DrainTimeoutMs $DRAIN_MS)"
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS after its drain timeout"
[ "$ms" -ge $((DRAIN_MS - 200)) ] && [ "$ms" -le $((DRAIN_MS + 10000)) ] || fail "the drain ended after $ms ms, DrainTimeoutMs is $DRAIN_MS"
grep -qE "client home1: old link from .* closed: drain timeout; resetting its remaining streams" "$TEST_TMP/tunneld.log" || fail "no drain-timeout line"
rc=0; wait "$HELD_PID_dl4" || rc=$?
[ "$rc" != 0 ] || fail "the download cut by the drain timeout ended as if complete"
assert_clean_exit tunneld
pass "check-config, 1 MiB limit, MaxStreamsPerLink, DialTimeoutMs, counters, invalid reloads, dead link, drain timeout"
