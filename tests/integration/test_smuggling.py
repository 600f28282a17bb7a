"""Bad input never gets through: SMTP smuggling, data before 354, and
commands pipelined after STARTTLS (CVE-2011-0411)."""
import subprocess

import pytest

from moatlib import Client, greet, message

# Each fake terminator is followed by a smuggled transaction; moat must
# keep reading to the real <CRLF>.<CRLF>, refuse the message, and never
# run the smuggled commands.
SMUGGLED = b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n"
VARIANTS = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.CR": b"\r.\r",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",
    "CR.CRLF": b"\r.\r\n",
    "extra-CR": b"\r\r\n.\r\r\n",
    "NUL-before-dot": b"\r\n\x00.\r\n",
    "NUL-after-dot": b"\r\n.\x00\r\n",
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_smuggling_variant(moat, name):
    c = greet(moat.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: x\r\n\r\nbody" + VARIANTS[name] + SMUGGLED + b"\r\n.\r\n")
    code, lines = c.reply()
    assert code == 550 and "5.6.0" in lines[0], lines
    # Nothing else was answered: the smuggled commands were message data.
    c.send(b"NOOP\r\n")
    assert c.reply() == (250, ["250 2.0.0 OK"])
    assert moat.all_delivered() == []
    ev = [e for e in moat.events() if e["event"] == "transaction"]
    assert ev[-1]["result"].startswith("550 5.6.0")


def test_bare_lf_in_bdat_refused(moat):
    c = greet(moat.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    data = b"Subject: x\r\n\r\nbody\n.\n" + SMUGGLED
    c.send(b"BDAT %d LAST\r\n" % len(data) + data)
    assert c.reply()[0] == 550
    assert moat.all_delivered() == []


def test_data_before_354(moat):
    c = greet(moat.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    # DATA and the message in one write, without waiting for 354.
    c.send("DATA\r\n" + message() + ".\r\n")
    code, lines = c.reply()
    assert code == 554 and "before the 354" in lines[0]
    assert c.closed()
    assert moat.all_delivered() == []


def test_starttls_injection_discarded(moat):
    c = greet(moat.port)
    # The plain-text tail after STARTTLS must not run inside TLS.
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
    assert c.reply()[0] == 220
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.sock = ctx.wrap_socket(c.sock)
    c.buf = b""
    # Under TLS the session starts over: MAIL needs a new EHLO, and no
    # reply to the injected MAIL is waiting for us.
    assert c.text("MAIL FROM:<a@example.org>").startswith("503 5.5.1")
    code, lines = c.cmd("EHLO again", 250)
    assert not any("STARTTLS" in l for l in lines)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message() + ".\r\n")
    assert c.reply()[0] == 250
    got = moat.delivered()[0]
    assert b"with ESMTPS (TLSv1.3 " in got or b"with ESMTPS (TLSv1.2 " in got


def test_openssl_s_client(moat):
    script = ("EHLO openssl.example\r\nMAIL FROM:<a@example.org>\r\n"
              "RCPT TO:<bob@example.test>\r\nDATA\r\n")
    p = subprocess.Popen(["openssl", "s_client", "-quiet", "-ign_eof", "-starttls", "smtp",
                          "-connect", f"127.0.0.1:{moat.port}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    import time
    p.stdin.write(b"EHLO openssl.example\r\n")
    p.stdin.flush()
    time.sleep(0.5)
    for line in script.split("\r\n")[1:]:
        if line:
            p.stdin.write(line.encode() + b"\r\n")
            p.stdin.flush()
            time.sleep(0.2)
    p.stdin.write(message().encode() + b".\r\nQUIT\r\n")
    p.stdin.flush()
    out, _ = p.communicate(timeout=20)
    assert b"250 2.0.0 Ok: queued" in out, out
    got = moat.delivered("bob")
    assert len(got) == 1 and b"with ESMTPS (TLSv1." in got[0]


def test_tls_in_json_log(moat):
    c = greet(moat.port)
    c.starttls()
    c.buf = b""
    c.cmd("EHLO tls.example", 250)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message(subject="tls") + ".\r\n")
    assert c.reply()[0] == 250
    ev = moat.events()[-1]
    assert ev["tls"] is True and ev["tls_info"].startswith("TLSv1.")
    assert ev["subject"] == "tls" and ev["message_id"] == "<tls@example.org>"
