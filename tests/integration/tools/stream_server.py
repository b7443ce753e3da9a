#!/usr/bin/env python3
"""stream_server.py: an HTTP backend that holds a download open until the test says stop (stdlib only).

  stream_server.py PORT DIR MARKER

Listens on 127.0.0.1:PORT. Each connection sends one HTTP/1.x request and gets an HTTP/1.0 answer that ends
when the server closes the connection:
  GET /stream/NAME  pseudo-random bytes, 64 KiB at a time, until DIR/NAME.stop exists; then the connection is
                    closed and "BYTES SHA256 MARKER" of everything sent is written to DIR/NAME.done. DIR/NAME.started
                    appears once the first chunk was handed to the kernel.
  GET /anything     MARKER and a newline (which backend answered).

Why: a test that must observe something *while* a download runs (a tunnel move, a shutdown, a link replaced)
cannot rely on a file of fixed size lasting long enough; on a loaded machine it may finish before the checks,
or not start before a timeout. This download lasts exactly as long as the test needs it to.
"""
import hashlib
import os
import random
import socket
import sys
import threading
import time

CHUNK = 64 * 1024


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        b = conn.recv(4096)
        if not b:
            return None
        data += b
        if len(data) > 65536:
            return None
    line = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    return line[1] if len(line) >= 2 else None


def stream(conn, directory, name, marker):
    rng = random.Random(name)
    digest = hashlib.sha256()
    sent = 0
    stop = os.path.join(directory, name + ".stop")
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
    while not os.path.exists(stop):
        chunk = rng.randbytes(CHUNK)
        conn.sendall(chunk)  # blocks while the reader (through the tunnel) is not reading: backpressure
        digest.update(chunk)
        if sent == 0:
            open(os.path.join(directory, name + ".started"), "w").close()
        sent += len(chunk)
        time.sleep(0.005)  # paced: a held-open download must not take a core from the processes under test
    done = os.path.join(directory, name + ".done")
    with open(done + ".tmp", "w") as f:
        f.write("%d %s %s\n" % (sent, digest.hexdigest(), marker))
    os.rename(done + ".tmp", done)


def serve(conn, directory, marker):
    try:
        path = read_request(conn)
        if path is None:
            return
        if path.startswith("/stream/"):
            stream(conn, directory, path[len("/stream/"):], marker)
        else:
            body = (marker + "\n").encode()
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    port, directory, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.makedirs(directory, exist_ok=True)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, directory, marker), daemon=True).start()


if __name__ == "__main__":
    main()
