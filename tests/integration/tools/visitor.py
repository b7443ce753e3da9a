#!/usr/bin/env python3
"""One visitor of a public port, for tests of what tunneld does with its first bytes.

visitor.py PORT MODE [ARG]: sends what MODE says, prints what came back (repr of at most 4 KiB; "" when the
port closed without a word, "reset" when it was reset) and exits 0.
  raw HEX          these bytes in one send, then waits for the answer
  raw-eof HEX      these bytes, then closes its sending side
  http HOST PATH COOKIE_BYTES   a GET for HOST with a Cookie header of COOKIE_BYTES bytes, in 1400-byte sends
  http-split HOST PATH COOKIE_BYTES FIRST
                                the same request in two sends: its first FIRST bytes, then (0.2 s later) the rest
                                at once, so that one read can carry tunneld's held bytes past its peek bound
  dribble HOST PATH             a GET for HOST, one byte per send (TCP_NODELAY, 1 ms apart)
"""
import socket
import sys
import time


def request(host, path, cookie):
    head = "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: visitor\r\n" % (path, host)
    if cookie > 0:
        head += "Cookie: s=" + "x" * cookie + "\r\n"
    return (head + "Connection: close\r\n\r\n").encode()


def answer(s):
    s.settimeout(20)
    out = b""
    try:
        while len(out) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    except ConnectionResetError:
        return "reset" if not out else repr(out)
    return repr(out)


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if mode in ("raw", "raw-eof"):
            s.sendall(bytes.fromhex(sys.argv[3]))
            if mode == "raw-eof":
                s.shutdown(socket.SHUT_WR)
        elif mode == "http":
            # In segments of a typical MSS, as a browser's large head arrives over the internet.
            data = request(sys.argv[3], sys.argv[4], int(sys.argv[5]))
            for i in range(0, len(data), 1400):
                s.sendall(data[i:i + 1400])
                time.sleep(0.001)
        elif mode == "http-split":
            data = request(sys.argv[3], sys.argv[4], int(sys.argv[5]))
            first = int(sys.argv[6])
            s.sendall(data[:first])
            time.sleep(0.2)
            s.sendall(data[first:])
        elif mode == "dribble":
            for b in request(sys.argv[3], sys.argv[4], 0):
                s.send(bytes([b]))
                time.sleep(0.001)
        else:
            sys.exit("unknown mode " + mode)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused while still sending: what came back says how
    print(answer(s))


main()
