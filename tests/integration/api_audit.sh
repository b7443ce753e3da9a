#!/usr/bin/env bash
# Every applied PUT /tunnels leaves an audit trail: one line per tunnel added, removed or changed (listener, clients,
# backend), naming the admin and the address the change came from, and a summary; a refused PUT leaves none.
# GET /tunnels is unchanged by it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

LOG="$TEST_TMP/tunneld.log"
make_pki
start_tunneld
A=$(free_port); B=$(free_port); C=$(free_port)
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $A, \"ClientIdentifier\": \"home1\", \"BackEndPort\": 80},
              {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $B, \"ClientIdentifier\": \"home2\", \"BackEndService\": \"web\"}]"
wait_log "$LOG" "audit: admin \"admin\" \(127\.0\.0\.1:[0-9]+\): tunnel 127\.0\.0\.1:$A added: client home1, backups \[\], backend port 80, no PROXY header"
wait_log "$LOG" "audit: admin \"admin\" \(127\.0\.0\.1:[0-9]+\): tunnel 127\.0\.0\.1:$B added: client home2, backups \[\], backend service web"
wait_log "$LOG" 'audit: admin "admin" \(127\.0\.0\.1:[0-9]+\): PUT /tunnels applied: 2 added, 0 changed, 0 removed, 0 unchanged'
api GET /tunnels; first=$API_BODY

# A moves to home2 with a backup and PROXY v2; B goes; C comes.
before=$(wc -l <"$LOG")
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $A, \"ClientIdentifier\": \"home2\", \"BackupClientIdentifiers\": [\"home1\"],
               \"BackEndPort\": 80, \"HaProxyProxyProtocol\": true, \"ProxyProtocolVersion\": 2},
              {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $C, \"ClientIdentifier\": \"home3\", \"BackEndPort\": 8080}]"
wait_log "$LOG" 'PUT /tunnels applied: 1 added, 1 changed, 1 removed, 0 unchanged'
new=$(tail -n +$((before + 1)) "$LOG" | grep 'audit: ')
echo "$new"
grep -qE "tunnel 127\.0\.0\.1:$A changed: client home2, backups \[home1\], backend port 80, PROXY v2 \(was client home1, backups \[\], backend port 80, no PROXY header\)" <<<"$new" ||
  fail "the change of $A is not audited with before and after"
grep -qE "tunnel 127\.0\.0\.1:$B removed \(was client home2, backups \[\], backend service web" <<<"$new" || fail "the removal of $B is not audited"
grep -qE "tunnel 127\.0\.0\.1:$C added: client home3" <<<"$new" || fail "the addition of $C is not audited"
[ "$(grep -c . <<<"$new")" = 4 ] || fail "expected 3 tunnel lines and a summary"

# The same table again: a summary saying nothing changed, no tunnel lines. A refused PUT: no audit line at all.
before=$(wc -l <"$LOG")
api GET /tunnels; put_tunnels "$API_BODY"
wait_log "$LOG" 'PUT /tunnels applied: 0 added, 0 changed, 0 removed, 2 unchanged'
api PUT /tunnels '[{"ListenPort": 0}]'
[ "$API_STATUS" = 400 ] || fail "invalid table accepted"
[ "$(tail -n +$((before + 1)) "$LOG" | grep -c 'audit: ')" = 1 ] || fail "unexpected audit lines: $(tail -n +$((before + 1)) "$LOG" | grep 'audit: ')"

# GET /tunnels keeps its shape: the same keys as before the audit existed.
keys=$(json_get "$first" 'sorted(d[0].keys())')
[ "$keys" = '["ActiveClient", "BackEndPort", "BackupClientIdentifiers", "ClientIdentifier", "HaProxyProxyProtocol", "ListenAddress", "ListenHostnameGlob", "ListenPort", "OpenConnections"]' ] ||
  fail "GET /tunnels keys changed: $keys"
stop_checked tunneld
pass "PUT /tunnels audited per tunnel (added, changed with before/after, removed) with the admin and its address"
