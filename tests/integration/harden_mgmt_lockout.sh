#!/usr/bin/env bash
# A tunnel client's certificate (any certificate of the CA) cannot lock admins out of the management port: each
# non-admin session gets one 403 and is closed (no keep-alive, pipelined requests behind it unanswered); a source
# or identity holds at most ApiMaxNonAdminPerSource / PerIdentity sessions; a full port gives a non-admin's slot to
# the newcomer. An admin is served while 64, then 200, such sessions are thrown at the port, from the same address
# and from another one.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

NET="python3 $(dirname "$0")/tools/harden_net.py"
HEADER_TIMEOUT_MS=6000
PER_SOURCE=4
make_pki
start_tunneld "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 2000, \"ApiHeaderTimeoutMs\": $HEADER_TIMEOUT_MS,
                \"ApiMaxNonAdminPerSource\": $PER_SOURCE, \"ApiMaxNonAdminPerIdentity\": $PER_SOURCE}"
CLIENT=("$PKI/ca.crt" "$PKI/home1.crt" "$PKI/home1.key")

# admin_get FROM: one admin GET /tunnels from local address FROM; prints "STATUS MS".
admin_get() {
  curl -sS -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 --interface "$1" --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$MGMT_PORT/tunnels" 2>>"$TEST_TMP/curl.err" |
    awk '{ printf "%s %d\n", $1, $2 * 1000 }' || echo "000 10000"
}
# Another loopback address is another source (Linux routes all of 127/8 to lo).
admin_get 127.0.0.2 | grep -q '^200 ' || fail "no admin access from 127.0.0.2 at all: $(tail -n 2 "$TEST_TMP/curl.err")"

# 1. 64 sessions with a client certificate, each pipelining 3 keep-alive requests: one 403 each, then closed.
out=$($NET pipelined "$MGMT_PORT" "${CLIENT[@]}" 64 3)
echo "64 non-admin sessions, 3 pipelined requests each: $out"
[ "$(json_get "$out" 'd["errors"]')" = "[]" ] || fail "non-admin sessions failed: $out"
answered=$(json_get "$out" 'd["answers"].get("1", 0)')
# 64 handshakes at once from one address: past MaxPendingHandshakesPerSource the oldest are closed ("refused"),
# sessions past the per-source/identity bound are closed before they are answered (answers "0"); none gets two.
[ "$(json_get "$out" 'sum(v for k, v in d["answers"].items() if int(k) > 1)')" = 0 ] ||
  fail "a non-admin session was answered more than once (kept alive): $out"
[ "$answered" -ge 1 ] || fail "no non-admin session got its 403: $out"
[ "$(json_get "$out" 'list(d["statuses"])')" = '["403"]' ] || fail "non-admin answers other than 403: $out"
[ "$(json_get "$out" 'd["closed_by_server"] + d["refused"]')" = 64 ] ||
  fail "not every non-admin session was closed by tunneld: $out"
r=$(admin_get 127.0.0.1)
echo "admin right after, same address: $r"
[ "${r%% *}" = 200 ] || fail "admin refused after 64 non-admin sessions: $r"

# 2. 200 sessions started at once that never send a request; an admin from another address meanwhile, then from the
# attacker's own address while they are held.
spawn hold $NET hold "$MGMT_PORT" "${CLIENT[@]}" 200 $(( HEADER_TIMEOUT_MS / 1000 + 4 ))
HOLD_PID=$SPAWNED_PID
wait_log "$TEST_TMP/hold.log" '"holding"' 30
lat=()
for i in 1 2 3 4 5; do
  r=$(admin_get 127.0.0.2)
  [ "${r%% *}" = 200 ] || fail "admin from 127.0.0.2 refused during the 200-session storm: $r (try $i)"
  lat+=("${r#* }")
done
for i in 1 2 3; do
  r=$(admin_get 127.0.0.1)
  [ "${r%% *}" = 200 ] || fail "admin from the storm's own address refused: $r (try $i)"
  lat+=("${r#* }")
done
echo "admin GET /tunnels latency during the storm (ms): ${lat[*]}"
max=0; for l in "${lat[@]}"; do [ "$l" -gt "$max" ] && max=$l; done
# The requirement is "within a second"; ASan on a shared 2-core box gets 3x that. Before, the admin was refused.
[ "$max" -le 3000 ] || fail "admin latency $max ms during the storm"
wait "$HOLD_PID" || fail "hold tool failed"
out=$(tail -n 1 "$TEST_TMP/hold.log")
echo "200 held non-admin sessions: $out"
[ "$(json_get "$out" 'd["max_open"] <= '$((PER_SOURCE + 1)))" = true ] ||
  fail "one source held more than ApiMaxNonAdminPerSource ($PER_SOURCE) non-admin sessions: $out"
[ "$(json_get "$out" 'd["open_at_end"]')" = 0 ] || fail "non-admin sessions outlived ApiHeaderTimeoutMs: $out"

api GET /metrics
grep -E '^tunneld_(management_forbidden|handshakes_refused)_total' <<<"$API_BODY" || true
stop_checked tunneld
pass "non-admins answered once and closed, at most $PER_SOURCE held per source; admin max latency ${max} ms under 200 sessions"
