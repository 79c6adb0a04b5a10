"""/dev/shm as the tests see it: paths, listings and clean-up (through ipcfast._segments,
the module the CLI and the bench use too), fresh names, and what tests read from inside a
segment (record sizes, sleepers, transit entries).

Imports only the standard library and ipcfast (child processes import it).
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from typing import List, Set, Tuple

from ipcfast import _segments
from ipcfast._native import ffi, lib

#: where POSIX shared memory lives
SHM = _segments.SHM
#: bytes of a ring record's header
REC_HDR = lib.IPCF_REC_HDR


def run_with_small_shm(script: str):
    """Run Python *script* in a mount namespace whose /dev/shm is a 1 MiB tmpfs and return
    the CompletedProcess (text output), or None where that cannot be set up."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /dev/shm"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        return None
    return subprocess.run(["unshare", "-m", "sh", "-c",
                           'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$0" -c "$1"',
                           sys.executable, script], capture_output=True, text=True, timeout=50)


def path(name: str) -> str:
    """The file of segment *name*."""
    return _segments.path(name)


def poke(name: str, where: Tuple[int, int], value: int) -> bytes:
    """Write *value* (little-endian) at *where* = (offset, size) of segment *name*'s file,
    as a corrupting process would; returns the bytes that were there, for restoring."""
    off, size = where
    with open(path(name), "r+b") as f:
        f.seek(off)
        orig = f.read(size)
        f.seek(off)
        f.write(value.to_bytes(size, "little"))
    return orig


def new_name(tag: str = "test") -> str:
    """A fresh segment name ``ipcf-<tag>-<our pid>-<random>`` (the pid tells the leak check
    and `ipcfast gc` whose it is)."""
    return f"ipcf-{tag}-{os.getpid()}-{secrets.token_hex(6)}"


def segments(prefix: str) -> List[str]:
    """Files in /dev/shm whose name starts with *prefix* (for a queue: its control segment
    and its rings ``<name>.<gen>``), sorted."""
    return _segments.names(prefix)


def ring_segments(queue: str) -> List[str]:
    """The ring files ``<queue>.<gen>`` of queue *queue* present now."""
    return _segments.queue_rings(queue)


def named_by(pid: int) -> Set[str]:
    """Files in /dev/shm whose name carries process *pid* (generated names embed it)."""
    return {n for n in _segments.names() if f"-{pid}-" in n}


def remove_segments(prefix: str) -> List[str]:
    """Unlink every file whose name starts with *prefix* (what a buggy run left behind);
    returns what was there."""
    left = segments(prefix)
    for n in left:
        try:
            os.unlink(path(n))
        except FileNotFoundError:
            pass
    return left


def rec(n: int) -> int:
    """Bytes a message of *n* bytes occupies in a ring (header + body, padded to 8)."""
    return (REC_HDR + n + 7) & ~7


def sleepers(ring) -> Tuple[int, int]:
    """(consumers, producers) asleep on *ring*'s futex words right now."""
    info = ffi.new("struct ipcf_seg_info *")
    assert lib.ipcf_seg_inspect(ring.name.encode(), info) == 0
    return info.counters[6], info.counters[7]


def held_only_in_transit(name: str) -> bool:
    """Is segment *name* kept only by handles this process pickled (or forked) for children
    that have not attached (yet, or ever: say, killed first)? That is: no live process in
    its peer table, and at least one unexpired transit entry whose sender is us. Such a
    segment outlives the last close on purpose, for up to the transit time (60 s)."""
    try:
        with open(path(name), "rb") as f:
            raw = bytearray(f.read(ffi.sizeof("struct ipcf_seg_hdr")))
    except FileNotFoundError:
        return False
    if len(raw) < ffi.sizeof("struct ipcf_seg_hdr"):
        return False
    hdr = ffi.cast("struct ipcf_seg_hdr *", ffi.from_buffer(raw))
    for i in range(lib.IPCF_MAX_PEERS):
        w = hdr.peers[i]
        if w and lib.ipcf_pid_alive(w & 0xFFFFFFFF, w >> 32):
            return False
    me, now = lib.ipcf_self_word(), time.monotonic_ns()
    return any(hdr.transit[i] == me and hdr.transit[i + 1] > now
               for i in range(0, lib.IPCF_TRANSIT_WORDS, 2))


def event_state(name: str, event: str = "data") -> Tuple[int, List[int]]:
    """(sleeping, owner words) of ring *name*'s *event* ("data" or "space"), read from the
    file without joining or inspecting (ipcf_seg_inspect reclaims dead sleepers' slots)."""
    off = lib.IPCF_CTL_OFFSET + ffi.offsetof("struct ipcf_ring_ctl", event)
    with open(path(name), "rb") as f:
        f.seek(off)
        raw = bytearray(f.read(ffi.sizeof("struct ipcf_event")))
    ev = ffi.cast("struct ipcf_event *", ffi.from_buffer(raw))
    return ev.sleeping, [ev.owner[i] for i in range(lib.IPCF_EVENT_SLOTS)]
