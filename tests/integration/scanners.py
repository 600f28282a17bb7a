"""Real content scanners for the tests, from Debian's packages, started
directly (never their service units, never freshclam):

- Clamd: clamd with a temp config, a UNIX socket and a database made
  here: an MD5 signature of the EICAR test file (sigtool --md5) and an
  .ndb body signature that also catches EICAR pasted inline. clamd names
  such signatures NAME.UNOFFICIAL.
- Spamd: `spamd -L` (local tests only) on a 127.0.0.1 port, without user
  configs; GTUBE scores 1000.

Both are stopped by their PID. Tests skip when the binaries are absent."""
import os
import shutil
import signal
import socket
import subprocess
import time

from moatlib import free_port

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
         b"$H+H*")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def have(*names):
    return all(shutil.which(n) or os.path.exists(f"/usr/sbin/{n}")
               for n in names)


def _which(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


class Clamd:
    def __init__(self, tmp, stream_max="200K"):
        self.dir = str(tmp)
        db = os.path.join(self.dir, "db")
        os.makedirs(db, exist_ok=True)
        eicar = os.path.join(self.dir, "eicar.com")
        with open(eicar, "wb") as f:
            f.write(EICAR)
        out = subprocess.run([_which("sigtool"), "--md5", eicar],
                             capture_output=True, text=True, check=True)
        md5, size, _ = out.stdout.strip().split(":", 2)
        with open(os.path.join(db, "moat.hdb"), "w") as f:
            f.write(f"{md5}:{size}:Moat.Test.EICAR\n")
        with open(os.path.join(db, "moat.ndb"), "w") as f:
            f.write(f"Moat.Test.EICAR.Body:0:*:{EICAR.hex()}\n")
        self.sock = os.path.join(self.dir, "clamd.sock")
        self.conf = os.path.join(self.dir, "clamd.conf")
        with open(self.conf, "w") as f:
            f.write(f"Foreground yes\nLocalSocket {self.sock}\n"
                    f"DatabaseDirectory {db}\nTemporaryDirectory {self.dir}\n"
                    f"StreamMaxLength {stream_max}\n"
                    f"LogFile {self.dir}/clamd.log\nMaxThreads 4\n")
        self.proc = None

    def start(self, timeout=60):
        self.proc = subprocess.Popen([_which("clamd"), "-c", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr"), "w"))
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("clamd exited: " + open(
                    os.path.join(self.dir, "stderr")).read())
            try:
                if self.ask(b"zPING\0") == b"PONG\0":
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("clamd did not start")

    def ask(self, data):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.sock)
            s.sendall(data)
            out = b""
            while not out.endswith(b"\0"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
            return out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Spamd:
    def __init__(self, tmp):
        self.dir = str(tmp)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = None

    def start(self, timeout=120):
        args = [_which("spamd"), "-L", "-x", f"--listen=127.0.0.1:{self.port}",
                "--max-children=2", "--min-children=1", "-s", "stderr",
                f"--pidfile={self.dir}/spamd.pid"]
        if os.getuid() == 0:
            args += ["-u", "nobody"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr"), "w"))
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("spamd exited: " + open(
                    os.path.join(self.dir, "stderr")).read()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), 2) as s:
                    s.sendall(b"PING SPAMC/1.5\r\n\r\n")
                    if b"PONG" in s.recv(100):
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("spamd did not start")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Hang:
    """A service that accepts, reads and never answers (a hung spamd)."""

    def __init__(self):
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.done = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.done = True
        self.sock.close()
        for c in self.conns:
            c.close()
