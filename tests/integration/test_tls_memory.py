"""TLS sessions give their memory back, and still work.

The memory of idle TLS sessions is measured in bench/tls/idle_tls.py;
here only what must hold: after many TLS sessions close, the worker's
resident memory comes back near where it was (moat trims the freed heap
from a timer, so the test waits for it, with no time limit asserted), and
a STARTTLS session still carries a message and ends with close_notify,
on a listening worker and under --stdio.
"""
import os
import ssl
import subprocess
import time

import pytest

from moatlib import MOATD, free_port, greet, message, wait_port

N = 200
# Generous: the sessions held about 3.5 MB (17 KiB each) and used to
# keep 7 MB after closing (38 KiB each); what may stay is heap that
# libevent's per-descriptor table pins (one small block per fd number).
RETURN_BOUND_KIB = 2048
UNDER_ASAN = "asan" in os.environ.get("MOATD", "") or "ASAN_OPTIONS" in os.environ


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(cond, timeout=60.0):
    """Polls cond() until it holds or timeout passes; -> its last value."""
    end = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() > end:
            return v
        time.sleep(0.2)


def tls_client(port, ragged_eof_ok=True):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = greet(port)
    c.cmd("STARTTLS", 220)
    c.sock = ctx.wrap_socket(c.sock, suppress_ragged_eofs=ragged_eof_ok)
    c.buf = b""
    c.cmd("EHLO tls.example.org", 250)
    return c


def deliver_over_tls(c, subject):
    c.cmd("MAIL FROM:<sender@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message(subject=subject) + ".\r\n")
    assert c.reply()[0] == 250


def one_worker(make_moat):
    m = make_moat(workers=1, server={"max_connections": str(N + 50),
                                     "max_per_ip": str(N + 50),
                                     "log_level": "warn"})
    pids = m.worker_pids()
    assert len(pids) == 1
    return m, pids[0]


@pytest.fixture
def production_allocator(monkeypatch):
    """Giving memory back is the production allocator's property: in the
    ASan pass (whose quarantine keeps freed memory) this test runs the
    plain build of the same tree, which make test builds first."""
    if UNDER_ASAN:
        import moatlib
        plain = os.path.join(moatlib.ROOT, "build/moatd")
        assert os.path.exists(plain), "the plain build is missing"
        monkeypatch.setattr(moatlib, "MOATD", plain)
        monkeypatch.delenv("ASAN_OPTIONS", raising=False)


def test_idle_tls_sessions_give_memory_back(make_moat, production_allocator):
    m, pid = one_worker(make_moat)
    fds0 = nfds(pid)			# idle: no session open
    # One session first, so what OpenSSL sets up once is in the baseline.
    c = tls_client(m.port)
    c.cmd("QUIT", 221)
    c.close()
    assert wait_until(lambda: nfds(pid) <= fds0)
    time.sleep(3)			# a trim period: the baseline settles
    base = rss_kib(pid)

    held = [tls_client(m.port) for _ in range(N)]
    assert wait_until(lambda: nfds(pid) >= fds0 + N)
    loaded = rss_kib(pid)
    for c in held:
        c.close()
    assert wait_until(lambda: nfds(pid) <= fds0)

    after = wait_until(lambda: (lambda r: r if r <= base + RETURN_BOUND_KIB
                                else 0)(rss_kib(pid)), timeout=30)
    assert after, (f"worker RSS {rss_kib(pid)} KiB after {N} TLS sessions "
                   f"closed; baseline {base}, loaded {loaded}")

    # The worker still takes TLS sessions and delivers their mail.
    c = tls_client(m.port)
    deliver_over_tls(c, "after-burst")
    c.cmd("QUIT", 221)
    assert any(b"Subject: after-burst" in d for d in m.delivered("alice"))


def test_starttls_delivers_and_closes_with_close_notify(moat):
    c = tls_client(moat.port, ragged_eof_ok=False)
    deliver_over_tls(c, "tls-memory")
    got = moat.delivered("alice")
    assert len(got) == 1 and b"with ESMTPS (TLSv1." in got[0]
    # QUIT: the 221, then close_notify: b"" (a cut would raise
    # SSLEOFError, as ragged EOFs are not suppressed here).
    c.cmd("QUIT", 221)
    c.sock.settimeout(10)
    assert c.sock.recv(1024) == b""


def test_starttls_over_stdio_under_tcpserver(moat):
    """--stdio keeps its descriptor (fd 0 is not the session's to close):
    TLS is then layered over the plain bufferevent, and works the same."""
    port = free_port()
    p = subprocess.Popen(["tcpserver", "-R", "-H", "127.0.0.1", str(port),
                          MOATD, "-c", moat.conf, "--stdio"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        c = tls_client(port, ragged_eof_ok=False)
        deliver_over_tls(c, "stdio-tls")
        c.cmd("QUIT", 221)
        c.sock.settimeout(10)
        assert c.sock.recv(1024) == b""
        got = moat.delivered("alice")
        assert len(got) == 1 and b"with ESMTPS (TLSv1." in got[0]
    finally:
        p.terminate()
        p.wait(5)
