"""Test DNS servers on loopback, for every test that needs DNS.

Unbound(tmpdir, local_data_lines): Debian's unbound answering only from the
given local data (the root is a static local zone, so no query ever leaves
the machine), on 127.0.0.1 and a free UDP+TCP port.

SlowDNS(port=None, delay=10.0, zones=...): a tiny UDP server that answers
after `delay` seconds, or never (delay=None): "a zone that times out".

Both listen on 127.0.0.1 only, expose .addr, .port and .resolver
("127.0.0.1:PORT", the form of moat's [dns] resolver), are context managers
and stop what they started by PID or by closing their socket.

    with Unbound(tmp_path, ['a.test. 300 IN A 192.0.2.1']) as u:
        u.query('a.test', 'A')        # -> ('NOERROR', ['192.0.2.1'])
"""
import os
import random
import socket
import struct
import subprocess
import threading
import time

UNBOUND = os.environ.get("UNBOUND", "/usr/sbin/unbound")

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN",
          4: "NOTIMP", 5: "REFUSED"}
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
         "TXT": 16, "AAAA": 28}


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (as free as can be
    told without holding it)."""
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def make_query(name, qtype="A", qid=None):
    qid = random.randrange(65536) if qid is None else qid
    hdr = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    return hdr + encode_name(name) + struct.pack("!HH", TYPES[qtype], 1)


def read_name(buf, off):
    """(name, offset after it), following compression pointers."""
    labels, end, hops = [], None, 0
    while True:
        n = buf[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | buf[off + 1]
            hops += 1
            if hops > 64:
                raise ValueError("pointer loop")
            continue
        labels.append(buf[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n
    return ".".join(labels), (end if end is not None else off)


def parse_reply(buf):
    """(rcode name, [answer rdata as text]) for A, AAAA, PTR, MX, TXT."""
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", buf[:12])
    off = 12
    for _ in range(qd):
        _, off = read_name(buf, off)
        off += 4
    out = []
    for _ in range(an):
        _, off = read_name(buf, off)
        rtype, _, _, rdlen = struct.unpack("!HHIH", buf[off:off + 10])
        off += 10
        rd = buf[off:off + rdlen]
        if rtype == 1:
            out.append(socket.inet_ntop(socket.AF_INET, rd))
        elif rtype == 28:
            out.append(socket.inet_ntop(socket.AF_INET6, rd))
        elif rtype in (5, 12):
            out.append(read_name(buf, off)[0])
        elif rtype == 15:
            out.append("%d %s" % (struct.unpack("!H", rd[:2])[0],
                                  read_name(buf, off + 2)[0] or "."))
        elif rtype == 16:
            parts, i = [], 0
            while i < len(rd):
                parts.append(rd[i + 1:i + 1 + rd[i]].decode("latin-1"))
                i += 1 + rd[i]
            out.append("".join(parts))
        off += rdlen
    return RCODES.get(flags & 0xF, str(flags & 0xF)), out


def udp_query(addr, port, name, qtype="A", timeout=1.0):
    """One raw UDP query: (rcode, answers), or None when nothing came."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        q = make_query(name, qtype)
        s.sendto(q, (addr, port))
        data, _ = s.recvfrom(65535)
        if data[:2] != q[:2]:
            return None
        return parse_reply(data)
    except (OSError, socket.timeout):
        return None
    finally:
        s.close()


def _quote(rr):
    q = "'" if '"' in rr else '"'
    return "local-data: %s%s%s" % (q, rr, q)


class Unbound:
    """unbound serving local_data_lines (RRs such as 'a.test. 300 IN A
    192.0.2.1', or whole 'local-zone: ...'/'local-data: ...' lines) and
    nothing else. log_queries=True logs every query to .logfile."""

    def __init__(self, tmpdir, local_data_lines=(), log_queries=True,
                 start=True):
        self.dir = str(tmpdir)
        os.makedirs(self.dir, exist_ok=True)
        self.addr = "127.0.0.1"
        self.port = free_port()
        self.lines = list(local_data_lines)
        self.log_queries = log_queries
        self.conf = os.path.join(self.dir, "unbound.conf")
        self.logfile = os.path.join(self.dir, "unbound.log")
        self.proc = None
        if start:
            self.start()

    @property
    def resolver(self):
        return "%s:%d" % (self.addr, self.port)

    def write_conf(self):
        data = []
        for line in self.lines:
            line = line.strip()
            if line.startswith(("local-data:", "local-zone:",
                                "local-data-ptr:")):
                data.append("    " + line)
            elif line:
                data.append("    " + _quote(line))
        conf = """server:
    interface: {addr}@{port}
    port: {port}
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    logfile: "{log}"
    use-syslog: no
    verbosity: 1
    log-queries: {lq}
    access-control: 127.0.0.0/8 allow
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    do-not-query-localhost: yes
    num-threads: 1
    module-config: "iterator"
    local-zone: "." static
{data}
remote-control:
    control-enable: no
""".format(addr=self.addr, port=self.port, dir=self.dir, log=self.logfile,
           lq="yes" if self.log_queries else "no", data="\n".join(data))
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self, deadline=10.0):
        self.write_conf()
        out = open(os.path.join(self.dir, "unbound.out"), "w")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", self.conf],
                                     stdout=out, stderr=subprocess.STDOUT)
        out.close()
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("unbound exited: %s" % self.output())
            if udp_query(self.addr, self.port, "ready.invalid", "A",
                         timeout=0.2) is not None:
                return self
        self.stop()
        raise RuntimeError("unbound did not answer: %s" % self.output())

    def output(self):
        text = ""
        for name in ("unbound.out", "unbound.log"):
            try:
                with open(os.path.join(self.dir, name)) as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def query(self, name, qtype="A"):
        return udp_query(self.addr, self.port, name, qtype)

    def queries_for(self, name, qtype="A"):
        """How many queries for name/qtype the log shows (log_queries)."""
        needle = "%s. %s IN" % (name.rstrip("."), qtype)
        try:
            with open(self.logfile) as f:
                return sum(1 for line in f if needle in line)
        except OSError:
            return 0

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class SlowDNS:
    """A UDP DNS server on 127.0.0.1 that answers after `delay` seconds,
    or never when delay is None. zones: {name: {"A": ["192.0.2.1"],
    "TXT": ["text"]}} (A, AAAA, TXT); other names get NXDOMAIN, other
    types NODATA; delays: {name: seconds} for names answered after their
    own delay. .queries counts what arrived."""

    def __init__(self, port=None, delay=10.0, zones=None, delays=None):
        self.addr = "127.0.0.1"
        self.delay = delay
        self.delays = {k.rstrip(".").lower(): v
                       for k, v in (delays or {}).items()}
        self.zones = {k.rstrip(".").lower(): v
                      for k, v in (zones or {}).items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.addr, port or 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self._lock = threading.Lock()
        self._timers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def resolver(self):
        return "%s:%d" % (self.addr, self.port)

    def _answer(self, q):
        qid, flags = struct.unpack("!HH", q[:4])
        name, off = read_name(q, 12)
        qtype, _ = struct.unpack("!HH", q[off:off + 4])
        question = q[12:off + 4]
        recs = self.zones.get(name.lower())
        rdatas = []
        if recs is not None:
            for tname, values in recs.items():
                if TYPES.get(tname) != qtype:
                    continue
                for v in values:
                    if tname == "A":
                        rdatas.append(socket.inet_pton(socket.AF_INET, v))
                    elif tname == "AAAA":
                        rdatas.append(socket.inet_pton(socket.AF_INET6, v))
                    elif tname == "TXT":
                        b = v.encode()
                        rdatas.append(b"".join(
                            bytes([len(b[i:i + 255])]) + b[i:i + 255]
                            for i in range(0, max(len(b), 1), 255)))
        rcode = 3 if recs is None else 0
        hdr = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | rcode,
                          1, len(rdatas), 0, 0)
        ans = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60,
                                                 len(rd)) + rd
                       for rd in rdatas)
        return hdr + question + ans

    def _send(self, reply, peer):
        if not self._stop.is_set():
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                pass

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                q, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.queries += 1
            if self.delay is None:
                continue
            try:
                reply = self._answer(q)
                delay = self.delays.get(read_name(q, 12)[0].lower(),
                                        self.delay)
            except (ValueError, IndexError, struct.error):
                continue
            t = threading.Timer(delay, self._send, (reply, peer))
            t.daemon = True
            self._timers.append(t)
            t.start()

    def stop(self):
        self._stop.set()
        for t in self._timers:
            t.cancel()
        self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _selftest():
    """python3 tests/integration/dnsserver.py: both servers answer as
    documented (the fixtures' own check; later filters' tests use them)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        with Unbound(d, ['a.test. 300 IN A 192.0.2.1',
                         'txt.test. 300 IN TXT "a" "b"',
                         'nullmx.test. 300 IN MX 0 .']) as u:
            assert u.query("a.test") == ("NOERROR", ["192.0.2.1"])
            assert u.query("txt.test", "TXT") == ("NOERROR", ["ab"])
            assert u.query("nullmx.test", "MX") == ("NOERROR", ["0 ."])
            assert u.query("nx.test")[0] == "NXDOMAIN"
            assert u.query("www.example.com")[0] == "NXDOMAIN"
            assert u.queries_for("a.test") == 1
        assert u.proc is None
    with SlowDNS(delay=0.2, zones={"slow.test": {"A": ["192.0.2.7"]}}) as s:
        assert udp_query(s.addr, s.port, "slow.test", timeout=5) == \
            ("NOERROR", ["192.0.2.7"])
        assert udp_query(s.addr, s.port, "no.test", timeout=5)[0] == \
            "NXDOMAIN"
    with SlowDNS(delay=None) as s:
        assert udp_query(s.addr, s.port, "slow.test", timeout=0.3) is None
        assert s.queries == 1
    print("dnsserver: ok")


if __name__ == "__main__":
    _selftest()
