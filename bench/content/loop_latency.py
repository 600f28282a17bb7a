#!/usr/bin/env python3
"""Loop latency of one moatd worker under content load (issue 13, item 8).

  bombs:  3 clients send 0.78 MB MIME bombs (deep nesting, 20,000 parts)
          in a loop; a fourth connection's NOOP round trips and new
          connections' greetings are timed on the same worker.
  train:  4 relay clients send to the training addresses in a loop over a
          store grown to about 1.9 M tokens; a fifth client's deliveries
          to a Maildir are timed (DATA's final dot to the 250).

  bench/content/loop_latency.py [--moatd B --moatctl C] [--seconds N]
      [--only bombs|train] [--bayes key=value ...]

Prints median, p99 and max in ms for each probe, and a quiet baseline.
Speed is measured here, never asserted in tests.
"""
import argparse
import os
import random
import shutil
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bombs  # noqa: E402


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else float("nan")


def summary(name, v):
    if not v:
        return f"{name:28s} n=0"
    return (f"{name:28s} n={len(v):5d} median={statistics.median(v):8.2f} "
            f"p99={pct(v, 99):8.2f} max={max(v):8.2f} ms")


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.f = self.s.makefile("rb")

    def reply(self):
        while True:
            line = self.f.readline()
            if not line:
                raise ConnectionError("closed")
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3])

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def dot(data):
    data = data.replace("\r\n.", "\r\n..")
    return (".." + data[1:] if data.startswith(".") else data).encode()


def transaction(port, rcpt, body):
    c = Conn(port)
    c.reply()
    c.cmd("EHLO bench.example.org")
    c.cmd("MAIL FROM:<b@example.org>")
    code = c.cmd(f"RCPT TO:<{rcpt}>")
    if code != 250:
        c.cmd("QUIT")
        c.close()
        return code, 0.0
    c.cmd("DATA")
    c.s.sendall(body)
    t0 = time.perf_counter()
    c.s.sendall(b".\r\n")
    code = c.reply()
    ms = (time.perf_counter() - t0) * 1e3
    c.cmd("QUIT")
    c.close()
    return code, ms


def start(tmp, moatd, extra):
    os.environ["MOATD"] = moatd
    import moatlib
    moatlib.MOATD = moatd
    bayes = {"min_spam": "1", "min_ham": "1",
             "spam_address": "spam@example.test",
             "ham_address": "ham@example.test"}
    bayes.update(extra)
    m = moatlib.Moat(tmp, workers=1, users=["alice@example.test"],
                     files={"nets": "127.0.0.0/8\n"},
                     server={"log_level": "info", "json_log": "off",
                             "timeout_filter": "120"},
                     sections={"pipeline": {"filters":
                                            "relay bayes recipients score"},
                               "relay": {"networks": "nets"},
                               "bayes": bayes})
    return m


def word(r):
    return "".join(r.choice(string.ascii_lowercase) for _ in range(9))


def grow_store(m, moatctl, tokens):
    """Learns synthetic messages until about `tokens` tokens are stored."""
    r = random.Random(13)
    per = 200
    n = tokens // per
    for cls in ("spam", "ham"):
        path = os.path.join(m.dir, cls + ".mbox")
        with open(path, "w") as f:
            for i in range(n // 2):
                words = " ".join(word(r) for _ in range(per))
                f.write(f"From x@example.org Mon Jan  1 00:00:00 2024\n"
                        f"From: {cls}{i}@example.org\nSubject: {cls} {i}\n"
                        f"Message-ID: <{cls}{i}@example.org>\n\n{words}\n\n")
        subprocess.run([moatctl, "-c", m.conf, "learn", "--" + cls, path],
                       check=True, capture_output=True)
    out = subprocess.run([moatctl, "-c", m.conf, "stats"], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().replace("\n", "; ")


def noop_probe(port, stop, out, greet):
    c = Conn(port)
    c.reply()
    c.cmd("EHLO probe.example.org")
    i = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        c.cmd("NOOP")
        out.append((time.perf_counter() - t0) * 1e3)
        i += 1
        if i % 10 == 0:
            t0 = time.perf_counter()
            g = Conn(port)
            g.reply()
            greet.append((time.perf_counter() - t0) * 1e3)
            g.cmd("QUIT")
            g.close()
        time.sleep(0.01)
    c.cmd("QUIT")
    c.close()


def bomb_client(port, stop, kinds, counts):
    i = 0
    while not stop.is_set():
        body = kinds[i % len(kinds)]
        code, _ = transaction(port, "alice@example.test", body)
        counts.append(code)
        i += 1


def run_bombs(args, tmp):
    m = start(os.path.join(tmp, "bombs"), args.moatd, dict(args.bayes))
    m.start()
    kinds = [dot(bombs.deep(800_000)), dot(bombs.wide(20_000))]
    res = {}
    for phase, nbomb in (("quiet", 0), ("3 bomb clients", 3)):
        stop = threading.Event()
        noop, greet, counts = [], [], []
        th = [threading.Thread(target=bomb_client,
                               args=(m.port, stop, kinds, counts))
              for _ in range(nbomb)]
        for t in th:
            t.start()
        time.sleep(0.5 if nbomb else 0)
        probe = threading.Thread(target=noop_probe,
                                 args=(m.port, stop, noop, greet))
        probe.start()
        time.sleep(args.seconds)
        stop.set()
        for t in th + [probe]:
            t.join()
        res[phase] = (noop, greet, counts)
        print(f"-- bombs, {phase}: {len(counts)} bombs answered "
              f"{sorted(set(counts))}")
        print(summary("  NOOP", noop))
        print(summary("  greeting", greet))
    m.stop()
    return res


def train_client(port, stop, k, counts):
    r = random.Random(k)
    i = 0
    while not stop.is_set():
        rcpt = "spam@example.test" if (i + k) % 2 else "ham@example.test"
        words = " ".join(word(r) for _ in range(50))
        body = (f"From: t{k}@example.org\r\nTo: {rcpt}\r\n"
                f"Subject: train {k} {i}\r\n\r\n{words}\r\n")
        code, _ = transaction(port, rcpt, dot(body))
        counts.append(code)
        i += 1
        if code != 250:
            time.sleep(0.05)


def delivery_probe(port, stop, out):
    i = 0
    while not stop.is_set():
        body = (f"From: p@example.org\r\nTo: alice@example.test\r\n"
                f"Subject: probe {i}\r\n\r\nhello there {i}\r\n")
        code, ms = transaction(port, "alice@example.test", dot(body))
        if code == 250:
            out.append(ms)
        i += 1
        time.sleep(0.1)


def run_train(args, tmp):
    m = start(os.path.join(tmp, "train"), args.moatd, dict(args.bayes))
    t0 = time.time()
    print("-- train: store", grow_store(m, args.moatctl, args.tokens),
          f"({time.time() - t0:.0f} s)")
    m.start()
    for phase, ntrain in (("quiet", 0), ("4 training clients", 4)):
        stop = threading.Event()
        lat, counts = [], []
        th = [threading.Thread(target=train_client,
                               args=(m.port, stop, k, counts))
              for k in range(ntrain)]
        for t in th:
            t.start()
        probe = threading.Thread(target=delivery_probe,
                                 args=(m.port, stop, lat))
        probe.start()
        time.sleep(args.seconds)
        stop.set()
        for t in th + [probe]:
            t.join()
        codes = {c: counts.count(c) for c in sorted(set(counts))}
        print(f"-- train, {phase}: training replies {codes}")
        print(summary("  delivery (dot to 250)", lat))
    refits = m.log().count("event=bayes_refit")
    print(f"   refits logged: {refits}")
    m.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moatd", default=os.path.join(ROOT, "build/moatd"))
    ap.add_argument("--moatctl", default=os.path.join(ROOT,
                                                       "build/moatctl"))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--tokens", type=int, default=1_900_000)
    ap.add_argument("--only", choices=("bombs", "train"))
    ap.add_argument("--bayes", action="append", default=[],
                    type=lambda s: tuple(s.split("=", 1)))
    args = ap.parse_args()
    args.moatd = os.path.abspath(args.moatd)
    args.moatctl = os.path.abspath(args.moatctl)
    print(f"moatd {args.moatd}, bayes {dict(args.bayes)}")
    tmp = tempfile.mkdtemp(prefix="moat-bench-content-")
    try:
        if args.only in (None, "bombs"):
            run_bombs(args, tmp)
        if args.only in (None, "train"):
            run_train(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
