"""The access filter: tcprules rules (qmail's tcp.smtp) as text and as the
cdb Debian's tcprules(1) builds from them, per client address. Clients
connect from several 127.0.0.x addresses (all loopback on Linux): deny at
connect and at RCPT, RELAYCLIENT relaying, RBLSMTPD "" / "-text" / "text",
MOAT_SKIP skipping a DNSBL that lists the client (a real unbound), name
rules by the verified rDNS name, reload on change without SIGHUP, a broken
file keeping the old rules, and the rule's file:line in the JSON log."""
import os
import socket
import struct
import subprocess
import time

import pytest

from dnsserver import Unbound
import moatlib
from moatlib import Client

RULES = """# tcp.smtp
127.0.0.2:deny
127.0.0.3:allow,RELAYCLIENT=""
127.0.0.4:allow,RBLSMTPD="-blocked, see http://x.test/"
127.0.0.5:allow,RBLSMTPD="try later"
127.0.0.6:allow,RBLSMTPD=""
127.0.0.7:allow,MOAT_SKIP="dnsbl",MOAT_SCORE="1.5"
:allow
"""

ZONES = [
    # zen.bl.test lists its test entry 127.0.0.2 and 127.0.0.6-8.
    "2.0.0.127.zen.bl.test. 300 IN A 127.0.0.2",
    "6.0.0.127.zen.bl.test. 300 IN A 127.0.0.2",
    "7.0.0.127.zen.bl.test. 300 IN A 127.0.0.2",
    "8.0.0.127.zen.bl.test. 300 IN A 127.0.0.2",
    'local-zone: "bl.test." static',
    # 127.0.0.9 is mx.partner.test (forward-confirmed); .10 has no PTR.
    "9.0.0.127.in-addr.arpa. 300 IN PTR mx.partner.test.",
    "mx.partner.test. 300 IN A 127.0.0.9",
    'local-zone: "partner.test." static',
    'local-zone: "127.in-addr.arpa." static',
]


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound"), ZONES)
    yield u
    u.stop()


def connect(port, src, helo=True):
    """A client from loopback address src, greeted (and EHLO said)."""
    c = Client.__new__(Client)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(src, 0))
    c.buf = b""
    assert c.reply()[0] == 220
    if helo:
        c.cmd("EHLO client.test", 250)
    return c


def refused_at_connect(port, src):
    """The reply to a client that is not let in, and that it is closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=(src, 0))
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode()


def rcpt(c, addr, sender="s@client.test"):
    c.cmd(f"MAIL FROM:<{sender}>", 250)
    code, lines = c.cmd(f"RCPT TO:<{addr}>")
    c.cmd("RSET", 250)
    return code, " ".join(lines)


def wait_log(m, text, deadline=5.0):
    end = time.time() + deadline
    while text not in m.log():
        if time.time() > end:
            return False
        time.sleep(0.05)
    return True


def tcprules(d, name, text):
    """Builds d/name.cdb from text with Debian's tcprules."""
    src = os.path.join(d, name)
    with open(src, "w") as f:
        f.write(text)
    cdb = src + ".cdb"
    with open(src) as f:
        subprocess.run(["tcprules", cdb, cdb + ".tmp"], stdin=f, check=True)
    return cdb


def cdb_records(path):
    """Every (key, value) of a cdb file, in file order (D. J. Bernstein's
    format: a 2048-byte table, then klen, vlen, key, value records)."""
    d = open(path, "rb").read()
    end = min(struct.unpack("<II", d[i * 8:i * 8 + 8])[0] for i in range(256))
    pos, out = 2048, []
    while pos < end:
        kl, vl = struct.unpack("<II", d[pos:pos + 8])
        out.append((d[pos + 8:pos + 8 + kl], d[pos + 8 + kl:pos + 8 + kl + vl]))
        pos += 8 + kl + vl
    return out


def moat_with(make_moat, rules_name, access=None, filters="relay access "
              "recipients", sink=None, dns=None, files=None, extra="",
              start=True, workers=2):
    sections = {"pipeline": {"filters": filters},
                "access": {"rules": rules_name}}
    sections["access"].update(access or {})
    if sink is not None:
        sections["delivery"] = {"method": "smtp",
                                "route": f"127.0.0.1:{sink.port}"}
    if dns is not None:
        sections["dns"] = {"resolver": dns.resolver, "timeout_ms": "500",
                           "tries": "1"}
        sections["dnsbl"] = {"zones": "zen.bl.test"}
    return make_moat(sections=sections, files=files, extra=extra, start=start,
                     server={"local_domains": "example.test"},
                     users=["alice@example.test"], workers=workers)


def check_rules(m, sink, name):
    """The behaviour of RULES, loaded from the file called name."""
    # deny: 554 at connect, closed.
    text = refused_at_connect(m.port, "127.0.0.2")
    assert text.startswith("554 5.7.1 Access denied (%s)" % name), text
    # RELAYCLIENT: relays.
    c = connect(m.port, "127.0.0.3")
    c.cmd("MAIL FROM:<a@example.test>", 250)
    c.cmd("RCPT TO:<someone@elsewhere.org>", 250)
    c.cmd("DATA", 354)
    c.send("Subject: out\r\n\r\nbye\r\n.\r\n")
    assert c.reply()[0] == 250
    assert sink.messages[-1][1] == ["someone@elsewhere.org"]
    # RBLSMTPD="-text": refused with the text; postmaster@ reachable.
    c = connect(m.port, "127.0.0.4")
    code, text = rcpt(c, "alice@example.test")
    assert code == 554 and "blocked, see http://x.test/" in text, text
    assert rcpt(c, "postmaster@example.test")[0] == 250
    # RBLSMTPD="text": deferred.
    c = connect(m.port, "127.0.0.5")
    code, text = rcpt(c, "alice@example.test")
    assert code == 451 and "try later" in text, text
    # The default: let in, and no relaying.
    c = connect(m.port, "127.0.0.1")
    assert rcpt(c, "alice@example.test")[0] == 250
    assert rcpt(c, "x@elsewhere.org")[0] == 554


def test_text_rules(make_moat, sink):
    m = moat_with(make_moat, "tcp.smtp", sink=sink, files={"tcp.smtp": RULES})
    check_rules(m, sink, "tcp.smtp:2")
    assert wait_log(m, "event=access rule=%s/tcp.smtp:2 step=1 "
                    'action="deny"' % m.dir)


def test_cdb_from_tcprules(make_moat, sink):
    m = moat_with(make_moat, "tcp.smtp.cdb", sink=sink, start=False)
    cdb = tcprules(m.dir, "tcp.smtp", RULES)
    # tcprules' values: "D\0" for deny, "+VAR=value\0" per variable.
    recs = dict(cdb_records(cdb))
    assert recs[b"127.0.0.2"] == b"D\x00"
    assert recs[b"127.0.0.3"] == b"+RELAYCLIENT=\x00"
    assert recs[b""] == b""
    m.start()
    check_rules(m, sink, "tcp.smtp.cdb:[127.0.0.2]")


def test_cdb_ranges_and_names(make_moat, dns):
    """Ranges expand as tcprules does; name rules by the verified rDNS
    name (fcrdns before access) beat an address prefix."""
    m = moat_with(make_moat, "r.cdb", dns=dns, start=False,
                  filters="relay fcrdns access recipients")
    tcprules(m.dir, "r", "127.0.0.20-22:deny\n"
             "=mx.partner.test:allow,RELAYCLIENT=\"\"\n"
             "127.:deny\n:allow\n")
    m.start()
    for src in ("127.0.0.20", "127.0.0.22"):
        assert refused_at_connect(m.port, src).startswith("554 5.7.1")
    # 127.0.0.9 is mx.partner.test: the name rule, though 127. matches.
    c = connect(m.port, "127.0.0.9")
    c.cmd("MAIL FROM:<a@partner.test>", 250)
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert wait_log(m, "rule=%s/r.cdb:[=mx.partner.test] step=2" % m.dir)
    # 127.0.0.10 has no name: 127. denies it once fcrdns is done.
    c = connect(m.port, "127.0.0.10", helo=False)
    c.send("EHLO client.test\r\n")
    code, lines = c.reply()
    if code == 250:            # the lookups were not in yet at EHLO
        c.send("MAIL FROM:<a@client.test>\r\n")
        code, lines = c.reply()
    assert code == 554 and "r.cdb:[127.]" in " ".join(lines), lines
    assert c.closed()


def test_deny_at_rcpt_and_json(make_moat):
    m = moat_with(make_moat, "tcp.smtp", access={"deny_at": "rcpt"},
                  files={"tcp.smtp": RULES})
    c = connect(m.port, "127.0.0.2")
    code, text = rcpt(c, "alice@example.test")
    assert code == 554 and "Access denied (tcp.smtp:2)" in text, text
    assert rcpt(c, "postmaster@example.test")[0] == 250
    c.cmd("QUIT", 221)
    ev = [e for e in m.events(want=2) if e["event"] == "transaction"]
    refused = [e for e in ev if e["rcpts"] and
               e["rcpts"][0]["to"] == "alice@example.test"]
    assert refused, ev
    line = refused[0]
    assert "tcp.smtp:2" in line["rcpts"][0]["reply"], line
    acc = [x for x in line["evidence"] if x["filter"] == "access"]
    assert acc and acc[0]["name"] == "ACCESS_DENY", line
    assert acc[0]["detail"] == "tcp.smtp:2 deny"


def test_refused_connection_json(make_moat):
    m = moat_with(make_moat, "tcp.smtp", files={"tcp.smtp": RULES})
    refused_at_connect(m.port, "127.0.0.2")
    ev = [e for e in m.events() if e["event"] == "refused"]
    assert ev and "tcp.smtp:2" in ev[0]["reason"], ev
    acc = [x for x in ev[0]["evidence"] if x["filter"] == "access"]
    assert acc and acc[0]["detail"] == "tcp.smtp:2 deny", ev


def test_skip_dnsbl(make_moat, dns):
    """RBLSMTPD="" and MOAT_SKIP="dnsbl" let a listed client in; a listed
    client without a rule is refused by dnsbl."""
    m = moat_with(make_moat, "tcp.smtp", dns=dns, files={"tcp.smtp": RULES},
                  filters="relay access dnsbl recipients")
    c = connect(m.port, "127.0.0.8")
    code, text = rcpt(c, "alice@example.test")
    assert code == 554 and "zen.bl.test" in text, text
    for src in ("127.0.0.6", "127.0.0.7"):
        c = connect(m.port, src)
        assert rcpt(c, "alice@example.test")[0] == 250, src
    # MOAT_SCORE: the ACCESS symbol of the transaction.
    c = connect(m.port, "127.0.0.7")
    c.cmd("MAIL FROM:<s@client.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    line = [e for e in m.events(want=2) if e["event"] == "transaction" and
            e["result"].startswith("250")][-1]
    assert line["symbols"].get("ACCESS") == 1.5, line
    # The skipped filter asked nothing for the skipped clients.
    assert not dns.queries_for("7.0.0.127.zen.bl.test")


def test_reload_on_change(make_moat):
    """check_interval = 0: every connection checks the file; a new version
    is taken without SIGHUP, a broken one is logged (file:line) and the
    rules in use stay."""
    # One worker: which worker a connection reaches is the kernel's
    # choice, and "the rules in use stay" is a worker's own state.
    m = moat_with(make_moat, "tcp.smtp", access={"check_interval": "0"},
                  files={"tcp.smtp": ":allow\n"}, workers=1)
    path = os.path.join(m.dir, "tcp.smtp")
    c = connect(m.port, "127.0.0.2")
    assert rcpt(c, "alice@example.test")[0] == 250
    c.cmd("QUIT", 221)
    with open(path + ".new", "w") as f:
        f.write("127.0.0.2:deny\n:allow\n")
    os.rename(path + ".new", path)
    # Seen at the next connection.
    for _ in range(4):
        assert refused_at_connect(m.port, "127.0.0.2").startswith("554")
    assert wait_log(m, "event=access_reload result=loaded")
    # A broken version: logged with its line, the deny stays.
    with open(path + ".new", "w") as f:
        f.write(":allow\n127.0.0.3:permit\n")
    os.rename(path + ".new", path)
    for _ in range(4):
        assert refused_at_connect(m.port, "127.0.0.2").startswith("554")
    assert wait_log(m, 'event=access_reload result=kept error="%s:2: '
                    % path)
    # Fixed again: taken.
    with open(path + ".new", "w") as f:
        f.write(":allow\n")
    os.rename(path + ".new", path)
    c = connect(m.port, "127.0.0.2")
    assert rcpt(c, "alice@example.test")[0] == 250


def test_sighup_only(make_moat):
    """check_interval = -1: a change waits for SIGHUP."""
    m = moat_with(make_moat, "tcp.smtp", access={"check_interval": "-1"},
                  files={"tcp.smtp": ":allow\n"})
    path = os.path.join(m.dir, "tcp.smtp")
    with open(path, "w") as f:
        f.write("127.0.0.2:deny\n:allow\n")
    c = connect(m.port, "127.0.0.2")
    assert rcpt(c, "alice@example.test")[0] == 250
    c.cmd("QUIT", 221)
    m.reload()
    end = time.time() + 10
    while True:
        s = socket.create_connection(("127.0.0.1", m.port), timeout=10,
                                     source_address=("127.0.0.2", 0))
        first = s.recv(512)
        s.close()
        if first.startswith(b"554") or time.time() > end:
            break
        time.sleep(0.1)
    assert first.startswith(b"554 5.7.1 Access denied (tcp.smtp:1)"), first


def test_broken_file_refused_at_start(make_moat):
    """A bad rules file is refused at load (moatd -t), with file:line."""
    from moatlib import MOATD
    m = moat_with(make_moat, "tcp.smtp", files={"tcp.smtp":
                  ":allow\n10.1:deny\n"}, start=False)
    out = subprocess.run([MOATD, "-c", m.conf, "-t"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    assert "tcp.smtp:2:" in out.stdout + out.stderr, out


def test_moat_policy_sets_the_client_policy(make_moat):
    """MOAT_POLICY names a [domain] section whose knobs every filter uses
    for that client's session: here its HELO deny list, which the default
    policy does not have."""
    rules = '127.0.0.3:allow,MOAT_POLICY="strict.test"\n:allow\n'
    m = moat_with(make_moat, "tcp.smtp",
                  filters="relay access lists recipients",
                  files={"tcp.smtp": rules, "badhelo": "client.test\n"},
                  extra="\n[domain strict.test]\nlists.helo_deny = badhelo\n")
    c = connect(m.port, "127.0.0.3")
    code, text = rcpt(c, "alice@example.test")
    assert code == 550 and "Helo command rejected" in text, text
    c = connect(m.port, "127.0.0.1")
    assert rcpt(c, "alice@example.test")[0] == 250


def test_moat_policy_must_name_something(make_moat):
    rules = '127.0.0.3:allow,MOAT_POLICY=""\n'
    m = moat_with(make_moat, "tcp.smtp", files={"tcp.smtp": rules},
                  start=False)
    out = subprocess.run([moatlib.MOATD, "-t", "-c", m.conf],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "MOAT_POLICY" in out.stderr, out.stderr
