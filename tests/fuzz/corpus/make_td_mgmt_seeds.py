#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_td_mgmt (run from anywhere; output is committed).

An input is a first byte (bit i: connection i is an admin; bit 7: the server is stopping) and operations: a byte
(low two bits: connection 0-2; bits 2-4: 0-3 feed, 4 deadline, 5 the PUT ends, 6 the peer closes, 7 flush) and,
for a feed, a length-1 byte and the bytes.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
FEED, EXPIRE, PUT_END, CLOSE, FLUSH = 0, 4, 5, 6, 7


def feed(conn, data):
    out = b""
    for i in range(0, len(data), 256):
        chunk = data[i:i + 256]
        out += bytes([(FEED << 2) | conn, len(chunk) - 1]) + chunk
    return out


def op(action, conn=0):
    return bytes([(action << 2) | conn])


def req(method, path, body=b"", ctype=b"application/json", extra=b""):
    head = method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra
    if body or method == b"PUT":
        head += b"Content-Type: " + ctype + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
    return head + b"\r\n" + body


TABLE = b'[{"ListenPort": 8080, "ClientIdentifier": "home1", "BackEndPort": 80}]'
TWO = (b'[{"ListenPort": 8080, "ClientIdentifier": "home1", "BackEndPort": 80},'
       b' {"ListenPort": 8081, "ClientIdentifier": "home2", "BackupClientIdentifiers": ["home1"], "BackEndService": "web"}]')
FP = b"ab" * 32

seeds = {
    "get_ping": b"\x07" + feed(0, req(b"GET", b"/ping")),
    "pipelined": b"\x07" + feed(0, req(b"GET", b"/ping") + req(b"GET", b"/tunnels") + req(b"GET", b"/clients")),
    "keepalive_close": b"\x07" + feed(0, req(b"GET", b"/metrics", extra=b"Connection: close\r\n") + req(b"GET", b"/ping")),
    "http10": b"\x07" + feed(0, b"GET /ping HTTP/1.0\r\n\r\n"),
    "put_then_end": b"\x07" + feed(0, req(b"PUT", b"/tunnels", TABLE)) + op(PUT_END) + feed(0, req(b"GET", b"/tunnels")),
    "put_queue": b"\x07" + feed(0, req(b"PUT", b"/tunnels", TABLE)) + feed(1, req(b"PUT", b"/tunnels", TWO))
    + feed(1, req(b"GET", b"/ping")) + op(PUT_END) + op(PUT_END),
    "put_waiter_leaves": b"\x07" + feed(0, req(b"PUT", b"/tunnels", TABLE)) + feed(1, req(b"PUT", b"/tunnels", b"[]"))
    + op(CLOSE, 1) + op(PUT_END),
    "put_requester_leaves": b"\x07" + feed(0, req(b"PUT", b"/tunnels", TWO)) + op(CLOSE, 0) + op(PUT_END),
    "put_415": b"\x07" + feed(0, req(b"PUT", b"/tunnels", TABLE, ctype=b"text/plain")),
    "put_bad_json": b"\x07" + feed(0, req(b"PUT", b"/tunnels", b"[{")) + op(PUT_END),
    "expect_continue": b"\x07" + feed(0, req(b"PUT", b"/tunnels", b"", extra=b"Expect: 100-continue\r\n")[:-2]
                                    .replace(b"Content-Length: 0", b"Content-Length: 2") + b"\r\n") + feed(0, b"[]")
    + op(PUT_END),
    "chunked": b"\x07" + feed(0, b"PUT /tunnels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n") + op(PUT_END),
    "header_too_large": b"\x07" + feed(0, b"GET /ping HTTP/1.1\r\nX: " + b"a" * 600 + b"\r\n\r\n"),
    "body_too_large": b"\x07" + feed(0, req(b"PUT", b"/tunnels", b"[" + b" " * 3000 + b"]")),
    "slow_head": b"\x07" + feed(0, b"GET /pi") + op(EXPIRE),
    "idle": b"\x07" + feed(0, req(b"GET", b"/ping")) + op(EXPIRE),
    "non_admin": b"\x03" + feed(2, req(b"GET", b"/tunnels") + req(b"GET", b"/ping")) + op(FLUSH),
    "non_admin_deadline": b"\x03" + op(EXPIRE, 2),
    "stopping": b"\x87" + feed(0, req(b"GET", b"/ping") + req(b"GET", b"/ping")),
    "revoked": b"\x07" + feed(0, req(b"PUT", b"/revoked-certificates", b'["' + FP + b'"]') + req(b"GET", b"/revoked-certificates")
                              + req(b"PUT", b"/revoked-certificates", b'["' + b"e" * 64 + b'"]')),
    "revoked_waits": b"\x07" + feed(0, req(b"PUT", b"/tunnels", TABLE)) + feed(1, req(b"PUT", b"/revoked-certificates", b"[]"))
    + op(PUT_END),
    "bad_request": b"\x07" + feed(0, b"GET /ping HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
    "methods": b"\x07" + feed(0, req(b"DELETE", b"/tunnels") + req(b"POST", b"/ping") + req(b"GET", b"/nope")),
    # A 400 leaves the head's deadline running; at the deadline the connection closes, with no second answer.
    "deadline_after_400": b"\x07" + feed(0, b"GET /ping HTTP/1.1\r\n") + feed(0, b"Bad header\r\n\r\n") + op(EXPIRE),
    # Bytes past the parser's stash while a PUT is applied (or waits): the request must still be there to answer.
    "flood_behind_put": b"\x07" + feed(0, req(b"PUT", b"/tunnels", TABLE)) + feed(0, b"G" * 3000) + op(PUT_END),
    "flood_while_waiting": b"\x07" + feed(0, req(b"PUT", b"/tunnels", TABLE)) + feed(1, req(b"PUT", b"/tunnels", b"[]"))
    + feed(1, b"G" * 3000) + op(PUT_END) + op(PUT_END),
    "after_close": b"\x07" + feed(0, req(b"GET", b"/ping", extra=b"Connection: close\r\n")) + op(FLUSH)
    + feed(0, req(b"GET", b"/ping")),
}

d = os.path.join(HERE, "fuzz_td_mgmt")
os.makedirs(d, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
