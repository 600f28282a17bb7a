"""SMTP AUTH (RFC 4954) against a real moatd: PLAIN and LOGIN with the
passwd file (hashes made by Debian's argon2 and htpasswd) and with a real
Dovecot's auth socket, AUTH refused before TLS, failures delayed, counted
and disconnected, the submission ports (587 with STARTTLS, 465 implicit
TLS) refusing MAIL before AUTH and relaying once authenticated, and no
secret in the trace-level log."""
import base64
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from moatlib import Client, Moat, free_port, message, dot_stuff

PASS = "S3cret pass!"
BOB_PASS = "hunter2 bob"


def argon2_hash(password):
    out = subprocess.run(["argon2", "moatsaltsalt16", "-id", "-t", "2",
                          "-m", "12", "-p", "1", "-e"],
                         input=password.encode(), capture_output=True,
                         check=True)
    return out.stdout.decode().strip()


def bcrypt_line(user, password):
    out = subprocess.run(["htpasswd", "-nbB", "-C", "5", user, password],
                         capture_output=True, check=True)
    return out.stdout.decode().strip()


def b64(data):
    return base64.b64encode(data.encode() if isinstance(data, str)
                            else data).decode()


def plain(user, password, authzid=""):
    return b64(f"{authzid}\0{user}\0{password}")


def tls_ehlo(port):
    c = Client(port)
    assert c.reply()[0] == 220
    c.cmd("EHLO client.example.org", 250)
    c.starttls()
    _, lines = c.cmd("EHLO client.example.org", 250)
    return c, lines


def implicit_tls(port):
    c = Client.__new__(Client)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                      timeout=10))
    c.buf = b""
    assert c.reply()[0] == 220
    return c


def make_moat(tmp, auth=None, server=None, workers=1):
    passwd = (f"alice:{argon2_hash(PASS)}\n"
              f"{bcrypt_line('bob', BOB_PASS)}\n")
    a = {"backend": "file", "passwd_file": "passwd", "fail_delay": "0",
         "max_failures": "5", "max_failures_ip": "50"}
    a.update(auth or {})
    srv = {"submission": f"127.0.0.1:{free_port()}",
           "smtps": f"127.0.0.1:{free_port()}"}
    srv.update(server or {})
    m = Moat(tmp, server=srv, sections={"auth": a}, workers=workers,
             files={"passwd": passwd})
    m.sub_port = int(srv["submission"].rsplit(":", 1)[1])
    m.smtps_port = int(srv["smtps"].rsplit(":", 1)[1])
    return m


@pytest.fixture
def moat(tmp_path):
    m = make_moat(tmp_path, server={"log_level": "trace"}).start()
    yield m
    m.stop()
    assert m.sanitizer_report() == ""


def test_auth_offered_only_under_tls(moat):
    c = Client(moat.port)
    assert c.reply()[0] == 220
    _, lines = c.cmd("EHLO client.example.org", 250)
    assert not any("AUTH" in l for l in lines)
    # RFC 4954 §6: credentials in clear are refused.
    assert c.text("AUTH PLAIN " + plain("alice", PASS)).startswith(
        "538 5.7.11")
    c.starttls()
    _, lines = c.cmd("EHLO client.example.org", 250)
    assert "250-AUTH PLAIN LOGIN" in lines
    c.close()


def test_plain_login_and_relay(moat):
    # Not authenticated: no relaying.
    c, _ = tls_ehlo(moat.port)
    c.cmd("MAIL FROM:<alice@example.test>", 250)
    assert c.text("RCPT TO:<x@remote.example>").startswith("554 5.7.1")
    c.cmd("RSET", 250)
    # AUTH is not taken inside a transaction (RFC 4954 §4).
    c.cmd("MAIL FROM:<alice@example.test>", 250)
    c.cmd("AUTH PLAIN " + plain("alice", PASS), 503)
    c.cmd("RSET", 250)
    # PLAIN with an initial response (argon2id).
    assert c.text("AUTH PLAIN " + plain("alice", PASS)).startswith(
        "235 2.7.0")
    c.cmd("AUTH PLAIN " + plain("alice", PASS), 503)
    c.cmd("MAIL FROM:<alice@example.test> AUTH=<>", 250)
    c.cmd("RCPT TO:<x@remote.example>", 250)
    c.cmd("QUIT", 221)
    c.close()

    # PLAIN by continuation; LOGIN by continuation (bcrypt user).
    c, _ = tls_ehlo(moat.port)
    assert c.cmd("AUTH PLAIN")[1] == ["334 "]
    c.cmd(plain("bob", BOB_PASS), 235)
    c.close()
    c, _ = tls_ehlo(moat.port)
    assert c.cmd("AUTH LOGIN")[1] == ["334 VXNlcm5hbWU6"]
    assert c.cmd(b64("bob"))[1] == ["334 UGFzc3dvcmQ6"]
    c.cmd(b64(BOB_PASS), 235)
    c.close()
    # LOGIN with the user name as initial response.
    c, _ = tls_ehlo(moat.port)
    assert c.cmd("AUTH LOGIN " + b64("alice"))[1] == ["334 UGFzc3dvcmQ6"]
    c.cmd(b64(PASS), 235)
    c.close()
    log = moat.log()
    assert 'event=auth mech=PLAIN user="alice" result=ok' in log
    assert 'event=auth mech=LOGIN user="bob" result=ok' in log


def test_sasl_exchange_errors(moat):
    c, _ = tls_ehlo(moat.port)
    c.cmd("AUTH CRAM-MD5", 504)
    c.cmd("AUTH PLAIN", 334)
    assert c.text("*") == "501 5.0.0 Authentication cancelled"
    c.cmd("NOOP", 250)      # back to commands
    c.cmd("AUTH PLAIN", 334)
    assert c.text("not base64!").startswith("501 5.5.2")
    c.cmd("AUTH PLAIN", 334)
    # A response that is a command is still only a SASL response.
    assert c.text("QUIT").startswith("501 5.5.2")
    c.cmd("AUTH PLAIN Zg=", 501)            # not canonical base64
    c.cmd("AUTH PLAIN " + plain("alice", PASS, "bob"), 535)   # authzid
    # Line limits: AUTH_LINE_MAX (2048 with CRLF) is read, +1 is not.
    pre = "AUTH PLAIN "
    n = 2048 - 2 - len(pre)
    assert c.text(pre + "A" * (n // 4 * 4)).startswith("501 5.5.2")
    assert c.text(pre + "A" * (n + 1)).startswith("500 5.5.6")
    c.cmd("AUTH LOGIN", 334)
    assert c.text("A" * 2047).startswith("500 5.5.6")
    c.cmd("NOOP", 250)
    c.cmd("AUTH PLAIN " + plain("alice", PASS), 235)
    c.close()


def test_failures_delayed_then_disconnected(tmp_path):
    m = make_moat(tmp_path, auth={"fail_delay": "300",
                                  "fail_delay_max": "600",
                                  "max_failures": "3"}).start()
    try:
        c, _ = tls_ehlo(m.port)
        took = []
        for expect in (535, 535):
            t = time.time()
            c.cmd("AUTH PLAIN " + plain("alice", "wrong"), expect)
            took.append(time.time() - t)
        # 300 ms, then doubled.
        assert 0.28 < took[0] < 1.5 and 0.58 < took[1] < 2.0, took
        # An unknown user fails the same way (and costs a real check).
        t = time.time()
        code, lines = c.cmd("AUTH PLAIN " + plain("nobody", "x"))
        assert code == 421 and "4.7.0" in lines[0]
        assert time.time() - t > 0.58
        assert c.closed()
        log = m.log()
        assert "result=fail failures=2" in log
        assert "reason=auth_failures" in log
    finally:
        m.stop()


def test_failures_per_address_across_sessions(tmp_path):
    m = make_moat(tmp_path, auth={"max_failures": "10",
                                  "max_failures_ip": "3",
                                  "failure_window": "1"}).start()
    try:
        for _ in range(2):
            c, _ = tls_ehlo(m.port)
            c.cmd("AUTH PLAIN " + plain("alice", "wrong"), 535)
            c.close()
        c, _ = tls_ehlo(m.port)
        c.cmd("AUTH PLAIN " + plain("alice", "wrong"), 421)
        assert c.closed()
        # Over the limit: refused before any check, good password or not.
        c, _ = tls_ehlo(m.port)
        c.cmd("AUTH PLAIN " + plain("alice", PASS), 421)
        c.close()
        assert "reason=ip_failures" in m.log()
        # The window is over: the address may try again.
        time.sleep(1.3)
        c, _ = tls_ehlo(m.port)
        c.cmd("AUTH PLAIN " + plain("alice", PASS), 235)
        c.close()
    finally:
        m.stop()


def test_failures_per_address_shared_by_workers(tmp_path):
    """Two workers count one address's failures together: the 6th failed
    AUTH, whichever workers the six connections reached, is answered 421.
    (Counted per worker, the 6th would be 421 only when all six reached
    one worker: 1 run in 32.)"""
    m = make_moat(tmp_path, workers=2,
                  auth={"max_failures": "10", "max_failures_ip": "6",
                        "failure_window": "600"}).start()
    try:
        codes = []
        for _ in range(6):
            c, _ = tls_ehlo(m.port)
            codes.append(c.cmd("AUTH PLAIN " + plain("alice", "wrong"))[0])
            c.close()
        assert codes == [535] * 5 + [421], codes
    finally:
        m.stop()


def test_parallel_guesses_meet_the_address_limit(tmp_path):
    """Six sessions from one address send their AUTH at the same moment:
    only max_failures_ip (3) passwords are checked, the other sessions
    are refused before any check (each check reserves its failure), and
    as the three checked fail the address is at its limit: all 421."""
    m = make_moat(tmp_path, auth={"max_failures": "10",
                                  "max_failures_ip": "3",
                                  "failure_window": "600"}).start()
    try:
        cs = [tls_ehlo(m.port)[0] for _ in range(6)]
        for c in cs:
            c.send("AUTH PLAIN " + plain("alice", "wrong") + "\r\n")
        codes = sorted(c.reply()[0] for c in cs)
        for c in cs:
            c.close()
        assert codes == [421] * 6, codes
        log = m.log()
        assert log.count("result=fail") == 3, log
        assert log.count("event=auth_refused") == 3, log
    finally:
        m.stop()


def test_submission_port(moat):
    # Plain submission: STARTTLS, then AUTH before MAIL.
    c = Client(moat.sub_port)
    assert c.reply()[0] == 220
    c.cmd("EHLO client.example.org", 250)
    c.cmd("MAIL FROM:<alice@example.test>", 530)
    c.starttls()
    c.cmd("EHLO client.example.org", 250)
    assert c.text("MAIL FROM:<alice@example.test>").startswith("530 5.7.0")
    c.cmd("AUTH PLAIN " + plain("alice", PASS), 235)
    c.cmd("MAIL FROM:<alice@example.test>", 250)
    c.cmd("RCPT TO:<someone@remote.example>", 250)
    c.cmd("RSET", 250)
    c.cmd("MAIL FROM:<alice@example.test>", 250)
    c.cmd("RCPT TO:<bob@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(dot_stuff(message("submitted").encode()) + b".\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT", 221)
    c.close()
    assert len(moat.delivered("bob")) == 1
    log = moat.log()
    assert "listener=submission" in log
    assert "event=skip" in log          # submission_skip applied
    # The authenticated user is evidence in the transaction's line.
    line = [e for e in moat.events(want=2) if e["event"] == "transaction"
            and e["result"].startswith("250")][-1]
    assert line["auth_user"] == "alice"


def test_smtps_implicit_tls(moat):
    c = implicit_tls(moat.smtps_port)
    _, lines = c.cmd("EHLO client.example.org", 250)
    assert "250-AUTH PLAIN LOGIN" in lines
    assert not any("STARTTLS" in l for l in lines)
    c.cmd("MAIL FROM:<alice@example.test>", 530)
    c.cmd("AUTH LOGIN", 334)
    c.cmd(b64("alice"), 334)
    c.cmd(b64(PASS), 235)
    c.cmd("MAIL FROM:<alice@example.test>", 250)
    c.cmd("RCPT TO:<x@remote.example>", 250)
    c.cmd("QUIT", 221)
    c.close()
    # A client that never finishes the handshake costs nothing more.
    s = socket.create_connection(("127.0.0.1", moat.smtps_port))
    s.sendall(b"EHLO plain text\r\n")
    s.settimeout(5)
    try:
        data = s.recv(100)
    except (ConnectionResetError, socket.timeout):
        data = b""
    assert not data.startswith(b"220")
    s.close()


def test_plaintext_loopback_option(tmp_path):
    m = make_moat(tmp_path, auth={"plaintext_loopback": "yes"}).start()
    try:
        c = Client(m.port)
        assert c.reply()[0] == 220
        _, lines = c.cmd("EHLO client.example.org", 250)
        assert "250-AUTH PLAIN LOGIN" in lines
        c.cmd("AUTH PLAIN " + plain("alice", PASS), 235)
        c.close()
    finally:
        m.stop()


def test_secrets_never_logged(moat):
    blobs = [plain("alice", PASS), plain("alice", "Wr0ngSecret"),
             b64(PASS), b64("Wr0ngSecret")]
    c, _ = tls_ehlo(moat.port)
    c.cmd("AUTH PLAIN " + blobs[0], 235)
    c.close()
    c, _ = tls_ehlo(moat.port)
    c.cmd("AUTH PLAIN " + blobs[1], 535)
    c.cmd("AUTH LOGIN", 334)
    c.cmd(b64("alice"), 334)
    c.cmd(blobs[3], 535)
    c.cmd("AUTH PLAIN", 334)
    c.cmd(blobs[0], 235)
    c.close()
    time.sleep(0.2)
    log = moat.log() + open(os.path.join(moat.dir, "stderr")).read()
    assert "trace" in log and "in=" in log
    for secret in [PASS, "Wr0ngSecret"] + blobs:
        assert secret not in log, secret
    assert "<sasl response" in log and "<initial response>" in log


def test_config_errors(tmp_path):
    from moatlib import MOATD
    for auth, server, want in (
            ({"backend": "ldap"}, {}, "[auth]: backend 'ldap'"),
            ({"backend": "none"}, {}, "need [auth] backend"),
            ({}, {"submission_skip": "nosuch"}, "no filter named 'nosuch'"),
            ({"passwd_file": "bad"}, {}, "bad:1: unknown hash")):
        m = make_moat(tmp_path / str(len(want)), auth=auth, server=server)
        with open(os.path.join(m.dir, "bad"), "w") as f:
            f.write("eve:plaintext\n")
        r = subprocess.run([MOATD, "-t", "-c", m.conf], capture_output=True,
                           text=True)
        assert r.returncode != 0 and want in r.stderr + r.stdout, r.stderr


class DovecotAuth:
    """Dovecot's auth service alone, its auth-client socket in a temp
    dir; users in a passwd-file (sha512-crypt, as doveadm makes them)."""

    def __init__(self, users):
        self.dir = tempfile.mkdtemp(prefix="moat-dovecot-auth-")
        os.chmod(self.dir, 0o755)
        os.makedirs(os.path.join(self.dir, "run"))
        self.socket = os.path.join(self.dir, "auth-client")
        with open(os.path.join(self.dir, "users"), "w") as f:
            for u, p in users.items():
                h = subprocess.run(["doveadm", "pw", "-s", "SHA512-CRYPT",
                                    "-p", p], capture_output=True,
                                   text=True, check=True).stdout.strip()
                f.write(f"{u}:{h}\n")
        os.chmod(os.path.join(self.dir, "users"), 0o644)
        conf = os.path.join(self.dir, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(f"""base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# moat delays failures itself ([auth] fail_delay).
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = {self.dir}/users
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}}
service auth {{
  unix_listener auth-client {{
    path = {self.socket}
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
""")
        self.proc = subprocess.Popen(["/usr/sbin/dovecot", "-c", conf, "-F"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        end = time.time() + 10
        while not os.path.exists(self.socket):
            if time.time() > end or self.proc.poll() is not None:
                raise RuntimeError("dovecot did not start: " + self.log())
            time.sleep(0.05)

    def log(self):
        p = os.path.join(self.dir, "dovecot.log")
        return open(p).read() if os.path.exists(p) else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_dovecot_backend(tmp_path):
    dv = DovecotAuth({"alice": PASS, "carol": "c4rol pw"})
    m = make_moat(tmp_path, auth={"backend": "dovecot",
                                  "dovecot_socket": dv.socket,
                                  "timeout": "3"},
                  server={"log_level": "trace"}).start()
    try:
        c, _ = tls_ehlo(m.port)
        c.cmd("AUTH PLAIN " + plain("alice", PASS), 235)
        c.cmd("MAIL FROM:<alice@example.test>", 250)
        c.cmd("RCPT TO:<x@remote.example>", 250)
        c.close()
        c, _ = tls_ehlo(m.port)
        c.cmd("AUTH LOGIN", 334)
        c.cmd(b64("carol"), 334)
        c.cmd(b64("c4rol pw"), 235)
        c.close()
        c, _ = tls_ehlo(m.port)
        c.cmd("AUTH PLAIN " + plain("alice", "wrong"), 535)
        c.cmd("AUTH PLAIN " + plain("mallory", "x"), 535)
        c.close()
        # Submission with Dovecot's users.
        c = implicit_tls(m.smtps_port)
        c.cmd("EHLO client.example.org", 250)
        c.cmd("AUTH PLAIN " + plain("carol", "c4rol pw"), 235)
        c.close()
        # Dovecot gone: a temporary failure, not a refusal.
        dv.stop()
        c, _ = tls_ehlo(m.port)
        assert c.text("AUTH PLAIN " + plain("alice", PASS)).startswith(
            "454 4.7.0")
        c.close()
        log = m.log()
        assert 'user="alice" result=ok' in log
        assert 'user="carol" result=ok' in log
        assert "backend=dovecot" in log
        for secret in (PASS, "c4rol pw", plain("alice", PASS)):
            assert secret not in log
    finally:
        m.stop()
        dv.cleanup()
    assert m.sanitizer_report() == ""
