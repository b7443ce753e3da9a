#!/usr/bin/env bash
# proxy_nginx: PROXY v1 and v2 headers from tn_proxy_encode are understood by real receivers.
# nginx (listen ... proxy_protocol, on 127.0.0.1 and [::1]) must log exactly the source and
# destination we encoded, for IPv4 and IPv6 sources; haproxy (bind ... accept-proxy) must report
# the same addresses through %[src]/%[dst]. UNKNOWN (v1) and LOCAL (v2) must be accepted too.
source "$(dirname "$0")/lib.sh"

PROXY_SEND=${TUNNEL_TOOLS:-${TUNNEL_BUILD_DIR:-build}/tools}/proxy_send
[ -x "$PROXY_SEND" ] || fail "proxy_send not built ($PROXY_SEND)"
command -v nginx >/dev/null || fail "nginx not installed (tests/install-deps.sh)"
command -v haproxy >/dev/null || fail "haproxy not installed (tests/install-deps.sh)"

free_port6() { free_port; }  # lib.sh's free_port checks ::1 too

# ---- nginx ----
NGINX_PORT4=$(free_port)
NGINX_PORT6=$(free_port6)
NGINX_DIR=$TEST_TMP/nginx
mkdir -p "$NGINX_DIR/tmp"
cat >"$NGINX_DIR/nginx.conf" <<CONF
daemon off;
master_process off;
pid $NGINX_DIR/nginx.pid;
error_log $TEST_TMP/nginx-error.log info;
events { worker_connections 64; }
http {
  client_body_temp_path $NGINX_DIR/tmp/body;
  proxy_temp_path $NGINX_DIR/tmp/proxy;
  fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
  uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
  scgi_temp_path $NGINX_DIR/tmp/scgi;
  log_format pp '\$proxy_protocol_addr:\$proxy_protocol_port \$request \$proxy_protocol_server_addr:\$proxy_protocol_server_port';
  access_log $TEST_TMP/nginx-access.log pp;
  server {
    listen 127.0.0.1:$NGINX_PORT4 proxy_protocol;
    listen [::1]:$NGINX_PORT6 proxy_protocol;
    location / { return 200 "nginx ok\n"; }
  }
}
CONF
spawn nginx nginx -e stderr -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf"
wait_port "$NGINX_PORT4" 127.0.0.1
wait_port "$NGINX_PORT6" ::1

# ---- haproxy ----
HAPROXY_PORT4=$(free_port)
HAPROXY_PORT6=$(free_port6)
{ haproxy_http_defaults; cat <<CONF; } >"$TEST_TMP/haproxy.cfg"
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT4 accept-proxy
  bind [::1]:$HAPROXY_PORT6 accept-proxy
  http-request return status 200 content-type text/plain lf-string "src=%[src]:%[src_port] dst=%[dst]:%[dst_port]"
CONF
spawn haproxy haproxy -f "$TEST_TMP/haproxy.cfg" -db
wait_port "$HAPROXY_PORT4" 127.0.0.1
wait_port "$HAPROXY_PORT6" ::1

# send NAME HOST PORT VERSION SRC SPORT DST DPORT PATH: runs proxy_send, keeps the response in $TEST_TMP/NAME.out
send() {
  local name=$1; shift
  "$PROXY_SEND" "$@" >"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.err" \
    || fail "$name: proxy_send failed: $(cat "$TEST_TMP/$name.err")"
  head -n1 "$TEST_TMP/$name.out" | grep -q ' 200 ' || fail "$name: no 200 response: $(head -c 300 "$TEST_TMP/$name.out")"
}

log_has_line() { grep -qFx -- "$2" "$1"; }

# One case per listener family x header version x source family.
cases=(
  "4 1 203.0.113.7 41234 192.0.2.1 443"
  "4 2 203.0.113.7 41234 192.0.2.1 443"
  "4 1 2001:db8::5 51000 2001:db8::1 8443"
  "4 2 2001:db8::5 51000 2001:db8::1 8443"
  "6 1 198.51.100.20 1 192.0.2.1 65535"
  "6 2 198.51.100.20 1 192.0.2.1 65535"
  "6 1 2001:db8:ffff::abcd 65535 2001:db8::1 80"
  "6 2 2001:db8:ffff::abcd 65535 2001:db8::1 80"
)
n=0
for c in "${cases[@]}"; do
  read -r lfam ver src sport dst dport <<<"$c"
  n=$((n + 1))
  if [ "$lfam" = 4 ]; then nhost=127.0.0.1 nport=$NGINX_PORT4 hport=$HAPROXY_PORT4
  else nhost=::1 nport=$NGINX_PORT6 hport=$HAPROXY_PORT6; fi
  path="/case$n-lo$lfam-v$ver"

  send "nginx$n" "$nhost" "$nport" "$ver" "$src" "$sport" "$dst" "$dport" "$path"
  want="$src:$sport GET $path HTTP/1.0 $dst:$dport"
  wait_until 10 log_has_line "$TEST_TMP/nginx-access.log" "$want" \
    || fail "nginx case $n (v$ver, listener IPv$lfam): no access log line '$want'"

  send "haproxy$n" "$nhost" "$hport" "$ver" "$src" "$sport" "$dst" "$dport" "$path"
  got=$(tail -n1 "$TEST_TMP/haproxy$n.out")
  [ "$got" = "src=$src:$sport dst=$dst:$dport" ] \
    || fail "haproxy case $n (v$ver, listener IPv$lfam): got '$got', want 'src=$src:$sport dst=$dst:$dport'"
done
pass "nginx and haproxy report the encoded source and destination in $n v1/v2 IPv4/IPv6 cases"

# UNKNOWN (v1) and LOCAL (v2) carry no address: receivers fall back to the real connection.
for ver in 1 2; do
  send "nginx-local$ver" 127.0.0.1 "$NGINX_PORT4" "$ver" - 0 - 0 "/local-v$ver"
  wait_until 10 grep -qF "GET /local-v$ver HTTP/1.0" "$TEST_TMP/nginx-access.log" \
    || fail "nginx: no access log line for the v$ver header without addresses"
  send "haproxy-local$ver" 127.0.0.1 "$HAPROXY_PORT4" "$ver" - 0 - 0 "/local-v$ver"
  got=$(tail -n1 "$TEST_TMP/haproxy-local$ver.out")
  case "$got" in
    "src=127.0.0.1:"*" dst=127.0.0.1:$HAPROXY_PORT4") ;;
    *) fail "haproxy: v$ver header without addresses: got '$got', want the real connection's endpoints" ;;
  esac
done
pass "nginx and haproxy accept PROXY UNKNOWN and v2 LOCAL"
