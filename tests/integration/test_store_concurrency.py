"""The store under concurrent writers (issue 11): two workers write
greylist triplets through their writer threads while moatctl, a third
process, adds blocks and greylist passes in the same LMDB at the same
time. Nothing may be lost or refused: every attempt gets its 451, every
triplet, block and pass is there afterwards, and the daemon keeps
serving."""
import concurrent.futures
import os
import subprocess

from moatlib import greet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOATCTL = os.path.join(ROOT, os.environ.get("MOATCTL", "build/moatctl"))

SENDERS = 4 * 15
BLOCKS = 30
PASSES = 10


def ctl(m, *args):
    return subprocess.run([MOATCTL, "-c", m.conf, *args],
                          capture_output=True, text=True, timeout=60)


def name(i):
    """A sender local part without digits (greylist folds digit runs)."""
    return "s" + chr(97 + i // 26) + chr(97 + i % 26)


def attempts(port, first, n):
    codes = []
    c = greet(port)
    for i in range(first, first + n):
        c.cmd(f"MAIL FROM:<{name(i)}@example.org>", 250)
        codes.append(c.cmd("RCPT TO:<alice@example.test>")[0])
        c.cmd("RSET", 250)
    c.cmd("QUIT", 221)
    return codes


def edits(m):
    out = []
    for i in range(1, BLOCKS + 1):
        out.append(ctl(m, "block", "add", f"192.0.2.{i}", "--reason",
                       f"concurrency {i}", "--ttl", "600"))
        if i <= PASSES:
            out.append(ctl(m, "greylist", "pass", f"ip:198.51.100.{i}"))
    return out


def test_two_workers_and_moatctl_write_at_once(make_moat):
    m = make_moat(workers=2, sections={
        "pipeline": {"filters": "relay recipients greylist karma"},
        "greylist": {"apply": "always", "delay": "600"}})
    with concurrent.futures.ThreadPoolExecutor(5) as ex:
        ed = ex.submit(edits, m)
        clients = [ex.submit(attempts, m.port, k * 15, 15) for k in range(4)]
        codes = [c for f in clients for c in f.result(timeout=120)]
        results = ed.result(timeout=120)
    assert codes == [451] * SENDERS, codes
    assert all(r.returncode == 0 for r in results), \
        [r.stderr for r in results if r.returncode]
    listed = ctl(m, "greylist", "list")
    assert listed.returncode == 0, listed.stderr
    for i in range(SENDERS):
        assert f"|{name(i)}@example.org|alice@example.test" in \
            listed.stdout, i
    for i in range(1, PASSES + 1):
        assert f"gl:p:ip:198.51.100.{i}\n" in listed.stdout or \
            f"gl:p:ip:198.51.100.{i} " in listed.stdout, i
    blocks = ctl(m, "block", "list")
    assert blocks.returncode == 0, blocks.stderr
    for i in range(1, BLOCKS + 1):
        assert f'192.0.2.{i} until=' in blocks.stdout, i
    # Still serving, and the retry of a stored triplet is recognised.
    c = greet(m.port)
    c.cmd(f"MAIL FROM:<{name(0)}@example.org>", 250)
    code, lines = c.cmd("RCPT TO:<alice@example.test>")
    assert code == 451 and "retry" in lines[-1].lower(), lines
    c.close()
