#!/usr/bin/env bash
# The management API's connection rules of API.md, on the wire (raw HTTP over TLS with an admin certificate):
# 431 for a head over ApiMaxHeader (JSON error, connection closed); Expect: 100-continue answered with 100 before the
# body is sent, or with 413 at once for a body over ApiMaxBody; a keep-alive connection idle for ApiIdleTimeoutMs is
# closed (not before); ApiMaxConnections admin sessions fill the port and the next connection is refused until one
# ends.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

IDLE_MS=1500 MAX_CONN=3
make_pki
start_tunneld "{\"KeepaliveIntervalMs\": 500, \"DeadPeerTimeoutMs\": 2000, \"DrainTimeoutMs\": 3000,
                \"ApiIdleTimeoutMs\": $IDLE_MS, \"ApiMaxConnections\": $MAX_CONN}"

python3 - "$MGMT_PORT" "$PKI" "$IDLE_MS" "$MAX_CONN" <<'PY' || fail "see the lines above"
import json, socket, ssl, sys, time
port, pki, idle_ms, max_conn = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
ctx.load_cert_chain(pki + "/admin.crt", pki + "/admin.key")
ctx.check_hostname = False

def conn():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=15))
    return s

def read_response(s):
    """One response: (status, headers dict, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            raise EOFError("closed before a response head: %r" % data[:80])
        data += b
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    return status, hdrs, rest[:n], rest[n:]

def closed(s, timeout):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True
    except socket.timeout:
        return False

def check(cond, what):
    if not cond:
        print("FAIL: api_wire: " + what, file=sys.stderr)
        sys.exit(1)
    print("ok: " + what)

# 431: a head over ApiMaxHeader (16 KiB).
s = conn()
s.sendall(b"GET /tunnels HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
st, h, body, _ = read_response(s)
check(st == 431 and list(json.loads(body)) == ["error"] and h.get("connection") == "close",
      "a 20 KB head is answered 431 with a JSON error and Connection: close (%d %r)" % (st, body[:80]))
check(closed(s, 10), "the connection closes after the 431")

# 100-continue: the interim answer comes before any body byte is sent; then the PUT is applied.
s = conn()
body = b"[]"
s.sendall(b"PUT /tunnels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body))
st, h, _, rest = read_response(s)
check(st == 100, "Expect: 100-continue is answered 100 before the body (got %d)" % st)
s.sendall(body)
st, h, out, _ = read_response(s) if not rest else (None, None, None, None)
check(st == 200, "the PUT after 100 Continue is applied (got %s)" % st)
# A body over ApiMaxBody (1 MiB): 413 at once, no 100.
s.sendall(b"PUT /tunnels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
          b"Content-Length: 5000000\r\n\r\n")
st, h, out, _ = read_response(s)
check(st == 413, "Expect: 100-continue with a 5 MB body is answered 413 straight away (got %d)" % st)
s.close()

# ApiIdleTimeoutMs: one request, then silence; the server closes the connection, not before the timeout.
s = conn()
t0 = time.time()  # before the request: the server's idle timer starts after its answer, so later than this
s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
st, h, out, _ = read_response(s)
check(st == 200 and h.get("connection") == "keep-alive", "a keep-alive GET /ping")
gone = closed(s, 30)
ms = int((time.time() - t0) * 1000)
# Lower bound: not closed early (300 ms: libuv times from its loop's cached clock); upper bound only catches "never".
check(gone and idle_ms - 300 <= ms <= idle_ms + 10000,
      "an idle keep-alive connection is closed after %d ms (ApiIdleTimeoutMs %d)" % (ms, idle_ms))

# ApiMaxConnections: admin sessions fill every slot; the next connection is refused, and gets in once one ends.
held = []
for _ in range(max_conn):
    c = conn()
    c.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    read_response(c)
    held.append(c)
refused = False
try:
    c = conn()
    c.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    read_response(c)
except (EOFError, ConnectionResetError, ssl.SSLError, OSError):
    refused = True
check(refused, "with %d admin sessions open, a new management connection is refused" % max_conn)
for c in held:
    check(not closed(c, 0.2), "an admin session at the limit is kept")
held.pop().close()
ok = False
for _ in range(100):  # the server learns of the close asynchronously: poll
    try:
        c = conn()
        c.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        ok = read_response(c)[0] == 200
        c.close()
        break
    except (EOFError, ConnectionResetError, ssl.SSLError, OSError):
        time.sleep(0.1)
check(ok, "a slot freed by a closed session takes a new connection")
for c in held:
    c.close()
PY
api_ping || fail "tunneld does not answer afterwards"
pass "431, 100-continue, 413 before the body, ApiIdleTimeoutMs and ApiMaxConnections on the wire"
