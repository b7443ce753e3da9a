#!/usr/bin/env bash
# Files an operator (or an attacker with write access to a directory) can point tunnel at: a FIFO at StateFile, the
# key or the config path never hangs startup; a symbolic link at StateFile is refused without a byte of its target in
# the message; a corrupt state file is not quoted either; private keys that others can read or group/others can write
# are refused with the chmod to run. Each refusal exits non-zero, with --check-config as at a real start.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

CANARY="canary-$RANDOM-do-not-print"
make_pki
CONTROL_PORT=$(free_port)
MGMT_PORT=$(free_port)
write_tunneld_config
GOOD_D="$TEST_TMP/tunneld.json"
cat >"$TEST_TMP/tunnelc.json" <<JSON
{"ServerHost": "127.0.0.1", "ServerTunnelControlPort": $CONTROL_PORT, "CaCertificateFile": "$PKI/ca.crt",
 "ClientTlsCertificateFile": "$PKI/home1.crt", "ClientTlsKeyFile": "$PKI/home1.key"}
JSON

variant() {
  python3 - "$GOOD_D" "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[3])
open(sys.argv[2], "w").write(json.dumps(d, indent=2))
PY
}

# refused PROGRAM CONFIG PATTERN...: --check-config and a real start exit non-zero within the timeout (a hang is
# exit 124, a failure here), the message matches every PATTERN and never holds the canary.
refused() {
  local prog=$1 cfg=$2; shift 2
  # --service-user: the daemons here run as the test's user, whatever accounts the host has (a host with the package has "tunnel").
  for mode in --check-config start; do
    local args=(--config "$cfg") rc=0
    [ "$mode" = --check-config ] && args+=(--check-config --service-user "$(id -un)")
    # 20 s: a start that fails does so in well under a second even under ASan; only a hang takes longer.
    timeout 20 "$prog" "${args[@]}" >"$TEST_TMP/out" 2>&1 </dev/null || rc=$?
    local msg; msg=$(cat "$TEST_TMP/out")
    echo "$(basename "$prog") $mode $(basename "$cfg") -> exit $rc: $msg"
    [ "$rc" != 124 ] || fail "$(basename "$prog") $mode with $(basename "$cfg") hung"
    [ "$rc" != 0 ] || fail "$(basename "$prog") $mode with $(basename "$cfg") was accepted"
    ! grep -qF -- "$CANARY" <<<"$msg" || fail "the message quotes the file's content: $msg"
    for p in "$@"; do grep -qE -- "$p" <<<"$msg" || fail "message does not match '$p': $msg"; done
  done
}

# 1. A FIFO at StateFile (nobody writes to it): refused at once instead of blocking in open().
mkfifo "$TEST_TMP/fifo-state"
variant "$TEST_TMP/d-fifo.json" "d['StateFile'] = '$TEST_TMP/fifo-state'"
refused "$TUNNELD" "$TEST_TMP/d-fifo.json" "fifo-state: cannot read the state file: not a regular file \(a FIFO\)"

# 2. A symbolic link at StateFile, to a file holding a secret (JSON or not): refused, nothing of it quoted.
printf '{"password": "%s"}\n' "$CANARY" >"$TEST_TMP/secret.json"
printf '%s root:x:0:0\n' "$CANARY" >"$TEST_TMP/secret.txt"
for target in secret.json secret.txt; do
  ln -sf "$TEST_TMP/$target" "$TEST_TMP/link-state"
  variant "$TEST_TMP/d-link.json" "d['StateFile'] = '$TEST_TMP/link-state'"
  refused "$TUNNELD" "$TEST_TMP/d-link.json" "link-state: cannot read the state file: is a symbolic link"
done
[ -L "$TEST_TMP/link-state" ] || fail "the link at StateFile was replaced"

# 3. A corrupt or invalid state file is named, its content is not.
for content in "$CANARY" "{\"$CANARY\": 1}" "[{\"ListenPort\": \"$CANARY\", \"ClientIdentifier\": \"a\", \"BackEndPort\": 1}]"; do
  printf '%s\n' "$content" >"$TEST_TMP/bad-state.json"
  variant "$TEST_TMP/d-bad.json" "d['StateFile'] = '$TEST_TMP/bad-state.json'"
  refused "$TUNNELD" "$TEST_TMP/d-bad.json" "bad-state\.json: (corrupt|invalid) state file"
done

# 4. FIFOs as the configuration, the certificate and the key.
mkfifo "$TEST_TMP/fifo-config" "$TEST_TMP/fifo-cert" "$TEST_TMP/fifo-key"
refused "$TUNNELD" "$TEST_TMP/fifo-config" "fifo-config: not a regular file \(a FIFO\)"
refused "$TUNNELC" "$TEST_TMP/fifo-config" "fifo-config: not a regular file \(a FIFO\)"
variant "$TEST_TMP/d-fifo-cert.json" "d['ServerTlsCertificateFile'] = '$TEST_TMP/fifo-cert'"
refused "$TUNNELD" "$TEST_TMP/d-fifo-cert.json" '"ServerTlsCertificateFile"' "fifo-cert: not a regular file \(a FIFO\)"
variant "$TEST_TMP/d-fifo-key.json" "d['ServerTlsKeyFile'] = '$TEST_TMP/fifo-key'"
refused "$TUNNELD" "$TEST_TMP/d-fifo-key.json" '"ServerTlsKeyFile"' "fifo-key: not a regular file \(a FIFO\)"

# 5. Private keys others can read, or group/others can write: refused with the command that fixes it.
for mode in 644 666 604 620 602; do
  cp "$PKI/server.key" "$TEST_TMP/server-$mode.key"
  chmod "$mode" "$TEST_TMP/server-$mode.key"
  variant "$TEST_TMP/d-key.json" "d['ServerTlsKeyFile'] = '$TEST_TMP/server-$mode.key'"
  refused "$TUNNELD" "$TEST_TMP/d-key.json" '"ServerTlsKeyFile"' \
    "server-$mode\.key: permissions 0$mode are too open for a private key" "run: chmod 600 $TEST_TMP/server-$mode\.key"
done
cp "$PKI/home1.key" "$TEST_TMP/client-644.key"; chmod 644 "$TEST_TMP/client-644.key"
python3 - "$TEST_TMP/tunnelc.json" "$TEST_TMP/c-key.json" "$TEST_TMP/client-644.key" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d["ClientTlsKeyFile"] = sys.argv[3]; json.dump(d, open(sys.argv[2], "w"))
PY
refused "$TUNNELC" "$TEST_TMP/c-key.json" "client-644\.key: permissions 0644 are too open" "run: chmod 600"

# 6. What stays accepted: keys 0600 and 0640 (group-readable for the daemon's group, as the Debian package and the
# Ansible roles install them), certificates of any mode, and tunneld pki's own output.
[ "$(stat -c %a "$PKI/server.key")" = 600 ] || fail "tunneld pki wrote server.key with mode $(stat -c %a "$PKI/server.key")"
cp "$PKI/server.key" "$TEST_TMP/server-640.key"; chmod 640 "$TEST_TMP/server-640.key"; chmod 644 "$PKI/server.crt"
variant "$TEST_TMP/d-640.json" "d['ServerTlsKeyFile'] = '$TEST_TMP/server-640.key'"
"$TUNNELD" --config "$TEST_TMP/d-640.json" --check-config --init-state --service-user "$(id -un)" >"$TEST_TMP/out" 2>&1 || fail "0640 key refused: $(cat "$TEST_TMP/out")"
"$TUNNELC" --config "$TEST_TMP/tunnelc.json" --check-config --service-user "$(id -un)" >"$TEST_TMP/out" 2>&1 || fail "tunnelc refused a 0600 key: $(cat "$TEST_TMP/out")"
pass "FIFOs refused at once, StateFile link refused unquoted, corrupt state unquoted, loose key modes refused with chmod"
