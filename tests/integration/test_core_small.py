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
