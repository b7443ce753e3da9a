#!/usr/bin/env python3
"""Connections held open from one local address, for tests of per-source and per-site limits.

holder.py SOURCE PORT N [HEAD]: opens N connections to 127.0.0.1:PORT from address SOURCE (127.0.0.2, ...),
sends HEAD on each (Python string escapes allowed, e.g. "GET /hold HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"), prints
{"event": "opened", ...}, holds them until the file named by $HOLD_UNTIL exists (at most 300 s), then prints
{"event": "done", "still_open": ...} and closes them."""
import json
import os
import resource
import socket
import sys
import time


def main():
    source, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    head = sys.argv[4].encode().decode("unicode_escape").encode("latin-1") if len(sys.argv) > 4 else b""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks, failed = [], 0
    for _ in range(n):
        s = socket.socket()
        try:
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
            if head:
                s.send(head)
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
    print(json.dumps({"event": "opened", "opened": len(socks), "connect_failed": failed}), flush=True)
    until = os.environ.get("HOLD_UNTIL")
    deadline = time.time() + 300
    while time.time() < deadline and not (until and os.path.exists(until)):
        time.sleep(0.05)
    alive = 0
    for s in socks:
        s.setblocking(False)
        try:
            alive += 1 if s.recv(1) != b"" else 0
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        s.close()
    print(json.dumps({"event": "done", "opened": len(socks), "still_open": alive}), flush=True)


main()
