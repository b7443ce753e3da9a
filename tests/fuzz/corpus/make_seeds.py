#!/usr/bin/env python3
"""Writes the seed corpora for fuzz_proxy and fuzz_open (run from anywhere; output is committed)."""
import os
import socket
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v4(ip):
    return socket.inet_pton(socket.AF_INET, ip)


def v6(ip):
    return socket.inet_pton(socket.AF_INET6, ip)


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


proxy = {
    "v1_tcp4": b"PROXY TCP4 203.0.113.7 192.0.2.1 41234 443\r\n",
    "v1_tcp6": b"PROXY TCP6 2001:db8::5 2001:db8::1 51000 443\r\n",
    "v1_tcp6_mapped": b"PROXY TCP6 ::ffff:1.2.3.4 ::1 0 65535\r\nGET /",
    "v1_unknown": b"PROXY UNKNOWN\r\n",
    "v1_unknown_107": b"PROXY UNKNOWN " + b":".join([b"ffff"] * 8) + b" " + b":".join([b"ffff"] * 8) + b" 65535 65535\r\n",
    "v2_tcp4": SIG + b"\x21\x11" + struct.pack(">H", 12) + v4("203.0.113.7") + v4("192.0.2.1") + struct.pack(">HH", 41234, 443),
    "v2_tcp6": SIG + b"\x21\x21" + struct.pack(">H", 36) + v6("2001:db8::5") + v6("2001:db8::1") + struct.pack(">HH", 51000, 443),
    "v2_local": SIG + b"\x20\x00\x00\x00",
    "v2_tcp4_tlvs": SIG + b"\x21\x11" + struct.pack(">H", 12 + 3 + 8) + v4("10.0.0.1") + v4("10.0.0.2")
    + struct.pack(">HH", 1, 2) + b"\x04\x00\x00" + b"\x02\x00\x05a.com",
    "v2_udp4": SIG + b"\x21\x12" + struct.pack(">H", 12) + bytes(12),
}
for name, data in proxy.items():
    write("fuzz_proxy", name, data)


def addr(family, ip, port):
    raw = v4(ip) if family == 4 else v6(ip)
    return struct.pack(">BH", family, port) + raw


def open_hdr(kind, proxy_version, port, peer, listener, service=b""):
    body = struct.pack(">BBH", kind, proxy_version, port) + peer + listener
    if kind == 2:
        body += struct.pack(">B", len(service)) + service
    return struct.pack(">BBH", 1, 0, 4 + len(body)) + body


opens = {
    "port_v4": open_hdr(1, 1, 8080, addr(4, "203.0.113.7", 41234), addr(4, "192.0.2.1", 443)),
    "port_v6": open_hdr(1, 0, 1, addr(6, "::1", 65535), addr(6, "2001:db8::1", 1)),
    "service_mixed": open_hdr(2, 2, 0, addr(6, "2001:db8::5", 51000), addr(4, "192.0.2.1", 443), b"web"),
    "service_long": open_hdr(2, 1, 0, addr(4, "10.0.0.1", 1), addr(6, "::", 2), b"a.b_c-D9" * 31 + b"xyzwv.."),
    "port_v4_payload": open_hdr(1, 2, 22, addr(4, "127.0.0.1", 5), addr(4, "127.0.0.1", 6)) + b"SSH-2.0-",
    "version2": b"\x02\x00\x00\x20" + bytes(28),
}
for name, data in opens.items():
    write("fuzz_open", name, data)
