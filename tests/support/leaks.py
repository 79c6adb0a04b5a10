"""Which ipcfast segments in /dev/shm did this test run make? (for the leak check in
conftest.py)

The leak check only counts segments made by this test run: other processes on the machine
(another test run, a benchmark) may create and remove ipcf* segments in /dev/shm at any
time, and those must neither fail our tests nor be deleted by them. A new segment is ours
when its creator (the creator_pid/creator_start in its header, the pid that new_name()
puts in auto-generated names, and for a queue ring "<queue>.<gen>" the creator of the
queue) is this pytest process or one of its descendants. A descendant is recognised while
it is alive by its parent chain or by the IPCFAST_TEST_ROOT variable it inherited (which
also covers forkserver children and orphans re-parented to init). A creator that has
already exited cannot be placed: such a segment is counted as ours, so a leak left by a
child that died is still caught.
"""
from __future__ import annotations

import os
import re
import struct

SHM = "/dev/shm"
ROOT_ENV = "IPCFAST_TEST_ROOT"
ROOT = os.getpid()


def install() -> None:
    """Mark this process as the root of the test run: every child (fork, spawn, forkserver,
    subprocess) started from now on inherits the mark. Called by conftest.py."""
    global ROOT
    ROOT = os.getpid()
    os.environ[ROOT_ENV] = str(ROOT)


_CREATOR_PID_AT = 48          # struct ipcf_seg_hdr.creator_pid (int32)
_CREATOR_START_AT = 56        # .creator_start (uint64: low 32 bits of the start time in ticks)
_NAME_PID = re.compile(r"^ipcf-[A-Za-z0-9_]+-(\d+)-")
_RING_OF_QUEUE = re.compile(r"^(?P<queue>.+)\.\d+$")


def ipcf_segments() -> set:
    try:
        return {n for n in os.listdir(SHM) if n.startswith("ipcf")}
    except FileNotFoundError:  # pragma: no cover
        return set()


def _proc_stat(pid: int):
    """(parent pid, start time in clock ticks) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        return int(fields[1]), int(fields[19])      # fields 4 and 22 of proc(5)
    except (IndexError, ValueError):
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


def _creators(name: str) -> list:
    """(pid, start ticks low 32 bits or None) of whoever may have made segment *name*."""
    found = []
    m = _RING_OF_QUEUE.match(name)
    for seg in (name, m.group("queue")) if m else (name,):
        try:
            with open(os.path.join(SHM, seg), "rb") as f:
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
