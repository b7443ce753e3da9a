#!/usr/bin/env bash
# Bad configurations: tunneld and tunnelc, with --check-config and at startup, exit non-zero with one message
# naming the file, the field and the reason; good configurations pass --check-config with exit 0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

make_pki
CONTROL_PORT=$(free_port)
MGMT_PORT=$(free_port)
write_tunneld_config
GOOD_D="$TEST_TMP/tunneld.json"
cat >"$TEST_TMP/tunnelc-good.json" <<JSON
{
  "ServerHost": "127.0.0.1",
  "ServerTunnelControlPort": $CONTROL_PORT,
  "CaCertificateFile": "$PKI/ca.crt",
  "ClientTlsCertificateFile": "$PKI/home1.crt",
  "ClientTlsKeyFile": "$PKI/home1.key",
  "ClientIdentifier": "home1",
  "AllowedBackEndPorts": [8080]
}
JSON
GOOD_C="$TEST_TMP/tunnelc-good.json"

# variant GOOD OUT PYTHON: writes OUT as GOOD's JSON object d after the python statement(s) edit it.
variant() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[3])
open(sys.argv[2], "w").write(json.dumps(d, indent=2))
PY
}

# expect_error PROGRAM CONFIG PATTERN...: --check-config and a real start both exit non-zero, and the message
# names the file (the config file, or $NAMED_FILE when another file is at fault) and matches every PATTERN.
expect_error() {
  local prog=$1 cfg=$2; shift 2
  local name; name=$(basename "$prog")
  # --service-user: the daemons here run as the test's user, whatever accounts the host has (a host with the package has "tunnel").
  for mode in --check-config start; do
    local args=(--config "$cfg") rc=0
    [ "$mode" = --check-config ] && args+=(--check-config --service-user "$(id -un)")
    timeout 20 "$prog" "${args[@]}" >"$TEST_TMP/out" 2>&1 || rc=$?
    local msg; msg=$(cat "$TEST_TMP/out")
    echo "$name $mode $(basename "$cfg") -> exit $rc: $msg"
    [ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "$name $mode with $(basename "$cfg"): exit $rc"
    grep -qF -- "${NAMED_FILE:-$cfg}" <<<"$msg" || fail "$name: message does not name the file ${NAMED_FILE:-$cfg}"
    for p in "$@"; do grep -qE -- "$p" <<<"$msg" || fail "$name: message does not match '$p': $msg"; done
  done
  # Nothing was left listening by a failed start.
  ! port_open "$CONTROL_PORT" && ! port_open "$MGMT_PORT" || fail "$name left a port open after failing"
}

# tunneld
variant "$GOOD_D" "$TEST_TMP/d-unknown.json" 'd["ManagementPorts"] = 9057'
expect_error "$TUNNELD" "$TEST_TMP/d-unknown.json" 'ManagementPorts' 'unknown key'
variant "$GOOD_D" "$TEST_TMP/d-limits.json" 'd["Limits"]["MaxWindows"] = 1'
expect_error "$TUNNELD" "$TEST_TMP/d-limits.json" 'MaxWindows' 'unknown key'
variant "$GOOD_D" "$TEST_TMP/d-porttype.json" 'd["ManagementPort"] = "abc"'
expect_error "$TUNNELD" "$TEST_TMP/d-porttype.json" '"ManagementPort"' 'integer 1-65535' '"abc"'
variant "$GOOD_D" "$TEST_TMP/d-portrange.json" 'd["TunnelControlPort"] = 70000'
expect_error "$TUNNELD" "$TEST_TMP/d-portrange.json" '"TunnelControlPort"' '1-65535' '70000'
variant "$GOOD_D" "$TEST_TMP/d-noadmin.json" 'del d["AdminIdentities"]'
expect_error "$TUNNELD" "$TEST_TMP/d-noadmin.json" 'AdminIdentities' 'required|missing'
variant "$GOOD_D" "$TEST_TMP/d-emptyadmin.json" 'd["AdminIdentities"] = []'
expect_error "$TUNNELD" "$TEST_TMP/d-emptyadmin.json" 'AdminIdentities' 'empty'
variant "$GOOD_D" "$TEST_TMP/d-usetls.json" 'd["UseTls"] = False'
expect_error "$TUNNELD" "$TEST_TMP/d-usetls.json" 'UseTls' 'plaintext|false'
printf '{\n  "TunnelControlPort": 9056,\n  "ManagementPort": tru\n}\n' >"$TEST_TMP/d-syntax.json"
expect_error "$TUNNELD" "$TEST_TMP/d-syntax.json" 'd-syntax.json:3:[0-9]+: invalid JSON'
variant "$GOOD_D" "$TEST_TMP/d-nocert.json" 'd["ServerTlsCertificateFile"] = d["ServerTlsCertificateFile"] + ".missing"'
expect_error "$TUNNELD" "$TEST_TMP/d-nocert.json" '"ServerTlsCertificateFile"' 'server\.crt\.missing: cannot open'
variant "$GOOD_D" "$TEST_TMP/d-badstate.json" 'd["StateFile"] = d["StateFile"] + ".bad"'
mkdir -p "$(dirname "$STATE_FILE")" && echo '[{"ListenPort": 0}]' >"$STATE_FILE.bad"
NAMED_FILE="$STATE_FILE.bad" expect_error "$TUNNELD" "$TEST_TMP/d-badstate.json" 'invalid state file' 'tunnels\[0\]\.ListenPort'
rc=0; out=$("$TUNNELD" --config "$GOOD_D" --check-config --init-state --service-user "$(id -un)" 2>&1) || rc=$?  # its state file is not there yet
echo "tunneld --check-config good -> exit $rc: $out"
[ "$rc" = 0 ] || fail "tunneld --check-config on a good config: exit $rc: $out"
pass "tunneld: unknown keys, bad port type/range, missing/empty AdminIdentities, UseTls false, syntax, missing certificate, bad state file"

# tunnelc
variant "$GOOD_C" "$TEST_TMP/c-unknown.json" 'd["ServerPort"] = 9056'
expect_error "$TUNNELC" "$TEST_TMP/c-unknown.json" 'ServerPort' 'unknown key'
variant "$GOOD_C" "$TEST_TMP/c-case.json" 'd["serverhost"] = d.pop("ServerHost")'
expect_error "$TUNNELC" "$TEST_TMP/c-case.json" 'serverhost' 'unknown key' 'ServerHost'
variant "$GOOD_C" "$TEST_TMP/c-identity.json" 'd["ClientIdentifier"] = "home2"'
expect_error "$TUNNELC" "$TEST_TMP/c-identity.json" '"ClientIdentifier"' '"home2"' 'does not match' '"home1"'
variant "$GOOD_C" "$TEST_TMP/c-ports.json" 'd["AllowedBackEndPorts"] = [8080, "x"]'
expect_error "$TUNNELC" "$TEST_TMP/c-ports.json" '"AllowedBackEndPorts"\[1\]' '1-65535' '"x"'
variant "$GOOD_C" "$TEST_TMP/c-ports0.json" 'd["AllowedBackEndPorts"] = [0]'
expect_error "$TUNNELC" "$TEST_TMP/c-ports0.json" '"AllowedBackEndPorts"\[0\]' '1-65535'
variant "$GOOD_C" "$TEST_TMP/c-usetls.json" 'd["UseTls"] = False'
expect_error "$TUNNELC" "$TEST_TMP/c-usetls.json" 'UseTls'
# A missing file is named with the key that names it, each of the three.
for key in CaCertificateFile ClientTlsCertificateFile ClientTlsKeyFile; do
  variant "$GOOD_C" "$TEST_TMP/c-no-$key.json" "d['$key'] = '$TEST_TMP/absent-$key.pem'"
  expect_error "$TUNNELC" "$TEST_TMP/c-no-$key.json" "\"$key\": $TEST_TMP/absent-$key.pem: cannot open: No such file"
done
rc=0; out=$("$TUNNELC" --config "$GOOD_C" --check-config --service-user "$(id -un)" 2>&1) || rc=$?
echo "tunnelc --check-config good -> exit $rc: $out"
[ "$rc" = 0 ] || fail "tunnelc --check-config on a good config: exit $rc: $out"
pass "tunnelc: unknown key (with case hint), ClientIdentifier not the certificate's CN, bad AllowedBackEndPorts, UseTls false, each missing certificate or key file named with its key"

# One description of a bad value in both programs (tn_json_describe): the same mistake reads the same, in words.
variant "$GOOD_D" "$TEST_TMP/d-limitsarray.json" 'd["Limits"] = [1, 2]'
expect_error "$TUNNELD" "$TEST_TMP/d-limitsarray.json" '"Limits": must be an object, got an array$'
variant "$GOOD_C" "$TEST_TMP/c-limitsarray.json" 'd["Limits"] = [1, 2]'
expect_error "$TUNNELC" "$TEST_TMP/c-limitsarray.json" '"Limits": must be an object, got an array$'
pass "tunneld and tunnelc describe a bad value the same way"
