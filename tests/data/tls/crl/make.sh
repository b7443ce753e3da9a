#!/bin/bash
# make.sh: regenerates the CRL fixtures of test_tls.c (test_crl_revokes_at_handshake): a CA, a server, two clients
# (home-ok, home-revoked) and a CRL of that CA listing home-revoked, all valid for 100 years. The CA key is thrown
# away: nothing needs to sign more. Run from this directory with TUNNELD pointing at a built tunneld.
set -euo pipefail
: "${TUNNELD:?TUNNELD must point at a tunneld binary}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$TUNNELD" pki init "$work" --days 36500 >/dev/null
"$TUNNELD" pki issue "$work" --name server --server --dns localhost --days 36500 >/dev/null
"$TUNNELD" pki issue "$work" --name home-ok --days 36500 >/dev/null
"$TUNNELD" pki issue "$work" --name home-revoked --days 36500 >/dev/null
touch "$work/index.txt"
cat >"$work/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $work/index.txt
crlnumber = $work/crlnumber
default_md = sha256
default_crl_days = 36500
CNF
echo 01 >"$work/crlnumber"
openssl ca -config "$work/ca.cnf" -cert "$work/ca.crt" -keyfile "$work/ca.key" -revoke "$work/home-revoked.crt" 2>/dev/null
openssl ca -config "$work/ca.cnf" -cert "$work/ca.crt" -keyfile "$work/ca.key" -gencrl -out ca.crl 2>/dev/null
for f in ca.crt server.crt server.key home-ok.crt home-ok.key home-revoked.crt home-revoked.key; do cp "$work/$f" .; done
