"""The pre-greeting test: a 220- teaser, a wait, then the final 220. A
client that talks before the final line is an early talker (refused at
RCPT, or dropped); one that waits is remembered and greeted at once next
time. Non-SMTP lines (HTTP, header fields) end the session."""
from moatlib import Client, dot_stuff, message

WAIT = {"pregreet_wait": "1500"}


def first_line(c):
    """The first line of the greeting, without waiting for the rest."""
    while b"\r\n" not in c.buf:
        chunk = c.sock.recv(4096)
        assert chunk, "closed before the greeting"
        c.buf += chunk
    line, _ = c.buf.split(b"\r\n", 1)
    return line.decode()


def test_early_talker_refused_at_rcpt(make_moat):
    m = make_moat(server=WAIT)
    c = Client(m.port)
    assert first_line(c).startswith("220-")
    c.send("EHLO bot.example\r\n")          # before the final 220
    code, lines = c.reply()                 # the whole greeting
    assert code == 220 and lines[0].startswith("220-")
    assert c.reply()[0] == 250              # EHLO, answered after it
    c.cmd("MAIL FROM:<a@example.org>", 250)
    code, lines = c.cmd("RCPT TO:<alice@example.test>")
    assert code == 554 and "5.5.1" in lines[0], lines
    c.cmd("RCPT TO:<postmaster@example.test>", 250)
    c.cmd("QUIT", 221)
    assert "event=early_talker" in m.log()
    line = [e for e in m.events() if e["event"] == "transaction"][-1]
    assert line["rcpts"][0]["by"] == "pregreet"


def test_early_talker_dropped(make_moat):
    m = make_moat(server=dict(WAIT, pregreet_drop="yes"))
    c = Client(m.port)
    assert first_line(c).startswith("220-")
    c.send("EHLO bot.example\r\n")
    code, lines = c.reply()
    assert code == 554 and "talking before the greeting" in lines[-1]
    assert c.closed()


def test_waiting_client_passes_and_is_remembered(make_moat):
    m = make_moat(server=dict(WAIT, workers="1"))
    c = Client(m.port)
    code, lines = c.reply()                 # waits for the final line
    assert code == 220 and len(lines) == 2 and lines[0].startswith("220-")
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(dot_stuff(message().encode()) + b".\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    # Next time: greeted at once, no teaser.
    c = Client(m.port)
    assert first_line(c).startswith("220 ")
    assert c.reply()[0] == 220
    c.cmd("QUIT", 221)
    assert "event=pregreet result=waited" in m.log()


def test_remembered_by_every_worker(make_moat):
    """A client that waited once is greeted at once by whichever of two
    workers takes its next connections (remembered per worker, each of
    six would meet the teaser again on the other worker half the time)."""
    m = make_moat(server=dict(WAIT, workers="2"))
    c = Client(m.port)
    code, lines = c.reply()
    assert code == 220 and lines[0].startswith("220-")
    c.cmd("QUIT", 221)
    for _ in range(6):
        c = Client(m.port)
        assert first_line(c).startswith("220 ")
        c.reply()
        c.cmd("QUIT", 221)


def test_non_smtp_commands_end_the_session(make_moat):
    m = make_moat()
    for line in ("GET / HTTP/1.0", "Subject: hello", "X-Mailer: bot"):
        c = Client(m.port)
        assert c.reply()[0] == 220
        code, lines = c.cmd(line)
        assert code == 554 and "Not an SMTP command" in lines[0], line
        assert c.closed()
    # An unknown verb is still just unknown.
    c = Client(m.port)
    assert c.reply()[0] == 220
    assert c.cmd("FOO bar")[0] == 500
    assert c.text("NOOP") == "250 2.0.0 OK"


def test_drain_ends_the_wait(make_moat):
    """SIGTERM: a client still in the wait is told 421 at once, not kept
    until drain_timeout."""
    m = make_moat(server={"pregreet_wait": "60000", "drain_timeout": "30"})
    c = Client(m.port)
    assert first_line(c).startswith("220-")
    m.proc.send_signal(15)
    code, lines = c.reply()
    assert code == 421 and "shutting down" in lines[-1], lines
    assert m.proc.wait(20) == 0


def deliver(c):
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(dot_stuff(message().encode()) + b".\r\n")
    assert c.reply()[0] == 250


def test_protocol_findings_are_scored(make_moat):
    """postscreen's "deep" tests, inline: a command sent before the last
    reply without PIPELINING offered, and a bare LF in a command line,
    become symbols of every transaction of the session."""
    m = make_moat()
    # HELO: PIPELINING is never offered; two commands at once.
    c = Client(m.port)
    assert c.reply()[0] == 220
    c.send("HELO client.example.org\r\nNOOP\r\n")
    assert c.reply()[0] == 250 and c.reply()[0] == 250
    c.send(b"NOOP\nNOOP\r\n")                # bare LF: refused
    assert c.reply()[0] == 500
    deliver(c)
    c.cmd("QUIT", 221)
    # EHLO offers PIPELINING: pipelining then is no finding.
    c = Client(m.port)
    assert c.reply()[0] == 220
    c.cmd("EHLO client.example.org", 250)
    c.send("NOOP\r\nNOOP\r\n")
    assert c.reply()[0] == 250 and c.reply()[0] == 250
    deliver(c)
    c.cmd("QUIT", 221)
    lines = [e for e in m.events(want=2) if e["event"] == "transaction"]
    assert lines[0]["symbols"] == {"PROTO_PIPELINING": 2.0,
                                   "PROTO_BARE_LF": 2.0}, lines[0]
    assert "PROTO_PIPELINING" not in lines[1]["symbols"], lines[1]
    assert "finding=unannounced_pipelining" in m.log()
