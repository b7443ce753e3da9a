#!/usr/bin/env python3
"""A home site for tests that must prove what reached it: every connection is logged with what it carried.

site_backend.py PORT NAME: listens on 127.0.0.1:PORT; per connection reads up to the end of an HTTP head (or
whatever arrives within 3 s, at most 1 MiB), writes one line to stdout, "conn bytes=N first=<first line>" for
HTTP or "conn bytes=N binary=<first 8 bytes in hex>" otherwise, and answers an HTTP request with 200 and body
"NAME\n", except a request for a path starting /hold, which is held open without an answer until the visitor
closes."""
import socket
import sys
import threading
import time


def serve(conn, name, lock):
    data = b""
    conn.settimeout(0.2)
    deadline = time.time() + 3
    try:
        while time.time() < deadline and b"\r\n\r\n" not in data and len(data) < (1 << 20):
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
        if data[:1].isalpha():
            line = "first=" + data.split(b"\r\n", 1)[0].decode("latin-1")
        else:
            line = "binary=" + data[:8].hex()
        with lock:
            print("conn bytes=%d %s" % (len(data), line), flush=True)
        if b" /hold" in data.split(b"\r\n", 1)[0]:
            conn.settimeout(None)
            while conn.recv(4096):
                pass  # held open until the visitor goes
        elif data[:1].isalpha():
            body = (name + "\n").encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    port, name = int(sys.argv[1]), sys.argv[2]
    lock = threading.Lock()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1024)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, name, lock), daemon=True).start()


main()
