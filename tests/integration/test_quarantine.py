"""The quarantine end to end: the score filter refuses (a reject threshold
every message reaches) and keeps the message; moatctl lists, shows (with a
hostile Subject escaped), releases exactly once, learns from and deletes
it; the caps drop the oldest; the JSON line names the ID."""
import os
import re
import subprocess

from moatlib import ROOT, message, send_one

MOATCTL = os.path.join(ROOT, os.environ.get("MOATCTL", "build/moatctl"))


def ctl(m, *args, rc=0):
    r = subprocess.run([MOATCTL, "-c", m.conf, "quarantine", *args],
                       capture_output=True, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == rc, (r.returncode, out, err)
    return out, err, r.stdout


def start(make_moat, quarantine=None, pipeline="relay recipients score",
          extra="", domains="", users=()):
    q = {"retention_days": "30"}
    q.update(quarantine or {})
    return make_moat(
        server={"local_domains": "example.test other.test " + domains},
        users=["alice@example.test", "bob@example.test",
               "carol@other.test", *users],
        sections={"pipeline": {"filters": pipeline},
                  "bayes": {"min_spam": "1", "min_ham": "1"},
                  # Every message scores 0: refused where reject is 0.
                  "score": {"tag": "5", "reject": "0",
                            "quarantine": "yes"},
                  "quarantine": q},
        extra="\n[domain other.test]\nscore.reject = 10\n" + extra)


def ids(m, *args):
    out, _, _ = ctl(m, "list", *args)
    return [l.split()[0] for l in out.splitlines() if l.strip()]


def refused_id(m, subject="offer", body="cheap pills now\r\n", rcpts=None,
               want=1):
    code, text = send_one(m.port, rcpts=rcpts or ("alice@example.test",),
                          msg=message(subject=subject, body=body))
    assert code == 550 and "5.7.1" in text, text
    found = re.search(r"quarantine ([0-9a-f]{18})", text)
    assert found, text
    return found.group(1)


def test_keep_list_show_release_once(make_moat):
    m = start(make_moat)
    qid = refused_id(m, rcpts=("alice@example.test", "bob+x@example.test"))
    assert m.delivered() == []
    # Kept once: one file in new/, none left in tmp/.
    qdir = os.path.join(m.dir, "var", "quarantine")
    assert os.listdir(os.path.join(qdir, "new")) == [qid]
    assert os.listdir(os.path.join(qdir, "tmp")) == []
    kept = open(os.path.join(qdir, "new", qid), "rb").read()
    assert kept.startswith(b"X-Moat-Quarantine-ID: " + qid.encode() + b"\n")
    assert b"X-Moat-Rcpt-To: <bob+x@example.test>\n" in kept
    assert b"\r\n" not in kept            # Maildir: LF line ends
    # The JSON line names it.
    ev = m.events(want=1)
    assert ev[-1]["quarantine"] == qid
    assert ev[-1]["result"].startswith("550")
    assert "event=quarantined id=" + qid in m.log()

    assert ids(m) == [qid]
    assert ids(m, "--domain", "example.test") == [qid]
    assert ids(m, "--domain", "nowhere.test") == []
    assert ids(m, "--reason", "spam") == [qid]
    assert ids(m, "--reason", "virus") == []
    assert ids(m, "--since", "1h") == [qid]
    assert ids(m, "--since", "2030-01-01") == []

    out, _, _ = ctl(m, "show", qid)
    assert "Reason: spam" in out
    assert "Mail-From: <sender@example.org>" in out
    assert "Rcpt-To: <alice@example.test>" in out
    assert "Rcpt-To: <bob+x@example.test>" in out
    assert "Client: 127.0.0.1" in out
    assert "Subject: offer" in out
    assert "cheap pills now" in out

    out, _, _ = ctl(m, "release", qid)
    assert "released " + qid in out
    got = m.delivered("alice")
    assert len(got) == 1 and len(m.delivered("bob")) == 1
    assert b"X-Moat-Released: " + qid.encode() in got[0]
    assert b"Return-Path: <sender@example.org>\n" in got[0]
    assert b"X-Moat-Quarantine" not in got[0]
    assert b"cheap pills now" in got[0]
    # Once: a second release is refused and delivers nothing.
    _, err, _ = ctl(m, "release", qid, rc=1)
    assert "released already" in err
    _, err, _ = ctl(m, "release", "--force", qid, rc=1)
    assert len(m.delivered("alice")) == 1
    out, _, _ = ctl(m, "list")
    assert " released " in out

    # A domain whose threshold is not reached is delivered, not kept.
    code, _ = send_one(m.port, rcpts=("carol@other.test",))
    assert code == 250
    assert ids(m) == [qid]

    out, _, _ = ctl(m, "delete", qid)
    assert ids(m) == []
    assert os.listdir(os.path.join(qdir, "new")) == []
    ctl(m, "show", qid, rc=1)
    ctl(m, "release", qid, rc=1)
    ctl(m, "show", "../../etc/passwd", rc=1)


def test_not_kept_without_option(make_moat):
    m = start(make_moat, extra="\n[domain example.test]\n"
              "score.quarantine = no\n")
    code, text = send_one(m.port, msg=message())
    assert code == 550 and "quarantine" not in text
    assert ids(m) == []
    assert "quarantine" not in m.events(want=1)[-1]


def test_hostile_subject_escaped(make_moat):
    m = start(make_moat)
    # ESC sequences, a bidi override (raw UTF-8 and RFC 2047 encoded),
    # DEL and a C1 control in the Subject; bidi in the body too.
    subject = ("x\x1b[31mred\x1b]0;title\x07 \u202eevil\u202c "
               "=?utf-8?b?" + "4oCuZ25pcHNh" + "?= \x7f end")
    raw = (f"From: s@example.org\r\nTo: alice@example.test\r\n"
           f"Subject: {subject}\r\nMessage-ID: <h@example.org>\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
           f"body \u2066isolate\u2069 \x1b[2J line\r\n").encode()
    code, text = send_one(m.port, msg=raw)
    assert code == 550
    qid = ids(m)[0]
    _, _, out = ctl(m, "show", qid)
    assert b"\x1b" not in out and b"\x07" not in out and b"\x7f" not in out
    for mark in ("\u202e", "\u202c", "\u2066", "\u2069"):
        assert mark.encode() not in out
    assert b"\\x1b[31mred" in out
    assert b"\\u202eevil" in out
    assert b"\\u2066isolate" in out
    # list escapes too.
    _, _, lst = ctl(m, "list")
    assert b"\x1b" not in lst


def test_caps_drop_oldest(make_moat):
    m = start(make_moat, quarantine={"max_messages": "2"})
    first = refused_id(m, subject="one")
    second = refused_id(m, subject="two")
    third = refused_id(m, subject="three")
    assert sorted([first, second, third]) == [first, second, third]
    assert ids(m) == [second, third]
    assert "event=quarantine_dropped id=" + first + " why=count" in m.log()
    qdir = os.path.join(m.dir, "var", "quarantine", "new")
    assert sorted(os.listdir(qdir)) == [second, third]


def test_size_cap_drops_oldest(make_moat):
    m = start(make_moat, quarantine={"max_size": "3k"})
    big = "x" * 70 + "\r\n"
    a = refused_id(m, subject="a", body=big * 15)
    b = refused_id(m, subject="b", body=big * 15)
    assert ids(m) == [b]
    assert "id=" + a + " why=size" in m.log()


def classify(m, path):
    r = subprocess.run([MOATCTL, "-c", m.conf, "classify", "--brief", path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return float(r.stdout.split()[1])


def test_learn_from_quarantine(make_moat, tmp_path):
    m = start(make_moat, pipeline="relay recipients bayes score")
    qid = refused_id(m)
    # One ham learnt the usual way, so the classifier has both classes.
    ham = tmp_path / "ham.eml"
    ham.write_text(message(subject="agenda",
                           body="the project review meeting agenda\r\n"))
    r = subprocess.run([MOATCTL, "-c", m.conf, "learn", "--ham", str(ham)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    probe = tmp_path / "probe.eml"
    probe.write_text(message(subject="offer", body="cheap pills now\r\n"))
    before = classify(m, str(probe))
    out, _, _ = ctl(m, "learn", qid, "--spam")
    assert "learnt as spam" in out
    out, _, _ = ctl(m, "learn", qid, "--spam")
    assert "already learnt" in out
    r = subprocess.run([MOATCTL, "-c", m.conf, "stats"], capture_output=True,
                       text=True, timeout=60)
    assert "learnt 1 spam, 1 ham" in r.stdout + r.stderr
    # The next score of the same text moves toward spam.
    after = classify(m, str(probe))
    assert after > before, (before, after)
    out, _, _ = ctl(m, "learn", qid, "--ham")
    r = subprocess.run([MOATCTL, "-c", m.conf, "stats"], capture_output=True,
                       text=True, timeout=60)
    assert "learnt 0 spam, 2 ham" in r.stdout + r.stderr
    assert classify(m, str(probe)) < after
    ctl(m, "learn", qid, rc=2)


def test_virus_not_kept_by_default_and_usage(make_moat):
    m = start(make_moat)
    ctl(m, rc=2)
    ctl(m, "list", "--since", "yesterday", rc=2)
    ctl(m, "frobnicate", rc=2)
    out, _, _ = ctl(m, "trim")


def test_release_through_qmail_queue(make_moat, tmp_path):
    import shutil
    qq = tmp_path / "qq"
    qq.mkdir()
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "fake-qmail-queue"), qq / "qmail-queue")
    (qq / "exit").write_text("11\n")
    m = start(make_moat, domains="qq.test", users=["dave@qq.test"],
              extra=("\n[domain qq.test]\ndelivery.method = qmail-queue\n"
                     f"delivery.qmail_queue = {qq / 'qmail-queue'}\n"))
    qid = refused_id(m, rcpts=("dave@qq.test",))
    # qmail-queue refuses (exit 11): nothing released, the message stays
    # held and can be released later.
    _, err, _ = ctl(m, "release", qid, rc=1)
    assert "exited 11" in err
    out, _, _ = ctl(m, "list")
    assert " held " in out
    (qq / "exit").write_text("0\n")
    ctl(m, "release", qid)
    ctl(m, "release", qid, rc=1)
    # The stand-in names its files by how many it found: 0.*, then 2.*.
    spool = sorted(os.listdir(qq / "spool"))
    assert spool == ["0.env", "0.msg", "2.env", "2.msg"]
    assert (qq / "spool" / "2.env").read_bytes() == \
        b"Fsender@example.org\0Tdave@qq.test\0\0"
    msg = (qq / "spool" / "2.msg").read_bytes()
    assert b"X-Moat-Quarantine" not in msg and b"cheap pills now" in msg


def test_spilled_message_kept_from_its_file(make_moat):
    m = make_moat(
        server={"message_memory": "64K"},
        sections={"pipeline": {"filters": "relay recipients score"},
                  "score": {"reject": "0", "quarantine": "yes"}})
    # 300 KB: past message_memory, so the message is in the spill file
    # and the quarantine writes it from its own descriptor.
    line = "0123456789" * 9 + "\r\n"
    body = line * 3000 + "last line\r\n"
    qid = refused_id(m, subject="big", body=body)
    kept = open(os.path.join(m.dir, "var", "quarantine", "new", qid),
                "rb").read()
    assert b"\r" not in kept
    assert kept.endswith(b"last line\n")
    assert kept.count(b"0123456789" * 9 + b"\n") == 3000
    out, _, _ = ctl(m, "list")
    size = int(re.search(r"size=(\d+)", out).group(1))
    assert size == len(kept)
    ctl(m, "release", qid)
    got = m.delivered()
    assert len(got) == 1 and got[0].endswith(b"last line\n")
    assert got[0].count(b"0123456789" * 9 + b"\n") == 3000
