"""Small core fixes: moatctl's help needs no configuration; the JSON log
has bounded, strictly valid lines that are never dropped."""
import json
import os
import socket
import subprocess

import pytest

from moatlib import ROOT

MOATCTL = os.path.join(ROOT, os.environ.get("MOATCTL", "build/moatctl"))


def ctl(args, tmp_path):
    """Runs moatctl with a HOME and working directory that hold nothing."""
    env = dict(os.environ, HOME=str(tmp_path / "no-home"))
    return subprocess.run([MOATCTL, *args], capture_output=True,
                          cwd=str(tmp_path), env=env, timeout=30)


HELP_FORMS = [
    ["-h"], ["--help"], ["help"],
    ["-c", "/nonexistent/moat.conf", "-h"],
    ["-c", "/nonexistent/moat.conf", "--help"],
    ["--db", "/nonexistent/db", "--help"],
    ["-c", "/nonexistent/moat.conf", "learn", "--help"],
    ["classify", "-h"],
]


@pytest.mark.parametrize("args", HELP_FORMS, ids=" ".join)
def test_moatctl_help_needs_no_config(tmp_path, args):
    r = ctl(args, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    out = r.stdout.decode()
    # man-page sections, every command and option, the files, exit codes
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS",
                    "OPTIONS", "FILES", "EXIT STATUS"):
        assert f"\n{section}\n" in "\n" + out, section
    for word in ("learn", "--spam", "--ham", "--forget", "classify",
                 "--brief", "--times", "stats", "-c FILE", "--db DIR",
                 "-h, --help", "/etc/moat/moat.conf", "<var_dir>/db"):
        assert word in out, word
    exit_status = out.split("\nEXIT STATUS\n")[1]
    for code in ("0 ", "1 ", "2 "):
        assert "\n    " + code in "\n" + exit_status, code
    assert max(len(line) for line in out.splitlines()) <= 80


@pytest.mark.parametrize("args", [[], ["--bogus"], ["-c"], ["frobnicate"],
                                  ["-c", "/nonexistent/moat.conf", "nope"]],
                         ids=lambda a: " ".join(a) or "none")
def test_moatctl_usage_error_needs_no_config(tmp_path, args):
    """A usage error is exit status 2 with the synopsis, not a complaint
    about a configuration file."""
    r = ctl(args, tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith(b"usage: moatctl"), r.stderr
    assert b"moat.conf:" not in r.stderr


def test_moatctl_missing_config_is_status_1(tmp_path):
    r = ctl(["-c", str(tmp_path / "absent.conf"), "stats"], tmp_path)
    assert r.returncode == 1
    assert b"absent.conf" in r.stderr


# --- the JSON log: bounded lines, strict JSON, never dropped ---------------

from moatlib import Client, greet, message  # noqa: E402

LINE_MAX = 64 * 1024


def strict_lines(m, want=1, timeout=5.0):
    """Every JSON line, each decoded as strict UTF-8 and parsed by a strict
    JSON parser (no NaN, no bare control characters); waits for `want`."""
    import time
    end = time.time() + timeout
    while True:
        raw = b""
        if os.path.exists(m.json_path):
            raw = open(m.json_path, "rb").read()
        lines = [l for l in raw.split(b"\n") if l.strip()]
        if len(lines) >= want or time.time() > end:
            break
        time.sleep(0.05)
    assert raw.endswith(b"\n") or not raw
    out = []
    for line in lines:
        assert len(line) + 1 <= LINE_MAX, len(line)
        text = line.decode("utf-8", errors="strict")

        def no_constants(name):
            raise ValueError(f"non-JSON constant {name}")
        out.append(json.loads(text, strict=True, parse_constant=no_constants))
    return out


def transactions(m, want=1):
    return [e for e in strict_lines(m, want) if e["event"] == "transaction"]


def quoted_rcpt(i):
    """A long quoted local part (backslashes and quotes that the JSON
    escaping doubles) at a long domain that is not ours: refused."""
    local = '"' + ('\\"\\\\' * 12) + f'{i:05d}"'     # 55 bytes
    domain = ".".join(["a" * 63, "b" * 63, "c" * 50, "example"])
    assert len(local) + 1 + len(domain) + 2 <= 256    # RFC 5321 path
    return f"{local}@{domain}"


def test_json_many_refused_rcpts_then_delivery(make_moat):
    """999 refused recipients with long quoted addresses, then one that is
    delivered: exactly one transaction line, bounded, that still names
    the delivered recipient and counts all of them. (999: every refusal
    counts toward max_errors, whose hard cap is 1000.)"""
    n = 999
    m = make_moat(server={"max_recipients": "1000", "max_errors": "1000"})
    c = greet(m.port)
    c.cmd("MAIL FROM:<sender@example.org>", 250)
    batch = 100
    for start in range(0, n, batch):
        k = min(batch, n - start)
        c.send("".join(f"RCPT TO:<{quoted_rcpt(start + i)}>\r\n"
                       for i in range(k)))
        for _ in range(k):
            code, lines = c.reply()
            assert 500 <= code < 600, lines
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message(subject="after-refusals") + "\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    c.close()
    assert len(m.delivered()) == 1
    tx = transactions(m)
    assert len(tx) == 1, tx
    t = tx[0]
    assert t["rcpt_count"] == n + 1
    assert t["rcpt_accepted"] == 1
    assert t["truncated"] is True
    assert 0 < len(t["rcpts"]) <= 100
    assert [r["to"] for r in t["rcpts"] if r["accepted"]] == \
        ["alice@example.test"]
    assert not t["rcpts"][0]["accepted"]
    assert t["subject"] == "after-refusals"
    assert t["result"].startswith("250")
    assert t["time"] and len(t["session"]) == 16


def test_json_few_rcpts_not_truncated(moat):
    c = greet(moat.port)
    c.cmd("MAIL FROM:<sender@example.org>", 250)
    c.cmd("RCPT TO:<nobody@example.test>")
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message(subject="few") + "\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    t = transactions(moat)[0]
    assert t["truncated"] is False
    assert t["rcpt_count"] == 2 and t["rcpt_accepted"] == 1
    assert [r["to"] for r in t["rcpts"]] == ["nobody@example.test",
                                            "alice@example.test"]


# Subjects whose last character straddles the 200-byte cut (LIMIT_LOG_QUOTE):
# kept only when whole.
CUT = 200
SUBJECTS = [
    ("S" * (CUT - 1) + "é", "S" * (CUT - 1)),          # 2 bytes, cut
    ("S" * (CUT - 2) + "€x", "S" * (CUT - 2)),         # 3 bytes, cut
    ("S" * (CUT - 3) + "😀", "S" * (CUT - 3)),         # 4 bytes, cut
    ("S" * (CUT - 4) + "😀" + "tail", "S" * (CUT - 4) + "😀"),  # fits
    ("S" * (CUT - 2) + "é" + "tail", "S" * (CUT - 2) + "é"),    # fits
]


def send_raw(m, subject, msgid):
    c = greet(m.port)
    c.cmd("MAIL FROM:<sender@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(b"From: sender@example.org\r\nTo: alice@example.test\r\n"
           b"Subject: " + subject + b"\r\nMessage-ID: " + msgid +
           b"\r\n\r\nBody \xff\xfe.\r\n.\r\n")
    code, lines = c.reply()
    assert code == 250, lines
    c.cmd("QUIT", 221)
    c.close()


def test_json_8bit_headers_are_strict_json(make_moat):
    """Raw 8-bit bytes (Latin-1, stray continuation bytes, overlong forms,
    encoded surrogates, bytes past U+10FFFF) and UTF-8 cut at the cap:
    every line is strict UTF-8 JSON, a stray byte reads as \\u00XX, and no
    character is cut in half."""
    m = make_moat()
    bad = (b"<caf\xe9.\xff\xfe.\xc0\xaf.\xed\xa0\x80.\xf4\x90\x80\x80."
           b"\x80.\xe2\x82@example.org>")
    for subject, _ in SUBJECTS:
        send_raw(m, subject.encode(), bad)
    send_raw(m, b"Latin-1 caf\xe9 \x01\x7f \"quoted\" back\\slash", bad)
    send_raw(m, "€".encode() * 100, "<" .encode() + "é".encode() * 120
             + b">")
    tx = transactions(m, want=len(SUBJECTS) + 2)
    assert len(tx) == len(SUBJECTS) + 2
    for (_, want), t in zip(SUBJECTS, tx):
        assert t["subject"] == want
    want_id = ("<caf\u00e9.\u00ff\u00fe.\u00c0\u00af.\u00ed\u00a0\u0080."
               "\u00f4\u0090\u0080\u0080.\u0080.\u00e2\u0082@example.org>")
    assert tx[0]["message_id"] == want_id
    assert tx[-2]["subject"] == \
        "Latin-1 caf\u00e9 \u0001\u007f \"quoted\" back\\slash"
    # 66 whole euro signs are 198 bytes; the 67th would pass the cut
    assert tx[-1]["subject"] == "€" * 66
    assert tx[-1]["message_id"] == "<" + "é" * 99
    raw = open(m.json_path, "rb").read()
    assert b"\xe9" not in raw.replace("é".encode(), b"")


def test_json_refused_lines_have_time_and_session(make_moat):
    """Every JSON line carries time and session, refused ones included."""
    m = make_moat(server={"max_per_ip": "1"}, workers=1)
    held = greet(m.port)
    c = Client(m.port)
    code, _ = c.reply()
    assert code == 421
    c.close()
    held.cmd("QUIT", 221)
    held.close()
    lines = strict_lines(m, want=1)
    refused = [e for e in lines if e["event"] == "refused"]
    assert refused, lines
    for e in refused:
        assert e["reason"] == "max_per_ip"
        assert "time" in e and "session" in e, e
