#!/usr/bin/env bash
# proxy_backends: with HaProxyProxyProtocol, the backend learns the internet user's real address and port and the
# public listener's address and port, through tunneld and tunnelc, for PROXY v1 and v2 and for IPv4 (127.0.0.1)
# and IPv6 (::1) users. Receivers: nginx (listen ... proxy_protocol, logging $proxy_protocol_addr:port and
# $proxy_protocol_server_addr:port) and haproxy (bind ... accept-proxy, answering %[src]:%[src_port]). Each request
# leaves from a known source port (curl --local-port), so the logged port must be exactly that one.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

command -v nginx >/dev/null || fail "nginx not installed (tests/install-deps.sh)"
command -v haproxy >/dev/null || fail "haproxy not installed (tests/install-deps.sh)"

make_pki
start_tunneld

# ---- receivers, on the home side's loopback ----
NGINX_PORT=$(free_port)
NGINX_DIR=$TEST_TMP/nginx
mkdir -p "$NGINX_DIR/tmp"
cat >"$NGINX_DIR/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $NGINX_DIR/nginx.pid; error_log $TEST_TMP/nginx-error.log info;
events { worker_connections 64; }
http {
  client_body_temp_path $NGINX_DIR/tmp; proxy_temp_path $NGINX_DIR/tmp; fastcgi_temp_path $NGINX_DIR/tmp;
  uwsgi_temp_path $NGINX_DIR/tmp; scgi_temp_path $NGINX_DIR/tmp;
  log_format pp '\$proxy_protocol_addr:\$proxy_protocol_port \$request \$proxy_protocol_server_addr:\$proxy_protocol_server_port';
  access_log $TEST_TMP/nginx-access.log pp;
  server {
    listen 127.0.0.1:$NGINX_PORT proxy_protocol;
    location / { return 200 "nginx ok\n"; }
  }
}
CONF
spawn nginx nginx -e stderr -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf"
wait_port "$NGINX_PORT"

HAPROXY_PORT=$(free_port)
{ haproxy_http_defaults; cat <<CONF; } >"$TEST_TMP/haproxy.cfg"
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT accept-proxy
  http-request return status 200 content-type text/plain lf-string "src=%[src]:%[src_port] dst=%[dst]:%[dst_port]"
CONF
spawn haproxy haproxy -f "$TEST_TMP/haproxy.cfg" -db
wait_port "$HAPROXY_PORT"

start_tunnelc home1 "[$NGINX_PORT, $HAPROXY_PORT]"
wait_client_connected home1

# ---- one tunnel per case: receiver x PROXY version x listener address ----
# Each case: NAME RECEIVER VERSION LISTEN_ADDRESS CLIENT_ADDRESS (the user connects from and to CLIENT_ADDRESS).
cases=(
  "ng-v1-4 nginx 1 127.0.0.1 127.0.0.1"
  "ng-v2-4 nginx 2 127.0.0.1 127.0.0.1"
  "ng-v1-6 nginx 1 ::1 ::1"
  "ng-v2-6 nginx 2 ::1 ::1"
  "ng-v1-any4 nginx 1 :: 127.0.0.1"
  "ng-v2-any6 nginx 2 :: ::1"
  "ha-v1-4 haproxy 1 127.0.0.1 127.0.0.1"
  "ha-v2-4 haproxy 2 127.0.0.1 127.0.0.1"
  "ha-v1-6 haproxy 1 ::1 ::1"
  "ha-v2-6 haproxy 2 ::1 ::1"
)
declare -A PUB
table="" used=" "
for c in "${cases[@]}"; do
  read -r name recv ver laddr _ <<<"$c"
  while :; do
    case "$laddr" in ::1) p=$(free_port6) ;; *) p=$(free_port) ;; esac
    case "$used" in *" $p "*) ;; *) break ;; esac
  done
  used+="$p "
  PUB[$name]=$p
  if [ "$recv" = nginx ]; then backend=$NGINX_PORT; else backend=$HAPROXY_PORT; fi
  table+="${table:+,}{\"ListenAddress\": \"$laddr\", \"ListenPort\": $p, \"ClientIdentifier\": \"home1\",
           \"BackEndPort\": $backend, \"HaProxyProxyProtocol\": true, \"ProxyProtocolVersion\": $ver}"
done
put_tunnels "[$table]"

# bracket HOST: the URL / PROXY-text form of an address.
bracket() { case "$1" in *:*) echo "[$1]" ;; *) echo "$1" ;; esac; }
n=0
for c in "${cases[@]}"; do
  read -r name recv ver laddr caddr <<<"$c"
  port=${PUB[$name]}
  wait_port "$port" "$caddr"
  # A source port free right now on the client's address; curl binds it, so the receiver must report exactly it.
  case "$caddr" in ::1) sport=$(free_port6) ;; *) sport=$(free_port) ;; esac
  out=$(curl -sS -g --max-time 10 --local-port "$sport" "http://$(bracket "$caddr"):$port/$name" 2>&1) \
    || fail "$name: curl through the tunnel failed: $out"
  if [ "$recv" = nginx ]; then
    [ "$out" = "nginx ok" ] || fail "$name: nginx answered '$out'"
    want="$caddr:$sport GET /$name HTTP/1.1 $caddr:$port"
    wait_until 10 grep -qFx -- "$want" "$TEST_TMP/nginx-access.log" \
      || fail "$name: nginx did not log '$want'; its log: $(grep -F "/$name " "$TEST_TMP/nginx-access.log")"
    echo "$name: PROXY v$ver, user $(bracket "$caddr"):$sport -> listener $laddr port $port: nginx logged '$want'"
  else
    want="src=$caddr:$sport dst=$caddr:$port"
    [ "$out" = "$want" ] || fail "$name: haproxy reported '$out', want '$want'"
    echo "$name: PROXY v$ver, user $(bracket "$caddr"):$sport -> listener $laddr port $port: haproxy saw '$out'"
  fi
  n=$((n + 1))
done

# A tunnel without the switch sends no header: a PROXY-expecting receiver must refuse the bare request, which
# shows the header above came from the tunnel and nowhere else.
PLAIN=$(free_port)
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PLAIN, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $NGINX_PORT}]"
wait_port "$PLAIN"
if out=$(curl -sS --max-time 10 "http://127.0.0.1:$PLAIN/plain" 2>&1) && [ "$out" = "nginx ok" ]; then
  fail "nginx served a request without a PROXY header; the cases above prove nothing"
fi
stop_checked home1 tunneld
pass "$n PROXY cases (v1/v2, IPv4/IPv6 users, specific and dual-stack listeners) logged the real user address and port"
