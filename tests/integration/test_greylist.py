"""Greylisting at RCPT (docs/GREYLIST.md), with a short configured delay:
first attempt 451 with the retry time, an early retry 451, a retry after
the delay 250 with X-Greylist on the message, a retry from another
address of the same /24 passing, a relay (trusted) client never
greylisted, and moatctl greylist list/pass/remove/stats on the same
store. With DNS from the test unbound: a retry from another /24 passing
through the FCrDNS pool (rdns:) or the SPF-pass domain (spf:), while the
same retry from an unrelated address is still greylisted; an
authenticated client never greylisted; a correspondent a local user
mailed never greylisted; an attempt never retried counted once."""
import json
import os
import socket
import subprocess
import time

import pytest

from dnsserver import Unbound
from moatlib import Client, dot_stuff, message

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOATCTL = os.path.join(ROOT, os.environ.get("MOATCTL", "build/moatctl"))

DELAY = 2
SECTIONS = {
    "pipeline": {"filters": "relay recipients greylist"},
    "greylist": {"delay": str(DELAY), "sweep_interval": "1"},
}

# Pools on distinct /24s of 127/8, so that the net: key never makes a
# retry pass: out-1 and out-2 are one FCrDNS-verified pool; bigspf.test's
# SPF authorises 127.0.4.0/24 and 127.0.5.0/24 (narrow: keyed); 127.0.3.1
# and 127.0.6.1 are unrelated (no PTR; SPF softfail, not refused).
ZONES = [
    'local-zone: "bigsender.test." static',
    'local-zone: "bigspf.test." static',
    'local-zone: "127.in-addr.arpa." static',
    "1.1.0.127.in-addr.arpa. 300 IN PTR out-1.mail.bigsender.test.",
    "out-1.mail.bigsender.test. 300 IN A 127.0.1.1",
    "1.2.0.127.in-addr.arpa. 300 IN PTR out-2.mail.bigsender.test.",
    "out-2.mail.bigsender.test. 300 IN A 127.0.2.1",
    'bigspf.test. 300 IN TXT "v=spf1 ip4:127.0.4.0/24 ip4:127.0.5.0/24 ~all"',
]


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound-greylist"), ZONES)
    yield u
    u.stop()


def dns_moat(make_moat, resolver):
    """apply = always: selective would let a verified, SPF-passing client
    through without a first attempt."""
    return make_moat(sections={
        "pipeline": {"filters": "relay spf fcrdns recipients greylist"},
        "dns": {"resolver": resolver, "timeout_ms": "1000", "tries": "1"},
        "greylist": {"delay": str(DELAY), "apply": "always"}})


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
    # The host-wide counters, written in the same batches.
    st = stats(m)
    assert st["deferred"] == 2 and st["passed"] == 1, st
    assert st["delay"]["lt5m"] == 1 and st["never_retried"] == 0, st
    r = ctl(m, "stats")
    assert r.returncode == 0 and "passed         1" in r.stdout, r.stdout


def stats(m):
    r = ctl(m, "stats", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_never_retried_counted(make_moat):
    m = make_moat(sections={
        "pipeline": {"filters": "relay recipients greylist"},
        "greylist": {"delay": "60", "retry_window": "1",
                     "sweep_interval": "1"}})
    assert attempt(m.port)[0] == 451
    # Expired after 1 s; a sweep step counts it, the next one writes the
    # count when no greylist batch came by to carry it.
    end = time.monotonic() + 15
    while stats(m)["never_retried"] == 0 and time.monotonic() < end:
        time.sleep(0.2)
    st = stats(m)
    assert st["never_retried"] == 1 and st["deferred"] == 1, st
    assert "never_retried=1" in m.log()
    # The counters in the log, when the sweep has been through the store.
    assert "event=greylist_stats deferred=1 passed=0" in m.log()


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


def test_retry_from_fcrdns_pool_passes(make_moat, dns):
    m = dns_moat(make_moat, dns.resolver)
    snd = "news@bigsender.test"
    code, _ = attempt(m.port, src="127.0.1.1", rcpt="bob@example.test",
                      sender=snd)
    assert code == 451
    time.sleep(DELAY + 0.2)
    # After the delay, from an unrelated address: a first attempt.
    code, _ = attempt(m.port, src="127.0.3.1", rcpt="bob@example.test",
                      sender=snd)
    assert code == 451
    # From another host of the pool, another /24: passes.
    code, text = attempt(m.port, src="127.0.2.1", rcpt="bob@example.test",
                         sender=snd)
    assert code == 250, text
    assert "action=pass key=rdns:mail.bigsender.test" in m.log()


def test_retry_from_spf_domain_passes(make_moat, dns):
    m = dns_moat(make_moat, dns.resolver)
    snd = "bounce-17@bigspf.test"
    code, _ = attempt(m.port, src="127.0.4.1", sender=snd)
    assert code == 451
    time.sleep(DELAY + 0.2)
    code, _ = attempt(m.port, src="127.0.6.1", sender=snd)
    assert code == 451
    code, text = attempt(m.port, src="127.0.5.1", sender="bounce-18@bigspf.test")
    assert code == 250, text
    assert "action=pass key=spf:bigspf.test" in m.log()


def bcrypt_line(user, password):
    out = subprocess.run(["htpasswd", "-nbB", "-C", "5", user, password],
                         capture_output=True, check=True)
    return out.stdout.decode().strip()


def test_authenticated_never_greylisted(make_moat):
    import base64
    m = make_moat(sections=dict(SECTIONS, greylist={
        "delay": "60", "apply": "always"}, auth={
        "backend": "file", "passwd_file": "passwd", "fail_delay": "0"}),
        files={"passwd": bcrypt_line("alice", "pw alice") + "\n"})
    c = client(m.port)
    c.starttls()
    c.cmd("EHLO client.example.org", 250)
    c.cmd("AUTH PLAIN " + base64.b64encode(b"\0alice\0pw alice").decode(),
          235)
    c.cmd("MAIL FROM:<alice@example.test>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 250)
    c.cmd("RCPT TO:<zed@remote.test>", 250)
    c.cmd("QUIT", 221)
    # The same from an anonymous client: greylisted (mode always).
    assert attempt(m.port, rcpt="bob@example.test",
                   sender="alice@example.test")[0] == 451


def test_known_correspondent(make_moat):
    """A relay client (127.0.0.9) mails zed@remote.test from alice: zed's
    mail to alice, from anywhere, is then not greylisted; a stranger's is,
    and so is zed's to bob."""
    m = make_moat(sections=dict(SECTIONS, relay={"networks": "nets"},
                                greylist={"delay": "60", "apply": "always"}),
                  files={"nets": "127.0.0.9/32\n"})
    # Not known yet: greylisted.
    assert attempt(m.port, src="127.0.1.7", sender="zed@remote.test")[0] == 451
    assert attempt(m.port, src="127.0.0.9", sender="alice@example.test",
                   rcpt="Zed+lists@Remote.TEST", data=True)[0] == 250
    # The record is written without anyone waiting: polled for.
    key = "corresp gl:c:zed@remote.test|alice@example.test"
    end = time.monotonic() + 10
    while key not in ctl(m, "list").stdout and time.monotonic() < end:
        time.sleep(0.05)
    assert key in ctl(m, "list").stdout
    code, text = attempt(m.port, src="127.0.1.7", sender="zed@remote.test",
                         data=True)
    assert code == 250, text
    assert "action=correspondent key=gl:c:zed@remote.test|alice@example.test" \
        in m.log()
    assert attempt(m.port, src="127.0.1.7", sender="mallory@remote.test")[0] \
        == 451
    assert attempt(m.port, src="127.0.1.7", sender="zed@remote.test",
                   rcpt="bob@example.test")[0] == 451


def test_known_correspondent_with_batv_signing(make_moat):
    """With [batv] sign = yes alice's envelope sender leaves as
    prvs=TAG=alice@; the correspondent is still recorded for alice@ (the
    address zed writes back to), not for the day's tag."""
    m = make_moat(sections=dict(
        SECTIONS, pipeline={"filters": "relay batv recipients greylist"},
        relay={"networks": "nets"},
        batv={"key_file": "batvkeys", "sign": "yes"},
        greylist={"delay": "60", "apply": "always"}),
        files={"nets": "127.0.0.9/32\n", "batvkeys": "a key\n"})
    assert attempt(m.port, src="127.0.0.9", sender="alice@example.test",
                   rcpt="zed@remote.test", data=True)[0] == 250
    assert "from=alice@example.test signed" in open(m.json_path).read()
    key = "corresp gl:c:zed@remote.test|alice@example.test"
    end = time.monotonic() + 10
    while key not in ctl(m, "list").stdout and time.monotonic() < end:
        time.sleep(0.05)
    assert key in ctl(m, "list").stdout, ctl(m, "list").stdout
    code, text = attempt(m.port, src="127.0.1.7", sender="zed@remote.test",
                         data=True)
    assert code == 250, text
