"""Input in trickles and plain garbage: a transaction split into single
bytes or random chunks is answered exactly as a whole one, and random
bytes never crash moatd or let a message through."""
import random
import socket
import time

from moatlib import Client, greet, message

SCRIPT = ("EHLO trickle.example\r\nMAIL FROM:<a@example.org>\r\n"
          "RCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\n"
          "DATA\r\n")


def run_split(port, chunks_of):
    c = Client(port)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert c.reply()[0] == 220
    codes = []
    for line in SCRIPT.split("\r\n")[:-1]:
        data = (line + "\r\n").encode()
        for piece in chunks_of(data):
            c.send(piece)
            time.sleep(0.001)
        codes.append(c.reply()[0])
    body = (message(subject="trickle") + ".\r\n").encode()
    for piece in chunks_of(body):
        c.send(piece)
        time.sleep(0.001)
    codes.append(c.reply()[0])
    c.cmd("QUIT", 221)
    return codes


def test_one_byte_at_a_time(moat):
    codes = run_split(moat.port, lambda d: [d[i:i + 1] for i in range(len(d))])
    assert codes == [250, 250, 250, 550, 354, 250]
    assert len(moat.delivered()) == 1


def test_random_chunks(moat):
    rng = random.Random(7)

    def chunks(d):
        out, i = [], 0
        while i < len(d):
            n = rng.randint(1, 9)
            out.append(d[i:i + n])
            i += n
        return out
    for _ in range(5):
        assert run_split(moat.port, chunks) == [250, 250, 250, 550, 354, 250]
    assert len(moat.delivered()) == 5


def test_random_garbage(moat):
    rng = random.Random(11)
    alphabet = b"\x00\r\n.:<>@ \t\xff\xc3\xa9ABCDEFGHIJKLMNOPQRSTUVWXYZmailfromrcptto"
    for _ in range(60):
        c = Client(moat.port, timeout=5)
        c.reply()
        blob = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 3000)))
        try:
            c.send(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.test>\r\n" + blob)
        except OSError:
            pass
        c.close()
    # Still serving, nothing from the garbage was delivered.
    c = greet(moat.port)
    assert c.text("NOOP") == "250 2.0.0 OK"
    assert moat.delivered() == []


def test_half_close_still_answered(moat):
    """A client that sends everything and shuts its sending side down
    still gets every reply, the last ones after the (async) delivery."""
    s = socket.create_connection(("127.0.0.1", moat.port))
    s.sendall(("EHLO half.example\r\nMAIL FROM:<a@example.org>\r\n"
               "RCPT TO:<alice@example.test>\r\nDATA\r\n").encode())
    buf = b""
    while b"354 " not in buf:
        buf += s.recv(4096)
    s.sendall((message(subject="half") + ".\r\nQUIT\r\n").encode())
    s.shutdown(socket.SHUT_WR)
    while True:
        data = s.recv(4096)
        if not data:
            break
        buf += data
    assert b"250 2.0.0 Ok: queued" in buf and buf.endswith(b"221 2.0.0 mx.example.test Bye\r\n")
    assert len(moat.delivered()) == 1
