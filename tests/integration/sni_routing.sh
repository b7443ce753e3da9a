#!/usr/bin/env bash
# sni_routing: several sites on one public port, chosen by the name each visitor asks for, TLS never terminated.
# Three home web servers (nginx, each with its own certificate from a web CA made here) sit behind three clients.
# On one TLS port, a.example.test goes to home1 (exact name), anything else under example.test to home2
# ("*.example.test"); curl verifies each site's own certificate through the port, and the certificate seen is
# byte for byte that site's. A name no glob matches is refused with an unrecognized_name alert and counted;
# once a "*" tunnel is added it reaches that fallback. On a plain HTTP port the Host header routes the same way
# and an unknown host gets 421. The same glob twice is a 409 that leaves the table in force. A visitor sending a
# partial ClientHello is cut at HostnameTimeoutMs while other visitors are served meanwhile. OpenConnections counts
# per tunnel on the shared port; a PROXY v2 tunnel on it gives its site the visitor's own address; the globs survive
# a restart; one site's failover to its backup client leaves the others untouched, and with no client left its
# names are refused. A ClientHello split across segments or records routes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

HOSTNAME_TIMEOUT_MS=5000  # long enough for a visitor to be served meanwhile on a busy machine

# ---- the home web servers' own PKI ----
web_ca
web_cert site-a "DNS:a.example.test"
web_cert site-b "DNS:*.example.test"
web_cert site-f "DNS:other.test"

# web_site NAME TLS_PORT HTTP_PORT: nginx answering "NAME" over TLS (its own certificate) and plain HTTP.
web_site() {
  nginx_with "$1" 256 "
  server {
    listen 127.0.0.1:$2 ssl;
    ssl_certificate $WEB_PKI/$1.crt;
    ssl_certificate_key $WEB_PKI/$1.key;
    location / { return 200 \"$1 over TLS\\n\"; }
  }
  server { listen 127.0.0.1:$3; location / { return 200 \"$1 over HTTP\\n\"; } }" "$2" "$3"
}

make_pki
TUNNELD_LIMITS="{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 2000, \"DrainTimeoutMs\": 3000, \"HostnameTimeoutMs\": $HOSTNAME_TIMEOUT_MS}"
start_tunneld "$TUNNELD_LIMITS"
A_TLS=$(free_port); A_HTTP=$(free_port); B_TLS=$(free_port); B_HTTP=$(free_port); F_TLS=$(free_port); F_HTTP=$(free_port)
web_site site-a "$A_TLS" "$A_HTTP"
web_site site-b "$B_TLS" "$B_HTTP"
web_site site-f "$F_TLS" "$F_HTTP"
start_tunnelc home1 "[$A_TLS, $A_HTTP]"
start_tunnelc home2 "[$B_TLS, $B_HTTP]"
start_tunnelc home3 "[$F_TLS]"
for c in home1 home2 home3; do wait_client_connected "$c"; done

PT=$(free_port)  # one TLS port for every site
PH=$(free_port)  # one plain HTTP port
tunnel() {  # tunnel PORT CLIENT BACKEND GLOB
  printf '{"ListenAddress": "127.0.0.1", "ListenPort": %s, "ClientIdentifier": "%s", "BackEndPort": %s, "ListenHostnameGlob": "%s"}' \
    "$1" "$2" "$3" "$4"
}
TABLE="[$(tunnel "$PT" home1 "$A_TLS" a.example.test), $(tunnel "$PT" home2 "$B_TLS" '*.example.test'),"
TABLE+=" $(tunnel "$PH" home1 "$A_HTTP" A.Example.Test), $(tunnel "$PH" home2 "$B_HTTP" b.example.test)]"
put_tunnels "$TABLE"
wait_port "$PT"
wait_port "$PH"
python3 -c 'import json,sys; g=[t["ListenHostnameGlob"] for t in json.loads(sys.argv[1])]; sys.exit(g != ["a.example.test", "*.example.test", "a.example.test", "b.example.test"])' \
  "$API_BODY" || fail "PUT answer does not show the globs: $API_BODY"

tls_get() {  # tls_get NAME [CURL_ARGS...]: the page at https://NAME:$PT/, verified with the web CA
  local name=$1; shift
  curl -sS --max-time 20 "$@" --resolve "$name:$PT:127.0.0.1" --cacert "$WEB_PKI/ca.crt" "https://$name:$PT/"
}
cert_seen() {  # cert_seen NAME: the SHA-256 fingerprint of the certificate presented for NAME on $PT
  openssl s_client -connect "127.0.0.1:$PT" -servername "$1" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256
}
cert_of() { openssl x509 -in "$WEB_PKI/$1.crt" -noout -fingerprint -sha256; }

# ---- TLS by server name: exact beats "*.", each site's own certificate, end to end ----
[ "$(tls_get a.example.test)" = "site-a over TLS" ] || fail "a.example.test did not reach site A on home1"
[ "$(tls_get b.example.test)" = "site-b over TLS" ] || fail "b.example.test did not reach site B on home2"
[ "$(tls_get c.example.test)" = "site-b over TLS" ] || fail "c.example.test did not reach site B (*.example.test)"
[ "$(cert_seen a.example.test)" = "$(cert_of site-a)" ] || fail "a.example.test: the certificate seen is not site A's"
[ "$(cert_seen b.example.test)" = "$(cert_of site-b)" ] || fail "b.example.test: the certificate seen is not site B's"
echo "TLS port $PT: a -> site A (home1), b and c -> site B (home2), each with its own certificate"

# ---- a ClientHello in pieces: across TCP segments (the name itself cut), and across two TLS records ----
# A real TLS client (Python's ssl over memory BIOs) whose first flight is written in pieces; the site must answer.
cat >"$TEST_TMP/split_hello.py" <<'PY'
import socket, ssl, sys, time
port, name, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname=name)
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = out.read()
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if mode == "segments":
    cut = hello.index(name.encode()) + 3
    pieces = [hello[:5], hello[5:cut], hello[cut:]]
else:
    body = hello[5:]
    half = len(body) // 2
    pieces = [hello[:3] + len(b).to_bytes(2, "big") + b for b in (body[:half], body[half:])]
for piece in pieces:
    s.sendall(piece)
    time.sleep(0.1)  # separate segments; the outcome must not depend on it


def pump():
    data = out.read()
    if data:
        s.sendall(data)
    chunk = s.recv(65536)
    if not chunk:
        inc.write_eof()
        return False
    inc.write(chunk)
    return True


while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        if not pump():
            sys.exit("closed during the handshake")
tls.write(("GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % name).encode())
reply = b""
while True:
    try:
        data = tls.read(65536)
        if not data:  # close_notify read
            break
        reply += data
    except ssl.SSLWantReadError:
        if not pump():
            break
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
        break
print(reply.split(b"\r\n\r\n", 1)[-1].decode().strip())
PY
for mode in segments records; do
  got=$(python3 "$TEST_TMP/split_hello.py" "$PT" a.example.test "$WEB_PKI/ca.crt" "$mode" 2>&1) || true
  [ "$got" = "site-a over TLS" ] || fail "a ClientHello split across $mode did not reach site A: $got"
  got=$(python3 "$TEST_TMP/split_hello.py" "$PT" c.example.test "$WEB_PKI/ca.crt" "$mode" 2>&1) || true
  [ "$got" = "site-b over TLS" ] || fail "a ClientHello split across $mode did not reach site B: $got"
done
echo "ClientHello split across TCP segments (inside the name) and across two TLS records: routed by its name"

# ---- no match, no "*": refused with unrecognized_name, counted, logged ----
if out=$(curl -sS --max-time 20 --resolve "other.test:$PT:127.0.0.1" --cacert "$WEB_PKI/ca.crt" "https://other.test:$PT/" 2>&1); then
  fail "other.test was served on $PT without a tunnel for it: $out"
fi
echo "other.test without a fallback: $out"
grep -qi "unrecognized name" <<<"$out" || fail "other.test: no unrecognized_name alert: $out"
# example.test itself does not match "*.example.test".
curl -sS --max-time 20 --resolve "example.test:$PT:127.0.0.1" -k "https://example.test:$PT/" >/dev/null 2>&1 &&
  fail "example.test matched *.example.test"
[ "$(metric "tunneld_tunnel_connections_unrouted_total{listen=\"127.0.0.1:$PT\"}")" = 2 ] ||
  fail "unrouted connections not counted: $(grep unrouted <<<"$API_BODY")"
wait_log "$TEST_TMP/tunneld.log" "tunnel port $PT: refused 127\.0\.0\.1:[0-9]+: no tunnel for TLS server name \"other\.test\""

# ---- plain HTTP by Host ----
http_get() {  # http_get HOST: status and body of http://HOST:$PH/
  curl -sS --max-time 20 --resolve "$1:$PH:127.0.0.1" -w '|%{http_code}' "http://$1:$PH/" | tr -d '\n'
}
[ "$(http_get a.example.test)" = "site-a over HTTP|200" ] || fail "Host a.example.test did not reach site A"
[ "$(http_get B.EXAMPLE.TEST)" = "site-b over HTTP|200" ] || fail "Host B.EXAMPLE.TEST did not reach site B"
out=$(http_get c.example.test)
[ "${out##*|}" = 421 ] || fail "Host c.example.test on $PH: expected 421, got $out"
echo "HTTP port $PH: a -> site A, B.EXAMPLE.TEST -> site B, c -> 421"

# ---- slowloris: a partial ClientHello is cut at the timeout; others are served meanwhile ----
rm -f "$TEST_TMP/slow.out"
cat >"$TEST_TMP/slow.py" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
# A handshake record announcing 512 bytes, of which only the start of a ClientHello is sent.
s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
t0 = time.monotonic()
open(sys.argv[2] + ".sent", "w").close()
s.settimeout(120)
try:
    data = s.recv(100)
except OSError as e:
    data = repr(e).encode()
open(sys.argv[2], "w").write("%d %r\n" % (int((time.monotonic() - t0) * 1000), data))
PY
bg python3 "$TEST_TMP/slow.py" "$PT" "$TEST_TMP/slow.out"
SLOW_PID=$BG_PID
wait_until 20 test -e "$TEST_TMP/slow.out.sent" || fail "slowloris never connected"
# While it waits, other visitors on the same port are served.
[ "$(tls_get a.example.test)" = "site-a over TLS" ] || fail "site A not served while a slowloris waits"
[ -e "$TEST_TMP/slow.out" ] && fail "site A was served only after the slowloris was cut: $(cat "$TEST_TMP/slow.out")"
wait "$SLOW_PID" || fail "slowloris probe failed"
read -r slow_ms slow_data <"$TEST_TMP/slow.out"
echo "slowloris closed after $slow_ms ms (HostnameTimeoutMs $HOSTNAME_TIMEOUT_MS): $slow_data"
[ "$slow_ms" -ge $((HOSTNAME_TIMEOUT_MS - 200)) ] || fail "slowloris cut after $slow_ms ms, before the timeout"
[ "$slow_data" = "b''" ] || fail "slowloris got something other than a close: $slow_data"
[ "$(metric "tunneld_tunnel_hostname_timeouts_total{listen=\"127.0.0.1:$PT\"}")" = 1 ] || fail "timeout not counted"

# ---- a dribbler (a byte or two per segment) is refused after 32 reads, not left to hold its slot ----
cat >"$TEST_TMP/dribble.py" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.settimeout(0.05)
# A handshake record of 16000 bytes whose ClientHello never completes: the pieces are paced (the behaviour under
# test), and the server must end it after 32 reads, long before HostnameTimeoutMs.
hello = (bytes([0x16, 0x03, 0x01, 0x3e, 0x80, 0x01, 0x00, 0x3e, 0x7c, 0x03, 0x03]) + b"\x41" * 32  # random
         + b"\x20" + b"\x42" * 32 + b"\x01\x00" + b"\x13\x01" * 128)  # session id, 128 cipher suites: 334 bytes
t0 = time.monotonic()
result = "not closed"
for i in range(0, len(hello), 1):
    try:
        s.send(hello[i:i + 1])
        if s.recv(100) == b"":
            result = "closed"
            break
    except socket.timeout:
        continue
    except OSError as e:
        result = "closed (%s)" % e.__class__.__name__
        break
print("%d %d %s" % (int((time.monotonic() - t0) * 1000), i, result))
PY
unreadable_before=$(metric "tunneld_tunnel_hostname_unreadable_total{listen=\"127.0.0.1:$PT\"}")
read -r drib_ms drib_bytes drib_result < <(python3 "$TEST_TMP/dribble.py" "$PT")
echo "dribbler: $drib_result after $drib_ms ms and $drib_bytes one-byte segments"
[ "${drib_result%% *}" = closed ] || fail "a dribbler was never cut: $drib_result after $drib_bytes bytes"
[ "$drib_ms" -lt "$HOSTNAME_TIMEOUT_MS" ] || fail "a dribbler was cut only at the timeout ($drib_ms ms)"
[ "$(metric "tunneld_tunnel_hostname_unreadable_total{listen=\"127.0.0.1:$PT\"}")" = $((unreadable_before + 1)) ] ||
  fail "the dribbler was not counted as unreadable"
wait_log "$TEST_TMP/tunneld.log" "a host name still incomplete after 33 reads of [0-9]+ bytes on average"

# ---- 409: the same glob twice (case aside) leaves the table in force ----
GOOD_TABLE=$(api GET /tunnels; echo "$API_BODY")
api PUT /tunnels "[$(tunnel "$PT" home1 "$A_TLS" a.example.test), $(tunnel "$PT" home3 "$F_TLS" A.EXAMPLE.TEST)]"
[ "$API_STATUS" = 409 ] || fail "the same glob twice: expected 409, got $API_STATUS $API_BODY"
grep -q 'tunnels\[1\] (client home3): listener 127.0.0.1:'"$PT"' with ListenHostnameGlob \\"a.example.test\\" is already tunnels\[0\]'"'"'s (client home1)' <<<"$API_BODY" ||
  fail "409 does not name both tunnels: $API_BODY"
api GET /tunnels
python3 -c 'import json,sys
strip = lambda t: [{k: v for k, v in x.items() if k not in ("ActiveClient", "OpenConnections")} for x in json.loads(t)]
sys.exit(strip(sys.argv[1]) != strip(sys.argv[2]))' "$GOOD_TABLE" "$API_BODY" || fail "the 409 changed the table: $API_BODY"
[ "$(tls_get a.example.test)" = "site-a over TLS" ] || fail "site A not served after the 409"

# ---- a "*" fallback takes the names no other glob matches; the port stays open throughout ----
put_tunnels "[$(tunnel "$PT" home1 "$A_TLS" a.example.test), $(tunnel "$PT" home2 "$B_TLS" '*.example.test'), $(tunnel "$PT" home3 "$F_TLS" '*')]"
body=$(tls_get other.test) || fail "other.test did not reach the fallback"
[ "$body" = "site-f over TLS" ] || fail "other.test with a fallback: got '$body'"
[ "$(cert_seen other.test)" = "$(cert_of site-f)" ] || fail "other.test: the certificate seen is not the fallback's"
[ "$(tls_get a.example.test)" = "site-a over TLS" ] || fail "a.example.test no longer reaches site A beside a fallback"
[ "$(tls_get b.example.test)" = "site-b over TLS" ] || fail "b.example.test no longer reaches site B beside a fallback"
echo "with \"*\": other.test -> fallback (home3), a and b unchanged"

# ---- a connection routed by name counts for its tunnel only ----
cat >"$TEST_TMP/hold.py" <<'PY'
import os, socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="a.example.test")
open(sys.argv[3] + ".up", "w").close()
deadline = time.monotonic() + 120
while not os.path.exists(sys.argv[3] + ".stop") and time.monotonic() < deadline:
    time.sleep(0.05)
s.close()
PY
bg python3 "$TEST_TMP/hold.py" "$PT" "$WEB_PKI/ca.crt" "$TEST_TMP/hold"
HOLD_PID=$BG_PID
wait_until 20 test -e "$TEST_TMP/hold.up" || fail "the held TLS connection to a.example.test never came up"
open_counts() {
  api GET /tunnels && python3 -c 'import json,sys; sys.exit([t["OpenConnections"] for t in json.loads(sys.argv[1])] != [1, 0, 0])' "$API_BODY"
}
wait_until 20 open_counts || fail "OpenConnections with one connection to a.example.test held: $API_BODY"
touch "$TEST_TMP/hold.stop"
wait "$HOLD_PID" || fail "the held connection failed"
echo "one connection held to a.example.test: OpenConnections 1, 0, 0"

# ---- the state file keeps the globs: after a restart the same names reach the same sites ----
stop_checked tunneld
start_tunneld "$TUNNELD_LIMITS"
api GET /tunnels
python3 -c 'import json,sys; g=[t["ListenHostnameGlob"] for t in json.loads(sys.argv[1])]; sys.exit(g != ["a.example.test", "*.example.test", "*"])' \
  "$API_BODY" || fail "globs after a restart: $API_BODY"
for c in home1 home2 home3; do wait_client_connected "$c"; done
[ "$(tls_get a.example.test)" = "site-a over TLS" ] || fail "a.example.test after a restart"
[ "$(tls_get b.example.test)" = "site-b over TLS" ] || fail "b.example.test after a restart"

# ---- PROXY v2 on a name-routed port: the site behind it logs the visitor's own address ----
P_TLS=$(free_port)
nginx_with site-p 256 "
  log_format pp '\$proxy_protocol_addr \$ssl_server_name';
  server {
    listen 127.0.0.1:$P_TLS ssl proxy_protocol;
    ssl_certificate $WEB_PKI/site-b.crt;
    ssl_certificate_key $WEB_PKI/site-b.key;
    access_log $TEST_TMP/site-p/pp.log pp;
    location / { return 200 \"site-p over TLS\\n\"; }
  }" "$P_TLS"
stop_checked home3
start_tunnelc home3 "[$F_TLS, $P_TLS, $B_TLS]"  # also site B's backup client (failover, below)
wait_client_connected home3
put_tunnels "[$(tunnel "$PT" home1 "$A_TLS" a.example.test),
  $(tunnel "$PT" home2 "$B_TLS" '*.example.test' | sed 's/}$/, "BackupClientIdentifiers": ["home3"]}/'),
  $(tunnel "$PT" home3 "$F_TLS" '*'), $(tunnel "$PT" home3 "$P_TLS" p.example.test | sed 's/}$/, "HaProxyProxyProtocol": true, "ProxyProtocolVersion": 2}/')]"
# The visitor comes from 127.0.0.3; tunnelc's own connection to the site comes from 127.0.0.1.
got=$(tls_get p.example.test --interface 127.0.0.3) || true
[ "$got" = "site-p over TLS" ] || fail "p.example.test (PROXY v2) did not reach site P: $got"
wait_until 10 grep -qx "127.0.0.3 p.example.test" "$TEST_TMP/site-p/pp.log" ||
  fail "site P did not log the visitor's address from the PROXY v2 header: $(cat "$TEST_TMP/site-p/pp.log")"
echo "p.example.test with PROXY v2: site P logged the visitor's 127.0.0.3"

# ---- failover of one site: its backup takes its names, the other site is untouched; no client left: refused ----
active_is() {  # active_is GLOB CLIENT: GET /tunnels names CLIENT as the active client of the tunnel with GLOB
  api GET /tunnels
  python3 -c 'import json,sys; t=[t for t in json.loads(sys.argv[1]) if t["ListenHostnameGlob"]==sys.argv[2]]; sys.exit(len(t)!=1 or t[0]["ActiveClient"]!=sys.argv[3])' \
    "$API_BODY" "$1" "$2"
}
b_via_backup() { [ "$(tls_get b.example.test --max-time 5 2>/dev/null)" = "site-b over TLS" ] && active_is '*.example.test' home3; }
active_is '*.example.test' home2 || fail "site B's tunnel is not on home2 before the failover: $API_BODY"
stop_checked home2
wait_until 20 b_via_backup || fail "b.example.test did not fail over to its backup home3: $API_BODY"
[ "$(tls_get a.example.test)" = "site-a over TLS" ] || fail "a.example.test not served after site B's failover"
active_is a.example.test home1 || fail "site A's tunnel moved during site B's failover: $API_BODY"
echo "home2 gone: b.example.test failed over to home3, a.example.test still on home1"
stop_checked home3
b_refused() { ! tls_get b.example.test --max-time 5 >/dev/null 2>&1; }
wait_until 20 b_refused || fail "b.example.test still served with home2 and home3 gone"
[ "$(tls_get a.example.test)" = "site-a over TLS" ] || fail "a.example.test not served with home2 and home3 gone"
echo "home2 and home3 gone: b.example.test refused, a.example.test still served"

stop_checked home1 tunneld
pass "one TLS port and one HTTP port serve three sites by name, TLS end to end; unknown names refused or sent to \"*\"; 409 leaves the table; slowloris cut at ${slow_ms} ms while others were served; per-tunnel counts, restart, one site's failover to its backup, no client left"
