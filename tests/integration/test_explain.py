"""moatctl explain on real sessions: moatd with the dnsbl and fcrdns
filters against a real unbound on loopback, one client refused at RCPT
by a DNSBL listing (postmaster@ still reached), one delivered, one
connection refused (max_per_ip); then explain on their ids from the JSON
log: the deciding filter, the evidence, the replies, a prefix, an
unknown id, rotation, and a log with malformed lines."""
import os
import shutil
import socket
import subprocess

import pytest

from dnsserver import Unbound
from moatlib import ROOT, Client, Moat

MOATCTL = os.path.join(ROOT, os.environ.get("MOATCTL", "build/moatctl"))

ZONES = [
    "2.0.0.127.zen.bl.test. 300 IN A 127.0.0.2",
    "2.0.0.127.in-addr.arpa. 300 IN PTR mx2.client.test.",
    "mx2.client.test. 300 IN A 127.0.0.2",
    "1.0.0.127.in-addr.arpa. 300 IN PTR mail.client.test.",
    "mail.client.test. 300 IN A 127.0.0.1",
    'local-zone: "bl.test." static',
    'local-zone: "client.test." static',
    'local-zone: "127.in-addr.arpa." static',
]


def connect(port, src, helo="client.test"):
    c = Client.__new__(Client)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(src, 0))
    c.buf = b""
    code, lines = c.reply()
    if code == 220:
        c.cmd(f"EHLO {helo}", 250)
    return c, code


def explain(*args, conf=None):
    cmd = [MOATCTL] + (["-c", conf] if conf else []) + ["explain", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, \
        r.stderr
    return r


def sections(dns, dnsbl=None):
    return {
        "pipeline": {"filters": "relay dnsbl fcrdns recipients"},
        # Generous: under ASan and load a slow answer must not turn the
        # zone's health check into "unknown" (listings then not counted).
        "dns": {"resolver": dns.resolver, "timeout_ms": "3000",
                "tries": "2"},
        "dnsbl": dict({"zones": "zen.bl.test*2"}, **(dnsbl or {})),
    }


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound"), ZONES)
    yield u
    u.stop()


@pytest.fixture(scope="module")
def run(tmp_path_factory, dns):
    """Starts moatd, runs the three sessions, stops moatd and hands over
    the log, the replies and the ids."""
    m = Moat(tmp_path_factory.mktemp("moat"), workers=1,
             sections=sections(dns), server={"max_per_ip": "1"})
    try:
        m.start()
        out = {"moat": m}
        # Listed in zen.bl.test: refused at RCPT, postmaster@ reached.
        c, _ = connect(m.port, "127.0.0.2", helo="mx2.client.test")
        c.cmd("MAIL FROM:<s@client.test>", 250)
        code, lines = c.cmd("RCPT TO:<alice@example.test>")
        assert code == 554, lines
        out["refused_reply"] = lines[0]
        c.cmd("RCPT TO:<postmaster@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: listed\r\nMessage-ID: <listed@client.test>\r\n"
               b"\r\nhi\r\n.\r\n")
        assert c.reply()[0] == 250
        c.cmd("QUIT", 221)
        c.close()
        # Not listed, rDNS confirmed: delivered.
        c, _ = connect(m.port, "127.0.0.1")
        c.cmd("MAIL FROM:<s@client.test>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: fine mail\r\nMessage-ID: <fine@client.test>\r\n"
               b"\r\nhi\r\n.\r\n")
        code, lines = c.reply()
        assert code == 250
        out["delivered_reply"] = lines[0]
        c.cmd("QUIT", 221)
        c.close()
        # A second connection from one address: refused (max_per_ip).
        held, _ = connect(m.port, "127.0.0.3")
        c, code = connect(m.port, "127.0.0.3")
        assert code == 421
        c.close()
        held.cmd("QUIT", 221)
        held.close()
        events = m.events(want=3, timeout=5)
        tx = [e for e in events if e["event"] == "transaction"]
        out["listed"] = [e for e in tx if e["ip"] == "127.0.0.2"][-1]
        out["fine"] = [e for e in tx if e["ip"] == "127.0.0.1" and
                       e.get("subject") == "fine mail"][-1]
        out["refused"] = [e for e in events if e["event"] == "refused"][-1]
        out["ids"] = sorted({e["session"] for e in events})
        yield out
    finally:
        m.stop()
        report = m.sanitizer_report()
        assert not report, report


def lines_of(r):
    return r.stdout.splitlines()


def test_refused_at_rcpt(run):
    m, ev = run["moat"], run["listed"]
    r = explain("--log", m.json_path, ev["session"])
    assert r.returncode == 0, r.stderr
    out = lines_of(r)
    assert out[0] == f"session {ev['session']} lines=1"
    client = out[1]
    assert client.startswith("client ip=127.0.0.2 helo=mx2.client.test ")
    assert "rdns=mx2.client.test rdns_verified=yes" in client
    # The refused recipient: the deciding filter and the very reply.
    reply = run["refused_reply"]
    assert "zen.bl.test" in reply
    want = ('txn 1 rcpt <alice@example.test> refused by=dnsbl reply="%s"'
            % reply.replace("\\", "\\\\").replace('"', '\\"'))
    assert want in out, r.stdout
    acc = [l for l in out if l.startswith("txn 1 rcpt <postmaster@")]
    assert acc and " accepted by=" in acc[0] and 'reply="250 ' in acc[0]
    # The evidence, as logged: filter, name, score, lookup ms, detail.
    dnsbl = [x for x in ev["evidence"] if x["filter"] == "dnsbl"][0]
    ev_lines = [l for l in out if l.startswith("evidence dnsbl DNSBL ")]
    assert len(ev_lines) == 1, r.stdout
    assert "score=%.2f" % dnsbl["score"] in ev_lines[0]
    assert "ms=%.1f" % dnsbl["ms"] in ev_lines[0]
    assert "zen.bl.test=127.0.0.2" in ev_lines[0]
    assert any(l.startswith("evidence fcrdns RDNS_CONFIRMED ") and
               l.endswith("detail=mx2.client.test") for l in out), r.stdout
    # The transaction and its outcome.
    head = [l for l in out if l.startswith("txn 1 time=")][0]
    assert "from=<s@client.test> tls=no rcpts=2 accepted=1" in head
    assert ("txn 1 message size=%d message_id=<listed@client.test> "
            "subject=listed" % ev["size"]) in out
    assert any(l.startswith("txn 1 ms data=") for l in out)
    res = [l for l in out if l.startswith("txn 1 result ")]
    assert res and '"250 ' in res[0]
    # Stable: the same run prints the same text.
    assert explain("--log", m.json_path, ev["session"]).stdout == r.stdout


def test_observe_mode(make_moat, dns):
    """dnsbl in observe mode: the listed client is delivered to, and
    explain shows what dnsbl would have refused, and the symbol it scored
    for the domain whose policy only scores it."""
    m = make_moat(sections=sections(dns, {"mode": "observe"}),
                  server={"local_domains": "example.test other.test"},
                  users=["alice@example.test", "bob@other.test"],
                  extra="\n[domain other.test]\ndnsbl.reject_threshold = 0\n")
    c, _ = connect(m.port, "127.0.0.2")
    # A recipient of another policy needs a transaction of its own.
    for rcpt in ("alice@example.test", "bob@other.test"):
        c.cmd("MAIL FROM:<s@client.test>", 250)
        c.cmd(f"RCPT TO:<{rcpt}>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: observed\r\n\r\nhi\r\n.\r\n")
        assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    c.close()
    tx = [e for e in m.events(want=2) if e["event"] == "transaction"]
    assert len(tx) == 2, tx
    r = explain("--log", m.json_path, tx[0]["session"])
    assert r.returncode == 0, r.stderr
    out = lines_of(r)
    assert out[0] == "session %s lines=2" % tx[0]["session"]
    w = tx[0]["would_reject"][0]
    assert ('txn 1 would_reject dnsbl stage=rcpt rcpt=<alice@example.test> '
            'reply="%s"' % w["reply"]) in out, r.stdout
    assert any(l.startswith("txn 1 rcpt <alice@example.test> accepted ")
               for l in out)
    assert any(l.startswith("txn 2 rcpt <bob@other.test> accepted ")
               for l in out)
    assert tx[1]["symbols"], tx[1]
    for name, score in tx[1]["symbols"].items():
        assert "txn 2 symbol %s %.2f" % (name, score) in out
    assert "txn 2 score %.2f" % tx[1]["score"] in out
    # The evidence is the session's: printed once, not per transaction.
    assert len([l for l in out if l.startswith("evidence dnsbl ")]) == 1


def test_delivered(run):
    m, ev = run["moat"], run["fine"]
    # Through moat.conf's json_log this time.
    r = explain(ev["session"], conf=m.conf)
    assert r.returncode == 0, r.stderr
    out = lines_of(r)
    assert "rdns=mail.client.test rdns_verified=yes" in out[1]
    assert not any(l.startswith("evidence dnsbl") for l in out), r.stdout
    rc = [l for l in out if l.startswith("txn 1 rcpt ")]
    assert len(rc) == 1 and rc[0].startswith(
        "txn 1 rcpt <alice@example.test> accepted by=")
    assert 'subject="fine mail"' in r.stdout
    res = [l for l in out if l.startswith("txn 1 result ")][0]
    assert run["delivered_reply"] in res.replace('\\"', '"')


def test_refused_connection_and_prefix(run):
    m, ev = run["moat"], run["refused"]
    sid = ev["session"]
    # Refusals count down from ffff, sessions up from 1: 13 digits
    # (time, pid and the count's first) are this one's alone. Upper case
    # is taken too.
    r = explain("--log", m.json_path, sid[:13].upper())
    assert r.returncode == 0, r.stderr
    out = lines_of(r)
    assert out[0] == f"session {sid} lines=1"
    assert out[1] == "client ip=127.0.0.3"
    assert out[2] == f"refused time={ev['time']} reason=max_per_ip"


def test_ambiguous_unknown_and_usage(run):
    m, ids = run["moat"], run["ids"]
    common = os.path.commonprefix(ids)
    if len(common) >= 6:
        r = explain("--log", m.json_path, common)
        assert r.returncode == 2
        assert "more than one session" in r.stderr
        assert all(i in r.stderr for i in ids[:8])
        assert r.stdout == ""
    r = explain("--log", m.json_path, "0123456789abcdef")
    assert r.returncode == 1 and r.stdout == ""
    assert "no session 0123456789abcdef" in r.stderr
    for bad in (["12345"], ["0123456789abcdef0"], ["xyz123"], [],
                ["--bogus", "123456"], ["123456", "654321"],
                ["--log"]):
        r = explain(*bad)
        assert r.returncode == 2, (bad, r.stderr)
        assert "usage:" in r.stderr
    r = explain("--log", m.json_path + ".none", ids[0])
    assert r.returncode == 1 and "No such file" in r.stderr


def test_help():
    r = subprocess.run([MOATCTL, "explain", "--help"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0
    assert "SESSION_ID" in r.stdout and "--log FILE" in r.stdout
    assert "EXIT STATUS" in r.stdout and "FILE.1" in r.stdout
    r = subprocess.run([MOATCTL, "--help"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0 and "explain SESSION_ID" in r.stdout


def test_rotation_and_malformed_lines(run, tmp_path):
    """FILE.1 is read before FILE; lines cut short, corrupted or far too
    long are skipped with a warning, and the rest is still explained."""
    m, ev = run["moat"], run["listed"]
    sid = ev["session"]
    raw = open(m.json_path, "rb").read().splitlines(keepends=True)
    mine = [l for l in raw if sid.encode() in l]
    rest = [l for l in raw if sid.encode() not in l]
    log = str(tmp_path / "tx.jsonl")
    with open(log + ".1", "wb") as f:
        f.writelines(mine)
    cut = mine[0][:len(mine[0]) // 2] + b"\n"
    bad_utf8 = mine[0].replace(b"mx2.client.test", b"mx2.\xff\xfe.test", 1)
    dup = mine[0].rstrip(b"\n")[:-1] + b',"ip":"10.0.0.1"}\n'
    huge = b'{"session":"%s","pad":"%s"}\n' % (sid.encode(), b"x" * 300000)
    with open(log, "wb") as f:
        f.writelines(rest)
        f.write(cut)
        f.write(b"\x00\x01 garbage " + sid.encode() + b"\n")
        f.write(bad_utf8)
        f.write(dup)
        f.write(huge)
        f.write(b'{"event":"transaction","ip":"' + sid.encode() + b'"}\n')
        f.write(b"[" * 100000 + sid.encode() + b"\n")
        f.write(cut.rstrip(b"\n"))        # last line, no newline
    r = explain("--log", log, sid)
    assert r.returncode == 0, r.stderr
    base = explain("--log", m.json_path, sid)
    assert r.stdout == base.stdout
    warn = [l for l in r.stderr.splitlines() if "warning" in l]
    n = len(rest)
    assert any(f"tx.jsonl:{n + 1}: skipped" in l for l in warn), r.stderr
    assert any(f"tx.jsonl:{n + 2}: skipped" in l for l in warn)
    assert any(f"tx.jsonl:{n + 3}: skipped" in l and "UTF-8" in l
               for l in warn), r.stderr
    assert any(f"tx.jsonl:{n + 4}: skipped" in l and "duplicate" in l
               for l in warn), r.stderr
    assert any(f"tx.jsonl:{n + 5}: skipped" in l and "too long" in l
               for l in warn), r.stderr
    assert any(f"tx.jsonl:{n + 6}: skipped" in l and "session" in l
               for l in warn), r.stderr
    assert any(f"tx.jsonl:{n + 7}: skipped" in l and "deep" in l
               for l in warn), r.stderr
    assert any(f"tx.jsonl:{n + 8}: skipped" in l for l in warn)
    # A log of nothing but junk: not found, never a crash.
    junk = str(tmp_path / "junk.jsonl")
    with open(junk, "wb") as f:
        f.write(os.urandom(200000) + b"\n" + sid.encode() + b"\n")
    r = explain("--log", junk, sid)
    assert r.returncode == 1, r.stderr


def test_hostile_text_is_escaped(run, tmp_path):
    """Client text with terminal escapes, newlines, quotes and a bidi
    override is printed escaped, each finding on its one line."""
    sid = "00000001deadbeef"
    line = ('{"time":"t","event":"transaction","session":"%s","ip":'
            '"192.0.2.1","helo":"a\\u001b]0;pwned\\u0007\\nb \\"c\\"",'
            '"tls":false,"from":"x\\u202e@y","rcpts":[{"to":"a@b",'
            '"accepted":false,"reply":"550 \\r\\nfake line","by":"dnsbl"}],'
            '"rcpt_count":1,"rcpt_accepted":0,"truncated":false,'
            '"score":0,"symbols":{"S\\u0085":1},"ms":{"data":-1,'
            '"queue":-1},"result":"aborted"}\n' % sid)
    log = str(tmp_path / "h.jsonl")
    open(log, "w").write(line)
    r = explain("--log", log, sid)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "\u202e" not in r.stdout and "\u0085" not in r.stdout
    out = lines_of(r)
    assert out[1] == ('client ip=192.0.2.1 helo="a\\x1b]0;pwned\\x07\\nb '
                      '\\"c\\""')
    assert 'txn 1 rcpt <a@b> refused by=dnsbl reply="550 \\r\\nfake line"' \
        in out
    assert 'from="<x\\u202e@y>"' in out[2]
    assert 'txn 1 symbol "S\\u0085" 1.00' in out
