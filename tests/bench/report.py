#!/usr/bin/env python3
"""report.py RAW_DIR RESULTS_DIR: turns the raw outputs of tests/bench/run.sh into one table.

RAW_DIR holds, per figure and column, the tools' own output (FIGURE.COLUMN.json for iperf3 -J and bench_conn,
FIGURE.COLUMN.txt for wrk), figures.txt ("KEY VALUE" lines written by the harness: CPU ticks, RSS, meta) and
bench_tls.txt. Prints the table and the targets, and writes both as JSON and Markdown into RESULTS_DIR
(bench-TIMESTAMP.{json,md} and latest.{json,md}).
"""
import json
import os
import re
import sys
import time

COLUMNS = ["direct", "tunnel", "ssh", "ssh_chacha"]


def load_kv(path):
    kv = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition(" ")
                if k:
                    kv[k] = v
    return kv


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def iperf(raw, fig, col):
    """Gbit/s and bytes received at the iperf3 client (-R: the far end sends through the tunnel)."""
    text = read(os.path.join(raw, "%s.%s.json" % (fig, col)))
    if not text:
        return None
    try:
        d = json.loads(text)
        s = d["end"]["sum_received"]
        return {"gbps": s["bits_per_second"] / 1e9, "bytes": s["bytes"], "seconds": s["seconds"]}
    except (ValueError, KeyError, TypeError):
        return None


_UNITS_T = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_UNITS_B = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def wrk(raw, fig, col):
    """The best round (highest requests/s) of FIGURE.COLUMN.rN.txt, with the number of rounds."""
    best = None
    names = sorted(n for n in os.listdir(raw) if n.startswith("%s.%s.r" % (fig, col)) and n.endswith(".txt"))
    for n in names:
        r = wrk_one(read(os.path.join(raw, n)))
        if r is not None and (best is None or r["rps"] > best["rps"]):
            best = r
    if best is not None:
        best["rounds"] = len(names)
    return best


def wrk_one(text):
    if not text:
        return None
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        return None
    r["rps"] = float(m.group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text)
    if m:
        r["gbps"] = float(m.group(1)) * _UNITS_B.get(m.group(2), 1) * 8 / 1e9
    for pct, val, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        r["p%s_ms" % pct] = float(val) * _UNITS_T[unit]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"(\d+) requests in", text)
    r["requests"] = int(m.group(1)) if m else 0
    return r


def jfile(raw, fig, col):
    text = read(os.path.join(raw, "%s.%s.json" % (fig, col)))
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def bench_tls(raw):
    text = read(os.path.join(raw, "bench_tls.txt")) or ""
    r = {}
    pats = {
        "tn_tls_pair": r"tn_tls pair \(([^)]*)\), client->server:\s+([\d.]+)",
        "chacha_seal": r"raw CHACHA20-POLY1305 seal:\s+([\d.]+)",
        "chacha_both": r"raw CHACHA20-POLY1305 seal\+open[^:]*:\s+([\d.]+)",
        "gcm_seal": r"raw AES-128-GCM seal:\s+([\d.]+)",
        "gcm_both": r"raw AES-128-GCM seal\+open[^:]*:\s+([\d.]+)",
    }
    for k, p in pats.items():
        m = re.search(p, text)
        if not m:
            continue
        if k == "tn_tls_pair":
            r["suite"] = m.group(1)
            r[k] = float(m.group(2))
        else:
            r[k] = float(m.group(1))
    return r


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.*f" % (digits, v)


def pair(a, b):
    if a is None and b is None:
        return "–"
    return "%s / %s" % (fmt(a), fmt(b))


def main():
    raw, out_dir = sys.argv[1], sys.argv[2]
    kv = load_kv(os.path.join(raw, "figures.txt"))
    tls = bench_tls(raw)
    clk = float(kv.get("clk_tck", "100"))

    data = {c: {} for c in COLUMNS}
    for c in COLUMNS:
        d = data[c]
        d["iperf1"] = iperf(raw, "iperf1", c)
        d["iperf8"] = iperf(raw, "iperf8", c)
        d["rps1"] = wrk(raw, "rps1", c)
        d["rps16"] = wrk(raw, "rps16", c)
        d["mib4"] = wrk(raw, "mib4", c)
        d["newconn"] = wrk(raw, "newconn", c)
        d["ttfb"] = jfile(raw, "ttfb", c)
        a, b = kv.get("cpu_ticks_a.%s" % c), kv.get("cpu_ticks_b.%s" % c)
        d["cpu_s_per_gb"] = d["one_core_per_end_gbps"] = None
        if a is not None and b is not None and d["iperf1"]:
            a, b = float(a) / clk, float(b) / clk
            d["cpu_s"] = [a, b]
            d["cpu_s_per_gb"] = (a + b) / (d["iperf1"]["bytes"] / 1e9)
            # What one core per end would carry: the busier end's CPU time bounds the rate. Independent of how
            # much of the shared machine the run happened to get.
            if max(a, b) > 0:
                d["one_core_per_end_gbps"] = d["iperf1"]["bytes"] * 8 / max(a, b) / 1e9

    mem = {}
    n_idle = int(kv.get("idle.count", "0") or 0)
    for proc in ("tunneld", "tunnelc"):
        before, after = kv.get("rss_before.%s" % proc), kv.get("rss_after.%s" % proc)
        if before and after and n_idle > 0:
            mem[proc] = {"before_kib": int(before), "after_kib": int(after),
                         "kib_per_conn": (int(after) - int(before)) / n_idle}

    def g(c, fig, key):
        v = data[c].get(fig)
        return v.get(key) if isinstance(v, dict) else None

    headers = ["figure", "direct", "tunnel", "ssh -R (default: %s)" % kv.get("ssh_cipher", "?"),
               "ssh -R (-c chacha20-poly1305)"]
    rows = []

    def row(label, fn):
        rows.append([label] + [fn(c) for c in COLUMNS])

    row("throughput, 1 stream, iperf3 -R, Gbit/s", lambda c: fmt(g(c, "iperf1", "gbps")))
    row("  same, with one core per end (bytes / CPU s of the busier end), Gbit/s",
        lambda c: "n/a" if c == "direct" else fmt(data[c]["one_core_per_end_gbps"]))
    row("throughput, 8 streams (-P 8), Gbit/s", lambda c: fmt(g(c, "iperf8", "gbps")))
    row("1 MiB file, keep-alive, 4 connections (wrk), Gbit/s", lambda c: fmt(g(c, "mib4", "gbps")))
    row("requests/s, 1 KiB, keep-alive, 1 connection (wrk -c1)", lambda c: fmt(g(c, "rps1", "rps")))
    row("requests/s, 1 KiB, keep-alive, 16 connections (wrk -c16)", lambda c: fmt(g(c, "rps16", "rps")))
    row("latency p50 / p99, 1 connection, ms", lambda c: pair(g(c, "rps1", "p50_ms"), g(c, "rps1", "p99_ms")))
    row("latency p50 / p99, 16 connections, ms", lambda c: pair(g(c, "rps16", "p50_ms"), g(c, "rps16", "p99_ms")))
    row("new connections/s (1 request each, 16 at a time)", lambda c: fmt(g(c, "newconn", "rps")))
    row("time to first byte, new connection, p50 / p99, ms",
        lambda c: pair(g(c, "ttfb", "p50_ms"), g(c, "ttfb", "p99_ms")))

    def mem_cell(c):
        if c != "tunnel" or not mem:
            return "n/a" if c != "tunnel" else "–"
        return "tunneld %s, tunnelc %s" % (fmt(mem.get("tunneld", {}).get("kib_per_conn")),
                                           fmt(mem.get("tunnelc", {}).get("kib_per_conn")))

    row("RSS per idle connection (%d open), KiB" % n_idle, mem_cell)
    row("CPU seconds per GB moved (tunnel: tunneld+tunnelc; ssh: sshd+ssh)",
        lambda c: "n/a" if c == "direct" else fmt(data[c]["cpu_s_per_gb"]))

    # The one-core AEAD ceiling: what one end of a link can seal on one core, for the suite the tunnel negotiates.
    suite = tls.get("suite", "")
    ceiling_key = "gcm_seal" if "GCM" in suite else "chacha_seal"
    ceiling = tls.get(ceiling_key)
    t1 = g("tunnel", "iperf1", "gbps")
    t1_mbs = t1 * 1e9 / 8 / 1e6 if t1 is not None else None
    pct = 100.0 * t1_mbs / ceiling if t1_mbs and ceiling else None
    t1c = data["tunnel"]["one_core_per_end_gbps"]
    t1c_mbs = t1c * 1e9 / 8 / 1e6 if t1c is not None else None
    pct_cpu = 100.0 * t1c_mbs / ceiling if t1c_mbs and ceiling else None
    cipher_line = ("raw mbedTLS, one core, 16 KiB records: CHACHA20-POLY1305 seal %s MB/s (seal+open %s), "
                   "AES-128-GCM seal %s MB/s (seal+open %s); tn_tls pair in memory (%s) %s MB/s. "
                   "Tunnel 1 stream: %s MB/s = %s%% of the %s seal ceiling (wall clock, on a machine it shares with "
                   "the load generators); with one core per end %s MB/s = %s%%."
                   % (fmt(tls.get("chacha_seal")), fmt(tls.get("chacha_both")), fmt(tls.get("gcm_seal")),
                      fmt(tls.get("gcm_both")), suite or "?", fmt(tls.get("tn_tls_pair")), fmt(t1_mbs),
                      fmt(pct, 0), "AES-128-GCM" if ceiling_key == "gcm_seal" else "CHACHA20-POLY1305",
                      fmt(t1c_mbs), fmt(pct_cpu, 0)))

    # Targets from the issue: the benchmark reports, it does not fail.
    targets = []

    def target(name, ok, detail):
        targets.append({"target": name, "met": ok, "detail": detail})

    def ratio(a, b):
        return a / b if a is not None and b else None

    target("bulk: 1 stream >= 85% of the one-core AEAD ceiling (wall clock)", pct is not None and pct >= 85,
           "%s%%" % fmt(pct, 0))
    target("bulk: 1 stream >= 85% of the one-core AEAD ceiling (one core per end)",
           pct_cpu is not None and pct_cpu >= 85, "%s%%" % fmt(pct_cpu, 0))
    for fig, conns in (("rps16", 16), ("rps1", 1)):
        tv = g("tunnel", fig, "rps")
        vs_ssh = ratio(tv, g("ssh", fig, "rps"))
        vs_direct = ratio(tv, g("direct", fig, "rps"))
        target("small requests, %d connection(s): >= 10x ssh -R" % conns, vs_ssh is not None and vs_ssh >= 10,
               "%sx" % fmt(vs_ssh))
        target("small requests, %d connection(s): >= 40%% of direct" % conns,
               vs_direct is not None and vs_direct >= 0.4, "%s%%" % fmt(100 * vs_direct if vs_direct else None, 0))
    p99 = g("tunnel", "rps16", "p99_ms")
    target("p99 < 2 ms at 16 connections", p99 is not None and p99 < 2.0, "%s ms" % fmt(p99))
    nc = ratio(g("tunnel", "newconn", "rps"), g("direct", "newconn", "rps"))
    target("new connections >= 40% of direct", nc is not None and nc >= 0.4,
           "%s%%" % fmt(100 * nc if nc else None, 0))
    for proc in ("tunneld", "tunnelc"):
        k = mem.get(proc, {}).get("kib_per_conn")
        target("memory: %s <= 8 KiB per idle connection" % proc, k is not None and k <= 8.0, "%s KiB" % fmt(k))

    errors = []
    for c in COLUMNS:
        for fig in ("rps1", "rps16", "mib4", "newconn"):
            w = data[c].get(fig)
            if w is None:
                errors.append("%s %s: no result" % (fig, c))
            elif w["errors"] or w["non2xx"]:
                errors.append("%s %s: %d socket errors, %d non-2xx of %d requests"
                              % (fig, c, w["errors"], w["non2xx"], w["requests"]))
        for fig in ("iperf1", "iperf8", "ttfb"):
            if data[c].get(fig) is None:
                why = (read(os.path.join(raw, "%s.%s.err" % (fig, c))) or "").strip()
                m = re.search(r'"error":\s*"([^"]*)"', read(os.path.join(raw, "%s.%s.json" % (fig, c))) or "")
                errors.append("%s %s: no result%s" % (fig, c, (": " + (m.group(1) if m else why))[:200]
                                                     if m or why else ""))
        t = data[c].get("ttfb")
        if t and t.get("failed"):
            errors.append("ttfb %s: %d failed connections" % (c, t["failed"]))
    if n_idle and kv.get("idle.connected") and int(kv["idle.connected"]) != n_idle:
        errors.append("idle: only %s of %d connections were carried" % (kv["idle.connected"], n_idle))

    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]

    def md_row(cells):
        return "| " + " | ".join(str(c).ljust(widths[i]) for i, c in enumerate(cells)) + " |"

    lines = [md_row(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [md_row(r) for r in rows]
    table = "\n".join(lines)
    meta_line = ("%s mode, %s; %s, %s cores; load average %s at start, %s at end; %s"
                 % (kv.get("mode", "?"), kv.get("date", "?"), kv.get("cpu", "?"), kv.get("nproc", "?"),
                    kv.get("load_start", "?"), kv.get("load_end", "?"), kv.get("versions", "")))
    target_lines = ["- %s %s: %s" % ("MET   " if t["met"] else "MISSED", t["target"], t["detail"]) for t in targets]

    md = ["# tunnel benchmark", "", meta_line, "", table, "", cipher_line, "", "Targets:", ""] + target_lines
    if mem:
        md += ["", "Idle memory: " + "; ".join("%s VmRSS %d -> %d KiB" % (p, m["before_kib"], m["after_kib"])
                                                for p, m in mem.items())]
    if errors:
        md += ["", "Problems during the run:", ""] + ["- " + e for e in errors]
    md_text = "\n".join(md) + "\n"
    print(md_text)

    result = {"meta": {k: v for k, v in kv.items() if not k.startswith(("cpu_ticks", "rss_"))},
              "columns": COLUMNS, "headers": headers, "rows": rows, "data": data, "memory": mem,
              "cipher": tls, "tunnel_1stream_mb_s": t1_mbs, "tunnel_pct_of_ceiling": pct,
              "tunnel_1stream_one_core_per_end_mb_s": t1c_mbs, "tunnel_pct_of_ceiling_one_core_per_end": pct_cpu,
              "targets": targets, "problems": errors}
    os.makedirs(out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("bench-%s" % stamp, "latest"):
        with open(os.path.join(out_dir, name + ".md"), "w") as f:
            f.write(md_text)
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
    print("written: %s/{bench-%s,latest}.{json,md}" % (out_dir, stamp))


if __name__ == "__main__":
    main()
