#!/usr/bin/env bash
# sni_no_guess: a port shared by hostname never guesses. On one port, a.example.test goes to site A and "*" to site
# S. A request for a.example.test with a 20 KB Cookie reaches A (the bound is 64 KiB of head); one with a head
# beyond the bound is refused with 431; one sent a byte per segment reaches A or is refused; a malformed head, an
# HTTP/1.1 request without Host, bytes that are neither TLS nor HTTP, and a request cut short by the visitor are
# refused (400 or closed); a garbled or oversized ClientHello gets a TLS alert. None of them reaches any backend,
# which the backends' own logs of every connection prove, and each is counted in
# tunneld_tunnel_hostname_unreadable_total. "*" still takes what was read and matched nothing else: an unknown
# Host, an HTTP/1.0 request without Host, a ClientHello without server name.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

TOOLS="$(dirname "$0")/tools"
VISIT="python3 $TOOLS/visitor.py"

make_pki
start_tunneld
A_PORT=$(free_port); S_PORT=$(free_port); P=$(free_port)
spawn site-a python3 "$TOOLS/site_backend.py" "$A_PORT" site-a
spawn site-s python3 "$TOOLS/site_backend.py" "$S_PORT" site-star
wait_port "$A_PORT"; wait_port "$S_PORT"
start_tunnelc home1 "[$A_PORT, $S_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $A_PORT, \"ListenHostnameGlob\": \"a.example.test\"},
  {\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $P, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $S_PORT, \"ListenHostnameGlob\": \"*\"}]"
wait_port "$P"

reached() {  # reached SITE_LOG PATTERN: true when the backend logged a connection matching PATTERN
  grep -qE "$2" "$TEST_TMP/$1.log"
}
# sync: one request to each site, waited for in its log. A refused visitor never gets a stream, so whatever it
# would have carried is in a backend's log before a request sent after it is.
SYNC=0
sync_sites() {
  SYNC=$((SYNC + 1))
  $VISIT "$P" http a.example.test "/sync-$SYNC" 0 >/dev/null
  wait_log "$TEST_TMP/site-a.log" "first=GET /sync-$SYNC "
  $VISIT "$P" http nothing.test "/sync-$SYNC" 0 >/dev/null
  wait_log "$TEST_TMP/site-s.log" "first=GET /sync-$SYNC "
}
never_forwarded() {  # never_forwarded PATTERN WHAT
  sync_sites
  ! reached site-a "$1" || fail "$2 reached site A: $(grep -E "$1" "$TEST_TMP/site-a.log")"
  ! reached site-s "$1" || fail "$2 reached the \"*\" site: $(grep -E "$1" "$TEST_TMP/site-s.log")"
}

# (a) A 20 KB Cookie: within the bound, so the named site gets it, cookie included.
out=$($VISIT "$P" http a.example.test /big-cookie 20000)
case $out in *"site-a"*) ;; *) fail "a.example.test with a 20 KB Cookie did not reach site A: $out" ;; esac
reached site-a "bytes=2[0-9]{4} first=GET /big-cookie " || fail "site A did not get the whole 20 KB head"
! reached site-s "/big-cookie" || fail "the 20 KB Cookie request reached the \"*\" site"
echo "(a) 20 KB Cookie for a.example.test: site A"

# (b) A head beyond the bound: 431, nothing forwarded.
out=$($VISIT "$P" http a.example.test /huge-cookie 70000)
case $out in *"431 Request Header Fields Too Large"*) ;; *) fail "a 70 KB head was not refused with 431: $out" ;; esac
never_forwarded "/huge-cookie" "the 70 KB head"
# The bound holds however the bytes arrive: 60,000 held, then the other 10 KB in one read, which carries the held
# bytes past 64 KiB with the whole head among them.
out=$($VISIT "$P" http-split a.example.test /split-cookie 70000 60000)
case $out in *"431 Request Header Fields Too Large"*) ;; *) fail "a 70 KB head in two sends was not refused with 431: $out" ;; esac
never_forwarded "/split-cookie" "the 70 KB head in two sends"
echo "(b) 70 KB head, in 1400-byte sends and in two sends: 431, reached no backend"

# (c) A byte per segment: site A or a refusal, never "*".
out=$($VISIT "$P" dribble a.example.test /dribble)
case $out in
  *"site-a"*) echo "(c) a byte per segment: reached site A" ;;
  *" 408 Request Timeout"*) echo "(c) a byte per segment: refused ($out)" ;;
  *) fail "a request sent a byte per segment got neither site A nor a refusal: $out" ;;
esac
never_reached_star() { sync_sites; ! reached site-s "/dribble" || fail "the byte-per-segment request reached the \"*\" site"; }
never_reached_star

# (d) Malformed heads: 400, nothing forwarded.
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
out=$($VISIT "$P" raw "$(hex $'GET /malformed HTTP/1.1\r\nHost: a.example.test\r\nno colon here\r\n\r\n')")
case $out in *"400 Bad Request"*) ;; *) fail "a malformed head was not refused with 400: $out" ;; esac
out=$($VISIT "$P" raw "$(hex $'GET /nohost HTTP/1.1\r\nUser-Agent: x\r\n\r\n')")
case $out in *"400 Bad Request"*) ;; *) fail "an HTTP/1.1 request without Host was not refused with 400: $out" ;; esac
out=$($VISIT "$P" raw-eof "$(hex $'GET /cut HTTP/1.1\r\nHost: a.exa')")
case $out in *"400 Bad Request"*) ;; *) fail "a head cut short by the visitor was not refused with 400: $out" ;; esac
out=$($VISIT "$P" raw "00010203046e6f7468747470")
[ "$out" = "b''" ] || [ "$out" = reset ] || fail "bytes that are neither TLS nor HTTP got an answer: $out"
never_forwarded "/malformed|/nohost|/cut|binary=0001020304" "a malformed visitor"
echo "(d) malformed head, HTTP/1.1 without Host, a head cut short: 400; non-TLS non-HTTP bytes: closed; none forwarded"

# TLS: a ClientHello that is not one (handshake type 2), and one announcing 70000 bytes (beyond what tn_sni takes).
garbled="160301000502000001ff"
oversized="160301400001011170$(printf '03%.0s' $(seq 1 100))"
out=$($VISIT "$P" raw "$garbled")
[ "$out" = "b'\\x15\\x03\\x03\\x00\\x02\\x022'" ] || fail "a garbled ClientHello did not get a decode_error alert: $out"
out=$($VISIT "$P" raw "$oversized")
case $out in "b'\\x15\\x03\\x03\\x00\\x02\\x02"*) ;; *) fail "an oversized ClientHello did not get a TLS alert: $out" ;; esac
never_forwarded "binary=16" "a garbled or oversized ClientHello"
echo "TLS: garbled ClientHello: decode_error alert; oversized: alert; none forwarded"

unreadable=$(metric "tunneld_tunnel_hostname_unreadable_total{listen=\"127.0.0.1:$P\"}")
echo "tunneld_tunnel_hostname_unreadable_total: $unreadable"
[ "${unreadable:-0}" -ge 7 ] || fail "expected at least 7 unreadable visitors counted, got '$unreadable'"

# "*" still takes a name that was read and matched nothing else, an HTTP/1.0 request without Host, and a
# ClientHello without server name.
out=$($VISIT "$P" raw "$(hex $'GET /http10 HTTP/1.0\r\n\r\n')")
case $out in *"site-star"*) ;; *) fail "an HTTP/1.0 request without Host did not reach \"*\": $out" ;; esac
openssl s_client -connect "127.0.0.1:$P" -noservername </dev/null >/dev/null 2>&1 || true
wait_log "$TEST_TMP/site-s.log" "binary=16030"
echo "\"*\": unknown Host, HTTP/1.0 without Host, ClientHello without server name"

stop_checked home1 tunneld
pass "no unreadable visitor reached \"*\" or any site; 20 KB Cookie served by its site; $unreadable refusals counted"
