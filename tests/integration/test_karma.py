"""The adaptive blacklist and greytraps (docs/FILTERS.md, "karma"), with
attempts=3, a 60 s window and ratio 0.5: a client sending to unknown
recipients is blocked and its next connection refused at connect; a
greytrap hit blocks at once; delay-deny (at_rcpt) keeps postmaster@
reachable; moatctl block add/list/remove against the running daemon; a
relay client is never blocked."""
import os
import socket
import subprocess
import time

from moatlib import Client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOATCTL = os.path.join(ROOT, os.environ.get("MOATCTL", "build/moatctl"))

SECTIONS = {
    "pipeline": {"filters": "relay recipients karma"},
    "karma": {"attempts": "3", "window": "60", "ratio": "0.5",
              "block": "600", "greytraps": "traps"},
}
FILES = {"traps": "trap@example.test\n"}


def connect(port, src):
    """-> (Client, greeting code, greeting text)."""
    c = Client.__new__(Client)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(src, 0))
    c.buf = b""
    code, lines = c.reply()
    return c, code, " ".join(lines)


def session(port, src, rcpts):
    """One transaction to rcpts, then QUIT; -> [RCPT reply codes]."""
    c, code, text = connect(port, src)
    assert code == 220, text
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    codes = [c.cmd(f"RCPT TO:<{r}>")[0] for r in rcpts]
    c.cmd("QUIT", 221)
    c.close()
    return codes


def refused_at_connect(port, src, wait=3.0):
    """The greeting's text when the connection is refused (554) within
    wait seconds (the block is written by the store's writer thread),
    else None."""
    end = time.monotonic() + wait
    while True:
        c, code, text = connect(port, src)
        c.close()
        if code == 554:
            return text
        if time.monotonic() > end:
            return None
        time.sleep(0.1)


def ctl(m, *args):
    return subprocess.run([MOATCTL, "-c", m.conf, "block", *args],
                          capture_output=True, text=True, timeout=30)


def test_unknown_recipients_block(make_moat):
    m = make_moat(sections=SECTIONS, files=FILES)
    src = "127.0.0.2"
    # Three bad attempts of three: not more than `attempts` yet.
    assert session(m.port, src, [f"nobody{i}@example.test"
                                 for i in range(3)]) == [550] * 3
    c, code, _ = connect(m.port, src)
    assert code == 220
    c.close()
    assert "event=karma action=block" not in m.log()
    # A fourth bad one: blocked at the next recipient already (the
    # unknown ones are refused by recipients, which runs first).
    assert session(m.port, src, ["nobody3@example.test", "alice@example.test",
                                 "nobody4@example.test"]) == [550, 554, 550]
    text = refused_at_connect(m.port, src)
    assert text is not None, m.log()
    assert "5.7.1" in text and "bad of" in text and "try again in" in text
    assert "event=karma action=block ip=127.0.0.2" in m.log()
    # Another client is not blocked.
    c, code, _ = connect(m.port, "127.0.0.3")
    assert code == 220
    c.close()
    assert "127.0.0.2 until=" in ctl(m, "list").stdout


def test_mostly_good_not_blocked(make_moat):
    m = make_moat(sections=SECTIONS, files=FILES)
    src = "127.0.0.4"
    # 6 attempts, 2 bad: under the ratio.
    session(m.port, src, ["alice@example.test", "bob@example.test",
                          "nobody@example.test", "alice@example.test",
                          "bob@example.test", "nobody2@example.test"])
    assert refused_at_connect(m.port, src, wait=0.5) is None


def test_greytrap_blocks_at_once(make_moat):
    m = make_moat(sections=SECTIONS, files=FILES)
    src = "127.0.0.5"
    c, code, _ = connect(m.port, src)
    assert code == 220
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    assert c.cmd("RCPT TO:<trap@example.test>")[0] == 550
    # The next recipient of the same session is refused already.
    text = c.text("RCPT TO:<alice@example.test>")
    assert text.startswith("554 5.7.1") and "greytrap" in text, text
    c.cmd("QUIT", 221)
    c.close()
    text = refused_at_connect(m.port, src)
    assert text is not None and "greytrap" in text, m.log()
    assert "event=karma action=greytrap ip=127.0.0.5" in m.log()


def test_at_rcpt_keeps_postmaster(make_moat):
    secs = dict(SECTIONS, karma=dict(SECTIONS["karma"], at_rcpt="yes"))
    m = make_moat(sections=secs, files=FILES,
                  users=["alice@example.test", "postmaster@example.test"])
    src = "127.0.0.6"
    r = ctl(m, "add", src, "--reason", "test block", "--ttl", "60")
    assert r.returncode == 0, r.stderr
    c, code, _ = connect(m.port, src)
    assert code == 220
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    text = c.text("RCPT TO:<alice@example.test>")
    assert text.startswith("554 5.7.1") and "test block" in text, text
    assert c.cmd("RCPT TO:<postmaster@example.test>")[0] == 250
    c.cmd("QUIT", 221)


def test_moatctl_block_add_remove(make_moat):
    m = make_moat(sections=SECTIONS, files=FILES)
    src = "127.0.0.7"
    r = ctl(m, "add", src, "--reason", "manual test", "--ttl", "60")
    assert r.returncode == 0, r.stderr
    text = refused_at_connect(m.port, src, wait=0.5)
    assert text is not None and "manual test" in text
    assert "try again in" in text and "5.7.1" in text
    r = ctl(m, "list")
    assert r.returncode == 0
    assert f'{src} until=' in r.stdout and 'reason="manual test"' in r.stdout
    r = ctl(m, "remove", src)
    assert r.returncode == 0, r.stderr
    c, code, _ = connect(m.port, src)
    assert code == 220
    c.close()
    assert ctl(m, "remove", src).returncode == 1
    assert ctl(m, "add", "not-an-ip").returncode == 2
    assert ctl(m, "add", src, "--ttl", "x").returncode == 2


def test_relay_client_never_blocked(make_moat):
    m = make_moat(sections=dict(SECTIONS, relay={"networks": "nets"}),
                  files=dict(FILES, nets="127.0.0.0/8\n"))
    src = "127.0.0.8"
    session(m.port, src, [f"nobody{i}@example.test" for i in range(6)] +
            ["trap@example.test"])
    assert refused_at_connect(m.port, src, wait=0.5) is None
    assert "event=karma action=block" not in m.log()
