"""BATV: bounces (null sender) to a local address need a valid prvs tag
when the recipient's domain turns verify on; a signed recipient is
delivered to the address under the tag; normal senders, postmaster and
domains without verify are unaffected. Tags are made here in Python
(HMAC-SHA1, draft-levine-smtp-batv-01 §4), independently of batv.c."""
import hashlib
import hmac
import time

from moatlib import greet, message

KEY = "a batv test key"


def prvs(addr, key=KEY, k=0, days=7):
    ddd = "%03d" % ((int(time.time()) // 86400 + days) % 1000)
    sig = hmac.new(key.encode(), (str(k) + ddd + addr.lower()).encode(),
                   hashlib.sha1).hexdigest()[:6]
    return f"prvs={k}{ddd}{sig}={addr}"


def batv_moat(make_moat):
    return make_moat(
        sections={"pipeline": {"filters": "relay batv recipients"},
                  "batv": {"key_file": "batvkeys"}},
        server={"local_domains": "example.test other.test"},
        users=["alice@example.test", "bob@example.test", "@other.test"],
        files={"batvkeys": "# test key\n" + KEY + "\n"},
        extra="\n[domain example.test]\nbatv.verify = yes\n")


def test_bounces(make_moat):
    m = batv_moat(make_moat)
    c = greet(m.port)
    c.cmd("MAIL FROM:<>", 250)
    # Signed: accepted and delivered to alice herself.
    c.cmd(f"RCPT TO:<{prvs('alice@example.test')}>", 250)
    # Unsigned, a bad tag, an expired tag, another key: refused.
    code, lines = c.cmd("RCPT TO:<bob@example.test>")
    assert code == 550 and "5.7.1" in lines[0], lines
    bad = prvs("bob@example.test")
    bad = bad[:10] + ("0" if bad[10] != "0" else "1") + bad[11:]
    assert c.cmd(f"RCPT TO:<{bad}>")[0] == 550
    assert c.cmd(f"RCPT TO:<{prvs('bob@example.test', days=-1)}>")[0] == 550
    assert c.cmd(f"RCPT TO:<{prvs('bob@example.test', key='x')}>")[0] == 550
    # postmaster takes bounces as before.
    c.cmd("RCPT TO:<postmaster@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message(subject="bounce") + ".\r\n")
    assert c.reply()[0] == 250
    # So does a domain without verify (one policy per transaction).
    c.cmd("MAIL FROM:<>", 250)
    c.cmd("RCPT TO:<x@other.test>", 250)
    c.close()
    assert len(m.delivered("alice")) == 1
    assert len(m.delivered("bob")) == 0


def test_normal_sender_unaffected(make_moat):
    m = batv_moat(make_moat)
    c = greet(m.port)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 250)
    # A reply to a signed address is delivered to its owner too.
    c.cmd(f"RCPT TO:<{prvs('alice@example.test')}>", 250)
    c.cmd("DATA", 354)
    c.send(message(subject="hi") + ".\r\n")
    assert c.reply()[0] == 250
    c.close()
    assert len(m.delivered("alice")) == 1
    assert len(m.delivered("bob")) == 1


def test_signing_round_trip(make_moat):
    # A relay client's sender in a local domain is signed on the way out
    # (Return-Path and the JSON log show the tag); the bounce that tag
    # earns is accepted and reaches the sender, an unsigned one is not.
    m = make_moat(
        sections={"pipeline": {"filters": "relay batv recipients"},
                  "batv": {"key_file": "batvkeys", "sign": "yes",
                           "verify": "yes"},
                  "relay": {"networks": "nets"}},
        users=["alice@example.test", "bob@example.test"],
        files={"batvkeys": KEY + "\n", "nets": "127.0.0.1/32\n"})
    c = greet(m.port)
    c.cmd("MAIL FROM:<alice@example.test>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message(subject="out") + ".\r\n")
    assert c.reply()[0] == 250
    # A foreign sender domain and the null sender are left alone.
    c.cmd("MAIL FROM:<carol@example.org>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message(subject="foreign") + ".\r\n")
    assert c.reply()[0] == 250
    c.close()
    got = sorted(m.delivered("bob"), key=lambda b: b"Subject: out" not in b)
    assert len(got) == 2
    want = prvs("alice@example.test")
    assert got[0].startswith(f"Return-Path: <{want}>".encode()), got[0][:80]
    assert got[1].startswith(b"Return-Path: <carol@example.org>")
    lines = m.events(want=2)
    assert any(e.get("from") == want for e in lines), lines
    # The bounce comes back from outside (127.0.0.2: not a relay client).
    c = greet(m.port, source="127.0.0.2")
    c.cmd("MAIL FROM:<>", 250)
    c.cmd(f"RCPT TO:<{want}>", 250)
    assert c.cmd("RCPT TO:<bob@example.test>")[0] == 550
    c.cmd("DATA", 354)
    c.send(message(subject="bounce") + ".\r\n")
    assert c.reply()[0] == 250
    c.close()
    assert len(m.delivered("alice")) == 1
    # An outsider's own mail from our domain is not signed for it.
    c = greet(m.port, source="127.0.0.2")
    c.cmd("MAIL FROM:<alice@example.test>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message(subject="inbound") + ".\r\n")
    assert c.reply()[0] == 250
    c.close()
    got = [b for b in m.delivered("bob") if b"Subject: inbound" in b]
    assert got and got[0].startswith(b"Return-Path: <alice@example.test>")
