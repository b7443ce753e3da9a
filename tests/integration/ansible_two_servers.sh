#!/usr/bin/env bash
# The tunnel_routes role against two tunneld (vps1, vps2) on loopback, as docs/OPERATIONS.md 6a uses it: an inventory
# group of two hosts, each with its own management URL, one table for the group (the public port is a host variable,
# since both tunneld share this machine's port space).
#  - tunnel_client renders "Servers" from tunnel_client_servers; tunnelc started from that file links to both;
#  - first run: changed on both hosts, and HTTP goes through both public ports; second run: changed=0 on both;
#  - check mode with --diff and another table: changed on both, each host's diff shows its own tunnel, nothing applied;
#  - vps1 stopped, another table: vps1 is reported failed (its URL and the refusal named), vps2 still applies the
#    table (GET /tunnels on vps2 shows it) and carries traffic.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

src=${TUNNEL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v ansible-playbook >/dev/null || fail "ansible-playbook not installed (apt-get install ansible-core)"

# As in ansible_routes: quiet, no facts, every temporary file under $TEST_TMP, UTF-8, no bytecode in the tree.
export LC_ALL=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
export ANSIBLE_HOME="$TEST_TMP/ansible" ANSIBLE_LOCAL_TEMP="$TEST_TMP/ansible/tmp" ANSIBLE_REMOTE_TEMP="$TEST_TMP/ansible/rtmp"
export ANSIBLE_GATHERING=explicit ANSIBLE_RETRY_FILES_ENABLED=false ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_ROLES_PATH="$src/examples/ansible/roles" ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
export ANSIBLE_DEPRECATION_WARNINGS=false ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
export ANSIBLE_PIPELINING=true
: >"$TEST_TMP/ansible.cfg"; export ANSIBLE_CONFIG="$TEST_TMP/ansible.cfg"
mkdir -p "$ANSIBLE_LOCAL_TEMP" "$ANSIBLE_REMOTE_TEMP"

make_pki
server_ports vps1 vps2
BACKEND=$(free_port); PUBLIC_vps1=$(free_port); PUBLIC_vps2=$(free_port)
OTHER_vps1=$(free_port); OTHER_vps2=$(free_port)
start_marker_nginx web "$BACKEND" home
start_server vps1
start_server vps2

# The inventory a reader of OPERATIONS.md 6a would write, with loopback URLs in place of the VPS names.
cat >"$TEST_TMP/inventory.ini" <<INI
[tunnel_servers]
vps1 tunnel_routes_api_url=https://127.0.0.1:$MGMT_vps1 public_port=$PUBLIC_vps1 other_port=$OTHER_vps1
vps2 tunnel_routes_api_url=https://127.0.0.1:$MGMT_vps2 public_port=$PUBLIC_vps2 other_port=$OTHER_vps2

[tunnel_servers:vars]
ansible_connection=local
tunnel_routes_ca_cert=$PKI/ca.crt
tunnel_routes_client_cert=$PKI/admin.crt
tunnel_routes_client_key=$PKI/admin.key
tunnel_routes_timeout=10
INI
cat >"$TEST_TMP/routes.yml" <<YML
- hosts: tunnel_servers
  gather_facts: false
  roles: [tunnel_routes]
YML

# play NAME VARS_JSON [ARGS...]: the routes playbook on both hosts; output in $TEST_TMP/NAME.out, exit status in
# $PLAY_STATUS; recap() HOST KEY then reads one count of that host's recap line.
play() {
  local name=$1 vars=$2; shift 2
  printf '%s\n' "$vars" >"$TEST_TMP/$name.vars.json"
  local t0; t0=$(now_ms)
  PLAY_STATUS=0
  ansible-playbook -i "$TEST_TMP/inventory.ini" "$TEST_TMP/routes.yml" -e "@$TEST_TMP/$name.vars.json" "$@" \
    >"$TEST_TMP/$name.out" 2>&1 || PLAY_STATUS=$?
  PLAY_NAME=$name
  echo "ansible $name: exit $PLAY_STATUS, $(grep -E '^vps[12] +:' "$TEST_TMP/$name.out" | tr -s ' ' | tr '\n' ';') $(( $(now_ms) - t0 )) ms"
}
recap() { sed -n "s/^$1 *: .*\\b$2=\\([0-9]*\\).*/\\1/p" "$TEST_TMP/$PLAY_NAME.out"; }
play_ok() { [ "$PLAY_STATUS" = 0 ] || fail "ansible run $PLAY_NAME failed: $(tail -25 "$TEST_TMP/$PLAY_NAME.out")"; }
expect_changed() {  # HOST WANT
  [ "$(recap "$1" changed)" = "$2" ] || fail "$PLAY_NAME: $1 changed=$(recap "$1" changed), want $2: $(tail -20 "$TEST_TMP/$PLAY_NAME.out")"
}
# One table for the group; ListenPort is templated per host ("{{ public_port }}", a string the role reads as an integer).
table() {  # PORT_VAR
  echo "{\"tunnel_routes\": [{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": \"{{ $1 }}\", \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND}]}"
}
# The table in force on a server, as "address:port->backend" lines.
table_on() {
  use_server "$1"
  api GET /tunnels
  [ "$API_STATUS" = 200 ] || fail "GET /tunnels on $1: $API_STATUS"
  json_get "$API_BODY" '" ".join(sorted("%s:%s->%s" % (t["ListenAddress"], t["ListenPort"], t.get("BackEndPort")) for t in d))'
}

# ---- tunnel_client: "Servers" from tunnel_client_servers, accepted by tunnelc --check-config ----
me=$(id -un); grp=$(id -gn)
cat >"$TEST_TMP/client.yml" <<YML
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: tunnel_client
      vars: {"tunnel_install_method": "none", "tunnel_manage_service": false,
             "tunnel_bin_dir": "$(dirname "$TUNNELC")", "tunnel_user": "$me", "tunnel_group": "$grp",
             "tunnel_config_dir": "$TEST_TMP/etc-client", "tunnel_client_ca_cert_src": "$PKI/ca.crt",
             "tunnel_client_cert_src": "$PKI/home1.crt", "tunnel_client_key_src": "$PKI/home1.key",
             "tunnel_client_servers": ["127.0.0.1:$CONTROL_vps1", "127.0.0.1:$CONTROL_vps2"],
             "tunnel_client_allowed_backend_ports": [$BACKEND], "tunnel_client_debug_log": true,
             "tunnel_client_limits": $FAST_CLIENT_LIMITS}
YML
ansible-playbook -i localhost, "$TEST_TMP/client.yml" >"$TEST_TMP/client.out" 2>&1 ||
  fail "tunnel_client with tunnel_client_servers failed: $(tail -20 "$TEST_TMP/client.out")"
CCONF="$TEST_TMP/etc-client/tunnelc.json"
json_get "$(cat "$CCONF")" '"ServerHost" not in d and d["Servers"] == ["127.0.0.1:'"$CONTROL_vps1"'", "127.0.0.1:'"$CONTROL_vps2"'"]' |
  grep -qx true || fail "tunnel_client_servers was not rendered as Servers alone: $(cat "$CCONF")"
spawn_checked tunnelc-home1 "$TUNNELC" --config "$CCONF"
TUNNELC_PID_home1=$SPAWNED_PID
for s in vps1 vps2; do use_server "$s"; wait_client_connected home1; done
echo "tunnelc from the role's Servers file is connected to vps1 and vps2"

# ---- tunnel_routes on the group: changed on both, then changed=0 on both ----
play first "$(table public_port)"; play_ok
expect_changed vps1 1; expect_changed vps2 1
for s in vps1 vps2; do
  p="PUBLIC_$s"
  [ "$(table_on "$s")" = "127.0.0.1:${!p}->$BACKEND" ] || fail "the first run left $s with: $(table_on "$s")"
  wait_port "${!p}"
  [ "$(http_get_marker 127.0.0.1 "${!p}")" = home ] || fail "no traffic through $s's public port"
done
play second "$(table public_port)"; play_ok
expect_changed vps1 0; expect_changed vps2 0
[ "$(grep -A2 'Replace the tunnel table' "$TEST_TMP/second.out" | grep -c '^skipping: \[vps[12]\]')" = 2 ] ||
  fail "the second run did not skip the PUT on both hosts: $(grep -A3 'Replace the tunnel table' "$TEST_TMP/second.out")"
pass "one table for two tunneld: changed on both at first, changed=0 on both the second time, traffic through both"

# ---- check mode: each host's own diff, nothing applied ----
play check "$(table other_port)" --check --diff; play_ok
expect_changed vps1 1; expect_changed vps2 1
for s in vps1 vps2; do
  p="PUBLIC_$s" o="OTHER_$s"
  grep -qE "^-\{.*\"ListenPort\": ${!p}[,}]" "$TEST_TMP/check.out" || fail "check --diff does not show $s's tunnel removed"
  grep -qE "^\+\{.*\"ListenPort\": ${!o}[,}]" "$TEST_TMP/check.out" || fail "check --diff does not show $s's new tunnel"
  [ "$(table_on "$s")" = "127.0.0.1:${!p}->$BACKEND" ] || fail "check mode changed $s's table: $(table_on "$s")"
done
grep -E "^[-+]\{" "$TEST_TMP/check.out" | sed 's/^/check --diff: /'

# ---- one tunneld down: that host fails, the other still applies ----
stop_server vps1
play down "$(table other_port)"
[ "$PLAY_STATUS" != 0 ] || fail "a run with vps1 down succeeded"
[ "$(recap vps1 failed)" = 1 ] || fail "vps1 (stopped) is not reported failed: $(grep -E '^vps[12] ' "$TEST_TMP/down.out")"
[ "$(recap vps2 failed)" = 0 ] && [ "$(recap vps2 changed)" = 1 ] ||
  fail "vps2 did not apply the table while vps1 was down: $(grep -E '^vps[12] ' "$TEST_TMP/down.out")"
grep -E "^fatal: \[vps1\]" -A3 "$TEST_TMP/down.out" | grep -qF "GET https://127.0.0.1:$MGMT_vps1/tunnels: -1:" ||
  fail "vps1's failure does not name its URL: $(grep -A3 '^fatal' "$TEST_TMP/down.out")"
grep -E "^fatal: \[vps1\]" -A3 "$TEST_TMP/down.out" | grep -qi "connection refused" ||
  fail "vps1's failure does not say why: $(grep -A3 '^fatal' "$TEST_TMP/down.out")"
grep -qE "^fatal: \[vps2[] ]" "$TEST_TMP/down.out" && fail "vps2 failed too: $(grep -A3 '^fatal: \[vps2[] ]' "$TEST_TMP/down.out")"
grep -E "^fatal: \[vps1\]" -A3 "$TEST_TMP/down.out" | grep -o 'GET https[^"]*' | sed -n 1p | sed 's/^/ansible showed for vps1: /'
[ "$(table_on vps2)" = "127.0.0.1:$OTHER_vps2->$BACKEND" ] || fail "vps2's table is not the new one: $(table_on vps2)"
wait_port "$OTHER_vps2"
[ "$(http_get_marker 127.0.0.1 "$OTHER_vps2")" = home ] || fail "no traffic through vps2's new tunnel"
port_open "$PUBLIC_vps2" && fail "vps2 still listens on the tunnel the new table removed"

stop_checked home1
stop_server vps2
pass "vps1 stopped: reported failed with its URL and the refusal; vps2 applied the new table (GET /tunnels) and carries it"
