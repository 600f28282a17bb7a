"""A session that outlives drain_timeout is closed and the worker exits
cleanly, leaking nothing (the suite runs under LeakSanitizer too): after
SIGTERM, after a reload and when the master is gone."""
import os
import signal

from moatlib import greet
from test_master_death import gone, wait_gone


def in_transaction(m):
    c = greet(m.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    return c


def test_sigterm(make_moat):
    m = make_moat(server={"drain_timeout": "1"}, workers=1)
    c = in_transaction(m)
    m.proc.send_signal(signal.SIGTERM)
    assert c.closed(timeout=10)
    assert m.proc.wait(10) == 0
    assert "event=drain_timeout sessions=1" in m.log()


def test_reload(make_moat):
    m = make_moat(server={"drain_timeout": "1"}, workers=1)
    old = m.worker_pids()
    c = in_transaction(m)
    m.reload()
    assert c.closed(timeout=10)
    assert wait_gone(old, 10)
    assert "event=drain_timeout sessions=1" in m.log()
    assert f"pid={old[0]} gen=0 status=0" in m.log()


def test_orphan(make_moat):
    m = make_moat(server={"drain_timeout": "1"}, workers=1)
    old = m.worker_pids()
    c = in_transaction(m)
    try:
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait(5)
        assert c.closed(timeout=10)
        assert wait_gone(old, 10)
        assert "event=drain_timeout sessions=1" in m.log()
    finally:
        for p in old:
            if not gone(p):
                os.kill(p, signal.SIGKILL)
