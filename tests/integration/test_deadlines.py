"""Deadlines, not only idle timeouts: a client that trickles one byte at
a time, each within the idle timeout, cannot hold a command line, a
message or a STARTTLS handshake open past its deadline. Before, each
byte re-armed the idle timeout and such a client kept its slot without
end (97 s and counting with 10 s timeouts)."""
import socket
import time

from moatlib import Client, greet

# Idle timeouts far longer than the deadlines under test: only a deadline
# can end these sessions within the trickle's bound.
SERVER = {"timeout_command": "30", "timeout_data": "30",
          "deadline_command": "2", "deadline_message": "3",
          "deadline_tls_handshake": "2"}


def trickle(c, data, until, gap=0.25):
    """Sends data a byte at a time until the server closes or until
    `until` seconds pass; -> (closed, what the server said)."""
    c.sock.settimeout(gap)
    got = b""
    end = time.time() + until
    for b in data:
        if time.time() > end:
            break
        try:
            c.sock.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            return True, got
        try:
            chunk = c.sock.recv(4096)
            if not chunk:
                return True, got
            got += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            return True, got
    return False, got


def test_command_line_deadline(make_moat):
    moat = make_moat(server=SERVER)
    c = greet(moat.port)
    closed, said = trickle(c, b"NOOP " + b"x" * 200, until=20)
    assert closed, "a trickled command line was never cut off"
    assert b"421 4.4.2" in said and b"Deadline" in said
    assert "event=deadline kind=command" in moat.log()


def test_whole_lines_do_not_add_up(make_moat):
    """The command deadline is per line: many quick lines are fine."""
    moat = make_moat(server=SERVER)
    c = greet(moat.port)
    end = time.time() + 3
    n = 0
    while time.time() < end:
        assert c.text("NOOP") == "250 2.0.0 OK"
        n += 1
    assert n > 5


def test_message_deadline(make_moat):
    moat = make_moat(server=dict(SERVER, deadline_message="3",
                                 deadline_command="30"))
    c = greet(moat.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    line = b"Subject: slow\r\n\r\n" + b"trickled body line\r\n" * 200
    closed, said = trickle(c, line, until=30, gap=0.1)
    assert closed, "a trickled message was never cut off"
    assert b"421 4.4.2" in said
    assert "event=deadline kind=message" in moat.log()
    assert moat.delivered() == []


def test_tls_handshake_deadline(make_moat):
    moat = make_moat(server=SERVER)
    c = greet(moat.port)
    c.cmd("STARTTLS", 220)
    # The start of a TLS ClientHello record, one byte at a time.
    hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]) + \
        b"\x03\x03" + b"\x00" * 300
    closed, _ = trickle(c, hello, until=20)
    assert closed, "a stalled handshake kept its slot"
    assert "event=deadline kind=tls_handshake" in moat.log()


def test_tls_still_works(make_moat):
    moat = make_moat(server=dict(SERVER, deadline_tls_handshake="1"))
    c = greet(moat.port)
    c.starttls()
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: tls\r\n\r\nhi\r\n.\r\n")
    assert c.reply()[0] == 250
    # The handshake's deadline ended with the handshake.
    time.sleep(1.5)
    assert c.text("NOOP") == "250 2.0.0 OK"
