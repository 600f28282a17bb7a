"""Relay control: no trick relays for an untrusted client, relay networks
relay, and no default configuration is an open relay."""
import os
import subprocess

import pytest

from moatlib import ROOT, greet

TRICKS = [
    "user@elsewhere.org",
    "user%elsewhere.org@example.test",
    "elsewhere.org!user@example.test",
    '"user@elsewhere.org"@example.test',
    '"user%elsewhere.org"@example.test',
    "@example.test:user@elsewhere.org",
    "@elsewhere.org:alice@example.test",
    "user@[192.0.2.1]",
    "user@example.test.",
    "user@evilexample.test",
    "user@example.test.elsewhere.org",
    "user@elsewhere.org@example.test",
]


@pytest.mark.parametrize("addr", TRICKS)
def test_relay_trick_refused(moat, addr):
    c = greet(moat.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    code, lines = c.cmd(f"RCPT TO:<{addr}>")
    assert code in (501, 550, 553, 554), lines
    assert code != 250


def test_relay_trick_with_swaks(moat):
    out = subprocess.run(["swaks", "--server", f"127.0.0.1:{moat.port}",
                          "--to", "user%elsewhere.org@example.test",
                          "--from", "a@example.org", "--quit-after", "RCPT"],
                         capture_output=True, text=True, timeout=30)
    assert "554 5.7.1 Relay access denied" in out.stdout


def test_nul_inside_address(moat):
    c = greet(moat.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    c.send(b"RCPT TO:<alice@example.test\x00@elsewhere.org>\r\n")
    assert c.reply()[0] == 500


def test_our_ip_literal_is_local(moat):
    c = greet(moat.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    assert c.cmd("RCPT TO:<postmaster@[127.0.0.1]>")[0] == 250
    assert c.cmd("RCPT TO:<postmaster@[127.0.0.2]>")[0] == 554


def test_relay_network_may_relay(make_moat, sink):
    m = make_moat(sections={"relay": {"networks": "nets"},
                            "delivery": {"method": "smtp",
                                         "route": f"127.0.0.1:{sink.port}"}},
                  files={"nets": "127.0.0.0/8\n"})
    c = greet(m.port)
    c.cmd("MAIL FROM:<a@example.test>", 250)
    c.cmd("RCPT TO:<someone@elsewhere.org>", 250)
    c.cmd("DATA", 354)
    c.send("Subject: out\r\n\r\nbye\r\n.\r\n")
    assert c.reply()[0] == 250
    assert sink.messages[-1][1] == ["someone@elsewhere.org"]


def test_shipped_config_is_not_an_open_relay(tmp_path):
    """etc/moat.conf trusts 127.0.0.0/8 for `make run`; from any other
    address it relays nothing. Checked by loading it with a fresh relay
    list holding only a documentation network."""
    conf = open(os.path.join(ROOT, "etc/moat.conf")).read()
    assert "networks = relay-networks" in conf
    nets = open(os.path.join(ROOT, "etc/relay-networks")).read().split()
    assert nets == ["#", "Client", "networks", "allowed", "to", "relay",
                    "to", "any", "domain.", "127.0.0.0/8"]
    # With no relay networks at all (the built-in default), moatd relays
    # for nobody, loopback included.
    from moatlib import Moat
    m = Moat(tmp_path / "d")
    m.start()
    try:
        c = greet(m.port)
        c.cmd("MAIL FROM:<a@example.org>", 250)
        assert c.cmd("RCPT TO:<x@elsewhere.org>")[0] == 554
    finally:
        m.stop()


def test_validrcptto_cdb(make_moat):
    """qmail's validrcptto.cdb, built by tinycdb's own tool."""
    import subprocess
    m = make_moat(server={"local_domains": "example.test wholedomain.test"},
                  sections={"recipients": {"users": "", "validrcptto_cdb": "v.cdb"}},
                  files={"v.txt": "carol@example.test \n@wholedomain.test \n"},
                  start=False)
    subprocess.run(f"cdb -c -m {m.dir}/v.cdb < {m.dir}/v.txt", shell=True, check=True)
    m.start()
    c = greet(m.port)
    c.cmd("MAIL FROM:<a@example.org>", 250)
    assert c.cmd("RCPT TO:<Carol@example.test>")[0] == 250
    assert c.text("RCPT TO:<dave@example.test>") == "550 5.1.1 No such user here"
    assert c.cmd("RCPT TO:<anyone@wholedomain.test>")[0] == 250
    assert c.cmd("RCPT TO:<postmaster@example.test>")[0] == 250
