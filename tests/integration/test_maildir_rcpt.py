"""Maildir and probing: without a users list every well-formed local part
is a mailbox, but RCPT makes nothing on disk; a mailbox's directories are
made by the first message delivered to it (docs/DELIVERY.md)."""
import os
import random
import string

from moatlib import greet, send_one


def open_maildir(make_moat):
    return make_moat(sections={"recipients": {"users": ""}})


def test_dictionary_attack_makes_no_directories(make_moat):
    m = open_maildir(make_moat)
    rnd = random.Random(5321)
    c = greet(m.port)
    c.cmd("MAIL FROM:<probe@example.org>", 250)
    for _ in range(50):
        user = "".join(rnd.choice(string.ascii_lowercase) for _ in range(10))
        c.cmd(f"RCPT TO:<{user}@example.test>", 250)
    c.cmd("RSET", 250)
    c.cmd("QUIT", 221)
    c.close()
    made = []
    if os.path.isdir(m.maildir):
        for root, dirs, files in os.walk(m.maildir):
            made += [os.path.join(root, d) for d in dirs] + files
    assert made == []


def test_first_delivery_makes_the_mailbox(make_moat):
    m = open_maildir(make_moat)
    assert send_one(m.port, rcpts=("carol+news@example.test",))[0] == 250
    box = os.path.join(m.maildir, "example.test", "carol")
    for sub in ("tmp", "new", "cur"):
        assert os.path.isdir(os.path.join(box, sub))
    assert len(m.delivered("carol")) == 1
    assert m.tmp_files() == []
    # Only the mailbox that got mail exists.
    assert sorted(os.listdir(os.path.join(m.maildir, "example.test"))) == ["carol"]


def test_unsafe_local_part_still_refused_at_rcpt(make_moat):
    m = open_maildir(make_moat)
    c = greet(m.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    for bad in ("a!b", "a{b}", "a/b", "a~b"):
        assert c.text(f"RCPT TO:<{bad}@example.test>").startswith("5")
    assert c.text("RCPT TO:<a~b@example.test>").startswith("550 5.1.3")
    assert not os.path.exists(m.maildir + "/example.test")
    c.cmd("QUIT", 221)
    c.close()
