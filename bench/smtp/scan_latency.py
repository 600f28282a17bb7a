#!/usr/bin/env python3
"""moat's latency per message over spamd's own time (bench/README.md).

  scan_latency.py spamd [--spamd 127.0.0.1:7830] [--n 300] [--warmup 20]
      spamd's own time: the benchmark's message (what smtp-source sends,
      caught here, with a Received line as moat writes it in front) sent N
      times, one after the other, as moat sends it (SPAMC/1.5 SYMBOLS,
      Content-length, a half-close, the reply read to spamd's close); each
      request timed from connect to close.
  scan_latency.py json FILE...
      moat's side, from the JSON log of a run with --loglevel info:
      ms.queue (end of data to the 250: both scans, score and the relay to
      the sink) and the spamassassin / clamav evidence's ms (moat's view of
      each request), over the transactions that reached end of data, and
      per message ms.queue minus its spamassassin ms (what moat adds
      around its own spamd request).

Percentiles are nearest-rank. Standard library only; 127.0.0.1 only.
"""
import argparse
import json
import socket
import subprocess
import sys
import threading
import time


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def summary(name, xs):
    return (f"{name:<22} n={len(xs):<5} p50={pct(xs, 50):8.1f} "
            f"p90={pct(xs, 90):8.1f} p99={pct(xs, 99):8.1f} "
            f"max={max(xs) if xs else float('nan'):8.1f} ms")


def catch_message():
    """Runs smtp-source against a one-shot SMTP listener; returns the DATA."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    got = {}

    def serve():
        c, _ = ls.accept()
        f = c.makefile("rb")
        c.sendall(b"220 catch ESMTP\r\n")
        data = None
        while True:
            line = f.readline()
            if not line:
                break
            cmd = line[:4].upper()
            if cmd == b"DATA":
                c.sendall(b"354 go\r\n")
                lines = []
                while True:
                    l = f.readline()
                    if l in (b".\r\n", b""):
                        break
                    lines.append(l[1:] if l.startswith(b".") else l)
                data = b"".join(lines)
                c.sendall(b"250 ok\r\n")
            elif cmd == b"QUIT":
                c.sendall(b"221 bye\r\n")
                break
            else:
                c.sendall(b"250 ok\r\n")
        got["data"] = data
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    subprocess.run(["/usr/sbin/smtp-source", "-m", "1", "-l", "4096",
                    "-M", "client.test", "-f", "sender@client.test",
                    "-t", "user1@example.com", f"127.0.0.1:{port}"],
                   check=True, timeout=30)
    t.join(10)
    ls.close()
    date = time.strftime("%a, %d %b %Y %H:%M:%S %z")
    recv = ("Received: from client.test ([127.0.0.1])\r\n\tby moat.bench.test "
            "(moat) with ESMTP id 6b0d799a0e2d0061\r\n\tfor "
            f"<user1@example.com>;\r\n\t{date}\r\n").encode()
    return recv + got["data"]


def spamd_once(addr, msg):
    t0 = time.monotonic()
    s = socket.create_connection(addr, timeout=30)
    s.sendall(b"SYMBOLS SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(msg)
              + msg)
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        reply += b
    s.close()
    return (time.monotonic() - t0) * 1e3, reply


def cmd_spamd(a):
    host, port = a.spamd.rsplit(":", 1)
    addr = (host, int(port))
    msg = catch_message()
    for _ in range(a.warmup):
        spamd_once(addr, msg)
    ms = []
    reply = b""
    for _ in range(a.n):
        m, reply = spamd_once(addr, msg)
        ms.append(m)
    head = [l for l in reply.decode("latin-1").split("\r\n")
            if l.startswith(("SPAMD/", "Spam:"))]
    print(f"message {len(msg)} bytes; spamd says: {'; '.join(head)}")
    print(summary("spamd (direct)", ms))


def cmd_json(a):
    q, sa, clam, over, res = [], [], [], [], {}
    for fn in a.files:
        for line in open(fn):
            if '"event":"transaction"' not in line:
                continue
            t = json.loads(line)
            if t["ms"]["queue"] < 0:
                continue
            res[t["result"][:3]] = res.get(t["result"][:3], 0) + 1
            q.append(t["ms"]["queue"])
            for e in t.get("evidence", []):
                if e["filter"] == "spamassassin":
                    sa.append(e["ms"])
                    over.append(t["ms"]["queue"] - e["ms"])
                elif e["filter"] == "clamav":
                    clam.append(e["ms"])
    print(f"results: {res}")
    print(summary("moat ms.queue", q))
    print(summary("moat spamassassin ms", sa))
    print(summary("moat clamav ms", clam))
    print(summary("queue - spamassassin", over))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("spamd")
    p.add_argument("--spamd", default="127.0.0.1:7830")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p = sub.add_parser("json")
    p.add_argument("files", nargs="+")
    a = ap.parse_args()
    {"spamd": cmd_spamd, "json": cmd_json}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
