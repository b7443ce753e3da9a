#!/usr/bin/env bash
# tunnelc's PipeHighWater bounds what it holds of a backend's bytes that the link cannot take (CONFIG.md,
# tunnelc's Limits). A backend sends 48 MiB to a visitor who never reads; tunneld's window for the stream
# (MaxWindow = the initial 256 KiB, so it cannot grow) soon closes and tunnelc's pipe keeps what it reads. With
# PipeHighWater at its maximum (64 MiB) tunnelc takes the whole 48 MiB from the backend (and its memory grows by
# as much); with 16 KiB it stops reading, the backend's TCP window closes and its send stalls with only the window,
# the mark, one read and the kernel's buffers taken. The mirror of pipe_high_water.sh, which checks tunneld's side.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

MIB=$((1024 * 1024))
SIZE=$((48 * MIB))
# ASan keeps freed memory in quarantine; a small one keeps RSS about live memory.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
client_limits() { echo "${FAST_CLIENT_LIMITS%\}}, \"PipeHighWater\": $1, \"PipeLowWater\": $2}"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$TUNNELC_PID_home1/status"; }
pushed() { [ -s "$TEST_TMP/backend$1.out" ]; }

make_pki
start_tunneld "${FAST_LIMITS%\}}, \"MaxWindow\": 262144}"
PUBLIC_PORT=$(free_port)

# run N HIGH LOW: one visitor, one backend pushing SIZE bytes, tunnelc with that mark; prints the backend's outcome.
run() {
  local n=$1 backend_port
  backend_port=$(free_port)
  spawn "backend$n" $NET push-server "$backend_port" "$SIZE" "$TEST_TMP/backend$n.out"
  wait_log "$TEST_TMP/backend$n.log" listening
  start_tunnelc home1 "[$backend_port]" '{}' "$(client_limits "$2" "$3")"
  wait_client_connected home1
  rss_before=$(rss_kb)
  put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $backend_port}]"
  # Not wait_port: a probe through the tunnel would be the backend's one connection.
  wait_log "$TEST_TMP/tunneld.log" "tunnel port $PUBLIC_PORT: listening"
  spawn "visitor$n" $NET never-read-client "$PUBLIC_PORT" 600
  # "finished" or "stalled": the backend decides by itself once its socket takes nothing for 2 s.
  wait_until 180 pushed "$n" || fail "PipeHighWater $2: the backend's send neither finished nor stalled"
  rss_after=$(rss_kb)
}

# 1. A high mark: tunnelc reads and holds all of it although nothing reaches the visitor.
run 1 67108864 65536
high=$(cat "$TEST_TMP/backend1.out"); high_growth=$((rss_after - rss_before))
[ "${high%% *}" = finished ] || fail "PipeHighWater 64 MiB: tunnelc stopped reading the backend ($high)"
stop_checked home1

# 2. A low mark: tunnelc stops reading the backend; its send stalls far below 48 MiB.
run 2 16384 0
low=$(cat "$TEST_TMP/backend2.out"); low_growth=$((rss_after - rss_before))
echo "backend of a visitor who never reads: $high (PipeHighWater 64 MiB, tunnelc RSS +$high_growth KiB)," \
  "$low (16 KiB, RSS +$low_growth KiB)"
[ "${low%% *}" = stalled ] || fail "PipeHighWater 16 KiB: the backend's whole 48 MiB was taken ($low)"
# Window 256 KiB + mark 16 KiB + one 64 KiB read + the kernel's buffers between backend, tunnelc and tunneld.
[ "${low#* }" -le $((12 * MIB)) ] || fail "PipeHighWater 16 KiB: tunnelc took ${low#* } bytes from a stalled backend"
[ "$low_growth" -le $((16 * 1024)) ] || fail "PipeHighWater 16 KiB: tunnelc grew by $low_growth KiB"
[ "$high_growth" -ge $((32 * 1024)) ] ||
  fail "PipeHighWater 64 MiB: tunnelc holding 48 MiB grew by only $high_growth KiB (is RSS measuring anything?)"

stop_checked home1 tunneld
pass "tunnelc's PipeHighWater bounds what it reads from a backend ahead of a closed window (${high#* } vs ${low#* } bytes)"
