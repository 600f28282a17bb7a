"""Greylisting at RCPT (docs/GREYLIST.md), with a short configured delay:
first attempt 451 with the retry time, an early retry 451, a retry after
the delay 250 with X-Greylist on the message, a retry from another
address of the same /24 passing, a relay (trusted) client never
greylisted, and moatctl greylist list/pass/remove on the same store."""
import os
import socket
import subprocess
import time

from moatlib import Client, dot_stuff, message

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOATCTL = os.path.join(ROOT, os.environ.get("MOATCTL", "build/moatctl"))

DELAY = 2
SECTIONS = {
    "pipeline": {"filters": "relay recipients greylist"},
    "greylist": {"delay": str(DELAY), "sweep_interval": "1"},
}


def client(port, src="127.0.0.1"):
    """An SMTP client whose connection comes from src (127.0.0.0/8)."""
    c = Client.__new__(Client)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(src, 0))
    c.buf = b""
    assert c.reply()[0] == 220
    c.cmd("EHLO client.example.org", 250)
    return c


def attempt(port, src="127.0.0.1", rcpt="alice@example.test",
            sender="news@lists.example.org", data=False):
    """One transaction up to RCPT (and the message when data and 250);
    -> (code, text of RCPT's reply)."""
    c = client(port, src)
    c.cmd(f"MAIL FROM:<{sender}>", 250)
    code, lines = c.cmd(f"RCPT TO:<{rcpt}>")
    if code == 250 and data:
        c.cmd("DATA", 354)
        c.send(dot_stuff(message("grey").encode()) + b".\r\n")
        assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    return code, lines[-1]


def ctl(m, *args):
    return subprocess.run([MOATCTL, "-c", m.conf, "greylist", *args],
                          capture_output=True, text=True, timeout=30)


def delivered_text(m, user="alice"):
    msgs = m.delivered(user)
    assert msgs, "nothing delivered"
    return msgs[-1].decode(errors="replace")


def test_first_early_then_passed(make_moat):
    m = make_moat(sections=SECTIONS)
    t0 = time.monotonic()
    code, text = attempt(m.port)
    assert code == 451 and "4.7.1" in text, text
    assert f"retry in {DELAY} seconds" in text, text
    code, text = attempt(m.port)            # too early
    assert code == 451 and "4.7.1" in text, text
    time.sleep(max(0, DELAY + 0.2 - (time.monotonic() - t0)))
    # A per-message sender (VERP-like digits, BATV) is the same sender.
    code, text = attempt(m.port, sender="prvs=1234abcdef=news@lists.example.org",
                         data=True)
    assert code == 250, text
    msg = delivered_text(m)
    assert "X-Greylist: delayed" in msg and " seconds" in msg
    log = m.log()
    assert "event=greylist action=defer" in log
    assert "event=greylist action=early" in log
    assert "event=greylist action=pass" in log
    # Passed: the next message goes through at once, with no header.
    code, _ = attempt(m.port, sender="other@elsewhere.example", data=True)
    assert code == 250
    assert "event=greylist action=known" in m.log()


def test_retry_from_same_net_passes(make_moat):
    m = make_moat(sections=SECTIONS)
    code, _ = attempt(m.port, src="127.0.0.1", rcpt="bob@example.test",
                      sender="bounce-4711@mailer.example.com")
    assert code == 451
    time.sleep(DELAY + 0.2)
    # Another address of the pool (/24), another bounce id.
    code, text = attempt(m.port, src="127.0.0.2", rcpt="bob@example.test",
                         sender="bounce-4712@mailer.example.com")
    assert code == 250, text
    # Another /24 is another pool: greylisted.
    code, _ = attempt(m.port, src="127.0.1.9", rcpt="bob@example.test",
                      sender="bounce-4713@mailer.example.com")
    assert code == 451


def test_trusted_client_not_greylisted(make_moat):
    m = make_moat(sections=dict(SECTIONS, relay={"networks": "nets"}),
                  files={"nets": "127.0.0.0/8\n"})
    code, text = attempt(m.port, data=True)
    assert code == 250, text
    assert "event=greylist" not in m.log()


def test_moatctl_list_pass_remove(make_moat):
    m = make_moat(sections=SECTIONS)
    assert attempt(m.port)[0] == 451
    r = ctl(m, "list")
    assert r.returncode == 0, r.stderr
    assert "triplet gl:t:net:127.0.0.0/24|news@lists.example.org|" \
        "alice@example.test first=" in r.stdout, r.stdout
    assert "alias   gl:a:ip:127.0.0.1|" in r.stdout
    # remove a pool: its triplets go; the next attempt is a first again.
    r = ctl(m, "remove", "net:127.0.0.0/24")
    assert r.returncode == 0 and "removed gl:t:net:127.0.0.0/24|" in r.stdout
    assert "gl:t:" not in ctl(m, "list").stdout
    assert ctl(m, "remove", "net:127.0.0.0/24").returncode == 1
    # pass: accepted at once, without waiting.
    r = ctl(m, "pass", "net:127.0.0.0/24")
    assert r.returncode == 0, r.stderr
    assert "pass    gl:p:net:127.0.0.0/24" in ctl(m, "list").stdout
    code, text = attempt(m.port, rcpt="bob@example.test")
    assert code == 250, text
    # remove the pass: greylisted again.
    assert ctl(m, "remove", "gl:p:net:127.0.0.0/24").returncode == 0
    assert attempt(m.port, rcpt="bob@example.test")[0] == 451
    assert ctl(m, "bogus").returncode == 2
