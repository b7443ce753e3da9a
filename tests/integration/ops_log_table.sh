#!/usr/bin/env bash
# docs/OPERATIONS.md §9 "Troubleshooting by log line" is the source of truth: every backticked line of its table is
# read from the document, turned into a pattern (UPPERCASE words and "..." match anything, VERSION a TLS version, the example's numbers,
# paths, addresses and quoted names match any such value), and must appear in the log of a tunneld or tunnelc this
# test drove into that situation. A row this test cannot provoke must be listed in UNPROVOKED with the reason and
# the test that covers it; a listed row that the test does provoke, or a documented line nothing logs, fails.
# Also: the documented "-p warning" promise for the rows a self-hoster must act on (a refused backend).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

src=${TUNNEL_SOURCE_DIR:?}
declare -A UNPROVOKED=(
  ["address family not supported"]="needs a host with IPv6 disabled"
  ["connect timed out"]="needs a firewall that drops packets; the timeout path is client_reconnect.sh's"
  ["data for closed streams beyond what their windows allowed"]="needs the hostile client's reset flood (harden_reset_flood.sh)"
  ["is not in AdminIdentities and its source or identity already holds"]="needs a non-admin session flood (harden_mgmt_lockout.sh)"
)

python3 - "$src/docs/OPERATIONS.md" >"$TEST_TMP/rows" <<'PY'
import re, sys
doc = open(sys.argv[1]).read()
sec = doc[doc.index("## 9. Troubleshooting by log line"):]
sec = sec[:sec.index("\n## ", 5)]
for row in sec.splitlines():
    if not row.startswith("| ") or row.startswith("| Log line") or row.startswith("|---"):
        continue
    cell = row.split(" | ")[0][2:]
    for text in re.findall(r"`([^`]+)`", cell):
        if text in ("-p warning",):
            continue
        pat = re.escape(text)
        pat = pat.replace(re.escape("..."), ".*")
        pat = re.sub(r"\\\[::\\\]:9056|\\\[::\\\]", r"\\S+", pat)
        pat = re.sub(r"/(etc|var)/[A-Za-z0-9_./-]+", r"\\S+", pat)
        for word, rx in (("KIND", r".+"), ("SOURCE", r"[^)]+"), ("N|P|T", r"[0-9]+"), ("VERSION", r"TLSv1\\.[23]"),
                         ("ADDR|NAME|X|Y|L|HOST|FILE", r"\\S+")):
            pat = re.sub(r"\b(%s)\b" % word, rx, pat)
        pat = re.sub(r"\b(9056|9057|0644|600)\b", r"[0-9]+", pat)
        pat = re.sub(r'"(home|ops|x|X)"', r'"[^"]*"', pat)
        print(text + "\t" + pat)
PY
[ "$(wc -l <"$TEST_TMP/rows")" -ge 30 ] || fail "could not read the §9 table from docs/OPERATIONS.md"

make_pki
BACKEND=$(free_port); PUBLIC=$(free_port); NOBODY=$(free_port); CLOSED=$(free_port)
start_marker_nginx nginx "$BACKEND" home

# Configuration errors and start failures: each run of tunneld/tunnelc that must exit non-zero, output kept.
refuse() {  # refuse LOGNAME CMD...: CMD must fail; its output goes to LOGNAME.log
  local name=$1; shift
  if "$@" >"$TEST_TMP/$name.log" 2>&1; then fail "$name: $* succeeded"; fi
}
CONTROL_PORT=$(free_port); MGMT_PORT=$(free_port)
write_tunneld_config
sed 's/"DebugLog": true/"DebugLog": "yes"/' "$TEST_TMP/tunneld.json" >"$TEST_TMP/bad.json"
refuse bad-config "$TUNNELD" --config "$TEST_TMP/bad.json"
cp "$PKI/server.key" "$TEST_TMP/open.key"; chmod 0644 "$TEST_TMP/open.key"
sed "s#$PKI/server.key#$TEST_TMP/open.key#" "$TEST_TMP/tunneld.json" >"$TEST_TMP/openkey.json"
refuse open-key "$TUNNELD" --config "$TEST_TMP/openkey.json"
mkdir -p "$TEST_TMP/state"; ln -sf /dev/null "$TEST_TMP/state/link.json"
sed "s#$STATE_FILE#$TEST_TMP/state/link.json#" "$TEST_TMP/tunneld.json" >"$TEST_TMP/linkstate.json"
refuse link-state "$TUNNELD" --config "$TEST_TMP/linkstate.json"
mkdir -p "$TEST_TMP/state/dir.json"
sed "s#$STATE_FILE#$TEST_TMP/state/dir.json#" "$TEST_TMP/tunneld.json" >"$TEST_TMP/dirstate.json"
refuse dir-state "$TUNNELD" --config "$TEST_TMP/dirstate.json"
spawn holder python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(300)' "$CONTROL_PORT"
wait_port "$CONTROL_PORT"
refuse in-use "$TUNNELD" --config "$TEST_TMP/tunneld.json" --init-state
kill "$SPAWNED_PID"; wait "$SPAWNED_PID" 2>/dev/null || true
wait_until 15 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$CONTROL_PORT) 2>/dev/null" || fail "the port holder did not let go"

start_tunneld '{"KeepaliveIntervalMs": 500, "DeadPeerTimeoutMs": 2000, "DrainTimeoutMs": 3000, "MaxConnectionsPerTunnel": 1}'
start_tunnelc home1 "[$BACKEND]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND},
              {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $NOBODY, \"ClientIdentifier\": \"home2\", \"BackEndPort\": $BACKEND}]"
# With one slot per tunnel, the probe of wait_port may still hold it for a moment: poll.
wait_until 15 http_get_marker 127.0.0.1 "$PUBLIC" || fail "no traffic through home1"

# No client connected (home2), twice from one source: the first line, then the summary after 10 s.
for _ in 1 2 3; do curl -sS --max-time 5 "http://127.0.0.1:$NOBODY/" >/dev/null 2>&1 || true; done
# MaxConnectionsPerTunnel 1: one visitor holds the only slot.
spawn hold python3 -c 'import socket,sys,time; s=socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); s.recv(100); print("held", flush=True); time.sleep(300)' "$PUBLIC"
wait_log "$TEST_TMP/hold.log" held
curl -sS --max-time 5 "http://127.0.0.1:$PUBLIC/" >/dev/null 2>&1 || true
kill "$SPAWNED_PID"
# A port tunnelc does not allow, and an allowed port where nothing listens.
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $CLOSED},
              {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $NOBODY, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 22}]"
curl -sS --max-time 5 "http://127.0.0.1:$NOBODY/" >/dev/null 2>&1 || true
wait_log "$TEST_TMP/tunnelc-home1.log" "port 22 is not in AllowedBackEndPorts"
kill -HUP "$TUNNELC_PID_home1"
wait_log "$TEST_TMP/tunnelc-home1.log" "configuration reloaded"
sed -i "s/\"AllowedBackEndPorts\": \[$BACKEND\]/\"AllowedBackEndPorts\": [$BACKEND, $CLOSED]/" "$TEST_TMP/tunnelc-home1.json"
kill -HUP "$TUNNELC_PID_home1"
wait_until 15 grep -q "configuration reloaded (0 services, 2 allowed ports)" "$TEST_TMP/tunnelc-home1.log" || fail "tunnelc did not take the new port"
curl -sS --max-time 5 "http://127.0.0.1:$PUBLIC/" >/dev/null 2>&1 || true
wait_log "$TEST_TMP/tunnelc-home1.log" "backend refused the connection"
grep -E "tunnelc warn: client home1: stream [0-9]+ to 127\.0\.0\.1:$CLOSED ended: backend refused the connection" \
  "$TEST_TMP/tunnelc-home1.log" >/dev/null || fail "a refused backend is not logged as a warning (journalctl -p warning would hide it)"
cp "$TEST_TMP/tunnelc-home1.json" "$TEST_TMP/tunnelc-home1.good"
echo '{"ServerHost": 1}' >"$TEST_TMP/tunnelc-home1.json"
kill -HUP "$TUNNELC_PID_home1"
wait_log "$TEST_TMP/tunnelc-home1.log" "reload refused, keeping the running configuration"
cp "$TEST_TMP/tunnelc-home1.good" "$TEST_TMP/tunnelc-home1.json"

# The same certificate again (a network change) replaces the link; another certificate with the same CN is refused.
start_tunnelc_as again "$PKI/home1.crt" "$PKI/home1.key" "[$BACKEND]"
wait_log "$TEST_TMP/tunneld.log" "client home1: new link from .* replaces the one from"
stop_checked again  # two processes with one certificate would replace each other's link forever
issue_twin "$TEST_TMP/twin" home1
start_tunnelc_as twin "$TEST_TMP/twin/home1.crt" "$TEST_TMP/twin/home1.key"
wait_log "$TEST_TMP/tunneld.log" "client home1: refused the link from .* with certificate sha256"
stop_tunnelc twin
# Foreign CA, revoked, expired, no CN, a wrong server name, a wrong ClientIdentifier.
start_tunnelc_as stranger "$PKI/other/stranger.crt" "$PKI/other/stranger.key"
wait_log "$TEST_TMP/tunnelc-stranger.log" "peer rejected the handshake"
stop_tunnelc stranger
api PUT /revoked-certificates "[\"$(fingerprint "$PKI/home3.crt")\"]"
[ "$API_STATUS" = 200 ] || fail "PUT /revoked-certificates: $API_STATUS $API_BODY"
start_tunnelc home3
wait_log "$TEST_TMP/tunneld.log" "certificate revoked"
stop_tunnelc home3
mkcert() {  # mkcert NAME SUBJECT VALIDITY...: a client certificate from the test CA, made with openssl x509 -req
  local name=$1 subject=$2; shift 2
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" -keyout "$TEST_TMP/$name.key" \
    -out "$TEST_TMP/$name.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$TEST_TMP/$name.ext"
  openssl x509 -req -in "$TEST_TMP/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" "$@" \
    -extfile "$TEST_TMP/$name.ext" -out "$TEST_TMP/$name.crt" 2>/dev/null
}
mkcert nocn /O=nocn -days 30 || fail "openssl could not make the certificate without a CN"
# An expired certificate: OpenSSL 3.0 (Debian 12) takes "-days -1"; 3.5 (Debian 13) refuses negative days and has
# -not_before/-not_after instead.
mkcert old /CN=old -days -1 || mkcert old /CN=old -not_before 20200101000000Z -not_after 20200102000000Z ||
  fail "openssl could not make an expired certificate"
chmod 600 "$TEST_TMP/nocn.key" "$TEST_TMP/old.key"
for who in nocn old; do
  openssl s_client -connect "127.0.0.1:$CONTROL_PORT" -CAfile "$PKI/ca.crt" -cert "$TEST_TMP/$who.crt" \
    -key "$TEST_TMP/$who.key" </dev/null >/dev/null 2>&1 || true
done
wait_log "$TEST_TMP/tunneld.log" "client certificate rejected: certificate expired"
start_tunnelc home2
wait_client_connected home2
sed "s#\"ServerHost\": \"127.0.0.1\",#\"ServerHost\": \"127.0.0.1\", \"ServerName\": \"wrong.example.com\",#" \
  "$TEST_TMP/tunnelc-home2.json" >"$TEST_TMP/wrongname.json"
spawn_checked wrongname "$TUNNELC" --config "$TEST_TMP/wrongname.json"
WRONGNAME_PID=$SPAWNED_PID
wait_log "$TEST_TMP/wrongname.log" "hostname mismatch"
# It retries for as long as it runs, and its handshakes come from the source whose MaxPendingHandshakesPerSource
# slots the held handshakes below fill: on a slow machine one of its retries would evict a held one. Done now.
kill -TERM "$WRONGNAME_PID"
wait "$WRONGNAME_PID" || fail "the wrong-name tunnelc exited with status $? on SIGTERM"
sed "s#\"ServerTunnelControlPort\": $CONTROL_PORT#\"ServerTunnelControlPort\": $CLOSED#" \
  "$TEST_TMP/tunnelc-home2.json" >"$TEST_TMP/downserver.json"
spawn_checked downserver "$TUNNELC" --config "$TEST_TMP/downserver.json"
wait_log "$TEST_TMP/downserver.log" "cannot connect to"
sed 's#"DebugLog": true,#"DebugLog": true, "ClientIdentifier": "home",#' "$TEST_TMP/tunnelc-home2.json" >"$TEST_TMP/wrongid.json"
refuse wrongid "$TUNNELC" --config "$TEST_TMP/wrongid.json"
# A client that went away cleanly, then one that vanished (killed: its socket closes without a GoAway).
stop_checked home2
wait_log "$TEST_TMP/tunneld.log" "client home2: going away"
start_tunnelc home2
wait_client_connected home2
stop_tunnelc home2 KILL
wait_log "$TEST_TMP/tunneld.log" "client home2: disconnected"
# A non-admin on the management port.
api_as home1 GET /tunnels
# Handshakes held open past MaxPendingHandshakesPerSource (8): the oldest is evicted.
python3 - "$CONTROL_PORT" <<'PY'
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(10)]
time.sleep(0.5)
for s in socks:
    s.close()
PY
wait_log "$TEST_TMP/tunneld.log" "TLS handshake evicted: MaxPendingHandshakesPerSource reached"
# The counters of what was just logged (API.md, GET /metrics): four refused certificates (foreign CA, revoked, no CN,
# expired) and the wrong-name and foreign-CA clients' own refusals, the evicted handshakes, the non-admin request.
v=$(metric tunneld_handshake_failures_total); [ "${v:-0}" -ge 4 ] || fail "tunneld_handshake_failures_total is '$v' after at least 4 failed handshakes"
v=$(metric tunneld_handshakes_refused_total); [ "${v:-0}" -ge 1 ] || fail "tunneld_handshakes_refused_total is '$v' after an eviction"
v=$(metric tunneld_management_forbidden_total); [ "${v:-0}" -ge 1 ] || fail "tunneld_management_forbidden_total is '$v' after a non-admin request"
# Certificate reload on SIGHUP: one that works, then one with a broken file.
kill -HUP "$TUNNELD_PID"
wait_log "$TEST_TMP/tunneld.log" "certificates and CA.* reloaded from disk"
cp "$PKI/server.crt" "$TEST_TMP/server.crt.good"
echo broken >"$PKI/server.crt"
kill -HUP "$TUNNELD_PID"
wait_log "$TEST_TMP/tunneld.log" "certificate reload failed, keeping the loaded ones"
cp "$TEST_TMP/server.crt.good" "$PKI/server.crt"
# The rate-limited summaries are written once per 10 s while refusals continue.
for _ in 1 2; do curl -sS --max-time 5 "http://127.0.0.1:$NOBODY/" >/dev/null 2>&1 || true; done
wait_log "$TEST_TMP/tunneld.log" "more in the last [0-9]+ s" 30
# Normal stops, with the drain lines; a restart restores the table.
stop_checked home1
wait_log "$TEST_TMP/tunnelc-home1.log" "client home1: stopped"
stop_checked tunneld
wait_log "$TEST_TMP/tunneld.log" "server: stopped"
mv "$TEST_TMP/tunneld.log" "$TEST_TMP/tunneld-1.log"
start_tunneld
stop_checked tunneld

# Every documented line, against every log of this test.
cat "$TEST_TMP"/*.log >"$TEST_TMP/all-logs.txt"
# The refused client's line depends on the TLS version these builds negotiate: only one of the two forms can appear.
if grep -q "connected to .* over TLSv1.3" "$TEST_TMP/all-logs.txt"; then
  UNPROVOKED["unknown CA (alert 48)"]="TLS 1.3 between these builds: the client cannot read the server's alert (a TLS 1.2 build's run shows it)"
else
  UNPROVOKED["its alert is unreadable here"]="needs TLS 1.3 on both ends (mbedTLS 3.6, e.g. Debian 13's run of this test)"
fi
missing=() unprovoked_seen=()
while IFS=$'\t' read -r text pat; do
  reason=""
  for key in "${!UNPROVOKED[@]}"; do [[ $text == *"$key"* ]] && reason=${UNPROVOKED[$key]}; done
  if grep -qE -- "$pat" "$TEST_TMP/all-logs.txt"; then
    [ -z "$reason" ] || unprovoked_seen+=("$text")
    echo "logged: $text"
  elif [ -n "$reason" ]; then
    echo "SKIP (not provoked here: $reason): $text"
  else
    missing+=("$text")
  fi
done <"$TEST_TMP/rows"
[ "${#missing[@]}" = 0 ] || fail "documented in OPERATIONS.md §9 but not logged as written: $(printf '\n  %s' "${missing[@]}")"
[ "${#unprovoked_seen[@]}" = 0 ] ||
  fail "listed in UNPROVOKED but logged by this test (take it off the list): $(printf '\n  %s' "${unprovoked_seen[@]}")"
pass "every line of OPERATIONS.md §9 that this test provokes is logged as documented ($(wc -l <"$TEST_TMP/rows") lines)"
