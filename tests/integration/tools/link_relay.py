#!/usr/bin/env python3
"""link_relay.py: a TCP relay that gives a path a round trip and a bandwidth (stdlib only).

  link_relay.py LISTEN_PORT TARGET_PORT DELAY_MS RATE_BYTES_PER_S

Accepts on 127.0.0.1:LISTEN_PORT and connects each connection to 127.0.0.1:TARGET_PORT. Every byte is held
DELAY_MS in each direction (a delay line: throughput is kept, only latency is added) and, when RATE is not 0, each
direction is paced to RATE bytes per second. The relay's own buffers are small (a queue of RATE x DELAY + 32 KiB,
32 KiB socket buffers), so a sender faster than the path is held back in its own socket, as on a real bottleneck,
instead of in a deep buffer here.
"""
import collections
import socket
import sys
import threading
import time

CHUNK = 16384
SOCKBUF = 32768


def pipe(src, dst, delay, rate):
    bound = int(rate * delay) + 2 * CHUNK if rate else 4 * 1024 * 1024
    queue = collections.deque()
    cond = threading.Condition()
    state = {"queued": 0, "eof": False}

    def reader():
        try:
            while True:
                data = src.recv(CHUNK)
                with cond:
                    if not data:
                        state["eof"] = True
                        cond.notify_all()
                        return
                    while state["queued"] >= bound:
                        cond.wait()
                    queue.append((time.monotonic() + delay, data))
                    state["queued"] += len(data)
                    cond.notify_all()
        except OSError:
            with cond:
                state["eof"] = True
                cond.notify_all()

    def writer():
        free_at = time.monotonic()  # pacing: when the path is free for the next bytes, at RATE
        try:
            while True:
                with cond:
                    while not queue and not state["eof"]:
                        cond.wait()
                    if not queue:
                        break
                    due, data = queue.popleft()
                    state["queued"] -= len(data)
                    cond.notify_all()
                now = time.monotonic()
                if rate and free_at > due:
                    due = free_at
                if due > now:
                    time.sleep(due - now)
                if rate:
                    free_at = max(free_at, time.monotonic()) + len(data) / rate
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    threading.Thread(target=reader, daemon=True).start()
    threading.Thread(target=writer, daemon=True).start()


def main():
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    delay, rate = int(sys.argv[3]) / 1000.0, int(sys.argv[4])
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKBUF)  # inherited by accepted sockets, set before listen
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(64)
    while True:
        c, _ = ls.accept()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKBUF)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        u = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKBUF)
        u.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKBUF)
        u.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            u.connect(("127.0.0.1", target_port))
        except OSError:
            c.close()
            u.close()
            continue
        pipe(c, u, delay, rate)
        pipe(u, c, delay, rate)


if __name__ == "__main__":
    main()
