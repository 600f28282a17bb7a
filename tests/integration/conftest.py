import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moatlib import Moat  # noqa: E402
from sink import Sink  # noqa: E402


@pytest.fixture
def make_moat(tmp_path):
    """Factory: make_moat(server={...}, sections={...}) -> started Moat.
    Stops it after the test and fails on any sanitizer report."""
    started = []

    def make(start=True, **kw):
        m = Moat(tmp_path / f"m{len(started)}", **kw)
        started.append(m)
        return m.start() if start else m
    yield make
    for m in started:
        m.stop()
        report = m.sanitizer_report()
        assert not report, report


@pytest.fixture
def moat(make_moat):
    return make_moat()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()
