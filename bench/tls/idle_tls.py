#!/usr/bin/env python3
"""Memory of idle TLS sessions, and whether it is given back.

Starts moatd (one worker, a self-signed certificate from `make cert`),
opens N connections and on each says EHLO, STARTTLS, EHLO again over
TLS, then leaves them all idle. Reports, for the worker:

  rss/conn, pss/conn   (loaded - baseline) / N, in KiB
  rss after close      the worker's RSS once every session has closed
                       (its open descriptors are back to the baseline)

The baseline is taken after one warm-up STARTTLS session came and went,
so what OpenSSL and libevent set up once per process is not charged to
the sessions. --plain does the same without STARTTLS (EHLO twice), for
the figure to compare with; --tls12 caps the clients at TLS 1.2 (what
a server-side session cache would keep after the close). --haraka also runs Haraka (the npm package
the shared SMTP harness installs under /tmp/moat-bench, plugin `tls`,
one process) with the same certificate and client, and reports its one
node process the same way. Everything is on 127.0.0.1.

    make all cert && bench/tls/idle_tls.py --n 2000,10000 [--plain]
        [--moatd OTHER/build/moatd] [--haraka] [--label NAME]

It is a measurement, not a test: nothing is asserted. Run as root to
hold 10,000 connections (RLIMIT_NOFILE is raised to what it allows).
"""
import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CERT = os.path.join(ROOT, "var/tls/cert.pem")
KEY = os.path.join(ROOT, "var/tls/key.pem")
HARAKA = os.environ.get(
    "HARAKA", "/tmp/moat-bench/haraka-npm/node_modules/Haraka/bin/haraka")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def status_kib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(pid):
    return {"rss": status_kib(pid), "pss": pss_kib(pid), "fds": nfds(pid)}


def wait_port(port, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    while s.recv(512):
                        pass
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing answers on {port}")


def settle(pid, fds, linger, timeout=120.0):
    """Waits until pid is back to `fds` descriptors (every session it
    held has closed), then `linger` seconds more: moat gives freed heap
    back from a timer (every 2 s), not at each close."""
    end = time.time() + timeout
    while time.time() < end and nfds(pid) > fds:
        time.sleep(0.2)
    time.sleep(linger)


class Server:
    """A server under test: start() -> the pid whose memory is measured."""
    name = "?"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Moat(Server):
    def __init__(self, moatd, tmp, label):
        self.moatd, self.tmp, self.name = moatd, tmp, label
        self.port = free_port()
        self.proc = None

    def start(self, max_conn):
        conf = os.path.join(self.tmp, "moat.conf")
        with open(conf, "w") as f:
            f.write(f"""[server]
listen = 127.0.0.1:{self.port}
hostname = mx.bench.test
workers = 1
var_dir = {self.tmp}/var
local_domains = example.test
tls_cert = {CERT}
tls_key = {KEY}
log = {self.tmp}/moatd.log
log_level = warn
json_log = off
max_connections = {max_conn}
max_per_ip = {max_conn}
timeout_command = 3600

[delivery]
method = maildir
maildir = {self.tmp}/mail
""")
        self.proc = subprocess.Popen([self.moatd, "-c", conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.tmp, "stderr"), "w"))
        wait_port(self.port)
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)],
                             capture_output=True, text=True).stdout.split()
        if len(out) != 1:
            raise RuntimeError(f"expected one worker, found {out}")
        return int(out[0])


class Haraka(Server):
    """Haraka 3 from npm, one process (nodes=0), plugin tls only."""
    name = "haraka"

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.proc = None

    def start(self, max_conn):
        app = os.path.join(self.tmp, "haraka")
        cfg = os.path.join(app, "config")
        os.makedirs(os.path.join(app, "plugins"), exist_ok=True)
        shutil.copytree(os.path.join(os.path.dirname(HARAKA), "..", "config"),
                        cfg, dirs_exist_ok=True)
        shutil.copy(CERT, os.path.join(cfg, "tls_cert.pem"))
        shutil.copy(KEY, os.path.join(cfg, "tls_key.pem"))
        with open(os.path.join(cfg, "plugins"), "w") as f:
            f.write("tls\n")
        with open(os.path.join(cfg, "smtp.ini"), "w") as f:
            f.write(f"listen=127.0.0.1:{self.port}\ninactivity_timeout=3600\n"
                    "nodes=0\ndaemonize=false\n")
        with open(os.path.join(cfg, "log.ini"), "w") as f:
            f.write("[main]\nlevel=warn\ntimestamps=false\nformat=default\n")
        with open(os.path.join(cfg, "me"), "w") as f:
            f.write("mx.bench.test\n")
        with open(os.path.join(app, "package.json"), "w") as f:
            f.write('{"name":"haraka-tls-bench","private":true}\n')
        self.proc = subprocess.Popen(["/usr/bin/node", HARAKA, "-c", app],
                                     stdout=open(os.path.join(self.tmp, "haraka.log"), "w"),
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, 60)
        return self.proc.pid


async def reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return int(line[:3])


async def open_one(port, tls, ctx, held, sem, errors):
    async with sem:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if await reply(reader) != 220:
                raise ConnectionError("no greeting")
            writer.write(b"EHLO client.bench.test\r\n")
            await reply(reader)
            if tls:
                writer.write(b"STARTTLS\r\n")
                if await reply(reader) != 220:
                    raise ConnectionError("STARTTLS refused")
                await writer.start_tls(ctx)
            writer.write(b"EHLO client.bench.test\r\n")
            if await reply(reader) != 250:
                raise ConnectionError("EHLO refused")
            held.append(writer)
        except Exception as e:  # counted, not fatal: a bench reports
            errors.append(repr(e))


TLS12 = False


async def load(port, n, tls):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if TLS12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    held, errors = [], []
    sem = asyncio.Semaphore(64)
    await asyncio.gather(*(open_one(port, tls, ctx, held, sem, errors)
                           for _ in range(n)))
    return held, errors


async def close_all(held):
    for w in held:
        w.transport.abort()
    await asyncio.sleep(0.5)


def run_one(server, n, tls, linger):
    pid = server.start(n + 100)
    try:
        # Warm-up: one session of the same kind, so one-off set-up in the
        # server (libraries, tables) is in the baseline.
        async def warm():
            held, _ = await load(server.port, 1, tls)
            await close_all(held)
        asyncio.run(warm())
        fds0 = nfds(pid)
        settle(pid, fds0, linger)
        base = sample(pid)

        async def body():
            t0 = time.time()
            held, errors = await load(server.port, n, tls)
            setup = time.time() - t0
            await asyncio.sleep(2.0)
            loaded = sample(pid)
            await close_all(held)
            return len(held), errors, setup, loaded
        opened, errors, setup, loaded = asyncio.run(body())
        settle(pid, fds0, linger)
        after = sample(pid)
        k = max(opened, 1)
        return {
            "server": server.name, "tls": ("1.2" if TLS12 else "1.3") if tls else "no", "n": n, "opened": opened,
            "errors": len(errors), "first_error": errors[0] if errors else None,
            "setup_s": round(setup, 1),
            "rss_base_kib": base["rss"], "rss_loaded_kib": loaded["rss"],
            "rss_after_kib": after["rss"],
            "rss_per_conn_kib": round((loaded["rss"] - base["rss"]) / k, 2),
            "pss_per_conn_kib": round((loaded["pss"] - base["pss"]) / k, 2),
            "rss_after_minus_base_kib": after["rss"] - base["rss"],
            "fds_left": after["fds"] - fds0,
        }
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="2000,10000")
    ap.add_argument("--moatd", default=os.path.join(ROOT, "build/moatd"))
    ap.add_argument("--label", default="moat")
    ap.add_argument("--plain", action="store_true", help="no STARTTLS")
    ap.add_argument("--tls12", action="store_true",
                    help="clients offer TLS 1.2 at most (server-side cache)")
    ap.add_argument("--haraka", action="store_true", help="Haraka too")
    ap.add_argument("--no-moat", action="store_true")
    ap.add_argument("--linger", type=float, default=6.0,
                    help="seconds to wait after the last close [6]")
    ap.add_argument("--json", help="append one JSON line per run here")
    a = ap.parse_args()
    if not os.path.exists(CERT):
        sys.exit("no certificate: run `make cert`")
    global TLS12
    TLS12 = a.tls12
    sizes = [int(x) for x in a.n.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(sizes) + 1000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"{'server':<10} {'tls':<5} {'N':>6} {'opened':>6} {'base MiB':>8} "
          f"{'loaded MiB':>10} {'RSS/conn':>9} {'PSS/conn':>9} "
          f"{'after-base KiB':>14} {'setup s':>7}")
    for n in sizes:
        servers = []
        if not a.no_moat:
            servers.append(lambda t: Moat(a.moatd, t, a.label))
        if a.haraka:
            servers.append(lambda t: Haraka(t))
        for make in servers:
            tmp = tempfile.mkdtemp(prefix="moat-idle-tls-")
            try:
                r = run_one(make(tmp), n, not a.plain, a.linger)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(f"{r['server']:<10} {r['tls']:<5} {n:>6} {r['opened']:>6} "
                  f"{r['rss_base_kib']/1024:>8.1f} {r['rss_loaded_kib']/1024:>10.1f} "
                  f"{r['rss_per_conn_kib']:>9.2f} {r['pss_per_conn_kib']:>9.2f} "
                  f"{r['rss_after_minus_base_kib']:>14} {r['setup_s']:>7}"
                  + (f"  errors={r['errors']} {r['first_error']}" if r["errors"] else ""),
                  flush=True)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
