#!/usr/bin/env python3
"""handshake_flood.py: completes TLS handshakes with a client certificate as fast as it can (stdlib only).

  handshake_flood.py PORT CA CERT KEY SECONDS THREADS OUT

THREADS connections at a time to 127.0.0.1:PORT, each presenting CERT/KEY, for SECONDS. Thread i connects from
127.0.0.(10 + i), so that no source holds more than one handshake at a time (tunneld bounds those per source, and
the point is handshakes that complete). Each one that completes its
handshake stays open until the server closes it, or HOLD (1.5) seconds pass (then it counts as held: the server kept it,
as it keeps a link it admitted). Writes "handshakes N refused N held N failed N" to OUT at the end.
"""
import socket
import ssl
import sys
import threading
import time

HOLD = 1.5


def main():
    port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    seconds, threads, out = float(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    counts = {"handshakes": 0, "refused": 0, "held": 0, "failed": 0}
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def count(what):
        with lock:
            counts[what] += 1

    def worker(i):
        while time.monotonic() < end:
            try:
                raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.%d" % (10 + i), 0))
            except OSError:
                count("failed")
                time.sleep(0.01)
                continue
            try:
                s = ctx.wrap_socket(raw)
            except (OSError, ssl.SSLError):
                raw.close()
                count("failed")
                continue
            count("handshakes")
            start = time.monotonic()
            s.settimeout(0.2)
            outcome = "refused"
            try:
                while time.monotonic() - start < HOLD:
                    try:
                        if not s.recv(4096):
                            break
                    except socket.timeout:
                        pass
                else:
                    outcome = "held"
            except (OSError, ssl.SSLError):
                pass
            finally:
                s.close()
            count(outcome)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with open(out + ".tmp", "w") as f:
        f.write("handshakes %(handshakes)d refused %(refused)d held %(held)d failed %(failed)d\n" % counts)
    import os
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    main()
