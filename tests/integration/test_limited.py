"""Limited addresses (issue 11): user.N.count@domain takes N messages and
then 550 5.7.1, user.date.DD-MM-YYYY@domain mail through that day; both
are delivered to user@domain. Malformed forms are left to recipient
validation; a [domain] section changes the separator and date format.
Counts live in the store, reserved at RCPT through its one writer: two
workers racing for the last count never let more than N through, and a
transaction that ends without its message gives its count back."""
import subprocess
import time

from moatlib import MOATD, dot_stuff, greet, message


def limited_moat(make_moat):
    return make_moat(
        sections={"pipeline": {"filters": "relay limited recipients"}},
        server={"local_domains": "example.test other.test"},
        users=["alice@example.test", "bob@example.test",
               "carol@other.test"],
        extra="\n[domain other.test]\nlimited.separator = -\n"
              "limited.date_format = YYYY-MM-DD\n")


def deliver(c, subject):
    c.cmd("DATA", 354)
    c.send(dot_stuff(message(subject=subject).encode()) + b".\r\n")
    return c.reply()[0]


def one(m, rcpt, subject):
    """One message to rcpt: the RCPT reply, then 250 at the end."""
    c = greet(m.port)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    code, lines = c.cmd(f"RCPT TO:<{rcpt}>")
    if code == 250:
        assert deliver(c, subject) == 250
    c.cmd("QUIT")
    c.close()
    return code, " ".join(lines)


def test_count(make_moat):
    m = limited_moat(make_moat)
    for i in range(2):
        assert one(m, "alice.2.count@example.test", f"c{i}")[0] == 250
    code, text = one(m, "Alice.2.Count@example.test", "c2")
    assert code == 550 and "5.7.1" in text and "message limit" in text, text
    assert len(m.delivered("alice")) == 2
    # Another N is another counter; an unknown user stays unknown.
    assert one(m, "alice.1.count@example.test", "d0")[0] == 250
    assert len(m.delivered("alice")) == 3
    code, text = one(m, "nobody.5.count@example.test", "x")
    assert code == 550 and "5.1.1" in text, text
    # Malformed (N = 0, past max_count 100, a leading zero): not limited
    # addresses, so recipient validation refuses them as unknown.
    for bad in ("alice.0.count", "alice.101.count", "alice.02.count"):
        code, text = one(m, bad + "@example.test", "x")
        assert code == 550 and "5.1.1" in text, (bad, text)
    # A transaction that ends without a message gives its count back
    # (RSET), and so does a recipient refused after limited (recipient
    # validation) in a message that is accepted for another.
    c = greet(m.port)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    c.cmd("RCPT TO:<bob.1.count@example.test>", 250)
    c.cmd("RSET", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    c.cmd("RCPT TO:<bob.1.count@example.test>", 250)
    assert deliver(c, "b0") == 250
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    assert c.cmd("RCPT TO:<bob.1.count@example.test>")[0] == 550
    c.cmd("RSET", 250)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    assert c.cmd("RCPT TO:<nobody.1.count@example.test>")[0] == 550
    c.cmd("RCPT TO:<alice@example.test>", 250)
    assert deliver(c, "n0") == 250
    c.cmd("QUIT")
    c.close()
    assert len(m.delivered("bob")) == 1
    end = time.time() + 5
    while 'action=giveback key="limited:nobody.1.count@' not in m.log():
        assert time.time() < end, m.log()
        time.sleep(0.05)
    ev = m.events(want=3)
    assert any("LIMITED_COUNT" in str(e) for e in ev), ev


def test_dates_and_domain_override(make_moat):
    m = limited_moat(make_moat)
    assert one(m, "alice.date.31-12-2099@example.test", "future")[0] == 250
    code, text = one(m, "alice.date.01-01-2000@example.test", "past")
    assert code == 550 and "5.7.1" in text and "expired" in text, text
    assert len(m.delivered("alice")) == 1
    # Not a calendar day: not a limited address.
    code, text = one(m, "alice.date.31-02-2026@example.test", "x")
    assert code == 550 and "5.1.1" in text, text
    # other.test: "-" and YYYY-MM-DD; the default forms mean nothing.
    assert one(m, "carol-date-2099-12-31@other.test", "o1")[0] == 250
    assert one(m, "carol-2-count@other.test", "o2")[0] == 250
    code, text = one(m, "carol-date-2000-01-01@other.test", "x")
    assert code == 550 and "expired" in text, text
    code, text = one(m, "carol.date.31-12-2099@other.test", "x")
    assert code == 550 and "5.1.1" in text, text
    assert len(m.delivered("carol", "other.test")) == 2


def test_race_for_the_last_count(make_moat):
    """Sessions spread over 2 workers ask for bob.3.count at the same
    moment: exactly 3 are accepted and delivered."""
    m = limited_moat(make_moat)
    cs = [greet(m.port) for _ in range(8)]
    for c in cs:
        c.cmd("MAIL FROM:<someone@example.org>", 250)
    for c in cs:
        c.send("RCPT TO:<bob.3.count@example.test>\r\n")
    codes = [c.reply()[0] for c in cs]
    assert sorted(codes) == [250] * 3 + [550] * 5, codes
    for i, (c, code) in enumerate(zip(cs, codes)):
        if code == 250:
            assert deliver(c, f"r{i}") == 250
        c.cmd("QUIT")
        c.close()
    assert len(m.delivered("bob")) == 3
    assert m.sanitizer_report() == ""


def test_bad_options_refused_at_load(make_moat):
    """A bad separator, date format or max_count: moatd -t fails and
    names the file and line."""
    for key, val in (("separator", "x"), ("date_format", "DD-MM-YY"),
                     ("max_count", "0")):
        m = make_moat(start=False,
                      sections={"pipeline": {"filters":
                                             "relay limited recipients"}},
                      server={"local_domains": "example.test other.test"},
                      extra=f"\n[domain other.test]\nlimited.{key} = {val}\n")
        out = subprocess.run([MOATD, "-t", "-c", m.conf],
                             capture_output=True, text=True, timeout=10)
        text = out.stdout + out.stderr
        assert out.returncode != 0, (key, text)
        assert "moat.conf:" in text and key in text, (key, text)


def test_order_after_recipients_refused_at_load(make_moat):
    """limited (and batv) after recipients would never see their
    addresses: the loader refuses the order, naming [pipeline]'s line."""
    for filters in ("relay recipients limited", "relay recipients batv"):
        m = make_moat(start=False,
                      sections={"pipeline": {"filters": filters}})
        out = subprocess.run([MOATD, "-t", "-c", m.conf],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 1, out.stdout
        line = open(m.conf).read().splitlines().index(
            f"filters = {filters}") + 1
        assert f"moat.conf:{line}: [pipeline] filters: " in out.stderr, \
            out.stderr
        assert "must come before recipients" in out.stderr


def test_two_forms_of_one_mailbox_deliver_once(make_moat):
    """bob.1.count and bob.2.count (or another case) are both bob@: the
    second is a duplicate, acknowledged and not added (one delivery), and
    the count it reserved is given back."""
    m = limited_moat(make_moat)
    c = greet(m.port)
    c.cmd("MAIL FROM:<someone@example.org>", 250)
    c.cmd("RCPT TO:<bob.1.count@example.test>", 250)
    code, lines = c.cmd("RCPT TO:<Bob.2.Count@example.test>")
    assert code == 250 and "Duplicate" in lines[-1], lines
    assert deliver(c, "once") == 250
    c.cmd("QUIT")
    c.close()
    assert len(m.delivered("bob")) == 1
    # bob.1's one count is spent; bob.2 has both of its counts.
    assert one(m, "bob.1.count@example.test", "x")[0] == 550
    for i in range(2):
        assert one(m, "bob.2.count@example.test", f"b{i}")[0] == 250, i
    assert one(m, "bob.2.count@example.test", "b2")[0] == 550
