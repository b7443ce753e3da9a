#!/usr/bin/env bash
# tunneld knows what each client serves: tunnelc announces its AllowedBackEndPorts and service names when its link
# comes up and after SIGHUP (docs/PROTOCOL.md 8a). GET /clients shows the list; GET /tunnels marks a tunnel its client
# would refuse with "Problems" (absent when fine); the PUT still applies and tunneld logs each problem at apply time
# and when the client's list changes. A malformed message closes that link only; an unknown message type is ignored.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
HOSTILE="$TUNNEL_TOOLS/hostile_client"

make_pki
start_tunneld

ALLOWED=$(free_port); OTHER=$(free_port)
start_marker_nginx allowed "$ALLOWED" allowed
start_marker_nginx other "$OTHER" other
start_tunnelc home1 "[$ALLOWED]" "{\"api\": \"127.0.0.1:$ALLOWED\"}"
wait_client_connected home1

# jq-free JSON checks: python3 prints the value asked for, compact.
jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=eval(sys.argv[2]); print(json.dumps(v, separators=(",",":")))' "$API_BODY" "$1"; }
client_list_is() { api GET /clients && [ "$(jget "[d['home1'].get('AllowedBackEndPorts'), d['home1'].get('AllowedServices')]")" = "$1" ]; }
wait_until 15 client_list_is "[[$ALLOWED],[\"api\"]]" || fail "GET /clients never showed home1's allow-list: $API_BODY"
echo "GET /clients: home1 allows $(jget "d['home1']['AllowedBackEndPorts']") and services $(jget "d['home1']['AllowedServices']")"

P_PORT=$(free_port); P_SVC=$(free_port); P_OK=$(free_port)
put_tunnels "[
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_PORT, \"ClientIdentifier\": \"home1\", \"BackupClientIdentifiers\": [\"home2\"], \"BackEndPort\": $OTHER},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_SVC, \"ClientIdentifier\": \"home1\", \"BackEndService\": \"web\"},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_OK, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $ALLOWED}]"
# The PUT's answer is the table as GET shows it, Problems included.
[ "$(jget "[t.get('Problems') for t in d]")" = "[[\"client home1 does not allow BackEndPort $OTHER\"],[\"client home1 does not allow BackEndService web\"],null]" ] ||
  fail "PUT answer: $(jget "[t.get('Problems') for t in d]")"
api GET /tunnels
[ "$API_STATUS" = 200 ] || fail "GET /tunnels: $API_STATUS"
[ "$(jget "d[0].get('Problems')")" = "[\"client home1 does not allow BackEndPort $OTHER\"]" ] ||
  fail "tunnel to BackEndPort $OTHER: Problems $(jget "d[0].get('Problems')")"
[ "$(jget "d[1].get('Problems')")" = '["client home1 does not allow BackEndService web"]' ] ||
  fail "tunnel to service web: Problems $(jget "d[1].get('Problems')")"
[ "$(jget "'Problems' in d[2]")" = false ] || fail "an allowed tunnel carries Problems: $(jget "d[2]")"
# Every field the API had before stays exactly as it was.
[ "$(jget "sorted(d[2].keys())")" = '["ActiveClient","BackEndPort","BackupClientIdentifiers","ClientIdentifier","HaProxyProxyProtocol","ListenAddress","ListenHostnameGlob","ListenPort","OpenConnections"]' ] ||
  fail "GET /tunnels fields changed: $(jget "sorted(d[2].keys())")"
echo "GET /tunnels: $(jget "[t.get('Problems') for t in d]")"
# GET output can still be PUT back as it is.
api PUT /tunnels "$API_BODY"
[ "$API_STATUS" = 200 ] || fail "PUT of GET /tunnels output with Problems: $API_STATUS $API_BODY"
wait_log "$TEST_TMP/tunneld.log" "warn: tunnel port $P_PORT: client home1 does not allow BackEndPort $OTHER \(table applied\)"
wait_log "$TEST_TMP/tunneld.log" "warn: tunnel port $P_SVC: client home1 does not allow BackEndService web \(table applied\)"
[ "$(http_get_marker 127.0.0.1 "$P_OK")" = allowed ] || fail "the allowed tunnel does not work"
! http_get_marker 127.0.0.1 "$P_PORT" >/dev/null 2>&1 || fail "a tunnel home1 does not allow was served"

# SIGHUP with both allowed: the problems go, and the tunnels work.
start_tunnelc_config() {
  python3 - "$TEST_TMP/tunnelc-home1.json" "$1" "$2" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["AllowedBackEndPorts"] = json.loads(sys.argv[2]); c["ServiceToLocalAddrMap"] = json.loads(sys.argv[3])
json.dump(c, open(p, "w"))
PY
}
start_tunnelc_config "[$ALLOWED, $OTHER]" "{\"api\": \"127.0.0.1:$ALLOWED\", \"web\": \"127.0.0.1:$OTHER\"}"
kill -HUP "$TUNNELC_PID_home1"
no_problems() { api GET /tunnels && [ "$(jget "[t.get('Problems') for t in d]")" = "[null,null,null]" ]; }
wait_until 15 no_problems || fail "problems stayed after the reload: $API_BODY"
client_list_is "[[$(printf '%s\n' "$ALLOWED" "$OTHER" | sort -n | paste -sd,)],[\"api\",\"web\"]]" ||
  fail "GET /clients after the reload: $API_BODY"
[ "$(http_get_marker 127.0.0.1 "$P_PORT")" = other ] || fail "no traffic through the tunnel once allowed"
[ "$(http_get_marker 127.0.0.1 "$P_SVC")" = other ] || fail "no traffic through the service tunnel once allowed"
echo "after SIGHUP: no problems, both tunnels answer"

# A reload that takes a port away again is logged against the tunnel routed to it.
start_tunnelc_config "[$ALLOWED]" "{\"api\": \"127.0.0.1:$ALLOWED\", \"web\": \"127.0.0.1:$OTHER\"}"
kill -HUP "$TUNNELC_PID_home1"
# One line per announcement, rate-limited per client: within 10 s of the last one it is in the summary ("last: ...").
wait_log "$TEST_TMP/tunneld.log" "client home1: allow-list announced \(1 BackEndPorts, 2 services\); 1 tunnel names a backend it does not accept \(first: port $P_PORT -> $OTHER\)" 30

# A client that announces nothing (an older tunnelc) is unknown: no list, no problems for its tunnels.
# An unknown message type is ignored; a malformed allow-list closes that link only, with GoAway(1).
unknown=$("$HOSTILE" --port "$CONTROL_PORT" --ca "$PKI/ca.crt" --cert "$PKI/home2.crt" --key "$PKI/home2.key" \
  --mode control-message --message 0163000000000008 --seconds 10) || fail "hostile_client failed"
grep -q "result: answered_fin" <<<"$unknown" || fail "unknown message type: $unknown"
bad=$("$HOSTILE" --port "$CONTROL_PORT" --ca "$PKI/ca.crt" --cert "$PKI/home2.crt" --key "$PKI/home2.key" \
  --mode control-message --message 01010000000000100002209000500000 --seconds 10) || fail "hostile_client failed"
grep -q "result: closed go_away=1" <<<"$bad" || fail "malformed allow-list (ports descending): $bad"
wait_log "$TEST_TMP/tunneld.log" "client home2: .*malformed control message"
api GET /clients
[ "$(jget "'AllowedBackEndPorts' in d['home2']")" = false ] || fail "home2 announced nothing valid, yet: $API_BODY"
client_connected home1 || fail "another client's bad message cost home1 its link"
[ "$(http_get_marker 127.0.0.1 "$P_OK")" = allowed ] || fail "home1 stopped serving"
stop_checked home1 tunneld
pass "allow-list shown in /clients, Problems in /tunnels and the log, gone after SIGHUP; bad messages cost only their link"
