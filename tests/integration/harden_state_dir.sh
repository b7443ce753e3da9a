#!/usr/bin/env bash
# The state file holds the table and the revoked certificates, so whoever can replace it decides both. An attack run
# as "nobody" deleted it from a world-writable directory (every revocation gone, silently: a missing file was an
# empty table) and planted a table that opened a port for an arbitrary client at the next start. Now tunneld and
# --check-config refuse a StateFile whose directory is missing, writable by group or others (sticky bit or not),
# or owned by someone else than root or the service user; a file owned by someone else; a missing file unless
# --init-state; and a file with more tunnels than MaxTunnels. Each refusal names "StateFile", the path and the fault.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to chmod and chown as the attack did"; exit 0; }
make_pki
CONTROL_PORT=$(free_port)
MGMT_PORT=$(free_port)
chmod o+x "$TEST_TMP"  # nobody may reach the shared directory below, as it could on the attacked host
ME=$(id -un)

# config DIR: $TEST_TMP/tunneld.json with StateFile DIR/tunnels.json
config() { STATE_FILE="$1/tunnels.json"; write_tunneld_config; }
# refused PATTERN [ARGS...]: --check-config and a start both exit 1 with PATTERN (an ERE) in the message.
refused() {
  local pattern=$1 mode rc out; shift
  for mode in --check-config start; do
    local args=(--config "$TEST_TMP/tunneld.json" "$@")
    [ "$mode" = --check-config ] && args+=(--check-config --service-user "$ME")
    rc=0
    # 20 s: a refusal comes in well under a second even under ASan; only a hang takes longer.
    out=$(timeout 20 "$TUNNELD" "${args[@]}" 2>&1 </dev/null) || rc=$?
    echo "tunneld $mode $* -> exit $rc: $(grep -m1 StateFile <<<"$out")"
    [ "$rc" = 1 ] || fail "tunneld $mode $* exited $rc, want 1: $out"
    grep -qE -- "$pattern" <<<"$out" || fail "tunneld $mode: no '$pattern' in: $out"
  done
}
fp_home2=$(fingerprint "$PKI/home2.crt")
PLANT=$(free_port)

# 1. The attacked layout: a world-writable directory holding a state file that revokes home2.
SHARED="$TEST_TMP/shared"
mkdir -m 0777 "$SHARED"; chmod 0777 "$SHARED"
config "$SHARED"
printf '{"Tunnels": [], "RevokedCertificates": ["%s"]}\n' "$fp_home2" >"$STATE_FILE"; chmod 0600 "$STATE_FILE"
# As nobody: the revocations go, a table routing a port to home2 takes their place.
setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "rm -f '$STATE_FILE' &&
  echo '[{\"ListenPort\": $PLANT, \"ClientIdentifier\": \"home2\", \"BackEndPort\": 9}]' >'$STATE_FILE'" ||
  fail "nobody could not replace the state file in a 0777 directory (the test's premise)"
refused "\"StateFile\": $SHARED/tunnels.json: its directory $SHARED is writable by others \(mode 0777\)" --init-state
# The sticky bit does not help: the planted file is its owner's to replace.
chmod 1777 "$SHARED"
refused "its directory $SHARED is writable by others \(mode 1777\)" --init-state
chmod 0770 "$SHARED"
refused "its directory $SHARED is writable by its group \(mode 0770\)" --init-state
# A safe directory does not make nobody's file trusted.
chmod 0755 "$SHARED"
refused "\"StateFile\": $SHARED/tunnels.json: owned by uid 65534, neither root nor the service user" --init-state

# 2. A directory owned by another user, and one that does not exist.
chown 65534:65534 "$SHARED"; rm -f "$STATE_FILE"
refused "its directory $SHARED is owned by uid 65534, neither root nor the service user" --init-state
config "$TEST_TMP/no-such-dir"; rmdir "$TEST_TMP/no-such-dir"  # the fixture makes it
refused "\"StateFile\": $TEST_TMP/no-such-dir/tunnels.json: its directory $TEST_TMP/no-such-dir does not exist" --init-state

# 3. A missing file is not an empty list: refused without --init-state; with it tunneld starts and writes the file.
OWN="$TEST_TMP/own"; mkdir -m 0750 "$OWN"
config "$OWN"
refused "\"StateFile\": $OWN/tunnels.json: missing; it holds the tunnel table and the revoked certificates"
timeout 20 "$TUNNELD" --config "$TEST_TMP/tunneld.json" --check-config --service-user "$ME" --init-state \
  >"$TEST_TMP/check.out" 2>&1 || fail "--check-config --init-state refused a missing file: $(cat "$TEST_TMP/check.out")"
[ ! -e "$STATE_FILE" ] || fail "--check-config wrote the state file"
spawn_checked tunneld "$TUNNELD" --config "$TEST_TMP/tunneld.json" --init-state
TUNNELD_PID=$SPAWNED_PID
wait_until 15 api_ping || fail "tunneld --init-state did not start"
[ "$(cat "$STATE_FILE")" = '[]' ] && [ "$(stat -c %a "$STATE_FILE")" = 600 ] ||
  fail "--init-state did not write an empty state file 0600: $(stat -c %a "$STATE_FILE") $(cat "$STATE_FILE")"
wait_log "$TEST_TMP/tunneld.log" "server: $STATE_FILE: created an empty state file \(--init-state\)"
api PUT /revoked-certificates "[\"$fp_home2\"]"
[ "$API_STATUS" = 200 ] || fail "PUT /revoked-certificates: $API_STATUS $API_BODY"
stop_tunneld
[ "$TUNNELD_STATUS" = 0 ] || fail "tunneld exited $TUNNELD_STATUS"
# The revocation comes back; --init-state does not replace an existing file.
spawn_checked tunneld "$TUNNELD" --config "$TEST_TMP/tunneld.json" --init-state
TUNNELD_PID=$SPAWNED_PID
wait_until 15 api_ping || fail "tunneld did not restart"
api GET /revoked-certificates
[ "$API_BODY" = "[\"$fp_home2\"]" ] || fail "the revocation did not survive a restart with --init-state: $API_BODY"
stop_tunneld
# Deleted: refused, since starting empty would silently drop every revocation.
rm "$STATE_FILE"
refused "\"StateFile\": $OWN/tunnels.json: missing"

# 4. More tunnels than MaxTunnels (4096): refused, none dropped.
python3 - "$STATE_FILE" "$PLANT" <<'PY'
import json, sys
json.dump([{"ListenAddress": "127.0.0.1", "ListenPort": int(sys.argv[2]), "ListenHostnameGlob": "h%d.example.test" % i,
            "ClientIdentifier": "home1", "BackEndPort": 9} for i in range(5000)], open(sys.argv[1], "w"))
PY
chmod 0600 "$STATE_FILE"
refused "\"StateFile\": $OWN/tunnels.json: holds 5000 tunnels, more than MaxTunnels \(4096\)"
pass "StateFile: shared, foreign or missing directory, foreign or missing file and an oversized table refused; --init-state starts empty once"
