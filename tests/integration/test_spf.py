"""SPF against a real unbound: each result decided at RCPT under the
recipient's policy, the domain's explanation in the refusal (made safe),
Received-SPF and Authentication-Results on delivered mail, a forged
Authentication-Results claiming our name removed, no data at the
deadline. The client connects from 127.0.0.1 or 127.0.0.2."""
import socket

import pytest

from dnsserver import SlowDNS, Unbound
from moatlib import Client

ZONES = [
    'local-zone: "spf.test." static',
    'pass.spf.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"',
    'fail.spf.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all exp=why.spf.test"',
    'why.spf.test. 300 IN TXT "Not from %{i}, see http://spf.test/%{d}"',
    'evil.spf.test. 300 IN TXT "v=spf1 -all exp=evilwhy.spf.test"',
    # an explanation that tries to start a new reply line
    'evilwhy.spf.test. 300 IN TXT "first\\010250 2.0.0 fake"',
    'soft.spf.test. 300 IN TXT "v=spf1 ~all"',
    'neutral.spf.test. 300 IN TXT "v=spf1 ?all"',
    'two.spf.test. 300 IN TXT "v=spf1 -all"',
    'two.spf.test. 300 IN TXT "v=spf1 +all"',
    'inc.spf.test. 300 IN TXT "v=spf1 include:pass.spf.test -all"',
    'none.spf.test. 300 IN A 192.0.2.1',
    # HELO identity for the null sender
    'helo.spf.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
]


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound-spf"), ZONES)
    yield u
    u.stop()


def connect(port, src="127.0.0.1", helo="client.test"):
    c = Client.__new__(Client)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(src, 0))
    c.buf = b""
    assert c.reply()[0] == 220
    c.cmd(f"EHLO {helo}", 250)
    return c


def moat_spf(make_moat, resolver, spf=None, extra="", dns=None):
    sections = {"pipeline": {"filters": "relay spf recipients"},
                "dns": {"resolver": resolver, "timeout_ms": "500",
                        "tries": "1"},
                "spf": spf or {}}
    sections["dns"].update(dns or {})
    return make_moat(sections=sections, extra=extra,
                     server={"local_domains": "example.test other.test"},
                     users=["alice@example.test", "bob@other.test"])


def rcpt(c, sender, to="alice@example.test"):
    c.cmd(f"MAIL FROM:<{sender}>", 250)
    code, lines = c.cmd(f"RCPT TO:<{to}>")
    c.cmd("RSET", 250)
    return code, " ".join(lines)


def deliver(c, sender, to="alice@example.test", extra=b""):
    c.cmd(f"MAIL FROM:<{sender}>", 250)
    c.cmd(f"RCPT TO:<{to}>", 250)
    c.cmd("DATA", 354)
    c.send(extra + b"Subject: spf\r\n\r\nhi\r\n.\r\n")
    assert c.reply()[0] == 250


def test_results_at_rcpt(make_moat, dns):
    m = moat_spf(make_moat, dns.resolver)
    c = connect(m.port)
    assert rcpt(c, "a@pass.spf.test")[0] == 250
    assert rcpt(c, "a@inc.spf.test")[0] == 250
    code, text = rcpt(c, "a@fail.spf.test")
    assert code == 550 and "5.7.23" in text
    # The domain's exp= explanation, macro-expanded.
    assert "Not from 127.0.0.1, see http://spf.test/fail.spf.test" in text
    assert rcpt(c, "a@soft.spf.test")[0] == 250          # scored
    assert rcpt(c, "a@neutral.spf.test")[0] == 250
    assert rcpt(c, "a@none.spf.test")[0] == 250
    assert rcpt(c, "a@two.spf.test")[0] == 250           # permerror: scored
    # postmaster@ stays reachable.
    assert rcpt(c, "a@fail.spf.test", "postmaster@example.test")[0] == 250


def test_explanation_cannot_inject_a_reply(make_moat, dns):
    m = moat_spf(make_moat, dns.resolver)
    c = connect(m.port)
    c.cmd("MAIL FROM:<a@evil.spf.test>", 250)
    c.send("RCPT TO:<alice@example.test>\r\n")
    code, lines = c.reply()
    # One reply line: an explanation with a line break is no
    # explanation (or is made safe), never a second reply.
    assert code == 550 and len(lines) == 1, lines
    assert lines[0].startswith("550 5.7.23 ")
    assert c.text("NOOP") == "250 2.0.0 OK"


def test_policies_differ(make_moat, dns):
    m = moat_spf(make_moat, dns.resolver, extra="""
[domain other.test]
spf.action_fail = score
spf.action_softfail = reject
""")
    c = connect(m.port)
    assert rcpt(c, "a@fail.spf.test")[0] == 550
    assert rcpt(c, "a@fail.spf.test", "bob@other.test")[0] == 250
    assert rcpt(c, "a@soft.spf.test")[0] == 250
    assert rcpt(c, "a@soft.spf.test", "bob@other.test")[0] == 550


def test_headers_and_forged_results(make_moat, dns):
    m = moat_spf(make_moat, dns.resolver)
    c = connect(m.port)
    forged = (b"Authentication-Results: mx.example.test; spf=pass "
              b"smtp.mailfrom=evil.test\r\n"
              b"Authentication-Results: other.example; spf=fail\r\n")
    deliver(c, "a@pass.spf.test", extra=forged)
    got = m.delivered("alice")[0].decode()
    head = got.split("\n\n", 1)[0]
    assert "Received-SPF: pass (mx.example.test: ip4:127.0.0.1) " \
           "client-ip=127.0.0.1; envelope-from=\"a@pass.spf.test\"; " \
           "helo=client.test; receiver=mx.example.test; " \
           "identity=mailfrom;" in head
    assert "Authentication-Results: mx.example.test; spf=pass " \
           "smtp.mailfrom=pass.spf.test" in head
    assert "smtp.mailfrom=evil.test" not in head        # forged: removed
    assert "Authentication-Results: other.example; spf=fail" in head
    line = [e for e in m.events() if e["event"] == "transaction"][-1]
    ev = [x for x in line["evidence"] if x["filter"] == "spf"]
    assert ev[0]["name"] == "SPF_PASS"
    assert line["symbols"].get("SPF_PASS") == -1.0


def test_null_sender_checks_helo(make_moat, dns):
    m = moat_spf(make_moat, dns.resolver)
    c = connect(m.port, helo="helo.spf.test")
    deliver(c, "")
    head = m.delivered("alice")[0].decode().split("\n\n", 1)[0]
    assert "Authentication-Results: mx.example.test; spf=pass " \
           "smtp.helo=helo.spf.test" in head


def test_no_data_at_the_deadline(make_moat):
    with SlowDNS(delay=None) as slow:
        m = moat_spf(make_moat, slow.resolver, dns={"timeout_ms": "10000"},
                     extra="\n[pipeline]\ndeadline_rcpt = 500\n")
        c = connect(m.port)
        deliver(c, "a@fail.spf.test")
        line = [e for e in m.events() if e["event"] == "transaction"][-1]
        assert [x["name"] for x in line["evidence"]] == ["SPF_NODATA"]
