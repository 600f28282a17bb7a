"""The rhsbl, helo and sender filters against a real unbound on loopback:
every outcome of each, decided at RCPT under the recipient's policy (two
policies deciding differently for one client), temporary DNS failures
(a zone unbound answers SERVFAIL for: forwarded to a port nobody may
ask; and a resolver that never answers) never refusing, postmaster@
reachable, evidence in the JSON line, observe mode. Clients connect from
several 127.0.0.x addresses (all loopback on Linux); moatd listens on
127.0.0.1, so that is "our" address."""
import socket
import time

import pytest

from dnsserver import SlowDNS, Unbound
from moatlib import Client

ZONES = [
    # RHSBL dbl.test (DBL-style answers) with its RFC 5782 test entry.
    "test.dbl.test. 300 IN A 127.0.1.2",
    "bad.example.dbl.test. 300 IN A 127.0.1.2",
    "badhelo.example.dbl.test. 300 IN A 127.0.1.4",
    "host.badrdns.example.dbl.test. 300 IN A 127.0.1.2",
    "errans.example.dbl.test. 300 IN A 127.0.1.255",
    "nq.example.dbl.test. 300 IN A 127.255.255.254",
    # brokendbl.test lists INVALID too: out of service.
    "test.brokendbl.test. 300 IN A 127.0.1.2",
    "invalid.brokendbl.test. 300 IN A 127.0.1.2",
    "bad2.example.brokendbl.test. 300 IN A 127.0.1.2",
    # Sender and HELO domains.
    "good.example. 300 IN MX 10 mail.good.example.",
    "mail.good.example. 300 IN A 127.0.0.1",
    "badhelo.example. 300 IN A 127.0.0.1",
    "bad.example. 300 IN MX 10 mail.good.example.",
    "bad2.example. 300 IN MX 10 mail.good.example.",
    "errans.example. 300 IN MX 10 mail.good.example.",
    "nq.example. 300 IN MX 10 mail.good.example.",
    "aonly.example. 300 IN A 192.0.2.1",
    "v6only.example. 300 IN AAAA 2001:db8::1",
    "nullmx.example. 300 IN MX 0 .",
    'nothing.example. 300 IN TXT "no mail here"',
    # Reverse DNS: 127.0.0.21 is host.badrdns.example (confirmed).
    "21.0.0.127.in-addr.arpa. 300 IN PTR host.badrdns.example.",
    "host.badrdns.example. 300 IN A 127.0.0.21",
    "22.0.0.127.in-addr.arpa. 300 IN PTR host.goodrdns.example.",
    "host.goodrdns.example. 300 IN A 127.0.0.22",
    'local-zone: "dbl.test." static', 'local-zone: "brokendbl.test." static',
    'local-zone: "example." static', 'local-zone: "127.in-addr.arpa." static',
    # Names under broken. go to a forwarder unbound may not ask
    # (do-not-query-localhost): SERVFAIL, a temporary failure.
    'local-zone: "broken." transparent',
]


class ServfailUnbound(Unbound):
    """unbound with a forward zone for broken. that can only SERVFAIL."""

    def write_conf(self):
        super().write_conf()
        with open(self.conf, "a") as f:
            f.write('forward-zone:\n    name: "broken."\n'
                    '    forward-addr: 127.0.0.1@9\n')


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    u = ServfailUnbound(tmp_path_factory.mktemp("unbound2"), ZONES)
    yield u
    u.stop()


def moat_with(make_moat, resolver, filters, sections=None, extra="",
              dns=None, server=None):
    secs = {"pipeline": {"filters": filters},
            "dns": {"resolver": resolver, "timeout_ms": "500",
                    "tries": "1"}}
    for k, v in (sections or {}).items():
        secs.setdefault(k, {}).update(v)
    secs["dns"].update(dns or {})
    srv = {"local_domains": "example.test other.test"}
    srv.update(server or {})
    return make_moat(sections=secs, server=srv, extra=extra,
                     users=["alice@example.test", "bob@other.test"])


def connect(port, src="127.0.0.1", helo="client.example"):
    """A client from loopback address src that said EHLO helo."""
    c = Client.__new__(Client)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=15,
                                      source_address=(src, 0))
    c.buf = b""
    assert c.reply()[0] == 220
    c.cmd("EHLO " + helo, 250)
    return c


def rcpt(c, addr, sender="s@good.example"):
    """MAIL and one RCPT, then RSET: (code, text) of the RCPT."""
    c.cmd(f"MAIL FROM:<{sender}>", 250)
    code, lines = c.cmd(f"RCPT TO:<{addr}>")
    c.cmd("RSET", 250)
    return code, " ".join(lines)


def deliver(m, c, addr="alice@example.test", sender="s@good.example"):
    """A whole message; the transaction's JSON line."""
    c.cmd(f"MAIL FROM:<{sender}>", 250)
    c.cmd(f"RCPT TO:<{addr}>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    end = time.time() + 5
    while True:
        done = [e for e in m.events() if e["event"] == "transaction" and
                e.get("result", "").startswith("250") and
                e["rcpts"][0]["to"] == addr]
        if done or time.time() > end:
            break
        time.sleep(0.05)
    assert done, m.events()
    return done[-1]


def evidence(line, filt):
    return {x["name"]: x for x in line.get("evidence", [])
            if x["filter"] == filt}


def wait_log(m, text, deadline=5.0):
    end = time.time() + deadline
    while text not in m.log():
        if time.time() > end:
            return False
        time.sleep(0.05)
    return True


# ---- sender ---------------------------------------------------------------

def test_sender_outcomes(make_moat, dns):
    m = moat_with(make_moat, dns.resolver, "relay sender recipients")
    c = connect(m.port)
    # MX; no MX but A; no MX but AAAA: taken.
    for dom in ("good.example", "aonly.example", "v6only.example"):
        assert rcpt(c, "alice@example.test", "s@" + dom)[0] == 250, dom
    # Null MX (RFC 7505 §4.2): 550 5.7.27.
    code, text = rcpt(c, "alice@example.test", "s@nullmx.example")
    assert code == 550 and "5.7.27" in text and "nullmx.example" in text
    # NXDOMAIN, and no MX/A/AAAA: 550 5.1.8.
    for dom in ("nx.example", "nothing.example"):
        code, text = rcpt(c, "alice@example.test", "s@" + dom)
        assert code == 550 and "5.1.8" in text, (dom, text)
        assert f"domain {dom} not found" in text
    # A DNS failure (SERVFAIL) is 451 4.1.8, never a 5xx.
    code, text = rcpt(c, "alice@example.test", "s@x.fail.broken")
    assert code == 451 and "4.1.8" in text, text
    # The null sender and address literals are not looked up.
    assert rcpt(c, "alice@example.test", "")[0] == 250
    assert rcpt(c, "alice@example.test", "s@[192.0.2.1]")[0] == 250
    # postmaster@ stays reachable.
    assert rcpt(c, "postmaster@example.test", "s@nullmx.example")[0] == 250
    assert rcpt(c, "postmaster@example.test", "s@nx.example")[0] == 250


def test_sender_two_policies_and_evidence(make_moat, dns):
    """example.test refuses an unknown sender domain; other.test scores
    it, for the same client in one session."""
    m = moat_with(make_moat, dns.resolver, "relay sender recipients",
                  extra="""
[domain other.test]
sender.unknown_action = score
sender.score_unknown = 4
sender.tempfail_action = score
""")
    c = connect(m.port)
    assert rcpt(c, "alice@example.test", "s@nx.example")[0] == 550
    assert rcpt(c, "bob@other.test", "s@x.fail.broken")[0] == 250
    line = deliver(m, c, "bob@other.test", "s@nothing.example")
    assert line["symbols"].get("SENDER_UNKNOWN") == 4.0, line
    ev = evidence(line, "sender")
    assert ev["SENDER_UNKNOWN"]["detail"] == \
        "nothing.example: no MX, no A/AAAA", ev
    assert "SENDER_TEMPFAIL" in ev and "SENDER_UNKNOWN" in ev


def test_sender_silent_resolver(make_moat):
    """A resolver that never answers: with a DNS timeout shorter than the
    deadline the lookup is a temporary failure (451, never 550); with a
    longer one the deadline passes and it is no data (250)."""
    with SlowDNS(delay=None) as slow:
        m = moat_with(make_moat, slow.resolver, "relay sender recipients",
                      dns={"timeout_ms": "300", "tries": "1"})
        c = connect(m.port)
        code, text = rcpt(c, "alice@example.test", "s@good.example")
        assert code == 451 and "4.1.8" in text, text
        m2 = moat_with(make_moat, slow.resolver, "relay sender recipients",
                       dns={"timeout_ms": "10000"}, extra="""
[pipeline]
deadline_rcpt = 800
""")
        c = connect(m2.port)
        t0 = time.monotonic()
        assert rcpt(c, "alice@example.test", "s@good.example")[0] == 250
        assert time.monotonic() - t0 < 5
        assert wait_log(m2, "event=evidence_deadline filter=sender")


# ---- helo -----------------------------------------------------------------

def test_helo_outcomes(make_moat, dns):
    """Each check refuses alone (reject_threshold 1, every score 1) with
    its text; clean names are taken."""
    scores = {"score_" + k: "1" for k in ("not_fqdn", "bare_ip", "literal",
                                          "ours", "no_resolve",
                                          "localhost")}
    scores["reject_threshold"] = "1"
    m = moat_with(make_moat, dns.resolver, "relay helo recipients",
                  sections={"helo": scores})
    cases = [
        ("127.0.0.30", "mail.good.example", 250, None),
        ("127.0.0.31", "[127.0.0.31]", 250, None),
        ("127.0.0.30", "foo", 550, "need fully-qualified hostname"),
        ("127.0.0.30", "192.0.2.1", 550, "address literals need brackets"),
        ("127.0.0.30", "[192.0.2.9]", 550, "address literal is not yours"),
        ("127.0.0.30", "mx.example.test", 550, "you are not me"),
        ("127.0.0.30", "[127.0.0.1]", 550, "you are not me"),
        ("127.0.0.30", "nohost.example", 550, "Host not found"),
        ("127.0.0.30", "nothing.example", 550, "Host not found"),
        ("127.0.0.30", "localhost", 550, "you are not localhost"),
        ("127.0.0.30", "LOCALHOST.localdomain.", 550,
         "you are not localhost"),
        # A temporary DNS failure is no data, never a refusal.
        ("127.0.0.30", "x.fail.broken", 250, None),
    ]
    for src, helo, want, why in cases:
        c = connect(m.port, src, helo)
        code, text = rcpt(c, "alice@example.test")
        assert code == want, (helo, text)
        if why:
            assert "5.7.1 Helo command rejected: " + why in text, text
            assert rcpt(c, "postmaster@example.test")[0] == 250
        c.cmd("QUIT", 221)
    # Our own name or address from ourselves is no claim.
    c = connect(m.port, "127.0.0.1", "[127.0.0.1]")
    assert rcpt(c, "alice@example.test")[0] == 250


def test_helo_two_policies_and_evidence(make_moat, dns):
    m = moat_with(make_moat, dns.resolver, "relay helo recipients",
                  sections={"helo": {"score_no_resolve": "2",
                                     "reject_threshold": "3"}},
                  extra="""
[domain other.test]
helo.reject_threshold = 0
""")
    # Not a FQDN (1) + no A/AAAA is not asked for it: 1 < 3.
    c = connect(m.port, "127.0.0.30", "foo")
    assert rcpt(c, "alice@example.test")[0] == 250
    # Bare IP (2) + ... 2 < 3: taken; localhost (3): refused.
    c = connect(m.port, "127.0.0.30", "localhost")
    assert rcpt(c, "alice@example.test")[0] == 550
    line = deliver(m, c, "bob@other.test")
    assert line["symbols"].get("HELO_LOCALHOST") == 3.0, line
    assert evidence(line, "helo")["HELO_LOCALHOST"]["detail"] == \
        "localhost: you are not localhost"
    c = connect(m.port, "127.0.0.30", "x.fail.broken")
    line = deliver(m, c)
    ev = evidence(line, "helo")
    assert ev["HELO_NODATA"]["detail"] == "x.fail.broken: lookup failed"
    assert "HELO_NO_RESOLVE" not in ev
    c = connect(m.port, "127.0.0.30", "nohost.example")
    line = deliver(m, c, "bob@other.test")
    assert line["symbols"].get("HELO_NO_RESOLVE") == 2.0, line


def test_helo_observe_mode(make_moat, dns):
    m = moat_with(make_moat, dns.resolver, "relay helo recipients",
                  sections={"helo": {"mode": "observe"}})
    c = connect(m.port, "127.0.0.30", "mx.example.test")
    line = deliver(m, c)
    would = line["would_reject"]
    assert would[0]["filter"] == "helo" and would[0]["stage"] == "rcpt"
    assert would[0]["reply"] == "550 5.7.1 Helo command rejected: you " \
        "are not me", would
    assert evidence(line, "helo")["HELO_OURS"]["score"] == 5
    assert wait_log(m, "event=would_reject filter=helo")


def test_helo_again_after_starttls_name(make_moat, dns):
    """A second EHLO replaces what the first started."""
    m = moat_with(make_moat, dns.resolver, "relay helo recipients")
    c = connect(m.port, "127.0.0.30", "mx.example.test")
    c.cmd("EHLO mail.good.example", 250)
    assert rcpt(c, "alice@example.test")[0] == 250


# ---- rhsbl ----------------------------------------------------------------

RHSBL = {"zones": "dbl.test=127.0.1.[2..99]*2 brokendbl.test*2",
         "reply_map": "dbl.test=dbl.public.example",
         "reject_threshold": "2"}


def test_rhsbl_sources(make_moat, dns):
    m = moat_with(make_moat, dns.resolver, "relay fcrdns rhsbl recipients",
                  sections={"rhsbl": RHSBL})
    # Sender domain listed: refused, naming the domain and shown zone.
    c = connect(m.port, "127.0.0.22")
    code, text = rcpt(c, "alice@example.test", "s@bad.example")
    assert code == 554, text
    assert "5.7.1 Service unavailable; domain bad.example blocked " \
        "using dbl.public.example" in text, text
    assert rcpt(c, "postmaster@example.test", "s@bad.example")[0] == 250
    # HELO name listed.
    c = connect(m.port, "127.0.0.22", "badhelo.example")
    code, text = rcpt(c, "alice@example.test")
    assert code == 554 and "badhelo.example" in text
    # Verified rDNS name listed (fcrdns resolves it while EHLO goes on).
    c = connect(m.port, "127.0.0.21")
    code, text = rcpt(c, "alice@example.test")
    assert code == 554 and "host.badrdns.example" in text, text
    # Error answers are never listings; the null sender skips the
    # sender source.
    c = connect(m.port, "127.0.0.22")
    assert rcpt(c, "alice@example.test", "s@errans.example")[0] == 250
    assert rcpt(c, "alice@example.test", "s@nq.example")[0] == 250
    assert rcpt(c, "alice@example.test", "")[0] == 250
    assert wait_log(m, "event=rhsbl_refused zone=dbl.test "
                    "answer=127.0.1.255")
    # A zone that lists INVALID is out of service.
    assert wait_log(m, "zone=brokendbl.test state=out_of_service")
    assert rcpt(c, "alice@example.test", "s@bad2.example")[0] == 250


def test_rhsbl_switches_and_policies(make_moat, dns):
    """other.test scores what example.test refuses, and does not look at
    the HELO name at all."""
    m = moat_with(make_moat, dns.resolver, "relay fcrdns rhsbl recipients",
                  sections={"rhsbl": RHSBL}, extra="""
[domain other.test]
rhsbl.reject_threshold = 0
rhsbl.check_helo = no
rhsbl.score_factor = 1.5
""")
    c = connect(m.port, "127.0.0.22", "badhelo.example")
    assert rcpt(c, "alice@example.test")[0] == 554
    line = deliver(m, c, "bob@other.test", "s@bad.example")
    assert line["symbols"].get("RHSBL") == 3.0, line
    ev = evidence(line, "rhsbl")
    assert ev["RHSBL_SENDER"]["detail"] == \
        "bad.example: dbl.test=127.0.1.2 weight 2", ev
    assert ev["RHSBL_HELO"]["score"] == 2
    # The sender switch off: the listed sender counts for nothing.
    m2 = moat_with(make_moat, dns.resolver, "relay rhsbl recipients",
                   sections={"rhsbl": dict(RHSBL, check_sender="no")})
    c = connect(m2.port, "127.0.0.22")
    assert rcpt(c, "alice@example.test", "s@bad.example")[0] == 250


def test_rhsbl_zone_servfail(make_moat, dns):
    """A zone whose every answer is SERVFAIL: no data, never a refusal."""
    m = moat_with(make_moat, dns.resolver, "relay rhsbl recipients",
                  sections={"rhsbl": {"zones": "dbl.broken*5"}})
    c = connect(m.port, "127.0.0.22", "badhelo.example")
    line = deliver(m, c, "alice@example.test", "s@bad.example")
    ev = evidence(line, "rhsbl")
    assert ev["RHSBL_NODATA"]["detail"].endswith("lookup failed"), ev


def test_rhsbl_one_name_counts_once(make_moat, dns):
    """The same listed name as HELO and sender domain is one listing;
    names no zone lists are taken."""
    m = moat_with(make_moat, dns.resolver, "relay rhsbl recipients",
                  sections={"rhsbl": dict(RHSBL, reject_threshold="3")})
    c = connect(m.port, "127.0.0.22", "mail.good.example")
    assert rcpt(c, "alice@example.test", "s@good.example")[0] == 250
    c = connect(m.port, "127.0.0.22", "bad.example")
    line = deliver(m, c, "alice@example.test", "s@bad.example")
    assert line["symbols"].get("RHSBL") == 2.0, line
    assert "RHSBL_SENDER" not in evidence(line, "rhsbl")
