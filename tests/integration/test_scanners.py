"""clamav and spamassassin against the real clamd and spamd (scanners.py):
EICAR refused with its name (attached and inline), clean mail with
CLAM_CLEAN, GTUBE's SA_SCORE refused by the score filter's reject or
tagged under another domain's policy, spamd skipped for a message already
over reject, a service down (defer 451 or continue) logged once per
outage, a hung service timed out while other sessions go on, a message
over max_size not scanned, and one over clamd's StreamMaxLength to the
fail mode."""
import base64
import os
import threading
import time

import pytest

from moatlib import greet, message, send_one
from scanners import EICAR, GTUBE, Clamd, Hang, Spamd, have

pytestmark = pytest.mark.skipif(not have("clamd", "sigtool", "spamd"),
                                reason="clamav-daemon, clamav, spamd")


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    c = Clamd(tmp_path_factory.mktemp("clamd"), stream_max="200K").start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def spamd(tmp_path_factory):
    s = Spamd(tmp_path_factory.mktemp("spamd")).start()
    yield s
    s.stop()


def start(make_moat, clamd_addr, spamd_addr, extra="", workers=2, **kw):
    secs = {"pipeline": {"filters": "relay recipients bayes spamassassin "
                                    "clamav score"},
            "clamav": {"address": clamd_addr, "timeout": "5000"},
            "spamassassin": {"address": spamd_addr, "timeout": "20000"},
            "score": {"tag": "5", "reject": "10"}}
    for k, v in kw.items():
        secs.setdefault(k, {}).update(v)
    return make_moat(
        server={"local_domains": "example.test lenient.test"},
        users=["alice@example.test", "carol@lenient.test"],
        workers=workers, sections=secs, extra=extra)


def attached(data):
    b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return message(subject="attached", extra=(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
        "boundary=\"b1\"\r\n"), body=(
        "--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        "--b1\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment; filename=\"eicar.com\"\r\n\r\n"
        + b64 + "--b1--\r\n"))


def event_for(m, subject, want):
    for e in reversed(m.events(want=want, timeout=10)):
        if e.get("subject") == subject:
            return e
    raise AssertionError(f"no JSON line for {subject}")


def names(e):
    return [x["name"] for x in e.get("evidence", [])]


def test_eicar_and_clean(make_moat, clamd, spamd):
    m = start(make_moat, clamd.sock, f"127.0.0.1:{spamd.port}")
    code, text = send_one(m.port, msg=attached(EICAR))
    assert code == 554 and "5.7.1" in text
    # The decoded attachment matches both signatures; clamd names one.
    assert "Moat.Test.EICAR" in text and ".UNOFFICIAL" in text, text
    e = event_for(m, "attached", 1)
    assert e["result"].startswith("554 5.7.1")
    assert "Moat.Test.EICAR" in e["result"]
    ev = [x for x in e["evidence"] if x["name"] == "CLAM_VIRUS"]
    assert ev and "Moat.Test.EICAR" in ev[0]["detail"]
    # Inline in a text body: the .ndb signature.
    inline = message(subject="inline", body="look: " + EICAR.decode() +
                     "\r\n")
    code, text = send_one(m.port, msg=inline)
    assert code == 554 and "Moat.Test.EICAR.Body.UNOFFICIAL" in text
    # Clean: delivered, CLAM_CLEAN, and spamd's score as a symbol.
    code, _ = send_one(m.port, msg=message(subject="clean"))
    assert code == 250
    e = event_for(m, "clean", 3)
    assert "CLAM_CLEAN" in names(e) and "SA_SCORE" in names(e)
    assert "SA_SCORE" in e["symbols"]
    assert len(m.delivered()) == 1
    # Both scans ran for the one message (in parallel: both started by
    # spamassassin's hook).
    assert "clamav" in [x["filter"] for x in e["evidence"]]


def test_gtube_reject_and_tag(make_moat, clamd, spamd):
    m = start(make_moat, clamd.sock, f"127.0.0.1:{spamd.port}",
              extra="\n[domain lenient.test]\nscore.reject = 1000\n"
                    "spamassassin.factor = 0.5\n"
                    "spamassassin.user_mode = domain\n")
    spam = message(subject="gtube", body=GTUBE + "\r\n")
    code, text = send_one(m.port, msg=spam)
    assert code == 550 and "5.7.1" in text and "score" in text
    e = event_for(m, "gtube", 1)
    assert e["symbols"]["SA_SCORE"] >= 1000
    sa = [x for x in e["evidence"] if x["name"] == "SA_SCORE"][0]
    assert "GTUBE" in sa["detail"]
    assert m.delivered() == []
    # The other domain's policy only tags it.
    code, _ = send_one(m.port, rcpts=("carol@lenient.test",), msg=spam)
    assert code == 250
    got = m.delivered("carol", "lenient.test")
    assert len(got) == 1 and b"X-Spam-Flag: YES" in got[0]
    assert b"SA_SCORE" in got[0]
    assert got[0].count(b"SA_SCORE") >= 1
    assert "event=spamassassin score=10" in m.log()
    assert "rules=GTUBE" in m.log() or ",GTUBE" in m.log()


def test_spamd_skipped_over_reject(make_moat, clamd, spamd):
    # reject 0: every message is over it before spamd is asked.
    m = start(make_moat, clamd.sock, f"127.0.0.1:{spamd.port}",
              score={"reject": "0"})
    code, _ = send_one(m.port, msg=message(subject="skipme"))
    assert code == 550
    e = event_for(m, "skipme", 1)
    assert "SA_SKIPPED" in names(e) and "SA_SCORE" not in names(e)
    assert "already over reject" in [x for x in e["evidence"]
                                     if x["name"] == "SA_SKIPPED"][0]["detail"]


def test_down_fail_modes_logged_once(make_moat, tmp_path, spamd):
    gone = str(tmp_path / "no-clamd.sock")
    m = start(make_moat, gone, f"127.0.0.1:{spamd.port}", workers=1,
              clamav={"down_after": "2", "retry": "60000"},
              extra="\n[domain lenient.test]\nclamav.fail = continue\n")
    for i in range(4):
        code, text = send_one(m.port, msg=message(subject=f"d{i}"))
        assert code == 451 and "4.4.3" in text
    code, _ = send_one(m.port, rcpts=("carol@lenient.test",),
                       msg=message(subject="cont"))
    assert code == 250
    e = event_for(m, "cont", 5)
    fail = [x for x in e["evidence"] if x["name"] == "CLAM_FAIL"]
    assert fail and "fail=continue" in fail[0]["detail"]
    log = m.log()
    assert log.count("event=svc_down service=clamd") == 1, log
    assert log.count("event=svc_degraded service=clamd") == 1


def test_hung_service_times_out(make_moat, clamd):
    hang = Hang()
    try:
        m = start(make_moat, clamd.sock, f"127.0.0.1:{hang.port}",
                  spamassassin={"timeout": "1500", "idle_timeout": "1000"})
        out = {}

        def slow():
            t0 = time.time()
            out["r"] = send_one(m.port, msg=message(subject="slow"))
            out["t"] = time.time() - t0
        th = threading.Thread(target=slow)
        th.start()
        time.sleep(0.2)
        # Another session is served meanwhile (its own spamd request
        # waits too, but its SMTP dialogue goes on).
        c = greet(m.port)
        t0 = time.time()
        c.cmd("MAIL FROM:<a@example.org>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        assert time.time() - t0 < 1.0   # blocked, it would wait ~1.3 s
        c.cmd("QUIT")
        c.close()
        th.join(15)
        # continue (spamassassin's default): delivered, SA_FAIL.
        assert out["r"][0] == 250
        assert 0.9 < out["t"] < 5
        e = event_for(m, "slow", 1)
        fail = [x for x in e["evidence"] if x["name"] == "SA_FAIL"]
        assert fail and "timeout" in fail[0]["detail"]
    finally:
        hang.close()


def test_max_size_and_stream_limit(make_moat, clamd, spamd):
    m = start(make_moat, clamd.sock, f"127.0.0.1:{spamd.port}",
              server={"max_message_size": "4M"},
              clamav={"max_size": "1M"},
              extra="\n[domain lenient.test]\nclamav.max_size = 1k\n"
                    "clamav.fail = continue\n")
    # Over clamav's max_size (1k) under lenient.test: not scanned.
    body = ("x" * 70 + "\r\n") * 40
    code, _ = send_one(m.port, rcpts=("carol@lenient.test",),
                       msg=message(subject="big", body=body))
    assert code == 250
    e = event_for(m, "big", 1)
    sk = [x for x in e["evidence"] if x["name"] == "CLAM_SKIPPED"]
    assert sk and "over max_size 1024" in sk[0]["detail"]
    # Over clamd's StreamMaxLength (200K), under max_size (1M): clamd
    # refuses mid-stream; defer is the default policy's fail mode.
    body = ("y" * 70 + "\r\n") * 5000     # 360 KB
    code, text = send_one(m.port, msg=message(subject="huge", body=body))
    assert code == 451, text
    e = event_for(m, "huge", 2)
    fail = [x for x in e["evidence"] if x["name"] == "CLAM_FAIL"]
    assert fail and "size_limit" in fail[0]["detail"]
    # clamd is not down for that: the next clean message is scanned.
    code, _ = send_one(m.port, msg=message(subject="after"))
    assert code == 250
    assert "event=svc_down" not in m.log()


def test_virus_quarantined(make_moat, clamd, spamd):
    m = start(make_moat, clamd.sock, f"127.0.0.1:{spamd.port}",
              clamav={"quarantine": "yes"}, quarantine={"virus": "yes"})
    code, text = send_one(m.port, msg=attached(EICAR))
    assert code == 554 and "Moat.Test.EICAR" in text
    e = event_for(m, "attached", 1)
    assert e.get("quarantine"), e
