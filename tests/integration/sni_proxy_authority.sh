#!/usr/bin/env bash
# sni_proxy_authority: on a port shared by hostname, a PROXY v2 header carries the name the visitor asked for as a
# PP2_TYPE_AUTHORITY TLV, as haproxy sends the SNI. The receiver is haproxy itself (bind ... accept-proxy, answering
# %[fc_pp_authority]): behind a TLS port it terminates the visitor's TLS with its own certificate and reports the
# TLS server name tunneld routed by, behind an HTTP port the Host (lower case, port removed); a "*" fallback that
# took a named visitor still passes the name; a port without globs is never peeked, so it has none. The name
# travels to tunnelc in stream-open header version 2, which tunneld sends only to a client whose handshake agreed
# ALPN "tunnel/2": a client without ALPN (one that predates it) gets version 1 with no name, and one offering it
# gets version 2 with the name (both read by the hostile_client tool, which decodes what the server sent).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

command -v haproxy >/dev/null || fail "haproxy not installed (tests/install-deps.sh)"
HOSTILE="$TUNNEL_TOOLS/hostile_client"

# ---- the home site's own certificate (haproxy terminates the visitor's TLS) ----
web_ca
web_cert site "DNS:*.example.test,DNS:x.test"
cat "$WEB_PKI/site.crt" "$WEB_PKI/site.key" >"$WEB_PKI/site.pem"

make_pki
start_tunneld
HA_TLS=$(free_port); HA_HTTP=$(free_port)
{ haproxy_http_defaults; cat <<CONF; } >"$TEST_TMP/haproxy.cfg"
frontend tls
  bind 127.0.0.1:$HA_TLS accept-proxy ssl crt $WEB_PKI/site.pem
  http-request return status 200 content-type text/plain lf-string "authority=%[fc_pp_authority] sni=%[ssl_fc_sni] src=%[src]:%[src_port]"
frontend plain
  bind 127.0.0.1:$HA_HTTP accept-proxy
  http-request return status 200 content-type text/plain lf-string "authority=%[fc_pp_authority] src=%[src]:%[src_port]"
CONF
spawn haproxy haproxy -f "$TEST_TMP/haproxy.cfg" -db
wait_port "$HA_TLS"
wait_port "$HA_HTTP"
start_tunnelc home1 "[$HA_TLS, $HA_HTTP]"
wait_client_connected home1

# home2: a tunnelc without ALPN; home3: one offering "tunnel/2". Each reads the first stream's header and exits.
hostile() {  # hostile NAME OUT [--alpn ...]
  "$HOSTILE" --port "$CONTROL_PORT" --ca "$PKI/ca.crt" --cert "$PKI/$1.crt" --key "$PKI/$1.key" --mode open-header \
    --seconds 60 "${@:3}" >"$2" 2>&1
}
bg hostile home2 "$TEST_TMP/old.out"
OLD_PID=$BG_PID
bg hostile home3 "$TEST_TMP/new.out" --alpn tunnel/2
NEW_PID=$BG_PID
wait_client_connected home2
wait_client_connected home3
grep -qx "established alpn=none" "$TEST_TMP/old.out" || fail "home2 agreed ALPN without offering it: $(cat "$TEST_TMP/old.out")"
grep -qx "established alpn=tunnel/2" "$TEST_TMP/new.out" || fail "tunneld did not agree ALPN tunnel/2: $(cat "$TEST_TMP/new.out")"

PT=$(free_port)  # TLS, shared by hostname
PH=$(free_port)  # plain HTTP, shared by hostname
PP=$(free_port)  # no globs: never peeked
tunnel() {  # tunnel PORT CLIENT BACKEND GLOB
  printf '{"ListenAddress": "127.0.0.1", "ListenPort": %s, "ClientIdentifier": "%s", "BackEndPort": %s, "ListenHostnameGlob": "%s", "HaProxyProxyProtocol": true, "ProxyProtocolVersion": 2}' \
    "$1" "$2" "$3" "$4"
}
TABLE="[$(tunnel "$PT" home1 "$HA_TLS" a.example.test), $(tunnel "$PT" home1 "$HA_TLS" '*'),"
TABLE+=" $(tunnel "$PT" home2 9 old.example.test), $(tunnel "$PT" home3 9 new.example.test),"
TABLE+=" $(tunnel "$PH" home1 "$HA_HTTP" h.example.test), $(tunnel "$PP" home1 "$HA_TLS" '*')]"
put_tunnels "$TABLE"
for p in "$PT" "$PH" "$PP"; do wait_port "$p"; done

# through PORT NAME SCHEME [CURL_ARGS...]: haproxy's answer for SCHEME://NAME:PORT/ from source port $SPORT (set
# before each call: a port claimed in the command substitution's subshell would not be seen here).
through() {
  local port=$1 name=$2 scheme=$3; shift 3
  curl -sS --max-time 20 --local-port "$SPORT" --resolve "$name:$port:127.0.0.1" --cacert "$WEB_PKI/ca.crt" "$@" \
    "$scheme://$name:$port/" 2>&1
}

SPORT=$(free_port); out=$(through "$PT" a.example.test https)
[ "$out" = "authority=a.example.test sni=a.example.test src=127.0.0.1:$SPORT" ] ||
  fail "a.example.test on the TLS port: haproxy answered '$out'"
echo "TLS port, exact glob: haproxy read authority a.example.test (and the visitor's own address) from PROXY v2"
SPORT=$(free_port); out=$(through "$PT" zz.example.test https)
[ "$out" = "authority=zz.example.test sni=zz.example.test src=127.0.0.1:$SPORT" ] ||
  fail "zz.example.test through the \"*\" fallback: haproxy answered '$out'"
echo "TLS port, \"*\" fallback: the name the visitor asked for still travels"
SPORT=$(free_port); out=$(through "$PH" h.example.test http -H "Host: H.Example.Test:$PH")
[ "$out" = "authority=h.example.test src=127.0.0.1:$SPORT" ] || fail "Host H.Example.Test on the HTTP port: haproxy answered '$out'"
echo "HTTP port: Host H.Example.Test:$PH arrived as authority h.example.test"
SPORT=$(free_port); out=$(through "$PP" x.test https)
[ "$out" = "authority= sni=x.test src=127.0.0.1:$SPORT" ] || fail "a port without globs: haproxy answered '$out'"
echo "port without globs: no authority (its connections are not peeked)"
wait_log "$TEST_TMP/tunnelc-home1.log" "from 127\.0\.0\.1:[0-9]+ \(listener port $PT, host a\.example\.test\) -> "

# ---- the version each client is sent ----
# Each visit waits until the client printed its result; the client then leaves, which resets the visit.
curl -sk --max-time 30 --resolve "old.example.test:$PT:127.0.0.1" "https://old.example.test:$PT/" >/dev/null 2>&1 &
CURL_OLD=$!
curl -sk --max-time 30 --resolve "new.example.test:$PT:127.0.0.1" "https://new.example.test:$PT/" >/dev/null 2>&1 &
CURL_NEW=$!
wait "$OLD_PID" || fail "hostile_client (no ALPN) failed: $(cat "$TEST_TMP/old.out")"
wait "$NEW_PID" || fail "hostile_client (ALPN tunnel/2) failed: $(cat "$TEST_TMP/new.out")"
wait "$CURL_OLD" "$CURL_NEW" || true
grep -qx "result: version=1 authority=none backend=9 proxy=2" "$TEST_TMP/old.out" ||
  fail "a client without ALPN was not sent version 1 without a name: $(cat "$TEST_TMP/old.out")"
grep -qx "result: version=2 authority=new.example.test backend=9 proxy=2" "$TEST_TMP/new.out" ||
  fail "a client with ALPN tunnel/2 was not sent version 2 with the name: $(cat "$TEST_TMP/new.out")"
echo "stream-open header: version 1 without a name to a client without ALPN, version 2 with it to tunnel/2"

pass "PROXY v2 authority TLV from the TLS server name and the HTTP Host; none without globs; version 2 only after ALPN"
