"""Workers die with their master: after `kill -9` of the master they stop
accepting at once, finish within a bounded time, and a new moatd on the
same port gets every connection (no orphan left in its SO_REUSEPORT
group)."""
import os
import signal
import time

from moatlib import Client, greet, message, send_one


def gone(pid):
    """True when pid has exited (a zombie waiting for init counts)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def wait_gone(pids, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_workers_die_with_master(make_moat):
    m = make_moat(server={"drain_timeout": "30"}, workers=2)
    workers = m.worker_pids()
    assert len(workers) == 2
    idle = greet(m.port)
    try:
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait(5)
        # An orphan drains: the idle session is told to come back ...
        assert idle.reply()[0] == 421
        # ... and the workers are gone well before drain_timeout.
        assert wait_gone(workers, 10), [p for p in workers if not gone(p)]
        assert "event=master_gone" in m.log()
        m2 = make_moat(start=False, server={
            "listen": f"127.0.0.1:{m.port}", "banner": "second"})
        m2.port = m.port
        m2.start()
        for _ in range(20):
            c = Client(m2.port)
            code, lines = c.reply()
            c.close()
            assert code == 220 and "second" in lines[0], lines
        assert send_one(m2.port)[0] == 250
        assert len(m2.delivered()) == 1 and m.delivered() == []
    finally:
        idle.close()
        for p in workers:
            if not gone(p):
                os.kill(p, signal.SIGKILL)


def test_orphan_finishes_in_flight_then_exits_soon(make_moat):
    """An orphan lets a transaction in flight end (its 250 is given only
    once the message is durable), and does not wait drain_timeout (30 s
    here) for a client that stalls mid-transaction."""
    m = make_moat(server={"drain_timeout": "30"}, workers=2)
    workers = m.worker_pids()
    busy, stalled = greet(m.port), greet(m.port)
    for c in (busy, stalled):
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
    try:
        t0 = time.time()
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait(5)
        busy.cmd("DATA", 354)
        busy.send(message() + ".\r\n")
        assert busy.reply()[0] == 250
        assert len(m.delivered()) == 1
        assert stalled.closed(timeout=15)
        assert wait_gone(workers, 15), [p for p in workers if not gone(p)]
        assert time.time() - t0 < 15
    finally:
        busy.close()
        stalled.close()
        for p in workers:
            if not gone(p):
                os.kill(p, signal.SIGKILL)
