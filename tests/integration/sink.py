"""A recording SMTP/LMTP server for tests: scripted replies per recipient,
optional STARTTLS, PIPELINING, counts connections, keeps every message.
A data_reply that returns None hangs up instead of answering."""
import socket
import ssl
import threading


class Sink:
    def __init__(self, lmtp=False, tls_cert=None, tls_key=None,
                 rcpt_reply=None, data_reply=None, greeting=b"220 sink ESMTP\r\n",
                 smtputf8=True):
        self.lmtp = lmtp
        self.smtputf8 = smtputf8
        self.rcpt_reply = rcpt_reply or (lambda rcpt: b"250 2.1.5 ok")
        self.data_reply = data_reply or (lambda rcpt: b"250 2.0.0 queued")
        self.greeting = greeting
        self.tls = None
        if tls_cert:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(tls_cert, tls_key)
        self.messages = []      # (mail_from, [rcpts], data bytes, tls)
        self.connections = 0
        self.commands = []
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(128)
        self.port = self.srv.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

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
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        f = s.makefile("rb")
        tls = False
        try:
            s.sendall(self.greeting)
            mail, rcpts, ok = None, [], []
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.rstrip(b"\r\n")
                with self.lock:
                    self.commands.append(cmd)
                verb = cmd[:4].upper()
                if verb in (b"EHLO", b"LHLO", b"HELO"):
                    caps = [b"250-sink", b"250-PIPELINING", b"250-8BITMIME", b"250-SIZE 100000000"]
                    if self.tls and not tls:
                        caps.append(b"250-STARTTLS")
                    caps.append(b"250 SMTPUTF8" if self.smtputf8 else b"250 DSN")
                    s.sendall(b"\r\n".join(caps) + b"\r\n")
                elif cmd.upper() == b"STARTTLS":
                    s.sendall(b"220 go ahead\r\n")
                    s = self.tls.wrap_socket(s, server_side=True)
                    f = s.makefile("rb")
                    tls = True
                elif verb == b"MAIL":
                    mail, rcpts, ok = cmd[10:].strip(b"<>").split(b">")[0], [], []
                    s.sendall(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    r = cmd[8:].split(b">")[0].strip(b"<").decode()
                    rep = self.rcpt_reply(r)
                    rcpts.append(r)
                    if rep.startswith(b"2"):
                        ok.append(r)
                    s.sendall(rep + b"\r\n")
                elif verb == b"DATA":
                    s.sendall(b"354 go\r\n")
                    data = b""
                    while True:
                        l = f.readline()
                        if not l or l == b".\r\n":
                            break
                        data += l[1:] if l.startswith(b".") else l
                    reps = [self.data_reply(r) for r in ok] if self.lmtp else [self.data_reply(ok[0] if ok else "")]
                    if any(r is None for r in reps):
                        return      # data_reply None: hang up instead
                    if all(r.startswith(b"2") for r in reps):
                        with self.lock:
                            self.messages.append((mail.decode(), list(ok), data, tls))
                    s.sendall(b"".join(r + b"\r\n" for r in reps))
                elif verb == b"RSET":
                    mail, rcpts, ok = None, [], []
                    s.sendall(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    s.sendall(b"221 bye\r\n")
                    return
                else:
                    s.sendall(b"250 ok\r\n")
        except (OSError, ssl.SSLError):
            return
        finally:
            # makefile() holds the socket open: shut it down explicitly.
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            f.close()
            s.close()
