#!/usr/bin/env bash
# Churn: many short connections through the tunnel and many client reconnects (the link killed under tunnelc with
# ss -K); afterwards tunneld's and tunnelc's RSS and open descriptors are back within a small margin of their
# values after a warm-up. Counts: HARDEN_CONNECTIONS / HARDEN_RECONNECTS, by default the issue's full 100,000
# and 1,000 (about 110 s alone under ASan on 2 cores: ~3,000 connections/s and ~14 reconnects/s; ctest gives this
# test a longer timeout than the others).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

NET="python3 $(dirname "$0")/tools/harden_net.py"
CONNECTIONS=${HARDEN_CONNECTIONS:-100000}
RECONNECTS=${HARDEN_RECONNECTS:-1000}
# ASan keeps freed memory in a quarantine (256 MB by default), which would read as growth; a small one keeps RSS
# meaningful while still catching use-after-free of recent frees.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:quarantine_size_mb=16"
command -v ss >/dev/null || fail "ss (iproute2) is needed to kill the link"

make_pki
start_tunneld
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port)
start_marker_nginx nginx "$BACKEND_PORT" churn
start_tunnelc home1 "[$BACKEND_PORT]" '{}' '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": 3000, "ReconnectMinMs": 10, "ReconnectMaxMs": 20, "ReconnectResetAfterMs": 0}'
TC=$TUNNELC_PID_home1
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"

# reconnects N: kills tunnelc's control connection N times, each time waiting until tunneld logs the new link.
reconnects() {
  python3 - "$1" "$CONTROL_PORT" "$TEST_TMP/tunneld.log" <<'PY'
import subprocess, sys, time
n, port, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
f = open(log, "rb"); f.seek(0, 2)
done = 0; t0 = time.time()
for i in range(n):
    subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", ":" + port], capture_output=True)
    deadline = time.time() + 15
    buf = b""
    while time.time() < deadline:
        buf += f.read()
        if b"client home1: connected from" in buf:
            done += 1
            break
        time.sleep(0.003)
    else:
        print('{"reconnects": %d, "failed_at": %d}' % (done, i)); sys.exit(1)
print('{"reconnects": %d, "seconds": %.1f}' % (done, time.time() - t0))
PY
}
settle() {  # waits until both processes hold no more descriptors than before the churn (plus a margin)
  wait_until 20 bash -c "[ \$(ls /proc/$TUNNELD_PID/fd | wc -l) -le $(( $1 + 2 )) ] && [ \$(ls /proc/$TC/fd | wc -l) -le $(( $2 + 2 )) ]" || true
}

# Warm-up, so allocator pools and caches reach their working size before the baseline.
out=$($NET churn 127.0.0.1 "$PUBLIC_PORT" 2000 16); [ "$(json_get "$out" 'd["failed"]')" = 0 ] || fail "warm-up: $out"
reconnects 20 >/dev/null || fail "warm-up reconnects"
wait_client_connected home1
settle 1000 1000
d_rss0=$(rss_kb "$TUNNELD_PID"); d_fd0=$(fd_count "$TUNNELD_PID")
c_rss0=$(rss_kb "$TC"); c_fd0=$(fd_count "$TC")
echo "before churn: tunneld RSS $d_rss0 KiB, $d_fd0 fds; tunnelc RSS $c_rss0 KiB, $c_fd0 fds"

out=$($NET churn 127.0.0.1 "$PUBLIC_PORT" "$CONNECTIONS" 32)
echo "$CONNECTIONS short connections: $out"
[ "$(json_get "$out" 'd["failed"]')" = 0 ] || fail "connections failed during the churn: $out"
echo "connection churn rate: $(json_get "$out" 'd["per_second"]') connections/s"

out=$(reconnects "$RECONNECTS") || fail "reconnects: $out"
echo "$RECONNECTS client reconnects: $out"
wait_client_connected home1
[ "$(http_get_marker 127.0.0.1 "$PUBLIC_PORT")" = churn ] || fail "no traffic after the churn"

settle "$d_fd0" "$c_fd0"
d_rss1=$(rss_kb "$TUNNELD_PID"); d_fd1=$(fd_count "$TUNNELD_PID")
c_rss1=$(rss_kb "$TC"); c_fd1=$(fd_count "$TC")
echo "after churn:  tunneld RSS $d_rss1 KiB, $d_fd1 fds; tunnelc RSS $c_rss1 KiB, $c_fd1 fds"
echo "RSS change: tunneld $((d_rss1 - d_rss0)) KiB, tunnelc $((c_rss1 - c_rss0)) KiB; fds: tunneld $((d_fd1 - d_fd0)), tunnelc $((c_fd1 - c_fd0))"
[ "$d_fd1" -le $((d_fd0 + 2)) ] || fail "tunneld descriptors grew from $d_fd0 to $d_fd1"
[ "$c_fd1" -le $((c_fd0 + 2)) ] || fail "tunnelc descriptors grew from $c_fd0 to $c_fd1"
# Margin: 10% plus 8 MiB for allocator noise; a per-connection or per-link leak over this churn is far larger.
[ "$d_rss1" -le $((d_rss0 + d_rss0 / 10 + 8192)) ] || fail "tunneld RSS grew from $d_rss0 to $d_rss1 KiB"
[ "$c_rss1" -le $((c_rss0 + c_rss0 / 10 + 8192)) ] || fail "tunnelc RSS grew from $c_rss0 to $c_rss1 KiB"

stop_tunnelc home1
stop_tunneld
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS"
[ "$TUNNELC_STATUS" = 0 ] || fail "tunnelc exited $TUNNELC_STATUS"
assert_clean_exit tunneld
assert_clean_exit tunnelc-home1
pass "$CONNECTIONS connections and $RECONNECTS reconnects; RSS and descriptors back within margin"
