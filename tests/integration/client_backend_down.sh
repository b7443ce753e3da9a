#!/usr/bin/env bash
# A backend that is down (allowed port, nothing listening; or a mapped name that does not resolve) gives the
# internet user a prompt close, not a hang; the link stays up and the backend works once it is started.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"
NET="python3 $(dirname "$0")/tools/client_net.py"

make_pki
start_tunneld
DOWN_PORT=$(free_port)
start_tunnelc home1 "[$DOWN_PORT]" '{"nowhere": "no-such-host.invalid:80"}'
wait_client_connected home1

P_DOWN=$(free_port); P_NOWHERE=$(free_port)
put_tunnels "[
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_DOWN, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $DOWN_PORT},
 {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P_NOWHERE, \"ClientIdentifier\": \"home1\", \"BackEndService\": \"nowhere\"}]"
wait_port "$P_DOWN"; wait_port "$P_NOWHERE"

for i in 1 2 3; do
  t0=$(now_ms)
  if curl -sS --max-time 10 "http://127.0.0.1:$P_DOWN/" >"$TEST_TMP/curl.out" 2>"$TEST_TMP/curl.err"; then
    fail "curl to a down backend succeeded: $(cat "$TEST_TMP/curl.out")"
  fi
  ms=$(( $(now_ms) - t0 ))
  echo "backend down, try $i: curl failed after $ms ms ($(head -c 120 "$TEST_TMP/curl.err"))"
  grep -q "timed out" "$TEST_TMP/curl.err" && fail "curl hung until its own timeout"
  # A refused dial is answered at once; what this guards against is waiting for a timeout (DialTimeoutMs, 5 s by
  # default, or curl's own 10 s), so the bound sits below those and well above a loaded machine's scheduling.
  [ "$ms" -lt 4500 ] || fail "curl to a down backend took $ms ms (want < 4500: no timeout involved)"
done
wait_log "$TEST_TMP/tunnelc-home1.log" "backend refused the connection"

out=$($NET connect-wait "$P_NOWHERE" 15)
case "$out" in
  closed\ *) echo "unresolvable service: user closed after ${out#closed } ms"
             [ "${out#closed }" -lt 10000 ] || fail "unresolvable service closed only after ${out#closed } ms";;
  *) fail "user of an unresolvable service: $out";;
esac
wait_log "$TEST_TMP/tunnelc-home1.log" "cannot resolve backend no-such-host.invalid"

# The link survived, and the same tunnel works as soon as the backend is up.
client_connected home1 || fail "link lost after backend failures"
spawn backend $NET record-listener "$DOWN_PORT" "$TEST_TMP/backend.conns" backend-up
wait_port "$DOWN_PORT"
got=$(curl -sS --max-time 10 "telnet://127.0.0.1:$P_DOWN" </dev/null) || true
[ "$got" = "backend-up" ] || fail "backend after start: got '$got'"
# Both programs must also shut down cleanly after all that.
stop_checked home1 tunneld
pass "down backend: prompt close (no timeout) for refused and unresolvable backends; works once started"
