"""Delivery: 250 only once durable. Forwarding to a recording sink,
Postfix's smtp-sink and Dovecot's LMTP; qmail-queue; Maildir."""
import os
import shutil
import time

import pytest

from moatlib import CERT, KEY, Client, greet, message, send_one
from peers import Dovecot, SmtpSink
from sink import Sink

HERE = os.path.dirname(os.path.abspath(__file__))


def forward_to(make_moat, port, method="smtp", **kw):
    return make_moat(sections={"delivery": {"method": method,
                                            "route": f"127.0.0.1:{port}"},
                               "recipients": {"users": ""}}, **kw)


def test_forward_byte_identical(make_moat, sink):
    m = forward_to(make_moat, sink.port)
    body = "Line one\r\n.leading dot\r\n..two dots\r\n\r\nend\r\n"
    msg = message(subject="fw", body=body)
    assert send_one(m.port, msg=msg)[0] == 250
    mail, rcpts, data, tls = sink.messages[-1]
    assert mail == "sender@example.org" and rcpts == ["alice@example.test"]
    assert data.endswith(msg.encode())
    assert data.startswith(b"Received: from client.example.org ([127.0.0.1])")


def test_backend_rcpt_refusal_passed_on(make_moat):
    s = Sink(rcpt_reply=lambda r: b"550 5.1.1 no such mailbox" if r.startswith("gone")
             else b"452 4.2.2 mailbox full" if r.startswith("full") else b"250 ok")
    try:
        m = forward_to(make_moat, s.port)
        c = greet(m.port)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        assert c.text("RCPT TO:<gone@example.test>") == "550 5.1.1 no such mailbox"
        assert c.text("RCPT TO:<full@example.test>") == "452 4.2.2 mailbox full"
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(message() + ".\r\n")
        assert c.reply()[0] == 250
        assert s.messages[-1][1] == ["alice@example.test"]
    finally:
        s.close()


def test_250_only_after_backend_250(make_moat):
    s = Sink(data_reply=lambda r: b"554 5.6.0 content refused")
    try:
        m = forward_to(make_moat, s.port)
        code, text = send_one(m.port)
        assert code == 554 and "content refused" in text
        s.data_reply = lambda r: b"451 4.3.0 busy"
        code, text = send_one(m.port)
        assert code == 451
        assert s.messages == []
    finally:
        s.close()


def test_backend_down(make_moat):
    from moatlib import free_port
    m = forward_to(make_moat, free_port())
    c = greet(m.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    code, lines = c.cmd("RCPT TO:<alice@example.test>")
    assert code == 451 and "4.4.1" in lines[0]
    assert c.text("DATA").startswith("554 5.5.1")
    c.cmd("QUIT", 221)
    ev = m.events()
    assert ev[-1]["rcpts"][0]["accepted"] is False


def test_backend_dies_during_data(make_moat):
    """Backend accepts RCPT, then vanishes: the client gets 4xx, not 250."""
    s = Sink()
    try:
        m = forward_to(make_moat, s.port)
        c = greet(m.port)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        s.close()
        s.data_reply = lambda r: None   # hang up after the message
        c.cmd("DATA", 354)
        c.send(message() + ".\r\n")
        code, lines = c.reply()
        assert code // 100 == 4, lines
    finally:
        s.close()


def test_backend_starttls_and_reuse(make_moat):
    s = Sink(tls_cert=CERT, tls_key=KEY)
    try:
        m = forward_to(make_moat, s.port, server={"workers": "1"})
        for i in range(5):
            assert send_one(m.port, msg=message(subject=f"n{i}"))[0] == 250
        assert len(s.messages) == 5
        assert all(tls for (_, _, _, tls) in s.messages)
        # One backend connection served all five transactions.
        assert s.connections == 1
    finally:
        s.close()


def test_smtp_sink_real_peer(make_moat, tmp_path):
    peer = SmtpSink(tmp_path)
    try:
        m = forward_to(make_moat, peer.port)
        msgs = [message(subject=f"s{i}", body=f"body {i}\r\n") for i in range(3)]
        for msg in msgs:
            assert send_one(m.port, msg=msg)[0] == 250
        time.sleep(0.3)
        dumps = peer.dumps()
        assert len(dumps) == 3
        for msg in msgs:
            assert sum(msg.replace("\r\n", "\n").encode() in d for d in dumps) == 1
    finally:
        peer.stop()


def test_dovecot_lmtp(make_moat, tmp_path):
    """One recipient per transaction toward LMTP (exactly-once delivery):
    the second gets 452 4.5.3 and comes in a transaction of its own."""
    dv = Dovecot(tmp_path, users=("alice", "bob"))
    try:
        m = make_moat(sections={"delivery": {"method": "lmtp",
                                             "route": f"127.0.0.1:{dv.port}"},
                                "recipients": {"users": ""}})
        msg = message(subject="lmtp")
        c = greet(m.port)
        code, lines = c.cmd("MAIL FROM:<a@example.org>", 250)
        code, lines = c.cmd("RCPT TO:<nobody@example.test>")
        assert code == 550, lines          # Dovecot's own refusal
        c.cmd("RCPT TO:<alice@example.test>", 250)
        code, lines = c.cmd("RCPT TO:<bob@example.test>")
        assert code == 452 and "4.5.3" in lines[0], lines
        c.cmd("DATA", 354)
        c.send(msg + ".\r\n")
        assert c.reply()[0] == 250
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<bob@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(msg + ".\r\n")
        assert c.reply()[0] == 250
        for u in ("alice", "bob"):
            got = dv.delivered(u)
            assert len(got) == 1 and got[0].endswith(msg.replace("\r\n", "\n").encode())
    finally:
        dv.stop()


def test_per_domain_route(make_moat, sink):
    other = Sink()
    try:
        routes = f"example.test:127.0.0.1:{sink.port}\nexample.org:127.0.0.1:{other.port}\n"
        m = make_moat(server={"local_domains": "example.test example.org"},
                      sections={"delivery": {"method": "smtp", "smtproutes": "routes"},
                                "recipients": {"users": ""}},
                      files={"routes": routes})
        assert send_one(m.port, rcpts=("a@example.test",))[0] == 250
        assert send_one(m.port, rcpts=("b@example.org",))[0] == 250
        assert [x[1] for x in sink.messages] == [["a@example.test"]]
        assert [x[1] for x in other.messages] == [["b@example.org"]]
        # Two routes in one transaction: the second waits its turn.
        c = greet(m.port)
        c.cmd("MAIL FROM:<x@example.net>", 250)
        c.cmd("RCPT TO:<a@example.test>", 250)
        assert c.text("RCPT TO:<b@example.org>").startswith("452 4.5.3")
    finally:
        other.close()


@pytest.mark.parametrize("exit_code,reply", [(0, 250), (31, 554), (71, 451), (81, 451)])
def test_qmail_queue(make_moat, tmp_path, exit_code, reply):
    qq = tmp_path / "qq"
    qq.mkdir()
    shutil.copy(os.path.join(HERE, "fake-qmail-queue"), qq / "qmail-queue")
    (qq / "exit").write_text(str(exit_code))
    m = make_moat(sections={"delivery": {"method": "qmail-queue",
                                         "qmail_queue": str(qq / "qmail-queue")}})
    msg = message(subject="qq")
    code, text = send_one(m.port, rcpts=("alice@example.test", "bob@example.test"), msg=msg)
    assert code == reply, text
    spool = qq / "spool"
    env = (spool / "0.env").read_bytes()
    assert env == b"Fsender@example.org\0Talice@example.test\0Tbob@example.test\0\0"
    assert (spool / "0.msg").read_bytes().endswith(msg.replace("\r\n", "\n").encode())


def test_qmail_queue_missing_program(make_moat, tmp_path):
    m = make_moat(sections={"delivery": {"method": "qmail-queue",
                                         "qmail_queue": str(tmp_path / "nope")}})
    assert send_one(m.port)[0] == 451


def test_maildir_layout(moat):
    assert send_one(moat.port, rcpts=("alice+tag@example.test", "bob@example.test"))[0] == 250
    assert len(moat.delivered("alice")) == 1 and len(moat.delivered("bob")) == 1
    assert moat.tmp_files() == []
    for user in ("alice", "bob"):
        assert os.path.isdir(os.path.join(moat.maildir, "example.test", user, "cur"))


def test_maildir_unwritable_is_4xx(make_moat, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory should be")
    m = make_moat(sections={"delivery": {"maildir": str(blocked)}})
    c = greet(m.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    code, lines = c.cmd("RCPT TO:<alice@example.test>")
    assert code == 451


def test_forward_esmtp_parameters(make_moat):
    s = Sink()
    plain = Sink(smtputf8=False)
    try:
        m = forward_to(make_moat, s.port)
        c = greet(m.port)
        c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        c.send("Subject: caf\u00e9\r\n\r\nna\u00efve\r\n.\r\n".encode())
        assert c.reply()[0] == 250
        mail = [x for x in s.commands if x.startswith(b"MAIL")][-1]
        assert b" BODY=8BITMIME" in mail and b" SMTPUTF8" in mail
        # A next hop without SMTPUTF8 never gets an SMTPUTF8 transaction.
        m2 = forward_to(make_moat, plain.port)
        c = greet(m2.port)
        c.cmd("MAIL FROM:<a@example.org> SMTPUTF8", 250)
        assert c.text("RCPT TO:<alice@example.test>").startswith("553 5.6.7")
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        assert not any(x.startswith(b"MAIL") and b"SMTPUTF8" in x for x in plain.commands)
    finally:
        s.close()
        plain.close()
