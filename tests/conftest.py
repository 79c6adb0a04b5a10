"""Fixtures of the whole suite: the leak check (every test must leave /dev/shm as it found
it; only segments made by this test run count: see tests/support/leaks.py), ``ctx`` (a
multiprocessing context for each start method) and ``impl`` (multiprocessing's and ipcfast's
implementation of a drop-in)."""
from __future__ import annotations

import multiprocessing as mp

import pytest

from tests.support.leaks import install, no_segment_leaks  # noqa: F401 - the autouse fixture
from tests.support.procs import IMPLS, START_METHODS

install()


@pytest.fixture(params=START_METHODS)
def ctx(request):
    """A multiprocessing context for each start method."""
    return mp.get_context(request.param)


@pytest.fixture(params=IMPLS)
def impl(request):
    """"mp" or "ipcfast": whose Queue / Pipe the test runs against."""
    return request.param


def pytest_addoption(parser):
    """Sizes of the stress harnesses (tests/stress/, run with ``-m stress``)."""
    group = parser.getgroup("ipcfast stress")
    group.addoption("--kills", type=int, default=200, metavar="N",
                    help="SIGKILLs per class in the kill-fuzz (default 200)")
    group.addoption("--corruptions", type=int, default=200, metavar="N",
                    help="corruptions per segment kind in the corruption fuzz (default 200)")
    group.addoption("--fuzz-seed", type=int, default=None, metavar="SEED",
                    help="seed of the stress harnesses (default: random, printed)")
