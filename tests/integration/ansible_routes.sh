#!/usr/bin/env bash
# The Ansible roles with Debian's ansible-core, on loopback (connection: local):
#  - tunnel_server and tunnel_client render configurations that tunneld/tunnelc accept (and report changed=0
#    on a second run), validated for a service user that is not root; tunneld and tunnelc are then started from
#    exactly those files; in check mode on a fresh host (package not installed) they succeed and write nothing;
#  - tunnel_routes: the first run reports changed and the tunnel carries HTTP to a python backend; a second run
#    with the same (short-form) list reports changed=0; check mode with a different list reports changed, shows
#    the table as a diff with --diff, and leaves the table alone; site.yml has one tag per role; an invalid tunnel fails the run with the API's own error message, table intact.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

src=${TUNNEL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v ansible-playbook >/dev/null || fail "ansible-playbook not installed (apt-get install ansible-core)"

# Quiet and fast: no facts, no retry files, every temporary file under $TEST_TMP.
# ansible-core refuses to run unless the locale encoding is UTF-8.
export LC_ALL=C.UTF-8
# The role's filter plugin is loaded from the source tree: leave no bytecode there.
export PYTHONDONTWRITEBYTECODE=1
export ANSIBLE_HOME="$TEST_TMP/ansible" ANSIBLE_LOCAL_TEMP="$TEST_TMP/ansible/tmp" ANSIBLE_REMOTE_TEMP="$TEST_TMP/ansible/rtmp"
export ANSIBLE_GATHERING=explicit ANSIBLE_RETRY_FILES_ENABLED=false ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_ROLES_PATH="$src/examples/ansible/roles" ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
export ANSIBLE_DEPRECATION_WARNINGS=false ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
: >"$TEST_TMP/ansible.cfg"; export ANSIBLE_CONFIG="$TEST_TMP/ansible.cfg"
mkdir -p "$ANSIBLE_LOCAL_TEMP" "$ANSIBLE_REMOTE_TEMP"

export ANSIBLE_PIPELINING=true
cat >"$TEST_TMP/tunnel_routes.yml" <<YML
- hosts: localhost
  connection: local
  gather_facts: false
  roles: [tunnel_routes]
YML

# play NAME PLAYBOOK VARS_JSON [ARGS...]: runs ansible-playbook; output in $TEST_TMP/NAME.out, exit status in
# $PLAY_STATUS, the recap's changed= count in $PLAY_CHANGED, the run's wall time in $PLAY_MS.
play() {
  local name=$1 book=$2 vars=$3; shift 3
  printf '%s\n' "$vars" >"$TEST_TMP/$name.vars.json"
  local t0; t0=$(now_ms)
  PLAY_STATUS=0
  ansible-playbook -i localhost, "$TEST_TMP/$book.yml" -e "@$TEST_TMP/$name.vars.json" "$@" \
    >"$TEST_TMP/$name.out" 2>&1 || PLAY_STATUS=$?
  PLAY_MS=$(( $(now_ms) - t0 ))
  PLAY_CHANGED=$(sed -n 's/^localhost *: .*changed=\([0-9]*\).*/\1/p' "$TEST_TMP/$name.out")
  echo "ansible $name: exit $PLAY_STATUS, changed=${PLAY_CHANGED:-?}, $PLAY_MS ms"
}
play_ok() { [ "$PLAY_STATUS" = 0 ] || fail "ansible run $1 failed: $(tail -25 "$TEST_TMP/$1.out")"; }

make_pki
CONTROL_PORT=$(free_port)
MGMT_PORT=$(free_port)
while [ "$MGMT_PORT" = "$CONTROL_PORT" ]; do MGMT_PORT=$(free_port); done
BACKEND_PORT=$(free_port)
PUBLIC_PORT=$(free_port)
OTHER_PORT=$(free_port)
# The roles write for, and validate as, a service user that is not root (nobody here, tunnel on a host): so
# --check-config judges the files as the unit's User= reads them, and Ansible's validate (run on a copy in its
# private temporary directory) must judge the installed path, not that copy. The daemons here still run as root.
svc_user=nobody svc_group=$(id -gn nobody)
chmod 711 "$TEST_TMP"

# ---- tunnel_server and tunnel_client: configurations from variables, validated by --check-config ----
server_vars=$(cat <<JSON
{"tunnel_install_method": "none", "tunnel_manage_service": false,
 "tunnel_bin_dir": "$(dirname "$TUNNELD")", "tunnel_user": "$svc_user", "tunnel_group": "$svc_group",
 "tunnel_config_dir": "$TEST_TMP/etc-server", "tunnel_state_dir": "$TEST_TMP/state",
 "tunnel_server_ca_cert_src": "$PKI/ca.crt", "tunnel_server_cert_src": "$PKI/server.crt",
 "tunnel_server_key_src": "$PKI/server.key",
 "tunnel_server_control_port": $CONTROL_PORT, "tunnel_server_management_port": $MGMT_PORT,
 "tunnel_server_listen_address": "127.0.0.1", "tunnel_server_admin_identities": ["admin"],
 "tunnel_server_debug_log": true, "tunnel_server_limits": $FAST_LIMITS}
JSON
)
client_vars=$(cat <<JSON
{"tunnel_install_method": "none", "tunnel_manage_service": false,
 "tunnel_bin_dir": "$(dirname "$TUNNELC")", "tunnel_user": "$svc_user", "tunnel_group": "$svc_group",
 "tunnel_config_dir": "$TEST_TMP/etc-client",
 "tunnel_client_ca_cert_src": "$PKI/ca.crt", "tunnel_client_cert_src": "$PKI/home1.crt",
 "tunnel_client_key_src": "$PKI/home1.key", "tunnel_client_identifier": "home1",
 "tunnel_client_server_host": "127.0.0.1", "tunnel_client_server_port": $CONTROL_PORT,
 "tunnel_client_allowed_backend_ports": [$BACKEND_PORT], "tunnel_client_debug_log": true,
 "tunnel_client_limits": $FAST_CLIENT_LIMITS}
JSON
)
# Role variables inline (JSON is YAML), so each role keeps its own tunnel_config_dir.
cat >"$TEST_TMP/hosts.yml" <<YML
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: tunnel_server
      vars: $(echo "$server_vars" | tr '\n' ' ')
    - role: tunnel_client
      vars: $(echo "$client_vars" | tr '\n' ' ')
YML
# Check mode on a fresh host that installs from the package: the package is only "would be copied", so its
# install, the service and the handlers cannot be judged and are skipped; the run succeeds and writes nothing.
fresh_deb="tunnel_checkmode_$$_amd64.deb"; : >"$TEST_TMP/$fresh_deb"
play fresh hosts "{\"tunnel_install_method\": \"deb\", \"tunnel_deb_src\": \"$TEST_TMP/$fresh_deb\", \"tunnel_manage_service\": true}" --check --diff
play_ok fresh
[ ! -e "/var/cache/$fresh_deb" ] && [ ! -e "$TEST_TMP/etc-server" ] && [ ! -e "$TEST_TMP/etc-client" ] ||
  fail "check mode wrote files: $(ls -d "/var/cache/$fresh_deb" "$TEST_TMP"/etc-* 2>&1)"
[ "$(grep -A1 'Install the tunnel package' "$TEST_TMP/fresh.out" | grep -c '^skipping')" = 2 ] ||
  fail "check mode on a fresh host did not skip the package install: $(grep -A2 'Install the tunnel package' "$TEST_TMP/fresh.out")"
play hosts1 hosts '{}'; play_ok hosts1
[ "$PLAY_CHANGED" -ge 2 ] || fail "tunnel_server + tunnel_client first run reported changed=$PLAY_CHANGED"
[ "$(stat -c %a "$TEST_TMP/etc-server/server.key")" = 640 ] || fail "server.key mode $(stat -c %a "$TEST_TMP/etc-server/server.key")"
[ "$(stat -c %a "$TEST_TMP/etc-client/tunnelc.key")" = 640 ] || fail "tunnelc.key mode $(stat -c %a "$TEST_TMP/etc-client/tunnelc.key")"
play hosts2 hosts '{}'; play_ok hosts2
[ "$PLAY_CHANGED" = 0 ] || fail "second run of tunnel_server + tunnel_client reported changed=$PLAY_CHANGED: $(grep -B1 '^changed:' "$TEST_TMP/hosts2.out")"
# As the units start them: as the service user (User=), which owns the state directory the role made. Copies of
# the binaries, since the build tree's directories need not be open to that user.
cp "$TUNNELD" "$TUNNELC" "$TEST_TMP/bin/"
as_service_user=(setpriv --reuid="$svc_user" --regid="$svc_group" --init-groups)
spawn_checked tunneld "${as_service_user[@]}" "$TEST_TMP/bin/tunneld" --config "$TEST_TMP/etc-server/tunneld.json"
TUNNELD_PID=$SPAWNED_PID
wait_until 15 api_ping || fail "tunneld did not start from the role's configuration"
spawn_checked tunnelc-home1 "${as_service_user[@]}" "$TEST_TMP/bin/tunnelc" --config "$TEST_TMP/etc-client/tunnelc.json"
wait_client_connected home1

mkdir -p "$TEST_TMP/www"
echo "hello via ansible" >"$TEST_TMP/www/index.html"
spawn backend python3 -m http.server "$BACKEND_PORT" --bind 127.0.0.1 --directory "$TEST_TMP/www"
wait_port "$BACKEND_PORT"

# ---- tunnel_routes ----
routes_vars() {  # routes_vars TUNNELS_JSON
  cat <<JSON
{"tunnel_routes_api_url": "https://127.0.0.1:$MGMT_PORT", "tunnel_routes_ca_cert": "$PKI/ca.crt",
 "tunnel_routes_client_cert": "$PKI/admin.crt", "tunnel_routes_client_key": "$PKI/admin.key",
 "tunnel_routes_timeout": 10, "tunnel_routes": $1}
JSON
}
# Short form: every default left out; GET /tunnels returns them written out, plus the read-only keys.
wanted="[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"

play routes1 tunnel_routes "$(routes_vars "$wanted")"; play_ok routes1
[ "$PLAY_CHANGED" = 1 ] || fail "first tunnel_routes run: changed=$PLAY_CHANGED, want 1"
first_ms=$PLAY_MS
wait_port "$PUBLIC_PORT"
body=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/index.html")
[ "$body" = "hello via ansible" ] || fail "through the tunnel the role made: got '$body'"
# The table without its live counters (OpenConnections moves while curl's connection winds down).
table_now() {
  api GET /tunnels
  [ "$API_STATUS" = 200 ] || fail "GET /tunnels: $API_STATUS"
  python3 -c 'import json,sys; print(json.dumps([{k: v for k, v in t.items() if k not in ("ActiveClient", "OpenConnections")} for t in json.loads(sys.argv[1])], separators=(",", ":")))' "$API_BODY"
}
table_after_first=$(table_now)
grep -q "\"ListenPort\":$PUBLIC_PORT" <<<"$table_after_first" || fail "GET /tunnels lacks the tunnel: $table_after_first"

play routes2 tunnel_routes "$(routes_vars "$wanted")"; play_ok routes2
[ "$PLAY_CHANGED" = 0 ] || fail "second tunnel_routes run: changed=$PLAY_CHANGED, want 0: $(tail -20 "$TEST_TMP/routes2.out")"
grep -A1 'Replace the tunnel table' "$TEST_TMP/routes2.out" | grep -q 'skipping' ||
  fail "second run did not skip the PUT: $(grep -A2 'Replace the tunnel table' "$TEST_TMP/routes2.out")"
# The same table written out in full, in GET's own shape, is the same table too.
api GET /tunnels
play routes2b tunnel_routes "$(routes_vars "$API_BODY")"; play_ok routes2b
[ "$PLAY_CHANGED" = 0 ] || fail "GET /tunnels' own output fed back reported changed=$PLAY_CHANGED"
echo "first run $first_ms ms (changed=1), same table again: changed=0"

# Check mode with another table: changed reported, nothing replaced.
other="[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $OTHER_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
play check tunnel_routes "$(routes_vars "$other")" --check --diff; play_ok check
[ "$PLAY_CHANGED" = 1 ] || fail "check mode with a different table: changed=$PLAY_CHANGED, want 1"
# --diff shows a real diff of the table: the tunnel GET /tunnels has now removed, the wanted one added.
grep -qE "^-\{.*\"ListenPort\": $PUBLIC_PORT[,}]" "$TEST_TMP/check.out" ||
  fail "check --diff does not show the current tunnel as removed: $(grep -A12 'Tunnel table change' "$TEST_TMP/check.out")"
grep -qE "^\+\{.*\"ListenPort\": $OTHER_PORT[,}]" "$TEST_TMP/check.out" ||
  fail "check --diff does not show the wanted tunnel as added: $(grep -A12 'Tunnel table change' "$TEST_TMP/check.out")"
grep -E "^[-+]\{" "$TEST_TMP/check.out" | sed 's/^/check --diff: /'
[ "$(table_now)" = "$table_after_first" ] || fail "check mode changed the table: $API_BODY"
port_open "$OTHER_PORT" && fail "check mode bound port $OTHER_PORT"

# An invalid tunnel: the run fails and says what tunneld said; the table is untouched.
invalid="[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": 70000, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
play invalid tunnel_routes "$(routes_vars "$invalid")"
[ "$PLAY_STATUS" != 0 ] || fail "a run with ListenPort 70000 succeeded"
api_error='tunnels[0].ListenPort: must be 1-65535, got 70000'
grep -qF "$api_error" "$TEST_TMP/invalid.out" ||
  fail "the failed run does not show the API's message '$api_error': $(grep -i -A3 'fatal\|failed' "$TEST_TMP/invalid.out" | head -20)"
grep -F "$api_error" "$TEST_TMP/invalid.out" | sed -n 1p | sed 's/^ */ansible showed: /'
[ "$(table_now)" = "$table_after_first" ] || fail "the refused run changed the table: $API_BODY"
body=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/index.html")
[ "$body" = "hello via ansible" ] || fail "tunnel broken after the refused run: got '$body'"

# A wrong admin certificate: the read fails with tunneld's 403 message.
play forbidden tunnel_routes "$(routes_vars "$wanted" | sed "s#$PKI/admin\.#$PKI/home2.#g")"
[ "$PLAY_STATUS" != 0 ] || fail "a run with a non-admin certificate succeeded"
grep -q 'not allowed on the management port' "$TEST_TMP/forbidden.out" ||
  fail "the 403 run does not show the API's message: $(grep -A3 'fatal' "$TEST_TMP/forbidden.out" | head)"

# A tunnel home1 does not allow (its AllowedBackEndPorts lists only $BACKEND_PORT): applied, and the run prints the problem.
refused="[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $OTHER_PORT}]"
play problems tunnel_routes "$(routes_vars "$refused")"; play_ok problems
[ "$PLAY_CHANGED" = 1 ] || fail "a table with a refused backend: changed=$PLAY_CHANGED, want 1"
grep -qF "tunnel 127.0.0.1:$PUBLIC_PORT: client home1 does not allow BackEndPort $OTHER_PORT" "$TEST_TMP/problems.out" ||
  fail "the run does not print the tunnel's problem: $(grep -A4 'Problems' "$TEST_TMP/problems.out" | head)"
grep -F "does not allow" "$TEST_TMP/problems.out" | sed -n 1p | sed 's/^ */ansible showed: /'

# ---- tunnel_routes: revoked certificates (a lost machine), in the run that puts the original table back ----
# Plays are few and do several things each: every ansible-playbook run costs seconds on a busy machine.
FP2=$(fingerprint "$PKI/home2.crt")
revoked_vars() {  # revoked_vars LIST [TUNNELS_JSON]: routes_vars with tunnel_revoked_certificates
  routes_vars "${2:-$wanted}" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["tunnel_revoked_certificates"]=json.loads(sys.argv[1]); print(json.dumps(d))' "$1"
}
play revoke1 tunnel_routes "$(revoked_vars "[\"$FP2\"]")"; play_ok revoke1
[ "$PLAY_CHANGED" = 2 ] || fail "the original table back and a revocation: changed=$PLAY_CHANGED, want 2 (the table, the list)"
grep -q "does not allow" "$TEST_TMP/revoke1.out" && fail "problems printed for a table without any"
body=$(curl -sS --max-time 10 "http://127.0.0.1:$PUBLIC_PORT/index.html")
[ "$body" = "hello via ansible" ] || fail "tunnel broken after putting the original table back: got '$body'"
api GET /revoked-certificates
[ "$(json_get "$API_BODY" 'd')" = "[\"$FP2\"]" ] || fail "the role did not revoke: $API_BODY"

# Tags, one per role in examples/ansible/site.yml: every task of a role carries that role's tag and no other, so
# --tags tunnel_routes runs the table's tasks (reading it, the revoked list) and nothing of the other roles.
ansible-playbook -i "$src/examples/ansible/inventory.ini" "$src/examples/ansible/site.yml" --list-tasks \
  >"$TEST_TMP/tags.out" 2>&1 || fail "site.yml --list-tasks failed: $(tail -5 "$TEST_TMP/tags.out")"
python3 - "$TEST_TMP/tags.out" <<'PY' || fail "site.yml does not tag each role's tasks with the role: $(cat "$TEST_TMP/tags.out")"
import re, sys
tasks = re.findall(r"^\s+(\w+) : (.*?)\tTAGS: \[(.*)\]$", open(sys.argv[1]).read(), re.M)
roles = {role for role, _, _ in tasks}
wrong = [(r, t, tags) for r, t, tags in tasks if [x.strip() for x in tags.split(",")] != [r]]
names = [t for r, t, _ in tasks if r == "tunnel_routes"]
ok = roles == {"tunnel_server", "tunnel_client", "tunnel_routes"} and not wrong and \
     any(t.startswith("Read the tunnel table") for t in names) and "Revoked certificates" in names
sys.exit(0 if ok else "roles %s, wrongly tagged %s" % (sorted(roles), wrong))
PY

pass "roles render valid configs idempotently; tunnel_routes: changed then changed=0, check mode reports without PUT, API errors shown, Problems printed, one tag per role; tunnel_revoked_certificates revokes"

# ---- tunnel_routes: several sites on one port by hostname; a glob's case does not make a change ----
sites="[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT, \"ListenHostnameGlob\": \"Blog.Example.Test\"},
        {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT, \"ListenHostnameGlob\": \"*.example.test\"}]"
play sites1 tunnel_routes "$(routes_vars "$sites")"; play_ok sites1
[ "$PLAY_CHANGED" = 1 ] || fail "hostname-routed table: changed=$PLAY_CHANGED, want 1"
api GET /tunnels
[ "$(json_get "$API_BODY" '[t["ListenHostnameGlob"] for t in d]')" = '["blog.example.test", "*.example.test"]' ] ||
  fail "the role's hostname globs are not in force: $API_BODY"
body=$(curl -sS --max-time 10 -H "Host: blog.example.test" "http://127.0.0.1:$PUBLIC_PORT/index.html")
[ "$body" = "hello via ansible" ] || fail "blog.example.test through the role's table: got '$body'"
api GET /revoked-certificates
[ "$(json_get "$API_BODY" 'd')" = "[\"$FP2\"]" ] || fail "a play without tunnel_revoked_certificates touched the list: $API_BODY"
# The same sites and the same revoked list again: nothing to do.
play sites2 tunnel_routes "$(revoked_vars "[\"$FP2\"]" "$sites")"; play_ok sites2
[ "$PLAY_CHANGED" = 0 ] || fail "the same hostname-routed table and revoked list again: changed=$PLAY_CHANGED, want 0"
pass "tunnel_routes: two sites on one port by ListenHostnameGlob (changed=1), a play without the revoked list leaves it alone, the same lists again changed=0"
