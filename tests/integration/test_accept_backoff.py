"""At the descriptor limit a worker pauses accepting instead of spinning
on accept(): under `prlimit --nofile=64:64` with more connections held
than fit, its CPU time and what it logs stay small (measured over a
window, not timed), and a new client is greeted once the others close."""
import os
import socket
import subprocess
import time

from moatlib import MOATD, Client, wait_port

HELD = 100
WINDOW = 2.0


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def output_size(m):
    return sum(os.path.getsize(os.path.join(m.dir, n))
               for n in ("stderr", "moatd.log")
               if os.path.exists(os.path.join(m.dir, n)))


def start_limited(m, nofile):
    m.proc = subprocess.Popen(["prlimit", f"--nofile={nofile}:{nofile}",
                               MOATD, "-c", m.conf],
                              stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(m.dir, "stderr"), "w"))
    wait_port(m.port)


def wait_for(pred, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_descriptor_limit_pauses_accept(make_moat):
    m = make_moat(start=False, workers=1,
                  server={"max_per_ip": "1000", "max_connections": "1000"})
    start_limited(m, 64)
    (worker,) = m.worker_pids()
    assert "event=nofile_low limit=64 max_connections=1000" in m.log()
    held = []
    try:
        for _ in range(HELD):
            held.append(socket.create_connection(("127.0.0.1", m.port),
                                                 timeout=10))
        assert wait_for(lambda: "event=accept_paused errno=EMFILE"
                        in m.log()), m.log()[-2000:]
        cpu0, out0, t0 = cpu_seconds(worker), output_size(m), time.time()
        time.sleep(WINDOW)
        cpu = cpu_seconds(worker) - cpu0
        grew = output_size(m) - out0
        span = time.time() - t0
        print(f"worker cpu {cpu:.2f} s and log {grew} bytes in {span:.1f} s")
        # Spinning was 100 % of a core and ~30 MB/s of log.
        assert cpu < 0.25 * span, cpu
        assert grew < 4096, grew
        assert m.log().count("event=accept_paused") <= 2 + 2 * span / 0.1
    finally:
        for s in held:
            s.close()
    # The backlog drains (the held clients are gone) and a new client is
    # served: a pause ends by itself, or early when a session closes.
    c = Client(m.port, timeout=15)
    try:
        assert c.reply()[0] == 220
        c.cmd("QUIT", 221)
    finally:
        c.close()
    assert m.worker_pids() == [worker]
