"""Forwarding under hostile timing and hostile backends: a client reset
racing the backend's 354, the DATA termination timeout, clear text after
the backend's STARTTLS 220, and cancelling a delivery step when the client
goes away (the backend link closed, a qmail-queue child killed)."""
import os
import socket
import struct
import threading
import time

from backends import Backend, wait_until
from moatlib import CERT, KEY, greet, message, send_one


def forward_to(make_moat, port, delivery=None, **kw):
    d = {"method": "smtp", "route": f"127.0.0.1:{port}"}
    d.update(delivery or {})
    return make_moat(sections={"delivery": d, "recipients": {"users": ""}},
                     **kw)


def reset(c):
    """Closes with a TCP RST (SO_LINGER 0) instead of a FIN."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      struct.pack("ii", 1, 0))
    c.sock.close()


def test_reset_racing_the_backend_354(make_moat):
    """The client sends its message and resets the connection just as the
    backend's 354 comes: the transaction (and its message) is gone when
    the 354 is read, which must neither read freed memory nor send half a
    message. Run under ASan (MOATD=build/asan/moatd): the fixture fails on
    any report; the worker must stay the same process."""
    be = Backend()
    at_data = threading.Event()
    rst_sent = threading.Event()

    def on_data(conn):
        at_data.set()
        rst_sent.wait(5)
    be.on_data = on_data
    try:
        m = forward_to(make_moat, be.port, server={"workers": "1"})
        pids = m.worker_pids()
        for i in range(30):
            at_data.clear()
            rst_sent.clear()
            c = greet(m.port)
            c.cmd("MAIL FROM:<a@example.org>", 250)
            c.cmd("RCPT TO:<alice@example.test>", 250)
            c.cmd("DATA", 354)
            c.send(message(subject=f"rst{i}") + ".\r\n")
            assert at_data.wait(5)
            if i % 3 == 1:
                time.sleep(0.0005 * (i % 5))
            reset(c)
            rst_sent.set()
        # No message was delivered without the client hearing 250...
        assert wait_until(lambda: all(x.closed for x in be.conns), 5)
        assert be.messages == []
        # ... and the same worker still serves.
        be.on_data = lambda conn: None
        assert send_one(m.port)[0] == 250
        assert m.worker_pids() == pids
    finally:
        be.close()


def test_data_end_timeout_is_its_own(make_moat):
    """RFC 5321 §4.5.3.2.6: the reply to the final dot gets its own,
    longer timeout (timeout_data_end), not the per-command one."""
    be = Backend()

    def slow(rcpts, data):
        time.sleep(2.5)
        return [b"250 2.0.0 saved"]
    be.on_final = slow
    try:
        m = forward_to(make_moat, be.port, delivery={
            "timeout": "1", "timeout_data_end": "6"})
        assert send_one(m.port)[0] == 250
        assert len(be.messages) == 1
        # The per-command timeout still holds for the other replies.
        be.on_rcpt = lambda r: (time.sleep(2.5), b"250 2.1.5 ok")[1]
        c = greet(m.port)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        code, lines = c.cmd("RCPT TO:<alice@example.test>")
        assert code == 451 and "4.4.1" in lines[0], lines
        c.cmd("QUIT")
        c.close()
    finally:
        be.close()


def test_data_end_timeout_default_is_ten_minutes():
    import subprocess
    from moatlib import MOATD
    out = subprocess.run([MOATD, "--defaults"], capture_output=True,
                         text=True, timeout=10).stdout
    assert "\ntimeout_data_end = 600\n" in out


def test_backend_starttls_clear_text_after_220(make_moat):
    """CVE-2011-0411, client side: "250 injected" arrives in clear text in
    the same segment as the 220; it must not be taken for a reply that
    came over TLS. moat refuses the link: 451 4.4.1, no MAIL sent."""
    be = Backend(tls_cert=CERT, tls_key=KEY)
    be.on_starttls = lambda s: b"220 2.0.0 go\r\n250 injected\r\n"
    try:
        m = forward_to(make_moat, be.port)
        c = greet(m.port)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        code, lines = c.cmd("RCPT TO:<alice@example.test>")
        assert code == 451 and "4.4.1" in lines[0], lines
        c.cmd("QUIT")
        c.close()
        assert not any(cmd.startswith(b"MAIL") for x in be.conns
                       for cmd in x.commands)
        assert wait_until(lambda: "clear text after the STARTTLS 220" in m.log())
        # A well-behaved TLS backend still works.
        be.on_starttls = lambda s: b"220 2.0.0 go\r\n"
        assert send_one(m.port)[0] == 250
        assert be.conns[-1].tls
    finally:
        be.close()


def test_client_gone_mid_rcpt_closes_backend_link(make_moat):
    """The client vanishes while the backend has not answered RCPT: the
    backend link is closed, not reset and pooled with a reply in flight."""
    be = Backend()
    release = threading.Event()
    be.on_rcpt = lambda r: (release.wait(5), b"250 2.1.5 ok")[1]
    try:
        m = forward_to(make_moat, be.port, server={"workers": "1"})
        c = greet(m.port)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.send("RCPT TO:<alice@example.test>\r\n")
        assert wait_until(lambda: be.conns and any(
            x.startswith(b"RCPT") for x in be.conns[0].commands))
        reset(c)
        assert wait_until(lambda: "event=backend_abort" in m.log())
        release.set()
        assert wait_until(lambda: be.conns[0].closed, 3)
        assert not any(x.startswith(b"RSET") for x in be.conns[0].commands)
        # The next client gets a fresh link and its mail through.
        be.on_rcpt = lambda r: b"250 2.1.5 ok"
        assert send_one(m.port)[0] == 250
        assert len(be.conns) == 2
    finally:
        release.set()
        be.close()


def test_client_gone_mid_message_closes_backend_link(make_moat):
    """The client vanishes while the backend holds the message: the link
    is closed (the backend may still deliver; moat never said 250)."""
    be = Backend()
    release = threading.Event()

    def final(rcpts, data):
        release.wait(5)
        return [b"250 2.0.0 saved"]
    be.on_final = final
    try:
        m = forward_to(make_moat, be.port, server={"workers": "1"})
        c = greet(m.port)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(message() + ".\r\n")
        assert wait_until(lambda: be.conns and any(
            x.startswith(b"DATA") for x in be.conns[0].commands))
        time.sleep(0.1)
        reset(c)
        assert wait_until(lambda: "event=backend_abort" in m.log())
        release.set()
        assert wait_until(lambda: be.conns[0].closed, 3)
        be.on_final = lambda rcpts, data: [b"250 2.0.0 saved"]
        assert send_one(m.port)[0] == 250
    finally:
        release.set()
        be.close()


def test_client_gone_kills_qmail_queue(make_moat, tmp_path):
    """qmail-queue still reading when the client goes: the child is
    killed before it can queue a message the client will send again."""
    qq = tmp_path / "qq"
    qq.mkdir()
    prog = qq / "qmail-queue"
    prog.write_text(
        "#!/bin/sh\n"
        f"echo $$ > {qq}/pid\n"
        "cat > /dev/null\n"
        "sleep 3\n"
        f"touch {qq}/queued\n"
        "exit 0\n")
    os.chmod(prog, 0o755)
    m = make_moat(sections={"delivery": {"method": "qmail-queue",
                                         "qmail_queue": str(prog)}})
    c = greet(m.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message() + ".\r\n")
    assert wait_until(lambda: (qq / "pid").exists())
    reset(c)
    pid = None
    assert wait_until(lambda: (qq / "pid").read_text().strip() != "")
    pid = int((qq / "pid").read_text())

    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    assert wait_until(gone, 2.5)
    time.sleep(0.8)
    assert not (qq / "queued").exists()
    assert wait_until(lambda: "cancelled=yes" in m.log())
