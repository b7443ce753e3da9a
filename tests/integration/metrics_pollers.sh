#!/usr/bin/env bash
# The unauthenticated MetricsListen port cannot stall the server: with a 4,096-tunnel table (16 backups each), four
# pollers fetching /metrics back to back while visitors' requests through a tunnel are timed: the visitors' p99
# stays within a bound set from the same requests measured without pollers in this run, and every exposition the
# pollers read is whole and well formed. Then one address gets at most METRICS_PER_ADDRESS (4) scrapes at once: a
# fifth is closed unanswered while another address is served.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt 9000 ]; then echo "SKIP: metrics_pollers: needs 9000 descriptors for 4,096 listeners, have $(ulimit -n)"; exit 0; fi
make_pki
METRICS_PORT=$(free_port)
TUNNELD_EXTRA_JSON="\"MetricsListen\": \"127.0.0.1:$METRICS_PORT\""
start_tunneld '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 5000, "ApiMaxBody": 16777216}'
PORT=$(free_port); P1=$(free_port)
start_marker_nginx one "$P1" one
start_tunnelc home1 "[$P1]"
wait_client_connected home1

# 4,096 tunnels on 127.0.X.Y:$PORT, 16 backups each from a pool of 64 names; tunnel 0 is home1's (the visitors').
python3 - "$PORT" "$P1" >"$TEST_TMP/table.json" <<'PY'
import json, sys
port, p1 = int(sys.argv[1]), int(sys.argv[2])
t = [{"ListenAddress": "127.0.%d.%d" % (1 + i // 250, 1 + i % 250), "ListenPort": port,
      "ClientIdentifier": "home1" if i == 0 else "p%d" % i,
      "BackupClientIdentifiers": ["b%d" % ((i + k) % 64) for k in range(16)], "BackEndPort": p1} for i in range(4096)]
print(json.dumps(t))
PY
r=$(curl -sS -o "$TEST_TMP/put.out" -w '%{http_code}' --max-time 120 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
  --key "$PKI/admin.key" -X PUT -H 'Content-Type: application/json' --data-binary "@$TEST_TMP/table.json" \
  "https://127.0.0.1:$MGMT_PORT/tunnels" 2>&1) || true
[ "$r" = 200 ] || fail "PUT of 4096 tunnels: $r $(head -c 300 "$TEST_TMP/put.out")"
[ "$(http_get_marker 127.0.1.1 "$PORT")" = one ] || fail "tunnel 0 does not route"
CLIENTS=$((1 + 4095 + 64))

cat >"$TEST_TMP/mp.py" <<'PY'
import json, os, re, socket, sys, time

def fetch(port, source, timeout=60):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    data = bytearray()
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        data += b
    s.close()
    return bytes(data)

SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z_]+="[^"\\\n]*"\})? ([0-9]+)$')

def check(data, listeners, clients):
    """Whole and well formed: status 200, every line a comment or a sample, TYPE before samples, no duplicate
    series, one series per listener and per client for each of their names, ending with the API counters."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200"):
        return "no 200 answer: %r" % head[:80]
    text = body.decode("utf-8")
    if not text.endswith("\n"):
        return "does not end with a line feed"
    typed, seen, per_name = set(), set(), {}
    lines = text.split("\n")[:-1]
    for ln in lines:
        if ln.startswith("# TYPE "):
            typed.add(ln.split()[2])
            continue
        if ln.startswith("# HELP "):
            continue
        m = SAMPLE.match(ln)
        if m is None:
            return "malformed line %r" % ln
        if m.group(1) not in typed:
            return "sample before its TYPE: %r" % ln
        key = m.group(1) + (m.group(2) or "")
        if key in seen:
            return "duplicate series %r" % key
        seen.add(key)
        per_name[m.group(1)] = per_name.get(m.group(1), 0) + 1
    for n in ("connections_accepted_total", "connections_refused_total", "connections_unrouted_total",
              "hostname_timeouts_total", "hostname_unreadable_total", "connections_aborted_total", "connections_open", "bytes_in_total", "bytes_out_total"):
        if per_name.get("tunneld_tunnel_" + n, 0) != listeners:
            return "tunneld_tunnel_%s: %d series, expected %d" % (n, per_name.get("tunneld_tunnel_" + n, 0), listeners)
    for n in ("bytes_in_total", "bytes_out_total", "streams_open"):
        if per_name.get("tunneld_client_" + n, 0) != clients:
            return "tunneld_client_%s: %d series, expected %d" % (n, per_name.get("tunneld_client_" + n, 0), clients)
    if not lines[-1].startswith("tunneld_api_put_requests_total"):
        return "truncated: last line %r" % lines[-1]
    return None

def visit(port, n):
    lat = []
    for _ in range(n):
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.1.1", port), timeout=60)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        if b"one" not in data:
            print(json.dumps({"error": "visitor got %r" % data[:100]}))
            sys.exit(1)
        lat.append((time.monotonic() - t0) * 1000)
    lat.sort()
    print(json.dumps({"n": n, "p50_ms": round(lat[n // 2], 1), "p99_ms": round(lat[int(n * 0.99) - 1], 1),
                      "max_ms": round(lat[-1], 1)}))

def poll(port, listeners, clients, stop):
    n = 0
    while not os.path.exists(stop):
        data = fetch(port, "127.0.0.%d" % (10 + os.getpid() % 200))
        # Every fourth fetch is checked whole (the check costs more CPU than the fetch, and CPU is what the
        # visitors compete for); the others must at least be as long and end as the exposition does.
        err = check(data, listeners, clients) if n % 4 == 0 else \
            (None if len(data) > 1000000 and b"\ntunneld_api_put_requests_total" in data[-4096:] else "truncated")
        if err:
            print(json.dumps({"error": err}), flush=True)
            sys.exit(1)
        n += 1
        print(json.dumps({"fetched": n, "bytes": len(data)}), flush=True)

def per_address(port, listeners, clients):
    """Four scrapes held open from one address (127.0.0.3, then .5, .7 on a retry; no request yet); a fifth from there is closed unanswered; one from
    127.0.0.4 is served whole. The held four must still be open afterwards (not timed out), else it proves nothing:
    then try again."""
    last = None
    for attempt in range(3):
        try:
            r = per_address_once(port, listeners, clients, "127.0.0.%d" % (3 + 2 * attempt))
        except OSError as e:  # reported below if no attempt can conclude
            last = repr(e)
            continue
        if r is not None:
            print(json.dumps(r))
            return
    print(json.dumps({"error": "no attempt concluded (the four held scrapes timed out first, or %s)" % last}))

def per_address_once(port, listeners, clients, source):
    held = []
    try:
        return per_address_held(port, listeners, clients, source, held)
    finally:  # an attempt cut short must not leave its scrapes holding the address's slots for the next one
        for s in held:
            s.close()

def per_address_held(port, listeners, clients, source, held):
    for _ in range(4):
        s = socket.socket(); s.bind((source, 0)); s.connect(("127.0.0.1", port)); held.append(s)
    time.sleep(0)
    fifth = socket.socket(); fifth.bind((source, 0)); fifth.settimeout(30)
    try:
        # The refusal is a reset right after the accept: on a busy machine it can reach connect() itself.
        fifth.connect(("127.0.0.1", port))
        fifth.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        got = fifth.recv(65536)
    except OSError:
        got = b""
    fifth.close()
    other = check(fetch(port, "127.0.0.4"), listeners, clients)
    alive = 0
    for s in held:
        s.setblocking(False)
        try:
            alive += 1 if s.recv(1, socket.MSG_PEEK) else 0
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    if alive == 4:
        return {"fifth_answered": got[:40].decode("latin-1"), "other_address": other or "ok"}
    return None

mode = sys.argv[1]
if mode == "visit":
    visit(int(sys.argv[2]), int(sys.argv[3]))
elif mode == "poll":
    poll(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
elif mode == "check":
    err = check(fetch(int(sys.argv[2]), "127.0.0.1"), int(sys.argv[3]), int(sys.argv[4]))
    print(err or "ok")
else:
    per_address(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
PY
MP="python3 $TEST_TMP/mp.py"
r=$($MP check "$METRICS_PORT" 4096 "$CLIENTS" 2>&1) || true
[ "$r" = ok ] || fail "exposition of the idle table: $r"
fetch_bytes=$(curl -sS --max-time 60 "http://127.0.0.1:$METRICS_PORT/metrics" | wc -c)
echo "exposition of 4096 tunnels x 16 backups ($CLIENTS clients): $fetch_bytes bytes"

VISITS=200
base=$($MP visit "$PORT" "$VISITS" 2>&1) || fail "visitors without pollers: $base"
echo "visitors without pollers: $base"
for i in 1 2 3 4; do spawn "poller$i" $MP poll "$METRICS_PORT" 4096 "$CLIENTS" "$TEST_TMP/poll.stop"; done
# The load is held: every poller has finished a fetch (and goes on) before the visitors are timed.
for i in 1 2 3 4; do wait_log "$TEST_TMP/poller$i.log" '"fetched"|"error"' 120; done
loaded=$($MP visit "$PORT" "$VISITS" 2>&1) || fail "visitors with pollers: $loaded"
fetched_during=$(for i in 1 2 3 4; do tail -n 1 "$TEST_TMP/poller$i.log"; done)
touch "$TEST_TMP/poll.stop"
echo "visitors with 4 pollers: $loaded"
echo "pollers (last line each): $(tr '\n' ' ' <<<"$fetched_during")"
grep -q '"error"' "$TEST_TMP"/poller*.log && fail "a poller read a broken exposition: $(grep -h '"error"' "$TEST_TMP"/poller*.log | head -n 1)"
p99_base=$(json_get "$base" 'd["p99_ms"]')
p99_loaded=$(json_get "$loaded" 'd["p99_ms"]')
# The bound: ten times the unloaded p99 of this run, and never below 250 ms. The pollers and the visitors share two
# cores under ASan with whatever else runs, so the visitors' requests can wait for CPU; what must not happen is a
# visitor waiting for a whole exposition to be generated (hundreds of ms to seconds for this table, all in one loop
# turn). Scrapes now render 16 KiB chunks, one per 4 ms for all of them together.
bound=$(python3 -c "print(max(10 * $p99_base, 250))")
python3 -c "import sys; sys.exit(0 if $p99_loaded <= $bound else 1)" ||
  fail "visitor p99 with 4 pollers $p99_loaded ms > bound $bound ms (without pollers $p99_base ms)"

r=$($MP per_address "$METRICS_PORT" 4096 "$CLIENTS" 2>&1) || fail "the per-address check failed: $r"
echo "per-address limit: $r"
[ "$(json_get "$r" 'd.get("error", "")')" = "" ] || fail "per-address check: $r"
[ "$(json_get "$r" 'd["fifth_answered"]')" = "" ] || fail "a fifth scrape from one address was answered: $r"
[ "$(json_get "$r" 'd["other_address"]')" = ok ] || fail "another address was not served whole beside 4 held scrapes: $r"
stop_checked tunneld home1
pass "visitor p99 $p99_loaded ms with 4 pollers of a $fetch_bytes-byte exposition (without: $p99_base ms, bound $bound ms); a 5th scrape from one address refused, another address served"
