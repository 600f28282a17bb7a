#!/usr/bin/python3
"""differential.py: moat's SPF evaluator against pyspf (python3-spf) on
random zones and records.

    /usr/bin/python3 tests/spf/differential.py [-n N] [-s SEED] \
        [--driver build/spf_driver] [-v]

Each case is a small random zone (a few domains with random SPF records,
A/AAAA/MX/PTR data, some names timing out) and a random client. Both sides
read the same zone: pyspf through a fake spf.DNSLookup with the semantics
of tests/spf/spf_fake.h (and testspf.py), moat through tests/spf/driver.c
on a file in the convert.py line format. Disagreements are sorted into
classes; the known classes are pyspf deviations from RFC 7208 (see
docs/SPF.md), the rest are printed in full. Exit status 1 when an unknown
class shows up. No network: spf.DNSLookup is replaced before any query.
"""
import argparse
import collections
import importlib
import inspect
import ipaddress
import os
import random
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, '/usr/lib/python3/dist-packages')
import spf  # noqa: E402

DOMAINS = ['d%d.example' % i for i in range(6)]
MISSING = ['n%d.example' % i for i in range(3)]
V4 = ['192.0.2.%d' % i for i in range(1, 6)] + ['198.51.100.7']
V6 = ['2001:db8::%d' % i for i in range(1, 4)]
MACROS = ['%{d}', '%{o}', '%{l}', '%{i}', '%{ir}', '%{v}', '%{h}',
          '%{d2}', '%{l1r-}', '%{ir}.%{v}', '%{p}', '%{s}', '%{L}', '%{D}']


def esc(v):
    if isinstance(v, str):
        v = v.encode('utf-8')
    if v == b'':
        return '\\-'
    return ''.join(chr(b) if 0x21 <= b <= 0x7e and b != 0x5c
                   else '\\x%02x' % b for b in v)


def unesc(s):
    if s == '\\-':
        return ''
    out, i = bytearray(), 0
    while i < len(s):
        if s[i] == '\\' and s[i + 1:i + 2] == 'x':
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(ord(s[i]))
            i += 1
    return out.decode('utf-8', 'replace')


class Gen:
    """Random but bounded record shapes."""

    def __init__(self, rnd):
        self.r = rnd

    def target(self):
        r = self.r
        x = r.random()
        if x < 0.55:
            return r.choice(DOMAINS)
        if x < 0.7:
            return r.choice(MISSING)
        if x < 0.9:
            return r.choice(MACROS) + '.' + r.choice(DOMAINS)
        return r.choice(['%{d}', '%{o}', 'x.%{d2}', '%{p}'])

    def cidr(self, six=False):
        r = self.r
        if six:
            return r.choice([0, 32, 48, 64, 96, 112, 120, 127, 128])
        return r.choice([0, 8, 16, 24, 28, 30, 31, 32])

    def mech(self):
        r = self.r
        q = r.choice(['', '', '', '+', '-', '~', '?'])
        k = r.choice(['a', 'a', 'mx', 'mx', 'ptr', 'ip4', 'ip4', 'ip6',
                      'exists', 'include', 'include', 'all'])
        if k in ('a', 'mx'):
            s = k
            if r.random() < 0.6:
                s += ':' + self.target()
            if r.random() < 0.3:
                s += '/%d' % self.cidr()
            if r.random() < 0.2:
                s += '//%d' % self.cidr(True)
        elif k == 'ptr':
            s = 'ptr' + (':' + self.target() if r.random() < 0.6 else '')
        elif k == 'ip4':
            net = ipaddress.ip_network('%s/%d' % (r.choice(V4),
                                                  self.cidr()), False)
            s = 'ip4:%s' % (net.network_address if r.random() < 0.5
                            else r.choice(V4))
            if r.random() < 0.7:
                s += '/%d' % net.prefixlen
        elif k == 'ip6':
            s = 'ip6:%s' % r.choice(V6)
            if r.random() < 0.7:
                s += '/%d' % self.cidr(True)
        elif k in ('exists', 'include'):
            s = '%s:%s' % (k, self.target())
        else:
            s = 'all'
        return q + s

    def record(self):
        r = self.r
        terms = [self.mech() for _ in range(r.randint(0, 6))]
        if r.random() < 0.25:
            terms.append('redirect=' + self.target())
        if r.random() < 0.3:
            terms.append('exp=e.' + r.choice(DOMAINS))
        if r.random() < 0.1:
            terms.append('foo=%{l}bar')
        r.shuffle(terms)
        if r.random() < 0.05:     # a syntax error somewhere
            terms.insert(r.randint(0, len(terms)),
                         r.choice(['a/33', 'ip4:1.2.3', 'moo', 'ptr/8',
                                   'exists', 'a:x.%{q}', '-all.']))
        return ' '.join(['v=spf1'] + terms)

    def zone(self):
        r = self.r
        z = []      # (name, type, value...)
        for d in DOMAINS:
            if r.random() < 0.05:
                z.append((d, 'TIMEOUT'))
                continue
            if r.random() < 0.85:
                z.append((d, 'TXT', self.record()))
                if r.random() < 0.04:
                    z.append((d, 'TXT', self.record()))
            if r.random() < 0.2:
                z.append((d, 'TXT', 'not spf'))
            for _ in range(r.choice([0, 0, 1, 1, 2, 3])):
                z.append((d, 'A', r.choice(V4)))
            for _ in range(r.choice([0, 0, 1, 2])):
                z.append((d, 'AAAA', r.choice(V6)))
            for i in range(r.choice([0, 0, 1, 2, 3, 11])):
                z.append((d, 'MX', str(i), r.choice(DOMAINS + MISSING)))
            z.append(('e.' + d, 'TXT', r.choice(
                ['Not %{l} from %{c}', 'see %{d2}', 'x %{x}', '%{i} at '
                 '%{o}.'])))
        for ip in V4 + V6:
            rev = ipaddress.ip_address(ip).reverse_pointer
            for _ in range(r.choice([0, 1, 1, 2, 3])):
                z.append((rev, 'PTR', r.choice(DOMAINS + MISSING +
                                                ['h.' + DOMAINS[0]])))
        if r.random() < 0.5:
            z.append(('h.' + DOMAINS[0], 'A', r.choice(V4)))
        if r.random() < 0.3:
            z.append((r.choice(DOMAINS), 'TIMEOUT'))
        return z


def fake_dns(zone):
    """spf.DNSLookup on the zone: the semantics of spf_fake.h."""
    def lookup(name, qtype, strict=True, timeout=None, level=0):
        name = name.lower().rstrip('.')
        have, exists = [], False
        for e in zone:
            if e[0] != name:
                continue
            exists = True
            if e[1] == 'TIMEOUT':
                if not have:
                    raise spf.TempError('DNS timeout')
                break
            if e[1] != qtype:
                continue
            if qtype == 'TXT':
                v = (e[2].encode(),)
            elif qtype == 'MX':
                v = (int(e[2]), e[3])
            else:
                v = e[2]
            have.append(((name, qtype), v))
        if not exists and name.startswith('error.'):
            raise spf.TempError('DNS timeout')
        return have
    return lookup


def run_pyspf(zone, ip, helo, mailfrom):
    spf.DNSLookup = fake_dns(zone)
    q = spf.query(i=ip, s=mailfrom, h=helo, receiver='mx.moat.test')
    q.set_default_explanation('DEFAULT')
    try:
        res, _, exp = q.check()
    except Exception as x:   # pyspf bugs: name them, do not die
        return 'exception:%s' % type(x).__name__, '', q
    res = {'unknown': 'permerror', 'error': 'temperror'}.get(res, res)
    return res, (exp if res == 'fail' else ''), q


def write_case(f, i, zone, ip, helo, mailfrom):
    f.write('scenario c%d\n' % i)
    for e in zone:
        f.write('zone %s %s %s\n' % (esc(e[0]), e[1],
                                     ' '.join(esc(x) for x in e[2:])))
    f.write('case c%d %s %s %s any \\-\n' % (i, esc(ip), esc(helo),
                                           esc(mailfrom)))


# Known pyspf deviations from RFC 7208, each as a patch to pyspf. A
# disagreement is put in the class of the first patch (applied in this
# order, cumulatively) after which pyspf agrees with moat.
_ORIG = {n: textwrap.dedent(inspect.getsource(getattr(spf.query, n)))
         for n in ('check0', 'validate_mechanism')}
_PAIRS = collections.defaultdict(list)


def _patch_source(func, pairs):
    """Re-makes query.<func> from its original source with every patch
    asked so far (patches pile up, cumulatively)."""
    name = func.__name__
    _PAIRS[name].extend(pairs)
    src = _ORIG[name]
    for old, new in _PAIRS[name]:
        if old not in src:
            raise SystemExit('pyspf source changed: %r' % old)
        src = src.replace(old, new)
    ns = {}
    exec(src, spf.__dict__, ns)
    return ns[name]


def fix_include_self(q):
    """pyspf: "include:<own domain>" is a permerror when parsed (before
    any term is evaluated); RFC 7208: terms are evaluated in order and a
    loop only ends at the 10-term limit (§4.6.4, §5.2)."""
    spf.query.validate_mechanism = _patch_source(
        spf.query.validate_mechanism,
        [('if arg == self.d:', "if arg == self.d and "
          "mech.lstrip('+-?~').lower() == 'include':")])


def fix_redirect_early(q):
    """pyspf counts redirect= against the 10 DNS terms when it parses the
    record; RFC 7208 §4.6.4/§6.1: redirect is a term when it is used."""
    spf.query.check0 = _patch_source(spf.query.check0, [
        ("            self.check_lookups()\n"
         "            redirect = self.expand_domain(arg)",
         "            redirect = self.expand_domain(arg)"),
        ("            redirect_record = self.dns_spf(redirect)",
         "            self.check_lookups()\n"
         "            redirect_record = self.dns_spf(redirect)")])


def fix_ptr_errors(q):
    """pyspf: a DNS error on the PTR query or on a PTR name's address
    query (for ptr or %{p}) is a temperror; RFC 7208 §5.5: the name is
    skipped / the mechanism does not match, and %{p} is "unknown"."""
    def validated_ptrs(self):
        try:
            names = self.dns_ptr(self.i)[:spf.MAX_PTR]
        except spf.TempError:
            return []
        out = []
        for p in names:
            try:
                if self.cidrmatch(self.dns_a(p, self.A), self.cidrmax):
                    out.append(p)
            except spf.TempError:
                pass
        return out
    spf.query.validated_ptrs = validated_ptrs


def fix_mx_order(q):
    """pyspf fetches the addresses of every MX name before matching, so a
    DNS error on any name is a temperror even when an earlier name
    matches; moat takes them in preference order as if asked one by one
    (a match before the error wins), as RFC 7208 §5.4 describes."""
    spf.query.check0 = _patch_source(spf.query.check0, [
        ("if self.cidrmatch(self.dns_mx(arg), cidrlength):",
         "if self.mx_match(arg, cidrlength):")])

    def mx_match(self, name, cidr):
        mx = self.dns(name, 'MX')
        if len(mx) > spf.MAX_MX:
            raise spf.PermError('More than 10 MX records returned')
        for _, host in sorted(mx):
            if self.cidrmatch(self.dns_a(host, self.A), cidr):
                return True
        return False
    spf.query.mx_match = mx_match


def fix_void_secondary(q):
    """pyspf counts every empty answer as a void lookup: the addresses of
    MX and PTR names, the PTR query made for %{p}; moat counts a term's
    own query (a, mx, ptr, exists) only, the reading of §4.6.4 ("terms
    for which DNS queries return ...") that Mail::SPF also makes."""
    orig_dns, orig_getp = spf.query.dns, spf.query.getp
    orig_mx = getattr(spf.query, 'mx_match', None)

    def dns(self, name, qtype, cnames=None, ignore_void=False):
        return orig_dns(self, name, qtype, cnames,
                        ignore_void or getattr(self, '_nov', 0) > 0)

    def quiet(f):
        def g(self, *a):
            self._nov = getattr(self, '_nov', 0) + 1
            try:
                return f(self, *a)
            finally:
                self._nov -= 1
        return g

    def dns_a_secondary(self, domainname, A='A'):
        return orig_dns_a(self, domainname, A)
    orig_dns_a = spf.query.dns_a
    spf.query.dns = dns
    spf.query.getp = quiet(orig_getp)
    orig_vp = spf.query.validated_ptrs

    def validated_ptrs(self):
        # the PTR query of a ptr term counts; its names' lookups do not
        names = self.dns_ptr(self.i)
        self._nov = getattr(self, '_nov', 0) + 1
        try:
            return orig_vp(self)
        finally:
            self._nov -= 1
    spf.query.validated_ptrs = validated_ptrs
    if orig_mx is not None:
        def mx_match(self, name, cidr):
            self.dns(name, 'MX')     # the term's own query counts
            return quiet(orig_mx)(self, name, cidr)
        spf.query.mx_match = mx_match


FIXES = [('pyspf-include-self-permerror', fix_include_self),
         ('pyspf-counts-redirect-when-parsed', fix_redirect_early),
         ('pyspf-ptr-dns-error-temperror', fix_ptr_errors),
         ('pyspf-mx-any-error-temperror', fix_mx_order),
         ('pyspf-void-counts-secondary-lookups', fix_void_secondary)]


def classify(case, ours):
    """The first known deviation whose fix makes pyspf agree, else
    'unclassified'."""
    z, ip, helo, mf = case
    try:
        for name, fix in FIXES:
            fix(None)
            t, texp, _ = run_pyspf(z, ip, helo, mf)
            if t == ours['result'] and (t != 'fail' or
                                        texp == (ours['exp'] or
                                                 'DEFAULT')):
                return name
        return 'unclassified'
    finally:
        _PAIRS.clear()
        importlib.reload(spf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-n', type=int, default=2000)
    ap.add_argument('-s', '--seed', type=int, default=1)
    ap.add_argument('--driver', default='build/spf_driver')
    ap.add_argument('-v', action='store_true')
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    g = Gen(rnd)
    cases = []
    for i in range(a.n):
        z = g.zone()
        ip = rnd.choice(V4 + V6 + ['::ffff:192.0.2.1'])
        mf = rnd.choice(['user@d0.example', 'a-b.c@d0.example',
                         'postmaster@d1.example', ''])
        cases.append((z, ip, rnd.choice(['h.d0.example', 'd1.example']),
                      mf))
    with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as f:
        for i, (z, ip, helo, mf) in enumerate(cases):
            write_case(f, i, z, ip, helo, mf)
        path = f.name
    out = subprocess.run([a.driver, path], capture_output=True, text=True,
                         check=True).stdout.split('\n')
    os.unlink(path)
    ours = {}
    for line in out:
        if line:
            cid, res, terms, void, exp = line.split(' ')
            ours[cid] = {'result': res, 'terms': int(terms),
                         'void': int(void), 'exp': unesc(exp)}
    classes = collections.Counter()
    results = collections.Counter()
    examples = {}
    for i, (z, ip, helo, mf) in enumerate(cases):
        o = ours['c%d' % i]
        t, texp, q = run_pyspf(z, ip, helo, mf)
        results[o['result']] += 1
        oexp = o['exp'] or 'DEFAULT'
        if t == o['result'] and (t != 'fail' or texp == oexp):
            continue
        recs = ' | '.join('%s: %s' % (e[0], e[2]) for e in z
                          if e[1] == 'TXT' and e[2].startswith('v=spf1'))
        c = classify((z, ip, helo, mf), o)
        classes[c] += 1
        examples.setdefault(c, []).append(
            (i, ip, mf, o, t, texp, recs))
    print('differential: %d cases, seed %d; moat results: %s' % (
        a.n, a.seed, dict(results)))
    agree = a.n - sum(classes.values())
    print('agree: %d; disagree: %d' % (agree, a.n - agree))
    for c, n in classes.most_common():
        print('  %-40s %d' % (c, n))
        for ex in examples[c][:(5 if a.v else 1)]:
            i, ip, mf, o, t, texp, recs = ex
            print('    c%d ip=%s from=%r moat=%s(terms %d void %d exp %r) '
                  'pyspf=%s(exp %r)\n      %s' % (
                      i, ip, mf, o['result'], o['terms'], o['void'],
                      o['exp'], t, texp, recs))
    return 1 if classes.get('unclassified') else 0


if __name__ == '__main__':
    sys.exit(main())
