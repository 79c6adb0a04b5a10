"""Shared fixtures: every test must leave /dev/shm as it found it (only segments made by
this test run count: see shm_leaks.py)."""
from __future__ import annotations

import gc
import multiprocessing as mp
import os
import time

import pytest

from shm_leaks import SHM, install, ipcf_segments, made_by_this_run

install()


@pytest.fixture(autouse=True)
def no_segment_leaks():
    """Fail any test that leaves an ipcfast segment of its own behind in /dev/shm."""
    before = ipcf_segments()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        gc.collect()
        leaked = {n for n in ipcf_segments() - before if made_by_this_run(n)}
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)      # child processes may still be exiting
    for name in leaked:       # clean up so one leak does not fail every later test
        try:
            os.unlink(os.path.join(SHM, name))
        except FileNotFoundError:
            pass
    assert not leaked, f"test leaked shared-memory segments: {sorted(leaked)}"


START_METHODS = [m for m in ("fork", "spawn", "forkserver") if m in mp.get_all_start_methods()]


@pytest.fixture(params=START_METHODS)
def ctx(request):
    """A multiprocessing context for each start method."""
    return mp.get_context(request.param)
