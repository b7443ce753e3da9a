#!/usr/bin/env bash
# tunnelc dials only what its config allows: a BackEndPort outside AllowedBackEndPorts and a BackEndService
# outside ServiceToLocalAddrMap are never dialled (a listener there records no connection), the internet user is
# closed promptly and tunnelc logs the refusal with its reason; services mapped to a DNS name and to an IP work.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

make_pki
start_tunneld

# Listeners that record every connection they get.
FORBIDDEN_PORT=$(free_port); SVC_NAME_PORT=$(free_port); SVC_IP_PORT=$(free_port); ALLOWED_PORT=$(free_port)
spawn forbidden $NET record-listener "$FORBIDDEN_PORT" "$TEST_TMP/forbidden.conns" forbidden
spawn svcname $NET record-listener "$SVC_NAME_PORT" "$TEST_TMP/svcname.conns" by-name
spawn svcip $NET record-listener "$SVC_IP_PORT" "$TEST_TMP/svcip.conns" by-ip
spawn allowed $NET record-listener "$ALLOWED_PORT" "$TEST_TMP/allowed.conns" allowed-port
for p in "$FORBIDDEN_PORT" "$SVC_NAME_PORT" "$SVC_IP_PORT" "$ALLOWED_PORT"; do wait_port "$p"; done
# wait_port itself connected once to each; start counting from here.
for f in forbidden svcname svcip allowed; do
  wait_until 10 test -s "$TEST_TMP/$f.conns" || fail "recorder $f did not log the probe"
  : >"$TEST_TMP/$f.conns"
done

# The forbidden port is served by a mapped service name too, so only the allow-list stands between them.
start_tunnelc home1 "[$ALLOWED_PORT]" \
  "{\"byname\": \"localhost:$SVC_NAME_PORT\", \"byip\": \"127.0.0.1:$SVC_IP_PORT\"}"
wait_client_connected home1

P_FORBIDDEN=$(free_port); P_UNMAPPED=$(free_port); P_BYNAME=$(free_port); P_BYIP=$(free_port); P_ALLOWED=$(free_port)
put_tunnels "[
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_FORBIDDEN, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $FORBIDDEN_PORT},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_UNMAPPED, \"ClientIdentifier\": \"home1\", \"BackEndService\": \"db\"},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_BYNAME, \"ClientIdentifier\": \"home1\", \"BackEndService\": \"byname\"},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_BYIP, \"ClientIdentifier\": \"home1\", \"BackEndService\": \"byip\"},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_ALLOWED, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $ALLOWED_PORT}]"
for p in "$P_FORBIDDEN" "$P_UNMAPPED" "$P_BYNAME" "$P_BYIP" "$P_ALLOWED"; do wait_port "$p"; done

# Allowed backends answer with their token.
for pair in "$P_BYNAME:by-name" "$P_BYIP:by-ip" "$P_ALLOWED:allowed-port"; do
  got=$(curl -sS --max-time 10 "telnet://127.0.0.1:${pair%%:*}" </dev/null) || true
  [ "$got" = "${pair#*:}" ] || fail "port ${pair%%:*}: expected '${pair#*:}', got '$got'"
done
echo "mapped service by DNS name, mapped service by IP, allowed port: all answered"

# Refused backends: the user is closed promptly, with nothing from the backend.
for p in "$P_FORBIDDEN" "$P_UNMAPPED"; do
  out=$($NET connect-wait "$p" 10)
  case "$out" in
    closed\ *) ms=${out#closed }; echo "refused backend via public port $p: user closed after $ms ms"
               # Without a timeout involved (DialTimeoutMs is 5 s); the margin is for a busy machine.
               [ "$ms" -lt 4500 ] || fail "user on $p closed only after $ms ms";;
    *) fail "user on public port $p: $out (expected a prompt close)";;
  esac
done
wait_log "$TEST_TMP/tunnelc-home1.log" "port $FORBIDDEN_PORT is not in AllowedBackEndPorts"
wait_log "$TEST_TMP/tunnelc-home1.log" 'service "db" is not in ServiceToLocalAddrMap'
grep -E "refused stream .*(AllowedBackEndPorts|ServiceToLocalAddrMap)" "$TEST_TMP/tunnelc-home1.log"

# A few more tries, then prove the forbidden listener was never dialled.
for _ in 1 2 3; do $NET connect-wait "$P_FORBIDDEN" 10 >/dev/null; done
[ ! -s "$TEST_TMP/forbidden.conns" ] || fail "forbidden backend was dialled: $(cat "$TEST_TMP/forbidden.conns")"
[ -s "$TEST_TMP/svcname.conns" ] && [ -s "$TEST_TMP/svcip.conns" ] || fail "mapped services were not dialled"
client_connected home1 || fail "refusals must not cost the link"
# Both programs must also shut down cleanly after all that.
stop_checked home1 tunneld
# Visitors decide how often a stream is refused, so the lines are rate-limited per port: each refusal is either
# its own line or in the count of one written at the latest at exit.
refusals=$(python3 - "$TEST_TMP/tunnelc-home1.log" <<'PY'
import re, sys
n = 0
for line in open(sys.argv[1], errors="replace"):
    if "is not in AllowedBackEndPorts" not in line:
        continue
    m = re.search(r"client: refused streams \(\d+\): (\d+) more in the last", line)
    n += int(m.group(1)) if m else 1
print(n)
PY
)
[ "$refusals" -ge 4 ] || fail "not every refused stream was logged or counted: $refusals"
pass "forbidden port and unmapped service never dialled, user closed promptly, refusals logged; mapped services work"
