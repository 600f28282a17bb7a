"""LMTP exactly-once: the backend answers the message once per recipient
(RFC 2033 §4.2) while the client hears one reply, so a transaction toward
LMTP carries one recipient; later ones get 452 4.5.3 and come back in a
transaction of their own (RFC 5321 §3.3). A recipient the backend said
250 to is never delivered again, whatever the client retries."""
from backends import Backend
from moatlib import greet, message

A, B = "alice@example.test", "bob@example.test"


def lmtp_moat(make_moat, port):
    return make_moat(sections={"delivery": {"method": "lmtp",
                                            "route": f"127.0.0.1:{port}"},
                               "recipients": {"users": ""}})


def retrying_client(port, rcpts, attempts, before=None):
    """A client MTA as RFC 5321 §4.5.4 has it: recipients deferred at RCPT
    or at end of data are tried again in a later transaction, the ones
    that got 250 (or 5xx) are done. -> recipients still pending."""
    pending = list(rcpts)
    for n in range(attempts):
        if not pending:
            break
        if before:
            before(n)
        c = greet(port)
        c.cmd("MAIL FROM:<sender@example.org>", 250)
        took = []
        for r in list(pending):
            code, lines = c.cmd(f"RCPT TO:<{r}>")
            if code == 250:
                took.append(r)
            elif code // 100 == 5:
                pending.remove(r)
            else:
                assert code in (451, 452), lines
        if took:
            c.cmd("DATA", 354)
            c.send(message(subject="once") + ".\r\n")
            code, lines = c.reply()
            if code // 100 != 4:
                for r in took:
                    pending.remove(r)
        c.cmd("QUIT")
        c.close()
    return pending


def test_partial_failure_delivers_each_recipient_once(make_moat):
    """The backend takes both at RCPT; after the message it says 250 for
    alice and 452 for bob until it is told to accept. Today's 451 for the
    whole message made every retry deliver alice again."""
    be = Backend(lmtp=True)
    refuse = {B}
    be.on_final = lambda rcpts, data: [
        b"452 4.2.2 over quota" if r in refuse else b"250 2.0.0 saved"
        for r in rcpts]
    try:
        m = lmtp_moat(make_moat, be.port)

        def before(n):
            if n == 3:
                refuse.clear()
        left = retrying_client(m.port, [A, B], attempts=6, before=before)
        assert left == []
        assert be.delivered(A) == 1
        assert be.delivered(B) == 1
        # One recipient per backend transaction, never two.
        for conn in be.conns:
            n = 0
            for cmd in conn.commands:
                if cmd.startswith(b"MAIL"):
                    n = 0
                elif cmd.startswith(b"RCPT"):
                    n += 1
                    assert n == 1, conn.commands
    finally:
        be.close()


def test_second_recipient_gets_452_453(make_moat):
    be = Backend(lmtp=True)
    be.on_rcpt = lambda r: b"550 5.1.1 no such user" if r.startswith("nobody") \
        else b"250 2.1.5 ok"
    try:
        m = lmtp_moat(make_moat, be.port)
        c = greet(m.port)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        # A recipient the backend refused does not count.
        assert c.text("RCPT TO:<nobody@example.test>").startswith("550 5.1.1")
        c.cmd(f"RCPT TO:<{A}>", 250)
        assert c.text(f"RCPT TO:<{B}>").startswith("452 4.5.3")
        c.cmd("DATA", 354)
        c.send(message() + ".\r\n")
        assert c.reply()[0] == 250
        # The next transaction on the same connection takes bob.
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd(f"RCPT TO:<{B}>", 250)
        c.cmd("DATA", 354)
        c.send(message() + ".\r\n")
        assert c.reply()[0] == 250
        c.cmd("QUIT", 221)
        assert be.delivered(A) == 1 and be.delivered(B) == 1
    finally:
        be.close()


def test_lmtp_permanent_refusal_after_data(make_moat):
    """One recipient: the backend's 5xx after the message is the client's."""
    be = Backend(lmtp=True)
    be.on_final = lambda rcpts, data: [b"552 5.2.2 mailbox full"] * len(rcpts)
    try:
        m = lmtp_moat(make_moat, be.port)
        assert retrying_client(m.port, [A], attempts=1) == []
        assert be.delivered(A) == 0
    finally:
        be.close()
