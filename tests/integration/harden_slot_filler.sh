#!/usr/bin/env bash
# One address cannot fill every public slot. (a) On a port shared by hostname (a.example.test and "*"), 1,000 idle
# connections from 127.0.0.2 hold only MaxPublicConnectionsPerSource (256 by default) and 768 requests held open
# to site a from three more addresses fill only a's own MaxConnectionsPerTunnel: a visitor from 127.0.0.3 still
# reaches "*". (b) On a plain port, 1,000 idle connections from one address are held 256 at a time and another
# address is served. (c) With MaxStreamsPerLink 64, 100 connections held on one tunnel of a client take at most
# half of the link's streams, and the client's other tunnel still serves its visitors.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

TOOLS="$(dirname "$0")/tools"
VISIT="python3 $TOOLS/visitor.py"
HOLD="python3 $TOOLS/holder.py"
PER_TUNNEL=600
ulimit -n "$(ulimit -Hn)"

make_pki
# Waiting visitors are held for the whole test, not cut by HostnameTimeoutMs.
start_tunneld "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 5000, \"DrainTimeoutMs\": 3000, \"HostnameTimeoutMs\": 120000, \"MaxConnectionsPerTunnel\": $PER_TUNNEL}"
A_PORT=$(free_port); S_PORT=$(free_port); P=$(free_port); Q=$(free_port)
spawn site-a python3 "$TOOLS/site_backend.py" "$A_PORT" site-a
spawn site-s python3 "$TOOLS/site_backend.py" "$S_PORT" site-star
wait_port "$A_PORT"; wait_port "$S_PORT"
start_tunnelc home1 "[$A_PORT, $S_PORT]"
wait_client_connected home1
tunnel() {  # tunnel PORT BACKEND [GLOB]
  printf '{"ListenAddress": "127.0.0.1", "ListenPort": %s, "ClientIdentifier": "home1", "BackEndPort": %s%s}' \
    "$1" "$2" "${3:+, \"ListenHostnameGlob\": \"$3\"}"
}
put_tunnels "[$(tunnel "$P" "$A_PORT" a.example.test), $(tunnel "$P" "$S_PORT" '*'), $(tunnel "$Q" "$S_PORT")]"
wait_port "$P"; wait_port "$Q"

open_on() { metric "tunneld_tunnel_connections_open{listen=\"127.0.0.1:$1\"}"; }
open_is() { [ "$(open_on "$1")" = "$2" ]; }
# visit_from SOURCE PORT HOST: one request from SOURCE, the answer's body or what came back.
visit_from() {
  python3 - "$@" <<'PY'
import socket, sys
src, port, host = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(); s.settimeout(20); s.bind((src, 0)); s.connect(("127.0.0.1", port))
s.sendall(("GET /visit HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except OSError as e:
    data += (" <%s>" % e.__class__.__name__).encode()
print(data.partition(b"\r\n\r\n")[2].decode("latin-1").strip() or repr(data[:80]))
PY
}
release_and_wait() {  # release_and_wait NAME...: the holders close their connections and report
  local n
  for n in "$@"; do touch "$TEST_TMP/$n.release"; done
  for n in "$@"; do wait_log "$TEST_TMP/$n.log" '"done"' 60; done
}

# ---- (a) a port shared by hostname ----
HOLD_UNTIL="$TEST_TMP/idle2.release" spawn idle2 $HOLD 127.0.0.2 "$P" 1000
wait_log "$TEST_TMP/idle2.log" '"opened"' 60
wait_until 30 open_is "$P" 256 || fail "port $P: 1,000 idle connections from 127.0.0.2 hold $(open_on "$P"), not 256"
echo "(a) 1,000 idle connections from 127.0.0.2 on the shared port: $(open_on "$P") held"
for src in 127.0.0.4 127.0.0.5 127.0.0.6; do
  HOLD_UNTIL="$TEST_TMP/site-$src.release" spawn "site-$src" $HOLD "$src" "$P" 256 'GET /hold HTTP/1.1\r\nHost: a.example.test\r\n\r\n'
done
for src in 127.0.0.4 127.0.0.5 127.0.0.6; do wait_log "$TEST_TMP/site-$src.log" '"opened"' 60; done
# Site a is full once its own limit is held (the rest of the 768 were refused); the idle ones are still there.
wait_until 60 open_is "$P" $((256 + PER_TUNNEL)) ||
  fail "port $P: expected 256 idle + $PER_TUNNEL for site a, got $(open_on "$P")"
api GET /tunnels
a_open=$(python3 -c 'import json,sys; print([t["OpenConnections"] for t in json.loads(sys.argv[1]) if t.get("ListenHostnameGlob") == "a.example.test"][0])' "$API_BODY")
[ "$a_open" = "$PER_TUNNEL" ] || fail "site a holds $a_open connections, not its MaxConnectionsPerTunnel $PER_TUNNEL"
out=$(visit_from 127.0.0.3 "$P" other.test)
[ "$out" = site-star ] || fail "with one address idle and site a full, a visitor of \"*\" from 127.0.0.3 got: $out"
out=$(visit_from 127.0.0.2 "$P" other.test)
[ "$out" != site-star ] || fail "127.0.0.2 got past its MaxPublicConnectionsPerSource"
echo "(a) site a holds its $PER_TUNNEL; \"*\" still serves 127.0.0.3; a 257th connection from 127.0.0.2 is refused"
release_and_wait idle2 site-127.0.0.4 site-127.0.0.5 site-127.0.0.6
wait_until 60 open_is "$P" 0 || fail "port $P: $(open_on "$P") connections left after the holders closed"

# ---- (b) a plain port ----
HOLD_UNTIL="$TEST_TMP/idleq.release" spawn idleq $HOLD 127.0.0.2 "$Q" 1000
wait_log "$TEST_TMP/idleq.log" '"opened"' 60
wait_until 30 open_is "$Q" 256 || fail "port $Q: 1,000 idle connections from 127.0.0.2 hold $(open_on "$Q"), not 256"
out=$(visit_from 127.0.0.3 "$Q" any.test)
[ "$out" = site-star ] || fail "port $Q: a visitor from 127.0.0.3 got '$out' while 127.0.0.2 held its 256"
refused=$(metric "tunneld_tunnel_connections_refused_total{listen=\"127.0.0.1:$Q\"}")
echo "(b) plain port: 1,000 idle connections from 127.0.0.2, 256 held, $refused refused; 127.0.0.3 served"
[ "$refused" -ge 700 ] || fail "port $Q: only $refused refusals counted for 744 over the limit"
wait_log "$TEST_TMP/tunneld.log" "tunnel port $Q: refused 127\\.0\\.0\\.2:[0-9]+: MaxPublicConnectionsPerSource \\(256\\) reached for 127\\.0\\.0\\.2"
release_and_wait idleq
wait_until 60 open_is "$Q" 0 || fail "port $Q: $(open_on "$Q") connections left after the holder closed"

# ---- (c) one tunnel cannot take every stream of its client's link ----
stop_tunneld
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS"
assert_clean_exit tunneld
mv "$TEST_TMP/tunneld.log" "$TEST_TMP/tunneld-first.log"
start_tunneld '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 5000, "DrainTimeoutMs": 3000, "MaxStreamsPerLink": 64, "MaxConnectionsPerTunnel": 1000}'
wait_client_connected home1
R=$(free_port)
put_tunnels "[$(tunnel "$R" "$A_PORT"), $(tunnel "$Q" "$S_PORT")]"
wait_port "$R"; wait_port "$Q"
HOLD_UNTIL="$TEST_TMP/streams.release" spawn streams $HOLD 127.0.0.2 "$R" 100 'GET /hold HTTP/1.1\r\nHost: r\r\n\r\n'
wait_log "$TEST_TMP/streams.log" '"opened"' 60
wait_until 30 open_is "$R" 32 || fail "port $R: 100 held connections on one tunnel hold $(open_on "$R") streams, not 32 (half of 64)"
out=$(visit_from 127.0.0.3 "$Q" any.test)
[ "$out" = site-star ] || fail "the client's other tunnel refused a visitor while one tunnel held $(open_on "$R") streams: $out"
echo "(c) MaxStreamsPerLink 64: one tunnel holds $(open_on "$R"), the same client's other tunnel still served"
wait_log "$TEST_TMP/tunneld.log" "tunnel port $R: refused 1 connection\\(s\\): the tunnel holds half of its client link's MaxStreamsPerLink \\(32\\)"
release_and_wait streams

stop_checked home1 tunneld
pass "256 per source on shared and plain ports, $PER_TUNNEL per site on a shared port, 32 of 64 streams per tunnel; every other visitor served"
