#!/usr/bin/env bash
# failover_kill: one tunnel, primary home1 and backup home2, each with its own backend (a service tunnel: each
# client maps "web" to its own nginx, which answers with the client's name). A probe opens a new connection every
# 50 ms throughout.
#  1. kill -9 the primary: new connections go to the backup; the time until the first success via home2 is printed
#     and must stay within the dead-peer timeout + keepalive interval + slack.
#  2. restart the primary: new connections return to it (fail-back), while a keep-alive connection opened on the
#     backup stays there.
#  3. SIGSTOP the primary (no TCP error at all, only silence): the keepalive's dead-peer timeout must detect it and
#     new connections go to the backup within the same bound.
#  4. restart the primary again, then stop it with SIGTERM (planned maintenance): new connections move to the
#     backup at once and not one request fails.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

KEEPALIVE_MS=500 DEAD_PEER_MS=2000        # FAST_LIMITS / FAST_CLIENT_LIMITS in fixture.sh
# The failover bound is what this test is about, so it stays; its slack is for a busy 2-core CI machine under ASan
# (the dead-peer timer, the probe's next connection and its TLS-free round trip through two processes all wait
# for a core). It still fails a failover that waits for anything longer than the dead-peer timeout.
BOUND_MS=$((DEAD_PEER_MS + KEEPALIVE_MS + 8000))

make_pki
start_tunneld
WEB1=$(free_port); WEB2=$(free_port)
start_marker_nginx web1 "$WEB1" home1
start_marker_nginx web2 "$WEB2" home2
start_tunnelc home1 '[]' "{\"web\": \"127.0.0.1:$WEB1\"}"
start_tunnelc home2 '[]' "{\"web\": \"127.0.0.1:$WEB2\"}"
wait_client_connected home1
wait_client_connected home2

PUBLIC=$(free_port)
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\",
               \"BackupClientIdentifiers\": [\"home2\"], \"BackEndService\": \"web\"}]"
wait_port "$PUBLIC"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC")" = home1 ] || fail "with both clients up, the primary must serve"

active_client() {
  api GET /tunnels && [ "$API_STATUS" = 200 ] && [ "$(json_get "$API_BODY" 'd[0]["ActiveClient"]')" = "$1" ]
}
# True once the probe has a success via MARKER that started after T_MS.
probe_has_ok_after() { probe_first_ok_after probe "$1" "$2" >/dev/null; }

start_http_probe probe 127.0.0.1 "$PUBLIC"
wait_until 10 probe_has_ok_after home1 0 || fail "the probe never got an answer from home1"

# ---- 1. kill -9 the primary ----
t_kill=$(now_ms)
kill -KILL "$TUNNELC_PID_home1"
wait_until 20 probe_has_ok_after home2 "$t_kill" || fail "no request succeeded via the backup after kill -9"
t_ok=$(probe_first_ok_after probe home2 "$t_kill")
kill_ms=$((t_ok - t_kill))
echo "failover after kill -9 of the primary: first success via the backup after $kill_ms ms (bound $BOUND_MS ms)"
[ "$kill_ms" -le "$BOUND_MS" ] || fail "failover after kill -9 took $kill_ms ms, more than $BOUND_MS ms"
# Once the backup serves, every new connection must succeed via it.
t_settled=$(now_ms)
wait_until 10 probe_has_ok_after home2 "$((t_settled + 500))" || fail "the probe stopped getting answers"
bad=$(awk -v t="$t_settled" '$1 > t && ($3 != "ok" || $4 != "home2")' "$TEST_TMP/probe.probe")
[ -z "$bad" ] || fail "after failover, requests failed or went elsewhere: $bad"
failed_during=$(awk -v t="$t_kill" -v u="$t_ok" '$1 >= t && $1 <= u && $3 == "fail"' "$TEST_TMP/probe.probe" | wc -l)
echo "requests that failed between the kill and recovery: $failed_during"

# A keep-alive connection opened on the backup now, kept across the fail-back.
ka_in="$TEST_TMP/ka.in"; ka_out="$TEST_TMP/ka.out"
mkfifo "$ka_in"
spawn keepalive python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
f = s.makefile("rb")
def get():
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    n = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    print(f.read(n).decode().strip(), flush=True)
for cmd in open(sys.argv[2]):
    get()
' "$PUBLIC" "$ka_in"
exec 7>"$ka_in"
echo get >&7
wait_until 10 grep -q . "$TEST_TMP/keepalive.log" || fail "keep-alive connection got no answer"
[ "$(sed -n 1p "$TEST_TMP/keepalive.log")" = home2 ] || fail "keep-alive connection: want home2, got $(cat "$TEST_TMP/keepalive.log")"

# ---- 2. fail-back ----
t_restart=$(now_ms)
start_tunnelc home1 '[]' "{\"web\": \"127.0.0.1:$WEB1\"}"
wait_client_connected home1
t_connected=$(now_ms)
wait_until 15 active_client home1 || fail "GET /tunnels: ActiveClient is not home1 after the primary returned"
[ "$(http_get_marker 127.0.0.1 "$PUBLIC")" = home1 ] || fail "fail-back: a new connection did not go to home1"
wait_until 10 probe_has_ok_after home1 "$t_connected" || fail "fail-back: the probe got no answer via home1"
t_back=$(probe_first_ok_after probe home1 "$t_restart")
echo "fail-back: first success via the returned primary $((t_back - t_restart)) ms after its restart (process start and TLS handshake included)"
# The connection opened on the backup stays there.
echo get >&7
ka_answers() { [ "$(wc -l <"$TEST_TMP/keepalive.log")" -ge "$1" ]; }
wait_until 10 ka_answers 2 || fail "keep-alive connection got no second answer after fail-back"
[ "$(sed -n 2p "$TEST_TMP/keepalive.log")" = home2 ] || fail "open connection moved at fail-back: $(cat "$TEST_TMP/keepalive.log")"
exec 7>&-
t_check=$(now_ms)
wait_until 10 probe_has_ok_after home1 "$((t_check + 300))" || fail "the probe stopped getting answers via home1"
bad=$(awk -v t="$t_check" '$1 > t && ($3 != "ok" || $4 != "home1")' "$TEST_TMP/probe.probe")
[ -z "$bad" ] || fail "after fail-back, requests failed or went to the backup: $bad"

# ---- 3. a silent primary (SIGSTOP): only the keepalive can tell ----
t_stop=$(now_ms)
kill -STOP "$TUNNELC_PID_home1"
wait_until 20 probe_has_ok_after home2 "$t_stop" || fail "no request succeeded via the backup after SIGSTOP"
t_ok=$(probe_first_ok_after probe home2 "$t_stop")
stop_ms=$((t_ok - t_stop))
echo "failover from a silent (SIGSTOP) primary: first success via the backup after $stop_ms ms (dead-peer timeout $DEAD_PEER_MS ms, bound $BOUND_MS ms)"
[ "$stop_ms" -le "$BOUND_MS" ] || fail "failover from a silent primary took $stop_ms ms, more than $BOUND_MS ms"
grep -q "dead-peer" "$TEST_TMP/tunneld.log" || fail "tunneld did not log a dead-peer timeout for the silent primary"
kill -KILL "$TUNNELC_PID_home1"

# ---- 4. a planned stop of the primary (SIGTERM): new connections move at once, none fails ----
start_tunnelc home1 '[]' "{\"web\": \"127.0.0.1:$WEB1\"}"
wait_client_connected home1
t_back2=$(now_ms)
wait_until 10 probe_has_ok_after home1 "$t_back2" || fail "second fail-back: no answer via home1"
t_term=$(now_ms)
stop_checked home1
wait_until 10 probe_has_ok_after home2 "$t_term" || fail "no request succeeded via the backup after SIGTERM"
t_ok=$(probe_first_ok_after probe home2 "$t_term")
term_ms=$((t_ok - t_term))
t_after=$(now_ms)
wait_until 10 probe_has_ok_after home2 "$((t_after + 300))" || fail "the probe stopped getting answers after SIGTERM"
term_fails=$(awk -v t="$t_back2" '$1 > t && $3 == "fail"' "$TEST_TMP/probe.probe")
echo "planned stop (SIGTERM) of the primary: first success via the backup after $term_ms ms; failed requests: $(printf '%s' "$term_fails" | grep -c . || true)"
[ -z "$term_fails" ] || fail "requests failed around a SIGTERM of the primary: $term_fails"

touch "$TEST_TMP/probe.stop"
total=$(wc -l <"$TEST_TMP/probe.probe")
fails=$(awk '$3 == "fail"' "$TEST_TMP/probe.probe" | wc -l)
echo "probe: $total requests, $fails failed (all during the kill -9 and SIGSTOP outages)"
stop_checked home2 tunneld
pass "kill -9 failover in $kill_ms ms, silent-primary failover in $stop_ms ms, SIGTERM failover in $term_ms ms without failures, fail-back with open connections kept"
