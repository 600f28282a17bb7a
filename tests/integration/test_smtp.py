"""The SMTP conversation (RFC 5321 and its extensions) against moatd."""
import socket
import smtplib
import time

from moatlib import Client, greet, message, send_one


def test_greeting_and_ehlo(moat):
    c = Client(moat.port)
    code, lines = c.reply()
    assert code == 220 and lines[0].startswith("220 mx.example.test ESMTP")
    code, lines = c.cmd("EHLO client.example.org", 250)
    caps = {l[4:].split()[0] for l in lines[1:]}
    assert {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES",
            "STARTTLS", "SMTPUTF8", "CHUNKING"} <= caps
    assert any(l[4:] == f"SIZE {25 * 1024 * 1024}" for l in lines)
    c.cmd("QUIT", 221)


def test_helo_has_no_extensions(moat):
    c = Client(moat.port)
    c.reply()
    code, lines = c.cmd("HELO client", 250)
    assert len(lines) == 1
    # ESMTP parameters need EHLO.
    assert c.text("MAIL FROM:<a@example.org> SIZE=10").startswith("555 5.5.4")


def test_small_commands(moat):
    c = greet(moat.port)
    assert c.text("NOOP") == "250 2.0.0 OK"
    assert c.text("VRFY alice").startswith("252 2.5.2")
    assert c.text("EXPN list").startswith("502 5.5.1")
    assert c.text("HELP").startswith("214 2.0.0")
    assert c.text("RSET") == "250 2.0.0 OK"
    assert c.text("AUTH PLAIN").startswith("502 5.5.1")
    assert c.text("XYZZY").startswith("500 5.5.2")
    assert c.cmd("QUIT")[0] == 221
    assert c.closed()


def test_sequence_errors(moat):
    c = Client(moat.port)
    c.reply()
    assert c.text("MAIL FROM:<a@example.org>") == \
        "503 5.5.1 Send HELO/EHLO first"
    c.cmd("EHLO x", 250)
    assert c.text("RCPT TO:<alice@example.test>").startswith("503 5.5.1")
    assert c.text("DATA").startswith("503 5.5.1")
    c.cmd("MAIL FROM:<a@example.org>", 250)
    # A nested MAIL says so (not "Send HELO/EHLO first").
    assert c.text("MAIL FROM:<a@example.org>").startswith(
        "503 5.5.1 Sender already specified")
    assert c.text("DATA").startswith("554 5.5.1")  # no recipient yet
    c.cmd("RCPT TO:<nobody@example.test>", 550)
    assert c.text("MAIL FROM:<b@example.org>").startswith(
        "503 5.5.1 Sender already specified")
    assert c.text("DATA") == "554 5.5.1 No valid recipients"


def test_syntax_errors(moat):
    c = greet(moat.port)
    assert c.text("MAIL FROM:a@example.org").startswith("501 5.1.7")
    assert c.text("MAIL TO:<a@example.org>").startswith("501 5.5.4")
    assert c.text("MAIL FROM:<a@example.org> SIZE=junk").startswith("501 5.5.4")
    assert c.text("MAIL FROM:<a@example.org> SIZE=99999999999999999999").startswith("501 5.5.4")
    assert c.text("MAIL FROM:<a@example.org> FOO=BAR").startswith("555 5.5.4")
    assert c.text("MAIL FROM:<a@example.org.>").startswith("501 5.1.7")
    assert c.text("EHLO").startswith("501 5.5.4")


def test_nul_and_8bit_in_commands(moat):
    c = greet(moat.port)
    c.send(b"NOOP\x00x\r\n")
    assert c.reply()[0] == 500
    c.send(b"MAIL FROM:<caf\xc3\xa9@example.org>\r\n")
    code, lines = c.reply()
    assert code == 553 and "5.6.7" in lines[0]          # needs SMTPUTF8
    c.send(b"MAIL FROM:<caf\xe9@example.org> SMTPUTF8\r\n")
    assert c.reply()[0] == 500                          # not UTF-8
    c.send(b"EHLO caf\xc3\xa9\r\n")
    assert c.reply()[0] == 500                          # 8-bit where ASCII only
    # The failed EHLO changed nothing: the first one still stands.
    c.send(b"MAIL FROM:<caf\xc3\xa9@example.org> SMTPUTF8\r\n")
    assert c.reply()[0] == 250


def test_smtputf8_delivery(make_moat):
    m = make_moat(users=["alice@example.test", "j\u00f6rg@example.test"])
    c = greet(m.port)
    c.send("MAIL FROM:<s\u00e9nder@example.org> SMTPUTF8\r\n".encode())
    assert c.reply()[0] == 250
    c.send("RCPT TO:<alice@example.test>\r\n".encode())
    assert c.reply()[0] == 250
    c.cmd("DATA", 354)
    c.send("Subject: gr\u00fc\u00dfe\r\n\r\nH\u00e9llo\r\n.\r\n".encode())
    assert c.reply()[0] == 250
    got = m.delivered()
    assert len(got) == 1 and "gr\u00fc\u00dfe".encode() in got[0]
    assert b"with UTF8SMTP" in got[0]


def test_command_line_limit(moat):
    # 1024 octets with the CRLF (512 of RFC 5321 4.5.3.1.4, raised for
    # ESMTP parameters as RFC 1869 allows): N is parsed ...
    c = greet(moat.port)
    c.send("NOOP " + "x" * (1024 - 7) + "\r\n")
    assert c.reply()[0] == 250
    # ... N+1 is refused whole, never cut and run.
    c.send("NOOP " + "x" * (1024 - 6) + "\r\n")
    assert c.reply()[0] == 500
    c.send("RSET " + "y" * 5000 + "\r\n")
    assert c.reply()[0] == 500
    assert c.text("NOOP") == "250 2.0.0 OK"


def test_command_line_limit_configured(make_moat):
    m = make_moat(server={"max_command_line": "512"})
    c = greet(m.port)
    c.send("NOOP " + "x" * (512 - 7) + "\r\n")
    assert c.reply()[0] == 250
    c.send("NOOP " + "x" * (512 - 6) + "\r\n")
    assert c.reply()[0] == 500


def test_max_errors_disconnects(make_moat):
    m = make_moat(server={"max_errors": "4"})
    c = greet(m.port)
    for _ in range(3):
        assert c.cmd("BOGUS")[0] == 500
    c.send("BOGUS\r\n")
    assert c.reply()[0] == 500
    code, lines = c.reply()
    assert code == 421
    assert c.closed()


def test_recipient_limit(make_moat):
    users = [f"u{i}@example.test" for i in range(12)]
    m = make_moat(server={"max_recipients": "10"}, users=users)
    c = greet(m.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    for i in range(10):
        c.cmd(f"RCPT TO:<u{i}@example.test>", 250)
    assert c.text("RCPT TO:<u10@example.test>").startswith("452 4.5.3")
    c.cmd("DATA", 354)
    c.send(message() + ".\r\n")
    assert c.reply()[0] == 250
    assert len(m.all_delivered()) == 10


def test_size_declared_and_actual(make_moat):
    m = make_moat(server={"max_message_size": "10k"})
    c = greet(m.port)
    assert c.text("MAIL FROM:<a@example.org> SIZE=10240").startswith("250")
    c.cmd("RSET", 250)
    assert c.text("MAIL FROM:<a@example.org> SIZE=10241").startswith("552 5.3.4")
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message(body="x" * 70 + "\r\n") * 200 + ".\r\n")
    code, lines = c.reply()
    assert code == 552 and "5.3.4" in lines[0]
    assert m.delivered() == []
    # The session carries on.
    assert c.text("NOOP") == "250 2.0.0 OK"


def test_text_line_limit(moat):
    c = greet(moat.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send("Subject: x\r\n\r\n" + "y" * 998 + "\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send("Subject: x\r\n\r\n" + "y" * 999 + "\r\n.\r\n")
    code, lines = c.reply()
    assert code == 550 and "too long" in lines[0]
    assert len(moat.delivered()) == 1


def test_header_flood(make_moat):
    m = make_moat(server={"max_header_lines": "100"})
    c = greet(m.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send("".join(f"X-H{i}: v\r\n" for i in range(5000)) + "\r\nbody\r\n.\r\n")
    code, lines = c.reply()
    assert code == 552 and "header" in lines[0]
    assert m.delivered() == []


def test_pipelining(moat):
    c = Client(moat.port)
    c.reply()
    c.send("EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
           "RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    codes = [c.reply()[0] for _ in range(6)]
    assert codes == [250, 250, 250, 550, 250, 354]
    c.send(message() + ".\r\nQUIT\r\n")
    assert c.reply()[0] == 250
    assert c.reply()[0] == 221
    assert len(moat.all_delivered()) == 2


def test_bdat(moat):
    body = message().encode()
    c = greet(moat.port)
    c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    half = len(body) // 2
    c.send(b"BDAT %d\r\n" % half + body[:half])
    assert c.reply()[0] == 250
    c.send(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
    code, lines = c.reply()
    assert code == 250, lines
    got = moat.delivered()
    assert len(got) == 1 and got[0].endswith(body.replace(b"\r\n", b"\n"))
    # BDAT 0 LAST after a chunk, and BDAT without recipients.
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.send(b"BDAT %d\r\n" % len(body) + body)
    assert c.reply()[0] == 250
    assert c.cmd("BDAT 0 LAST")[0] == 250
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<nobody@example.test>", 550)
    c.send(b"BDAT 5 LAST\r\nhello")
    assert c.reply()[0] == 554
    assert c.text("NOOP") == "250 2.0.0 OK"
    # A BDAT size we cannot read: we cannot resync, so we hang up.
    c.send(b"BDAT junk\r\n")
    assert c.reply()[0] == 501
    assert c.closed()


def test_received_header_and_delivery(moat):
    msg = message(subject="hello")
    assert send_one(moat.port, msg=msg)[0] == 250
    got = moat.delivered()[0]
    head, _, rest = got.partition(b"\n")
    assert head == b"Return-Path: <sender@example.org>"
    assert b"Delivered-To: alice@example.test\n" in got
    assert b"Received: from client.example.org ([127.0.0.1])\n\tby mx.example.test (moat) with ESMTP id " in got
    assert b"\tfor <alice@example.test>;" in got
    assert got.endswith(msg.replace("\r\n", "\n").encode())


def test_smtplib_and_swaks(moat):
    s = smtplib.SMTP("127.0.0.1", moat.port)
    s.sendmail("x@example.org", ["alice@example.test"], message())
    s.quit()
    import subprocess
    out = subprocess.run(["swaks", "--server", f"127.0.0.1:{moat.port}",
                          "--to", "bob@example.test", "--from", "y@example.org"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(moat.delivered("alice")) == 1 and len(moat.delivered("bob")) == 1


def test_command_timeout(make_moat):
    m = make_moat(server={"timeout_command": "1"})
    c = greet(m.port)
    time.sleep(1.6)
    code, lines = c.reply()
    assert code == 421 and "4.4.2" in lines[0]
    assert c.closed()


def test_connection_limits(make_moat):
    m = make_moat(server={"max_per_ip": "3", "workers": "2"})
    held = [Client(m.port) for _ in range(3)]
    for c in held:
        assert c.reply()[0] == 220
    extra = Client(m.port)
    code, lines = extra.reply()
    assert code == 421 and "from your address" in lines[0]
    assert extra.closed()
    held[0].cmd("QUIT", 221)
    held[0].close()
    time.sleep(0.3)
    again = Client(m.port)
    assert again.reply()[0] == 220
    refused = [e for e in m.events() if e["event"] == "refused"]
    assert refused and refused[0]["reason"] == "max_per_ip"


def test_max_connections(make_moat):
    m = make_moat(server={"max_connections": "2", "workers": "1"})
    a, b = Client(m.port), Client(m.port)
    assert a.reply()[0] == 220 and b.reply()[0] == 220
    c = Client(m.port)
    assert c.reply()[0] == 421
