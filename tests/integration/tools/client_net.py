#!/usr/bin/env python3
"""client_net.py: small TCP actors for the tunnelc integration tests (stdlib only).

  record-listener PORT LOG TOKEN    accept on 127.0.0.1:PORT, append one line per connection to LOG,
                                    answer TOKEN and close
  eof-then-answer PORT SIZE         backend: read until the peer's EOF, then answer
                                    "got N sha256\n" followed by SIZE pseudo-random bytes, then close
  half-close-user PORT REQ_SIZE SIZE  user: send REQ_SIZE bytes, shut down the write side, read to EOF;
                                    checks the answer of eof-then-answer; prints the bytes it got
  greet-then-read PORT GREETING_SIZE OUT  backend: send GREETING_SIZE bytes, shut down its write side, read
                                    until EOF and write "N sha256" to OUT
  read-then-send PORT GREETING_SIZE SIZE  user: read to EOF (expects GREETING_SIZE bytes), then send SIZE
                                    bytes and close; prints "N sha256" of what it sent
  slow-get PORT PATH CHUNK DELAY_MS SECONDS  user: HTTP GET, then read CHUNK bytes every DELAY_MS for SECONDS;
                                    prints the bytes read
  paced-sender PORT SIZE CHUNK DELAY_MS  backend: to every connection send SIZE pseudo-random bytes, CHUNK bytes
                                    every DELAY_MS, then close (one thread per connection)
  fetch PORT SIZE                   user: read to EOF; prints "N complete|short|reset" (complete: exactly
                                    the paced-sender's SIZE bytes); exit status 0 only when complete
  never-read PORT                   backend: accept every connection with a small receive buffer and never read
  push PORT SIZE OUT                user: send SIZE bytes; writes "finished N" to OUT once all were sent, or
                                    "stalled N" once the peer has taken nothing for 2 s (then holds the
                                    connection open until killed)
  connect-wait PORT SECONDS         user: connect, wait for the peer to close; prints "closed MS" or
                                    "open" (still open at the deadline) or "refused"
"""
import hashlib
import os
import random
import socket
import sys
import time


def pattern(size, seed=7):
    rnd = random.Random(seed)
    return rnd.randbytes(size)


def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    return s


def read_all(c):
    h = hashlib.sha256()
    n = 0
    while True:
        b = c.recv(65536)
        if not b:
            return n, h.hexdigest(), None
        n += len(b)
        h.update(b)


def record_listener(port, log, token):
    s = listen(port)
    while True:
        c, addr = s.accept()
        with open(log, "a") as f:
            f.write("connection from %s:%d\n" % addr)
        try:
            c.sendall(token.encode() + b"\n")
        except OSError:
            pass
        c.close()


def eof_then_answer(port, size):
    s = listen(port)
    body = pattern(size)
    while True:
        c, _ = s.accept()
        try:
            n, digest, _ = read_all(c)
            c.sendall(("got %d %s\n" % (n, digest)).encode() + body)
        except OSError as e:
            # port probes close at once; the answer has nowhere to go
            print("connection ended early: %s" % e, flush=True)
        c.close()


def half_close_user(port, req_size, size):
    req = pattern(req_size, seed=11)
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.sendall(req)
    c.shutdown(socket.SHUT_WR)
    data = bytearray()
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.close()
    line, _, body = bytes(data).partition(b"\n")
    want = "got %d %s" % (req_size, hashlib.sha256(req).hexdigest())
    if line.decode(errors="replace") != want:
        print("backend saw %r, want %r" % (line[:120], want))
        sys.exit(1)
    if body != pattern(size):
        print("answer after half-close: %d bytes, want %d (or content differs)" % (len(body), size))
        sys.exit(1)
    print("answer %d bytes after half-close" % len(body))


def greet_then_read(port, greeting_size, out):
    s = listen(port)
    c, _ = s.accept()
    c.sendall(pattern(greeting_size, seed=13))
    c.shutdown(socket.SHUT_WR)
    n, digest, _ = read_all(c)
    c.close()
    with open(out + ".tmp", "w") as f:
        f.write("%d %s\n" % (n, digest))
    import os
    os.rename(out + ".tmp", out)


def read_then_send(port, greeting_size, size):
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    data = bytearray()
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    if bytes(data) != pattern(greeting_size, seed=13):
        print("greeting: %d bytes, want %d (or content differs)" % (len(data), greeting_size))
        sys.exit(1)
    body = pattern(size, seed=17)
    c.sendall(body)
    c.shutdown(socket.SHUT_WR)
    c.close()
    print("%d %s" % (size, hashlib.sha256(body).hexdigest()))


def slow_get(port, path, chunk, delay_ms, seconds):
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    got = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        b = c.recv(chunk)
        if not b:
            break
        got += len(b)
        time.sleep(delay_ms / 1000.0)
    c.close()
    print(got)


def connect_wait(port, seconds):
    t0 = time.monotonic()
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=seconds)
    except ConnectionRefusedError:
        print("refused")
        return
    except ConnectionResetError:
        # the reset can beat the end of connect() (seen under gVisor): closed all the same
        print("closed %d" % int((time.monotonic() - t0) * 1000))
        return
    c.settimeout(seconds)
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
    except ConnectionResetError:
        pass
    except socket.timeout:
        print("open")
        return
    print("closed %d" % int((time.monotonic() - t0) * 1000))


def paced_sender(port, size, chunk, delay_ms):
    import threading
    s = listen(port)
    body = pattern(size, seed=19)

    def serve(c):
        try:
            for off in range(0, size, chunk):
                c.sendall(body[off:off + chunk])
                time.sleep(delay_ms / 1000.0)
        except OSError:
            pass
        c.close()

    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def fetch(port, size):
    c = socket.create_connection(("127.0.0.1", port), timeout=60)
    data = bytearray()
    how = "short"
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            data += b
    except ConnectionResetError:
        how = "reset"
    if how == "short" and bytes(data) == pattern(size, seed=19):
        how = "complete"
    print("%d %s" % (len(data), how))
    sys.exit(0 if how == "complete" else 1)


def never_read(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Set before listen so accepted sockets inherit it: the kernel then absorbs little of what tunnelc writes.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)


def push(port, size, out):
    push_into(socket.create_connection(("127.0.0.1", port), timeout=30), size, out)


def push_server(port, size, out):
    """A backend that sends SIZE bytes to the first connection it accepts, as fast as it is taken."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(8)
    # Waiters read this instead of probing the port: a probe would be the connection pushed into.
    print("listening", flush=True)
    c, _ = s.accept()
    push_into(c, size, out)


def never_read_client(port, seconds):
    """A visitor that connects and never reads (its receive buffer kept small), for SECONDS."""
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.connect(("127.0.0.1", port))
    print("connected", flush=True)
    time.sleep(seconds)


def push_into(c, size, out):
    """Writes SIZE bytes to C; OUT gets "finished N", or "stalled N" once no byte was taken for 2 s."""
    import select
    c.setblocking(False)
    block = b"\x5a" * 65536
    sent = 0
    while sent < size:
        # The 2 s only decides when to report; a slow machine reports later, never wrongly "finished".
        _, w, _ = select.select([], [c], [], 2.0)
        if not w:
            with open(out + ".tmp", "w") as f:
                f.write("stalled %d\n" % sent)
            os.rename(out + ".tmp", out)
            while True:
                time.sleep(3600)
        try:
            sent += c.send(block[:min(len(block), size - sent)])
        except BlockingIOError:
            pass
    with open(out + ".tmp", "w") as f:
        f.write("finished %d\n" % sent)
    os.rename(out + ".tmp", out)
    while True:
        time.sleep(3600)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "record-listener":
        record_listener(int(args[0]), args[1], args[2])
    elif cmd == "eof-then-answer":
        eof_then_answer(int(args[0]), int(args[1]))
    elif cmd == "half-close-user":
        half_close_user(int(args[0]), int(args[1]), int(args[2]))
    elif cmd == "greet-then-read":
        greet_then_read(int(args[0]), int(args[1]), args[2])
    elif cmd == "read-then-send":
        read_then_send(int(args[0]), int(args[1]), int(args[2]))
    elif cmd == "slow-get":
        slow_get(int(args[0]), args[1], int(args[2]), int(args[3]), float(args[4]))
    elif cmd == "paced-sender":
        paced_sender(int(args[0]), int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "fetch":
        fetch(int(args[0]), int(args[1]))
    elif cmd == "never-read":
        never_read(int(args[0]))
    elif cmd == "push":
        push(int(args[0]), int(args[1]), args[2])
    elif cmd == "push-server":
        push_server(int(args[0]), int(args[1]), args[2])
    elif cmd == "never-read-client":
        never_read_client(int(args[0]), float(args[1]))
    elif cmd == "connect-wait":
        connect_wait(int(args[0]), float(args[1]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
