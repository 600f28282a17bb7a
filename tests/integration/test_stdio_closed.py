"""--stdio fails closed: without a usable client address it refuses to
start (a 421 to the client, the reason on stderr, exit 1) instead of
taking the client to be 127.0.0.1, which the shipped relay networks
trust. Regular files and /dev/null on fd 0/1, which epoll refuses, work
through a copying relay."""
import os
import socket
import subprocess

import pytest

from moatlib import MOATD, message

REMOTE = "someone@elsewhere.org"
SCRIPT = ("EHLO pipe.example\r\nMAIL FROM:<a@example.org>\r\n"
          f"RCPT TO:<{REMOTE}>\r\nQUIT\r\n")


def trusting_moat(make_moat):
    """A config whose relay networks hold 127.0.0.0/8, as etc/ does."""
    return make_moat(start=False, sections={"relay": {"networks": "nets"}},
                     files={"nets": "127.0.0.0/8\n"})


def env_with(ip):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCP")}
    if ip is not None:
        env["TCPREMOTEIP"] = ip
    return env


@pytest.mark.parametrize("ip", [None, "", "garbage", "300.1.2.3",
                                "127.0.0.1 ", "127.0.0.1:25", "[::1]"],
                         ids=["unset", "empty", "garbage", "octet",
                              "blank", "port", "brackets"])
def test_no_usable_address_refuses(make_moat, ip):
    m = trusting_moat(make_moat)
    out = subprocess.run([MOATD, "-c", m.conf, "--stdio"], env=env_with(ip),
                         input=SCRIPT.encode(), capture_output=True,
                         timeout=20)
    assert out.returncode == 1, out
    assert b"250" not in out.stdout, out.stdout
    assert out.stdout.startswith(b"421 4.3.0 mx.example.test "), out.stdout
    why = b"TCPREMOTEIP is unset" if ip is None else b"is not an IPv4 or IPv6"
    assert b"moatd: --stdio: " in out.stderr and why in out.stderr, out.stderr
    assert "event=stdio_refused" in m.log()


def test_good_address_is_not_trusted_by_default(make_moat):
    """The same config with a real outside address: 554 for relaying,
    as for any untrusted client (the refusal above is not the only
    thing standing between a pipe and an open relay)."""
    m = trusting_moat(make_moat)
    out = subprocess.run([MOATD, "-c", m.conf, "--stdio"],
                         env=env_with("192.0.2.7"), input=SCRIPT.encode(),
                         capture_output=True, timeout=20)
    assert out.returncode == 0, out
    assert b"\r\n554 " in out.stdout and b"221 " in out.stdout, out.stdout


def test_inetd_socket_peer_without_env(make_moat):
    """inetd sets no TCPREMOTEIP: the TCP socket's peer is the client."""
    m = make_moat(start=False)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    client = socket.create_connection(ls.getsockname())
    server, _ = ls.accept()
    ls.close()
    p = subprocess.Popen([MOATD, "-c", m.conf, "--stdio"], env=env_with(None),
                         stdin=server, stdout=server, stderr=subprocess.PIPE)
    server.close()
    f = client.makefile("rwb")
    assert f.readline().startswith(b"220 ")
    for line in ("EHLO inetd.example", "MAIL FROM:<a@example.org>",
                 "RCPT TO:<alice@example.test>", "DATA"):
        f.write(line.encode() + b"\r\n")
        f.flush()
        while True:
            reply = f.readline()
            if reply[3:4] != b"-":
                break
        assert reply[:1] in (b"2", b"3"), (line, reply)
    f.write(message().encode() + b".\r\nQUIT\r\n")
    f.flush()
    rest = f.read()
    client.close()
    assert p.wait(20) == 0, p.stderr.read()
    assert b"250 2.0.0 Ok: queued" in rest
    got = m.delivered()
    assert len(got) == 1 and b"([127.0.0.1])" in got[0]


def run_files(m, tmp_path, stdin_path, script):
    with open(stdin_path, "wb") as f:
        f.write(script)
    out_path = tmp_path / "out"
    with open(stdin_path, "rb") as fin, open(out_path, "wb") as fout:
        p = subprocess.run([MOATD, "-c", m.conf, "--stdio"],
                           env=env_with("192.0.2.7"), stdin=fin, stdout=fout,
                           stderr=subprocess.PIPE, timeout=20)
    return p, open(out_path, "rb").read()


def test_regular_files_on_fd0_and_fd1(make_moat, tmp_path):
    m = make_moat(start=False)
    # BDAT, not DATA: a whole session read at once is pipelined, and
    # data sent before the 354 is refused (RFC 2920 §3.1).
    body = message().encode()
    script = (b"EHLO file.example\r\nMAIL FROM:<a@example.org>\r\n"
              b"RCPT TO:<alice@example.test>\r\n" +
              b"BDAT %d LAST\r\n" % len(body) + body + b"QUIT\r\n")
    p, out = run_files(m, tmp_path, tmp_path / "in", script)
    assert p.returncode == 0, p.stderr
    assert out.startswith(b"220 ") and b"250 2.0.0 Ok: queued" in out, out
    assert out.endswith(b"221 2.0.0 mx.example.test Bye\r\n"), out
    got = m.delivered()
    assert len(got) == 1 and b"([192.0.2.7])" in got[0]


def test_devnull_on_fd0_ends(make_moat, tmp_path):
    """Nothing to read: greeted, then the session ends at EOF (no hang)."""
    m = make_moat(start=False)
    with open(os.devnull, "rb") as fin, open(tmp_path / "out", "wb") as fout:
        p = subprocess.run([MOATD, "-c", m.conf, "--stdio"],
                           env=env_with("192.0.2.7"), stdin=fin, stdout=fout,
                           stderr=subprocess.PIPE, timeout=20)
    assert p.returncode == 0, p.stderr
    assert open(tmp_path / "out", "rb").read().startswith(b"220 ")


def test_pipe_in_regular_file_out(make_moat, tmp_path):
    m = make_moat(start=False)
    with open(tmp_path / "out", "wb") as fout:
        p = subprocess.run([MOATD, "-c", m.conf, "--stdio"],
                           env=env_with("192.0.2.7"),
                           input=b"EHLO x.example\r\nQUIT\r\n", stdout=fout,
                           stderr=subprocess.PIPE, timeout=20)
    assert p.returncode == 0, p.stderr
    out = open(tmp_path / "out", "rb").read()
    assert out.startswith(b"220 ") and out.endswith(b"Bye\r\n"), out
