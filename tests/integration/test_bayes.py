"""The classifier end to end: learn a small corpus with moatctl, then
messages sent through moatd come out tagged, untouched or refused as the
domain's thresholds say, and a learn while moatd runs is visible to the
next message."""
import os
import subprocess
import time

from moatlib import ROOT, message, send_one

MOATCTL = os.path.join(ROOT, os.environ.get("MOATCTL", "build/moatctl"))

SPAM = ["cheap pills winner offer click now", "viagra cheap offer unsubscribe",
        "winner lottery claim prize click", "cheap meds discount offer now",
        "click here winner free money offer", "free prize claim cheap pills"]
HAM = ["meeting agenda for the project review", "notes from the design review",
       "project schedule and the agenda", "lunch after the review meeting",
       "design notes attached for the project", "agenda items for tomorrow"]


def corpus(tmp, name, texts):
    d = os.path.join(str(tmp), name)
    os.makedirs(d, exist_ok=True)
    for i, t in enumerate(texts):
        with open(os.path.join(d, f"{i}.eml"), "w") as f:
            f.write(message(subject=f"{name} {i}", body=t + "\r\n"))
    return d


def ctl(m, *args):
    r = subprocess.run([MOATCTL, "-c", m.conf, *args], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


def start(make_moat):
    return make_moat(
        server={"local_domains": "example.test strict.test"},
        users=["alice@example.test", "carol@strict.test"],
        sections={"pipeline": {"filters": "relay recipients bayes score"},
                  "bayes": {"min_spam": "5", "min_ham": "5",
                            "map": "0.1:-1 0.9:0 1:6"},
                  "score": {"tag": "5", "reject": "8",
                            "subject_prefix": "[SPAM]"}},
        extra="\n[domain strict.test]\nscore.reject = 5\n")


def test_learn_then_tag_and_reject(make_moat, tmp_path):
    m = start(make_moat)
    out = ctl(m, "learn", "--spam", corpus(tmp_path, "spam", SPAM))
    assert "6 learnt" in out
    ctl(m, "learn", "--ham", corpus(tmp_path, "ham", HAM))
    # Learnt twice: counted once.
    assert "6 already known" in ctl(m, "learn", "--ham",
                                    os.path.join(str(tmp_path), "ham"))
    stats = ctl(m, "stats")
    assert "learnt 6 spam, 6 ham" in stats
    assert "12 messages keep their features for the perceptron" in stats

    spam = message(subject="offer", body="cheap pills offer click now winner\r\n")
    ham = message(subject="agenda", body="the project review meeting agenda\r\n")
    assert send_one(m.port, msg=spam)[0] == 250
    assert send_one(m.port, msg=ham)[0] == 250
    got = m.delivered()
    assert len(got) == 2
    # Maildir names do not sort by arrival: find each by its Message-ID.
    got = sorted(got, key=lambda d: b"<agenda@" in d)
    # Maildir holds LF line ends.
    assert b"X-Spam-Flag: YES\n" in got[0]
    assert b"X-Spam-Status: Yes, score=6.0 required=5.0 tests=BAYES_90" in got[0]
    assert b"Subject: [SPAM] offer\n" in got[0]
    assert b"X-Spam-Flag" not in got[1]
    assert b"X-Spam-Status: No, score=-1.0" in got[1]
    assert b"Subject: agenda\n" in got[1]
    # strict.test refuses from 5: the same spam is a 550 with the session.
    code, text = send_one(m.port, rcpts=("carol@strict.test",), msg=spam)
    assert code == 550 and "5.7.1" in text and "session" in text
    assert m.delivered("carol", "strict.test") == []
    ev = m.events(want=4)
    refused = [e for e in ev if e.get("rcpts") and
               e["rcpts"][0].get("to") == "carol@strict.test"]
    assert refused and refused[-1]["symbols"] == {"BAYES_90": 6.0}
    assert refused[-1]["result"].startswith("550 5.7.1")

    # classify says why.
    path = os.path.join(str(tmp_path), "spam", "0.eml")
    out = ctl(m, "classify", path)
    assert ": spam" in out and "cheap" in out


def test_learn_while_running(make_moat, tmp_path):
    m = start(make_moat)
    ctl(m, "learn", "--spam", corpus(tmp_path, "spam", SPAM))
    ctl(m, "learn", "--ham", corpus(tmp_path, "ham", HAM))
    novel = message(subject="zq", body="zorbix quandle frimp\r\n")

    def flagged():
        # Maildir names do not sort by arrival: count, do not index.
        return sum(b"X-Spam-Flag: YES" in d for d in m.delivered())
    assert send_one(m.port, msg=novel)[0] == 250
    assert flagged() == 0
    # Now learn those words as spam, with moatd running.
    ctl(m, "learn", "--spam", corpus(tmp_path, "more",
                                     ["zorbix quandle frimp deal",
                                      "frimp zorbix quandle now"]))
    assert send_one(m.port, msg=novel)[0] == 250
    assert flagged() == 1
    # Forgetting them again takes it back.
    ctl(m, "learn", "--forget", os.path.join(str(tmp_path), "more"))
    assert send_one(m.port, msg=novel)[0] == 250
    assert len(m.delivered()) == 3 and flagged() == 1


def training_moat(make_moat, trusted=True, workers=2, **bayes):
    conf = {"min_spam": "1", "min_ham": "1",
            "spam_address": "spam@example.test",
            "ham_address": "ham@example.test"}
    conf.update(bayes)
    return make_moat(
        users=["alice@example.test"], workers=workers,
        files={"nets": "127.0.0.0/8\n" if trusted else "10.0.0.0/8\n"},
        sections={"pipeline": {"filters": "relay bayes recipients score"},
                  "relay": {"networks": "nets"},
                  "bayes": conf})


def forwarded(inner):
    """A message carrying `inner` as a message/rfc822 attachment."""
    return ("From: alice@example.test\r\nTo: spam@example.test\r\n"
            "Subject: Fwd: look at this\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"fw\"\r\n\r\n"
            "--fw\r\nContent-Type: text/plain\r\n\r\nanother one\r\n"
            "--fw\r\nContent-Type: message/rfc822\r\n\r\n" + inner +
            "\r\n--fw--\r\n")


def test_training_addresses(make_moat):
    m = training_moat(make_moat)
    inner = message(subject="zorbix deal", body="zorbix quandle frimp\r\n")
    code, text = send_one(m.port, rcpts=("spam@example.test",),
                          msg=forwarded(inner))
    assert code == 250
    out = ctl(m, "stats")
    assert "learnt 1 spam, 0 ham" in out
    assert "event=bayes_learn class=spam messages=1" in m.log()
    # Learnt as the attached message, not the wrapper: the same message
    # learnt from a file is already known.
    path = os.path.join(m.dir, "inner.eml")
    with open(path, "w") as f:
        f.write(inner)
    assert "1 already known" in ctl(m, "learn", "--spam", path)
    # Sent as-is to ham@: learnt as ham; neither address is a mailbox.
    ham = message(subject="agenda", body="the project review agenda\r\n")
    assert send_one(m.port, rcpts=("ham@example.test",), msg=ham)[0] == 250
    assert "learnt 1 spam, 1 ham" in ctl(m, "stats")
    assert m.all_delivered() == []
    # With a real recipient too: delivered to alice, learnt as well.
    more = message(subject="more", body="frimp zorbix offer\r\n")
    assert send_one(m.port, rcpts=("spam@example.test", "alice@example.test"),
                    msg=more)[0] == 250
    stats = ctl(m, "stats")
    assert "learnt 2 spam, 1 ham" in stats
    # moatd kept their features and retrained the perceptron with them.
    assert "3 messages keep their features" in stats
    got = m.delivered()
    assert len(got) == 1 and b"frimp zorbix offer" in got[0]
    assert m.delivered("spam") == []


def test_training_address_refused_to_outsiders(make_moat):
    m = training_moat(make_moat, trusted=False)
    from moatlib import greet
    c = greet(m.port)
    c.cmd("MAIL FROM:<x@example.org>", 250)
    assert c.text("RCPT TO:<spam@example.test>").startswith("550 5.7.1")
    c.cmd("QUIT")
    c.close()


def test_spam_and_ham_in_one_transaction(make_moat):
    # One transaction teaches one class: the other training address gets
    # 452 4.5.3 at RCPT and is sent again on its own (RFC 5321 §3.3).
    m = training_moat(make_moat)
    from moatlib import greet
    c = greet(m.port)
    c.cmd("MAIL FROM:<alice@example.test>", 250)
    c.cmd("RCPT TO:<spam@example.test>", 250)
    assert c.text("RCPT TO:<ham@example.test>").startswith("452 4.5.3")
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message(subject="zq", body="zorbix quandle\r\n") + ".\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    c.close()
    assert "learnt 1 spam, 0 ham" in ctl(m, "stats")
    assert len(m.delivered()) == 1
    # Sent again to ham@ alone: learnt as ham (it moves).
    code, _ = send_one(m.port, rcpts=("ham@example.test",),
                       msg=message(subject="zq", body="zorbix quandle\r\n"))
    assert code == 250
    assert "learnt 0 spam, 1 ham" in ctl(m, "stats")


def test_training_rate_limit(make_moat):
    # Per client address and worker: one worker, so every connection
    # counts against the same window.
    m = training_moat(make_moat, workers=1, train_limit="2",
                      train_window="3600")
    for i in range(2):
        msg = message(subject=f"t{i}", body=f"zorbix {i} frimp\r\n")
        assert send_one(m.port, rcpts=("spam@example.test",),
                        msg=msg)[0] == 250
    from moatlib import greet
    c = greet(m.port)
    c.cmd("MAIL FROM:<alice@example.test>", 250)
    assert c.text("RCPT TO:<spam@example.test>").startswith("450 4.7.1")
    assert c.text("RCPT TO:<ham@example.test>").startswith("450 4.7.1")
    # Mail for real mailboxes is not limited.
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("QUIT")
    c.close()
    assert "learnt 2 spam, 0 ham" in ctl(m, "stats")
    assert "event=bayes_train_limit ip=127.0.0.1 limit=2" in m.log()


def wait_log(m, text, timeout=20.0):
    end = time.time() + timeout
    while text not in m.log():
        assert time.time() < end, f"no {text!r} in the log"
        time.sleep(0.02)


def test_refit_batched(make_moat):
    # Learning by mail writes counts per message; the perceptron is
    # refit once for a batch (here: at the third learnt message).
    m = training_moat(make_moat, workers=1, refit_messages="3",
                      refit_interval="3600")
    for i in range(2):
        msg = message(subject=f"r{i}", body=f"quandle {i} zorbix\r\n")
        assert send_one(m.port, rcpts=("spam@example.test",),
                        msg=msg)[0] == 250
    assert "event=bayes_learn class=spam messages=1 budget=0 unfit=2" \
        in m.log()
    assert "event=bayes_refit" not in m.log()
    msg = message(subject="r2", body="frimp quandle\r\n")
    assert send_one(m.port, rcpts=("ham@example.test",), msg=msg)[0] == 250
    wait_log(m, "event=bayes_refit learnt=3 kept=3")
    assert m.log().count("event=bayes_refit") == 1
