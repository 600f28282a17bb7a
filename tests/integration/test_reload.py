"""The master's bookkeeping across reloads and shutdown, and reloads after
the privilege drop: every worker slot is respawned whatever generation it
runs, SIGHUP after SIGTERM is ignored, a reload reads root-only files
and reopens the log though the processes run as `user`, and a log that
cannot be opened is said loudly while the old one keeps being written."""
import os
import pwd
import shutil
import signal
import tempfile
import time

from moatlib import CERT, KEY, Client, greet, message, send_one


def wait_for(cond, timeout=10.0, what="condition"):
    """Polls cond() until it is true; fails after timeout seconds."""
    end = time.time() + timeout
    while time.time() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid):
    """Live (not zombie) children of pid, read from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = open(f"/proc/{name}/stat").read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(name))
    return sorted(out)


def banner(port):
    c = Client(port)
    try:
        code, lines = c.reply()
        assert code == 220, lines
        return lines[0]
    finally:
        c.close()


def write_conf(m, **srv):
    """Replaces moat.conf in one rename, so a reload still working on the
    previous SIGHUP never reads a half-written file."""
    path = m.conf
    m.conf = path + ".new"
    try:
        m.write_conf(dict(m.srv, **srv), m.secs)
    finally:
        m.conf = path
    os.rename(path + ".new", path)


def set_banner(m, text, **more):
    write_conf(m, banner=text, **more)
    m.reload()


def status_field(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return line.split()[1:]
    raise KeyError(key)


def test_hup_hup_with_session_in_flight(make_moat):
    """Two reloads while an old worker still drains a transaction: both
    slots get a worker of the newest config, and none is lost when the
    draining worker finally exits."""
    m = make_moat(server={"drain_timeout": "30"}, workers=2)
    first = set(children(m.proc.pid))
    assert len(first) == 2
    busy = greet(m.port)
    busy.cmd("MAIL FROM:<a@example.org>", 250)
    busy.cmd("RCPT TO:<alice@example.test>", 250)
    for text in ("second", "third"):
        set_banner(m, text)
        wait_for(lambda: text in banner(m.port), what=f"banner {text}")
    # Two workers of the third config, plus the one that holds `busy`.
    wait_for(lambda: len(children(m.proc.pid)) == 3, what="3 workers")
    draining = set(children(m.proc.pid)) & first
    assert len(draining) == 1, (children(m.proc.pid), first)
    for _ in range(10):
        assert "third" in banner(m.port)
    # The session in flight finishes its message on the old worker.
    busy.cmd("DATA", 354)
    busy.send(message() + ".\r\n")
    assert busy.reply()[0] == 250
    assert busy.cmd("NOOP")[0] == 421
    wait_for(lambda: not (set(children(m.proc.pid)) & draining),
             what="draining worker to exit")
    # Its exit costs no slot: still two workers, both serving.
    assert len(children(m.proc.pid)) == 2
    for _ in range(10):
        assert "third" in banner(m.port)
    assert send_one(m.port)[0] == 250
    assert len(m.delivered()) == 2
    assert "event=worker_died" not in m.log()


def test_quick_reloads_never_lose_a_slot(make_moat):
    """Five HUPs in a row, with no pause: the newest config ends up on
    exactly `workers` processes. Some SIGTERMs reach workers just forked,
    which must not reach the master instead."""
    m = make_moat(workers=2)
    for i in range(5):
        set_banner(m, f"quick{i}")
    wait_for(lambda: "quick4" in banner(m.port), what="last config")
    wait_for(lambda: len(children(m.proc.pid)) == 2, what="2 workers")
    for _ in range(10):
        assert "quick4" in banner(m.port)
    assert send_one(m.port)[0] == 250
    assert "event=stopping" not in m.log()


def test_hup_during_shutdown_is_ignored(make_moat):
    """After SIGTERM a SIGHUP starts nothing: the draining worker finishes
    its transaction and the master exits."""
    m = make_moat(server={"drain_timeout": "30"}, workers=2)
    first = set(children(m.proc.pid))
    busy = greet(m.port)
    busy.cmd("MAIL FROM:<a@example.org>", 250)
    busy.cmd("RCPT TO:<alice@example.test>", 250)
    m.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "event=stopping" in m.log(), what="stopping")
    set_banner(m, "too-late")
    m.reload()
    # Two HUPs in a row may arrive as one signal.
    wait_for(lambda: "event=reload_ignored" in m.log(),
             what="reload ignored")
    # No new worker: the idle one exits, the busy one drains.
    assert set(children(m.proc.pid)) <= first
    wait_for(lambda: len(children(m.proc.pid)) == 1, what="idle exit")
    assert set(children(m.proc.pid)) <= first
    assert "event=worker_started" not in m.log().split("event=stopping")[1]
    busy.cmd("DATA", 354)
    busy.send(message() + ".\r\n")
    assert busy.reply()[0] == 250
    assert busy.cmd("NOOP")[0] == 421
    assert m.proc.wait(10) == 0
    assert len(m.delivered()) == 1


def privileged_box():
    """A directory `nobody` may write (var and mail go there)."""
    box = tempfile.mkdtemp(prefix="moat-priv-")
    os.chmod(box, 0o777)
    return box


def test_reload_after_drop_reads_root_only_key(make_moat, tmp_path):
    """With `user = nobody`, a reload still reads a 0600 root-owned TLS key
    (and moat.conf in a 0700 root directory); STARTTLS works after it, on
    workers running as nobody with no capabilities."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    key = keys / "key.pem"
    shutil.copy(KEY, key)
    os.chmod(key, 0o600)
    os.chown(key, 0, 0)
    box = privileged_box()
    try:
        m = make_moat(server={"user": "nobody", "var_dir": box + "/var",
                              "tls_cert": CERT, "tls_key": str(key)},
                      sections={"delivery": {"maildir": box + "/mail"}})
        nobody = pwd.getpwnam("nobody").pw_uid
        set_banner(m, "reloaded")
        wait_for(lambda: "reloaded" in banner(m.port), what="reload")
        assert "event=reload_failed" not in m.log()
        wait_for(lambda: len(children(m.proc.pid)) == 2, what="2 workers")
        for pid in children(m.proc.pid):
            assert status_field(pid, "Uid") == [str(nobody)] * 4
            assert int(status_field(pid, "CapEff")[0], 16) == 0
            assert int(status_field(pid, "CapPrm")[0], 16) == 0
        # The master keeps CAP_DAC_OVERRIDE (bit 1) and nothing else.
        assert status_field(m.proc.pid, "Uid") == [str(nobody)] * 4
        assert int(status_field(m.proc.pid, "CapEff")[0], 16) == 1 << 1
        c = greet(m.port)
        c.starttls()
        c.cmd("EHLO tls.example.org", 250)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(message() + ".\r\n")
        assert c.reply()[0] == 250
        c.close()
        new = os.path.join(box, "mail", "example.test", "alice", "new")
        assert len(os.listdir(new)) == 1
    finally:
        shutil.rmtree(box, ignore_errors=True)


def test_reload_after_drop_reopens_rotated_log(make_moat):
    """A log rotated away (renamed) is recreated on SIGHUP even though the
    master runs as nobody and the log's directory is root's (0700)."""
    box = privileged_box()
    try:
        m = make_moat(server={"user": "nobody", "var_dir": box + "/var"},
                      sections={"delivery": {"maildir": box + "/mail"}})
        os.chmod(m.dir, 0o700)
        os.rename(m.log_path, m.log_path + ".1")
        m.reload()
        wait_for(lambda: "event=reloaded" in m.log(), what="new log")
        assert send_one(m.port)[0] == 250
        wait_for(lambda: "event=connect" in m.log(), what="worker lines")
        assert "event=reloaded" not in open(m.log_path + ".1").read()
    finally:
        shutil.rmtree(box, ignore_errors=True)


def test_reload_with_unopenable_log_keeps_old_log(make_moat):
    """A reload whose log cannot be opened fails as a whole, says so on
    stderr as well, and logging goes on in the old file."""
    m = make_moat()
    set_banner(m, "never", log="/nonexistent-moat-dir/moatd.log")
    stderr = os.path.join(m.dir, "stderr")
    wait_for(lambda: "/nonexistent-moat-dir/moatd.log" in
             open(stderr).read(), what="stderr message")
    assert "event=reload_failed" in open(stderr).read()
    assert "event=reload_failed" in m.log()
    assert "moat" in banner(m.port) and "never" not in banner(m.port)
    before = m.log().count("event=connect")
    assert send_one(m.port)[0] == 250
    wait_for(lambda: m.log().count("event=connect") > before,
             what="logging after the failed reload")
    # A good reload afterwards applies and still logs to the same file.
    set_banner(m, "fixed", log=m.log_path)
    wait_for(lambda: "fixed" in banner(m.port), what="good reload")
    assert "event=reloaded" in m.log()
