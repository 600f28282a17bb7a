"""The adaptive blacklist and greytraps (docs/FILTERS.md, "karma"). With
the defaults (more than 10 connections in an hour, the bad share's Wilson
lower bound over a half): 9 bad connections of 11 block, 6 of 11 do not.
With attempts=3, a 60 s window and the plain share: a client sending to
unknown recipients is blocked and its next connection refused at
connect; the block ends after its (short) time and a repeat offender is
blocked for twice as long; an early talker's connection counts as bad
and its history is KARMA_BAD evidence; a greytrap hit blocks at once;
delay-deny (at_rcpt) keeps postmaster@ reachable; moatctl block
add/list/remove and moatctl client against the running daemon;
connections refused by the rate limit at connect count as bad, and a
client blocked already is not blocked twice; a relay client is never
blocked."""
import json
import os
import socket
import subprocess
import time

from moatlib import MOATD, Client, dot_stuff, message

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOATCTL = os.path.join(ROOT, os.environ.get("MOATCTL", "build/moatctl"))

SECTIONS = {
    "pipeline": {"filters": "relay recipients karma"},
    "karma": {"attempts": "3", "window": "60", "ratio": "0.5",
              "ratio_z": "0", "block": "600", "greytraps": "traps"},
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


def good_session(port, src):
    """One message to alice, delivered: a good connection."""
    c, code, text = connect(port, src)
    assert code == 220, text
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(dot_stuff(message().encode()) + b".\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    c.close()


def client_json(m, ip, want=None, wait=5.0):
    """moatctl client IP --json, polled (a connection is counted at its
    disconnect, on the daemon's side) until want(answer) holds."""
    end = time.monotonic() + wait
    while True:
        r = subprocess.run([MOATCTL, "-c", m.conf, "client", ip, "--json"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout)
        if want is None or want(j) or time.monotonic() > end:
            return j
        time.sleep(0.05)


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
    # Three bad connections (one attempt each, however many unknown
    # recipients): not more than `attempts` yet.
    for i in range(3):
        assert session(m.port, src, [f"nobody{i}{k}@example.test"
                                     for k in range(i + 1)]) == [550] * (i + 1)
    c, code, _ = connect(m.port, src)
    assert code == 220
    c.close()
    assert "event=karma action=block" not in m.log()
    # A fourth: blocked at its next recipient already (the unknown ones
    # are refused by recipients, which runs first).
    assert session(m.port, src, ["nobody3@example.test", "alice@example.test",
                                 "nobody4@example.test"]) == [550, 554, 550]
    text = refused_at_connect(m.port, src)
    assert text is not None, m.log()
    assert "5.7.1" in text and "4 bad of 4 connections" in text
    assert "try again in" in text
    assert "event=karma action=block ip=127.0.0.2" in m.log()
    # Another client is not blocked.
    c, code, _ = connect(m.port, "127.0.0.3")
    assert code == 220
    c.close()
    assert "127.0.0.2 until=" in ctl(m, "list").stdout


def test_issue_judgement(make_moat):
    """The defaults: 9 bad connections of 11 block, 6 of 11 do not."""
    # Karma's buckets are whole windows (1 h) of CLOCK_MONOTONIC, which is
    # Python's time.monotonic() too: a bucket edge within the test would
    # weigh the first connections just under 1. Start clear of one.
    edge = 3600 - time.monotonic() % 3600
    if edge < 15:
        time.sleep(edge + 0.5)
    m = make_moat(sections={"pipeline": SECTIONS["pipeline"]})
    bad, fair = "127.0.0.20", "127.0.0.21"
    for _ in range(2):
        good_session(m.port, bad)
    for _ in range(5):
        good_session(m.port, fair)
    # Good ones are counted at disconnect: wait for them.
    client_json(m, bad, lambda j: j["window"]["total"] >= 2)
    client_json(m, fair, lambda j: j["window"]["total"] >= 5)
    for i in range(6):
        assert session(m.port, fair, [f"nobody{i}@example.test"]) == [550]
    for i in range(8):
        assert session(m.port, bad, [f"nobody{i}@example.test"]) == [550]
    # The 11th connection, the 9th bad: blocked at its next recipient.
    assert session(m.port, bad, ["nobody9@example.test",
                                 "alice@example.test"]) == [550, 554]
    text = refused_at_connect(m.port, bad)
    assert text is not None and "9 bad of 11 connections" in text, m.log()
    j = client_json(m, fair, lambda j: j["window"]["total"] >= 11)
    assert j["window"]["total"] == 11 and j["window"]["bad"] == 6, j
    assert j["blocked"] is False and j["window"]["attempts"] == 10
    assert refused_at_connect(m.port, fair, wait=0.3) is None
    j = client_json(m, bad)
    assert j["blocked"] is True and j["offences"] == 1, j
    assert j["reason"] == "9 bad of 11 connections" and j["left"] > 14000


def test_expiry_and_repeat_offender(make_moat):
    """A 2 s block ends; blocked again, the client is blocked for 4 s,
    offence 2, shown in the reply, moatctl block list and client."""
    secs = dict(SECTIONS, karma=dict(SECTIONS["karma"], block="2",
                                     block_max="3600"))
    m = make_moat(sections=secs, files=FILES)
    src = "127.0.0.22"
    for i in range(3):
        assert session(m.port, src, [f"nobody{i}@example.test"]) == [550]
    c, code, _ = connect(m.port, src)
    assert code == 220
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    c.cmd("RCPT TO:<nobody3@example.test>", 550)
    text = c.text("RCPT TO:<alice@example.test>")
    assert text.startswith("554 5.7.1 Blocked (4 bad of 4 connections), "
                           "try again in"), text
    c.cmd("QUIT", 221)
    c.close()
    assert "offence=1" in m.log()
    # Written (the writer thread: polled), then it ends by itself.
    assert refused_at_connect(m.port, src) is not None, m.log()
    end = time.monotonic() + 10
    while refused_at_connect(m.port, src, wait=0) is not None:
        assert time.monotonic() < end, "still blocked"
        time.sleep(0.1)
    # One more bad connection: the window still breaks the rule; the
    # second block is twice as long.
    c, code, _ = connect(m.port, src)
    assert code == 220
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    c.cmd("RCPT TO:<nobody4@example.test>", 550)
    text = c.text("RCPT TO:<alice@example.test>")
    assert "offence 2), try again in 4s" in text, text
    c.cmd("QUIT", 221)
    c.close()
    assert "ttl=4 offence=2" in m.log()
    j = client_json(m, src, lambda j: j["offences"] == 2)
    assert j["offences"] == 2 and j["last_block"] == 4, j
    out = ctl(m, "list").stdout
    assert f"{src} until=" in out and "offences=2" in out, out


def test_early_talker_counted(make_moat):
    """A connection that talks before the greeting is bad: counted in the
    window moatctl client reads, and KARMA_BAD evidence next time."""
    m = make_moat(sections=SECTIONS, files=FILES,
                  server={"pregreet_wait": "1500", "pregreet_drop": "yes"})
    src = "127.0.0.23"
    s = socket.create_connection(("127.0.0.1", m.port), timeout=10,
                                 source_address=(src, 0))
    s.sendall(b"EHLO bot.example\r\n")
    data = b""
    while b"554" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert b"554" in data, data
    j = client_json(m, src, lambda j: j["window"]["bad"] >= 1)
    assert j["window"]["total"] == 1 and j["window"]["bad"] == 1, j
    r = subprocess.run([MOATCTL, "-c", m.conf, "client", src],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert f"client {src}" in r.stdout and "block none" in r.stdout
    assert "window total=1.0 bad=1.0" in r.stdout, r.stdout
    # Its greylisting passes are shown too.
    r = subprocess.run([MOATCTL, "-c", m.conf, "greylist", "pass",
                        f"ip:{src}"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    j = client_json(m, src)
    assert [p["pool"] for p in j["greylist_passes"]] == [f"ip:{src}"], j
    # The next connection (it waits for the greeting) carries KARMA_BAD.
    c, code, _ = connect(m.port, src)
    assert code == 220
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("QUIT", 221)
    line = [e for e in m.events() if e["event"] == "transaction"][-1]
    ev = [x for x in line["evidence"] if x["filter"] == "karma"]
    assert ev and ev[0]["name"] == "KARMA_BAD", line["evidence"]


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
    assert 'event=karma action=greytrap ip=127.0.0.5 ' \
        'rcpt="trap@example.test"' in m.log()


def test_trap_domain_blocks(make_moat):
    # Any address at a trap domain or under it is a greytrap, ours or not
    # (relaying refused first); the same client's next connection is
    # refused. A neighbour domain is not a trap.
    secs = dict(SECTIONS, karma=dict(SECTIONS["karma"],
                                     trap_domains="Old.Example.NET"))
    m = make_moat(sections=secs, files=FILES)
    c, code, _ = connect(m.port, "127.0.0.31")
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    assert c.cmd("RCPT TO:<x@notold.example.net>")[0] == 554   # relay
    c.cmd("QUIT", 221)
    c.close()
    assert refused_at_connect(m.port, "127.0.0.31", wait=0.3) is None
    src = "127.0.0.32"
    c, code, _ = connect(m.port, src)
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    assert c.cmd("RCPT TO:<anyone@mx.old.example.net>")[0] == 554
    c.cmd("QUIT", 221)
    c.close()
    text = refused_at_connect(m.port, src)
    assert text is not None and "greytrap" in text, m.log()
    # A bad value is refused at load, with file:line.
    bad = dict(SECTIONS, karma=dict(SECTIONS["karma"],
                                    trap_domains="user@old.example.net"))
    m2 = make_moat(sections=bad, files=FILES, start=False)
    out = subprocess.run([MOATD, "-t", "-c", m2.conf],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 1 and "trap_domains: 'user@old.example.net'" \
        in out.stderr and "moat.conf:" in out.stderr, out.stderr


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
    r = ctl(m, "add", src, "--for", "1m", "manual test")
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
    assert ctl(m, "add", src, "--for", "0s").returncode == 2
    # An IPv6 client is blocked by its /64.
    r = ctl(m, "add", "2001:db8:1:2::7", "--for", "90m")
    assert r.returncode == 0 and "2001:db8:1:2::/64" in r.stdout, r.stdout
    assert "2001:db8:1:2::/64 until=" in ctl(m, "list").stdout
    assert ctl(m, "remove", "2001:db8:1:2:ffff::1").returncode == 0


def test_relay_client_never_blocked(make_moat):
    m = make_moat(sections=dict(SECTIONS, relay={"networks": "nets"}),
                  files=dict(FILES, nets="127.0.0.0/8\n"))
    src = "127.0.0.8"
    session(m.port, src, [f"nobody{i}@example.test" for i in range(6)] +
            ["trap@example.test"])
    assert refused_at_connect(m.port, src, wait=0.5) is None
    assert "event=karma action=block" not in m.log()


def test_ratelimit_refusals_counted(make_moat):
    """Connections refused by the rate limit at connect (before karma)
    are bad: four block the client; more of them while it is blocked do
    not block it again (that would count a second offence)."""
    secs = dict(SECTIONS, pipeline={"filters": "relay ratelimit recipients "
                                               "karma"},
                ratelimit={"in_connections": "1/1h"})
    m = make_moat(sections=secs, files=FILES)
    src = "127.0.0.24"
    c, code, _ = connect(m.port, src)       # the one allowed: no outcome
    assert code == 220
    c.close()
    for _ in range(4):
        c, code, _ = connect(m.port, src)
        assert code == 421
        c.close()
    end = time.monotonic() + 5
    while f"{src} until=" not in ctl(m, "list").stdout:
        assert time.monotonic() < end, m.log()
        time.sleep(0.05)
    assert "reason=\"4 bad of 4 connections\" ttl=600 offence=1" in m.log()
    for _ in range(2):
        c, code, _ = connect(m.port, src)
        assert code == 421
        c.close()
    j = client_json(m, src, lambda j: j["window"]["bad"] >= 6)
    assert j["window"]["bad"] == 6 and j["offences"] == 1, j
    assert m.log().count("event=karma action=block") == 1, m.log()
