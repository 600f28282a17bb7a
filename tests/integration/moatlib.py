"""Helpers for moat's integration tests: start moatd with a config made
for the test, talk SMTP byte by byte, read what it logged and delivered."""
import json
import os
import signal
import socket
import ssl
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOATD = os.path.join(ROOT, os.environ.get("MOATD", "build/moatd"))
CERT = os.path.join(ROOT, "var/tls/cert.pem")
KEY = os.path.join(ROOT, "var/tls/key.pem")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0):
    """Waits for a 220, then says QUIT and waits for the close, so the
    probe holds no connection slot once this returns."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                first = s.recv(512)
                if not first.startswith(b"220"):
                    raise OSError("no greeting")
                if first.startswith(b"220-"):
                    return      # the pre-greeting wait: it lives

                s.sendall(b"QUIT\r\n")
                while s.recv(512):
                    pass
                time.sleep(0.05)
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class Moat:
    """One moatd (master + workers) with its own directory and config."""

    def __init__(self, tmp, server=None, sections=None, users=None,
                 workers=2, extra="", files=None):
        self.dir = str(tmp)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.maildir = os.path.join(self.dir, "mail")
        self.json_path = os.path.join(self.dir, "tx.jsonl")
        self.log_path = os.path.join(self.dir, "moatd.log")
        srv = {
            "listen": f"127.0.0.1:{self.port}",
            "hostname": "mx.example.test",
            "workers": str(workers),
            "var_dir": os.path.join(self.dir, "var"),
            "local_domains": "example.test",
            "tls_cert": CERT, "tls_key": KEY,
            "log": self.log_path, "log_level": "info",
            "json_log": self.json_path,
            "drain_timeout": "3",
            # The pre-greeting wait is off but in its own tests.
            "pregreet_wait": "0",
        }
        srv.update(server or {})
        secs = {
            "recipients": {"users": "users", "delimiter": "+"},
            "delivery": {"method": "maildir", "maildir": self.maildir},
        }
        for k, v in (sections or {}).items():
            secs.setdefault(k, {}).update(v)
        for name, text in (files or {}).items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        with open(os.path.join(self.dir, "users"), "w") as f:
            f.write("\n".join(users or ["alice@example.test",
                                        "bob@example.test"]) + "\n")
        self.conf = os.path.join(self.dir, "moat.conf")
        self.write_conf(srv, secs, extra)
        self.proc = None

    def write_conf(self, srv, secs, extra=""):
        self.srv, self.secs = srv, secs
        with open(self.conf, "w") as f:
            f.write("[server]\n")
            for k, v in srv.items():
                f.write(f"{k} = {v}\n")
            for name, kv in secs.items():
                f.write(f"\n[{name}]\n")
                for k, v in kv.items():
                    f.write(f"{k} = {v}\n")
            f.write(extra)

    def start(self):
        self.proc = subprocess.Popen([MOATD, "-c", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr"), "w"))
        wait_port(self.port)
        return self

    def stop(self, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def sanitizer_report(self):
        """Anything ASan/UBSan said (the suite also runs under them)."""
        out = ""
        for name in ("stderr", "moatd.log"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                text = open(p, errors="replace").read()
                if "Sanitizer" in text or "runtime error" in text:
                    out += text
        return out

    def log(self):
        return open(self.log_path, errors="replace").read() if os.path.exists(self.log_path) else ""

    def events(self, timeout=2.0, want=1):
        """JSON lines logged so far (waits up to timeout for `want`)."""
        end = time.time() + timeout
        while True:
            lines = []
            if os.path.exists(self.json_path):
                with open(self.json_path) as f:
                    lines = [json.loads(l) for l in f if l.strip()]
            if len(lines) >= want or time.time() > end:
                return lines
            time.sleep(0.05)

    def delivered(self, user="alice", domain="example.test"):
        d = os.path.join(self.maildir, domain, user, "new")
        if not os.path.isdir(d):
            return []
        return [open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))]

    def all_delivered(self):
        out = []
        for root, dirs, files in os.walk(self.maildir):
            if root.endswith("/new"):
                out += [os.path.join(root, f) for f in files]
        return out

    def tmp_files(self):
        out = []
        for root, dirs, files in os.walk(self.maildir):
            if root.endswith("/tmp"):
                out += [os.path.join(root, f) for f in files]
        return out

    def worker_pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)


class Client:
    """A raw SMTP client: exact bytes out, whole replies in."""

    def __init__(self, port, timeout=10, source=None):
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed; pending: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """-> (code, [lines]) of one (multi-line) reply."""
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def cmd(self, line, expect=None):
        self.send(line + "\r\n")
        code, lines = self.reply()
        if expect is not None:
            assert code == expect, f"{line!r} -> {lines}"
        return code, lines

    def text(self, line):
        code, lines = self.cmd(line)
        return f"{code} " + " ".join(l[4:] for l in lines)

    def closed(self, timeout=3):
        """True when the server closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def starttls(self):
        self.cmd("STARTTLS", 220)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)
        return self.sock

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def greet(port, helo="client.example.org", source=None):
    c = Client(port, source=source)
    assert c.reply()[0] == 220
    c.cmd(f"EHLO {helo}", 250)
    return c


def message(subject="test", body="Hello.\r\n", extra=""):
    return (f"From: sender@example.org\r\nTo: alice@example.test\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n"
            f"{extra}\r\n{body}")


def dot_stuff(data):
    """RFC 5321 4.5.2: a line starting with '.' gets one more."""
    out = b".." + data[1:] if data.startswith(b".") else data
    return out.replace(b"\r\n.", b"\r\n..")


def send_one(port, rcpts=("alice@example.test",), msg=None, sender="sender@example.org"):
    """A whole transaction; -> (code, text) of the end-of-data reply."""
    c = greet(port)
    c.cmd(f"MAIL FROM:<{sender}>", 250)
    for r in rcpts:
        c.cmd(f"RCPT TO:<{r}>", 250)
    c.cmd("DATA", 354)
    data = msg if msg is not None else message()
    c.send(dot_stuff(data.encode() if isinstance(data, str) else data) + b".\r\n")
    code, lines = c.reply()
    c.cmd("QUIT")
    c.close()
    return code, " ".join(lines)
