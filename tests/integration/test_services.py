"""`moatctl services`: each worker's view of the external services, from
the health files workers keep under <var_dir>/svc. A clamd that is not
there goes down after down_after failures, and moatctl says so."""
import os
import subprocess

from moatlib import ROOT, dot_stuff, free_port, greet, message

MOATCTL_PATH = os.path.join(ROOT, os.environ.get("MOATCTL", "build/moatctl"))


def send(port):
    c = greet(port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(dot_stuff(message().encode()) + b".\r\n")
    code, _ = c.reply()
    c.cmd("QUIT", 221)
    return code


def services(m):
    return subprocess.run([MOATCTL_PATH, "-c", m.conf, "services"],
                          capture_output=True, text=True, timeout=30)


def test_services_show_a_clamd_that_is_down(make_moat):
    m = make_moat(workers=1, sections={
        "pipeline": {"filters": "relay recipients clamav"},
        "clamav": {"address": f"127.0.0.1:{free_port()}",
                   "connect_timeout": "300", "down_after": "2",
                   "fail": "defer"}})
    out = services(m)
    assert out.returncode == 0 and "no service used yet" in out.stdout
    for _ in range(3):
        assert send(m.port) == 451          # fail mode defer
    out = services(m)
    assert out.returncode == 0, out.stderr
    line = [l for l in out.stdout.splitlines() if "service=clamd" in l]
    assert len(line) == 1 and "state=down" in line[0], out.stdout
    assert "failures=" in line[0] and "requests=" in line[0]
    # Gone with its worker.
    m.stop()
    out = services(m)
    assert "service=clamd" not in out.stdout
