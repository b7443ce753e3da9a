#!/usr/bin/env bash
# Management API round trip: PUT then GET /tunnels (defaults written out, live status), GET output PUT back
# verbatim, GET /clients (connected and never-seen clients, certificate fingerprint), a tunnel for an absent
# client (accepted, its port closes connections at once), /ping, /metrics, keep-alive on the management port.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
start_tunneld
BACKEND_PORT=$(free_port)
PUBLIC_PORT=$(free_port)
ABSENT_PORT=$(free_port)
mkdir -p "$TEST_TMP/www"
echo "round trip backend" >"$TEST_TMP/www/index.html"
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT"
start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1

# 1. PUT with the minimum keys; the answer and GET carry every default in a fixed key order.
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT},
              {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $ABSENT_PORT, \"ClientIdentifier\": \"home2\",
               \"BackupClientIdentifiers\": [\"home3\"], \"BackEndService\": \"web\", \"HaProxyProxyProtocol\": true}]"
PUT_BODY=$API_BODY
echo "PUT answer: $PUT_BODY"
api GET /tunnels
[ "$API_STATUS" = 200 ] || fail "GET /tunnels: $API_STATUS"
GET_BODY=$API_BODY
[ "$PUT_BODY" = "$GET_BODY" ] || fail "PUT answer and GET differ:\n$PUT_BODY\n$GET_BODY"
python3 - "$GET_BODY" "$PUBLIC_PORT" "$BACKEND_PORT" "$ABSENT_PORT" <<'PY' || fail "GET /tunnels shape: $GET_BODY"
import json, sys
d = json.loads(sys.argv[1]); pub, be, absent = map(int, sys.argv[2:5])
assert isinstance(d, list) and len(d) == 2, d
assert list(d[0]) == ["ListenAddress", "ListenPort", "ClientIdentifier", "BackupClientIdentifiers", "BackEndPort",
                      "HaProxyProxyProtocol", "ListenHostnameGlob", "ActiveClient", "OpenConnections"], list(d[0])
assert d[0] == {"ListenAddress": "127.0.0.1", "ListenPort": pub, "ClientIdentifier": "home1",
                "BackupClientIdentifiers": [], "BackEndPort": be, "HaProxyProxyProtocol": False,
                "ListenHostnameGlob": "*", "ActiveClient": "home1", "OpenConnections": 0}, d[0]
assert list(d[1]) == ["ListenAddress", "ListenPort", "ClientIdentifier", "BackupClientIdentifiers", "BackEndService",
                      "HaProxyProxyProtocol", "ProxyProtocolVersion", "ListenHostnameGlob", "ActiveClient",
                      "OpenConnections"], list(d[1])
assert d[1]["BackupClientIdentifiers"] == ["home3"] and d[1]["ProxyProtocolVersion"] == 1, d[1]
assert d[1]["ActiveClient"] is None and d[1]["OpenConnections"] == 0, d[1]
PY
pass "PUT answer equals GET, defaults written out, ActiveClient/OpenConnections present"

# 2. GET output PUT back verbatim is accepted and changes nothing.
put_tunnels "$GET_BODY"
[ "$API_BODY" = "$GET_BODY" ] || fail "PUT of GET output changed the table: $API_BODY"
pass "GET output PUT back verbatim accepted"

# 3. Data flows through the tunnel; OpenConnections counts a connection held open.
body=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/index.html")
[ "$body" = "round trip backend" ] || fail "through the tunnel: got '$body'"
exec 5<>"/dev/tcp/127.0.0.1/$PUBLIC_PORT"
open_conns() { api GET /tunnels && [ "$(json_get "$API_BODY" 'd[0]["OpenConnections"]')" = "$1" ]; }
wait_until 10 open_conns 1 || fail "OpenConnections never 1 with a connection held open: $API_BODY"
exec 5>&-
wait_until 10 open_conns 0 || fail "OpenConnections never back to 0: $API_BODY"
pass "OpenConnections follows an open public connection"

# 4. GET /clients: home1 connected with every key; home2/home3 named by a tunnel, never seen: ClientUnknown.
api GET /clients
[ "$API_STATUS" = 200 ] || fail "GET /clients: $API_STATUS"
echo "GET /clients: $API_BODY"
want_fp=$(openssl x509 -in "$PKI/home1.crt" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr 'A-F' 'a-f')
python3 - "$API_BODY" "$want_fp" <<'PY' || fail "GET /clients content: $API_BODY"
import json, sys, datetime
d = json.loads(sys.argv[1]); fp = sys.argv[2]
h = d["home1"]
assert set(h) == {"CurrentState", "LastState", "RemoteAddress", "ConnectedSince", "OpenStreams", "BytesIn",
                  "BytesOut", "CertificateSha256", "PingRttMs", "AllowedBackEndPorts", "AllowedServices"}, sorted(h)
assert isinstance(h["PingRttMs"], int) and h["PingRttMs"] >= 0, h
assert all(isinstance(p, int) for p in h["AllowedBackEndPorts"]) and h["AllowedServices"] == [], h
assert h["CurrentState"] == "ClientConnected", h
assert h["LastState"] in ("ClientUnknown", "ClientDisconnected"), h
assert h["RemoteAddress"].startswith("127.0.0.1:") and int(h["RemoteAddress"].rsplit(":", 1)[1]) > 0, h
since = datetime.datetime.strptime(h["ConnectedSince"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
age = (datetime.datetime.now(datetime.timezone.utc) - since).total_seconds()
assert -5 < age < 120, age
assert isinstance(h["OpenStreams"], int) and isinstance(h["BytesIn"], int) and isinstance(h["BytesOut"], int), h
assert h["BytesIn"] > 0 and h["BytesOut"] > 0, h
assert h["CertificateSha256"] == fp, (h["CertificateSha256"], fp)
for n in ("home2", "home3"):
    assert d[n]["CurrentState"] == "ClientUnknown", d[n]
    assert "AllowedBackEndPorts" not in d[n] and "AllowedServices" not in d[n] and "PingRttMs" not in d[n], d[n]
PY
pass "GET /clients: home1 connected (fingerprint $want_fp), home2/home3 ClientUnknown"

# 5. The tunnel whose clients are absent: its port accepts and closes at once, not hangs.
wait_port "$ABSENT_PORT"
# The listener must exist (no ECONNREFUSED), and the server must end the connection: EOF or reset, not silence.
outcome=$(python3 - "$ABSENT_PORT" <<'PY'
import socket, sys, time
t0 = time.monotonic()
try:
    # ECONNREFUSED would mean no listener; a reset (even during connect, on loopback) is the server closing.
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = s.recv(100)
    what = "eof" if data == b"" else "data:%r" % data
except ConnectionResetError:
    what = "reset"
except BrokenPipeError:
    what = "reset"
except socket.timeout:
    what = "hung"
except ConnectionRefusedError:
    what = "refused"
print(what, int((time.monotonic() - t0) * 1000))
PY
) || fail "probe of the absent client's tunnel port failed"
echo "connection to a tunnel without a connected client: $outcome ms"
case ${outcome%% *} in
  eof|reset) ;;
  *) fail "connection to the absent client's port: $outcome" ;;
esac
# Promptly means without waiting for a timeout (StreamOpenTimeoutMs, 10 s by default); the rest is machine load.
[ "${outcome##* }" -lt 5000 ] || fail "closing took ${outcome##* } ms"
wait_log "$TEST_TMP/tunneld.log" "tunnel port $ABSENT_PORT: refused 1 connection\\(s\\): none of its clients is connected \\(home2 and its backups\\)"
pass "tunnel for an absent client accepted; its port closes connections promptly"

# 6. /ping and /metrics.
api GET /ping
[ "$API_STATUS" = 200 ] && [ "$API_BODY" = pong ] || fail "GET /ping: $API_STATUS '$API_BODY'"
api GET /metrics
[ "$API_STATUS" = 200 ] || fail "GET /metrics: $API_STATUS"
python3 - "$API_BODY" "127.0.0.1:$PUBLIC_PORT" "127.0.0.1:$ABSENT_PORT" <<'PY' || fail "metrics: $API_BODY"
import re, sys
text, pub, absent = sys.argv[1:4]
samples = {}
for line in text.splitlines():
    if not line or line.startswith("#"):
        assert line == "" or re.match(r"# (HELP|TYPE) \w+ ", line), line
        continue
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) (\d+(\.\d+)?)$', line)
    assert m, "not a Prometheus sample line: %r" % line
    samples[m.group(1)] = float(m.group(3))
assert samples['tunneld_tunnel_connections_accepted_total{listen="%s"}' % pub] >= 2, samples
assert samples['tunneld_tunnel_bytes_out_total{listen="%s"}' % pub] > 0, samples
assert samples['tunneld_tunnel_connections_refused_total{listen="%s"}' % absent] >= 1, samples
assert samples['tunneld_clients_connected'] == 1, samples
assert samples['tunneld_api_put_requests_total{result="ok"}'] == 2, samples
assert samples['tunneld_client_bytes_out_total{client="home1"}'] > 0, samples
PY
pass "/ping answers pong; /metrics is Prometheus text with the tunnels' counters"

# 7. Keep-alive: two requests on one TLS connection.
conns=$(curl -sS --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
  -o /dev/null -o /dev/null -w '%{http_code}:%{num_connects} ' \
  "https://127.0.0.1:$MGMT_PORT/ping" "https://127.0.0.1:$MGMT_PORT/tunnels")
echo "two management requests: $conns"
[ "$conns" = "200:1 200:0 " ] || fail "keep-alive: expected '200:1 200:0 ', got '$conns'"
pass "two management requests on one TLS connection"

# 8. IPv6: a listener given in a long form comes back canonical and carries data on ::1.
V6_PORT=$(free_port)
put_tunnels "[{\"ListenAddress\": \"0:0:0:0:0:0:0:1\", \"ListenPort\": $V6_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
[ "$(json_get "$API_BODY" 'd[0]["ListenAddress"]')" = "::1" ] || fail "IPv6 address not canonical: $API_BODY"
wait_port "$V6_PORT" ::1
body=$(curl -sS --max-time 10 -g "http://[::1]:$V6_PORT/index.html")
[ "$body" = "round trip backend" ] || fail "through the IPv6 tunnel: got '$body'"
! port_open "$PUBLIC_PORT" || fail "the replaced table's listener on $PUBLIC_PORT is still open"
api GET /clients
[ "$(json_get "$API_BODY" 'sorted(d)')" = '["home1"]' ] || fail "never-seen clients no tunnel names any more are still listed: $API_BODY"
pass "IPv6 listener: canonical address in GET, data through [::1]; the old listeners are closed; unnamed unknown clients dropped"

# 9. A client that leaves: ClientDisconnected with LastState ClientConnected, ActiveClient null.
kill -TERM "$TUNNELC_PID_home1"
client_gone() {
  api GET /clients && [ "$(json_get "$API_BODY" 'd["home1"]["CurrentState"]')" = ClientDisconnected ]
}
wait_until 15 client_gone || fail "home1 never shown as disconnected: $API_BODY"
[ "$(json_get "$API_BODY" 'd["home1"]["LastState"]')" = ClientConnected ] || fail "LastState after leaving: $API_BODY"
api GET /tunnels
[ "$(json_get "$API_BODY" 'd[0]["ActiveClient"]')" = null ] || fail "ActiveClient after home1 left: $API_BODY"
grep -qE "client home1: (disconnected|going away)" "$TEST_TMP/tunneld.log" || fail "home1 leaving not logged"
pass "a client that leaves: ClientDisconnected, LastState ClientConnected, ActiveClient null"
