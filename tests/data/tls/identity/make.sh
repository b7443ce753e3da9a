#!/bin/bash
# make.sh: regenerates the certificates whose subjects test the identity rule (tn_tls_identity_check_der).
# Only the subject matters: the signatures are not checked, so two are patched after signing to reach bytes
# openssl will not write itself (invalid UTF-8, a control byte). Run from this directory.
set -euo pipefail
key=$(mktemp); trap 'rm -f "$key" sm.cnf' EXIT
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key" 2>/dev/null
printf '[req]\ndistinguished_name=dn\nstring_mask=default\n[dn]\n' >sm.cnf
mk() { local out=$1; shift; openssl req -x509 -new -key "$key" -days 36500 -outform DER -out "$out" "$@"; }
mk ok.der -subj "/CN=home1/O=acme"
mk utf8-ok.der -utf8 -subj "/CN=été"
mk none.der -subj "/O=acme/OU=no name"
mk two.der -subj "/CN=home1/CN=home2"
mk multi-rdn.der -multivalue-rdn -subj "/CN=home1+CN=home2"
mk long.der -utf8 -subj "/CN=$(printf 'é%.0s' $(seq 33))"          # 33 characters, 66 bytes
mk bmp.der -config sm.cnf -utf8 -subj "/CN=€uro"                     # a BMPString
mk fingerprint.der -subj "/CN=$(printf 'ab%.0s' $(seq 32))"
# Invisible and bidi characters: U+202E right-to-left override, U+200B zero width space, U+2066/U+2069 isolate
mk bidi.der -utf8 -subj "/CN=home1$(printf '\u202e')gnp.exe"
mk zwsp.der -utf8 -subj "/CN=home$(printf '\u200b')1"
mk isolate.der -utf8 -subj "/CN=$(printf '\u2066')home1$(printf '\u2069')"
# hXme with X patched: 0xff (invalid UTF-8), 0x01 (a control byte)
mk bad-utf8.der -subj "/CN=hXme"
mk control.der -subj "/CN=hXme"
python3 - <<'PY'
for name, byte in (("bad-utf8.der", b"\xff"), ("control.der", b"\x01")):
    d = open(name, "rb").read()
    assert d.count(b"hXme") == 2   # subject and issuer
    open(name, "wb").write(d.replace(b"hXme", b"h" + byte + b"me"))
PY
