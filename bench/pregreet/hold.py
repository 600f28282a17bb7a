#!/usr/bin/env python3
"""Clients held in the pre-greeting wait, at once.

Starts moatd (one worker, pregreet_wait 60 s so nobody leaves the wait
during the run), opens N connections from 127.0.0.1 that read the "220-"
teaser and stay, then runs a normal client from 127.0.0.2 (a relay
network address: trusted clients are not made to wait) through whole
transactions. Reports the worker's RSS per waiting client and the normal
client's transaction latency (median and max over the runs), with and
without the N waiting. Everything is on 127.0.0.1/8.

    make && bench/pregreet/hold.py [--n 5000] [--runs 20]
"""
import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def transaction(port):
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=30,
                                 source_address=("127.0.0.2", 0))
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return int(line[:3])
    assert reply() == 220
    for cmd, want in ((b"EHLO bench.example", 250),
                      (b"MAIL FROM:<b@example.org>", 250),
                      (b"RCPT TO:<alice@example.test>", 250),
                      (b"DATA", 354)):
        s.sendall(cmd + b"\r\n")
        assert reply() == want, cmd
    s.sendall(b"Subject: x\r\n\r\nhi\r\n.\r\n")
    assert reply() == 250
    s.sendall(b"QUIT\r\n")
    reply()
    s.close()
    return (time.perf_counter() - t0) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--moatd", default=os.path.join(ROOT, "build/moatd"))
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = tempfile.mkdtemp(prefix="moat-pregreet-")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with open(os.path.join(tmp, "users"), "w") as f:
        f.write("alice@example.test\n")
    with open(os.path.join(tmp, "relay"), "w") as f:
        f.write("127.0.0.2/32\n")
    conf = os.path.join(tmp, "moat.conf")
    with open(conf, "w") as f:
        f.write(f"""[server]
listen = 127.0.0.1:{port}
hostname = mx.example.test
workers = 1
var_dir = {tmp}/var
local_domains = example.test
log_level = warn
max_connections = {a.n + 100}
max_per_ip = {a.n + 100}
pregreet_wait = 60000
pregreet_busy = 0
listen_backlog = {a.n + 100}

[relay]
networks = {tmp}/relay

[recipients]
users = {tmp}/users

[delivery]
method = maildir
maildir = {tmp}/mail
""")
    proc = subprocess.Popen([a.moatd, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "stderr"), "w"))
    held = []
    try:
        end = time.time() + 10
        worker = None
        while worker is None and time.time() < end:
            out = subprocess.run(["pgrep", "-P", str(proc.pid)],
                                 capture_output=True, text=True).stdout.split()
            worker = int(out[0]) if out else None
            time.sleep(0.05)
        time.sleep(0.5)
        alone = [transaction(port) for _ in range(a.runs)]
        base = rss_kb(worker)
        t0 = time.time()
        for i in range(a.n):
            c = socket.create_connection(("127.0.0.1", port), timeout=30)
            held.append(c)
        teased = 0
        for c in held:
            if c.recv(100).startswith(b"220-"):
                teased += 1
        setup = time.time() - t0
        loaded = rss_kb(worker)
        busy = [transaction(port) for _ in range(a.runs)]
        print(f"waiting clients: {teased}/{a.n} got the 220- teaser "
              f"({setup:.1f} s to open)")
        print(f"worker RSS: {base / 1024:.1f} MB -> {loaded / 1024:.1f} MB: "
              f"{(loaded - base) / max(teased, 1):.2f} KB per waiting client")
        print(f"normal client, whole transaction (ms): alone median "
              f"{statistics.median(alone):.1f} max {max(alone):.1f}; with "
              f"{teased} waiting median {statistics.median(busy):.1f} "
              f"max {max(busy):.1f}")
    finally:
        for c in held:
            c.close()
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
