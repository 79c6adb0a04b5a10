"""Helpers and child-process targets for the test_mailbox*.py files.

No tests live here. Every function a child process runs is at module level and this module
imports only the standard library and ipcfast, so spawn and forkserver children start fast
and can unpickle the targets. Children never wait forever: every blocking call has a
timeout of CHILD_WAIT, so a lost message makes the child fail instead of hanging the test.
"""
from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import queue
import random
import signal
import time
import weakref
from typing import Iterable, List, Optional

import ipcfast
from ipcfast import Mailbox
from ipcfast._native import ffi, lib

#: longest a child (or the test) waits for anything that should happen
CHILD_WAIT = 30.0
STOP = "__stop__"


# ------------------------------------------------------------------ process helpers

@contextlib.contextmanager
def running(*procs, join_timeout: float = CHILD_WAIT):
    """Start *procs*; on exit join them, killing any still alive (and joining again)."""
    started = []
    try:
        for p in procs:
            p.start()
            started.append(p)
        yield procs
    finally:
        deadline = time.monotonic() + join_timeout
        for p in started:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in started:
            if p.is_alive():
                p.kill()
            p.join(10)


def reap(*procs) -> None:
    """Kill and join (so that no zombie remains)."""
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join(10)


def get(q, timeout: float = CHILD_WAIT):
    """A result from a multiprocessing queue, failing (not hanging) if none comes."""
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no result from the child within {timeout} s") from None


def is_stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("t", "T")


def wait_stopped(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not is_stopped(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not stop")
        time.sleep(0.0005)


# ------------------------------------------------------------------ peeking at the segment

def ctl(mb: Mailbox):
    """A snapshot of *mb*'s counters (struct ipcf_mbox_stats: repairs, inflight,
    receivers_waiting, high_water, ...), read without the lock."""
    out = ffi.new("struct ipcf_mbox_stats *")
    lib.ipcf_mbox_stats(mb._h, out)
    return out


_views: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _view(mb: Mailbox):
    """*mb*'s whole segment, mapped here once per mailbox (live shared memory, laid out as
    csrc/layout.h says: only tests read the layout)."""
    have = _views.get(mb)
    if have is None:
        with open(f"/dev/shm/{mb.name}", "r+b") as f:
            mm = mmap.mmap(f.fileno(), 0)
        have = _views[mb] = (mm, ffi.from_buffer(mm))
    return ffi.cast("char *", have[1])


def slot(mb: Mailbox, i: int):
    at = lib.IPCF_HDR_SIZE + i * lib.ipcf_mbox_stride(mb.max_message)
    return ffi.cast("struct ipcf_mbox_slot *", _view(mb) + at)


def slot_states(mb: Mailbox) -> List[int]:
    return [slot(mb, i).state for i in range(ctl(mb).high_water)]


def lock_owner(mb: Mailbox) -> int:
    """Thread id holding the mailbox mutex, 0 if free (glibc: __lock is the owner's tid
    for a robust mutex, with the waiters bit on top)."""
    at = lib.IPCF_CTL_OFFSET + ffi.offsetof("struct ipcf_mbox_ctl", "lock")
    return ffi.cast("int32_t *", _view(mb) + at)[0] & 0x3FFFFFFF


def stop_while(pid: int, condition, timeout: float = 20.0) -> bool:
    """Poll *condition*; when it holds, SIGSTOP *pid*; if it still holds once the process is
    stopped, SIGKILL it and return True (caught in the act). Otherwise SIGCONT and keep
    trying until *timeout*; False if never caught."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not condition():
            continue
        os.kill(pid, signal.SIGSTOP)
        wait_stopped(pid)
        if condition():
            os.kill(pid, signal.SIGKILL)
            return True
        os.kill(pid, signal.SIGCONT)
    return False


# ------------------------------------------------------------------ checksummed bodies

def sealed(n: int, rng: Optional[random.Random] = None) -> bytes:
    """n >= 32 bytes: a sha256 of the rest, then the rest (random, cheap to make)."""
    rng = rng or random.Random()
    rest = rng.randbytes(64) * ((n - 32) // 64) + rng.randbytes((n - 32) % 64)
    return hashlib.sha256(rest).digest() + rest


def intact(body: bytes) -> bool:
    return len(body) >= 32 and hashlib.sha256(body[32:]).digest() == body[:32]


def drain(mb: Mailbox, raw: bool = False, **kw) -> list:
    """Every message receivable now (bodies unpickled unless *raw*)."""
    out = []
    recv = mb.recv_bytes if raw else mb.recv
    while True:
        try:
            out.append(recv(block=False, **kw))
        except queue.Empty:
            return out


# ------------------------------------------------------------------ child targets

def child_echo(mb: Mailbox, results) -> None:
    """Receive one message, reply with (body * 2, pid, own id, name), close."""
    m = mb.recv(timeout=CHILD_WAIT, type=1)
    mb.send((m.body * 2, os.getpid(), mb.id, mb.name), type=2)
    results.put((m.sender, m.seq))
    mb.close()


def child_report_id(name: str, ident, results) -> None:
    with Mailbox.open(name, id=ident) as mb:
        results.put(mb.id)


def child_sender(name: str, index: int, count: int, results) -> None:
    with Mailbox.open(name) as mb:
        for i in range(count):
            mb.send((index, i), block=True, timeout=CHILD_WAIT)
        results.put(("sent", index, os.getpid()))


def child_collector(mb: Mailbox, results) -> None:
    """Receive until STOP; report every (body, seq, sender) seen."""
    got = []
    while True:
        m = mb.recv(timeout=CHILD_WAIT)
        if m.body == STOP:
            break
        got.append((m.body, m.seq, m.sender))
    results.put(("got", os.getpid(), got))
    mb.close()


def child_take_n(name: str, ident, n: int, results, then_wait: float = 0.3) -> None:
    """Receive n messages as *ident*; then check nothing more is there for us."""
    with Mailbox.open(name, id=ident) as mb:
        got = [mb.recv(timeout=CHILD_WAIT) for _ in range(n)]
        try:
            extra = mb.recv(timeout=then_wait)
        except queue.Empty:
            extra = None
        results.put((mb.id, os.getpid(), [(m.body, m.to, m.seq) for m in got],
                     None if extra is None else extra.body))


def child_receive_one(name: str, ident, results, delay: float = 0.0) -> None:
    """Sleep *delay*, receive one message, report (id, pid, seq, body)."""
    time.sleep(delay)
    with Mailbox.open(name, id=ident) as mb:
        m = mb.recv(timeout=CHILD_WAIT)
        results.put((mb.id, os.getpid(), m.seq, m.body))


def child_receive_bytes_forever(name: str) -> None:
    """Receive (large) messages until killed."""
    with Mailbox.open(name) as mb:
        while True:
            mb.recv_bytes(timeout=CHILD_WAIT)


def child_send_bytes_forever(name: str, size: int) -> None:
    """Send the same large message until killed (or CHILD_WAIT of no room)."""
    data = sealed(size)
    with Mailbox.open(name) as mb:
        while True:
            mb.send_bytes(data, timeout=CHILD_WAIT)


def child_send_sealed_forever(name: str, seed: int, low: int, high: int) -> None:
    """Send checksummed messages of random sizes in [low, high] until killed."""
    rng = random.Random(seed)
    bodies = [sealed(rng.randint(low, high), rng) for _ in range(8)]
    with Mailbox.open(name) as mb:
        while True:
            mb.send_bytes(rng.choice(bodies), timeout=CHILD_WAIT)


def child_batches_forever(name: str, n: int) -> None:
    """send_many a batch of n numbered items, then recv_many them back, until killed (so it
    is nearly always inside one of the two, holding the lock)."""
    with Mailbox.open(name) as mb:
        for k in range(1 << 62):
            mb.send_many([(k, j) for j in range(n)], timeout=CHILD_WAIT)
            mb.recv_many(n, timeout=CHILD_WAIT)


def child_check_sealed(name: str, results) -> None:
    """Receive checksummed messages until b"STOP"; report (checked, torn)."""
    checked = torn = 0
    with Mailbox.open(name) as mb:
        while True:
            m = mb.recv_bytes(timeout=CHILD_WAIT)
            if m.body == b"STOP":
                break
            checked += 1
            torn += not intact(m.body)
    results.put((checked, torn))


def child_holder(mb: Mailbox, commands, results) -> None:
    """Take the exclusive right (by receiving one message), then obey commands:
    'release', 'close', 'try' (recv non-blocking, report the outcome), 'exit'."""
    m = mb.recv(timeout=CHILD_WAIT)
    results.put(("holding", os.getpid(), m.body))
    while True:
        cmd = commands.get(timeout=CHILD_WAIT)
        if cmd == "release":
            results.put(("released", mb.release()))
        elif cmd == "close":
            mb.close()
            results.put(("closed", None))
        elif cmd == "try":
            try:
                out = ("got", mb.recv(block=False).body)
            except ipcfast.ReceiverBusyError:
                out = ("busy", None)
            except queue.Empty:
                out = ("empty", None)
            results.put(out)
        elif cmd == "suicide":
            os.kill(os.getpid(), signal.SIGKILL)
        elif cmd == "exit":
            break
    mb.close()


def child_wait_for_right(name: str, results) -> None:
    """Wait for the exclusive right and report what was received."""
    with Mailbox.open(name) as mb:
        try:
            out = ("got", mb.recv(if_busy="wait", timeout=CHILD_WAIT).body)
        except queue.Empty:
            out = ("timeout", None)
        results.put(out)


def child_busy_probe(name: str, results) -> None:
    with Mailbox.open(name) as mb:
        try:
            mb.recv(block=False)
            out = "got"
        except ipcfast.ReceiverBusyError as e:
            out = ("busy", str(e))
        except queue.Empty:
            out = "empty"
        results.put(out)


def child_exit_without_close(mb: Mailbox, results) -> None:
    mb.send("hello")
    results.put(os.getpid())
    results.close()
    results.join_thread()           # flush before skipping every clean-up
    os._exit(0)


def sent_bodies(items: Iterable) -> list:
    return sorted(items)


def child_hold_then_exit(mb: Mailbox, results) -> None:
    """Say we are here, then return without closing (a fork child then ends in os._exit)."""
    results.put("here")
    time.sleep(0.3)
