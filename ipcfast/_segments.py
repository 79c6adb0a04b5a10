"""Segment names and the /dev/shm directory: the one place that knows how ipcfast names its
files, how a queue's rings are named after their queue, and how to list, describe and
remove them. Used by the CLI, the benchmark runner and the tests.
"""
from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

from . import _native as N
from ._native import ffi, lib

#: where POSIX shared memory lives on Linux
SHM = "/dev/shm"
#: every name that ipcfast generates starts with this
PREFIX = "ipcf"

KINDS = {lib.IPCF_KIND_RING: "ring", lib.IPCF_KIND_QUEUE: "queue", lib.IPCF_KIND_QPART: "queue-ring",
         lib.IPCF_KIND_MAILBOX: "mailbox"}

_QUEUE_RING = re.compile(r"^(?P<queue>.+)\.(?P<gen>\d+)$")


def path(name: str) -> str:
    """The file of segment *name*."""
    return os.path.join(SHM, name)


def queue_ring_name(queue: str, gen: int) -> str:
    """The name of ring number *gen* of queue *queue* (the C side names them so too)."""
    return f"{queue}.{gen}"


def queue_of(name: str) -> Optional[str]:
    """The queue that *name* is a ring of, or None if *name* is not a queue-ring name."""
    m = _QUEUE_RING.match(name)
    return m.group("queue") if m else None


def names(prefix: str = "") -> List[str]:
    """Every entry of /dev/shm whose name starts with *prefix* (sorted)."""
    try:
        return sorted(n for n in os.listdir(SHM) if n.startswith(prefix))
    except FileNotFoundError:  # pragma: no cover - no /dev/shm at all
        return []


def queue_rings(queue: str) -> List[str]:
    """The ring files of queue *queue* present now."""
    return [n for n in names(queue + ".") if queue_of(n) == queue]


def remove(names_: Iterable[str], with_rings: bool = True) -> List[str]:
    """Unlink each of *names_* (and, with *with_rings*, the rings of any that is a queue).
    Missing files are skipped. Returns the names actually removed."""
    wanted = set(names_)
    if not wanted:
        return []
    gone = []
    for n in names():
        if n in wanted or (with_rings and queue_of(n) in wanted):
            try:
                os.unlink(path(n))
                gone.append(n)
            except FileNotFoundError:
                pass
    return gone


def unlink(name: str) -> int:
    """Remove segment *name* through the C side (which validates the name). 0, or the
    negative errno; ENOENT is reported, not raised."""
    return lib.ipcf_seg_unlink(name.encode())


@dataclass
class Segment:
    """What `ipcfast ls/stat/gc` show of one segment."""
    name: str
    kind: str
    capacity: int
    size: int
    live: int
    dead: int
    creator: int
    age: float
    owner: str
    counters: List[int]
    param0: int
    param1: int
    flags: int = 0
    #: "" or why the segment's state is impossible (its kind's checks, csrc/inspect_check.c)
    corrupt: str = ""

    @property
    def orphaned(self) -> bool:
        return self.live == 0


@dataclass
class Unreadable:
    """An ipcfast segment (it starts with our magic) that cannot even be inspected: a header
    that disagrees with itself or the file, another layout version, or one still being
    created. `ipcfast ls` lists it, `ipcfast stat` says why."""
    name: str
    state: str       #: "corrupt", "other-layout" or "creating"
    reason: str


_STATE_OF = {lib.IPCF_EVERSION: "other-layout", lib.IPCF_ENOTREADY: "creating"}


def _has_magic(name: str) -> bool:
    try:
        with open(path(name), "rb") as f:
            return int.from_bytes(f.read(8), "little") == lib.IPCF_MAGIC
    except OSError:
        return False


def unreadable(name: str, exc: BaseException) -> Optional[Unreadable]:
    """*exc* (raised by :func:`inspect`) as an :class:`Unreadable`, or None when *name* is
    not an ipcfast segment at all (or the error is not about its contents)."""
    rc = getattr(exc, "rc", None)
    if not isinstance(exc, N.IncompatibleSegmentError) or rc is None or not _has_magic(name):
        return None
    reason = str(exc)
    prefix = f"segment {name!r} "
    return Unreadable(name, _STATE_OF.get(rc, "corrupt"),
                      reason[len(prefix):] if reason.startswith(prefix) else reason)


def inspect(name: str) -> Segment:
    """Describe one segment; raises FileNotFoundError, IncompatibleSegmentError, OSError."""
    info = ffi.new("struct ipcf_seg_info *")
    rc = lib.ipcf_seg_inspect(name.encode(), info)
    if rc:
        exc = N.error(rc, "segment", name)
        exc.rc = rc
        raise exc
    st = os.stat(path(name))
    try:
        import pwd
        owner = pwd.getpwuid(st.st_uid).pw_name
    except (KeyError, ImportError):
        owner = str(st.st_uid)
    return Segment(name=name, kind=KINDS.get(info.kind, str(info.kind)), capacity=info.capacity,
                   size=st.st_size, live=info.live_peers, dead=info.dead_peers,
                   creator=info.creator_pid, age=max(0.0, time.time() - info.created_ns / 1e9),
                   owner=owner, counters=list(info.counters), param0=info.param0,
                   param1=info.param1, flags=info.flags,
                   corrupt=ffi.string(info.corrupt).decode("utf-8", "replace"))


def scan() -> Dict[str, Segment]:
    """Every ipcfast segment in /dev/shm that we may read (others are skipped silently)."""
    return scan_all()[0]


def scan_all() -> "tuple[Dict[str, Segment], Dict[str, Unreadable]]":
    """(the segments :func:`scan` gives, the ipcfast segments too broken to inspect)."""
    found: Dict[str, Segment] = {}
    broken: Dict[str, Unreadable] = {}
    for name in names():
        if lib.ipcf_name_check(name.encode()) != 0:
            continue
        try:
            found[name] = inspect(name)
        except (OSError, N.IpcfastError, ValueError) as exc:
            u = unreadable(name, exc)
            if u is not None:
                broken[name] = u
    return found, broken


ENOENT = -errno.ENOENT


def collectable(segs: Dict[str, Segment]) -> List[Segment]:
    """The segments of *segs* that no live process can use any more: no live peer and no
    live transit (a pipe's ends in transit included), and, for a queue's ring, no queue
    left. This is what `ipcfast gc` removes."""
    out = []
    for seg in segs.values():
        if seg.kind == "queue-ring":
            queue = queue_of(seg.name)
            if queue is not None and (queue in segs or os.path.exists(path(queue))):
                continue                  # handled with (or kept by) its queue
            out.append(seg)
        elif seg.orphaned:
            out.append(seg)
    return out


#: a file younger than this is never collected automatically (it may be between creation
#: and first use by a process that made it by hand)
AUTO_MIN_AGE = 2.0
#: a process collects automatically at most this often (on creating a segment)
AUTO_EVERY = 30.0
_last_auto = [float("-inf")]


def remove_if_dead(name: str) -> List[str]:
    """Remove segment *name* (a queue with its rings) if no live process can use it any
    more and it was made to be removed by its last user. Returns what was removed."""
    try:
        seg = inspect(name)
    except (OSError, N.IpcfastError, ValueError):
        return []
    if not seg.orphaned or not seg.flags & lib.IPCF_F_AUTO_UNLINK:
        return []
    return remove([name], with_rings=True)


def collect_dead_automatically() -> List[str]:
    """Remove segments of ours that are provably dead: their every user was killed (SIGKILL,
    or SIGTERM, which ends a Python process without running its exit hooks), so nobody is
    left to be the last one out. Only files owned by this user, made to be removed by their
    last user (IPCF_F_AUTO_UNLINK), with no live peer or transit (pid and start time are
    checked, so a recycled pid does not count), and not touched in the last AUTO_MIN_AGE
    seconds. Called when this process creates a segment, at most every AUTO_EVERY seconds;
    ``IPCFAST_AUTO_GC=0`` turns it off. Returns the names removed."""
    now = time.monotonic()
    if now - _last_auto[0] < AUTO_EVERY or os.environ.get("IPCFAST_AUTO_GC", "1") == "0":
        return []
    _last_auto[0] = now
    uid = os.geteuid()
    segs = {}
    for name in names(PREFIX):
        try:
            st = os.stat(path(name))
        except OSError:
            continue
        if st.st_uid != uid or time.time() - st.st_mtime < AUTO_MIN_AGE:
            continue
        if lib.ipcf_name_check(name.encode()) != 0:
            continue
        try:
            segs[name] = inspect(name)
        except (OSError, N.IpcfastError, ValueError):
            continue
    # a queue-ring counts with its queue; other segments only if made for auto-removal
    dead = [seg for seg in collectable(segs)
            if seg.kind == "queue-ring" or seg.flags & lib.IPCF_F_AUTO_UNLINK]
    return remove([seg.name for seg in dead], with_rings=True)
