#!/usr/bin/env bash
# An address cannot be locked out of its own slots by handshakes that send a whole ClientHello, take the server's
# answer and then send nothing (MaxPendingHandshakesPerSource): eight such connections from 127.0.0.1 on each TLS
# port, each replaced every 1.5 s (younger than any age-based grace), are held for the whole test while an admin
# from 127.0.0.1 makes 27 management requests, then a tunnelc from 127.0.0.1 starts and connects 27 times. Each
# (all but one, see below) gets in at its first attempt: the stalled handshakes have made no progress since their
# ClientHello, the newcomer has, so a stalled one makes room. An admin from 127.0.0.2 is served meanwhile too.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

ROUNDS=27
STALLED=8          # the default MaxPendingHandshakesPerSource: the source's every slot
PERIOD_S=1.5
make_pki
# HandshakeTimeoutMs stays far above the replacement period: only the admission rule can free a slot.
start_tunneld '{"HandshakeTimeoutMs": 60000}'

cat >"$TEST_TMP/stall.py" <<'PY'
# Per port, STALLED slots; each holds a connection that sent a real ClientHello (ssl over memory BIOs, so nothing
# after it is ever sent), read the server's answer and stalls; slot k of n is replaced every PERIOD seconds, the
# slots staggered over the period. Runs until killed.
import json, selectors, socket, ssl, sys, time
ports = [int(p) for p in sys.argv[1].split(",")]
n, period = int(sys.argv[2]), float(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

def client_hello():
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    t = ctx.wrap_bio(inc, out)
    try:
        t.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()

sel = selectors.DefaultSelector()
stats = {"opened": 0, "answered": 0, "closed_by_server": 0, "connect_failed": 0}
slots = [(p, k) for p in ports for k in range(n)]
held = {}
answered = set()  # slots whose current connection was answered
due = {}
t0 = time.monotonic()
for j, slot in enumerate(slots):
    due[slot] = t0 + j * period / len(slots)

def replace(slot):
    old = held.pop(slot, None)
    if old is not None:
        try:
            sel.unregister(old)
        except (KeyError, ValueError):
            pass
        old.close()
    try:
        s = socket.create_connection(("127.0.0.1", slot[0]), timeout=10)
        s.sendall(client_hello())
    except OSError:
        stats["connect_failed"] += 1
        return
    s.setblocking(False)
    stats["opened"] += 1
    held[slot] = s
    answered.discard(slot)
    sel.register(s, selectors.EVENT_READ, slot)

announced = False
last_report = t0
last_replace = 0.0
while True:
    now = time.monotonic()
    # One replacement at a time, at least half a slot's share of the period apart: when this process is
    # descheduled on a loaded machine it resumes the steady replacement instead of replacing the overdue slots in
    # one burst (a burst of this many within a real handshake's round trip is a different attack, see CONFIG.md).
    slot = min(slots, key=lambda sl: due[sl])
    if due[slot] <= now and now - last_replace >= period / len(slots) / 2:
        replace(slot)
        last_replace = now
        due[slot] = max(due[slot] + period, now + period / 2)
    for key, _ in sel.select(timeout=min(0.05, max(0.0, min(due.values()) - time.monotonic()))):
        s = key.fileobj
        try:
            b = s.recv(65536)
        except OSError:
            b = b""
        if b:
            if key.data not in answered:
                answered.add(key.data)
                stats["answered"] += 1
            continue
        stats["closed_by_server"] += 1
        sel.unregister(s)
        held.pop(key.data, None)
        s.close()
    if not announced and time.monotonic() - t0 >= period and stats["answered"] >= len(slots):
        print(json.dumps({"event": "holding", **stats}), flush=True)
        announced = True
    if time.monotonic() - last_report >= 5:
        last_report = time.monotonic()
        print(json.dumps(stats), flush=True)
PY
spawn stall python3 "$TEST_TMP/stall.py" "$MGMT_PORT,$CONTROL_PORT" "$STALLED" "$PERIOD_S"
STALL_PID=$SPAWNED_PID
wait_log "$TEST_TMP/stall.log" '"holding"' 30

admin_get() {  # admin_get FROM: prints the status of one admin GET /tunnels sent from local address FROM
  curl -sS -o /dev/null -w '%{http_code}' --max-time 20 --interface "$1" --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$MGMT_PORT/tunnels" 2>>"$TEST_TMP/curl.err" ||
    true
}
admin_rounds() {
  local i
  for ((i = 1; i <= ROUNDS; i++)); do echo "$(admin_get 127.0.0.1)"; done
}
# The admin's rounds, then the tunnelc's, one after the other: each under the same attack, neither slowed by the other.
admin_rounds >"$TEST_TMP/admin.status"

# tunnelc from 127.0.0.1 (its source for a server on 127.0.0.1): a fresh process each round, so each round is one
# first connection attempt, whose success its log tells apart from a retry ("after N ms down, M attempts").
start_tunnelc home1
wait_log "$TEST_TMP/tunnelc-home1.log" "client home1: connected to" 30
stop_checked home1
first_try=0
for ((i = 1; i <= ROUNDS; i++)); do
  spawn_checked "tc$i" "$TUNNELC" --config "$TEST_TMP/tunnelc-home1.json"
  pid=$SPAWNED_PID
  wait_log "$TEST_TMP/tc$i.log" "client home1: connected to" 30
  grep -E "client home1: connected to" "$TEST_TMP/tc$i.log" | grep -q "attempts" || first_try=$((first_try + 1))
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  [ "$status" = 0 ] || fail "tunnelc round $i exited with status $status on SIGTERM"
done
other=0
for i in 1 2 3 4 5; do [ "$(admin_get 127.0.0.2)" = 200 ] && other=$((other + 1)); done
admin_ok=$(grep -c '^200$' "$TEST_TMP/admin.status" || true)
kill -0 "$STALL_PID" 2>/dev/null || fail "the stalled handshakes stopped before the end"
echo "stalled handshakes: $(tail -n 1 "$TEST_TMP/stall.log")"
echo "from 127.0.0.1: admin $admin_ok/$ROUNDS, tunnelc first attempts $first_try/$ROUNDS; admin from 127.0.0.2: $other/5"
# All but one: a genuine handshake whose own round trip lasts longer than the attack takes to replace all its other
# slots (about 1.3 s here, 7 x 1.5 s / 8) is, by then, no different from a stalled one, and on a loaded 2-core ASan
# machine one in a few runs has such a round trip. The rule before this one served 21/27 and 11/27 here.
MIN_OK=$((ROUNDS - 1))
[ "$admin_ok" -ge "$MIN_OK" ] ||
  fail "admin from the stalled handshakes' address: $admin_ok/$ROUNDS served ($(sort "$TEST_TMP/admin.status" | uniq -c | tr '\n' ' '); $(tail -n 2 "$TEST_TMP/curl.err"))"
[ "$first_try" -ge "$MIN_OK" ] || fail "tunnelc from the stalled handshakes' address: $first_try/$ROUNDS connected at the first attempt"
[ "$other" = 5 ] || fail "admin from 127.0.0.2: $other/5 served"
grep -q "TLS handshake evicted: MaxPendingHandshakesPerSource reached for its source" "$TEST_TMP/tunneld.log" ||
  fail "no stalled handshake was evicted: the test did not fill the source's slots"
pass "admin $admin_ok/$ROUNDS and tunnelc $first_try/$ROUNDS from the address of $STALLED stalled handshakes per port, each replaced every ${PERIOD_S} s"
