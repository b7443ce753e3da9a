#!/usr/bin/env bash
# --check-config looks past the syntax (docs/CONFIG.md, "Checking a configuration"): for both programs, an own
# certificate that expired or is not valid yet fails the check (exit 1) naming the file and the dates; an expired CA
# in the CA file is a warning (exit 0); run as root, a key the service user (--service-user) cannot read fails
# the check, judged by a child process that becomes that user and opens the file; when the default user "tunnel"
# does not exist that is said, not hidden.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

[ "$(id -u)" = 0 ] || fail "this test checks what root sees and must run as root"
make_pki
# Directories the service user can traverse, as /etc/tunnel is.
chmod 711 "$TEST_TMP"
ETC="$TEST_TMP/etc"; mkdir -m 755 "$ETC"
cp "$PKI/ca.crt" "$PKI/home1.crt" "$PKI/home1.key" "$PKI/server.crt" "$PKI/server.key" "$ETC/"
chmod 600 "$ETC"/*.key; chmod 644 "$ETC"/*.crt

# ---- certificates outside their dates, made with openssl ca (it can backdate) ----
CA_DIR="$TEST_TMP/openssl-ca"; mkdir -p "$CA_DIR"; : >"$CA_DIR/index.txt"; echo 1000 >"$CA_DIR/serial"
cat >"$CA_DIR/ca.cnf" <<CNF
[ca]
default_ca = c
[c]
dir = $CA_DIR
database = $CA_DIR/index.txt
new_certs_dir = $CA_DIR
serial = $CA_DIR/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
[client]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = clientAuth
[server]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = keyCertSign, cRLSign
CNF
sign() {  # sign KEY CN EXT START END OUT [-selfsign]
  openssl req -new -key "$1" -subj "/CN=$2" -out "$CA_DIR/req.csr" 2>/dev/null
  openssl ca -batch -notext -config "$CA_DIR/ca.cnf" -cert "$PKI/ca.crt" -keyfile "${7:-$PKI/ca.key}" \
    -in "$CA_DIR/req.csr" -out "$6" -extensions "$3" -startdate "$4" -enddate "$5" ${8:-} >/dev/null 2>&1 ||
    fail "openssl ca could not make $6"
}
sign "$ETC/home1.key" home1 client 20200101000000Z 20210101000000Z "$ETC/home1-expired.crt"
sign "$ETC/home1.key" home1 client 20990101000000Z 21000101000000Z "$ETC/home1-future.crt"
sign "$ETC/server.key" server server 20200101000000Z 20210101000000Z "$ETC/server-expired.crt"
openssl ecparam -name prime256v1 -genkey -noout -out "$CA_DIR/old-ca.key" 2>/dev/null
sign "$CA_DIR/old-ca.key" "old CA" ca_ext 20150101000000Z 20160101000000Z "$CA_DIR/old-ca.crt" "$CA_DIR/old-ca.key" -selfsign
cat "$ETC/ca.crt" "$CA_DIR/old-ca.crt" >"$ETC/bundle.crt"; chmod 644 "$ETC"/*.crt

client_config() {  # client_config CERT CA
  cat >"$ETC/tunnelc.json" <<JSON
{"ServerHost": "127.0.0.1", "ServerTunnelControlPort": 9056, "CaCertificateFile": "$2",
 "ClientTlsCertificateFile": "$1", "ClientTlsKeyFile": "$ETC/home1.key", "AllowedBackEndPorts": [8080]}
JSON
}
server_config() {  # server_config CERT
  cat >"$ETC/tunneld.json" <<JSON
{"TunnelControlPort": 9056, "ManagementPort": 9057, "ListenAddress": "127.0.0.1", "CaCertificateFile": "$ETC/ca.crt",
 "ServerTlsCertificateFile": "$1", "ServerTlsKeyFile": "$ETC/server.key", "AdminIdentities": ["admin"],
 "StateFile": "$TEST_TMP/state/tunnels.json"}
JSON
  mkdir -p "$TEST_TMP/state" && echo '[]' >"$TEST_TMP/state/tunnels.json"  # a missing state file is a problem too
}
check() {  # check PROGRAM [ARGS...]: output in $OUT, exit status in $RC
  local prog=$1; shift
  RC=0; OUT=$("$prog" --check-config "$@" 2>&1) || RC=$?
  printf '  %s\n' "$OUT"
}
want() {  # want STATUS TEXT WHAT
  [ "$RC" = "$1" ] || fail "$3: exit status $RC, want $1: $OUT"
  grep -qF -- "$2" <<<"$OUT" || fail "$3: output lacks '$2': $OUT"
}

client_config "$ETC/home1-expired.crt" "$ETC/ca.crt"
check "$TUNNELC" --config "$ETC/tunnelc.json" --service-user nobody
want 1 "$ETC/home1-expired.crt: \"ClientTlsCertificateFile\": certificate \"CN=home1\" expired: valid from 2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z" "tunnelc, expired own certificate"
client_config "$ETC/home1-future.crt" "$ETC/ca.crt"
check "$TUNNELC" --config "$ETC/tunnelc.json" --service-user nobody
want 1 "certificate \"CN=home1\" is not valid yet: valid from 2099-01-01T00:00:00Z to 2100-01-01T00:00:00Z" "tunnelc, certificate not valid yet"
server_config "$ETC/server-expired.crt"
check "$TUNNELD" --config "$ETC/tunneld.json" --service-user nobody
want 1 "$ETC/server-expired.crt: \"ServerTlsCertificateFile\": certificate \"CN=server\" expired" "tunneld, expired own certificate"

# An expired CA beside the current one: a warning, and the check passes (the key is the service user's).
chown nobody "$ETC/home1.key" "$ETC/server.key"
client_config "$ETC/home1.crt" "$ETC/bundle.crt"
check "$TUNNELC" --config "$ETC/tunnelc.json" --service-user nobody
want 0 "$ETC/bundle.crt: \"CaCertificateFile\": warning: certificate \"CN=old CA\" expired: valid from 2015-01-01T00:00:00Z to 2016-01-01T00:00:00Z" "tunnelc, expired CA in the bundle"
want 0 "configuration OK" "tunnelc, expired CA in the bundle"

# ---- key readability for the service user ----
chown root:root "$ETC/home1.key" "$ETC/server.key"
check "$TUNNELC" --config "$ETC/tunnelc.json" --service-user nobody
want 1 "$ETC/home1.key: \"ClientTlsKeyFile\": user \"nobody\" (the service user) cannot read it: Permission denied" "tunnelc, key root:root 0600"
server_config "$ETC/server.crt"
check "$TUNNELD" --config "$ETC/tunneld.json" --service-user nobody
want 1 "$ETC/server.key: \"ServerTlsKeyFile\": user \"nobody\" (the service user) cannot read it: Permission denied" "tunneld, key root:root 0600"
# 0640 root:<the user's group>, as OPERATIONS.md installs keys: readable through the group.
chgrp "$(id -gn nobody)" "$ETC/home1.key" "$ETC/server.key"; chmod 640 "$ETC/home1.key" "$ETC/server.key"
check "$TUNNELC" --config "$ETC/tunnelc.json" --service-user nobody
want 0 "configuration OK" "tunnelc, key 0640 root:nobody's group"
check "$TUNNELD" --config "$ETC/tunneld.json" --service-user nobody
want 0 "configuration OK" "tunneld, key 0640 root:nobody's group"
# A directory on the way the user cannot enter counts too.
chmod 700 "$ETC"
check "$TUNNELC" --config "$ETC/tunnelc.json" --service-user nobody
want 1 "\"ClientTlsKeyFile\": user \"nobody\" (the service user) cannot read it: Permission denied" "tunnelc, directory 0700"
chmod 755 "$ETC"
# The default user "tunnel": said when it does not exist; a named user that does not exist is an error.
if getent passwd tunnel >/dev/null; then
  echo "user tunnel exists here: the default-user note is not checked"
else
  check "$TUNNELC" --config "$ETC/tunnelc.json"
  want 0 "user \"tunnel\" does not exist: readability not checked" "tunnelc, default user missing"
fi
check "$TUNNELC" --config "$ETC/tunnelc.json" --service-user no-such-user-xyz
want 1 "user \"no-such-user-xyz\" does not exist: cannot check that it can read the files" "tunnelc, unknown --service-user"

# ---- a copy checked before it is installed (Ansible's validate: a private temporary copy, 0700 directory) ----
PRIV="$TEST_TMP/ansible-tmp"; mkdir -m 700 "$PRIV"
cp "$ETC/tunnelc.json" "$ETC/tunneld.json" "$PRIV/"
check "$TUNNELC" --config "$PRIV/tunnelc.json" --service-user nobody
want 1 "$PRIV/tunnelc.json: \"--config\": user \"nobody\" (the service user) cannot read it: Permission denied" "tunnelc, the private copy judged as the service's file"
check "$TUNNELC" --config "$PRIV/tunnelc.json" --service-user nobody --installed-as "$ETC/tunnelc.json"
want 0 "configuration OK" "tunnelc, private copy --installed-as a directory the user can enter"
check "$TUNNELD" --config "$PRIV/tunneld.json" --service-user nobody --installed-as "$ETC/tunneld.json"
want 0 "configuration OK" "tunneld, private copy --installed-as a directory the user can enter"
# The certificates are still judged as the service user reads them.
chmod 600 "$ETC/home1.key"
check "$TUNNELC" --config "$PRIV/tunnelc.json" --service-user nobody --installed-as "$ETC/tunnelc.json"
want 1 "$ETC/home1.key: \"ClientTlsKeyFile\": user \"nobody\" (the service user) cannot read it: Permission denied" "tunnelc --installed-as, unreadable key"
chmod 640 "$ETC/home1.key"
# The installed path's directory must let the user in.
mkdir -m 700 "$TEST_TMP/closed"
check "$TUNNELD" --config "$PRIV/tunneld.json" --service-user nobody --installed-as "$TEST_TMP/closed/tunneld.json"
want 1 "$TEST_TMP/closed/tunneld.json: \"--installed-as\": user \"nobody\" (the service user) cannot enter $TEST_TMP/closed: Permission denied" "tunneld --installed-as a directory the user cannot enter"
RC=0; OUT=$("$TUNNELD" --config "$PRIV/tunneld.json" --installed-as "$ETC/tunneld.json" 2>&1) || RC=$?
[ "$RC" = 2 ] && grep -qF -- "--installed-as goes with --check-config" <<<"$OUT" || fail "--installed-as without --check-config: exit $RC: $OUT"
pass "--check-config: own certificate out of its dates fails (both programs), old CA warns, unreadable key for the service user fails; --installed-as judges the installed path's directory instead of a private copy, and still the certificates"
