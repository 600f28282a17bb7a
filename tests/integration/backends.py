"""Scripted backends for the delivery hardening tests: a small SMTP/LMTP
server whose every answer is a hook, on a loopback port of its own, one
thread per connection. It records what each connection saw and when the
connection ended, so tests can wait for "moat closed the backend link"."""
import socket
import ssl
import threading
import time


def wait_until(pred, timeout=5.0, step=0.02):
    """Polls pred() until it is true or the deadline passes."""
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


class Conn:
    """What one backend connection saw."""

    def __init__(self):
        self.commands = []
        self.closed = False         # moat closed (EOF / reset)
        self.tls = False


class Backend:
    """An SMTP (or LMTP) server. Hooks, each may be replaced by a test:
      on_starttls(sock) -> bytes written before the TLS handshake
      on_rcpt(rcpt)     -> reply line (bytes, no CRLF)
      on_data(conn)     -> called after DATA, before the 354 is sent
      on_final(rcpts, data) -> list of reply lines (one, or LMTP: one per
                               accepted recipient); None hangs up
    Delivered messages go to self.messages as (rcpts, data)."""

    def __init__(self, lmtp=False, tls_cert=None, tls_key=None):
        self.lmtp = lmtp
        self.tls = None
        if tls_cert:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(tls_cert, tls_key)
        self.on_starttls = lambda sock: b"220 2.0.0 go ahead\r\n"
        self.on_rcpt = lambda rcpt: b"250 2.1.5 ok"
        self.on_data = lambda conn: None
        self.on_final = self._final
        self.messages = []
        self.conns = []
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _final(self, rcpts, data):
        return [b"250 2.0.0 saved"] * (len(rcpts) if self.lmtp else 1)

    def close(self):
        self.running = False
        try:
            self.srv.close()
        except OSError:
            pass

    def _accept(self):
        while self.running:
            try:
                s, _ = self.srv.accept()
            except OSError:
                return
            conn = Conn()
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(s, conn),
                             daemon=True).start()

    def _serve(self, s, conn):
        f = s.makefile("rb")
        try:
            s.sendall(b"220 backend ESMTP\r\n")
            ok = []
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.rstrip(b"\r\n")
                conn.commands.append(cmd)
                verb = cmd[:4].upper()
                if verb in (b"EHLO", b"LHLO"):
                    caps = [b"250-backend", b"250-PIPELINING", b"250-8BITMIME"]
                    if self.tls and not conn.tls:
                        caps.append(b"250-STARTTLS")
                    caps.append(b"250 SMTPUTF8")
                    s.sendall(b"\r\n".join(caps) + b"\r\n")
                elif cmd.upper() == b"STARTTLS":
                    s.sendall(self.on_starttls(s))
                    s = self.tls.wrap_socket(s, server_side=True)
                    f = s.makefile("rb")
                    conn.tls = True
                elif verb == b"MAIL":
                    ok = []
                    s.sendall(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    r = cmd[8:].split(b">")[0].strip(b"<").decode()
                    rep = self.on_rcpt(r)
                    if rep.startswith(b"2"):
                        ok.append(r)
                    s.sendall(rep + b"\r\n")
                elif verb == b"DATA":
                    self.on_data(conn)
                    s.sendall(b"354 go\r\n")
                    data = b""
                    while True:
                        l = f.readline()
                        if not l:
                            return
                        if l == b".\r\n":
                            break
                        data += l[1:] if l.startswith(b".") else l
                    reps = self.on_final(list(ok), data)
                    if reps is None:
                        return
                    with self.lock:
                        done = [r for r, rep in zip(ok, reps if self.lmtp else reps * len(ok))
                                if rep.startswith(b"2")]
                        if done:
                            self.messages.append((done, data))
                    s.sendall(b"".join(r + b"\r\n" for r in reps))
                elif verb == b"RSET":
                    ok = []
                    s.sendall(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    s.sendall(b"221 bye\r\n")
                    return
                else:
                    s.sendall(b"250 ok\r\n")
        except (OSError, ssl.SSLError, ValueError):
            return
        finally:
            conn.closed = True
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            f.close()
            s.close()

    def delivered(self, rcpt):
        with self.lock:
            return sum(rcpts.count(rcpt) for rcpts, _ in self.messages)
