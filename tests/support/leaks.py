"""The leak check: every test and every benchmark must leave /dev/shm as it found it.

The check only counts segments made by this test run: other processes on the machine
(another test run, a benchmark) may create and remove ipcf* segments in /dev/shm at any
time, and those must neither fail our tests nor be deleted by them. A new segment is ours
when its creator (the creator_pid/creator_start in its header, the pid that generated names
carry, and for a queue ring "<queue>.<gen>" the creator of the queue) is this pytest
process or one of its descendants. A descendant is recognised while it is alive by its
parent chain or by the IPCFAST_TEST_ROOT variable it inherited (which also covers
forkserver children and orphans re-parented to init). A creator that has already exited
cannot be placed: such a segment is counted as ours, so a leak left by a child that died is
still caught.

tests/conftest.py and benchmarks/conftest.py both call :func:`install` and import the
autouse fixture :func:`no_segment_leaks`. This module imports pytest: child processes must
not import it.
"""
from __future__ import annotations

import gc
import os
import re
import struct
import time
from typing import List, Optional, Set, Tuple

import pytest

from ipcfast import _segments
from tests.support.procs import proc_fields

ROOT_ENV = "IPCFAST_TEST_ROOT"
ROOT = os.getpid()
#: how long a test's children get to finish removing their segments after the test
SETTLE = 5.0


def install() -> None:
    """Mark this process as the root of the test run: every child (fork, spawn, forkserver,
    subprocess) started from now on inherits the mark. Called by the conftest files, in the
    pytest process only."""
    global ROOT
    ROOT = os.getpid()
    os.environ[ROOT_ENV] = str(ROOT)


_CREATOR_PID_AT = 48          # struct ipcf_seg_hdr.creator_pid (int32)
_CREATOR_START_AT = 56        # .creator_start (uint64: low 32 bits of the start time in ticks)
_NAME_PID = re.compile(r"^ipcf-[A-Za-z0-9_]+-(\d+)-")


def ipcf_segments() -> Set[str]:
    """Every ipcfast-named file in /dev/shm now."""
    return set(_segments.names(_segments.PREFIX))


def _proc_stat(pid: int) -> Optional[Tuple[int, int]]:
    """(parent pid, start time in clock ticks) of a process, None if it is gone."""
    fields = proc_fields(pid)
    try:
        return int(fields[1]), int(fields[19])          # fields 4 and 22 of proc(5)
    except (TypeError, IndexError, ValueError):
        return None


def _is_ours(pid: int) -> bool:
    """Is the live process *pid* this pytest process or one of its descendants?"""
    p = pid
    for _ in range(100):                            # the parent chain
        if p == ROOT:
            return True
        st = _proc_stat(p)
        if st is None or st[0] <= 1:
            break
        p = st[0]
    try:                                            # forkserver children, orphans
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return False
    return f"{ROOT_ENV}={ROOT}".encode() in env


def _creators(name: str) -> List[Tuple[int, Optional[int]]]:
    """(pid, start ticks low 32 bits or None) of whoever may have made segment *name*."""
    found = []
    queue = _segments.queue_of(name)
    for seg in (name, queue) if queue else (name,):
        try:
            with open(_segments.path(seg), "rb") as f:
                head = f.read(64)
        except OSError:
            head = b""
        if len(head) >= 64:
            pid = struct.unpack_from("<i", head, _CREATOR_PID_AT)[0]
            start = struct.unpack_from("<Q", head, _CREATOR_START_AT)[0] & 0xFFFFFFFF
            if pid > 0:
                found.append((pid, start or None))
        n = _NAME_PID.match(seg)
        if n:
            found.append((int(n.group(1)), None))
    return found


def made_by_this_run(name: str) -> bool:
    """Was segment *name* created by this pytest process or a descendant (see the module
    docstring)? A segment whose creators have all exited counts as ours."""
    foreign = False
    for pid, start in _creators(name):
        if pid == ROOT:
            return True
        st = _proc_stat(pid)
        if st is None or (start is not None and (st[1] & 0xFFFFFFFF) != start):
            continue                                # exited (or the pid was reused)
        if _is_ours(pid):
            return True
        foreign = True
    return not foreign


def leaked_since(before: Set[str], settle: float = SETTLE) -> Set[str]:
    """Segments of this run that appeared since *before* and are still there, after giving
    exiting children up to *settle* seconds to remove theirs."""
    deadline = time.monotonic() + settle
    while True:
        gc.collect()
        leaked = {n for n in ipcf_segments() - before if made_by_this_run(n)}
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.05)      # child processes may still be exiting


@pytest.fixture(autouse=True)
def no_segment_leaks():
    """Fail any test that leaves an ipcfast segment of its own behind in /dev/shm (and
    remove it, so that one leak does not fail every later test)."""
    before = ipcf_segments()
    yield
    leaked = leaked_since(before)
    for name in leaked:
        try:
            os.unlink(_segments.path(name))
        except FileNotFoundError:
            pass
    assert not leaked, f"test leaked shared-memory segments: {sorted(leaked)}"
