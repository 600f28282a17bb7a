#!/usr/bin/env python3
"""Worker memory under many large messages at once.

Starts moatd (one worker, Maildir delivery under a scratch folder), opens
N connections, and has every one send a message of SIZE MB through DATA
at the same time. Reports the worker's RSS before, its peak (VmHWM), the
messages delivered and the time taken. With message_memory (default 256K)
a message past it is spilled to an unlinked file under var_dir, so the
peak stays near N x (message_memory + buffers) however large the
messages are. Everything is on 127.0.0.1; the scratch folder is removed.

    make && bench/memory/bigmsg.py [--n 200] [--size-mb 20]
        [--message-memory 256K] [--budget 256M]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def reply(sock, buf):
    while True:
        while b"\r\n" not in buf[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf[0] += chunk
        line, buf[0] = buf[0].split(b"\r\n", 1)
        if line[3:4] != b"-":
            return int(line[:3])


def send_one(port, body, results, i, start):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=300)
        buf = [b""]
        assert reply(s, buf) == 220
        for cmd, want in ((b"EHLO bench.example", 250),
                          (b"MAIL FROM:<b@example.org>", 250),
                          (b"RCPT TO:<alice@example.test>", 250),
                          (b"DATA", 354)):
            s.sendall(cmd + b"\r\n")
            code = reply(s, buf)
            if code != want:
                results[i] = code
                return
        start.wait()
        s.sendall(body)
        results[i] = reply(s, buf)
        s.sendall(b"QUIT\r\n")
        s.close()
    except Exception as e:  # reported, not hidden
        results[i] = repr(e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size-mb", type=int, default=20)
    ap.add_argument("--message-memory", default="256K")
    ap.add_argument("--budget", default="256M")
    ap.add_argument("--moatd", default=os.path.join(ROOT, "build/moatd"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="moat-bigmsg-")
    port = free_port()
    conf = os.path.join(tmp, "moat.conf")
    with open(os.path.join(tmp, "users"), "w") as f:
        f.write("alice@example.test\n")
    with open(conf, "w") as f:
        f.write(f"""[server]
listen = 127.0.0.1:{port}
hostname = mx.example.test
workers = 1
var_dir = {tmp}/var
local_domains = example.test
log_level = warn
max_connections = {a.n + 50}
max_per_ip = {a.n + 50}
max_message_size = {a.size_mb + 2}M
message_memory = {a.message_memory}
message_memory_budget = {a.budget}

[recipients]
users = {tmp}/users

[delivery]
method = maildir
maildir = {tmp}/mail
""")
    proc = subprocess.Popen([a.moatd, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "stderr"), "w"))
    try:
        end = time.time() + 10
        worker = None
        while time.time() < end and worker is None:
            out = subprocess.run(["pgrep", "-P", str(proc.pid)],
                                 capture_output=True, text=True).stdout.split()
            worker = int(out[0]) if out else None
            time.sleep(0.05)
        time.sleep(0.3)
        line = b"x" * 76 + b"\r\n"
        body = (b"Subject: big\r\n\r\n" + line * (a.size_mb * 1024 * 1024 // 78)
                + b".\r\n")
        base_rss = status(worker, "VmRSS")
        results = [None] * a.n
        start = threading.Barrier(a.n + 1)
        threads = [threading.Thread(target=send_one,
                                    args=(port, body, results, i, start))
                   for i in range(a.n)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.time()
        peak_sampled = 0
        while any(t.is_alive() for t in threads):
            peak_sampled = max(peak_sampled, status(worker, "VmRSS"))
            time.sleep(0.05)
        took = time.time() - t0
        hwm = status(worker, "VmHWM")
        ok = sum(1 for r in results if r == 250)
        others = sorted({str(r) for r in results if r != 250})
        print(f"messages: {a.n} x {a.size_mb} MB, message_memory "
              f"{a.message_memory}, budget {a.budget}")
        print(f"delivered (250): {ok}/{a.n}; other replies: {others or '-'}")
        print(f"worker RSS before: {base_rss / 1024:.1f} MB; peak sampled: "
              f"{peak_sampled / 1024:.1f} MB; VmHWM: {hwm / 1024:.1f} MB")
        print(f"time: {took:.1f} s ({a.n * a.size_mb / took:.0f} MB/s)")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
