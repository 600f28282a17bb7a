"""Content work off the loop (issue 13, item 8): while a message is being
read and scored (or learnt) on the content threads, the same worker
answers other clients and delivers other mail. The jobs are held on a
FIFO the test controls (`[bayes] debug_hold`), so the test knows they are
still running when it talks to the worker: no timing is asserted."""
import errno
import os
import socket
import time

import bombs_path  # noqa: F401  (puts bench/content on sys.path)
import bombs
from moatlib import dot_stuff, greet, message, send_one


def hold_moat(make_moat, tmp_path, **bayes):
    fifo = os.path.join(str(tmp_path), "hold")
    os.mkfifo(fifo)
    conf = {"min_spam": "1", "min_ham": "1", "debug_hold": fifo,
            "spam_address": "spam@example.test",
            "ham_address": "ham@example.test"}
    conf.update(bayes)
    m = make_moat(workers=1, users=["alice@example.test"],
                  files={"nets": "127.0.0.0/8\n"},
                  sections={"pipeline": {"filters":
                                         "relay bayes recipients score"},
                            "relay": {"networks": "nets"},
                            "bayes": conf})
    return m, fifo


def wait_held(fifo, timeout=20.0):
    """Opens the FIFO's write end once a job has its read end open, i.e.
    once a job is held; -> the descriptor (write a byte to release it)."""
    end = time.time() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO or time.time() > end:
                raise
            time.sleep(0.01)


def no_reply_yet(c):
    """True when nothing has come back on c yet (a non-blocking peek)."""
    if c.buf:
        return False
    timeout = c.sock.gettimeout()
    c.sock.setblocking(False)
    try:
        c.sock.recv(1, socket.MSG_PEEK)
        return False
    except BlockingIOError:
        return True
    finally:
        c.sock.settimeout(timeout)


def start_data(m, msg, rcpt="alice@example.test"):
    c = greet(m.port)
    c.cmd("MAIL FROM:<b@example.org>", 250)
    c.cmd(f"RCPT TO:<{rcpt}>", 250)
    c.cmd("DATA", 354)
    c.send(dot_stuff(msg.encode()) + b".\r\n")
    return c


def test_bomb_scored_off_the_loop(make_moat, tmp_path):
    m, fifo = hold_moat(make_moat, tmp_path)
    a = start_data(m, bombs.deep(800_000))
    fd = wait_held(fifo)
    try:
        # The bomb's job is held on a content thread; the one worker
        # greets, answers NOOP and delivers for another client meanwhile.
        b = greet(m.port)
        assert b.cmd("NOOP")[0] == 250
        b.cmd("QUIT")
        b.close()
        assert no_reply_yet(a)
    finally:
        os.write(fd, b"x")
        os.close(fd)
    code, lines = a.reply()
    assert code == 250, lines
    a.cmd("QUIT")
    a.close()
    assert len(m.delivered()) == 1


def test_small_message_scored_on_the_loop(make_moat, tmp_path):
    # Small and plain: read on the loop, never held.
    m, fifo = hold_moat(make_moat, tmp_path)
    assert send_one(m.port, msg=message(body="hello\r\n"))[0] == 250


def test_delivery_not_behind_learning(make_moat, tmp_path):
    m, fifo = hold_moat(make_moat, tmp_path)
    a = start_data(m, message(subject="t", body="zorbix frimp\r\n"),
                   rcpt="spam@example.test")
    fd = wait_held(fifo)
    try:
        # Learning is held on its own thread: Maildir delivery (the
        # delivery threads) goes on.
        assert send_one(m.port, msg=message(body="hi\r\n"))[0] == 250
        assert len(m.delivered()) == 1
        assert no_reply_yet(a)
    finally:
        os.write(fd, b"x")
        os.close(fd)
    assert a.reply()[0] == 250
    a.cmd("QUIT")
    a.close()
    assert "event=bayes_learn class=spam messages=1" in m.log()


def test_budget_stops_the_read(make_moat, tmp_path):
    m = make_moat(workers=1, users=["alice@example.test"],
                  sections={"pipeline": {"filters":
                                         "relay bayes recipients score"},
                            "bayes": {"max_cpu": "1",
                                      "budget_score": "0.5"}})
    assert send_one(m.port, msg=bombs.wide(20_000))[0] == 250
    assert "event=bayes_budget max_cpu=1" in m.log()
    ev = m.events()
    assert ev[-1]["symbols"].get("BAYES_BUDGET") == 0.5
    assert len(m.delivered()) == 1


def test_client_gone_while_scored(make_moat, tmp_path):
    # The client hangs up while its message is held: the job is
    # cancelled, its completion dropped, and the worker goes on.
    m, fifo = hold_moat(make_moat, tmp_path)
    a = start_data(m, bombs.wide(20_000))
    fd = wait_held(fifo)
    a.close()
    os.write(fd, b"x")
    os.close(fd)
    assert send_one(m.port, msg=message(body="after\r\n"))[0] == 250
    assert len(m.delivered()) == 1
