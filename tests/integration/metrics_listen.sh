#!/usr/bin/env bash
# MetricsListen serves Prometheus text over plain HTTP without a certificate; other paths get 404; off by default.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld
# Off by default: nothing but control and management ports are bound.
api GET /metrics
[ "$API_STATUS" = 200 ] || fail "GET /metrics on the management port: $API_STATUS"
grep -q '^tunneld_clients_connected 0$' <<<"$API_BODY" || fail "management /metrics lacks tunneld_clients_connected"
listeners() { ss -Hltnp | grep -F "pid=$1," | awk '{ print $4 }' | sort; }
got=$(listeners "$TUNNELD_PID" | tr '\n' ' ')
want=$(printf '127.0.0.1:%s\n' "$CONTROL_PORT" "$MGMT_PORT" | sort | tr '\n' ' ')
[ "$got" = "$want" ] || fail "without MetricsListen tunneld listens on '$got', expected only control and management '$want'"
stop_tunneld
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS on SIGTERM"

METRICS_PORT=$(free_port)
python3 - "$TEST_TMP/tunneld.json" "$METRICS_PORT" <<'PY'
import json, sys
path, port = sys.argv[1], sys.argv[2]
cfg = json.load(open(path))
cfg["MetricsListen"] = "127.0.0.1:" + port
json.dump(cfg, open(path, "w"))
PY
spawn_checked tunneld "$TUNNELD" --config "$TEST_TMP/tunneld.json" --init-state
wait_port "$METRICS_PORT"
listeners "$SPAWNED_PID" | grep -qx "127.0.0.1:$METRICS_PORT" || fail "the listener check does not see the metrics port"
body=$(curl -sS --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics")
grep -q '^# TYPE tunneld_streams_open gauge$' <<<"$body" || fail "plain /metrics lacks TYPE lines: $body"
grep -q '^tunneld_api_put_requests_total' <<<"$body" || fail "plain /metrics lacks the API counters"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$METRICS_PORT/tunnels")
[ "$code" = 404 ] || fail "plain metrics port served /tunnels with $code (must be 404: it is unauthenticated)"
pass "MetricsListen off by default, serves only GET /metrics when set"
