#!/usr/bin/env bash
# tls_passthrough: nginx at home serves HTTPS with its own certificate (its own CA, made here with openssl, nothing
# to do with the tunnel's PKI). Through the tunnel's public port, curl --cacert that-CA verifies nginx's
# certificate for "localhost": the TLS session is end to end, the tunnel only carries its bytes and never holds
# the key. The certificate seen through the public port is byte for byte nginx's, the tunnel's CA does not verify
# it, and a 4 MiB body arrives intact over that TLS session.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

# ---- the home web server's own PKI ----
web_ca
web_cert web "DNS:localhost,IP:127.0.0.1"

make_pki
start_tunneld
WEB=$(free_port)
mkdir -p "$TEST_TMP/www" "$TEST_TMP/nginx/tmp"
echo "secret page served over end-to-end TLS" >"$TEST_TMP/www/index.html"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$TEST_TMP/www/big.bin"
cat >"$TEST_TMP/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $TEST_TMP/nginx/nginx.pid; error_log $TEST_TMP/nginx-error.log;
events { worker_connections 64; }
http {
  access_log $TEST_TMP/nginx-access.log;
  client_body_temp_path $TEST_TMP/nginx/tmp; proxy_temp_path $TEST_TMP/nginx/tmp; fastcgi_temp_path $TEST_TMP/nginx/tmp;
  uwsgi_temp_path $TEST_TMP/nginx/tmp; scgi_temp_path $TEST_TMP/nginx/tmp;
  server {
    listen 127.0.0.1:$WEB ssl;
    ssl_certificate $WEB_PKI/web.crt;
    ssl_certificate_key $WEB_PKI/web.key;
    root $TEST_TMP/www;
  }
}
CONF
spawn nginx nginx -e stderr -p "$TEST_TMP/nginx" -c "$TEST_TMP/nginx/nginx.conf"
wait_port "$WEB"

start_tunnelc home1 "[$WEB]"
wait_client_connected home1
PUBLIC=$(free_port)
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $WEB}]"
wait_port "$PUBLIC"

# The tunnel's own files never mention the web server's key or certificate.
grep -l "$WEB_PKI" "$TEST_TMP"/tunneld.json "$TEST_TMP"/tunnelc-home1.json && fail "a tunnel config refers to the web PKI"

CURL=(curl -sS --max-time 20 --resolve "localhost:$PUBLIC:127.0.0.1")
body=$("${CURL[@]}" --cacert "$WEB_PKI/ca.crt" "https://localhost:$PUBLIC/index.html") \
  || fail "curl --cacert web-ca https://localhost:$PUBLIC/ failed to verify nginx's certificate through the tunnel"
[ "$body" = "secret page served over end-to-end TLS" ] || fail "page through the tunnel: got '$body'"
echo "curl --cacert web-ca verified nginx's certificate for localhost through public port $PUBLIC"

# The tunnel's CA knows nothing of that certificate: verification with it must fail.
if "${CURL[@]}" --cacert "$PKI/ca.crt" "https://localhost:$PUBLIC/index.html" >/dev/null 2>&1; then
  fail "the tunnel's CA verified the home web server's certificate"
fi

# The certificate presented on the public port is exactly the one nginx holds.
seen=$(openssl s_client -connect "127.0.0.1:$PUBLIC" -servername localhost </dev/null 2>/dev/null \
  | openssl x509 -noout -fingerprint -sha256) || fail "no certificate through the public port"
want=$(openssl x509 -in "$WEB_PKI/web.crt" -noout -fingerprint -sha256)
[ "$seen" = "$want" ] || fail "certificate through the tunnel '$seen' is not nginx's '$want'"
echo "certificate through the public port: $seen (nginx's own)"

want_sum=$(sha256sum <"$TEST_TMP/www/big.bin" | cut -d' ' -f1)
t0=$(now_ms)
got_sum=$("${CURL[@]}" --cacert "$WEB_PKI/ca.crt" "https://localhost:$PUBLIC/big.bin" | sha256sum | cut -d' ' -f1)
t1=$(now_ms)
[ "$got_sum" = "$want_sum" ] || fail "4 MiB over end-to-end TLS: checksum mismatch"
echo "4 MiB over end-to-end TLS through the tunnel (ASan build) in $((t1 - t0)) ms"
stop_checked home1 tunneld
pass "end-to-end TLS: nginx's certificate verified through the tunnel, which holds no key"
