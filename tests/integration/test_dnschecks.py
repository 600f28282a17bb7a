"""DNS checks against a real unbound on loopback: weighted DNSBL/DNSWL
zones decided at RCPT per recipient policy, answer hygiene, zone health,
a resolver that never answers, observe mode, and the client's reverse
DNS (FCrDNS). The client connects from several 127.0.0.x addresses
(all loopback on Linux): 127.0.0.2 is the test entry every healthy zone
lists."""
import socket
import time

import pytest

from dnsserver import SlowDNS, Unbound
from moatlib import Client

ZONES = [
    # zen.bl.test*2: lists 127.0.0.2 (test entry) and 127.0.0.5
    "2.0.0.127.zen.bl.test. 300 IN A 127.0.0.2",
    "5.0.0.127.zen.bl.test. 300 IN A 127.0.0.4",
    # weak.bl.test*1: 127.0.0.2 and 127.0.0.6
    "2.0.0.127.weak.bl.test. 300 IN A 127.0.0.2",
    "6.0.0.127.weak.bl.test. 300 IN A 127.0.0.2",
    # wl.test*-2 (DNSWL): 127.0.0.2 and 127.0.0.7
    "2.0.0.127.wl.test. 300 IN A 127.0.10.1",
    "7.0.0.127.wl.test. 300 IN A 127.0.10.2",
    # 127.0.0.8 gets the "you may not query" answer from zen
    "8.0.0.127.zen.bl.test. 300 IN A 127.255.255.254",
    # broken.bl.test lists 127.0.0.1 too: it fails its health check
    "2.0.0.127.broken.bl.test. 300 IN A 127.0.0.2",
    "1.0.0.127.broken.bl.test. 300 IN A 127.0.0.2",
    "9.0.0.127.broken.bl.test. 300 IN A 127.0.0.2",
    # reverse DNS: 127.0.0.1 confirmed, .3 generic and not confirmed,
    # .4 no PTR at all, .2/.5-.9 confirmed names
    "1.0.0.127.in-addr.arpa. 300 IN PTR mail.client.test.",
    "mail.client.test. 300 IN A 127.0.0.1",
    "3.0.0.127.in-addr.arpa. 300 IN PTR 127-0-0-3.dyn.isp.test.",
    "2.0.0.127.in-addr.arpa. 300 IN PTR mx2.client.test.",
    "mx2.client.test. 300 IN A 127.0.0.2",
]
ZONES += ["%d.0.0.127.in-addr.arpa. 300 IN PTR h%d.client.test." % (i, i)
          for i in range(5, 10)]
ZONES += ["h%d.client.test. 300 IN A 127.0.0.%d" % (i, i) for i in range(5, 10)]
ZONES += ['local-zone: "bl.test." static', 'local-zone: "wl.test." static',
          'local-zone: "client.test." static', 'local-zone: "isp.test." static',
          'local-zone: "127.in-addr.arpa." static']


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound"), ZONES)
    yield u
    u.stop()


def connect(port, src):
    """A client from loopback address src."""
    c = Client.__new__(Client)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(src, 0))
    c.buf = b""
    assert c.reply()[0] == 220
    c.cmd("EHLO client.test", 250)
    return c


def moat_with(make_moat, resolver, filters="relay dnsbl fcrdns recipients",
              dnsbl=None, fcrdns=None, extra="", server=None, dns=None):
    sections = {"pipeline": {"filters": filters},
                "dns": {"resolver": resolver, "timeout_ms": "500",
                        "tries": "1"},
                "dnsbl": {"zones": "zen.bl.test*2 weak.bl.test*1 "
                          "wl.test*-2 broken.bl.test*5"}}
    sections["dnsbl"].update(dnsbl or {})
    sections["dns"].update(dns or {})
    if fcrdns:
        sections["fcrdns"] = fcrdns
    srv = {"local_domains": "example.test other.test"}
    srv.update(server or {})
    return make_moat(sections=sections, server=srv, extra=extra,
                     users=["alice@example.test", "bob@other.test"])


def wait_log(m, text, deadline=5.0):
    """True once the human log holds text (it is written a line at a
    time, a moment after the reply may have left)."""
    end = time.time() + deadline
    while text not in m.log():
        if time.time() > end:
            return False
        time.sleep(0.05)
    return True


def rcpt(c, addr):
    c.cmd("MAIL FROM:<s@client.test>", 250)
    code, lines = c.cmd(f"RCPT TO:<{addr}>")
    c.cmd("RSET", 250)
    return code, " ".join(lines)


def test_listed_client_refused_at_rcpt(make_moat, dns):
    m = moat_with(make_moat, dns.resolver)
    c = connect(m.port, "127.0.0.2")   # zen*2 + weak*1 + wl*-2 = 1
    code, text = rcpt(c, "alice@example.test")
    assert code == 554 and "blocked using zen.bl.test" in text, text
    assert "127.0.0.2" in text
    # postmaster@ stays reachable.
    assert rcpt(c, "postmaster@example.test")[0] == 250


def test_same_evidence_two_policies(make_moat, dns):
    """One domain refuses on the listing, the other only scores it, for
    the same client in the same session."""
    m = moat_with(make_moat, dns.resolver, extra="""
[domain other.test]
dnsbl.reject_threshold = 0
""")
    c = connect(m.port, "127.0.0.5")   # zen*2 only
    assert rcpt(c, "alice@example.test")[0] == 554
    c.cmd("MAIL FROM:<s@client.test>", 250)
    c.cmd("RCPT TO:<bob@other.test>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    ev = [e for e in m.events(want=2) if e["event"] == "transaction"]
    done = [e for e in ev if e["result"].startswith("250")]
    assert done, ev
    line = done[-1]
    assert line["rcpts"][0]["to"] == "bob@other.test"
    assert line["symbols"].get("DNSBL") == 2.0, line
    names = {(x["filter"], x["name"]) for x in line["evidence"]}
    assert ("dnsbl", "DNSBL") in names
    zen = [x for x in line["evidence"] if x["name"] == "DNSBL"][0]
    assert "zen.bl.test=127.0.0.4" in zen["detail"] and zen["score"] == 2


def test_weights_and_dnswl(make_moat, dns):
    m = moat_with(make_moat, dns.resolver,
                  dnsbl={"reject_threshold": "2", "allow_threshold": "-1"})
    # weak*1 only: under the threshold, scored.
    c = connect(m.port, "127.0.0.6")
    assert rcpt(c, "alice@example.test")[0] == 250
    # wl*-2: allow-listed.
    c = connect(m.port, "127.0.0.7")
    assert rcpt(c, "alice@example.test")[0] == 250


def test_error_answer_never_lists(make_moat, dns):
    m = moat_with(make_moat, dns.resolver)
    c = connect(m.port, "127.0.0.8")   # zen answers 127.255.255.254
    assert rcpt(c, "alice@example.test")[0] == 250
    assert wait_log(m, "event=dnsbl_refused zone=zen.bl.test "
                    "answer=127.255.255.254")


def test_unhealthy_zone_out_of_service(make_moat, dns):
    m = moat_with(make_moat, dns.resolver)
    # The first session runs the health checks (broken.bl.test lists
    # 127.0.0.1, so it fails them).
    c = connect(m.port, "127.0.0.1")
    rcpt(c, "alice@example.test")
    assert wait_log(m, "zone=broken.bl.test state=out_of_service")
    c = connect(m.port, "127.0.0.9")   # only broken lists it
    assert rcpt(c, "alice@example.test")[0] == 250


def test_session_during_a_health_check_waits_for_it(make_moat):
    """A zone's first health check is started by the first session (here
    one that leaves at once); a listed client arriving while it runs waits
    for it too, so its listing counts. (It used not to: its listing met a
    zone of unknown health and was not counted.)"""
    zones = {"2.0.0.127.zen.bl.test": {"A": ["127.0.0.2"]},
             "1.0.0.127.zen.bl.test": {},
             "10.0.0.127.zen.bl.test": {"A": ["127.0.0.2"]}}
    slow = {"2.0.0.127.zen.bl.test": 0.8, "1.0.0.127.zen.bl.test": 0.8}
    dns = SlowDNS(delay=0, zones=zones, delays=slow)
    try:
        m = make_moat(workers=1, sections={
            "pipeline": {"filters": "relay dnsbl recipients"},
            "dns": {"resolver": dns.resolver, "timeout_ms": "3000",
                    "tries": "1"},
            "dnsbl": {"zones": "zen.bl.test*2"}})
        first = connect(m.port, "127.0.0.11")   # starts the check
        first.cmd("QUIT", 221)
        first.close()
        c = connect(m.port, "127.0.0.10")       # listed, check running
        code, text = rcpt(c, "alice@example.test")
        assert code == 554 and "zen.bl.test" in text, (code, text)
        c.close()
    finally:
        dns.stop()


def test_observe_mode(make_moat, dns):
    m = moat_with(make_moat, dns.resolver, dnsbl={"mode": "observe"})
    c = connect(m.port, "127.0.0.5")
    c.cmd("MAIL FROM:<s@client.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    line = [e for e in m.events() if e["event"] == "transaction"][-1]
    would = line["would_reject"]
    assert would[0]["filter"] == "dnsbl" and would[0]["stage"] == "rcpt"
    assert would[0]["rcpt"] == "alice@example.test"
    assert would[0]["reply"].startswith("554 5.7.1")
    assert wait_log(m, "event=would_reject filter=dnsbl")


def test_silent_resolver(make_moat):
    """A resolver that never answers: the greeting is not delayed, other
    sessions go on, and at RCPT the lookups count as no data once the
    deadline passes."""
    with SlowDNS(delay=None) as slow:
        m = moat_with(make_moat, slow.resolver, dns={"timeout_ms": "10000"},
                      extra="""
[pipeline]
deadline_rcpt = 1500
""")
        c = connect(m.port, "127.0.0.2")
        c.cmd("MAIL FROM:<s@client.test>", 250)
        c.send("RCPT TO:<alice@example.test>\r\n")
        # Meanwhile another session is served at once.
        other = connect(m.port, "127.0.0.1")
        assert other.text("NOOP") == "250 2.0.0 OK"
        c.sock.setblocking(False)
        try:
            early = c.sock.recv(100)
        except BlockingIOError:
            early = b""
        c.sock.setblocking(True)
        assert early == b"", "RCPT did not wait for the lookups"
        code, _ = c.reply()
        assert code == 250
        assert wait_log(m, "event=evidence_deadline filter=dnsbl")


def test_fcrdns(make_moat, dns):
    m = moat_with(make_moat, dns.resolver, filters="relay fcrdns recipients",
                  fcrdns={"reject_threshold": "3"})
    # No PTR: 3 -> refused with 450 (a DNS failure must not bounce).
    c = connect(m.port, "127.0.0.4")
    code, text = rcpt(c, "alice@example.test")
    assert code == 450 and "4.7.25" in text, text
    # Not confirmed (2) + generic (1).
    c = connect(m.port, "127.0.0.3")
    assert rcpt(c, "alice@example.test")[0] == 450
    # Confirmed.
    c = connect(m.port, "127.0.0.1")
    c.cmd("MAIL FROM:<s@client.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    line = [e for e in m.events() if e["event"] == "transaction"][-1]
    conf = [x for x in line["evidence"] if x["name"] == "RDNS_CONFIRMED"]
    assert conf and conf[0]["detail"] == "mail.client.test", line
    assert line["rdns"] == "mail.client.test" and line["rdns_verified"]
