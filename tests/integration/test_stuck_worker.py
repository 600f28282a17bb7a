"""A worker that stops making progress is killed and replaced, and the
connections the kernel queued on its SO_REUSEPORT socket meanwhile are
served by its heir rather than lost: with one of 2 workers stopped
(SIGSTOP), every one of 40 new connections is greeted within a bound.
Measured as connections greeted, not as a time."""
import os
import select
import signal
import socket
import time

from moatlib import Client, greet, send_one
from test_master_death import gone, wait_gone

CONNS = 40
BOUND = 15.0	# seconds; the heartbeat timeout below is 2


def greeted_within(port, n, bound):
    """Opens n connections at once; -> how many got a 220 within bound."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5)
             for _ in range(n)]
    t0 = time.time()
    got, pending, end = 0, {s.fileno(): s for s in socks}, t0 + bound
    try:
        while pending and time.time() < end:
            ready, _, _ = select.select(list(pending.values()), [], [],
                                        max(0.0, end - time.time()))
            for s in ready:
                del pending[s.fileno()]
                if s.recv(512).startswith(b"220"):
                    got += 1
                    last = time.time() - t0
    finally:
        for s in socks:
            s.close()
    print(f"{got} of {n} greeted within {bound} s, the last after "
          f"{last:.1f} s" if got else "none greeted")
    return got


def test_stopped_worker_is_replaced_and_its_queue_served(make_moat):
    m = make_moat(workers=2, server={"worker_heartbeat_timeout": "2",
                                     "max_per_ip": "100"})
    stopped, other = m.worker_pids()
    os.kill(stopped, signal.SIGSTOP)
    try:
        got = greeted_within(m.port, CONNS, BOUND)
        assert got == CONNS
        assert wait_gone([stopped], 5)
        assert "event=worker_stuck" in m.log() and \
            f"pid={stopped} gen=0 silent_ms=" in m.log()
        assert "reason=stuck restart_in=0s" in m.log()
        pids = m.worker_pids()
        assert len(pids) == 2 and other in pids and stopped not in pids
        assert send_one(m.port)[0] == 250
    finally:
        if not gone(stopped):
            os.kill(stopped, signal.SIGCONT)


def test_healthy_idle_workers_are_left_alone(make_moat):
    """Idle and busy-but-turning loops beat: nobody is killed with a
    short timeout, whatever the sessions do."""
    m = make_moat(workers=2, server={"worker_heartbeat_timeout": "1"})
    pids = sorted(m.worker_pids())
    idle = greet(m.port)
    end = time.time() + 3
    while time.time() < end:
        assert send_one(m.port)[0] == 250
        time.sleep(0.2)
    assert idle.cmd("NOOP")[0] == 250
    idle.close()
    assert sorted(m.worker_pids()) == pids
    assert "event=worker_stuck" not in m.log()


def test_zero_disables(make_moat):
    """0: never killed. The window is past when a 1 s timeout would have
    killed it (1 s and a 250 ms beat period)."""
    m = make_moat(workers=1, server={"worker_heartbeat_timeout": "0"})
    (w,) = m.worker_pids()
    os.kill(w, signal.SIGSTOP)
    try:
        time.sleep(1.6)
        assert m.worker_pids() == [w] and not gone(w)
        assert "event=worker_stuck" not in m.log()
    finally:
        os.kill(w, signal.SIGCONT)
    c = Client(m.port)
    assert c.reply()[0] == 220
    c.close()


def test_stuck_draining_worker_is_killed(make_moat):
    """After a reload an old worker drains; stopped, it would hold its
    region (and a reload's room) for ever. It is killed, nothing is
    restarted for it, and the new generation serves."""
    m = make_moat(workers=1, server={"worker_heartbeat_timeout": "2",
                                     "drain_timeout": "60"})
    (old,) = m.worker_pids()
    busy = greet(m.port)
    busy.cmd("MAIL FROM:<a@example.org>", 250)
    m.reload()
    end = time.time() + 10
    while time.time() < end and len(m.worker_pids()) < 2:
        time.sleep(0.05)
    os.kill(old, signal.SIGSTOP)
    try:
        assert wait_gone([old], 10)
        assert f"pid={old} gen=0 silent_ms=" in m.log()
        assert "reason=stuck" not in m.log()	# no restart for it
        assert len(m.worker_pids()) == 1
        assert send_one(m.port)[0] == 250
    finally:
        busy.close()
        if not gone(old):
            os.kill(old, signal.SIGCONT)
